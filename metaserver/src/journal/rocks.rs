//! RocksDB plumbing shared by the log store and the state machine: options, opening with
//! column families, and the namespace's [`KvRead`] over a DB or a consistent DB snapshot.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options,
    ReadOptions, SnapshotWithThreadMode, WriteBufferManager,
};

use crate::namespace::StoreError;
use crate::namespace::kv::{Cf, KvPair, KvRead};

/// Default block cache of a metaserver (`storage.block-cache-bytes`).
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 256 << 20;
/// Default memtable budget of a metaserver (`storage.memtable-bytes`). Without a budget each
/// of the ten column families may hold two 64 MiB memtables, and a member's memory grew with
/// the write rate across them (1.3 GB on the active while it reclaimed a 10-million-file
/// tree).
pub const DEFAULT_MEMTABLE_BYTES: usize = 128 << 20;

/// The memory RocksDB may hold in one process, shared by every DB it opens there (the log,
/// the namespace, a namespace being installed from a snapshot, the generator's output): one
/// block cache (data, index and filter blocks) and one memtable budget. Past the budget,
/// RocksDB flushes the largest memtable. So what a metaserver holds of its namespace is set
/// by configuration, not by the number of objects (as TiKV shares one cache and one
/// write-buffer manager across its DBs).
#[derive(Clone)]
pub struct Memory {
    cache: Cache,
    memtables: WriteBufferManager,
}

impl Memory {
    /// A block cache of `block_cache_bytes` and memtables of at most `memtable_bytes`.
    pub fn new(block_cache_bytes: usize, memtable_bytes: usize) -> Self {
        Self {
            cache: Cache::new_lru_cache(block_cache_bytes),
            // No stall: a write waits for no flush (the log's fsync is what clients wait
            // on); the budget is kept by flushing early.
            memtables: WriteBufferManager::new_write_buffer_manager(memtable_bytes, false),
        }
    }

    /// Bytes held by the block cache now (pinned index and filter blocks included).
    pub fn block_cache_usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// Bytes held by memtables now, across every DB.
    pub fn memtable_usage(&self) -> usize {
        self.memtables.get_usage()
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self::new(DEFAULT_BLOCK_CACHE_BYTES, DEFAULT_MEMTABLE_BYTES)
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("block_cache_usage", &self.block_cache_usage())
            .field("memtable_usage", &self.memtable_usage())
            .finish()
    }
}

/// Column-family options for point lookups. Most namespace reads during apply ask for keys that
/// do not exist (is the name free? is this call in the retry cache?): bloom filters on the SST
/// files and on the memtable answer those without searching every level, and a shared block
/// cache (holding the index and filter blocks too) keeps the hot part of the namespace in
/// memory, as TiKV configures RocksDB.
pub fn cf_options(cache: &Cache) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_bloom_filter(10.0, false);
    block.set_whole_key_filtering(true);
    block.set_block_cache(cache);
    block.set_cache_index_and_filter_blocks(true);
    block.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Partitioned filters and a two-level index (as TiKV configures them): a file's filter
    // and index are cached 4 KiB partition by partition, only their top level pinned. Whole,
    // a file's filter grows with its keys (10 bits each): a 32 MiB file of `file_blocks`
    // keys (20 bytes each) carried a 4.4 MB filter, more than one shard of the block cache
    // holds, so every lookup read and checksummed it again from the file (measured on a
    // namespace of 10 million files: a reclaim entry of 10,000 records took 6.6 s).
    block.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
    block.set_partition_filters(true);
    block.set_metadata_block_size(4096);
    block.set_pin_top_level_index_and_filter(true);
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_block_based_table_factory(&block);
    opts.set_memtable_whole_key_filtering(true);
    opts.set_memtable_prefix_bloom_ratio(0.1);
    // A simulation's members hold kilobytes, and its flushes are many (`simulated_durability`):
    // each new memtable's filter is a tenth of its size, zeroed, so they are kept small there.
    if raftfs_runtime::simulation::active() {
        opts.set_write_buffer_size(1 << 20);
    }
    opts
}

/// Opens (creating if needed) a DB with the given column families, within `memory`.
pub fn open(path: &Path, cfs: &[&str], memory: &Memory) -> Result<DB, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.increase_parallelism(2);
    opts.set_max_background_jobs(2);
    opts.set_write_buffer_manager(&memory.memtables);
    // A simulated crash closes the DB: it must not flush what a crash would lose (the writes
    // that skip the WAL: the state machine's in a simulation, see `simulated_durability`), and
    // what skips the WAL is flushed across column families together, as the WAL would have
    // kept it. (rust-rocksdb has no setter for the first; the options string keeps the rest.)
    if raftfs_runtime::simulation::active() {
        opts.set_atomic_flush(true);
        // (No preallocated files: a simulation opens and switches many, in memory.)
        opts =
            opts.get_options_from_string("avoid_flush_during_shutdown=true;allow_fallocate=false")?;
    }
    let descriptors = cfs
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(&memory.cache)));
    DB::open_cf_descriptors(&opts, path, descriptors)
}

/// A RocksDB failure as the namespace's storage error (the namespace names no engine).
pub fn engine_error(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn cf_handle(db: &DB, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(cf.name()).ok_or_else(|| StoreError::Corrupt {
        cf: cf.name(),
        reason: "column family missing".into(),
    })
}

fn scan_iter(
    iter: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<KvPair>, StoreError> {
    let mut out = Vec::new();
    for item in iter {
        let (k, v) = item.map_err(engine_error)?;
        if !k.starts_with(prefix) {
            break;
        }
        if after.is_some_and(|a| &*k <= a) {
            continue;
        }
        out.push((k.into_vec(), v.into_vec()));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn start_key<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> &'a [u8] {
    match after {
        Some(a) if a > prefix => a,
        _ => prefix,
    }
}

/// The live DB, read by the state machine's apply (the only writer).
#[derive(Clone, Copy)]
pub struct LiveKv<'a>(pub &'a DB);

impl std::fmt::Debug for LiveKv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKv").finish_non_exhaustive()
    }
}

impl KvRead for LiveKv<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.0;
        db.get_cf(cf_handle(db, cf)?, key).map_err(engine_error)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        let db = self.0;
        let mode = IteratorMode::From(start_key(prefix, after), Direction::Forward);
        scan_iter(
            db.iterator_cf(cf_handle(db, cf)?, mode),
            prefix,
            after,
            limit,
        )
    }
}

/// A point-in-time view for reads served to clients: one `list` or `stat` sees one state.
pub struct SnapshotKv<'a> {
    db: &'a DB,
    snap: SnapshotWithThreadMode<'a, DB>,
}

impl std::fmt::Debug for SnapshotKv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotKv").finish_non_exhaustive()
    }
}

impl<'a> SnapshotKv<'a> {
    pub fn new(db: &'a DB) -> Self {
        Self {
            db,
            snap: db.snapshot(),
        }
    }
}

impl KvRead for SnapshotKv<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.snap
            .get_cf(cf_handle(self.db, cf)?, key)
            .map_err(engine_error)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snap);
        let mode = IteratorMode::From(start_key(prefix, after), Direction::Forward);
        scan_iter(
            self.db.iterator_cf_opt(cf_handle(self.db, cf)?, ro, mode),
            prefix,
            after,
            limit,
        )
    }
}
