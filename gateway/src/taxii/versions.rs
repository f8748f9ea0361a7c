//! Which log entry is the first and the last version of each STIX object, for TAXII's
//! `match[version]` and `objects/{id}/`.
//!
//! A provider's reports of one indicator are versions of one STIX object (the same id, a later
//! `modified`), so answering "the last version" of an entry needs to know whether a later entry
//! holds the same object. The index knows, for every object in the retained log and every TLP
//! level it was reported at, the positions of its first and its last version: a plan sees the
//! last version it may see, and an object it may not see at all is not there (no scan, no
//! timing to tell it from one that does not exist). It also knows whether an object's last
//! version is a withdrawal, which is what a provider's withdrawal needs to find the report it
//! takes back (`crate::withdraw`). It is built on the first TAXII request or withdrawal by
//! reading the log once, and brought up to date by each later one, which reads only what
//! was appended since; it forgets objects whose every version retention removed.
//!
//! No lock is held across an `await` that a page waits on: catching up is one at a time (a
//! mutex of its own), the map is behind a `std` lock taken briefly for each batch applied and
//! each lookup. Memory: a 56-byte slot per (object, TLP level) in a hash map kept at most 7/8
//! full, so 64 to 128 bytes per object reported at one level, against about 0.9 KiB per
//! retained entry for the log itself.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use domain::{Indicator, StreamId, Tlp};
use sluice_log::{Log, LogError};
use tokio::sync::Mutex;

/// Entries read per log request while catching up.
const READ_BATCH: usize = 2_000;
/// How often the index is pruned of objects retention removed, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

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

/// The first and the last version of one object still in the log (at one TLP level, or the
/// ones a plan may see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub first: StreamId,
    pub last: StreamId,
    /// The last version is a withdrawal.
    pub withdrawn: bool,
}

impl Versions {
    fn merge(self, other: Versions) -> Versions {
        Versions {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
            withdrawn: if other.last > self.last {
                other.withdrawn
            } else {
                self.withdrawn
            },
        }
    }
}

/// What a provider reported of one object, for its withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// The most shareable level it was reported at, and its last version at that level.
    pub tlp: Tlp,
    pub last: StreamId,
    /// Its newest version, at any level, is a withdrawal.
    pub withdrawn: bool,
}

/// What a request reads the log up to, taken when the index was brought up to date.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub epoch: String,
    /// The newest position a page may show: indexed, and in a millisecond the log has left, so
    /// a poller resuming from `X-TAXII-Date-Added-Last` after a last page misses nothing that
    /// arrives in the same millisecond.
    pub head: StreamId,
    /// Retention removed everything up to here.
    pub trimmed_through: StreamId,
}

#[derive(Default)]
struct Index {
    epoch: String,
    /// Every entry up to here is indexed.
    through: StreamId,
    /// Entries before this millisecond can no longer be appended to (the log's clock passed
    /// it; the highest clock the log reported, so a clock stepping back moves nothing back).
    settled_ms: u64,
    trimmed_through: StreamId,
    /// Where retention stood at the last prune, and when that was.
    pruned_through: StreamId,
    pruned_at: Option<Instant>,
    objects: HashMap<(ObjectKey, u8), Versions>,
    /// Every provider in the log, with the lowest TLP level it reported at: whose `identity`
    /// a plan may look up (`objects/identity--…/`).
    providers: HashMap<String, u8>,
}

impl Index {
    fn head(&self) -> StreamId {
        let settled = StreamId::new(self.settled_ms.saturating_sub(1), u64::MAX);
        self.through.min(settled)
    }

    fn restart(&mut self, epoch: &str) {
        *self = Index {
            epoch: epoch.to_owned(),
            ..Index::default()
        };
    }

    fn add(&mut self, key: ObjectKey, tlp: Tlp, id: StreamId, withdrawn: bool) {
        self.objects
            .entry((key, tlp as u8))
            .and_modify(|versions| {
                versions.last = id;
                versions.withdrawn = withdrawn;
            })
            .or_insert(Versions {
                first: id,
                last: id,
                withdrawn,
            });
    }

