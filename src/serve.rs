//! `sluice up` and `sluice gateway`: wire the roles into one running node.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use billing::{ApiToken, Store};
use gateway::config::JwtKey;
use gateway::slots::{ConnectionSlots, MemorySlots, RedisSlots};
use gateway::upstream::UpstreamConfig;
use gateway::AppState;
use sluice_log::memory::MemoryLog;
use sluice_log::redis::{RedisLog, RedisLogConfig};
use sluice_log::sqlite::{Recovery, SqliteLog, SqliteLogConfig};
use sluice_log::Log;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{CorrelatorArgs, GatewayArgs, LogKind, NodeArgs, UpArgs, WebArgs, WebFlags};
use crate::exit;

/// Connection-cap leases on Redis expire this long after their node stops renewing them.
const SLOT_LEASE_TTL: Duration = Duration::from_secs(15);

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    args.node.check().map_err(exit::config)?;
    let log = match (args.redis.as_deref(), args.log) {
        (Some(_), Some(kind)) => {
            return Err(exit::config(format!(
                "--log {} chooses the embedded log, and --redis makes the log Redis Streams: \
                 give one of them",
                match kind {
                    LogKind::Sqlite => "sqlite",
                    LogKind::Memory => "memory",
                }
            )))
        }
        (Some(url), None) => LogChoice::Redis(url),
        (None, Some(LogKind::Memory)) => LogChoice::Memory,
        (None, _) => LogChoice::Sqlite(args.log_fsync.into()),
    };
    let mut web_config = web_config(
        &args.web,
        args.node.jwt_secret.clone(),
        None,
        args.demo,
        args.node.webhooks.webhook_allow_private,
    )?;
    let store = open_store(&args.node.store.database, &args.node.store.data_dir).await?;
    let jwt_secret = JwtSecret::resolve(args.node.jwt_secret.clone(), &args.node.store.data_dir)?;
    web_config.jwt_secret = Some(web::Secret::new(jwt_secret.value.clone()));
    bootstrap_admin(&store, &args.node.store.data_dir).await?;
    let jwt_key = JwtKey(web_config.stream_jwt_secret().into());
    let node = Node::start(&args.node, log, store, Some(jwt_key)).await?;
    jwt_secret.announce();
    if !args.no_correlator {
        let mut rules = args.correlate.rules.clone();
        if rules.is_empty() {
            rules.push(default_rule(args.demo));
        }
        let config = correlator_config(rules, args.node.retention)?;
        let metrics = correlator::CorrelatorMetrics::default();
        node.state
            .metrics
            .extend(|registry| metrics.register_with(registry));
        node.state.tracker.spawn(correlator::run(
            node.state.log.clone(),
            config,
            metrics,
            node.state.shutdown.clone(),
        ));
    }
    if args.demo {
        let log = node.state.log.clone();
        let shutdown = node.state.shutdown.clone();
        node.state
            .tracker
            .spawn(crate::demo::run(log, args.demo_rate, shutdown));
    }
    log_billing_mode(&web_config);
    let web = web::router(web::AppState::new(node.state.store.clone(), web_config));
    let address = node.listener.local_addr()?;
    tracing::info!(
        "web page at http://{address}/ (sign up there), API docs at http://{address}/docs"
    );
    node.serve(Some(web)).await
}

/// `sluice web`: the page and the account API on their own, on the cluster's account database.
pub async fn web(args: WebArgs) -> anyhow::Result<()> {
    let mut config = web_config(
        &args.web,
        args.jwt_secret.clone(),
        args.gateway_url.clone(),
        false,
        args.webhook_allow_private,
    )?;
    let store = open_store(&args.store.database, &args.store.data_dir).await?;
    let jwt_secret = JwtSecret::resolve(args.jwt_secret.clone(), &args.store.data_dir)?;
    config.jwt_secret = Some(web::Secret::new(jwt_secret.value.clone()));
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|error| exit::config(format!("cannot listen on {}: {error}", args.listen)))?;
    jwt_secret.announce();
    let shutdown = CancellationToken::new();
    crate::signal::cancel_on_signal(&shutdown, "shutting down");
    log_billing_mode(&config);
    let app = web_app(web::AppState::new(store.clone(), config));
    tracing::info!(
        listen = %listener.local_addr()?,
        storage.database = store.backend_name(),
        "sluice web is up: open http://{}/",
        listener.local_addr()?
    );
    // The page has no /metrics: the server's counters go nowhere.
    let metrics = Arc::new(gateway::metrics::Metrics::new());
    let mut server = tokio::spawn(
        gateway::server::Server::new(args.http.config(), metrics).serve(
            listener,
            app,
            shutdown.clone(),
        ),
    );
    tokio::select! {
        joined = &mut server => {
            joined.context("the HTTP server task failed")?.context("the HTTP server failed")?;
        }
        _ = shutdown.cancelled() => {
            // Requests in flight may finish, within the grace period.
            match tokio::time::timeout(args.shutdown_grace, server).await {
                Ok(joined) => joined
                    .context("the HTTP server task failed")?
                    .context("the HTTP server failed")?,
                Err(_) => tracing::warn!(
                    "requests still open after --shutdown-grace; exiting anyway"
                ),
            }
        }
    }
    store.close().await;
    Ok(())
}

