// The product as people use it: headless Chromium against the local stack (scripts/web-tests.sh).
// A host creates a meeting and joins; a guest whose fake microphone plays a steady tone opens
// the join_url, checks the microphone and waits; the host admits them; both see each other and
// the guest becomes the active speaker on both pages; a second guest is rejected; a user of
// another org sees "not found"; a reload rejoins; the host ends the meeting and every page says
// so. Then: no inline script, no token in any URL or log, no request to a foreign host.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import {
  assertLabelled,
  env,
  launch,
  makeOrg,
  participant,
  person,
  shot,
  signIn,
  signInByKeyboard,
  tokenOf,
  toneWav,
} from "./support.mjs";

let quietBrowser;
let talkingBrowser;
const people = [];

before(async () => {
  quietBrowser = await launch(null);
  talkingBrowser = await launch(toneWav());
});

after(async () => {
  for (const p of people) await p.context.close().catch(() => {});
  await quietBrowser?.close();
  await talkingBrowser?.close();
});

async function open(browser, label, options) {
  const p = await person(browser, label, options);
  people.push(p);
  return p;
}


test("host, guest, lobby, active speaker, reject, other org, reload, end", async () => {
  const users = await makeOrg(["Hana Host", "Gus Guest", "Rita Rejected"]);
  const [outsider] = Object.values(await makeOrg(["Otto Outsider"]));

  // The host signs in on the home page and creates a meeting with the secure defaults.
  const host = await open(quietBrowser, "host");
  await host.page.goto(`${env.gc()}/`);
  await shot(host.page, "sign-in", { key: true });
  await assertLabelled(host.page);
  await signInByKeyboard(host.page, users["Hana Host"]);
  await host.page.getByLabel("Meeting name").fill("Design review");
  await assert.doesNotReject(async () =>
    assert.equal(await host.page.getByLabel("Waiting room (the host admits people)").isChecked(), true),
  );
  await shot(host.page, "create-meeting", { key: true });
  await assertLabelled(host.page);
  await host.page.getByRole("button", { name: "Create meeting" }).click();
  await host.page.waitForURL(/\/m\/[0-9A-Za-z]{12}$/);
  const joinUrl = host.page.url();
  const code = joinUrl.split("/m/")[1];

  // The device check, then the room.
  await host.page.getByRole("heading", { name: "Check your microphone" }).waitFor();
  await host.page.getByRole("button", { name: "Join meeting" }).click();
  await participant(host.page, "Hana Host").waitFor();
  await shot(host.page, "host-in-room");

  // The guest opens the join_url, signs in, tests the microphone (a live level) and waits.
  const guest = await open(talkingBrowser, "guest");
  await guest.page.goto(joinUrl);
  await signIn(guest.page, users["Gus Guest"]);
  await guest.page.getByRole("button", { name: "Test microphone" }).click();
  await guest.page.getByText("Microphone ready").waitFor();
  await guest.page.waitForFunction(() => {
    const meter = document.querySelector('meter[aria-label="Microphone level"]');
    return meter && Number(meter.value) > -40;
  });
  await shot(guest.page, "device-check", { key: true });
  await assertLabelled(guest.page);
  await guest.page.getByRole("button", { name: "Join meeting" }).click();
  await guest.page.getByRole("heading", { name: "Waiting for the host to let you in" }).waitFor();
  await shot(guest.page, "guest-in-lobby", { key: true });

  // The host sees the guest in the lobby and admits them.
  const admit = host.page.getByRole("button", { name: "Admit Gus Guest" });
  await admit.waitFor();
  await shot(host.page, "host-sees-lobby", { key: true });
  await assertLabelled(host.page);
  await admit.click();

  // Both see each other; the guest, who keeps talking, becomes the active speaker everywhere.
  for (const p of [host, guest]) {
    await participant(p.page, "Hana Host").waitFor();
    await participant(p.page, "Gus Guest").waitFor();
  }
  // The host's "… is waiting in the lobby" notice goes with the admission (it used to stay up
  // with the lobby at 0).
  await host.page.waitForFunction(
    () => !(document.getElementById("status")?.textContent ?? "").includes("waiting in the lobby"),
    null,
    { timeout: 1_000 },
  );
  for (const p of [host, guest]) {
    await p.page.waitForSelector('li[data-speaking="true"]', { timeout: 15_000 });
    const speaking = participant(p.page, "Gus Guest");
    assert.equal(await speaking.getAttribute("data-speaking"), "true", `${p.record.label} sees the guest speaking`);
    assert.equal(await participant(p.page, "Hana Host").getAttribute("data-speaking"), "false");
  }
  await shot(host.page, "active-speaker", { key: true });
  await shot(guest.page, "guest-in-room");

  // A second guest is rejected and told so.
  // (On a phone-sized screen: the page must stay usable there.)
  const rejected = await open(quietBrowser, "rejected", { phone: true });
  await rejected.page.goto(joinUrl);
  await signIn(rejected.page, users["Rita Rejected"]);
  await rejected.page.getByRole("button", { name: "Join meeting" }).click();
  await rejected.page.getByRole("heading", { name: "Waiting for the host to let you in" }).waitFor();
  await shot(rejected.page, "phone-lobby", { key: true });
  const overflow = await rejected.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, "no sideways scrolling on a phone");
  await host.page.getByRole("button", { name: "Reject Rita Rejected" }).click();
  await rejected.page.getByRole("heading", { name: "You were not admitted" }).waitFor();
  await shot(rejected.page, "not-admitted");

  // A user of another org: the meeting does not exist for them.
  const stranger = await open(quietBrowser, "stranger");
  await stranger.page.goto(joinUrl);
  await signIn(stranger.page, outsider);
  await stranger.page.getByRole("heading", { name: "Meeting not found" }).waitFor();
  await shot(stranger.page, "not-found");

  // A reload rejoins: the guest is back in the room, without the device check.
  await guest.page.reload();
  await participant(guest.page, "Hana Host").waitFor();
  await participant(guest.page, "Gus Guest").waitFor();
  await participant(host.page, "Gus Guest").waitFor();

  // The host ends the meeting; every page shows it.
  await host.page.getByRole("button", { name: "End meeting for everyone" }).click();
  for (const p of [host, guest]) {
    await p.page.getByRole("heading", { name: "The meeting has ended" }).waitFor();
  }
  await shot(guest.page, "meeting-ended", { key: true });
  const again = await open(quietBrowser, "late");
  await again.page.goto(joinUrl);
  await signIn(again.page, users["Gus Guest"]);
  await again.page.getByRole("heading", { name: "The meeting has ended" }).or(
    again.page.getByRole("heading", { name: "Meeting not found" }),
  ).waitFor();

  // The host's history lists it.
  await host.page.goto(`${env.gc()}/`);
  await host.page.getByRole("cell", { name: "Design review" }).first().waitFor();
  await shot(host.page, "history", { key: true });

  // ---- what must never happen ------------------------------------------------------------
  const tokens = [];
  for (const p of people) {
    const token = await tokenOf(p.page);
    if (token) tokens.push(token);
    assert.deepEqual(p.record.errors, [], `${p.record.label}: no script errors`);
  }
  assert.ok(tokens.length >= 3, "the pages held user tokens");
  const meetingTokens = people.flatMap((p) => p.record.meetingTokens);
  assert.ok(meetingTokens.length >= 3, "the joins handed out meeting tokens");
  tokens.push(...meetingTokens);
  const allowed = new Set([new URL(env.gc()).host, new URL(env.ac()).host]);
  for (const p of people) {
    for (const url of [...p.record.requests, ...p.record.sockets]) {
      const parsed = new URL(url);
      if (parsed.protocol === "data:" || parsed.protocol === "blob:") continue;
      const isMc = parsed.protocol === "ws:" || parsed.protocol === "wss:";
      assert.ok(allowed.has(parsed.host) || isMc, `${p.record.label} requested a foreign host: ${url}`);
      assert.ok(!/token=|meeting_token|access_token/i.test(parsed.search), `${p.record.label}: token-like query in ${url}`);
      for (const token of tokens) assert.ok(!url.includes(token), `${p.record.label}: a token in ${url}`);
      // JWTs start with eyJ; none belongs in a URL.
      assert.ok(!/eyJ[A-Za-z0-9_-]{10,}/.test(url), `${p.record.label}: a JWT in ${url}`);
    }
    for (const line of p.record.console) {
      for (const token of tokens) assert.ok(!line.includes(token), `${p.record.label}: a token in the console`);
    }
  }
  const logs = process.env.CONVENE_LOG_DIR;
  if (logs && existsSync(logs)) {
    for (const file of readdirSync(logs)) {
      const text = readFileSync(join(logs, file), "utf8");
      for (const token of tokens) assert.ok(!text.includes(token), `a token in the log ${file}`);
    }
  }
  assert.match(code, /^[0-9A-Za-z]{12}$/);
});

test("the pages carry a strict policy and no inline script", async () => {
  for (const path of ["/", "/m/AAAAAAAAAAAA"]) {
    const response = await fetch(`${env.gc()}${path}`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(response.status, 200);
    const policy = response.headers.get("content-security-policy") ?? "";
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /script-src 'self'(;|$)/);
    assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|\*/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    const html = await response.text();
    for (const tag of html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/gi)) {
      assert.match(tag[0], /\ssrc="\/assets\/[a-z-]+\.js"/, `a script without src: ${tag[0]}`);
      assert.equal(tag[1].trim(), "", "a script with inline code");
    }
    assert.doesNotMatch(html, /\son[a-z]+=/i, "no inline event handler");
    assert.doesNotMatch(html, /__CONVENE_AC_URL__/, "GC filled in AC's URL");
  }
  const traversal = await fetch(`${env.gc()}/assets/..%2Findex.html`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(traversal.status, 404);
});
