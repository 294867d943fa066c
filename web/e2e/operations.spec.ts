// The daily work of the console in a real browser against a real server and real agents:
// build a dynamic group with the rule builder (live count), run a library script on it and
// watch its output stream in, upload a .deb by drag and drop and review the pre-filled version,
// deploy it to the group and watch both devices reach "installed" without reloading, then find
// the install in a device's timeline and software assignments. Every agent works in a private
// dpkg root (DPKG_ROOT), so nothing is installed on this machine; each step checks the dpkg
// database too. Screenshots of every page go to web/test-results/.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_PASSWORD, type Agent, Fixture, SCREENSHOTS, waitFor } from "./harness";

const RUN = Math.random().toString(36).slice(2, 8);
const TAG = `e2e-ops-${RUN}`;
const GROUP = `Ops ${RUN}`;
const PACKAGE = `capstan-e2e-web-${RUN}`;
const VERSION = "1.0.0";

let fx: Fixture;
let context: BrowserContext;
let page: Page;
let failed = false;
const pageErrors: string[] = [];
const agents: { agent: Agent; root: string; id: string }[] = [];

function nav(name: string) {
  return page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name, exact: true });
}

async function shot(name: string) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function expectVisible(locator: Locator, timeout = 10_000) {
  await locator.waitFor({ state: "visible", timeout });
}

/** Opens a Mantine select and picks one of its options. */
async function pick(select: Locator, option: string) {
  await select.click();
  await page.getByRole("option", { name: option, exact: true }).click();
}

function step(name: string, fn: () => Promise<void>, timeout?: number) {
  it(
    name,
    async () => {
      if (failed) throw new Error("an earlier step failed");
      try {
        await fn();
      } catch (e) {
        failed = true;
        console.error(`page log:\n${fx?.pageLog()}\nserver log tail:\n${fx?.serverLog()}`);
        for (const a of agents) console.error(`agent ${a.id} log tail:\n${a.agent.log()}`);
        await page?.screenshot({ path: join(SCREENSHOTS, `failure-${name.replace(/\W+/g, "-")}.png`) }).catch(() => undefined);
        throw e;
      }
    },
    timeout,
  );
}

