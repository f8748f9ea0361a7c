//! Unit tests of the indicator model: one `check` helper per rule, and properties for the
//! parser (never panics) and the stored form (re-reading `to_json` gives the same indicator).

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn accept(value: Value) -> Indicator {
    Indicator::from_json(value.clone(), Provenance::Authenticated("alice"), now())
        .unwrap_or_else(|rejection| panic!("{value} was rejected: {rejection}"))
}

/// `expected` is the rejected field and a fragment of the reason.
fn reject(value: Value, field: &str, reason: &str) {
    let rejection = Indicator::from_json(value.clone(), Provenance::Authenticated("alice"), now())
        .expect_err(&format!("{value} should be rejected"));
    assert_eq!(rejection.field, field, "{value}: {rejection}");
    assert!(
        rejection.reason.contains(reason),
        "{value}: {rejection:?} should say {reason:?}"
    );
    assert_eq!(
        rejection.to_string(),
        format!("{}: {}", rejection.field, rejection.reason)
    );
}

fn check_indicator(input: &str, expected: Result<(&str, Itype), &str>) {
    let got = Indicator::from_json(
        json!({ "indicator": input }),
        Provenance::Authenticated("alice"),
        now(),
    );
    match (got, expected) {
        (Ok(indicator), Ok((text, itype))) => {
            assert_eq!(
                (indicator.indicator(), indicator.itype()),
                (text, itype),
                "{input:?}"
            );
        }
        (Err(rejection), Err(reason)) => {
            assert_eq!(rejection.field, "indicator", "{input:?}: {rejection}");
            assert!(
                rejection.reason.contains(reason),
                "{input:?}: {rejection} should say {reason:?}"
            );
        }
        (got, expected) => panic!("{input:?}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn normalises_indicators() {
    use Itype::*;
    check_indicator(" 8.8.8.8 ", Ok(("8.8.8.8", Ipv4)));
    check_indicator(
        "010.001.002.003",
        Err("`10.1.2.3` is a private-use address"),
    );
    check_indicator("185.010.001.009", Ok(("185.10.1.9", Ipv4)));
    check_indicator("2606:4700:0:0::1111", Ok(("2606:4700::1111", Ipv6)));
    check_indicator("2606:4700:0:0:0:0:0:1111", Ok(("2606:4700::1111", Ipv6)));
    check_indicator("001.001.001.000/24", Ok(("1.1.1.0/24", Cidr)));
    check_indicator("2606:4700::/32", Ok(("2606:4700::/32", Cidr)));
    check_indicator("EXAMPLE.com", Ok(("example.com", Fqdn)));
    check_indicator("example.com.", Ok(("example.com", Fqdn)));
    check_indicator(
        "http://Example.COM/Path/",
        Ok(("http://example.com/Path", Url)),
    );
    check_indicator("HTTPS://Example.COM", Ok(("https://example.com", Url)));
    check_indicator("user@Example.com", Ok(("user@example.com", Email)));
    check_indicator("AS13335", Ok(("AS13335", Asn)));
    check_indicator("as13335", Ok(("AS13335", Asn)));
    check_indicator("13335", Ok(("AS13335", Asn)));
    check_indicator(
        "D41D8CD98F00B204E9800998ECF8427E",
        Ok(("d41d8cd98f00b204e9800998ecf8427e", Md5)),
    );
    check_indicator(&"A".repeat(40), Ok((&"a".repeat(40), Sha1)));
    check_indicator(&"F".repeat(64), Ok((&"f".repeat(64), Sha256)));
    check_indicator(&"0".repeat(128), Ok((&"0".repeat(128), Sha512)));
}

#[test]
fn rejects_undetectable_indicators() {
    check_indicator("", Err("is empty"));
    check_indicator("   ", Err("is empty"));
    check_indicator("1.2.3", Err("cannot tell what `1.2.3` is"));
    check_indicator("999.1.1.1", Err("cannot tell what"));
    check_indicator("not an indicator", Err("cannot tell what"));
    check_indicator("example.com/path", Err("cannot tell what"));
    check_indicator(
        &"a".repeat(MAX_INDICATOR_TEXT_BYTES + 1),
        Err("the limit is 8192"),
    );
    let long = format!("{}!", "x".repeat(200));
    let rejection =
        Indicator::from_json(json!({ "indicator": long }), Provenance::Trusted, now()).unwrap_err();
    assert!(
        rejection.reason.chars().count() < 400,
        "echoed input is cut: {rejection}"
    );
    reject(json!({}), "indicator", "missing");
    reject(json!({ "indicator": null }), "indicator", "missing");
    reject(
        json!({ "indicator": 42 }),
        "indicator",
        "expected a string, found a number",
    );
    reject(
        json!({ "indicator": ["8.8.8.8"] }),
        "indicator",
        "found an array",
    );
}

#[test]
fn rejects_reserved_addresses() {
    for (input, reason) in [
        ("10.1.2.3", "private-use address (RFC 1918)"),
        ("172.16.0.1", "private-use"),
        ("192.168.001.001", "private-use"),
        ("127.0.0.1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.1", "multicast"),
        ("0.1.2.3", "this network"),
        ("100.64.1.1", "CGNAT"),
        ("255.255.255.255", "broadcast"),
        ("198.18.0.1", "benchmarking"),
        ("240.0.0.1", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("::ffff:8.8.8.8", "send the IPv4 address itself"),
        ("10.0.0.0/8", "private-use"),
        ("10.1.0.0/16", "private-use"),
        ("192.0.0.0/8", "overlaps 192.0.0.0/24"),
        ("0.0.0.0/0", "overlaps 0.0.0.0/8"),
        ("2001:db8::/48", "documentation"),
        ("fc00::/6", "overlaps fc00::/7"),
        ("http://10.0.0.1/admin", "points at 10.0.0.1, a private-use"),
        ("http://[::1]:8080/", "points at ::1"),
        ("AS0", "reserved (RFC 7607)"),
        ("AS64512", "private use"),
        ("AS65536", "documentation"),
        ("4200000000", "private use"),
    ] {
        check_indicator(input, Err(reason));
    }
    // Their public neighbours pass.
    check_indicator("172.32.0.1", Ok(("172.32.0.1", Itype::Ipv4)));
    check_indicator("100.128.0.1", Ok(("100.128.0.1", Itype::Ipv4)));
    check_indicator("203.0.114.1", Ok(("203.0.114.1", Itype::Ipv4)));
    check_indicator("185.220.101.0/24", Ok(("185.220.101.0/24", Itype::Cidr)));
    check_indicator("http://8.8.8.8/x", Ok(("http://8.8.8.8/x", Itype::Url)));
    check_indicator(
        "http://10.example.com/x",
        Ok(("http://10.example.com/x", Itype::Url)),
    );
    check_indicator("AS65552", Ok(("AS65552", Itype::Asn)));
}

#[test]
fn rejects_cidrs_with_host_bits() {
    check_indicator(
        "1.1.1.1/24",
        Err("`1.1.1.1/24` has host bits set: send the network `1.1.1.0/24`"),
    );
    check_indicator("2606:4700::1/32", Err("send the network `2606:4700::/32`"));
    check_indicator("1.1.1.1/32", Ok(("1.1.1.1/32", Itype::Cidr)));
}

#[test]
fn checks_a_given_itype() {
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "itype": "ipv4"})).itype(),
        Itype::Ipv4
    );
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "itype": "IPv4"})).itype(),
        Itype::Ipv4
    );
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "itype": null})).itype(),
        Itype::Ipv4
    );
    reject(
        json!({"indicator": "Example.com", "itype": "ipv4"}),
        "itype",
        "indicator `example.com` is an fqdn, not ipv4",
    );
    reject(
        json!({"indicator": "8.8.8.8", "itype": "cidr"}),
        "itype",
        "is an ipv4, not cidr",
    );
    reject(
        json!({"indicator": "8.8.8.8", "itype": "domain"}),
        "itype",
        "unknown itype `domain`: known itypes are url",
    );
    reject(
        json!({"indicator": "8.8.8.8", "itype": 4}),
        "itype",
        "expected a string",
    );
    // A wrong itype is reported before the address is found to be private.
    reject(
        json!({"indicator": "10.0.0.1", "itype": "fqdn"}),
        "itype",
        "is an ipv4, not fqdn",
    );
}

