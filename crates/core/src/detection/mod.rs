//! Detection rules: whether a software version is present on a node. [`validate`] checks a
//! rule as an operator wrote it (the server before storing, the agent before evaluating);
//! [`evaluate`] walks the AND/OR tree against a [`Probe`] — the facts an operating system
//! provides, implemented by the agent's platform crate and by a table in tests — so every
//! decision here is a pure function of those facts.
//!
//! Semantics, decided here once for every platform:
//! - Three-valued (Kleene) logic. A condition that cannot be evaluated (unsupported on this
//!   OS, a package manager that is missing, a probe failure, a timed-out script) is *unknown*,
//!   never "absent": `all` is false if any child is false, else unknown if any child is
//!   unknown, else true; `any` is true if any child is true, else unknown if any is unknown,
//!   else false. An unknown rule is an [`DetectionError`], so nothing is installed on a guess.
//! - Short-circuit: `all` stops at the first false child and `any` at the first true one.
//!   Children are evaluated in the order written, except that children containing a script are
//!   evaluated after the others (the result is the same under Kleene logic, and a cheap
//!   condition often decides without running anything).
//! - Versions compare in the source's semantics through [`crate::version`]: dpkg, rpm and
//!   pacman by their own rules (rpm and pacman as constraints: `>= 1.0` ignores the installed
//!   release), MSI, registry, file versions, winget and choco as Windows dotted versions
//!   (numeric parts, missing parts are 0 so `1.2 == 1.2.0.0`; a version with a non-numeric part
//!   falls back to the generic rule — digit and letter runs, letters below digits, `-pre` below
//!   the release — which agrees with the numeric rule on numeric versions, so the order stays
//!   total and nothing panics).
//! - MSI product codes must be written `{GUID}` with braces (the form Windows shows in the
//!   registry and `msiexec` takes); either letter case is accepted and the probe receives the
//!   upper-case form. Registry `equals` compares Unicode-case-insensitively, without trimming.
//! - A script is detected when it exits 0 and writes something to stdout (as Intune does); a
//!   non-zero exit or a death by signal is "no", a timeout is unknown.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use capstan_proto::jobs::Interpreter;
use capstan_proto::software::{
    Detection, DetectionManager, DetectionOutcome, RegistryCheck, RegistryHive, VersionCheck,
    VersionOp, limits,
};

use crate::jobs::{Problem, problem};
use crate::version::{self, Scheme};

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------------------------
// The probe: facts an operating system provides
// ---------------------------------------------------------------------------------------------

/// Why a probe could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The condition type does not exist on this OS (a registry condition on Linux).
    #[error("{0} is not supported on this operating system")]
    Unsupported(String),
    /// The fact could not be read (a package manager missing, a command failing).
    #[error("{0}")]
    Failed(String),
}

/// A registry key or value that exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryData {
    /// The value's data as a string (numbers in decimal, multi-strings joined by `\n`);
    /// `None` for a key, or for a value without a string form (binary).
    pub data: Option<String>,
}

/// A service that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceState {
    pub running: bool,
}

/// How a detection script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptResult {
    /// `None` when killed by a signal (or by the timeout).
    pub exit_code: Option<i32>,
    /// Whether anything but whitespace was written to stdout.
    pub stdout_non_empty: bool,
    pub timed_out: bool,
}

