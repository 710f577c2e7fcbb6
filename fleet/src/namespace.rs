//! The simulated namespace: where every block group's internal blocks are, and the store the
//! real redundancy scan reads.
//!
//! A fleet of 100 million groups cannot be written through the namespace's operations in a
//! simulation's time, nor held in the in-memory store (`MemKv` costs about 250 bytes a
//! group). So the groups live in [`Groups`], a dense table (policy, length, and the server
//! of each internal block), and [`FleetKv`] answers the scan's reads from it with the
//! namespace's own keys and versioned encodings (`namespace::keys`, `inode::encode`): the
//! scan decodes exactly what it decodes from RocksDB. Everything else the scan reads (the
//! throttle settings, admin states, generations) sits in a `MemKv` beside it and is
//! written through the namespace's own functions (`throttle::apply`).
//!
//! Each file holds `GROUPS_PER_FILE` consecutive groups.

use raftfs_core::id::BlockServerId;
use raftfs_core::namespace::StoragePolicy;
use raftfs_core::namespace::StoreError;
use raftfs_core::namespace::blocks::{BlockGroup, FIRST_GROUP_ID, GroupId};
use raftfs_core::namespace::inode::{FIRST_ALLOCATED_ID, Inode, InodeId, InodeKind, encode};
use raftfs_core::namespace::keys;
use raftfs_core::namespace::kv::{Cf, KvPair, KvRead, MemKv, Txn};
use raftfs_core::namespace::throttle::{self, ThrottleChange, ThrottleSettings};

/// Consecutive groups of one file. One: a file's groups share its policy, and the table
/// holds groups of several policies in any order (most HDFS files are one block anyway).
pub const GROUPS_PER_FILE: u64 = 1;

/// No server (an internal block the layout leaves empty, or a slot past the policy's width).
pub const NOWHERE: u32 = u32::MAX;

/// The block groups of the fleet: for each, its policy, its length, and the server (an index
/// into the fleet's servers) of each internal block. A replicated group's slots are its
/// replicas, all of internal block 0.
#[derive(Debug, Clone)]
pub struct Groups {
    policies: Vec<StoragePolicy>,
    /// Slots per group: the widest policy's width.
    stride: usize,
    policy: Vec<u8>,
    length: Vec<u64>,
    servers: Vec<u32>,
}

impl Groups {
    /// An empty table for groups of `policies` (at most 256).
    pub fn new(policies: Vec<StoragePolicy>) -> Self {
        let stride = policies.iter().map(|p| p.width()).max().unwrap_or(1);
        Self {
            policies,
            stride,
            policy: Vec::new(),
            length: Vec::new(),
            servers: Vec::new(),
        }
    }

    /// Room for `n` groups, allocated once.
    pub fn reserve(&mut self, n: usize) {
        self.policy.reserve(n);
        self.length.reserve(n);
        self.servers.reserve(n.saturating_mul(self.stride));
    }

    /// Adds a group of policy number `policy` (an index into the table's policies), `length`
    /// bytes, with its internal blocks on `servers` (in block order; a replicated group's
    /// replicas); returns its id.
    pub fn push(&mut self, policy: u8, length: u64, servers: &[u32]) -> GroupId {
        let id = GroupId(FIRST_GROUP_ID.0 + self.len() as u64);
        self.policy.push(policy);
        self.length.push(length);
        let mut slots = vec![NOWHERE; self.stride];
        for (slot, s) in slots.iter_mut().zip(servers) {
            *slot = *s;
        }
        self.servers.extend_from_slice(&slots);
        id
    }

    /// How many groups.
    pub fn len(&self) -> usize {
        self.policy.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.policy.is_empty()
    }

    /// The position of group `id` in the table.
    pub fn slot_of(&self, id: GroupId) -> Option<usize> {
        let n = usize::try_from(id.0.checked_sub(FIRST_GROUP_ID.0)?).ok()?;
        (n < self.len()).then_some(n)
    }

    /// The group's policy.
    pub fn policy(&self, n: usize) -> &StoragePolicy {
        &self.policies[usize::from(self.policy[n])]
    }

    /// The group's length.
    pub fn length(&self, n: usize) -> u64 {
        self.length[n]
    }

    /// The group's servers, one per slot ([`NOWHERE`] for none).
    pub fn servers(&self, n: usize) -> &[u32] {
        &self.servers[n * self.stride..(n + 1) * self.stride]
    }

