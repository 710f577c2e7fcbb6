//! A fault-injecting TCP proxy in front of every metaserver of a local cluster
//! (`metactl local up --proxied`), so that network partitions really cut traffic: between two
//! members, or between clients and a member (`metactl local partition`).
//!
//! Each member listens on a private address (`back`) and advertises the proxy's (`front`):
//! every member, observer and client reaches it through the proxy. Members open their
//! connections from their own loopback address (`source-ip`, 127.0.0.(10+id)), so the proxy
//! knows which member a connection comes from; anything else is a client. A link that is cut
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

/// Who is at one end of a link: a member's id, or `client`.
pub const CLIENT: &str = "client";

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
    /// Directed links that carry nothing: connections from `.0` to `.1` (ids or `client`).
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

/// Parses `A-B[,A-B...]` (members by id, or `client`) into directed links, both ways.
pub fn parse_cuts(spec: &str) -> Result<BTreeSet<(String, String)>> {
    let mut cut = BTreeSet::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = pair
            .split_once('-')
            .with_context(|| format!("{pair:?} is not A-B"))?;
        for end in [a, b] {
            if end != CLIENT && end.parse::<u64>().is_err() {
                bail!("{end:?} is neither a member id nor {CLIENT:?}");
            }
        }
        if a == b {
            bail!("{pair:?} cuts a member from itself");
        }
        cut.insert((a.to_owned(), b.to_owned()));
        cut.insert((b.to_owned(), a.to_owned()));
    }
    Ok(cut)
}

type Cuts = Arc<BTreeSet<(String, String)>>;
/// Connections being forwarded now, by link.
type Live = Arc<std::sync::Mutex<HashMap<(String, String), usize>>>;

fn live_count(live: &Live, link: &(String, String)) -> usize {
    let l = match live.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    l.get(link).copied().unwrap_or(0)
}

/// Counts one forwarded connection for as long as it lives.
struct Forwarding {
    live: Live,
    link: (String, String),
}

impl Forwarding {
    fn new(live: &Live, link: &(String, String)) -> Self {
        let mut l = match live.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *l.entry(link.clone()).or_default() += 1;
        Self {
            live: live.clone(),
            link: link.clone(),
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
                while plan.cut.iter().any(|l| live_count(&live, l) > 0)
                    && start.elapsed() < Duration::from_secs(2)
                {
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
    let to = route.id.to_string();
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
            .map_or_else(|| CLIENT.to_owned(), u64::to_string);
        let link = (from, to.clone());
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
    link: (String, String),
    mut cuts: watch::Receiver<Cuts>,
    live: Live,
) {
    let _ = inbound.set_nodelay(true);
    if cuts.borrow_and_update().contains(&link) {
        // A black hole until the link heals (then the peer reconnects) or the peer gives up:
        // what it sends is read and dropped, so a closed socket is not held open.
        let mut sink = tokio::io::sink();
        tokio::select! {
            _ = cuts.wait_for(|c| !c.contains(&link)) => {}
            _ = tokio::io::copy(&mut inbound, &mut sink) => {}
        }
        return;
    }
    let _forwarding = Forwarding::new(&live, &link);
    let Ok(mut outbound) = TcpStream::connect(&back).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cuts.wait_for(|c| c.contains(&link)) => {
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
    fn every_member_has_its_own_loopback_source() {
        assert_eq!(
            source_ip_of(1).expect("ip"),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11))
        );
        assert!(source_ip_of(245).is_err());
    }
}
