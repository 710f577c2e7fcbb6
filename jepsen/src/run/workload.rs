//! Workloads: what the client processes do, and how each outcome is recorded.
//!
//! - `register`: independent compare-and-set registers, one per key, each the extended
//!   attribute `user.value` of a file; `read`, `write` and `cas` (a `setxattr` with an
//!   expected value). Checked for linearizability per key. Written values are drawn from a
//!   wide range, so that a read of an old value cannot be explained away by an unrelated
//!   write of the same value; a `cas` expects the value its process last read.
//! - `rw-observer`: every process owns one key and writes 1, 2, 3, ... to it (on the active);
//!   every process reads any key (on observers in observer mode), sometimes after taking
//!   another process's state ID (`read-token`) or after an msync (`read-msync`), each told
//!   which value it must at least see. Checked for the session guarantees.
//! - `append`: `append` a unique value to a key's list (an extended attribute grown with the
//!   namespace's atomic `append_xattr`) or `read` the whole list, a few keys at a time, each
//!   retired after [`APPENDS_PER_KEY`] appends. Checked as Elle checks list-append histories.
//! - `namespace`: `mkdir`, `create`, `rename`, `delete` and `list` on a small tree under
//!   [`NAMESPACE_BASE`] (three names, two levels: many collisions), recorded with what each
//!   answered (`"ok"`, an error name, a listing). Checked for linearizability against the
//!   namespace's own sequential semantics, and at the end for the tree's invariants.
//!
//! Outcomes follow Jepsen: a mutation refused by the server is `:fail` (it did not happen);
//! one without an answer is `:info` (it may have happened, now or later); a read that got no
//! answer is `:fail` (it changed nothing).

use std::collections::HashMap;
use std::sync::Mutex;

use edn_format::Value;
use raftfs_client::{Client, ClientError, CreateOptions, ErrorKind, StateToken};
use rand::Rng;
use rand::rngs::StdRng;

use super::recorder::pair;
use crate::history::OpType;

/// The attribute that holds a register's value.
pub const XATTR: &str = "user.value";

/// The attribute that holds an `append` key's list (`v1,v2,...,`).
pub const LIST_XATTR: &str = "user.list";

