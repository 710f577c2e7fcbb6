//! Wire security on a cluster of real processes started with `metactl local up --tls`
//! (DESIGN §9): callers the ports cannot authenticate are refused on every service; an
//! authenticated user cannot make node or Admin calls; a member cannot speak for another;
//! extra ports with their own policies serve the same services; the retry cache keeps one
//! principal's results apart from another's.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::LocalCluster;
use common::dial::{Dial, as_cert, assert_denied, channel, issue_user, kind_of, tls_dir};
use raftfs_proto as pb;
use raftfs_proto::ErrorKind;
use raftfs_proto::admin_client::AdminClient;
use raftfs_proto::block_data_client::BlockDataClient;
use raftfs_proto::block_servers_client::BlockServersClient;
use raftfs_proto::namespace_client::NamespaceClient;
use raftfs_proto::raft_client::RaftClient;

/// A CA of its own and a certificate from it for `name` (the superuser's name): trusted by
/// nobody in the cluster.
fn foreign_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "raftfs local cluster CA");
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = leaf.signed_by(&key, &issuer).expect("sign");
    let (c, k) = (dir.join("foreign.pem"), dir.join("foreign.key"));
    std::fs::write(&c, cert.pem()).expect("write");
    std::fs::write(&k, key.serialize_pem()).expect("write");
    (c, k)
}

/// One call on each service of a metaserver at `meta` and of a blockserver at `block`, each
/// `Ok` or the status it failed with.
async fn one_call_per_service(
    meta: &str,
    block: &str,
    dial: &Dial,
) -> Vec<(&'static str, Result<(), tonic::Status>)> {
    let ch = channel(meta, dial);
    fn ok<T>(r: Result<T, tonic::Status>) -> Result<(), tonic::Status> {
        r.map(|_| ())
    }
    vec![
        (
            "Namespace.Stat",
            ok(NamespaceClient::new(ch.clone())
                .stat(pb::StatRequest {
                    path: "/".into(),
                    ..Default::default()
                })
                .await),
        ),
        (
            "Admin.ClusterStatus",
            ok(AdminClient::new(ch.clone())
                .cluster_status(pb::ClusterStatusRequest {})
                .await),
        ),
        (
            "BlockServers.Heartbeat",
            ok(BlockServersClient::new(ch.clone())
                .heartbeat(pb::HeartbeatRequest {
                    node_id: 1,
                    ..Default::default()
                })
                .await),
        ),
        (
            "Raft.AppendEntries",
            ok(RaftClient::new(ch)
                .append_entries(pb::RaftMessage { data: Vec::new() })
                .await),
        ),
        (
            "BlockData.BlockInfo",
            ok(BlockDataClient::new(channel(block, dial))
                .block_info(pb::BlockInfoRequest {
                    block: Some(pb::BlockRef { group: 1, index: 0 }),
                    token: Vec::new(),
                })
                .await),
        ),
    ]
}

/// What an attack must not change: the members and their roles, the active and its term,
/// and the blockservers and their addresses.
async fn cluster_view(
    client: &raftfs_client::Client,
) -> (Vec<(u64, String)>, u64, u64, Vec<(u64, String)>) {
    let s = client.cluster_status().await.expect("status");
    let members = s
        .members
        .iter()
        .map(|m| (m.id.get(), format!("{:?} {}", m.role, m.addr)))
        .collect();
    let r = client
        .reconstruction_status()
        .await
        .expect("reconstruction status");
    let mut nodes: Vec<(u64, String)> = r
        .nodes
        .iter()
        .map(|n| (n.node.get(), format!("{} live={}", n.rack, n.live)))
        .collect();
    nodes.sort();
    (members, s.leader.get(), s.term, nodes)
}

