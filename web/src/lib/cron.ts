// Maintenance-window schedules: the 5-field cron language checked as the server checks it
// (crates/core/src/windows/cron.rs, same messages), described in words for the form's hint,
// and the window request built from the form. Also reads the server's joined problem message
// ("/schedule/expression: …; /timezone: …") back into problems per field.
import type { Schemas } from "../api/client";

export type Weekday = Schemas["Weekday"];
export type CreateWindowRequest = Schemas["CreateWindowRequest"];

const MAX_EXPRESSION_BYTES = 256;
export const MAX_WINDOW_MINUTES = 7 * 24 * 60;
export const DEVICE_ZONE = "device";

interface Field {
  name: string;
  min: number;
  max: number;
  names: readonly string[];
  firstName: number;
}

const MINUTE: Field = { name: "minute", min: 0, max: 59, names: [], firstName: 0 };
const HOUR: Field = { name: "hour", min: 0, max: 23, names: [], firstName: 0 };
const DOM: Field = { name: "day-of-month", min: 1, max: 31, names: [], firstName: 0 };
const MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"] as const;
const MONTH: Field = { name: "month", min: 1, max: 12, names: MONTH_NAMES, firstName: 1 };
const DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] as const;
// 7 is Sunday as well as 0.
const DOW: Field = { name: "day-of-week", min: 0, max: 7, names: DOW_NAMES, firstName: 0 };

const NICKNAMES: [string, string][] = [
  ["@yearly", "0 0 1 1 *"],
  ["@annually", "0 0 1 1 *"],
  ["@monthly", "0 0 1 * *"],
  ["@weekly", "0 0 * * 0"],
  ["@daily", "0 0 * * *"],
  ["@midnight", "0 0 * * *"],
  ["@hourly", "0 * * * *"],
];

/** A parsed expression: the values each field allows. */
export interface Cron {
  minutes: number[];
  hours: number[];
  doms: number[];
  months: number[];
  /** Sunday = 0. */
  dows: number[];
  domStar: boolean;
  dowStar: boolean;
}

function number(text: string): number | null {
  return /^\d{1,9}$/.test(text) ? Number(text) : null;
}

function value(text: string, f: Field): number {
  const n = number(text);
  if (n !== null) {
    if (n >= f.min && n <= f.max) return n;
    throw new Error(`${n} is out of range ${f.min}-${f.max}`);
  }
  const i = f.names.findIndex((x) => x.toLowerCase() === text.toLowerCase());
  if (i >= 0) return f.firstName + i;
  throw new Error(f.names.length === 0 ? `\`${text}\` is not a number` : `\`${text}\` is neither a number nor one of ${f.names.join(", ")}`);
}

function parseField(text: string, f: Field): Set<number> {
  const out = new Set<number>();
  for (const item of text.split(",")) {
    if (item === "") throw new Error("empty list item");
    const slash = item.indexOf("/");
    const range = slash < 0 ? item : item.slice(0, slash);
    let step: number | null = null;
    if (slash >= 0) {
      const s = item.slice(slash + 1);
      const width = f.max - f.min + 1;
      const n = number(s);
      if (n === null || n < 1 || n > width) throw new Error(`step \`${s}\` must be a number from 1 to ${width}`);
      step = n;
    }
    let lo: number;
    let hi: number;
    if (range === "*") [lo, hi] = [f.min, f.max];
    else if (range.includes("-")) {
      const dash = range.indexOf("-");
      const [a, b] = [range.slice(0, dash), range.slice(dash + 1)];
      [lo, hi] = [value(a, f), value(b, f)];
      if (lo > hi) throw new Error(`range ${a}-${b} runs backwards`);
    } else {
      lo = hi = value(range, f);
      if (step !== null) throw new Error(`a step needs a range: write ${range}-${f.max}/STEP or */STEP`);
    }
    for (let v = lo; v <= hi; v += step ?? 1) out.add(v);
  }
  return out;
}

const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);

