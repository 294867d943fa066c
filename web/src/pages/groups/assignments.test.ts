// The group page's software list: own assignments first, then each ancestor's (nearest
// first), marked as inherited; the walk up the tree survives a missing or looping parent.
import { describe, expect, it } from "vitest";
import type { AssignmentInfo } from "../../services/deployments";
import type { GroupInfo } from "../../services/groups";
import { ancestorsOf, groupAssignmentRows } from "./assignments";

const g = (id: string, parent_id: string | null = null): GroupInfo =>
  ({ id, name: id.toUpperCase(), parent_id, kind: "static", description: "", members: 0, direct_members: 0 }) as GroupInfo;
const a = (id: string, package_name: string, target_id: string): AssignmentInfo =>
  ({ id, package_name, target_id, target_kind: "group" }) as AssignmentInfo;

describe("ancestorsOf", () => {
  it.each<[string, GroupInfo[], string, string[]]>([
    ["a top-level group has none", [g("a")], "a", []],
    ["nearest first", [g("root"), g("mid", "root"), g("leaf", "mid")], "leaf", ["mid", "root"]],
    ["a parent missing from the list ends the walk", [g("mid", "gone"), g("leaf", "mid")], "leaf", ["mid"]],
    ["a loop in stored data ends the walk", [g("x", "y"), g("y", "x")], "x", ["y"]],
    ["an unknown group has none", [g("a")], "nope", []],
  ])("%s", (_, groups, id, want) => {
    expect(ancestorsOf(id, groups).map((x) => x.id)).toEqual(want);
  });
});

describe("groupAssignmentRows", () => {
  it("lists the group's own assignments, then inherited ones by nearest ancestor, by package", () => {
    const chain = [g("leaf", "mid"), g("mid", "root"), g("root")];
    const rows = groupAssignmentRows(chain, [
      [a("1", "zsh", "leaf"), a("2", "curl", "leaf")],
      undefined,
      [a("3", "nginx", "root")],
    ]);
    expect(rows.map((r) => [r.assignment.package_name, r.inheritedFrom?.id ?? "own"])).toEqual([
      ["curl", "own"],
      ["zsh", "own"],
      ["nginx", "root"],
    ]);
  });
});
