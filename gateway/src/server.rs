//! The HTTP accept loop of every serving role (`sluice up`, `sluice gateway`, `sluice web`):
//! hyper's HTTP/1 with upgrades (as `axum::serve` runs it), plus the deadlines and caps that
//! `axum::serve` does not have (docs/protocol.md §1.1).
//!
//! - **Header** (`header_timeout`): a request head must have arrived within it, counted from
//!   the accept for a connection's first request and from the first byte of the next one on a
//!   keep-alive connection. The connection is closed.
//! - **Idle** (`idle_timeout`): a keep-alive connection with no request in flight and no byte
//!   of a next one is closed after it.
//! - **Body** (`body_timeout`): a request body must have arrived within it of the handler's
//!   first read: 408 with `Connection: close`.
//! - **Write** (`write_timeout`): a write to the socket that makes no progress this long fails,
//!   which closes the connection; the deadline runs only while a write is pending, so a quiet
//!   stream (WebSocket or SSE) that has nothing to send is never closed by it.
//! - **Pending caps**: a connection counts as *pending* from its accept until a request on it
//!   authenticates ([`authenticated`], called by `auth::authenticate`) or it closes. Over
//!   `max_pending_connections` in all, or `max_pending_connections_per_ip` from one client
//!   address (IPv6: one /64), a new connection is closed at once, before anything is read, and
//!   counted in `sluice_connections_refused_total{reason}`.
//!
//! None of the request deadlines runs while a response is in flight (an SSE body may last for
//! days) nor after a WebSocket upgrade: streams are bounded by their own slow-consumer
//! timeout, heartbeats and pings.
//!
//! hyper's own `header_read_timeout` (with a `TokioTimer`) is not used: hyper starts it as soon
//! as it waits for the next head, so an idle keep-alive connection would be closed after the
//! header timeout and the idle timeout could never be longer. Each connection's task keeps the
//! one deadline its state calls for instead (see [`Activity`]).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_io_timeout::TimeoutWriter;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::{Metrics, ReasonLabels};
use crate::wire::ErrorBody;

/// The server's deadlines and caps (flags `--http-*-timeout`, `--max-pending-connections*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_pending_connections: usize,
    pub max_pending_connections_per_ip: usize,
}

impl From<&crate::Config> for HttpConfig {
    fn from(config: &crate::Config) -> Self {
        HttpConfig {
            header_timeout: config.http_header_timeout,
            idle_timeout: config.http_idle_timeout,
            body_timeout: config.http_body_timeout,
            write_timeout: config.http_write_timeout,
            max_pending_connections: config.max_pending_connections,
            max_pending_connections_per_ip: config.max_pending_connections_per_ip,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig::from(&crate::Config::default())
    }
}

/// Serves a router on a listener with [`HttpConfig`]'s deadlines and caps.
pub struct Server {
    config: Arc<HttpConfig>,
    metrics: Arc<Metrics>,
    pending: Arc<PendingLimits>,
}

impl Server {
    /// `metrics` receives the refusals and timeouts (and the pending gauge).
    pub fn new(config: HttpConfig, metrics: Arc<Metrics>) -> Server {
        let pending = PendingLimits::new(
            config.max_pending_connections,
            config.max_pending_connections_per_ip,
            metrics.pending_connections.clone(),
        );
        Server {
            config: Arc::new(config),
            metrics,
            pending,
        }
    }

