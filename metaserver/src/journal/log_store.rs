//! The Raft log in RocksDB: column family `log` (big-endian index -> entry) and `store`
//! (vote, committed, last purged), each value a versioned record (`journal::format`). An
//! append is acknowledged to openraft only after its `WriteBatch` was written with
//! `sync = true`: one fsync for all entries of the append.
//!
//! Debug builds have a deliberately broken mode (`debug-ack-before-fsync`) in which appends
//! are acknowledged at once and written a second later: a quorum is told "durable" about
//! entries that a power cut then takes away. The Jepsen harness shows that it finds the
//! acknowledged writes this loses.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use prometheus_client::metrics::histogram::Histogram;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use raftfs_core::format::{self, Schema};

use super::format::{CommittedRecord, LogEntry, PurgedRecord, VoteRecord};
use super::{MemberId, TypeConfig};

const CF_LOG: &str = "log";
const CF_STORE: &str = "store";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

type StorageResult<T> = Result<T, StorageError<MemberId>>;

fn read_err(e: impl std::error::Error + 'static) -> StorageError<MemberId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<MemberId> {
    StorageIOError::write_logs(&e).into()
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// How long after its acknowledgement an entry reaches the disk in `debug-ack-before-fsync`.
pub const DEBUG_WRITE_BACK: std::time::Duration = std::time::Duration::from_secs(1);

/// Entries acknowledged but not yet written (`debug-ack-before-fsync` only), by index, with
/// when they were acknowledged.
type Unsynced = Arc<Mutex<BTreeMap<u64, (Entry<TypeConfig>, tokio::time::Instant)>>>;

type UnsyncedMap = BTreeMap<u64, (Entry<TypeConfig>, tokio::time::Instant)>;

fn lock_unsynced(u: &Unsynced) -> std::sync::MutexGuard<'_, UnsyncedMap> {
    match u.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn lock_unsynced_committed(
    u: &Mutex<Option<Vec<u8>>>,
) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
    match u.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The error a simulation's failing disk returns.
fn simulated_io_error() -> std::io::Error {
    std::io::Error::other("simulated I/O error")
}

/// The log store; cheap to clone (the reader openraft asks for is a clone).
#[derive(Clone, Debug)]
pub struct LogStore {
    db: Arc<DB>,
    /// Debug builds only (`debug-ack-before-fsync`): appended entries wait here, in memory,
    /// until this node has applied them.
    unsynced: Option<Unsynced>,
    /// Where each append's write and fsync time goes (`journal_log_append_seconds`).
    append_seconds: Option<Histogram>,
    /// In a simulation: the committed log id written without a sync, held here until the
    /// next synced write carries it, as the disk would (a crash loses it).
    unsynced_committed: Arc<Mutex<Option<Vec<u8>>>>,
    /// The newest committed log id openraft told this store of, for the active's reads.
    committed: Committed,
}

/// The newest log id this member knows to be committed (openraft saves it before applying
/// the entries up to it): the read index of the active's reads, which are answered once
/// the state machine has applied that far (DESIGN §5). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Committed(Arc<Mutex<Option<LogId<MemberId>>>>);

impl Committed {
    pub fn get(&self) -> Option<LogId<MemberId>> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, committed: Option<LogId<MemberId>>) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forward only: a commit index never goes back.
        if committed > *g {
            *g = committed;
        }
    }
}

impl LogStore {
    /// Opens the log under `path`, within `memory`.
    pub fn open(path: &Path, memory: &super::rocks::Memory) -> Result<Self, rocksdb::Error> {
        Ok(Self {
            db: Arc::new(super::rocks::open(path, &[CF_LOG, CF_STORE], memory)?),
            unsynced: None,
            append_seconds: None,
            unsynced_committed: Arc::default(),
            committed: Committed::default(),
        })
    }

    /// The committed log id as openraft reports it to this store.
    pub fn committed(&self) -> Committed {
        self.committed.clone()
    }

    /// A handle that tells when this store's RocksDB is closed (every clone dropped), so
    /// that a member stopped in-process can be started again on the same directory.
    pub fn closed_when_gone(&self) -> std::sync::Weak<DB> {
        Arc::downgrade(&self.db)
    }

