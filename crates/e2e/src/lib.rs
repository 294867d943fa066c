//! This crate only holds end-to-end tests (`tests/`); see ARCHITECTURE.md. They run the real
//! `capstan-server`, `capstan-agent` and `capstan` binaries, which must be built first
//! (`cargo build --workspace --bins`; the README's test command does it).
