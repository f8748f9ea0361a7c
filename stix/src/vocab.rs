//! From CIF's words to STIX's: tags to `indicator_types` (indicator-type-ov), and CIF's 0–10
//! confidence to STIX's 0–100.

/// Which tags mean which indicator-type-ov value. A tag that is itself a value of the
/// vocabulary means that value. Tags are lowercase already (the indicator model lowercases them).
/// An indicator gets every type one of its tags maps to, in this table's order, and `unknown`
/// when none does. `labels` keep every tag as it is, mapped or not.
///
/// The crate documentation shows this table.
pub(crate) const INDICATOR_TYPES: [(&str, &[&str]); 6] = [
    (
        "malicious-activity",
        &[
            "malicious-activity",
            "phishing",
            "malware",
            "malware_download",
            "botnet",
            "c2",
            "cnc",
            "exploit",
            "exploit-kit",
            "ransomware",
            "spam",
            "bruteforce",
        ],
    ),
    (
        "anomalous-activity",
        &["anomalous-activity", "scanner", "scanning", "scan"],
    ),
    ("anonymization", &["anonymization", "tor", "proxy", "vpn"]),
    ("compromised", &["compromised", "hijacked"]),
    ("attribution", &["attribution"]),
    ("benign", &["benign", "whitelist", "allowlist"]),
];

/// The `indicator_types` of an indicator with `tags` (see [`INDICATOR_TYPES`]); never empty.
pub(crate) fn indicator_types(tags: &[String]) -> Vec<&'static str> {
    let mut types: Vec<&'static str> = INDICATOR_TYPES
        .iter()
        .filter(|(_, words)| tags.iter().any(|tag| words.contains(&tag.as_str())))
        .map(|(kind, _)| *kind)
        .collect();
    if types.is_empty() {
        types.push("unknown");
    }
    types
}

/// CIF's confidence (0–10, at most two decimals) on STIX's 0–100 scale: ×10, rounded to the
/// nearest integer with halves rounded up (7.25 → 73, 8.35 → 84), clamped to 0–100.
///
/// Rounded from the value in hundredths, an exact integer, so no binary-fraction artefact
/// (8.35 is 8.3499… as an `f64`) moves a half down. ×10 is also the mapping STIX 2.1's own
/// appendix gives for a 0–10 scale (its table maps 0 → 0, 1 → 10, …, 10 → 100).
pub(crate) fn confidence(cif: f64) -> u8 {
    // `as` saturates and sends NaN to 0; the indicator model never lets either through.
    let hundredths = (cif * 100.0).round().clamp(0.0, 1000.0) as u32;
    u8::try_from((hundredths + 5) / 10).map_or(100, |percent| percent.min(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(tags: &[&str]) -> Vec<&'static str> {
        let tags: Vec<String> = tags.iter().map(|tag| tag.to_string()).collect();
        indicator_types(&tags)
    }

    #[test]
    fn tags_map_to_the_vocabulary() {
        assert_eq!(types(&["scanner"]), ["anomalous-activity"]);
        for tag in ["phishing", "malware", "botnet", "c2", "exploit"] {
            assert_eq!(types(&[tag]), ["malicious-activity"], "{tag}");
        }
        assert_eq!(types(&["whitelist"]), ["benign"]);
        assert_eq!(types(&["tor"]), ["anonymization"]);
        assert_eq!(types(&["hijacked"]), ["compromised"]);
        assert_eq!(types(&["attribution"]), ["attribution"]);
        assert_eq!(types(&[]), ["unknown"]);
        assert_eq!(types(&["rdp", "emotet"]), ["unknown"]);
        assert_eq!(
            types(&["correlated", "scanner", "ssh", "phishing", "scan"]),
            ["malicious-activity", "anomalous-activity"],
            "table order, each once"
        );
    }

    #[test]
    fn the_crate_documentation_shows_this_table() {
        let docs = include_str!("lib.rs");
        for (kind, words) in INDICATOR_TYPES {
            let others: Vec<&str> = words.iter().copied().filter(|w| *w != kind).collect();
            let shown = if others.is_empty() {
                "—".to_owned()
            } else {
                others.join(", ")
            };
            let row = format!("//! | `{kind}` | {shown} |");
            assert!(docs.contains(&row), "the crate documentation lacks {row}");
        }
    }

    #[test]
    fn confidence_is_scaled_rounded_and_clamped() {
        let cases = [
            (0.0, 0),
            (5.0, 50),
            (10.0, 100),
            (7.25, 73),
            (7.24, 72),
            (8.35, 84),
            (0.05, 1),
            (0.04, 0),
            (9.99, 100),
            (9.94, 99),
            (-1.0, 0),
            (11.0, 100),
            (f64::NAN, 0),
        ];
        for (cif, stix) in cases {
            assert_eq!(confidence(cif), stix, "{cif}");
        }
    }
}
