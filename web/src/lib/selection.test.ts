// Bulk selection on the device list: choosing across pages, the header checkbox, and the words
// the operator reads after a bulk action.
import { describe, expect, it } from "vitest";
import {
  bulkMessage,
  clearPage,
  describeSelection,
  EMPTY_SELECTION,
  pageState,
  type Row,
  selectPage,
  tagProblems,
  toggle,
  togglePage,
} from "./selection";

const web01: Row = { id: "a", hostname: "web-01" };
const web02: Row = { id: "b", hostname: "web-02" };
const page1: Row[] = [web01, web02];
const page2: Row[] = [
  { id: "c", hostname: "db-01" },
  { id: "d", hostname: "db-02" },
];

describe("selection", () => {
  it("toggles one device on and off, keeping its hostname", () => {
    const one = toggle(EMPTY_SELECTION, web01);
    expect([...one.entries()]).toEqual([["a", "web-01"]]);
    expect(toggle(one, web01).size).toBe(0);
  });

  it("keeps choices from other pages when a page is selected or cleared", () => {
    const both = selectPage(selectPage(EMPTY_SELECTION, page1), page2);
    expect(both.size).toBe(4);
    const onlyFirst = clearPage(both, page2);
    expect([...onlyFirst.keys()]).toEqual(["a", "b"]);
  });

  it.each<[string, string[], Row[], string]>([
    ["empty page", [], [], "none"],
    ["nothing chosen", [], page1, "none"],
    ["one of two", ["a"], page1, "some"],
    ["both", ["a", "b"], page1, "all"],
    ["chosen only elsewhere", ["c", "d"], page1, "none"],
  ])("header checkbox: %s", (_, chosen, rows, expected) => {
    const sel = new Map(chosen.map((id) => [id, id]));
    expect(pageState(sel, rows)).toBe(expected);
  });

  it("the header checkbox chooses a partly chosen page and clears a fully chosen one", () => {
    const partly = toggle(EMPTY_SELECTION, web01);
    const full = togglePage(partly, page1);
    expect(pageState(full, page1)).toBe("all");
    const cleared = togglePage(selectPage(full, page2), page1);
    expect([...cleared.keys()]).toEqual(["c", "d"]);
  });

  it("names the first devices in a confirmation and counts the rest", () => {
    const sel = selectPage(selectPage(EMPTY_SELECTION, page1), page2);
    expect(describeSelection(sel)).toBe("db-01, db-02, web-01 and 1 more");
    expect(describeSelection(toggle(EMPTY_SELECTION, web02))).toBe("web-02");
    expect(describeSelection(EMPTY_SELECTION)).toBe("no devices");
  });
});

describe("bulkMessage", () => {
  it.each<[Parameters<typeof bulkMessage>[0], number, number, string, string]>([
    ["add-tags", 3, 3, "Tag prod", "Tag prod added to 3 devices."],
    ["add-tags", 3, 1, "Tag prod", "Tag prod added to 1 device (2 devices already had it)."],
    ["remove-tags", 2, 0, "Tags a, b", "Tags a, b removed from 0 devices (2 devices did not have it)."],
    ["add-group", 1, 1, "group “lab”", "1 device added to group “lab”."],
    ["add-group", 3, 1, "group “lab”", "1 device added to group “lab” (2 devices were already members)."],
    ["remove-group", 5, 4, "group “lab”", "4 devices removed from group “lab” (1 device was not a member)."],
  ])("%s matched %i changed %i", (action, matched, changed, what, expected) => {
    expect(bulkMessage(action, { matched, changed }, what)).toBe(expected);
  });
});

describe("tagProblems", () => {
  it.each<[string, string[], number]>([
    ["one good tag", ["prod"], 0],
    ["allowed punctuation", ["env=prod", "site:fra/1", "a_b-c.d"], 0],
    ["none", [], 1],
    ["a space", ["has space"], 1],
    ["too long", ["x".repeat(65)], 1],
    ["too many", Array.from({ length: 33 }, (_, i) => `t${i}`), 1],
  ])("%s", (_, tags, problems) => {
    expect(tagProblems(tags)).toHaveLength(problems);
  });
});
