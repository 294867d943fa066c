// The dynamic-group rule language (crates/core/src/rules) as an editable tree for the visual
// builder, and back to the JSON the server validates. The builder edits conditions; `not` is
// a flag on a node rather than a node of its own, which is how operators think of it ("is
// not in group X"). Anything the builder does not understand is kept as raw JSON, so opening
// and saving a rule never loses a part of it.

export type FieldType = "string" | "address" | "number" | "boolean" | "timestamp";

/** A field the builder offers, from the server's catalogue (`GET /api/v1/groups/rule-fields`). */
export interface FieldDef {
  path: string;
  type: FieldType;
  /** The operators the server accepts on this field. */
  operators: readonly string[];
  description?: string;
  /** The allowed values of a field with a closed set (enums). */
  values?: readonly string[];
}

/** The catalogue as the server sends it. */
export interface CatalogueEntry {
  name: string;
  type: FieldType;
  operators: readonly string[];
  description: string;
  values?: readonly string[];
}

/**
 * The server's catalogue as the builder's field list. The server validates every rule, so the
 * builder never needs a list of its own: a field missing from the catalogue (typed by hand) is
 * refused on preview with the valid fields named.
 */
export function fieldsFromCatalogue(entries: readonly CatalogueEntry[]): FieldDef[] {
  return entries.map((e) => ({
    path: e.name,
    type: e.type,
    operators: e.operators,
    description: e.description,
    ...(e.values && e.values.length > 0 ? { values: e.values } : {}),
  }));
}

export const OPERATOR_LABELS: Record<string, string> = {
  eq: "equals",
  ne: "does not equal",
  in: "is one of",
  contains: "contains",
  starts_with: "starts with",
  ends_with: "ends with",
  regex: "matches regex",
  cidr: "is in network",
  gt: ">",
  gte: "≥",
  lt: "<",
  lte: "≤",
  older_than: "is older than",
  newer_than: "is newer than",
  exists: "exists",
  not_exists: "does not exist",
  version_eq: "version =",
  version_ne: "version ≠",
  version_gt: "version >",
  version_gte: "version ≥",
  version_lt: "version <",
  version_lte: "version ≤",
};

export const SOFTWARE_SOURCES = ["dpkg", "rpm", "pacman", "snap", "flatpak", "msi", "windows_uninstall", "winget", "choco"];

export function findField(path: string, fields: readonly FieldDef[]): FieldDef | undefined {
  return fields.find((f) => f.path === path);
}

/** A field's type; text for a field the catalogue does not know (the server will name it). */
export function fieldType(path: string, fields: readonly FieldDef[] = []): FieldType {
  return findField(path, fields)?.type ?? "string";
}

/** The operators the catalogue lists for a field; every operator for an unknown one. */
export function operatorsFor(path: string, fields: readonly FieldDef[] = []): readonly string[] {
  return findField(path, fields)?.operators ?? Object.keys(OPERATOR_LABELS);
}

export function takesValue(op: string): boolean {
  return op !== "exists" && op !== "not_exists";
}

let nextId = 0;
/** A key for React lists; never sent to the server. */
export function newId(): string {
  nextId += 1;
  return `n${nextId}`;
}

interface Base {
  id: string;
  negated: boolean;
}
export type RuleNode =
  | (Base & { kind: "all" | "any"; children: RuleNode[] })
  | (Base & { kind: "field"; field: string; op: string; value: string; caseInsensitive: boolean; scheme?: string })
  | (Base & { kind: "software"; name: string; source: string; op: string; value: string })
  | (Base & { kind: "tag"; tag: string })
  | (Base & { kind: "group"; group: string })
  | (Base & { kind: "raw"; json: unknown });

export type ConditionKind = "field" | "software" | "tag" | "group";

export function emptyCondition(kind: ConditionKind = "field"): RuleNode {
  const b = { id: newId(), negated: false };
  switch (kind) {
    case "field":
      return { ...b, kind, field: "os.id", op: "eq", value: "", caseInsensitive: false };
    case "software":
      return { ...b, kind, name: "", source: "", op: "", value: "" };
    case "tag":
      return { ...b, kind, tag: "" };
    case "group":
      return { ...b, kind, group: "" };
  }
}

export function emptyGroup(kind: "all" | "any" = "all", children: RuleNode[] = []): RuleNode {
  return { id: newId(), negated: false, kind, children };
}

type Json = unknown;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A JSON value as the text an operator edits: lists comma-separated, the rest as written. */
export function valueToText(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (Array.isArray(v)) return v.map((x) => valueToText(x)).join(", ");
  return String(v);
}

/**
 * The text of a value input as the JSON value the server expects for this field type and
 * operator: lists for `in`, numbers for number fields, booleans for boolean fields. Text that
 * does not fit (a number field with "abc") is sent as written, so the server's validation
 * names the problem.
 */
export function textToValue(type: FieldType, op: string, text: string): unknown {
  const one = (t: string): unknown => {
    const s = t.trim();
    if (type === "number" && s !== "" && Number.isFinite(Number(s))) return Number(s);
    if (type === "boolean" && (s === "true" || s === "false")) return s === "true";
    if (type === "timestamp" && /^\d{10,}$/.test(s) && !["older_than", "newer_than"].includes(op)) return Number(s);
    return s;
  };
  if (op === "in") {
    return text
      .split(",")
      .map((p) => p.trim())
      .filter((p) => p !== "")
      .map(one);
  }
  return one(text);
}

