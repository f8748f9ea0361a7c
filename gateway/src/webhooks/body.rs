//! What a batch looks like on the wire, per endpoint format (docs/protocol.md §13.3).

use domain::webhook::WebhookFormat;
use domain::Indicator;
use serde::Serialize;
use sluice_log::SharedEntry;

/// Lines of a Slack message before the rest is summarised as "… and N more".
const SLACK_LINES: usize = 20;

/// The body of one batch.
pub fn render(format: WebhookFormat, webhook: &str, key: &str, entries: &[SharedEntry]) -> Vec<u8> {
    match format {
        WebhookFormat::Native => native(webhook, key, entries),
        WebhookFormat::Slack => slack(entries),
    }
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
