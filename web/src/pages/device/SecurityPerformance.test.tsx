// The Security and Performance tabs: what an operator reads from a full report, the empty and
// "collector failed" states, and agent strings carrying HTML or script shown as plain text.
import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { renderUi } from "../../../test/render";
import type { DeviceDetail } from "../../services/devices";
import { PerformanceTab } from "./PerformanceTab";
import { SecurityTab } from "./SecurityTab";

const HOSTILE = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>`;

function device(patch: Partial<DeviceDetail> = {}): DeviceDetail {
  return {
    id: "d1",
    hostname: "web-01",
    online: true,
    last_seen_at_ms: Date.now() - 60_000,
    enrolled_at_ms: 0,
    tags: [],
    identity_source: "machine_id",
    inventory: {
      schema_version: 1,
      collected_at_ms: 0,
      hardware: { cpu: { threads: 4 }, disks: [] },
      security: {
        pending_reboot: true,
        pending_reboot_reasons: ["linux-image-6.1.0-30-amd64", HOSTILE],
        firewall: { backend: "nftables", enabled: false, rule_count: 0, detail: HOSTILE },
        ssh: { installed: true, enabled: true, running: true, permit_root_login: "yes", password_authentication: true },
        remote_desktop: { kind: "xrdp", installed: false, enabled: null, running: null },
        local_admins: [
          { name: "root", via: "uid0" },
          { name: HOSTILE, via: "group:sudo" },
        ],
        encrypted_volumes: [{ device: "nvme0n1p3", kind: "luks2", mapped_as: "/" }],
      },
      collectors: [{ name: "security", ok: true, duration_ms: 12 }],
    },
    performance: {
      cpu_percent: 37.4,
      load_1: 5.5,
      load_5: 4.75,
      load_15: 3,
      memory_total_bytes: 8 * 2 ** 30,
      memory_used_bytes: 6 * 2 ** 30,
      swap_total_bytes: 0,
      swap_used_bytes: 0,
      uptime_seconds: 90_061,
      mounts: [
        { mount_point: "/", filesystem: "ext4", device: "/dev/nvme0n1p3", total_bytes: 100 * 2 ** 30, used_bytes: 50 * 2 ** 30 },
        { mount_point: HOSTILE, filesystem: HOSTILE, device: null, total_bytes: 10 * 2 ** 30, used_bytes: 9.5 * 2 ** 30 },
      ],
    },
    ...patch,
  } as DeviceDetail;
}

function expectInert() {
  expect(document.querySelector("img, script")).toBeNull();
  expect((window as { __pwned?: number }).__pwned).toBeUndefined();
}

describe("Security", () => {
  it("shows each fact as a badge or table, agent text as text", () => {
    renderUi(<SecurityTab device={device()} />);
    const region = (name: string) => screen.getByRole("region", { name });
    expect(within(region("Pending reboot")).getByText("reboot pending")).toBeTruthy();
    expect(within(region("Pending reboot")).getByText("linux-image-6.1.0-30-amd64")).toBeTruthy();
    expect(within(region("Firewall")).getByText("disabled")).toBeTruthy();
    expect(within(region("Firewall")).getByText("nftables")).toBeTruthy();
    const rootLogin = within(within(region("SSH server")).getByRole("row", { name: /Root login/ })).getByText("yes");
    expect(rootLogin.closest(".mantine-Badge-root")?.getAttribute("style")).toMatch(/red/);
    expect(within(region("SSH server")).getByText("allowed")).toBeTruthy();
    expect(within(region("Remote desktop")).getAllByText("unknown")).toHaveLength(2);
    const admins = screen.getByRole("table", { name: "Local administrators" });
    expect(within(admins).getAllByRole("row").map((r) => r.textContent)).toEqual(["AccountWhy it is an administrator", "rootuid0", `${HOSTILE}group:sudo`]);
    expect(within(screen.getByRole("table", { name: "Encrypted volumes" })).getByText("luks2")).toBeTruthy();
    // The hostile strings are on the page as characters, three times, and never as elements.
    expect(screen.getAllByText(HOSTILE)).toHaveLength(3);
    expectInert();
  });

  it("says when there is no inventory, when the collector failed, and when nothing was reported", () => {
    const { unmount } = renderUi(<SecurityTab device={device({ inventory: null })} />);
    expect(screen.getByText("No inventory yet")).toBeTruthy();
    unmount();

    const failed = device();
    failed.inventory = { ...failed.inventory!, security: null, collectors: [{ name: "security", ok: false, duration_ms: 30_000, error: `timed out <b>${HOSTILE}</b>` }] };
    const second = renderUi(<SecurityTab device={failed} />);
    const alert = screen.getByRole("alert");
    expect(within(alert).getByText("The security collector failed")).toBeTruthy();
    expect(alert.textContent).toContain(`timed out <b>${HOSTILE}</b>`);
    expectInert();
    second.unmount();

    const silent = device();
    silent.inventory = { ...silent.inventory!, security: null, collectors: [] };
    renderUi(<SecurityTab device={silent} />);
    expect(screen.getByText("No security information")).toBeTruthy();
  });
});

describe("Performance", () => {
  it("shows usage with thresholds, load against threads, and mounts fullest first", () => {
    renderUi(<PerformanceTab device={device()} />);
    expect(within(screen.getByRole("region", { name: "CPU" })).getByText("37 %")).toBeTruthy();
    expect(within(screen.getByRole("region", { name: "Memory" })).getByText("75 %")).toBeTruthy();
    expect(within(screen.getByRole("region", { name: "Swap" })).getByText("No swap configured")).toBeTruthy();
    const load = screen.getByRole("region", { name: "Load and uptime" });
    expect(load.textContent).toContain("5.50 / 4.75 / 3.00");
    expect(within(load).getByText("overloaded")).toBeTruthy();
    const rows = within(screen.getByRole("table", { name: "Mount usage" })).getAllByRole("row").slice(1);
    expect(rows.map((r) => within(r).getAllByRole("cell")[0]!.textContent)).toEqual([HOSTILE, "/"]);
    expect(rows[0]!.textContent).toContain("95 %");
    expect(screen.getByRole("progressbar", { name: `${HOSTILE} usage` }).getAttribute("aria-valuenow")).toBe("95");
    expectInert();
  });

  it("says when no snapshot arrived, and when it carried no measurement", () => {
    const { unmount } = renderUi(<PerformanceTab device={device({ performance: null })} />);
    expect(screen.getByText("No performance data yet")).toBeTruthy();
    unmount();
    renderUi(<PerformanceTab device={device({ performance: { mounts: [] } })} />);
    expect(within(screen.getByRole("alert")).getByText("No measurements")).toBeTruthy();
  });
});
