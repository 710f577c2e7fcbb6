//! Who is calling, how they proved it, and what they may do (DESIGN §9).
//!
//! A server listens on ports, each with a [`PortPolicy`]. A caller is known by a certificate
//! (a client certificate verified against the cluster's CA during the TLS handshake) or, on a
//! port whose configuration allows HDFS's "simple" mode, by the user name it claims. Node
//! certificates carry the organizational unit [`NODE_UNIT`] and a common name `member-<id>`
//! or `blockserver-<id>`; any other certificate names a user (common name) and its groups
//! (organizations). [`Authorizer`] decides each class of call ([`Need`]) from that alone, so
//! that every server applies one rule and a refusal changes nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::id::{BlockServerId, MemberId};

/// The organizational unit of every node (member, blockserver) certificate. A certificate
/// without it is a user's, whatever its common name says: a user named `member-1` is not a
/// member.
pub const NODE_UNIT: &str = "raftfs-node";

/// The metadata key a caller without a certificate claims its user name under (honoured only
/// on a port that allows simple mode).
pub const CLAIMED_USER_HEADER: &str = "x-raftfs-user";

/// Longest user or group name accepted, from a certificate or a claim.
pub const MAX_NAME_LEN: usize = 64;

/// Most groups one certificate may name.
pub const MAX_GROUPS: usize = 32;

/// The protection of one listening port (HDFS's selective wire encryption): the firewall keeps
/// a `plain` port inside the datacenter, clients outside get a `tls` or `mtls` one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortPolicy {
    /// No encryption; callers are known only by the name they claim (simple mode).
    Plain,
    /// Encrypted; a client certificate is verified when one is presented.
    Tls,
    /// Encrypted; the handshake fails without a client certificate from the cluster's CA.
    Mtls,
}

impl PortPolicy {
    /// Whether connections on such a port are encrypted.
    pub fn is_encrypted(self) -> bool {
        !matches!(self, PortPolicy::Plain)
    }

    /// The policy's name in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            PortPolicy::Plain => "plain",
            PortPolicy::Tls => "tls",
            PortPolicy::Mtls => "mtls",
        }
    }
}

impl fmt::Display for PortPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PortPolicy {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(PortPolicy::Plain),
            "tls" => Ok(PortPolicy::Tls),
            "mtls" => Ok(PortPolicy::Mtls),
            other => Err(IdentityError::UnknownPolicy(other.to_owned())),
        }
    }
}

/// Why a name or a certificate subject does not identify anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("unknown port policy {0:?} (expected plain, tls or mtls)")]
    UnknownPolicy(String),
    #[error("the certificate's subject has no common name")]
    NoCommonName,
    #[error("node certificate names {0:?}; expected member-<id> or blockserver-<id>")]
    BadNodeName(String),
    #[error("{0:?} is not a valid user or group name")]
    BadName(String),
    #[error("the certificate names {0} groups; at most {MAX_GROUPS} are accepted")]
    TooManyGroups(usize),
}

/// A user of the file system: the owner of what it creates, checked against modes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// A user with no groups.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            groups: Vec::new(),
        }
    }

    /// Whether the user belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Who a caller is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A metaserver, by its Raft member id.
    Member(MemberId),
    /// A blockserver, by its id.
    BlockServer(BlockServerId),
    /// A person or a job.
    User(User),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Member(id) => write!(f, "member-{id}"),
            Principal::BlockServer(id) => write!(f, "blockserver-{id}"),
            Principal::User(u) => write!(f, "user {}", u.name),
        }
    }
}

/// The parts of a certificate's subject that identify its holder.
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    pub common_name: Option<&'a str>,
    pub units: Vec<&'a str>,
    pub organizations: Vec<&'a str>,
}

impl Principal {
    /// The principal a verified certificate names.
    pub fn from_subject(subject: &Subject<'_>) -> Result<Self, IdentityError> {
        let cn = subject.common_name.ok_or(IdentityError::NoCommonName)?;
        if subject.units.contains(&NODE_UNIT) {
            return node_from_name(cn);
        }
        if subject.organizations.len() > MAX_GROUPS {
            return Err(IdentityError::TooManyGroups(subject.organizations.len()));
        }
        let groups = subject
            .organizations
            .iter()
            .map(|g| valid_name(g).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Principal::User(User {
            name: valid_name(cn)?.to_owned(),
            groups,
        }))
    }

    /// The user a caller without a certificate claims to be.
    pub fn claimed(name: &str) -> Result<Self, IdentityError> {
        Ok(Principal::User(User::named(valid_name(name)?)))
    }

    /// The user, when the principal is one.
    pub fn user(&self) -> Option<&User> {
        match self {
            Principal::User(u) => Some(u),
            _ => None,
        }
    }
}

