//! `metactl balance SRC_MOUNT DST_NS`: moves the subtree behind a mount point to another
//! nameservice while its clients keep running, as HDFS's `fedbalance` (DESIGN §13):
//!
//! 1. the mount is resolved to the source nameservice and path; the destination is the same
//!    path in `DST_NS`, which must not exist yet;
//! 2. the source is made snapshottable, snapshot `balance-0` is copied whole (checksums
//!    verified) and the destination takes `balance-0`;
//! 3. diff rounds (`copy --diff balance-K balance-K+1`) until one moves fewer than `--small`
//!    entries, or `--max-rounds` ran;
//! 4. the read-only window: the source path is frozen (a journaled entry of the source
//!    nameservice: every change under it is refused with the retriable `READ_ONLY`), the
//!    last snapshot and round are taken, and one compare-and-set entry of the mount table
//!    points the mount at `DST_NS`; the window's length is printed;
//! 5. cleanup, after `--settle` (routers read the new table; one that still sends a write to
//!    the source meets the freeze, reads the table again and sends it on): the source
//!    moves to `/.balance-trash/` on its nameservice and the balance's snapshots go on both
//!    sides. The freeze stays on the source *path*, so that no late call (a router that
//!    could not read the table, a client of the nameservice itself) writes where nobody
//!    reads any more; a later balance back to that path lifts it, as `fs thaw` does.
//!
//! A failure or a cancel (Ctrl-C) during the copy rounds, or a failure in the window before
//! the switch, rolls back: the freeze is lifted, the balance's snapshots and the
//! destination's copy removed; the source was never changed. The window itself cannot be
//! cancelled (Ctrl-C is ignored there), and a switch whose answer was lost is decided by
//! reading the table again: never rolled back once the mount may lead to the copy. Every
//! step goes to the log (`--log`, JSON lines) beside the copies' own entries.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use raftfs_client::{Client, ClientConfig, ErrorKind};
use raftfs_core::federation::{Destination, NameserviceId};
use raftfs_core::namespace::NsPath;
use serde::Serialize;

use crate::copy::{self, CopyOptions, Side, Summary};

/// Where the source goes once the mount has moved (on the source nameservice).
const TRASH: &str = "/.balance-trash";

/// The prefix of the balance's snapshots, on both sides.
const SNAPSHOT: &str = "balance-";

/// The nameservices of a federation, each reached directly (not through a router: the
/// balance talks to the source and the destination as the owners of their trees).
pub struct Federation {
    keeper: NameserviceId,
    clients: BTreeMap<NameserviceId, Client>,
}

impl Federation {
    /// From a router's configuration (it names every nameservice, its members and the
    /// table's keeper); each client with `base`'s settings (user, TLS, deadlines).
    pub fn load(file: &Path, base: &Client) -> Result<Self> {
        let config = raftfs_router::Config::load(file)
            .with_context(|| format!("federation from {}", file.display()))?;
        let mut clients = BTreeMap::new();
        for ns in config.nameservices {
            let c = Client::new(ClientConfig {
                metas: ns.metaservers,
                ..base.config().clone()
            })?;
            clients.insert(ns.name, c);
        }
        Ok(Self {
            keeper: config.mount_table,
            clients,
        })
    }

    /// Every nameservice's client, by name.
    pub fn clients(&self) -> impl Iterator<Item = (&NameserviceId, &Client)> {
        self.clients.iter()
    }

    fn client(&self, ns: &NameserviceId) -> Result<&Client> {
        self.clients
            .get(ns)
            .ok_or_else(|| anyhow!("nameservice {ns} is not in the federation's configuration"))
    }
}

/// How a balance runs.
#[derive(Debug, Clone)]
pub struct BalanceOptions {
    pub copy: CopyOptions,
    /// A round that moved fewer entries than this is the last before the window.
    pub small: u64,
    /// Most diff rounds before the window (the window's round comes after them).
    pub max_rounds: u32,
    /// How long after the switch the source stays as it was (frozen) before it moves to
    /// the trash: routers read the table at least every poll period.
    pub settle: Duration,
}

/// One copy round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub snapshot: String,
    /// Entries created, changed, moved or removed at the destination.
    pub changes: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// What a balance did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mount: String,
    pub from: String,
    pub to: String,
    pub rounds: Vec<Round>,
    /// The read-only window: from the freeze's request to the switch's answer, ms since the
    /// epoch.
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    pub window_ms: u64,
    /// Where the source went on its nameservice.
    pub trash: String,
    pub seconds: f64,
}

