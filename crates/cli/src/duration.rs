//! Human durations for token lifetimes (`30m`, `12h`, `7d`, `1d12h`, `2w`) turned into the
//! whole seconds the API expects. A bare number means seconds. Zero is refused because a token
//! that expires at once is always a mistake.

/// Parse a duration into seconds. Units: `s`, `m`, `h`, `d`, `w`; components may be combined
/// largest first or in any order (`1h30m`), without spaces.
pub fn parse_duration_secs(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration: use e.g. 30m, 12h or 7d".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return positive(s.parse::<u64>().map_err(|_| too_large(input))?, input);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "invalid duration {input:?}: unknown unit {c:?} (use s, m, h, d or w, e.g. 12h)"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!(
                "invalid duration {input:?}: unit {c:?} without a number"
            ));
        }
        let n: u64 = digits.parse().map_err(|_| too_large(input))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| too_large(input))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "invalid duration {input:?}: number {digits:?} has no unit (use s, m, h, d or w)"
        ));
    }
    positive(total, input)
}

fn positive(secs: u64, input: &str) -> Result<u64, String> {
    if secs == 0 {
        Err(format!(
            "invalid duration {input:?}: must be longer than zero"
        ))
    } else {
        Ok(secs)
    }
}

fn too_large(input: &str) -> String {
    format!("invalid duration {input:?}: too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for (input, secs) in [
            ("30m", 1_800),
            ("12h", 43_200),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("90s", 90),
            ("3600", 3_600),
            ("1d12h", 129_600),
            ("1h30m", 5_400),
            (" 45m ", 2_700),
            ("365d", 31_536_000),
        ] {
            assert_eq!(parse_duration_secs(input), Ok(secs), "{input}");
        }
    }

    #[test]
    fn refused_forms_say_why() {
        for (input, why) in [
            ("", "empty"),
            ("0", "longer than zero"),
            ("0h", "longer than zero"),
            ("7 days", "unknown unit"),
            ("12y", "unknown unit"),
            ("h", "without a number"),
            ("1h30", "has no unit"),
            ("-5m", "unknown unit"),
            ("99999999999999999999", "too large"),
            ("99999999999999999w", "too large"),
        ] {
            let err = parse_duration_secs(input).unwrap_err();
            assert!(err.contains(why), "{input}: {err}");
        }
    }
}
