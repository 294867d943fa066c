// The device list's URL state and the server query built from it.
import { describe, expect, it } from "vitest";
import {
  buildDeviceQuery,
  type DeviceListSearch,
  hasDeviceFilters,
  joinFieldFilter,
  parseDeviceListSearch,
  splitFieldFilter,
} from "./devices";

describe("buildDeviceQuery", () => {
  it.each<[string, DeviceListSearch, object]>([
    ["nothing set: first page of 50 by hostname", {}, { offset: 0, limit: 50 }],
    ["search is trimmed", { q: "  web-01 " }, { search: "web-01", offset: 0, limit: 50 }],
    ["blank search is left out", { q: "   " }, { offset: 0, limit: 50 }],
    [
      "every filter",
      { q: "db", status: "offline", tag: "prod", group: "g-1" },
      { search: "db", status: "offline", tag: "prod", group: "g-1", offset: 0, limit: 50 },
    ],
    [
      "OS, model and custom field are sent exactly",
      { os: "Debian GNU/Linux 12", model: "LENOVO 20XW0055GE", field: "tier=gold = best" },
      { os: "Debian GNU/Linux 12", model: "LENOVO 20XW0055GE", field: "tier=gold = best", offset: 0, limit: 50 },
    ],
    ["a field filter without a name is left out", { field: "=gold" }, { offset: 0, limit: 50 }],
    ["a field name is trimmed, an empty value kept", { field: " note =" }, { field: "note=", offset: 0, limit: 50 }],
    ["page 3 of 25", { page: 3, size: 25 }, { offset: 50, limit: 25 }],
    ["descending last seen", { sort: "last_seen", desc: true }, { sort: "-last_seen", offset: 0, limit: 50 }],
    ["ascending enrolled", { sort: "enrolled" }, { sort: "enrolled", offset: 0, limit: 50 }],
    ["descending default key", { desc: true }, { sort: "-hostname", offset: 0, limit: 50 }],
    ["page size capped at the server's 1000", { size: 5000 }, { offset: 0, limit: 1000 }],
    ["nonsense page is page 1", { page: -4 }, { offset: 0, limit: 50 }],
  ])("%s", (_, search, expected) => {
    expect(buildDeviceQuery(search)).toEqual(expected);
  });
});

describe("parseDeviceListSearch", () => {
  it("keeps what the list understands", () => {
    expect(
      parseDeviceListSearch({ q: "web", status: "online", tag: "t", group: "g", sort: "enrolled", desc: true, page: 2, size: 100 }),
    ).toEqual({ q: "web", status: "online", tag: "t", group: "g", sort: "enrolled", desc: true, page: 2, size: 100 });
  });

  it("reads the links the dashboard makes", () => {
    expect(parseDeviceListSearch({ os: "Debian GNU/Linux", model: "Dell Inc. OptiPlex 7090", field: "site=Berlin" })).toEqual({
      os: "Debian GNU/Linux",
      model: "Dell Inc. OptiPlex 7090",
      field: "site=Berlin",
    });
    expect(parseDeviceListSearch({ field: "no-equals-sign", os: "", model: 7 })).toEqual({ model: "7" });
  });

  it("drops what a hand-edited URL gets wrong", () => {
    expect(
      parseDeviceListSearch({ q: "", status: "sleeping", sort: "os); drop table", page: "x", size: 7, desc: "no" }),
    ).toEqual({});
  });

  it("reads numbers that arrive as strings", () => {
    expect(parseDeviceListSearch({ page: "3", size: "25", q: 42 })).toEqual({ page: 3, size: 25, q: "42" });
  });
});

describe("field filters", () => {
  it.each<[string | undefined, { name: string; value: string } | undefined]>([
    ["tier=gold", { name: "tier", value: "gold" }],
    ["url=a=b", { name: "url", value: "a=b" }],
    ["note=", { name: "note", value: "" }],
    ["=x", undefined],
    ["tier", undefined],
    ["", undefined],
    [undefined, undefined],
  ])("%s", (raw, want) => {
    expect(splitFieldFilter(raw)).toEqual(want);
  });

  it("round-trips through the URL form", () => {
    const f = splitFieldFilter(joinFieldFilter("site", "Berlin = Mitte"));
    expect(f).toEqual({ name: "site", value: "Berlin = Mitte" });
  });

  it("knows when the list is filtered", () => {
    expect(hasDeviceFilters({ sort: "enrolled", page: 2 })).toBe(false);
    for (const s of [{ os: "x" }, { model: "y" }, { field: "a=b" }, { tag: "t" }] as DeviceListSearch[]) {
      expect(hasDeviceFilters(s)).toBe(true);
    }
  });
});
