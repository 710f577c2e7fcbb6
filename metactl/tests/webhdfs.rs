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

/// A gateway process, stopped when dropped.
struct Gateway {
    child: Child,
    url: String,
}

impl Gateway {
    fn start(cluster: &LocalCluster) -> Gateway {
        let mut child = Command::new(common::metactl_bin())
            .args(["--cluster", &cluster.dir_arg(), "gateway"])
            .args(["--listen", "127.0.0.1:0"])
            // Small pages, so that LISTSTATUS_BATCH pages and LISTSTATUS goes on across pages.
            .args(["--ls-limit", "3"])
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
            url: format!("http://{}", line.trim()),
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhdfs/clients.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&gateway.url)
        .arg(scratch.path())
        .arg(spec.to_string())
        .output()
        .expect("run the Python clients");
    assert!(
        out.status.success(),
        "the Python clients failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("the clients' report");

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
