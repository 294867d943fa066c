//! The load itself: enrolling the simulated agents, then driving check-ins and inventory
//! uploads either closed-loop (C workers, each sending its next request as soon as the last
//! one is answered: finds the maximum throughput) or open-loop (requests scheduled at a fixed
//! rate whatever the server does, latency measured from the scheduled time so a stalled
//! server cannot hide its stall by slowing the generator down — no coordinated omission).
//!
//! All simulated agents share one reqwest connection pool; each request carries its own
//! device credential, exactly as the real agent sends it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_client::agent::AgentClient;
use capstan_proto::agent::{DeviceIdentity, EnrollRequest, InventoryAccepted};
use capstan_proto::error::ErrorBody;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::CpuWatch;
use crate::histogram::Histogram;
use crate::synth::{self, AgentProfile, PreparedInventory, SharedSoftware, checkin_request};

/// What the load consists of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Checkin,
    Inventory,
    /// 95 % check-ins, 5 % inventory uploads.
    Mixed,
    /// Agents hold the wake-up long-poll; no-op jobs to all of them, timed per agent.
    Fanout,
    /// Agents hold the wake-up long-poll and reconcile manifests; assignments to a group of
    /// all enrolled devices, compile pass and acknowledgements timed.
    Deploy,
}

impl Mode {
    pub fn needs_inventory(self) -> bool {
        matches!(self, Mode::Inventory | Mode::Mixed)
    }

