//! One throwaway PostgreSQL cluster per test process, with a fresh database for each test.
//!
//! The cluster is created on first use in a temporary directory and listens on a free loopback
//! port with durability switched off (fsync, synchronous commit, full-page writes): the data is
//! thrown away anyway and this makes tests several times faster. PostgreSQL refuses to run as
//! root, so when the tests run as root the cluster runs as the `postgres` OS user, which must
//! own the directory. A static never drops, so a detached watchdog shell waits for the test
//! process to exit and then stops the cluster and deletes its directory, even when the test
//! process was killed.
//!
//! Set `CAPSTAN_TEST_DATABASE_URL` (a `postgres://` URL of a role allowed to create databases) to
//! use an existing server instead; databases created there are not dropped afterwards.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};

use crate::process::{open_log, read_log};
use crate::wait::free_port;

/// Environment variable naming an existing server to use instead of a throwaway cluster.
pub const DATABASE_URL_ENV: &str = "CAPSTAN_TEST_DATABASE_URL";

/// Where Debian and Ubuntu install the server binaries, one directory per major version.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

/// Ports are picked before PostgreSQL binds them; another process may win the race.
const START_ATTEMPTS: usize = 3;

/// The PostgreSQL server the tests of this process share. Obtain it with [`postgres`].
pub struct TestPostgres {
    admin_url: String,
    psql: PathBuf,
    /// Cluster directory; `None` when using the server from [`DATABASE_URL_ENV`].
    dir: Option<PathBuf>,
    next_database: AtomicU64,
}

impl fmt::Debug for TestPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPostgres")
            .field("admin_url", &self.admin_url)
            .field("dir", &self.dir)
            .finish()
    }
}

static SHARED: OnceLock<Result<TestPostgres, String>> = OnceLock::new();

/// The shared server, started on the first call (about a second; blocking, so call it from
/// sync or async tests alike). Concurrent first calls wait for the one start. A failed start is
/// remembered: every later call returns the same error without trying again.
pub fn postgres() -> anyhow::Result<&'static TestPostgres> {
    let shared = SHARED.get_or_init(|| {
        let started = match std::env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.is_empty() => TestPostgres::external(url),
            _ => TestPostgres::throwaway(),
        };
        started.map_err(|e| format!("{e:#}"))
    });
    shared
        .as_ref()
        .map_err(|e| anyhow!("test PostgreSQL unavailable: {e}"))
}

