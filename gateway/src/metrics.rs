//! Prometheus metrics of one gateway process (`GET /metrics`), held in `AppState`, no globals.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub transport: &'static str,
    pub plan: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `http` or `upstream`.
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `cache`, `negative_cache` or `database`.
    pub via: &'static str,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub connections: Family<ConnectionLabels, Gauge>,
    pub delivered: Family<TransportLabels, Counter>,
    pub closed: Family<ReasonLabels, Counter>,
    pub resets: Family<ReasonLabels, Counter>,
    pub accepted: Family<SourceLabels, Counter>,
    pub rejected: Family<SourceLabels, Counter>,
    pub reserved: Family<SourceLabels, Counter>,
    /// Withdrawals stored (also counted as accepted), by source.
    pub withdrawals: Family<SourceLabels, Counter>,
    pub upstream_duplicates: Counter,
    pub ingest_lag_ms: Gauge,
    pub backend_errors: Family<ReasonLabels, Counter>,
    /// Connections closed at accept by the pending caps (`server.rs`), by cap.
    pub connections_refused: Family<ReasonLabels, Counter>,
    /// Connections that have not authenticated yet.
    pub pending_connections: Gauge,
    /// HTTP connections closed at a deadline (header, idle, write) or answered 408 (body).
    pub http_timeouts: Family<ReasonLabels, Counter>,
    pub feed_throttled: Family<ReasonLabels, Counter>,
    pub token_lookups: Family<LookupLabels, Counter>,
    /// Every open stream's seconds behind the log's head, observed every 10 s.
    pub consumer_lag_seconds: Histogram,
    /// Open streams within `--retention-margin` of the log's trim point (every 10 s).
    pub consumers_near_retention: Gauge,
}

/// `sluice_consumer_lag_seconds`' buckets: caught up, to a day behind.
const LAG_BUCKETS: [f64; 10] = [
    0.1, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21_600.0, 86_400.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("sluice")),
            connections: Family::default(),
            delivered: Family::default(),
            closed: Family::default(),
            resets: Family::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            reserved: Family::default(),
            withdrawals: Family::default(),
            upstream_duplicates: Counter::default(),
            ingest_lag_ms: Gauge::default(),
            backend_errors: Family::default(),
            connections_refused: Family::default(),
            pending_connections: Gauge::default(),
            http_timeouts: Family::default(),
            feed_throttled: Family::default(),
            token_lookups: Family::default(),
            consumer_lag_seconds: Histogram::new(LAG_BUCKETS),
            consumers_near_retention: Gauge::default(),
        };
        {
            let mut registry = metrics.registry.lock().expect("metrics registry poisoned");
            registry.register(
                "connections",
                "Open stream connections by transport and plan",
                metrics.connections.clone(),
            );
            registry.register(
                "delivered",
                "Indicators delivered to subscribers",
                metrics.delivered.clone(),
            );
            registry.register(
                "stream_closes",
                "Streams closed by the server, by reason",
                metrics.closed.clone(),
            );
            registry.register(
                "resets",
                "reset frames sent because requested history was gone",
                metrics.resets.clone(),
            );
            registry.register(
                "ingest_accepted",
                "Indicators accepted into the log, by source",
                metrics.accepted.clone(),
            );
            registry.register(
                "ingest_rejected",
                "Indicators rejected at ingest, by source",
                metrics.rejected.clone(),
            );
            registry.register(
                "ingest_reserved",
                "Indicators refused for claiming to be Sluice's own (the sluice/ provider \
                 namespace or the correlated tag), by source; also counted as rejected",
                metrics.reserved.clone(),
            );
            registry.register(
                "ingest_withdrawals",
                "Withdrawals of a provider's earlier reports stored, by source; also counted as \
                 accepted",
                metrics.withdrawals.clone(),
            );
            registry.register(
                "upstream_duplicates",
                "Upstream messages another node already appended",
                metrics.upstream_duplicates.clone(),
            );
            registry.register(
                "ingest_lag_milliseconds",
                "Age of the newest entry when this node's live reader saw it",
                metrics.ingest_lag_ms.clone(),
            );
            registry.register(
                "backend_errors",
                "Errors talking to Redis or the database, by component",
                metrics.backend_errors.clone(),
            );
            registry.register(
                "connections_refused",
                "Connections closed at accept: too many that have not authenticated, in all \
                 (pending_total) or from one address (pending_per_ip)",
                metrics.connections_refused.clone(),
            );
            registry.register(
                "pending_connections",
                "Open HTTP connections on which no request has authenticated yet",
                metrics.pending_connections.clone(),
            );
            registry.register(
                "http_timeouts",
                "HTTP connections closed at a deadline (header, idle, write) or requests \
                 answered 408 (body)",
                metrics.http_timeouts.clone(),
            );
            registry.register(
                "feed_throttled",
                "Feed requests refused with 429, by reason (busy: no scan permit free; rate: \
                 the account's feed rate)",
                metrics.feed_throttled.clone(),
            );
            registry.register(
                "token_lookups",
                "API token authentications, by where the answer came from (cache, \
                 negative_cache, database)",
                metrics.token_lookups.clone(),
            );
            registry.register(
                "consumer_lag_seconds",
                "Seconds each open stream was behind the newest entry this node read, observed \
                 for every stream every 10 s",
                metrics.consumer_lag_seconds.clone(),
            );
            registry.register(
                "consumers_near_retention",
                "Open streams whose position is within --retention-margin of the log's trim \
                 point (every 10 s)",
                metrics.consumers_near_retention.clone(),
            );
        }
        metrics
    }

    /// Lets another component (the correlator) add its metrics to this process's exposition.
    pub fn extend(&self, add: impl FnOnce(&mut Registry)) {
        add(&mut self.registry.lock().expect("metrics registry poisoned"));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry poisoned");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts an open connection until the guard drops.
    pub fn connection(&self, transport: &'static str, plan: &str) -> ConnectionGuard {
        let gauge = self
            .connections
            .get_or_create(&ConnectionLabels {
                transport,
                plan: plan.to_owned(),
            })
            .clone();
        gauge.inc();
        ConnectionGuard { gauge }
    }

    pub fn feed_throttled(&self, reason: &'static str) {
        self.feed_throttled
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn token_lookup(&self, via: &'static str) {
        self.token_lookups
            .get_or_create(&LookupLabels { via })
            .inc();
    }

    pub fn backend_error(&self, component: &'static str) {
        self.backend_errors
            .get_or_create(&ReasonLabels { reason: component })
            .inc();
    }
}

/// Decrements the connection gauge when the connection ends, however it ends.
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
