//! Hostile and broken uploads: each must be refused with the error a user can act on, never a
//! panic, an out-of-memory or a file written anywhere. The cases are a table: a label, the bytes
//! and the error kind expected.

mod common;

use std::path::Path;

use capstan_pkgmeta::{ErrorKind, MAX_CONTROL_BYTES, parse};
use common::{CONTROL, TarEntry, ar, deb_with_control, pipe, tar};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn deb_fixture() -> Vec<u8> {
    fixture("hello-capstan_2.4.1-3_all.deb")
}

fn rpm_fixture() -> Vec<u8> {
    fixture("hello-capstan-2.4.1-3.noarch.rpm")
}

fn control_tar(control: &str) -> Vec<u8> {
    tar(&[TarEntry::File("./control", control.as_bytes())])
}

/// A control archive that decompresses to more than the cap: a file of zeros.
fn bomb_tar() -> Vec<u8> {
    let zeros = vec![0u8; MAX_CONTROL_BYTES + 4096];
    tar(&[TarEntry::File("./control", &zeros)])
}

/// Replaces the first occurrence of `from` with `to` (same length) in a copy of `bytes`.
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

/// Offsets inside the fixture .rpm: the lead is 96 bytes, then the signature header.
const SIG_INDEX_COUNT: usize = 96 + 8;
const SIG_STORE_LEN: usize = 96 + 12;

