//! Which log entry is the first and the last version of each STIX object, for TAXII's
//! `match[version]` and `objects/{id}/`.
//!
//! A provider's reports of one indicator are versions of one STIX object (the same id, a later
//! `modified`), so answering "the last version" of an entry needs to know whether a later entry
//! holds the same object. The index knows, for every object in the retained log, the positions
//! of its first and its last version. It is built on the first TAXII request by reading the log
//! once, and brought up to date by each later request, which reads only what was appended since;
//! it forgets objects whose every version retention removed. Memory: about 50 bytes per distinct
//! object, against about 0.9 KiB per retained entry for the log itself.

use std::collections::HashMap;

use domain::{Indicator, StreamId};
use sluice_log::{Log, LogError};
use tokio::sync::{RwLock, RwLockReadGuard};

/// Entries read per log request while catching up.
const READ_BATCH: usize = 2_000;

/// A STIX object's identity: the UUID of its `indicator--` id.
pub type ObjectKey = u128;

/// The key of the STIX object an indicator maps to.
pub fn object_key(indicator: &Indicator) -> ObjectKey {
    parse_object_id(&sluice_stix::indicator_id(
        indicator.provider(),
        indicator.indicator(),
    ))
    .unwrap_or_default()
}

/// The key in an `indicator--<uuid>` id, or `None` for anything else.
pub fn parse_object_id(id: &str) -> Option<ObjectKey> {
    let uuid = id.strip_prefix("indicator--")?;
    uuid::Uuid::parse_str(uuid)
        .ok()
        .filter(|parsed| parsed.hyphenated().to_string() == uuid)
        .map(|parsed| parsed.as_u128())
}

/// The first and the last version of one object still in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub first: StreamId,
    pub last: StreamId,
}

#[derive(Default)]
pub struct Index {
    epoch: String,
    /// Every entry up to here is indexed.
    through: StreamId,
    /// Entries before this millisecond can no longer be appended to (the log's clock passed
    /// it): a page shows only these, so a poller resuming from `X-TAXII-Date-Added-Last` misses
    /// nothing that arrives in the same millisecond.
    settled_ms: u64,
    /// Retention removed everything up to here.
    trimmed_through: StreamId,
    objects: HashMap<ObjectKey, Versions>,
}

impl Index {
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The newest position a page may show: indexed, and in a millisecond the log has left.
    pub fn head(&self) -> StreamId {
        let settled = StreamId::new(self.settled_ms.saturating_sub(1), u64::MAX);
        self.through.min(settled)
    }

    pub fn trimmed_through(&self) -> StreamId {
        self.trimmed_through
    }

    pub fn versions(&self, key: ObjectKey) -> Option<Versions> {
        self.objects.get(&key).copied()
    }

    /// Objects indexed.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    fn restart(&mut self, epoch: &str) {
        *self = Index {
            epoch: epoch.to_owned(),
            ..Index::default()
        };
    }

    fn add(&mut self, key: ObjectKey, id: StreamId) {
        self.objects
            .entry(key)
            .and_modify(|versions| versions.last = id)
            .or_insert(Versions {
                first: id,
                last: id,
            });
    }

    /// Forgets objects retention removed entirely. An object whose first version went keeps
    /// its newer ones; its `first` then names no retained entry (the first version is gone, so
    /// `match[version]=first` no longer finds one), while still ordering before all of them.
    fn prune(&mut self, trimmed_through: StreamId) {
        self.objects
            .retain(|_, versions| versions.last > trimmed_through);
        for versions in self.objects.values_mut() {
            if versions.first <= trimmed_through {
                versions.first = trimmed_through;
            }
        }
    }
}

/// The node's index, shared by its TAXII requests.
#[derive(Default)]
pub struct VersionIndex {
    inner: RwLock<Index>,
}

impl VersionIndex {
    /// Reads what the log appended since the last request (the whole log the first time, or
    /// after the log's epoch changed), then answers with the index to read from.
    pub async fn current(&self, log: &dyn Log) -> Result<RwLockReadGuard<'_, Index>, LogError> {
        let mut index = self.inner.write().await;
        loop {
            let batch = log.read_after(index.through, READ_BATCH).await?;
            if batch.epoch != index.epoch {
                tracing::info!(epoch = %batch.epoch, "TAXII version index (re)built for the log's epoch");
                index.restart(&batch.epoch);
                continue;
            }
            if batch.trimmed_through > index.trimmed_through {
                index.trimmed_through = batch.trimmed_through;
                // Amortised: a full pass only once retention removed a noticeable share.
                if index.objects.len() > 1024 || batch.entries.is_empty() {
                    index.prune(batch.trimmed_through);
                }
            }
            for entry in &batch.entries {
                index.add(object_key(&entry.indicator), entry.id());
            }
            if let Some(through) = batch.read_through {
                index.through = index.through.max(through);
            }
            index.settled_ms = batch.clock_ms;
            // The in-process log answers at once: let the streams on this worker run.
            tokio::task::yield_now().await;
            if batch.scanned < READ_BATCH {
                break;
            }
        }
        Ok(index.downgrade())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    #[test]
    fn the_first_and_last_versions_are_kept_and_pruned_with_retention() {
        let mut index = Index::default();
        index.add(1, id(10));
        index.add(2, id(11));
        index.add(1, id(12));
        index.add(1, id(20));
        assert_eq!(
            index.versions(1),
            Some(Versions {
                first: id(10),
                last: id(20)
            })
        );
        index.prune(id(11));
        assert_eq!(index.versions(2), None, "every version of it is gone");
        let one = index.versions(1).unwrap();
        assert_eq!(
            one.first,
            id(11),
            "the first version is gone: none is first"
        );
        assert_eq!(one.last, id(20));
    }

    #[test]
    fn the_head_is_what_is_indexed_and_settled() {
        let mut index = Index {
            through: id(100),
            settled_ms: 50,
            ..Index::default()
        };
        assert_eq!(index.head(), StreamId::new(49, u64::MAX));
        index.settled_ms = 500;
        assert_eq!(index.head(), id(100));
    }

    #[test]
    fn object_ids_parse_only_as_written() {
        let key = parse_object_id("indicator--0f6f5b1a-3c2e-5d4b-9a8f-7e6d5c4b3a21").unwrap();
        assert_eq!(key, 0x0f6f5b1a_3c2e_5d4b_9a8f_7e6d5c4b3a21);
        for bad in [
            "identity--0f6f5b1a-3c2e-5d4b-9a8f-7e6d5c4b3a21",
            "indicator--0F6F5B1A-3C2E-5D4B-9A8F-7E6D5C4B3A21",
            "indicator--0f6f5b1a3c2e5d4b9a8f7e6d5c4b3a21",
            "indicator--",
        ] {
            assert_eq!(parse_object_id(bad), None, "{bad}");
        }
    }
}
