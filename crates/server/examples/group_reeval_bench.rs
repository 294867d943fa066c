//! Benchmark of the dynamic groups' full re-evaluation (issue 3, BENCHMARKS.md): how long one
//! rule change takes to reach every device of a large fleet, and whether agent check-ins stall
//! while it runs.
//!
//! Setup (timed, but not the benchmark): a server state bootstrapped in-process as the API tests
//! do (predefined groups off), then N devices with seeded synthetic inventories
//! (`capstan_core::rules::synthetic`, `--packages` entries each — 300 by default rather than a
//! workstation's ~3,000, so 100,000 documents fit on disk), written through the store's own
//! enrollment and inventory functions by several concurrent writers. Optionally `--other-rules`
//! realistic dynamic groups exist already (evaluated once during setup), because a pass
//! evaluates every rule for each device it reads.
//!
//! Measured: (a) creating a dynamic group through the console API (the router, in-process)
//! until its background full pass has finished; (b) editing its rule, likewise. With
//! `--checkins-during`, check-ins (`Store::record_checkin`, as the agent API does) are issued at
//! ~200/s on random devices, first for a baseline window with no pass running, then during
//! each pass, and their latency percentiles are reported. Finally (c) the same pass once more,
//! called directly, when no device differs: reading and evaluating without writing.
//!
//! With `--tag-filter` it measures the device list's tag filter instead of the passes: every
//! device carries the tags `bench` and `linux` (from its enrollment token), every 10th also
//! `web` and every 100th also `canary`; then `GET /api/v1/devices?tag=…` (through the router,
//! default page of 100, sorted by hostname) is timed for each tag, a tag nobody has, and no
//! filter at all.
//!
//! `cargo run --release -p capstan-server --example group_reeval_bench -- \
//!     [--devices N] [--database-url URL] [--packages P] [--other-rules K] [--checkins-during]
//!     [--tag-filter [--tag-filter-repeats R]]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::http::{Method, Request, header};
use capstan_core::rules::synthetic;
use capstan_server::state::AppState;
use capstan_store::EnrollInput;
use clap::Parser;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Parser, Debug)]
#[command(about = "Full re-evaluation of one changed dynamic-group rule over N devices")]
struct Args {
    /// Number of synthetic devices.
    #[arg(long, default_value_t = 100_000)]
    devices: u64,
    /// `postgres://…` (an empty database) or `sqlite://PATH`; default a SQLite file in a temp dir.
    #[arg(long)]
    database_url: Option<String>,
    /// Software packages per synthetic inventory.
    #[arg(long, default_value_t = 300)]
    packages: usize,
    /// Other dynamic groups present during the passes (0..=70, from the synthetic rule set).
    #[arg(long, default_value_t = 0)]
    other_rules: usize,
    /// Issue check-ins at ~200/s during the passes and report their latency.
    #[arg(long)]
    checkins_during: bool,
    /// Length of the check-in baseline window without a pass, in seconds.
    #[arg(long, default_value_t = 10)]
    baseline_secs: u64,
    /// Concurrent writers while inserting devices.
    #[arg(long, default_value_t = 8)]
    insert_writers: u64,
    /// Measure the device list's tag filter instead of the re-evaluation passes.
    #[arg(long)]
    tag_filter: bool,
    /// Requests per query when measuring the tag filter.
    #[arg(long, default_value_t = 20)]
    tag_filter_repeats: usize,
}

const GIB: u64 = 1 << 30;
const CHECKINS_PER_SEC: u64 = 200;

/// Deterministic device ids: UUID-shaped, ordered like the server's v7 ids.
fn device_id(i: u64) -> String {
    format!("00000000-0000-7000-8000-{i:012}")
}

struct Api {
    router: axum::Router,
    token: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .context("building request")?;
        let resp = self.router.clone().oneshot(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path}: {status} {v}");
        }
        Ok(v)
    }
}

async fn login(router: &axum::Router) -> Result<String> {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": "admin", "password": "test-admin-password"}).to_string(),
        ))
        .context("building login request")?;
    let resp = router.clone().oneshot(req).await?;
    let bytes = resp.into_body().collect().await?.to_bytes();
    let v: Value = serde_json::from_slice(&bytes).context("login response")?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("login failed: {v}"))
}

