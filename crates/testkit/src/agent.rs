//! `capstan-agent` as a child process of a test: enrolled against a test server with an
//! enrollment token, then run as the daemon with debug logging into `<state-dir>/agent.log`.
//! Agents use the `instance` identity so that several of them on one machine are distinct
//! devices.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::bins::bin_path;
use crate::process::{kill_now, open_log, read_log, terminate};

const ENROLL_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// An enrolled agent, running or not. Dropping it kills the daemon and deletes a temporary state
/// directory, unless the thread is panicking: then the directory (with `agent.log`) is kept and
/// its path printed.
pub struct AgentProcess {
    binary: PathBuf,
    state_dir: PathBuf,
    temp: Option<TempDir>,
    child: Option<Child>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl AgentProcess {
    /// Runs `capstan-agent enroll --server URL --token T --state-dir DIR [--fingerprint FP]
    /// --identity instance` and fails, quoting the agent's output, unless it exits successfully
    /// within 60 s. `state_dir` `None` means a fresh temporary directory.
    pub async fn enroll(
        server_url: &str,
        fingerprint: Option<&str>,
        token: &str,
        state_dir: Option<PathBuf>,
    ) -> anyhow::Result<AgentProcess> {
        Self::enroll_with(
            bin_path("capstan-agent"),
            server_url,
            fingerprint,
            token,
            state_dir,
        )
        .await
    }

    async fn enroll_with(
        binary: PathBuf,
        server_url: &str,
        fingerprint: Option<&str>,
        token: &str,
        state_dir: Option<PathBuf>,
    ) -> anyhow::Result<AgentProcess> {
        let (state_dir, temp) = match state_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create state dir {}", dir.display()))?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("capstan-agent-")
                    .tempdir()
                    .context("cannot create a temporary state dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let agent = AgentProcess {
            binary,
            state_dir,
            temp,
            child: None,
            env: Vec::new(),
            args: Vec::new(),
        };

        let mut cmd = Command::new(&agent.binary);
        cmd.arg("enroll")
            .args(["--server", server_url, "--token", token])
            .arg("--state-dir")
            .arg(&agent.state_dir);
        if let Some(fp) = fingerprint {
            cmd.args(["--fingerprint", fp]);
        }
        cmd.args(["--identity", "instance"])
            .env("CAPSTAN_AGENT_LOG", "debug")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(ENROLL_TIMEOUT, cmd.output())
            .await
            .with_context(|| {
                format!("capstan-agent enroll did not finish within {ENROLL_TIMEOUT:?}")
            })?
            .with_context(|| format!("cannot run {}", agent.binary.display()))?;
        if !output.status.success() {
            bail!(
                "capstan-agent enroll failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(agent)
    }

    /// Sets an environment variable for the daemon, taking effect at the next [`start`](Self::start).
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Appends an argument after `run --state-dir DIR`, taking effect at the next start.
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Spawns `capstan-agent run --state-dir DIR` with `CAPSTAN_AGENT_LOG=debug`, stdout and
    /// stderr appended to `<state-dir>/agent.log`. Fails if the daemon is already running.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child
            && child
                .try_wait()
                .context("cannot check on capstan-agent")?
                .is_none()
        {
            bail!(
                "capstan-agent in {} is already running",
                self.state_dir.display()
            );
        }
        let log = open_log(&self.log_path())?;
        let log_err = log
            .try_clone()
            .context("cannot duplicate the agent log handle")?;
        let child = Command::new(&self.binary)
            .arg("run")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(&self.args)
            .env("CAPSTAN_AGENT_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        tracing::debug!(pid = child.id(), state_dir = %self.state_dir.display(), "started capstan-agent");
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM, then waits up to 10 s for a clean exit before killing the daemon.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, STOP_GRACE).await;
        }
    }

    /// SIGKILL, as a crash or power cut would end the daemon.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_now(&mut child);
        }
    }

    /// The daemon's exit status if it has exited on its own (`None` while it runs or when it
    /// was never started).
    pub fn exit_status(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match &mut self.child {
            Some(child) => child.try_wait().context("cannot check on capstan-agent"),
            None => Ok(None),
        }
    }

    /// The device id the server assigned, from `<state-dir>/credentials.json`.
    pub fn device_id(&self) -> anyhow::Result<String> {
        let path = self.state_dir.join("credentials.json");
        let text =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        match json.get("device_id").and_then(|v| v.as_str()) {
            Some(id) => Ok(id.to_string()),
            None => bail!("{} has no string field device_id", path.display()),
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Process id while the daemon runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Everything the daemon logged so far (all runs).
    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.state_dir.join("agent.log")
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking()
            && let Some(temp) = self.temp.take()
        {
            eprintln!(
                "capstan-agent state dir kept for inspection: {}",
                temp.keep().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for `capstan-agent` obeying the same command-line contract.
    fn fake_agent(dir: &Path) -> PathBuf {
        let path = dir.join("fake-agent");
        let script = r#"#!/bin/sh
CMD=$1; shift
while [ $# -gt 0 ]; do case "$1" in --state-dir) DIR="$2"; shift;; --token) TOKEN="$2"; shift;; --identity) ID="$2"; shift;; esac; shift; done
case "$CMD" in
  enroll)
    if [ "$TOKEN" != good-token ]; then echo "error: enrollment token rejected by server" >&2; exit 2; fi
    [ "$ID" = instance ] || { echo "expected --identity instance, got $ID" >&2; exit 9; }
    echo '{"device_id": "0191d6a4-0000-7000-8000-000000000001"}' > "$DIR/credentials.json";;
  run)
    echo "agent running, log level $CAPSTAN_AGENT_LOG, mode $MODE"
    trap 'echo "got SIGTERM"; exit 0' TERM
    while :; do sleep 0.05; done;;
esac
"#;
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn enrolls_runs_and_stops_gracefully() {
        let bin = tempfile::tempdir().unwrap();
        let mut agent = AgentProcess::enroll_with(
            fake_agent(bin.path()),
            "https://127.0.0.1:1",
            Some("sha256:ab"),
            "good-token",
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            agent.device_id().unwrap(),
            "0191d6a4-0000-7000-8000-000000000001"
        );

        agent.env("MODE", "test");
        agent.start().await.unwrap();
        assert!(
            agent.start().await.is_err(),
            "a second daemon on one state dir is refused"
        );
        let logged = crate::wait_until("agent to log", Duration::from_secs(10), || async {
            let log = agent.log();
            log.contains("agent running").then_some(log)
        })
        .await
        .unwrap();
        assert!(logged.contains("log level debug, mode test"), "{logged}");

        agent.stop().await;
        assert!(
            agent.log().contains("got SIGTERM"),
            "stop() asks politely first: {}",
            agent.log()
        );
        assert_eq!(agent.pid(), None);
    }

    #[tokio::test]
    async fn failed_enrollment_quotes_the_agent() {
        let bin = tempfile::tempdir().unwrap();
        let err = AgentProcess::enroll_with(
            fake_agent(bin.path()),
            "https://127.0.0.1:1",
            None,
            "bad-token",
            None,
        )
        .await
        .err()
        .expect("a rejected token must fail enrollment");
        let msg = err.to_string();
        assert!(
            msg.contains("enrollment token rejected") && msg.contains("exit status: 2"),
            "{msg}"
        );
    }
}
