//! The HTTP server's deadlines and caps (gateway/src/server.rs, docs/protocol.md §1.1) over
//! real sockets: clients that trickle, idle, or never authenticate cannot hold connections, and
//! streams are not cut by any of it. Bounds are generous (about 10× the deadline): the test
//! only tells "closed" from "held".

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// Far longer than any deadline these tests set, far shorter than "held forever".
const BOUND: Duration = Duration::from_secs(10);
const TRICKLE: Duration = Duration::from_millis(200);

async fn node(args: &[&str]) -> Node {
    Node::start(NodeOptions {
        args: args.iter().map(|arg| arg.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await
}

/// Writes `head` at once, then `trickle` one byte every 200 ms (over and over), until the
/// server closes the connection. Returns what the server sent before closing, or `None` if it
/// held the connection past `bound`.
async fn trickle_until_closed(
    stream: TcpStream,
    head: &[u8],
    trickle: &[u8],
    bound: Duration,
) -> Option<Vec<u8>> {
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_vec();
    let trickle = trickle.to_vec();
    let writing = async move {
        // Once a write fails (closed by the server), wait for the reader to see it.
        if writer.write_all(&head).await.is_ok() {
            'trickling: loop {
                for byte in &trickle {
                    tokio::time::sleep(TRICKLE).await;
                    if writer.write_all(&[*byte]).await.is_err() {
                        break 'trickling;
                    }
                }
            }
        }
        std::future::pending::<()>().await
    };
    let reading = async move {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(bound, async {
        tokio::select! {
            () = writing => unreachable!("the writer only ends by waiting"),
            received = reading => received,
        }
    })
    .await
    .ok()
}

/// Reads until the server closes the connection (within `bound`); `None` if it held it.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    tokio::time::timeout(bound, async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()
}

/// Sends `request` and reads one response (head and a `Content-Length` body) off a raw
/// keep-alive connection; returns its status line.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed before a whole response: {received:?}");
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return text.lines().next().unwrap().to_owned();
                }
            }
        }
    })
    .await
    .expect("no response in time")
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n";

/// A request head that never ends: one header line after another, a byte at a time.
const ENDLESS_HEADERS: &[u8] = b"X-Slow: aaaaaaaa\r\n";

/// The slowloris: a head trickled a byte every 200 ms is closed at `--http-header-timeout`.
#[tokio::test]
async fn trickled_header_is_closed_at_the_header_timeout() {
    let node = node(&["--http-header-timeout", "1s"]).await;
    let stream = TcpStream::connect(node.addr).await.unwrap();
    let closed =
        trickle_until_closed(stream, b"GET /healthz HTTP/1.1\r\n", ENDLESS_HEADERS, BOUND).await;
    assert!(
        closed.is_some(),
        "a head trickled for {BOUND:?} was still being read (--http-header-timeout 1s)"
    );
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(r#"sluice_http_timeouts_total{reason="header"} 1"#),
        "{metrics}"
    );
}

/// `sluice web` runs the same server: its connections have the same deadline.
#[tokio::test]
async fn web_role_closes_a_trickled_header_too() {
    let node = Node::start(NodeOptions {
        role: Some("web"),
        args: vec!["--http-header-timeout".into(), "1s".into()],
        ..NodeOptions::default()
    })
    .await;
    let stream = TcpStream::connect(node.addr).await.unwrap();
    let closed = trickle_until_closed(stream, b"GET / HTTP/1.1\r\n", ENDLESS_HEADERS, BOUND).await;
    assert!(closed.is_some(), "sluice web held a trickled head");
}

/// While 200 trickling connections are held, `/healthz` is answered at once; and every one of
/// them is closed at the header timeout.
#[tokio::test]
async fn healthz_answers_while_trickling_connections_are_held() {
    const TRICKLERS: usize = 200;
    let node = node(&[
        "--http-header-timeout",
        "1s",
        "--max-pending-connections-per-ip",
        "1000",
    ])
    .await;
    let mut tricklers = Vec::new();
    for _ in 0..TRICKLERS {
        let stream = TcpStream::connect(node.addr).await.unwrap();
        tricklers.push(tokio::spawn(async move {
            trickle_until_closed(stream, b"GET / HTTP/1.1\r\n", ENDLESS_HEADERS, BOUND * 2).await
        }));
    }
    let answer = tokio::time::timeout(Duration::from_secs(5), reqwest::get(node.http("/healthz")))
        .await
        .expect("/healthz did not answer within 5 s while trickling connections were held")
        .unwrap();
    assert_eq!(answer.status(), 200);
    let mut held = 0;
    for trickler in tricklers {
        if trickler.await.unwrap().is_none() {
            held += 1;
        }
    }
    assert_eq!(
        held, 0,
        "{held} of {TRICKLERS} trickling connections were held"
    );
}

/// An idle keep-alive connection is closed at `--http-idle-timeout`.
#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let node = node(&["--http-idle-timeout", "1s", "--http-header-timeout", "60s"]).await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    assert_eq!(exchange(&mut stream, HEALTHZ).await, "HTTP/1.1 200 OK");
    let rest = read_until_closed(&mut stream, BOUND).await;
    assert_eq!(
        rest.as_deref(),
        Some(&b""[..]),
        "an idle keep-alive connection was held past {BOUND:?} (--http-idle-timeout 1s)"
    );
}

