//! The Maelstrom node through its documented protocol: a driver that does what Maelstrom
//! does (spawns the nodes, sends `init`, routes every message by its `dest`, plays the
//! clients, cuts links), checks the protocol's answers, and runs a `lin-kv` workload under
//! partitions whose history the linearizability checker judges (registers that start absent,
//! `--initial nil`).

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// The nodes, and the network between them and the clients.
struct Maelstrom {
    names: Vec<String>,
    inboxes: HashMap<String, mpsc::UnboundedSender<String>>,
    /// Links cut (from, to): messages on them are dropped.
    cut: Arc<Mutex<BTreeSet<(String, String)>>>,
    waiters: Waiters,
    next_id: AtomicU64,
    dropped: Arc<AtomicU64>,
    children: Vec<tokio::process::Child>,
    _data: tempfile::TempDir,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Maelstrom {
    async fn spawn(count: usize) -> Maelstrom {
        Self::spawn_with(count, &[]).await
    }

    /// `count` nodes, each started with the environment variables `env`.
    async fn spawn_with(count: usize, env: &[(&str, &str)]) -> Maelstrom {
        let data = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
        let mut m = Maelstrom {
            names: names.clone(),
            inboxes: HashMap::new(),
            cut: Arc::default(),
            waiters: Arc::default(),
            next_id: AtomicU64::new(1),
            dropped: Arc::default(),
            children: Vec::new(),
            _data: data,
        };
        let (to_router, mut routed) = mpsc::unbounded_channel::<String>();
        for name in &names {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_maelstrom-node"))
                .env("RAFTFS_MAELSTROM_DIR", m._data.path())
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn maelstrom-node");
            let mut stdin = child.stdin.take().expect("stdin");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    if stdin
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            let out = to_router.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if out.send(line).is_err() {
                        break;
                    }
                }
            });
            m.inboxes.insert(name.clone(), tx);
            m.children.push(child);
        }
        // The router: node-to-node messages to their destination unless the link is cut,
        // replies to clients to whoever waits for them.
        let (inboxes, cut, waiters, dropped) = (
            m.inboxes.clone(),
            m.cut.clone(),
            m.waiters.clone(),
            m.dropped.clone(),
        );
        tokio::spawn(async move {
            while let Some(line) = routed.recv().await {
                let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                    panic!("a node wrote a line that is not a message: {line}");
                };
                let (src, dest) = (
                    msg["src"].as_str().unwrap_or_default().to_owned(),
                    msg["dest"].as_str().unwrap_or_default().to_owned(),
                );
                if let Some(inbox) = inboxes.get(&dest) {
                    if lock(&cut).contains(&(src, dest)) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let _ = inbox.send(line);
                    }
                } else if let Some(id) = msg["body"]["in_reply_to"].as_u64()
                    && let Some(tx) = lock(&waiters).remove(&id)
                {
                    let _ = tx.send(msg["body"].clone());
                }
            }
        });
        for name in &names {
            let reply = m
                .call(
                    "c0",
                    name,
                    json!({"type": "init", "node_id": name, "node_ids": names}),
                    Duration::from_secs(30),
                )
                .await
                .expect("init answered");
            assert_eq!(reply["type"], "init_ok", "{reply}");
        }
        m
    }

    /// Sends `body` from client `client` to node `node`, and waits up to `ttl` for the reply.
    async fn call(
        &self,
        client: &str,
        node: &str,
        mut body: Value,
        ttl: Duration,
    ) -> Option<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        body["msg_id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        let line = json!({"src": client, "dest": node, "body": body}).to_string();
        self.inboxes
            .get(node)
            .expect("node")
            .send(line)
            .expect("send");
        let reply = tokio::time::timeout(ttl, rx)
            .await
            .ok()
            .and_then(Result::ok);
        lock(&self.waiters).remove(&id);
        if let Some(r) = &reply {
            assert_eq!(r["in_reply_to"], json!(id), "{r}");
        }
        reply
    }

    /// Writes a raw line to a node, as a broken peer would.
    fn raw(&self, node: &str, line: &str) {
        self.inboxes
            .get(node)
            .expect("node")
            .send(line.to_owned())
            .expect("send");
    }

    /// Cuts every link between `a` and the other nodes.
    fn isolate(&self, a: &str) {
        let mut cut = lock(&self.cut);
        for b in self.names.iter().filter(|b| *b != a) {
            cut.insert((a.to_owned(), b.clone()));
            cut.insert((b.clone(), a.to_owned()));
        }
    }

    fn heal(&self) {
        lock(&self.cut).clear();
    }

    /// Retries `body` on every node until one answers other than "temporarily unavailable".
    async fn settled(&self, body: Value) -> Value {
        let start = Instant::now();
        loop {
            for n in &self.names {
                if let Some(r) = self
                    .call("c1", n, body.clone(), Duration::from_secs(5))
                    .await
                    && r["code"] != json!(11)
                {
                    return r;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no node serves {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_speaks_the_protocol() {
    let m = Maelstrom::spawn(3).await;
    let r = m.settled(json!({"type": "read", "key": 7})).await;
    assert_eq!(
        (r["type"].clone(), r["code"].clone()),
        (json!("error"), json!(20)),
        "{r}"
    );
    let r = m
        .settled(json!({"type": "write", "key": 7, "value": 3}))
        .await;
    assert_eq!(r["type"], "write_ok", "{r}");
    // Every node answers, the active itself or by forwarding to it.
    for n in &m.names {
        let start = Instant::now();
        let r = loop {
            let r = m
                .call(
                    "c2",
                    n,
                    json!({"type": "read", "key": 7}),
                    Duration::from_secs(5),
                )
                .await;
            let r = r.expect("a reply");
            // A node that has not heard from the active yet says so (definite), as it should.
            if r["code"] != json!(11) || start.elapsed() > Duration::from_secs(10) {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            (r["type"].clone(), r["value"].clone()),
            (json!("read_ok"), json!(3)),
            "{n}: {r}"
        );
    }
    let r = m
        .settled(json!({"type": "cas", "key": 7, "from": 4, "to": 5}))
        .await;
    assert_eq!(r["code"], json!(22), "precondition failed: {r}");
    let r = m
        .settled(json!({"type": "cas", "key": 8, "from": 3, "to": 5}))
        .await;
    assert_eq!(r["code"], json!(20), "key does not exist: {r}");
    let r = m
        .settled(json!({"type": "cas", "key": 7, "from": 3, "to": 5}))
        .await;
    assert_eq!(r["type"], "cas_ok", "{r}");
    let r = m.settled(json!({"type": "frobnicate"})).await;
    assert_eq!(r["code"], json!(10), "not supported: {r}");
    let r = m.settled(json!({"type": "write", "key": 9})).await;
    assert_eq!(r["code"], json!(12), "malformed: {r}");
    // Garbage and forged Raft messages change nothing; the node keeps serving.
    m.raw("n0", "this is not json");
    m.raw("n0", r#"{"src":"n1","dest":"n0","body":{"type":"raft","msg_id":1,"method":"vote","data":"AAAA"}}"#);
    m.raw(
        "n0",
        r#"{"src":"n9","dest":"n0","body":{"type":"raft","msg_id":2,"method":"vote","data":""}}"#,
    );
    let r = m.settled(json!({"type": "read", "key": 7})).await;
    assert_eq!(r["value"], json!(5), "{r}");
}

/// What a lin-kv run gave: the checker's search, operations acknowledged, messages the
/// partitions dropped, and the history.
struct Run {
    search: raftfs_jepsen::checker::linearizable::Search,
    ok: usize,
    dropped: u64,
    history: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lin_kv_run_under_partitions_is_linearizable() {
    let run = lin_kv(&[]).await;
    assert!(
        run.search.verdict.is_valid(),
        "{:?}\n{}",
        run.search.verdict,
        run.history
    );
    assert!(run.ok > 50, "only {} operations succeeded", run.ok);
    assert!(run.dropped > 0, "the partitions dropped nothing");
}

/// The same run with the debug switch that lets every node answer reads from its own state:
/// the nodes cut off by the partitions serve stale values, and the checker says so.
#[cfg(debug_assertions)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_under_partitions_are_caught() {
    let run = lin_kv(&[(raftfs_sim::maelstrom::DEBUG_LOCAL_READS, "1")]).await;
    assert!(
        run.search.verdict.is_invalid(),
        "stale reads went unnoticed: {:?}",
        run.search.verdict
    );
}

async fn lin_kv(env: &[(&str, &str)]) -> Run {
    const CLIENTS: usize = 5;
    let m = Arc::new(Maelstrom::spawn_with(3, env).await);
    m.settled(json!({"type": "read", "key": 0})).await;
    let history = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (m, history, stop) = (m.clone(), history.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut client = raftfs_sim::lin_kv::Client::new(c, CLIENTS, 3, 0);
            let mut ok = 0;
            while !stop.load(Ordering::Relaxed) {
                let op = client.next_operation();
                let node = m.names[client.draw(m.names.len() as u64) as usize].clone();
                lock(&history).push(client.invoke(&op, None));
                let reply = m
                    .call(
                        &format!("c{}", c + 1),
                        &node,
                        op.body.clone(),
                        Duration::from_secs(2),
                    )
                    .await;
                let (line, outcome) = client.complete(&op, reply.as_ref(), None);
                lock(&history).push(line);
                if outcome == raftfs_sim::lin_kv::Outcome::Ok {
                    ok += 1;
                }
            }
            ok
        }));
    }
    // The nemesis: each node in turn cut off from the others for 2 s.
    let started = Instant::now();
    for node in ["n0", "n1", "n2"] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        m.isolate(node);
        tokio::time::sleep(Duration::from_secs(2)).await;
        m.heal();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for c in clients {
        ok += c.await.expect("client");
    }
    let text = lock(&history).join("\n");
    let infos = text.matches(":type :info").count();
    let search = raftfs_jepsen::check_text_from(
        &text,
        raftfs_jepsen::ModelName::Kv,
        Duration::from_secs(60),
        &edn_format::Value::Nil,
    )
    .expect("a history");
    let dropped = m.dropped.load(Ordering::Relaxed);
    eprintln!(
        "{} s: {ok} operations ok, {infos} indeterminate, {dropped} messages dropped by the partitions; {:?} in {:?}",
        started.elapsed().as_secs(),
        search.verdict,
        search.cost
    );
    Run {
        search,
        ok,
        dropped,
        history: text,
    }
}