    fn add_provider(&mut self, provider: &str, tlp: Tlp) {
        match self.providers.get_mut(provider) {
            Some(lowest) => *lowest = (*lowest).min(tlp as u8),
            None => {
                self.providers.insert(provider.to_owned(), tlp as u8);
            }
        }
    }

    /// The versions of `key` at TLP levels up to `max_tlp`.
    fn visible(&self, key: ObjectKey, max_tlp: Tlp) -> Option<Versions> {
        Tlp::ALL
            .iter()
            .filter(|tlp| **tlp <= max_tlp)
            .filter_map(|tlp| self.objects.get(&(key, *tlp as u8)).copied())
            .reduce(Versions::merge)
    }

    fn reported(&self, key: ObjectKey) -> Option<Reported> {
        let (tlp, lowest) = Tlp::ALL
            .iter()
            .find_map(|tlp| Some((*tlp, self.objects.get(&(key, *tlp as u8))?)))?;
        let newest = self.visible(key, Tlp::Red)?;
        Some(Reported {
            tlp,
            last: lowest.last,
            withdrawn: newest.withdrawn,
        })
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
        self.pruned_through = trimmed_through;
        self.pruned_at = Some(Instant::now());
    }

    /// Prunes when retention moved and the last prune is [`PRUNE_EVERY`] old: a pass over the
    /// whole map is paid at most that often, not per request.
    fn maybe_prune(&mut self) {
        let due = self.pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY);
        if self.trimmed_through > self.pruned_through && due {
            self.prune(self.trimmed_through);
        }
    }
}

/// The node's index, shared by its TAXII requests.
#[derive(Default)]
pub struct VersionIndex {
    catching_up: Mutex<()>,
    index: RwLock<Index>,
}

impl VersionIndex {
    /// Reads what the log appended since the last request (the whole log the first time, or
    /// after the log's epoch changed), and says what a page may read.
    pub async fn current(&self, log: &dyn Log) -> Result<Snapshot, LogError> {
        let _one_at_a_time = self.catching_up.lock().await;
        loop {
            let (epoch, through) = {
                let index = self.index.read().expect("version index poisoned");
                (index.epoch.clone(), index.through)
            };
            let batch = log.read_after(through, READ_BATCH).await?;
            {
                let mut index = self.index.write().expect("version index poisoned");
                if batch.epoch != epoch {
                    tracing::info!(epoch = %batch.epoch, "TAXII version index (re)built for the log's epoch");
                    index.restart(&batch.epoch);
                    continue;
                }
                index.trimmed_through = index.trimmed_through.max(batch.trimmed_through);
                for entry in &batch.entries {
                    let indicator = &entry.indicator;
                    index.add(
                        object_key(indicator),
                        indicator.tlp(),
                        entry.id(),
                        indicator.is_withdrawn(),
                    );
                    index.add_provider(indicator.provider(), indicator.tlp());
                }
                if let Some(read) = batch.read_through {
                    index.through = index.through.max(read);
                }
                index.settled_ms = index.settled_ms.max(batch.clock_ms);
                if batch.scanned < READ_BATCH {
                    index.maybe_prune();
                }
            }
            // The in-process log answers at once: let the streams on this worker run.
            tokio::task::yield_now().await;
            if batch.scanned < READ_BATCH {
                break;
            }
        }
        let index = self.index.read().expect("version index poisoned");
        Ok(Snapshot {
            epoch: index.epoch.clone(),
            head: index.head(),
            trimmed_through: index.trimmed_through,
        })
    }

    /// The provider whose `identity` has this id, if it reported anything a plan that sees up
    /// to `max_tlp` may see.
    pub fn provider(&self, identity_id: &str, max_tlp: Tlp) -> Option<String> {
        let index = self.index.read().expect("version index poisoned");
        index
            .providers
            .iter()
            .filter(|(_, lowest)| **lowest <= max_tlp as u8)
            .map(|(provider, _)| provider)
            .find(|provider| sluice_stix::identity_id(provider) == identity_id)
            .cloned()
    }