/// What has been done so far (or sent: a call whose answer was lost may have applied):
/// what a rollback undoes.
#[derive(Debug, Default)]
struct Progress {
    src_snapshots: Vec<String>,
    dst_created: bool,
    /// The destination path was frozen (left by an earlier balance away from it) and thawed.
    dst_thawed: bool,
    dst_snapshots: Vec<String>,
    frozen: bool,
}

/// Why the balance did not switch the mount, or could not tell whether it did.
enum Switch {
    /// The table still leads to the source: nothing moved.
    NotDone(anyhow::Error),
    /// The answer was lost and the table could not be read: nothing is undone.
    Unknown(anyhow::Error),
}

/// The balance of one mount, resolved.
struct Plan {
    at: NsPath,
    from: Destination,
    to: Destination,
    keeper: Client,
    src: Side,
    dst: Side,
    log: copy::Log,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn snapshot_name(k: usize) -> String {
    format!("{SNAPSHOT}{k}")
}

/// Everything a round moved at the destination.
fn changes(s: &Summary) -> u64 {
    s.directories
        + s.files_copied
        + s.symlinks
        + s.deleted
        + s.renamed
        + s.attributes
        + s.files_skipped
}

/// Runs a balance of mount point `mount` to nameservice `dst_ns`.
pub async fn run(
    fed: &Federation,
    mount: &str,
    dst_ns: &str,
    opts: &BalanceOptions,
) -> Result<Report> {
    let started = Instant::now();
    let plan = Plan::resolve(fed, mount, dst_ns, opts).await?;
    let src_allowed_before = plan.preflight().await?;
    let mut progress = Progress::default();
    let copied = tokio::select! {
        r = plan.copy_rounds(&mut progress, opts) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("cancelled")),
    };
    // From here on Ctrl-C is ignored: the window ends on its own, and is never left half
    // done by a signal.
    let moved = match copied {
        Ok(rounds) => plan.window(&mut progress, rounds, opts).await,
        Err(e) => Err(Switch::NotDone(e)),
    };
    let (rounds, window) = match moved {
        Ok(done) => done,
        Err(Switch::NotDone(e)) => {
            plan.log.write(
                "rollback",
                &plan.src.path,
                serde_json::json!({ "why": format!("{e:#}") }),
            );
            if let Err(r) = plan.roll_back(&progress, src_allowed_before).await {
                return Err(e.context(format!(
                    "and the rollback failed too ({r:#}): see the log for what is left"
                )));
            }
            return Err(e.context("balance rolled back: the mount and the source are as they were"));
        }
        Err(Switch::Unknown(e)) => {
            return Err(e.context(format!(
                "the mount's switch may have applied: nothing was undone; the source is frozen; \
                 see `metactl mount list` for where {} leads",
                plan.at
            )));
        }
    };
    tokio::time::sleep(opts.settle).await;
    let trash = plan
        .clean_up(&progress, src_allowed_before)
        .await
        .context("the mount moved; cleaning up the source")?;
    Ok(Report {
        mount: plan.at.to_string(),
        from: plan.from.to_string(),
        to: plan.to.to_string(),
        rounds,
        window_start_ms: window.0,
        window_end_ms: window.1,
        window_ms: window.1.saturating_sub(window.0),
        trash,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl Plan {
    /// The mount's source and the destination in `dst_ns`.
    async fn resolve(
        fed: &Federation,
        mount: &str,
        dst_ns: &str,
        opts: &BalanceOptions,
    ) -> Result<Self> {
        let at = NsPath::parse(mount).with_context(|| format!("mount point {mount:?}"))?;
        let dst_ns = NameserviceId::parse(dst_ns)?;
        let keeper = fed.client(&fed.keeper)?.clone();
        let table = keeper
            .mount_table()
            .await
            .context("reading the mount table")?;
        let Some(from) = table
            .entries()
            .find(|(m, _)| **m == at)
            .map(|(_, d)| d.clone())
        else {
            bail!("{at} is not a mount point");
        };
        if from.nameservice == dst_ns {
            bail!("{at} already leads to {dst_ns}");
        }
        let to = Destination {
            nameservice: dst_ns,
            path: from.path.clone(),
        };
        let src = Side {
            client: fed.client(&from.nameservice)?.clone(),
            path: from.path.to_string(),
        };
        let dst = Side {
            client: fed.client(&to.nameservice)?.clone(),
            path: to.path.to_string(),
        };
        // Another mount reaching into the source or the destination tree (or above it)
        // would lead into the trash, or into the copy, afterwards.
        let overlaps = |d: &Destination, of: &Destination| {
            d.nameservice == of.nameservice
                && (d.path == of.path
                    || d.path.is_strictly_under(&of.path)
                    || of.path.is_strictly_under(&d.path))
        };
        if let Some((other, d)) = table
            .entries()
            .find(|(m, d)| **m != at && (overlaps(d, &from) || overlaps(d, &to)))
        {
            bail!("mount point {other} leads to {d}, which overlaps {from} or {to}: move it first");
        }
        if from.path.is_root() {
            bail!(
                "{at} leads to the root of {}: balance moves a directory",
                from.nameservice
            );
        }
        Ok(Self {
            at,
            from,
            to,
            keeper,
            src,
            dst,
            log: copy::Log::open(opts.copy.log.as_ref())?,
        })
    }

    /// Checks that the balance can start; returns whether the source was snapshottable.
    async fn preflight(&self) -> Result<bool> {
        match self.dst.client.stat(&self.dst.path).await {
            Err(e) if e.is(ErrorKind::NotFound) => {}
            Ok(_) => bail!(
                "{}:{} exists; the destination must not (remove it first)",
                self.to.nameservice,
                self.to.path
            ),
            Err(e) => return Err(e).context("destination"),
        }
        let snaps = format!("{}/.snapshot", self.src.path);
        match self.src.client.list_page(&snaps, "", 10_000).await {
            Ok(page) => {
                if let Some(s) = page.entries.iter().find(|e| e.name.starts_with(SNAPSHOT)) {
                    bail!(
                        "{} has snapshot {}: an earlier balance did not finish; delete its \
                         balance-* snapshots (and thaw the path, `fs thaw`) first",
                        self.src.path,
                        s.name
                    );
                }
                Ok(true)
            }
            Err(e) if e.is(ErrorKind::Snapshot) || e.is(ErrorKind::NotFound) => {
                self.src
                    .client
                    .stat(&self.src.path)
                    .await
                    .context("source")?;
                Ok(false)
            }
            Err(e) => Err(e).context("source snapshots"),
        }
    }

    /// Steps 2 and 3: the full copy and the diff rounds while the source keeps changing.
    async fn copy_rounds(
        &self,
        progress: &mut Progress,
        opts: &BalanceOptions,
    ) -> Result<Vec<Round>> {
        let (src, dst) = (&self.src, &self.dst);
        self.thaw_destination(progress).await?;
        src.client.allow_snapshot(&src.path).await?;
        let first = snapshot_name(0);
        self.snapshot_src(progress, &first).await?;
        let t = Instant::now();
        let whole = Side {
            client: src.client.clone(),
            path: format!("{}/.snapshot/{first}", src.path),
        };
        progress.dst_created = true;
        let summary = copy::run(&whole, dst, &opts.copy).await?;
        check_copied(&summary)?;
        dst.client.allow_snapshot(&dst.path).await?;
        progress.dst_snapshots.push(first.clone());
        snapshot_taken(
            dst.client.create_snapshot(&dst.path, Some(&first)).await,
            &mut progress.dst_snapshots,
        )?;
        let mut rounds = vec![round(&first, &summary, t)];
        self.log_round(rounds.last());
        // Diff rounds while the source keeps changing.
        loop {
            let k = rounds.len();
            let r = self.diff_round(progress, k, opts).await?;
            let small = r.changes < opts.small;
            rounds.push(r);
            self.log_round(rounds.last());
            if small || k >= opts.max_rounds as usize {
                break;
            }
        }
        Ok(rounds)
    }

    /// Step 4, the window: the source frozen, the last round, the switch. Returns the
    /// rounds and the window (ms since the epoch): from the freeze's request (it applies
    /// before its answer comes back) to the switch's answer, so that the figure bounds
    /// what clients saw.
    async fn window(
        &self,
        progress: &mut Progress,
        mut rounds: Vec<Round>,
        opts: &BalanceOptions,
    ) -> Result<(Vec<Round>, (u64, u64)), Switch> {
        let src = &self.src;
        let start = now_ms();
        progress.frozen = true;
        match src.client.freeze(&src.path, true).await {
            Ok(()) => {}
            Err(e) if e.is(ErrorKind::AlreadyExists) => {
                // Someone else's freeze (another balance?): not ours to lift.
                progress.frozen = false;
                return Err(Switch::NotDone(anyhow!(
                    "{} is frozen already (another balance, or `fs freeze`)",
                    src.path
                )));
            }
            Err(e) => {
                return Err(Switch::NotDone(
                    anyhow::Error::from(e).context("freezing the source"),
                ));
            }
        }
        self.log
            .write("frozen", &src.path, serde_json::json!({ "at_ms": start }));
        let last = self
            .diff_round(progress, rounds.len(), opts)
            .await
            .map_err(Switch::NotDone)?;
        rounds.push(last);
        self.log_round(rounds.last());
        let sent = self
            .keeper
            .mount_move(
                &self.at.to_string(),
                (self.from.nameservice.as_str(), &self.from.path.to_string()),
                (self.to.nameservice.as_str(), &self.to.path.to_string()),
            )
            .await;
        if let Err(e) = sent {
            let e = anyhow::Error::from(e).context("switching the mount");
            match self.switch_outcome().await {
                Some(true) => {}
                Some(false) => return Err(Switch::NotDone(e)),
                None => return Err(Switch::Unknown(e)),
            }
        }
        let end = now_ms();
        self.log.write(
            "switched",
            &self.at.to_string(),
            serde_json::json!({ "to": self.to.to_string(), "window_ms": end.saturating_sub(start) }),
        );
        Ok((rounds, (start, end)))
    }

    /// After a switch whose answer was an error: whether the mount leads to the
    /// destination (`Some(true)`), still to the source (`Some(false)`), or cannot be told
    /// (`None`: the table could not be read within a minute). The read is linearizable on
    /// the keeper's active, so an entry the switch left in its log is applied by then.
    async fn switch_outcome(&self) -> Option<bool> {
        for _ in 0..60 {
            if let Ok(table) = self.keeper.mount_table().await {
                let now = table
                    .entries()
                    .find(|(m, _)| **m == self.at)
                    .map(|(_, d)| d.clone());
                return match now {
                    Some(d) if d == self.to => Some(true),
                    Some(d) if d == self.from => Some(false),
                    // Someone else moved or removed it: not ours to undo.
                    _ => None,
                };
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        None
    }

    /// A destination path left frozen by an earlier balance away from it (it does not
    /// exist, checked first) is thawed, so that the copy can be written there.
    async fn thaw_destination(&self, progress: &mut Progress) -> Result<()> {
        match self.dst.client.freeze(&self.dst.path, false).await {
            Ok(()) => {
                progress.dst_thawed = true;
                self.log
                    .write("thawed", &self.dst.path, serde_json::json!({}));
                Ok(())
            }
            Err(e) if e.is(ErrorKind::NotFound) => Ok(()),
            Err(e) => Err(e).context("thawing the destination path"),
        }
    }

    /// Snapshot `name` of the source, recorded for the rollback before it is asked for (a
    /// cancel may drop the call after it applied).
    async fn snapshot_src(&self, progress: &mut Progress, name: &str) -> Result<()> {
        progress.src_snapshots.push(name.to_owned());
        let r = self
            .src
            .client
            .create_snapshot(&self.src.path, Some(name))
            .await;
        snapshot_taken(r, &mut progress.src_snapshots)
            .with_context(|| format!("snapshot {name} of {}", self.src.path))
    }

    /// Round `k`: snapshot `balance-k` of the source, and what changed since `balance-(k-1)`
    /// copied (the destination then holds `balance-k` too).
    async fn diff_round(
        &self,
        progress: &mut Progress,
        k: usize,
        opts: &BalanceOptions,
    ) -> Result<Round> {
        let (from, to) = (snapshot_name(k - 1), snapshot_name(k));
        self.snapshot_src(progress, &to).await?;
        let t = Instant::now();
        // The round ends with the destination taking snapshot `to`.
        progress.dst_snapshots.push(to.clone());
        let summary = copy::run_diff(&self.src, &self.dst, &from, &to, &opts.copy).await?;
        check_copied(&summary)?;
        Ok(round(&to, &summary, t))
    }

    fn log_round(&self, r: Option<&Round>) {
        if let Some(r) = r {
            self.log.write(
                "round",
                &self.src.path,
                serde_json::to_value(r).unwrap_or_default(),
            );
        }
    }

    /// Undoes what `progress` did, before the switch: the freeze, the snapshots (both
    /// sides), the destination's copy.
    async fn roll_back(&self, progress: &Progress, src_allowed_before: bool) -> Result<()> {
        let (src, dst) = (&self.src, &self.dst);
        if progress.frozen {
            gone_ok(src.client.freeze(&src.path, false).await)?;
        }
        if progress.dst_created {
            for s in &progress.dst_snapshots {
                gone_ok(dst.client.delete_snapshot(&dst.path, s).await)?;
            }
            gone_ok(dst.client.disallow_snapshot(&dst.path).await)?;
            self.remove_copy().await?;
        }
        if progress.dst_thawed {
            dst.client.freeze(&dst.path, true).await?;
        }
        for s in &progress.src_snapshots {
            gone_ok(src.client.delete_snapshot(&src.path, s).await)?;
        }
        if !src_allowed_before {
            gone_ok(src.client.disallow_snapshot(&src.path).await)?;
        }
        self.log
            .write("rolled back", &src.path, serde_json::json!({}));
        Ok(())
    }

    /// Removes the destination's copy. A call a cancelled copy sent just before it stopped
    /// may still apply after the first delete (the server runs what it received): the
    /// path is checked again until it stays gone.
    async fn remove_copy(&self) -> Result<()> {
        let dst = &self.dst;
        for _ in 0..5 {
            gone_ok(dst.client.delete(&dst.path, true).await)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            match dst.client.stat(&dst.path).await {
                Err(e) if e.is(ErrorKind::NotFound) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        bail!("{}:{} keeps coming back", self.to.nameservice, self.to.path)
    }

    /// Step 5, once the mount leads to the destination: the source into the trash (its
    /// path stays frozen), the balance's snapshots deleted on both sides. Returns where the
    /// source went.
    async fn clean_up(&self, progress: &Progress, src_allowed_before: bool) -> Result<String> {
        let (src, dst) = (&self.src, &self.dst);
        for s in &progress.dst_snapshots {
            gone_ok(dst.client.delete_snapshot(&dst.path, s).await)?;
        }
        gone_ok(dst.client.disallow_snapshot(&dst.path).await)?;
        let name = self.at.components().join("-");
        let trash = format!("{TRASH}/{name}-{}", now_ms());
        src.client.mkdir(TRASH, true).await?;
        src.client
            .rename(&src.path, &trash, false)
            .await
            .with_context(|| format!("moving {} to {trash}", src.path))?;
        for s in &progress.src_snapshots {
            gone_ok(src.client.delete_snapshot(&trash, s).await)?;
        }
        if !src_allowed_before {
            gone_ok(src.client.disallow_snapshot(&trash).await)?;
        }
        self.log.write(
            "cleaned up",
            &src.path,
            serde_json::json!({ "trash": trash }),
        );
        Ok(trash)
    }
}

fn round(snapshot: &str, s: &Summary, t: Instant) -> Round {
    Round {
        snapshot: snapshot.to_owned(),
        changes: changes(s),
        bytes: s.bytes_copied,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// A snapshot's creation: `AlreadyExists` means another's snapshot of that name (another
/// balance), which is then not recorded as this balance's to delete.
fn snapshot_taken(
    r: Result<String, raftfs_client::ClientError>,
    recorded: &mut Vec<String>,
) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => {
            if e.is(ErrorKind::AlreadyExists) {
                recorded.pop();
            }
            Err(e.into())
        }
    }
}

fn check_copied(s: &Summary) -> Result<()> {
    if s.errors > 0 {
        bail!("{} files could not be copied (see the log)", s.errors);
    }
    Ok(())
}

/// Success, or a refusal saying it is already undone (`NotFound`): a rollback that runs
/// after a cancel does not know which of its last calls applied.
fn gone_ok<T>(r: Result<T, raftfs_client::ClientError>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is(ErrorKind::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_counts_everything_it_moved() {
        let s = Summary {
            directories: 1,
            files_copied: 2,
            files_skipped: 3,
            symlinks: 4,
            deleted: 5,
            renamed: 6,
            attributes: 7,
            bytes_copied: 100,
            errors: 0,
        };
        assert_eq!(changes(&s), 28);
        assert_eq!(changes(&Summary::default()), 0);
    }
}
