//! The nemesis: faults injected on a schedule, each healed before the next, and everything
//! healed at the end. Every fault and heal is recorded in the history (`:process :nemesis`).
//!
//! - `kill`: SIGKILL of one member, of the active, or of a majority of the voters; healed by
//!   starting them again on their old data.
//! - `pause`: SIGSTOP of the same kinds of targets; healed by SIGCONT.
//! - `member`: a membership change under load: leadership moved to another voter, an
//!   observer replaced (a new one added, an old one removed and stopped), or a voter replaced
//!   (an observer promoted, a standby removed and stopped, a new observer added).
//! - `partition`: links really cut by the link proxy: the members split into random halves,
//!   the active isolated from every other member, a majorities ring (each member sees a
//!   majority, no two the same one), or the clients cut off from one member; healed by
//!   restoring every link.
//! - `upgrade`: a rolling upgrade (DESIGN §11), one step per fault, in this order: `upgrade
//!   prepare` and every server restarted onto the new binary (`--next-metactl`); `upgrade
//!   rollback` and every server restarted onto the old one; prepared and restarted onto the
//!   new one again; `upgrade finalize`; then plain rolling restarts on the new binary. Each
//!   restart is planned (SIGTERM, the active last, each member waited for until caught up).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use edn_format::Value;
use nix::sys::signal::Signal;
use raftfs_client::Client;
use raftfs_core::id::MemberId;
use raftfs_core::member::MemberRole;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::cluster::Cluster;
use super::recorder::{Actor, Recorder};
use crate::history::OpType;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Kill,
    Pause,
    Member,
    Partition,
    Upgrade,
}

/// Whom `kill` and `pause` hit (Jepsen's node specs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targets {
    /// One member at random (voter or observer).
    One,
    /// The active.
    Active,
    /// A majority of the voters.
    Majority,
    /// Every member at once (a power cut): the followers first, the active last.
    All,
}

/// A fault in force, to be healed.
#[derive(Debug)]
enum Injected {
    Killed(Vec<u64>),
    Paused(Vec<u64>),
    Partitioned,
    /// Membership changes are complete when made; nothing to undo.
    None,
}

/// Injects and heals faults on one cluster.
#[derive(Debug)]
pub struct Nemesis {
    cluster: Cluster,
    admin: Client,
    recorder: Arc<Recorder>,
    rng: StdRng,
    targets: Vec<Targets>,
    in_force: Vec<Injected>,
    /// Faults injected so far, by kind.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// The rolling upgrade's new binary, and how many of its steps were taken.
    next_metactl: Option<std::path::PathBuf>,
    upgrade_steps: u32,
}

fn ids(v: &[u64]) -> Value {
    Value::Vector(v.iter().map(|i| Value::Integer(*i as i64)).collect())
}

impl Nemesis {
    pub fn new(
        cluster: Cluster,
        admin: Client,
        recorder: Arc<Recorder>,
        rng: StdRng,
        targets: Vec<Targets>,
    ) -> Self {
        Self {
            cluster,
            admin,
            recorder,
            rng,
            targets,
            in_force: Vec::new(),
            counts: Default::default(),
            next_metactl: None,
            upgrade_steps: 0,
        }
    }

    /// The metactl binary the `upgrade` fault rolls onto.
    pub fn with_next_metactl(mut self, next: std::path::PathBuf) -> Self {
        self.next_metactl = Some(next);
        self
    }

    fn note(&mut self, f: &str, value: Value) {
        self.recorder.record(Actor::Nemesis, OpType::Info, f, value);
        *self.counts.entry(f.to_owned()).or_default() += 1;
    }

    /// Members to hit, by one of the configured [`Targets`] chosen at random.
    async fn targets(&mut self) -> Result<Vec<u64>> {
        // Members of the cluster as it is now (an observer removed by `member` is not one).
        let members: Vec<(u64, bool)> = match self.admin.members().await {
            Ok(m) => m.iter().map(|m| (m.id.get(), m.role.is_voter())).collect(),
            Err(_) => self
                .cluster
                .members()?
                .iter()
                .map(|m| (m.id, m.role == "voter"))
                .collect(),
        };
        let voters: Vec<u64> = members.iter().filter(|m| m.1).map(|m| m.0).collect();
        let all: Vec<u64> = members.iter().map(|m| m.0).collect();
        let spec = self
            .targets
            .choose(&mut self.rng)
            .copied()
            .unwrap_or(Targets::One);
        let leader = match spec {
            Targets::Active | Targets::All => self
                .admin
                .cluster_status()
                .await
                .ok()
                .map(|s| s.leader.get()),
            _ => None,
        };
        Ok(match (spec, leader) {
            (Targets::Active, Some(l)) => vec![l],
            (Targets::All, Some(l)) => {
                let mut v: Vec<u64> = all.iter().copied().filter(|i| *i != l).collect();
                v.push(l);
                v
            }
            (Targets::All, None) => all,
            (Targets::Majority, _) => {
                let n = voters.len() / 2 + 1;
                voters.choose_multiple(&mut self.rng, n).copied().collect()
            }
            _ => all.choose(&mut self.rng).copied().into_iter().collect(),
        })
    }

