// Presence events: which cached queries they make stale (the list, the dashboard summary, the
// open device and group member lists — not every device query) and how long they are batched.
import { describe, expect, it } from "vitest";
import { keysFor, throttleFor } from "./events";

describe("keysFor presence", () => {
  it.each(["device.online", "device.offline"])("%s refreshes what shows a status", (kind) => {
    expect(keysFor({ kind, subject: "d1", object: null })).toEqual([
      ["devices", "list"],
      ["devices", "summary"],
      ["devices", "detail", "d1"],
      ["groups", "members"],
    ]);
  });

  it("other device events still refresh every device query", () => {
    expect(keysFor({ kind: "device.custom_field_set", subject: "d1", object: null })).toEqual([["devices"]]);
  });
});

describe("throttleFor", () => {
  it("batches presence over a longer window than other events", () => {
    expect(throttleFor("device.online")).toBe(2_000);
    expect(throttleFor("device.offline")).toBe(2_000);
    expect(throttleFor("group.member_added")).toBe(500);
    expect(throttleFor("software.status")).toBe(500);
  });
});