/// Insert devices `from..to` (step `step`), each enrolled and given its first inventory.
async fn insert_devices(
    state: AppState,
    token_id: String,
    ids: impl Iterator<Item = u64>,
    packages: usize,
) -> Result<u64> {
    let mut bytes = 0u64;
    for i in ids {
        let (doc, digest, json) = tokio::task::spawn_blocking(move || {
            let doc = synthetic::inventory(i, packages);
            let digest = capstan_core::inventory::digest(&doc);
            let json = serde_json::to_string(&doc);
            (doc, digest, json)
        })
        .await?;
        let json = json?;
        bytes += json.len() as u64;
        let os = doc.os.as_ref();
        let hostname = format!("bench-{i:06}");
        let now = capstan_server::state::now_ms();
        let out = state
            .store
            .enroll_device(&EnrollInput {
                token_id: token_id.clone(),
                now,
                new_device_id: device_id(i),
                secret_hash: "0".repeat(64),
                identity_key: format!("bench-{i}"),
                identity_source: "instance".into(),
                hostname: hostname.clone(),
                os_family: os.map(|o| o.family.clone()).unwrap_or_default(),
                agent_version: "0.0.0-bench".into(),
            })
            .await
            .map_err(|e| anyhow::anyhow!("enrolling device {i}: {e}"))?;
        state
            .store
            .store_inventory(
                &out.device_id,
                None,
                &digest,
                &json,
                &hostname,
                os.and_then(|o| o.name.as_deref()),
                os.and_then(|o| o.version_id.as_deref()),
                &[],
                now,
            )
            .await
            .with_context(|| format!("storing inventory of device {i}"))?;
    }
    Ok(bytes)
}

/// Check-ins at ~200/s on random devices until `stop`; returns each one's latency.
async fn checkins(state: AppState, devices: u64, seed: u64, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut rng = synthetic::Rng::new(seed);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / CHECKINS_PER_SEC));
    let mut handles = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let id = device_id(rng.below(devices));
        let state = state.clone();
        handles.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = state
                .store
                .record_checkin(
                    &id,
                    capstan_server::state::now_ms(),
                    "0.0.0-bench",
                    None,
                    None,
                )
                .await;
            (started.elapsed().as_secs_f64() * 1e3, r.is_ok())
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok((ms, true)) => out.push(ms),
            Ok((_, false)) => eprintln!("a check-in failed"),
            Err(e) => eprintln!("a check-in task failed: {e}"),
        }
    }
    out
}

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no check-ins".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "n={:>5}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        v.len(),
        at(0.50),
        at(0.99),
        v[v.len() - 1]
    )
}

/// Send one group request and wait until the full pass it starts has finished.
async fn timed_pass(
    api: &Api,
    state: &AppState,
    method: Method,
    path: &str,
    body: Value,
) -> Result<(Duration, Value)> {
    let started = Instant::now();
    let v = api.call(method, path, body).await?;
    while state.membership.reevaluations_running() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((started.elapsed(), v))
}

/// [`timed_pass`], with check-ins running alongside when asked.
async fn measured(
    args: &Args,
    api: &Api,
    state: &AppState,
    method: Method,
    path: &str,
    body: Value,
) -> Result<(Duration, Option<Vec<f64>>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let load = args.checkins_during.then(|| {
        tokio::spawn(checkins(
            state.clone(),
            args.devices,
            path.len() as u64,
            stop.clone(),
        ))
    });
    let (elapsed, _) = timed_pass(api, state, method, path, body).await?;
    stop.store(true, Ordering::SeqCst);
    let lat = match load {
        Some(h) => Some(h.await?),
        None => None,
    };
    Ok((elapsed, lat))
}

/// Tag every 10th device `web` and every 100th `canary`, in bulk transactions of 5,000.
async fn tag_devices(state: &AppState, devices: u64) -> Result<()> {
    let audit = capstan_store::AuditEntry {
        at: capstan_server::state::now_ms(),
        actor: "bench".into(),
        action: "device.tags_add".into(),
        target: None,
        details: json!({}),
    };
    for (tag, every) in [("web", 10), ("canary", 100)] {
        let ids: Vec<String> = (0..devices).step_by(every).map(device_id).collect();
        for chunk in ids.chunks(5_000) {
            state
                .store
                .change_tags(chunk, &[tag.to_string()], true, audit.at, &audit)
                .await
                .with_context(|| format!("tagging devices {tag}"))?;
        }
    }
    Ok(())
}

