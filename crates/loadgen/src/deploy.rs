//! Deployment measurement: how long the server takes to compile per-device manifests after one
//! assignment to a large group, and how long until every simulated agent has acknowledged the
//! new revision. Of the enrolled devices, the first `agents` behave like the real agent's
//! reconciler (check in, hold the wake-up long-poll, fetch the manifest when the check-in
//! names a newer revision, report every item done with `complete`); the rest are only
//! enrolled, so the compiler works for the whole group while the agent figures stay small
//! enough for one load generator. Each round changes the desired state once (assign a
//! package, remove that assignment, assign another, …) and is timed from just before the
//! console request: the compile pass from the server's own figures (its log line, or the
//! `capstan_manifest_compile_seconds` summary on `/metrics`), the agents per agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use capstan_client::agent::AgentClient;
use capstan_proto::agent::CheckinRequest;
use capstan_proto::deploy::{
    ItemIntent, ItemReport, ItemStatus, ManifestItem, ManifestPayload, ManifestReport,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::CpuWatch;
use crate::histogram::Histogram;

/// The server's summary of compile passes (one observation per pass).
const COMPILE_METRIC: &str = "capstan_manifest_compile_seconds";
/// The server's log message after a pass that changed at least one manifest.
const COMPILE_MESSAGE: &str = "manifests compiled";
/// How often `/metrics` is read while a round runs: often enough to separate the big pass
/// from the small ones that follow it, rarely enough not to load the server.
const METRICS_POLL: Duration = Duration::from_millis(50);
/// Devices per `POST /api/v1/groups/{id}/members` (the server's limit).
const MEMBERS_PER_CALL: usize = 10_000;

/// One simulated agent of the deployment run.
pub struct DeployAgent {
    pub client: AgentClient,
}

/// Which of `devices` (positions in the server's compile order, device id order) are the
/// `agents` simulated ones: spread evenly, so that they are woken across the whole pass and
/// not only by its first batches.
pub fn spread(devices: usize, agents: usize) -> Vec<usize> {
    let agents = agents.min(devices);
    (0..agents).map(|k| k * devices / agents).collect()
}

/// The console side: the operator's bearer token on the shared connection pool.
pub struct Operator {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Operator {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading the answer"))?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{method} {path}: answer is not JSON"))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, path, None)
            .await
            .map(|_| ())
    }

    /// `/metrics` is public; read without the token like a Prometheus scraper.
    async fn compile_metric(&self) -> anyhow::Result<Summary> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .context("GET /metrics")?
            .error_for_status()
            .context("GET /metrics")?
            .text()
            .await
            .context("GET /metrics: reading the answer")?;
        Ok(parse_summary(&text, COMPILE_METRIC).unwrap_or_default())
    }
}

/// `_sum` and `_count` of a Prometheus summary or histogram, over all its label sets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub sum: f64,
    pub count: u64,
}

/// Reads `name`'s `_sum` and `_count` from a Prometheus text exposition; `None` when the
/// metric has not been recorded yet (the server registers it on the first pass).
pub fn parse_summary(text: &str, name: &str) -> Option<Summary> {
    let mut out = Summary::default();
    let mut seen = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (suffix, value) = match rest.split_once(char::is_whitespace) {
            Some((key, value)) => (key, value.trim()),
            None => continue,
        };
        // `_sum{…}` and `_sum` alike; anything else (`{quantile=…}`, `_bucket{…}`) is not ours.
        let suffix = suffix.split('{').next().unwrap_or(suffix);
        let value = value.split_whitespace().next().unwrap_or(value);
        match suffix {
            "_sum" => {
                if let Ok(v) = value.parse::<f64>() {
                    out.sum += v;
                    seen = true;
                }
            }
            "_count" => {
                // Exposition numbers may be written as floats.
                if let Ok(v) = value.parse::<f64>()
                    && v >= 0.0
                {
                    out.count += v as u64;
                    seen = true;
                }
            }
            _ => {}
        }
    }
    seen.then_some(out)
}

/// One "manifests compiled" log line of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLine {
    pub devices: u64,
    pub changed: u64,
    pub ms: u64,
}

