//! How healthy block groups are, from what the blockservers reported (DESIGN §6, §8 `fsck`).
//!
//! An internal block counts as present when a live blockserver reported a copy at least as
//! long as the group's layout says that block is, and nobody reported that copy corrupt. An
//! erasure-coded group is *healthy* with all k+m internal blocks, *degraded* with at least k
//! (readable, by decoding), *missing* below k; a replicated group is healthy with its full
//! replication, degraded with fewer, missing with none. Internal blocks the layout leaves
//! empty (the data blocks past the end of a small group) need no copy.

use std::collections::BTreeSet;

use crate::error::MetaError;
use crate::namespace::blocks::{self, BlockGroup, Generation, GroupId};
use crate::namespace::{Inode, InodeId, InodeKind, NsPath, StoragePolicy, walk};
use crate::node::MetaNode;
use crate::observer::Role;
use crate::registry::{Registry, Replica};
pub use raftfs_core::fsck::{FileHealth, FsckReport};
use raftfs_runtime::Outcome;

pub mod counting;
pub mod heartbeat;
pub mod measured;
pub mod scheduler;

use counting::Counting;

/// The health of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Degraded,
    Missing,
}

/// The length internal block `index` of a group of `group_len` bytes must have.
pub fn expected_len(policy: &StoragePolicy, group_len: u64, index: u32) -> u64 {
    policy.block_len(group_len, index as usize)
}

/// What a group holds: (internal blocks with bytes, their bytes).
pub fn stored(policy: &StoragePolicy, group_len: u64) -> (u64, u64) {
    match (policy, policy.layout()) {
        (_, Some(l)) => (0..l.blocks())
            .map(|i| l.block_len(group_len, i))
            .filter(|len| *len > 0)
            .fold((0, 0), |(n, b), len| (n + 1, b + len)),
        (StoragePolicy::Replicated(n), None) => {
            let n = u64::from(*n);
            (n, group_len.saturating_mul(n))
        }
        (StoragePolicy::ErasureCoded { .. }, None) => (0, 0),
    }
}

/// The health of a closed group from the good copies of its internal blocks.
pub fn classify(policy: &StoragePolicy, group_len: u64, replicas: &[Replica]) -> Health {
    let good = |index: u32| {
        replicas
            .iter()
            .filter(|r| r.index == index && r.length >= expected_len(policy, group_len, index))
            .count()
    };
    match (policy, policy.layout()) {
        (StoragePolicy::Replicated(n), _) => match good(0) {
            0 => Health::Missing,
            c if c >= usize::from(*n) => Health::Healthy,
            _ => Health::Degraded,
        },
        (StoragePolicy::ErasureCoded { data, .. }, Some(l)) => {
            let present = (0..l.blocks())
                .filter(|i| l.block_len(group_len, *i) == 0 || good(*i as u32) > 0)
                .count();
            if present == l.blocks() {
                Health::Healthy
            } else if present >= usize::from(*data) {
                Health::Degraded
            } else {
                Health::Missing
            }
        }
        (StoragePolicy::ErasureCoded { .. }, None) => Health::Missing,
    }
}

/// Most entries one page of `fsck` walks (a request may ask for fewer): a page's work and
/// reply are bounded, whatever the size of the tree.
pub const FSCK_PAGE_MAX: usize = 10_000;
/// Groups of one file read at once while `fsck` judges it.
const FSCK_GROUPS_PAGE: usize = 1024;

/// One page of `fsck` at or below `root`: at most `limit` entries walked from `after` (where
/// the previous page stopped). Returns the page's counts, its unhealthy files (every file
/// when `list_files`), and where the next page starts (none: the walk ended). It holds one
/// page of directory entries per level and one page of a file's groups at a time.
pub fn fsck_page<R: crate::namespace::kv::KvRead + ?Sized>(
    kv: &R,
    registry: &Registry,
    root: &NsPath,
    after: Option<&NsPath>,
    limit: usize,
    list_files: bool,
) -> Result<(FsckReport, Option<String>), MetaError> {
    let mut out = FsckReport {
        live_blockservers: registry.nodes().iter().filter(|n| n.live).count() as u64,
        ..Default::default()
    };
    let counting = counting_now(registry);
    let walked = walk::walk(kv, root, after, limit, |path, file| {
        if file.kind != InodeKind::File {
            return Ok(());
        }
        let mut f = FileHealth {
            path: path.to_owned(),
            policy: file.policy.clone(),
            length: file.length,
            under_construction: file.under_construction.is_some(),
            ..Default::default()
        };
        // Closed groups only: the open group of a file being written is not judged yet.
        let mut at = 0;
        loop {
            let (groups, more) = blocks::in_range(kv, file, at, u64::MAX, FSCK_GROUPS_PAGE)?;
            for g in &groups {
                // A group whose generation cannot be read is not judged (one damaged value
                // must not stop the report).
                if let Some(current) = generation_of(kv, g.id) {
                    judge(
                        registry,
                        &counting,
                        &file.policy,
                        g,
                        current,
                        &mut f,
                        &mut out,
                    );
                }
            }
            match groups.last() {
                Some(last) if more => {
                    at = last.offset.saturating_add(last.length.unwrap_or(0));
                }
                _ => break,
            }
        }
        out.files += 1;
        out.groups += f.groups;
        if f.degraded > 0 || f.missing > 0 {
            out.unhealthy.push(f.clone());
        }
        if list_files {
            out.all.push(f);
        }
        Ok(())
    })?;
    Ok(match walked {
        walk::Walked::Done => (out, None),
        walk::Walked::StoppedAfter(path) => (out, Some(path)),
    })
}

/// The generation of group `id`, or `None` (logged) when its stored value is damaged.
fn generation_of<R: crate::namespace::kv::KvRead + ?Sized>(
    kv: &R,
    id: GroupId,
) -> Option<Generation> {
    blocks::generation(kv, id)
        .map_err(|e| tracing::error!(group = %id, error = %e, "group generation unreadable"))
        .ok()
}

