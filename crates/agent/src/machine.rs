//! The decision logic of the agent loop, free of IO: given what happened so far and the current
//! time, what should the agent do next — collect inventory, check in, upload, hold the wake-up
//! long-poll, back off, or stop. The daemon performs the action and reports the outcome back;
//! keeping the decisions here makes backoff, jitter and the check-in schedule testable without
//! a server or a clock.

use std::time::{Duration, Instant};

use capstan_proto::agent::{CheckinResponse, WaitResponse};

/// First retry ceiling after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Largest retry ceiling, however long the server stays away.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Longest long-poll hold the agent asks for; below common proxy idle timeouts.
pub const MAX_WAIT_SECS: u64 = 50;
/// Check-in interval used until the server has told us its own.
pub const INITIAL_CHECKIN_INTERVAL: Duration = Duration::from_secs(60);
/// Floor for a server-sent interval, so a misconfigured server cannot make agents spin.
pub const MIN_CHECKIN_INTERVAL: Duration = Duration::from_secs(1);
/// Relative jitter applied to the check-in interval (±10 %), to spread a fleet's check-ins.
pub const CHECKIN_JITTER: f64 = 0.10;

/// A long-poll answered "nothing new" faster than this was not held by the server.
pub const EARLY_EMPTY_WAIT: Duration = Duration::from_secs(1);

/// Exit status for "configuration problem, restarting will not help" (sysexits EX_CONFIG);
/// the systemd unit does not restart on it.
pub const EXIT_CONFIG: u8 = 78;

/// What the daemon should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Collect the inventory, compute its digest and report [`Machine::on_collected`].
    Collect,
    /// Check in and report [`Machine::on_checkin_ok`] or [`Machine::on_failure`].
    Checkin,
    /// Upload the cached inventory document.
    Upload,
    /// Hold the wake-up long-poll.
    Wait { generation: u64, timeout_secs: u64 },
    /// Back off before retrying after a failure.
    Sleep(Duration),
    /// Stop the agent.
    Exit(ExitReason),
}

/// Why the agent stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The server no longer accepts the device credential (revoked or deleted device).
    CredentialRejected,
}

impl ExitReason {
    pub fn exit_code(self) -> u8 {
        match self {
            ExitReason::CredentialRejected => EXIT_CONFIG,
        }
    }
}

/// The network operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Checkin,
    Upload,
    Wait,
}

/// How a failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Network trouble, 5xx, or anything else a later retry may fix: back off and retry.
    Transient,
    /// The server rejects the device credential: stop.
    CredentialRejected,
    /// The server refused the content (validation, size): do not resend it until the next
    /// check-in asks for it again.
    Rejected,
}

/// What [`Machine::on_failure`] decided, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Retry after this delay; `attempt` counts consecutive failures.
    Retry { attempt: u32, delay: Duration },
    /// Dropped: no retry until the next regular check-in.
    Dropped,
    /// The agent stops.
    Exit(ExitReason),
}

/// Retry ceiling after `attempt` consecutive failures (1-based): 1 s, 2 s, 4 s, … capped.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP)
}

/// Full jitter: a delay uniformly drawn from `[0, ceiling]`, so a fleet that lost the server
/// at the same moment does not come back at the same moment. `unit` is in `[0, 1)`.
pub fn backoff_delay(attempt: u32, unit: f64) -> Duration {
    backoff_ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
}

/// The check-in interval with ±[`CHECKIN_JITTER`] applied. `unit` is in `[0, 1)`.
pub fn jittered_interval(interval: Duration, unit: f64) -> Duration {
    let factor = 1.0 - CHECKIN_JITTER + 2.0 * CHECKIN_JITTER * unit.clamp(0.0, 1.0);
    interval.mul_f64(factor)
}

