//! `loadgen blockservers`: `--servers` synthetic blockservers registered with a real cluster
//! through the real `BlockServers` gRPC service, so that what a metaserver does per
//! registered server (its operator pages, its heartbeat handling) can be measured at a
//! fleet's size on one machine (issue 24: no page over 200 ms with 1,000 blockservers).
//!
//! Each synthetic server behaves towards every metaserver named as a real one does
//! (DESIGN §6, `blockserver/src/heartbeat`): it registers, sends one full block report, then
//! a heartbeat every `--heartbeat-ms` with its storage figures, and starts over when the
//! metaserver no longer knows it. It stores nothing. Its address is a loopback port this
//! process holds bound without listening, so a client sent there fails at once; the
//! blocks it reports are of groups the namespace never allocated (IDs far above any it
//! hands out), which the active may order deleted. Deletions, reconstruction tasks and
//! cancellations are counted and ignored: their tasks time out on the active.
//!
//! One task per server and metaserver, as the real blockserver has one per metaserver, but
//! one HTTP/2 connection per metaserver shared by every server: 1,000 servers cost a few
//! connections and tasks that sleep between heartbeats, not thousands of connections.
//!
//! Identity: on a simple-mode port the real blockserver claims no name (no `x-raftfs-user`);
//! nodes cannot prove who they are there, and the metaserver accepts node calls from any
//! claimed caller (`Authorizer::claimed_nodes`). These servers do the same. A TLS cluster
//! would need a node certificate per server, which this load does not make.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use raftfs_core::policy::MAX_BLOCK_SIZE;
use raftfs_proto as pb;
use raftfs_proto::block_servers_client::BlockServersClient;
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tonic::transport::{Channel, Endpoint};

use crate::report::{self, Report};