/// Removes ANSI escape sequences (the server's text log colours field names).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                // CSI: parameters and intermediates up to the final byte in '@'..='~'.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Parses the server's compile log line, text (`… manifests compiled devices=N changed=N
/// ms=N`, coloured or not) or JSON (`--log-format json`); `None` for every other line.
pub fn parse_compile_line(line: &str) -> Option<CompileLine> {
    let line = strip_ansi(line);
    if !line.contains(COMPILE_MESSAGE) {
        return None;
    }
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).ok()?;
        let fields = v.get("fields").unwrap_or(&v);
        if fields.get("message").and_then(Value::as_str) != Some(COMPILE_MESSAGE) {
            return None;
        }
        let num = |k: &str| {
            let f = fields.get(k)?;
            f.as_u64().or_else(|| f.as_str()?.parse().ok())
        };
        return Some(CompileLine {
            devices: num("devices")?,
            changed: num("changed")?,
            ms: num("ms")?,
        });
    }
    let (_, after) = trimmed.split_once(COMPILE_MESSAGE)?;
    let mut fields = BTreeMap::new();
    for token in after.split_whitespace() {
        if let Some((k, v)) = token.split_once('=') {
            fields.insert(k, v);
        }
    }
    let num = |k: &str| fields.get(k)?.parse::<u64>().ok();
    Some(CompileLine {
        devices: num("devices")?,
        changed: num("changed")?,
        ms: num("ms")?,
    })
}

/// The compile lines the server logged from byte `offset` of its log on.
fn compile_lines_since(log: &Path, offset: u64) -> anyhow::Result<Vec<CompileLine>> {
    let bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[start..])
        .lines()
        .filter_map(parse_compile_line)
        .collect())
}

fn file_len(log: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(log)
        .with_context(|| format!("reading {}", log.display()))?
        .len())
}

/// One revision an agent went through: when its manifest arrived and when its complete
/// report was answered.
#[derive(Debug, Clone, Copy)]
struct Ack {
    revision: u64,
    fetched: Instant,
    acked: Instant,
}

