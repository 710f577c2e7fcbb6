//! The volumes of a blockserver: one [`Store`] per data directory (one per disk), and the
//! news of every block that appears or goes, for the block reports.
//!
//! A new block goes to the volume with the most room (available space above
//! `reserved-bytes`; volumes within a margin of each other take turns). When an operation on
//! a volume fails with an I/O error, the volume is probed (its directories are there, a small
//! file can be written, synced and removed), as HDFS's disk checker does; a volume that fails
//! the probe is taken out of use for good (until a restart): no new blocks, its blocks no
//! longer found or reported, and the metaservers rebuild what it held elsewhere once the next
//! full report no longer lists it. An error the probe does not confirm (a read racing a
//! deletion, one bad file) fails only that operation.
//!
//! Everything here is synchronous file-system work: callers run it on blocking threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::broadcast;

use crate::error::BlockError;
use crate::pools::Pool;
use crate::store::{BlockId, BlockWriter, Chunks, Generation, Listed, Store, StoreError};

/// How many block events may wait for a slow metaserver link before it falls back to a full
/// report (a `Lagged` receiver).
const EVENT_BACKLOG: usize = 1 << 16;

/// A writer re-reads the free space of its volume after this many bytes (or sooner when the
/// room it last saw runs out), so that a stream of small messages costs few `statvfs` calls.
/// Concurrent writers may therefore dip into the reserve by up to this much each.
const ROOM_RECHECK_BYTES: u64 = 8 << 20;

/// A change of the blocks this server holds, as the block reports carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEvent {
    /// A block was finalized with this length and generation, or restamped.
    Added {
        block: BlockId,
        length: u64,
        generation: Generation,
    },
    /// A block was deleted (or was asked to be and is not here).
    Removed(BlockId),
    /// A volume failed: its blocks are gone from this server, which a full report says.
    VolumeFailed,
}

impl BlockEvent {
    /// The pool of the block it is about (`None`: a volume's, every pool's).
    pub fn pool(&self) -> Option<u64> {
        match self {
            BlockEvent::Added { block, .. } | BlockEvent::Removed(block) => Some(block.pool),
            BlockEvent::VolumeFailed => None,
        }
    }
}

/// What a deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Removed,
    /// Not here (reported removed all the same).
    Absent,
    /// Stamped newer than the deletion named: kept.
    Kept,
}

/// Storage figures for heartbeats and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Storage {
    /// Size of the file systems of the working volumes.
    pub capacity: u64,
    /// Bytes of block data on the working volumes.
    pub used: u64,
    /// Space new blocks may still take: free space above the reserve, summed.
    pub available: u64,
    /// Volumes configured.
    pub volumes: u32,
    /// Volumes out of use (failed at open or since).
    pub failed_volumes: u32,
}

/// One volume as the operator pages show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeView {
    pub root: String,
    /// Not taken out of use by a failed probe.
    pub working: bool,
    pub capacity: u64,
    /// Free space above the reserve.
    pub available: u64,
    pub used: u64,
    pub pools: Vec<PoolUse>,
}

/// One pool's share of a volume.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolUse {
    pub pool: u64,
    pub blocks: u64,
    pub used: u64,
}

/// Size and free space of a file system.
#[derive(Debug, Clone, Copy)]
struct FsSpace {
    total: u64,
    available: u64,
}

/// Whether a volume still works: the directories of its pools (`roots`) exist and a small
/// file can be written, synced and removed. A full disk still works (it fails writes with
/// `NoSpace`).
fn probe(roots: &[PathBuf]) -> Result<(), std::io::Error> {
    use std::io::Write;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    for root in roots {
        for dir in ["finalized", "tmp"] {
            if !root.join(dir).is_dir() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{}/{dir}/ is gone", root.display()),
                ));
            }
        }
    }
    let Some(root) = roots.first() else {
        return Ok(());
    };
    let path = root
        .join("tmp")
        .join(format!(".probe-{}", SEQ.fetch_add(1, Ordering::Relaxed)));
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(b"raftfs volume probe")?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    match written.and(removed) {
        Err(e) if e.kind() != std::io::ErrorKind::StorageFull => Err(e),
        _ => Ok(()),
    }
}

