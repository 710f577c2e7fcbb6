//! A server's ports, each with its own protection (HDFS's selective wire encryption,
//! DESIGN §9), all serving the same gRPC services; and the authentication every call passes
//! before it reaches a service: the caller is established once, from the port's policy and the
//! connection's verified client certificate or, on a simple-mode port, the claimed user name,
//! and handed to the service in the request's extensions.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use raftfs_core::identity::{
    ACT_AS_GROUPS_HEADER, ACT_AS_HEADER, CLAIMED_USER_HEADER, Caller, IdentityError, PortPolicy,
    Principal, Proof, ProxyRule, Subject,
};
use raftfs_proto as pb;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::{Interceptor, InterceptorLayer, Routes};
use tonic::{Code, Request, Status};

use crate::tls::{TlsError, TlsFiles, TlsMaterial};

/// The user a simple-mode caller that claims no name acts as.
pub const ANONYMOUS_USER: &str = "nobody";

/// One more port a server listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Port {
    pub addr: SocketAddr,
    pub policy: PortPolicy,
    /// Callers without a certificate are known by the user name they claim (HDFS's simple
    /// mode); otherwise they are refused. Meaningless on an `mtls` port.
    #[serde(default)]
    pub simple: bool,
}

/// A server's wire security (the `[security]` table of its configuration): the protection of
/// the port it advertises (`listen-addr`), any further ports, and its TLS files. The default
/// is one plain simple-mode port: nothing is authenticated (a trusted network only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct WireSecurity {
    /// The policy of the advertised port, which peers, blockservers and clients dial.
    pub policy: PortPolicy,
    /// Whether the advertised port accepts claimed user names from callers without a
    /// certificate.
    pub simple: bool,
    /// The CA, certificate and key: needed by any `tls` or `mtls` port, and used by every
    /// connection this server opens (presenting its certificate).
    pub tls: Option<TlsFiles>,
    /// More ports, each with its own policy; the same services on each.
    pub ports: Vec<Port>,
    /// Who may act for other users (a WebHDFS gateway with its own certificate), on every
    /// port. Blockservers need the same rules as metaservers: the block tokens a metaserver
    /// issues to the user acted for are presented by the gateway.
    pub proxy_users: Vec<ProxyRule>,
}

impl Default for WireSecurity {
    fn default() -> Self {
        Self {
            policy: PortPolicy::Plain,
            simple: true,
            tls: None,
            ports: Vec::new(),
            proxy_users: Vec::new(),
        }
    }
}

impl WireSecurity {
    /// Every port, the advertised one (`main`) first.
    pub fn ports(&self, main: SocketAddr) -> Vec<Port> {
        let first = Port {
            addr: main,
            policy: self.policy,
            simple: self.simple,
        };
        std::iter::once(first)
            .chain(self.ports.iter().cloned())
            .collect()
    }

    /// Refuses a configuration that cannot be served as written.
    pub fn validate(&self, main: SocketAddr) -> Result<(), String> {
        let ports = self.ports(main);
        if self.tls.is_none()
            && let Some(p) = ports.iter().find(|p| p.policy.is_encrypted())
        {
            return Err(format!(
                "port {} is {} but [security.tls] names no certificate",
                p.addr, p.policy
            ));
        }
        if self.tls.is_some() && !self.policy.is_encrypted() {
            return Err(format!(
                "with certificates, the advertised port {main} must be tls or mtls: peers and \
                 blockservers dial it over TLS"
            ));
        }
        if let Some(p) = ports
            .iter()
            .find(|p| p.simple && p.policy == PortPolicy::Mtls)
        {
            return Err(format!(
                "port {} is mtls: every caller has a certificate, simple mode cannot apply",
                p.addr
            ));
        }
        for (i, rule) in self.proxy_users.iter().enumerate() {
            rule.validate()
                .map_err(|e| format!("[[security.proxy-users]]: {e}"))?;
            if self.proxy_users[..i].iter().any(|r| r.user == rule.user) {
                return Err(format!(
                    "[[security.proxy-users]]: two rules for {}: write one",
                    rule.user
                ));
            }
        }
        if ports.iter().all(|p| !p.policy.is_encrypted() && !p.simple) {
            return Err("no port can authenticate anyone: plain ports without simple mode".into());
        }
        Ok(())
    }

    /// The TLS material, read from its files, if any is configured.
    pub fn material(&self) -> Result<Option<TlsMaterial>, TlsError> {
        self.tls.as_ref().map(TlsMaterial::load).transpose()
    }
}

/// Establishes each call's [`Caller`] for one port and refuses calls that name nobody.
#[derive(Debug, Clone)]
pub struct Authenticate {
    policy: PortPolicy,
    simple: bool,
    proxies: Arc<[ProxyRule]>,
}

impl Authenticate {
    pub fn new(port: &Port, proxies: Arc<[ProxyRule]>) -> Self {
        Self {
            policy: port.policy,
            simple: port.simple,
            proxies,
        }
    }