#[test]
fn takes_the_provider_from_the_provenance() {
    let payload = json!({"indicator": "8.8.8.8", "provider": "mallory"});
    let api =
        Indicator::from_json(payload.clone(), Provenance::Authenticated("alice"), now()).unwrap();
    assert_eq!(api.provider(), "alice");
    assert_eq!(
        api.to_json()["provider"],
        "alice",
        "the payload's provider is not kept as an extra"
    );
    let trusted = Indicator::from_json(payload, Provenance::Trusted, now()).unwrap();
    assert_eq!(trusted.provider(), "mallory");

    let trusted = |provider: Value| {
        Indicator::from_json(
            json!({"indicator": "8.8.8.8", "provider": provider}),
            Provenance::Trusted,
            now(),
        )
    };
    assert_eq!(
        trusted(json!("  feeds.example  ")).unwrap().provider(),
        "feeds.example"
    );
    assert_eq!(
        trusted(json!("x".repeat(256))).unwrap().provider().len(),
        256
    );
    for (provider, reason) in [
        (json!(null), "missing"),
        (json!(""), "is empty"),
        (json!("   "), "is empty"),
        (json!(7), "expected a string, found a number"),
        (json!("x".repeat(257)), "longer than 256"),
        (json!("a\u{7}b"), "control characters"),
    ] {
        let rejection = trusted(provider.clone()).expect_err(&provider.to_string());
        assert_eq!(rejection.field, "provider");
        assert!(rejection.reason.contains(reason), "{provider}: {rejection}");
    }
    // Authenticated ignores even an invalid payload provider.
    assert!(Indicator::from_json(
        json!({"indicator": "8.8.8.8", "provider": 7}),
        Provenance::Authenticated("alice"),
        now()
    )
    .is_ok());
}

#[test]
fn recognises_correlated_indicators() {
    let derived = Indicator::from_json(
        json!({"indicator": "8.8.8.8", "provider": CORRELATOR_PROVIDER, "tags": ["correlated", "scanner"]}),
        Provenance::Trusted,
        now(),
    )
    .unwrap();
    assert!(derived.is_correlated());
    // The tag alone would not make an indicator correlated, and from outside it is refused.
    reject(
        json!({"indicator": "8.8.8.8", "tags": "correlated"}),
        "tags",
        "reserved",
    );
}