/// Counts one closed group of a file by health, in the file's line and in the totals. Copies
/// on servers being drained count (they are readable until the server leaves), and so do
/// those on servers down for maintenance (HDFS's fsck likewise counts maintenance replicas)
/// when the group is readable without them.
fn judge(
    registry: &Registry,
    counting: &Counting,
    policy: &StoragePolicy,
    g: &BlockGroup,
    current: Generation,
    f: &mut FileHealth,
    out: &mut FsckReport,
) {
    let Some(len) = g.length else { return };
    f.groups += 1;
    let (blocks, bytes) = stored(policy, len);
    f.internal_blocks += blocks;
    f.stored_bytes += bytes;
    let mut copies = registry.replicas(g.id, current);
    // Down copies in maintenance count only for a group readable without them: one that
    // is not shows missing, as a read of it would fail.
    if counting.any_maintenance() && classify(policy, len, &copies) != Health::Missing {
        copies.extend(registry.resting(g.id, current, &counting.admin));
    }
    match classify(policy, len, &copies) {
        Health::Healthy => out.healthy += 1,
        Health::Degraded => {
            out.degraded += 1;
            f.degraded += 1;
        }
        Health::Missing => {
            out.missing += 1;
            f.missing += 1;
        }
    }
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Groups that lack internal blocks, with their priority.
    pub work: Vec<(usize, scheduler::Work)>,
    /// Closed groups scanned.
    pub scanned: u64,
    /// Of the groups asked about (those of tasks in flight), the ones that no longer exist.
    pub gone: BTreeSet<GroupId>,
    /// Groups that cannot be rebuilt.
    pub unrecoverable: u64,
    /// Groups closed moments ago whose missing copies are on live servers that have not
    /// reported them yet: judged again by the next pass.
    pub awaiting: u64,
    /// When the pass began reading groups (its view of the first is that old).
    pub started: Option<std::time::Instant>,
    /// Decommissioning servers -> the internal blocks on them that groups still need (open
    /// groups they hold count: a block being written is not drained yet).
    pub draining: std::collections::BTreeMap<raftfs_core::id::BlockServerId, u64>,
    /// The servers being decommissioned that the pass judges (live and fully reported when
    /// it began), with when their decommission began: a server absent from `draining` is
    /// needed by nothing, if it stayed so until the pass ended.
    pub drain_judged: std::collections::BTreeMap<raftfs_core::id::BlockServerId, u64>,
    /// The closed groups counted by storage policy and health.
    pub census: Census,
}

/// What a whole pass counted of one storage policy's closed groups: how many, their bytes,
/// and how each was judged. HDFS keeps such counts by every write; here the scan that
/// judges every group anyway keeps them, once a pass, at no cost to the writes (the
/// operator pages' namespace and health figures, issue 24).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyCensus {
    pub groups: u64,
    /// The groups' lengths (file bytes, before copies or parity).
    pub bytes: u64,
    pub healthy: u64,
    /// Lacking internal blocks, rebuildable (queued for reconstruction).
    pub degraded: u64,
    /// Lacking more than can be rebuilt.
    pub missing: u64,
    /// Closed moments ago, their copies' reports on the way (judged by the next pass).
    pub awaiting: u64,
    /// Whole, but some blocks only on decommissioning servers: being copied off them
    /// (HDFS's "decommissioning replicas"; a decommission does not make a cluster degraded).
    pub draining: u64,
}

/// The closed groups of a pass by storage policy (its display name).
pub type Census = std::collections::BTreeMap<String, PolicyCensus>;

/// How the scan judged a group, for the census.
#[derive(Debug, Clone, Copy)]
enum Judgement {
    Healthy,
    Degraded,
    Missing,
    Awaiting,
    Draining,
}

fn count(found: &mut Scan, policy: &StoragePolicy, length: u64, judgement: Judgement) {
    let c = found.census.entry(policy.to_string()).or_default();
    c.groups += 1;
    c.bytes = c.bytes.saturating_add(length);
    match judgement {
        Judgement::Healthy => c.healthy += 1,
        Judgement::Degraded => c.degraded += 1,
        Judgement::Missing => c.missing += 1,
        Judgement::Awaiting => c.awaiting += 1,
        Judgement::Draining => c.draining += 1,
    }
}

/// Groups per page of the redundancy scan.
const SCAN_PAGE: usize = 1024;

/// A pass of the redundancy scan under way: where it stopped, and what it found so far. A
/// pass over a large namespace spans many rounds of a bounded number of groups each, so that
/// no round reads the whole namespace (at 100 million groups a round would take minutes and
/// hold a RocksDB snapshot all along); its findings are handed to the scheduler when the
/// pass ends.
#[derive(Debug, Default)]
pub struct ScanPass {
    /// The last group scanned; none at the start of a pass.
    after: Option<GroupId>,
    started: bool,
    found: Scan,
}

impl ScanPass {
    /// Where the pass stands: the last group scanned, if any.
    pub fn position(&self) -> Option<GroupId> {
        self.after
    }
}

/// One scan of every closed block group against the registry: the groups that lack internal
/// blocks with their priority, and how many cannot be rebuilt. Groups that are whole again
/// get their corrupt copies deleted (queued for the next heartbeat of their servers).
/// `in_flight`: groups of running tasks, of which the scan reports those that are gone.
pub fn scan<R: crate::namespace::kv::KvRead + ?Sized>(
    kv: &R,
    registry: &Registry,
    in_flight: &BTreeSet<GroupId>,
) -> Result<Scan, MetaError> {
    let mut pass = ScanPass::default();
    loop {
        if let Some(found) = scan_some(kv, registry, &mut pass, in_flight, usize::MAX)? {
            return Ok(found);
        }
    }
}