fn fs_space(path: &Path) -> Result<FsSpace, StoreError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| StoreError::Io {
        path: path.to_owned(),
        source: std::io::Error::from(e),
    })?;
    let bytes = |blocks: u128| {
        let frsize = st.fragment_size() as u128;
        u64::try_from(blocks.saturating_mul(frsize)).unwrap_or(u64::MAX)
    };
    Ok(FsSpace {
        total: bytes(st.blocks() as u128),
        available: bytes(st.blocks_available() as u128),
    })
}

/// One pool's blocks on one volume.
#[derive(Debug)]
struct PoolStore {
    pool: u64,
    store: Store,
    /// Bytes of finalized block data.
    used: AtomicU64,
    /// Finalized blocks.
    blocks: AtomicU64,
}

#[derive(Debug)]
struct Volume {
    root: PathBuf,
    /// One store per pool, in the pool's directory.
    stores: Vec<PoolStore>,
    failed: AtomicBool,
}

impl Volume {
    fn working(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    /// The store of `id`'s pool; a pool this server does not keep holds no block.
    fn store(&self, id: BlockId) -> Result<&Store, StoreError> {
        self.pool(id.pool)
            .map(|p| &p.store)
            .ok_or(StoreError::NotFound(id))
    }

    fn pool(&self, pool: u64) -> Option<&PoolStore> {
        self.stores.iter().find(|p| p.pool == pool)
    }

    /// Bytes of block data, every pool's.
    fn used(&self) -> u64 {
        self.stores
            .iter()
            .map(|p| p.used.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// Opens the stores of `pools` in the volume at `root` (creating their directories),
    /// each with the bytes of the blocks it holds.
    fn open(root: &Path, pools: &[Pool]) -> Result<Vec<PoolStore>, StoreError> {
        let mut stores = Vec::with_capacity(pools.len());
        for pool in pools {
            let dir = pool.dir(root);
            std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
            let store = Store::open_pool(&dir, pool.id)?;
            let listed = store.list()?;
            let used = listed.iter().fold(0u64, |u, b| u.saturating_add(b.length));
            stores.push(PoolStore {
                pool: pool.id,
                store,
                used: AtomicU64::new(used),
                blocks: AtomicU64::new(listed.len() as u64),
            });
        }
        Ok(stores)
    }
}

/// Every volume of this server.
#[derive(Debug)]
pub struct Volumes {
    volumes: Vec<Volume>,
    /// Directories that could not be opened at start.
    failed_at_open: u32,
    reserved: u64,
    /// Where the search for the roomiest volume starts, so that equal volumes (several
    /// directories of one file system) take turns.
    next: AtomicUsize,
    events: broadcast::Sender<BlockEvent>,
}

/// Volumes whose room is within this much of the roomiest one count as equally roomy and take
/// turns. Always picking the single roomiest would put every concurrent write on one disk
/// (HDFS's available-space policy has the same balance margin, 10 GiB there).
const BALANCE_MARGIN: u64 = 1 << 30;

/// The volume for a new block: among those with room within `margin` of the roomiest,
/// the `start`-th (mod their number); `None` if no volume has any room.
fn roomiest(rooms: &[(usize, u64)], margin: u64, start: usize) -> Option<usize> {
    let most = rooms.iter().map(|(_, r)| *r).max().filter(|m| *m > 0)?;
    let near: Vec<usize> = rooms
        .iter()
        .filter(|(_, r)| *r > 0 && r.saturating_add(margin) >= most)
        .map(|(v, _)| *v)
        .collect();
    near.get(start % near.len().max(1)).copied()
}

impl Volumes {
    /// Opens every directory (creating it) with a store for each of `pools`. A directory
    /// that cannot be opened counts as a failed volume; the server runs as long as one volume
    /// works.
    pub fn open(dirs: &[PathBuf], pools: &[Pool], reserved: u64) -> Result<Self, BlockError> {
        let mut volumes = Vec::new();
        let mut failed_at_open = 0u32;
        for dir in dirs {
            match Volume::open(dir, pools) {
                Ok(stores) => volumes.push(Volume {
                    root: dir.clone(),
                    stores,
                    failed: AtomicBool::new(false),
                }),
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "volume failed to open");
                    failed_at_open += 1;
                }
            }
        }
        if volumes.is_empty() {
            return Err(BlockError::NoVolume(failed_at_open));
        }
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Ok(Self {
            volumes,
            failed_at_open,
            reserved,
            next: AtomicUsize::new(0),
            events,
        })
    }

    /// News of every block added or removed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BlockEvent> {
        self.events.subscribe()
    }

