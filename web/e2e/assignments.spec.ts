// Software assignments and device jobs in a real browser against a real server: assign a
// package to devices chosen in the list (one assignment each; assigning again is refused with
// the server's reason), see a group's own and inherited assignments and assign to the group,
// and find a job in a device's "Jobs" tab. The devices are enrolled through the API without a
// running agent, so nothing is ever installed; runs stay queued. Screenshots go to
// web/test-results/.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type BrowserContext, type Locator, type Page, request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_PASSWORD, Fixture, SCREENSHOTS } from "./harness";

const RUN = Math.random().toString(36).slice(2, 8);
const PACKAGE = `capstan-e2e-assign-${RUN}`;
const PARENT = `Fleet ${RUN}`;
const CHILD = `Fleet EU ${RUN}`;

let fx: Fixture;
let context: BrowserContext;
let page: Page;
let failed = false;
const devices: { id: string; hostname: string }[] = [];
let parentId = "";
let childId = "";
let jobId = "";

async function shot(name: string) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function expectVisible(locator: Locator, timeout = 10_000) {
  await locator.waitFor({ state: "visible", timeout });
}

function step(name: string, fn: () => Promise<void>) {
  it(name, async () => {
    if (failed) throw new Error("an earlier step failed");
    try {
      await fn();
    } catch (e) {
      failed = true;
      console.error(`page log:\n${fx?.pageLog()}\nserver log tail:\n${fx?.serverLog()}`);
      await page?.screenshot({ path: join(SCREENSHOTS, `failure-${name.replace(/\W+/g, "-")}.png`) }).catch(() => undefined);
      throw e;
    }
  });
}

/** Picks an option of the select labelled `label` inside `scope`, typing to search. */
async function pick(scope: Locator, label: string, search: string, option: string) {
  await scope.getByRole("textbox", { name: label }).or(scope.getByRole("combobox", { name: label })).first().fill(search);
  await page.getByRole("option", { name: option, exact: true }).click();
}

beforeAll(async () => {
  fx = await Fixture.start();
  context = await fx.browser.newContext({ baseURL: fx.url, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  fx.watch(page);
  const token = await fx.createEnrollmentToken("assign");
  // Enrolled as an agent would, but no agent runs: nothing is installed, runs stay queued.
  const agentApi = await request.newContext({ baseURL: fx.url, ignoreHTTPSErrors: true });
  for (const label of ["a", "b"]) {
    const hostname = `assign-${label}-${RUN}`;
    const resp = await agentApi.post("/agent/v1/enroll", {
      data: {
        token,
        identity: { identity_key: createHash("sha256").update(hostname).digest("hex"), source: "instance" },
        hostname,
        agent_version: "0.1.0",
        os_family: "linux",
        capabilities: [],
      },
    });
    if (!resp.ok()) throw new Error(`enroll ${hostname}: ${resp.status()} ${await resp.text()}`);
    devices.push({ id: ((await resp.json()) as { device_id: string }).device_id, hostname });
  }
  await agentApi.dispose();
  await fx.json("POST", "/api/v1/packages", { name: PACKAGE });
  await fx.json("POST", `/api/v1/packages/${PACKAGE}/versions`, {
    version: "1.0.0",
    spec: {
      installer_type: "package_manager",
      manager_package: { manager: "apt", name: PACKAGE },
      detection: { type: "package", manager: "dpkg", name: PACKAGE },
    },
  });
  parentId = (await fx.json<{ id: string }>("POST", "/api/v1/groups", { name: PARENT })).id;
  childId = (await fx.json<{ id: string }>("POST", "/api/v1/groups", { name: CHILD, parent_id: parentId })).id;
  await fx.json("POST", `/api/v1/groups/${childId}/members`, { device_ids: [devices[0]!.id] });
  await fx.json("POST", "/api/v1/assignments", {
    package: PACKAGE,
    target: { kind: "group", id: parentId },
    intent: "available",
  });
  jobId = (
    await fx.json<{ id: string }>("POST", "/api/v1/jobs", {
      spec: { action: { type: "command", argv: ["echo", RUN] } },
      targets: { devices: [devices[0]!.id] },
    })
  ).id;
});

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await fx?.close(failed);
});

