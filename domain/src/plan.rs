//! Subscription plans and their limits, as the gateway enforces them (docs/protocol.md §5).
//!
//! Plans live in the database; this is their pure shape. [`Limits`] is the one description of
//! what a plan allows: the database row maps onto it, the `hello` and `plan` frames and the
//! account API serialise it as it is, and the gateway enforces it. `None` means unlimited.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Tlp;

/// A plan: its name, its price and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Plan name (`free`, `hobby`, `pro`, `enterprise`, or an admin-defined one).
    pub name: String,
    /// Price in US cents per month; `None` for contract pricing.
    pub price_cents: Option<i64>,
    pub limits: Limits,
}

/// What a plan allows. Serialised as the `limits` object of the stream's `hello` and `plan`
/// frames and of the account API (`null` = unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Full firehose (false: a sample of `sample_per_second`).
    pub firehose: bool,
    /// Indicators per second of the sample, for sample plans.
    pub sample_per_second: Option<u32>,
    /// Concurrent stream connections per account, across all nodes.
    pub max_connections: u32,
    /// Per-connection rate, indicators per second; `null` is unlimited.
    pub rate_per_second: Option<u32>,
    /// Per-connection burst.
    pub burst: Option<u32>,
    /// How far back a cursor may reach.
    #[serde(rename = "replay_window_seconds", with = "seconds")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub replay_window: Duration,
    /// Least shareable TLP level visible: `white`, `green`, `amber` or `red`.
    pub max_tlp: Tlp,
    /// Whether the correlated stream is included.
    pub correlated: bool,
}

impl Limits {
    /// Whether the plan may open a stream at all (403 before any upgrade, 4010 after a
    /// downgrade).
    pub fn allows_stream(&self) -> bool {
        self.firehose || self.sample_per_second.unwrap_or(0) > 0
    }

    /// The per-connection rate as (indicators per second, burst), or `None` for unlimited. A
    /// sample plan is capped at its sample rate whatever its rate says.
    pub fn effective_rate(&self) -> Option<(u32, u32)> {
        let rate = match (self.firehose, self.rate_per_second, self.sample_per_second) {
            (true, rate, _) => rate?,
            (false, Some(rate), Some(sample)) => rate.min(sample),
            (false, rate, sample) => rate.or(sample)?,
        };
        let burst = self.burst.unwrap_or(rate).max(1);
        Some((rate, burst))
    }
}

impl Plan {
    /// The default plans (docs/protocol.md §5), as seeded by the first migration.
    pub fn defaults() -> Vec<Plan> {
        const HOUR: u64 = 3600;
        vec![
            Plan {
                name: "free".into(),
                price_cents: Some(0),
                limits: Limits {
                    firehose: false,
                    sample_per_second: Some(1),
                    max_connections: 1,
                    rate_per_second: Some(1),
                    burst: Some(10),
                    replay_window: Duration::ZERO,
                    max_tlp: Tlp::Green,
                    correlated: false,
                },
            },
            Plan {
                name: "hobby".into(),
                price_cents: Some(2500),
                limits: Limits {
                    firehose: true,
                    sample_per_second: None,
                    max_connections: 2,
                    rate_per_second: Some(100),
                    burst: Some(1000),
                    replay_window: Duration::from_secs(HOUR),
                    max_tlp: Tlp::Amber,
                    correlated: true,
                },
            },
            Plan {
                name: "pro".into(),
                price_cents: Some(5000),
                limits: Limits {
                    firehose: true,
                    sample_per_second: None,
                    max_connections: 10,
                    rate_per_second: Some(2000),
                    burst: Some(20000),
                    replay_window: Duration::from_secs(24 * HOUR),
                    max_tlp: Tlp::Amber,
                    correlated: true,
                },
            },
            Plan {
                name: "enterprise".into(),
                price_cents: None,
                limits: Limits {
                    firehose: true,
                    sample_per_second: None,
                    max_connections: 100,
                    rate_per_second: None,
                    burst: None,
                    replay_window: Duration::from_secs(24 * HOUR),
                    max_tlp: Tlp::Red,
                    correlated: true,
                },
            },
        ]
    }
}

/// A duration as whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plans_rates() {
        let plans = Plan::defaults();
        let rate = |n: usize| plans[n].limits.effective_rate();
        assert_eq!(rate(0), Some((1, 10)));
        assert_eq!(rate(1), Some((100, 1000)));
        assert_eq!(rate(2), Some((2000, 20000)));
        assert_eq!(rate(3), None);
        assert!(plans.iter().all(|plan| plan.limits.allows_stream()));
        let mut closed = plans[0].limits.clone();
        closed.sample_per_second = None;
        assert!(!closed.allows_stream());
    }

    #[test]
    fn limits_serialise_as_the_frames_state_them() {
        let limits = &Plan::defaults()[1].limits;
        let json = serde_json::to_value(limits).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "firehose": true,
                "sample_per_second": null,
                "max_connections": 2,
                "rate_per_second": 100,
                "burst": 1000,
                "replay_window_seconds": 3600,
                "max_tlp": "amber",
                "correlated": true,
            })
        );
        assert_eq!(&serde_json::from_value::<Limits>(json).unwrap(), limits);
    }
}
