//! One subscriber's stream, independent of transport: the subscription filtered by what the
//! plan may see, rate-limited with exact `dropped` accounting, following live plan changes,
//! revocation and expiry, and metering usage.
//!
//! Invariant (TESTING.md): every indicator that passes the subscriber's filter and the plan's
//! visibility is either delivered or counted in a `dropped` frame, exactly once, in order.

use std::time::Duration;

use billing::Principal;
use domain::{Cursor, PlanLimits};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::control::{Control, Registration};
use crate::enforcement::{effective_rate, stream_allowed, visible, RateGate};
use crate::log::SharedEntry;
use crate::slots::Slot;
use crate::subscription::{Delivery, Subscription};
use crate::usage::UsageMeter;
use crate::wire::close;

/// Drops are reported before the next delivery, or after this long if nothing else comes.
const DROP_REPORT_DELAY: Duration = Duration::from_secs(1);
/// How often a stream hands its usage counters to the node's meter.
const USAGE_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What the transport sends next.
#[derive(Debug)]
pub enum Output {
    Indicator(SharedEntry),
    Dropped {
        count: u64,
        last_id: Cursor,
    },
    Reset {
        reason: &'static str,
        cursor: Cursor,
    },
    Plan(PlanLimits),
    /// Close for a policy reason (4001 revoked/expired, 4010 plan).
    Close {
        code: u16,
        reason: &'static str,
    },
}

/// What the stream has sent, for metering.
#[derive(Default)]
struct Sent {
    delivered: u64,
    dropped: u64,
    bytes: u64,
}

pub struct Session {
    pub principal: Principal,
    /// Where delivery starts: the `hello` frame's cursor.
    pub start: Cursor,
    subscription: Subscription,
    gate: RateGate,
    wants_correlated: bool,
    control: mpsc::UnboundedReceiver<Control>,
    expires_at: Option<Instant>,
    /// An output held back because pending drops must be reported first (order matters: a
    /// `dropped` frame after a `reset` would move the client's resume cursor backwards).
    stashed: Option<Output>,
    control_open: bool,
    drops: u64,
    last_dropped: Option<Cursor>,
    drops_since: Option<Instant>,
    sent: Sent,
    last_report: Instant,
    meter: std::sync::Arc<UsageMeter>,
    _registration: Registration,
    _slot: Slot,
}

/// Everything a session holds for its lifetime.
pub struct SessionParts {
    pub principal: Principal,
    pub start: Cursor,
    pub subscription: Subscription,
    pub wants_correlated: bool,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub registration: Registration,
    pub slot: Slot,
    pub meter: std::sync::Arc<UsageMeter>,
}

impl Session {
    pub fn new(parts: SessionParts) -> Self {
        let expires_at = parts.principal.expires_at.map(|at| {
            let left = (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
            Instant::now() + left
        });
        parts.meter.opened(parts.principal.account_id);
        Session {
            gate: RateGate::for_plan(&parts.principal.plan),
            principal: parts.principal,
            start: parts.start,
            subscription: parts.subscription,
            wants_correlated: parts.wants_correlated,
            control: parts.control,
            expires_at,
            stashed: None,
            control_open: true,
            drops: 0,
            last_dropped: None,
            drops_since: None,
            sent: Sent::default(),
            last_report: Instant::now(),
            meter: parts.meter,
            _registration: parts.registration,
            _slot: parts.slot,
        }
    }

    /// The next thing to send; `None` when the node shuts down. Cancel-safe.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<Output> {
        loop {
            if let Some(output) = self.stashed.take() {
                return Some(output);
            }
            let far = Instant::now() + Duration::from_secs(86_400 * 365);
            let drop_deadline = self
                .drops_since
                .map_or(far, |since| since + DROP_REPORT_DELAY);
            tokio::select! {
                biased;
                control = self.control.recv(), if self.control_open => match control {
                    // A change this stream already started under (it was applied to the
                    // database before the stream registered) is no news to the client.
                    Some(Control::Plan(plan)) if plan == self.principal.plan => {}
                    Some(Control::Plan(plan)) => return Some(self.adopt(plan)),
                    Some(Control::Revoked) => return Some(Output::Close {
                        code: close::TOKEN_REVOKED,
                        reason: "token revoked",
                    }),
                    None => self.control_open = false,
                },
                _ = sleep_until(self.expires_at.unwrap_or(far)), if self.expires_at.is_some() => {
                    return Some(Output::Close { code: close::TOKEN_REVOKED, reason: "token expired" });
                }
                _ = sleep_until(drop_deadline), if self.drops > 0 => return Some(self.take_drops()),
                delivery = self.subscription.next(shutdown) => match delivery? {
                    Delivery::Reset { reason, cursor } => {
                        let reset = Output::Reset { reason, cursor };
                        if self.drops > 0 {
                            self.stashed = Some(reset);
                            return Some(self.take_drops());
                        }
                        return Some(reset);
                    }
                    Delivery::Entry(entry) => {
                        if !visible(&self.principal.plan, &entry.indicator) {
                            continue;
                        }
                        if !self.gate.admit() {
                            self.drops += 1;
                            self.last_dropped = Some(entry.cursor.clone());
                            self.drops_since.get_or_insert_with(Instant::now);
                            continue;
                        }
                        if self.drops > 0 {
                            self.stashed = Some(Output::Indicator(entry));
                            return Some(self.take_drops());
                        }
                        return Some(Output::Indicator(entry));
                    }
                },
            }
        }
    }

    fn take_drops(&mut self) -> Output {
        let count = std::mem::take(&mut self.drops);
        self.drops_since = None;
        let last_id = self
            .last_dropped
            .take()
            .expect("drops imply a last dropped cursor");
        Output::Dropped { count, last_id }
    }

    fn adopt(&mut self, plan: PlanLimits) -> Output {
        if !stream_allowed(&plan) || (self.wants_correlated && !plan.correlated) {
            return Output::Close {
                code: close::PLAN_DISALLOWS,
                reason: "the account's plan no longer allows this stream",
            };
        }
        // A new limiter only when the rate changes: rebuilding refills the burst.
        if effective_rate(&plan) != effective_rate(&self.principal.plan) {
            self.gate = RateGate::for_plan(&plan);
        }
        self.principal.plan = plan.clone();
        Output::Plan(plan)
    }

    /// Records what the transport sent (after it was sent), for usage metering.
    pub fn record_sent(&mut self, output: &Output, bytes: usize) {
        match output {
            Output::Indicator(_) => self.sent.delivered += 1,
            Output::Dropped { count, .. } => self.sent.dropped += count,
            _ => {}
        }
        self.sent.bytes += bytes as u64;
        if self.last_report.elapsed() >= USAGE_REPORT_INTERVAL {
            self.report_usage();
        }
    }

    fn report_usage(&mut self) {
        let sent = std::mem::take(&mut self.sent);
        self.meter.add(
            self.principal.account_id,
            sent.delivered,
            sent.dropped,
            sent.bytes,
        );
        self.last_report = Instant::now();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.report_usage();
        self.meter.closed(self.principal.account_id);
    }
}