describe("assignments and device jobs", () => {
  step("logs in", async () => {
    await page.goto("/login");
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel(/^Password/).fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await expectVisible(page.getByRole("heading", { name: "Dashboard" }));
  });

  step("assigns software to the selected devices, then is refused the same again", async () => {
    await page.goto("/devices");
    for (const d of devices) {
      await page.locator(`tr[data-device-id="${d.id}"]`).getByRole("checkbox", { name: `Select ${d.hostname}` }).check();
    }
    const bar = page.getByRole("region", { name: "Bulk actions" });
    await expectVisible(bar.getByText("2 devices selected"));
    for (const round of [1, 2]) {
      await bar.getByRole("button", { name: "Assign software…" }).click();
      const dialog = page.getByRole("dialog", { name: "Assign software to 2 devices" });
      await pick(dialog, "Package", PACKAGE, `${PACKAGE} (${PACKAGE})`);
      if (round === 1) await shot("40-bulk-assign-form");
      await dialog.getByRole("button", { name: "Assign", exact: true }).click();
      const summary = dialog.getByTestId("assign-summary");
      if (round === 1) {
        await expectVisible(summary.getByText("2 assignments created"));
      } else {
        await expectVisible(summary.getByText("0 assignments created, 2 refused"));
        await expectVisible(summary.getByText(devices[0]!.hostname, { exact: true }));
        await shot("41-bulk-assign-refused");
      }
      await dialog.getByRole("button", { name: "Close" }).click();
      await dialog.waitFor({ state: "detached", timeout: 5_000 });
    }
    const mine = await fx.json<{ target_id: string }[]>("GET", `/api/v1/assignments?package=${PACKAGE}`);
    for (const d of devices) {
      if (!mine.some((a) => a.target_id === d.id)) throw new Error(`no assignment for ${d.hostname}: ${JSON.stringify(mine)}`);
    }
  });

  step("shows a group's inherited assignment and assigns software to the group", async () => {
    await page.goto(`/groups/${childId}`);
    await page.getByRole("tab", { name: "Software" }).click();
    const table = page.getByRole("table", { name: "Group assignments" });
    const inherited = table.locator(`tr[data-assignment="${PACKAGE}"][data-inherited="true"]`);
    await expectVisible(inherited.getByRole("link", { name: PARENT }));
    await expectVisible(inherited.getByText("available"));
    await page.getByRole("button", { name: "Assign software…" }).click();
    const dialog = page.getByRole("dialog", { name: `Assign software to group ${CHILD}` });
    await pick(dialog, "Package", PACKAGE, `${PACKAGE} (${PACKAGE})`);
    await dialog.getByText("Uninstall", { exact: true }).click();
    await dialog.getByRole("button", { name: "Assign", exact: true }).click();
    await expectVisible(dialog.getByTestId("assign-summary").getByText("1 assignment created"));
    await dialog.getByRole("button", { name: "Close" }).click();
    const own = table.locator(`tr[data-assignment="${PACKAGE}"][data-inherited="false"]`);
    await expectVisible(own.getByText("this group"));
    await expectVisible(own.getByText("uninstall"));
    await shot("42-group-assignments");
  });

  step("removes the group's own assignment after confirmation; the inherited one stays", async () => {
    const table = page.getByRole("table", { name: "Group assignments" });
    const own = table.locator(`tr[data-assignment="${PACKAGE}"][data-inherited="false"]`);
    await own.getByRole("button", { name: `Remove the assignment of ${PACKAGE}` }).click();
    const dialog = page.getByRole("dialog", { name: "Remove this assignment?" });
    await expectVisible(dialog.getByText(`${PACKAGE} will no longer be kept off the members of ${CHILD}.`));
    await dialog.getByRole("button", { name: "Remove assignment" }).click();
    await own.waitFor({ state: "detached", timeout: 10_000 });
    await expectVisible(table.locator(`tr[data-assignment="${PACKAGE}"][data-inherited="true"]`));
    // Inherited rows are removed on their own group's page, so they offer no button here.
    expect(await table.getByRole("button", { name: /Remove the assignment/ }).count()).toBe(0);
    const left = await fx.json<{ target_id: string }[]>("GET", `/api/v1/assignments?group=${childId}`);
    expect(left).toEqual([]);
  });

  step("removes a device's own assignment from its page", async () => {
    const d = devices[1]!;
    await page.goto(`/devices/${d.id}?tab=assignments`);
    const table = page.getByRole("table", { name: "Assignments", exact: true });
    await table.getByRole("button", { name: `Remove the assignment of ${PACKAGE}` }).click();
    const dialog = page.getByRole("dialog", { name: "Remove this assignment?" });
    await expectVisible(dialog.getByText(`${PACKAGE} will be uninstalled from this device unless another assignment keeps it there.`));
    await shot("44-device-assignment-remove");
    await dialog.getByRole("button", { name: "Remove assignment" }).click();
    await dialog.waitFor({ state: "detached", timeout: 10_000 });
    const left = await fx.json<{ target_id: string }[]>("GET", `/api/v1/assignments?device=${d.id}`);
    expect(left.filter((a) => a.target_id === d.id)).toEqual([]);
    // The assignment inherited through the group (device 0 only) is not offered for removal here.
    await page.goto(`/devices/${devices[0]!.id}?tab=assignments`);
    const rows = page.getByRole("table", { name: "Assignments", exact: true }).locator("tbody tr");
    await expectVisible(rows.first());
    expect(await page.getByRole("button", { name: `Remove the assignment of ${PACKAGE}` }).count()).toBe(1);
  });

  step("lists the device's job in its Jobs tab, linked to the job", async () => {
    await page.goto(`/devices/${devices[0]!.id}`);
    await page.getByRole("tab", { name: "Jobs", exact: true }).click();
    await page.waitForURL(/tab=jobs/);
    const table = page.getByRole("table", { name: "Jobs on this device" });
    await expectVisible(table.getByText("queued"));
    await shot("43-device-jobs");
    await table.getByRole("link", { name: `echo ${RUN}` }).click();
    await page.waitForURL(new RegExp(`/jobs/${jobId}$`));
  });
});
