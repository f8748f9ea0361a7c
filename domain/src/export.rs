//! Output formats for people and devices (`sluice stream --format`): an indicator in, zero or
//! more lines out. Pure, so each format is pinned by golden files (`domain/tests/export.rs`).
//!
//! Indicators are attacker-controlled text. Every format writes them so that they cannot break
//! out of their field: CSV quotes per RFC 4180 and defuses spreadsheet formulas (a leading `=`,
//! `+`, `-`, `@`, tab or carriage return gets a `'`), tables and Zeek replace control characters,
//! and the device formats (Zeek, RPZ, iptables, ipset, Suricata datasets) only ever print the
//! normalised indicator of the itypes they understand, which validation restricts to safe
//! characters (a Suricata `string` dataset holds it base64-encoded).
//!
//! A withdrawal (docs/protocol.md §2.10) is a line only where the format can say so: JSON
//! carries `"withdrawn": true`, iptables deletes its rule (`-D`), ipset its entry (`del`); CSV
//! and tables, which list reports, leave it out. For the whole-file formats (Zeek, RPZ,
//! Suricata datasets) it gives the lines its report gave, which `sluice stream` removes from
//! the file.
//!
//! `sluice stream --format stix` is not here: STIX objects come from `sluice-stix`, which this
//! crate, the bottom of the graph, does not depend on; the binary's `src/stream/format.rs` adds
//! it beside these.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::{Indicator, Itype};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON indicator per line (NDJSON).
    Json,
    Csv,
    /// Fixed-width columns for a terminal.
    Table,
    /// Zeek Intel framework file.
    Zeek,
    /// BIND response-policy zone.
    Bindrpz,
    /// `iptables` commands (IPv4 addresses and networks).
    Iptables,
    /// `ipset restore` lines (IPv4 addresses and networks).
    Ipset,
    /// A Suricata dataset file (`dataset:isset,<name>, type <type>, load <file>`): one value
    /// per line, in the serialisation of the dataset type its itype fits ([`suricata_type`]).
    SuricataDataset,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown format `{0}`: use json, csv, table, zeek, bindrpz, iptables, ipset or suricata-dataset"
)]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "json" | "ndjson" => Format::Json,
            "csv" => Format::Csv,
            "table" => Format::Table,
            "zeek" | "bro" => Format::Zeek,
            "bindrpz" | "rpz" => Format::Bindrpz,
            "iptables" => Format::Iptables,
            "ipset" => Format::Ipset,
            "suricata-dataset" | "suricata" => Format::SuricataDataset,
            _ => return Err(UnknownFormat(text.to_owned())),
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Table => "table",
            Format::Zeek => "zeek",
            Format::Bindrpz => "bindrpz",
            Format::Iptables => "iptables",
            Format::Ipset => "ipset",
            Format::SuricataDataset => "suricata-dataset",
        })
    }
}

/// The ipset set `ipset` lines add to.
pub const IPSET_NAME: &str = "sluice";

const CSV_COLUMNS: [&str; 10] = [
    "indicator",
    "itype",
    "provider",
    "tags",
    "confidence",
    "tlp",
    "reporttime",
    "firsttime",
    "lasttime",
    "description",
];

impl Format {
    /// Formats consumed as whole files, which `--output` rewrites atomically.
    pub fn is_whole_file(self) -> bool {
        matches!(
            self,
            Format::Zeek | Format::Bindrpz | Format::SuricataDataset
        )
    }

