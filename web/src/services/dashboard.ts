// The dashboard's figures, from the device list API: counts come from `total` of one-row pages;
// the OS distribution is counted over the device list page by page (up to a cap), because the
// server has no aggregate endpoint yet. Recent failures come from the newest page of jobs and
// the deployment list (both cheap: the server returns their counts per state).
import { useQuery } from "@tanstack/react-query";
import { type DeviceSummary, fetchDevices, LIST_REFRESH_MS } from "./devices";
import type { JobInfo } from "./jobs";

export interface DeviceCounts {
  total: number;
  online: number;
  offline: number;
}

export interface OsShare {
  label: string;
  count: number;
}

export interface OsDistribution {
  shares: OsShare[];
  /** Devices counted; less than the fleet when the cap was reached. */
  counted: number;
  total: number;
}

/** Pages of 1000 read for the OS distribution at most (10,000 devices). */
export const OS_SCAN_MAX_PAGES = 10;

export const dashboardKeys = {
  counts: ["dashboard", "counts"] as const,
  os: ["dashboard", "os"] as const,
};

export function useDeviceCounts() {
  return useQuery({
    queryKey: dashboardKeys.counts,
    queryFn: async (): Promise<DeviceCounts> => {
      const [all, online] = await Promise.all([
        fetchDevices({ offset: 0, limit: 1 }),
        fetchDevices({ offset: 0, limit: 1, status: "online" }),
      ]);
      return { total: all.total, online: online.total, offline: Math.max(0, all.total - online.total) };
    },
    refetchInterval: LIST_REFRESH_MS,
  });
}

/** "Debian GNU/Linux 12", else the family ("windows"), else "unknown". */
export function osLabel(d: Pick<DeviceSummary, "os_family" | "os_name" | "os_version">): string {
  if (d.os_name) {
    return d.os_version ? `${d.os_name} ${d.os_version}` : d.os_name;
  }
  return d.os_family || "unknown";
}

export function countByOs(devices: Pick<DeviceSummary, "os_family" | "os_name" | "os_version">[]): OsShare[] {
  const counts = new Map<string, number>();
  for (const d of devices) {
    const label = osLabel(d);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts.entries()]
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => b.count - a.count || a.label.localeCompare(b.label));
}

export function useOsDistribution() {
  return useQuery({
    queryKey: dashboardKeys.os,
    queryFn: async (): Promise<OsDistribution> => {
      const seen: DeviceSummary[] = [];
      let total = 0;
      for (let page = 0; page < OS_SCAN_MAX_PAGES; page++) {
        const p = await fetchDevices({ offset: page * 1000, limit: 1000 });
        total = p.total;
        seen.push(...p.items);
        if (p.items.length < 1000 || seen.length >= total) break;
      }
      return { shares: countByOs(seen), counted: seen.length, total };
    },
    refetchInterval: 30_000,
  });
}

export interface JobFailure {
  id: string;
  name: string;
  /** Runs that failed or timed out. */
  failed: number;
  total: number;
  createdAtMs: number;
}

/** Jobs with failed or timed-out runs, newest first, at most `max`. */
export function recentJobFailures(jobs: readonly Pick<JobInfo, "id" | "name" | "counts" | "created_at_ms">[], max = 5): JobFailure[] {
  return jobs
    .filter((j) => j.counts.failed + j.counts.timed_out > 0)
    .sort((a, b) => b.created_at_ms - a.created_at_ms)
    .slice(0, max)
    .map((j) => ({
      id: j.id,
      name: j.name,
      failed: j.counts.failed + j.counts.timed_out,
      total: j.counts.total,
      createdAtMs: j.created_at_ms,
    }));
}
