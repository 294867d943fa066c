//! Reads a Debian binary package: the `ar` container, the `debian-binary` version, the
//! `control.tar{,.gz,.xz,.zst}` member and the `control` file inside it. The data member is
//! never decompressed; only the few KiB of control data are read, under a hard cap.

use std::io::Read;

use crate::error::{ErrorKind, Format, shown};
use crate::limits::{Cursor, Input, MAX_CONTROL_BYTES};
use crate::{PackageFormat, PackageMeta, finish};

pub(crate) const AR_MAGIC: &[u8] = b"!<arch>\n";

const FORMAT: Format = Format::Deb;

/// The largest zstd window accepted: dpkg-deb's control archives use far less, and the decoder
/// allocates the whole window up front.
const MAX_ZSTD_WINDOW: u64 = 8 * 1024 * 1024;

/// `debian-binary` holds `2.0\n`; anything long is not a package.
const MAX_DEBIAN_BINARY_BYTES: u64 = 1024;

pub(crate) fn parse<I: Input>(input: I) -> Result<PackageMeta, ErrorKind> {
    let control_tar = control_tar(input)?;
    let control = control_file(&control_tar)?;
    meta_from_control(&control)
}

/// One member of the `ar` archive. Only `debian-binary` and the control member are read;
/// `data` is empty for the others, which are stepped over.
struct Member {
    name: String,
    data: Vec<u8>,
}

fn next_member<I: Input>(cur: &mut Cursor<I>) -> Result<Option<Member>, ErrorKind> {
    if cur.is_at_end() {
        return Ok(None);
    }
    let header = cur.take(60, "ar member header")?;
    if &header[58..60] != b"`\n" {
        return Err(malformed(format!(
            "ar member header at offset {} lacks its terminator",
            cur.pos() - 60
        )));
    }
    let raw_name = std::str::from_utf8(&header[..16])
        .map_err(|_| malformed("ar member name is not text".to_owned()))?;
    let trimmed = raw_name.trim_end_matches(' ');
    // GNU ar ends names with `/`; dpkg-deb writes none. One is a terminator, not a path.
    let name = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if name.is_empty()
        || name.contains('/')
        || name.contains("..")
        || name.chars().any(|c| !c.is_ascii_graphic())
    {
        return Err(ErrorKind::UnsafeName {
            format: FORMAT,
            name: trimmed.escape_debug().to_string(),
        });
    }
    let size_field = std::str::from_utf8(&header[48..58]).unwrap_or("");
    let size: u64 = size_field
        .trim_end_matches(' ')
        .parse()
        .map_err(|_| malformed(format!("ar member {name:?} has no valid size")))?;
    let data = if name == "debian-binary" {
        if size > MAX_DEBIAN_BINARY_BYTES {
            return Err(malformed(format!("debian-binary is {size} bytes long")));
        }
        cur.take(size as usize, "ar member data")?
    } else if name.starts_with("control.tar") {
        // Compressed control data larger than the decompressed cap cannot be legitimate.
        if size > MAX_CONTROL_BYTES as u64 {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "control.tar member",
                limit: MAX_CONTROL_BYTES as u64,
            });
        }
        cur.take(size as usize, "ar member data")?
    } else {
        cur.skip(size, "ar member data")?;
        Vec::new()
    };
    // Members start on even offsets; a missing final pad byte is tolerated as ar(1) does.
    if size % 2 == 1 && !cur.is_at_end() {
        cur.skip(1, "ar padding")?;
    }
    Ok(Some(Member {
        name: name.to_owned(),
        data,
    }))
}

/// Walks the archive to the control member and returns it decompressed.
fn control_tar<I: Input>(input: I) -> Result<Vec<u8>, ErrorKind> {
    let mut cur = Cursor::new(input, FORMAT);
    if cur.take(AR_MAGIC.len(), "ar magic")? != AR_MAGIC {
        return Err(malformed("no ar magic".to_owned()));
    }

    let first = next_member(&mut cur)?.ok_or(ErrorKind::Missing {
        format: FORMAT,
        what: "debian-binary member",
    })?;
    if first.name != "debian-binary" {
        return Err(malformed(format!(
            "the first member is {:?}, not debian-binary",
            first.name
        )));
    }
    check_debian_binary(&first.data)?;

    // The whole container is walked, so a truncated upload is refused even though only the
    // control member is decompressed.
    let mut control: Option<Member> = None;
    let mut data_seen = false;
    while let Some(member) = next_member(&mut cur)? {
        // dpkg reserves names starting with `_` for additions older tools skip.
        if member.name.starts_with('_') {
            continue;
        }
        if member.name.starts_with("control.tar") {
            if control.is_some() || data_seen {
                return Err(malformed(format!(
                    "member {:?} is out of order or repeated",
                    member.name
                )));
            }
            control = Some(member);
        } else if member.name.starts_with("data.tar") {
            if control.is_none() {
                return Err(ErrorKind::Missing {
                    format: FORMAT,
                    what: "control.tar member before data.tar",
                });
            }
            if data_seen {
                return Err(malformed("two data.tar members".to_owned()));
            }
            data_seen = true;
        } else {
            return Err(malformed(format!("unexpected member {:?}", member.name)));
        }
    }
    let control = control.ok_or(ErrorKind::Missing {
        format: FORMAT,
        what: "control.tar member",
    })?;
    if !data_seen {
        return Err(ErrorKind::Missing {
            format: FORMAT,
            what: "data.tar member",
        });
    }
    let (name, data) = (control.name.as_str(), control.data.as_slice());
    match name {
        "control.tar" => capped(data, name),
        "control.tar.gz" => capped(flate2::read::GzDecoder::new(data), name),
        "control.tar.xz" => xz(data, name),
        "control.tar.zst" => zstd(data, name),
        other => Err(ErrorKind::UnsupportedCompression {
            format: FORMAT,
            member: other.to_owned(),
        }),
    }
}