fn check_tags(tags: Value, expected: &[&str]) {
    let indicator = accept(json!({"indicator": "8.8.8.8", "tags": tags}));
    assert_eq!(indicator.tags(), expected, "{tags}");
}

#[test]
fn normalises_tags() {
    check_tags(json!(null), &[]);
    check_tags(json!(""), &[]);
    check_tags(json!([]), &[]);
    check_tags(json!("Scanner, SSH,,scanner "), &["scanner", "ssh"]);
    check_tags(
        json!(["SSH", " scanner ", "", "ssh", "Brute-Force"]),
        &["ssh", "scanner", "brute-force"],
    );
    check_tags(json!(["a,b", "b", "C"]), &["a", "b", "c"]);
    check_tags(json!("ÉCOLE"), &["école"]);
    let many: Vec<String> = (0..MAX_TAGS).map(|n| format!("t{n}")).collect();
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "tags": many}))
            .tags()
            .len(),
        MAX_TAGS
    );
    let duplicates: Vec<&str> = vec!["same"; 1000];
    check_tags(json!(duplicates), &["same"]);

    let too_many: Vec<String> = (0..=MAX_TAGS).map(|n| format!("t{n}")).collect();
    reject(
        json!({"indicator": "8.8.8.8", "tags": too_many}),
        "tags",
        "more than 64 distinct tags",
    );
    reject(
        json!({"indicator": "8.8.8.8", "tags": "x".repeat(129)}),
        "tags",
        "longer than 128",
    );
    reject(
        json!({"indicator": "8.8.8.8", "tags": ["ok", 3]}),
        "tags",
        "item 1 is a number",
    );
    reject(
        json!({"indicator": "8.8.8.8", "tags": {"a": 1}}),
        "tags",
        "found an object",
    );
    reject(
        json!({"indicator": "8.8.8.8", "tags": true}),
        "tags",
        "found a boolean",
    );
    reject(
        json!({"indicator": "8.8.8.8", "tags": "a\nb"}),
        "tags",
        "control characters",
    );
}

fn check_confidence(confidence: Value, expected: Result<f64, &str>) {
    let got = Indicator::from_json(
        json!({"indicator": "8.8.8.8", "confidence": confidence}),
        Provenance::Authenticated("alice"),
        now(),
    );
    match (got, expected) {
        (Ok(indicator), Ok(value)) => assert_eq!(indicator.confidence(), value, "{confidence}"),
        (Err(rejection), Err(reason)) => {
            assert_eq!(rejection.field, "confidence");
            assert!(
                rejection.reason.contains(reason),
                "{confidence}: {rejection}"
            );
        }
        (got, expected) => panic!("{confidence}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn validates_confidence() {
    assert_eq!(accept(json!({"indicator": "8.8.8.8"})).confidence(), 5.0);
    check_confidence(json!(null), Ok(5.0));
    check_confidence(json!(0), Ok(0.0));
    check_confidence(json!(10), Ok(10.0));
    check_confidence(json!(7.5), Ok(7.5));
    check_confidence(json!(8.333333), Ok(8.33));
    check_confidence(json!(-0.0), Ok(0.0));
    check_confidence(json!("7"), Ok(7.0));
    check_confidence(json!(" 9.5 "), Ok(9.5));
    check_confidence(
        json!(10.01),
        Err("is 10.01: expected a number from 0 to 10"),
    );
    check_confidence(json!(-1), Err("expected a number from 0 to 10"));
    check_confidence(json!(85), Err("is 85"));
    check_confidence(json!("high"), Err("is not a number"));
    check_confidence(json!("NaN"), Err("is not a number"));
    check_confidence(json!("inf"), Err("is not a number"));
    check_confidence(json!(true), Err("found a boolean"));
    check_confidence(json!([7]), Err("found an array"));
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "confidence": 7})).to_json()["confidence"],
        json!(7)
    );
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "confidence": 7.25})).to_json()["confidence"],
        json!(7.25)
    );
}

#[test]
fn validates_tlp() {
    assert_eq!(accept(json!({"indicator": "8.8.8.8"})).tlp(), Tlp::Amber);
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "tlp": "GREEN"})).tlp(),
        Tlp::Green
    );
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "tlp": "white"})).tlp(),
        Tlp::White
    );
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "tlp": "Red"})).tlp(),
        Tlp::Red
    );
    reject(
        json!({"indicator": "8.8.8.8", "tlp": "blue"}),
        "tlp",
        "unknown TLP level `blue`",
    );
    reject(
        json!({"indicator": "8.8.8.8", "tlp": 2}),
        "tlp",
        "found a number",
    );
}

