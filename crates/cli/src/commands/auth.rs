//! `capstan login`, `logout`, `whoami` and `passwd`: getting a session, saving it to the config
//! file for later commands, ending it, showing whom the current credentials belong to, and
//! changing one's own password.

use anyhow::Context as _;
use capstan_client::tls::Fingerprint;
use capstan_proto::api::{ChangePasswordRequest, LoginRequest};
use capstan_proto::error::ErrorCode;

use super::Context;
use crate::cli::LoginArgs;
use crate::config::{self, Settings, Source};
use crate::failure::{Failure, FailureKind};
use crate::{output, prompt};

pub async fn login(ctx: &Context, args: &LoginArgs) -> anyhow::Result<()> {
    let resolved = ctx.resolved()?;
    let Some(server) = resolved.server else {
        return Err(Failure::new(
            FailureKind::InvalidInput,
            "login needs a server: pass --server https://HOST:PORT (or set CAPSTAN_SERVER)",
        )
        .into());
    };
    // Store the pin in its canonical form so a typo surfaces now, not at the next command.
    let fingerprint = resolved
        .fingerprint
        .as_deref()
        .map(Fingerprint::parse)
        .transpose()
        .map_err(|e| Failure::new(FailureKind::Config, e.to_string()))?
        .map(|fp| fp.to_string());
    let client = ctx.client_for(&server, None, fingerprint.as_deref())?;
    let password = prompt::read_password(
        &format!("Password for {} at {}: ", args.username, client.base_url()),
        false,
    )?;
    let resp = client
        .login(&LoginRequest {
            username: args.username.clone(),
            password,
        })
        .await?;

    let path = ctx.config_path()?;
    let settings = Settings {
        server: Some(client.base_url().to_string()),
        token: Some(resp.token.clone()),
        fingerprint,
    };
    config::save(path, &settings).context("logged in, but cannot save the session")?;
    ctx.emit(&resp.user, || {
        format!(
            "Logged in to {} as {} ({}); the session expires {}.\n",
            client.base_url(),
            resp.user.username,
            resp.user.role.as_str(),
            output::format_relative(Some(resp.expires_at_ms), ctx.now_ms),
        )
    })?;
    ctx.note(&format!("Session saved to {}", path.display()));
    Ok(())
}

pub async fn logout(ctx: &Context) -> anyhow::Result<()> {
    let resolved = ctx.resolved()?;
    let (Some(server), Some((token, source))) = (resolved.server, resolved.token) else {
        ctx.note("Not logged in; nothing to do.");
        return Ok(());
    };
    let client = ctx.client_for(&server, Some(token), resolved.fingerprint.as_deref())?;
    let outcome = client.logout().await;
    if source == Source::File {
        // Forget the session locally whatever the server said: the operator asked for this
        // machine to stop holding it. Server and pin stay so `login` needs fewer flags.
        let path = ctx.config_path()?;
        let mut saved = config::load(path)?;
        saved.token = None;
        config::save(path, &saved).context("cannot remove the session from the config file")?;
    }
    match outcome {
        Ok(()) => {
            ctx.note(&format!("Logged out of {}.", client.base_url()));
            Ok(())
        }
        // An expired or already ended session is the state logout wants.
        Err(e) if e.code() == Some(ErrorCode::Unauthenticated) => {
            ctx.note(&format!(
                "The session at {} had already ended.",
                client.base_url()
            ));
            Ok(())
        }
        Err(e) => {
            let local = if source == Source::File {
                "the local session was removed, but "
            } else {
                ""
            };
            Err(anyhow::Error::new(e)
                .context(format!("{local}the server could not end the session")))
        }
    }
}

pub async fn whoami(ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let me = client.me().await?;
    ctx.emit(&me, || {
        output::user_info(&me, Some(client.base_url()), ctx.now_ms)
    })
}

pub async fn passwd(ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let current_password = prompt::read_password("Current password: ", false)?;
    let new_password = prompt::read_password("New password: ", true)?;
    client
        .change_password(&ChangePasswordRequest {
            current_password,
            new_password,
        })
        .await?;
    ctx.note("Password changed. Your other sessions have ended; this one stays logged in.");
    Ok(())
}