/// Goes on with `pass` for about `budget` groups (whole pages of [`SCAN_PAGE`]): the pass's
/// findings when it reached the last group (and `pass` is reset for the next), none while
/// groups are left. `in_flight` (groups of running tasks) is taken at the start of a pass;
/// the pass reports those it did not meet as gone. What a pass holds is bounded by a page,
/// the work found and `in_flight`, never by the number of groups in the namespace.
pub fn scan_some<R: crate::namespace::kv::KvRead + ?Sized>(
    kv: &R,
    registry: &Registry,
    pass: &mut ScanPass,
    in_flight: &BTreeSet<GroupId>,
    budget: usize,
) -> Result<Option<Scan>, MetaError> {
    let counting = counting_now(registry);
    if !pass.started {
        pass.started = true;
        pass.found.gone = in_flight.clone();
        pass.found.started = Some(registry.clock().now());
        pass.found.drain_judged = registry.drains_to_judge();
    }
    let mut visited = 0usize;
    loop {
        let page = blocks::page(kv, pass.after, SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        pass.after = page.last().map(|g| g.id).or(pass.after);
        visited = visited.saturating_add(page.len());
        // Files of this page's groups (consecutive groups mostly share one).
        let mut files = std::collections::HashMap::new();
        for g in &page {
            let judged = Judged {
                in_flight,
                counting: &counting,
            };
            scan_group(kv, registry, g, &mut files, &mut pass.found, &judged)?;
        }
        if done {
            return Ok(Some(std::mem::take(pass).found));
        }
        if visited >= budget {
            return Ok(None);
        }
    }
}

/// Judges `groups` (by id) against the registry now, outside the pass: the groups a
/// blockserver held when it died, checked at once rather than when the pass reaches them.
/// Groups that no longer exist are skipped.
pub fn scan_groups<R: crate::namespace::kv::KvRead + ?Sized>(
    kv: &R,
    registry: &Registry,
    groups: &[GroupId],
    in_flight: &BTreeSet<GroupId>,
) -> Result<Scan, MetaError> {
    let mut found = Scan::default();
    let mut files = std::collections::HashMap::new();
    let counting = counting_now(registry);
    let judged = Judged {
        in_flight,
        counting: &counting,
    };
    for id in groups {
        if let Some(g) = blocks::load(kv, *id)? {
            scan_group(kv, registry, &g, &mut files, &mut found, &judged)?;
        }
    }
    Ok(found)
}

/// What a group is judged with beside the registry: the servers out of service, and the
/// groups of the tasks in flight.
struct Judged<'a> {
    in_flight: &'a BTreeSet<GroupId>,
    counting: &'a Counting,
}

/// The servers out of service now, as the registry holds their journaled states.
fn counting_now(registry: &Registry) -> Counting {
    Counting {
        admin: registry.admin_now(),
        maintenance_min_live: registry.maintenance_min_live(),
    }
}

/// Judges one group against the registry: its missing blocks as work, or its stale and
/// corrupt copies queued for deletion. `files` caches the files of the current page.
fn scan_group<R: crate::namespace::kv::KvRead + ?Sized>(
    kv: &R,
    registry: &Registry,
    g: &BlockGroup,
    files: &mut std::collections::HashMap<InodeId, Option<Inode>>,
    found: &mut Scan,
    judged: &Judged<'_>,
) -> Result<(), MetaError> {
    let counting = judged.counting;
    let Some(length) = g.length else {
        // A group being written keeps its servers: a drain ends after the file is closed
        // (as HDFS waits for open files on a decommissioning DataNode).
        if !counting.admin.is_empty() {
            for node in registry.holders(g.id) {
                if counting.draining(node) {
                    *found.draining.entry(node).or_default() += 1;
                }
            }
        }
        return Ok(());
    };
    found.scanned += 1;
    found.gone.remove(&g.id);
    let file = match files.get(&g.inode) {
        Some(f) => f.clone(),
        None => {
            // A group only snapshots keep is kept whole as well (DESIGN §13).
            let f = match crate::namespace::tree::load_inode(kv, g.inode)? {
                Some(f) => Some(f),
                None => crate::namespace::snapshot::kept_inode(kv, g.inode)?,
            };
            files.insert(g.inode, f.clone());
            f
        }
    };
    let Some(file) = file else { return Ok(()) };
    let policy = file.policy.clone();
    // A group whose generation cannot be read is left alone: neither rebuilt nor trimmed
    // (one damaged value must not stop the scan of every other group).
    let Some(current) = generation_of(kv, g.id) else {
        return Ok(());
    };
    let reported = registry.replicas(g.id, current);
    let resting = if counting.any_maintenance() {
        registry.resting(g.id, current, &counting.admin)
    } else {
        Vec::new()
    };
    let need = counting::need(&policy, length, &reported, &resting, counting);
    for node in &need.draining {
        *found.draining.entry(*node).or_default() += 1;
    }
    let replicas: Vec<Replica> = reported
        .iter()
        .filter(|r| r.length >= expected_len(&policy, length, r.index))
        .copied()
        .collect();
    let (width, needed) = (policy.width(), policy.data_blocks());
    let decodable = need.readable >= needed;
    for r in stale_copies(&policy, length, &reported, &need.missing, decodable) {
        registry.queue_delete(r.node, g.id, r.index, r.generation);
    }
    if need.missing.is_empty() {
        if need.present >= width {
            for (index, node) in registry.corrupt_of(g.id) {
                // Corrupt whatever its stamp: the copies counted are whole again.
                registry.queue_delete(node, g.id, index, Generation::ANY);
            }
        }
        // Nothing to rebuild can also mean nothing to rebuild from: a replicated group
        // with no readable copy left is lost, not whole.
        let judgement = if need.present < width && need.readable < needed {
            found.unrecoverable += 1;
            Judgement::Missing
        } else {
            Judgement::Healthy
        };
        count(found, &policy, length, judgement);
        return Ok(());
    }
    if !judged.in_flight.contains(&g.id)
        && awaiting_reports(registry, g, &file, &policy, current, &need.missing)
    {
        found.awaiting += 1;
        count(found, &policy, length, Judgement::Awaiting);
        return Ok(());
    }
    let missing = need.missing;
    // Urgency counts the copies that stay (in service, and in maintenance while they count):
    // a group whose only copies of some blocks are on draining servers is as close to loss
    // as its copies in service say (HDFS puts "only decommissioning replicas" first); it
    // can be rebuilt while it is readable at all.
    let urgency = (need.readable >= needed).then(|| need.present.max(needed));
    let priority = urgency.and_then(|live| scheduler::priority(live, needed));
    let judgement = match priority {
        // Every block still readable: what is missing is only on draining servers.
        Some(_) if need.readable >= width => Judgement::Draining,
        Some(_) => Judgement::Degraded,
        None => Judgement::Missing,
    };
    count(found, &policy, length, judgement);
    match priority {
        Some(p) => found.work.push((
            p,
            scheduler::Work {
                group: g.id,
                policy,
                length,
                missing,
                replicas,
                holders: registry.holders(g.id),
            },
        )),
        None => found.unrecoverable += 1,
    }
    Ok(())
}

