//! Software runs: executes a resolved [`SoftwarePlan`] step by step — requirements, detection
//! before acting (skip what is already in the wanted state), download from the run's ordered
//! sources into the cache, unpacking of script archives, the install or uninstall command
//! with the version's hooks and timeout, the exit code's meaning (success, reboot required,
//! reboot now, failure), the tail of the installer's own log, and detection after acting
//! (verify). Every step is narrated in the run's output, so the operator sees what happened
//! and why.
//!
//! Processes run through the job executor ([`crate::jobs::exec`]) — process group, timeout,
//! capped capture — one call per command; this module keeps the attempt's output offsets
//! continuous across those calls and within the attempt's cap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use capstan_core::detection::{self, Probe};
use capstan_core::software::{TemplateValues, render_template};
use capstan_proto::jobs::{
    AttemptOutcome, JobAction, JobSpec, OutputChunk, OutputStream, RunPayload, limits,
};
use capstan_proto::software::{
    Arch, Artifact, Detection, DownloadSource, InstallerType, OsFamily, PlanStep, Requirements,
    SoftwarePlan, StepOperation,
};
use tokio::sync::mpsc;

use crate::fetch::{FetchProgress, Fetcher};
use crate::jobs::exec::{self, Attempt, ExecOptions, ExecResult, StopSignal};
use crate::jobs::now_ms;
use crate::jobs::output::StreamTotals;

/// The agent's own environment variables that installers get too (jobs otherwise start from
/// a clean environment): proxy settings package managers need behind a proxy, and dpkg's
/// root/admin directory for an agent that manages a chroot or container root (the detection
/// probes see the same, since they inherit the agent's environment).
const PASSTHROUGH_ENV: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "DPKG_ROOT",
    "DPKG_ADMINDIR",
];

/// Serialises plans on the node (see [`execute`]).
static SOFTWARE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How much of an installer's own log is copied into the run's output.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// What a node is, for requirements and artifact choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub os: OsFamily,
    pub arch: Option<Arch>,
    /// `VERSION_ID` of os-release on Linux.
    pub os_version: Option<String>,
}

impl NodeFacts {
    pub fn of_this_machine() -> Self {
        let os = if cfg!(windows) {
            OsFamily::Windows
        } else if cfg!(target_os = "macos") {
            OsFamily::Macos
        } else {
            OsFamily::Linux
        };
        let os_version = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("VERSION_ID="))
                    .map(|v| v.trim().trim_matches('"').to_string())
            });
        NodeFacts {
            os,
            arch: Arch::normalise(std::env::consts::ARCH),
            os_version,
        }
    }
}

/// Where a plan is, for a caller that reports progress (the manifest reconciler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Downloading { received: u64, total: u64 },
    Installing,
    Uninstalling,
}

/// Called as a plan moves between phases.
pub type PhaseHook = Arc<dyn Fn(Phase) + Send + Sync>;

/// Everything software runs need besides the run itself.
#[derive(Clone)]
pub struct SoftwareContext {
    pub fetcher: Fetcher,
    pub node: NodeFacts,
    /// Makes the probe detection evaluates against (the host's, or a table in tests).
    pub probe: Arc<dyn Fn() -> Box<dyn Probe + Send> + Send + Sync>,
    /// Per-device download limit (a deployment's network policy), bytes per second.
    pub max_bytes_per_sec: Option<u64>,
    /// Told when downloads progress and commands start.
    pub phase: Option<PhaseHook>,
}

impl SoftwareContext {
    fn tell(&self, p: Phase) {
        if let Some(h) = &self.phase {
            h(p);
        }
    }
}

impl std::fmt::Debug for SoftwareContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareContext")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The resolved plan of a software action.
fn plan_of(spec: &JobSpec) -> Option<&SoftwarePlan> {
    match &spec.action {
        JobAction::SoftwareInstall { plan, .. } | JobAction::SoftwareUninstall { plan, .. } => {
            plan.as_ref()
        }
        _ => None,
    }
}

