//! The WebHDFS gateway (`metactl gateway`, crate `raftfs-gateway`) through the real Python
//! clients HDFS users have: HdfsCLI and fsspec, from the package registry
//! (`scripts/install-deps.sh` puts them in a virtual environment), on a local cluster with a
//! replicated and an RS-6-3 directory. Files the clients write read back byte-identical
//! through the client crate (what `metactl fs get` uses), and files the client crate wrote
//! read back identical through the clients; errors come back as the exceptions those clients
//! raise for HDFS. The checks on the Python side are in `tests/webhdfs/clients.py`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{LocalCluster, content, get_file, put_file};
use sha2::{Digest, Sha256};

/// The Python with HdfsCLI and fsspec: `RAFTFS_PYTHON`, or the virtual environment
/// `scripts/install-deps.sh` makes.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("RAFTFS_PYTHON") {
        return p.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let p = cache.join("raftfs/python/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-deps.sh (it installs HdfsCLI and fsspec there)",
        p.display()
    );
    p
}

/// Runs a Python script of `tests/webhdfs/` with `args`; its last line of output, as JSON.
fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/webhdfs")
        .join(script);
    let out = Command::new(python())
        .arg(path)
        .args(args)
        .output()
        .expect("run the Python clients");
    assert!(
        out.status.success(),
        "the Python clients failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("the clients' report")
}

/// A gateway process, stopped when dropped.
struct Gateway {
    child: Child,
    url: String,
}

impl Gateway {
    fn start(cluster: &LocalCluster) -> Gateway {
        // Small pages, so that LISTSTATUS_BATCH pages and LISTSTATUS goes on across pages.
        Self::spawn(cluster, &[], &["--ls-limit", "3"], "http")
    }

    /// `swebhdfs`: HTTPS with the certificate of the cluster's user `gateway`.
    fn start_https(cluster: &LocalCluster) -> Gateway {
        let tls = cluster.path().join("tls");
        let file = |p: &str| tls.join(p).to_str().expect("utf8").to_owned();
        let identity = [
            "--ca".to_owned(),
            file("ca.pem"),
            "--cert".to_owned(),
            file("users/gateway.pem"),
            "--key".to_owned(),
            file("users/gateway.key"),
        ];
        let identity: Vec<&str> = identity.iter().map(String::as_str).collect();
        Self::spawn(cluster, &identity, &["--https"], "https")
    }

