//! The correlation rule (docs/protocol.md §7): when enough distinct providers report the same
//! scanner within a window, a derived, higher-confidence indicator is emitted.
//!
//! Pure: the caller feeds reports with their event time (`reporttime`) and arrival time (the
//! log's clock when the report was appended) and gets emissions back. The rule, precisely:
//!
//! - A report is considered when its itype is `ipv4`/`ipv6`, it carries one of the rule's tags,
//!   its provider is not the correlator, and it has a key (see [`KeyKind`]).
//! - The key's condition holds at time T when at least `threshold` distinct providers reported it
//!   within `[T − window, T]`, both ends included. Conditions are evaluated at the key's report
//!   times: an emission is always triggered by, and timestamped with, a real report.
//! - An emission happens at the earliest such T; the key then emits again only at a report time
//!   T' ≥ T + window at which the condition holds again.
//! - Reports may arrive out of time order by up to `lateness` (behind the newest considered report
//!   seen); the emissions are those of the same reports in time order. A report older than that is
//!   a straggler: ignored and counted. Consequently an emission at T is decided once a report
//!   later than T + `lateness` has arrived — the price of exact answers.
//! - When no considered report has arrived for `idle` (arrival time), everything seen is final:
//!   pending decisions are taken, and a later report older than the newest one seen is a
//!   straggler. The arrival clock is the log's, so a replay of the log reaches the same decisions
//!   as the live run did.
//!
//! Times are microseconds since the Unix epoch.

mod emission;
mod engine;
mod key;
mod rule;
#[cfg(test)]
mod tests;

pub use emission::{Emission, Source};
pub use engine::{Engine, EngineStats, Outcome};
pub use key::{Key, KeyKind};
pub use rule::{Report, Rule, RuleError, Skip};

/// One second in the rule's time unit (microseconds).
pub const SECOND: i64 = 1_000_000;
