//! The blockservers as this metaserver knows them: who registered, their last heartbeat and
//! storage, and which internal blocks each reported. All of it is soft state (DESIGN §6):
//! blockservers register with and report to every metaserver, so that a standby or an
//! observer that becomes the active, or a metaserver that restarted, rebuilds it from the
//! reports within a heartbeat or two; nothing here is journaled.
//!
//! A full block report may arrive in several parts (a large report in one RPC is a known
//! NameNode pain); the node's block set is replaced only when every part of one report has
//! arrived, so that a half-received report never makes blocks look lost.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftfs_runtime::Clock;

use raftfs_core::id::BlockServerId;
use raftfs_core::namespace::admin_state::{Admin, AdminState};

use raftfs_core::policy::MAX_BLOCK_SIZE;

use crate::namespace::blocks::{Generation, GroupId};

mod block_set;
use block_set::BlockSet;

/// How old the view of the servers that heartbeat replies plan on may be
/// ([`Registry::snapshot`]). Building it is O(servers) (a copy of every server's view): done
/// at every heartbeat, 10,000 servers beating once a second made that 10,000 times a second.
/// Liveness, storage and xmits in it are this much behind at most; registrations, admin
/// changes and a dead server's return are seen at once.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(100);

/// Every registered server as of one moment, shared by the heartbeats that plan on it.
#[derive(Debug)]
pub struct Snapshot {
    /// In id order.
    pub nodes: Arc<[NodeView]>,
    /// Which snapshot this is, unique in the process (the scheduler keys what it derives
    /// from the servers by it).
    pub number: u64,
    taken: Instant,
    version: u64,
    placer: std::sync::OnceLock<crate::placement::Placer>,
}

impl Snapshot {
    /// Placement over these servers, made at its first use (`AddBlock`s between two
    /// snapshots share it).
    pub fn placer(&self) -> &crate::placement::Placer {
        self.placer
            .get_or_init(|| crate::placement::Placer::new(&self.nodes))
    }
}

/// Internal block positions a group can have (RS-10-4 has 14); a report of a higher
/// position is refused whole (no block of that position can exist, and a peer reporting
/// many of one group would make its copy list long).
pub const MAX_INDEX: u32 = 32;

/// Refuses a report that names a block no group can have: a position past [`MAX_INDEX`], a
/// group id no active gives out ([`block_set::GROUP_ID_LIMIT`]), a length past
/// [`MAX_BLOCK_SIZE`] (what lets the registry keep a copy in 16 bytes).
fn check_reported(blocks: &[Reported]) -> Result<(), RegistryError> {
    match blocks.iter().find_map(|b| invalid(b).map(|why| (b, why))) {
        Some((b, why)) => Err(RegistryError::Invalid(format!(
            "block {} of group {}: {why}",
            b.index, b.group
        ))),
        None => Ok(()),
    }
}

fn invalid(b: &Reported) -> Option<String> {
    if b.index >= MAX_INDEX {
        return Some(format!("positions stop at {}", MAX_INDEX - 1));
    }
    if !block_set::fits(b.group, b.index) {
        return Some(format!(
            "group ids stop at {}",
            block_set::GROUP_ID_LIMIT - 1
        ));
    }
    (b.length > MAX_BLOCK_SIZE)
        .then(|| format!("{} bytes: blocks stop at {MAX_BLOCK_SIZE}", b.length))
}

/// Why the registry refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The node never registered here (or this metaserver restarted): it must register and
    /// send a full report.
    #[error("blockserver {0} is not registered with this metaserver")]
    UnknownNode(BlockServerId),
    #[error("invalid blockserver registration: {0}")]
    Invalid(String),
}

/// Storage figures a blockserver sends with every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Storage {
    pub capacity: u64,
    pub used: u64,
    pub available: u64,
    pub volumes: u32,
    pub failed_volumes: u32,
    pub xmits_in_progress: u32,
    /// Bytes of this nameservice's pool (DESIGN §10); `used` is every pool's.
    pub pool_used: u64,
}

