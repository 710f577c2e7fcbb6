//! `cargo bench --bench apply`: the state machine's CPU per create and per complete, on one
//! thread, against a real RocksDB state machine and without Raft, gRPC or fsync around it.
//!
//! Why it exists: `bench/meta-vs-etcd.sh` shows that on the 2-core machine a 3-voter cluster
//! is held back by CPU per operation, not by fsync (a build without the leader's fsync, and
//! one without any, ran no faster), and every member applies every create. This isolates that
//! one share so a change to the namespace or the retry cache can be measured in seconds, with
//! far less noise than a cluster run.
//!
//! The load is `loadgen meta --op create`'s: files `/loadgen/create-1/d{i / 1000}/f{i}`, each
//! from one of 64 clients with its own lease holder and retry-cache key, 32 to an entry (what
//! the active's proposer packs at 64 clients). Then the writers close their files, oldest
//! first. Printed: µs per operation for the whole apply call (namespace logic, retry cache,
//! the `WriteBatch`), per round of `CREATES` operations, so that a cost that grows with what
//! came before shows as rising rounds. It did: closing a writer's n-th file once stepped over
//! the delete tombstones of the n-1 it had closed (118, 546, 1,222 µs per complete in rounds
//! 1–3), until the lease record counted its files.

use std::time::Instant;

use raftfs_metaserver::journal::retry_cache::RETRY_TTL_MS;
use raftfs_metaserver::journal::state_machine::StateMachine;
use raftfs_metaserver::journal::{Batch, CallId, ClientId, Proposal};
use raftfs_metaserver::namespace::{ApplyCtx, NsPath, Op};

const CLIENTS: u64 = 64;
const PER_ENTRY: u64 = 32;
const FILES_PER_DIR: u64 = 1000;
const CREATES: u64 = 100_000;
const ROUNDS: u64 = 4;
const BLOCK_SIZE: u64 = 128 << 20;

fn path(s: &str) -> NsPath {
    NsPath::parse(s).expect("a valid bench path")
}

fn client(c: u64) -> ClientId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&c.to_be_bytes());
    ClientId(id)
}

fn mkdir(dir: &str, c: u64, call_id: u64) -> Proposal {
    Proposal {
        client: client(c),
        call_id: CallId(call_id),
        op: Op::Mkdir {
            path: path(dir),
            parents: true,
            permission: 0o755,
            owner: "loadgen".into(),
            group: None,
        },
        access: None,
    }
}

/// A proposal about file `i` from its client: `op` gets the file's path and the client's
/// lease holder.
fn on_file(i: u64, call_id: u64, op: impl FnOnce(NsPath, String) -> Op) -> Proposal {
    let c = i % CLIENTS;
    Proposal {
        client: client(c),
        call_id: CallId(call_id),
        op: op(
            path(&format!("/loadgen/create-1/d{}/f{i}", i / FILES_PER_DIR)),
            format!("raftfs-client-{c:032x}"),
        ),
        access: None,
    }
}

fn create(i: u64, call_id: u64) -> Proposal {
    on_file(i, call_id, |path, holder| Op::Create {
        path,
        overwrite: false,
        create_parents: false,
        permission: 0o644,
        owner: "loadgen".into(),
        group: None,
        policy: None,
        holder,
        block_size: BLOCK_SIZE,
    })
}

fn complete(i: u64, call_id: u64) -> Proposal {
    on_file(i, call_id, |path, holder| Op::Complete {
        path,
        holder,
        length: 0,
    })
}

/// The state machine under test, and the log index, leader clock and call id it has reached.
struct Bench {
    sm: StateMachine,
    index: u64,
    now_ms: u64,
    call_id: u64,
}

impl Bench {
    fn apply(&mut self, proposals: Vec<Proposal>) {
        self.now_ms += 4;
        let batch = Batch {
            ctx: ApplyCtx {
                now_ms: self.now_ms,
                lease_ms: 60_000,
            },
            proposals,
        };
        let out = self.sm.apply_for_test(self.index, batch).expect("apply");
        if let Some(Err(e)) = out.iter().find(|r| r.is_err()) {
            panic!("an operation failed: {e}");
        }
        self.index += 1;
    }

    /// Applies `ROUNDS` rounds of `CREATES` operations, `PER_ENTRY` to an entry,
    /// `op(i, call_id)` for files `first..`, and prints µs per operation for each round.
    fn phase(&mut self, what: &str, first: u64, op: fn(u64, u64) -> Proposal) {
        println!("{:<8}{:>12}{:>16}", "round", what, "us per op");
        let mut i = first;
        for round in 1..=ROUNDS {
            let start = Instant::now();
            for _ in 0..CREATES / PER_ENTRY {
                let proposals = (0..PER_ENTRY)
                    .map(|_| {
                        self.call_id += 1;
                        i += 1;
                        op(i - 1, self.call_id)
                    })
                    .collect();
                self.apply(proposals);
            }
            let n = CREATES / PER_ENTRY * PER_ENTRY;
            let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("{round:<8}{n:>12}{us:>16.1}");
        }
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut bench = Bench {
        sm: StateMachine::open(dir.path(), Default::default()).expect("open the state machine"),
        index: 1,
        now_ms: 1_800_000_000_000,
        call_id: 0,
    };
    let files = ROUNDS * CREATES;
    for d in 0..(2 * files).div_ceil(FILES_PER_DIR) {
        bench.call_id += 1;
        bench.apply(vec![mkdir(
            &format!("/loadgen/create-1/d{d}"),
            0,
            bench.call_id,
        )]);
    }
    println!(
        "state-machine apply: {PER_ENTRY} operations per entry from {CLIENTS} clients, {FILES_PER_DIR} files per directory"
    );
    bench.phase("creates", 0, create);
    // Every writer closes its files, oldest first, as writers do.
    bench.phase("completes", 0, complete);
    // Past the retry cache's expiry time: from now on every entry also evicts old results.
    bench.now_ms += RETRY_TTL_MS;
    bench.phase("creates, evicting", files, create);
}