fn check_debian_binary(data: &[u8]) -> Result<(), ErrorKind> {
    let text = std::str::from_utf8(data).unwrap_or("");
    let version = text.lines().next().unwrap_or("").trim();
    let supported = version.split_once('.').is_some_and(|(major, minor)| {
        major == "2" && !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if supported {
        Ok(())
    } else {
        Err(ErrorKind::UnsupportedVersion {
            format: FORMAT,
            version: shown(&String::from_utf8_lossy(&data[..data.len().min(32)])),
        })
    }
}

/// Reads a decoder to its end, failing once it yields more than [`MAX_CONTROL_BYTES`].
fn capped(reader: impl Read, member: &str) -> Result<Vec<u8>, ErrorKind> {
    let mut out = Vec::new();
    reader
        .take(MAX_CONTROL_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| decompress_error(member, e.to_string()))?;
    if out.len() > MAX_CONTROL_BYTES {
        return Err(too_large_control());
    }
    Ok(out)
}

fn xz(data: &[u8], member: &str) -> Result<Vec<u8>, ErrorKind> {
    // lzma-rs keeps a whole LZMA2 block in memory before writing any of it, so a capped writer
    // alone would not stop a bomb; the chunk headers state their sizes, so add them up first,
    // then make sure lzma-rs reads the chunks we added up and no others.
    let layout = xz_layout(data).map_err(|m| decompress_error(member, m))?;
    if layout.unpacked > MAX_CONTROL_BYTES as u64 {
        return Err(too_large_control());
    }
    let mut out = Vec::new();
    let mut input = ChunkGuard {
        data,
        pos: 0,
        layout,
    };
    lzma_rs::xz_decompress(&mut input, &mut out)
        .map_err(|e| decompress_error(member, e.to_string()))?;
    if out.len() > MAX_CONTROL_BYTES {
        return Err(too_large_control());
    }
    Ok(out)
}

/// Where an .xz stream's LZMA2 chunk headers lie and what they announce, found by walking the
/// headers without decompressing anything.
struct XzLayout {
    /// The uncompressed bytes all chunks announce (the walk stops once past the cap).
    unpacked: u64,
    /// Where each two-byte size field of a chunk header starts (and the data of a two-byte
    /// uncompressed chunk), ascending.
    size_fields: Vec<usize>,
    /// Where the blocks end (the index starts).
    blocks_end: usize,
}

fn xz_layout(data: &[u8]) -> Result<XzLayout, String> {
    let cut = || "the xz stream is truncated".to_owned();
    let header = data.get(..12).ok_or_else(cut)?;
    if header[..6] != [0xfd, b'7', b'z', b'X', b'Z', 0] {
        return Err("not an xz stream".to_owned());
    }
    let check_len = match header[7] & 0x0f {
        0 => 0,
        1..=3 => 4,
        4..=6 => 8,
        7..=9 => 16,
        10..=12 => 32,
        _ => 64,
    };
    let mut layout = XzLayout {
        unpacked: 0,
        size_fields: Vec::new(),
        blocks_end: 0,
    };
    let mut pos = 12usize;
    loop {
        let indicator = *data.get(pos).ok_or_else(cut)?;
        if indicator == 0 {
            layout.blocks_end = pos;
            return Ok(layout);
        }
        let block_start = pos;
        pos += (usize::from(indicator) + 1) * 4;
        loop {
            let control = *data.get(pos).ok_or_else(cut)?;
            let field = |at: usize| -> Result<u64, String> {
                let b = data.get(at..at + 2).ok_or_else(cut)?;
                Ok(u64::from(u16::from_be_bytes([b[0], b[1]])) + 1)
            };
            match control {
                0 => {
                    pos += 1;
                    break;
                }
                1 | 2 => {
                    let size = field(pos + 1)?;
                    layout.size_fields.push(pos + 1);
                    if size == 2 {
                        layout.size_fields.push(pos + 3);
                    }
                    layout.unpacked += size;
                    pos += 3 + size as usize;
                }
                0x80.. => {
                    let unpacked = (u64::from(control & 0x1f) << 16) + field(pos + 1)?;
                    let packed = field(pos + 3)?;
                    layout.size_fields.extend([pos + 1, pos + 3]);
                    let props = usize::from(control >= 0xc0);
                    layout.unpacked += unpacked;
                    pos += 5 + props + packed as usize;
                }
                _ => return Err(format!("invalid LZMA2 chunk control byte {control:#04x}")),
            }
            if layout.unpacked > MAX_CONTROL_BYTES as u64 {
                return Ok(layout);
            }
        }
        pos += (4 - (pos - block_start) % 4) % 4;
        pos += check_len;
    }
}

/// The input lzma-rs decodes from. A chunk header states a packed size, but lzma-rs does not
/// check that a chunk used all of it; a crafted stream could hide further chunks (and their
/// output) inside the packed data the layout walk stepped over. lzma-rs reads every chunk
/// header's size fields with a two-byte read, and reads nothing else two bytes at a time, so a
/// two-byte read anywhere but at a size field the walk found means the two have diverged.
struct ChunkGuard<'a> {
    data: &'a [u8],
    pos: usize,
    layout: XzLayout,
}

impl Read for ChunkGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let n = buf.len().min(rest.len());
        let in_blocks = self.pos >= 12 && self.pos < self.layout.blocks_end;
        if n == 2 && in_blocks && self.layout.size_fields.binary_search(&self.pos).is_err() {
            return Err(std::io::Error::other(format!(
                "an LZMA2 chunk at offset {} lies inside another chunk's data",
                self.pos
            )));
        }
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl std::io::BufRead for ChunkGuard<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(&self.data[self.pos.min(self.data.len())..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

fn zstd(data: &[u8], member: &str) -> Result<Vec<u8>, ErrorKind> {
    let window = zstd_window(data).map_err(|m| decompress_error(member, m))?;
    if window > MAX_ZSTD_WINDOW {
        return Err(ErrorKind::TooLarge {
            format: FORMAT,
            what: "zstd window of control.tar",
            limit: MAX_ZSTD_WINDOW,
        });
    }
    let decoder = ruzstd::decoding::StreamingDecoder::new(data)
        .map_err(|e| decompress_error(member, e.to_string()))?;
    capped(decoder, member)
}

/// The window size a zstd frame header asks the decoder to allocate.
pub(crate) fn zstd_window(data: &[u8]) -> Result<u64, String> {
    let cut = || "the zstd frame is truncated".to_owned();
    let head = data.get(..5).ok_or_else(cut)?;
    if head[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err("not a zstd frame".to_owned());
    }
    let descriptor = head[4];
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let wd = *data.get(5).ok_or_else(cut)?;
        let base = 1u64 << (10 + u32::from(wd >> 3));
        return Ok(base + base / 8 * u64::from(wd & 7));
    }
    let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let start = 5 + dict_len;
    let fcs_len = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let raw = data.get(start..start + fcs_len).ok_or_else(cut)?;
    let mut value = 0u64;
    for (i, b) in raw.iter().enumerate() {
        value |= u64::from(*b) << (8 * i);
    }
    Ok(if fcs_len == 2 { value + 256 } else { value })
}

/// Finds `./control` in the control archive. Other entries (scripts, md5sums) are skipped but
/// still checked, so a crafted archive is reported rather than half-read.
fn control_file(tar_bytes: &[u8]) -> Result<String, ErrorKind> {
    let mut archive = tar::Archive::new(tar_bytes);
    let entries = archive
        .entries()
        .map_err(|e| malformed(format!("control.tar: {}", shown(&e.to_string()))))?;
    let mut control = None;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| malformed(format!("control.tar: {}", shown(&e.to_string()))))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_entry_path(&path)?;
        if let Some(target) = entry.link_name_bytes() {
            let target = String::from_utf8_lossy(&target).into_owned();
            check_entry_path(&target)?;
        }
        let plain = path.trim_start_matches("./");
        if plain != "control" {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(malformed(
                "control.tar: control is not a regular file".to_owned(),
            ));
        }
        if control.is_some() {
            return Err(malformed("control.tar holds two control files".to_owned()));
        }
        let mut text = Vec::new();
        entry
            .read_to_end(&mut text)
            .map_err(|e| malformed(format!("control.tar: control: {e}")))?;
        let text = String::from_utf8(text)
            .map_err(|_| malformed("the control file is not UTF-8".to_owned()))?;
        control = Some(text);
    }
    control.ok_or(ErrorKind::Missing {
        format: FORMAT,
        what: "control file in control.tar",
    })
}

