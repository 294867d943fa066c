//! Live presence: `device.online` and `device.offline` domain events in the `events` table, so
//! the console (through `/api/v1/events/stream`) shows devices coming and going without
//! polling.
//!
//! Semantics. A device is online when it checked in at or after [`online_cutoff`] (within three
//! check-in intervals) — the rule of the device list's `status` filter. Each device row carries
//! the presence last announced (`devices.presence`); a pass every [`TICK`] compares it with the
//! rule and announces every difference once:
//! - `device.online` when a device announced offline has checked in since the cutoff. New
//!   devices start offline and enrolment counts as being seen, so a freshly enrolled agent is
//!   announced at the next pass;
//! - `device.offline` when a device announced online has not checked in since the cutoff and
//!   holds no wake-up connection on this server (an agent waiting for a wake-up checks in at
//!   least every interval anyway, so this only matters at the edge).
//!
//! Events therefore arrive up to one [`TICK`] after the change. For three check-in intervals
//! after the server starts nothing is announced offline (see [`run`]): agents reconnecting after
//! downtime are not a fleet-wide outage. A revoked device stops checking in and is announced
//! offline when its last check-in crosses the cutoff.
//!
//! Cost. The check-in path is untouched (no extra query per check-in); each pass reads three
//! ranges of the `(presence, last_seen_at)` index, all empty while nothing changes, whatever the
//! fleet size, and writes only the devices that changed. Because the announced state is stored,
//! a restart neither repeats nor loses announcements, and two replicas racing announce each
//! change once (the update that flips the row decides). Wake-up connections are known per
//! process only: with several replicas, a device waiting on another replica counts by its
//! check-ins alone.
//!
//! [`online_cutoff`]: crate::devices::online_cutoff

use std::time::Duration;

use crate::error::ApiResult;
use crate::state::AppState;

/// How often presence is compared and announced.
pub const TICK: Duration = Duration::from_secs(3);

/// What one pass announced: device ids that came online and that went offline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    pub online: Vec<String>,
    pub offline: Vec<String>,
}

/// Compare every device's announced presence with its state at `now` and record an event for
/// each change.
pub async fn pass(state: &AppState, now: i64) -> ApiResult<Announced> {
    pass_holding(state, now, false).await
}

/// [`pass`]; with `hold_offline`, nothing is announced offline (yet).
async fn pass_holding(state: &AppState, now: i64, hold_offline: bool) -> ApiResult<Announced> {
    let cutoff = crate::devices::online_cutoff(state, now);
    let wake = &state.wake;
    let keep = |id: &str| hold_offline || wake.is_waiting(id);
    let (came, went) = state.store.announce_presence(now, cutoff, &keep).await?;
    if !came.is_empty() || !went.is_empty() {
        tracing::debug!(
            online = came.len(),
            offline = went.len(),
            "device presence announced"
        );
    }
    Ok(Announced {
        online: came.into_iter().map(|c| c.id).collect(),
        offline: went.into_iter().map(|c| c.id).collect(),
    })
}

/// Run [`pass`] every [`TICK`] until the server shuts down. For the first three check-in
/// intervals after start nothing is announced offline: after downtime every device's last
/// check-in is old until its agent reconnects, and announcing the whole fleet offline and back
/// online would be noise (the device list still shows the status by the rule meanwhile).
pub async fn run(state: AppState) {
    let grace_until =
        crate::state::now_ms().saturating_add(3 * state.config.checkin_interval_secs as i64 * 1000);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let now = crate::state::now_ms();
        if let Err(e) = pass_holding(&state, now, now < grace_until).await {
            tracing::warn!(error = e.message, "device presence pass failed");
        }
    }
}