/// What `sluice web` serves: the page and the account API, `/healthz` and `/readyz`, and the
/// API's description.
pub(crate) fn web_app(state: web::AppState) -> axum::Router {
    let ready_store = state.store.clone();
    web::router(state)
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || web_readiness(ready_store.clone())),
        )
        .merge(crate::openapi::router())
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(gateway::request_span))
}

/// What a node (`sluice up`, `sluice gateway`) serves: the gateway's API and the API's
/// description (`/openapi.json`, `/docs`), plus `extra` routes (the account and billing API on
/// `up`).
pub(crate) fn node_app(state: AppState, extra: Option<axum::Router>) -> axum::Router {
    let mut app = gateway::router(state).merge(crate::openapi::router());
    if let Some(extra) = extra {
        app = app.merge(extra);
    }
    app
}

/// This node's name in the cluster (the connection list, the webhook leases): its listen
/// address, or with an unspecified one (`0.0.0.0:8080` on every host) the host name and the
/// port. The same across restarts of the node (so it takes its own endpoints back at once) and
/// distinct between the nodes of a cluster; the bound port, so `…:0` gets one per process.
fn node_name(listen: std::net::SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return listen.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", listen.port())
}

/// `sluice web`'s `/readyz`: the account database alone (it has no log).
async fn web_readiness(store: Store) -> gateway::health::ReadyAnswer {
    let database = gateway::health::BackendState::database(&store).await;
    gateway::health::ReadyAnswer::new(None, database)
}

/// The account API's settings from the command line, checked (exit 64 naming the flag).
fn web_config(
    flags: &WebFlags,
    jwt_secret: Option<String>,
    gateway_url: Option<String>,
    demo: bool,
    webhook_allow_private: bool,
) -> anyhow::Result<web::Config> {
    let config = web::Config {
        billing_webhook_secrets: flags.billing_webhook_secret.clone(),
        // The demo is for trying plans out, unless a real provider is configured.
        billing_test_mode: flags.billing_test_mode
            || (demo && flags.billing_webhook_secret.is_empty()),
        billing_checkout_url: flags.billing_checkout_url.clone(),
        jwt_secret: jwt_secret.map(web::Secret::new),
        insecure_cookies: flags.insecure_cookies,
        gateway_url,
        stream_token_ttl: Some(flags.stream_token_ttl),
        webhook_allow_private,
    };
    config.validate().map_err(exit::config)?;
    Ok(config)
}

/// Says how plans change on this deployment (once it is up: a configuration error must stay
/// the only line printed).
fn log_billing_mode(config: &web::Config) {
    if config.test_mode() {
        tracing::warn!(
            "billing test mode: accounts may switch plans themselves without paying (never on a \
             deployment open to strangers)"
        );
    } else if config.billing_webhook_secrets.is_empty() {
        tracing::info!(
            "no payment provider (--billing-webhook-secret): admins change plans; \
             --billing-test-mode lets accounts try plans themselves"
        );
    } else if config.billing_checkout_url.is_none() {
        tracing::warn!(
            "--billing-webhook-secret without --billing-checkout-url: the page cannot send users \
             to pay, so only the provider and admins change plans"
        );
    }
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    args.node.check().map_err(exit::config)?;
    let store = open_store(&args.node.store.database, &args.node.store.data_dir).await?;
    let secret = JwtSecret::resolve(args.node.jwt_secret.clone(), &args.node.store.data_dir)?;
    let jwt_key = Some(JwtKey(secret.value.clone().into_bytes().into()));
    let node = Node::start(&args.node, LogChoice::Redis(&args.redis), store, jwt_key).await?;
    secret.announce();
    node.serve(None).await
}

/// The default rule (docs/protocol.md §7.6); the demo decides at once instead of waiting out an
/// hour of lateness.
fn default_rule(demo: bool) -> domain::correlation::Rule {
    let rule = domain::correlation::Rule::default();
    if demo {
        domain::correlation::Rule {
            lateness: std::time::Duration::ZERO,
            ..rule
        }
    } else {
        rule
    }
}

