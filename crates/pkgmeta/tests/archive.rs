//! Script archives (.zip and .tar.gz with `capstan-package.json`): the manifest is read and
//! validated, extraction writes exactly the archive's files with the right modes, and hostile
//! archives are refused — by `parse` and by `extract_archive` alike — with an error naming the
//! entry, leaving nothing behind.

mod common;

use std::path::Path;

use capstan_pkgmeta::{
    ArchiveLimits, ErrorKind, Format, ManifestInterpreter, MetaError, PackageFormat, Platform,
    extract_archive, parse, parse_reader,
};
use common::{RawTar, ZipItem, gzip, raw_tar, replace_all, zip};

const MANIFEST: &str = r#"{
  "name": "hello-tool",
  "version": "1.2.0",
  "platform": "linux",
  "arch": "any",
  "install": {"interpreter": "sh", "script": "install.sh", "args": ["--quiet", "a b; rm -rf /"]},
  "uninstall": {"interpreter": "sh", "script": "scripts/uninstall.sh"},
  "detection": {"type": "file_exists", "path": "/opt/hello-tool/VERSION"},
  "description": "Installs hello-tool\nand nothing else"
}"#;

const INSTALL: &[u8] = b"#!/bin/sh\nprintf 'installed %s|' \"$@\"\n";
const UNINSTALL: &[u8] = b"#!/bin/sh\necho removed\n";
const PAYLOAD: &[u8] = b"payload bytes\n";

fn good_tgz(manifest: &str) -> Vec<u8> {
    gzip(&raw_tar(&[
        RawTar::dir("./"),
        RawTar::file("./capstan-package.json", manifest.as_bytes()),
        RawTar::exec("./install.sh", INSTALL),
        RawTar::dir("./scripts/"),
        RawTar::exec("./scripts/uninstall.sh", UNINSTALL),
        RawTar::file("./payload/data.txt", PAYLOAD),
    ]))
}

fn good_zip(manifest: &str) -> Vec<u8> {
    zip(&[
        ZipItem::File("capstan-package.json", manifest.as_bytes(), 0o644),
        ZipItem::File("install.sh", INSTALL, 0o755),
        ZipItem::Dir("scripts/"),
        ZipItem::File("scripts/uninstall.sh", UNINSTALL, 0o755),
        ZipItem::File("payload/data.txt", PAYLOAD, 0o644),
    ])
}

fn containers(manifest: &str) -> [(&'static str, Vec<u8>); 2] {
    [
        ("tool.tar.gz", good_tgz(manifest)),
        ("tool.zip", good_zip(manifest)),
    ]
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write archive");
    path
}

#[test]
fn manifests_are_read_from_zip_and_tar_gz() {
    for (name, bytes) in containers(MANIFEST) {
        let meta = parse(&bytes, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.format, PackageFormat::ScriptArchive, "{name}");
        assert_eq!(meta.name, "hello-tool", "{name}");
        assert_eq!(meta.version, "1.2.0", "{name}");
        assert_eq!(meta.architecture, "any", "{name}");
        assert_eq!(meta.platform, Platform::Linux, "{name}");
        assert_eq!(
            meta.summary.as_deref(),
            Some("Installs hello-tool"),
            "{name}"
        );
        let manifest = meta.manifest.as_ref().expect("manifest kept");
        assert_eq!(manifest.install.interpreter, ManifestInterpreter::Sh);
        assert_eq!(manifest.install.args, ["--quiet", "a b; rm -rf /"]);
        assert_eq!(
            manifest.uninstall.as_ref().map(|u| u.script.as_str()),
            Some("scripts/uninstall.sh")
        );
        let json = serde_json::to_value(&meta).expect("serialises");
        // The manifest's detection goes to the server exactly as written.
        assert_eq!(
            json["suggested_detection"],
            serde_json::json!({"type": "file_exists", "path": "/opt/hello-tool/VERSION"}),
            "{name}"
        );
        assert_eq!(json["platform"], "linux");
        assert_eq!(json["format"], "script_archive");
        let from_reader = parse_reader(std::io::Cursor::new(&bytes), name).expect("reader");
        assert_eq!(from_reader, meta, "{name}");
    }
}

#[test]
fn a_manifest_without_detection_suggests_none() {
    let manifest = r#"{"name": "w", "version": "1", "platform": "windows", "arch": "x86_64",
        "install": {"interpreter": "powershell", "script": "install.sh"}}"#;
    for (name, bytes) in containers(manifest) {
        let meta = parse(&bytes, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.suggested_detection, None, "{name}");
        assert_eq!(meta.platform, Platform::Windows, "{name}");
        assert_eq!(meta.architecture, "x86_64", "{name}");
    }
}

