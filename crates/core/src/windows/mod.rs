//! Maintenance-window arithmetic: validating a window's schedule and time zone, deciding
//! whether a device's windows are open at an instant, and finding the next instant at which
//! that answer changes (so the server can recompile the device's manifest exactly then).
//! Everything is a function of its inputs; instants are Unix milliseconds.
//!
//! # Semantics
//!
//! - A window *starts* at local times in its time zone: for a weekly schedule at `start` on each
//!   listed day, for a cron schedule at every minute the 5-field expression matches (see
//!   *Cron* below). Each start opens the window for `duration_minutes` of real elapsed
//!   time (1 ..= [`limits::MAX_WINDOW_MINUTES`]), so a 4-hour window across a DST change is 4
//!   real hours, whatever the wall clock shows. A start before `at` whose duration has not run
//!   out still counts.
//! - A local start time `c` opens at the *first instant at which the local clock reads `c` or
//!   later*. So a time inside a spring-forward gap (02:30 in Europe/Berlin on the last Sunday of
//!   March) opens at the first instant after the gap (03:00 CEST), and a time inside a fall-back
//!   overlap opens at its first (earlier) occurrence only: each local start happens exactly once,
//!   never twice. Consequences worth knowing: several starts inside one gap collapse into one,
//!   and a schedule dense enough to be always open (`* * * * *` for one minute) is closed during
//!   the repeated hour of a fall-back night, because no start falls into it.
//! - The window is open at `t` when some start `s` has `s <= t < s + duration`. Overlapping or
//!   touching openings (of one window or of several) merge: the answer changes only where the
//!   union of all openings begins or ends.
//! - Time zones: an IANA name, `UTC`, or `device`, meaning each device's own zone as its
//!   inventory reports it (an IANA name); an unknown, invalid or missing device zone counts as
//!   UTC. Zone data comes from the system database (`/usr/share/zoneinfo`, Debian `tzdata`)
//!   and, where that is missing, from a copy built into the binary.
//!
//! # Cron
//!
//! Exactly five fields, `minute hour day-of-month month day-of-week`, each `*`, a number, a range
//! `A-B`, a step `*/N` or `A-B/N`, or a comma list of those; months and weekdays may be named
//! (`JAN`, `MON`, any case), weekday 0 and 7 are Sunday, and the nicknames `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` stand for their usual
//! expressions. When both day fields are restricted (neither starts with `*`) a day matches if
//! either matches, as in classic cron; otherwise both must. Seconds or year fields, `@reboot`,
//! `L`, `W`, `#` and `?` are rejected, and so is an expression that matches no real date
//! (`0 0 30 2 *`).
//!
//! # Bounded work
//!
//! A query walks the calendar day by day from a little before `at` (as far back as the longest
//! duration) to a horizon: two years, or longer when the cron schedule can go longer without a
//! start (a 29 February schedule waits up to eight years; the longest gap is computed at
//! compile time over the 400-year calendar cycle). Days without a start cost a few integer
//! operations; days with starts cost one or two time-zone look-ups, plus one per start on the
//! rare days with a zone transition. An opening that lasts through the whole horizon is
//! reported as never closing (`None`).

mod cron;
#[cfg(test)]
mod tests;

use capstan_proto::deploy::{Weekday, WindowSchedule, limits};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use crate::jobs::{Problem, problem};

/// The `timezone` value that means "each device's own zone".
pub const DEVICE_ZONE: &str = "device";

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// jiff bounds UTC offsets to under 26 hours, so a local day starts within this of the UTC day
/// of the same date.
const MAX_OFFSET_MS: i64 = 26 * 3_600_000;
/// Searches look at least this far ahead: long enough to pass through every DST transition of
/// a year (where an otherwise continuous opening may break) twice.
const MIN_HORIZON_DAYS: i64 = 2 * 366;

/// Where a window's local times are read.
#[derive(Debug, Clone)]
enum Zone {
    Fixed(TimeZone),
    Device,
}

/// Which days have starts.
#[derive(Debug, Clone, Copy)]
enum Days {
    /// Bit `w` set: weekday `w`, Sunday = 0.
    Weekly(u8),
    Cron(cron::DayFields),
}

impl Days {
    fn matches(&self, day: &CivilDay) -> bool {
        match self {
            Days::Weekly(mask) => mask & (1 << day.dow) != 0,
            Days::Cron(fields) => fields.matches(day.month, day.dom, day.dow),
        }
    }
}

