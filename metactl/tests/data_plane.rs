//! The data plane's security on a cluster of real processes (`metactl local up --tls`,
//! DESIGN §9): every read, write and `Partial` needs a block access token that covers it,
//! each refusal changes nothing and is counted in the blockserver's `/metrics`; blocks
//! planted ahead of the allocation counter never reach a reader and are collected.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use common::dial::{Dial, as_cert, channel, issue_user, kind_of};
use common::{LocalCluster, content, get_file, put_file};
use raftfs_client::model::LocatedGroup;
use raftfs_client::{Client, CreateOptions};
use raftfs_core::identity::PortPolicy;
use raftfs_proto as pb;
use raftfs_proto::ErrorKind;
use raftfs_proto::block_data_client::BlockDataClient;

/// Lifetime of the test clusters' tokens: short, so that a token expires within the test.
const LIFETIME_SECS: u64 = 5;

async fn put(c: &Client, path: &str, data: &[u8]) {
    put_file(c, path, "REPLICATED-3", data).await;
}

async fn group_of(c: &Client, path: &str) -> LocatedGroup {
    let page = c.get_blocks(path, 0, 0, 0).await.expect("blocks");
    page.groups.into_iter().next().expect("a group")
}

/// The refusal of a data call for its token, naming `why`.
fn assert_refused<T: Debug>(what: &str, r: Result<T, tonic::Status>, why: &str) {
    match r {
        Err(s) => {
            assert_eq!(s.code(), tonic::Code::PermissionDenied, "{what}: {s}");
            assert_eq!(
                kind_of(&s),
                Some(ErrorKind::InvalidBlockToken),
                "{what}: {s}"
            );
            assert!(s.message().contains(why), "{what}: {s}");
        }
        Ok(v) => panic!("{what}: served ({v:?})"),
    }
}

fn read_req(group: u64, token: &[u8]) -> pb::ReadBlockRequest {
    pb::ReadBlockRequest {
        block: Some(pb::BlockRef { group, index: 0 }),
        offset: 0,
        length: 0,
        token: token.to_vec(),
        checksums: false,
    }
}

/// A read's bytes, or the status that refused it (at the call or in the stream).
async fn read(
    data: &mut BlockDataClient<tonic::transport::Channel>,
    req: pb::ReadBlockRequest,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = data.read_block(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        out.extend_from_slice(&m.data);
    }
    Ok(out)
}

/// A whole block written in one message; the length acknowledged, or the refusal.
async fn write(
    data: &mut BlockDataClient<tonic::transport::Channel>,
    group: u64,
    index: u32,
    bytes: &[u8],
    token: &[u8],
) -> Result<u64, tonic::Status> {
    let msg = pb::WriteBlockRequest {
        block: Some(pb::BlockRef { group, index }),
        data: bytes.to_vec(),
        finalize: true,
        token: token.to_vec(),
    };
    Ok(data
        .write_block(tokio_stream::iter(vec![msg]))
        .await?
        .into_inner()
        .length)
}

/// A `Partial` request that passes validation (RS-3-2, the rack's one source block 1 on
/// `addr`), for `group`, with `token`.
fn partial_req(group: u64, addr: &str, token: &[u8]) -> pb::PartialRequest {
    pb::PartialRequest {
        group,
        policy: "RS-3-2-1024k".into(),
        group_length: 3 << 20,
        lost: 0,
        offset: 0,
        all: vec![1, 2, 3],
        local: vec![pb::BlockLocation {
            index: 1,
            node_id: 1,
            addr: addr.to_owned(),
            rack: "r1".into(),
        }],
        token: token.to_vec(),
    }
}

/// `raftfs_block_token_refusals_total` of blockserver `id`, by (method, reason).
fn refusals(cluster: &LocalCluster, id: u64) -> BTreeMap<(String, String), u64> {
    let addr = common::block_metrics_addr(cluster, id).expect("metrics address");
    let text = common::http_get(&addr, "/metrics").expect("metrics");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("raftfs_block_token_refusals_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let n = value.trim().parse().unwrap_or(0);
        out.insert((label("method"), label("reason")), n);
    }
    out
}

