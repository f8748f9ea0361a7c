//! Withdrawals (docs/protocol.md §2.10): a provider takes back what it reported of an indicator.
//!
//! A request names the indicator (a published item with `"withdrawn": true`, over HTTP or the
//! Redis upstream) or, for `DELETE /v1/indicators/{id}`, its STIX object or its text. What is
//! stored is built from the provider's own last report at the most shareable level it reported
//! at ([`Indicator::withdrawal_of`]): every plan that saw a report sees the withdrawal, the
//! filters that matched the report match it, and no field of a report at a more restricted
//! level reaches a wider audience. A provider withdraws only its own reports, only one the log
//! still holds, and only once (until it reports the indicator again).
//!
//! The TAXII version index ([`VersionIndex`]) says where each provider's last report of an
//! indicator is; one entry is then read. Two nodes withdrawing the same report at the same
//! moment may both store a withdrawal: a second withdrawal of a withdrawn indicator changes
//! nothing for any consumer.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use billing::Scope;
use chrono::{DateTime, Utc};
use domain::{Indicator, Provenance, Rejection};
use sluice_log::{Log, LogError};

use crate::error::ApiError;
use crate::metrics::SourceLabels;
use crate::taxii::versions::{object_key, parse_object_id, ObjectKey};
use crate::taxii::VersionIndex;
use crate::wire::{ErrorBody, WithdrawalResponse};
use crate::AppState;

/// Where one batch's withdrawals are resolved, item by item in order.
pub struct Withdrawals<'a> {
    log: &'a dyn Log,
    index: &'a VersionIndex,
    now: DateTime<Utc>,
    /// What the batch did so far to each object it touched: its report, or its withdrawal.
    batch: HashMap<ObjectKey, Pending>,
}

enum Pending {
    Reported(Indicator),
    Withdrawn,
}

impl<'a> Withdrawals<'a> {
    /// Brings the index up to date with the log, once per batch.
    pub async fn begin(
        log: &'a dyn Log,
        index: &'a VersionIndex,
        now: DateTime<Utc>,
    ) -> Result<Withdrawals<'a>, LogError> {
        index.current(log).await?;
        Ok(Withdrawals {
            log,
            index,
            now,
            batch: HashMap::new(),
        })
    }

    /// Notes a report earlier in the batch: a withdrawal after it takes it back too.
    pub fn reported(&mut self, report: &Indicator) {
        self.batch
            .insert(object_key(report), Pending::Reported(report.clone()));
    }

    /// The withdrawal to store for `request` (an item with `"withdrawn": true`), or why there is
    /// none. Only `indicator` counts in the request (and the provider it is published as).
    pub async fn withdraw(
        &mut self,
        request: &Indicator,
    ) -> Result<Result<Indicator, Rejection>, LogError> {
        let key = object_key(request);
        let retained = self.index.reported(key);
        let report = match self.batch.get(&key) {
            Some(Pending::Withdrawn) => return Ok(Err(already_withdrawn(request))),
            Some(Pending::Reported(in_batch)) => match retained {
                // A more shareable report in the log than the batch's: that one's audience
                // must hear of the withdrawal.
                Some(retained) if retained.tlp < in_batch.tlp() => {
                    self.read(request, retained.last).await?
                }
                _ => Some(in_batch.clone()),
            },
            None => match retained {
                None => None,
                Some(retained) if retained.withdrawn => return Ok(Err(already_withdrawn(request))),
                Some(retained) => self.read(request, retained.last).await?,
            },
        };
        let Some(report) = report else {
            return Ok(Err(Rejection::new(
                "withdrawn",
                format!(
                    "nothing to withdraw: the log holds no report of {} by {} (a provider \
                     withdraws only its own reports, within the log's retention)",
                    request.indicator(),
                    request.provider()
                ),
            )));
        };
        self.batch.insert(key, Pending::Withdrawn);
        Ok(Ok(Indicator::withdrawal_of(&report, self.now)))
    }

    /// The report at `position`, if it is still there and is `request`'s provider's report of
    /// its indicator.
    async fn read(
        &self,
        request: &Indicator,
        position: domain::StreamId,
    ) -> Result<Option<Indicator>, LogError> {
        Ok(self.entry_at(position).await?.filter(|report| {
            report.provider() == request.provider() && report.indicator() == request.indicator()
        }))
    }

    /// The entry at `position`, if retention has not taken it.
    async fn entry_at(&self, position: domain::StreamId) -> Result<Option<Indicator>, LogError> {
        let batch = self.log.read_after(position.before(), 1).await?;
        Ok(batch
            .entries
            .into_iter()
            .find(|entry| entry.id() == position)
            .map(|entry| entry.indicator.clone()))
    }

    /// Resolves every withdrawal request among `verdicts`, in order; other items pass through.
    pub async fn resolve_all(
        &mut self,
        verdicts: Vec<Result<Indicator, Rejection>>,
    ) -> Result<Vec<Result<Indicator, Rejection>>, LogError> {
        let mut resolved = Vec::with_capacity(verdicts.len());
        for verdict in verdicts {
            resolved.push(match verdict {
                Ok(request) if request.is_withdrawn() => self.withdraw(&request).await?,
                Ok(report) => {
                    self.reported(&report);
                    Ok(report)
                }
                Err(rejection) => Err(rejection),
            });
        }
        Ok(resolved)
    }
}

