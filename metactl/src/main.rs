// `metactl`: raftfs admin and file commands, and the local cluster launcher (also built as
// `metactl-next`, see next.rs: no inner attributes or doc comments here).

mod balance;
mod blockserver;
mod certs;
mod copy;
mod ec;
mod fs;
mod link_proxy;
mod local;
mod mount;
mod reconstruction;
mod sockets;
mod transfer;
mod upgrade;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use raftfs_client::{AutoMsync, Client, ClientConfig, ReadMode};
use raftfs_core::id::MemberId;
use raftfs_core::namespace::admin_state::AdminChange;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// raftfs admin and file commands. One metactl process is one client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Metaserver addresses, comma-separated (or RAFTFS_META).
    #[arg(long, global = true)]
    meta: Option<String>,
    /// A local cluster's directory: reads DIR/cluster.json.
    #[arg(long, global = true)]
    cluster: Option<PathBuf>,
    /// How long a command keeps retrying across failovers.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Where reads go: `active` (linearizable) or `observer` (state-ID rule).
    #[arg(long, global = true, default_value = "active")]
    read_mode: ReadMode,
    /// With --read-mode observer: msync `never`, `always`, or when older than a period (500ms).
    #[arg(long, global = true, default_value = "never")]
    auto_msync: AutoMsync,
    /// The user to act as: claimed on a simple-mode port; with --cluster of a TLS cluster,
    /// the certificate `local cert` issued to this user (default: the login user).
    #[arg(long, global = true, env = "RAFTFS_USER")]
    user: Option<String>,
    /// The cluster's CA (PEM): servers are reached over TLS and verified against it.
    #[arg(long, global = true, env = "RAFTFS_CA")]
    ca: Option<PathBuf>,
    /// This client's certificate (PEM), presented to ports that ask for one.
    #[arg(long, global = true, env = "RAFTFS_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, global = true, env = "RAFTFS_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// Open every connection (to metaservers and blockservers) from this local address: on a
    /// `local up --proxied` cluster, the host `local partition --cut IP-ID` names, e.g.
    /// 127.0.1.7 (any 127.x.y.z is local on Linux; 127.0.0.10-254 are the members').
    #[arg(long, global = true, env = "RAFTFS_SOURCE_IP")]
    source_ip: Option<std::net::IpAddr>,
    /// How often a writer renews its lease (default 20s): well inside the metaservers' lease,
    /// which a test cluster may set to a few seconds (`local up --lease-secs`).
    #[arg(long, global = true, value_parser = parse_renew_interval)]
    lease_renew_every: Option<Duration>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A local cluster of real processes on loopback.
    #[command(subcommand)]
    Local(LocalCmd),
    /// Cluster state.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// File system commands, as `hdfs dfs`.
    #[command(subcommand)]
    Fs(FsCmd),
    /// Erasure-coding and storage policies.
    #[command(subcommand)]
    Ec(EcCmd),
    /// Rebuilding of lost internal blocks: status and byte-rate budgets.
    #[command(subcommand)]
    Reconstruction(ReconstructionCmd),
    /// The blockservers as the active knows them, with its nameservice's pool's usage.
    #[command(subcommand)]
    Blockserver(BlockserverCmd),
    /// Rolling upgrade of the metaservers' formats: prepare, status, finalize, rollback.
    #[command(subcommand)]
    Upgrade(UpgradeCmd),
    /// Mounts raftfs at a directory (FUSE), or edits federation's mount table (`mount add`,
    /// `remove`, `list`, `default`: kept by the nameservice --cluster names; admin to edit).
    Mount(MountArgs),
    /// Copies a tree between clusters (or nameservices), as `distcp -update`: SRC and DST are
    /// `raftfs://HOST:PORT[,HOST:PORT...]/path` or a bare path on the --cluster cluster. A
    /// file already at DST with the same length and checksum is skipped (a round that was
    /// interrupted resumes); every copy is verified by checksum.
    Copy {
        src: String,
        dst: String,
        /// Files copied at once.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Attributes not to keep, comma-separated: owner, mode, times, xattrs, policy.
        #[arg(long, value_delimiter = ',')]
        no_preserve: Vec<String>,
        /// Every action as a JSON line, appended to this file.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Remove from DST what SRC does not have (distcp's -delete).
        #[arg(long, conflicts_with = "diff")]
        delete: bool,
        /// FROM TO: copy only what changed at SRC between its snapshots FROM and TO
        /// (distcp's -update -diff). DST must hold snapshot FROM and nothing changed since;
        /// it takes snapshot TO after the round. Run it with SRC and DST swapped (the new
        /// cluster's snapshots) to bring the old cluster back in line.
        #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
        diff: Vec<String>,
        /// The summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Moves the subtree behind mount point MOUNT to nameservice DST_NS while its clients
    /// run (HDFS's fedbalance): snapshot and full copy, diff rounds until one is small, a
    /// read-only window (the source frozen) for the last round and the mount's switch, then
    /// the source into /.balance-trash on its nameservice. A failure or Ctrl-C before the
    /// switch rolls back. Prints the window's length.
    Balance {
        mount: String,
        dst_ns: String,
        /// The federation (a router's configuration: nameservices, members, the table's
        /// keeper); default, for `--cluster DIR`, its first router's.
        #[arg(long)]
        federation: Option<PathBuf>,
        /// Files copied at once.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// A diff round that moved fewer entries than this is the last before the window.
        #[arg(long, default_value_t = 100)]
        small: u64,
        /// Most diff rounds before the window.
        #[arg(long, default_value_t = 10)]
        max_rounds: u32,
        /// How long the source stays frozen after the switch before it moves to the trash
        /// (above the routers' table-poll period).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Every step and copy as a JSON line, appended to this file.
        #[arg(long)]
        log: Option<PathBuf>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Health of the block groups at or below PATH (exit 1 when any is missing).
    Fsck {
        #[arg(default_value = "/")]
        path: String,
        #[arg(long)]
        json: bool,
    },
    /// Membership: observers, promotion, removal, leadership (Raft joint consensus).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Runs a metaserver (what `local up` starts; the same entry point as `metaserver`).
    #[command(hide = true)]
    ServeMeta(raftfs_metaserver::ServeArgs),
    /// Runs a blockserver (what `local up` starts; the same entry point as `blockserver`).
    #[command(hide = true)]
    ServeBlock(raftfs_blockserver::ServeArgs),
    /// Runs a router (what `local up --nameservices` starts; the same entry point as `router`).
    #[command(hide = true)]
    ServeRouter(raftfs_router::ServeArgs),
    /// Serves WebHDFS (`/webhdfs/v1/PATH?op=...`) in front of the cluster, as HDFS's HttpFS:
    /// HdfsCLI, fsspec and curl reach raftfs through it. Over HTTP callers name their user
    /// with `user.name`; with --https (swebhdfs) every caller presents a client certificate
    /// from the cluster's CA, which names its user. With a certificate of its own (--cert),
    /// the gateway acts for its callers: the servers need a proxy rule for it (`[[security.
    /// proxy-users]]`, `local up --proxy-user`); without one it claims their names, which
    /// only simple-mode ports accept. Prints the address it listens on, then serves until
    /// interrupted.
    Gateway {
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:9870")]
        listen: std::net::SocketAddr,
        /// Serve HTTPS with the gateway's certificate (--ca, --cert, --key; the certificate
        /// must name the gateway's host), requiring a client certificate from the CA.
        #[arg(long)]
        https: bool,
        /// Entries per listing page: a LISTSTATUS_BATCH answer (HDFS's dfs.ls.limit).
        #[arg(long, default_value_t = 1000)]
        ls_limit: u32,
    },
    /// Runs the fault-injecting proxy of a `local up --proxied` cluster (what `local up` starts).
    #[command(hide = true)]
    ServeLinkProxy {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum LocalCmd {
    /// Starts a cluster and prints the metaserver addresses.
    Up {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        voters: u32,
        /// Observers: non-voting members that serve reads.
        #[arg(long, default_value_t = 1)]
        observers: u32,
        /// Debug builds only: observers skip the state-ID wait (tests show their checks fail).
        #[arg(long, hide = true)]
        debug_skip_state_id_wait: bool,
        /// Debug builds only: members acknowledge log appends before they are durable.
        #[arg(long, hide = true)]
        debug_ack_before_fsync: bool,
        /// Snapshot every N entries (default: the metaserver's).
        #[arg(long)]
        snapshot_every: Option<u64>,
        /// Write DIR/cluster.json and return, leaving the cluster running.
        #[arg(long)]
        detach: bool,
        /// Put every member behind a fault-injecting proxy, for `local partition`.
        #[arg(long)]
        proxied: bool,
        /// Blockservers to start once the metaservers are ready.
        #[arg(long, default_value_t = 0)]
        blockservers: u32,
        /// Racks the blockservers are spread over, round robin (r1..rR).
        #[arg(long, default_value_t = 1)]
        racks: u32,
        /// Bytes every blockserver keeps free on its disk (more than the disk: a full disk).
        #[arg(long)]
        block_reserved_bytes: Option<u64>,
        /// Blockserver heartbeat period, ms.
        #[arg(long)]
        block_heartbeat_ms: Option<u64>,
        /// Period of the blockservers' scans of every stored block, seconds (default three
        /// weeks; short in tests of the block scanner).
        #[arg(long)]
        block_scan_period_secs: Option<u64>,
        /// Writers' lease length, seconds (the metaservers'; default 60).
        #[arg(long)]
        lease_secs: Option<u64>,
        /// A blockserver silent this long is dead, seconds (the metaservers'; default 10).
        #[arg(long)]
        dead_after_secs: Option<u64>,
        /// How long a block access token counts, seconds (the metaservers'; default 36000).
        #[arg(long)]
        block_token_lifetime_secs: Option<u64>,
        /// Random reconstruction sources, no per-rack aggregation (benchmark baseline).
        #[arg(long)]
        rack_blind_reconstruction: bool,
        /// Most records one reclaim entry removes of a recursively deleted tree (the
        /// metaservers' `namespace.reclaim-budget`; default 10000; small in tests).
        #[arg(long)]
        reclaim_budget: Option<u64>,
        /// Every voter starts from this generated namespace (`local generate`): its state
        /// machine is a copy of it (the SST files hard-linked).
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Nothing plaintext: a cluster CA and node certificates in DIR/tls, every port
        /// mutual TLS, the tools authenticated by the superuser's certificate.
        #[arg(long)]
        tls: bool,
        /// With --tls: a user that may act for others (a WebHDFS gateway), on every server:
        /// NAME (any user, any group) or NAME:USERS:GROUPS (comma lists, * for any); repeated.
        #[arg(long = "proxy-user", requires = "tls")]
        proxy_users: Vec<raftfs_core::identity::ProxyRule>,
        /// Federation: N nameservices ns1..nsN, each with --voters and --observers, in
        /// DIR/nsK (each its own --cluster directory), sharing the blockservers.
        #[arg(long, default_value_t = 0)]
        nameservices: u32,
        /// With --nameservices: this many routers, which DIR/cluster.json lists for the
        /// tools and clients (one tree over every nameservice; ns1 keeps the mount table).
        #[arg(long, default_value_t = 1)]
        routers: u32,
        /// Debug builds only: routers forward the wrong nameservice's state ID (HDFS-17156).
        #[arg(long, hide = true)]
        debug_router_wrong_state_id: bool,
    },
    /// Issues a client certificate of the TLS cluster in DIR to a user (DIR/tls/users/USER.pem
    /// and .key); `--cluster DIR --user USER` then acts as that user.
    Cert {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        /// The user (the certificate's common name).
        #[arg(long)]
        user: String,
        /// Groups the user is in (organizations of the certificate), repeated.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A host name or address the certificate is also valid for as a server (a WebHDFS
        /// gateway serving HTTPS under it), repeated.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Generates a synthetic namespace straight into a state-machine DB, for benchmarks at
    /// sizes not worth creating one RPC at a time; `local up --seed OUT` boots from it. Prints
    /// what it wrote and its throughput as JSON.
    Generate {
        /// The DB to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        files: u64,
        #[arg(long, default_value_t = 1_000)]
        files_per_dir: u64,
        /// Most subdirectories of an inner directory.
        #[arg(long, default_value_t = 100)]
        fanout: u64,
        /// Bytes per file (0: no block groups).
        #[arg(long, default_value_t = 1 << 20)]
        file_length: u64,
        #[arg(long, default_value_t = 128 << 20)]
        block_size: u64,
    },
    /// Cuts network links of a `--proxied` cluster (and heals every other one).
    Partition {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        /// Links to cut, both ways: `A-B[,A-B...]`, each end a member's id, `client` (every
        /// client), or one client host by its loopback address, as `--source-ip` sets it
        /// (not 127.0.0.10-254, the members'), e.g. `1-2,client-3` or `127.0.1.7-1,127.0.1.7-2`.
        /// `client` cuts named hosts too.
        #[arg(long, conflicts_with = "heal", required_unless_present = "heal")]
        cut: Option<String>,
        /// Heal every link.
        #[arg(long)]
        heal: bool,
    },
    /// Starts one more metaserver and adds it to the cluster in DIR as an observer.
    AddObserver {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long, hide = true)]
        debug_skip_state_id_wait: bool,
    },
    /// Stops the cluster in DIR.
    Down {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
    },
    /// Prints the servers of the cluster in DIR as Prometheus file-based discovery targets
    /// (JSON for `file_sd_configs`; see etc/prometheus/prometheus.yml).
    ScrapeTargets {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
    },
    /// Starts one stopped metaserver of the cluster in DIR again.
    Start {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
    },
    /// A planned restart of metaserver N of the cluster in DIR: SIGTERM (an active hands its
    /// leadership to the most caught-up voter first), started again, waited for until it is
    /// caught up.
    Restart {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: Duration,
        /// Start it from this metactl binary (a rolling upgrade's new version, or the old
        /// one to go back to) instead of the running one.
        #[arg(long = "bin")]
        exe: Option<PathBuf>,
    },
    /// A planned restart of blockserver N, waited for until it is live with its blocks
    /// reported again.
    RestartBlock {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: Duration,
        /// Start it from this metactl binary (a rolling upgrade's new version, or the old
        /// one to go back to) instead of the running one.
        #[arg(long = "bin")]
        exe: Option<PathBuf>,
    },
    /// Restarts every metaserver (followers first, the active last), then every blockserver,
    /// one at a time, each waited for until healthy: clients see no failed call.
    RollingRestart {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        /// How long each server may take to be healthy again.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: Duration,
        /// Start every server from this metactl binary (a rolling upgrade onto it).
        #[arg(long = "bin")]
        exe: Option<PathBuf>,
    },
    /// Stops one metaserver of the cluster in DIR.
    Stop {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
        /// SIGKILL, as a crash.
        #[arg(long)]
        kill: bool,
    },
    /// Starts one stopped blockserver of the cluster in DIR again (its config re-read).
    StartBlock {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
    },
    /// Stops one blockserver of the cluster in DIR.
    StopBlock {
        #[arg(long, default_value = "raftfs-local")]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
        /// SIGKILL, as a crash.
        #[arg(long)]
        kill: bool,
    },
}

/// `local start` / `start-block`: starts the server and says so.
async fn start(dir: &std::path::Path, server: local::Server) -> Result<()> {
    let pid = local::start_server(dir, server, None).await?;
    eprintln!("{server} started (pid {pid})");
    Ok(())
}

#[derive(Debug, Subcommand)]
enum MemberCmd {
    /// Adds the running metaserver at ADDR (not yet a member) as an observer.
    AddObserver {
        addr: String,
        /// Its node id (default: asked from the server at ADDR).
        #[arg(long)]
        id: Option<MemberId>,
    },
    /// Removes a voter or an observer.
    Remove { id: MemberId },
    /// Promotes an observer to voter.
    Promote { id: MemberId },
    /// Makes a voter the active.
    TransferLeader { id: MemberId },
    /// Lists the members as the cluster knows them.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BlockserverCmd {
    /// Every blockserver: liveness, state, usage (all pools, and this nameservice's), blocks.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Drains blockservers: their internal blocks are copied to others under the
    /// reconstruction budgets (rack rules kept); once no group needs them they show as
    /// decommissioned and may be stopped. In every nameservice of a federation.
    Decommission {
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Waits until every one is decommissioned in every nameservice.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        wait_timeout: Duration,
        #[command(flatten)]
        federation: FederationArg,
    },
    /// Puts blockservers back in service (cancels a decommission or a maintenance).
    Recommission {
        #[arg(required = true)]
        ids: Vec<u64>,
        #[command(flatten)]
        federation: FederationArg,
    },
    /// Takes blockservers out for maintenance (a reboot, a disk swap): their blocks keep
    /// counting while every group keeps `maintenance-min-live` live copies elsewhere; it
    /// ends on its own after --for.
    Maintenance {
        #[arg(required = true)]
        ids: Vec<u64>,
        /// How long (e.g. 30m, 2h; at most 30 days).
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[command(flatten)]
        federation: FederationArg,
    },
}

#[derive(Debug, Subcommand)]
enum UpgradeCmd {
    /// Marks an upgrade in progress; then restart every member onto the new binary.
    Prepare,
    /// Each member's binary and the newest format level it writes; the cluster's level.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Raises the cluster's format level to the newest every member writes (every member
    /// must answer); the old binary can no longer follow.
    Finalize,
    /// Cancels a prepared upgrade: the members may go back to the old binary.
    Rollback,
}

/// Which nameservices a blockserver admin command goes to.
#[derive(Debug, clap::Args)]
struct FederationArg {
    /// A federation (a router's configuration): the command goes to every nameservice.
    /// Default: a local federation's (`--cluster`), else the one nameservice.
    #[arg(long)]
    federation: Option<PathBuf>,
}

/// `metactl mount MOUNTPOINT` (FUSE) or `metactl mount add|remove|list|default` (federation).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct MountArgs {
    #[command(subcommand)]
    table: Option<MountCmd>,
    /// The directory to mount raftfs at: serves until it is unmounted (`umount DIR`) or
    /// interrupted. The mount acts as --user; the kernel checks local callers against
    /// raftfs's modes and owners. Reads follow --read-mode (with observers: this mount's
    /// own writes are always seen).
    #[arg(required = true)]
    mountpoint: Option<PathBuf>,
    /// How long the kernel keeps entries and attributes: changes made by other clients show
    /// after at most this long.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    attr_timeout: Duration,
    /// Lets users other than the one who mounted use the mount (`allow_other`).
    #[arg(long)]
    allow_other: bool,
    /// Mounts read-only.
    #[arg(long)]
    read_only: bool,
}

#[derive(Debug, Subcommand)]
enum MountCmd {
    /// Mounts NAMESERVICE:PATH at AT (`mount add /user ns1:/user`).
    Add { at: String, to: String },
    /// Removes mount point AT (its data stays in its nameservice).
    Remove { at: String },
    /// Every mount point, and the default nameservice.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Sets the nameservice of the paths under no mount point (--none: nobody's).
    Default {
        #[arg(required_unless_present = "none")]
        nameservice: Option<String>,
        #[arg(long, conflicts_with = "nameservice")]
        none: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ReconstructionCmd {
    /// The active's queues, tasks, budgets, and every blockserver's xmits.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Sets byte-rate budgets (journaled; a pair at 0 is removed).
    Throttle {
        /// Per blockserver, MB/s read and written by reconstruction (0: unlimited).
        #[arg(long)]
        node: Option<f64>,
        /// FROM:TO=MBPS, bytes crossing from rack FROM to rack TO.
        #[arg(long = "rack-pair")]
        rack_pairs: Vec<String>,
        /// DATACENTER/RACK,...: which datacenter each rack is in (replaces the map).
        #[arg(long, value_delimiter = ',')]
        racks: Vec<String>,
        /// FROM:TO=MBPS, bytes crossing from datacenter FROM to datacenter TO.
        #[arg(long = "dc-pair")]
        dc_pairs: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum EcCmd {
    /// The storage policies raftfs knows.
    ListPolicies,
    /// Sets the policy of DIR: files created below it get it.
    SetPolicy { dir: String, policy: String },
    /// The policy of PATH.
    GetPolicy { path: String },
    /// Per policy: files, bytes, internal blocks, and what EC costs small files.
    Report {
        #[arg(default_value = "/")]
        path: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterCmd {
    /// The active, and every member's role, applied index and lag.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Has the active build a snapshot of the namespace now and purge its log behind it
    /// (as `hdfs dfsadmin -saveNamespace`); prints the snapshot and purged indexes.
    Checkpoint,
}

#[derive(Debug, Subcommand)]
enum FsCmd {
    /// Creates directories.
    Mkdir {
        /// Create missing parents; no error if it exists.
        #[arg(short)]
        p: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Lists a directory (or shows a file).
    Ls {
        #[arg(long)]
        json: bool,
        #[arg(default_value = "/")]
        path: String,
    },
    /// Shows a file's or directory's attributes.
    Stat {
        #[arg(long)]
        json: bool,
        path: String,
    },
    /// A file's checksum, the same for a replicated and an erasure-coded copy of the same
    /// bytes, on any cluster (HDFS's COMPOSITE_CRC): the CRC32C of its bytes, put together
    /// from the checksums the blockservers stored, without reading the bytes.
    Checksum {
        #[arg(long)]
        json: bool,
        path: String,
    },
    /// Moves (renames) SRC to DST, or into DST if it is a directory.
    Mv { src: String, dst: String },
    /// Makes DIR snapshottable (`hdfs dfsadmin -allowSnapshot`; the superuser's).
    AllowSnapshot { dir: String },
    /// Makes DIR no longer snapshottable (refused while it has snapshots).
    DisallowSnapshot { dir: String },
    /// Takes a snapshot of DIR, named NAME or after the time (UTC), read at
    /// DIR/.snapshot/NAME; prints that path. One journal entry, whatever DIR holds.
    CreateSnapshot { dir: String, name: Option<String> },
    /// Deletes snapshot NAME of DIR (what only it kept is reclaimed in the background).
    DeleteSnapshot { dir: String, name: String },
    /// Makes PATH read-only on this nameservice (the superuser's; what `balance` does for
    /// its window): every change under it is refused with the retriable READ_ONLY.
    Freeze { path: String },
    /// Makes a frozen PATH writable again (after a balance that could not roll back).
    Thaw { path: String },
    /// Renames snapshot FROM of DIR to TO.
    RenameSnapshot {
        dir: String,
        from: String,
        to: String,
    },
    /// What changed in DIR from snapshot FROM to TO ("." is the live tree), as HDFS's
    /// `snapshotDiff`: + created, - deleted, M modified, R renamed; paths relative to DIR.
    SnapshotDiff {
        #[arg(long)]
        json: bool,
        dir: String,
        from: String,
        to: String,
    },
    /// The snapshots of DIR (the listing of DIR/.snapshot).
    LsSnapshots {
        #[arg(long)]
        json: bool,
        dir: String,
    },
    /// Changes the mode (octal: 755, 1777 for the sticky bit), as `hdfs dfs -chmod`: the
    /// owner or the superuser.
    Chmod {
        /// Below directories too.
        #[arg(short = 'R')]
        r: bool,
        mode: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Changes the owner and/or group (OWNER, OWNER:GROUP or :GROUP), as `hdfs dfs -chown`:
    /// the owner only by the superuser.
    Chown {
        #[arg(short = 'R')]
        r: bool,
        owner: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Changes the group, as `hdfs dfs -chgrp`: the owner, to a group it is in, or the
    /// superuser.
    Chgrp {
        #[arg(short = 'R')]
        r: bool,
        group: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copies a local file into raftfs.
    Put {
        /// Overwrite an existing file.
        #[arg(short)]
        f: bool,
        /// Storage policy of the new file (default: its directory's).
        #[arg(long)]
        policy: Option<String>,
        /// Bytes per internal block (default: the metaserver's).
        #[arg(long)]
        block_size: Option<u64>,
        local: PathBuf,
        path: String,
    },
    /// Copies a raftfs file to the local disk.
    Get { path: String, local: PathBuf },
    /// Writes a file's bytes to stdout.
    Cat { path: String },
    /// Deletes files, or directories with -r.
    Rm {
        #[arg(short)]
        r: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Creates empty files, or updates their modification time.
    Touch {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Sets (`-n NAME -v VALUE`) or removes (`-x NAME`) an extended attribute, as
    /// `hdfs dfs -setfattr`; `--expect`/`--expect-absent` make the set a compare-and-set,
    /// `--append` appends to the value.
    Setfattr {
        #[arg(short = 'n', conflicts_with = "x", required_unless_present = "x")]
        name: Option<String>,
        #[arg(short = 'v', default_value = "")]
        value: String,
        /// Remove this attribute.
        #[arg(short = 'x')]
        x: Option<String>,
        /// Only if the attribute now holds this value.
        #[arg(long, conflicts_with_all = ["expect_absent", "append"])]
        expect: Option<String>,
        /// Only if the attribute does not exist yet.
        #[arg(long, conflicts_with = "append")]
        expect_absent: bool,
        /// Append VALUE to the attribute (created when absent).
        #[arg(long)]
        append: bool,
        path: String,
    },
    /// Shows extended attributes (`-n NAME`, or all with `-d`), as `hdfs dfs -getfattr`.
    Getfattr {
        #[arg(short = 'n', conflicts_with = "d", required_unless_present = "d")]
        name: Option<String>,
        #[arg(short = 'd')]
        d: bool,
        path: String,
    },
}

fn client(cli: &Cli) -> Result<Client> {
    let metas = raftfs_client::discovery::resolve(cli.meta.as_deref(), cli.cluster.as_deref())?;
    let mut config = ClientConfig::new(metas);
    if let Some(user) = &cli.user {
        config.user = user.clone();
    }
    config.tls = client_tls(cli, &config.user)?;
    config.failover_deadline = cli.timeout;
    config.read_mode = cli.read_mode;
    config.auto_msync = cli.auto_msync;
    config.source_ip = cli.source_ip;
    if let Some(every) = cli.lease_renew_every {
        config.lease_renew_interval = every;
    }
    Ok(Client::new(config)?)
}

/// The nameservices a blockserver admin command goes to: a federation's every one (named by
/// `--federation`, or a local federation's router configuration), else the one of `client`.
fn nameservice_clients(cli: &Cli, arg: &FederationArg) -> Result<Vec<(String, Client)>> {
    let base = client(cli)?;
    let file = match (&arg.federation, &cli.cluster) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(dir)) if local::federation_file(dir).exists() => {
            Some(local::federation_file(dir))
        }
        _ => None,
    };
    let Some(file) = file else {
        return Ok(vec![(String::new(), base)]);
    };
    let fed = balance::Federation::load(&file, &base)?;
    Ok(fed
        .clients()
        .map(|(ns, c)| (ns.to_string(), c.clone()))
        .collect())
}

/// A lease renewal period: a duration, and not zero (a renewal loop without a pause would
/// flood the active).
fn parse_renew_interval(s: &str) -> Result<Duration> {
    let every = humantime::parse_duration(s)?;
    anyhow::ensure!(
        !every.is_zero(),
        "a lease renewal period must be above zero"
    );
    Ok(every)
}

/// The TLS settings of the command: the files named by flags; else, for a local TLS cluster,
/// the certificate of `--user` or, without one, the superuser's from `cluster.json`.
fn client_tls(cli: &Cli, user: &str) -> Result<Option<raftfs_client::ClientTls>> {
    if let Some(ca) = &cli.ca {
        return Ok(Some(raftfs_client::ClientTls::from_files(
            ca,
            cli.cert.as_deref(),
            cli.key.as_deref(),
        )?));
    }
    let Some(dir) = &cli.cluster else {
        return Ok(None);
    };
    let Ok(file) = raftfs_client::discovery::ClusterFile::read(dir) else {
        return Ok(None);
    };
    if file.tls.is_none() {
        return Ok(None);
    }
    if cli.user.is_some() {
        return certs::user_tls(dir, user)?
            .map(Some)
            .with_context(|| format!("no certificate for user {user} in {}", dir.display()));
    }
    Ok(file.client_tls()?)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Cmd::Gateway {
            listen,
            https,
            ls_limit,
        } => {
            raftfs_runtime::init_tracing("info");
            let base = client(&cli)?.config().clone();
            // Over HTTP callers only name themselves; a gateway with a certificate would act
            // for whoever they say they are.
            if !https && base.tls.as_ref().is_some_and(|t| t.has_certificate()) {
                anyhow::bail!(
                    "the gateway has a client certificate (--cert, or the TLS cluster's \
                     cluster.json): serve --https, where callers are known by theirs"
                );
            }
            let tls = match (https, &cli.ca, &cli.cert, &cli.key) {
                (false, ..) => None,
                (true, Some(ca), Some(cert), Some(key)) => {
                    Some(raftfs_gateway::server_config(&raftfs_runtime::TlsFiles {
                        ca: ca.clone(),
                        cert: cert.clone(),
                        key: key.clone(),
                    })?)
                }
                (true, ..) => anyhow::bail!("--https needs --ca, --cert and --key"),
            };
            let listener = tokio::net::TcpListener::bind(listen).await?;
            // The first line is the address, for scripts and tests that asked for port 0.
            println!("{}", listener.local_addr()?);
            let gateway = std::sync::Arc::new(
                raftfs_gateway::Gateway::new(raftfs_gateway::Users::new(base))
                    .with_ls_limit(*ls_limit),
            );
            match tls {
                Some(tls) => {
                    raftfs_gateway::serve_tls(listener, gateway, tls, raftfs_runtime::signal())
                        .await?;
                }
                None => raftfs_gateway::serve(listener, gateway, raftfs_runtime::signal()).await?,
            }
        }
        Cmd::ServeLinkProxy { dir } => {
            raftfs_metaserver::server::init_tracing();
            link_proxy::serve(dir).await?;
        }
        Cmd::Local(LocalCmd::Partition { dir, cut, heal: _ }) => {
            let cut = link_proxy::parse_cuts(cut.as_deref().unwrap_or(""))?;
            local::partition(dir, cut).await?;
        }
        Cmd::ServeMeta(args) => {
            use raftfs_metaserver::server::{self, Listeners};
            server::init_tracing();
            let config = args.clone().into_config()?;
            let rpc = server::rpc_addrs(&config);
            let listeners = match sockets::handed_down(&rpc, config.metrics_addr)? {
                Some((rpc, metrics)) => Listeners { rpc, metrics },
                None => server::listeners(&config)?,
            };
            server::serve(config, listeners, server::signal()).await?;
        }
        Cmd::ServeBlock(args) => {
            use raftfs_blockserver::server::{self, Listeners};
            server::init_tracing();
            let config = args.clone().into_config()?;
            let rpc = server::rpc_addrs(&config);
            let listeners = match sockets::handed_down(&rpc, config.metrics_addr)? {
                Some((rpc, metrics)) => Listeners { rpc, metrics },
                None => server::listeners(&config)?,
            };
            server::serve(config, listeners, server::signal()).await?;
        }
        Cmd::ServeRouter(args) => {
            raftfs_runtime::init_tracing("info");
            let config = args.clone().into_config()?;
            let listeners = match sockets::handed_down(&[config.listen_addr], config.metrics_addr)?
            {
                Some((mut rpc, metrics)) if rpc.len() == 1 => (rpc.remove(0), metrics),
                Some(_) => anyhow::bail!("a router serves on one gRPC socket"),
                None => raftfs_router::server::listeners(&config)?,
            };
            raftfs_router::server::serve(config, listeners, raftfs_runtime::signal()).await?;
        }
        Cmd::Local(LocalCmd::Up {
            dir,
            voters,
            observers,
            debug_skip_state_id_wait,
            debug_ack_before_fsync,
            snapshot_every,
            detach,
            proxied,
            blockservers,
            racks,
            block_reserved_bytes,
            block_heartbeat_ms,
            block_scan_period_secs,
            lease_secs,
            dead_after_secs,
            block_token_lifetime_secs,
            rack_blind_reconstruction,
            reclaim_budget,
            seed,
            tls,
            proxy_users,
            nameservices,
            routers,
            debug_router_wrong_state_id,
        }) => {
            let opts = local::UpOptions {
                dir: dir.clone(),
                voters: *voters,
                observers: *observers,
                snapshot_every: *snapshot_every,
                debug_skip_state_id_wait: *debug_skip_state_id_wait,
                debug_ack_before_fsync: *debug_ack_before_fsync,
                proxied: *proxied,
                blockservers: *blockservers,
                racks: *racks,
                block_reserved_bytes: *block_reserved_bytes,
                block_heartbeat_ms: *block_heartbeat_ms,
                block_scan_period_secs: *block_scan_period_secs,
                lease_secs: *lease_secs,
                dead_after_secs: *dead_after_secs,
                block_token_lifetime_secs: *block_token_lifetime_secs,
                rack_blind_reconstruction: *rack_blind_reconstruction,
                reclaim_budget: *reclaim_budget,
                seed: seed.clone(),
                tls: *tls,
                proxy_users: proxy_users.clone(),
                nameservices: *nameservices,
                nameservice: None,
                routers: *routers,
                debug_router_wrong_state_id: *debug_router_wrong_state_id,
            };
            let cluster = local::up(&opts).await?;
            if cluster.nameservices.is_empty() {
                println!("{}", cluster.meta_addrs().join(","));
            }
            for ns in &cluster.nameservices {
                let file =
                    raftfs_client::discovery::ClusterFile::read(std::path::Path::new(&ns.dir))?;
                println!("{} {} {}", ns.name, ns.dir, file.meta_addrs().join(","));
            }
            if *detach {
                eprintln!(
                    "cluster running; state in {}; stop it with: metactl local down --dir {0}",
                    dir.display()
                );
                return Ok(());
            }
            eprintln!("cluster running; Ctrl-C stops it");
            raftfs_metaserver::server::signal().await;
            local::down(dir).await?;
        }
        Cmd::Local(LocalCmd::Down { dir }) => local::down(dir).await?,
        Cmd::Local(LocalCmd::ScrapeTargets { dir }) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&local::scrape_targets(dir)?)?
            );
        }
        Cmd::Local(LocalCmd::Cert {
            dir,
            user,
            groups,
            hosts,
        }) => {
            let ca = certs::LocalCa::load(dir)?.with_context(|| {
                format!("{} is not a TLS cluster (local up --tls)", dir.display())
            })?;
            let files = ca.user_for_hosts(user, groups, hosts)?;
            println!("{}\n{}", files.cert.display(), files.key.display());
        }
        Cmd::Local(LocalCmd::Generate {
            out,
            files,
            files_per_dir,
            fanout,
            file_length,
            block_size,
        }) => {
            let shape = raftfs_metaserver::generate::Shape {
                files: *files,
                files_per_dir: *files_per_dir,
                fanout: *fanout,
                file_length: *file_length,
                block_size: *block_size,
            };
            local::generate(out, &shape)?;
        }
        Cmd::Local(LocalCmd::AddObserver {
            dir,
            debug_skip_state_id_wait,
        }) => {
            let id = local::add_observer(dir, *debug_skip_state_id_wait).await?;
            println!("{id}");
        }
        Cmd::Member(cmd) => member(&client(&cli)?, cmd).await?,
        Cmd::Ec(cmd) => match cmd {
            EcCmd::ListPolicies => ec::list_policies(),
            EcCmd::SetPolicy { dir, policy } => {
                client(&cli)?
                    .set_storage_policy(dir, policy)
                    .await
                    .with_context(|| format!("set-policy {dir}"))?;
            }
            EcCmd::GetPolicy { path } => {
                let p = client(&cli)?
                    .get_storage_policy(path)
                    .await
                    .with_context(|| format!("get-policy {path}"))?;
                println!("{p}");
            }
            EcCmd::Report { path, json } => ec::report(&client(&cli)?, path, *json).await?,
        },
        Cmd::Blockserver(BlockserverCmd::List { json }) => {
            blockserver::list(&client(&cli)?, *json).await?;
        }
        Cmd::Blockserver(BlockserverCmd::Decommission {
            ids,
            wait,
            wait_timeout,
            federation,
        }) => {
            let clients = nameservice_clients(&cli, federation)?;
            blockserver::set_state(&clients, ids, AdminChange::Decommission).await?;
            if *wait {
                blockserver::wait_decommissioned(&clients, ids, *wait_timeout).await?;
            }
        }
        Cmd::Upgrade(UpgradeCmd::Prepare) => upgrade::prepare(&client(&cli)?).await?,
        Cmd::Upgrade(UpgradeCmd::Status { json }) => {
            upgrade::status(&client(&cli)?, *json).await?;
        }
        Cmd::Upgrade(UpgradeCmd::Finalize) => upgrade::finalize(&client(&cli)?).await?,
        Cmd::Upgrade(UpgradeCmd::Rollback) => upgrade::rollback(&client(&cli)?).await?,
        Cmd::Blockserver(BlockserverCmd::Recommission { ids, federation }) => {
            let clients = nameservice_clients(&cli, federation)?;
            blockserver::set_state(&clients, ids, AdminChange::InService).await?;
        }
        Cmd::Blockserver(BlockserverCmd::Maintenance {
            ids,
            duration,
            federation,
        }) => {
            let for_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
            let clients = nameservice_clients(&cli, federation)?;
            blockserver::set_state(&clients, ids, AdminChange::Maintenance { for_ms }).await?;
        }
        Cmd::Mount(MountArgs {
            table: None,
            mountpoint: Some(dir),
            attr_timeout,
            allow_other,
            read_only,
        }) => {
            raftfs_runtime::init_tracing("info");
            let options = raftfs_fuse::MountOptions {
                attr_ttl: *attr_timeout,
                allow_other: *allow_other,
                read_only: *read_only,
            };
            // The line scripts and tests wait for: the kernel serves the mount from here.
            let mounted = || println!("mounted {}", dir.display());
            raftfs_fuse::serve(
                client(&cli)?,
                dir,
                options,
                mounted,
                raftfs_runtime::signal(),
            )
            .await
            .with_context(|| format!("mounting at {}", dir.display()))?;
        }
        Cmd::Mount(MountArgs { table: None, .. }) => {
            anyhow::bail!("metactl mount: name a directory to mount at, or add|remove|list|default")
        }
        Cmd::Mount(MountArgs {
            table: Some(MountCmd::Add { at, to }),
            ..
        }) => mount::add(&client(&cli)?, at, to).await?,
        Cmd::Mount(MountArgs {
            table: Some(MountCmd::Remove { at }),
            ..
        }) => client(&cli)?.mount_remove(at).await?,
        Cmd::Mount(MountArgs {
            table: Some(MountCmd::List { json }),
            ..
        }) => mount::list(&client(&cli)?, *json).await?,
        Cmd::Mount(MountArgs {
            table: Some(MountCmd::Default { nameservice, .. }),
            ..
        }) => {
            mount::default(&client(&cli)?, nameservice.as_deref()).await?;
        }
        Cmd::Reconstruction(ReconstructionCmd::Status { json }) => {
            reconstruction::status(&client(&cli)?, *json).await?;
        }
        Cmd::Reconstruction(ReconstructionCmd::Throttle {
            node,
            rack_pairs,
            racks,
            dc_pairs,
        }) => {
            reconstruction::throttle(&client(&cli)?, *node, rack_pairs, racks, dc_pairs).await?;
        }
        Cmd::Fsck { path, json } => {
            if !ec::fsck(&client(&cli)?, path, *json).await? {
                std::process::exit(1);
            }
        }
        Cmd::Local(LocalCmd::Start { dir, id }) => start(dir, local::Server::Meta(*id)).await?,
        Cmd::Local(LocalCmd::Restart { dir, id, wait, exe }) => {
            local::restart_meta(dir, *id, *wait, exe.as_deref()).await?;
        }
        Cmd::Local(LocalCmd::RestartBlock { dir, id, wait, exe }) => {
            local::restart_block(dir, *id, *wait, exe.as_deref()).await?;
        }
        Cmd::Local(LocalCmd::RollingRestart { dir, wait, exe }) => {
            local::rolling_restart(dir, *wait, exe.as_deref()).await?;
        }
        Cmd::Local(LocalCmd::Stop { dir, id, kill }) => {
            local::stop_server(dir, local::Server::Meta(*id), *kill).await?;
        }
        Cmd::Local(LocalCmd::StartBlock { dir, id }) => {
            start(dir, local::Server::Block(*id)).await?;
        }
        Cmd::Local(LocalCmd::StopBlock { dir, id, kill }) => {
            local::stop_server(dir, local::Server::Block(*id), *kill).await?;
        }
        Cmd::Cluster(ClusterCmd::Checkpoint) => {
            let (snapshot, purged) = client(&cli)?.checkpoint().await?;
            println!("snapshot at index {snapshot}; log purged up to {purged}");
        }
        Cmd::Cluster(ClusterCmd::Status { json }) => {
            let status = client(&cli)?.cluster_status().await?;
            if *json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                println!(
                    "active: {}    term: {}    committed: {}",
                    status.leader, status.term, status.committed_index
                );
                println!(
                    "{:>4}  {:<22} {:<9} {:>12} {:>8}",
                    "id", "addr", "role", "applied", "lag"
                );
                for m in &status.members {
                    let role = if m.id == status.leader {
                        "active"
                    } else {
                        m.role.as_str()
                    };
                    println!(
                        "{:>4}  {:<22} {:<9} {:>12} {:>8}",
                        m.id, m.addr, role, m.applied_index, m.lag
                    );
                }
                print_workers(&status.workers);
            }
        }
        Cmd::Copy {
            src,
            dst,
            workers,
            no_preserve,
            log,
            delete,
            diff,
            json,
        } => {
            let base = client(&cli)?;
            let (from, to) = (copy::side(src, &base)?, copy::side(dst, &base)?);
            let opts = copy::CopyOptions {
                workers: *workers,
                preserve: copy::Preserve::all_but(no_preserve)?,
                log: log.clone(),
                delete: *delete,
            };
            let summary = match diff.as_slice() {
                [a, b] => copy::run_diff(&from, &to, a, b, &opts).await?,
                _ => copy::run(&from, &to, &opts).await?,
            };
            if *json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "{} directories, {} files copied ({} bytes), {} unchanged, {} symlinks, {} deleted, {} renamed, {} errors",
                    summary.directories,
                    summary.files_copied,
                    summary.bytes_copied,
                    summary.files_skipped,
                    summary.symlinks,
                    summary.deleted,
                    summary.renamed,
                    summary.errors
                );
            }
            if summary.errors > 0 {
                anyhow::bail!("{} files could not be copied", summary.errors);
            }
        }
        Cmd::Balance {
            mount,
            dst_ns,
            federation,
            workers,
            small,
            max_rounds,
            settle,
            log,
            json,
        } => {
            let base = client(&cli)?;
            let file = match (federation, &cli.cluster) {
                (Some(f), _) => f.clone(),
                (None, Some(dir)) => local::federation_file(dir),
                (None, None) => anyhow::bail!("--federation FILE (a router's configuration)"),
            };
            let fed = balance::Federation::load(&file, &base)?;
            let opts = balance::BalanceOptions {
                copy: copy::CopyOptions {
                    workers: *workers,
                    preserve: copy::Preserve::ALL,
                    log: log.clone(),
                    delete: false,
                },
                small: *small,
                max_rounds: *max_rounds,
                settle: *settle,
            };
            let report = balance::run(&fed, mount, dst_ns, &opts).await?;
            if *json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for r in &report.rounds {
                    println!(
                        "round {}: {} changes, {} bytes in {:.2} s",
                        r.snapshot, r.changes, r.bytes, r.seconds
                    );
                }
                println!(
                    "{} moved from {} to {}; read-only window {} ms; the source is in {} ({:.1} s in all)",
                    report.mount,
                    report.from,
                    report.to,
                    report.window_ms,
                    report.trash,
                    report.seconds
                );
            }
        }
        Cmd::Fs(cmd) => {
            let c = client(&cli)?;
            match cmd {
                FsCmd::Mkdir { p, paths } => {
                    for path in paths {
                        c.mkdir(path, *p)
                            .await
                            .with_context(|| format!("mkdir {path}"))?;
                    }
                }
                FsCmd::Ls { json, path } => fs::ls(&c, path, *json)
                    .await
                    .with_context(|| format!("ls {path}"))?,
                FsCmd::Stat { json, path } => fs::stat(&c, path, *json)
                    .await
                    .with_context(|| format!("stat {path}"))?,
                FsCmd::Checksum { json, path } => fs::checksum(&c, path, *json)
                    .await
                    .with_context(|| format!("checksum {path}"))?,
                FsCmd::Put {
                    f,
                    policy,
                    block_size,
                    local,
                    path,
                } => {
                    let opts = transfer::PutOptions {
                        overwrite: *f,
                        policy: policy.clone(),
                        block_size: *block_size,
                    };
                    transfer::put(&c, local, path, &opts)
                        .await
                        .with_context(|| format!("put {path}"))?;
                }
                FsCmd::Get { path, local } => {
                    transfer::get(&c, path, local)
                        .await
                        .with_context(|| format!("get {path}"))?;
                }
                FsCmd::Cat { path } => {
                    transfer::cat(&c, path)
                        .await
                        .with_context(|| format!("cat {path}"))?;
                }
                FsCmd::Chmod { r, mode, paths } => {
                    let change = fs::AttrChange::mode(mode)?;
                    fs::change_all(&c, "chmod", paths, &change, *r).await?;
                }
                FsCmd::Chown { r, owner, paths } => {
                    let change = fs::AttrChange::owner(owner)?;
                    fs::change_all(&c, "chown", paths, &change, *r).await?;
                }
                FsCmd::Chgrp { r, group, paths } => {
                    let change = fs::AttrChange::owner(&format!(":{group}"))?;
                    fs::change_all(&c, "chgrp", paths, &change, *r).await?;
                }
                FsCmd::Mv { src, dst } => fs::mv(&c, src, dst)
                    .await
                    .with_context(|| format!("mv {src} {dst}"))?,
                FsCmd::AllowSnapshot { dir } => {
                    c.allow_snapshot(dir)
                        .await
                        .with_context(|| format!("allow-snapshot {dir}"))?;
                    println!("Allowing snapshots on {dir} succeeded");
                }
                FsCmd::DisallowSnapshot { dir } => {
                    c.disallow_snapshot(dir)
                        .await
                        .with_context(|| format!("disallow-snapshot {dir}"))?;
                    println!("Disallowing snapshots on {dir} succeeded");
                }
                FsCmd::Freeze { path } => c
                    .freeze(path, true)
                    .await
                    .with_context(|| format!("freeze {path}"))?,
                FsCmd::Thaw { path } => c
                    .freeze(path, false)
                    .await
                    .with_context(|| format!("thaw {path}"))?,
                FsCmd::CreateSnapshot { dir, name } => {
                    let name = c
                        .create_snapshot(dir, name.as_deref())
                        .await
                        .with_context(|| format!("create-snapshot {dir}"))?;
                    println!("{}", fs::snapshot_path(dir, &name));
                }
                FsCmd::DeleteSnapshot { dir, name } => c
                    .delete_snapshot(dir, name)
                    .await
                    .with_context(|| format!("delete-snapshot {dir} {name}"))?,
                FsCmd::RenameSnapshot { dir, from, to } => {
                    c.rename_snapshot(dir, from, to)
                        .await
                        .with_context(|| format!("rename-snapshot {dir} {from} {to}"))?
                }
                FsCmd::SnapshotDiff {
                    json,
                    dir,
                    from,
                    to,
                } => fs::snapshot_diff(&c, dir, from, to, *json)
                    .await
                    .with_context(|| format!("snapshot-diff {dir} {from} {to}"))?,
                FsCmd::LsSnapshots { json, dir } => {
                    let at = fs::snapshot_path(dir, "");
                    let at = at.trim_end_matches('/');
                    fs::ls(&c, at, *json)
                        .await
                        .with_context(|| format!("ls-snapshots {dir}"))?;
                }
                FsCmd::Rm { r, paths } => {
                    for path in paths {
                        fs::rm(&c, path, *r)
                            .await
                            .with_context(|| format!("rm {path}"))?;
                    }
                }
                FsCmd::Setfattr {
                    name,
                    value,
                    x,
                    expect,
                    expect_absent,
                    append,
                    path,
                } => {
                    let how = match (x, name) {
                        (Some(n), _) => fs::XattrChange::Remove(n.clone()),
                        (None, Some(n)) if *append => {
                            fs::XattrChange::Append(n.clone(), value.clone())
                        }
                        (None, Some(n)) => fs::XattrChange::Set {
                            name: n.clone(),
                            value: value.clone(),
                            expect: match (expect, expect_absent) {
                                (Some(v), _) => Some(Some(v.clone())),
                                (None, true) => Some(None),
                                (None, false) => None,
                            },
                        },
                        (None, None) => anyhow::bail!("setfattr needs -n NAME or -x NAME"),
                    };
                    fs::setfattr(&c, path, how)
                        .await
                        .with_context(|| format!("setfattr {path}"))?;
                }
                FsCmd::Getfattr { name, d: _, path } => fs::getfattr(&c, path, name.as_deref())
                    .await
                    .with_context(|| format!("getfattr {path}"))?,
                FsCmd::Touch { paths } => {
                    for path in paths {
                        c.touch(path, now_ms())
                            .await
                            .with_context(|| format!("touch {path}"))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The active's background workers, one line each.
fn print_workers(workers: &[raftfs_client::WorkerStatus]) {
    println!(
        "{:<16} {:<8} {:>8} {:>7} {:>10} {:>10}  last error",
        "worker", "state", "runs", "errors", "items", "last items"
    );
    for w in workers {
        println!(
            "{:<16} {:<8} {:>8} {:>7} {:>10} {:>10}  {}",
            w.name,
            w.state,
            w.runs,
            w.errors,
            w.items,
            w.last_items,
            w.last_error.as_deref().unwrap_or("-")
        );
    }
}

fn print_members(members: &[raftfs_client::Member]) {
    println!("{:>4}  {:<22} {:<9}", "id", "addr", "role");
    for m in members {
        println!("{:>4}  {:<22} {:<9}", m.id, m.addr, m.role);
    }
}

async fn member(c: &Client, cmd: &MemberCmd) -> Result<()> {
    let members = match cmd {
        MemberCmd::AddObserver { addr, id } => {
            let id = match id {
                Some(id) => *id,
                None => {
                    c.node_status(addr)
                        .await
                        .with_context(|| format!("asking {addr} for its node id"))?
                        .id
                }
            };
            c.add_observer(id, addr)
                .await
                .with_context(|| format!("add-observer {id} at {addr}"))?
        }
        MemberCmd::Remove { id } => c
            .remove_member(*id)
            .await
            .with_context(|| format!("remove {id}"))?,
        MemberCmd::Promote { id } => c
            .promote(*id)
            .await
            .with_context(|| format!("promote {id}"))?,
        MemberCmd::TransferLeader { id } => c
            .transfer_leader(*id)
            .await
            .with_context(|| format!("transfer-leader {id}"))?,
        MemberCmd::List { json } => {
            let members = c.members().await?;
            if *json {
                println!("{}", serde_json::to_string(&members)?);
                return Ok(());
            }
            members
        }
    };
    print_members(&members);
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
