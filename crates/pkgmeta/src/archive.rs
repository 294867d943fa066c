//! Script archives: a .zip or .tar.gz whose root holds `capstan-package.json`, the manifest
//! naming the install and uninstall scripts. One walk over the entries serves both reading the
//! metadata (the server, on upload) and extracting (the agent, before running the install
//! script), so an archive the server accepted is exactly what the agent unpacks, under the same
//! checks: no `..`, no absolute or drive paths, no backslashes or `:`, no Windows device names
//! or trailing dots, no links, devices or FIFOs, no duplicate names (ignoring case, as Windows
//! and macOS do), no control characters, bounded name lengths, entry count and total size, and
//! no entry yielding more bytes than it declares. Parsing reads every entry's data (that is how
//! a bomb is caught), so it costs a full decompression, bounded by
//! [`ArchiveLimits::max_total_bytes`].

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Format, MetaError, shown};
use crate::limits::{Input, InputReader, SeekInput};
use crate::{PackageFormat, PackageMeta, Platform, SuggestedDetection, finish};

/// The manifest's name at the archive root.
pub const MANIFEST_NAME: &str = "capstan-package.json";

pub(crate) const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
pub(crate) const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

const FORMAT: Format = Format::ScriptArchive;

/// The largest manifest read; real ones are a few hundred bytes.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// The wire type's limits on names, versions, arguments and texts (`capstan_proto::software`).
const MAX_NAME_BYTES: usize = 128;
const MAX_VERSION_BYTES: usize = 128;
const MAX_ARGS: usize = 64;
const MAX_ARG_BYTES: usize = 4096;
const MAX_TEXT_BYTES: usize = 4096;
/// The architectures the wire type knows (`capstan_proto::software::Arch`).
const ARCHES: [&str; 5] = ["any", "x86_64", "aarch64", "x86", "armv7"];

/// Bounds on what an archive may hold. The defaults suit install bundles; the agent and the
/// server use the same values so an accepted upload always extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// The most entries (files and directories).
    pub max_entries: usize,
    /// The most bytes of all entries together, as declared and as actually decompressed.
    pub max_total_bytes: u64,
    /// The longest entry name (the whole path), in bytes.
    pub max_name_bytes: usize,
    /// The longest path component, in bytes (the common file system limit).
    pub max_component_bytes: usize,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_entries: 10_000,
            max_total_bytes: 4 * 1024 * 1024 * 1024,
            max_name_bytes: 1024,
            max_component_bytes: 255,
        }
    }
}

/// The interpreters a manifest's scripts may use (the wire type's `Interpreter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestInterpreter {
    /// `sh`
    Sh,
    /// `bash`
    Bash,
    /// `python3`
    Python3,
    /// PowerShell (`powershell` on Windows, `pwsh` elsewhere).
    Powershell,
    /// `cmd.exe` (Windows only).
    Cmd,
}

/// A script of the archive and how to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptCommand {
    /// What runs the script.
    pub interpreter: ManifestInterpreter,
    /// The script's path inside the archive, `/`-separated and relative to its root.
    pub script: String,
    /// Arguments passed as they are (never through a shell string).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// `capstan-package.json`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptManifest {
    /// The package name, `[a-z0-9][a-z0-9._+-]*`.
    pub name: String,
    /// The version, as the detection rule compares it.
    pub version: String,
    /// Where the scripts run.
    pub platform: Platform,
    /// `any`, `x86_64`, `aarch64`, `x86` or `armv7`.
    pub arch: String,
    /// The install script.
    pub install: ScriptCommand,
    /// The uninstall script, if the package can be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uninstall: Option<ScriptCommand>,
    /// A detection rule in the wire format (`capstan_proto::software::Detection`), passed
    /// through; the server validates it. Only its being an object with a `type` is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<serde_json::Value>,
    /// A free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What [`extract_archive`] unpacked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedArchive {
    /// The metadata, as [`crate::parse`] reads it from the same archive.
    pub meta: PackageMeta,
    /// The validated manifest (also in `meta.manifest`).
    pub manifest: ScriptManifest,
    /// Regular files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// What an entry is, once it passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File { executable: bool },
    Dir,
}

/// An admitted entry: its normalised name (`/`-separated, no `.` components, no trailing `/`).
struct Entry {
    name: String,
    kind: EntryKind,
}

/// Receives each admitted entry and its data, which yields exactly the declared bytes.
type Visit<'a> = dyn FnMut(&Entry, &mut dyn Read) -> Result<(), ErrorKind> + 'a;

