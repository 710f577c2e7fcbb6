//! A Maelstrom node (issue 21): Jepsen's workbench drives nodes over JSON messages on stdin
//! and stdout (<https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md>). This one
//! serves the `lin-kv` workload (`read`, `write`, `cas`; errors 20 key-does-not-exist, 22
//! precondition-failed) from a real raftfs member: its journal, state machine and namespace
//! services, with the Raft messages between members carried as Maelstrom messages
//! (`raft`/`raft_ok`, the versioned record's bytes in base64), so that Maelstrom's network,
//! and its partitions, are what the journal runs over.
//!
//! A key is the file `/lin-kv/<key>` and its value the extended attribute `user.v` (the
//! value's JSON text): `write` creates the file when absent and sets it, `cas` is a set with
//! an expected value, `read` reads it on the active (a linearizable read). A node that is not
//! the active forwards a client's request to the active it knows (`forward`), and relays the
//! answer.
//!
//! Error codes follow the protocol: 20 and 22 as above, 11 (temporarily unavailable,
//! definite) only where nothing was proposed (no active known, not the active), 0 (timeout,
//! indefinite) whenever the operation may have happened, 10 (not supported), 12 (malformed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use raftfs_metaserver::journal::MemberId;
use raftfs_metaserver::journal::network::{RaftMethod, RaftTransport, SendError};
use raftfs_metaserver::node::MetaNode;
use raftfs_metaserver::service::namespace::NamespaceService;
use raftfs_proto as pb;
use raftfs_proto::namespace_server::Namespace;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::cluster::as_process_user;

/// Maelstrom's error codes this node answers with.
pub mod code {
    pub const TIMEOUT: u64 = 0;
    pub const NOT_SUPPORTED: u64 = 10;
    pub const TEMPORARILY_UNAVAILABLE: u64 = 11;
    pub const MALFORMED_REQUEST: u64 = 12;
    pub const CRASH: u64 = 13;
    pub const KEY_DOES_NOT_EXIST: u64 = 20;
    pub const PRECONDITION_FAILED: u64 = 22;
}

/// How long a forwarded request or a client operation may take before it is answered as a
/// timeout (indefinite).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The debug switch that serves reads from any node's own state (see `Running`).
pub const DEBUG_LOCAL_READS: &str = "RAFTFS_MAELSTROM_DEBUG_LOCAL_READS";

/// Where keys live.
const ROOT: &str = "/lin-kv";
const XATTR: &str = "user.v";

/// Why a node could not start its member.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("starting the member: {0}")]
    Start(#[from] raftfs_metaserver::server::ServerError),
    #[error("{0} is for debug builds only")]
    DebugSwitch(&'static str),
}

/// One message: `src`, `dest` and a `body` with its `type`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub src: String,
    pub dest: String,
    pub body: Value,
}

/// Why an input line is not a message this node can act on.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("not a message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Field(String),
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a Value, ProtocolError> {
    body.get(name)
        .ok_or_else(|| ProtocolError::Field(format!("no {name:?} in {body}")))
}

/// A call awaiting its reply: the node it went to (only that node's reply counts), and the
/// waiter.
type Awaited = (String, oneshot::Sender<Value>);

/// The sending half: lines to stdout, and the replies awaited by `msg_id`.
#[derive(Debug, Clone)]
pub struct Wire {
    me: Arc<Mutex<String>>,
    out: mpsc::UnboundedSender<String>,
    /// Calls awaiting a reply, by `msg_id`.
    waiting: Arc<Mutex<HashMap<u64, Awaited>>>,
    next_id: Arc<AtomicU64>,
}

impl Wire {
    /// A wire whose lines go to `out`.
    pub fn new(out: mpsc::UnboundedSender<String>) -> Self {
        Wire {
            me: Arc::new(Mutex::new(String::new())),
            out,
            waiting: Arc::default(),
            // From a number of this boot's own (below 2^40, exact in any JSON reader), so that
            // a late reply to a call of an earlier boot of this node matches no call of this one.
            next_id: Arc::new(AtomicU64::new(
                1 + raftfs_runtime::simulation::random_u64() % (1 << 40),
            )),
        }
    }

