//! [`Throttle`]: how often passwords may be tried. Every sign-up and sign-in costs an argon2id
//! hash (tens of milliseconds of CPU, 19 MiB of memory), and sign-in is where passwords are
//! guessed, so both are limited before any hashing: per email address for sign-in (guessing one
//! account's password), and per process for all of them (the CPU a flood of requests could
//! take). How many hashes run at once is bounded separately, in `billing` (its hash gate).
//!
//! The per-process limit is governor's, as the gateway's rate limits. The per-email limit is a
//! small GCRA over a map of our own, because governor's keyed limiter cannot be bounded: its
//! `check_key` inserts the key before deciding, it cannot look a key up without inserting it,
//! and it has no capacity (only `retain_recent`, which keeps every key still limited). Here:
//!
//! - keys are a SHA-256 of a per-process random salt and the normalised address (trimmed,
//!   ASCII-lower-cased, as `billing::normalize_email` stores it), 32 bytes whatever was sent,
//!   and the map never holds the attacker's text;
//! - an address is only remembered once the per-process limit has admitted its attempt, so
//!   new keys arrive at most at the per-process rate; an attempt refused for its address
//!   costs no per-process token;
//! - the map holds at most [`MAX_TRACKED_EMAILS`] keys: inserting into a full map first drops
//!   the entries that have expired (a key whose limit has fully recovered carries no state);
//!   if it is still full, the attempt is refused (429) rather than another key evicted. Evicting
//!   (oldest first or any other order) would let an attacker wipe a victim's lockout by
//!   sending attempts for enough other addresses, and then guess again; refusing only denies
//!   sign-ins for new addresses while the map is full, which the per-process limit already
//!   lets anyone do. With the limits below the map cannot even fill: an entry lives at most
//!   `PER_EMAIL_BURST × PER_EMAIL_PERIOD` (60 s) after its last attempt, and the per-process
//!   limit admits 40 + 20 × 60 = 1,240 attempts in 60 s.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Sign-in attempts per email address: a burst of 10, then one every 6 s (10 a minute).
const PER_EMAIL_BURST: u32 = 10;
const PER_EMAIL_PERIOD: Duration = Duration::from_secs(6);
/// Password hashes per process: a burst of 40, then 20 a second.
const PER_PROCESS_BURST: u32 = 40;
const PER_PROCESS_RATE: u32 = 20;
/// Most email addresses the per-email limit remembers at once (about 1 MiB of map).
pub const MAX_TRACKED_EMAILS: usize = 10_000;

/// The key of one address in the per-email map.
type EmailKey = [u8; 32];

/// The limiters of one web router.
#[derive(Debug)]
pub struct Throttle {
    /// Per address key: the GCRA theoretical arrival time (an entry at or before now is the
    /// same as no entry).
    per_email: Mutex<HashMap<EmailKey, Instant>>,
    max_tracked: usize,
    salt: [u8; 32],
    per_process: DefaultDirectRateLimiter,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(MAX_TRACKED_EMAILS, PER_PROCESS_RATE, PER_PROCESS_BURST)
    }
}

impl Throttle {
    /// Limiters remembering at most `max_tracked` addresses, admitting `rate` hashes a second
    /// after a burst of `burst` per process.
    fn new(max_tracked: usize, rate: u32, burst: u32) -> Throttle {
        let nonzero = |n: u32| NonZeroU32::new(n).expect("the limits are above zero");
        Throttle {
            per_email: Mutex::new(HashMap::new()),
            max_tracked,
            salt: rand::random(),
            per_process: RateLimiter::direct(
                Quota::per_second(nonzero(rate)).allow_burst(nonzero(burst)),
            ),
        }
    }

    /// Admits a sign-up (any email) or refuses it with a 429.
    pub fn sign_up(&self) -> Result<(), ApiError> {
        self.hash()
    }

    /// Admits a sign-in attempt for `email` (compared trimmed and ASCII-lower-cased, as the
    /// store compares it) or refuses it with a 429 saying when to try again. The caller has
    /// already refused over-long addresses; longer ones would still cost only their hash.
    pub fn sign_in(&self, email: &str) -> Result<(), ApiError> {
        self.sign_in_at(email, Instant::now())
    }

    /// How many email addresses the per-email limit currently remembers (expired ones
    /// included until they are dropped).
    pub fn tracked_emails(&self) -> usize {
        self.per_email_map().len()
    }

    fn sign_in_at(&self, email: &str, now: Instant) -> Result<(), ApiError> {
        let key = self.key(email);
        // One lock over the whole decision, so two attempts cannot both take the last one
        // allowed; nothing inside waits.
        let mut per_email = self.per_email_map();
        let tolerance = PER_EMAIL_PERIOD * (PER_EMAIL_BURST - 1);
        let arrival = per_email.get(&key).map_or(now, |&tat| tat.max(now));
        if arrival > now + tolerance {
            return Err(too_many(
                "too many sign-in attempts for this email address",
                arrival - tolerance - now,
            ));
        }
        if !per_email.contains_key(&key) && per_email.len() >= self.max_tracked {
            per_email.retain(|_, tat| *tat > now);
            if per_email.len() >= self.max_tracked {
                tracing::warn!(
                    tracked = per_email.len(),
                    "sign-in throttle is full; refusing attempts for new email addresses"
                );
                return Err(too_many(
                    "too many sign-ins at the moment",
                    PER_EMAIL_PERIOD,
                ));
            }
        }
        self.hash()?;
        per_email.insert(key, arrival + PER_EMAIL_PERIOD);
        Ok(())
    }

    fn key(&self, email: &str) -> EmailKey {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(email.trim().to_ascii_lowercase().as_bytes());
        hasher.finalize().into()
    }

