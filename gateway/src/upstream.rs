//! The trusted Redis upstream: any Redis client may `PUBLISH indicators '<json>'`.
//!
//! Every node subscribes (no single point of failure), and each message enters the log once per
//! cluster: the log's `append_once` remembers the message's SHA-256 for the dedupe window, so the
//! copies the other nodes receive are dropped. Consequence, documented for publishers: the same
//! bytes published twice within the window count once. Invalid messages are counted and logged,
//! never fatal. A message with `"withdrawn": true` withdraws its provider's reports of the
//! indicator (`crate::withdraw`), resolved by every node alike: the copy that enters the log is
//! any node's.

use std::sync::Arc;
use std::time::Duration;

use domain::{Indicator, Provenance};
use futures::{FutureExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, SourceLabels};
use crate::taxii::VersionIndex;
use crate::withdraw::Withdrawals;
use sluice_log::Backoff;
use sluice_log::Log;

/// Most upstream messages appended in one round trip.
const MAX_BATCH: usize = 256;

/// How long an upstream message's identity is remembered to dedupe it across nodes.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(60);

/// Channels and patterns to subscribe to.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub redis_url: String,
    /// Exact channels (`SUBSCRIBE`), default `["indicators"]`.
    pub channels: Vec<String>,
    /// Glob patterns (`PSUBSCRIBE`), default none.
    pub patterns: Vec<String>,
}

/// Runs until `shutdown`, reconnecting with backoff whenever Redis goes away.
pub async fn run(
    config: UpstreamConfig,
    log: Arc<dyn Log>,
    index: Arc<VersionIndex>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let consumer = Consumer {
        log: &log,
        index: &index,
        metrics: &metrics,
        shutdown: &shutdown,
    };
    while !shutdown.is_cancelled() {
        match subscribe_and_consume(&config, &consumer, &mut backoff).await {
            Ok(()) => break,
            Err(error) => {
                metrics.backend_error("upstream");
                tracing::warn!(
                    error = format!("{error:#}"),
                    "upstream subscription lost; reconnecting"
                );
                backoff.wait(&shutdown).await;
            }
        }
    }
}

/// Where upstream messages go.
struct Consumer<'a> {
    log: &'a Arc<dyn Log>,
    index: &'a VersionIndex,
    metrics: &'a Metrics,
    shutdown: &'a CancellationToken,
}

async fn subscribe_and_consume(
    config: &UpstreamConfig,
    consumer: &Consumer<'_>,
    backoff: &mut Backoff,
) -> anyhow::Result<()> {
    let Consumer {
        metrics, shutdown, ..
    } = *consumer;
    let client = redis::Client::open(config.redis_url.as_str())?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis"))??;
    let subscribe = async {
        for channel in &config.channels {
            pubsub.subscribe(channel).await?;
        }
        for pattern in &config.patterns {
            pubsub.psubscribe(pattern).await?;
        }
        redis::RedisResult::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), subscribe)
        .await
        .map_err(|_| anyhow::anyhow!("timed out subscribing"))??;
    tracing::info!(
        upstream.channels = ?config.channels,
        upstream.patterns = ?config.patterns,
        "subscribed to the Redis upstream"
    );
    backoff.reset();
    let mut messages = pubsub.on_message();
    let upstream = SourceLabels { source: "upstream" };
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = messages.next() => message,
        };
        let Some(first) = message else {
            anyhow::bail!("Redis closed the subscription");
        };
        // Whatever else has already arrived goes in the same append: one round trip for many
        // messages when the upstream is busy.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match messages.next().now_or_never() {
                Some(Some(message)) => batch.push(message),
                _ => break,
            }
        }
        let now = chrono::Utc::now();
        let mut valid = Vec::with_capacity(batch.len());
        for message in &batch {
            let payload = message.get_payload_bytes();
            match Indicator::from_slice(payload, Provenance::Upstream, now) {
                Ok(indicator) => valid.push((indicator, Sha256::digest(payload).into())),
                Err(rejection) => {
                    metrics.rejected.get_or_create(&upstream).inc();
                    if rejection.reserved {
                        metrics.reserved.get_or_create(&upstream).inc();
                    }
                    tracing::warn!(
                        upstream.channel = message.get_channel_name(),
                        upstream.bytes = payload.len(),
                        error = %rejection,
                        "invalid upstream message ignored"
                    );
                }
            }
        }
        let valid = consumer.resolve_withdrawals(valid, now).await;
        append_with_retry(consumer.log, metrics, shutdown, valid).await;
    }
}

