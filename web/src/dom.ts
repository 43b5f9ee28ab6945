// Small DOM helpers. Text always goes in as text nodes, never as HTML: names and reasons come
// from other users, and the Content-Security-Policy forbids inline scripts anyway.

type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | null | undefined | ((event: Event) => void);

/** `el("button", {class: "x", onclick: f}, "Text")`. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") {
      node.addEventListener(name.replace(/^on/, ""), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the page's main content and moves focus there, for keyboard and screen readers. */
export function show(...children: Child[]): void {
  const main = document.getElementById("main");
  if (!main) return;
  main.replaceChildren();
  append(main, children);
  main.focus({ preventScroll: true });
}

let clearTimer: number | undefined;

/**
 * A short message in the status bar (announced politely), cleared after a few seconds unless
 * `persist` (a state that lasts, like "reconnecting"). Empty clears it.
 */
/** The text the status bar shows now. */
export function currentStatus(): string {
  return document.getElementById("status")?.textContent ?? "";
}

export function status(text: string, persist = false): void {
  const bar = document.getElementById("status");
  if (!bar) return;
  window.clearTimeout(clearTimer);
  bar.textContent = text;
  if (text && !persist) clearTimer = window.setTimeout(() => (bar.textContent = ""), 6000);
}
