//! [`Throttle`]: how often passwords may be tried. Every sign-up and sign-in costs an argon2id
//! hash (tens of milliseconds of CPU), and sign-in is where passwords are guessed, so both are
//! limited before any hashing: per email address for sign-in (guessing one account's password),
//! and per process for all of them (the CPU a flood of requests could take).
//!
//! governor's limiters, as the gateway's rate limits; the per-email state is pruned as it grows.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Sign-in attempts per email address: a burst of 10, then one every 6 s (10 a minute).
const PER_EMAIL_BURST: u32 = 10;
const PER_EMAIL_PERIOD: Duration = Duration::from_secs(6);
/// Password hashes per process: a burst of 40, then 20 a second.
const PER_PROCESS_BURST: u32 = 40;
const PER_PROCESS_RATE: u32 = 20;
/// Emails remembered before the stale ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

/// The limiters of one web router.
#[derive(Debug)]
pub struct Throttle {
    per_email: DefaultKeyedRateLimiter<String>,
    per_process: DefaultDirectRateLimiter,
}

impl Default for Throttle {
    fn default() -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n).expect("the limits are constants above zero");
        Throttle {
            per_email: RateLimiter::keyed(
                Quota::with_period(PER_EMAIL_PERIOD)
                    .expect("a non-zero period")
                    .allow_burst(nonzero(PER_EMAIL_BURST)),
            ),
            per_process: RateLimiter::direct(
                Quota::per_second(nonzero(PER_PROCESS_RATE))
                    .allow_burst(nonzero(PER_PROCESS_BURST)),
            ),
        }
    }
}

impl Throttle {
    /// Admits a sign-up (any email) or refuses it with a 429.
    pub fn sign_up(&self) -> Result<(), ApiError> {
        self.hash()
    }

    /// Admits a sign-in attempt for `email` (compared lower-cased and trimmed) or refuses it
    /// with a 429 saying when to try again.
    pub fn sign_in(&self, email: &str) -> Result<(), ApiError> {
        if self.per_email.len() > PRUNE_ABOVE {
            self.per_email.retain_recent();
        }
        let key = email.trim().to_lowercase();
        if let Err(not_until) = self.per_email.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(too_many(
                "too many sign-in attempts for this email address",
                wait,
            ));
        }
        self.hash()
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
    }
}