/// One internal block as a blockserver reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reported {
    pub group: GroupId,
    pub index: u32,
    pub length: u64,
    /// The group generation the copy is stamped with.
    pub generation: Generation,
}

/// A copy of an internal block: which node has it, how long it is there, and at which
/// generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    pub index: u32,
    pub node: BlockServerId,
    pub length: u64,
    pub generation: Generation,
}

/// What a node reported of one internal block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Copy {
    length: u64,
    generation: Generation,
}

impl From<&Reported> for Copy {
    fn from(r: &Reported) -> Self {
        Copy {
            length: r.length,
            generation: r.generation,
        }
    }
}

/// What readers and placement need to know of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: BlockServerId,
    pub addr: String,
    pub rack: String,
    pub storage: Storage,
    pub live: bool,
    pub blocks: usize,
    /// When it last registered (this server's clock, ms since the epoch): a new value means
    /// it registered again (restarted).
    pub registered_ms: u64,
    /// Whether its full report since that registration is in: `blocks` is complete.
    pub fully_reported: bool,
    /// In service, decommissioning or in maintenance (the journaled state, at this time).
    pub admin: Admin,
    /// The journaled state, when out of service (its times).
    pub admin_state: Option<AdminState>,
    /// Of a decommissioning server: its internal blocks that some group still needs, as the
    /// last whole scan pass since the decommission began counted them (none: no such pass
    /// ended yet). 0 is *decommissioned*: it may be stopped.
    pub drain_remaining: Option<u64>,
}

impl NodeView {
    /// Whether new internal blocks (writes, rebuilds) may go to the server.
    pub fn takes_new_blocks(&self) -> bool {
        self.live && self.admin.takes_new_blocks()
    }

    /// Decommissioned: draining, and the last pass found nothing that still needs it.
    pub fn decommissioned(&self) -> bool {
        self.admin == Admin::Decommissioning && self.drain_remaining == Some(0)
    }
}

#[derive(Debug)]
struct PartialReport {
    id: u64,
    parts: u32,
    received: BTreeSet<u32>,
    blocks: Vec<Reported>,
}

#[derive(Debug)]
struct Node {
    addr: String,
    rack: String,
    storage: Storage,
    last_heartbeat: Instant,
    /// The (group, index) of every copy it reported (what it holds of each is in
    /// [`Locations`]).
    blocks: BlockSet,
    partial: Option<PartialReport>,
    /// Blocks of deleted groups to tell the node to remove in the next heartbeat reply,
    /// with the generation they were reported at (the node keeps a copy stamped newer).
    to_delete: BTreeSet<(GroupId, u32, Generation)>,
    /// When its last registration's first full report was complete: until then its block
    /// list is what an earlier life reported (or nothing), and a drain cannot be judged.
    fully_reported: Option<Instant>,
    /// When its last registration came, in ms since the epoch.
    registered_ms: u64,
}

/// One reported copy, kept under its group in [`Locations`]: 16 bytes (as a 32-byte record,
/// an RS-6-3 group's nine copies took 288, with the node's set of them most of the
/// registry's 490 bytes a group, measured by the fleet simulator at 2 million groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Located {
    node: BlockServerId,
    /// At most [`MAX_BLOCK_SIZE`] (2 GiB): longer reports are refused.
    length: u32,
    /// Below [`MAX_INDEX`].
    index: u8,
    /// Stamped otherwise than the group's other copies: its generation is in
    /// [`Locations::odd`].
    odd: bool,
}

/// A group's reported copies.
#[derive(Debug)]
struct Copies {
    /// The generation of the copies that are not `odd`.
    generation: Generation,
    /// Exactly as many as there are: doubling left an RS-6-3 group room for 16.
    list: Box<[Located]>,
}

/// A copy as the registry answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    node: BlockServerId,
    index: u32,
    copy: Copy,
}

