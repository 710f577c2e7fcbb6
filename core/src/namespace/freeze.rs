//! Frozen paths (DESIGN §13): `balance`'s read-only window. While a path is frozen, every
//! change at or below it, and every change that would move or remove it (a rename or delete
//! of an ancestor), is refused with the retriable [`NsError::ReadOnly`], whoever sends it
//! and through whichever router: the freeze is an entry of the nameservice's own journal,
//! so no member and no router can miss it, unlike a flag each router would have to read.
//!
//! Snapshots of a frozen directory may still be taken (`balance`'s last one is); deleting or
//! renaming them is the superuser's alone while it is frozen.
//!
//! One move is allowed: the superuser renaming the frozen directory itself (`balance`'s
//! cleanup moves it into a trash directory). The freeze stays on the *path*, which then
//! names nothing here, so that a call a router still sends here after the mount moved is
//! refused (retriable: the router reads the table again and sends it to the new
//! nameservice) rather than recreating the path where nobody reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{NsError, StoreError};
use super::inode::{decode, encode};
use super::kv::{Cf, KvRead, Txn};
use super::ops::Op;
use super::path::NsPath;
use crate::format::{self, FormatError, Schema};

/// Key of the record in the `meta` column family.
const KEY: &[u8] = b"frozen";

/// Most paths frozen at once: a balance's window, and the path a balance moved away from
/// (its freeze stays); every mutation reads them (one record of a few KB at most).
pub const MAX_FROZEN: usize = 256;

/// The record: each frozen path, with the time (ms) its freeze was applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenRecord(pub BTreeMap<NsPath, u64>);

impl Schema for FrozenRecord {
    type Value = Self;
    const RECORD: &'static str = "frozen paths";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

/// The frozen paths and when each was frozen (empty when none is).
pub fn load<R: KvRead + ?Sized>(kv: &R) -> Result<BTreeMap<NsPath, u64>, StoreError> {
    Ok(match kv.get(Cf::Meta, KEY)? {
        Some(v) => decode::<FrozenRecord>("meta", &v)?.0,
        None => BTreeMap::new(),
    })
}

/// `Op::Freeze`: freezes `path` (at `now_ms`) or lifts its freeze. Freezing a frozen path
/// is `AlreadyExists`, lifting a freeze there is not `NotFound`, so that a tool that
/// retries after a lost answer can tell its own entry from someone else's.
pub fn set<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    frozen: bool,
    now_ms: u64,
) -> Result<(), super::ApplyError> {
    let mut paths = load(txn)?;
    if frozen {
        if paths.contains_key(path) {
            return Err(NsError::AlreadyExists(format!("freeze of {path}")).into());
        }
        if paths.len() >= MAX_FROZEN {
            return Err(NsError::InvalidArgument(format!(
                "{MAX_FROZEN} paths are frozen already; lift one first"
            ))
            .into());
        }
        paths.insert(path.clone(), now_ms);
    } else if paths.remove(path).is_none() {
        return Err(NsError::NotFound(format!("freeze of {path}")).into());
    }
    let record = encode(&FrozenRecord(paths));
    txn.put(Cf::Meta, KEY.to_vec(), record);
    Ok(())
}

/// Refuses `op` when it would change something a freeze holds. `privileged`: the caller is
/// the superuser (or the active's own work), who may move a frozen directory itself.
pub fn check<R: KvRead + ?Sized>(
    kv: &R,
    op: &Op,
    privileged: bool,
) -> Result<(), super::ApplyError> {
    // The mount table's edits name paths of the federated tree, not of this namespace.
    if matches!(
        op,
        Op::MountAdd { .. } | Op::MountRemove { .. } | Op::MountMove { .. }
    ) {
        return Ok(());
    }
    // Snapshots of a frozen directory may be taken (the balance's last one is); deleting or
    // renaming one, or its snapshottable mark, is a change the superuser alone may make.
    let paths = match op {
        Op::DeleteSnapshot { path, .. }
        | Op::RenameSnapshot { path, .. }
        | Op::DisallowSnapshot { path }
            if !privileged =>
        {
            vec![path]
        }
        _ => op.written_paths(),
    };
    if paths.is_empty() {
        return Ok(());
    }
    let frozen = load(kv)?;
    if frozen.is_empty() {
        return Ok(());
    }
    // The end of a rename or delete that takes its subtree along.
    let moved = match op {
        Op::Rename { src, .. } => Some(src),
        Op::Delete { path, .. } => Some(path),
        _ => None,
    };
    for path in paths {
        for f in frozen.keys() {
            let inside = path == f || path.is_strictly_under(f);
            let takes_it = moved == Some(path) && f.is_strictly_under(path);
            let own_move =
                privileged && matches!(op, Op::Rename { src, .. } if src == path && path == f);
            if (inside || takes_it) && !own_move {
                return Err(NsError::ReadOnly {
                    path: path.to_string(),
                    frozen: f.to_string(),
                }
                .into());
            }
        }
    }
    Ok(())
}
