//! The IO half of `capstan-agent run`: performs what [`crate::machine`] decides (collect,
//! check in, upload, long-poll, back off), reports outcomes back to it, logs, and stops
//! cleanly on SIGTERM/SIGINT by dropping whatever request is in flight. The job runner
//! ([`crate::jobs`]) runs beside the loop: a check-in that says `runs_pending` wakes it
//! without waiting for it, and a stop stops its jobs (reported `interrupted`) before the
//! process exits.

use crate::reconcile::{ReconcileSettings, Reconciler};
use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use capstan_agent_platform::CollectOptions;
use capstan_client::Error as ClientError;
use capstan_client::agent::AgentClient;
use capstan_proto::agent::{
    CAP_INVENTORY_DELTA, CAP_WAKE_LONGPOLL, CheckinRequest, InventoryUpload,
};
use capstan_proto::error::ErrorCode;
use capstan_proto::inventory::InventoryDocument;
use capstan_proto::jobs::CAP_JOBS;
use tracing::{debug, error, info, warn};

use crate::jobs::{self, Runner, RunnerSettings};
use crate::machine::{Action, ExitReason, FailureKind, FailureOutcome, Machine, Op, Rng};

/// The capabilities this build announces at enrollment and check-in.
/// Least time between two performance snapshots sent with check-ins.
const PERF_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

pub fn capabilities() -> Vec<String> {
    vec![
        CAP_INVENTORY_DELTA.to_string(),
        CAP_WAKE_LONGPOLL.to_string(),
        CAP_JOBS.to_string(),
    ]
}

pub fn agent_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A signal asked us to stop.
    Stopped,
    /// The agent decided to stop (see [`ExitReason`]).
    Exit(ExitReason),
}

/// Settings of one daemon run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub device_id: String,
    pub inventory_interval: std::time::Duration,
    pub collect: CollectOptions,
    /// The boot id reported at check-in is read from here (a file tests can rewrite).
    pub boot_id_path: PathBuf,
    pub jobs: RunnerSettings,
}

/// Map a client error to how the loop should treat it.
pub fn classify(op: Op, err: &ClientError) -> FailureKind {
    match (err.status(), err.code()) {
        (Some(401), Some(ErrorCode::DeviceRevoked | ErrorCode::Unauthenticated)) => {
            FailureKind::CredentialRejected
        }
        // The server understood and refused this document; sending it again changes nothing.
        (Some(status), _)
            if op == Op::Upload
                && (400..500).contains(&status)
                && ![401, 408, 429].contains(&status) =>
        {
            FailureKind::Rejected
        }
        _ => FailureKind::Transient,
    }
}

/// The error and its causes on one line (reqwest hides the interesting part in `source`).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

/// The last collected inventory; only one document is ever held.
struct Cached {
    digest: String,
    document: Option<InventoryDocument>,
}

/// Resolves when SIGTERM or SIGINT arrives.
struct Shutdown {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }

    /// Run `fut` unless a stop signal arrives first; `None` means stop now.
    async fn guard<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            sig = self.recv() => {
                info!(signal = sig, "stopping");
                None
            }
            out = fut => Some(out),
        }
    }
}

async fn collect(cache: &mut Option<Cached>, opts: &CollectOptions) -> bool {
    // Drop the previous document before building the next: only its digest is still needed.
    let previous = cache.take().map(|c| c.digest);
    let started = Instant::now();
    let document = capstan_agent_platform::collect_inventory(opts).await;
    let digest = capstan_core::inventory::digest(&document);
    let failed: Vec<&str> = document
        .collectors
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        warn!(collectors = ?failed, "some inventory collectors failed; their sections are empty");
    }
    let changed = previous.as_deref() != Some(digest.as_str());
    info!(
        digest = %digest,
        changed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "inventory collected"
    );
    *cache = Some(Cached {
        digest,
        document: Some(document),
    });
    changed
}

