//! A feed's scan of the log: backwards in time from now down to the plan's window, keeping per
//! indicator the entry with the highest confidence (then the newest), with whitelisted
//! indicators subtracted. Entries expired at the time of the request (`domain::validity`) are
//! left out before anything else, whitelist entries included: an expired report does not hide
//! a current one of the same indicator, and an expired whitelist entry subtracts nothing.
//! A withdrawal (docs/protocol.md §2.10) is never listed: it removes its provider's earlier
//! reports of the indicator (whitelist entries too), whichever order the scan reads them in,
//! and leaves the other providers' reports of it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::whitelist::Whitelist;
use domain::{Filter, Limits, StreamId, Validity};
use sluice_log::{Log, LogError, SharedEntry};

use crate::enforcement::visible;

/// Log entries a single request scans at most, so one request cannot read a whole day; the
/// newest are scanned first. Whitelist entries older than what was scanned do not apply.
const MAX_SCAN: usize = 200_000;
const READ_BATCH: usize = 2_000;
/// The first span read back from now; each further span is twice as long.
const FIRST_SPAN_MS: u64 = 60_000;

/// What a feed selects.
pub struct Selection<'a> {
    pub limits: &'a Limits,
    pub filter: &'a Filter,
    /// CIF's search: one exact indicator, and no whitelist subtraction.
    pub exact: Option<&'a str>,
    /// Only entries at or after this position (the plan's window, or `since`).
    pub floor: StreamId,
    /// Indicators only from entries at or after this position; whitelist entries count from
    /// `floor` on.
    pub deliver_from: StreamId,
    pub limit: usize,
    /// When entries expire, and the time of the request.
    pub validity: &'a Validity,
    pub now: DateTime<Utc>,
}

/// The selected entries, newest first.
pub async fn collect(
    log: &dyn Log,
    selection: &Selection<'_>,
    now_ms: u64,
) -> Result<Vec<SharedEntry>, LogError> {
    let mut collector = Collector::new(selection);
    let floor = selection.floor;
    // Spans that double (1 min, 2 min, …) down to the floor, each read forwards up to where the
    // previous one began: the newest entries are always read, even when the window holds more
    // than one request may scan.
    let mut end = StreamId::new(now_ms.saturating_add(1), 0);
    let mut span_ms = FIRST_SPAN_MS;
    loop {
        let start = StreamId::new(end.ms.saturating_sub(span_ms).max(floor.ms), 0);
        collector.read_span(log, start, end).await?;
        if start.ms <= floor.ms || collector.scanned >= MAX_SCAN || collector.enough() {
            break;
        }
        end = start;
        span_ms = span_ms.saturating_mul(2);
    }
    Ok(collector.finish())
}

/// An indicator as one provider reported it.
type Pair = (String, String);

struct Collector<'a> {
    selection: &'a Selection<'a>,
    wants_whitelist: bool,
    /// Per indicator, the best entry of each provider that reported it (usually one).
    best: HashMap<String, Vec<SharedEntry>>,
    /// The newest whitelist entry per indicator and provider.
    whitelist: HashMap<Pair, SharedEntry>,
    /// The newest withdrawal per indicator and provider: what is older is taken back.
    withdrawn: HashMap<Pair, StreamId>,
    scanned: usize,
}

impl<'a> Collector<'a> {
    fn new(selection: &'a Selection<'a>) -> Self {
        Collector {
            selection,
            wants_whitelist: selection.filter.wants_tag("whitelist"),
            best: HashMap::new(),
            whitelist: HashMap::new(),
            withdrawn: HashMap::new(),
            scanned: 0,
        }
    }

    fn enough(&self) -> bool {
        self.best.len() >= self.selection.limit
    }