/** Reads a rule (as stored by the server) into the builder's tree. */
export function parseRule(json: Json, negated = false): RuleNode {
  const b = () => ({ id: newId(), negated });
  if (!isObject(json)) return { ...b(), kind: "raw", json };
  const keys = Object.keys(json);
  if (keys.length === 1 && "not" in json) return parseRule(json.not, !negated);
  if (keys.length === 1 && (Array.isArray(json.all) || Array.isArray(json.any))) {
    const kind = "all" in json ? "all" : "any";
    const list = (json[kind] as Json[]).map((c) => parseRule(c));
    return { ...b(), kind, children: list };
  }
  if (keys.length === 1 && typeof json.tag === "string") return { ...b(), kind: "tag", tag: json.tag };
  if (keys.length === 1 && typeof json.group === "string") return { ...b(), kind: "group", group: json.group };
  if (keys.length === 1 && isObject(json.software) && typeof json.software.name === "string") {
    const s = json.software;
    const known = Object.keys(s).every((k) => ["name", "source", "op", "value"].includes(k));
    if (known) {
      return {
        ...b(),
        kind: "software",
        name: s.name as string,
        source: typeof s.source === "string" ? s.source : "",
        op: typeof s.op === "string" ? s.op : "",
        value: valueToText(s.value),
      };
    }
  }
  if (typeof json.field === "string" && typeof json.op === "string") {
    const known =
      keys.every((k) => ["field", "op", "value", "case_insensitive", "scheme"].includes(k)) &&
      (json.scheme === undefined || typeof json.scheme === "string");
    if (known) {
      return {
        ...b(),
        kind: "field",
        field: json.field,
        op: json.op,
        value: valueToText(json.value),
        caseInsensitive: json.case_insensitive === true,
        ...(typeof json.scheme === "string" ? { scheme: json.scheme } : {}),
      };
    }
  }
  return { ...b(), kind: "raw", json };
}

function positive(n: RuleNode, fields: readonly FieldDef[]): Json {
  switch (n.kind) {
    case "all":
    case "any":
      return { [n.kind]: n.children.map((c) => toRuleJson(c, fields)) };
    case "field": {
      const out: Record<string, unknown> = { field: n.field.trim(), op: n.op };
      if (takesValue(n.op)) out.value = textToValue(fieldType(n.field, fields), n.op, n.value);
      if (n.caseInsensitive) out.case_insensitive = true;
      // The version scheme is kept as read; the builder has no control for it yet.
      if (n.scheme) out.scheme = n.scheme;
      return out;
    }
    case "software": {
      const s: Record<string, unknown> = { name: n.name.trim() };
      if (n.source) s.source = n.source;
      if (n.op) {
        s.op = n.op;
        s.value = n.value.trim();
      }
      return { software: s };
    }
    case "tag":
      return { tag: n.tag.trim() };
    case "group":
      return { group: n.group };
    case "raw":
      return n.json;
  }
}

/** The builder's tree as the rule JSON the server takes; `fields` give values their JSON type. */
export function toRuleJson(n: RuleNode, fields: readonly FieldDef[] = []): Json {
  const p = positive(n, fields);
  return n.negated ? { not: p } : p;
}

/** Replaces the node with `id` anywhere in the tree (`null` removes it). */
export function replaceNode(root: RuleNode, id: string, next: RuleNode | null): RuleNode | null {
  if (root.id === id) return next;
  if (root.kind !== "all" && root.kind !== "any") return root;
  const children: RuleNode[] = [];
  for (const c of root.children) {
    const r = replaceNode(c, id, next);
    if (r) children.push(r);
  }
  return { ...root, children };
}

/** A one-line reading of a rule, for lists and confirmations ("os.id equals debian AND tag web"). */
export function describeRule(n: RuleNode, groupName: (id: string) => string = (id) => id): string {
  const not = n.negated ? "NOT " : "";
  switch (n.kind) {
    case "all":
    case "any": {
      if (n.children.length === 0) return `${not}${n.kind === "all" ? "(every device)" : "(no device)"}`;
      const inner = n.children.map((c) => describeRule(c, groupName)).join(n.kind === "all" ? " AND " : " OR ");
      return n.children.length > 1 || n.negated ? `${not}(${inner})` : inner;
    }
    case "field":
      return `${not}${n.field} ${OPERATOR_LABELS[n.op] ?? n.op}${takesValue(n.op) ? ` ${n.value}` : ""}`;
    case "software":
      return `${not}software ${n.name}${n.source ? ` (${n.source})` : ""}${n.op ? ` ${OPERATOR_LABELS[n.op] ?? n.op} ${n.value}` : " installed"}`;
    case "tag":
      return `${not}tag ${n.tag}`;
    case "group":
      return `${not}in group ${groupName(n.group)}`;
    case "raw":
      return `${not}${JSON.stringify(n.json)}`;
  }
}

/** The builder always edits a group at the top: a single condition is wrapped in "all". */
export function parseRootRule(json: Json): RuleNode {
  const n = parseRule(json);
  return (n.kind === "all" || n.kind === "any") && !n.negated ? n : emptyGroup("all", [n]);
}
