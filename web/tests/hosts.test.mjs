// Handing a meeting over and the role passing on (DESIGN §12), in headless Chromium against
// the local stack: the host admits a member and makes them the host (after a confirmation);
// the member's page turns into the host's page (the lobby, the settings, "End meeting"), the
// former host's loses them; the new host admits someone who waits; when the new host leaves,
// the role passes back to the member seated longest, whose page turns into the host's again.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { env, launch, makeOrg, participant, person, shot, signIn } from "./support.mjs";

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

/** Opens the join link signed in as `user` and asks to join. */
async function joinAs(label, joinUrl, user) {
  const p = await open(label);
  await p.page.goto(joinUrl);
  await signIn(p.page, user);
  await p.page.getByRole("button", { name: "Join meeting" }).click();
  return p;
}

const endButton = (page) => page.getByRole("button", { name: "End meeting for everyone" });
const lobbyHeading = (page) => page.getByRole("heading", { name: /^Lobby \(/ });

test("the host hands the meeting over, and the role passes back when the new host leaves", async () => {
  const users = await makeOrg(["Hanna Host", "Max Member", "Wendy Waiter"]);
  const host = await open("host");
  await host.page.goto(`${env.gc()}/`);
  await signIn(host.page, users["Hanna Host"]);
  await host.page.getByLabel("Meeting name").fill("Hand-over");
  await host.page.getByRole("button", { name: "Create meeting" }).click();
  await host.page.waitForURL(/\/m\/[0-9A-Za-z]{12}$/);
  const joinUrl = host.page.url();
  await host.page.getByRole("button", { name: "Join meeting" }).click();
  await endButton(host.page).waitFor();

  const member = await joinAs("member", joinUrl, users["Max Member"]);
  await member.page.getByRole("heading", { name: "Waiting for the host to let you in" }).waitFor();
  await host.page.getByRole("button", { name: "Admit Max Member" }).click();
  await participant(member.page, "Hanna Host").waitFor();
  assert.equal(await endButton(member.page).count(), 0, "a guest has no host controls");

  // The hand-over (the test accepts the confirmation).
  await host.page.getByRole("button", { name: "Make Max Member the host" }).click();
  await endButton(member.page).waitFor();
  await lobbyHeading(member.page).waitFor();
  await member.page.getByRole("heading", { name: "Meeting settings" }).waitFor();
  await participant(member.page, "Max Member").getByText("host", { exact: true }).waitFor();
  await endButton(host.page).waitFor({ state: "detached" });
  await lobbyHeading(host.page).waitFor({ state: "detached" });
  await participant(host.page, "Max Member").getByText("host", { exact: true }).waitFor();
  assert.equal(await participant(host.page, "Hanna Host").getByText("host", { exact: true }).count(), 0);
  await shot(member.page, "handed-over", { key: true });

  // The new host's lobby works: someone waits, the new host lets them in.
  const waiter = await joinAs("waiter", joinUrl, users["Wendy Waiter"]);
  await waiter.page.getByRole("heading", { name: "Waiting for the host to let you in" }).waitFor();
  await member.page.getByRole("button", { name: "Admit Wendy Waiter" }).click();
  await participant(waiter.page, "Max Member").waitFor();
  assert.equal(
    await host.page.getByRole("button", { name: "Admit Wendy Waiter" }).count(),
    0,
    "the former host no longer sees the lobby",
  );

  // The new host leaves: the role passes to the member seated longest, Hanna.
  await member.page.getByRole("button", { name: "Leave", exact: true }).click();
  await member.page.getByRole("heading", { name: "You left the meeting" }).waitFor();
  await endButton(host.page).waitFor();
  await lobbyHeading(host.page).waitFor();
  await participant(waiter.page, "Hanna Host").getByText("host", { exact: true }).waitFor();
  assert.equal(await endButton(waiter.page).count(), 0);

  for (const p of people) assert.deepEqual(p.record.errors, [], `${p.record.label}: no script errors`);
});
