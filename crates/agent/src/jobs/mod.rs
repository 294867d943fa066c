//! The job runner: claims this device's runs when the server says some are pending, checks
//! each delivered run (signature, device, key, expiry), and executes up to
//! [`MAX_CONCURRENT`] attempts at once, reporting start, streamed output, reboots and the final
//! result. Every attempt's idempotency key is journalled before its process starts and its
//! result is journalled before it is sent, so a crash, a restart or a server outage can delay
//! a result but never lose it, and never makes the agent run the same attempt twice.
//!
//! Tasks: one claims (woken by [`Runner::claim_now`]), one sends the journal's outbox with
//! backoff until the server acknowledges, and one per attempt (waiting for a slot, running,
//! streaming output through [`report`]). [`Runner::shutdown`] stops claiming, kills running
//! process groups and journals them as `interrupted` before it returns.

pub mod api;
pub mod exec;
pub mod journal;
pub mod output;
pub mod reboot;
pub mod report;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use capstan_proto::jobs::{
    AttemptOutcome, DeliveredRun, RunFinished, RunPayload, RunRebooting, RunStarted,
};
use ed25519_dalek::VerifyingKey;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use self::api::RunApi;
use self::exec::{Attempt, ExecOptions, ExecResult, StopReason};
use self::journal::{EntryState, Journal, Retention};
use self::reboot::RebootSettings;
use self::report::ReportOptions;
use self::verify::Refusal;

/// Attempts that run at the same time; further claimed runs wait for a slot.
pub const MAX_CONCURRENT: usize = 4;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Everything the runner needs to know.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub device_id: String,
    /// The server's key from enrollment; every delivered run must carry its signature.
    pub signing_key: VerifyingKey,
    /// Where the journal lives (the agent's state directory).
    pub state_dir: PathBuf,
    pub reboot: RebootSettings,
    pub exec: ExecOptions,
    pub report: ReportOptions,
    pub retention: Retention,
    pub max_concurrent: usize,
    /// First delay before results are sent again after the server was unreachable; doubled
    /// per failure up to 30 s.
    pub outbox_retry_base: Duration,
    /// Downloads, cache and detection for software runs; without it they fail with a reason.
    pub software: Option<crate::software::SoftwareContext>,
}

impl RunnerSettings {
    pub fn new(device_id: String, signing_key: VerifyingKey, state_dir: PathBuf) -> Self {
        Self {
            device_id,
            signing_key,
            state_dir,
            reboot: RebootSettings::default(),
            exec: ExecOptions::default(),
            report: ReportOptions::default(),
            retention: Retention::default(),
            max_concurrent: MAX_CONCURRENT,
            outbox_retry_base: Duration::from_secs(1),
            software: None,
        }
    }

    /// How long [`Runner::shutdown`] may take: killing with grace, draining pipes, and a last
    /// attempt to deliver results.
    pub fn shutdown_budget(&self) -> Duration {
        self.exec.kill_grace + self.exec.pipe_drain + Duration::from_secs(4)
    }
}

/// State shared by the runner's tasks.
struct Ctx<A> {
    api: A,
    settings: RunnerSettings,
    journal: Mutex<Journal>,
    /// Keys claimed in this process and not yet done, with the way to stop each.
    active: Mutex<HashMap<String, watch::Sender<Option<StopReason>>>>,
    slots: Arc<Semaphore>,
    claim_wake: Notify,
    outbox_wake: Notify,
    stopping: watch::Sender<bool>,
    /// A reboot is underway: claiming more work would only have it interrupted.
    reboot_pending: AtomicBool,
    /// Each attempt task holds a clone; shutdown waits until all are dropped.
    live: Mutex<Option<mpsc::Sender<()>>>,
}

