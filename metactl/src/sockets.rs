//! The listening sockets of a local cluster's servers.
//!
//! A port found free and then released can be taken before the server binds it: by another
//! cluster choosing its ports at the same moment, or as the source port of an outgoing
//! connection. (Two Jepsen campaigns started together once gave a proxy's front port of one
//! cluster to a metaserver of the other, and neither cluster came up.) So `metactl local`
//! binds every port when it chooses it and hands the bound socket down to the server it
//! starts, by systemd's socket-activation protocol (the sockets as fds 3, 4, .. and their
//! count in `LISTEN_FDS`); the server listens on the very socket, and the port is never free
//! in between.
//!
//! Ports are drawn at random below the kernel's ephemeral range, from which neither `bind` to
//! port 0 nor outgoing connections take theirs. A port does fall free while its member is
//! killed and not yet started again, and another cluster drawing that very port would take
//! it: the member's `local start` then fails with "Address already in use", or, behind the
//! link proxy, the proxy forwards the first cluster's traffic to the other's server (a Jepsen
//! campaign once read a value another cluster had written). So every port drawn is also
//! reserved machine-wide for its cluster ([`Reservations`]) until `local down`, and a draw
//! skips every reserved port, its own cluster's too.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use command_fds::{CommandFdExt, FdMapping};
use rand::Rng;

/// The lowest port drawn: above the well-known and most registered service ports.
const LOWEST_PORT: u16 = 10_000;
/// Where the kernel's ephemeral range starts when `/proc` does not say (Linux's default).
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
/// Draws before giving up (each draw that hits a port in use or reserved is drawn again).
const DRAWS: usize = 1_000;
/// The first fd a socket-activated process finds its sockets at (`SD_LISTEN_FDS_START`).
const FIRST_HANDED_FD: i32 = 3;
/// The machine's port reservations. Ports are one namespace for the whole machine, so this is
/// one fixed directory for every user and environment: `$XDG_RUNTIME_DIR` is per user and
/// unset under cron, sudo or in containers, and `$TMPDIR` varies per process, so either would
/// let two `metactl`s consult different registries and the reservation silently vanish.
const MACHINE_RESERVATIONS: &str = "/tmp/raftfs-ports";

/// Ports reserved by local clusters: one symlink per port, named by the port and pointing at
/// the owning cluster's directory (canonical), so a reservation is created with its owner in
/// one atomic step (`symlink` fails on an existing name; no half-written file is ever read).
///
/// A reservation lasts the cluster's lifetime: from its draw until `local down` (or the next
/// `local up` in the same directory) releases it, or until the cluster's directory is gone
/// (a test's temporary directory removed without `local down`), when it is stale and the next
/// draw of that port takes it over. Whether the cluster's servers run says nothing: a killed
/// member's ports are exactly what must stay reserved; nor does `cluster.json`, which names
/// neither the private address of a proxied member nor, until every voter is started, any
/// port of a cluster being brought up.
///
/// Every change to a port's reservation is made while holding that port bound (a draw binds
/// before it reserves, [`bind_again`] before it keeps), so two `metactl`s never race for one
/// port's reservation: the socket is the lock. Only a release, which removes just its own
/// cluster's links, goes without.
pub struct Reservations {
    dir: PathBuf,
}

impl Reservations {
    /// The machine-wide registry, created world-writable and sticky (like `/tmp`: anyone
    /// reserves, only a reservation's creator removes it) on first use.
    pub fn machine() -> Result<Self> {
        let dir = PathBuf::from(MACHINE_RESERVATIONS);
        match std::fs::create_dir(&dir) {
            Ok(()) => std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))
                .with_context(|| format!("opening {} to every user", dir.display()))?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
        // Not a symlink someone planted in /tmp to make us create links elsewhere.
        let meta = std::fs::symlink_metadata(&dir)
            .with_context(|| format!("inspecting {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        Ok(Self { dir })
    }

    /// A registry in `dir` (tests keep theirs apart from the machine's).
    #[cfg(test)]
    fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, port: u16) -> PathBuf {
        self.dir.join(port.to_string())
    }

