//! `capstan-loadgen`: simulated agents speaking the real agent protocol, to measure how many
//! check-ins and inventory ingests per second a Capstan server sustains. It enrolls N devices
//! (each with its own random identity and credential), then drives check-ins, full inventory
//! uploads or a 95/5 mix of both, closed-loop or at a fixed rate, and reports throughput,
//! latency percentiles, errors by code and the CPU each process used. Two modes time what
//! reaches agents holding the wake-up long-poll instead: `fanout` (a no-op job, fanout.rs) and
//! `deploy` (assignments compiled into manifests and acknowledged, deploy.rs). The benchmark
//! scripts (scripts/bench*.sh) start the server; this tool only talks to it.

mod cpu;
mod deploy;
mod fanout;
mod histogram;
mod run;
mod synth;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use capstan_client::api::ApiClient;
use capstan_client::tls::{ClientOptions, Fingerprint, build_http_client};
use capstan_proto::api::{CreateEnrollmentTokenRequest, LoginRequest};
use clap::Parser;
use serde_json::{Value, json};

use crate::cpu::CpuWatch;
use crate::run::{Arrivals, Ctx, Mode, Phase, Schedule, Stats, Target};
use crate::synth::{AgentProfile, SharedSoftware};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "capstan-loadgen",
    version,
    about = "Load generator for a Capstan server: simulated agents speaking the agent protocol"
)]
struct Cli {
    /// Server base URL, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    server: String,
    /// Pin the server certificate (sha256:… as the server prints it).
    #[arg(long)]
    fingerprint: Option<String>,
    /// Console user that creates the enrollment token.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Environment variable holding that user's password.
    #[arg(long, default_value = "CAPSTAN_ADMIN_PASSWORD")]
    password_env: String,
    /// Use this enrollment token instead of logging in (needs at least --agents uses left).
    #[arg(long)]
    token: Option<String>,
    /// Simulated devices to enroll (deploy mode: simulated agents among --devices).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Deploy mode: devices to enroll and put in the target group, at least --agents; the
    /// ones beyond the agents are only enrolled [default: --agents].
    #[arg(long)]
    devices: Option<usize>,
    /// Deploy mode: the server's log file, for its own compile figures ("manifests
    /// compiled … ms="); without it they come from /metrics.
    #[arg(long)]
    server_log: Option<std::path::PathBuf>,
    /// Length of the measured phase, in seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Unmeasured load before the measured phase (connections, caches), in seconds.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    #[arg(long, value_enum, default_value_t = Mode::Checkin)]
    mode: Mode,
    /// Requests per second in total (open loop); 0 = closed loop, as fast as the server answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Closed loop: concurrent requests. Also the concurrency of the first-inventory pass.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop: how requests are spaced (poisson = random, like many jittered agents).
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson)]
    arrivals: Arrivals,
    /// Open loop: requests outstanding at most (later ones wait, and their wait counts).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Concurrent enrollments.
    #[arg(long, default_value_t = 32)]
    enroll_concurrency: usize,
    /// Software entries per synthetic inventory.
    #[arg(long, default_value_t = 2000)]
    packages: usize,
    /// Package versions changed by each upload after the first.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Also account the CPU of this process and its children: LABEL=PID (repeatable).
    #[arg(long = "watch-pid", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// Seed of the synthetic identities and data [default: different every run].
    #[arg(long)]
    seed: Option<u64>,
    /// Fan-out mode: jobs to create one after the other; deploy mode: desired-state changes
    /// (assign, remove, assign another package, …).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Fan-out mode: seconds to let the long-polls settle before (and between) rounds; deploy
    /// mode: seconds without a compile pass or acknowledgement that end a round.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (label, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=PID, got {s:?}"))?;
    let pid = pid
        .parse()
        .map_err(|e| format!("{pid:?} is not a process id: {e}"))?;
    Ok((label.to_string(), pid))
}

