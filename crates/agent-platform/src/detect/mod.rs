//! The facts detection rules ask about, read from the running system: the [`Probe`]
//! implementations behind `capstan_core::detection::evaluate`. [`host_probe`] returns the one
//! for this OS ([`LinuxProbe`] on Linux, `WindowsProbe` on Windows); anything else answers
//! "unsupported", so a rule is never decided on a guess.
//!
//! Shared by both: a synchronous program runner (the probe is called from a blocking task)
//! that gives every child a timeout, a null stdin, capped output and, on Unix, its own
//! process group killed as a whole on timeout; streaming SHA-256 of files; and detection
//! scripts, written to a private temporary directory and passed to the interpreter as a path
//! (never spliced into a command line). Arguments are always passed as separate argv entries.
//! A program is done when it has exited and closed its output: a script that leaves a
//! background process holding its stdout runs into its timeout (and the group is killed).
//!
//! Files: paths are followed through symlinks — a dangling symlink is "absent", since what a
//! rule asks is whether the software's file is there, not whether a name exists.

// Elsewhere only the "unsupported" probe is built and the shared helpers go unused.
#![cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]

#[cfg(target_os = "linux")]
mod linux;
mod windows;

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use capstan_core::detection::{Probe, ProbeError, ScriptResult};
use sha2::{Digest, Sha256};

#[cfg(target_os = "linux")]
pub use linux::LinuxProbe;
#[cfg(windows)]
pub use windows::WindowsProbe;

/// Output of a detection script kept (the rest is read and dropped): only whether there was
/// any matters, the bound keeps a chatty script from costing memory.
pub const MAX_SCRIPT_STDOUT: u64 = 64 * 1024;
/// Output kept of package-manager queries (one line per package asked about).
const MAX_QUERY_OUTPUT: u64 = 1024 * 1024;
const MAX_STDERR: u64 = 16 * 1024;
/// Read buffer of file hashing.
const HASH_BUFFER: usize = 64 * 1024;

/// The probe of the operating system the agent runs on.
pub fn host_probe() -> Box<dyn Probe + Send> {
    #[cfg(target_os = "linux")]
    {
        Box::new(LinuxProbe::new())
    }
    #[cfg(windows)]
    {
        Box::new(WindowsProbe::new())
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Box::new(UnsupportedProbe)
    }
}

/// Answers every question with "unsupported on this OS".
#[cfg(not(any(target_os = "linux", windows)))]
struct UnsupportedProbe;

#[cfg(not(any(target_os = "linux", windows)))]
impl Probe for UnsupportedProbe {
    fn msi_product_version(&mut self, _: &str) -> Result<Option<String>, ProbeError> {
        Err(unsupported("MSI products"))
    }
    fn registry(
        &mut self,
        _: capstan_proto::software::RegistryHive,
        _: &str,
        _: Option<&str>,
        _: bool,
    ) -> Result<Option<capstan_core::detection::RegistryData>, ProbeError> {
        Err(unsupported("the Windows registry"))
    }
    fn file_exists(&mut self, _: &str) -> Result<bool, ProbeError> {
        Err(unsupported("detection"))
    }
    fn file_version(&mut self, _: &str) -> Result<Option<String>, ProbeError> {
        Err(unsupported("file version resources"))
    }
    fn file_sha256(&mut self, _: &str) -> Result<Option<String>, ProbeError> {
        Err(unsupported("detection"))
    }
    fn service(
        &mut self,
        _: &str,
    ) -> Result<Option<capstan_core::detection::ServiceState>, ProbeError> {
        Err(unsupported("services"))
    }
    fn package(
        &mut self,
        m: capstan_proto::software::DetectionManager,
        _: &str,
    ) -> Result<Option<String>, ProbeError> {
        Err(unsupported(m.as_str()))
    }
    fn script(
        &mut self,
        i: capstan_proto::jobs::Interpreter,
        _: &str,
        _: Duration,
    ) -> Result<ScriptResult, ProbeError> {
        Err(unsupported(&format!("{} scripts", i.as_str())))
    }
}

fn unsupported(what: &str) -> ProbeError {
    ProbeError::Unsupported(what.to_string())
}

