//! The Sluice gateway: ingest, and fan-out of the log to WebSocket and SSE subscribers.
//!
//! Shape: [`Config`], [`AppState`] (cheap to clone, handles inside), [`router`] for in-process
//! tests, [`spawn_background`] for the node's long-running tasks, and [`serve`] to run on a
//! listener until shutdown, then drain.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod control;
pub mod enforcement;
pub mod error;
pub mod feed;
pub mod firehose;
pub mod frames;
pub mod health;
pub mod hub;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod server;
pub mod slots;
pub mod stream;
pub mod subscription;
pub mod taxii;
pub mod token_cache;
pub mod upstream;
pub mod usage;
pub mod webhooks;
pub mod wire;
pub mod withdraw;

use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use billing::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

pub use config::Config;
use control::Registry;
use hub::Hub;
use metrics::Metrics;
pub use openapi::ApiDoc;
use slots::ConnectionSlots;
use sluice_log::Log;
use upstream::UpstreamConfig;
use usage::UsageMeter;

/// Everything a request handler needs. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub log: Arc<dyn Log>,
    pub hub: Hub,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Connection caps per account (in process, or shared through Redis).
    pub slots: Arc<dyn ConnectionSlots>,
    /// This node's open streams, for live plan changes and revocations.
    pub registry: Arc<Registry>,
    /// Authenticated API tokens, kept fresh by the change log.
    pub tokens: Arc<token_cache::TokenCache>,
    pub usage: Arc<UsageMeter>,
    /// Feeds' bounds: scans at once on this node, requests per account.
    pub feeds: Arc<feed::limit::FeedLimits>,
    /// Which log entries are the first and last versions of each STIX object (TAXII).
    pub taxii: Arc<taxii::VersionIndex>,
    /// Cancelled when the node shuts down; every stream watches it.
    pub shutdown: CancellationToken,
    /// Tracks every connection task so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// The other nodes' streams and the way to close them, through Redis (`None`: one node).
    pub cluster: Option<Arc<cluster::ClusterView>>,
}

impl AppState {
    pub fn new(
        config: Config,
        log: Arc<dyn Log>,
        slots: Arc<dyn ConnectionSlots>,
        store: Store,
        shutdown: CancellationToken,
    ) -> Self {
        let hub = Hub::new(config.hub_capacity);
        let tokens = Arc::new(token_cache::TokenCache::new(config.token_cache_ttl));
        let feeds = Arc::new(
            feed::limit::FeedLimits::new(
                config.max_concurrent_feeds,
                config.feed_rate,
                config.feed_burst,
            )
            .with_page_rate(config.taxii_rate, config.taxii_burst),
        );
        AppState {
            config: Arc::new(config),
            log,
            hub,
            store,
            metrics: Arc::new(Metrics::new()),
            slots,
            registry: Arc::default(),
            tokens,
            usage: Arc::default(),
            feeds,
            taxii: Arc::default(),
            shutdown,
            tracker: TaskTracker::new(),
            cluster: None,
        }
    }
}

/// The gateway's HTTP API. Every route here is described in [`ApiDoc`] (a test of the binary
/// holds the two together).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/indicators",
            post(ingest::publish)
                .layer(DefaultBodyLimit::max(ingest::BODY_LIMIT))
                .get(feed::recent),
        )
        .route("/v1/indicators/{id}", delete(withdraw::withdraw))
        .route("/indicators", get(feed::cif_indicators))
        .route("/ping", get(feed::ping))
        .route("/v1/lists/{list}", get(feed::lists::list))
        .route("/feed", get(feed::cif3::feed))
        .route("/v1/stream", get(stream::stream))
        .route("/firehose", get(firehose::firehose))
        .route("/cif/firehose", get(firehose::cif_firehose))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/v1/admin/connections",
            get(connections::list).delete(connections::close_account),
        )
        .route("/v1/admin/connections/{id}", delete(connections::close))
        .merge(taxii::routes())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// One span per request, naming the path only: query strings may carry `access_token`, and
/// secrets never reach the logs.
pub fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.path = %request.uri().path()
    )
}

/// Starts this node's long-running tasks: the live reader, the change-log poller, the usage
/// meter's flusher, and the Redis upstream subscriber when configured.
pub fn spawn_background(state: &AppState, upstream: Option<UpstreamConfig>) {
    let hub = state.hub.clone();
    state.tracker.spawn(hub.run(
        state.log.clone(),
        state.metrics.clone(),
        state.shutdown.clone(),
    ));
    state.tracker.spawn(control::poll_changes(
        state.store.clone(),
        state.registry.clone(),
        state.tokens.clone(),
        state.metrics.clone(),
        state.config.change_poll_interval,
        state.shutdown.clone(),
    ));
    state.tracker.spawn(connections::observe_lag(state.clone()));
    state.tracker.spawn(webhooks::run(state.clone()));
    state.tracker.spawn(cluster::run(state.clone()));
    state.tracker.spawn(state.usage.clone().run(
        state.store.clone(),
        state.config.usage_flush_interval,
        state.shutdown.clone(),
    ));
    if let Some(upstream) = upstream {
        state.tracker.spawn(upstream::run(
            upstream,
            state.log.clone(),
            state.taxii.clone(),
            state.metrics.clone(),
            state.shutdown.clone(),
        ));
    }
}

/// Serves `app` on `listener` (with the deadlines and caps of [`server`]) until
/// `state.shutdown` is cancelled, then drains: streams get their close frame (1001 with the last
/// cursor) and every tracked task gets `shutdown_grace` to finish.
pub async fn serve(listener: TcpListener, app: Router, state: AppState) -> anyhow::Result<()> {
    let shutdown = state.shutdown.clone();
    let server = server::Server::new(
        server::HttpConfig::from(state.config.as_ref()),
        state.metrics.clone(),
    )
    .serve(listener, app, shutdown.clone());
    let server = tokio::spawn(server);
    shutdown.cancelled().await;
    let grace = state.config.shutdown_grace;
    state.tracker.close();
    if tokio::time::timeout(grace, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "connections still open after the grace period; closing them"
        );
    }
    // What the streams metered while draining: bounded, so a database outage cannot hold exit.
    if tokio::time::timeout(grace, state.usage.flush(&state.store))
        .await
        .is_err()
    {
        tracing::warn!("usage of the last seconds could not be written before exit");
    }
    match tokio::time::timeout(grace, server).await {
        Ok(joined) => joined
            .context("the HTTP server task failed")?
            .context("the HTTP server failed")?,
        Err(_) => {
            tracing::warn!("HTTP connections still open after the grace period; exiting anyway")
        }
    }
    Ok(())
}
