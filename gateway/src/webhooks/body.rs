//! What a batch looks like on the wire, per endpoint format (docs/protocol.md §13.3): native
//! JSON, a Slack message, or a STIX 2.1 bundle.

use domain::webhook::WebhookFormat;
use domain::Indicator;
use serde::Serialize;
use sluice_log::SharedEntry;

/// Lines of a Slack message before the rest is summarised as "… and N more".
const SLACK_LINES: usize = 20;

/// The body of one batch; `validity` says when indicators expire (STIX's `valid_until`).
pub fn render(
    format: WebhookFormat,
    webhook: &str,
    key: &str,
    entries: &[SharedEntry],
    validity: &domain::Validity,
) -> Vec<u8> {
    match format {
        WebhookFormat::Native => native(webhook, key, entries),
        WebhookFormat::Slack => slack(entries),
        WebhookFormat::Stix => stix(entries, validity),
    }
}

/// A STIX 2.1 bundle that stands on its own: each indicator's objects as the TAXII server
/// serves them (`sluice-stix`), then every provider's `identity` and every TLP marking
/// definition they refer to, once each.
fn stix(entries: &[SharedEntry], validity: &domain::Validity) -> Vec<u8> {
    let mut objects = Vec::with_capacity(entries.len() + 8);
    let mut providers = std::collections::BTreeSet::new();
    let mut markings = std::collections::BTreeSet::new();
    for entry in entries {
        let indicator = &entry.indicator;
        let lifecycle = sluice_stix::Lifecycle {
            valid_until: validity.expires(indicator),
            ..sluice_stix::Lifecycle::default()
        };
        objects.extend(sluice_stix::objects(indicator, lifecycle));
        providers.insert(indicator.provider().to_owned());
        markings.insert(indicator.tlp());
    }
    objects.extend(
        providers
            .iter()
            .map(|provider| sluice_stix::identity(provider)),
    );
    objects.extend(markings.into_iter().map(sluice_stix::tlp_marking));
    serde_json::to_vec(&sluice_stix::bundle(objects)).expect("serialising to a Vec cannot fail")
}

/// `{"webhook", "batch", "cursor", "count", "indicators": […]}`; each indicator is the log's
/// canonical JSON as the stream sends it, written once, never re-encoded.
fn native(webhook: &str, key: &str, entries: &[SharedEntry]) -> Vec<u8> {
    let cursor = entries.last().map(|entry| entry.cursor.to_string());
    let mut out =
        Vec::with_capacity(128 + entries.iter().map(|e| e.json().len() + 1).sum::<usize>());
    out.extend_from_slice(b"{\"webhook\":");
    push_json(&mut out, &webhook);
    out.extend_from_slice(b",\"batch\":");
    push_json(&mut out, &key);
    out.extend_from_slice(b",\"cursor\":");
    push_json(&mut out, &cursor);
    out.extend_from_slice(b",\"count\":");
    push_json(&mut out, &entries.len());
    out.extend_from_slice(b",\"indicators\":[");
    for (n, entry) in entries.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(entry.json().as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

fn push_json(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(&mut *out, value).expect("serialising to a Vec cannot fail");
}

/// Slack's incoming-webhook body, `{"text": …}`: a headline and one line per indicator.
fn slack(entries: &[SharedEntry]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Message {
        text: String,
    }
    let mut text = format!(
        "Sluice: {} indicator{}",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    for entry in entries.iter().take(SLACK_LINES) {
        text.push('\n');
        text.push_str(&slack_line(&entry.indicator));
    }
    if entries.len() > SLACK_LINES {
        text.push_str(&format!("\n… and {} more", entries.len() - SLACK_LINES));
    }
    serde_json::to_vec(&Message { text }).expect("serialising to a Vec cannot fail")
}

/// `• `1.2.3.4` ipv4 — scanner, ssh (by csirtg, confidence 8, tlp green)`, with Slack's three
/// control characters escaped so an indicator cannot inject a link or a mention.
fn slack_line(indicator: &Indicator) -> String {
    let tags = indicator.tags().join(", ");
    let verb = if indicator.is_withdrawn() {
        "withdrawn: "
    } else {
        ""
    };
    let line = format!(
        "• {verb}`{}` {}{}{} (by {}, confidence {}, tlp {})",
        indicator.indicator(),
        indicator.itype(),
        if tags.is_empty() { "" } else { " — " },
        tags,
        indicator.provider(),
        indicator.confidence(),
        indicator.tlp(),
    );
    line.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