fn failed(msg: impl Into<String>) -> ProbeError {
    ProbeError::Failed(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// Whether a path exists, following symlinks. "No such file" and "a component is not a
/// directory" are absence; anything else (permission denied) is an error, not a guess.
pub(crate) fn path_exists(path: &Path) -> Result<bool, ProbeError> {
    match fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if is_absence(&e) => Ok(false),
        Err(e) => Err(failed(format!("{}: {e}", path.display()))),
    }
}

fn is_absence(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Lowercase hex SHA-256 of a regular file, read in bounded chunks; `None` when the path does
/// not exist or is not a regular file (a directory has no content to compare).
pub(crate) fn file_sha256(path: &Path) -> Result<Option<String>, ProbeError> {
    let err = |e: io::Error| failed(format!("{}: {e}", path.display()));
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if is_absence(&e) => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    if !file.metadata().map_err(err)?.is_file() {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Some(format!("{:x}", hasher.finalize())))
}

// ---------------------------------------------------------------------------------------------
// Running programs
// ---------------------------------------------------------------------------------------------

/// How a program run by a probe ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Finished {
    /// `None` when killed by a signal or by the timeout.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Finished {
    /// The first non-empty line of stderr (or stdout), for error messages.
    pub(crate) fn first_error_line(&self) -> &str {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no output")
    }
}

/// Runs `cmd` to completion or until `timeout`, then kills its process group. Done means the
/// program exited *and* its output pipes closed, so a background child still writing is
/// waited for (and killed with the group at the deadline). The child is never reaped before
/// its group is killed, so the group id cannot have been reused by then.
pub(crate) fn run(
    mut cmd: Command,
    timeout: Duration,
    stdout_cap: u64,
) -> Result<Finished, ProbeError> {
    let name = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(OsStr::new("program"))
        .to_string_lossy()
        .into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("{name}: could not start: {e}")))?;
    let out_rx = drain(child.stdout.take(), stdout_cap);
    let err_rx = drain(child.stderr.take(), MAX_STDERR);
    let deadline = Instant::now() + timeout;
    let (mut out, mut err) = (None, None);
    let mut pause = Duration::from_millis(1);
    loop {
        poll(&out_rx, &mut out);
        poll(&err_rx, &mut err);
        if out.is_some() && err.is_some() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Ok(Finished {
                        code: status.code(),
                        stdout: lossy(out.unwrap_or_default()),
                        stderr: lossy(err.unwrap_or_default()),
                        timed_out: false,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    kill(&mut child);
                    return Err(failed(format!("{name}: {e}")));
                }
            }
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            return Ok(Finished {
                code: None,
                stdout: lossy(out.unwrap_or_default()),
                stderr: lossy(err.unwrap_or_default()),
                timed_out: true,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn poll(rx: &mpsc::Receiver<Vec<u8>>, slot: &mut Option<Vec<u8>>) {
    if slot.is_none() {
        match rx.try_recv() {
            Ok(bytes) => *slot = Some(bytes),
            Err(mpsc::TryRecvError::Disconnected) => *slot = Some(Vec::new()),
            Err(mpsc::TryRecvError::Empty) => {}
        }
    }
}

/// Reads a pipe on a thread, keeping the first `cap` bytes and discarding the rest so the
/// child never blocks on a full pipe. The bytes arrive when the pipe closes.
fn drain<R: Read + Send + 'static>(pipe: Option<R>, cap: u64) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = (&mut pipe).take(cap).read_to_end(&mut buf);
            let _ = io::copy(&mut pipe, &mut io::sink());
        }
        let _ = tx.send(buf);
    });
    rx
}

/// Kills the child's process group (Unix) or the child (elsewhere) and reaps it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(child.id()) {
            // Not reaped yet: the group id is still ours.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

/// A private directory (mode 0700 on Unix) holding one script, removed on drop.
pub(crate) struct ScriptFile {
    dir: PathBuf,
    pub path: PathBuf,
}

