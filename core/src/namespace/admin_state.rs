//! Blockservers taken out of service on purpose (DESIGN §11), as journaled: HDFS's
//! decommission and maintenance admin states.
//!
//! - *Decommissioning*: the server's internal blocks are rebuilt elsewhere (copied from it,
//!   under the reconstruction budgets) while its copies stay readable and count for nothing
//!   toward redundancy; it receives no new block. The active calls it *decommissioned* once a
//!   whole scan found no group that still needs it; it may then be stopped.
//! - *In maintenance* until a time: its copies keep counting as present, even while it is
//!   down (a planned reboot starts no rebuild), as long as each group keeps a minimum of
//!   live copies elsewhere; it receives no new block. The state lapses on its own at
//!   `until_ms`, judged by the active's clock.
//!
//! Journaled rather than kept by the active alone: a failover must not forget a drain in
//! progress nor turn a planned reboot into a rebuild storm. The times are the leader's
//! (`ApplyCtx::now_ms`), so that every member applies the same record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{NsError, StoreError};
use super::inode::{decode, encode};
use super::kv::{Cf, KvRead, Txn};
use crate::format::{self, FormatError, Schema};
use crate::id::BlockServerId;

/// Key of the record in the `meta` column family.
const KEY: &[u8] = b"blockserver_admin";

/// Most blockservers out of service at once: the record is read by every scan round and
/// every `blockserver list` (a few bytes each: about 1 MiB at this bound).
pub const MAX_OUT_OF_SERVICE: usize = 50_000;

/// Longest maintenance one change grants (HDFS leaves it to the operator; a bound keeps a
/// typo from parking a server for years).
pub const MAX_MAINTENANCE_MS: u64 = 30 * 24 * 3600 * 1000;

/// A blockserver's journaled admin state (absent: in service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminState {
    /// Draining since `since_ms`.
    Decommissioning { since_ms: u64 },
    /// Out for maintenance until `until_ms` (then in service again by itself).
    Maintenance { until_ms: u64 },
}

/// What a server is now, once the clock has been looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admin {
    #[default]
    InService,
    Decommissioning,
    InMaintenance,
}

impl Admin {
    /// Whether new internal blocks (writes, rebuilds) may go to the server.
    pub fn takes_new_blocks(self) -> bool {
        self == Admin::InService
    }
}

impl AdminState {
    /// The state at `now_ms`: a maintenance that ran out is service again.
    pub fn at(self, now_ms: u64) -> Admin {
        match self {
            AdminState::Decommissioning { .. } => Admin::Decommissioning,
            AdminState::Maintenance { until_ms } if now_ms < until_ms => Admin::InMaintenance,
            AdminState::Maintenance { .. } => Admin::InService,
        }
    }
}

/// The record: every server not in service, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord(pub BTreeMap<BlockServerId, AdminState>);

impl Schema for AdminRecord {
    type Value = Self;
    const RECORD: &'static str = "blockserver admin states";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

/// What an operator asks of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminChange {
    /// Start draining it (a server already draining keeps its start time).
    Decommission,
    /// Take it out for `for_ms` from the entry's time (again: a new end time).
    Maintenance { for_ms: u64 },
    /// Back in service: cancels a decommission or a maintenance.
    InService,
}

/// The servers not in service (empty when every one is).
pub fn load<R: KvRead + ?Sized>(kv: &R) -> Result<BTreeMap<BlockServerId, AdminState>, StoreError> {
    Ok(match kv.get(Cf::Meta, KEY)? {
        Some(v) => decode::<AdminRecord>("meta", &v)?.0,
        None => BTreeMap::new(),
    })
}

/// `Op::SetAdminState`: applies `change` to `server` at `now_ms`. Maintenance of a server
/// being decommissioned is refused, as HDFS does (the drain would stop counting its
/// copies as gone); the other changes are idempotent, so that a retried call is harmless.
pub fn set<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    server: BlockServerId,
    change: AdminChange,
    now_ms: u64,
) -> Result<(), super::ApplyError> {
    if server == BlockServerId(0) {
        return Err(NsError::InvalidArgument("blockserver id 0 is reserved".into()).into());
    }
    let mut states = load(txn)?;
    let current = states.get(&server).copied();
    let next = match (change, current) {
        (AdminChange::InService, _) => None,
        (AdminChange::Decommission, Some(s @ AdminState::Decommissioning { .. })) => Some(s),
        (AdminChange::Decommission, _) => Some(AdminState::Decommissioning { since_ms: now_ms }),
        (AdminChange::Maintenance { .. }, Some(AdminState::Decommissioning { .. })) => {
            return Err(NsError::InvalidArgument(format!(
                "blockserver {server} is being decommissioned; recommission it first"
            ))
            .into());
        }
        (AdminChange::Maintenance { for_ms }, _) => {
            if for_ms == 0 || for_ms > MAX_MAINTENANCE_MS {
                return Err(NsError::InvalidArgument(format!(
                    "maintenance of {for_ms} ms: between 1 ms and {MAX_MAINTENANCE_MS} ms"
                ))
                .into());
            }
            Some(AdminState::Maintenance {
                until_ms: now_ms.saturating_add(for_ms),
            })
        }
    };
    match next {
        Some(s) => {
            if current.is_none() && states.len() >= MAX_OUT_OF_SERVICE {
                return Err(NsError::InvalidArgument(format!(
                    "{MAX_OUT_OF_SERVICE} blockservers are out of service already"
                ))
                .into());
            }
            states.insert(server, s);
        }
        None => {
            states.remove(&server);
        }
    }
    txn.put(Cf::Meta, KEY.to_vec(), encode(&AdminRecord(states)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_lapses_at_its_end_and_decommission_does_not() {
        let m = AdminState::Maintenance { until_ms: 1_000 };
        assert_eq!(m.at(999), Admin::InMaintenance);
        assert_eq!(m.at(1_000), Admin::InService);
        let d = AdminState::Decommissioning { since_ms: 5 };
        assert_eq!(d.at(u64::MAX), Admin::Decommissioning);
        assert!(Admin::InService.takes_new_blocks());
        assert!(!Admin::InMaintenance.takes_new_blocks());
        assert!(!Admin::Decommissioning.takes_new_blocks());
    }
}
