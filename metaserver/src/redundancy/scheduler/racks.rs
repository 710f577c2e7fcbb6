//! The servers as the scheduler plans on them: where each is (rack and datacenter, as
//! numbers), the servers of each rack, and how many in each rack and datacenter are live and
//! busy. Built from one registry snapshot and the budgets in force, and kept by the
//! scheduler while both stay the same (at most [`SNAPSHOT_MAX_AGE`]): a heartbeat's
//! planning reads it instead of walking every server.
//!
//! [`SNAPSHOT_MAX_AGE`]: crate::registry::SNAPSHOT_MAX_AGE

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use raftfs_core::id::BlockServerId;
use raftfs_core::reconstruction::BlockSource;

use crate::namespace::throttle::ThrottleSettings;
use crate::registry::{NodeView, Replica};

/// Racks and datacenters of the registered servers.
#[derive(Debug)]
pub(super) struct RackMap {
    pub(super) nodes: Arc<[NodeView]>,
    /// Whether `nodes` is in id order (the registry's is): lookups by id are then a binary
    /// search; lookups per copy and candidate were linear.
    sorted: bool,
    /// The rack and datacenter of each of `nodes` (same positions), as numbers: distances
    /// were string compares and map lookups, most of a heartbeat's planning.
    pub(super) places: Vec<Place>,
    /// Each rack's servers (positions in `nodes`, in node order, by rack number): a search
    /// for a target walks racks, not servers.
    pub(super) by_rack: Vec<Vec<usize>>,
    datacenters: HashMap<String, u32>,
    /// Racks with a server that takes new blocks: what a group can spread over.
    pub(super) live_racks: usize,
    /// Servers being decommissioned (their copies are leaving), found once per map rather
    /// than once per copy and candidate.
    draining: BTreeSet<BlockServerId>,
}

/// A server's rack and datacenter, numbered within one [`RackMap`] (no datacenter: none
/// mapped for its rack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    pub(super) rack: u32,
    pub(super) datacenter: Option<u32>,
}

/// Of each rack and datacenter (by number), the live servers, and those carrying work of
/// another active (their xmits are more than this active's tasks on them weigh: another
/// nameservice's rebuilds, whose reads this active cannot see).
#[derive(Debug, Default)]
pub(super) struct Working {
    live_by_rack: Vec<u64>,
    foreign_by_rack: Vec<u64>,
    live_by_datacenter: Vec<u64>,
    foreign_by_datacenter: Vec<u64>,
    /// The live servers carrying another active's work.
    pub(super) foreign: BTreeSet<BlockServerId>,
}

impl Working {
    /// Live servers in rack `rack`, and those carrying another active's work.
    pub(super) fn in_rack(&self, rack: u32) -> (u64, u64) {
        let at = rack as usize;
        (
            self.live_by_rack.get(at).copied().unwrap_or(0),
            self.foreign_by_rack.get(at).copied().unwrap_or(0),
        )
    }

    /// As [`Self::in_rack`], for datacenter `datacenter`.
    pub(super) fn in_datacenter(&self, datacenter: u32) -> (u64, u64) {
        let at = datacenter as usize;
        (
            self.live_by_datacenter.get(at).copied().unwrap_or(0),
            self.foreign_by_datacenter.get(at).copied().unwrap_or(0),
        )
    }
}

