//! The gateway's tunables. Tests build this struct directly; the CLI maps flags onto it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The key verifying browsers' short-lived stream JWTs (shared with the web role). Never printed.
#[derive(Clone)]
pub struct JwtKey(pub Arc<[u8]>);

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKey(redacted)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// WebSocket ping interval (docs/protocol.md §4.9: 20 s).
    pub ws_ping_interval: Duration,
    /// A WebSocket peer silent this long is closed (docs/protocol.md §4.9: 60 s).
    pub ws_idle_timeout: Duration,
    /// Per-connection WebSocket read buffer, bytes (default 512 B, grown on demand for larger
    /// frames; tungstenite's 128 KiB default
    /// would dominate memory with thousands of idle subscribers).
    pub ws_read_buffer: usize,
    /// Bytes a WebSocket may have queued for writing before the connection errors (default 256 KiB).
    pub ws_max_write_buffer: usize,
    /// Largest message or frame accepted from a client (default 64 KiB; beyond: close 1009).
    pub max_message_bytes: usize,
    /// How long to wait for the peer's half of a closing handshake (default 2 s).
    pub close_timeout: Duration,
    /// SSE heartbeat comment interval (docs/protocol.md §4.10: 15 s).
    pub sse_heartbeat: Duration,
    /// SSE `retry:` hint sent once at start (default 2 s).
    pub sse_retry: Duration,
    /// A send blocked this long marks a slow consumer: WebSocket 4009, SSE stream ended (default 10 s).
    pub slow_consumer_timeout: Duration,
    /// Deadline for draining connections on shutdown (default 10 s).
    pub shutdown_grace: Duration,
    /// Live entries buffered per node before a slow subscriber falls back to reading the log.
    pub hub_capacity: usize,
    /// How often the node polls the account database's change log (plan changes,
    /// revocations); default 1 s, well inside the 5 s of docs/protocol.md §5.5.
    pub change_poll_interval: Duration,
    /// How often metered usage is written to the database (default 10 s).
    pub usage_flush_interval: Duration,
    /// Key of the stream JWTs browsers present as `?access_token=`; `None`: only API tokens.
    pub stream_jwt_key: Option<JwtKey>,
    /// How long an authenticated API token is cached (default 60 s; zero: every request asks
    /// the database). Changes in the change log evict entries at once.
    pub token_cache_ttl: Duration,
    /// Origins (besides the node's own) whose pages may open the stream with a stream JWT
    /// (`--allowed-origin`): where `sluice web` is served from.
    pub allowed_origins: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ws_ping_interval: Duration::from_secs(20),
            ws_idle_timeout: Duration::from_secs(60),
            ws_read_buffer: 512,
            ws_max_write_buffer: 256 * 1024,
            max_message_bytes: 64 * 1024,
            close_timeout: Duration::from_secs(2),
            sse_heartbeat: Duration::from_secs(15),
            sse_retry: Duration::from_secs(2),
            slow_consumer_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            hub_capacity: crate::hub::DEFAULT_CAPACITY,
            change_poll_interval: Duration::from_secs(1),
            usage_flush_interval: Duration::from_secs(10),
            stream_jwt_key: None,
            token_cache_ttl: Duration::from_secs(60),
            allowed_origins: Vec::new(),
        }
    }
}
