//! The rule against a brute-force model of docs/protocol.md §7.3, plus its edges spelled out.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::engine;
use super::*;
use crate::indicator::CORRELATOR_PROVIDER;
use crate::{Indicator, Provenance, Tlp};

const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 24 * HOUR;

/// A report as the tests write it.
#[derive(Debug, Clone)]
struct Ev {
    key: Key,
    provider: String,
    time: i64,
    arrival: i64,
    confidence: f64,
    tlp: Tlp,
    tags: Vec<String>,
    /// A withdrawal of the provider's reports of the key.
    withdrawn: bool,
}

impl Ev {
    fn report(&self) -> Report<'_> {
        Report {
            key: self.key,
            provider: &self.provider,
            time: self.time,
            arrival: self.arrival,
            confidence: self.confidence,
            tlp: self.tlp,
            tags: &self.tags,
            withdrawn: self.withdrawn,
        }
    }
}

fn key(n: u8) -> Key {
    Key::Address(IpAddr::from([185, 220, 101, n]))
}

fn ev(key_n: u8, provider: &str, time: i64) -> Ev {
    Ev {
        key: key(key_n),
        provider: provider.to_owned(),
        time,
        arrival: 0,
        confidence: 5.0,
        tlp: Tlp::Green,
        tags: vec!["scanner".to_owned()],
        withdrawn: false,
    }
}

/// `provider`'s withdrawal of its reports of key `key_n`, at `time`.
fn withdrawal(key_n: u8, provider: &str, time: i64) -> Ev {
    Ev {
        withdrawn: true,
        ..ev(key_n, provider, time)
    }
}

/// docs/protocol.md §7.3 read literally: for each key, walk its report times in order; at each,
/// count the providers with a report in [t − window, t] that they did not withdraw at or after
/// it (and by t); emit at the first t meeting the threshold whose distance to the previous
/// emission is at least the window. A report withdrawn at its own time is no report.
fn model(rule: &Rule, events: &[Ev]) -> Vec<Emission> {
    let window = rule.window_us();
    let mut by_key: BTreeMap<Key, Vec<&Ev>> = BTreeMap::new();
    let mut withdrawals: BTreeMap<Key, Vec<&Ev>> = BTreeMap::new();
    for event in events {
        match event.withdrawn {
            true => withdrawals.entry(event.key).or_default().push(event),
            false => by_key.entry(event.key).or_default().push(event),
        }
    }
    let mut emissions = Vec::new();
    for (key, events) in by_key {
        let withdrawals = withdrawals.remove(&key).unwrap_or_default();
        let withdrawn_between = |provider: &str, from: i64, to: i64| {
            withdrawals
                .iter()
                .any(|w| w.provider == provider && w.time >= from && w.time <= to)
        };
        let mut times: Vec<i64> = events
            .iter()
            .filter(|e| !withdrawn_between(&e.provider, e.time, e.time))
            .map(|e| e.time)
            .collect();
        times.sort_unstable();
        times.dedup();
        let mut last: Option<i64> = None;
        for t in times {
            // provider → (latest time in the window, its reports at that time)
            let mut latest: BTreeMap<&str, (i64, Vec<&Ev>)> = BTreeMap::new();
            for e in events
                .iter()
                .filter(|e| e.time >= t - window && e.time <= t)
            {
                let slot = latest.entry(&e.provider).or_insert((e.time, Vec::new()));
                if e.time > slot.0 {
                    *slot = (e.time, Vec::new());
                }
                if e.time == slot.0 {
                    slot.1.push(e);
                }
            }
            latest.retain(|provider, (time, _)| !withdrawn_between(provider, *time, t));
            let cooled = last.is_none_or(|l| t >= l + window);
            if latest.len() < rule.threshold || !cooled {
                continue;
            }
            last = Some(t);
            let mut sources: Vec<Source> = latest
                .iter()
                .map(|(provider, (time, _))| Source {
                    provider: (*provider).to_owned(),
                    time: *time,
                })
                .collect();
            sources.sort_by(|a, b| (a.time, &a.provider).cmp(&(b.time, &b.provider)));
            let reports: Vec<&Ev> = latest
                .values()
                .flat_map(|(_, r)| r.iter().copied())
                .collect();
            // `correlated`, the rule's tags some source carried, the others sorted, at most 64.
            let carried: Vec<&String> = reports.iter().flat_map(|r| r.tags.iter()).collect();
            let mut tags = vec!["correlated".to_owned()];
            tags.extend(rule.tags.iter().filter(|t| carried.contains(t)).cloned());
            let mut others: Vec<String> = carried
                .iter()
                .map(|t| (*t).clone())
                .filter(|tag| !tags.contains(tag))
                .collect();
            others.sort_unstable();
            others.dedup();
            tags.extend(others);
            tags.truncate(crate::indicator::MAX_TAGS);
            let count = sources.len();
            emissions.push(Emission {
                rule: rule.name.clone(),
                key,
                time: t,
                count,
                first: sources[0].time,
                last: sources[count - 1].time,
                sources: sources[count.saturating_sub(engine::MAX_SOURCES)..].to_vec(),
                confidence: reports
                    .iter()
                    .map(|r| r.confidence)
                    .fold(rule.confidence, f64::max),
                tlp: reports.iter().map(|r| r.tlp).max().unwrap(),
                tags,
            });
        }
    }
    emissions.sort_by_key(|e| (e.time, e.key));
    emissions
}

