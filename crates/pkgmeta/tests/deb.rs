//! Parses real .deb files built by `dpkg-deb` with every control compression dpkg offers and
//! checks each field against what `dpkg-deb -f` says about the same file.

mod common;

use std::io::{Read, Seek, SeekFrom};

use capstan_pkgmeta::{
    PackageFormat, PackageManager, Platform, SuggestedDetection, VersionCheck, VersionOp, parse,
    parse_reader,
};
use common::{build_deb, dpkg_field};

/// Control files covering the shapes real packages have: epochs, tildes, multi-line
/// descriptions, folded dependency lists, no optional fields at all.
const CASES: &[(&str, &str)] = &[
    (
        "plain",
        "Package: hello-capstan\nVersion: 1.0-1\nArchitecture: all\n\
         Maintainer: Capstan Tests <tests@example.org>\nInstalled-Size: 12\n\
         Depends: libc6 (>= 2.36), curl | wget\nDescription: says hello\n \
         A longer text that dpkg shows in detail.\n .\n With a second paragraph.\n",
    ),
    (
        "epoch-and-tilde",
        "Package: nginx-capstan\nVersion: 2:1.22.1~rc1-9+deb12u1\nArchitecture: amd64\n\
         Maintainer: Web Team <web@example.org>\nPriority: optional\nSection: httpd\n\
         Installed-Size: 4096\nDepends: libssl3 (>= 3.0.0),\n libpcre2-8-0 (>= 10.22),\n zlib1g\n\
         Description: web server\n",
    ),
    (
        "minimal",
        "Package: m\nVersion: 0\nArchitecture: arm64\nMaintainer: x <x@example.org>\n\
         Description: minimal\n",
    ),
];

#[test]
fn real_debs_match_dpkg_deb() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (case, control) in CASES {
        for compression in ["gzip", "xz", "zstd", "none"] {
            let case_dir = dir.path().join(case);
            let path = build_deb(&case_dir, control, compression);
            let bytes = std::fs::read(&path).expect("read built deb");
            let label = format!("{case} with {compression}");
            let meta = parse(&bytes, "upload.bin").unwrap_or_else(|e| panic!("{label}: {e}"));

            assert_eq!(meta.format, PackageFormat::Deb, "{label}");
            assert_eq!(meta.name, dpkg_field(&path, "Package"), "{label}");
            assert_eq!(meta.version, dpkg_field(&path, "Version"), "{label}");
            assert_eq!(
                meta.architecture,
                dpkg_field(&path, "Architecture"),
                "{label}"
            );
            assert_eq!(
                meta.vendor.as_deref().unwrap_or(""),
                dpkg_field(&path, "Maintainer"),
                "{label}"
            );
            let description = dpkg_field(&path, "Description");
            assert_eq!(
                meta.summary.as_deref(),
                description.lines().next(),
                "{label}"
            );
            let size = dpkg_field(&path, "Installed-Size");
            assert_eq!(
                meta.installed_size,
                size.parse::<u64>().ok().map(|kib| kib * 1024),
                "{label}"
            );
            let depends = dpkg_field(&path, "Depends");
            let depends = depends.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(meta.depends.as_deref().unwrap_or(""), depends, "{label}");
            assert_eq!(meta.platform, Platform::Linux, "{label}");
            assert_eq!(
                meta.suggested_detection,
                Some(SuggestedDetection::Package {
                    manager: PackageManager::Dpkg,
                    name: meta.name.clone(),
                    version: VersionCheck {
                        op: VersionOp::Gte,
                        version: meta.version.clone(),
                    },
                }),
                "{label}"
            );
        }
    }
}

#[test]
fn serialises_for_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_deb(dir.path(), CASES[1].1, "xz");
    let meta = parse(&std::fs::read(&path).expect("read"), "nginx.deb").expect("parses");
    let json = serde_json::to_value(&meta).expect("serialises");
    assert_eq!(
        json,
        serde_json::json!({
            "format": "deb",
            "name": "nginx-capstan",
            "version": "2:1.22.1~rc1-9+deb12u1",
            "architecture": "amd64",
            "summary": "web server",
            "vendor": "Web Team <web@example.org>",
            "license": null,
            "installed_size": 4096 * 1024,
            "depends": "libssl3 (>= 3.0.0), libpcre2-8-0 (>= 10.22), zlib1g",
            "platform": "linux",
            "suggested_detection": {
                "type": "package",
                "manager": "dpkg",
                "name": "nginx-capstan",
                "version": { "op": "gte", "version": "2:1.22.1~rc1-9+deb12u1" }
            }
        })
    );
}

/// The format comes from the bytes: a .deb uploaded under another name is still read.
#[test]
fn ignores_the_file_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_deb(dir.path(), CASES[0].1, "gzip");
    let bytes = std::fs::read(&path).expect("read");
    let meta = parse(&bytes, "setup.msi").expect("parses");
    assert_eq!(meta.format, PackageFormat::Deb);
}

/// A reader that counts the bytes the parser asks for.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Reading a package from disk touches its control data only: a package with 32 MiB of
/// incompressible data costs a few KiB of reads, and the result equals the in-memory parse.
#[test]
fn parse_reader_steps_over_the_data_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("DEBIAN")).expect("mkdir");
    std::fs::create_dir_all(root.join("opt/big")).expect("mkdir");
    std::fs::write(root.join("DEBIAN/control"), CASES[0].1).expect("write control");
    // An xorshift stream: incompressible enough that the data member stays large.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let blob: Vec<u8> = (0..32 * 1024 * 1024 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(root.join("opt/big/blob"), &blob).expect("write blob");
    let deb = dir.path().join("big.deb");
    common::run(
        std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Znone", "--build"])
            .arg(&root)
            .arg(&deb),
    );
    let len = std::fs::metadata(&deb).expect("stat").len();
    assert!(len > 32 * 1024 * 1024, "the package holds the blob");

    let mut counting = Counting {
        inner: std::fs::File::open(&deb).expect("open"),
        read: 0,
    };
    let from_file = parse_reader(&mut counting, "big.deb").expect("parses from disk");
    assert!(counting.read < 64 * 1024, "read {} bytes", counting.read);
    let in_memory = parse(&std::fs::read(&deb).expect("read"), "big.deb").expect("parses");
    assert_eq!(from_file, in_memory);
    assert_eq!(from_file.name, "hello-capstan");
}
