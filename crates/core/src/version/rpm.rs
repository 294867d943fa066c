//! rpmvercmp as rpm implements it (alternating alphabetic and numeric segments, numeric beats
//! alphabetic, `~` pre-release, `^` post-release) and libalpm's older variant used by pacman
//! (no `~`/`^`, separator lengths count, a trailing letter run is a pre-release; made
//! transitive, see `alpm_vercmp`), plus the
//! `[epoch:]version[-release]` split both use.
//!
//! Written here rather than taken from the `rpm-version` crate because pacman needs its own
//! variant of the same walker anyway, and the two side by side are shorter than a dependency.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    Rpm,
    Alpm,
}

/// Split `[epoch:]version[-release]`: the epoch is a leading digit run followed by `:`, the
/// release follows the last `-`.
fn split_evr(s: &str) -> (&str, &str, Option<&str>) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = match s[digits..].strip_prefix(':') {
        Some(rest) => (&s[..digits], rest),
        None => ("", s),
    };
    match rest.rsplit_once('-') {
        Some((version, release)) => (epoch, version, Some(release)),
        None => (epoch, rest, None),
    }
}

/// Compare full EVR strings. With `constraint`, `b` is the wanted version and a missing release
/// on its side means "any release" (rpm/pacman dependency semantics, not transitive); without,
/// a missing release sorts before every release so the order stays total.
pub(super) fn compare_evr(a: &str, b: &str, flavor: Flavor, constraint: bool) -> Ordering {
    let (ea, va, ra) = split_evr(a);
    let (eb, vb, rb) = split_evr(b);
    let segments = match flavor {
        Flavor::Rpm => rpmvercmp,
        Flavor::Alpm => alpm_vercmp,
    };
    cmp_digits(ea.as_bytes(), eb.as_bytes())
        .then_with(|| segments(va.as_bytes(), vb.as_bytes()))
        .then_with(|| match (ra, rb) {
            (_, None) if constraint => Ordering::Equal,
            _ => segments(ra.unwrap_or("").as_bytes(), rb.unwrap_or("").as_bytes()),
        })
}

/// End of the segment of `s` starting at `from`: digits when `numeric`, letters otherwise.
fn segment_end(s: &[u8], from: usize, numeric: bool) -> usize {
    let len = s[from..]
        .iter()
        .take_while(|c| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        })
        .count();
    from + len
}

/// Compare one pair of segments that start at `a[i]`, `b[j]`; returns the ordering if they
/// differ, otherwise the two segment ends.
fn compare_segment(a: &[u8], i: usize, b: &[u8], j: usize) -> Result<(usize, usize), Ordering> {
    let numeric = a[i].is_ascii_digit();
    let end_a = segment_end(a, i, numeric);
    let end_b = segment_end(b, j, numeric);
    if end_b == j {
        // Different kinds: a numeric segment is newer than an alphabetic one.
        return Err(if numeric {
            Ordering::Greater
        } else {
            Ordering::Less
        });
    }
    let ord = if numeric {
        cmp_digits(&a[i..end_a], &b[j..end_b])
    } else {
        a[i..end_a].cmp(&b[j..end_b])
    };
    match ord {
        Ordering::Equal => Ok((end_a, end_b)),
        other => Err(other),
    }
}

fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let is_sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while i < a.len() && is_sep(a[i]) {
            i += 1;
        }
        while j < b.len() && is_sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        // `~` sorts before everything, even the end of the version.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // `^` sorts after the end of the version but before any further segment.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca.is_none() || cb.is_none() {
            break;
        }
        match compare_segment(a, i, b, j) {
            Ok((ni, nj)) => (i, j) = (ni, nj),
            Err(ord) => return ord,
        }
    }
    // Whichever version still has characters left wins.
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (true, _) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}

/// libalpm's comparison, made transitive. A version is read as a sequence of elements
/// `(separator length, segment)` closed by an end element carrying the trailing separator
/// length. Elements compare by separator length, then kind (letters below digits, the end
/// between them), then value. This is libalpm's order for every version with single-character
/// separators and no leading or trailing separator (all real pkgver-pkgrel strings); libalpm
/// itself cycles on strings such as `0`, `+a` and `.` (0 < +a < . < 0), which this does not.
fn alpm_vercmp(a: &[u8], b: &[u8]) -> Ordering {
    let mut ea = AlpmElements { s: a, pos: 0 };
    let mut eb = AlpmElements { s: b, pos: 0 };
    loop {
        match (ea.next(), eb.next()) {
            (AlpmElement::End(x), AlpmElement::End(y)) => return x.cmp(&y),
            (x, y) => {
                let ord = x.cmp(&y);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlpmElement<'a> {
    /// Separator length, letters.
    Alpha(usize, &'a [u8]),
    /// Trailing separator length.
    End(usize),
    /// Separator length, digits.
    Num(usize, &'a [u8]),
}

impl AlpmElement<'_> {
    fn key(&self) -> (usize, u8) {
        match *self {
            AlpmElement::Alpha(sep, _) => (sep, 0),
            AlpmElement::End(sep) => (sep, 1),
            AlpmElement::Num(sep, _) => (sep, 2),
        }
    }

    fn cmp(&self, other: &AlpmElement<'_>) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| match (self, other) {
                (AlpmElement::Alpha(_, x), AlpmElement::Alpha(_, y)) => x.cmp(y),
                (AlpmElement::Num(_, x), AlpmElement::Num(_, y)) => cmp_digits(x, y),
                _ => Ordering::Equal,
            })
    }
}

struct AlpmElements<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> AlpmElements<'a> {
    /// The next element; after the end it keeps returning the end.
    fn next(&mut self) -> AlpmElement<'a> {
        let sep_start = self.pos;
        while self.pos < self.s.len() && !self.s[self.pos].is_ascii_alphanumeric() {
            self.pos += 1;
        }
        let sep = self.pos - sep_start;
        if self.pos >= self.s.len() {
            return AlpmElement::End(sep);
        }
        let numeric = self.s[self.pos].is_ascii_digit();
        let end = segment_end(self.s, self.pos, numeric);
        let run = &self.s[self.pos..end];
        self.pos = end;
        if numeric {
            AlpmElement::Num(sep, run)
        } else {
            AlpmElement::Alpha(sep, run)
        }
    }
}
