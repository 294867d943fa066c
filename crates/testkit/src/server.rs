//! `capstan-server` as a child process of a test: started on a random loopback port in its own
//! data directory, ready once it has written `server.json` (the address it actually bound and
//! its certificate fingerprint), with stdout and stderr kept in the data directory so a failing
//! test can show what the server said.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::bins::bin_path;
use crate::process::{file_len, kill_now, open_log, read_log, tail, terminate};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const STARTUP_POLL: Duration = Duration::from_millis(50);
const STOP_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_ADMIN_PASSWORD: &str = "test-admin-password";
/// Lines of the server's stderr quoted when it fails to start.
const TAIL_LINES: usize = 40;

/// How to start a [`ServerProcess`]. `ServerOptions::default()` is a TLS server on SQLite in a
/// fresh temporary data directory.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Data directory; a temporary one (deleted with the process) when `None`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`, e.g. from [`crate::TestPostgres::create_database`]; SQLite in the data
    /// directory when `None`.
    pub database_url: Option<String>,
    /// Pass `--no-tls` (plain HTTP).
    pub no_tls: bool,
    /// `CAPSTAN_ADMIN_PASSWORD` for the first administrator; `test-admin-password` when `None`.
    pub admin_password: Option<String>,
    /// Appended after the standard arguments.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the server.
    pub env: Vec<(String, String)>,
    /// The executable to run instead of the workspace's `capstan-server`.
    pub binary: Option<PathBuf>,
}

/// A running `capstan-server`. Dropping it kills the process (SIGKILL) and deletes a temporary
/// data directory, unless the thread is panicking: then the directory is kept and its path
/// printed, so the logs of a failed test can be read.
pub struct ServerProcess {
    opts: ServerOptions,
    data_dir: PathBuf,
    temp: Option<TempDir>,
    child: Option<Child>,
    url: String,
    fingerprint: Option<String>,
    admin_password: String,
}

impl ServerProcess {
    /// Starts the server and waits (up to 30 s) until it is listening. The error of a server
    /// that exits or hangs quotes the last 40 lines of its stderr.
    pub async fn start(opts: ServerOptions) -> anyhow::Result<ServerProcess> {
        let (data_dir, temp) = match &opts.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create data dir {}", dir.display()))?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("capstan-server-")
                    .tempdir()
                    .context("cannot create a temporary data dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let admin_password = opts
            .admin_password
            .clone()
            .unwrap_or_else(|| DEFAULT_ADMIN_PASSWORD.into());
        let mut server = ServerProcess {
            opts,
            data_dir,
            temp,
            child: None,
            url: String::new(),
            fingerprint: None,
            admin_password,
        };
        server.spawn("127.0.0.1:0").await?;
        Ok(server)
    }

    async fn spawn(&mut self, listen: &str) -> anyhow::Result<()> {
        let ready_file = self.data_dir.join("server.json");
        // A file left by an earlier run would make us connect to a dead address.
        match std::fs::remove_file(&ready_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot remove stale {}", ready_file.display()));
            }
        }
        let stderr_path = self.stderr_path();
        let stderr_from = file_len(&stderr_path);
        let binary = match &self.opts.binary {
            Some(b) => b.clone(),
            None => bin_path("capstan-server"),
        };

        let mut cmd = Command::new(&binary);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", listen]);
        if let Some(url) = &self.opts.database_url {
            cmd.args(["--database-url", url]);
        }
        if self.opts.no_tls {
            cmd.arg("--no-tls");
        }
        cmd.args(&self.opts.extra_args)
            .env("CAPSTAN_ADMIN_PASSWORD", &self.admin_password)
            .env("CAPSTAN_LOG_FORMAT", "text")
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(open_log(&self.data_dir.join("server.stdout.log"))?)
            .stderr(open_log(&stderr_path)?)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        tracing::debug!(pid = child.id(), data_dir = %self.data_dir.display(), "started capstan-server");

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("cannot check on capstan-server")? {
                bail!(
                    "capstan-server exited during startup ({status}); last lines of {}:\n{}",
                    stderr_path.display(),
                    tail(&stderr_path, stderr_from, TAIL_LINES)
                );
            }
            if let Some((url, fingerprint)) = read_ready_file(&ready_file) {
                self.url = url;
                self.fingerprint = fingerprint;
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                kill_now(&mut child);
                bail!(
                    "capstan-server did not write {} within {STARTUP_TIMEOUT:?}; last lines of {}:\n{}",
                    ready_file.display(),
                    stderr_path.display(),
                    tail(&stderr_path, stderr_from, TAIL_LINES)
                );
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and starts it again on the same
    /// address with the same data directory and options, so enrolled agents can reconnect.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let listen = listen_address(&self.url)
            .with_context(|| format!("cannot tell the address of {:?}", self.url))?
            .to_string();
        self.spawn(&listen).await
    }

    /// SIGTERM, then waits up to 10 s for a clean exit before killing the process.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, STOP_GRACE).await;
        }
    }

    /// SIGKILL, as a crash or power cut would end the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_now(&mut child);
        }
    }

    /// Base URL the server listens on, e.g. `https://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server certificate's fingerprint (`sha256:<hex>`) for pinning; `None` without TLS.
    pub fn fingerprint(&self) -> Option<String> {
        self.fingerprint.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Password of the first administrator (`admin`), as given to the server.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Everything the server wrote to stderr so far (all runs, when restarted).
    pub fn stderr_log(&self) -> String {
        read_log(&self.stderr_path())
    }

    /// Everything the server wrote to stdout so far.
    pub fn stdout_log(&self) -> String {
        read_log(&self.data_dir.join("server.stdout.log"))
    }

    fn stderr_path(&self) -> PathBuf {
        self.data_dir.join("server.stderr.log")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking()
            && let Some(temp) = self.temp.take()
        {
            eprintln!(
                "capstan-server data dir kept for inspection: {}",
                temp.keep().display()
            );
        }
    }
}

