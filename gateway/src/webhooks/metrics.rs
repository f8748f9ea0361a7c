//! The webhook deliverer's metrics (`sluice_webhook_…`), added to the node's exposition.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered`, `failed` or `dead_letter`.
    pub outcome: &'static str,
}

/// Buckets of a POST's duration, seconds: a quick receiver to the default 10 s deadline.
const DURATION_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Cheap to clone: every field is a shared handle.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    pub attempts: Family<OutcomeLabels, Counter>,
    pub indicators: Counter,
    pub gaps: Counter,
    pub endpoints: Gauge,
    pub duration: Histogram,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        WebhookMetrics {
            attempts: Family::default(),
            indicators: Counter::default(),
            gaps: Counter::default(),
            endpoints: Gauge::default(),
            duration: Histogram::new(DURATION_BUCKETS),
        }
    }
}

impl WebhookMetrics {
    pub fn register_with(&self, registry: &mut Registry) {
        registry.register(
            "webhook_attempts",
            "Webhook batch deliveries tried, by outcome (delivered, failed: to be retried, \
             dead_letter: the last try failed and the batch was given up)",
            self.attempts.clone(),
        );
        registry.register(
            "webhook_indicators_delivered",
            "Indicators in webhook batches receivers accepted",
            self.indicators.clone(),
        );
        registry.register(
            "webhook_gaps",
            "Times an endpoint's position left the retained log (or the log was reset) before \
             delivery",
            self.gaps.clone(),
        );
        registry.register(
            "webhook_endpoints",
            "Webhook endpoints this node delivers (holds the lease of)",
            self.endpoints.clone(),
        );
        registry.register(
            "webhook_request_duration_seconds",
            "Duration of webhook POSTs, to the answer or the deadline",
            self.duration.clone(),
        );
    }

    pub fn attempt(&self, outcome: &'static str) {
        self.attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}
