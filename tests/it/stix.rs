//! The STIX 2.1 mapping (crate `sluice-stix`) judged by the OASIS tools themselves: objects for
//! every itype, hostile indicator and provider text, every TLP, a lifecycle and the correlator's
//! derived indicators, in one bundle that `stix2-validator` must accept without errors, whose
//! patterns `stix2-patterns` must read back as the indicators, and that the `stix2` library must
//! parse (`allow_custom=False`) and serialise back to the same objects. scripts/test installs the
//! tools (versions there) in a virtualenv at `$SLUICE_COMPAT_DIR/stix` (`target/compat/stix`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use chrono::{DateTime, Utc};
use domain::correlation::{Emission, Key, Source};
use domain::{Indicator, Provenance, Tlp};
use serde_json::{json, Value};
use sluice_stix::{bundle, identity, objects, tlp_marking, Lifecycle};

/// The virtualenv's Python (also the webhook tests'); fails (never skips) when the tools are
/// missing.
pub(crate) fn python() -> PathBuf {
    let dir = std::env::var_os("SLUICE_COMPAT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/compat"))
        .join("stix");
    let python = dir.join("bin/python");
    assert!(
        python.exists() && dir.join("bin/stix2_validator").exists(),
        "the OASIS STIX tools (stix2-validator, stix2) are not installed in {}: run scripts/test, \
         which installs them",
        dir.display()
    );
    python
}

/// Validates, inspects and round-trips the bundle at argv[1]; prints one JSON report.
const CHECK: &str = r#"
import json, re, sys
from importlib.metadata import version
import stix2
from stix2.utils import parse_into_datetime
from stix2patterns.v21.pattern import Pattern
from stix2validator import ValidationOptions, validate_file

path = sys.argv[1]
report = {"versions": {p: version(p) for p in ("stix2-validator", "stix2", "stix2-patterns")}}

# No custom types or properties, and every reference of a relationship resolves in the bundle.
options = ValidationOptions(version="2.1", strict_types=True, strict_properties=True,
                            enforce_refs=True)
results = validate_file(path, options)
report["valid"] = results.is_valid
report["fatal"] = str(results.fatal) if results.fatal else None
report["errors"] = [str(e) for r in results.object_results for e in r.errors]
report["warnings"] = [str(w) for r in results.object_results for w in r.warnings]

with open(path, encoding="utf-8") as f:
    text = f.read()
original = json.loads(text)["objects"]

# Each pattern is one comparison whose literal, unescaped, is the indicator (`name`).
patterns = []
for o in original:
    if o["type"] != "indicator":
        continue
    comparisons = Pattern(o["pattern"]).inspect().comparisons
    found = [(t, c) for t, cs in comparisons.items() for c in cs]
    if len(found) != 1:
        patterns.append("%s: %d comparisons in %r" % (o["id"], len(found), o["pattern"]))
        continue
    _, (path_, op, value) = found[0]
    if value.startswith("'") and value.endswith("'"):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    else:  # the one number compared: an AS number, named `AS<number>`
        value = "AS" + value
    if value != o["name"]:
        patterns.append("%s: %r reads back as %r, not %r" % (o["id"], o["pattern"], value, o["name"]))
report["patterns"] = patterns

# The stix2 library's own reading and writing, strictly (no custom content).
parsed = json.loads(stix2.parse(text, allow_custom=False).serialize())["objects"]
TIMES = {"created", "modified", "valid_from", "valid_until"}
roundtrip = []
if len(parsed) != len(original):
    roundtrip.append("%d objects came back of %d" % (len(parsed), len(original)))
for before, after in zip(original, parsed):
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if key in TIMES and a is not None and b is not None:
            same = parse_into_datetime(a) == parse_into_datetime(b)
        else:
            same = a == b
        if not same:
            roundtrip.append("%s %s: %r became %r" % (before["id"], key, a, b))
report["roundtrip"] = roundtrip

report["tlp"] = {
    name: json.loads(marking.serialize())
    for name, marking in [("white", stix2.TLP_WHITE), ("green", stix2.TLP_GREEN),
                          ("amber", stix2.TLP_AMBER), ("red", stix2.TLP_RED)]
}
print(json.dumps(report))
"#;

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn now() -> DateTime<Utc> {
    time("2026-12-04T03:00:00Z")
}

fn report(object: Value) -> Indicator {
    Indicator::from_json(object.clone(), Provenance::Trusted, now())
        .unwrap_or_else(|rejection| panic!("{object} is refused: {rejection}"))
}

/// A provider name with everything the indicator model lets through.
const HOSTILE_PROVIDER: &str = "o'reilly \"\\ ] ünïcode 😀";