/// Time `GET /api/v1/devices?{query}` `repeats` times (after one warm-up request).
async fn time_device_list(api: &Api, query: &str, repeats: usize) -> Result<(Vec<f64>, u64)> {
    let path = format!("/api/v1/devices?{query}");
    let first = api.call(Method::GET, &path, Value::Null).await?;
    let total = first["total"]
        .as_u64()
        .context("device page without total")?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let started = Instant::now();
        api.call(Method::GET, &path, Value::Null).await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok((times, total))
}

async fn tag_filter_report(args: &Args, api: &Api, backend: &str) -> Result<()> {
    println!();
    println!(
        "{backend}, {} devices: GET /api/v1/devices?… (page of 100 by hostname), {} requests each, ms",
        args.devices, args.tag_filter_repeats
    );
    println!("| query | matching | p50 | p95 | max |");
    println!("|---|---:|---:|---:|---:|");
    for query in [
        "",
        "tag=canary",
        "tag=web",
        "tag=bench",
        "tag=absent",
        "tag=web&sort=-last_seen",
        "tag=web&offset=5000",
    ] {
        let (mut t, total) = time_device_list(api, query, args.tag_filter_repeats).await?;
        t.sort_by(f64::total_cmp);
        let at = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
        println!(
            "| `{}` | {total} | {:.1} | {:.1} | {:.1} |",
            if query.is_empty() { "(none)" } else { query },
            at(0.5),
            at(0.95),
            t[t.len() - 1]
        );
    }
    Ok(())
}

