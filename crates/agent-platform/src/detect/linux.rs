//! The Linux probe: files, services (systemd when it runs, SysV init scripts otherwise),
//! the dpkg, rpm and pacman databases through their query tools, and scripts. MSI, the
//! registry, file version resources, winget and choco do not exist here and answer
//! "unsupported". The parsers of the tools' output are plain functions tested with fixtures.
//!
//! Decisions:
//! - dpkg: installed means the status (second letter of `db:Status-Abbrev`) is `i`,
//!   whatever the selection — a held package (`hi`) is installed. Half-installed or
//!   half-configured packages are not. Package names with glob characters are refused, since
//!   `dpkg-query -W` would treat them as patterns.
//! - rpm: several installed instances (multilib, kernels) answer with the highest version.
//! - Services (systemd): a unit exists unless its LoadState is `not-found`; it runs when its
//!   ActiveState is `active` or `reloading` (what `systemctl is-active` reports as running).
//! - Services (SysV): the service exists when `/etc/init.d/NAME` is an executable file; it
//!   runs when `NAME status` exits 0, is stopped on LSB's 1–3, and anything else is an error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use capstan_core::detection::{Probe, ProbeError, RegistryData, ScriptResult, ServiceState};
use capstan_core::version::{self, Scheme};
use capstan_proto::jobs::Interpreter;
use capstan_proto::software::{DetectionManager, RegistryHive};

use super::{
    Finished, MAX_QUERY_OUTPUT, ScriptFile, failed, file_sha256, path_exists, run, run_script,
    unsupported,
};
use crate::command::find_program;

/// Facts of the running Linux system.
#[derive(Debug, Clone)]
pub struct LinuxProbe {
    root: PathBuf,
    query_timeout: Duration,
    script_dir: PathBuf,
}

impl Default for LinuxProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl LinuxProbe {
    /// The live system, package queries bounded to 30 s, scripts in the system temp dir.
    pub fn new() -> Self {
        LinuxProbe {
            root: PathBuf::from("/"),
            query_timeout: Duration::from_secs(30),
            script_dir: std::env::temp_dir(),
        }
    }

    /// Where the service manager is looked for (`/run/systemd/system`, `/etc/init.d`): `/`
    /// in production, a fixture tree in tests. File paths in rules are always the host's.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// Bound of each package or service query.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// Directory detection scripts are written below (each in its own 0700 directory).
    pub fn with_script_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.script_dir = dir.into();
        self
    }

    fn under_root(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn query(&self, tool: &str, args: &[&str]) -> Result<Finished, ProbeError> {
        let program = find_program(tool).ok_or_else(|| failed(format!("{tool} not found")))?;
        let mut cmd = Command::new(program);
        cmd.args(args).env("LC_ALL", "C");
        let f = run(cmd, self.query_timeout, MAX_QUERY_OUTPUT)?;
        if f.timed_out {
            return Err(failed(format!(
                "{tool}: timed out after {} s",
                self.query_timeout.as_secs()
            )));
        }
        Ok(f)
    }

    fn systemd_service(&self, name: &str) -> Result<Option<ServiceState>, ProbeError> {
        let f = self.query(
            "systemctl",
            &[
                "show",
                "--property=LoadState,ActiveState,SubState",
                "--",
                name,
            ],
        )?;
        if f.code != Some(0) {
            return Err(failed(format!("systemctl: {}", f.first_error_line())));
        }
        parse_systemctl_show(&f.stdout)
    }

    fn sysv_service(&self, name: &str) -> Result<Option<ServiceState>, ProbeError> {
        let script = self.under_root("/etc/init.d").join(name);
        if !is_executable_file(&script)? {
            return Ok(None);
        }
        let mut cmd = Command::new(&script);
        cmd.arg("status").env("LC_ALL", "C");
        let f = run(cmd, self.query_timeout, MAX_QUERY_OUTPUT)?;
        if f.timed_out {
            return Err(failed(format!(
                "{}: status timed out after {} s",
                script.display(),
                self.query_timeout.as_secs()
            )));
        }
        sysv_status(f.code).map(Some).map_err(|e| {
            failed(format!(
                "{} status: {e} ({})",
                script.display(),
                f.first_error_line()
            ))
        })
    }
}

