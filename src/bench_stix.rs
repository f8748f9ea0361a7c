//! `sluice bench-stix`: what one indicator costs as TAXII's STIX 2.1 objects, beside what it
//! costs as the native stream frame, in one run on one core. It measures; it asserts nothing.
//!
//! Three encodings of the same indicators, each timed over all of them, the fastest of several
//! rounds: the native frame from the stored canonical JSON (what the node does once per entry),
//! the native frame from the indicator (the canonical JSON made first, as at ingest), and the
//! STIX objects (`sluice_stix::objects`, serialised).

use std::hint::black_box;
use std::time::{Duration, Instant};

use domain::{Cursor, Indicator, Provenance, StreamId};

use crate::cli::BenchStixArgs;

pub fn run(args: &BenchStixArgs) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let indicators = (0..args.entries)
        .map(|n| Indicator::from_json(sample(n), Provenance::Trusted, now))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|rejection| anyhow::anyhow!("a sample indicator was refused: {rejection}"))?;
    let cursor = Cursor::new("bench", StreamId::new(now.timestamp_millis() as u64, 0))?;
    let stored: Vec<String> = indicators
        .iter()
        .map(|indicator| indicator.to_json().to_string())
        .collect();

    let mut bytes = (0, 0);
    let frame = fastest(args.rounds, || {
        let mut total = 0;
        for json in &stored {
            total += black_box(domain::protocol::indicator_frame(&cursor, json)).len();
        }
        bytes.0 = total;
    });
    let frame_from_indicator = fastest(args.rounds, || {
        for indicator in &indicators {
            let json = indicator.to_json().to_string();
            black_box(domain::protocol::indicator_frame(&cursor, &json));
        }
    });
    let stix = fastest(args.rounds, || {
        let mut total = 0;
        for indicator in &indicators {
            for object in sluice_stix::objects(indicator, sluice_stix::Lifecycle::default()) {
                total += black_box(serde_json::to_vec(&object).unwrap_or_default()).len();
            }
        }
        bytes.1 = total;
    });

    let per = |time: Duration| time.as_nanos() as f64 / args.entries as f64;
    println!(
        "{} indicators (ipv4, url, fqdn, sha256 in turn), fastest of {} rounds, one core",
        args.entries, args.rounds
    );
    println!("| encoding | per indicator | bytes per indicator |");
    println!("|---|---|---|");
    println!(
        "| native frame from the stored JSON (once per entry per node) | {:.0} ns | {:.0} |",
        per(frame),
        bytes.0 as f64 / args.entries as f64
    );
    println!(
        "| native frame from the indicator (canonical JSON, then the frame) | {:.0} ns | {:.0} |",
        per(frame_from_indicator),
        bytes.0 as f64 / args.entries as f64
    );
    println!(
        "| STIX 2.1 objects from the indicator (built and serialised) | {:.0} ns | {:.0} |",
        per(stix),
        bytes.1 as f64 / args.entries as f64
    );
    println!(
        "STIX / native from the indicator: {:.2}×; STIX / native from the stored JSON: {:.1}×",
        per(stix) / per(frame_from_indicator),
        per(stix) / per(frame)
    );
    Ok(())
}

/// The n-th sample indicator: the itypes feeds send most, with tags and a description.
fn sample(n: usize) -> serde_json::Value {
    let indicator = match n % 4 {
        0 => format!("5.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255),
        1 => format!("http://phish-{n}.example.com/login/verify.php?id={n}"),
        2 => format!("c2-{n}.example.net"),
        _ => format!("{:064x}", n as u128 * 0x9e37_79b9_7f4a_7c15),
    };
    serde_json::json!({
        "indicator": indicator,
        "tags": ["scanner", "ssh"],
        "confidence": 7,
        "tlp": "green",
        "provider": "bench.example",
        "description": "ssh brute force against the sensor",
    })
}

/// The shortest of `rounds` runs of `work`.
fn fastest(rounds: usize, mut work: impl FnMut()) -> Duration {
    (0..rounds.max(1))
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}