#[test]
fn handles_times() {
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    };
    let default = accept(json!({"indicator": "8.8.8.8"}));
    assert_eq!(default.reporttime(), now());
    assert_eq!((default.firsttime(), default.lasttime()), (None, None));

    let past = accept(json!({
        "indicator": "8.8.8.8",
        "reporttime": "2016-03-23 20:22:27 UTC",
        "firsttime": "2016-03-23T20:22:27.000000Z",
        "lasttime": "2016-06-05 12:03",
    }));
    assert_eq!(past.reporttime(), at("2016-03-23T20:22:27Z"));
    assert_eq!(past.firsttime(), Some(at("2016-03-23T20:22:27Z")));
    assert_eq!(past.lasttime(), Some(at("2016-06-05T12:03:00Z")));
    let json = past.to_json();
    assert_eq!(json["reporttime"], "2016-03-23T20:22:27Z");
    assert_eq!(json["lasttime"], "2016-06-05T12:03:00Z");

    let reported =
        |text: &str| accept(json!({"indicator": "8.8.8.8", "reporttime": text})).reporttime();
    assert_eq!(
        reported("2024-05-01T12:04:59Z"),
        at("2024-05-01T12:04:59Z"),
        "within 5 minutes: kept"
    );
    assert_eq!(
        reported("2024-05-01T12:05:00Z"),
        at("2024-05-01T12:05:00Z"),
        "exactly 5 minutes: kept"
    );
    assert_eq!(
        reported("2024-05-01T12:05:01Z"),
        now(),
        "beyond 5 minutes: clamped"
    );
    assert_eq!(reported("2999-01-01T00:00:00Z"), now());
    assert_eq!(
        reported("2024-05-01T14:00:00+02:00"),
        now(),
        "offsets count"
    );
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8", "reporttime": "2024-05-01T11:00:00.5+00:00"}))
            .to_json()["reporttime"],
        "2024-05-01T11:00:00.500Z"
    );

    reject(
        json!({"indicator": "8.8.8.8", "reporttime": "yesterday"}),
        "reporttime",
        "`yesterday` is not a time",
    );
    reject(
        json!({"indicator": "8.8.8.8", "firsttime": 1458764547}),
        "firsttime",
        "found a number",
    );
    reject(
        json!({"indicator": "8.8.8.8", "lasttime": "2016-02-30"}),
        "lasttime",
        "RFC 3339",
    );
}

#[test]
fn handles_valid_until_and_its_aliases() {
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    };
    let until = |value: Value| accept(value).valid_until();
    assert_eq!(accept(json!({"indicator": "8.8.8.8"})).valid_until(), None);
    assert!(accept(json!({"indicator": "8.8.8.8"}))
        .to_json()
        .get("valid_until")
        .is_none());

    // Every time spelling, normalised to UTC, written RFC 3339 `Z`.
    let offset =
        accept(json!({"indicator": "8.8.8.8", "valid_until": "2024-05-02T14:00:00+02:00"}));
    assert_eq!(offset.valid_until(), Some(at("2024-05-02T12:00:00Z")));
    assert_eq!(offset.to_json()["valid_until"], "2024-05-02T12:00:00Z");
    assert_eq!(
        until(json!({"indicator": "8.8.8.8", "valid_until": "2024-05-02 20:22:27 UTC"})),
        Some(at("2024-05-02T20:22:27Z"))
    );
    assert_eq!(
        until(json!({"indicator": "8.8.8.8", "valid_until": "2024-06-01"})),
        Some(at("2024-06-01T00:00:00Z"))
    );
    assert_eq!(
        until(json!({"indicator": "8.8.8.8", "valid_until": null})),
        None,
        "null is absent"
    );

    // `expires`: the same, stored as `valid_until`.
    let expires = accept(json!({"indicator": "8.8.8.8", "expires": "2024-05-03T00:00:00Z"}));
    assert_eq!(expires.valid_until(), Some(at("2024-05-03T00:00:00Z")));
    let json = expires.to_json();
    assert_eq!(json["valid_until"], "2024-05-03T00:00:00Z");
    assert!(json.get("expires").is_none(), "{json}");

    // `ttl`: seconds (number or digits) or a duration, from the reporttime.
    let reported = json!({"indicator": "8.8.8.8", "reporttime": "2024-05-01T10:00:00Z"});
    let with_ttl = |ttl: Value| {
        let mut object = reported.clone();
        object["ttl"] = ttl;
        object
    };
    assert_eq!(
        until(with_ttl(json!(3600))),
        Some(at("2024-05-01T11:00:00Z"))
    );
    assert_eq!(
        until(with_ttl(json!("86400"))),
        Some(at("2024-05-02T10:00:00Z"))
    );
    assert_eq!(
        until(with_ttl(json!("14d"))),
        Some(at("2024-05-15T10:00:00Z"))
    );
    assert_eq!(
        until(with_ttl(json!("1h 30m"))),
        Some(at("2024-05-01T11:30:00Z"))
    );
    assert_eq!(
        until(json!({"indicator": "8.8.8.8", "ttl": 60})),
        Some(now() + TimeDelta::seconds(60)),
        "from the ingest time when there is no reporttime"
    );
    let ttl = accept(with_ttl(json!("2h")));
    assert!(ttl.to_json().get("ttl").is_none());
    round_trips(&ttl);
    round_trips(&expires);
    round_trips(&offset);

    // Sluice's own JSON is read as written: only `valid_until`, the rest are extras.
    let stored = json!({
        "indicator": "8.8.8.8", "provider": "p", "reporttime": "2024-05-01T10:00:00Z",
        "valid_until": "2024-05-01T09:00:00Z", "expires": "whenever", "ttl": -1,
    });
    let trusted = Indicator::from_json(stored, Provenance::Trusted, now()).unwrap();
    assert_eq!(trusted.valid_until(), Some(at("2024-05-01T09:00:00Z")));
    assert_eq!(trusted.field("expires"), Some(&json!("whenever")));
    assert_eq!(trusted.field("ttl"), Some(&json!(-1)));
    round_trips(&trusted);

    // Rejections name the field the provider used.
    reject(
        json!({"indicator": "8.8.8.8", "reporttime": "2024-05-01T10:00:00Z", "valid_until": "2024-05-01T10:00:00Z"}),
        "valid_until",
        "2024-05-01T10:00:00Z is not after the reporttime 2024-05-01T10:00:00Z",
    );
    reject(
        json!({"indicator": "8.8.8.8", "valid_until": "2024-04-30"}),
        "valid_until",
        "is not after the reporttime",
    );
    reject(
        json!({"indicator": "8.8.8.8", "valid_until": "tomorrow"}),
        "valid_until",
        "`tomorrow` is not a time",
    );
    reject(
        json!({"indicator": "8.8.8.8", "valid_until": 1714600000}),
        "valid_until",
        "found a number",
    );
    reject(
        json!({"indicator": "8.8.8.8", "reporttime": "2024-05-01T10:00:00Z", "expires": "2024-05-01T09:59:59Z"}),
        "expires",
        "is not after the reporttime",
    );
    reject(
        json!({"indicator": "8.8.8.8", "expires": "never"}),
        "expires",
        "`never` is not a time",
    );
    reject(with_ttl(json!(0)), "ttl", "must be more than zero");
    reject(with_ttl(json!("0s")), "ttl", "must be more than zero");
    reject(with_ttl(json!(-5)), "ttl", "is -5: expected whole seconds");
    reject(with_ttl(json!(1.5)), "ttl", "is 1.5");
    reject(with_ttl(json!("soon")), "ttl", "`soon` is not a duration");
    assert_eq!(
        until(with_ttl(json!(" 30 "))),
        Some(at("2024-05-01T10:00:30Z")),
        "digits are seconds"
    );
    reject(with_ttl(json!([60])), "ttl", "found an array");
    reject(with_ttl(json!("200y")), "ttl", "more than 100 years");
    reject(with_ttl(json!(u64::MAX)), "ttl", "more than 100 years");
    reject(
        json!({"indicator": "8.8.8.8", "valid_until": "2024-06-01", "expires": "2024-06-01"}),
        "expires",
        "`valid_until` is given too",
    );
    reject(
        json!({"indicator": "8.8.8.8", "expires": "2024-06-01", "ttl": 60}),
        "ttl",
        "`expires` is given too: send one of valid_until, expires or ttl",
    );
}

