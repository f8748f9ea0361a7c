//! One page of a collection: the log read forwards from where the request starts, entries the
//! plan may see and the collection selects, in the versions asked for, as STIX objects.
//!
//! Pages are exact under concurrent appends: a page ends at a log position, and `next` is that
//! position, so the following page starts right after it; entries appended meanwhile are after
//! it too. A page shows only entries the version index has read and whose millisecond the log
//! has left, so `X-TAXII-Date-Added-Last` is also an exact place to resume with `added_after`.
//!
//! Every `indicator` object carries its effective expiry as `valid_until` (`domain::validity`).
//! A collection's `objects/` and `manifest/` leave out entries expired at the time of the
//! request; an object asked for by id (`objects/{id}/`, `versions/`) is answered whether or not
//! it has expired, so a client can see that it did, from its `valid_until` in the past.

use chrono::{DateTime, Utc};
use domain::{Cursor, StreamId, Validity};
use serde_json::Value;
use sluice_log::{Log, LogError, SharedEntry};

use super::collections::Collection;
use super::params::Params;
use super::versions::{object_key, ObjectKey, Snapshot, VersionIndex, Versions};
use crate::enforcement::visible;
use domain::whitelist::Whitelist;
use domain::Limits;

/// Log entries one page reads at most; a page that reaches it ends early (`more`, `next`).
pub const MAX_SCAN: usize = 100_000;
const READ_BATCH: usize = 2_000;

/// One entry on a page and the objects it gives.
pub struct Item {
    pub entry: SharedEntry,
    pub objects: Vec<Value>,
}

pub struct Page {
    pub items: Vec<Item>,
    pub more: bool,
    /// Where the next page starts (set when `more`).
    pub next: Option<Cursor>,
}

impl Page {
    pub fn object_count(&self) -> usize {
        self.items.iter().map(|item| item.objects.len()).sum()
    }

    /// `X-TAXII-Date-Added-First` and `-Last`, when the page holds anything.
    pub fn date_headers(&self) -> Vec<(&'static str, String)> {
        match (self.items.first(), self.items.last()) {
            (Some(first), Some(last)) => vec![
                ("x-taxii-date-added-first", date_added(&first.entry)),
                ("x-taxii-date-added-last", date_added(&last.entry)),
            ],
            _ => Vec::new(),
        }
    }
}

/// When the log added an entry: its id's millisecond, as a STIX timestamp.
pub fn date_added(entry: &SharedEntry) -> String {
    let ms = i64::try_from(entry.id().ms).unwrap_or(i64::MAX);
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// What a page selects.
pub struct Selection<'a> {
    pub limits: &'a Limits,
    pub collection: &'a Collection,
    pub params: &'a Params,
    /// Only this object (`objects/{id}/`), and only up to its last version.
    pub object: Option<ObjectKey>,
    /// The oldest position the plan may read.
    pub floor: StreamId,
    /// When entries expire, and the time of the request.
    pub validity: &'a Validity,
    pub now: DateTime<Utc>,
    /// Leave out entries expired at `now` (a collection's objects and manifest; not an object
    /// asked for by id).
    pub hide_expired: bool,
}

/// Reads one page; `snapshot` is what `VersionIndex::current` answered for this request.
pub async fn read(
    log: &dyn Log,
    index: &VersionIndex,
    snapshot: &Snapshot,
    selection: &Selection<'_>,
) -> Result<Page, LogError> {
    let params = selection.params;
    let mut page = Page {
        items: Vec::new(),
        more: false,
        next: None,
    };
    if !params.spec_version_ok {
        return Ok(page);
    }
    let mut end = snapshot.head;
    let mut position = params.start_after(selection.floor);
    if let Some(key) = selection.object {
        // Only the versions this plan may see: an object it may not see is not there.
        let Some(versions) = index.versions(key, selection.limits.max_tlp) else {
            return Ok(page);
        };
        if !params.versions.all && params.versions.at_ms.is_empty() {
            return read_versions(log, index, snapshot, selection, versions, position, end).await;
        }
        end = end.min(versions.last);
        position = position.max(versions.first.before());
    }
    let mut through = position;
    let mut count = 0;
    let mut scanned = 0;
    'pages: while scanned < MAX_SCAN && position < end {
        let batch = log.read_after(position, READ_BATCH).await?;
        tokio::task::yield_now().await;
        if batch.epoch != snapshot.epoch {
            // The log was replaced since the index was read: the next request rebuilds it.
            return Err(LogError::Unavailable(
                "the log's epoch changed during the request".into(),
            ));
        }
        scanned += batch.scanned;
        for entry in batch.entries {
            let id = entry.id();
            if id > end {
                break 'pages;
            }
            let objects = select(index, selection, &entry);
            if !objects.is_empty() {
                if count > 0 && count + objects.len() > params.limit {
                    page.more = true;
                    break 'pages;
                }
                count += objects.len();
                page.items.push(Item { entry, objects });
            }
            through = id;
            if count >= params.limit {
                page.more = through < end;
                break 'pages;
            }
        }
        match batch.read_through {
            Some(read) if batch.scanned >= READ_BATCH => {
                position = read;
                through = through.max(read.min(end));
            }
            _ => break,
        }
    }
    if scanned >= MAX_SCAN && through < end && !page.more {
        page.more = true;
    }
    if page.more {
        page.next = Cursor::new(&snapshot.epoch, through).ok();
    }
    Ok(page)
}