#[cfg(unix)]
#[test]
fn extraction_writes_the_files_with_their_modes_and_the_script_runs() {
    use std::os::unix::fs::PermissionsExt;
    for (name, bytes) in containers(MANIFEST) {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = write_temp(dir.path(), name, &bytes);
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).expect("dest");
        let done = extract_archive(&archive, &dest, &ArchiveLimits::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.meta, parse(&bytes, name).expect("parses"), "{name}");
        assert_eq!(done.manifest.name, "hello-tool");
        assert_eq!(done.files, 4, "{name}");
        let expected_bytes = MANIFEST.len() + INSTALL.len() + UNINSTALL.len() + PAYLOAD.len();
        assert_eq!(done.bytes, expected_bytes as u64, "{name}");
        for (rel, content, mode) in [
            ("capstan-package.json", MANIFEST.as_bytes(), 0o644),
            ("install.sh", INSTALL, 0o755),
            ("scripts/uninstall.sh", UNINSTALL, 0o755),
            ("payload/data.txt", PAYLOAD, 0o644),
        ] {
            let path = dest.join(rel);
            assert_eq!(std::fs::read(&path).expect(rel), content, "{name}: {rel}");
            let actual = std::fs::metadata(&path).expect(rel).permissions().mode() & 0o777;
            assert_eq!(actual, mode, "{name}: {rel} mode {actual:o}");
        }
        // The extracted install script runs as the agent will run it: argv, no shell string.
        let out = std::process::Command::new("sh")
            .arg(dest.join("install.sh"))
            .args(&done.manifest.install.args)
            .output()
            .expect("sh runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "installed --quiet|installed a b; rm -rf /|"
        );
    }
}

#[test]
fn extraction_needs_an_existing_empty_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = write_temp(dir.path(), "tool.zip", &good_zip(MANIFEST));
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).expect("dir");
    std::fs::write(busy.join("install.sh"), "#!/bin/sh\necho planted\n").expect("plant");
    let err = extract_archive(&archive, &busy, &ArchiveLimits::default()).expect_err("busy");
    assert!(
        matches!(err.kind(), ErrorKind::Destination { message, .. } if message.contains("not empty")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(busy.join("install.sh")).expect("kept"),
        "#!/bin/sh\necho planted\n",
        "nothing overwritten"
    );
    let missing = dir.path().join("missing");
    let err = extract_archive(&archive, &missing, &ArchiveLimits::default()).expect_err("gone");
    assert!(matches!(err.kind(), ErrorKind::Destination { .. }), "{err}");
    assert!(!missing.exists(), "no directory created");
}

/// A hostile archive, the entry name the error must carry and a word of the reason.
struct Hostile {
    label: &'static str,
    bytes: Vec<u8>,
    entry: &'static str,
    reason: &'static str,
}

fn manifest_entries<'a>() -> Vec<RawTar<'a>> {
    vec![
        RawTar::file("capstan-package.json", MANIFEST.as_bytes()),
        RawTar::exec("install.sh", INSTALL),
        RawTar::exec("scripts/uninstall.sh", UNINSTALL),
    ]
}

