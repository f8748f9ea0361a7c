//! `sluice stream`: the firehose on the command line, csirtg-firehose style. Prints each
//! indicator as it arrives in the chosen format, reconnects with jittered exponential backoff,
//! resumes from its cursor (kept in `--cursor-file` across restarts), and reports its state on
//! stderr: a live status line on a terminal, plain lines otherwise.

mod connection;
mod format;
mod output;
mod status;

pub use format::{OutputFormat, UnknownFormat};

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use domain::{Filter, LogPosition};
use sluice_log::Backoff;

use crate::cli::StreamArgs;
use crate::exit;
use connection::Ended;
use output::Output;
use status::Status;

/// The first reconnection delay; it doubles up to `--max-backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

pub async fn run(args: StreamArgs) -> anyhow::Result<()> {
    let token = args.token.clone().filter(|token| !token.is_empty()).ok_or_else(|| {
        exit::config(
            "no token: pass --token or set SLUICE_TOKEN (create one with `sluice tokens create --account NAME`)",
        )
    })?;
    let filter = filter(&args)?;
    let base = stream_base(&args.url)?;
    if args.since.is_some() && args.cursor.is_some() {
        return Err(exit::config(
            "--since and --cursor both say where to start: give one of them",
        ));
    }
    let since = args
        .since
        .as_deref()
        .map(|text| since(text, chrono::Utc::now()))
        .transpose()?;
    let mut position = match &args.cursor_file {
        Some(path) => {
            let position = read_cursor(path)?;
            output::check_writable("--cursor-file", path)?;
            position
        }
        None => None,
    };
    // A position kept in the cursor file wins over --cursor and --since: a restart resumes.
    let since = if position.is_none() { since } else { None };
    if position.is_none() {
        position = args.cursor.as_deref().map(parse_position).transpose()?;
    }
    let mut position = position.unwrap_or(LogPosition::Now);
    let mut output = Output::new(
        args.format,
        args.output.clone(),
        args.output_interval,
        args.default_validity.unwrap_or(domain::Validity::none()),
    )?;
    let mut status = Status::new(args.url.clone());
    let mut backoff = Backoff::new(FIRST_BACKOFF, args.max_backoff);
    // Ctrl-C or SIGTERM: either way the output and the cursor are saved on the way out.
    let interrupted = crate::signal::terminated();
    tokio::pin!(interrupted);
    let result = loop {
        let url = stream_url(&base, &filter, &position, since.as_deref());
        status.connecting();
        let ended = tokio::select! {
            _ = &mut interrupted => break Ok(()),
            ended = connection::run(&url, &token, &mut position, &mut output, &mut status, &args) => ended,
        };
        // The output first, then the cursor: the cursor never gets ahead of what is written.
        output.finish()?;
        save_cursor(&args, &position)?;
        let delay = match ended {
            Ended::Retry { reason } => {
                let delay = backoff.next_delay();
                status.disconnected(&reason, delay);
                delay
            }
            // A server restart (1001) closes every client at once: a little jitter spreads
            // their return.
            Ended::RetrySoon { reason } => {
                let delay = Duration::from_millis(rand::random::<u64>() % 1000);
                status.disconnected(&reason, delay);
                delay
            }
            Ended::Healthy => {
                backoff.reset();
                Duration::ZERO
            }
            Ended::Fatal(error) => break Err(error),
        };
        tokio::select! {
            _ = &mut interrupted => break Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    };
    output.finish()?;
    save_cursor(&args, &position)?;
    status.finish();
    result
}

/// The filter flags, checked here (exit 64) rather than refused by the server after connecting.
fn filter(args: &StreamArgs) -> anyhow::Result<Filter> {
    let flags = [
        ("itype", &args.itype),
        ("tags", &args.tags),
        ("confidence", &args.confidence),
        ("tlp", &args.tlp),
        ("provider", &args.provider),
        ("cidr", &args.cidr),
        ("profile", &args.profile),
        ("correlated", &args.correlated),
    ];
    let pairs = flags
        .iter()
        .filter_map(|(key, value)| Some((*key, value.as_deref()?)));
    Filter::from_pairs(pairs).map_err(|error| exit::config(format!("filter: {error}")))
}

fn parse_position(text: &str) -> anyhow::Result<LogPosition> {
    text.trim().parse().map_err(|_| {
        exit::config(format!(
            "--cursor `{text}` is not `now`, `earliest` or a cursor from a frame's `id`"
        ))
    })
}

/// `--since`: a duration before `now` (`2h`, `30m`) or an RFC 3339 time, as the RFC 3339 time
/// (to the millisecond, UTC) the stream's `since=` takes.
fn since(text: &str, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<String> {
    let text = text.trim();
    let time = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(time) => Some(time.with_timezone(&chrono::Utc)),
        Err(_) => {
            let duration = humantime::parse_duration(text).map_err(|_| {
                exit::config(format!(
                    "--since `{text}` is neither a duration (2h, 30m, 1d) nor an RFC 3339 time \
                     (2026-11-23T12:00:00Z)"
                ))
            })?;
            chrono::TimeDelta::from_std(duration)
                .ok()
                .and_then(|delta| now.checked_sub_signed(delta))
        }
    };
    match time {
        Some(time) if time.timestamp_millis() >= 0 => {
            Ok(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        }
        _ => Err(exit::config(format!(
            "--since `{text}` reaches back before 1970; give a duration such as 2h or a later time"
        ))),
    }
}

/// `ws(s)://host[/prefix]/v1/stream`, from `--url`.
fn stream_base(url: &str) -> anyhow::Result<url::Url> {
    let mut parsed = url::Url::parse(url.trim_end_matches('/'))
        .map_err(|error| exit::config(format!("--url `{url}` is not a URL ({error})")))?;
    let scheme = match parsed.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => {
            return Err(exit::config(format!(
                "--url `{url}` must start with http://, https://, ws:// or wss://"
            )))
        }
    };
    parsed
        .set_scheme(scheme)
        .map_err(|()| exit::config(format!("--url `{url}` cannot carry a WebSocket")))?;
    let path = format!("{}/v1/stream", parsed.path().trim_end_matches('/'));
    parsed.set_path(&path);
    Ok(parsed)
}

/// The stream's URL: the filter as the query, and where to start (`since` counts only until the
/// stream has given a position).
fn stream_url(
    base: &url::Url,
    filter: &Filter,
    position: &LogPosition,
    since: Option<&str>,
) -> String {
    let mut url = base.clone();
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in filter.to_pairs() {
            query.append_pair(key, &value);
        }
        match position {
            LogPosition::Now => {
                if let Some(since) = since {
                    query.append_pair("since", since);
                }
            }
            LogPosition::Earliest => {
                query.append_pair("cursor", "earliest");
            }
            LogPosition::After(cursor) => {
                query.append_pair("cursor", &cursor.to_string());
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    url.into()
}

fn read_cursor(path: &Path) -> anyhow::Result<Option<LogPosition>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("--cursor-file {}", path.display()))
        }
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        exit::config(format!(
            "--cursor-file {} does not hold a cursor; remove it to start from --cursor",
            path.display()
        ))
    })
}

