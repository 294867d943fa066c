//! Reads the version resource (VS_VERSIONINFO) of a Windows PE executable, the usual form of
//! a vendor's `setup.exe`: DOS header → PE header → section table → resource directory (three
//! levels: type, name, language) → the RT_VERSION data → VS_FIXEDFILEINFO and the
//! StringFileInfo's CompanyName and ProductName. Every offset is checked against the file and
//! the section it lies in; each directory level is entered once, so there are no loops to
//! follow.
//!
//! The version is VS_FIXEDFILEINFO's product version, else its file version, else the
//! ProductVersion or FileVersion string (first word, commas as dots). An executable without
//! any version (no resource, or one with zeros and no version strings) is refused with `MissingField("version")`: the depot cannot pre-fill a version, and the
//! operator enters name and version by hand. No detection is suggested: an installer does not
//! say where it installs.

use crate::error::{ErrorKind, Format, shown};
use crate::limits::Input;
use crate::{PackageFormat, PackageMeta, finish, slug};

pub(crate) const MZ_MAGIC: &[u8] = b"MZ";

const FORMAT: Format = Format::Exe;

const MAX_SECTIONS: u16 = 96;
/// Entries of one resource directory level (real files have a handful).
const MAX_DIRECTORY_ENTRIES: u32 = 4096;
/// The largest version resource read (real ones are 1–4 KiB).
const MAX_VERSION_BYTES: u32 = 64 * 1024;
/// Nesting of version info blocks: root → StringFileInfo → StringTable → String.
const MAX_BLOCK_DEPTH: u32 = 4;
const RT_VERSION: u32 = 16;
const FIXED_SIGNATURE: u32 = 0xfeef_04bd;

struct Section {
    virtual_address: u32,
    virtual_size: u32,
    raw_size: u32,
    raw_pointer: u32,
}

struct Pe<I> {
    input: I,
    sections: Vec<Section>,
}

impl<I: Input> Pe<I> {
    fn read(&mut self, offset: u64, len: u64, what: &'static str) -> Result<Vec<u8>, ErrorKind> {
        read(&mut self.input, offset, len, what)
    }

    /// The file offset of `len` bytes at `rva`, which must lie inside one section's raw data.
    fn offset(&self, rva: u32, len: u32, what: &'static str) -> Result<u64, ErrorKind> {
        for s in &self.sections {
            let span = s.virtual_size.max(s.raw_size);
            let end = u64::from(s.virtual_address) + u64::from(span);
            if rva >= s.virtual_address && u64::from(rva) < end {
                let within = rva - s.virtual_address;
                if u64::from(within) + u64::from(len) > u64::from(s.raw_size) {
                    return Err(malformed(format!("{what} lies outside its section's data")));
                }
                return Ok(u64::from(s.raw_pointer) + u64::from(within));
            }
        }
        Err(malformed(format!(
            "{what} is at an address no section holds"
        )))
    }
}

pub(crate) fn parse<I: Input>(mut input: I, file_name: &str) -> Result<PackageMeta, ErrorKind> {
    let dos = read(&mut input, 0, 64, "DOS header")?;
    let pe_offset = u64::from(u32_le(&dos, 0x3c));
    let header = read(&mut input, pe_offset, 24, "PE header")?;
    if &header[..4] != b"PE\0\0" {
        return Err(malformed(
            "no PE signature (a DOS program, or not an executable)".to_owned(),
        ));
    }
    let machine = u16_le(&header, 4);
    let section_count = u16_le(&header, 6);
    let optional_size = u16_le(&header, 20);
    if section_count > MAX_SECTIONS {
        return Err(ErrorKind::TooLarge {
            format: FORMAT,
            what: "section count",
            limit: u64::from(MAX_SECTIONS),
        });
    }
    let optional_at = pe_offset + 24;
    let optional = read(
        &mut input,
        optional_at,
        u64::from(optional_size),
        "optional header",
    )?;
    let directories_at = match optional.get(..2).map(|m| u16_le(m, 0)) {
        Some(0x10b) => 96,
        Some(0x20b) => 112,
        _ => return Err(malformed("unknown optional header magic".to_owned())),
    };
    // The resource directory is data directory 2; a file with fewer has no resources.
    let resource =
        if optional.len() >= directories_at + 24 && u32_le(&optional, directories_at - 4) > 2 {
            let rva = u32_le(&optional, directories_at + 16);
            let size = u32_le(&optional, directories_at + 20);
            (rva != 0 && size != 0).then_some(rva)
        } else {
            None
        };

    let table = read(
        &mut input,
        optional_at + u64::from(optional_size),
        u64::from(section_count) * 40,
        "section table",
    )?;
    let sections = table
        .chunks_exact(40)
        .map(|s| Section {
            virtual_size: u32_le(s, 8),
            virtual_address: u32_le(s, 12),
            raw_size: u32_le(s, 16),
            raw_pointer: u32_le(s, 20),
        })
        .collect();
    let mut pe = Pe { input, sections };

    let info = match resource {
        Some(rva) => version_resource(&mut pe, rva)?
            .map(|data| version_info(&data))
            .transpose()?,
        None => None,
    };
    let info = info.unwrap_or_default();
    let version = info
        .product_version
        .clone()
        .or_else(|| info.file_version.clone())
        .or_else(|| {
            info.strings
                .product_version
                .as_deref()
                .and_then(string_version)
        })
        .or_else(|| {
            info.strings
                .file_version
                .as_deref()
                .and_then(string_version)
        })
        .ok_or(ErrorKind::MissingField {
            format: FORMAT,
            field: "version",
        })?;
    let stem = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(file_name)
        .trim_end_matches(".exe")
        .trim_end_matches(".EXE");
    let name = info
        .strings
        .product_name
        .as_deref()
        .and_then(slug)
        .or_else(|| slug(stem))
        .ok_or(ErrorKind::MissingField {
            format: FORMAT,
            field: "ProductName",
        })?;
    let architecture = match machine {
        0x014c => "x86".to_owned(),
        0x8664 => "x64".to_owned(),
        0xaa64 => "arm64".to_owned(),
        0x01c4 => "arm".to_owned(),
        other => format!("machine-{other:04x}"),
    };
    let mut meta = finish(PackageFormat::Exe, name, version, architecture);
    meta.vendor = info.strings.company.clone();
    meta.company = info.strings.company;
    meta.summary = info.strings.product_name.clone();
    meta.product_name = info.strings.product_name;
    meta.file_version = info.file_version;
    meta.product_version = info.product_version;
    Ok(meta)
}

