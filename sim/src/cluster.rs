//! N real metaservers in one process: each a [`Member`] (its RocksDB stores, openraft, the
//! proposer, the state machine, the workers) started over the [`Net`] instead of gRPC, in a
//! directory of its own. No ports, no processes: a member is stopped and started again in
//! milliseconds, and a partition is a line of code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use raftfs_metaserver::Config;
use raftfs_metaserver::config::Peer;
use raftfs_metaserver::journal::MemberId;
use raftfs_metaserver::node::MetaNode;
use raftfs_metaserver::server::{Member, ServerError};
use raftfs_metaserver::service::namespace::NamespaceService;
use raftfs_proto as pb;
use raftfs_proto::namespace_server::Namespace;

use crate::net::Net;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("member {0}: {1}")]
    Start(MemberId, ServerError),
    #[error("no member {0}")]
    NoMember(MemberId),
    #[error("no active within {0:?}")]
    NoActive(Duration),
    #[error(transparent)]
    Status(#[from] tonic::Status),
}

/// An in-process cluster.
#[derive(Debug)]
pub struct Cluster {
    net: Net,
    /// Holds every member's data directory.
    dir: tempfile::TempDir,
    configs: BTreeMap<MemberId, Config>,
    members: BTreeMap<MemberId, Member>,
}

/// The address a member is known by in the membership (nothing dials it).
fn addr(id: MemberId) -> String {
    format!("sim-{id}")
}

impl Cluster {
    /// Starts `voters` members (ids 1..=voters) that form one cluster, over a network whose
    /// random faults are drawn from `seed`, each member's configuration adjusted by `tune`.
    pub async fn start(
        voters: u64,
        seed: u64,
        tune: impl Fn(&mut Config),
    ) -> Result<Cluster, SimError> {
        let dir =
            tempfile::tempdir().map_err(|e| SimError::Start(MemberId(0), ServerError::Io(e)))?;
        let ids: Vec<MemberId> = (1..=voters).map(MemberId).collect();
        let mut cluster = Cluster {
            net: Net::new(seed),
            dir,
            configs: BTreeMap::new(),
            members: BTreeMap::new(),
        };
        for id in &ids {
            let mut config = Config {
                node_id: *id,
                advertise_addr: Some(addr(*id)),
                data_dir: cluster.dir.path().join(format!("meta-{id}")),
                initial_members: ids
                    .iter()
                    .map(|m| Peer {
                        id: *m,
                        addr: addr(*m),
                    })
                    .collect(),
                bootstrap: true,
                ..Config::default()
            };
            tune(&mut config);
            cluster.configs.insert(*id, config);
        }
        for id in ids {
            cluster.start_member(id).await?;
        }
        Ok(cluster)
    }

    /// The network between the members.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Every member's id, up or down.
    pub fn ids(&self) -> Vec<MemberId> {
        self.configs.keys().copied().collect()
    }

    /// Member `id`'s configuration (its data directory, its tuning).
    pub fn config(&self, id: MemberId) -> Option<&Config> {
        self.configs.get(&id)
    }

    /// Member `id`, if it is up.
    pub fn node(&self, id: MemberId) -> Option<&MetaNode> {
        self.members.get(&id).map(Member::node)
    }

    /// Starts member `id` (again) from its data directory.
    pub async fn start_member(&mut self, id: MemberId) -> Result<(), SimError> {
        let config = self.configs.get(&id).ok_or(SimError::NoMember(id))?;
        let member = Member::start(config, self.net.endpoint(id))
            .await
            .map_err(|e| SimError::Start(id, e))?;
        self.net.attach(member.node().clone());
        self.members.insert(id, member);
        Ok(())
    }

    /// Stops member `id`: it receives nothing from now on, and its Raft and workers stop.
    /// Everything it acknowledged was synced to its log (what a crash keeps, too).
    pub async fn stop_member(&mut self, id: MemberId) -> Result<(), SimError> {
        self.net.detach(id);
        let member = self.members.remove(&id).ok_or(SimError::NoMember(id))?;
        member.stop_and_close().await;
        Ok(())
    }

    /// The member every member that is up agrees is the active, waiting up to `within`.
    pub async fn active(&self, within: Duration) -> Result<MemberId, SimError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(id) = self.agreed_active() {
                return Ok(id);
            }
            if Instant::now() >= deadline {
                return Err(SimError::NoActive(within));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn agreed_active(&self) -> Option<MemberId> {
        let mut leader = None;
        for node in self.members.values() {
            let m = node.node().raft().metrics().borrow().clone();
            let seen = m.current_leader?;
            if leader.is_some_and(|l| l != seen) {
                return None;
            }
            leader = Some(seen);
        }
        let id = leader?;
        let m = self
            .members
            .get(&id)?
            .node()
            .raft()
            .metrics()
            .borrow()
            .clone();
        (m.state == openraft::ServerState::Leader).then_some(id)
    }

    /// A client of this cluster, which finds the active itself.
    pub fn client(&self) -> SimClient {
        SimClient::new(self.net.clone())
    }
}

/// A client that calls the members' `Namespace` service directly (its real logic: the checks,
/// the proposer, the retry cache), retrying elsewhere when a member is not the active or is
/// unavailable, with the same call id, as the client crate does over gRPC.
#[derive(Debug, Clone)]
pub struct SimClient {
    net: Net,
    id: [u8; 16],
    calls: Arc<AtomicU64>,
    last_seen: Arc<AtomicU64>,
    /// How long one call keeps trying.
    pub patience: Duration,
}

static CLIENTS: AtomicU64 = AtomicU64::new(1);

impl SimClient {
    fn new(net: Net) -> Self {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&CLIENTS.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        SimClient {
            net,
            id,
            calls: Arc::new(AtomicU64::new(1)),
            last_seen: Arc::new(AtomicU64::new(0)),
            patience: Duration::from_secs(20),
        }
    }

