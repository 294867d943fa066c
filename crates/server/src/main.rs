//! `capstan-server`: parses the command line and runs the chosen subcommand.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "capstan-server",
    version,
    about = "Capstan endpoint management server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (creates the database, keys and admin account on first start).
    Serve(Box<capstan_server::config::ServeArgs>),
    /// Print the OpenAPI specification of the REST API and exit.
    Openapi,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = args.resolve(&|k| std::env::var(k).ok())?;
            capstan_server::telemetry::init_logging(config.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(capstan_server::serve::run(config))
        }
        Command::Openapi => {
            print!("{}", capstan_server::app::openapi_json());
            Ok(())
        }
    }
}
