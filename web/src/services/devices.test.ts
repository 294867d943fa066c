// The device list's URL state and the server query built from it.
import { describe, expect, it } from "vitest";
import { buildDeviceQuery, type DeviceListSearch, parseDeviceListSearch } from "./devices";

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

  it("drops what a hand-edited URL gets wrong", () => {
    expect(
      parseDeviceListSearch({ q: "", status: "sleeping", sort: "os); drop table", page: "x", size: 7, desc: "no" }),
    ).toEqual({});
  });

  it("reads numbers that arrive as strings", () => {
    expect(parseDeviceListSearch({ page: "3", size: "25", q: 42 })).toEqual({ page: 3, size: 25, q: "42" });
  });
});
