// The dashboard's figures. Device counters and the OS / hardware-model distributions come from
// `GET /api/v1/devices/summary` (grouped on the server; every value is a filter the device list
// accepts, so each bar links to exactly the devices it counts). Recent job failures come from
// `GET /api/v1/jobs?failed=true`; deployment figures from the deployment list.
import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import type { DeviceListSearch, DeviceSummary, Distribution } from "./devices";
import type { JobInfo } from "./jobs";

/** "Debian GNU/Linux 12", else the family ("windows"), else "unknown". */
export function osLabel(d: Pick<DeviceSummary, "os_family" | "os_name" | "os_version">): string {
  if (d.os_name) {
    return d.os_version ? `${d.os_name} ${d.os_version}` : d.os_name;
  }
  return d.os_family || "unknown";
}

/** One bar of a distribution chart. */
export interface Bar {
  label: string;
  count: number;
  /** Share of all devices, 0..100. */
  percent: number;
  /** The device list showing exactly these devices; `undefined` for the "other" and "unknown" rows. */
  search?: DeviceListSearch;
}

/**
 * The bars of a distribution over `total` devices: one per listed value (linked to the list
 * filtered by `filter`), then "Other" and "Unknown" when they count any device.
 */
export function distributionBars(d: Distribution, total: number, filter: "os" | "model"): Bar[] {
  const pct = (n: number) => (total > 0 ? (n / total) * 100 : 0);
  const bars: Bar[] = d.top.map((v) => ({
    label: v.value,
    count: v.count,
    percent: pct(v.count),
    search: { [filter]: v.value },
  }));
  if (d.other > 0) bars.push({ label: "Other", count: d.other, percent: pct(d.other) });
  if (d.unknown > 0) bars.push({ label: "Unknown", count: d.unknown, percent: pct(d.unknown) });
  return bars;
}

export interface JobFailure {
  id: string;
  name: string;
  /** Runs that failed or timed out. */
  failed: number;
  total: number;
  createdAtMs: number;
}

/** Recent failures shown on the dashboard. */
export const FAILED_JOBS_SHOWN = 5;

export const dashboardKeys = {
  failedJobs: ["jobs", "failed", FAILED_JOBS_SHOWN] as const,
};

/** The dashboard's rows for jobs the server returned as failed (newest first already). */
export function jobFailures(jobs: readonly Pick<JobInfo, "id" | "name" | "counts" | "created_at_ms">[]): JobFailure[] {
  return jobs.map((j) => ({
    id: j.id,
    name: j.name,
    failed: j.counts.failed + j.counts.timed_out,
    total: j.counts.total,
    createdAtMs: j.created_at_ms,
  }));
}

/** The newest jobs with a failed or timed-out run, and how many such jobs there are. */
export function useFailedJobs() {
  return useQuery({
    queryKey: dashboardKeys.failedJobs,
    queryFn: async () => {
      const page = await unwrap(
        api.GET("/api/v1/jobs", { params: { query: { failed: true, limit: FAILED_JOBS_SHOWN } } }),
      );
      return { failures: jobFailures(page.items), total: page.total };
    },
    refetchInterval: 10_000,
  });
}
