//! Block access tokens (DESIGN §9): what lets a blockserver, which knows nothing of files,
//! paths or permissions, serve a block only to whom the namespace allowed it.
//!
//! The metaserver that answers `GetBlocks` or `AddBlock` (after its permission checks) signs,
//! with a secret key, what the caller may do: which group's internal blocks, read or write,
//! until when, as whom, and over which port policy. A blockserver checks the signature with
//! the same key and serves the call only if the token covers it. As HDFS's
//! `BlockTokenSecretManager`, with two differences that come from the journal:
//!
//! - Keys are rolled by the active *through the journal* ([`BlockKey`] in an entry), so every
//!   member holds the same keys: an observer signs read tokens for the reads it serves, and a
//!   new active keeps honouring and handing out the keys the old one made. Blockservers learn
//!   them from every metaserver's heartbeat replies.
//! - The token names its holder ([`Holder`]) and the policy of the port the metaserver saw
//!   ([`PortPolicy`]): a token read off the wire by someone else is refused (another user),
//!   and a token earned over an encrypted port is refused on a plain one (HDFS-13541's
//!   selective encryption: a client outside the datacenter cannot have its bytes sent in
//!   clear by presenting its token on the inside port).
//!
//! A token is small (about 100 bytes) and its encoding is a versioned record ("block
//! token"), so that a change to its claims is a new version both sides can tell apart.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::format::{self, FormatError, Schema};
use crate::id::{BlockServerId, Generation, GroupId};
use crate::identity::{Caller, PortPolicy, Principal};

/// Bytes of a key's secret (HMAC-SHA256 takes any; 32 is its block of security).
pub const SECRET_LEN: usize = 32;

/// Largest token accepted from the wire; checked before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 512;

/// Most keys a ring holds (and a heartbeat reply may carry): with a roll every 10 minutes and
/// keys living 10 hours past their roll, about 60 are live at once.
pub const MAX_KEYS: usize = 128;

/// The block pool of a cluster's one namespace. Federation (DESIGN §10) gives each
/// nameservice its own; a token names the pool so that one namespace's tokens never open
/// another's blocks.
pub const DEFAULT_POOL: u64 = 0;

/// A secret the active made, with when it was made and until when tokens it signed count.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockKey {
    /// Numbered from 1 by the active, one more per roll.
    pub id: u32,
    pub secret: [u8; SECRET_LEN],
    /// The active's clock when it made the key (ms since the epoch).
    pub created_ms: u64,
    /// No token signed with this key counts after this time.
    pub expires_ms: u64,
}

/// Never prints the secret.
impl fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockKey")
            .field("id", &self.id)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// What a token lets its holder do with the blocks it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Read bytes, measure a block's length, combine cells (`Partial`).
    Read,
    /// Write a new internal block.
    Write,
    /// Lease recovery: end a block's open write streams and restamp it (`RecoverBlock`). A
    /// mode of its own, so that the token the active sends every server of the group opens
    /// no write (with a write token a node could put copies of the new generation anywhere).
    Recover,
}

impl Mode {
    fn bit(self) -> u8 {
        match self {
            Mode::Read => 1,
            Mode::Write => 2,
            Mode::Recover => 4,
        }
    }
}

/// Who may present a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holder {
    /// The user the metaserver served (by name; a user's name is never a node's).
    User(String),
    /// The cluster's own work (a reconstruction task's reads, lease recovery's measurements):
    /// any member or blockserver.
    Nodes,
}

impl Holder {
    /// The holder a token issued to `caller` names.
    pub fn of(caller: &Caller) -> Holder {
        match &caller.principal {
            Principal::User(u) => Holder::User(u.name.clone()),
            Principal::Member(_) | Principal::BlockServer(_) => Holder::Nodes,
        }
    }

