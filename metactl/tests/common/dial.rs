//! How the tests dial a TLS cluster's servers by hand (plain, TLS, a user's or a node's
//! certificate), and how they recognize a refusal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftfs_proto as pb;
use raftfs_proto::ErrorKind;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::LocalCluster;

/// How a test connects: plain, or TLS trusting `ca` and presenting an optional certificate.
#[derive(Clone)]
pub enum Dial {
    Plain,
    Tls {
        ca: PathBuf,
        identity: Option<(PathBuf, PathBuf)>,
    },
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

pub fn channel(addr: &str, dial: &Dial) -> Channel {
    match dial {
        Dial::Plain => Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy(),
        Dial::Tls { ca, identity } => {
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)));
            if let Some((cert, key)) = identity {
                tls = tls.identity(Identity::from_pem(read(cert), read(key)));
            }
            Endpoint::from_shared(format!("https://{addr}"))
                .expect("endpoint")
                .connect_timeout(Duration::from_secs(2))
                .tls_config(tls)
                .expect("tls config")
                .connect_lazy()
        }
    }
}

pub fn tls_dir(cluster: &LocalCluster) -> PathBuf {
    cluster.path().join("tls")
}

/// TLS as the user (or node) whose files are `DIR/tls/NAME.{pem,key}`.
pub fn as_cert(cluster: &LocalCluster, name: &str) -> Dial {
    let base = tls_dir(cluster).join(name);
    Dial::Tls {
        ca: tls_dir(cluster).join("ca.pem"),
        identity: Some((base.with_extension("pem"), base.with_extension("key"))),
    }
}

/// `metactl local cert`: a certificate for `user` in `groups`; dials as that user.
pub fn issue_user(cluster: &LocalCluster, user: &str, groups: &[&str]) -> Dial {
    let d = cluster.dir_arg();
    let mut args = vec!["local", "cert", "--dir", &d, "--user", user];
    for g in groups {
        args.extend(["--group", g]);
    }
    let out = super::metactl(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    as_cert(cluster, &format!("users/{user}"))
}

pub fn kind_of(status: &tonic::Status) -> Option<ErrorKind> {
    pb::detail_of(status).and_then(|d| ErrorKind::try_from(d.kind).ok())
}

/// A refusal that names the caller's lack of permission, not any other failure (a refusal
/// for a malformed request would prove nothing).
pub fn assert_denied<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    match r {
        Err(s) if s.code() == tonic::Code::PermissionDenied => {
            assert_eq!(
                kind_of(&s),
                Some(ErrorKind::PermissionDenied),
                "{what}: {s}"
            );
        }
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    }
}