    fn me(&self) -> String {
        match self.me.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Awaited>> {
        match self.waiting.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sends `body` to `dest`.
    pub fn send(&self, dest: &str, body: Value) {
        let m = Message {
            src: self.me(),
            dest: dest.to_owned(),
            body,
        };
        if let Ok(line) = serde_json::to_string(&m) {
            // The writer only stops when the process does.
            let _ = self.out.send(line);
        }
    }

    /// Answers `to` with `body` (`in_reply_to` its `msg_id`).
    pub fn reply(&self, to: &Message, mut body: Value) {
        if let (Some(id), Some(map)) = (to.body.get("msg_id"), body.as_object_mut()) {
            map.insert("in_reply_to".into(), id.clone());
        }
        self.send(&to.src, body);
    }

    /// Answers `to` with error `code`.
    pub fn error(&self, to: &Message, code: u64, text: impl Into<String>) {
        self.reply(
            to,
            json!({"type": "error", "code": code, "text": text.into()}),
        );
    }

    /// Sends `body` to `dest` with a fresh `msg_id` and waits up to `ttl` for the reply.
    pub async fn call(&self, dest: &str, mut body: Value, ttl: Duration) -> Option<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, (dest.to_owned(), tx));
        if let Some(map) = body.as_object_mut() {
            map.insert("msg_id".into(), json!(id));
        }
        self.send(dest, body);
        let reply = tokio::time::timeout(ttl, rx)
            .await
            .ok()
            .and_then(Result::ok);
        self.waiting().remove(&id);
        reply
    }

    /// Hands a reply from `src` to whoever waits for it; `false` when nobody does (late, or
    /// from another node than the call went to).
    fn deliver(&self, src: &str, in_reply_to: u64, body: Value) -> bool {
        let mut waiting = self.waiting();
        if waiting
            .get(&in_reply_to)
            .is_none_or(|(dest, _)| dest != src)
        {
            return false;
        }
        match waiting.remove(&in_reply_to) {
            Some((_, tx)) => tx.send(body).is_ok(),
            None => false,
        }
    }
}

/// Raft messages as Maelstrom messages: `{"type": "raft", "method": ..., "data": base64}`,
/// answered `raft_ok` with the reply's bytes, or `error`.
#[derive(Debug, Clone)]
pub struct MaelstromTransport {
    wire: Wire,
    /// Node names by member id − 1 (Maelstrom's `node_ids`).
    names: Arc<Vec<String>>,
}

impl RaftTransport for MaelstromTransport {
    async fn send(
        &self,
        to: MemberId,
        _addr: &str,
        method: RaftMethod,
        data: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, SendError> {
        let Some(dest) = name_of(&self.names, to) else {
            return Err(SendError::Unreachable(format!("no node for member {to}")));
        };
        let body = json!({
            "type": "raft",
            "method": method.name(),
            "data": base64::engine::general_purpose::STANDARD.encode(&data),
        });
        let Some(reply) = self.wire.call(dest, body, ttl).await else {
            return Err(SendError::Network(format!(
                "{} to {dest}: timed out",
                method.name()
            )));
        };
        match reply.get("type").and_then(Value::as_str) {
            // A node not started yet, or refusing: openraft backs off from an unreachable one.
            Some("error") if reply.get("code") == Some(&json!(code::TEMPORARILY_UNAVAILABLE)) => {
                Err(SendError::Unreachable(format!("{dest}: {reply}")))
            }
            Some("raft_ok") => reply
                .get("data")
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .ok_or_else(|| SendError::Network(format!("{dest}: raft_ok without data"))),
            _ => Err(SendError::Network(format!("{dest}: {reply}"))),
        }
    }
}

fn name_of(names: &[String], id: MemberId) -> Option<&str> {
    let i = usize::try_from(id.0).ok()?.checked_sub(1)?;
    names.get(i).map(String::as_str)
}

fn method_of(name: &str) -> Option<RaftMethod> {
    [
        RaftMethod::AppendEntries,
        RaftMethod::Vote,
        RaftMethod::InstallSnapshot,
    ]
    .into_iter()
    .find(|m| m.name() == name)
}

/// The member behind a node, once `init` started it.
#[derive(Debug)]
struct Running {
    node: MetaNode,
    names: Arc<Vec<String>>,
    client_id: [u8; 16],
    calls: AtomicU64,
    /// Debug builds only: reads answered from this node's own state, on any node, without
    /// asking whether it is the active (`RAFTFS_MAELSTROM_DEBUG_LOCAL_READS=1`), so that the
    /// test driver can show its checker finds the stale reads this lets through.
    local_reads: bool,
    /// Taken when the node stops.
    member: tokio::sync::Mutex<Option<raftfs_metaserver::server::Member>>,
}

/// A change to a member's configuration.
pub type Tune = Arc<dyn Fn(&mut raftfs_metaserver::Config) + Send + Sync>;

/// How a node's member is set up beyond what `init` says.
#[derive(Clone, Default)]
pub struct NodeOptions {
    /// Debug builds only: serve reads from this node's own state (see `Running`).
    pub local_reads: bool,
    /// Changes the member's configuration before it starts (a simulation's timeouts, its
    /// debug switches).
    pub tune: Option<Tune>,
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("local_reads", &self.local_reads)
            .field("tune", &self.tune.is_some())
            .finish()
    }
}