/// How long a connection attempt to a metaserver may take (the real blockserver's).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one RPC may take (the real blockserver's).
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Registration retries start at this interval and double up to [`MAX_BACKOFF`] (the real
/// blockserver's): a metaserver that is not up yet is not flooded by a thousand servers.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Blocks per full report RPC (the real blockserver's `report-split-blocks`).
const REPORT_PART_BLOCKS: usize = 10_000;

/// Group IDs a metaserver accepts in a report stop below this (its registry packs a copy's
/// group and position into 64 bits: `registry::block_set::GROUP_ID_LIMIT`).
const GROUP_ID_LIMIT: u64 = 1 << 59;

/// The lowest synthetic group ID: far above any the namespace allocates (from 2^20,
/// counting up), so that no synthetic block is ever mistaken for a real file's.
const SYNTHETIC_GROUPS: u64 = 1 << 58;

/// Synthetic group IDs per server: `--blocks-per-server` stays below it.
const GROUPS_PER_SERVER: u64 = 1 << 20;

/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One fleet of synthetic blockservers.
#[derive(Debug, Clone)]
pub struct FleetLoad {
    /// Every metaserver the servers register with (every member, as a real blockserver).
    pub metas: Vec<String>,
    pub servers: u64,
    pub racks: u32,
    pub blocks_per_server: u64,
    /// Bytes of each synthetic block (what `used` adds up to).
    pub block_size: u64,
    pub capacity: u64,
    pub volumes: u32,
    /// The first server's node ID; the others follow.
    pub first_id: u64,
    /// The first server's port on 127.0.0.1; the others follow.
    pub first_port: u16,
    /// The nameservice whose pool the servers join (empty: the unnamed one).
    pub nameservice: String,
    pub heartbeat: Duration,
    /// How long to run (0: until SIGINT or SIGTERM).
    pub seconds: u64,
}

/// One synthetic server.
#[derive(Debug, Clone)]
struct Synthetic {
    id: u64,
    addr: String,
    rack: String,
    /// Its rack's place in r1..rR, from 0.
    rack_no: u64,
    /// When it was made: its synthetic rebuild reads grow from then.
    born: Instant,
}

/// What the servers' tasks count on one metaserver, read by the progress line and the
/// report.
#[derive(Debug)]
struct Stats {
    /// Servers registered and fully reported now.
    sessions: AtomicU64,
    registrations: AtomicU64,
    heartbeats: AtomicU64,
    failures: AtomicU64,
    /// Times a metaserver said it did not know a server (it restarted).
    reregisters: AtomicU64,
    deletes: AtomicU64,
    tasks: AtomicU64,
    cancels: AtomicU64,
    /// Successful heartbeats' latency, µs.
    latency: Mutex<Histogram<u64>>,
    /// Failed calls by call and gRPC code (`heartbeat Unavailable`).
    errors_by_kind: Mutex<BTreeMap<String, u64>>,
    /// The latest failure since the progress line last showed one.
    last_error: Mutex<Option<String>>,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn new() -> Self {
        Self {
            sessions: AtomicU64::new(0),
            registrations: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            reregisters: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            tasks: AtomicU64::new(0),
            cancels: AtomicU64::new(0),
            latency: Mutex::new(report::new_histogram()),
            errors_by_kind: Mutex::new(BTreeMap::new()),
            last_error: Mutex::new(None),
            first_error: Mutex::new(None),
        }
    }

    /// Counts a failed call (a heartbeat's also among `failures`).
    fn failed(&self, what: &str, status: &tonic::Status) {
        let kind = format!("{what} {:?}", status.code());
        let message = format!("{what}: {}", status.message());
        *lock(&self.errors_by_kind).entry(kind).or_default() += 1;
        lock(&self.first_error).get_or_insert_with(|| message.clone());
        *lock(&self.last_error) = Some(message);
    }

    fn heartbeat_took(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = lock(&self.latency).record(us);
    }
}

/// A lock whose holder panicked still holds counts worth reading.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One metaserver: its address, the channel every server shares, and its counts.
#[derive(Debug)]
struct Link {
    addr: String,
    client: BlockServersClient<Channel>,
    stats: Stats,
}

/// The outcome of a call, as the real blockserver sorts them.
#[derive(Debug)]
enum Sent {
    Done,
    /// The metaserver does not know this server: register again.
    Reregister,
    /// Anything else (down, refused, timed out): try again later.
    Failed,
}

/// Whether `status` says the metaserver does not know the node (it restarted).
fn unknown_node(status: &tonic::Status) -> bool {
    pb::detail_of(status).is_some_and(|d| d.kind == pb::ErrorKind::UnknownNode as i32)
}

/// Refuses settings that cannot make a fleet (before any RPC).
fn validate(load: &FleetLoad) -> Result<()> {
    if load.metas.is_empty() {
        bail!("no metaserver given: use --meta or --cluster");
    }
    if load.servers == 0 || load.racks == 0 {
        bail!("--servers and --racks must be at least 1");
    }
    if load.first_id == 0 {
        bail!("--first-id must be at least 1 (node ID 0 is reserved)");
    }
    if load.blocks_per_server >= GROUPS_PER_SERVER {
        bail!("--blocks-per-server must be below {GROUPS_PER_SERVER}");
    }
    // A metaserver refuses a report of a longer block (its registry's copies are 16 bytes).
    if load.block_size > MAX_BLOCK_SIZE {
        bail!("--block-size must be at most {MAX_BLOCK_SIZE} bytes");
    }
    // Every server's groups fit between SYNTHETIC_GROUPS and GROUP_ID_LIMIT.
    let last = load.first_id.checked_add(load.servers);
    if last.is_none_or(|l| l > (GROUP_ID_LIMIT - SYNTHETIC_GROUPS) / GROUPS_PER_SERVER) {
        bail!("--first-id + --servers too large for distinct synthetic group IDs");
    }
    if load.first_port == 0 || u64::from(load.first_port) + load.servers > 65_536 {
        bail!("--first-port must be at least 1, and --first-port + --servers at most 65536");
    }
    if load.heartbeat.is_zero() {
        bail!("--heartbeat-ms must be at least 1");
    }
    Ok(())
}

/// Server `i` of the fleet, at `port`: consecutive IDs, racks r1..rR in turn (as `metactl
/// local up` spreads real ones).
fn server(load: &FleetLoad, i: u64, port: u16) -> Synthetic {
    let rack_no = i % u64::from(load.racks);
    Synthetic {
        id: load.first_id + i,
        addr: format!("127.0.0.1:{port}"),
        rack: format!("r{}", rack_no + 1),
        rack_no,
        born: Instant::now(),
    }
}

/// What `server` reports having read for rebuilds (every heartbeat carries it): 1 MB a
/// second since it was made from each of its own rack and the next two, so that the
/// reconstruction page sums three source racks per server (3 x RACKS rack pairs).
fn synthetic_reads(load: &FleetLoad, server: &Synthetic) -> Vec<pb::RackBytes> {
    let bytes = server.born.elapsed().as_secs() * 1_000_000;
    let racks: std::collections::BTreeSet<u64> = (0..3)
        .map(|o| (server.rack_no + o) % u64::from(load.racks))
        .collect();
    racks
        .into_iter()
        .map(|r| pb::RackBytes {
            rack: format!("r{}", r + 1),
            bytes,
        })
        .collect()
}

/// Binds (without listening) one loopback port per server, from `--first-port` up, skipping
/// ports in use, and holds them for the run: a connection there is refused at once (a client
/// placed on a synthetic server fails fast instead of hanging), and nothing else can listen
/// there meanwhile, as a local cluster drawing its ports from the same range would (without
/// `SO_REUSEADDR` on these sockets, its bind fails and it draws another).
fn reserve_ports(load: &FleetLoad) -> Result<Vec<(TcpSocket, u16)>> {
    let mut out = Vec::new();
    let mut ports = u32::from(load.first_port)..=u32::from(u16::MAX);
    while (out.len() as u64) < load.servers {
        let Some(port) = ports.next().and_then(|p| u16::try_from(p).ok()) else {
            bail!(
                "only {} free ports from --first-port {} up: choose a lower one",
                out.len(),
                load.first_port
            );
        };
        let socket = TcpSocket::new_v4().context("a socket for a synthetic address")?;
        if socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .is_ok()
        {
            out.push((socket, port));
        }
    }
    Ok(out)
}

/// The channel to one metaserver, connected on first use and reconnected when lost.
fn link(addr: &str) -> Result<Link> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("metaserver address {addr:?}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    Ok(Link {
        addr: addr.to_owned(),
        client: BlockServersClient::new(endpoint.connect_lazy()),
        stats: Stats::new(),
    })
}

