//! What a feed may cost a node (docs/protocol.md §8.4). One feed scans up to 200,000 log entries
//! (`scan.rs`): CPU the node's streams need too. Two bounds, both answered with 429:
//!
//! - per account: governor's keyed limiter, `--feed-rate` requests a second after a burst of
//!   `--feed-burst`, keyed by account id. A node-wide setting, not a plan limit: the plans' rates
//!   are indicators a second on one connection, another unit, and what a feed costs depends on
//!   the log's size, not on the plan. The limiter's state is pruned of accounts back at a full
//!   burst (`retain_recent`) once a minute, or sooner when it holds more than [`PRUNE_ABOVE`];
//! - per node: a semaphore of `--max-concurrent-feeds` permits (default: the number of CPUs),
//!   taken for the scan and the encoding of the answer. A request that gets none within
//!   [`PERMIT_WAIT`] is refused with `Retry-After: 1` rather than queued, so a burst of feeds
//!   cannot stack up work the clients have given up waiting for.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

/// How long a feed waits for a scan permit before it is refused.
pub const PERMIT_WAIT: Duration = Duration::from_millis(250);
/// Accounts the per-account limiter holds before it is pruned early.
const PRUNE_ABOVE: usize = 10_000;
/// How often the per-account limiter is pruned anyway.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Why a feed was refused: the `reason` label of `sluice_feed_throttled_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Every scan permit was taken for [`PERMIT_WAIT`].
    Busy,
    /// The account is over its feed rate; it may ask again after this long.
    Rate(Duration),
}

impl Throttled {
    pub fn reason(self) -> &'static str {
        match self {
            Throttled::Busy => "busy",
            Throttled::Rate(_) => "rate",
        }
    }
}

/// The node's feed bounds. Built once per node (`AppState`).
pub struct FeedLimits {
    scans: Semaphore,
    /// `None`: `--feed-rate 0`, no per-account limit.
    per_account: Option<DefaultKeyedRateLimiter<i64>>,
    rate: u32,
    burst: u32,
    pruned_at: Mutex<Instant>,
}

impl FeedLimits {
    /// `max_concurrent` scans at once (at least one); `rate` requests a second per account after
    /// a burst of `burst` (at least one), or no per-account limit when `rate` is zero.
    pub fn new(max_concurrent: usize, rate: u32, burst: u32) -> Self {
        let burst = burst.max(1);
        let per_account = NonZeroU32::new(rate).map(|per_second| {
            let quota = Quota::per_second(per_second)
                .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
            RateLimiter::keyed(quota)
        });
        FeedLimits {
            scans: Semaphore::new(max_concurrent.max(1)),
            per_account,
            rate,
            burst,
            pruned_at: Mutex::new(Instant::now()),
        }
    }

    /// Counts one feed request of `account_id` against its rate.
    pub fn admit(&self, account_id: i64) -> Result<(), Throttled> {
        let Some(limiter) = &self.per_account else {
            return Ok(());
        };
        self.prune(limiter);
        limiter.check_key(&account_id).map_err(|not_until| {
            Throttled::Rate(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// A permit to scan, held until the answer is built; waits at most [`PERMIT_WAIT`].
    pub async fn scan_permit(&self) -> Result<SemaphorePermit<'_>, Throttled> {
        match tokio::time::timeout(PERMIT_WAIT, self.scans.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out, or closed (never: the semaphore is not closed).
            _ => Err(Throttled::Busy),
        }
    }

    /// The 429 of a refusal, saying what to do.
    pub fn refusal(&self, throttled: Throttled) -> ApiError {
        match throttled {
            Throttled::Busy => ApiError::TooManyRequests {
                message: "this node is busy answering other feed requests; retry in 1 s (to \
                          follow new indicators, stream `/v1/stream` instead of polling)"
                    .into(),
                retry_after_seconds: 1,
            },
            Throttled::Rate(wait) => {
                let seconds = retry_after_seconds(wait);
                ApiError::TooManyRequests {
                    message: format!(
                        "this account asks for feeds more often than {} a second (bursts of {}) \
                         on this node; retry in {seconds} s, or stream `/v1/stream` to follow \
                         new indicators without polling",
                        self.rate, self.burst
                    ),
                    retry_after_seconds: seconds,
                }
            }
        }
    }

    /// Accounts the per-account limiter currently holds.
    pub fn accounts(&self) -> usize {
        self.per_account.as_ref().map_or(0, |limiter| limiter.len())
    }

    fn prune(&self, limiter: &DefaultKeyedRateLimiter<i64>) {
        let mut pruned_at = self.pruned_at.lock().expect("feed limits lock poisoned");
        if limiter.len() > PRUNE_ABOVE || pruned_at.elapsed() >= PRUNE_EVERY {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            *pruned_at = Instant::now();
        }
    }
}

/// Whole seconds to wait, rounded up, at least one (`Retry-After` has no fractions).
fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_its_burst_then_waits_and_others_are_not_held_up() {
        let limits = FeedLimits::new(2, 1, 5);
        for _ in 0..5 {
            limits.admit(1).unwrap();
        }
        let Err(Throttled::Rate(wait)) = limits.admit(1) else {
            panic!("the sixth request in a burst of five was admitted");
        };
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        match limits.refusal(Throttled::Rate(wait)) {
            ApiError::TooManyRequests {
                retry_after_seconds,
                message,
            } => {
                assert_eq!(retry_after_seconds, 1);
                assert!(message.contains("retry in 1 s"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        limits.admit(2).unwrap();
        assert_eq!(limits.accounts(), 2);
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let limits = FeedLimits::new(1, 0, 5);
        for _ in 0..100 {
            limits.admit(1).unwrap();
        }
        assert_eq!(limits.accounts(), 0);
    }

    #[tokio::test]
    async fn scans_beyond_the_permits_are_refused_after_a_short_wait() {
        let limits = FeedLimits::new(1, 0, 1);
        let held = limits.scan_permit().await.unwrap();
        let started = Instant::now();
        assert_eq!(limits.scan_permit().await.unwrap_err(), Throttled::Busy);
        assert!(started.elapsed() >= PERMIT_WAIT - Duration::from_millis(10));
        drop(held);
        let _again = limits.scan_permit().await.unwrap();
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1200)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    }
}
