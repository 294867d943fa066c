//! `capstan groups …` and `capstan tags …`: static groups (a tree; a group's members include
//! those of its descendants), dynamic groups (`--rule FILE`, previewed and explained before
//! and after saving) and bulk membership and tag changes by `--device` ids and/or
//! `--filter-…` options. Deleting a group asks for confirmation on a terminal.

use std::io::Read;

use capstan_proto::api::{
    CreateGroupRequest, DeviceListQuery, DeviceSelector, GroupPreviewRequest, MembershipChange,
    TagChange, UpdateGroupRequest,
};

use super::Context;
use crate::cli::{FilterArgs, GroupsCommand, SelectionArgs, TagsCommand};
use crate::failure::{Failure, FailureKind};
use crate::{output, prompt};

/// The wire selector of the `--filter-…` options, `None` when none is given.
pub fn selector(f: &FilterArgs) -> Option<DeviceSelector> {
    (!f.is_empty()).then(|| DeviceSelector {
        search: f.filter_search.clone(),
        status: f.filter_status.map(|s| s.as_str().to_string()),
        tag: f.filter_tag.clone(),
        group: f.filter_group.clone(),
        field: f.filter_field.clone(),
    })
}

/// Largest rule file read (the server's own limits are far below this).
const MAX_RULE_BYTES: u64 = 1 << 20;

/// Read a JSON rule from `path`, or standard input for `-`.
fn read_rule(path: &str) -> anyhow::Result<serde_json::Value> {
    let mut text = String::new();
    let read = if path == "-" {
        std::io::stdin()
            .take(MAX_RULE_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_RULE_BYTES + 1).read_to_string(&mut text))
    };
    let what = if path == "-" {
        "standard input".to_string()
    } else {
        path.to_string()
    };
    read.map_err(|e| {
        Failure::new(
            FailureKind::InvalidInput,
            format!("reading rule from {what}: {e}"),
        )
    })?;
    if text.len() as u64 > MAX_RULE_BYTES {
        return Err(Failure::new(
            FailureKind::InvalidInput,
            format!("rule in {what} is larger than {MAX_RULE_BYTES} bytes"),
        )
        .into());
    }
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            FailureKind::InvalidInput,
            format!("rule in {what} is not valid JSON: {e}"),
        )
        .into()
    })
}

/// `--device` ids and filters as the request parts; a usage failure when there are neither.
fn selection(s: SelectionArgs) -> anyhow::Result<(Option<Vec<String>>, Option<DeviceSelector>)> {
    let filter = selector(&s.filter);
    if s.devices.is_empty() && filter.is_none() {
        return Err(Failure::new(
            FailureKind::InvalidInput,
            "name the devices with --device ID (repeatable) and/or --filter-… options",
        )
        .into());
    }
    let ids = (!s.devices.is_empty()).then_some(s.devices);
    Ok((ids, filter))
}

