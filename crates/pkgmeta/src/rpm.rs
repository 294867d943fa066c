//! Reads an RPM binary package: the 96-byte lead, the signature header (padded to 8 bytes) and
//! the main header with the package's tags. The payload is never read, only its announced size
//! is compared with the bytes present to catch truncated uploads.

use crate::error::{ErrorKind, Format, shown};
use crate::limits::{Cursor, Input, MAX_RPM_HEADER_BYTES, MAX_RPM_INDEX_ENTRIES};
use crate::{PackageFormat, PackageMeta, finish};

pub(crate) const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
const HEADER_MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];
const FORMAT: Format = Format::Rpm;

/// rpm's tag data types.
const TYPE_INT32: u32 = 4;
const TYPE_INT64: u32 = 5;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// Signature tags: the size of the main header plus payload (32- and 64-bit).
const SIG_SIZE: u32 = 1000;
const SIG_LONGSIZE: u32 = 270;

/// Main header tags.
const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const SUMMARY: u32 = 1004;
const SIZE: u32 = 1009;
const VENDOR: u32 = 1011;
const LICENSE: u32 = 1014;
const OS: u32 = 1021;
const ARCH: u32 = 1022;
const REQUIREFLAGS: u32 = 1048;
const REQUIRENAME: u32 = 1049;
const REQUIREVERSION: u32 = 1050;
const LONGSIZE: u32 = 5009;

/// rpm's dependency comparison flags.
const SENSE_LESS: u32 = 0x02;
const SENSE_GREATER: u32 = 0x04;
const SENSE_EQUAL: u32 = 0x08;

pub(crate) fn parse<I: Input>(input: I) -> Result<PackageMeta, ErrorKind> {
    let mut cur = Cursor::new(input, FORMAT);
    let lead = cur.take(96, "lead")?;
    let major = lead[4];
    if !(3..=4).contains(&major) {
        return Err(ErrorKind::UnsupportedVersion {
            format: FORMAT,
            version: format!("{major}.{}", lead[5]),
        });
    }
    if u16::from_be_bytes([lead[6], lead[7]]) == 1 {
        return Err(ErrorKind::SourcePackage { format: FORMAT });
    }
    if u16::from_be_bytes([lead[78], lead[79]]) != 5 {
        return Err(malformed(
            "the lead does not announce a header-style signature".to_owned(),
        ));
    }

    let signature = Header::read(&mut cur, "signature header")?;
    let store_len = signature.store.len();
    cur.skip(((8 - store_len % 8) % 8) as u64, "signature padding")?;
    let announced = match signature.int64(SIG_LONGSIZE)? {
        Some(size) => Some(size),
        None => signature.int32(SIG_SIZE)?.map(u64::from),
    };
    if let Some(announced) = announced
        && announced > cur.remaining()
    {
        return Err(ErrorKind::Truncated {
            format: FORMAT,
            what: "main header and payload",
            offset: cur.pos(),
            needed: announced,
            available: cur.remaining(),
        });
    }

    let header = Header::read(&mut cur, "main header")?;
    meta_from_header(&header)
}

/// One header structure: the index entries and the data store they point into.
struct Header {
    index: Vec<u8>,
    store: Vec<u8>,
}

/// One index entry: what type the tag's data has, where it starts and how many items it holds.
struct Entry {
    kind: u32,
    offset: usize,
    count: u32,
}

impl Header {
    fn read<I: Input>(cur: &mut Cursor<I>, what: &'static str) -> Result<Self, ErrorKind> {
        if cur.take(4, what)? != HEADER_MAGIC {
            return Err(malformed(format!("the {what} has no header magic")));
        }
        cur.skip(4, what)?;
        let entries = cur.u32_be(what)?;
        let store_len = cur.u32_be(what)?;
        if entries > MAX_RPM_INDEX_ENTRIES {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "header index",
                limit: u64::from(MAX_RPM_INDEX_ENTRIES),
            });
        }
        if store_len > MAX_RPM_HEADER_BYTES {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "header data",
                limit: u64::from(MAX_RPM_HEADER_BYTES),
            });
        }
        let index = cur.take(entries as usize * 16, what)?;
        let store = cur.take(store_len as usize, what)?;
        Ok(Header { index, store })
    }

    fn entry(&self, tag: u32) -> Option<Entry> {
        self.index.chunks_exact(16).find_map(|e| {
            let word = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            (word(0) == tag).then(|| Entry {
                kind: word(4),
                offset: word(8) as usize,
                count: word(12),
            })
        })
    }

    /// The bytes of `count` fixed-size items at an entry's offset.
    fn fixed(&self, tag: u32, kind: u32, width: usize) -> Result<Option<&[u8]>, ErrorKind> {
        let Some(entry) = self.entry(tag) else {
            return Ok(None);
        };
        if entry.kind != kind {
            return Err(bad_tag(tag, "has the wrong type"));
        }
        let len = (entry.count as usize)
            .checked_mul(width)
            .ok_or_else(|| bad_tag(tag, "is too long"))?;
        let end = entry
            .offset
            .checked_add(len)
            .ok_or_else(|| bad_tag(tag, "lies outside the header"))?;
        self.store
            .get(entry.offset..end)
            .map(Some)
            .ok_or_else(|| bad_tag(tag, "lies outside the header"))
    }

    fn int32(&self, tag: u32) -> Result<Option<u32>, ErrorKind> {
        Ok(self.int32s(tag)?.and_then(|v| v.first().copied()))
    }

    fn int32s(&self, tag: u32) -> Result<Option<Vec<u32>>, ErrorKind> {
        Ok(self.fixed(tag, TYPE_INT32, 4)?.map(|b| {
            b.chunks_exact(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .collect()
        }))
    }

    fn int64(&self, tag: u32) -> Result<Option<u64>, ErrorKind> {
        Ok(self.fixed(tag, TYPE_INT64, 8)?.and_then(|b| {
            b.get(..8)
                .map(|w| u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
        }))
    }

    /// The strings of a string-typed tag (a STRING holds one; an I18NSTRING's first is the C
    /// locale's).
    fn strings(&self, tag: u32) -> Result<Option<Vec<&[u8]>>, ErrorKind> {
        let Some(entry) = self.entry(tag) else {
            return Ok(None);
        };
        if !matches!(
            entry.kind,
            TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING
        ) {
            return Err(bad_tag(tag, "has the wrong type"));
        }
        let mut rest = self
            .store
            .get(entry.offset..)
            .ok_or_else(|| bad_tag(tag, "lies outside the header"))?;
        // Every string takes at least its NUL, so a count beyond the store is a lie.
        if entry.count as usize > rest.len() {
            return Err(bad_tag(tag, "counts more strings than the header holds"));
        }
        let mut out = Vec::with_capacity(entry.count as usize);
        for _ in 0..entry.count {
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| bad_tag(tag, "has an unterminated string"))?;
            out.push(&rest[..end]);
            rest = &rest[end + 1..];
        }
        Ok(Some(out))
    }

    fn string(&self, tag: u32) -> Result<Option<&[u8]>, ErrorKind> {
        Ok(self.strings(tag)?.and_then(|s| s.first().copied()))
    }
}

