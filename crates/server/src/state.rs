//! The application state every handler receives: the store, the resolved configuration, the
//! wake-up hub, the server's signing key and a shutdown signal. Cheap to clone (one `Arc`).

use std::ops::Deref;
use std::sync::Arc;

use capstan_store::Store;
use ed25519_dalek::SigningKey;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::config::Config;
use crate::ratelimit::FailureLimiter;
use crate::wake::WakeHub;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub config: Config,
    pub wake: WakeHub,
    pub signing_key: SigningKey,
    /// URL agents and scripts use to reach this server.
    pub public_url: String,
    /// SHA-256 fingerprint of the served certificate (`sha256:…`), when serving TLS.
    pub fingerprint: Option<String>,
    /// curl `--pinnedpubkey` form of the served certificate's key, when serving TLS.
    pub spki_pin: Option<String>,
    pub tls: bool,
    pub metrics: PrometheusHandle,
    /// Becomes `true` when the server is shutting down (ends long-polls promptly).
    pub shutdown: watch::Receiver<bool>,
    /// An Argon2 hash of a random password, verified against when a login names an unknown
    /// user so timing does not reveal which usernames exist.
    pub dummy_password_hash: String,
    pub limits: Limits,
    /// Random id of this server process, so it can ignore its own relayed wake-ups.
    pub replica_id: String,
    /// Compiled dynamic group rules and the per-device evaluation locks.
    pub membership: crate::membership::Membership,
    /// Change feed of the job system (live views wait on it).
    pub jobs: crate::jobs::JobsRuntime,
    /// The deployment engine: dirty devices, the deployment clock, the status feed.
    pub deploy: crate::deploy::DeployRuntime,
    /// Batched agent writes ([`crate::batch::writes`]); started on first use.
    pub agent_writes: std::sync::OnceLock<crate::batch::AgentWrites>,
    /// Recently verified device credentials ([`crate::agent_api::DeviceAuthCache`]).
    pub device_auth: crate::agent_api::DeviceAuthCache,
}

/// Failure budgets of the routes that check secrets (see [`crate::ratelimit`]).
#[derive(Debug)]
pub struct Limits {
    /// Failed logins per client address.
    pub login_ip: FailureLimiter,
    /// Failed logins per username.
    pub login_user: FailureLimiter,
    /// Failed enrollments per client address.
    pub enroll_ip: FailureLimiter,
}

impl Default for Limits {
    fn default() -> Self {
        let window = std::time::Duration::from_secs(300);
        Limits {
            login_ip: FailureLimiter::new(20, window),
            login_user: FailureLimiter::new(10, window),
            enroll_ip: FailureLimiter::new(30, window),
        }
    }
}

impl AppState {
    pub fn new(inner: Inner) -> AppState {
        AppState(Arc::new(inner))
    }

    /// Wake a device's agent wherever it is connected: here directly, on other replicas
    /// through the store's notifications. Returns whether it was waiting on this replica.
    pub async fn wake_device(&self, device: &str) -> bool {
        let here = self.wake.wake(device);
        self.publish_wake(device).await;
        here
    }

    /// Wake many devices (a job fan-out): locally at once, and through the store's
    /// notifications in batches, so 10,000 targets cost a few dozen notifications, not 10,000.
    pub async fn wake_devices(&self, devices: &[String]) {
        for d in devices {
            self.wake.wake(d);
        }
        if self.store.backend() != capstan_store::Backend::Postgres || devices.is_empty() {
            return;
        }
        // A NOTIFY payload must stay below 8000 bytes: ~36-byte ids, 150 per message. Sent in
        // the background: under a fan-out the pool is busy with the woken agents' requests,
        // and the caller (a job creation) must not wait behind them for a hint.
        let payloads: Vec<String> = devices
            .chunks(150)
            .map(|chunk| format!("{}:{}", self.replica_id, chunk.join(",")))
            .collect();
        let store = self.store.clone();
        tokio::spawn(async move {
            for payload in payloads {
                if let Err(e) = store.publish(capstan_store::WAKE_CHANNEL, &payload).await {
                    tracing::warn!(error = %e, "could not relay wake-ups to other replicas");
                }
            }
        });
    }

    /// Tell other replicas to wake `device` (a hint; failures are logged, not fatal).
    pub async fn publish_wake(&self, device: &str) {
        let payload = format!("{}:{device}", self.replica_id);
        if let Err(e) = self
            .store
            .publish(capstan_store::WAKE_CHANNEL, &payload)
            .await
        {
            tracing::warn!(error = %e, device, "could not relay a wake-up to other replicas");
        }
    }
}

/// Follow other replicas' wake-ups (PostgreSQL only) and wake the long-polls held here.
/// Runs until the process ends; resubscribes after errors.
pub async fn relay_wakes(state: AppState) {
    loop {
        match state.store.subscribe(capstan_store::WAKE_CHANNEL).await {
            Ok(None) => return, // SQLite: a single process, nothing to relay.
            Ok(Some(mut sub)) => loop {
                match sub.recv().await {
                    Ok(payload) => {
                        if let Some((replica, devices)) = payload.split_once(':')
                            && replica != state.replica_id
                        {
                            for device in devices.split(',') {
                                state.wake.wake(device);
                            }
                            // A single-device relay may be a revocation or deletion on the
                            // other replica: re-check that device's credential next time.
                            if !devices.contains(',') {
                                state.device_auth.forget(devices);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "wake-up relay lost its subscription");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "wake-up relay cannot subscribe"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
