//! `capstan users …`: listing, creating, changing and deleting console users (the server allows
//! it to admins only). Deleting asks for confirmation like `devices delete`.

use capstan_proto::api::{CreateUserRequest, Role, UpdateUserRequest};

use super::Context;
use crate::cli::{RoleArg, UpdateUserArgs, UsersCommand};
use crate::failure::{Failure, FailureKind};
use crate::{output, prompt};

fn role(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Admin => Role::Admin,
        RoleArg::Operator => Role::Operator,
        RoleArg::Viewer => Role::Viewer,
    }
}

pub async fn run(ctx: &Context, cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::List => {
            let users = ctx.client()?.list_users().await?;
            ctx.emit(&users, || output::users_table(&users, ctx.now_ms))
        }
        UsersCommand::Create { username, role: r } => {
            let client = ctx.client()?;
            let password =
                prompt::read_password(&format!("Password for new user {username}: "), true)?;
            let user = client
                .create_user(&CreateUserRequest {
                    username,
                    password,
                    role: role(r),
                })
                .await?;
            ctx.emit(&user, || output::user_info(&user, None, ctx.now_ms))
        }
        UsersCommand::Update(args) => update(ctx, args).await,
        UsersCommand::Delete { id, yes } => delete(ctx, &id, yes).await,
    }
}

async fn update(ctx: &Context, args: UpdateUserArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let password = if args.reset_password {
        Some(prompt::read_password(
            &format!("New password for user {}: ", args.id),
            true,
        )?)
    } else {
        None
    };
    let disabled = match (args.disable, args.enable) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let user = client
        .update_user(
            &args.id,
            &UpdateUserRequest {
                role: args.role.map(role),
                disabled,
                password,
            },
        )
        .await?;
    ctx.emit(&user, || output::user_info(&user, None, ctx.now_ms))
}

async fn delete(ctx: &Context, id: &str, yes: bool) -> anyhow::Result<()> {
    // Decide before any request, like `devices delete`: a script without --yes fails the same
    // way whether or not the server is reachable.
    if !yes && !prompt::stdin_is_terminal() {
        return Err(Failure::new(
            FailureKind::ConfirmationRequired,
            format!(
                "refusing to delete user {id} without confirmation: standard input is not a terminal; pass --yes"
            ),
        )
        .into());
    }
    let client = ctx.client()?;
    if !yes {
        // Name the user in the question; an unknown id is left for the server to refuse.
        let users = client.list_users().await?;
        let who = match users.iter().find(|u| u.id == id) {
            Some(u) => format!("{} ({id})", output::sanitize_for_terminal(&u.username)),
            None => id.to_string(),
        };
        let question = format!("Delete user {who} with its sessions and API tokens?");
        if !prompt::confirm(&question)? {
            return Err(Failure::new(FailureKind::Aborted, "deletion cancelled").into());
        }
    }
    client.delete_user(id).await?;
    ctx.note(&format!("User {id} deleted."));
    Ok(())
}