    /// The live cluster that holds `port`: `None` when it is not reserved, or its reservation
    /// is stale (its cluster's directory is gone).
    fn holder(&self, port: u16) -> Result<Option<PathBuf>> {
        let path = self.path(port);
        match std::fs::read_link(&path) {
            Ok(cluster) if cluster.is_dir() => Ok(Some(cluster)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading reservation {}", path.display())),
        }
    }

    /// Reserves `port`, held bound by the caller, for `cluster` (canonical), taking over a
    /// stale reservation; returns whether it did. A port already reserved, even by `cluster`
    /// itself (a killed member's), is not: it belongs to a server that will listen again.
    fn take(&self, port: u16, cluster: &Path) -> Result<bool> {
        let path = self.path(port);
        match symlink(cluster, &path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("reserving {}", path.display())),
        }
        // An entry that cannot be read (not a link of ours) is left alone: its port is skipped.
        if !matches!(self.holder(port), Ok(None)) {
            return Ok(false);
        }
        // Stale. Another user's stale link cannot be removed from the sticky directory: then
        // that port is skipped too.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(_) => return Ok(false),
        }
        match symlink(cluster, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).with_context(|| format!("reserving {}", path.display())),
        }
    }

    /// Makes sure `port`, held bound by `cluster` again, is reserved for it: its own
    /// reservation stays, a missing or stale one is taken anew; returns false when another
    /// cluster holds it (one brought up by a `metactl` from before reservations) or its entry
    /// cannot be read.
    fn keep(&self, port: u16, cluster: &Path) -> Result<bool> {
        Ok(self.take(port, cluster)?
            || self
                .holder(port)
                .is_ok_and(|holder| holder.as_deref() == Some(cluster)))
    }

    /// Drops the reservation of `port` if `cluster` holds it.
    fn release(&self, port: u16, cluster: &Path) -> Result<()> {
        let path = self.path(port);
        if std::fs::read_link(&path).is_ok_and(|owner| owner == cluster) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("releasing {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Drops every reservation `cluster` (canonical) holds.
    fn release_all(&self, cluster: &Path) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", self.dir.display()))?;
            // Names that are no port are no reservation of ours.
            if let Some(port) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                self.release(port, cluster)?;
            }
        }
        Ok(())
    }
}

/// The name a cluster's reservations carry: its directory, canonical, so that every path to
/// it names the same owner.
fn owner(cluster: &Path) -> Result<PathBuf> {
    cluster
        .canonicalize()
        .with_context(|| format!("locating cluster directory {}", cluster.display()))
}

/// `n` loopback sockets for the cluster in `cluster`, listening on distinct ports below the
/// ephemeral range that no local cluster on the machine has reserved, each reserved for
/// `cluster` now.
pub fn bind_fresh(cluster: &Path, n: usize) -> Result<Vec<TcpListener>> {
    bind_fresh_in(&Reservations::machine()?, &owner(cluster)?, n, drawable())
}

/// [`bind_fresh`] with the reservations in `reservations`, for `cluster` (canonical), drawing
/// from `ports` (the kernel chooses when `None`).
fn bind_fresh_in(
    reservations: &Reservations,
    cluster: &Path,
    n: usize,
    ports: Option<Range<u16>>,
) -> Result<Vec<TcpListener>> {
    let mut rng = rand::rng();
    let mut out = Vec::with_capacity(n);
    for _ in 0..DRAWS {
        if out.len() == n {
            break;
        }
        let Some(l) = draw(&mut rng, ports.clone()) else {
            continue;
        };
        if reservations.take(port(&l)?, cluster)? {
            out.push(l);
        }
    }
    if out.len() < n {
        for l in &out {
            reservations.release(port(l)?, cluster)?;
        }
        bail!(
            "found only {} free and unreserved loopback ports in {DRAWS} draws",
            out.len()
        );
    }
    Ok(out)
}

/// The ports drawn from: above [`LOWEST_PORT`], below the ephemeral range; `None` on a host
/// whose ephemeral range covers them all.
fn drawable() -> Option<Range<u16>> {
    Some(LOWEST_PORT..ephemeral_start()).filter(|r| !r.is_empty())
}

