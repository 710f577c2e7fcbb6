//! `loadgen meta`: NNThroughputBenchmark-style metadata load on raftfs. It first prepares
//! what the operation needs (untimed), then times only the operation itself. Every client
//! task is its own raftfs client object, with its own connection.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use raftfs_client::{AutoMsync, Client, ClientConfig, ClientTls, CreateOptions, ReadMode};

use crate::report::{self, Failure, Report};

/// The metadata operations `loadgen meta` can time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetaOp {
    /// Create an empty file (one journaled mutation; the file stays under construction).
    Create,
    Mkdir,
    Stat,
    /// List a directory of `--files-per-dir` entries (one page).
    List,
    Rename,
    Delete,
    /// Read-your-own-writes lag: create a file on the active (untimed), then time the first
    /// read of it on an observer (which waits until it has applied the create).
    Ryow,
    /// `msync`: a read-index round on the active.
    Msync,
    /// Set an existing file's modification time (one journaled mutation; a snapshot diff
    /// reports the file modified, its bytes unchanged).
    Touch,
}

impl MetaOp {
    fn name(self) -> &'static str {
        match self {
            MetaOp::Create => "create",
            MetaOp::Mkdir => "mkdir",
            MetaOp::Stat => "stat",
            MetaOp::List => "list",
            MetaOp::Rename => "rename",
            MetaOp::Delete => "delete",
            MetaOp::Ryow => "ryow",
            MetaOp::Msync => "msync",
            MetaOp::Touch => "touch",
        }
    }
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct MetaLoad {
    pub op: MetaOp,
    pub clients: usize,
    pub ops: u64,
    pub metas: Vec<String>,
    /// The cluster's TLS settings (`cluster.json` of a `local up --tls` cluster).
    pub tls: Option<ClientTls>,
    pub files_per_dir: u64,
    pub progress: bool,
    /// Where the timed clients read (writes always go to the active).
    pub read_mode: ReadMode,
    pub auto_msync: AutoMsync,
    /// Stat random files of a generated tree (`metactl local generate`) of this shape,
    /// instead of preparing files of its own.
    pub generated: Option<raftfs_core::synthetic::Shape>,
    /// Directories the tree goes under (operation i under the (i mod n)-th).
    pub roots: Vec<String>,
}

impl MetaLoad {
    /// A client's settings: the cluster's addresses and TLS.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.metas.clone());
        config.tls.clone_from(&self.tls);
        config
    }
}

struct Worker {
    client: Client,
    /// The run's directory under each root.
    bases: Arc<Vec<String>>,
    files_per_dir: u64,
}

impl Worker {
    /// The run's directory that operation `i` goes under.
    fn base(&self, i: u64) -> &str {
        let n = self.bases.len().max(1) as u64;
        self.bases
            .get((i % n) as usize)
            .map_or("/loadgen", String::as_str)
    }
    fn file(&self, i: u64) -> String {
        format!("{}/d{}/f{i}", self.base(i), i / self.files_per_dir)
    }
    fn other(&self, i: u64) -> String {
        format!("{}/d{}/r{i}", self.base(i), i / self.files_per_dir)
    }
    fn dir(&self, i: u64) -> String {
        format!("{}/d{}", self.base(i), i / self.files_per_dir)
    }
}

/// One client object per worker. `token`: a state ID every worker starts from, so that reads
/// on observers see the prepared tree (a causality token, DESIGN §5).
fn workers(load: &MetaLoad, bases: &Arc<Vec<String>>, token: u64) -> Result<Vec<Worker>> {
    (0..load.clients.max(1))
        .map(|_| {
            let mut config = load.client_config();
            config.read_mode = if load.op == MetaOp::Ryow {
                ReadMode::Observer
            } else {
                load.read_mode
            };
            config.auto_msync = load.auto_msync;
            let client = Client::new(config)?;
            client.observe(token);
            Ok(Worker {
                client,
                bases: bases.clone(),
                files_per_dir: load.files_per_dir.max(1),
            })
        })
        .collect()
}

/// A failed call as the report counts it: by the refusal's kind (`ReadOnly`, `NotFound`...).
fn err(e: raftfs_client::ClientError) -> Failure {
    Failure {
        kind: e
            .kind()
            .map_or_else(|| "other".to_owned(), |k| format!("{k:?}")),
        message: e.to_string(),
    }
}

