//! Test harness: runs the real `sluice` binary on a free port and talks to it over real sockets.
//!
//! Each `Node` owns its data directory and process; dropping it kills the process. Redis comes
//! from `testkit::RedisServer` (a private server per test), PostgreSQL from `testkit::PgDatabase`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn sluice_binary() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

/// A free TCP port on 127.0.0.1 (bound then released; the race with another process is
/// accepted in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to start a node.
#[derive(Clone, Default)]
pub struct NodeOptions {
    /// `up` (default) or `gateway`.
    pub role: Option<&'static str>,
    pub redis: Option<String>,
    pub database: Option<String>,
    /// Shared data dir (two nodes on one SQLite file); default: a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub args: Vec<String>,
    /// Listen on this port (a restarted node taking its predecessor's place); default: a free one.
    pub port: Option<u16>,
}

pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    pub admin_token: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Node {
    pub async fn start(options: NodeOptions) -> Node {
        let (temp, data_dir) = match options.data_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::tempdir().unwrap();
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let admin_token = options
            .admin_token
            .unwrap_or_else(|| billing::ApiToken::generate().expose().to_owned());
        let port = options.port.unwrap_or_else(free_port);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut command = Command::new(sluice_binary());
        command
            .arg(options.role.unwrap_or("up"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .env("SLUICE_ADMIN_TOKEN", &admin_token)
            .env(
                "RUST_LOG",
                "debug,sqlx=warn,hyper=info,h2=info,tokio_tungstenite=info,tungstenite=info",
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(data_dir.join(format!("stdout-{port}.log"))).unwrap())
            .stderr(std::fs::File::create(data_dir.join(format!("stderr-{port}.log"))).unwrap())
            .kill_on_drop(true);
        if let Some(redis) = &options.redis {
            command.arg("--redis").arg(redis);
        }
        if let Some(database) = &options.database {
            command.arg("--database").arg(database);
        }
        command.args(&options.args);
        let mut child = command.spawn().expect("cannot start the sluice binary");
        let node_log = data_dir.join(format!("stderr-{port}.log"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sluice exited early ({status}):\n{}",
                    std::fs::read_to_string(&node_log).unwrap_or_default()
                );
            }
            if let Ok(response) = reqwest::get(format!("http://{addr}/healthz")).await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sluice did not become healthy:\n{}",
                std::fs::read_to_string(&node_log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Node {
            child,
            addr,
            admin_token,
            data_dir,
            _temp: temp,
        }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The node's stderr so far (for assertion messages).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(
            self.data_dir
                .join(format!("stderr-{}.log", self.addr.port())),
        )
        .unwrap_or_default()
    }

    /// `POST /v1/indicators` with a JSON body; returns status and parsed answer.
    pub async fn publish(&self, token: &str, body: &Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(self.http("/v1/indicators"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes `indicators` and asserts they were all accepted; returns their cursors.
    pub async fn publish_all(&self, indicators: &[Value]) -> Vec<String> {
        let (status, answer) = self
            .publish(&self.admin_token, &Value::from(indicators.to_vec()))
            .await;
        assert_eq!(status, 202, "publish failed: {answer}");
        assert_eq!(answer["accepted"], indicators.len(), "{answer}");
        answer["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn readyz(&self) -> u16 {
        reqwest::get(self.http("/readyz"))
            .await
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    }

    /// The node's process id (for reading its memory and descriptors from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("node already exited")
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("node already exited");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("node did not exit")
            .unwrap()
    }

    /// Runs a CLI command of the binary against this node's data dir.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        run_cli(args, &self.data_dir).await
    }

    pub async fn create_account(&self, name: &str, plan: &str) {
        let output = self
            .cli(&["accounts", "create", name, "--plan", plan])
            .await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub async fn create_token(&self, account: &str, scope: &str) -> String {
        self.create_token_with_id(account, scope).await.1
    }

    /// Creates a token; returns (its id, the token). The id is in the CLI's stderr line.
    pub async fn create_token_with_id(&self, account: &str, scope: &str) -> (String, String) {
        let output = self
            .cli(&["tokens", "create", "--account", account, "--scope", scope])
            .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let id = stderr
            .split_whitespace()
            .find(|word| word.starts_with("tok_"))
            .expect("the CLI names the token's id")
            .to_owned();
        (
            id,
            String::from_utf8(output.stdout).unwrap().trim().to_owned(),
        )
    }
}

/// A `sluice stream` run against a node (its URL and admin token from the environment), its
/// stdout read line by line; killed when dropped.
pub struct Consumer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Consumer {
    pub fn start(node: &Node, args: &[&str]) -> Consumer {
        let mut child = Command::new(sluice_binary())
            .arg("stream")
            .args(args)
            .env("SLUICE_URL", node.http(""))
            .env("SLUICE_TOKEN", &node.admin_token)
            .env("SLUICE_MAX_BACKOFF", "1s")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start sluice stream");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Consumer { child, lines }
    }

    /// The next line printed.
    pub async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("no line from sluice stream in time")
            .unwrap()
            .expect("sluice stream ended its output")
    }

    /// The next `n` indicators printed (NDJSON), by their `indicator` field.
    pub async fn indicators(&mut self, n: usize) -> Vec<String> {
        let mut seen = Vec::new();
        while seen.len() < n {
            let line = self.line().await;
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            seen.push(value["indicator"].as_str().unwrap().to_owned());
        }
        seen
    }

    /// Interrupts it (as Ctrl-C does) and waits: it saves its cursor and exits 0.
    pub async fn interrupt(mut self) {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "sluice stream exited with {status}");
    }
}

pub async fn run_cli(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(sluice_binary())
        .args(args)
        .env("SLUICE_DATA_DIR", data_dir)
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env_remove("SLUICE_TOKEN")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

/// A routable public IPv4 address for the n-th test indicator (no private or reserved range).
pub fn ip(n: usize) -> String {
    format!(
        "185.{}.{}.{}",
        100 + (n / 65536) % 100,
        (n / 256) % 256,
        n % 256
    )
}

pub fn indicator(n: usize) -> Value {
    serde_json::json!({"indicator": ip(n), "tags": ["scanner"], "confidence": 7})
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket on `url` with a bearer token; returns the socket or the HTTP status of a
/// refused handshake.
pub async fn ws_connect(url: &str, token: Option<&str>) -> Result<Ws, u16> {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("WebSocket connect to {url} failed: {error}"),
    }
}

/// What a test sees on a WebSocket.
#[derive(Debug)]
pub enum WsEvent {
    Frame(Value),
    Closed(Option<(u16, String)>),
}

/// Next JSON frame or close (pings are answered by tungstenite and skipped here). The whole
/// wait is bounded, so a stream that only pings cannot hold a test forever.
pub async fn ws_next(socket: &mut Ws) -> WsEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("no WebSocket frame in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return WsEvent::Frame(serde_json::from_str(&text).unwrap())
            }
            Some(Ok(Message::Close(frame))) => {
                return WsEvent::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return WsEvent::Closed(None),
        }
    }
}

pub async fn ws_frame(socket: &mut Ws) -> Value {
    match ws_next(socket).await {
        WsEvent::Frame(frame) => frame,
        WsEvent::Closed(close) => panic!("expected a frame, the socket closed: {close:?}"),
    }
}

/// The next frame, read as the protocol's typed [`domain::Frame`]; panics, showing the JSON,
/// when it is not one.
pub async fn ws_typed_frame(socket: &mut Ws) -> domain::Frame {
    let frame = ws_frame(socket).await;
    serde_json::from_value(frame.clone())
        .unwrap_or_else(|error| panic!("not a protocol frame ({error}): {frame}"))
}

/// Reads `n` indicator frames, returning (cursor, indicator) pairs; panics on anything else.
pub async fn ws_indicators(socket: &mut Ws, n: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let frame = ws_frame(socket).await;
        assert_eq!(frame["type"], "indicator", "unexpected frame {frame}");
        seen.push((
            frame["id"].as_str().unwrap().to_owned(),
            frame["data"]["indicator"].as_str().unwrap().to_owned(),
        ));
    }
    seen
}

pub async fn ws_close_code(socket: &mut Ws) -> (u16, String) {
    loop {
        match ws_next(socket).await {
            WsEvent::Frame(_) => continue,
            WsEvent::Closed(Some(close)) => return close,
            WsEvent::Closed(None) => panic!("socket ended without a close frame"),
        }
    }
}

pub async fn ws_send_close(socket: &mut Ws) {
    let _ = socket
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await;
}

/// A Server-Sent Events client over reqwest that parses `id`/`event`/`data`.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
    pub headers: reqwest::header::HeaderMap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl Sse {
    pub async fn connect(url: &str, token: &str, last_event_id: Option<&str>) -> Result<Sse, u16> {
        let mut request = reqwest::Client::new().get(url).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        if !response.status().is_success() {
            return Err(response.status().as_u16());
        }
        let headers = response.headers().clone();
        Ok(Sse {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            headers,
        })
    }

    /// The next event (comments and `retry:` skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), Vec::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        id = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("event: ") {
                        event = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push(value.to_owned());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseEvent {
                    id,
                    event,
                    data: serde_json::from_str(&data.join("\n")).unwrap(),
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("no SSE event in time");
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => return None,
            }
        }
    }

    pub async fn indicators(&mut self, n: usize) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        while seen.len() < n {
            let event = self.next().await.expect("SSE stream ended");
            assert_eq!(event.event, "indicator", "unexpected event {event:?}");
            seen.push((
                event.id,
                event.data["data"]["indicator"].as_str().unwrap().to_owned(),
            ));
        }
        seen
    }
}

/// A connection to a test's private Redis.
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits until `nodes` processes subscribe to the `indicators` upstream channel, so that a
/// `PUBLISH` after this reaches them.
pub async fn wait_upstream_subscribers(url: &str, nodes: i64) {
    let mut conn = redis_conn(url).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("indicators")
            .query_async(&mut conn)
            .await
            .unwrap();
        if counts[0].1 >= nodes {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{nodes} node(s) did not subscribe to the upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
