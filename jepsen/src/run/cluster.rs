//! The cluster under test: real metaserver processes started and controlled with `metactl
//! local` (the operator's own tool), plus signals to the pids in `cluster.json`. Every member
//! runs behind `metactl`'s fault-injecting link proxy (`local up --proxied`), so that
//! partitions really cut traffic.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use raftfs_client::discovery::{ClusterFile, MetaEntry};
use raftfs_client::{Client, ClientConfig};

/// The link end that stands for every client (`metactl local partition`).
pub const CLIENT: &str = "client";

/// A local cluster in `dir`, driven through the `metactl` binary at `metactl`. A federated
/// one (DESIGN §10) is started in `top`, its clients call its routers, and faults hit the
/// members of its first nameservice, in `dir` (`top/ns1`).
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The members faults hit.
    pub dir: PathBuf,
    /// What `local up` started: where clients find the cluster (its routers, when federated).
    pub top: PathBuf,
    metactl: PathBuf,
}

/// A federated cluster's shape: its nameservices and routers.
#[derive(Debug, Clone, Copy)]
pub struct Federation {
    pub nameservices: u32,
    pub routers: u32,
}

/// Whether `pid` still runs: a zombie (killed, not yet reaped by whoever adopted it) does not.
/// (The same test as `metactl`'s `local::alive`, which this crate does not link.)
fn running(pid: nix::unistd::Pid) -> bool {
    // The state follows the parenthesized command name.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some((_, rest)) = stat.rsplit_once(')')
        && rest.trim_start().starts_with(['Z', 'X'])
    {
        return false;
    }
    nix::sys::signal::kill(pid, None).is_ok()
}

/// `metactl` next to this executable (both are built into the same target directory).
pub fn default_metactl() -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating the jepsen binary")?;
    let path = me.with_file_name(format!("metactl{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        bail!(
            "{} not found: build it (cargo build --workspace) or pass --metactl",
            path.display()
        );
    }
    Ok(path)
}

impl Cluster {
    /// Starts `voters` voters and `observers` observers in `dir` (`extra`: more `local up`
    /// flags, e.g. debug switches); with `federation`, that many nameservices of that shape
    /// and routers (not behind the link proxy: partitions are for unfederated runs).
    pub fn up(
        metactl: PathBuf,
        dir: &Path,
        voters: u32,
        observers: u32,
        federation: Option<Federation>,
        extra: &[String],
    ) -> Result<Self> {
        let cluster = Self {
            dir: match federation {
                Some(_) => dir.join("ns1"),
                None => dir.to_owned(),
            },
            top: dir.to_owned(),
            metactl,
        };
        let (voters, observers) = (voters.to_string(), observers.to_string());
        let mut args: Vec<String> = [
            "local",
            "up",
            "--voters",
            &voters,
            "--observers",
            &observers,
        ]
        .map(str::to_owned)
        .into();
        args.push("--detach".into());
        match federation {
            None => args.push("--proxied".into()),
            Some(f) => args.extend([
                "--nameservices".into(),
                f.nameservices.to_string(),
                "--routers".into(),
                f.routers.to_string(),
            ]),
        }
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.ctl_in(&cluster.top, &args)?;
        Ok(cluster)
    }

    fn ctl(&self, args: &[&str]) -> Result<String> {
        self.ctl_in(&self.dir, args)
    }