    /// The kind of the `seq`-th operation.
    pub fn op(self, seq: u64) -> OpKind {
        match self {
            Mode::Checkin => OpKind::Checkin,
            Mode::Inventory => OpKind::Inventory,
            Mode::Mixed if seq % 20 == 19 => OpKind::Inventory,
            Mode::Mixed | Mode::Fanout | Mode::Deploy => OpKind::Checkin,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Checkin,
    Inventory,
}

/// Outcome counts and latencies of one kind of request.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ok: u64,
    /// Failures by server error code (`device_revoked`, …) or transport class (`timeout`, …).
    pub errors: BTreeMap<String, u64>,
    /// Latency of the successful requests.
    pub latency: Histogram,
    /// Request body bytes of the successful requests.
    pub bytes: u64,
}

impl Stats {
    fn record(&mut self, latency: Duration, result: &Result<u64, String>) {
        match result {
            Ok(bytes) => {
                self.ok += 1;
                self.bytes += bytes;
                self.latency.record(latency);
            }
            Err(code) => *self.errors.entry(code.clone()).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        self.bytes += other.bytes;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.latency.merge(&other.latency);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The measured result of one phase (enrollment, first inventories, the main load).
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub name: String,
    pub elapsed: Duration,
    pub ops: BTreeMap<&'static str, Stats>,
    /// Open loop only: the requested rate, and how late the generator dispatched requests
    /// (a large lag means the generator, not the server, was the bottleneck).
    pub target_rate: Option<f64>,
    pub dispatch_lag_max: Option<Duration>,
    /// Open loop only: scheduled requests dropped because every agent still had one pending.
    pub skipped_busy: u64,
    /// CPU used during the phase, in cores (1.0 = one core fully busy), by process label.
    pub cpu: BTreeMap<String, f64>,
}

/// The server and the shared connection pool.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: reqwest::Client,
    pub base_url: String,
}

/// One simulated agent after enrollment.
#[derive(Debug)]
pub struct SimAgent {
    pub profile: AgentProfile,
    pub device_id: String,
    pub(crate) client: AgentClient,
    auth: HeaderValue,
    inventory: Option<PreparedInventory>,
    /// Successful uploads so far; upload n sends variant n % 2.
    uploads: AtomicU64,
    checkins: AtomicU64,
    /// Open loop: the agent has a request in flight (a real agent never sends two at once).
    busy: AtomicBool,
    /// Check-in digest when the run has no inventories: the server only compares it.
    placeholder_digest: String,
}

impl SimAgent {
    fn current_digest(&self) -> String {
        match &self.inventory {
            Some(inv) => {
                let n = self.uploads.load(Ordering::Relaxed);
                inv.variants[(n.saturating_sub(1) % 2) as usize]
                    .digest
                    .clone()
            }
            None => self.placeholder_digest.clone(),
        }
    }
}

/// Everything a request needs besides the agent.
#[derive(Debug)]
pub struct Ctx {
    pub target: Target,
    pub shared: Option<SharedSoftware>,
    /// K: the number of timeline changes a non-first upload must produce.
    pub changes: u64,
    pub cpu: CpuWatch,
}

fn client_error_label(e: &capstan_client::Error) -> String {
    match e {
        capstan_client::Error::Api(body) => body.code.as_str().to_string(),
        capstan_client::Error::Status { status, .. } => format!("http_{status}"),
        capstan_client::Error::Transport { source, .. } => transport_label(source),
        capstan_client::Error::Config(_) => "config".to_string(),
    }
}

fn transport_label(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_decode() {
        "decode".into()
    } else {
        "transport".into()
    }
}

/// Enroll `profiles` with `token`, at most `concurrency` at a time.
pub async fn enroll(
    ctx: &Ctx,
    token: &str,
    profiles: Vec<AgentProfile>,
    concurrency: usize,
) -> anyhow::Result<(Vec<Arc<SimAgent>>, Phase)> {
    let base = AgentClient::from_http_client(ctx.target.http.clone(), &ctx.target.base_url)?;
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let cpu0 = ctx.cpu.sample();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for profile in profiles {
        let base = base.clone();
        let sem = sem.clone();
        let token = token.to_string();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let req = EnrollRequest {
                token,
                identity: DeviceIdentity {
                    identity_key: profile.identity_key.clone(),
                    source: "instance".into(),
                },
                hostname: profile.hostname.clone(),
                agent_version: synth::AGENT_VERSION.into(),
                os_family: "linux".into(),
                capabilities: synth::capabilities(),
            };
            let t0 = Instant::now();
            let res = base.enroll(&req).await;
            (profile, t0.elapsed(), res)
        });
    }
    let mut stats = Stats::default();
    let mut agents = Vec::new();
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let (profile, latency, res) = joined?;
        match res {
            Ok(resp) => {
                stats.record(latency, &Ok(0));
                let auth = HeaderValue::from_str(&format!("Bearer {}", resp.device_token))
                    .map_err(|e| anyhow::anyhow!("server issued an unusable device token: {e}"))?;
                let mut placeholder = synth::Rng::new(profile.seed);
                agents.push(Arc::new(SimAgent {
                    device_id: resp.device_id.clone(),
                    client: base.clone().with_device_token(resp.device_token),
                    auth,
                    inventory: None,
                    uploads: AtomicU64::new(0),
                    checkins: AtomicU64::new(0),
                    busy: AtomicBool::new(false),
                    placeholder_digest: placeholder.hex64(),
                    profile,
                }));
            }
            Err(e) => {
                stats.record(latency, &Err(client_error_label(&e)));
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let elapsed = start.elapsed();
    let mut phase = Phase {
        name: "enroll".into(),
        elapsed,
        cpu: ctx.cpu.usage_since(&cpu0),
        ..Default::default()
    };
    phase.ops.insert("enroll", stats);
    if agents.is_empty() {
        anyhow::bail!(
            "no agent could enroll: {}",
            first_error.unwrap_or_else(|| "no agents requested".into())
        );
    }
    if let Some(e) = first_error {
        eprintln!("warning: some enrollments failed, first error: {e}");
    }
    // Keep the agents in index order so worker ownership is stable and reproducible.
    agents.sort_by_key(|a| a.profile.index);
    Ok((agents, phase))
}

/// Compute every agent's inventory variants (digests included), outside any measurement.
pub fn prepare_inventories(
    agents: &mut [Arc<SimAgent>],
    shared: &SharedSoftware,
) -> anyhow::Result<()> {
    for agent in agents.iter_mut() {
        let prepared = PreparedInventory::new(&agent.profile, shared)?;
        let index = agent.profile.index;
        let a =
            Arc::get_mut(agent).ok_or_else(|| anyhow::anyhow!("agent {index} is still shared"))?;
        a.inventory = Some(prepared);
    }
    Ok(())
}

async fn do_checkin(agent: &SimAgent) -> Result<u64, String> {
    let seq = agent.checkins.fetch_add(1, Ordering::Relaxed);
    let req = checkin_request(&agent.profile, seq, Some(agent.current_digest()));
    agent
        .client
        .checkin(&req)
        .await
        .map(|_| 0)
        .map_err(|e| client_error_label(&e))
}

/// PUT the pre-serialised upload body; checks that the server recorded what it should.
async fn do_upload(ctx: &Ctx, agent: &SimAgent) -> Result<u64, String> {
    let (Some(shared), Some(inv)) = (&ctx.shared, &agent.inventory) else {
        return Err("no_inventory_prepared".into());
    };
    let n = agent.uploads.load(Ordering::Relaxed);
    let body = inv.body(shared, (n % 2) as usize);
    let len = body.len() as u64;
    let resp = ctx
        .target
        .http
        .put(format!("{}/agent/v1/inventory", ctx.target.base_url))
        .header(AUTHORIZATION, agent.auth.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| transport_label(&e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| transport_label(&e))?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => body.code.as_str().to_string(),
            Err(_) => format!("http_{}", status.as_u16()),
        });
    }
    let accepted: InventoryAccepted =
        serde_json::from_slice(&bytes).map_err(|_| "decode".to_string())?;
    let expected_ok = if n == 0 {
        accepted.first
    } else {
        !accepted.first && accepted.changes == ctx.changes
    };
    // Counted as stored either way: the server did store this variant.
    agent.uploads.fetch_add(1, Ordering::Relaxed);
    if expected_ok {
        Ok(len)
    } else {
        Err("unexpected_change_count".into())
    }
}

