//! Test fixtures for Sluice's test suites: a fresh PostgreSQL database and a private
//! `redis-server` per test, so tests never collide and never touch a service someone else runs;
//! a private PostgreSQL cluster for the tests that stop and restart it, and a fault proxy that
//! breaks the link to a server on purpose.
//!
//! Neither fixture skips when its server is missing: it fails and says to run `scripts/test`,
//! which installs and starts what the tests need. Tests never skip: a test that quietly passes
//! because its server is absent would hide exactly the failures it exists to catch.

mod backends;
mod fault_proxy;
mod pg_cluster;
mod postgres;
mod redis;

pub use fault_proxy::{Fault, FaultProxy};
pub use pg_cluster::PgCluster;
pub use postgres::PgDatabase;
pub use redis::RedisServer;
