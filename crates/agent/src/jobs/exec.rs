//! One attempt of a job on this machine: the optional pre-script, the action (a command run
//! directly, a script handed to its interpreter as a file, or a reboot request) and the
//! optional post-script, each in its own process group with a clean environment, under one
//! deadline. A timeout or a stop request terminates the group (SIGTERM, SIGKILL after a grace
//! period); when a part's main process exits, whatever is left of its group is killed so a
//! background grandchild holding the pipes cannot hang the agent. Output streams out as
//! capped chunks while the processes run (see [`super::output`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use capstan_proto::jobs::{
    AttemptOutcome, Interpreter, JobAction, JobSpec, OutputChunk, OutputStream, RunFinished, limits,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::now_ms;
use super::output::{StreamCapture, StreamTotals};

/// Time between SIGTERM and SIGKILL of a process group that has to go.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Largest chunk of output handed to the reporter.
pub const CHUNK_MAX: usize = 64 * 1024;
/// Pending output is emitted at least this often while it flows.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// After a part's main process exited and its group was killed, how long the pipes may stay
/// open (held by a process that left the group) before the agent stops reading them.
pub const PIPE_DRAIN: Duration = Duration::from_secs(2);
/// `PATH` of every job unless its spec sets one.
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const READ_BUF: usize = 32 * 1024;

/// Knobs of the executor; the defaults are the production values, tests shorten them.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub kill_grace: Duration,
    /// Per stream and attempt.
    pub output_cap: usize,
    pub chunk_max: usize,
    pub flush_every: Duration,
    pub pipe_drain: Duration,
    /// Where each attempt's private directory (scripts, reboot request) is created.
    pub temp_root: PathBuf,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            kill_grace: DEFAULT_KILL_GRACE,
            output_cap: limits::OUTPUT_CAP_BYTES,
            chunk_max: CHUNK_MAX,
            flush_every: FLUSH_EVERY,
            pipe_drain: PIPE_DRAIN,
            temp_root: std::env::temp_dir(),
        }
    }
}

/// Why an attempt is stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The server cancelled the run: outcome `cancelled`.
    Cancel,
    /// The agent is stopping: outcome `interrupted`.
    Shutdown,
}

/// The receiving side of a stop request; `None` means "keep running".
pub type StopSignal = watch::Receiver<Option<StopReason>>;

/// What to execute.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub run_id: &'a str,
    pub attempt: u32,
    pub spec: &'a JobSpec,
}

/// How an attempt ended, before the reboot (if any) that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub stdout: StreamTotals,
    pub stderr: StreamTotals,
    /// The attempt succeeded and asked for a reboot (reboot action, reboot exit code, or the
    /// request file).
    pub reboot_requested: bool,
}

impl ExecResult {
    /// A failure before any process ran.
    pub fn not_started(outcome: AttemptOutcome, error: String) -> Self {
        let now = now_ms();
        Self {
            outcome,
            exit_code: None,
            error: Some(error),
            started_at_ms: now,
            finished_at_ms: now,
            stdout: StreamTotals::default(),
            stderr: StreamTotals::default(),
            reboot_requested: false,
        }
    }

    /// The report for the server.
    pub fn to_finished(&self, attempt: u32) -> RunFinished {
        RunFinished {
            attempt,
            outcome: self.outcome,
            exit_code: self.exit_code,
            error: self.error.clone(),
            started_at_ms: Some(self.started_at_ms),
            finished_at_ms: self.finished_at_ms,
            stdout_bytes: self.stdout.written,
            stderr_bytes: self.stderr.written,
            stdout_truncated: self.stdout.truncated,
            stderr_truncated: self.stderr.truncated,
        }
    }
}