/// A list as read: the values of `user.list` (none when the attribute is absent).
fn list_value(attrs: &[(String, Vec<u8>)]) -> Value {
    let Some((_, raw)) = attrs.iter().find(|(n, _)| n == LIST_XATTR) else {
        return Value::Vector(Vec::new());
    };
    Value::Vector(
        String::from_utf8_lossy(raw)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_or_else(|_| Value::from(s), Value::Integer))
            .collect(),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Which workload a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadName {
    Register,
    RwObserver,
    Namespace,
    Append,
}

/// Appends a key takes before a fresh one replaces it (lists stay short and cheap to read).
pub const APPENDS_PER_KEY: u32 = 64;

/// Keys of the `append` workload in use at once.
const APPEND_WINDOW: usize = 3;

/// The directory the `namespace` workload works in.
pub const NAMESPACE_BASE: &str = "/jepsen/ns";

/// The names the `namespace` workload uses at each level.
const NAMES: [&str; 3] = ["a", "b", "c"];

/// One operation to perform.
#[derive(Debug, Clone)]
pub enum Op {
    Read {
        key: i64,
    },
    Write {
        key: i64,
        value: i64,
    },
    Cas {
        key: i64,
        old: i64,
        new: i64,
    },
    /// A read after `observe(token)`: must see at least `at_least`.
    ReadToken {
        key: i64,
        at_least: i64,
        token: StateToken,
    },
    /// A read after an msync begun once the write of `at_least` had completed.
    ReadMsync {
        key: i64,
        at_least: i64,
    },
    /// After the run, on the active.
    FinalRead {
        key: i64,
    },
    /// `namespace`: a mutation (`mkdir`, `create`, `delete` of `path`; `rename` to `dst`).
    Ns {
        f: &'static str,
        path: String,
        dst: Option<String>,
    },
    /// `namespace`: a listing of `dir`.
    List {
        dir: String,
    },
    /// `append`: adds `value` to `key`'s list.
    Append {
        key: i64,
        value: i64,
    },
    /// `append`: reads `key`'s list.
    ReadList {
        key: i64,
    },
}

impl Op {
    /// `:f` in the history.
    pub fn f(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Cas { .. } => "cas",
            Op::ReadToken { .. } => "read-token",
            Op::ReadMsync { .. } => "read-msync",
            Op::FinalRead { .. } => "final-read",
            Op::Ns { f, .. } => f,
            Op::List { .. } => "list",
            Op::Append { .. } => "append",
            Op::ReadList { .. } => "read",
        }
    }

    /// The invocation's `:value`.
    pub fn invoke_value(&self) -> Value {
        match *self {
            Op::Read { key } | Op::FinalRead { key } => pair(key, None),
            Op::Write { key, value } => pair(key, Some(value)),
            Op::Cas { key, old, new } => Value::Vector(vec![
                Value::Integer(key),
                Value::Vector(vec![Value::Integer(old), Value::Integer(new)]),
            ]),
            Op::ReadToken { key, at_least, .. } | Op::ReadMsync { key, at_least } => {
                pair(key, Some(at_least))
            }
            Op::Ns { .. } | Op::List { .. } => Value::Vector(vec![self.ns_argument(), Value::Nil]),
            Op::Append { key, value } => pair(key, Some(value)),
            Op::ReadList { key } => pair(key, None),
        }
    }

    /// `namespace`: the operation's argument (a path, or `[src dst]`).
    fn ns_argument(&self) -> Value {
        match self {
            Op::Ns {
                path, dst: Some(d), ..
            } => Value::Vector(vec![Value::from(path.as_str()), Value::from(d.as_str())]),
            Op::Ns { path, .. } => Value::from(path.as_str()),
            Op::List { dir } => Value::from(dir.as_str()),
            _ => Value::Nil,
        }
    }

    fn key(&self) -> i64 {
        match *self {
            Op::Read { key }
            | Op::FinalRead { key }
            | Op::Write { key, .. }
            | Op::Cas { key, .. }
            | Op::ReadToken { key, .. }
            | Op::ReadMsync { key, .. } => key,
            Op::Ns { .. } | Op::List { .. } => 0,
            Op::Append { key, .. } | Op::ReadList { key } => key,
        }
    }

    fn is_mutation(&self) -> bool {
        matches!(
            self,
            Op::Write { .. } | Op::Cas { .. } | Op::Ns { .. } | Op::Append { .. }
        )
    }
}

/// The file whose attribute is key `key`.
pub fn key_path(workload: WorkloadName, key: i64) -> String {
    match workload {
        WorkloadName::Register => format!("/jepsen/register/k{key}"),
        WorkloadName::RwObserver => format!("{}/k{key}", rw_bucket(key)),
        WorkloadName::Namespace => NAMESPACE_BASE.to_owned(),
        WorkloadName::Append => format!("/jepsen/append/k{key}"),
    }
}

/// `rw-observer`'s keys are spread over this many directories: in a federated run each is
/// a mount point of its own nameservice's (`setup`), so that every process reads and writes
/// both nameservices.
pub const RW_BUCKETS: i64 = 2;

/// The directory of `rw-observer` key `key`.
pub fn rw_bucket(key: i64) -> String {
    format!("/jepsen/rw/b{}", key.rem_euclid(RW_BUCKETS))
}

/// What the workers share: in `rw-observer`, the latest completed write of each key with the
/// writer's state ID (what processes hand to each other); in `append`, the keys in use.
#[derive(Debug, Default)]
pub struct Mailbox {
    latest: Mutex<HashMap<i64, (i64, StateToken)>>,
    lists: Mutex<AppendKeys>,
    /// `rw-observer`: keys `0..rw_keys` are in use (a worker moves to a fresh key after a
    /// write of unknown outcome, which may still land after its next one).
    rw_keys: std::sync::atomic::AtomicI64,
}

/// The `append` workload's keys: a window of keys in use, each retired after
/// [`APPENDS_PER_KEY`] appends (up to `limit` keys, the files made at set-up), and the next
/// value (unique across the run).
#[derive(Debug, Default)]
struct AppendKeys {
    active: Vec<i64>,
    appends: HashMap<i64, u32>,
    next_key: i64,
    next_value: i64,
    limit: i64,
}

