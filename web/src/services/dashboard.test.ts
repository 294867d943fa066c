// The dashboard's deployment and failure figures, from the lists the server returns.
import { describe, expect, it } from "vitest";
import { recentJobFailures } from "./dashboard";
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

describe("recentJobFailures", () => {
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

  it("keeps jobs with failed or timed-out runs, newest first, up to the limit", () => {
    const jobs = [
      job("ok", 5, { succeeded: 3, total: 3 }),
      job("old", 1, { failed: 1, total: 2 }),
      job("new", 4, { failed: 1, timed_out: 2, total: 4 }),
      job("mid", 3, { timed_out: 1, total: 1 }),
    ];
    expect(recentJobFailures(jobs, 2)).toEqual([
      { id: "new", name: "job new", failed: 3, total: 4, createdAtMs: 4 },
      { id: "mid", name: "job mid", failed: 1, total: 1, createdAtMs: 3 },
    ]);
    expect(recentJobFailures([job("ok", 1, { succeeded: 1, total: 1 })])).toEqual([]);
  });
});
