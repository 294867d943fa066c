//! Reads a Windows Installer database (.msi): the `Property` table (ProductCode,
//! ProductVersion, ProductName, Manufacturer, UpgradeCode) and the architecture from the
//! Summary Information's Template. The compound-file container is parsed by the `msi` crate.

use std::io::{BufReader, Read, Seek};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{ErrorKind, Format, shown};
use crate::limits::{Input, InputReader};
use crate::{PackageFormat, PackageMeta, SuggestedDetection, VersionCheck, finish, slug};

/// The compound file (OLE2) signature every .msi starts with.
pub(crate) const CFB_MAGIC: &[u8] = &[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];

const FORMAT: Format = Format::Msi;

/// The most Property rows read (real packages have tens to a few hundred).
const MAX_PROPERTIES: usize = 100_000;
/// The largest table stream (tables, columns, string pool and data) accepted. The msi crate
/// sizes its row vectors from a stream's declared length, so this bounds its memory; the
/// tables of very large real packages stay in the low MiB.
const MAX_TABLE_STREAM_BYTES: u64 = 16 * 1024 * 1024;
/// Compound-file entries looked at (real packages have hundreds).
const MAX_CFB_ENTRIES: usize = 100_000;
/// Table streams' names start with this character in the compound file's encoding.
const TABLE_PREFIX: char = '\u{4840}';

pub(crate) fn parse<I: Input>(input: I) -> Result<PackageMeta, ErrorKind> {
    let file_len = input.len();
    let reader = BufReader::with_capacity(64 * 1024, InputReader::new(input));
    // The msi and cfb crates index tables by what the file says; a crafted file has made
    // third-party parsers like them panic before. A panic here is an invalid upload, not a
    // crashed server.
    catch_unwind(AssertUnwindSafe(|| read(check_streams(reader, file_len)?))).unwrap_or_else(|_| {
        Err(malformed(
            "the database structures are inconsistent (the MSI reader gave up)".to_owned(),
        ))
    })
}

/// Refuses stream lengths the file cannot hold before the msi crate allocates by them; a
/// declared length is not checked against the sector chain until the stream is read.
fn check_streams<R: Read + Seek>(reader: R, file_len: u64) -> Result<R, ErrorKind> {
    let compound = cfb::CompoundFile::open(reader)
        .map_err(|e| malformed(format!("not a readable compound file: {e}")))?;
    for (count, entry) in compound.walk().enumerate() {
        if count >= MAX_CFB_ENTRIES {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "compound file directory",
                limit: MAX_CFB_ENTRIES as u64,
            });
        }
        if !entry.is_stream() {
            continue;
        }
        if entry.len() > file_len {
            return Err(malformed(format!(
                "a stream claims {} bytes, more than the file's {file_len}",
                entry.len()
            )));
        }
        if entry.name().starts_with(TABLE_PREFIX) && entry.len() > MAX_TABLE_STREAM_BYTES {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "database table",
                limit: MAX_TABLE_STREAM_BYTES,
            });
        }
    }
    let mut reader = compound.into_inner();
    reader
        .rewind()
        .map_err(|e| malformed(format!("rewinding: {e}")))?;
    Ok(reader)
}

fn read<R: Read + Seek>(reader: R) -> Result<PackageMeta, ErrorKind> {
    let mut package =
        msi::Package::open(reader).map_err(|e| malformed(format!("not a readable MSI: {e}")))?;
    match package.package_type() {
        msi::PackageType::Installer => {}
        other => {
            return Err(malformed(format!(
                "this is a Windows Installer {other:?}, not an installer package"
            )));
        }
    }
    let architecture = architecture(package.summary_info().arch());
    if !package.has_table("Property") {
        return Err(ErrorKind::Missing {
            format: FORMAT,
            what: "Property table",
        });
    }
    let rows = package
        .select_rows(msi::Select::table("Property").columns(&["Property", "Value"]))
        .map_err(|e| malformed(format!("the Property table does not read: {e}")))?;
    let mut wanted: [(&str, Option<String>); 5] = [
        ("ProductCode", None),
        ("ProductVersion", None),
        ("ProductName", None),
        ("Manufacturer", None),
        ("UpgradeCode", None),
    ];
    for (count, row) in rows.enumerate() {
        if count >= MAX_PROPERTIES {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "Property table",
                limit: MAX_PROPERTIES as u64,
            });
        }
        if row.len() < 2 {
            continue;
        }
        let (Some(key), Some(value)) = (row[0].as_str(), row[1].as_str()) else {
            continue;
        };
        if let Some((_, slot)) = wanted.iter_mut().find(|(k, _)| *k == key) {
            *slot = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        }
    }
    let [
        (_, product_code),
        (_, product_version),
        (_, product_name),
        (_, manufacturer),
        (_, upgrade_code),
    ] = wanted;
    let missing = |field: &'static str| ErrorKind::MissingField {
        format: FORMAT,
        field,
    };
    let product_code = guid("ProductCode", product_code.ok_or(missing("ProductCode"))?)?;
    let version = product_version.ok_or(missing("ProductVersion"))?;
    let product_name = product_name.ok_or(missing("ProductName"))?;
    let upgrade_code = upgrade_code.map(|u| guid("UpgradeCode", u)).transpose()?;
    let version_ok = version.len() <= 64
        && version.split('.').count() <= 4
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !version_ok {
        return Err(invalid(
            "ProductVersion",
            &version,
            "must be major.minor.build[.revision], digits only",
        ));
    }
    let name = slug(&product_name).ok_or_else(|| {
        invalid(
            "ProductName",
            &product_name,
            "has no letters or digits to name the package by",
        )
    })?;

    let mut meta = finish(PackageFormat::Msi, name, version.clone(), architecture);
    meta.suggested_detection = Some(SuggestedDetection::MsiProduct {
        product_code: product_code.clone(),
        version: VersionCheck::at_least(&version),
    });
    meta.summary = Some(product_name.clone());
    meta.vendor = manufacturer.clone();
    meta.manufacturer = manufacturer;
    meta.product_code = Some(product_code);
    meta.upgrade_code = upgrade_code;
    meta.product_name = Some(product_name);
    Ok(meta)
}

/// The Template's platform (`x64;1033` gives `x64`): Windows Installer's names, with `Intel`
/// (and an empty platform, which means the same) as `x86`.
fn architecture(platform: Option<&str>) -> String {
    match platform.map(str::trim) {
        None | Some("") => "x86".to_owned(),
        Some(p) => match p.to_ascii_lowercase().as_str() {
            "intel" => "x86".to_owned(),
            "x64" | "amd64" => "x64".to_owned(),
            "arm64" => "arm64".to_owned(),
            "arm" => "arm".to_owned(),
            "intel64" => "ia64".to_owned(),
            other => shown(other)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect(),
        },
    }
}

/// A `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` GUID, in upper case as Windows Installer
/// registers it.
fn guid(field: &'static str, value: String) -> Result<String, ErrorKind> {
    let b = value.as_bytes();
    let ok = b.len() == 38
        && b[0] == b'{'
        && b[37] == b'}'
        && b[1..37].iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(invalid(field, &value, "not a {GUID}"))
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
        message: shown(&message),
    }
}
