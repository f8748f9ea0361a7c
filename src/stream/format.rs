//! `sluice stream --format`: the text formats of `domain::export`, and `stix`, one STIX 2.1
//! bundle per line (NDJSON of bundles) from `sluice-stix`. `stix` lives here because `domain`,
//! the bottom crate, depends on no other crate of the workspace; this binary depends on both.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use domain::export::Format;
use domain::Indicator;

/// What `--format` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A format of `domain::export`.
    Export(Format),
    /// One bundle per indicator and line: its objects ([`sluice_stix::objects`]).
    Stix,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown format `{0}`: use json, csv, table, zeek, bindrpz, iptables, ipset, suricata-dataset or stix"
)]
pub struct UnknownFormat(pub String);

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("stix") {
            return Ok(OutputFormat::Stix);
        }
        text.parse()
            .map(OutputFormat::Export)
            .map_err(|_| UnknownFormat(text.to_owned()))
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputFormat::Export(format) => format.fmt(f),
            OutputFormat::Stix => f.write_str("stix"),
        }
    }
}

impl OutputFormat {
    /// Formats consumed as whole files, which `--output` rewrites atomically.
    pub fn is_whole_file(self) -> bool {
        match self {
            OutputFormat::Export(format) => format.is_whole_file(),
            OutputFormat::Stix => false,
        }
    }

    /// Lines that start the output. `serial` numbers an RPZ zone.
    pub fn header(self, serial: u32) -> Vec<String> {
        match self {
            OutputFormat::Export(format) => format.header(serial),
            OutputFormat::Stix => Vec::new(),
        }
    }

    /// The indicator's lines; none when the format has no place for its itype. A STIX
    /// `indicator` carries the indicator's own `valid_until`.
    #[cfg(test)]
    pub fn lines(self, indicator: &Indicator) -> Vec<String> {
        self.lines_expiring(indicator, indicator.valid_until())
    }

    /// The same, with `expires` as the indicator's expiry (STIX's `valid_until`; the text
    /// formats have no place for it).
    pub fn lines_expiring(
        self,
        indicator: &Indicator,
        expires: Option<DateTime<Utc>>,
    ) -> Vec<String> {
        match self {
            OutputFormat::Export(format) => format.lines(indicator),
            OutputFormat::Stix => {
                let lifecycle = sluice_stix::Lifecycle {
                    valid_until: expires,
                    ..sluice_stix::Lifecycle::default()
                };
                let objects = sluice_stix::objects(indicator, lifecycle);
                vec![sluice_stix::bundle(objects).to_string()]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Provenance;

    /// The golden file, beside those of `domain`'s formats.
    const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/domain/tests/golden/stix.txt");

    /// The indicators of `domain/tests/export.rs`, read back from their pinned `json` rendering
    /// (canonical JSON), so every format's golden file shows the same inputs.
    fn indicators() -> Vec<Indicator> {
        let json = concat!(env!("CARGO_MANIFEST_DIR"), "/domain/tests/golden/json.txt");
        let now = "2026-11-23T12:00:00Z".parse().unwrap();
        std::fs::read_to_string(json)
            .unwrap()
            .lines()
            .map(|line| {
                let value = serde_json::from_str(line).unwrap();
                Indicator::from_json(value, Provenance::Trusted, now).unwrap()
            })
            .collect()
    }

    /// A bundle's id is a random UUIDv4: checked, then written as zeros, the line otherwise
    /// as printed.
    fn normalise(line: &str) -> String {
        let bundle: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = bundle["id"].as_str().unwrap();
        let uuid = id.strip_prefix("bundle--").unwrap();
        let groups: Vec<&str> = uuid.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(
            uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(groups[2].starts_with('4'), "a version 4 UUID: {id}");
        assert_eq!(line.matches(id).count(), 1, "{line}");
        line.replace(id, "bundle--00000000-0000-4000-8000-000000000000")
    }

    #[test]
    fn stix_matches_its_golden_file() {
        let mut rendered = String::new();
        for indicator in indicators() {
            let lines = OutputFormat::Stix.lines(&indicator);
            assert_eq!(lines.len(), 1, "one bundle per indicator");
            assert!(!lines[0].contains('\n'));
            let bundle: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
            assert_eq!(bundle["type"], "bundle");
            assert_eq!(bundle["objects"][0]["type"], "indicator");
            assert_eq!(bundle["objects"][0]["name"], indicator.indicator());
            assert_eq!(
                bundle["objects"][0].get("revoked").is_some(),
                indicator.is_withdrawn(),
                "a withdrawal, and only a withdrawal, is revoked"
            );
            rendered.push_str(&normalise(&lines[0]));
            rendered.push('\n');
        }
        assert_eq!(rendered.lines().count(), 10);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(GOLDEN, &rendered).unwrap();
            return;
        }
        let golden = std::fs::read_to_string(GOLDEN)
            .unwrap_or_else(|_| panic!("{GOLDEN} is missing: run with UPDATE_GOLDEN=1"));
        assert_eq!(rendered, golden, "stix differs from {GOLDEN}");
    }

    #[test]
    fn every_bundle_has_its_own_id() {
        let indicator = &indicators()[0];
        assert_ne!(
            OutputFormat::Stix.lines(indicator),
            OutputFormat::Stix.lines(indicator)
        );
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("STIX".parse::<OutputFormat>(), Ok(OutputFormat::Stix));
        assert_eq!(
            "suricata-dataset".parse::<OutputFormat>(),
            Ok(OutputFormat::Export(Format::SuricataDataset))
        );
        assert_eq!(
            "ndjson".parse::<OutputFormat>(),
            Ok(OutputFormat::Export(Format::Json))
        );
        let unknown = "xml".parse::<OutputFormat>().unwrap_err().to_string();
        assert!(unknown.contains("suricata-dataset or stix"), "{unknown}");
        assert_eq!(OutputFormat::Stix.to_string(), "stix");
        assert!(!OutputFormat::Stix.is_whole_file());
        assert!(OutputFormat::Export(Format::SuricataDataset).is_whole_file());
    }
}