/// A caller with no certificate, a certificate from another CA, or plain TCP, gets nothing
/// from any service of a TLS cluster, and a plain port that does not allow simple mode
/// refuses everyone; a plain simple-mode port beside it serves the same namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_a_tls_port_cannot_authenticate_are_refused_on_every_service() {
    let cluster = LocalCluster::up(3, &["--tls", "--observers", "0", "--blockservers", "3"]);
    let client = cluster.client();
    client
        .mkdir("/shared", true)
        .await
        .expect("mkdir over mTLS");
    let leader = client.cluster_status().await.expect("status").leader.get();
    let meta = cluster.addr_of(leader);
    let block = cluster.file().block[0].addr.clone();
    let ca = tls_dir(&cluster).join("ca.pem");
    let (fc, fk) = foreign_cert(cluster.path(), &raftfs_runtime::process_user());
    let strangers = [
        ("plain TCP", Dial::Plain),
        (
            "TLS without a client certificate",
            Dial::Tls {
                ca: ca.clone(),
                identity: None,
            },
        ),
        (
            "a certificate from another CA",
            Dial::Tls {
                ca: ca.clone(),
                identity: Some((fc, fk)),
            },
        ),
    ];
    for (who, dial) in &strangers {
        for (service, r) in one_call_per_service(&meta, &block, dial).await {
            assert!(r.is_err(), "{who}: {service} answered");
        }
    }
    // The superuser's own certificate reaches every service (the node calls are then refused
    // by authorization, not by the port).
    let root = as_cert(
        &cluster,
        &format!("users/{}", raftfs_runtime::process_user()),
    );
    for (service, r) in one_call_per_service(&meta, &block, &root).await {
        match service {
            "Namespace.Stat" | "Admin.ClusterStatus" => r.expect(service),
            // Reached, and refused for want of a block access token (DESIGN §9).
            "BlockData.BlockInfo" => {
                let s = r.expect_err("no token");
                assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s}");
                assert_eq!(kind_of(&s), Some(ErrorKind::InvalidBlockToken), "{s}");
            }
            _ => assert_denied(service, r),
        }
    }

    // Member 1 gets two more ports: plain without simple mode, plain with it.
    let closed = free_port();
    let open = free_port();
    cluster.stop(1);
    let config = cluster.path().join("meta-1/metaserver.toml");
    let mut c = raftfs_metaserver::config::Config::from_file(&config).expect("config");
    for (port, simple) in [(closed, false), (open, true)] {
        c.security.ports.push(raftfs_runtime::Port {
            addr: format!("127.0.0.1:{port}").parse().expect("addr"),
            policy: raftfs_core::identity::PortPolicy::Plain,
            simple,
        });
    }
    std::fs::write(&config, toml::to_string_pretty(&c).expect("toml")).expect("config");
    cluster.start(1);
    // Reads and writes go to the active: make it member 1, whose extra ports are tried.
    client
        .transfer_leader(raftfs_core::id::MemberId(1))
        .await
        .expect("member 1 becomes the active");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = channel(&format!("127.0.0.1:{open}"), &Dial::Plain);
        let up = NamespaceClient::new(c)
            .stat(pb::StatRequest {
                path: "/shared".into(),
                ..Default::default()
            })
            .await;
        match up {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("member 1's simple-mode port did not serve: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    for (service, r) in
        one_call_per_service(&format!("127.0.0.1:{closed}"), &block, &Dial::Plain).await
    {
        let s = r.expect_err(service);
        if service != "BlockData.BlockInfo" {
            assert_eq!(s.code(), tonic::Code::Unauthenticated, "{service}: {s}");
            assert_eq!(kind_of(&s), Some(ErrorKind::Unauthenticated), "{service}");
        }
    }
    // A server with certificates takes node calls from node certificates only, whatever
    // port they come in on: its simple-mode port serves users.
    for (service, r) in
        one_call_per_service(&format!("127.0.0.1:{open}"), &block, &Dial::Plain).await
    {
        match service {
            "Namespace.Stat" | "Admin.ClusterStatus" => r.expect(service),
            "BlockServers.Heartbeat" | "Raft.AppendEntries" => assert_denied(service, r),
            // The blockserver's only port is mtls.
            _ => assert!(r.is_err(), "{service} answered a plain caller"),
        }
    }
    // On the simple-mode port, a claimed name is all there is: the user is who it says.
    let simple = raftfs_client::ClientConfig {
        user: "carol".into(),
        ..raftfs_client::ClientConfig::new(vec![format!("127.0.0.1:{open}")])
    };
    let carol = raftfs_client::Client::new(simple).expect("client");
    let listed = carol.list("/").await.expect("list on the plain port");
    assert!(listed.iter().any(|e| e.name == "shared"), "{listed:?}");
}

/// A free loopback port (bound and released; `local start` binds it again at once).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// With a valid certificate, a user still cannot make node or Admin calls, and a node
/// cannot speak for another: membership changes, a forged TimeoutNow, registering a live
/// blockserver's id, corrupt reports, partial cells, throttles. Nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_do_not_grant_node_or_admin_calls() {
    let cluster = LocalCluster::up(3, &["--tls", "--observers", "0", "--blockservers", "3"]);
    let client = cluster.client();
    let before = cluster_view(&client).await;
    let leader = before.1;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let alice = issue_user(&cluster, "alice", &["staff"]);
    let active = channel(&cluster.addr_of(leader), &alice);

    assert_denied(
        "alice: Admin.RemoveMember",
        AdminClient::new(active.clone())
            .remove_member(pb::RemoveMemberRequest { id: follower })
            .await,
    );
    assert_denied(
        "alice: Admin.TransferLeader",
        AdminClient::new(active.clone())
            .transfer_leader(pb::TransferLeaderRequest { id: follower })
            .await,
    );
    assert_denied(
        "alice: Admin.Checkpoint",
        AdminClient::new(active.clone())
            .checkpoint(pb::CheckpointRequest {})
            .await,
    );
    let forged = pb::TimeoutNowRequest {
        term: 0,
        last_log_index: 0,
        leader: 0,
    };
    let at_follower = channel(&cluster.addr_of(follower), &alice);
    assert_denied(
        "alice: Raft.TimeoutNow{0,0}",
        RaftClient::new(at_follower).timeout_now(forged).await,
    );
    // A member's certificate speaks for that member only.
    let other = (1..=3)
        .find(|i| *i != leader && *i != follower)
        .expect("another member");
    let as_other = channel(
        &cluster.addr_of(follower),
        &as_cert(&cluster, &format!("member-{other}")),
    );
    assert_denied(
        "member-{other}: TimeoutNow in the active's name",
        RaftClient::new(as_other)
            .timeout_now(pb::TimeoutNowRequest {
                term: before.2,
                last_log_index: u64::MAX,
                leader,
            })
            .await,
    );
    let live = &cluster.file().block[0];
    let register = |node_id: u64| pb::RegisterRequest {
        node_id,
        addr: "127.0.0.1:1".into(),
        rack: "evil".into(),
        ..Default::default()
    };
    assert_denied(
        "alice: BlockServers.Register of a live id",
        BlockServersClient::new(active.clone())
            .register(register(live.id))
            .await,
    );
    let block2 = as_cert(&cluster, "blockserver-2");
    assert_denied(
        "blockserver-2: Register as blockserver 1",
        BlockServersClient::new(channel(&cluster.addr_of(leader), &block2))
            .register(register(1))
            .await,
    );
    assert_denied(
        "alice: ReportCorrupt",
        NamespaceClient::new(active.clone())
            .report_corrupt(pb::ReportCorruptRequest {
                group: 1,
                index: 0,
                node_id: live.id,
                reason: "forged".into(),
                ..Default::default()
            })
            .await,
    );
    assert_denied(
        "alice: SetThrottle",
        NamespaceClient::new(active.clone())
            .mutate(pb::MutateRequest {
                header: None,
                op: Some(pb::mutate_request::Op::SetThrottle(pb::SetThrottleOp {
                    node_bytes_per_sec: Some(1),
                    ..Default::default()
                })),
            })
            .await,
    );
    assert_denied(
        "alice: BlockData.Partial",
        BlockDataClient::new(channel(&live.addr, &alice))
            .partial(pb::PartialRequest {
                group: 1,
                policy: "RS-1-1-1073741824k".into(),
                group_length: 1 << 41,
                ..Default::default()
            })
            .await,
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        cluster_view(&client).await,
        before,
        "an attack changed the cluster"
    );

    // The superuser may.
    client
        .transfer_leader(raftfs_core::id::MemberId(follower))
        .await
        .expect("the superuser transfers leadership");
    assert_eq!(
        client.cluster_status().await.expect("status").leader.get(),
        follower
    );
}