pub async fn run(ctx: &Context, cmd: GroupsCommand) -> anyhow::Result<()> {
    match cmd {
        GroupsCommand::List => {
            let groups = ctx.client()?.list_groups().await?;
            ctx.emit(&groups, || output::groups_table(&groups))
        }
        GroupsCommand::Show { group } => {
            let client = ctx.client()?;
            let g = client.get_group(&group).await?;
            let parent = match &g.parent_id {
                Some(p) => Some(client.get_group(p).await?.name),
                None => None,
            };
            ctx.emit(&g, || {
                output::group_detail(&g, parent.as_deref(), ctx.now_ms)
            })
        }
        GroupsCommand::Create {
            name,
            description,
            parent,
            rule,
        } => {
            let rule = rule.as_deref().map(read_rule).transpose()?;
            let req = CreateGroupRequest {
                name,
                description,
                parent_id: parent,
                kind: rule.as_ref().map(|_| "dynamic".to_string()),
                rule,
            };
            let g = ctx.client()?.create_group(&req).await?;
            ctx.emit(&g, || {
                output::group_detail(&g, req.parent_id.as_deref(), ctx.now_ms)
            })
        }
        GroupsCommand::Edit {
            group,
            name,
            description,
            parent,
            top_level,
            rule,
        } => {
            let rule = rule.as_deref().map(read_rule).transpose()?;
            let parent_id = match (parent, top_level) {
                (Some(p), _) => Some(Some(p)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let req = UpdateGroupRequest {
                name,
                description,
                parent_id,
                rule,
            };
            let g = ctx.client()?.update_group(&group, &req).await?;
            ctx.emit(&g, || output::group_detail(&g, None, ctx.now_ms))
        }
        GroupsCommand::Delete { group, yes } => delete(ctx, &group, yes).await,
        GroupsCommand::Preview { rule, limit } => {
            let req = GroupPreviewRequest {
                rule: read_rule(&rule)?,
                limit,
            };
            let p = ctx.client()?.preview_group(&req).await?;
            ctx.emit(&p, || output::group_preview(&p, ctx.now_ms))
        }
        GroupsCommand::Explain { group, device } => {
            let e = ctx.client()?.explain_group(&group, &device).await?;
            ctx.emit(&e, || output::group_explanation(&e))
        }
        GroupsCommand::Members {
            group,
            limit,
            offset,
        } => {
            let query = DeviceListQuery {
                limit,
                offset,
                ..Default::default()
            };
            let page = ctx.client()?.group_members(&group, &query).await?;
            ctx.emit(&page.items, || {
                let mut text = output::devices_table(&page.items, ctx.now_ms);
                if let Some(footer) = output::devices_page_footer(&page) {
                    text.push_str(&footer);
                }
                text
            })
        }
        GroupsCommand::Add {
            group,
            selection: s,
        } => members(ctx, &group, s, true).await,
        GroupsCommand::Remove {
            group,
            selection: s,
        } => members(ctx, &group, s, false).await,
    }
}

async fn members(ctx: &Context, group: &str, s: SelectionArgs, add: bool) -> anyhow::Result<()> {
    let (device_ids, filter) = selection(s)?;
    let req = MembershipChange { device_ids, filter };
    let r = ctx.client()?.change_group_members(group, &req, add).await?;
    let verb = if add { "added to" } else { "removed from" };
    ctx.emit(&r, || {
        output::bulk_result(&r, &format!("{verb} group {group}"))
    })
}

async fn delete(ctx: &Context, group: &str, yes: bool) -> anyhow::Result<()> {
    if !yes && !prompt::stdin_is_terminal() {
        return Err(Failure::new(
            FailureKind::ConfirmationRequired,
            format!(
                "refusing to delete group {group} without confirmation: standard input is not a terminal; pass --yes"
            ),
        )
        .into());
    }
    let client = ctx.client()?;
    if !yes {
        let g = client.get_group(group).await?;
        let question = format!(
            "Delete group {} with {} direct member(s)? The devices stay; they leave the group.",
            output::sanitize_for_terminal(&g.name),
            g.direct_members
        );
        if !prompt::confirm(&question)? {
            return Err(Failure::new(FailureKind::Aborted, "deletion cancelled").into());
        }
    }
    client.delete_group(group).await?;
    ctx.note(&format!("Group {group} deleted."));
    Ok(())
}

pub async fn tags(ctx: &Context, cmd: TagsCommand) -> anyhow::Result<()> {
    let (tags, s, add) = match cmd {
        TagsCommand::Add { tags, selection } => (tags, selection, true),
        TagsCommand::Remove { tags, selection } => (tags, selection, false),
    };
    let (device_ids, filter) = selection(s)?;
    let req = TagChange {
        tags,
        device_ids,
        filter,
    };
    let r = ctx.client()?.change_tags(&req, add).await?;
    let what = format!(
        "{} {}",
        if add { "tagged" } else { "untagged" },
        req.tags.join(", ")
    );
    ctx.emit(&r, || output::bulk_result(&r, &what))
}
