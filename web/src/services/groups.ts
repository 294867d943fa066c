// Groups: the list (also as a tree), one group with its members, create / edit / delete, the
// rule preview with its live count, and the "why does this device match" explanation.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "../api/client";

export type GroupInfo = Schemas["GroupInfo"];
export type CreateGroupRequest = Schemas["CreateGroupRequest"];
export type UpdateGroupRequest = Schemas["UpdateGroupRequest"];
export type GroupPreview = Schemas["GroupPreview"];
export type GroupExplanation = Schemas["GroupExplanation"];
export type ExplanationNode = Schemas["ExplanationNode"];
export type CustomFieldInfo = Schemas["CustomFieldInfo"];
export type RuleFieldInfo = Schemas["RuleFieldInfo"];

export const groupKeys = {
  all: ["groups"] as const,
  list: () => ["groups", "list"] as const,
  detail: (id: string) => ["groups", "detail", id] as const,
  members: (id: string, q: MembersQuery) => ["groups", "members", id, q] as const,
  preview: (rule: unknown) => ["groups", "preview", rule] as const,
  explain: (id: string, device: string) => ["groups", "explain", id, device] as const,
  fields: ["custom-fields"] as const,
  ruleFields: ["groups", "rule-fields"] as const,
};

export function useGroups() {
  return useQuery({
    queryKey: groupKeys.list(),
    queryFn: () => unwrap(api.GET("/api/v1/groups")),
    staleTime: 30_000,
  });
}

export interface GroupTreeNode {
  group: GroupInfo;
  depth: number;
  children: GroupTreeNode[];
}

/**
 * The groups as a forest, children by name under their parent. A group whose parent is not in
 * the list (deleted meanwhile) shows at the top rather than disappearing.
 */
export function buildGroupTree(groups: readonly GroupInfo[]): GroupTreeNode[] {
  const byId = new Map(groups.map((g) => [g.id, g]));
  const kids = new Map<string | null, GroupInfo[]>();
  for (const g of groups) {
    const parent = g.parent_id && byId.has(g.parent_id) ? g.parent_id : null;
    kids.set(parent, [...(kids.get(parent) ?? []), g]);
  }
  const build = (parent: string | null, depth: number, seen: Set<string>): GroupTreeNode[] =>
    (kids.get(parent) ?? [])
      .filter((g) => !seen.has(g.id))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((g) => ({ group: g, depth, children: build(g.id, depth + 1, new Set([...seen, g.id])) }));
  return build(null, 0, new Set());
}

/** The tree in display order, depth-first, skipping the children of collapsed groups. */
export function flattenTree(nodes: readonly GroupTreeNode[], collapsed: ReadonlySet<string> = new Set()): GroupTreeNode[] {
  return nodes.flatMap((n) => [n, ...(collapsed.has(n.group.id) ? [] : flattenTree(n.children, collapsed))]);
}

export function useGroup(id: string) {
  return useQuery({
    queryKey: groupKeys.detail(id),
    queryFn: () => unwrap(api.GET("/api/v1/groups/{id}", { params: { path: { id } } })),
  });
}

export interface MembersQuery {
  search?: string;
  offset: number;
  limit: number;
}

export function useGroupMembers(id: string, q: MembersQuery) {
  return useQuery({
    queryKey: groupKeys.members(id, q),
    queryFn: () => unwrap(api.GET("/api/v1/groups/{id}/members", { params: { path: { id }, query: q } })),
    placeholderData: keepPreviousData,
  });
}

export function useCustomFields() {
  return useQuery({
    queryKey: groupKeys.fields,
    queryFn: () => unwrap(api.GET("/api/v1/custom-fields")),
    staleTime: 60_000,
  });
}

export function useCreateGroup() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateGroupRequest) => unwrap(api.POST("/api/v1/groups", { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: groupKeys.all }),
  });
}

export function useUpdateGroup(id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: UpdateGroupRequest) =>
      unwrap(api.PATCH("/api/v1/groups/{id}", { params: { path: { id } }, body })),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: groupKeys.all });
      void qc.invalidateQueries({ queryKey: ["devices"] });
    },
  });
}

export function useDeleteGroup() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/groups/{id}", { params: { path: { id } } })),
    onSuccess: () => qc.invalidateQueries({ queryKey: groupKeys.all }),
  });
}

export function useChangeMembers(id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ add, deviceIds }: { add: boolean; deviceIds: string[] }) =>
      add
        ? unwrap(api.POST("/api/v1/groups/{id}/members", { params: { path: { id } }, body: { device_ids: deviceIds } }))
        : unwrap(
            api.POST("/api/v1/groups/{id}/members/remove", { params: { path: { id } }, body: { device_ids: deviceIds } }),
          ),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: groupKeys.all });
      void qc.invalidateQueries({ queryKey: ["devices"] });
    },
  });
}

/** The live count of a rule being edited; `rule` undefined while the builder has nothing to send. */
export function usePreview(rule: unknown | undefined) {
  return useQuery({
    queryKey: groupKeys.preview(rule),
    queryFn: () => unwrap(api.POST("/api/v1/groups/preview", { body: { rule, limit: 10 } })),
    enabled: rule !== undefined,
    placeholderData: keepPreviousData,
    retry: false,
  });
}

export function useExplain(id: string, device: string | null) {
  return useQuery({
    queryKey: groupKeys.explain(id, device ?? ""),
    queryFn: () =>
      unwrap(api.GET("/api/v1/groups/{id}/explain/{device_id}", { params: { path: { id, device_id: device ?? "" } } })),
    enabled: device !== null,
  });
}

/**
 * The fields a rule may name with the operators each accepts, custom fields included — the
 * server's catalogue (`GET /api/v1/groups/rule-fields`), which the rule builder offers.
 */
export function useRuleFields() {
  return useQuery({
    queryKey: groupKeys.ruleFields,
    queryFn: () => unwrap(api.GET("/api/v1/groups/rule-fields")),
    staleTime: 60_000,
  });
}