type Case = (&'static str, Vec<u8>, fn(&ErrorKind) -> bool);

fn cases() -> Vec<Case> {
    let deb = |control: &str| deb_with_control("control.tar", &control_tar(control));
    let rpm = rpm_fixture();
    let mut source_rpm = rpm.clone();
    source_rpm[7] = 1;
    let mut huge_index = rpm.clone();
    huge_index[SIG_INDEX_COUNT..SIG_INDEX_COUNT + 4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    let mut huge_store = rpm.clone();
    huge_store[SIG_STORE_LEN..SIG_STORE_LEN + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let mut bad_sig_magic = rpm.clone();
    bad_sig_magic[96] = 0;
    let mut deb_truncated_header = deb_fixture();
    deb_truncated_header.truncate(8 + 60 + 4 + 30);
    let mut deb_truncated_data = deb_fixture();
    let len = deb_truncated_data.len();
    deb_truncated_data.truncate(len - 10);
    let mut rpm_truncated = rpm.clone();
    rpm_truncated.truncate(rpm.len() - 100);

    vec![
        ("zero bytes", vec![], |k| matches!(k, ErrorKind::Empty)),
        ("text file", b"#!/bin/sh\nrm -rf /\n".to_vec(), |k| {
            matches!(k, ErrorKind::UnknownFormat { .. })
        }),
        // A zip is read as a script archive, so a broken one says so.
        ("broken zip", b"PK\x03\x04garbage".to_vec(), |k| {
            matches!(
                k,
                ErrorKind::Malformed {
                    format: capstan_pkgmeta::Format::ScriptArchive,
                    ..
                }
            )
        }),
        ("ELF binary", b"\x7fELF\x02\x01\x01\0".to_vec(), |k| {
            matches!(k, ErrorKind::UnknownFormat { .. })
        }),
        // Deb container.
        ("ar magic only", b"!<arch>\n".to_vec(), |k| {
            matches!(k, ErrorKind::Missing { .. })
        }),
        ("truncated ar header", deb_truncated_header, |k| {
            matches!(k, ErrorKind::Truncated { .. })
        }),
        ("truncated data member", deb_truncated_data, |k| {
            matches!(k, ErrorKind::Truncated { .. })
        }),
        (
            "member name with ..",
            ar(&[("debian-binary", b"2.0\n"), ("../control.tar", b"")]),
            |k| matches!(k, ErrorKind::UnsafeName { .. }),
        ),
        (
            "member name with a slash",
            ar(&[("debian-binary", b"2.0\n"), ("etc/cron.d", b"")]),
            |k| matches!(k, ErrorKind::UnsafeName { .. }),
        ),
        (
            "debian-binary 3.0",
            ar(&[
                ("debian-binary", b"3.0\n"),
                ("control.tar", &control_tar(CONTROL)),
            ]),
            |k| matches!(k, ErrorKind::UnsupportedVersion { .. }),
        ),
        (
            "debian-binary not first",
            ar(&[
                ("control.tar", &control_tar(CONTROL)),
                ("debian-binary", b"2.0\n"),
            ]),
            |k| matches!(k, ErrorKind::Malformed { .. }),
        ),
        (
            "no control member",
            ar(&[("debian-binary", b"2.0\n"), ("data.tar", &tar(&[]))]),
            |k| matches!(k, ErrorKind::Missing { .. }),
        ),
        (
            "bzip2 control",
            deb_with_control("control.tar.bz2", b"BZh9"),
            |k| matches!(k, ErrorKind::UnsupportedCompression { .. }),
        ),
        (
            "corrupt gzip",
            deb_with_control("control.tar.gz", b"\x1f\x8b\x08\x00garbage-not-deflate"),
            |k| matches!(k, ErrorKind::Decompress { .. }),
        ),
        // Decompression bombs, one per compressor.
        (
            "gzip bomb",
            deb_with_control("control.tar.gz", &pipe("gzip", &["-9c"], &bomb_tar())),
            |k| matches!(k, ErrorKind::TooLarge { .. }),
        ),
        (
            "xz bomb",
            deb_with_control("control.tar.xz", &pipe("xz", &["-9c"], &bomb_tar())),
            |k| matches!(k, ErrorKind::TooLarge { .. }),
        ),
        (
            "zstd bomb",
            deb_with_control("control.tar.zst", &pipe("zstd", &["-19c"], &bomb_tar())),
            |k| matches!(k, ErrorKind::TooLarge { .. }),
        ),
        (
            "zstd asking for a 128 MiB window",
            deb_with_control(
                "control.tar.zst",
                &pipe("zstd", &["-c", "--long=27"], &control_tar(CONTROL)),
            ),
            |k| matches!(k, ErrorKind::TooLarge { .. }),
        ),
        (
            "uncompressed control.tar above the cap",
            deb_with_control("control.tar", &bomb_tar()),
            |k| matches!(k, ErrorKind::TooLarge { .. }),
        ),
        // Control archive contents.
        (
            "control.tar entry with ../",
            deb_with_control(
                "control.tar",
                &tar(&[TarEntry::File(
                    "../../etc/cron.d/evil",
                    b"* * * * * root sh",
                )]),
            ),
            |k| matches!(k, ErrorKind::UnsafeName { .. }),
        ),
        (
            "control.tar entry with an absolute path",
            deb_with_control("control.tar", &tar(&[TarEntry::File("/etc/passwd", b"x")])),
            |k| matches!(k, ErrorKind::UnsafeName { .. }),
        ),
        (
            "control.tar symlink escaping",
            deb_with_control(
                "control.tar",
                &tar(&[TarEntry::Symlink("./control", "/etc/shadow")]),
            ),
            |k| matches!(k, ErrorKind::UnsafeName { .. }),
        ),
        (
            "control is a symlink",
            deb_with_control(
                "control.tar",
                &tar(&[TarEntry::Symlink("./control", "postinst")]),
            ),
            |k| matches!(k, ErrorKind::Malformed { .. }),
        ),
        (
            "two control files",
            deb_with_control(
                "control.tar",
                &tar(&[
                    TarEntry::File("./control", CONTROL.as_bytes()),
                    TarEntry::File("control", b"Package: other\n"),
                ]),
            ),
            |k| matches!(k, ErrorKind::Malformed { .. }),
        ),
        (
            "no control file",
            deb_with_control("control.tar", &tar(&[TarEntry::File("./md5sums", b"")])),
            |k| matches!(k, ErrorKind::Missing { .. }),
        ),
        (
            "control.tar is not a tar",
            deb_with_control("control.tar", &[0x55; 700]),
            |k| matches!(k, ErrorKind::Malformed { .. }),
        ),
        // Control file contents.
        ("no Version", deb("Package: a\nArchitecture: all\n"), |k| {
            matches!(
                k,
                ErrorKind::MissingField {
                    field: "Version",
                    ..
                }
            )
        }),
        (
            "empty Package",
            deb("Package:\nVersion: 1\nArchitecture: all\n"),
            |k| {
                matches!(
                    k,
                    ErrorKind::MissingField {
                        field: "Package",
                        ..
                    }
                )
            },
        ),
        (
            "shell metacharacters in Package",
            deb("Package: x;rm -rf /\nVersion: 1\nArchitecture: all\n"),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "Package",
                        ..
                    }
                )
            },
        ),
        (
            "command substitution in Version",
            deb("Package: x\nVersion: $(reboot)\nArchitecture: all\n"),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "Version",
                        ..
                    }
                )
            },
        ),
        (
            "non-numeric epoch",
            deb("Package: x\nVersion: a:1\nArchitecture: all\n"),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "Version",
                        ..
                    }
                )
            },
        ),
        (
            "Installed-Size not a number",
            deb("Package: x\nVersion: 1\nArchitecture: all\nInstalled-Size: lots\n"),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "Installed-Size",
                        ..
                    }
                )
            },
        ),
        (
            "duplicate field",
            deb("Package: x\nVersion: 1\npackage: y\nArchitecture: all\n"),
            |k| matches!(k, ErrorKind::Malformed { .. }),
        ),
        (
            "continuation before any field",
            deb(" Package: x\nVersion: 1\nArchitecture: all\n"),
            |k| matches!(k, ErrorKind::Malformed { .. }),
        ),
        (
            "control not UTF-8",
            deb_with_control(
                "control.tar",
                &tar(&[TarEntry::File("./control", b"Package: \xff\xfe\n")]),
            ),
            |k| matches!(k, ErrorKind::Malformed { .. }),
        ),
        // Rpm.
        ("rpm lead only", rpm[..96].to_vec(), |k| {
            matches!(k, ErrorKind::Truncated { .. })
        }),
        ("rpm payload cut short", rpm_truncated, |k| {
            matches!(k, ErrorKind::Truncated { .. })
        }),
        ("source rpm", source_rpm, |k| {
            matches!(k, ErrorKind::SourcePackage { .. })
        }),
        ("rpm with 16 million index entries", huge_index, |k| {
            matches!(k, ErrorKind::TooLarge { .. })
        }),
        ("rpm with a 2 GiB header store", huge_store, |k| {
            matches!(k, ErrorKind::TooLarge { .. })
        }),
        ("rpm signature without magic", bad_sig_magic, |k| {
            matches!(k, ErrorKind::Malformed { .. })
        }),
        (
            "rpm for another OS",
            patched(&rpm, b"linux\0", b"minix\0"),
            |k| matches!(k, ErrorKind::UnsupportedPlatform { .. }),
        ),
        (
            "shell metacharacters in rpm NAME",
            patched(&rpm, b"hello-capstan\0", b"hello;capstan\0"),
            |k| matches!(k, ErrorKind::InvalidField { field: "NAME", .. }),
        ),
    ]
}

