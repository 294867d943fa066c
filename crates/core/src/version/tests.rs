//! Version comparison tests: a table of (scheme, a, b, expected) with the classic cases of each
//! ecosystem — the dpkg, rpm and pacman rows were checked against apt's `version_compare`,
//! librpmio's `rpmverCmp` and libalpm's `alpm_pkg_vercmp`, and agree except pacman
//! `1.0` / `1.0-1`, which libalpm calls equal (it skips a release missing on one side, which
//! is not transitive; see [`compare_for_constraint`]) — and property tests that every scheme
//! is a total preorder that never panics.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use proptest::prelude::*;

use super::*;

use Scheme::*;

const CASES: &[(Scheme, &str, &str, Ordering)] = &[
    // dpkg
    (Dpkg, "1.0~rc1", "1.0", Less),
    (Dpkg, "1.0~rc1", "1.0~rc2", Less),
    (Dpkg, "1.0~~", "1.0~", Less),
    (Dpkg, "1.0~", "1.0", Less),
    (Dpkg, "1:1.0", "2.0", Greater),
    (Dpkg, "0:1.0", "1.0", Equal),
    (Dpkg, "1.0-1", "1.0-2", Less),
    (Dpkg, "1.0", "1.0-0", Equal),
    (Dpkg, "1.0-1", "1.0", Greater),
    (Dpkg, "1.10", "1.9", Greater),
    (Dpkg, "2.0", "1.99", Greater),
    (Dpkg, "1.0a", "1.0", Greater),
    (Dpkg, "1.0a", "1.0+", Less),
    (Dpkg, "1.0+dfsg-1", "1.0-1", Greater),
    (Dpkg, "1.22.1-9", "1.22", Greater),
    (Dpkg, "2:1.0", "10:0.1", Less),
    (Dpkg, "1.2.3-1ubuntu1", "1.2.3-1", Greater),
    (Dpkg, "1.2.3-1~deb12u1", "1.2.3-1", Less),
    (Dpkg, "007", "7", Equal),
    (Dpkg, "1.0-a-b", "1.0-a-a", Greater),
    (Dpkg, "1.0-1", "1.0-1.1", Less),
    (
        Dpkg,
        "99999999999999999999999",
        "99999999999999999999998",
        Greater,
    ),
    // rpm
    (Rpm, "1.0^post", "1.0", Greater),
    (Rpm, "1.0^post", "1.0.1", Less),
    (Rpm, "1.0~rc1", "1.0", Less),
    (Rpm, "1.0~rc1", "1.0~rc1^git1", Less),
    (Rpm, "1.0-1", "1.0-2", Less),
    (Rpm, "1.0-10", "1.0-9", Greater),
    (Rpm, "1.0-1.el9", "1.0-1.el8", Greater),
    (Rpm, "1.10", "1.9", Greater),
    (Rpm, "2.0", "1.99", Greater),
    (Rpm, "1:1.0", "2.0", Greater),
    (Rpm, "1.0a", "1.0", Greater),
    (Rpm, "1.0a", "1.0.1", Less),
    (Rpm, "1.0", "1_0", Equal),
    (Rpm, "1.a", "1.1", Less),
    (Rpm, "1.0", "1.0-1", Less),
    (Rpm, "2.5.0-3.fc40", "2.5.0-12.fc40", Less),
    (Rpm, "1.001", "1.1", Equal),
    (Rpm, "5.5p1", "5.5p10", Less),
    (Rpm, "xyz.4", "8", Less),
    // pacman
    (Pacman, "1.0a", "1.0", Less),
    (Pacman, "1.0alpha", "1.0b", Less),
    (Pacman, "1.0rc", "1.0", Less),
    (Pacman, "1.0", "1.0.a", Less),
    (Pacman, "1.0.a", "1.0.1", Less),
    (Pacman, "1", "1.0", Less),
    (Pacman, "1.1.1", "1.2", Less),
    (Pacman, "1.10", "1.9", Greater),
    (Pacman, "2.0", "1.99", Greater),
    (Pacman, "1:1.0-1", "2.0-1", Greater),
    (Pacman, "1.0-1", "1.0-2", Less),
    (Pacman, "1.0-2", "1.0.1-1", Less),
    (Pacman, "1.0", "1.0-1", Less),
    (Pacman, "1..0", "1.0", Greater),
    (Pacman, "6.1.62-1", "6.1.7-3", Greater),
    (Pacman, "20240101-1", "20231231-9", Greater),
    // semver
    (Semver, "1.0.0-rc1", "1.0.0", Less),
    (Semver, "1.0.0-alpha", "1.0.0-alpha.1", Less),
    (Semver, "1.0.0-alpha.1", "1.0.0-alpha.beta", Less),
    (Semver, "1.0.0-alpha.beta", "1.0.0-beta", Less),
    (Semver, "1.0.0-beta.2", "1.0.0-beta.11", Less),
    (Semver, "1.0.0-beta.11", "1.0.0-rc.1", Less),
    (Semver, "1.0.0-rc.1", "1.0.0", Less),
    (Semver, "1.0.0+build.5", "1.0.0+build.7", Equal),
    (Semver, "1.10.0", "1.9.0", Greater),
    (Semver, "2.0.0", "1.99.99", Greater),
    (Semver, "1.0", "1.0.0", Equal),
    (Semver, "v1.2.3", "1.2.3", Equal),
    (Semver, "1.2.3-1", "1.2.3-a", Less),
    (Semver, "0.0.1", "0.0.0-zzz", Greater),
    (Semver, "10.0.0", "9.0.0", Greater),
    // windows
    (Windows, "10.0.19045.3803", "10.0.19045.100", Greater),
    (Windows, "10.0.22631.2861", "10.0.19045.3803", Greater),
    (Windows, "1.2", "1.2.0.0", Equal),
    (Windows, "1.2.0.1", "1.2", Greater),
    (Windows, "120.0.6099.130", "120.0.6099.71", Greater),
    (Windows, "1.10", "1.9", Greater),
    (Windows, "2.0", "1.99", Greater),
    (Windows, "16.0.17328.20142", "16.0.17328.20142", Equal),
    (Windows, "001.2", "1.2", Equal),
    (Windows, "24.005.20320", "24.5.20321", Less),
    (Windows, "1.2.3 beta", "1.2.3", Less),
    (Windows, "8.0.3.0 (x64)", "8.0.3.0", Less),
    (Windows, "5.2.1-rc1", "5.2.1", Less),
    (Windows, "garbage", "1.0", Less),
    (Windows, "", "0.0.0.1", Less),
    // generic (snap, flatpak, choco)
    (Generic, "1.10", "1.9", Greater),
    (Generic, "2.0", "1.99", Greater),
    (Generic, "1.0rc1", "1.0", Less),
    (Generic, "1.0", "1.0.1", Less),
    (Generic, "1.0.0", "1.0", Equal),
    (Generic, "2.0-beta", "2.0", Less),
    (Generic, "2.0-beta.2", "2.0-beta.10", Less),
    (Generic, "v2", "1.9", Greater),
    (Generic, "1.0+git123", "1.0", Equal),
    (Generic, "128.0.3", "128.0.10", Less),
    (Generic, "2024.10.1", "2024.9.30", Greater),
    (Generic, "1.0a", "1.0b", Less),
    (Generic, "", "0", Equal),
    (Generic, "latest", "1.0", Less),
    (Generic, "1_2", "1.2", Equal),
];

