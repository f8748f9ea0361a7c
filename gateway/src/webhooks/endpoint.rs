//! One endpoint's deliverer: reads the log from the endpoint's cursor, gathers a batch, records
//! it, POSTs it until the receiver takes it or the tries run out, moves the cursor, and again.
//!
//! Every step starts from what the database says (the cursor, the batch in flight, the plan),
//! so a restart, a lost lease or a database hiccup resumes exactly where the records stand.

use std::time::{Duration, Instant};

use billing::webhook_signature::{sign, SIGNATURE_HEADER};
use billing::{DeliveryOutcome, DeliveryRecord, Lease, PendingBatch, WebhookJob};
use domain::webhook::{check_endpoint_url, WebhookFormat};
use domain::{Cursor, Filter, Limits, StreamId};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sluice_log::{Backoff, SharedEntry};
use tokio_util::sync::CancellationToken;

use super::body;
use super::client::{Answer, Client};
use super::metrics::WebhookMetrics;
use crate::enforcement::visible;
use crate::AppState;

/// Most bytes of indicators in one batch: under nginx's default `client_max_body_size` (1 MiB),
/// which many receivers sit behind. One indicator is at most 64 KiB, so one always fits.
const MAX_BATCH_BYTES: usize = 900 * 1024;
/// Entries read from the log at a time.
const READ_LIMIT: usize = 512;
/// Least time between two reads of the log while waiting for new entries: a busy log wakes the
/// deliverer at most this often, not once per entry.
const MIN_READ_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for the hub's word before looking at the log anyway.
const POLL: Duration = Duration::from_secs(1);
/// How often a position that passed entries without a match (filtered out) is stored, so a
/// restart does not re-read them.
const SKIP_PERSIST: Duration = Duration::from_secs(10);
/// How long a paused endpoint (plan without the firehose, URL refused) waits before it looks
/// again.
const PAUSE: Duration = Duration::from_secs(30);

/// An endpoint's delivery task, for as long as this node holds its lease.
pub struct Endpoint {
    /// The lease this task holds; every write of the endpoint's state names it.
    pub lease: Lease,
    pub state: AppState,
    pub client: Client,
    pub metrics: WebhookMetrics,
    pub cancel: CancellationToken,
}

/// What the task does after a step.
enum Next {
    Continue,
    /// A backend failed (counted already): again after the task's growing backoff.
    Retry,
    /// The endpoint is gone, the lease is lost, or the node is stopping.
    Stop,
}

/// What one endpoint is, as the step needs it.
struct Settings {
    url: String,
    format: WebhookFormat,
    filter: Filter,
    limits: Limits,
}

/// A batch ready to send.
struct Batch {
    key: String,
    entries: Vec<SharedEntry>,
    /// The position the cursor moves to once the batch is through (at or after its last
    /// entry: entries filtered out after it are passed too).
    through: Cursor,
    /// Failed tries so far (after a restart, the ones before it).
    attempts: u32,
}

type StepResult = Result<Next, billing::StoreError>;