fn hostile_tgz(
    label: &'static str,
    extra: RawTar<'static>,
    entry: &'static str,
    reason: &'static str,
) -> Hostile {
    let mut entries = manifest_entries();
    entries.push(extra);
    Hostile {
        label,
        bytes: gzip(&raw_tar(&entries)),
        entry,
        reason,
    }
}

fn hostile_zip(
    label: &'static str,
    extra: ZipItem<'static>,
    entry: &'static str,
    reason: &'static str,
) -> Hostile {
    let bytes = zip(&[
        ZipItem::File("capstan-package.json", MANIFEST.as_bytes(), 0o644),
        ZipItem::File("install.sh", INSTALL, 0o755),
        ZipItem::File("scripts/uninstall.sh", UNINSTALL, 0o755),
        extra,
    ]);
    Hostile {
        label,
        bytes,
        entry,
        reason,
    }
}

fn hostile_cases() -> Vec<Hostile> {
    let mut cases = vec![
        hostile_tgz("tar ..", RawTar::file("../evil", b"x"), "../evil", "'..'"),
        hostile_tgz(
            "tar nested ..",
            RawTar::file("payload/../../evil", b"x"),
            "payload/../../evil",
            "'..'",
        ),
        hostile_tgz(
            "tar absolute",
            RawTar::file("/etc/cron.d/evil", b"x"),
            "/etc/cron.d/evil",
            "absolute",
        ),
        hostile_tgz(
            "tar drive letter",
            RawTar::file("C:/Windows/evil.dll", b"x"),
            "C:/Windows/evil.dll",
            "drive letter",
        ),
        hostile_tgz(
            "tar UNC path",
            RawTar::file("\\\\server\\share\\evil", b"x"),
            "\\\\\\\\server\\\\share\\\\evil",
            "backslash",
        ),
        hostile_tgz(
            "tar backslash climb",
            RawTar::file("payload\\..\\..\\evil", b"x"),
            "payload\\\\..\\\\..\\\\evil",
            "backslash",
        ),
        hostile_tgz(
            "tar symlink",
            RawTar::special("payload/link", b'2', "/etc/passwd"),
            "payload/link",
            "symbolic link",
        ),
        hostile_tgz(
            "tar relative symlink",
            RawTar::special("link", b'2', "install.sh"),
            "link",
            "symbolic link",
        ),
        hostile_tgz(
            "tar hard link",
            RawTar::special("payload/hard", b'1', "/etc/shadow"),
            "payload/hard",
            "hard link",
        ),
        hostile_tgz(
            "tar character device",
            RawTar::special("payload/null", b'3', ""),
            "payload/null",
            "character device",
        ),
        hostile_tgz(
            "tar fifo",
            RawTar::special("payload/pipe", b'6', ""),
            "payload/pipe",
            "FIFO",
        ),
        hostile_tgz(
            "tar duplicate",
            RawTar::file("./install.sh", b"#!/bin/sh\necho second\n"),
            "./install.sh",
            "appears twice",
        ),
        hostile_tgz(
            "tar duplicate by case",
            RawTar::file("Install.SH", b"x"),
            "Install.SH",
            "appears twice",
        ),
        hostile_tgz(
            "tar below a file",
            RawTar::file("install.sh/x", b"x"),
            "install.sh/x",
            "which is a file",
        ),
        hostile_tgz(
            "tar control character",
            RawTar::file("payload/a\u{1b}[2Jb", b"x"),
            "payload/a\\u{1b}[2Jb",
            "control character",
        ),
        hostile_tgz(
            "tar empty component",
            RawTar::file("payload//x", b"x"),
            "payload//x",
            "empty component",
        ),
        hostile_tgz(
            "tar NTFS stream",
            RawTar::file("install.sh:evil", b"x"),
            "install.sh:evil",
            "NTFS stream",
        ),
        hostile_tgz(
            "tar Windows device",
            RawTar::file("payload/nul.txt", b"x"),
            "payload/nul.txt",
            "Windows device name",
        ),
        hostile_tgz(
            "tar trailing dot",
            RawTar::file("install.sh.", b"x"),
            "install.sh.",
            "ends with '.'",
        ),
        hostile_tgz(
            "tar long component",
            RawTar::file(Box::leak("a".repeat(300).into_boxed_str()), b"x"),
            "aaaaaaaaaaaaaaaa",
            "longer than 255 bytes",
        ),
        hostile_zip(
            "zip ..",
            ZipItem::File("../evil", b"x", 0o644),
            "../evil",
            "'..'",
        ),
        hostile_zip(
            "zip absolute",
            ZipItem::File("/etc/evil", b"x", 0o644),
            "/etc/evil",
            "absolute",
        ),
        hostile_zip(
            "zip drive letter",
            ZipItem::File("C:\\evil.dll", b"x", 0o644),
            "C:\\\\evil.dll",
            "backslash",
        ),
        hostile_zip(
            "zip symlink",
            ZipItem::Symlink("payload/link", "/etc/passwd"),
            "payload/link",
            "symbolic link",
        ),
    ];
    // The zip writer stores regular-file modes only; the central header's mode is rewritten to
    // a character device's.
    let mut device = hostile_zip(
        "zip device mode",
        ZipItem::File("payload/dev", b"", 0o644),
        "payload/dev",
        "device",
    );
    set_central_mode(&mut device.bytes, b"payload/dev", 0o020_644);
    cases.push(device);
    // The zip writer refuses duplicate names, so the second name is rewritten in place.
    let twice = zip(&[
        ZipItem::File("capstan-package.json", MANIFEST.as_bytes(), 0o644),
        ZipItem::File("install.sh", INSTALL, 0o755),
        ZipItem::File("scripts/uninstall.sh", UNINSTALL, 0o755),
        ZipItem::File("INSTALL.zz", b"#!/bin/sh\necho second\n", 0o755),
    ]);
    cases.push(Hostile {
        label: "zip duplicate by case",
        bytes: replace_all(&twice, b"INSTALL.zz", b"INSTALL.sh"),
        entry: "INSTALL.sh",
        reason: "appears twice",
    });
    let long_path = format!("{}/", "d".repeat(200)).repeat(6) + "f";
    let long_path: &'static str = Box::leak(long_path.into_boxed_str());
    cases.push(hostile_tgz(
        "tar long path",
        RawTar::file(long_path, b"x"),
        "dddddddd",
        "longer than 1024 bytes",
    ));
    let mut non_utf8 = manifest_entries();
    non_utf8.push(RawTar {
        name: b"payload/\xff\xfe",
        ..RawTar::file("", b"x")
    });
    cases.push(Hostile {
        label: "tar non-UTF-8 name",
        bytes: gzip(&raw_tar(&non_utf8)),
        entry: "payload/",
        reason: "not UTF-8",
    });
    cases
}