fn check_entry_path(path: &str) -> Result<(), ErrorKind> {
    let escapes = path.starts_with('/') || path.split('/').any(|part| part == "..");
    if escapes {
        Err(ErrorKind::UnsafeName {
            format: FORMAT,
            name: shown(&path.escape_debug().to_string()),
        })
    } else {
        Ok(())
    }
}

/// The fields of the first paragraph of a control file, in order.
struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the RFC 822-style first paragraph; a value's continuation lines are kept, joined by
/// `\n`, with their leading whitespace removed.
fn paragraph(text: &str) -> Result<Paragraph, ErrorKind> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut started = false;
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if line.trim().is_empty() {
            if started {
                break;
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        started = true;
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(malformed(format!(
                    "control line {number} continues a field that does not exist"
                )));
            };
            value.push('\n');
            value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(format!(
                "control line {number} has no field name"
            )));
        };
        if name.is_empty() || name.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(malformed(format!(
                "control line {number} has an invalid field name {:?}",
                shown(name)
            )));
        }
        if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(malformed(format!(
                "control field {} appears twice",
                shown(name)
            )));
        }
        fields.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Paragraph { fields })
}

fn meta_from_control(text: &str) -> Result<PackageMeta, ErrorKind> {
    let para = paragraph(text)?;
    let required = |field: &'static str| -> Result<String, ErrorKind> {
        match para.get(field) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(ErrorKind::MissingField {
                format: FORMAT,
                field,
            }),
        }
    };
    let name = required("Package")?;
    let version = required("Version")?;
    let architecture = required("Architecture")?;
    check_name(&name)?;
    check_version(&version)?;
    check_chars(
        "Architecture",
        &architecture,
        |c| c.is_ascii_alphanumeric() || c == '-',
        "only letters, digits and '-' are allowed",
    )?;

    let mut meta = finish(PackageFormat::Deb, name, version, architecture);
    meta.summary = para
        .get("Description")
        .and_then(|d| d.lines().next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    meta.vendor = para
        .get("Maintainer")
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    meta.depends = para
        .get("Depends")
        .map(|d| d.split('\n').collect::<Vec<_>>().join(" "))
        .filter(|d| !d.is_empty());
    meta.installed_size = match para.get("Installed-Size") {
        None | Some("") => None,
        Some(kib) => Some(
            kib.parse::<u64>()
                .ok()
                .and_then(|k| k.checked_mul(1024))
                .ok_or_else(|| ErrorKind::InvalidField {
                    format: FORMAT,
                    field: "Installed-Size",
                    value: shown(kib),
                    reason: "not a number of KiB",
                })?,
        ),
    };
    Ok(meta)
}