/// Every server's storage: `blocks_per_server` blocks of `block_size` on `volumes` volumes.
fn storage(load: &FleetLoad) -> pb::StorageReport {
    let used = load.blocks_per_server.saturating_mul(load.block_size);
    pb::StorageReport {
        capacity: load.capacity,
        used,
        available: load.capacity.saturating_sub(used),
        failed_volumes: 0,
        xmits_in_progress: 0,
        volumes: load.volumes,
        pool_used: used,
    }
}

/// A report ID not used before by this process nor, likely, by an earlier run (a metaserver
/// may still hold a partial report of it): microseconds since the epoch, counting up.
fn next_report_id() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    base.wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The full report of `server`, in parts: its synthetic blocks, internal block 0 of one
/// never-allocated group each, at generation 1.
fn full_report(load: &FleetLoad, server: &Synthetic) -> Vec<pb::BlockReportRequest> {
    let first = SYNTHETIC_GROUPS + server.id * GROUPS_PER_SERVER;
    let blocks: Vec<pb::ReportedBlock> = (0..load.blocks_per_server)
        .map(|j| pb::ReportedBlock {
            group: first + j,
            index: 0,
            length: load.block_size,
            generation: 1,
        })
        .collect();
    let mut chunks: Vec<&[pb::ReportedBlock]> = blocks.chunks(REPORT_PART_BLOCKS).collect();
    if chunks.is_empty() {
        // An empty report still tells the metaserver the server holds nothing.
        chunks.push(&[]);
    }
    let (report_id, parts) = (
        next_report_id(),
        u32::try_from(chunks.len()).unwrap_or(u32::MAX),
    );
    chunks
        .into_iter()
        .zip(0u32..)
        .map(|(chunk, part)| pb::BlockReportRequest {
            node_id: server.id,
            full: true,
            report_id,
            part,
            parts,
            blocks: chunk.to_vec(),
            removed: Vec::new(),
        })
        .collect()
}

