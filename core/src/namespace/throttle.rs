//! Reconstruction byte budgets (DESIGN §7), as journaled: a budget per blockserver, per
//! ordered rack pair and per ordered datacenter pair, and which datacenter each rack is in.
//! Journaled so that a setting survives failover (the new active pushes the same budgets);
//! set live with `metactl reconstruction throttle`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{NsError, StoreError};
use super::inode::{decode, encode};
use super::kv::{Cf, KvRead, Txn};

/// Key of the settings in the `meta` column family.
const KEY: &[u8] = b"reconstruction_throttle";

/// The budgets in force (bytes per second; absent: unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleSettings {
    /// Per blockserver: bytes read and written by reconstruction; 0 = unlimited.
    pub node_bytes_per_sec: u64,
    /// (from rack, to rack) -> bytes/s crossing from the first to the second.
    pub rack_pairs: BTreeMap<(String, String), u64>,
    /// rack -> datacenter.
    pub racks: BTreeMap<String, String>,
    /// (from datacenter, to datacenter) -> bytes/s.
    pub datacenter_pairs: BTreeMap<(String, String), u64>,
}

/// A change to the settings: what is given replaces what was; a pair set to 0 is removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleChange {
    pub node_bytes_per_sec: Option<u64>,
    pub rack_pairs: Vec<(String, String, u64)>,
    /// When non-empty, replaces the rack -> datacenter map.
    pub racks: Vec<(String, String)>,
    pub datacenter_pairs: Vec<(String, String, u64)>,
}

impl ThrottleChange {
    /// An upper bound of its encoded size, in bytes (see `Op::size_bound`).
    pub fn size_bound(&self) -> usize {
        let pair = |a: &String, b: &String| a.len() + b.len() + 20;
        let rack_pairs = self.rack_pairs.iter().map(|(a, b, _)| pair(a, b));
        let racks = self.racks.iter().map(|(a, b)| pair(a, b));
        let dc_pairs = self.datacenter_pairs.iter().map(|(a, b, _)| pair(a, b));
        rack_pairs
            .chain(racks)
            .chain(dc_pairs)
            .fold(20, usize::saturating_add)
    }
}

/// The settings in force.
pub fn load<R: KvRead + ?Sized>(kv: &R) -> Result<ThrottleSettings, StoreError> {
    Ok(match kv.get(Cf::Meta, KEY)? {
        Some(v) => decode("meta", &v)?,
        None => ThrottleSettings::default(),
    })
}

fn name_ok(what: &str, s: &str) -> Result<(), NsError> {
    if s.is_empty() || s.len() > 256 || s.contains(['\0', '>', ',', '=']) {
        return Err(NsError::InvalidArgument(format!("bad {what} name {s:?}")));
    }
    Ok(())
}

fn pair_ok(what: &str, from: &str, to: &str) -> Result<(), NsError> {
    name_ok(what, from)?;
    name_ok(what, to)?;
    if from == to {
        return Err(NsError::InvalidArgument(format!(
            "a {what} pair needs two different {what}s, got {from}:{to}"
        )));
    }
    Ok(())
}

/// Applies `change`; returns the new settings.
pub fn apply<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    change: &ThrottleChange,
) -> Result<ThrottleSettings, super::ApplyError> {
    for (from, to, _) in &change.rack_pairs {
        pair_ok("rack", from, to)?;
    }
    for (from, to, _) in &change.datacenter_pairs {
        pair_ok("datacenter", from, to)?;
    }
    for (rack, dc) in &change.racks {
        name_ok("rack", rack)?;
        name_ok("datacenter", dc)?;
    }
    let mut s = load(txn)?;
    if let Some(n) = change.node_bytes_per_sec {
        s.node_bytes_per_sec = n;
    }
    for (from, to, bps) in &change.rack_pairs {
        let key = (from.clone(), to.clone());
        if *bps == 0 {
            s.rack_pairs.remove(&key);
        } else {
            s.rack_pairs.insert(key, *bps);
        }
    }
    if !change.racks.is_empty() {
        s.racks = change.racks.iter().cloned().collect();
    }
    for (from, to, bps) in &change.datacenter_pairs {
        let key = (from.clone(), to.clone());
        if *bps == 0 {
            s.datacenter_pairs.remove(&key);
        } else {
            s.datacenter_pairs.insert(key, *bps);
        }
    }
    txn.put(Cf::Meta, KEY.to_vec(), encode(&s));
    Ok(s)
}
