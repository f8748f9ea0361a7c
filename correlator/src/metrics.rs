//! The correlator's Prometheus metrics, registered into the process's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Default)]
pub struct CorrelatorMetrics {
    /// Considered reports accepted by a rule.
    pub accepted: Family<RuleLabels, Counter>,
    /// Withdrawals considered by a rule: from then on the provider does not count for the key.
    pub withdrawals: Family<RuleLabels, Counter>,
    /// Reports older than what was already final.
    pub stragglers: Family<RuleLabels, Counter>,
    /// Emissions appended to the log by this instance.
    pub emitted: Family<RuleLabels, Counter>,
    /// Emissions another instance (or this one before a restart) had already appended.
    pub duplicates: Family<RuleLabels, Counter>,
    /// Keys with state.
    pub keys: Family<RuleLabels, Gauge>,
    /// Reports waiting for the lateness to pass.
    pub pending: Family<RuleLabels, Gauge>,
    /// Log entries retention removed before this instance read them.
    pub missed: Counter,
    /// Age of the newest entry read, in milliseconds of the log's clock.
    pub lag_ms: Gauge,
}

impl CorrelatorMetrics {
    /// Adds every metric to the process's exposition.
    pub fn register_with(&self, process: &mut Registry) {
        process.register(
            "correlator_accepted",
            "Reports considered by a correlation rule",
            self.accepted.clone(),
        );
        process.register(
            "correlator_withdrawals",
            "Withdrawals considered by a correlation rule: the provider's earlier reports of the key count no longer",
            self.withdrawals.clone(),
        );
        process.register(
            "correlator_stragglers",
            "Reports that arrived later than the rule's lateness allows, ignored",
            self.stragglers.clone(),
        );
        process.register(
            "correlator_emitted",
            "Derived indicators appended by this correlator",
            self.emitted.clone(),
        );
        process.register(
            "correlator_duplicates",
            "Emissions the log refused: appended already (by a replica, or before a restart) or inside a cooldown it remembers",
            self.duplicates.clone(),
        );
        process.register(
            "correlator_keys",
            "Keys (addresses, networks, ASNs) with correlation state",
            self.keys.clone(),
        );
        process.register(
            "correlator_pending",
            "Reports waiting for the lateness to pass before they are final",
            self.pending.clone(),
        );
        process.register(
            "correlator_missed_entries",
            "Log entries removed by retention before the correlator read them",
            self.missed.clone(),
        );
        process.register(
            "correlator_lag_milliseconds",
            "Age of the newest log entry the correlator has read",
            self.lag_ms.clone(),
        );
    }

    pub fn rule(family: &Family<RuleLabels, Counter>, rule: &str) -> Counter {
        family
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .clone()
    }
}