    /// Reads the entries in `[start, end)`, oldest first, within the scan budget.
    async fn read_span(
        &mut self,
        log: &dyn Log,
        start: StreamId,
        end: StreamId,
    ) -> Result<(), LogError> {
        let mut position = StreamId::new(start.ms.saturating_sub(1), u64::MAX);
        while self.scanned < MAX_SCAN {
            let batch = log.read_after(position, READ_BATCH).await?;
            // The in-process log answers at once: without this a scan would hold its worker
            // thread, and the streams queued on it, for the whole scan.
            tokio::task::yield_now().await;
            self.scanned += batch.scanned;
            for entry in &batch.entries {
                if entry.id() >= end {
                    return Ok(());
                }
                self.consider(entry);
            }
            match batch.read_through {
                Some(through) if batch.scanned >= READ_BATCH && through < end => position = through,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Adds one log entry to the feed being built (or to its whitelist).
    fn consider(&mut self, entry: &SharedEntry) {
        let indicator = &entry.indicator;
        if !visible(self.selection.limits, indicator) {
            return;
        }
        let pair = (
            indicator.indicator().to_owned(),
            indicator.provider().to_owned(),
        );
        // Before the expiry check: a withdrawal takes back reports however long they last.
        if indicator.is_withdrawn() {
            self.withdraw(pair, entry.id());
            return;
        }
        if self
            .selection
            .validity
            .is_expired(indicator, self.selection.now)
        {
            return;
        }
        if self
            .withdrawn
            .get(&pair)
            .is_some_and(|withdrawn| *withdrawn > entry.id())
        {
            return;
        }
        if Whitelist::is_entry(indicator) && !self.wants_whitelist {
            if self
                .whitelist
                .get(&pair)
                .is_none_or(|kept| kept.id() < entry.id())
            {
                self.whitelist.insert(pair, entry.clone());
            }
            return;
        }
        if entry.id() < self.selection.deliver_from || !self.selection.filter.matches(indicator) {
            return;
        }
        if self
            .selection
            .exact
            .is_some_and(|q| !q.eq_ignore_ascii_case(indicator.indicator()))
        {
            return;
        }
        let reports = self.best.entry(pair.0).or_default();
        match reports
            .iter_mut()
            .find(|kept| kept.indicator.provider() == indicator.provider())
        {
            Some(kept) if better(entry, kept) => *kept = entry.clone(),
            Some(_) => {}
            None => reports.push(entry.clone()),
        }
    }

    /// Takes back what `pair`'s provider reported of it before `at`.
    fn withdraw(&mut self, pair: Pair, at: StreamId) {
        if let Some(reports) = self.best.get_mut(&pair.0) {
            reports.retain(|kept| kept.indicator.provider() != pair.1 || kept.id() > at);
            if reports.is_empty() {
                self.best.remove(&pair.0);
            }
        }
        if self.whitelist.get(&pair).is_some_and(|kept| kept.id() < at) {
            self.whitelist.remove(&pair);
        }
        let newest = self.withdrawn.entry(pair).or_default();
        *newest = (*newest).max(at);
    }

    fn finish(self) -> Vec<SharedEntry> {
        let exact = self.selection.exact.is_some();
        let mut whitelist = Whitelist::default();
        for entry in self.whitelist.values() {
            whitelist.add(&entry.indicator);
        }
        let mut entries: Vec<SharedEntry> = self
            .best
            .into_values()
            .filter_map(|reports| {
                reports
                    .into_iter()
                    .reduce(|kept, entry| if better(&entry, &kept) { entry } else { kept })
            })
            .filter(|entry| exact || !whitelist.covers(&entry.indicator))
            .collect();
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.cursor.id()));
        entries.truncate(self.selection.limit);
        entries
    }
}

/// Whether `entry` is kept over `kept`: spans are read newest first but each span oldest
/// first, so the highest confidence, and the newest among equals.
fn better(entry: &SharedEntry, kept: &SharedEntry) -> bool {
    let (new, old) = (entry.indicator.confidence(), kept.indicator.confidence());
    new > old || (new == old && entry.id() > kept.id())
}
