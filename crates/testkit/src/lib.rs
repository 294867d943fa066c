//! Test harness shared by the integration tests of every Capstan crate: one throwaway
//! PostgreSQL cluster per test process with a fresh database per test, the real
//! `capstan-server` and `capstan-agent` binaries run as child processes with their logs kept on
//! disk, and small helpers (polling with a deadline, free ports). It is a library for tests
//! only, so it reports failures with `anyhow` and panics where a test could not sensibly go on
//! (a binary that was never built).

mod agent;
mod bins;
mod postgres;
mod process;
mod server;
mod wait;

pub use agent::AgentProcess;
pub use bins::bin_path;
pub use postgres::{TestPostgres, postgres};
pub use server::{ServerOptions, ServerProcess};
pub use wait::{PollOutcome, free_port, wait_until};