    /// Injects one fault of `kind`. What was done before an error is still healed later.
    pub async fn inject(&mut self, kind: FaultKind) -> Result<()> {
        match kind {
            FaultKind::Kill => {
                let targets = self.targets().await?;
                let result = self.cluster.kill(&targets).await;
                // Whatever failed, every target is started again at the heal.
                self.note("kill", ids(&targets));
                self.in_force.push(Injected::Killed(targets));
                result
            }
            FaultKind::Pause => {
                let targets = self.targets().await?;
                let mut done = Vec::new();
                let mut result = Ok(());
                for id in &targets {
                    result = self.cluster.signal(*id, Signal::SIGSTOP);
                    if result.is_err() {
                        break;
                    }
                    done.push(*id);
                }
                self.note("pause", ids(&done));
                self.in_force.push(Injected::Paused(done));
                result
            }
            FaultKind::Member => {
                self.in_force.push(Injected::None);
                self.membership_change().await
            }
            FaultKind::Upgrade => {
                self.in_force.push(Injected::None);
                self.upgrade_step().await
            }
            FaultKind::Partition => {
                let (name, pairs) = self.grudge().await?;
                self.in_force.push(Injected::Partitioned);
                let result = self.cluster.partition(&pairs);
                let value = Value::Vector(
                    std::iter::once(Value::from(name))
                        .chain(
                            pairs
                                .iter()
                                .map(|(a, b)| Value::from(format!("{a}-{b}").as_str())),
                        )
                        .collect(),
                );
                self.note("partition", value);
                result
            }
        }
    }

    /// Which links to cut, and the name of the shape.
    async fn grudge(&mut self) -> Result<(&'static str, Vec<(String, String)>)> {
        let status = self.admin.cluster_status().await.ok();
        let mut members: Vec<u64> = match &status {
            Some(s) => s.members.iter().map(|m| m.id.get()).collect(),
            None => self.cluster.members()?.iter().map(|m| m.id).collect(),
        };
        members.sort_unstable();
        let pair = |a: u64, b: u64| (a.to_string(), b.to_string());
        let shape = self.rng.random_range(0..4);
        Ok(match (shape, status.as_ref().map(|s| s.leader.get())) {
            (0, _) => {
                members.shuffle(&mut self.rng);
                let (left, right) = members.split_at(members.len() / 2);
                let cut = left
                    .iter()
                    .flat_map(|a| right.iter().map(move |b| pair(*a, *b)))
                    .collect();
                ("halves", cut)
            }
            (1, Some(active)) => {
                let cut = members
                    .iter()
                    .filter(|m| **m != active)
                    .map(|m| pair(active, *m))
                    .collect();
                ("isolated-active", cut)
            }
            (2, _) if members.len() >= 4 => {
                // Members on a ring, each linked to its ⌈⌊n/2⌋/2⌉ nearest on either side: it
                // sees a majority, and its neighbours see other majorities.
                members.shuffle(&mut self.rng);
                let n = members.len();
                let reach = (n / 2).div_ceil(2);
                let mut cut = Vec::new();
                for i in 0..n {
                    for j in i + 1..n {
                        let d = (j - i).min(n - (j - i));
                        if d > reach {
                            cut.push(pair(members[i], members[j]));
                        }
                    }
                }
                ("majorities-ring", cut)
            }
            _ => {
                let m = *members.choose(&mut self.rng).context("no members")?;
                (
                    "client-cut",
                    vec![(super::cluster::CLIENT.to_owned(), m.to_string())],
                )
            }
        })
    }

    /// The next step of the rolling upgrade (see the module's documentation).
    async fn upgrade_step(&mut self) -> Result<()> {
        use raftfs_core::namespace::upgrade::UpgradeStep;
        let next = self
            .next_metactl
            .clone()
            .context("the upgrade fault needs the new binary (--next-metactl)")?;
        let step = self.upgrade_steps;
        self.upgrade_steps += 1;
        match step {
            0 | 2 => {
                self.admin.upgrade(UpgradeStep::Prepare).await?;
                self.note("upgrade-prepare", Value::Nil);
                self.cluster.rolling_restart(Some(&next))?;
                self.note("restarted-onto-new", Value::Nil);
            }
            1 => {
                self.admin.upgrade(UpgradeStep::Rollback).await?;
                self.note("upgrade-rollback", Value::Nil);
                self.cluster.rolling_restart(None)?;
                self.note("restarted-onto-old", Value::Nil);
            }
            3 => {
                let to = self.newest_level_everywhere().await?;
                self.admin
                    .upgrade(UpgradeStep::Finalize {
                        to: raftfs_core::level::Level(to),
                    })
                    .await?;
                self.note("upgrade-finalize", Value::Integer(i64::from(to)));
            }
            _ => {
                self.cluster.rolling_restart(Some(&next))?;
                self.note("restarted-onto-new", Value::Nil);
            }
        }
        Ok(())
    }

