//! Pure types and rules of Sluice: indicators, itypes, normalisation, filters, cursors, plans,
//! the stream's wire protocol, the correlation rule, and when an indicator expires.
//!
//! This crate does no IO (no tokio, axum, sqlx or redis), so nothing here can fail on IO.
//! Every validating constructor returns a typed error that names the field and the reason.

pub mod correlation;
pub mod cursor;
pub mod export;
pub mod feed;
pub mod filter;
pub mod indicator;
pub mod itype;
pub mod plan;
pub mod protocol;
pub mod tlp;
pub mod validity;
pub mod webhook;
pub mod whitelist;

pub use cursor::{Cursor, CursorError, LogPosition, StreamId};
pub use filter::{Filter, FilterError};
pub use indicator::{Indicator, Provenance, Rejection};
pub use itype::Itype;
pub use plan::{Limits, Plan};
pub use protocol::{CloseCode, ErrorBody, Frame};
pub use tlp::Tlp;
pub use validity::Validity;
