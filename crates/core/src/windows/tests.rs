//! Tables for maintenance windows: validation problems with their paths, cron matching, open
//! and closed instants with the next change (DST in Europe/Berlin and America/New_York, device
//! zones), unions of overlapping windows, and a seeded consistency check of `next_change`.
//! The zone rules used (EU and US DST since 2007) are the same in every tzdata release and in
//! jiff's bundled copy, so the expectations hold on any machine.
//!
//! Tables are text, one case a line, columns split by `|`; a schedule is written
//! `weekly DAYS HH:MM MINUTES` (days comma-separated, `-` for none) or
//! `cron "EXPRESSION" MINUTES`; instants are RFC 3339, `never` is no change.

use capstan_proto::deploy::{Weekday, WindowSchedule};

use super::*;

fn ms(rfc3339: &str) -> i64 {
    match rfc3339.parse::<Timestamp>() {
        Ok(t) => t.as_millisecond(),
        Err(e) => panic!("bad fixture instant {rfc3339}: {e}"),
    }
}

fn show(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_string(),
        Err(_) => format!("{ms}ms"),
    }
}

fn weekly(days: &[Weekday], start: &str, duration_minutes: u32) -> WindowSchedule {
    WindowSchedule::Weekly {
        days: days.to_vec(),
        start: start.to_owned(),
        duration_minutes,
    }
}

fn cron(expression: &str, duration_minutes: u32) -> WindowSchedule {
    WindowSchedule::Cron {
        expression: expression.to_owned(),
        duration_minutes,
    }
}

fn day(name: &str) -> Weekday {
    match name {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => panic!("bad fixture day {name:?}"),
    }
}

fn number(text: &str) -> u32 {
    match text.trim().parse() {
        Ok(n) => n,
        Err(e) => panic!("bad fixture number {text:?}: {e}"),
    }
}

/// `weekly mon,wed 22:00 120` or `cron "0 2 * * *" 60`.
fn schedule(text: &str) -> WindowSchedule {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("weekly ") {
        let parts: Vec<&str> = rest.split(' ').collect();
        let [days, start, minutes] = parts.as_slice() else {
            panic!("bad fixture schedule {text:?}");
        };
        let days: Vec<Weekday> = match *days {
            "-" => Vec::new(),
            list => list.split(',').map(day).collect(),
        };
        // `[..]` may bracket a start, and `_` in it stands for a space (columns are trimmed).
        let start = start.trim_matches('[').trim_matches(']').replace('_', " ");
        weekly(&days, &start, number(minutes))
    } else if let Some(rest) = text.strip_prefix("cron \"") {
        let Some((expression, minutes)) = rest.rsplit_once('"') else {
            panic!("bad fixture schedule {text:?}");
        };
        cron(expression, number(minutes))
    } else {
        panic!("bad fixture schedule {text:?}")
    }
}

fn compile(schedule: &WindowSchedule, tz: &str) -> CompiledWindow {
    match CompiledWindow::compile(schedule, tz) {
        Ok(w) => w,
        Err(p) => panic!("{schedule:?} in {tz} should compile: {p:?}"),
    }
}

/// The non-empty, non-comment lines of a table, split into trimmed columns.
fn rows(table: &str) -> impl Iterator<Item = Vec<&str>> {
    table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('|').map(str::trim).collect())
}

/// `-` is no device zone, `''` an empty one.
fn device(text: &str) -> Option<&str> {
    match text {
        "-" => None,
        "''" => Some(""),
        name => Some(name),
    }
}

fn open_or_closed(text: &str) -> bool {
    match text {
        "open" => true,
        "closed" => false,
        _ => panic!("bad fixture state {text:?}"),
    }
}