/// `(url, fingerprint)` from `server.json`, or `None` while it is absent or half-written.
fn read_ready_file(path: &Path) -> Option<(String, Option<String>)> {
    let text = std::fs::read(path).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let url = json.get("url")?.as_str()?.to_string();
    let fingerprint = json
        .get("fingerprint")
        .and_then(|f| f.as_str())
        .map(str::to_string);
    Some((url, fingerprint))
}

/// `127.0.0.1:40123` from `https://127.0.0.1:40123/…`.
fn listen_address(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.contains(':').then_some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for `capstan-server`: a shell script obeying the same startup contract.
    fn fake_server(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("fake-server");
        let script = format!(
            "#!/bin/sh\n\
             while [ $# -gt 0 ]; do case \"$1\" in --data-dir) DATA=\"$2\"; shift;; --listen) LISTEN=\"$2\"; shift;; esac; shift; done\n\
             {body}\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn becomes_ready_when_server_json_appears_and_restarts_on_the_same_address() {
        let bin_dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        // A stale file from an earlier run must not be mistaken for readiness.
        std::fs::write(
            data.path().join("server.json"),
            r#"{"url":"https://127.0.0.1:1","fingerprint":null}"#,
        )
        .unwrap();
        let binary = fake_server(
            bin_dir.path(),
            r#"echo "password=$CAPSTAN_ADMIN_PASSWORD format=$CAPSTAN_LOG_FORMAT" >&2
               PORT=${LISTEN##*:}; [ "$PORT" = 0 ] && PORT=45678
               sleep 0.2
               echo "{\"url\": \"https://127.0.0.1:$PORT\", \"fingerprint\": \"sha256:abcd\"}" > "$DATA/server.json"
               exec sleep 60"#,
        );
        let mut server = ServerProcess::start(ServerOptions {
            data_dir: Some(data.path().to_path_buf()),
            binary: Some(binary),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(server.url(), "https://127.0.0.1:45678");
        assert_eq!(server.fingerprint().as_deref(), Some("sha256:abcd"));
        assert_eq!(server.admin_password(), "test-admin-password");
        assert!(
            server
                .stderr_log()
                .contains("password=test-admin-password format=text")
        );

        let first_pid = server.pid().unwrap();
        server.restart().await.unwrap();
        assert_eq!(
            server.url(),
            "https://127.0.0.1:45678",
            "restart keeps the address"
        );
        assert_ne!(server.pid().unwrap(), first_pid);
        let pid = nix::unistd::Pid::from_raw(first_pid as i32);
        assert!(
            nix::sys::signal::kill(pid, None).is_err(),
            "old process is gone"
        );

        server.stop().await;
        assert_eq!(server.pid(), None);
    }

    #[tokio::test]
    async fn early_exit_reports_the_end_of_stderr() {
        let bin_dir = tempfile::tempdir().unwrap();
        let binary = fake_server(
            bin_dir.path(),
            "i=0; while [ $i -lt 100 ]; do echo \"noise $i\" >&2; i=$((i+1)); done\n\
             echo 'error: cannot connect to database' >&2; exit 3",
        );
        let err = ServerProcess::start(ServerOptions {
            binary: Some(binary),
            ..Default::default()
        })
        .await
        .err()
        .expect("a server that exits must not count as started");
        let msg = err.to_string();
        assert!(msg.contains("error: cannot connect to database"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(
            msg.contains("noise 99") && !msg.contains("noise 10\n"),
            "only the tail is quoted: {msg}"
        );
    }

    #[test]
    fn listen_address_comes_from_the_url() {
        assert_eq!(
            listen_address("https://127.0.0.1:40123"),
            Some("127.0.0.1:40123")
        );
        assert_eq!(listen_address("http://[::1]:8080/api"), Some("[::1]:8080"));
        assert_eq!(listen_address("nonsense"), None);
    }
}