    /// Whether `caller` may present a token of this holder. Where nodes only claim who they
    /// are (a cluster without certificates), any caller counts as a node, as it does for
    /// every other node call (`Authorizer::claimed_nodes`).
    fn admits(&self, caller: &Caller, nodes_claimed: bool) -> bool {
        match (self, &caller.principal) {
            (Holder::User(name), Principal::User(u)) => *name == u.name,
            (Holder::User(_), _) => false,
            (Holder::Nodes, Principal::Member(_) | Principal::BlockServer(_)) => true,
            (Holder::Nodes, Principal::User(_)) => nodes_claimed,
        }
    }
}

/// The internal blocks of a group a token covers, one bit per index (k + m ≤ 32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indices(pub u32);

impl Indices {
    /// Every internal block of a group.
    pub const ALL: Indices = Indices(u32::MAX);

    /// Internal block `index` alone (none if it is 32 or more: no group has it).
    pub fn one(index: u32) -> Indices {
        Indices(1u32.checked_shl(index).unwrap_or(0))
    }

    /// The blocks `indices` name (those of 32 or more name none).
    pub fn of(indices: impl IntoIterator<Item = u32>) -> Indices {
        Indices(indices.into_iter().fold(0, |m, i| m | Indices::one(i).0))
    }

    /// Whether every block of `other` is among these.
    pub fn covers(self, other: Indices) -> bool {
        other.0 & !self.0 == 0
    }
}

/// What a token says, signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub pool: u64,
    pub group: GroupId,
    pub indices: Indices,
    /// [`Mode`] bits.
    pub modes: u8,
    /// ms since the epoch; the token counts up to and including this time.
    pub expires_ms: u64,
    pub holder: Holder,
    /// The policy of the port the metaserver served the caller on.
    pub port: PortPolicy,
    /// The group's generation when the token was signed: a write stamps its block with it,
    /// a read is served only from a block at least this new, lease recovery restamps
    /// survivors to it (version 2; tokens of version 1 carry [`Generation::FIRST`]).
    pub generation: Generation,
    /// Where a write may go: the group's targets, as the active placed them, so that a
    /// writer cannot put copies of its group on other servers (which, once the group is
    /// closed, would be copies nobody placed). Empty: anywhere (version 1; read tokens).
    pub servers: Vec<BlockServerId>,
}

impl Claims {
    /// Claims for `caller` on `group`, in `modes`, for `lifetime_ms` from `now_ms`.
    pub fn new(
        caller: &Caller,
        group: GroupId,
        indices: Indices,
        modes: &[Mode],
        now_ms: u64,
        lifetime_ms: u64,
    ) -> Claims {
        Claims {
            pool: DEFAULT_POOL,
            group,
            indices,
            modes: modes.iter().fold(0, |m, mode| m | mode.bit()),
            expires_ms: now_ms.saturating_add(lifetime_ms),
            holder: Holder::of(caller),
            port: caller.port,
            generation: Generation::FIRST,
            servers: Vec::new(),
        }
    }

    /// The same claims, writes bound to `servers` (the group's targets).
    pub fn on_servers(mut self, servers: &[BlockServerId]) -> Claims {
        self.servers = servers.to_vec();
        self
    }

    /// The same claims for the blocks of pool `pool` (a nameservice's, DESIGN §10).
    pub fn in_pool(mut self, pool: u64) -> Claims {
        self.pool = pool;
        self
    }

    /// The same claims for the group's generation `generation`.
    pub fn at_generation(mut self, generation: Generation) -> Claims {
        self.generation = generation;
        self
    }

    /// Claims of the cluster's own work on `group` (reconstruction, lease recovery): any
    /// node, any port.
    pub fn for_nodes(group: GroupId, modes: &[Mode], now_ms: u64, lifetime_ms: u64) -> Claims {
        Claims {
            pool: DEFAULT_POOL,
            group,
            indices: Indices::ALL,
            modes: modes.iter().fold(0, |m, mode| m | mode.bit()),
            expires_ms: now_ms.saturating_add(lifetime_ms),
            holder: Holder::Nodes,
            port: PortPolicy::Plain,
            generation: Generation::FIRST,
            servers: Vec::new(),
        }
    }
}

