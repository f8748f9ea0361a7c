//! The browser page and its HTTP API (SPEC §6). Not built yet: see issue 6. This crate is intentionally empty.
