//! Tests of the executor with real processes: exit codes, environment, users, timeouts that
//! must take grandchildren along, output floods, cancellation, pre/post scripts and reboot
//! requests. The agent runs as root here, which the `run_as` tests rely on.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use capstan_proto::jobs::OutputChunk;
use serde_json::json;

use super::*;

fn spec(value: serde_json::Value) -> JobSpec {
    serde_json::from_value(value).expect("test spec")
}

fn command(argv: &[&str]) -> JobSpec {
    spec(json!({"action": {"type": "command", "argv": argv}}))
}

fn sh(body: &str) -> JobSpec {
    spec(json!({"action": {"type": "script", "interpreter": "sh", "body": body}}))
}

fn fast() -> ExecOptions {
    ExecOptions {
        kill_grace: Duration::from_millis(300),
        pipe_drain: Duration::from_millis(500),
        ..ExecOptions::default()
    }
}

struct Ran {
    result: ExecResult,
    chunks: Vec<OutputChunk>,
}

impl Ran {
    fn text(&self, stream: OutputStream) -> String {
        self.chunks
            .iter()
            .filter(|c| c.stream == stream)
            .map(|c| c.data.as_str())
            .collect()
    }

    fn stdout(&self) -> String {
        self.text(OutputStream::Stdout)
    }

    fn stderr(&self) -> String {
        self.text(OutputStream::Stderr)
    }
}

async fn run_opts(spec: &JobSpec, opts: &ExecOptions, stop: StopSignal) -> Ran {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let attempt = Attempt {
        run_id: "run-7",
        attempt: 2,
        spec,
    };
    let result = execute(&attempt, opts, &tx, stop).await;
    drop(tx);
    let mut chunks = Vec::new();
    while let Some(c) = rx.recv().await {
        chunks.push(c);
    }
    Ran { result, chunks }
}

async fn run(spec: &JobSpec) -> Ran {
    let (_keep, stop) = watch::channel(None);
    run_opts(spec, &fast(), stop).await
}

/// Offsets of each stream start at 0 and follow each other without gaps.
fn assert_contiguous(chunks: &[OutputChunk]) {
    for stream in [OutputStream::Stdout, OutputStream::Stderr] {
        let mut next = 0u64;
        for c in chunks.iter().filter(|c| c.stream == stream) {
            assert_eq!(c.offset, next, "{stream:?}");
            next += c.data.len() as u64;
        }
    }
}

/// Live (non-zombie) processes whose process group is `pgid`.
fn live_group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces) in parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (state, pgrp) = (fields.first(), fields.get(2));
        if pgrp.and_then(|p| p.parse::<i32>().ok()) == Some(pgid) && state != Some(&"Z") {
            out.push(pid);
        }
    }
    out
}

