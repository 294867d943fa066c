//! Linux collectors. Each module reads through a [`crate::root::Root`] so it can be pointed
//! at a fixture tree; parsing is done by pure functions tested against fixtures.

pub(crate) mod domain;
pub(crate) mod hardware;
pub(crate) mod identity;
pub(crate) mod network;
pub(crate) mod os;
pub(crate) mod perf;
pub(crate) mod procfs;
pub(crate) mod security;
pub(crate) mod software;
pub(crate) mod virt;
