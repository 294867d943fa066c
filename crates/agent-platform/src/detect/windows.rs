//! The Windows probe. Every piece that interprets what Windows reports — `reg query`, `sc
//! query`, `winget list` and `choco list` output, MSI's packed version DWORD, `%VAR%` expansion
//! — is a portable function tested on any platform; [`WindowsProbe`] only runs the programs.
//! It is compiled in tests too (it is std code), so it stays type-checked on machines that
//! cannot build for Windows; it is exported only on Windows.
//!
//! Decisions (not verified on a Windows machine):
//! - The registry is read with `reg.exe query KEY (/v NAME | /ve) /reg:64|/reg:32`, like the
//!   inventory collectors. reg.exe exits 1 both for "not found" and for "access denied" and
//!   its messages are localised, so exit 1 reads as absent; the agent runs as SYSTEM, which
//!   can read every hive a rule names.
//! - MSI products: the machine-wide Uninstall key `{CODE}` in the 64-bit, then the 32-bit view;
//!   `DisplayVersion`, else the packed `Version` DWORD (major.minor.build). Per-user installs
//!   are not looked at.
//! - File versions: PowerShell's `VersionInfo` File*Part fields, the path passed in an
//!   environment variable (never in the command text); `0.0.0.0` means no version resource.
//! - Services: `sc.exe query NAME`; exit 1060 is "does not exist"; running is state 4.
//! - winget: `winget list --id ID --exact`; the version is the token after the ID in its row
//!   (names may contain spaces, IDs and versions cannot; headers are localised, so they are
//!   not read). choco: `choco list --exact --limit-output NAME` (Chocolatey 2, which lists
//!   local packages only), `name|version` lines.
//! - Timeouts kill the child only: killing a Windows process tree needs a job object, which
//!   this crate does not bind yet.

#![cfg_attr(not(windows), allow(dead_code))]

use capstan_core::detection::{ProbeError, RegistryData, ServiceState};
use capstan_proto::software::RegistryHive;

use super::failed;
use crate::windows::regquery::{self, RegValue};

/// The hive as reg.exe names it.
pub(crate) fn hive_name(h: RegistryHive) -> &'static str {
    match h {
        RegistryHive::Hklm => "HKLM",
        RegistryHive::Hkcu => "HKCU",
        RegistryHive::Hkcr => "HKCR",
        RegistryHive::Hku => "HKU",
    }
}

/// The string form of a registry value: strings as stored, numbers in decimal, anything
/// else (binary) has none.
fn value_string(v: &RegValue) -> Option<String> {
    match v {
        RegValue::Str(s) => Some(s.clone()),
        RegValue::Int(n) => Some(n.to_string()),
        RegValue::Other(_) => None,
    }
}

/// Reads the answer of `reg query KEY [/v NAME | /ve]`. With a value asked for, the output
/// holds exactly that value (its printed name is localised for the default value, so the
/// first value is taken rather than looked up by name).
pub(crate) fn registry_answer(
    code: Option<i32>,
    stdout: &str,
    value: Option<&str>,
) -> Result<Option<RegistryData>, ProbeError> {
    match code {
        Some(0) => {}
        Some(1) => return Ok(None),
        other => return Err(failed(format!("reg query: exit code {other:?}"))),
    }
    let keys = regquery::parse(stdout);
    let Some(key) = keys.first() else {
        return Err(failed("reg query: no key in its output"));
    };
    match value {
        None => Ok(Some(RegistryData { data: None })),
        Some(_) => Ok(key.values.values().next().map(|v| RegistryData {
            data: value_string(v),
        })),
    }
}

/// MSI's `Version` DWORD: major in the high byte, minor in the next, build in the low word.
pub(crate) fn msi_dword_version(v: u64) -> String {
    format!("{}.{}.{}", (v >> 24) & 0xff, (v >> 16) & 0xff, v & 0xffff)
}

/// The product version from the values of an MSI product's Uninstall key.
pub(crate) fn msi_version(stdout: &str) -> Option<String> {
    let keys = regquery::parse(stdout);
    let key = keys.first()?;
    key.str("DisplayVersion")
        .map(str::to_string)
        .or_else(|| key.int("Version").map(msi_dword_version))
}

