//! `capstan software install|uninstall PACKAGE[@VERSION]`: create a software job on devices
//! and groups and watch it exactly like `capstan run` (per-device results as they arrive, a
//! summary, exit status 6 when a run did not succeed, 130 on Ctrl-C). The server resolves the
//! version, its dependencies and what it supersedes when the job is created.

use capstan_proto::jobs::RetryPolicy;
use capstan_proto::software::SoftwareJobRequest;

use super::Context;
use super::jobs::{after_create, targets};
use crate::cli::{SoftwareCommand, SoftwareJobArgs};

/// The request a command line asks for.
pub fn request(args: &SoftwareJobArgs, force: bool) -> SoftwareJobRequest {
    let mut retry = RetryPolicy::default();
    if let Some(n) = args.attempts {
        retry.max_attempts = n;
    }
    if let Some(b) = args.backoff {
        retry.backoff_secs = b;
    }
    SoftwareJobRequest {
        package: args.package.package.clone(),
        version: args.package.version.clone(),
        targets: targets(&args.targets),
        expires_in_secs: args.expires,
        retry,
        force,
    }
}

pub async fn run(ctx: &Context, cmd: SoftwareCommand) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let (job, no_wait) = match cmd {
        SoftwareCommand::Install { job, force } => (
            client.software_install(&request(&job, force)).await?,
            job.wait.no_wait,
        ),
        SoftwareCommand::Uninstall { job } => (
            client.software_uninstall(&request(&job, false)).await?,
            job.wait.no_wait,
        ),
    };
    after_create(ctx, &client, job, no_wait).await
}
