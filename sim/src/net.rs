//! The network between the members of an in-process cluster: every Raft message goes through
//! the real encoding (`journal::format::rpc` records, as on gRPC) and the real receiving side
//! (`service::raft::receive`), and through the faults set here on its way (TiKV's
//! `transport_simulate` filters are the model):
//!
//! - a **partition** between two groups of members: messages across it fail at once, as a
//!   connection refused (openraft backs off); it can be one-way;
//! - **drop** with a probability: the message, or its reply, is lost and the sender waits out
//!   its timeout;
//! - **delay** by a random time in a range, which also **reorders** messages on one link;
//! - **duplicate** with a probability: the message is delivered twice (the second reply is
//!   thrown away), as a retransmission would.
//!
//! Faults are decided from one seeded generator, so a run's choices depend only on the seed
//! and the order the messages come in; that order still depends on the threads and the real
//! clock (the members run on a multi-threaded runtime), so a run is not replayed exactly from
//! its seed: that is the deterministic simulation's job (docs/DESIGN.md §14).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use raftfs_metaserver::journal::MemberId;
use raftfs_metaserver::journal::network::{RaftMethod, RaftTransport, SendError};
use raftfs_metaserver::node::MetaNode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What happens to a message a [`Filter`] matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Lost with this probability (0..=1); the sender times out.
    Drop(f64),
    /// Held for a random time in this range before it is delivered.
    Delay(Duration, Duration),
    /// Delivered twice with this probability.
    Duplicate(f64),
}

/// Which messages a fault applies to: from any of `from` to any of `to` (empty: any member),
/// of `method` (none: every method).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub from: BTreeSet<MemberId>,
    pub to: BTreeSet<MemberId>,
    pub method: Option<RaftMethod>,
    pub fault: Fault,
}

impl Filter {
    /// `fault` on every message between any two members.
    pub fn everywhere(fault: Fault) -> Self {
        Filter {
            from: BTreeSet::new(),
            to: BTreeSet::new(),
            method: None,
            fault,
        }
    }

    fn matches(&self, from: MemberId, to: MemberId, method: RaftMethod) -> bool {
        (self.from.is_empty() || self.from.contains(&from))
            && (self.to.is_empty() || self.to.contains(&to))
            && self.method.is_none_or(|m| m == method)
    }
}

#[derive(Debug)]
struct State {
    /// The members that are up, by id.
    up: BTreeMap<MemberId, MetaNode>,
    /// Links cut: (from, to).
    cut: BTreeSet<(MemberId, MemberId)>,
    filters: Vec<Filter>,
    rng: StdRng,
    counts: Counts,
}

/// What the network did, for tests to check that their faults happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub refused: u64,
    pub dropped: u64,
    pub delayed: u64,
    pub duplicated: u64,
}

/// The network of one in-process cluster; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Net {
    state: Arc<Mutex<State>>,
}

/// What one message will meet, decided when it is sent.
#[derive(Debug, Default)]
struct Fate {
    delay: Duration,
    lost: bool,
    reply_lost: bool,
    duplicate: bool,
}

