//! What a plan lets one connection see, and how fast (docs/protocol.md §5): TLP visibility, the
//! correlated stream, the free plan's sample, the per-connection rate, the replay window. The
//! limits themselves are `domain::Limits`; this is where the gateway applies them.
//!
//! Rate limiting uses one governor limiter per connection, built from the connection's plan and
//! rebuilt when the plan changes (a quota change means a new limiter). A direct limiter per
//! connection costs a few bytes and needs no keyed state to prune.

use std::num::NonZeroU32;
use std::time::Duration;

use domain::{Indicator, Limits, StreamId};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Whether the plan may see this indicator. Invisible indicators are filtered, not dropped:
/// they are not part of what this subscriber's stream carries.
pub fn visible(limits: &Limits, indicator: &Indicator) -> bool {
    indicator.tlp() <= limits.max_tlp && (limits.correlated || !indicator.is_correlated())
}

/// The oldest position the plan may resume from, at `now_ms`: entries older than the replay
/// window are out of reach.
pub fn replay_floor(limits: &Limits, now_ms: u64) -> StreamId {
    let window_ms = u64::try_from(limits.replay_window.as_millis()).unwrap_or(u64::MAX);
    StreamId::new(now_ms.saturating_sub(window_ms), 0)
}

/// One connection's rate limiter.
pub struct RateGate<C: Clock = DefaultClock> {
    limiter: Option<RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>>,
}

/// The process's one rate-limit clock. Making one reads the CPU's features and calibrates
/// (quanta), several microseconds: a node accepting thousands of connections a second spent a
/// few percent of its CPU on it when each connection made its own. Clones share it.
pub fn clock() -> DefaultClock {
    static CLOCK: std::sync::LazyLock<DefaultClock> =
        std::sync::LazyLock::new(DefaultClock::default);
    CLOCK.clone()
}

impl RateGate<DefaultClock> {
    pub fn for_limits(limits: &Limits) -> Self {
        Self::with_clock(limits, clock())
    }
}

impl<C: Clock> RateGate<C> {
    /// A gate on `clock` (tests use governor's fake clock).
    pub fn with_clock(limits: &Limits, clock: C) -> Self {
        let limiter = limits.effective_rate().map(|(rate, burst)| {
            let quota = match NonZeroU32::new(rate) {
                Some(rate) => Quota::per_second(rate),
                // A zero rate allows only the burst, refilled once an hour.
                None => Quota::with_period(Duration::from_secs(3600)).expect("non-zero period"),
            }
            .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
            RateLimiter::direct_with_clock(quota, clock)
        });
        RateGate { limiter }
    }

    /// Takes one indicator's worth of quota; false means over the rate (skip and count it).
    pub fn admit(&self) -> bool {
        self.limiter
            .as_ref()
            .is_none_or(|limiter| limiter.check().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use proptest::prelude::*;

    fn limits(rate: Option<u32>, burst: Option<u32>) -> Limits {
        let mut limits = domain::Plan::defaults().remove(2).limits;
        limits.rate_per_second = rate;
        limits.burst = burst;
        limits
    }

    #[test]
    fn unlimited_admits_everything() {
        let gate = RateGate::for_limits(&limits(None, None));
        assert!((0..100_000).all(|_| gate.admit()));
    }

    proptest! {
        /// In every window of length W, accepted ≤ rate·W + burst (the token bucket's bound, which
        /// makes `dropped` counts predictable; docs/protocol.md §5.4), and a client that stays
        /// within the rate is never refused.
        #[test]
        fn accepted_never_exceeds_rate_times_window_plus_burst(
            rate in 1u32..50,
            burst in 1u32..40,
            gaps_ms in proptest::collection::vec(0u64..400, 1..300),
        ) {
            let clock = FakeRelativeClock::default();
            let gate = RateGate::with_clock(&limits(Some(rate), Some(burst)), clock.clone());
            let mut accepted_at = Vec::new();
            let mut now = 0u64;
            for gap in gaps_ms {
                clock.advance(Duration::from_millis(gap));
                now += gap;
                if gate.admit() {
                    accepted_at.push(now);
                }
            }
            for (i, &start) in accepted_at.iter().enumerate() {
                for (j, &end) in accepted_at.iter().enumerate().skip(i) {
                    let window_s = (end - start) as f64 / 1000.0;
                    let accepted = (j - i + 1) as f64;
                    prop_assert!(accepted <= f64::from(rate) * window_s + f64::from(burst) + 1e-9,
                        "{accepted} accepted in {window_s}s at rate {rate} burst {burst}");
                }
            }
        }

        #[test]
        fn steady_client_within_rate_is_never_refused(rate in 1u32..100, count in 1usize..200) {
            let clock = FakeRelativeClock::default();
            let gate = RateGate::with_clock(&limits(Some(rate), Some(1)), clock.clone());
            let period = Duration::from_nanos(1_000_000_000 / u64::from(rate) + 1);
            for _ in 0..count {
                prop_assert!(gate.admit());
                clock.advance(period);
            }
        }
    }
}