/// `never` is `None`.
fn instant(text: &str) -> Option<i64> {
    (text != "never").then(|| ms(text))
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// schedule | timezone | problem paths | a phrase of the first message
const INVALID: &str = r#"
weekly - 02:00 60             | UTC               | /schedule/days             | at least one day
weekly mon,tue,mon 02:00 60   | UTC               | /schedule/days/2           | mon is listed twice
weekly mon 24:00 60           | UTC               | /schedule/start            | HH:MM, from 00:00 to 23:59
weekly mon 7:5 60             | UTC               | /schedule/start            | `7:5`
weekly mon 07:60 60           | UTC               | /schedule/start            | HH:MM
weekly mon [07:00_] 60        | UTC               | /schedule/start            | `07:00 `
weekly mon [_07:00] 60        | UTC               | /schedule/start            | HH:MM
weekly mon 07:00x 60          | UTC               | /schedule/start            | HH:MM
weekly mon 0700 60            | UTC               | /schedule/start            | HH:MM
weekly mon +7:00 60           | UTC               | /schedule/start            | HH:MM
weekly mon 07:0a 60           | UTC               | /schedule/start            | HH:MM
weekly mon [] 60              | UTC               | /schedule/start            | ``
weekly mon 07:00 0            | UTC               | /schedule/duration_minutes | 1 to 10080
weekly mon 07:00 10081        | UTC               | /schedule/duration_minutes | 10081
weekly mon 07:00 60           | Mars/Olympus_Mons | /timezone                  | not a known time zone
weekly mon 07:00 60           |                   | /timezone                  | IANA
weekly mon 07:00 60           | Device            | /timezone                  | `device`
weekly mon 07:00 60           | localtime         | /timezone                  | not a known time zone
weekly mon 07:00 60           | posixrules        | /timezone                  | not a known time zone
weekly mon 07:00 60           | Factory           | /timezone                  | not a known time zone
weekly mon 07:00 60           | +01:00            | /timezone                  | not a known time zone
weekly - 24:00 0              | Nowhere           | /timezone,/schedule/days,/schedule/start,/schedule/duration_minutes | Nowhere
cron "0 2 * *" 60             | UTC | /schedule/expression | expected 5 fields
cron "0 0 2 * * *" 60         | UTC | /schedule/expression | seconds and year fields are not supported
cron "0 0 2 * * * 2024" 60    | UTC | /schedule/expression | found 7
cron "" 60                    | UTC | /schedule/expression | found 0
cron "@reboot" 60             | UTC | /schedule/expression | @reboot
cron "@fortnightly" 60        | UTC | /schedule/expression | @daily
cron "0 0 30 2 *" 60          | UTC | /schedule/expression | never matches a real date
cron "0 0 31 4,6,9,11 *" 60   | UTC | /schedule/expression | never matches
cron "61 * * * *" 60          | UTC | /schedule/expression | minute field `61`: 61 is out of range 0-59
cron "* 24 * * *" 60          | UTC | /schedule/expression | hour field
cron "* * 0 * *" 60           | UTC | /schedule/expression | day-of-month field
cron "* * 32 * *" 60          | UTC | /schedule/expression | out of range 1-31
cron "* * * 13 *" 60          | UTC | /schedule/expression | month field
cron "* * * 0 *" 60           | UTC | /schedule/expression | month field
cron "* * * * 8" 60           | UTC | /schedule/expression | day-of-week field
cron "*/0 * * * *" 60         | UTC | /schedule/expression | step `0`
cron "*/61 * * * *" 60        | UTC | /schedule/expression | from 1 to 60
cron "5-1 * * * *" 60         | UTC | /schedule/expression | runs backwards
cron "5/15 * * * *" 60        | UTC | /schedule/expression | 5-59/STEP
cron "MON * * * *" 60         | UTC | /schedule/expression | not a number
cron "* * * FOO *" 60         | UTC | /schedule/expression | JAN
cron "* * * * SUNDAY" 60      | UTC | /schedule/expression | SUN
cron "0 0 L * *" 60           | UTC | /schedule/expression | `L`
cron "0 0 ? * MON" 60         | UTC | /schedule/expression | `?`
cron "0 0 * * 5#3" 60         | UTC | /schedule/expression | 5#3
cron "1,,2 * * * *" 60        | UTC | /schedule/expression | empty list item
cron "-1 * * * *" 60          | UTC | /schedule/expression | minute field
cron "1- * * * *" 60          | UTC | /schedule/expression | minute field
cron "61 24 * * *" 0          | UTC | /schedule/expression,/schedule/expression,/schedule/duration_minutes | minute field
"#;

#[test]
fn validation_problems_name_the_offending_field() {
    for row in rows(INVALID) {
        let [schedule_text, tz, paths, phrase] = row.as_slice() else {
            panic!("bad fixture row {row:?}");
        };
        let schedule = schedule(schedule_text);
        let problems = match CompiledWindow::compile(&schedule, tz) {
            Ok(_) => panic!("{schedule_text} in {tz:?} should be rejected"),
            Err(p) => p,
        };
        let got: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        let want: Vec<&str> = paths.split(',').collect();
        assert_eq!(got, want, "{schedule_text} in {tz:?}: {problems:?}");
        assert!(
            problems[0].message.contains(phrase),
            "{schedule_text}: message {:?} should mention {phrase:?}",
            problems[0].message
        );
    }
    let long = cron(&"1".repeat(300), 60);
    match CompiledWindow::compile(&long, "UTC") {
        Ok(_) => panic!("a 300-byte expression should be rejected"),
        Err(p) => assert!(p[0].message.contains("limit is 256"), "{p:?}"),
    }
}

/// schedule | timezone
const VALID: &str = r#"
weekly mon,wed,sun 00:00 1        | UTC
weekly sat 23:59 10080            | Europe/Berlin
weekly mon 09:00 60               | device
cron "0 2 * * MON-FRI" 60         | America/New_York
cron "*/15 1-3 * JAN,jul 0,7" 30  | UTC
cron "0 0 29 2 *" 60              | UTC
cron "@daily" 60                  | UTC
cron "@WEEKLY" 60                 | UTC
cron "  0 2 * * *  " 60           | UTC
cron "0 22 * * 5-7" 60            | UTC
cron "0 0 1-31/2 * *" 60          | UTC
cron "0 0 * * sun-sat" 60         | Asia/Kathmandu
cron "0-59/7 0-23/5 1,15 1-12/3 *" 60 | UTC
"#;

#[test]
fn valid_schedules_compile() {
    for row in rows(VALID) {
        let [schedule_text, tz] = row.as_slice() else {
            panic!("bad fixture row {row:?}");
        };
        let w = compile(&schedule(schedule_text), tz);
        assert_eq!(w.uses_device_zone(), *tz == "device", "{schedule_text}");
        assert_eq!(w.timezone(), *tz, "{schedule_text}");
    }
    let sloppy = compile(&schedule("weekly mon 09:00 60"), "europe/berlin");
    assert_eq!(sloppy.timezone(), "Europe/Berlin");
}

// ---------------------------------------------------------------------------------------------
// Cron matching (one-minute windows in UTC: open exactly in the matching minute)
// ---------------------------------------------------------------------------------------------

/// expression | instant | matches. 2024-06-03 is a Monday.
const CRON_MATCHES: &str = r#"
0 0 * * 7          | 2024-06-09T00:00:00Z | open
0 0 * * 7          | 2024-06-10T00:00:00Z | closed
0 0 * * 0          | 2024-06-09T00:00:00Z | open
0 0 * * 5-7        | 2024-06-08T00:00:00Z | open
0 0 * * 5-7        | 2024-06-09T00:00:00Z | open
0 0 * * 5-7        | 2024-06-06T00:00:00Z | closed
0 0 * * sun-sat    | 2024-06-05T00:00:00Z | open
0 12 * * MON,fri   | 2024-06-03T12:00:00Z | open
0 12 * * MON,fri   | 2024-06-04T12:00:00Z | closed
0 12 * * MON,fri   | 2024-06-07T12:00:00Z | open
*/20 * * * *       | 2024-06-03T07:40:00Z | open
*/20 * * * *       | 2024-06-03T07:50:00Z | closed
10-50/20 * * * *   | 2024-06-03T07:10:00Z | open
10-50/20 * * * *   | 2024-06-03T07:30:00Z | open
10-50/20 * * * *   | 2024-06-03T07:50:00Z | open
10-50/20 * * * *   | 2024-06-03T07:20:00Z | closed
10-50/20 * * * *   | 2024-06-03T07:00:00Z | closed
5,35 9-10 * * *    | 2024-06-03T10:35:00Z | open
5,35 9-10 * * *    | 2024-06-03T11:05:00Z | closed
# Day-of-week is `*`, so both day fields must match: odd days only.
0 12 1-31/2 * *    | 2024-06-03T12:00:00Z | open
0 12 1-31/2 * *    | 2024-06-04T12:00:00Z | closed
# Both day fields restricted: the 13th or any Friday.
0 0 13 * FRI       | 2024-06-13T00:00:00Z | open
0 0 13 * FRI       | 2024-06-14T00:00:00Z | open
0 0 13 * FRI       | 2024-06-15T00:00:00Z | closed
# Day-of-month starts with `*`: odd days that are Fridays.
0 0 */2 * FRI      | 2024-06-21T00:00:00Z | open
0 0 */2 * FRI      | 2024-06-14T00:00:00Z | closed
0 0 */2 * FRI      | 2024-06-13T00:00:00Z | closed
0 0 1 */3 *        | 2024-04-01T00:00:00Z | open
0 0 1 */3 *        | 2024-05-01T00:00:00Z | closed
30 4 1 JAN,jul *   | 2024-07-01T04:30:00Z | open
30 4 1 JAN,jul *   | 2024-08-01T04:30:00Z | closed
@hourly            | 2024-06-03T05:00:00Z | open
@hourly            | 2024-06-03T05:01:00Z | closed
@monthly           | 2024-06-01T00:00:00Z | open
@monthly           | 2024-06-02T00:00:00Z | closed
@weekly            | 2024-06-09T00:00:00Z | open
@weekly            | 2024-06-10T00:00:00Z | closed
@yearly            | 2024-01-01T00:00:00Z | open
@annually          | 2024-02-01T00:00:00Z | closed
@midnight          | 2024-02-01T00:00:00Z | open
0 0 29 2 *         | 2024-02-29T00:00:00Z | open
"#;

#[test]
fn cron_fields_match_the_minutes_classic_cron_would_run() {
    for row in rows(CRON_MATCHES) {
        let [expression, at, state] = row.as_slice() else {
            panic!("bad fixture row {row:?}");
        };
        let w = compile(&cron(expression, 1), "UTC");
        assert_eq!(
            w.is_open(ms(at), None),
            open_or_closed(state),
            "`{expression}` at {at}"
        );
    }
}

#[test]
fn longest_gap_between_start_days() {
    // (expression, longest gap in days between days with starts)
    let cases = [
        ("0 2 * * *", 1),
        ("0 2 * * MON-FRI", 3),
        ("0 2 * * SUN", 7),
        ("0 2 31 * *", 61),
        ("0 2 1 1 *", 366),
        // 2096-02-29 to 2104-02-29: 2100 is not a leap year.
        ("0 2 29 2 *", 2921),
        // Odd days that are Fridays.
        ("0 0 */2 * FRI", 21),
    ];
    for (expression, gap) in cases {
        let spec = match cron::parse(expression) {
            Ok(spec) => spec,
            Err(e) => panic!("{expression}: {e:?}"),
        };
        assert_eq!(cron::max_gap_days(&spec.days), Some(gap), "{expression}");
    }
    // The weekday shortcut agrees with the calendar walk for every set of weekdays.
    for set in 1u8..128 {
        let list: Vec<String> = (0..7)
            .filter(|w| set & (1 << w) != 0)
            .map(|w| w.to_string())
            .collect();
        let expression = format!("0 0 * * {}", list.join(","));
        let spec = match cron::parse(&expression) {
            Ok(spec) => spec,
            Err(e) => panic!("{expression}: {e:?}"),
        };
        assert_eq!(
            cron::max_gap_days(&spec.days),
            cron::max_gap_days_by_calendar(&spec.days),
            "{expression}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Open/closed at chosen instants, with the next change
// ---------------------------------------------------------------------------------------------

/// schedule | zone | device zone | at | open/closed | next change | what it shows
fn check(table: &str) {
    for row in rows(table) {
        let [schedule_text, tz, dev, at, state, next, what] = row.as_slice() else {
            panic!("bad fixture row {row:?}");
        };
        let w = compile(&schedule(schedule_text), tz);
        let (at_ms, dev) = (ms(at), device(dev));
        assert_eq!(
            w.is_open(at_ms, dev),
            open_or_closed(state),
            "{what}: is_open at {at}"
        );
        assert_eq!(
            w.next_change(at_ms, dev).map(show),
            instant(next).map(show),
            "{what}: next_change from {at}"
        );
    }
}

#[test]
fn utc_windows_open_and_close_on_time() {
    check(
        r#"
weekly mon,wed 22:00 120   | UTC | - | 2024-06-03T21:59:59.999Z | closed | 2024-06-03T22:00:00Z | before the start
weekly mon,wed 22:00 120   | UTC | - | 2024-06-03T22:00:00Z     | open   | 2024-06-04T00:00:00Z | at the start
weekly mon,wed 22:00 120   | UTC | - | 2024-06-04T00:00:00Z     | closed | 2024-06-05T22:00:00Z | the end is exclusive
weekly mon,wed 22:00 120   | UTC | - | 2024-06-06T00:00:00Z     | closed | 2024-06-10T22:00:00Z | Thursday waits for Monday
weekly sun 23:00 180       | UTC | - | 2024-06-10T01:00:00Z     | open   | 2024-06-10T02:00:00Z | a Sunday-night window is still open on Monday
cron "0 2 * * MON-FRI" 60  | UTC | - | 2024-06-08T02:30:00Z     | closed | 2024-06-10T02:00:00Z | weekdays only
cron "0 2 * * MON-FRI" 60  | UTC | - | 2024-06-07T02:59:59.999Z | open   | 2024-06-07T03:00:00Z | last millisecond
cron "*/15 9-10 * * *" 5   | UTC | - | 2024-06-03T10:46:00Z     | open   | 2024-06-03T10:50:00Z | quarter hours
cron "*/15 9-10 * * *" 5   | UTC | - | 2024-06-03T10:50:00Z     | closed | 2024-06-04T09:00:00Z | after the last quarter
cron "0 0 13 * FRI" 60     | UTC | - | 2024-06-15T00:30:00Z     | closed | 2024-06-21T00:00:00Z | 13th or Friday
cron "0 0 */2 * FRI" 60    | UTC | - | 2024-06-14T00:30:00Z     | closed | 2024-06-21T00:00:00Z | odd Fridays
cron "30 4 1 JAN,jul *" 60 | UTC | - | 2024-06-30T00:00:00Z     | closed | 2024-07-01T04:30:00Z | named months
cron "@daily" 30           | UTC | - | 2024-06-03T00:10:00Z     | open   | 2024-06-03T00:30:00Z | nickname
# Beyond the two-year minimum horizon: the longest gap is known at compile time.
cron "0 12 29 2 *" 60      | UTC | - | 2025-03-01T00:00:00Z     | closed | 2028-02-29T12:00:00Z | 29 February
cron "0 12 29 2 *" 60      | UTC | - | 2097-03-01T00:00:00Z     | closed | 2104-02-29T12:00:00Z | 2100 is no leap year
weekly mon 00:00 10080     | UTC | - | 2024-06-05T12:00:00Z     | open   | never                | always open never changes
cron "0 * * * *" 90        | UTC | - | 2024-06-05T12:00:00Z     | open   | never                | self-overlapping starts never close
weekly mon 00:00 10079     | UTC | - | 2024-06-04T00:00:00Z     | open   | 2024-06-09T23:59:00Z | one minute short of a week
"#,
    );
}

#[test]
fn europe_berlin_spring_forward() {
    check(
        r#"
# 2024-03-31: 02:00 CET becomes 03:00 CEST at 01:00Z; 02:00-02:59 does not exist.
weekly sun 02:30 60     | Europe/Berlin | - | 2024-03-31T00:59:59.999Z | closed | 2024-03-31T01:00:00Z | a start in the gap waits for its end
weekly sun 02:30 60     | Europe/Berlin | - | 2024-03-31T01:00:00Z     | open   | 2024-03-31T02:00:00Z | opened at 03:00 CEST, one real hour
weekly sun 02:30 60     | Europe/Berlin | - | 2024-03-24T01:00:00Z     | closed | 2024-03-24T01:30:00Z | a week earlier it is 02:30 CET
weekly sun 01:00 240    | Europe/Berlin | - | 2024-03-31T03:59:00Z     | open   | 2024-03-31T04:00:00Z | spanning the change: 4 real hours
weekly sun 01:00 240    | Europe/Berlin | - | 2024-03-30T23:59:00Z     | closed | 2024-03-31T00:00:00Z | spanning the change opens at 01:00 CET
cron "30 2 * * *" 30    | Europe/Berlin | - | 2024-03-30T01:00:00Z     | closed | 2024-03-30T01:30:00Z | daily cron on the day before
cron "30 2 * * *" 30    | Europe/Berlin | - | 2024-03-30T12:00:00Z     | closed | 2024-03-31T01:00:00Z | daily cron jumps into the gap day
cron "30 2 * * *" 30    | Europe/Berlin | - | 2024-03-31T01:00:00Z     | open   | 2024-03-31T01:30:00Z | daily cron in the gap
cron "30 2 * * *" 30    | Europe/Berlin | - | 2024-03-31T01:30:00Z     | closed | 2024-04-01T00:30:00Z | once on the gap day, then CEST
cron "*/15 2 * * *" 15  | Europe/Berlin | - | 2024-03-31T01:00:00Z     | open   | 2024-03-31T01:15:00Z | four starts in the gap collapse into one
cron "* * * * *" 1      | Europe/Berlin | - | 2024-03-31T00:30:00Z     | open   | 2024-10-27T01:00:00Z | every minute stays open through the gap
"#,
    );
}

#[test]
fn europe_berlin_fall_back() {
    check(
        r#"
# 2024-10-27: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:00-02:59 happens twice.
weekly sun 02:30 60     | Europe/Berlin | - | 2024-10-27T00:29:00Z     | closed | 2024-10-27T00:30:00Z | opens at the first 02:30
weekly sun 02:30 60     | Europe/Berlin | - | 2024-10-27T01:29:59.999Z | open   | 2024-10-27T01:30:00Z | lasts one real hour
weekly sun 02:30 60     | Europe/Berlin | - | 2024-10-27T01:30:00Z     | closed | 2024-11-03T01:30:00Z | not again at the second 02:30
weekly sun 00:00 240    | Europe/Berlin | - | 2024-10-27T01:59:00Z     | open   | 2024-10-27T02:00:00Z | spanning the change: 4 real hours
weekly sun 00:00 240    | Europe/Berlin | - | 2024-10-26T21:59:00Z     | closed | 2024-10-26T22:00:00Z | spanning the change opens at 00:00 CEST
cron "30 2 * * *" 60    | Europe/Berlin | - | 2024-10-27T01:30:00Z     | closed | 2024-10-28T01:30:00Z | daily cron once on the overlap day
cron "* * * * *" 1      | Europe/Berlin | - | 2024-10-27T01:30:00Z     | closed | 2024-10-27T02:00:00Z | every minute: closed in the repeated hour
weekly mon 00:00 10080  | Europe/Berlin | - | 2024-10-25T00:00:00Z     | open   | 2024-10-27T22:00:00Z | a week-long window ends an hour early in a 169-hour week
weekly mon 00:00 10080  | Europe/Berlin | - | 2024-10-27T22:00:00Z     | closed | 2024-10-27T23:00:00Z | and reopens at Monday 00:00 CET
weekly mon 00:00 10080  | Europe/Berlin | - | 2024-10-27T23:00:00Z     | open   | 2025-10-26T22:00:00Z | then stays open through spring until next autumn
"#,
    );
}

#[test]
fn america_new_york_dst() {
    check(
        r#"
# 2024-03-10: 02:00 EST becomes 03:00 EDT at 07:00Z.
weekly sun 02:15 30      | America/New_York | - | 2024-03-10T06:00:00Z | closed | 2024-03-10T07:00:00Z | a start in the gap
weekly sun 02:15 30      | America/New_York | - | 2024-03-10T07:00:00Z | open   | 2024-03-10T07:30:00Z | opened at 03:00 EDT
cron "0 0 * * SUN" 240   | America/New_York | - | 2024-03-10T08:59:00Z | open   | 2024-03-10T09:00:00Z | spanning spring forward: 4 real hours
# 2024-11-03: 02:00 EDT becomes 01:00 EST at 06:00Z; 01:00-01:59 happens twice.
weekly sun 01:30 60      | America/New_York | - | 2024-11-03T05:00:00Z | closed | 2024-11-03T05:30:00Z | the first 01:30
weekly sun 01:30 60      | America/New_York | - | 2024-11-03T06:00:00Z | open   | 2024-11-03T06:30:00Z | one real hour from 01:30 EDT
weekly sun 01:30 60      | America/New_York | - | 2024-11-03T06:30:00Z | closed | 2024-11-10T06:30:00Z | not again at 01:30 EST
cron "0 22 * * SAT" 360  | America/New_York | - | 2024-11-03T01:59:00Z | closed | 2024-11-03T02:00:00Z | opens at 22:00 EDT
cron "0 22 * * SAT" 360  | America/New_York | - | 2024-11-03T07:59:00Z | open   | 2024-11-03T08:00:00Z | spanning fall back: 6 real hours
"#,
    );
}

#[test]
fn device_zone_windows_follow_the_device() {
    check(
        r#"
weekly mon 09:00 60 | device     | Asia/Tokyo              | 2024-06-03T00:30:00Z | open   | 2024-06-03T01:00:00Z | Tokyo
weekly mon 09:00 60 | device     | America/New_York        | 2024-06-03T13:30:00Z | open   | 2024-06-03T14:00:00Z | New York
weekly mon 09:00 60 | device     | -                       | 2024-06-03T00:30:00Z | closed | 2024-06-03T09:00:00Z | no zone means UTC
weekly mon 09:00 60 | device     | Not/AZone               | 2024-06-03T00:30:00Z | closed | 2024-06-03T09:00:00Z | an unknown zone means UTC
weekly mon 09:00 60 | device     | ''                      | 2024-06-03T09:30:00Z | open   | 2024-06-03T10:00:00Z | an empty zone means UTC
weekly mon 09:00 60 | device     | W. Europe Standard Time | 2024-06-03T07:30:00Z | closed | 2024-06-03T09:00:00Z | a Windows zone name is not IANA
weekly mon 09:00 60 | Asia/Tokyo | America/New_York        | 2024-06-03T00:30:00Z | open   | 2024-06-03T01:00:00Z | a fixed zone ignores the device's
"#,
    );
}

#[test]
fn next_open_skips_starts_inside_an_opening() {
    let sunday = compile(&schedule("weekly sun 02:30 60"), "Europe/Berlin");
    let at = ms("2024-10-27T00:45:00Z");
    assert!(sunday.is_open(at, None));
    assert_eq!(
        sunday.next_open(at, None).map(show),
        Some(show(ms("2024-11-03T01:30:00Z")))
    );
    // Strictly after: at an opening instant, the next one is a week later.
    assert_eq!(
        sunday.next_open(ms("2024-11-03T01:30:00Z"), None).map(show),
        Some(show(ms("2024-11-10T01:30:00Z")))
    );
    let overlapping = compile(&cron("0 * * * *", 90), "UTC");
    assert_eq!(
        overlapping.next_open(ms("2024-06-05T12:00:00Z"), None),
        None
    );
    let hourly = compile(&cron("0 * * * *", 30), "UTC");
    assert_eq!(
        hourly.next_open(ms("2024-06-05T12:10:00Z"), None).map(show),
        Some(show(ms("2024-06-05T13:00:00Z")))
    );
}

#[test]
fn instants_outside_the_calendar_are_closed_and_never_change() {
    let w = compile(&cron("* * * * *", 10), "Europe/Berlin");
    for at in [
        i64::MIN,
        i64::MAX,
        -400_000_000_000_000,
        400_000_000_000_000,
    ] {
        assert!(!w.is_open(at, None));
        assert_eq!(w.next_change(at, None), None);
        assert_eq!(w.next_open(at, None), None);
        assert!(!any_open(std::slice::from_ref(&w), at, None));
        assert_eq!(next_change_any(std::slice::from_ref(&w), at, None), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Several windows
// ---------------------------------------------------------------------------------------------

/// The windows the union table names.
fn named_window(name: &str) -> CompiledWindow {
    let (text, tz) = match name {
        "a" => (r#"cron "0 1 * * *" 120"#, "UTC"),
        "b" => (r#"cron "0 2 * * *" 120"#, "UTC"),
        "c" => (r#"cron "0 4 * * *" 60"#, "UTC"),
        "mon10" => ("weekly mon 10:00 30", "UTC"),
        "berlin" => ("weekly sun 02:30 60", "Europe/Berlin"),
        "utc1" => (r#"cron "0 1 * * *" 60"#, "UTC"),
        "dev9" => ("weekly mon 09:00 60", "device"),
        "utc930" => ("weekly mon 09:30 60", "UTC"),
        _ => panic!("bad fixture window {name:?}"),
    };
    compile(&schedule(text), tz)
}

/// windows | device zone | at | open/closed | next change | what it shows.
/// a = 01:00-03:00, b = 02:00-04:00, c = 04:00-05:00 daily in UTC.
const UNIONS: &str = r#"
a             | -          | 2024-06-03T01:30:00Z | open   | 2024-06-03T03:00:00Z | a alone closes at 03:00
a,b           | -          | 2024-06-03T01:30:00Z | open   | 2024-06-03T04:00:00Z | overlapping windows close together
b,a           | -          | 2024-06-03T01:30:00Z | open   | 2024-06-03T04:00:00Z | order does not matter
a,b,c         | -          | 2024-06-03T01:30:00Z | open   | 2024-06-03T05:00:00Z | touching windows merge
a,b,c         | -          | 2024-06-03T02:30:00Z | open   | 2024-06-03T05:00:00Z | from inside the overlap
a,b,c         | -          | 2024-06-03T05:00:00Z | closed | 2024-06-04T01:00:00Z | closed until tomorrow
a,mon10       | -          | 2024-06-03T05:00:00Z | closed | 2024-06-03T10:00:00Z | the earliest opening wins
none          | -          | 2024-06-03T05:00:00Z | closed | never                | no windows
berlin,utc1   | -          | 2024-10-27T00:45:00Z | open   | 2024-10-27T02:00:00Z | zones mix
dev9,utc930   | Asia/Tokyo | 2024-06-03T00:30:00Z | open   | 2024-06-03T01:00:00Z | device in Tokyo
dev9,utc930   | Asia/Tokyo | 2024-06-03T01:00:00Z | closed | 2024-06-03T09:30:00Z | device in Tokyo, later
dev9,utc930   | -          | 2024-06-03T09:15:00Z | open   | 2024-06-03T10:30:00Z | device in UTC overlaps
"#;

#[test]
fn overlapping_windows_change_where_their_union_does() {
    for row in rows(UNIONS) {
        let [names, dev, at, state, next, what] = row.as_slice() else {
            panic!("bad fixture row {row:?}");
        };
        let windows: Vec<CompiledWindow> = match *names {
            "none" => Vec::new(),
            list => list.split(',').map(named_window).collect(),
        };
        let (at_ms, dev) = (ms(at), device(dev));
        assert_eq!(
            any_open(&windows, at_ms, dev),
            open_or_closed(state),
            "{what}: any_open"
        );
        assert_eq!(
            next_change_any(&windows, at_ms, dev).map(show),
            instant(next).map(show),
            "{what}: next_change_any"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Consistency of next_change with is_open
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a fixed seed gives the same instants on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo).unwrap_or(1).max(1);
        lo + i64::try_from(self.next() % span).unwrap_or(0)
    }
}

#[test]
fn is_open_is_constant_until_next_change_and_flips_there() {
    let windows = [
        compile(&schedule("weekly mon,wed 22:00 120"), "UTC"),
        compile(&schedule("weekly sun 02:30 60"), "Europe/Berlin"),
        compile(&schedule("weekly sun 01:30 60"), "America/New_York"),
        compile(&cron("*/15 2 * * *", 15), "Europe/Berlin"),
        compile(&cron("0 22 * * SAT", 360), "America/New_York"),
        compile(&cron("* * * * *", 1), "Europe/Berlin"),
        compile(&schedule("weekly mon 00:00 10080"), "Europe/Berlin"),
        // A 30-minute DST shift.
        compile(&cron("0 0 13 * FRI", 1440), "Australia/Lord_Howe"),
        compile(&cron("30 1 * * *", 90), "device"),
        compile(&cron("0 2 * * *", 30), "Asia/Kathmandu"),
    ];
    let groups: Vec<Vec<usize>> = (0..windows.len())
        .map(|i| vec![i])
        .chain([
            vec![0, 3],
            vec![1, 2, 4],
            vec![3, 9],
            (0..windows.len()).collect(),
        ])
        .collect();
    let device = Some("Asia/Kolkata");
    let mut rng = Rng(0x00c0_ffee);
    let (lo, hi) = (ms("2024-01-01T00:00:00Z"), ms("2026-12-31T00:00:00Z"));
    for group in &groups {
        let ws: Vec<CompiledWindow> = group.iter().map(|&i| windows[i].clone()).collect();
        for _ in 0..60 {
            // Half the instants land on a minute boundary, where starts and ends are.
            let mut t = rng.between(lo, hi);
            if rng.next().is_multiple_of(2) {
                t -= t.rem_euclid(MINUTE_MS);
            }
            let open = any_open(&ws, t, device);
            let change = next_change_any(&ws, t, device);
            let until = match change {
                Some(c) => {
                    assert!(
                        c > t,
                        "group {group:?}: change {} not after {}",
                        show(c),
                        show(t)
                    );
                    assert_ne!(
                        any_open(&ws, c, device),
                        open,
                        "group {group:?}: no flip at {} (from {})",
                        show(c),
                        show(t)
                    );
                    assert_eq!(
                        any_open(&ws, c - 1, device),
                        open,
                        "group {group:?}: flipped before {} (from {})",
                        show(c),
                        show(t)
                    );
                    c
                }
                None => t + 30 * DAY_MS,
            };
            for _ in 0..8 {
                let p = rng.between(t, until);
                assert_eq!(
                    any_open(&ws, p, device),
                    open,
                    "group {group:?}: changed at {} between {} and {}",
                    show(p),
                    show(t),
                    show(until)
                );
            }
            if let [w] = ws.as_slice() {
                assert_eq!(w.is_open(t, device), open);
                assert_eq!(w.next_change(t, device), change);
                let expected_open = if open {
                    change.and_then(|c| w.next_change(c, device))
                } else {
                    change
                };
                assert_eq!(
                    w.next_open(t, device),
                    expected_open,
                    "window {group:?} from {}",
                    show(t)
                );
            }
        }
    }
}
