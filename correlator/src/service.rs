//! The correlator's loop: read the log in order, feed the rule engines, append their emissions.

use std::sync::Arc;
use std::time::Duration;

use domain::correlation::{Emission, Engine, Key, Outcome, Rule};
use domain::StreamId;
use sha2::{Digest, Sha256};
use sluice_log::Backoff;
use sluice_log::{Log, ReadBatch, SharedEntry, Spaced, SpacedOutcome};
use tokio_util::sync::CancellationToken;

use crate::metrics::{CorrelatorMetrics, RuleLabels};

/// Settings of one correlator instance.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Vec<Rule>,
    /// How long the log remembers a series' newest emission. It must outlast the
    /// log's retention (a restart replays what is retained) plus a window.
    pub remember: Duration,
    /// Entries per read.
    pub batch: usize,
    /// How long one read waits for new entries when caught up.
    pub block: Duration,
}

impl Config {
    /// Settings for `rules` over a log that keeps `retention`.
    pub fn new(rules: Vec<Rule>, retention: Duration) -> Config {
        let longest = rules
            .iter()
            .map(|rule| rule.window)
            .max()
            .unwrap_or_default();
        Config {
            rules,
            remember: retention + longest * 2,
            batch: 1024,
            block: Duration::from_secs(1),
        }
    }
}

/// Runs until `shutdown`. Backend errors are logged, counted and retried: the correlator never
/// gives up while the process runs, and resumes exactly where it was.
pub async fn run(
    log: Arc<dyn Log>,
    config: Config,
    metrics: CorrelatorMetrics,
    shutdown: CancellationToken,
) {
    let mut correlator = Correlator::new(log, config, metrics);
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            read = correlator.log.wait_after(correlator.position, correlator.config.batch, correlator.config.block) => read,
        };
        let batch = match read {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "correlator: cannot read the log; retrying");
                backoff.wait(&shutdown).await;
                continue;
            }
        };
        backoff.reset();
        let emissions = correlator.take(batch);
        if !correlator.append(emissions, &shutdown).await {
            return;
        }
    }
}

struct Correlator {
    log: Arc<dyn Log>,
    config: Config,
    metrics: CorrelatorMetrics,
    engines: Vec<Engine>,
    /// Per engine: its accepted, withdrawal and straggler counters (looked up once, not per
    /// report).
    counters: Vec<(
        prometheus_client::metrics::counter::Counter,
        prometheus_client::metrics::counter::Counter,
        prometheus_client::metrics::counter::Counter,
    )>,
    epoch: Option<String>,
    position: StreamId,
    /// Entries read since the last progress line.
    read_since_report: u64,
    caught_up: bool,
}

impl Correlator {
    fn new(log: Arc<dyn Log>, config: Config, metrics: CorrelatorMetrics) -> Correlator {
        let engines = config.rules.iter().cloned().map(Engine::new).collect();
        for rule in &config.rules {
            tracing::info!(
                rule = %rule.name,
                rule.key = %rule.key,
                rule.threshold = rule.threshold,
                rule.window = ?rule.window,
                rule.lateness = ?rule.lateness,
                rule.tags = ?rule.tags,
                "correlator: rule loaded"
            );
        }
        let counters = config
            .rules
            .iter()
            .map(|rule| {
                (
                    CorrelatorMetrics::rule(&metrics.accepted, &rule.name),
                    CorrelatorMetrics::rule(&metrics.withdrawals, &rule.name),
                    CorrelatorMetrics::rule(&metrics.stragglers, &rule.name),
                )
            })
            .collect();
        Correlator {
            log,
            config,
            metrics,
            engines,
            counters,
            epoch: None,
            position: StreamId::ZERO,
            read_since_report: 0,
            caught_up: false,
        }
    }

