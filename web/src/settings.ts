// The seven settings as form fields, for the create form and the host's settings panel: each
// with what it does, and the one pair that must agree (guests need "Only signed-in people" off,
// DESIGN §12) kept agreeing as the boxes are ticked, so the form never sends what GC refuses.

import { SETTING_HINTS, SETTING_LABELS, type Settings } from "./api.js";
import { el } from "./dom.js";

/** A fieldset of the settings, ticked as `current` says; `boxes` receives each checkbox. */
export function settingFields(
  current: Settings,
  boxes: Map<keyof Settings, HTMLInputElement>,
  prefix: string,
): HTMLFieldSetElement {
  const fields = el("fieldset", {}, el("legend", {}, "Settings"));
  for (const [key, label] of SETTING_LABELS) {
    const hintId = `${prefix}-${key}-hint`;
    const box = el("input", { type: "checkbox", name: key, checked: current[key], "aria-describedby": hintId });
    boxes.set(key, box);
    fields.append(
      el("label", { class: "check" }, box, label),
      el("p", { class: "hint muted", id: hintId }, SETTING_HINTS[key]),
    );
  }
  const guests = boxes.get("allow_guests");
  const signedIn = boxes.get("require_auth");
  if (guests && signedIn) {
    guests.addEventListener("change", () => {
      if (guests.checked) signedIn.checked = false;
    });
    signedIn.addEventListener("change", () => {
      if (signedIn.checked) guests.checked = false;
    });
  }
  return fields;
}
