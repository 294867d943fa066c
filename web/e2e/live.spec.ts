// Live view in a real browser against a real server and agent: a group's member list follows
// changes made elsewhere without a reload; after the server restarts, the page reconnects by
// itself and shows what changed meanwhile; a device that stops answering turns "offline" and,
// once its agent is back, "online" again — all pushed by the server's event stream (the
// member list does not poll). Screenshots go to web/test-results/.
import { join } from "node:path";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, it } from "vitest";
import { ADMIN_PASSWORD, type Agent, Fixture, SCREENSHOTS, waitFor } from "./harness";

const RUN = Math.random().toString(36).slice(2, 8);
const GROUP = `Live ${RUN}`;

let fx: Fixture;
let context: BrowserContext;
let page: Page;
let agent: Agent;
let deviceId = "";
let groupId = "";
let failed = false;

async function shot(name: string) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function expectVisible(locator: Locator, timeout = 10_000) {
  await locator.waitFor({ state: "visible", timeout });
}

function step(name: string, fn: () => Promise<void>, timeout = 60_000) {
  it(
    name,
    async () => {
      if (failed) throw new Error("an earlier step failed");
      try {
        await fn();
      } catch (e) {
        failed = true;
        console.error(`page log:\n${fx?.pageLog()}\nserver log tail:\n${fx?.serverLog()}\nagent log tail:\n${agent?.log()}`);
        await page?.screenshot({ path: join(SCREENSHOTS, `failure-${name.replace(/\W+/g, "-")}.png`) }).catch(() => undefined);
        throw e;
      }
    },
    timeout,
  );
}

function memberRow(): Locator {
  return page.getByRole("table", { name: "Members" }).locator(`tr[data-device-id="${deviceId}"]`);
}

beforeAll(async () => {
  // A short check-in interval, so that "offline" (three silent intervals) comes within seconds.
  fx = await Fixture.start({ args: ["--checkin-interval-secs", "5"] });
  context = await fx.browser.newContext({ baseURL: fx.url, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  fx.watch(page);
  agent = await fx.startAgent(await fx.createEnrollmentToken("live"));
  deviceId = agent.deviceId();
  await waitFor("the agent's first check-in", async () => {
    const d = await fx.json<{ online: boolean }>("GET", `/api/v1/devices/${deviceId}`);
    return d.online ? d : undefined;
  });
  groupId = (await fx.json<{ id: string }>("POST", "/api/v1/groups", { name: GROUP })).id;
}, 90_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await fx?.close(failed);
});

describe("live view", () => {
  step("logs in", async () => {
    await page.goto("/login");
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel(/^Password/).fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await expectVisible(page.getByRole("heading", { name: "Dashboard" }));
  });

  step("shows a member added elsewhere without a reload", async () => {
    await page.goto(`/groups/${groupId}`);
    await expectVisible(page.getByText("No members"));
    await expectVisible(page.getByTestId("live-state").getByText("live"));
    await fx.json("POST", `/api/v1/groups/${groupId}/members`, { device_ids: [deviceId] });
    await expectVisible(memberRow().getByText("online"));
  });

  step("reconnects after a server restart and shows what changed meanwhile", async () => {
    await fx.restartServer();
    // Changed before the page has reconnected (its event stream retries every few seconds).
    await fx.json("POST", `/api/v1/groups/${groupId}/members/remove`, { device_ids: [deviceId] });
    await expectVisible(page.getByText("No members"), 30_000);
    await expectVisible(page.getByTestId("live-state").getByText("live"), 30_000);
    await fx.json("POST", `/api/v1/groups/${groupId}/members`, { device_ids: [deviceId] });
    await expectVisible(memberRow().getByText("online"));
    await shot("50-live-after-restart");
  });

  step(
    "turns a silent device offline and online again when its agent is back",
    async () => {
      await agent.kill();
      // Three 5-second intervals of silence (after the restart the server also waits three
      // intervals before it announces anyone offline), then the next presence pass.
      await expectVisible(memberRow().getByText("offline"), 60_000);
      await shot("51-live-device-offline");
      agent.restart();
      await expectVisible(memberRow().getByText("online"), 30_000);
    },
    120_000,
  );
});