impl ScriptFile {
    /// Writes `body` to `{parent}/capstan-detect-…/script{ext}`.
    pub(crate) fn create(parent: &Path, body: &str, ext: &str) -> Result<ScriptFile, ProbeError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let err = |what: &Path, e: io::Error| {
            failed(format!("detection script: {}: {e}", what.display()))
        };
        let mut attempt = 0;
        let dir = loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = parent.join(format!(
                "capstan-detect-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let mut builder = fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            match builder.create(&dir) {
                Ok(()) => break dir,
                // Someone else's name: try another (the name is not a secret, its mode is
                // what keeps the script private).
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
                Err(e) => return Err(err(&dir, e)),
            }
        };
        let file = ScriptFile {
            path: dir.join(format!("script{ext}")),
            dir,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&file.path).map_err(|e| err(&file.path, e))?;
        io::Write::write_all(&mut f, body.as_bytes()).map_err(|e| err(&file.path, e))?;
        Ok(file)
    }
}

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Runs `program args… script` and reads the result as detection does.
pub(crate) fn run_script(
    program: &Path,
    args: &[&str],
    script: &ScriptFile,
    timeout: Duration,
) -> Result<ScriptResult, ProbeError> {
    let mut cmd = Command::new(program);
    cmd.args(args).arg(&script.path);
    let f = run(cmd, timeout, MAX_SCRIPT_STDOUT)?;
    Ok(ScriptResult {
        exit_code: f.code,
        stdout_non_empty: !f.stdout.trim().is_empty(),
        timed_out: f.timed_out,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "capstan-ap-detect-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn file_hashes_stream_and_absence_is_not_an_error() {
        let t = TempDir::new("hash");
        let f = t.0.join("hello");
        fs::write(&f, "hello").unwrap();
        assert_eq!(
            file_sha256(&f).unwrap().as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        // Larger than the buffer, so several reads are combined.
        let big = t.0.join("big");
        fs::write(&big, vec![b'a'; HASH_BUFFER * 3 + 7]).unwrap();
        let expected = format!("{:x}", Sha256::digest(vec![b'a'; HASH_BUFFER * 3 + 7]));
        assert_eq!(file_sha256(&big).unwrap(), Some(expected));
        assert_eq!(file_sha256(&t.0.join("missing")).unwrap(), None);
        assert_eq!(file_sha256(&f.join("below-a-file")).unwrap(), None);
        assert_eq!(file_sha256(&t.0).unwrap(), None, "a directory");
    }

    #[test]
    fn existence_follows_symlinks() {
        let t = TempDir::new("exists");
        let f = t.0.join("file");
        fs::write(&f, "x").unwrap();
        std::os::unix::fs::symlink(&f, t.0.join("link")).unwrap();
        std::os::unix::fs::symlink(t.0.join("gone"), t.0.join("dangling")).unwrap();
        assert_eq!(path_exists(&f), Ok(true));
        assert_eq!(path_exists(&t.0), Ok(true));
        assert_eq!(path_exists(&t.0.join("link")), Ok(true));
        assert_eq!(path_exists(&t.0.join("dangling")), Ok(false));
        assert_eq!(path_exists(&t.0.join("missing")), Ok(false));
        assert_eq!(path_exists(&f.join("x")), Ok(false));
    }

    #[test]
    fn script_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let t = TempDir::new("script");
        let path;
        {
            let s = ScriptFile::create(&t.0, "echo hi\n", ".sh").unwrap();
            path = s.path.clone();
            assert_eq!(fs::read_to_string(&s.path).unwrap(), "echo hi\n");
            let mode = fs::metadata(&s.dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            let mode = fs::metadata(&s.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!path.exists());
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 0);
    }

    #[test]
    fn the_runner_caps_output_and_reports_exit_codes() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "head -c 100000 /dev/zero; echo oops >&2; exit 3"]);
        let f = run(cmd, Duration::from_secs(10), 1000).unwrap();
        assert_eq!(f.code, Some(3));
        assert_eq!(f.stdout.len(), 1000);
        assert_eq!(f.first_error_line(), "oops");
        assert!(!f.timed_out);
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let err = run(
            Command::new("/nonexistent/capstan-nothing"),
            Duration::from_secs(1),
            10,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("capstan-nothing: could not start:"),
            "{err}"
        );
    }
}