/// Checks the rules together with the log's retention: names must be unique (they name the
/// emissions), and a restart can only rebuild what retention kept.
fn correlator_config(
    rules: Vec<domain::correlation::Rule>,
    retention: Duration,
) -> anyhow::Result<correlator::Config> {
    let mut names = std::collections::HashSet::new();
    for rule in &rules {
        if !names.insert(rule.name.as_str()) {
            return Err(exit::config(format!(
                "--correlate: two rules are named `{}`; give each its own name",
                rule.name
            )));
        }
        // A restart replays only what the log kept: a correlation whose oldest reports are
        // gone may be missed (never duplicated). With the defaults (24 h and 24 h) that is the
        // last hour's lateness at the edge; with a window longer than the retention, much more.
        if retention < rule.window {
            tracing::warn!(
                rule = %rule.name,
                "--retention is shorter than the rule's window: after a restart the correlator \
                 cannot see a whole window and will miss correlations until it has"
            );
        }
    }
    Ok(correlator::Config::new(rules, retention))
}

/// `sluice correlator`: the correlator alone, on the cluster's Redis log. Replicas may run side
/// by side: each decides the same emissions and the log appends each once.
pub async fn correlator(args: CorrelatorArgs) -> anyhow::Result<()> {
    check_redis_url(&args.redis)?;
    let mut rules = args.correlate.rules;
    if rules.is_empty() {
        rules.push(default_rule(false));
    }
    let config = correlator_config(rules, args.retention)?;
    let log = RedisLog::connect(RedisLogConfig {
        url: args.redis.clone(),
        key_prefix: args.redis_prefix.clone(),
        // The gateways trim the shared log; the correlator only reads it (no cut-off of its own).
        retention: Duration::MAX,
    })
    .await
    .context("--redis: the log backend is unreachable (is Redis running there?)")?;
    let shutdown = CancellationToken::new();
    crate::signal::cancel_on_signal(&shutdown, "shutting down the correlator");
    correlator::run(
        log,
        config,
        correlator::CorrelatorMetrics::default(),
        shutdown,
    )
    .await;
    Ok(())
}

/// `--redis` must be a Redis URL (exit 64 otherwise), checked before anything connects.
fn check_redis_url(url: &str) -> anyhow::Result<()> {
    redis::Client::open(url).map(drop).map_err(|error| {
        exit::config(format!(
            "--redis `{url}` is not a Redis URL ({error}); use redis://host:port/"
        ))
    })
}

/// Opens and migrates the account database.
pub async fn open_store(database: &Option<String>, data_dir: &Path) -> anyhow::Result<Store> {
    if let Some(url) = database {
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return Err(exit::config(format!(
                "--database `{url}` is not supported: use postgres://user:pass@host/db or sqlite://path"
            )));
        }
    }
    let store = Store::open(database.as_deref(), data_dir)
        .await
        .with_context(|| match database {
            Some(_) => "cannot open the database given by --database".to_owned(),
            None => format!(
                "cannot open the SQLite database in --data-dir {}",
                data_dir.display()
            ),
        })?;
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

/// First start: create the `admin` account and print its token once (also written to
/// `<data-dir>/admin.token`, mode 0600). `SLUICE_ADMIN_TOKEN` may fix the token for scripts.
async fn bootstrap_admin(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    let fixed = match std::env::var("SLUICE_ADMIN_TOKEN") {
        Ok(text) if !text.is_empty() => Some(ApiToken::parse(&text).map_err(|_| {
            exit::config(
                "SLUICE_ADMIN_TOKEN is not a valid Sluice token: use one printed by `sluice tokens create` \
                 (slc_…), or unset it to have one generated",
            )
        })?),
        _ => None,
    };
    let Some(token) = store.bootstrap_admin(fixed.as_ref()).await? else {
        let path = data_dir.join("admin.token");
        if fixed.is_none() && path.exists() {
            tracing::info!("the admin token is in {}", path.display());
        }
        return Ok(());
    };
    let path = data_dir.join("admin.token");
    write_secret(&path, token.expose())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("Created account `admin` (plan enterprise). Its API token, shown once:");
    println!();
    println!("    {}", token.expose());
    println!();
    println!("It is also in {} (mode 0600).", path.display());
    Ok(())
}

/// Where a node keeps its stream-token key when `--jwt-secret` is not given.
const JWT_SECRET_FILE: &str = "jwt.secret";