impl NodeOptions {
    /// The options `maelstrom-node` takes from its environment ([`DEBUG_LOCAL_READS`]).
    pub fn from_env() -> Self {
        NodeOptions {
            local_reads: std::env::var_os(DEBUG_LOCAL_READS).is_some_and(|v| v == "1"),
            tune: None,
        }
    }
}

/// One Maelstrom node: reads messages, answers them.
#[derive(Debug, Clone)]
pub struct Node {
    wire: Wire,
    running: Arc<tokio::sync::OnceCell<Running>>,
    /// Why the member could not start, once `init` tried and failed.
    start_error: Arc<Mutex<Option<String>>>,
    /// Where members keep their data (one directory per node under it).
    data_root: std::path::PathBuf,
    options: NodeOptions,
}

impl Node {
    pub fn new(wire: Wire, data_root: std::path::PathBuf, options: NodeOptions) -> Self {
        Node {
            wire,
            running: Arc::default(),
            start_error: Arc::default(),
            data_root,
            options,
        }
    }

    /// Why the member could not start, if `init` failed to start it.
    pub fn start_error(&self) -> Option<String> {
        self.start_error.lock().ok().and_then(|g| g.clone())
    }

    /// Whether this node's member believes it is the active (a simulation's nemesis aims at
    /// it).
    pub fn believes_active(&self) -> bool {
        self.running
            .get()
            .is_some_and(|r| r.node.role() == raftfs_metaserver::observer::Role::Active)
    }

    /// Whether this node's Raft stopped on a fatal error (a failed write to its storage):
    /// the member must be restarted, as systemd would.
    pub fn failed(&self) -> bool {
        self.running
            .get()
            .is_some_and(|r| r.node.raft().metrics().borrow().running_state.is_err())
    }

    /// Stops the member (at the end of the input), so that its stores close cleanly.
    pub async fn stop(&self) {
        if let Some(running) = self.running.get()
            && let Some(member) = running.member.lock().await.take()
        {
            member.stop().await;
        }
    }