impl Net {
    /// A network without faults, its random choices drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Net {
            state: Arc::new(Mutex::new(State {
                up: BTreeMap::new(),
                cut: BTreeSet::new(),
                filters: Vec::new(),
                rng: StdRng::seed_from_u64(seed),
                counts: Counts::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Member `node` receives messages from now on.
    pub fn attach(&self, node: MetaNode) {
        self.lock().up.insert(node.id(), node);
    }

    /// Member `id` receives nothing any more (it is down): messages to it are refused.
    pub fn detach(&self, id: MemberId) {
        self.lock().up.remove(&id);
    }

    /// The members that are up.
    pub fn nodes(&self) -> Vec<MetaNode> {
        self.lock().up.values().cloned().collect()
    }

    /// The transport member `id` sends through.
    pub fn endpoint(&self, id: MemberId) -> Endpoint {
        Endpoint {
            net: self.clone(),
            from: id,
        }
    }

    /// Cuts every link between a member of `a` and one of `b`, both ways.
    pub fn partition(&self, a: &[MemberId], b: &[MemberId]) {
        let mut s = self.lock();
        for x in a {
            for y in b {
                s.cut.insert((*x, *y));
                s.cut.insert((*y, *x));
            }
        }
    }

    /// Cuts the links from `from` to `to` only: `to` still reaches `from`.
    pub fn cut_one_way(&self, from: MemberId, to: MemberId) {
        self.lock().cut.insert((from, to));
    }

    /// Cuts member `id` off from every other.
    pub fn isolate(&self, id: MemberId, members: &[MemberId]) {
        let others: Vec<MemberId> = members.iter().copied().filter(|m| *m != id).collect();
        self.partition(&[id], &others);
    }

    /// Adds a fault.
    pub fn add(&self, filter: Filter) {
        self.lock().filters.push(filter);
    }

    /// Removes every partition and fault.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.cut.clear();
        s.filters.clear();
    }

    /// What the network did so far.
    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    /// Decides what a message from `from` to `to` meets, or refuses it (a cut link, a member
    /// that is down).
    fn fate(
        &self,
        from: MemberId,
        to: MemberId,
        method: RaftMethod,
    ) -> Result<(Fate, MetaNode), SendError> {
        let mut s = self.lock();
        if s.cut.contains(&(from, to)) {
            s.counts.refused += 1;
            return Err(SendError::Unreachable(format!(
                "{from} -> {to}: partitioned"
            )));
        }
        let Some(node) = s.up.get(&to).cloned() else {
            s.counts.refused += 1;
            return Err(SendError::Unreachable(format!("{to} is down")));
        };
        let mut fate = Fate::default();
        // Borrowed apart, so that the generator can be drawn from while the faults are read
        // (no copy of them per message).
        let State {
            cut,
            filters,
            rng,
            counts,
            ..
        } = &mut *s;
        for f in filters.iter().filter(|f| f.matches(from, to, method)) {
            match f.fault {
                Fault::Drop(p) => {
                    fate.lost |= rng.random_bool(p.clamp(0.0, 1.0));
                }
                Fault::Delay(min, max) => {
                    let ms =
                        rng.random_range(min.as_millis()..=max.as_millis().max(min.as_millis()));
                    fate.delay += Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
                }
                Fault::Duplicate(p) => {
                    fate.duplicate |= rng.random_bool(p.clamp(0.0, 1.0));
                }
            }
        }
        // The reply travels the other way: a one-way cut or a drop there loses it.
        if cut.contains(&(to, from)) {
            fate.reply_lost = true;
        }
        for f in filters.iter().filter(|f| f.matches(to, from, method)) {
            if let Fault::Drop(p) = f.fault {
                fate.reply_lost |= rng.random_bool(p.clamp(0.0, 1.0));
            }
        }
        if fate.lost || fate.reply_lost {
            counts.dropped += 1;
        }
        if !fate.delay.is_zero() {
            counts.delayed += 1;
        }
        if fate.duplicate {
            counts.duplicated += 1;
        }
        Ok((fate, node))
    }

    fn delivered(&self) {
        self.lock().counts.delivered += 1;
    }
}

/// One member's way into the [`Net`]: the Raft transport it is started with.
#[derive(Debug, Clone)]
pub struct Endpoint {
    net: Net,
    from: MemberId,
}

impl RaftTransport for Endpoint {
    async fn send(
        &self,
        to: MemberId,
        _addr: &str,
        method: RaftMethod,
        data: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, SendError> {
        let sent = tokio::time::Instant::now();
        let (fate, node) = self.net.fate(self.from, to, method)?;
        let timed_out = || SendError::Network(format!("{} to {to}: timed out", method.name()));
        if fate.lost {
            tokio::time::sleep(ttl).await;
            return Err(timed_out());
        }
        if fate.delay >= ttl {
            tokio::time::sleep(ttl).await;
            return Err(timed_out());
        }
        tokio::time::sleep(fate.delay).await;
        if fate.duplicate {
            let (node, data, from) = (node.clone(), data.clone(), self.from);
            tokio::spawn(async move {
                let _ = raftfs_metaserver::service::raft::receive(&node, method, &data, Some(from))
                    .await;
            });
        }
        let reply = tokio::time::timeout(
            ttl - fate.delay,
            raftfs_metaserver::service::raft::receive(&node, method, &data, Some(self.from)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|status| SendError::Network(format!("{} to {to}: {status}", method.name())))?;
        self.net.delivered();
        if fate.reply_lost {
            // The receiver acted on it; the sender never learns, and times out.
            tokio::time::sleep_until(sent + ttl).await;
            return Err(timed_out());
        }
        Ok(reply)
    }
}
