//! The federation's mount table (DESIGN §10) as journaled by the nameservice that keeps it:
//! `metactl mount add|remove|default` are entries of that nameservice's log
//! ([`super::Op::MountAdd`], [`super::Op::MountRemove`], [`super::Op::SetDefaultNameservice`]),
//! so every member holds the same table, a snapshot carries it, and routers and clients read
//! it at a state ID like any other read.

use serde::{Deserialize, Serialize};

use super::error::{NsError, StoreError};
use super::inode::{decode, encode};
use super::kv::{Cf, KvRead, Txn};
use super::path::NsPath;
use crate::federation::{Destination, FederationError, MountTable, NameserviceId};
use crate::format::{self, FormatError, Schema};

/// Key of the table in the `meta` column family.
const KEY: &[u8] = b"mount_table";

/// The record: the whole table (at most [`crate::federation::MAX_MOUNTS`] entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord(pub MountTable);

impl Schema for MountRecord {
    type Value = Self;
    const RECORD: &'static str = "mount table";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

/// The table this nameservice keeps (empty when it keeps none).
pub fn load<R: KvRead + ?Sized>(kv: &R) -> Result<MountTable, StoreError> {
    Ok(match kv.get(Cf::Meta, KEY)? {
        Some(v) => decode::<MountRecord>("meta", &v)?.0,
        None => MountTable::default(),
    })
}

fn store<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, table: MountTable) {
    txn.put(Cf::Meta, KEY.to_vec(), encode(&MountRecord(table)));
}

/// The refusal of a table edit, as the namespace's errors name it.
fn refused(e: FederationError) -> NsError {
    match e {
        FederationError::AlreadyMounted(at) => NsError::AlreadyExists(at.to_string()),
        other => NsError::InvalidArgument(other.to_string()),
    }
}

/// Adds mount point `at`.
pub fn add<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    at: &NsPath,
    to: &Destination,
) -> Result<(), super::ApplyError> {
    let mut table = load(txn)?;
    table.add(at.clone(), to.clone()).map_err(refused)?;
    store(txn, table);
    Ok(())
}

/// Removes mount point `at`; `NotFound` when it is none.
pub fn remove<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    at: &NsPath,
) -> Result<(), super::ApplyError> {
    let mut table = load(txn)?;
    if table.remove(at).is_none() {
        return Err(NsError::NotFound(format!("mount point {at}")).into());
    }
    store(txn, table);
    Ok(())
}

/// Points mount point `at` at `to`, if it leads to `from` (a compare-and-set: two tools
/// moving one mount cannot both succeed); `NotFound` when `at` is no mount point.
pub fn switch<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    at: &NsPath,
    from: &Destination,
    to: &Destination,
) -> Result<(), super::ApplyError> {
    let mut table = load(txn)?;
    match table.remove(at) {
        None => return Err(NsError::NotFound(format!("mount point {at}")).into()),
        Some(now) if now != *from => {
            return Err(NsError::InvalidArgument(format!(
                "mount point {at} leads to {now}, not {from}"
            ))
            .into());
        }
        Some(_) => {}
    }
    table.add(at.clone(), to.clone()).map_err(refused)?;
    store(txn, table);
    Ok(())
}

/// Sets (or, with `None`, clears) the nameservice of the paths under no mount point.
pub fn set_default<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    nameservice: Option<&NameserviceId>,
) -> Result<(), super::ApplyError> {
    let mut table = load(txn)?;
    table.set_default(nameservice.cloned());
    store(txn, table);
    Ok(())
}
