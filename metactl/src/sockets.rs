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
//! killed and not yet started again; down there only another cluster drawing that very port
//! could take it.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use command_fds::{CommandFdExt, FdMapping};
use rand::Rng;

/// The lowest port drawn: above the well-known and most registered service ports.
const LOWEST_PORT: u16 = 10_000;
/// Where the kernel's ephemeral range starts when `/proc` does not say (Linux's default).
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
/// Draws before giving up (each draw that hits a port in use is drawn again).
const DRAWS: usize = 1_000;
/// The first fd a socket-activated process finds its sockets at (`SD_LISTEN_FDS_START`).
const FIRST_HANDED_FD: i32 = 3;

/// `n` loopback sockets, listening on distinct ports below the ephemeral range.
pub fn bind_fresh(n: usize) -> Result<Vec<TcpListener>> {
    let top = ephemeral_start();
    if top <= LOWEST_PORT {
        // A host whose ephemeral range covers everything: the kernel chooses.
        return (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").context("binding a loopback port"))
            .collect();
    }
    let mut rng = rand::rng();
    let mut out = Vec::with_capacity(n);
    for _ in 0..DRAWS {
        if out.len() == n {
            break;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", rng.random_range(LOWEST_PORT..top))) {
            out.push(l);
        }
    }
    if out.len() < n {
        bail!(
            "found only {} free loopback ports in {DRAWS} draws",
            out.len()
        );
    }
    Ok(out)
}

/// How long [`bind_again`] waits for a port that is still in use.
const REBIND_PATIENCE: Duration = Duration::from_secs(3);

/// Binds `addrs` again (for a server started anew where it listened before). A server just
/// killed holds its sockets until its last thread has exited, a moment after its pid already
/// shows as a zombie, so a port in use is tried again for [`REBIND_PATIENCE`].
pub async fn bind_again(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs {
        let l = loop {
            match TcpListener::bind(a) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && start.elapsed() < REBIND_PATIENCE =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                r => break r.with_context(|| format!("listening at {a} again"))?,
            }
        };
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

    #[test]
    fn fresh_ports_are_distinct_held_and_below_the_ephemeral_range() {
        let held = bind_fresh(8).expect("ports");
        let mut ports: Vec<u16> = held.iter().map(|l| port(l).expect("port")).collect();
        assert!(ports.iter().all(|p| *p < ephemeral_start()), "{ports:?}");
        for p in &ports {
            assert!(
                TcpListener::bind(("127.0.0.1", *p)).is_err(),
                "port {p} was left free"
            );
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 8);
    }

    /// A port held all along is refused (after the wait); one let go during the wait, as a
    /// killed server's last thread lets go, is taken.
    #[tokio::test]
    async fn a_held_port_is_bound_again_once_it_is_let_go() {
        let held = bind_fresh(1).expect("port");
        let addr = held[0].local_addr().expect("addr");
        let err = bind_again(&[addr]).await.expect_err("held all along");
        assert!(err.to_string().contains("again"), "{err:#}");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        let again = bind_again(&[addr]).await.expect("let go during the wait");
        assert_eq!(again[0].local_addr().ok(), Some(addr));
        release.await.expect("release");
    }
}