/// `sc.exe query NAME`: exit 1060 is "no such service"; `STATE : 4 RUNNING` (the number is
/// not localised) is running.
pub(crate) fn parse_sc_query(
    code: Option<i32>,
    stdout: &str,
) -> Result<Option<ServiceState>, ProbeError> {
    match code {
        Some(0) => {}
        Some(1060) => return Ok(None),
        other => return Err(failed(format!("sc query: exit code {other:?}"))),
    }
    let state = stdout.lines().find_map(|l| {
        let (label, rest) = l.split_once(':')?;
        (label.trim() == "STATE").then(|| rest.split_whitespace().next()?.parse::<u32>().ok())?
    });
    match state {
        Some(s) => Ok(Some(ServiceState { running: s == 4 })),
        None => Err(failed("sc query: no STATE in its output")),
    }
}

/// winget's "no installed package found matching input criteria" (0x8A150014).
const WINGET_NO_MATCH: i32 = 0x8A15_0014_u32 as i32;

pub(crate) fn parse_winget_list(
    code: Option<i32>,
    stdout: &str,
    id: &str,
) -> Result<Option<String>, ProbeError> {
    match code {
        Some(0) => {}
        Some(WINGET_NO_MATCH) => return Ok(None),
        other => return Err(failed(format!("winget list: exit code {other:?}"))),
    }
    // winget redraws a progress spinner with carriage returns: the row is the last segment.
    Ok(stdout.lines().find_map(|line| {
        let line = line.rsplit('\r').next().unwrap_or(line);
        let mut tokens = line.split_whitespace();
        tokens.find(|t| t.eq_ignore_ascii_case(id))?;
        let v = tokens.next()?;
        // An unknown exact version is printed as `< 1.2` or `> 1.2`.
        let v = if v == "<" || v == ">" {
            tokens.next()?
        } else {
            v
        };
        Some(v.to_string())
    }))
}

pub(crate) fn parse_choco_list(stdout: &str, name: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        let (n, v) = l.trim().split_once('|')?;
        (n.eq_ignore_ascii_case(name) && !v.trim().is_empty()).then(|| v.trim().to_string())
    })
}

/// `major.minor.build.private` as PowerShell printed it; `None` for an empty line or
/// `0.0.0.0` (no version resource).
pub(crate) fn parse_file_version(stdout: &str) -> Option<String> {
    let v = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    (v != "0.0.0.0").then(|| v.to_string())
}