    /// Records that internal block `index` of group `n` now lives on `to` instead of `from`
    /// (a rebuild replaced the copy lost with `from`): for a replicated group, the replica
    /// slot that held `from`.
    pub fn moved(&mut self, n: usize, index: u32, from: u32, to: u32) {
        let erasure_coded = self.policy(n).layout().is_some();
        let slots = &mut self.servers[n * self.stride..(n + 1) * self.stride];
        let slot = if erasure_coded {
            slots.get_mut(index as usize)
        } else {
            slots.iter_mut().find(|s| **s == from)
        };
        if let Some(s) = slot {
            *s = to;
        }
    }

    /// The internal blocks group `n` keeps on server `s`: (index, bytes). A block the layout
    /// leaves empty (a data block past the end of a short group) was never written: the
    /// server holds nothing of it.
    pub fn blocks_on(&self, n: usize, s: u32) -> Vec<(u32, u64)> {
        let policy = self.policy(n);
        let erasure_coded = policy.layout().is_some();
        self.servers(n)
            .iter()
            .enumerate()
            .filter(|(_, x)| **x == s)
            .map(|(slot, _)| {
                let index = if erasure_coded { slot as u32 } else { 0 };
                (index, policy.block_len(self.length[n], index as usize))
            })
            .filter(|(_, len)| *len > 0)
            .collect()
    }

    /// The file inode of file `f` (its groups are `f * GROUPS_PER_FILE..`).
    fn file(&self, f: u64) -> Option<Inode> {
        let first = usize::try_from(f.checked_mul(GROUPS_PER_FILE)?).ok()?;
        if first >= self.len() {
            return None;
        }
        let last = (first + GROUPS_PER_FILE as usize).min(self.len());
        let length = (first..last).map(|n| self.length[n]).sum();
        Some(Inode {
            id: file_inode(f),
            parent: raftfs_core::namespace::inode::ROOT_ID,
            name: format!("f{f}"),
            kind: InodeKind::File,
            permission: 0o644,
            owner: "fleet".into(),
            policy: self.policy(first).clone(),
            length,
            block_size: self.length[first].max(1),
            block_groups: (last - first) as u32,
            ..Inode::root()
        })
    }

    /// Group `n` as the namespace stores it.
    fn group(&self, n: usize) -> BlockGroup {
        let f = n as u64 / GROUPS_PER_FILE;
        let first = (f * GROUPS_PER_FILE) as usize;
        BlockGroup {
            id: GroupId(FIRST_GROUP_ID.0 + n as u64),
            inode: file_inode(f),
            index: (n - first) as u32,
            offset: (first..n).map(|m| self.length[m]).sum(),
            length: Some(self.length[n]),
            targets: self
                .servers(n)
                .iter()
                .filter(|s| **s != NOWHERE)
                .map(|s| BlockServerId(u64::from(*s) + 1))
                .collect(),
        }
    }

    /// Heap bytes the table holds.
    pub fn heap_bytes(&self) -> usize {
        self.policy.capacity() + self.length.capacity() * 8 + self.servers.capacity() * 4
    }
}

fn file_inode(f: u64) -> InodeId {
    InodeId(FIRST_ALLOCATED_ID.0 + f)
}

/// The store the scan reads: [`Groups`] answered with the namespace's encodings, and the rest
/// of the namespace (settings) in memory.
#[derive(Debug)]
pub struct FleetKv {
    pub groups: Groups,
    rest: MemKv,
}

impl FleetKv {
    pub fn new(groups: Groups) -> Self {
        Self {
            groups,
            rest: MemKv::new(),
        }
    }

    /// Applies a budget change as the state machine applies `metactl reconstruction
    /// throttle`; returns the settings now.
    pub fn throttle(&mut self, change: &ThrottleChange) -> anyhow::Result<ThrottleSettings> {
        let mut txn = Txn::new(&*self);
        let settings = throttle::apply(&mut txn, change)
            .map_err(|e| anyhow::anyhow!("throttle change refused: {e}"))?;
        let writes = txn.into_writes();
        self.rest.commit(writes);
        Ok(settings)
    }