/// The facts detection needs. `Ok(None)` / `Ok(false)` mean "not there"; an error means the
/// fact could not be established. Synchronous: the agent calls it from a blocking task.
pub trait Probe {
    /// The installed version of an MSI product (`{GUID}`, upper case), `None` if not
    /// installed.
    fn msi_product_version(&mut self, product_code: &str) -> Result<Option<String>, ProbeError>;
    /// A registry key (`value` absent) or value (`Some("")` is the key's default value).
    fn registry(
        &mut self,
        hive: RegistryHive,
        key: &str,
        value: Option<&str>,
        wow64_32: bool,
    ) -> Result<Option<RegistryData>, ProbeError>;
    fn file_exists(&mut self, path: &str) -> Result<bool, ProbeError>;
    /// The version resource of a file; `None` when the file is absent or has none.
    fn file_version(&mut self, path: &str) -> Result<Option<String>, ProbeError>;
    /// Lowercase hex SHA-256 of a file; `None` when it is absent (or not a regular file).
    fn file_sha256(&mut self, path: &str) -> Result<Option<String>, ProbeError>;
    fn service(&mut self, name: &str) -> Result<Option<ServiceState>, ProbeError>;
    /// The installed version of a package, `None` when the manager does not have it
    /// installed. A manager missing from the node is an error, not `None`.
    fn package(
        &mut self,
        manager: DetectionManager,
        name: &str,
    ) -> Result<Option<String>, ProbeError>;
    fn script(
        &mut self,
        interpreter: Interpreter,
        body: &str,
        timeout: Duration,
    ) -> Result<ScriptResult, ProbeError>;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Longest file path accepted (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest registry key path or value name accepted.
pub const MAX_REGISTRY_BYTES: usize = limits::MAX_TEXT_BYTES;
/// Detection script timeout bounds, seconds.
pub const MAX_SCRIPT_TIMEOUT_SECS: u64 = 600;

/// Every problem of a detection rule (empty when it is acceptable). Paths are JSON pointers
/// relative to the rule (`/rules/0/path`); callers prefix them with where the rule sits.
pub fn validate(d: &Detection) -> Vec<Problem> {
    let mut out = Vec::new();
    let nodes = count_nodes(d);
    if nodes > limits::MAX_DETECTION_NODES {
        out.push(problem(
            "",
            format!(
                "the rule has {nodes} nodes (groups and conditions); the limit is {}",
                limits::MAX_DETECTION_NODES
            ),
        ));
    }
    check_node(d, "", 1, &mut out);
    out
}

fn count_nodes(d: &Detection) -> usize {
    match d {
        Detection::All { rules } | Detection::Any { rules } => {
            1 + rules.iter().map(count_nodes).sum::<usize>()
        }
        _ => 1,
    }
}

fn check_node(d: &Detection, path: &str, depth: usize, out: &mut Vec<Problem>) {
    if depth > limits::MAX_DETECTION_DEPTH {
        out.push(problem(
            path,
            format!(
                "groups are nested too deeply; the limit is {} levels",
                limits::MAX_DETECTION_DEPTH
            ),
        ));
        // Nothing below is looked at: one problem says it all.
        return;
    }
    match d {
        Detection::All { rules } | Detection::Any { rules } => {
            if rules.is_empty() {
                out.push(problem(
                    format!("{path}/rules"),
                    "a group needs at least one rule",
                ));
            }
            for (i, r) in rules.iter().enumerate() {
                check_node(r, &format!("{path}/rules/{i}"), depth + 1, out);
            }
        }
        Detection::MsiProduct {
            product_code,
            version,
        } => {
            if normalise_product_code(product_code).is_none() {
                out.push(problem(
                    format!("{path}/product_code"),
                    "an MSI product code is a GUID in braces: {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}",
                ));
            }
            if let Some(v) = version {
                check_version(&format!("{path}/version/version"), &v.version, out);
            }
        }
        Detection::Registry {
            key, value, check, ..
        } => {
            check_registry_key(&format!("{path}/key"), key, out);
            if let Some(v) = value {
                check_text(
                    &format!("{path}/value"),
                    "a registry value name",
                    v,
                    MAX_REGISTRY_BYTES,
                    out,
                );
            }
            match check {
                RegistryCheck::Exists => {}
                RegistryCheck::Equals { data } => {
                    if data.len() > limits::MAX_TEXT_BYTES {
                        out.push(problem(
                            format!("{path}/check/data"),
                            format!("longer than {} bytes", limits::MAX_TEXT_BYTES),
                        ));
                    } else if data.contains('\0') {
                        out.push(problem(format!("{path}/check/data"), "contains a NUL byte"));
                    }
                }
                RegistryCheck::Version { version, .. } => {
                    check_version(&format!("{path}/check/version"), version, out)
                }
            }
            if value.is_none() && !matches!(check, RegistryCheck::Exists) {
                out.push(problem(
                    format!("{path}/value"),
                    "comparing data needs a value name (\"\" for the key's default value)",
                ));
            }
        }
        Detection::FileExists { path: p } => check_path(&format!("{path}/path"), p, out),
        Detection::FileVersion { path: p, check } => {
            check_path(&format!("{path}/path"), p, out);
            check_version(&format!("{path}/check/version"), &check.version, out);
        }
        Detection::FileSha256 { path: p, sha256 } => {
            check_path(&format!("{path}/path"), p, out);
            if !capstan_proto::depot::is_sha256_hex(sha256) {
                out.push(problem(
                    format!("{path}/sha256"),
                    "a SHA-256 is 64 lowercase hexadecimal digits",
                ));
            }
        }
        Detection::ServiceExists { name } | Detection::ServiceRunning { name } => {
            check_service_name(&format!("{path}/name"), name, out)
        }
        Detection::Package {
            name,
            version,
            manager: _,
        } => {
            check_package_name(&format!("{path}/name"), name, out);
            if let Some(v) = version {
                // Every manager's order is total over all strings, so any non-empty version
                // can be compared; only emptiness and size are refused.
                check_version(&format!("{path}/version/version"), &v.version, out);
            }
        }
        Detection::Script {
            body, timeout_secs, ..
        } => {
            let p = format!("{path}/body");
            if body.trim().is_empty() {
                out.push(problem(p, "the script is empty"));
            } else if body.len() > limits::MAX_DETECTION_SCRIPT_BYTES {
                out.push(problem(
                    p,
                    format!(
                        "the script is {} bytes; the limit is {} bytes",
                        body.len(),
                        limits::MAX_DETECTION_SCRIPT_BYTES
                    ),
                ));
            } else if body.contains('\0') {
                out.push(problem(p, "the script contains a NUL byte"));
            }
            if !(1..=MAX_SCRIPT_TIMEOUT_SECS).contains(timeout_secs) {
                out.push(problem(
                    format!("{path}/timeout_secs"),
                    format!("must be between 1 and {MAX_SCRIPT_TIMEOUT_SECS} seconds"),
                ));
            }
        }
    }
}

/// `{GUID}` in upper case, or `None` when `s` is not a braced GUID.
pub fn normalise_product_code(s: &str) -> Option<String> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    let groups: Vec<&str> = inner.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit()));
    shape_ok.then(|| s.to_ascii_uppercase())
}

