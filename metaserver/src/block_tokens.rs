//! Block access tokens on the metaserver (DESIGN §9): the active's key roller, and the tokens
//! every member signs with the journaled keys.
//!
//! The keys live in the namespace's state (`namespace::block_keys`), so every member has the
//! same ones: the active and observers sign tokens for what they serve, every member hands
//! the keys to blockservers in heartbeat replies, and a new active goes on with its
//! predecessor's keys. The roller runs on the active: when the newest key is `key-roll-secs`
//! old (or there is none), it journals a new random one. A key lives `key-roll-secs +
//! lifetime-secs`, so that a token signed just before the next roll runs its course.

use raftfs_core::block_token::{BlockKey, BlockToken, Claims, Indices, KeyRing, Mode, SECRET_LEN};
use raftfs_core::id::GroupId;
use raftfs_core::identity::Caller;
use raftfs_runtime::Outcome;
use rand::Rng;

use crate::config::BlockTokens;
use crate::error::MetaError;
use crate::journal::proposer::now_ms;
use crate::journal::{CallId, ClientId, Proposal};
use crate::namespace::{Op, block_keys};
use crate::node::MetaNode;
use crate::observer::Role;

/// The keys this member's state holds now.
pub async fn keys(node: &MetaNode) -> Result<KeyRing, MetaError> {
    node.read_local(|kv| block_keys::load(kv).map_err(MetaError::from))
        .await
}

/// One round of the roller: on the active, journals a new key when one is due.
pub async fn roll_round(node: &MetaNode, settings: &BlockTokens) -> Result<Outcome, MetaError> {
    if node.role() != Role::Active {
        return Ok(Outcome::Skipped);
    }
    let ring = keys(node).await?;
    let now = now_ms();
    if !ring.roll_due(now, settings.key_roll_ms()) {
        return Ok(Outcome::Done { items: 0 });
    }
    let key = new_key(ring.next_id(), now, settings);
    let id = key.id;
    let proposal = Proposal {
        client: ClientId::default(),
        call_id: CallId::UNCACHED,
        op: Op::RollBlockKey { key },
        access: None,
    };
    let (index, result) = node.proposer.propose(proposal).await?;
    result.map_err(|source| MetaError::Namespace {
        source,
        state_id: index,
    })?;
    tracing::info!(id, index, "block key rolled");
    Ok(Outcome::Done { items: 1 })
}

/// A fresh key: its secret from the operating system's generator (through `rand`'s
/// cryptographically secure thread generator, reseeded from it).
fn new_key(id: u32, now_ms: u64, settings: &BlockTokens) -> BlockKey {
    let mut secret = [0u8; SECRET_LEN];
    rand::rng().fill(&mut secret);
    BlockKey {
        id,
        secret,
        created_ms: now_ms,
        expires_ms: now_ms
            .saturating_add(settings.key_roll_ms())
            .saturating_add(settings.lifetime_ms()),
    }
}

/// A token for `caller` on every internal block of `group`, in `modes`; empty while the
/// cluster has no key yet (the blockserver then refuses the call as `missing`, and the
/// client retries as for any refused block).
pub fn for_caller(
    ring: &KeyRing,
    settings: &BlockTokens,
    caller: &Caller,
    group: GroupId,
    modes: &[Mode],
) -> Vec<u8> {
    let now = now_ms();
    let claims = Claims::new(
        caller,
        group,
        Indices::ALL,
        modes,
        now,
        settings.lifetime_ms(),
    );
    encoded(ring.mint(claims, now))
}

/// A token for the cluster's own work on `group` (a reconstruction task's reads, lease
/// recovery's measurements): any node may present it.
pub fn for_nodes(ring: &KeyRing, settings: &BlockTokens, group: GroupId) -> Vec<u8> {
    let now = now_ms();
    let claims = Claims::for_nodes(group, &[Mode::Read], now, settings.lifetime_ms());
    encoded(ring.mint(claims, now))
}

fn encoded(token: Option<BlockToken>) -> Vec<u8> {
    token.map(|t| t.encode()).unwrap_or_default()
}