    /// Accepts until `shutdown` is cancelled, then stops accepting, lets every request in
    /// flight finish (connections idle or still sending a head are closed at once) and returns
    /// when every connection has closed. Upgraded connections (WebSockets) are no longer the
    /// server's: their tasks watch the shutdown themselves.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: Router,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Most likely out of file descriptors: wait for some to close (as
                    // axum::serve does), still answering the shutdown.
                    tracing::error!(%error, "accept error");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            };
            limit_unsent(&stream);
            let pending = match self.pending.admit(remote.ip()) {
                Ok(pending) => pending,
                Err(refusal) => {
                    self.metrics
                        .connections_refused
                        .get_or_create(&ReasonLabels {
                            reason: refusal.reason(),
                        })
                        .inc();
                    tracing::debug!(
                        client = %remote.ip(),
                        reason = refusal.reason(),
                        "refused a connection: too many connections that have not authenticated"
                    );
                    drop(stream);
                    continue;
                }
            };
            connections.spawn(connection(
                stream,
                remote,
                pending,
                app.clone(),
                self.config.clone(),
                self.metrics.clone(),
                shutdown.clone(),
            ));
        }
        drop(listener);
        connections.close();
        connections.wait().await;
        Ok(())
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, until it closes, is upgraded, or misses a deadline.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    pending: PendingGuard,
    app: Router,
    config: Arc<HttpConfig>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let mut io = TimeoutWriter::new(Watched {
        stream,
        activity: activity.clone(),
    });
    io.set_timeout(Some(config.write_timeout));
    let io = TokioIo::new(Box::pin(io));
    let handle = Arc::new(ConnectionHandle {
        authenticated: AtomicBool::new(false),
        pending: Mutex::new(Some(pending)),
    });
    let service = {
        let activity = activity.clone();
        let config = config.clone();
        let metrics = metrics.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = activity.request_started();
            let app = app.clone();
            let handle = handle.clone();
            let body_timeout = config.body_timeout;
            let metrics = metrics.clone();
            async move {
                let expired = Arc::new(AtomicBool::new(false));
                let mut request = request.map(|body| {
                    if body.is_end_stream() {
                        Body::new(body)
                    } else {
                        Body::new(DeadlineBody::new(body, body_timeout, expired.clone()))
                    }
                });
                request.extensions_mut().insert(ConnectInfo(remote));
                let response = CONNECTION
                    .scope(handle, app.oneshot(request))
                    .await
                    .unwrap_or_else(|never| match never {});
                let response = if expired.load(Ordering::Relaxed) {
                    metrics
                        .http_timeouts
                        .get_or_create(&ReasonLabels { reason: "body" })
                        .inc();
                    body_timed_out(body_timeout)
                } else {
                    response
                };
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let builder = Builder::new(TokioExecutor::new());
    let mut conn = std::pin::pin!(builder.serve_connection_with_upgrades(io, service));
    let mut draining = false;
    let failed = loop {
        let deadline = activity.deadline(&config);
        tokio::select! {
            result = conn.as_mut() => break result.err(),
            () = shutdown.cancelled(), if !draining => {
                if !activity.busy() {
                    break None;
                }
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline) => {
                if let Some(reason) = activity.expired(&config) {
                    metrics.http_timeouts.get_or_create(&ReasonLabels { reason }).inc();
                    tracing::debug!(client = %remote, reason, "closed a connection at its deadline");
                    break None;
                }
            }
        }
    };
    activity.close();
    if let Some(error) = failed {
        if timed_out(error.as_ref()) {
            metrics
                .http_timeouts
                .get_or_create(&ReasonLabels { reason: "write" })
                .inc();
        }
        tracing::debug!(client = %remote, error = %error, "connection ended with an error");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether `error` (or what caused it) is an I/O time-out: the write deadline.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error
            .downcast_ref::<io::Error>()
            .is_some_and(|error| error.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = error.source();
    }
    false
}

fn body_timed_out(timeout: Duration) -> Response<Body> {
    let message = format!(
        "the request body did not arrive within {timeout:?} (--http-body-timeout); send it \
         faster or in smaller requests"
    );
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        Json(ErrorBody::new(message.as_str())),
    )
        .into_response()
}

tokio::task_local! {
    /// The connection serving the request being handled (set around each request's future).
    static CONNECTION: Arc<ConnectionHandle>;
}

/// What a request may tell its connection.
struct ConnectionHandle {
    authenticated: AtomicBool,
    /// Held while the connection counts against the pending caps.
    pending: Mutex<Option<PendingGuard>>,
}

/// Marks the connection serving the current request as authenticated: it no longer counts
/// against the pending caps. Outside a connection of a [`Server`] (a router called in process)
/// it does nothing.
pub fn authenticated() {
    let released = CONNECTION.try_with(|handle| {
        if handle.authenticated.swap(true, Ordering::Relaxed) {
            return None;
        }
        handle
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    });
    // Dropped here, outside the connection's lock.
    drop(released);
}

/// Where a connection is, for its deadlines. Written by the socket's reads, the service and
/// the response bodies; read by the connection's task, which keeps one timer.
struct Activity {
    phase: Mutex<Phase>,
    /// Whether the phase is `Idle`: only then does a read change anything (a cheap check on
    /// every read, also after an upgrade).
    idle: AtomicBool,
    /// Told when a deadline comes nearer (idle → head, busy → idle).
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head that began (or, for the first request, for the accept) at
    /// `since`.
    Head { since: Instant },
    /// No request in flight, nothing of a next one read, since `since`.
    Idle { since: Instant },
    /// Requests whose responses are not finished.
    Busy { requests: usize },
    /// The connection's task is over (closed or upgraded).
    Closed,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            idle: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_read(&self) {
        if !self.idle.load(Ordering::Relaxed) {
            return;
        }
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
            };
            self.idle.store(false, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            Phase::Closed => Phase::Closed,
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        };
        self.idle.store(false, Ordering::Relaxed);
        InFlight {
            activity: self.clone(),
        }
    }

    fn request_finished(&self) {
        let mut phase = self.phase();
        if let Phase::Busy { requests } = *phase {
            if requests > 1 {
                *phase = Phase::Busy {
                    requests: requests - 1,
                };
            } else {
                *phase = Phase::Idle {
                    since: Instant::now(),
                };
                self.idle.store(true, Ordering::Relaxed);
                self.changed.notify_one();
            }
        }
    }

    fn busy(&self) -> bool {
        matches!(*self.phase(), Phase::Busy { .. })
    }

    fn close(&self) {
        *self.phase() = Phase::Closed;
        self.idle.store(false, Ordering::Relaxed);
    }

    /// When the current phase's deadline falls, and which deadline it is.
    fn due(&self, config: &HttpConfig) -> Option<(Instant, &'static str)> {
        match *self.phase() {
            Phase::Head { since } => Some((since + config.header_timeout, "header")),
            Phase::Idle { since } => Some((since + config.idle_timeout, "idle")),
            Phase::Busy { .. } | Phase::Closed => None,
        }
    }

    fn deadline(&self, config: &HttpConfig) -> Option<Instant> {
        self.due(config).map(|(at, _)| at)
    }

    /// The deadline that has passed, if one has (the phase may have moved meanwhile).
    fn expired(&self, config: &HttpConfig) -> Option<&'static str> {
        self.due(config)
            .filter(|(at, _)| *at <= Instant::now())
            .map(|(_, reason)| reason)
    }
}

