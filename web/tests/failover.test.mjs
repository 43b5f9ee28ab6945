// A meeting outlives its controller: with two meeting controllers, the one that holds the room
// is killed (SIGKILL) while a host and a guest are in it. Both pages lose their socket, ask GC
// again, follow the meeting to the other controller (a new signaling_url) within the
// reconnect grace, and show everyone again. Needs the local stack of scripts/stack-tests.sh
// (CONVENE_MC_URLS with two controllers, CONVENE_PID_DIR); elsewhere it is skipped.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { env, launch, makeOrg, participant, person, shot, signIn } from "./support.mjs";

const controllers = (process.env.CONVENE_MC_URLS ?? "").split(",").filter(Boolean);
const pidDir = process.env.CONVENE_PID_DIR;
const skip =
  controllers.length < 2 || !pidDir
    ? "needs the local stack with two controllers (CONVENE_MC_URLS, CONVENE_PID_DIR): scripts/stack-tests.sh"
    : false;

let browser;
after(async () => browser?.close());


/** The pid file dev.sh writes for the controller at `port` (the order of CONVENE_MC_URLS). */
function pidOf(port) {
  const index = controllers.findIndex((url) => new URL(url).port === port);
  assert.ok(index >= 0, `no controller listens on ${port}: ${controllers.join(", ")}`);
  const file = index === 0 ? "mc-service.pid" : `mc-service-${index + 1}.pid`;
  return Number(readFileSync(join(pidDir, file), "utf8").trim());
}

test("the pages follow a meeting to another controller when its controller dies", { skip }, async () => {
  const users = await makeOrg(["Fay Host", "Finn Guest"]);
  browser = await launch(null);

  const host = await person(browser, "host");
  await host.page.goto(`${env.gc()}/`);
  await signIn(host.page, users["Fay Host"]);
  await host.page.getByLabel("Meeting name").fill("Failover drill");
  // No waiting room: the guest is seated at once.
  await host.page.getByLabel("Waiting room (the host admits people)").uncheck();
  await host.page.getByRole("button", { name: "Create meeting" }).click();
  await host.page.waitForURL(/\/m\/[0-9A-Za-z]{12}$/);
  const joinUrl = host.page.url();
  await host.page.getByRole("button", { name: "Join meeting" }).click();
  await participant(host.page, "Fay Host").waitFor();

  const guest = await person(browser, "guest");
  await guest.page.goto(joinUrl);
  await signIn(guest.page, users["Finn Guest"]);
  await guest.page.getByRole("button", { name: "Join meeting" }).click();
  for (const p of [host, guest]) await participant(p.page, "Finn Guest").waitFor();

  const before = new URL(host.record.sockets.at(-1));
  process.kill(pidOf(before.port), "SIGKILL");

  // Each page reconnects through a fresh join, to the controller GC moves the meeting to.
  const deadline = Date.now() + 40_000;
  for (const p of [host, guest]) {
    while (new URL(p.record.sockets.at(-1)).port === before.port) {
      assert.ok(Date.now() < deadline, `${p.record.label} never opened a socket to another controller`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  for (const p of [host, guest]) {
    await p.page.getByText("Connected", { exact: true }).waitFor({ timeout: 20_000 });
    await participant(p.page, "Fay Host").waitFor();
    await participant(p.page, "Finn Guest").waitFor();
    assert.deepEqual(p.record.errors, [], `${p.record.label}: no script errors`);
  }
  await shot(guest.page, "after-failover");

  await host.page.getByRole("button", { name: "End meeting for everyone" }).click();
  for (const p of [host, guest]) {
    await p.page.getByRole("heading", { name: "The meeting has ended" }).waitFor();
  }
  for (const p of [host, guest]) await p.context.close();
});
