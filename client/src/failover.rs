//! Finding and following the active metaserver. A call goes to the last known active; a
//! `NotActive` answer names the new one (followed at once); an unreachable server or one
//! without an active sends the call to the next address after a short backoff; all of this
//! until the failover deadline. A mutation keeps its call id across these retries, so the
//! metaserver's retry cache applies it once.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raftfs_core::identity::{
    ACT_AS_GROUPS_HEADER, ACT_AS_HEADER, CLAIMED_USER_HEADER, User, valid_name,
};
use raftfs_proto::{ErrorKind, detail_of};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::error::ClientError;
use crate::tls::ClientTls;

/// A connection to a server that names this client's user on every call: a port in simple
/// mode knows the caller by its claim; a port that verified a client certificate ignores the
/// claim, and honours an act-as under a proxy rule (DESIGN §9).
pub type Rpc = InterceptedService<Channel, CallerHeaders>;

/// The headers that name who a call is for: the claimed user name, added to a call that does
/// not claim one already (none: a client that authenticates by certificate only, whose login
/// name is not one a server would accept; a router forwarding its callers' calls sets each
/// call's own claim, DESIGN §10); and the user a gateway acts for, with its groups.
#[derive(Debug, Clone)]
pub struct CallerHeaders {
    claim: Option<MetadataValue<Ascii>>,
    act_as: Option<(MetadataValue<Ascii>, MetadataValue<Ascii>)>,
}

impl CallerHeaders {
    /// The headers of a client of `user` with `tls`, acting for `act_as` when set (which
    /// needs a client certificate: only a certified caller acts for anyone).
    pub fn new(
        user: &str,
        tls: Option<&ClientTls>,
        act_as: Option<&User>,
    ) -> Result<Self, ClientError> {
        let certified = tls.is_some_and(ClientTls::has_certificate);
        let claim = valid_name(user)
            .ok()
            .and_then(|u| MetadataValue::try_from(u).ok());
        if claim.is_none() && !certified {
            return Err(ClientError::Config(format!(
                "{user:?} is not a valid user name (and no client certificate names one)"
            )));
        }
        let act_as = match act_as {
            None => None,
            Some(_) if !certified => {
                return Err(ClientError::Config(
                    "acting for another user needs a client certificate".into(),
                ));
            }
            Some(u) => Some(act_as_headers(u)?),
        };
        Ok(Self { claim, act_as })
    }
}

fn act_as_headers(u: &User) -> Result<(MetadataValue<Ascii>, MetadataValue<Ascii>), ClientError> {
    let bad = |n: &str| ClientError::Config(format!("{n:?} is not a valid user or group name"));
    for name in std::iter::once(&u.name).chain(&u.groups) {
        valid_name(name).map_err(|_| bad(name))?;
    }
    let name = MetadataValue::try_from(u.name.as_str()).map_err(|_| bad(&u.name))?;
    let groups = u.groups.join(",");
    let groups = MetadataValue::try_from(groups.as_str()).map_err(|_| bad(&groups))?;
    Ok((name, groups))
}

impl Interceptor for CallerHeaders {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(name) = &self.claim
            && !req.metadata().contains_key(CLAIMED_USER_HEADER)
        {
            req.metadata_mut().insert(CLAIMED_USER_HEADER, name.clone());
        }
        if let Some((name, groups)) = &self.act_as {
            req.metadata_mut().insert(ACT_AS_HEADER, name.clone());
            req.metadata_mut()
                .insert(ACT_AS_GROUPS_HEADER, groups.clone());
        }
        Ok(req)
    }
}

