//! `capstan-server serve`: first-start bootstrap (data dir, database and migrations, signing
//! key, initial admin, TLS material), then serving until SIGTERM/SIGINT, with a graceful
//! shutdown that ends long-polls promptly.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use capstan_store::{ConnectOptions, NewUser, Store};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::secrets;
use crate::config::{Config, TlsMode};
use crate::state::{AppState, Inner, now_ms};
use crate::wake::WakeHub;

/// What first start printed: the generated admin password, if any.
#[derive(Debug, Default)]
pub struct Bootstrap {
    pub admin_created: bool,
    pub generated_password: Option<String>,
}

/// Open the database, migrate, and create the signing key and the initial admin if missing.
pub async fn bootstrap(config: &Config) -> anyhow::Result<(Store, SigningKey, Bootstrap)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    crate::depot::check_backend(config)
        .await
        .context("checking the depot storage")?;
    let store = Store::connect(&config.database_url, &ConnectOptions::default())
        .await
        .with_context(|| {
            format!(
                "connecting to {}",
                capstan_store::redact(&config.database_url)
            )
        })?;
    store
        .migrate()
        .await
        .context("running database migrations")?;

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).context("random seed")?;
    let fresh = SigningKey::from_bytes(&seed)
        .to_pkcs8_pem(Default::default())
        .context("encoding signing key")?;
    let pem = store
        .setting_get_or_init("signing_key_pkcs8", &fresh)
        .await?;
    let signing_key =
        SigningKey::from_pkcs8_pem(&pem).context("decoding the stored signing key")?;

    let mut boot = Bootstrap::default();
    if store.count_users().await? == 0 {
        let (password, generated) = match &config.admin_password {
            Some(p) if p.chars().count() >= 12 => (p.clone(), false),
            Some(_) => bail!("CAPSTAN_ADMIN_PASSWORD must be at least 12 characters"),
            None => (secrets::random_hex(12), true),
        };
        let hash = tokio::task::spawn_blocking(move || {
            secrets::hash_password(&password).map(|h| (h, password))
        })
        .await
        .context("hashing admin password")?
        .map_err(|e| anyhow::anyhow!("hashing admin password: {e}"))?;
        let user = NewUser {
            id: secrets::new_id(),
            username: "admin".into(),
            password_hash: hash.0,
            role: "admin".into(),
            created_at: now_ms(),
        };
        boot.admin_created = store.bootstrap_admin(&user).await?;
        if boot.admin_created && generated {
            boot.generated_password = Some(hash.1);
        }
    }
    if config.predefined_groups {
        let created = crate::predefined::ensure(&store)
            .await
            .context("creating the predefined groups")?;
        if !created.is_empty() {
            tracing::info!(groups = %created.join(", "), "predefined dynamic groups created");
        }
    }
    Ok((store, signing_key, boot))
}

fn derive_public_url(listen: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = if listen.ip().is_unspecified() {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    format!("{scheme}://{host}:{}", listen.port())
}

fn write_server_json(data_dir: &Path, url: &str, fingerprint: Option<&str>) -> anyhow::Result<()> {
    let path = data_dir.join("server.json");
    let tmp = data_dir.join("server.json.tmp");
    let body =
        serde_json::json!({"url": url, "fingerprint": fingerprint, "pid": std::process::id()});
    std::fs::write(&tmp, body.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Run the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(config.data_dir.join("server.json"));
    let (store, signing_key, boot) = bootstrap(&config).await?;

    let tcp = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = tcp.local_addr()?;
    let tls_material = match &config.tls {
        TlsMode::Off => None,
        TlsMode::SelfSigned => {
            let extra: Vec<String> = if local.ip().is_unspecified() {
                vec![]
            } else {
                vec![local.ip().to_string()]
            };
            let (c, k) = crate::tls::ensure_self_signed(&config.data_dir, &extra)?;
            Some(crate::tls::load(&c, &k)?)
        }
        TlsMode::Files { cert, key } => Some(crate::tls::load(cert, key)?),
    };
    let fingerprint = tls_material.as_ref().map(|m| m.fingerprint.clone());
    let spki_pin = tls_material.as_ref().map(|m| m.spki_pin.clone());
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| derive_public_url(local, tls_material.is_some()));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut dummy = [0u8; 16];
    getrandom::fill(&mut dummy).context("random")?;
    let dummy_password_hash =
        secrets::hash_password(&hex::encode(dummy)).map_err(|e| anyhow::anyhow!(e))?;
    let state = AppState::new(Inner {
        store: store.clone(),
        config: config.clone(),
        wake: WakeHub::new(now_ms() as u64),
        signing_key,
        public_url: public_url.clone(),
        fingerprint: fingerprint.clone(),
        spki_pin,
        tls: tls_material.is_some(),
        metrics: crate::telemetry::metrics_handle(),
        shutdown: shutdown_rx,
        dummy_password_hash,
        limits: Default::default(),
        replica_id: crate::auth::secrets::random_hex(8),
        membership: Default::default(),
        jobs: Default::default(),
        deploy: Default::default(),
        agent_writes: Default::default(),
        device_auth: Default::default(),
    });
    let (router, _spec) = crate::app::build(state.clone());

    tokio::spawn(crate::state::relay_wakes(state.clone()));
    tokio::spawn(crate::membership::run_periodic(state.clone()));
    tokio::spawn(crate::jobs::run_ticker(state.clone()));
    tokio::spawn(crate::deploy::run_controller(state.clone()));
    tokio::spawn(crate::presence::run(state.clone()));
    // Background housekeeping: expired sessions.
    let housekeeping_store = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = housekeeping_store.purge_expired_sessions(now_ms()).await {
                tracing::warn!(error = %e, "purging expired sessions failed");
            }
        }
    });

    println!(
        "capstan-server {} listening on {public_url}",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  database: {} ({})",
        capstan_store::redact(&config.database_url),
        store.backend().as_str()
    );
    match &fingerprint {
        Some(fp) => println!("  TLS certificate fingerprint: {fp}"),
        None => println!("  plain HTTP (no TLS)"),
    }
    if boot.admin_created {
        match &boot.generated_password {
            Some(pw) => println!(
                "  initial admin created: username admin, password {pw}\n  (shown once; change it with `capstan passwd`)"
            ),
            None => println!(
                "  initial admin created: username admin, password from CAPSTAN_ADMIN_PASSWORD"
            ),
        }
    }
    write_server_json(&config.data_dir, &public_url, fingerprint.as_deref())?;
    tracing::info!(url = %public_url, "serving");

    let signal = async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    };
    // Handlers see the client address (rate limits, logs) through ConnectInfo.
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls_material {
        Some(m) => {
            use axum::serve::ListenerExt;
            // tap_io makes axum derive the connect info from the listener's address type.
            let listener = crate::tls::TlsListener::new(tcp, m.config)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await?;
        }
        None => axum::serve(tcp, app).with_graceful_shutdown(signal).await?,
    }
    store.close().await;
    let _ = std::fs::remove_file(config.data_dir.join("server.json"));
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