impl RackMap {
    pub(super) fn new(nodes: Arc<[NodeView]>, throttle: &ThrottleSettings) -> Self {
        let mut racks: HashMap<String, u32> = HashMap::new();
        let mut datacenters: HashMap<String, u32> = HashMap::new();
        let mut by_rack: Vec<Vec<usize>> = Vec::new();
        let mut places = Vec::with_capacity(nodes.len());
        for (at, n) in nodes.iter().enumerate() {
            let next = racks.len() as u32;
            let rack = *racks.entry(n.rack.clone()).or_insert(next);
            if rack == next {
                by_rack.push(Vec::new());
            }
            if let Some(members) = by_rack.get_mut(rack as usize) {
                members.push(at);
            }
            let datacenter = throttle.racks.get(&n.rack).map(|dc| {
                let next = datacenters.len() as u32;
                *datacenters.entry(dc.clone()).or_insert(next)
            });
            places.push(Place { rack, datacenter });
        }
        let live_racks = by_rack
            .iter()
            .filter(|members| {
                members
                    .iter()
                    .any(|i| nodes.get(*i).is_some_and(NodeView::takes_new_blocks))
            })
            .count();
        let draining = nodes
            .iter()
            .filter(|n| n.admin == raftfs_core::namespace::admin_state::Admin::Decommissioning)
            .map(|n| n.id)
            .collect();
        Self {
            sorted: nodes.is_sorted_by_key(|n| n.id),
            nodes,
            places,
            by_rack,
            datacenters,
            live_racks,
            draining,
        }
    }

    /// The number of datacenter `name` (none: no registered server is in it).
    pub(super) fn datacenter_number(&self, name: &str) -> Option<u32> {
        self.datacenters.get(name).copied()
    }

    /// Who is live where, and who carries another active's work: a server whose xmits
    /// are more than `own(id)`, the weight of this active's tasks on it.
    pub(super) fn working(&self, own: impl Fn(BlockServerId) -> u32) -> Working {
        let racks = self.by_rack.len();
        let datacenters = self.datacenters.len();
        let mut w = Working {
            live_by_rack: vec![0; racks],
            foreign_by_rack: vec![0; racks],
            live_by_datacenter: vec![0; datacenters],
            foreign_by_datacenter: vec![0; datacenters],
            foreign: BTreeSet::new(),
        };
        for (n, p) in self.nodes.iter().zip(&self.places) {
            if !n.live {
                continue;
            }
            let foreign = n.storage.xmits_in_progress > own(n.id);
            let rack = p.rack as usize;
            bump(&mut w.live_by_rack, rack, true);
            bump(&mut w.foreign_by_rack, rack, foreign);
            if let Some(dc) = p.datacenter {
                bump(&mut w.live_by_datacenter, dc as usize, true);
                bump(&mut w.foreign_by_datacenter, dc as usize, foreign);
            }
            if foreign {
                w.foreign.insert(n.id);
            }
        }
        w
    }

    /// The position of server `id` in `nodes`.
    pub(super) fn position(&self, id: BlockServerId) -> Option<usize> {
        if self.sorted {
            self.nodes.binary_search_by_key(&id, |n| n.id).ok()
        } else {
            self.nodes.iter().position(|n| n.id == id)
        }
    }

    /// Where server `id` is.
    pub(super) fn place(&self, id: BlockServerId) -> Option<Place> {
        self.position(id).and_then(|i| self.places.get(i).copied())
    }

    /// Whether `node` is being decommissioned (its copies are leaving).
    pub(super) fn draining(&self, node: BlockServerId) -> bool {
        self.draining.contains(&node)
    }

    pub(super) fn node(&self, id: BlockServerId) -> Option<&NodeView> {
        self.position(id).and_then(|i| self.nodes.get(i))
    }

    pub(super) fn rack_of(&self, node: BlockServerId) -> Option<u32> {
        self.place(node).map(|p| p.rack)
    }

    /// 0 within a rack, 1 across racks of a datacenter (or of racks mapped to none), 2
    /// across datacenters.
    pub(super) fn distance(a: Place, b: Place) -> u32 {
        if a.rack == b.rack {
            return 0;
        }
        match (a.datacenter, b.datacenter) {
            (Some(x), Some(y)) if x != y => 2,
            _ => 1,
        }
    }

    /// [`Self::distance`] between two registered servers (1 when either is unknown).
    pub(super) fn distance_between(&self, a: BlockServerId, b: BlockServerId) -> u32 {
        match (self.place(a), self.place(b)) {
            (Some(a), Some(b)) => Self::distance(a, b),
            _ => 1,
        }
    }

