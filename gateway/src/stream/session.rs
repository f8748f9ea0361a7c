//! One subscriber's stream, independent of transport: the subscription filtered by what the
//! plan may see, rate-limited with exact `dropped` accounting, following live plan changes,
//! revocation and expiry, and metering usage.
//!
//! Invariant (ARCHITECTURE.md, "Drops are exact"): every indicator that passes the subscriber's filter and the plan's
//! visibility is either delivered or counted in a `dropped` frame, exactly once, in order.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use billing::Principal;
use domain::protocol::ResetReason;
use domain::{Cursor, Frame, Plan};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::close::CloseReason;
use crate::control::{Control, Registration};
use crate::enforcement::{visible, RateGate};
use crate::frames::Framed;
use crate::slots::Slot;
use crate::subscription::{Delivery, Subscription};
use crate::usage::UsageMeter;

/// Drops are reported before the next delivery, or after this long if nothing else comes.
const DROP_REPORT_DELAY: Duration = Duration::from_secs(1);
/// How often a stream hands its usage counters to the node's meter.
const USAGE_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What the transport sends next.
#[derive(Debug)]
pub enum Output {
    Indicator(Framed),
    Dropped {
        count: u64,
        last_id: Cursor,
    },
    Reset {
        reason: ResetReason,
        cursor: Cursor,
    },
    Plan(Plan),
    /// End the stream (token revoked or expired, the plan no longer allows it).
    Close(CloseReason),
}

impl Output {
    /// Where a client that received this output resumes from, if it moves the position.
    pub fn position(&self) -> Option<&Cursor> {
        match self {
            Output::Indicator(entry) => Some(&entry.cursor),
            Output::Dropped { last_id, .. } => Some(last_id),
            Output::Reset { cursor, .. } => Some(cursor),
            Output::Plan(_) | Output::Close(_) => None,
        }
    }

    /// The native frame of a notice (`dropped`, `reset`, `plan`). `None` for indicators, whose
    /// frames are encoded once per entry and node (`crate::frames`), and for `Close`, which is
    /// no frame.
    pub fn notice(&self) -> Option<Frame> {
        Some(match self {
            Output::Dropped { count, last_id } => Frame::Dropped {
                count: *count,
                reason: domain::protocol::DropReason::RateLimit,
                last_id: last_id.clone(),
            },
            Output::Reset { reason, cursor } => Frame::Reset {
                reason: *reason,
                cursor: cursor.clone(),
            },
            Output::Plan(plan) => Frame::Plan {
                plan: plan.name.clone(),
                limits: plan.limits.clone(),
            },
            Output::Indicator(_) | Output::Close(_) => return None,
        })
    }
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
            gate: RateGate::for_limits(&parts.principal.plan.limits),
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

    /// The first frame: the plan and where delivery starts.
    pub fn hello(&self) -> Frame {
        Frame::Hello {
            plan: self.principal.plan.name.clone(),
            limits: self.principal.plan.limits.clone(),
            cursor: self.start.clone(),
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
                control = self.control.recv(), if self.control_open => {
                    if let Some(output) = self.on_control(control) {
                        return Some(output);
                    }
                }
                _ = sleep_until(self.expires_at.unwrap_or(far)), if self.expires_at.is_some() => {
                    return Some(Output::Close(CloseReason::TokenExpired));
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
                        if !visible(&self.principal.plan.limits, &entry.indicator) {
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

    /// What the stream is told while its transport takes no indicators yet (an ActionCable
    /// socket before its `subscribe`): only what changes or ends it — a plan change, the
    /// token's revocation or expiry — so a socket that never subscribes is closed as soon as
    /// its token is revoked, not when its subscription deadline runs out. Indicators wait in
    /// the subscription. Cancel-safe.
    pub async fn next_control(&mut self) -> Output {
        loop {
            let expires_at = self.expires_at;
            tokio::select! {
                biased;
                control = self.control.recv(), if self.control_open => {
                    if let Some(output) = self.on_control(control) {
                        return output;
                    }
                }
                _ = sleep_until(expires_at.unwrap_or_else(Instant::now)), if expires_at.is_some() => {
                    return Output::Close(CloseReason::TokenExpired);
                }
                else => std::future::pending::<()>().await,
            }
        }
    }

    /// What a message of the node's change log means for this stream, if anything.
    fn on_control(&mut self, control: Option<Control>) -> Option<Output> {
        match control {
            // A change this stream already started under (it was applied to the database
            // before the stream registered) is no news to the client.
            Some(Control::Plan(plan)) if plan == self.principal.plan => None,
            Some(Control::Plan(plan)) => Some(self.adopt(plan)),
            Some(Control::Revoked) => Some(Output::Close(CloseReason::TokenRevoked)),
            Some(Control::AdminClosed) => Some(Output::Close(CloseReason::AdminClosed)),
            None => {
                self.control_open = false;
                None
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

    fn adopt(&mut self, plan: Plan) -> Output {
        let limits = &plan.limits;
        if !limits.allows_stream() || (self.wants_correlated && !limits.correlated) {
            return Output::Close(CloseReason::PlanDisallows);
        }
        // A new limiter only when the rate changes: rebuilding refills the burst.
        if limits.effective_rate() != self.principal.plan.limits.effective_rate() {
            self.gate = RateGate::for_limits(limits);
        }
        self.principal.plan = plan.clone();
        Output::Plan(plan)
    }

    /// The counters the admin API reads.
    pub fn live(&self) -> &crate::control::Live {
        self._registration.live()
    }

    /// Records what the transport sent (after it was sent), for usage metering and the admin
    /// API's counters (relaxed atomic adds, no allocation).
    pub fn record_sent(&mut self, output: &Output, bytes: usize) {
        let live = self._registration.live();
        match output {
            Output::Indicator(_) => {
                self.sent.delivered += 1;
                live.delivered.fetch_add(1, Relaxed);
            }
            Output::Dropped { count, .. } => {
                self.sent.dropped += count;
                live.dropped.fetch_add(*count, Relaxed);
            }
            _ => {}
        }
        if let Some(position) = output.position() {
            live.set_position(position.id());
        }
        self.sent.bytes += bytes as u64;
        live.bytes.fetch_add(bytes as u64, Relaxed);
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
