//! One entry of the log: an indicator, its cursor, and its canonical JSON (encoded at most once).
//!
//! Entries are shared (`Arc`) by every reader of a node. What a transport makes of an entry
//! (frames) is the streaming layer's business and is cached there, not here.

use std::sync::{Arc, OnceLock};

use domain::{Cursor, Indicator, StreamId};

/// One accepted indicator in the log, shared by every subscriber of this node.
#[derive(Debug)]
pub struct Entry {
    pub cursor: Cursor,
    pub indicator: Indicator,
    /// The canonical JSON of `indicator`, serialised at most once, when first needed (readers
    /// that only look at the indicator, like the correlator, never pay for it).
    json: OnceLock<Arc<str>>,
}

pub type SharedEntry = Arc<Entry>;

impl Entry {
    pub fn new(cursor: Cursor, indicator: Indicator, json: Arc<str>) -> SharedEntry {
        Arc::new(Entry {
            cursor,
            indicator,
            json: OnceLock::from(json),
        })
    }

    /// Builds an entry from the indicator's canonical JSON as stored in the log. It is
    /// validated as of its arrival (the id's time), so every reader, whatever its clock, reads
    /// the same indicator.
    pub fn from_stored(cursor: Cursor, stored: &[u8]) -> Result<SharedEntry, domain::Rejection> {
        let indicator = Self::parse_stored(&cursor, stored)?;
        Ok(Arc::new(Entry {
            cursor,
            indicator,
            json: OnceLock::new(),
        }))
    }

    /// As [`Entry::from_stored`], keeping `stored` as the entry's JSON: the embedded log stores
    /// the canonical JSON it streamed, so a replay after a restart is the same bytes.
    pub fn from_stored_json(
        cursor: Cursor,
        stored: Arc<str>,
    ) -> Result<SharedEntry, domain::Rejection> {
        let indicator = Self::parse_stored(&cursor, stored.as_bytes())?;
        Ok(Entry::new(cursor, indicator, stored))
    }

    fn parse_stored(cursor: &Cursor, stored: &[u8]) -> Result<Indicator, domain::Rejection> {
        let arrival = i64::try_from(cursor.id().ms)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or_else(chrono::Utc::now);
        Indicator::from_slice(stored, domain::Provenance::Trusted, arrival)
    }

    /// The indicator's canonical JSON.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| self.indicator.to_json().to_string().into())
    }

    pub fn id(&self) -> StreamId {
        self.cursor.id()
    }
}
