//! Reads the name, version, architecture and other metadata of an uploaded package file (.deb,
//! .rpm, pacman `.pkg.tar.{zst,gz}`, .msi, PE .exe, and script archives: a .zip or .tar.gz with a
//! `capstan-package.json` manifest) so the depot can pre-fill a package version and a matching
//! detection rule. Input is untrusted: every length is checked against the bytes present,
//! decompression is capped, and parsing never writes to disk or executes anything.
//!
//! The one place this crate writes files is [`extract_archive`], which the agent uses to unpack
//! a script archive before running its install script. It applies the very checks [`parse`]
//! applies (the same walk over the archive), creates only regular files and directories below
//! an empty destination, and never follows a symlink.

mod archive;
mod deb;
mod error;
mod limits;
mod msi;
mod pacman;
mod pe;
mod rpm;
mod tarstream;

pub use archive::{
    ArchiveLimits, ExtractedArchive, MANIFEST_NAME, ManifestInterpreter, ScriptCommand,
    ScriptManifest, extract_archive,
};
pub use error::{ErrorKind, Format, MetaError};
pub use limits::{MAX_CONTROL_BYTES, MAX_RPM_HEADER_BYTES, MAX_RPM_INDEX_ENTRIES};

use std::io::{Read, Seek};

use limits::{Input, SeekInput};
use serde::{Deserialize, Serialize};

/// The package formats this crate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageFormat {
    /// A Debian binary package (`ar` archive holding `debian-binary`, `control.tar*`, `data.tar*`).
    Deb,
    /// An RPM binary package (lead, signature header, main header, payload).
    Rpm,
    /// A pacman package: a zstd- or gzip-compressed tar whose `.PKGINFO` describes it.
    Pacman,
    /// A Windows Installer database (a compound file with the `Property` table).
    Msi,
    /// A Windows PE executable (an installer of unknown kind), read for its version resource.
    Exe,
    /// A .zip or .tar.gz holding `capstan-package.json` and the scripts it names.
    ScriptArchive,
}

/// The operating system family a package installs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Linux (.deb, .rpm, pacman).
    Linux,
    /// Windows (.msi, .exe).
    Windows,
    /// Any system with the manifest's interpreter (script archives may say so).
    Any,
}

/// A package database a detection rule can query; the names are the wire type's
/// (`capstan_proto::software::DetectionManager`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageManager {
    /// dpkg (Debian, Ubuntu); versions compare with dpkg's rules (epoch, `~`).
    Dpkg,
    /// rpm (Fedora, RHEL, SUSE); versions compare with rpm's rules.
    Rpm,
    /// pacman (Arch); versions compare with vercmp's rules.
    Pacman,
}

/// The version operators a suggestion uses (a subset of the wire type's `VersionOp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionOp {
    /// Exactly this version is installed.
    Eq,
    /// This version or a newer one is installed.
    Gte,
}

/// "The found version compares to `version` with `op`", as the wire type `VersionCheck`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionCheck {
    /// The comparison; suggestions use `gte`, so a newer installed version counts as present
    /// and is not downgraded.
    pub op: VersionOp,
    /// The version in the source's own syntax.
    pub version: String,
}

impl VersionCheck {
    fn at_least(version: &str) -> Self {
        VersionCheck {
            op: VersionOp::Gte,
            version: version.to_owned(),
        }
    }
}

/// A detection rule pre-filled from the package. It serialises to exactly the JSON of the wire
/// type `capstan_proto::software::Detection`, so the server can deserialise it as one; the
/// operator may edit it before saving the package version.
#[derive(Debug, Clone, PartialEq)]
pub enum SuggestedDetection {
    /// The package manager has this package at this version or newer.
    Package {
        /// The package manager to ask.
        manager: PackageManager,
        /// The package name as the manager records it.
        name: String,
        /// The version check (`gte` the package's own version).
        version: VersionCheck,
    },
    /// The MSI product is installed at this version or newer.
    MsiProduct {
        /// The ProductCode, `{GUID}` in upper case as Windows Installer keeps it.
        product_code: String,
        /// The version check (`gte` ProductVersion).
        version: VersionCheck,
    },
    /// A script archive's own `detection` from its manifest, passed through unchanged (the
    /// server validates it as a `Detection`).
    Manifest(serde_json::Value),
}

