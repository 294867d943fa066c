//! The generic (semver-like) ordering and the Windows 4-part ordering built on it.
//!
//! Generic: an optional leading `v` is dropped, `+build` is ignored, the text before the first
//! `-` is the release and the rest a pre-release (`1.0.0-rc1 < 1.0.0`). The release is a
//! sequence of digit and letter runs (anything else separates them); runs compare pairwise,
//! digits numerically, letters byte-wise, a letter run below a digit run, and a missing run
//! counts as `0` (`1.0 == 1.0.0`, `1.0rc1 < 1.0 < 1.0.1`). Pre-releases compare by semver's
//! rule: dot-separated identifiers, numeric ones numerically and below alphanumeric ones, more
//! identifiers win a tie. On a valid semver string this is exactly semver precedence, which is
//! why the semver scheme needs no separate parser.
//!
//! Windows: when both sides are dotted digit runs (`10.0.19045.3803`) they compare numerically
//! with missing parts as 0 — precisely what the generic rule gives for such strings, so mixing
//! numeric and non-numeric Windows versions still yields one consistent order.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Alpha(&'a [u8]),
    Num(&'a [u8]),
}

impl Token<'_> {
    fn cmp(self, other: Token<'_>) -> Ordering {
        match (self, other) {
            (Token::Num(a), Token::Num(b)) => cmp_digits(a, b),
            (Token::Alpha(a), Token::Alpha(b)) => a.cmp(b),
            (Token::Alpha(_), Token::Num(_)) => Ordering::Less,
            (Token::Num(_), Token::Alpha(_)) => Ordering::Greater,
        }
    }
}

/// Digit and letter runs of the release part, separators skipped.
struct Tokens<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        while self.pos < self.s.len() && !self.s[self.pos].is_ascii_alphanumeric() {
            self.pos += 1;
        }
        let first = *self.s.get(self.pos)?;
        let start = self.pos;
        let numeric = first.is_ascii_digit();
        while self.pos < self.s.len()
            && (if numeric {
                self.s[self.pos].is_ascii_digit()
            } else {
                self.s[self.pos].is_ascii_alphabetic()
            })
        {
            self.pos += 1;
        }
        let run = &self.s[start..self.pos];
        Some(if numeric {
            Token::Num(run)
        } else {
            Token::Alpha(run)
        })
    }
}

fn split(s: &str) -> (&str, Option<&str>) {
    let s = match s.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => s,
    };
    let s = s.split_once('+').map_or(s, |(before, _)| before);
    match s.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (s, None),
    }
}

fn compare_release(a: &str, b: &str) -> Ordering {
    let mut ta = Tokens {
        s: a.as_bytes(),
        pos: 0,
    };
    let mut tb = Tokens {
        s: b.as_bytes(),
        pos: 0,
    };
    let zero = Token::Num(b"");
    loop {
        let (x, y) = match (ta.next(), tb.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => (x.unwrap_or(zero), y.unwrap_or(zero)),
        };
        let ord = x.cmp(y);
        if ord != Ordering::Equal {
            return ord;
        }
    }
}

fn compare_pre(a: Option<&str>, b: Option<&str>) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Greater,
        (Some(_), None) => return Ordering::Less,
        (Some(a), Some(b)) => (a, b),
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (numeric(x), numeric(y)) {
                    (true, true) => cmp_digits(x.as_bytes(), y.as_bytes()),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.as_bytes().cmp(y.as_bytes()),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

pub(super) fn compare(a: &str, b: &str) -> Ordering {
    let (ra, pa) = split(a);
    let (rb, pb) = split(b);
    compare_release(ra, rb).then_with(|| compare_pre(pa, pb))
}

/// `major.minor.build.revision` (any number of parts, missing ones 0), or `None` when any part
/// is not a digit run.
fn windows_parts(s: &str) -> Option<std::str::Split<'_, char>> {
    let numeric = !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    numeric.then(|| s.split('.'))
}

pub(super) fn compare_windows(a: &str, b: &str) -> Ordering {
    let (Some(mut pa), Some(mut pb)) = (windows_parts(a), windows_parts(b)) else {
        return compare(a, b);
    };
    loop {
        match (pa.next(), pb.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => {
                let ord = cmp_digits(x.unwrap_or("").as_bytes(), y.unwrap_or("").as_bytes());
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}