/// A validated window, ready to answer "is it open" and "when does that change".
#[derive(Debug, Clone)]
pub struct CompiledWindow {
    zone: Zone,
    days: Days,
    /// Local minutes of the day (0..1440) that start the window on a matching day, ascending.
    starts: Vec<u16>,
    /// The openings of one matching day, merged, as milliseconds after local midnight; valid
    /// as they are on days without a zone transition (where local time is a fixed shift of
    /// real time).
    day_runs: Vec<(i64, i64)>,
    duration_ms: i64,
    /// How many days ahead a search goes (see the module documentation).
    horizon_days: i64,
}

impl CompiledWindow {
    /// Validates and compiles a window. Problems carry JSON pointers into the window request
    /// (`/schedule/start`, `/schedule/expression`, `/schedule/days/1`,
    /// `/schedule/duration_minutes`, `/timezone`).
    pub fn compile(schedule: &WindowSchedule, timezone: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let zone = compile_zone(timezone, &mut problems);
        let (duration_minutes, shape) = match schedule {
            WindowSchedule::Weekly {
                days,
                start,
                duration_minutes,
            } => (
                *duration_minutes,
                compile_weekly(days, start, &mut problems),
            ),
            WindowSchedule::Cron {
                expression,
                duration_minutes,
            } => (*duration_minutes, compile_cron(expression, &mut problems)),
        };
        if !(1..=limits::MAX_WINDOW_MINUTES).contains(&duration_minutes) {
            problems.push(problem(
                "/schedule/duration_minutes",
                format!(
                    "a window lasts 1 to {} minutes (one week); {duration_minutes} is outside",
                    limits::MAX_WINDOW_MINUTES
                ),
            ));
        }
        match (zone, shape) {
            (Some(zone), Some((days, starts, gap_days))) if problems.is_empty() => {
                let duration_ms = i64::from(duration_minutes) * MINUTE_MS;
                let day_runs = merge_day_runs(&starts, duration_ms);
                Ok(CompiledWindow {
                    zone,
                    days,
                    starts,
                    day_runs,
                    duration_ms,
                    horizon_days: MIN_HORIZON_DAYS.max(gap_days + 2),
                })
            }
            _ => Err(problems),
        }
    }

    /// The zone as it should be stored: `device`, or the database's spelling of the IANA name
    /// (`europe/berlin` compiles as `Europe/Berlin`).
    pub fn timezone(&self) -> &str {
        match &self.zone {
            Zone::Device => DEVICE_ZONE,
            Zone::Fixed(tz) => tz.iana_name().unwrap_or("UTC"),
        }
    }

    /// Whether the window's local times are each device's own (`timezone` = `device`), so its
    /// openings differ per device.
    pub fn uses_device_zone(&self) -> bool {
        matches!(self.zone, Zone::Device)
    }

    /// Whether the window is open at `at_ms`, read in the window's zone or, for a `device`
    /// window, in `device_tz` (an IANA name; unknown, invalid or missing means UTC).
    pub fn is_open(&self, at_ms: i64, device_tz: Option<&str>) -> bool {
        in_range(at_ms) && self.open_in(&self.zone_for(device_tz), at_ms)
    }

    /// The first instant after `at_ms` at which [`is_open`](Self::is_open) changes: the close
    /// when open, the next opening when closed. `None` when it never changes (within the search
    /// horizon: a window open through it, or one that never opens again).
    pub fn next_change(&self, at_ms: i64, device_tz: Option<&str>) -> Option<i64> {
        next_change_any(std::slice::from_ref(self), at_ms, device_tz)
    }

    /// The next instant strictly after `after_ms` at which the window goes from closed to
    /// open. A start while the window is already open (overlapping openings) is not an opening.
    pub fn next_open(&self, after_ms: i64, device_tz: Option<&str>) -> Option<i64> {
        let tz = self.zone_for(device_tz);
        search(&[(self, &tz)], after_ms, Want::Open)
    }

    fn zone_for(&self, device_tz: Option<&str>) -> TimeZone {
        match &self.zone {
            Zone::Fixed(tz) => tz.clone(),
            Zone::Device => resolve_device_zone(device_tz),
        }
    }

    /// The zone to read local times in, given the device's (already looked up).
    fn tz<'a>(&'a self, device: &'a TimeZone) -> &'a TimeZone {
        match &self.zone {
            Zone::Fixed(tz) => tz,
            Zone::Device => device,
        }
    }