/// The retry cache keeps each principal's results apart: a result recorded by alice under
/// the superuser's client id and next call id is not the answer to the superuser's call with
/// that id, which is applied as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_principal_cannot_pre_record_a_callers_result() {
    let cluster = LocalCluster::up(3, &["--tls", "--observers", "0"]);
    let client = cluster.client();
    client.mkdir("/a", true).await.expect("mkdir");
    let leader = client.cluster_status().await.expect("status").leader.get();
    let addr = cluster.addr_of(leader);
    let victim: [u8; 16] = rand::random();
    let call_id = 7;
    let alice = issue_user(&cluster, "alice", &[]);
    client.mkdir("/pub", true).await.expect("mkdir");
    client.set_permission("/pub", 0o777).await.expect("chmod");
    let root = as_cert(
        &cluster,
        &format!("users/{}", raftfs_runtime::process_user()),
    );
    let mutate = |dial: &Dial, op| {
        let ch = channel(&addr, dial);
        async move {
            NamespaceClient::new(ch)
                .mutate(pb::MutateRequest {
                    header: Some(pb::RequestHeader {
                        client_id: victim.to_vec(),
                        call_id,
                        ..Default::default()
                    }),
                    op: Some(op),
                })
                .await
        }
    };
    mutate(
        &alice,
        pb::mutate_request::Op::Mkdir(pb::MkdirOp {
            path: "/pub/planted".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("alice's own mkdir");
    mutate(
        &root,
        pb::mutate_request::Op::Rename(pb::RenameOp {
            src: "/a".into(),
            dst: "/b".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("the victim's rename, applied");
    assert!(
        client.stat("/b").await.is_ok(),
        "the rename was not applied"
    );
    assert!(
        client.stat("/a").await.is_err(),
        "the rename was not applied"
    );
}

/// `metactl --cluster DIR --user USER ARGS` on the TLS cluster: the command as that user,
/// authenticated by the certificate `local cert` issued to it.
fn as_user(cluster: &LocalCluster, user: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--user", user, "--timeout", "5s"];
    all.extend_from_slice(args);
    cluster.ctl(&all)
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} was allowed");
    assert!(err.contains("permission denied"), "{what}: {err}");
}

/// Two users through `metactl` on a TLS cluster, as HDFS's permission checker would have
/// it: neither can list, read, delete, rename, overwrite or chmod the other's private files;
/// the group and the sticky bit work as in POSIX; the superuser can do anything. Every
/// refusal leaves the tree as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_keep_to_their_own_files() {
    let cluster = LocalCluster::up(3, &["--tls", "--observers", "0", "--blockservers", "3"]);
    let root = raftfs_runtime::process_user();
    issue_user(&cluster, "alice", &["staff"]);
    issue_user(&cluster, "bob", &["staff"]);
    issue_user(&cluster, "carol", &[]);
    // The superuser lays out the tree.
    for args in [
        &["fs", "mkdir", "/home", "/tmp"][..],
        &["fs", "chmod", "1777", "/tmp"],
        &["fs", "mkdir", "/home/alice", "/home/bob"],
        &["fs", "chown", "alice:staff", "/home/alice"],
        &["fs", "chown", "bob:staff", "/home/bob"],
        &["fs", "chmod", "700", "/home/alice", "/home/bob"],
    ] {
        ok(as_user(&cluster, &root, args), &args.join(" "));
    }
    let local = cluster.path().join("secret.txt");
    std::fs::write(&local, b"alice's secret\n").expect("local file");
    let local = local.to_str().expect("utf8");
    ok(
        as_user(
            &cluster,
            "alice",
            &["fs", "put", local, "/home/alice/secret"],
        ),
        "alice puts her file",
    );
    ok(
        as_user(
            &cluster,
            "alice",
            &["fs", "chmod", "600", "/home/alice/secret"],
        ),
        "alice chmods her file",
    );
    let ls = ok(
        as_user(&cluster, "alice", &["fs", "ls", "/home/alice"]),
        "alice lists",
    );
    assert!(
        ls.contains("alice"),
        "the owner is the certificate's user: {ls}"
    );

    let client = cluster.client();
    let before = common::snapshot_tree(&client).await;
    for (what, args) in [
        ("bob lists alice's home", &["fs", "ls", "/home/alice"][..]),
        (
            "bob reads alice's file",
            &["fs", "cat", "/home/alice/secret"],
        ),
        (
            "bob deletes alice's file",
            &["fs", "rm", "/home/alice/secret"],
        ),
        (
            "bob deletes alice's home",
            &["fs", "rm", "-r", "/home/alice"],
        ),
        (
            "bob renames alice's file",
            &["fs", "mv", "/home/alice/secret", "/home/bob/mine"],
        ),
        (
            "bob overwrites alice's file",
            &["fs", "put", "-f", local, "/home/alice/secret"],
        ),
        (
            "bob chmods alice's home",
            &["fs", "chmod", "777", "/home/alice"],
        ),
        (
            "bob chowns his own home",
            &["fs", "chown", "carol", "/home/bob"],
        ),
        ("bob writes in /", &["fs", "mkdir", "/bobs"]),
    ] {
        refused(as_user(&cluster, "bob", args), what);
    }
    assert_eq!(
        common::snapshot_tree(&client).await,
        before,
        "a refusal changed the tree"
    );

    // The group: alice opens her home to staff.
    ok(
        as_user(&cluster, "alice", &["fs", "chmod", "750", "/home/alice"]),
        "chmod",
    );
    ok(
        as_user(
            &cluster,
            "alice",
            &["fs", "chmod", "640", "/home/alice/secret"],
        ),
        "chmod",
    );
    let text = ok(
        as_user(&cluster, "bob", &["fs", "cat", "/home/alice/secret"]),
        "bob (staff) reads",
    );
    assert_eq!(text, "alice's secret\n");
    refused(
        as_user(&cluster, "bob", &["fs", "rm", "/home/alice/secret"]),
        "bob deletes (read-only group)",
    );
    refused(
        as_user(&cluster, "carol", &["fs", "cat", "/home/alice/secret"]),
        "carol (not staff) reads",
    );
    refused(
        as_user(&cluster, "carol", &["fs", "ls", "/home/alice"]),
        "carol lists",
    );
    ok(
        as_user(
            &cluster,
            "alice",
            &["fs", "chgrp", "staff", "/home/alice/secret"],
        ),
        "chgrp to her group",
    );
    refused(
        as_user(
            &cluster,
            "alice",
            &["fs", "chgrp", "wheel", "/home/alice/secret"],
        ),
        "chgrp to a group she is not in",
    );

    // Searchable but not writable by others: write on the parent and on the file decide.
    ok(
        as_user(&cluster, "alice", &["fs", "chmod", "755", "/home/alice"]),
        "chmod",
    );
    ok(
        as_user(
            &cluster,
            "alice",
            &["fs", "chmod", "644", "/home/alice/secret"],
        ),
        "chmod",
    );
    let before = common::snapshot_tree(&client).await;
    for (what, args) in [
        (
            "bob creates in alice's home",
            &["fs", "put", local, "/home/alice/planted"][..],
        ),
        (
            "bob makes a directory there",
            &["fs", "mkdir", "/home/alice/d"],
        ),
        (
            "bob overwrites alice's file",
            &["fs", "put", "-f", local, "/home/alice/secret"],
        ),
        (
            "bob renames alice's file",
            &["fs", "mv", "/home/alice/secret", "/home/bob/mine"],
        ),
        (
            "bob deletes alice's file",
            &["fs", "rm", "/home/alice/secret"],
        ),
    ] {
        refused(as_user(&cluster, "bob", args), what);
    }
    assert_eq!(
        common::snapshot_tree(&client).await,
        before,
        "a refusal changed the tree"
    );

    // A writer's lease is its own: bob, knowing alice's holder name, can neither complete
    // nor extend the file she is writing.
    let leader = client.cluster_status().await.expect("status").leader.get();
    let at = |who: &Dial| channel(&cluster.addr_of(leader), who);
    let (alice_tls, bob_tls) = (
        as_cert(&cluster, "users/alice"),
        as_cert(&cluster, "users/bob"),
    );
    NamespaceClient::new(at(&alice_tls))
        .mutate(pb::MutateRequest {
            header: None,
            op: Some(pb::mutate_request::Op::Create(pb::CreateOp {
                path: "/home/alice/open".into(),
                lease_holder: "writer-1".into(),
                ..Default::default()
            })),
        })
        .await
        .expect("alice opens a file");
    let holder = client
        .stat("/home/alice/open")
        .await
        .expect("stat")
        .lease_holder;
    assert_eq!(
        holder, "alice/writer-1",
        "the lease is named under its writer"
    );
    for name in ["writer-1", holder.as_str()] {
        let r = NamespaceClient::new(at(&bob_tls))
            .mutate(pb::MutateRequest {
                header: None,
                op: Some(pb::mutate_request::Op::Complete(pb::CompleteOp {
                    path: "/home/alice/open".into(),
                    lease_holder: name.into(),
                    length: 0,
                })),
            })
            .await;
        let s = r.expect_err("bob completes alice's file");
        assert_eq!(kind_of(&s), Some(ErrorKind::LeaseConflict), "{s}");
    }
    let still = client.stat("/home/alice/open").await.expect("stat");
    assert_eq!(
        still.lease_holder, "alice/writer-1",
        "the file is still alice's to write"
    );

    // fsck lists every path below: the superuser's and the admin group's only. A summary
    // needs every directory below readable.
    refused(as_user(&cluster, "bob", &["fsck", "/"]), "bob runs fsck");
    ok(
        as_user(&cluster, &root, &["fsck", "/home"]),
        "the superuser runs fsck",
    );
    ok(
        as_user(&cluster, "alice", &["fs", "chmod", "700", "/home/alice"]),
        "chmod",
    );
    let mut bob_config = cluster.client_config();
    bob_config.tls = Some(
        raftfs_client::ClientTls::from_files(
            &tls_dir(&cluster).join("ca.pem"),
            Some(&tls_dir(&cluster).join("users/bob.pem")),
            Some(&tls_dir(&cluster).join("users/bob.key")),
        )
        .expect("bob's files"),
    );
    let bob = raftfs_client::Client::new(bob_config).expect("client");
    let e = bob
        .content_summary("/home")
        .await
        .expect_err("a summary across alice's home");
    assert!(e.to_string().contains("permission denied"), "{e}");
    bob.content_summary("/home/bob").await.expect("his own");

    // The sticky bit: anyone writes in /tmp, only owners remove.
    ok(
        as_user(&cluster, "alice", &["fs", "touch", "/tmp/a"]),
        "alice in /tmp",
    );
    ok(
        as_user(&cluster, "bob", &["fs", "touch", "/tmp/b"]),
        "bob in /tmp",
    );
    refused(
        as_user(&cluster, "bob", &["fs", "rm", "/tmp/a"]),
        "bob removes alice's /tmp/a",
    );
    refused(
        as_user(&cluster, "bob", &["fs", "mv", "/tmp/a", "/tmp/c"]),
        "bob renames alice's /tmp/a",
    );
    ok(
        as_user(&cluster, "alice", &["fs", "rm", "/tmp/a"]),
        "alice removes her own",
    );

    // The superuser passes every check.
    ok(
        as_user(&cluster, &root, &["fs", "cat", "/home/alice/secret"]),
        "the superuser reads",
    );
    ok(
        as_user(
            &cluster,
            &root,
            &["fs", "chown", "-R", "carol", "/home/alice"],
        ),
        "the superuser chowns",
    );
    ok(
        as_user(&cluster, &root, &["fs", "rm", "-r", "/home/alice"]),
        "the superuser deletes",
    );
}
