//! Rebuilding lost internal blocks here, as the active asks in heartbeat replies (DESIGN §7).
//!
//! - [`xmits`]: the weight of the work in progress, held by guards that give back exactly
//!   what they took on every exit path.
//! - [`budget`]: byte-rate budgets (this node; its share of rack- and datacenter-pair budgets).
//! - [`worker`]: runs one task: reads the sources a stripe at a time (k cells in memory, not
//!   whole blocks), decodes the lost cell, writes the block, finalizes it (the incremental
//!   report tells the metaservers).

pub mod budget;
pub mod worker;
pub mod xmits;

pub use budget::Budgets;
pub use worker::Worker;
pub use xmits::{Xmits, XmitsGuard};