    fn open_in(&self, tz: &TimeZone, at_ms: i64) -> bool {
        let first = first_day(at_ms, self.duration_ms);
        let last = at_ms.div_euclid(DAY_MS) + 2;
        for (start, end) in Spans::new(self, tz, first, last) {
            if start > at_ms {
                return false;
            }
            if at_ms < end {
                return true;
            }
        }
        false
    }
}

/// Whether any of `windows` is open at `at_ms` (see [`CompiledWindow::is_open`]).
pub fn any_open(windows: &[CompiledWindow], at_ms: i64, device_tz: Option<&str>) -> bool {
    if !in_range(at_ms) {
        return false;
    }
    let device = resolve_device_zone(device_tz);
    windows.iter().any(|w| w.open_in(w.tz(&device), at_ms))
}

/// The first instant after `at_ms` at which [`any_open`] changes: where the union of all the
/// windows' openings ends (when open) or next begins (when closed). `None` when it never
/// changes within the search horizon, and for no windows at all.
pub fn next_change_any(
    windows: &[CompiledWindow],
    at_ms: i64,
    device_tz: Option<&str>,
) -> Option<i64> {
    let device = resolve_device_zone(device_tz);
    let zoned: Vec<(&CompiledWindow, &TimeZone)> =
        windows.iter().map(|w| (w, w.tz(&device))).collect();
    search(&zoned, at_ms, Want::Change)
}

fn compile_zone(timezone: &str, problems: &mut Vec<Problem>) -> Option<Zone> {
    if timezone == DEVICE_ZONE {
        return Some(Zone::Device);
    }
    // The database also holds files that are not zones of a place: the host's own zone
    // (differs per server), the POSIX default rules and the "no zone yet" placeholder.
    let not_a_place = ["localtime", "posixrules", "factory"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(timezone));
    match TimeZone::get(timezone) {
        Ok(tz) if !timezone.is_empty() && !not_a_place => Some(Zone::Fixed(tz)),
        _ => {
            problems.push(problem(
                "/timezone",
                format!(
                    "`{timezone}` is not a known time zone; use an IANA name such as \
                     Europe/Berlin, UTC, or `{DEVICE_ZONE}` for each device's own zone"
                ),
            ));
            None
        }
    }
}

/// A compiled schedule shape: the day rule, the local start minutes of a matching day, and the
/// longest gap in days between matching days.
type Shape = (Days, Vec<u16>, i64);

fn compile_weekly(days: &[Weekday], start: &str, problems: &mut Vec<Problem>) -> Option<Shape> {
    let mut mask = 0u8;
    let mut ok = true;
    if days.is_empty() {
        problems.push(problem("/schedule/days", "name at least one day"));
        ok = false;
    }
    for (i, day) in days.iter().enumerate() {
        let bit = 1 << sunday_zero(*day);
        if mask & bit != 0 {
            problems.push(problem(
                format!("/schedule/days/{i}"),
                format!("{} is listed twice", weekday_name(*day)),
            ));
            ok = false;
        }
        mask |= bit;
    }
    let minute = parse_hhmm(start);
    if minute.is_none() {
        problems.push(problem(
            "/schedule/start",
            format!("`{start}` is not a time of day; write HH:MM, from 00:00 to 23:59"),
        ));
    }
    match (ok, minute) {
        (true, Some(minute)) => Some((Days::Weekly(mask), vec![minute], 7)),
        _ => None,
    }
}

fn compile_cron(expression: &str, problems: &mut Vec<Problem>) -> Option<Shape> {
    let spec = match cron::parse(expression) {
        Ok(spec) => spec,
        Err(messages) => {
            problems.extend(
                messages
                    .into_iter()
                    .map(|m| problem("/schedule/expression", m)),
            );
            return None;
        }
    };
    let Some(gap) = cron::max_gap_days(&spec.days) else {
        problems.push(problem(
            "/schedule/expression",
            format!("`{expression}` never matches a real date"),
        ));
        return None;
    };
    let mut starts = Vec::new();
    for hour in 0..24u16 {
        if spec.hours & (1 << hour) == 0 {
            continue;
        }
        for minute in 0..60u16 {
            if spec.minutes & (1 << minute) != 0 {
                starts.push(hour * 60 + minute);
            }
        }
    }
    Some((Days::Cron(spec.days), starts, gap))
}

