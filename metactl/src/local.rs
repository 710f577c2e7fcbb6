//! `metactl local ...`: a cluster of real processes on loopback, for development, tests and
//! benchmarks. Each metaserver is this same binary run as `metactl serve-meta --config
//! DIR/meta-N/metaserver.toml`, i.e. the entry point of the `metaserver` binary with a config
//! file an operator could have written; nothing here is a separate code path. Blockservers
//! likewise run as `metactl serve-block --config DIR/block-N/blockserver.toml`, started once
//! the metaservers are ready, with their data in `DIR/block-N/data`.

use std::fmt;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use raftfs_client::discovery::{BlockEntry, ClusterFile, MetaEntry, NameserviceEntry, RouterEntry};
use raftfs_client::{BlockServerInfo, Client, ClientConfig};
use raftfs_core::federation::NameserviceId;
use raftfs_core::id::MemberId;
use raftfs_metaserver::config::{Config, Peer};

use crate::certs;
use crate::link_proxy::{self, LinkPlan, Route};
use crate::sockets;

/// What `local up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub voters: u32,
    /// Observers (non-voting learners that serve reads), added once the voters are ready.
    pub observers: u32,
    /// Snapshot every this many entries (small values exercise snapshot catch-up).
    pub snapshot_every: Option<u64>,
    /// Debug builds only: observers skip the state-ID wait (tests show their checks fail).
    pub debug_skip_state_id_wait: bool,
    /// Debug builds only: every member acknowledges log appends before they are durable
    /// (the Jepsen harness shows that it finds the lost writes).
    pub debug_ack_before_fsync: bool,
    /// Every member behind the fault-injecting proxy ([`crate::link_proxy`]), so that
    /// `local partition` can cut links.
    pub proxied: bool,
    /// Blockservers, started once the metaservers are ready.
    pub blockservers: u32,
    /// Racks the blockservers are spread over, round robin ([`rack_of`]).
    pub racks: u32,
    /// Bytes every blockserver keeps free on its volume (default: the blockserver's); more
    /// than the disk has makes every disk full, for tests of that.
    pub block_reserved_bytes: Option<u64>,
    /// Blockserver heartbeat period, ms (default: the blockserver's).
    pub block_heartbeat_ms: Option<u64>,
    /// Period of the blockservers' block scans, seconds (default: the blockserver's).
    pub block_scan_period_secs: Option<u64>,
    /// Writers' lease length, seconds (short in tests of lease recovery).
    pub lease_secs: Option<u64>,
    /// How long a silent blockserver counts as alive, seconds (short in tests of
    /// reconstruction).
    pub dead_after_secs: Option<u64>,
    /// How long a block access token counts, seconds (short in tests of expired tokens).
    pub block_token_lifetime_secs: Option<u64>,
    /// Rack-blind reconstruction (random sources, no per-rack aggregation): the baseline
    /// of the rebuild benchmark.
    pub rack_blind_reconstruction: bool,
    /// Most records one reclaim entry removes (default: the metaserver's).
    pub reclaim_budget: Option<u64>,
    /// A generated namespace every voter starts from (see [`generate`]).
    pub seed: Option<PathBuf>,
    /// Nothing plaintext: a cluster CA in `DIR/tls/`, a certificate per node, every port
    /// `mtls`, and the tools' client certificate (the superuser's) in `cluster.json`.
    pub tls: bool,
    /// With `tls`: users that may act for others (a gateway), on every server. Kept with the
    /// CA (`DIR/tls/proxy-users.json`), so that servers added later have them too.
    pub proxy_users: Vec<raftfs_core::identity::ProxyRule>,
    /// Federation (DESIGN §10): this many nameservices, `ns1`..`nsN`, each `voters` voters
    /// and `observers` observers in `DIR/nsK/` (its own `cluster.json`), sharing the
    /// blockservers, which keep a pool for each. 0: one unnamed nameservice, as before.
    pub nameservices: u32,
    /// The nameservice the metaservers being started belong to (set for each of a
    /// federated cluster's nameservices).
    pub nameservice: Option<NameserviceId>,
    /// A federated cluster's routers (`router-K/`), listed in `DIR/cluster.json`: the
    /// cluster's tools and clients call them. `ns1` keeps the mount table.
    pub routers: u32,
    /// Debug builds only: the routers forward the wrong nameservice's state ID
    /// (HDFS-17156; the Jepsen harness shows that it finds the stale reads).
    pub debug_router_wrong_state_id: bool,
}

/// The members a blockserver reports to for one pool.
#[derive(Debug, Clone)]
struct PoolTarget {
    name: Option<NameserviceId>,
    /// The nameservice's cluster directory.
    dir: PathBuf,
    metas: Vec<String>,
}

/// A client of the cluster in `dir` at `addrs`: TLS with the superuser's certificate when the
/// cluster has a CA.
pub fn client_config(dir: &Path, addrs: &[String]) -> Result<ClientConfig> {
    let mut config = ClientConfig::new(addrs.to_vec());
    let superuser = raftfs_runtime::process_user();
    if let Some(tls) = certs::user_tls(dir, &superuser)? {
        config.tls = Some(tls);
        config.user = superuser;
    }
    Ok(config)
}

/// The `[security]` of a server of the cluster in `dir`, whose certificate `cert` issues
/// (`member`, `blockserver`): one `mtls` port with the cluster's proxy rules when the cluster
/// has a CA, the default plain simple-mode port otherwise.
fn wire_security(
    dir: &Path,
    cert: impl FnOnce(&certs::LocalCa) -> Result<raftfs_runtime::TlsFiles>,
) -> Result<raftfs_runtime::WireSecurity> {
    let Some(ca) = certs::LocalCa::load(dir)? else {
        return Ok(raftfs_runtime::WireSecurity::default());
    };
    Ok(raftfs_runtime::WireSecurity {
        policy: raftfs_core::identity::PortPolicy::Mtls,
        simple: false,
        tls: Some(cert(&ca)?),
        ports: Vec::new(),
        proxy_users: ca.proxy_users()?,
    })
}

/// Where one member listens, is known, and connects from.
struct NodeAddrs {
    listen: String,
    advertise: String,
    source_ip: Option<std::net::IpAddr>,
    metrics_port: u16,
    /// The member's sockets (RPC, metrics), bound here and handed down to it.
    held: Vec<TcpListener>,
}

