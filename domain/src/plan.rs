//! A subscription plan's limits, as the gateway enforces them (SPEC §5).
//!
//! Plans live in the database; this is their pure shape. `None` means unlimited.

use std::time::Duration;

use crate::Tlp;

#[derive(Debug, Clone, PartialEq)]
pub struct PlanLimits {
    /// Plan name (`free`, `hobby`, `pro`, `enterprise`, or an admin-defined one).
    pub name: String,
    /// Price in US cents per month; `None` for contract pricing.
    pub price_cents: Option<i64>,
    /// Whether the plan gets the full firehose (false: a sample of `sample_per_second`).
    pub firehose: bool,
    /// For sample plans: indicators per second the sample carries.
    pub sample_per_second: Option<u32>,
    /// Concurrent stream connections per account, across all nodes.
    pub max_connections: u32,
    /// Per-connection rate: indicators per second; `None` is unlimited.
    pub rate_per_second: Option<u32>,
    /// Per-connection burst.
    pub burst: Option<u32>,
    /// How far back `cursor` may reach.
    pub replay_window: Duration,
    /// Most restrictive TLP level the plan may see.
    pub max_tlp: Tlp,
    /// Whether the correlated stream is included.
    pub correlated: bool,
}

impl PlanLimits {
    /// The defaults of SPEC §5, as seeded by the first migration.
    pub fn defaults() -> Vec<PlanLimits> {
        const HOUR: u64 = 3600;
        vec![
            PlanLimits {
                name: "free".into(),
                price_cents: Some(0),
                firehose: false,
                sample_per_second: Some(1),
                max_connections: 1,
                rate_per_second: Some(1),
                burst: Some(10),
                replay_window: Duration::ZERO,
                max_tlp: Tlp::Green,
                correlated: false,
            },
            PlanLimits {
                name: "hobby".into(),
                price_cents: Some(2500),
                firehose: true,
                sample_per_second: None,
                max_connections: 2,
                rate_per_second: Some(100),
                burst: Some(1000),
                replay_window: Duration::from_secs(HOUR),
                max_tlp: Tlp::Amber,
                correlated: true,
            },
            PlanLimits {
                name: "pro".into(),
                price_cents: Some(5000),
                firehose: true,
                sample_per_second: None,
                max_connections: 10,
                rate_per_second: Some(2000),
                burst: Some(20000),
                replay_window: Duration::from_secs(24 * HOUR),
                max_tlp: Tlp::Amber,
                correlated: true,
            },
            PlanLimits {
                name: "enterprise".into(),
                price_cents: None,
                firehose: true,
                sample_per_second: None,
                max_connections: 100,
                rate_per_second: None,
                burst: None,
                replay_window: Duration::from_secs(24 * HOUR),
                max_tlp: Tlp::Red,
                correlated: true,
            },
        ]
    }
}