impl Mailbox {
    /// The shared state of a run over `keys` keys: `rw-observer`'s initial keys (one per
    /// worker), or the `append` key window's limit (other workloads ignore it).
    pub fn new(keys: i64) -> Self {
        let limit = keys;
        let m = Mailbox::default();
        m.rw_keys
            .store(limit.max(1), std::sync::atomic::Ordering::Relaxed);
        {
            let mut k = lock(&m.lists);
            let first = (APPEND_WINDOW as i64).min(limit.max(1));
            k.active = (0..first).collect();
            k.next_key = first;
            k.next_value = 1;
            k.limit = limit.max(1);
        }
        m
    }

    /// `rw-observer`: a fresh key for a worker, whose file this worker created. (A key whose
    /// creation failed is left unused; reading it finds no file, which reads as 0.)
    pub async fn fresh_rw_key(&self, client: &Client) -> Result<i64, ClientError> {
        let key = self
            .rw_keys
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        client
            .create(
                &key_path(WorkloadName::RwObserver, key),
                &CreateOptions::default(),
            )
            .await
            .map(|_| key)
    }

    /// `rw-observer`: keys in use.
    pub fn rw_keys(&self) -> i64 {
        self.rw_keys.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every `append` key used so far.
    pub fn append_keys_used(&self) -> i64 {
        lock(&self.lists).next_key
    }

    fn append_op(&self, rng: &mut StdRng) -> Op {
        let mut k = lock(&self.lists);
        if k.active.is_empty() {
            k.active.push(0);
        }
        let slot = rng.random_range(0..k.active.len());
        let key = k.active[slot];
        if rng.random_bool(0.5) {
            return Op::ReadList { key };
        }
        let value = k.next_value;
        k.next_value += 1;
        let n = k.appends.entry(key).or_default();
        *n += 1;
        if *n >= APPENDS_PER_KEY && k.next_key < k.limit {
            k.active[slot] = k.next_key;
            k.next_key += 1;
        }
        Op::Append { key, value }
    }

    fn post(&self, key: i64, value: i64, token: StateToken) {
        let mut m = match self.latest.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let e = m.entry(key).or_default();
        if value > e.0 {
            *e = (value, token);
        }
    }

    fn pick(&self, rng: &mut StdRng, not: i64) -> Option<(i64, i64, StateToken)> {
        let m = match self.latest.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let keys: Vec<_> = m.iter().filter(|(k, _)| **k != not).collect();
        if keys.is_empty() {
            return None;
        }
        let (k, (v, t)) = keys[rng.random_range(0..keys.len())];
        Some((*k, *v, t.clone()))
    }
}

/// Per-worker state of a workload.
#[derive(Debug)]
pub struct WorkerState {
    /// `rw-observer`: the key this worker writes, and the next value to write.
    pub own_key: i64,
    pub next_value: i64,
    /// `rw-observer`: the next operation reads back the write just made, at once (no pause
    /// between them: the read-your-own-writes case where an observer is most likely behind).
    pub read_back: bool,
    /// `register`: the value this worker last read of each key (what its `cas` expects).
    pub last_read: HashMap<i64, i64>,
}

impl WorkerState {
    pub fn new(own_key: i64) -> Self {
        Self {
            own_key,
            next_value: 1,
            read_back: false,
            last_read: HashMap::new(),
        }
    }

