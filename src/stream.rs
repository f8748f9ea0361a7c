//! `sluice stream`: the firehose on the command line, csirtg-firehose style. Prints each
//! indicator as it arrives in the chosen format, reconnects with jittered exponential backoff,
//! resumes from its cursor (kept in `--cursor-file` across restarts), and reports its state on
//! stderr: a live status line on a terminal, plain lines otherwise.

mod output;
mod status;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use domain::{Indicator, Provenance};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::StreamArgs;
use output::Output;
use status::Status;

/// A server that sends nothing, not even a ping (it pings every 20 s), for this long is dead.
const SILENCE: Duration = Duration::from_secs(60);
/// How often the session looks after its status, output file and cursor file when idle.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// How often the cursor file is rewritten while indicators flow (and always on exit).
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_millis(200);

pub async fn run(args: StreamArgs) -> anyhow::Result<()> {
    let token = args.token.clone().context(
        "no token: pass --token or set SLUICE_TOKEN (create one with `sluice tokens create --account NAME`)",
    )?;
    let mut cursor = match &args.cursor_file {
        Some(path) => read_cursor(path)?,
        None => None,
    }
    .or_else(|| args.cursor.clone());
    let mut output = Output::new(args.format, args.output.clone(), args.output_interval)?;
    let mut status = Status::new(args.url.clone());
    let mut backoff = Backoff::new(args.max_backoff);
    let interrupted = stop_signal();
    tokio::pin!(interrupted);
    let result = loop {
        let url = stream_url(&args, cursor.as_deref())?;
        status.connecting();
        let session = tokio::select! {
            _ = &mut interrupted => break Ok(()),
            session = session(&url, &token, &mut cursor, &mut output, &mut status, &args) => session,
        };
        // The output first, then the cursor: the cursor never gets ahead of what is written.
        output.finish()?;
        save_cursor(&args, cursor.as_deref())?;
        match session {
            Ended::Retry {
                reason,
                immediately,
            } => {
                // A server restart (1001) closes every client at once: a little jitter spreads
                // their return.
                let delay = if immediately {
                    Duration::from_millis(rand::random::<u64>() % 1000)
                } else {
                    backoff.next()
                };
                status.disconnected(&reason, delay);
                tokio::select! {
                    _ = &mut interrupted => break Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Ended::Connected => backoff.reset(),
            Ended::Fatal(error) => break Err(error),
        }
    };
    output.finish()?;
    save_cursor(&args, cursor.as_deref())?;
    status.finish();
    result
}

enum Ended {
    /// The connection ended in a way worth retrying.
    Retry {
        reason: String,
        immediately: bool,
    },
    /// It ended after working: reconnect at once, with a fresh backoff.
    Connected,
    Fatal(anyhow::Error),
}

/// One connection, until it ends.
async fn session(
    url: &str,
    token: &str,
    cursor: &mut Option<String>,
    output: &mut Output,
    status: &mut Status,
    args: &StreamArgs,
) -> Ended {
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => return Ended::Fatal(anyhow::anyhow!("--url `{url}`: {error}")),
    };
    match format!("Bearer {token}").parse() {
        Ok(value) => {
            request.headers_mut().insert("authorization", value);
        }
        Err(_) => {
            return Ended::Fatal(anyhow::anyhow!(
                "the token contains characters a header cannot carry"
            ))
        }
    }
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let code = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|body| status::printable(String::from_utf8_lossy(body).trim()))
                .unwrap_or_default();
            return match code {
                401 => Ended::Fatal(anyhow::anyhow!(
                    "the server refused the token (HTTP 401): check --token / SLUICE_TOKEN"
                )),
                403 => Ended::Fatal(anyhow::anyhow!(
                    "the token may not stream this (HTTP 403): {body}"
                )),
                400 => Ended::Fatal(anyhow::anyhow!(
                    "the server refused the request (HTTP 400): {body}"
                )),
                _ => Ended::Retry {
                    reason: format!("HTTP {code} {body}"),
                    immediately: false,
                },
            };
        }
        Err(error) => {
            return Ended::Retry {
                reason: error.to_string(),
                immediately: false,
            }
        }
    };
    let mut connected_at: Option<tokio::time::Instant> = None;
    let mut saved_at = tokio::time::Instant::now();
    let mut last_heard = tokio::time::Instant::now();
    loop {
        // Wake up regularly even when nothing arrives: the status line, a whole-file output
        // and the cursor file are kept current on a quiet stream too.
        let next = tokio::time::timeout(HOUSEKEEPING, socket.next()).await;
        let message = match next {
            Err(_) if last_heard.elapsed() >= SILENCE => {
                return Ended::Retry {
                    reason: format!("no data or ping for {}s", SILENCE.as_secs()),
                    immediately: false,
                }
            }
            Err(_) => None,
            Ok(None) => return ended(connected_at, "connection closed".into()),
            Ok(Some(Err(error))) => return ended(connected_at, error.to_string()),
            Ok(Some(Ok(message))) => {
                last_heard = tokio::time::Instant::now();
                Some(message)
            }
        };
        if let Some(Message::Close(frame)) = &message {
            let (code, reason) = frame
                .as_ref()
                .map(|f| (u16::from(f.code), f.reason.to_string()))
                .unwrap_or((1005, String::new()));
            return match code {
                4001 => Ended::Fatal(anyhow::anyhow!(
                    "the server closed the stream: the token was revoked or expired (4001)"
                )),
                4010 => Ended::Fatal(anyhow::anyhow!(
                    "the server closed the stream: the account's plan no longer allows it (4010) {reason}"
                )),
                1001 => Ended::Retry {
                    reason: "the server is restarting (1001)".into(),
                    immediately: true,
                },
                _ => ended(connected_at, format!("closed by the server ({code} {reason})")),
            };
        }
        if let Some(Message::Text(text)) = &message {
            match handle_frame(text, cursor, output, status) {
                Ok(Handled::Hello) => {
                    connected_at = Some(tokio::time::Instant::now());
                    // Persist the starting position soon: a restart before the first
                    // indicator must not skip what arrives meanwhile.
                    saved_at = tokio::time::Instant::now() - CURSOR_SAVE_INTERVAL;
                }
                Ok(Handled::Other) => {}
                Err(error) => return Ended::Fatal(error),
            }
        }
        let durable = match output.tick() {
            Ok(durable) => durable,
            Err(error) => return Ended::Fatal(error.context("cannot write the output")),
        };
        // Saved only when the output has everything before it (a whole file is rewritten
        // every --output-interval), so a restart never skips what the output lacks.
        if durable && saved_at.elapsed() >= CURSOR_SAVE_INTERVAL {
            if let Err(error) = save_cursor(args, cursor.as_deref()) {
                return Ended::Fatal(error);
            }
            saved_at = tokio::time::Instant::now();
        }
        status.tick();
    }
}

