//! The correlator: runs the correlation rules (`domain::correlation`, docs/protocol.md §7) over
//! the log and appends their emissions back into it, where they stream like any other indicator.
//!
//! How it stays exact without coordination:
//! - Each instance reads the whole retained log in order, from the start, and feeds every rule
//!   engine. The engines are deterministic functions of the log (event times from the entries,
//!   arrival times from the entry ids, quiet spells from the log's clock), so a restarted
//!   instance, or a second replica, decides exactly the emissions the first one did.
//! - An emission is appended with `Log::append_spaced`: the log keeps, per series (rule, key),
//!   the newest emission time, and appends only an emission a full window after it, atomically.
//!   The first instance to append an emission wins and every other copy is refused; a `kill -9`
//!   between deciding and appending loses nothing (the restart decides it again); a kill after
//!   appending duplicates nothing; and an instance whose replay starts after retention removed
//!   an emission (so it decides an early one) is refused and told the real cooldown.
//! - Emissions still in the log restart their key's cooldown in every instance that reads them.
//!
//! A Redis consumer group would split the entries of one key between replicas and so split the
//! rule's state; reading the whole log per replica costs a read per entry per replica and keeps
//! every replica's state complete.

mod metrics;
mod service;

pub use metrics::CorrelatorMetrics;
pub use service::{run, Config};
