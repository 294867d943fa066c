//! `capstan devices …`: list, show, timeline, refresh, revoke and delete; the software
//! subcommands are handed to `deploy.rs`. Deleting asks for confirmation on a terminal and
//! refuses to guess when there is none.

use capstan_proto::api::{DeviceListQuery, DevicePage, FieldType, TimelineQuery};

use super::Context;
use crate::cli::{DeviceListArgs, DevicesCommand, TimelineArgs};
use crate::failure::{Failure, FailureKind};
use crate::{output, prompt};

/// Page size used by `--all` when no `--limit` is given (the server maximum).
const ALL_PAGE_SIZE: u64 = 1000;

pub async fn run(ctx: &Context, cmd: DevicesCommand) -> anyhow::Result<()> {
    match cmd {
        DevicesCommand::List(args) => list(ctx, args).await,
        DevicesCommand::Show { id } => {
            let client = ctx.client()?;
            let device = client.get_device(&id).await?;
            if ctx.json_output() || device.custom_fields.is_empty() {
                return ctx.emit(&device, || output::device_detail(&device, ctx.now_ms));
            }
            // Dates travel as Unix milliseconds; a table shows them as dates.
            let mut shown = device.clone();
            let fields = client.list_custom_fields().await?;
            for f in fields.iter().filter(|f| f.field_type == FieldType::Date) {
                if let Some(v) = shown.custom_fields.get_mut(&f.name)
                    && let Some(ms) = v.as_i64()
                {
                    *v = serde_json::Value::String(output::format_rfc3339(ms));
                }
            }
            ctx.emit(&device, || output::device_detail(&shown, ctx.now_ms))
        }
        DevicesCommand::Timeline(args) => timeline(ctx, args).await,
        DevicesCommand::Refresh { id } => {
            let resp = ctx.client()?.refresh_inventory(&id).await?;
            ctx.emit(&resp, || output::refresh(&resp))
        }
        DevicesCommand::Revoke { id } => {
            ctx.client()?.revoke_device(&id).await?;
            ctx.note(&format!(
                "Device {id} revoked: its agent can no longer connect."
            ));
            Ok(())
        }
        DevicesCommand::Delete { id, yes } => delete(ctx, &id, yes).await,
        DevicesCommand::Software { device } => super::deploy::device_software(ctx, &device).await,
        DevicesCommand::SoftwareHistory {
            device,
            package,
            logs,
        } => super::deploy::software_history(ctx, &device, &package, logs).await,
        DevicesCommand::SoftwareInstall { device, package } => {
            super::deploy::software_install(ctx, &device, &package).await
        }
    }
}

async fn list(ctx: &Context, args: DeviceListArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let mut query = DeviceListQuery {
        search: args.search,
        status: args.status.map(|s| s.as_str().to_string()),
        tag: args.tag,
        group: args.group,
        field: args.field,
        os: args.os,
        model: args.model,
        sort: args.sort,
        offset: args.offset,
        limit: args.limit,
    };
    let page = if args.all {
        query.limit = Some(args.limit.unwrap_or(ALL_PAGE_SIZE));
        let mut items = Vec::new();
        loop {
            query.offset = Some(items.len() as u64);
            let page = client.list_devices(&query).await?;
            let total = page.total;
            let got = page.items.len();
            items.extend(page.items);
            // Stop on an empty page too: devices deleted while paging shrink the total.
            if got == 0 || items.len() as u64 >= total {
                break;
            }
        }
        let total = items.len() as u64;
        DevicePage {
            items,
            total,
            offset: 0,
            limit: total,
        }
    } else {
        client.list_devices(&query).await?
    };
    ctx.emit(&page.items, || {
        let mut text = output::devices_table(&page.items, ctx.now_ms);
        if let Some(footer) = output::devices_page_footer(&page) {
            text.push_str(&footer);
        }
        text
    })
}

async fn timeline(ctx: &Context, args: TimelineArgs) -> anyhow::Result<()> {
    let query = TimelineQuery {
        before: args.before,
        limit: args.limit,
        kind: args.kind,
    };
    let page = ctx.client()?.device_timeline(&args.id, &query).await?;
    ctx.emit(&page.items, || output::timeline_table(&page, &args.id))
}

async fn delete(ctx: &Context, id: &str, yes: bool) -> anyhow::Result<()> {
    // Decide before any request: a script without --yes must fail the same way whether or not
    // the server is reachable.
    if !yes && !prompt::stdin_is_terminal() {
        return Err(Failure::new(
            FailureKind::ConfirmationRequired,
            format!(
                "refusing to delete device {id} without confirmation: standard input is not a terminal; pass --yes"
            ),
        )
        .into());
    }
    let client = ctx.client()?;
    if !yes {
        let device = client.get_device(id).await?;
        let question = format!(
            "Delete device {} ({id}) and all its data? Its agent will no longer be able to connect.",
            output::sanitize_for_terminal(&device.summary.hostname)
        );
        if !prompt::confirm(&question)? {
            return Err(Failure::new(FailureKind::Aborted, "deletion cancelled").into());
        }
    }
    client.delete_device(id).await?;
    ctx.note(&format!("Device {id} deleted."));
    Ok(())
}