/// dpkg's package name rule: starts with a letter or digit, then letters, digits and `+-.`.
fn check_name(name: &str) -> Result<(), ErrorKind> {
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid(
            "Package",
            name,
            "must start with a letter or digit",
        ));
    }
    check_chars(
        "Package",
        name,
        |c| c.is_ascii_alphanumeric() || "+-.".contains(c),
        "only letters, digits and '+-.' are allowed",
    )
}

/// dpkg's version syntax: `[epoch:]upstream[-revision]`, epoch numeric.
fn check_version(version: &str) -> Result<(), ErrorKind> {
    check_chars(
        "Version",
        version,
        |c| c.is_ascii_alphanumeric() || ".+-~:".contains(c),
        "only letters, digits and '.+-~:' are allowed",
    )?;
    if let Some((epoch, rest)) = version.split_once(':') {
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("Version", version, "the epoch is not a number"));
        }
        if rest.is_empty() {
            return Err(invalid("Version", version, "nothing follows the epoch"));
        }
    }
    Ok(())
}

fn check_chars(
    field: &'static str,
    value: &str,
    allowed: impl Fn(char) -> bool,
    reason: &'static str,
) -> Result<(), ErrorKind> {
    if value.len() > 256 {
        return Err(invalid(field, value, "longer than 256 bytes"));
    }
    if value.chars().all(allowed) {
        Ok(())
    } else {
        Err(invalid(field, value, reason))
    }
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

fn decompress_error(member: &str, message: String) -> ErrorKind {
    ErrorKind::Decompress {
        format: FORMAT,
        member: member.to_owned(),
        message,
    }
}

fn too_large_control() -> ErrorKind {
    ErrorKind::TooLarge {
        format: FORMAT,
        what: "decompressed control.tar",
        limit: MAX_CONTROL_BYTES as u64,
    }
}
