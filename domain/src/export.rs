//! Output formats for people and devices (`sluice stream --format`): an indicator in, zero or
//! more lines out. Pure, so each format is pinned by golden files (`domain/tests/export.rs`).
//!
//! Indicators are attacker-controlled text. Every format writes them so that they cannot break
//! out of their field: CSV quotes per RFC 4180 and defuses spreadsheet formulas (a leading `=`,
//! `+`, `-`, `@`, tab or carriage return gets a `'`), tables and Zeek replace control characters,
//! and the device formats (Zeek, RPZ, iptables, ipset) only ever print the normalised indicator
//! of the itypes they understand, which validation restricts to safe characters.

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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}`: use json, csv, table, zeek, bindrpz, iptables or ipset")]
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
        matches!(self, Format::Zeek | Format::Bindrpz)
    }

    /// Lines that start the output (before any indicator). `serial` numbers an RPZ zone.
    pub fn header(self, serial: u32) -> Vec<String> {
        match self {
            Format::Json | Format::Iptables => Vec::new(),
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
    pub fn lines(self, indicator: &Indicator) -> Vec<String> {
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
        }
    }
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