impl Cli {
    /// Devices to enroll: deploy mode enrolls --devices, of which --agents are simulated.
    fn enrolled(&self) -> usize {
        match self.mode {
            Mode::Deploy => self.devices.unwrap_or(self.agents),
            _ => self.agents,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.agents == 0 {
        bail!("--agents must be at least 1");
    }
    if cli.enrolled() < cli.agents {
        bail!("--devices must be at least --agents");
    }
    // Written so that NaN fails every check.
    let valid = cli.duration > 0.0 && cli.warmup >= 0.0 && cli.rate >= 0.0;
    if !valid {
        bail!("--duration must be positive, --warmup and --rate not negative");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(run(&cli))?;
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => print_text(&report),
    }
    Ok(())
}

/// Log in as the console user (password from the environment).
async fn operator(cli: &Cli, opts: &ClientOptions) -> anyhow::Result<ApiClient> {
    let password = std::env::var(&cli.password_env).with_context(|| {
        format!(
            "the password of {:?} is read from ${}",
            cli.username, cli.password_env
        )
    })?;
    let api = ApiClient::new(&cli.server, None, opts)?;
    let login = api
        .login(&LoginRequest {
            username: cli.username.clone(),
            password,
        })
        .await
        .with_context(|| format!("logging in to {} as {}", cli.server, cli.username))?;
    Ok(api.with_token(Some(login.token)))
}

async fn enrollment_token(cli: &Cli, opts: &ClientOptions, seed: u64) -> anyhow::Result<String> {
    if let Some(t) = &cli.token {
        return Ok(t.clone());
    }
    let created = operator(cli, opts)
        .await
        .context("pass --token, or let the load generator log in")?
        .create_enrollment_token(&CreateEnrollmentTokenRequest {
            name: format!("capstan-loadgen run {seed:016x}"),
            expires_in_secs: Some(86_400),
            max_uses: Some(u32::try_from(cli.enrolled()).context("--agents is too large")?),
            default_tags: vec![],
        })
        .await
        .context("creating the enrollment token")?;
    Ok(created.token)
}

async fn run(cli: &Cli) -> anyhow::Result<Value> {
    let pin = cli
        .fingerprint
        .as_deref()
        .map(Fingerprint::parse)
        .transpose()?;
    let opts = ClientOptions {
        pin,
        timeout: Some(Duration::from_secs(cli.timeout)),
        user_agent: Some(format!("capstan-loadgen/{}", env!("CARGO_PKG_VERSION"))),
    };
    let seed = cli.seed.unwrap_or_else(synth::run_seed);
    let token = enrollment_token(cli, &opts, seed).await?;
    let http = build_http_client(&opts)?;
    let target = Target {
        http,
        base_url: cli.server.trim_end_matches('/').to_string(),
    };
    let mut ctx = Ctx {
        target,
        shared: None,
        changes: cli.changes as u64,
        cpu: CpuWatch::new(cli.watch.clone()),
    };

    let profiles: Vec<AgentProfile> = (0..cli.enrolled())
        .map(|i| AgentProfile::new(seed, i))
        .collect();
    eprintln!("enrolling {} devices…", profiles.len());
    let (mut agents, enroll_phase) =
        run::enroll(&ctx, &token, profiles, cli.enroll_concurrency).await?;
    let mut phases = vec![enroll_phase];
    if cli.mode == Mode::Fanout {
        return fanout_report(cli, &opts, &ctx, agents, phases).await;
    }
    if cli.mode == Mode::Deploy {
        return deploy_report(cli, &opts, &ctx, agents, phases, seed).await;
    }

    let mut prepare_secs = None;
    if cli.mode.needs_inventory() {
        eprintln!(
            "preparing inventories ({} packages, {} changes per upload)…",
            cli.packages, cli.changes
        );
        let t0 = Instant::now();
        let shared = SharedSoftware::new(cli.packages, cli.changes, seed)?;
        run::prepare_inventories(&mut agents, &shared)?;
        ctx.shared = Some(shared);
        prepare_secs = Some(t0.elapsed().as_secs_f64());
    }
    let ctx = Arc::new(ctx);
    let agents = Arc::new(agents);

    if cli.mode.needs_inventory() {
        eprintln!("uploading first inventories…");
        phases.push(run::first_inventories(&ctx, &agents, cli.concurrency).await?);
    }
    let main_phase = |secs: f64| {
        let (ctx, agents) = (ctx.clone(), agents.clone());
        let duration = Duration::from_secs_f64(secs);
        async move {
            if cli.rate > 0.0 {
                let schedule = Schedule::new(cli.arrivals, cli.rate, duration, seed);
                run::open_loop(
                    &ctx,
                    &agents,
                    cli.mode,
                    cli.rate,
                    schedule,
                    cli.max_in_flight,
                )
                .await
            } else {
                run::closed_loop(&ctx, &agents, cli.mode, cli.concurrency, duration).await
            }
        }
    };
    if cli.warmup > 0.0 {
        eprintln!("warming up for {} s…", cli.warmup);
        let mut warm = main_phase(cli.warmup).await?;
        warm.name = format!("warmup_{}", warm.name);
        phases.push(warm);
    }
    eprintln!("measuring for {} s…", cli.duration);
    phases.push(main_phase(cli.duration).await?);

    Ok(json!({
        "loadgen_version": env!("CARGO_PKG_VERSION"),
        "server": cli.server,
        "tls": cli.server.starts_with("https://"),
        "mode": format!("{:?}", cli.mode).to_lowercase(),
        "agents": agents.len(),
        "concurrency": cli.concurrency,
        "rate": cli.rate,
        "arrivals": (cli.rate > 0.0).then(|| format!("{:?}", cli.arrivals).to_lowercase()),
        "duration_s": cli.duration,
        "packages": cli.mode.needs_inventory().then_some(cli.packages),
        "changes": cli.mode.needs_inventory().then_some(cli.changes),
        "prepare_s": prepare_secs,
        "phases": phases.iter().map(phase_json).collect::<Vec<_>>(),
    }))
}

async fn fanout_report(
    cli: &Cli,
    opts: &ClientOptions,
    ctx: &Ctx,
    agents: Vec<Arc<run::SimAgent>>,
    phases: Vec<Phase>,
) -> anyhow::Result<Value> {
    let api = operator(cli, opts).await?;
    let http = ctx.target.http.clone();
    let base = ctx.target.base_url.clone();
    let token = api
        .token()
        .map(str::to_string)
        .context("the login gave no token")?;
    let fan: Vec<Arc<fanout::FanoutAgent>> = agents
        .iter()
        .map(|a| {
            Arc::new(fanout::FanoutAgent {
                device_id: a.device_id.clone(),
                client: a.client.clone(),
            })
        })
        .collect();
    let cpu0 = ctx.cpu.sample();
    let create = move |ids: Vec<String>| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let body = json!({
                "name": "capstan-loadgen fan-out (no-op)",
                "spec": {"action": {"type": "command", "argv": ["true"]}, "timeout_secs": 60},
                "targets": {"devices": ids},
                "expires_in_secs": 600,
            });
            let resp = http
                .post(format!("{base}/api/v1/jobs"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .context("creating the job")?;
            let status = resp.status();
            let v: Value = resp.json().await.context("reading the created job")?;
            if !status.is_success() {
                bail!("creating the job failed: {status} {v}");
            }
            v["id"]
                .as_str()
                .map(str::to_string)
                .context("the created job has no id")
        }
    };
    let report = fanout::run(
        fan,
        cli.rounds.max(1),
        Duration::from_secs(cli.settle),
        Duration::from_secs(cli.timeout),
        create,
    )
    .await?;
    let cpu = ctx.cpu.usage_since(&cpu0);
    Ok(json!({
        "loadgen_version": env!("CARGO_PKG_VERSION"),
        "server": cli.server,
        "tls": cli.server.starts_with("https://"),
        "mode": "fanout",
        "enroll": phases.iter().map(phase_json).collect::<Vec<_>>(),
        "fanout": report,
        "cpu_cores_during_fanout": cpu,
    }))
}

async fn deploy_report(
    cli: &Cli,
    opts: &ClientOptions,
    ctx: &Ctx,
    agents: Vec<Arc<run::SimAgent>>,
    phases: Vec<Phase>,
    seed: u64,
) -> anyhow::Result<Value> {
    let api = operator(cli, opts).await?;
    let op = deploy::Operator {
        http: ctx.target.http.clone(),
        base: ctx.target.base_url.clone(),
        token: api
            .token()
            .map(str::to_string)
            .context("the login gave no token")?,
    };
    // The compiler goes through devices in id order; the simulated agents are spread over it.
    let mut agents = agents;
    agents.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    let devices: Vec<String> = agents.iter().map(|a| a.device_id.clone()).collect();
    let sim: Vec<Arc<deploy::DeployAgent>> = deploy::spread(agents.len(), cli.agents)
        .into_iter()
        .map(|i| {
            Arc::new(deploy::DeployAgent {
                client: agents[i].client.clone(),
            })
        })
        .collect();
    let cpu0 = ctx.cpu.sample();
    let report = deploy::run(
        &op,
        sim,
        devices,
        &deploy::Options {
            rounds: cli.rounds.max(1),
            settle: Duration::from_secs(cli.settle),
            round_timeout: Duration::from_secs(cli.timeout),
            server_log: cli.server_log.clone(),
            tag: format!("{:08x}", seed as u32),
            cpu: ctx.cpu.clone(),
        },
    )
    .await?;
    let cpu = ctx.cpu.usage_since(&cpu0);
    Ok(json!({
        "loadgen_version": env!("CARGO_PKG_VERSION"),
        "server": cli.server,
        "tls": cli.server.starts_with("https://"),
        "mode": "deploy",
        "enroll": phases.iter().map(phase_json).collect::<Vec<_>>(),
        "deploy": report,
        "cpu_cores_during_deploy": cpu,
    }))
}

fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

fn stats_json(s: &Stats, elapsed: Duration) -> Value {
    let h = &s.latency;
    json!({
        "ok": s.ok,
        "errors": s.errors,
        "per_sec": (s.ok as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "p50_ms": ms(h.percentile_us(50.0)),
        "p90_ms": ms(h.percentile_us(90.0)),
        "p99_ms": ms(h.percentile_us(99.0)),
        "p999_ms": ms(h.percentile_us(99.9)),
        "max_ms": ms(h.max_us()),
        "mean_ms": (h.mean_us() / 10.0).round() / 100.0,
        "bytes_per_request": s.bytes.checked_div(s.ok).unwrap_or(0),
    })
}

fn phase_json(p: &Phase) -> Value {
    let ops: serde_json::Map<String, Value> = p
        .ops
        .iter()
        .map(|(k, s)| (k.to_string(), stats_json(s, p.elapsed)))
        .collect();
    let cpu: serde_json::Map<String, Value> = p
        .cpu
        .iter()
        .map(|(k, v)| (k.clone(), json!((v * 100.0).round() / 100.0)))
        .collect();
    json!({
        "name": p.name,
        "elapsed_s": (p.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "target_rate": p.target_rate,
        "dispatch_lag_max_ms": p.dispatch_lag_max.map(|d| ms(d.as_micros() as u64)),
        "skipped_busy": p.skipped_busy,
        "cpu_cores": cpu,
        "ops": ops,
    })
}

fn print_text(report: &Value) {
    if report["mode"] == "deploy" {
        let d = &report["deploy"];
        println!(
            "capstan-loadgen {} → {}, deployments to a group of {} devices, {} of them simulated agents holding long-polls",
            report["loadgen_version"].as_str().unwrap_or("?"),
            report["server"].as_str().unwrap_or("?"),
            d["devices"],
            d["agents"],
        );
        for r in d["rounds"].as_array().into_iter().flatten() {
            let (c, a, f) = (&r["compile"], &r["acknowledged"], &r["final_acknowledged"]);
            println!(
                "  round {}: {} (request {} ms){}",
                r["round"],
                r["action"].as_str().unwrap_or("?"),
                r["request_ms"],
                if r["complete"] == true {
                    ""
                } else {
                    "  (INCOMPLETE)"
                }
            );
            println!(
                "    compile: first pass {} ms ({}; devices {}, changed {}), seen on /metrics {} ms after the request; {} passes in the round, {} ms in all",
                c["pass_ms"],
                c["source"].as_str().unwrap_or("?"),
                c["devices"],
                c["changed"],
                c["observed_after_ms"],
                c["passes"],
                c["passes_total_ms"],
            );
            if let Some(cpu) = r["cpu_cores_until_compiled"].as_object() {
                let list: Vec<String> = cpu.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("    cpu until compiled (cores): {}", list.join(", "));
            }
            println!(
                "    acknowledged {}: p50 {} ms, p90 {} ms, p99 {} ms, all {} ms (manifest fetched: p50 {} ms, p99 {} ms)",
                a["count"],
                a["p50_ms"],
                a["p90_ms"],
                a["p99_ms"],
                r["all_acknowledged_ms"],
                r["manifest_fetched"]["p50_ms"],
                r["manifest_fetched"]["p99_ms"],
            );
            if r["revisions_per_agent"]["max"].as_u64().unwrap_or(0) > 1 {
                println!(
                    "    last revision of the round acknowledged: p50 {} ms, p99 {} ms, all {} ms ({} revisions per agent at most, {} on average)",
                    f["p50_ms"],
                    f["p99_ms"],
                    r["all_final_ms"],
                    r["revisions_per_agent"]["max"],
                    r["revisions_per_agent"]["mean"],
                );
            }
        }
        println!("  agent errors: {}", d["agent_errors"]);
        println!("  cpu (cores): {}", report["cpu_cores_during_deploy"]);
        return;
    }
    if report["mode"] == "fanout" {
        let f = &report["fanout"];
        println!(
            "capstan-loadgen {} → {}, fan-out of a no-op job to {} agents holding long-polls",
            report["loadgen_version"].as_str().unwrap_or("?"),
            report["server"].as_str().unwrap_or("?"),
            f["agents"],
        );
        for r in f["rounds"].as_array().into_iter().flatten() {
            let (a, d) = (&r["acknowledged"], &r["finished"]);
            println!(
                "  round {}: create {} ms | acknowledged {}: p50 {} ms, p99 {} ms, max {} ms | finished {}: p50 {} ms, p99 {} ms, max {} ms{}",
                r["round"],
                r["create_ms"],
                a["count"],
                a["p50_ms"],
                a["p99_ms"],
                a["max_ms"],
                d["count"],
                d["p50_ms"],
                d["p99_ms"],
                d["max_ms"],
                if r["complete"] == true {
                    ""
                } else {
                    "  (INCOMPLETE)"
                }
            );
        }
        println!("  agent errors: {}", f["agent_errors"]);
        println!("  cpu (cores): {}", report["cpu_cores_during_fanout"]);
        return;
    }
    println!(
        "capstan-loadgen {} → {} ({}), mode {}, {} agents",
        report["loadgen_version"].as_str().unwrap_or("?"),
        report["server"].as_str().unwrap_or("?"),
        if report["tls"].as_bool() == Some(true) {
            "TLS"
        } else {
            "plain HTTP"
        },
        report["mode"].as_str().unwrap_or("?"),
        report["agents"],
    );
    if let Some(p) = report["prepare_s"].as_f64() {
        println!("  inventories prepared in {p:.2} s (not measured)");
    }
    let empty = Vec::new();
    for phase in report["phases"].as_array().unwrap_or(&empty) {
        println!(
            "{} ({} s){}",
            phase["name"].as_str().unwrap_or("?"),
            phase["elapsed_s"],
            match phase["target_rate"].as_f64() {
                Some(r) => format!(
                    ", target {r}/s, dispatch lag max {} ms, skipped (agent busy) {}",
                    phase["dispatch_lag_max_ms"], phase["skipped_busy"]
                ),
                None => String::new(),
            }
        );
        if let Some(ops) = phase["ops"].as_object() {
            for (name, s) in ops {
                println!(
                    "  {name:<10} {:>8} ok {:>10.1}/s  p50 {} ms  p90 {} ms  p99 {} ms  p99.9 {} ms  max {} ms{}",
                    s["ok"],
                    s["per_sec"].as_f64().unwrap_or(0.0),
                    s["p50_ms"],
                    s["p90_ms"],
                    s["p99_ms"],
                    s["p999_ms"],
                    s["max_ms"],
                    match s["bytes_per_request"].as_u64() {
                        Some(b) if b > 0 => format!("  {b} bytes/request"),
                        _ => String::new(),
                    }
                );
                if let Some(errors) = s["errors"].as_object().filter(|e| !e.is_empty()) {
                    let list: Vec<String> =
                        errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("  {:<10} errors: {}", "", list.join(", "));
                }
            }
        }
        if let Some(cpu) = phase["cpu_cores"].as_object() {
            let list: Vec<String> = cpu.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("  cpu (cores): {}", list.join(", "));
        }
    }
}
