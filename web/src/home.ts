// The home page: sign in, create a meeting (with the secure defaults), open one by code, and
// the history of meetings hosted or attended.

import { ApiError, DEFAULT_SETTINGS, gc, type Meeting, type Settings } from "./api.js";
import { settingFields } from "./settings.js";
import { el, show, status } from "./dom.js";
import * as session from "./session.js";
import { showUser, signInForm } from "./signin.js";

export function home(): void {
  const user = session.current();
  showUser(user);
  if (!user) {
    show(
      el("h1", {}, "Convene"),
      el("p", {}, "Sign in to create a meeting or to see your meetings."),
      signInForm(() => home()),
    );
    return;
  }
  show(el("h1", {}, "Meetings"), createForm(user), openByCode(), historySection(user));
}

function createForm(user: session.User): HTMLElement {
  const error = el("p", { class: "error", role: "alert" });
  const name = el("input", { type: "text", name: "display_name", required: true, maxlength: 255 });
  const max = el("input", { type: "number", name: "max_participants", min: 2, inputmode: "numeric" });
  const boxes = new Map<keyof Settings, HTMLInputElement>();
  const settings = settingFields(DEFAULT_SETTINGS, boxes, "create");
  const submit = el("button", { type: "submit" }, "Create meeting");
  return el(
    "section",
    { "aria-labelledby": "create-heading" },
    el("h2", { id: "create-heading" }, "New meeting"),
    el(
      "form",
      {
        class: "panel",
        onsubmit: (event: Event) => {
          event.preventDefault();
          submit.disabled = true;
          error.textContent = "";
          const chosen = { ...DEFAULT_SETTINGS };
          for (const [key, box] of boxes) chosen[key] = box.checked;
          const body: { display_name: string; max_participants?: number; settings: Settings } = {
            display_name: name.value,
            settings: chosen,
          };
          if (max.value) body.max_participants = Number(max.value);
          gc.create(user.token, body)
            .then((meeting: Meeting) => {
              status(`Meeting "${meeting.display_name}" created.`);
              window.location.assign(`/m/${meeting.meeting_code}`);
            })
            .catch((e: unknown) => {
              error.textContent = e instanceof Error ? e.message : "The meeting could not be created.";
              submit.disabled = false;
            });
        },
      },
      el("label", {}, "Meeting name", name),
      el("label", {}, "Maximum participants (optional)", max),
      settings,
      el("div", { class: "row" }, submit),
      error,
    ),
  );
}

function openByCode(): HTMLElement {
  const code = el("input", {
    type: "text",
    name: "code",
    required: true,
    pattern: "[0-9A-Za-z]{12}",
    title: "12 letters or digits",
    autocomplete: "off",
  });
  return el(
    "section",
    { "aria-labelledby": "open-heading" },
    el("h2", { id: "open-heading" }, "Join by code"),
    el(
      "form",
      {
        class: "panel",
        onsubmit: (event: Event) => {
          event.preventDefault();
          window.location.assign(`/m/${encodeURIComponent(code.value.trim())}`);
        },
      },
      el("label", {}, "Meeting code", code),
      el("div", { class: "row" }, el("button", { type: "submit" }, "Open")),
    ),
  );
}

function historySection(user: session.User): HTMLElement {
  const body = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  const section = el(
    "section",
    { "aria-labelledby": "history-heading" },
    el("h2", { id: "history-heading" }, "Past meetings"),
    body,
  );
  gc.history(user.token, 1)
    .then((history) => {
      if (history.items.length === 0) {
        body.replaceChildren(el("p", { class: "muted" }, "No past meetings yet."));
        return;
      }
      const rows = history.items.map((m) =>
        el(
          "tr",
          {},
          el("td", {}, m.display_name),
          el("td", {}, m.host_id === user.id ? "host" : "guest"),
          el("td", {}, m.ended_at ? new Date(m.ended_at).toLocaleString() : ""),
        ),
      );
      body.replaceChildren(
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, el("th", {}, "Meeting"), el("th", {}, "Role"), el("th", {}, "Ended"))),
          el("tbody", {}, ...rows),
        ),
        el("p", { class: "muted" }, `${history.total} in all.`),
      );
    })
    .catch((e: unknown) => {
      body.replaceChildren(
        el("p", { class: "error" }, e instanceof ApiError ? e.message : "History is not available."),
      );
    });
  return section;
}