/// Whether a name seen so far is a file or a directory, and whether a directory had its own
/// entry (or was only implied by a deeper name).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    Dir { explicit: bool },
}

/// The checks and bookkeeping of one walk.
struct Walker<'l> {
    limits: &'l ArchiveLimits,
    /// Names in lower case, for duplicate detection.
    seen: HashMap<String, Seen>,
    /// Regular files by exact name, for the manifest's script paths.
    files: HashSet<String>,
    entries: usize,
    declared_total: u64,
    manifest: Option<Vec<u8>>,
}

impl<'l> Walker<'l> {
    fn new(limits: &'l ArchiveLimits) -> Self {
        Walker {
            limits,
            seen: HashMap::new(),
            files: HashSet::new(),
            entries: 0,
            declared_total: 0,
            manifest: None,
        }
    }

    /// Checks one entry, then hands it and its data to `visit`, counting the bytes.
    fn entry(
        &mut self,
        raw_name: &[u8],
        kind: EntryKind,
        size: u64,
        data: &mut dyn Read,
        visit: &mut Visit<'_>,
    ) -> Result<(), ErrorKind> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "number of entries",
                limit: self.limits.max_entries as u64,
            });
        }
        let Some(name) = check_name(raw_name, self.limits)? else {
            // `./` and friends: the archive root itself.
            return match kind {
                EntryKind::Dir => Ok(()),
                EntryKind::File { .. } => Err(unsafe_entry(raw_name, "names the archive root")),
            };
        };
        if kind == EntryKind::Dir && size != 0 {
            return Err(unsafe_entry(raw_name, "is a directory with data"));
        }
        self.declared_total = self.declared_total.saturating_add(size);
        if self.declared_total > self.limits.max_total_bytes {
            return Err(ErrorKind::TooLarge {
                format: FORMAT,
                what: "total uncompressed size",
                limit: self.limits.max_total_bytes,
            });
        }
        self.record(&name, kind, raw_name)?;
        let entry = Entry { name, kind };

        let mut counted = Counted {
            inner: data,
            left: size,
            overflowed: false,
        };
        let result = if entry.name == MANIFEST_NAME && matches!(kind, EntryKind::File { .. }) {
            if size > MAX_MANIFEST_BYTES {
                return Err(ErrorKind::TooLarge {
                    format: FORMAT,
                    what: "manifest capstan-package.json",
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            let mut bytes = Vec::new();
            counted
                .read_to_end(&mut bytes)
                .map_err(|e| read_error(&entry.name, &e))?;
            let result = visit(&entry, &mut bytes.as_slice());
            self.manifest = Some(bytes);
            result
        } else {
            visit(&entry, &mut counted)
        };
        if counted.overflowed {
            return Err(unsafe_entry(
                raw_name,
                &format!("decompresses to more than its declared {size} bytes"),
            ));
        }
        result?;
        // Whatever the visitor left unread is still checked: a bomb hides in the tail.
        std::io::copy(&mut counted, &mut std::io::sink())
            .map_err(|e| read_error(&entry.name, &e))?;
        if counted.overflowed {
            return Err(unsafe_entry(
                raw_name,
                &format!("decompresses to more than its declared {size} bytes"),
            ));
        }
        if counted.left != 0 {
            return Err(unsafe_entry(
                raw_name,
                &format!("holds fewer bytes than its declared {size}"),
            ));
        }
        Ok(())
    }

    /// Records a name, refusing duplicates (ignoring case) and names below a file.
    fn record(&mut self, name: &str, kind: EntryKind, raw_name: &[u8]) -> Result<(), ErrorKind> {
        let lower = name.to_lowercase();
        let mut end = 0;
        while let Some(slash) = lower[end..].find('/') {
            let parent = &lower[..end + slash];
            match self.seen.get(parent) {
                Some(Seen::File) => {
                    return Err(unsafe_entry(
                        raw_name,
                        &format!("lies below {:?}, which is a file", shown(parent)),
                    ));
                }
                Some(Seen::Dir { .. }) => {}
                None => {
                    self.seen
                        .insert(parent.to_owned(), Seen::Dir { explicit: false });
                }
            }
            end += slash + 1;
        }
        let duplicate = || {
            unsafe_entry(
                raw_name,
                "appears twice in the archive (names differing only in case count as the same)",
            )
        };
        match (self.seen.get(&lower), kind) {
            (None, EntryKind::File { .. }) => {
                self.seen.insert(lower, Seen::File);
                self.files.insert(name.to_owned());
            }
            (None, EntryKind::Dir) | (Some(Seen::Dir { explicit: false }), EntryKind::Dir) => {
                self.seen.insert(lower, Seen::Dir { explicit: true });
            }
            (Some(_), _) => return Err(duplicate()),
        }
        Ok(())
    }

    /// The manifest, parsed and checked against the archive's files.
    fn finish(self) -> Result<(PackageMeta, ScriptManifest), ErrorKind> {
        let bytes = self.manifest.ok_or(ErrorKind::Missing {
            format: FORMAT,
            what: "capstan-package.json at the archive root",
        })?;
        let manifest: ScriptManifest =
            serde_json::from_slice(&bytes).map_err(|e| ErrorKind::InvalidManifest {
                message: shown(&e.to_string()),
            })?;
        validate_manifest(&manifest, &self.files, self.limits)?;
        let mut meta = finish(
            PackageFormat::ScriptArchive,
            manifest.name.clone(),
            manifest.version.clone(),
            manifest.arch.clone(),
        );
        meta.platform = manifest.platform;
        meta.summary = manifest
            .description
            .as_deref()
            .and_then(|d| d.lines().next())
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        meta.suggested_detection = manifest.detection.clone().map(SuggestedDetection::Manifest);
        meta.manifest = Some(manifest.clone());
        Ok((meta, manifest))
    }
}

/// An entry's data, limited to its declared size; `overflowed` is set when the decoder has
/// more to give.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    left: u64,
    overflowed: bool,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                self.overflowed = true;
                return Err(std::io::Error::other(
                    "the entry is longer than its declared size",
                ));
            }
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Checks an entry name and returns it normalised, or `None` for the root (`.`, `./`).
fn check_name(raw: &[u8], limits: &ArchiveLimits) -> Result<Option<String>, ErrorKind> {
    if raw.len() > limits.max_name_bytes {
        return Err(unsafe_entry(
            raw,
            &format!("its name is longer than {} bytes", limits.max_name_bytes),
        ));
    }
    let name = std::str::from_utf8(raw).map_err(|_| unsafe_entry(raw, "its name is not UTF-8"))?;
    if name.is_empty() {
        return Err(unsafe_entry(raw, "its name is empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(unsafe_entry(raw, "its name holds a control character"));
    }
    if name.contains('\\') {
        return Err(unsafe_entry(
            raw,
            "its name holds a backslash, a Windows path separator",
        ));
    }
    if name.contains(':') {
        return Err(unsafe_entry(
            raw,
            "its name holds ':', a drive letter or an NTFS stream on Windows",
        ));
    }
    if name.starts_with('/') {
        return Err(unsafe_entry(raw, "its path is absolute"));
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    let mut parts = Vec::new();
    for part in trimmed.split('/') {
        match part {
            "" => return Err(unsafe_entry(raw, "its path has an empty component")),
            "." => {}
            ".." => return Err(unsafe_entry(raw, "its path climbs out with '..'")),
            _ if part.len() > limits.max_component_bytes => {
                return Err(unsafe_entry(
                    raw,
                    &format!(
                        "a component of its path is longer than {} bytes",
                        limits.max_component_bytes
                    ),
                ));
            }
            _ if part.ends_with(['.', ' ']) => {
                return Err(unsafe_entry(
                    raw,
                    "a component of its path ends with '.' or ' ', which Windows drops",
                ));
            }
            _ if is_windows_device(part) => {
                return Err(unsafe_entry(
                    raw,
                    "a component of its path is a Windows device name (CON, NUL, COM1, ...)",
                ));
            }
            _ => parts.push(part),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Names Windows maps to devices whatever the directory or extension (`nul.txt` included);
/// the agent on Windows would open the device instead of creating a file.
fn is_windows_device(part: &str) -> bool {
    let stem = part.split('.').next().unwrap_or(part).to_ascii_uppercase();
    matches!(
        stem.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || ((stem.starts_with("COM") || stem.starts_with("LPT"))
        && stem.len() == 4
        && stem.as_bytes()[3].is_ascii_digit()
        && stem.as_bytes()[3] != b'0')
}

fn validate_manifest(
    m: &ScriptManifest,
    files: &HashSet<String>,
    limits: &ArchiveLimits,
) -> Result<(), ErrorKind> {
    let invalid = |message: String| ErrorKind::InvalidManifest { message };
    let name_ok = m.name.len() <= MAX_NAME_BYTES
        && m.name
            .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && m.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._+-".contains(c));
    if !name_ok {
        return Err(invalid(format!(
            "name {:?} must be [a-z0-9][a-z0-9._+-]*, at most {MAX_NAME_BYTES} bytes",
            shown(&m.name)
        )));
    }
    let version_ok = !m.version.is_empty()
        && m.version.len() <= MAX_VERSION_BYTES
        && m.version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+-~:_".contains(c));
    if !version_ok {
        return Err(invalid(format!(
            "version {:?} must be letters, digits and '.+-~:_', at most {MAX_VERSION_BYTES} bytes",
            shown(&m.version)
        )));
    }
    if !ARCHES.contains(&m.arch.as_str()) {
        return Err(invalid(format!(
            "arch {:?} is not one of {}",
            shown(&m.arch),
            ARCHES.join(", ")
        )));
    }
    if m.description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_TEXT_BYTES)
    {
        return Err(invalid(format!(
            "description is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    let commands = std::iter::once(("install", &m.install))
        .chain(m.uninstall.as_ref().map(|u| ("uninstall", u)));
    for (which, command) in commands {
        if command.interpreter == ManifestInterpreter::Cmd && m.platform != Platform::Windows {
            return Err(invalid(format!(
                "{which}.interpreter cmd needs platform windows"
            )));
        }
        let script = check_name(command.script.as_bytes(), limits)
            .map_err(|e| invalid(format!("{which}.script: {e}")))?
            .ok_or_else(|| invalid(format!("{which}.script names the archive root")))?;
        if !files.contains(&script) {
            return Err(invalid(format!(
                "{which}.script {:?} is not a file in the archive",
                shown(&command.script)
            )));
        }
        if command.args.len() > MAX_ARGS {
            return Err(invalid(format!(
                "{which}.args has more than {MAX_ARGS} items"
            )));
        }
        if let Some(arg) = command
            .args
            .iter()
            .find(|a| a.len() > MAX_ARG_BYTES || a.contains('\0'))
        {
            return Err(invalid(format!(
                "{which}.args item {:?} is longer than {MAX_ARG_BYTES} bytes or holds NUL",
                shown(arg)
            )));
        }
    }
    if let Some(detection) = &m.detection {
        let typed = detection
            .as_object()
            .and_then(|o| o.get("type"))
            .is_some_and(serde_json::Value::is_string);
        if !typed {
            return Err(invalid(
                "detection must be a detection rule object with a \"type\"".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Walks a zip archive's entries in central-directory order.
fn walk_zip<R: Read + Seek>(
    reader: R,
    walker: &mut Walker<'_>,
    visit: &mut Visit<'_>,
) -> Result<(), ErrorKind> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| malformed(format!("zip: {e}")))?;
    if zip.len() > walker.limits.max_entries {
        return Err(ErrorKind::TooLarge {
            format: FORMAT,
            what: "number of entries",
            limit: walker.limits.max_entries as u64,
        });
    }
    for index in 0..zip.len() {
        // Inspect without decompressing, so refused entries never reach a decoder.
        let (name, kind, size) = {
            let file = zip
                .by_index_raw(index)
                .map_err(|e| malformed(format!("zip entry {index}: {e}")))?;
            let name = file.name_raw().to_vec();
            let mode = file.unix_mode();
            if file.is_symlink() {
                return Err(unsafe_entry(
                    &name,
                    "is a symbolic link (links are refused)",
                ));
            }
            let file_type = mode.unwrap_or(0) & 0o170_000;
            if !matches!(file_type, 0 | 0o100_000 | 0o040_000) {
                return Err(unsafe_entry(
                    &name,
                    "is a device file, FIFO or socket (only files and directories are allowed)",
                ));
            }
            if file.encrypted() {
                return Err(unsafe_entry(&name, "is encrypted"));
            }
            if !matches!(
                file.compression(),
                zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
            ) {
                return Err(ErrorKind::UnsupportedCompression {
                    format: FORMAT,
                    member: shown(&String::from_utf8_lossy(&name).escape_debug().to_string()),
                });
            }
            let kind = if file.is_dir() || file_type == 0o040_000 {
                EntryKind::Dir
            } else {
                EntryKind::File {
                    executable: mode.is_some_and(|m| m & 0o111 != 0),
                }
            };
            (name, kind, file.size())
        };
        let mut file = zip
            .by_index(index)
            .map_err(|e| malformed(format!("zip entry {index}: {e}")))?;
        walker.entry(&name, kind, size, &mut file, visit)?;
    }
    Ok(())
}

/// Walks a gzip-compressed tar archive.
fn walk_tar_gz<R: Read>(
    reader: R,
    walker: &mut Walker<'_>,
    visit: &mut Visit<'_>,
) -> Result<(), ErrorKind> {
    // Concatenated gzip members are one stream, as gzip -d reads them.
    let gz = flate2::read::MultiGzDecoder::new(reader);
    let mut tar = crate::tarstream::TarReader::new(gz, FORMAT);
    while let Some(header) = tar.next_entry()? {
        use crate::tarstream::TarKind;
        let kind = match header.kind {
            TarKind::File => EntryKind::File {
                executable: header.mode & 0o111 != 0,
            },
            TarKind::Dir => EntryKind::Dir,
            TarKind::Symlink => {
                return Err(unsafe_entry(
                    &header.name,
                    "is a symbolic link (links are refused)",
                ));
            }
            TarKind::Hardlink => {
                return Err(unsafe_entry(
                    &header.name,
                    "is a hard link (links are refused)",
                ));
            }
            TarKind::Special(what) => {
                return Err(unsafe_entry(
                    &header.name,
                    &format!("is {what} (only files and directories are allowed)"),
                ));
            }
            TarKind::Other(flag) => {
                return Err(unsafe_entry(
                    &header.name,
                    &format!(
                        "has tar entry type {:?}, not a file or directory",
                        char::from(flag)
                    ),
                ));
            }
        };
        let mut data = tar.data();
        walker.entry(&header.name, kind, header.size, &mut data, visit)?;
    }
    Ok(())
}

/// Walks an archive whose magic says zip or gzip.
fn walk<I: Input>(
    mut input: I,
    walker: &mut Walker<'_>,
    visit: &mut Visit<'_>,
) -> Result<(), ErrorKind> {
    let mut magic = [0u8; 4];
    if input.len() < 4 {
        return Err(ErrorKind::Truncated {
            format: FORMAT,
            what: "magic number",
            offset: 0,
            needed: 4,
            available: input.len(),
        });
    }
    input.read_at(0, &mut magic).map_err(|e| ErrorKind::Io {
        message: format!("reading the magic number: {e}"),
    })?;
    let reader = BufReader::with_capacity(64 * 1024, InputReader::new(input));
    if magic.starts_with(ZIP_MAGIC) {
        walk_zip(reader, walker, visit)
    } else if magic.starts_with(GZIP_MAGIC) {
        walk_tar_gz(reader, walker, visit)
    } else {
        Err(ErrorKind::UnknownFormat {
            magic: magic.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

pub(crate) fn parse<I: Input>(input: I) -> Result<PackageMeta, ErrorKind> {
    let limits = ArchiveLimits::default();
    let mut walker = Walker::new(&limits);
    walk(input, &mut walker, &mut |_, _| Ok(()))?;
    walker.finish().map(|(meta, _)| meta)
}

/// Unpacks a script archive into `dest`, which must be an existing, empty directory, after the
/// checks [`crate::parse`] applies (in the same walk). Only regular files and directories are
/// created; files are opened with `create_new`, so nothing existing is overwritten and no
/// symlink is followed; on Unix, files get mode 0755 when the archive marks them executable
/// and 0644 otherwise, directories 0755. On any error, everything written below `dest` is
/// removed again.
pub fn extract_archive(
    archive: &Path,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<ExtractedArchive, MetaError> {
    let label = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| archive.display().to_string());
    extract_kind(archive, dest, limits).map_err(|kind| MetaError::new(&label, kind))
}

fn extract_kind(
    archive: &Path,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<ExtractedArchive, ErrorKind> {
    let dest_error = |path: &Path, message: String| ErrorKind::Destination {
        path: path.display().to_string(),
        message,
    };
    let meta = fs::metadata(dest).map_err(|e| dest_error(dest, e.to_string()))?;
    if !meta.is_dir() {
        return Err(dest_error(dest, "not a directory".to_owned()));
    }
    let mut listing = fs::read_dir(dest).map_err(|e| dest_error(dest, e.to_string()))?;
    if listing.next().is_some() {
        return Err(dest_error(dest, "the directory is not empty".to_owned()));
    }
    let file = fs::File::open(archive).map_err(|e| ErrorKind::Io {
        message: format!("opening {}: {e}", archive.display()),
    })?;
    let input = SeekInput::new(file).map_err(|e| ErrorKind::Io {
        message: format!("finding the file length: {e}"),
    })?;

    let mut writer = Writer {
        dest,
        dirs: HashSet::new(),
        files: 0,
        bytes: 0,
    };
    let mut walker = Walker::new(limits);
    let result = walk(input, &mut walker, &mut |entry, data| {
        writer.write(entry, data)
    })
    .and_then(|()| walker.finish());
    match result {
        Ok((meta, manifest)) => Ok(ExtractedArchive {
            meta,
            manifest,
            files: writer.files,
            bytes: writer.bytes,
        }),
        Err(kind) => {
            clear(dest);
            Err(kind)
        }
    }
}

/// Removes everything below `dest` (which was empty before extraction began). Best effort: the
/// extraction error is what the caller needs to see.
fn clear(dest: &Path) {
    if let Ok(listing) = fs::read_dir(dest) {
        for child in listing.flatten() {
            let path = child.path();
            // `file_type` does not follow symlinks, so a planted link is removed, not followed.
            let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
            let _ = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// Creates the entries of one extraction.
struct Writer<'a> {
    dest: &'a Path,
    /// Directories known to exist (created by us), relative names.
    dirs: HashSet<String>,
    files: usize,
    bytes: u64,
}

impl Writer<'_> {
    fn write(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), ErrorKind> {
        match entry.kind {
            EntryKind::Dir => self.ensure_dir(&entry.name),
            EntryKind::File { executable } => {
                if let Some((parent, _)) = entry.name.rsplit_once('/') {
                    self.ensure_dir(parent)?;
                }
                let path = self.path(&entry.name);
                let mode = if executable { 0o755 } else { 0o644 };
                let mut file = create_new(&path, mode)?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = data
                        .read(&mut buf)
                        .map_err(|e| read_error(&entry.name, &e))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&buf[..n])
                        .map_err(|e| write_error(&path, &e))?;
                    self.bytes += n as u64;
                }
                file.flush().map_err(|e| write_error(&path, &e))?;
                set_mode(&path, mode)?;
                self.files += 1;
                Ok(())
            }
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        let mut path = self.dest.to_path_buf();
        path.extend(name.split('/'));
        path
    }

    /// Creates a directory and its parents, refusing anything in the way that is not a real
    /// directory (a symlink planted by someone else included).
    fn ensure_dir(&mut self, name: &str) -> Result<(), ErrorKind> {
        let mut end = 0;
        loop {
            let next = name[end..].find('/').map(|i| end + i);
            let prefix = &name[..next.unwrap_or(name.len())];
            if !self.dirs.contains(prefix) {
                let path = self.path(prefix);
                match fs::create_dir(&path) {
                    Ok(()) => set_mode(&path, 0o755)?,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let real_dir =
                            fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_dir());
                        if !real_dir {
                            return Err(ErrorKind::Destination {
                                path: path.display().to_string(),
                                message: "exists and is not a directory".to_owned(),
                            });
                        }
                    }
                    Err(e) => return Err(write_error(&path, &e)),
                }
                self.dirs.insert(prefix.to_owned());
            }
            match next {
                Some(i) => end = i + 1,
                None => return Ok(()),
            }
        }
    }
}

#[cfg(unix)]
fn create_new(path: &Path, mode: u32) -> Result<fs::File, ErrorKind> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| write_error(path, &e))
}

#[cfg(not(unix))]
fn create_new(path: &Path, _mode: u32) -> Result<fs::File, ErrorKind> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| write_error(path, &e))
}

/// Sets the exact mode, whatever the umask took away.
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), ErrorKind> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| write_error(path, &e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), ErrorKind> {
    Ok(())
}

fn unsafe_entry(raw_name: &[u8], reason: &str) -> ErrorKind {
    ErrorKind::UnsafeEntry {
        format: FORMAT,
        name: shown(&String::from_utf8_lossy(raw_name).escape_debug().to_string()),
        reason: reason.to_owned(),
    }
}

fn malformed(message: String) -> ErrorKind {
    ErrorKind::Malformed {
        format: FORMAT,
        message: shown(&message),
    }
}

fn read_error(name: &str, e: &std::io::Error) -> ErrorKind {
    ErrorKind::Decompress {
        format: FORMAT,
        member: shown(name),
        message: shown(&e.to_string()),
    }
}

fn write_error(path: &Path, e: &std::io::Error) -> ErrorKind {
    ErrorKind::Destination {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}
