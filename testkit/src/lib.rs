//! Test fixtures for Sluice's test suites: a fresh PostgreSQL database and a private
//! `redis-server` per test, so tests never collide and never touch a service someone else runs.
//!
//! Neither fixture skips when its server is missing: it fails and says to run `scripts/test`,
//! which installs and starts what the tests need. Tests never skip: a test that quietly passes
//! because its server is absent would hide exactly the failures it exists to catch.

mod backends;
mod postgres;
mod redis;

pub use postgres::PgDatabase;
pub use redis::RedisServer;
