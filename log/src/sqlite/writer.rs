//! The SQLite log's one writer: group commit. It takes every append that has queued up (up to
//! a bound), assigns ids, decides once-keys and series, writes it all in one transaction, and
//! only once that is durable lets the entries into the window and answers the callers.
//!
//! Between batches it catches the file up with retention (rows the window trimmed are
//! deleted) and forgets expired once-keys and series.

use std::sync::Arc;
use std::time::Duration;

use domain::{Cursor, Indicator, StreamId};
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::store::{self, BatchRows};
use super::{Remembered, SeriesMap, Shared};
use crate::retained::{next_id, now_ms};
use crate::{Entry, LogError, SharedEntry, Spaced, SpacedOutcome};

/// Appends queued for the writer at most: callers wait (backpressure) beyond it.
pub(super) const QUEUE: usize = 1024;
/// Items committed in one transaction at most.
const MAX_BATCH_ITEMS: usize = 4096;
/// How often the file catches up with retention.
const TICK: Duration = Duration::from_secs(1);
/// Ticks between forgetting expired once-keys and series.
const FORGET_EVERY_TICKS: u32 = 60;

pub(super) enum Command {
    Write(Request),
    Close(oneshot::Sender<()>),
}

pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Outcome, LogError>>,
}

pub(super) enum Op {
    Append(Vec<Indicator>),
    Once(Vec<(Indicator, [u8; 32])>, Duration),
    Spaced(Vec<Spaced>, Duration),
}

impl Op {
    fn len(&self) -> usize {
        match self {
            Op::Append(items) => items.len(),
            Op::Once(items, _) => items.len(),
            Op::Spaced(items, _) => items.len(),
        }
    }
}

pub(super) enum Outcome {
    Append(Vec<Cursor>),
    Once(Vec<Option<Cursor>>),
    Spaced(Vec<SpacedOutcome>),
}

pub(super) struct Writer {
    /// `None` once closed.
    pub connection: Option<SqliteConnection>,
    pub epoch: String,
    pub shared: Arc<Shared>,
    /// The newest id deleted from the file.
    pub disk_trimmed: StreamId,
    pub remembered: Remembered,
    pub series: SeriesMap,
}

/// One batch on its way to disk: its rows and the entries they become.
struct Staged<'a> {
    epoch: &'a str,
    now: u64,
    last: StreamId,
    rows: BatchRows,
    entries: Vec<SharedEntry>,
}

impl Staged<'_> {
    fn add(&mut self, indicator: Indicator) -> Cursor {
        let id = next_id(self.last, self.now);
        self.last = id;
        let cursor = Cursor::new(self.epoch, id).expect("the log's epoch is valid");
        let json: Arc<str> = indicator.to_json().to_string().into();
        self.rows.entries.push((id, Arc::clone(&json)));
        self.entries
            .push(Entry::new(cursor.clone(), indicator, json));
        cursor
    }
}

/// Adds a command to the batch being gathered.
fn take(
    command: Command,
    batch: &mut Vec<Request>,
    close: &mut Option<oneshot::Sender<()>>,
    items: &mut usize,
) {
    match command {
        Command::Write(request) => {
            *items += request.op.len();
            batch.push(request);
        }
        Command::Close(done) => *close = Some(done),
    }
}

fn forget_at(now: u64, remember: Duration) -> u64 {
    now.saturating_add(u64::try_from(remember.as_millis()).unwrap_or(u64::MAX))
}