enum Handled {
    Hello,
    Other,
}

/// Applies one JSON frame of the native protocol.
fn handle_frame(
    text: &str,
    cursor: &mut Option<String>,
    output: &mut Output,
    status: &mut Status,
) -> anyhow::Result<Handled> {
    let frame: Value = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(_) => {
            status.note(&format!(
                "ignored a frame that is not JSON ({} bytes)",
                text.len()
            ));
            return Ok(Handled::Other);
        }
    };
    match frame["type"].as_str() {
        Some("hello") => {
            // Where this stream starts: kept unless we already hold a real position (a cursor
            // has an epoch and a dot; `now` and `earliest` are only requests).
            if let Some(at) = frame["cursor"].as_str() {
                if cursor.as_deref().is_none_or(|c| !c.contains('.')) {
                    *cursor = Some(at.to_owned());
                }
            }
            status.connected(frame["plan"].as_str().unwrap_or("?"), &frame["limits"]);
            return Ok(Handled::Hello);
        }
        Some("indicator") => {
            match Indicator::from_json(
                frame["data"].clone(),
                Provenance::Trusted,
                // Validated as sent: the server already clamped its times; this clock's
                // opinion must not change them.
                chrono::DateTime::<chrono::Utc>::MAX_UTC,
            ) {
                Ok(indicator) => {
                    output
                        .write(&indicator)
                        .context("cannot write the output")?;
                    status.received();
                }
                Err(rejection) => {
                    status.note(&format!("skipped an invalid indicator: {rejection}"))
                }
            }
            if let Some(id) = frame["id"].as_str() {
                *cursor = Some(id.to_owned());
            }
        }
        Some("dropped") => {
            status.dropped(frame["count"].as_u64().unwrap_or(0));
            if let Some(id) = frame["last_id"].as_str() {
                *cursor = Some(id.to_owned());
            }
        }
        Some("reset") => {
            status.note(&format!(
                "history was reset ({}): indicators before this point are gone",
                frame["reason"].as_str().unwrap_or("unknown reason")
            ));
            if let Some(at) = frame["cursor"].as_str() {
                *cursor = Some(at.to_owned());
            }
        }
        Some("plan") => {
            status.plan_changed(frame["plan"].as_str().unwrap_or("?"), &frame["limits"])
        }
        _ => {}
    }
    Ok(Handled::Other)
}