/// Walks type → name → language to the first RT_VERSION data.
fn version_resource<I: Input>(pe: &mut Pe<I>, root_rva: u32) -> Result<Option<Vec<u8>>, ErrorKind> {
    let root = pe.offset(root_rva, 16, "resource directory")?;
    // Subdirectory offsets are relative to the resource root, in the same section.
    let mut dir = root;
    let mut want = Some(RT_VERSION);
    for level in 0..3 {
        let head = pe.read(dir, 16, "resource directory")?;
        let count = u32::from(u16_le(&head, 12)) + u32::from(u16_le(&head, 14));
        if count > MAX_DIRECTORY_ENTRIES {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "resource directory",
                limit: u64::from(MAX_DIRECTORY_ENTRIES),
            });
        }
        let entries = pe.read(dir + 16, u64::from(count) * 8, "resource directory entries")?;
        let found = entries.chunks_exact(8).find(|e| {
            want.is_none_or(|id| {
                let name = u32_le(e, 0);
                name & 0x8000_0000 == 0 && name == id
            })
        });
        let Some(entry) = found else {
            return Ok(None);
        };
        let target = u32_le(entry, 4);
        let is_dir = target & 0x8000_0000 != 0;
        let target = u64::from(target & 0x7fff_ffff);
        if level < 2 {
            if !is_dir {
                return Err(malformed(
                    "a resource directory level is missing".to_owned(),
                ));
            }
            dir = root + target;
        } else {
            if is_dir {
                return Err(malformed(
                    "the resource tree is deeper than three levels".to_owned(),
                ));
            }
            let data_entry = pe.read(root + target, 16, "resource data entry")?;
            let rva = u32_le(&data_entry, 0);
            let size = u32_le(&data_entry, 4);
            if size > MAX_VERSION_BYTES {
                return Err(ErrorKind::TooLarge {
                    format: FORMAT,
                    what: "version resource",
                    limit: u64::from(MAX_VERSION_BYTES),
                });
            }
            let at = pe.offset(rva, size, "version resource")?;
            return pe.read(at, u64::from(size), "version resource").map(Some);
        }
        want = None;
    }
    Ok(None)
}

#[derive(Default)]
struct Strings {
    company: Option<String>,
    product_name: Option<String>,
    product_version: Option<String>,
    file_version: Option<String>,
}

#[derive(Default)]
struct VersionInfo {
    file_version: Option<String>,
    product_version: Option<String>,
    strings: Strings,
}

/// One block of a version resource: `wLength`, `wValueLength`, `wType`, a UTF-16 key, the
/// value and the children, each aligned to 4 bytes.
struct Block<'a> {
    key: String,
    value: &'a [u8],
    children: std::ops::Range<usize>,
    end: usize,
}