/// A well-mixed 64-bit value of `i` (splitmix64): the generated files a stat load visits,
/// spread over the whole tree and the same in every run.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th of `n` distinct files of a generated tree of `files` (a stride prime to
/// `files` visits each at most once per `files` operations).
fn spread(i: u64, files: u64) -> u64 {
    const STRIDE: u64 = 2_654_435_761;
    let stride = if files.is_multiple_of(STRIDE) {
        1
    } else {
        STRIDE
    };
    i.wrapping_mul(stride) % files.max(1)
}

/// `touch` of distinct files of a generated tree (set their modification time): changes
/// that a snapshot diff reports, spread over the whole tree.
async fn touch_generated(load: &MetaLoad, shape: raftfs_core::synthetic::Shape) -> Result<Report> {
    let token = Client::new(load.client_config())?.msync().await?;
    let ws = workers(load, &Arc::new(vec!["/gen".to_owned()]), token)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(report::run(
        "raftfs",
        "touch",
        ws,
        load.ops,
        load.progress,
        move |w: Arc<Worker>, i| async move {
            let path = raftfs_core::synthetic::file_path(&shape, spread(i, shape.files))
                .ok_or_else(|| Failure::from("no such generated file"))?;
            w.client
                .set_times(&path, Some(now_ms), None)
                .await
                .map(drop)
                .map_err(err)
        },
    )
    .await)
}

/// `stat` of random files of a generated tree: nothing to prepare, the tree is there.
async fn stat_generated(load: &MetaLoad, shape: raftfs_core::synthetic::Shape) -> Result<Report> {
    let token = Client::new(load.client_config())?.msync().await?;
    let ws = workers(load, &Arc::new(vec!["/gen".to_owned()]), token)?;
    Ok(report::run(
        "raftfs",
        "stat",
        ws,
        load.ops,
        load.progress,
        move |w: Arc<Worker>, i| async move {
            let path = raftfs_core::synthetic::file_path(&shape, mix(i) % shape.files)
                .ok_or_else(|| Failure::from("no such generated file"))?;
            w.client.stat(&path).await.map(|_| ()).map_err(err)
        },
    )
    .await)
}

