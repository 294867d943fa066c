// The console in a real browser against a real server and real agents: log in, create an
// enrollment token, watch a newly enrolled agent appear without reloading, open its detail,
// see hostile agent data rendered as text, revoke a token, check CSRF, log out. Screenshots of
// every page go to web/test-results/ for a reviewer.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_PASSWORD, Fixture, SCREENSHOTS, waitFor } from "./harness";

const HOSTILE = "<img src=x onerror=alert(1)>";
const HOSTILE_PACKAGE = "<script>alert(2)</script>";
const HOSTILE_PUBLISHER = "<img src=y onerror=alert(3)>";

let fx: Fixture;
let context: BrowserContext;
let page: Page;
let failed = false;
const dialogs: string[] = [];
const pageErrors: string[] = [];
const cspViolations: string[] = [];

/** A section link of the navigation bar. */
function nav(name: string) {
  return page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name, exact: true });
}

async function shot(name: string) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Fails the suite's later tests fast and keeps the processes' data when one fails. */
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

beforeAll(async () => {
  fx = await Fixture.start();
  context = await fx.browser.newContext({
    baseURL: fx.url,
    viewport: { width: 1280, height: 800 },
    permissions: ["clipboard-read", "clipboard-write"],
  });
  page = await context.newPage();
  fx.watch(page);
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) cspViolations.push(m.text());
  });
});

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await fx?.close(failed);
});

