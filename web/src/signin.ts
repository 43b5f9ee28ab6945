// The sign-in form, at AC. Used by the home page and by a meeting link opened signed out.

import { ac, ApiError } from "./api.js";
import { el } from "./dom.js";
import * as session from "./session.js";

export function signInForm(onSignedIn: (user: session.User) => void): HTMLElement {
  const error = el("p", { class: "error", role: "alert" });
  const email = el("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = el("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = el("button", { type: "submit" }, "Sign in");
  const form = el(
    "form",
    {
      class: "panel",
      "aria-label": "Sign in",
      onsubmit: (event: Event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        ac.signIn(email.value.trim(), password.value)
          .then((answer) => {
            const user = session.save(answer.access_token);
            if (!user) throw new ApiError(0, "BAD_TOKEN", "The sign-in answer was not usable.");
            onSignedIn(user);
          })
          .catch((e: unknown) => {
            error.textContent =
              e instanceof ApiError && e.status === 401
                ? "Wrong e-mail or password."
                : e instanceof ApiError && e.status === 429
                  ? "Too many attempts. Wait a little and try again."
                  : e instanceof Error
                    ? e.message
                    : "Sign-in failed.";
            submit.disabled = false;
            password.focus();
          });
      },
    },
    el("label", {}, "E-mail", email),
    el("label", {}, "Password", password),
    el("div", { class: "row" }, submit),
    error,
  );
  return form;
}

/** Shows who is signed in, with a sign-out button, in the header. */
export function showUser(user: session.User | null): void {
  const who = document.getElementById("who");
  if (!who) return;
  who.replaceChildren();
  if (!user) return;
  who.append(
    `Signed in as ${user.name || "you"} `,
    el(
      "button",
      {
        class: "secondary",
        type: "button",
        onclick: () => {
          session.signOut();
          window.location.assign("/");
        },
      },
      "Sign out",
    ),
  );
}