    fn header(&self, call_id: u64) -> Option<pb::RequestHeader> {
        Some(pb::RequestHeader {
            client_id: self.id.to_vec(),
            call_id,
            last_seen_state_id: self.last_seen.load(Ordering::Relaxed),
            ..Default::default()
        })
    }

    fn saw(&self, header: Option<&pb::ResponseHeader>) {
        if let Some(h) = header {
            self.last_seen.fetch_max(h.state_id, Ordering::Relaxed);
        }
    }

    /// Calls `f` on members until one answers other than "not the active" or "unavailable".
    async fn on_active<T, F, Fut>(&self, f: F) -> Result<T, tonic::Status>
    where
        F: Fn(NamespaceService) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.patience;
        loop {
            let mut last = tonic::Status::unavailable("no member is up");
            for node in self.net.nodes() {
                match f(NamespaceService::new(node)).await {
                    Ok(r) => return Ok(r.into_inner()),
                    Err(s) if retriable(&s) => last = s,
                    Err(s) => return Err(s),
                }
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One mutation, retried with the same call id until the active answers.
    pub async fn mutate(
        &self,
        op: pb::mutate_request::Op,
    ) -> Result<pb::MutateResponse, tonic::Status> {
        let call_id = self.calls.fetch_add(1, Ordering::Relaxed);
        let r = self
            .on_active(|svc| {
                let req = pb::MutateRequest {
                    header: self.header(call_id),
                    op: Some(op.clone()),
                };
                async move { svc.mutate(as_process_user(req)).await }
            })
            .await?;
        self.saw(r.header.as_ref());
        Ok(r)
    }

    /// Creates directory `path` (and its parents).
    pub async fn mkdir(&self, path: &str) -> Result<pb::MutateResponse, tonic::Status> {
        self.mutate(pb::mutate_request::Op::Mkdir(pb::MkdirOp {
            path: path.into(),
            parents: true,
            ..Default::default()
        }))
        .await
    }

    /// Creates an empty file at `path`.
    pub async fn create(&self, path: &str) -> Result<pb::MutateResponse, tonic::Status> {
        self.mutate(pb::mutate_request::Op::Create(pb::CreateOp {
            path: path.into(),
            lease_holder: "sim".into(),
            ..Default::default()
        }))
        .await
    }

    /// Sets extended attribute `name` of `path` to `value`.
    pub async fn set_xattr(
        &self,
        path: &str,
        name: &str,
        value: &[u8],
    ) -> Result<pb::MutateResponse, tonic::Status> {
        self.mutate(pb::mutate_request::Op::SetXattr(pb::SetXattrOp {
            path: path.into(),
            name: name.into(),
            value: value.to_vec(),
            ..Default::default()
        }))
        .await
    }

    /// The names in directory `path` (every page), read on the active.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, tonic::Status> {
        let mut names = Vec::new();
        let mut after = String::new();
        loop {
            let r = self
                .on_active(|svc| {
                    let req = pb::ListRequest {
                        header: self.header(0),
                        path: path.into(),
                        start_after: after.clone(),
                        limit: 0,
                    };
                    async move { svc.list(as_process_user(req)).await }
                })
                .await?;
            self.saw(r.header.as_ref());
            names.extend(r.entries.iter().map(|e| e.name.clone()));
            match (r.has_more, names.last()) {
                (true, Some(last)) => after = last.clone(),
                _ => return Ok(names),
            }
        }
    }
}

/// A member's refusal that another member (or a later try) may not give.
fn retriable(s: &tonic::Status) -> bool {
    use pb::ErrorKind;
    match pb::detail_of(s).and_then(|d| ErrorKind::try_from(d.kind).ok()) {
        Some(ErrorKind::NotActive | ErrorKind::Unavailable | ErrorKind::ObserverBehind) => true,
        Some(_) => false,
        None => s.code() == tonic::Code::Unavailable,
    }
}

/// `req` as a simple-mode port gives it to the services: from a caller who claims to be the
/// user this process runs as (the superuser of a metaserver started by the same user, as in
/// `metactl local`).
pub fn as_process_user<T>(req: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(req);
    let caller = raftfs_core::identity::Caller {
        principal: raftfs_core::identity::Principal::User(raftfs_core::identity::User::named(
            raftfs_runtime::process_user(),
        )),
        proof: raftfs_core::identity::Proof::Claimed,
        port: raftfs_core::identity::PortPolicy::Plain,
    };
    r.extensions_mut().insert(Arc::new(caller));
    r
}
