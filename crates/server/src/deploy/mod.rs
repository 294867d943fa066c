//! Desired software state: assignments, deployments and maintenance windows (console API,
//! [`routes`]), the per-device manifest compiler ([`compile`], deciding with [`decide`]) and
//! its controller loop ([`run_controller`]), and the agent side — the signed manifest and the
//! per-item status reports ([`agent`]).
//!
//! The controller compiles devices that are *dirty*: every device after an assignment,
//! window or catalogue change; one device after it joined or left a group (read from the
//! `events` table, so changes made by other replicas count too), after its agent reported a
//! status change, or when its stored `next_eval_at` (a window opening, an available-from time,
//! a deadline) has come. A full pass also runs at start and every ten minutes, so nothing
//! depends on a signal arriving. Compiling is idempotent: an unchanged manifest keeps its
//! revision.

pub(crate) mod agent;
pub mod compile;
pub(crate) mod decide;
pub(crate) mod routes;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use utoipa_axum::router::OpenApiRouter;

use crate::state::{AppState, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    routes::router()
}

pub fn agent_router() -> OpenApiRouter<AppState> {
    agent::router()
}

/// How often everything is recompiled even without a signal.
const FULL_PASS_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
enum Dirty {
    #[default]
    Nothing,
    Some(HashSet<String>),
    All,
}

/// The deployment engine's in-process state.
#[derive(Debug)]
pub struct DeployRuntime {
    /// Added to the wall clock (tests move time with `PUT /api/v1/system/clock`).
    clock_offset_ms: AtomicI64,
    dirty: Mutex<Dirty>,
    kick: Notify,
    /// Bumped whenever an item's status changes (live views wait on it).
    feed: watch::Sender<u64>,
}

impl Default for DeployRuntime {
    fn default() -> Self {
        DeployRuntime {
            clock_offset_ms: AtomicI64::new(0),
            dirty: Mutex::new(Dirty::Nothing),
            kick: Notify::new(),
            feed: watch::Sender::new(0),
        }
    }
}

impl DeployRuntime {
    /// The deployment clock: wall time, moved only by the test clock.
    pub fn now(&self) -> i64 {
        now_ms().saturating_add(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn set_now(&self, at_ms: i64) {
        self.clock_offset_ms
            .store(at_ms.saturating_sub(now_ms()), Ordering::Relaxed);
        self.mark_all();
    }

    /// Recompile every device soon.
    pub fn mark_all(&self) {
        if let Ok(mut d) = self.dirty.lock() {
            *d = Dirty::All;
        }
        self.kick.notify_one();
    }

    /// Recompile these devices soon.
    pub fn mark<I: IntoIterator<Item = String>>(&self, devices: I) {
        if let Ok(mut d) = self.dirty.lock() {
            match &mut *d {
                Dirty::All => {}
                Dirty::Some(set) => set.extend(devices),
                Dirty::Nothing => *d = Dirty::Some(devices.into_iter().collect()),
            }
        }
        self.kick.notify_one();
    }

    fn take(&self) -> Dirty {
        self.dirty
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    fn put_back(&self, dirty: Dirty) {
        match dirty {
            Dirty::Nothing => {}
            Dirty::All => self.mark_all(),
            Dirty::Some(set) => self.mark(set),
        }
    }

    pub(crate) fn changed(&self) {
        self.feed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Compiles what is dirty, forever: woken by a change signal, otherwise once a second.
pub async fn run_controller(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    // Membership events before the first full pass are covered by it.
    let mut cursor = match state.store.last_event_id().await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "deployment controller cannot read the event cursor");
            0
        }
    };
    state.deploy.mark_all();
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = state.deploy.kick.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        loop {
            match state.store.events_after(cursor, 1000).await {
                Ok(events) => {
                    let Some(last) = events.last().map(|e| e.id) else {
                        break;
                    };
                    cursor = last;
                    state.deploy.mark(
                        events
                            .into_iter()
                            .filter(|e| e.kind.starts_with("group.member_"))
                            .map(|e| e.subject),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading membership events failed");
                    break;
                }
            }
        }
        match state.store.manifests_due(state.deploy.now()).await {
            Ok(due) if !due.is_empty() => state.deploy.mark(due),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading due manifests failed"),
        }
        if last_full.elapsed() >= FULL_PASS_EVERY {
            last_full = tokio::time::Instant::now();
            state.deploy.mark_all();
        }
        let dirty = state.deploy.take();
        let devices = match &dirty {
            Dirty::Nothing => continue,
            Dirty::All => None,
            Dirty::Some(set) => Some(set.iter().cloned().collect::<Vec<_>>()),
        };
        let started = std::time::Instant::now();
        match Box::pin(compile::compile(&state, devices)).await {
            Ok(stats) => {
                if stats.changed > 0 {
                    tracing::info!(
                        devices = stats.devices,
                        changed = stats.changed,
                        ms = started.elapsed().as_millis() as u64,
                        "manifests compiled"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "compiling manifests failed; retrying");
                state.deploy.put_back(dirty);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Compiles now, outside the controller (tests, benchmarks): every device with `None`.
pub async fn compile_now(
    state: &AppState,
    devices: Option<Vec<String>>,
) -> Result<compile::CompileStats, crate::error::ApiError> {
    Box::pin(compile::compile(state, devices)).await
}