/// The attempt's output: our own narration lines and each process's chunks, at continuous
/// offsets per stream, within the attempt's cap.
struct Narrator<'a> {
    tx: &'a mpsc::UnboundedSender<OutputChunk>,
    /// Next offset of stdout and stderr.
    next: [u64; 2],
    written: [u64; 2],
    truncated: [bool; 2],
    cap: u64,
}

impl<'a> Narrator<'a> {
    fn new(tx: &'a mpsc::UnboundedSender<OutputChunk>, cap: usize) -> Self {
        Narrator {
            tx,
            next: [0, 0],
            written: [0, 0],
            truncated: [false, false],
            cap: cap as u64,
        }
    }

    fn say(&mut self, text: &str) {
        let line = format!("[capstan] {text}\n");
        let len = line.len() as u64;
        if self.next[0] + len > self.cap {
            self.truncated[0] = true;
            return;
        }
        let _ = self.tx.send(OutputChunk {
            stream: OutputStream::Stdout,
            offset: self.next[0],
            data: line,
        });
        self.next[0] += len;
    }

    /// Room left on the smaller stream, for the next process.
    fn remaining(&self) -> usize {
        let used = self.next[0].max(self.next[1]);
        usize::try_from(self.cap.saturating_sub(used)).unwrap_or(0)
    }

    /// Runs one command through the executor, shifting its chunks to our offsets.
    async fn run(
        &mut self,
        run_id: &str,
        attempt: u32,
        spec: &JobSpec,
        opts: &ExecOptions,
        stop: StopSignal,
    ) -> ExecResult {
        let mut opts = opts.clone();
        // The executor appends a marker line past its cap; keep room for it.
        opts.output_cap = self.remaining().saturating_sub(128);
        let (tx, mut rx) = mpsc::unbounded_channel::<OutputChunk>();
        let base = self.next;
        let outer = self.tx.clone();
        let forward = tokio::spawn(async move {
            while let Some(mut c) = rx.recv().await {
                let i = usize::from(c.stream == OutputStream::Stderr);
                c.offset += base[i];
                let _ = outer.send(c);
            }
        });
        let a = Attempt {
            run_id,
            attempt,
            spec,
        };
        let r = exec::execute(&a, &opts, &tx, stop).await;
        drop(tx);
        let _ = forward.await;
        for (i, t) in [r.stdout, r.stderr].iter().enumerate() {
            self.next[i] += t.emitted;
            self.written[i] += t.written;
            self.truncated[i] |= t.truncated;
        }
        r
    }

    fn totals(&self) -> (StreamTotals, StreamTotals) {
        let t = |i: usize| StreamTotals {
            written: self.written[i],
            emitted: self.next[i],
            truncated: self.truncated[i],
        };
        (t(0), t(1))
    }
}

/// How a plan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ending {
    outcome: AttemptOutcome,
    exit_code: Option<i32>,
    error: Option<String>,
    /// An installer asked for a reboot now (hard reboot code).
    reboot_now: bool,
}

impl Ending {
    fn failed(error: impl Into<String>) -> Self {
        Ending {
            outcome: AttemptOutcome::Failed,
            exit_code: None,
            error: Some(error.into()),
            reboot_now: false,
        }
    }
}

/// Executes a software run's plan. The result is shaped like any attempt's: a hard-reboot exit
/// code sets `reboot_requested`, so the runner reboots and completes the run after boot; a soft
/// reboot code succeeds with "reboot required" in `error`.
pub async fn execute(
    ctx: &SoftwareContext,
    payload: &RunPayload,
    opts: &ExecOptions,
    output: &mpsc::UnboundedSender<OutputChunk>,
    stop: StopSignal,
) -> ExecResult {
    // One plan at a time on a node: package managers hold exclusive locks (dpkg, rpm, msiexec),
    // and a software job and the manifest reconciler may want to act at once.
    let _turn = SOFTWARE_TURN.lock().await;
    let started_at_ms = now_ms();
    let mut out = Narrator::new(output, opts.output_cap);
    let ending = match plan_of(&payload.spec) {
        Some(plan) => run_plan(ctx, payload, plan, opts, &mut out, stop).await,
        None => Ending::failed("the run has no resolved software plan (server too old?)"),
    };
    let (stdout, stderr) = out.totals();
    ExecResult {
        outcome: ending.outcome,
        exit_code: ending.exit_code,
        error: ending.error,
        started_at_ms,
        finished_at_ms: now_ms(),
        stdout,
        stderr,
        reboot_requested: ending.reboot_now && ending.outcome == AttemptOutcome::Succeeded,
    }
}