    /// Feeds one read to the engines; returns what they decided.
    fn take(&mut self, batch: ReadBatch) -> Vec<Emission> {
        let mut out = Vec::new();
        if self
            .epoch
            .as_ref()
            .is_some_and(|epoch| *epoch != batch.epoch)
        {
            tracing::warn!(
                log.epoch = %batch.epoch,
                "correlator: the log lost its history (new epoch); starting over from its beginning"
            );
            self.engines = self.config.rules.iter().cloned().map(Engine::new).collect();
            self.position = StreamId::ZERO;
            self.epoch = Some(batch.epoch);
            return out;
        }
        if self.epoch.is_none() {
            tracing::info!(log.epoch = %batch.epoch, "correlator: replaying the retained log");
        }
        self.epoch = Some(batch.epoch.clone());
        if self.position != StreamId::ZERO && batch.trimmed_through > self.position {
            self.metrics.missed.inc();
            tracing::warn!(
                "correlator: retention removed entries before they were read; correlations involving them are missed"
            );
        }
        for entry in &batch.entries {
            self.observe(entry, &mut out);
        }
        if let Some(last) = batch.entries.last() {
            let lag = batch.clock_ms.saturating_sub(last.id().ms);
            self.metrics
                .lag_ms
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        if let Some(through) = batch.read_through {
            self.position = through;
        }
        self.read_since_report += batch.scanned as u64;
        if batch.scanned < self.config.batch {
            // Everything appended before the log's clock has been read: quiet spells are known.
            let clock = i64::try_from(batch.clock_ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000);
            for engine in &mut self.engines {
                engine.idle(clock, &mut out);
            }
            if !self.caught_up {
                self.caught_up = true;
                tracing::info!(
                    correlator.entries = self.read_since_report,
                    "correlator: caught up with the log; following it live"
                );
                self.read_since_report = 0;
            }
        } else if self.read_since_report >= 100_000 {
            tracing::info!(
                correlator.entries = self.read_since_report,
                correlator.position = %self.position,
                "correlator: replaying"
            );
            self.read_since_report = 0;
        }
        self.update_gauges();
        out
    }

    fn observe(&mut self, entry: &SharedEntry, out: &mut Vec<Emission>) {
        let indicator = &entry.indicator;
        if indicator.is_correlated() {
            let rule = indicator.field("rule").and_then(|rule| rule.as_str());
            let time = indicator.reporttime().timestamp_micros();
            if let Some(engine) = self
                .engines
                .iter_mut()
                .find(|e| Some(e.rule().name.as_str()) == rule)
            {
                if let Some(key) = Key::parse(engine.rule().key, indicator.indicator()) {
                    engine.note_emission(key, time);
                }
            }
            return;
        }
        let arrival = i64::try_from(entry.id().ms)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        for (engine, (accepted, withdrawals, stragglers)) in
            self.engines.iter_mut().zip(&self.counters)
        {
            let Ok(report) = engine.rule().report(indicator, arrival) else {
                continue;
            };
            match engine.observe(&report, out) {
                Outcome::Accepted if report.withdrawn => withdrawals.inc(),
                Outcome::Accepted => accepted.inc(),
                Outcome::Straggler => {
                    tracing::debug!(
                        rule = %engine.rule().name,
                        indicator = %indicator.indicator(),
                        provider = %indicator.provider(),
                        reporttime = %indicator.reporttime(),
                        "correlator: straggler ignored (older than the lateness allows)"
                    );
                    stragglers.inc()
                }
            };
        }
    }

    fn update_gauges(&self) {
        for engine in &self.engines {
            let labels = RuleLabels {
                rule: engine.rule().name.clone(),
            };
            let stats = engine.stats();
            self.metrics
                .keys
                .get_or_create(&labels)
                .set(i64::try_from(stats.keys).unwrap_or(i64::MAX));
            self.metrics
                .pending
                .get_or_create(&labels)
                .set(i64::try_from(stats.pending).unwrap_or(i64::MAX));
        }
    }

    /// Appends the emissions, each once per cluster, retrying until the log takes them. Returns
    /// false on shutdown (a restart decides whatever was not appended again).
    async fn append(&mut self, emissions: Vec<Emission>, shutdown: &CancellationToken) -> bool {
        if emissions.is_empty() {
            return true;
        }
        let (items, rules) = self.publishable(&emissions);
        let mut backoff = Backoff::default();
        loop {
            match self
                .log
                .append_spaced(items.clone(), self.config.remember)
                .await
            {
                Ok(outcomes) => {
                    self.record(&outcomes, &rules, &items);
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, "correlator: cannot append emissions; retrying");
                    backoff.wait(shutdown).await;
                    if shutdown.is_cancelled() {
                        return false;
                    }
                }
            }
        }
    }

    /// The emissions as log items, each spaced by its rule's window, with the rule and key that
    /// produced it (same order).
    fn publishable(&self, emissions: &[Emission]) -> (Vec<Spaced>, Vec<(String, Key)>) {
        let now = chrono::Utc::now();
        let mut items = Vec::with_capacity(emissions.len());
        let mut rules = Vec::with_capacity(emissions.len());
        for emission in emissions {
            match emission.to_indicator(now) {
                Ok(indicator) => {
                    let spacing = self.engine(&emission.rule).map_or(0, |engine| {
                        i64::try_from(engine.rule().window.as_micros()).unwrap_or(i64::MAX)
                    });
                    items.push(Spaced {
                        indicator,
                        series: Sha256::digest(emission.series()).into(),
                        time: emission.time,
                        spacing,
                    });
                    rules.push((emission.rule.clone(), emission.key));
                }
                // Engine output is built to be publishable (a property test holds it to that);
                // should one still be refused, the decision stands and nothing is appended.
                Err(rejection) => tracing::error!(
                    rule = %emission.rule,
                    key = %emission.key,
                    error = %rejection,
                    "correlator: emission not publishable; skipped"
                ),
            }
        }
        (items, rules)
    }

    /// Counts what the log decided; a refusal (another node already emitted this cluster)
    /// tells the engine how recent the emission it lost to is.
    fn record(&mut self, outcomes: &[SpacedOutcome], rules: &[(String, Key)], items: &[Spaced]) {
        let mut appended = 0;
        for ((outcome, (rule, key)), item) in outcomes.iter().zip(rules).zip(items) {
            let labels = RuleLabels { rule: rule.clone() };
            match outcome {
                SpacedOutcome::Appended(cursor) => {
                    appended += 1;
                    self.metrics.emitted.get_or_create(&labels).inc();
                    tracing::debug!(
                        rule = %rule,
                        indicator = %item.indicator.indicator(),
                        cursor = %cursor,
                        "correlator: correlated indicator emitted"
                    );
                }
                SpacedOutcome::Refused { newest } => {
                    self.metrics.duplicates.get_or_create(&labels).inc();
                    if let Some(engine) = self.engines.iter_mut().find(|e| e.rule().name == *rule) {
                        engine.refused(*key, *newest);
                    }
                }
            }
        }
        // Routine (every few seconds under `--demo`): the emissions counter in /metrics tells
        // the same; each emission is logged above at debug.
        tracing::debug!(
            correlator.appended = appended,
            correlator.already_present = outcomes.len() - appended,
            "correlator: correlated indicators decided"
        );
    }

    fn engine(&self, rule: &str) -> Option<&Engine> {
        self.engines
            .iter()
            .find(|engine| engine.rule().name == rule)
    }
}