async fn members(api: &Api, id: &str) -> Result<u64> {
    let v = api
        .call(Method::GET, &format!("/api/v1/groups/{id}"), Value::Null)
        .await?;
    v["members"].as_u64().context("group without member count")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.devices == 0
        || args.other_rules > 70
        || args.insert_writers == 0
        || args.tag_filter_repeats == 0
    {
        bail!(
            "--devices, --insert-writers and --tag-filter-repeats must be positive, --other-rules at most 70"
        );
    }
    let dir = tempfile::tempdir().context("temp dir")?;
    let mut config = capstan_server::config::Config::for_tests(dir.path());
    if let Some(url) = &args.database_url {
        config.database_url = url.clone();
    }
    let backend = if config.database_url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let (router, state) = capstan_server::testing::app_with_config(config).await?;
    let api = Api {
        token: login(&router).await?,
        router,
    };

    // Synthetic rules that need neither custom fields nor other groups (kinds 0–5 and 8).
    let others: Vec<Value> = synthetic::rules()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| matches!(i / 10, 0..=5 | 8))
        .map(|(_, r)| r)
        .take(args.other_rules)
        .collect();
    for (i, rule) in others.iter().enumerate() {
        api.call(
            Method::POST,
            "/api/v1/groups",
            json!({"name": format!("other-{i:02}"), "kind": "dynamic", "rule": rule}),
        )
        .await?;
    }

    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..args.insert_writers {
        let t = api
            .call(
                Method::POST,
                "/api/v1/enrollment-tokens",
                json!({"name": format!("bench writer {w}"), "default_tags": ["bench", "linux"]}),
            )
            .await?;
        let token_id = t["id"].as_str().context("token without id")?.to_string();
        let ids = (w..args.devices).step_by(args.insert_writers as usize);
        writers.push(tokio::spawn(insert_devices(
            state.clone(),
            token_id,
            ids,
            args.packages,
        )));
    }
    let mut bytes = 0u64;
    for h in writers {
        bytes += h.await??;
    }
    let insert = started.elapsed();
    println!(
        "{backend}: {} devices × {} packages inserted in {:.1} s ({:.0} devices/s, average document {:.1} KiB)",
        args.devices,
        args.packages,
        insert.as_secs_f64(),
        args.devices as f64 / insert.as_secs_f64(),
        bytes as f64 / args.devices as f64 / 1024.0
    );
    if args.tag_filter {
        let started = Instant::now();
        tag_devices(&state, args.devices).await?;
        println!(
            "setup: tagged {} devices web and {} canary in {:.1} s",
            args.devices.div_ceil(10),
            args.devices.div_ceil(100),
            started.elapsed().as_secs_f64()
        );
        tag_filter_report(&args, &api, backend).await?;
        state.store.close().await;
        return Ok(());
    }
    if !others.is_empty() {
        let started = Instant::now();
        let changes =
            capstan_server::membership::reevaluate_all(&state, capstan_server::state::now_ms())
                .await
                .map_err(|e| anyhow::anyhow!("initial pass: {}", e.message))?;
        println!(
            "setup: first pass of {} other rules: {:.1} s, {changes} joins",
            others.len(),
            started.elapsed().as_secs_f64()
        );
    }

    let baseline = if args.checkins_during {
        let stop = Arc::new(AtomicBool::new(false));
        let h = tokio::spawn(checkins(state.clone(), args.devices, 1, stop.clone()));
        tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;
        stop.store(true, Ordering::SeqCst);
        Some(h.await?)
    } else {
        None
    };

    let create_rule = json!({"all": [
        {"field": "os.id", "op": "eq", "value": "debian"},
        {"software": {"name": "nginx", "op": "version_gte", "value": "1.22"}},
        {"field": "hardware.memory_bytes", "op": "gte", "value": 8 * GIB}
    ]});
    let (create, create_lat) = measured(
        &args,
        &api,
        &state,
        Method::POST,
        "/api/v1/groups",
        json!({"name": "bench-nginx", "kind": "dynamic", "rule": create_rule}),
    )
    .await?;
    let group = state
        .store
        .all_groups()
        .await?
        .into_iter()
        .find(|g| g.name == "bench-nginx")
        .context("the created group is missing")?;
    let after_create = members(&api, &group.id).await?;

    let edit_rule = json!({"all": [
        {"field": "os.id", "op": "in", "value": ["debian", "ubuntu"]},
        {"software": {"name": "nginx", "op": "version_gte", "value": "6.0"}},
        {"field": "hardware.memory_bytes", "op": "gte", "value": 16 * GIB}
    ]});
    let (edit, edit_lat) = measured(
        &args,
        &api,
        &state,
        Method::PATCH,
        &format!("/api/v1/groups/{}", group.id),
        json!({"rule": edit_rule}),
    )
    .await?;
    let after_edit = members(&api, &group.id).await?;

    // The same pass once more: every device is read and evaluated, none differs, nothing is
    // written — what separates reading and evaluating from writing the changes.
    let started = Instant::now();
    let unchanged =
        capstan_server::membership::reevaluate_all(&state, capstan_server::state::now_ms())
            .await
            .map_err(|e| anyhow::anyhow!("unchanged pass: {}", e.message))?;
    let unchanged_time = started.elapsed();

    let per_device = |d: Duration| d.as_secs_f64() * 1e6 / args.devices as f64;
    println!();
    println!(
        "{backend}, {} devices, {} packages each, {} other dynamic groups",
        args.devices,
        args.packages,
        others.len()
    );
    println!("| pass | wall time | per device | members after |");
    println!("|---|---:|---:|---:|");
    println!(
        "| (a) create group (Debian, nginx ≥ 1.22, RAM ≥ 8 GiB) | {:.1} s | {:.0} µs | {after_create} |",
        create.as_secs_f64(),
        per_device(create)
    );
    println!(
        "| (b) edit rule (Debian/Ubuntu, nginx ≥ 6.0, RAM ≥ 16 GiB) | {:.1} s | {:.0} µs | {after_edit} |",
        edit.as_secs_f64(),
        per_device(edit)
    );
    println!(
        "| (c) same rules again, nothing to write ({unchanged} changes) | {:.1} s | {:.0} µs | {after_edit} |",
        unchanged_time.as_secs_f64(),
        per_device(unchanged_time)
    );
    if let Some(b) = baseline {
        println!();
        println!("check-ins at ~{CHECKINS_PER_SEC}/s (Store::record_checkin):");
        println!("  no pass:        {}", percentiles(b));
        if let Some(l) = create_lat {
            println!("  during (a):     {}", percentiles(l));
        }
        if let Some(l) = edit_lat {
            println!("  during (b):     {}", percentiles(l));
        }
    }
    state.store.close().await;
    Ok(())
}
