//! Metaserver configuration: a TOML file (see `etc/metaserver.toml`) and/or flags. Flags
//! override the file, so that `metactl local up` and an operator's deployment run the same
//! binary through the same code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raftfs_core::federation::NameserviceId;
use raftfs_core::id::MemberId;
use raftfs_core::identity::{Authorizer, valid_name};
use raftfs_runtime::WireSecurity;
use serde::{Deserialize, Serialize};

/// One initial voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Peer {
    /// Its Raft node id.
    pub id: MemberId,
    /// Its advertised gRPC address (`host:port`).
    pub addr: String,
}

/// Raft timing and log retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RaftTuning {
    /// Leader heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout, ms. A failover takes about this long.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout, ms.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot, so that a briefly lagging follower catches
    /// up from the log rather than a whole snapshot.
    pub keep_entries_behind_snapshot: u64,
    /// Most entries in one AppendEntries message.
    pub max_entries_per_append: u64,
    /// Most bytes of entries in one AppendEntries message (one entry always goes). openraft
    /// waits one heartbeat interval for an AppendEntries; a follower catching up gets
    /// messages it can store and answer within that.
    pub max_append_bytes: usize,
    /// How long one 1 MiB snapshot chunk may take to send and store, ms.
    pub snapshot_chunk_timeout_ms: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_every_entries: 50_000,
            keep_entries_behind_snapshot: 10_000,
            max_entries_per_append: 256,
            max_append_bytes: 2 << 20,
            snapshot_chunk_timeout_ms: 10_000,
        }
    }
}

/// Batching of client mutations into entries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProposerTuning {
    /// Most mutations packed into one entry.
    pub max_batch: usize,
    /// Most bytes of mutations packed into one entry. With `raft.max-entries-per-append`, it
    /// bounds an AppendEntries message: their product must be at most half the Raft
    /// service's message limit (`server::MAX_RAFT_MESSAGE`), the rest being headroom.
    pub max_batch_bytes: usize,
    /// Most entries proposed and not yet applied. One is fastest with openraft 0.9: its
    /// leader writes and fsyncs each entry inside the core task before replicating it, so a
    /// second entry in flight costs its own fsync and holds up the handling of the followers'
    /// answers to the first, while one entry at a time gathers every waiting mutation
    /// (measured in the README's performance section).
    pub max_in_flight: usize,
}

impl Default for ProposerTuning {
    fn default() -> Self {
        Self {
            max_batch: 512,
            max_batch_bytes: 512 * 1024,
            max_in_flight: 1,
        }
    }
}

/// Blocks and blockservers (DESIGN §6).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct BlockTuning {
    /// Bytes per internal block of a new file whose writer does not choose (HDFS's
    /// `dfs.blocksize`); an erasure-coded group holds k times this much data.
    pub default_block_size: u64,
    /// A blockserver without a heartbeat for this long is dead: no new blocks go to it and
    /// readers are not sent to it, seconds.
    pub dead_after_secs: u64,
    /// How often the active looks for expired leases to recover, ms.
    pub lease_check_ms: u64,
    /// The xmits a blockserver may carry (HDFS's `maxReplicationStreams`): a heartbeat gets
    /// at most `max-streams - xmits_in_progress` reconstruction tasks.
    pub max_streams: u32,
    /// Weight of an EC reconstruction task per source (HDFS's `ec.reconstruction.xmits.weight`).
    pub xmits_weight: f64,
    /// A reconstruction task not reported done within this long is rescheduled, seconds.
    pub reconstruction_timeout_secs: u64,
    /// How often the active scans block groups for missing internal blocks, ms.
    pub redundancy_scan_ms: u64,
    /// Most block groups one round of the redundancy scan reads: a pass over more groups
    /// spans rounds (its queues are handed over when it ends), so one round's work does not
    /// grow with the namespace. The groups of a blockserver that dies are checked in the
    /// next round, ahead of the pass; anything else is found within groups / this rounds.
    pub redundancy_scan_groups: usize,
    /// Rack-aware reconstruction: targets and sources chosen to keep bytes within racks, and
    /// each other rack's cells combined there into one. `false`: random sources, every cell
    /// read on its own (HDFS's way; kept for comparison).
    pub rack_aware_reconstruction: bool,
    /// While servers holding a group's copies are in maintenance, the live copies it keeps
    /// on servers in service (HDFS's `dfs.namenode.maintenance.replication.min`): that many
    /// replicas, or k + this − 1 internal blocks; the rest count as present until the
    /// maintenance ends.
    pub maintenance_min_live: usize,
}

