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

/// Chooses the servers of one group among `nodes` (a [`Placer`] made for this call).
pub fn choose(
    nodes: &[NodeView],
    req: &Request<'_>,
    rng: &mut impl Rng,
) -> Result<Vec<BlockServerId>, PlacementError> {
    Placer::new(nodes).choose(req, rng)
}

/// Attempts at a random server of a rack before the rack is given up for this group (its
/// servers are full or excluded), in the sampled path of [`Placer::choose`].
const TRIES_PER_RACK: usize = 8;

/// The servers that take new blocks, by rack, made once for many groups: choosing among
/// every server was O(servers) a group (at 10,000 servers, 100 million groups would take
/// days to place); a group on more racks than it has blocks is placed in O(blocks).
#[derive(Debug, Clone)]
pub struct Placer {
    ids: Vec<BlockServerId>,
    /// Where each server is in `ids`.
    at: std::collections::HashMap<BlockServerId, usize>,
    available: Vec<u64>,
    /// Positions in `ids` of each rack's servers, racks in name order.
    racks: Vec<Vec<usize>>,
    registered: usize,
}

impl Placer {
    /// Of `nodes`, those that take new blocks and have a working volume.
    pub fn new(nodes: &[NodeView]) -> Self {
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let (mut ids, mut available) = (Vec::new(), Vec::new());
        for n in nodes {
            if n.takes_new_blocks() && n.storage.failed_volumes < n.storage.volumes.max(1) {
                by_name.entry(n.rack.as_str()).or_default().push(ids.len());
                ids.push(n.id);
                available.push(n.storage.available);
            }
        }
        Self {
            at: ids.iter().enumerate().map(|(i, id)| (*id, i)).collect(),
            ids,
            available,
            racks: by_name.into_values().collect(),
            registered: nodes.len(),
        }
    }

    /// Records `bytes` placed on `id` (a simulator placing many groups at once).
    pub fn charge(&mut self, id: BlockServerId, bytes: u64) {
        if let Some(at) = self.at.get(&id)
            && let Some(a) = self.available.get_mut(*at)
        {
            *a = a.saturating_sub(bytes);
        }
    }

    fn usable(&self, at: usize, req: &Request<'_>) -> bool {
        self.available
            .get(at)
            .is_some_and(|a| *a >= req.block_bytes)
            && self.ids.get(at).is_some_and(|id| !req.exclude.contains(id))
    }

    /// The servers of one group: every internal block on a distinct server, racks as evenly
    /// used as the usable servers allow, the least used racks and their servers chosen at
    /// random.
    pub fn choose(
        &self,
        req: &Request<'_>,
        rng: &mut impl Rng,
    ) -> Result<Vec<BlockServerId>, PlacementError> {
        if self.racks.len() > req.count
            && let Some(chosen) = self.sampled(req, rng)
        {
            return Ok(chosen);
        }
        self.exact(req, rng)
    }

    /// With more racks than blocks, each block's rack is one not used yet: racks drawn at
    /// random, then a random server of each until a usable one (as [`Self::exact`] would
    /// choose, without listing every server; a rack whose servers are nearly all full or
    /// excluded may be passed over). None when too many racks had nothing usable.
    fn sampled(&self, req: &Request<'_>, rng: &mut impl Rng) -> Option<Vec<BlockServerId>> {
        let mut tried: Vec<usize> = Vec::with_capacity(req.count * 2);
        let mut chosen = Vec::with_capacity(req.count);
        while chosen.len() < req.count {
            if tried.len() >= self.racks.len() || tried.len() >= req.count * 4 {
                return None;
            }
            let rack = rng.random_range(0..self.racks.len());
            if tried.contains(&rack) {
                continue;
            }
            tried.push(rack);
            let members = self.racks.get(rack)?;
            let found = (0..TRIES_PER_RACK)
                .filter_map(|_| members.choose(rng).copied())
                .find(|at| self.usable(*at, req));
            if let Some(at) = found {
                chosen.push(*self.ids.get(at)?);
            }
        }
        Some(chosen)
    }