#[tokio::test]
async fn exit_codes_signals_and_start_failures() {
    // (spec, outcome, exit code, error contains, stdout)
    type Case = (
        JobSpec,
        AttemptOutcome,
        Option<i32>,
        Option<&'static str>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            command(&["true"]),
            AttemptOutcome::Succeeded,
            Some(0),
            None,
            "",
        ),
        (
            command(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            AttemptOutcome::Failed,
            Some(3),
            None,
            "out\n",
        ),
        (
            command(&["sh", "-c", "kill -9 $$"]),
            AttemptOutcome::Failed,
            None,
            Some("killed by signal 9"),
            "",
        ),
        (
            command(&["/nonexistent/program", "x"]),
            AttemptOutcome::Failed,
            None,
            Some("cannot start /nonexistent/program"),
            "",
        ),
        (
            command(&[""]),
            AttemptOutcome::Failed,
            None,
            Some("the command is empty"),
            "",
        ),
        (
            sh("echo from sh; exit 4"),
            AttemptOutcome::Failed,
            Some(4),
            None,
            "from sh\n",
        ),
        (
            spec(
                json!({"action": {"type": "script", "interpreter": "bash", "body": "[[ 1 == 1 ]] && echo bash ok"}}),
            ),
            AttemptOutcome::Succeeded,
            Some(0),
            None,
            "bash ok\n",
        ),
        (
            spec(
                json!({"action": {"type": "script", "interpreter": "python3", "body": "import sys\nprint('py', sys.argv[1:])"}}),
            ),
            AttemptOutcome::Succeeded,
            Some(0),
            None,
            "py []\n",
        ),
        (
            spec(
                json!({"action": {"type": "script", "interpreter": "powershell", "body": "Write-Output hi"}}),
            ),
            AttemptOutcome::Failed,
            None,
            Some("only available on Windows agents"),
            "",
        ),
        (
            spec(json!({"action": {"type": "script", "interpreter": "cmd", "body": "echo hi"}})),
            AttemptOutcome::Failed,
            None,
            Some("only available on Windows agents"),
            "",
        ),
    ];
    for (spec, outcome, exit_code, error, stdout) in cases {
        let ran = run(&spec).await;
        let r = &ran.result;
        assert_eq!(r.outcome, outcome, "{spec:?}: {r:?}");
        assert_eq!(r.exit_code, exit_code, "{spec:?}: {r:?}");
        match error {
            Some(needle) => assert!(
                r.error.as_deref().is_some_and(|e| e.contains(needle)),
                "{spec:?}: {r:?}"
            ),
            None => assert_eq!(r.error, None, "{spec:?}"),
        }
        assert_eq!(ran.stdout(), stdout, "{spec:?}");
        assert!(r.finished_at_ms >= r.started_at_ms);
        assert_eq!(r.stdout.written, stdout.len() as u64);
        assert!(!r.reboot_requested);
    }
}

#[tokio::test]
async fn script_arguments_reach_the_script_as_data() {
    let spec = spec(json!({"action": {
        "type": "script", "interpreter": "sh",
        "body": "printf '%s|' \"$@\"",
        "args": ["a b", "$(touch /tmp/capstan-injected)", "*", "; exit 9"],
    }}));
    let ran = run(&spec).await;
    assert_eq!(ran.result.outcome, AttemptOutcome::Succeeded);
    assert_eq!(
        ran.stdout(),
        "a b|$(touch /tmp/capstan-injected)|*|; exit 9|"
    );
    assert!(!Path::new("/tmp/capstan-injected").exists());
}

#[tokio::test]
async fn environment_and_working_directory() {
    let wd = tempfile::tempdir().unwrap();
    let spec = spec(json!({
        "action": {"type": "command", "argv": ["sh", "-c",
            "echo \"$FOO|$CAPSTAN_RUN_ID|$CAPSTAN_ATTEMPT|$LANG|$HOME|$USER|$PATH\"; pwd; \
             test -n \"$CARGO_MANIFEST_DIR\" && echo leaked; true"]},
        "env": {"FOO": "bar baz", "CAPSTAN_RUN_ID": "spoofed"},
        "working_dir": wd.path(),
    }));
    let ran = run(&spec).await;
    assert_eq!(
        ran.result.outcome,
        AttemptOutcome::Succeeded,
        "{:?}",
        ran.result
    );
    let out = ran.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("bar baz|run-7|2|C.UTF-8|/root|root|{BASE_PATH}")
    );
    assert_eq!(Path::new(lines[1]), wd.path().canonicalize().unwrap());
    // The agent's own environment does not leak into jobs.
    assert_eq!(lines.len(), 2, "{out}");

    // Without a working directory, the job runs in its private directory, which is removed.
    let ran = run(&command(&["sh", "-c", "pwd; stat -c %a ."])).await;
    let out = ran.stdout();
    let mut lines = out.lines();
    let dir = PathBuf::from(lines.next().unwrap());
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("capstan-run-"),
        "{out}"
    );
    assert_eq!(lines.next(), Some("700"));
    assert!(!dir.exists());
}

