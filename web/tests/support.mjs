// What the browser tests share: the stack's URLs, an org with users made through AC's admin API,
// Chromium (Debian's, driven by playwright-core), screenshots, and the request log that the
// security checks read.

import { mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const RESULTS = join(here, "..", "test-results");
const SCREENSHOTS = join(here, "..", "..", "docs", "screenshots");

function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests through scripts/web-tests.sh, or set the stack's URLs`);
  }
  return value.replace(/\/+$/, "");
}

export const env = {
  gc: () => need("CONVENE_GC_URL"),
  ac: () => need("CONVENE_AC_URL"),
  adminId: () => need("CONVENE_ADMIN_CLIENT_ID"),
  adminSecret: () => need("CONVENE_ADMIN_CLIENT_SECRET"),
  chromium: () => process.env.CONVENE_CHROMIUM || "/usr/bin/chromium",
};

async function json(response, what) {
  const text = await response.text();
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function adminToken() {
  const basic = Buffer.from(`${env.adminId()}:${env.adminSecret()}`).toString("base64");
  const response = await fetch(`${env.ac()}/api/v1/auth/service/token`, {
    method: "POST",
    headers: { Authorization: `Basic ${basic}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials",
    signal: AbortSignal.timeout(10_000),
  });
  return (await json(response, "admin service token")).access_token;
}

/** A fresh org with the users named, each `{email, password, name}`. */
export async function makeOrg(names) {
  const admin = await adminToken();
  const suffix = randomBytes(5).toString("hex");
  const headers = { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" };
  const org = await json(
    await fetch(`${env.ac()}/api/v1/admin/orgs`, {
      method: "POST",
      headers,
      body: JSON.stringify({ slug: `web-${suffix}`, name: `Web test ${suffix}` }),
      signal: AbortSignal.timeout(10_000),
    }),
    "create org",
  );
  const users = {};
  for (const name of names) {
    const user = {
      email: `${name.toLowerCase().replace(/[^a-z0-9]+/g, ".")}.${suffix}@web.test`,
      password: `pw-${randomBytes(8).toString("hex")}`,
      name,
    };
    await json(
      await fetch(`${env.ac()}/api/v1/admin/orgs/${org.org_id}/users`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          email: user.email,
          password: user.password,
          display_name: user.name,
          roles: ["user"],
        }),
        signal: AbortSignal.timeout(10_000),
      }),
      `create user ${name}`,
    );
    users[name] = user;
  }
  return users;
}

/** A WAV file of a steady tone: the "voice" of a fake microphone that keeps talking. */
export function toneWav() {
  const rate = 48_000;
  const seconds = 30;
  const samples = rate * seconds;
  const buffer = Buffer.alloc(44 + samples * 2);
  buffer.write("RIFF", 0);
  buffer.writeUInt32LE(36 + samples * 2, 4);
  buffer.write("WAVEfmt ", 8);
  buffer.writeUInt32LE(16, 16);
  buffer.writeUInt16LE(1, 20); // PCM
  buffer.writeUInt16LE(1, 22); // mono
  buffer.writeUInt32LE(rate, 24);
  buffer.writeUInt32LE(rate * 2, 28);
  buffer.writeUInt16LE(2, 32);
  buffer.writeUInt16LE(16, 34);
  buffer.write("data", 36);
  buffer.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) {
    // Half of full scale, about −9 dBFS RMS: well over the −40 dBFS speaking threshold.
    buffer.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 16_000), 44 + i * 2);
  }
  mkdirSync(RESULTS, { recursive: true });
  const path = join(RESULTS, "tone.wav");
  writeFileSync(path, buffer);
  return path;
}

/** One Chromium; `audioFile` makes its fake microphone play that file instead of beeping. */
export async function launch(audioFile) {
  const args = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
  ];
  if (audioFile) args.push(`--use-file-for-fake-audio-capture=${audioFile}`);
  return chromium.launch({ executablePath: env.chromium(), headless: true, args });
}

/**
 * A browser context for one person, recording every request and WebSocket it opens, and what
 * its console printed, for the checks at the end.
 */
export async function person(browser, label, { phone = false } = {}) {
  const context = await browser.newContext(
    phone
      ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }
      : { viewport: { width: 1000, height: 900 } },
  );
  await context.grantPermissions(["microphone"], { origin: env.gc() });
  const page = await context.newPage();
  const record = { label, requests: [], sockets: [], console: [], errors: [], meetingTokens: [] };
  page.on("request", (request) => record.requests.push(request.url()));
  // The meeting tokens joins hand out, to look for them where they must never be.
  page.on("response", (response) => {
    if (!response.url().endsWith("/join") || !response.ok()) return;
    response
      .json()
      .then((body) => body?.meeting_token && record.meetingTokens.push(body.meeting_token))
      .catch(() => {});
  });
  page.on("websocket", (socket) => record.sockets.push(socket.url()));
  page.on("console", (message) => record.console.push(message.text()));
  page.on("pageerror", (error) => record.errors.push(String(error)));
  page.on("dialog", (dialog) => void dialog.accept());
  page.setDefaultTimeout(15_000);
  return { context, page, record };
}

let step = 0;
/** Saves a screenshot; with CONVENE_UPDATE_SCREENSHOTS=1 the key ones also go to docs/. */
export async function shot(page, name, { key = false } = {}) {
  mkdirSync(RESULTS, { recursive: true });
  step += 1;
  const file = join(RESULTS, `${String(step).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (key && process.env.CONVENE_UPDATE_SCREENSHOTS === "1") {
    mkdirSync(SCREENSHOTS, { recursive: true });
    copyFileSync(file, join(SCREENSHOTS, `${name}.png`));
  }
}

export async function signIn(page, user) {
  await page.getByLabel("E-mail").fill(user.email);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The participants list item of `name` on `page`. */
export const participant = (page, name) =>
  page.getByRole("list", { name: "Participants" }).getByRole("listitem").filter({ hasText: name });

/** Signs in with the keyboard alone: focus, type, Tab, type, Enter. */
export async function signInByKeyboard(page, user) {
  await page.getByLabel("E-mail").focus();
  await page.keyboard.type(user.email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(user.password);
  await page.keyboard.press("Enter");
}

/** Every control on the page has an accessible name (a label, aria-label or its text). */
export async function assertLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, button, meter, a")]
      .filter((el) => {
        const labels = "labels" in el && el.labels ? el.labels.length : 0;
        return !labels && !el.getAttribute("aria-label") && !el.textContent.trim();
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  if (unlabelled.length) throw new Error(`controls without a name: ${unlabelled.join(", ")}`);
}

/** The user token a page holds (to check it never shows up where it must not). */
export async function tokenOf(page) {
  return page.evaluate(() => sessionStorage.getItem("convene.user_token"));
}
