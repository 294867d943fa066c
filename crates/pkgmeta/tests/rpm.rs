//! Parses real .rpm files built by `rpmbuild` and checks each field against what `rpm -qp`
//! says about the same file.

mod common;

use capstan_pkgmeta::{
    PackageFormat, PackageManager, Platform, SuggestedDetection, VersionCheck, VersionOp, parse,
};
use common::{build_rpm, rpm_query, rpm_requires};

/// Spec preambles covering an epoch, a host-architecture build, explicit requirements with
/// every comparison, and a package with none of the optional tags.
const CASES: &[(&str, &str)] = &[
    (
        "noarch-with-epoch",
        "Name: hello-capstan\nVersion: 1.2.3\nRelease: 4.el9\nEpoch: 2\n\
         Summary: Says hello to Capstan\nLicense: MIT\nVendor: Capstan Tests\n\
         BuildArch: noarch\nRequires: bash >= 4.0\nRequires: coreutils\n\
         Requires: glibc < 99\nRequires: tar = 2:1.34\n",
    ),
    (
        "host-arch-tilde",
        "Name: agent-capstan\nVersion: 0.9~rc1\nRelease: 1\nSummary: An agent\n\
         License: Apache-2.0\n",
    ),
    (
        "bare",
        "Name: b\nVersion: 1\nRelease: 1\nSummary: b\nLicense: none\nBuildArch: noarch\n\
         AutoReqProv: no\n",
    ),
];

#[test]
fn real_rpms_match_rpm_query() {
    for (case, preamble) in CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = build_rpm(dir.path(), preamble);
        let bytes = std::fs::read(&path).expect("read built rpm");
        let meta = parse(&bytes, "upload.bin").unwrap_or_else(|e| panic!("{case}: {e}"));
        let file = std::fs::File::open(&path).expect("open built rpm");
        let from_file =
            capstan_pkgmeta::parse_reader(file, "upload.bin").expect("parses from disk");
        assert_eq!(meta, from_file, "{case}: parse and parse_reader agree");

        assert_eq!(meta.format, PackageFormat::Rpm, "{case}");
        assert_eq!(meta.name, rpm_query(&path, "%{NAME}"), "{case}");
        assert_eq!(
            meta.version,
            rpm_query(&path, "%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}"),
            "{case}"
        );
        assert_eq!(meta.architecture, rpm_query(&path, "%{ARCH}"), "{case}");
        assert_eq!(
            meta.summary.as_deref(),
            Some(rpm_query(&path, "%{SUMMARY}").as_str()),
            "{case}"
        );
        assert_eq!(
            meta.license.as_deref(),
            Some(rpm_query(&path, "%{LICENSE}").as_str()),
            "{case}"
        );
        assert_eq!(
            meta.vendor.as_deref().unwrap_or("(none)"),
            rpm_query(&path, "%{VENDOR}"),
            "{case}"
        );
        assert_eq!(
            meta.installed_size.map(|s| s.to_string()),
            Some(rpm_query(&path, "%{LONGSIZE}")),
            "{case}"
        );
        assert_eq!(
            meta.depends.as_deref().unwrap_or(""),
            rpm_requires(&path),
            "{case}"
        );
        assert_eq!(meta.platform, Platform::Linux, "{case}");
        assert_eq!(
            meta.suggested_detection,
            Some(SuggestedDetection::Package {
                manager: PackageManager::Rpm,
                name: meta.name.clone(),
                version: VersionCheck {
                    op: VersionOp::Gte,
                    version: meta.version.clone(),
                },
            }),
            "{case}"
        );
    }
}

#[test]
fn epoch_and_requirements_read_as_rpm_prints_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_rpm(dir.path(), CASES[0].1);
    let meta = parse(&std::fs::read(&path).expect("read"), "hello.rpm").expect("parses");
    assert_eq!(meta.version, "2:1.2.3-4.el9");
    assert_eq!(meta.architecture, "noarch");
    let depends = meta.depends.expect("has requirements");
    for expected in ["bash >= 4.0", "coreutils", "glibc < 99", "tar = 2:1.34"] {
        assert!(
            depends.split(", ").any(|d| d == expected),
            "{expected} in {depends}"
        );
    }
    assert!(!depends.contains("rpmlib("), "{depends}");
}