/// Chooses the addresses of member `id`, binding its sockets; behind the proxy, adds its
/// route and waits until the proxy listens for it.
async fn node_addrs(dir: &Path, id: u64) -> Result<NodeAddrs> {
    if LinkPlan::read(dir)?.is_none() {
        let held = sockets::bind_fresh(dir, 2)?;
        let addr = format!("127.0.0.1:{}", sockets::port(&held[0])?);
        return Ok(NodeAddrs {
            listen: addr.clone(),
            advertise: addr,
            source_ip: None,
            metrics_port: sockets::port(&held[1])?,
            held,
        });
    }
    let mut held = sockets::bind_fresh(dir, 3)?;
    // The proxy, already running, binds the front itself: released just before the route
    // that names it is written (still reserved, so no other cluster draws it meanwhile).
    let front = held.remove(0);
    let route = Route {
        id,
        front: format!("127.0.0.1:{}", sockets::port(&front)?),
        back: format!("127.0.0.1:{}", sockets::port(&held[0])?),
        source_ip: link_proxy::source_ip_of(id)?,
    };
    drop(front);
    LinkPlan::update(dir, |plan| {
        plan.routes.retain(|r| r.id != id);
        plan.routes.push(route.clone());
        Ok(())
    })
    .await?;
    Ok(NodeAddrs {
        listen: route.back,
        advertise: route.front,
        source_ip: Some(route.source_ip),
        metrics_port: sockets::port(&held[1])?,
        held,
    })
}

/// Writes the config of node `id` into `DIR/meta-ID/` and returns it.
fn write_config(opts: &UpOptions, id: u64, addrs: &NodeAddrs, voters: &[Peer]) -> Result<Config> {
    let nd = node_dir(&opts.dir, id);
    fs::create_dir_all(&nd)?;
    let is_voter = voters.iter().any(|p| p.id.get() == id);
    let mut config = Config {
        node_id: MemberId(id),
        nameservice: opts.nameservice.clone(),
        listen_addr: addrs.listen.parse()?,
        advertise_addr: Some(addrs.advertise.clone()),
        source_ip: addrs.source_ip,
        data_dir: nd.join("data"),
        initial_members: if is_voter {
            voters.to_vec()
        } else {
            Vec::new()
        },
        bootstrap: is_voter,
        metrics_addr: Some(format!("127.0.0.1:{}", addrs.metrics_port).parse()?),
        debug_skip_state_id_wait: opts.debug_skip_state_id_wait && !is_voter,
        debug_ack_before_fsync: opts.debug_ack_before_fsync,
        ..Config::default()
    };
    if let Some(s) = opts.lease_secs {
        config.lease_secs = s;
    }
    if let Some(s) = opts.dead_after_secs {
        config.blocks.dead_after_secs = s;
    }
    if let Some(s) = opts.block_token_lifetime_secs {
        config.block_tokens.lifetime_secs = s;
    }
    if opts.rack_blind_reconstruction {
        config.blocks.rack_aware_reconstruction = false;
    }
    if let Some(b) = opts.reclaim_budget {
        config.namespace.reclaim_budget = b;
    }
    if let Some(s) = opts.snapshot_every {
        config.raft.snapshot_every_entries = s;
        config.raft.keep_entries_behind_snapshot = s / 10;
    }
    config.security = wire_security(&opts.dir, |ca| ca.member(id))?;
    config.validate()?;
    fs::write(config_path(&opts.dir, id), toml::to_string_pretty(&config)?)?;
    Ok(config)
}

fn entry(config: &Config, pid: u32, role: &str) -> MetaEntry {
    MetaEntry {
        id: config.node_id.get(),
        addr: config.advertised(),
        pid,
        role: role.into(),
        data_dir: config.data_dir.display().to_string(),
        metrics_addr: config.metrics_addr.map(|a| a.to_string()),
    }
}