/// Runs the engine over `events` in the given order and finalises; returns the emissions and
/// the reports it accepted.
fn run(rule: &Rule, events: &[Ev]) -> (Vec<Emission>, Vec<Ev>) {
    let mut engine = Engine::new(rule.clone());
    let mut out = Vec::new();
    let mut accepted = Vec::new();
    for event in events {
        if engine.observe(&event.report(), &mut out) == Outcome::Accepted {
            accepted.push(event.clone());
        }
    }
    engine.finalise_all(&mut out);
    (out, accepted)
}

fn rule(threshold: usize) -> Rule {
    Rule {
        threshold,
        idle: Duration::from_secs(365 * 24 * 3600),
        ..Rule::default()
    }
}

fn arb_event() -> impl Strategy<Value = Ev> {
    (
        0u8..3,
        prop::sample::select(vec!["a", "b", "c", "d", "e"]),
        0i64..=72,
        prop::sample::select(vec![-SECOND, 0, 0, 0, SECOND, 30 * 60 * SECOND]),
        0u8..=10,
        prop::sample::select(Tlp::ALL.to_vec()),
        prop::sample::select(vec![
            vec!["scanner"],
            vec!["scanner", "ssh"],
            vec!["scanner", "rdp"],
        ]),
        // One in six is a withdrawal.
        prop::sample::select(vec![false, false, false, false, false, true]),
    )
        .prop_map(
            |(k, provider, hours, nudge, confidence, tlp, tags, withdrawn)| Ev {
                key: key(k),
                provider: provider.to_owned(),
                time: DAY * 10_000 + hours * HOUR + nudge,
                arrival: 0,
                confidence: f64::from(confidence),
                tlp,
                tags: tags.into_iter().map(str::to_owned).collect(),
                withdrawn,
            },
        )
}