fn node_from_name(cn: &str) -> Result<Principal, IdentityError> {
    let bad = || IdentityError::BadNodeName(cn.to_owned());
    let (role, id) = cn.rsplit_once('-').ok_or_else(bad)?;
    let id: u64 = id.parse().map_err(|_| bad())?;
    if id == 0 {
        return Err(bad());
    }
    match role {
        "member" => Ok(Principal::Member(MemberId(id))),
        "blockserver" => Ok(Principal::BlockServer(BlockServerId(id))),
        _ => Err(bad()),
    }
}

/// `name` if it is a user or group name HDFS would accept: 1 to [`MAX_NAME_LEN`] characters
/// of letters, digits, `.`, `_`, `-` and `@`, not starting with `-` or `.` (a name is also a
/// file name in some places: `..` must not be one).
pub fn valid_name(name: &str) -> Result<&str, IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(name)
    } else {
        Err(IdentityError::BadName(
            name.chars().take(MAX_NAME_LEN).collect(),
        ))
    }
}

/// How a caller's identity was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A client certificate from the cluster's CA.
    Certificate,
    /// A name the caller claimed, on a port that allows simple mode: nothing is verified,
    /// as in HDFS without Kerberos.
    Claimed,
}

/// One call's caller, as the port it came in on established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub proof: Proof,
    /// The policy of the port the call came in on (carried into block tokens later).
    pub port: PortPolicy,
}

impl Caller {
    /// The user name the call acts as: a user's own name, or `member-N` / `blockserver-N`.
    pub fn name(&self) -> String {
        match &self.principal {
            Principal::User(u) => u.name.clone(),
            other => other.to_string(),
        }
    }
}

/// The class of a call, for [`Authorizer::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Namespace reads and writes (permissions are checked on the namespace itself).
    User,
    /// Changes to the cluster: membership, leadership, checkpoints, throttles.
    Admin,
    /// Raft traffic between members.
    Member,
    /// A blockserver speaking for itself (register, heartbeat, block report).
    BlockServer(BlockServerId),
    /// Any blockserver (a partial cell for a reconstruction).
    AnyBlockServer,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{caller} may not {what}")]
pub struct Denied {
    pub caller: String,
    pub what: String,
}

/// Who may do what: the configured superuser and admin group; everything else follows from
/// the caller's principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorizer {
    /// HDFS's superuser: every Admin call, `chown`, and every permission check passes.
    pub superuser: String,
    /// Members of this group may make Admin calls (HDFS's `dfs.cluster.administrators`).
    pub admin_group: Option<String>,
    /// Whether node calls are taken from callers known only by a claimed name: only on a
    /// server without TLS material, whose cluster runs in simple mode throughout. A server
    /// with certificates takes Raft, blockserver and partial-cell calls only from node
    /// certificates, whatever port they come in on (a simple-mode port it also has serves
    /// users, never nodes).
    pub claimed_nodes: bool,
}

impl Authorizer {
    /// A rule under which no user is an admin: a server with no Admin calls (a blockserver)
    /// checks only the node classes.
    pub fn without_admins(claimed_nodes: bool) -> Self {
        Self {
            superuser: String::new(),
            admin_group: None,
            claimed_nodes,
        }
    }

    /// Whether `user` is the superuser or in the admin group.
    pub fn is_admin(&self, user: &User) -> bool {
        // A user's name is never empty (`valid_name`), so an empty superuser names nobody.
        (!self.superuser.is_empty() && user.name == self.superuser)
            || self
                .admin_group
                .as_deref()
                .is_some_and(|g| user.in_group(g))
    }

    /// Whether `caller` may make a call of class `need`. In a cluster without certificates
    /// nodes cannot prove who they are, so node calls are accepted from whoever reaches the
    /// port (that is what simple mode means: the network is trusted); Admin calls still
    /// need the superuser's or an admin's name.
    pub fn check(&self, caller: &Caller, need: Need) -> Result<(), Denied> {
        let claimed = caller.proof == Proof::Claimed;
        let ok = match (need, &caller.principal) {
            (Need::User, _) => true,
            (Need::Admin, Principal::User(u)) => self.is_admin(u),
            (Need::Admin, _) => false,
            (Need::Member, Principal::Member(_)) => true,
            (Need::BlockServer(id), Principal::BlockServer(b)) => *b == id,
            (Need::AnyBlockServer, Principal::BlockServer(_)) => true,
            (Need::Member | Need::BlockServer(_) | Need::AnyBlockServer, _) => {
                claimed && self.claimed_nodes
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Denied {
                caller: caller.principal.to_string(),
                what: need.describe(),
            })
        }
    }
}