/// Sets the Unix mode (the high half of the external attributes) of a zip's central header.
fn set_central_mode(zip: &mut [u8], name: &[u8], mode: u16) {
    let at = (0..zip.len() - 46)
        .find(|&i| zip[i..i + 4] == *b"PK\x01\x02" && zip[i + 46..].starts_with(name))
        .expect("central header");
    zip[at + 40..at + 42].copy_from_slice(&mode.to_le_bytes());
}

fn assert_refused(label: &str, err: &MetaError, entry: &str, reason: &str) {
    match err.kind() {
        ErrorKind::UnsafeEntry {
            format: Format::ScriptArchive,
            name,
            reason: why,
        } => {
            assert!(
                name.contains(entry),
                "{label}: entry {name:?} lacks {entry:?}"
            );
            assert!(
                why.contains(reason),
                "{label}: reason {why:?} lacks {reason:?}"
            );
        }
        _ => panic!("{label}: unexpected error {err}"),
    }
    let message = err.to_string();
    assert!(message.len() < 400, "{label}: message too long: {message}");
}

#[test]
fn hostile_archives_are_refused_by_parse_and_extract() {
    let dir = tempfile::tempdir().expect("tempdir");
    for case in hostile_cases() {
        let err = match parse(&case.bytes, "evil.archive") {
            Ok(meta) => panic!("{}: accepted as {meta:?}", case.label),
            Err(e) => e,
        };
        assert_refused(case.label, &err, case.entry, case.reason);

        let archive = write_temp(dir.path(), "evil.archive", &case.bytes);
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).expect("dest");
        let err =
            extract_archive(&archive, &dest, &ArchiveLimits::default()).expect_err(case.label);
        assert_refused(case.label, &err, case.entry, case.reason);
        let left: Vec<_> = std::fs::read_dir(&dest).expect("dest").collect();
        assert!(left.is_empty(), "{}: left behind {left:?}", case.label);
        std::fs::remove_dir(&dest).expect("clean");
        assert!(
            !dir.path().join("evil").exists()
                && !dir.path().parent().expect("tmp").join("evil").exists(),
            "{}: escaped",
            case.label
        );
    }
}