/// Events in an arrival order that trails the newest by at most the lateness (1 h).
fn arb_late_order() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec((arb_event(), 0..=HOUR), 0..60).prop_map(|mut events| {
        events.sort_by_key(|(e, delay)| e.time + delay);
        events.into_iter().map(|(e, _)| e).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn out_of_order_within_lateness_equals_time_order(events in arb_late_order(), threshold in 2usize..=4) {
        let rule = rule(threshold);
        let (emitted, accepted) = run(&rule, &events);
        prop_assert_eq!(accepted.len(), events.len(), "nothing within the lateness is a straggler");
        prop_assert_eq!(emitted, model(&rule, &events));
    }

    #[test]
    fn any_order_equals_the_model_over_what_was_accepted(events in prop::collection::vec(arb_event(), 0..60), threshold in 2usize..=4) {
        let rule = rule(threshold);
        let (emitted, accepted) = run(&rule, &events);
        prop_assert_eq!(emitted, model(&rule, &accepted));
    }

    /// A live correlator learns of quiet spells from the log's clock (`idle`); a replay learns
    /// of them from the next report's arrival. Both must decide the same.
    #[test]
    fn idle_ticks_change_nothing_a_replay_would_not_see(
        events in arb_late_order(),
        gaps in prop::collection::vec((0i64..=120, any::<bool>(), 0i64..=120), 60),
    ) {
        let rule = Rule { idle: Duration::from_secs(60), ..rule(3) };
        let mut clock = 0;
        let mut timed = Vec::new();
        let mut ticks = Vec::new();
        for (event, (gap, tick, at)) in events.iter().zip(&gaps) {
            let previous = clock;
            clock += gap * SECOND;
            timed.push(Ev { arrival: clock, ..event.clone() });
            ticks.push(tick.then_some(previous + (at * SECOND).min(clock - previous)));
        }
        let mut live = Engine::new(rule.clone());
        let mut replay = Engine::new(rule.clone());
        let (mut live_out, mut replay_out) = (Vec::new(), Vec::new());
        for (event, tick) in timed.iter().zip(&ticks) {
            if let Some(at) = tick {
                live.idle(*at, &mut live_out);
            }
            live.observe(&event.report(), &mut live_out);
            replay.observe(&event.report(), &mut replay_out);
        }
        live.finalise_all(&mut live_out);
        replay.finalise_all(&mut replay_out);
        prop_assert_eq!(live_out, replay_out);
    }
}

fn times(emissions: &[Emission]) -> Vec<i64> {
    emissions.iter().map(|e| e.time).collect()
}

#[test]
fn three_providers_within_the_window_emit_at_the_third_report() {
    let (out, _) = run(
        &rule(3),
        &[ev(1, "a", 0), ev(1, "b", HOUR), ev(1, "c", 2 * HOUR)],
    );
    assert_eq!(times(&out), [2 * HOUR]);
    assert_eq!(out[0].sources.len(), 3);
}

#[test]
fn the_window_includes_both_ends() {
    let exactly = run(
        &rule(3),
        &[ev(1, "a", 0), ev(1, "b", HOUR), ev(1, "c", DAY)],
    )
    .0;
    assert_eq!(times(&exactly), [DAY]);
    let over = run(
        &rule(3),
        &[ev(1, "a", 0), ev(1, "b", HOUR), ev(1, "c", DAY + SECOND)],
    )
    .0;
    assert!(over.is_empty(), "a's report is 24 h + 1 s old: {over:?}");
    let under = run(
        &rule(3),
        &[ev(1, "a", 0), ev(1, "b", HOUR), ev(1, "c", DAY - SECOND)],
    )
    .0;
    assert_eq!(times(&under), [DAY - SECOND]);
}

#[test]
fn one_provider_repeating_itself_counts_once() {
    let out = run(
        &rule(3),
        &[
            ev(1, "a", 0),
            ev(1, "a", HOUR),
            ev(1, "b", 2 * HOUR),
            ev(1, "b", 3 * HOUR),
        ],
    )
    .0;
    assert!(out.is_empty());
}

#[test]
fn after_an_emission_the_key_waits_a_full_window() {
    let t = 2 * HOUR;
    let mut events = vec![ev(1, "a", 0), ev(1, "b", HOUR), ev(1, "c", t)];
    // Still three providers in the window, but inside the cooldown.
    events.push(ev(1, "d", t + DAY - SECOND));
    // The cooldown ends at exactly T + 24 h: b, c, d are all within [T, T + 24 h].
    events.push(ev(1, "e", t + DAY));
    let out = run(&rule(3), &events).0;
    assert_eq!(times(&out), [t, t + DAY]);
    let providers: Vec<&str> = out[1].sources.iter().map(|s| s.provider.as_str()).collect();
    assert_eq!(providers, ["c", "d", "e"]);
}

#[test]
fn reports_at_the_same_instant_are_decided_together() {
    let events = [
        ev(1, "a", HOUR),
        ev(1, "b", HOUR),
        ev(1, "c", HOUR),
        ev(1, "d", HOUR),
    ];
    let out = run(&rule(3), &events).0;
    assert_eq!(times(&out), [HOUR]);
    assert_eq!(
        out[0].sources.len(),
        4,
        "every report at T is part of the decision at T"
    );
}

#[test]
fn reports_older_than_the_lateness_are_stragglers() {
    let mut engine = Engine::new(rule(3));
    let mut out = Vec::new();
    assert_eq!(
        engine.observe(&ev(1, "a", 10 * HOUR).report(), &mut out),
        Outcome::Accepted
    );
    assert_eq!(
        engine.observe(&ev(1, "b", 9 * HOUR).report(), &mut out),
        Outcome::Accepted
    );
    assert_eq!(
        engine.observe(&ev(1, "c", 9 * HOUR - SECOND).report(), &mut out),
        Outcome::Straggler
    );
    assert_eq!(engine.stats().stragglers, 1);
}

#[test]
fn decisions_wait_for_the_lateness_then_come_out() {
    let mut engine = Engine::new(rule(3));
    let mut out = Vec::new();
    for event in [ev(1, "a", 0), ev(1, "b", 1), ev(1, "c", 2)] {
        engine.observe(&event.report(), &mut out);
    }
    assert!(
        out.is_empty(),
        "a report up to 1 h older could still arrive"
    );
    engine.observe(&ev(2, "z", 2 + HOUR).report(), &mut out);
    assert!(
        out.is_empty(),
        "exactly 1 h later, a report at T could still arrive"
    );
    engine.observe(&ev(2, "z", 3 + HOUR).report(), &mut out);
    assert_eq!(times(&out), [2]);
}

#[test]
fn after_a_quiet_spell_the_frontier_follows_the_log_clock() {
    let rule = Rule {
        idle: Duration::from_secs(60),
        ..rule(3)
    };
    let mut engine = Engine::new(rule);
    let mut out = Vec::new();
    // Reports stamped with their arrival, as live traffic is.
    for (provider, at) in [("a", 0), ("b", SECOND), ("c", 2 * SECOND)] {
        let event = Ev {
            arrival: at,
            ..ev(1, provider, at)
        };
        engine.observe(&event.report(), &mut out);
    }
    engine.idle(62 * SECOND, &mut out);
    assert!(
        out.is_empty(),
        "a report up to an hour late could still arrive"
    );
    // Within the hour after the quiet spell, a late report still counts.
    let late = Ev {
        arrival: 30 * 60 * SECOND,
        ..ev(1, "d", 2 * SECOND)
    };
    assert_eq!(engine.observe(&late.report(), &mut out), Outcome::Accepted);
    engine.idle(HOUR + 2 * SECOND, &mut out);
    assert!(out.is_empty());
    engine.idle(HOUR + 2 * SECOND + 1, &mut out);
    assert_eq!(times(&out), [2 * SECOND]);
    assert_eq!(out[0].count, 4);
    let too_late = Ev {
        arrival: HOUR + 3 * SECOND,
        ..ev(1, "e", SECOND)
    };
    assert_eq!(
        engine.observe(&too_late.report(), &mut out),
        Outcome::Straggler
    );
}

#[test]
fn with_no_lateness_a_quiet_spell_decides_everything_seen() {
    let rule = Rule {
        idle: Duration::from_secs(60),
        lateness: Duration::ZERO,
        ..rule(3)
    };
    let mut engine = Engine::new(rule);
    let mut out = Vec::new();
    for (provider, at) in [("a", 0), ("b", SECOND), ("c", 2 * SECOND)] {
        engine.observe(
            &Ev {
                arrival: at,
                ..ev(1, provider, at)
            }
            .report(),
            &mut out,
        );
    }
    engine.idle(61 * SECOND, &mut out);
    assert!(out.is_empty(), "59 s since the last report");
    engine.idle(62 * SECOND, &mut out);
    assert_eq!(times(&out), [2 * SECOND]);
}

#[test]
fn state_is_swept_once_the_window_has_passed() {
    let rule = Rule {
        lateness: Duration::ZERO,
        ..rule(3)
    };
    let mut engine = Engine::new(rule);
    let mut out = Vec::new();
    for n in 0..200u8 {
        engine.observe(&ev(n, "a", i64::from(n)).report(), &mut out);
    }
    let before = engine.stats();
    // With no lateness, the newest report waits for a later one.
    assert_eq!((before.keys, before.pending), (199, 1));
    // Two days later: the first reports are outside every future window.
    engine.observe(&ev(1, "a", 2 * DAY).report(), &mut out);
    engine.observe(&ev(1, "a", 2 * DAY + 1).report(), &mut out);
    let stats = engine.stats();
    assert_eq!(stats.keys, 1, "{stats:?}");
    assert_eq!(stats.sightings, 1);
}

#[test]
fn a_noted_emission_starts_the_cooldown() {
    let mut engine = Engine::new(Rule {
        lateness: Duration::ZERO,
        ..rule(3)
    });
    let mut out = Vec::new();
    engine.note_emission(key(1), 0);
    for event in [ev(1, "a", HOUR), ev(1, "b", 2 * HOUR), ev(1, "c", 3 * HOUR)] {
        engine.observe(&event.report(), &mut out);
    }
    engine.finalise_all(&mut out);
    assert!(out.is_empty(), "within 24 h of a recorded emission");
}

fn indicator(value: Value) -> Indicator {
    Indicator::from_json(value, Provenance::Trusted, now()).unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

#[test]
fn the_rule_considers_tagged_addresses_of_other_providers() {
    let rule = Rule::default();
    let arrival = now().timestamp_micros();
    let considered =
        indicator(json!({"indicator": "008.008.004.004", "provider": "a", "tags": "scanner,ssh"}));
    let report = rule.report(&considered, arrival).unwrap();
    assert_eq!(report.key, Key::Address(IpAddr::from([8, 8, 4, 4])));
    let cases = [
        (
            json!({"indicator": "8.8.8.8", "provider": CORRELATOR_PROVIDER, "tags": "scanner"}),
            Skip::OwnProvider,
        ),
        (
            json!({"indicator": "8.8.8.8", "provider": "a", "tags": "phishing"}),
            Skip::Untagged,
        ),
        (
            json!({"indicator": "example.com", "provider": "a", "tags": "scanner"}),
            Skip::NotAnAddress,
        ),
        (
            json!({"indicator": "8.8.8.0/24", "provider": "a", "tags": "scanner"}),
            Skip::NotAnAddress,
        ),
    ];
    for (value, skip) in cases {
        assert_eq!(
            rule.report(&indicator(value.clone()), arrival).unwrap_err(),
            skip,
            "{value}"
        );
    }
}

#[test]
fn different_spellings_of_one_address_are_one_key() {
    let rule = Rule::default();
    let keys: Vec<Key> = [
        "2001:4860:0:0:0:0:0:8888",
        "2001:4860::8888",
        "2001:4860:0000::8888",
        "2001:4860:0:0::8888",
        "2001:4860::8888",
    ]
    .iter()
    .enumerate()
    .filter_map(|(i, spelling)| {
        let spelling = if i == 4 {
            spelling.to_uppercase()
        } else {
            (*spelling).to_owned()
        };
        let value = json!({"indicator": spelling, "provider": "a", "tags": ["scanner"]});
        let indicator = Indicator::from_json(value, Provenance::Trusted, now()).ok()?;
        Some(rule.report(&indicator, 0).unwrap().key)
    })
    .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
}

#[test]
fn network_and_asn_rules_key_by_what_they_say() {
    let arrival = now().timestamp_micros();
    let by_net = Rule::parse("nets:key=cidr/24/48").unwrap();
    let v4 = indicator(json!({"indicator": "8.8.8.77", "provider": "a", "tags": "scanner"}));
    assert_eq!(
        by_net.report(&v4, arrival).unwrap().key.to_string(),
        "8.8.8.0/24"
    );
    let v6 =
        indicator(json!({"indicator": "2606:4700:1:2::3", "provider": "a", "tags": "scanner"}));
    assert_eq!(
        by_net.report(&v6, arrival).unwrap().key.to_string(),
        "2606:4700:1::/48"
    );
    let by_asn = Rule::parse("asns:key=asn").unwrap();
    let with = indicator(
        json!({"indicator": "8.8.8.8", "provider": "a", "tags": "scanner", "asn": "AS15169"}),
    );
    assert_eq!(by_asn.report(&with, arrival).unwrap().key, Key::Asn(15169));
    assert_eq!(by_asn.report(&v4, arrival).unwrap_err(), Skip::NoKey);
}

#[test]
fn future_report_times_are_clamped_to_the_arrival_tolerance() {
    let rule = Rule::default();
    let arrival = now().timestamp_micros();
    // Validated against a later `now`, so the indicator keeps its future time...
    let future = Indicator::from_json(
        json!({"indicator": "8.8.8.8", "provider": "a", "tags": "scanner", "reporttime": "2027-01-01T00:00:00Z"}),
        Provenance::Trusted,
        "2027-01-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    // ...but the rule never lets it run ahead of the log's clock by more than 5 minutes.
    assert_eq!(
        rule.report(&future, arrival).unwrap().time,
        arrival + 300 * SECOND
    );
}

#[test]
fn an_emission_becomes_spec_shaped_indicator() {
    let events = [
        Ev {
            confidence: 6.0,
            tlp: Tlp::White,
            ..ev(9, "honeypot-eu", 0)
        },
        Ev {
            confidence: 9.5,
            tlp: Tlp::Amber,
            tags: vec!["scanner".into(), "ssh".into()],
            ..ev(9, "honeypot-us", HOUR)
        },
        Ev {
            confidence: 7.0,
            tlp: Tlp::Green,
            ..ev(9, "firewall", 2 * HOUR)
        },
    ];
    let start: i64 = now().timestamp_micros() - DAY;
    let events: Vec<Ev> = events
        .into_iter()
        .map(|e| Ev {
            time: e.time + start,
            ..e
        })
        .collect();
    let (out, _) = run(&rule(3), &events);
    let derived = out[0].to_indicator(now()).unwrap();
    let json = derived.to_json();
    assert_eq!(json["indicator"], "185.220.101.9");
    assert_eq!(json["itype"], "ipv4");
    assert_eq!(json["provider"], CORRELATOR_PROVIDER);
    assert_eq!(json["tags"], json!(["correlated", "scanner", "ssh"]));
    assert_eq!(json["confidence"], json!(9.5));
    assert_eq!(json["tlp"], "amber");
    assert_eq!(json["count"], 3);
    assert_eq!(json["rule"], "scanners");
    assert_eq!(json["reporttime"], "2026-11-22T14:00:00Z");
    assert_eq!(json["firsttime"], "2026-11-22T12:00:00Z");
    assert_eq!(json["lasttime"], "2026-11-22T14:00:00Z");
    assert_eq!(
        json["sources"],
        json!([
            {"provider": "honeypot-eu", "reporttime": "2026-11-22T12:00:00Z"},
            {"provider": "honeypot-us", "reporttime": "2026-11-22T13:00:00Z"},
            {"provider": "firewall", "reporttime": "2026-11-22T14:00:00Z"},
        ])
    );
    assert!(derived.is_correlated());
    let later = Emission {
        time: out[0].time + 1,
        ..out[0].clone()
    };
    assert_eq!(out[0].series(), later.series());
    let other_rule = Emission {
        rule: "other".into(),
        ..out[0].clone()
    };
    assert_ne!(out[0].series(), other_rule.series());
}

#[test]
fn rule_specs_parse_or_say_what_is_wrong() {
    assert_eq!(Rule::parse("scanners").unwrap(), Rule::default());
    let rule = Rule::parse("nets:key=cidr/24,threshold=5,window=12h,lateness=5m,idle=10s,tags=scanner+bruteforce,confidence=9").unwrap();
    assert_eq!(rule.key, KeyKind::Network { v4: 24, v6: 48 });
    assert_eq!(rule.threshold, 5);
    assert_eq!(rule.window, Duration::from_secs(12 * 3600));
    assert_eq!(rule.lateness, Duration::from_secs(300));
    assert_eq!(rule.tags, ["scanner", "bruteforce"]);
    for (spec, expected) in [
        ("Bad Name", "must be 1–64 of"),
        ("x:threshold=1", "at least 2"),
        ("x:threshold=three", "not a whole number"),
        ("x:window=1h,lateness=2h", "lateness must be shorter"),
        ("x:window=soon", "not a duration"),
        ("x:key=cidr/40", "IPv4 prefix must be 24–32"),
        ("x:key=cidr/16", "IPv4 prefix must be 24–32"),
        ("x:key=city", "not one of exact"),
        ("x:colour=red", "unknown option `colour`"),
        ("x:tags=", "at least one tag"),
        ("x:threshold", "not OPTION=VALUE"),
    ] {
        let error = Rule::parse(spec).unwrap_err().to_string();
        assert!(error.contains(expected), "{spec}: {error}");
    }
}

fn arb_crowd() -> impl Strategy<Value = Vec<Ev>> {
    // Up to 300 providers with long names, each with up to 64 tags, reporting one address
    // within an hour.
    prop::collection::vec(
        (
            0usize..300,
            0i64..3600,
            prop::collection::vec("[a-z]{1,20}", 0..63),
        ),
        3..400,
    )
    .prop_map(|mut reports| {
        reports.sort_by_key(|(_, second, _)| *second);
        reports
            .into_iter()
            .map(|(provider, second, mut tags)| {
                tags.push("scanner".to_owned());
                let name = format!("provider-{provider:03}-{}", "x".repeat(200));
                Ev {
                    tags,
                    ..ev(7, &name, second * SECOND)
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the engine decides can be published: tags, sources and size stay in bounds.
    #[test]
    fn every_emission_is_a_valid_indicator(events in arb_crowd()) {
        let rule = Rule { lateness: Duration::ZERO, ..rule(3) };
        let (emitted, _) = run(&rule, &events);
        let providers: std::collections::HashSet<&str> = events.iter().map(|e| e.provider.as_str()).collect();
        prop_assume!(providers.len() >= 3);
        prop_assert!(!emitted.is_empty());
        let start = now().timestamp_micros() - DAY;
        for emission in &emitted {
            let shifted = Emission {
                time: emission.time + start,
                first: emission.first + start,
                last: emission.last + start,
                sources: emission.sources.iter().map(|s| Source { time: s.time + start, ..s.clone() }).collect(),
                ..emission.clone()
            };
            let indicator = shifted.to_indicator(now());
            prop_assert!(indicator.is_ok(), "{:?}", indicator.err());
            prop_assert_eq!(indicator.unwrap().to_json()["count"].as_u64(), Some(emission.count as u64));
        }
    }
}

#[test]
fn a_withdrawn_provider_counts_again_only_when_it_reports_again() {
    let rule = rule(3);
    let (out, _) = run(
        &rule,
        &[
            ev(1, "a", 0),
            ev(1, "b", HOUR),
            withdrawal(1, "a", 2 * HOUR),
            ev(1, "c", 3 * HOUR),
        ],
    );
    assert!(
        out.is_empty(),
        "a withdrew before c reported: two providers"
    );
    let (out, _) = run(
        &rule,
        &[
            ev(1, "a", 0),
            ev(1, "b", HOUR),
            withdrawal(1, "a", 2 * HOUR),
            ev(1, "c", 3 * HOUR),
            ev(1, "a", 4 * HOUR),
        ],
    );
    assert_eq!(times(&out), [4 * HOUR], "a reported again");
    let mut engine = Engine::new(rule.clone());
    let mut out = Vec::new();
    for event in [
        ev(1, "a", 0),
        withdrawal(1, "a", HOUR),
        withdrawal(1, "b", HOUR),
    ] {
        engine.observe(&event.report(), &mut out);
    }
    engine.finalise_all(&mut out);
    let stats = engine.stats();
    assert_eq!(
        (stats.withdrawn, stats.sightings, stats.emissions),
        (1, 0, 0),
        "only a had a sighting to withdraw; a withdrawal decides nothing"
    );
}

#[test]
fn an_emission_stands_after_its_sources_withdraw() {
    let (out, _) = run(
        &rule(3),
        &[
            ev(1, "a", 0),
            ev(1, "b", HOUR),
            ev(1, "c", 2 * HOUR),
            withdrawal(1, "a", 3 * HOUR),
            withdrawal(1, "b", 3 * HOUR),
        ],
    );
    assert_eq!(times(&out), [2 * HOUR]);
}