    fn publish(&self, event: BlockEvent) {
        // No receiver (no metaserver configured) is fine: nobody to tell.
        let _ = self.events.send(event);
    }

    /// Takes volume `v` out of use when an I/O error on it is confirmed by a failed probe.
    fn check<T>(&self, v: usize, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let Err(StoreError::Io { path, source }) = &r else {
            return r;
        };
        let Some(vol) = self.volumes.get(v) else {
            return r;
        };
        let roots: Vec<PathBuf> = vol
            .stores
            .iter()
            .map(|p| p.store.root().to_owned())
            .collect();
        match probe(&roots) {
            Ok(()) => tracing::warn!(
                volume = %vol.root.display(), path = %path.display(), error = %source,
                "i/o error on a volume that still passes its probe"
            ),
            Err(why) => {
                if !vol.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        volume = %vol.root.display(), path = %path.display(), error = %source,
                        probe = %why, "volume failed: taken out of use"
                    );
                    self.publish(BlockEvent::VolumeFailed);
                }
            }
        }
        r
    }

    fn working(&self) -> impl Iterator<Item = (usize, &Volume)> {
        self.volumes.iter().enumerate().filter(|(_, v)| v.working())
    }

    fn failed_count(&self) -> u32 {
        let since = self.volumes.iter().filter(|v| !v.working()).count();
        self.failed_at_open + u32::try_from(since).unwrap_or(u32::MAX)
    }

    fn no_volume(&self) -> BlockError {
        BlockError::NoVolume(self.failed_count())
    }

    /// The volume holding finalized block `id`, and the block's length.
    fn locate(&self, id: BlockId) -> Result<(usize, u64), BlockError> {
        let mut any = false;
        for (v, vol) in self.working() {
            any = true;
            match self.check(v, vol.store(id).and_then(|s| s.length(id))) {
                Ok(len) => return Ok((v, len)),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if any {
            Err(StoreError::NotFound(id).into())
        } else {
            Err(self.no_volume())
        }
    }

    /// The length of a finalized block.
    pub fn length(&self, id: BlockId) -> Result<u64, BlockError> {
        self.locate(id).map(|(_, len)| len)
    }

    /// The generation a finalized block is stamped with.
    pub fn generation(&self, id: BlockId) -> Result<Generation, BlockError> {
        self.read_with(id, |store| store.generation(id))
    }

    /// A finalized block's length, generation and stored chunk checksums.
    pub fn checksums(&self, id: BlockId) -> Result<(u64, Generation, Vec<u32>), BlockError> {
        self.read_with(id, |store| store.checksums(id))
    }

    /// Stamps finalized block `id` with `generation` (lease recovery; see
    /// [`Store::restamp`]) and reports it so; returns its length.
    pub fn restamp(&self, id: BlockId, generation: Generation) -> Result<u64, BlockError> {
        let length = self.read_with(id, |store| store.restamp(id, generation))?;
        self.publish(BlockEvent::Added {
            block: id,
            length,
            generation,
        });
        Ok(length)
    }

    /// Reads `len` bytes at `offset`, verifying their checksums.
    pub fn read(&self, id: BlockId, offset: u64, len: u64) -> Result<Vec<u8>, BlockError> {
        self.read_with(id, |store| store.read(id, offset, len))
    }

    /// The whole chunks holding `[offset, offset+len)`, verified, with their stored
    /// checksums (for a reader that checks them again: `ReadBlock` with checksums).
    pub fn read_chunks(&self, id: BlockId, offset: u64, len: u64) -> Result<Chunks, BlockError> {
        self.read_with(id, |store| store.read_chunks(id, offset, len))
    }

    fn read_with<T>(
        &self,
        id: BlockId,
        read: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, BlockError> {
        let (v, _) = self.locate(id)?;
        let vol = &self.volumes[v];
        let store = vol.store(id)?;
        match self.check(v, read(store)) {
            // A block deleted while it is being read can lose its checksum file under the
            // reader; that is not a corrupt block.
            Err(StoreError::Corrupt { .. })
                if matches!(store.length(id), Err(StoreError::NotFound(_))) =>
            {
                Err(StoreError::NotFound(id).into())
            }
            r => Ok(r?),
        }
    }

    /// The room volume `v` has for new bytes: free space above the reserve.
    fn room(&self, v: usize) -> Result<u64, StoreError> {
        let vol = &self.volumes[v];
        let space = self.check(v, fs_space(&vol.root))?;
        Ok(space.available.saturating_sub(self.reserved))
    }

    /// Starts block `id`, stamped `generation`, on the volume with the most room. Fails with
    /// `NoSpace` when no volume has room above its reserve, and with `AlreadyExists` when any
    /// volume has it.
    pub fn create(
        self: &Arc<Self>,
        id: BlockId,
        generation: Generation,
    ) -> Result<VolumeWriter, BlockError> {
        match self.locate(id) {
            Ok(_) => return Err(StoreError::AlreadyExists(id).into()),
            Err(BlockError::Store(StoreError::NotFound(_))) => {}
            Err(e) => return Err(e),
        }
        let mut rooms = Vec::new();
        let mut measured = None;
        for (v, vol) in self.working() {
            if let Ok(room) = self.room(v) {
                rooms.push((v, room));
                measured.get_or_insert_with(|| vol.root.clone());
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(v) = roomiest(&rooms, BALANCE_MARGIN, start) else {
            return Err(match measured {
                Some(root) => StoreError::NoSpace(root).into(),
                None => self.no_volume(),
            });
        };
        let room = rooms.iter().find(|(i, _)| *i == v).map_or(0, |(_, r)| *r);
        let store = self.volumes[v].store(id)?;
        let writer = self.check(v, store.create(id, generation))?;
        Ok(VolumeWriter {
            volumes: Arc::clone(self),
            volume: v,
            writer,
            room,
            since_check: 0,
        })
    }

    /// Deletes block `id` wherever it is; returns whether it was there. Either way it is
    /// reported removed: a metaserver that asked for the deletion of a block this server
    /// does not have should forget it.
    pub fn delete(&self, id: BlockId) -> Result<bool, BlockError> {
        self.delete_up_to(id, None).map(|d| d == Deleted::Removed)
    }

    /// Deletes block `id` if it is stamped `up_to` or older (any, for `None`; see
    /// [`Store::delete_up_to`]). A block gone or absent is reported removed; one kept for
    /// being newer is not (its newer stamp was reported when it was restamped).
    pub fn delete_up_to(
        &self,
        id: BlockId,
        up_to: Option<Generation>,
    ) -> Result<Deleted, BlockError> {
        let found = match self.locate(id) {
            Ok((v, len)) => {
                let vol = &self.volumes[v];
                match self.check(v, vol.store(id).and_then(|s| s.delete_up_to(id, up_to))) {
                    Ok(false) => return Ok(Deleted::Kept),
                    Ok(true) => {
                        if let Some(p) = vol.pool(id.pool) {
                            let _ =
                                p.used
                                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                                        Some(u.saturating_sub(len))
                                    });
                            let _ =
                                p.blocks
                                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                        Some(n.saturating_sub(1))
                                    });
                        }
                        true
                    }
                    Err(StoreError::NotFound(_)) => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(BlockError::Store(StoreError::NotFound(_))) => false,
            Err(e) => return Err(e),
        };
        self.publish(BlockEvent::Removed(id));
        Ok(if found {
            Deleted::Removed
        } else {
            Deleted::Absent
        })
    }

    /// Every finalized block on the working volumes, with its length and generation: a full
    /// block report. A volume that fails to list is taken out of use and left out.
    pub fn list(&self) -> Vec<Listed> {
        self.list_where(|_| true)
    }

    /// The blocks of pool `pool` alone: a full report to its nameservice.
    pub fn list_pool(&self, pool: u64) -> Vec<Listed> {
        self.list_where(|p| p == pool)
    }

    fn list_where(&self, pools: impl Fn(u64) -> bool) -> Vec<Listed> {
        let mut out = Vec::new();
        for (v, vol) in self.working() {
            for p in vol.stores.iter().filter(|p| pools(p.pool)) {
                if let Ok(blocks) = self.check(v, p.store.list()) {
                    out.extend(blocks);
                }
            }
        }
        out.sort();
        out
    }

    /// Bytes of pool `pool`'s block data on the working volumes (its nameservice's share of
    /// this server, DESIGN §10).
    pub fn pool_used(&self, pool: u64) -> u64 {
        self.working()
            .filter_map(|(_, vol)| vol.pool(pool))
            .map(|p| p.used.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// Every volume as the operator pages show it: its file system's size and room, and
    /// each pool's blocks and bytes on it (counted as blocks come and go, not listed).
    pub fn views(&self) -> Vec<VolumeView> {
        self.volumes
            .iter()
            .map(|vol| {
                let space = fs_space(&vol.root).ok();
                VolumeView {
                    root: vol.root.display().to_string(),
                    working: vol.working(),
                    capacity: space.map_or(0, |s| s.total),
                    available: space.map_or(0, |s| s.available.saturating_sub(self.reserved)),
                    used: vol.used(),
                    pools: vol
                        .stores
                        .iter()
                        .map(|p| PoolUse {
                            pool: p.pool,
                            blocks: p.blocks.load(Ordering::Relaxed),
                            used: p.used.load(Ordering::Relaxed),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Directories that could not be opened at start (counted as failed volumes).
    pub fn failed_at_open(&self) -> u32 {
        self.failed_at_open
    }

    /// Capacity, use and room of the working volumes.
    pub fn storage(&self) -> Storage {
        let mut s = Storage {
            volumes: u32::try_from(self.volumes.len())
                .unwrap_or(u32::MAX)
                .saturating_add(self.failed_at_open),
            ..Storage::default()
        };
        for (v, vol) in self.working() {
            if let Ok(space) = self.check(v, fs_space(&vol.root)) {
                s.capacity = s.capacity.saturating_add(space.total);
                s.available = s
                    .available
                    .saturating_add(space.available.saturating_sub(self.reserved));
                s.used = s.used.saturating_add(vol.used());
            }
        }
        s.failed_volumes = self.failed_count();
        s
    }
}

/// A block being written on one volume, refused (`NoSpace`, its bytes removed) as soon as it
/// would eat into the volume's reserve.
#[derive(Debug)]
pub struct VolumeWriter {
    volumes: Arc<Volumes>,
    volume: usize,
    writer: BlockWriter,
    /// Room the volume had at the last check, less what this writer wrote since.
    room: u64,
    since_check: u64,
}

impl VolumeWriter {
    /// Appends `buf`.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), BlockError> {
        let len = buf.len() as u64;
        if len > self.room || self.since_check >= ROOM_RECHECK_BYTES {
            self.room = self.volumes.room(self.volume)?;
            self.since_check = 0;
            if len > self.room {
                let root = self.volumes.volumes[self.volume].root.clone();
                return Err(StoreError::NoSpace(root).into());
            }
        }
        let r = self.writer.write(buf);
        self.volumes.check(self.volume, r)?;
        self.room -= len;
        self.since_check += len;
        Ok(())
    }

    /// The block being written.
    pub fn id(&self) -> BlockId {
        self.writer.id()
    }

    /// Bytes written so far.
    pub fn length(&self) -> u64 {
        self.writer.length()
    }

    /// Makes the block durable and visible and announces it to the block reports; returns
    /// its length.
    pub fn finalize(self) -> Result<u64, BlockError> {
        let Self {
            volumes,
            volume,
            writer,
            ..
        } = self;
        let id = writer.id();
        let generation = writer.generation();
        let length = volumes.check(volume, writer.finalize())?;
        if let Some(p) = volumes.volumes[volume].pool(id.pool) {
            p.used.fetch_add(length, Ordering::Relaxed);
            p.blocks.fetch_add(1, Ordering::Relaxed);
        }
        volumes.publish(BlockEvent::Added {
            block: id,
            length,
            generation,
        });
        Ok(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(group: u64) -> BlockId {
        BlockId {
            pool: 0,
            group,
            index: 0,
        }
    }

    #[test]
    fn the_roomiest_volumes_take_turns() {
        assert_eq!(roomiest(&[(0, 5), (1, 9), (2, 7)], 0, 0), Some(1));
        assert_eq!(roomiest(&[(0, 5), (1, 9), (2, 7)], 0, 1), Some(1));
        assert_eq!(roomiest(&[(0, 0), (1, 0)], 10, 0), None);
        assert_eq!(roomiest(&[], 10, 3), None);
        let picks: Vec<_> = (0..4)
            .map(|s| roomiest(&[(0, 40), (1, 10), (2, 35)], 5, s).expect("room"))
            .collect();
        assert_eq!(
            picks,
            vec![0, 2, 0, 2],
            "within the margin: turns; below: none"
        );
        assert_eq!(
            roomiest(&[(0, 0), (1, 3)], 100, 0),
            Some(1),
            "a full one never"
        );
    }

    #[test]
    fn blocks_spread_over_volumes_and_are_found_listed_and_counted() {
        let dirs = [
            tempfile::tempdir().expect("d1"),
            tempfile::tempdir().expect("d2"),
        ];
        let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_owned()).collect();
        let vols = Arc::new(Volumes::open(&paths, &[Pool::unnamed()], 0).expect("open"));
        let mut events = vols.subscribe();
        for g in 1..=6u64 {
            let mut w = vols.create(id(g), Generation::FIRST).expect("create");
            w.write(&vec![g as u8; 1000]).expect("write");
            assert_eq!(w.finalize().expect("finalize"), 1000);
        }
        for d in &paths {
            let n = std::fs::read_dir(d.join("finalized")).expect("dir").count();
            assert!(n > 0, "{} holds no block", d.display());
        }
        assert_eq!(vols.list().len(), 6);
        assert_eq!(vols.length(id(3)).expect("len"), 1000);
        assert_eq!(vols.read(id(3), 10, 3).expect("read"), vec![3u8; 3]);
        assert!(matches!(
            vols.create(id(3), Generation::FIRST),
            Err(BlockError::Store(StoreError::AlreadyExists(_)))
        ));
        let s = vols.storage();
        assert_eq!((s.volumes, s.failed_volumes, s.used), (2, 0, 6000));
        assert!(s.capacity > 0);
        assert!(vols.delete(id(3)).expect("delete"));
        assert!(!vols.delete(id(3)).expect("delete again"));
        assert_eq!(vols.storage().used, 5000);
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push(e);
        }
        assert_eq!(seen.len(), 8);
        assert_eq!(
            seen[2],
            BlockEvent::Added {
                block: id(3),
                length: 1000,
                generation: Generation::FIRST,
            }
        );
        assert_eq!(seen[6..], [BlockEvent::Removed(id(3)); 2]);
    }

    /// The pages' block counts, kept as blocks come and go, agree with a listing: through
    /// finalizes, a refused second stream, a restamp, deletes (once counted) and a reopen.
    #[test]
    fn volume_views_count_blocks_as_a_listing_would() {
        let dirs = [
            tempfile::tempdir().expect("d1"),
            tempfile::tempdir().expect("d2"),
        ];
        let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_owned()).collect();
        let counted = |vols: &Volumes| -> (u64, u64) {
            let views = vols.views();
            assert!(views.iter().all(|v| v.working && v.capacity > 0));
            let blocks = views.iter().flat_map(|v| &v.pools).map(|p| p.blocks).sum();
            let used = views.iter().map(|v| v.used).sum();
            (blocks, used)
        };
        let vols = Volumes::open(&paths, &[Pool::unnamed()], 0).expect("open");
        let vols = Arc::new(vols);
        for g in 1..=5u64 {
            let mut w = vols.create(id(g), Generation::FIRST).expect("create");
            w.write(&[7u8; 100]).expect("write");
            w.finalize().expect("finalize");
        }
        assert!(
            vols.create(id(2), Generation::FIRST).is_err(),
            "a second stream"
        );
        vols.restamp(id(4), Generation(2)).expect("restamp");
        assert_eq!(counted(&vols), (5, 500));
        assert!(vols.delete(id(1)).expect("delete"));
        assert!(!vols.delete(id(1)).expect("delete again"));
        assert_eq!(counted(&vols), (4, 400));
        assert_eq!(vols.list().len(), 4);
        drop(vols);
        let reopened = Volumes::open(&paths, &[Pool::unnamed()], 0).expect("reopen");
        assert_eq!(counted(&reopened), (4, 400));
        assert_eq!(reopened.failed_at_open(), 0);
    }

    #[test]
    fn pools_keep_their_blocks_apart() {
        let dir = tempfile::tempdir().expect("dir");
        let ns =
            |n: &str| Pool::named(raftfs_core::federation::NameserviceId::parse(n).expect("name"));
        let pools = [Pool::unnamed(), ns("ns1"), ns("ns2")];
        let vols = Arc::new(Volumes::open(&[dir.path().to_owned()], &pools, 0).expect("open"));
        // The same group and index in each pool: three different blocks.
        for (i, pool) in pools.iter().enumerate() {
            let b = BlockId {
                pool: pool.id,
                ..id(7)
            };
            let mut w = vols.create(b, Generation::FIRST).expect("create");
            w.write(&vec![i as u8; 10 + i]).expect("write");
            w.finalize().expect("finalize");
        }
        for (i, pool) in pools.iter().enumerate() {
            let b = BlockId {
                pool: pool.id,
                ..id(7)
            };
            assert_eq!(vols.read(b, 0, 1).expect("read"), vec![i as u8]);
            assert_eq!(vols.list_pool(pool.id).len(), 1);
            let file = pool
                .dir(dir.path())
                .join("finalized/blk_0000000000000007_0");
            assert_eq!(std::fs::metadata(&file).expect("file").len(), 10 + i as u64);
        }
        // A deletion in one pool leaves the others' copies alone.
        assert!(
            vols.delete(BlockId {
                pool: pools[1].id,
                ..id(7)
            })
            .expect("delete")
        );
        assert_eq!(vols.list().len(), 2);
        assert!(vols.list_pool(pools[1].id).is_empty());
        // A pool this server does not keep holds nothing and takes nothing.
        let other = BlockId {
            pool: ns("ns9").id,
            ..id(7)
        };
        assert!(matches!(
            vols.length(other),
            Err(BlockError::Store(StoreError::NotFound(_)))
        ));
        assert!(vols.create(other, Generation::FIRST).is_err());
        // Reopened, each pool finds its blocks again.
        drop(vols);
        let vols = Volumes::open(&[dir.path().to_owned()], &pools, 0).expect("reopen");
        assert_eq!(vols.list_pool(pools[2].id).len(), 1);
        assert_eq!(vols.storage().used, 10 + 12);
        assert_eq!(
            (
                vols.pool_used(pools[0].id),
                vols.pool_used(pools[1].id),
                vols.pool_used(pools[2].id)
            ),
            (10, 0, 12)
        );
    }

    #[test]
    fn a_volume_without_room_above_its_reserve_takes_nothing_and_keeps_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let vols = Arc::new(
            Volumes::open(&[dir.path().to_owned()], &[Pool::unnamed()], u64::MAX / 2)
                .expect("open"),
        );
        assert!(matches!(
            vols.create(id(1), Generation::FIRST),
            Err(BlockError::Store(StoreError::NoSpace(_)))
        ));
        assert_eq!(vols.storage().available, 0);
        assert!(vols.list().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .expect("tmp")
                .count(),
            0
        );
    }

    #[test]
    fn an_io_error_on_a_volume_that_passes_its_probe_fails_only_that_operation() {
        let dir = tempfile::tempdir().expect("dir");
        let vols = Volumes::open(&[dir.path().to_owned()], &[Pool::unnamed()], 0).expect("open");
        let mut events = vols.subscribe();
        let r: Result<(), StoreError> = vols.check(
            0,
            Err(StoreError::Io {
                path: dir.path().join("x"),
                source: std::io::Error::other("one bad file"),
            }),
        );
        assert!(r.is_err());
        assert_eq!(vols.storage().failed_volumes, 0);
        assert!(events.try_recv().is_err(), "no failure announced");
    }

    #[test]
    fn a_failed_volume_is_taken_out_of_use() {
        let dirs = [
            tempfile::tempdir().expect("d1"),
            tempfile::tempdir().expect("d2"),
        ];
        let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("vol")).collect();
        let vols = Arc::new(Volumes::open(&paths, &[Pool::unnamed()], 0).expect("open"));
        let mut events = vols.subscribe();
        // The first disk vanishes: its directory is gone from under the store.
        std::fs::remove_dir_all(&paths[0]).expect("remove");
        for g in 1..=4 {
            match vols.create(id(g), Generation::FIRST) {
                Ok(mut w) => {
                    w.write(b"abc").expect("write");
                    w.finalize().expect("finalize");
                }
                // The attempt that finds the disk gone fails; later ones avoid it.
                Err(BlockError::Store(StoreError::Io { .. })) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let s = vols.storage();
        assert_eq!((s.volumes, s.failed_volumes), (2, 1));
        assert!(vols.list().len() >= 3);
        let mut failed = 0;
        while let Ok(e) = events.try_recv() {
            failed += usize::from(e == BlockEvent::VolumeFailed);
        }
        assert_eq!(failed, 1, "the failure is announced once");
    }
}
