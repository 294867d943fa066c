//! `capstan tokens …` (enrollment tokens, which new devices enroll with) and
//! `capstan api-tokens …` (the caller's long-lived API credentials).

use capstan_proto::api::{CreateApiTokenRequest, CreateEnrollmentTokenRequest};

use super::Context;
use crate::cli::{ApiTokensCommand, TokensCommand};
use crate::output;

pub async fn enrollment(ctx: &Context, cmd: TokensCommand) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match cmd {
        TokensCommand::Create(args) => {
            let req = CreateEnrollmentTokenRequest {
                name: args.name,
                expires_in_secs: args.expires_in,
                max_uses: args.max_uses,
                default_tags: args.tags,
            };
            let created = client.create_enrollment_token(&req).await?;
            ctx.emit(&created, || {
                output::created_enrollment_token(&created, ctx.now_ms)
            })
        }
        TokensCommand::List => {
            let tokens = client.list_enrollment_tokens().await?;
            ctx.emit(&tokens, || {
                output::enrollment_tokens_table(&tokens, ctx.now_ms)
            })
        }
        TokensCommand::Revoke { id } => {
            client.revoke_enrollment_token(&id).await?;
            ctx.note(&format!("Enrollment token {id} revoked."));
            Ok(())
        }
    }
}

pub async fn api(ctx: &Context, cmd: ApiTokensCommand) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match cmd {
        ApiTokensCommand::Create { name, expires_in } => {
            let req = CreateApiTokenRequest {
                name,
                expires_in_secs: expires_in,
            };
            let created = client.create_api_token(&req).await?;
            ctx.emit(&created, || output::created_api_token(&created, ctx.now_ms))
        }
        ApiTokensCommand::List => {
            let tokens = client.list_api_tokens().await?;
            ctx.emit(&tokens, || output::api_tokens_table(&tokens, ctx.now_ms))
        }
        ApiTokensCommand::Revoke { id } => {
            client.revoke_api_token(&id).await?;
            ctx.note(&format!("API token {id} revoked."));
            Ok(())
        }
    }
}
