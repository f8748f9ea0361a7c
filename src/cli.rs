//! The command line: every flag also reads `SLUICE_<FLAG>` from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use domain::correlation::Rule;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Real-time threat-intelligence firehose"
)]
pub struct Cli {
    /// Log format on stderr (`RUST_LOG` sets the level, default info).
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: gateway, ingest and the account store (embedded default:
    /// in-process log + SQLite under --data-dir; --redis and --database for shared backends).
    Up(UpArgs),
    /// A further gateway node sharing Redis (required) and the account database.
    Gateway(GatewayArgs),
    /// The web page and the account API alone (sign-up, plans, tokens, billing webhook), on
    /// the cluster's account database; browsers stream from the gateways.
    Web(WebArgs),
    /// The correlator as its own process, on the cluster's Redis (replicas never double-emit).
    Correlator(CorrelatorArgs),
    /// Apply database migrations.
    Migrate(StoreArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Show subscription plans.
    #[command(subcommand)]
    Plans(PlansCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Export metered usage for invoicing.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Administer a running node over its HTTP API (an `admin` token): its open streams.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Send indicators from a file or stdin to a server (or straight into Redis).
    Publish(PublishArgs),
    /// Print the firehose as it arrives (json, csv, table, zeek, bindrpz, iptables, ipset),
    /// reconnecting and resuming from its cursor.
    Stream(StreamArgs),
    /// Load-test a running gateway: many subscribers, a paced publisher into Redis.
    Bench(BenchArgs),
    /// Measure the correlator: the rule on one core, memory per scanner, and end to end on Redis.
    BenchCorrelator(BenchCorrelatorArgs),
    /// Measure the log backends side by side: append and replay throughput, the cost of a sync
    /// per batch, and how long the SQLite log takes to open.
    BenchLog(BenchLogArgs),
    /// Measure what an indicator costs as STIX 2.1 (TAXII's objects) against the native frame.
    BenchStix(BenchStixArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// The open streams, as a table: the cluster's when the node at --url runs on Redis, else
    /// that node's.
    Connections {
        /// Only this account's streams.
        #[arg(long)]
        account: Option<String>,
        /// Order: connected (oldest first), lag (most behind first), account or node.
        #[arg(long, default_value = "connected")]
        sort: String,
        /// Print the answer's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: RemoteArgs,
    },
    /// Close one stream (its client gets 1001 and may resume from its cursor).
    Close {
        /// The connection's id (`c_…` on the node at --url, `c_…@NODE` on any node of the
        /// cluster; `sluice admin connections --json` lists them).
        id: String,
        #[command(flatten)]
        node: RemoteArgs,
    },
}

/// Which node to administer, and with what.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The node's URL.
    #[arg(long, env = "SLUICE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token with scope `admin`.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Where the account database is.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded SQLite database and the admin token.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// Database URL (`postgres://…` or `sqlite://…`); default: SQLite in --data-dir.
    #[arg(long, env = "SLUICE_DATABASE")]
    pub database: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    /// Prefix of every Redis key Sluice uses.
    #[arg(long, env = "SLUICE_REDIS_PREFIX", default_value = "sluice:")]
    pub redis_prefix: String,
    /// Redis pub/sub channels of the trusted upstream (comma-separated).
    #[arg(
        long,
        env = "SLUICE_UPSTREAM_CHANNELS",
        value_delimiter = ',',
        default_value = "indicators"
    )]
    pub upstream_channels: Vec<String>,
    /// Redis pub/sub patterns of the trusted upstream (comma-separated), e.g. `indicators.*`.
    #[arg(long, env = "SLUICE_UPSTREAM_PATTERNS", value_delimiter = ',')]
    pub upstream_patterns: Vec<String>,
    /// How long the log keeps indicators.
    #[arg(long, env = "SLUICE_RETENTION", value_parser = parse_duration, default_value = "24h")]
    pub retention: Duration,
    /// Entries the embedded log (`--log sqlite` or `memory`) keeps at most.
    #[arg(
        long,
        alias = "memory-log-max-entries",
        env = "SLUICE_LOG_MAX_ENTRIES",
        value_parser = parse_count,
        default_value_t = 1_000_000
    )]
    pub log_max_entries: usize,
    /// Bytes of indicator JSON the embedded log keeps at most, on disk and in memory
    /// (`268435456`, `256MiB`, `1GiB`; at least 1 MiB): the oldest entries go first when this
    /// or the entry bound is exceeded.
    #[arg(
        long,
        alias = "memory-log-max-bytes",
        env = "SLUICE_LOG_MAX_BYTES",
        value_parser = parse_bytes,
        default_value = "256MiB"
    )]
    pub log_max_bytes: usize,
    /// Deadline for draining connections on SIGTERM.
    #[arg(long, env = "SLUICE_SHUTDOWN_GRACE", value_parser = parse_duration_or_zero, default_value = "10s")]
    pub shutdown_grace: Duration,
    /// WebSocket ping interval.
    #[arg(long, env = "SLUICE_WS_PING_INTERVAL", value_parser = parse_duration, default_value = "20s")]
    pub ws_ping_interval: Duration,
    /// Close WebSocket peers silent this long.
    #[arg(long, env = "SLUICE_WS_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub ws_idle_timeout: Duration,
    /// SSE heartbeat interval.
    #[arg(long, env = "SLUICE_SSE_HEARTBEAT", value_parser = parse_duration, default_value = "15s")]
    pub sse_heartbeat: Duration,
    /// Key (≥ 32 bytes) of the short-lived stream JWTs the web page hands to browsers; every
    /// node of a cluster needs the same one. Unset: the key in `<data-dir>/jwt.secret`, made at
    /// first start (so the roles on one host share it).
    #[arg(long, env = "SLUICE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How often plan changes and revocations are picked up from the account database.
    #[arg(long, env = "SLUICE_CHANGE_POLL_INTERVAL", value_parser = parse_duration, default_value = "1s")]
    pub change_poll_interval: Duration,
    /// How often metered usage is written to the account database.
    #[arg(long, env = "SLUICE_USAGE_FLUSH_INTERVAL", value_parser = parse_duration, default_value = "10s")]
    pub usage_flush_interval: Duration,
    /// How long an authenticated API token is cached on this node (plan changes and revocations
    /// evict it at once); `0s` asks the database on every request.
    #[arg(long, env = "SLUICE_TOKEN_CACHE_TTL", value_parser = parse_duration_or_zero, default_value = "60s")]
    pub token_cache_ttl: Duration,
    /// A send blocked this long closes a slow consumer (WebSocket 4009).
    #[arg(long, env = "SLUICE_SLOW_CONSUMER_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub slow_consumer_timeout: Duration,
    /// A stream whose position is within this of the log's trim point counts as near retention
    /// (`GET /v1/admin/connections`, `sluice_consumers_near_retention`).
    #[arg(long, env = "SLUICE_RETENTION_MARGIN", value_parser = parse_duration, default_value = "10m")]
    pub retention_margin: Duration,
    /// Origins of pages allowed to open the stream with a browser session's JWT, besides this
    /// node's own (comma-separated), e.g. the `sluice web` origin `https://app.example.com`.
    #[arg(
        long = "allowed-origin",
        env = "SLUICE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Feed scans (`GET /v1/indicators`, CIF's `/indicators`) this node runs at once; a feed
    /// finding none free within 250 ms gets 429. Default: the number of CPUs.
    #[arg(long, env = "SLUICE_MAX_CONCURRENT_FEEDS", value_parser = parse_count)]
    pub max_concurrent_feeds: Option<usize>,
    /// Feed requests a second each account may make on this node, after a burst of
    /// `--feed-burst` (429 beyond); `0` turns the limit off.
    #[arg(long, env = "SLUICE_FEED_RATE", default_value_t = 1)]
    pub feed_rate: u32,
    /// Feed requests an account may make at once before `--feed-rate` applies.
    #[arg(long, env = "SLUICE_FEED_BURST", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 5)]
    pub feed_burst: u32,
    /// TAXII pages a second each account may ask for on this node, after a burst of
    /// `--taxii-burst` (429 beyond); `0` turns the limit off.
    #[arg(long, env = "SLUICE_TAXII_RATE", default_value_t = gateway::feed::limit::DEFAULT_PAGE_RATE)]
    pub taxii_rate: u32,
    /// TAXII pages an account may ask for at once before `--taxii-rate` applies.
    #[arg(long, env = "SLUICE_TAXII_BURST", value_parser = clap::value_parser!(u32).range(1..), default_value_t = gateway::feed::limit::DEFAULT_PAGE_BURST)]
    pub taxii_burst: u32,
    /// How long an indicator without its own `valid_until` holds, from its `reporttime`, per
    /// itype: comma-separated ITYPE=DURATION (or ITYPE=none) over the standard defaults
    /// (ipv4, ipv6, cidr, fqdn, email 30d; url 14d; hashes 365d; asn none), e.g.
    /// `ipv4=7d,url=3d`; `none` alone: only an indicator's own `valid_until`. Feeds, lists and
    /// TAXII leave expired indicators out; streams deliver every one.
    #[arg(long, env = "SLUICE_DEFAULT_VALIDITY", value_parser = parse_validity, default_value = "standard")]
    pub default_validity: domain::Validity,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Redis URL: use Redis Streams as the shared log and subscribe to the upstream channels.
    #[arg(long, env = "SLUICE_REDIS")]
    pub redis: Option<String>,
    /// The embedded log, without --redis: `sqlite` keeps it in `<data-dir>/log.db` across
    /// restarts; `memory` forgets it at exit (tests, throwaway runs).
    #[arg(long, env = "SLUICE_LOG", value_enum)]
    pub log: Option<LogKind>,
    /// When the SQLite log's commits reach the disk: `batch` syncs every batch before it is
    /// acknowledged (nothing acknowledged is lost, even to a power cut); `off` leaves it to the
    /// operating system (a process crash loses nothing, a machine crash may lose the last
    /// second or so, and the log then starts a new epoch so clients are told `reset`).
    #[arg(long, env = "SLUICE_LOG_FSYNC", value_enum, default_value = "batch")]
    pub log_fsync: LogFsync,
    /// Replay the bundled sample feeds so data flows immediately.
    #[arg(long, env = "SLUICE_DEMO")]
    pub demo: bool,
    /// Demo pace, indicators per second.
    #[arg(long, env = "SLUICE_DEMO_RATE", value_parser = clap::value_parser!(u32).range(1..=10_000), default_value_t = 5)]
    pub demo_rate: u32,
    #[command(flatten)]
    pub web: WebFlags,
    #[command(flatten)]
    pub correlate: CorrelateArgs,
    /// Run no correlator in this process (e.g. when `sluice correlator` runs elsewhere).
    #[arg(long, env = "SLUICE_NO_CORRELATOR")]
    pub no_correlator: bool,
}

