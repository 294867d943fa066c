//! `capstan depot …`: depot sources (file shares and HTTP mirrors agents download from before
//! the server) and the drift report of which source lacks which version. `sources sync` asks
//! the server to copy a package's artifacts to a source; the copies run on the server in the
//! background, and `--wait` follows the source's status until they are done.

use std::collections::HashSet;
use std::time::Duration;

use capstan_proto::software::{
    CreateSourceRequest, SourceBlobState, SourceKind, SourceStatus, SourceStatusQuery, SyncRequest,
};

use super::Context;
use crate::cli::{DepotCommand, SourceAddArgs, SourcesCommand};
use crate::failure::{Failure, FailureKind};
use crate::{output, package_output, prompt};

/// How often `sources sync --wait` reads the source's status.
const SYNC_POLL: Duration = Duration::from_millis(500);

pub async fn run(ctx: &Context, cmd: DepotCommand) -> anyhow::Result<()> {
    match cmd {
        DepotCommand::Drift => {
            let r = ctx.client()?.depot_drift().await?;
            ctx.emit(&r, || package_output::drift_table(&r))
        }
        DepotCommand::Sources(cmd) => sources(ctx, cmd).await,
    }
}

async fn sources(ctx: &Context, cmd: SourcesCommand) -> anyhow::Result<()> {
    match cmd {
        SourcesCommand::List => {
            let items = ctx.client()?.list_sources().await?;
            ctx.emit(&items, || package_output::sources_table(&items))
        }
        SourcesCommand::Add(args) => add(ctx, args).await,
        SourcesCommand::Remove { source, yes } => remove(ctx, &source, yes).await,
        SourcesCommand::Sync {
            source,
            package,
            wait,
        } => {
            let client = ctx.client()?;
            let started = client
                .sync_source(
                    &source,
                    &SyncRequest {
                        package: package.package,
                        version: package.version,
                    },
                )
                .await?;
            if !wait {
                return ctx.emit(&started, || package_output::sync_started(&started));
            }
            let wanted: HashSet<&str> = started
                .queued
                .iter()
                .chain(&started.already_synced)
                .map(String::as_str)
                .collect();
            let queued: HashSet<&str> = started.queued.iter().map(String::as_str).collect();
            let mut status = client
                .source_status(&source, &SourceStatusQuery::default())
                .await?;
            while status
                .artifacts
                .iter()
                .any(|a| queued.contains(a.sha256.as_str()) && a.state == SourceBlobState::Pending)
            {
                tokio::time::sleep(SYNC_POLL).await;
                status = client
                    .source_status(&source, &SourceStatusQuery::default())
                    .await?;
            }
            let shown = only(status, &wanted);
            // The clock after the wait: copies that just ended are "0s ago", not "in 0s".
            let now = super::now_ms();
            ctx.emit(&shown, || package_output::source_status(&shown, now))?;
            let failed = shown
                .artifacts
                .iter()
                .filter(|a| a.state != SourceBlobState::Synced)
                .count();
            if failed > 0 {
                return Err(anyhow::anyhow!(
                    "{failed} artifact(s) did not reach source {source}; see the errors above and `capstan depot sources status {source}`"
                ));
            }
            Ok(())
        }
        SourcesCommand::Status { source, verify } => {
            let st = ctx
                .client()?
                .source_status(
                    &source,
                    &SourceStatusQuery {
                        verify: verify.then_some(true),
                    },
                )
                .await?;
            ctx.emit(&st, || package_output::source_status(&st, ctx.now_ms))
        }
    }
}

/// The status narrowed to the artifacts of one sync, with counts to match.
fn only(mut st: SourceStatus, digests: &HashSet<&str>) -> SourceStatus {
    st.artifacts.retain(|a| digests.contains(a.sha256.as_str()));
    let count = |f: &dyn Fn(SourceBlobState) -> bool| {
        st.artifacts.iter().filter(|a| f(a.state)).count() as u64
    };
    let (synced, pending, failed, lacking) = (
        count(&|s| s == SourceBlobState::Synced),
        count(&|s| s == SourceBlobState::Pending),
        count(&|s| s == SourceBlobState::Failed),
        count(&|s| matches!(s, SourceBlobState::Absent | SourceBlobState::Missing)),
    );
    SourceStatus {
        synced,
        pending,
        failed,
        lacking,
        ..st
    }
}

async fn add(ctx: &Context, args: SourceAddArgs) -> anyhow::Result<()> {
    let (kind, location) = match (args.http, args.path) {
        (Some(url), None) => (SourceKind::Http, url),
        (None, Some(dir)) => (SourceKind::Path, dir),
        // clap's argument group allows exactly one of them.
        _ => {
            return Err(Failure::new(
                FailureKind::InvalidInput,
                "give exactly one of --http URL and --path DIR",
            )
            .into());
        }
    };
    let req = CreateSourceRequest {
        name: args.name,
        kind,
        location,
        sync_path: args.sync_path,
        priority: args.priority,
        exclusive: args.exclusive,
        groups: args.groups,
    };
    let s = ctx.client()?.create_source(&req).await?;
    let now = super::now_ms();
    ctx.emit(&s, || package_output::source_detail(&s, now))
}

async fn remove(ctx: &Context, source: &str, yes: bool) -> anyhow::Result<()> {
    if !yes && !prompt::stdin_is_terminal() {
        return Err(Failure::new(
            FailureKind::ConfirmationRequired,
            format!(
                "refusing to remove depot source {source} without confirmation: standard input is not a terminal; pass --yes"
            ),
        )
        .into());
    }
    let client = ctx.client()?;
    if !yes {
        let s = client.get_source(source).await?;
        let question = format!(
            "Remove depot source {} ({})? Agents stop using it; the files on it stay.",
            output::sanitize_for_terminal(&s.name),
            output::sanitize_for_terminal(&s.location)
        );
        if !prompt::confirm(&question)? {
            return Err(Failure::new(FailureKind::Aborted, "removal cancelled").into());
        }
    }
    client.delete_source(source).await?;
    ctx.note(&format!("Depot source {source} removed."));
    Ok(())
}