fn already_withdrawn(request: &Indicator) -> Rejection {
    Rejection::new(
        "withdrawn",
        format!(
            "{} is already withdrawn: report it again before withdrawing it again",
            request.indicator()
        ),
    )
}

/// Withdraw a report.
///
/// Takes back the caller's reports of one indicator, named by its STIX id (`indicator--…`, as
/// TAXII shows it) or by the indicator itself (URL-encoded). Subscribers get a `withdrawn`
/// frame, feeds and lists drop it, TAXII revokes the object and the correlator stops counting
/// the report. The same as publishing `{"indicator": …, "withdrawn": true}`. Needs a `write`
/// token.
#[utoipa::path(
    delete,
    path = "/v1/indicators/{id}",
    tag = "indicators",
    params(("id" = String, Path, description = "The STIX id of the indicator object \
        (`indicator--<uuid>`), or the indicator (`185.220.101.7`, a URL-encoded URL).")),
    responses(
        (status = 200, description = "Withdrawn: the withdrawal's cursor.",
            body = WithdrawalResponse),
        (status = 400, description = "Not a STIX id and not a valid indicator.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The token lacks the `write` scope.", body = ErrorBody),
        (status = 404, description = "The log holds no report of it by you, or it is already \
            withdrawn.", body = ErrorBody),
        (status = 503, description = "The log backend is unavailable; nothing was stored, retry.",
            body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<WithdrawalResponse>, ApiError> {
    let principal = crate::auth::authenticate(&state, &headers, None, Scope::Write).await?;
    let now = Utc::now();
    let unavailable = |error: LogError| {
        state.metrics.backend_error("log");
        tracing::warn!(%error, "withdrawal failed");
        ApiError::Unavailable("the log is unavailable: nothing was withdrawn, retry".into())
    };
    let mut withdrawals = Withdrawals::begin(state.log.as_ref(), &state.taxii, now)
        .await
        .map_err(unavailable)?;
    let request = match id.strip_prefix("indicator--") {
        Some(_) => {
            let key = parse_object_id(&id).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`{}` is not a STIX indicator id: send `indicator--<uuid>` (lowercase, \
                     hyphenated) or the indicator itself",
                    preview(&id)
                ))
            })?;
            report_of_object(&withdrawals, key, &principal.account)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| not_found(&id))?
        }
        None => {
            let item = serde_json::json!({"indicator": id, "withdrawn": true});
            Indicator::from_json(item, Provenance::Authenticated(&principal.account), now)
                .map_err(|rejection| ApiError::BadRequest(rejection.to_string()))?
        }
    };
    let withdrawal = withdrawals
        .withdraw(&request)
        .await
        .map_err(unavailable)?
        .map_err(|rejection| ApiError::NotFound(rejection.reason))?;
    let indicator = withdrawal.indicator().to_owned();
    let cursors = state
        .log
        .append(vec![withdrawal])
        .await
        .map_err(unavailable)?;
    let http = SourceLabels { source: "http" };
    state.metrics.accepted.get_or_create(&http).inc();
    state.metrics.withdrawals.get_or_create(&http).inc();
    tracing::info!(account.name = %principal.account, "indicator withdrawn");
    Ok(Json(WithdrawalResponse {
        id: cursors.first().map(ToString::to_string).unwrap_or_default(),
        object: sluice_stix::indicator_id(&principal.account, &indicator),
        indicator,
    }))
}

/// The caller's report that `key` names, as a withdrawal request; `None` when the object is
/// not there or is another provider's (the same answer: which objects others reported is not
/// the caller's to learn).
async fn report_of_object(
    withdrawals: &Withdrawals<'_>,
    key: ObjectKey,
    account: &str,
) -> Result<Option<Indicator>, LogError> {
    let Some(reported) = withdrawals.index.reported(key) else {
        return Ok(None);
    };
    Ok(withdrawals
        .entry_at(reported.last)
        .await?
        .filter(|report| report.provider() == account))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "nothing to withdraw: the log holds no report of {} by you (a provider withdraws only its \
         own reports, within the log's retention)",
        preview(id)
    ))
}

/// At most 64 characters of what the caller sent, for an error message.
fn preview(text: &str) -> String {
    text.chars().take(64).collect()
}