/// A signed token, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockToken {
    /// The key that signed it.
    pub key_id: u32,
    pub claims: Claims,
    pub mac: [u8; 32],
    /// Which version's encoding of the claims the MAC covers: a token of version 1 (signed
    /// by a metaserver of before generation stamps, during a rolling upgrade) is checked
    /// against the bytes it was signed over, not against its upgraded claims. Not part of
    /// the encoding (a token is encoded only by the metaserver that signs it).
    #[serde(skip)]
    pub signed_as: SignedAs,
}

/// The encoding of the claims a token's MAC covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignedAs {
    /// Version 1: claims without a generation (they mean [`Generation::FIRST`]).
    V1,
    /// The current version.
    #[default]
    Current,
}

/// Version 1 of the token, frozen (`crate::format`: adding a version).
mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::id::GroupId;
    use crate::identity::PortPolicy;

    use super::{Holder, Indices};

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Claims {
        pub pool: u64,
        pub group: GroupId,
        pub indices: Indices,
        pub modes: u8,
        pub expires_ms: u64,
        pub holder: Holder,
        pub port: PortPolicy,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BlockToken {
        pub key_id: u32,
        pub claims: Claims,
        pub mac: [u8; 32],
    }
}

impl From<v1::BlockToken> for BlockToken {
    fn from(t: v1::BlockToken) -> Self {
        let c = t.claims;
        BlockToken {
            key_id: t.key_id,
            claims: Claims {
                pool: c.pool,
                group: c.group,
                indices: c.indices,
                modes: c.modes,
                expires_ms: c.expires_ms,
                holder: c.holder,
                port: c.port,
                generation: Generation::FIRST,
                servers: Vec::new(),
            },
            mac: t.mac,
            signed_as: SignedAs::V1,
        }
    }
}

impl Schema for BlockToken {
    type Value = Self;
    const RECORD: &'static str = "block token";
    const CURRENT: u16 = 2;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body::<v1::BlockToken>(Self::RECORD, bytes).map(BlockToken::from),
            2 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

/// The signature of `claims` under `key`: over a domain tag, the key's id and the claims'
/// encoding, so that no other HMAC the cluster computes can pass for a token's.
fn sign(key: &BlockKey, claims: &Claims) -> [u8; 32] {
    let mut mac = mac_of(key);
    mac.update(&signed_bytes(key.id, claims, SignedAs::Current));
    mac.finalize().into_bytes().into()
}

fn mac_of(key: &BlockKey) -> Hmac<Sha256> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    match <Hmac<Sha256> as Mac>::new_from_slice(&key.secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// What a MAC covers: the domain tag of the token's version, the key id, and the claims as
/// that version encoded them.
fn signed_bytes(key_id: u32, claims: &Claims, signed_as: SignedAs) -> Vec<u8> {
    // Plain data: postcard cannot fail to encode it into a Vec.
    let (tag, body): (&[u8], _) = match signed_as {
        SignedAs::V1 => {
            let c = claims.clone();
            let old = v1::Claims {
                pool: c.pool,
                group: c.group,
                indices: c.indices,
                modes: c.modes,
                expires_ms: c.expires_ms,
                holder: c.holder,
                port: c.port,
            };
            (b"raftfs block token v1\0", postcard::to_allocvec(&old))
        }
        SignedAs::Current => (b"raftfs block token v2\0", postcard::to_allocvec(claims)),
    };
    let mut out = tag.to_vec();
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(&body.unwrap_or_default());
    out
}

impl BlockToken {
    /// Signs `claims` with `key`. A token never outlives its key.
    pub fn mint(key: &BlockKey, mut claims: Claims) -> BlockToken {
        claims.expires_ms = claims.expires_ms.min(key.expires_ms);
        BlockToken {
            key_id: key.id,
            mac: sign(key, &claims),
            claims,
            signed_as: SignedAs::Current,
        }
    }

    /// The token's bytes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data: encoding cannot fail; an empty token is refused as `Missing`.
        format::encode::<BlockToken>(self).unwrap_or_default()
    }

    /// Decodes a token from the wire, its size checked first.
    pub fn decode(bytes: &[u8]) -> Result<BlockToken, TokenError> {
        if bytes.is_empty() {
            return Err(TokenError::Missing);
        }
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "{} bytes, above {MAX_TOKEN_BYTES}",
                bytes.len()
            )));
        }
        format::decode::<BlockToken>(bytes).map_err(|e| TokenError::Malformed(e.to_string()))
    }
}