/// Run the agent loop until a signal or a fatal server answer, then stop the job runner.
pub async fn run(client: AgentClient, settings: RunSettings) -> anyhow::Result<Outcome> {
    let shutdown =
        Shutdown::install().map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    let runner =
        Runner::start(client.clone(), settings.jobs.clone()).map_err(|e| anyhow::anyhow!(e))?;
    let reconciler = settings.jobs.software.clone().map(|software| {
        Reconciler::start(
            client.clone(),
            ReconcileSettings {
                device_id: settings.jobs.device_id.clone(),
                signing_key: settings.jobs.signing_key,
                state_dir: settings.jobs.state_dir.clone(),
                software,
                exec: settings.jobs.exec.clone(),
                boot_id_path: settings.boot_id_path.clone(),
            },
        )
    });
    let outcome = run_loop(&client, &settings, shutdown, &runner, reconciler.as_ref()).await;
    let budget = runner.shutdown_budget();
    if let Some(r) = reconciler {
        r.shutdown(budget).await;
    }
    runner.shutdown(budget).await;
    outcome
}

async fn run_loop(
    client: &AgentClient,
    settings: &RunSettings,
    mut shutdown: Shutdown,
    runner: &Runner<AgentClient>,
    reconciler: Option<&Reconciler>,
) -> anyhow::Result<Outcome> {
    let mut machine = Machine::new(
        Instant::now(),
        settings.inventory_interval,
        Rng::new(seed()),
    );
    let mut cache: Option<Cached> = None;
    let mut connected = false;
    info!(
        device_id = %settings.device_id,
        server = %client.base_url(),
        version = env!("CARGO_PKG_VERSION"),
        "agent started"
    );

    let mut last_sample: Option<Instant> = None;
    loop {
        match machine.next_action(Instant::now()) {
            Action::Exit(reason) => return Ok(Outcome::Exit(reason)),
            Action::Sleep(delay) => {
                if shutdown.guard(tokio::time::sleep(delay)).await.is_none() {
                    return Ok(Outcome::Stopped);
                }
            }
            Action::Collect => {
                let Some(changed) = shutdown.guard(collect(&mut cache, &settings.collect)).await
                else {
                    return Ok(Outcome::Stopped);
                };
                machine.on_collected(Instant::now(), changed);
            }
            Action::Checkin => {
                // A performance snapshot samples the CPU for 250 ms. Check-ins that follow a
                // wake-up (a job, a refresh) come soon after a sampled one and skip it, so a
                // job starts a quarter second sooner; the server keeps the last snapshot.
                let sample = last_sample.is_none_or(|t: Instant| t.elapsed() >= PERF_SAMPLE_EVERY);
                if sample {
                    last_sample = Some(Instant::now());
                }
                let request = async {
                    let performance = if sample {
                        Some(capstan_agent_platform::performance_snapshot().await)
                    } else {
                        None
                    };
                    let req = CheckinRequest {
                        agent_version: agent_version(),
                        boot_id: jobs::reboot::read_boot_id(&settings.boot_id_path),
                        inventory_digest: cache.as_ref().map(|c| c.digest.clone()),
                        performance,
                        capabilities: capabilities(),
                    };
                    client.checkin(&req).await
                };
                let Some(result) = shutdown.guard(request).await else {
                    return Ok(Outcome::Stopped);
                };
                match result {
                    Ok(resp) => {
                        if !connected || machine.failures() > 0 {
                            info!(
                                interval_secs = resp.checkin_interval_secs,
                                after_failures = machine.failures(),
                                "checked in"
                            );
                            connected = true;
                        } else {
                            debug!(
                                send_inventory = resp.send_inventory,
                                recollect = resp.recollect_inventory,
                                generation = resp.wake_generation,
                                "checked in"
                            );
                        }
                        if !resp.runs.is_empty() {
                            runner.deliver(&resp.runs);
                        }
                        if let Some(r) = reconciler {
                            r.revision(resp.manifest_revision);
                        }
                        if resp.runs_pending {
                            // The runner claims in its own task: the loop goes straight back
                            // to the long-poll.
                            runner.claim_now();
                        }
                        machine.on_checkin_ok(Instant::now(), &resp);
                    }
                    Err(err) => fail(&mut machine, Op::Checkin, &err),
                }
            }
            Action::Upload => {
                if cache.as_ref().and_then(|c| c.document.as_ref()).is_none() {
                    // Unreachable by the machine's ordering (it always collects first), but a
                    // missing document is cheap to make rather than worth an error.
                    if shutdown
                        .guard(collect(&mut cache, &settings.collect))
                        .await
                        .is_none()
                    {
                        return Ok(Outcome::Stopped);
                    }
                }
                let Some(cached) = cache.as_mut() else {
                    continue;
                };
                let Some(document) = cached.document.take() else {
                    continue;
                };
                let upload = InventoryUpload {
                    digest: cached.digest.clone(),
                    document,
                };
                let Some(result) = shutdown.guard(client.upload_inventory(&upload)).await else {
                    return Ok(Outcome::Stopped);
                };
                // Put the document back: it is sent again if the server asks before it changes.
                cached.document = Some(upload.document);
                match result {
                    Ok(accepted) => {
                        info!(
                            digest = %cached.digest,
                            changes = accepted.changes,
                            first = accepted.first,
                            "inventory uploaded"
                        );
                        machine.on_upload_ok();
                    }
                    Err(err) => fail(&mut machine, Op::Upload, &err),
                }
            }
            Action::Wait {
                generation,
                timeout_secs,
            } => {
                let started = Instant::now();
                let Some(result) = shutdown.guard(client.wait(generation, timeout_secs)).await
                else {
                    return Ok(Outcome::Stopped);
                };
                match result {
                    Ok(resp) => {
                        if resp.wake {
                            debug!(generation = resp.wake_generation, "woken by the server");
                        }
                        let now = Instant::now();
                        machine.on_wait_ok(now, now - started, &resp);
                    }
                    Err(err) => fail(&mut machine, Op::Wait, &err),
                }
            }
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Checkin => "check-in",
        Op::Upload => "inventory upload",
        Op::Wait => "wait",
    }
}

fn fail(machine: &mut Machine, op: Op, err: &ClientError) {
    let kind = classify(op, err);
    let text = error_chain(err);
    match machine.on_failure(Instant::now(), op, kind) {
        FailureOutcome::Retry { attempt, delay } => warn!(
            operation = op_name(op),
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            error = %text,
            "request failed; retrying"
        ),
        FailureOutcome::Dropped => error!(
            operation = op_name(op),
            error = %text,
            "the server refused the inventory document; it is sent again when the server asks"
        ),
        FailureOutcome::Exit(_) => error!(
            operation = op_name(op),
            error = %text,
            "the server rejected this device's credential: the device was revoked or deleted \
             on the server. Re-enroll it with `capstan-agent enroll --server URL --token TOKEN`"
        ),
    }
}

/// A jitter seed from the OS; without one, the process id and clock still spread a fleet.
fn seed() -> u64 {
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_ok() {
        return u64::from_le_bytes(buf);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::error::ErrorBody;

    fn api(status: u16, code: ErrorCode) -> ClientError {
        ClientError::Api(ErrorBody {
            status,
            code,
            message: "m".into(),
        })
    }

    #[test]
    fn server_answers_map_to_the_documented_handling() {
        use FailureKind::*;
        let cases = [
            (
                Op::Checkin,
                api(401, ErrorCode::DeviceRevoked),
                CredentialRejected,
            ),
            (
                Op::Wait,
                api(401, ErrorCode::Unauthenticated),
                CredentialRejected,
            ),
            (
                Op::Upload,
                api(401, ErrorCode::DeviceRevoked),
                CredentialRejected,
            ),
            (Op::Upload, api(400, ErrorCode::ValidationFailed), Rejected),
            (Op::Upload, api(413, ErrorCode::PayloadTooLarge), Rejected),
            (Op::Upload, api(429, ErrorCode::Unavailable), Transient),
            (Op::Checkin, api(400, ErrorCode::InvalidBody), Transient),
            (Op::Checkin, api(503, ErrorCode::Unavailable), Transient),
            (Op::Upload, api(500, ErrorCode::Internal), Transient),
            (
                Op::Checkin,
                ClientError::Status {
                    status: 502,
                    body: "bad gateway".into(),
                },
                Transient,
            ),
            // A 401 from something that is not Capstan (a proxy) is not proof of revocation.
            (
                Op::Checkin,
                ClientError::Status {
                    status: 401,
                    body: String::new(),
                },
                Transient,
            ),
        ];
        for (op, err, expected) in cases {
            assert_eq!(classify(op, &err), expected, "{op:?} {err}");
        }
    }

    #[test]
    fn error_chain_includes_causes_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&err), "request failed: connection refused");
    }
}