    fn ctl_in(&self, dir: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.metactl);
        cmd.args(&args[..args.len().min(2)])
            .arg("--dir")
            .arg(dir)
            .args(&args[args.len().min(2)..]);
        let out = cmd
            .output()
            .with_context(|| format!("running {}", self.metactl.display()))?;
        if !out.status.success() {
            bail!(
                "metactl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The cluster file as it is now (pids change on restart).
    pub fn file(&self) -> Result<ClusterFile> {
        Ok(ClusterFile::read(&self.dir)?)
    }

    /// Every metaserver: id, address, pid, role.
    pub fn members(&self) -> Result<Vec<MetaEntry>> {
        Ok(self.file()?.meta)
    }

    /// A new client object of the cluster (of its routers, when federated).
    pub fn client(&self, configure: impl FnOnce(&mut ClientConfig)) -> Result<Client> {
        Self::client_of(&self.top, configure)
    }

    /// A new client of the members faults hit (the nemesis's, and the recovery check's).
    pub fn member_client(&self, configure: impl FnOnce(&mut ClientConfig)) -> Result<Client> {
        Self::client_of(&self.dir, configure)
    }

    /// A federated cluster's nameservices, by name (none otherwise).
    pub fn nameservices(&self) -> Result<Vec<String>> {
        let file = ClusterFile::read(&self.top)?;
        Ok(file.nameservices.into_iter().map(|n| n.name).collect())
    }

    fn client_of(dir: &Path, configure: impl FnOnce(&mut ClientConfig)) -> Result<Client> {
        let file = ClusterFile::read(dir)?;
        let mut config = ClientConfig::new(file.meta_addrs());
        // A `--cluster-arg --tls` cluster: its tools' (the superuser's) certificate.
        config.tls = file.client_tls()?;
        configure(&mut config);
        Ok(Client::new(config)?)
    }

    /// SIGKILL of these metaservers at once (a crash, or a power cut when they are all);
    /// returns once every process is gone.
    pub async fn kill(&self, ids: &[u64]) -> Result<()> {
        let pids = ids
            .iter()
            .map(|id| self.pid(*id).map(|p| (*id, p)))
            .collect::<Result<Vec<_>>>()?;
        for (id, pid) in &pids {
            match nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => bail!("SIGKILL to metaserver {id}: {e}"),
            }
        }
        let start = Instant::now();
        for (id, pid) in pids {
            while running(pid) {
                if start.elapsed() > Duration::from_secs(10) {
                    bail!("metaserver {id} (pid {pid}) survived SIGKILL for 10 s");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }

    fn pid(&self, id: u64) -> Result<nix::unistd::Pid> {
        let member = self
            .members()?
            .into_iter()
            .find(|m| m.id == id)
            .with_context(|| format!("no metaserver {id}"))?;
        Ok(nix::unistd::Pid::from_raw(
            i32::try_from(member.pid).context("pid out of range")?,
        ))
    }

    /// Starts a stopped metaserver again, on its old data.
    pub fn start(&self, id: u64) -> Result<()> {
        self.ctl(&["local", "start", "--id", &id.to_string()])
            .map(|_| ())
    }

    /// Cuts exactly these links, both ways (`A-B` pairs, members by id or `client`), healing
    /// every other one.
    pub fn partition(&self, pairs: &[(String, String)]) -> Result<()> {
        let spec: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        self.ctl(&["local", "partition", "--cut", &spec.join(",")])
            .map(|_| ())
    }

    /// A planned restart of every server, one at a time (the active last), each waited for
    /// until caught up; from `exe` (another metactl binary) or the one the cluster runs.
    pub fn rolling_restart(&self, exe: Option<&Path>) -> Result<()> {
        let exe = exe.map(|p| p.display().to_string());
        let mut args = vec!["local", "rolling-restart"];
        if let Some(exe) = &exe {
            args.extend(["--bin", exe]);
        }
        self.ctl(&args).map(|_| ())
    }

    /// Heals every link.
    pub fn heal_links(&self) -> Result<()> {
        self.ctl(&["local", "partition", "--heal"]).map(|_| ())
    }

    /// One more metaserver, added as an observer; its id.
    pub fn add_observer(&self) -> Result<u64> {
        let out = self.ctl(&["local", "add-observer"])?;
        out.split_whitespace()
            .find_map(|w| w.parse().ok())
            .context("add-observer printed no id")
    }

    /// SIGSTOP / SIGCONT.
    pub fn signal(&self, id: u64, signal: nix::sys::signal::Signal) -> Result<()> {
        nix::sys::signal::kill(self.pid(id)?, signal)
            .with_context(|| format!("signalling metaserver {id}"))
    }

    /// Waits until there is an active and every member in the membership has applied what it
    /// had committed when the wait began; gives up after `within`.
    pub async fn wait_healthy(&self, client: &Client, within: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < within {
            match client.cluster_status().await {
                Ok(s) if s.members.iter().all(|m| m.lag == 0) => return Ok(()),
                Ok(s) => last = format!("members still behind: {:?}", s.members),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the cluster did not recover within {within:?}: {last}")
    }

    /// Stops every process.
    pub fn down(&self) -> Result<()> {
        // A paused member would ignore SIGTERM: let everyone run first.
        if let Ok(members) = self.members() {
            for m in members {
                let _ = self.signal(m.id, nix::sys::signal::Signal::SIGCONT);
            }
        }
        self.ctl_in(&self.top, &["local", "down"]).map(|_| ())
    }

    /// Copies every server's log into `to`: metaservers', and a federated cluster's
    /// routers' and its nameservices' members' (`ns2-meta-1.log`).
    pub fn copy_logs(&self, to: &Path) -> Result<()> {
        std::fs::create_dir_all(to)?;
        let mut dirs = vec![(String::new(), self.top.clone())];
        for ns in self.nameservices().unwrap_or_default() {
            dirs.push((format!("{ns}-"), self.top.join(&ns)));
        }
        for (prefix, dir) in dirs {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                for log in ["metaserver.log", "router.log"] {
                    let log = entry.path().join(log);
                    if log.exists() {
                        let name = format!("{prefix}{}.log", entry.file_name().to_string_lossy());
                        std::fs::copy(&log, to.join(name))?;
                    }
                }
            }
        }
        Ok(())
    }
}