/// The key of the page's stream tokens: `--jwt-secret`, else `<data-dir>/jwt.secret`, made at
/// first start (32 random bytes as hex, mode 0600), so the roles on one host share it. No file
/// of the repository carries one: a shipped default would let anyone sign tokens.
struct JwtSecret {
    value: String,
    /// Made by this start, here.
    made: Option<std::path::PathBuf>,
}

impl JwtSecret {
    fn resolve(flag: Option<String>, data_dir: &Path) -> anyhow::Result<JwtSecret> {
        if let Some(value) = flag.filter(|secret| !secret.is_empty()) {
            web::check_jwt_secret(&value).map_err(exit::config)?;
            return Ok(JwtSecret { value, made: None });
        }
        let path = data_dir.join(JWT_SECRET_FILE);
        let read = |path: &Path| -> anyhow::Result<JwtSecret> {
            let value = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .trim()
                .to_owned();
            web::check_jwt_secret(&value)
                .map_err(|error| exit::config(format!("{}: {error}", path.display())))?;
            Ok(JwtSecret { value, made: None })
        };
        if path.exists() {
            return read(&path);
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create --data-dir {}", data_dir.display()))?;
        let value: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        match write_secret_new(&path, &value) {
            Ok(()) => Ok(JwtSecret {
                value,
                made: Some(path),
            }),
            // Another role on this host made it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
            Err(error) => Err(error).with_context(|| format!("cannot write {}", path.display())),
        }
    }

    /// Says where a key made by this start is, once the node is up (a configuration error must
    /// stay the only line printed).
    fn announce(&self) {
        if let Some(path) = &self.made {
            tracing::info!(
                "made the stream-token key {}; nodes on other hosts need the same --jwt-secret",
                path.display()
            );
        }
    }
}

/// Writes a new secret file (mode 0600); fails if it exists.
fn write_secret_new(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")
}

struct Node {
    state: AppState,
    listener: TcpListener,
    /// The SQLite log, closed once the node has drained.
    sqlite: Option<Arc<SqliteLog>>,
}

/// Where a node's log is.
enum LogChoice<'a> {
    /// The cluster's Redis, at this URL.
    Redis(&'a str),
    /// `<data-dir>/log.db`.
    Sqlite(sluice_log::sqlite::Fsync),
    Memory,
}

/// Where a node keeps its log and connection counts: in process, or on the cluster's Redis.
struct Backends {
    log: Arc<dyn Log>,
    slots: Arc<dyn ConnectionSlots>,
    /// Redis leases, renewed by a background task while the node runs.
    redis_slots: Option<Arc<RedisSlots>>,
    /// The trusted Redis pub/sub the node subscribes to.
    upstream: Option<UpstreamConfig>,
    sqlite: Option<Arc<SqliteLog>>,
    /// The cluster's view of open streams, on Redis.
    cluster: Option<Arc<gateway::cluster::ClusterView>>,
}

impl Backends {
    fn memory(args: &NodeArgs) -> Backends {
        Backends {
            log: MemoryLog::with_max_bytes(
                args.retention,
                args.log_max_entries,
                args.log_max_bytes,
            ),
            slots: Arc::new(MemorySlots::default()),
            redis_slots: None,
            upstream: None,
            sqlite: None,
            cluster: None,
        }
    }

    async fn sqlite(args: &NodeArgs, fsync: sluice_log::sqlite::Fsync) -> anyhow::Result<Backends> {
        let path = args.store.data_dir.join(sluice_log::sqlite::FILE_NAME);
        let started = std::time::Instant::now();
        let log = SqliteLog::open(SqliteLogConfig {
            path: path.clone(),
            retention: args.retention,
            max_entries: args.log_max_entries,
            max_bytes: args.log_max_bytes,
            fsync,
        })
        .await?;
        let bounds = log.bounds().await?;
        let what = match log.recovery() {
            Recovery::Created => "created",
            Recovery::Resumed => "resumed",
            Recovery::CutCorruptTail { .. } => "recovered (damaged tail cut, new epoch)",
            Recovery::ReplacedCorruptFile { .. } => "recreated (damaged file moved aside)",
            Recovery::NewEpochAfterUnsyncedCrash => {
                tracing::warn!(
                    "the machine went down while the log was open with --log-fsync off: the \
                     newest acknowledged entries may be lost, so the log goes on under a new \
                     epoch (clients are told `reset`)"
                );
                "resumed under a new epoch"
            }
        };
        tracing::info!(
            log.path = %path.display(),
            log.entries = bounds.len,
            log.epoch = %bounds.epoch,
            log.fsync = fsync.name(),
            "log {what}: {} entries in {} ({} ms)",
            bounds.len,
            path.display(),
            started.elapsed().as_millis()
        );
        Ok(Backends {
            log: log.clone(),
            slots: Arc::new(MemorySlots::default()),
            redis_slots: None,
            upstream: None,
            sqlite: Some(log),
            cluster: None,
        })
    }