/// Registers `server`, retrying with backoff until the metaserver accepts it.
async fn register(load: &FleetLoad, link: &Link, server: &Synthetic) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let request = pb::RegisterRequest {
            node_id: server.id,
            addr: server.addr.clone(),
            rack: server.rack.clone(),
            storage: Some(storage(load)),
            nameservice: load.nameservice.clone(),
        };
        match link.client.clone().register(request).await {
            Ok(reply) if reply.get_ref().nameservice == load.nameservice => {
                link.stats.registrations.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // A member of another nameservice: registering there would mix pools.
            Ok(reply) => {
                let theirs = reply.into_inner().nameservice;
                let wrong = tonic::Status::failed_precondition(format!(
                    "the metaserver serves nameservice {theirs:?}, not --nameservice {:?}",
                    load.nameservice
                ));
                link.stats.failed("register", &wrong);
            }
            Err(status) => link.stats.failed("register", &status),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sends `server`'s full report, part by part.
async fn send_full_report(load: &FleetLoad, link: &Link, server: &Synthetic) -> Sent {
    for part in full_report(load, server) {
        match link.client.clone().block_report(part).await {
            Ok(reply) if reply.get_ref().reregister => return Sent::Reregister,
            Ok(_) => {}
            Err(status) if unknown_node(&status) => return Sent::Reregister,
            Err(status) => {
                link.stats.failed("full report", &status);
                return Sent::Failed;
            }
        }
    }
    Sent::Done
}

/// One heartbeat of `server`: its storage figures; the reply's orders counted, not obeyed.
async fn heartbeat(load: &FleetLoad, link: &Link, server: &Synthetic) -> Sent {
    let request = pb::HeartbeatRequest {
        node_id: server.id,
        storage: Some(storage(load)),
        finished: Vec::new(),
        reconstruction_read: synthetic_reads(load, server),
    };
    let start = Instant::now();
    let r = link.client.clone().heartbeat(request).await;
    let stats = &link.stats;
    stats.heartbeats.fetch_add(1, Ordering::Relaxed);
    match r {
        Ok(reply) => {
            stats.heartbeat_took(start.elapsed());
            let reply = reply.into_inner();
            stats
                .deletes
                .fetch_add(reply.delete.len() as u64, Ordering::Relaxed);
            stats
                .tasks
                .fetch_add(reply.tasks.len() as u64, Ordering::Relaxed);
            stats
                .cancels
                .fetch_add(reply.cancel.len() as u64, Ordering::Relaxed);
            if reply.reregister {
                Sent::Reregister
            } else {
                Sent::Done
            }
        }
        Err(status) if unknown_node(&status) => Sent::Reregister,
        Err(status) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            stats.failed("heartbeat", &status);
            Sent::Failed
        }
    }
}

/// A registered session: the full report (retried every heartbeat until it goes through),
/// and a heartbeat every period, until the metaserver no longer knows the server.
async fn session(load: &FleetLoad, link: &Link, server: &Synthetic) {
    let mut tick = tokio::time::interval(load.heartbeat);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reported = false;
    let ended = loop {
        tick.tick().await;
        if !reported {
            match send_full_report(load, link, server).await {
                Sent::Done => {
                    reported = true;
                    link.stats.sessions.fetch_add(1, Ordering::Relaxed);
                }
                Sent::Reregister => break reported,
                Sent::Failed => {}
            }
        }
        if let Sent::Reregister = heartbeat(load, link, server).await {
            break reported;
        }
    };
    link.stats.reregisters.fetch_add(1, Ordering::Relaxed);
    if ended {
        link.stats.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One server's life on one metaserver, after `delay` (the fleet's heartbeats spread over
/// the period rather than all at once): register, report, heartbeat, again when forgotten.
async fn serve(load: Arc<FleetLoad>, link: Arc<Link>, server: Synthetic, delay: Duration) {
    tokio::time::sleep(delay).await;
    loop {
        register(&load, &link, &server).await;
        session(&load, &link, &server).await;
    }
}

/// Waits for SIGINT or SIGTERM (a bench script stops its background load with `kill`).
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Totals over every metaserver at one moment: (heartbeats, failures).
fn totals(links: &[Arc<Link>]) -> (u64, u64) {
    links.iter().fold((0, 0), |(h, f), l| {
        (
            h + l.stats.heartbeats.load(Ordering::Relaxed),
            f + l.stats.failures.load(Ordering::Relaxed),
        )
    })
}

/// One progress line on stderr: sessions per metaserver, heartbeats per second and failures
/// since the last line, orders ignored so far, and the latest failure.
fn print_progress(links: &[Arc<Link>], servers: u64, elapsed: Duration, since: (u64, u64, f64)) {
    let (heartbeats, failures) = totals(links);
    let secs = (elapsed.as_secs_f64() - since.2).max(f64::EPSILON);
    let sessions: Vec<String> = links
        .iter()
        .map(|l| format!("{}/{servers}", l.stats.sessions.load(Ordering::Relaxed)))
        .collect();
    let sum = |f: fn(&Stats) -> &AtomicU64| -> u64 {
        links
            .iter()
            .map(|l| f(&l.stats).load(Ordering::Relaxed))
            .sum()
    };
    let p99_ms = links
        .iter()
        .map(|l| lock(&l.stats.latency).value_at_quantile(0.99))
        .max()
        .unwrap_or(0) as f64
        / 1000.0;
    eprintln!(
        "blockservers [{:>5.0}s] reported on each metaserver: {}; heartbeats {:.0}/s, {} failed; \
         p99 {p99_ms:.1} ms; ignored: {} deletions, {} tasks, {} cancels; {} reregistered",
        elapsed.as_secs_f64(),
        sessions.join(" "),
        (heartbeats - since.0) as f64 / secs,
        failures - since.1,
        sum(|s| &s.deletes),
        sum(|s| &s.tasks),
        sum(|s| &s.cancels),
        sum(|s| &s.reregisters),
    );
    for l in links {
        if let Some(e) = lock(&l.stats.last_error).take() {
            eprintln!("blockservers   {}: {e}", l.addr);
        }
    }
}

/// Prints progress every [`PROGRESS_EVERY`] until the run is over (its time is up, or a
/// signal came).
async fn watch(links: &[Arc<Link>], load: &FleetLoad, start: Instant) {
    let deadline = (load.seconds > 0).then(|| start + Duration::from_secs(load.seconds));
    let mut since = (0, 0, 0.0);
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    every.tick().await;
    let stop = stopped();
    tokio::pin!(stop);
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = every.tick() => {
                print_progress(links, load.servers, start.elapsed(), since);
                let (h, f) = totals(links);
                since = (h, f, start.elapsed().as_secs_f64());
            }
            () = until_deadline => break,
            () = &mut stop => break,
        }
    }
    print_progress(links, load.servers, start.elapsed(), since);
}

/// The run as a [`Report`]: heartbeats are its operations, their latency its latency.
fn summarize(links: &[Arc<Link>], load: &FleetLoad, elapsed: Duration) -> Report {
    let mut hist = report::new_histogram();
    let mut errors_by_kind = BTreeMap::new();
    let mut first_error = None;
    for l in links {
        let _ = hist.add(&*lock(&l.stats.latency));
        for (k, n) in lock(&l.stats.errors_by_kind).iter() {
            *errors_by_kind.entry(k.clone()).or_default() += n;
        }
        if first_error.is_none() {
            first_error = lock(&l.stats.first_error)
                .as_ref()
                .map(|e| format!("{}: {e}", l.addr));
        }
    }
    let (heartbeats, failures) = totals(links);
    let op = format!(
        "heartbeat ({} synthetic blockservers x {} metaservers)",
        load.servers,
        links.len()
    );
    let clients = usize::try_from(load.servers).unwrap_or(usize::MAX);
    Report {
        first_error,
        errors_by_kind,
        ..Report::timed("raftfs", &op, clients, heartbeats, failures, elapsed, &hist)
    }
}

/// Runs the fleet until `--seconds` pass (or a signal), then reports its heartbeats.
pub async fn run(load: FleetLoad) -> Result<Report> {
    validate(&load)?;
    // Held until the run ends: the ports stay refused and nobody else's.
    let ports = reserve_ports(&load)?;
    let servers: Vec<Synthetic> = (0u64..)
        .zip(&ports)
        .map(|(i, (_, port))| server(&load, i, *port))
        .collect();
    let links: Vec<Arc<Link>> = load
        .metas
        .iter()
        .map(|a| link(a).map(Arc::new))
        .collect::<Result<_>>()?;
    eprintln!(
        "blockservers: {} synthetic servers (ids {}..={}, 127.0.0.1 ports {}..={}, {} racks, \
         {} blocks each) on {}",
        load.servers,
        load.first_id,
        load.first_id + load.servers - 1,
        ports.first().map_or(0, |p| p.1),
        ports.last().map_or(0, |p| p.1),
        load.racks,
        load.blocks_per_server,
        load.metas.join(",")
    );
    let load = Arc::new(load);
    let start = Instant::now();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for (i, s) in (0u64..).zip(&servers) {
        let delay = load.heartbeat.mul_f64(i as f64 / load.servers as f64);
        for l in &links {
            tasks.push(tokio::spawn(serve(
                load.clone(),
                l.clone(),
                s.clone(),
                delay,
            )));
        }
    }
    watch(&links, &load, start).await;
    for t in &tasks {
        t.abort();
    }
    drop(ports);
    Ok(summarize(&links, &load, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> FleetLoad {
        FleetLoad {
            metas: vec!["127.0.0.1:1".into()],
            servers: 5,
            racks: 2,
            blocks_per_server: 25_000,
            block_size: 1 << 20,
            capacity: 1 << 40,
            volumes: 4,
            first_id: 1000,
            first_port: 10_000,
            nameservice: String::new(),
            heartbeat: Duration::from_secs(1),
            seconds: 1,
        }
    }

    #[test]
    fn servers_take_turns_over_the_racks_with_distinct_ids_and_ports() {
        let l = load();
        let s: Vec<Synthetic> = (0..5).map(|i| server(&l, i, 10_000 + i as u16)).collect();
        let racks: Vec<&str> = s.iter().map(|s| s.rack.as_str()).collect();
        assert_eq!(racks, ["r1", "r2", "r1", "r2", "r1"]);
        assert_eq!(s[3].id, 1003);
        assert_eq!(s[3].addr, "127.0.0.1:10003");
    }

    #[test]
    fn rebuild_reads_come_from_the_own_rack_and_the_next_two_at_most() {
        let l = load();
        let names = |s: &Synthetic| -> Vec<String> {
            synthetic_reads(&l, s).into_iter().map(|r| r.rack).collect()
        };
        // Two racks: each named once.
        assert_eq!(names(&server(&l, 1, 10_001)), ["r1", "r2"]);
        let three = FleetLoad { racks: 5, ..load() };
        let reads = synthetic_reads(&three, &server(&three, 4, 10_004));
        let racks: Vec<&str> = reads.iter().map(|r| r.rack.as_str()).collect();
        assert_eq!(racks, ["r1", "r2", "r5"]);
    }

    #[test]
    fn a_full_report_splits_into_parts_of_never_allocated_groups() {
        let l = load();
        let parts = full_report(&l, &server(&l, 0, 10_000));
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.parts == 3 && p.full));
        let n: usize = parts.iter().map(|p| p.blocks.len()).sum();
        assert_eq!(n, 25_000);
        assert!(parts[0].blocks[0].group >= SYNTHETIC_GROUPS);
        let last = parts[2].blocks.last().map_or(0, |b| b.group);
        assert!(last < GROUP_ID_LIMIT);
        let empty = full_report(
            &FleetLoad {
                blocks_per_server: 0,
                ..l
            },
            &Synthetic {
                id: 1,
                addr: "a".into(),
                rack: "r1".into(),
                rack_no: 0,
                born: Instant::now(),
            },
        );
        assert_eq!(empty.len(), 1);
        assert!(empty[0].blocks.is_empty());
    }

    #[test]
    fn settings_that_make_no_fleet_are_refused() {
        assert!(validate(&load()).is_ok());
        assert!(
            validate(&FleetLoad {
                first_id: 0,
                ..load()
            })
            .is_err()
        );
        assert!(
            validate(&FleetLoad {
                first_port: 65_000,
                servers: 1000,
                ..load()
            })
            .is_err()
        );
        assert!(
            validate(&FleetLoad {
                blocks_per_server: GROUPS_PER_SERVER,
                ..load()
            })
            .is_err()
        );
        assert!(
            validate(&FleetLoad {
                block_size: MAX_BLOCK_SIZE + 1,
                ..load()
            })
            .is_err()
        );
    }
}