async fn run_plan(
    ctx: &SoftwareContext,
    payload: &RunPayload,
    plan: &SoftwarePlan,
    opts: &ExecOptions,
    out: &mut Narrator<'_>,
    stop: StopSignal,
) -> Ending {
    let problems = capstan_core::software::validate_plan(plan);
    if let Some(p) = problems.first() {
        return Ending::failed(format!("the plan is not valid: {}: {}", p.path, p.message));
    }
    let total = plan.steps.len();
    let mut soft_reboot = Vec::new();
    let mut last_code = None;
    for (i, step) in plan.steps.iter().enumerate() {
        if stop.borrow().is_some() {
            return stop_ending(&stop);
        }
        out.say(&format!(
            "step {}/{total}: {} {} {}",
            i + 1,
            verb(step.operation),
            step.package,
            step.version
        ));
        match run_step(ctx, payload, plan, step, opts, out, stop.clone()).await {
            StepEnd::Done { exit_code, reboot } => {
                last_code = exit_code.or(last_code);
                match reboot {
                    Reboot::None => {}
                    Reboot::Soft => soft_reboot.push(format!("{} {}", step.package, step.version)),
                    Reboot::Hard => {
                        out.say(&format!(
                            "{} {} needs a reboot now; the remaining steps run after it if the job is retried",
                            step.package, step.version
                        ));
                        return Ending {
                            outcome: AttemptOutcome::Succeeded,
                            exit_code,
                            error: (i + 1 < total).then(|| {
                                format!(
                                    "rebooting after step {}/{total}; {} step(s) not run",
                                    i + 1,
                                    total - i - 1
                                )
                            }),
                            reboot_now: true,
                        };
                    }
                }
            }
            StepEnd::Skipped => {}
            StepEnd::Failed(mut e) => {
                if let Some(err) = e.error.take() {
                    e.error = Some(format!(
                        "step {}/{total} ({} {} {}): {err}",
                        i + 1,
                        verb(step.operation),
                        step.package,
                        step.version
                    ));
                }
                out.say(e.error.as_deref().unwrap_or("failed"));
                return e;
            }
        }
    }
    out.say("done");
    Ending {
        outcome: AttemptOutcome::Succeeded,
        exit_code: last_code,
        error: (!soft_reboot.is_empty()).then(|| {
            format!(
                "reboot required to complete: {} (not rebooting: the installer allows it to wait)",
                soft_reboot.join(", ")
            )
        }),
        reboot_now: false,
    }
}

fn verb(op: StepOperation) -> &'static str {
    match op {
        StepOperation::Install => "install",
        StepOperation::Uninstall => "uninstall",
        StepOperation::UninstallIfPresent => "remove superseded",
    }
}

fn stop_ending(stop: &StopSignal) -> Ending {
    match *stop.borrow() {
        Some(exec::StopReason::Cancel) => Ending {
            outcome: AttemptOutcome::Cancelled,
            exit_code: None,
            error: Some("cancelled".into()),
            reboot_now: false,
        },
        _ => Ending {
            outcome: AttemptOutcome::Interrupted,
            exit_code: None,
            error: Some(
                "interrupted: the agent stopped while the software run was in progress".into(),
            ),
            reboot_now: false,
        },
    }
}

enum Reboot {
    None,
    Soft,
    Hard,
}

enum StepEnd {
    Done {
        exit_code: Option<i32>,
        reboot: Reboot,
    },
    Skipped,
    Failed(Ending),
}