#[test]
fn keeps_optional_and_extra_fields() {
    let indicator = accept(json!({
        "indicator": "8.8.8.8",
        "description": "sourced from firewall logs",
        "portlist": "22,80",
        "protocol": 6,
        "cc": "US",
        "asn": 15169,
        "asn_desc": "GOOGLE",
        "rdata": ["a", "b"],
        "count": "12",
        "sources": [{"provider": "a", "reporttime": "2024-05-01T11:00:00Z"}],
        "nested": {"deep": [1, 2.5, null, true]},
        "nothing": null,
        "id": 337406,
    }));
    assert_eq!(indicator.description(), Some("sourced from firewall logs"));
    assert_eq!(
        indicator.field("count"),
        Some(&json!(12)),
        "digit strings become numbers"
    );
    assert_eq!(
        indicator.field("indicator"),
        None,
        "core fields have their own accessors"
    );
    let out = indicator.to_json();
    for (field, value) in [
        ("portlist", json!("22,80")),
        ("protocol", json!(6)),
        ("cc", json!("US")),
        ("asn", json!(15169)),
        ("asn_desc", json!("GOOGLE")),
        ("rdata", json!(["a", "b"])),
        (
            "sources",
            json!([{"provider": "a", "reporttime": "2024-05-01T11:00:00Z"}]),
        ),
        ("nested", json!({"deep": [1, 2.5, null, true]})),
        ("nothing", json!(null)),
        ("id", json!(337406)),
    ] {
        assert_eq!(out[field], value, "{field}");
    }

    let dropped = accept(json!({"indicator": "8.8.8.8", "description": null})).to_json();
    assert!(
        dropped.get("description").is_none(),
        "a null known field is absent"
    );

    reject(
        json!({"indicator": "8.8.8.8", "description": 5}),
        "description",
        "expected a string, found a number",
    );
    reject(
        json!({"indicator": "8.8.8.8", "portlist": -1}),
        "portlist",
        "non-negative integer",
    );
    reject(
        json!({"indicator": "8.8.8.8", "portlist": [22]}),
        "portlist",
        "found an array",
    );
    reject(
        json!({"indicator": "8.8.8.8", "cc": ["US"]}),
        "cc",
        "expected a string",
    );
    reject(
        json!({"indicator": "8.8.8.8", "rdata": [1]}),
        "rdata",
        "array of strings",
    );
    reject(
        json!({"indicator": "8.8.8.8", "count": "many"}),
        "count",
        "non-negative integer, found a string",
    );
    reject(
        json!({"indicator": "8.8.8.8", "count": 1.5}),
        "count",
        "non-negative integer",
    );
}

#[test]
fn writes_the_canonical_form() {
    let indicator = accept(json!({
        "indicator": "Example.COM.",
        "tags": "Botnet,C2",
        "confidence": "8",
        "tlp": "GREEN",
        "reporttime": "2024-05-01T11:00:00+01:00",
    }));
    assert_eq!(
        indicator.to_json(),
        json!({
            "indicator": "example.com",
            "itype": "fqdn",
            "provider": "alice",
            "tags": ["botnet", "c2"],
            "confidence": 8,
            "tlp": "green",
            "reporttime": "2024-05-01T10:00:00Z",
        })
    );
    assert_eq!(indicator.network(), None);
    assert_eq!(
        accept(json!({"indicator": "8.8.8.8"})).network(),
        Some("8.8.8.8/32".parse().unwrap())
    );
    assert_eq!(
        accept(json!({"indicator": "2606:4700::1111"})).network(),
        Some("2606:4700::1111/128".parse().unwrap())
    );
    assert_eq!(
        accept(json!({"indicator": "1.1.1.0/24"})).network(),
        Some("1.1.1.0/24".parse().unwrap())
    );
}

