//! `capstan users …`: listing and creating console users (the server allows it to admins only).

use capstan_proto::api::{CreateUserRequest, Role};

use super::Context;
use crate::cli::{RoleArg, UsersCommand};
use crate::{output, prompt};

pub async fn run(ctx: &Context, cmd: UsersCommand) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match cmd {
        UsersCommand::List => {
            let users = client.list_users().await?;
            ctx.emit(&users, || output::users_table(&users, ctx.now_ms))
        }
        UsersCommand::Create { username, role } => {
            let password =
                prompt::read_password(&format!("Password for new user {username}: "), true)?;
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Operator => Role::Operator,
                RoleArg::Viewer => Role::Viewer,
            };
            let user = client
                .create_user(&CreateUserRequest {
                    username,
                    password,
                    role,
                })
                .await?;
            ctx.emit(&user, || output::user_info(&user, None, ctx.now_ms))
        }
    }
}
