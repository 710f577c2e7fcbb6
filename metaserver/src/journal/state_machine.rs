//! The state machine: the namespace in its own RocksDB (`<data_dir>/sm`, or the directory
//! named in `SM_CURRENT` once a snapshot was installed), applied from the
//! journal. Each apply call commits the namespace writes of all its entries, the applied log
//! id and the membership in one `WriteBatch`, so they can never disagree after a crash.
//!
//! The log is the durable record; state-machine writes go to RocksDB's WAL without their own
//! fsync. A snapshot is a RocksDB checkpoint (which flushes the memtables to SST files), so
//! everything the log store later purges is already on disk in SST form.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use prometheus_client::metrics::histogram::Histogram;
use raftfs_core::format;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use raftfs_runtime::simulation::{IoFault, IoPoint};
use rocksdb::{DB, WriteBatch};
use tokio::sync::watch;

use super::format::{AppliedRecord, MembershipRecord};
use super::rocks::{LiveKv, engine_error};
use super::snapshot::{SnapshotDir, SnapshotFile};
use super::{BasicNodeMeta, Batch, BatchResponse, MemberId, TypeConfig, retry_cache};
use crate::namespace::inode::decode_record;
use crate::namespace::kv::{Cf, KvRead, Txn};
use crate::namespace::{ApplyError, Op, StoreError, tree};

const KEY_APPLIED: &[u8] = b"applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";

type StorageResult<T> = Result<T, StorageError<MemberId>>;

fn sm_write(e: impl std::fmt::Display) -> StorageError<MemberId> {
    StorageIOError::write_state_machine(&io::Error::other(e.to_string())).into()
}