#[test]
fn enforces_the_size_limit() {
    let with_description =
        |bytes: usize| json!({"indicator": "8.8.8.8", "description": "x".repeat(bytes)});
    assert!(Indicator::from_json(
        with_description(60_000),
        Provenance::Authenticated("alice"),
        now()
    )
    .is_ok());
    reject(
        with_description(MAX_INDICATOR_BYTES),
        "object",
        "the limit is 65536 bytes",
    );

    // The canonical form of anything accepted fits the limit exactly at the edge.
    let base = accept(with_description(0)).to_json().to_string().len();
    let largest = with_description(MAX_INDICATOR_BYTES - base);
    let indicator = accept(largest);
    assert_eq!(indicator.to_json().to_string().len(), MAX_INDICATOR_BYTES);
    reject(
        with_description(MAX_INDICATOR_BYTES - base + 1),
        "object",
        "is 65537 bytes",
    );

    let raw = format!(
        r#"{{"indicator":"8.8.8.8","pad":"{}"}}"#,
        " ".repeat(MAX_INDICATOR_BYTES)
    );
    let rejection = Indicator::from_slice(raw.as_bytes(), Provenance::Trusted, now()).unwrap_err();
    assert_eq!(rejection.field, "object");
    assert!(
        rejection.reason.contains("the limit is 65536 bytes"),
        "{rejection}"
    );
}