async fn do_op(ctx: &Ctx, agent: &SimAgent, kind: OpKind) -> Result<u64, String> {
    match kind {
        OpKind::Checkin => do_checkin(agent).await,
        OpKind::Inventory => do_upload(ctx, agent).await,
    }
}

fn op_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Checkin => "checkin",
        OpKind::Inventory => "inventory",
    }
}

#[derive(Default)]
struct WorkerStats {
    checkin: Stats,
    inventory: Stats,
}

impl WorkerStats {
    fn get(&mut self, kind: OpKind) -> &mut Stats {
        match kind {
            OpKind::Checkin => &mut self.checkin,
            OpKind::Inventory => &mut self.inventory,
        }
    }

    fn into_phase(self, name: &str, elapsed: Duration) -> Phase {
        let mut phase = Phase {
            name: name.into(),
            elapsed,
            ..Default::default()
        };
        for (kind, stats) in [
            (OpKind::Checkin, self.checkin),
            (OpKind::Inventory, self.inventory),
        ] {
            if stats.ok + stats.error_count() > 0 {
                phase.ops.insert(op_name(kind), stats);
            }
        }
        phase
    }
}

/// Every agent uploads its first inventory once (`concurrency` at a time): brings the fleet to
/// the steady state where each later upload is a report with K changes.
pub async fn first_inventories(
    ctx: &Arc<Ctx>,
    agents: &Arc<Vec<Arc<SimAgent>>>,
    concurrency: usize,
) -> anyhow::Result<Phase> {
    let c = concurrency.clamp(1, agents.len());
    let cpu0 = ctx.cpu.sample();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..c {
        let (ctx, agents) = (ctx.clone(), agents.clone());
        set.spawn(async move {
            let mut stats = Stats::default();
            for agent in agents.iter().skip(w).step_by(c) {
                let t0 = Instant::now();
                let res = do_upload(&ctx, agent).await;
                stats.record(t0.elapsed(), &res);
            }
            stats
        });
    }
    let mut all = Stats::default();
    while let Some(s) = set.join_next().await {
        all.merge(&s?);
    }
    let mut phase = Phase {
        name: "first_inventory".into(),
        elapsed: start.elapsed(),
        cpu: ctx.cpu.usage_since(&cpu0),
        ..Default::default()
    };
    phase.ops.insert("inventory", all);
    Ok(phase)
}