    /// Acts on one input line. Bad input is logged and changes nothing.
    pub fn handle_line(&self, line: &str) {
        let m: Message = match serde_json::from_str(line) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ignored a line that is not a message");
                return;
            }
        };
        if let Some(id) = m.body.get("in_reply_to").and_then(Value::as_u64) {
            if !self.wire.deliver(&m.src, id, m.body.clone()) {
                tracing::debug!(id, "a reply nobody waits for");
            }
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.dispatch(m).await });
    }

    async fn dispatch(&self, m: Message) {
        let kind = m.body.get("type").and_then(Value::as_str).unwrap_or("");
        // An error that answers nothing, or a request nobody can be answered about, gets no
        // answer: two nodes must not trade error replies forever.
        if kind == "error" || m.body.get("msg_id").is_none() {
            tracing::warn!(src = %m.src, %kind, "ignored a message that asks for no answer");
            return;
        }
        match kind {
            "init" => self.init(&m).await,
            "raft" => self.raft(&m).await,
            "read" | "write" | "cas" => self.client(&m).await,
            "forward" => self.forwarded(&m).await,
            "msync" => self.msync(&m).await,
            other => self
                .wire
                .error(&m, code::NOT_SUPPORTED, format!("type {other:?}")),
        }
    }

    async fn init(&self, m: &Message) {
        let parsed = (|| -> Result<(String, Vec<String>, Vec<String>), ProtocolError> {
            let me = field(&m.body, "node_id")?
                .as_str()
                .ok_or_else(|| ProtocolError::Field("node_id is not a string".into()))?
                .to_owned();
            let names: Vec<String> = serde_json::from_value(field(&m.body, "node_ids")?.clone())?;
            let observers: Vec<String> = match m.body.get("observer_ids") {
                Some(v) => serde_json::from_value(v.clone())?,
                None => Vec::new(),
            };
            Ok((me, names, observers))
        })();
        let (me, names, observers) = match parsed {
            Ok(p) => p,
            Err(e) => return self.wire.error(m, code::MALFORMED_REQUEST, e.to_string()),
        };
        let Some(index) = names.iter().position(|n| *n == me) else {
            return self
                .wire
                .error(m, code::MALFORMED_REQUEST, "node_id is not among node_ids");
        };
        // The nodes that join as observers (non-voters): `observer_ids`, an extension of the
        // protocol for the simulation.
        let observers: Vec<MemberId> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| observers.contains(n))
            .map(|(i, _)| MemberId(i as u64 + 1))
            .collect();
        let names = Arc::new(names);
        let observers = Arc::new(observers);
        let result = self
            .running
            .get_or_try_init(|| async {
                if let Ok(mut g) = self.wire.me.lock() {
                    *g = me.clone();
                }
                self.start(index, &me, names.clone(), observers.clone())
                    .await
            })
            .await;
        match result {
            // Once started, a node is the member it started as.
            Ok(running) if running.names.get(index) == Some(&me) && running.names == names => {
                self.wire.reply(m, json!({"type": "init_ok"}))
            }
            Ok(_) => self.wire.error(
                m,
                code::MALFORMED_REQUEST,
                "already initialized as another node",
            ),
            Err(e) => {
                if let Ok(mut g) = self.start_error.lock() {
                    *g = Some(e.to_string());
                }
                self.wire.error(m, code::CRASH, e.to_string())
            }
        }
    }

    async fn start(
        &self,
        index: usize,
        me: &str,
        names: Arc<Vec<String>>,
        observers: Arc<Vec<MemberId>>,
    ) -> Result<Running, NodeError> {
        let local_reads = self.options.local_reads;
        if local_reads && !cfg!(debug_assertions) {
            return Err(NodeError::DebugSwitch(DEBUG_LOCAL_READS));
        }
        let id = MemberId(index as u64 + 1);
        let observer = observers.contains(&id);
        let mut config = raftfs_metaserver::Config {
            node_id: id,
            advertise_addr: Some(me.to_owned()),
            data_dir: self.data_root.join(me),
            // The voters; an observer waits for the active to add it.
            initial_members: names
                .iter()
                .enumerate()
                .map(|(i, n)| raftfs_metaserver::config::Peer {
                    id: MemberId(i as u64 + 1),
                    addr: n.clone(),
                })
                .filter(|p| !observers.contains(&p.id))
                .collect(),
            bootstrap: !observer,
            ..raftfs_metaserver::Config::default()
        };
        if let Some(tune) = &self.options.tune {
            tune(&mut config);
        }
        let transport = MaelstromTransport {
            wire: self.wire.clone(),
            names: names.clone(),
        };
        let member = raftfs_metaserver::server::Member::start(&config, transport).await?;
        // Unique to this boot: a node restarted on the same data (or another node of a
        // simulation, in this process) must not meet earlier calls in the retry cache.
        let mut client_id = [0u8; 16];
        client_id[..8].copy_from_slice(&raftfs_runtime::simulation::random_u64().to_be_bytes());
        client_id[8..].copy_from_slice(&id.0.to_be_bytes());
        if !observers.is_empty() {
            tokio::spawn(add_observers(
                member.node().clone(),
                names.clone(),
                observers.clone(),
            ));
        }
        Ok(Running {
            node: member.node().clone(),
            names,
            client_id,
            calls: AtomicU64::new(1),
            local_reads,
            member: tokio::sync::Mutex::new(Some(member)),
        })
    }

    async fn raft(&self, m: &Message) {
        let Some(running) = self.running.get() else {
            return self
                .wire
                .error(m, code::TEMPORARILY_UNAVAILABLE, "not initialized");
        };
        let method = m
            .body
            .get("method")
            .and_then(Value::as_str)
            .and_then(method_of);
        let data = m
            .body
            .get("data")
            .and_then(Value::as_str)
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        let (Some(method), Some(data)) = (method, data) else {
            return self.wire.error(
                m,
                code::MALFORMED_REQUEST,
                "raft needs a method and base64 data",
            );
        };
        let from = running
            .names
            .iter()
            .position(|n| *n == m.src)
            .map(|i| MemberId(i as u64 + 1));
        if from.is_none() {
            return self.wire.error(
                m,
                code::MALFORMED_REQUEST,
                "raft from a node not in node_ids",
            );
        }
        match raftfs_metaserver::service::raft::receive(&running.node, method, &data, from).await {
            Ok(reply) => self.wire.reply(
                m,
                json!({"type": "raft_ok", "data": base64::engine::general_purpose::STANDARD.encode(reply)}),
            ),
            Err(status) => self.wire.error(m, code::CRASH, status.message()),
        }
    }

    /// A client's request: served here on the active, forwarded to it otherwise.
    async fn client(&self, m: &Message) {
        let Some(running) = self.running.get() else {
            return self
                .wire
                .error(m, code::TEMPORARILY_UNAVAILABLE, "not initialized");
        };
        if running.local_reads && m.body.get("type") == Some(&json!("read")) {
            let answer = serve(running, &m.body).await;
            return self.wire.reply(m, answer);
        }
        if m.body.get("type") == Some(&json!("read"))
            && running.node.role() == raftfs_metaserver::observer::Role::Observer
        {
            let answer = self.observer_read(running, &m.body).await;
            return self.wire.reply(m, answer);
        }
        let leader = running.node.raft().metrics().borrow().current_leader;
        match leader {
            Some(l) if l == running.node.id() => {
                let answer = serve(running, &m.body).await;
                self.wire.reply(m, answer);
            }
            Some(l) => {
                let Some(dest) = name_of(&running.names, l) else {
                    return self
                        .wire
                        .error(m, code::TEMPORARILY_UNAVAILABLE, "no active");
                };
                let body = json!({"type": "forward", "request": m.body});
                match self.wire.call(dest, body, CLIENT_TIMEOUT).await {
                    Some(reply) => match reply.get("reply") {
                        Some(answer) => self.wire.reply(m, answer.clone()),
                        None => self.wire.reply(m, reply),
                    },
                    None => self
                        .wire
                        .error(m, code::TIMEOUT, "the active did not answer"),
                }
            }
            None => self
                .wire
                .error(m, code::TEMPORARILY_UNAVAILABLE, "no active known"),
        }
    }

    /// A read on an observer, as an HDFS client reads from one after `msync`: the active's
    /// state ID first (a read-index round there), then this member's state once it has
    /// applied that far. Linearizable; without the wait (`debug-skip-state-id-wait`), not.
    async fn observer_read(&self, running: &Running, body: &Value) -> Value {
        let unavailable = |text: &str| json!({"type": "error", "code": code::TEMPORARILY_UNAVAILABLE, "text": text});
        let leader = running.node.raft().metrics().borrow().current_leader;
        let Some(dest) = leader.and_then(|l| name_of(&running.names, l)) else {
            return unavailable("no active known");
        };
        let reply = self
            .wire
            .call(dest, json!({"type": "msync"}), CLIENT_TIMEOUT)
            .await;
        let Some(state_id) = reply
            .as_ref()
            .filter(|r| r.get("type") == Some(&json!("msync_ok")))
            .and_then(|r| r.get("state_id"))
            .and_then(Value::as_u64)
        else {
            return unavailable("msync failed");
        };
        let read = operate_at(running, body, Some(state_id));
        match tokio::time::timeout(CLIENT_TIMEOUT, read).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(r)) => json!({"type": "error", "code": r.code, "text": r.text}),
            Err(_) => json!({"type": "error", "code": code::TIMEOUT, "text": "timed out"}),
        }
    }

    /// `msync` from an observer: the active's state ID after a read-index round.
    async fn msync(&self, m: &Message) {
        let Some(running) = self.running.get() else {
            return self
                .wire
                .error(m, code::TEMPORARILY_UNAVAILABLE, "not initialized");
        };
        let svc = NamespaceService::new(running.node.clone());
        let req = pb::MsyncRequest {
            header: header(running, None),
        };
        match svc.msync(as_process_user(req)).await {
            Ok(r) => {
                let state_id = r.into_inner().header.map_or(0, |h| h.state_id);
                self.wire
                    .reply(m, json!({"type": "msync_ok", "state_id": state_id}))
            }
            Err(s) => {
                let r = refusal(s);
                self.wire.error(m, r.code, r.text)
            }
        }
    }

    /// A request another node forwarded: served here if this is still the active.
    async fn forwarded(&self, m: &Message) {
        let Some(running) = self.running.get() else {
            return self
                .wire
                .error(m, code::TEMPORARILY_UNAVAILABLE, "not initialized");
        };
        let Some(request) = m.body.get("request") else {
            return self
                .wire
                .error(m, code::MALFORMED_REQUEST, "forward without a request");
        };
        let answer = serve(running, request).await;
        self.wire
            .reply(m, json!({"type": "forward_ok", "reply": answer}));
    }
}

