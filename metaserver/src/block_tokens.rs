//! Block access tokens on the metaserver (DESIGN §9): the active's key roller, and the tokens
//! every member signs with the journaled keys.
//!
//! The keys live in the namespace's state (`namespace::block_keys`), so every member has the
//! same ones: the active and observers sign tokens for what they serve, every member hands
//! the keys to blockservers in heartbeat replies, and a new active goes on with its
//! predecessor's keys. The roller runs on the active: when the newest key is `key-roll-secs`
//! old (or there is none), it journals a new random one. A key lives `key-roll-secs +
//! lifetime-secs`, so that a token signed just before the next roll runs its course.
//!
//! `Op::RollBlockKey` is a variant appended to `Op` (core `format.rs`): a binary older than
//! it cannot apply it. Until rolling upgrades exist (issue 20), every member of a cluster runs
//! one binary; that upgrade gate must hold the roller (and `signing_keys`' first roll)
//! until an upgrade that brings it is finalized.

use raftfs_core::block_token::{BlockKey, BlockToken, Claims, Indices, KeyRing, Mode, SECRET_LEN};
use raftfs_core::id::{BlockServerId, Generation, GroupId};
use raftfs_core::identity::Caller;
use raftfs_runtime::Outcome;
use std::time::{Duration, Instant};

use crate::config::BlockTokens;
use crate::error::MetaError;
use crate::journal::proposer::now_ms;
use crate::journal::{CallId, ClientId, Proposal};
use crate::namespace::{NsError, Op, block_keys};
use crate::node::MetaNode;
use crate::observer::Role;

/// The keys this member's state holds now.
pub async fn keys(node: &MetaNode) -> Result<KeyRing, MetaError> {
    node.read_local(|kv| block_keys::load(kv).map_err(MetaError::from))
        .await
}

/// How long [`KeyCache`] answers without reading the state again.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// The keys as of at most [`CACHE_TTL`] ago, for the heartbeat replies: every blockserver
/// heartbeats every member every second, and the keys change once per `key-roll-secs`, so
/// reading the record for each reply would be thousands of reads a second on a large fleet
/// for nothing. A key rolled a moment ago reaches blockservers a second later at most, and a
/// blockserver waits that long for a key it does not know yet.
#[derive(Debug, Default)]
pub struct KeyCache {
    cached: std::sync::Mutex<Option<(Instant, KeyRing)>>,
}

impl KeyCache {
    pub async fn get(&self, node: &MetaNode) -> Result<KeyRing, MetaError> {
        if let Some((at, ring)) = &*self.lock()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(ring.clone());
        }
        let ring = keys(node).await?;
        *self.lock() = Some((Instant::now(), ring.clone()));
        Ok(ring)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, KeyRing)>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One round of the roller: on the active, journals a new key when one is due.
pub async fn roll_round(node: &MetaNode, settings: &BlockTokens) -> Result<Outcome, MetaError> {
    if node.role() != Role::Active {
        return Ok(Outcome::Skipped);
    }
    let ring = keys(node).await?;
    if !ring.roll_due(now_ms(), settings.key_roll_ms()) {
        return Ok(Outcome::Done { items: 0 });
    }
    roll(node, &ring, settings).await?;
    Ok(Outcome::Done { items: 1 })
}

/// The keys, with one that can sign now: on the active, a cluster that has none yet (just
/// bootstrapped: the roller's first round may not have run) journals one first, so that the
/// first group allocated comes with its token.
pub async fn signing_keys(node: &MetaNode, settings: &BlockTokens) -> Result<KeyRing, MetaError> {
    let ring = keys(node).await?;
    if ring.signing_key(now_ms()).is_some() {
        return Ok(ring);
    }
    roll(node, &ring, settings).await?;
    keys(node).await
}