    /// The newest format level every member writes (each must answer).
    async fn newest_level_everywhere(&self) -> Result<u16> {
        let mut to = u32::MAX;
        for m in self.admin.members().await? {
            to = to.min(self.admin.node_status(&m.addr).await?.newest_level);
        }
        u16::try_from(to).context("no member or no level")
    }

    async fn membership_change(&mut self) -> Result<()> {
        let status = self.admin.cluster_status().await?;
        let voters: Vec<u64> = status
            .members
            .iter()
            .filter(|m| m.role.is_voter() && m.id != status.leader)
            .map(|m| m.id.get())
            .collect();
        let observers: Vec<u64> = status
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Observer)
            .map(|m| m.id.get())
            .collect();
        let choice = if observers.is_empty() {
            0
        } else {
            self.rng.random_range(0..3)
        };
        if choice == 2 {
            // A voter replaced: an observer promoted (joint consensus to 4 voters), a standby
            // removed (back to 3) and stopped, a new observer added in the promoted one's place.
            let promoted = *observers.choose(&mut self.rng).context("no observer")?;
            self.admin.promote(MemberId(promoted)).await?;
            self.note("promote", ids(&[promoted]));
            let removed = *voters.choose(&mut self.rng).context("no standby")?;
            self.admin.remove_member(MemberId(removed)).await?;
            self.cluster.kill(&[removed]).await?;
            self.note("remove-voter", ids(&[removed]));
            let new = self.cluster.add_observer()?;
            self.note("add-observer", ids(&[new]));
        } else if choice == 0 {
            let to = *voters.choose(&mut self.rng).context("no other voter")?;
            let r = self.admin.transfer_leader(MemberId(to)).await;
            self.note(
                "transfer-leader",
                Value::Vector(vec![
                    Value::Integer(to as i64),
                    Value::from(if r.is_ok() { "done" } else { "refused" }),
                ]),
            );
        } else {
            let new = self.cluster.add_observer()?;
            self.note("add-observer", ids(&[new]));
            let old = *observers.choose(&mut self.rng).context("no observer")?;
            self.admin.remove_member(MemberId(old)).await?;
            self.cluster.kill(&[old]).await?;
            self.note("remove-observer", ids(&[old]));
        }
        Ok(())
    }

    /// Heals every fault in force, as far as it can; the first failure is returned (and
    /// recorded) after every other heal was tried.
    pub async fn heal(&mut self) -> Result<()> {
        let mut first_error = None;
        while let Some(f) = self.in_force.pop() {
            let (what, targets, results): (&str, Vec<u64>, Vec<Result<()>>) = match f {
                Injected::Killed(targets) => {
                    let r = targets.iter().map(|id| self.cluster.start(*id)).collect();
                    ("start", targets, r)
                }
                Injected::Paused(targets) => {
                    let r = targets
                        .iter()
                        .map(|id| self.cluster.signal(*id, Signal::SIGCONT))
                        .collect();
                    ("resume", targets, r)
                }
                Injected::Partitioned => {
                    let r = vec![self.cluster.heal_links()];
                    ("heal", Vec::new(), r)
                }
                Injected::None => continue,
            };
            self.note(what, ids(&targets));
            for e in results.into_iter().filter_map(Result::err) {
                self.note("error", Value::from(format!("{what}: {e:#}").as_str()));
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Alternates faults (from `kinds`, at random) and quiet periods of about `interval`
    /// until `until`, then heals.
    pub async fn run(
        &mut self,
        kinds: &[FaultKind],
        interval: Duration,
        until: tokio::time::Instant,
    ) -> Result<()> {
        if kinds.is_empty() {
            tokio::time::sleep_until(until).await;
            return Ok(());
        }
        loop {
            let quiet = interval.mul_f64(self.rng.random_range(0.5..1.5));
            if tokio::time::Instant::now() + quiet >= until {
                break;
            }
            tokio::time::sleep(quiet).await;
            let kind = *kinds.choose(&mut self.rng).context("no fault kinds")?;
            if let Err(e) = self.inject(kind).await {
                self.note("error", Value::from(format!("{kind:?}: {e:#}").as_str()));
            }
            let lasting = interval.mul_f64(self.rng.random_range(0.5..1.5));
            tokio::time::sleep(
                lasting.min(until.saturating_duration_since(tokio::time::Instant::now())),
            )
            .await;
            self.heal().await?;
        }
        self.heal().await?;
        tokio::time::sleep_until(until).await;
        Ok(())
    }
}