/// Why requirements are not met, if they are not.
fn unmet(req: &Requirements, node: &NodeFacts, free_mb: Option<u64>) -> Option<String> {
    if !req.os_families.is_empty() && !req.os_families.contains(&node.os) {
        return Some(format!(
            "the version is for {}; this node runs {}",
            req.os_families
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            node.os.as_str()
        ));
    }
    if let Some(min) = &req.min_os_version {
        match &node.os_version {
            Some(have)
                if capstan_core::version::compare(
                    capstan_core::version::Scheme::Windows,
                    have,
                    min,
                ) != std::cmp::Ordering::Less => {}
            Some(have) => {
                return Some(format!("OS version {have} is below the required {min}"));
            }
            None => return Some(format!("the OS version is unknown; {min} is required")),
        }
    }
    if let (Some(need), Some(free)) = (req.min_free_disk_mb, free_mb)
        && free < need
    {
        return Some(format!("{free} MiB free; {need} MiB required"));
    }
    None
}

/// The artifact for this node: the exact architecture first, then `any`, then 32-bit x86 on
/// x86_64.
fn pick_artifact<'a>(artifacts: &'a [Artifact], node: &NodeFacts) -> Option<&'a Artifact> {
    let machine = node.arch?;
    let on_os = || artifacts.iter().filter(|a| a.platform == node.os);
    on_os()
        .find(|a| a.arch == machine)
        .or_else(|| on_os().find(|a| a.arch == Arch::Any))
        .or_else(|| on_os().find(|a| a.arch.runs_on(machine)))
}

fn free_disk_mb(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let s = nix::sys::statvfs::statvfs(path).ok()?;
        Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64) >> 20)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Evaluates a detection rule on a blocking thread: whether it detects, and why.
