//! TLS material of a node (its CA, certificate and key, PEM files) and what is made of it:
//! the server side of a `tls` or `mtls` port, and the dialer every outgoing connection of a
//! server goes through.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftfs_core::identity::PortPolicy;
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Largest PEM file read (a CA bundle of a few certificates is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{0}")]
    Config(String),
    #[error("bad address {addr:?}: {why}")]
    Address { addr: String, why: String },
}

/// Paths of a node's PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster's CA: peers' and clients' certificates are verified against it.
    pub ca: PathBuf,
    /// This node's certificate (its subject names its role and id, DESIGN §9).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// A node's TLS material, read once at start.
#[derive(Clone)]
pub struct TlsMaterial {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

/// Reads a PEM file, refusing one larger than any certificate bundle.
pub fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read(path).map_err(read)
}

impl TlsMaterial {
    /// Reads the three files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(Self::from_pem(
            read_pem(&files.ca)?,
            read_pem(&files.cert)?,
            read_pem(&files.key)?,
        ))
    }

    /// Material from PEM bytes already read.
    pub fn from_pem(ca: Vec<u8>, cert: Vec<u8>, key: Vec<u8>) -> Self {
        Self { ca, cert, key }
    }

    /// The server side of a port with `policy` (`None` for a plain port): this node's
    /// certificate, and client certificates verified against the CA, required on `mtls`,
    /// verified when presented on `tls`.
    pub fn server_config(&self, policy: PortPolicy) -> Option<ServerTlsConfig> {
        if !policy.is_encrypted() {
            return None;
        }
        Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&self.cert, &self.key))
                .client_ca_root(Certificate::from_pem(&self.ca))
                .client_auth_optional(policy == PortPolicy::Tls),
        )
    }

    /// The client side: the CA to verify servers with, and this node's certificate to
    /// present.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &self.key))
    }
}

/// How a server opens connections to other servers: TLS with its own certificate when it has
/// TLS material (every node of a TLS cluster listens with TLS on the port it advertises),
/// plain otherwise.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    tls: Option<ClientTlsConfig>,
}

impl Dialer {
    /// A dialer presenting `material`'s certificate, or a plain one.
    pub fn new(material: Option<&TlsMaterial>) -> Self {
        Self {
            tls: material.map(TlsMaterial::client_config),
        }
    }

    /// Whether connections are encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for `addr` (`host:port`), with the connect timeout every server uses.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, TlsError> {
        let bad = |why: String| TlsError::Address {
            addr: addr.to_owned(),
            why,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        match &self.tls {
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| bad(e.to_string())),
            None => Ok(endpoint),
        }
    }
}