/// Runs the load and returns its report.
pub async fn run(load: MetaLoad) -> Result<Report> {
    if let Some(shape) = load.generated {
        return match load.op {
            MetaOp::Stat => stat_generated(&load, shape).await,
            MetaOp::Touch => touch_generated(&load, shape).await,
            _ => bail!("--generated goes with --op stat or --op touch"),
        };
    }
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let roots = if load.roots.is_empty() {
        vec!["/loadgen".to_owned()]
    } else {
        load.roots.clone()
    };
    let bases: Arc<Vec<String>> = Arc::new(
        roots
            .iter()
            .map(|r| format!("{}/{}-{run_id}", r.trim_end_matches('/'), load.op.name()))
            .collect(),
    );
    let setup = Client::new(load.client_config())?;
    for base in bases.iter() {
        setup.mkdir(base, true).await?;
    }
    let dirs = load.ops.div_ceil(load.files_per_dir.max(1));
    // Directories (each under every root), then (for ops on existing files) the files:
    // untimed preparation.
    let n = bases.len() as u64;
    let prep = report::prepare(
        "raftfs",
        "prepare-dirs",
        workers(&load, &bases, 0)?,
        dirs * n,
        false,
        move |w: Arc<Worker>, j| async move {
            let (root, d) = (j % n, j / n);
            let dir = format!("{}/d{d}", w.bases[root as usize]);
            w.client.mkdir(&dir, true).await.map(|_| ()).map_err(err)
        },
    )
    .await;
    if prep.errors > 0 {
        bail!(
            "preparing directories failed: {}",
            prep.first_error.unwrap_or_default()
        );
    }
    let prep_files = match load.op {
        MetaOp::Stat | MetaOp::Rename | MetaOp::Delete | MetaOp::Touch => load.ops,
        MetaOp::List => load.files_per_dir.min(load.ops.max(1)),
        MetaOp::Create | MetaOp::Mkdir | MetaOp::Ryow | MetaOp::Msync => 0,
    };
    if prep_files > 0 {
        let prep = report::prepare(
            "raftfs",
            "prepare-files",
            workers(&load, &bases, 0)?,
            prep_files,
            load.progress,
            |w: Arc<Worker>, i| async move {
                w.client
                    .create(&w.file(i), &CreateOptions::default())
                    .await
                    .map(|_| ())
                    .map_err(err)
            },
        )
        .await;
        if prep.errors > 0 {
            bail!(
                "preparing files failed: {}",
                prep.first_error.unwrap_or_default()
            );
        }
    }
    let token = setup.msync().await?;
    let ws = workers(&load, &bases, token)?;
    let report =
        match load.op {
            MetaOp::Create => {
                report::run(
                    "raftfs",
                    "create",
                    ws,
                    load.ops,
                    load.progress,
                    |w: Arc<Worker>, i| async move {
                        w.client
                            .create(&w.file(i), &CreateOptions::default())
                            .await
                            .map(|_| ())
                            .map_err(err)
                    },
                )
                .await
            }
            MetaOp::Mkdir => {
                report::run(
                    "raftfs",
                    "mkdir",
                    ws,
                    load.ops,
                    load.progress,
                    |w: Arc<Worker>, i| async move {
                        w.client
                            .mkdir(&w.other(i), false)
                            .await
                            .map(|_| ())
                            .map_err(err)
                    },
                )
                .await
            }
            MetaOp::Touch => {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                report::run(
                    "raftfs",
                    "touch",
                    ws,
                    load.ops,
                    load.progress,
                    move |w: Arc<Worker>, i| async move {
                        w.client
                            .set_times(&w.file(i), Some(now_ms), None)
                            .await
                            .map(drop)
                            .map_err(err)
                    },
                )
                .await
            }
            MetaOp::Stat => {
                report::run(
                    "raftfs",
                    "stat",
                    ws,
                    load.ops,
                    load.progress,
                    |w: Arc<Worker>, i| async move {
                        w.client.stat(&w.file(i)).await.map(|_| ()).map_err(err)
                    },
                )
                .await
            }
            MetaOp::List => {
                report::run(
                    "raftfs",
                    "list",
                    ws,
                    load.ops,
                    load.progress,
                    |w: Arc<Worker>, _i| async move {
                        let page = w.client.list_page(&w.dir(0), "", 1000).await.map_err(err)?;
                        if page.entries.is_empty() {
                            Err(Failure::from("listing came back empty"))
                        } else {
                            Ok(())
                        }
                    },
                )
                .await
            }
            MetaOp::Rename => {
                report::run(
                    "raftfs",
                    "rename",
                    ws,
                    load.ops,
                    load.progress,
                    |w: Arc<Worker>, i| async move {
                        w.client
                            .rename(&w.file(i), &w.other(i), false)
                            .await
                            .map(|_| ())
                            .map_err(err)
                    },
                )
                .await
            }
            MetaOp::Ryow => {
                // Only reads an observer answered measure the lag; one that fell back to the
                // active is counted as an error, so that the figure cannot hide it.
                let status = setup.cluster_status().await?;
                let active: Arc<str> = status
                    .members
                    .iter()
                    .find(|m| m.id == status.leader)
                    .map(|m| m.addr.as_str())
                    .unwrap_or_default()
                    .into();
                report::run_timed(
                    "raftfs",
                    "ryow",
                    ws,
                    load.ops,
                    load.progress,
                    move |w: Arc<Worker>, i| {
                        let active = active.clone();
                        async move {
                            w.client
                                .create(&w.file(i), &CreateOptions::default())
                                .await
                                .map_err(err)?;
                            let t = Instant::now();
                            w.client.stat(&w.file(i)).await.map_err(err)?;
                            let lag = t.elapsed();
                            if w.client.last_reader() == *active {
                                return Err(Failure::from("the read fell back to the active"));
                            }
                            Ok(lag)
                        }
                    },
                )
                .await
            }
            MetaOp::Msync => report::run(
                "raftfs",
                "msync",
                ws,
                load.ops,
                load.progress,
                |w: Arc<Worker>, _i| async move { w.client.msync().await.map(|_| ()).map_err(err) },
            )
            .await,
            MetaOp::Delete => {
                report::run(
                    "raftfs",
                    "delete",
                    ws,
                    load.ops,
                    load.progress,
                    |w: Arc<Worker>, i| async move {
                        w.client
                            .delete(&w.file(i), false)
                            .await
                            .map(|_| ())
                            .map_err(err)
                    },
                )
                .await
            }
        };
    Ok(report)
}