    /// Lines that start the output (before any indicator). `serial` numbers an RPZ zone.
    pub fn header(self, serial: u32) -> Vec<String> {
        match self {
            // A dataset file has no comments: every line is a value.
            Format::Json | Format::Iptables | Format::SuricataDataset => Vec::new(),
            Format::Csv => vec![CSV_COLUMNS.join(",")],
            Format::Table => vec![table_row(
                "INDICATOR",
                "ITYPE",
                "PROVIDER",
                "CONF",
                "TLP",
                "REPORTTIME",
                "TAGS",
            )],
            Format::Zeek => {
                vec!["#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc".into()]
            }
            Format::Bindrpz => vec![
                "$TTL 300".into(),
                format!("@ IN SOA localhost. hostmaster.localhost. {serial} 3600 600 86400 300"),
                "@ IN NS localhost.".into(),
            ],
            Format::Ipset => vec![format!("create {IPSET_NAME} hash:net family inet -exist")],
        }
    }

    /// The indicator's lines in this format; none when the format has no place for its itype.
    /// A withdrawal's: see the module documentation.
    pub fn lines(self, indicator: &Indicator) -> Vec<String> {
        if indicator.is_withdrawn() {
            match self {
                Format::Csv | Format::Table => return Vec::new(),
                Format::Iptables => {
                    return ipv4_network(indicator)
                        .map(|net| format!("iptables -D INPUT -s {net} -j DROP"))
                        .into_iter()
                        .collect()
                }
                Format::Ipset => {
                    return ipv4_network(indicator)
                        .map(|net| format!("del {IPSET_NAME} {net} -exist"))
                        .into_iter()
                        .collect()
                }
                Format::Json | Format::Zeek | Format::Bindrpz | Format::SuricataDataset => {}
            }
        }
        match self {
            Format::Json => vec![indicator.to_json().to_string()],
            Format::Csv => vec![csv_row(indicator)],
            Format::Table => vec![table_row(
                indicator.indicator(),
                indicator.itype().as_str(),
                indicator.provider(),
                &confidence(indicator),
                indicator.tlp().as_str(),
                &to_seconds(&time(indicator.to_json().get("reporttime"))),
                &indicator.tags().join(","),
            )],
            Format::Zeek => zeek_line(indicator).into_iter().collect(),
            Format::Bindrpz => rpz_lines(indicator),
            Format::Iptables => ipv4_network(indicator)
                .map(|net| format!("iptables -A INPUT -s {net} -j DROP"))
                .into_iter()
                .collect(),
            Format::Ipset => ipv4_network(indicator)
                .map(|net| format!("add {IPSET_NAME} {net} -exist"))
                .into_iter()
                .collect(),
            Format::SuricataDataset => suricata_line(indicator).into_iter().collect(),
        }
    }
}

/// The Suricata dataset types (`type <…>` of a `dataset` keyword) that Sluice's itypes fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuricataType {
    /// IPv4 or IPv6 addresses as written (`ip`; an IPv4-only file also loads as `ipv4`).
    Ip,
    /// Byte strings, base64-encoded (`string`): domains, URLs, email addresses.
    String,
    /// Lowercase hex (`md5`).
    Md5,
    /// Lowercase hex (`sha256`).
    Sha256,
}

impl SuricataType {
    /// The name the `dataset` keyword takes.
    pub fn as_str(self) -> &'static str {
        match self {
            SuricataType::Ip => "ip",
            SuricataType::String => "string",
            SuricataType::Md5 => "md5",
            SuricataType::Sha256 => "sha256",
        }
    }
}

/// The dataset type an itype's values go in; `None` for the itypes Suricata has no dataset type
/// for (`sha1`, `sha512`, `cidr`, `asn`), which `suricata-dataset` leaves out.
pub fn suricata_type(itype: Itype) -> Option<SuricataType> {
    match itype {
        Itype::Ipv4 | Itype::Ipv6 => Some(SuricataType::Ip),
        Itype::Fqdn | Itype::Url | Itype::Email => Some(SuricataType::String),
        Itype::Md5 => Some(SuricataType::Md5),
        Itype::Sha256 => Some(SuricataType::Sha256),
        Itype::Sha1 | Itype::Sha512 | Itype::Cidr | Itype::Asn => None,
    }
}