    /// The least used racks that still have an unchosen usable server, one at random, then
    /// one of those servers at random, until the group has its blocks.
    fn exact(
        &self,
        req: &Request<'_>,
        rng: &mut impl Rng,
    ) -> Result<Vec<BlockServerId>, PlacementError> {
        let by_rack: Vec<Vec<usize>> = self
            .racks
            .iter()
            .map(|members| {
                members
                    .iter()
                    .copied()
                    .filter(|at| self.usable(*at, req))
                    .collect::<Vec<_>>()
            })
            .filter(|members| !members.is_empty())
            .collect();
        let usable: usize = by_rack.iter().map(Vec::len).sum();
        let err = || PlacementError {
            wanted: req.min,
            bytes: req.block_bytes,
            usable,
            registered: self.registered,
        };
        if usable < req.min {
            return Err(err());
        }
        let mut chosen: Vec<usize> = Vec::with_capacity(req.count);
        let mut per_rack = vec![0usize; by_rack.len()];
        while chosen.len() < req.count {
            // Racks that still have an unchosen server, least used first; ties broken at
            // random so that load spreads over racks of equal use.
            let mut candidates: Vec<(usize, usize)> = by_rack
                .iter()
                .enumerate()
                .filter(|(_, ns)| ns.iter().any(|n| !chosen.contains(n)))
                .map(|(r, _)| (r, per_rack.get(r).copied().unwrap_or(0)))
                .collect();
            let Some(fewest) = candidates.iter().map(|(_, c)| *c).min() else {
                break;
            };
            candidates.retain(|(_, c)| *c == fewest);
            let Some((rack, _)) = candidates.choose(rng).copied() else {
                break;
            };
            let free: Vec<usize> = by_rack
                .get(rack)
                .map(|ns| ns.iter().copied().filter(|n| !chosen.contains(n)).collect())
                .unwrap_or_default();
            let Some(at) = free.choose(rng) else {
                break;
            };
            chosen.push(*at);
            if let Some(c) = per_rack.get_mut(rack) {
                *c += 1;
            }
        }
        if chosen.len() < req.min {
            return Err(err());
        }
        Ok(chosen
            .iter()
            .filter_map(|at| self.ids.get(*at).copied())
            .collect())
    }
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

    /// With more racks than blocks, groups are placed without listing every server: still
    /// one rack per block, never an excluded or full server, every rack used over many
    /// groups; and when most racks have no room, the exact way finds the few that do.
    #[test]
    fn many_racks_are_sampled_and_a_full_fleet_falls_back_to_the_exact_way() {
        let mut nodes = cluster(100, 20);
        let mut rng = StdRng::seed_from_u64(9);
        let exclude: Vec<BlockServerId> = (1..=50).map(BlockServerId).collect();
        nodes[60].storage.available = 0;
        let placer = Placer::new(&nodes);
        let mut racks_used = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let req = Request {
                count: 9,
                min: 9,
                block_bytes: 1 << 20,
                exclude: &exclude,
            };
            let chosen = placer.choose(&req, &mut rng).expect("placement");
            let mut racks: Vec<u64> = chosen.iter().map(|id| (id.get() - 1) % 20).collect();
            racks.sort_unstable();
            racks.dedup();
            assert_eq!(racks.len(), 9, "one rack per block: {chosen:?}");
            assert!(
                chosen.iter().all(|id| id.get() > 50 && id.get() != 61),
                "{chosen:?}"
            );
            racks_used.extend(racks);
        }
        assert_eq!(racks_used.len(), 20);
        // Room on 3 racks of 20 only.
        for n in nodes.iter_mut() {
            if (n.id.get() - 1) % 20 >= 3 {
                n.storage.available = 0;
            }
        }
        let placer = Placer::new(&nodes);
        for _ in 0..50 {
            let req = Request {
                count: 3,
                min: 3,
                block_bytes: 1 << 20,
                exclude: &[],
            };
            let chosen = placer.choose(&req, &mut rng).expect("placement");
            let mut racks: Vec<u64> = chosen.iter().map(|id| (id.get() - 1) % 20).collect();
            racks.sort_unstable();
            assert_eq!(racks, vec![0, 1, 2]);
        }
    }
}