/// What a call asks of the blocks, for [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// The pool whose key ring checks the token (a blockserver picks it by [`pool_of`]).
    pub pool: u64,
    pub group: GroupId,
    pub indices: Indices,
    pub mode: Mode,
    /// The blockserver asked (a write must be to one the token names).
    pub server: BlockServerId,
}

/// Why a token does not let a call through. Every refusal changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no block token")]
    Missing,
    #[error("malformed block token: {0}")]
    Malformed(String),
    /// Signed by a key this server does not know (yet: a blockserver learns keys within a
    /// heartbeat; or any more: the key expired).
    #[error("block token signed by unknown key {0}")]
    UnknownKey(u32),
    #[error("block token signature does not match")]
    BadSignature,
    #[error("block token expired at {expired_ms} (now {now_ms})")]
    Expired { expired_ms: u64, now_ms: u64 },
    #[error("block token is for another block")]
    WrongBlock,
    #[error("block token does not allow {0:?}")]
    WrongMode(Mode),
    /// A write token presented to a server that is not one of its group's targets.
    #[error("block token does not allow writes on blockserver {0}")]
    WrongServer(BlockServerId),
    #[error("block token belongs to another holder")]
    WrongHolder,
    /// The token was earned over an encrypted port and presented on a less protected one.
    #[error("block token was issued on a {issued:?} port, presented on a {presented:?} one")]
    WrongPort {
        issued: PortPolicy,
        presented: PortPolicy,
    },
}

impl TokenError {
    /// The refusal's name in metrics (`reason` label).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed(_) => "malformed",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired { .. } => "expired",
            TokenError::WrongBlock => "wrong_block",
            TokenError::WrongMode(_) => "wrong_mode",
            TokenError::WrongServer(_) => "wrong_server",
            TokenError::WrongHolder => "wrong_holder",
            TokenError::WrongPort { .. } => "wrong_port",
        }
    }

    /// Every reason, for metrics that show each from the start.
    pub const REASONS: [&'static str; 10] = [
        "missing",
        "malformed",
        "unknown_key",
        "bad_signature",
        "expired",
        "wrong_block",
        "wrong_mode",
        "wrong_server",
        "wrong_holder",
        "wrong_port",
    ];
}

/// How protected a port is: a token earned on one port is good on a port at least as
/// protected.
fn protection(p: PortPolicy) -> u8 {
    match p {
        PortPolicy::Plain => 0,
        PortPolicy::Tls => 1,
        PortPolicy::Mtls => 2,
    }
}

