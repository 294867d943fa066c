//! Helpers shared by the integration tests: building real packages with the distribution tools
//! (`dpkg-deb`, `rpmbuild`), asking those tools what they think a package contains, and crafting
//! hostile archives byte by byte.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs a command and returns its stdout, failing the test with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Pipes `input` through a compressor such as `xz -c` and returns the result.
pub fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("compressor runs");
    writer
        .join()
        .expect("writer thread")
        .expect("compressor takes input");
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

/// Builds a .deb with `dpkg-deb --build -Z<compression>` from a control file and one data file.
pub fn build_deb(dir: &Path, control: &str, compression: &str) -> PathBuf {
    let root = dir.join(format!("root-{compression}"));
    std::fs::create_dir_all(root.join("DEBIAN")).expect("create DEBIAN");
    std::fs::create_dir_all(root.join("usr/share/capstan-test")).expect("create data dir");
    std::fs::write(root.join("DEBIAN/control"), control).expect("write control");
    std::fs::write(
        root.join("usr/share/capstan-test/README"),
        "a file so the data member is not empty\n",
    )
    .expect("write data file");
    let out = dir.join(format!("pkg-{compression}.deb"));
    run(Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg(format!("-Z{compression}"))
        .arg("--build")
        .arg(&root)
        .arg(&out));
    out
}

/// What `dpkg-deb -f` reports for one control field ("" when absent).
pub fn dpkg_field(deb: &Path, field: &str) -> String {
    let out = run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field));
    String::from_utf8(out)
        .expect("dpkg-deb prints UTF-8")
        .trim_end()
        .to_owned()
}

/// An `ar` archive as dpkg-deb writes it (names padded with spaces, members on even offsets).
/// Names are written verbatim so tests can use hostile ones.
pub fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            100644,
            data.len()
        );
        assert_eq!(header.len(), 60, "ar header for {name:?}");
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// One entry of a hand-made tar archive.
pub enum TarEntry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Dir(&'a str),
}

/// A tar archive whose entry names are written verbatim (the tar crate's builder refuses `..`,
/// which is exactly what these tests need to write).
pub fn tar(entries: &[TarEntry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, data, kind, link): (&str, &[u8], tar::EntryType, Option<&str>) = match entry {
            TarEntry::File(name, data) => (name, data, tar::EntryType::Regular, None),
            TarEntry::Symlink(name, target) => (name, &[], tar::EntryType::Symlink, Some(target)),
            TarEntry::Dir(name) => (name, &[], tar::EntryType::Directory, None),
        };
        let gnu = header.as_gnu_mut().expect("gnu header");
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname = [0; 100];
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).expect("append tar entry");
    }
    builder.into_inner().expect("finish tar")
}

/// A minimal valid control file.
pub const CONTROL: &str = "Package: hello-capstan\nVersion: 1.0-1\nArchitecture: all\n\
Maintainer: Capstan Tests <tests@example.org>\nDescription: says hello\n";

/// A .deb made by hand from a control archive member (name and bytes).
pub fn deb_with_control(member: &str, control_tar: &[u8]) -> Vec<u8> {
    ar(&[
        ("debian-binary", b"2.0\n"),
        (member, control_tar),
        ("data.tar", &tar(&[])),
    ])
}

/// Builds a binary .rpm with `rpmbuild -bb` from the preamble lines of a spec file; the spec
/// installs one file so the payload is real.
pub fn build_rpm(dir: &Path, preamble: &str) -> PathBuf {
    let topdir = dir.join("rpmbuild");
    std::fs::create_dir_all(&topdir).expect("create topdir");
    let spec = dir.join("test.spec");
    std::fs::write(
        &spec,
        format!(
            "{preamble}\n%global debug_package %{{nil}}\n\
             %description\nA package built by the capstan-pkgmeta tests.\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/%{{name}}\n\
             echo hello > %{{buildroot}}/usr/share/%{{name}}/README\n\
             %files\n/usr/share/%{{name}}/README\n"
        ),
    )
    .expect("write spec");
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", topdir.display()))
        .arg("--define")
        .arg(format!("_dbpath {}", dir.join("rpmdb").display()))
        .arg(&spec));
    let mut found = Vec::new();
    for arch_dir in std::fs::read_dir(topdir.join("RPMS")).expect("RPMS exists") {
        for rpm in std::fs::read_dir(arch_dir.expect("entry").path()).expect("arch dir") {
            found.push(rpm.expect("entry").path());
        }
    }
    assert_eq!(found.len(), 1, "rpmbuild made {found:?}");
    found.remove(0)
}