/// C workers, each owning every C-th agent and sending its next request as soon as the
/// previous one is answered, until `duration` has passed.
pub async fn closed_loop(
    ctx: &Arc<Ctx>,
    agents: &Arc<Vec<Arc<SimAgent>>>,
    mode: Mode,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Phase> {
    let c = concurrency.clamp(1, agents.len());
    let cpu0 = ctx.cpu.sample();
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for w in 0..c {
        let (ctx, agents) = (ctx.clone(), agents.clone());
        set.spawn(async move {
            let mut stats = WorkerStats::default();
            let mine: Vec<&Arc<SimAgent>> = agents.iter().skip(w).step_by(c).collect();
            // Workers start at different points of the mixed pattern so that inventories are
            // spread over time rather than sent by every worker at once.
            let mut seq = w as u64;
            'outer: loop {
                for agent in &mine {
                    if Instant::now() >= deadline {
                        break 'outer;
                    }
                    let kind = mode.op(seq);
                    seq += 1;
                    let t0 = Instant::now();
                    let res = do_op(&ctx, agent, kind).await;
                    stats.get(kind).record(t0.elapsed(), &res);
                }
            }
            stats
        });
    }
    let mut all = WorkerStats::default();
    while let Some(s) = set.join_next().await {
        let s = s?;
        all.checkin.merge(&s.checkin);
        all.inventory.merge(&s.inventory);
    }
    let mut phase = all.into_phase(&format!("closed_loop_c{c}"), start.elapsed());
    phase.cpu = ctx.cpu.usage_since(&cpu0);
    Ok(phase)
}

/// How open-loop requests are spaced in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrivals {
    /// Exactly 1/rate apart.
    Uniform,
    /// Independent random arrivals (exponential gaps): what many agents with jittered
    /// intervals look like in aggregate, bursts included.
    Poisson,
}

/// The send times of an open-loop phase, as offsets from its start.
#[derive(Debug, Clone)]
pub struct Schedule {
    arrivals: Arrivals,
    rate: f64,
    duration: f64,
    k: u64,
    t: f64,
    rng: synth::Rng,
}