/// An absolute path on Linux (`/…`) or Windows (`C:\…`, `%VAR%\…`, `\\server\share\…`).
fn is_absolute_path(p: &str) -> bool {
    let b = p.as_bytes();
    if p.starts_with('/') {
        return true;
    }
    // Drive letter followed by a separator: `C:foo` is relative to the drive's current dir.
    if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/') {
        return true;
    }
    if let Some(rest) = p.strip_prefix(r"\\") {
        let mut parts = rest.split('\\');
        return matches!((parts.next(), parts.next()), (Some(server), Some(share))
            if !server.is_empty() && !share.is_empty());
    }
    if let Some(rest) = p.strip_prefix('%')
        && let Some((var, after)) = rest.split_once('%')
    {
        let var_ok = !var.is_empty()
            && var
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'(' | b')'));
        return var_ok && (after.is_empty() || after.starts_with(['\\', '/']));
    }
    false
}

fn check_path(path: &str, p: &str, out: &mut Vec<Problem>) {
    if p.len() > MAX_PATH_BYTES {
        out.push(problem(
            path,
            format!("a path is at most {MAX_PATH_BYTES} bytes"),
        ));
    } else if p.chars().any(char::is_control) {
        out.push(problem(
            path,
            "a path cannot contain control characters (or NUL)",
        ));
    } else if !is_absolute_path(p) {
        out.push(problem(
            path,
            r"a path must be absolute: /opt/app, C:\Program Files\App, %ProgramFiles%\App or \\server\share\app",
        ));
    }
}

fn check_text(path: &str, what: &str, s: &str, max: usize, out: &mut Vec<Problem>) -> bool {
    if s.len() > max {
        out.push(problem(path, format!("{what} is at most {max} bytes")));
        false
    } else if s.chars().any(char::is_control) {
        out.push(problem(
            path,
            format!("{what} cannot contain control characters"),
        ));
        false
    } else {
        true
    }
}

fn check_version(path: &str, v: &str, out: &mut Vec<Problem>) {
    if v.trim().is_empty() {
        out.push(problem(path, "a version cannot be empty"));
    } else {
        check_text(path, "a version", v, limits::MAX_VERSION_BYTES, out);
    }
}

fn check_registry_key(path: &str, key: &str, out: &mut Vec<Problem>) {
    if key.trim().is_empty() {
        out.push(problem(path, "a registry key cannot be empty"));
    } else if key.starts_with('\\') {
        out.push(problem(
            path,
            r"a registry key is the path below the hive, without a leading \ (SOFTWARE\Vendor\App)",
        ));
    } else {
        check_text(path, "a registry key", key, MAX_REGISTRY_BYTES, out);
    }
}

