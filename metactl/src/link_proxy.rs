//! A fault-injecting TCP proxy in front of every metaserver of a local cluster
//! (`metactl local up --proxied`), so that network partitions really cut traffic: between two
//! members, between clients and a member, or between one client host and a member
//! (`metactl local partition`).
//!
//! Each member listens on a private address (`back`) and advertises the proxy's (`front`):
//! every member, observer and client reaches it through the proxy. Members open their
//! connections from their own loopback address (`source-ip`, 127.0.0.(10+id)), so the proxy
//! knows which member a connection comes from; anything else is a client, and the client's
//! source address is its *host*. A client process can pick its host with `metactl
//! --source-ip` (any loopback address outside the members' 127.0.0.10-127.0.0.254), so that a
//! test cuts off one writer while its own tools still reach the cluster.
//!
//! The ends of a cut are a member's id, a host's address, or `client`, which stands for every
//! host: `127.0.1.7-2` cuts the client process(es) on 127.0.1.7 from member 2 and leaves
//! other clients alone; `client-2` cuts every client from member 2, named hosts included.
//! The proxy fronts members only, so every cut has a member at one end. A link that is cut
//! carries nothing: its open connections are dropped and new ones are accepted but never
//! forwarded (a black hole: the peer sees timeouts, as with lost packets) until the link
//! heals, when they are dropped so that the peer reconnects.
//!
//! The plan lives in `DIR/links.json`; the proxy process (`metactl serve-link-proxy`) polls it,
//! so changing a partition is rewriting one file.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The end of a cut that stands for every client host.
pub const CLIENT: &str = "client";

/// One end of a cut, as `local partition --cut` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Member(u64),
    /// Every connection that does not come from a member.
    Client,
    /// The connections that come from one (loopback) address that is not a member's.
    Host(Ipv4Addr),
}

impl End {
    /// Parses a member id, `client`, or a host's loopback address. A host must not be one of
    /// the members' source addresses: the proxy would take its connections for the member's.
    pub fn parse(s: &str) -> Result<Self> {
        if s == CLIENT {
            return Ok(Self::Client);
        }
        if let Ok(id) = s.parse::<u64>() {
            return Ok(Self::Member(id));
        }
        let Ok(ip) = s.parse::<Ipv4Addr>() else {
            bail!("{s:?} is neither a member id, {CLIENT:?}, nor a host's IPv4 address");
        };
        if !ip.is_loopback() {
            bail!("host {ip} is not a loopback address (127.x.y.z)");
        }
        if is_member_source(ip) {
            let d = ip.octets()[3];
            bail!("{ip} is kept for members (127.0.0.10-254); name a host such as 127.0.1.{d}");
        }
        Ok(Self::Host(ip))
    }
}

impl std::fmt::Display for End {
    /// The name the plan keeps: the canonical form of what [`End::parse`] takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Member(id) => write!(f, "{id}"),
            Self::Client => f.write_str(CLIENT),
            Self::Host(ip) => write!(f, "{ip}"),
        }
    }
}

/// Whether `ip` is in the range [`source_ip_of`] hands to members.
fn is_member_source(ip: Ipv4Addr) -> bool {
    let [a, b, c, d] = ip.octets();
    (a, b, c) == (127, 0, 0) && (10..255).contains(&d)
}

/// One member behind the proxy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Route {
    pub id: u64,
    /// The address the cluster knows the member by (the proxy listens here).
    pub front: String,
    /// The member's own listening address.
    pub back: String,
    /// The address the member's outgoing connections come from.
    pub source_ip: IpAddr,
}

/// `DIR/links.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkPlan {
    pub proxy_pid: Option<u32>,
    /// Bumped by every change; the proxy writes the generation it has put in force to
    /// `links.applied`, so that a change can wait until it holds.
    #[serde(default)]
    pub generation: u64,
    pub routes: Vec<Route>,
    /// Directed links that carry nothing: connections from `.0` to `.1` (member ids, hosts'
    /// addresses or `client`, as [`End`] writes them).
    pub cut: BTreeSet<(String, String)>,
}