/// The tagged shape of [`SuggestedDetection`] on the wire.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDetection<'a> {
    Package {
        manager: PackageManager,
        name: &'a str,
        version: &'a VersionCheck,
    },
    MsiProduct {
        product_code: &'a str,
        version: &'a VersionCheck,
    },
}

impl Serialize for SuggestedDetection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SuggestedDetection::Package {
                manager,
                name,
                version,
            } => WireDetection::Package {
                manager: *manager,
                name,
                version,
            }
            .serialize(serializer),
            SuggestedDetection::MsiProduct {
                product_code,
                version,
            } => WireDetection::MsiProduct {
                product_code,
                version,
            }
            .serialize(serializer),
            SuggestedDetection::Manifest(value) => value.serialize(serializer),
        }
    }
}

/// What the parser read from a package file. Fields that only some formats have are left out
/// of the JSON when absent (the .deb/.rpm fields keep their `null` for compatibility).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageMeta {
    /// The format, detected from the file's magic bytes (not its name).
    pub format: PackageFormat,
    /// The package name (`Package` for .deb, `NAME` for .rpm, `pkgname` for pacman, the
    /// manifest's `name`, and a slug of ProductName for .msi/.exe).
    pub name: String,
    /// The full version: `[epoch:]upstream[-revision]` for .deb (as in the control file),
    /// `[epoch:]version-release` for .rpm, `pkgver` for pacman, ProductVersion for .msi, the
    /// version resource's product (else file) version for .exe.
    pub version: String,
    /// The architecture as the package declares it (`amd64`, `all`, `x86_64`, `noarch`, `x64`,
    /// `x86`, `arm64`, `any` ...).
    pub architecture: String,
    /// A one-line summary: the first line of `Description` (.deb), `SUMMARY` (.rpm),
    /// `pkgdesc` (pacman), the manifest's `description`.
    pub summary: Option<String>,
    /// Who ships it: `Maintainer` for .deb, `VENDOR` for .rpm, `packager` for pacman,
    /// Manufacturer for .msi, CompanyName for .exe.
    pub vendor: Option<String>,
    /// The license (.rpm `LICENSE`, pacman `license` lines joined with `, `).
    pub license: Option<String>,
    /// The installed size in bytes (.deb `Installed-Size` is in KiB and is converted; .rpm
    /// `SIZE`/`LONGSIZE`; pacman `size`).
    pub installed_size: Option<u64>,
    /// Dependencies as the package states them, unparsed (.deb `Depends`; .rpm requirements
    /// other than `rpmlib(...)` joined with `, `; pacman `depend` lines joined with `, `).
    pub depends: Option<String>,
    /// The operating system family the package installs on.
    pub platform: Platform,
    /// A detection rule matching this package; none for .exe (an installer does not say where
    /// it installs) and for a script archive whose manifest has no `detection`.
    pub suggested_detection: Option<SuggestedDetection>,
    /// MSI ProductCode (`{GUID}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    /// MSI UpgradeCode (`{GUID}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_code: Option<String>,
    /// MSI Manufacturer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// The product name as the installer shows it (MSI ProductName, PE ProductName).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// PE: the file version from VS_FIXEDFILEINFO (`a.b.c.d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_version: Option<String>,
    /// PE: the product version from VS_FIXEDFILEINFO (`a.b.c.d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// PE: CompanyName from the StringFileInfo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Script archive: the validated manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ScriptManifest>,
}

/// Parses a package file held in memory. The format comes from the content; `file_name`
/// labels errors, and names a PE executable that has no ProductName.
pub fn parse(bytes: &[u8], file_name: &str) -> Result<PackageMeta, MetaError> {
    parse_kind(bytes, file_name).map_err(|kind| MetaError::new(file_name, kind))
}