    fn per_email_map(&self) -> std::sync::MutexGuard<'_, HashMap<EmailKey, Instant>> {
        // The map stays consistent whatever panicked while it was held (each change is one
        // insert or retain).
        self.per_email
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hash(&self) -> Result<(), ApiError> {
        match self.per_process.check() {
            Ok(()) => Ok(()),
            Err(not_until) => Err(too_many(
                "too many sign-ins and sign-ups at the moment",
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
        }
    }
}

fn too_many(what: &str, wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + 1;
    ApiError::TooManyRequests {
        message: format!("{what}; try again in {seconds} s"),
        retry_after_seconds: seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_is_limited_per_email_address() {
        let throttle = Throttle::default();
        for _ in 0..PER_EMAIL_BURST {
            throttle.sign_in("ada@example.com").unwrap();
        }
        let refused = throttle.sign_in(" ADA@example.com ").unwrap_err();
        assert!(
            refused.to_string().contains("this email address"),
            "{refused}"
        );
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        // Another address is not held up by the first one's attempts.
        throttle.sign_in("bob@example.com").unwrap();
        assert_eq!(throttle.tracked_emails(), 2);
    }

    #[test]
    fn an_address_recovers_one_attempt_per_period() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..PER_EMAIL_BURST {
            throttle.sign_in_at("ada@example.com", start).unwrap();
        }
        let refused = throttle.sign_in_at("ada@example.com", start).unwrap_err();
        assert!(
            refused.to_string().contains("try again in 7 s"),
            "{refused}"
        );
        let later = start + PER_EMAIL_PERIOD;
        throttle.sign_in_at("ada@example.com", later).unwrap();
        throttle.sign_in_at("ada@example.com", later).unwrap_err();
    }

    #[test]
    fn password_hashing_is_limited_per_process() {
        let throttle = Throttle::default();
        // The burst is admitted, then refusals come (1,000 tries take far less than the 50 s
        // that refilling 1,000 would).
        let admitted = (0..1_000)
            .take_while(|_| throttle.sign_up().is_ok())
            .count();
        assert!(admitted >= PER_PROCESS_BURST as usize, "{admitted}");
        assert!(admitted < 1_000, "never refused");
        let refused = throttle.sign_in("carol@example.com").unwrap_err();
        assert!(refused.to_string().contains("at the moment"), "{refused}");
        // Refused by the process limit: the address was not remembered.
        assert_eq!(throttle.tracked_emails(), 0);
    }

    #[test]
    fn addresses_refused_by_the_process_limit_are_not_remembered() {
        // As the default throttle sees a flood of distinct addresses: only the admitted ones
        // (the burst, and what refills meanwhile) take a key.
        let throttle = Throttle::default();
        for n in 0..20_000 {
            let _ = throttle.sign_in(&format!("user{n}@example.com"));
        }
        let tracked = throttle.tracked_emails();
        assert!(tracked >= PER_PROCESS_BURST as usize, "{tracked}");
        assert!(tracked < 1_000, "{tracked}");
    }

    #[test]
    fn the_map_never_holds_more_than_its_cap_and_keeps_lockouts() {
        // No process limit to speak of, so only the cap bounds the map.
        let cap = MAX_TRACKED_EMAILS;
        let throttle = Throttle::new(cap, u32::MAX, u32::MAX);
        let start = Instant::now();
        // A victim's address, locked out by a guesser.
        for _ in 0..PER_EMAIL_BURST {
            throttle.sign_in_at("victim@example.com", start).unwrap();
        }
        throttle
            .sign_in_at("victim@example.com", start)
            .unwrap_err();
        // 20,000 other addresses, ~500 bytes each: the map fills up to its cap, then refuses
        // new addresses instead of evicting any.
        let long = "x".repeat(480);
        let mut refused = 0;
        for n in 0..20_000 {
            let email = format!("{long}{n}@example.com");
            match throttle.sign_in_at(&email, start) {
                Ok(()) => {}
                Err(error) => {
                    assert!(error.to_string().contains("at the moment"), "{error}");
                    refused += 1;
                }
            }
            assert!(throttle.tracked_emails() <= cap);
        }
        assert_eq!(throttle.tracked_emails(), cap);
        assert_eq!(refused, 20_000 - (cap - 1));
        // The victim is still locked out.
        let error = throttle
            .sign_in_at("victim@example.com", start)
            .unwrap_err();
        assert!(error.to_string().contains("this email address"), "{error}");
        // Once the flood's entries have expired (one attempt each: one period), a new address
        // drops them and gets in; the victim's lockout (ten attempts, 60 s) is still there:
        // one period has given back one attempt, no more.
        let later = start + PER_EMAIL_PERIOD + Duration::from_millis(1);
        throttle.sign_in_at("newcomer@example.com", later).unwrap();
        assert_eq!(throttle.tracked_emails(), 2);
        throttle.sign_in_at("victim@example.com", later).unwrap();
        let error = throttle
            .sign_in_at("victim@example.com", later)
            .unwrap_err();
        assert!(error.to_string().contains("this email address"), "{error}");
    }

    #[test]
    fn keys_are_fixed_size_hashes_of_the_normalised_address() {
        let throttle = Throttle::default();
        assert_eq!(
            throttle.key(" Ada@Example.COM "),
            throttle.key("ada@example.com")
        );
        assert_ne!(
            throttle.key("ada@example.com"),
            throttle.key("bob@example.com")
        );
        // Another process (another salt) has other keys.
        assert_ne!(
            Throttle::default().key("ada@example.com"),
            throttle.key("ada@example.com")
        );
    }
}