#[test]
fn reads_raw_bytes() {
    let read =
        |bytes: &[u8]| Indicator::from_slice(bytes, Provenance::Authenticated("alice"), now());
    assert_eq!(
        read(br#" {"indicator":"8.8.8.8"} "#).unwrap().indicator(),
        "8.8.8.8"
    );
    for (bytes, reason) in [
        (&b"\xff\xfe{}"[..], "not valid UTF-8 (at byte 0)"),
        (b"{\"indicator\":", "not valid JSON"),
        (b"", "not valid JSON"),
        (
            b"[{\"indicator\":\"8.8.8.8\"}]",
            "expected a JSON object, found an array",
        ),
        (b"\"8.8.8.8\"", "found a string"),
        (b"null", "found null"),
        (b"{\"indicator\":\"8.8.8.8\"} {}", "not valid JSON"),
    ] {
        let rejection = read(bytes).expect_err(&String::from_utf8_lossy(bytes));
        assert_eq!(rejection.field, "object");
        assert!(rejection.reason.contains(reason), "{rejection}");
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(
        read(deep.as_bytes()).is_err(),
        "deep nesting is refused, not a stack overflow"
    );
}

fn round_trips(indicator: &Indicator) {
    let again = Indicator::from_json(indicator.to_json(), Provenance::Trusted, now())
        .expect("re-reading to_json");
    assert_eq!(&again, indicator);
    let text = indicator.to_json().to_string();
    let again = Indicator::from_slice(text.as_bytes(), Provenance::Trusted, Utc::now())
        .expect("re-reading the text");
    assert_eq!(&again, indicator);
}

#[test]
fn round_trips_examples() {
    for value in [
        json!({"indicator": "8.8.8.8"}),
        json!({"indicator": "http://Example.COM/a//", "tags": "A,b", "confidence": 9.99, "count": "3"}),
        json!({"indicator": "185.220.101.0/24", "reporttime": "2024-05-01T12:04:00.123456789Z", "x": null}),
        json!({"indicator": "AS3.10", "firsttime": "2016-03-23", "lasttime": "2016-03-23 20:22:27 UTC"}),
    ] {
        round_trips(&accept(value));
    }
}

/// Plausible indicator objects: mostly valid values in every spelling the normalisers rewrite,
/// with some junk in every field, so that many are accepted and the round trip is exercised.
fn indicator_objects() -> impl Strategy<Value = Value> {
    let padded = |octet: u8, pad: bool| {
        if pad {
            format!("{octet:03}")
        } else {
            octet.to_string()
        }
    };
    let indicator = prop_oneof![
        3 => (any::<[u8; 4]>(), any::<bool>(), prop::option::of(0u8..=32)).prop_map(move |(octets, pad, prefix)| {
            let address = octets.map(|octet| padded(octet, pad)).join(".");
            match prefix {
                Some(prefix) => format!("{address}/{prefix}"),
                None => address,
            }
        }),
        2 => (any::<u128>(), any::<bool>(), prop::option::of(0u8..=128)).prop_map(|(bits, upper, prefix)| {
            let address = std::net::Ipv6Addr::from((bits & !(0xffff_u128 << 112)) | (0x2606_u128 << 112));
            let text = match prefix {
                Some(prefix) => ipnet::Ipv6Net::new(address, prefix).unwrap().trunc().to_string(),
                None => address.to_string(),
            };
            if upper { text.to_uppercase() } else { text }
        }),
        2 => "(https?|FTP)://[a-zA-Z0-9-]{1,20}\\.[a-zA-Z]{2,5}\\.?(:[0-9]{1,5})?(/[a-zA-Z0-9/?#=&.%-]{0,30})?",
        1 => "[a-zA-Z0-9._+-]{1,10}@[a-zA-Z0-9-]{1,10}\\.[a-zA-Z]{2,4}",
        2 => "[a-zA-Z0-9_-]{1,12}(\\.[a-zA-Z0-9_-]{1,12}){0,3}\\.[a-zA-Z]{2,6}\\.?",
        1 => "(AS|as)?[0-9]{1,11}(\\.[0-9]{1,6})?",
        1 => "[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128}",
        1 => "\\PC{0,30}",
    ];
    let itype = prop_oneof![
        6 => Just(None),
        1 => "(?i)(ipv4|ipv6|cidr|url|fqdn|email|asn|md5|sha1|sha256|sha512|bogus)".prop_map(Some),
    ];
    let tags = prop_oneof![
        2 => Just(Value::Null),
        2 => "[a-zA-Z ,-]{0,40}".prop_map(Value::from),
        2 => prop::collection::vec("[a-zA-Z0-9 ,_-]{0,12}", 0..8).prop_map(Value::from),
        1 => "\\PC{0,40}".prop_map(Value::from),
        1 => prop::collection::vec("\\PC{0,12}", 0..8).prop_map(Value::from),
    ];
    let confidence = prop_oneof![
        2 => Just(Value::Null),
        3 => (0.0f64..=10.0).prop_map(Value::from),
        2 => (0u8..=10).prop_map(Value::from),
        1 => (-5i64..20).prop_map(Value::from),
        1 => "[0-9]{1,2}(\\.[0-9]{1,4})?".prop_map(Value::from),
    ];
    let tlp = prop_oneof![
        3 => Just(None),
        3 => "(?i)(white|green|amber|red)".prop_map(Some),
        1 => "\\PC{0,6}".prop_map(Some),
    ];
    // Valid instants (up to the year 2096, so some lie in the future of `now`) in several
    // spellings, and some junk.
    let time = prop_oneof![
        2 => Just(Value::Null),
        4 => (0i64..4_000_000_000, 0u32..1_000_000_000, 0u8..4).prop_map(|(seconds, nanos, style)| {
            let time = Utc.timestamp_opt(seconds, nanos).single().unwrap_or_default();
            Value::from(match style {
                0 => time.to_rfc3339(),
                1 => time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                2 => time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                _ => time.format("%Y-%m-%d %H:%M").to_string(),
            })
        }),
        1 => "20[0-9]{2}-[01][0-9]-[0-3][0-9]( [0-2][0-9]:[0-5][0-9](:[0-5][0-9])?( UTC)?)?".prop_map(Value::from),
    ];
    let extra = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        prop::collection::vec("\\PC{0,5}", 0..3).prop_map(Value::from),
    ];
    let count = prop_oneof![
        3 => Just(None),
        2 => any::<u16>().prop_map(|n| Some(Value::from(n))),
        1 => "[0-9]{1,5}".prop_map(|n| Some(Value::from(n))),
        1 => "\\PC{0,10}".prop_map(|n| Some(Value::from(n))),
    ];
    // The expiry in each of its spellings, sometimes two at once (refused).
    let expiry = prop_oneof![
        3 => Just(Vec::new()),
        2 => time.clone().prop_map(|time| vec![("valid_until", time)]),
        1 => time.clone().prop_map(|time| vec![("expires", time)]),
        1 => prop_oneof![
            (0u64..10_000_000).prop_map(Value::from),
            "[0-9]{1,6}(s|m|h|d)?".prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
        ].prop_map(|ttl| vec![("ttl", ttl)]),
        1 => (time.clone(), 0u64..100_000).prop_map(|(time, ttl)| vec![("valid_until", time), ("ttl", Value::from(ttl))]),
    ];
    (
        indicator,
        itype,
        tags,
        confidence,
        tlp,
        (time.clone(), time.clone(), time),
        ("[a-z_]{1,8}", extra),
        count,
        expiry,
    )
        .prop_map(
            |(
                indicator,
                itype,
                tags,
                confidence,
                tlp,
                (reporttime, firsttime, lasttime),
                (key, extra),
                count,
                expiry,
            )| {
                let mut object = json!({
                    "provider": "feeds.example",
                    "tags": tags,
                    "confidence": confidence,
                    "reporttime": reporttime,
                    "firsttime": firsttime,
                    "lasttime": lasttime,
                });
                object[key] = extra;
                object["indicator"] = Value::from(indicator);
                if let Some(itype) = itype {
                    object["itype"] = Value::from(itype);
                }
                if let Some(tlp) = tlp {
                    object["tlp"] = Value::from(tlp);
                }
                if let Some(count) = count {
                    object["count"] = count;
                }
                for (field, value) in expiry {
                    object[field] = value;
                }
                object
            },
        )
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("indicator".to_owned()),
                    Just("tags".to_owned()),
                    Just("confidence".to_owned()),
                    Just("reporttime".to_owned()),
                    Just("provider".to_owned()),
                    Just("valid_until".to_owned()),
                    Just("ttl".to_owned()),
                    "\\PC{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_indicators_round_trip(object in indicator_objects()) {
        for provenance in [Provenance::Trusted, Provenance::Authenticated("alice")] {
            if let Ok(indicator) = Indicator::from_json(object.clone(), provenance, now()) {
                round_trips(&indicator);
                prop_assert!(indicator.reporttime() <= now() + TimeDelta::seconds(FUTURE_TOLERANCE_SECONDS));
                prop_assert!((0.0..=10.0).contains(&indicator.confidence()));
                prop_assert!(indicator.tags().len() <= MAX_TAGS);
                if let (Some(until), Provenance::Authenticated(_)) = (indicator.valid_until(), provenance) {
                    prop_assert!(until > indicator.reporttime());
                }
                prop_assert_eq!(crate::itype::detect(indicator.indicator()), Some(indicator.itype()));
            }
        }
    }

    #[test]
    fn from_slice_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Indicator::from_slice(&bytes, Provenance::Trusted, now());
    }

    #[test]
    fn from_slice_never_panics_on_text(text in "\\PC{0,300}") {
        let _ = Indicator::from_slice(text.as_bytes(), Provenance::Authenticated("alice"), now());
    }

    #[test]
    fn from_json_never_panics(value in arbitrary_json(), indicator in "\\PC{0,40}") {
        let _ = Indicator::from_json(value.clone(), Provenance::Trusted, now());
        if let Value::Object(mut object) = value {
            object.insert("indicator".into(), Value::from(indicator));
            if let Ok(accepted) = Indicator::from_json(Value::Object(object), Provenance::Authenticated("alice"), now()) {
                round_trips(&accepted);
            }
        }
    }

    #[test]
    fn rejections_always_name_a_field(value in arbitrary_json()) {
        if let Err(rejection) = Indicator::from_json(value, Provenance::Trusted, now()) {
            prop_assert!(!rejection.field.is_empty() && !rejection.reason.is_empty());
        }
    }
}