/// A small deterministic generator (SplitMix64); seeded from the OS in the daemon and from a
/// constant in tests. Jitter needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The agent loop's state.
#[derive(Debug, Clone)]
pub struct Machine {
    rng: Rng,
    inventory_interval: Duration,
    checkin_interval: Duration,
    generation: u64,
    need_collect: bool,
    /// The server asked for a fresh collection: upload it once collected.
    upload_after_collect: bool,
    need_upload: bool,
    need_checkin: bool,
    next_checkin_at: Instant,
    next_collect_at: Instant,
    backoff_until: Option<Instant>,
    failures: u32,
    exit: Option<ExitReason>,
}

impl Machine {
    /// A machine that starts by collecting the inventory and checking in.
    pub fn new(now: Instant, inventory_interval: Duration, rng: Rng) -> Self {
        Self {
            rng,
            inventory_interval: inventory_interval.max(Duration::from_secs(1)),
            checkin_interval: INITIAL_CHECKIN_INTERVAL,
            generation: 0,
            need_collect: true,
            upload_after_collect: false,
            need_upload: false,
            need_checkin: true,
            next_checkin_at: now,
            next_collect_at: now,
            backoff_until: None,
            failures: 0,
            exit: None,
        }
    }

    /// Consecutive failed network operations (0 after any success).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The next thing to do at `now`.
    pub fn next_action(&self, now: Instant) -> Action {
        if let Some(reason) = self.exit {
            return Action::Exit(reason);
        }
        if let Some(until) = self.backoff_until
            && until > now
        {
            return Action::Sleep(until - now);
        }
        // Collect before checking in, so the check-in carries the fresh digest.
        if self.need_collect || now >= self.next_collect_at {
            return Action::Collect;
        }
        if self.need_upload {
            return Action::Upload;
        }
        if self.need_checkin || now >= self.next_checkin_at {
            return Action::Checkin;
        }
        let until = self.next_checkin_at.min(self.next_collect_at) - now;
        // Round up: waking a moment early would only lead to another, tiny wait.
        let secs = until.as_secs() + u64::from(until.subsec_nanos() > 0);
        Action::Wait {
            generation: self.generation,
            timeout_secs: secs.clamp(1, MAX_WAIT_SECS),
        }
    }

    /// The inventory was collected; `digest_changed` compares it with the previous document.
    pub fn on_collected(&mut self, now: Instant, digest_changed: bool) {
        self.need_collect = false;
        self.next_collect_at = now + self.inventory_interval;
        if self.upload_after_collect {
            self.upload_after_collect = false;
            self.need_upload = true;
        } else if digest_changed {
            // Tell the server now rather than at the next interval; it will ask for the document.
            self.need_checkin = true;
        }
    }

    /// A check-in succeeded.
    pub fn on_checkin_ok(&mut self, now: Instant, resp: &CheckinResponse) {
        self.succeeded();
        self.need_checkin = false;
        self.generation = resp.wake_generation;
        self.checkin_interval =
            Duration::from_secs(resp.checkin_interval_secs).max(MIN_CHECKIN_INTERVAL);
        self.next_checkin_at = now + jittered_interval(self.checkin_interval, self.rng.unit());
        if resp.recollect_inventory {
            self.need_collect = true;
            self.upload_after_collect = resp.send_inventory;
        } else if resp.send_inventory {
            self.need_upload = true;
        }
    }

    /// The inventory upload was accepted.
    pub fn on_upload_ok(&mut self) {
        self.succeeded();
        self.need_upload = false;
    }

    /// The long-poll answered after being held for `held`.
    pub fn on_wait_ok(&mut self, now: Instant, held: Duration, resp: &WaitResponse) {
        self.succeeded();
        self.generation = resp.wake_generation;
        if resp.wake {
            self.need_checkin = true;
        } else if held < EARLY_EMPTY_WAIT {
            // "Nothing new" without holding (a draining server, a proxy): waiting again at once
            // would spin, so pause as if the poll had been held briefly.
            self.backoff_until = Some(now + EARLY_EMPTY_WAIT);
        }
    }