fn is_executable_file(p: &Path) -> Result<bool, ProbeError> {
    use std::os::unix::fs::PermissionsExt;
    if !path_exists(p)? {
        return Ok(false);
    }
    let m = std::fs::metadata(p).map_err(|e| failed(format!("{}: {e}", p.display())))?;
    Ok(m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A rule path this probe can read: Windows paths are not an error in the rule (a rule may
/// cover both systems), but have no answer here.
fn linux_path(path: &str) -> Result<&Path, ProbeError> {
    if path.starts_with('/') {
        Ok(Path::new(path))
    } else {
        Err(unsupported(&format!("the Windows path {path}")))
    }
}

impl Probe for LinuxProbe {
    fn msi_product_version(&mut self, _: &str) -> Result<Option<String>, ProbeError> {
        Err(unsupported("MSI products"))
    }

    fn registry(
        &mut self,
        _: RegistryHive,
        _: &str,
        _: Option<&str>,
        _: bool,
    ) -> Result<Option<RegistryData>, ProbeError> {
        Err(unsupported("the Windows registry"))
    }

    fn file_exists(&mut self, path: &str) -> Result<bool, ProbeError> {
        path_exists(linux_path(path)?)
    }

    fn file_version(&mut self, _: &str) -> Result<Option<String>, ProbeError> {
        Err(unsupported("file version resources"))
    }

    fn file_sha256(&mut self, path: &str) -> Result<Option<String>, ProbeError> {
        file_sha256(linux_path(path)?)
    }

    fn service(&mut self, name: &str) -> Result<Option<ServiceState>, ProbeError> {
        // Defence in depth: validation already refuses these, and the name becomes a path.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(failed(format!("invalid service name {name:?}")));
        }
        if self.under_root("/run/systemd/system").is_dir() {
            self.systemd_service(name)
        } else {
            self.sysv_service(name)
        }
    }

    fn package(
        &mut self,
        manager: DetectionManager,
        name: &str,
    ) -> Result<Option<String>, ProbeError> {
        match manager {
            DetectionManager::Dpkg => {
                if name.contains(['*', '?', '[', ']']) {
                    return Err(failed(format!(
                        "dpkg: {name:?} is a pattern, not a package name"
                    )));
                }
                let f = self.query(
                    "dpkg-query",
                    &["-W", "-f=${db:Status-Abbrev}\t${Version}\n", "--", name],
                )?;
                parse_dpkg_query(&f)
            }
            DetectionManager::Rpm => {
                let f = self.query(
                    "rpm",
                    &[
                        "-q",
                        "--qf",
                        "%{EPOCH}:%{VERSION}-%{RELEASE}\\n",
                        "--",
                        name,
                    ],
                )?;
                parse_rpm_query(&f, name)
            }
            DetectionManager::Pacman => {
                let f = self.query("pacman", &["-Q", "--", name])?;
                parse_pacman_query(&f, name)
            }
            DetectionManager::Winget | DetectionManager::Choco => {
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
        let (tool, ext) = match interpreter {
            Interpreter::Sh => ("sh", ".sh"),
            Interpreter::Bash => ("bash", ".sh"),
            Interpreter::Python3 => ("python3", ".py"),
            Interpreter::Powershell | Interpreter::Cmd => {
                return Err(unsupported(&format!("{} scripts", interpreter.as_str())));
            }
        };
        let program = find_program(tool).ok_or_else(|| failed(format!("{tool} not found")))?;
        let file = ScriptFile::create(&self.script_dir, body, ext)?;
        run_script(&program, &[], &file, timeout)
    }
}

/// `dpkg-query -W -f='${db:Status-Abbrev}\t${Version}\n'`: the version of the first
/// installed instance. Exit 1 is dpkg-query's "no packages found matching".
fn parse_dpkg_query(f: &Finished) -> Result<Option<String>, ProbeError> {
    match f.code {
        Some(0) => Ok(f.stdout.lines().find_map(|line| {
            let (status, version) = line.split_once('\t')?;
            let installed = status.as_bytes().get(1) == Some(&b'i');
            let version = version.trim();
            (installed && !version.is_empty()).then(|| version.to_string())
        })),
        Some(1) => Ok(None),
        _ => Err(failed(format!("dpkg-query: {}", f.first_error_line()))),
    }
}

/// `rpm -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}\n'`: the highest installed `[E:]V-R`.
fn parse_rpm_query(f: &Finished, name: &str) -> Result<Option<String>, ProbeError> {
    let not_installed = format!("package {name} is not installed");
    if f.code != Some(0) {
        let only_absent = f.stdout.lines().all(|l| l.trim() == not_installed)
            && !f.stdout.trim().is_empty()
            && f.stderr.trim().is_empty();
        return if only_absent {
            Ok(None)
        } else {
            Err(failed(format!("rpm: {}", f.first_error_line())))
        };
    }
    Ok(f.stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("(none):").unwrap_or(l).to_string())
        .max_by(|a, b| version::compare(Scheme::Rpm, a, b)))
}

/// `pacman -Q NAME`: `name version`. Exit 1 with "was not found" is absence.
fn parse_pacman_query(f: &Finished, name: &str) -> Result<Option<String>, ProbeError> {
    if f.code == Some(0) {
        return Ok(f.stdout.lines().find_map(|line| {
            let (n, v) = line.trim().split_once(' ')?;
            (n == name && !v.trim().is_empty()).then(|| v.trim().to_string())
        }));
    }
    if f.code == Some(1) && f.stderr.contains("was not found") {
        return Ok(None);
    }
    Err(failed(format!("pacman: {}", f.first_error_line())))
}

/// `systemctl show --property=LoadState,ActiveState,SubState`.
fn parse_systemctl_show(out: &str) -> Result<Option<ServiceState>, ProbeError> {
    let mut load = None;
    let mut active = None;
    for line in out.lines() {
        match line.trim().split_once('=') {
            Some(("LoadState", v)) => load = Some(v),
            Some(("ActiveState", v)) => active = Some(v),
            _ => {}
        }
    }
    let (Some(load), Some(active)) = (load, active) else {
        return Err(failed(format!(
            "systemctl show: unexpected output {:?}",
            out.chars().take(200).collect::<String>()
        )));
    };
    if load == "not-found" {
        return Ok(None);
    }
    Ok(Some(ServiceState {
        running: matches!(active, "active" | "reloading"),
    }))
}

/// LSB init-script `status` exit codes.
fn sysv_status(code: Option<i32>) -> Result<ServiceState, String> {
    match code {
        Some(0) => Ok(ServiceState { running: true }),
        Some(1..=3) => Ok(ServiceState { running: false }),
        Some(c) => Err(format!("exit {c}")),
        None => Err("killed by a signal".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Instant;

    use capstan_core::detection::evaluate;

    use super::super::tests::TempDir;
    use super::*;

    fn finished(code: i32, stdout: &str, stderr: &str) -> Finished {
        Finished {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            timed_out: false,
        }
    }

    #[test]
    fn dpkg_output_is_read_by_status() {
        let cases: &[(Finished, Result<Option<&str>, &str>)] = &[
            (finished(0, "ii \t2.10-3\n", ""), Ok(Some("2.10-3"))),
            (finished(0, "hi \t1:2.0\n", ""), Ok(Some("1:2.0"))),
            (finished(0, "rc \t2.10-3\n", ""), Ok(None)),
            (finished(0, "un \t\n", ""), Ok(None)),
            (finished(0, "iF \t2.10-3\n", ""), Ok(None)),
            (finished(0, "rc \t1.0\nii \t2.0\n", ""), Ok(Some("2.0"))),
            (
                finished(1, "", "dpkg-query: no packages found matching x\n"),
                Ok(None),
            ),
            (
                finished(2, "", "dpkg-query: error: parsing file\n"),
                Err("dpkg-query: dpkg-query: error: parsing file"),
            ),
        ];
        for (f, want) in cases {
            let got = parse_dpkg_query(f).map_err(|e| e.to_string());
            let want = (*want)
                .map(|v| v.map(str::to_string))
                .map_err(str::to_string);
            assert_eq!(got, want, "{f:?}");
        }
    }

    #[test]
    fn rpm_output_handles_epochs_several_instances_and_absence() {
        let ok = |out: &str| parse_rpm_query(&finished(0, out, ""), "k").unwrap();
        assert_eq!(ok("(none):5.1-7.el9\n").as_deref(), Some("5.1-7.el9"));
        assert_eq!(ok("2:1.0-1\n").as_deref(), Some("2:1.0-1"));
        assert_eq!(
            ok("(none):5.14.0-70\n(none):5.14.0-162\n(none):5.14.0-9\n").as_deref(),
            Some("5.14.0-162")
        );
        let absent = finished(1, "package k is not installed\n", "");
        assert_eq!(parse_rpm_query(&absent, "k"), Ok(None));
        let broken = finished(1, "", "error: rpmdb: damaged header\n");
        assert_eq!(
            parse_rpm_query(&broken, "k").unwrap_err().to_string(),
            "rpm: error: rpmdb: damaged header"
        );
    }

    #[test]
    fn pacman_output_is_name_then_version() {
        let ok = finished(0, "vim 9.0.1-1\n", "");
        assert_eq!(parse_pacman_query(&ok, "vim"), Ok(Some("9.0.1-1".into())));
        let absent = finished(1, "", "error: package 'vim' was not found\n");
        assert_eq!(parse_pacman_query(&absent, "vim"), Ok(None));
        let broken = finished(1, "", "error: failed to initialize alpm library\n");
        assert!(parse_pacman_query(&broken, "vim").is_err());
    }

    #[test]
    fn systemctl_show_fixtures() {
        let cases: &[(&str, Option<Option<bool>>)] = &[
            (
                "LoadState=loaded\nActiveState=active\nSubState=running\n",
                Some(Some(true)),
            ),
            (
                "LoadState=loaded\nActiveState=inactive\nSubState=dead\n",
                Some(Some(false)),
            ),
            (
                "LoadState=loaded\nActiveState=failed\nSubState=failed\n",
                Some(Some(false)),
            ),
            (
                "LoadState=loaded\nActiveState=reloading\nSubState=reload\n",
                Some(Some(true)),
            ),
            (
                "LoadState=masked\nActiveState=inactive\nSubState=dead\n",
                Some(Some(false)),
            ),
            (
                "LoadState=not-found\nActiveState=inactive\nSubState=dead\n",
                Some(None),
            ),
            ("", None),
            ("Failed to connect to bus\n", None),
        ];
        for (out, want) in cases {
            let got = parse_systemctl_show(out).ok().map(|s| s.map(|s| s.running));
            assert_eq!(got, *want, "{out:?}");
        }
    }

    fn sysv_root(scripts: &[(&str, &str, u32)]) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let t = TempDir::new("sysv");
        let dir = t.0.join("etc/init.d");
        fs::create_dir_all(&dir).unwrap();
        for (name, body, mode) in scripts {
            let p = dir.join(name);
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        }
        t
    }

    #[test]
    fn sysv_services_exist_as_init_scripts_and_run_by_status_code() {
        let root = sysv_root(&[
            (
                "up",
                "#!/bin/sh\n[ \"$1\" = status ] && exit 0\nexit 9\n",
                0o755,
            ),
            ("down", "#!/bin/sh\necho stopped\nexit 3\n", 0o755),
            (
                "weird",
                "#!/bin/sh\necho 'status unknown' >&2\nexit 4\n",
                0o755,
            ),
            ("notexec", "#!/bin/sh\nexit 0\n", 0o644),
        ]);
        let mut p = LinuxProbe::new().with_root(&root.0);
        assert_eq!(p.service("up"), Ok(Some(ServiceState { running: true })));
        assert_eq!(p.service("down"), Ok(Some(ServiceState { running: false })));
        assert_eq!(p.service("missing"), Ok(None));
        assert_eq!(p.service("notexec"), Ok(None));
        let err = p.service("weird").unwrap_err().to_string();
        assert!(
            err.ends_with("weird status: exit 4 (status unknown)"),
            "{err}"
        );
        assert!(p.service("../up").is_err());
    }

    #[test]
    fn sysv_status_that_hangs_is_an_error_not_absence() {
        let root = sysv_root(&[("hang", "#!/bin/sh\nsleep 30\n", 0o755)]);
        let mut p = LinuxProbe::new()
            .with_root(&root.0)
            .with_query_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = p.service("hang").unwrap_err().to_string();
        assert!(err.contains("status timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_query_tool_is_an_error_not_absence() {
        let p = LinuxProbe::new();
        assert_eq!(
            p.query("capstan-no-such-tool", &[]).unwrap_err(),
            ProbeError::Failed("capstan-no-such-tool not found".into())
        );
    }

    #[test]
    fn a_failing_systemctl_is_an_error_not_absence() {
        // A root that says systemd runs, on a host where it does not: systemctl fails.
        if Path::new("/run/systemd/system").exists() || find_program("systemctl").is_none() {
            return;
        }
        let t = TempDir::new("systemd");
        fs::create_dir_all(t.0.join("run/systemd/system")).unwrap();
        let mut p = LinuxProbe::new().with_root(&t.0);
        let err = p.service("nginx").unwrap_err().to_string();
        assert!(err.starts_with("systemctl: "), "{err}");
    }

    #[test]
    fn real_dpkg_database() {
        let mut p = LinuxProbe::new();
        let bash = p
            .package(DetectionManager::Dpkg, "bash")
            .unwrap()
            .expect("bash is installed on Debian");
        assert!(bash.starts_with(|c: char| c.is_ascii_digit()), "{bash}");
        assert_eq!(
            p.package(DetectionManager::Dpkg, "capstan-no-such-package"),
            Ok(None)
        );
        assert!(p.package(DetectionManager::Dpkg, "bas*").is_err());
        // Through the evaluator, in dpkg's semantics.
        let rule = serde_json::from_str(
            r#"{"type":"all","rules":[
                {"type":"package","manager":"dpkg","name":"bash","version":{"op":"gte","version":"4"}},
                {"type":"package","manager":"dpkg","name":"bash","version":{"op":"lt","version":"99:0"}}]}"#,
        )
        .unwrap();
        let out = evaluate(&rule, &mut p).unwrap();
        assert!(out.detected, "{:?}", out.explanation);
        assert_eq!(
            out.explanation[1],
            format!("  dpkg bash: {bash} >= 4 → yes")
        );
    }

    #[test]
    fn real_rpm_and_pacman_with_empty_databases_report_absence() {
        let mut p = LinuxProbe::new();
        if find_program("rpm").is_some() {
            assert_eq!(p.package(DetectionManager::Rpm, "bash"), Ok(None));
        }
        if find_program("pacman").is_some() {
            assert_eq!(p.package(DetectionManager::Pacman, "bash"), Ok(None));
        }
        assert!(matches!(
            p.package(DetectionManager::Winget, "x"),
            Err(ProbeError::Unsupported(_))
        ));
    }

    #[test]
    fn real_files_and_hashes() {
        let t = TempDir::new("files");
        let f = t.0.join("app.bin");
        fs::write(&f, "hello").unwrap();
        let rule = format!(
            r#"{{"type":"all","rules":[
                {{"type":"file_exists","path":"{dir}"}},
                {{"type":"file_sha256","path":"{file}","sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}]}}"#,
            dir = t.0.display(),
            file = f.display()
        );
        let rule = serde_json::from_str(&rule).unwrap();
        let mut p = LinuxProbe::new();
        assert!(evaluate(&rule, &mut p).unwrap().detected);
        fs::write(&f, "changed").unwrap();
        assert!(!evaluate(&rule, &mut p).unwrap().detected);
        fs::remove_file(&f).unwrap();
        assert!(!evaluate(&rule, &mut p).unwrap().detected);
        assert!(matches!(
            p.file_exists("C:\\Windows"),
            Err(ProbeError::Unsupported(_))
        ));
        assert!(matches!(
            p.file_version("/bin/sh"),
            Err(ProbeError::Unsupported(_))
        ));
    }

    fn script(p: &mut LinuxProbe, body: &str, timeout: Duration) -> ScriptResult {
        p.script(Interpreter::Sh, body, timeout).unwrap()
    }

    #[test]
    fn real_scripts_follow_the_intune_rule() {
        let t = TempDir::new("scripts");
        let mut p = LinuxProbe::new().with_script_dir(&t.0);
        let s = Duration::from_secs(10);
        let r = script(&mut p, "echo installed\n", s);
        assert_eq!(
            (r.exit_code, r.stdout_non_empty, r.timed_out),
            (Some(0), true, false)
        );
        let r = script(&mut p, "true\n", s);
        assert_eq!((r.exit_code, r.stdout_non_empty), (Some(0), false));
        let r = script(&mut p, "echo here; exit 1\n", s);
        assert_eq!((r.exit_code, r.stdout_non_empty), (Some(1), true));
        // The body arrives as a file, so quotes and metacharacters are the script's own.
        let r = script(
            &mut p,
            "x='a;b $(c)'; [ \"$x\" = 'a;b $(c)' ] && echo ok\n",
            s,
        );
        assert_eq!((r.exit_code, r.stdout_non_empty), (Some(0), true));
        let r = p
            .script(
                Interpreter::Bash,
                "[[ -n $BASH_VERSION ]] && echo bash\n",
                s,
            )
            .unwrap();
        assert_eq!((r.exit_code, r.stdout_non_empty), (Some(0), true));
        if find_program("python3").is_some() {
            let r = p
                .script(
                    Interpreter::Python3,
                    "import sys\nprint('py')\nsys.exit(0)\n",
                    s,
                )
                .unwrap();
            assert_eq!((r.exit_code, r.stdout_non_empty), (Some(0), true));
        }
        assert!(matches!(
            p.script(Interpreter::Powershell, "Write-Output 1", s),
            Err(ProbeError::Unsupported(_))
        ));
        // Every script's private directory is gone afterwards.
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 0);
    }

    #[test]
    fn a_script_timeout_kills_its_grandchildren() {
        let t = TempDir::new("timeout");
        let marker = t.0.join("survived");
        let mut p = LinuxProbe::new().with_script_dir(&t.0);
        // The grandchild would write the marker after 2 s unless the whole group is killed.
        let body = format!(
            "(sleep 2; touch '{}') &\necho started\nsleep 30\n",
            marker.display()
        );
        let started = Instant::now();
        let r = script(&mut p, &body, Duration::from_millis(500));
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "a grandchild outlived the timeout");
        // Through the evaluator a timeout is "unknown", not "absent".
        let rule = serde_json::from_str(
            r#"{"type":"script","interpreter":"sh","body":"sleep 5","timeout_secs":1}"#,
        )
        .unwrap();
        let err = evaluate(&rule, &mut p).unwrap_err().to_string();
        assert_eq!(
            err,
            "detection could not be evaluated: script (sh): timed out after 1 s"
        );
    }
}
