//! The 5-field cron language of maintenance windows (minute hour day-of-month month
//! day-of-week): a strict parser into bit sets and the day rule they describe. Only the
//! classic forms are accepted (`*`, numbers, `A-B` ranges, `/STEP` steps, `,` lists, month and
//! weekday names, and the `@daily`-style nicknames) so that an expression means the same thing
//! here as in any other cron an operator knows; extensions such as seconds, years, `L`, `W`,
//! `#` or `?` are rejected rather than half-understood.

/// Longest expression accepted; real ones are a few dozen bytes, and the cap keeps a hostile
/// request from making the parser build huge lists.
pub(super) const MAX_EXPRESSION_BYTES: usize = 256;

/// Days in the Gregorian 400-year cycle, after which dates and weekdays repeat exactly.
pub(super) const CYCLE_DAYS: i64 = 146_097;

/// A parsed expression: which minutes of the hour and hours of the day start a window, and on
/// which days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CronSpec {
    /// Bit `m` set: minute `m` (0..=59).
    pub minutes: u64,
    /// Bit `h` set: hour `h` (0..=23).
    pub hours: u32,
    pub days: DayFields,
}

/// The three date fields, which decide together whether a day matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DayFields {
    /// Bit `d` set: day of month `d` (1..=31).
    doms: u32,
    /// Bit `m` set: month `m` (1..=12).
    months: u16,
    /// Bit `w` set: weekday `w`, Sunday = 0.
    dows: u8,
    /// The day-of-month field starts with `*` (then both day fields must match, as in classic
    /// cron; when neither starts with `*`, either may match).
    dom_star: bool,
    dow_star: bool,
}

impl DayFields {
    /// Whether the date (month 1..=12, day 1..=31, weekday with Sunday = 0) matches.
    pub fn matches(&self, month: u8, dom: u8, dow: u8) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let dom_ok = self.doms & (1 << dom) != 0;
        let dow_ok = self.dows & (1 << dow) != 0;
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }

    /// Whether any day of `month` could match at all, so the calendar scan can skip it.
    pub fn month_possible(&self, month: u8) -> bool {
        self.months & (1 << month) != 0
    }
}

pub(super) fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub(super) fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The longest run of days from one matching day to the next, over the whole 400-year cycle
/// (so it accounts for 29 February and for weekday/date coincidences); `None` when no day ever
/// matches.
pub(super) fn max_gap_days(days: &DayFields) -> Option<i64> {
    const ALL_MONTHS: u16 = 0x1ffe;
    const ALL_DOMS: u32 = 0xffff_fffe;
    if days.months == ALL_MONTHS && days.doms == ALL_DOMS && days.dom_star {
        // Every date qualifies, so only the weekday decides (the common `* * MON-FRI` case,
        // which would otherwise cost a walk over 146,097 days at every compile).
        let set: Vec<i64> = (0..7).filter(|w| days.dows & (1 << w) != 0).collect();
        let (first, last) = (*set.first()?, *set.last()?);
        let inner = set.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
        return Some(inner.max(first + 7 - last));
    }
    max_gap_days_by_calendar(days)
}

/// [`max_gap_days`] the slow way: walking every day of the 400-year cycle.
pub(super) fn max_gap_days_by_calendar(days: &DayFields) -> Option<i64> {
    // 2000-01-01 was a Saturday; any start of a 400-year cycle would do.
    let mut dow: u8 = 6;
    let mut n: i64 = 0;
    let mut first = None;
    let mut last: Option<i64> = None;
    let mut gap = 0;
    for year in 2000..2400 {
        for month in 1..=12u8 {
            let len = days_in_month(year, month);
            if !days.month_possible(month) {
                n += i64::from(len);
                dow = (dow + len) % 7;
                continue;
            }
            for dom in 1..=len {
                if days.matches(month, dom, dow) {
                    match last {
                        Some(l) => gap = gap.max(n - l),
                        None => first = Some(n),
                    }
                    last = Some(n);
                }
                n += 1;
                dow = (dow + 1) % 7;
            }
        }
    }
    debug_assert_eq!(n, CYCLE_DAYS);
    let (first, last) = (first?, last?);
    Some(gap.max(first + CYCLE_DAYS - last))
}

