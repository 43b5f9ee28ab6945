// A person without an account (DESIGN §12), in headless Chromium against the local stack: the
// host creates a meeting that takes guests; the guest opens the join_url without signing in,
// gives a name, checks the microphone while waiting, is admitted, is marked as a guest on both
// pages, reloads back into the room, and is removed by the host. A meeting that does not take
// guests says so.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { assertLabelled, env, launch, makeOrg, participant, person, shot, signIn } from "./support.mjs";

let browser;
const people = [];

before(async () => {
  browser = await launch(null);
});

after(async () => {
  for (const p of people) await p.context.close().catch(() => {});
  await browser?.close();
});

async function open(label) {
  const p = await person(browser, label);
  people.push(p);
  return p;
}

test("a guest without an account joins by the link, is admitted, reloads and is removed", async () => {
  const users = await makeOrg(["Hilde Host"]);
  const host = await open("host");
  await host.page.goto(`${env.gc()}/`);
  await signIn(host.page, users["Hilde Host"]);
  await host.page.getByLabel("Meeting name").fill("Open day");
  // Ticking "Guests without an account" unticks "Only signed-in people": the two must agree.
  await host.page.getByLabel("Guests without an account").check();
  assert.equal(await host.page.getByLabel("Only signed-in people").isChecked(), false);
  await host.page.getByRole("button", { name: "Create meeting" }).click();
  await host.page.waitForURL(/\/m\/[0-9A-Za-z]{12}$/);
  const joinUrl = host.page.url();
  await host.page.getByRole("button", { name: "Join meeting" }).click();
  await participant(host.page, "Hilde Host").waitFor();

  // The guest: no account, a name, then the device check while the host is told they wait.
  const guest = await open("guest");
  await guest.page.goto(joinUrl);
  await guest.page.getByRole("heading", { name: "Join the meeting" }).waitFor();
  await assertLabelled(guest.page);
  await shot(guest.page, "guest-join", { key: true });
  await guest.page.getByLabel("Your name").fill("Vera Visitor");
  await guest.page.getByRole("button", { name: "Join as a guest" }).click();
  await guest.page.getByRole("heading", { name: "Check your microphone" }).waitFor();
  const admit = host.page.getByRole("button", { name: "Admit Vera Visitor" });
  await admit.waitFor();
  await host.page
    .getByRole("list", { name: "Waiting in the lobby" })
    .getByText("guest without an account")
    .waitFor();
  await guest.page.getByRole("button", { name: "Join meeting" }).click();
  await guest.page.getByRole("heading", { name: "Waiting for the host to let you in" }).waitFor();
  await admit.click();

  // In the room, marked as a guest on both pages.
  for (const p of [host, guest]) {
    await participant(p.page, "Hilde Host").waitFor();
    await participant(p.page, "Vera Visitor").getByText("guest without an account").waitFor();
  }
  await shot(host.page, "host-sees-guest");

  // A reload: the same guest, back in the room without asking again.
  await guest.page.reload();
  await participant(guest.page, "Vera Visitor").waitFor();
  await participant(guest.page, "Hilde Host").waitFor();

  // The host removes the guest (after a confirmation, which the test accepts): the guest's
  // page says so at once, and the host's list no longer has them.
  await host.page.getByRole("button", { name: "Remove Vera Visitor" }).click();
  await guest.page.getByRole("heading", { name: "You were removed from this meeting" }).waitFor();
  await shot(guest.page, "removed", { key: true });
  await participant(host.page, "Vera Visitor").waitFor({ state: "detached" });
  // Their page forgot them: a reload offers the guest form again, and joining is refused.
  await guest.page.reload();
  await guest.page.getByRole("heading", { name: "Join the meeting" }).waitFor();

  for (const p of people) assert.deepEqual(p.record.errors, [], `${p.record.label}: no script errors`);
  // The guest token never appears in a URL.
  for (const url of [...guest.record.requests, ...guest.record.sockets]) {
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}/.test(url), `a JWT in ${url}`);
  }
});

test("a meeting that does not take guests says so to a person without an account", async () => {
  const users = await makeOrg(["Mona Member"]);
  const host = await open("members-host");
  await host.page.goto(`${env.gc()}/`);
  await signIn(host.page, users["Mona Member"]);
  await host.page.getByLabel("Meeting name").fill("Members only");
  await host.page.getByRole("button", { name: "Create meeting" }).click();
  await host.page.waitForURL(/\/m\/[0-9A-Za-z]{12}$/);
  const joinUrl = host.page.url();

  const visitor = await open("visitor");
  await visitor.page.goto(joinUrl);
  await visitor.page.getByLabel("Your name").fill("Walter Walk-in");
  await visitor.page.getByRole("button", { name: "Join as a guest" }).click();
  await visitor.page.getByText("does not take guests without an account").waitFor();
  // The sign-in form is still there for members.
  await visitor.page.getByRole("button", { name: "Sign in" }).waitFor();
});
