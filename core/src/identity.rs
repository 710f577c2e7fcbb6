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

/// The metadata key a caller with a certificate names the user it acts for under (a gateway
/// serving that user), honoured only under a [`ProxyRule`] for the caller.
pub const ACT_AS_HEADER: &str = "x-raftfs-act-as";

/// The metadata key of the groups of the user acted for (comma-separated), each of which the
/// caller's [`ProxyRule`] must allow.
pub const ACT_AS_GROUPS_HEADER: &str = "x-raftfs-act-as-groups";

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
    #[error("bad proxy rule {0:?}: expected NAME or NAME:USERS:GROUPS (comma lists, * for any)")]
    BadProxyRule(String),
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
    /// A user a certified caller (a gateway) acts for, under a [`ProxyRule`] of this server:
    /// the gateway verified the user (its own client certificate); this server verified the
    /// gateway.
    Proxied,
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

/// A user allowed to act for others (HDFS's `hadoop.proxyuser.<name>.users` and `.groups`):
/// a gateway that authenticates its own callers and calls the cluster for them, so that what
/// they create is theirs and the namespace's permissions apply to them, not to the gateway.
/// Only a caller known by its certificate acts for anyone (a simple-mode caller may claim any
/// name already); it becomes [`Proof::Proxied`] as the user it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProxyRule {
    /// The user (its certificate's common name) the rule lets act for others.
    pub user: String,
    /// The users it may act for; `*`: any. Listing names narrows what a stolen gateway
    /// certificate can do (leave the superuser out).
    pub users: Vec<String>,
    /// The groups it may say a user it acts for is in; `*`: any. A user named in a group not
    /// listed here is refused, so a gateway cannot hand its callers an admin group.
    pub groups: Vec<String>,
}

/// Why a call asking to act for a user is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("only a caller with a certificate may act for another user")]
    NotCertified,
    #[error("{proxy} may not act for other users (no proxy rule names it)")]
    NoRule { proxy: String },
    #[error("{proxy} may not act for user {user}")]
    User { proxy: String, user: String },
    #[error("{proxy} may not act for a member of group {group}")]
    Group { proxy: String, group: String },
    #[error(transparent)]
    Name(#[from] IdentityError),
}

impl ProxyRule {
    fn allows(list: &[String], name: &str) -> bool {
        list.iter().any(|n| n == "*" || n == name)
    }

    /// Refuses a rule (from a configuration file) with a name no caller could have, or an
    /// empty list (write `*` for any).
    pub fn validate(&self) -> Result<(), IdentityError> {
        valid_name(&self.user)?;
        for list in [&self.users, &self.groups] {
            if list.is_empty() {
                return Err(IdentityError::BadProxyRule(self.user.clone()));
            }
            for n in list.iter().filter(|n| *n != "*") {
                valid_name(n)?;
            }
        }
        Ok(())
    }
}

impl FromStr for ProxyRule {
    type Err = IdentityError;

    /// `NAME` (any user, any group) or `NAME:USERS:GROUPS`, lists comma-separated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityError::BadProxyRule(s.chars().take(200).collect());
        let list = |l: &str| -> Result<Vec<String>, IdentityError> {
            l.split(',')
                .map(|n| match n {
                    "*" => Ok(n.to_owned()),
                    n => valid_name(n).map(str::to_owned),
                })
                .collect()
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (user, users, groups) = match parts.as_slice() {
            [user] => (*user, vec!["*".to_owned()], vec!["*".to_owned()]),
            [user, users, groups] => (*user, list(users)?, list(groups)?),
            _ => return Err(bad()),
        };
        Ok(Self {
            user: valid_name(user)?.to_owned(),
            users,
            groups,
        })
    }
}