/// Where `sluice up` keeps its log without `--redis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogKind {
    /// `<data-dir>/log.db`, kept across restarts.
    #[default]
    Sqlite,
    /// In this process only, lost at exit.
    Memory,
}

/// `--log-fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFsync {
    Batch,
    Off,
}

impl From<LogFsync> for sluice_log::sqlite::Fsync {
    fn from(value: LogFsync) -> Self {
        match value {
            LogFsync::Batch => sluice_log::sqlite::Fsync::EveryBatch,
            LogFsync::Off => sluice_log::sqlite::Fsync::Off,
        }
    }
}

/// How a node delivers outbound webhooks (docs/protocol.md §13).
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Let webhook endpoints resolve to private, loopback, link-local and other special-purpose
    /// addresses (cloud metadata included), and use plain `http://` to loopback. Off: public
    /// `https://` endpoints only. For receivers on your own network, and tests.
    #[arg(long, env = "SLUICE_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Deliver no webhooks from this node (other nodes of the cluster still do).
    #[arg(long, env = "SLUICE_NO_WEBHOOKS")]
    pub no_webhooks: bool,
    /// Tries per batch before it is given up as a dead letter.
    #[arg(long, env = "SLUICE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,
    /// The first retry's delay; each next one doubles (with jitter) up to 10 minutes.
    #[arg(long, env = "SLUICE_WEBHOOK_RETRY_BASE", value_parser = parse_duration, default_value = "1s")]
    pub webhook_retry_base: Duration,
    /// Deadline of one POST, from connecting to the end of the answer.
    #[arg(long, env = "SLUICE_WEBHOOK_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub webhook_timeout: Duration,
    /// How long a batch waits for more indicators after its first.
    #[arg(long, env = "SLUICE_WEBHOOK_LINGER", value_parser = parse_duration, default_value = "1s")]
    pub webhook_linger: Duration,
    /// Most indicators per batch (a limited plan's burst caps it further).
    #[arg(long, env = "SLUICE_WEBHOOK_BATCH_MAX", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub webhook_batch_max: u32,
    /// How often the node claims endpoints and renews its leases (a lease lasts five times
    /// this, at least 10 s: how soon another node takes over from one that died).
    #[arg(long, env = "SLUICE_WEBHOOK_CLAIM_INTERVAL", value_parser = parse_duration, default_value = "2s")]
    pub webhook_claim_interval: Duration,
}

