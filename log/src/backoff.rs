//! Exponential backoff with jitter, shared by every loop that retries a backend (the log's
//! readers, the change-log poller, the upstream subscriber, `sluice stream`'s reconnects).

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Delays that double from `initial` up to `max`, each drawn from the upper half of its step so
/// that many clients retrying at once spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 100 ms up to 2 s: for a node's own loops, which must come back quickly.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// Back to the first, shortest delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: `initial · 2^attempt`, at most `max`, times a random factor in [½, 1].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    /// Sleeps the next delay, or until `shutdown`.
    pub async fn wait(&mut self, shutdown: &CancellationToken) {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_stay_under_the_ceiling() {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(250));
        assert!(delays[0] >= Duration::from_millis(125));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays[11] >= Duration::from_millis(2500));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(250));
    }

    #[test]
    fn the_default_is_quick() {
        let mut backoff = Backoff::default();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(backoff.next_delay() <= Duration::from_secs(2));
        }
    }
}