/// A request in flight, until its response body is finished or dropped.
struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.request_finished();
    }
}

/// A response body that keeps its request in flight until hyper has written (or dropped) it.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The request body did not arrive within `--http-body-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

/// A request body that must have arrived `timeout` after it is first read: later, it fails
/// (and sets `expired`, which turns the response into a 408).
struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration, expired: Arc<AtomicBool>) -> Self {
        DeadlineBody {
            inner,
            timeout,
            deadline: None,
            expired,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.expired.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyTimeout(this.timeout).into())));
        }
        let timeout = this.timeout;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimeout(timeout).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The accepted socket, telling [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts of connections that have not authenticated, in all and per client.
pub struct PendingLimits {
    max_total: usize,
    max_per_client: usize,
    counts: Mutex<PendingCounts>,
    gauge: Gauge,
}

#[derive(Default)]
struct PendingCounts {
    total: usize,
    /// Only clients with a pending connection: an entry goes when its count reaches zero.
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection was refused at accept (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-pending-connections`.
    Total,
    /// `--max-pending-connections-per-ip`.
    PerClient,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Total => "pending_total",
            Refusal::PerClient => "pending_per_ip",
        }
    }
}

impl PendingLimits {
    pub fn new(max_total: usize, max_per_client: usize, gauge: Gauge) -> Arc<PendingLimits> {
        Arc::new(PendingLimits {
            max_total,
            max_per_client,
            counts: Mutex::default(),
            gauge,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, PendingCounts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a new connection from `ip` as pending, unless a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PendingGuard, Refusal> {
        let client = client_key(ip);
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let count = counts.per_client.get(&client).copied().unwrap_or(0);
        if count >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        counts.per_client.insert(client, count + 1);
        counts.total += 1;
        self.gauge.set(counts.total as i64);
        Ok(PendingGuard {
            limits: self.clone(),
            client,
        })
    }

    /// Pending connections in all, and clients with at least one.
    pub fn counts_now(&self) -> (usize, usize) {
        let counts = self.counts();
        (counts.total, counts.per_client.len())
    }
}

/// One pending connection; dropping it (authenticated, or closed) uncounts it.
pub struct PendingGuard {
    limits: Arc<PendingLimits>,
    client: IpAddr,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Entry::Occupied(mut entry) = counts.per_client.entry(self.client) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
        self.limits.gauge.set(counts.total as i64);
    }
}

/// The client a per-IP cap counts: the IPv4 address (also when mapped into IPv6), or the IPv6
/// /64 (one site's allocation: a host can take any address in it).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Unsent bytes a connection may leave in the kernel (`TCP_NOTSENT_LOWAT`). Without a bound, a
/// client that has stopped reading keeps taking frames until the kernel's autotuned send buffer
/// is full, and the node spends what it costs to write them, for nothing, while the readers that
/// keep up wait (RELIABILITY.md, stalled readers). Data in flight to a reader that keeps up is
/// not counted, so fast links are not held back. 4 KiB: at 16 KiB, 10,000 readers stalling at
/// once cost the healthy 2.45× their p99 while the stalled ones took their first frames; at
/// 4 KiB 1.4–1.8× (RELIABILITY.md, runs 16–19). A bulk download wakes its writer every 4 KiB,
/// a few microseconds each.
const MAX_UNSENT_BYTES: u32 = 4 * 1024;

fn limit_unsent(stream: &tokio::net::TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(MAX_UNSENT_BYTES) {
        tracing::debug!(%error, "cannot bound the connection's unsent bytes");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn limits(total: usize, per_client: usize) -> Arc<PendingLimits> {
        PendingLimits::new(total, per_client, Gauge::default())
    }

    #[test]
    fn per_client_cap_refuses_and_forgets_clients_at_zero() {
        let limits = limits(10, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::PerClient));
        let other = limits.admit(b).unwrap();
        assert_eq!(limits.counts_now(), (3, 2));
        drop(first);
        let third = limits.admit(a).unwrap();
        drop((second, third, other));
        assert_eq!(
            limits.counts_now(),
            (0, 0),
            "no entry is kept for a client at zero"
        );
    }

    #[test]
    fn total_cap_refuses_every_client() {
        let limits = limits(2, 2);
        let _held = [
            limits.admit("192.0.2.1".parse().unwrap()).unwrap(),
            limits.admit("192.0.2.2".parse().unwrap()).unwrap(),
        ];
        assert_eq!(
            limits.admit("192.0.2.3".parse().unwrap()).err(),
            Some(Refusal::Total)
        );
        assert_eq!(limits.counts_now(), (2, 2));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = limits(10, 1);
        let _held = limits.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("2001:db8:1:2:ffff::9".parse().unwrap()).err(),
            Some(Refusal::PerClient)
        );
        let _other = limits.admit("2001:db8:1:3::1".parse().unwrap()).unwrap();
        let _v4 = limits.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("::ffff:192.0.2.1".parse().unwrap()).err(),
            Some(Refusal::PerClient)
        );
    }

    #[test]
    fn authenticated_outside_a_server_does_nothing() {
        authenticated();
    }

    /// The write deadline is an inactivity deadline on pending writes: a socket nobody reads
    /// fails its write, a quiet one with nothing to write is left alone.
    #[tokio::test]
    async fn write_deadline_runs_only_while_a_write_is_pending() {
        let (server, _client) = tokio::io::duplex(16);
        let mut writer = Box::pin({
            let mut writer = TimeoutWriter::new(server);
            writer.set_timeout(Some(Duration::from_millis(100)));
            writer
        });
        // Quiet for longer than the deadline: nothing pending, nothing fails.
        tokio::time::sleep(Duration::from_millis(500)).await;
        writer.write_all(b"0123456789abcdef").await.unwrap();
        // Now the peer reads nothing: the next write cannot progress and times out.
        let error = writer.write_all(b"more").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