/// Run one attempt to its end. Output chunks go to `output` as they are produced; `stop`
/// cancels or interrupts. Never panics on anything the spec or the processes do.
pub async fn execute(
    attempt: &Attempt<'_>,
    opts: &ExecOptions,
    output: &mpsc::UnboundedSender<OutputChunk>,
    stop: StopSignal,
) -> ExecResult {
    let started_at_ms = now_ms();
    let prepared = match prepare(attempt, opts) {
        Ok(p) => p,
        Err(reason) => {
            let mut r = ExecResult::not_started(AttemptOutcome::Failed, reason);
            r.started_at_ms = started_at_ms;
            return r;
        }
    };
    run_prepared(attempt, opts, prepared, output, stop, started_at_ms).await
}

// ---------------------------------------------------------------------------------------------
// Preparation: identity, environment, files
// ---------------------------------------------------------------------------------------------

/// A local account as far as the executor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Who the processes of an attempt run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    /// Its name and home go into the environment; `None` when the agent's own uid has no
    /// passwd entry.
    pub user: Option<UserInfo>,
    /// The child must switch to `user` (the agent runs as root and `run_as` names someone
    /// else).
    pub switch: bool,
}

/// Decide the identity of an attempt. `lookup_name` and `lookup_uid` read the user database;
/// they are parameters so the rules can be tested without root or real accounts.
pub fn decide_identity(
    run_as: Option<&str>,
    euid: u32,
    lookup_name: impl Fn(&str) -> Result<Option<UserInfo>, String>,
    lookup_uid: impl Fn(u32) -> Option<UserInfo>,
) -> Result<RunIdentity, String> {
    let Some(name) = run_as else {
        return Ok(RunIdentity {
            user: lookup_uid(euid),
            switch: false,
        });
    };
    if name.is_empty() || name.contains('\0') {
        return Err(format!("run_as {name:?} is not a valid user name"));
    }
    let user = lookup_name(name)?
        .ok_or_else(|| format!("cannot run as {name:?}: no such user on this device"))?;
    if user.uid == euid {
        return Ok(RunIdentity {
            user: Some(user),
            switch: false,
        });
    }
    if euid != 0 {
        return Err(format!(
            "cannot run as {name:?}: the agent does not run as root (uid {euid})"
        ));
    }
    Ok(RunIdentity {
        user: Some(user),
        switch: true,
    })
}

