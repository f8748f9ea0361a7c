//! Load held for tens of seconds: readers that stall while others stream, connection churn, and
//! slowloris clients. Sizes default to what a 2-core machine holds comfortably; raise them with
//! `SLUICE_SLOW_STALLED`, `SLUICE_SLOW_CHURN_SECONDS` and the like.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::harness::*;
use crate::measure::*;

/// Open stream connections by the node's own count (`sluice_connections`).
async fn open_connections(node: &Node) -> u64 {
    node.metrics()
        .await
        .lines()
        .filter(|line| line.starts_with("sluice_connections{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Publishes `rate` indicators a second for `duration` over HTTP, each carrying its send time
/// in `description`; returns how many were accepted.
async fn publish_paced(node: &Node, rate: usize, duration: Duration, first: usize) -> usize {
    let client = reqwest::Client::new();
    let ticks_per_second = 20;
    let per_tick = (rate / ticks_per_second).max(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / ticks_per_second as u64));
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < deadline {
        ticker.tick().await;
        let sent_us = now_us();
        let batch: Vec<Value> = (0..per_tick)
            .map(|i| {
                json!({"indicator": ip(first + sent + i), "tags": "scanner",
                       "description": format!("sent_us={sent_us}")})
            })
            .collect();
        let response = client
            .post(node.http("/v1/indicators"))
            .bearer_auth(&node.admin_token)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        sent += per_tick;
    }
    sent
}

/// A reader that keeps up: records each indicator's latency from its `sent_us` until `stop`.
async fn healthy_reader(
    mut socket: Ws,
    stop: CancellationToken,
    received: Arc<AtomicU64>,
    started: std::time::Instant,
) -> (hdrhistogram::Histogram<u64>, Vec<u64>) {
    let mut latencies = histogram();
    // The worst latency of each second of the round, to see when it happens.
    let mut worst = Vec::new();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            message = socket.next() => message,
        };
        let Some(Ok(Message::Text(text))) = message else {
            if matches!(message, Some(Ok(_))) {
                continue;
            }
            break;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] != "indicator" {
            continue;
        }
        let description = frame["data"]["description"].as_str().unwrap_or("");
        if let Some(sent) = description
            .strip_prefix("sent_us=")
            .and_then(|us| us.parse::<u64>().ok())
        {
            let latency = now_us().saturating_sub(sent).max(1);
            let _ = latencies.record(latency);
            let second = started.elapsed().as_secs() as usize;
            if worst.len() <= second {
                worst.resize(second + 1, 0);
            }
            worst[second] = worst[second].max(latency);
            received.fetch_add(1, Ordering::Relaxed);
        }
    }
    (latencies, worst)
}

/// Streams `rate`/s to `healthy` readers for `duration`; returns their latencies and whether
/// every reader received every indicator.
async fn stream_round(
    node: &Node,
    healthy: usize,
    rate: usize,
    duration: Duration,
    first: usize,
) -> (hdrhistogram::Histogram<u64>, usize, u64) {
    let stop = CancellationToken::new();
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..healthy {
        let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
            .await
            .unwrap();
        ws_frame(&mut socket).await;
        readers.push(tokio::spawn(healthy_reader(
            socket,
            stop.clone(),
            received.clone(),
            started,
        )));
    }
    let published = publish_paced(node, rate, duration, first).await;
    let expected = (published * healthy) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut latencies = histogram();
    let mut worst: Vec<u64> = Vec::new();
    for reader in readers {
        let (reader_latencies, reader_worst) = reader.await.unwrap();
        latencies.add(reader_latencies).unwrap();
        if worst.len() < reader_worst.len() {
            worst.resize(reader_worst.len(), 0);
        }
        for (total, latency) in worst.iter_mut().zip(reader_worst) {
            *total = (*total).max(latency);
        }
    }
    let worst_ms: Vec<u64> = worst.iter().map(|us| us / 1000).collect();
    println!("worst latency per second of the round (ms): {worst_ms:?}");
    (latencies, published, received.load(Ordering::Relaxed))
}