/// Waits until the metaserver at `addr` answers (it may not be a member yet).
async fn wait_listening(dir: &Path, addr: &str, timeout: Duration) -> Result<()> {
    let client = Client::new(client_config(dir, &[addr.to_owned()])?)?;
    let start = Instant::now();
    loop {
        match client.node_status(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() >= timeout => {
                bail!("metaserver at {addr} did not start within {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Starts a new metaserver in `DIR/meta-ID/` outside the membership and adds it as an
/// observer through the active (`metactl member add-observer`), as an operator would.
async fn start_observer(
    opts: &UpOptions,
    id: u64,
    voters: &[Peer],
    addrs: &[String],
) -> Result<MetaEntry> {
    let own = node_addrs(&opts.dir, id).await?;
    let addr = own.advertise.clone();
    let config = write_config(opts, id, &own, voters)?;
    let pid = spawn_meta(&opts.dir, id, own.held, None)?;
    wait_listening(&opts.dir, &addr, Duration::from_secs(30)).await?;
    let mut cc = client_config(&opts.dir, addrs)?;
    cc.failover_deadline = Duration::from_secs(60);
    Client::new(cc)?
        .add_observer(MemberId(id), &addr)
        .await
        .with_context(|| format!("adding observer {id} at {addr}"))?;
    Ok(entry(&config, pid, "observer"))
}

/// `local add-observer`: one more observer for the running cluster in `dir`; returns its id.
pub async fn add_observer(dir: &Path, debug_skip_state_id_wait: bool) -> Result<u64> {
    let mut cluster = ClusterFile::read(dir)?;
    if cluster.meta.is_empty() {
        let dirs: Vec<&str> = cluster
            .nameservices
            .iter()
            .map(|n| n.dir.as_str())
            .collect();
        bail!(
            "{} lists no metaserver to join (a federated cluster: add it to one nameservice's directory: {})",
            dir.display(),
            dirs.join(", ")
        );
    }
    let id = cluster.meta.iter().map(|m| m.id).max().unwrap_or(0) + 1;
    // A member of a nameservice joins it under its name: the first member's config says it.
    let nameservice = match cluster.meta.first() {
        Some(m) => Config::from_file(&config_path(dir, m.id))?.nameservice,
        None => None,
    };
    let opts = UpOptions {
        dir: dir.to_owned(),
        nameservices: 0,
        nameservice,
        routers: 0,
        debug_router_wrong_state_id: false,
        voters: 0,
        observers: 1,
        snapshot_every: None,
        debug_skip_state_id_wait,
        debug_ack_before_fsync: false,
        proxied: false,
        blockservers: 0,
        racks: 1,
        block_reserved_bytes: None,
        block_heartbeat_ms: None,
        block_scan_period_secs: None,
        lease_secs: None,
        dead_after_secs: None,
        block_token_lifetime_secs: None,
        rack_blind_reconstruction: false,
        reclaim_budget: None,
        seed: None,
        tls: false,
        proxy_users: Vec::new(),
    };
    let e = start_observer(&opts, id, &[], &cluster.meta_addrs()).await?;
    cluster.meta.push(e);
    write_cluster_file(dir, &cluster)?;
    Ok(id)
}

/// `local scrape-targets`: the cluster's servers as Prometheus file-based discovery targets
/// (`file_sd_configs`, etc/prometheus/prometheus.yml), one group per server with its role,
/// id, nameservice (a federation's members are in each nameservice's own directory) and,
/// for a blockserver, rack as labels, so that a dashboard can tell them apart. The ports of
/// a local cluster are drawn at random; this is how Prometheus finds them.
pub fn scrape_targets(dir: &Path) -> Result<serde_json::Value> {
    let cluster = ClusterFile::read(dir)?;
    let mut groups = Vec::new();
    let mut add = |role: &str, id: u64, addr: &Option<String>, extra: &[(&str, &str)]| {
        if let Some(addr) = addr {
            let mut labels = serde_json::json!({ "role": role, "server_id": id.to_string() });
            for (k, v) in extra {
                labels[*k] = (*v).into();
            }
            groups.push(serde_json::json!({ "targets": [addr], "labels": labels }));
        }
    };
    for m in &cluster.meta {
        add("metaserver", m.id, &m.metrics_addr, &[]);
    }
    for ns in &cluster.nameservices {
        let members = ClusterFile::read(Path::new(&ns.dir))?;
        for m in &members.meta {
            add(
                "metaserver",
                m.id,
                &m.metrics_addr,
                &[("nameservice", &ns.name)],
            );
        }
    }
    for b in &cluster.block {
        add("blockserver", b.id, &b.metrics_addr, &[("rack", &b.rack)]);
    }
    for r in &cluster.routers {
        add("router", r.id, &r.metrics_addr, &[]);
    }
    Ok(serde_json::Value::Array(groups))
}

/// `local generate`: writes the namespace and prints what it wrote, as JSON.
pub fn generate(out: &Path, shape: &raftfs_metaserver::generate::Shape) -> Result<()> {
    let now = raftfs_metaserver::journal::proposer::now_ms();
    let g = raftfs_metaserver::generate::generate(out, shape, now)?;
    let report = serde_json::json!({
        "directories": g.directories,
        "files": g.files,
        "groups": g.groups,
        "objects": g.objects(),
        "bytes": g.bytes,
        "bytes_per_object": g.bytes as f64 / g.objects().max(1) as f64,
        "seconds": g.seconds,
        "objects_per_sec": g.objects() as f64 / g.seconds.max(1e-9),
        "last_file": raftfs_core::synthetic::file_path(shape, shape.files.saturating_sub(1)),
    });
    println!("{report}");
    Ok(())
}

/// Makes `seed` (a closed state-machine DB) the state machine of a member that has never
/// run: its SST files hard-linked (RocksDB never changes one in place), the rest copied.
fn plant_seed(seed: &Path, data_dir: &Path) -> Result<()> {
    let sm = data_dir.join("sm");
    if sm.exists() {
        anyhow::bail!("{} exists: a seed is only for a new member", sm.display());
    }
    fs::create_dir_all(&sm)?;
    for entry in fs::read_dir(seed).with_context(|| format!("reading seed {}", seed.display()))? {
        let entry = entry?;
        let (from, to) = (entry.path(), sm.join(entry.file_name()));
        if from.extension().is_some_and(|e| e == "sst") {
            fs::hard_link(&from, &to).or_else(|_| fs::copy(&from, &to).map(|_| ()))?;
        } else if entry.file_type()?.is_file() {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn node_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("meta-{id}"))
}

fn config_path(dir: &Path, id: u64) -> PathBuf {
    node_dir(dir, id).join("metaserver.toml")
}

/// Whether process `pid` is alive.
pub fn alive(pid: u32) -> bool {
    // A killed server that its adoptive parent has not reaped yet is a zombie: signals still
    // reach the pid, but it runs no more (and `local start` must not refuse to restart it).
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some((_, rest)) = stat.rsplit_once(')')
        && rest.trim_start().starts_with(['Z', 'X'])
    {
        return false;
    }
    i32::try_from(pid).is_ok_and(|p| kill(Pid::from_raw(p), None).is_ok())
}

/// `path` made absolute (as far as it exists), so that a process's command line names it the
/// same way whatever directory `metactl` was run from.
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

/// Whether `pid` is still the server this cluster started with `arg` (its config file, or the
/// cluster directory for the link proxy) on its command line. A pid in `cluster.json` outlives
/// its process: once that server has died the number is free, and on a busy host it is soon
/// another process's (threads draw from the same numbers), perhaps another cluster's server.
/// Signalling it then would stop a stranger, as `local down` after a member was killed could.
pub fn runs(pid: u32, arg: &Path) -> bool {
    let wanted = absolute(arg);
    // Arguments as the process saw them: a relative one is relative to its own directory (a
    // server started by an older metactl, or from another working directory).
    let cwd = PathBuf::from(format!("/proc/{pid}/cwd"));
    alive(pid)
        && fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .any(|a| absolute(&cwd.join(std::ffi::OsStr::from_bytes(a))) == wanted)
        })
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: u32, signal: Signal) -> Result<()> {
    let p = i32::try_from(pid).map_err(|_| anyhow!("bad pid {pid}"))?;
    match kill(Pid::from_raw(p), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(anyhow!("signal {signal} to {pid}: {e}")),
    }
}

/// Starts the metaserver whose config is in `DIR/meta-ID/`, detached from this process, from
/// `exe` (another metactl binary: a rolling upgrade's new or old version) or this one.
pub fn spawn_meta(
    dir: &Path,
    id: u64,
    sockets: Vec<TcpListener>,
    exe: Option<&Path>,
) -> Result<u32> {
    let nd = node_dir(dir, id);
    spawn_server(
        exe,
        "serve-meta",
        &config_path(dir, id),
        &nd.join("metaserver.log"),
        sockets,
    )
}

/// Starts the blockserver whose config is in `DIR/block-ID/`, detached from this process,
/// from `exe` or this binary.
pub fn spawn_block(
    dir: &Path,
    id: u64,
    sockets: Vec<TcpListener>,
    exe: Option<&Path>,
) -> Result<u32> {
    let bd = block_dir(dir, id);
    spawn_server(
        exe,
        "serve-block",
        &block_config_path(dir, id),
        &bd.join("blockserver.log"),
        sockets,
    )
}

/// Runs `metactl SUBCOMMAND --config CONFIG` detached, its output appended to `log`, serving
/// on `sockets` (bound to the addresses in the config, in the order [`sockets::order`]
/// gives).
fn spawn_server(
    exe: Option<&Path>,
    subcommand: &str,
    config: &Path,
    log: &Path,
    sockets: Vec<TcpListener>,
) -> Result<u32> {
    let exe = match exe {
        Some(exe) => absolute(exe),
        None => std::env::current_exe().context("locating metactl")?,
    };
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(exe);
        cmd.arg(subcommand)
            .arg("--config")
            .arg(absolute(config))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C meant for `local up` does not reach it directly.
            .process_group(0);
        sockets::hand_down(&mut cmd, sockets)?;
        cmd.spawn()
            .with_context(|| format!("starting metactl {subcommand}"))?
    };
    Ok(child.id())
}

fn block_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("block-{id}"))
}

fn block_config_path(dir: &Path, id: u64) -> PathBuf {
    block_dir(dir, id).join("blockserver.toml")
}

/// The rack of blockserver `id` (from 1) when `racks` racks take turns: r1, r2, .., rR, r1, ..
pub fn rack_of(id: u64, racks: u32) -> String {
    format!("r{}", id.saturating_sub(1) % u64::from(racks.max(1)) + 1)
}

/// Writes the config of blockserver `id` into `DIR/block-ID/`, keeping a pool for each of
/// `pools` and reporting to its members, serving on `ports` (data, metrics).
fn write_block_config(
    opts: &UpOptions,
    id: u64,
    pools: &[PoolTarget],
    ports: [u16; 2],
) -> Result<raftfs_blockserver::Config> {
    let bd = block_dir(&opts.dir, id);
    fs::create_dir_all(&bd)?;
    let defaults = raftfs_blockserver::Config::default();
    let config = raftfs_blockserver::Config {
        id,
        listen: format!("127.0.0.1:{}", ports[0]).parse()?,
        advertise: None,
        rack: rack_of(id, opts.racks),
        data_dirs: vec![bd.join("data")],
        metaservers: pools
            .iter()
            .filter(|p| p.name.is_none())
            .flat_map(|p| p.metas.iter().cloned())
            .collect(),
        nameservices: pools
            .iter()
            .filter_map(|p| {
                Some(raftfs_blockserver::config::NameserviceConfig {
                    name: p.name.clone()?,
                    metaservers: p.metas.clone(),
                })
            })
            .collect(),
        heartbeat_ms: opts.block_heartbeat_ms.unwrap_or(defaults.heartbeat_ms),
        scan_period_secs: opts
            .block_scan_period_secs
            .unwrap_or(defaults.scan_period_secs),
        reserved_bytes: opts.block_reserved_bytes.unwrap_or(defaults.reserved_bytes),
        metrics_addr: Some(format!("127.0.0.1:{}", ports[1]).parse()?),
        security: wire_security(&opts.dir, |ca| ca.blockserver(id))?,
        ..defaults
    };
    config.validate()?;
    fs::write(
        block_config_path(&opts.dir, id),
        toml::to_string_pretty(&config)?,
    )?;
    Ok(config)
}

/// Waits until the active counts `n` live blockservers (they registered and heartbeat), so
/// that the cluster `local up` hands over can place blocks at once.
async fn wait_blockservers(dir: &Path, addrs: &[String], n: u64, timeout: Duration) -> Result<()> {
    let mut config = client_config(dir, addrs)?;
    config.failover_deadline = Duration::from_secs(2);
    config.rpc_timeout = Duration::from_secs(2);
    let client = Client::new(config)?;
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < timeout {
        match client.fsck("/", false).await {
            Ok(r) if r.live_blockservers >= n => return Ok(()),
            Ok(r) => last = format!("{} of {n} blockservers live", r.live_blockservers),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("blockservers did not register within {timeout:?}: {last}")
}

/// Starts `opts.blockservers` blockservers keeping a pool for each of `pools` (reporting to
/// every member of its nameservice), recording each in `cluster.json` as it starts (so that
/// `down` finds it whatever happens).
async fn start_blockservers(
    opts: &UpOptions,
    cluster: &mut ClusterFile,
    pools: &[PoolTarget],
) -> Result<()> {
    if opts.racks == 0 {
        bail!("--racks must be at least 1");
    }
    for id in 1..=u64::from(opts.blockservers) {
        let held = sockets::bind_fresh(&opts.dir, 2)?;
        let ports = [sockets::port(&held[0])?, sockets::port(&held[1])?];
        let config = write_block_config(opts, id, pools, ports)?;
        let pid = spawn_block(&opts.dir, id, held, None)?;
        cluster.block.push(BlockEntry {
            id,
            addr: config.listen.to_string(),
            pid,
            rack: config.rack.clone(),
            data_dir: config
                .data_dirs
                .first()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            metrics_addr: config.metrics_addr.map(|a| a.to_string()),
        });
        write_cluster_file(&opts.dir, cluster)?;
    }
    for pool in pools {
        wait_blockservers(
            &pool.dir,
            &pool.metas,
            u64::from(opts.blockservers),
            Duration::from_secs(60),
        )
        .await?;
    }
    Ok(())
}

/// Writes `cluster.json` atomically.
pub fn write_cluster_file(dir: &Path, cluster: &ClusterFile) -> Result<()> {
    let tmp = dir.join("cluster.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(cluster)?)?;
    fs::rename(&tmp, ClusterFile::path(dir))?;
    Ok(())
}

/// Waits until the cluster has an active and `members` members, all caught up.
pub async fn wait_ready(
    dir: &Path,
    addrs: &[String],
    members: usize,
    timeout: Duration,
) -> Result<u64> {
    let mut config = client_config(dir, addrs)?;
    config.failover_deadline = Duration::from_secs(2);
    config.rpc_timeout = Duration::from_secs(2);
    let client = Client::new(config)?;
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < timeout {
        match client.cluster_status().await {
            Ok(s) if s.members.len() >= members && s.members.iter().all(|m| m.lag == 0) => {
                return Ok(s.leader.get());
            }
            Ok(s) => {
                last = format!(
                    "{} of {members} members caught up",
                    s.members.iter().filter(|m| m.lag == 0).count()
                )
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("cluster did not become ready within {timeout:?}: {last}")
}

/// `local up`.
pub async fn up(opts: &UpOptions) -> Result<ClusterFile> {
    if opts.nameservices == 0 {
        return up_nameservice(opts).await;
    }
    up_federated(opts).await
}

/// `local up --nameservices N`: the nameservices one after another, each in `DIR/nsK/`,
/// then the blockservers in `DIR/`, keeping a pool for each. `DIR/cluster.json` lists the
/// blockservers and the nameservices' directories.
async fn up_federated(opts: &UpOptions) -> Result<ClusterFile> {
    if opts.tls || opts.proxied || opts.seed.is_some() {
        bail!("--nameservices does not combine with --tls, --proxied or --seed yet");
    }
    if running(&opts.dir) {
        bail!(
            "a cluster is already running in {} (metactl local down --dir {0})",
            opts.dir.display()
        );
    }
    fs::create_dir_all(&opts.dir).with_context(|| format!("creating {}", opts.dir.display()))?;
    sockets::release(&opts.dir)?;
    // Recorded absolute: `down` may run from another directory.
    let base = absolute(&opts.dir);
    let mut top = ClusterFile::default();
    let mut pools = Vec::new();
    for k in 1..=opts.nameservices {
        let name = NameserviceId::parse(&format!("ns{k}"))?;
        let dir = base.join(name.as_str());
        // Listed before it starts: `down` takes down whatever of it came up.
        top.nameservices.push(NameserviceEntry {
            name: name.to_string(),
            dir: dir.display().to_string(),
        });
        write_cluster_file(&opts.dir, &top)?;
        let sub = UpOptions {
            dir: dir.clone(),
            blockservers: 0,
            nameservices: 0,
            nameservice: Some(name.clone()),
            ..opts.clone()
        };
        match up_nameservice(&sub).await {
            Ok(cluster) => pools.push(PoolTarget {
                name: Some(name),
                dir,
                metas: cluster.meta_addrs(),
            }),
            Err(e) => {
                let _ = down(&opts.dir).await;
                return Err(e);
            }
        }
    }
    if opts.blockservers > 0
        && let Err(e) = start_blockservers(opts, &mut top, &pools).await
    {
        let _ = down(&opts.dir).await;
        return Err(e.context(format!(
            "see the logs in {}/block-*/blockserver.log",
            opts.dir.display()
        )));
    }
    if let Err(e) = start_routers(opts, &mut top, &pools).await {
        let _ = down(&opts.dir).await;
        return Err(e.context(format!(
            "see the logs in {}/router-*/router.log",
            opts.dir.display()
        )));
    }
    Ok(top)
}

/// The nameservice that keeps a local federation's mount table.
const MOUNT_TABLE_KEEPER: &str = "ns1";

/// The federation a `local up --nameservices N` cluster in `dir` runs: its first router's
/// configuration, which names every nameservice, its members and the table's keeper.
pub fn federation_file(dir: &Path) -> PathBuf {
    router_config_path(dir, 1)
}

fn router_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("router-{id}"))
}

fn router_config_path(dir: &Path, id: u64) -> PathBuf {
    router_dir(dir, id).join("router.toml")
}

/// Starts `opts.routers` routers over `pools`' nameservices, recording each in
/// `cluster.json` as it starts; returns once each answers.
async fn start_routers(
    opts: &UpOptions,
    cluster: &mut ClusterFile,
    pools: &[PoolTarget],
) -> Result<()> {
    for id in 1..=u64::from(opts.routers) {
        let held = sockets::bind_fresh(&opts.dir, 2)?;
        let addr = format!("127.0.0.1:{}", sockets::port(&held[0])?);
        let metrics = format!("127.0.0.1:{}", sockets::port(&held[1])?);
        let rd = router_dir(&opts.dir, id);
        fs::create_dir_all(&rd).with_context(|| format!("creating {}", rd.display()))?;
        fs::write(
            router_config_path(&opts.dir, id),
            router_toml(opts, &addr, &metrics, pools)?,
        )?;
        let pid = spawn_server(
            None,
            "serve-router",
            &router_config_path(&opts.dir, id),
            &rd.join("router.log"),
            held,
        )?;
        cluster.routers.push(RouterEntry {
            id,
            addr: addr.clone(),
            pid,
            metrics_addr: Some(metrics),
        });
        write_cluster_file(&opts.dir, cluster)?;
    }
    for r in &cluster.routers {
        wait_router(&opts.dir, &r.addr, Duration::from_secs(30)).await?;
    }
    Ok(())
}

/// A router's configuration: every nameservice with its members, `ns1` keeping the table.
fn router_toml(
    opts: &UpOptions,
    addr: &str,
    metrics: &str,
    pools: &[PoolTarget],
) -> Result<String> {
    let mut out = format!(
        "listen-addr = {addr:?}\nmetrics-addr = {metrics:?}\nmount-table = {MOUNT_TABLE_KEEPER:?}\n"
    );
    if opts.debug_router_wrong_state_id {
        out.push_str("debug-wrong-state-id = true\n");
    }
    for pool in pools {
        let Some(name) = &pool.name else {
            bail!("a router forwards to named nameservices only");
        };
        out.push_str(&format!(
            "\n[[nameservices]]\nname = {:?}\nmetaservers = {:?}\n",
            name.as_str(),
            pool.metas
        ));
    }
    Ok(out)
}

/// Waits until the router at `addr` answers a `stat /` (it read the mount table).
async fn wait_router(dir: &Path, addr: &str, timeout: Duration) -> Result<()> {
    let mut config = client_config(dir, &[addr.to_owned()])?;
    config.failover_deadline = Duration::from_secs(1);
    let client = Client::new(config)?;
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        match client.stat("/").await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("router {addr} did not answer within {timeout:?}: {last}")
}

/// Whether any server the cluster file in `dir` lists still runs: its metaservers, its
/// blockservers, and those of the nameservices it lists.
fn running(dir: &Path) -> bool {
    let Ok(existing) = ClusterFile::read(dir) else {
        return false;
    };
    existing
        .meta
        .iter()
        .any(|m| runs(m.pid, &config_path(dir, m.id)))
        || existing
            .block
            .iter()
            .any(|b| runs(b.pid, &block_config_path(dir, b.id)))
        || existing
            .routers
            .iter()
            .any(|r| runs(r.pid, &router_config_path(dir, r.id)))
        || existing
            .nameservices
            .iter()
            .any(|ns| running(Path::new(&ns.dir)))
}

/// One nameservice's metaservers (and, unfederated, the blockservers).
async fn up_nameservice(opts: &UpOptions) -> Result<ClusterFile> {
    if opts.voters == 0 {
        bail!("--voters must be at least 1");
    }
    if running(&opts.dir) {
        bail!(
            "a cluster is already running in {} (metactl local down --dir {0})",
            opts.dir.display()
        );
    }
    fs::create_dir_all(&opts.dir).with_context(|| format!("creating {}", opts.dir.display()))?;
    // Ports of an earlier cluster here that was never taken down: this one draws its own.
    sockets::release(&opts.dir)?;
    let tls = set_up_tls(opts)?;
    if opts.proxied {
        let _ = fs::remove_file(opts.dir.join("links.applied"));
        LinkPlan::default().write(&opts.dir)?;
        let pid = spawn_link_proxy(&opts.dir)?;
        LinkPlan::update(&opts.dir, |plan| {
            plan.proxy_pid = Some(pid);
            Ok(())
        })
        .await?;
    } else {
        let _ = fs::remove_file(LinkPlan::path(&opts.dir));
    }
    let n = opts.voters as usize;
    let mut addrs = Vec::with_capacity(n);
    for i in 0..n {
        addrs.push(node_addrs(&opts.dir, i as u64 + 1).await?);
    }
    let members: Vec<Peer> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Peer {
            id: MemberId(i as u64 + 1),
            addr: a.advertise.clone(),
        })
        .collect();
    let mut cluster = ClusterFile {
        tls,
        ..ClusterFile::default()
    };
    for (peer, a) in members.iter().zip(addrs) {
        let config = write_config(opts, peer.id.get(), &a, &members)?;
        if let Some(seed) = &opts.seed {
            plant_seed(seed, &config.data_dir)?;
        }
        let pid = spawn_meta(&opts.dir, peer.id.get(), a.held, None)?;
        cluster.meta.push(entry(&config, pid, "voter"));
    }
    write_cluster_file(&opts.dir, &cluster)?;
    let fail = |e: anyhow::Error, dir: &Path| {
        e.context(format!(
            "see the logs in {}/meta-*/metaserver.log",
            dir.display()
        ))
    };
    if let Err(e) = wait_ready(&opts.dir, &cluster.meta_addrs(), n, Duration::from_secs(60)).await {
        let _ = down(&opts.dir).await;
        return Err(fail(e, &opts.dir));
    }
    // The log of a seeded cluster does not hold the seeded tree: anyone who joins later must
    // catch up from a snapshot, so one is taken now and the log behind it purged.
    if opts.seed.is_some()
        && let Err(e) = checkpoint(&opts.dir, &cluster.meta_addrs()).await
    {
        let _ = down(&opts.dir).await;
        return Err(fail(e, &opts.dir));
    }
    for i in 0..opts.observers {
        let id = (n as u64) + u64::from(i) + 1;
        match start_observer(opts, id, &members, &cluster.meta_addrs()).await {
            Ok(e) => {
                cluster.meta.push(e);
                write_cluster_file(&opts.dir, &cluster)?;
            }
            Err(e) => {
                let _ = down(&opts.dir).await;
                return Err(fail(e, &opts.dir));
            }
        }
    }
    let total = cluster.meta.len();
    if let Err(e) = wait_ready(
        &opts.dir,
        &cluster.meta_addrs(),
        total,
        Duration::from_secs(60),
    )
    .await
    {
        let _ = down(&opts.dir).await;
        return Err(fail(e, &opts.dir));
    }
    let pools = [PoolTarget {
        name: opts.nameservice.clone(),
        dir: opts.dir.clone(),
        metas: cluster.meta_addrs(),
    }];
    if opts.blockservers > 0
        && let Err(e) = start_blockservers(opts, &mut cluster, &pools).await
    {
        let _ = down(&opts.dir).await;
        return Err(e.context(format!(
            "see the logs in {}/block-*/blockserver.log",
            opts.dir.display()
        )));
    }
    Ok(cluster)
}

/// With `--tls`, the cluster's CA (a new one, unless `DIR` keeps one from an earlier `up`)
/// and the tools' certificate: the superuser's, whose name is the user the servers run as.
/// Without, a CA left in `DIR` is removed, so that the servers' configs say plain.
fn set_up_tls(opts: &UpOptions) -> Result<Option<raftfs_client::discovery::TlsEntry>> {
    if !opts.tls {
        let dir = certs::tls_dir(&opts.dir);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        return Ok(None);
    }
    let ca = match certs::LocalCa::load(&opts.dir)? {
        Some(ca) => ca,
        None => certs::LocalCa::create(&opts.dir)?,
    };
    ca.set_proxy_users(&opts.proxy_users)?;
    let superuser = ca.user(&raftfs_runtime::process_user(), &[])?;
    Ok(Some(certs::entry(&superuser)))
}

/// A checkpoint of the cluster at `metas` (`metactl cluster checkpoint`).
async fn checkpoint(dir: &Path, metas: &[String]) -> Result<()> {
    let client = Client::new(client_config(dir, metas)?)?;
    let (snapshot, purged) = client.checkpoint().await?;
    tracing::debug!(snapshot, purged, "seeded cluster checkpointed");
    Ok(())
}

/// Stops one process: SIGTERM (a planned stop: a metaserver hands its leadership over),
/// then SIGKILL if it lingers.
pub async fn stop_pid(pid: u32, arg: &Path, grace: Duration) -> Result<()> {
    stop_pid_with(pid, arg, grace, Signal::SIGTERM).await
}

/// [`stop_pid`] with `first` instead of SIGTERM (SIGINT: a stop without hand-off).
async fn stop_pid_with(pid: u32, arg: &Path, grace: Duration, first: Signal) -> Result<()> {
    if !runs(pid, arg) {
        return Ok(());
    }
    signal(pid, first)?;
    let start = Instant::now();
    while runs(pid, arg) && start.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if runs(pid, arg) {
        signal(pid, Signal::SIGKILL)?;
    }
    Ok(())
}

/// `local down`: stops every process of the cluster in `dir` and releases its ports
/// ([`sockets::release`]).
pub async fn down(dir: &Path) -> Result<()> {
    let cluster = ClusterFile::read(dir)?;
    for r in &cluster.routers {
        stop_pid(
            r.pid,
            &router_config_path(dir, r.id),
            Duration::from_secs(5),
        )
        .await?;
    }
    // Blockservers first: they would otherwise spend their last seconds retrying heartbeats.
    for b in &cluster.block {
        stop_pid(b.pid, &block_config_path(dir, b.id), Duration::from_secs(5)).await?;
    }
    // The whole cluster stops: no member hands its leadership to one about to stop too.
    for m in &cluster.meta {
        let config = config_path(dir, m.id);
        stop_pid_with(m.pid, &config, Duration::from_secs(5), Signal::SIGINT).await?;
    }
    if let Some(pid) = LinkPlan::read(dir)?.and_then(|p| p.proxy_pid) {
        stop_pid(pid, dir, Duration::from_secs(5)).await?;
    }
    for ns in &cluster.nameservices {
        // A nameservice listed before it started may have no cluster file yet (its `up`
        // failed first); one recorded relative is taken from `dir`.
        let ns_dir = dir.join(&ns.dir);
        if ClusterFile::path(&ns_dir).exists() {
            Box::pin(down(&ns_dir)).await?;
        } else {
            tracing::debug!(dir = %ns_dir.display(), "nameservice never started");
        }
    }
    // Only now that nothing listens on them: other clusters may draw its ports again.
    sockets::release(dir)
}

/// `local partition`: cuts exactly these links (both ways), healing every other one; returns
/// once the proxy has put the change in force.
pub async fn partition(
    dir: &Path,
    cut: std::collections::BTreeSet<(String, String)>,
) -> Result<()> {
    if LinkPlan::read(dir)?.is_none() {
        bail!(
            "the cluster in {} runs without the link proxy (start it with local up --proxied)",
            dir.display()
        );
    }
    LinkPlan::update(dir, |plan| {
        let known: std::collections::BTreeSet<u64> = plan.routes.iter().map(|r| r.id).collect();
        // Hosts and `client` need no check: any process may connect from anywhere.
        for (a, _) in &cut {
            if let link_proxy::End::Member(id) = link_proxy::End::parse(a)?
                && !known.contains(&id)
            {
                bail!("no member {id} behind the proxy in {}", dir.display());
            }
        }
        plan.cut = cut;
        Ok(())
    })
    .await
}

/// Starts the link proxy of the cluster in `dir`, detached like the metaservers.
fn spawn_link_proxy(dir: &Path) -> Result<u32> {
    let exe = std::env::current_exe().context("locating metactl")?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("link-proxy.log"))?;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg("serve-link-proxy")
            .arg("--dir")
            .arg(absolute(dir))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the link proxy")?
    };
    Ok(child.id())
}

/// One server of a local cluster, for `local start|stop` and `local start-block|stop-block`.
#[derive(Debug, Clone, Copy)]
pub enum Server {
    Meta(u64),
    Block(u64),
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::Meta(id) => write!(f, "metaserver {id}"),
            Server::Block(id) => write!(f, "blockserver {id}"),
        }
    }
}

