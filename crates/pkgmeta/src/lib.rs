//! Reads the name, version, architecture and other metadata of an uploaded package file (.deb,
//! .rpm) so the depot can pre-fill a package version and a matching detection rule. Input is
//! untrusted: every length is checked against the bytes present, decompression is capped, and
//! nothing is ever written to disk or executed.

mod deb;
mod error;
mod limits;
mod rpm;

pub use error::{ErrorKind, MetaError};
pub use limits::{MAX_CONTROL_BYTES, MAX_RPM_HEADER_BYTES, MAX_RPM_INDEX_ENTRIES};

use std::io::{Read, Seek};

use limits::{Input, SeekInput};
use serde::Serialize;

/// The package formats this crate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageFormat {
    /// A Debian binary package (`ar` archive holding `debian-binary`, `control.tar*`, `data.tar*`).
    Deb,
    /// An RPM binary package (lead, signature header, main header, payload).
    Rpm,
}

impl PackageFormat {
    /// The package manager that installs this format, which is also the `source` name the
    /// inventory and the rule engine use for installed packages.
    pub fn manager(self) -> PackageManager {
        match self {
            PackageFormat::Deb => PackageManager::Dpkg,
            PackageFormat::Rpm => PackageManager::Rpm,
        }
    }
}

/// A package manager whose database a detection rule can query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageManager {
    /// dpkg (Debian, Ubuntu); versions compare with dpkg's rules (epoch, `~`).
    Dpkg,
    /// rpm (Fedora, RHEL, SUSE); versions compare with rpm's rules.
    Rpm,
}

/// How a detection rule compares the installed version with [`SuggestedDetection::version`].
/// The names are the rule engine's version operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionComparison {
    /// Exactly this version is installed.
    VersionEq,
    /// This version or a newer one is installed.
    VersionGte,
}

/// A detection rule pre-filled from the package: "the package manager has this package at this
/// version or newer". The operator may edit it before saving the package version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuggestedDetection {
    /// The package manager to ask.
    pub manager: PackageManager,
    /// The package name as the manager records it.
    pub package: String,
    /// The comparison; `version_gte` by default, so a newer installed version counts as present
    /// and is not downgraded.
    pub op: VersionComparison,
    /// The version in the manager's own syntax (`[epoch:]version[-revision]`).
    pub version: String,
}

/// What the parser read from a package file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageMeta {
    /// The format, detected from the file's magic bytes (not its name).
    pub format: PackageFormat,
    /// The package name (`Package` for .deb, `NAME` for .rpm).
    pub name: String,
    /// The full version: `[epoch:]upstream[-revision]` for .deb (as in the control file),
    /// `[epoch:]version-release` for .rpm.
    pub version: String,
    /// The architecture as the package declares it (`amd64`, `all`, `x86_64`, `noarch`, ...).
    pub architecture: String,
    /// A one-line summary: the first line of `Description` (.deb) or `SUMMARY` (.rpm).
    pub summary: Option<String>,
    /// Who ships it: `Maintainer` for .deb, `VENDOR` for .rpm.
    pub vendor: Option<String>,
    /// The license (.rpm `LICENSE`; .deb control files have none).
    pub license: Option<String>,
    /// The installed size in bytes (.deb `Installed-Size` is in KiB and is converted; .rpm
    /// `SIZE`/`LONGSIZE`).
    pub installed_size: Option<u64>,
    /// Dependencies as the package states them, unparsed (.deb `Depends`; .rpm requirements
    /// other than `rpmlib(...)` joined with `, `).
    pub depends: Option<String>,
    /// The operating system family the package installs on; always `linux` for these formats.
    pub platform: &'static str,
    /// A detection rule matching this package.
    pub suggested_detection: SuggestedDetection,
}

/// Parses a package file held in memory. `file_name` only labels errors; the format comes
/// from the content.
pub fn parse(bytes: &[u8], file_name: &str) -> Result<PackageMeta, MetaError> {
    parse_kind(bytes).map_err(|kind| MetaError::new(file_name, kind))
}

/// Parses a package file from a seekable reader (an uploaded blob on disk), reading only the
/// headers: the .deb data member and the .rpm payload are stepped over, so a 1 GiB package
/// costs a few small reads. The reader's position afterwards is unspecified.
pub fn parse_reader<R: Read + Seek>(reader: R, file_name: &str) -> Result<PackageMeta, MetaError> {
    SeekInput::new(reader)
        .map_err(|e| ErrorKind::Io {
            message: format!("finding the file length: {e}"),
        })
        .and_then(parse_kind)
        .map_err(|kind| MetaError::new(file_name, kind))
}

fn parse_kind<I: Input>(mut input: I) -> Result<PackageMeta, ErrorKind> {
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
    } else {
        Err(ErrorKind::UnknownFormat {
            magic: magic.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// Builds the common part of the result once the format-specific fields are known.
pub(crate) fn finish(
    format: PackageFormat,
    name: String,
    version: String,
    architecture: String,
) -> PackageMeta {
    let suggested_detection = SuggestedDetection {
        manager: format.manager(),
        package: name.clone(),
        op: VersionComparison::VersionGte,
        version: version.clone(),
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
        platform: "linux",
        suggested_detection,
    }
}
