//! The correlation service (SPEC §7). Not built yet: see issue 4. This crate is intentionally empty.
