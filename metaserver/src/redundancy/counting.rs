//! How the scan counts a group's copies when some of its servers are out of service on
//! purpose (DESIGN §11), as HDFS's `BlockManager` counts decommissioning and maintenance
//! replicas:
//!
//! - A copy on a *decommissioning* server is readable (a source) but counts for nothing:
//!   its block is rebuilt elsewhere, copied from it. The server is *needed* by the group
//!   until then.
//! - A copy on a server *in maintenance* counts as present, up or down, as long as the group
//!   keeps `min_live` live copies on servers in service (for erasure coding, k + `min_live`
//!   − 1 internal blocks: readable without the servers in maintenance). Below that, only
//!   enough of those blocks are rebuilt to reach it, down ones first.
//!
//! With every server in service this is the plain count: a block is missing when no live
//! server holds a good copy of it.

use std::collections::{BTreeMap, BTreeSet};

use raftfs_core::id::BlockServerId;
use raftfs_core::namespace::admin_state::Admin;

use super::expected_len;
use crate::namespace::StoragePolicy;
use crate::registry::Replica;

/// What one closed group needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Need {
    /// Internal blocks (indices) to rebuild; a replicated group rebuilds one copy at a time.
    pub missing: Vec<u32>,
    /// Internal blocks (replicas) that count as present: in service, in maintenance while
    /// allowed, or empty by the layout.
    pub present: usize,
    /// Internal blocks (replicas) readable now: on live servers, whatever their state, or
    /// empty by the layout. Rebuild priority and decodability follow it.
    pub readable: usize,
    /// Decommissioning servers whose copies the group still needs.
    pub draining: BTreeSet<BlockServerId>,
}

/// The admin states of the servers out of service, and the maintenance minimum.
#[derive(Debug, Default, Clone)]
pub struct Counting {
    pub admin: BTreeMap<BlockServerId, Admin>,
    pub maintenance_min_live: usize,
}

impl Counting {
    fn of(&self, node: BlockServerId) -> Admin {
        self.admin.get(&node).copied().unwrap_or_default()
    }

    /// Whether any server is in maintenance (only then are down servers' copies looked up).
    pub fn any_maintenance(&self) -> bool {
        self.admin.values().any(|a| *a == Admin::InMaintenance)
    }

    /// Whether `node` is being decommissioned.
    pub fn draining(&self, node: BlockServerId) -> bool {
        self.of(node) == Admin::Decommissioning
    }
}

/// Counts a closed group of `length` bytes: `live` are its good copies on live servers (full
/// length, current generation), `resting` those on down servers in maintenance.
pub fn need(
    policy: &StoragePolicy,
    length: u64,
    live: &[Replica],
    resting: &[Replica],
    counting: &Counting,
) -> Need {
    let full = |r: &&Replica| r.length >= expected_len(policy, length, r.index);
    let live: Vec<&Replica> = live.iter().filter(full).collect();
    let resting: Vec<&Replica> = resting.iter().filter(full).collect();
    match policy {
        StoragePolicy::Replicated(n) => replicated(usize::from(*n), &live, &resting, counting),
        StoragePolicy::ErasureCoded { data, parity, .. } => {
            let empty: BTreeSet<u32> = (0..u32::from(*data) + u32::from(*parity))
                .filter(|i| expected_len(policy, length, *i) == 0)
                .collect();
            erasure_coded(
                usize::from(*data),
                usize::from(*parity),
                &empty,
                &live,
                &resting,
                counting,
            )
        }
    }
}

/// The live copies a group must keep on servers in service while others are in maintenance:
/// `min_live` replicas; k + `min_live` − 1 internal blocks; never more than the width.
fn maintenance_floor(needed_to_read: usize, width: usize, min_live: usize) -> usize {
    needed_to_read
        .saturating_add(min_live.max(1) - 1)
        .min(width)
}

