//! `swebhdfs`: the gateway over HTTPS. Every caller presents a client certificate from the
//! cluster's CA (verified in the handshake, as on an `mtls` port); the user it names (common
//! name, organizations as groups, DESIGN §9) is the user of every request on the connection,
//! and `user.name` is ignored. The gateway's own certificate serves the connection, and its
//! clients present it to the cluster when they act for their users.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use raftfs_core::identity::Principal;
use raftfs_runtime::TlsFiles;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::server::{Connection, Gateway, Identity, router};

/// How long a connection may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may finish their requests once the gateway is stopping.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a caller may take to send a request's headers (hyper applies it only with a
/// timer): an idle connection does not hold its task forever.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once; the next waits in the listen queue. Each holds a task and a
/// descriptor from before its handshake, which anyone who reaches the port can start.
const MAX_CONNECTIONS: usize = 1024;

/// Why the gateway's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error(transparent)]
    Files(#[from] raftfs_runtime::TlsError),
    #[error("{what}: {why}")]
    Pem { what: &'static str, why: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The server side of the gateway's HTTPS: its certificate, and a client certificate required
/// from every caller, verified against the CA.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, HttpsError> {
    let pem = |what: &'static str| {
        move |e: rustls::pki_types::pem::Error| HttpsError::Pem {
            what,
            why: e.to_string(),
        }
    };
    let ca = raftfs_runtime::tls::read_pem(&files.ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.map_err(pem("the CA"))?)?;
    }
    let chain = CertificateDer::pem_slice_iter(&raftfs_runtime::tls::read_pem(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem("the gateway's certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(&raftfs_runtime::tls::read_pem(&files.key)?)
        .map_err(pem("the gateway's key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The identity of a connection whose client certificate was verified: the user it names. A
/// node's certificate names no user (nodes do not call WebHDFS); its requests are refused.
fn identity(conn: &rustls::ServerConnection) -> Identity {
    let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
        return Identity::Refused("the connection has no client certificate".into());
    };
    match raftfs_runtime::ports::principal_of_certificate(leaf) {
        Ok(Principal::User(user)) => Identity::Certified(user),
        Ok(node) => Identity::Refused(format!("{node} is a node's certificate, not a user's")),
        Err(e) => Identity::Refused(e.to_string()),
    }
}

/// Serves the gateway over HTTPS on `listener` until `shutdown` resolves; connections then
/// finish their requests, for at most [`STOP_GRACE`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(gateway);
    let (stop, stopping) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let next = async {
            let slot = slots.clone().acquire_owned().await;
            (slot, listener.accept().await)
        };
        let (slot, accepted) = tokio::select! {
            () = &mut shutdown => break,
            next = next => next,
        };
        let (Ok(slot), Ok((tcp, peer))) = (
            slot,
            accepted.inspect_err(|e| {
                tracing::warn!(error = %e, "accepting a connection");
            }),
        ) else {
            // Out of descriptors, most likely: wait, as axum's own loop does.
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
        };
        while connections.try_join_next().is_some() {}
        let served = connection(acceptor.clone(), app.clone(), tcp, peer, stopping.clone());
        connections.spawn(async move {
            served.await;
            drop(slot);
        });
    }
    let _ = stop.send(true);
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(STOP_GRACE, finished).await.is_err() {
        tracing::warn!("connections still open after the grace period; closing them");
        connections.abort_all();
    }
    Ok(())
}

/// One connection: the handshake, its identity, then HTTP/1.1 until the caller closes it or
/// the gateway stops (after the request in progress).
#[tracing::instrument(skip_all, fields(%peer))]
async fn connection(
    acceptor: TlsAcceptor,
    app: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!("TLS handshake timed out");
            return;
        }
    };
    let identity = identity(stream.get_ref().1);
    if let Identity::Refused(why) = &identity {
        tracing::warn!(%why, "certificate names no user");
    }
    let conn = Arc::new(Connection {
        scheme: "https",
        identity,
    });
    let service = TowerToHyperService::new(app.layer(Extension(conn)));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        r = served.as_mut() => r,
        () = stop => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended");
    }
}
