//! The rolling upgrade's state (DESIGN §11), as journaled: the cluster's format level
//! ([`crate::level`]) and whether an upgrade is prepared.
//!
//! `prepare` marks an upgrade in progress (members are then restarted one at a time onto the
//! new binary, which keeps writing the current level); `finalize` raises the level, after
//! which every member writes the new formats and the old binary can no longer follow;
//! `rollback` cancels a prepared upgrade (the members may then go back to the old binary, as
//! nothing was written that it cannot read). The state machine reads the level from here
//! before each batch, so that every member writes the same versions, whatever binary it
//! runs.

use serde::{Deserialize, Serialize};

use super::error::{NsError, StoreError};
use super::inode::{decode, encode};
use super::kv::{Cf, KvRead, Txn};
use crate::format::{self, FormatError, Schema};
use crate::level::Level;

/// Key of the record in the `meta` column family.
const KEY: &[u8] = b"format_level";

/// The record (absent: level 1, nothing prepared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeState {
    /// What every member writes.
    pub level: Level,
    /// When the upgrade in progress was prepared (the entry's time), if one is.
    pub prepared_ms: Option<u64>,
}

impl Default for UpgradeState {
    fn default() -> Self {
        Self {
            level: Level::FIRST,
            prepared_ms: None,
        }
    }
}

impl Schema for UpgradeState {
    type Value = Self;
    const RECORD: &'static str = "upgrade state";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

/// One step of an upgrade, as `metactl upgrade` asks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeStep {
    Prepare,
    /// Raise the level to `to` (at least the current one: finalizing a binary upgrade that
    /// changed no format only ends it). The tool checks first that every member's binary
    /// writes `to`.
    Finalize {
        to: Level,
    },
    Rollback,
}

/// The state in force.
pub fn load<R: KvRead + ?Sized>(kv: &R) -> Result<UpgradeState, StoreError> {
    Ok(match kv.get(Cf::Meta, KEY)? {
        Some(v) => decode::<UpgradeState>("meta", &v)?,
        None => UpgradeState::default(),
    })
}

impl UpgradeState {
    /// The state after `step` at `now_ms`, or why it is refused. A second prepare, and a
    /// finalize or rollback with none prepared, are refused, so that a tool retrying after a
    /// lost answer can tell; a finalize goes up one level at a time (to the current level,
    /// ending an upgrade that changed no format, or the next), never down and never past
    /// the next: a level no binary writes would stop every member.
    pub fn after(self, step: UpgradeStep, now_ms: u64) -> Result<UpgradeState, NsError> {
        let mut state = self;
        match (step, state.prepared_ms) {
            (UpgradeStep::Prepare, Some(_)) => {
                return Err(NsError::AlreadyExists("a prepared upgrade".into()));
            }
            (UpgradeStep::Prepare, None) => state.prepared_ms = Some(now_ms),
            (UpgradeStep::Finalize { .. } | UpgradeStep::Rollback, None) => {
                return Err(NsError::NotFound("a prepared upgrade".into()));
            }
            (UpgradeStep::Finalize { to }, Some(_)) => {
                if to < state.level || to.0 > state.level.0.saturating_add(1) {
                    return Err(NsError::InvalidArgument(format!(
                        "the cluster is at format level {}: a finalize goes to {} or {}",
                        state.level,
                        state.level,
                        state.level.0.saturating_add(1)
                    )));
                }
                state.level = to;
                state.prepared_ms = None;
            }
            (UpgradeStep::Rollback, Some(_)) => state.prepared_ms = None,
        }
        Ok(state)
    }
}

/// `Op::Upgrade`: applies `step` at `now_ms` ([`UpgradeState::after`]).
pub fn apply<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    step: UpgradeStep,
    now_ms: u64,
) -> Result<(), super::ApplyError> {
    let state = load(txn)?.after(step, now_ms)?;
    txn.put(Cf::Meta, KEY.to_vec(), encode(&state));
    Ok(())
}