/** An empty dpkg database under `root`, for an agent's DPKG_ROOT. */
function dpkgRoot(root: string) {
  for (const d of ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"]) mkdirSync(join(root, d), { recursive: true });
  for (const f of ["var/lib/dpkg/status", "var/lib/dpkg/available"]) writeFileSync(join(root, f), "");
}

/** The version of `name` installed in a dpkg root, if any. */
function installed(root: string, name: string): string | undefined {
  try {
    const out = execFileSync("dpkg-query", ["-W", "-f=${db:Status-Abbrev}\t${Version}", name], {
      env: { ...process.env, DPKG_ROOT: root },
      stdio: ["ignore", "pipe", "ignore"],
    }).toString();
    const [status, version] = out.split("\t");
    return status?.trim() === "ii" ? version : undefined;
  } catch {
    return undefined;
  }
}

/** A .deb built with dpkg-deb that installs one file. */
function buildDeb(dir: string): string {
  const root = join(dir, "pkg");
  mkdirSync(join(root, "DEBIAN"), { recursive: true });
  mkdirSync(join(root, "usr/share", PACKAGE), { recursive: true });
  writeFileSync(join(root, "usr/share", PACKAGE, "version.txt"), `${VERSION}\n`);
  writeFileSync(
    join(root, "DEBIAN/control"),
    `Package: ${PACKAGE}\nVersion: ${VERSION}\nArchitecture: all\nMaintainer: Capstan e2e <e2e@capstan.invalid>\nDescription: Capstan web console e2e package\n`,
  );
  const deb = join(dir, `${PACKAGE}_${VERSION}_all.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "--build", root, deb], { stdio: "ignore" });
  return deb;
}

beforeAll(async () => {
  fx = await Fixture.start();
  context = await fx.browser.newContext({ baseURL: fx.url, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  fx.watch(page);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  const token = (
    await fx.json<{ token: string }>("POST", "/api/v1/enrollment-tokens", { name: "ops", default_tags: [TAG] })
  ).token;
  for (const label of ["a", "b"]) {
    const root = join(fx.tempDir(`capstan-web-e2e-dpkg-${label}-`), "root");
    dpkgRoot(root);
    const agent = await fx.startAgent(token, { env: { DPKG_ROOT: root } });
    agents.push({ agent, root, id: agent.deviceId() });
  }
  await fx.json("POST", "/api/v1/scripts", {
    name: `greet-${RUN}`,
    interpreter: "sh",
    description: "Says hello, waits, says done",
    body: 'echo "hello $CAPSTAN_PARAM_WHO"\nsleep 2\necho "done $CAPSTAN_PARAM_WHO"\n',
    parameters: [{ name: "who", type: "string", required: true, description: "whom to greet" }],
  });
});

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await fx?.close(failed);
});

describe("console operations", () => {
  step("logs in", async () => {
    await page.goto("/login");
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel(/^Password/).fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await expectVisible(page.getByRole("heading", { name: "Dashboard" }));
    await expectVisible(page.getByTestId("live-state").getByText("live"));
  });

  let groupId = "";
  step("builds a dynamic group with the rule builder and sees the live count", async () => {
    await nav("Groups").click();
    // The predefined groups are there from the start.
    await expectVisible(page.getByRole("table", { name: "Groups" }).getByText("All devices"));
    await page.getByRole("button", { name: "Create group" }).click();
    const form = page.getByRole("form", { name: "Create group" });
    await form.getByLabel("Name").fill(GROUP);
    await form.getByText("Dynamic: members from a rule").click();
    await pick(form.getByRole("combobox", { name: "condition 1: kind" }), "Tag");
    await form.getByRole("textbox", { name: "condition 1: tag" }).fill(TAG);
    await expectVisible(form.getByTestId("preview-count").getByText("2 matching devices"), 20_000);
    // AND with a nested block whose only condition matches nothing: no device; removing the block
    // brings the count back.
    await form.getByRole("button", { name: "Add OR block" }).click();
    await pick(form.getByRole("combobox", { name: "condition 2.1: kind" }), "Tag");
    await form.getByRole("textbox", { name: "condition 2.1: tag" }).fill("no-such-tag");
    await expectVisible(form.getByTestId("preview-count").getByText("0 matching devices"), 20_000);
    await form.getByRole("button", { name: "Remove block 2" }).click();
    await expectVisible(form.getByTestId("preview-count").getByText("2 matching devices"), 20_000);
    await shot("20-group-rule-builder");
    await form.getByRole("button", { name: "Create group" }).click();
    await page.waitForURL(/\/groups\/[^/]+$/);
    groupId = decodeURIComponent(page.url().split("/groups/")[1] ?? "");
    await expect(page.getByTestId("group-name").textContent()).resolves.toBe(GROUP);
    for (const a of agents) await expectVisible(page.locator(`tr[data-device-id="${a.id}"]`), 30_000);
    await shot("21-group-members");
    await page.getByRole("tab", { name: "Why does a device match?" }).click();
    const device = await fx.json<{ hostname: string }>("GET", `/api/v1/devices/${agents[0]!.id}`);
    await page.getByRole("combobox", { name: "Device to explain" }).fill(device.hostname);
    await page.getByRole("option", { name: device.hostname }).first().click();
    await expectVisible(page.getByTestId("explanation").getByText("Member of this group"));
    await shot("22-group-explain");
    await nav("Groups").click();
    const row = page.locator(`tr[data-group-id="${groupId}"]`);
    await expectVisible(row.getByText("dynamic"));
    await expectVisible(row.getByRole("cell", { name: "2", exact: true }).first());
    await shot("23-groups");
  });

  step("runs a library script on the group and watches its output arrive live", async () => {
    await nav("Jobs").click();
    await page.getByRole("button", { name: "New job" }).click();
    await page.getByText("Script library").click();
    await pick(page.getByRole("combobox", { name: "Script" }), `greet-${RUN} (v1)`);
    await page.getByRole("textbox", { name: /^who/ }).fill("console");
    await page.getByRole("button", { name: "Next" }).click();
    await pick(page.getByRole("combobox", { name: "Groups" }), `${GROUP} (2)`);
    await page.keyboard.press("Escape");
    await page.getByRole("button", { name: "Next" }).click();
    await shot("24-job-wizard");
    await page.getByRole("button", { name: "Run job" }).click();
    await page.waitForURL(/\/jobs\/[^/]+$/);
    const runs = page.getByRole("table", { name: "Runs" });
    for (const a of agents) await expectVisible(runs.locator(`tr[data-run-device="${a.id}"]`));
    await runs.locator(`tr[data-run-device="${agents[0]!.id}"]`).getByRole("button", { name: /^Output of/ }).click();
    const output = page.getByTestId("run-output");
    // The first line is there while the script still sleeps: it streamed in.
    await expectVisible(output.getByText("hello console"), 30_000);
    const stateWhileFirstLine = await page.getByTestId("job-state").textContent();
    await expectVisible(output.getByText("done console"), 30_000);
    await expectVisible(page.getByTestId("job-state").getByText("succeeded"), 30_000);
    expect(["queued", "running", "succeeded"]).toContain(stateWhileFirstLine);
    await shot("25-job-live-output");
    await nav("Jobs").click();
    await expectVisible(page.getByRole("table", { name: "Jobs" }).getByText("succeeded").first());
    await shot("26-jobs");
  });

  step("uploads a .deb by drag and drop and creates the pre-filled version", async () => {
    const deb = buildDeb(fx.tempDir("capstan-web-e2e-deb-"));
    await nav("Software").click();
    await expectVisible(page.getByText("The catalogue is empty"));
    await page.getByRole("button", { name: "Upload package" }).click();
    const bytes = readFileSync(deb).toString("base64");
    const name = deb.split("/").pop() ?? "package.deb";
    const dataTransfer = await page.evaluateHandle(
      ([b64, fileName]) => {
        const raw = atob(b64 ?? "");
        const buf = new Uint8Array(raw.length);
        for (let i = 0; i < raw.length; i++) buf[i] = raw.charCodeAt(i);
        const dt = new DataTransfer();
        dt.items.add(new File([buf], fileName ?? "package.deb", { type: "application/vnd.debian.binary-package" }));
        return dt;
      },
      [bytes, name],
    );
    await page.getByTestId("dropzone").dispatchEvent("dragover", { dataTransfer });
    await page.getByTestId("dropzone").dispatchEvent("drop", { dataTransfer });
    const form = page.getByRole("form", { name: "New version" });
    await expectVisible(form, 30_000);
    expect(await form.getByRole("textbox", { name: /^Package/ }).inputValue()).toBe(PACKAGE);
    expect(await form.getByRole("textbox", { name: /^Version/ }).inputValue()).toBe(VERSION);
    await expectVisible(form.getByTestId("detection").getByText(`dpkg package “${PACKAGE}” is installed with version ≥ ${VERSION}`));
    await shot("27-upload-review");
    await form.getByRole("button", { name: "Create version" }).click();
    await page.waitForURL(new RegExp(`/software/${PACKAGE}$`));
    await expectVisible(page.getByRole("button", { name: new RegExp(`^${VERSION}`) }).first());
    await expectVisible(page.getByTestId("detection").first());
    await shot("28-package-detail");
    await nav("Software").click();
    await expectVisible(page.getByRole("table", { name: "Packages" }).getByRole("link", { name: PACKAGE }));
    await shot("29-software");
  });

  let deploymentId = "";
  step(
    "deploys it to the group and watches both devices reach installed",
    async () => {
      await nav("Deployments").click();
      await page.getByRole("button", { name: "New deployment" }).click();
      await page.getByRole("textbox", { name: /^Deployment name/ }).fill(`Roll out ${RUN}`);
      await page.getByRole("combobox", { name: "Package" }).fill(PACKAGE.slice(0, 12));
      await page.getByRole("option", { name: new RegExp(PACKAGE) }).click();
      await page.getByRole("button", { name: "Next" }).click();
      await pick(page.getByRole("combobox", { name: "Target group" }), `${GROUP} (2)`);
      await page.getByRole("button", { name: "Next" }).click();
      await page.getByText("Ignore maintenance windows", { exact: true }).click();
      await shot("30-deployment-wizard");
      await page.getByRole("button", { name: "Create deployment" }).click();
      await page.waitForURL(/\/deployments\/[^/]+$/);
      deploymentId = decodeURIComponent(page.url().split("/deployments/")[1] ?? "");
      // Status badges move to "installed" through the live event stream, without a reload.
      await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
      for (const a of agents) {
        await expectVisible(page.locator(`tr[data-device-id="${a.id}"] [data-status="installed"]`), 120_000);
      }
      expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
      await expectVisible(page.getByTestId("deployment-counts").getByText("2 installed"));
      for (const a of agents) {
        const v = await waitFor(`${PACKAGE} in ${a.root}`, () => installed(a.root, PACKAGE), 10_000);
        expect(v).toBe(VERSION);
      }
      await shot("31-deployment-detail");
      await nav("Deployments").click();
      await expectVisible(page.locator(`tr[data-deployment-id="${deploymentId}"]`).getByText("100 %"));
      await shot("32-deployments");
    },
    180_000,
  );

  step("sees the install in the device timeline and its software assignments", async () => {
    const id = agents[0]!.id;
    await page.goto(`/devices/${id}?tab=timeline`);
    await expectVisible(page.getByRole("table", { name: "Timeline" }).getByText(`software installed: ${PACKAGE} ${VERSION}`), 20_000);
    await shot("33-device-timeline-install");
    await page.getByRole("tab", { name: "Software assignments" }).click();
    const row = page.getByRole("table", { name: "Software assignments" }).locator(`tr[data-package="${PACKAGE}"]`);
    await expectVisible(row.locator('[data-status="installed"]'));
    await shot("34-device-assignments");
  });

  step("deletes the deployment after confirmation, and the package leaves the devices", async () => {
    await page.goto(`/deployments/${deploymentId}`);
    await page.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete deployment?" });
    await expectVisible(dialog.getByText("Devices uninstall what this deployment installed."));
    await dialog.getByRole("button", { name: "Delete" }).click();
    await page.waitForURL(/\/deployments$/);
    for (const a of agents) await waitFor(`${PACKAGE} removed from ${a.root}`, () => (installed(a.root, PACKAGE) ? undefined : true), 90_000);
  }, 120_000);

  step("ran without script errors", async () => {
    expect(pageErrors).toEqual([]);
  });
});