impl Default for BlockTuning {
    fn default() -> Self {
        Self {
            default_block_size: 128 * 1024 * 1024,
            dead_after_secs: 10,
            lease_check_ms: 1000,
            max_streams: 8,
            xmits_weight: 0.5,
            reconstruction_timeout_secs: 300,
            redundancy_scan_ms: 1000,
            redundancy_scan_groups: 50_000,
            rack_aware_reconstruction: true,
            maintenance_min_live: 1,
        }
    }
}

/// The namespace's background work on the active.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct NamespaceTuning {
    /// Most records (an inode, a block group) one reclaim entry removes of the subtrees that
    /// recursive deletes detached: bounds the memory one entry's apply takes on every member
    /// (about 1 KB per inode), whatever the size of the tree deleted.
    pub reclaim_budget: u64,
    /// How often the active looks for detached subtrees to reclaim, ms (it then reclaims
    /// them entry after entry until none is left).
    pub reclaim_check_ms: u64,
}

impl Default for NamespaceTuning {
    fn default() -> Self {
        Self {
            reclaim_budget: 10_000,
            reclaim_check_ms: 500,
        }
    }
}

/// Least block cache and memtable budget a metaserver runs with: below this, RocksDB flushes
/// tiny files and reads its index blocks from disk on every lookup.
const MIN_STORAGE_BYTES: usize = 8 << 20;

/// The memory RocksDB may hold: with these, a metaserver's resident memory is set by
/// configuration rather than by the size of its namespace (README, "A namespace at scale").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct StorageTuning {
    /// One block cache shared by the log and the namespace: data blocks and the index and
    /// filter blocks of every SST file, bytes. The hot part of the namespace lives here.
    pub block_cache_bytes: usize,
    /// Memtables of every column family of the log and the namespace together, bytes; past
    /// this, RocksDB flushes the largest.
    pub memtable_bytes: usize,
}

impl Default for StorageTuning {
    fn default() -> Self {
        Self {
            block_cache_bytes: crate::journal::rocks::DEFAULT_BLOCK_CACHE_BYTES,
            memtable_bytes: crate::journal::rocks::DEFAULT_MEMTABLE_BYTES,
        }
    }
}

impl StorageTuning {
    /// The process's RocksDB memory, as configured.
    pub fn memory(&self) -> crate::journal::rocks::Memory {
        crate::journal::rocks::Memory::new(self.block_cache_bytes, self.memtable_bytes)
    }
}

/// Who may do what (DESIGN §9): HDFS's superuser and cluster administrators.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Permissions {
    /// The superuser: every Admin call, `chown`, and past every permission check. Defaults
    /// to the user the metaserver runs as (as HDFS's superuser is the NameNode's user).
    pub superuser: Option<String>,
    /// Members of this group (from their certificates) may make Admin calls too, and pass
    /// every permission check (HDFS's superuser group).
    pub admin_group: Option<String>,
    /// Octal, taken off the mode of every file and directory created (HDFS's
    /// `fs.permissions.umask-mode`); default `022`.
    pub umask: Option<String>,
}