/// Every itype, every TLP, hostile text wherever the indicator model lets it through.
fn reports() -> Vec<(Indicator, Lifecycle)> {
    let open = Lifecycle::default();
    let mut reports = vec![
        json!({"indicator": "185.20.30.40", "provider": "csirtg.io", "tags": "scanner,ssh",
               "tlp": "white", "confidence": 7.25, "firsttime": "2016-03-22T08:00:00Z",
               "reporttime": "2016-03-23T20:22:27.123456789Z",
               "altid": "https://csirtg.io/indicators/337401"}),
        // The sources of the exact-address derivation below, so that its relationships resolve.
        json!({"indicator": "185.20.30.40", "provider": "spamhaus", "tlp": "amber"}),
        json!({"indicator": "185.20.30.40", "provider": HOSTILE_PROVIDER, "tags": "scanner"}),
        json!({"indicator": "2606:4700::1111", "provider": "csirtg.io", "tlp": "green"}),
        json!({"indicator": "185.20.30.0/24", "provider": "spamhaus", "tags": "hijacked",
               "tlp": "amber", "confidence": 10}),
        json!({"indicator": "2606:4700::/32", "provider": "spamhaus", "tlp": "red", "confidence": 0}),
        json!({"indicator": "http://evil.example/a'b\\c]d?q=']%20OR%20'1'='1&x=\\'#']",
               "provider": HOSTILE_PROVIDER, "tags": ["phishing", "it's \"quoted\" \\ ]"],
               "description": "multi\nline 'quoted' \"text\" \\ ] ünïcode 😀"}),
        json!({"indicator": "https://evil.example/ünï€😀/'\\", "provider": "abuse.ch",
               "tags": "malware_download,emotet", "firsttime": "2018-08-20 19:10:05",
               "urlhaus_link": "https://urlhaus.abuse.ch/url/44693/",
               "reference": "http://not a uri/"}),
        json!({"indicator": "evil.example.net", "provider": "cve", "tags": "c2",
               "altid": "http://osint.example/beebone.txt"}),
        json!({"indicator": "o'brien+x@evil.example", "provider": "csirtg.io", "tags": "spam"}),
        json!({"indicator": "d41d8cd98f00b204e9800998ecf8427e", "provider": "csirtg.io",
               "tags": "malware"}),
        json!({"indicator": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "provider": "csirtg.io"}),
        json!({"indicator": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               "provider": "csirtg.io"}),
        json!({"indicator": "ab".repeat(64), "provider": "csirtg.io", "tags": "whitelist"}),
        json!({"indicator": "AS13335", "provider": "csirtg.io", "tags": "tor"}),
    ]
    .into_iter()
    .map(|object| (report(object), open))
    .collect::<Vec<_>>();
    // Lifecycles: one that expires, one withdrawn whose expiry came before its report.
    let expiring = report(json!({"indicator": "185.20.30.41", "provider": "csirtg.io",
                                  "reporttime": "2016-03-23T20:00:00Z"}));
    reports.push((
        expiring,
        Lifecycle {
            valid_until: Some(time("2016-03-24T20:00:00.0000001Z")),
            revoked: false,
        },
    ));
    let withdrawn = report(json!({"indicator": "185.20.30.41", "provider": "spamhaus"}));
    reports.push((
        withdrawn,
        Lifecycle {
            valid_until: Some(time("2016-03-01T00:00:00Z")),
            revoked: true,
        },
    ));
    // A provider's withdrawal, as the gateway stores it: revoked by the mapping itself.
    let reported = report(json!({"indicator": "evil.example.net", "provider": "cve",
                                  "tags": "c2", "reporttime": "2016-03-23T20:00:00Z"}));
    let later = now() + chrono::TimeDelta::hours(1);
    reports.push((Indicator::withdrawal_of(&reported, later), open));
    reports.push((derived(Key::Address("185.20.30.40".parse().unwrap())), open));
    reports.push((
        derived(Key::Network("185.20.30.0/24".parse().unwrap())),
        open,
    ));
    reports
}

/// The correlator's derived indicator for `key`, as it makes it (`Emission::to_indicator`).
fn derived(key: Key) -> Indicator {
    let micros = |text: &str| time(text).timestamp_micros();
    let source = |provider: &str, at: &str| Source {
        provider: provider.to_owned(),
        time: micros(at),
    };
    Emission {
        rule: "scanner".to_owned(),
        key,
        time: micros("2026-12-04T02:30:00Z"),
        count: 3,
        first: micros("2026-12-04T01:00:00Z"),
        last: micros("2026-12-04T02:30:00Z"),
        sources: vec![
            source("csirtg.io", "2026-12-04T01:00:00Z"),
            source("spamhaus", "2026-12-04T02:00:00Z"),
            source(HOSTILE_PROVIDER, "2026-12-04T02:30:00Z"),
        ],
        confidence: 9.0,
        tlp: Tlp::Amber,
        tags: vec!["correlated".to_owned(), "scanner".to_owned()],
    }
    .to_indicator(now())
    .unwrap()
}