/// Expands `%NAME%` references; an unset variable is an error (a rule about a path that
/// cannot be named has no answer). A `%` not forming a reference stays as it is.
pub(crate) fn expand_env(
    path: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after.find('%').filter(|&n| {
            n > 0
                && after[..n]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'(' | b')'))
        });
        match name_len {
            Some(n) => {
                let name = &after[..n];
                let value = lookup(name)
                    .ok_or_else(|| format!("environment variable {name} is not set"))?;
                out.push_str(&value);
                rest = &after[n + 1..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The probe (runs programs; compiled in tests to stay type-checked)
// ---------------------------------------------------------------------------------------------

#[cfg(windows)]
pub use probe::WindowsProbe;

#[cfg(any(windows, test))]
mod probe {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Duration;

    use capstan_core::detection::{Probe, ProbeError, RegistryData, ScriptResult, ServiceState};
    use capstan_proto::jobs::Interpreter;
    use capstan_proto::software::{DetectionManager, RegistryHive};

    use super::super::{
        Finished, MAX_QUERY_OUTPUT, ScriptFile, failed, file_sha256, path_exists, run, run_script,
        unsupported,
    };
    use super::*;
    use crate::command::find_program;

    const MSI_UNINSTALL: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";

    /// Facts of the running Windows system.
    #[derive(Debug, Clone)]
    pub struct WindowsProbe {
        query_timeout: Duration,
        script_dir: PathBuf,
    }

    impl Default for WindowsProbe {
        fn default() -> Self {
            Self::new()
        }
    }

    impl WindowsProbe {
        pub fn new() -> Self {
            WindowsProbe {
                query_timeout: Duration::from_secs(30),
                script_dir: std::env::temp_dir(),
            }
        }

        fn query(&self, tool: &str, args: &[&str]) -> Result<Finished, ProbeError> {
            let program = find_program(tool).ok_or_else(|| failed(format!("{tool} not found")))?;
            let mut cmd = Command::new(program);
            cmd.args(args);
            let f = run(cmd, self.query_timeout, MAX_QUERY_OUTPUT)?;
            if f.timed_out {
                return Err(failed(format!(
                    "{tool}: timed out after {} s",
                    self.query_timeout.as_secs()
                )));
            }
            Ok(f)
        }

        fn reg_query(
            &self,
            key: &str,
            value: Option<&str>,
            view32: bool,
        ) -> Result<Finished, ProbeError> {
            let mut args = vec!["query", key];
            match value {
                Some("") => args.push("/ve"),
                Some(v) => args.extend(["/v", v]),
                None => {}
            }
            args.push(if view32 { "/reg:32" } else { "/reg:64" });
            self.query("reg.exe", &args)
        }

        fn path(&self, path: &str) -> Result<PathBuf, ProbeError> {
            if path.starts_with('/') {
                return Err(unsupported(&format!("the Linux path {path}")));
            }
            let expanded = expand_env(path, |n| std::env::var(n).ok()).map_err(failed)?;
            Ok(PathBuf::from(expanded))
        }
    }

    impl Probe for WindowsProbe {
        fn msi_product_version(&mut self, code: &str) -> Result<Option<String>, ProbeError> {
            let key = format!(r"{MSI_UNINSTALL}\{code}");
            for view32 in [false, true] {
                let f = self.reg_query(&key, None, view32)?;
                match f.code {
                    Some(0) => {
                        // Installed; a product without any version value still counts.
                        return Ok(Some(msi_version(&f.stdout).unwrap_or_default()));
                    }
                    Some(1) => continue,
                    other => return Err(failed(format!("reg query: exit code {other:?}"))),
                }
            }
            Ok(None)
        }

        fn registry(
            &mut self,
            hive: RegistryHive,
            key: &str,
            value: Option<&str>,
            wow64_32: bool,
        ) -> Result<Option<RegistryData>, ProbeError> {
            let full = format!(r"{}\{key}", hive_name(hive));
            let f = self.reg_query(&full, value, wow64_32)?;
            registry_answer(f.code, &f.stdout, value)
        }

        fn file_exists(&mut self, path: &str) -> Result<bool, ProbeError> {
            path_exists(&self.path(path)?)
        }

        fn file_version(&mut self, path: &str) -> Result<Option<String>, ProbeError> {
            let p = self.path(path)?;
            if !path_exists(&p)? {
                return Ok(None);
            }
            let program =
                find_program("powershell.exe").ok_or_else(|| failed("powershell.exe not found"))?;
            let mut cmd = Command::new(program);
            cmd.args([
                "-NoProfile",
                "-NonInteractive",
                "-Command",
                "$i = (Get-Item -LiteralPath $env:CAPSTAN_DETECT_PATH -ErrorAction Stop).VersionInfo; \
                 '{0}.{1}.{2}.{3}' -f $i.FileMajorPart, $i.FileMinorPart, $i.FileBuildPart, $i.FilePrivatePart",
            ])
            .env("CAPSTAN_DETECT_PATH", &p);
            let f = run(cmd, self.query_timeout, MAX_QUERY_OUTPUT)?;
            if f.timed_out || f.code != Some(0) {
                return Err(failed(format!(
                    "file version of {}: {}",
                    p.display(),
                    f.first_error_line()
                )));
            }
            Ok(parse_file_version(&f.stdout))
        }

        fn file_sha256(&mut self, path: &str) -> Result<Option<String>, ProbeError> {
            file_sha256(&self.path(path)?)
        }

        fn service(&mut self, name: &str) -> Result<Option<ServiceState>, ProbeError> {
            let f = self.query("sc.exe", &["query", name])?;
            parse_sc_query(f.code, &f.stdout)
        }

        fn package(
            &mut self,
            manager: DetectionManager,
            name: &str,
        ) -> Result<Option<String>, ProbeError> {
            match manager {
                DetectionManager::Winget => {
                    let f = self.query(
                        "winget.exe",
                        &[
                            "list",
                            "--id",
                            name,
                            "--exact",
                            "--accept-source-agreements",
                            "--disable-interactivity",
                        ],
                    )?;
                    parse_winget_list(f.code, &f.stdout, name)
                }
                DetectionManager::Choco => {
                    let f =
                        self.query("choco.exe", &["list", "--exact", "--limit-output", name])?;
                    if f.code != Some(0) {
                        return Err(failed(format!("choco: {}", f.first_error_line())));
                    }
                    Ok(parse_choco_list(&f.stdout, name))
                }
                DetectionManager::Dpkg | DetectionManager::Rpm | DetectionManager::Pacman => {
                    Err(unsupported(manager.as_str()))
                }
            }
        }

        fn script(
            &mut self,
            interpreter: Interpreter,
            body: &str,
            timeout: Duration,
        ) -> Result<ScriptResult, ProbeError> {
            let (tool, args, ext): (&str, &[&str], &str) = match interpreter {
                Interpreter::Powershell => (
                    "powershell.exe",
                    &[
                        "-NoProfile",
                        "-NonInteractive",
                        "-ExecutionPolicy",
                        "Bypass",
                        "-File",
                    ],
                    ".ps1",
                ),
                Interpreter::Cmd => ("cmd.exe", &["/d", "/c"], ".cmd"),
                Interpreter::Python3 => ("python.exe", &[], ".py"),
                Interpreter::Sh => ("sh.exe", &[], ".sh"),
                Interpreter::Bash => ("bash.exe", &[], ".sh"),
            };
            let program: PathBuf =
                find_program(tool).ok_or_else(|| failed(format!("{tool} not found")))?;
            let file = ScriptFile::create(&self.script_dir, body, ext)?;
            run_script(Path::new(&program), args, &file, timeout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_answers_from_reg_query_output() {
        let out = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\App\r\n    Version    REG_SZ    1.2.3\r\n\r\n";
        assert_eq!(
            registry_answer(Some(0), out, Some("Version")),
            Ok(Some(RegistryData {
                data: Some("1.2.3".into())
            }))
        );
        let dword = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\App\r\n    Flags    REG_DWORD    0x1f\r\n";
        assert_eq!(
            registry_answer(Some(0), dword, Some("Flags")),
            Ok(Some(RegistryData {
                data: Some("31".into())
            }))
        );
        // The default value, whatever the locale calls it.
        let default = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\App\r\n    (Standard)    REG_SZ    x\r\n";
        assert_eq!(
            registry_answer(Some(0), default, Some("")),
            Ok(Some(RegistryData {
                data: Some("x".into())
            }))
        );
        let binary = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\App\r\n    Blob    REG_BINARY    0A0B\r\n";
        assert_eq!(
            registry_answer(Some(0), binary, Some("Blob")),
            Ok(Some(RegistryData { data: None }))
        );
        // A key with subkeys listed and no values.
        let key =
            "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\App\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\App\\Sub\r\n";
        assert_eq!(
            registry_answer(Some(0), key, None),
            Ok(Some(RegistryData { data: None }))
        );
        assert_eq!(registry_answer(Some(1), "", Some("x")), Ok(None));
        assert!(registry_answer(Some(5), "", None).is_err());
        assert!(registry_answer(None, "", None).is_err());
    }

    #[test]
    fn msi_versions_come_from_display_version_or_the_packed_dword() {
        let display = "\r\nHKEY_LOCAL_MACHINE\\X\\{A}\r\n    DisplayVersion    REG_SZ    10.1.3\r\n    Version    REG_DWORD    0x1010003\r\n";
        assert_eq!(msi_version(display).as_deref(), Some("10.1.3"));
        let packed = "\r\nHKEY_LOCAL_MACHINE\\X\\{A}\r\n    Version    REG_DWORD    0x0a02012c\r\n";
        assert_eq!(msi_version(packed).as_deref(), Some("10.2.300"));
        assert_eq!(msi_version("\r\nHKEY_LOCAL_MACHINE\\X\\{A}\r\n"), None);
        assert_eq!(msi_dword_version(0xffff_ffff), "255.255.65535");
    }

    #[test]
    fn sc_query_fixtures() {
        let running = "\r\nSERVICE_NAME: wuauserv\r\n        TYPE               : 20  WIN32_SHARE_PROCESS\r\n        STATE              : 4  RUNNING\r\n                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)\r\n        WIN32_EXIT_CODE    : 0  (0x0)\r\n";
        assert_eq!(
            parse_sc_query(Some(0), running),
            Ok(Some(ServiceState { running: true }))
        );
        let stopped = running.replace("4  RUNNING", "1  STOPPED");
        assert_eq!(
            parse_sc_query(Some(0), &stopped),
            Ok(Some(ServiceState { running: false }))
        );
        let localised = running.replace("4  RUNNING", "4  WIRD AUSGEFÜHRT");
        assert_eq!(
            parse_sc_query(Some(0), &localised),
            Ok(Some(ServiceState { running: true }))
        );
        assert_eq!(
            parse_sc_query(
                Some(1060),
                "[SC] EnumQueryServicesStatus:OpenService FAILED 1060"
            ),
            Ok(None)
        );
        assert!(parse_sc_query(Some(5), "[SC] OpenService FAILED 5: Access is denied.").is_err());
        assert!(parse_sc_query(Some(0), "garbage").is_err());
    }

    #[test]
    fn winget_list_fixtures() {
        let out = "   - \r   \\ \rName            Id              Version Source\r\n\
                   ----------------------------------------------\r\n\
                   Mozilla Firefox (x64 en-US) Mozilla.Firefox 128.0.3 winget\r\n";
        assert_eq!(
            parse_winget_list(Some(0), out, "mozilla.firefox"),
            Ok(Some("128.0.3".into()))
        );
        let unknown = "Name  Id  Version\r\n-----\r\nApp  Vendor.App  < 2.1\r\n";
        assert_eq!(
            parse_winget_list(Some(0), unknown, "Vendor.App"),
            Ok(Some("2.1".into()))
        );
        assert_eq!(
            parse_winget_list(
                Some(WINGET_NO_MATCH),
                "No installed package found matching input criteria.",
                "X"
            ),
            Ok(None)
        );
        assert_eq!(parse_winget_list(Some(0), out, "Other.Id"), Ok(None));
        assert!(parse_winget_list(Some(-1), "", "X").is_err());
    }

    #[test]
    fn choco_list_fixtures() {
        let out = "git|2.45.1\ngit.install|2.45.1\n";
        assert_eq!(parse_choco_list(out, "git").as_deref(), Some("2.45.1"));
        assert_eq!(
            parse_choco_list(out, "GIT.install").as_deref(),
            Some("2.45.1")
        );
        assert_eq!(parse_choco_list(out, "vim"), None);
        assert_eq!(parse_choco_list("", "git"), None);
    }

    #[test]
    fn file_versions_from_powershell() {
        assert_eq!(
            parse_file_version("10.0.19041.3636\r\n").as_deref(),
            Some("10.0.19041.3636")
        );
        assert_eq!(parse_file_version("0.0.0.0\r\n"), None);
        assert_eq!(parse_file_version(""), None);
    }

    #[test]
    fn the_probe_refuses_what_is_not_windows() {
        use capstan_core::detection::Probe;
        use capstan_proto::software::DetectionManager;
        let mut p = probe::WindowsProbe::new();
        assert!(matches!(
            p.file_exists("/opt/app"),
            Err(ProbeError::Unsupported(_))
        ));
        assert!(matches!(
            p.package(DetectionManager::Dpkg, "bash"),
            Err(ProbeError::Unsupported(_))
        ));
        assert_eq!(
            p.file_sha256("%CAPSTAN_SURELY_UNSET%\\x").unwrap_err(),
            ProbeError::Failed("environment variable CAPSTAN_SURELY_UNSET is not set".into())
        );
    }

    #[test]
    fn environment_references_expand() {
        let env = |n: &str| match n {
            "ProgramFiles" => Some(r"C:\Program Files".to_string()),
            "ProgramFiles(x86)" => Some(r"C:\Program Files (x86)".to_string()),
            _ => None,
        };
        assert_eq!(
            expand_env(r"%ProgramFiles%\App\app.exe", env).as_deref(),
            Ok(r"C:\Program Files\App\app.exe")
        );
        assert_eq!(
            expand_env(r"%ProgramFiles(x86)%\A", env).as_deref(),
            Ok(r"C:\Program Files (x86)\A")
        );
        assert_eq!(
            expand_env(r"C:\100% sure\%ProgramFiles%", env).as_deref(),
            Ok(r"C:\100% sure\C:\Program Files")
        );
        assert_eq!(expand_env(r"C:\a%b", env).as_deref(), Ok(r"C:\a%b"));
        assert_eq!(
            expand_env(r"%NOPE%\x", env),
            Err("environment variable NOPE is not set".to_string())
        );
    }
}
