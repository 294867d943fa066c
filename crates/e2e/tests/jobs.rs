//! End-to-end tests of the job system: the real server (SQLite, and PostgreSQL where storage
//! matters), real agent processes on this machine running real processes. Crashes are real too:
//! `kill -9` of an agent mid-run and of the server during a fan-out.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use capstan_testkit::{ServerOptions, wait_until};
use common::{Fx, connect, start, unique};
use serde_json::{Value, json};

mod common;

const PATIENCE: Duration = Duration::from_secs(60);

fn postgres_url() -> String {
    capstan_testkit::postgres()
        .expect("throwaway PostgreSQL")
        .create_database()
        .expect("database")
}

impl Fx {
    /// A static group named `name` with `members`.
    async fn group(&self, name: &str, members: &[String]) {
        let g = self.post("/api/v1/groups", json!({"name": name})).await;
        let path = format!("/api/v1/groups/{}/members", g["id"].as_str().unwrap());
        self.post(&path, json!({"device_ids": members})).await;
    }

    async fn job(&self, body: Value) -> String {
        let v = self.post("/api/v1/jobs", body).await;
        v["id"].as_str().unwrap().to_string()
    }

    async fn run(&self, job: &str, device: &str) -> Value {
        self.get(&format!("/api/v1/jobs/{job}/runs/{device}")).await
    }

    /// Wait until the run is in one of `states`; returns the run detail.
    async fn run_in(&self, job: &str, device: &str, states: &[&str], timeout: Duration) -> Value {
        let what = format!("run of job {job} on {device} to reach {states:?}");
        wait_until(&what, timeout, || async {
            let r = self.run(job, device).await;
            let s = r["state"].as_str().unwrap_or("").to_string();
            anyhow::Ok(states.contains(&s.as_str()).then_some(r))
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}\nlast: {}",
                serde_json::to_string_pretty(&futures_block(self.run(job, device))).unwrap()
            )
        })
    }

    async fn counts(&self, job: &str) -> Value {
        self.get(&format!("/api/v1/jobs/{job}")).await["counts"].clone()
    }
}

