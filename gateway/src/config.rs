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
    /// SSE `retry:` hint sent once at start: drawn per connection between this and twice it,
    /// so clients dropped together do not reconnect together (default 2 s).
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
    /// A request head must have arrived within this (from the accept, or from the first byte
    /// of a keep-alive connection's next request); default 10 s (`server.rs`).
    pub http_header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this (default 60 s).
    pub http_idle_timeout: Duration,
    /// A request body must have arrived within this of its first read: 408 (default 30 s).
    pub http_body_timeout: Duration,
    /// A write that makes no progress this long closes the connection (default 30 s); it runs
    /// only while a write is pending, so quiet streams are never closed by it.
    pub http_write_timeout: Duration,
    /// Connections that have not authenticated yet, in all; beyond, new ones are closed at
    /// accept (default 4096).
    pub max_pending_connections: usize,
    /// The same from one client address (IPv6: one /64); default 64.
    pub max_pending_connections_per_ip: usize,
    /// Feed scans (`GET /v1/indicators`, CIF's `/indicators`) run at once on this node
    /// (`--max-concurrent-feeds`; default: the number of CPUs).
    pub max_concurrent_feeds: usize,
    /// Feed requests a second per account on this node (`--feed-rate`, default 1); zero: no limit.
    pub feed_rate: u32,
    /// Feed requests an account may make at once before `feed_rate` applies (default 5).
    pub feed_burst: u32,
    /// TAXII pages a second per account on this node (`--taxii-rate`, default 10); zero: no
    /// limit.
    pub taxii_rate: u32,
    /// TAXII pages an account may ask for at once before `taxii_rate` applies (default 50).
    pub taxii_burst: u32,
    /// When indicators expire (`--default-validity`): their own `valid_until`, else their
    /// `reporttime` plus a default per itype. Feeds, lists, CIFv3's `/feed` and TAXII's
    /// collections leave expired indicators out; streams deliver every one.
    pub validity: domain::Validity,
    /// A stream whose position is within this of the log's trim point is "near retention" in
    /// the admin API's connection list and `sluice_consumers_near_retention`
    /// (`--retention-margin`, default 10 minutes).
    pub retention_margin: Duration,
    /// This node's name in the admin API's connection list (its listen address by default).
    pub node: String,
    /// Outbound webhook delivery (docs/protocol.md §13).
    pub webhooks: crate::webhooks::WebhookConfig,
}

/// The default of `--max-concurrent-feeds`: the number of CPUs the process may use.
pub fn default_max_concurrent_feeds() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| cpus.get())
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
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            http_body_timeout: Duration::from_secs(30),
            http_write_timeout: Duration::from_secs(30),
            max_pending_connections: 4096,
            max_pending_connections_per_ip: 64,
            max_concurrent_feeds: default_max_concurrent_feeds(),
            feed_rate: 1,
            feed_burst: 5,
            taxii_rate: crate::feed::limit::DEFAULT_PAGE_RATE,
            taxii_burst: crate::feed::limit::DEFAULT_PAGE_BURST,
            validity: domain::Validity::standard(),
            retention_margin: Duration::from_secs(600),
            node: String::new(),
            webhooks: crate::webhooks::WebhookConfig::default(),
        }
    }
}