/// Only Sluice writes its own namespace: every outside path refuses it, marked as reserved so
/// it can be counted; what Sluice wrote reads back.
#[test]
fn the_sluice_namespace_is_refused_from_outside() {
    let forged =
        json!({"indicator": "185.220.101.4", "provider": "sluice/correlator", "tags": "scanner"});
    let tagged = json!({"indicator": "185.220.101.4", "provider": "acme", "tags": ["scanner", "Correlated"]});
    for provenance in [Provenance::Authenticated("alice"), Provenance::Upstream] {
        for (value, field) in [(&forged, "provider"), (&tagged, "tags")] {
            let rejection = Indicator::from_json(value.clone(), provenance, now())
                .expect_err(&format!("{value} accepted from {provenance:?}"));
            assert_eq!(rejection.field, field);
            assert!(rejection.reserved, "{rejection}");
            assert!(rejection.reason.contains("reserved"), "{rejection}");
        }
    }
    let own = Indicator::from_json(forged.clone(), Provenance::Trusted, now()).unwrap();
    assert!(own.is_correlated());
    let ordinary = Indicator::from_json(
        json!({"indicator": "not one!"}),
        Provenance::Upstream,
        now(),
    );
    assert!(
        !ordinary.unwrap_err().reserved,
        "other rejections are not reserved"
    );
    // Over the API a payload provider outside the namespace is dropped, as before.
    let renamed = accept(json!({"indicator": "185.220.101.4", "provider": "mallory"}));
    assert_eq!(renamed.provider(), "alice");
}

#[test]
fn reads_the_withdrawal_mark() {
    let plain = accept(json!({"indicator": "8.8.8.8"}));
    assert!(!plain.is_withdrawn());
    assert!(plain.to_json().get("withdrawn").is_none());
    for absent in [json!(false), Value::Null] {
        let item = accept(json!({"indicator": "8.8.8.8", "withdrawn": absent}));
        assert!(!item.is_withdrawn());
        assert!(item.to_json().get("withdrawn").is_none(), "not stored");
    }
    let request = accept(json!({"indicator": "8.8.8.8", "withdrawn": true}));
    assert!(request.is_withdrawn());
    assert_eq!(request.to_json()["withdrawn"], true);
    for wrong in [json!("true"), json!(1), json!({})] {
        reject(
            json!({"indicator": "8.8.8.8", "withdrawn": wrong}),
            "withdrawn",
            "expected true",
        );
    }
}

#[test]
fn a_withdrawal_carries_its_reports_fields() {
    let report = accept(json!({
        "indicator": "185.220.101.7", "tags": ["scanner"], "confidence": 8, "tlp": "amber",
        "reporttime": "2024-05-01T10:00:00Z", "ttl": "1d", "description": "ssh brute force",
    }));
    let later = now() + TimeDelta::hours(1);
    let withdrawal = Indicator::withdrawal_of(&report, later);
    assert!(withdrawal.is_withdrawn());
    assert_eq!(withdrawal.indicator(), report.indicator());
    assert_eq!(withdrawal.provider(), "alice");
    assert_eq!(withdrawal.tags(), report.tags());
    assert_eq!(withdrawal.confidence(), 8.0);
    assert_eq!(withdrawal.tlp(), Tlp::Amber);
    assert_eq!(withdrawal.reporttime(), later);
    assert_eq!(
        withdrawal.valid_until(),
        None,
        "a withdrawal does not expire"
    );
    assert_eq!(withdrawal.description(), Some("ssh brute force"));
    // What is stored reads back as the same withdrawal.
    let stored = withdrawal.to_json();
    let read = Indicator::from_json(stored, Provenance::Trusted, later).unwrap();
    assert_eq!(read, withdrawal);
}