/// A connection that worked for a while resets the backoff; one that ends right after its
/// `hello` (a proxy, a server in trouble) does not, so it is not hammered.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

fn ended(connected_at: Option<tokio::time::Instant>, reason: String) -> Ended {
    if connected_at.is_some_and(|at| at.elapsed() >= HEALTHY_AFTER) {
        Ended::Connected
    } else {
        Ended::Retry {
            reason,
            immediately: false,
        }
    }
}

/// `ws(s)://host/v1/stream?<filters>&cursor=<cursor>`.
fn stream_url(args: &StreamArgs, cursor: Option<&str>) -> anyhow::Result<String> {
    let base = args.url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        bail!(
            "--url `{}` must start with http://, https://, ws:// or wss://",
            args.url
        );
    };
    let mut query = Vec::new();
    let filters = [
        ("itype", &args.itype),
        ("tags", &args.tags),
        ("confidence", &args.confidence),
        ("tlp", &args.tlp),
        ("provider", &args.provider),
        ("cidr", &args.cidr),
        ("profile", &args.profile),
        ("correlated", &args.correlated),
    ];
    for (key, value) in filters {
        if let Some(value) = value {
            query.push(format!("{key}={}", encode(value)));
        }
    }
    if let Some(cursor) = cursor {
        query.push(format!("cursor={}", encode(cursor)));
    }
    Ok(if query.is_empty() {
        format!("{base}/v1/stream")
    } else {
        format!("{base}/v1/stream?{}", query.join("&"))
    })
}

/// Percent-encodes a query value (everything but unreserved characters and `,`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_cursor(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|c| !c.is_empty())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("--cursor-file {}", path.display())),
    }
}

/// Writes the cursor file atomically (a temporary file renamed over it).
fn save_cursor(args: &StreamArgs, cursor: Option<&str>) -> anyhow::Result<()> {
    let (Some(path), Some(cursor)) = (&args.cursor_file, cursor) else {
        return Ok(());
    };
    output::write_atomically(path, format!("{cursor}\n").as_bytes())
        .with_context(|| format!("--cursor-file {}: cannot write", path.display()))
}

/// Exponential backoff with full jitter, from 250 ms up to `max`.
struct Backoff {
    attempt: u32,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Backoff { attempt: 0, max }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next(&mut self) -> Duration {
        use rand::Rng;
        let ceiling = Duration::from_millis(250)
            .saturating_mul(1 << self.attempt.min(10))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// Ctrl-C, or SIGTERM (systemd, docker stop): either way the cursor is saved on the way out.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_the_ceiling() {
        let mut backoff = Backoff::new(Duration::from_secs(5));
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next()).collect();
        assert!(delays[0] <= Duration::from_millis(250));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays[11] >= Duration::from_millis(2500));
        backoff.reset();
        assert!(backoff.next() <= Duration::from_millis(250));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("scanner,ssh"), "scanner,ssh");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode("185.220.0.0/16"), "185.220.0.0%2F16");
    }
}
