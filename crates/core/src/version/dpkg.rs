//! The dpkg version ordering (deb-version(7)): `[epoch:]upstream[-revision]`, each part compared
//! by alternating non-digit and digit runs, where `~` sorts before everything (even the end of
//! the string), letters sort before other characters and digit runs compare numerically.
//!
//! Written here rather than taken from the `debversion` crate, which parses strictly (garbage is
//! an error, but rules must order every string) and pulls in chrono, lazy-regex and num-bigint.

use std::cmp::Ordering;

use super::cmp_digits;

/// The three parts of a Debian version. Parsing never fails: like apt, whatever precedes the
/// first `:` is the epoch (dpkg would refuse a non-numeric one; on digits the character-wise
/// comparison below is the numeric one), and a missing revision is empty, which compares like
/// `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DebVersion<'a> {
    epoch: &'a str,
    upstream: &'a str,
    revision: &'a str,
}

impl<'a> DebVersion<'a> {
    pub(super) fn parse(s: &'a str) -> Self {
        let (epoch, rest) = s.split_once(':').unwrap_or(("", s));
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        DebVersion {
            epoch,
            upstream,
            revision,
        }
    }
}

pub(super) fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (DebVersion::parse(a), DebVersion::parse(b));
    verrevcmp(a.epoch.as_bytes(), b.epoch.as_bytes())
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// Weight of one character in a non-digit run; `None` is the end of the string.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn is_digit(c: Option<&u8>) -> bool {
    c.is_some_and(u8::is_ascii_digit)
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit run: compared character by character by weight. The loop only advances
        // when both weights are equal, which with one side at a digit or at the end means
        // both are, so it never steps past the end.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (wa, wb) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        let start_a = i;
        while is_digit(a.get(i)) {
            i += 1;
        }
        let start_b = j;
        while is_digit(b.get(j)) {
            j += 1;
        }
        let ord = cmp_digits(&a[start_a..i], &b[start_b..j]);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}
