// The dashboard's figures: deployments and failures from the lists the server returns, the
// distribution bars from the fleet summary (each linking to the filtered device list).
import { describe, expect, it } from "vitest";
import { distributionBars, jobFailures } from "./dashboard";
import { matchesDeploymentFilter, type StatusCounts, summarizeDeployments } from "./deployments";
import type { RunCounts } from "./jobs";

const ZERO: StatusCounts = {
  available: 0,
  downloading: 0,
  failed: 0,
  installed: 0,
  installing: 0,
  not_applicable: 0,
  planned: 0,
  reboot_pending: 0,
  removed: 0,
  total: 0,
  uninstalling: 0,
  waiting: 0,
};
const dep = (paused: boolean, c: Partial<StatusCounts>) => ({ paused, counts: { ...ZERO, ...c } });

describe("deployment figures", () => {
  it.each<[string, ReturnType<typeof dep>, boolean, boolean]>([
    ["devices still installing", dep(false, { installing: 2, installed: 1 }), true, false],
    ["waiting for a window counts as in progress", dep(false, { waiting: 1 }), true, false],
    ["paused with devices to go is not in progress", dep(true, { planned: 3 }), false, false],
    ["all installed", dep(false, { installed: 5 }), false, false],
    ["offered for self-service only", dep(false, { available: 4 }), false, false],
    ["finished with a failure", dep(false, { installed: 4, failed: 1 }), false, true],
    ["failing and still going", dep(false, { failed: 1, downloading: 1 }), true, true],
  ])("%s", (_, d, active, failing) => {
    expect(matchesDeploymentFilter(d, "active")).toBe(active);
    expect(matchesDeploymentFilter(d, "failing")).toBe(failing);
    expect(matchesDeploymentFilter(d, undefined)).toBe(true);
  });

  it("sums the fleet's deployments", () => {
    expect(
      summarizeDeployments([
        dep(false, { installing: 2, failed: 1 }),
        dep(false, { installed: 3 }),
        dep(true, { planned: 7, failed: 2 }),
        dep(false, { reboot_pending: 1 }),
      ]),
    ).toEqual({ active: 2, failing: 2, failedDevices: 3, pendingDevices: 3 });
  });
});

describe("jobFailures", () => {
  const counts = (c: Partial<RunCounts>): RunCounts => ({
    cancelled: 0,
    delivered: 0,
    expired: 0,
    failed: 0,
    queued: 0,
    rebooting: 0,
    running: 0,
    succeeded: 0,
    timed_out: 0,
    total: 0,
    ...c,
  });
  const job = (id: string, at: number, c: Partial<RunCounts>) => ({ id, name: `job ${id}`, created_at_ms: at, counts: counts(c) });

  it("counts failed and timed-out runs, in the server's order", () => {
    expect(jobFailures([job("new", 4, { failed: 1, timed_out: 2, succeeded: 1, total: 4 }), job("old", 1, { failed: 1, total: 2 })])).toEqual([
      { id: "new", name: "job new", failed: 3, total: 4, createdAtMs: 4 },
      { id: "old", name: "job old", failed: 1, total: 2, createdAtMs: 1 },
    ]);
  });
});

describe("distributionBars", () => {
  it("links each counted value to the list filtered by it; other and unknown are not links", () => {
    const d = {
      top: [
        { value: "Debian GNU/Linux 12", count: 6 },
        { value: "Ubuntu 24.04", count: 2 },
      ],
      other: 1,
      unknown: 1,
    };
    expect(distributionBars(d, 10, "os")).toEqual([
      { label: "Debian GNU/Linux 12", count: 6, percent: 60, search: { os: "Debian GNU/Linux 12" } },
      { label: "Ubuntu 24.04", count: 2, percent: 20, search: { os: "Ubuntu 24.04" } },
      { label: "Other", count: 1, percent: 10 },
      { label: "Unknown", count: 1, percent: 10 },
    ]);
    expect(distributionBars({ top: [{ value: "LENOVO 20XW", count: 3 }], other: 0, unknown: 0 }, 3, "model")).toEqual([
      { label: "LENOVO 20XW", count: 3, percent: 100, search: { model: "LENOVO 20XW" } },
    ]);
  });

  it("is empty for an empty fleet", () => {
    expect(distributionBars({ top: [], other: 0, unknown: 0 }, 0, "os")).toEqual([]);
  });
});