fn check_service_name(path: &str, name: &str, out: &mut Vec<Problem>) {
    if name.is_empty() {
        out.push(problem(path, "a service name cannot be empty"));
    } else if !check_text(path, "a service name", name, limits::MAX_NAME_BYTES, out) {
    } else if name.starts_with('-')
        || name.contains(['/', '\\'])
        || name == "."
        || name == ".."
        || name.contains(char::is_whitespace)
    {
        // The name becomes a file name (/etc/init.d/NAME) and an argument: nothing that could
        // leave the directory or be read as an option.
        out.push(problem(
            path,
            "a service name cannot contain / \\ or whitespace, start with -, or be . or ..",
        ));
    }
}

fn check_package_name(path: &str, name: &str, out: &mut Vec<Problem>) {
    if name.is_empty() {
        out.push(problem(path, "a package name cannot be empty"));
    } else if !check_text(path, "a package name", name, limits::MAX_NAME_BYTES, out) {
    } else if name.starts_with('-') || name.contains(char::is_whitespace) {
        out.push(problem(
            path,
            "a package name cannot contain whitespace or start with -",
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Why a rule has no yes/no answer on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectionError {
    /// The rule does not pass [`validate`] (the agent never evaluates such a rule: an empty
    /// `all` would otherwise be vacuously true).
    #[error("invalid detection rule: {}", describe_problems(.0))]
    Invalid(Vec<Problem>),
    /// Some condition that decides the result could not be evaluated.
    #[error("detection could not be evaluated: {}", .reasons.join("; "))]
    Indeterminate {
        /// One line per condition that failed, in evaluation order.
        reasons: Vec<String>,
        /// Every line of what was evaluated, as in [`DetectionOutcome::explanation`].
        explanation: Vec<String>,
    },
}

fn describe_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.path.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.path, p.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Kleene truth value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Yes,
    No,
    Unknown,
}

impl fmt::Display for Truth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Truth::Yes => "yes",
            Truth::No => "no",
            Truth::Unknown => "unknown",
        })
    }
}

struct Evaluator<'p> {
    probe: &'p mut dyn Probe,
    explanation: Vec<String>,
    reasons: Vec<String>,
}

/// Evaluates a rule against a node's facts. `Ok` carries the answer and one explanation line
/// per condition evaluated (nested ones indented under a line for their group); conditions
/// skipped by short-circuiting have no line.
pub fn evaluate(d: &Detection, probe: &mut dyn Probe) -> Result<DetectionOutcome, DetectionError> {
    let problems = validate(d);
    if !problems.is_empty() {
        return Err(DetectionError::Invalid(problems));
    }
    let mut ev = Evaluator {
        probe,
        explanation: Vec::new(),
        reasons: Vec::new(),
    };
    match ev.node(d, 0) {
        Truth::Yes => Ok(DetectionOutcome {
            detected: true,
            explanation: ev.explanation,
        }),
        Truth::No => Ok(DetectionOutcome {
            detected: false,
            explanation: ev.explanation,
        }),
        Truth::Unknown => Err(DetectionError::Indeterminate {
            reasons: ev.reasons,
            explanation: ev.explanation,
        }),
    }
}

fn contains_script(d: &Detection) -> bool {
    match d {
        Detection::All { rules } | Detection::Any { rules } => rules.iter().any(contains_script),
        Detection::Script { .. } => true,
        _ => false,
    }
}

fn op_str(op: VersionOp) -> &'static str {
    match op {
        VersionOp::Eq => "=",
        VersionOp::Ne => "!=",
        VersionOp::Lt => "<",
        VersionOp::Lte => "<=",
        VersionOp::Gt => ">",
        VersionOp::Gte => ">=",
    }
}

fn op_holds(op: VersionOp, ord: Ordering) -> bool {
    match op {
        VersionOp::Eq => ord == Ordering::Equal,
        VersionOp::Ne => ord != Ordering::Equal,
        VersionOp::Lt => ord == Ordering::Less,
        VersionOp::Lte => ord != Ordering::Greater,
        VersionOp::Gt => ord == Ordering::Greater,
        VersionOp::Gte => ord != Ordering::Less,
    }
}

/// The version scheme of each package database.
pub fn manager_scheme(m: DetectionManager) -> Scheme {
    match m {
        DetectionManager::Dpkg => Scheme::Dpkg,
        DetectionManager::Rpm => Scheme::Rpm,
        DetectionManager::Pacman => Scheme::Pacman,
        DetectionManager::Winget | DetectionManager::Choco => Scheme::Windows,
    }
}