impl Server {
    /// Its config file.
    fn config(self, dir: &Path) -> PathBuf {
        match self {
            Server::Meta(id) => config_path(dir, id),
            Server::Block(id) => block_config_path(dir, id),
        }
    }

    /// Its pid in `cluster.json`.
    fn pid_mut(self, cluster: &mut ClusterFile) -> Option<&mut u32> {
        match self {
            Server::Meta(id) => cluster
                .meta
                .iter_mut()
                .find(|m| m.id == id)
                .map(|m| &mut m.pid),
            Server::Block(id) => cluster
                .block
                .iter_mut()
                .find(|b| b.id == id)
                .map(|b| &mut b.pid),
        }
    }

    /// The addresses it listens on (its ports in its config, re-read), in hand-down order.
    fn addrs(self, config: &Path) -> Result<Vec<SocketAddr>> {
        Ok(match self {
            Server::Meta(_) => {
                let c = Config::from_file(config)?;
                sockets::order(&raftfs_metaserver::server::rpc_addrs(&c), c.metrics_addr)
            }
            Server::Block(_) => {
                let c = raftfs_blockserver::Config::from_file(config)?;
                sockets::order(&raftfs_blockserver::server::rpc_addrs(&c), c.metrics_addr)
            }
        })
    }

    fn spawn(self, dir: &Path, held: Vec<TcpListener>, exe: Option<&Path>) -> Result<u32> {
        match self {
            Server::Meta(id) => spawn_meta(dir, id, held, exe),
            Server::Block(id) => spawn_block(dir, id, held, exe),
        }
    }
}

