//! A node's cache of authenticated API tokens, so a handshake usually costs no database query.
//!
//! Entries live for `--token-cache-ttl` (default 60 s; `0s` turns the cache off) and are dropped
//! at once when the change log says they are stale: the node's change poller calls
//! [`TokenCache::invalidate`] for every change (plan change, plan edit, revocation) before it
//! tells the live streams, so a revoked token stops opening streams on every node within a poll
//! interval, like it stops live ones. A lookup that raced with a change is used once but not
//! cached ([`TokenCache::generation`]). Expiry is checked on every hit. Keys are SHA-256 of the
//! presented token: no plaintext token is kept. Hits do not refresh the token's `last_used_at`
//! (it is written at most once a minute anyway).
//!
//! Refusals are cached too, briefly: a well-formed token with a valid checksum that the
//! database does not know (or knows as revoked or expired, which never become valid again) is
//! remembered for [`NEGATIVE_TTL`] (5 s, or the cache's TTL if shorter), at most
//! [`MAX_NEGATIVE`] of them (the oldest are forgotten first), so a client repeating a bad token
//! costs the database one lookup per 5 s, not one per request. Keys are SHA-256 as above. The
//! price: a token presented while the database did not know it yet (a token registered by
//! another process a moment later, a replica that lagged behind the write) is refused for up to
//! 5 s after the node first asked. Revocation is unaffected: it only ever turns a token away.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use billing::{ChangeKind, Principal};
use sha2::{Digest, Sha256};

/// Entries kept at most; beyond, new tokens are looked up without being cached.
const MAX_ENTRIES: usize = 100_000;
/// How long a refused token is remembered (at most the cache's TTL).
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Refused tokens remembered at most; beyond, the oldest is forgotten.
pub const MAX_NEGATIVE: usize = 10_000;

pub struct TokenCache {
    ttl: Duration,
    inner: Mutex<Inner>,
    negative: Mutex<Negative>,
}

/// Refused tokens' hashes: when each was refused, and the same keys oldest first. Every entry
/// lives equally long, so the oldest is always at the front.
struct Negative {
    ttl: Duration,
    max: usize,
    refused: HashMap<[u8; 32], Instant>,
    order: VecDeque<([u8; 32], Instant)>,
}