#[test]
fn size_and_count_limits_hold() {
    // A header announcing 5 GiB is refused before any of it is read.
    let mut entries = manifest_entries();
    entries.push(RawTar {
        declared: Some(5 << 30),
        ..RawTar::file("payload/huge", b"")
    });
    let tar = raw_tar(&entries);
    // Cut the archive where the huge entry's data would begin.
    let err = parse(&gzip(&tar[..tar.len() - 1024]), "huge.tgz").expect_err("huge");
    assert!(
        matches!(err.kind(), ErrorKind::TooLarge { what: "total uncompressed size", limit, .. } if *limit == 4 << 30),
        "{err}"
    );

    // 10,001 entries exceed the default cap.
    let names: Vec<String> = (0..10_001).map(|i| format!("payload/f{i}")).collect();
    let mut entries = manifest_entries();
    entries.extend(names.iter().map(|n| RawTar::file(n, b"")));
    let err = parse(&gzip(&raw_tar(&entries)), "many.tgz").expect_err("many");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::TooLarge {
                what: "number of entries",
                limit: 10_000,
                ..
            }
        ),
        "{err}"
    );

    // The agent's own limits apply the same way while extracting.
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = write_temp(dir.path(), "tool.zip", &good_zip(MANIFEST));
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).expect("dest");
    let small = ArchiveLimits {
        max_total_bytes: 100,
        ..ArchiveLimits::default()
    };
    let err = extract_archive(&archive, &dest, &small).expect_err("over the cap");
    assert!(
        matches!(err.kind(), ErrorKind::TooLarge { limit: 100, .. }),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&dest).expect("dest").count(), 0);
}

/// A zip entry whose data inflates to more than its headers declare (a zip bomb's trick).
#[test]
fn zip_entries_larger_than_declared_are_refused() {
    let zeros = vec![0u8; 200_000];
    let bytes = zip(&[
        ZipItem::File("capstan-package.json", MANIFEST.as_bytes(), 0o644),
        ZipItem::File("install.sh", INSTALL, 0o755),
        ZipItem::File("scripts/uninstall.sh", UNINSTALL, 0o755),
        ZipItem::File("payload/zeros", &zeros, 0o644),
    ]);
    // Both headers state the uncompressed size as 200,000 (0x030d40); claim 16 bytes instead.
    let bytes = replace_all(&bytes, &200_000u32.to_le_bytes(), &16u32.to_le_bytes());
    let err = parse(&bytes, "bomb.zip").expect_err("bomb");
    match err.kind() {
        ErrorKind::UnsafeEntry { name, reason, .. } => {
            assert_eq!(name, "payload/zeros");
            assert!(
                reason.contains("more than its declared 16 bytes"),
                "{reason}"
            );
        }
        // The zip reader may notice the mismatch itself (a CRC or length error) first.
        ErrorKind::Decompress { member, .. } => assert_eq!(member, "payload/zeros"),
        _ => panic!("unexpected {err}"),
    }
}