#[derive(Default)]
struct Seen {
    /// Per agent (by index), every revision it acknowledged, in order.
    acks: Vec<Vec<Ack>>,
    last_ack: Option<Instant>,
    errors: BTreeMap<String, u64>,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a reconciler that found everything in its desired state reports for `item`.
fn done(item: &ManifestItem, at_ms: i64) -> ItemReport {
    let status = match (item.intent, &item.hold) {
        (_, Some(_)) => ItemStatus::Waiting,
        (ItemIntent::Present, None) => ItemStatus::Installed,
        (ItemIntent::Absent, None) => ItemStatus::Removed,
        (ItemIntent::Available, None) => ItemStatus::Available,
    };
    ItemReport {
        package_id: item.package_id.clone(),
        version: item.version.clone(),
        status,
        detail: None,
        exit_code: None,
        log: None,
        progress: None,
        drift: false,
        at_ms,
    }
}

/// The complete report for a fetched manifest.
fn report_for(payload: &ManifestPayload) -> ManifestReport {
    let at = now_ms();
    ManifestReport {
        revision: payload.revision,
        items: payload.items.iter().map(|i| done(i, at)).collect(),
        complete: true,
    }
}

/// Fetches the manifest and reports it done; the revision acknowledged and when it arrived.
async fn reconcile(agent: &DeployAgent) -> Result<Option<(u64, Instant)>, capstan_client::Error> {
    let Some(signed) = agent.client.manifest().await? else {
        return Ok(None);
    };
    let fetched = Instant::now();
    // The load generator does not verify the signature (the server's cost is in signing).
    let payload: ManifestPayload = serde_json::from_str(&signed.payload)
        .map_err(|e| capstan_client::Error::Config(format!("manifest payload: {e}")))?;
    agent.client.report_items(&report_for(&payload)).await?;
    Ok(Some((payload.revision, fetched)))
}

/// The agent loop: check in, reconcile a newer manifest, hold the long-poll, until `stop`.
async fn agent_loop(
    index: usize,
    agent: Arc<DeployAgent>,
    seen: Arc<Mutex<Seen>>,
    ready: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    let note_err = |e: &capstan_client::Error| {
        *lock(&seen).errors.entry(label(e)).or_default() += 1;
    };
    let mut acked: u64 = 0;
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        let resp = match agent
            .client
            .checkin(&CheckinRequest {
                agent_version: crate::synth::AGENT_VERSION.into(),
                capabilities: crate::synth::capabilities(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                note_err(&e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if resp.manifest_revision.is_some_and(|r| r > acked) {
            match reconcile(&agent).await {
                Ok(Some((revision, fetched))) => {
                    let at = Instant::now();
                    acked = acked.max(revision);
                    let mut s = lock(&seen);
                    if let Some(list) = s.acks.get_mut(index) {
                        list.push(Ack {
                            revision,
                            fetched,
                            acked: at,
                        });
                    }
                    s.last_ack = Some(at);
                }
                Ok(None) => {}
                Err(e) => {
                    // Check in again: the revision may have moved on meanwhile.
                    note_err(&e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        if first {
            ready.fetch_add(1, Ordering::SeqCst);
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
                note_err(&e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn percentiles(h: &Histogram) -> Value {
    let ms = |us: u64| (us as f64 / 100.0).round() / 10.0;
    json!({
        "count": h.count(),
        "p50_ms": ms(h.percentile_us(50.0)),
        "p90_ms": ms(h.percentile_us(90.0)),
        "p99_ms": ms(h.percentile_us(99.0)),
        "max_ms": ms(h.max_us()),
    })
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Settings of a deployment run.
pub struct Options {
    /// Desired-state changes, one after the other.
    pub rounds: usize,
    /// Quiet time (no acknowledgement, no compile pass) that ends a round, and the wait
    /// before the first.
    pub settle: Duration,
    /// A round that has not been acknowledged by every agent by then is reported incomplete.
    pub round_timeout: Duration,
    /// The server's log file, for its own compile figures (otherwise `/metrics` only).
    pub server_log: Option<PathBuf>,
    /// Distinguishes this run's package and group names from earlier runs on one server.
    pub tag: String,
    /// The processes whose CPU use during the compile pass is reported.
    pub cpu: CpuWatch,
}

/// The desired-state change of round `i` (0-based): assign package A, remove it, assign B,
/// remove it, assign A, …
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Assign(usize),
    Remove(usize),
}

fn change_of(round: usize) -> Change {
    let package = (round / 2) % 2;
    if round.is_multiple_of(2) {
        Change::Assign(package)
    } else {
        Change::Remove(package)
    }
}

/// Creates a package with one package-manager version (nothing to download).
async fn create_package(op: &Operator, name: &str) -> anyhow::Result<()> {
    op.post(
        "/api/v1/packages",
        &json!({"name": name, "description": "capstan-loadgen deployment benchmark"}),
    )
    .await?;
    op.post(
        &format!("/api/v1/packages/{name}/versions"),
        &json!({
            "version": "1",
            "spec": {
                "installer_type": "package_manager",
                "manager_package": {"manager": "apt", "name": name},
                "detection": {"type": "package", "manager": "dpkg", "name": name},
            },
        }),
    )
    .await?;
    Ok(())
}

/// Creates a static group holding `devices`; returns its id.
async fn create_group(op: &Operator, name: &str, devices: &[String]) -> anyhow::Result<String> {
    let g = op
        .post("/api/v1/groups", &json!({"name": name, "kind": "static"}))
        .await?;
    let id = g["id"]
        .as_str()
        .context("the created group has no id")?
        .to_string();
    for chunk in devices.chunks(MEMBERS_PER_CALL) {
        let r = op
            .post(
                &format!("/api/v1/groups/{id}/members"),
                &json!({"device_ids": chunk}),
            )
            .await?;
        if r["matched"].as_u64() != Some(chunk.len() as u64) {
            bail!(
                "adding {} devices to group {name}: the server matched {}",
                chunk.len(),
                r["matched"]
            );
        }
    }
    Ok(id)
}

/// Waits until no compile pass and no acknowledgement happened for `quiet` (at most
/// `limit`); returns whether it got quiet.
async fn quiesce(
    op: &Operator,
    seen: &Mutex<Seen>,
    quiet: Duration,
    limit: Duration,
) -> anyhow::Result<bool> {
    let t0 = Instant::now();
    let mut count = op.compile_metric().await?.count;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        let c = op.compile_metric().await?.count;
        if c != count {
            count = c;
            since = now;
        }
        if let Some(a) = lock(seen).last_ack {
            since = since.max(a);
        }
        if now.saturating_duration_since(since) >= quiet {
            return Ok(true);
        }
        if now.saturating_duration_since(t0) >= limit {
            return Ok(false);
        }
    }
}

/// Runs the deployment benchmark: `agents` are simulated, `devices` (which include the
/// agents' devices) form the target group.
pub async fn run(
    op: &Operator,
    agents: Vec<Arc<DeployAgent>>,
    devices: Vec<String>,
    opts: &Options,
) -> anyhow::Result<Value> {
    let n = agents.len();
    let packages = [
        format!("bench-a-{}", opts.tag),
        format!("bench-b-{}", opts.tag),
    ];
    for p in &packages {
        create_package(op, p)
            .await
            .with_context(|| format!("creating package {p}"))?;
    }
    let group_name = format!("capstan-loadgen deploy {}", opts.tag);
    let t_group = Instant::now();
    let group = create_group(op, &group_name, &devices)
        .await
        .with_context(|| format!("creating group {group_name}"))?;
    eprintln!(
        "group {group_name} ({group}) holds {} devices ({:.1} s)",
        devices.len(),
        t_group.elapsed().as_secs_f64()
    );

    let seen = Arc::new(Mutex::new(Seen {
        acks: vec![Vec::new(); n],
        ..Seen::default()
    }));
    let ready = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for (i, a) in agents.iter().enumerate() {
        set.spawn(agent_loop(
            i,
            a.clone(),
            seen.clone(),
            ready.clone(),
            stop_rx.clone(),
        ));
    }
    let t0 = Instant::now();
    while ready.load(Ordering::SeqCst) < n {
        if t0.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} of {n} agents checked in within 300 s",
                ready.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{n} agents checked in after {:.1} s; waiting for the server to settle ({} s quiet)…",
        t0.elapsed().as_secs_f64(),
        opts.settle.as_secs_f64()
    );
    if !quiesce(op, &seen, opts.settle, Duration::from_secs(300)).await? {
        eprintln!("warning: the server kept compiling for 300 s; measuring anyway");
    }

    let mut out = Vec::new();
    let mut current_assignment: Option<String> = None;
    for round in 0..opts.rounds {
        let change = change_of(round);
        let baseline: Vec<u64> = lock(&seen)
            .acks
            .iter()
            .map(|l| l.last().map_or(0, |a| a.revision))
            .collect();
        let before = op.compile_metric().await?;
        let log_offset = match &opts.server_log {
            Some(p) => Some(file_len(p)?),
            None => None,
        };
        let cpu0 = opts.cpu.sample();
        let start = Instant::now();
        let action = match &change {
            Change::Assign(p) => {
                let a = op
                    .post(
                        "/api/v1/assignments",
                        &json!({
                            "package": packages[*p],
                            "target": {"kind": "group", "id": group},
                            "intent": "required",
                        }),
                    )
                    .await
                    .context("creating the assignment")?;
                current_assignment = Some(
                    a["id"]
                        .as_str()
                        .context("the created assignment has no id")?
                        .to_string(),
                );
                format!("assign {} (required) to the group", packages[*p])
            }
            Change::Remove(p) => {
                let id = current_assignment
                    .take()
                    .context("no assignment to remove")?;
                op.delete(&format!("/api/v1/assignments/{id}"))
                    .await
                    .context("removing the assignment")?;
                format!("remove the assignment of {}", packages[*p])
            }
        };
        let op_time = start.elapsed();

        // Until every agent acknowledged a newer revision and the server went quiet.
        let deadline = start + opts.round_timeout;
        let mut first_pass: Option<(Duration, Summary)> = None;
        let mut pass_cpu = BTreeMap::new();
        let mut last_metric = before;
        let mut last_change = Instant::now();
        let mut complete = false;
        loop {
            let now = Instant::now();
            let m = op.compile_metric().await?;
            if m.count != last_metric.count {
                if first_pass.is_none() {
                    pass_cpu = opts.cpu.usage_since(&cpu0);
                    first_pass = Some((
                        now.saturating_duration_since(start),
                        Summary {
                            sum: m.sum - before.sum,
                            count: m.count - before.count,
                        },
                    ));
                }
                last_metric = m;
                last_change = now;
            }
            let (acked, last_ack) = {
                let s = lock(&seen);
                let acked = s
                    .acks
                    .iter()
                    .zip(&baseline)
                    .filter(|(l, b)| l.last().is_some_and(|a| a.revision > **b))
                    .count();
                (acked, s.last_ack)
            };
            let quiet_since = last_ack.map_or(last_change, |a| a.max(last_change));
            if acked >= n && now.saturating_duration_since(quiet_since) >= opts.settle {
                complete = true;
                break;
            }
            if now >= deadline {
                break;
            }
            tokio::time::sleep(METRICS_POLL).await;
        }

        let mut fetched = Histogram::new();
        let mut first_ack = Histogram::new();
        let mut final_ack = Histogram::new();
        let mut all_first = Duration::ZERO;
        let mut all_final = Duration::ZERO;
        let mut revisions: Vec<usize> = Vec::with_capacity(n);
        {
            let s = lock(&seen);
            for (list, base) in s.acks.iter().zip(&baseline) {
                let new: Vec<&Ack> = list.iter().filter(|a| a.revision > *base).collect();
                revisions.push(new.len());
                let (Some(first), Some(last)) = (new.first(), new.last()) else {
                    continue;
                };
                fetched.record(first.fetched.saturating_duration_since(start));
                let d = first.acked.saturating_duration_since(start);
                first_ack.record(d);
                all_first = all_first.max(d);
                let d = last.acked.saturating_duration_since(start);
                final_ack.record(d);
                all_final = all_final.max(d);
            }
        }
        let total = Summary {
            sum: last_metric.sum - before.sum,
            count: last_metric.count - before.count,
        };
        let log_lines = match (&opts.server_log, log_offset) {
            (Some(p), Some(off)) => Some(compile_lines_since(p, off)?),
            _ => None,
        };
        let compile = compile_json(first_pass, total, log_lines.as_deref());
        eprintln!(
            "round {}: {action}: {:.0} ms; compile pass {} ms ({} devices, {} changed); {}/{n} acknowledged, all within {:.0} ms (p50 {:.0} ms, p99 {:.0} ms){}",
            round + 1,
            op_time.as_secs_f64() * 1000.0,
            compile["pass_ms"],
            compile["devices"],
            compile["changed"],
            first_ack.count(),
            all_first.as_secs_f64() * 1000.0,
            first_ack.percentile_us(50.0) as f64 / 1000.0,
            first_ack.percentile_us(99.0) as f64 / 1000.0,
            if complete { "" } else { " (INCOMPLETE)" },
        );
        let max_revisions = revisions.iter().copied().max().unwrap_or(0);
        let mean_revisions = if n == 0 {
            0.0
        } else {
            revisions.iter().sum::<usize>() as f64 / n as f64
        };
        out.push(json!({
            "round": round + 1,
            "action": action,
            "request_ms": round_ms(op_time),
            "compile": compile,
            "manifest_fetched": percentiles(&fetched),
            "acknowledged": percentiles(&first_ack),
            "all_acknowledged_ms": round_ms(all_first),
            "final_acknowledged": percentiles(&final_ack),
            "all_final_ms": round_ms(all_final),
            "revisions_per_agent": {"max": max_revisions, "mean": (mean_revisions * 100.0).round() / 100.0},
            // From the request until the first pass was seen on /metrics: the pass, with the
            // agents it already woke.
            "cpu_cores_until_compiled": pass_cpu
                .iter()
                .map(|(k, v)| (k.clone(), json!((v * 100.0).round() / 100.0)))
                .collect::<serde_json::Map<String, Value>>(),
            "complete": complete,
        }));
    }
    let _ = stop_tx.send(true);
    set.abort_all();
    let errors = lock(&seen).errors.clone();
    Ok(json!({
        "agents": n,
        "devices": devices.len(),
        "group": group,
        "packages": packages,
        "rounds": out,
        "agent_errors": errors,
    }))
}

/// The compile figures of one round: the first pass after the change (from the log when
/// available — its exact `ms` — otherwise from the first observation on `/metrics`), and
/// every pass of the round together (the follow-ups compile devices whose agents reported).
fn compile_json(
    first_pass: Option<(Duration, Summary)>,
    total: Summary,
    log: Option<&[CompileLine]>,
) -> Value {
    let observed_ms = first_pass.map(|(d, _)| round_ms(d));
    let from_metrics = first_pass.map(|(_, s)| s);
    match log.and_then(|l| l.first().map(|f| (f, l))) {
        Some((first, lines)) => {
            let rest = &lines[1..];
            json!({
                "source": "log",
                "pass_ms": first.ms,
                "devices": first.devices,
                "changed": first.changed,
                "observed_after_ms": observed_ms,
                "metrics_pass_ms": from_metrics
                    .filter(|s| s.count == 1)
                    .map(|s| (s.sum * 10_000.0).round() / 10.0),
                "follow_up_passes_logged": rest.len(),
                "follow_up_changed": rest.iter().map(|l| l.changed).sum::<u64>(),
                "passes": total.count,
                "passes_total_ms": (total.sum * 10_000.0).round() / 10.0,
            })
        }
        None => json!({
            "source": "metrics",
            // Exact when the first observation held one pass; otherwise the sum of those seen.
            "pass_ms": from_metrics.map(|s| (s.sum * 10_000.0).round() / 10.0),
            "pass_exact": from_metrics.map(|s| s.count == 1),
            "devices": Value::Null,
            "changed": Value::Null,
            "observed_after_ms": observed_ms,
            "passes": total.count,
            "passes_total_ms": (total.sum * 10_000.0).round() / 10.0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (devices, changed, ms) of a compile line.
    type Figures = Option<(u64, u64, u64)>;

    /// Log lines as the server writes them (text with and without colour — the coloured one is
    /// copied from a server log —, JSON), and lines that must not be taken for a compile pass.
    #[test]
    fn compile_lines_are_read_from_every_log_format() {
        let cases: &[(&str, Figures)] = &[
            (
                "2026-11-26T10:15:02.118Z  INFO capstan_server::deploy: manifests compiled devices=10000 changed=10000 ms=2841",
                Some((10_000, 10_000, 2841)),
            ),
            (
                "\u{1b}[2m2026-11-26T10:31:24.514532Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mcapstan_server::deploy\u{1b}[0m\u{1b}[2m:\u{1b}[0m manifests compiled \u{1b}[3mdevices\u{1b}[0m\u{1b}[2m=\u{1b}[0m500 \u{1b}[3mchanged\u{1b}[0m\u{1b}[2m=\u{1b}[0m500 \u{1b}[3mms\u{1b}[0m\u{1b}[2m=\u{1b}[0m30",
                Some((500, 500, 30)),
            ),
            (
                r#"{"timestamp":"2026-11-26T10:15:02.118Z","level":"INFO","message":"manifests compiled","devices":500,"changed":499,"ms":310,"target":"capstan_server::deploy"}"#,
                Some((500, 499, 310)),
            ),
            (
                r#"{"timestamp":"2026-11-26T10:15:02.118Z","level":"INFO","fields":{"message":"manifests compiled","devices":3,"changed":1,"ms":9},"target":"capstan_server::deploy"}"#,
                Some((3, 1, 9)),
            ),
            (
                "2026-11-26T10:15:03Z  WARN capstan_server::deploy: compiling manifests failed; retrying error=database is locked",
                None,
            ),
            (
                "2026-11-26T10:15:03Z  INFO capstan_server::deploy: manifests compiled devices=10 changed=oops ms=3",
                None,
            ),
            (
                r#"{"level":"INFO","message":"listening","note":"manifests compiled later"}"#,
                None,
            ),
        ];
        for (line, want) in cases {
            let got = parse_compile_line(line).map(|c| (c.devices, c.changed, c.ms));
            assert_eq!(got, *want, "{line}");
        }
    }

    #[test]
    fn the_compile_summary_is_read_from_the_exposition() {
        let text = "\
# TYPE capstan_manifest_compile_seconds summary
capstan_manifest_compile_seconds{quantile=\"0\"} 0.0012
capstan_manifest_compile_seconds{quantile=\"1\"} 2.5
capstan_manifest_compile_seconds_sum 3.75
capstan_manifest_compile_seconds_count 4
capstan_manifest_compile_seconds_total_bogus 99
# TYPE capstan_agent_checkins_total counter
capstan_agent_checkins_total 1000
";
        assert_eq!(
            parse_summary(text, COMPILE_METRIC),
            Some(Summary {
                sum: 3.75,
                count: 4
            })
        );
        // Labelled series (a histogram with buckets) add up.
        let text = "\
capstan_manifest_compile_seconds_bucket{le=\"1\"} 2
capstan_manifest_compile_seconds_sum{replica=\"a\"} 1.5
capstan_manifest_compile_seconds_count{replica=\"a\"} 2
capstan_manifest_compile_seconds_sum{replica=\"b\"} 0.5
capstan_manifest_compile_seconds_count{replica=\"b\"} 1
";
        assert_eq!(
            parse_summary(text, COMPILE_METRIC),
            Some(Summary { sum: 2.0, count: 3 })
        );
        // Before the first pass the server has no such metric.
        assert_eq!(
            parse_summary("capstan_agent_checkins_total 5\n", COMPILE_METRIC),
            None
        );
    }

    #[test]
    fn simulated_agents_are_spread_over_the_compile_order() {
        assert_eq!(spread(10, 3), vec![0, 3, 6]);
        assert_eq!(spread(10_000, 1000)[..3], [0, 10, 20]);
        assert_eq!(spread(10_000, 1000).last(), Some(&9990));
        // Every device simulated when there are as many agents as devices, or more.
        assert_eq!(spread(4, 4), vec![0, 1, 2, 3]);
        assert_eq!(spread(2, 5), vec![0, 1]);
        assert!(spread(0, 5).is_empty());
    }

    #[test]
    fn rounds_assign_remove_and_alternate_packages() {
        let got: Vec<Change> = (0..5).map(change_of).collect();
        assert_eq!(
            got,
            vec![
                Change::Assign(0),
                Change::Remove(0),
                Change::Assign(1),
                Change::Remove(1),
                Change::Assign(0),
            ]
        );
    }

    /// The simulated reconciler reports what a real agent reports once every item is in its
    /// desired state, and acknowledges the revision it fetched.
    #[test]
    fn reports_finish_every_item_and_acknowledge_the_revision() {
        let payload: ManifestPayload = serde_json::from_value(json!({
            "device_id": "d1",
            "revision": 7,
            "compiled_at_ms": 1,
            "items": [
                {"package_id": "p1", "package_name": "a", "version": "1", "intent": "present",
                 "plan": {"steps": [], "force": false}},
                {"package_id": "p2", "package_name": "b", "version": "2", "intent": "absent",
                 "plan": {"steps": [], "force": false}},
                {"package_id": "p3", "package_name": "c", "version": "3", "intent": "available",
                 "plan": {"steps": [], "force": false}},
                {"package_id": "p4", "package_name": "d", "version": "4", "intent": "present",
                 "hold": "waiting for a maintenance window",
                 "plan": {"steps": [], "force": false}},
            ],
            "sources": [],
            "reconcile_interval_secs": 3600,
        }))
        .unwrap_or_else(|e| panic!("fixture payload: {e}"));
        let r = report_for(&payload);
        assert_eq!(r.revision, 7);
        assert!(r.complete);
        let got: Vec<(&str, &str, ItemStatus)> = r
            .items
            .iter()
            .map(|i| (i.package_id.as_str(), i.version.as_str(), i.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("p1", "1", ItemStatus::Installed),
                ("p2", "2", ItemStatus::Removed),
                ("p3", "3", ItemStatus::Available),
                ("p4", "4", ItemStatus::Waiting),
            ]
        );
    }
}
