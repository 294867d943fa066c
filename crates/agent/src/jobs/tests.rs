//! Tests of the runner against a scripted fake server (real processes, real journal): the
//! whole path from a claimed, signed run to the acknowledged result, refusals, re-deliveries,
//! outages, cancellation, shutdown, crash recovery and the simulated reboot.

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::time::Instant as StdInstant;

use capstan_proto::jobs::{
    ClaimResponse, JobSpec, OutputReport, OutputStream, RunControl, RunPayload,
};
use ed25519_dalek::SigningKey;
use serde_json::json;

use super::api::ApiError;
use super::verify::tests::{payload, sign, signing_key};
use super::*;

const DEVICE: &str = "dev-1";

#[derive(Debug, Clone)]
enum Call {
    Claim,
    Started(String),
    Output(String, OutputReport),
    Rebooting(String, RunRebooting),
    Finished {
        run_id: String,
        result: RunFinished,
        accepted: bool,
    },
}

#[derive(Default)]
struct FakeState {
    /// What each claim returns, in turn; afterwards nothing.
    claims: VecDeque<Vec<DeliveredRun>>,
    calls: Vec<Call>,
    /// Transient failures still to inject into `finished`.
    finish_failures: u32,
    refuse_finish: bool,
    /// Answer `cancel` to output reports / to the start.
    cancel_on_output: bool,
    cancel_on_start: bool,
    /// Every request fails as if the server were unreachable.
    down: bool,
}

#[derive(Clone, Default)]
struct FakeApi {
    s: Arc<Mutex<FakeState>>,
}

impl FakeApi {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.s)
    }

    fn deliver(&self, runs: Vec<DeliveredRun>) {
        self.state().claims.push_back(runs);
    }

    fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    fn accepted_results(&self) -> Vec<(String, RunFinished)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Finished {
                    run_id,
                    result,
                    accepted: true,
                } => Some((run_id, result)),
                _ => None,
            })
            .collect()
    }

    fn finish_calls(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Finished { .. }))
            .count()
    }

    fn output_of(&self, run_id: &str, stream: OutputStream) -> String {
        let mut chunks: Vec<_> = self
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Output(id, r) if id == run_id => Some(r.chunks),
                _ => None,
            })
            .flatten()
            .filter(|c| c.stream == stream)
            .collect();
        chunks.sort_by_key(|c| c.offset);
        chunks.dedup_by_key(|c| c.offset);
        chunks.into_iter().map(|c| c.data).collect()
    }

    fn record(&self, call: Call) -> bool {
        let mut s = self.state();
        s.calls.push(call);
        s.down
    }
}

fn down() -> ApiError {
    ApiError::transient("connection refused")
}

impl RunApi for FakeApi {
    fn claim(&self) -> impl Future<Output = Result<ClaimResponse, ApiError>> + Send {
        let this = self.clone();
        async move {
            if this.record(Call::Claim) {
                return Err(down());
            }
            let runs = this.state().claims.pop_front().unwrap_or_default();
            Ok(ClaimResponse { runs })
        }
    }

    fn started(
        &self,
        run_id: &str,
        _report: &RunStarted,
    ) -> impl Future<Output = Result<RunControl, ApiError>> + Send {
        let this = self.clone();
        let run_id = run_id.to_string();
        async move {
            if this.record(Call::Started(run_id)) {
                return Err(down());
            }
            let cancel = this.state().cancel_on_start;
            Ok(RunControl { cancel })
        }
    }

    fn output(
        &self,
        run_id: &str,
        report: &OutputReport,
    ) -> impl Future<Output = Result<RunControl, ApiError>> + Send {
        let this = self.clone();
        let call = Call::Output(run_id.to_string(), report.clone());
        async move {
            if this.record(call) {
                return Err(down());
            }
            let cancel = this.state().cancel_on_output;
            Ok(RunControl { cancel })
        }
    }

    fn rebooting(
        &self,
        run_id: &str,
        report: &RunRebooting,
    ) -> impl Future<Output = Result<RunControl, ApiError>> + Send {
        let this = self.clone();
        let call = Call::Rebooting(run_id.to_string(), report.clone());
        async move {
            if this.record(call) {
                return Err(down());
            }
            Ok(RunControl { cancel: false })
        }
    }