/// Whether a group its file's last change closed moments ago lacks copies only because
/// their incremental reports are still on their way: it is the file's last closed group, one
/// of the live servers it was written to (for a missing block, or any replica's) has not
/// reported its copy, and the file changed less than the registry's `dead-after` ago (a
/// group with a task in flight is never waited on: the scan would take its block for
/// rebuilt). Only the last closed group: a file written for hours changes all along, and
/// its older groups must not wait with it. The writer is told the group is
/// complete when its targets have the bytes; their reports follow within a batch window
/// (or, after a failed report, the next heartbeat), and a pass that runs in between would
/// otherwise rebuild a copy that is about to be reported, leaving the group one copy over
/// for good. HDFS counts such expected locations as pending reconstruction for the same
/// reason. A target that stays silent longer is dead, and a block a live target never
/// reports is rebuilt by the first pass after the grace.
fn awaiting_reports(
    registry: &Registry,
    g: &BlockGroup,
    file: &Inode,
    policy: &StoragePolicy,
    current: Generation,
    missing: &[u32],
) -> bool {
    // The group the file's last change closed: its last, or the one before an open last.
    let open = usize::from(file.under_construction.is_some());
    let last_closed = (file.block_groups as usize).checked_sub(1 + open);
    if last_closed != Some(g.index as usize) {
        return false;
    }
    let now = registry.clock().now_ms();
    let grace = u64::try_from(registry.dead_after().as_millis()).unwrap_or(u64::MAX);
    let recent = file.mtime_ms <= now && now - file.mtime_ms < grace;
    if !recent {
        return false;
    }
    let expected: Vec<(u32, raftfs_core::id::BlockServerId)> = match policy {
        StoragePolicy::Replicated(_) => g.targets.iter().map(|t| (0, *t)).collect(),
        StoragePolicy::ErasureCoded { .. } => (0u32..)
            .zip(g.targets.iter().copied())
            .filter(|(i, _)| missing.contains(i))
            .collect(),
    };
    !registry.unreported(g.id, &expected, current).is_empty()
}

/// The copies of a closed group's missing blocks that are shorter than the group's length
/// says (a writer died before it sent them everything, and lease recovery kept more): to be
/// deleted, once the group decodes without them (`decodable`). Such a copy serves no read,
/// and while it is there its server counts as holding a block of the group, so it cannot be
/// the target of that block's rebuild; in a cluster of exactly k+m servers nothing else can,
/// and the group would stay degraded for good. HDFS likewise invalidates a replica whose
/// length or generation is stale once enough good replicas exist; a group below k keeps
/// its short copies, whose prefixes may still help a recovery.
fn stale_copies(
    policy: &StoragePolicy,
    length: u64,
    reported: &[Replica],
    missing: &[u32],
    decodable: bool,
) -> Vec<Replica> {
    if !decodable {
        return Vec::new();
    }
    reported
        .iter()
        .filter(|r| missing.contains(&r.index) && r.length < expected_len(policy, length, r.index))
        .copied()
        .collect()
}

/// What the redundancy scan keeps between rounds (owned by its worker): the pass under way,
/// the blockservers known dead, and the groups of newly dead ones still to check.
#[derive(Debug, Default)]
pub struct ScanState {
    pass: ScanPass,
    known_dead: BTreeSet<raftfs_core::id::BlockServerId>,
    urgent: std::collections::VecDeque<GroupId>,
}

impl ScanState {
    /// Notes which blockservers are dead now; the groups of those that died since the last
    /// round are queued to be checked first (as HDFS queues a dead DataNode's blocks at
    /// once): a pass over a large namespace takes many rounds, and a loss must not wait for
    /// it to come round.
    fn note_dead(&mut self, registry: &Registry) {
        let dead = registry.dead_nodes();
        let newly: BTreeSet<_> = dead.difference(&self.known_dead).copied().collect();
        if !newly.is_empty() {
            let groups = registry.groups_on(&newly);
            tracing::info!(servers = ?newly, groups = groups.len(), "blockservers died: checking their groups first");
            self.urgent.extend(groups);
        }
        self.known_dead = dead;
    }

    /// Up to `budget` of the groups to check first.
    fn take_urgent(&mut self, budget: usize) -> Vec<GroupId> {
        let n = budget.min(self.urgent.len());
        self.urgent.drain(..n).collect()
    }
}

/// The redundancy scan's state between rounds (owned by its worker).
pub type SharedPass = std::sync::Arc<std::sync::Mutex<ScanState>>;

/// What one round of the scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Groups of servers that died since the last round, checked ahead of the pass.
    pub checked: u64,
    /// Groups the pass read in this round.
    pub scanned: u64,
    /// When the pass ended in this round: what it queued.
    pub ended: Option<PassEnd>,
}

/// What a whole pass handed to the scheduler.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassEnd {
    /// Groups queued, by priority (0 most urgent).
    pub queued: [u64; 3],
    /// Groups that cannot be rebuilt.
    pub unrecoverable: u64,
    /// Groups left for the next pass while their copies' reports are on their way.
    pub awaiting: u64,
    /// The closed groups by storage policy and health.
    pub census: Census,
}

/// A whole pass as the operator pages show it: what it found, when it ended, and the state
/// ID its last round read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    pub ended_ms: u64,
    pub state_id: u64,
    pub queued: [u64; 3],
    pub unrecoverable: u64,
    pub awaiting: u64,
    pub census: Census,
}

impl PassReport {
    /// The census summed over the policies.
    pub fn total(&self) -> PolicyCensus {
        let mut t = PolicyCensus::default();
        for c in self.census.values() {
            t.groups += c.groups;
            t.bytes = t.bytes.saturating_add(c.bytes);
            t.healthy += c.healthy;
            t.degraded += c.degraded;
            t.missing += c.missing;
            t.awaiting += c.awaiting;
            t.draining += c.draining;
        }
        t
    }
}