/// `local start --id N` / `start-block --id N`: starts a stopped server again with its
/// config (re-read: ports added to it are bound too) and its data, from `exe` (`--bin`) or
/// this binary.
pub async fn start_server(dir: &Path, server: Server, exe: Option<&Path>) -> Result<u32> {
    let mut cluster = ClusterFile::read(dir)?;
    let path = server.config(dir);
    let pid = server
        .pid_mut(&mut cluster)
        .ok_or_else(|| anyhow!("no {server} in {}", dir.display()))?;
    if runs(*pid, &path) {
        bail!("{server} is already running (pid {pid})");
    }
    let held = sockets::bind_again(dir, &server.addrs(&path)?)
        .await
        .with_context(|| format!("starting {server} again"))?;
    *pid = server.spawn(dir, held, exe)?;
    let started = *pid;
    write_cluster_file(dir, &cluster)?;
    Ok(started)
}

/// `local stop --id N` / `stop-block --id N`: stops one server (SIGKILL with `kill`, as a
/// crash would).
pub async fn stop_server(dir: &Path, server: Server, hard: bool) -> Result<()> {
    let mut cluster = ClusterFile::read(dir)?;
    let pid = *server
        .pid_mut(&mut cluster)
        .ok_or_else(|| anyhow!("no {server} in {}", dir.display()))?;
    let config = server.config(dir);
    if hard {
        if runs(pid, &config) {
            signal(pid, Signal::SIGKILL)?;
        }
        Ok(())
    } else {
        stop_pid(pid, &config, Duration::from_secs(5)).await
    }
}