/// `HH:MM`, exactly: two digits each, 00:00 to 23:59. Minutes of the day.
fn parse_hhmm(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let digit = |i: usize| b[i].is_ascii_digit().then(|| u16::from(b[i] - b'0'));
    let hour = digit(0)? * 10 + digit(1)?;
    let minute = digit(3)? * 10 + digit(4)?;
    (hour < 24 && minute < 60).then_some(hour * 60 + minute)
}

fn sunday_zero(day: Weekday) -> u8 {
    match day {
        Weekday::Sun => 0,
        Weekday::Mon => 1,
        Weekday::Tue => 2,
        Weekday::Wed => 3,
        Weekday::Thu => 4,
        Weekday::Fri => 5,
        Weekday::Sat => 6,
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// The openings of one day with a constant UTC offset, merged, relative to local midnight.
fn merge_day_runs(starts: &[u16], duration_ms: i64) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &minute in starts {
        let start = i64::from(minute) * MINUTE_MS;
        let end = start + duration_ms;
        match runs.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => runs.push((start, end)),
        }
    }
    runs
}

fn resolve_device_zone(device_tz: Option<&str>) -> TimeZone {
    device_tz
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC)
}

/// Instants jiff can place on a calendar (years -9999 to 9999); outside them a window is
/// never open and nothing changes.
fn in_range(ms: i64) -> bool {
    Timestamp::from_millisecond(ms).is_ok()
}

/// The first day (days since 1970-01-01, UTC) whose starts could still be open at `at_ms`:
/// the longest duration back, plus slack for the UTC offset.
fn first_day(at_ms: i64, longest_ms: i64) -> i64 {
    at_ms.saturating_sub(longest_ms).div_euclid(DAY_MS) - 2
}

/// A calendar date walked one day at a time with plain integers.
#[derive(Debug, Clone, Copy)]
struct CivilDay {
    /// Days since 1970-01-01.
    num: i64,
    year: i32,
    month: u8,
    dom: u8,
    /// Sunday = 0.
    dow: u8,
}

impl CivilDay {
    fn from_num(num: i64) -> Option<Self> {
        let ts = Timestamp::from_second(num.checked_mul(86_400)?).ok()?;
        let date = Offset::UTC.to_datetime(ts).date();
        Some(CivilDay {
            num,
            year: i32::from(date.year()),
            month: u8::try_from(date.month()).ok()?,
            dom: u8::try_from(date.day()).ok()?,
            dow: u8::try_from(date.weekday().to_sunday_zero_offset()).ok()?,
        })
    }

    fn advance(&mut self) {
        self.num += 1;
        self.dow = (self.dow + 1) % 7;
        if self.dom < cron::days_in_month(self.year, self.month) {
            self.dom += 1;
        } else if self.month < 12 {
            self.dom = 1;
            self.month += 1;
        } else {
            self.dom = 1;
            self.month = 1;
            self.year += 1;
        }
    }

    fn date(&self) -> Option<Date> {
        Date::new(
            i16::try_from(self.year).ok()?,
            i8::try_from(self.month).ok()?,
            i8::try_from(self.dom).ok()?,
        )
        .ok()
    }

    /// Local midnight as if the zone were UTC, in milliseconds.
    fn civil_ms(&self) -> i64 {
        self.num * DAY_MS
    }
}

/// The openings `[start, end)` of one window, day by day, in non-decreasing order of start.
struct Spans<'a> {
    window: &'a CompiledWindow,
    tz: &'a TimeZone,
    day: Option<CivilDay>,
    last_day: i64,
    buf: Vec<(i64, i64)>,
    pos: usize,
}