/// Parses a package file from a seekable reader (an uploaded blob on disk), reading only what
/// the format needs: the .deb data member and the .rpm payload are stepped over and a pacman
/// package is decompressed only up to `.PKGINFO`, so a 1 GiB package costs a few small reads;
/// a script archive is read whole, because every entry is checked. The reader's position
/// afterwards is unspecified.
pub fn parse_reader<R: Read + Seek>(reader: R, file_name: &str) -> Result<PackageMeta, MetaError> {
    SeekInput::new(reader)
        .map_err(|e| ErrorKind::Io {
            message: format!("finding the file length: {e}"),
        })
        .and_then(|input| parse_kind(input, file_name))
        .map_err(|kind| MetaError::new(file_name, kind))
}

fn parse_kind<I: Input>(mut input: I, file_name: &str) -> Result<PackageMeta, ErrorKind> {
    let len = input.len();
    if len == 0 {
        return Err(ErrorKind::Empty);
    }
    let mut magic = [0u8; 8];
    let magic = &mut magic[..len.min(8) as usize];
    input.read_at(0, magic).map_err(|e| ErrorKind::Io {
        message: format!("reading the magic number: {e}"),
    })?;
    if magic.starts_with(deb::AR_MAGIC) {
        deb::parse(input)
    } else if magic.starts_with(&rpm::LEAD_MAGIC) {
        rpm::parse(input)
    } else if magic.starts_with(archive::ZIP_MAGIC) {
        archive::parse(input)
    } else if magic.starts_with(archive::GZIP_MAGIC) {
        // Pacman packages may be gzip-compressed tars too; their first entries are the
        // dot-files pacman writes, which a script archive never starts with.
        if pacman::gzip_is_pacman(&mut input)? {
            pacman::parse(input)
        } else {
            archive::parse(input)
        }
    } else if magic.starts_with(pacman::ZSTD_MAGIC) || magic.starts_with(pacman::XZ_MAGIC) {
        pacman::parse(input)
    } else if magic.starts_with(msi::CFB_MAGIC) {
        msi::parse(input)
    } else if magic.starts_with(pe::MZ_MAGIC) {
        pe::parse(input, file_name)
    } else {
        Err(ErrorKind::UnknownFormat {
            magic: magic.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// Builds the common part of the result once the format-specific fields are known; the
/// detection suggestion is a package-manager one for the Linux formats and none otherwise
/// (the MSI and archive readers set their own).
pub(crate) fn finish(
    format: PackageFormat,
    name: String,
    version: String,
    architecture: String,
) -> PackageMeta {
    let manager = match format {
        PackageFormat::Deb => Some(PackageManager::Dpkg),
        PackageFormat::Rpm => Some(PackageManager::Rpm),
        PackageFormat::Pacman => Some(PackageManager::Pacman),
        PackageFormat::Msi | PackageFormat::Exe | PackageFormat::ScriptArchive => None,
    };
    let suggested_detection = manager.map(|manager| SuggestedDetection::Package {
        manager,
        name: name.clone(),
        version: VersionCheck::at_least(&version),
    });
    let platform = match format {
        PackageFormat::Deb | PackageFormat::Rpm | PackageFormat::Pacman => Platform::Linux,
        PackageFormat::Msi | PackageFormat::Exe => Platform::Windows,
        PackageFormat::ScriptArchive => Platform::Any,
    };
    PackageMeta {
        format,
        name,
        version,
        architecture,
        summary: None,
        vendor: None,
        license: None,
        installed_size: None,
        depends: None,
        platform,
        suggested_detection,
        product_code: None,
        upgrade_code: None,
        manufacturer: None,
        product_name: None,
        file_version: None,
        product_version: None,
        company: None,
        manifest: None,
    }
}

/// Turns a product name into a package name: lower case, `[a-z0-9._+-]`, spaces and other
/// characters to `-`, runs of `-` collapsed, starting with a letter or digit, at most 128
/// bytes. `None` when nothing usable is left.
pub(crate) fn slug(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() || "._+".contains(c) {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
        if out.len() >= 128 {
            break;
        }
    }
    let out = out
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .trim_end_matches('-');
    (!out.is_empty()).then(|| out.to_owned())
}
