//! Reads a pacman package (`.pkg.tar.zst`, `.pkg.tar.gz`): a compressed tar whose `.PKGINFO`
//! holds `key = value` lines. Only the stream up to `.PKGINFO` is decompressed (makepkg writes
//! it among the first entries), under a cap, so a large package costs little and a bomb
//! nothing.

use std::io::{BufReader, Read};

use crate::error::{ErrorKind, Format, shown};
use crate::limits::{Input, InputReader};
use crate::tarstream::{TarKind, TarReader};
use crate::{PackageFormat, PackageMeta, finish};

pub(crate) const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
pub(crate) const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

const FORMAT: Format = Format::Pacman;

/// The entries looked at for `.PKGINFO` before giving up.
const MAX_ENTRIES_BEFORE_PKGINFO: usize = 64;
/// Decompressed bytes read before `.PKGINFO` must have been found.
const MAX_BYTES_BEFORE_PKGINFO: u64 = 64 * 1024 * 1024;
/// The largest `.PKGINFO` read (real ones are a few KiB).
const MAX_PKGINFO_BYTES: u64 = 1024 * 1024;
/// The largest zstd window accepted; makepkg's `-19`/`--ultra -20` stay below it, and the
/// decoder allocates the window.
const MAX_ZSTD_WINDOW: u64 = 128 * 1024 * 1024;

/// The dot-files makepkg puts first in a package; a script archive never starts with them.
const PACMAN_METAFILES: [&str; 5] = [".PKGINFO", ".BUILDINFO", ".MTREE", ".INSTALL", ".CHANGELOG"];

/// Whether a gzip file is a pacman package: its first tar entry is one of pacman's dot-files.
/// Any error means "no"; the script-archive reader then reports it.
pub(crate) fn gzip_is_pacman<I: Input>(input: &mut I) -> Result<bool, ErrorKind> {
    let gz = flate2::read::GzDecoder::new(BufReader::new(InputReader::new(input)));
    let mut tar = TarReader::new(gz.take(64 * 1024), FORMAT);
    Ok(match tar.next_entry() {
        Ok(Some(header)) => {
            let name = String::from_utf8_lossy(&header.name);
            PACMAN_METAFILES.contains(&name.trim_start_matches("./"))
        }
        _ => false,
    })
}

pub(crate) fn parse<I: Input>(mut input: I) -> Result<PackageMeta, ErrorKind> {
    let mut head = [0u8; 18];
    let head_len = input.len().min(18) as usize;
    input
        .read_at(0, &mut head[..head_len])
        .map_err(|e| ErrorKind::Io {
            message: format!("reading the magic number: {e}"),
        })?;
    let head = &head[..head_len];
    let reader = BufReader::with_capacity(64 * 1024, InputReader::new(input));
    let stream: Box<dyn Read> = if head.starts_with(ZSTD_MAGIC) {
        let window = crate::deb::zstd_window(head).map_err(|m| decompress_error(&m))?;
        if window > MAX_ZSTD_WINDOW {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "zstd window",
                limit: MAX_ZSTD_WINDOW,
            });
        }
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| decompress_error(&e.to_string()))?,
        )
    } else if head.starts_with(GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        // lzma-rs holds whole blocks in memory, which for a package's data is unbounded.
        return Err(ErrorKind::UnsupportedCompression {
            format: FORMAT,
            member: ".pkg.tar.xz (repackage with zstd, makepkg's default)".to_owned(),
        });
    };
    let mut tar = TarReader::new(
        Capped {
            inner: stream,
            left: MAX_BYTES_BEFORE_PKGINFO,
        },
        FORMAT,
    );
    for _ in 0..MAX_ENTRIES_BEFORE_PKGINFO {
        let Some(header) = tar.next_entry()? else {
            break;
        };
        let name = String::from_utf8_lossy(&header.name);
        if name.trim_start_matches("./") != ".PKGINFO" {
            continue;
        }
        if header.kind != TarKind::File {
            return Err(malformed(".PKGINFO is not a regular file".to_owned()));
        }
        if header.size > MAX_PKGINFO_BYTES {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: ".PKGINFO",
                limit: MAX_PKGINFO_BYTES,
            });
        }
        let mut text = Vec::new();
        tar.data()
            .read_to_end(&mut text)
            .map_err(|e| decompress_error(&e.to_string()))?;
        let text =
            String::from_utf8(text).map_err(|_| malformed(".PKGINFO is not UTF-8".to_owned()))?;
        return meta_from_pkginfo(&text);
    }
    Err(ErrorKind::Missing {
        format: FORMAT,
        what: ".PKGINFO among the first entries",
    })
}

/// The decompressed stream, failing once more than the cap was read.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            return Err(std::io::Error::other(format!(
                "more than {MAX_BYTES_BEFORE_PKGINFO} bytes precede .PKGINFO"
            )));
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn meta_from_pkginfo(text: &str) -> Result<PackageMeta, ErrorKind> {
    let mut single: Vec<(&str, &str)> = Vec::new();
    let mut licenses = Vec::new();
    let mut depends = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(" = ").or_else(|| {
            // An empty value is written `key = ` and loses its trailing space to trim_end.
            line.strip_suffix(" =").map(|k| (k, ""))
        }) else {
            return Err(malformed(format!(
                ".PKGINFO line {} is not `key = value`",
                number + 1
            )));
        };
        match key {
            "license" => licenses.push(value),
            "depend" => depends.push(value),
            _ => single.push((key, value)),
        }
    }
    let get = |key: &str| {
        single
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    };
    let required = |field: &'static str| {
        get(field)
            .map(str::to_owned)
            .ok_or(ErrorKind::MissingField {
                format: FORMAT,
                field,
            })
    };
    let name = required("pkgname")?;
    let version = required("pkgver")?;
    let arch = required("arch")?;
    let name_ok = name.len() <= 256
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "@._+-".contains(c));
    if !name_ok {
        return Err(invalid(
            "pkgname",
            &name,
            "only a-z, 0-9 and '@._+-' are allowed, not first '-' or '.'",
        ));
    }
    let version_ok = version.len() <= 256
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+_:~-".contains(c));
    if !version_ok {
        return Err(invalid(
            "pkgver",
            &version,
            "only letters, digits and '.+_:~-' are allowed",
        ));
    }
    if arch.len() > 64 || !arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(
            "arch",
            &arch,
            "only letters, digits and '_' are allowed",
        ));
    }
    let mut meta = finish(PackageFormat::Pacman, name, version, arch);
    meta.summary = get("pkgdesc").map(str::to_owned);
    meta.vendor = get("packager").map(str::to_owned);
    meta.license = (!licenses.is_empty()).then(|| licenses.join(", "));
    meta.depends = (!depends.is_empty()).then(|| depends.join(", "));
    meta.installed_size = match get("size") {
        None => None,
        Some(size) => Some(
            size.parse::<u64>()
                .map_err(|_| invalid("size", size, "not a number of bytes"))?,
        ),
    };
    Ok(meta)
}

fn invalid(field: &'static str, value: &str, reason: &'static str) -> ErrorKind {
    ErrorKind::InvalidField {
        format: FORMAT,
        field,
        value: shown(value),
        reason,
    }
}

fn malformed(message: String) -> ErrorKind {
    ErrorKind::Malformed {
        format: FORMAT,
        message,
    }
}

fn decompress_error(message: &str) -> ErrorKind {
    ErrorKind::Decompress {
        format: FORMAT,
        member: "package tar stream".to_owned(),
        message: shown(message),
    }
}