struct Field {
    name: &'static str,
    min: u8,
    max: u8,
    /// Three-letter names for `first_name..`, matched without regard to case.
    names: &'static [&'static str],
    first_name: u8,
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    first_name: 0,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    first_name: 0,
};
const DOM: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    first_name: 0,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    first_name: 1,
};
/// 7 is Sunday as well as 0, as in every common cron.
const DOW: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    first_name: 0,
};

/// The nicknames classic cron understands, and what they stand for.
const NICKNAMES: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Parses an expression, or says what is wrong with it (one message per bad field).
pub(super) fn parse(expression: &str) -> Result<CronSpec, Vec<String>> {
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(vec![format!(
            "the expression is {} bytes; the limit is {MAX_EXPRESSION_BYTES}",
            expression.len()
        )]);
    }
    let trimmed = expression.trim();
    let text = if trimmed.starts_with('@') {
        let lower = trimmed.to_ascii_lowercase();
        match NICKNAMES.iter().find(|(n, _)| *n == lower) {
            Some((_, fields)) => *fields,
            None if lower == "@reboot" => {
                return Err(vec![
                    "@reboot names no time of day; a maintenance window needs one".to_owned(),
                ]);
            }
            None => {
                let known: Vec<&str> = NICKNAMES.iter().map(|(n, _)| *n).collect();
                return Err(vec![format!(
                    "unknown nickname `{trimmed}`; known: {}",
                    known.join(", ")
                )]);
            }
        }
    } else {
        trimmed
    };
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    if fields.len() != 5 {
        let hint = if fields.len() > 5 {
            " (seconds and year fields are not supported)"
        } else {
            ""
        };
        return Err(vec![format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}{hint}",
            fields.len()
        )]);
    }
    let mut errors = Vec::new();
    let mut field = |text: &str, spec: &Field| match parse_field(text, spec) {
        Ok(bits) => bits,
        Err(e) => {
            errors.push(format!("{} field `{text}`: {e}", spec.name));
            0
        }
    };
    let minutes = field(fields[0], &MINUTE);
    let hours = field(fields[1], &HOUR);
    let doms = field(fields[2], &DOM);
    let months = field(fields[3], &MONTH);
    let mut dows = field(fields[4], &DOW);
    if !errors.is_empty() {
        return Err(errors);
    }
    if dows & (1 << 7) != 0 {
        dows = (dows | 1) & 0x7f;
    }
    // The bit sets fit their integer types by construction: each field's maximum is below the
    // type's width.
    Ok(CronSpec {
        minutes,
        hours: hours as u32,
        days: DayFields {
            doms: doms as u32,
            months: months as u16,
            dows: dows as u8,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        },
    })
}

/// One field into a bit set (bit `v` for value `v`).
fn parse_field(text: &str, spec: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty list item".to_owned());
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_step(step, spec)?)),
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (lo, hi) = (value(a, spec)?, value(b, spec)?);
            if lo > hi {
                return Err(format!("range {a}-{b} runs backwards"));
            }
            (lo, hi)
        } else {
            let v = value(range, spec)?;
            if step.is_some() {
                return Err(format!(
                    "a step needs a range: write {range}-{}/STEP or */STEP",
                    spec.max
                ));
            }
            (v, v)
        };
        let step = usize::from(step.unwrap_or(1));
        for v in (lo..=hi).step_by(step) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

fn parse_step(text: &str, spec: &Field) -> Result<u8, String> {
    let width = spec.max - spec.min + 1;
    match number(text) {
        Some(n) if (1..=u32::from(width)).contains(&n) => Ok(n as u8),
        _ => Err(format!("step `{text}` must be a number from 1 to {width}")),
    }
}

fn value(text: &str, spec: &Field) -> Result<u8, String> {
    if let Some(n) = number(text) {
        if (u32::from(spec.min)..=u32::from(spec.max)).contains(&n) {
            return Ok(n as u8);
        }
        return Err(format!("{n} is out of range {}-{}", spec.min, spec.max));
    }
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(spec.first_name + i as u8);
    }
    if spec.names.is_empty() {
        Err(format!("`{text}` is not a number"))
    } else {
        Err(format!(
            "`{text}` is neither a number nor one of {}",
            spec.names.join(", ")
        ))
    }
}

/// A plain decimal (nine digits at most, so it fits; anything that long is out of range).
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
