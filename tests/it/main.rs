//! End-to-end tests of the `sluice` binary: real processes, real sockets, a private Redis.

mod harness;

mod browser;
mod cluster;
mod compat;
mod connections;
mod correlation;
mod database;
mod delivery;
mod deploy;
mod expiry;
mod fault_round;
mod faults;
mod input;
mod lifecycle;
mod lists;
mod openapi;
mod persistence;
mod plans;
mod predict_data;
mod readme;
mod receiver;
mod recent;
mod sessions;
mod since;
mod slowloris;
mod stix;
mod stream_cli;
mod taxii;
mod usage_export;
mod webdriver;
mod webhooks;
mod withdrawal;

use harness::{Node, NodeOptions};
use testkit::RedisServer;

/// The log backends; delivery tests run the same body against each. `Sqlite` is `sluice up`'s
/// default, what most tests run on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Memory,
    Redis,
}

/// A node on `backend`, with its private Redis when it needs one.
pub async fn start(backend: Backend, args: &[&str]) -> (Node, Option<RedisServer>) {
    let redis = match backend {
        Backend::Sqlite | Backend::Memory => None,
        Backend::Redis => Some(RedisServer::start().expect("cannot start redis-server")),
    };
    let log_flag: &[&str] = match backend {
        Backend::Memory => &["--log", "memory"],
        Backend::Sqlite | Backend::Redis => &[],
    };
    let node = Node::start(NodeOptions {
        redis: redis.as_ref().map(|r| r.url()),
        args: log_flag.iter().chain(args).map(|a| a.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await;
    (node, redis)
}
