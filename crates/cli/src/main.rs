//! `capstan`, the operator command line of Capstan. This file only parses the command line,
//! runs the chosen command and turns a failure into `error: <message> (<code>)` on standard
//! error and a documented exit status (see `failure.rs` and the crate README).

mod cli;
mod commands;
mod config;
mod deploy_cli;
mod deploy_output;
mod duration;
mod failure;
mod job_output;
mod output;
mod package_output;
mod params;
mod prompt;
#[cfg(test)]
mod test_support;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e} (internal)");
            return ExitCode::from(failure::EXIT_FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let report = failure::classify(&err);
            eprintln!(
                "error: {} ({})",
                output::sanitize_for_terminal(&report.message),
                report.code
            );
            ExitCode::from(report.exit)
        }
    }
}