/// `local restart --id N`: a planned restart of metaserver N (SIGTERM: an active hands its
/// leadership over first), started again with its config and data, and waited for until it
/// is a member again with nothing left to apply (`lag` 0) under an active.
pub async fn restart_meta(
    dir: &Path,
    id: u64,
    timeout: Duration,
    exe: Option<&Path>,
) -> Result<()> {
    stop_server(dir, Server::Meta(id), false).await?;
    start_server(dir, Server::Meta(id), exe).await?;
    wait_member(dir, id, timeout).await
}

/// Waits until member `id` of the cluster in `dir` is caught up under an active: the
/// active counts it caught up, and it answers itself, having applied what the active had
/// committed (the active's count alone still says 0 behind for a member that died at start
/// if nothing was written since, as a binary refusing the cluster's format level does).
async fn wait_member(dir: &Path, id: u64, timeout: Duration) -> Result<()> {
    let client = pool_client(dir)?;
    let addr = ClusterFile::read(dir)?
        .meta
        .iter()
        .find(|m| m.id == id)
        .map(|m| m.addr.clone())
        .ok_or_else(|| anyhow::anyhow!("node {id} is not in {}", dir.display()))?;
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < timeout {
        match client.cluster_status().await {
            Ok(s) => match s.members.iter().find(|m| m.id.get() == id) {
                Some(m) if m.lag == 0 && s.leader.get() != 0 => {
                    match client.node_status(&addr).await {
                        Ok(n) if n.applied_index >= s.committed_index => return Ok(()),
                        Ok(n) => {
                            last = format!(
                                "node {id} applied {} of {}",
                                n.applied_index, s.committed_index
                            );
                        }
                        Err(e) => last = format!("node {id} does not answer: {e}"),
                    }
                }
                Some(m) => last = format!("node {id} is {} entries behind", m.lag),
                None => last = format!("node {id} is not a member"),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("node {id} did not catch up within {timeout:?}: {last}")
}

/// `local restart-block --id N`: a planned restart of blockserver N, waited for until every
/// nameservice counts it live again with at least the blocks it reported before.
pub async fn restart_block(
    dir: &Path,
    id: u64,
    timeout: Duration,
    exe: Option<&Path>,
) -> Result<()> {
    let pools = pool_dirs(dir)?;
    let mut clients = Vec::with_capacity(pools.len());
    for pool in &pools {
        clients.push((pool, pool_client(pool)?));
    }
    stop_server(dir, Server::Block(id), false).await?;
    // A local cluster's servers share this machine's clock: a registration stamped at or
    // after this instant is the new process's, whichever member is active by then (each
    // member stamps the registrations it takes).
    let stopped_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    start_server(dir, Server::Block(id), exe).await?;
    let start = Instant::now();
    // Back once registered again and its full report is in: its block count then is what
    // it holds now, which a load that overwrites files may have made smaller than before.
    for (pool, client) in clients {
        loop {
            let last = match block_server(&client, id).await {
                Ok(Some(b)) if b.live && b.registered_ms >= stopped_ms && b.fully_reported => {
                    break;
                }
                Ok(Some(b)) if b.registered_ms < stopped_ms => {
                    "not registered again yet".to_owned()
                }
                Ok(Some(b)) => format!(
                    "live {}, {} blocks reported, the full report {}",
                    b.live,
                    b.blocks,
                    if b.fully_reported { "in" } else { "not in yet" }
                ),
                Ok(None) => "not registered".to_owned(),
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= timeout {
                bail!(
                    "blockserver {id} not back in {} within {timeout:?}: {last}",
                    pool.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// The cluster directories whose metaservers count blockservers: `dir` itself, or each
/// nameservice's of a federation.
fn pool_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let cluster = ClusterFile::read(dir)?;
    if cluster.nameservices.is_empty() {
        return Ok(vec![dir.to_owned()]);
    }
    Ok(cluster
        .nameservices
        .iter()
        .map(|n| dir.join(&n.dir))
        .collect())
}

/// A client of the cluster in `dir` for polling: short deadlines, so that a poll that
/// fails is retried soon.
fn pool_client(dir: &Path) -> Result<Client> {
    let cluster = ClusterFile::read(dir)?;
    let mut config = client_config(dir, &cluster.meta_addrs())?;
    config.failover_deadline = Duration::from_secs(2);
    config.rpc_timeout = Duration::from_secs(2);
    Ok(Client::new(config)?)
}

/// Whether blockserver `id` is live to `client`'s cluster, and its blocks there.
async fn block_server(client: &Client, id: u64) -> Result<Option<BlockServerInfo>> {
    let (_, servers) = client.block_servers().await?;
    Ok(servers.into_iter().find(|b| b.id.0 == id))
}

/// `local rolling-restart`: every metaserver (followers first, the active last: one
/// hand-off), then every blockserver, one at a time, each waited for until healthy; each
/// started from `exe` (`--bin`: a rolling upgrade onto another binary) or this one.
pub async fn rolling_restart(dir: &Path, timeout: Duration, exe: Option<&Path>) -> Result<()> {
    let cluster = ClusterFile::read(dir)?;
    for pool in pool_dirs(dir)? {
        let ns = ClusterFile::read(&pool)?;
        let mut config = client_config(&pool, &ns.meta_addrs())?;
        config.failover_deadline = Duration::from_secs(10);
        let active = Client::new(config)?.cluster_status().await?.leader.get();
        let mut order: Vec<u64> = ns.meta.iter().map(|m| m.id).collect();
        order.sort_by_key(|id| *id == active);
        for id in order {
            eprintln!("restarting metaserver {id} of {}", pool.display());
            restart_meta(&pool, id, timeout, exe).await?;
        }
    }
    for b in &cluster.block {
        eprintln!("restarting blockserver {}", b.id);
        restart_block(dir, b.id, timeout, exe).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh` run in `cwd` with `name` as its `$0` (the `; exit` keeps it from exec'ing `sleep`,
    /// so its command line stays), returned once [`runs`] takes it for the server of `file`.
    fn shell_named(name: &Path, cwd: &Path, file: &Path) -> std::process::Child {
        let child = Command::new("sh")
            .args(["-c", "sleep 30; exit 0"])
            .arg(name)
            .current_dir(cwd)
            .spawn()
            .expect("sh runs");
        let start = Instant::now();
        while !runs(child.id(), file) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sh named {} in {} was never taken for the server of {}",
                name.display(),
                cwd.display(),
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// A pid counts as the server only while its command line names the server's file, by
    /// any path (absolute, or relative to the process's own directory): a stranger under a
    /// reused pid (here, another process's) is never taken for it.
    #[test]
    fn a_pid_is_ours_only_while_it_runs_with_our_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ours, other) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
        fs::write(&ours, "").expect("write");
        fs::write(&other, "").expect("write");
        for name in [ours.as_path(), Path::new("a.toml")] {
            let mut child = shell_named(name, dir.path(), &ours);
            let pid = child.id();
            assert!(runs(pid, &dir.path().join(".").join("a.toml")));
            assert!(!runs(pid, &other), "another server's file");
            child.kill().expect("kill");
            child.wait().expect("reap");
            assert!(!runs(pid, &ours), "gone");
        }
    }

    #[test]
    fn blockservers_take_turns_over_the_racks() {
        let racks: Vec<String> = (1..=7).map(|id| rack_of(id, 3)).collect();
        assert_eq!(racks, ["r1", "r2", "r3", "r1", "r2", "r3", "r1"]);
        assert_eq!(rack_of(5, 1), "r1");
    }
}
