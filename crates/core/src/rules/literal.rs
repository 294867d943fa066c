//! The small value syntaxes of the rule language, parsed once at validation: durations (`7d`),
//! dates (`2026-11-25`, RFC 3339, or milliseconds), IP networks (`10.0.0.0/8`), plus the
//! deterministic formatting of numbers, timestamps and ages used by explanations.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const MS_PER_DAY: i64 = 86_400_000;

/// A relative duration such as `30m`, `12h`, `7d`, `2w`, kept with the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    pub(crate) ms: i64,
    pub(crate) text: String,
}

/// The longest duration accepted: about a century, far beyond any device's lifetime but small
/// enough that `now - duration` never overflows.
const MAX_DURATION_MS: i64 = 36_600 * MS_PER_DAY;

impl Duration {
    /// Parse `<digits><unit>` with unit s, m, h, d or w.
    pub(crate) fn parse(text: &str) -> Option<Duration> {
        let unit = text.chars().last()?;
        let digits = &text[..text.len() - unit.len_utf8()];
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i64 = digits.parse().ok()?;
        let unit_ms = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => MS_PER_DAY,
            'w' => 7 * MS_PER_DAY,
            _ => return None,
        };
        let ms = n.checked_mul(unit_ms)?;
        (ms <= MAX_DURATION_MS).then(|| Duration {
            ms,
            text: text.to_string(),
        })
    }
}

/// A point in time written in a rule, kept as milliseconds since 1970 plus its original text
/// (`None` when it was written as a number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub(crate) ms: i64,
    pub(crate) text: Option<String>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Fixed-width decimal field: exactly `len` ASCII digits.
fn digits(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl Timestamp {
    /// `YYYY-MM-DD` (midnight UTC) or RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`.
    pub(crate) fn parse(text: &str) -> Option<Timestamp> {
        let (date, time) = match text.split_once(['T', 't']) {
            Some((d, t)) => (d, Some(t)),
            None => (text, None),
        };
        let mut parts = date.splitn(3, '-');
        let y = digits(parts.next()?, 4)?;
        let m = digits(parts.next()?, 2)?;
        let d = digits(parts.next()?, 2)?;
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return None;
        }
        let mut ms = days_from_civil(y, m, d) * MS_PER_DAY;
        if let Some(time) = time {
            ms += parse_time_of_day(time)?;
        }
        Some(Timestamp {
            ms,
            text: Some(text.to_string()),
        })
    }

    pub(crate) fn from_ms(ms: i64) -> Timestamp {
        Timestamp { ms, text: None }
    }
}

/// `HH:MM:SS[.fff](Z|±HH:MM)` as milliseconds from midnight UTC (may be negative or exceed a
/// day after the offset is applied).
fn parse_time_of_day(t: &str) -> Option<i64> {
    let (clock, offset_ms) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let sign_at = t.rfind(['+', '-'])?;
        let (c, off) = t.split_at(sign_at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        let (oh, om) = (digits(oh, 2)?, digits(om, 2)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (c, sign * (oh * 3_600_000 + om * 60_000))
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock, None),
    };
    let mut parts = hms.splitn(3, ':');
    let h = digits(parts.next()?, 2)?;
    let mi = digits(parts.next()?, 2)?;
    let s = digits(parts.next()?, 2)?;
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut ms = (h * 3600 + mi * 60 + s) * 1000;
    if let Some(frac) = frac {
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let padded = format!("{frac:0<3}");
        ms += padded[..3].parse::<i64>().ok()?;
    }
    Some(ms - offset_ms)
}

/// `2026-11-25T08:00:00Z`, with `.123` when the milliseconds are not zero.
pub(crate) fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
    }
}

/// How long ago `ms` was at `now_ms`, in its largest whole unit: `9d ago`, `3h ago`,
/// `in 2d` for the future, `now` within a second.
pub(crate) fn format_age(ms: i64, now_ms: i64) -> String {
    let delta = now_ms.saturating_sub(ms);
    let abs = delta.unsigned_abs();
    let amount = if abs >= 86_400_000 {
        format!("{}d", abs / 86_400_000)
    } else if abs >= 3_600_000 {
        format!("{}h", abs / 3_600_000)
    } else if abs >= 60_000 {
        format!("{}m", abs / 60_000)
    } else if abs >= 1_000 {
        format!("{}s", abs / 1_000)
    } else {
        return "now".to_string();
    };
    if delta >= 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// Numbers as people write them: integers without a fraction, others with at most two
/// decimals (derived percentages would otherwise print 16 digits).
pub(crate) fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// An IPv4 or IPv6 network. Host bits in the written address are ignored
/// (`10.1.2.3/8` is `10.0.0.0/8`); a bare address is a single-host network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
    pub(crate) text: String,
}