/// What `rpm -qp --qf FORMAT` prints for a package file.
pub fn rpm_query(rpm: &Path, query_format: &str) -> String {
    let out = run(Command::new("rpm")
        .arg("-qp")
        .arg("--nosignature")
        .arg("--qf")
        .arg(query_format)
        .arg(rpm));
    String::from_utf8(out).expect("rpm prints UTF-8")
}

/// What `rpm -qp --requires` prints, without rpm's own `rpmlib(...)` markers, joined by `, `.
pub fn rpm_requires(rpm: &Path) -> String {
    let out = run(Command::new("rpm")
        .arg("-qp")
        .arg("--nosignature")
        .arg("--requires")
        .arg(rpm));
    String::from_utf8(out)
        .expect("rpm prints UTF-8")
        .lines()
        .filter(|l| !l.starts_with("rpmlib("))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One entry of a tar archive written byte by byte: any name, type flag and mode. Names over
/// 100 bytes get a GNU long-name header first, as GNU tar writes them.
pub struct RawTar<'a> {
    pub name: &'a [u8],
    /// The tar type flag: `b'0'` file, `b'5'` directory, `b'2'` symlink, `b'1'` hard link,
    /// `b'3'` character device, `b'6'` FIFO.
    pub kind: u8,
    pub mode: u32,
    pub data: &'a [u8],
    pub link: &'a [u8],
    /// The size written in the header, when it should lie about `data`.
    pub declared: Option<u64>,
}

impl<'a> RawTar<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        RawTar {
            name: name.as_bytes(),
            kind: b'0',
            mode: 0o644,
            data,
            link: b"",
            declared: None,
        }
    }

    pub fn exec(name: &'a str, data: &'a [u8]) -> Self {
        RawTar {
            mode: 0o755,
            ..RawTar::file(name, data)
        }
    }

    pub fn dir(name: &'a str) -> Self {
        RawTar {
            kind: b'5',
            mode: 0o755,
            ..RawTar::file(name, b"")
        }
    }

    pub fn special(name: &'a str, kind: u8, link: &'a str) -> Self {
        RawTar {
            kind,
            link: link.as_bytes(),
            ..RawTar::file(name, b"")
        }
    }
}

fn tar_header(name: &[u8], kind: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

fn padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A tar archive from [`RawTar`] entries, with the end-of-archive marker.
pub fn raw_tar(entries: &[RawTar<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut name = e.name;
        if name.len() > 100 {
            let mut long = e.name.to_vec();
            long.push(0);
            out.extend_from_slice(&tar_header(
                b"././@LongLink",
                b'L',
                0o644,
                long.len() as u64,
                b"",
            ));
            padded(&mut out, &long);
            name = &e.name[..100];
        }
        let size = e.declared.unwrap_or(e.data.len() as u64);
        out.extend_from_slice(&tar_header(name, e.kind, e.mode, size, e.link));
        padded(&mut out, e.data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Gzip-compresses bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// One entry of a zip archive.
pub enum ZipItem<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

/// A deflate-compressed zip archive.
pub fn zip(items: &[ZipItem<'_>]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for item in items {
        match item {
            ZipItem::File(name, data, mode) => {
                let options = SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(*mode);
                writer.start_file(*name, options).expect("zip entry");
                writer.write_all(data).expect("zip data");
            }
            ZipItem::Dir(name) => {
                writer
                    .add_directory(*name, SimpleFileOptions::default())
                    .expect("zip dir");
            }
            ZipItem::Symlink(name, target) => {
                writer
                    .add_symlink(*name, *target, SimpleFileOptions::default())
                    .expect("zip symlink");
            }
        }
    }
    writer.finish().expect("zip finish").into_inner()
}

/// Replaces every occurrence of `from` with `to` (same length): names in a zip appear in both
/// the local and the central header.
pub fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    let mut replaced = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
            replaced += 1;
        } else {
            i += 1;
        }
    }
    assert!(replaced > 0, "pattern present");
    out
}