impl Writer {
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        loop {
            let first = tokio::select! {
                command = commands.recv() => command,
                _ = tick.tick() => {
                    ticks = ticks.wrapping_add(1);
                    self.maintain(ticks.is_multiple_of(FORGET_EVERY_TICKS)).await;
                    continue;
                }
            };
            // Every handle is gone: nothing more can be appended.
            let Some(first) = first else { break };
            let (mut batch, mut close, mut items) = (Vec::new(), None, 0);
            take(first, &mut batch, &mut close, &mut items);
            while close.is_none() && items < MAX_BATCH_ITEMS {
                match commands.try_recv() {
                    Ok(command) => take(command, &mut batch, &mut close, &mut items),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(batch).await;
            }
            if let Some(done) = close {
                commands.close();
                while let Ok(command) = commands.try_recv() {
                    match command {
                        Command::Write(request) => {
                            let _ = request
                                .reply
                                .send(Err(LogError::Unavailable("the log is closed".into())));
                        }
                        Command::Close(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                self.close().await;
                let _ = done.send(());
                return;
            }
        }
        self.close().await;
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            if let Err(error) = store::close(connection).await {
                tracing::warn!(%error, "the log file could not be closed cleanly");
            }
        }
    }

    async fn commit(&mut self, batch: Vec<Request>) {
        let (now, last, trim_target) = {
            let mut view = self.shared.view();
            let now = now_ms();
            view.retained.trim(now);
            let last = view.retained.last;
            view.committing_from = Some(next_id(last, now).ms);
            (now, last, view.retained.trimmed_through)
        };
        let mut staged = Staged {
            epoch: &self.epoch,
            now,
            last,
            rows: BatchRows::default(),
            entries: Vec::new(),
        };
        let mut undo_once = Vec::new();
        let mut undo_series = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for Request { op, reply } in batch {
            replies.push(reply);
            outcomes.push(match op {
                Op::Append(items) => {
                    Outcome::Append(items.into_iter().map(|item| staged.add(item)).collect())
                }
                Op::Once(items, remember) => {
                    let forget_at = forget_at(now, remember);
                    let mut results = Vec::with_capacity(items.len());
                    for (indicator, key) in items {
                        let seen = self.remembered.get(&key).is_some_and(|at| *at > now);
                        if seen {
                            results.push(None);
                            continue;
                        }
                        undo_once.push((key, self.remembered.insert(key, forget_at)));
                        staged.rows.once_keys.push((key, forget_at));
                        results.push(Some(staged.add(indicator)));
                    }
                    Outcome::Once(results)
                }
                Op::Spaced(items, remember) => {
                    let forget_at = forget_at(now, remember);
                    let mut results = Vec::with_capacity(items.len());
                    for item in items {
                        if let Some(&(newest, at)) = self.series.get(&item.series) {
                            if at > now && item.too_close_to(newest) {
                                results.push(SpacedOutcome::Refused { newest });
                                continue;
                            }
                        }
                        let previous = self.series.insert(item.series, (item.time, forget_at));
                        undo_series.push((item.series, previous));
                        staged.rows.series.push((item.series, item.time, forget_at));
                        results.push(SpacedOutcome::Appended(staged.add(item.indicator)));
                    }
                    Outcome::Spaced(results)
                }
            });
        }
        let trim_through = (trim_target > self.disk_trimmed).then_some(trim_target);
        let Staged {
            last,
            rows,
            entries,
            ..
        } = staged;
        let written = match &mut self.connection {
            Some(connection) => store::write_batch(connection, &rows, last, trim_through)
                .await
                .map_err(|error| format!("the log file could not be written: {error}")),
            None => Err("the log is closed".to_owned()),
        };
        match written {
            Ok(()) => {
                if let Some(through) = trim_through {
                    self.disk_trimmed = through;
                }
                {
                    let mut view = self.shared.view();
                    for entry in entries {
                        view.retained.push(entry);
                    }
                    view.retained.trim(now_ms());
                    view.committing_from = None;
                }
                *self.shared.failure.lock().expect("failure lock") = None;
                self.shared.appended.notify_waiters();
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(failure) => {
                tracing::error!("{failure}; the appends in that batch were refused");
                for (key, previous) in undo_once.into_iter().rev() {
                    match previous {
                        Some(at) => self.remembered.insert(key, at),
                        None => self.remembered.remove(&key),
                    };
                }
                for (key, previous) in undo_series.into_iter().rev() {
                    match previous {
                        Some(newest) => self.series.insert(key, newest),
                        None => self.series.remove(&key),
                    };
                }
                self.shared.view().committing_from = None;
                *self.shared.failure.lock().expect("failure lock") = Some(failure.clone());
                for reply in replies {
                    let _ = reply.send(Err(LogError::Unavailable(failure.clone())));
                }
            }
        }
    }

    /// Deletes from the file what the window trimmed; with `forget`, also the expired
    /// once-keys and series.
    async fn maintain(&mut self, forget: bool) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        let now = now_ms();
        let (target, last) = {
            let mut view = self.shared.view();
            view.retained.trim(now);
            (view.retained.trimmed_through, view.retained.last)
        };
        if target > self.disk_trimmed {
            match store::write_batch(connection, &BatchRows::default(), last, Some(target)).await {
                Ok(()) => {
                    self.disk_trimmed = target;
                    // The file takes writes again: what `ping` reported is over.
                    *self.shared.failure.lock().expect("failure lock") = None;
                }
                Err(error) => tracing::warn!(%error, "the log file could not be trimmed"),
            }
        }
        if forget {
            self.remembered.retain(|_, at| *at > now);
            self.series.retain(|_, (_, at)| *at > now);
            if let Err(error) = store::forget_expired(connection, now).await {
                tracing::warn!(%error, "expired once-keys could not be deleted from the log file");
            }
        }
    }
}
