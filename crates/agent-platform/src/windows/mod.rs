//! Windows inventory. Everything that interprets what Windows reports — registry values,
//! `reg query` and `net localgroup` output, WMI's computer-system record — is portable code in
//! this module and tested on any platform. The OS calls themselves (running `reg.exe`,
//! `net.exe` and PowerShell) are in `collect.rs`, compiled only on Windows.
//!
//! The registry is read through the [`regquery`] parser of `reg query` output rather than a
//! registry crate: reg.exe exists on every Windows, needs no extra dependency, and its output
//! is plain text we can test here. The interface the parsers expect is the one a registry
//! binding (e.g. `winreg`) would give: a key name and a map of value name → typed value.

// On other platforms these parsers are only exercised by tests.
#![cfg_attr(not(windows), allow(dead_code))]

pub(crate) mod domain;
pub(crate) mod firewall;
pub(crate) mod localgroup;
pub(crate) mod osinfo;
pub(crate) mod rdp;
pub(crate) mod regquery;
pub(crate) mod uninstall;

// Also compiled by `cargo test` elsewhere: it is plain std + tokio code, so this keeps it
// type-checked on machines that cannot build for Windows.
#[cfg(any(windows, test))]
pub(crate) mod collect;
