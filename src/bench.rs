//! `sluice bench`: a load tool for a running gateway. Opens many WebSocket or SSE subscribers,
//! publishes paced indicators into the Redis upstream with an embedded send timestamp, and
//! reports deliveries, loss, latency percentiles (hdrhistogram) and the gateway's CPU and memory
//! read from /proc. It measures; it asserts nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use domain::Frame;
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::cli::{BenchArgs, Transport};

const CONNECT_CONCURRENCY: usize = 64;
const LATENCY_FIELD: &str = "\"bench_sent_us\":";
/// Each run tags its messages, so frames from an earlier run still in flight are not counted.
const RUN_FIELD: &str = "\"bench_run\":\"";

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    announced_drops: AtomicU64,
    ready: AtomicU64,
    failed: AtomicU64,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(count) = args.handshakes {
        return handshakes(&args, count).await;
    }
    let counters = Arc::new(Counters::default());
    let run_id = sluice_log::new_epoch();
    let stop = CancellationToken::new();
    // Memory is compared from before the connections; CPU from after they are all open, so
    // handshakes do not count as delivery cost.
    let before_connecting = args.gateway_pid.map(ProcessSample::read).transpose()?;
    let clients = connect_all(&args, &run_id, &counters, &stop).await;
    let ready = counters.ready.load(Ordering::Relaxed);
    if args.idle {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let (Some(pid), Some(before)) = (args.gateway_pid, &before_connecting) {
            let after = ProcessSample::read(pid)?;
            let per_connection =
                after.rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0 / ready.max(1) as f64;
            println!(
                "idle: connections={ready} gateway_rss_before={} KiB gateway_rss_after={} KiB rss_per_connection={:.0} bytes",
                before.rss_kib, after.rss_kib, per_connection
            );
        }
        stop.cancel();
        return Ok(());
    }
    deliver(&args, &run_id, clients, &counters, &stop).await
}

/// Opens the subscribers (a few at a time) and waits, at most two minutes, until each is
/// ready or has failed.
async fn connect_all(
    args: &BenchArgs,
    run_id: &str,
    counters: &Arc<Counters>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<Option<Histogram<u64>>>> {
    eprintln!(
        "connecting {} {:?} subscribers to {}",
        args.subscribers, args.transport, args.url
    );
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut clients = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let (args, counters, stop, permits) = (
            args.clone(),
            counters.clone(),
            stop.clone(),
            permits.clone(),
        );
        let tag = format!("{RUN_FIELD}{run_id}\"");
        clients.push(tokio::spawn(async move {
            subscriber(args, tag, counters, stop, permits).await
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let settled =
            counters.ready.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed);
        if settled as usize >= args.subscribers || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{} subscribers ready, {} failed",
        counters.ready.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed)
    );
    clients
}

/// Publishes at `--rate` for `--duration`, waits for the deliveries to drain, and prints what
/// arrived, how late, and what it cost the gateway.
async fn deliver(
    args: &BenchArgs,
    run_id: &str,
    clients: Vec<tokio::task::JoinHandle<Option<Histogram<u64>>>>,
    counters: &Counters,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let ready = counters.ready.load(Ordering::Relaxed);
    let baseline = args.gateway_pid.map(ProcessSample::read).transpose()?;
    let redis = args
        .redis
        .as_deref()
        .context("--redis is required to publish (or use --idle)")?;
    let published = publish(redis, args, run_id).await?;
    let expected = published * ready;
    // Deliveries still arriving this long after the last publish count as missing: at rates the
    // path cannot sustain, that is the backlog.
    let drain_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counters.received.load(Ordering::Relaxed)
        + counters.announced_drops.load(Ordering::Relaxed)
        < expected
        && tokio::time::Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for client in clients {
        if let Ok(Some(histogram)) = client.await {
            latency.add(histogram)?;
        }
    }
    let received = counters.received.load(Ordering::Relaxed);
    let drops = counters.announced_drops.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(received + drops);
    println!(
        "subscribers={ready} transport={:?} rate={}/s duration={}s published={published}",
        args.transport,
        args.rate,
        args.duration.as_secs()
    );
    println!(
        "expected={expected} received={received} announced_drops={drops} missing_after_drain={lost} delivered_per_s={:.0}",
        received as f64 / args.duration.as_secs_f64()
    );
    println!(
        "latency_ms p50={:.2} p90={:.2} p99={:.2} max={:.2}",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.9) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0
    );
    if let (Some(pid), Some(before)) = (args.gateway_pid, baseline) {
        let after = ProcessSample::read(pid)?;
        let cpu = after.cpu_seconds - before.cpu_seconds;
        println!(
            "gateway cpu_s={cpu:.2} cpu_s_per_million_deliveries={:.2} rss_kib_connected={} rss_kib_after={}",
            cpu * 1e6 / received.max(1) as f64,
            before.rss_kib,
            after.rss_kib
        );
    }
    Ok(())
}

