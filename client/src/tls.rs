//! The client's TLS settings (DESIGN §9) and the user name it claims where a port allows
//! simple mode.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::ClientError;

/// Largest PEM file read (a CA bundle of a few certificates is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The cluster's CA, to verify servers with, and the client's own certificate and key, to
/// present to ports that ask for one (`mtls`, and `tls` ports that know users by their
/// certificates).
#[derive(Clone)]
pub struct ClientTls {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ClientTls")
            .field("with_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// From PEM bytes: the CA, and a certificate with its key.
    pub fn from_pem(ca: Vec<u8>, identity: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        Self { ca, identity }
    }

    /// Reads the CA and, when both are given, the certificate and its key.
    pub fn from_files(
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read_pem(c)?, read_pem(k)?)),
            (None, None) => None,
            _ => {
                return Err(ClientError::Config(
                    "a client certificate needs its key, and a key its certificate".into(),
                ));
            }
        };
        Ok(Self::from_pem(read_pem(ca)?, identity))
    }

    /// Whether the client presents a certificate.
    pub fn has_certificate(&self) -> bool {
        self.identity.is_some()
    }

    /// tonic's settings for a channel.
    pub fn config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ClientError> {
    let bad =
        |e: &dyn std::fmt::Display| ClientError::Config(format!("reading {}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(|e| bad(&e))?.len();
    if len > MAX_PEM_BYTES {
        return Err(bad(&format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    std::fs::read(path).map_err(|e| bad(&e))
}

/// The user this process acts as: the user it runs as, as Hadoop's simple mode takes the
/// OS login user (not `$USER`, which a shell may set to anything; a tool that acts as another
/// user says so, as `metactl --user` and `RAFTFS_USER` do).
pub fn login_name() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}
