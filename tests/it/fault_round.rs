//! One round of Redis link faults under traffic, shared by the default suite (`faults.rs`: one
//! short fault per test) and the slow suite (faults held past every timeout of the node): clients
//! streaming across the faults the way `sluice stream` does, a steady publisher, `/readyz`
//! watched, and the check that nothing went silently missing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Cursor, Frame};
use futures::StreamExt;
use serde_json::{json, Value};
use testkit::{Fault, FaultProxy, RedisServer};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// A private Redis, a fault proxy in front of it, and a node (without its correlator) on the
/// proxy. Keep all three for the test's length.
pub async fn node_behind_a_fault_proxy() -> (RedisServer, FaultProxy, Node) {
    let redis = RedisServer::start().unwrap();
    let proxy = FaultProxy::redis(&redis).unwrap();
    let node = Node::start(NodeOptions {
        redis: Some(proxy.redis_url()),
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    (redis, proxy, node)
}

/// The shape of a round.
#[derive(Debug, Clone)]
pub struct Round {
    /// Clients streaming across the faults (native WebSocket, the admin's enterprise plan).
    pub clients: usize,
    /// One indicator published every this long.
    pub publish_every: Duration,
    /// Traffic flows this long before the first fault and after each.
    pub traffic: Duration,
    /// Each fault is held this long after `/readyz` first says degraded.
    pub hold: Duration,
}

/// What one fault of a round did, for the figures.
#[derive(Debug)]
pub struct FaultFigures {
    pub fault: Fault,
    /// From the fault to the first 503 of `/readyz`.
    pub degraded_after: Duration,
    /// From the link healing to the first 200 of `/readyz`.
    pub ready_after: Duration,
}

/// What a round did, for the figures.
#[derive(Debug)]
pub struct RoundFigures {
    pub faults: Vec<FaultFigures>,
    /// Indicators acknowledged with a 202.
    pub acknowledged: usize,
    /// Publishes answered otherwise (503 while the log does not answer) or failed.
    pub refused: usize,
    /// Per client: indicators received, `reset`s, reconnects, and indicators received that the
    /// publisher was not told were stored (an append answered 503 whose command reached Redis
    /// anyway).
    pub clients: Vec<(usize, usize, usize, usize)>,
}

impl std::fmt::Display for RoundFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for fault in &self.faults {
            write!(
                f,
                "{:?}: /readyz 503 after {:.1?}, 200 again {:.1?} after the link healed; ",
                fault.fault, fault.degraded_after, fault.ready_after
            )?;
        }
        let received: usize = self.clients.iter().map(|c| c.0).sum();
        let resets: usize = self.clients.iter().map(|c| c.1).sum();
        let reconnects: usize = self.clients.iter().map(|c| c.2).sum();
        let unacknowledged: usize = self.clients.iter().map(|c| c.3).sum();
        write!(
            f,
            "{} acknowledged, {} refused; {} clients received {received} in all \
             ({unacknowledged} not acknowledged to the publisher), {resets} reset(s), \
             {reconnects} reconnect(s)",
            self.acknowledged,
            self.refused,
            self.clients.len()
        )
    }
}

/// Waits until `/readyz` answers `status`; how long that took.
pub async fn wait_ready(node: &Node, status: u16, what: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + WAIT;
    while node.readyz().await != status {
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status} {what}:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// What one client received.
#[derive(Default)]
struct Received {
    /// `hello` frames: one per connection.
    hellos: usize,
    /// Indicator cursors, in the order they arrived.
    cursors: Vec<String>,
    /// When each `reset` frame arrived.
    resets: Vec<Instant>,
    /// How often the stream ended and the client connected again from its last cursor.
    reconnects: usize,
}

/// A native WebSocket client that follows the stream as `sluice stream` does: whenever the
/// stream ends it connects again from the last cursor it received.
async fn follow(url: String, token: String, stop: CancellationToken, got: Arc<Mutex<Received>>) {
    let mut last: Option<String> = None;
    loop {
        let url = match &last {
            Some(cursor) => format!("{url}?cursor={cursor}"),
            None => url.clone(),
        };
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            connected = ws_connect(&url, Some(&token)) => connected,
        };
        let Ok(mut socket) = connected else {
            // Refused while the node is degraded: try again.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                message = socket.next() => message,
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            };
            let frame: Frame = serde_json::from_str(&text).unwrap();
            let mut got = got.lock().unwrap();
            match frame {
                Frame::Hello { .. } => got.hellos += 1,
                Frame::Indicator { id, .. } => {
                    let id = id.to_string();
                    got.cursors.push(id.clone());
                    last = Some(id);
                }
                Frame::Reset { cursor, .. } => {
                    last = Some(cursor.to_string());
                    got.resets.push(Instant::now());
                }
                Frame::Dropped { .. } => panic!("an enterprise stream dropped: {text}"),
                _ => {}
            }
        }
        got.lock().unwrap().reconnects += 1;
    }
}

/// What the publisher had acknowledged.
#[derive(Default)]
struct Published {
    /// (cursor, when the 202 arrived).
    acked: Vec<(String, Instant)>,
    refused: usize,
}