impl Network {
    pub(crate) fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Network {
            addr,
            prefix,
            text: text.to_string(),
        })
    }

    /// Whether `ip` lies in the network. An IPv4 network also contains the IPv4-mapped IPv6
    /// form of its addresses (`::ffff:10.1.2.3`).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => v4_in(net, self.prefix, ip),
            (IpAddr::V4(net), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| v4_in(net, self.prefix, ip)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => v6_in(net, self.prefix, ip),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn v4_in(net: Ipv4Addr, prefix: u8, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(net) & mask == u32::from(ip) & mask
}

fn v6_in(net: Ipv6Addr, prefix: u8, ip: Ipv6Addr) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(net) & mask == u128::from(ip) & mask
}

/// The address part of an inventory address string: `10.1.2.3/24`, `fe80::1%eth0/64` or a bare
/// address. `None` when it is not an IP address.
pub(crate) fn address_of(value: &str) -> Option<IpAddr> {
    let addr = value.split_once('/').map_or(value, |(a, _)| a);
    let addr = addr.split_once('%').map_or(addr, |(a, _)| a);
    addr.parse().ok()
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, ms) in [
            ("45s", 45_000),
            ("30m", 1_800_000),
            ("12h", 43_200_000),
            ("7d", 604_800_000),
            ("2w", 1_209_600_000),
            ("0d", 0),
        ] {
            assert_eq!(Duration::parse(text).map(|d| d.ms), Some(ms), "{text}");
        }
        for bad in [
            "",
            "d",
            "7",
            "7 d",
            "-7d",
            "7D",
            "7days",
            "1.5h",
            "99999999w",
            "7é",
        ] {
            assert_eq!(Duration::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_round_trip() {
        for (text, formatted) in [
            ("2026-11-25", "2026-11-25T00:00:00Z"),
            ("2026-11-25T08:30:00Z", "2026-11-25T08:30:00Z"),
            ("2026-11-25T08:30:00.5Z", "2026-11-25T08:30:00.500Z"),
            ("2026-11-25T10:30:00+02:00", "2026-11-25T08:30:00Z"),
            ("2026-11-25T00:30:00-01:00", "2026-11-25T01:30:00Z"),
            ("2024-02-29", "2024-02-29T00:00:00Z"),
            ("1970-01-01", "1970-01-01T00:00:00Z"),
            ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
        ] {
            let ts = Timestamp::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(format_timestamp(ts.ms), formatted, "{text}");
        }
        assert_eq!(
            Timestamp::parse("1970-01-02").map(|t| t.ms),
            Some(MS_PER_DAY)
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "2023-02-29",
            "26-11-25",
            "2026-11-25T25:00:00Z",
            "2026-11-25T08:00Z",
            "2026-11-25T08:00:00",
            "yesterday",
            "",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn networks() {
        let net = |s: &str| Network::parse(s).unwrap_or_else(|| panic!("{s}"));
        let ip = |s: &str| address_of(s).unwrap_or_else(|| panic!("{s}"));
        assert!(net("10.0.0.0/8").contains(ip("10.1.2.3/24")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("10.1.2.3/8").contains(ip("10.200.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(net("192.0.2.7").contains(ip("192.0.2.7/32")));
        assert!(!net("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:1::5/64")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(net("fe80::/10").contains(ip("fe80::1%eth0/64")));
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")));
        assert!(!net("::/0").contains(ip("10.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "x",
            "10.0.0.0/-1",
        ] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
        assert_eq!(address_of("not an address"), None);
    }

    #[test]
    fn ages_and_numbers() {
        let now = 10 * MS_PER_DAY;
        assert_eq!(format_age(now - 9 * MS_PER_DAY - 5, now), "9d ago");
        assert_eq!(format_age(now - 3_700_000, now), "1h ago");
        assert_eq!(format_age(now + 2 * MS_PER_DAY, now), "in 2d");
        assert_eq!(format_age(now, now), "now");
        assert_eq!(format_number(8_589_934_592.0), "8589934592");
        assert_eq!(format_number(93.75), "93.75");
        assert_eq!(format_number(100.0 / 3.0), "33.33");
        assert_eq!(format_number(0.5), "0.5");
    }
}