/// One round of the redundancy scan, with no I/O of its own beyond `kv` (the active's
/// snapshot of the namespace, `applied` its index): first the groups of blockservers that
/// died since the last round (their work queued at once), then the pass goes on for the
/// rest of `budget` groups; when the pass ends, its queues replace the scheduler's. The
/// server runs it from [`scan_round`]; the fleet simulator calls it directly.
pub fn scan_step<R: crate::namespace::kv::KvRead + ?Sized>(
    kv: &R,
    registry: &Registry,
    scheduler: &scheduler::Scheduler,
    state: &mut ScanState,
    applied: u64,
    budget: usize,
) -> Result<Round, MetaError> {
    state.note_dead(registry);
    let urgent = state.take_urgent(budget);
    let in_flight = scheduler.in_flight_groups();
    let before = state.pass.found.scanned;
    let throttle = crate::namespace::throttle::load(kv)?;
    scheduler.set_throttle(throttle.clone());
    registry.set_admin(applied, crate::namespace::admin_state::load(kv)?);
    let urgent_found = scan_groups(kv, registry, &urgent, &in_flight)?;
    let rest = budget.saturating_sub(urgent.len()).max(1);
    let mut found = scan_some(kv, registry, &mut state.pass, &in_flight, rest)?;
    let checked = urgent_found.scanned;
    if !urgent_found.work.is_empty() {
        scheduler.add(urgent_found.work);
    }
    // What the urgent checks found still needs a draining server counts for the pass under
    // way (or ending now): a group the pass judged before its copy in service was lost.
    let drains = match found.as_mut() {
        Some(s) => &mut s.draining,
        None => &mut state.pass.found.draining,
    };
    for (id, n) in urgent_found.draining {
        *drains.entry(id).or_default() += n;
    }
    let scanned = match &found {
        Some(s) => s.scanned - before,
        None => state.pass.found.scanned - before,
    };
    let ended = found.map(|s| {
        record_drain(registry, &s);
        let mut queued = [0u64; 3];
        for (p, _) in &s.work {
            if let Some(q) = queued.get_mut(*p) {
                *q += 1;
            }
        }
        let started = s.started.unwrap_or_else(|| registry.clock().now());
        scheduler.update_pass(s.work, &s.gone, s.unrecoverable, throttle, started);
        PassEnd {
            queued,
            unrecoverable: s.unrecoverable,
            awaiting: s.awaiting,
            census: s.census,
        }
    });
    Ok(Round {
        checked,
        scanned,
        ended,
    })
}