#[test]
fn stix_objects_pass_the_oasis_validator_and_round_trip_through_stix2() {
    let python = python();
    let reports = reports();
    let mut all = Vec::new();
    let mut providers = BTreeSet::new();
    for (indicator, lifecycle) in &reports {
        providers.insert(indicator.provider().to_owned());
        all.extend(objects(indicator, *lifecycle));
    }
    let relationships = all.iter().filter(|o| o["type"] == "relationship").count();
    assert_eq!(
        relationships, 3,
        "one per source of the exact-address derivation"
    );
    all.extend(providers.iter().map(|provider| identity(provider)));
    all.extend(Tlp::ALL.map(tlp_marking));
    let count = all.len();
    let bundle = bundle(all);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&bundle).unwrap()).unwrap();
    let output = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .arg(&path)
        .output()
        .expect("cannot run the STIX tools' Python");
    assert!(
        output.status.success(),
        "the STIX check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("{count} objects checked with {}", report["versions"]);

    assert_eq!(report["fatal"], Value::Null);
    assert_eq!(report["errors"], json!([]), "stix2-validator's errors");
    assert_eq!(report["valid"], true);
    // The warnings that stay, each by design:
    // {103} the ids are UUIDv5, not the UUIDv4 STIX recommends: deterministic on purpose (the
    //       same report is the same object everywhere), under Sluice's own namespace as the
    //       specification allows;
    // {302} an external reference has a URL but no hash: Sluice never fetches what a provider
    //       links to, so it cannot hash it.
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    for warning in &warnings {
        assert!(
            warning.contains("{103} Given ID value")
                || warning.contains("{302} External reference"),
            "an unexpected warning: {warning}"
        );
        if warning.contains("{103}") {
            assert!(
                !warning.contains("bundle--") && !warning.contains("marking-definition--"),
                "only Sluice's deterministic ids: {warning}"
            );
        }
    }
    eprintln!(
        "stix2-validator's warnings, all expected:\n{}",
        warnings.join("\n")
    );
    assert!(
        warnings.iter().any(|w| w.contains("{103}")),
        "the validator reported no warnings at all: is it checking? {warnings:?}"
    );
    assert_eq!(
        report["patterns"],
        json!([]),
        "patterns that do not read back"
    );
    assert_eq!(report["roundtrip"], json!([]), "what stix2 changed");
    for tlp in Tlp::ALL {
        assert_eq!(report["tlp"][tlp.as_str()], tlp_marking(tlp), "{tlp}");
    }
}

#[test]
fn stix_mapping_of_the_hostile_and_lifecycle_inputs() {
    let reports = reports();
    let stix: Vec<Value> = reports
        .iter()
        .map(|(indicator, lifecycle)| sluice_stix::indicator(indicator, *lifecycle))
        .collect();
    let by_name = |name: &str| {
        stix.iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        by_name("http://evil.example/a'b\\c]d?q=']%20OR%20'1'='1&x=\\'#']")["pattern"],
        r"[url:value = 'http://evil.example/a\'b\\c]d?q=\']%20OR%20\'1\'=\'1&x=\\\'#\']']"
    );
    assert_eq!(
        by_name("o'brien+x@evil.example")["pattern"],
        r"[email-addr:value = 'o\'brien+x@evil.example']"
    );
    let first = by_name("185.20.30.40");
    assert_eq!(first["created"], "2016-03-22T08:00:00.000Z");
    assert_eq!(first["modified"], "2016-03-23T20:22:27.123Z");
    assert_eq!(first["confidence"], 73);
    // The provider named `cve` keeps its reference, under a source name STIX does not reserve.
    assert_eq!(
        by_name("evil.example.net")["external_references"][0]["source_name"],
        "cve (provider)"
    );
    // A reference that is no URI is left out.
    let urlhaus = by_name("https://evil.example/ünï€😀/'\\");
    assert_eq!(
        urlhaus["external_references"],
        json!([{"source_name": "abuse.ch", "description": "urlhaus_link",
                "url": "https://urlhaus.abuse.ch/url/44693/"}])
    );
    let lifecycles: Vec<&Value> = stix
        .iter()
        .filter(|o| o["name"] == "185.20.30.41")
        .collect();
    assert_eq!(lifecycles[0]["valid_until"], "2016-03-24T20:00:00.001Z");
    assert_eq!(lifecycles[0].get("revoked"), None);
    assert_eq!(lifecycles[1]["revoked"], true);
    assert!(lifecycles[1]["valid_until"].as_str() > lifecycles[1]["valid_from"].as_str());
}
