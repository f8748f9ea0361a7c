//! One connection of `sluice stream`, from the handshake until it ends: frames of the native
//! protocol (`domain::Frame`) applied to the output, the position and the status line, and what
//! the way it ended means for the next attempt.

use std::time::Duration;

use domain::{CloseCode, Frame, Indicator, LogPosition, Provenance};
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::output::Output;
use super::status::{self, Status};
use crate::cli::StreamArgs;

/// A server that sends nothing, not even a ping (it pings every 20 s), for this long is dead.
const SILENCE: Duration = Duration::from_secs(60);
/// How often the session looks after its status, output file and cursor file when idle.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// How often the cursor file is rewritten while indicators flow (and always on exit).
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_millis(200);
/// A connection that worked for a while resets the backoff; one that ends right after its
/// `hello` (a proxy, a server in trouble) does not, so it is not hammered.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended, and so what to do next.
pub enum Ended {
    /// Worth retrying, after the backoff.
    Retry {
        reason: String,
    },
    /// Worth retrying at once, with a little jitter (the server restarts).
    RetrySoon {
        reason: String,
    },
    /// It ended after working: reconnect at once, with a fresh backoff.
    Healthy,
    Fatal(anyhow::Error),
}

/// Streams from `url` until the connection ends.
pub async fn run(
    url: &str,
    token: &str,
    position: &mut LogPosition,
    output: &mut Output,
    status: &mut Status,
    args: &StreamArgs,
) -> Ended {
    let socket = match connect(url, token).await {
        Ok(socket) => socket,
        Err(ended) => return ended,
    };
    let mut reader = Reader {
        position,
        output,
        status,
        args,
        connected_at: None,
        saved_at: Instant::now(),
    };
    reader.read(socket).await
}

/// The handshake; refusals become what they mean (a bad token is fatal, a 503 is retried).
async fn connect(url: &str, token: &str) -> Result<Socket, Ended> {
    let mut request = url
        .into_client_request()
        .map_err(|error| Ended::Fatal(anyhow::anyhow!("--url `{url}`: {error}")))?;
    let authorization = format!("Bearer {token}").parse().map_err(|_| {
        Ended::Fatal(anyhow::anyhow!(
            "the token contains characters a header cannot carry"
        ))
    })?;
    request.headers_mut().insert("authorization", authorization);
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let code = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|body| refusal_text(body))
                .unwrap_or_default();
            Err(match code {
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
                },
            })
        }
        Err(error) => Err(Ended::Retry {
            reason: error.to_string(),
        }),
    }
}

/// A refusal's message: the `error` of the JSON body, or the body itself, made printable.
fn refusal_text(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<domain::ErrorBody<'_>>(body) {
        Ok(answer) => answer.error.into_owned(),
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    status::printable(&text)
}

struct Reader<'a> {
    position: &'a mut LogPosition,
    output: &'a mut Output,
    status: &'a mut Status,
    args: &'a StreamArgs,
    connected_at: Option<Instant>,
    saved_at: Instant,
}