/// Checks that `bytes` is a token signed by a key of `ring` that lets `caller` do `want` at
/// `now_ms`, and returns its claims (the generation they name is the caller's to compare
/// with the block's). `nodes_claimed`: the cluster has no certificates, nodes are who they
/// claim.
pub fn check(
    ring: &KeyRing,
    bytes: &[u8],
    want: &Want,
    caller: &Caller,
    nodes_claimed: bool,
    now_ms: u64,
) -> Result<Claims, TokenError> {
    let token = BlockToken::decode(bytes)?;
    let key = ring
        .get(token.key_id)
        .ok_or(TokenError::UnknownKey(token.key_id))?;
    let mut mac = mac_of(key);
    mac.update(&signed_bytes(token.key_id, &token.claims, token.signed_as));
    // Constant time: the comparison must not tell a forger how many bytes it got right.
    mac.verify_slice(&token.mac)
        .map_err(|_| TokenError::BadSignature)?;
    let c = &token.claims;
    let expired_ms = c.expires_ms.min(key.expires_ms);
    if now_ms > expired_ms {
        return Err(TokenError::Expired { expired_ms, now_ms });
    }
    let no_block = want.indices.0 == 0;
    if no_block || c.pool != want.pool || c.group != want.group || !c.indices.covers(want.indices) {
        return Err(TokenError::WrongBlock);
    }
    if c.modes & want.mode.bit() == 0 {
        return Err(TokenError::WrongMode(want.mode));
    }
    if want.mode != Mode::Read && !c.servers.is_empty() && !c.servers.contains(&want.server) {
        return Err(TokenError::WrongServer(want.server));
    }
    if protection(caller.port) < protection(c.port) {
        return Err(TokenError::WrongPort {
            issued: c.port,
            presented: caller.port,
        });
    }
    if !c.holder.admits(caller, nodes_claimed) {
        return Err(TokenError::WrongHolder);
    }
    Ok(token.claims)
}

/// The pool a token names, read without checking it: which key ring is to check it (a
/// blockserver keeps one per pool). Whatever a forger writes here only picks the ring that
/// then refuses its signature.
pub fn pool_of(bytes: &[u8]) -> Result<u64, TokenError> {
    Ok(BlockToken::decode(bytes)?.claims.pool)
}

/// The keys a server knows, by id: the journaled set on a metaserver, what heartbeat replies
/// brought on a blockserver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRing {
    keys: BTreeMap<u32, BlockKey>,
}

impl KeyRing {
    /// A ring of `keys` (the newest [`MAX_KEYS`] of them).
    pub fn from_keys(keys: impl IntoIterator<Item = BlockKey>) -> KeyRing {
        let mut ring = KeyRing::default();
        for k in keys {
            ring.keys.insert(k.id, k);
        }
        ring.trim();
        ring
    }

    /// Adds `keys` (a key already known keeps its first secret: ids are never reused, and a
    /// peer that says otherwise is not believed) and forgets those expired at `now_ms`.
    pub fn learn(&mut self, keys: impl IntoIterator<Item = BlockKey>, now_ms: u64) {
        for k in keys {
            self.keys.entry(k.id).or_insert(k);
        }
        self.forget_expired(now_ms);
        self.trim();
    }

    /// Forgets keys expired at `now_ms`.
    pub fn forget_expired(&mut self, now_ms: u64) {
        self.keys.retain(|_, k| k.expires_ms >= now_ms);
    }

    fn trim(&mut self) {
        while self.keys.len() > MAX_KEYS {
            self.keys.pop_first();
        }
    }

    pub fn get(&self, id: u32) -> Option<&BlockKey> {
        self.keys.get(&id)
    }

    /// The key new tokens are signed with.
    pub fn newest(&self) -> Option<&BlockKey> {
        self.keys.last_key_value().map(|(_, k)| k)
    }