/// A WebSocket whose receive buffer is small, as a reader across the internet that stops reading
/// has a closed window soon: on loopback the kernel would otherwise buffer megabytes for it, and
/// the "stalled" reader would cost what a healthy one does until that filled.
async fn stalled_connect(addr: std::net::SocketAddr, url: &str, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    socket
}

/// Thousands of readers that stop reading while a few keep up: the stalled cost the healthy
/// little (p99 within 2× of a round without them, measured in this run), every healthy reader
/// gets everything, and each stalled one is closed by its own budget (4009, or the TCP close
/// when its socket cannot take a frame), so the node's memory and connections come back.
#[tokio::test]
async fn stalled_readers_cost_the_healthy_little() {
    let stalled = size("STALLED", 2_000);
    let healthy = size("HEALTHY", 50);
    let rate = size("RATE", 1_000);
    let seconds = size("SECONDS", 15) as u64;
    let node = Node::start(NodeOptions {
        args: vec![
            "--no-correlator".into(),
            "--slow-consumer-timeout".into(),
            "5s".into(),
        ],
        ..NodeOptions::default()
    })
    .await;
    let pid = node.pid();
    let duration = Duration::from_secs(seconds);

    let (alone, published, received) = stream_round(&node, healthy, rate, duration, 0).await;
    println!("healthy alone: {} ({published} published)", summary(&alone));
    assert_eq!(
        received,
        (published * healthy) as u64,
        "a healthy reader missed indicators"
    );
    let rss_before = rss_kib(pid);

    // The stalled: each reads its `hello`, then never reads again. Enterprise accounts hold
    // 100 connections each, so they are spread over enough of them.
    let mut tokens = Vec::new();
    for n in 0..stalled.div_ceil(100) {
        let account = format!("stalled-{n}");
        node.create_account(&account, "enterprise").await;
        tokens.push(node.create_token(&account, "read").await);
    }
    let permits = Arc::new(Semaphore::new(32));
    let mut opening = Vec::new();
    for n in 0..stalled {
        let (url, token, permits) = (
            node.ws("/v1/stream"),
            tokens[n / 100].clone(),
            permits.clone(),
        );
        let addr = node.addr;
        opening.push(tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let mut socket = stalled_connect(addr, &url, &token).await;
            ws_frame(&mut socket).await;
            socket
        }));
    }
    let mut stalled_sockets = Vec::new();
    for socket in opening {
        stalled_sockets.push(socket.await.unwrap());
    }
    let rss_stalled_open = rss_kib(pid);
    let (crowded, published_2, received_2) =
        stream_round(&node, healthy, rate, duration, published).await;
    let rss_peak = rss_kib(pid);
    println!(
        "healthy beside {stalled} stalled: {} ({published_2} published)",
        summary(&crowded)
    );
    assert_eq!(
        received_2,
        (published_2 * healthy) as u64,
        "a healthy reader missed indicators beside the stalled"
    );

    // The stalled are closed by their own budget; the node lets go of them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while open_connections(&node).await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let left = open_connections(&node).await;
    let mut told_4009 = 0;
    for mut socket in stalled_sockets {
        // Drain what was buffered; a 4009 close frame ends it where the socket took one.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Close(Some(frame)) = message {
                    return u16::from(frame.code) == 4009;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        told_4009 += usize::from(closed);
    }
    let rss_after = rss_kib(pid);
    println!(
        "rss_kib: before={rss_before} stalled_open={rss_stalled_open} peak={rss_peak} \
         after_close={rss_after}; stalled closed with 4009: {told_4009}/{stalled}; still open: {left}"
    );
    assert_eq!(left, 0, "stalled connections were never closed");
    let p99 = |histogram: &hdrhistogram::Histogram<u64>| histogram.value_at_quantile(0.99);
    // Within 2× of the round without them; below a millisecond either way is noise.
    assert!(
        p99(&crowded) <= (2 * p99(&alone)).max(1_000),
        "stalled readers slowed the healthy: {} vs {}",
        summary(&crowded),
        summary(&alone)
    );
}