/// Gives blockserver 1 a second port, `tls` (encrypted, a client certificate optional),
/// beside its `mtls` one; returns the new port's address.
fn add_tls_port(cluster: &LocalCluster) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let d = cluster.dir_arg();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(common::metactl(&[
        "local",
        "stop-block",
        "--dir",
        &d,
        "--id",
        "1",
    ]));
    let path = cluster.path().join("block-1/blockserver.toml");
    let mut config = raftfs_blockserver::Config::from_file(&path).expect("config");
    config.security.ports.push(raftfs_runtime::Port {
        addr: addr.parse().expect("addr"),
        policy: PortPolicy::Tls,
        simple: false,
    });
    std::fs::write(&path, toml::to_string_pretty(&config).expect("toml")).expect("write");
    ok(common::metactl(&[
        "local",
        "start-block",
        "--dir",
        &d,
        "--id",
        "1",
    ]));
    addr
}

/// Reads, writes and `Partial`s without a token, with one for another group, with an
/// expired one and with one earned over a more protected port than the one it is presented
/// on: each refused with `INVALID_BLOCK_TOKEN`, nothing written, every refusal counted by
/// reason; the same calls with the right token are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_calls_need_a_token_that_covers_them() {
    let lifetime = LIFETIME_SECS.to_string();
    let cluster = LocalCluster::up(
        3,
        &[
            "--tls",
            "--observers",
            "0",
            "--blockservers",
            "3",
            "--block-token-lifetime-secs",
            &lifetime,
        ],
    );
    let tls_port = add_tls_port(&cluster);
    let client = cluster.client();
    let (a_bytes, b_bytes) = (content(100_000, 1), content(70_000, 2));
    put(&client, "/a", &a_bytes).await;
    put(&client, "/b", &b_bytes).await;
    let a = group_of(&client, "/a").await;
    let b = group_of(&client, "/b").await;
    // A writer's token for a new group of a third file (write and read), on servers 1 and 2.
    let two = CreateOptions {
        storage_policy: "REPLICATED-2".into(),
        ..CreateOptions::default()
    };
    client.create("/c", &two).await.expect("create");
    let outsider = raftfs_core::id::BlockServerId(3);
    let (_, c) = client
        .add_block("/c", 0, &[outsider])
        .await
        .expect("add block");
    assert!(c.targets.iter().all(|t| t.node != outsider));
    let block = cluster.file().block[0].clone();
    assert_eq!(block.id, 1);
    let root = as_cert(
        &cluster,
        &format!("users/{}", raftfs_runtime::process_user()),
    );
    let peer = as_cert(&cluster, "blockserver-2");
    let mut data = BlockDataClient::new(channel(&block.addr, &root));
    let mut on_tls = BlockDataClient::new(channel(&tls_port, &root));
    let mut as_peer = BlockDataClient::new(channel(&block.addr, &peer));
    let mut peer_on_tls = BlockDataClient::new(channel(&tls_port, &peer));
    let (ga, gc) = (a.id.get(), c.id.get());

    // The right token is served: what follows is refused for its token alone.
    let served = read(&mut data, read_req(ga, &a.token.0)).await;
    assert_eq!(served.expect("a read with its token"), a_bytes);

    assert_refused(
        "read, no token",
        read(&mut data, read_req(ga, &[])).await,
        "no block token",
    );
    assert_refused(
        "read, another group's token",
        read(&mut data, read_req(ga, &b.token.0)).await,
        "another block",
    );
    assert_refused(
        "read, an mtls token on a tls port",
        read(&mut on_tls, read_req(ga, &a.token.0)).await,
        "was issued on a",
    );
    assert_refused(
        "write, no token",
        write(&mut data, gc, 0, b"planted", &[]).await,
        "no block token",
    );
    assert_refused(
        "write, another group's token",
        write(&mut data, ga, 1, b"planted", &c.token.0).await,
        "another block",
    );
    assert_refused(
        "write, a read token of the same group",
        write(&mut data, ga, 1, b"planted", &a.token.0).await,
        "does not allow Write",
    );
    let third = cluster.file().block[2].clone();
    assert_eq!(third.id, outsider.get());
    assert_refused(
        "write, on a server that is not one of the group's targets",
        write(
            &mut BlockDataClient::new(channel(&third.addr, &root)),
            gc,
            0,
            b"planted",
            &c.token.0,
        )
        .await,
        "does not allow writes on blockserver 3",
    );
    let bob = issue_user(&cluster, "bob", &[]);
    let mut as_bob = BlockDataClient::new(channel(&block.addr, &bob));
    assert_refused(
        "read, another user's token",
        read(&mut as_bob, read_req(ga, &a.token.0)).await,
        "another holder",
    );
    assert_refused(
        "write, an mtls token on a tls port",
        write(&mut on_tls, gc, 0, b"planted", &c.token.0).await,
        "was issued on a",
    );
    let partial = |g, t: &[u8]| partial_req(g, &block.addr, t);
    assert_refused(
        "partial, no token",
        as_peer.partial(partial(ga, &[])).await,
        "no block token",
    );
    assert_refused(
        "partial, another group's token",
        as_peer.partial(partial(ga, &b.token.0)).await,
        "another block",
    );
    assert_refused(
        "partial, an mtls token on a tls port",
        peer_on_tls.partial(partial(ga, &a.token.0)).await,
        "was issued on a",
    );
    assert_refused(
        "partial, a user's token presented by a blockserver",
        as_peer.partial(partial(ga, &a.token.0)).await,
        "another holder",
    );

    tokio::time::sleep(Duration::from_secs(LIFETIME_SECS + 1)).await;
    assert_refused(
        "read, expired",
        read(&mut data, read_req(ga, &a.token.0)).await,
        "expired",
    );
    assert_refused(
        "write, expired",
        write(&mut data, gc, 0, b"planted", &c.token.0).await,
        "expired",
    );
    assert_refused(
        "partial, expired",
        as_peer.partial(partial(ga, &a.token.0)).await,
        "expired",
    );

    // Nothing was written; the files read back whole (with fresh tokens).
    let files = common::finalized_files(std::path::Path::new(&block.data_dir));
    let c_name = format!("blk_{gc:016x}_0");
    assert!(
        !files.iter().any(|f| f.to_string_lossy().contains(&c_name)),
        "a refused write left {c_name}"
    );
    assert_eq!(get_file(&client, "/a").await, a_bytes);
    assert_eq!(get_file(&client, "/b").await, b_bytes);

    let counted = refusals(&cluster, 1);
    let n = |method: &str, reason: &str| {
        counted
            .get(&(method.to_owned(), reason.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    for (method, reason, want) in [
        ("read_block", "missing", 1),
        ("read_block", "wrong_block", 1),
        ("read_block", "wrong_port", 1),
        ("read_block", "expired", 1),
        ("read_block", "wrong_holder", 1),
        ("write_block", "missing", 1),
        ("write_block", "wrong_block", 1),
        ("write_block", "wrong_mode", 1),
        ("write_block", "wrong_port", 1),
        ("write_block", "expired", 1),
        ("partial", "missing", 1),
        ("partial", "wrong_block", 1),
        ("partial", "wrong_port", 1),
        ("partial", "wrong_holder", 1),
        ("partial", "expired", 1),
    ] {
        assert_eq!(n(method, reason), want, "{method} {reason}: {counted:?}");
    }
    let on_third = refusals(&cluster, 3);
    assert_eq!(
        on_third.get(&("write_block".to_owned(), "wrong_server".to_owned())),
        Some(&1),
        "{on_third:?}"
    );
}

/// The planting attack of issue 17: an authenticated user writes blocks ahead for the next
/// group ids (with no token, and with the token of her own file's group). None is taken; a
/// block planted on a blockserver's disk by other means (before tokens existed) is deleted
/// by the active's sweep; the superuser's file, written next and read 50 times, always reads
/// back as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_planted_for_future_groups_never_reach_a_reader() {
    let cluster = LocalCluster::up(3, &["--tls", "--observers", "0", "--blockservers", "3"]);
    let client = cluster.client();
    client.mkdir("/tmp", true).await.expect("mkdir");
    client.set_permission("/tmp", 0o1777).await.expect("chmod");
    let alice = issue_user(&cluster, "alice", &[]);
    let alice_client = {
        let Dial::Tls {
            ca,
            identity: Some((cert, key)),
        } = &alice
        else {
            panic!("a user certificate");
        };
        let mut config = cluster.client_config();
        config.tls = Some(
            raftfs_client::ClientTls::from_files(ca, Some(cert), Some(key)).expect("her files"),
        );
        Client::new(config).expect("alice's client")
    };
    alice_client
        .create("/tmp/mine", &CreateOptions::default())
        .await
        .expect("alice creates a file");
    let (_, own) = alice_client
        .add_block("/tmp/mine", 0, &[])
        .await
        .expect("alice's group");
    let planted = content(4096, 0xEE);
    let blocks = cluster.file().block.clone();
    for b in &blocks {
        let mut data = BlockDataClient::new(channel(&b.addr, &alice));
        for ahead in 1..=5u64 {
            let g = own.id.get() + ahead;
            for index in [0u32, 40] {
                assert_refused(
                    "planting, no token",
                    write(&mut data, g, index, &planted, &[]).await,
                    "no block token",
                );
                assert_refused(
                    "planting with her own group's token",
                    write(&mut data, g, index, &planted, &own.token.0).await,
                    "another block",
                );
            }
        }
    }
    // A block planted by other means: a file put in blockserver 2's finalized directory,
    // for the group after alice's (allocated next), as a pre-token binary would have taken.
    let next = own.id.get() + 1;
    let victim = &blocks[1];
    let (dir, name) = plant_file(&victim.data_dir, next, 0, &planted);
    let d = cluster.dir_arg();
    let id = victim.id.to_string();
    let out = common::metactl(&["local", "stop-block", "--dir", &d, "--id", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::metactl(&["local", "start-block", "--dir", &d, "--id", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Reported at registration, a block of a group never allocated: the sweep deletes it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dir.join(&name).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the planted block {name} was never collected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let file = content(300_000, 7);
    put(&client, "/victim", &file).await;
    for i in 0..50 {
        assert_eq!(get_file(&client, "/victim").await, file, "read {i}");
    }
}

/// Writes a finalized block (data and checksum files) straight into a blockserver's volume,
/// in the store's own format; returns the directory and the data file's name.
fn plant_file(
    data_dir: &str,
    group: u64,
    index: u32,
    bytes: &[u8],
) -> (std::path::PathBuf, String) {
    let dir = std::path::Path::new(data_dir).join("finalized");
    let name = format!("blk_{group:016x}_{index}");
    std::fs::write(dir.join(&name), bytes).expect("plant data");
    // The checksum file: `RFCK`, version 1, the chunk size, a CRC32C per 64 KiB chunk.
    let mut sums = b"RFCK\x01".to_vec();
    sums.extend_from_slice(&(64u32 << 10).to_le_bytes());
    for c in bytes.chunks(64 << 10) {
        sums.extend_from_slice(&crc32c::crc32c(c).to_le_bytes());
    }
    std::fs::write(dir.join(format!("{name}.crc")), sums).expect("plant checksums");
    (dir, name)
}

/// `raftfs_block_fenced_orders_total{kind}` summed over the blockservers.
fn fenced(cluster: &LocalCluster, kind: &str) -> u64 {
    let prefix = format!("raftfs_block_fenced_orders_total{{kind=\"{kind}\"}} ");
    cluster
        .file()
        .block
        .iter()
        .filter_map(|b| common::block_metrics_addr(cluster, b.id))
        .filter_map(|addr| common::http_get(&addr, "/metrics").ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
                .collect::<Vec<u64>>()
        })
        .sum()
}

/// Blockservers take deletions only from the active of the highest term they have seen: an
/// active paused with deletions queued for silent blockservers, deposed meanwhile and then
/// resumed, hands them out with its old term (or as a standby), and they are ignored and
/// counted; the files that remain read back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_actives_queued_deletions_are_ignored() {
    let cluster = LocalCluster::up(
        3,
        &[
            "--observers",
            "0",
            "--blockservers",
            "3",
            "--dead-after-secs",
            "120",
        ],
    );
    let client = cluster.client();
    put(&client, "/gone", &content(50_000, 3)).await;
    let keep = content(60_000, 4);
    put(&client, "/keep", &keep).await;
    // Every blockserver reports what it holds (incremental reports within a heartbeat).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old = client.cluster_status().await.expect("status").leader.get();
    for b in 1..=3 {
        cluster.pause_block(b, true);
    }
    client.delete("/gone", false).await.expect("delete");
    // The active reclaims the group, and its garbage sweep queues the deletion of the
    // blocks for the blockservers, which are silent: the orders wait in its registry.
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.pause(old);
    for b in 1..=3 {
        cluster.pause_block(b, false);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = client.cluster_status().await
            && s.leader.get() != old
            && s.leader.get() != 0
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no new active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every blockserver hears the new term from the new active and the other standby.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fenced(&cluster, "delete"),
        0,
        "nothing fenced before the resume"
    );
    cluster.resume(old);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fenced(&cluster, "delete") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the deposed active's deletions were never refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get_file(&client, "/keep").await, keep);
}