    /// Applies an admin state change to `server` at `now_ms`, as the state machine applies
    /// `metactl blockserver decommission` (the scan reads it from here).
    pub fn admin(
        &mut self,
        server: BlockServerId,
        change: raftfs_core::namespace::admin_state::AdminChange,
        now_ms: u64,
    ) -> anyhow::Result<()> {
        let mut txn = Txn::new(&*self);
        raftfs_core::namespace::admin_state::set(&mut txn, server, change, now_ms)
            .map_err(|e| anyhow::anyhow!("admin change refused: {e}"))?;
        let writes = txn.into_writes();
        self.rest.commit(writes);
        Ok(())
    }

    fn group_key(key: &[u8]) -> Option<usize> {
        let id = u64::from_be_bytes(key.try_into().ok()?);
        usize::try_from(id.checked_sub(FIRST_GROUP_ID.0)?).ok()
    }
}

impl KvRead for FleetKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match cf {
            Cf::BlockGroups => Ok(Self::group_key(key)
                .filter(|n| *n < self.groups.len())
                .map(|n| encode(&self.groups.group(n)))),
            Cf::Inodes => {
                let file = <[u8; 8]>::try_from(key)
                    .ok()
                    .map(u64::from_be_bytes)
                    .and_then(|id| id.checked_sub(FIRST_ALLOCATED_ID.0))
                    .and_then(|f| self.groups.file(f));
                match file {
                    Some(inode) => Ok(Some(encode(&inode))),
                    None => self.rest.get(cf, key),
                }
            }
            _ => self.rest.get(cf, key),
        }
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        if cf != Cf::BlockGroups || !prefix.is_empty() {
            return self.rest.scan(cf, prefix, after, limit);
        }
        let from = match after {
            None => 0,
            Some(k) => match Self::group_key(k) {
                Some(n) => n + 1,
                // A key below the first group: from the start; any other: past the end.
                None if k < keys::group(FIRST_GROUP_ID).as_slice() => 0,
                None => self.groups.len(),
            },
        };
        let to = from.saturating_add(limit).min(self.groups.len());
        Ok((from..to)
            .map(|n| {
                let g = self.groups.group(n);
                (keys::group(g.id), encode(&g))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftfs_core::namespace::blocks;

    fn table() -> Groups {
        let mut g = Groups::new(vec![
            "RS-6-3-1024k".parse().expect("policy"),
            StoragePolicy::Replicated(3),
        ]);
        for n in 0..10u32 {
            let servers: Vec<u32> = if n % 2 == 0 {
                (n..n + 9).collect()
            } else {
                vec![n, n + 1, n + 2]
            };
            g.push((n % 2) as u8, 100 << 20, &servers);
        }
        g
    }

    /// The scan's reads decode to what the table holds, through the namespace's own
    /// functions: pages in id order, files with their policy, no generation record.
    #[test]
    fn the_store_answers_the_scans_reads_from_the_table() {
        let kv = FleetKv::new(table());
        let page = blocks::page(&kv, None, 4).expect("page");
        assert_eq!(page.len(), 4);
        assert_eq!(page[0].id, FIRST_GROUP_ID);
        let rest = blocks::page(&kv, Some(page[3].id), 100).expect("page");
        assert_eq!(rest.len(), 6);
        assert_eq!(rest[0].index, 0, "every group opens its own file");
        assert_eq!(rest[1].offset, 0);
        let file = raftfs_core::namespace::tree::load_inode(&kv, rest[0].inode)
            .expect("load")
            .expect("file");
        assert_eq!(file.policy, "RS-6-3-1024k".parse().expect("policy"));
        assert_eq!(
            blocks::generation(&kv, rest[0].id).expect("generation"),
            raftfs_core::namespace::blocks::Generation::FIRST
        );
        assert_eq!(rest[1].targets.len(), 3);
    }

    #[test]
    fn a_rebuilt_block_moves_in_the_table() {
        let mut g = table();
        assert_eq!(
            g.blocks_on(0, 4),
            vec![(4, g.policy(0).block_len(100 << 20, 4))]
        );
        g.moved(0, 4, 4, 50);
        assert!(g.blocks_on(0, 4).is_empty());
        assert_eq!(g.blocks_on(0, 50).len(), 1);
        g.moved(1, 0, 2, 60);
        assert_eq!(g.servers(1)[..3], [1, 60, 3]);
        let mut kv = FleetKv::new(g);
        let s = kv
            .throttle(&ThrottleChange {
                rack_pairs: vec![("r1".into(), "r2".into(), 8_000_000)],
                ..ThrottleChange::default()
            })
            .expect("throttle");
        assert_eq!(throttle::load(&kv).expect("load"), s);
    }
}