impl Negative {
    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    fn contains(&mut self, key: &[u8; 32]) -> bool {
        match self.refused.get(key) {
            Some(at) if self.fresh(*at) => true,
            Some(_) => {
                self.refused.remove(key);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, key: [u8; 32]) {
        if self.ttl.is_zero() || self.contains(&key) {
            return;
        }
        // Forget what expired, and the oldest while full. A queued key whose time is not the
        // map's was forgotten and refused again since: its newer entry is further back.
        while let Some(&(front, at)) = self.order.front() {
            if self.fresh(at) && self.refused.len() < self.max {
                break;
            }
            self.order.pop_front();
            if self.refused.get(&front) == Some(&at) {
                self.refused.remove(&front);
            }
        }
        let now = Instant::now();
        self.refused.insert(key, now);
        self.order.push_back((key, now));
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<[u8; 32], (Principal, Instant)>,
    /// The newest change applied: a lookup started before a change must not be cached after it.
    generation: i64,
}

impl TokenCache {
    /// A cache keeping entries for `ttl`; zero disables it.
    pub fn new(ttl: Duration) -> Self {
        Self::with_negative(ttl, NEGATIVE_TTL.min(ttl), MAX_NEGATIVE)
    }

    /// A cache keeping entries for `ttl`, and refusals for `negative_ttl`, at most
    /// `max_negative` of them (zero of either: refusals are not cached).
    pub fn with_negative(ttl: Duration, negative_ttl: Duration, max_negative: usize) -> Self {
        let negative_ttl = if max_negative == 0 {
            Duration::ZERO
        } else {
            negative_ttl
        };
        TokenCache {
            ttl,
            inner: Mutex::new(Inner::default()),
            negative: Mutex::new(Negative {
                ttl: negative_ttl,
                max: max_negative,
                refused: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The cached principal of `token`, if fresh and not expired.
    pub fn get(&self, token: &str) -> Option<Principal> {
        if self.ttl.is_zero() {
            return None;
        }
        let key = Self::key(token);
        let mut inner = self.inner.lock().expect("token cache lock poisoned");
        let (principal, fetched) = inner.entries.get(&key)?;
        let expired = principal
            .expires_at
            .is_some_and(|expires| expires <= chrono::Utc::now());
        if expired || fetched.elapsed() >= self.ttl {
            inner.entries.remove(&key);
            return None;
        }
        Some(principal.clone())
    }

    /// Read before looking a token up in the database; pass it to [`TokenCache::insert`].
    pub fn generation(&self) -> i64 {
        self.inner
            .lock()
            .expect("token cache lock poisoned")
            .generation
    }

    /// Caches a principal looked up when the cache was at `generation`, unless a change was
    /// applied since (the principal may predate it).
    pub fn insert(&self, token: &str, principal: &Principal, generation: i64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.inner.lock().expect("token cache lock poisoned");
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            inner
                .entries
                .retain(|_, (_, fetched)| fetched.elapsed() < ttl);
            if inner.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        inner
            .entries
            .insert(Self::key(token), (principal.clone(), Instant::now()));
    }

    /// Whether `token` was refused by the database within the negative TTL: refuse it again
    /// without asking.
    pub fn refused(&self, token: &str) -> bool {
        let mut negative = self.negative.lock().expect("token cache lock poisoned");
        if negative.ttl.is_zero() {
            return false;
        }
        negative.contains(&Self::key(token))
    }

    /// Remembers that the database refused `token` (unknown, revoked or expired).
    pub fn insert_refused(&self, token: &str) {
        self.negative
            .lock()
            .expect("token cache lock poisoned")
            .insert(Self::key(token));
    }

    /// Refused tokens currently remembered (expired ones included until they are pruned).
    pub fn refused_len(&self) -> usize {
        self.negative
            .lock()
            .expect("token cache lock poisoned")
            .refused
            .len()
    }

    /// Drops what change `id` makes stale and moves the generation on.
    pub fn invalidate(&self, id: i64, change: &ChangeKind) {
        let mut inner = self.inner.lock().expect("token cache lock poisoned");
        inner.generation = inner.generation.max(id);
        inner.entries.retain(|_, (principal, _)| match change {
            ChangeKind::AccountPlan { account_id, .. } => principal.account_id != *account_id,
            ChangeKind::PlanEdited { plan } => principal.plan.name != plan.name,
            ChangeKind::TokenRevoked { token_id, .. } => principal.token_id != *token_id,
        });
    }

    /// How long refusals are remembered.
    pub fn negative_ttl(&self) -> Duration {
        self.negative.lock().expect("token cache lock poisoned").ttl
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("token cache lock poisoned")
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(account_id: i64, token_id: &str, plan: &str) -> Principal {
        Principal {
            account_id,
            account: format!("account-{account_id}"),
            plan: domain::Plan::defaults()
                .into_iter()
                .find(|p| p.name == plan)
                .unwrap(),
            scope: billing::Scope::Read,
            token_id: token_id.to_owned(),
            expires_at: None,
        }
    }

    #[test]
    fn changes_drop_exactly_what_they_make_stale() {
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.insert("a", &principal(1, "tok_a", "pro"), 0);
        cache.insert("b", &principal(2, "tok_b", "pro"), 0);
        cache.insert("c", &principal(3, "tok_c", "hobby"), 0);
        assert_eq!(cache.len(), 3);
        cache.invalidate(
            1,
            &ChangeKind::TokenRevoked {
                account_id: 1,
                token_id: "tok_a".into(),
            },
        );
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some());
        let hobby = principal(3, "tok_c", "hobby").plan;
        cache.invalidate(
            2,
            &ChangeKind::PlanEdited {
                plan: hobby.clone(),
            },
        );
        assert!(cache.get("c").is_none());
        cache.invalidate(
            3,
            &ChangeKind::AccountPlan {
                account_id: 2,
                plan: hobby,
            },
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn a_lookup_that_raced_with_a_change_is_not_cached() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let seen = cache.generation();
        cache.invalidate(
            7,
            &ChangeKind::TokenRevoked {
                account_id: 1,
                token_id: "tok_a".into(),
            },
        );
        cache.insert("a", &principal(1, "tok_a", "pro"), seen);
        assert!(cache.get("a").is_none());
        cache.insert("a", &principal(1, "tok_a", "pro"), cache.generation());
        assert!(cache.get("a").is_some());
    }

    #[test]
    fn refusals_are_remembered_for_the_negative_ttl() {
        let cache =
            TokenCache::with_negative(Duration::from_secs(60), Duration::from_millis(50), 100);
        assert!(!cache.refused("slc_unknown"));
        cache.insert_refused("slc_unknown");
        assert!(cache.refused("slc_unknown"));
        assert!(!cache.refused("slc_other"));
        // A refusal does not hide a principal cached for the same token, nor the reverse.
        assert!(cache.get("slc_unknown").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            !cache.refused("slc_unknown"),
            "a token created since works once the negative TTL has passed"
        );
        // The default: 5 s, never longer than the cache's own TTL; none when the cache is off.
        assert_eq!(
            TokenCache::new(Duration::from_secs(60)).negative_ttl(),
            NEGATIVE_TTL
        );
        assert_eq!(
            TokenCache::new(Duration::from_secs(2)).negative_ttl(),
            Duration::from_secs(2)
        );
        let off = TokenCache::new(Duration::ZERO);
        off.insert_refused("slc_unknown");
        assert!(!off.refused("slc_unknown"));
        assert_eq!(off.refused_len(), 0);
    }

    #[test]
    fn refusals_are_bounded_forgetting_the_oldest_first() {
        let cache = TokenCache::with_negative(Duration::from_secs(60), Duration::from_secs(60), 3);
        for token in ["a", "b", "c", "d", "e"] {
            cache.insert_refused(token);
            assert!(cache.refused_len() <= 3);
        }
        assert_eq!(cache.refused_len(), 3);
        assert!(!cache.refused("a") && !cache.refused("b"));
        assert!(cache.refused("c") && cache.refused("d") && cache.refused("e"));
        // Refusing a remembered token again does not grow the queue.
        for _ in 0..10 {
            cache.insert_refused("e");
        }
        assert_eq!(cache.negative.lock().unwrap().order.len(), 3);

        // Expired refusals are pruned as new ones arrive, whatever the bound.
        let short =
            TokenCache::with_negative(Duration::from_secs(60), Duration::from_millis(20), 1000);
        for n in 0..100 {
            short.insert_refused(&format!("old-{n}"));
        }
        std::thread::sleep(Duration::from_millis(40));
        short.insert_refused("new");
        assert_eq!(short.refused_len(), 1);
        assert!(short.refused("new"));
    }

    #[test]
    fn expired_tokens_and_old_entries_miss() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let mut expiring = principal(1, "tok_a", "pro");
        expiring.expires_at = Some(chrono::Utc::now() - chrono::TimeDelta::seconds(1));
        cache.insert("a", &expiring, 0);
        assert!(cache.get("a").is_none());
        let off = TokenCache::new(Duration::ZERO);
        off.insert("b", &principal(2, "tok_b", "pro"), 0);
        assert!(off.get("b").is_none());
        let short = TokenCache::new(Duration::from_millis(1));
        short.insert("c", &principal(3, "tok_c", "pro"), 0);
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get("c").is_none());
    }
}