/// The header timeout runs from a next request's first byte, not from the last response: a
/// keep-alive connection idle for longer than it is still served.
#[tokio::test]
async fn keep_alive_connection_outlives_the_header_timeout_while_idle() {
    let node = node(&["--http-header-timeout", "1s", "--http-idle-timeout", "60s"]).await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    assert_eq!(exchange(&mut stream, HEALTHZ).await, "HTTP/1.1 200 OK");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(exchange(&mut stream, HEALTHZ).await, "HTTP/1.1 200 OK");
}

/// The `sluice_pending_connections` gauge, read over `client` (whose own connection has
/// authenticated, so it is not counted).
async fn pending(node: &Node, client: &reqwest::Client) -> u64 {
    let metrics = client
        .get(node.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("sluice_pending_connections "))
        .expect("no sluice_pending_connections")
        .trim()
        .parse()
        .unwrap()
}

async fn wait_pending(node: &Node, client: &reqwest::Client, expected: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = pending(node, client).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} pending connections, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `--max-pending-connections-per-ip 4`, a fifth connection from 127.0.0.1 that has not
/// authenticated is closed at accept, while an authenticated stream and an authenticated
/// keep-alive connection go on working; a pending connection that goes frees its place.
#[tokio::test]
async fn per_ip_pending_cap_refuses_the_next_connection() {
    const CAP: usize = 4;
    let node = node(&[
        "--max-pending-connections-per-ip",
        &CAP.to_string(),
        "--http-header-timeout",
        "60s",
    ])
    .await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut socket).await["type"], "hello");
    // One keep-alive connection that authenticated (reqwest reuses it for what follows).
    let client = reqwest::Client::new();
    let published = client
        .post(node.http("/v1/indicators"))
        .bearer_auth(&node.admin_token)
        .json(&indicator(1))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    assert_eq!(ws_indicators(&mut socket, 1).await[0].1, ip(1));
    wait_pending(&node, &client, 0).await;

    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(TcpStream::connect(node.addr).await.unwrap());
    }
    wait_pending(&node, &client, CAP as u64).await;
    let mut refused = TcpStream::connect(node.addr).await.unwrap();
    assert!(
        read_until_closed(&mut refused, BOUND).await.is_some(),
        "connection {} from one address was not refused (cap {CAP})",
        CAP + 1
    );
    let metrics = client
        .get(node.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"sluice_connections_refused_total{reason="pending_per_ip"} 1"#),
        "{metrics}"
    );

    // The authenticated connections still work: publish over the kept one, see it streamed.
    let published = client
        .post(node.http("/v1/indicators"))
        .bearer_auth(&node.admin_token)
        .json(&indicator(2))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    assert_eq!(ws_indicators(&mut socket, 1).await[0].1, ip(2));

    // A pending connection that closes frees its place.
    drop(held.pop());
    wait_pending(&node, &client, CAP as u64 - 1).await;
    let mut admitted = TcpStream::connect(node.addr).await.unwrap();
    assert_eq!(exchange(&mut admitted, HEALTHZ).await, "HTTP/1.1 200 OK");
}

/// A body trickled slower than `--http-body-timeout` is answered 408 and its connection closed.
#[tokio::test]
async fn slow_body_is_cut_at_the_body_timeout() {
    let node = node(&["--http-body-timeout", "1s"]).await;
    let stream = TcpStream::connect(node.addr).await.unwrap();
    let head = format!(
        "POST /v1/indicators HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        node.admin_token
    );
    let received = trickle_until_closed(stream, head.as_bytes(), b"[ ", BOUND)
        .await
        .expect("a body trickled for 10 s was still being read (--http-body-timeout 1s)");
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
}

/// `POST /v1/indicators` checks the token before reading the body: a request announcing a
/// large body and sending none is refused at once.
#[tokio::test]
async fn unauthenticated_publish_is_refused_before_its_body() {
    let node = node(&[]).await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/indicators HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n\
              Content-Length: 1000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&received).contains("\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed without an answer");
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("no answer within 5 s: the server waited for the body");
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 401"), "{received}");
}

/// Streams are not requests waiting for a head: a WebSocket and an SSE stream, quiet for longer
/// than the header, idle and write timeouts, stay open and deliver.
#[tokio::test]
async fn streams_outlive_the_header_idle_and_write_timeouts() {
    let node = node(&[
        "--http-header-timeout",
        "1s",
        "--http-idle-timeout",
        "1s",
        "--http-write-timeout",
        "1s",
    ])
    .await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut socket).await["type"], "hello");
    let mut sse = Sse::connect(&node.http("/v1/stream"), &node.admin_token, None)
        .await
        .unwrap();
    assert_eq!(sse.next().await.expect("no hello").event, "hello");
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.publish_all(&[indicator(7)]).await;
    assert_eq!(ws_indicators(&mut socket, 1).await[0].1, ip(7));
    assert_eq!(sse.indicators(1).await[0].1, ip(7));
}