    /// Learns from a completed operation.
    pub fn completed(&mut self, op: &Op, kind: OpType, value: &Value) {
        if let (Op::Read { key }, OpType::Ok, Value::Vector(kv)) = (op, kind, value)
            && let Some(Value::Integer(v)) = kv.get(1)
        {
            self.last_read.insert(*key, *v);
        }
    }
}

/// Values written to registers are drawn from `0..REGISTER_VALUES`.
const REGISTER_VALUES: i64 = 1_000_000;

/// Chooses the next operation.
pub fn generate(
    workload: WorkloadName,
    keys: i64,
    rng: &mut StdRng,
    state: &mut WorkerState,
    mailbox: &Mailbox,
) -> Op {
    let keys = match workload {
        WorkloadName::RwObserver => mailbox.rw_keys(),
        _ => keys,
    };
    let key = rng.random_range(0..keys.max(1));
    match workload {
        WorkloadName::Register => match rng.random_range(0..4) {
            0 | 1 => Op::Read { key },
            2 => Op::Write {
                key,
                value: rng.random_range(1..REGISTER_VALUES),
            },
            _ => Op::Cas {
                key,
                old: state.last_read.get(&key).copied().unwrap_or(0),
                new: rng.random_range(1..REGISTER_VALUES),
            },
        },
        WorkloadName::Append => mailbox.append_op(rng),
        WorkloadName::Namespace => {
            let path = |rng: &mut StdRng| {
                let mut p = NAMESPACE_BASE.to_owned();
                for _ in 0..rng.random_range(1..=2) {
                    p.push('/');
                    p.push_str(NAMES[rng.random_range(0..NAMES.len())]);
                }
                p
            };
            match rng.random_range(0..20) {
                0..=4 => Op::Ns {
                    f: "mkdir",
                    path: path(rng),
                    dst: None,
                },
                5..=8 => Op::Ns {
                    f: "create",
                    path: path(rng),
                    dst: None,
                },
                9..=11 => Op::Ns {
                    f: "rename",
                    path: path(rng),
                    dst: Some(path(rng)),
                },
                12..=13 => Op::Ns {
                    f: "delete",
                    path: path(rng),
                    dst: None,
                },
                _ => Op::List {
                    dir: namespace_dirs()[rng.random_range(0..=NAMES.len())].clone(),
                },
            }
        }
        WorkloadName::RwObserver => {
            if std::mem::take(&mut state.read_back) {
                return Op::Read { key: state.own_key };
            }
            let roll = rng.random_range(0..10);
            let handed = if roll >= 8 {
                mailbox.pick(rng, state.own_key)
            } else {
                None
            };
            match (roll, handed) {
                (0..=2, _) => {
                    let value = state.next_value;
                    state.next_value += 1;
                    state.read_back = rng.random_bool(0.5);
                    Op::Write {
                        key: state.own_key,
                        value,
                    }
                }
                (8, Some((key, at_least, token))) => Op::ReadToken {
                    key,
                    at_least,
                    token,
                },
                (9, Some((key, at_least, _))) => Op::ReadMsync { key, at_least },
                _ => Op::Read { key },
            }
        }
    }
}

/// The directories a `namespace` listing looks at: the base and each first-level name.
pub fn namespace_dirs() -> Vec<String> {
    std::iter::once(NAMESPACE_BASE.to_owned())
        .chain(NAMES.iter().map(|n| format!("{NAMESPACE_BASE}/{n}")))
        .collect()
}

/// A refusal's name, as the namespace model names its errors.
fn refusal(e: &ClientError) -> Option<String> {
    match e {
        ClientError::Refused { kind, .. } => Some(format!("{kind:?}")),
        _ => None,
    }
}

/// `namespace`: performs `op`; the answer is part of the result (a refusal is an answer).
async fn apply_ns(client: &Client, op: &Op) -> Result<Value, ClientError> {
    let answer = match op {
        Op::List { dir } => match client.list(dir).await {
            Ok(entries) => Value::Vector(
                entries
                    .into_iter()
                    .map(|e| Value::from(e.name.as_str()))
                    .collect(),
            ),
            Err(e) => Value::from(refusal(&e).ok_or(e)?.as_str()),
        },
        Op::Ns { f, path, dst } => {
            let r = match (*f, dst) {
                ("mkdir", _) => client.mkdir(path, false).await.map(|_| ()),
                ("create", _) => client
                    .create(path, &CreateOptions::default())
                    .await
                    .map(|_| ()),
                ("delete", _) => client.delete(path, true).await,
                ("rename", Some(d)) => client.rename(path, d, false).await.map(|_| ()),
                _ => return Err(ClientError::Config(format!("unknown operation {f}"))),
            };
            match r {
                Ok(()) => Value::from("ok"),
                Err(e) => Value::from(refusal(&e).ok_or(e)?.as_str()),
            }
        }
        _ => return Err(ClientError::Config("not a namespace operation".into())),
    };
    Ok(Value::Vector(vec![op.ns_argument(), answer]))
}

fn parse_value(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

async fn read_key(client: &Client, workload: WorkloadName, key: i64) -> Result<Value, ClientError> {
    let got = match client
        .get_xattrs(&key_path(workload, key), &[XATTR.to_owned()])
        .await
    {
        // An `rw-observer` key whose file was never made, or never written, reads as 0.
        Err(e)
            if workload == WorkloadName::RwObserver
                && (e.is(ErrorKind::NotFound) || e.is(ErrorKind::XattrNotFound)) =>
        {
            return Ok(Value::Nil);
        }
        other => other?,
    };
    Ok(match got.iter().find(|(n, _)| n == XATTR) {
        Some((_, v)) => parse_value(v).map_or(Value::Nil, Value::Integer),
        None => Value::Nil,
    })
}

/// Performs `op`; returns the completion's type and value, and the error if it did not
/// succeed.
pub async fn apply(
    client: &Client,
    workload: WorkloadName,
    op: &Op,
    mailbox: &Mailbox,
) -> (OpType, Value, Option<String>) {
    let path = key_path(workload, op.key());
    let result: Result<Value, ClientError> = match *op {
        Op::Ns { .. } | Op::List { .. } => apply_ns(client, op).await,
        Op::Append { key, value } => client
            .append_xattr(&path, LIST_XATTR, format!("{value},").as_bytes())
            .await
            .map(|()| pair(key, Some(value))),
        Op::ReadList { key } => client
            .get_xattrs(&path, &[])
            .await
            .map(|attrs| Value::Vector(vec![Value::Integer(key), list_value(&attrs)])),
        Op::Read { key } | Op::FinalRead { key } => read_key(client, workload, key)
            .await
            .map(|v| Value::Vector(vec![Value::Integer(key), v])),
        Op::Write { key, value } => client
            .set_xattr(&path, XATTR, value.to_string().as_bytes(), None)
            .await
            .map(|()| {
                mailbox.post(key, value, client.token());
                op.invoke_value()
            }),
        Op::Cas { old, new, .. } => client
            .set_xattr(
                &path,
                XATTR,
                new.to_string().as_bytes(),
                Some(Some(old.to_string().as_bytes())),
            )
            .await
            .map(|()| op.invoke_value()),
        Op::ReadToken { key, ref token, .. } => {
            client.observe_token(token);
            read_key(client, workload, key)
                .await
                .map(|v| Value::Vector(vec![Value::Integer(key), v]))
        }
        Op::ReadMsync { key, .. } => match client.msync().await {
            Ok(_) => read_key(client, workload, key)
                .await
                .map(|v| Value::Vector(vec![Value::Integer(key), v])),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(v) => (OpType::Ok, v, None),
        Err(e @ (ClientError::Refused { .. } | ClientError::Config(_))) => {
            (OpType::Fail, op.invoke_value(), Some(e.to_string()))
        }
        Err(e) if !op.is_mutation() => (OpType::Fail, op.invoke_value(), Some(e.to_string())),
        Err(e) => (OpType::Info, op.invoke_value(), Some(e.to_string())),
    }
}

/// A federated run's mount table, made through the routers before `setup`: every path is
/// `nameservices[0]`'s, except `rw-observer`'s key directories, spread over all of them (each
/// process then reads and writes every nameservice, through every router).
pub async fn federate(client: &Client, nameservices: &[String]) -> anyhow::Result<()> {
    let Some(first) = nameservices.first() else {
        return Ok(());
    };
    client.set_default_nameservice(Some(first)).await?;
    for b in 0..RW_BUCKETS {
        let ns = &nameservices[b as usize % nameservices.len()];
        if ns != first {
            let dir = rw_bucket(b);
            match client.mount_add(&dir, ns, &dir).await {
                Ok(()) => {}
                Err(e) if e.is(ErrorKind::AlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Creates the files of `keys` keys (registers start at 0, as the model does).
pub async fn setup(client: &Client, workload: WorkloadName, keys: i64) -> anyhow::Result<()> {
    if workload == WorkloadName::Namespace {
        client.mkdir(NAMESPACE_BASE, true).await?;
        return Ok(());
    }
    let dirs: Vec<String> = match workload {
        WorkloadName::RwObserver => (0..RW_BUCKETS).map(rw_bucket).collect(),
        _ => {
            let path = key_path(workload, 0);
            vec![
                path.rsplit_once('/')
                    .map_or("/jepsen", |(d, _)| d)
                    .to_owned(),
            ]
        }
    };
    for dir in dirs {
        client.mkdir(&dir, true).await?;
    }
    for key in 0..keys {
        let path = key_path(workload, key);
        match client.create(&path, &CreateOptions::default()).await {
            Ok(_) => {}
            Err(e) if e.is(ErrorKind::AlreadyExists) => {}
            Err(e) => return Err(e.into()),
        }
        if workload == WorkloadName::Register {
            client.set_xattr(&path, XATTR, b"0", None).await?;
        }
    }
    Ok(())
}