/// Journals the key after the newest of `ring`. Two rolls racing name the same id and the
/// second is refused by the apply: either way a new key is in, which is all a caller needs.
async fn roll(node: &MetaNode, ring: &KeyRing, settings: &BlockTokens) -> Result<(), MetaError> {
    let key = new_key(ring.next_id(), now_ms(), settings);
    let id = key.id;
    let proposal = Proposal {
        client: ClientId::default(),
        call_id: CallId::UNCACHED,
        op: Op::RollBlockKey { key },
        access: None,
    };
    let (index, result) = node.proposer.propose(proposal).await?;
    match result {
        Ok(_) => tracing::info!(id, index, "block key rolled"),
        Err(NsError::InvalidArgument(why)) => tracing::debug!(id, %why, "a concurrent roll won"),
        Err(source) => {
            return Err(MetaError::Namespace {
                source,
                state_id: index,
            });
        }
    }
    Ok(())
}

/// A fresh key: its secret from the operating system's generator (through `rand`'s
/// cryptographically secure thread generator, reseeded from it).
fn new_key(id: u32, now_ms: u64, settings: &BlockTokens) -> BlockKey {
    let mut secret = [0u8; SECRET_LEN];
    raftfs_runtime::simulation::fill(&mut secret);
    BlockKey {
        id,
        secret,
        created_ms: now_ms,
        expires_ms: now_ms
            .saturating_add(settings.key_roll_ms())
            .saturating_add(settings.lifetime_ms()),
    }
}

/// A token for `caller` on every internal block of `group` (at its generation), in `modes`,
/// writes bound to `servers` (the group's targets; none for a read token); empty while the
/// cluster has no key yet (the blockserver then refuses the call as `missing`, and the
/// client retries as for any refused block).
pub fn for_caller(
    ring: &KeyRing,
    settings: &BlockTokens,
    pool: u64,
    caller: &Caller,
    group: (GroupId, Generation),
    modes: &[Mode],
    servers: &[BlockServerId],
) -> Vec<u8> {
    let now = now_ms();
    let claims = Claims::new(
        caller,
        group.0,
        Indices::ALL,
        modes,
        now,
        settings.lifetime_ms(),
    )
    .in_pool(pool)
    .at_generation(group.1)
    .on_servers(servers);
    encoded(ring.mint(claims, now))
}

/// A token for the cluster's own work on `group` at its generation (a reconstruction task's
/// reads, lease recovery's restamps on `servers`): any node may present it.
pub fn for_nodes(
    ring: &KeyRing,
    settings: &BlockTokens,
    pool: u64,
    group: (GroupId, Generation),
    modes: &[Mode],
    servers: &[BlockServerId],
) -> Vec<u8> {
    let now = now_ms();
    let claims = Claims::for_nodes(group.0, modes, now, settings.lifetime_ms())
        .in_pool(pool)
        .at_generation(group.1)
        .on_servers(servers);
    encoded(ring.mint(claims, now))
}

/// Lease recovery's token for `group`'s servers: `RecoverBlock` only (no read, no write), at
/// the generation the recovery moves the group to, on its targets, and short-lived (a
/// recovery's calls take seconds): a server that keeps it can do nothing with it later.
pub fn for_recovery(
    ring: &KeyRing,
    settings: &BlockTokens,
    pool: u64,
    group: &crate::namespace::blocks::BlockGroup,
    generation: Generation,
) -> Vec<u8> {
    let now = now_ms();
    let lifetime = RECOVERY_TOKEN_LIFETIME_MS.min(settings.lifetime_ms());
    let claims = Claims::for_nodes(group.id, &[Mode::Recover], now, lifetime)
        .in_pool(pool)
        .at_generation(generation)
        .on_servers(&group.targets);
    encoded(ring.mint(claims, now))
}

/// Lifetime of lease recovery's tokens.
const RECOVERY_TOKEN_LIFETIME_MS: u64 = 60_000;

fn encoded(token: Option<BlockToken>) -> Vec<u8> {
    token.map(|t| t.encode()).unwrap_or_default()
}