impl Need {
    fn describe(self) -> String {
        match self {
            Need::User => "use the namespace".into(),
            Need::Admin => "change the cluster (superuser or admin group only)".into(),
            Need::Member => "send Raft messages (members only)".into(),
            Need::BlockServer(id) => format!("speak for blockserver {id}"),
            Need::AnyBlockServer => "ask for a partial cell (blockservers only)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(cn: &'a str, units: &[&'a str], orgs: &[&'a str]) -> Subject<'a> {
        Subject {
            common_name: Some(cn),
            units: units.to_vec(),
            organizations: orgs.to_vec(),
        }
    }

    fn cert(principal: Principal) -> Caller {
        Caller {
            principal,
            proof: Proof::Certificate,
            port: PortPolicy::Mtls,
        }
    }

    fn authorizer() -> Authorizer {
        Authorizer {
            superuser: "hdfs".into(),
            admin_group: Some("ops".into()),
            claimed_nodes: true,
        }
    }

    #[test]
    fn node_certificates_name_their_role_and_id() {
        let m = Principal::from_subject(&subject("member-3", &[NODE_UNIT], &[]));
        assert_eq!(m, Ok(Principal::Member(MemberId(3))));
        let b = Principal::from_subject(&subject("blockserver-12", &[NODE_UNIT], &[]));
        assert_eq!(b, Ok(Principal::BlockServer(BlockServerId(12))));
        for bad in ["member-0", "member-", "member-x", "metaserver-1", "member3"] {
            assert!(
                Principal::from_subject(&subject(bad, &[NODE_UNIT], &[])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn without_the_node_unit_a_certificate_names_a_user() {
        let u = Principal::from_subject(&subject("member-3", &["other"], &["staff", "ops"]));
        let Ok(Principal::User(u)) = u else {
            panic!("a user: {u:?}")
        };
        assert_eq!(u.name, "member-3");
        assert_eq!(u.groups, ["staff", "ops"]);
        assert!(Principal::from_subject(&Subject::default()).is_err());
        assert!(Principal::from_subject(&subject("a b", &[], &[])).is_err());
        assert!(Principal::from_subject(&subject("a", &[], &["x/y"])).is_err());
    }

    #[test]
    fn names_are_checked() {
        for good in ["alice", "svc.etl", "a_b-c", "bob@EXAMPLE.COM"] {
            assert!(valid_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "-x", "..", ".x", "a b", "a/b", "ä", long.as_str()] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn admin_calls_need_the_superuser_or_the_admin_group() {
        let a = authorizer();
        assert!(
            a.check(
                &cert(Principal::claimed("hdfs").expect("name")),
                Need::Admin
            )
            .is_ok()
        );
        let op = User {
            name: "carol".into(),
            groups: vec!["ops".into()],
        };
        assert!(a.check(&cert(Principal::User(op)), Need::Admin).is_ok());
        let alice = cert(Principal::claimed("alice").expect("name"));
        assert!(a.check(&alice, Need::Admin).is_err());
        assert!(a.check(&alice, Need::User).is_ok());
        assert!(
            a.check(&cert(Principal::Member(MemberId(1))), Need::Admin)
                .is_err()
        );
    }

    #[test]
    fn node_calls_need_the_node_unless_the_port_is_simple() {
        let a = authorizer();
        let alice = cert(Principal::claimed("alice").expect("name"));
        let b7 = cert(Principal::BlockServer(BlockServerId(7)));
        let m1 = cert(Principal::Member(MemberId(1)));
        assert!(a.check(&alice, Need::Member).is_err());
        assert!(a.check(&b7, Need::Member).is_err());
        assert!(a.check(&m1, Need::Member).is_ok());
        assert!(a.check(&b7, Need::BlockServer(BlockServerId(7))).is_ok());
        assert!(a.check(&b7, Need::BlockServer(BlockServerId(8))).is_err());
        assert!(a.check(&m1, Need::BlockServer(BlockServerId(7))).is_err());
        assert!(a.check(&alice, Need::AnyBlockServer).is_err());
        assert!(a.check(&b7, Need::AnyBlockServer).is_ok());
        let simple = Caller {
            proof: Proof::Claimed,
            port: PortPolicy::Plain,
            ..alice
        };
        assert!(a.check(&simple, Need::Member).is_ok());
        assert!(
            a.check(&simple, Need::BlockServer(BlockServerId(7)))
                .is_ok()
        );
        assert!(a.check(&simple, Need::Admin).is_err());
        // A server with certificates takes node calls from node certificates only.
        let tls = Authorizer {
            claimed_nodes: false,
            ..a
        };
        assert!(tls.check(&simple, Need::Member).is_err());
        assert!(
            tls.check(&simple, Need::BlockServer(BlockServerId(7)))
                .is_err()
        );
        assert!(tls.check(&simple, Need::AnyBlockServer).is_err());
        assert!(tls.check(&simple, Need::User).is_ok());
        assert!(tls.check(&m1, Need::Member).is_ok());
    }
}
