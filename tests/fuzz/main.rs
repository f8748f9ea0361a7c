//! Mutation fuzzing of every parser that takes untrusted bytes, on the stable toolchain: each
//! target starts from its committed corpus (`tests/fuzz/corpus/<target>/`), mutates inputs
//! (byte flips, insertions, deletions, repeats, splices, tokens that parsers trip on) and feeds
//! them to the parser, which may refuse anything but must not panic or hang.
//!
//! CI runs a smoke pass (`SLUICE_FUZZ_SECONDS`, default 2 s per target); `scripts/test --slow`
//! runs each for a minute. A panicking input is written to `target/fuzz-crashes/<target>/` and
//! named in the failure; add it to the corpus once fixed. The seed is printed, and
//! `SLUICE_FUZZ_SEED` replays a run.
//!
//! Hand-written rather than cargo-fuzz: cargo-fuzz needs a nightly toolchain and sanitizer
//! builds that would double CI's build time, while every parser here is safe Rust, where a panic
//! (not memory corruption) is the failure to find.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Fragments that make parsers take unusual paths.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"-",
    b".",
    b"/",
    b"=",
    b"&",
    b"%",
    b"%00",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"0",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"9999999999999999999999",
    b"null",
    b"true",
    b"[[[[[[[[",
    b"\xff\xfe",
    b"\xe2\x80\xae",
    b"sluice/",
    b"::",
    b"0x",
    b"v1=",
    b"t=",
    b"slc_",
    b"e1.",
];

const MAX_INPUT: usize = 64 * 1024;