describe("web console", () => {
  step("redirects to the login page and refuses a wrong password", async () => {
    await page.goto("/devices");
    await page.waitForURL(/\/login\?redirect=%2Fdevices/);
    await expectVisible(page.getByRole("heading", { name: "Capstan" }));
    await shot("01-login");
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel(/^Password/).fill("not-the-password");
    await page.getByRole("button", { name: "Log in" }).click();
    await expectVisible(page.getByText("Wrong username or password."));
  });

  step("logs in and lands where it was going", async () => {
    await page.getByLabel(/^Password/).fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(/\/devices$/);
    await expectVisible(page.getByRole("heading", { name: "Devices" }));
    await expectVisible(page.getByText("No devices enrolled yet"));
    await expectVisible(page.getByTestId("current-user").getByText("admin"));
  });

  step("shows the dashboard", async () => {
    await nav("Dashboard").click();
    await expectVisible(page.getByRole("heading", { name: "Dashboard" }));
    await expectVisible(page.getByText("No devices yet"));
    await shot("02-dashboard-empty");
  });

  let token = "";
  step("creates an enrollment token with a ready install command", async () => {
    await nav("Enrollment").click();
    await expectVisible(page.getByText("No enrollment tokens yet"));
    await page.getByRole("button", { name: "Create token" }).click();
    const form = page.getByRole("form", { name: "Create enrollment token" });
    await form.getByRole("button", { name: "Create token" }).click();
    await expectVisible(form.getByText("Give the token a name"));
    await form.getByLabel("Name").fill("e2e lab");
    await form.getByLabel("Default tags").fill("lab e2e");
    await form.getByRole("button", { name: "Create token" }).click();
    const command = page.getByLabel("Install command");
    await expectVisible(command);
    const commandText = (await command.textContent()) ?? "";
    token = ((await page.getByLabel("Token", { exact: true }).textContent()) ?? "").trim();
    expect(token).toMatch(/^cape_/);
    expect(commandText).toContain(token);
    expect(commandText).toContain(fx.url);
    await page.getByRole("button", { name: "Copy install command" }).click();
    await expectVisible(page.getByRole("button", { name: "Copied" }));
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(commandText);
    await shot("03-enrollment-created");
    await page.getByRole("button", { name: "Done" }).click();
    const row = page.getByRole("row", { name: /e2e lab/ });
    await expectVisible(row.getByText("active"));
    await shot("04-enrollment-list");
  });

  let deviceId = "";
  let hostname = "";
  step("shows a newly enrolled agent in the device list without a reload", async () => {
    await nav("Devices").click();
    await expectVisible(page.getByText("No devices enrolled yet"));
    // A marker that a full page load would wipe out.
    await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
    const agent = await fx.startAgent(token);
    deviceId = agent.deviceId();
    const device = await fx.json<{ hostname: string }>("GET", `/api/v1/devices/${deviceId}`);
    hostname = device.hostname;
    const row = page.locator(`tr[data-device-id="${deviceId}"]`);
    await expectVisible(row, 30_000);
    await expectVisible(row.getByRole("link", { name: hostname, exact: true }));
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
    await shot("05-devices");
  });

  step("filters the device list on the server", async () => {
    await page.getByLabel("Tag").fill("no-such-tag");
    await expectVisible(page.getByText("No device matches these filters"));
    await page.waitForURL(/tag=no-such-tag/);
    await page.getByRole("button", { name: "Clear filters" }).click();
    await page.getByLabel("Tag").fill("lab");
    await expectVisible(page.locator(`tr[data-device-id="${deviceId}"]`));
    await page.getByRole("button", { name: "Clear filters" }).click();
  });

  step("tags the selected device in bulk, which makes it join a dynamic group", async () => {
    const group = await fx.json<{ id: string }>("POST", "/api/v1/groups", {
      name: "bulk-tagged",
      kind: "dynamic",
      rule: { tag: "bulk-e2e" },
    });
    const members = async () =>
      (await fx.json<{ items: { id: string }[] }>("GET", `/api/v1/groups/${group.id}/members`)).items.map((d) => d.id);
    expect(await members()).toEqual([]);
    const row = page.locator(`tr[data-device-id="${deviceId}"]`);
    await row.getByRole("checkbox", { name: `Select ${hostname}` }).check();
    const bar = page.getByRole("region", { name: "Bulk actions" });
    await expectVisible(bar.getByText("1 device selected"));
    await bar.getByRole("button", { name: "Add tags…" }).click();
    const dialog = page.getByRole("dialog", { name: "Add tags: 1 device" });
    await expectVisible(dialog.getByText(hostname, { exact: false }));
    await dialog.getByLabel("Tags").fill("bulk-e2e");
    await dialog.getByLabel("Tags").press("Enter");
    await shot("05b-devices-bulk-tags");
    await dialog.getByRole("button", { name: "Add tags" }).click();
    await expectVisible(page.getByText("Tag bulk-e2e added to 1 device."));
    await expectVisible(row.getByText("bulk-e2e", { exact: true }));
    expect(await waitFor("the device in the dynamic group", async () => ((await members()).includes(deviceId) ? true : undefined))).toBe(true);
    await bar.getByRole("button", { name: "Clear selection" }).click();
    await bar.waitFor({ state: "detached", timeout: 5_000 });
  });

  step("opens the device detail with its hostname, OS and tabs", async () => {
    // Wait until the first inventory is in, so every tab has something to show.
    const detail = await waitFor("the agent's first inventory", async () => {
      const d = await fx.json<{ inventory?: { software?: { name: string }[] } | null; os_name?: string | null }>(
        "GET",
        `/api/v1/devices/${deviceId}`,
      );
      return d.inventory ? d : undefined;
    });
    await page.locator(`tr[data-device-id="${deviceId}"]`).getByRole("link", { name: hostname, exact: true }).click();
    await expect(page.getByTestId("device-hostname").textContent()).resolves.toBe(hostname);
    const osName = detail.os_name ?? "";
    expect(osName).not.toBe("");
    await expectVisible(page.getByRole("table", { name: "Operating system" }).getByText(osName, { exact: false }).first(), 20_000);
    await shot("06-device-overview");

    await page.getByRole("tab", { name: "Hardware" }).click();
    await expectVisible(page.getByRole("table", { name: "Processor" }));
    await shot("07-device-hardware");

    await page.getByRole("tab", { name: "Software", exact: true }).click();
    const software = detail.inventory?.software ?? [];
    if (software.length > 0) {
      const name = software[0]!.name;
      await page.getByLabel("Search software").fill(name);
      await expectVisible(page.getByRole("table", { name: "Software" }).getByRole("cell", { name, exact: true }).first());
      await page.getByLabel("Search software").fill("zz-no-such-package-zz");
      await expectVisible(page.getByText("No package matches"));
    } else {
      await expectVisible(page.getByText("No software installed"));
    }
    await shot("08-device-software");

    await page.getByRole("tab", { name: "Network" }).click();
    await expectVisible(page.getByRole("table", { name: "Routing and DNS" }));
    await shot("09-device-network");

    await page.getByRole("tab", { name: "Groups, tags & fields" }).click();
    await expectVisible(page.getByRole("heading", { name: "Custom fields" }));
    await expectVisible(page.getByText("lab", { exact: true }).first());
    await shot("10-device-membership");

    await page.getByRole("tab", { name: "Timeline" }).click();
    await expectVisible(page.getByRole("table", { name: "Timeline" }).getByText("enrolled").first());
    await shot("11-device-timeline");
  });

  step("shows a hostile hostname as plain text", async () => {
    const t = await fx.createEnrollmentToken("hostile");
    const agent = await fx.startAgent(t, { hostname: HOSTILE });
    const id = agent.deviceId();
    await nav("Devices").click();
    await page.getByLabel("Search hostname").fill("onerror");
    const link = page.locator(`tr[data-device-id="${id}"]`).getByRole("link");
    await expectVisible(link, 30_000);
    expect(await link.textContent()).toBe(HOSTILE);
    await shot("12-devices-hostile");
    await link.click();
    await expect(page.getByTestId("device-hostname").textContent()).resolves.toBe(HOSTILE);
    await shot("13-device-hostile");
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(dialogs).toEqual([]);
  });

  step("shows a hostile software name and publisher as plain text", async () => {
    // The agent reads its inventory from a directory laid out like a system whose dpkg
    // database lists a package named with markup (`inventory_root` in its config file).
    const root = fx.tempDir("capstan-web-e2e-root-");
    mkdirSync(join(root, "etc"), { recursive: true });
    mkdirSync(join(root, "var/lib/dpkg"), { recursive: true });
    writeFileSync(join(root, "etc/os-release"), 'ID=debian\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n');
    writeFileSync(join(root, "etc/hostname"), "hostile-software\n");
    writeFileSync(
      join(root, "var/lib/dpkg/status"),
      `Package: ${HOSTILE_PACKAGE}\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n` +
        `Maintainer: ${HOSTILE_PUBLISHER}\nDescription: markup\n\n`,
    );
    const config = join(root, "agent.toml");
    writeFileSync(config, `inventory_root = ${JSON.stringify(root)}\n`);
    const agent = await fx.startAgent(await fx.createEnrollmentToken("hostile-software"), {
      env: { CAPSTAN_AGENT_CONFIG: config },
    });
    const id = agent.deviceId();
    await waitFor(
      "the inventory with the hostile package",
      async () => {
        const d = await fx.json<{ inventory?: { software?: { name: string }[] } }>("GET", `/api/v1/devices/${id}`);
        return d.inventory?.software?.some((p) => p.name === HOSTILE_PACKAGE) ? d : undefined;
      },
      30_000,
    );
    await page.goto(`/devices/${id}?tab=software`);
    const table = page.getByRole("table", { name: "Software" });
    await expectVisible(table.getByText(HOSTILE_PACKAGE, { exact: true }));
    await expectVisible(table.getByText(HOSTILE_PUBLISHER, { exact: true }));
    await shot("14-device-software-hostile");
    expect(await page.locator("main script").count()).toBe(0);
    expect(await page.locator('img[src="y"]').count()).toBe(0);
    expect(dialogs).toEqual([]);
  });

  step("refuses a cookie-authenticated change without the CSRF header", async () => {
    const status = await page.evaluate(async () => {
      const r = await fetch("/api/v1/enrollment-tokens", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: "forged" }),
      });
      return r.status;
    });
    expect(status).toBe(403);
    const tokens = await fx.json<{ name: string }[]>("GET", "/api/v1/enrollment-tokens");
    expect(tokens.map((t) => t.name)).not.toContain("forged");
  });

  step("revokes a token after confirmation", async () => {
    await nav("Enrollment").click();
    await page.getByRole("button", { name: "Revoke e2e lab" }).click();
    const dialog = page.getByRole("dialog", { name: "Revoke enrollment token?" });
    await expectVisible(dialog);
    await shot("14-enrollment-revoke");
    await dialog.getByRole("button", { name: "Revoke" }).click();
    await expectVisible(page.getByRole("row", { name: /e2e lab/ }).getByText("revoked"));
  });

  step("shows the dashboard with the devices", async () => {
    await nav("Dashboard").click();
    await expectVisible(page.getByRole("link", { name: "2" }).first());
    await shot("15-dashboard");
  });

  step("logs out", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(/\/login/);
    await page.goto("/enrollment");
    await page.waitForURL(/\/login\?redirect=%2Fenrollment/);
    await expectVisible(page.getByRole("button", { name: "Log in" }));
  });

  step("ran without script errors or CSP violations", async () => {
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
    expect(dialogs).toEqual([]);
  });
});

async function expectVisible(locator: ReturnType<Page["locator"]>, timeout = 10_000) {
  await locator.waitFor({ state: "visible", timeout });
}