/// Suricata reads a dataset file line by line into 1,024 bytes, newline and terminator
/// included; a longer line would be cut into pieces that do not decode, and Suricata refuses
/// the whole file. A value whose line would be longer is left out.
pub const SURICATA_MAX_LINE: usize = 1022;

fn suricata_line(indicator: &Indicator) -> Option<String> {
    let text = indicator.indicator();
    let line = match suricata_type(indicator.itype())? {
        // Normalised: addresses as written, hashes lowercase hex.
        SuricataType::Ip | SuricataType::Md5 | SuricataType::Sha256 => text.to_owned(),
        SuricataType::String => base64(text.as_bytes()),
    };
    (line.len() <= SURICATA_MAX_LINE).then_some(line)
}

/// Standard base64 with padding (RFC 4648 §4), as Suricata's strict decoder reads it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn confidence(indicator: &Indicator) -> String {
    indicator
        .to_json()
        .get("confidence")
        .map(Value::to_string)
        .unwrap_or_default()
}

fn time(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or("").to_owned()
}

/// `2026-11-23T15:32:53.938012Z` → `2026-11-23T15:32:53Z`: a table shows whole seconds.
fn to_seconds(time: &str) -> String {
    match time.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => time.to_owned(),
    }
}

fn csv_row(indicator: &Indicator) -> String {
    let json = indicator.to_json();
    let fields = [
        indicator.indicator().to_owned(),
        indicator.itype().as_str().to_owned(),
        indicator.provider().to_owned(),
        indicator.tags().join(","),
        confidence(indicator),
        indicator.tlp().as_str().to_owned(),
        time(json.get("reporttime")),
        time(json.get("firsttime")),
        time(json.get("lasttime")),
        indicator.description().unwrap_or("").to_owned(),
    ];
    fields
        .iter()
        .map(|field| csv_field(field))
        .collect::<Vec<_>>()
        .join(",")
}

/// One CSV field: formulas defused, control characters other than tab and line breaks made
/// `?` (no terminal escapes), quoted when it holds a separator, quote or line break.
pub fn csv_field(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                '?'
            } else {
                c
            }
        })
        .collect();
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// Control characters (line breaks, tabs, escapes) become `?`: a value cannot break a row or
/// drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn cell(text: &str, width: usize) -> String {
    let text = printable(text);
    let count = text.chars().count();
    if count > width {
        let kept: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{kept}…")
    } else {
        format!("{text}{}", " ".repeat(width - count))
    }
}

fn table_row(
    indicator: &str,
    itype: &str,
    provider: &str,
    confidence: &str,
    tlp: &str,
    reporttime: &str,
    tags: &str,
) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        cell(indicator, 40),
        cell(itype, 6),
        cell(provider, 24),
        cell(confidence, 4),
        cell(tlp, 5),
        cell(reporttime, 20),
        printable(tags)
    )
    .trim_end()
    .to_owned()
}

fn zeek_line(indicator: &Indicator) -> Option<String> {
    let text = indicator.indicator();
    let (value, kind) = match indicator.itype() {
        Itype::Ipv4 | Itype::Ipv6 => (text.to_owned(), "Intel::ADDR"),
        Itype::Cidr => (text.to_owned(), "Intel::SUBNET"),
        Itype::Fqdn => (text.to_owned(), "Intel::DOMAIN"),
        // Zeek's URL intel is matched without the scheme.
        Itype::Url => (
            text.split_once("://")
                .map_or(text, |(_, rest)| rest)
                .to_owned(),
            "Intel::URL",
        ),
        Itype::Md5 | Itype::Sha1 | Itype::Sha256 | Itype::Sha512 => {
            (text.to_owned(), "Intel::FILE_HASH")
        }
        Itype::Email => (text.to_owned(), "Intel::EMAIL"),
        Itype::Asn => return None,
    };
    let description = indicator
        .description()
        .map(str::to_owned)
        .unwrap_or_else(|| indicator.tags().join(","));
    Some(
        [
            value,
            kind.to_owned(),
            indicator.provider().to_owned(),
            description,
        ]
        .iter()
        .map(|field| zeek_field(field))
        .collect::<Vec<_>>()
        .join("\t"),
    )
}

