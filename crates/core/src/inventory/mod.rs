//! Inventory logic: the canonical form and digest of an [`InventoryDocument`] (delta mode: the
//! agent sends a full document only when the digest moves) and the field-level [`diff`] between
//! two documents that the server records as device history.
//!
//! Both follow the same list rules (which lists are sets, how entries are identified), so they
//! agree: two documents have the same digest exactly when `diff` finds no change (apart from
//! `schema_version`, which the digest covers and the history does not report).

mod canonical;
mod diff;
mod digest;
mod format;

pub use diff::{Change, ChangeKind, diff, first_inventory_summary};
pub use digest::digest;

pub use capstan_proto::inventory::InventoryDocument;

#[cfg(test)]
mod fixtures;