    async fn redis(args: &NodeArgs, url: &str) -> anyhow::Result<Backends> {
        check_redis_url(url)?;
        let log = RedisLog::connect(RedisLogConfig {
            url: url.to_owned(),
            key_prefix: args.redis_prefix.clone(),
            retention: args.retention,
        })
        .await
        .context("--redis: the log backend is unreachable (is Redis running there?)")?;
        let slots = RedisSlots::new(log.commands(), &args.redis_prefix, SLOT_LEASE_TTL);
        let commands = log.commands();
        Ok(Backends {
            log,
            slots: slots.clone(),
            redis_slots: Some(slots),
            upstream: Some(UpstreamConfig {
                redis_url: url.to_owned(),
                channels: args.upstream_channels.clone(),
                patterns: args.upstream_patterns.clone(),
            }),
            sqlite: None,
            cluster: Some(Arc::new(gateway::cluster::ClusterView::new(
                commands,
                redis::Client::open(url)?,
                &args.redis_prefix,
            ))),
        })
    }
}

impl Node {
    /// Opens the backends, then the port: a node that cannot reach Redis does not take it.
    async fn start(
        args: &NodeArgs,
        log: LogChoice<'_>,
        store: Store,
        stream_jwt_key: Option<JwtKey>,
    ) -> anyhow::Result<Node> {
        let backends = match log {
            LogChoice::Redis(url) => Backends::redis(args, url).await?,
            LogChoice::Sqlite(fsync) => Backends::sqlite(args, fsync).await?,
            LogChoice::Memory => Backends::memory(args),
        };
        let listener = TcpListener::bind(args.listen).await.map_err(|error| {
            exit::config(format!(
                "--listen {}: cannot listen there ({error})",
                args.listen
            ))
        })?;
        let config = gateway::Config {
            ws_ping_interval: args.ws_ping_interval,
            ws_idle_timeout: args.ws_idle_timeout,
            sse_heartbeat: args.sse_heartbeat,
            slow_consumer_timeout: args.slow_consumer_timeout,
            shutdown_grace: args.shutdown_grace,
            change_poll_interval: args.change_poll_interval,
            usage_flush_interval: args.usage_flush_interval,
            stream_jwt_key,
            token_cache_ttl: args.token_cache_ttl,
            allowed_origins: args.allowed_origins.clone(),
            http_header_timeout: args.http.http_header_timeout,
            http_idle_timeout: args.http.http_idle_timeout,
            http_body_timeout: args.http.http_body_timeout,
            http_write_timeout: args.http.http_write_timeout,
            max_pending_connections: args.http.max_pending_connections,
            max_pending_connections_per_ip: args.http.max_pending_connections_per_ip,
            max_concurrent_feeds: args
                .max_concurrent_feeds
                .unwrap_or_else(gateway::config::default_max_concurrent_feeds),
            feed_rate: args.feed_rate,
            feed_burst: args.feed_burst,
            taxii_rate: args.taxii_rate,
            taxii_burst: args.taxii_burst,
            validity: args.default_validity,
            retention_margin: args.retention_margin,
            node: node_name(listener.local_addr()?),
            webhooks: args.webhooks.config(),
            ..gateway::Config::default()
        };
        let mut state = AppState::new(
            config,
            backends.log,
            backends.slots,
            store,
            CancellationToken::new(),
        );
        state.cluster = backends.cluster;
        gateway::spawn_background(&state, backends.upstream);
        if let Some(redis_slots) = backends.redis_slots {
            state
                .tracker
                .spawn(redis_slots.renew(state.shutdown.clone()));
        }
        let address = listener.local_addr()?;
        tracing::info!(
            listen = %address,
            storage.log = state.log.backend_name(),
            storage.database = state.store.backend_name(),
            validity.defaults = %state.config.validity,
            "sluice is up: stream at ws://{address}/v1/stream (WebSocket) or http://{address}/v1/stream (SSE)"
        );
        Ok(Node {
            state,
            listener,
            sqlite: backends.sqlite,
        })
    }

    /// Serves [`node_app`] until shutdown.
    async fn serve(self, extra: Option<axum::Router>) -> anyhow::Result<()> {
        crate::signal::cancel_on_signal(
            &self.state.shutdown,
            "shutting down: closing streams with 1001 and draining",
        );
        let app = node_app(self.state.clone(), extra);
        let served = gateway::serve(self.listener, app, self.state).await;
        if let Some(log) = self.sqlite {
            log.close().await;
        }
        served
    }
}
