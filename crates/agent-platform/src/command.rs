//! Running the external programs some facts can only come from (`rpm`, `realm`, `nft`, …).
//! Every child gets a timeout, a null stdin, `LC_ALL=C`, capped output and (on Unix) its own
//! process group, which is killed as a whole when the timeout expires so that nothing the
//! program started outlives the collector.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Output beyond this is discarded (read and dropped so the child never blocks on a full pipe).
const MAX_STDOUT: u64 = 32 * 1024 * 1024;
const MAX_STDERR: u64 = 64 * 1024;

/// Directories searched besides `$PATH`: services often run with a minimal PATH that lacks
/// the sbin directories where `iptables-save` or `needs-restarting` live.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/snap/bin",
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("{program}: could not start: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program}: timed out after {secs} s")]
    TimedOut { program: String, secs: u64 },
    #[error("{program}: {source}")]
    Io {
        program: String,
        source: std::io::Error,
    },
}

/// What a finished program produced.
#[derive(Debug, Clone)]
pub(crate) struct CommandOutput {
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Finds an executable by name in `$PATH` and the usual system directories.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Runs `program args…` and returns its output, or an error on spawn failure or timeout.
pub(crate) async fn run(
    program: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let name = program.display().to_string();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|source| CommandError::Spawn {
        program: name.clone(),
        source,
    })?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = async {
        let (out, err, status) = tokio::join!(
            read_capped(stdout, MAX_STDOUT),
            read_capped(stderr, MAX_STDERR),
            child.wait()
        );
        (out, err, status)
    };
    match tokio::time::timeout(timeout, finished).await {
        Ok((out, err, status)) => {
            let status = status.map_err(|source| CommandError::Io {
                program: name.clone(),
                source,
            })?;
            Ok(CommandOutput {
                code: status.code(),
                stdout: lossy(out),
                stderr: lossy(err),
            })
        }
        Err(_) => {
            kill_group(pid);
            // kill_on_drop reaps the direct child when `child` goes out of scope.
            Err(CommandError::TimedOut {
                program: name,
                secs: timeout.as_secs(),
            })
        }
    }
}

/// Runs a program found by name; `None` when it is not installed.
pub(crate) async fn run_named(
    name: &str,
    args: &[&str],
    timeout: Duration,
) -> Option<Result<CommandOutput, CommandError>> {
    let program = find_program(name)?;
    Some(run(&program, args, timeout).await)
}

/// Synchronous variant for callers outside a runtime (identity material on Windows): runs
/// the program with a timeout and returns stdout when it exits successfully. The child is
/// killed on timeout; stdout is read on a helper thread so a full pipe cannot block it.
#[cfg(any(windows, test))]
pub(crate) fn run_blocking(name: &str, args: &[&str], timeout: Duration) -> Option<String> {
    use std::io::Read;
    let program = find_program(name)?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(out) = stdout {
            let _ = out.take(MAX_STDOUT).read_to_end(&mut buf);
        }
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let buf = reader.join().ok()?;
                return status.success().then(|| lossy(buf));
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(unix)]
fn kill_group(pid: Option<u32>) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // The child is its own group leader (process_group(0)) and has not been reaped yet,
        // so the group id cannot have been reused.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: Option<u32>) {}

async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(reader) = reader {
        let mut limited = reader.take(cap);
        let _ = limited.read_to_end(&mut buf).await;
        let mut rest = limited.into_inner();
        let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
    }
    buf
}

fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_and_exit_code_are_returned() {
        let sh = find_program("sh").expect("sh");
        let out = run(
            &sh,
            &["-c", "echo hi; echo err >&2; exit 3"],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.code, Some(3));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let sh = find_program("sh").expect("sh");
        let marker =
            std::env::temp_dir().join(format!("capstan-ap-grandchild-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        // The grandchild would create the marker after 2 s unless the group is killed.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let err = run(&sh, &["-c", &script], Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "grandchild survived the timeout");
    }

    #[test]
    fn blocking_runner_returns_output_and_honours_the_timeout() {
        assert_eq!(
            run_blocking("sh", &["-c", "echo ok"], Duration::from_secs(5)).as_deref(),
            Some("ok\n")
        );
        assert_eq!(
            run_blocking("sh", &["-c", "exit 2"], Duration::from_secs(5)),
            None
        );
        let started = std::time::Instant::now();
        assert_eq!(
            run_blocking("sleep", &["5"], Duration::from_millis(200)),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn missing_programs_are_not_found() {
        assert!(find_program("capstan-no-such-program").is_none());
    }
}
