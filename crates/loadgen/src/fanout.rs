//! Job fan-out measurement: every simulated agent holds the wake-up long-poll like a real agent
//! (wait → check-in → claim → start → finish), then the operator creates a no-op job for all of
//! them, and each agent's delay from the job's creation to its claim ("acknowledged": the run
//! was delivered and is now the agent's) and to its reported result is measured. Several rounds
//! run one after the other over the same held connections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_client::agent::AgentClient;
use capstan_proto::agent::CheckinRequest;
use capstan_proto::jobs::{AttemptOutcome, RunFinished, RunPayload, RunStarted};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::histogram::Histogram;

/// One simulated agent of the fan-out run.
pub struct FanoutAgent {
    pub device_id: String,
    pub client: AgentClient,
}

/// When each agent claimed / finished a run of a job (job id → times since the run's start).
#[derive(Default)]
struct Seen {
    claimed: BTreeMap<String, Vec<Instant>>,
    finished: BTreeMap<String, Vec<Instant>>,
    errors: BTreeMap<String, u64>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn label(e: &capstan_client::Error) -> String {
    match e {
        capstan_client::Error::Api(body) => body.code.as_str().to_string(),
        capstan_client::Error::Status { status, .. } => format!("http_{status}"),
        capstan_client::Error::Transport { source, .. } if source.is_timeout() => "timeout".into(),
        capstan_client::Error::Transport { .. } => "transport".into(),
        capstan_client::Error::Config(_) => "config".into(),
    }
}

/// The agent loop: check in, do any runs, hold the long-poll, repeat until `stop`.
async fn agent_loop(
    agent: Arc<FanoutAgent>,
    seen: Arc<Mutex<Seen>>,
    ready: Arc<std::sync::atomic::AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first = true;
    let note_err = |seen: &Mutex<Seen>, e: &capstan_client::Error| {
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        *s.errors.entry(label(e)).or_default() += 1;
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let resp = match agent
            .client
            .checkin(&CheckinRequest {
                agent_version: crate::synth::AGENT_VERSION.into(),
                capabilities: {
                    let mut c = crate::synth::capabilities();
                    c.push(capstan_proto::jobs::CAP_JOBS.to_string());
                    c
                },
                ..Default::default()
            })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                note_err(&seen, &e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut delivered = resp.runs.clone();
        let mut claim_error = None;
        if resp.runs_pending {
            match agent.client.claim_runs().await {
                Ok(claim) => delivered.extend(claim.runs),
                Err(e) => claim_error = Some(e),
            }
        }
        if let Some(e) = claim_error {
            note_err(&seen, &e);
        }
        {
            let at = Instant::now();
            for d in delivered {
                let Ok(p) = serde_json::from_str::<RunPayload>(&d.payload) else {
                    continue;
                };
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .claimed
                    .entry(p.job_id.clone())
                    .or_default()
                    .push(at);
                let started = now_ms();
                let r = agent
                    .client
                    .run_started(
                        &p.run_id,
                        &RunStarted {
                            attempt: p.attempt,
                            started_at_ms: started,
                        },
                    )
                    .await;
                if let Err(e) = r {
                    note_err(&seen, &e);
                }
                let fin = RunFinished {
                    attempt: p.attempt,
                    outcome: AttemptOutcome::Succeeded,
                    exit_code: Some(0),
                    error: None,
                    started_at_ms: Some(started),
                    finished_at_ms: now_ms(),
                    stdout_bytes: 0,
                    stderr_bytes: 0,
                    stdout_truncated: false,
                    stderr_truncated: false,
                };
                match agent.client.run_finished(&p.run_id, &fin).await {
                    Ok(()) => seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .finished
                        .entry(p.job_id)
                        .or_default()
                        .push(Instant::now()),
                    Err(e) => note_err(&seen, &e),
                }
            }
        }
        if first {
            ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            first = false;
        }
        let waited = tokio::select! {
            r = agent.client.wait(resp.wake_generation, 60) => Some(r),
            _ = stop.changed() => None,
        };
        match waited {
            None => return,
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                note_err(&seen, &e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn percentiles(h: &Histogram) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 10.0).round() / 10.0;
    json!({
        "count": h.count(),
        "p50_ms": ms(h.percentile_us(50.0)),
        "p90_ms": ms(h.percentile_us(90.0)),
        "p99_ms": ms(h.percentile_us(99.0)),
        "max_ms": ms(h.max_us()),
    })
}

/// Run `rounds` fan-outs of a no-op job to every agent. `create_job` posts the job (given
/// the device ids) and returns its id.
pub async fn run<F, Fut>(
    agents: Vec<Arc<FanoutAgent>>,
    rounds: usize,
    settle: Duration,
    round_timeout: Duration,
    create_job: F,
) -> anyhow::Result<Value>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let seen = Arc::new(Mutex::new(Seen::default()));
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for a in &agents {
        set.spawn(agent_loop(
            a.clone(),
            seen.clone(),
            ready.clone(),
            stop_rx.clone(),
        ));
    }
    let n = agents.len();
    let t0 = Instant::now();
    while ready.load(std::sync::atomic::Ordering::SeqCst) < n {
        if t0.elapsed() > Duration::from_secs(300) {
            anyhow::bail!(
                "only {} of {n} agents checked in within 300 s",
                ready.load(std::sync::atomic::Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{n} agents checked in after {:.1} s; letting their long-polls settle for {} s…",
        t0.elapsed().as_secs_f64(),
        settle.as_secs()
    );
    tokio::time::sleep(settle).await;

    let ids: Vec<String> = agents.iter().map(|a| a.device_id.clone()).collect();
    let mut out = Vec::new();
    for round in 1..=rounds {
        let start = Instant::now();
        let job = create_job(ids.clone()).await?;
        let created = start.elapsed();
        let deadline = start + round_timeout;
        loop {
            let (c, f) = {
                let s = seen.lock().unwrap_or_else(|p| p.into_inner());
                (
                    s.claimed.get(&job).map_or(0, Vec::len),
                    s.finished.get(&job).map_or(0, Vec::len),
                )
            };
            if (c >= n && f >= n) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (claimed_at, finished_at) = {
            let s = seen.lock().unwrap_or_else(|p| p.into_inner());
            (
                s.claimed.get(&job).cloned().unwrap_or_default(),
                s.finished.get(&job).cloned().unwrap_or_default(),
            )
        };
        let mut claimed = Histogram::new();
        let mut finished = Histogram::new();
        let mut all_claimed = Duration::ZERO;
        let mut all_finished = Duration::ZERO;
        for t in &claimed_at {
            let d = t.saturating_duration_since(start);
            claimed.record(d);
            all_claimed = all_claimed.max(d);
        }
        for t in &finished_at {
            let d = t.saturating_duration_since(start);
            finished.record(d);
            all_finished = all_finished.max(d);
        }
        eprintln!(
            "round {round}: job created in {:.0} ms; {}/{n} acknowledged, all within {:.0} ms (p50 {:.0} ms, p99 {:.0} ms); {}/{n} finished within {:.0} ms",
            created.as_secs_f64() * 1000.0,
            claimed.count(),
            all_claimed.as_secs_f64() * 1000.0,
            claimed.percentile_us(50.0) as f64 / 1000.0,
            claimed.percentile_us(99.0) as f64 / 1000.0,
            finished.count(),
            all_finished.as_secs_f64() * 1000.0,
        );
        out.push(json!({
            "round": round,
            "job": job,
            "create_ms": (created.as_secs_f64() * 10000.0).round() / 10.0,
            "acknowledged": percentiles(&claimed),
            "finished": percentiles(&finished),
            "complete": claimed.count() as usize >= n && finished.count() as usize >= n,
        }));
        // Let the agents return to their long-polls before the next round.
        tokio::time::sleep(settle).await;
    }
    let _ = stop_tx.send(true);
    set.abort_all();
    let errors = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .errors
        .clone();
    Ok(json!({ "agents": n, "rounds": out, "agent_errors": errors }))
}