    fn finished(
        &self,
        run_id: &str,
        report: &RunFinished,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        let this = self.clone();
        let run_id = run_id.to_string();
        let result = report.clone();
        async move {
            let mut s = this.state();
            let answer = if s.down {
                Err(down())
            } else if s.finish_failures > 0 {
                s.finish_failures -= 1;
                Err(down())
            } else if s.refuse_finish {
                Err(ApiError::permanent("409 conflict"))
            } else {
                Ok(())
            };
            s.calls.push(Call::Finished {
                run_id,
                result,
                accepted: answer.is_ok(),
            });
            answer
        }
    }
}

/// A test machine: state dir, boot id file, the server's key.
struct Machine {
    dir: tempfile::TempDir,
    server: SigningKey,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("boot_id"), "boot-1\n").unwrap();
        Self {
            dir,
            server: signing_key(42),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self) -> RunnerSettings {
        let mut s = RunnerSettings::new(
            DEVICE.to_string(),
            self.server.verifying_key(),
            self.path("state"),
        );
        s.exec.kill_grace = Duration::from_millis(300);
        s.exec.pipe_drain = Duration::from_millis(500);
        s.report.heartbeat = Duration::from_millis(100);
        s.report.flush_every = Duration::from_millis(50);
        s.outbox_retry_base = Duration::from_millis(20);
        s.reboot.boot_id_path = self.path("boot_id");
        s
    }

    fn run(&self, run_id: &str, spec: JobSpec) -> DeliveredRun {
        sign(&self.server, &payload(run_id, DEVICE, 1, spec))
    }

    fn payload_run(&self, p: &RunPayload) -> DeliveredRun {
        sign(&self.server, p)
    }

    fn journal(&self) -> Journal {
        Journal::open(&self.path("state"), Retention::default())
            .unwrap()
            .0
    }
}

fn spec(value: serde_json::Value) -> JobSpec {
    serde_json::from_value(value).unwrap()
}

fn sh(body: &str) -> JobSpec {
    spec(json!({"action": {"type": "command", "argv": ["sh", "-c", body]}}))
}