pub(crate) async fn detect(
    ctx: &SoftwareContext,
    rule: &Detection,
) -> Result<(bool, Vec<String>), String> {
    let rule = rule.clone();
    let make = ctx.probe.clone();
    tokio::task::spawn_blocking(move || {
        let mut probe = make();
        detection::evaluate(&rule, probe.as_mut())
            .map(|o| (o.detected, o.explanation))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("detection task failed: {e}"))?
}

async fn run_step(
    ctx: &SoftwareContext,
    payload: &RunPayload,
    plan: &SoftwarePlan,
    step: &PlanStep,
    opts: &ExecOptions,
    out: &mut Narrator<'_>,
    stop: StopSignal,
) -> StepEnd {
    let spec = &step.spec;
    let installing = step.operation == StepOperation::Install;
    let needs_artifact = installing || spec.installer_type == InstallerType::ScriptArchive;
    if installing {
        let free = free_disk_mb(&opts.temp_root);
        if let Some(why) = unmet(&spec.requirements, &ctx.node, free) {
            return StepEnd::Failed(Ending::failed(format!("not applicable: {why}")));
        }
    }
    // Before: skip what is already in the wanted state.
    match detect(ctx, &spec.detection).await {
        Ok((present, lines)) => {
            for l in &lines {
                out.say(&format!("detect: {l}"));
            }
            match (step.operation, present) {
                (StepOperation::Install, true) if !plan.force => {
                    out.say("already installed; nothing to do");
                    return StepEnd::Skipped;
                }
                (StepOperation::Install, true) => {
                    out.say("already installed; forced to install again")
                }
                (StepOperation::Uninstall | StepOperation::UninstallIfPresent, false) => {
                    out.say("not installed; nothing to do");
                    return StepEnd::Skipped;
                }
                _ => {}
            }
        }
        Err(e) => {
            return StepEnd::Failed(Ending::failed(format!(
                "detection could not be evaluated, so nothing was changed: {e}"
            )));
        }
    }

    // A private directory for this step: the installer's log, a named copy of the artifact,
    // an unpacked archive.
    let work = match tempfile::Builder::new()
        .prefix("capstan-software-")
        .tempdir_in(&opts.temp_root)
    {
        Ok(d) => d,
        Err(e) => {
            return StepEnd::Failed(Ending::failed(format!(
                "cannot create a work directory in {}: {e}",
                opts.temp_root.display()
            )));
        }
    };
    let log_path = work.path().join("installer.log");
    let mut values = TemplateValues {
        log: Some(log_path.display().to_string()),
        package: spec.package_id.clone(),
        version: Some(step.version.clone()),
        product_code: spec.product_code.clone(),
        dir: Some(work.path().display().to_string()),
        file: None,
    };
    let mut _pin = None;
    if needs_artifact && spec.installer_type.has_artifacts() {
        let Some(artifact) = pick_artifact(&step.artifacts, &ctx.node) else {
            let have: Vec<String> = step
                .artifacts
                .iter()
                .map(|a| format!("{}/{}", a.platform.as_str(), a.arch.as_str()))
                .collect();
            return StepEnd::Failed(Ending::failed(format!(
                "not applicable: no artifact for {}/{} (the version has {})",
                ctx.node.os.as_str(),
                ctx.node.arch.map(|a| a.as_str()).unwrap_or("unknown"),
                have.join(", ")
            )));
        };
        let sources: &[DownloadSource] = &payload.sources;
        if sources.is_empty() {
            return StepEnd::Failed(Ending::failed("the run names no download source"));
        }
        out.say(&format!(
            "download {} ({} bytes, sha256 {})",
            artifact.file_name, artifact.size, artifact.sha256
        ));
        let fetched = {
            let mut last_tenth = u64::MAX;
            let mut lines = Vec::new();
            let hook = ctx.phase.clone();
            let mut progress = |p: FetchProgress| {
                if let Some(h) = &hook {
                    h(Phase::Downloading {
                        received: p.received,
                        total: p.total,
                    });
                }
                let tenth = (p.received.saturating_mul(10))
                    .checked_div(p.total)
                    .unwrap_or(10);
                if tenth != last_tenth {
                    last_tenth = tenth;
                    lines.push(format!(
                        "downloading from {}: {}% ({}/{} bytes)",
                        p.source,
                        tenth * 10,
                        p.received,
                        p.total
                    ));
                }
            };
            let r = ctx
                .fetcher
                .fetch_limited(artifact, sources, &mut progress, ctx.max_bytes_per_sec)
                .await;
            for l in lines {
                out.say(&l);
            }
            r
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => return StepEnd::Failed(Ending::failed(format!("download failed: {e}"))),
        };
        for f in &fetched.failures {
            out.say(&format!("source failed: {f}"));
        }
        out.say(&format!(
            "artifact verified ({})",
            if fetched.from_cache {
                "from the cache".to_string()
            } else {
                format!("downloaded from {}", fetched.source)
            }
        ));
        if spec.installer_type == InstallerType::ScriptArchive {
            let dest = work.path().join("archive");
            let src = fetched.path.clone();
            let d2 = dest.clone();
            let extracted = tokio::task::spawn_blocking(move || {
                std::fs::create_dir(&d2).map_err(|e| e.to_string())?;
                capstan_pkgmeta::extract_archive(&src, &d2, &Default::default())
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match extracted {
                Ok(x) => out.say(&format!("unpacked {} files ({} bytes)", x.files, x.bytes)),
                Err(e) => {
                    return StepEnd::Failed(Ending::failed(format!(
                        "the archive cannot be unpacked: {e}"
                    )));
                }
            }
            values.dir = Some(dest.display().to_string());
            values.file = Some(fetched.path.display().to_string());
        } else {
            // Installers may care about the file name (msiexec, some .exe): give them one —
            // never a path, whatever the payload says.
            let name = if capstan_core::software::is_plain_file_name(&artifact.file_name) {
                artifact.file_name.as_str()
            } else {
                artifact.sha256.as_str()
            };
            let named = work.path().join(name);
            let linked = std::fs::hard_link(&fetched.path, &named)
                .or_else(|_| std::fs::copy(&fetched.path, &named).map(|_| ()));
            values.file = Some(match linked {
                Ok(()) => named.display().to_string(),
                Err(_) => fetched.path.display().to_string(),
            });
        }
        _pin = Some(fetched);
    }

    let template = if installing {
        &spec.install_command
    } else {
        &spec.uninstall_command
    };
    if template.is_empty() {
        return StepEnd::Failed(Ending::failed(format!(
            "the version has no {} command",
            if installing { "install" } else { "uninstall" }
        )));
    }
    let argv = match render_template(template, &values) {
        Ok(a) => a,
        Err(e) => return StepEnd::Failed(Ending::failed(format!("the command template: {e}"))),
    };
    let success = &spec.success_exit_codes;
    let soft = spec.soft_reboot_exit_codes.clone().unwrap_or_default();
    let hard = spec.hard_reboot_exit_codes.clone().unwrap_or_default();
    // The executor treats these codes as success (so post-install hooks run); their meaning is
    // decided below.
    let mut ok_codes: Vec<i32> = success.iter().chain(&soft).chain(&hard).copied().collect();
    ok_codes.retain(|c| *c != 0);
    let mut env = std::collections::BTreeMap::new();
    env.insert("DEBIAN_FRONTEND".into(), "noninteractive".into());
    for name in PASSTHROUGH_ENV {
        if let Ok(v) = std::env::var(name)
            && !v.contains('\0')
        {
            env.insert((*name).into(), v);
        }
    }
    env.insert("CAPSTAN_PACKAGE".into(), step.package.clone());
    env.insert("CAPSTAN_VERSION".into(), step.version.clone());
    let job = JobSpec {
        action: capstan_proto::jobs::JobAction::Command { argv: argv.clone() },
        timeout_secs: spec.timeout_secs.clamp(1, limits::MAX_TIMEOUT_SECS),
        env,
        working_dir: values.dir.clone(),
        run_as: None,
        pre_script: if installing {
            spec.pre_install.clone()
        } else {
            None
        },
        post_script: if installing {
            spec.post_install.clone()
        } else {
            None
        },
        post_script_always: false,
        reboot_exit_codes: ok_codes,
    };
    out.say(&format!("run: {}", argv.join(" ")));
    ctx.tell(if installing {
        Phase::Installing
    } else {
        Phase::Uninstalling
    });
    let r = out
        .run(&payload.run_id, payload.attempt, &job, opts, stop.clone())
        .await;
    copy_log_tail(&log_path, out);
    if r.outcome != AttemptOutcome::Succeeded {
        let code = r.exit_code;
        let mut e = Ending {
            outcome: r.outcome,
            exit_code: code,
            error: r.error.clone(),
            reboot_now: false,
        };
        if e.error.is_none() {
            e.error = Some(match code {
                Some(c) => format!("the {} command exited with {c}", verb(step.operation)),
                None => "the command failed".into(),
            });
        }
        return StepEnd::Failed(e);
    }
    let code = r.exit_code.unwrap_or(0);
    let reboot = if hard.contains(&code) {
        out.say(&format!("exit code {code}: succeeded, reboot needed now"));
        Reboot::Hard
    } else if soft.contains(&code) {
        out.say(&format!("exit code {code}: succeeded, reboot required"));
        Reboot::Soft
    } else {
        out.say(&format!("exit code {code}: succeeded"));
        Reboot::None
    };
    // After: verify. A pending reboot may legitimately hide the result until after boot.
    if matches!(reboot, Reboot::None) {
        match detect(ctx, &spec.detection).await {
            Ok((present, lines)) => {
                for l in &lines {
                    out.say(&format!("verify: {l}"));
                }
                let want = installing;
                if present != want {
                    return StepEnd::Failed(Ending {
                        outcome: AttemptOutcome::Failed,
                        exit_code: Some(code),
                        error: Some(if want {
                            "the installer succeeded, but detection does not find the version"
                                .into()
                        } else {
                            "the uninstaller succeeded, but detection still finds the version"
                                .into()
                        }),
                        reboot_now: false,
                    });
                }
                out.say(if want {
                    "verified: installed"
                } else {
                    "verified: removed"
                });
            }
            Err(e) => {
                return StepEnd::Failed(Ending {
                    outcome: AttemptOutcome::Failed,
                    exit_code: Some(code),
                    error: Some(format!("verification could not be evaluated: {e}")),
                    reboot_now: false,
                });
            }
        }
    }
    StepEnd::Done {
        exit_code: Some(code),
        reboot,
    }
}

/// Copies the end of the installer's log (if it wrote one) into the output. MSI logs are
/// UTF-16LE with a byte-order mark.
fn copy_log_tail(path: &PathBuf, out: &mut Narrator<'_>) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return;
    }
    let mut bom = [0u8; 2];
    let utf16 = f.read_exact(&mut bom).is_ok() && bom == [0xff, 0xfe];
    let start = len
        .saturating_sub(LOG_TAIL_BYTES)
        .max(if utf16 { 2 } else { 0 });
    let start = if utf16 && start % 2 == 1 {
        start + 1
    } else {
        start
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err()
        || f.take(LOG_TAIL_BYTES).read_to_end(&mut buf).is_err()
    {
        return;
    }
    let text = if utf16 {
        let units: Vec<u16> = buf
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(&buf).into_owned()
    };
    out.say(&format!(
        "installer log ({}last {} of {len} bytes):",
        if start > 0 { "" } else { "all, " },
        len - start
    ));
    for line in text.lines() {
        let clean: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        out.say(&format!("  {clean}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(os: OsFamily, arch: Arch, version: &str) -> NodeFacts {
        NodeFacts {
            os,
            arch: Some(arch),
            os_version: Some(version.into()),
        }
    }

    fn art(platform: OsFamily, arch: Arch) -> Artifact {
        Artifact {
            platform,
            arch,
            sha256: format!("{:064}", arch as u8),
            size: 1,
            file_name: "f".into(),
        }
    }

    #[test]
    fn the_exact_architecture_wins_then_any_then_32_bit_on_64() {
        let n = node(OsFamily::Linux, Arch::X86_64, "12");
        let all = [
            art(OsFamily::Linux, Arch::X86),
            art(OsFamily::Linux, Arch::Any),
            art(OsFamily::Linux, Arch::X86_64),
            art(OsFamily::Windows, Arch::X86_64),
        ];
        assert_eq!(pick_artifact(&all, &n).map(|a| a.arch), Some(Arch::X86_64));
        assert_eq!(
            pick_artifact(&all[..2], &n).map(|a| a.arch),
            Some(Arch::Any)
        );
        assert_eq!(
            pick_artifact(&all[..1], &n).map(|a| a.arch),
            Some(Arch::X86)
        );
        assert_eq!(
            pick_artifact(&all[3..], &n),
            None,
            "another OS never matches"
        );
        let arm = node(OsFamily::Linux, Arch::Aarch64, "12");
        assert_eq!(pick_artifact(&all[..1], &arm), None);
    }

    #[test]
    fn requirements_explain_what_is_missing() {
        let n = node(OsFamily::Linux, Arch::X86_64, "12");
        let ok = Requirements::default();
        assert_eq!(unmet(&ok, &n, Some(10)), None);
        let win = Requirements {
            os_families: vec![OsFamily::Windows],
            ..Default::default()
        };
        assert!(unmet(&win, &n, None).unwrap().contains("for windows"));
        let newer = Requirements {
            min_os_version: Some("13".into()),
            ..Default::default()
        };
        assert!(
            unmet(&newer, &n, None)
                .unwrap()
                .contains("below the required 13")
        );
        let older = Requirements {
            min_os_version: Some("11.4".into()),
            ..Default::default()
        };
        assert_eq!(unmet(&older, &n, None), None);
        let disk = Requirements {
            min_free_disk_mb: Some(500),
            ..Default::default()
        };
        assert!(
            unmet(&disk, &n, Some(499))
                .unwrap()
                .contains("499 MiB free")
        );
        assert_eq!(unmet(&disk, &n, Some(500)), None);
        assert_eq!(
            unmet(&disk, &n, None),
            None,
            "unknown free space is not a refusal"
        );
    }

    #[tokio::test]
    async fn narration_and_process_output_share_continuous_offsets_within_the_cap() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut n = Narrator::new(&tx, 200);
        n.say("one");
        n.say(&"x".repeat(300));
        assert_eq!(n.next[0], "[capstan] one\n".len() as u64);
        assert!(
            n.truncated[0],
            "a line beyond the cap is dropped and marked"
        );
        drop(tx);
        let c = rx.recv().await.unwrap();
        assert_eq!((c.offset, c.data.as_str()), (0, "[capstan] one\n"));
        assert!(rx.recv().await.is_none());
    }
}
