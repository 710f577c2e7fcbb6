//! What a blockserver knows to judge block access tokens (DESIGN §9), and the fence against
//! deposed actives.
//!
//! - **Keys**: every metaserver's heartbeat reply carries the journaled keys; this server
//!   keeps the union (a key's secret as first learnt), forgetting the expired. A token signed
//!   by a key newer than any known here (the active rolled one a moment ago, and the next
//!   heartbeat has not brought it yet) waits up to [`KEY_WAIT`] for it rather than failing a
//!   client at once; a key this server has never heard of after that is refused.
//! - **Fence**: each reply names its sender's term and whether it is the active in it.
//!   Deletions, tasks and cancellations are carried out only from the active of the highest
//!   term this server has seen, so a deposed active that wakes up with work queued (its
//!   deletions computed against a namespace it no longer leads) is ignored: the standbys
//!   already told this server the new term.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raftfs_core::block_token::{self, BlockKey, Claims, KeyRing, SECRET_LEN, TokenError, Want};
use raftfs_core::identity::Caller;
use raftfs_proto as pb;
use tokio::sync::watch;

/// How long a call signed by a key newer than any known here waits for a heartbeat to bring
/// it (heartbeats go every second to every metaserver).
pub const KEY_WAIT: Duration = Duration::from_secs(3);

/// How far past the newest known key id a token's key may be and still be waited for.
const KEY_LOOKAHEAD: u32 = 2;

/// Most calls waiting for a key at once.
const MAX_KEY_WAITERS: usize = 256;

/// The wall clock, ms since the epoch (tokens' expiry is the signing metaserver's clock plus
/// the lifetime; clocks are assumed within seconds of each other, as for leases).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The keys this server knows, one ring per pool (each nameservice's active makes its own
/// keys: a token is checked with the ring of the pool it names, so one nameservice can never
/// sign for another's blocks), and who waits for new ones.
#[derive(Debug)]
pub struct Keys {
    rings: BTreeMap<u64, PoolKeys>,
    /// No certificates: nodes are who they claim (`Authorizer::claimed_nodes`).
    nodes_claimed: bool,
}

/// One pool's ring, and the calls waiting for its keys: each pool has its own permits, so
/// tokens naming a pool whose nameservice is down (its ring empty, every key id "on its
/// way") cannot take the waits of another pool's calls.
#[derive(Debug)]
struct PoolKeys {
    ring: watch::Sender<KeyRing>,
    waiters: tokio::sync::Semaphore,
}

impl Keys {
    /// Empty rings for `pools`.
    pub fn new(nodes_claimed: bool, pools: &[u64]) -> Self {
        Self {
            rings: pools
                .iter()
                .map(|p| {
                    let keys = PoolKeys {
                        ring: watch::Sender::new(KeyRing::default()),
                        waiters: tokio::sync::Semaphore::new(MAX_KEY_WAITERS),
                    };
                    (*p, keys)
                })
                .collect(),
            nodes_claimed,
        }
    }

    /// Adds the keys a heartbeat reply from a member of `pool`'s nameservice carried
    /// (malformed ones skipped); returns how many keys are known now, over every pool.
    pub fn learn(&self, pool: u64, keys: &[pb::BlockKey]) -> usize {
        let now = now_ms();
        let keys: Vec<BlockKey> = keys.iter().filter_map(key).collect();
        if let Some(pool) = self.rings.get(&pool) {
            pool.ring.send_if_modified(|ring| {
                let before = ring.clone();
                ring.learn(keys, now);
                *ring != before
            });
        }
        self.rings.values().map(|k| k.ring.borrow().len()).sum()
    }

    /// Whether `token` lets `caller` do `want` now (checked with the ring of `want.pool`);
    /// its claims if so.
    pub async fn check(
        &self,
        token: &[u8],
        want: &Want,
        caller: &Caller,
    ) -> Result<Claims, TokenError> {
        let Some(PoolKeys { ring, waiters }) = self.rings.get(&want.pool) else {
            // A pool this server does not keep: no block of it is here (a token that is
            // not one at all says so first).
            block_token::BlockToken::decode(token)?;
            return Err(TokenError::WrongBlock);
        };
        let mut rx = ring.subscribe();
        let first = self.check_now(&rx.borrow_and_update(), token, want, caller);
        match first {
            Err(TokenError::UnknownKey(id)) if newer_than_known(&ring.borrow(), id) => {
                // At most MAX_KEY_WAITERS calls wait at once: the rest are judged now.
                let Ok(_waiting) = waiters.try_acquire() else {
                    return first;
                };
                let wait = rx.wait_for(|ring| ring.get(id).is_some());
                // Either the key came, or it did not in time: judge on what is known then.
                let _ = tokio::time::timeout(KEY_WAIT, wait).await;
                let known = ring.borrow().clone();
                self.check_now(&known, token, want, caller)
            }
            other => other,
        }
    }