fn replicated(width: usize, live: &[&Replica], resting: &[&Replica], counting: &Counting) -> Need {
    let by = |a: Admin| live.iter().filter(|r| counting.of(r.node) == a).count();
    let in_service = by(Admin::InService);
    let maintenance = by(Admin::InMaintenance) + resting.len();
    let floor = maintenance_floor(1, width, counting.maintenance_min_live);
    // HDFS's expected live redundancy: the width less the copies in maintenance, never
    // below the floor.
    let expected = width.saturating_sub(maintenance).max(floor);
    let readable = live.len();
    let short = in_service < expected;
    let draining = if short {
        live.iter()
            .filter(|r| counting.draining(r.node))
            .map(|r| r.node)
            .collect()
    } else {
        BTreeSet::new()
    };
    Need {
        // One rebuild at a time per replicated block (index 0); more follow as the copies
        // are reported. Without a readable copy there is nothing to copy from.
        missing: if short && readable > 0 {
            vec![0]
        } else {
            Vec::new()
        },
        present: in_service + if in_service >= floor { maintenance } else { 0 },
        readable,
        draining,
    }
}

fn erasure_coded(
    data: usize,
    parity: usize,
    empty: &BTreeSet<u32>,
    live: &[&Replica],
    resting: &[&Replica],
    counting: &Counting,
) -> Need {
    let width = data + parity;
    let holds = |i: u32, a: Admin| {
        live.iter()
            .any(|r| r.index == i && counting.of(r.node) == a)
    };
    let mut in_service = 0;
    // Blocks held only in maintenance: (down: no live copy, index).
    let mut maintenance: Vec<(bool, u32)> = Vec::new();
    let mut missing = Vec::new();
    let mut readable = 0;
    let mut draining = BTreeSet::new();
    for i in 0..width as u32 {
        if empty.contains(&i) || holds(i, Admin::InService) {
            in_service += 1;
            readable += 1;
            continue;
        }
        let up = holds(i, Admin::InMaintenance);
        if up || resting.iter().any(|r| r.index == i) {
            maintenance.push((!up, i));
            readable += usize::from(up || holds(i, Admin::Decommissioning));
            continue;
        }
        if holds(i, Admin::Decommissioning) {
            readable += 1;
            draining.extend(
                live.iter()
                    .filter(|r| r.index == i && counting.draining(r.node))
                    .map(|r| r.node),
            );
        }
        missing.push(i);
    }
    // Blocks rebuilt (or about to be) count as in service; if the rest of the width held in
    // maintenance leaves the group below its floor, rebuild some of those too, down first.
    let floor = maintenance_floor(data, width, counting.maintenance_min_live);
    let after = width - maintenance.len();
    maintenance.sort_by_key(|(down, i)| (!*down, *i));
    let extra: Vec<u32> = maintenance
        .iter()
        .take(floor.saturating_sub(after))
        .map(|(_, i)| *i)
        .collect();
    missing.extend(&extra);
    missing.sort_unstable();
    Need {
        present: in_service + maintenance.len() - extra.len(),
        missing,
        readable,
        draining,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::blocks::Generation;
    use crate::namespace::inode::EcCodec;

    fn rs63() -> StoragePolicy {
        StoragePolicy::ErasureCoded {
            codec: EcCodec::Rs,
            data: 6,
            parity: 3,
            cell_kib: 1,
        }
    }

    const LEN: u64 = 6 * 1024 * 4;

    /// Internal block i on server i + 1.
    fn copies(policy: &StoragePolicy, indices: &[u32]) -> Vec<Replica> {
        indices
            .iter()
            .map(|i| Replica {
                index: *i,
                node: BlockServerId(u64::from(*i) + 1),
                length: expected_len(policy, LEN, *i),
                generation: Generation::FIRST,
            })
            .collect()
    }

    fn counting(states: &[(u64, Admin)], min_live: usize) -> Counting {
        Counting {
            admin: states
                .iter()
                .map(|(id, a)| (BlockServerId(*id), *a))
                .collect(),
            maintenance_min_live: min_live,
        }
    }

    #[test]
    fn in_service_only_is_the_plain_count() {
        let p = rs63();
        let n = need(
            &p,
            LEN,
            &copies(&p, &[0, 1, 2, 3, 4, 5, 6]),
            &[],
            &counting(&[], 1),
        );
        assert_eq!(n.missing, vec![7, 8]);
        assert_eq!((n.present, n.readable), (7, 7));
        assert!(n.draining.is_empty());
    }

    #[test]
    fn a_draining_servers_blocks_are_rebuilt_and_it_is_needed_until_they_are() {
        let p = rs63();
        let all: Vec<u32> = (0..9).collect();
        let c = counting(
            &[(1, Admin::Decommissioning), (9, Admin::Decommissioning)],
            1,
        );
        let n = need(&p, LEN, &copies(&p, &all), &[], &c);
        assert_eq!(n.missing, vec![0, 8]);
        assert_eq!((n.present, n.readable), (7, 9));
        assert_eq!(n.draining, [1, 9].map(BlockServerId).into_iter().collect());
        // Once block 0 has a copy in service (server 20), server 1 is no longer needed.
        let mut more = copies(&p, &all);
        more.push(Replica {
            node: BlockServerId(20),
            ..more[0]
        });
        let n = need(&p, LEN, &more, &[], &c);
        assert_eq!(n.missing, vec![8]);
        assert_eq!(n.draining, [BlockServerId(9)].into_iter().collect());
    }

    #[test]
    fn maintenance_copies_count_while_the_floor_holds_and_only_the_shortfall_is_rebuilt() {
        let p = rs63();
        // Servers 1..3 (blocks 0..2) in maintenance and down: 6 in service = k, the floor.
        let c = counting(
            &[
                (1, Admin::InMaintenance),
                (2, Admin::InMaintenance),
                (3, Admin::InMaintenance),
            ],
            1,
        );
        let up: Vec<u32> = (3..9).collect();
        let n = need(&p, LEN, &copies(&p, &up), &copies(&p, &[0, 1, 2]), &c);
        assert!(n.missing.is_empty(), "{n:?}");
        assert_eq!((n.present, n.readable), (9, 6));
        // One of those in service lost too: 5 < 6, one block of the maintenance ones is
        // rebuilt (the lost one), and of the three in maintenance, none (the lost block
        // brings it back to 6).
        let n = need(&p, LEN, &copies(&p, &up[1..]), &copies(&p, &[0, 1, 2]), &c);
        assert_eq!(n.missing, vec![3]);
        // A floor of 2 (k + 1): one block in maintenance is rebuilt too, a down one first.
        let c2 = Counting {
            maintenance_min_live: 2,
            ..c.clone()
        };
        let n = need(&p, LEN, &copies(&p, &up), &copies(&p, &[0, 1, 2]), &c2);
        assert_eq!(n.missing, vec![0]);
        assert_eq!(n.present, 9 - 1);
    }

    #[test]
    fn replicas_in_maintenance_count_above_the_floor() {
        let p = StoragePolicy::Replicated(3);
        let rep = |node: u64| Replica {
            index: 0,
            node: BlockServerId(node),
            length: LEN,
            generation: Generation::FIRST,
        };
        let c = counting(&[(2, Admin::InMaintenance), (3, Admin::InMaintenance)], 1);
        // One in service, two in maintenance (one down): nothing to do.
        let n = need(&p, LEN, &[rep(1), rep(2)], &[rep(3)], &c);
        assert_eq!((n.missing.clone(), n.present, n.readable), (vec![], 3, 2));
        // None in service: below the floor of 1, one copy is made from the live one.
        let n = need(&p, LEN, &[rep(2)], &[rep(3)], &c);
        assert_eq!(n.missing, vec![0]);
        // A draining copy with two in service: rebuilt, the drain needs it.
        let c = counting(&[(3, Admin::Decommissioning)], 1);
        let n = need(&p, LEN, &[rep(1), rep(2), rep(3)], &[], &c);
        assert_eq!(n.missing, vec![0]);
        assert_eq!(n.draining, [BlockServerId(3)].into_iter().collect());
        let n = need(&p, LEN, &[rep(1), rep(2), rep(3), rep(4)], &[], &c);
        assert!(n.missing.is_empty() && n.draining.is_empty());
    }
}