/// An object's first and/or last version, each read as the one entry it is (no scan of what
/// lies between, which for an object reported all day is most of the log).
async fn read_versions(
    log: &dyn Log,
    index: &VersionIndex,
    snapshot: &Snapshot,
    selection: &Selection<'_>,
    versions: Versions,
    after: StreamId,
    end: StreamId,
) -> Result<Page, LogError> {
    let wanted = &selection.params.versions;
    let mut positions = Vec::new();
    if wanted.first {
        positions.push(versions.first);
    }
    if wanted.last && !(wanted.first && versions.last == versions.first) {
        positions.push(versions.last);
    }
    let mut page = Page {
        items: Vec::new(),
        more: false,
        next: None,
    };
    for position in positions {
        if position <= after || position > end {
            continue;
        }
        let batch = log.read_after(position.before(), 1).await?;
        if batch.epoch != snapshot.epoch {
            return Err(LogError::Unavailable(
                "the log's epoch changed during the request".into(),
            ));
        }
        let Some(entry) = batch
            .entries
            .into_iter()
            .find(|entry| entry.id() == position)
        else {
            // Retention took it since the index was read (or, for `first`, before).
            continue;
        };
        let objects = select(index, selection, &entry);
        if !objects.is_empty() {
            page.items.push(Item { entry, objects });
        }
    }
    Ok(page)
}

/// The objects `entry` gives this selection (none when it is not selected). What can be
/// decided without building the objects is decided first: a page over a large log with a
/// filter that matches little must cost a scan, not a STIX encoding per entry.
fn select(index: &VersionIndex, selection: &Selection<'_>, entry: &SharedEntry) -> Vec<Value> {
    let indicator = &entry.indicator;
    let params = selection.params;
    // Whitelist entries say what is not an indicator of compromise: not shared as indicators.
    if !visible(selection.limits, indicator)
        || Whitelist::is_entry(indicator)
        || !selection.collection.filter.matches(indicator)
    {
        return Vec::new();
    }
    // Only a derived indicator has relationships; every entry has its indicator object.
    let wants = |kind: &str| {
        params
            .types
            .as_ref()
            .is_none_or(|types| types.contains(kind))
    };
    let may_relate = indicator.is_correlated() && wants("relationship");
    if !wants("indicator") && !may_relate {
        return Vec::new();
    }
    if let (Some(ids), false) = (&params.ids, may_relate) {
        let id = sluice_stix::indicator_id(indicator.provider(), indicator.indicator());
        if !ids.contains(&id) {
            return Vec::new();
        }
    }
    let key = object_key(indicator);
    if selection.object.is_some_and(|wanted| wanted != key) {
        return Vec::new();
    }
    let versions = &params.versions;
    let wanted_version = versions.all
        || index
            .versions(key, selection.limits.max_tlp)
            .is_some_and(|known| {
                (versions.last && known.last == entry.id())
                    || (versions.first && known.first == entry.id())
            })
        || versions
            .at_ms
            .contains(&indicator.reporttime().timestamp_millis());
    if !wanted_version {
        return Vec::new();
    }
    let valid_until = selection.validity.expires(indicator);
    if selection.hide_expired && valid_until.is_some_and(|expiry| expiry <= selection.now) {
        return Vec::new();
    }
    let lifecycle = sluice_stix::Lifecycle {
        valid_until,
        ..sluice_stix::Lifecycle::default()
    };
    let mut objects = sluice_stix::objects(indicator, lifecycle);
    if selection.object.is_some() {
        objects.truncate(1);
    }
    objects.retain(|object| {
        let field = |name: &str| object[name].as_str().unwrap_or_default();
        params
            .types
            .as_ref()
            .is_none_or(|types| types.contains(field("type")))
            && params
                .ids
                .as_ref()
                .is_none_or(|ids| ids.contains(field("id")))
    });
    objects
}