/// Poll `cond` until it holds or 10 s passed.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = StdInstant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_delivered_run_is_started_streamed_and_finished() {
    let m = Machine::new();
    let api = FakeApi::default();
    api.deliver(vec![
        m.run("run-a", sh("echo hello; echo warn >&2; exit 3")),
    ]);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    eventually("the result", || !api.accepted_results().is_empty()).await;

    let (run_id, result) = api.accepted_results().remove(0);
    assert_eq!(run_id, "run-a");
    assert_eq!(result.outcome, AttemptOutcome::Failed);
    assert_eq!(result.exit_code, Some(3));
    assert_eq!((result.stdout_bytes, result.stderr_bytes), (6, 5));
    assert_eq!(api.output_of("run-a", OutputStream::Stdout), "hello\n");
    assert_eq!(api.output_of("run-a", OutputStream::Stderr), "warn\n");

    // Order: start, then output, then the result.
    let calls = api.calls();
    let pos = |f: &dyn Fn(&Call) -> bool| calls.iter().position(f).unwrap();
    let started = pos(&|c| matches!(c, Call::Started(id) if id == "run-a"));
    let last_output = calls
        .iter()
        .rposition(|c| matches!(c, Call::Output(..)))
        .unwrap();
    let finished = pos(&|c| matches!(c, Call::Finished { .. }));
    assert!(started < last_output && last_output < finished, "{calls:?}");

    eventually("the acknowledgement in the journal", || {
        matches!(
            m.journal().get("run-a:1").map(|e| &e.state),
            Some(EntryState::Acknowledged { .. })
        )
    })
    .await;
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_key_is_journalled_before_the_process_starts() {
    let m = Machine::new();
    let api = FakeApi::default();
    let journal = Journal::path_in(&m.path("state"));
    api.deliver(vec![m.run(
        "run-j",
        sh(&format!(
            "grep -q '\"run-j:1\":{{[^}}]*\"state\":\"started\"' {} && echo journalled",
            journal.display()
        )),
    )]);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    eventually("the result", || !api.accepted_results().is_empty()).await;
    assert_eq!(api.output_of("run-j", OutputStream::Stdout), "journalled\n");
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn refused_deliveries_never_run() {
    let m = Machine::new();
    let api = FakeApi::default();
    let marker = m.path("ran");
    let touch = sh(&format!("touch {}", marker.display()));
    let mut tampered = m.run("run-t", sh("true"));
    tampered.payload = tampered
        .payload
        .replace("\"true\"", &format!("\"touch {}\"", marker.display()));
    let other_device = m.payload_run(&payload("run-o", "dev-2", 1, touch.clone()));
    let wrong_key = sign(&signing_key(9), &payload("run-w", DEVICE, 1, touch.clone()));
    let mut expired = payload("run-e", DEVICE, 1, touch);
    expired.expires_at_ms = 1;
    api.deliver(vec![
        tampered,
        other_device,
        wrong_key,
        m.payload_run(&expired),
    ]);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    eventually("the claim", || {
        api.calls().iter().any(|c| matches!(c, Call::Claim))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists());
    assert!(
        api.calls().iter().all(|c| matches!(c, Call::Claim)),
        "{:?}",
        api.calls()
    );
    assert_eq!(m.journal().len(), 0);
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_redelivered_key_is_not_run_again_and_its_result_is_sent_again() {
    let m = Machine::new();
    let api = FakeApi::default();
    let log = m.path("runs.log");
    let run = m.run("run-r", sh(&format!("echo ran >> {}", log.display())));
    api.deliver(vec![run.clone()]);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    eventually("the first result", || api.accepted_results().len() == 1).await;
    eventually("the acknowledgement", || {
        matches!(
            m.journal().get("run-r:1").map(|e| &e.state),
            Some(EntryState::Acknowledged { .. })
        )
    })
    .await;

    // The server did not get the answer and delivers the same attempt again (twice at once).
    api.deliver(vec![run.clone(), run]);
    runner.claim_now();
    eventually("the result sent again", || {
        api.accepted_results().len() == 2
    })
    .await;
    let results = api.accepted_results();
    assert_eq!(results[0], results[1]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n");
    assert_eq!(
        api.calls()
            .iter()
            .filter(|c| matches!(c, Call::Started(_)))
            .count(),
        1
    );
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn results_wait_out_a_server_outage() {
    let m = Machine::new();
    let api = FakeApi::default();
    api.state().finish_failures = 3;
    api.deliver(vec![m.run("run-o", sh("echo ok"))]);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    eventually("the result after the outage", || {
        api.accepted_results().len() == 1
    })
    .await;
    assert_eq!(api.finish_calls(), 4);
    assert_eq!(
        api.accepted_results()[0].1.outcome,
        AttemptOutcome::Succeeded
    );
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_result_the_server_refuses_is_not_sent_forever() {
    let m = Machine::new();
    let api = FakeApi::default();
    api.state().refuse_finish = true;
    api.deliver(vec![m.run("run-x", sh("true"))]);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    eventually("the refused result", || api.finish_calls() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.finish_calls(), 1);
    assert!(matches!(
        m.journal().get("run-x:1").map(|e| &e.state),
        Some(EntryState::Acknowledged { .. })
    ));
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_server_cancels_a_running_attempt_or_before_its_start() {
    for at_start in [false, true] {
        let m = Machine::new();
        let api = FakeApi::default();
        let marker = m.path("started");
        {
            let mut s = api.state();
            s.cancel_on_output = !at_start;
            s.cancel_on_start = at_start;
        }
        api.deliver(vec![m.run(
            "run-c",
            sh(&format!("touch {}; sleep 30", marker.display())),
        )]);
        let started = StdInstant::now();
        let runner = Runner::start(api.clone(), m.settings()).unwrap();
        eventually("the cancelled result", || {
            !api.accepted_results().is_empty()
        })
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let result = &api.accepted_results()[0].1;
        assert_eq!(result.outcome, AttemptOutcome::Cancelled, "{result:?}");
        assert_eq!(marker.exists(), !at_start, "at start: {at_start}");
        runner.shutdown(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn shutdown_interrupts_running_attempts_and_journals_them_first() {
    for server_down in [false, true] {
        let m = Machine::new();
        let api = FakeApi::default();
        let pidfile = m.path("pid");
        api.deliver(vec![m.run(
            "run-s",
            sh(&format!("echo $$ > {}; sleep 300", pidfile.display())),
        )]);
        let runner = Runner::start(api.clone(), m.settings()).unwrap();
        eventually("the process", || pidfile.exists()).await;
        api.state().down = server_down;
        let budget = runner.shutdown_budget();
        let stopping = StdInstant::now();
        runner.shutdown(budget).await;
        assert!(stopping.elapsed() <= budget + Duration::from_millis(500));

        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            }
        );
        let entry = m.journal().get("run-s:1").cloned().unwrap();
        let result = match entry.state {
            EntryState::Finished { result } | EntryState::Acknowledged { result } => result,
            other => panic!("{other:?}"),
        };
        assert_eq!(result.outcome, AttemptOutcome::Interrupted);
        if server_down {
            // The next start delivers it.
            let api2 = FakeApi::default();
            let runner = Runner::start(api2.clone(), m.settings()).unwrap();
            eventually("the result after restart", || {
                api2.accepted_results().len() == 1
            })
            .await;
            assert_eq!(
                api2.accepted_results()[0].1.outcome,
                AttemptOutcome::Interrupted
            );
            runner.shutdown(Duration::from_secs(2)).await;
        } else {
            assert_eq!(
                api.accepted_results()[0].1.outcome,
                AttemptOutcome::Interrupted
            );
        }
    }
}

#[tokio::test]
async fn an_attempt_lost_in_a_crash_is_reported_interrupted_and_never_rerun() {
    let m = Machine::new();
    let marker = m.path("ran");
    let run = m.run("run-k", sh(&format!("touch {}", marker.display())));
    {
        // What a kill -9 right after journalling the start leaves behind.
        std::fs::create_dir_all(m.path("state")).unwrap();
        let mut j = m.journal();
        j.record_started("run-k:1", "run-k", 1, now_ms() - 1000)
            .unwrap();
    }
    // ... and the attempt's process, still running without its agent.
    let mut orphan = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("300")
            .env("CAPSTAN_RUN_ID", "run-k")
            .env("CAPSTAN_ATTEMPT", "1")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    // Found by its environment once it has exec'd (between fork and exec /proc shows the
    // test's own environment); a real orphan of a crashed agent has long exec'd.
    let environ = format!("/proc/{}/environ", orphan.id());
    eventually("the orphan to exec", || {
        std::fs::read(&environ)
            .is_ok_and(|e| e.split(|b| *b == 0).any(|kv| kv == b"CAPSTAN_RUN_ID=run-k"))
    })
    .await;
    let api = FakeApi::default();
    // The server never got a result and delivers the attempt again.
    api.deliver(vec![run]);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    let status = orphan.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the orphan of the lost attempt was killed"
    );
    eventually("the interrupted result", || {
        !api.accepted_results().is_empty()
    })
    .await;
    let (run_id, result) = api.accepted_results().remove(0);
    assert_eq!(run_id, "run-k");
    assert_eq!(result.outcome, AttemptOutcome::Interrupted);
    assert!(result.error.unwrap().contains("interrupted"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "the lost attempt ran again");
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn simulated_reboot_completes_after_the_boot_id_changes() {
    let m = Machine::new();
    let api = FakeApi::default();
    let mut settings = m.settings();
    // The simulated reboot: a new boot id and a note of which agent asked.
    let note = m.path("reboot-called");
    settings.reboot.command = Some(vec![
        "sh".into(),
        "-c".into(),
        format!(
            "echo boot-2 > \"$CAPSTAN_BOOT_ID_PATH\"; echo \"$CAPSTAN_AGENT_PID\" > {}",
            note.display()
        ),
    ]);
    api.deliver(vec![m.run(
        "run-b",
        spec(json!({"action": {"type": "script", "interpreter": "sh",
                               "body": "echo patching; touch \"$CAPSTAN_REBOOT_REQUEST\""}})),
    )]);
    let runner = Runner::start(api.clone(), settings.clone()).unwrap();
    eventually("the reboot command", || note.exists()).await;
    assert_eq!(
        std::fs::read_to_string(&note).unwrap().trim(),
        std::process::id().to_string()
    );
    let rebooting: Vec<_> = api
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Rebooting(id, r) => Some((id, r)),
            _ => None,
        })
        .collect();
    assert_eq!(rebooting.len(), 1);
    assert_eq!(rebooting[0].0, "run-b");
    assert_eq!(rebooting[0].1.boot_id, "boot-1");
    assert_eq!(api.output_of("run-b", OutputStream::Stdout), "patching\n");
    assert!(api.accepted_results().is_empty());
    // While the reboot is pending, nothing new is claimed.
    let claims = api
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Claim))
        .count();
    runner.claim_now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        api.calls()
            .iter()
            .filter(|c| matches!(c, Call::Claim))
            .count(),
        claims
    );
    // The "machine" goes down: the intent stays in the journal.
    runner.shutdown(Duration::from_secs(2)).await;
    assert!(api.accepted_results().is_empty());
    assert!(matches!(
        m.journal().get("run-b:1").map(|e| &e.state),
        Some(EntryState::Rebooting { boot_id, .. }) if boot_id == "boot-1"
    ));

    // The agent starts in the new boot.
    let api2 = FakeApi::default();
    let runner = Runner::start(api2.clone(), settings).unwrap();
    eventually("the result after the boot", || {
        !api2.accepted_results().is_empty()
    })
    .await;
    let (run_id, result) = api2.accepted_results().remove(0);
    assert_eq!(run_id, "run-b");
    assert_eq!(result.outcome, AttemptOutcome::Succeeded);
    assert_eq!(result.error.as_deref(), Some("rebooted; boot id changed"));
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.stdout_bytes, 9);
    runner.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_reboot_that_does_not_happen_fails_the_run() {
    // (reboot command, error contains)
    let cases = [
        (
            vec![
                "sh".to_string(),
                "-c".into(),
                "echo denied >&2; exit 1".into(),
            ],
            "reboot command failed",
        ),
        (vec!["true".to_string()], "did not reboot within"),
    ];
    for (command, needle) in cases {
        let m = Machine::new();
        let api = FakeApi::default();
        let mut settings = m.settings();
        settings.reboot.command = Some(command);
        settings.reboot.wait_for_reboot = Duration::from_millis(200);
        api.deliver(vec![
            m.run("run-f", spec(json!({"action": {"type": "reboot"}}))),
        ]);
        let runner = Runner::start(api.clone(), settings).unwrap();
        eventually("the failed result", || !api.accepted_results().is_empty()).await;
        let result = &api.accepted_results()[0].1;
        assert_eq!(result.outcome, AttemptOutcome::Failed);
        assert!(
            result.error.as_deref().unwrap().contains(needle),
            "{result:?}"
        );
        runner.shutdown(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn at_most_the_configured_number_of_attempts_run_at_once() {
    let m = Machine::new();
    let api = FakeApi::default();
    let slots = m.path("slots");
    std::fs::create_dir_all(&slots).unwrap();
    let body = format!(
        "mkdir {d}/$CAPSTAN_RUN_ID; sleep 0.4; ls {d} | wc -l; rmdir {d}/$CAPSTAN_RUN_ID",
        d = slots.display()
    );
    let runs: Vec<_> = (0..6)
        .map(|i| m.run(&format!("run-{i}"), sh(&body)))
        .collect();
    api.deliver(runs);
    let runner = Runner::start(api.clone(), m.settings()).unwrap();
    eventually("all six results", || api.accepted_results().len() == 6).await;
    let most = (0..6)
        .map(|i| {
            api.output_of(&format!("run-{i}"), OutputStream::Stdout)
                .trim()
                .parse::<usize>()
                .unwrap()
        })
        .max()
        .unwrap();
    assert!((2..=MAX_CONCURRENT).contains(&most), "{most} at once");
    assert!(
        api.accepted_results()
            .iter()
            .all(|(_, r)| r.outcome == AttemptOutcome::Succeeded)
    );
    runner.shutdown(Duration::from_secs(2)).await;
}
