//! API tests of the job system against the real router: the agent side is played by hand
//! (check-in, claim, start, output, finish), so every state transition, retry, breaker, cancel
//! and expiry can be driven exactly. Real agents run the same flows in the end-to-end suite.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use capstan_proto::jobs::{ClaimResponse, RunPayload};
use common::{T, assert_error, setup, setup_with};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use http_body_util::BodyExt;
use serde_json::{Value, json};

const POST: Method = Method::POST;
const GET: Method = Method::GET;

fn now() -> i64 {
    capstan_server::state::now_ms()
}

impl T {
    async fn create_job(&self, admin: &str, body: Value) -> Value {
        self.ok(StatusCode::CREATED, POST, "/api/v1/jobs", admin, Some(body))
            .await
    }

    async fn checkin_pending(&self, device_token: &str) -> bool {
        let (s, v) = self
            .call(
                POST,
                "/agent/v1/checkin",
                Some(device_token),
                Some(json!({"agent_version": "0.1.0"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["runs_pending"].as_bool().unwrap()
    }

    /// Claim, verifying every payload's signature with the server key.
    async fn claim(&self, device_token: &str) -> Vec<RunPayload> {
        let (s, v) = self
            .call(
                POST,
                "/agent/v1/runs/claim",
                Some(device_token),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let resp: ClaimResponse = serde_json::from_value(v).unwrap();
        let key =
            VerifyingKey::from_bytes(self.state.signing_key.verifying_key().as_bytes()).unwrap();
        resp.runs
            .iter()
            .map(|r| {
                let sig = Signature::from_slice(&hex::decode(&r.signature).unwrap()).unwrap();
                key.verify(r.payload.as_bytes(), &sig)
                    .expect("payload signature verifies");
                serde_json::from_str(&r.payload).unwrap()
            })
            .collect()
    }

    async fn agent(&self, token: &str, run: &str, verb: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            POST,
            &format!("/agent/v1/runs/{run}/{verb}"),
            Some(token),
            Some(body),
        )
        .await
    }

    async fn start(&self, token: &str, run: &str, attempt: u32) -> bool {
        let (s, v) = self
            .agent(
                token,
                run,
                "start",
                json!({"attempt": attempt, "started_at_ms": now()}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["cancel"].as_bool().unwrap()
    }

    async fn finish(&self, token: &str, run: &str, attempt: u32, outcome: &str, exit: i32) {
        let (s, v) = self
            .agent(
                token,
                run,
                "finish",
                json!({"attempt": attempt, "outcome": outcome, "exit_code": exit,
                       "started_at_ms": now() - 10, "finished_at_ms": now(), "stdout_bytes": 3}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }

    async fn run(&self, admin: &str, job: &str, run: &str) -> Value {
        self.ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/jobs/{job}/runs/{run}"),
            admin,
            None,
        )
        .await
    }

    async fn job(&self, admin: &str, job: &str) -> Value {
        self.ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/jobs/{job}"),
            admin,
            None,
        )
        .await
    }

    /// A static group (`body` as the API takes it) with `members`; its JSON.
    async fn static_group(&self, admin: &str, body: Value, members: &[&String]) -> Value {
        let g = self
            .ok(
                StatusCode::CREATED,
                POST,
                "/api/v1/groups",
                admin,
                Some(body),
            )
            .await;
        self.add_members(admin, &g, members).await;
        g
    }

    async fn add_members(&self, admin: &str, group: &Value, members: &[&String]) {
        if members.is_empty() {
            return;
        }
        let path = format!("/api/v1/groups/{}/members", group["id"].as_str().unwrap());
        self.ok(
            StatusCode::OK,
            POST,
            &path,
            admin,
            Some(json!({"device_ids": members})),
        )
        .await;
    }

    async fn tick_at(&self, last: i64, at: i64) {
        capstan_server::jobs::tick(&self.state, last, at)
            .await
            .unwrap();
    }
}

fn echo(devices: &[&String]) -> Value {
    json!({"spec": {"action": {"type": "command", "argv": ["echo", "hi"]}},
           "targets": {"devices": devices}})
}

fn states(run: &Value) -> Vec<String> {
    run["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}:{}", h["attempt"], h["state"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_job_fans_out_is_delivered_signed_and_reports_back() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let (b, tb) = t.device(&admin, "b").await;
    let (c, tc) = t.device(&admin, "c").await;
    // A static group with b and c; the job targets a by id and the group by name.
    t.static_group(&admin, json!({"name": "web"}), &[&b, &c])
        .await;
    assert!(!t.checkin_pending(&ta).await);
    let job = t
        .create_job(
            &admin,
            json!({"spec": {"action": {"type": "command", "argv": ["echo", "hi"]}},
                                   "targets": {"devices": [a, b], "groups": ["web"]}}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["kind"], "command");
    assert_eq!(job["name"], "echo hi");
    assert_eq!(job["counts"]["total"], 3, "a, b and c once each: {job}");
    assert_eq!(job["counts"]["queued"], 3);
    assert!(t.checkin_pending(&ta).await);

    // Device a claims its run; the payload is for a, signed, and carries the idempotency key.
    let runs = t.claim(&ta).await;
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(
        (r.device_id.as_str(), r.job_id.as_str(), r.attempt),
        (a.as_str(), id, 1)
    );
    assert_eq!(r.idempotency_key, format!("{}:1", r.run_id));
    // Not started yet: claiming again hands out the same attempt (at-least-once delivery).
    let again = t.claim(&ta).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].idempotency_key, r.idempotency_key);

    assert!(!t.start(&ta, &r.run_id, 1).await);
    let (s, v) = t
        .agent(
            &ta,
            &r.run_id,
            "output",
            json!({"attempt": 1, "chunks": [
            {"stream": "stdout", "offset": 0, "data": "hi"},
            {"stream": "stdout", "offset": 2, "data": "\n"},
            {"stream": "stderr", "offset": 0, "data": "warn\n"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["cancel"], false);
    // Re-sending a chunk is harmless.
    t.agent(
        &ta,
        &r.run_id,
        "output",
        json!({"attempt": 1, "chunks": [
        {"stream": "stdout", "offset": 0, "data": "hi"}]}),
    )
    .await;
    t.finish(&ta, &r.run_id, 1, "succeeded", 0).await;
    // A repeated result changes nothing.
    t.finish(&ta, &r.run_id, 1, "failed", 3).await;
    assert!(t.claim(&ta).await.is_empty());

    let run = t.run(&admin, id, &r.run_id).await;
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["hostname"], "host-a");
    assert_eq!(run["attempts"][0]["stdout"], "hi\n");
    assert_eq!(run["attempts"][0]["stderr"], "warn\n");
    assert_eq!(run["attempts"][0]["outcome"], "succeeded");
    assert_eq!(
        states(&run),
        ["1:queued", "1:delivered", "1:running", "1:succeeded"]
    );
    // The run is also addressable by device id within the job.
    assert_eq!(t.run(&admin, id, &a).await["id"], r.run_id.as_str());

    // b fails with exit 3 (no retries by default).
    let rb = t.claim(&tb).await.remove(0);
    t.start(&tb, &rb.run_id, 1).await;
    t.finish(&tb, &rb.run_id, 1, "failed", 3).await;
    let run = t.run(&admin, id, &rb.run_id).await;
    assert_eq!(
        (run["state"].as_str(), run["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(run["reason"], "exit code 3");

    let job = t.job(&admin, id).await;
    assert_eq!(
        (
            job["counts"]["succeeded"].as_i64(),
            job["counts"]["failed"].as_i64(),
            job["counts"]["queued"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let list = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/jobs/{id}/runs?state=queued"),
            &admin,
            None,
        )
        .await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["device_id"], c.as_str());
    let jobs = t
        .ok(StatusCode::OK, GET, "/api/v1/jobs", &admin, None)
        .await;
    assert_eq!(jobs["total"], 1);
    let _ = tc;
}

#[tokio::test]
async fn agents_only_see_and_report_their_own_runs() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let (_b, tb) = t.device(&admin, "b").await;
    let job = t.create_job(&admin, echo(&[&a])).await;
    assert!(!t.checkin_pending(&tb).await);
    assert!(t.claim(&tb).await.is_empty());
    let r = t.claim(&ta).await.remove(0);
    // Device b posting to a's run: not found, and nothing changes.
    for verb in ["start", "output", "rebooting", "finish"] {
        let body = match verb {
            "start" => json!({"attempt": 1, "started_at_ms": now()}),
            "output" => json!({"attempt": 1, "chunks": []}),
            "rebooting" => json!({"attempt": 1, "boot_id": "x"}),
            _ => json!({"attempt": 1, "outcome": "failed", "finished_at_ms": now()}),
        };
        let resp = t.agent(&tb, &r.run_id, verb, body).await;
        assert_error(&resp, StatusCode::NOT_FOUND, "not_found");
    }
    // Without a device credential: 401.
    let resp = t
        .call(
            POST,
            &format!("/agent/v1/runs/{}/start", r.run_id),
            None,
            Some(json!({"attempt": 1, "started_at_ms": now()})),
        )
        .await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED);
    // An operator token is not a device credential either.
    let resp = t
        .agent(
            &admin,
            &r.run_id,
            "start",
            json!({"attempt": 1, "started_at_ms": now()}),
        )
        .await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED);
    let run = t.run(&admin, job["id"].as_str().unwrap(), &r.run_id).await;
    assert_eq!(run["state"], "delivered");
}

#[tokio::test]
async fn failed_attempts_are_retried_and_every_attempt_stays_visible() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let mut body = echo(&[&a]);
    body["retry"] = json!({"max_attempts": 3, "backoff_secs": 0, "max_backoff_secs": 0});
    let job = t.create_job(&admin, body).await;
    let id = job["id"].as_str().unwrap();
    let r = t.claim(&ta).await.remove(0);
    t.start(&ta, &r.run_id, 1).await;
    t.finish(&ta, &r.run_id, 1, "failed", 1).await;
    let run = t.run(&admin, id, &r.run_id).await;
    assert_eq!(
        (run["state"].as_str(), run["attempt"].as_i64()),
        (Some("queued"), Some(2))
    );
    assert!(
        run["reason"].as_str().unwrap().contains("retry 2 of 3"),
        "{run}"
    );
    // The retry is delivered as attempt 2 with its own key.
    let r2 = t.claim(&ta).await.remove(0);
    assert_eq!(
        (r2.attempt, r2.idempotency_key.clone()),
        (2, format!("{}:2", r.run_id))
    );
    // A report for attempt 1 now is stale: the agent is told to stop.
    assert!(t.start(&ta, &r.run_id, 1).await);
    assert!(!t.start(&ta, &r.run_id, 2).await);
    // An attempt that does not exist is refused.
    let resp = t
        .agent(
            &ta,
            &r.run_id,
            "finish",
            json!({"attempt": 7, "outcome": "succeeded", "finished_at_ms": now()}),
        )
        .await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "validation_failed");
    t.finish(&ta, &r.run_id, 2, "succeeded", 0).await;
    let run = t.run(&admin, id, &r.run_id).await;
    assert_eq!(run["state"], "succeeded");
    let attempts = run["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0]["outcome"].as_str(),
            attempts[0]["exit_code"].as_i64()
        ),
        (Some("failed"), Some(1))
    );
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_eq!(
        states(&run),
        [
            "1:queued",
            "1:delivered",
            "1:running",
            "1:failed",
            "2:queued",
            "2:delivered",
            "2:running",
            "2:succeeded"
        ]
    );

    // With a backoff the retry waits: nothing to claim until it is due, and the ticker wakes
    // the device then.
    let mut body = echo(&[&a]);
    body["retry"] = json!({"max_attempts": 2, "backoff_secs": 60, "retry_on": ["timed_out"]});
    let job = t.create_job(&admin, body).await;
    let r = t.claim(&ta).await.remove(0);
    t.finish(&ta, &r.run_id, 1, "failed", 1).await;
    let run = t.run(&admin, job["id"].as_str().unwrap(), &r.run_id).await;
    assert_eq!(
        run["state"], "failed",
        "failures are not in retry_on: {run}"
    );
    let job = t
        .create_job(&admin, {
            let mut b = echo(&[&a]);
            b["retry"] = json!({"max_attempts": 2, "backoff_secs": 60});
            b
        })
        .await;
    let r = t.claim(&ta).await.remove(0);
    t.finish(&ta, &r.run_id, 1, "timed_out", 0).await;
    let run = t.run(&admin, job["id"].as_str().unwrap(), &r.run_id).await;
    assert_eq!(run["state"], "queued");
    let due = run["next_attempt_at_ms"].as_i64().unwrap();
    assert!(due >= now() + 55_000, "{run}");
    assert!(!t.checkin_pending(&ta).await);
    assert!(t.claim(&ta).await.is_empty());
    let gen_before = t.state.wake.generation(&a);
    t.tick_at(due - 1, due).await;
    assert!(
        t.state.wake.generation(&a) > gen_before,
        "the ticker woke the device"
    );
}

#[tokio::test]
async fn the_circuit_breaker_holds_retries_until_reset() {
    let t = setup_with(|c| c.job_breaker_threshold = 2).await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let mut body = echo(&[&a]);
    body["retry"] = json!({"max_attempts": 5, "backoff_secs": 0, "max_backoff_secs": 0});
    let job = t.create_job(&admin, body).await;
    let id = job["id"].as_str().unwrap();
    let r = t.claim(&ta).await.remove(0);
    t.finish(&ta, &r.run_id, 1, "failed", 1).await;
    t.claim(&ta).await;
    t.finish(&ta, &r.run_id, 2, "failed", 1).await;
    // Two consecutive failures: the breaker opened and holds the retry.
    let run = t.run(&admin, id, &r.run_id).await;
    assert_eq!(run["state"], "failed");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("circuit breaker open"),
        "{run}"
    );
    assert!(t.claim(&ta).await.is_empty());
    let open = t
        .ok(StatusCode::OK, GET, "/api/v1/breakers", &admin, None)
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["device_id"], a.as_str());
    assert_eq!(open[0]["consecutive_failures"], 2);
    assert_eq!(open[0]["held_runs"], 1);
    assert_eq!(open[0]["threshold"], 2);
    // A viewer cannot reset it; an operator can.
    let viewer = t.user(&admin, "v", "viewer").await;
    let resp = t
        .call(
            POST,
            &format!("/api/v1/devices/{a}/breaker/reset"),
            Some(&viewer),
            None,
        )
        .await;
    assert_error(&resp, StatusCode::FORBIDDEN, "forbidden");
    let v = t
        .ok(
            StatusCode::OK,
            POST,
            &format!("/api/v1/devices/{a}/breaker/reset"),
            &admin,
            None,
        )
        .await;
    assert_eq!(v["changed"], 1);
    let b = t
        .ok(
            StatusCode::OK,
            GET,
            &format!("/api/v1/devices/{a}/breaker"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (
            b["consecutive_failures"].as_i64(),
            b["opened_at_ms"].is_null()
        ),
        (Some(0), true)
    );
    let r3 = t.claim(&ta).await.remove(0);
    assert_eq!(r3.attempt, 3);
    t.finish(&ta, &r3.run_id, 3, "succeeded", 0).await;
    assert_eq!(t.run(&admin, id, &r.run_id).await["state"], "succeeded");
    let open = t
        .ok(StatusCode::OK, GET, "/api/v1/breakers", &admin, None)
        .await;
    assert!(open.as_array().unwrap().is_empty());
    // The audit log records the reset.
    let audit = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/audit-log?action=device.breaker.reset",
            &admin,
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}

#[tokio::test]
async fn cancel_stops_runs_and_retry_failed_requeues_them() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let (b, _tb) = t.device(&admin, "b").await;
    let job = t.create_job(&admin, echo(&[&a, &b])).await;
    let id = job["id"].as_str().unwrap();
    let r = t.claim(&ta).await.remove(0);
    t.start(&ta, &r.run_id, 1).await;
    let v = t
        .ok(
            StatusCode::OK,
            POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            &admin,
            None,
        )
        .await;
    assert_eq!(v["changed"], 2, "the running and the queued run");
    // The running agent learns it at its next report.
    let (_, v) = t
        .agent(
            &ta,
            &r.run_id,
            "output",
            json!({"attempt": 1, "chunks": [
        {"stream": "stdout", "offset": 0, "data": "partial"}]}),
        )
        .await;
    assert_eq!(v["cancel"], true);
    t.finish(&ta, &r.run_id, 1, "cancelled", -1).await;
    let run = t.run(&admin, id, &r.run_id).await;
    assert_eq!(run["state"], "cancelled");
    assert_eq!(run["reason"], "cancelled by admin");
    assert_eq!(
        run["attempts"][0]["stdout"], "partial",
        "late output is kept"
    );
    assert_eq!(run["attempts"][0]["outcome"], "cancelled");
    let job = t.job(&admin, id).await;
    assert!(job["cancelled_at_ms"].is_i64());
    assert_eq!(job["counts"]["cancelled"], 2);
    // A cancelled job is not retried.
    let resp = t
        .call(
            POST,
            &format!("/api/v1/jobs/{id}/retry"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&resp, StatusCode::CONFLICT, "conflict");

    // Cancel a single run; retry the failed ones of another job.
    let job = t.create_job(&admin, echo(&[&a, &b])).await;
    let id = job["id"].as_str().unwrap();
    let v = t
        .ok(
            StatusCode::OK,
            POST,
            &format!("/api/v1/jobs/{id}/runs/{b}/cancel"),
            &admin,
            None,
        )
        .await;
    assert_eq!(v["changed"], 1);
    let r = t.claim(&ta).await.remove(0);
    t.finish(&ta, &r.run_id, 1, "failed", 2).await;
    let v = t
        .ok(
            StatusCode::OK,
            POST,
            &format!("/api/v1/jobs/{id}/retry"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        v["changed"], 1,
        "only the failed run, not the cancelled one"
    );
    let r2 = t.claim(&ta).await.remove(0);
    assert_eq!(r2.attempt, 2);
    let run = t.run(&admin, id, &a).await;
    assert_eq!(run["reason"], "retried by an operator");
    let resp = t
        .call(POST, "/api/v1/jobs/nope/cancel", Some(&admin), None)
        .await;
    assert_error(&resp, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn unclaimed_runs_expire_and_silent_agents_are_given_up() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let (b, tb) = t.device(&admin, "b").await;
    let mut body = echo(&[&a, &b]);
    body["expires_in_secs"] = json!(5);
    body["spec"]["timeout_secs"] = json!(1);
    let job = t.create_job(&admin, body).await;
    let id = job["id"].as_str().unwrap();
    // b starts and goes silent; a never checks in.
    let rb = t.claim(&tb).await.remove(0);
    t.start(&tb, &rb.run_id, 1).await;
    let later = now() + 6_000;
    t.tick_at(0, later).await;
    let ra = t.run(&admin, id, &a).await;
    assert_eq!(ra["state"], "expired");
    assert_eq!(ra["reason"], "expired before the device picked it up");
    assert!(
        t.claim(&ta).await.is_empty(),
        "an expired run is not delivered"
    );
    assert_eq!(t.run(&admin, id, &b).await["state"], "running");
    // Timeout (1 s) plus the grace period later, the silent run is failed — not left running.
    t.tick_at(0, later + capstan_server::jobs::LOST_GRACE_MS + 2_000)
        .await;
    let rb2 = t.run(&admin, id, &b).await;
    assert_eq!(rb2["state"], "failed");
    assert!(
        rb2["reason"].as_str().unwrap().contains("no result"),
        "{rb2}"
    );
    // A late result is still kept on the attempt, without changing the run.
    t.finish(&tb, &rb.run_id, 1, "succeeded", 0).await;
    let rb3 = t.run(&admin, id, &b).await;
    assert_eq!(rb3["state"], "failed");
    assert_eq!(rb3["attempts"][0]["outcome"], "succeeded");
}

#[tokio::test]
async fn bad_job_requests_are_refused_and_create_nothing() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    t.static_group(&admin, json!({"name": "empty"}), &[]).await;
    let cmd = json!({"type": "command", "argv": ["true"]});
    let cases: Vec<(&str, Value, StatusCode, &str, &str)> = vec![
        (
            "no targets",
            json!({"spec": {"action": cmd}, "targets": {}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/targets",
        ),
        (
            "empty group",
            json!({"spec": {"action": cmd}, "targets": {"groups": ["empty"]}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "",
        ),
        (
            "unknown device",
            json!({"spec": {"action": cmd}, "targets": {"devices": [a, "nope"]}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "",
        ),
        (
            "unknown group",
            json!({"spec": {"action": cmd}, "targets": {"groups": ["nope"]}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/targets/groups/0",
        ),
        (
            "unknown interpreter",
            json!({"spec": {"action": {"type": "script", "interpreter": "perl", "body": "1"}}, "targets": {"devices": [a]}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "",
        ),
        (
            "unknown action",
            json!({"spec": {"action": {"type": "shell", "cmd": "ls"}}, "targets": {"devices": [a]}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "",
        ),
        (
            "huge script",
            json!({"spec": {"action": {"type": "script", "interpreter": "sh", "body": "x".repeat(300_000)}}, "targets": {"devices": [a]}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/spec/action/body",
        ),
        (
            "empty argv",
            json!({"spec": {"action": {"type": "command", "argv": []}}, "targets": {"devices": [a]}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/spec/action/argv",
        ),
        (
            "zero timeout",
            json!({"spec": {"action": cmd, "timeout_secs": 0}, "targets": {"devices": [a]}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/spec/timeout_secs",
        ),
        (
            "bad run_as",
            json!({"spec": {"action": cmd, "run_as": "-x"}, "targets": {"devices": [a]}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/spec/run_as",
        ),
        (
            "too many attempts",
            json!({"spec": {"action": cmd}, "targets": {"devices": [a]}, "retry": {"max_attempts": 99}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/retry/max_attempts",
        ),
        (
            "follow without groups",
            json!({"spec": {"action": cmd}, "targets": {"devices": [a], "follow_group_joins": true}}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/targets/follow_group_joins",
        ),
        (
            "zero expiry",
            json!({"spec": {"action": cmd}, "targets": {"devices": [a]}, "expires_in_secs": 0}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "/expires_in_secs",
        ),
        (
            "unknown field",
            json!({"spec": {"action": cmd}, "targets": {"devices": [a]}, "priority": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "",
        ),
    ];
    for (name, body, status, code, path) in cases {
        let resp = t.call(POST, "/api/v1/jobs", Some(&admin), Some(body)).await;
        assert_eq!(resp.0, status, "{name}: {}", resp.1);
        assert_eq!(resp.1["code"], code, "{name}: {}", resp.1);
        if !path.is_empty() {
            let empty = vec![];
            let paths: Vec<&str> = resp.1["details"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter_map(|d| d["path"].as_str())
                .collect();
            assert!(paths.contains(&path), "{name}: want {path} in {}", resp.1);
        }
    }
    let jobs = t
        .ok(StatusCode::OK, GET, "/api/v1/jobs", &admin, None)
        .await;
    assert_eq!(jobs["total"], 0, "nothing was created");
    assert!(!t.checkin_pending(&ta).await);
    // A viewer may read jobs but not run them.
    let viewer = t.user(&admin, "v", "viewer").await;
    let resp = t
        .call(POST, "/api/v1/jobs", Some(&viewer), Some(echo(&[&a])))
        .await;
    assert_error(&resp, StatusCode::FORBIDDEN, "forbidden");
    t.ok(StatusCode::OK, GET, "/api/v1/jobs", &viewer, None)
        .await;

    // Hostile agent reports.
    let job = t.create_job(&admin, echo(&[&a])).await;
    let r = t.claim(&ta).await.remove(0);
    let big = "x".repeat(300 * 1024);
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "oversized chunk",
            "output",
            json!({"attempt": 1, "chunks": [{"stream": "stdout", "offset": 0, "data": big}]}),
        ),
        (
            "beyond the cap",
            "output",
            json!({"attempt": 1, "chunks": [{"stream": "stdout", "offset": 2_000_000, "data": "x"}]}),
        ),
        (
            "attempt zero",
            "start",
            json!({"attempt": 0, "started_at_ms": now()}),
        ),
        (
            "absurd time",
            "start",
            json!({"attempt": 1, "started_at_ms": 5}),
        ),
        (
            "future time",
            "finish",
            json!({"attempt": 1, "outcome": "succeeded", "finished_at_ms": now() + 10 * 86_400_000i64}),
        ),
        (
            "huge error",
            "finish",
            json!({"attempt": 1, "outcome": "failed", "finished_at_ms": now(), "error": "e".repeat(5000)}),
        ),
        (
            "empty boot id",
            "rebooting",
            json!({"attempt": 1, "boot_id": ""}),
        ),
    ];
    for (name, verb, body) in cases {
        let resp = t.agent(&ta, &r.run_id, verb, body).await;
        assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{name}: {}", resp.1);
    }
    let resp = t
        .agent(
            &ta,
            &r.run_id,
            "finish",
            json!({"attempt": 1, "outcome": "exploded", "finished_at_ms": now()}),
        )
        .await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let run = t.run(&admin, job["id"].as_str().unwrap(), &r.run_id).await;
    assert_eq!(
        run["state"], "delivered",
        "no bad report changed the run: {run}"
    );
    assert_eq!(run["attempts"][0]["stdout"], "");
}

#[tokio::test]
async fn library_scripts_are_versioned_and_run_with_typed_arguments() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let s = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/scripts",
            &admin,
            Some(json!({
            "name": "restart-service", "description": "Restart a unit", "interpreter": "sh",
            "body": "systemctl restart \"$1\"",
            "parameters": [
                {"name": "unit", "type": "string", "required": true},
                {"name": "delay", "type": "number", "default": 5}]})),
        )
        .await;
    let sid = s["id"].as_str().unwrap();
    assert_eq!(s["latest_version"], 1);
    let resp = t
        .call(
            POST,
            "/api/v1/scripts",
            Some(&admin),
            Some(json!({
        "name": "restart-service", "interpreter": "sh", "body": "true"})),
        )
        .await;
    assert_error(&resp, StatusCode::CONFLICT, "conflict");
    let v2 = t
        .ok(
            StatusCode::OK,
            Method::PATCH,
            &format!("/api/v1/scripts/{sid}"),
            &admin,
            Some(json!({"body": "sleep \"$2\"; systemctl restart \"$1\""})),
        )
        .await;
    assert_eq!(v2["latest_version"], 2);
    assert_eq!(
        v2["description"], "Restart a unit",
        "unchanged fields are kept"
    );
    let versions = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/scripts/restart-service/versions",
            &admin,
            None,
        )
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[1]["body"], "systemctl restart \"$1\"");

    // Arguments are typed and bound by name; the job records the version it ran.
    let resp = t
        .call(
            POST,
            &format!("/api/v1/scripts/{sid}/run"),
            Some(&admin),
            Some(json!({
        "arguments": {"delay": "soon", "color": "red"}, "targets": {"devices": [a]}})),
        )
        .await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "validation_failed");
    let paths: Vec<&str> = resp.1["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    for p in ["/arguments/color", "/arguments/unit", "/arguments/delay"] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    let job = t
        .ok(
            StatusCode::CREATED,
            POST,
            &format!("/api/v1/scripts/{sid}/run"),
            &admin,
            Some(json!({
            "arguments": {"unit": "nginx; rm -rf /"}, "targets": {"devices": [a]}})),
        )
        .await;
    assert_eq!(
        (job["script_id"].as_str(), job["script_version"].as_i64()),
        (Some(sid), Some(2))
    );
    assert_eq!(job["name"], "restart-service (v2)");
    let r = t.claim(&ta).await.remove(0);
    let capstan_proto::jobs::JobAction::Script { body, args, .. } = &r.spec.action else {
        panic!("expected a script: {:?}", r.spec.action)
    };
    assert!(body.starts_with("sleep"));
    assert_eq!(
        args,
        &["nginx; rm -rf /", "5"],
        "values reach the script as data"
    );
    assert_eq!(r.spec.env["CAPSTAN_PARAM_UNIT"], "nginx; rm -rf /");
    assert_eq!(r.spec.env["CAPSTAN_PARAM_DELAY"], "5");
    // An older version can be run explicitly.
    let job = t
        .ok(
            StatusCode::CREATED,
            POST,
            &format!("/api/v1/scripts/{sid}/run"),
            &admin,
            Some(json!({
            "version": 1, "arguments": {"unit": "x"}, "targets": {"devices": [a]}})),
        )
        .await;
    assert_eq!(job["script_version"], 1);
    // Editing or deleting the script does not change what a job ran.
    t.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/api/v1/scripts/{sid}"),
        &admin,
        None,
    )
    .await;
    let again = t.job(&admin, job["id"].as_str().unwrap()).await;
    assert_eq!(again["spec"]["action"]["body"], "systemctl restart \"$1\"");
    let resp = t
        .call(GET, &format!("/api/v1/scripts/{sid}"), Some(&admin), None)
        .await;
    assert_error(&resp, StatusCode::NOT_FOUND, "not_found");
    // Bad scripts: each problem with its path; nothing saved.
    let resp = t.call(POST, "/api/v1/scripts", Some(&admin), Some(json!({
        "name": "", "interpreter": "bash", "body": " ",
        "parameters": [{"name": "1x", "type": "enum"}, {"name": "n", "type": "number", "default": "x"}]}))).await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        resp.1["details"].as_array().unwrap().len() >= 5,
        "{}",
        resp.1
    );
    let list = t
        .ok(StatusCode::OK, GET, "/api/v1/scripts", &admin, None)
        .await;
    assert!(list.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn jobs_following_a_group_reach_devices_that_join_it() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, _ta) = t.device(&admin, "a").await;
    let (b, tb) = t.device(&admin, "b").await;
    let pilot = t
        .static_group(&admin, json!({"name": "pilot"}), &[&a])
        .await;
    let pilot_eu = t
        .static_group(
            &admin,
            json!({"name": "pilot-eu", "parent_id": pilot["id"]}),
            &[],
        )
        .await;
    let job = t
        .create_job(
            &admin,
            json!({"spec": {"action": {"type": "command", "argv": ["true"]}},
        "targets": {"groups": ["pilot"], "follow_group_joins": true}}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["counts"]["total"], 1);
    // b joins a child group of the followed one.
    t.add_members(&admin, &pilot_eu, &[&b]).await;
    t.tick_at(0, now()).await;
    assert_eq!(t.job(&admin, id).await["counts"]["total"], 2);
    let r = t.claim(&tb).await;
    assert_eq!(r.len(), 1);
    let run = t.run(&admin, id, &b).await;
    assert_eq!(
        run["history"][0]["reason"],
        "the device joined a target group"
    );
    // A second pass creates nothing twice.
    t.tick_at(0, now()).await;
    assert_eq!(t.job(&admin, id).await["counts"]["total"], 2);
    // A job that does not follow, and a followed job once cancelled, give joiners nothing.
    let fixed = t
        .create_job(
            &admin,
            json!({"spec": {"action": {"type": "command", "argv": ["true"]}},
                   "targets": {"groups": ["pilot"]}}),
        )
        .await;
    t.ok(
        StatusCode::OK,
        POST,
        &format!("/api/v1/jobs/{id}/cancel"),
        &admin,
        None,
    )
    .await;
    let (c, _tc) = t.device(&admin, "c").await;
    t.add_members(&admin, &pilot_eu, &[&c]).await;
    t.tick_at(0, now()).await;
    assert_eq!(t.job(&admin, id).await["counts"]["total"], 2);
    let fixed = t.job(&admin, fixed["id"].as_str().unwrap()).await;
    assert_eq!(fixed["counts"]["total"], 2, "a and b, resolved at creation");
}

/// Read SSE frames from a response body until `until` appears or time runs out.
async fn read_events(resp: axum::response::Response, until: &str) -> String {
    let mut body = resp.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains(until) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {until:?} within 10 s; got:\n{text}"));
        match frame {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    text.push_str(&String::from_utf8_lossy(&d));
                }
            }
            _ => break,
        }
    }
    text
}

#[tokio::test]
async fn the_live_event_stream_shows_states_and_output_and_resumes() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let job = t.create_job(&admin, echo(&[&a])).await;
    let id = job["id"].as_str().unwrap().to_string();
    let open = |last: Option<String>| {
        let mut b = Request::builder()
            .uri(format!("/api/v1/jobs/{id}/events"))
            .header(header::AUTHORIZATION, format!("Bearer {admin}"));
        if let Some(l) = last {
            b = b.header("last-event-id", l);
        }
        b.body(Body::empty()).unwrap()
    };
    let resp = t.request(open(None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    // The stream runs while the agent works.
    let agent = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let r = t.claim(&ta).await.remove(0);
        t.start(&ta, &r.run_id, 1).await;
        t.agent(
            &ta,
            &r.run_id,
            "output",
            json!({"attempt": 1, "chunks": [
            {"stream": "stdout", "offset": 0, "data": "line one\n"}]}),
        )
        .await;
        t.finish(&ta, &r.run_id, 1, "succeeded", 0).await;
    };
    let (text, ()) = tokio::join!(read_events(resp, "event: finished"), agent);
    assert!(text.contains("event: run"), "{text}");
    assert!(text.contains("\"state\":\"succeeded\""), "{text}");
    assert!(text.contains("line one"), "{text}");
    let last_id = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .to_string();
    // Reconnecting with Last-Event-ID resumes after what was seen: no old output again.
    let resp = t.request(open(Some(last_id))).await;
    let text = read_events(resp, "event: finished").await;
    assert!(!text.contains("line one"), "{text}");
    let resp = t
        .call(GET, "/api/v1/jobs/nope/events", Some(&admin), None)
        .await;
    assert_error(&resp, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_reboot_run_completes_after_the_device_reports_from_a_new_boot() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let job = t
        .create_job(
            &admin,
            json!({"spec": {"action": {"type": "reboot"}}, "targets": {"devices": [a]}}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["kind"], "reboot");
    let r = t.claim(&ta).await.remove(0);
    t.start(&ta, &r.run_id, 1).await;
    let (s, v) = t
        .agent(
            &ta,
            &r.run_id,
            "rebooting",
            json!({"attempt": 1, "boot_id": "boot-1"}),
        )
        .await;
    assert_eq!((s, v["cancel"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(t.run(&admin, id, &a).await["state"], "rebooting");
    let (s, _) = t
        .agent(
            &ta,
            &r.run_id,
            "finish",
            json!({"attempt": 1, "outcome": "succeeded",
            "error": "rebooted; boot id changed", "finished_at_ms": now()}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let run = t.run(&admin, id, &a).await;
    assert_eq!(run["state"], "succeeded");
    assert_eq!(
        states(&run),
        [
            "1:queued",
            "1:delivered",
            "1:running",
            "1:rebooting",
            "1:succeeded"
        ]
    );
}

#[tokio::test]
async fn agents_that_announce_jobs_get_their_runs_with_the_check_in() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let job = t.create_job(&admin, echo(&[&a])).await;
    let id = job["id"].as_str().unwrap();
    let checkin = |caps: Value| {
        let ta = ta.clone();
        let t = &t;
        async move {
            let (s, v) = t
                .call(
                    POST,
                    "/agent/v1/checkin",
                    Some(&ta),
                    Some(json!({"agent_version": "0.1.0", "capabilities": caps})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    // Without the capability: only the hint, nothing delivered.
    let v = checkin(json!([])).await;
    assert_eq!(v["runs_pending"], true);
    assert!(v.get("runs").is_none(), "{v}");
    assert_eq!(t.run(&admin, id, &a).await["state"], "queued");
    // With it: the signed run comes with the check-in and is now delivered.
    let v = checkin(json!(["jobs.v1"])).await;
    assert_eq!(v["runs_pending"], false, "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let key = VerifyingKey::from_bytes(t.state.signing_key.verifying_key().as_bytes()).unwrap();
    let sig = Signature::from_slice(&hex::decode(runs[0]["signature"].as_str().unwrap()).unwrap())
        .unwrap();
    let payload = runs[0]["payload"].as_str().unwrap();
    key.verify(payload.as_bytes(), &sig).unwrap();
    let p: RunPayload = serde_json::from_str(payload).unwrap();
    assert_eq!((p.device_id.as_str(), p.job_id.as_str()), (a.as_str(), id));
    assert_eq!(t.run(&admin, id, &a).await["state"], "delivered");
}

#[tokio::test]
async fn the_live_stream_sends_output_in_offset_order_exactly_once() {
    let t = setup().await;
    let admin = t.admin().await;
    let (a, ta) = t.device(&admin, "a").await;
    let job = t.create_job(&admin, echo(&[&a])).await;
    let id = job["id"].as_str().unwrap().to_string();
    let r = t.claim(&ta).await.remove(0);
    t.start(&ta, &r.run_id, 1).await;
    // The second chunk is stored first (as when a lower id commits late): the stream must
    // still send "first " before "second", and each once.
    for (off, data) in [(6, "second"), (0, "first ")] {
        let (s, v) = t
            .agent(
                &ta,
                &r.run_id,
                "output",
                json!({"attempt": 1, "chunks": [{"stream": "stdout", "offset": off, "data": data}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    t.finish(&ta, &r.run_id, 1, "succeeded", 0).await;
    let req = Request::builder()
        .uri(format!("/api/v1/jobs/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let text = read_events(t.request(req).await, "event: finished").await;
    let first = text.find("\"data\":\"first \"").expect("first chunk sent");
    let second = text.find("\"data\":\"second\"").expect("second chunk sent");
    assert!(first < second, "{text}");
    assert_eq!(text.matches("\"data\":\"first \"").count(), 1, "{text}");
    assert_eq!(text.matches("\"data\":\"second\"").count(), 1, "{text}");
    let device = format!("\"device_id\":\"{a}\"");
    assert!(
        text.matches(&device).count() >= 3,
        "output events name the device: {text}"
    );
}
