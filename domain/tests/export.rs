//! Every `--format` pinned by a golden file in `tests/golden/`, over indicators that include
//! hostile text. `UPDATE_GOLDEN=1 cargo test -p domain --test export` rewrites the files after
//! a deliberate change; review the diff.

use domain::export::{csv_field, Format};
use domain::{Indicator, Provenance};
use serde_json::json;

fn indicators() -> Vec<Indicator> {
    let now = "2026-11-23T12:00:00Z".parse().unwrap();
    [
        json!({"indicator": "185.220.101.7", "provider": "honeypot-eu", "tags": ["scanner", "ssh"], "confidence": 8, "tlp": "green", "reporttime": "2026-11-23T11:00:00Z", "description": "ssh brute force"}),
        json!({"indicator": "185.220.100.0/22", "provider": "spamhaus/drop", "tags": "hijacked", "reporttime": "2026-11-23T10:00:00Z"}),
        json!({"indicator": "2001:4860:4860::8888", "provider": "ids", "tags": "scanner", "reporttime": "2026-11-23T09:00:00Z"}),
        json!({"indicator": "Evil.Example.COM.", "provider": "dns-watch", "tags": ["c2", "botnet"], "confidence": 9.5, "reporttime": "2026-11-23T08:00:00Z", "firsttime": "2026-11-20T00:00:00Z", "lasttime": "2026-11-23T08:00:00Z"}),
        json!({"indicator": "https://phish.example.net/login?next=<script>alert(1)</script>", "provider": "openphish", "tags": "phishing", "reporttime": "2026-11-23T07:00:00Z", "description": "fake \"bank\", login\nsecond line\tand a tab"}),
        json!({"indicator": "d41d8cd98f00b204e9800998ecf8427e", "provider": "=cmd|' /C calc'!A0", "tags": "malware", "reporttime": "2026-11-23T06:00:00Z", "description": "+SUM(1,2)"}),
        json!({"indicator": "AS13335", "provider": "bgp", "tags": "hosting", "reporttime": "2026-11-23T05:00:00Z"}),
        json!({"indicator": "abuse@example.org", "provider": "-mail-", "tags": "spam", "reporttime": "2026-11-23T04:00:00Z", "description": "\u{1b}[31mred\u{1b}[0m"}),
        // Withdrawals, as the log stores them: the report's fields, a later time, the mark.
        json!({"indicator": "185.220.101.7", "provider": "honeypot-eu", "tags": ["scanner", "ssh"], "confidence": 8, "tlp": "green", "reporttime": "2026-11-23T11:30:00Z", "firsttime": "2026-11-23T11:00:00Z", "description": "ssh brute force", "withdrawn": true}),
        json!({"indicator": "evil.example.com", "provider": "dns-watch", "tags": ["c2", "botnet"], "confidence": 9.5, "reporttime": "2026-11-23T11:45:00Z", "firsttime": "2026-11-20T00:00:00Z", "withdrawn": true}),
    ]
    .into_iter()
    .map(|value| Indicator::from_json(value, Provenance::Trusted, now).unwrap())
    .collect()
}

fn render(format: Format) -> String {
    let mut out = String::new();
    for line in format.header(2026112301) {
        out.push_str(&line);
        out.push('\n');
    }
    for indicator in indicators() {
        for line in format.lines(&indicator) {
            // CSV quotes a line break inside a field (RFC 4180); no other format carries one.
            if format != Format::Csv {
                assert!(
                    !line.contains('\n'),
                    "{format}: a line break inside a line: {line:?}"
                );
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_format_matches_its_golden_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for format in [
        Format::Json,
        Format::Csv,
        Format::Table,
        Format::Zeek,
        Format::Bindrpz,
        Format::Iptables,
        Format::Ipset,
        Format::SuricataDataset,
    ] {
        let path = dir.join(format!("{format}.txt"));
        let rendered = render(format);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &rendered).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", path.display()));
        assert_eq!(rendered, golden, "{format} differs from {}", path.display());
    }
}

#[test]
fn csv_fields_cannot_break_out_or_run_formulas() {
    assert_eq!(csv_field("plain"), "plain");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_field("=1+1"), "'=1+1");
    assert_eq!(csv_field("+1"), "'+1");
    assert_eq!(csv_field("-1"), "'-1");
    assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
    assert_eq!(
        csv_field("=HYPERLINK(\"x\",\"y\")"),
        "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
    );
}

#[test]
fn formats_parse_by_name() {
    assert_eq!("NDJSON".parse::<Format>(), Ok(Format::Json));
    assert_eq!("rpz".parse::<Format>(), Ok(Format::Bindrpz));
    assert!("xml"
        .parse::<Format>()
        .unwrap_err()
        .to_string()
        .contains("use json, csv"));
    assert_eq!("Suricata".parse::<Format>(), Ok(Format::SuricataDataset));
    assert_eq!(Format::SuricataDataset.to_string(), "suricata-dataset");
    assert!(Format::Zeek.is_whole_file() && Format::Bindrpz.is_whole_file());
    assert!(Format::SuricataDataset.is_whole_file());
    assert!(!Format::Csv.is_whole_file());
}

/// A strict RFC 4180 reader, to check that what the CSV format writes reads back field for field.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "unterminated CSV"
    );
    records
}

#[test]
fn csv_reads_back_field_for_field() {
    let records = parse_csv(&render(Format::Csv));
    let reports = indicators().iter().filter(|i| !i.is_withdrawn()).count();
    assert_eq!(records.len(), 1 + reports, "the header, then reports only");
    assert!(
        records.iter().all(|record| record.len() == 10),
        "{records:?}"
    );
    let phish = &records[5];
    assert_eq!(phish[9], "fake \"bank\", login\nsecond line\tand a tab");
    let hash = &records[6];
    assert_eq!(hash[2], "'=cmd|' /C calc'!A0");
    assert_eq!(hash[9], "'+SUM(1,2)");
}