impl Permissions {
    /// The umask as bits.
    pub fn umask(&self) -> Result<u16, ConfigError> {
        let text = self.umask.as_deref().unwrap_or("022");
        u16::from_str_radix(text, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                ConfigError::Invalid(format!("permissions.umask {text:?} is not an octal mode"))
            })
    }

    /// The rule every service applies.
    /// The rule every service applies; `claimed_nodes` when the server has no certificate.
    pub fn authorizer(&self, claimed_nodes: bool) -> Authorizer {
        Authorizer {
            claimed_nodes,
            superuser: self
                .superuser
                .clone()
                .unwrap_or_else(raftfs_runtime::process_user),
            admin_group: self.admin_group.clone(),
        }
    }
}

/// Block access tokens (DESIGN §9): how long a token counts and how often the active makes
/// a new key. As HDFS's `dfs.block.access.token.lifetime` and `key.update.interval` (600
/// minutes each there).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct BlockTokens {
    /// How long a token counts after the metaserver signed it, seconds. A reader or writer
    /// whose token expired asks for the file's blocks again.
    pub lifetime_secs: u64,
    /// How often the active rolls a new key, seconds. A key lives `key-roll-secs +
    /// lifetime-secs`, so that every token signed with it can run its course.
    pub key_roll_secs: u64,
}

impl Default for BlockTokens {
    fn default() -> Self {
        Self {
            lifetime_secs: 10 * 3600,
            key_roll_secs: 600,
        }
    }
}

impl BlockTokens {
    pub fn lifetime_ms(&self) -> u64 {
        self.lifetime_secs.saturating_mul(1000)
    }

    pub fn key_roll_ms(&self) -> u64 {
        self.key_roll_secs.saturating_mul(1000)
    }
}