/// Poll a future to completion from a sync context inside the runtime (for panic messages).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn script(body: &str) -> Value {
    json!({"type": "script", "interpreter": "sh", "body": body})
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                out.push(format!("{pid}: {cmd}"));
            }
        }
    }
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn fan_out_to_five_agents(opts: ServerOptions) {
    let fx = start(opts).await;
    let mut agents = Vec::new();
    for _ in 0..5 {
        agents.push(fx.agent().await);
    }
    let ids: Vec<String> = agents.iter().map(|a| a.device_id().unwrap()).collect();
    fx.group("fleet", &ids).await;
    // Let every agent reach its long-poll, then time the fan-out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    let job = fx
        .job(json!({"spec": {"action": script("echo \"run $CAPSTAN_RUN_ID\"; echo to-stderr >&2; id -un")},
                    "targets": {"groups": ["fleet"]}}))
        .await;
    for id in &ids {
        let r = fx
            .run_in(&job, id, &["succeeded", "failed"], PATIENCE)
            .await;
        assert_eq!(r["state"], "succeeded", "{r}");
        let a = &r["attempts"][0];
        let run_id = r["id"].as_str().unwrap();
        assert_eq!(
            a["stdout"].as_str().unwrap(),
            format!("run {run_id}\nroot\n"),
            "each device ran its own run, as root: {r}"
        );
        assert_eq!(a["stderr"], "to-stderr\n");
        assert_eq!(a["exit_code"], 0);
    }
    let all = t0.elapsed();
    eprintln!("fan-out to 5 real agents: all results in {all:?}");
    assert!(all < Duration::from_secs(20), "{all:?}");
    let c = fx.counts(&job).await;
    assert_eq!(
        (c["total"].as_i64(), c["succeeded"].as_i64()),
        (Some(5), Some(5))
    );

    // A non-zero exit is a failed run with its code; argv runs without a shell.
    let job = fx
        .job(
            json!({"spec": {"action": {"type": "command", "argv": ["sh", "-c", "exit 7"]}},
                    "targets": {"devices": [ids[0]]}}),
        )
        .await;
    let r = fx.run_in(&job, &ids[0], &["failed"], PATIENCE).await;
    assert_eq!(r["exit_code"], 7);
    let job = fx
        .job(
            json!({"spec": {"action": {"type": "command", "argv": ["echo", "$HOME; rm -rf /"]}},
                    "targets": {"devices": [ids[1]]}}),
        )
        .await;
    let r = fx.run_in(&job, &ids[1], &["succeeded"], PATIENCE).await;
    assert_eq!(
        r["attempts"][0]["stdout"], "$HOME; rm -rf /\n",
        "arguments are data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_fans_out_to_five_real_agents_on_sqlite() {
    fan_out_to_five_agents(ServerOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_fans_out_to_five_real_agents_on_postgres() {
    fan_out_to_five_agents(ServerOptions {
        database_url: Some(postgres_url()),
        ..Default::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_kill_grandchildren_and_output_floods_stay_capped() {
    let fx = start(ServerOptions::default()).await;
    let agent = fx.agent().await;
    let id = agent.device_id().unwrap();
    let marker = unique("timeout");
    let body = format!("sh -c 'sleep 300; echo {marker}' &\nsleep 301 &\necho started\nwait");
    let job = fx
        .job(json!({"spec": {"action": script(&body), "timeout_secs": 2}, "targets": {"devices": [id]}}))
        .await;
    let r = fx
        .run_in(&job, &id, &["timed_out", "failed", "succeeded"], PATIENCE)
        .await;
    assert_eq!(r["state"], "timed_out", "{r}");
    assert_eq!(r["attempts"][0]["stdout"], "started\n");
    wait_until(
        "the job's grandchildren to be gone",
        Duration::from_secs(10),
        || async { anyhow::Ok(processes_with(&marker).is_empty().then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", processes_with(&marker)));

    // 50 MiB on stdout: kept up to the cap, with a visible marker, agent memory bounded.
    let pid = agent.pid().unwrap();
    let before = rss_kib(pid);
    let job = fx
        .job(json!({"spec": {"action": script("head -c 52428800 /dev/zero | tr '\\0' x; echo done >&2")},
                    "targets": {"devices": [id]}}))
        .await;
    let r = fx
        .run_in(&job, &id, &["succeeded", "failed"], PATIENCE)
        .await;
    assert_eq!(r["state"], "succeeded", "{}", r["reason"]);
    let a = &r["attempts"][0];
    let out = a["stdout"].as_str().unwrap();
    let cap = 1024 * 1024;
    assert!(out.len() > cap && out.len() < cap + 200, "{}", out.len());
    assert!(out[..cap].bytes().all(|b| b == b'x'));
    assert!(out[cap..].contains("truncated"), "{}", &out[cap..]);
    assert_eq!(a["stdout_truncated"], true);
    assert_eq!(a["stdout_bytes"], 52_428_800);
    assert_eq!(a["stderr"], "done\n");
    let after = rss_kib(pid);
    eprintln!("agent RSS before {before} KiB, after the 50 MiB flood {after} KiB");
    assert!(
        after < before + 20 * 1024,
        "agent memory grew from {before} to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_the_circuit_breaker_and_cancel_work_on_a_real_agent() {
    let fx = start(ServerOptions {
        extra_args: vec!["--job-breaker-threshold".into(), "2".into()],
        ..Default::default()
    })
    .await;
    let agent = fx.agent().await;
    let id = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("second-time");
    // Fails the first time, succeeds the second.
    let body = format!(
        "if [ -e '{0}' ]; then echo ok; else touch '{0}'; echo first >&2; exit 4; fi",
        flag.display()
    );
    let job = fx
        .job(
            json!({"spec": {"action": script(&body)}, "targets": {"devices": [id]},
                    "retry": {"max_attempts": 3, "backoff_secs": 1}}),
        )
        .await;
    let r = fx.run_in(&job, &id, &["succeeded"], PATIENCE).await;
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{r}");
    assert_eq!(
        (
            attempts[0]["exit_code"].as_i64(),
            attempts[1]["exit_code"].as_i64()
        ),
        (Some(4), Some(0))
    );

    // Always failing: the breaker (threshold 2) opens and holds the retry; a reset resumes it.
    let job = fx
        .job(
            json!({"spec": {"action": script("exit 9")}, "targets": {"devices": [id]},
                    "retry": {"max_attempts": 5, "backoff_secs": 1}}),
        )
        .await;
    let r = fx.run_in(&job, &id, &["failed"], PATIENCE).await;
    assert!(
        r["reason"].as_str().unwrap().contains("circuit breaker"),
        "{r}"
    );
    // The success above reset the count, so this job's attempts 1 and 2 tripped it.
    assert_eq!(r["attempts"].as_array().unwrap().len(), 2, "{r}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fx.run(&job, &id).await["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "held"
    );
    let b = fx.get(&format!("/api/v1/devices/{id}/breaker")).await;
    assert_eq!(b["held_runs"], 1, "{b}");
    fx.post(&format!("/api/v1/devices/{id}/breaker/reset"), json!({}))
        .await;
    wait_until("attempt 3 after the reset", PATIENCE, || async {
        let r = fx.run(&job, &id).await;
        anyhow::Ok((r["attempts"].as_array().map_or(0, Vec::len) >= 3).then_some(()))
    })
    .await
    .unwrap();
    fx.post(&format!("/api/v1/jobs/{job}/cancel"), json!({}))
        .await;

    // Cancel mid-run kills the process.
    let marker = unique("cancel");
    let job = fx
        .job(
            json!({"spec": {"action": script(&format!("echo started; sleep 300; echo {marker}"))},
                    "targets": {"devices": [id]}}),
        )
        .await;
    wait_until("the run to print its first line", PATIENCE, || async {
        let r = fx.run(&job, &id).await;
        anyhow::Ok((r["attempts"][0]["stdout"] == "started\n").then_some(()))
    })
    .await
    .unwrap();
    let sleeping = processes_with("sleep 300");
    assert!(!sleeping.is_empty());
    fx.post(&format!("/api/v1/jobs/{job}/cancel"), json!({}))
        .await;
    let r = fx.run_in(&job, &id, &["cancelled"], PATIENCE).await;
    wait_until(
        "the agent to report the cancelled attempt",
        PATIENCE,
        || async {
            let r = fx.run(&job, &id).await;
            anyhow::Ok((r["attempts"][0]["outcome"] == "cancelled").then_some(r))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {r}"));
    assert!(
        !fx.run(&job, &id).await["attempts"][0]["stdout"]
            .as_str()
            .unwrap()
            .contains(&marker)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_run_reports_it_interrupted_and_never_runs_it_twice() {
    let fx = start(ServerOptions::default()).await;
    let mut agent = fx.agent().await;
    let id = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let marker = unique("kill9");
    let body = format!("echo x >> '{}'; sleep 300 # {marker}", starts.display());
    let job = fx
        .job(json!({"spec": {"action": script(&body)}, "targets": {"devices": [id]}}))
        .await;
    fx.run_in(&job, &id, &["running"], PATIENCE).await;
    wait_until("the script to start", PATIENCE, || async {
        anyhow::Ok(starts.exists().then_some(()))
    })
    .await
    .unwrap();
    agent.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fx.run(&job, &id).await["state"], "running");
    agent.start().await.unwrap();
    let r = fx
        .run_in(&job, &id, &["failed", "succeeded"], PATIENCE)
        .await;
    assert_eq!(r["state"], "failed", "{r}");
    assert!(
        r["reason"].as_str().unwrap().starts_with("interrupted"),
        "{r}"
    );
    assert_eq!(r["attempts"][0]["outcome"], "interrupted");
    // Not run twice, and the orphaned process was cleaned up by the restarted agent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(std::fs::read_to_string(&starts).unwrap(), "x\n");
    wait_until("the orphan to be gone", Duration::from_secs(10), || async {
        anyhow::Ok(processes_with(&marker).is_empty().then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_fan_out_loses_no_run_on_postgres() {
    killing_the_server_mid_fan_out_loses_no_run(Some(postgres_url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_fan_out_loses_no_run_on_sqlite() {
    killing_the_server_mid_fan_out_loses_no_run(None).await;
}

async fn killing_the_server_mid_fan_out_loses_no_run(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let opts = ServerOptions {
        data_dir: Some(data.clone()),
        database_url,
        ..Default::default()
    };
    let fx = start(opts).await;
    let mut agents = Vec::new();
    for _ in 0..5 {
        agents.push(fx.agent().await);
    }
    let ids: Vec<String> = agents.iter().map(|a| a.device_id().unwrap()).collect();
    let log = dir.path().join("ran");
    let job = fx
        .job(json!({"spec": {"action": script(&format!("echo \"$CAPSTAN_RUN_ID\" >> '{}'; sleep 3; echo done", log.display()))},
                    "targets": {"devices": ids}}))
        .await;
    // As soon as some runs are running, the server dies hard, and comes back 2 s later.
    wait_until("a run to be running", PATIENCE, || async {
        let c = fx.counts(&job).await;
        anyhow::Ok((c["running"].as_i64().unwrap_or(0) > 0).then_some(()))
    })
    .await
    .unwrap();
    let Fx { mut server, .. } = fx;
    server.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart().await.expect("server restarts");
    let fx = connect(server).await;
    for id in &ids {
        let r = fx
            .run_in(&job, id, &["succeeded", "failed"], Duration::from_secs(90))
            .await;
        assert_eq!(r["state"], "succeeded", "{r}");
        let terminal: Vec<&Value> = r["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| {
                ["succeeded", "failed", "timed_out", "cancelled", "expired"]
                    .contains(&h["state"].as_str().unwrap())
            })
            .collect();
        assert_eq!(terminal.len(), 1, "exactly one terminal state: {r}");
        assert_eq!(r["attempts"].as_array().unwrap().len(), 1);
    }
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        ran.lines().count(),
        5,
        "each run started exactly once:\n{ran}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_agent_gets_its_run_on_reconnect_unless_it_expired() {
    let fx = start(ServerOptions::default()).await;
    let mut agent = fx.agent().await;
    let id = agent.device_id().unwrap();
    agent.stop().await;
    let keep = fx
        .job(json!({"spec": {"action": script("echo late")}, "targets": {"devices": [id]}, "expires_in_secs": 600}))
        .await;
    let lapse = fx
        .job(json!({"spec": {"action": script("echo never")}, "targets": {"devices": [id]}, "expires_in_secs": 1}))
        .await;
    fx.run_in(&lapse, &id, &["expired"], Duration::from_secs(15))
        .await;
    assert_eq!(fx.run(&keep, &id).await["state"], "queued");
    agent.start().await.unwrap();
    let r = fx.run_in(&keep, &id, &["succeeded"], PATIENCE).await;
    assert_eq!(r["attempts"][0]["stdout"], "late\n");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = fx.run(&lapse, &id).await;
    assert_eq!(r["state"], "expired");
    assert!(
        r["attempts"].as_array().unwrap().is_empty(),
        "never delivered: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_reboot_completes_the_run_after_the_new_boot() {
    let fx = start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot_id");
    std::fs::write(&boot, "boot-1\n").unwrap();
    let reboot_cmd = json!([
        "sh",
        "-c",
        "echo boot-2 > \"$CAPSTAN_BOOT_ID_PATH\"; kill -9 \"$CAPSTAN_AGENT_PID\""
    ])
    .to_string();
    let boot_s = boot.display().to_string();
    let mut agent = fx
        .agent_with(&[
            ("CAPSTAN_AGENT_BOOT_ID_PATH", boot_s.as_str()),
            ("CAPSTAN_AGENT_REBOOT_COMMAND", reboot_cmd.as_str()),
        ])
        .await;
    let id = agent.device_id().unwrap();
    let job = fx
        .job(json!({"spec": {"action": {"type": "reboot"}}, "targets": {"devices": [id]}}))
        .await;
    fx.run_in(&job, &id, &["rebooting"], PATIENCE).await;
    let t0 = Instant::now();
    while agent.exit_status().unwrap().is_none() {
        assert!(
            t0.elapsed() < PATIENCE,
            "the agent did not go down for the reboot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&boot).unwrap().trim(), "boot-2");
    agent.start().await.unwrap();
    let r = fx
        .run_in(&job, &id, &["succeeded", "failed"], PATIENCE)
        .await;
    assert_eq!(r["state"], "succeeded", "{r}");
    let states: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["queued", "delivered", "running", "rebooting", "succeeded"]
    );
    let d = fx.get(&format!("/api/v1/devices/{id}")).await;
    eprintln!("device after reboot: boot id {:?}", d["boot_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_agent_starts_a_new_run_within_a_second() {
    let fx = start(ServerOptions::default()).await;
    let agent = fx.agent().await;
    let id = agent.device_id().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut delays = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let job = fx
            .job(json!({"spec": {"action": {"type": "command", "argv": ["true"]}}, "targets": {"devices": [id]}}))
            .await;
        fx.run_in(&job, &id, &["running", "succeeded"], PATIENCE)
            .await;
        delays.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("job creation → running/succeeded: {delays:?}");
    delays.sort();
    assert!(delays[1] < Duration::from_secs(2), "median {:?}", delays[1]);
}

/// Run the `capstan` CLI against the fixture's server as the admin session.
fn capstan(fx: &Fx, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(capstan_testkit::bin_path("capstan"));
    cmd.args(args)
        .env("CAPSTAN_CONFIG", "/nonexistent/capstan-e2e.toml")
        .env("CAPSTAN_SERVER", fx.server.url())
        .env("CAPSTAN_TOKEN", &fx.token);
    if let Some(fp) = fx.server.fingerprint() {
        cmd.env("CAPSTAN_FINGERPRINT", fp);
    }
    let out = cmd.output().expect("capstan runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capstan_run_prints_every_device_result_as_it_arrives() {
    let fx = start(ServerOptions::default()).await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(fx.agent().await);
    }
    let ids: Vec<String> = agents.iter().map(|a| a.device_id().unwrap()).collect();
    fx.group("cli-fleet", &ids).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fx = std::sync::Arc::new(fx);
    let f2 = fx.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        capstan(
            &f2,
            &[
                "run",
                "--group",
                "cli-fleet",
                "--",
                "sh",
                "-c",
                "echo hello from $0",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.matches(": succeeded (exit 0").count(), 3, "{out}");
    assert_eq!(out.matches("hello from sh").count(), 3, "{out}");
    assert!(out.contains("Done: 3 succeeded, 0 failed"), "{out}");

    // A failing run: exit status 6, and the NDJSON result says why.
    let f2 = fx.clone();
    let id = ids[0].clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        capstan(
            &f2,
            &[
                "run",
                "--device",
                &id,
                "--output",
                "json",
                "--",
                "sh",
                "-c",
                "echo oops >&2; exit 3",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 6, "stdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["type"], "result");
    assert_eq!(
        (lines[0]["state"].as_str(), lines[0]["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(lines[0]["stderr"], "oops\n");
    assert_eq!(lines[1]["type"], "summary");
}