    fn spawn(cluster: &LocalCluster, global: &[&str], args: &[&str], scheme: &str) -> Gateway {
        let mut child = Command::new(common::metactl_bin())
            .args(["--cluster", &cluster.dir_arg()])
            .args(global)
            .args(["gateway", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gateway");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the gateway's address");
        Gateway {
            child,
            url: format!("{scheme}://{}", line.trim()),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdfscli_and_fsspec_work_through_the_gateway_on_replicated_and_rs_files() {
    let cluster = LocalCluster::up(
        1,
        &["--observers", "0", "--blockservers", "9", "--racks", "3"],
    );
    let dirs = ["/user/alice/rep", "/user/alice/rs"];
    for args in [
        &["fs", "mkdir", "-p", dirs[0], dirs[1]][..],
        &["ec", "set-policy", dirs[1], "RS-6-3-1024k"],
        &["fs", "chown", "-R", "alice", "/user/alice"],
    ] {
        let out = cluster.ctl(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    // What the client crate writes, for the Python clients to read back.
    let client = cluster.client();
    let mut from_rust = serde_json::Map::new();
    for (i, d) in dirs.iter().enumerate() {
        let data = content(4 * 1024 * 1024 + 4321, 40 + i as u8);
        let path = format!("{d}/from-rust.bin");
        put_file(&client, &path, "", &data).await;
        from_rust.insert(
            path,
            serde_json::json!({
                "sha256": sha256(&data),
                "crc32c": format!("{:08x}", crc32c::crc32c(&data)),
            }),
        );
    }

    let gateway = Gateway::start(&cluster);
    let scratch = tempfile::tempdir().expect("scratch");
    let spec = serde_json::json!({ "dirs": dirs, "from_rust": from_rust });
    let spec = spec.to_string();
    let report = run_python(
        "clients.py",
        &[
            gateway.url.as_ref(),
            scratch.path().as_os_str(),
            spec.as_ref(),
        ],
    );

    // What they wrote, read back through the client crate, with its owner and policy.
    let written = report["written"].as_object().expect("written");
    assert_eq!(written.len(), 2 * dirs.len(), "{report}");
    for (path, want) in written {
        let bytes = get_file(&client, path).await;
        assert_eq!(Some(sha256(&bytes).as_str()), want.as_str(), "{path}");
        let st = client.stat(path).await.expect("stat");
        assert_eq!(st.owner, "alice", "{path}");
        let policy = if path.starts_with(dirs[1]) {
            "RS-6-3-1024k"
        } else {
            "REPLICATED-3"
        };
        assert_eq!(st.storage_policy, policy, "{path}");
    }
}

/// `swebhdfs`: on a cluster where every port is mutual TLS, the gateway serves HTTPS, knows
/// each caller by its client certificate, and acts for it under the cluster's proxy rule for
/// the gateway (`gateway` may act for alice and bob, in group staff only). What a user writes
/// is its own, its certificate's groups count, and users the rule does not name are refused
/// by the cluster. The rule itself is checked first through the client crate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swebhdfs_knows_users_by_their_certificates_and_acts_for_them_under_the_proxy_rule() {
    let cluster = LocalCluster::up(
        1,
        &[
            "--observers",
            "0",
            "--blockservers",
            "3",
            "--tls",
            "--proxy-user",
            "gateway:alice,bob:staff",
        ],
    );
    let cert = |args: &[&str]| {
        let mut all = vec!["local", "cert", "--dir"];
        let dir = cluster.dir_arg();
        all.push(&dir);
        all.extend_from_slice(args);
        let out = common::metactl(&all);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    cert(&[
        "--user",
        "gateway",
        "--host",
        "127.0.0.1",
        "--host",
        "localhost",
    ]);
    cert(&["--user", "alice", "--group", "staff"]);
    cert(&["--user", "bob"]);
    cert(&["--user", "carol"]);
    cert(&["--user", "dave", "--group", "ops"]);

    let admin = cluster.client();
    for (dir, owner, group, mode) in [
        ("/user/alice", "alice", "users", 0o755),
        ("/user/bob", "bob", "users", 0o755),
        ("/staff", "root", "staff", 0o775),
    ] {
        admin.mkdir(dir, true).await.expect("mkdir");
        admin.set_owner(dir, owner, group).await.expect("chown");
        admin.set_permission(dir, mode).await.expect("chmod");
    }

    // The rule, through the client crate: the gateway's certificate acting for a user.
    let tls = cluster.path().join("tls");
    let as_client = |cert: &str, act_as: Option<raftfs_core::identity::User>| {
        let mut c = cluster.client_config();
        c.tls = Some(
            raftfs_client::ClientTls::from_files(
                &tls.join("ca.pem"),
                Some(&tls.join(format!("users/{cert}.pem"))),
                Some(&tls.join(format!("users/{cert}.key"))),
            )
            .expect("certificate"),
        );
        c.act_as = act_as;
        raftfs_client::Client::new(c).expect("client")
    };
    let user = |name: &str, groups: &[&str]| raftfs_core::identity::User {
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    let for_alice = as_client("gateway", Some(user("alice", &["staff"])));
    put_file(&for_alice, "/staff/by-rule.bin", "", b"through the rule").await;
    let st = admin.stat("/staff/by-rule.bin").await.expect("stat");
    assert_eq!(st.owner, "alice");
    // Not named by the rule; a group the rule does not allow; a user without a rule: refused,
    // before anything is done.
    for (client, what) in [
        (as_client("gateway", Some(user("carol", &[]))), "carol"),
        (
            as_client("gateway", Some(user("alice", &["ops"]))),
            "group ops",
        ),
        (as_client("alice", Some(user("bob", &[]))), "alice for bob"),
    ] {
        let e = client.mkdir("/staff/refused", false).await.expect_err(what);
        assert!(
            matches!(e.kind(), Some(raftfs_client::ErrorKind::PermissionDenied)),
            "{what}: {e}"
        );
    }
    assert!(admin.stat("/staff/refused").await.is_err());
    // The gateway in its own name: a user like any other, not in group staff.
    let gateway_itself = as_client("gateway", None);
    assert!(gateway_itself.mkdir("/staff/g", false).await.is_err());

    // A gateway with a certificate does not serve plain HTTP, where callers only name
    // themselves: it would act for whoever they say they are.
    let dir = cluster.dir_arg();
    let file = |p: &str| tls.join(p).to_str().expect("utf8").to_owned();
    let (ca, gw_cert, gw_key) = (
        file("ca.pem"),
        file("users/gateway.pem"),
        file("users/gateway.key"),
    );
    let plain = common::metactl(&[
        "--cluster",
        &dir,
        "--ca",
        &ca,
        "--cert",
        &gw_cert,
        "--key",
        &gw_key,
        "gateway",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!plain.status.success(), "{plain:?}");
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("--https"),
        "{plain:?}"
    );

    // swebhdfs through HdfsCLI and fsspec.
    let gateway = Gateway::start_https(&cluster);
    let scratch = tempfile::tempdir().expect("scratch");
    let report = run_python(
        "tls_clients.py",
        &[
            gateway.url.as_ref(),
            tls.as_os_str(),
            scratch.path().as_os_str(),
        ],
    );
    let written = report["written"].as_object().expect("written");
    assert_eq!(written.len(), 3, "{report}");
    for (path, want) in written {
        let bytes = get_file(&admin, path).await;
        assert_eq!(Some(sha256(&bytes).as_str()), want.as_str(), "{path}");
        let st = admin.stat(path).await.expect("stat");
        assert_eq!(st.owner, "alice", "{path}");
    }
    for refused in ["/user/carol", "/user/alice/bob.txt", "/staff/bob.txt"] {
        assert!(admin.stat(refused).await.is_err(), "{refused} exists");
    }
}