/// Lock a mutex, recovering the data if a task panicked while holding it: the journal and the
/// active set are still consistent on disk and in meaning, and a panic must not stop the
/// agent from reporting.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Handle of the running job runner.
pub struct Runner<A: RunApi> {
    ctx: Arc<Ctx<A>>,
    live_rx: mpsc::Receiver<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl<A: RunApi> Runner<A> {
    /// Open the journal, settle what a previous process left behind (interrupted attempts,
    /// reboots), then start claiming and sending results.
    pub fn start(api: A, settings: RunnerSettings) -> Result<Self, String> {
        let (mut journal, report) = Journal::open(&settings.state_dir, settings.retention)
            .map_err(|e| format!("cannot open the job journal: {e}"))?;
        if let Some(aside) = &report.moved_aside {
            error!(
                moved_to = %aside.display(),
                error = report.parse_error.as_deref().unwrap_or(""),
                "THE JOB JOURNAL WAS UNREADABLE and has been moved aside; attempts recorded \
                 in it cannot be recognised if the server delivers them again"
            );
        }
        for (run_id, attempt) in journal.unfinished() {
            // Outside systemd nothing cleans up after a killed agent: the processes of the
            // lost attempt may still run, and must not race a retry of the same run.
            let killed = exec::kill_leftovers(&run_id, attempt);
            if killed > 0 {
                warn!(
                    run_id,
                    attempt, killed, "killed processes left over from a lost attempt"
                );
            }
        }
        let boot_id = reboot::read_boot_id(&settings.reboot.boot_id_path);
        // A journal that cannot be written is not a reason to stop the agent (inventory still
        // works); the recovered results are in memory and go to disk with the next write,
        // and an attempt that cannot be journalled is refused rather than run.
        let settled = journal
            .recover(boot_id.as_deref(), now_ms())
            .unwrap_or_else(|e| {
                error!(error = %e, "cannot write the job journal");
                0
            });
        debug!(entries = journal.len(), "job journal loaded");
        if settled > 0 {
            info!(
                settled,
                "results of attempts from before the restart are waiting to be sent"
            );
        }
        let (live_tx, live_rx) = mpsc::channel(1);
        let ctx = Arc::new(Ctx {
            api,
            slots: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            settings,
            journal: Mutex::new(journal),
            active: Mutex::new(HashMap::new()),
            claim_wake: Notify::new(),
            outbox_wake: Notify::new(),
            stopping: watch::channel(false).0,
            reboot_pending: AtomicBool::new(false),
            live: Mutex::new(Some(live_tx)),
        });
        let tasks = vec![
            tokio::spawn(claim_loop(ctx.clone())),
            tokio::spawn(outbox_loop(ctx.clone())),
        ];
        ctx.claim_wake.notify_one();
        ctx.outbox_wake.notify_one();
        Ok(Self {
            ctx,
            live_rx,
            tasks,
        })
    }

    /// Claim pending runs soon (does not wait for it).
    pub fn claim_now(&self) {
        self.ctx.claim_wake.notify_one();
    }

    /// Take runs the server delivered with a check-in, exactly as claimed ones (verified,
    /// journalled, started in their own tasks; does not wait for them).
    pub fn deliver(&self, runs: &[capstan_proto::jobs::DeliveredRun]) {
        if self.ctx.reboot_pending.load(Ordering::SeqCst) {
            // They stay delivered on the server and come again after the reboot.
            debug!(
                runs = runs.len(),
                "a reboot is underway; not taking delivered runs"
            );
            return;
        }
        for run in runs {
            self.ctx.accept(run);
        }
    }

    /// How long [`Runner::shutdown`] may take.
    pub fn shutdown_budget(&self) -> Duration {
        self.ctx.settings.shutdown_budget()
    }

    /// Stop: no more claims, running attempts are killed and journalled as `interrupted`,
    /// and what is in the outbox gets one last chance to be sent within `budget`.
    pub async fn shutdown(mut self, budget: Duration) {
        let deadline = tokio::time::Instant::now() + budget;
        self.ctx.stopping.send_replace(true);
        // No attempt can be added after this, so the snapshot below is complete.
        lock(&self.ctx.live).take();
        let running: Vec<_> = lock(&self.ctx.active).values().cloned().collect();
        for stop in &running {
            stop.send_replace(Some(StopReason::Shutdown));
        }
        if !running.is_empty() {
            info!(attempts = running.len(), "stopping running jobs");
        }
        // `None` once every attempt task has ended.
        let _ = tokio::time::timeout_at(deadline, self.live_rx.recv()).await;
        for task in &self.tasks {
            task.abort();
        }
        let _ = tokio::time::timeout_at(deadline, send_outbox(&self.ctx, true)).await;
    }
}

impl<A: RunApi> Drop for Runner<A> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl<A: RunApi> Ctx<A> {
    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        lock(&self.journal)
    }