/// Connections opened and dropped at a steady pace (some closed properly, some abruptly):
/// afterwards the node holds no connection, no extra descriptor, and its connection slots are
/// free again (the account can open its plan's maximum).
#[tokio::test]
async fn churn_leaves_nothing_behind() {
    let per_second = size("CHURN_PER_SECOND", 100);
    let seconds = size("CHURN_SECONDS", 60);
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    node.create_account("churner", "hobby").await;
    let token = node.create_token("churner", "read").await;
    let pid = node.pid();
    let fds_before = open_fds(pid);
    let rss_before = rss_kib(pid);
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / per_second as u64));
    let mut tasks = Vec::new();
    for n in 0..per_second * seconds {
        ticker.tick().await;
        let (ws, sse, token) = (
            node.ws("/v1/stream"),
            node.http("/v1/stream"),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            match n % 3 {
                // A WebSocket closed properly.
                0 => {
                    if let Ok(mut socket) = ws_connect(&ws, Some(&token)).await {
                        ws_frame(&mut socket).await;
                        ws_send_close(&mut socket).await;
                    }
                }
                // A WebSocket dropped without a close frame.
                1 => {
                    if let Ok(mut socket) = ws_connect(&ws, Some(&token)).await {
                        ws_frame(&mut socket).await;
                    }
                }
                // An SSE stream abandoned after its first bytes.
                _ => {
                    if let Ok(response) = reqwest::Client::new()
                        .get(&sse)
                        .bearer_auth(&token)
                        .send()
                        .await
                    {
                        let _ = response.bytes_stream().next().await;
                    }
                }
            }
        }));
        if tasks.len() > 256 {
            for task in tasks.drain(..128) {
                task.await.unwrap();
            }
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (open_connections(&node).await > 0 || open_fds(pid) > fds_before + 2)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (fds_after, rss_after) = (open_fds(pid), rss_kib(pid));
    println!(
        "churn: {} connections in {seconds}s; fds {fds_before} -> {fds_after}; rss_kib \
         {rss_before} -> {rss_after}",
        per_second * seconds
    );
    assert_eq!(open_connections(&node).await, 0, "connections left open");
    assert!(
        fds_after <= fds_before + 2,
        "descriptors leaked: {fds_before} -> {fds_after}"
    );
    // The hobby plan's two slots are free again.
    let mut first = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    let mut second = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut first).await;
    ws_frame(&mut second).await;
}

/// Thousands of clients trickling a request head a byte at a time: each is closed by the
/// header deadline, and a normal client is served throughout.
#[tokio::test]
async fn slowloris_is_cut_off_and_others_are_served() {
    let clients = size("SLOWLORIS", 3_000);
    let node = Node::start(NodeOptions {
        args: vec![
            "--no-correlator".into(),
            "--http-header-timeout".into(),
            "5s".into(),
            // One address sends them all: allow it that many pending connections.
            "--max-pending-connections-per-ip".into(),
            (clients + 100).to_string(),
            "--max-pending-connections".into(),
            (clients + 100).to_string(),
        ],
        ..NodeOptions::default()
    })
    .await;
    let stop = CancellationToken::new();
    let closed = Arc::new(AtomicU64::new(0));
    let mut trickling = Vec::new();
    for _ in 0..clients {
        let (addr, stop, closed) = (node.addr, stop.clone(), closed.clone());
        trickling.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                closed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                if stream.write_all(b"X").await.is_err() {
                    closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }));
    }
    // A normal client, every 200 ms while they trickle: answered every time.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut served = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let response = client.get(node.http("/healthz")).send().await;
        assert!(
            response.is_ok_and(|response| response.status().is_success()),
            "a normal client was not served while {clients} trickled"
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cut = closed.load(Ordering::Relaxed);
    stop.cancel();
    for task in trickling {
        task.await.unwrap();
    }
    println!(
        "slowloris: {cut}/{clients} trickling connections cut off; {served} normal requests served"
    );
    assert_eq!(
        cut as usize, clients,
        "some trickling connections were never closed"
    );
}