    fn check_now(
        &self,
        ring: &KeyRing,
        token: &[u8],
        want: &Want,
        caller: &Caller,
    ) -> Result<Claims, TokenError> {
        block_token::check(ring, token, want, caller, self.nodes_claimed, now_ms())
    }
}

/// Whether a token's key may be on its way: none known yet, or one of the next
/// [`KEY_LOOKAHEAD`] ids (a key id far ahead is a forgery, refused without waiting).
fn newer_than_known(ring: &KeyRing, id: u32) -> bool {
    ring.newest()
        .is_none_or(|k| id > k.id && id - k.id <= KEY_LOOKAHEAD)
}

/// A key from the wire; `None` for one whose secret is not [`SECRET_LEN`] bytes.
fn key(k: &pb::BlockKey) -> Option<BlockKey> {
    Some(BlockKey {
        id: k.id,
        secret: <[u8; SECRET_LEN]>::try_from(k.secret.as_slice()).ok()?,
        created_ms: k.created_ms,
        expires_ms: k.expires_ms,
    })
}

/// The highest Raft term any metaserver's reply named.
#[derive(Debug, Default)]
pub struct Fence {
    highest: AtomicU64,
}

impl Fence {
    /// Whether a reply's orders count: its sender says it is the active in `term`, and no
    /// active has named a later term. Only actives raise the mark: a standby cut off from
    /// the other members keeps starting elections (openraft has no pre-vote), and its
    /// growing term must not fence out the real active.
    pub fn admits(&self, term: u64, active: bool) -> bool {
        if !active {
            return false;
        }
        let before = self.highest.fetch_max(term, Ordering::AcqRel);
        term >= before
    }

    /// The highest term seen.
    pub fn highest(&self) -> u64 {
        self.highest.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_count_only_from_the_active_of_the_highest_term_seen() {
        let fence = Fence::default();
        assert!(fence.admits(3, true));
        // A standby's term (a cut-off one's keeps growing) is no order and no fence.
        assert!(!fence.admits(9, false));
        assert!(fence.admits(3, true));
        // The active of term 4 deposes the one of term 3.
        assert!(fence.admits(4, true));
        assert!(!fence.admits(3, true));
        assert!(fence.admits(5, true));
        assert!(!fence.admits(4, true));
        assert_eq!(fence.highest(), 5);
    }

    #[tokio::test]
    async fn a_token_is_checked_with_the_keys_of_the_pool_it_names() {
        use raftfs_core::block_token::{Indices, Mode};
        use raftfs_core::id::{BlockServerId, GroupId};
        use raftfs_core::identity::{PortPolicy, Principal, Proof};
        let (a, b) = (11u64, 22u64);
        let keys = Keys::new(false, &[a, b]);
        // Both nameservices' actives numbered their first key 1; the secrets differ.
        let wire = |secret: u8| pb::BlockKey {
            id: 1,
            secret: vec![secret; SECRET_LEN],
            created_ms: 0,
            expires_ms: u64::MAX,
        };
        keys.learn(a, &[wire(1)]);
        assert_eq!(keys.learn(b, &[wire(2)]), 2);
        let ring_a = KeyRing::from_keys(key(&wire(1)));
        let node = Caller {
            principal: Principal::BlockServer(BlockServerId(3)),
            proof: Proof::Claimed,
            port: PortPolicy::Plain,
        };
        let now = now_ms();
        let token = |pool| {
            let claims = Claims::for_nodes(GroupId(9), &[Mode::Read], now, 60_000).in_pool(pool);
            ring_a.mint(claims, now).expect("key").encode()
        };
        let want = |pool| Want {
            pool,
            group: GroupId(9),
            indices: Indices::one(0),
            mode: Mode::Read,
            server: BlockServerId(3),
        };
        assert!(keys.check(&token(a), &want(a), &node).await.is_ok());
        // Pool a's key signing for pool b's blocks: b's ring refuses the signature.
        assert_eq!(
            keys.check(&token(b), &want(b), &node).await.map(|_| ()),
            Err(TokenError::BadSignature)
        );
        // A token for one pool does not open another's block of the same group.
        assert_eq!(
            keys.check(&token(a), &want(b), &node).await.map(|_| ()),
            Err(TokenError::BadSignature)
        );
        // A pool this server does not keep.
        assert_eq!(
            keys.check(&token(a), &want(33), &node).await.map(|_| ()),
            Err(TokenError::WrongBlock)
        );
    }

    #[test]
    fn keys_with_a_secret_of_another_length_are_skipped() {
        let keys = Keys::new(false, &[block_token::DEFAULT_POOL]);
        let good = pb::BlockKey {
            id: 1,
            secret: vec![7; SECRET_LEN],
            created_ms: 0,
            expires_ms: u64::MAX,
        };
        let bad = pb::BlockKey {
            id: 2,
            secret: vec![7; 5],
            ..good.clone()
        };
        assert_eq!(keys.learn(block_token::DEFAULT_POOL, &[good, bad]), 1);
    }
}
