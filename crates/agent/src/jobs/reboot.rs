//! Rebooting for a job: reading the boot id (which proves afterwards that the machine really
//! rebooted) and running the reboot command. The command is configurable so tests can
//! substitute a simulated reboot: it gets `CAPSTAN_AGENT_PID` (the agent to kill) and
//! `CAPSTAN_BOOT_ID_PATH` (the file whose content the next "boot" changes) in its environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

pub const DEFAULT_BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// How long the reboot command may take to return.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// After the reboot command returned successfully, how long the agent waits to be stopped
/// by the shutdown before it reports that the reboot did not happen.
pub const WAIT_FOR_REBOOT: Duration = Duration::from_secs(15 * 60);
/// Where `systemctl` is looked for when choosing the default command.
const SYSTEMCTL_PATHS: [&str; 4] = [
    "/usr/bin/systemctl",
    "/bin/systemctl",
    "/usr/sbin/systemctl",
    "/sbin/systemctl",
];

/// How the agent reboots the machine.
#[derive(Debug, Clone)]
pub struct RebootSettings {
    /// `None`: `systemctl reboot` where systemd is installed, `shutdown -r now` elsewhere.
    pub command: Option<Vec<String>>,
    pub boot_id_path: PathBuf,
    pub command_timeout: Duration,
    pub wait_for_reboot: Duration,
}

impl Default for RebootSettings {
    fn default() -> Self {
        Self {
            command: None,
            boot_id_path: PathBuf::from(DEFAULT_BOOT_ID_PATH),
            command_timeout: COMMAND_TIMEOUT,
            wait_for_reboot: WAIT_FOR_REBOOT,
        }
    }
}

/// The current boot id: the trimmed content of `path`, `None` if unreadable or empty.
pub fn read_boot_id(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let id = text.trim();
    (!id.is_empty() && id.len() <= 256).then(|| id.to_string())
}

/// The command to run: the configured one, or the platform default.
pub fn resolve_command(configured: Option<&[String]>) -> Vec<String> {
    if let Some(argv) = configured.filter(|a| !a.is_empty()) {
        return argv.to_vec();
    }
    let systemd = SYSTEMCTL_PATHS.iter().any(|p| Path::new(p).exists());
    default_command(systemd)
}

/// `systemctl reboot` (logind/systemd orders the shutdown) or, without systemd, the classic
/// `shutdown -r now`.
pub fn default_command(systemd: bool) -> Vec<String> {
    let words: &[&str] = if systemd {
        &["systemctl", "reboot"]
    } else {
        &["shutdown", "-r", "now"]
    };
    words.iter().map(|w| w.to_string()).collect()
}

/// Run the reboot command; `Ok` when it exited successfully (the reboot is then underway).
pub async fn run_command(
    argv: &[String],
    boot_id_path: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the reboot command is empty".to_string());
    };
    let shown = argv.join(" ");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("CAPSTAN_AGENT_PID", std::process::id().to_string())
        .env("CAPSTAN_BOOT_ID_PATH", boot_id_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let pid = child.id();
    let mut stderr = child.stderr.take();
    let work = async {
        // Only the start of stderr is kept: enough for an error message.
        let mut text = Vec::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.take(4096).read_to_end(&mut text).await;
        }
        let status = child.wait().await;
        (status, text)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), text)) => Err(format!(
            "`{shown}` failed ({status}): {}",
            String::from_utf8_lossy(&text).trim()
        )),
        Ok((Err(e), _)) => Err(format!("waiting for `{shown}` failed: {e}")),
        Err(_) => {
            #[cfg(unix)]
            if let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            #[cfg(not(unix))]
            let _ = pid;
            Err(format!(
                "`{shown}` did not finish within {} s",
                timeout.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_id_is_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot_id");
        assert_eq!(read_boot_id(&path), None);
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(read_boot_id(&path), None);
        std::fs::write(&path, "1b2c-33\n").unwrap();
        assert_eq!(read_boot_id(&path).as_deref(), Some("1b2c-33"));
    }

    #[test]
    fn default_command_depends_on_systemd() {
        assert_eq!(default_command(true), ["systemctl", "reboot"]);
        assert_eq!(default_command(false), ["shutdown", "-r", "now"]);
        let custom = vec!["/opt/sim-reboot".to_string(), "--fast".to_string()];
        assert_eq!(resolve_command(Some(&custom)), custom);
        assert!(!resolve_command(Some(&[])).is_empty());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_command_gets_the_agent_pid_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("env");
        let boot = dir.path().join("boot_id");
        let script = format!(
            "echo \"$CAPSTAN_AGENT_PID $CAPSTAN_BOOT_ID_PATH\" > {}",
            marker.display()
        );
        let ok = ["sh".to_string(), "-c".to_string(), script];
        run_command(&ok, &boot, Duration::from_secs(10))
            .await
            .unwrap();
        let seen = std::fs::read_to_string(&marker).unwrap();
        assert_eq!(
            seen.trim(),
            format!("{} {}", std::process::id(), boot.display())
        );

        let failing = [
            "sh".into(),
            "-c".into(),
            "echo no permission >&2; exit 3".into(),
        ];
        let err = run_command(&failing, &boot, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(err.contains("no permission"), "{err}");

        let missing = ["/nonexistent/reboot".to_string()];
        let err = run_command(&missing, &boot, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(err.contains("cannot start"), "{err}");

        let slow = ["sleep".to_string(), "30".to_string()];
        let err = run_command(&slow, &boot, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
    }
}