/// A loopback socket on a port drawn at random from `ports` (or chosen by the kernel when
/// `None`); `None` when that port is in use.
fn draw(rng: &mut impl Rng, ports: Option<Range<u16>>) -> Option<TcpListener> {
    let port = ports.map_or(0, |r| rng.random_range(r));
    TcpListener::bind(("127.0.0.1", port)).ok()
}

/// Releases every port the cluster in `cluster` has reserved (`local down`, and `local up`
/// before it draws anew).
pub fn release(cluster: &Path) -> Result<()> {
    Reservations::machine()?.release_all(&owner(cluster)?)
}

/// How long [`bind_again`] waits for a port that is still in use.
const REBIND_PATIENCE: Duration = Duration::from_secs(3);

/// Binds `addrs` again (for a server of the cluster in `cluster` started anew where it
/// listened before), keeping their reservations. A server just killed holds its sockets until
/// its last thread has exited, a moment after its pid already shows as a zombie, so a port in
/// use is tried again for [`REBIND_PATIENCE`].
pub async fn bind_again(cluster: &Path, addrs: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    bind_again_in(&Reservations::machine()?, &owner(cluster)?, addrs).await
}

/// [`bind_again`] with the reservations in `reservations`, for `cluster` (canonical).
async fn bind_again_in(
    reservations: &Reservations,
    cluster: &Path,
    addrs: &[SocketAddr],
) -> Result<Vec<TcpListener>> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs {
        let l = loop {
            match TcpListener::bind(a) {
                Err(e) if e.kind() == ErrorKind::AddrInUse && start.elapsed() < REBIND_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                r => break r.with_context(|| format!("listening at {a} again"))?,
            }
        };
        // The address is the server's own (its config says so): it is bound even so.
        if !reservations.keep(a.port(), cluster)? {
            eprintln!(
                "warning: port {} of {} is reserved by another local cluster",
                a.port(),
                cluster.display()
            );
        }
        out.push(l);
    }
    Ok(out)
}

/// The port `l` listens on.
pub fn port(l: &TcpListener) -> Result<u16> {
    Ok(l.local_addr().context("a bound socket's address")?.port())
}

/// Makes `listeners` the sockets `cmd`'s process finds handed down (fds 3, 4, .. in order).
pub fn hand_down(cmd: &mut Command, listeners: Vec<TcpListener>) -> Result<()> {
    cmd.env("LISTEN_FDS", listeners.len().to_string())
        .env_remove("LISTEN_PID");
    let mappings = listeners
        .into_iter()
        .zip(FIRST_HANDED_FD..)
        .map(|(l, child_fd)| FdMapping {
            parent_fd: OwnedFd::from(l),
            child_fd,
        })
        .collect();
    cmd.fd_mappings(mappings)
        .map_err(|_| anyhow::anyhow!("two sockets handed down as the same fd"))?;
    Ok(())
}

/// A server's listening addresses in the order its sockets are handed down: its RPC ports
/// (the advertised one first), then metrics (when it has that).
pub fn order(rpc: &[SocketAddr], metrics: Option<SocketAddr>) -> Vec<SocketAddr> {
    rpc.iter().copied().chain(metrics).collect()
}