/// Serves one `read`, `write` or `cas` on this member: the answer's body.
async fn serve(running: &Running, body: &Value) -> Value {
    // Refused here, before anything is proposed, "not the active" is definite; once the
    // operation is proposed it no longer is (see `mutate`).
    if body.get("type") != Some(&json!("read"))
        && let Err(e) = running.node.ensure_active_for_write()
    {
        return json!({"type": "error", "code": code::TEMPORARILY_UNAVAILABLE, "text": e.to_string()});
    }
    match tokio::time::timeout(CLIENT_TIMEOUT, operate(running, body)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(r)) => json!({"type": "error", "code": r.code, "text": r.text}),
        Err(_) => json!({"type": "error", "code": code::TIMEOUT, "text": "timed out"}),
    }
}

/// A Maelstrom error: its code, its text, and the service's kind of error behind it.
#[derive(Debug)]
struct Refusal {
    code: u64,
    text: String,
    kind: Option<pb::ErrorKind>,
}

impl Refusal {
    fn new(code: u64, text: impl Into<String>) -> Self {
        Refusal {
            code,
            text: text.into(),
            kind: None,
        }
    }
}

async fn operate(running: &Running, body: &Value) -> Result<Value, Refusal> {
    operate_at(running, body, None).await
}

/// [`operate`]; a read with `observer_state` is an observer's read of at least that state.
async fn operate_at(
    running: &Running,
    body: &Value,
    observer_state: Option<u64>,
) -> Result<Value, Refusal> {
    let malformed = |e: ProtocolError| Refusal::new(code::MALFORMED_REQUEST, e.to_string());
    let key = field(body, "key").map_err(malformed)?;
    // The key's JSON text, in hex: any key is a valid file name.
    let path = format!("{ROOT}/{}", hex(key.to_string().as_bytes()));
    let svc = NamespaceService::new(running.node.clone());
    match body.get("type").and_then(Value::as_str) {
        Some("read") if running.local_reads => {
            let path = raftfs_metaserver::namespace::NsPath::parse(&path)
                .map_err(|e| Refusal::new(code::MALFORMED_REQUEST, e.to_string()))?;
            let got = running
                .node
                .read_local(move |kv| {
                    raftfs_metaserver::namespace::tree::get_xattrs(kv, &path, &[XATTR.into()])
                })
                .await
                // Through the services' status map, as every other answer: only a missing
                // key is "does not exist", anything else is indefinite.
                .map_err(|e| refusal(tonic::Status::from(e)))?;
            let value = got
                .first()
                .and_then(|(_, v)| serde_json::from_slice::<Value>(v).ok())
                .ok_or_else(|| Refusal::new(code::KEY_DOES_NOT_EXIST, "no value"))?;
            Ok(json!({"type": "read_ok", "value": value}))
        }
        Some("read") => {
            let req = pb::GetXattrsRequest {
                header: header(running, observer_state),
                path,
                names: vec![XATTR.into()],
            };
            let r = svc
                .get_xattrs(as_process_user(req))
                .await
                .map_err(refusal)?
                .into_inner();
            let value = r
                .xattrs
                .first()
                .and_then(|x| serde_json::from_slice::<Value>(&x.value).ok())
                .ok_or_else(|| Refusal::new(code::KEY_DOES_NOT_EXIST, "no value"))?;
            Ok(json!({"type": "read_ok", "value": value}))
        }
        Some("write") => {
            let value = field(body, "value").map_err(malformed)?.to_string();
            let create = pb::mutate_request::Op::Create(pb::CreateOp {
                path: path.clone(),
                create_parents: true,
                lease_holder: "maelstrom".into(),
                ..Default::default()
            });
            match mutate(running, &svc, create).await {
                Ok(()) => {}
                Err(r) if r.kind == Some(pb::ErrorKind::AlreadyExists) => {}
                Err(e) => return Err(e),
            }
            let set = pb::mutate_request::Op::SetXattr(pb::SetXattrOp {
                path,
                name: XATTR.into(),
                value: value.into_bytes(),
                ..Default::default()
            });
            mutate(running, &svc, set).await?;
            Ok(json!({"type": "write_ok"}))
        }
        Some("cas") => {
            let from = field(body, "from").map_err(malformed)?.to_string();
            let to = field(body, "to").map_err(malformed)?.to_string();
            let set = pb::mutate_request::Op::SetXattr(pb::SetXattrOp {
                path,
                name: XATTR.into(),
                value: to.into_bytes(),
                expected: Some(from.into_bytes()),
                ..Default::default()
            });
            mutate(running, &svc, set).await?;
            Ok(json!({"type": "cas_ok"}))
        }
        other => Err(Refusal::new(code::NOT_SUPPORTED, format!("type {other:?}"))),
    }
}

