// Devices: the list's URL state and how it becomes the server query, the query keys (every
// parameter is part of the key), and the hooks the pages use.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type DeviceSummary = Schemas["DeviceSummary"];
export type DeviceDetail = Schemas["DeviceDetail"];
export type DevicePage = Schemas["DevicePage"];
export type TimelineEntry = Schemas["TimelineEntry"];
export type DeviceFleetSummary = Schemas["DeviceFleetSummary"];
export type Distribution = Schemas["Distribution"];

/** Columns the server can sort by (`GET /api/v1/devices?sort=`). */
export const SORT_KEYS = ["hostname", "last_seen", "enrolled"] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export const PAGE_SIZES = [25, 50, 100, 250] as const;
export const DEFAULT_PAGE_SIZE = 50;

/**
 * The device list's state as it appears in the URL (`/devices?q=web&status=online&page=2`).
 * `os` and `model` are exact values as the fleet summary lists them (`Debian GNU/Linux 12`, or
 * the OS name alone for every version); `field` is `name=value` of a custom field.
 */
export interface DeviceListSearch {
  q?: string;
  status?: "online" | "offline";
  tag?: string;
  group?: string;
  os?: string;
  model?: string;
  field?: string;
  sort?: SortKey;
  desc?: boolean;
  page?: number;
  size?: number;
}

/** The query string of `GET /api/v1/devices` for a list state; empty filters are left out. */
export interface DeviceListQuery {
  search?: string;
  status?: string;
  tag?: string;
  group?: string;
  os?: string;
  model?: string;
  field?: string;
  sort?: string;
  offset: number;
  limit: number;
}

export function buildDeviceQuery(s: DeviceListSearch): DeviceListQuery {
  const size = s.size && s.size > 0 ? Math.min(Math.floor(s.size), 1000) : DEFAULT_PAGE_SIZE;
  const page = s.page && s.page > 1 ? Math.floor(s.page) : 1;
  const q: DeviceListQuery = { offset: (page - 1) * size, limit: size };
  const search = s.q?.trim();
  if (search) q.search = search;
  if (s.status === "online" || s.status === "offline") q.status = s.status;
  const tag = s.tag?.trim();
  if (tag) q.tag = tag;
  const group = s.group?.trim();
  if (group) q.group = group;
  // Exact values: sent as they are (an OS name may end in a space as well as any other text).
  if (s.os) q.os = s.os;
  if (s.model) q.model = s.model;
  const field = splitFieldFilter(s.field);
  if (field) q.field = joinFieldFilter(field.name, field.value);
  if (s.sort && SORT_KEYS.includes(s.sort)) {
    q.sort = s.desc ? `-${s.sort}` : s.sort;
  } else if (s.desc) {
    q.sort = "-hostname";
  }
  return q;
}

/** Reads untrusted URL search params into a list state, dropping what does not fit. */
export function parseDeviceListSearch(raw: Record<string, unknown>): DeviceListSearch {
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined);
  const num = (v: unknown) => {
    const n = typeof v === "number" ? v : typeof v === "string" ? Number(v) : NaN;
    return Number.isInteger(n) && n > 0 ? n : undefined;
  };
  const out: DeviceListSearch = {};
  const q = str(raw.q);
  if (q) out.q = q;
  if (raw.status === "online" || raw.status === "offline") out.status = raw.status;
  const tag = str(raw.tag);
  if (tag) out.tag = tag;
  const group = str(raw.group);
  if (group) out.group = group;
  const os = str(raw.os);
  if (os) out.os = os;
  const model = str(raw.model);
  if (model) out.model = model;
  const field = splitFieldFilter(str(raw.field));
  if (field) out.field = joinFieldFilter(field.name, field.value);
  if (typeof raw.sort === "string" && (SORT_KEYS as readonly string[]).includes(raw.sort)) {
    out.sort = raw.sort as SortKey;
  }
  if (raw.desc === true || raw.desc === "true") out.desc = true;
  const page = num(raw.page);
  if (page && page > 1) out.page = page;
  const size = num(raw.size);
  if (size && (PAGE_SIZES as readonly number[]).includes(size)) out.size = size;
  return out;
}

/**
 * A custom-field filter `name=value` split at the first `=` (field names cannot contain one; a
 * value can). `undefined` without a name or without `=`; an empty value is kept (it matches
 * an empty text field).
 */
export function splitFieldFilter(raw: string | undefined): { name: string; value: string } | undefined {
  if (!raw) return undefined;
  const at = raw.indexOf("=");
  if (at <= 0) return undefined;
  const name = raw.slice(0, at).trim();
  if (!name) return undefined;
  return { name, value: raw.slice(at + 1) };
}

export function joinFieldFilter(name: string, value: string): string {
  return `${name.trim()}=${value}`;
}

/** Whether any filter (not sorting or paging) narrows the list. */
export function hasDeviceFilters(s: DeviceListSearch): boolean {
  return Boolean(s.q || s.status || s.tag || s.group || s.os || s.model || s.field);
}

export const deviceKeys = {
  all: ["devices"] as const,
  summary: ["devices", "summary"] as const,
  list: (q: DeviceListQuery) => ["devices", "list", q] as const,
  detail: (id: string) => ["devices", "detail", id] as const,
  timeline: (id: string, kind: string | undefined) => ["devices", "timeline", id, kind ?? ""] as const,
};

/** How often lists re-read the server, so newly enrolled devices appear without a reload. */
export const LIST_REFRESH_MS = 5_000;

export async function fetchDevices(q: DeviceListQuery): Promise<DevicePage> {
  return unwrap(api.GET("/api/v1/devices", { params: { query: q } }));
}

export function useDevices(q: DeviceListQuery) {
  return useQuery({
    queryKey: deviceKeys.list(q),
    queryFn: () => fetchDevices(q),
    placeholderData: keepPreviousData,
    refetchInterval: LIST_REFRESH_MS,
  });
}

/** Counters and the OS / hardware-model distributions of the whole fleet. */
export function useDeviceSummary(refetchInterval: number | false = 30_000) {
  return useQuery({
    queryKey: deviceKeys.summary,
    queryFn: () => unwrap(api.GET("/api/v1/devices/summary")),
    refetchInterval,
    staleTime: 2_000,
  });
}

export function useDevice(id: string) {
  return useQuery({
    queryKey: deviceKeys.detail(id),
    queryFn: () => unwrap(api.GET("/api/v1/devices/{id}", { params: { path: { id } } })),
    refetchInterval: 15_000,
  });
}

export async function fetchTimelinePage(id: string, kind: string | undefined, before: number | undefined) {
  const query: { limit: number; kind?: string; before?: number } = { limit: 100 };
  if (kind) query.kind = kind;
  if (before !== undefined) query.before = before;
  return unwrap(api.GET("/api/v1/devices/{id}/timeline", { params: { path: { id }, query } }));
}