/// Where calls go, and the connections to every server.
#[derive(Debug)]
pub struct Targets {
    addrs: Mutex<Vec<String>>,
    current: Mutex<usize>,
    channels: Mutex<HashMap<String, Rpc>>,
    rpc_timeout: Duration,
    tls: Option<ClientTlsConfig>,
    user: CallerHeaders,
    /// Where every connection is opened from (`ClientConfig::source_ip`).
    source_ip: Option<IpAddr>,
    /// When each address last failed to answer: a hint that names one of them is not
    /// followed for a while. A member's hint is its active's advertised address, which a
    /// client of another port (DESIGN §9) may not be able to use; without this, the client
    /// went back and forth between a follower and that address until its deadline.
    failed: Mutex<HashMap<String, Instant>>,
}

/// How long an address that failed to answer is not followed as a hint.
const SKIP_FAILED_HINT: Duration = Duration::from_secs(2);

/// What the retry loop does with a failed attempt.
pub(crate) enum Next {
    /// The server named the active: go there now.
    Redirect(String),
    /// Try the next server after a backoff.
    Rotate(String),
    /// Give up with this error.
    Fail(ClientError),
}

pub(crate) fn classify(status: tonic::Status) -> Next {
    if let Some(detail) = detail_of(&status) {
        let kind = ErrorKind::try_from(detail.kind).unwrap_or(ErrorKind::Unspecified);
        return match kind {
            ErrorKind::NotActive if !detail.leader_addr.is_empty() => {
                Next::Redirect(detail.leader_addr)
            }
            ErrorKind::NotActive | ErrorKind::Unavailable | ErrorKind::ObserverBehind => {
                Next::Rotate(detail.message)
            }
            _ => Next::Fail(ClientError::Refused {
                kind,
                message: detail.message,
                state_id: detail.state_id,
                state_ids: detail.state_ids.into_iter().collect(),
            }),
        };
    }
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown => Next::Rotate(status.to_string()),
        _ if gone_away(&status) => Next::Rotate(status.to_string()),
        _ => Next::Fail(ClientError::Rpc(status)),
    }
}

/// Whether the call ended because its connection was closed with an HTTP/2 GOAWAY (a server
/// shutting down or restarting): tonic reports it as `Internal`, and a rolling restart under
/// load failed a client's write with it (the CI run of the upgrade test). Another server may
/// take the call: a mutation carries its call id, which the retry cache answers once.
fn gone_away(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<h2::Error>()
            .is_some_and(h2::Error::is_go_away)
        {
            return true;
        }
        source = e.source();
    }
    false
}

