//! Wire types shared by `capstan-server`, `capstan-agent`, `capstan` (the CLI) and the load
//! generator: the inventory document, the agent protocol under `/agent/v1`, the console REST API
//! types and the one error shape every API error uses. This crate does no IO; it only describes
//! and validates what travels over the wire.

pub mod agent;
pub mod api;
pub mod deploy;
pub mod depot;
pub mod error;
pub mod inventory;
pub mod jobs;
pub mod software;

/// Version of the agent protocol spoken under `/agent/v1`. Bumped only for additive changes;
/// agents announce what they support through capabilities, so old agents keep working.
pub const AGENT_PROTOCOL_VERSION: u32 = 1;

/// Prefix of device credentials (`capd_<device id>_<secret>`).
pub const DEVICE_TOKEN_PREFIX: &str = "capd";
/// Prefix of operator session tokens.
pub const SESSION_TOKEN_PREFIX: &str = "caps";
/// Prefix of long-lived operator API tokens.
pub const API_TOKEN_PREFIX: &str = "capt";
/// Prefix of enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "cape";

/// Name of the session cookie the console uses.
pub const SESSION_COOKIE: &str = "capstan_session";
