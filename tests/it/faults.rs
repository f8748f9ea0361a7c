//! Link faults between a node and its Redis, through `testkit::FaultProxy` (a blackhole, added
//! latency, every connection cut), and a PostgreSQL account database restarted under traffic.
//! Redis and PostgreSQL keep their data; the node must say it is degraded while the fault
//! lasts, recover by itself after, and lose nothing silently: every indicator acknowledged
//! with a 202 reaches every client streaming across the fault, or the client is told `reset`.
//! Each fault here is short (a second past the first degraded `/readyz`); the slow suite holds
//! them past every timeout of the node.

use std::time::Duration;

use domain::CloseCode;
use testkit::{Fault, PgCluster};
use tokio::time::Instant;

use crate::fault_round::{link_faults, node_behind_a_fault_proxy, wait_ready, Round};
use crate::harness::*;

/// Added latency in each direction: a round trip (3 s) is longer than the readiness check
/// allows (2 s), shorter than a command may take (5 s).
const LATENCY: Duration = Duration::from_millis(1500);

/// A node on Redis through a fault proxy, `fault` once with three clients streaming.
async fn survives(fault: Fault) {
    let (_redis, proxy, node) = node_behind_a_fault_proxy().await;
    let round = Round {
        clients: 3,
        publish_every: Duration::from_millis(50),
        traffic: Duration::from_secs(1),
        hold: Duration::from_secs(1),
    };
    let figures = link_faults(&node, &proxy, &[fault], &round).await;
    println!("{figures}");
}

/// Redis stops answering (the link drops every packet): degraded, then back, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_blackhole_is_degraded_then_recovered_without_loss() {
    survives(Fault::Blackhole).await;
}

/// Redis answers, but late: degraded while a round trip outlasts the readiness check, nothing
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_latency_is_degraded_then_recovered_without_loss() {
    survives(Fault::Latency(LATENCY)).await;
}

/// Every connection to Redis cut, and new ones refused for a while: degraded, then back,
/// nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_reset_is_degraded_then_recovered_without_loss() {
    survives(Fault::Reset).await;
}

/// Runs the CLI against the node's PostgreSQL; its stdout and stderr.
async fn cli_on(node: &Node, database: &str, args: &[&str]) -> (String, String) {
    let mut all = args.to_vec();
    all.extend(["--database", database]);
    let output = node.cli(&all).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}: {stderr}");
    (String::from_utf8(output.stdout).unwrap(), stderr)
}

/// A token for `account` on the node's PostgreSQL: (its id, the token).
async fn token_on(node: &Node, database: &str, account: &str) -> (String, String) {
    let (stdout, stderr) = cli_on(
        node,
        database,
        &["tokens", "create", "--account", account, "--scope", "read"],
    )
    .await;
    let id = stderr
        .split_whitespace()
        .find(|word| word.starts_with("tok_"))
        .expect("the CLI names the token's id")
        .to_owned();
    (id, stdout.trim().to_owned())
}

/// The account database (PostgreSQL) stopped and started again while clients stream and a
/// provider publishes: open streams go on receiving everything published, a handshake that
/// needs the database is refused with 503 while it is down and accepted once it is back, and
/// a revocation made afterwards still closes the stream it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_leaves_open_streams_and_recovers_handshakes() {
    let mut postgres = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .unwrap()
        .expect("cannot start a private PostgreSQL");
    let database = postgres.url();
    let node = Node::start(NodeOptions {
        database: Some(database.clone()),
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    cli_on(
        &node,
        &database,
        &["accounts", "create", "steady", "--plan", "pro"],
    )
    .await;
    let (open_id, open_token) = token_on(&node, &database, "steady").await;
    let (_, new_token) = token_on(&node, &database, "steady").await;
    let mut open = ws_connect(&node.ws("/v1/stream"), Some(&open_token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut open).await["type"], "hello");
    // The publisher's token is checked now, while the database answers (then cached).
    let before = node.publish_all(&[indicator(1), indicator(2)]).await;
    let got: Vec<String> = ws_indicators(&mut open, 2)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, before);

    let mut postgres = tokio::task::spawn_blocking(move || {
        postgres.stop().unwrap();
        postgres
    })
    .await
    .unwrap();
    // A token the node has not seen needs the database: refused with 503, not 401. Asked
    // while the rest goes on, since the refusal waits for the pool's acquire timeout.
    let refusal = tokio::spawn({
        let url = node.ws("/v1/stream");
        let token = new_token.clone();
        async move {
            let asked = Instant::now();
            let refused = ws_connect(&url, Some(&token)).await.err();
            (refused, asked.elapsed())
        }
    });
    let degraded_after = wait_ready(&node, 503, "with PostgreSQL down").await;
    // The open stream does not need it: what is published now reaches it.
    let during = node
        .publish_all(&(3..13).map(indicator).collect::<Vec<_>>())
        .await;
    let got: Vec<String> = ws_indicators(&mut open, 10)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, during);
    let (refused, refused_after) = refusal.await.unwrap();
    assert_eq!(refused, Some(503));

    let postgres = tokio::task::spawn_blocking(move || {
        postgres.restart().unwrap();
        postgres
    })
    .await
    .unwrap();
    let ready_after = wait_ready(&node, 200, "after PostgreSQL came back").await;
    let back = Instant::now();
    let deadline = back + WAIT;
    let mut new = loop {
        match ws_connect(&node.ws("/v1/stream"), Some(&new_token)).await {
            Ok(socket) => break socket,
            Err(status) => {
                assert_eq!(status, 503, "a valid token is refused after the restart");
                assert!(Instant::now() < deadline, "handshakes never recovered");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let handshake_after = back.elapsed();
    assert_eq!(ws_frame(&mut new).await["type"], "hello");
    // The change log is read again: a revocation reaches the stream opened before the restart.
    cli_on(&node, &database, &["tokens", "revoke", &open_id]).await;
    let revoked = Instant::now();
    let (code, reason) = ws_close_code(&mut open).await;
    assert_eq!(code, CloseCode::TokenRevoked.code(), "{reason}");
    println!(
        "PostgreSQL stopped: /readyz 503 after {degraded_after:.1?}, a new token's handshake \
         503 after {refused_after:.1?}, the open stream got {} of {} published meanwhile; \
         restarted: /readyz 200 after {ready_after:.1?}, the new token's handshake accepted \
         {handshake_after:.1?} after that; the old token's stream closed 4001 {:.1?} after \
         its revocation",
        got.len(),
        during.len(),
        revoked.elapsed()
    );
    // The other token's stream is untouched.
    let after = node.publish_all(&[indicator(20)]).await;
    assert_eq!(ws_indicators(&mut new, 1).await[0].0, after[0]);
    drop(node);
    tokio::task::spawn_blocking(move || drop(postgres))
        .await
        .unwrap();
}