impl<'a> Spans<'a> {
    fn new(window: &'a CompiledWindow, tz: &'a TimeZone, first_day: i64, last_day: i64) -> Self {
        Spans {
            window,
            tz,
            day: CivilDay::from_num(first_day),
            last_day,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Fills `buf` with the openings of `day`; false when the day is beyond what jiff can
    /// represent (the walk stops there).
    fn fill(&mut self, day: &CivilDay) -> bool {
        if !self.window.days.matches(day) {
            return true;
        }
        let Some(date) = day.date() else {
            return false;
        };
        let civil = day.civil_ms();
        if let Some(offset_ms) = constant_offset(self.tz, date, civil) {
            let midnight = civil - offset_ms;
            self.buf.extend(
                self.window
                    .day_runs
                    .iter()
                    .map(|(a, b)| (midnight + a, midnight + b)),
            );
            return true;
        }
        for &minute in &self.window.starts {
            let Some(start) = resolve(self.tz, date, civil, minute) else {
                return false;
            };
            self.buf.push((start, start + self.window.duration_ms));
        }
        true
    }
}

impl Iterator for Spans<'_> {
    type Item = (i64, i64);

    fn next(&mut self) -> Option<(i64, i64)> {
        loop {
            if let Some(span) = self.buf.get(self.pos) {
                self.pos += 1;
                return Some(*span);
            }
            let day = self.day.filter(|d| d.num <= self.last_day)?;
            self.buf.clear();
            self.pos = 0;
            if self.fill(&day) {
                let mut next = day;
                next.advance();
                self.day = Some(next);
            } else {
                self.day = None;
            }
        }
    }
}

/// The UTC offset (ms) of the whole local day `date` when no zone transition touches it, so
/// its local times are a fixed shift of real time.
fn constant_offset(tz: &TimeZone, date: Date, civil_midnight_ms: i64) -> Option<i64> {
    let AmbiguousOffset::Unambiguous { offset } = tz
        .to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .offset()
    else {
        return None;
    };
    let offset_ms = i64::from(offset.seconds()) * 1000;
    let midnight = civil_midnight_ms - offset_ms;
    let next = tz
        .following(Timestamp::from_millisecond(midnight).ok()?)
        .next();
    match next {
        Some(t) if t.timestamp().as_millisecond() < midnight + DAY_MS => None,
        _ => Some(offset_ms),
    }
}

/// The instant a start at local `minute` of `date` opens: the first instant at which the local
/// clock reads that time or later (after a gap; the earlier occurrence in an overlap).
fn resolve(tz: &TimeZone, date: Date, civil_midnight_ms: i64, minute: u16) -> Option<i64> {
    let civil = civil_midnight_ms + i64::from(minute) * MINUTE_MS;
    // `minute` < 1440, so the hour and minute are in range for `at`.
    let dt = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    let ms = |o: Offset| civil - i64::from(o.seconds()) * 1000;
    Some(match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => ms(offset),
        AmbiguousOffset::Fold { before, .. } => ms(before),
        AmbiguousOffset::Gap { before, after } => {
            // The gap's transition lies in (civil - after, civil - before].
            let lower = Timestamp::from_millisecond(ms(after)).ok()?;
            match tz.following(lower).next() {
                Some(t) => t.timestamp().as_millisecond(),
                None => ms(before),
            }
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The next change of open/closed.
    Change,
    /// The next change from closed to open.
    Open,
}

/// Walks the merged openings of `windows` from before `at_ms` and answers `want`.
fn search(windows: &[(&CompiledWindow, &TimeZone)], at_ms: i64, want: Want) -> Option<i64> {
    if windows.is_empty() || !in_range(at_ms) {
        return None;
    }
    let longest = windows.iter().map(|(w, _)| w.duration_ms).max()?;
    let horizon = windows.iter().map(|(w, _)| w.horizon_days).max()?;
    let first = first_day(at_ms, longest);
    let last = at_ms.div_euclid(DAY_MS) + horizon;
    // Anything starting on a later day than `last` starts after this instant.
    let bound = (last + 1) * DAY_MS - MAX_OFFSET_MS;

    let mut heads: Vec<(Option<(i64, i64)>, Spans)> = windows
        .iter()
        .map(|(w, tz)| {
            let mut spans = Spans::new(w, tz, first, last);
            (spans.next(), spans)
        })
        .collect();
    let mut next_span = || {
        let (i, _) = heads
            .iter()
            .enumerate()
            .filter_map(|(i, (head, _))| head.map(|(start, _)| (i, start)))
            .min_by_key(|(_, start)| *start)?;
        let (head, spans) = &mut heads[i];
        let span = *head;
        *head = spans.next();
        span
    };

    // The current run of merged openings.
    let mut run: Option<(i64, i64)> = None;
    while let Some((start, end)) = next_span() {
        if let Some((_, run_end)) = &mut run
            && start <= *run_end
        {
            *run_end = (*run_end).max(end);
            continue;
        }
        // `start` begins a new run, so the previous one is complete.
        if let Some((run_start, run_end)) = run
            && want == Want::Change
            && run_start <= at_ms
            && at_ms < run_end
        {
            return Some(run_end);
        }
        if start > at_ms {
            // Nothing before covered `at_ms` (or it would have returned above), so this is
            // both the next change and the next opening.
            return Some(start);
        }
        run = Some((start, end));
    }
    let (run_start, run_end) = run?;
    (want == Want::Change && run_start <= at_ms && at_ms < run_end && run_end < bound)
        .then_some(run_end)
}
