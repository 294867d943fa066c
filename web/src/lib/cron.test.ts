// Cron expressions of maintenance windows: accepted and refused as the server does (same
// messages), described in words, and the server's joined problem message split per field.
import { describe, expect, it } from "vitest";
import { describeCron, EMPTY_WINDOW, parseCron, splitServerProblems, windowProblems, windowRequest } from "./cron";

function words(expr: string): string {
  const p = parseCron(expr);
  if ("errors" in p) throw new Error(p.errors.join("; "));
  return describeCron(p.cron);
}

describe("in words", () => {
  it.each([
    ["0 2 * * 6,0", "Opens at 02:00 on Sunday and Saturday"],
    ["0 22 * * 1-5", "Opens at 22:00 on Monday to Friday"],
    ["30 1 * * sat", "Opens at 01:30 on Saturday"],
    ["0 3 1 * *", "Opens at 03:00 on day 1 of the month"],
    ["0 0 1 1 *", "Opens at 00:00 on day 1 of the month, in January"],
    ["@daily", "Opens at 00:00 every day"],
    ["@weekly", "Opens at 00:00 on Sunday"],
    ["*/15 * * * *", "Opens every 15 minutes every day"],
    ["0 * * * *", "Opens every hour at minute 0 every day"],
    ["0 1,2 * * 7", "Opens at 01:00 and 02:00 on Sunday"],
    ["0 1-6 * * *", "Opens at minute 0 of hours 01 to 06 every day"],
    ["0 2 1,15 * mon", "Opens at 02:00 on day 1 and 15 of the month, and on Monday"],
    ["0 2 */10 * mon", "Opens at 02:00 on day 1, 11, 21 and 31 of the month, if it is Monday"],
    ["0 4 * 6-8 *", "Opens at 04:00 every day, in June to August"],
  ])("%s", (expr, want) => expect(words(expr)).toBe(want));
});

describe("refused as the server refuses", () => {
  it.each([
    ["0 2 * *", "expected 5 fields (minute hour day-of-month month day-of-week), found 4"],
    ["0 0 2 * * * 2026", "expected 5 fields (minute hour day-of-month month day-of-week), found 7 (seconds and year fields are not supported)"],
    ["60 2 * * *", "minute field `60`: 60 is out of range 0-59"],
    ["0 5-2 * * *", "hour field `5-2`: range 5-2 runs backwards"],
    ["0 2 * * FUN", "day-of-week field `FUN`: `FUN` is neither a number nor one of SUN, MON, TUE, WED, THU, FRI, SAT"],
    ["0 2 L * *", "day-of-month field `L`: `L` is not a number"],
    ["5/10 * * * *", "minute field `5/10`: a step needs a range: write 5-59/STEP or */STEP"],
    ["*/0 * * * *", "minute field `*/0`: step `0` must be a number from 1 to 60"],
    ["0,,5 * * * *", "minute field `0,,5`: empty list item"],
    ["0 0 30 2 *", "`0 0 30 2 *` never matches a real date"],
    ["@reboot", "@reboot names no time of day; a maintenance window needs one"],
    ["@often", "unknown nickname `@often`; known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"],
  ])("%s", (expr, message) => expect(parseCron(expr)).toEqual({ errors: [message] }));

  it("reports every bad field", () => {
    expect(parseCron("61 25 * * *")).toEqual({ errors: ["minute field `61`: 61 is out of range 0-59", "hour field `25`: 25 is out of range 0-23"] });
  });

  it("29 February is a real date, and 30 February with a weekday matches through the weekday", () => {
    expect("cron" in parseCron("0 0 29 2 *")).toBe(true);
    expect("cron" in parseCron("0 0 30 2 mon")).toBe(true);
  });
});

it("builds the request: device zone, fixed zone, weekly days in week order", () => {
  const base = { ...EMPTY_WINDOW, name: " Nightly ", groups: ["g1"] };
  expect(windowRequest({ ...base, kind: "cron", expression: " 0 22 * * 1-5 ", duration: 90 })).toEqual({
    name: "Nightly",
    groups: ["g1"],
    timezone: "device",
    schedule: { kind: "cron", expression: "0 22 * * 1-5", duration_minutes: 90 },
  });
  expect(windowRequest({ ...base, days: ["sun", "mon"], zoneKind: "fixed", zone: "Europe/Berlin" })).toEqual({
    name: "Nightly",
    groups: ["g1"],
    timezone: "Europe/Berlin",
    schedule: { kind: "weekly", days: ["mon", "sun"], start: "02:00", duration_minutes: 120 },
  });
  expect([...windowProblems({ ...EMPTY_WINDOW, duration: 10081, zoneKind: "fixed", kind: "cron", expression: "x" }).keys()]).toEqual([
    "/name",
    "/groups",
    "/schedule/expression",
    "/schedule/duration_minutes",
    "/timezone",
  ]);
});

it("splits the server's message per field, keeping messages that contain '; '", () => {
  expect(
    splitServerProblems(
      "/schedule/expression: unknown nickname `@x`; known: @yearly, @daily; /timezone: `Mars/Base` is not a known time zone; /groups/0: there is no group \"x\"",
    ),
  ).toEqual(
    new Map([
      ["/schedule/expression", "unknown nickname `@x`; known: @yearly, @daily"],
      ["/timezone", "`Mars/Base` is not a known time zone"],
      ["/groups/0", 'there is no group "x"'],
    ]),
  );
  expect(splitServerProblems("maintenance window w1")).toBeNull();
});
