//! End-to-end tests of the `sluice` binary: real processes, real sockets, a private Redis.

mod harness;

mod browser;
mod cluster;
mod compat;
mod correlation;
mod database;
mod delivery;
mod input;
mod lifecycle;
mod openapi;
mod plans;
mod recent;
mod sessions;
mod slowloris;
mod stream_cli;
mod webdriver;

use harness::{Node, NodeOptions};
use testkit::RedisServer;

/// The two log backends; delivery tests run the same body against both.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Redis,
}

/// A node on `backend`, with its private Redis when it needs one.
pub async fn start(backend: Backend, args: &[&str]) -> (Node, Option<RedisServer>) {
    let redis = match backend {
        Backend::Memory => None,
        Backend::Redis => Some(RedisServer::start().expect("cannot start redis-server")),
    };
    let node = Node::start(NodeOptions {
        redis: redis.as_ref().map(|r| r.url()),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await;
    (node, redis)
}
