//! Where the internal blocks of a new block group go (DESIGN §6). The active chooses once and
//! journals the choice in the `AddBlock` entry; replicas never choose.
//!
//! Every internal block on a distinct blockserver; blockservers spread over racks as evenly
//! as the topology allows (a group survives the loss of a rack when it has more racks than
//! parity blocks); dead servers, servers out of service (decommissioning, in maintenance),
//! servers with failed volumes only, servers the writer asked to avoid, and servers without
//! room for a whole internal block are skipped.

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::IndexedRandom;

use raftfs_core::id::BlockServerId;

use crate::registry::NodeView;

/// Why no placement was possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "need {wanted} blockservers with {bytes} bytes free, {usable} of {registered} registered are usable"
)]
pub struct PlacementError {
    pub wanted: usize,
    pub bytes: u64,
    pub usable: usize,
    pub registered: usize,
}

/// What a new group needs.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Internal blocks to place.
    pub count: usize,
    /// Fewest acceptable (a replicated group may start with fewer replicas than its factor
    /// on a small cluster, as HDFS does; an erasure-coded group needs all k+m).
    pub min: usize,
    /// Free bytes each chosen server needs (one internal block).
    pub block_bytes: u64,
    /// Servers the writer could not reach.
    pub exclude: &'a [BlockServerId],
}

/// Chooses the servers of one group among `nodes`.
pub fn choose(
    nodes: &[NodeView],
    req: &Request<'_>,
    rng: &mut impl Rng,
) -> Result<Vec<BlockServerId>, PlacementError> {
    let usable: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| {
            n.takes_new_blocks()
                && !req.exclude.contains(&n.id)
                && n.storage.available >= req.block_bytes
                && n.storage.failed_volumes < n.storage.volumes.max(1)
        })
        .collect();
    let err = || PlacementError {
        wanted: req.min,
        bytes: req.block_bytes,
        usable: usable.len(),
        registered: nodes.len(),
    };
    if usable.len() < req.min {
        return Err(err());
    }
    let mut by_rack: BTreeMap<&str, Vec<&NodeView>> = BTreeMap::new();
    for n in &usable {
        by_rack.entry(n.rack.as_str()).or_default().push(n);
    }
    let mut chosen: Vec<BlockServerId> = Vec::with_capacity(req.count);
    let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
    while chosen.len() < req.count {
        // Racks that still have an unchosen server, least used first; ties broken at random
        // so that load spreads over racks of equal use.
        let mut candidates: Vec<(&str, usize)> = by_rack
            .iter()
            .filter(|(_, ns)| ns.iter().any(|n| !chosen.contains(&n.id)))
            .map(|(r, _)| (*r, per_rack.get(r).copied().unwrap_or(0)))
            .collect();
        let Some(fewest) = candidates.iter().map(|(_, c)| *c).min() else {
            break;
        };
        candidates.retain(|(_, c)| *c == fewest);
        let Some((rack, _)) = candidates.choose(rng).copied() else {
            break;
        };
        let free: Vec<&&NodeView> = by_rack
            .get(rack)
            .map(|ns| ns.iter().filter(|n| !chosen.contains(&n.id)).collect())
            .unwrap_or_default();
        let Some(node) = free.choose(rng) else {
            break;
        };
        chosen.push(node.id);
        *per_rack.entry(rack).or_default() += 1;
    }
    if chosen.len() < req.min {
        return Err(err());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Storage;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn node(id: u64, rack: &str, available: u64, live: bool) -> NodeView {
        NodeView {
            id: BlockServerId(id),
            addr: format!("127.0.0.1:{id}"),
            rack: rack.into(),
            storage: Storage {
                capacity: 1 << 40,
                available,
                volumes: 1,
                ..Storage::default()
            },
            live,
            blocks: 0,
            registered_ms: 0,
            fully_reported: true,
            admin: raftfs_core::namespace::admin_state::Admin::InService,
            admin_state: None,
            drain_remaining: None,
        }
    }

    fn cluster(servers: u64, racks: u64) -> Vec<NodeView> {
        (1..=servers)
            .map(|i| node(i, &format!("r{}", (i - 1) % racks + 1), 1 << 30, true))
            .collect()
    }

    #[test]
    fn rs_6_3_on_9_servers_in_3_racks_puts_3_per_rack() {
        let nodes = cluster(9, 3);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let req = Request {
                count: 9,
                min: 9,
                block_bytes: 1 << 20,
                exclude: &[],
            };
            let chosen = choose(&nodes, &req, &mut rng).expect("placement");
            let mut sorted = chosen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 9, "distinct servers: {chosen:?}");
            let mut per_rack = BTreeMap::new();
            for id in &chosen {
                *per_rack.entry((id.get() - 1) % 3).or_insert(0) += 1;
            }
            assert!(per_rack.values().all(|c| *c == 3), "{per_rack:?}");
        }
    }

    #[test]
    fn replicas_go_to_three_racks_when_there_are_three() {
        let nodes = cluster(9, 3);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let req = Request {
                count: 3,
                min: 1,
                block_bytes: 1,
                exclude: &[],
            };
            let chosen = choose(&nodes, &req, &mut rng).expect("placement");
            let mut racks: Vec<u64> = chosen.iter().map(|id| (id.get() - 1) % 3).collect();
            racks.sort_unstable();
            assert_eq!(racks, vec![0, 1, 2]);
        }
    }

    #[test]
    fn dead_full_and_excluded_servers_are_skipped() {
        let mut nodes = cluster(6, 2);
        nodes[0].live = false;
        nodes[1].storage.available = 10;
        let mut rng = StdRng::seed_from_u64(3);
        let req = Request {
            count: 3,
            min: 3,
            block_bytes: 1 << 20,
            exclude: &[BlockServerId(3)],
        };
        let chosen = choose(&nodes, &req, &mut rng).expect("placement");
        assert_eq!(chosen.len(), 3);
        assert!(
            chosen.iter().all(|id| ![1, 2, 3].contains(&id.get())),
            "{chosen:?}"
        );
        let req = Request {
            count: 4,
            min: 4,
            block_bytes: 1 << 20,
            exclude: &[BlockServerId(3)],
        };
        let err = choose(&nodes, &req, &mut rng).expect_err("only 3 usable");
        assert_eq!(err.usable, 3);
        assert_eq!(err.registered, 6);
    }

    #[test]
    fn a_small_cluster_gets_fewer_replicas_but_never_fewer_than_the_minimum() {
        let nodes = cluster(2, 1);
        let mut rng = StdRng::seed_from_u64(5);
        let req = Request {
            count: 3,
            min: 1,
            block_bytes: 1,
            exclude: &[],
        };
        assert_eq!(choose(&nodes, &req, &mut rng).expect("placement").len(), 2);
        let req = Request {
            count: 9,
            min: 9,
            block_bytes: 1,
            exclude: &[],
        };
        assert!(choose(&nodes, &req, &mut rng).is_err());
    }
}