/** Parses an expression, or gives the server's messages for what is wrong with it. */
export function parseCron(expression: string): { cron: Cron } | { errors: string[] } {
  if (new TextEncoder().encode(expression).length > MAX_EXPRESSION_BYTES) {
    return { errors: [`the expression is ${new TextEncoder().encode(expression).length} bytes; the limit is ${MAX_EXPRESSION_BYTES}`] };
  }
  const trimmed = expression.trim();
  let text = trimmed;
  if (trimmed.startsWith("@")) {
    const lower = trimmed.toLowerCase();
    const nick = NICKNAMES.find(([n]) => n === lower);
    if (lower === "@reboot") return { errors: ["@reboot names no time of day; a maintenance window needs one"] };
    if (!nick) return { errors: [`unknown nickname \`${trimmed}\`; known: ${NICKNAMES.map(([n]) => n).join(", ")}`] };
    text = nick[1];
  }
  const fields = text.split(/\s+/).filter((f) => f !== "");
  if (fields.length !== 5) {
    const hint = fields.length > 5 ? " (seconds and year fields are not supported)" : "";
    return { errors: [`expected 5 fields (minute hour day-of-month month day-of-week), found ${fields.length}${hint}`] };
  }
  const errors: string[] = [];
  const field = (t: string, f: Field) => {
    try {
      return parseField(t, f);
    } catch (e) {
      errors.push(`${f.name} field \`${t}\`: ${(e as Error).message}`);
      return new Set<number>();
    }
  };
  const minutes = field(fields[0]!, MINUTE);
  const hours = field(fields[1]!, HOUR);
  const doms = field(fields[2]!, DOM);
  const months = field(fields[3]!, MONTH);
  const dows = field(fields[4]!, DOW);
  if (errors.length > 0) return { errors };
  if (dows.has(7)) {
    dows.delete(7);
    dows.add(0);
  }
  const cron: Cron = {
    minutes: sorted(minutes),
    hours: sorted(hours),
    doms: sorted(doms),
    months: sorted(months),
    dows: sorted(dows),
    domStar: fields[2]!.startsWith("*"),
    dowStar: fields[4]!.startsWith("*"),
  };
  // Both day fields must match when either starts with `*` (classic cron): then a real date
  // (29 February included) is needed; every date falls on every weekday in some year.
  const LONGEST = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if ((cron.domStar || cron.dowStar) && !cron.months.some((m) => cron.doms.some((d) => d <= LONGEST[m]!))) {
    return { errors: [`\`${expression}\` never matches a real date`] };
  }
  return { cron };
}

// ---------------------------------------------------------------------------------------------
// In words
// ---------------------------------------------------------------------------------------------

const DAY_WORDS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTH_WORDS = ["", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

function list(words: string[]): string {
  return words.length <= 1 ? (words[0] ?? "") : `${words.slice(0, -1).join(", ")} and ${words[words.length - 1]}`;
}

/** Consecutive runs as "a to b" (three or more), others listed. */
function runs(values: number[], word: (v: number) => string): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j]! + 1) j++;
    if (j - i >= 2) parts.push(`${word(values[i]!)} to ${word(values[j]!)}`);
    else for (let k = i; k <= j; k++) parts.push(word(values[k]!));
    i = j + 1;
  }
  return list(parts);
}

const pad = (n: number) => String(n).padStart(2, "0");

function everyN(values: number[], min: number, max: number): number | null {
  if (values.length < 2 || values[0] !== min) return null;
  const step = values[1]! - values[0]!;
  const expected = Math.floor((max - min) / step) + 1;
  return values.length === expected && values.every((v, i) => v === min + i * step) ? step : null;
}

function timesOfDay(c: Cron): string {
  const allHours = c.hours.length === 24;
  if (c.minutes.length * c.hours.length <= 4) {
    return `at ${list(c.hours.flatMap((h) => c.minutes.map((m) => `${pad(h)}:${pad(m)}`)))}`;
  }
  const minuteStep = everyN(c.minutes, 0, 59);
  if (allHours && c.minutes.length === 60) return "every minute";
  if (allHours && minuteStep) return `every ${minuteStep} minutes`;
  if (allHours && c.minutes.length === 1) return `every hour at minute ${c.minutes[0]}`;
  const hours = `${c.hours.length === 1 ? "hour" : "hours"} ${runs(c.hours, (h) => pad(h))}`;
  if (c.minutes.length === 1) return `at minute ${c.minutes[0]} of ${hours}`;
  return `${c.minutes.length * c.hours.length} times a day (minutes ${runs(c.minutes, String)} of ${hours})`;
}