/// Writes the cursor file atomically (a temporary file renamed over it); only real cursors are
/// kept, never `now` or `earliest`.
fn save_cursor(args: &StreamArgs, position: &LogPosition) -> anyhow::Result<()> {
    let (Some(path), LogPosition::After(cursor)) = (&args.cursor_file, position) else {
        return Ok(());
    };
    output::write_atomically(path, format!("{cursor}\n").as_bytes())
        .with_context(|| format!("--cursor-file {}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_filter_and_the_position() {
        let base = stream_base("http://127.0.0.1:8080/").unwrap();
        let filter =
            Filter::from_pairs([("tags", "scanner,ssh"), ("cidr", "185.220.0.0/16")]).unwrap();
        assert_eq!(
            stream_url(&base, &Filter::default(), &LogPosition::Now, None),
            "ws://127.0.0.1:8080/v1/stream"
        );
        let cursor = LogPosition::After("e1.5-0".parse().unwrap());
        assert_eq!(
            stream_url(&base, &filter, &cursor, None),
            "ws://127.0.0.1:8080/v1/stream?tags=scanner%2Cssh&cidr=185.220.0.0%2F16&cursor=e1.5-0"
        );
        let behind_proxy = stream_base("https://example.com/sluice").unwrap();
        assert_eq!(
            stream_url(
                &behind_proxy,
                &Filter::default(),
                &LogPosition::Earliest,
                None
            ),
            "wss://example.com/sluice/v1/stream?cursor=earliest"
        );
        let since = Some("2026-11-23T10:00:00.000Z");
        assert_eq!(
            stream_url(&base, &Filter::default(), &LogPosition::Now, since),
            "ws://127.0.0.1:8080/v1/stream?since=2026-11-23T10%3A00%3A00.000Z"
        );
        assert_eq!(
            stream_url(&base, &Filter::default(), &cursor, since),
            "ws://127.0.0.1:8080/v1/stream?cursor=e1.5-0",
            "once the stream gave a position, it resumes from it"
        );
        assert!(stream_base("ftp://example.com").is_err());
        assert!(stream_base("not a url").is_err());
    }

    #[test]
    fn since_is_a_duration_back_or_a_time() {
        let now = "2026-11-23T12:00:00.250Z".parse().unwrap();
        assert_eq!(since("2h", now).unwrap(), "2026-11-23T10:00:00.250Z");
        assert_eq!(since(" 30m ", now).unwrap(), "2026-11-23T11:30:00.250Z");
        assert_eq!(
            since("2026-11-23T13:00:00+01:00", now).unwrap(),
            "2026-11-23T12:00:00.000Z"
        );
        assert_eq!(
            since("2030-01-01T00:00:00Z", now).unwrap(),
            "2030-01-01T00:00:00.000Z",
            "a later time waits for new entries"
        );
        for nonsense in ["yesterday", "", "-5m", "2h ago", "1700000000", "100years"] {
            let error = since(nonsense, now).unwrap_err();
            let config = error.downcast_ref::<exit::ConfigError>();
            assert!(
                config.is_some_and(|config| config.0.starts_with("--since")),
                "{nonsense:?}: {error}"
            );
        }
    }
}