/// Group -> every copy reported of it (which node, which internal block, its length and
/// generation), so that a group's copies are read from one place: the scan asked each
/// holder for each of the 32 positions a group can have, most of its cost (6–8 µs a group).
#[derive(Debug, Default)]
struct Locations {
    groups: HashMap<GroupId, Copies>,
    /// The generations of copies stamped otherwise than their group's others: a lease
    /// recovery restamps a group's copies one by one, a stale writer's copy stays behind.
    odd: HashMap<(GroupId, BlockServerId, u8), Generation>,
}

impl Locations {
    /// Records (or updates) `node`'s copy of internal block `index` of `group` (checked by
    /// [`check_reported`]).
    fn add(&mut self, group: GroupId, node: BlockServerId, index: u32, copy: Copy) {
        let (Ok(index), Ok(length)) = (u8::try_from(index), u32::try_from(copy.length)) else {
            return;
        };
        let odd = &mut self.odd;
        let copies = self.groups.entry(group).or_insert_with(|| Copies {
            generation: copy.generation,
            list: Box::default(),
        });
        if copies.list.is_empty() {
            copies.generation = copy.generation;
        } else if copy.generation > copies.generation {
            // The newest stamp becomes the usual one (a recovery restamps every copy).
            let (old, new) = (copies.generation, copy.generation);
            for c in copies.list.iter_mut() {
                let key = (group, c.node, c.index);
                if !c.odd {
                    odd.insert(key, old);
                    c.odd = true;
                } else if odd.get(&key) == Some(&new) {
                    odd.remove(&key);
                    c.odd = false;
                }
            }
            copies.generation = new;
        }
        let is_odd = copy.generation != copies.generation;
        if is_odd {
            odd.insert((group, node, index), copy.generation);
        } else {
            odd.remove(&(group, node, index));
        }
        let record = Located {
            node,
            length,
            index,
            odd: is_odd,
        };
        match copies
            .list
            .iter_mut()
            .find(|c| c.node == node && c.index == index)
        {
            Some(c) => *c = record,
            None => {
                let mut list = std::mem::take(&mut copies.list).into_vec();
                list.reserve_exact(1);
                list.push(record);
                copies.list = list.into_boxed_slice();
            }
        }
    }

    fn remove(&mut self, group: GroupId, node: BlockServerId, index: u32) {
        let Ok(index) = u8::try_from(index) else {
            return;
        };
        let Some(copies) = self.groups.get_mut(&group) else {
            return;
        };
        let Some(at) = copies
            .list
            .iter()
            .position(|c| c.node == node && c.index == index)
        else {
            return;
        };
        let mut list = std::mem::take(&mut copies.list).into_vec();
        if list.remove(at).odd {
            self.odd.remove(&(group, node, index));
        }
        if list.is_empty() {
            self.groups.remove(&group);
        } else {
            copies.list = list.into_boxed_slice();
        }
    }

    /// Every copy of `group`.
    fn of(&self, group: GroupId) -> impl Iterator<Item = Held> + '_ {
        self.groups
            .get(&group)
            .into_iter()
            .flat_map(move |copies| copies.list.iter().map(move |c| self.held(group, copies, c)))
    }

    fn held(&self, group: GroupId, copies: &Copies, c: &Located) -> Held {
        let generation = if c.odd {
            self.odd
                .get(&(group, c.node, c.index))
                .copied()
                .unwrap_or(copies.generation)
        } else {
            copies.generation
        };
        Held {
            node: c.node,
            index: u32::from(c.index),
            copy: Copy {
                length: u64::from(c.length),
                generation,
            },
        }
    }

    /// Every copy of every group.
    fn all(&self) -> impl Iterator<Item = (GroupId, Held)> + '_ {
        self.groups.iter().flat_map(move |(group, copies)| {
            copies
                .list
                .iter()
                .map(move |c| (*group, self.held(*group, copies, c)))
        })
    }

    /// `node`'s copy of internal block `index` of `group`.
    fn copy(&self, group: GroupId, node: BlockServerId, index: u32) -> Option<Copy> {
        self.of(group)
            .find(|c| c.node == node && c.index == index)
            .map(|c| c.copy)
    }
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<BlockServerId, Node>,
    /// Where each group's reported copies are.
    by_group: Locations,
    /// Internal blocks reported corrupt: never handed to readers.
    corrupt: HashSet<(GroupId, u32, BlockServerId)>,
    /// The journaled admin states of the servers out of service (DESIGN §11), as the
    /// freshest read of them (a scan round, an `AddBlock`, `blockserver list`) found them,
    /// and the applied index that read saw at least.
    admin: BTreeMap<BlockServerId, AdminState>,
    admin_index: u64,
    /// Decommissioning servers -> (the decommission's start, its blocks still needed), from
    /// the last whole pass that judged it.
    drain: BTreeMap<BlockServerId, (u64, u64)>,
}