impl TestPostgres {
    fn external(url: String) -> anyhow::Result<TestPostgres> {
        let psql = find_bin_dir(Path::new(DEBIAN_PG_ROOT), std::env::var_os("PATH"))
            .map(|dir| dir.join("psql"))
            .ok()
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("psql"));
        Ok(TestPostgres {
            admin_url: url,
            psql,
            dir: None,
            next_database: AtomicU64::new(1),
        })
    }

    fn throwaway() -> anyhow::Result<TestPostgres> {
        let bin = find_bin_dir(Path::new(DEBIAN_PG_ROOT), std::env::var_os("PATH"))?;
        let owner = cluster_owner()?;
        let dir = tempfile::Builder::new()
            .prefix("capstan-pg-")
            .tempdir()
            .context("cannot create a temporary directory for PostgreSQL")?
            .keep();
        match start_cluster(&bin, owner, &dir) {
            Ok(port) => {
                tracing::info!(port, dir = %dir.display(), "throwaway PostgreSQL started");
                Ok(TestPostgres {
                    admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    psql: bin.join("psql"),
                    dir: Some(dir),
                    next_database: AtomicU64::new(1),
                })
            }
            Err(e) => {
                // Nothing runs in the directory when start_cluster fails.
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Creates a new, empty database with a unique name and returns its `postgres://` URL.
    /// Blocks for the duration of one `CREATE DATABASE` (well under a second).
    pub fn create_database(&self) -> anyhow::Result<String> {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        // Unique across processes sharing an external server, and a valid bare identifier.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!("capstan_test_{}_{millis}_{n}", std::process::id());
        let output = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.admin_url,
                "-c",
            ])
            .arg(format!("CREATE DATABASE {name}"))
            .stdin(Stdio::null())
            .output()
            .with_context(|| {
                format!(
                    "cannot run {} (install the postgresql client)",
                    self.psql.display()
                )
            })?;
        if !output.status.success() {
            bail!(
                "CREATE DATABASE {name} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        with_database(&self.admin_url, &name)
    }

    /// URL of the maintenance database, for tests that need to look at the server itself.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The throwaway cluster's directory (data, logs, socket); `None` for an external server.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The throwaway cluster's server log; empty for an external server.
    pub fn server_log(&self) -> String {
        self.dir
            .as_ref()
            .map(|d| read_log(&d.join("server.log")))
            .unwrap_or_default()
    }
}

/// The binary directory of the newest PostgreSQL under `root/<version>/bin`, else the directory
/// on `path` that holds both `initdb` and `pg_ctl`.
fn find_bin_dir(root: &Path, path: Option<std::ffi::OsString>) -> anyhow::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(found) = path
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| has_server(d))
    {
        return Ok(found);
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in {}/*/bin or on PATH: install \
         postgresql (e.g. `apt-get install postgresql`), or set {DATABASE_URL_ENV} to the URL of \
         an existing server",
        root.display()
    )
}

/// The uid and gid to run the cluster as: `None` (ourselves) unless we are root, which
/// PostgreSQL refuses; then the `postgres` user.
fn cluster_owner() -> anyhow::Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres").context("cannot look up the postgres user")? {
        Some(user) => Ok(Some((user.uid.as_raw(), user.gid.as_raw()))),
        None => bail!(
            "tests run as root but there is no `postgres` user to run PostgreSQL as (it refuses to \
             run as root): install postgresql, or set {DATABASE_URL_ENV}"
        ),
    }
}

/// A command run as the cluster owner, in `dir` (its own working directory may not be
/// readable by that user).
fn as_owner(program: PathBuf, owner: Option<(u32, u32)>, dir: &Path) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).stdin(Stdio::null());
    if let Some((uid, gid)) = owner {
        // std drops supplementary groups when it switches from root to another uid.
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// initdb + pg_ctl start in `dir`; returns the port. Leaves a watchdog running that cleans up
/// after this process.
fn start_cluster(bin: &Path, owner: Option<(u32, u32)>, dir: &Path) -> anyhow::Result<u16> {
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(dir, Some(uid.into()), Some(gid.into()))
            .with_context(|| format!("cannot hand {} to the postgres user", dir.display()))?;
    }
    let data = dir.join("data");
    let initdb_log = dir.join("initdb.log");
    let log = open_log(&initdb_log)?;
    let status = as_owner(bin.join("initdb"), owner, dir)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ])
        .stdout(log.try_clone().context("cannot duplicate a log handle")?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot run {}", bin.join("initdb").display()))?;
    if !status.success() {
        bail!("initdb failed ({status}):\n{}", read_log(&initdb_log));
    }

    let server_log = dir.join("server.log");
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k '{}' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        let pg_ctl_log = open_log(&dir.join("pg_ctl.log"))?;
        let status = as_owner(bin.join("pg_ctl"), owner, dir)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&server_log)
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(
                pg_ctl_log
                    .try_clone()
                    .context("cannot duplicate a log handle")?,
            )
            .stderr(pg_ctl_log)
            .status()
            .with_context(|| format!("cannot run {}", bin.join("pg_ctl").display()))?;
        if status.success() {
            let postmaster = postmaster_pid(&data)?;
            spawn_watchdog(std::process::id(), postmaster, dir)
                .context("cannot start the watchdog that removes the test cluster")?;
            return Ok(port);
        }
        let log = read_log(&server_log);
        let port_taken = log.contains("could not bind") || log.contains("already in use");
        last_error = Some(anyhow!(
            "pg_ctl start failed ({status}); {}:\n{log}\n{}",
            server_log.display(),
            read_log(&dir.join("pg_ctl.log"))
        ));
        if !port_taken {
            break;
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow!("PostgreSQL did not start")))
}

fn postmaster_pid(data: &Path) -> anyhow::Result<u32> {
    let path = data.join("postmaster.pid");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("{} does not start with a pid", path.display()))
}

/// Starts a detached shell that polls `watched` every 0.5 s; once it is gone, it stops the
/// postmaster (SIGQUIT is PostgreSQL's immediate shutdown, like `pg_ctl -m immediate stop`,
/// which would refuse to run as root), waits up to 10 s for it to go, and deletes `dir`. It
/// gets its own process group so that Ctrl-C on the test run does not kill it before it has
/// cleaned up.
fn spawn_watchdog(
    watched: u32,
    postmaster: u32,
    dir: &Path,
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt as _;
    const SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
kill -QUIT "$2" 2>/dev/null
i=0
while [ $i -lt 100 ] && kill -0 "$2" 2>/dev/null && [ -e "$3/data/postmaster.pid" ]; do
  sleep 0.1; i=$((i+1))
done
kill -KILL "$2" 2>/dev/null
rm -rf "$3"
"#;
    Command::new("sh")
        .args([
            "-c",
            SCRIPT,
            "capstan-pg-watchdog",
            &watched.to_string(),
            &postmaster.to_string(),
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

/// `url` with its database (path) replaced by `database`; query parameters are kept.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("{url:?} is not a URL"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn psql(url: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-tA", "-d", url, "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {url} -c {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn each_test_gets_its_own_connectable_database() {
        let pg = postgres().unwrap();
        let a = pg.create_database().unwrap();
        let b = pg.create_database().unwrap();
        assert_ne!(a, b);
        for url in [&a, &b] {
            let name = url.rsplit('/').next().unwrap();
            assert_eq!(psql(url, "select current_database()"), name);
        }
        psql(&a, "create table t (x int); insert into t values (1)");
        assert_eq!(
            psql(&b, "select count(*) from pg_tables where tablename = 't'"),
            "0"
        );
    }

    #[test]
    fn throwaway_cluster_is_tuned_for_tests() {
        let pg = postgres().unwrap();
        if pg.dir().is_none() {
            // An external server from CAPSTAN_TEST_DATABASE_URL is configured by its owner.
            return;
        }
        let url = pg.admin_url();
        assert_eq!(psql(url, "show fsync"), "off");
        assert_eq!(psql(url, "show max_connections"), "300");
        assert_eq!(psql(url, "show server_encoding"), "UTF8");
        assert!(psql(url, "show server_version").starts_with(|c: char| c.is_ascii_digit()));
    }

    #[test]
    fn watchdog_stops_the_server_and_removes_the_dir_after_the_test_process() {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/postmaster.pid"), "1\n").unwrap();
        // Stand-ins: a short-lived "test process" and a "postmaster" that would run for a minute.
        let mut test_process = Command::new("sleep").arg("0.3").spawn().unwrap();
        // SIGQUIT's default action may dump core; the stand-in exits with 7 instead.
        let mut postmaster = Command::new("sh")
            .args(["-c", "trap 'exit 7' QUIT; while :; do sleep 0.05; done"])
            .spawn()
            .unwrap();
        let mut watchdog = spawn_watchdog(test_process.id(), postmaster.id(), &dir).unwrap();

        std::thread::sleep(Duration::from_millis(100));
        assert!(dir.exists(), "nothing happens while the test process lives");
        test_process.wait().unwrap();
        // Reaping the stand-in postmaster ourselves: a real one is reaped by its own parent.
        let status = postmaster.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(7),
            "the postmaster gets SIGQUIT (immediate shutdown)"
        );
        // It gives the postmaster up to 10 s to go; this one went at once.
        let started = Instant::now();
        watchdog.wait().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!dir.exists(), "{} must be removed", dir.display());
    }

    #[test]
    fn missing_binaries_tell_how_to_get_them() {
        let empty = tempfile::tempdir().unwrap();
        let err =
            find_bin_dir(empty.path(), Some(empty.path().as_os_str().to_owned())).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("install postgresql") && msg.contains(DATABASE_URL_ENV),
            "{msg}"
        );
    }

    #[test]
    fn newest_installed_version_wins() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9", "15", "16", "not-a-version"] {
            let bin = root.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("initdb"), "").unwrap();
            std::fs::write(bin.join("pg_ctl"), "").unwrap();
        }
        // 17 is only a client install: no server binaries.
        std::fs::create_dir_all(root.path().join("17/bin")).unwrap();
        assert_eq!(
            find_bin_dir(root.path(), None).unwrap(),
            root.path().join("16/bin")
        );
    }

    #[test]
    fn database_is_swapped_in_the_url() {
        for (url, want) in [
            (
                "postgres://postgres@127.0.0.1:5433/postgres",
                "postgres://postgres@127.0.0.1:5433/db1",
            ),
            ("postgres://u:p@h:1", "postgres://u:p@h:1/db1"),
            (
                "postgresql://u@h/x?sslmode=disable",
                "postgresql://u@h/db1?sslmode=disable",
            ),
        ] {
            assert_eq!(with_database(url, "db1").unwrap(), want);
        }
        assert!(with_database("not a url", "db1").is_err());
    }
}