fn seconds() -> Duration {
    let seconds = std::env::var("SLUICE_FUZZ_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2.0_f64);
    Duration::from_secs_f64(seconds)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "{} has no seeds", dir.display());
    inputs.sort();
    inputs
}

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..rng.gen_range(1..=4) {
        let at = if input.is_empty() {
            0
        } else {
            rng.gen_range(0..=input.len())
        };
        match rng.gen_range(0..7) {
            0 if !input.is_empty() => {
                let i = rng.gen_range(0..input.len());
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => input.insert(at, rng.gen()),
            2 if !input.is_empty() => {
                let end = (at + rng.gen_range(1..16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            3 => {
                let token = TOKENS[rng.gen_range(0..TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            4 if !input.is_empty() => {
                let start = rng.gen_range(0..input.len());
                let end = (start + rng.gen_range(1..64)).min(input.len());
                let piece = input[start..end].to_vec();
                for _ in 0..rng.gen_range(1..8) {
                    input.splice(at..at, piece.iter().copied());
                }
            }
            5 => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                let from = rng.gen_range(0..=other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = if input.is_empty() {
                    0
                } else {
                    rng.gen_range(0..input.len())
                };
                input.truncate(i);
            }
        }
    }
    input.truncate(MAX_INPUT);
}

/// Runs `parse` on the corpus and its mutations for the configured time.
fn fuzz(target: &str, parse: impl Fn(&[u8])) {
    let seed = std::env::var("SLUICE_FUZZ_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let mut rng = StdRng::seed_from_u64(seed);
    let corpus = corpus(target);
    let deadline = Instant::now() + seconds();
    let mut runs = 0u64;
    let mut input = Vec::new();
    let check = |input: &[u8], runs: u64| {
        if catch_unwind(AssertUnwindSafe(|| parse(input))).is_err() {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/fuzz-crashes")
                .join(target);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("seed-{seed}-run-{runs}"));
            std::fs::write(&path, input).unwrap();
            panic!("{target} panicked on {} (seed {seed})", path.display());
        }
    };
    for seed_input in &corpus {
        check(seed_input, runs);
    }
    while Instant::now() < deadline {
        if runs.is_multiple_of(64) || input.len() >= MAX_INPUT {
            input = corpus[rng.gen_range(0..corpus.len())].clone();
        }
        mutate(&mut rng, &mut input, &corpus);
        check(&input, runs);
        runs += 1;
    }
    println!("{target}: {runs} inputs (seed {seed})");
    assert!(runs > 0, "{target}: no input tried");
}

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[test]
fn indicator_json() {
    let now = chrono::Utc::now();
    fuzz("indicator", |bytes| {
        for provenance in [
            domain::Provenance::Upstream,
            domain::Provenance::Authenticated("alice"),
            domain::Provenance::Trusted,
        ] {
            if let Ok(indicator) = domain::Indicator::from_slice(bytes, provenance, now) {
                // What was accepted is stored and read back: it must read back the same.
                let stored = indicator.to_json().to_string();
                let again = domain::Indicator::from_slice(
                    stored.as_bytes(),
                    domain::Provenance::Trusted,
                    now,
                )
                .expect("a stored indicator reads back");
                assert_eq!(again, indicator);
            }
        }
    });
}

#[test]
fn stream_filters() {
    fuzz("filter", |bytes| {
        let query = text(bytes);
        let pairs: Vec<(&str, &str)> = query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .collect();
        if let Ok(filter) = domain::Filter::from_pairs(pairs) {
            // A filter is sent back to servers as a query (`sluice stream`): it must parse again.
            let pairs = filter.to_pairs();
            let again =
                domain::Filter::from_pairs(pairs.iter().map(|(key, value)| (*key, value.as_str())))
                    .expect("a filter's own pairs parse");
            assert_eq!(again.to_pairs(), pairs);
        }
    });
}

#[test]
fn cursors_and_positions() {
    fuzz("cursor", |bytes| {
        let text = text(bytes);
        if let Ok(cursor) = text.parse::<domain::Cursor>() {
            assert_eq!(
                cursor.to_string().parse::<domain::Cursor>().unwrap(),
                cursor
            );
        }
        let _ = text.parse::<domain::LogPosition>();
    });
}

#[test]
fn webhook_signatures() {
    fuzz("signature", |bytes| {
        let header = text(bytes);
        let _ = billing::webhook_signature::parse_header(&header);
        let _ = billing::webhook_signature::verify(
            Some(&header),
            b"{}",
            &["whsec_test"],
            1_700_000_000,
        );
    });
}

#[test]
fn api_tokens() {
    fuzz("token", |bytes| {
        if let Ok(token) = billing::ApiToken::parse(&text(bytes)) {
            assert_eq!(
                billing::ApiToken::parse(token.expose()).unwrap().hash(),
                token.hash()
            );
        }
    });
}

#[test]
fn feed_files() {
    fuzz("feed", |bytes| {
        let text = text(bytes);
        for format in [
            domain::feed::FeedFormat::Auto,
            domain::feed::FeedFormat::Json,
            domain::feed::FeedFormat::Ndjson,
            domain::feed::FeedFormat::Csv,
            domain::feed::FeedFormat::Lines,
        ] {
            let _ = domain::feed::parse_feed(&text, format);
        }
    });
}

#[test]
fn stream_frames() {
    // What `sluice stream` and the tests read from a server: any text, typed or refused.
    fuzz("frame", |bytes| {
        let _ = serde_json::from_slice::<domain::Frame>(bytes);
        let _ = serde_json::from_slice::<domain::ErrorBody<'_>>(bytes);
    });
}

/// An entry of the log holding `indicator`, as the hub hands it to the dialects.
fn framed(indicator: domain::Indicator) -> gateway::frames::Framed {
    let json = indicator.to_json().to_string();
    let cursor = "e1.1700000000000-0".parse().unwrap();
    gateway::frames::FramedEntry::new(sluice_log::Entry::new(cursor, indicator, json.into()))
}

fn a_framed_indicator() -> gateway::frames::Framed {
    let indicator = domain::Indicator::from_json(
        serde_json::json!({"indicator": "185.220.101.7", "provider": "p", "tags": ["a", "b"]}),
        domain::Provenance::Trusted,
        chrono::Utc::now(),
    )
    .unwrap();
    framed(indicator)
}

#[test]
fn action_cable_client_frames() {
    use gateway::stream::dialect::{ActionCable, Dialect};
    use gateway::stream::Output;
    use serde_json::Value;

    // One client frame per line, to one connection: what `csirtg-firehose` (or anyone holding
    // a token) sends after `welcome`. Every answer and every indicator frame must stay JSON,
    // whatever identifier the client made the server echo.
    let entry = a_framed_indicator();
    fuzz("action_cable", |bytes| {
        let mut cable = ActionCable::default();
        let mut confirmed: Option<String> = None;
        for line in text(bytes).split('\n') {
            let Some(reply) = cable.on_client_text(line) else {
                if confirmed.is_some() && !cable.ready() {
                    confirmed = None; // an unsubscribe
                }
                continue;
            };
            let reply: Value = serde_json::from_str(&reply).expect("an answer is JSON");
            let identifier = reply["identifier"].as_str().expect("an identifier string");
            match reply["type"].as_str() {
                Some("confirm_subscription") => {
                    assert!(cable.ready());
                    let command: Value = serde_json::from_str(line).unwrap();
                    assert_eq!(command["identifier"], identifier, "echoed byte for byte");
                    confirmed = Some(identifier.to_owned());
                }
                Some("reject_subscription") => {}
                other => panic!("unexpected answer type {other:?}"),
            }
        }
        assert_eq!(cable.ready(), confirmed.is_some());
        let frame = cable
            .encode(&Output::Indicator(entry.clone()))
            .expect("indicators have a frame");
        let frame: Value = serde_json::from_str(&frame).expect("an indicator frame is JSON");
        if let Some(identifier) = &confirmed {
            assert_eq!(frame["identifier"], identifier.as_str());
        }
        let message = frame["message"].as_str().expect("the message is a string");
        assert!(!message.contains('\n'));
        assert!(serde_json::from_str::<Value>(message).is_ok());
    });
}

#[test]
fn cif_client_frames_and_indicators() {
    use gateway::stream::dialect::{ActionCable, Cif, Dialect};
    use gateway::stream::Output;
    use serde_json::Value;

    // What `cif-firehose` sends (`pong`, or any text) is read and never answered. Each input is
    // also a provider's indicator, as it stands and as the text of a well-formed one's fields
    // (most mutations break the JSON itself): once accepted, its CIFv4 frame and csirtg.io
    // message must be one line of JSON in the dialect's terms.
    let now = chrono::Utc::now();
    let subscribed = {
        let mut cable = ActionCable::default();
        let subscribe =
            r#"{"command":"subscribe","identifier":"{\"channel\":\"IndicatorsChannel\"}"}"#;
        cable.on_client_text(subscribe).unwrap();
        cable
    };
    let encode = |indicator: domain::Indicator| {
        let sluice_confidence = indicator.to_json()["confidence"].as_f64();
        let entry = framed(indicator);
        let frame = Cif
            .encode(&Output::Indicator(entry.clone()))
            .expect("indicators have a frame");
        assert!(!frame.contains('\n'));
        let frame: Value = serde_json::from_str(&frame).expect("a CIFv4 frame is JSON");
        assert!(frame.get("reporttime").is_none() && frame.get("reported_at").is_some());
        if let Some(confidence) = sluice_confidence {
            let scaled = frame["confidence"].as_f64().expect("a number");
            assert!((0.0..=4.0).contains(&scaled), "{scaled} from {confidence}");
        }
        let frame = subscribed
            .encode(&Output::Indicator(entry))
            .expect("indicators have a frame");
        assert!(!frame.contains('\n'));
        let frame: Value = serde_json::from_str(&frame).expect("an ActionCable frame is JSON");
        let message: Value = serde_json::from_str(frame["message"].as_str().unwrap()).unwrap();
        assert!(message["tags"].is_string() || message.get("tags").is_none());
    };
    let (accepted, wrapped) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    fuzz("cif", |bytes| {
        let text = text(bytes);
        assert!(Cif.on_client_text(&text).is_none());
        let upstream = domain::Provenance::Upstream;
        if let Ok(indicator) = domain::Indicator::from_slice(bytes, upstream, now) {
            accepted.set(accepted.get() + 1);
            encode(indicator);
        }
        let fields = serde_json::json!({
            "indicator": "185.220.101.7", "provider": "honeypot", "description": text,
            "tags": text.split(',').collect::<Vec<_>>(),
        });
        let described = serde_json::json!({
            "indicator": "185.220.101.7", "provider": "honeypot", "description": text,
        });
        for candidate in [fields, described] {
            if let Ok(indicator) = domain::Indicator::from_json(candidate, upstream, now) {
                wrapped.set(wrapped.get() + 1);
                encode(indicator);
                break;
            }
        }
    });
    // The seeds are indicators: a parser that refused them all would leave the encoders unfuzzed.
    println!(
        "cif: {} inputs accepted as indicators, {} as an indicator's fields",
        accepted.get(),
        wrapped.get()
    );
    assert!(accepted.get() > 0, "no input reached the encoders");
}