#[test]
fn version_table() {
    let mut failures = Vec::new();
    for &(scheme, a, b, want) in CASES {
        let got = compare(scheme, a, b);
        let back = compare(scheme, b, a);
        if got != want || back != want.reverse() {
            failures.push(format!(
                "{scheme}: compare({a:?}, {b:?}) = {got:?} (reverse {back:?}), expected {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_scheme_has_at_least_fifteen_rows() {
    for scheme in Scheme::ALL {
        let rows = CASES.iter().filter(|c| c.0 == scheme).count();
        assert!(rows >= 15, "{scheme} has {rows} rows");
    }
}

#[test]
fn sources_map_to_schemes() {
    for (source, scheme) in [
        ("dpkg", Dpkg),
        ("rpm", Rpm),
        ("pacman", Pacman),
        ("msi", Windows),
        ("windows_uninstall", Windows),
        ("winget", Windows),
        ("snap", Generic),
        ("flatpak", Generic),
        ("choco", Generic),
        ("something-new", Generic),
    ] {
        assert_eq!(Scheme::for_source(source), scheme, "{source}");
    }
    for scheme in Scheme::ALL {
        assert_eq!(Scheme::parse(scheme.as_str()), Some(scheme));
    }
}

#[test]
fn constraint_without_release_ignores_installed_release_on_rpm_and_pacman() {
    for scheme in [Rpm, Pacman] {
        assert_eq!(compare_for_constraint(scheme, "1.0-5", "1.0"), Equal);
        assert_eq!(compare_for_constraint(scheme, "1.0-5", "1.0-6"), Less);
        assert_eq!(compare_for_constraint(scheme, "1.1-1", "1.0"), Greater);
        assert_eq!(compare_for_constraint(scheme, "1:1.0-1", "1.0"), Greater);
        // The total order puts the bare version first.
        assert_eq!(compare(scheme, "1.0-5", "1.0"), Greater);
    }
    // dpkg has no such rule: an absent revision is the lowest one.
    assert_eq!(compare_for_constraint(Dpkg, "1.0-5", "1.0"), Greater);
}

/// libalpm itself orders `0 < +a < . < 0` (a cycle); our pacman order stays transitive on
/// such garbage while agreeing with libalpm on real versions (the table above).
#[test]
fn pacman_order_has_no_cycle_on_garbage() {
    let (a, b, c) = ("0", "+a", ".");
    assert_eq!(compare(Pacman, a, b), Less);
    assert_eq!(compare(Pacman, b, c), Less);
    assert_eq!(compare(Pacman, a, c), Less);
}

/// Version-like strings dense in the characters each algorithm treats specially, so that
/// generated triples often share prefixes and exercise the tie-breaking paths.
fn version_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "([0-9]{1,2}:)?[0-9a-c.~^+_-]{0,10}",
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,4}",
        "v?[0-2](\\.[0-2]){0,2}(-[a-c0-2.]{0,4})?(\\+[a-b0-2]{0,2})?",
        "[01.a~^-]{0,6}",
        ".{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn reflexive_and_antisymmetric(a in version_string(), b in version_string()) {
        for scheme in Scheme::ALL {
            prop_assert_eq!(compare(scheme, &a, &a), Equal, "{}", scheme);
            prop_assert_eq!(compare(scheme, &a, &b), compare(scheme, &b, &a).reverse(), "{}", scheme);
        }
    }

    #[test]
    fn transitive(a in version_string(), b in version_string(), c in version_string()) {
        let v = [&a, &b, &c];
        for scheme in Scheme::ALL {
            for x in v {
                for y in v {
                    for z in v {
                        if compare(scheme, x, y) != Greater && compare(scheme, y, z) != Greater {
                            prop_assert_ne!(
                                compare(scheme, x, z), Greater,
                                "{}: {:?} <= {:?} <= {:?}", scheme, x, y, z
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn windows_agrees_with_generic(a in version_string(), b in version_string()) {
        prop_assert_eq!(compare(Windows, &a, &b), compare(Generic, &a, &b));
    }

    #[test]
    fn numeric_parts_compare_by_value(x in 0u64..100_000, y in 0u64..100_000, p in "[0-9]{1,3}") {
        let (a, b) = (format!("{p}.{x}"), format!("{p}.{y}"));
        for scheme in Scheme::ALL {
            prop_assert_eq!(compare(scheme, &a, &b), x.cmp(&y), "{}: {} vs {}", scheme, a, b);
        }
    }
}