    /// What the provider reported of `key`, at any level (its own reports: no plan applies).
    pub fn reported(&self, key: ObjectKey) -> Option<Reported> {
        self.index
            .read()
            .expect("version index poisoned")
            .reported(key)
    }

    /// The versions of `key` a plan that sees up to `max_tlp` may see.
    pub fn versions(&self, key: ObjectKey, max_tlp: Tlp) -> Option<Versions> {
        self.index
            .read()
            .expect("version index poisoned")
            .visible(key, max_tlp)
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
        index.add(1, Tlp::Green, id(10), false);
        index.add(2, Tlp::Green, id(11), false);
        index.add(1, Tlp::Green, id(12), false);
        index.add(1, Tlp::Green, id(20), false);
        assert_eq!(
            index.visible(1, Tlp::Red),
            Some(Versions {
                first: id(10),
                last: id(20),
                withdrawn: false,
            })
        );
        index.prune(id(11));
        assert_eq!(
            index.visible(2, Tlp::Red),
            None,
            "every version of it is gone"
        );
        let one = index.visible(1, Tlp::Red).unwrap();
        assert_eq!(
            one.first,
            id(11),
            "the first version is gone: none is first"
        );
        assert_eq!(one.last, id(20));
    }

    #[test]
    fn a_plan_sees_the_versions_at_the_levels_it_may_see() {
        let mut index = Index::default();
        index.add(1, Tlp::Amber, id(10), false);
        index.add(1, Tlp::Red, id(20), false);
        index.add(2, Tlp::Red, id(15), false);
        let amber = index.visible(1, Tlp::Amber).unwrap();
        assert_eq!((amber.first, amber.last), (id(10), id(10)));
        let red = index.visible(1, Tlp::Red).unwrap();
        assert_eq!((red.first, red.last), (id(10), id(20)));
        assert_eq!(
            index.visible(2, Tlp::Amber),
            None,
            "only red versions of it"
        );
        assert_eq!(index.visible(1, Tlp::Green), None);
    }

    #[test]
    fn pruning_waits_for_retention_to_move_and_for_its_interval() {
        let mut index = Index::default();
        index.add(1, Tlp::Green, id(10), false);
        index.add(2, Tlp::Green, id(20), false);
        index.maybe_prune();
        assert_eq!(index.objects.len(), 2, "retention has not moved");
        index.trimmed_through = id(10);
        index.maybe_prune();
        assert_eq!(index.objects.len(), 1, "the first prune is due at once");
        index.trimmed_through = id(20);
        index.maybe_prune();
        assert_eq!(index.objects.len(), 1, "the next waits for PRUNE_EVERY");
    }

    #[test]
    fn a_withdrawal_is_found_at_the_most_shareable_level_and_undone_by_a_later_report() {
        let mut index = Index::default();
        assert_eq!(index.reported(1), None);
        index.add(1, Tlp::Amber, id(10), false);
        index.add(1, Tlp::Green, id(20), false);
        index.add(1, Tlp::Red, id(30), false);
        let reported = index.reported(1).unwrap();
        assert_eq!((reported.tlp, reported.last), (Tlp::Green, id(20)));
        assert!(!reported.withdrawn);
        // The withdrawal is stored at green and is the newest version.
        index.add(1, Tlp::Green, id(40), true);
        assert!(index.reported(1).unwrap().withdrawn);
        assert!(index.visible(1, Tlp::Red).unwrap().withdrawn);
        assert!(
            !index.visible(1, Tlp::White).is_some_and(|v| v.withdrawn),
            "nothing at white"
        );
        // Reported again (at red): no longer withdrawn, for everyone who sees red.
        index.add(1, Tlp::Red, id(50), false);
        assert!(!index.reported(1).unwrap().withdrawn);
        assert!(!index.visible(1, Tlp::Red).unwrap().withdrawn);
        assert!(
            index.visible(1, Tlp::Amber).unwrap().withdrawn,
            "an amber plan's last version is still the withdrawal"
        );
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