/// The caller a call becomes when `caller` asks to act for `name` in `groups` (the values of
/// [`ACT_AS_HEADER`] and [`ACT_AS_GROUPS_HEADER`]), if a rule in `rules` lets it; the user's
/// names are checked before anything else is looked at.
pub fn act_as(
    caller: &Caller,
    name: &str,
    groups: &str,
    rules: &[ProxyRule],
) -> Result<Caller, ProxyError> {
    let groups: Vec<&str> = if groups.is_empty() {
        Vec::new()
    } else {
        groups.split(',').take(MAX_GROUPS + 1).collect()
    };
    if groups.len() > MAX_GROUPS {
        return Err(IdentityError::TooManyGroups(groups.len()).into());
    }
    let user = User {
        name: valid_name(name)?.to_owned(),
        groups: groups
            .iter()
            .map(|g| valid_name(g).map(str::to_owned))
            .collect::<Result<_, _>>()?,
    };
    let proxy = match (&caller.principal, caller.proof) {
        (Principal::User(u), Proof::Certificate) => u,
        _ => return Err(ProxyError::NotCertified),
    };
    let rule = rules
        .iter()
        .find(|r| r.user == proxy.name)
        .ok_or_else(|| ProxyError::NoRule {
            proxy: proxy.name.clone(),
        })?;
    if !ProxyRule::allows(&rule.users, &user.name) {
        return Err(ProxyError::User {
            proxy: proxy.name.clone(),
            user: user.name,
        });
    }
    if let Some(g) = user
        .groups
        .iter()
        .find(|g| !ProxyRule::allows(&rule.groups, g))
    {
        return Err(ProxyError::Group {
            proxy: proxy.name.clone(),
            group: g.clone(),
        });
    }
    Ok(Caller {
        principal: Principal::User(user),
        proof: Proof::Proxied,
        port: caller.port,
    })
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

    /// Whether `caller` is the superuser or in the admin group, in its own name: a user a
    /// gateway acts for ([`Proof::Proxied`]) never is, whatever its name or groups. A proxy
    /// rule's `*` then cannot hand a gateway the cluster, and the superuser's work goes
    /// through tools that hold the superuser's own certificate.
    pub fn is_admin(&self, caller: &Caller) -> bool {
        match (&caller.principal, caller.proof) {
            (_, Proof::Proxied) => false,
            (Principal::User(u), _) => self.is_admin_user(u),
            _ => false,
        }
    }

    fn is_admin_user(&self, user: &User) -> bool {
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
            (Need::Admin, Principal::User(_)) => self.is_admin(caller),
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

    #[test]
    fn a_gateway_acts_for_the_users_and_groups_its_rule_names() {
        let gateway = cert(Principal::claimed("gateway").expect("name"));
        let rules: Vec<ProxyRule> = vec![
            "gateway:alice,bob:staff,eng".parse().expect("rule"),
            "httpfs".parse().expect("rule"),
        ];
        let alice = act_as(&gateway, "alice", "staff", &rules).expect("alice");
        assert_eq!(alice.proof, Proof::Proxied);
        assert_eq!(alice.port, PortPolicy::Mtls);
        assert_eq!(
            alice
                .principal
                .user()
                .map(|u| (u.name.as_str(), u.groups.clone())),
            Some(("alice", vec!["staff".to_owned()]))
        );
        assert!(act_as(&gateway, "bob", "", &rules).is_ok());
        assert!(matches!(
            act_as(&gateway, "carol", "", &rules),
            Err(ProxyError::User { .. })
        ));
        assert!(matches!(
            act_as(&gateway, "alice", "staff,supergroup", &rules),
            Err(ProxyError::Group { .. })
        ));
        assert!(matches!(
            act_as(&gateway, "../x", "", &rules),
            Err(ProxyError::Name(_))
        ));
        let many = vec!["g"; MAX_GROUPS + 1].join(",");
        assert!(matches!(
            act_as(&gateway, "alice", &many, &rules),
            Err(ProxyError::Name(IdentityError::TooManyGroups(_)))
        ));
        // A rule of `NAME` alone: any user, any group.
        let httpfs = cert(Principal::claimed("httpfs").expect("name"));
        assert!(act_as(&httpfs, "carol", "supergroup", &rules).is_ok());
        // No rule; a claimed name; a node: none acts for anyone.
        let eve = cert(Principal::claimed("eve").expect("name"));
        assert!(matches!(
            act_as(&eve, "alice", "", &rules),
            Err(ProxyError::NoRule { .. })
        ));
        let claimed = Caller {
            proof: Proof::Claimed,
            ..gateway.clone()
        };
        assert_eq!(
            act_as(&claimed, "alice", "", &rules),
            Err(ProxyError::NotCertified)
        );
        let node = cert(Principal::Member(MemberId(1)));
        assert_eq!(
            act_as(&node, "alice", "", &rules),
            Err(ProxyError::NotCertified)
        );
        // Acting for someone is not a way to act twice: a proxied caller is not certified.
        assert_eq!(
            act_as(&alice, "bob", "", &rules),
            Err(ProxyError::NotCertified)
        );
    }

    #[test]
    fn a_user_acted_for_is_never_an_admin() {
        let a = authorizer();
        let gateway = cert(Principal::claimed("gateway").expect("name"));
        let rules: Vec<ProxyRule> = vec!["gateway".parse().expect("rule")];
        for (name, groups) in [("hdfs", ""), ("carol", "ops")] {
            let acted = act_as(&gateway, name, groups, &rules).expect("acted for");
            assert!(!a.is_admin(&acted), "{name}");
            assert!(a.check(&acted, Need::Admin).is_err(), "{name}");
            assert!(a.check(&acted, Need::User).is_ok(), "{name}");
            let own = Caller {
                proof: Proof::Certificate,
                ..acted
            };
            assert!(a.is_admin(&own), "{name} in its own name");
        }
    }

    #[test]
    fn proxy_rules_parse() {
        assert!("gateway:alice:".parse::<ProxyRule>().is_err());
        assert!("gateway:alice".parse::<ProxyRule>().is_err());
        assert!("a b".parse::<ProxyRule>().is_err());
        let r: ProxyRule = "gw:*:staff".parse().expect("rule");
        assert_eq!(r.users, ["*"]);
        assert_eq!(r.groups, ["staff"]);
        assert_eq!(r.validate(), Ok(()));
        let empty = ProxyRule {
            groups: Vec::new(),
            ..r.clone()
        };
        assert!(empty.validate().is_err());
        let bad = ProxyRule {
            users: vec!["a b".into()],
            ..r
        };
        assert!(bad.validate().is_err());
    }
}