/// Everything a metaserver needs to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// This server's Raft node id: unique in the cluster, > 0.
    pub node_id: MemberId,
    /// The nameservice this member belongs to (DESIGN §10): its blocks live in that pool on
    /// every blockserver, and its tokens open that pool only. None: the unnamed nameservice of
    /// a cluster without federation. Every member of one Raft group names the same.
    pub nameservice: Option<NameserviceId>,
    /// Address the gRPC server binds (clients, peers and admin share it).
    pub listen_addr: SocketAddr,
    /// Address peers and clients reach this server at; defaults to `listen-addr`.
    pub advertise_addr: Option<String>,
    /// Local address that connections to other metaservers are opened from (none: the
    /// system's choice). Lets a fault-injecting proxy tell the members apart on one host.
    pub source_ip: Option<std::net::IpAddr>,
    /// Directory of the Raft log (`log/`), the namespace (`sm/`) and snapshots.
    pub data_dir: PathBuf,
    /// The initial voters, this server among them. Used once, to form a new cluster.
    pub initial_members: Vec<Peer>,
    /// Form the cluster from `initial-members` when this server's log is empty. Set it on
    /// every initial voter (as etcd's `--initial-cluster-state new`); later members join
    /// through `metactl member`.
    pub bootstrap: bool,
    /// Where to serve Prometheus `/metrics`; none when absent.
    pub metrics_addr: Option<SocketAddr>,
    /// How long a writer's lease lasts without renewal, seconds (HDFS's soft limit).
    pub lease_secs: u64,
    /// How long a read waits for this member to apply the state its client has already seen
    /// before it answers `ObserverBehind` (and the client tries another member), ms.
    pub read_wait_ms: u64,
    /// Debug builds only, for tests that must show their checks can fail: an observer serves
    /// reads without waiting for the client's state ID. A release build refuses to start
    /// with it.
    pub debug_skip_state_id_wait: bool,
    /// Debug builds only, for the Jepsen harness to show that it finds lost writes: log
    /// appends are acknowledged while they are only in RocksDB's memtable (no WAL, no fsync),
    /// so a SIGKILL loses entries this node told the leader were durable.
    pub debug_ack_before_fsync: bool,
    /// Debug builds only, for the simulation to show that it finds stale reads: the active
    /// answers reads without its quorum lease, so a deposed active that has not heard of its
    /// successor keeps answering from its old state.
    pub debug_reads_without_lease: bool,
    pub raft: RaftTuning,
    pub proposer: ProposerTuning,
    pub blocks: BlockTuning,
    pub namespace: NamespaceTuning,
    pub storage: StorageTuning,
    /// The protection of `listen-addr`, more ports, TLS files.
    pub security: WireSecurity,
    pub permissions: Permissions,
    pub block_tokens: BlockTokens,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: MemberId(1),
            nameservice: None,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7070)),
            advertise_addr: None,
            source_ip: None,
            data_dir: PathBuf::from("data/meta"),
            initial_members: Vec::new(),
            bootstrap: false,
            metrics_addr: None,
            lease_secs: 60,
            read_wait_ms: 2000,
            debug_skip_state_id_wait: false,
            debug_ack_before_fsync: false,
            debug_reads_without_lease: false,
            raft: RaftTuning::default(),
            proposer: ProposerTuning::default(),
            blocks: BlockTuning::default(),
            namespace: NamespaceTuning::default(),
            storage: StorageTuning::default(),
            security: WireSecurity::default(),
            permissions: Permissions::default(),
            block_tokens: BlockTokens::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })
    }

    /// The address others reach this server at.
    pub fn advertised(&self) -> String {
        self.advertise_addr
            .clone()
            .unwrap_or_else(|| self.listen_addr.to_string())
    }

    /// Checks what a running server relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Invalid(s));
        if self.node_id.get() == 0 {
            return bad("node-id must be > 0".into());
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("data-dir must be set".into());
        }
        if self.bootstrap && !self.initial_members.iter().any(|p| p.id == self.node_id) {
            return bad(format!(
                "bootstrap needs node {} among initial-members",
                self.node_id
            ));
        }
        let mut ids: Vec<MemberId> = self.initial_members.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.initial_members.len() || ids.contains(&MemberId(0)) {
            return bad("initial-members must have distinct ids > 0".into());
        }
        let t = &self.block_tokens;
        if t.lifetime_secs == 0 || t.key_roll_secs == 0 {
            return bad("block-tokens.lifetime-secs and key-roll-secs must be > 0".into());
        }
        // A key lives roll + lifetime: that many rolls' keys are live at once, and every
        // ring keeps at most MAX_KEYS (a key trimmed early would refuse its valid tokens).
        let live =
            (t.lifetime_secs.saturating_add(t.key_roll_secs) / t.key_roll_secs).saturating_add(2);
        if live > raftfs_core::block_token::MAX_KEYS as u64 {
            return bad(format!(
                "block-tokens: keys rolled every {} s and living {} s more would be {live} at \
                 once, above the {} a server keeps: roll less often",
                t.key_roll_secs,
                t.lifetime_secs,
                raftfs_core::block_token::MAX_KEYS
            ));
        }
        let r = &self.raft;
        if r.heartbeat_ms == 0 || r.election_timeout_min_ms < 3 * r.heartbeat_ms {
            return bad("election-timeout-min-ms must be at least 3 heartbeats".into());
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return bad("election-timeout-max-ms must exceed election-timeout-min-ms".into());
        }
        if r.snapshot_every_entries == 0 || r.max_entries_per_append == 0 {
            return bad("snapshot-every-entries and max-entries-per-append must be > 0".into());
        }
        let entry_bytes = self
            .proposer
            .max_batch_bytes
            .max(crate::namespace::ops::MAX_OP_BYTES) as u64;
        if entry_bytes.saturating_mul(self.raft.max_entries_per_append)
            > crate::server::MAX_RAFT_MESSAGE as u64 / 2
        {
            return bad(format!(
                "proposer.max-batch-bytes ({entry_bytes} at least) times raft.max-entries-per-append must be at most {} (half the Raft message limit)",
                crate::server::MAX_RAFT_MESSAGE / 2
            ));
        }
        if r.max_append_bytes < self.proposer.max_batch_bytes {
            return bad(
                "raft.max-append-bytes must be at least proposer.max-batch-bytes (one entry)"
                    .into(),
            );
        }
        if self.proposer.max_batch == 0 || self.proposer.max_in_flight == 0 {
            return bad("proposer max-batch and max-in-flight must be > 0".into());
        }
        if self.lease_secs == 0 {
            return bad("lease-secs must be > 0".into());
        }
        let b = &self.blocks;
        if b.default_block_size == 0 || !b.default_block_size.is_multiple_of(1024 * 1024) {
            return bad("blocks.default-block-size must be a positive multiple of 1 MiB".into());
        }
        if !(b.xmits_weight.is_finite() && b.xmits_weight >= 0.0)
            || b.reconstruction_timeout_secs == 0
            || b.redundancy_scan_ms == 0
            || b.redundancy_scan_groups == 0
        {
            return bad("blocks: xmits-weight must be >= 0; reconstruction-timeout-secs, redundancy-scan-ms and redundancy-scan-groups > 0".into());
        }
        if b.maintenance_min_live == 0 {
            return bad("blocks.maintenance-min-live must be >= 1".into());
        }
        if b.dead_after_secs == 0 || b.lease_check_ms == 0 {
            return bad("blocks.dead-after-secs and blocks.lease-check-ms must be > 0".into());
        }
        let n = &self.namespace;
        if n.reclaim_budget == 0 || n.reclaim_check_ms == 0 {
            return bad(
                "namespace.reclaim-budget and namespace.reclaim-check-ms must be > 0".into(),
            );
        }
        let st = &self.storage;
        if st.block_cache_bytes < MIN_STORAGE_BYTES || st.memtable_bytes < MIN_STORAGE_BYTES {
            return bad(format!(
                "storage.block-cache-bytes and storage.memtable-bytes must be at least {MIN_STORAGE_BYTES}"
            ));
        }
        self.security
            .validate(self.listen_addr)
            .map_err(|e| ConfigError::Invalid(format!("security: {e}")))?;
        let p = &self.permissions;
        for name in p.superuser.iter().chain(&p.admin_group) {
            valid_name(name).map_err(|e| ConfigError::Invalid(format!("permissions: {e}")))?;
        }
        p.umask()?;
        if self.debug_skip_state_id_wait && !cfg!(debug_assertions) {
            return bad("debug-skip-state-id-wait exists only in debug builds".into());
        }
        if self.debug_ack_before_fsync && !cfg!(debug_assertions) {
            return bad("debug-ack-before-fsync exists only in debug builds".into());
        }
        if self.debug_reads_without_lease && !cfg!(debug_assertions) {
            return bad("debug-reads-without-lease exists only in debug builds".into());
        }
        Ok(())
    }

    /// How long a read waits for the client's state ID.
    pub fn read_wait(&self) -> Duration {
        Duration::from_millis(self.read_wait_ms)
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// Flags of the `metaserver` binary (and of `metactl serve-meta`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Raft node id.
    #[arg(long)]
    pub node_id: Option<u64>,
    /// gRPC listen address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Advertised address (defaults to --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The nameservice this member belongs to (federation).
    #[arg(long)]
    pub nameservice: Option<NameserviceId>,
    /// Initial voters: `1=host:port,2=host:port,...`.
    #[arg(long, value_delimiter = ',')]
    pub initial_members: Vec<String>,
    /// Form a new cluster from --initial-members if the log is empty.
    #[arg(long)]
    pub bootstrap: bool,
    /// Prometheus /metrics address.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Snapshot after this many entries.
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// Entries kept behind a snapshot.
    #[arg(long)]
    pub keep_entries: Option<u64>,
    /// How long a read waits for the client's state ID, ms.
    #[arg(long)]
    pub read_wait_ms: Option<u64>,
    /// Debug builds only: observers skip the state-ID wait (to show that tests catch it).
    #[arg(long, hide = true)]
    pub debug_skip_state_id_wait: bool,
    /// Debug builds only: acknowledge log appends before they are durable (to show that the
    /// Jepsen harness finds the lost writes).
    #[arg(long, hide = true)]
    pub debug_ack_before_fsync: bool,
}

