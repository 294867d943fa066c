//! Plumbing shared by the server and agent harnesses: log files a child process writes into,
//! reading their tail for error messages, and ending a child politely (SIGTERM with a grace
//! period) or at once (SIGKILL), always reaping it so no zombie outlives the test.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Child;

/// Opens `path` for appending, creating it: logs of a restarted process follow the earlier run.
pub(crate) fn open_log(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// Current length of a file, 0 when it does not exist yet.
pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The whole file as text (lossy), or a note saying why it could not be read.
pub(crate) fn read_log(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// The last `lines` lines written to `path` after byte offset `from`.
pub(crate) fn tail(path: &Path, from: u64, lines: usize) -> String {
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        f.read_to_end(&mut text)
    });
    if let Err(e) = read {
        return format!("<cannot read {}: {e}>", path.display());
    }
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends SIGTERM and waits up to `grace` for the child to exit, then kills it.
pub(crate) async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        // ESRCH means it already exited; the wait below reaps it either way.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
        tracing::warn!(pid, ?grace, "child ignored SIGTERM, killing it");
    }
    let _ = child.kill().await;
}

/// Sends SIGKILL and reaps the child without needing an async context (usable from `Drop`).
pub(crate) fn kill_now(child: &mut Child) {
    if child.start_kill().is_err() {
        // Already exited (and reaped by an earlier wait) or never had a pid.
        return;
    }
    // SIGKILL is delivered promptly; reap it so its files are closed before the caller goes
    // on to delete its directory.
    for _ in 0..200 {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_reads_only_what_came_after_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "old run\n").unwrap();
        let from = file_len(&path);
        let mut f = open_log(&path).unwrap();
        for i in 0..50 {
            writeln!(f, "line {i}").unwrap();
        }
        let t = tail(&path, from, 3);
        assert_eq!(t, "line 47\nline 48\nline 49");
        assert!(!tail(&path, from, 100).contains("old run"));
    }
}