fn sm_read(e: impl std::fmt::Display) -> StorageError<MemberId> {
    StorageIOError::read_state_machine(&io::Error::other(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError<MemberId> {
    StorageIOError::write_snapshot(None, &io::Error::other(e.to_string())).into()
}

fn cf_names() -> Vec<&'static str> {
    Cf::ALL.iter().map(|c| c.name()).collect()
}

/// The applied log id and the membership recorded with it.
type AppliedState = (
    Option<LogId<MemberId>>,
    StoredMembership<MemberId, BasicNodeMeta>,
);

/// What the state machine shares with the services that read it.
#[derive(Debug)]
pub struct SmShared {
    data_dir: PathBuf,
    /// The process's RocksDB memory, which a DB installed from a snapshot joins.
    memory: super::rocks::Memory,
    db: RwLock<Arc<DB>>,
    /// Held while entries are applied and while a checkpoint is taken, so a checkpoint and
    /// its recorded applied log id describe the same state.
    apply_gate: Mutex<()>,
    snapshots: SnapshotDir,
    applied_tx: watch::Sender<u64>,
    /// The cluster's format level as of the applied state (DESIGN §11): what the service
    /// may put into new entries.
    level: std::sync::atomic::AtomicU16,
    snapshots_installed: AtomicU64,
    /// Where apply records how long after the active fixed an entry it was applied here.
    apply_lag: OnceLock<Histogram>,
    /// Where each apply call's duration goes (`journal_apply_seconds`).
    apply_seconds: OnceLock<Histogram>,
    /// `debug-ack-before-fsync` only: applied state skips RocksDB's WAL, so a SIGKILL takes
    /// the state machine back to its last flush (a snapshot), as it takes the log back.
    volatile: std::sync::atomic::AtomicBool,
}

impl SmShared {
    /// The process's RocksDB memory (block cache and memtables).
    pub fn memory(&self) -> &super::rocks::Memory {
        &self.memory
    }

    /// RocksDB's estimate of the keys in column family `cf`: exact after a compaction, off
    /// by the overwrites and deletions not compacted yet. Read in microseconds whatever the
    /// namespace's size (the operator pages' object counts).
    pub fn estimated_keys(&self, cf: crate::namespace::kv::Cf) -> Option<u64> {
        let db = self.db();
        let handle = db.cf_handle(cf.name())?;
        db.property_int_value_cf(handle, "rocksdb.estimate-num-keys")
            .ok()
            .flatten()
    }

    /// The current DB (replaced wholesale when a snapshot is installed).
    pub fn db(&self) -> Arc<DB> {
        match self.db.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Debug builds only (`debug-ack-before-fsync`): applied state is no longer written to
    /// the WAL.
    pub fn make_volatile_for_debug(&self) {
        if cfg!(debug_assertions) {
            self.volatile.store(true, Ordering::Relaxed);
        }
    }

    /// A watch of the applied log index: the state ID of reads served here.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// The cluster's format level as of the applied state.
    pub fn level(&self) -> raftfs_core::level::Level {
        raftfs_core::level::Level(self.level.load(Ordering::Acquire))
    }

    fn note_level<R: KvRead + ?Sized>(&self, kv: &R) -> Result<(), StoreError> {
        let level = crate::namespace::upgrade::load(kv)?.level;
        if !level.supported() {
            return Err(StoreError::LevelUnsupported {
                level,
                newest: raftfs_core::level::Level::NEWEST,
                binary: raftfs_core::level::binary_version(),
            });
        }
        self.level.store(level.0, Ordering::Release);
        Ok(())
    }

    /// Sets the histograms apply fills: each entry's lag behind the active's clock, and how
    /// long each apply call takes.
    pub fn set_metrics(&self, apply_lag: Histogram, apply_seconds: Histogram) {
        let _ = self.apply_lag.set(apply_lag);
        let _ = self.apply_seconds.set(apply_seconds);
    }

    /// Snapshots installed from the leader since this process started.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::Relaxed)
    }

    /// The index the current snapshot covers.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.snapshots
            .current()
            .ok()
            .flatten()
            .and_then(|(m, _)| m.last_log_id.map(|l| l.index))
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.apply_gate.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn applied_state_of(db: &DB) -> Result<AppliedState, StoreError> {
        let applied = match KvRead::get(&LiveKv(db), Cf::Meta, KEY_APPLIED)? {
            Some(v) => decode_record::<AppliedRecord>("meta", &v)?,
            None => None,
        };
        let membership = match KvRead::get(&LiveKv(db), Cf::Meta, KEY_MEMBERSHIP)? {
            Some(v) => decode_record::<MembershipRecord>("meta", &v)?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    fn apply_entries(&self, entries: Vec<Entry<TypeConfig>>) -> StorageResult<Vec<BatchResponse>> {
        let _gate = self.gate();
        let db = self.db();
        let mut responses = Vec::with_capacity(entries.len());
        let mut last_applied = None;
        let mut membership = None;
        let live = LiveKv(&db);
        let mut txn = Txn::new(&live);
        for entry in entries {
            last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(Vec::new()),
                EntryPayload::Normal(batch) => {
                    if let Some(h) = self.apply_lag.get() {
                        // Wall clocks of two hosts: a measure for operators, never an input
                        // to the state (apply stays deterministic).
                        let lag_ms =
                            raftfs_runtime::simulation::now_ms().saturating_sub(batch.ctx.now_ms);
                        h.observe(lag_ms as f64 / 1000.0);
                    }
                    responses.push(apply_batch(&mut txn, &batch).map_err(|e| {
                        // A local storage failure: fatal to this replica, never a recorded result.
                        StorageError::from(StorageIOError::apply(
                            entry.log_id,
                            &io::Error::other(e.to_string()),
                        ))
                    })?)
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    responses.push(Vec::new());
                }
            }
        }
        let Some(last) = last_applied else {
            return Ok(responses);
        };
        let level = crate::namespace::upgrade::load(&txn)
            .map_err(sm_write)?
            .level;
        txn.put(
            Cf::Meta,
            KEY_APPLIED.to_vec(),
            format::encode::<AppliedRecord>(&Some(last)).map_err(sm_write)?,
        );
        if let Some(m) = &membership {
            txn.put(
                Cf::Meta,
                KEY_MEMBERSHIP.to_vec(),
                format::encode::<MembershipRecord>(m).map_err(sm_write)?,
            );
        }
        let mut batch = WriteBatch::default();
        for ((cf, key), value) in txn.into_writes() {
            let handle = db
                .cf_handle(cf.name())
                .ok_or_else(|| sm_write(format!("missing column family {}", cf.name())))?;
            match value {
                Some(v) => batch.put_cf(handle, key, v),
                None => batch.delete_cf(handle, key),
            }
        }
        let simulated = raftfs_runtime::simulation::active();
        let fault = raftfs_runtime::simulation::io_fault(IoPoint::Apply);
        if fault == Some(IoFault::Before) {
            return Err(sm_write("simulated I/O error"));
        }
        if self.volatile.load(Ordering::Relaxed) || simulated {
            let mut opts = rocksdb::WriteOptions::default();
            opts.disable_wal(true);
            db.write_opt(batch, &opts).map_err(sm_write)?;
        } else {
            db.write(batch).map_err(sm_write)?;
        }
        if simulated {
            simulated_durability(&db)?;
        }
        if fault.is_some() {
            return Err(sm_write("simulated I/O error"));
        }
        self.level.store(level.0, Ordering::Release);
        self.applied_tx.send_replace(last.index);
        Ok(responses)
    }
}

/// In a simulation the state machine writes without its WAL (see `apply_entries`), so that a
/// crash loses every apply since the last flush: the most a power cut could take (the log,
/// synced, has them all). A flush of every column family together (the DB's atomic flush)
/// follows an apply at points drawn from the seed, so that runs restart from various states.
fn simulated_durability(db: &DB) -> StorageResult<()> {
    if !raftfs_runtime::simulation::random_u64().is_multiple_of(32) {
        return Ok(());
    }
    let handles: Vec<_> = cf_names()
        .iter()
        .filter_map(|name| db.cf_handle(name))
        .collect();
    db.flush_cfs_opt(&handles, &rocksdb::FlushOptions::default())
        .map_err(sm_write)
}

/// Applies the proposals of one entry, consulting and filling the retry cache.
fn apply_batch<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    batch: &Batch,
) -> Result<BatchResponse, StoreError> {
    let mut out = Vec::with_capacity(batch.proposals.len());
    follow_level(txn, batch)?;
    let order_time = retry_cache::order_time(txn, &batch.ctx)?;
    for p in &batch.proposals {
        if let Some(first) = retry_cache::lookup(txn, p)? {
            out.push(first);
            continue;
        }
        let result = match tree::apply_as(txn, &batch.ctx, p.access.as_ref(), &p.op) {
            Ok(o) => Ok(o),
            Err(ApplyError::Ns(e)) => Err(e),
            Err(ApplyError::Store(e)) => return Err(e),
        };
        retry_cache::record(txn, order_time, p, &result, &retry_cache::Limits::DEFAULT)?;
        out.push(result);
    }
    retry_cache::evict(
        txn,
        &batch.ctx,
        2 * batch.proposals.len() + 16,
        &retry_cache::Limits::DEFAULT,
    )?;
    Ok(out)
}

/// Sets the transaction's format level from the replicated state (DESIGN §11): every member
/// writes the versions of the cluster's level, whatever binary it runs. A member whose binary
/// cannot write that level, or is asked to finalize an upgrade to a level it cannot write,
/// stops applying (a storage error, fatal to this replica) rather than write something the
/// others would not: a binary older than the cluster must be upgraded first.
fn follow_level<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, batch: &Batch) -> Result<(), StoreError> {
    use crate::namespace::upgrade::{self, UpgradeStep};
    use raftfs_core::level::{self, Level};
    let state = upgrade::load(txn)?;
    let level = state.level;
    // Only a finalize that the apply would take stops this member (one it refuses changes
    // nothing, on every member alike).
    let finalizing = batch.proposals.iter().find_map(|p| match p.op {
        Op::Upgrade(step @ UpgradeStep::Finalize { to })
            if !to.supported() && state.after(step, 0).is_ok() =>
        {
            Some(to)
        }
        _ => None,
    });
    let unwritable = if level.supported() {
        finalizing
    } else {
        Some(level)
    };
    if let Some(level) = unwritable {
        return Err(StoreError::LevelUnsupported {
            level,
            newest: Level::NEWEST,
            binary: level::binary_version(),
        });
    }
    txn.set_level(level);
    Ok(())
}

/// The state machine handed to openraft.
#[derive(Debug, Clone)]
pub struct StateMachine {
    shared: Arc<SmShared>,
}

impl StateMachine {
    /// Opens the state machine under `data_dir` (`sm/` and `snapshots/`), finishing or
    /// undoing a snapshot installation that a crash interrupted. Its DBs (this one and any
    /// installed from a snapshot later) live within `memory`.
    pub fn open(data_dir: &Path, memory: super::rocks::Memory) -> Result<Self, StoreError> {
        let io = |e: io::Error| StoreError::Corrupt {
            cf: "sm",
            reason: e.to_string(),
        };
        fs::create_dir_all(data_dir).map_err(io)?;
        let current = current_sm_dir(data_dir).map_err(io)?;
        // Directories of interrupted or superseded snapshot installations.
        for entry in fs::read_dir(data_dir).map_err(io)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("sm") && name != current && entry.path().is_dir() {
                fs::remove_dir_all(entry.path()).map_err(io)?;
            }
        }
        let db = super::rocks::open(&data_dir.join(&current), &cf_names(), &memory)
            .map_err(engine_error)?;
        let (applied, _) = SmShared::applied_state_of(&db)?;
        let level = crate::namespace::upgrade::load(&LiveKv(&db))?.level;
        // A binary older than the cluster's format level stops here, saying so, rather than
        // at the first entry it cannot read (DESIGN §11).
        if !level.supported() {
            return Err(StoreError::LevelUnsupported {
                level,
                newest: raftfs_core::level::Level::NEWEST,
                binary: raftfs_core::level::binary_version(),
            });
        }
        let snapshots = SnapshotDir::open(data_dir.join("snapshots")).map_err(io)?;
        remove_received(snapshots.path());
        let (applied_tx, _) = watch::channel(applied.map_or(0, |l| l.index));
        Ok(Self {
            shared: Arc::new(SmShared {
                data_dir: data_dir.to_owned(),
                memory,
                db: RwLock::new(Arc::new(db)),
                apply_gate: Mutex::new(()),
                snapshots,
                applied_tx,
                level: std::sync::atomic::AtomicU16::new(level.0),
                snapshots_installed: AtomicU64::new(0),
                apply_lag: OnceLock::new(),
                apply_seconds: OnceLock::new(),
                volatile: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    pub fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }

    /// Applies one batch directly, outside Raft: for the property test that compares the
    /// RocksDB state machine with a plain model.
    pub fn apply_for_test(&self, index: u64, batch: Batch) -> StorageResult<BatchResponse> {
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, MemberId(1)), index),
            payload: EntryPayload::Normal(batch),
        };
        Ok(self
            .shared
            .apply_entries(vec![entry])?
            .pop()
            .unwrap_or_default())
    }

    /// Installs a received snapshot: unpacks it into a new directory, opens it there, then
    /// switches `SM_CURRENT` to it and swaps the DB handle. The old DB is closed when its
    /// last reader lets go, and its directory removed (or at the next start). Opening at a new
    /// path matters: RocksDB locks a DB by path within the process.
    fn install(
        &self,
        meta: &SnapshotMeta<MemberId, BasicNodeMeta>,
        tar: &Path,
    ) -> Result<(), String> {
        let s = &self.shared;
        let name = format!("sm-{}", raftfs_runtime::simulation::unique_suffix());
        let dir = s.data_dir.join(&name);
        SnapshotDir::unpack(tar, &dir).map_err(|e| format!("unpack snapshot: {e}"))?;
        let db = super::rocks::open(&dir, &cf_names(), &s.memory)
            .map_err(|e| format!("open installed snapshot: {e}"))?;
        let (applied, _) = SmShared::applied_state_of(&db).map_err(|e| e.to_string())?;
        if applied != meta.last_log_id {
            drop(db);
            let _ = fs::remove_dir_all(&dir);
            return Err(format!(
                "snapshot holds {applied:?}, its metadata says {:?}",
                meta.last_log_id
            ));
        }
        let _gate = s.gate();
        let old_name = current_sm_dir(&s.data_dir).map_err(|e| e.to_string())?;
        set_current_sm_dir(&s.data_dir, &name)
            .map_err(|e| format!("switch to installed snapshot: {e}"))?;
        let previous = {
            let mut guard = match s.db.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *guard, Arc::new(db))
        };
        if let Ok(db) = Arc::try_unwrap(previous) {
            drop(db);
            let _ = fs::remove_dir_all(s.data_dir.join(old_name));
        }
        s.snapshots
            .publish(tar, meta)
            .map_err(|e| format!("publish snapshot: {e}"))?;
        s.note_level(&LiveKv(&s.db()))
            .map_err(|e| format!("read the installed state's format level: {e}"))?;
        s.applied_tx
            .send_replace(meta.last_log_id.map_or(0, |l| l.index));
        s.snapshots_installed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Removes the snapshots received in part (`recv-*`) under `dir`: at start, and when a new
/// transfer begins.
fn remove_received(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("recv-") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

const SM_CURRENT: &str = "SM_CURRENT";

/// The name of the directory holding the live state machine (`sm` until a snapshot is
/// installed).
fn current_sm_dir(data_dir: &Path) -> io::Result<String> {
    match fs::read_to_string(data_dir.join(SM_CURRENT)) {
        Ok(name) => Ok(name.trim().to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok("sm".to_owned()),
        Err(e) => Err(e),
    }
}

/// Points `SM_CURRENT` at `name`, durably (write, fsync, rename, fsync the directory).
fn set_current_sm_dir(data_dir: &Path, name: &str) -> io::Result<()> {
    let tmp = data_dir.join("SM_CURRENT.tmp");
    fs::write(&tmp, name)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, data_dir.join(SM_CURRENT))?;
    fs::File::open(data_dir)?.sync_all()
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(
        Option<LogId<MemberId>>,
        StoredMembership<MemberId, BasicNodeMeta>,
    )> {
        SmShared::applied_state_of(&self.shared.db()).map_err(sm_read)
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<BatchResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let shared = self.shared.clone();
        let start = std::time::Instant::now();
        let result = raftfs_runtime::simulation::blocking(move || shared.apply_entries(entries))
            .await
            .map_err(sm_write)?;
        if let Some(h) = self.shared.apply_seconds.get() {
            h.observe(start.elapsed().as_secs_f64());
        }
        result
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<SnapshotFile>> {
        // A member receives one snapshot at a time: a transfer that begins means any earlier
        // one was abandoned (measured: a 220 MB leftover per restarted transfer at 10 million
        // objects, kept until the next start).
        remove_received(self.shared.snapshots.path());
        let path = self.shared.snapshots.scratch("recv").with_extension("tar");
        Ok(Box::new(
            SnapshotFile::create(path).await.map_err(snap_err)?,
        ))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, BasicNodeMeta>,
        snapshot: Box<SnapshotFile>,
    ) -> StorageResult<()> {
        let mut file = *snapshot;
        file.sync().await.map_err(snap_err)?;
        let path = file.path().to_owned();
        drop(file);
        let this = self.clone();
        let meta2 = meta.clone();
        raftfs_runtime::simulation::blocking(move || this.install(&meta2, &path))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        tracing::info!(snapshot = %meta.snapshot_id, last = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let Some((meta, path)) = self.shared.snapshots.current().map_err(snap_err)? else {
            return Ok(None);
        };
        let file = SnapshotFile::open(path).await.map_err(snap_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

/// Builds snapshots from RocksDB checkpoints, beside ongoing applies.
#[derive(Debug)]
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
}

impl SnapshotBuilder {
    fn build(
        shared: &SmShared,
    ) -> Result<(SnapshotMeta<MemberId, BasicNodeMeta>, PathBuf), String> {
        let checkpoint_dir = shared.snapshots.scratch("checkpoint");
        let (applied, membership) = {
            let _gate = shared.gate();
            let db = shared.db();
            rocksdb::checkpoint::Checkpoint::new(&db)
                .and_then(|c| c.create_checkpoint(&checkpoint_dir))
                .map_err(|e| format!("checkpoint: {e}"))?;
            SmShared::applied_state_of(&db).map_err(|e| e.to_string())?
        };
        let tar = shared
            .snapshots
            .pack(&checkpoint_dir)
            .map_err(|e| format!("pack: {e}"))?;
        let _ = fs::remove_dir_all(&checkpoint_dir);
        let suffix = raftfs_runtime::simulation::unique_suffix();
        let (term, index) = applied.map_or((0, 0), |l| (l.leader_id.term, l.index));
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id: format!("{term}-{index}-{suffix}"),
        };
        let path = shared
            .snapshots
            .publish(&tar, &meta)
            .map_err(|e| format!("publish: {e}"))?;
        Ok((meta, path))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let shared = self.shared.clone();
        let (meta, path) = raftfs_runtime::simulation::blocking(move || Self::build(&shared))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
        let file = SnapshotFile::open(path).await.map_err(snap_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

/// The applied index recorded in a view of the state machine: the state ID of a read served
/// from that view (exact, not a bound, so that monotonic reads hold across servers).
pub fn applied_index_in<R: KvRead + ?Sized>(kv: &R) -> Result<u64, StoreError> {
    match kv.get(Cf::Meta, KEY_APPLIED)? {
        Some(v) => Ok(decode_record::<AppliedRecord>("meta", &v)?.map_or(0, |l| l.index)),
        None => Ok(0),
    }
}