    /// The caller the connection and the call name, then, when the call asks to act for a
    /// user ([`ACT_AS_HEADER`]), that user if a proxy rule allows it.
    fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let caller = self.connected(req)?;
        let Some(name) = req.metadata().get(ACT_AS_HEADER) else {
            return Ok(caller);
        };
        let text = |v: &tonic::metadata::MetadataValue<_>| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| unauthenticated("the user acted for is not text"))
        };
        let groups = match req.metadata().get(ACT_AS_GROUPS_HEADER) {
            Some(g) => text(g)?,
            None => String::new(),
        };
        let name = text(name)?;
        match raftfs_core::identity::act_as(&caller, &name, &groups, &self.proxies) {
            Ok(acted) => {
                tracing::debug!(proxy = %caller.principal, user = %name, "acting for");
                Ok(acted)
            }
            Err(e) => {
                tracing::warn!(caller = %caller.principal, user = %name, error = %e, "refused");
                Err(pb::status_with_detail(
                    Code::PermissionDenied,
                    pb::ErrorDetail {
                        kind: pb::ErrorKind::PermissionDenied as i32,
                        message: e.to_string(),
                        ..Default::default()
                    },
                ))
            }
        }
    }

    /// The caller the connection's certificate or, on a simple-mode port, the call's claim
    /// names.
    fn connected<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        if let Some(certs) = req.peer_certs()
            && let Some(leaf) = certs.first()
        {
            // rustls verified the chain against the cluster's CA during the handshake.
            let principal = principal_of_certificate(leaf).map_err(unauthenticated)?;
            return Ok(Caller {
                principal,
                proof: Proof::Certificate,
                port: self.policy,
            });
        }
        if !self.simple {
            return Err(unauthenticated(
                "this port accepts only callers with a client certificate from the cluster's CA",
            ));
        }
        let claimed = match req.metadata().get(CLAIMED_USER_HEADER) {
            None => ANONYMOUS_USER,
            Some(v) => v
                .to_str()
                .map_err(|_| unauthenticated("the claimed user name is not text"))?,
        };
        let principal = Principal::claimed(claimed).map_err(unauthenticated)?;
        Ok(Caller {
            principal,
            proof: Proof::Claimed,
            port: self.policy,
        })
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.caller(&req)?;
        req.extensions_mut().insert(Arc::new(caller));
        Ok(req)
    }
}

fn unauthenticated(why: impl std::fmt::Display) -> Status {
    pb::status_with_detail(
        Code::Unauthenticated,
        pb::ErrorDetail {
            kind: pb::ErrorKind::Unauthenticated as i32,
            message: why.to_string(),
            ..Default::default()
        },
    )
}

/// The principal a verified certificate (DER) names.
pub fn principal_of_certificate(der: &[u8]) -> Result<Principal, CertificateError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertificateError::Parse(e.to_string()))?;
    let name = cert.subject();
    fn text<'a>(a: &'a x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<&'a str> {
        a.as_str().ok()
    }
    let subject = Subject {
        common_name: name.iter_common_name().next().and_then(text),
        units: name.iter_organizational_unit().filter_map(text).collect(),
        organizations: name.iter_organization().filter_map(text).collect(),
    };
    Ok(Principal::from_subject(&subject)?)
}

/// Why a verified certificate names nobody.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("unreadable client certificate: {0}")]
    Parse(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// The caller the port established for `req`. A request that reached a service without one
/// was not served through [`serve_ports`]: an internal error, never an anonymous caller.
pub fn caller_of<T>(req: &Request<T>) -> Result<Arc<Caller>, Status> {
    req.extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| Status::internal("a call reached a service without authentication"))
}

/// Why a server's ports stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("port {addr}: {why}")]
    Tls { addr: SocketAddr, why: String },
    #[error("a port's server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Serves `routes` on every port until `shutdown` resolves (or one port fails, which stops
/// them all): each port with its own TLS and its own [`Authenticate`], every one applying
/// `proxies`.
pub async fn serve_ports(
    routes: Routes,
    ports: Vec<(tokio::net::TcpListener, Port)>,
    tls: Option<&TlsMaterial>,
    proxies: &[ProxyRule],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let proxies: Arc<[ProxyRule]> = proxies.into();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for (listener, port) in ports {
        let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
        if let Some(config) = tls.and_then(|m| m.server_config(port.policy)) {
            builder = builder.tls_config(config).map_err(|e| ServeError::Tls {
                addr: port.addr,
                why: e.to_string(),
            })?;
        } else if port.policy.is_encrypted() {
            return Err(ServeError::Tls {
                addr: port.addr,
                why: format!("{} without TLS material", port.policy),
            });
        }
        let router = builder
            .layer(InterceptorLayer::new(Authenticate::new(
                &port,
                proxies.clone(),
            )))
            .add_routes(routes.clone());
        let mut stopped = stopped.clone();
        let until = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        servers.spawn(router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), until));
    }
    let mut first = tokio::select! {
        () = shutdown => None,
        Some(ended) = servers.join_next() => Some(ended),
    };
    let _ = stop.send(true);
    let mut result = Ok(());
    loop {
        let ended = match first.take() {
            Some(e) => e,
            None => match servers.join_next().await {
                Some(e) => e,
                None => break,
            },
        };
        if let Err(e) = ended
            .map_err(ServeError::from)
            .and_then(|r| r.map_err(Into::into))
            && result.is_ok()
        {
            result = Err(e);
        }
    }
    result
}
