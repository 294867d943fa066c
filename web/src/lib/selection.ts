// The device list's bulk selection: which devices are chosen across pages (with their hostnames,
// so dialogs can name them without another request), what the header checkbox shows for the
// page in view, and how a bulk result is worded for the operator.

/** Chosen devices: id → hostname. Kept immutable so React sees every change. */
export type Selection = ReadonlyMap<string, string>;

export const EMPTY_SELECTION: Selection = new Map();

/** Bulk endpoints accept at most this many ids in one request. */
export const MAX_BULK_IDS = 10_000;

export interface Row {
  id: string;
  hostname: string;
}

export function toggle(sel: Selection, row: Row): Selection {
  const next = new Map(sel);
  if (next.has(row.id)) next.delete(row.id);
  else next.set(row.id, row.hostname);
  return next;
}

/** Adds every row of the page; rows chosen on other pages stay chosen. */
export function selectPage(sel: Selection, rows: readonly Row[]): Selection {
  const next = new Map(sel);
  for (const r of rows) next.set(r.id, r.hostname);
  return next;
}

/** Removes the page's rows only; rows chosen on other pages stay chosen. */
export function clearPage(sel: Selection, rows: readonly Row[]): Selection {
  const next = new Map(sel);
  for (const r of rows) next.delete(r.id);
  return next;
}

export type PageState = "none" | "some" | "all";

/** What the header checkbox shows: all rows of the page chosen, some, or none. */
export function pageState(sel: Selection, rows: readonly Row[]): PageState {
  if (rows.length === 0) return "none";
  const chosen = rows.filter((r) => sel.has(r.id)).length;
  if (chosen === 0) return "none";
  return chosen === rows.length ? "all" : "some";
}

/** The header checkbox's click: a fully chosen page is cleared, otherwise the page is chosen. */
export function togglePage(sel: Selection, rows: readonly Row[]): Selection {
  return pageState(sel, rows) === "all" ? clearPage(sel, rows) : selectPage(sel, rows);
}

/** Hostnames for a confirmation text: the first few, then how many more. */
export function describeSelection(sel: Selection, shown = 3): string {
  const names = [...sel.values()].sort((a, b) => a.localeCompare(b));
  if (names.length === 0) return "no devices";
  const head = names.slice(0, shown).join(", ");
  const rest = names.length - shown;
  return rest > 0 ? `${head} and ${rest.toLocaleString()} more` : head;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** The server's `BulkResult` for an action, in words: "Tag prod added to 3 devices (2 already had it)". */
export function bulkMessage(
  action: "add-tags" | "remove-tags" | "add-group" | "remove-group",
  result: { matched: number; changed: number },
  what: string,
): string {
  const unchanged = Math.max(0, result.matched - result.changed);
  const devices = plural(result.changed, "device");
  const were = (what: string, one: string, many: string) =>
    `${plural(unchanged, "device")} ${unchanged === 1 ? one : many} ${what}`;
  switch (action) {
    case "add-tags":
      return `${what} added to ${devices}${unchanged ? ` (${were("it", "already had", "already had")})` : ""}.`;
    case "remove-tags":
      return `${what} removed from ${devices}${unchanged ? ` (${were("it", "did not have", "did not have")})` : ""}.`;
    case "add-group":
      return `${devices} added to ${what}${unchanged ? ` (${were("", "was already a member", "were already members").trimEnd()})` : ""}.`;
    case "remove-group":
      return `${devices} removed from ${what}${unchanged ? ` (${were("", "was not a member", "were not members").trimEnd()})` : ""}.`;
  }
}

const TAG_RE = /^[A-Za-z0-9\-_.:/=]{1,64}$/;

/** Why a list of tags would be refused by the server (1..=32 tags of letters, digits, `-_.:/=`). */
export function tagProblems(tags: readonly string[]): string[] {
  const problems: string[] = [];
  if (tags.length === 0) problems.push("Enter at least one tag.");
  if (tags.length > 32) problems.push("At most 32 tags at once.");
  const bad = tags.filter((t) => !TAG_RE.test(t));
  if (bad.length) {
    problems.push(`Not a valid tag: ${bad.join(", ")} (letters, digits and - _ . : / =, up to 64 characters).`);
  }
  return problems;
}