/// One round of the redundancy scan (a worker of the active, every `redundancy-scan-ms`):
/// [`scan_step`] on a snapshot of this member's namespace. On a small namespace every round
/// is a whole pass. A member that is not the active drops its state, so a new active starts
/// afresh. Returns the groups checked in this round.
pub async fn scan_round(
    node: &MetaNode,
    state: &SharedPass,
    budget: usize,
) -> Result<Outcome, MetaError> {
    let take = || match state.lock() {
        Ok(mut p) => std::mem::take(&mut *p),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    let mut current = take();
    if node.role() != Role::Active {
        // A pass of an earlier term is no view of the fleet now (nor are its gauges).
        node.blocks.set_last_pass(None);
        node.metrics.set_census(&Census::default());
        node.metrics
            .set_budgets(&crate::namespace::throttle::ThrottleSettings::default());
        return Ok(Outcome::Skipped);
    }
    let registry = node.blocks.registry.clone();
    let scheduler = node.blocks.scheduler.clone();
    let applied = node.sm.applied_index();
    let (current, round) = node
        .read_local(move |kv| -> Result<_, MetaError> {
            let round = scan_step(kv, &registry, &scheduler, &mut current, applied, budget)?;
            Ok((current, round))
        })
        .await?;
    if let Ok(mut p) = state.lock() {
        *p = current;
    }
    if let Some(end) = round.ended {
        node.metrics
            .set_reconstruction_queues(end.queued, end.unrecoverable);
        node.metrics.set_census(&end.census);
        node.blocks.set_last_pass(Some(PassReport {
            ended_ms: crate::registry::now_ms(),
            state_id: applied,
            queued: end.queued,
            unrecoverable: end.unrecoverable,
            awaiting: end.awaiting,
            census: end.census,
        }));
    }
    let (status, throttle) = node.blocks.scheduler.status();
    node.metrics.set_reconstruction_in_flight(status.in_flight);
    node.metrics.set_budgets(&throttle);
    Ok(Outcome::Done {
        items: round.scanned + round.checked,
    })
}

/// Records, for each server the pass judged that stayed live and fully reported all along,
/// what the pass found still needs it; those it found unneeded are decommissioned (logged
/// once). A server that died or registered again meanwhile is judged by a later pass: what
/// this one saw of it may not be all it holds.
fn record_drain(registry: &Registry, pass: &Scan) {
    let Some(started) = pass.started else { return };
    let before: std::collections::BTreeMap<_, _> = registry
        .nodes()
        .into_iter()
        .map(|n| (n.id, n.drain_remaining))
        .collect();
    let remaining: std::collections::BTreeMap<_, _> = pass
        .drain_judged
        .iter()
        .filter(|(id, _)| registry.steady_since(**id, started))
        .map(|(id, since)| (*id, (*since, pass.draining.get(id).copied().unwrap_or(0))))
        .collect();
    for (id, (_, n)) in &remaining {
        if *n == 0 && before.get(id).copied().flatten() != Some(0) {
            tracing::info!(server = %id, "blockserver decommissioned: no group needs it");
        }
    }
    registry.record_drain(remaining);
}

/// How long the sweep waits for this member to apply its log before it gives up the round.
const SWEEP_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One round of the garbage sweep (a worker of the active): finds the internal blocks that
/// blockservers hold for groups that no longer exist (their file was deleted or overwritten)
/// or never did, or past their group's internal blocks (`blocks::garbage`), and queues their
/// deletion, which the next heartbeat reply carries. Block reports of deleted groups' blocks
/// are caught as they arrive; this catches the blocks reported *before* their file went
/// away, and the rest. Returns the deletions queued.
pub async fn sweep_round(node: &MetaNode) -> Result<Outcome, MetaError> {
    if node.role() != Role::Active {
        return Ok(Outcome::Skipped);
    }
    let reported = node.blocks.registry.reported_blocks();
    if reported.is_empty() {
        return Ok(Outcome::Done { items: 0 });
    }
    // Every block reported so far was written after its group's allocation was committed.
    // A read index taken now (leadership confirmed by a quorum, so no other active can have
    // committed past it) covers that allocation: once this member has applied up to it, a
    // group it does not know was never allocated. An active cut off from its quorum gets no
    // read index and sweeps nothing.
    let read = node
        .raft
        .ensure_linearizable()
        .await
        .map_err(|e| MetaError::Unavailable(format!("no read index for the sweep: {e}")))?;
    let index = read.map_or(0, |l| l.index);
    crate::observer::wait_applied(node.sm.applied_watch(), index, SWEEP_APPLY_WAIT).await?;
    let garbage = node
        .read_local(move |kv| -> Result<Vec<_>, MetaError> {
            let mut out = Vec::new();
            for (group, index, node, generation) in reported {
                match blocks::garbage(kv, group, index, generation) {
                    Ok(true) => out.push((group, index, node, generation)),
                    Ok(false) => {}
                    // Not known to be garbage: kept (and the rest of the sweep goes on).
                    Err(e) => tracing::error!(%group, index, error = %e, "sweep skips a block"),
                }
            }
            Ok(out)
        })
        .await?;
    let queued = garbage.len() as u64;
    for (group, index, n, generation) in garbage {
        node.blocks
            .registry
            .queue_delete(n, group, index, generation);
    }
    Ok(Outcome::Done { items: queued })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::inode::EcCodec;
    use raftfs_core::id::BlockServerId;

    fn rs63() -> StoragePolicy {
        StoragePolicy::ErasureCoded {
            codec: EcCodec::Rs,
            data: 6,
            parity: 3,
            cell_kib: 1,
        }
    }

    fn copies(policy: &StoragePolicy, len: u64, indices: &[u32]) -> Vec<Replica> {
        indices
            .iter()
            .map(|i| Replica {
                index: *i,
                node: BlockServerId(u64::from(*i) + 1),
                length: expected_len(policy, len, *i),
                generation: Generation::FIRST,
            })
            .collect()
    }

    /// The active's registry (dead after 10 s) and scheduler (4 streams) on `clock`.
    fn active_on(clock: &raftfs_runtime::Clock) -> (Registry, scheduler::Scheduler) {
        let dead_after = std::time::Duration::from_secs(10);
        let registry = Registry::new(dead_after).with_clock(clock.clone());
        let scheduler = scheduler::Scheduler::new(scheduler::SchedulerConfig {
            max_streams: 4,
            xmits_weight: 0.5,
            task_timeout: std::time::Duration::from_secs(300),
            rack_aware: true,
        })
        .with_clock(clock.clone());
        (registry, scheduler)
    }

    /// A generated namespace of `files` files (one group each), opened: its directory, shape
    /// and DB.
    fn generated(files: u64) -> (tempfile::TempDir, crate::generate::Shape, rocksdb::DB) {
        generated_at(files, 1)
    }

    /// [`generated`], every file changed at `now_ms`.
    fn generated_at(
        files: u64,
        now_ms: u64,
    ) -> (tempfile::TempDir, crate::generate::Shape, rocksdb::DB) {
        let dir = tempfile::tempdir().expect("tempdir");
        let shape = crate::generate::Shape {
            files,
            ..crate::generate::Shape::default()
        };
        let sm = dir.path().join("sm");
        crate::generate::generate(&sm, &shape, now_ms).expect("generate");
        let names: Vec<&str> = crate::namespace::kv::Cf::ALL
            .iter()
            .map(|c| c.name())
            .collect();
        let db = crate::journal::rocks::open(&sm, &names, &Default::default()).expect("open");
        (dir, shape, db)
    }

    /// A pass counts every closed group once, under its policy, as it judged it: whole,
    /// lacking a rebuildable block, lacking more than can be rebuilt, or whole with a copy
    /// only on a decommissioning server (being drained, not degraded).
    #[test]
    fn a_pass_counts_the_groups_by_policy_and_health() {
        use crate::namespace::admin_state::AdminState;
        use crate::namespace::blocks::FIRST_GROUP_ID;
        use crate::registry::{Reported, Storage};
        let (_dir, shape, db) = generated(4);
        let kv = crate::journal::rocks::LiveKv(&db);
        let (clock, _hand) = raftfs_runtime::Clock::manual(1_000_000);
        let (registry, _) = active_on(&clock);
        let room = Storage {
            capacity: 1 << 40,
            available: 1 << 40,
            volumes: 1,
            ..Storage::default()
        };
        for id in 1..=5 {
            registry
                .register(BlockServerId(id), &format!("127.0.0.1:{id}"), "r1", room)
                .expect("register");
        }
        let holders: [&[u64]; 4] = [&[1, 2, 3], &[1, 2], &[], &[1, 2, 4]];
        for (g, servers) in holders.iter().enumerate() {
            for id in *servers {
                let copy = Reported {
                    group: GroupId(FIRST_GROUP_ID.0 + g as u64),
                    index: 0,
                    length: shape.file_length,
                    generation: Generation::FIRST,
                };
                registry
                    .incremental(BlockServerId(*id), &[copy], &[])
                    .expect("report");
            }
        }
        let draining = AdminState::Decommissioning { since_ms: 1 };
        registry.set_admin(1, [(BlockServerId(4), draining)].into_iter().collect());
        let found = scan(&kv, &registry, &BTreeSet::new()).expect("scan");
        let policy = StoragePolicy::default().to_string();
        assert_eq!(found.census.keys().collect::<Vec<_>>(), vec![&policy]);
        assert_eq!(
            found.census[&policy],
            PolicyCensus {
                groups: 4,
                bytes: 4 * shape.file_length,
                healthy: 1,
                degraded: 1,
                missing: 1,
                awaiting: 0,
                draining: 1,
            }
        );
        assert_eq!(found.scanned, 4);
    }

    /// A blockserver that dies has its groups checked in the next round, ahead of the pass:
    /// their missing copies are work at once, and a server already known dead is not
    /// reported again. All of it on a manual clock, through the round and the heartbeat
    /// orders the server and the fleet simulator share: the next heartbeat of a server that
    /// may hold the block gets the task.
    #[test]
    fn the_groups_of_a_server_that_died_are_checked_first() {
        use crate::namespace::blocks::FIRST_GROUP_ID;
        use crate::registry::{Reported, Storage};
        use std::time::Duration;
        let (_dir, shape, db) = generated(50);
        let kv = crate::journal::rocks::LiveKv(&db);
        let (clock, hand) = raftfs_runtime::Clock::manual(1_000_000);
        let (registry, scheduler) = active_on(&clock);
        let held = GroupId(FIRST_GROUP_ID.0 + 7);
        let room = Storage {
            capacity: 1 << 40,
            available: 1 << 40,
            volumes: 1,
            ..Storage::default()
        };
        for id in 1..=4 {
            let id = BlockServerId(id);
            let rack = if id.0 == 4 { "r2" } else { "r1" };
            registry
                .register(id, &format!("127.0.0.1:{id}"), rack, room)
                .expect("register");
        }
        for id in 1..=3 {
            let copy = Reported {
                group: held,
                index: 0,
                length: shape.file_length,
                generation: Generation::FIRST,
            };
            registry
                .incremental(BlockServerId(id), &[copy], &[])
                .expect("report");
        }
        let mut state = ScanState::default();
        let round = scan_step(&kv, &registry, &scheduler, &mut state, 0, 1_000).expect("scan");
        assert_eq!(round.checked, 0, "nobody died");
        assert_eq!(round.ended.map(|e| e.queued), Some([0, 0, 0]));
        hand.advance(Duration::from_secs(6));
        for id in [1, 2, 4] {
            heartbeat::receive(&registry, &scheduler, BlockServerId(id), room, &[])
                .expect("heartbeat");
        }
        hand.advance(Duration::from_secs(5));
        // Server 3 has been silent 11 s (dead after 10); the others 5 s: the dead server's
        // group is checked ahead of the pass (which, here, reads its one page as well).
        let round = scan_step(&kv, &registry, &scheduler, &mut state, 0, 1).expect("scan");
        assert_eq!(round.checked, 1);
        let orders = heartbeat::orders(&registry, &scheduler, BlockServerId(4), 0, 1);
        assert_eq!(orders.tasks.len(), 1, "{orders:?}");
        let task = &orders.tasks[0];
        assert_eq!((task.group, task.index), (held, 0));
        assert!(
            task.sources
                .iter()
                .all(|s| [BlockServerId(1), BlockServerId(2)].contains(&s.node))
        );
        assert!(
            heartbeat::orders(&registry, &scheduler, BlockServerId(4), 0, 1)
                .tasks
                .is_empty(),
            "handed out once"
        );
        state.note_dead(&registry);
        assert!(state.urgent.is_empty(), "server 3 was dead already");
        // The task times out on the same clock: the next pass cancels it on its server.
        hand.advance(Duration::from_secs(301));
        for id in [1, 2, 4] {
            heartbeat::receive(&registry, &scheduler, BlockServerId(id), room, &[])
                .expect("heartbeat");
        }
        while scan_step(&kv, &registry, &scheduler, &mut state, 0, 1_000)
            .expect("scan")
            .ended
            .is_none()
        {}
        let orders = heartbeat::orders(&registry, &scheduler, BlockServerId(4), 0, 1);
        assert_eq!(orders.cancel, vec![task.id]);
    }

    /// A group closed moments ago whose third replica's server is live but has not reported
    /// it yet is left for a later pass (its report is on its way: rebuilding now would leave
    /// four copies); once the file is older than `dead-after`, the copy still unreported is
    /// rebuilt. A target that is dead is not waited for.
    #[test]
    fn a_group_just_closed_waits_for_its_targets_reports() {
        use crate::namespace::blocks::FIRST_GROUP_ID;
        use crate::registry::{Reported, Storage};
        use std::time::Duration;
        let start_ms = 1_000_000;
        // The files were closed 11 s after the servers registered.
        let closed_ms = start_ms + 11_000;
        let (_dir, shape, db) = generated_at(5, closed_ms);
        let kv = crate::journal::rocks::LiveKv(&db);
        let (clock, hand) = raftfs_runtime::Clock::manual(start_ms);
        let room = Storage {
            capacity: 1 << 40,
            available: 1 << 40,
            volumes: 1,
            ..Storage::default()
        };
        // Generated groups are written to servers 1, 2 and 3; 1 and 2 have reported theirs.
        let held = GroupId(FIRST_GROUP_ID.0 + 2);
        let copy = Reported {
            group: held,
            index: 0,
            length: shape.file_length,
            generation: Generation::FIRST,
        };
        let cluster = || {
            let (registry, scheduler) = active_on(&clock);
            for id in 1..=4 {
                registry
                    .register(BlockServerId(id), &format!("127.0.0.1:{id}"), "r1", room)
                    .expect("register");
            }
            for id in [1, 2] {
                registry
                    .incremental(BlockServerId(id), &[copy], &[])
                    .expect("report");
            }
            (registry, scheduler)
        };
        let beat = |registry: &Registry, scheduler: &scheduler::Scheduler, ids: &[u64]| {
            for id in ids {
                heartbeat::receive(registry, scheduler, BlockServerId(*id), room, &[])
                    .expect("heartbeat");
            }
        };
        let pass = |registry: &Registry, scheduler: &scheduler::Scheduler| {
            scan_step(
                &kv,
                registry,
                scheduler,
                &mut ScanState::default(),
                0,
                1_000,
            )
            .expect("scan")
            .ended
            .expect("one round is a pass")
        };
        // One cluster where server 3 is live, one where it has been silent since it
        // registered (dead at the close).
        let (live, live_scheduler) = cluster();
        let (silent, silent_scheduler) = cluster();
        hand.advance(Duration::from_secs(6));
        beat(&live, &live_scheduler, &[1, 2, 3, 4]);
        beat(&silent, &silent_scheduler, &[1, 2, 4]);
        hand.advance(Duration::from_secs(5));
        beat(&live, &live_scheduler, &[1, 2, 3, 4]);
        beat(&silent, &silent_scheduler, &[1, 2, 4]);
        let end = pass(&live, &live_scheduler);
        assert_eq!((end.queued, end.awaiting), ([0, 0, 0], 1), "{end:?}");
        let end = pass(&silent, &silent_scheduler);
        assert_eq!(
            (end.queued.iter().sum::<u64>(), end.awaiting),
            (1, 0),
            "{end:?}"
        );
        // Still unreported once the file is older than dead-after (server 3 alive all
        // along): rebuilt.
        hand.advance(Duration::from_secs(6));
        beat(&live, &live_scheduler, &[1, 2, 3, 4]);
        hand.advance(Duration::from_secs(5));
        beat(&live, &live_scheduler, &[1, 2, 3, 4]);
        let end = pass(&live, &live_scheduler);
        assert_eq!(
            (end.queued.iter().sum::<u64>(), end.awaiting),
            (1, 0),
            "{end:?}"
        );
    }

    /// The scan over a generated namespace (more than 3 pages of groups): every group
    /// scanned, nothing to rebuild (no blockserver holds a copy), and of the groups asked
    /// about, only the one that does not exist reported gone.
    #[test]
    fn the_scan_reports_which_in_flight_groups_are_gone() {
        use crate::namespace::blocks::FIRST_GROUP_ID;
        let (_dir, _, db) = generated(3_500);
        let registry = Registry::new(std::time::Duration::from_secs(10));
        let existing = GroupId(FIRST_GROUP_ID.0 + 1_234);
        let deleted = GroupId(FIRST_GROUP_ID.0 + 3_500);
        let s = scan(
            &crate::journal::rocks::LiveKv(&db),
            &registry,
            &[existing, deleted].into_iter().collect(),
        )
        .expect("scan");
        assert_eq!(s.scanned, 3_500);
        // A replicated group with no copy at all is for fsck to report; nothing to rebuild.
        assert!(s.work.is_empty());
        assert_eq!(s.gone, [deleted].into_iter().collect());

        // The same pass in rounds of one page: three rounds stop part way, the fourth ends
        // the pass with the same findings (the groups asked about taken at its start), and
        // the next round starts a new pass from the first group.
        let kv = crate::journal::rocks::LiveKv(&db);
        let asked = [existing, deleted].into_iter().collect();
        let mut pass = ScanPass::default();
        for round in 1..=3u64 {
            let found = scan_some(&kv, &registry, &mut pass, &asked, SCAN_PAGE).expect("scan");
            assert!(found.is_none(), "round {round} ended the pass");
            assert_eq!(pass.found.scanned, round * SCAN_PAGE as u64);
            assert_eq!(
                pass.position(),
                Some(GroupId(FIRST_GROUP_ID.0 + round * SCAN_PAGE as u64 - 1))
            );
        }
        let whole = scan_some(&kv, &registry, &mut pass, &BTreeSet::new(), SCAN_PAGE)
            .expect("scan")
            .expect("the fourth round ends the pass");
        assert_eq!(whole.scanned, 3_500);
        assert_eq!(whole.gone, [deleted].into_iter().collect());
        assert_eq!(pass.position(), None);
        assert_eq!(pass.found.scanned, 0);
    }

    #[test]
    fn ec_groups_are_healthy_degraded_or_missing_by_surviving_blocks() {
        let p = rs63();
        let len = 6 * 1024 * 2;
        let all: Vec<u32> = (0..9).collect();
        assert_eq!(classify(&p, len, &copies(&p, len, &all)), Health::Healthy);
        assert_eq!(
            classify(&p, len, &copies(&p, len, &all[3..])),
            Health::Degraded
        );
        assert_eq!(
            classify(&p, len, &copies(&p, len, &all[4..])),
            Health::Missing
        );
        // A copy shorter than the layout says (a writer died mid-block) does not count.
        let mut short = copies(&p, len, &all);
        short[0].length -= 1;
        assert_eq!(classify(&p, len, &short), Health::Degraded);
    }

    #[test]
    fn a_small_ec_group_needs_only_its_non_empty_blocks() {
        let p = rs63();
        // One byte: data block 0 and the 3 parity blocks hold it; blocks 1..6 are empty.
        assert_eq!(stored(&p, 1), (4, 4));
        assert_eq!(
            classify(&p, 1, &copies(&p, 1, &[0, 6, 7, 8])),
            Health::Healthy
        );
        assert_eq!(
            classify(&p, 1, &copies(&p, 1, &[6, 7, 8])),
            Health::Degraded
        );
    }

    #[test]
    fn short_copies_of_missing_blocks_go_once_the_group_decodes_without_them() {
        let p = StoragePolicy::ErasureCoded {
            codec: EcCodec::Rs,
            data: 3,
            parity: 2,
            cell_kib: 1,
        };
        let len = 3 * 1024;
        // A writer killed before block 0 got its cell: node 1 holds an empty block 0, the
        // others full blocks 1..4 (the case of `a_writer_killed_mid_file_is_closed_by_lease_
        // recovery` with five servers for RS-3-2).
        let mut reported = copies(&p, len, &[0, 1, 2, 3, 4]);
        reported[0].length = 0;
        let stale = stale_copies(&p, len, &reported, &[0], true);
        assert_eq!(stale, vec![reported[0]]);
        // Full copies and copies of blocks that are not missing stay.
        assert!(stale_copies(&p, len, &reported, &[], true).is_empty());
        assert!(stale_copies(&p, len, &reported[1..], &[0], true).is_empty());
        // Below k, a short copy may still help: it stays.
        assert!(stale_copies(&p, len, &reported, &[0], false).is_empty());
        // Replicated: a short replica goes once a full one exists.
        let r = StoragePolicy::Replicated(3);
        let short = Replica {
            index: 0,
            node: BlockServerId(7),
            length: 10,
            generation: Generation::FIRST,
        };
        let full = Replica {
            index: 0,
            node: BlockServerId(8),
            length: 100,
            generation: Generation::FIRST,
        };
        assert_eq!(
            stale_copies(&r, 100, &[short, full], &[0], true),
            vec![short]
        );
    }

    #[test]
    fn replicated_groups_by_replica_count() {
        let p = StoragePolicy::Replicated(3);
        assert_eq!(
            classify(&p, 10, &copies(&p, 10, &[0, 0, 0])),
            Health::Healthy
        );
        assert_eq!(classify(&p, 10, &copies(&p, 10, &[0])), Health::Degraded);
        assert_eq!(classify(&p, 10, &[]), Health::Missing);
        assert_eq!(stored(&p, 10), (3, 30));
    }
}
