// Entry point: `/` is the home page, `/m/{code}` a meeting. Served by GC (crates/gc-service,
// routes/web.rs) with a Content-Security-Policy that allows scripts from this origin only.

import { home } from "./home.js";
import { meetingPage } from "./meeting.js";

function route(): void {
  const match = /^\/m\/([^/]+)\/?$/.exec(window.location.pathname);
  if (match?.[1]) {
    meetingPage(decodeURIComponent(match[1]));
  } else {
    home();
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", route);
} else {
  route();
}