    /// Records the duration of every append (write and fsync) in `histogram`.
    #[must_use]
    pub fn timed(mut self, histogram: Histogram) -> Self {
        self.append_seconds = Some(histogram);
        self
    }

    /// The deliberately broken log of `debug-ack-before-fsync` (debug builds only): an append
    /// is acknowledged at once and reaches the disk [`DEBUG_WRITE_BACK`] later, so that a
    /// power cut of every member (SIGKILL of all) loses the entries of the last second that
    /// a quorum was told were durable. (The state machine skips its WAL in this mode too, so
    /// that a restarted member is not ahead of its own log.)
    #[must_use]
    pub fn acking_before_fsync(mut self) -> Self {
        if !cfg!(debug_assertions) {
            return self;
        }
        let unsynced: Unsynced = Arc::default();
        self.unsynced = Some(unsynced.clone());
        // Weak, so that the write-back ends with the store and does not hold its lock.
        let weak = Arc::downgrade(&self.db);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DEBUG_WRITE_BACK / 10).await;
                let Some(db) = weak.upgrade() else { return };
                let unsynced = unsynced.clone();
                let written = raftfs_runtime::simulation::blocking(move || {
                    // Under the lock, so that a reader sees each entry in one place or the other.
                    let mut pending = lock_unsynced(&unsynced);
                    let due: Vec<u64> = pending
                        .iter()
                        .take_while(|(_, (_, at))| at.elapsed() >= DEBUG_WRITE_BACK)
                        .map(|(i, _)| *i)
                        .collect();
                    if due.is_empty() {
                        return Ok(());
                    }
                    let cf = db.cf_handle(CF_LOG).ok_or("no log column family")?;
                    let mut batch = WriteBatch::default();
                    for index in due {
                        if let Some((entry, _)) = pending.remove(&index) {
                            batch.put_cf(
                                cf,
                                index_key(index),
                                format::encode::<LogEntry>(&entry).map_err(|_| "encode")?,
                            );
                        }
                    }
                    let mut opts = WriteOptions::default();
                    opts.set_sync(true);
                    db.write_opt(batch, &opts).map_err(|_| "write")
                })
                .await;
                if !matches!(written, Ok(Ok(()))) {
                    tracing::error!("debug-ack-before-fsync: writing entries back failed");
                    return;
                }
            }
        });
        self
    }

    fn cf(&self, name: &str) -> StorageResult<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| {
            read_err(std::io::Error::other(format!(
                "missing column family {name}"
            )))
        })
    }

    fn get_meta<S: Schema>(&self, key: &[u8]) -> StorageResult<Option<S::Value>> {
        match self.db.get_cf(self.cf(CF_STORE)?, key).map_err(read_err)? {
            Some(v) => Ok(Some(format::decode::<S>(&v).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    /// Writes a batch durably, off the async runtime's threads. In a simulation it carries
    /// the committed id written unsynced before it, and may fail as the seed says.
    async fn write_synced(&self, mut batch: WriteBatch) -> StorageResult<()> {
        use raftfs_runtime::simulation::{IoFault, IoPoint, io_fault};
        if let Some(v) = lock_unsynced_committed(&self.unsynced_committed).take() {
            batch.put_cf(self.cf(CF_STORE)?, KEY_COMMITTED, v);
        }
        let fault = io_fault(IoPoint::LogWrite);
        if fault == Some(IoFault::Before) {
            return Err(write_err(simulated_io_error()));
        }
        let db = self.db.clone();
        raftfs_runtime::simulation::blocking(move || {
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts)
        })
        .await
        .map_err(write_err)?
        .map_err(write_err)?;
        match fault {
            Some(_) => Err(write_err(simulated_io_error())),
            None => Ok(()),
        }
    }

    /// The index of the newest entry (or of the last purged one), for status reports.
    pub fn last_index(&self) -> Option<u64> {
        let cf = self.db.cf_handle(CF_LOG)?;
        let newest = self
            .db
            .iterator_cf(cf, IteratorMode::End)
            .next()
            .and_then(Result::ok);
        match newest {
            Some((k, _)) => Some(u64::from_be_bytes(k.as_ref().try_into().ok()?)),
            None => self
                .get_meta::<PurgedRecord>(KEY_PURGED)
                .ok()
                .flatten()
                .map(|l| l.index),
        }
    }

    /// The index of the last purged entry, for status reports.
    pub fn purged_index(&self) -> Option<u64> {
        self.get_meta::<PurgedRecord>(KEY_PURGED)
            .ok()
            .flatten()
            .map(|l| l.index)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = self.cf(CF_LOG)?;
        // Debug mode: hold the buffer for the whole read, so that the write-back cannot move
        // entries from the buffer to the DB between the two halves of it (a gap).
        let pending = self.unsynced.as_ref().map(lock_unsynced);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            cf,
            IteratorMode::From(&index_key(start), Direction::Forward),
        ) {
            let (k, v) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| read_err(std::io::Error::other("bad log key")))?,
            );
            if !range.contains(&index) {
                break;
            }
            out.push(format::decode::<LogEntry>(&v).map_err(read_err)?);
        }
        if let Some(pending) = pending {
            let mut merged: BTreeMap<u64, Entry<TypeConfig>> =
                out.into_iter().map(|e| (e.log_id.index, e)).collect();
            for (i, (e, _)) in pending.range(range) {
                merged.insert(*i, e.clone());
            }
            out = merged.into_values().collect();
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id = self.get_meta::<PurgedRecord>(KEY_PURGED)?;
        let cf = self.cf(CF_LOG)?;
        let last = match self.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, v) = item.map_err(read_err)?;
                Some(format::decode::<LogEntry>(&v).map_err(read_err)?.log_id)
            }
            None => None,
        };
        let newest_unsynced = self
            .unsynced
            .as_ref()
            .and_then(|u| lock_unsynced(u).values().next_back().map(|(e, _)| e.log_id));
        let last = newest_unsynced.max(last);
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_STORE)?,
            KEY_VOTE,
            format::encode::<VoteRecord>(vote).map_err(|e| StorageIOError::write_vote(&e))?,
        );
        self.write_synced(batch).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<MemberId>>> {
        self.get_meta::<VoteRecord>(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<MemberId>>) -> StorageResult<()> {
        self.committed.set(committed);
        // Not synced: a lost `committed` only means re-learning it from the leader.
        if self.unsynced.is_some() {
            // A committed index ahead of the entries on disk would not survive a restart.
            return Ok(());
        }
        let v = format::encode::<CommittedRecord>(&committed).map_err(write_err)?;
        if raftfs_runtime::simulation::active() {
            *lock_unsynced_committed(&self.unsynced_committed) = Some(v);
            return Ok(());
        }
        self.db
            .put_cf(self.cf(CF_STORE)?, KEY_COMMITTED, v)
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<MemberId>>> {
        if let Some(v) = lock_unsynced_committed(&self.unsynced_committed).as_ref() {
            return format::decode::<CommittedRecord>(v).map_err(read_err);
        }
        Ok(self.get_meta::<CommittedRecord>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        if let Some(unsynced) = &self.unsynced {
            let now = tokio::time::Instant::now();
            lock_unsynced(unsynced).extend(entries.into_iter().map(|e| (e.log_id.index, (e, now))));
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                cf,
                index_key(entry.log_id.index),
                format::encode::<LogEntry>(&entry).map_err(write_err)?,
            );
        }
        let start = std::time::Instant::now();
        let result = self.write_synced(batch).await;
        if let Some(h) = &self.append_seconds {
            h.observe(start.elapsed().as_secs_f64());
        }
        callback.log_io_completed(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        result
    }

    async fn truncate(&mut self, log_id: LogId<MemberId>) -> StorageResult<()> {
        if let Some(unsynced) = &self.unsynced {
            lock_unsynced(unsynced).split_off(&log_id.index);
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.cf(CF_LOG)?,
            index_key(log_id.index),
            index_key(u64::MAX),
        );
        self.write_synced(batch).await
    }

    async fn purge(&mut self, log_id: LogId<MemberId>) -> StorageResult<()> {
        if let Some(unsynced) = &self.unsynced {
            let mut u = lock_unsynced(unsynced);
            let rest = u.split_off(&log_id.index.saturating_add(1));
            *u = rest;
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_STORE)?,
            KEY_PURGED,
            format::encode::<PurgedRecord>(&log_id).map_err(write_err)?,
        );
        batch.delete_range_cf(
            self.cf(CF_LOG)?,
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        self.write_synced(batch).await
    }
}