    /// A network operation failed.
    pub fn on_failure(&mut self, now: Instant, op: Op, kind: FailureKind) -> FailureOutcome {
        match (kind, op) {
            (FailureKind::CredentialRejected, _) => {
                self.exit = Some(ExitReason::CredentialRejected);
                FailureOutcome::Exit(ExitReason::CredentialRejected)
            }
            (FailureKind::Rejected, Op::Upload) => {
                // Resending the same document would be refused again; the server asks for it
                // at a later check-in, which keeps a bad document from looping hot.
                self.need_upload = false;
                FailureOutcome::Dropped
            }
            _ => {
                if op == Op::Wait {
                    // Whatever was lost while the server was away (a restart loses held
                    // polls), the check-in answer is the durable truth: resync with it first.
                    self.need_checkin = true;
                }
                self.failures = self.failures.saturating_add(1);
                let delay = backoff_delay(self.failures, self.rng.unit());
                self.backoff_until = Some(now + delay);
                FailureOutcome::Retry {
                    attempt: self.failures,
                    delay,
                }
            }
        }
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.backoff_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn checkin(interval: u64, generation: u64, send: bool, recollect: bool) -> CheckinResponse {
        CheckinResponse {
            server_time_ms: 0,
            checkin_interval_secs: interval,
            send_inventory: send,
            recollect_inventory: recollect,
            wake_generation: generation,
            protocol_version: 1,
            runs_pending: false,
            runs: Vec::new(),
            manifest_revision: None,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A machine past start-up: collected, checked in (interval 60 s, generation 5).
    fn steady(t0: Instant) -> Machine {
        let mut m = Machine::new(t0, HOUR, Rng::new(7));
        m.on_collected(t0, true);
        m.on_checkin_ok(t0, &checkin(60, 5, false, false));
        m
    }

    #[test]
    fn startup_collects_then_checks_in_then_waits_with_the_server_generation() {
        let t0 = Instant::now();
        let mut m = Machine::new(t0, HOUR, Rng::new(1));
        assert_eq!(m.next_action(t0), Action::Collect);
        m.on_collected(t0, true);
        assert_eq!(m.next_action(t0), Action::Checkin);
        m.on_checkin_ok(t0, &checkin(30, 9, false, false));
        match m.next_action(t0) {
            // 30 s ± 10 % → 27..=33 s until the next check-in.
            Action::Wait {
                generation: 9,
                timeout_secs,
            } => {
                assert!((27..=33).contains(&timeout_secs), "{timeout_secs}")
            }
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn wait_is_capped_at_fifty_seconds_and_stops_at_the_check_in_time() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        m.on_checkin_ok(t0, &checkin(600, 5, false, false));
        assert_eq!(
            m.next_action(t0),
            Action::Wait {
                generation: 5,
                timeout_secs: 50
            }
        );
        // A timed-out wait keeps waiting until the jittered interval has passed...
        m.on_wait_ok(
            t0,
            secs(50),
            &WaitResponse {
                wake: false,
                wake_generation: 5,
            },
        );
        let before = t0 + secs(539);
        assert!(matches!(m.next_action(before), Action::Wait { .. }));
        // ...and the last wait ends no later than the due check-in.
        let due = m.next_checkin_at;
        let near = due - Duration::from_millis(2500);
        assert_eq!(
            m.next_action(near),
            Action::Wait {
                generation: 5,
                timeout_secs: 3
            }
        );
        assert_eq!(m.next_action(due), Action::Checkin);
    }

    #[test]
    fn wake_leads_to_an_immediate_check_in() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        let t1 = t0 + secs(3);
        m.on_wait_ok(
            t0,
            secs(50),
            &WaitResponse {
                wake: true,
                wake_generation: 6,
            },
        );
        assert_eq!(m.next_action(t1), Action::Checkin);
        m.on_checkin_ok(t1, &checkin(60, 6, false, false));
        assert!(matches!(
            m.next_action(t1),
            Action::Wait { generation: 6, .. }
        ));
    }

    #[test]
    fn send_inventory_with_recollect_collects_then_uploads_without_another_check_in() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        let t1 = t0 + secs(10);
        m.on_wait_ok(
            t0,
            secs(50),
            &WaitResponse {
                wake: true,
                wake_generation: 6,
            },
        );
        m.on_checkin_ok(t1, &checkin(60, 6, true, true));
        assert_eq!(m.next_action(t1), Action::Collect);
        // Even an unchanged document is uploaded: an operator asked for it.
        m.on_collected(t1, false);
        assert_eq!(m.next_action(t1), Action::Upload);
        m.on_upload_ok();
        assert!(matches!(
            m.next_action(t1),
            Action::Wait { generation: 6, .. }
        ));
    }

    #[test]
    fn send_inventory_alone_uploads_the_cached_document() {
        let t0 = Instant::now();
        let mut m = Machine::new(t0, HOUR, Rng::new(3));
        m.on_collected(t0, true);
        m.on_checkin_ok(t0, &checkin(60, 1, true, false));
        assert_eq!(m.next_action(t0), Action::Upload);
        m.on_upload_ok();
        assert!(matches!(m.next_action(t0), Action::Wait { .. }));
    }

    #[test]
    fn inventory_is_recollected_every_interval_and_a_change_is_reported_at_once() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        // The wait before the re-collection ends at the re-collection time.
        let t1 = t0 + HOUR - secs(20);
        m.on_checkin_ok(t1, &checkin(600, 5, false, false));
        assert_eq!(
            m.next_action(t1),
            Action::Wait {
                generation: 5,
                timeout_secs: 20
            }
        );
        let t2 = t0 + HOUR;
        assert_eq!(m.next_action(t2), Action::Collect);
        m.on_collected(t2, false);
        assert!(
            matches!(m.next_action(t2), Action::Wait { .. }),
            "unchanged: no check-in"
        );
        let t3 = t2 + HOUR;
        m.on_checkin_ok(t3 - secs(1), &checkin(600, 5, false, false));
        assert_eq!(m.next_action(t3), Action::Collect);
        m.on_collected(t3, true);
        assert_eq!(
            m.next_action(t3),
            Action::Checkin,
            "changed digest: check in now"
        );
    }

    #[test]
    fn check_in_interval_jitter_stays_within_ten_percent_and_spreads() {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        for seed in 0..500 {
            let mut m = Machine::new(t0, HOUR, Rng::new(seed));
            m.on_collected(t0, true);
            m.on_checkin_ok(t0, &checkin(100, 0, false, false));
            let gap = m.next_checkin_at - t0;
            assert!(gap >= secs(90) && gap <= secs(110), "seed {seed}: {gap:?}");
            seen.push(gap);
        }
        let min = seen.iter().min().copied().unwrap_or_default();
        let max = seen.iter().max().copied().unwrap_or_default();
        assert!(
            min < secs(92) && max > secs(108),
            "jitter does not spread: {min:?}..{max:?}"
        );
        assert_eq!(jittered_interval(secs(100), 0.0), secs(90));
        assert_eq!(jittered_interval(secs(100), 1.0), secs(110));
    }

    #[test]
    fn backoff_ceiling_doubles_from_one_second_to_a_five_minute_cap() {
        let ceilings: Vec<u64> = (1..=12).map(|a| backoff_ceiling(a).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP);
        assert_eq!(backoff_delay(3, 0.0), Duration::ZERO);
        assert_eq!(backoff_delay(3, 0.5), secs(2));
    }

    #[test]
    fn repeated_failures_back_off_with_full_jitter_and_a_success_resets() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        m.on_wait_ok(
            t0,
            secs(50),
            &WaitResponse {
                wake: true,
                wake_generation: 6,
            },
        );
        let mut now = t0;
        let mut delays = Vec::new();
        for attempt in 1..=15u32 {
            assert_eq!(m.next_action(now), Action::Checkin);
            match m.on_failure(now, Op::Checkin, FailureKind::Transient) {
                FailureOutcome::Retry { attempt: a, delay } => {
                    assert_eq!(a, attempt);
                    assert!(
                        delay <= backoff_ceiling(attempt),
                        "attempt {attempt}: {delay:?}"
                    );
                    if delay > Duration::ZERO {
                        assert_eq!(m.next_action(now), Action::Sleep(delay));
                    }
                    delays.push(delay);
                    now += delay;
                }
                other => panic!("expected a retry, got {other:?}"),
            }
            // After the sleep the failed check-in is retried, not skipped.
            assert_eq!(m.next_action(now), Action::Checkin);
        }
        assert!(delays.iter().all(|d| *d <= BACKOFF_CAP));
        assert!(
            delays[10..].iter().any(|d| *d > secs(64)),
            "cap never approached: {delays:?}"
        );
        m.on_checkin_ok(now, &checkin(60, 5, false, false));
        assert_eq!(m.failures(), 0);
        match m.on_failure(now, Op::Checkin, FailureKind::Transient) {
            FailureOutcome::Retry { attempt, delay } => {
                assert_eq!(attempt, 1);
                assert!(delay <= secs(1), "{delay:?}");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_wait_resyncs_with_a_check_in_after_the_backoff() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        let FailureOutcome::Retry { delay, .. } =
            m.on_failure(t0, Op::Wait, FailureKind::Transient)
        else {
            panic!("expected a retry");
        };
        assert_eq!(m.next_action(t0 + delay), Action::Checkin);
    }

    #[test]
    fn rejected_credentials_stop_the_agent_with_ex_config() {
        for op in [Op::Checkin, Op::Upload, Op::Wait] {
            let t0 = Instant::now();
            let mut m = steady(t0);
            let out = m.on_failure(t0, op, FailureKind::CredentialRejected);
            assert_eq!(out, FailureOutcome::Exit(ExitReason::CredentialRejected));
            assert_eq!(
                m.next_action(t0 + HOUR),
                Action::Exit(ExitReason::CredentialRejected)
            );
            assert_eq!(ExitReason::CredentialRejected.exit_code(), 78);
        }
    }

    #[test]
    fn a_rejected_upload_is_not_retried_until_the_server_asks_again() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        m.on_checkin_ok(t0, &checkin(60, 5, true, false));
        assert_eq!(m.next_action(t0), Action::Upload);
        assert_eq!(
            m.on_failure(t0, Op::Upload, FailureKind::Rejected),
            FailureOutcome::Dropped
        );
        assert_eq!(
            m.failures(),
            0,
            "a refused document is not a connectivity problem"
        );
        assert!(matches!(m.next_action(t0), Action::Wait { .. }));
        let due = m.next_checkin_at;
        assert_eq!(m.next_action(due), Action::Checkin);
        m.on_checkin_ok(due, &checkin(60, 5, true, false));
        assert_eq!(m.next_action(due), Action::Upload);
    }

    #[test]
    fn a_transient_upload_failure_retries_the_upload() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        m.on_checkin_ok(t0, &checkin(60, 5, true, false));
        let FailureOutcome::Retry { delay, .. } =
            m.on_failure(t0, Op::Upload, FailureKind::Transient)
        else {
            panic!("expected a retry");
        };
        assert_eq!(m.next_action(t0 + delay), Action::Upload);
    }

    #[test]
    fn an_empty_answer_that_was_not_held_does_not_spin() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        let t1 = t0 + secs(2);
        m.on_wait_ok(
            t1,
            Duration::from_millis(5),
            &WaitResponse {
                wake: false,
                wake_generation: 5,
            },
        );
        assert_eq!(m.next_action(t1), Action::Sleep(EARLY_EMPTY_WAIT));
        assert!(matches!(
            m.next_action(t1 + EARLY_EMPTY_WAIT),
            Action::Wait { .. }
        ));
        assert_eq!(m.failures(), 0);
        // A wake-up answered at once is the normal case and is acted on immediately.
        m.on_wait_ok(
            t1,
            Duration::from_millis(5),
            &WaitResponse {
                wake: true,
                wake_generation: 6,
            },
        );
        assert_eq!(m.next_action(t1), Action::Checkin);
    }

    #[test]
    fn a_zero_interval_from_the_server_does_not_spin() {
        let t0 = Instant::now();
        let mut m = steady(t0);
        m.on_checkin_ok(t0, &checkin(0, 5, false, false));
        assert!(matches!(
            m.next_action(t0),
            Action::Wait {
                timeout_secs: 1,
                ..
            }
        ));
    }
}