#[test]
fn hostile_inputs_are_refused_with_a_clear_error() {
    for (label, bytes, expected) in cases() {
        let err = match parse(&bytes, "upload.pkg") {
            Ok(meta) => panic!("{label}: accepted as {meta:?}"),
            Err(e) => e,
        };
        assert!(expected(err.kind()), "{label}: unexpected error {err}");
        let from_reader = capstan_pkgmeta::parse_reader(std::io::Cursor::new(&bytes), "upload.pkg");
        assert_eq!(
            from_reader.as_ref().err(),
            Some(&err),
            "{label}: parse_reader agrees"
        );
        let message = err.to_string();
        assert!(message.starts_with("upload.pkg: "), "{label}: {message}");
        assert!(message.len() < 400, "{label}: message too long: {message}");
    }
}

/// The control archive may hold scripts, md5sums and a directory entry; only `./control`
/// is read, and the result is the same as for a control archive with nothing else.
#[test]
fn other_control_entries_are_ignored() {
    let busy = deb_with_control(
        "control.tar",
        &tar(&[
            TarEntry::Dir("./"),
            TarEntry::File("./md5sums", b"d41d8cd98f00b204e9800998ecf8427e  usr/x\n"),
            TarEntry::File("./postinst", b"#!/bin/sh\nexit 0\n"),
            TarEntry::File("./control", CONTROL.as_bytes()),
            TarEntry::Symlink("./config", "postinst"),
        ]),
    );
    let plain = deb_with_control("control.tar", &control_tar(CONTROL));
    let busy = parse(&busy, "busy.deb").expect("busy control.tar parses");
    assert_eq!(busy, parse(&plain, "plain.deb").expect("plain parses"));
    assert_eq!(busy.name, "hello-capstan");
}