fn hive_str(h: RegistryHive) -> &'static str {
    match h {
        RegistryHive::Hklm => "HKLM",
        RegistryHive::Hkcu => "HKCU",
        RegistryHive::Hkcr => "HKCR",
        RegistryHive::Hku => "HKU",
    }
}

/// `found op wanted` and whether it holds in `scheme`.
fn version_line(scheme: Scheme, found: &str, check: (VersionOp, &str)) -> (String, Truth) {
    let (op, wanted) = check;
    let holds = op_holds(op, version::compare_for_constraint(scheme, found, wanted));
    let t = if holds { Truth::Yes } else { Truth::No };
    (format!("{found} {} {wanted}", op_str(op)), t)
}

/// The result of an optional version check on something found at `found`.
fn present_with_version(
    scheme: Scheme,
    found: &str,
    check: Option<&VersionCheck>,
) -> (String, Truth) {
    match check {
        Some(c) => version_line(scheme, found, (c.op, &c.version)),
        None => (format!("{found} installed"), Truth::Yes),
    }
}

impl Evaluator<'_> {
    fn line(&mut self, depth: usize, text: String) {
        self.explanation
            .push(format!("{}{text}", "  ".repeat(depth)));
    }

    fn failed(&mut self, depth: usize, subject: &str, e: &ProbeError) -> Truth {
        self.line(depth, format!("{subject}: {e} → unknown"));
        self.reasons.push(format!("{subject}: {e}"));
        Truth::Unknown
    }

    fn node(&mut self, d: &Detection, depth: usize) -> Truth {
        match d {
            Detection::All { rules } => self.group(rules, true, depth),
            Detection::Any { rules } => self.group(rules, false, depth),
            _ => self.condition(d, depth),
        }
    }

    fn group(&mut self, rules: &[Detection], all: bool, depth: usize) -> Truth {
        // The group's line goes before its children's, filled in once the result is known.
        let at = self.explanation.len();
        self.explanation.push(String::new());
        let mut order: Vec<&Detection> = rules.iter().collect();
        order.sort_by_key(|r| contains_script(r));
        let decisive = if all { Truth::No } else { Truth::Yes };
        let mut unknown = false;
        let mut result = None;
        let mut evaluated = 0;
        for r in order {
            evaluated += 1;
            match self.node(r, depth + 1) {
                t if t == decisive => {
                    result = Some(t);
                    break;
                }
                Truth::Unknown => unknown = true,
                _ => {}
            }
        }
        let result = result.unwrap_or(if unknown {
            Truth::Unknown
        } else if all {
            Truth::Yes
        } else {
            Truth::No
        });
        let skipped = rules.len() - evaluated;
        let skipped = if skipped > 0 {
            format!(", {skipped} not evaluated")
        } else {
            String::new()
        };
        let name = if all { "all" } else { "any" };
        self.explanation[at] = format!(
            "{}{name} of {}{skipped} → {result}",
            "  ".repeat(depth),
            rules.len()
        );
        result
    }

    fn condition(&mut self, d: &Detection, depth: usize) -> Truth {
        match d {
            Detection::All { .. } | Detection::Any { .. } => self.node(d, depth),
            Detection::MsiProduct {
                product_code,
                version,
            } => {
                // Validation guarantees the shape; fall back to the text as written.
                let code =
                    normalise_product_code(product_code).unwrap_or_else(|| product_code.clone());
                let subject = format!("msi {code}");
                match self.probe.msi_product_version(&code) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(None) => self.answer(depth, &subject, "not installed".into(), Truth::No),
                    Ok(Some(found)) => {
                        let (text, t) =
                            present_with_version(Scheme::Windows, &found, version.as_ref());
                        self.answer(depth, &subject, text, t)
                    }
                }
            }
            Detection::Registry {
                hive,
                key,
                value,
                check,
                wow64_32,
            } => {
                let mut subject = format!("registry {}\\{key}", hive_str(*hive));
                if let Some(v) = value {
                    subject.push_str(&format!(" [{v}]"));
                }
                if *wow64_32 {
                    subject.push_str(" (32-bit view)");
                }
                match self.probe.registry(*hive, key, value.as_deref(), *wow64_32) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(None) => self.answer(depth, &subject, "absent".into(), Truth::No),
                    Ok(Some(found)) => {
                        let (text, t) = registry_check(check, found.data.as_deref());
                        self.answer(depth, &subject, text, t)
                    }
                }
            }
            Detection::FileExists { path } => {
                let subject = format!("file {path}");
                match self.probe.file_exists(path) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(true) => self.answer(depth, &subject, "present".into(), Truth::Yes),
                    Ok(false) => self.answer(depth, &subject, "absent".into(), Truth::No),
                }
            }
            Detection::FileVersion { path, check } => {
                let subject = format!("file version {path}");
                match self.probe.file_version(path) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(None) => self.answer(
                        depth,
                        &subject,
                        "absent or without a version".into(),
                        Truth::No,
                    ),
                    Ok(Some(found)) => {
                        let (text, t) =
                            version_line(Scheme::Windows, &found, (check.op, &check.version));
                        self.answer(depth, &subject, text, t)
                    }
                }
            }
            Detection::FileSha256 { path, sha256 } => {
                let subject = format!("sha256 {path}");
                match self.probe.file_sha256(path) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(None) => self.answer(depth, &subject, "absent".into(), Truth::No),
                    Ok(Some(found)) if found.eq_ignore_ascii_case(sha256) => {
                        self.answer(depth, &subject, "matches".into(), Truth::Yes)
                    }
                    Ok(Some(found)) => {
                        let short: String = found.chars().take(12).collect();
                        self.answer(depth, &subject, format!("differs ({short}…)"), Truth::No)
                    }
                }
            }
            Detection::ServiceExists { name } => {
                let subject = format!("service {name}");
                match self.probe.service(name) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(None) => self.answer(depth, &subject, "absent".into(), Truth::No),
                    Ok(Some(_)) => self.answer(depth, &subject, "exists".into(), Truth::Yes),
                }
            }
            Detection::ServiceRunning { name } => {
                let subject = format!("service {name}");
                match self.probe.service(name) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(None) => self.answer(depth, &subject, "absent".into(), Truth::No),
                    Ok(Some(s)) if s.running => {
                        self.answer(depth, &subject, "running".into(), Truth::Yes)
                    }
                    Ok(Some(_)) => self.answer(depth, &subject, "not running".into(), Truth::No),
                }
            }
            Detection::Package {
                manager,
                name,
                version,
            } => {
                let subject = format!("{} {name}", manager.as_str());
                match self.probe.package(*manager, name) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(None) => self.answer(depth, &subject, "not installed".into(), Truth::No),
                    Ok(Some(found)) => {
                        let (text, t) = present_with_version(
                            manager_scheme(*manager),
                            &found,
                            version.as_ref(),
                        );
                        self.answer(depth, &subject, text, t)
                    }
                }
            }
            Detection::Script {
                interpreter,
                body,
                timeout_secs,
            } => {
                let subject = format!("script ({})", interpreter.as_str());
                let timeout = Duration::from_secs(*timeout_secs);
                match self.probe.script(*interpreter, body, timeout) {
                    Err(e) => self.failed(depth, &subject, &e),
                    Ok(r) if r.timed_out => self.failed(
                        depth,
                        &subject,
                        &ProbeError::Failed(format!("timed out after {timeout_secs} s")),
                    ),
                    Ok(r) => {
                        let (text, t) = match (r.exit_code, r.stdout_non_empty) {
                            (Some(0), true) => ("exit 0 with output".to_string(), Truth::Yes),
                            (Some(0), false) => ("exit 0 without output".to_string(), Truth::No),
                            (Some(code), _) => (format!("exit {code}"), Truth::No),
                            (None, _) => ("killed by a signal".to_string(), Truth::No),
                        };
                        self.answer(depth, &subject, text, t)
                    }
                }
            }
        }
    }

    fn answer(&mut self, depth: usize, subject: &str, text: String, t: Truth) -> Truth {
        self.line(depth, format!("{subject}: {text} → {t}"));
        t
    }
}

fn registry_check(check: &RegistryCheck, data: Option<&str>) -> (String, Truth) {
    match (check, data) {
        (RegistryCheck::Exists, _) => ("present".into(), Truth::Yes),
        (RegistryCheck::Equals { .. } | RegistryCheck::Version { .. }, None) => {
            ("present without string data".into(), Truth::No)
        }
        (RegistryCheck::Equals { data: wanted }, Some(found)) => {
            let t = if found.to_lowercase() == wanted.to_lowercase() {
                Truth::Yes
            } else {
                Truth::No
            };
            let verb = if t == Truth::Yes {
                "equals"
            } else {
                "differs from"
            };
            (format!("{found:?} {verb} {wanted:?}"), t)
        }
        (RegistryCheck::Version { op, version }, Some(found)) => {
            version_line(Scheme::Windows, found, (*op, version))
        }
    }
}