    /// Journal a final result (the outbox). If the journal cannot be written, the error is
    /// logged loudly and the result is sent once straight from memory instead.
    fn record_result(&self, key: &str, run_id: &str, result: &RunFinished) {
        if let Err(e) = self.journal().record_result(key, result.clone(), now_ms()) {
            error!(key, error = %e, "cannot journal the result of an attempt; sending it once");
            let api = self.api.clone();
            let run_id = run_id.to_string();
            let result = result.clone();
            tokio::spawn(async move {
                if let Err(e) = api.finished(&run_id, &result).await {
                    error!(run_id, error = %e, "result of an attempt lost");
                }
            });
        }
    }

    fn cancel(&self, key: &str) {
        if let Some(stop) = lock(&self.active).get(key) {
            stop.send_if_modified(|s| {
                if s.is_none() {
                    *s = Some(StopReason::Cancel);
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Check a delivered run and start it, or answer from the journal if it ran before.
    fn accept(self: &Arc<Self>, delivered: &DeliveredRun) {
        let payload = match verify::verify_run(
            delivered,
            &self.settings.signing_key,
            &self.settings.device_id,
            now_ms(),
        ) {
            Ok(p) => p,
            Err(refusal @ Refusal::Expired { .. }) => {
                warn!(reason = %refusal, "not starting an expired run");
                return;
            }
            Err(refusal) => {
                error!(reason = %refusal, "REFUSED a delivered run");
                return;
            }
        };
        let key = payload.idempotency_key.clone();
        let mut active = lock(&self.active);
        if active.contains_key(&key) {
            debug!(key, "run delivered again while it is still being handled");
            return;
        }
        {
            let mut journal = self.journal();
            if let Some(entry) = journal.get(&key) {
                let now = now_ms();
                let outcome = match &entry.state {
                    EntryState::Started => {
                        let result = journal::interrupted_result(
                            entry.attempt,
                            entry.recorded_at_ms,
                            now,
                            "interrupted: the attempt was started before but did not finish",
                        );
                        journal.record_result(&key, result, now).map(|()| true)
                    }
                    EntryState::Rebooting { .. } => Ok(false),
                    EntryState::Finished { .. } | EntryState::Acknowledged { .. } => {
                        journal.resend(&key, now)
                    }
                };
                match outcome {
                    Ok(true) => {
                        info!(key, "attempt already ran here; re-sending its result");
                        self.outbox_wake.notify_one();
                    }
                    Ok(false) => debug!(key, "attempt is waiting for a reboot"),
                    Err(e) => error!(key, error = %e, "cannot update the job journal"),
                }
                return;
            }
        }
        let Some(live) = lock(&self.live).clone() else {
            return;
        };
        let (stop_tx, stop_rx) = watch::channel(None);
        active.insert(key.clone(), stop_tx);
        drop(active);
        info!(
            run_id = %payload.run_id,
            attempt = payload.attempt,
            action = payload.spec.action.kind(),
            "run received"
        );
        tokio::spawn(run_attempt(self.clone(), payload, stop_rx, live));
    }

    /// Report the start; retried briefly. The attempt runs even if the server cannot be
    /// told: the start is implied by the output and the result that follow.
    async fn report_start(
        &self,
        payload: &RunPayload,
        started_at_ms: i64,
        stop: &mut watch::Receiver<Option<StopReason>>,
    ) -> StartAnswer {
        let report = RunStarted {
            attempt: payload.attempt,
            started_at_ms,
        };
        let mut delay = Duration::from_millis(500);
        for round in 1..=START_TRIES {
            let result = tokio::select! {
                r = self.api.started(&payload.run_id, &report) => r,
                _ = stop.wait_for(|s| s.is_some()) => return StartAnswer::Stopped,
            };
            match result {
                Ok(control) if control.cancel => return StartAnswer::Cancel,
                Ok(_) => return StartAnswer::Go,
                Err(e) if e.permanent => return StartAnswer::Refused(e.message),
                Err(e) => {
                    warn!(run_id = %payload.run_id, round, error = %e, "start report failed");
                    if round == START_TRIES {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|s| s.is_some()) => return StartAnswer::Stopped,
                    }
                    delay *= 2;
                }
            }
        }
        StartAnswer::Go
    }
}

const START_TRIES: u32 = 3;

enum StartAnswer {
    Go,
    Cancel,
    Refused(String),
    Stopped,
}

async fn claim_loop<A: RunApi>(ctx: Arc<Ctx<A>>) {
    let mut stopping = ctx.stopping.subscribe();
    loop {
        tokio::select! {
            _ = ctx.claim_wake.notified() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        if ctx.reboot_pending.load(Ordering::SeqCst) {
            debug!("a reboot is underway; not claiming runs");
            continue;
        }
        let mut delay = Duration::from_secs(1);
        for round in 1..=3u32 {
            match ctx.api.claim().await {
                Ok(resp) => {
                    if !resp.runs.is_empty() {
                        debug!(runs = resp.runs.len(), "claimed runs");
                    }
                    for run in &resp.runs {
                        ctx.accept(run);
                    }
                    break;
                }
                Err(e) => {
                    warn!(round, error = %e, "claiming runs failed");
                    if e.permanent || round == 3 {
                        // The next check-in that says `runs_pending` tries again.
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                    delay *= 2;
                }
            }
        }
    }
}

/// Send every unsent result not owned by a running attempt task. Returns whether all went
/// through (or were refused for good).
async fn send_outbox<A: RunApi>(ctx: &Ctx<A>, include_active: bool) -> bool {
    let pending = ctx.journal().outbox();
    let busy: Vec<String> = if include_active {
        Vec::new()
    } else {
        lock(&ctx.active).keys().cloned().collect()
    };
    let mut all_sent = true;
    for p in pending.into_iter().filter(|p| !busy.contains(&p.key)) {
        match ctx.api.finished(&p.run_id, &p.result).await {
            Ok(()) => {
                info!(
                    run_id = %p.run_id,
                    attempt = p.result.attempt,
                    outcome = p.result.outcome.as_str(),
                    "result delivered"
                );
                if let Err(e) = ctx.journal().mark_acknowledged(&p.key, now_ms()) {
                    error!(key = %p.key, error = %e, "cannot update the job journal");
                }
            }
            Err(e) if e.permanent => {
                warn!(run_id = %p.run_id, error = %e, "the server refused the result; dropped");
                if let Err(e) = ctx.journal().mark_acknowledged(&p.key, now_ms()) {
                    error!(key = %p.key, error = %e, "cannot update the job journal");
                }
            }
            Err(e) => {
                debug!(run_id = %p.run_id, error = %e, "result not delivered yet");
                all_sent = false;
                // The server is away; the rest would fail the same way.
                break;
            }
        }
    }
    all_sent
}

async fn outbox_loop<A: RunApi>(ctx: Arc<Ctx<A>>) {
    let mut failures = 0u32;
    let mut rng = crate::machine::Rng::new(u64::from(std::process::id()) ^ now_ms() as u64);
    loop {
        if send_outbox(&ctx, false).await {
            failures = 0;
            ctx.outbox_wake.notified().await;
        } else {
            failures += 1;
            let ceiling = ctx
                .settings
                .outbox_retry_base
                .saturating_mul(1 << failures.min(5))
                .min(Duration::from_secs(30));
            // Half fixed, half jitter: a fleet that lost the server together does not come
            // back together.
            let delay = ceiling / 2 + (ceiling / 2).mul_f64(rng.unit());
            warn!(
                retry_in_ms = delay.as_millis() as u64,
                "job results could not be delivered; retrying"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.outbox_wake.notified() => {}
            }
        }
    }
}

/// One delivered run, from waiting for a slot to its journalled result.
async fn run_attempt<A: RunApi>(
    ctx: Arc<Ctx<A>>,
    payload: RunPayload,
    stop: watch::Receiver<Option<StopReason>>,
    live: mpsc::Sender<()>,
) {
    let key = payload.idempotency_key.clone();
    attempt_body(&ctx, &payload, stop).await;
    lock(&ctx.active).remove(&key);
    ctx.outbox_wake.notify_one();
    drop(live);
}

async fn attempt_body<A: RunApi>(
    ctx: &Arc<Ctx<A>>,
    payload: &RunPayload,
    mut stop: watch::Receiver<Option<StopReason>>,
) {
    let key = payload.idempotency_key.as_str();
    let run_id = payload.run_id.as_str();
    let slot = tokio::select! {
        s = ctx.slots.clone().acquire_owned() => match s {
            Ok(s) => s,
            Err(_) => return,
        },
        _ = stop.wait_for(|s| s.is_some()) => return,
    };
    if ctx.is_stopping() {
        return;
    }
    if now_ms() > payload.expires_at_ms {
        warn!(
            run_id,
            "run expired while waiting for a free slot; not started"
        );
        return;
    }
    let started_at_ms = now_ms();
    // The key is durable before anything runs: from here on this attempt is never started
    // again, whatever happens to the agent.
    let journalled = ctx
        .journal()
        .record_started(key, run_id, payload.attempt, started_at_ms);
    if let Err(e) = journalled {
        error!(run_id, error = %e, "cannot journal the attempt; not starting it");
        let result = ExecResult::not_started(
            AttemptOutcome::Failed,
            format!("the agent cannot write its job journal: {e}"),
        )
        .to_finished(payload.attempt);
        let _ = ctx.api.finished(run_id, &result).await;
        return;
    }
    let not_run = |outcome, reason: String| {
        let mut r = ExecResult::not_started(outcome, reason);
        r.started_at_ms = started_at_ms;
        r.to_finished(payload.attempt)
    };
    match ctx.report_start(payload, started_at_ms, &mut stop).await {
        StartAnswer::Go => {}
        StartAnswer::Cancel => {
            ctx.record_result(
                key,
                run_id,
                &not_run(
                    AttemptOutcome::Cancelled,
                    "cancelled before the process started".into(),
                ),
            );
            return;
        }
        StartAnswer::Refused(why) => {
            ctx.record_result(
                key,
                run_id,
                &not_run(
                    AttemptOutcome::Failed,
                    format!("the server refused the start: {why}"),
                ),
            );
            return;
        }
        StartAnswer::Stopped => {
            ctx.record_result(
                key,
                run_id,
                &not_run(
                    AttemptOutcome::Interrupted,
                    "interrupted: the agent stopped before the process started".into(),
                ),
            );
            return;
        }
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let reporter = {
        let ctx2 = ctx.clone();
        let cancel_key = key.to_string();
        tokio::spawn(report::stream_output(
            ctx.api.clone(),
            run_id.to_string(),
            payload.attempt,
            rx,
            move || ctx2.cancel(&cancel_key),
            ctx.stopping.subscribe(),
            ctx.settings.report.clone(),
        ))
    };
    let attempt = Attempt {
        run_id,
        attempt: payload.attempt,
        spec: &payload.spec,
    };
    let mut result = match payload.spec.action.is_software() {
        false => exec::execute(&attempt, &ctx.settings.exec, &tx, stop.clone()).await,
        true => match &ctx.settings.software {
            Some(sw) => {
                crate::software::execute(sw, payload, &ctx.settings.exec, &tx, stop.clone()).await
            }
            None => ExecResult::not_started(
                AttemptOutcome::Failed,
                "this agent is not set up for software runs".into(),
            ),
        },
    };
    drop(tx);
    drop(slot);
    if result.outcome == AttemptOutcome::Failed
        && result.error.as_deref() == Some("killed by signal 15")
    {
        // systemd's stop sends SIGTERM to the whole service, jobs included: if the agent is
        // being stopped too, the job did not fail, the agent interrupted it.
        let mut stopping = ctx.stopping.subscribe();
        let stopped = tokio::time::timeout(Duration::from_millis(500), stopping.wait_for(|s| *s))
            .await
            .is_ok();
        if stopped {
            result.outcome = AttemptOutcome::Interrupted;
            result.error = Some("interrupted: the agent was stopped while the attempt ran".into());
        }
    }
    info!(
        run_id,
        attempt = payload.attempt,
        outcome = result.outcome.as_str(),
        exit_code = result.exit_code,
        error = result.error.as_deref().unwrap_or(""),
        "attempt finished"
    );
    if result.reboot_requested {
        if !ctx.is_stopping() {
            reboot_for(ctx, payload, result, reporter).await;
            return;
        }
        // The agent is going away (perhaps the machine is shutting down anyway); the reboot
        // the run asked for cannot be seen through, so the run must not count as done.
        result.outcome = AttemptOutcome::Interrupted;
        result.error = Some("interrupted: the agent stopped before the requested reboot".into());
    }
    ctx.record_result(key, run_id, &result.to_finished(payload.attempt));
    // The result waits until the output before it was sent, so the server never sees output
    // of an attempt it already closed.
    let _ = reporter.await;
}

/// The attempt succeeded and asked for a reboot: journal the intent with the current boot
/// id, tell the server, run the reboot command and wait to be stopped by the shutdown.
async fn reboot_for<A: RunApi>(
    ctx: &Arc<Ctx<A>>,
    payload: &RunPayload,
    result: ExecResult,
    reporter: JoinHandle<()>,
) {
    let key = payload.idempotency_key.as_str();
    let run_id = payload.run_id.as_str();
    let settings = &ctx.settings.reboot;
    let fail = |mut r: RunFinished, why: String| {
        r.outcome = AttemptOutcome::Failed;
        r.error = Some(why);
        r.finished_at_ms = now_ms();
        r
    };
    let finished = result.to_finished(payload.attempt);
    let Some(boot_id) = reboot::read_boot_id(&settings.boot_id_path) else {
        ctx.record_result(
            key,
            run_id,
            &fail(
                finished,
                format!(
                    "reboot requested, but the boot id cannot be read from {}; not rebooting",
                    settings.boot_id_path.display()
                ),
            ),
        );
        let _ = reporter.await;
        return;
    };
    let journalled = ctx
        .journal()
        .record_rebooting(key, &boot_id, finished.clone(), now_ms());
    if let Err(e) = journalled {
        error!(run_id, error = %e, "cannot journal the reboot intent; not rebooting");
        ctx.record_result(
            key,
            run_id,
            &fail(finished, format!("cannot journal the reboot intent: {e}")),
        );
        let _ = reporter.await;
        return;
    }
    ctx.reboot_pending.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(10), reporter).await;
    let report = RunRebooting {
        attempt: payload.attempt,
        boot_id: boot_id.clone(),
    };
    for round in 1..=START_TRIES {
        match ctx.api.rebooting(run_id, &report).await {
            Ok(_) => break,
            Err(e) => {
                warn!(run_id, round, error = %e, "rebooting report failed");
                if e.permanent || round == START_TRIES {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let argv = reboot::resolve_command(settings.command.as_deref());
    info!(run_id, command = %argv.join(" "), boot_id, "rebooting the machine for a job");
    match reboot::run_command(&argv, &settings.boot_id_path, settings.command_timeout).await {
        Err(e) => {
            error!(run_id, error = %e, "the reboot command failed");
            ctx.reboot_pending.store(false, Ordering::SeqCst);
            ctx.record_result(
                key,
                run_id,
                &fail(finished, format!("reboot command failed: {e}")),
            );
        }
        Ok(()) => {
            let mut stopping = ctx.stopping.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(settings.wait_for_reboot) => {}
                // Stopped by the shutdown: the intent stays, the next boot settles it.
                _ = stopping.wait_for(|s| *s) => return,
            }
            let now_boot = reboot::read_boot_id(&settings.boot_id_path);
            let mut settled =
                journal::after_reboot(&finished, &boot_id, now_boot.as_deref(), now_ms());
            if settled.outcome == AttemptOutcome::Failed {
                settled.error = Some(format!(
                    "the reboot command succeeded but the machine did not reboot within {} s",
                    settings.wait_for_reboot.as_secs()
                ));
            }
            ctx.reboot_pending.store(false, Ordering::SeqCst);
            ctx.record_result(key, run_id, &settled);
        }
    }
}

#[cfg(all(test, unix))]
mod tests;