    /// Of an erasure-coded group (`needed` > 1), a readable copy of the lost block itself: on a
    /// server being decommissioned or in maintenance, whose copy no longer counts. It is
    /// copied rather than decoded, one block read instead of k (HDFS likewise copies a
    /// draining DataNode's internal blocks); the nearest to `target` first.
    fn copy_of(
        &self,
        replicas: &[Replica],
        lost: u32,
        needed: usize,
        target: Option<&NodeView>,
    ) -> Option<BlockSource> {
        if needed <= 1 {
            return None;
        }
        replicas
            .iter()
            .filter(|r| r.index == lost)
            .filter_map(|r| self.node(r.node).filter(|n| n.live))
            .min_by_key(|n| {
                (
                    target.map_or(0, |t| self.distance_between(n.id, t.id)),
                    n.storage.xmits_in_progress,
                    n.id,
                )
            })
            .map(|n| BlockSource {
                index: lost,
                node: n.id,
                addr: n.addr.clone(),
                rack: n.rack.clone(),
            })
    }

    /// `needed` good copies of distinct other internal blocks, chosen at random (the
    /// rack-blind baseline).
    pub(super) fn pick_random_sources(
        &self,
        replicas: &[Replica],
        empty: &[u32],
        lost: u32,
        needed: usize,
        rng: &mut impl rand::Rng,
    ) -> Option<Vec<BlockSource>> {
        use rand::seq::SliceRandom;
        if let Some(copy) = self.copy_of(replicas, lost, needed, None) {
            return Some(vec![copy]);
        }
        let mut shuffled: Vec<&Replica> = replicas
            .iter()
            .filter(|r| r.index != lost || needed == 1)
            .collect();
        shuffled.shuffle(rng);
        let mut seen = BTreeSet::new();
        let mut out: Vec<BlockSource> = Vec::new();
        for index in empty {
            if out.len() < needed && seen.insert(*index) {
                out.push(BlockSource::zeros(*index, String::new()));
            }
        }
        for r in shuffled {
            if out.len() == needed {
                break;
            }
            let Some(n) = self.node(r.node).filter(|n| n.live) else {
                continue;
            };
            if needed > 1 && !seen.insert(r.index) {
                continue;
            }
            out.push(BlockSource {
                index: r.index,
                node: n.id,
                addr: n.addr.clone(),
                rack: n.rack.clone(),
            });
        }
        (out.len() == needed).then_some(out)
    }

    /// `needed` good copies of distinct other internal blocks, nearest to `target` first.
    pub(super) fn pick_sources(
        &self,
        replicas: &[Replica],
        empty: &[u32],
        lost: u32,
        needed: usize,
        target: &NodeView,
    ) -> Option<Vec<BlockSource>> {
        if let Some(copy) = self.copy_of(replicas, lost, needed, Some(target)) {
            return Some(vec![copy]);
        }
        let here = self.place(target.id);
        let mut candidates: Vec<(u32, &NodeView, u32)> = replicas
            .iter()
            .filter(|r| r.index != lost || needed == 1)
            .filter_map(|r| {
                let i = self.position(r.node)?;
                let n = self.nodes.get(i).filter(|n| n.live)?;
                let distance = match (self.places.get(i), here) {
                    (Some(a), Some(b)) => Self::distance(*a, b),
                    _ => 1,
                };
                Some((distance, n, r.index))
            })
            .collect();
        // Nearest first; among equals, the least busy server, then the lowest index (data
        // blocks before parity: no decoding work wasted on parity when data is there).
        candidates.sort_by_key(|(d, n, i)| (*d, n.storage.xmits_in_progress, *i, n.id));
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for index in empty {
            if out.len() < needed && seen.insert(*index) {
                out.push(BlockSource::zeros(*index, target.rack.clone()));
            }
        }
        for (_, n, index) in candidates {
            if out.len() == needed {
                break;
            }
            if needed > 1 && !seen.insert(index) {
                continue;
            }
            out.push(BlockSource {
                index,
                node: n.id,
                addr: n.addr.clone(),
                rack: n.rack.clone(),
            });
        }
        (out.len() == needed).then_some(out)
    }
}

fn bump(counts: &mut [u64], at: usize, yes: bool) {
    if yes && let Some(c) = counts.get_mut(at) {
        *c += 1;
    }
}
