//! The one error type of the parser: the file it concerns plus a kind a caller can match on, so
//! the depot can turn any failure into a clear "rejected upload" message.

use std::fmt;

/// Why a package file could not be read, with the file name it was uploaded as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file_name}: {kind}")]
pub struct MetaError {
    file_name: String,
    kind: ErrorKind,
}

impl MetaError {
    pub(crate) fn new(file_name: &str, kind: ErrorKind) -> Self {
        // File names come from uploads; keep an absurd one from flooding logs.
        let file_name: String = file_name.chars().take(256).collect();
        MetaError { file_name, kind }
    }

    /// The file name given to [`crate::parse`].
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// The package format an error was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A .deb file.
    Deb,
    /// An .rpm file.
    Rpm,
    /// A pacman package.
    Pacman,
    /// An .msi file.
    Msi,
    /// A PE .exe file.
    Exe,
    /// A script archive (.zip or .tar.gz with a manifest).
    ScriptArchive,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Deb => ".deb",
            Format::Rpm => ".rpm",
            Format::Pacman => "pacman package",
            Format::Msi => ".msi",
            Format::Exe => ".exe",
            Format::ScriptArchive => "script archive",
        })
    }
}

/// What is wrong with a package file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Reading the file failed (only from [`crate::parse_reader`]).
    #[error("cannot read the file: {message}")]
    Io {
        /// What was being read, and the system's error.
        message: String,
    },
    /// The file has no bytes at all.
    #[error("the file is empty")]
    Empty,
    /// No magic number of a supported format.
    #[error(
        "not a supported package (.deb, .rpm, pacman, .msi, .exe, .zip or .tar.gz script archive); it starts with {magic}"
    )]
    UnknownFormat {
        /// The first bytes, in hex.
        magic: String,
    },
    /// The file ends before a structure it announces.
    #[error(
        "{format} is truncated: {what} needs {needed} bytes at offset {offset}, the file has {available}"
    )]
    Truncated {
        /// The format being read.
        format: Format,
        /// The structure being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// How many bytes remain from `offset`.
        available: u64,
    },
    /// A structure is not what the format requires.
    #[error("{format} is malformed: {message}")]
    Malformed {
        /// The format being read.
        format: Format,
        /// What is wrong.
        message: String,
    },
    /// An archive member or entry name that could escape a directory or is not plain.
    #[error("{format} contains an unsafe member name {name:?}")]
    UnsafeName {
        /// The format being read.
        format: Format,
        /// The name, escaped.
        name: String,
    },
    /// A part the format requires is absent.
    #[error("{format} has no {what}")]
    Missing {
        /// The format being read.
        format: Format,
        /// The missing part (`debian-binary`, `control.tar`, `control file`, ...).
        what: &'static str,
    },
    /// A format version this parser does not read.
    #[error("{format} format version {version:?} is not supported")]
    UnsupportedVersion {
        /// The format being read.
        format: Format,
        /// The version found.
        version: String,
    },
    /// A compression this parser does not read.
    #[error("{format} member {member:?} uses an unsupported compression")]
    UnsupportedCompression {
        /// The format being read.
        format: Format,
        /// The member name.
        member: String,
    },
    /// Decompressing a member failed.
    #[error("{format} member {member:?} does not decompress: {message}")]
    Decompress {
        /// The format being read.
        format: Format,
        /// The member name.
        member: String,
        /// The decoder's message.
        message: String,
    },
    /// A part exceeds a size or count limit (a decompression bomb, a huge header).
    #[error("{format} {what} exceeds the limit of {limit}")]
    TooLarge {
        /// The format being read.
        format: Format,
        /// What is too large.
        what: &'static str,
        /// The limit (bytes or entries).
        limit: u64,
    },
    /// A metadata field every package must have is absent or empty.
    #[error("{format} metadata lacks the required field {field}")]
    MissingField {
        /// The format being read.
        format: Format,
        /// The field name.
        field: &'static str,
    },
    /// A metadata field has a value the package manager would not accept.
    #[error("{format} field {field} is invalid ({reason}): {value:?}")]
    InvalidField {
        /// The format being read.
        format: Format,
        /// The field name.
        field: &'static str,
        /// The value, cut to 128 characters.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// An archive entry that could escape the extraction directory, is not a plain file or
    /// directory, or breaks a limit; `name` is the entry's name, escaped.
    #[error("{format} entry {name:?} is refused: {reason}")]
    UnsafeEntry {
        /// The format being read.
        format: Format,
        /// The entry name, escaped and cut to 128 characters.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The script archive's manifest is not valid JSON of the expected shape, or names
    /// something the archive lacks.
    #[error("script archive manifest capstan-package.json is invalid: {message}")]
    InvalidManifest {
        /// What is wrong.
        message: String,
    },
    /// The extraction destination is unusable, or writing below it failed.
    #[error("cannot extract into {path}: {message}")]
    Destination {
        /// The directory or file concerned.
        path: String,
        /// What is wrong, with the system's error.
        message: String,
    },
    /// A source package, which cannot be installed.
    #[error("{format} is a source package, not an installable binary package")]
    SourcePackage {
        /// The format being read.
        format: Format,
    },
    /// A package for an operating system other than Linux.
    #[error("{format} is built for {os:?}, not Linux")]
    UnsupportedPlatform {
        /// The format being read.
        format: Format,
        /// The operating system it names.
        os: String,
    },
}

/// Cuts a hostile value to something printable in an error message.
pub(crate) fn shown(value: &str) -> String {
    value.chars().take(128).collect()
}