#[test]
fn invalid_manifests_are_explained() {
    let cases: &[(&str, &str, &str)] = &[
        ("not json", "{", "EOF"),
        (
            "unknown field",
            r#"{"name":"t","version":"1","platform":"linux","arch":"any","install":{"interpreter":"sh","script":"install.sh"},"postinstall":"x"}"#,
            "postinstall",
        ),
        (
            "missing script",
            r#"{"name":"t","version":"1","platform":"linux","arch":"any","install":{"interpreter":"sh","script":"setup.sh"}}"#,
            "\"setup.sh\" is not a file in the archive",
        ),
        (
            "script is a directory",
            r#"{"name":"t","version":"1","platform":"linux","arch":"any","install":{"interpreter":"sh","script":"scripts"}}"#,
            "is not a file in the archive",
        ),
        (
            "script escapes",
            r#"{"name":"t","version":"1","platform":"linux","arch":"any","install":{"interpreter":"sh","script":"../install.sh"}}"#,
            "install.script",
        ),
        (
            "bad name",
            r#"{"name":"Hello Tool","version":"1","platform":"linux","arch":"any","install":{"interpreter":"sh","script":"install.sh"}}"#,
            "name \"Hello Tool\"",
        ),
        (
            "bad version",
            r#"{"name":"t","version":"1 && reboot","platform":"linux","arch":"any","install":{"interpreter":"sh","script":"install.sh"}}"#,
            "version",
        ),
        (
            "bad arch",
            r#"{"name":"t","version":"1","platform":"linux","arch":"sparc","install":{"interpreter":"sh","script":"install.sh"}}"#,
            "arch \"sparc\"",
        ),
        (
            "bad platform",
            r#"{"name":"t","version":"1","platform":"macos","arch":"any","install":{"interpreter":"sh","script":"install.sh"}}"#,
            "macos",
        ),
        (
            "cmd on linux",
            r#"{"name":"t","version":"1","platform":"linux","arch":"any","install":{"interpreter":"cmd","script":"install.sh"}}"#,
            "cmd needs platform windows",
        ),
        (
            "untyped detection",
            r#"{"name":"t","version":"1","platform":"linux","arch":"any","install":{"interpreter":"sh","script":"install.sh"},"detection":[1]}"#,
            "detection",
        ),
    ];
    for (label, manifest, expected) in cases {
        for (name, bytes) in containers(manifest) {
            let err = parse(&bytes, name).expect_err(label);
            match err.kind() {
                ErrorKind::InvalidManifest { message } => {
                    assert!(message.contains(expected), "{label} ({name}): {message}");
                }
                _ => panic!("{label} ({name}): unexpected {err}"),
            }
        }
    }
}

#[test]
fn archives_without_a_manifest_are_refused() {
    let tgz = gzip(&raw_tar(&[RawTar::exec("install.sh", INSTALL)]));
    let nested = gzip(&raw_tar(&[RawTar::file(
        "tool-1.0/capstan-package.json",
        MANIFEST.as_bytes(),
    )]));
    let zipped = zip(&[ZipItem::File("install.sh", INSTALL, 0o755)]);
    for (label, bytes) in [("tgz", tgz), ("nested", nested), ("zip", zipped)] {
        let err = parse(&bytes, "plain.archive").expect_err(label);
        assert!(
            matches!(err.kind(), ErrorKind::Missing { format: Format::ScriptArchive, what } if what.contains("capstan-package.json")),
            "{label}: {err}"
        );
    }
    // A gzip of something other than a tar says so.
    let err = parse(
        &gzip(b"just some text, not a tar archive at all"),
        "notes.gz",
    )
    .expect_err("not a tar");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Malformed {
                format: Format::ScriptArchive,
                ..
            }
        ),
        "{err}"
    );
    let huge_manifest = format!("{{\"description\": \"{}\"}}", "x".repeat(70_000));
    let err = parse(&good_tgz(&huge_manifest), "big.tgz").expect_err("big manifest");
    assert!(matches!(err.kind(), ErrorKind::TooLarge { .. }), "{err}");
}
