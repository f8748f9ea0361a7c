//! Log entries as the streaming layer sees them: the entry, plus what each transport and dialect
//! makes of it, each encoded at most once per node and shared by every subscriber.
//!
//! The log knows nothing of frames; the hub and the subscriptions wrap each entry they hand out
//! in a [`FramedEntry`], and a transport asks it for its [`Encoding`].

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use sluice_log::{Entry, SharedEntry};

/// What an entry is encoded as. A new dialect or transport that sends entries adds its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The native `indicator` frame (WebSocket text).
    Native,
    /// The native frame as an SSE event (`id:`, `event:`, `data:`).
    Sse,
    /// csirtg.io's ActionCable `message`: the indicator as a JSON string, tags comma-joined.
    ActionCableMessage,
    /// CIFv4's text frame.
    Cif,
}

impl Encoding {
    const COUNT: usize = 4;

    fn slot(self) -> usize {
        self as usize
    }
}

/// One entry and its encodings.
#[derive(Debug)]
pub struct FramedEntry {
    entry: SharedEntry,
    encoded: [OnceLock<Utf8Bytes>; Encoding::COUNT],
}

/// A [`FramedEntry`] shared by every subscriber of a node.
pub type Framed = Arc<FramedEntry>;

impl FramedEntry {
    pub fn new(entry: SharedEntry) -> Framed {
        Arc::new(FramedEntry {
            entry,
            encoded: Default::default(),
        })
    }

    /// The log entry itself, shared (for readers that keep entries, not frames).
    pub fn entry(&self) -> &SharedEntry {
        &self.entry
    }

    /// The entry as `encoding`, made by `encode` the first time anyone asks.
    pub fn encoded(&self, encoding: Encoding, encode: impl FnOnce(&Entry) -> String) -> Utf8Bytes {
        self.encoded[encoding.slot()]
            .get_or_init(|| encode(&self.entry).into())
            .clone()
    }
}

impl Deref for FramedEntry {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        &self.entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn each_encoding_is_made_once() {
        let indicator = domain::Indicator::from_json(
            serde_json::json!({"indicator": "185.220.101.7", "provider": "p"}),
            domain::Provenance::Trusted,
            chrono::Utc::now(),
        )
        .unwrap();
        let cursor: domain::Cursor = "e.1-0".parse().unwrap();
        let framed = FramedEntry::new(Entry::new(cursor, indicator, "{}".into()));
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let native = framed.encoded(Encoding::Native, |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                "native".into()
            });
            assert_eq!(native.as_str(), "native");
        }
        let cif = framed.encoded(Encoding::Cif, |entry| entry.indicator.indicator().into());
        assert_eq!(cif.as_str(), "185.220.101.7");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