async fn mutate(
    running: &Running,
    svc: &NamespaceService,
    op: pb::mutate_request::Op,
) -> Result<(), Refusal> {
    let req = pb::MutateRequest {
        header: header(running, None),
        op: Some(op),
    };
    svc.mutate(as_process_user(req))
        .await
        .map(|_| ())
        .map_err(|s| match refusal(s) {
            // Not definite for a mutation: an entry of a deposed active is truncated here,
            // its caller told "not the active", and yet it may be committed by another
            // member that holds it.
            r if r.kind == Some(pb::ErrorKind::NotActive) => Refusal {
                code: code::TIMEOUT,
                ..r
            },
            r => r,
        })
}

/// A request's header; `observer_state`: an observer's read of at least that state.
fn header(running: &Running, observer_state: Option<u64>) -> Option<pb::RequestHeader> {
    Some(pb::RequestHeader {
        client_id: running.client_id.to_vec(),
        call_id: running.calls.fetch_add(1, Ordering::Relaxed),
        last_seen_state_id: observer_state.unwrap_or(0),
        observer_read: observer_state.is_some(),
        ..Default::default()
    })
}

/// On the active, adds the observers the membership lacks (as learners); on the others,
/// nothing. Runs for the member's life, every half second.
async fn add_observers(node: MetaNode, names: Arc<Vec<String>>, observers: Arc<Vec<MemberId>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if node.raft().metrics().borrow().state == openraft::ServerState::Shutdown {
            return;
        }
        if node.role() != raftfs_metaserver::observer::Role::Active {
            continue;
        }
        let membership = node.raft().metrics().borrow().membership_config.clone();
        for id in observers.iter() {
            if membership.membership().get_node(id).is_some() {
                continue;
            }
            let Some(addr) = name_of(&names, *id) else {
                continue;
            };
            let node_meta = openraft::BasicNode {
                addr: addr.to_owned(),
            };
            if let Err(e) = node.raft().add_learner(*id, node_meta, false).await {
                tracing::debug!(error = %e, observer = %id, "adding an observer");
            }
        }
    }
}

/// A service's refusal as a Maelstrom error: definite only where the refusal is the answer
/// (no such key, another value) or nothing was proposed (a read on a member that is not the
/// active); a mutation's "not the active" is made indefinite by [`mutate`].
fn refusal(s: tonic::Status) -> Refusal {
    use pb::ErrorKind;
    let kind = pb::detail_of(&s).and_then(|d| ErrorKind::try_from(d.kind).ok());
    let code = match kind {
        Some(ErrorKind::NotFound | ErrorKind::XattrNotFound | ErrorKind::ParentNotFound) => {
            code::KEY_DOES_NOT_EXIST
        }
        Some(ErrorKind::XattrMismatch | ErrorKind::AlreadyExists) => code::PRECONDITION_FAILED,
        Some(ErrorKind::NotActive) => code::TEMPORARILY_UNAVAILABLE,
        _ => code::TIMEOUT,
    };
    Refusal {
        code,
        text: format!("{kind:?}: {}", s.message()),
        kind,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
