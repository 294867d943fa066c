// The software a group's devices get: the group's own assignments and those of its ancestor
// groups, which reach its members too (targeting a group includes its descendants).
import type { AssignmentInfo } from "../../services/deployments";
import type { GroupInfo } from "../../services/groups";

/** The group's ancestors, nearest first; a missing or repeated parent ends the walk. */
export function ancestorsOf(groupId: string, groups: readonly GroupInfo[]): GroupInfo[] {
  const byId = new Map(groups.map((g) => [g.id, g]));
  const out: GroupInfo[] = [];
  const seen = new Set([groupId]);
  let parent = byId.get(groupId)?.parent_id ?? null;
  while (parent && !seen.has(parent)) {
    const g = byId.get(parent);
    if (!g) break;
    out.push(g);
    seen.add(parent);
    parent = g.parent_id ?? null;
  }
  return out;
}

export interface GroupAssignmentRow {
  assignment: AssignmentInfo;
  /** The ancestor group it comes from; absent for the group's own assignments. */
  inheritedFrom?: GroupInfo;
}

/**
 * One row per assignment: the group's own first, then each ancestor's, nearest first, each
 * by package name. `lists[i]` are the assignments targeting `chain[i]` (`chain[0]` the group).
 */
export function groupAssignmentRows(chain: readonly GroupInfo[], lists: readonly (readonly AssignmentInfo[] | undefined)[]): GroupAssignmentRow[] {
  return chain.flatMap((g, i) =>
    [...(lists[i] ?? [])]
      .sort((a, b) => a.package_name.localeCompare(b.package_name))
      .map((assignment) => (i === 0 ? { assignment } : { assignment, inheritedFrom: g })),
  );
}
