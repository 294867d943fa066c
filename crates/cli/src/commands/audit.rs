//! `capstan audit list`: the audit log, newest first, one page or (with `--all`) every page
//! back to the first entry.

use capstan_proto::api::{AuditPage, AuditQuery};

use super::Context;
use crate::cli::{AuditCommand, AuditListArgs};
use crate::output;

/// Page size used by `--all` when no `--limit` is given (the server maximum).
const ALL_PAGE_SIZE: u64 = 500;

pub async fn run(ctx: &Context, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::List(args) => list(ctx, args).await,
    }
}

/// Operators are logged as `user:NAME`; a bare name means that user, so `--actor admin`
/// finds what the admin did.
fn actor_filter(actor: String) -> String {
    if actor.contains(':') || actor == "system" {
        actor
    } else {
        format!("user:{actor}")
    }
}

async fn list(ctx: &Context, args: AuditListArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let mut query = AuditQuery {
        before: args.before,
        limit: args.limit,
        actor: args.actor.map(actor_filter),
        action: args.action,
    };
    let page = if args.all {
        query.limit = Some(args.limit.unwrap_or(ALL_PAGE_SIZE));
        let mut items = Vec::new();
        loop {
            let page = client.audit_log(&query).await?;
            items.extend(page.items);
            // Ids only decrease, so a repeated cursor would mean a misbehaving server.
            match page.next_before {
                Some(next) if query.before.is_none_or(|b| next < b) => query.before = Some(next),
                _ => break,
            }
        }
        AuditPage {
            items,
            next_before: None,
        }
    } else {
        client.audit_log(&query).await?
    };
    ctx.emit(&page.items, || output::audit_table(&page))
}

#[cfg(test)]
mod tests {
    use super::actor_filter;

    #[test]
    fn bare_names_mean_users() {
        assert_eq!(actor_filter("admin".into()), "user:admin");
        assert_eq!(actor_filter("user:ops".into()), "user:ops");
        assert_eq!(actor_filter("system".into()), "system");
    }
}