#[tokio::test]
async fn bad_settings_fail_before_anything_runs() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("ran");
    let touch = ["touch", touched.to_str().unwrap()];
    let cases = [
        (
            spec(
                json!({"action": {"type": "command", "argv": touch}, "working_dir": "/nonexistent/dir"}),
            ),
            "working directory \"/nonexistent/dir\" does not exist",
        ),
        (
            spec(json!({"action": {"type": "command", "argv": touch}, "working_dir": "relative"})),
            "does not exist or is not a directory",
        ),
        (
            spec(json!({"action": {"type": "command", "argv": touch}, "env": {"BAD-NAME": "x"}})),
            "invalid environment variable name",
        ),
        (
            spec(
                json!({"action": {"type": "command", "argv": touch}, "run_as": "capstan-no-such-user"}),
            ),
            "no such user",
        ),
    ];
    for (spec, needle) in cases {
        let ran = run(&spec).await;
        assert_eq!(ran.result.outcome, AttemptOutcome::Failed);
        let err = ran.result.error.clone().unwrap_or_default();
        assert!(err.contains(needle), "{err}");
        assert!(!touched.exists(), "{needle}: the command ran");
    }
}

#[test]
fn identity_rules() {
    let users = |name: &str| -> Result<Option<UserInfo>, String> {
        Ok(match name {
            "alice" => Some(UserInfo {
                name: "alice".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/alice".into(),
            }),
            "root" => Some(UserInfo {
                name: "root".into(),
                uid: 0,
                gid: 0,
                home: "/root".into(),
            }),
            _ => None,
        })
    };
    let by_uid = |uid: u32| match uid {
        0 => users("root").unwrap(),
        1000 => users("alice").unwrap(),
        _ => None,
    };
    // (run_as, agent euid) -> Ok(switch, user name) | Err(contains)
    type Expected = Result<(bool, Option<&'static str>), &'static str>;
    let cases: [(Option<&str>, u32, Expected); 7] = [
        (None, 0, Ok((false, Some("root")))),
        (None, 4242, Ok((false, None))),
        (Some("alice"), 0, Ok((true, Some("alice")))),
        (Some("alice"), 1000, Ok((false, Some("alice")))),
        (Some("alice"), 1001, Err("does not run as root")),
        (Some("bob"), 0, Err("no such user")),
        (Some(""), 0, Err("not a valid user name")),
    ];
    for (run_as, euid, expected) in cases {
        let got = decide_identity(run_as, euid, users, by_uid);
        match (expected, got) {
            (Ok((switch, name)), Ok(id)) => {
                assert_eq!(id.switch, switch, "{run_as:?} {euid}");
                assert_eq!(id.user.as_ref().map(|u| u.name.as_str()), name);
            }
            (Err(needle), Err(e)) => assert!(e.contains(needle), "{run_as:?} {euid}: {e}"),
            (expected, got) => panic!("{run_as:?} {euid}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn run_as_another_user_with_that_users_groups_and_home() {
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("this test needs a `nobody` user");
    let groups =
        nix::unistd::getgrouplist(&std::ffi::CString::new("nobody").unwrap(), nobody.gid).unwrap();
    let mut expected_groups: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
    expected_groups.sort();
    expected_groups.dedup();
    let spec = spec(json!({
        "action": {"type": "script", "interpreter": "sh",
                   "body": "id -u; id -g; id -G | tr ' ' '\\n' | sort -n | uniq | tr '\\n' ' '; echo; echo \"$HOME $USER\"; touch \"$CAPSTAN_REBOOT_REQUEST\""},
        "run_as": "nobody",
    }));
    let ran = run(&spec).await;
    assert_eq!(
        ran.result.outcome,
        AttemptOutcome::Succeeded,
        "{:?} {}",
        ran.result,
        ran.stderr()
    );
    let out = ran.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], nobody.uid.to_string());
    assert_eq!(lines[1], nobody.gid.to_string());
    let seen: Vec<u32> = lines[2]
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    assert_eq!(seen, expected_groups, "root's groups must not leak");
    assert_eq!(lines[3], format!("{} nobody", nobody.dir.display()));
    // The private directory belongs to the user: the script could ask for a reboot.
    assert!(ran.result.reboot_requested);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group_including_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut spec = sh(&format!(
        "echo $$ > {}; (trap '' TERM; sleep 300) & sleep 300 & echo started; wait",
        pidfile.display()
    ));
    spec.timeout_secs = 1;
    let started = StdInstant::now();
    let ran = run(&spec).await;
    let elapsed = started.elapsed();
    assert_eq!(
        ran.result.outcome,
        AttemptOutcome::TimedOut,
        "{:?}",
        ran.result
    );
    assert!(
        ran.result
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 1 s"),
        "{:?}",
        ran.result
    );
    assert_eq!(ran.stdout(), "started\n");
    // 1 s timeout + 0.3 s grace (the TERM-ignoring grandchild needs the KILL) + slack.
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    let pgid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(live_group_members(pgid), Vec::<i32>::new());
}

#[tokio::test]
async fn background_processes_do_not_hold_the_attempt_open() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let spec = sh(&format!(
        "echo $$ > {}; sleep 300 & echo done",
        pidfile.display()
    ));
    let started = StdInstant::now();
    let ran = run(&spec).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ran.result.outcome, AttemptOutcome::Succeeded);
    assert_eq!(ran.stdout(), "done\n");
    let pgid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(live_group_members(pgid), Vec::<i32>::new());
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn an_output_flood_stays_capped_with_a_marker_and_bounded_memory() {
    const FLOOD: u64 = 50 * 1024 * 1024;
    let spec = spec(json!({"action": {"type": "command",
        "argv": ["sh", "-c", format!("head -c {FLOOD} /dev/zero | tr '\\0' 'x'; echo tail >&2")]}}));
    let before = vm_rss_kib();
    // The peak matters, not the end: sample from a thread while the flood runs.
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(vm_rss_kib(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<OutputChunk>();
    let (_keep, stop) = watch::channel(None);
    let attempt = Attempt {
        run_id: "flood",
        attempt: 1,
        spec: &spec,
    };
    let opts = fast();
    // Count the output as it arrives instead of keeping it, like the reporter would send it.
    let consumer = tokio::spawn(async move {
        let mut kept = 0u64;
        let mut next = [0u64; 2];
        let mut biggest = 0usize;
        let mut tail = String::new();
        let mut stderr = String::new();
        while let Some(c) = rx.recv().await {
            let i = usize::from(c.stream == OutputStream::Stderr);
            assert_eq!(c.offset, next[i], "offsets must be contiguous");
            next[i] += c.data.len() as u64;
            biggest = biggest.max(c.data.len());
            if i == 0 {
                kept += c.data.len() as u64;
                tail = c.data;
            } else {
                stderr.push_str(&c.data);
            }
        }
        (kept, biggest, tail, stderr)
    });
    let result = execute(&attempt, &opts, &tx, stop).await;
    drop(tx);
    let (kept, biggest, tail, stderr) = consumer.await.unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);

    assert_eq!(result.outcome, AttemptOutcome::Succeeded, "{result:?}");
    assert_eq!(result.stdout.written, FLOOD);
    assert!(result.stdout.truncated);
    assert!(!result.stderr.truncated);
    assert_eq!(stderr, "tail\n");
    let marker = format!(
        "\n[capstan: output truncated: {} bytes dropped]\n",
        FLOOD - limits::OUTPUT_CAP_BYTES as u64
    );
    assert_eq!(tail, marker);
    assert_eq!(kept, (limits::OUTPUT_CAP_BYTES + marker.len()) as u64);
    assert!(biggest <= CHUNK_MAX, "{biggest}");
    // The flood went through the agent without being held: allow generous slack for the
    // allocator and other tests in this process, far below the 50 MiB written.
    assert!(
        peak.saturating_sub(before) < 24 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
}

#[tokio::test]
async fn non_utf8_output_is_converted_lossily() {
    let ran = run(&command(&["printf", "a\\377b\\n\\303\\251"])).await;
    assert_eq!(ran.stdout(), "a\u{FFFD}b\né");
    assert_eq!(ran.result.stdout.written, 6);
}

#[tokio::test]
async fn cancel_and_shutdown_stop_a_running_attempt() {
    for (reason, outcome, needle) in [
        (StopReason::Cancel, AttemptOutcome::Cancelled, "cancelled"),
        (
            StopReason::Shutdown,
            AttemptOutcome::Interrupted,
            "interrupted",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let spec = sh(&format!(
            "echo $$ > {}; echo running; sleep 300 & wait",
            pidfile.display()
        ));
        let (stop_tx, stop_rx) = watch::channel(None);
        let task = tokio::spawn(async move { run_opts(&spec, &fast(), stop_rx).await });
        // Let it start and print.
        let deadline = StdInstant::now() + Duration::from_secs(5);
        while !pidfile.exists() && StdInstant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = StdInstant::now();
        stop_tx.send_replace(Some(reason));
        let ran = task.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(ran.result.outcome, outcome);
        assert!(
            ran.result.error.as_deref().unwrap().contains(needle),
            "{:?}",
            ran.result
        );
        assert_eq!(ran.stdout(), "running\n");
        let pgid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(live_group_members(pgid), Vec::<i32>::new());
    }
}

#[tokio::test]
async fn a_stop_requested_before_the_start_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let touched = dir.path().join("ran");
    let spec = command(&["touch", touched.to_str().unwrap()]);
    let (_tx, stop) = watch::channel(Some(StopReason::Cancel));
    let ran = run_opts(&spec, &fast(), stop).await;
    assert_eq!(ran.result.outcome, AttemptOutcome::Cancelled);
    assert!(!touched.exists());
}

#[tokio::test]
async fn pre_and_post_scripts() {
    struct Case {
        pre: Option<i32>,
        action: i32,
        post: Option<i32>,
        always: bool,
        outcome: AttemptOutcome,
        exit_code: Option<i32>,
        ran: &'static [&'static str],
        error: Option<&'static str>,
    }
    let cases = [
        Case {
            pre: Some(0),
            action: 0,
            post: Some(0),
            always: false,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            ran: &["pre", "action", "post"],
            error: None,
        },
        Case {
            pre: Some(1),
            action: 0,
            post: Some(0),
            always: false,
            outcome: AttemptOutcome::Failed,
            exit_code: None,
            ran: &["pre"],
            error: Some("pre-script failed (exit code 1); the action was not run"),
        },
        Case {
            pre: Some(1),
            action: 0,
            post: Some(0),
            always: true,
            outcome: AttemptOutcome::Failed,
            exit_code: None,
            ran: &["pre", "post"],
            error: Some("pre-script failed"),
        },
        Case {
            pre: None,
            action: 2,
            post: Some(0),
            always: false,
            outcome: AttemptOutcome::Failed,
            exit_code: Some(2),
            ran: &["action"],
            error: None,
        },
        Case {
            pre: None,
            action: 2,
            post: Some(0),
            always: true,
            outcome: AttemptOutcome::Failed,
            exit_code: Some(2),
            ran: &["action", "post"],
            error: None,
        },
        Case {
            pre: None,
            action: 0,
            post: Some(5),
            always: false,
            outcome: AttemptOutcome::Failed,
            exit_code: Some(0),
            ran: &["action", "post"],
            error: Some("post-script failed (exit code 5)"),
        },
        Case {
            pre: None,
            action: 2,
            post: Some(5),
            always: true,
            outcome: AttemptOutcome::Failed,
            exit_code: Some(2),
            ran: &["action", "post"],
            error: Some("post-script failed (exit code 5)"),
        },
    ];
    for case in cases {
        let script = |name: &str, code: i32| json!({"interpreter": "sh", "body": format!("echo {name}; exit {code}")});
        let mut value = json!({
            "action": {"type": "command", "argv": ["sh", "-c", format!("echo action; exit {}", case.action)]},
            "post_script_always": case.always,
        });
        if let Some(code) = case.pre {
            value["pre_script"] = script("pre", code);
        }
        if let Some(code) = case.post {
            value["post_script"] = script("post", code);
        }
        let ran = run(&spec(value)).await;
        let label = format!(
            "pre {:?} action {} post {:?} always {}",
            case.pre, case.action, case.post, case.always
        );
        assert_eq!(
            ran.result.outcome, case.outcome,
            "{label}: {:?}",
            ran.result
        );
        assert_eq!(ran.result.exit_code, case.exit_code, "{label}");
        match case.error {
            Some(needle) => assert!(
                ran.result.error.as_deref().unwrap_or("").contains(needle),
                "{label}: {:?}",
                ran.result
            ),
            None => assert_eq!(ran.result.error, None, "{label}"),
        }
        let printed: Vec<String> = ran
            .stdout()
            .lines()
            .filter(|l| !l.starts_with("== "))
            .map(str::to_string)
            .collect();
        assert_eq!(printed, case.ran, "{label}");
    }
}

#[tokio::test]
async fn parts_get_headers_only_when_there_are_parts() {
    let ran = run(&spec(json!({
        "action": {"type": "command", "argv": ["sh", "-c", "printf action; echo oops >&2"]},
        "pre_script": {"interpreter": "sh", "body": "echo pre"},
        "post_script": {"interpreter": "bash", "body": "echo post"},
    })))
    .await;
    assert_eq!(
        ran.stdout(),
        "== pre-script ==\npre\n== action ==\naction\n== post-script ==\npost\n"
    );
    assert_eq!(ran.stderr(), "== action ==\noops\n");
    assert_eq!(ran.result.stdout.written, "pre\nactionpost\n".len() as u64);
    assert_contiguous(&ran.chunks);

    let plain = run(&command(&["echo", "plain"])).await;
    assert_eq!(plain.stdout(), "plain\n");
}

#[tokio::test]
async fn reboot_requests() {
    // (spec, outcome, exit code, reboot requested)
    let cases = [
        (
            spec(
                json!({"action": {"type": "command", "argv": ["sh", "-c", "exit 194"]}, "reboot_exit_codes": [194]}),
            ),
            AttemptOutcome::Succeeded,
            Some(194),
            true,
        ),
        (
            spec(json!({"action": {"type": "command", "argv": ["sh", "-c", "exit 194"]}})),
            AttemptOutcome::Failed,
            Some(194),
            false,
        ),
        (
            sh("touch \"$CAPSTAN_REBOOT_REQUEST\""),
            AttemptOutcome::Succeeded,
            Some(0),
            true,
        ),
        (
            sh("touch \"$CAPSTAN_REBOOT_REQUEST\"; exit 1"),
            AttemptOutcome::Failed,
            Some(1),
            false,
        ),
        (sh("true"), AttemptOutcome::Succeeded, Some(0), false),
        (
            spec(json!({"action": {"type": "reboot"}})),
            AttemptOutcome::Succeeded,
            None,
            true,
        ),
        (
            spec(
                json!({"action": {"type": "reboot"}, "pre_script": {"interpreter": "sh", "body": "exit 1"}}),
            ),
            AttemptOutcome::Failed,
            None,
            false,
        ),
        (
            spec(
                json!({"action": {"type": "command", "argv": ["sh", "-c", "exit 194"]}, "reboot_exit_codes": [194],
                        "post_script": {"interpreter": "sh", "body": "exit 1"}}),
            ),
            AttemptOutcome::Failed,
            Some(194),
            false,
        ),
    ];
    for (spec, outcome, exit_code, requested) in cases {
        let ran = run(&spec).await;
        assert_eq!(ran.result.outcome, outcome, "{spec:?}: {:?}", ran.result);
        assert_eq!(ran.result.exit_code, exit_code, "{spec:?}");
        assert_eq!(ran.result.reboot_requested, requested, "{spec:?}");
    }
}

#[test]
fn interpreters_and_their_command_lines() {
    let script = Path::new("/tmp/x/script.ps1");
    let args = vec!["a b".to_string(), "c".to_string()];
    let ps = interpreter_argv(Interpreter::Powershell, script, &args, true).unwrap();
    assert_eq!(ps.first().unwrap(), "powershell.exe");
    assert_eq!(
        &ps[ps.len() - 4..],
        ["-File", "/tmp/x/script.ps1", "a b", "c"]
    );
    assert!(ps.iter().any(|a| a == "-NonInteractive"));
    let cmd = interpreter_argv(Interpreter::Cmd, script, &args, true).unwrap();
    assert_eq!(&cmd[..4], ["cmd.exe", "/D", "/Q", "/C"]);
    for bad in ["a&b", "x|y", "%PATH%", "q\"uote", "a\nb"] {
        let err = interpreter_argv(Interpreter::Cmd, script, &[bad.to_string()], true).unwrap_err();
        assert!(err.contains("cmd.exe would interpret"), "{bad}: {err}");
    }
    for interp in [Interpreter::Powershell, Interpreter::Cmd] {
        assert!(interpreter_argv(interp, script, &[], false).is_err());
    }
    let sh = interpreter_argv(Interpreter::Sh, Path::new("/t/s.sh"), &args, false).unwrap();
    assert_eq!(sh, ["sh", "/t/s.sh", "a b", "c"]);
    assert_eq!(
        script_file_name("script", Interpreter::Python3),
        "script.py"
    );
    assert_eq!(
        script_file_name("pre-script", Interpreter::Powershell),
        "pre-script.ps1"
    );
    assert_eq!(
        script_file_name("post-script", Interpreter::Cmd),
        "post-script.cmd"
    );
}

#[test]
fn env_names() {
    for ok in ["A", "_x", "FOO_1", "path"] {
        assert!(valid_env_name(ok), "{ok}");
    }
    for bad in ["", "1A", "A-B", "A=B", "Ä", "A B"] {
        assert!(!valid_env_name(bad), "{bad}");
    }
}

#[test]
fn processes_left_over_from_a_lost_attempt_are_found_and_killed() {
    use std::os::unix::process::CommandExt;
    let run_id = format!("leftover-{}", std::process::id());
    let spawn = |attempt: &str| {
        std::process::Command::new("sh")
            .args(["-c", "sleep 300 & exec sleep 300"])
            .env("CAPSTAN_RUN_ID", &run_id)
            .env("CAPSTAN_ATTEMPT", attempt)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let mut lost = spawn("1");
    let mut other_attempt = spawn("2");
    let lost_group = i32::try_from(lost.id()).unwrap();
    let other_group = i32::try_from(other_attempt.id()).unwrap();
    // Let the shell start its background child.
    let deadline = StdInstant::now() + Duration::from_secs(5);
    while live_group_members(lost_group).len() < 2 && StdInstant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(live_group_members(lost_group).len(), 2);

    assert_eq!(kill_leftovers(&run_id, 1), 2);
    let _ = lost.wait();
    let deadline = StdInstant::now() + Duration::from_secs(5);
    while !live_group_members(lost_group).is_empty() && StdInstant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(live_group_members(lost_group), Vec::<i32>::new());
    // Another attempt of the same run is not touched.
    assert_eq!(live_group_members(other_group).len(), 2);
    assert_eq!(kill_leftovers(&run_id, 3), 0);

    assert_eq!(kill_leftovers(&run_id, 2), 2);
    let _ = other_attempt.wait();
}