impl Consumer<'_> {
    /// Turns withdrawal requests into the withdrawals to store; one with nothing to withdraw
    /// is counted as rejected. Retried while the log is unavailable, like an append.
    async fn resolve_withdrawals(
        &self,
        items: Vec<(Indicator, [u8; 32])>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(Indicator, [u8; 32])> {
        if !items.iter().any(|(indicator, _)| indicator.is_withdrawn()) {
            return items;
        }
        let upstream = SourceLabels { source: "upstream" };
        let mut backoff = Backoff::default();
        let (indicators, hashes): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        let verdicts: Vec<_> = indicators.into_iter().map(Ok).collect();
        let mut resolved = None;
        for _ in 0..10 {
            let attempt = async {
                let mut withdrawals =
                    Withdrawals::begin(self.log.as_ref(), self.index, now).await?;
                withdrawals.resolve_all(verdicts.clone()).await
            };
            match attempt.await {
                Ok(verdicts) => {
                    resolved = Some(verdicts);
                    break;
                }
                Err(error) => {
                    self.metrics.backend_error("log");
                    tracing::warn!(%error, "cannot resolve upstream withdrawals; retrying");
                    backoff.wait(self.shutdown).await;
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                }
            }
        }
        let Some(resolved) = resolved else {
            tracing::error!(
                upstream.messages = verdicts.len(),
                "upstream messages lost: the log stayed unavailable"
            );
            return Vec::new();
        };
        let mut kept = Vec::with_capacity(resolved.len());
        for (verdict, hash) in resolved.into_iter().zip(hashes) {
            match verdict {
                Ok(indicator) => kept.push((indicator, hash)),
                Err(rejection) => {
                    self.metrics.rejected.get_or_create(&upstream).inc();
                    tracing::warn!(error = %rejection, "upstream withdrawal refused");
                }
            }
        }
        kept
    }
}

/// Valid messages are retried while the log is briefly unavailable rather than dropped.
async fn append_with_retry(
    log: &Arc<dyn Log>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    items: Vec<(Indicator, [u8; 32])>,
) {
    if items.is_empty() {
        return;
    }
    let mut backoff = Backoff::default();
    for _ in 0..10 {
        match log.append_once(items.clone(), DEDUPE_WINDOW).await {
            Ok(cursors) => {
                let appended = cursors.iter().filter(|cursor| cursor.is_some()).count() as u64;
                let withdrawn = cursors
                    .iter()
                    .zip(&items)
                    .filter(|(cursor, (indicator, _))| cursor.is_some() && indicator.is_withdrawn())
                    .count() as u64;
                metrics
                    .withdrawals
                    .get_or_create(&SourceLabels { source: "upstream" })
                    .inc_by(withdrawn);
                metrics
                    .accepted
                    .get_or_create(&SourceLabels { source: "upstream" })
                    .inc_by(appended);
                metrics
                    .upstream_duplicates
                    .inc_by(cursors.len() as u64 - appended);
                return;
            }
            Err(error) => {
                metrics.backend_error("log");
                tracing::warn!(%error, "cannot append upstream messages; retrying");
                backoff.wait(shutdown).await;
                if shutdown.is_cancelled() {
                    break;
                }
            }
        }
    }
    tracing::error!(
        upstream.messages = items.len(),
        "upstream messages lost: the log stayed unavailable"
    );
}