/// Every prefix of each fixture, and every single-byte corruption, returns (an error or a
/// result) without panicking.
#[test]
fn truncations_and_byte_flips_never_panic() {
    for bytes in [deb_fixture(), rpm_fixture()] {
        for len in 0..bytes.len() {
            let _ = parse(&bytes[..len], "cut.pkg");
            let _ = capstan_pkgmeta::parse_reader(std::io::Cursor::new(&bytes[..len]), "cut.pkg");
        }
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut copy = bytes.clone();
                copy[at] ^= flip;
                let _ = parse(&copy, "flipped.pkg");
            }
        }
    }
}

mod random {
    use super::{deb_fixture, parse, rpm_fixture};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random bytes behind each magic number reach deep into both readers.
        #[test]
        fn random_bytes_never_panic(
            magic in prop::sample::select(vec![
                b"!<arch>\n".to_vec(),
                vec![0xed, 0xab, 0xee, 0xdb],
                vec![],
            ]),
            tail in prop::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut bytes = magic;
            bytes.extend_from_slice(&tail);
            let _ = parse(&bytes, "random.pkg");
        }

        /// Several random overwrites of a real package.
        #[test]
        fn mutated_fixtures_never_panic(
            rpm in any::<bool>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = if rpm { rpm_fixture() } else { deb_fixture() };
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let _ = parse(&bytes, "mutated.pkg");
        }
    }
}

/// A control archive close to the cap, of incompressible data, compresses to many LZMA2 chunks
/// (stored ones among them) and, with threads, to several xz blocks: all must still be read.
#[test]
fn large_xz_control_archives_parse() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..800 * 1024 / 16)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            format!("{state:016x}")
        })
        .collect();
    let control_tar = tar(&[
        TarEntry::File("./control", CONTROL.as_bytes()),
        TarEntry::File("./md5sums", noise.as_bytes()),
    ]);
    for args in [
        &["-c", "-6"][..],
        &["-c", "-0", "-T2", "--block-size=65536"][..],
        &["-c", "-9e", "--check=crc32"][..],
    ] {
        let xz = pipe("xz", args, &control_tar);
        let meta = parse(&deb_with_control("control.tar.xz", &xz), "big-control.deb")
            .unwrap_or_else(|e| panic!("xz {args:?}: {e}"));
        assert_eq!(meta.name, "hello-capstan", "xz {args:?}");
    }
}

/// An LZMA2 chunk whose header claims more packed bytes than its data uses, with another chunk
/// hidden in the slack: lzma-rs would decode the hidden chunk, which the size walk never
/// counted, so this is how a bomb would slip past the walk. The guard refuses it.
#[test]
fn xz_chunk_hidden_inside_another_is_refused() {
    let xz = pipe("xz", &["-c", "-0", "--check=crc32"], &control_tar(CONTROL));
    let chunk = 12 + (usize::from(xz[12]) + 1) * 4;
    assert!(
        xz[chunk] >= 0xe0,
        "the first chunk resets the dictionary and has properties"
    );
    let packed = usize::from(u16::from_be_bytes([xz[chunk + 3], xz[chunk + 4]])) + 1;
    let data_end = chunk + 6 + packed;
    // A stored chunk of 17 bytes: 20 bytes in all, so the block keeps its 4-byte alignment.
    let hidden: Vec<u8> = [0x02, 0x00, 0x10]
        .into_iter()
        .chain(std::iter::repeat_n(b'A', 17))
        .collect();
    let mut crafted = xz[..data_end].to_vec();
    crafted.extend_from_slice(&hidden);
    crafted.extend_from_slice(&xz[data_end..]);
    let claimed = u16::try_from(packed + hidden.len() - 1).expect("fits");
    crafted[chunk + 3..chunk + 5].copy_from_slice(&claimed.to_be_bytes());

    let err =
        parse(&deb_with_control("control.tar.xz", &crafted), "hidden.deb").expect_err("refused");
    assert!(
        matches!(err.kind(), ErrorKind::Decompress { .. })
            && err.to_string().contains("inside another chunk's data"),
        "{err}"
    );
}