impl Schedule {
    pub fn new(arrivals: Arrivals, rate: f64, duration: Duration, seed: u64) -> Schedule {
        Schedule {
            arrivals,
            rate,
            duration: duration.as_secs_f64(),
            k: 0,
            t: 0.0,
            rng: synth::Rng::new(seed),
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let t = match self.arrivals {
            Arrivals::Uniform => self.k as f64 / self.rate,
            Arrivals::Poisson => {
                // 1 - u is in (0, 1], so the logarithm is finite.
                let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                self.t += -(1.0 - u).ln() / self.rate;
                self.t
            }
        };
        self.k += 1;
        (t < self.duration).then(|| Duration::from_secs_f64(t))
    }
}

/// Requests sent on `schedule`, round-robin over the agents, at most `max_in_flight`
/// outstanding. Latency counts from the scheduled send time.
pub async fn open_loop(
    ctx: &Arc<Ctx>,
    agents: &Arc<Vec<Arc<SimAgent>>>,
    mode: Mode,
    rate: f64,
    schedule: Schedule,
    max_in_flight: usize,
) -> anyhow::Result<Phase> {
    let stats = Arc::new(Mutex::new(WorkerStats::default()));
    let sem = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let n = agents.len();
    let mut next = 0usize;
    let mut lag_max = Duration::ZERO;
    let mut skipped = 0u64;
    let mut set = JoinSet::new();
    let cpu0 = ctx.cpu.sample();
    let start = Instant::now();
    for (k, offset) in schedule.enumerate() {
        let k = k as u64;
        let due = start + offset;
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due).await;
        } else {
            lag_max = lag_max.max(now - due);
        }
        while set.try_join_next().is_some() {}
        let mut picked = None;
        for _ in 0..n {
            let agent = &agents[next];
            next = (next + 1) % n;
            if !agent.busy.swap(true, Ordering::AcqRel) {
                picked = Some(agent.clone());
                break;
            }
        }
        let Some(agent) = picked else {
            skipped += 1;
            continue;
        };
        let kind = mode.op(k);
        let (ctx, sem, stats) = (ctx.clone(), sem.clone(), stats.clone());
        set.spawn(async move {
            let res = match sem.acquire_owned().await {
                Ok(_permit) => do_op(&ctx, &agent, kind).await,
                Err(_) => Err("cancelled".into()),
            };
            agent.busy.store(false, Ordering::Release);
            let latency = due.elapsed();
            if let Ok(mut s) = stats.lock() {
                s.get(kind).record(latency, &res);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r?;
    }
    let elapsed = start.elapsed();
    let all = std::mem::take(
        &mut *stats
            .lock()
            .map_err(|_| anyhow::anyhow!("a request task panicked while recording"))?,
    );
    let mut phase = all.into_phase(&format!("open_loop_r{rate}"), elapsed);
    phase.target_rate = Some(rate);
    phase.dispatch_lag_max = Some(lag_max);
    phase.skipped_busy = skipped;
    phase.cpu = ctx.cpu.usage_since(&cpu0);
    Ok(phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_keep_the_rate_and_poisson_is_bursty() {
        let d = Duration::from_secs(100);
        let uniform: Vec<Duration> = Schedule::new(Arrivals::Uniform, 1000.0, d, 1).collect();
        assert_eq!(uniform.len(), 100_000);
        assert_eq!(uniform[1] - uniform[0], Duration::from_millis(1));
        let poisson: Vec<Duration> = Schedule::new(Arrivals::Poisson, 1000.0, d, 1).collect();
        let n = poisson.len() as f64;
        assert!(
            (n - 100_000.0).abs() < 1_500.0,
            "{n} arrivals in 100 s at 1000/s"
        );
        assert!(
            poisson.windows(2).all(|w| w[0] <= w[1]),
            "times must not go back"
        );
        assert!(poisson.iter().all(|t| *t < d));
        // Exponential gaps: the standard deviation equals the mean (1 ms), unlike the
        // uniform schedule's zero.
        let gaps: Vec<f64> = poisson
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((0.95..1.05).contains(&cv), "coefficient of variation {cv}");
    }

    #[test]
    fn mixed_mode_is_five_percent_inventory() {
        let inv = (0..10_000)
            .filter(|&s| Mode::Mixed.op(s) == OpKind::Inventory)
            .count();
        assert_eq!(inv, 500);
        assert!((0..100).all(|s| Mode::Checkin.op(s) == OpKind::Checkin));
        assert!((0..100).all(|s| Mode::Inventory.op(s) == OpKind::Inventory));
    }

    #[test]
    fn stats_merge_keeps_error_codes_apart() {
        let mut a = Stats::default();
        a.record(Duration::from_millis(2), &Ok(100));
        a.record(Duration::from_millis(2), &Err("timeout".into()));
        let mut b = Stats::default();
        b.record(Duration::from_millis(4), &Err("timeout".into()));
        b.record(Duration::from_millis(4), &Err("device_revoked".into()));
        a.merge(&b);
        assert_eq!(a.ok, 1);
        assert_eq!(a.bytes, 100);
        assert_eq!(a.errors["timeout"], 2);
        assert_eq!(a.errors["device_revoked"], 1);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.latency.count(), 1, "only successes carry a latency");
    }
}