impl WebhookArgs {
    /// The deliverer's settings.
    pub fn config(&self) -> gateway::webhooks::WebhookConfig {
        gateway::webhooks::WebhookConfig {
            enabled: !self.no_webhooks,
            allow_private: self.webhook_allow_private,
            batch_max: self.webhook_batch_max as usize,
            linger: self.webhook_linger,
            timeout: self.webhook_timeout,
            max_attempts: self.webhook_max_attempts,
            retry_base: self.webhook_retry_base,
            claim_interval: self.webhook_claim_interval,
            ..gateway::webhooks::WebhookConfig::default()
        }
    }
}

/// The web page's and account API's settings, shared by `up` and `web`.
#[derive(Debug, Clone, Args)]
pub struct WebFlags {
    /// Secret(s) verifying `POST /v1/billing/webhook` signatures (comma-separated while
    /// rotating). Unset: no payment provider; admins change plans.
    #[arg(
        long,
        env = "SLUICE_BILLING_WEBHOOK_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub billing_webhook_secret: Vec<String>,
    /// Billing test mode: accounts switch plans themselves without paying (for trying Sluice
    /// out; `up --demo` turns it on). Never on a deployment open to strangers.
    #[arg(long, env = "SLUICE_BILLING_TEST_MODE")]
    pub billing_test_mode: bool,
    /// The payment provider's checkout page: with a webhook secret, the page's subscribe
    /// switch sends the user there with `?account=…&plan=…`.
    #[arg(long, env = "SLUICE_BILLING_CHECKOUT_URL")]
    pub billing_checkout_url: Option<String>,
    /// How long the page's stream tokens last (1s to 1h); the viewer renews its token when the
    /// stream closes with 4001.
    #[arg(long, env = "SLUICE_STREAM_TOKEN_TTL", value_parser = parse_duration, default_value = "5m")]
    pub stream_token_ttl: Duration,
    /// Session cookies without `Secure`, for plain-HTTP use on another host than localhost
    /// (browsers accept `Secure` cookies from http://localhost and 127.0.0.1).
    #[arg(long, env = "SLUICE_INSECURE_COOKIES")]
    pub insecure_cookies: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CorrelateArgs {
    /// Correlation rule, repeatable (`;` between rules in the environment variable):
    /// `NAME[:key=exact|cidr/24[/48]|asn,threshold=3,window=24h,lateness=1h,idle=1m,tags=scanner+…,confidence=8]`.
    /// Default: `scanners` (3 providers, one address, 24 h; `--demo`: with lateness=0s).
    #[arg(long = "correlate", env = "SLUICE_CORRELATE", value_delimiter = ';', value_parser = parse_rule)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Args)]
pub struct CorrelatorArgs {
    /// Redis URL of the cluster's shared log.
    #[arg(long, env = "SLUICE_REDIS")]
    pub redis: String,
    /// Prefix of every Redis key Sluice uses.
    #[arg(long, env = "SLUICE_REDIS_PREFIX", default_value = "sluice:")]
    pub redis_prefix: String,
    /// How long the log keeps indicators (as configured on the gateways).
    #[arg(long, env = "SLUICE_RETENTION", value_parser = parse_duration, default_value = "24h")]
    pub retention: Duration,
    #[command(flatten)]
    pub correlate: CorrelateArgs,
}

/// The HTTP server's deadlines and caps, shared by the serving roles (`gateway/src/server.rs`).
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// A request head must arrive within this (from the accept, or from the first byte of a
    /// keep-alive connection's next request); later, the connection is closed.
    #[arg(long, env = "SLUICE_HTTP_HEADER_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub http_header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    #[arg(long, env = "SLUICE_HTTP_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub http_idle_timeout: Duration,
    /// A request body must arrive within this of the server starting to read it (408 and the
    /// connection closed otherwise).
    #[arg(long, env = "SLUICE_HTTP_BODY_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub http_body_timeout: Duration,
    /// A write to a client that makes no progress this long closes the connection (a quiet
    /// stream, with nothing to write, is never closed by it).
    #[arg(long, env = "SLUICE_HTTP_WRITE_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub http_write_timeout: Duration,
    /// Open connections on which no request has authenticated yet, in all; beyond, new
    /// connections are closed at once.
    #[arg(long, env = "SLUICE_MAX_PENDING_CONNECTIONS", value_parser = parse_count, default_value_t = 4096)]
    pub max_pending_connections: usize,
    /// The same from one client address (IPv6: one /64). Behind a proxy every client has the
    /// proxy's address: raise it there.
    #[arg(long, env = "SLUICE_MAX_PENDING_CONNECTIONS_PER_IP", value_parser = parse_count, default_value_t = 64)]
    pub max_pending_connections_per_ip: usize,
}

impl HttpArgs {
    pub fn config(&self) -> gateway::server::HttpConfig {
        gateway::server::HttpConfig {
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            body_timeout: self.http_body_timeout,
            write_timeout: self.http_write_timeout,
            max_pending_connections: self.max_pending_connections,
            max_pending_connections_per_ip: self.max_pending_connections_per_ip,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Key (≥ 32 bytes) of the stream JWTs handed to browsers; the gateways need the same one.
    /// Unset: the key in `<data-dir>/jwt.secret`, made at first start.
    #[arg(long, env = "SLUICE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Accept webhook endpoints on private and special-purpose addresses, and `http://` to
    /// loopback (the gateways that deliver them need the same flag).
    #[arg(long, env = "SLUICE_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Where browsers open the stream (a gateway or the load balancer in front of them), e.g.
    /// `https://stream.example.com`; those gateways need this page's origin in
    /// `--allowed-origin`. Unset: this same origin (a proxy routes `/v1/stream` to gateways).
    #[arg(long, env = "SLUICE_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// How long open requests may finish after a stop signal before the process exits.
    #[arg(long, env = "SLUICE_SHUTDOWN_GRACE", value_parser = parse_duration_or_zero, default_value = "10s")]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub web: WebFlags,
}

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Redis URL of the cluster's shared log (required for a gateway node).
    #[arg(long, env = "SLUICE_REDIS")]
    pub redis: String,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account.
    Create {
        /// Account name (also the provider name of what it publishes).
        name: String,
        /// Plan: free, hobby, pro, enterprise (see `sluice plans list`).
        #[arg(long, env = "SLUICE_PLAN", default_value = "free")]
        plan: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Every account's usage over one month (UTC), with its plan and price: what an invoice
    /// needs. Accounts without usage are listed with zeros.
    Export {
        /// The month, `YYYY-MM`.
        #[arg(long, value_parser = parse_month)]
        month: chrono::NaiveDate,
        /// `csv` (a header line, then one line per account) or `json` (an array).
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `YYYY-MM` as the month's first day.
fn parse_month(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 7)
        .ok_or_else(|| format!("`{text}` is not a month such as 2026-11"))
}

#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// List plans and their limits.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Move an account to another plan.
    Set {
        account: String,
        plan: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it (the only line on stdout; it is not shown again).
    Create {
        #[arg(long, env = "SLUICE_ACCOUNT")]
        account: String,
        /// read (stream), write (publish), admin.
        #[arg(long, env = "SLUICE_SCOPE", default_value = "read")]
        scope: String,
        /// Lifetime, e.g. `30d`, `12h`; default: no expiry.
        #[arg(long, env = "SLUICE_EXPIRES", value_parser = parse_duration)]
        expires: Option<Duration>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List an account's tokens (never their secrets).
    List {
        #[arg(long, env = "SLUICE_ACCOUNT")]
        account: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Feed file to read; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// Input format.
    #[arg(long, env = "SLUICE_FORMAT", default_value = "auto")]
    pub format: String,
    /// Provider name (required with --redis; over HTTP the server uses the token's account).
    #[arg(long, env = "SLUICE_PROVIDER")]
    pub provider: Option<String>,
    /// Tags added to every indicator (comma-separated).
    #[arg(long, env = "SLUICE_TAGS", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Confidence (0–10) set on every indicator.
    #[arg(long, env = "SLUICE_CONFIDENCE")]
    pub confidence: Option<f64>,
    /// Server URL.
    #[arg(long, env = "SLUICE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token with scope `write`.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Publish straight into Redis (the trusted upstream) instead of the HTTP API.
    #[arg(long, env = "SLUICE_REDIS")]
    pub redis: Option<String>,
    /// Redis channel for --redis.
    #[arg(long, env = "SLUICE_CHANNEL", default_value = "indicators")]
    pub channel: String,
    /// Indicators per HTTP request.
    #[arg(long, env = "SLUICE_BATCH", value_parser = parse_count, default_value_t = 500)]
    pub batch: usize,
}

#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Server URL.
    #[arg(long, env = "SLUICE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token with scope `read`.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format: json (NDJSON), csv, table, zeek, bindrpz, iptables, ipset,
    /// suricata-dataset, stix (one STIX 2.1 bundle per line).
    #[arg(long, env = "SLUICE_STREAM_FORMAT", default_value = "json", value_parser = parse_format)]
    pub format: crate::stream::OutputFormat,
    /// Keep the stream's position in this file: a restart resumes where it stopped.
    #[arg(long, env = "SLUICE_CURSOR_FILE")]
    pub cursor_file: Option<PathBuf>,
    /// Where to start when the cursor file has no position: `now` (default), `earliest`, or a
    /// cursor.
    #[arg(long, env = "SLUICE_CURSOR")]
    pub cursor: Option<String>,
    /// Start at the first indicator added since then, when the cursor file has no position: a
    /// duration back from now (`2h`, `30m`) or an RFC 3339 time. Not with --cursor.
    #[arg(long, env = "SLUICE_SINCE")]
    pub since: Option<String>,
    /// Write to this file instead of stdout: rewritten atomically for zeek, bindrpz and
    /// suricata-dataset (every indicator of the last day), appended to for the other formats.
    #[arg(long, env = "SLUICE_OUTPUT")]
    pub output: Option<PathBuf>,
    /// How often a whole-file --output is rewritten at most.
    #[arg(long, env = "SLUICE_OUTPUT_INTERVAL", value_parser = parse_duration, default_value = "5s")]
    pub output_interval: Duration,
    /// A whole-file --output drops a line once every indicator that gave it has expired: at
    /// its own `valid_until`, or (with this flag, the syntax of the node's) at its
    /// `reporttime` plus the default for its itype. Unset: only an indicator's own
    /// `valid_until` counts.
    #[arg(long, env = "SLUICE_STREAM_DEFAULT_VALIDITY", value_parser = parse_validity)]
    pub default_validity: Option<domain::Validity>,
    /// Longest wait between reconnection attempts.
    #[arg(long, env = "SLUICE_MAX_BACKOFF", value_parser = parse_duration, default_value = "30s")]
    pub max_backoff: Duration,
    /// Filter: itypes, e.g. `ipv4,cidr`.
    #[arg(long, env = "SLUICE_STREAM_ITYPE")]
    pub itype: Option<String>,
    /// Filter: any of these tags.
    #[arg(long, env = "SLUICE_STREAM_TAGS")]
    pub tags: Option<String>,
    /// Filter: minimum confidence.
    #[arg(long, env = "SLUICE_STREAM_CONFIDENCE")]
    pub confidence: Option<String>,
    /// Filter: most restrictive TLP to receive.
    #[arg(long, env = "SLUICE_STREAM_TLP")]
    pub tlp: Option<String>,
    /// Filter: providers.
    #[arg(long, env = "SLUICE_STREAM_PROVIDER")]
    pub provider: Option<String>,
    /// Filter: addresses inside this network.
    #[arg(long, env = "SLUICE_STREAM_CIDR")]
    pub cidr: Option<String>,
    /// Filter preset: firewall, sinkhole, zeek.
    #[arg(long, env = "SLUICE_STREAM_PROFILE")]
    pub profile: Option<String>,
    /// Only correlated indicators (`true`) or none of them (`false`).
    #[arg(long, env = "SLUICE_STREAM_CORRELATED")]
    pub correlated: Option<String>,
}

fn parse_format(text: &str) -> Result<crate::stream::OutputFormat, String> {
    text.parse()
        .map_err(|error: crate::stream::UnknownFormat| error.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Ws,
    Sse,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Gateway base URL.
    #[arg(long, env = "SLUICE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Token the subscribers use.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Subscribers to open.
    #[arg(long, env = "SLUICE_BENCH_SUBSCRIBERS", default_value_t = 100)]
    pub subscribers: usize,
    /// Subscriber transport.
    #[arg(long, env = "SLUICE_BENCH_TRANSPORT", value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
    /// Redis to publish into (the trusted upstream the gateway subscribes to).
    #[arg(long, env = "SLUICE_REDIS")]
    pub redis: Option<String>,
    /// Upstream channel.
    #[arg(long, env = "SLUICE_CHANNEL", default_value = "indicators")]
    pub channel: String,
    /// Indicators published per second.
    #[arg(long, env = "SLUICE_BENCH_RATE", default_value_t = 100)]
    pub rate: u32,
    /// How long to publish.
    #[arg(long, env = "SLUICE_BENCH_DURATION", value_parser = parse_duration, default_value = "15s")]
    pub duration: Duration,
    /// Gateway process id, to measure its CPU time and resident memory.
    #[arg(long, env = "SLUICE_BENCH_GATEWAY_PID")]
    pub gateway_pid: Option<u32>,
    /// Only open idle connections and measure the gateway's memory per connection.
    #[arg(long, env = "SLUICE_BENCH_IDLE")]
    pub idle: bool,
    /// Only measure authenticated WebSocket upgrades: open and close this many connections
    /// (16 at a time), each waiting for its `hello`.
    #[arg(long, env = "SLUICE_BENCH_HANDSHAKES")]
    pub handshakes: Option<usize>,
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    Rule::parse(text).map_err(|error| error.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct BenchCorrelatorArgs {
    /// Distinct scanners in the window for the in-memory run.
    #[arg(long, default_value_t = 1_000_000)]
    pub scanners: usize,
    /// Providers reporting each scanner (1–5; 3 or more makes every scanner correlate).
    #[arg(long, default_value_t = 3)]
    pub providers: usize,
    /// Also measure end to end through this Redis (keys under a fresh `bench-…:` prefix,
    /// deleted afterwards). Never read from the environment: point it at a scratch server.
    #[arg(long)]
    pub redis: Option<String>,
    /// Distinct scanners for the end-to-end run.
    #[arg(long, default_value_t = 100_000)]
    pub e2e_scanners: usize,
}

#[derive(Debug, Clone, Args)]
pub struct BenchStixArgs {
    /// Indicators encoded each way (a mix of itypes, as feeds send them).
    #[arg(long, default_value_t = 200_000, value_parser = parse_count)]
    pub entries: usize,
    /// Rounds over them; the fastest is reported.
    #[arg(long, default_value_t = 5, value_parser = parse_count)]
    pub rounds: usize,
}

#[derive(Debug, Clone, Args)]
pub struct BenchLogArgs {
    /// Indicators appended to each backend.
    #[arg(long, default_value_t = 200_000, value_parser = parse_count)]
    pub entries: usize,
    /// Indicators per append call.
    #[arg(long, default_value_t = 100, value_parser = parse_count)]
    pub batch: usize,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 4, value_parser = parse_count)]
    pub appenders: usize,
    /// One-indicator appends timed one after the other.
    #[arg(long, default_value_t = 2_000, value_parser = parse_count)]
    pub single: usize,
    /// Scratch directory for the SQLite files (removed afterwards).
    #[arg(long, default_value = "./sluice-bench-log")]
    pub dir: PathBuf,
    /// Also measure a Redis log there (keys under a fresh `bench-log-…:` prefix, deleted
    /// afterwards). Never read from the environment: point it at a scratch server.
    #[arg(long)]
    pub redis: Option<String>,
}

/// The longest duration any flag takes: longer ones are typos, and deadlines that far away
/// overflow the clock.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Durations like `500ms`, `20s`, `24h`, `30d`: more than zero, at most a year (a zero
/// interval or timeout would spin or fire at once).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(text)? {
        Duration::ZERO => Err(format!(
            "`{text}` is zero; give a positive duration such as 1s"
        )),
        duration => Ok(duration),
    }
}

/// As [`parse_duration`], where zero means "off" or "at once" (`--token-cache-ttl`,
/// `--shutdown-grace`).
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("`{text}` is not a duration ({error}); use e.g. 30s, 24h, 30d"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "`{text}` is more than a year; use e.g. 30s, 24h, 30d"
        ));
    }
    Ok(duration)
}

/// `--default-validity`: `domain::Validity`'s syntax (one line naming the item at fault).
fn parse_validity(text: &str) -> Result<domain::Validity, String> {
    domain::Validity::parse(text).map_err(|error| error.to_string())
}

/// A size in bytes: a whole number, optionally with a unit (`KiB`, `MiB`, `GiB`, or `KB`, `MB`,
/// `GB` in powers of ten), at least 1 MiB (an indicator may be 64 KiB).
fn parse_bytes(text: &str) -> Result<usize, String> {
    const MIN: usize = 1024 * 1024;
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}` is not a size; use e.g. 268435456, 256MiB, 1GiB"
            ))
        }
    };
    let bytes = number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("`{text}` is not a size; use e.g. 268435456, 256MiB, 1GiB"))?;
    if bytes < MIN {
        return Err(format!("`{text}` is less than 1MiB"));
    }
    Ok(bytes)
}

/// A count of at least one.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

impl NodeArgs {
    /// What each flag cannot check alone (exit 64 naming the flags).
    pub fn check(&self) -> Result<(), String> {
        if self.ws_idle_timeout <= self.ws_ping_interval {
            return Err(format!(
                "--ws-idle-timeout ({}) must be longer than --ws-ping-interval ({}): peers answer \
                 the pings, and that answer is what keeps them from being idle",
                humantime::format_duration(self.ws_idle_timeout),
                humantime::format_duration(self.ws_ping_interval)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' defaults are written as text for `--help`; the gateway's `Config::default()`
    /// (used by library callers and tests) must say the same.
    #[test]
    fn node_defaults_are_the_gateways() {
        #[derive(Parser)]
        struct Node {
            #[command(flatten)]
            node: NodeArgs,
        }
        let args = Node::try_parse_from(["sluice"]).unwrap().node;
        let config = gateway::Config::default();
        assert_eq!(args.ws_ping_interval, config.ws_ping_interval);
        assert_eq!(args.ws_idle_timeout, config.ws_idle_timeout);
        assert_eq!(args.sse_heartbeat, config.sse_heartbeat);
        assert_eq!(args.slow_consumer_timeout, config.slow_consumer_timeout);
        assert_eq!(args.retention_margin, config.retention_margin);
        assert_eq!(
            args.webhooks.config(),
            gateway::webhooks::WebhookConfig::default()
        );
        assert_eq!(args.shutdown_grace, config.shutdown_grace);
        assert_eq!(args.change_poll_interval, config.change_poll_interval);
        assert_eq!(args.usage_flush_interval, config.usage_flush_interval);
        assert_eq!(args.token_cache_ttl, config.token_cache_ttl);
        assert_eq!(args.allowed_origins, config.allowed_origins);
        assert_eq!(args.http.http_header_timeout, config.http_header_timeout);
        assert_eq!(args.http.http_idle_timeout, config.http_idle_timeout);
        assert_eq!(args.http.http_body_timeout, config.http_body_timeout);
        assert_eq!(args.http.http_write_timeout, config.http_write_timeout);
        assert_eq!(
            args.http.max_pending_connections,
            config.max_pending_connections
        );
        assert_eq!(
            args.http.max_pending_connections_per_ip,
            config.max_pending_connections_per_ip
        );
        assert_eq!(
            args.http.config(),
            gateway::server::HttpConfig::from(&config)
        );
        assert_eq!(
            args.max_concurrent_feeds
                .unwrap_or_else(gateway::config::default_max_concurrent_feeds),
            config.max_concurrent_feeds
        );
        assert_eq!(args.feed_rate, config.feed_rate);
        assert_eq!(args.feed_burst, config.feed_burst);
        assert_eq!(args.taxii_rate, config.taxii_rate);
        assert_eq!(args.taxii_burst, config.taxii_burst);
        assert_eq!(args.default_validity, config.validity);
        assert_eq!(args.log_max_bytes, sluice_log::memory::DEFAULT_MAX_BYTES);
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("2000000"), Ok(2_000_000));
        assert_eq!(parse_bytes("5 MB"), Ok(5_000_000));
        for bad in [
            "",
            "MiB",
            "12 parsecs",
            "1KiB",
            "-1MiB",
            "99999999999999999999GiB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
