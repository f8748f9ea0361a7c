//! `sluice publish`: reads a feed (file or stdin, any supported format) and sends it to a server's
//! HTTP API in batches, or straight into Redis (the trusted upstream). Every rejected record is
//! reported with its source line; nothing is dropped silently.

use std::io::Read;

use anyhow::Context;
use domain::feed::{parse_feed, FeedFormat};
use domain::{Indicator, Provenance};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cli::PublishArgs;
use crate::exit;

/// One record ready to send, with its source line for error messages.
struct Record {
    line: usize,
    object: Map<String, Value>,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let format: FeedFormat = args.format.parse().map_err(|_| {
        exit::config(format!(
            "--format `{}`: expected auto, json, ndjson, csv or lines",
            args.format
        ))
    })?;
    if let Some(confidence) = args.confidence {
        if !(0.0..=10.0).contains(&confidence) {
            return Err(exit::config(format!(
                "--confidence {confidence}: expected a number from 0 to 10"
            )));
        }
    }
    let text = read_input(&args)?;
    let mut records = Vec::new();
    let mut rejected = 0usize;
    for parsed in parse_feed(&text, format) {
        match parsed {
            Ok(record) => records.push(Record {
                line: record.line,
                object: apply_overrides(record.object, &args),
            }),
            Err(error) => {
                rejected += 1;
                eprintln!("rejected {error}");
            }
        }
    }
    let (accepted, refused) = match &args.redis {
        Some(url) => publish_redis(url, &args, records).await?,
        None => publish_http(&args, records).await?,
    };
    rejected += refused;
    eprintln!("published {accepted} indicators, rejected {rejected}");
    Ok(())
}

fn read_input(args: &PublishArgs) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            bytes = std::fs::read(path).map_err(|error| {
                exit::config(format!("cannot read {}: {error}", path.display()))
            })?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read stdin")?;
        }
    }
    String::from_utf8(bytes).map_err(|error| {
        exit::config(format!(
            "input is not UTF-8 text (invalid byte at offset {})",
            error.utf8_error().valid_up_to()
        ))
    })
}

fn apply_overrides(mut object: Map<String, Value>, args: &PublishArgs) -> Map<String, Value> {
    if !args.tags.is_empty() {
        let mut tags: Vec<Value> = match object.remove("tags") {
            Some(Value::String(text)) => text.split(',').map(|t| Value::from(t.trim())).collect(),
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        tags.extend(args.tags.iter().map(|tag| Value::from(tag.as_str())));
        object.insert("tags".into(), Value::Array(tags));
    }
    if let Some(confidence) = args.confidence {
        object.insert("confidence".into(), Value::from(confidence));
    }
    if let Some(provider) = &args.provider {
        object.insert("provider".into(), Value::from(provider.as_str()));
    }
    object
}

#[derive(Deserialize)]
struct IngestAnswer {
    accepted: usize,
    #[serde(default)]
    rejected: Vec<RejectedAnswer>,
}

#[derive(Deserialize)]
struct RejectedAnswer {
    index: usize,
    error: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

async fn publish_http(args: &PublishArgs, records: Vec<Record>) -> anyhow::Result<(usize, usize)> {
    let token = args.token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
        exit::config("--token (SLUICE_TOKEN) is required to publish over HTTP: create one with `sluice tokens create --account NAME --scope write`")
    })?;
    let endpoint = format!("{}/v1/indicators", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (mut accepted, mut rejected) = (0, 0);
    for batch in records.chunks(args.batch.max(1)) {
        let body: Vec<&Map<String, Value>> = batch.iter().map(|record| &record.object).collect();
        let response = client
            .post(&endpoint)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .with_context(|| {
                format!("cannot reach {endpoint} (is `sluice up` running? set --url / SLUICE_URL)")
            })?;
        let status = response.status();
        if !status.is_success() {
            let message = response
                .json::<ErrorAnswer>()
                .await
                .map(|answer| answer.error)
                .unwrap_or_else(|_| status.to_string());
            anyhow::bail!("{endpoint} answered {status}: {message}");
        }
        let answer: IngestAnswer = response
            .json()
            .await
            .context("unexpected answer from the server")?;
        accepted += answer.accepted;
        for item in answer.rejected {
            rejected += 1;
            let line = batch.get(item.index).map_or(0, |record| record.line);
            eprintln!("rejected line {line}: {}", item.error);
        }
    }
    Ok((accepted, rejected))
}

async fn publish_redis(
    url: &str,
    args: &PublishArgs,
    records: Vec<Record>,
) -> anyhow::Result<(usize, usize)> {
    if args.provider.is_none() {
        return Err(exit::config(
            "--provider (SLUICE_PROVIDER) is required with --redis: the trusted upstream takes the provider from each message",
        ));
    }
    let client = redis::Client::open(url)
        .map_err(|error| exit::config(format!("--redis `{url}`: {error}")))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("cannot connect to Redis at {url}"))?;
    let now = chrono::Utc::now();
    let (mut accepted, mut rejected, mut unheard) = (0, 0, 0);
    for record in records {
        // Validate here too, so mistakes are reported to the publisher and not only in the
        // gateway's logs.
        let indicator =
            match Indicator::from_json(Value::Object(record.object), Provenance::Upstream, now) {
                Ok(indicator) => indicator,
                Err(rejection) => {
                    rejected += 1;
                    eprintln!("rejected line {}: {rejection}", record.line);
                    continue;
                }
            };
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(&args.channel)
            .arg(indicator.to_json().to_string())
            .query_async(&mut conn)
            .await
            .context("PUBLISH failed")?;
        if receivers == 0 {
            unheard += 1;
        }
        accepted += 1;
    }
    if unheard > 0 {
        eprintln!(
            "warning: {unheard} messages had no subscriber on channel `{}`: no gateway is listening, so they were not stored",
            args.channel
        );
    }
    Ok((accepted, rejected))
}