impl Reader<'_> {
    async fn read(&mut self, mut socket: Socket) -> Ended {
        let mut last_heard = Instant::now();
        loop {
            // Wake up regularly even when nothing arrives: the status line, a whole-file
            // output and the cursor file are kept current on a quiet stream too.
            match tokio::time::timeout(HOUSEKEEPING, socket.next()).await {
                Err(_) if last_heard.elapsed() >= SILENCE => {
                    return Ended::Retry {
                        reason: format!("no data or ping for {}s", SILENCE.as_secs()),
                    }
                }
                Err(_) => {}
                Ok(None) => return self.ended("connection closed".into()),
                Ok(Some(Err(error))) => return self.ended(error.to_string()),
                Ok(Some(Ok(message))) => {
                    last_heard = Instant::now();
                    match message {
                        Message::Close(frame) => return self.closed(frame),
                        Message::Text(text) => {
                            if let Err(error) = self.apply(&text) {
                                return Ended::Fatal(error);
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Err(error) = self.housekeeping() {
                return Ended::Fatal(error);
            }
        }
    }

    /// Applies one frame of the native protocol.
    fn apply(&mut self, text: &str) -> anyhow::Result<()> {
        let frame = match serde_json::from_str::<Frame>(text) {
            Ok(frame) => frame,
            Err(_) => {
                self.status.note(&format!(
                    "ignored a frame that is not a stream frame ({} bytes)",
                    text.len()
                ));
                return Ok(());
            }
        };
        match frame {
            Frame::Hello {
                plan,
                limits,
                cursor,
            } => {
                // Where this stream starts: kept unless we already hold a real position.
                if !matches!(self.position, LogPosition::After(_)) {
                    *self.position = LogPosition::After(cursor);
                }
                self.status.connected(&plan, &limits);
                self.connected_at = Some(Instant::now());
                // Persist the starting position soon: a restart before the first indicator
                // must not skip what arrives meanwhile.
                self.saved_at = Instant::now() - CURSOR_SAVE_INTERVAL;
            }
            // A withdrawal is an indicator with `"withdrawn": true`: the output says what it
            // means for its format.
            Frame::Indicator { id, data } | Frame::Withdrawn { id, data } => {
                // Validated as sent: the server already clamped its times; this clock's
                // opinion must not change them.
                match Indicator::from_json(
                    data,
                    Provenance::Trusted,
                    chrono::DateTime::<chrono::Utc>::MAX_UTC,
                ) {
                    Ok(indicator) => {
                        let lines = self
                            .output
                            .write(&indicator)
                            .map_err(|error| error.context("cannot write the output"))?;
                        self.status.received();
                        if lines == 0 {
                            self.status.skipped();
                        }
                    }
                    Err(rejection) => self
                        .status
                        .note(&format!("skipped an invalid indicator: {rejection}")),
                }
                *self.position = LogPosition::After(id);
            }
            Frame::Dropped { count, last_id, .. } => {
                self.status.dropped(count);
                *self.position = LogPosition::After(last_id);
            }
            Frame::Reset { reason, cursor } => {
                self.status.note(&format!(
                    "history was reset ({reason}): indicators before this point are gone"
                ));
                *self.position = LogPosition::After(cursor);
            }
            Frame::Plan { plan, limits } => self.status.plan_changed(&plan, &limits),
            Frame::Unknown => {}
        }
        Ok(())
    }

    /// Keeps the output, the cursor file and the status current.
    fn housekeeping(&mut self) -> anyhow::Result<()> {
        let durable = self
            .output
            .tick()
            .map_err(|error| error.context("cannot write the output"))?;
        // Saved only when the output has everything before it (a whole file is rewritten
        // every --output-interval), so a restart never skips what the output lacks.
        if durable && self.saved_at.elapsed() >= CURSOR_SAVE_INTERVAL {
            super::save_cursor(self.args, self.position)?;
            self.saved_at = Instant::now();
        }
        self.status.tick();
        Ok(())
    }

    /// The server closed the stream: its code says whether to come back.
    fn closed(&self, frame: Option<CloseFrame>) -> Ended {
        let (code, reason) = frame
            .map(|frame| (u16::from(frame.code), status::printable(&frame.reason)))
            .unwrap_or((1005, String::new()));
        match CloseCode::from_code(code) {
            Some(CloseCode::TokenRevoked) => Ended::Fatal(anyhow::anyhow!(
                "the server closed the stream: the token was revoked or expired (4001)"
            )),
            Some(CloseCode::PlanDisallows) => Ended::Fatal(anyhow::anyhow!(
                "the server closed the stream: the account's plan no longer allows it (4010) {reason}"
            )),
            Some(CloseCode::Shutdown) => Ended::RetrySoon {
                reason: "the server is restarting (1001)".into(),
            },
            _ => self.ended(format!("closed by the server ({code} {reason})")),
        }
    }

    fn ended(&self, reason: String) -> Ended {
        if self
            .connected_at
            .is_some_and(|at| at.elapsed() >= HEALTHY_AFTER)
        {
            Ended::Healthy
        } else {
            Ended::Retry { reason }
        }
    }
}