/// Most block deletions one heartbeat reply carries (about 20 bytes each on the wire: well
/// under the 4 MiB a blockserver decodes, beside the reply's tasks); the rest wait for the
/// next heartbeats.
pub const MAX_DELETES_PER_HEARTBEAT: usize = 20_000;

/// The registry of one metaserver.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// A node silent for this long is dead: no new blocks go to it, readers are not sent to it.
    dead_after: Duration,
    /// Live copies (beyond those a read needs, plus one) every group keeps while servers
    /// holding its other copies are in maintenance (HDFS's
    /// `dfs.namenode.maintenance.replication.min`).
    maintenance_min_live: usize,
    /// Liveness and report times are judged by this clock (the system's, or a simulator's).
    clock: Clock,
    /// The last [`Snapshot`], reused while younger than [`SNAPSHOT_MAX_AGE`] and no change it
    /// must show (`version`) happened since. Its lock is taken before `inner`'s (while a
    /// snapshot is made), never after.
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// Bumped by every change a snapshot must show at once: an atomic, so that the changes,
    /// made under `inner`'s lock, never take the snapshot's.
    version: AtomicU64,
}

/// Milliseconds since the epoch by this server's clock (the time admin states are judged at).
pub fn now_ms() -> u64 {
    raftfs_runtime::simulation::now_ms()
}

