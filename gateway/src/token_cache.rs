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

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use billing::{ChangeKind, Principal};
use sha2::{Digest, Sha256};

/// Entries kept at most; beyond, new tokens are looked up without being cached.
const MAX_ENTRIES: usize = 100_000;

pub struct TokenCache {
    ttl: Duration,
    inner: Mutex<Inner>,
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
        TokenCache {
            ttl,
            inner: Mutex::new(Inner::default()),
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