fn meta_from_header(header: &Header) -> Result<PackageMeta, ErrorKind> {
    let required = |tag: u32, field: &'static str| -> Result<String, ErrorKind> {
        let value =
            header
                .string(tag)?
                .filter(|v| !v.is_empty())
                .ok_or(ErrorKind::MissingField {
                    format: FORMAT,
                    field,
                })?;
        std::str::from_utf8(value)
            .map(str::to_owned)
            .map_err(|_| invalid(field, &String::from_utf8_lossy(value), "not UTF-8"))
    };
    let name = required(NAME, "NAME")?;
    let version = required(VERSION, "VERSION")?;
    let release = required(RELEASE, "RELEASE")?;
    let architecture = required(ARCH, "ARCH")?;
    let os = required(OS, "OS")?;
    check_chars(
        "NAME",
        &name,
        "-._+",
        "only letters, digits and '-._+' are allowed",
    )?;
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(invalid("NAME", &name, "must start with a letter or digit"));
    }
    check_chars(
        "VERSION",
        &version,
        "._+~^",
        "only letters, digits and '._+~^' are allowed",
    )?;
    check_chars(
        "RELEASE",
        &release,
        "._+~^",
        "only letters, digits and '._+~^' are allowed",
    )?;
    check_chars(
        "ARCH",
        &architecture,
        "_-",
        "only letters, digits and '_-' are allowed",
    )?;
    if !os.eq_ignore_ascii_case("linux") {
        return Err(ErrorKind::UnsupportedPlatform {
            format: FORMAT,
            os: shown(&os),
        });
    }

    let full_version = match header.int32(EPOCH)? {
        Some(epoch) => format!("{epoch}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let mut meta = finish(PackageFormat::Rpm, name, full_version, architecture);
    let text = |tag: u32| -> Result<Option<String>, ErrorKind> {
        Ok(header
            .string(tag)?
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .filter(|v| !v.is_empty()))
    };
    meta.summary = text(SUMMARY)?;
    meta.vendor = text(VENDOR)?;
    meta.license = text(LICENSE)?;
    meta.installed_size = match header.int64(LONGSIZE)? {
        Some(size) => Some(size),
        None => header.int32(SIZE)?.map(u64::from),
    };
    meta.depends = requires(header)?;
    Ok(meta)
}

/// The requirements as `rpm -qp --requires` prints them, without rpm's own `rpmlib(...)`
/// feature markers, joined with `, `.
fn requires(header: &Header) -> Result<Option<String>, ErrorKind> {
    let Some(names) = header.strings(REQUIRENAME)? else {
        return Ok(None);
    };
    let versions = header.strings(REQUIREVERSION)?.unwrap_or_default();
    let flags = header.int32s(REQUIREFLAGS)?.unwrap_or_default();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let name = String::from_utf8_lossy(name);
        if name.starts_with("rpmlib(") {
            continue;
        }
        let version = versions.get(i).map(|v| String::from_utf8_lossy(v));
        let flag = flags.get(i).copied().unwrap_or(0);
        let op = match (
            flag & SENSE_LESS != 0,
            flag & SENSE_GREATER != 0,
            flag & SENSE_EQUAL != 0,
        ) {
            (true, false, false) => "<",
            (true, false, true) => "<=",
            (false, true, false) => ">",
            (false, true, true) => ">=",
            (false, false, true) => "=",
            _ => "",
        };
        match version {
            Some(v) if !v.is_empty() && !op.is_empty() => out.push(format!("{name} {op} {v}")),
            _ => out.push(name.into_owned()),
        }
    }
    Ok((!out.is_empty()).then(|| out.join(", ")))
}

fn check_chars(
    field: &'static str,
    value: &str,
    also_allowed: &str,
    reason: &'static str,
) -> Result<(), ErrorKind> {
    if value.len() > 256 {
        return Err(invalid(field, value, "longer than 256 bytes"));
    }
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || also_allowed.contains(c))
    {
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

fn bad_tag(tag: u32, problem: &str) -> ErrorKind {
    malformed(format!("header tag {tag} {problem}"))
}

fn malformed(message: String) -> ErrorKind {
    ErrorKind::Malformed {
        format: FORMAT,
        message,
    }
}
