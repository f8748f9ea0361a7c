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

use governor::clock::Clock;
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
    /// The account is over its rate of TAXII pages; it may ask again after this long.
    PageRate(Duration),
}

impl Throttled {
    pub fn reason(self) -> &'static str {
        match self {
            Throttled::Busy => "busy",
            Throttled::Rate(_) => "rate",
            Throttled::PageRate(_) => "page_rate",
        }
    }
}

/// One per-account request rate: governor's keyed limiter, pruned of accounts back at a full
/// burst once a minute or when it holds more than [`PRUNE_ABOVE`].
struct AccountRate {
    /// `None`: a zero rate, no limit.
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
    rate: u32,
    burst: u32,
    pruned_at: Mutex<Instant>,
}

impl AccountRate {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = burst.max(1);
        let limiter = NonZeroU32::new(rate).map(|per_second| {
            let quota = Quota::per_second(per_second)
                .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
            RateLimiter::keyed(quota)
        });
        AccountRate {
            limiter,
            rate,
            burst,
            pruned_at: Mutex::new(Instant::now()),
        }
    }

    /// Counts one request; `Err` says how long to wait.
    fn check(&self, account_id: i64) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        {
            let mut pruned_at = self.pruned_at.lock().expect("feed limits lock poisoned");
            if limiter.len() > PRUNE_ABOVE || pruned_at.elapsed() >= PRUNE_EVERY {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                *pruned_at = Instant::now();
            }
        }
        limiter
            .check_key(&account_id)
            .map_err(|not_until| not_until.wait_time_from(crate::enforcement::clock().now()))
    }

    fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |limiter| limiter.len())
    }
}

/// The node's feed bounds. Built once per node (`AppState`).
pub struct FeedLimits {
    scans: Semaphore,
    feeds: AccountRate,
    /// TAXII pages: a client walks a collection page by page, each a bounded read forwards
    /// from a position, so pages get a rate of their own (`--taxii-rate`, `--taxii-burst`).
    pages: AccountRate,
}

/// TAXII pages a second per account, and their burst, unless configured.
pub const DEFAULT_PAGE_RATE: u32 = 10;
pub const DEFAULT_PAGE_BURST: u32 = 50;

impl FeedLimits {
    /// `max_concurrent` scans at once (at least one); `rate` requests a second per account after
    /// a burst of `burst` (at least one), or no per-account limit when `rate` is zero. TAXII
    /// pages get the default page rate ([`FeedLimits::with_page_rate`] to change it).
    pub fn new(max_concurrent: usize, rate: u32, burst: u32) -> Self {
        FeedLimits {
            scans: Semaphore::new(max_concurrent.max(1)),
            feeds: AccountRate::new(rate, burst),
            pages: AccountRate::new(DEFAULT_PAGE_RATE, DEFAULT_PAGE_BURST),
        }
    }

    /// TAXII pages a second per account after a burst of `burst`; zero: no limit.
    pub fn with_page_rate(mut self, rate: u32, burst: u32) -> Self {
        self.pages = AccountRate::new(rate, burst);
        self
    }

    /// Counts one feed request of `account_id` against its rate.
    pub fn admit(&self, account_id: i64) -> Result<(), Throttled> {
        self.feeds.check(account_id).map_err(Throttled::Rate)
    }

    /// Counts one TAXII page of `account_id` against its rate.
    pub fn admit_page(&self, account_id: i64) -> Result<(), Throttled> {
        self.pages.check(account_id).map_err(Throttled::PageRate)
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
                        self.feeds.rate, self.feeds.burst
                    ),
                    retry_after_seconds: seconds,
                }
            }
            Throttled::PageRate(wait) => {
                let seconds = retry_after_seconds(wait);
                ApiError::TooManyRequests {
                    message: format!(
                        "this account asks for TAXII pages more often than {} a second (bursts \
                         of {}) on this node; retry in {seconds} s, or ask for larger pages \
                         (`limit`, up to 1,000)",
                        self.pages.rate, self.pages.burst
                    ),
                    retry_after_seconds: seconds,
                }
            }
        }
    }

    /// Accounts the per-account feed limiter currently holds.
    pub fn accounts(&self) -> usize {
        self.feeds.len()
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
    fn taxii_pages_have_their_own_rate() {
        let limits = FeedLimits::new(1, 1, 1).with_page_rate(1, 3);
        limits.admit(1).unwrap();
        assert!(matches!(limits.admit(1), Err(Throttled::Rate(_))));
        for _ in 0..3 {
            limits.admit_page(1).unwrap();
        }
        let throttled = limits.admit_page(1).unwrap_err();
        assert_eq!(throttled.reason(), "page_rate");
        let message = limits.refusal(throttled).to_string();
        assert!(message.contains("TAXII pages"), "{message}");
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