impl Registry {
    pub fn new(dead_after: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            dead_after,
            maintenance_min_live: 1,
            clock: Clock::System,
            snapshot: Mutex::new(None),
            version: AtomicU64::new(0),
        }
    }

    /// On `clock` instead of the system's (the fleet simulator's manual clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock this registry judges liveness by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// How long a server may be silent before it is dead.
    pub fn dead_after(&self) -> Duration {
        self.dead_after
    }

    /// With `n` as the live copies a group keeps while others are in maintenance (at least 1).
    pub fn with_maintenance_min_live(mut self, n: usize) -> Self {
        self.maintenance_min_live = n.max(1);
        self
    }

    /// See [`Self::with_maintenance_min_live`].
    pub fn maintenance_min_live(&self) -> usize {
        self.maintenance_min_live
    }

    /// Replaces the admin states with the journaled ones, as a read that saw at least
    /// applied index `index` found them; an older read than the last one changes nothing
    /// (reads run concurrently). Drain progress of servers no longer decommissioning, or
    /// decommissioning since another time (recommissioned and decommissioned again), is
    /// forgotten.
    pub fn set_admin(&self, index: u64, states: BTreeMap<BlockServerId, AdminState>) {
        let mut inner = self.lock();
        if index < inner.admin_index {
            return;
        }
        inner.admin_index = index;
        inner.drain.retain(|id, (since, _)| {
            matches!(
                states.get(id),
                Some(AdminState::Decommissioning { since_ms }) if since_ms == since
            )
        });
        if inner.admin != states {
            inner.admin = states;
            self.changed();
        }
    }

    /// The servers being decommissioned that a pass beginning now can judge: live, fully
    /// reported since they last registered; with when their decommission began.
    pub fn drains_to_judge(&self) -> BTreeMap<BlockServerId, u64> {
        let inner = self.lock();
        let now = self.clock.now();
        inner
            .admin
            .iter()
            .filter_map(|(id, s)| match s {
                AdminState::Decommissioning { since_ms } => Some((*id, *since_ms)),
                AdminState::Maintenance { .. } => None,
            })
            .filter(|(id, _)| {
                inner.nodes.get(id).is_some_and(|n| {
                    n.fully_reported.is_some()
                        && now.duration_since(n.last_heartbeat) <= self.dead_after
                })
            })
            .collect()
    }

    /// Whether `id` has been live and fully reported since before `since` (a pass's start):
    /// what the pass saw of it is all it holds.
    pub fn steady_since(&self, id: BlockServerId, since: Instant) -> bool {
        let now = self.clock.now();
        self.lock().nodes.get(&id).is_some_and(|n| {
            n.fully_reported.is_some_and(|t| t <= since)
                && now.duration_since(n.last_heartbeat) <= self.dead_after
        })
    }

    /// Every server out of service now (a lapsed maintenance is service again).
    pub fn admin_now(&self) -> BTreeMap<BlockServerId, Admin> {
        let now = self.clock.now_ms();
        self.lock()
            .admin
            .iter()
            .map(|(id, s)| (*id, s.at(now)))
            .filter(|(_, a)| *a != Admin::InService)
            .collect()
    }

    /// Records what a whole scan pass found of the servers it judged: for each, when its
    /// decommission began and its blocks some group still needs (0: decommissioned). A
    /// server decommissioned since another time now is left alone.
    pub fn record_drain(&self, remaining: BTreeMap<BlockServerId, (u64, u64)>) {
        let mut inner = self.lock();
        for (id, (since, n)) in remaining {
            if matches!(
                inner.admin.get(&id),
                Some(AdminState::Decommissioning { since_ms }) if *since_ms == since
            ) && inner.drain.insert(id, (since, n)) != Some((since, n))
            {
                self.changed();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind, still consistent enough for
        // soft state that the next reports rewrite.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers (or re-registers, after a restart) node `id`. Its old block list is kept
    /// until its next full report replaces it.
    pub fn register(
        &self,
        id: BlockServerId,
        addr: &str,
        rack: &str,
        storage: Storage,
    ) -> Result<(), RegistryError> {
        if id == BlockServerId(0) {
            return Err(RegistryError::Invalid("node id 0 is reserved".into()));
        }
        if addr.is_empty() || rack.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "node {id}: address and rack must be set"
            )));
        }
        if rack.len() > raftfs_core::reconstruction::MAX_RACK_NAME {
            return Err(RegistryError::Invalid(format!(
                "node {id}: a rack name is at most {} bytes",
                raftfs_core::reconstruction::MAX_RACK_NAME
            )));
        }
        let mut inner = self.lock();
        let node = inner.nodes.entry(id).or_insert_with(|| Node {
            addr: String::new(),
            rack: String::new(),
            storage,
            last_heartbeat: self.clock.now(),
            blocks: BlockSet::default(),
            partial: None,
            to_delete: BTreeSet::new(),
            fully_reported: None,
            registered_ms: 0,
        });
        node.addr = addr.to_owned();
        node.rack = rack.to_owned();
        node.storage = storage;
        node.last_heartbeat = self.clock.now();
        node.partial = None;
        node.fully_reported = None;
        node.registered_ms = self.clock.now_ms();
        self.changed();
        Ok(())
    }

    /// Records a heartbeat; returns the blocks the node should delete (each up to the
    /// generation it was reported at).
    pub fn heartbeat(
        &self,
        id: BlockServerId,
        storage: Storage,
    ) -> Result<Vec<(GroupId, u32, Generation)>, RegistryError> {
        let mut inner = self.lock();
        let node = inner
            .nodes
            .get_mut(&id)
            .ok_or(RegistryError::UnknownNode(id))?;
        let now = self.clock.now();
        // Back from the dead, or volumes lost or added: placement must see it at once.
        if now.duration_since(node.last_heartbeat) > self.dead_after
            || (node.storage.volumes, node.storage.failed_volumes)
                != (storage.volumes, storage.failed_volumes)
        {
            self.changed();
        }
        node.storage = storage;
        node.last_heartbeat = now;
        // A bounded share per reply: a large delete queues millions, which in one reply
        // would exceed what the blockserver decodes and lose the reply's tasks with it.
        let mut out = Vec::with_capacity(node.to_delete.len().min(MAX_DELETES_PER_HEARTBEAT));
        while out.len() < MAX_DELETES_PER_HEARTBEAT {
            let Some(block) = node.to_delete.pop_first() else {
                break;
            };
            out.push(block);
        }
        Ok(out)
    }

    /// Applies an incremental report: `added` blocks (new or grown), `removed` ones gone.
    pub fn incremental(
        &self,
        id: BlockServerId,
        added: &[Reported],
        removed: &[Reported],
    ) -> Result<(), RegistryError> {
        check_reported(added)?;
        check_reported(removed)?;
        let mut inner = self.lock();
        let inner = &mut *inner;
        let node = inner
            .nodes
            .get_mut(&id)
            .ok_or(RegistryError::UnknownNode(id))?;
        for r in removed {
            node.blocks.remove(r.group, r.index);
            inner.corrupt.remove(&(r.group, r.index, id));
            inner.by_group.remove(r.group, id, r.index);
        }
        for r in added {
            node.blocks.insert(r.group, r.index);
            // A new copy where a corrupt one was (rewritten by reconstruction) is good again.
            inner.corrupt.remove(&(r.group, r.index, id));
            inner.by_group.add(r.group, id, r.index, Copy::from(r));
        }
        Ok(())
    }

    /// Records a copy lease recovery restamped on `id` (what its `RecoverBlock` answered),
    /// ahead of the node's own report: a copy reported corrupt stays so. Unknown nodes are
    /// left for their registration's full report.
    pub fn restamped(&self, id: BlockServerId, copy: Reported) {
        if let Some(why) = invalid(&copy) {
            tracing::warn!(node = %id, group = %copy.group, index = copy.index, %why, "restamped copy ignored");
            return;
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(node) = inner.nodes.get_mut(&id) {
            node.blocks.insert(copy.group, copy.index);
            inner
                .by_group
                .add(copy.group, id, copy.index, Copy::from(&copy));
        }
    }

    /// Receives part `part` of `parts` of full report `report_id`; when the last part
    /// arrives, replaces the node's blocks with the whole report. Returns whether it did.
    pub fn full_report_part(
        &self,
        id: BlockServerId,
        report_id: u64,
        part: u32,
        parts: u32,
        blocks: &[Reported],
    ) -> Result<bool, RegistryError> {
        if parts == 0 || part >= parts {
            return Err(RegistryError::Invalid(format!(
                "report part {part} of {parts}"
            )));
        }
        check_reported(blocks)?;
        let mut inner = self.lock();
        let inner = &mut *inner;
        let node = inner
            .nodes
            .get_mut(&id)
            .ok_or(RegistryError::UnknownNode(id))?;
        let fresh = !matches!(&node.partial, Some(p) if p.id == report_id && p.parts == parts);
        if fresh {
            node.partial = Some(PartialReport {
                id: report_id,
                parts,
                received: BTreeSet::new(),
                blocks: Vec::new(),
            });
        }
        let Some(partial) = node.partial.as_mut() else {
            return Ok(false);
        };
        if partial.received.insert(part) {
            partial.blocks.extend_from_slice(blocks);
        }
        if partial.received.len() < parts as usize {
            return Ok(false);
        }
        let Some(done) = node.partial.take() else {
            return Ok(false);
        };
        let old: Vec<(GroupId, u32)> = node.blocks.iter().collect();
        node.blocks = BlockSet::of(done.blocks.iter().map(|r| (r.group, r.index)));
        if node.fully_reported.is_none() {
            node.fully_reported = Some(self.clock.now());
            self.changed();
        }
        for (group, index) in old {
            inner.by_group.remove(group, id, index);
        }
        for r in &done.blocks {
            inner.by_group.add(r.group, id, r.index, Copy::from(r));
        }
        inner
            .corrupt
            .retain(|(g, i, n)| *n != id || node.blocks.contains(*g, *i));
        Ok(true)
    }

    /// Marks one copy corrupt: readers are no longer sent to it.
    pub fn mark_corrupt(&self, group: GroupId, index: u32, node: BlockServerId) {
        self.lock().corrupt.insert((group, index, node));
    }

    /// Queues the deletion of a block that is garbage at `generation` (the stamp it was
    /// reported with).
    pub fn queue_delete(
        &self,
        node: BlockServerId,
        group: GroupId,
        index: u32,
        generation: Generation,
    ) {
        if let Some(n) = self.lock().nodes.get_mut(&node) {
            n.to_delete.insert((group, index, generation));
        }
    }

    /// The good copies of `group`'s internal blocks on live nodes: not reported corrupt, and
    /// stamped `current` (the group's generation) or newer. An older copy was written before
    /// a lease recovery settled the group (a stale writer's, or one the recovery did not
    /// reach): never handed to readers nor counted; the garbage sweep removes it. A newer one
    /// was restamped by a recovery whose entry never committed (its bytes are those the
    /// writer sent; a later recovery stamps it again).
    pub fn replicas(&self, group: GroupId, current: Generation) -> Vec<Replica> {
        let now = self.clock.now();
        self.good_copies(group, current, |_, node| {
            now.duration_since(node.last_heartbeat) <= self.dead_after
        })
    }

    /// The good copies of `group` on servers that are down but in maintenance (`in_maintenance`):
    /// not readable now, yet counted as present while the group keeps its minimum of live
    /// copies (DESIGN §11).
    pub fn resting(
        &self,
        group: GroupId,
        current: Generation,
        in_maintenance: &BTreeMap<BlockServerId, Admin>,
    ) -> Vec<Replica> {
        let now = self.clock.now();
        self.good_copies(group, current, |id, node| {
            now.duration_since(node.last_heartbeat) > self.dead_after
                && in_maintenance.get(&id) == Some(&Admin::InMaintenance)
        })
    }

    /// The copies of `group` stamped `current` or newer, not reported corrupt, on the nodes
    /// `on` keeps; ordered by index, then node.
    fn good_copies(
        &self,
        group: GroupId,
        current: Generation,
        on: impl Fn(BlockServerId, &Node) -> bool,
    ) -> Vec<Replica> {
        let inner = self.lock();
        let mut out = Vec::new();
        for c in inner.by_group.of(group) {
            if c.copy.generation >= current
                && c.index < MAX_INDEX
                && inner.nodes.get(&c.node).is_some_and(|n| on(c.node, n))
                && (inner.corrupt.is_empty() || !inner.corrupt.contains(&(group, c.index, c.node)))
            {
                out.push(Replica {
                    index: c.index,
                    node: c.node,
                    length: c.copy.length,
                    generation: c.copy.generation,
                });
            }
        }
        out.sort_by_key(|r| (r.index, r.node));
        out
    }

    /// Every copy some node reported: (group, index, node, its generation).
    pub fn reported_blocks(&self) -> Vec<(GroupId, u32, BlockServerId, Generation)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (group, c) in inner.by_group.all() {
            out.push((group, c.index, c.node, c.copy.generation));
        }
        out.sort_unstable();
        out
    }

    /// Of the `(index, node)` copies a group was written to, those on live nodes that have
    /// not reported them yet, or only at a generation older than `current` (and were not
    /// reported corrupt): a reader right after the write, or right after a lease recovery
    /// restamped the copies, may try them before the incremental reports arrive (a copy
    /// that really is stale, the blockserver refuses to serve).
    pub fn unreported(
        &self,
        group: GroupId,
        targets: &[(u32, BlockServerId)],
        current: Generation,
    ) -> Vec<(u32, BlockServerId)> {
        let inner = self.lock();
        let now = self.clock.now();
        targets
            .iter()
            .copied()
            .filter(|(index, id)| {
                inner.nodes.get(id).is_some_and(|n| {
                    now.duration_since(n.last_heartbeat) <= self.dead_after
                        && inner
                            .by_group
                            .copy(group, *id, *index)
                            .is_none_or(|c| c.generation < current)
                }) && !inner.corrupt.contains(&(group, *index, *id))
            })
            .collect()
    }

    /// The registered nodes that are dead now (silent for longer than `dead-after`).
    pub fn dead_nodes(&self) -> BTreeSet<BlockServerId> {
        let now = self.clock.now();
        self.lock()
            .nodes
            .iter()
            .filter(|(_, n)| now.duration_since(n.last_heartbeat) > self.dead_after)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The groups of which one of `nodes` reported a block, in id order: what the death of
    /// those nodes may have left short of copies.
    pub fn groups_on(&self, nodes: &BTreeSet<BlockServerId>) -> Vec<GroupId> {
        let inner = self.lock();
        let mut out: Vec<GroupId> = nodes
            .iter()
            .filter_map(|id| inner.nodes.get(id))
            .flat_map(|n| n.blocks.iter().map(|(g, _)| g))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every node that reported any copy of `group` (whatever its length or state).
    pub fn holders(&self, group: GroupId) -> Vec<BlockServerId> {
        let mut holders: Vec<BlockServerId> =
            self.lock().by_group.of(group).map(|c| c.node).collect();
        holders.sort_unstable();
        holders.dedup();
        holders
    }

    /// The copies of `group` reported corrupt: (index, node).
    pub fn corrupt_of(&self, group: GroupId) -> Vec<(u32, BlockServerId)> {
        self.lock()
            .corrupt
            .iter()
            .filter(|(g, _, _)| *g == group)
            .map(|(_, i, n)| (*i, *n))
            .collect()
    }

    /// Every registered node, as of at most [`SNAPSHOT_MAX_AGE`] ago (what heartbeat replies
    /// plan on; see there).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let version = self.version.load(Ordering::Acquire);
        let now = self.clock.now();
        let mut cached = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cached.as_ref()
            && s.version == version
            && now.duration_since(s.taken) < SNAPSHOT_MAX_AGE
        {
            return s.clone();
        }
        static NUMBERS: AtomicU64 = AtomicU64::new(1);
        let number = NUMBERS.fetch_add(1, Ordering::Relaxed);
        let fresh = Arc::new(Snapshot {
            nodes: self.nodes().into(),
            number,
            taken: now,
            version,
            placer: std::sync::OnceLock::new(),
        });
        *cached = Some(fresh.clone());
        fresh
    }

    /// Marks the snapshot out of date: a change it must show at once.
    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Every registered node.
    pub fn nodes(&self) -> Vec<NodeView> {
        let inner = self.lock();
        let now = self.clock.now();
        let wall = self.clock.now_ms();
        inner
            .nodes
            .iter()
            .map(|(id, n)| {
                let admin_state = inner.admin.get(id).copied();
                NodeView {
                    id: *id,
                    addr: n.addr.clone(),
                    rack: n.rack.clone(),
                    storage: n.storage,
                    live: now.duration_since(n.last_heartbeat) <= self.dead_after,
                    blocks: n.blocks.len(),
                    registered_ms: n.registered_ms,
                    fully_reported: n.fully_reported.is_some(),
                    admin: admin_state.map_or(Admin::InService, |s| s.at(wall)),
                    admin_state,
                    drain_remaining: inner.drain.get(id).map(|(_, n)| *n),
                }
            })
            .collect()
    }

    /// How long ago each registered node was last heard from (its last heartbeat or
    /// registration), in milliseconds.
    pub fn silences_ms(&self) -> BTreeMap<BlockServerId, u64> {
        let inner = self.lock();
        let now = self.clock.now();
        inner
            .nodes
            .iter()
            .map(|(id, n)| {
                let ms = now.saturating_duration_since(n.last_heartbeat).as_millis();
                (*id, u64::try_from(ms).unwrap_or(u64::MAX))
            })
            .collect()
    }

    /// Address and rack of node `id`, when registered.
    pub fn node(&self, id: BlockServerId) -> Option<(String, String)> {
        self.lock()
            .nodes
            .get(&id)
            .map(|n| (n.addr.clone(), n.rack.clone()))
    }
}

#[cfg(test)]
mod tests;
