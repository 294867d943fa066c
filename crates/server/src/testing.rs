//! Building blocks for tests that drive the real router in-process (no socket): a server
//! state over a fresh SQLite database in a temp dir, bootstrapped exactly as `serve` does.
//! Used by this crate's integration tests; not used by the binary.

use std::path::Path;

use tokio::sync::watch;

use crate::config::Config;
use crate::state::{AppState, Inner, now_ms};
use crate::wake::WakeHub;

/// A bootstrapped application over `config` (plain HTTP, public URL `http://capstan.test`).
pub async fn app_with_config(config: Config) -> anyhow::Result<(axum::Router, AppState)> {
    let (store, signing_key, _boot) = crate::serve::bootstrap(&config).await?;
    // Never signalled: tests end by dropping the runtime.
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    let dummy_password_hash =
        crate::auth::secrets::hash_password("dummy-password").map_err(|e| anyhow::anyhow!(e))?;
    let state = AppState::new(Inner {
        store,
        config,
        wake: WakeHub::new(now_ms() as u64),
        signing_key,
        public_url: "http://capstan.test".into(),
        fingerprint: None,
        spki_pin: None,
        tls: false,
        metrics: crate::telemetry::metrics_handle(),
        shutdown: rx,
        dummy_password_hash,
        limits: Default::default(),
        replica_id: crate::auth::secrets::random_hex(8),
        membership: Default::default(),
        jobs: Default::default(),
        deploy: Default::default(),
        agent_writes: Default::default(),
        device_auth: Default::default(),
    });
    let (router, _) = crate::app::build(state.clone());
    Ok((router, state))
}

/// [`app_with_config`] with [`Config::for_tests`] in `data_dir` (admin password
/// `test-admin-password`).
pub async fn app(data_dir: &Path) -> anyhow::Result<(axum::Router, AppState)> {
    app_with_config(Config::for_tests(data_dir)).await
}
