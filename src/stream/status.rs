//! `sluice stream`'s state on stderr: on a terminal, one status line redrawn in place (state,
//! rate, received, dropped, and skipped when the format had no line for some); otherwise plain
//! lines on every change and a summary each minute.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use domain::Limits;

const REDRAW: Duration = Duration::from_millis(500);
const SUMMARY: Duration = Duration::from_secs(60);

pub struct Status {
    url: String,
    terminal: bool,
    state: String,
    received: u64,
    dropped: u64,
    /// Received but without a line in the output format (an ASN in `iptables`, a SHA-1 in
    /// `suricata-dataset`).
    skipped: u64,
    /// Received at the start of the current rate window, and when it started.
    window: (u64, Instant),
    rate: f64,
    drawn: Instant,
}

impl Status {
    pub fn new(url: String) -> Status {
        Status {
            url,
            terminal: std::io::stderr().is_terminal(),
            state: "starting".into(),
            received: 0,
            dropped: 0,
            skipped: 0,
            window: (0, Instant::now()),
            rate: 0.0,
            drawn: Instant::now(),
        }
    }

    pub fn connecting(&mut self) {
        self.state = format!("connecting to {}", self.url);
        self.event(&self.state.clone());
    }

    pub fn connected(&mut self, plan: &str, limits: &Limits) {
        self.state = format!("streaming ({plan} plan, {})", describe(limits));
        self.event(&format!("connected to {}: {}", self.url, self.state));
    }

    pub fn plan_changed(&mut self, plan: &str, limits: &Limits) {
        self.state = format!("streaming ({plan} plan, {})", describe(limits));
        self.event(&format!("the account's plan changed: {}", self.state));
    }

    pub fn disconnected(&mut self, reason: &str, retry_in: Duration) {
        self.state = format!("reconnecting in {:.1}s", retry_in.as_secs_f64());
        self.event(&format!(
            "disconnected: {reason}; reconnecting in {:.1}s",
            retry_in.as_secs_f64()
        ));
    }

    pub fn received(&mut self) {
        self.received += 1;
    }

    /// One indicator received had no line in the output format.
    pub fn skipped(&mut self) {
        self.skipped += 1;
    }

    pub fn dropped(&mut self, count: u64) {
        self.dropped += count;
        if !self.terminal {
            self.line(&format!(
                "{count} indicators dropped by the plan's rate limit ({} in all)",
                self.dropped
            ));
        }
    }

    pub fn note(&mut self, message: &str) {
        self.event(message);
    }

    /// Redraws the status line (terminal) or prints a summary each minute (otherwise).
    pub fn tick(&mut self) {
        let elapsed = self.window.1.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.rate = (self.received - self.window.0) as f64 / elapsed.as_secs_f64();
            self.window = (self.received, Instant::now());
        }
        let every = if self.terminal { REDRAW } else { SUMMARY };
        if self.drawn.elapsed() >= every {
            if self.terminal {
                self.redraw();
            } else {
                self.line(&self.summary());
            }
            self.drawn = Instant::now();
        }
    }

    pub fn finish(&mut self) {
        if self.terminal {
            eprintln!();
        }
        self.line(&format!("stopped: {}", self.summary()));
    }

    fn summary(&self) -> String {
        let mut summary = format!(
            "{} · {:.1}/s · received {} · dropped {}",
            self.state, self.rate, self.received, self.dropped
        );
        if self.skipped > 0 {
            summary.push_str(&format!(
                " · skipped {} (no line in this format)",
                self.skipped
            ));
        }
        summary
    }

    fn event(&mut self, message: &str) {
        if self.terminal {
            // Clear the status line, print the event above it, draw the line again.
            eprint!("\r\x1b[2K");
            eprintln!("{}", printable(message));
            self.redraw();
        } else {
            self.line(message);
        }
    }

    fn redraw(&self) {
        eprint!("\r\x1b[2K{}", printable(&self.summary()));
        let _ = std::io::stderr().flush();
    }

    fn line(&self, message: &str) {
        eprintln!(
            "{} sluice stream: {}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
            printable(message)
        );
    }
}

/// Text from the server or an indicator, made safe for a terminal: control characters
/// (escape sequences, line breaks) and bidirectional overrides become `?`, and it is capped.
pub fn printable(text: &str) -> String {
    const MAX_CHARS: usize = 300;
    let mut out: String = text
        .chars()
        .take(MAX_CHARS)
        .map(|c| {
            let bidi =
                ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c);
            if c.is_control() || bidi {
                '?'
            } else {
                c
            }
        })
        .collect();
    if text.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

fn describe(limits: &Limits) -> String {
    match limits.rate_per_second {
        Some(rate) => format!("{rate}/s"),
        None => "no rate limit".into(),
    }
}