/// Zeek's intel reader splits on tabs and lines, and reads `-` as unset.
fn zeek_field(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "-".to_owned()
    } else {
        clean.to_owned()
    }
}

fn rpz_lines(indicator: &Indicator) -> Vec<String> {
    match indicator.itype() {
        // A name that, with `*.` and the zone's origin, could pass DNS's 255-octet limit would
        // make BIND refuse the whole zone: such names are left out.
        Itype::Fqdn if indicator.indicator().len() <= 200 => {
            let name = indicator.indicator();
            vec![format!("{name} CNAME ."), format!("*.{name} CNAME .")]
        }
        Itype::Ipv4 | Itype::Cidr => ipv4_network(indicator)
            .map(|net| {
                let octets = net.addr().octets();
                vec![format!(
                    "{}.{}.{}.{}.{}.rpz-ip CNAME .",
                    net.prefix_len(),
                    octets[3],
                    octets[2],
                    octets[1],
                    octets[0]
                )]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn ipv4_network(indicator: &Indicator) -> Option<ipnet::Ipv4Net> {
    match (indicator.itype(), indicator.network()) {
        (Itype::Ipv4 | Itype::Cidr, Some(ipnet::IpNet::V4(net))) => Some(net),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648() {
        // RFC 4648 §10's test vectors, and Suricata's own example.
        for (text, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("google.com", "Z29vZ2xlLmNvbQ=="),
            ("\u{ff}\u{fe}", "w7/Dvg=="),
        ] {
            assert_eq!(base64(text.as_bytes()), encoded, "{text:?}");
        }
    }

    #[test]
    fn suricata_lines_follow_the_itype() {
        let now = "2026-11-23T12:00:00Z".parse().unwrap();
        let line = |text: &str| {
            let value = serde_json::json!({"indicator": text, "provider": "p"});
            let indicator = Indicator::from_json(value, crate::Provenance::Trusted, now).unwrap();
            Format::SuricataDataset.lines(&indicator)
        };
        let sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(line(sha256), [sha256.to_ascii_lowercase()]);
        assert_eq!(line("185.20.30.40"), ["185.20.30.40"]);
        assert_eq!(line("evil.example.com"), ["ZXZpbC5leGFtcGxlLmNvbQ=="]);
        let types: Vec<_> = [
            Itype::Ipv6,
            Itype::Email,
            Itype::Md5,
            Itype::Sha256,
            Itype::Cidr,
        ]
        .into_iter()
        .map(|itype| suricata_type(itype).map(SuricataType::as_str))
        .collect();
        assert_eq!(
            types,
            [
                Some("ip"),
                Some("string"),
                Some("md5"),
                Some("sha256"),
                None
            ]
        );
        // No dataset type: left out.
        for text in [
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            &"cf83e1357eefb8bd".repeat(8),
            "185.20.30.0/24",
            "AS13335",
        ] {
            assert_eq!(line(text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn suricata_leaves_out_lines_it_could_not_read() {
        let now = "2026-11-23T12:00:00Z".parse().unwrap();
        let url = |path_len: usize| {
            let value = serde_json::json!({
                "indicator": format!("https://example.com/{}", "a".repeat(path_len)),
                "provider": "p",
            });
            Indicator::from_json(value, crate::Provenance::Trusted, now).unwrap()
        };
        // `https://example.com/` is 20 bytes: 765 bytes encode to 1,020 characters, 766 to 1,024.
        let fits = Format::SuricataDataset.lines(&url(745));
        assert_eq!(fits.len(), 1);
        assert_eq!(fits[0].len(), 1020);
        assert!(Format::SuricataDataset.lines(&url(746)).is_empty());
    }
}