#[cfg(unix)]
fn system_identity(run_as: Option<&str>) -> Result<RunIdentity, String> {
    use nix::unistd::{Uid, User};
    let convert = |u: User| UserInfo {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir,
    };
    decide_identity(
        run_as,
        nix::unistd::geteuid().as_raw(),
        |name| {
            User::from_name(name)
                .map(|u| u.map(convert))
                .map_err(|e| format!("cannot look up user {name:?}: {e}"))
        },
        |uid| {
            User::from_uid(Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(convert)
        },
    )
}

#[cfg(not(unix))]
fn system_identity(run_as: Option<&str>) -> Result<RunIdentity, String> {
    match run_as {
        None => Ok(RunIdentity {
            user: None,
            switch: false,
        }),
        Some(name) => Err(format!(
            "cannot run as {name:?}: run_as is not supported on this platform yet"
        )),
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the names a job may set.
pub fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The environment of every process of an attempt: a fixed base, the job's variables, then
/// the `CAPSTAN_*` variables (which a job cannot override).
pub fn build_env(
    attempt: &Attempt<'_>,
    user: Option<&UserInfo>,
    reboot_request: &Path,
) -> Result<Vec<(String, OsString)>, String> {
    let spec = attempt.spec;
    if spec.env.len() > limits::MAX_ENV {
        return Err(format!(
            "too many environment variables ({} > {})",
            spec.env.len(),
            limits::MAX_ENV
        ));
    }
    let mut env: Vec<(String, OsString)> = vec![
        ("PATH".into(), BASE_PATH.into()),
        ("LANG".into(), "C.UTF-8".into()),
        (
            "HOME".into(),
            user.map(|u| u.home.clone().into_os_string())
                .unwrap_or_else(|| "/".into()),
        ),
    ];
    if let Some(u) = user {
        env.push(("USER".into(), u.name.clone().into()));
        env.push(("LOGNAME".into(), u.name.clone().into()));
    }
    for (name, value) in &spec.env {
        if !valid_env_name(name) {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        if value.contains('\0') {
            return Err(format!("environment variable {name} contains a NUL byte"));
        }
        env.retain(|(n, _)| n != name);
        env.push((name.clone(), value.into()));
    }
    for (name, value) in [
        ("CAPSTAN_RUN_ID", OsString::from(attempt.run_id)),
        ("CAPSTAN_ATTEMPT", attempt.attempt.to_string().into()),
        (
            "CAPSTAN_REBOOT_REQUEST",
            reboot_request.as_os_str().to_owned(),
        ),
    ] {
        env.retain(|(n, _)| n != name);
        env.push((name.to_string(), value));
    }
    Ok(env)
}

/// File name of a script body, with the extension its interpreter expects.
pub fn script_file_name(part: &str, interpreter: Interpreter) -> String {
    let ext = match interpreter {
        Interpreter::Sh | Interpreter::Bash => "sh",
        Interpreter::Python3 => "py",
        Interpreter::Powershell => "ps1",
        Interpreter::Cmd => "cmd",
    };
    format!("{part}.{ext}")
}

/// Characters `cmd.exe` interprets even inside arguments; refused in arguments of `cmd`
/// scripts because there is no quoting that keeps them data.
const CMD_META: &[char] = &['&', '|', '<', '>', '^', '%', '!', '"', '\n', '\r'];

/// The program and arguments that run `script` with `interpreter`. `windows` selects the
/// Windows variants (PowerShell and cmd exist only there).
pub fn interpreter_argv(
    interpreter: Interpreter,
    script: &Path,
    args: &[String],
    windows: bool,
) -> Result<Vec<OsString>, String> {
    let mut argv: Vec<OsString> = match (interpreter, windows) {
        (Interpreter::Sh, _) => vec!["sh".into()],
        (Interpreter::Bash, _) => vec!["bash".into()],
        (Interpreter::Python3, _) => vec!["python3".into()],
        (Interpreter::Powershell, true) => [
            "powershell.exe",
            "-NoLogo",
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-File",
        ]
        .into_iter()
        .map(OsString::from)
        .collect(),
        (Interpreter::Cmd, true) => {
            if let Some(bad) = args.iter().find(|a| a.contains(CMD_META)) {
                return Err(format!(
                    "cmd script argument {bad:?} contains characters cmd.exe would interpret \
                     (& | < > ^ % ! \" or a line break); pass such values in env instead"
                ));
            }
            ["cmd.exe", "/D", "/Q", "/C"]
                .into_iter()
                .map(OsString::from)
                .collect()
        }
        (Interpreter::Powershell | Interpreter::Cmd, false) => {
            return Err(format!(
                "the {} interpreter is only available on Windows agents",
                interpreter.as_str()
            ));
        }
    };
    argv.push(script.as_os_str().to_owned());
    argv.extend(args.iter().map(OsString::from));
    Ok(argv)
}

/// Everything ready to run: the private directory lives as long as this value.
struct Prepared {
    _dir: tempfile::TempDir,
    cwd: PathBuf,
    env: Vec<(String, OsString)>,
    #[cfg(unix)]
    switch: Option<unix::Switch>,
    reboot_request: PathBuf,
    pre: Option<Vec<OsString>>,
    /// `None` for a reboot action: nothing to run, success asks for the reboot.
    action: Option<Vec<OsString>>,
    post: Option<Vec<OsString>>,
}

fn prepare(attempt: &Attempt<'_>, opts: &ExecOptions) -> Result<Prepared, String> {
    let spec = attempt.spec;
    let identity = system_identity(spec.run_as.as_deref())?;
    #[cfg(unix)]
    let switch = if identity.switch {
        match &identity.user {
            Some(u) => Some(unix::Switch::for_user(u)?),
            None => None,
        }
    } else {
        None
    };
    if let Some(dir) = &spec.working_dir {
        let path = Path::new(dir);
        if !path.is_absolute() || !path.is_dir() {
            return Err(format!(
                "working directory {dir:?} does not exist or is not a directory"
            ));
        }
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix("capstan-run-");
    #[cfg(unix)]
    {
        // Not left to the umask: the scripts inside are the job's, nobody else's business.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    let dir = builder.tempdir_in(&opts.temp_root).map_err(|e| {
        format!(
            "cannot create a private directory in {}: {e}",
            opts.temp_root.display()
        )
    })?;
    #[cfg(unix)]
    if let Some(sw) = &switch {
        sw.give(dir.path())?;
    }
    let reboot_request = dir.path().join("reboot-request");
    let env = build_env(attempt, identity.user.as_ref(), &reboot_request)?;

    let write_script = |part: &str, interpreter: Interpreter, body: &str| {
        if body.len() > limits::MAX_SCRIPT_BYTES {
            return Err(format!(
                "{part} is larger than {} bytes",
                limits::MAX_SCRIPT_BYTES
            ));
        }
        let path = dir.path().join(script_file_name(part, interpreter));
        write_private(&path, body.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        #[cfg(unix)]
        if let Some(sw) = &switch {
            sw.give(&path)?;
        }
        Ok(path)
    };
    let windows = cfg!(windows);
    let pre = match &spec.pre_script {
        Some(s) => {
            let path = write_script("pre-script", s.interpreter, &s.body)?;
            Some(interpreter_argv(s.interpreter, &path, &[], windows)?)
        }
        None => None,
    };
    let post = match &spec.post_script {
        Some(s) => {
            let path = write_script("post-script", s.interpreter, &s.body)?;
            Some(interpreter_argv(s.interpreter, &path, &[], windows)?)
        }
        None => None,
    };
    let action = match &spec.action {
        JobAction::Command { argv } => {
            if argv.first().is_none_or(|p| p.is_empty()) {
                return Err("the command is empty".to_string());
            }
            Some(argv.iter().map(OsString::from).collect())
        }
        JobAction::Script {
            interpreter,
            body,
            args,
        } => {
            let path = write_script("script", *interpreter, body)?;
            Some(interpreter_argv(*interpreter, &path, args, windows)?)
        }
        JobAction::Reboot => None,
        JobAction::SoftwareInstall { .. } | JobAction::SoftwareUninstall { .. } => {
            return Err("software runs are not executed as processes".to_string());
        }
    };
    let cwd = spec
        .working_dir
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    Ok(Prepared {
        _dir: dir,
        cwd,
        env,
        #[cfg(unix)]
        switch,
        reboot_request,
        pre,
        action,
        post,
    })
}

/// A new file readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Running the parts
// ---------------------------------------------------------------------------------------------

/// How one part (pre-script, action, post-script) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PartEnd {
    Exited(i32),
    Signaled(i32),
    StartFailed(String),
    TimedOut,
    Stopped(StopReason),
}

impl PartEnd {
    fn describe(&self) -> String {
        match self {
            PartEnd::Exited(c) => format!("exit code {c}"),
            PartEnd::Signaled(n) => format!("killed by signal {n}"),
            PartEnd::StartFailed(e) => e.clone(),
            PartEnd::TimedOut => "timed out".to_string(),
            PartEnd::Stopped(StopReason::Cancel) => "cancelled".to_string(),
            PartEnd::Stopped(StopReason::Shutdown) => "interrupted".to_string(),
        }
    }
}

/// The attempt's outcome as the parts decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    outcome: AttemptOutcome,
    exit_code: Option<i32>,
    error: Option<String>,
}

impl Verdict {
    fn ok(exit_code: Option<i32>) -> Self {
        Self {
            outcome: AttemptOutcome::Succeeded,
            exit_code,
            error: None,
        }
    }

    /// The verdict for a part that was stopped from outside or ran out of time.
    fn from_stop(end: &PartEnd, part: &str, timeout_secs: u64) -> Option<Self> {
        let (outcome, text) = match end {
            PartEnd::TimedOut => (
                AttemptOutcome::TimedOut,
                format!("timed out after {timeout_secs} s; the process group was killed"),
            ),
            PartEnd::Stopped(StopReason::Cancel) => (
                AttemptOutcome::Cancelled,
                "cancelled; the process group was killed".to_string(),
            ),
            PartEnd::Stopped(StopReason::Shutdown) => (
                AttemptOutcome::Interrupted,
                "interrupted: the agent stopped while the attempt ran".to_string(),
            ),
            _ => return None,
        };
        let error = if part == "action" {
            text
        } else {
            format!("{part}: {text}")
        };
        Some(Self {
            outcome,
            exit_code: None,
            error: Some(error),
        })
    }
}

async fn run_prepared(
    attempt: &Attempt<'_>,
    opts: &ExecOptions,
    prep: Prepared,
    output: &mpsc::UnboundedSender<OutputChunk>,
    stop: StopSignal,
    started_at_ms: i64,
) -> ExecResult {
    let spec = attempt.spec;
    let timeout_secs = spec.timeout_secs.max(1);
    let mut session = Session {
        opts,
        tx: output,
        stop,
        stop_closed: false,
        deadline: Instant::now() + Duration::from_secs(timeout_secs),
        headers: prep.pre.is_some() || prep.post.is_some(),
        label: "",
        header_done: [false; 2],
        caps: [
            StreamCapture::new(OutputStream::Stdout, opts.output_cap, opts.chunk_max),
            StreamCapture::new(OutputStream::Stderr, opts.output_cap, opts.chunk_max),
        ],
        prep: &prep,
    };

    let mut verdict = Verdict::ok(None);
    let mut action_ok = false;
    let mut reboot_by_code = false;
    let mut pre_failed = false;
    if let Some(argv) = &prep.pre {
        let end = session.run_part("pre-script", argv).await;
        if end != PartEnd::Exited(0) {
            pre_failed = true;
            verdict = Verdict::from_stop(&end, "pre-script", timeout_secs).unwrap_or(Verdict {
                outcome: AttemptOutcome::Failed,
                exit_code: None,
                error: Some(format!(
                    "pre-script failed ({}); the action was not run",
                    end.describe()
                )),
            });
        }
    }
    if !pre_failed {
        match &prep.action {
            None => {
                action_ok = true;
            }
            Some(argv) => {
                let end = session.run_part("action", argv).await;
                verdict = match end {
                    PartEnd::Exited(code)
                        if code == 0 || spec.reboot_exit_codes.contains(&code) =>
                    {
                        action_ok = true;
                        reboot_by_code = spec.reboot_exit_codes.contains(&code);
                        Verdict::ok(Some(code))
                    }
                    PartEnd::Exited(code) => Verdict {
                        outcome: AttemptOutcome::Failed,
                        exit_code: Some(code),
                        error: None,
                    },
                    PartEnd::Signaled(n) => Verdict {
                        outcome: AttemptOutcome::Failed,
                        exit_code: None,
                        error: Some(format!("killed by signal {n}")),
                    },
                    PartEnd::StartFailed(e) => Verdict {
                        outcome: AttemptOutcome::Failed,
                        exit_code: None,
                        error: Some(e),
                    },
                    other => Verdict::from_stop(&other, "action", timeout_secs)
                        .unwrap_or(Verdict::ok(None)),
                };
            }
        }
    }
    let run_post = match verdict.outcome {
        AttemptOutcome::Succeeded => true,
        AttemptOutcome::Failed => spec.post_script_always,
        _ => false,
    };
    if let (Some(argv), true) = (&prep.post, run_post) {
        let end = session.run_part("post-script", argv).await;
        if end != PartEnd::Exited(0) {
            if let Some(stopped) = Verdict::from_stop(&end, "post-script", timeout_secs) {
                verdict = Verdict {
                    exit_code: verdict.exit_code,
                    ..stopped
                };
            } else {
                let text = format!("post-script failed ({})", end.describe());
                verdict.error = Some(match verdict.error.take() {
                    Some(e) => format!("{e}; {text}"),
                    None => text,
                });
                verdict.outcome = AttemptOutcome::Failed;
            }
        }
    }
    let succeeded = verdict.outcome == AttemptOutcome::Succeeded;
    let reboot_requested = succeeded
        && action_ok
        && (prep.action.is_none()
            || reboot_by_code
            || std::fs::symlink_metadata(&prep.reboot_request).is_ok());
    let (stdout, stderr) = session.finish();
    ExecResult {
        outcome: verdict.outcome,
        exit_code: verdict.exit_code,
        error: verdict.error,
        started_at_ms,
        finished_at_ms: now_ms(),
        stdout,
        stderr,
        reboot_requested,
    }
}

/// State shared by the parts of one attempt.
struct Session<'a> {
    opts: &'a ExecOptions,
    tx: &'a mpsc::UnboundedSender<OutputChunk>,
    stop: StopSignal,
    stop_closed: bool,
    deadline: Instant,
    headers: bool,
    label: &'static str,
    header_done: [bool; 2],
    caps: [StreamCapture; 2],
    prep: &'a Prepared,
}

/// Read into `buf`, or wait forever once the pipe is gone (a disabled `select!` branch).
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> usize {
    match pipe {
        Some(p) => p.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Session<'_> {
    fn stop_requested(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }

    fn on_output(&mut self, which: usize, bytes: &[u8]) {
        let mut chunks = Vec::new();
        if self.headers && !self.header_done[which] {
            self.header_done[which] = true;
            let header = format!("== {} ==", self.label);
            self.caps[which].insert_line(&header, &mut chunks);
        }
        self.caps[which].push(bytes, &mut chunks);
        self.send(chunks);
    }

    fn flush(&mut self) {
        let mut chunks = Vec::new();
        for cap in &mut self.caps {
            cap.flush(&mut chunks);
        }
        self.send(chunks);
    }

    fn send(&self, chunks: Vec<OutputChunk>) {
        for chunk in chunks {
            // The reporter may be gone (agent stopping); the output is then lost, the result
            // is not.
            let _ = self.tx.send(chunk);
        }
    }

    fn finish(&mut self) -> (StreamTotals, StreamTotals) {
        let mut chunks = Vec::new();
        let out = self.caps[0].finish(&mut chunks);
        let err = self.caps[1].finish(&mut chunks);
        self.send(chunks);
        (out, err)
    }

    fn command(&self, argv: &[OsString]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(self.prep.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.prep.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        {
            cmd.process_group(0);
            if let Some(sw) = &self.prep.switch {
                sw.apply(&mut cmd);
            }
        }
        cmd
    }

    async fn run_part(&mut self, label: &'static str, argv: &[OsString]) -> PartEnd {
        if let Some(reason) = self.stop_requested() {
            return PartEnd::Stopped(reason);
        }
        if Instant::now() >= self.deadline {
            return PartEnd::TimedOut;
        }
        if argv.is_empty() {
            return PartEnd::StartFailed("nothing to run".to_string());
        }
        self.label = label;
        self.header_done = [false; 2];
        let mut child = match self.command(argv).spawn() {
            Ok(c) => c,
            Err(e) => {
                return PartEnd::StartFailed(format!(
                    "cannot start {}: {e}",
                    argv[0].to_string_lossy()
                ));
            }
        };
        let mut group = Group::new(&child);
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut buf_out = vec![0u8; READ_BUF];
        let mut buf_err = vec![0u8; READ_BUF];
        let mut status: Option<std::io::Result<std::process::ExitStatus>> = None;
        let mut killing: Option<PartEnd> = None;
        let mut kill_at: Option<Instant> = None;
        let mut drain_until: Option<Instant> = None;
        let mut tick = tokio::time::interval(self.opts.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = self.deadline;

        loop {
            if status.is_some() && stdout.is_none() && stderr.is_none() {
                break;
            }
            let running = status.is_none();
            let can_stop = running && killing.is_none() && !self.stop_closed;
            tokio::select! {
                n = read_some(&mut stdout, &mut buf_out) => {
                    if n == 0 {
                        stdout = None;
                    } else {
                        self.on_output(0, &buf_out[..n]);
                    }
                }
                n = read_some(&mut stderr, &mut buf_err) => {
                    if n == 0 {
                        stderr = None;
                    } else {
                        self.on_output(1, &buf_err[..n]);
                    }
                }
                st = child.wait(), if running => {
                    status = Some(st);
                    // Whatever the main process left behind goes with it.
                    group.kill(&mut child, true);
                    kill_at = None;
                    drain_until = Some(Instant::now() + self.opts.pipe_drain);
                }
                _ = tokio::time::sleep_until(deadline), if running && killing.is_none() => {
                    killing = Some(PartEnd::TimedOut);
                    group.kill(&mut child, false);
                    kill_at = Some(Instant::now() + self.opts.kill_grace);
                }
                changed = self.stop.changed(), if can_stop => {
                    if changed.is_err() {
                        self.stop_closed = true;
                    } else if let Some(reason) = self.stop_requested() {
                        killing = Some(PartEnd::Stopped(reason));
                        group.kill(&mut child, false);
                        kill_at = Some(Instant::now() + self.opts.kill_grace);
                    }
                }
                _ = sleep_until_opt(kill_at), if kill_at.is_some() => {
                    group.kill(&mut child, true);
                    kill_at = None;
                }
                _ = sleep_until_opt(drain_until), if drain_until.is_some() => {
                    // A process outside the group still holds the pipes; stop listening.
                    break;
                }
                _ = tick.tick() => self.flush(),
            }
        }
        group.disarm();
        self.flush();
        if let Some(end) = killing {
            return end;
        }
        match status {
            Some(Ok(st)) => exit_end(st),
            Some(Err(e)) => PartEnd::StartFailed(format!("waiting for the process failed: {e}")),
            None => PartEnd::StartFailed("the process vanished".to_string()),
        }
    }
}

#[cfg(unix)]
fn exit_end(status: std::process::ExitStatus) -> PartEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => PartEnd::Exited(code),
        (None, Some(sig)) => PartEnd::Signaled(sig),
        (None, None) => PartEnd::StartFailed(format!("the process ended oddly: {status}")),
    }
}

#[cfg(not(unix))]
fn exit_end(status: std::process::ExitStatus) -> PartEnd {
    match status.code() {
        Some(code) => PartEnd::Exited(code),
        None => PartEnd::StartFailed(format!("the process ended oddly: {status}")),
    }
}

/// The process group of a running part. Dropping it while armed (the attempt's future was
/// dropped) kills the whole group, so no job process outlives its supervision.
struct Group {
    #[cfg(unix)]
    pgid: Option<i32>,
    armed: bool,
}

impl Group {
    #[cfg_attr(not(unix), allow(unused_variables))]
    fn new(child: &tokio::process::Child) -> Self {
        Self {
            #[cfg(unix)]
            pgid: child.id().and_then(|p| i32::try_from(p).ok()),
            armed: true,
        }
    }

    /// SIGTERM (`hard` false) or SIGKILL to every process of the group.
    #[cfg(unix)]
    fn kill(&mut self, _child: &mut tokio::process::Child, hard: bool) {
        use nix::sys::signal::{Signal, killpg};
        if let Some(pgid) = self.pgid {
            let sig = if hard {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            // ESRCH (the group is already empty) is the expected case after a clean exit.
            let _ = killpg(nix::unistd::Pid::from_raw(pgid), sig);
        }
    }

    #[cfg(not(unix))]
    fn kill(&mut self, child: &mut tokio::process::Child, _hard: bool) {
        let _ = child.start_kill();
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.armed
            && let Some(pgid) = self.pgid
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Kill the processes of an attempt that outlived the agent that started them (an agent
/// killed outside systemd, which would otherwise clean up its cgroup). They are recognised by
/// `CAPSTAN_RUN_ID` and `CAPSTAN_ATTEMPT` in their environment; each is killed with its
/// process group. Returns how many processes matched.
#[cfg(target_os = "linux")]
pub fn kill_leftovers(run_id: &str, attempt: u32) -> usize {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;

    let want_run = format!("CAPSTAN_RUN_ID={run_id}");
    let want_attempt = format!("CAPSTAN_ATTEMPT={attempt}");
    let me = std::process::id();
    let my_group = nix::unistd::getpgrp().as_raw();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // Collect first, kill afterwards: a killed process loses its environment, which would
    // hide it from a scan still in progress.
    let mut found: Vec<(i32, Option<i32>)> = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|p| p == me) {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let mut has_run = false;
        let mut has_attempt = false;
        for var in environ.split(|b| *b == 0) {
            has_run |= var == want_run.as_bytes();
            has_attempt |= var == want_attempt.as_bytes();
        }
        if !(has_run && has_attempt) {
            continue;
        }
        let pgrp = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let rest = stat.rsplit_once(')')?.1.to_string();
                rest.split_whitespace().nth(2)?.parse::<i32>().ok()
            });
        found.push((pid, pgrp));
    }
    for (pid, pgrp) in &found {
        if let Some(pgrp) = pgrp.filter(|g| *g > 1 && *g != my_group) {
            let _ = killpg(Pid::from_raw(pgrp), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    found.len()
}

#[cfg(not(target_os = "linux"))]
pub fn kill_leftovers(_run_id: &str, _attempt: u32) -> usize {
    0
}

#[cfg(unix)]
mod unix {
    //! Switching the child to another user, the one place the agent needs `unsafe`.

    use std::path::Path;

    use nix::unistd::{Gid, Uid};

    use super::UserInfo;

    /// The credentials the child takes on before `exec`.
    #[derive(Debug, Clone)]
    pub struct Switch {
        uid: Uid,
        gid: Gid,
        groups: Vec<Gid>,
    }

    impl Switch {
        /// Resolve the user's supplementary groups (what `initgroups` would set) in the
        /// parent, where reading the group database is safe.
        pub fn for_user(user: &UserInfo) -> Result<Self, String> {
            let gid = Gid::from_raw(user.gid);
            let name = std::ffi::CString::new(user.name.clone())
                .map_err(|_| format!("user name {:?} contains a NUL byte", user.name))?;
            let groups = nix::unistd::getgrouplist(&name, gid)
                .map_err(|e| format!("cannot read the groups of {:?}: {e}", user.name))?;
            Ok(Self {
                uid: Uid::from_raw(user.uid),
                gid,
                groups,
            })
        }

        /// Hand a file or directory of the attempt to the user.
        pub fn give(&self, path: &Path) -> Result<(), String> {
            nix::unistd::chown(path, Some(self.uid), Some(self.gid))
                .map_err(|e| format!("cannot hand {} to the job user: {e}", path.display()))
        }

        // `unsafe` because `pre_exec` runs code between fork and exec. std's `Command::groups`
        // is unstable and `uid`/`gid` alone would drop the user's supplementary groups, so this
        // is the only way to give the job the groups its user really has.
        #[allow(unsafe_code)]
        pub fn apply(&self, cmd: &mut tokio::process::Command) {
            let Switch { uid, gid, groups } = self.clone();
            // SAFETY: the closure runs in the forked child, where only async-signal-safe calls
            // are allowed. It makes three system calls on data prepared in the parent and does
            // not allocate or take locks (errors convert to `io::Error` without allocating).
            // Groups go first and the uid last, because after `setuid` the rest would be
            // refused.
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::setgroups(&groups)?;
                    nix::unistd::setgid(gid)?;
                    nix::unistd::setuid(uid)?;
                    Ok(())
                });
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests;