/// Publishes one indicator every `every` until `stop`, over HTTP as a provider does.
async fn publish_steadily(
    url: String,
    token: String,
    every: Duration,
    stop: CancellationToken,
    published: Arc<Mutex<Published>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut n = 0;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_cancelled() {
        ticker.tick().await;
        n += 1;
        let answer = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"indicator": ip(n), "tags": ["scanner"]}))
            .send()
            .await;
        let acked = match answer {
            Ok(response) if response.status() == 202 => {
                let at = Instant::now();
                let answer: Value = response.json().await.unwrap();
                Some((answer["ids"][0].as_str().unwrap().to_owned(), at))
            }
            _ => None,
        };
        let mut published = published.lock().unwrap();
        match acked {
            Some(acked) => published.acked.push(acked),
            None => published.refused += 1,
        }
    }
}

/// Every acknowledged indicator reached the client, in log order, exactly once — except those
/// acknowledged before a `reset` the client was given (the node said that history is gone).
fn check_no_silent_gap(name: &str, got: &Received, acked: &[(String, Instant)]) {
    let cursors: Vec<Cursor> = got.cursors.iter().map(|c| c.parse().unwrap()).collect();
    for pair in cursors.windows(2) {
        if pair[0].epoch() == pair[1].epoch() {
            assert!(
                pair[0].id() < pair[1].id(),
                "{name}: {} arrived after {}",
                pair[1],
                pair[0]
            );
        }
    }
    let received: HashSet<&str> = got.cursors.iter().map(String::as_str).collect();
    let last_reset = got.resets.last().copied();
    let missing: Vec<&str> = acked
        .iter()
        .filter(|(_, at)| last_reset.is_none_or(|reset| *at > reset))
        .map(|(id, _)| id.as_str())
        .filter(|id| !received.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: {} acknowledged indicator(s) never arrived and no reset covers them: {missing:?}",
        missing.len()
    );
}

/// Waits until `condition` holds for what `got` received.
async fn wait_for(got: &Mutex<Received>, what: &str, condition: impl Fn(&Received) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition(&got.lock().unwrap()) {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `faults` one after the other on the link between `node` and its Redis (`proxy`), with
/// clients streaming and a provider publishing throughout: each fault must turn `/readyz`
/// degraded and, once lifted, ready again; at the end every client must have received every
/// acknowledged indicator, or have been told `reset`.
pub async fn link_faults(
    node: &Node,
    proxy: &FaultProxy,
    faults: &[Fault],
    round: &Round,
) -> RoundFigures {
    let stop_clients = CancellationToken::new();
    let mut clients = Vec::new();
    for _ in 0..round.clients {
        let got = Arc::new(Mutex::new(Received::default()));
        let task = tokio::spawn(follow(
            node.ws("/v1/stream"),
            node.admin_token.clone(),
            stop_clients.clone(),
            got.clone(),
        ));
        clients.push((task, got));
    }
    for (n, (_, got)) in clients.iter().enumerate() {
        wait_for(got, &format!("client {n} never connected"), |got| {
            got.hellos > 0
        })
        .await;
    }
    let published = Arc::new(Mutex::new(Published::default()));
    let stop_publishing = CancellationToken::new();
    let publisher = tokio::spawn(publish_steadily(
        node.http("/v1/indicators"),
        node.admin_token.clone(),
        round.publish_every,
        stop_publishing.clone(),
        published.clone(),
    ));
    tokio::time::sleep(round.traffic).await;
    let mut figures = Vec::new();
    for &fault in faults {
        proxy.set(fault);
        let degraded_after = wait_ready(node, 503, &format!("during {fault:?}")).await;
        tokio::time::sleep(round.hold).await;
        proxy.set(Fault::Pass);
        let ready_after = wait_ready(node, 200, &format!("after {fault:?}")).await;
        figures.push(FaultFigures {
            fault,
            degraded_after,
            ready_after,
        });
        tokio::time::sleep(round.traffic).await;
    }
    stop_publishing.cancel();
    publisher.await.unwrap();

    // A last indicator once the link is back: when a client has it, whatever was published
    // before it has had every chance to arrive.
    let last = node.publish_all(&[indicator(1_000_000)]).await;
    for (n, (_, got)) in clients.iter().enumerate() {
        let what = format!(
            "client {n} never received the last indicator:\n{}",
            node.logs()
        );
        wait_for(got, &what, |got| got.cursors.contains(&last[0])).await;
    }
    stop_clients.cancel();
    let published = std::mem::take(&mut *published.lock().unwrap());
    let mut acked = published.acked;
    acked.push((last[0].clone(), Instant::now()));
    let mut per_client = Vec::new();
    for (n, (task, got)) in clients.into_iter().enumerate() {
        task.await.unwrap();
        let got = got.lock().unwrap();
        check_no_silent_gap(&format!("client {n} across {faults:?}"), &got, &acked);
        let acknowledged: HashSet<&str> = acked.iter().map(|(id, _)| id.as_str()).collect();
        let unacknowledged = got
            .cursors
            .iter()
            .filter(|id| !acknowledged.contains(id.as_str()))
            .count();
        per_client.push((
            got.cursors.len(),
            got.resets.len(),
            got.reconnects,
            unacknowledged,
        ));
    }
    RoundFigures {
        faults: figures,
        acknowledged: acked.len(),
        refused: published.refused,
        clients: per_client,
    }
}