impl ServeArgs {
    /// The configuration: the file (or defaults), then the flags.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.node_id {
            c.node_id = MemberId(v);
        }
        if let Some(v) = self.listen {
            c.listen_addr = v;
        }
        if let Some(v) = self.advertise {
            c.advertise_addr = Some(v);
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.nameservice {
            c.nameservice = Some(v);
        }
        if !self.initial_members.is_empty() {
            c.initial_members = self
                .initial_members
                .iter()
                .map(|s| {
                    let (id, addr) = s.split_once('=').ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "--initial-members entry {s:?} is not ID=ADDR"
                        ))
                    })?;
                    let id = id
                        .parse()
                        .map_err(|_| ConfigError::Invalid(format!("bad node id in {s:?}")))?;
                    Ok(Peer {
                        id,
                        addr: addr.to_owned(),
                    })
                })
                .collect::<Result<_, ConfigError>>()?;
        }
        if self.bootstrap {
            c.bootstrap = true;
        }
        if let Some(v) = self.metrics_addr {
            c.metrics_addr = Some(v);
        }
        if let Some(v) = self.snapshot_every {
            c.raft.snapshot_every_entries = v;
        }
        if let Some(v) = self.keep_entries {
            c.raft.keep_entries_behind_snapshot = v;
        }
        if let Some(v) = self.read_wait_ms {
            c.read_wait_ms = v;
        }
        if self.debug_skip_state_id_wait {
            c.debug_skip_state_id_wait = true;
        }
        if self.debug_ack_before_fsync {
            c.debug_ack_before_fsync = true;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The package's directory as `cargo test` gives it to the running test: the one baked
    /// in at compile time may be another checkout's that shared the target directory (CI
    /// clones and builds with the developers' cache, and cargo does not rebuild for a move).
    fn manifest_dir() -> String {
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    }

    #[test]
    fn example_config_parses_and_validates() {
        let path = std::path::PathBuf::from(manifest_dir()).join("../etc/metaserver.toml");
        let c = Config::from_file(&path).expect("example parses");
        c.validate().expect("example is valid");
        assert_eq!(c.initial_members.len(), 3);
    }

    /// The example's proxy-user table, uncommented, is what `act_as` reads.
    #[test]
    fn proxy_users_parse_from_the_security_table() {
        let text = "[security]\n[[security.proxy-users]]\nuser = \"gateway\"\n\
                    users = [\"*\"]\ngroups = [\"staff\", \"analysts\"]\n";
        let c: Config = toml::from_str(text).expect("parses");
        let rules = &c.security.proxy_users;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].user, "gateway");
        assert_eq!(rules[0].users, ["*"]);
        assert_eq!(rules[0].groups, ["staff", "analysts"]);
        let unknown = text.replace("groups", "grups");
        assert!(toml::from_str::<Config>(&unknown).is_err());
    }

    #[test]
    fn rejects_unworkable_settings() {
        let mut c = Config {
            bootstrap: true,
            ..Config::default()
        };
        assert!(
            c.validate().is_err(),
            "bootstrap without self among members"
        );
        c.initial_members = vec![
            Peer {
                id: MemberId(1),
                addr: "a:1".into(),
            },
            Peer {
                id: MemberId(1),
                addr: "b:1".into(),
            },
        ];
        assert!(c.validate().is_err(), "duplicate ids");
        c.initial_members.pop();
        c.validate().expect("valid");
        // Keys rolled so often that more would be live than a server keeps.
        c.block_tokens.key_roll_secs = 60;
        assert!(c.validate().is_err(), "610 live keys");
        c.block_tokens.key_roll_secs = 600;
        c.validate().expect("valid");
        c.raft.election_timeout_min_ms = 100;
        assert!(c.validate().is_err());
        assert!(toml::from_str::<Config>("no-such-field = 1").is_err());
    }
}