function days(c: Cron): string {
  const allDoms = c.doms.length === 31;
  const allDows = c.dows.length === 7;
  const weekdays = `on ${runs(c.dows, (d) => DAY_WORDS[d]!)}`;
  const doms = `on day ${runs(c.doms, String)} of the month`;
  let s: string;
  if (c.domStar && c.dowStar) s = allDoms && allDows ? "every day" : allDows ? doms : allDoms ? weekdays : `${doms}, if it is ${runs(c.dows, (d) => DAY_WORDS[d]!)}`;
  else if (c.domStar) s = allDoms ? weekdays : `${doms}, if it is ${runs(c.dows, (d) => DAY_WORDS[d]!)}`;
  else if (c.dowStar) s = allDows ? doms : `${doms}, if it is ${runs(c.dows, (d) => DAY_WORDS[d]!)}`;
  // Neither starts with `*`: classic cron opens on either.
  else s = `${doms}, and ${weekdays}`;
  if (c.months.length < 12) s += `, in ${runs(c.months, (m) => MONTH_WORDS[m]!)}`;
  return s;
}

export function formatMinutes(m: number): string {
  if (m % (24 * 60) === 0) return `${m / (24 * 60)} day${m === 24 * 60 ? "" : "s"}`;
  if (m % 60 === 0) return `${m / 60} h`;
  return m > 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min`;
}

/** "Opens at 02:00 on Saturday and Sunday", for the hint under the expression. */
export function describeCron(c: Cron): string {
  const t = timesOfDay(c);
  return `Opens ${t} ${days(c)}`;
}

// ---------------------------------------------------------------------------------------------
// The form
// ---------------------------------------------------------------------------------------------

export interface WindowForm {
  name: string;
  kind: "weekly" | "cron";
  days: Weekday[];
  start: string;
  expression: string;
  duration: number | "";
  zoneKind: "device" | "fixed";
  zone: string;
  groups: string[];
}

export const EMPTY_WINDOW: WindowForm = {
  name: "",
  kind: "weekly",
  days: ["sat", "sun"],
  start: "02:00",
  expression: "0 2 * * 6,0",
  duration: 120,
  zoneKind: "device",
  zone: "",
  groups: [],
};

const WEEK: Weekday[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

export function windowRequest(f: WindowForm): CreateWindowRequest {
  const duration_minutes = typeof f.duration === "number" ? f.duration : 0;
  return {
    name: f.name.trim(),
    groups: f.groups,
    timezone: f.zoneKind === "device" ? DEVICE_ZONE : f.zone.trim(),
    schedule:
      f.kind === "weekly"
        ? { kind: "weekly", days: WEEK.filter((d) => f.days.includes(d)), start: f.start, duration_minutes }
        : { kind: "cron", expression: f.expression.trim(), duration_minutes },
  };
}

/** Problems by the server's pointers (`/name`, `/schedule/expression`, …), several joined. */
export function windowProblems(f: WindowForm): Map<string, string> {
  const out = new Map<string, string>();
  const add = (p: string, m: string) => out.set(p, out.has(p) ? `${out.get(p)}; ${m}` : m);
  if (!f.name.trim()) add("/name", "give the window a name");
  if (f.groups.length === 0) add("/groups", "choose at least one group the window applies to");
  if (f.kind === "weekly") {
    if (f.days.length === 0) add("/schedule/days", "name at least one day");
    if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(f.start)) add("/schedule/start", `\`${f.start}\` is not a time of day; write HH:MM, from 00:00 to 23:59`);
  } else {
    const parsed = parseCron(f.expression);
    if ("errors" in parsed) parsed.errors.forEach((e) => add("/schedule/expression", e));
  }
  const d = f.duration;
  if (typeof d !== "number" || !Number.isInteger(d) || d < 1 || d > MAX_WINDOW_MINUTES) {
    add("/schedule/duration_minutes", `a window lasts 1 to ${MAX_WINDOW_MINUTES} minutes (one week)`);
  }
  if (f.zoneKind === "fixed" && !f.zone.trim()) add("/timezone", "choose a time zone");
  return out;
}

/**
 * The server's validation message ("/schedule/expression: …; /timezone: …") as problems per
 * pointer; `null` when it does not have that shape. Parts are split only before a pointer, as
 * messages themselves may contain "; ".
 */
export function splitServerProblems(message: string): Map<string, string> | null {
  const parts = message.split(/; (?=\/[a-z_/0-9]*: )/);
  const out = new Map<string, string>();
  for (const part of parts) {
    const m = /^(\/[a-z_/0-9]*): ([\s\S]*)$/.exec(part);
    if (!m) return null;
    const [, path, text] = m as unknown as [string, string, string];
    out.set(path, out.has(path) ? `${out.get(path)}; ${text}` : text);
  }
  return out;
}

/** The IANA zones this browser knows, for the picker (the server's database decides). */
export function knownZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  const zones = intl.supportedValuesOf?.("timeZone") ?? [];
  return zones.includes("UTC") ? zones : ["UTC", ...zones];
}
