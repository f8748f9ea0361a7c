//! Cursors: the cluster-wide, ordered, opaque positions subscribers resume from.
//!
//! A cursor is `<epoch>.<ms>-<seq>`. `ms-seq` is a Redis Stream ID (or the in-process log's
//! equivalent), which orders entries cluster-wide. The epoch names one incarnation of the log: a
//! Redis that lost its data, or a restarted in-process log, gets a new epoch, so a cursor from
//! before is recognised as unusable instead of silently pointing into a different history.

use std::fmt;
use std::str::FromStr;

/// Longest epoch accepted; epochs are short random lowercase alphanumerics.
const MAX_EPOCH_LEN: usize = 32;

/// A position in one log incarnation: a Redis Stream ID (`ms-seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The position just before this one: reading the log after it starts at this entry.
    pub fn before(self) -> StreamId {
        match self.seq {
            0 => StreamId::new(self.ms.saturating_sub(1), u64::MAX),
            seq => StreamId::new(self.ms, seq - 1),
        }
    }

    /// Parses the `ms-seq` form Redis uses (`"1700000000000-0"`).
    pub fn parse(text: &str) -> Result<Self, CursorError> {
        let (ms, seq) = text.split_once('-').ok_or(CursorError::Malformed)?;
        let ms = parse_decimal(ms)?;
        let seq = parse_decimal(seq)?;
        Ok(StreamId { ms, seq })
    }
}

fn parse_decimal(text: &str) -> Result<u64, CursorError> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CursorError::Malformed);
    }
    text.parse().map_err(|_| CursorError::Malformed)
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An opaque, ordered position in the indicator log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    epoch: String,
    id: StreamId,
}

impl Cursor {
    /// Builds a cursor; `epoch` must be 1–32 lowercase ASCII letters or digits.
    pub fn new(epoch: &str, id: StreamId) -> Result<Self, CursorError> {
        validate_epoch(epoch)?;
        Ok(Cursor {
            epoch: epoch.to_owned(),
            id,
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn id(&self) -> StreamId {
        self.id
    }
}

/// Checks an epoch string: 1–32 characters of `[a-z0-9]`.
pub fn validate_epoch(epoch: &str) -> Result<(), CursorError> {
    let ok = !epoch.is_empty()
        && epoch.len() <= MAX_EPOCH_LEN
        && epoch
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(CursorError::Malformed)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.id)
    }
}

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_EPOCH_LEN + 42 {
            return Err(CursorError::Malformed);
        }
        let (epoch, id) = text.split_once('.').ok_or(CursorError::Malformed)?;
        Cursor::new(epoch, StreamId::parse(id)?)
    }
}

/// Cursors cross the wire as their text (`"<epoch>.<ms>-<seq>"`).
impl serde::Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a subscriber asks to start (`cursor=` / `Last-Event-ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPosition {
    /// Only what arrives from now on (`cursor=now`, or no cursor).
    Now,
    /// The oldest entry the subscriber may see (`cursor=earliest`).
    Earliest,
    /// Right after this cursor.
    After(Cursor),
}

impl FromStr for LogPosition {
    type Err = CursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "" | "now" => Ok(LogPosition::Now),
            "earliest" => Ok(LogPosition::Earliest),
            other => other.parse().map(LogPosition::After),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error(
        "cursor is not valid: expected `now`, `earliest` or a cursor from a previous frame's `id`"
    )]
    Malformed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, expected: Option<(&str, u64, u64)>) {
        let parsed = text.parse::<Cursor>().ok();
        let parsed = parsed.as_ref().map(|c| (c.epoch(), c.id().ms, c.id().seq));
        assert_eq!(parsed, expected, "parsing {text:?}");
    }

    #[test]
    fn parses_cursors() {
        check("a1b2.1700000000000-0", Some(("a1b2", 1_700_000_000_000, 0)));
        check("x.0-0", Some(("x", 0, 0)));
        check("A1.1-0", None);
        check(".1-0", None);
        check("a1", None);
        check("a1.1", None);
        check("a1.-1", None);
        check("a1.1-", None);
        check("a1.+1-0", None);
        check("a1.1-0-0", None);
        check("a1.99999999999999999999999-0", None);
        check("a b.1-0", None);
    }

    #[test]
    fn the_position_before_an_id_reads_it_next() {
        assert_eq!(StreamId::new(5, 3).before(), StreamId::new(5, 2));
        assert_eq!(StreamId::new(5, 0).before(), StreamId::new(4, u64::MAX));
        assert!(StreamId::new(5, 0).before() < StreamId::new(5, 0));
    }

    #[test]
    fn positions() {
        assert_eq!("now".parse::<LogPosition>(), Ok(LogPosition::Now));
        assert_eq!("".parse::<LogPosition>(), Ok(LogPosition::Now));
        assert_eq!("earliest".parse::<LogPosition>(), Ok(LogPosition::Earliest));
        assert!("nope".parse::<LogPosition>().is_err());
    }

    #[test]
    fn ids_order_like_redis() {
        assert!(StreamId::new(1, 5) < StreamId::new(2, 0));
        assert!(StreamId::new(2, 0) < StreamId::new(2, 1));
    }

    #[test]
    fn serialises_as_its_text() {
        let cursor: Cursor = "a1.5-2".parse().unwrap();
        assert_eq!(serde_json::to_string(&cursor).unwrap(), "\"a1.5-2\"");
        assert_eq!(
            serde_json::from_str::<Cursor>("\"a1.5-2\"").unwrap(),
            cursor
        );
        assert!(serde_json::from_str::<Cursor>("\"now\"").is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(epoch in "[a-z0-9]{1,32}", ms: u64, seq: u64) {
            let cursor = Cursor::new(&epoch, StreamId::new(ms, seq)).unwrap();
            prop_assert_eq!(cursor.to_string().parse::<Cursor>().unwrap(), cursor);
        }

        #[test]
        fn never_panics_on_garbage(text in "\\PC{0,80}") {
            let _ = text.parse::<Cursor>();
            let _ = text.parse::<LogPosition>();
        }
    }
}