fn block(data: &[u8], at: usize) -> Result<Block<'_>, ErrorKind> {
    let bad = |what: &str| malformed(format!("version resource: {what} at offset {at}"));
    let head = data
        .get(at..at + 6)
        .ok_or_else(|| bad("a block header is cut off"))?;
    let len = usize::from(u16_le(head, 0));
    let value_len = usize::from(u16_le(head, 2));
    let kind = u16_le(head, 4);
    let end = at + len;
    if len < 6 || end > data.len() {
        return Err(bad("a block's length is out of bounds"));
    }
    let mut pos = at + 6;
    let mut units = Vec::new();
    loop {
        let unit = data
            .get(pos..pos + 2)
            .filter(|_| pos + 2 <= end)
            .ok_or_else(|| bad("a block's key is not terminated"))?;
        pos += 2;
        let unit = u16_le(unit, 0);
        if unit == 0 {
            break;
        }
        if units.len() >= 256 {
            return Err(bad("a block's key is too long"));
        }
        units.push(unit);
    }
    let key = String::from_utf16_lossy(&units);
    let value_start = align4(pos).min(end);
    // Text values count UTF-16 units, binary ones bytes; some linkers get it wrong, so the
    // value is clamped to the block.
    let value_bytes = if kind == 1 { value_len * 2 } else { value_len };
    let value_end = (value_start + value_bytes).min(end);
    Ok(Block {
        key,
        value: &data[value_start..value_end],
        children: align4(value_end).min(end)..end,
        end,
    })
}

fn children<'a>(
    data: &'a [u8],
    range: std::ops::Range<usize>,
) -> Result<Vec<Block<'a>>, ErrorKind> {
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos + 6 <= range.end {
        let child = block(&data[..range.end], pos)?;
        // Every block is at least 6 bytes, so this always advances.
        pos = align4(child.end);
        out.push(child);
    }
    Ok(out)
}

fn version_info(data: &[u8]) -> Result<VersionInfo, ErrorKind> {
    let root = block(data, 0)?;
    if root.key != "VS_VERSION_INFO" {
        return Err(malformed(format!(
            "the version resource's key is {:?}",
            shown(&root.key)
        )));
    }
    let mut info = VersionInfo::default();
    if root.value.len() >= 52 && u32_le(root.value, 0) == FIXED_SIGNATURE {
        let dotted = |ms: u32, ls: u32| {
            (ms != 0 || ls != 0)
                .then(|| format!("{}.{}.{}.{}", ms >> 16, ms & 0xffff, ls >> 16, ls & 0xffff))
        };
        info.file_version = dotted(u32_le(root.value, 8), u32_le(root.value, 12));
        info.product_version = dotted(u32_le(root.value, 16), u32_le(root.value, 20));
    }
    string_file_info(data, &root, &mut info.strings, 1)?;
    Ok(info)
}

/// Collects the wanted strings below StringFileInfo, keeping the first value of each.
fn string_file_info(
    data: &[u8],
    parent: &Block<'_>,
    strings: &mut Strings,
    depth: u32,
) -> Result<(), ErrorKind> {
    if depth > MAX_BLOCK_DEPTH {
        return Ok(());
    }
    for child in children(data, parent.children.clone())? {
        match (depth, child.key.as_str()) {
            (1, "StringFileInfo") | (2, _) => string_file_info(data, &child, strings, depth + 1)?,
            (3, key) => {
                let slot = match key {
                    "CompanyName" => &mut strings.company,
                    "ProductName" => &mut strings.product_name,
                    "ProductVersion" => &mut strings.product_version,
                    "FileVersion" => &mut strings.file_version,
                    _ => continue,
                };
                if slot.is_none() {
                    *slot = text(child.value);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A NUL-terminated UTF-16 value, trimmed; `None` when empty.
fn text(value: &[u8]) -> Option<String> {
    let units: Vec<u16> = value
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let text = String::from_utf16_lossy(&units);
    let text: String = text.trim().chars().filter(|c| !c.is_control()).collect();
    (!text.is_empty()).then(|| shown(&text))
}

/// A version string as resource compilers write it (`1.2.3`, old-style `1, 2, 3, 4`, or
/// `2.0 beta`): commas become dots and anything after the first word is dropped.
fn string_version(text: &str) -> Option<String> {
    let dotted = text.replace(", ", ".").replace(',', ".");
    let first = dotted.split_whitespace().next()?;
    (!first.is_empty()).then(|| first.to_owned())
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn read<I: Input>(
    input: &mut I,
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>, ErrorKind> {
    let available = input.len().saturating_sub(offset);
    if len > available {
        return Err(ErrorKind::Truncated {
            format: FORMAT,
            what,
            offset,
            needed: len,
            available,
        });
    }
    let mut buf = vec![0u8; len as usize];
    input.read_at(offset, &mut buf).map_err(|e| ErrorKind::Io {
        message: format!("reading {what} at offset {offset}: {e}"),
    })?;
    Ok(buf)
}

fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn malformed(message: String) -> ErrorKind {
    ErrorKind::Malformed {
        format: FORMAT,
        message: shown(&message),
    }
}
