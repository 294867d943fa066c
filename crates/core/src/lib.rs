//! Pure domain logic of Capstan, shared by the server and the agent: everything here is a
//! function of its inputs (no IO, no clock, no randomness), so it is unit-tested with data
//! alone. Today that is the inventory digest, which tells the agent whether anything worth
//! sending has changed, the field-level inventory diff behind the device history, version
//! comparison per package source, and the dynamic-group rule engine.

pub mod detection;
pub mod inventory;
pub mod jobs;
pub mod rules;
pub mod software;
pub mod version;
pub mod windows;