    pub fn keys(&self) -> impl Iterator<Item = &BlockKey> {
        self.keys.values()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Signs `claims` with the newest key that is still good at `now_ms`; `None` while there
    /// is none (a new cluster before its first key is journaled).
    pub fn mint(&self, claims: Claims, now_ms: u64) -> Option<BlockToken> {
        Some(BlockToken::mint(self.signing_key(now_ms)?, claims))
    }

    /// The key tokens are signed with at `now_ms`: the newest, while it is good.
    pub fn signing_key(&self, now_ms: u64) -> Option<&BlockKey> {
        self.newest().filter(|k| k.expires_ms > now_ms)
    }

    /// Whether the active should make a new key: none yet, or the newest is `roll_ms` old.
    pub fn roll_due(&self, now_ms: u64, roll_ms: u64) -> bool {
        self.newest()
            .is_none_or(|k| now_ms.saturating_sub(k.created_ms) >= roll_ms)
    }

    /// The id the next key takes.
    pub fn next_id(&self) -> u32 {
        self.newest().map_or(1, |k| k.id.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{BlockServerId, MemberId};
    use crate::identity::{Proof, User};

    fn key(id: u32, byte: u8) -> BlockKey {
        BlockKey {
            id,
            secret: [byte; SECRET_LEN],
            created_ms: 1_000,
            expires_ms: 100_000,
        }
    }

    fn user(name: &str, port: PortPolicy) -> Caller {
        Caller {
            principal: Principal::User(User {
                name: name.into(),
                groups: vec![],
            }),
            proof: Proof::Certificate,
            port,
        }
    }

    fn node(port: PortPolicy) -> Caller {
        Caller {
            principal: Principal::BlockServer(BlockServerId(3)),
            proof: Proof::Certificate,
            port,
        }
    }

    /// [`super::check`], for tests that look at the verdict alone.
    fn check(
        ring: &KeyRing,
        bytes: &[u8],
        want: &Want,
        caller: &Caller,
        nodes_claimed: bool,
        now_ms: u64,
    ) -> Result<(), TokenError> {
        super::check(ring, bytes, want, caller, nodes_claimed, now_ms).map(|_| ())
    }

    #[test]
    fn a_checked_token_gives_the_generation_it_was_signed_for() {
        let ring = KeyRing::from_keys([key(1, 7)]);
        let claims = Claims::for_nodes(GroupId(9), &[Mode::Write], 10_000, 5_000)
            .at_generation(Generation(4));
        let t = ring.mint(claims, 10_000).expect("key").encode();
        let got = super::check(
            &ring,
            &t,
            &want(9, 2, Mode::Write),
            &node(PortPolicy::Plain),
            false,
            11_000,
        )
        .expect("good token");
        assert_eq!(got.generation, Generation(4));
    }

    fn want(group: u64, index: u32, mode: Mode) -> Want {
        Want {
            pool: DEFAULT_POOL,
            group: GroupId(group),
            indices: Indices::one(index),
            mode,
            server: BlockServerId(3),
        }
    }

    #[test]
    fn a_token_opens_the_blocks_of_its_own_pool_only() {
        let ring = KeyRing::from_keys([key(1, 7)]);
        let alice = user("alice", PortPolicy::Plain);
        let claims = Claims::new(
            &alice,
            GroupId(5),
            Indices::ALL,
            &[Mode::Read],
            10_000,
            5_000,
        )
        .in_pool(42);
        let t = ring.mint(claims, 10_000).expect("key").encode();
        assert_eq!(pool_of(&t), Ok(42));
        let w = want(5, 1, Mode::Read);
        assert_eq!(
            check(&ring, &t, &w, &alice, false, 11_000).map(|_| ()),
            Err(TokenError::WrongBlock)
        );
        let w = Want { pool: 42, ..w };
        assert!(check(&ring, &t, &w, &alice, false, 11_000).is_ok());
        assert!(matches!(pool_of(b"junk"), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn a_write_token_bound_to_targets_writes_on_them_only() {
        let ring = KeyRing::from_keys([key(1, 7)]);
        let alice = user("alice", PortPolicy::Plain);
        let claims = Claims::new(
            &alice,
            GroupId(5),
            Indices::ALL,
            &[Mode::Read, Mode::Write],
            10_000,
            5_000,
        )
        .on_servers(&[BlockServerId(2), BlockServerId(3)]);
        let t = ring.mint(claims, 10_000).expect("key").encode();
        let on = |server, mode| {
            let w = Want {
                server: BlockServerId(server),
                ..want(5, 1, mode)
            };
            check(&ring, &t, &w, &alice, false, 11_000)
        };
        assert_eq!(on(3, Mode::Write), Ok(()));
        assert_eq!(on(2, Mode::Write), Ok(()));
        assert_eq!(
            on(4, Mode::Write),
            Err(TokenError::WrongServer(BlockServerId(4)))
        );
        // Reads go wherever a copy is (rebuilt copies live off the targets).
        assert_eq!(on(4, Mode::Read), Ok(()));
    }

    fn alice_read(ring: &KeyRing, group: u64, port: PortPolicy) -> Vec<u8> {
        let claims = Claims::new(
            &user("alice", port),
            GroupId(group),
            Indices::ALL,
            &[Mode::Read],
            10_000,
            5_000,
        );
        ring.mint(claims, 10_000).expect("a key").encode()
    }

    #[test]
    fn a_token_lets_its_holder_do_what_it_names_and_nothing_else() {
        let ring = KeyRing::from_keys([key(1, 7)]);
        let alice = user("alice", PortPolicy::Tls);
        let t = alice_read(&ring, 42, PortPolicy::Tls);
        let ok = |w: &Want, c: &Caller, now| check(&ring, &t, w, c, false, now);
        assert_eq!(ok(&want(42, 5, Mode::Read), &alice, 12_000), Ok(()));
        assert_eq!(ok(&want(42, 5, Mode::Read), &alice, 15_000), Ok(()));
        assert!(matches!(
            ok(&want(42, 5, Mode::Read), &alice, 15_001),
            Err(TokenError::Expired { .. })
        ));
        assert_eq!(
            ok(&want(43, 5, Mode::Read), &alice, 12_000),
            Err(TokenError::WrongBlock)
        );
        assert_eq!(
            ok(&want(42, 5, Mode::Write), &alice, 12_000),
            Err(TokenError::WrongMode(Mode::Write))
        );
        assert_eq!(
            ok(
                &want(42, 5, Mode::Read),
                &user("bob", PortPolicy::Tls),
                12_000
            ),
            Err(TokenError::WrongHolder)
        );
        assert_eq!(
            ok(&want(42, 5, Mode::Read), &node(PortPolicy::Tls), 12_000),
            Err(TokenError::WrongHolder)
        );
        assert!(matches!(
            ok(
                &want(42, 5, Mode::Read),
                &user("alice", PortPolicy::Plain),
                12_000
            ),
            Err(TokenError::WrongPort { .. })
        ));
        // A more protected port than the one it was earned on is fine.
        assert_eq!(
            ok(
                &want(42, 5, Mode::Read),
                &user("alice", PortPolicy::Mtls),
                12_000
            ),
            Ok(())
        );
    }

    #[test]
    fn forged_tampered_and_unknown_tokens_are_refused() {
        let ring = KeyRing::from_keys([key(1, 7)]);
        let alice = user("alice", PortPolicy::Plain);
        let w = want(42, 0, Mode::Read);
        let t = alice_read(&ring, 42, PortPolicy::Plain);
        assert_eq!(check(&ring, &t, &w, &alice, false, 12_000), Ok(()));
        // Another cluster's key (same id, other secret).
        let other = KeyRing::from_keys([key(1, 8)]);
        assert_eq!(
            check(&other, &t, &w, &alice, false, 12_000),
            Err(TokenError::BadSignature)
        );
        // Claims changed after signing: another group.
        let mut forged = BlockToken::decode(&t).expect("decodes");
        forged.claims.group = GroupId(43);
        assert_eq!(
            check(
                &ring,
                &forged.encode(),
                &want(43, 0, Mode::Read),
                &alice,
                false,
                12_000
            ),
            Err(TokenError::BadSignature)
        );
        let unknown = KeyRing::from_keys([key(2, 7)]);
        assert_eq!(
            check(&unknown, &t, &w, &alice, false, 12_000),
            Err(TokenError::UnknownKey(1))
        );
        assert_eq!(
            check(&ring, &[], &w, &alice, false, 12_000),
            Err(TokenError::Missing)
        );
        assert!(matches!(
            check(&ring, &[1, 2, 3], &w, &alice, false, 12_000),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            check(
                &ring,
                &vec![1; MAX_TOKEN_BYTES + 1],
                &w,
                &alice,
                false,
                12_000
            ),
            Err(TokenError::Malformed(_))
        ));
        // Every byte flipped in turn: never accepted.
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x40;
            assert!(
                check(&ring, &bad, &w, &alice, false, 12_000).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn node_tokens_are_for_nodes_unless_nodes_only_claim_who_they_are() {
        let ring = KeyRing::from_keys([key(1, 7)]);
        let t = ring
            .mint(
                Claims::for_nodes(GroupId(9), &[Mode::Read], 10_000, 5_000),
                10_000,
            )
            .expect("key")
            .encode();
        let w = want(9, 4, Mode::Read);
        let member = Caller {
            principal: Principal::Member(MemberId(1)),
            proof: Proof::Certificate,
            port: PortPolicy::Mtls,
        };
        assert_eq!(check(&ring, &t, &w, &member, false, 11_000), Ok(()));
        assert_eq!(
            check(&ring, &t, &w, &node(PortPolicy::Plain), false, 11_000),
            Ok(())
        );
        let mallory = user("mallory", PortPolicy::Plain);
        assert_eq!(
            check(&ring, &t, &w, &mallory, false, 11_000),
            Err(TokenError::WrongHolder)
        );
        assert_eq!(check(&ring, &t, &w, &mallory, true, 11_000), Ok(()));
    }

    #[test]
    fn a_token_never_outlives_its_key_and_the_ring_forgets_expired_keys() {
        let mut k = key(1, 7);
        k.expires_ms = 11_000;
        let ring = KeyRing::from_keys([k]);
        let t = alice_read(&ring, 42, PortPolicy::Plain);
        let alice = user("alice", PortPolicy::Plain);
        let w = want(42, 0, Mode::Read);
        assert_eq!(check(&ring, &t, &w, &alice, false, 11_000), Ok(()));
        assert!(matches!(
            check(&ring, &t, &w, &alice, false, 11_001),
            Err(TokenError::Expired { .. })
        ));
        let mut ring = ring;
        ring.learn([key(2, 9)], 11_001);
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.newest().map(|k| k.id), Some(2));
        // A peer cannot replace a known key's secret.
        ring.learn([key(2, 1)], 11_001);
        assert_eq!(ring.get(2).map(|k| k.secret[0]), Some(9));
    }

    #[test]
    fn keys_roll_when_due_and_ids_grow() {
        let ring = KeyRing::default();
        assert!(ring.roll_due(0, 600_000));
        assert_eq!(ring.next_id(), 1);
        assert!(
            ring.mint(Claims::for_nodes(GroupId(1), &[Mode::Read], 0, 1), 0)
                .is_none()
        );
        let ring = KeyRing::from_keys([key(1, 7)]);
        assert!(!ring.roll_due(1_000 + 599_999, 600_000));
        assert!(ring.roll_due(1_000 + 600_000, 600_000));
        assert_eq!(ring.next_id(), 2);
        let many = KeyRing::from_keys((1..=MAX_KEYS as u32 + 5).map(|i| key(i, 1)));
        assert_eq!(many.len(), MAX_KEYS);
        assert_eq!(many.keys().next().map(|k| k.id), Some(6));
    }

    #[test]
    fn indices_name_blocks_below_32_only() {
        assert_eq!(Indices::one(0), Indices(1));
        assert_eq!(Indices::one(31), Indices(1 << 31));
        assert_eq!(Indices::one(32), Indices(0));
        assert!(Indices::ALL.covers(Indices::of([0, 5, 31])));
        assert!(!Indices::of([1, 2]).covers(Indices::of([2, 3])));
        assert!(Indices::of([1, 2]).covers(Indices::of([2])));
    }
}