/// Authenticated upgrades per second: `count` WebSocket handshakes, 16 in flight, each complete
/// when its `hello` arrives; the connection is then dropped.
async fn handshakes(args: &BenchArgs, count: usize) -> anyhow::Result<()> {
    const IN_FLIGHT: usize = 16;
    let url = format!(
        "{}/v1/stream",
        args.url.trim_end_matches('/').replacen("http", "ws", 1)
    );
    let before = args.gateway_pid.map(ProcessSample::read).transpose()?;
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (url, token, next, failed) = (
                url.clone(),
                args.token.clone(),
                next.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count as u64 {
                    let ok = async {
                        let mut request = url.as_str().into_client_request().ok()?;
                        request
                            .headers_mut()
                            .insert("authorization", format!("Bearer {token}").parse().ok()?);
                        let (mut socket, _) =
                            tokio_tungstenite::connect_async(request).await.ok()?;
                        match socket.next().await {
                            Some(Ok(Message::Text(text))) if text.contains("\"hello\"") => Some(()),
                            _ => None,
                        }
                    }
                    .await;
                    if ok.is_none() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "handshakes={count} failed={failed} elapsed_s={elapsed:.2} upgrades_per_s={:.0}",
        (count as u64 - failed) as f64 / elapsed
    );
    if let (Some(pid), Some(before)) = (args.gateway_pid, before) {
        let after = ProcessSample::read(pid)?;
        println!(
            "gateway cpu_ms_per_handshake={:.3}",
            (after.cpu_seconds - before.cpu_seconds) * 1000.0 / count.max(1) as f64
        );
    }
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Publishes `rate` indicators a second for `duration`, in 10 ms pipelined slices.
async fn publish(url: &str, args: &BenchArgs, run_id: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let slices = (args.duration.as_millis() / 10).max(1) as u64;
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    for slice in 0..slices {
        ticks.tick().await;
        let target = (slice + 1) * u64::from(args.rate) / 100;
        let mut pipe = redis::pipe();
        while sent < target {
            let message = format!(
                r#"{{"indicator":"185.{}.{}.{}","provider":"bench","tags":["bench"],"bench_run":"{run_id}","bench_seq":{sent},"bench_sent_us":{}}}"#,
                100 + (sent / 65536) % 100,
                (sent / 256) % 256,
                sent % 256,
                now_us()
            );
            pipe.cmd("PUBLISH").arg(&args.channel).arg(message).ignore();
            sent += 1;
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    Ok(sent)
}

async fn subscriber(
    args: BenchArgs,
    tag: String,
    counters: Arc<Counters>,
    stop: CancellationToken,
    permits: Arc<Semaphore>,
) -> Option<Histogram<u64>> {
    let mut recorder = Recorder {
        histogram: Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).ok()?,
        tag,
        counters,
    };
    let connected = match args.transport {
        Transport::Ws => ws_subscriber(&args, &mut recorder, &stop, &permits).await,
        Transport::Sse => sse_subscriber(&args, &mut recorder, &stop, &permits).await,
    };
    if connected.is_none() {
        recorder.counters.failed.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(recorder.histogram)
}

/// What one subscriber saw: the latency of this run's indicators, and announced drops.
struct Recorder {
    histogram: Histogram<u64>,
    /// Marks this run's indicators (others may flow through the same gateway).
    tag: String,
    counters: Arc<Counters>,
}

impl Recorder {
    fn record(&mut self, text: &str) {
        let latency_at = text
            .contains(&self.tag)
            .then(|| text.find(LATENCY_FIELD))
            .flatten();
        if let Some(at) = latency_at {
            let digits: String = text[at + LATENCY_FIELD.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(sent) = digits.parse::<u64>() {
                let _ = self.histogram.record(now_us().saturating_sub(sent).max(1));
            }
            self.counters.received.fetch_add(1, Ordering::Relaxed);
        } else if text.contains("\"type\":\"dropped\"") {
            if let Ok(Frame::Dropped { count, .. }) = serde_json::from_str::<Frame>(text) {
                self.counters
                    .announced_drops
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
    }
}

/// Reads one WebSocket stream until `stop`; `None` when it could not connect.
async fn ws_subscriber(
    args: &BenchArgs,
    recorder: &mut Recorder,
    stop: &CancellationToken,
    permits: &Semaphore,
) -> Option<()> {
    let url = format!(
        "{}/v1/stream",
        args.url.trim_end_matches('/').replacen("http", "ws", 1)
    );
    let permit = permits.acquire().await.ok()?;
    let mut request = url.into_client_request().ok()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", args.token).parse().ok()?,
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.ok()?;
    drop(permit);
    recorder.counters.ready.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => recorder.record(&text),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    Some(())
}

/// Reads one SSE stream until `stop`; `None` when it could not connect.
async fn sse_subscriber(
    args: &BenchArgs,
    recorder: &mut Recorder,
    stop: &CancellationToken,
    permits: &Semaphore,
) -> Option<()> {
    let permit = permits.acquire().await.ok()?;
    let response = reqwest::Client::new()
        .get(format!("{}/v1/stream", args.url.trim_end_matches('/')))
        .bearer_auth(&args.token)
        .send()
        .await
        .and_then(|response| response.error_for_status())
        .ok()?;
    drop(permit);
    recorder.counters.ready.fetch_add(1, Ordering::Relaxed);
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            chunk = body.next() => match chunk {
                Some(Ok(bytes)) => {
                    buffer.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(end) = buffer.find("\n\n") {
                        let event: String = buffer.drain(..end + 2).collect();
                        if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) {
                            recorder.record(data);
                        }
                    }
                }
                _ => break,
            }
        }
    }
    Some(())
}

/// CPU time and resident memory of a process, from /proc.
pub(crate) struct ProcessSample {
    pub(crate) cpu_seconds: f64,
    pub(crate) rss_kib: u64,
}

impl ProcessSample {
    pub(crate) fn read(pid: u32) -> anyhow::Result<ProcessSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("--gateway-pid {pid}: no such process"))?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
        Ok(ProcessSample {
            cpu_seconds: ticks / 100.0,
            rss_kib,
        })
    }
}