impl Targets {
    pub fn new(
        addrs: Vec<String>,
        rpc_timeout: Duration,
        tls: Option<&ClientTls>,
        user: CallerHeaders,
        source_ip: Option<IpAddr>,
    ) -> Result<Self, ClientError> {
        if addrs.is_empty() {
            return Err(ClientError::Config("no metaserver addresses".into()));
        }
        Ok(Self {
            addrs: Mutex::new(addrs),
            current: Mutex::new(0),
            channels: Mutex::new(HashMap::new()),
            rpc_timeout,
            tls: tls.map(ClientTls::config),
            user,
            source_ip,
            failed: Mutex::new(HashMap::new()),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        match m.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The address calls go to now.
    pub fn current(&self) -> String {
        let addrs = Self::lock(&self.addrs);
        let i = *Self::lock(&self.current) % addrs.len();
        addrs[i].clone()
    }

    fn rotate(&self) {
        let n = Self::lock(&self.addrs).len();
        let mut c = Self::lock(&self.current);
        *c = (*c + 1) % n;
    }

    fn redirect(&self, addr: &str) {
        let mut addrs = Self::lock(&self.addrs);
        let i = match addrs.iter().position(|a| a == addr) {
            Some(i) => i,
            None => {
                addrs.push(addr.to_owned());
                addrs.len() - 1
            }
        };
        *Self::lock(&self.current) = i;
    }

    /// A (lazily connecting) channel to `addr`: TLS when the client has TLS settings, from
    /// the client's source address when it has one. Every connection of a client, to a
    /// metaserver or a blockserver, is opened here.
    pub fn channel(&self, addr: &str) -> Result<Rpc, ClientError> {
        let mut channels = Self::lock(&self.channels);
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let bad = |e: &dyn std::fmt::Display| {
            ClientError::Config(format!("bad server address {addr:?}: {e}"))
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| bad(&e))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .local_address(self.source_ip);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| bad(&e))?;
        }
        let channel = InterceptedService::new(endpoint.connect_lazy(), self.user.clone());
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    fn failed_recently(&self, addr: &str) -> bool {
        Self::lock(&self.failed)
            .get(addr)
            .is_some_and(|t| t.elapsed() < SKIP_FAILED_HINT)
    }

    /// Runs `attempt` against the active until it succeeds, is refused, or `deadline` passes.
    pub async fn call<T, F, Fut>(
        &self,
        deadline: Duration,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Rpc) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(20);
        let mut redirects_in_a_row = 0u32;
        loop {
            let addr = self.current();
            let channel = self.channel(&addr)?;
            let outcome = match tokio::time::timeout(self.rpc_timeout, attempt(channel)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(status)) => {
                    // No answer of a server at all (a connection that failed), as opposed to
                    // a member that answered it has no active yet.
                    if detail_of(&status).is_none() {
                        Self::lock(&self.failed).insert(addr.clone(), Instant::now());
                    }
                    classify(status)
                }
                Err(_) => {
                    Self::lock(&self.failed).insert(addr.clone(), Instant::now());
                    Next::Rotate(format!("{addr}: no answer within {:?}", self.rpc_timeout))
                }
            };
            let last = match outcome {
                Next::Fail(e) => return Err(e),
                // A hint to go elsewhere is followed at once, unless hints chase each other
                // (a stale hint during an election): then back off like any failure.
                Next::Redirect(to) if self.failed_recently(&to) => {
                    self.rotate();
                    format!("{addr} points at {to}, which did not answer just before")
                }
                Next::Redirect(to) if redirects_in_a_row < 3 && to != addr => {
                    tracing::debug!(from = %addr, to = %to, "following the active");
                    self.redirect(&to);
                    redirects_in_a_row += 1;
                    continue;
                }
                Next::Redirect(to) => {
                    self.redirect(&to);
                    format!("{addr} points at {to}, which is not answering as the active")
                }
                Next::Rotate(why) => {
                    self.rotate();
                    why
                }
            };
            redirects_in_a_row = 0;
            if start.elapsed() + backoff > deadline {
                return Err(ClientError::Unavailable { deadline, last });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_active(leader: &str) -> tonic::Status {
        raftfs_proto::status_with_detail(
            tonic::Code::FailedPrecondition,
            raftfs_proto::ErrorDetail {
                kind: ErrorKind::NotActive as i32,
                leader_addr: leader.into(),
                ..Default::default()
            },
        )
    }

    /// A follower's hint names the active's advertised address, which this client cannot
    /// reach (it came in on another port): once that address has failed, the hint is not
    /// followed again and the client goes on through its own addresses to the active's.
    #[tokio::test]
    async fn a_hint_to_an_address_that_just_failed_is_not_followed_again() {
        let t = Targets::new(
            vec!["follower:1".into(), "active-extra-port:2".into()],
            Duration::from_secs(1),
            None,
            CallerHeaders::new("alice", None, None).expect("headers"),
            None,
        )
        .expect("targets");
        let tried = Mutex::new(Vec::new());
        let r = t
            .call(Duration::from_secs(5), |_| {
                let at = t.current();
                tried.lock().expect("lock").push(at.clone());
                async move {
                    match at.as_str() {
                        "follower:1" => Err(not_active("active-advertised:3")),
                        "active-advertised:3" => Err(tonic::Status::unavailable("tls handshake")),
                        _ => Ok(at),
                    }
                }
            })
            .await;
        assert_eq!(r.expect("reached the active"), "active-extra-port:2");
        let tried = tried.into_inner().expect("lock");
        assert!(tried.len() <= 4, "went back and forth: {tried:?}");
    }
}