impl LinkPlan {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("links.json")
    }

    /// The plan of the cluster in `dir`, if it runs behind the proxy.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        match std::fs::read_to_string(Self::path(dir)) {
            Ok(text) => {
                Ok(Some(serde_json::from_str(&text).with_context(|| {
                    format!("parsing {}", Self::path(dir).display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", Self::path(dir).display())),
        }
    }

    /// Writes the plan atomically (the proxy never reads half a file).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!("links.json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }

    /// Changes the plan of the cluster in `dir` with `change`, as the next generation, and
    /// waits until the proxy has put it in force (listeners bound, cut connections closed).
    /// Concurrent changes (a partition while an observer is added) are serialized by a lock
    /// file, so that neither loses the other's edit.
    pub async fn update(
        dir: &Path,
        change: impl FnOnce(&mut LinkPlan) -> Result<()>,
    ) -> Result<()> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("links.lock"))
            .context("opening links.lock")?;
        tokio::task::block_in_place(|| lock.lock()).context("locking links.lock")?;
        let mut plan = Self::read(dir)?.unwrap_or_default();
        change(&mut plan)?;
        let applied = plan.write_and_apply(dir).await;
        let _ = lock.unlock();
        applied
    }

    /// Writes the plan as the next generation and waits until the proxy has put it in force
    /// (its listeners bound, its cuts applied to new and open connections).
    async fn write_and_apply(mut self, dir: &Path) -> Result<()> {
        self.generation = self.generation.wrapping_add(1);
        self.write(dir)?;
        let start = std::time::Instant::now();
        loop {
            let applied = std::fs::read_to_string(dir.join("links.applied"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if applied == Some(self.generation) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!(
                    "the link proxy did not apply the new links within 10 s (see {}/link-proxy.log)",
                    dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The loopback address member `id` connects from.
pub fn source_ip_of(id: u64) -> Result<IpAddr> {
    let last = u8::try_from(id.saturating_add(10))
        .ok()
        .filter(|b| *b < 255)
        .with_context(|| format!("a proxied cluster has member ids up to 244, not {id}"))?;
    Ok(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
}

/// Parses `A-B[,A-B...]` (each end a member's id, a host's loopback address, or `client`)
/// into directed links, both ways, each end in its canonical form.
pub fn parse_cuts(spec: &str) -> Result<BTreeSet<(String, String)>> {
    let mut cut = BTreeSet::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = pair
            .split_once('-')
            .with_context(|| format!("{pair:?} is not A-B"))?;
        let (a, b) = (End::parse(a.trim())?, End::parse(b.trim())?);
        if a == b {
            bail!("{pair:?} cuts an end from itself");
        }
        // The proxy sees only connections to members: a cut between two clients would hold
        // nothing, and saying so beats a partition that silently is not one.
        if !matches!(a, End::Member(_)) && !matches!(b, End::Member(_)) {
            bail!("{pair:?} has no member at either end (the proxy fronts only members)");
        }
        let (a, b) = (a.to_string(), b.to_string());
        cut.insert((a.clone(), b.clone()));
        cut.insert((b, a));
    }
    Ok(cut)
}

/// Where a connection to a member comes from: a member (by its source address), or else a
/// client host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Member(u64),
    Host(IpAddr),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Member(id) => write!(f, "{id}"),
            Self::Host(ip) => write!(f, "{ip}"),
        }
    }
}

/// One connection's link: from its source to member `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Link {
    from: Source,
    to: u64,
}

impl Link {
    /// Whether `cuts` cut this link: a member's by its id; a host's by its address, or by
    /// `client`, which names every host.
    fn is_cut(&self, cuts: &BTreeSet<(String, String)>) -> bool {
        let to = self.to.to_string();
        let cut_from = |from: String| cuts.contains(&(from, to.clone()));
        match self.from {
            Source::Member(id) => cut_from(id.to_string()),
            Source::Host(ip) => cut_from(ip.to_string()) || cut_from(CLIENT.to_owned()),
        }
    }
}

type Cuts = Arc<BTreeSet<(String, String)>>;
/// Connections being forwarded now, by link.
type Live = Arc<std::sync::Mutex<HashMap<Link, usize>>>;

/// Whether a connection `cuts` cut is still being forwarded.
fn any_live_cut(live: &Live, cuts: &BTreeSet<(String, String)>) -> bool {
    let l = match live.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    l.iter().any(|(link, n)| *n > 0 && link.is_cut(cuts))
}

/// Counts one forwarded connection for as long as it lives.
struct Forwarding {
    live: Live,
    link: Link,
}

impl Forwarding {
    fn new(live: &Live, link: Link) -> Self {
        let mut l = match live.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *l.entry(link).or_default() += 1;
        Self {
            live: live.clone(),
            link,
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        let mut l = match self.live.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = l.get_mut(&self.link) {
            *n = n.saturating_sub(1);
        }
    }
}
/// Which member each source address belongs to (grows as members are added).
type Sources = Arc<HashMap<IpAddr, u64>>;

/// Runs the proxy for the cluster in `dir` until killed.
pub async fn serve(dir: &Path) -> Result<()> {
    let (cut_tx, _) = watch::channel::<Cuts>(Arc::default());
    let (sources_tx, _) = watch::channel::<Sources>(Arc::default());
    let live: Live = Arc::default();
    let mut listening: HashMap<u64, String> = HashMap::new();
    let mut last: Option<LinkPlan> = None;
    loop {
        let plan = match LinkPlan::read(dir) {
            Ok(Some(p)) => p,
            Ok(None) => bail!("{} disappeared", LinkPlan::path(dir).display()),
            // A half-seen rename, or a transient error: try again at the next tick.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if last.as_ref() != Some(&plan) {
            sources_tx.send_replace(Arc::new(
                plan.routes.iter().map(|r| (r.source_ip, r.id)).collect(),
            ));
            // A failure here must not take the proxy (and every link of the cluster) down:
            // it is logged, the plan is not reported in force, and the next tick retries.
            let mut complete = true;
            for r in &plan.routes {
                if listening.get(&r.id) == Some(&r.front) {
                    continue;
                }
                let listener = match TcpListener::bind(&r.front).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(member = r.id, front = %r.front, error = %e, "cannot listen");
                        complete = false;
                        continue;
                    }
                };
                tracing::info!(member = r.id, front = %r.front, back = %r.back, "proxying");
                tokio::spawn(accept_loop(
                    listener,
                    r.clone(),
                    sources_tx.subscribe(),
                    cut_tx.subscribe(),
                    live.clone(),
                ));
                listening.insert(r.id, r.front.clone());
            }
            if last.as_ref().map(|l| &l.cut) != Some(&plan.cut) {
                tracing::info!(cut = ?plan.cut, "links changed");
                cut_tx.send_replace(Arc::new(plan.cut.clone()));
                // In force only once the connections on cut links are closed.
                let start = tokio::time::Instant::now();
                while any_live_cut(&live, &plan.cut) && start.elapsed() < Duration::from_secs(2) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let tmp = dir.join("links.applied.tmp");
            let reported = std::fs::write(&tmp, plan.generation.to_string())
                .and_then(|()| std::fs::rename(&tmp, dir.join("links.applied")));
            if let Err(e) = &reported {
                tracing::error!(error = %e, "cannot report the links in force");
            }
            // Otherwise the whole plan is applied again at the next tick.
            last = (complete && reported.is_ok()).then_some(plan);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    route: Route,
    sources: watch::Receiver<Sources>,
    cuts: watch::Receiver<Cuts>,
    live: Live,
) {
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let from = sources
            .borrow()
            .get(&peer.ip())
            .map_or(Source::Host(peer.ip()), |id| Source::Member(*id));
        let link = Link { from, to: route.id };
        tokio::spawn(carry(
            inbound,
            route.back.clone(),
            link,
            cuts.clone(),
            live.clone(),
        ));
    }
}

/// Carries one connection while its link is up; holds it silent while the link is cut.
async fn carry(
    mut inbound: TcpStream,
    back: String,
    link: Link,
    mut cuts: watch::Receiver<Cuts>,
    live: Live,
) {
    let _ = inbound.set_nodelay(true);
    if link.is_cut(&cuts.borrow_and_update()) {
        // A black hole until the link heals (then the peer reconnects) or the peer gives up:
        // what it sends is read and dropped, so a closed socket is not held open.
        let mut sink = tokio::io::sink();
        tokio::select! {
            _ = cuts.wait_for(|c| !link.is_cut(c)) => {}
            _ = tokio::io::copy(&mut inbound, &mut sink) => {}
        }
        return;
    }
    let _forwarding = Forwarding::new(&live, link);
    let Ok(mut outbound) = TcpStream::connect(&back).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cuts.wait_for(|c| link.is_cut(c)) => {
            // Cut: drop both sides (their reconnection meets the black hole).
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_symmetric_pairs_of_members_or_clients() {
        let c = parse_cuts("1-2, client-3").expect("parses");
        assert_eq!(c.len(), 4);
        assert!(c.contains(&("2".into(), "1".into())));
        assert!(c.contains(&("3".into(), CLIENT.into())));
        assert!(parse_cuts("1-1").is_err());
        assert!(parse_cuts("1:2").is_err());
        assert!(parse_cuts("x-2").is_err());
        assert!(parse_cuts("").expect("empty heals").is_empty());
    }

    #[test]
    fn a_host_is_named_by_its_loopback_address_outside_the_members_range() {
        let c = parse_cuts("127.0.1.77-1,127.0.1.77-2").expect("parses");
        assert_eq!(c.len(), 4);
        assert!(c.contains(&("127.0.1.77".into(), "1".into())));
        assert!(c.contains(&("2".into(), "127.0.1.77".into())));
        // Below the members' range, and another /24 of loopback, are hosts too.
        assert!(parse_cuts("127.0.0.2-1").is_ok());
        assert!(parse_cuts("127.9.9.9-1").is_ok());
        // Ends are kept in their canonical form, as the proxy compares them.
        assert!(
            parse_cuts(" 01 - 2 ")
                .expect("parses")
                .contains(&("1".into(), "2".into()))
        );
        for bad in [
            "127.0.0.11-1",        // member 1's own source address
            "127.0.0.254-1",       // member 244's
            "10.0.0.7-1",          // not loopback
            "::1-1",               // not IPv4
            "127.0.1.7-127.0.1.8", // no member at either end
            "client-127.0.1.7",    // no member at either end
            "127.0.1.7-127.0.1.7", // itself
        ] {
            assert!(parse_cuts(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_named_host_is_cut_alone_and_client_cuts_every_host() {
        let link = |from, to| Link { from, to };
        let named = Source::Host(IpAddr::V4(Ipv4Addr::new(127, 0, 1, 77)));
        let other = Source::Host(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        let member = Source::Member(2);

        let hosts = parse_cuts("127.0.1.77-1").expect("parses");
        assert!(link(named, 1).is_cut(&hosts));
        assert!(!link(named, 3).is_cut(&hosts), "only the member named");
        assert!(
            !link(other, 1).is_cut(&hosts),
            "another client still reaches 1"
        );
        assert!(!link(member, 1).is_cut(&hosts));

        let clients = parse_cuts("client-1").expect("parses");
        assert!(
            link(named, 1).is_cut(&clients),
            "a named host is a client too"
        );
        assert!(link(other, 1).is_cut(&clients));
        assert!(!link(member, 1).is_cut(&clients));

        let members = parse_cuts("2-1").expect("parses");
        assert!(link(member, 1).is_cut(&members));
        assert!(!link(named, 1).is_cut(&members));
    }

    #[test]
    fn every_member_has_its_own_loopback_source() {
        assert_eq!(
            source_ip_of(1).expect("ip"),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11))
        );
        assert!(source_ip_of(245).is_err());
    }
}
