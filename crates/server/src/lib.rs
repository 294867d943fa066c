//! The Capstan server as a library: configuration, the HTTP application (console API, agent
//! API, public routes) and the serve loop. `main.rs` only parses the command line. Only this
//! crate knows axum; it reaches the database only through `capstan-store`.

pub mod agent_api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod config;
pub mod console;
pub mod deploy;
pub mod depot;
pub mod devices;
pub mod enrollment;
pub mod error;
pub mod events;
pub mod fields;
pub mod groups;
pub mod install;
pub mod jobs;
pub mod membership;
pub mod packages;
pub mod predefined;
pub mod presence;
pub mod ratelimit;
pub mod scripts;
pub mod serve;
pub mod sources;
pub mod state;
pub mod tags;
pub mod telemetry;
pub mod testing;
pub mod tls;
pub mod wake;
