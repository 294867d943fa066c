//! Version comparison with the semantics of each package source: dpkg for Debian packages,
//! rpmvercmp for RPM, libalpm's variant of it for pacman, semver precedence for semver-like
//! strings and numeric 4-part comparison for Windows. Every comparison is a total preorder over
//! all strings (it never panics, also on empty or garbage input), so versions can be sorted and
//! rule results never depend on the order in which they are compared.
//!
//! "Preorder" because distinct strings may compare `Equal` where the ecosystem says they are the
//! same version: dpkg `1.0` and `0:1.0`, rpm `1.0` and `1_0`, semver `1.0.0+a` and `1.0.0+b`.
//!
//! Releases: pacman's `vercmp` skips the release when only one side has one (`1.0` equals both
//! `1.0-1` and `1.0-2`), which is not transitive; [`compare`] sorts a missing release before any
//! release instead, as rpm's own `rpmverCmp` does. [`compare_for_constraint`] applies the rule
//! of rpm's dependency matching (and pacman's) where it matters — a rule written as `>= 1.0`
//! matched against an installed `1.0-5` — checked against librpmio's `rpmverOverlap`.
//!
//! pacman: libalpm's order is not transitive on malformed strings (`0 < +a < . < 0`); ours is
//! libalpm's on every real `pkgver-pkgrel` and consistent everywhere else.

mod dpkg;
mod generic;
mod rpm;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::fmt;

/// Which comparison algorithm applies to a version string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Debian: `[epoch:]upstream[-revision]`, `~` sorts before everything.
    Dpkg,
    /// RPM: `[epoch:]version[-release]` with rpmvercmp (`~` pre-release, `^` post-release).
    Rpm,
    /// pacman / libalpm: rpmvercmp without `~`/`^`, where a trailing letter is a pre-release
    /// (`1.0a < 1.0 < 1.0.a`) and separator lengths count.
    Pacman,
    /// Semantic versioning precedence; non-conforming strings use the [`Scheme::Generic`] rule,
    /// which agrees with semver on every valid semver string.
    Semver,
    /// Windows `major.minor.build.revision`, missing parts are 0; anything non-numeric uses the
    /// [`Scheme::Generic`] rule, which agrees with the numeric rule on numeric strings.
    Windows,
    /// Dotted numbers compared numerically, letters below numbers, `-pre` below the release,
    /// `+build` ignored, a leading `v` ignored.
    Generic,
}

impl Scheme {
    /// Every scheme, in the order they are documented.
    pub const ALL: [Scheme; 6] = [
        Scheme::Dpkg,
        Scheme::Rpm,
        Scheme::Pacman,
        Scheme::Semver,
        Scheme::Windows,
        Scheme::Generic,
    ];

    /// The scheme of a [`SoftwarePackage::source`](capstan_proto::inventory::SoftwarePackage).
    /// Unknown sources (snap, flatpak, choco, anything new) use [`Scheme::Generic`].
    pub fn for_source(source: &str) -> Scheme {
        // Called once per installed package when a device is indexed: no allocation.
        const TABLE: [(&str, Scheme); 11] = [
            ("dpkg", Scheme::Dpkg),
            ("deb", Scheme::Dpkg),
            ("apt", Scheme::Dpkg),
            ("rpm", Scheme::Rpm),
            ("dnf", Scheme::Rpm),
            ("yum", Scheme::Rpm),
            ("zypper", Scheme::Rpm),
            ("pacman", Scheme::Pacman),
            ("msi", Scheme::Windows),
            ("windows_uninstall", Scheme::Windows),
            ("winget", Scheme::Windows),
        ];
        TABLE
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(source))
            .map_or(Scheme::Generic, |(_, scheme)| *scheme)
    }

    /// The name used in rules (`"scheme": "dpkg"`) and explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Dpkg => "dpkg",
            Scheme::Rpm => "rpm",
            Scheme::Pacman => "pacman",
            Scheme::Semver => "semver",
            Scheme::Windows => "windows",
            Scheme::Generic => "generic",
        }
    }

    /// The inverse of [`Scheme::as_str`].
    pub fn parse(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compare two versions under `scheme`. A total preorder on all strings: antisymmetric,
/// transitive, `compare(s, a, a) == Equal`. Surrounding whitespace is ignored.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim(), b.trim());
    match scheme {
        Scheme::Dpkg => dpkg::compare(a, b),
        Scheme::Rpm => rpm::compare_evr(a, b, rpm::Flavor::Rpm, false),
        Scheme::Pacman => rpm::compare_evr(a, b, rpm::Flavor::Alpm, false),
        Scheme::Semver | Scheme::Generic => generic::compare(a, b),
        Scheme::Windows => generic::compare_windows(a, b),
    }
}

/// Compare an installed version with the version written in a constraint (a rule value).
///
/// Equal to [`compare`] except for rpm and pacman, where a constraint without a release
/// (`1.0`, `2:1.0`) ignores the installed release, as `rpm` and `pacman` do when resolving
/// dependencies: installed `1.0-5` then equals `1.0`, is `>= 1.0` and is neither `> 1.0` nor
/// `< 1.0`.
pub fn compare_for_constraint(scheme: Scheme, installed: &str, wanted: &str) -> Ordering {
    let (installed, wanted) = (installed.trim(), wanted.trim());
    match scheme {
        Scheme::Rpm => rpm::compare_evr(installed, wanted, rpm::Flavor::Rpm, true),
        Scheme::Pacman => rpm::compare_evr(installed, wanted, rpm::Flavor::Alpm, true),
        _ => compare(scheme, installed, wanted),
    }
}

/// Compare two runs of ASCII digits by value, whatever their length (no overflow).
fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
    &s[start..]
}