impl Endpoint {
    pub async fn run(self) {
        let mut errors = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut pace = Instant::now();
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            match self.step(&mut pace).await {
                Ok(Next::Continue) => errors.reset(),
                Ok(Next::Retry) => errors.wait(&self.cancel).await,
                Ok(Next::Stop) => break,
                Err(error) => {
                    tracing::warn!(webhook.id = %self.lease.id, %error, "webhooks: delivery step failed; retrying");
                    self.state.metrics.backend_error("webhooks");
                    errors.wait(&self.cancel).await;
                }
            }
        }
        tracing::debug!(webhook.id = %self.lease.id, "webhooks: endpoint task ends");
    }

    /// One batch (or one pause, or one stretch of filtered-out entries).
    async fn step(&self, pace: &mut Instant) -> StepResult {
        let Some(job) = self.state.store.webhook_job(&self.lease).await? else {
            return Ok(Next::Stop);
        };
        let settings = match self.settings(&job).await? {
            Ok(settings) => settings,
            Err(why) => return self.pause(&why).await,
        };
        if !self.sleep_until(*pace).await {
            return Ok(Next::Stop);
        }
        let start = match self.start(&job).await {
            Ok(start) => start,
            Err(error) => return self.log_error(error).await,
        };
        let batch = match &job.pending {
            Some(pending) => self.pending(&settings, &start, pending, &job).await,
            None => self.gather(&settings, start).await,
        };
        let batch = match batch {
            Ok(Some(batch)) => batch,
            Ok(None) => return Ok(Next::Continue),
            Err(StepError::Log(error)) => return self.log_error(error).await,
            Err(StepError::Store(error)) => return Err(error),
            Err(StepError::Stop) => return Ok(Next::Stop),
        };
        let sent = batch.entries.len();
        let next = self.deliver(&job, &settings, batch).await?;
        if let Some((rate, _)) = settings.limits.effective_rate() {
            // A limited plan's endpoint gets its indicators at the plan's rate, on average.
            let seconds = sent as f64 / f64::from(rate.max(1));
            *pace = Instant::now() + Duration::from_secs_f64(seconds.min(3600.0));
        }
        Ok(next)
    }

    /// The endpoint's plan, format, filter and URL as they are now, or why it cannot be
    /// delivered (the text its account sees).
    async fn settings(
        &self,
        job: &WebhookJob,
    ) -> Result<Result<Settings, String>, billing::StoreError> {
        let Some(plan) = self.state.store.plan(&job.plan).await? else {
            return Ok(Err(format!(
                "paused: the plan `{}` no longer exists",
                job.plan
            )));
        };
        if !plan.limits.firehose {
            return Ok(Err(format!(
                "paused: the {} plan does not include the firehose; upgrade to resume from where delivery stopped",
                plan.name
            )));
        }
        let config = &self.state.config.webhooks;
        let url = match check_endpoint_url(&job.webhook.url, config.allow_private) {
            Ok(url) => url,
            Err(why) => return Ok(Err(format!("paused: {why}"))),
        };
        let format = match job.webhook.format.parse::<WebhookFormat>() {
            Ok(format) => format,
            Err(why) => return Ok(Err(format!("paused: {why}"))),
        };
        let filter = match Filter::from_query(&job.webhook.filter) {
            Ok(filter) => filter,
            Err(why) => return Ok(Err(format!("paused: the filter is refused: {why}"))),
        };
        Ok(Ok(Settings {
            url: url.to_string(),
            format,
            filter,
            limits: plan.limits,
        }))
    }

    /// Notes why the endpoint waits and waits [`PAUSE`].
    async fn pause(&self, why: &str) -> StepResult {
        tracing::info!(webhook.id = %self.lease.id, why, "webhooks: endpoint paused");
        if !self
            .state
            .store
            .note_webhook_error(&self.lease, why)
            .await?
        {
            return Ok(Next::Stop);
        }
        Ok(match self.sleep(PAUSE).await {
            true => Next::Continue,
            false => Next::Stop,
        })
    }

    /// A log backend error: counted, and the step is tried again after the task's backoff
    /// (0.5 s doubling up to 30 s), so endpoints do not hammer a log that is down.
    async fn log_error(&self, error: sluice_log::LogError) -> StepResult {
        tracing::warn!(webhook.id = %self.lease.id, %error, "webhooks: cannot read the log; retrying");
        self.state.metrics.backend_error("webhooks");
        Ok(Next::Retry)
    }

    /// Where delivery stands: the stored cursor, or (nothing delivered yet) just before the
    /// endpoint was registered, in the log's current epoch.
    async fn start(&self, job: &WebhookJob) -> Result<Cursor, sluice_log::LogError> {
        if let Some(cursor) = job.webhook.cursor.as_deref().and_then(|c| c.parse().ok()) {
            return Ok(cursor);
        }
        let bounds = self.state.log.bounds().await?;
        let created_ms = u64::try_from(job.webhook.created_at.timestamp_millis()).unwrap_or(0);
        Cursor::new(&bounds.epoch, StreamId::new(created_ms, 0).before())
            .map_err(|_| sluice_log::LogError::Protocol("the log's epoch is malformed".into()))
    }

    /// The batch in flight when the last holder stopped, read again: the same entries (those
    /// after the cursor, through its end, that pass the filter), the same key. A re-read that
    /// finds other contents (the plan or the log changed meanwhile) drops the batch: the next
    /// step gathers a new one from the cursor, under a new key, so a key never names two
    /// different batches.
    async fn pending(
        &self,
        settings: &Settings,
        start: &Cursor,
        pending: &PendingBatch,
        job: &WebhookJob,
    ) -> Result<Option<Batch>, StepError> {
        let through = match pending.through.parse::<Cursor>() {
            Ok(through) if through.epoch() == start.epoch() => through,
            // Not of the cursor's log (or not something this code writes): start over.
            _ => return self.drop_pending(&pending.key).await,
        };
        let mut entries = Vec::new();
        let mut position = start.id();
        loop {
            let read = self.state.log.read_after(position, READ_LIMIT).await?;
            if read.epoch != start.epoch() || position < read.trimmed_through {
                // Delivery resumes after the gap, under a new key.
                if !self
                    .state
                    .store
                    .clear_webhook_batch(&self.lease, &pending.key)
                    .await?
                {
                    return Err(StepError::Stop);
                }
                self.gap(start, &read.epoch, read.trimmed_through).await?;
                return Ok(None);
            }
            for entry in &read.entries {
                if entry.id() > through.id() {
                    break;
                }
                if self.wanted(settings, entry) {
                    entries.push(entry.clone());
                    if entries.len() > pending.count {
                        return self.drop_pending(&pending.key).await;
                    }
                }
            }
            match read.read_through {
                Some(last) if last < through.id() && read.scanned == READ_LIMIT => position = last,
                _ => break,
            }
        }
        if entries.len() != pending.count {
            return self.drop_pending(&pending.key).await;
        }
        Ok(Some(Batch {
            key: pending.key.clone(),
            entries,
            through,
            attempts: job.webhook.failing_attempts,
        }))
    }

    /// Forgets the batch in flight `key` without moving the cursor.
    async fn drop_pending(&self, key: &str) -> Result<Option<Batch>, StepError> {
        tracing::info!(webhook.id = %self.lease.id, batch = key, "webhooks: the batch in flight reads differently now; gathering it anew under a new key");
        match self
            .state
            .store
            .clear_webhook_batch(&self.lease, key)
            .await?
        {
            true => Ok(None),
            false => Err(StepError::Stop),
        }
    }

    /// Reads the log from `start` until a batch is full, or has waited `linger` since its
    /// first indicator; records it as the batch in flight before it goes out.
    async fn gather(&self, settings: &Settings, start: Cursor) -> Result<Option<Batch>, StepError> {
        let config = &self.state.config.webhooks;
        let capacity = match settings.limits.effective_rate() {
            Some((_, burst)) => config.batch_max.min(burst as usize),
            None => config.batch_max,
        }
        .max(1);
        let mut entries: Vec<SharedEntry> = Vec::new();
        let mut bytes = 0;
        let mut position = start.id();
        let mut first_at: Option<Instant> = None;
        let mut persisted = (start.id(), Instant::now());
        let mut last_read = Instant::now() - MIN_READ_INTERVAL;
        loop {
            last_read = Instant::now().max(last_read);
            // Subscribed before the read, so nothing appended after it goes unnoticed; and
            // only while gathering, so an endpoint in a long retry holds no receiver the hub
            // would have to keep entries for.
            let mut wake = self.state.hub.subscribe();
            let read = self.read_after(start.epoch(), position).await?;
            let discontinuity = read.epoch != start.epoch() || position < read.trimmed_through;
            if discontinuity && entries.is_empty() {
                self.gap(
                    &Cursor::new(start.epoch(), position).expect("valid epoch"),
                    &read.epoch,
                    read.trimmed_through,
                )
                .await?;
                return Ok(None);
            }
            let mut full = false;
            if !discontinuity {
                for entry in &read.entries {
                    if self.wanted(settings, entry) {
                        let size = entry.json().len() + 1;
                        if !entries.is_empty() && bytes + size > MAX_BATCH_BYTES {
                            // This one starts the next batch.
                            full = true;
                            break;
                        }
                        bytes += size;
                        entries.push(entry.clone());
                        first_at.get_or_insert_with(Instant::now);
                    }
                    position = entry.id();
                    if entries.len() >= capacity {
                        full = true;
                        break;
                    }
                }
                if !full {
                    position = read
                        .read_through
                        .map_or(position, |last| last.max(position));
                }
            }
            let lingered = first_at.is_some_and(|at| at.elapsed() >= config.linger);
            if full || discontinuity || lingered {
                let through = Cursor::new(start.epoch(), position).expect("valid epoch");
                return self.begin(entries, through).await.map(Some);
            }
            if entries.is_empty()
                && position != persisted.0
                && persisted.1.elapsed() >= SKIP_PERSIST
            {
                let cursor = Cursor::new(start.epoch(), position).expect("valid epoch");
                if !self
                    .state
                    .store
                    .advance_webhook(&self.lease, &cursor.to_string(), None)
                    .await?
                {
                    return Err(StepError::Stop);
                }
                persisted = (position, Instant::now());
            }
            if read.scanned >= READ_LIMIT {
                continue;
            }
            // Caught up: wait for the hub's word of new entries, the batch's linger, or the
            // next poll, whichever is first.
            let deadline = match first_at {
                Some(at) => (at + config.linger).min(Instant::now() + POLL),
                None => Instant::now() + POLL,
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(StepError::Stop),
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = wake.recv() => {}
            }
            let earliest = last_read + MIN_READ_INTERVAL;
            if !self.sleep_until(earliest).await {
                return Err(StepError::Stop);
            }
        }
    }

    /// What follows `position`: from the hub's ring of recent entries when it still holds the
    /// position (shared with every stream and endpoint of the node: no read of the log), else
    /// from the log. An empty answer from the ring means caught up with the hub, which wakes
    /// the endpoint when it reads more.
    async fn read_after(
        &self,
        epoch: &str,
        position: StreamId,
    ) -> Result<sluice_log::ReadBatch, sluice_log::LogError> {
        if let Some(recent) = self.state.hub.recent_after(epoch, position, READ_LIMIT) {
            return Ok(sluice_log::ReadBatch {
                epoch: epoch.to_owned(),
                read_through: recent.last().map(|framed| framed.id()),
                scanned: recent.len(),
                entries: recent.iter().map(|framed| framed.entry().clone()).collect(),
                ..sluice_log::ReadBatch::default()
            });
        }
        self.state.log.read_after(position, READ_LIMIT).await
    }

    /// Records the batch in flight under a new key.
    async fn begin(&self, entries: Vec<SharedEntry>, through: Cursor) -> Result<Batch, StepError> {
        let key = uuid::Uuid::new_v4().to_string();
        let pending = PendingBatch {
            key: key.clone(),
            through: through.to_string(),
            count: entries.len(),
        };
        if !self
            .state
            .store
            .begin_webhook_batch(&self.lease, &pending)
            .await?
        {
            return Err(StepError::Stop);
        }
        Ok(Batch {
            key,
            entries,
            through,
            attempts: 0,
        })
    }

    /// Whether the endpoint gets this entry: the plan may see it and the filter takes it.
    fn wanted(&self, settings: &Settings, entry: &SharedEntry) -> bool {
        visible(&settings.limits, &entry.indicator) && settings.filter.matches(&entry.indicator)
    }

    /// Indicators the endpoint had not got left the log (retention, or a new log epoch):
    /// records the gap and moves the cursor past it.
    async fn gap(
        &self,
        from: &Cursor,
        epoch: &str,
        trimmed_through: StreamId,
    ) -> Result<(), StepError> {
        let to = if epoch != from.epoch() {
            Cursor::new(epoch, StreamId::ZERO)
        } else {
            Cursor::new(epoch, trimmed_through)
        }
        .map_err(|_| {
            StepError::Log(sluice_log::LogError::Protocol(
                "the log's epoch is malformed".into(),
            ))
        })?;
        tracing::warn!(webhook.id = %self.lease.id, from = %from, to = %to, "webhooks: undelivered indicators left the log");
        self.metrics.gaps.inc();
        let record = DeliveryRecord {
            batch_key: String::new(),
            attempt: 0,
            outcome: DeliveryOutcome::Gap,
            http_status: None,
            error: Some(if epoch != from.epoch() {
                "the log was reset (new epoch); delivery continues from its start".to_owned()
            } else {
                "indicators after the cursor left the retained log before delivery".to_owned()
            }),
            indicators: 0,
            first_cursor: Some(from.to_string()),
            last_cursor: Some(to.to_string()),
        };
        if !self
            .state
            .store
            .advance_webhook(&self.lease, &to.to_string(), Some(&record))
            .await?
        {
            return Err(StepError::Stop);
        }
        Ok(())
    }

    /// POSTs the batch until the receiver takes it or the tries run out, with backoff between
    /// tries; then moves the cursor past it.
    async fn deliver(&self, job: &WebhookJob, settings: &Settings, batch: Batch) -> StepResult {
        let config = &self.state.config.webhooks;
        let body = body::render(
            settings.format,
            &self.lease.id,
            &batch.key,
            &batch.entries,
            &self.state.config.validity,
        );
        let count = u32::try_from(batch.entries.len()).unwrap_or(u32::MAX);
        let first_cursor = batch.entries.first().map(|entry| entry.cursor.to_string());
        let last_cursor = batch.entries.last().map(|entry| entry.cursor.to_string());
        let through = batch.through.to_string();
        let mut backoff = Backoff::new(config.retry_base, config.retry_max);
        for _ in 0..batch.attempts {
            backoff.next_delay();
        }
        let mut attempt = batch.attempts;
        let store = &self.state.store;
        loop {
            // A node whose lease ran out (it could not renew it) must not send: another node
            // may be sending this batch, or later ones, already.
            if !store.holds_webhook(&self.lease).await? {
                return Ok(Next::Stop);
            }
            attempt += 1;
            let headers = headers(&self.lease.id, &batch.key, attempt, &job.secret, &body);
            let started = Instant::now();
            let answer = tokio::select! {
                _ = self.cancel.cancelled() => return Ok(Next::Stop),
                answer = self.client.post(&settings.url, headers, body.clone()) => answer,
            };
            self.metrics
                .duration
                .observe(started.elapsed().as_secs_f64());
            let (http_status, error) = match &answer {
                Answer::Accepted(status) => (Some(*status), None),
                Answer::Refused(status, excerpt) => (
                    Some(*status),
                    Some(match excerpt.is_empty() {
                        true => format!("HTTP {status}"),
                        false => format!("HTTP {status}: {excerpt}"),
                    }),
                ),
                Answer::Failed(why) => (None, Some(why.clone())),
            };
            let last_try = attempt >= config.max_attempts.max(1);
            let outcome = match (&answer, last_try) {
                (Answer::Accepted(_), _) => DeliveryOutcome::Delivered,
                (_, true) => DeliveryOutcome::DeadLetter,
                (_, false) => DeliveryOutcome::Failed,
            };
            self.metrics.attempt(outcome.as_str());
            let record = DeliveryRecord {
                batch_key: batch.key.clone(),
                attempt,
                outcome,
                http_status,
                error,
                indicators: count,
                first_cursor: first_cursor.clone(),
                last_cursor: last_cursor.clone(),
            };
            match outcome {
                DeliveryOutcome::Delivered | DeliveryOutcome::DeadLetter => {
                    if outcome == DeliveryOutcome::Delivered {
                        self.metrics.indicators.inc_by(u64::from(count));
                    } else {
                        tracing::warn!(webhook.id = %self.lease.id, batch = %batch.key, attempts = attempt, "webhooks: batch given up (dead letter)");
                    }
                    let held = store
                        .advance_webhook(&self.lease, &through, Some(&record))
                        .await?;
                    return Ok(if held { Next::Continue } else { Next::Stop });
                }
                _ => {
                    tracing::info!(webhook.id = %self.lease.id, batch = %batch.key, attempt, error = record.error.as_deref().unwrap_or(""), "webhooks: delivery failed; retrying");
                    if !store.fail_webhook_attempt(&self.lease, &record).await? {
                        return Ok(Next::Stop);
                    }
                    if !self.sleep(backoff.next_delay()).await {
                        return Ok(Next::Stop);
                    }
                }
            }
        }
    }

    /// Sleeps `delay`; false if cancelled first.
    async fn sleep(&self, delay: Duration) -> bool {
        self.sleep_until(Instant::now() + delay).await
    }

    /// Sleeps until `at`; false if cancelled first.
    async fn sleep_until(&self, at: Instant) -> bool {
        if at <= Instant::now() {
            return !self.cancel.is_cancelled();
        }
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until(at.into()) => true,
        }
    }
}

/// Why gathering or re-reading a batch stopped short.
enum StepError {
    Log(sluice_log::LogError),
    Store(billing::StoreError),
    Stop,
}

impl From<sluice_log::LogError> for StepError {
    fn from(error: sluice_log::LogError) -> Self {
        StepError::Log(error)
    }
}

impl From<billing::StoreError> for StepError {
    fn from(error: billing::StoreError) -> Self {
        StepError::Store(error)
    }
}

/// The headers of one try: the signature over the exact body, the endpoint, the batch's
/// idempotency key (the same on every try and after a restart), and the try's number.
fn headers(webhook: &str, key: &str, attempt: u32, secret: &str, body: &[u8]) -> HeaderMap {
    let signature = sign(secret.as_bytes(), chrono::Utc::now().timestamp(), body);
    let mut headers = HeaderMap::new();
    // Every value is ASCII made here (hex, base62 ids, a UUID, a number).
    let mut put = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    };
    put(SIGNATURE_HEADER, &signature);
    put("Sluice-Webhook-Id", webhook);
    put("Idempotency-Key", key);
    put("Sluice-Delivery-Attempt", &attempt.to_string());
    headers
}