/// The sockets handed down to this process for `rpc` and `metrics` ([`order`]), each checked
/// to listen where the config says; `None` when nothing was handed down (the server binds its
/// addresses itself).
#[allow(clippy::type_complexity)]
pub fn handed_down(
    rpc: &[SocketAddr],
    metrics: Option<SocketAddr>,
) -> Result<Option<(Vec<TcpListener>, Option<TcpListener>)>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let addrs = order(rpc, metrics);
    if fds.len() != addrs.len() {
        bail!(
            "{} sockets handed down (LISTEN_FDS), but the config names {} addresses",
            fds.len(),
            addrs.len()
        );
    }
    let mut out = Vec::with_capacity(addrs.len());
    for (i, want) in addrs.iter().enumerate() {
        let l = fds
            .take_tcp_listener(i)
            .with_context(|| format!("handed-down socket {i}"))?
            .with_context(|| format!("handed-down socket {i} was taken already"))?;
        let at = l.local_addr()?;
        if at != *want {
            bail!("handed-down socket {i} listens at {at}, but the config says {want}");
        }
        out.push(l);
    }
    let metrics = match metrics {
        Some(_) => out.pop(),
        None => None,
    };
    Ok(Some((out, metrics)))
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry and cluster directories of the test's own, apart from the machine's.
    struct Machine {
        _root: tempfile::TempDir,
        reservations: Reservations,
        clusters: Vec<PathBuf>,
    }

    fn machine(clusters: usize) -> Machine {
        let root = tempfile::tempdir().expect("tempdir");
        let registry = root.path().join("ports");
        std::fs::create_dir(&registry).expect("registry");
        let clusters = (0..clusters)
            .map(|i| {
                let dir = root.path().join(format!("cluster-{i}"));
                std::fs::create_dir(&dir).expect("cluster dir");
                owner(&dir).expect("owner")
            })
            .collect();
        Machine {
            reservations: Reservations::at(&registry),
            clusters,
            _root: root,
        }
    }

    #[test]
    fn fresh_ports_are_distinct_held_reserved_and_below_the_ephemeral_range() {
        let m = machine(1);
        let a = &m.clusters[0];
        let held = bind_fresh_in(&m.reservations, a, 8, drawable()).expect("ports");
        let mut ports: Vec<u16> = held.iter().map(|l| port(l).expect("port")).collect();
        assert!(ports.iter().all(|p| *p < ephemeral_start()), "{ports:?}");
        for p in &ports {
            assert!(
                TcpListener::bind(("127.0.0.1", *p)).is_err(),
                "port {p} was left free"
            );
            assert_eq!(m.reservations.holder(*p).expect("holder").as_ref(), Some(a));
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 8);
    }

    /// The flake this prevents: cluster A's member is killed, its port falls free, and
    /// cluster B (or A itself, adding a member) draws it. Drawing from that one port only,
    /// nobody gets it while A holds it; A binds it again; once A releases it, or A's
    /// directory is gone, it is drawn again.
    #[tokio::test]
    async fn a_reserved_port_is_drawn_by_nobody_until_its_cluster_lets_go() {
        let m = machine(2);
        let (a, b) = (&m.clusters[0], &m.clusters[1]);
        let held = bind_fresh_in(&m.reservations, a, 1, drawable()).expect("port");
        let p = port(&held[0]).expect("port");
        drop(held); // the member is killed
        let only = Some(p..p + 1);
        assert!(
            TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} is free"
        );
        for cluster in [b, a] {
            let err = bind_fresh_in(&m.reservations, cluster, 1, only.clone())
                .expect_err("a reserved port is drawn");
            assert!(err.to_string().contains("unreserved"), "{err:#}");
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], p));
        let again = bind_again_in(&m.reservations, a, &[addr])
            .await
            .expect("its own cluster starts it again");
        drop(again);
        assert_eq!(m.reservations.holder(p).expect("holder").as_ref(), Some(a));

        m.reservations.release_all(a).expect("release");
        let drawn = bind_fresh_in(&m.reservations, b, 1, only.clone()).expect("released");
        assert_eq!(port(&drawn[0]).ok(), Some(p));
        drop(drawn);

        std::fs::remove_dir(b).expect("b's directory removed without local down");
        let drawn = bind_fresh_in(&m.reservations, a, 1, only).expect("stale");
        assert_eq!(port(&drawn[0]).ok(), Some(p));
        assert_eq!(m.reservations.holder(p).expect("holder").as_ref(), Some(a));
    }

    /// A port held all along is refused (after the wait); one let go during the wait, as a
    /// killed server's last thread lets go, is taken.
    #[tokio::test]
    async fn a_held_port_is_bound_again_once_it_is_let_go() {
        let m = machine(1);
        let a = &m.clusters[0];
        let held = bind_fresh_in(&m.reservations, a, 1, drawable()).expect("port");
        let addr = held[0].local_addr().expect("addr");
        let err = bind_again_in(&m.reservations, a, &[addr])
            .await
            .expect_err("held all along");
        assert!(err.to_string().contains("again"), "{err:#}");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let again = bind_again_in(&m.reservations, a, &[addr])
            .await
            .expect("let go during the wait");
        assert_eq!(again[0].local_addr().ok(), Some(addr));
        release.await.expect("release");
    }
}
