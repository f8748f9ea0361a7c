//! A TAXII 2.1 server, read side (docs/protocol.md §12): discovery, one API root, its
//! collections, and each collection's objects, manifest, objects by id and their versions,
//! served from the log as STIX 2.1 (`sluice-stix`).
//!
//! Plans apply as on the stream: a plan without the firehose has no TAXII access, objects beyond
//! the plan's TLP or before its replay window are not there, and every page takes one of the
//! node's feed scans and counts against the account's rate of pages (`--taxii-rate`; 429).
//! Objects carry their expiry (`valid_until`); expired ones leave a collection's objects and
//! manifest, but an object asked for by id is still answered (`page.rs`).
//! Credentials are the API tokens, as Bearer or as HTTP Basic's password.

mod collections;
mod doc;
mod media;
mod page;
mod params;
pub(crate) mod versions;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use billing::{Principal, Scope};
use domain::StreamId;
use serde_json::{json, Value};

use crate::enforcement::replay_floor;
use crate::error::ApiError;
use crate::AppState;
use collections::Collection;
use media::{answer, TaxiiError, STIX, TAXII};
use page::{date_added, Page, Selection};
use params::{Endpoint, Params, VersionMatch};
pub use versions::VersionIndex;

/// The API root's path.
const API_ROOT: &str = "/taxii2/api/";
/// The largest request body the API root takes (it takes none: the read side only).
const MAX_CONTENT_LENGTH: u64 = 1024 * 1024;

/// The TAXII routes, to merge into the gateway's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route(API_ROOT, get(api_root))
        .route("/taxii2/api/collections/", get(list_collections))
        .route("/taxii2/api/collections/{collection}/", get(collection))
        .route(
            "/taxii2/api/collections/{collection}/objects/",
            get(objects),
        )
        .route(
            "/taxii2/api/collections/{collection}/manifest/",
            get(manifest),
        )
        .route(
            "/taxii2/api/collections/{collection}/objects/{object}/",
            get(object),
        )
        .route(
            "/taxii2/api/collections/{collection}/objects/{object}/versions/",
            get(versions),
        )
}

/// Negotiates, authenticates and checks the plan: what every TAXII endpoint does first.
async fn admit(state: &AppState, headers: &HeaderMap) -> Result<Principal, TaxiiError> {
    if !media::acceptable(headers) {
        return Err(TaxiiError::NotAcceptable);
    }
    let principal = crate::auth::authenticate(state, headers, None, Scope::Read).await?;
    // TAXII is a pull of the retained log: a plan with only a live sample (and no replay
    // window) would always find it empty, so it needs the firehose.
    if !principal.plan.limits.firehose {
        return Err(ApiError::Forbidden(format!(
            "the `{}` plan has no TAXII access: move the account to a plan with the firehose",
            principal.plan.name
        ))
        .into());
    }
    Ok(principal)
}

fn find(id: &str) -> Result<&'static Collection, TaxiiError> {
    collections::find(id).ok_or_else(|| {
        TaxiiError::NotFound(format!(
            "no collection `{}`; GET {API_ROOT}collections/ lists them",
            id.chars().take(64).collect::<String>()
        ))
    })
}

/// TAXII discovery: the API root.
#[utoipa::path(
    get,
    path = "/taxii2/",
    tag = "taxii",
    params(
    ),
    responses(
        (status = 200, description = "TAXII discovery: the API root.", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn discovery(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, TaxiiError> {
    admit(&state, &headers).await?;
    Ok(answer(
        &json!({
            "title": "Sluice",
            "description": "Threat indicators as STIX 2.1, from Sluice's replayable log.",
            "default": API_ROOT,
            "api_roots": [API_ROOT],
        }),
        Vec::new(),
    ))
}

/// The API root's information.
#[utoipa::path(
    get,
    path = "/taxii2/api/",
    tag = "taxii",
    params(
    ),
    responses(
        (status = 200, description = "The API root's information.", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn api_root(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, TaxiiError> {
    admit(&state, &headers).await?;
    Ok(answer(
        &json!({
            "title": "Sluice indicators",
            "versions": [TAXII],
            "max_content_length": MAX_CONTENT_LENGTH,
        }),
        Vec::new(),
    ))
}

/// The collections.
#[utoipa::path(
    get,
    path = "/taxii2/api/collections/",
    tag = "taxii",
    params(
    ),
    responses(
        (status = 200, description = "The collections.", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn list_collections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, TaxiiError> {
    admit(&state, &headers).await?;
    let collections: Vec<Value> = collections::all()
        .iter()
        .map(Collection::resource)
        .collect();
    Ok(answer(&json!({ "collections": collections }), Vec::new()))
}

/// One collection.
#[utoipa::path(
    get,
    path = "/taxii2/api/collections/{collection}/",
    tag = "taxii",
    params(
        ("collection" = String, Path, description = "A collection's id (or alias)."),
    ),
    responses(
        (status = 200, description = "One collection.", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, TaxiiError> {
    admit(&state, &headers).await?;
    Ok(answer(&find(&id)?.resource(), Vec::new()))
}

/// A collection's objects: an envelope of STIX 2.1 objects, oldest first.
#[utoipa::path(
    get,
    path = "/taxii2/api/collections/{collection}/objects/",
    tag = "taxii",
    params(
        ("collection" = String, Path, description = "A collection's id (or alias)."),
        doc::PageParams,
        doc::ListParams,
    ),
    responses(
        (status = 200, description = "A collection's objects: an envelope of STIX 2.1 objects, oldest first.", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
        doc::PageRefusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn objects(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let page = read_page(&state, &headers, &id, Target::List, query.as_deref()).await?;
    let objects: Vec<&Value> = page.items.iter().flat_map(|item| &item.objects).collect();
    Ok(answer(
        &envelope(&page, "objects", json!(objects)),
        page.date_headers(),
    ))
}

/// A collection's manifest: each object's id, version and when it was added.
#[utoipa::path(
    get,
    path = "/taxii2/api/collections/{collection}/manifest/",
    tag = "taxii",
    params(
        ("collection" = String, Path, description = "A collection's id (or alias)."),
        doc::PageParams,
        doc::ListParams,
    ),
    responses(
        (status = 200, description = "A collection's manifest: each object's id, version and when it was added.", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
        doc::PageRefusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn manifest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let page = read_page(&state, &headers, &id, Target::List, query.as_deref()).await?;
    let records: Vec<Value> = page
        .items
        .iter()
        .flat_map(|item| {
            let added = date_added(&item.entry);
            item.objects.iter().map(move |object| {
                json!({
                    "id": object["id"],
                    "date_added": added,
                    "version": object["modified"],
                    "media_type": STIX,
                })
            })
        })
        .collect();
    Ok(answer(
        &envelope(&page, "objects", json!(records)),
        page.date_headers(),
    ))
}

/// One object, in the versions asked for (the last by default).
#[utoipa::path(
    get,
    path = "/taxii2/api/collections/{collection}/objects/{object}/",
    tag = "taxii",
    params(
        ("collection" = String, Path, description = "A collection's id (or alias)."),
        ("object" = String, Path, description = "An `indicator--…` id, or an `identity--…` or `marking-definition--…` the indicators refer to."),
        doc::PageParams,
    ),
    responses(
        (status = 200, description = "One object, in the versions asked for (the last by default).", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
        doc::PageRefusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn object(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, object)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    if object.starts_with("identity--") || object.starts_with("marking-definition--") {
        return referenced(&state, &headers, &id, &object).await;
    }
    let target = Target::Object(&object, VersionMatch::last());
    let page = read_page(&state, &headers, &id, target, query.as_deref()).await?;
    if page.items.is_empty() && !page.more {
        return Err(no_object(&object));
    }
    let objects: Vec<&Value> = page.items.iter().flat_map(|item| &item.objects).collect();
    Ok(answer(
        &envelope(&page, "objects", json!(objects)),
        page.date_headers(),
    ))
}

/// The versions of one object (every one by default).
#[utoipa::path(
    get,
    path = "/taxii2/api/collections/{collection}/objects/{object}/versions/",
    tag = "taxii",
    params(
        ("collection" = String, Path, description = "A collection's id (or alias)."),
        ("object" = String, Path, description = "An `indicator--…` id."),
        doc::PageParams,
    ),
    responses(
        (status = 200, description = "The versions of one object (every one by default).", content_type = "application/taxii+json;version=2.1"),
        doc::Refusals,
        doc::PageRefusals,
    ),
    security(("api_token" = []), ("basic" = [])),
)]
pub async fn versions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, object)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let target = Target::Object(&object, VersionMatch::all());
    let page = read_page(&state, &headers, &id, target, query.as_deref()).await?;
    if page.items.is_empty() && !page.more {
        return Err(no_object(&object));
    }
    let versions: Vec<&Value> = page
        .items
        .iter()
        .filter_map(|item| item.objects.first().map(|object| &object["modified"]))
        .collect();
    let mut body = json!({ "versions": versions });
    if page.more {
        body["more"] = json!(true);
        if let Some(next) = &page.next {
            body["next"] = json!(next.to_string());
        }
    }
    Ok(answer(&body, page.date_headers()))
}

fn no_object(object: &str) -> TaxiiError {
    TaxiiError::NotFound(format!(
        "no object `{}` in this collection that your plan may see",
        object.chars().take(80).collect::<String>()
    ))
}

/// An object the indicators refer to: a provider's `identity` (`created_by_ref`), when it
/// reported something the plan may see, or one of STIX's four TLP marking definitions
/// (`object_marking_refs`). Each has one version and no place in the log, so no paging and no
/// `X-TAXII-Date-Added-*`.
async fn referenced(
    state: &AppState,
    headers: &HeaderMap,
    collection: &str,
    object: &str,
) -> Result<Response, TaxiiError> {
    let principal = admit(state, headers).await?;
    find(collection)?;
    let found = if object.starts_with("marking-definition--") {
        domain::Tlp::ALL
            .into_iter()
            .find(|tlp| sluice_stix::tlp_marking_id(*tlp) == object)
            .map(sluice_stix::tlp_marking)
    } else {
        state
            .taxii
            .current(state.log.as_ref())
            .await
            .map_err(|error| {
                state.metrics.backend_error("log");
                tracing::warn!(%error, "a TAXII request could not read the log");
                TaxiiError::from(ApiError::Unavailable(
                    "the log is unavailable; retry shortly".into(),
                ))
            })?;
        state
            .taxii
            .provider(object, principal.plan.limits.max_tlp)
            .map(|provider| sluice_stix::identity(&provider))
    };
    let found = found.ok_or_else(|| no_object(object))?;
    Ok(answer(
        &json!({"more": false, "objects": [found]}),
        Vec::new(),
    ))
}

/// `{"more": …, "next": …, <key>: …}`, leaving out what is not there.
fn envelope(page: &Page, key: &str, items: Value) -> Value {
    let mut body = json!({ "more": page.more });
    if let Some(next) = &page.next {
        body["next"] = json!(next.to_string());
    }
    if items.as_array().is_some_and(|items| !items.is_empty()) {
        body[key] = items;
    }
    body
}

/// What a page is read for.
enum Target<'a> {
    /// A collection's objects or manifest.
    List,
    /// One object (its id as the client wrote it), and the versions shown unless asked.
    Object(&'a str, VersionMatch),
}

/// Admits the request as a feed request and reads its page.
async fn read_page(
    state: &AppState,
    headers: &HeaderMap,
    collection: &str,
    target: Target<'_>,
    query: Option<&str>,
) -> Result<Page, TaxiiError> {
    let principal = admit(state, headers).await?;
    let collection = find(collection)?;
    let (object, params) = match target {
        Target::List => (
            None,
            Params::parse(query, Endpoint::List, VersionMatch::last())?,
        ),
        Target::Object(object, versions) => (
            Some(versions::parse_object_id(object).ok_or_else(|| no_object(object))?),
            Params::parse(query, Endpoint::Object, versions)?,
        ),
    };
    let throttled = |throttled: crate::feed::limit::Throttled| {
        state.metrics.feed_throttled(throttled.reason());
        TaxiiError::from(state.feeds.refusal(throttled))
    };
    state
        .feeds
        .admit_page(principal.account_id)
        .map_err(throttled)?;
    let unavailable = |error: sluice_log::LogError| {
        state.metrics.backend_error("log");
        tracing::warn!(%error, "a TAXII request could not read the log");
        TaxiiError::from(ApiError::Unavailable(
            "the log is unavailable; retry shortly".into(),
        ))
    };
    // Caught up before taking a scan permit: a request waiting for another's catch-up (the
    // first one reads the whole log) must not hold a permit the feeds need.
    let snapshot = state
        .taxii
        .current(state.log.as_ref())
        .await
        .map_err(unavailable)?;
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis().max(0) as u64;
    let floor = replay_floor(&principal.plan.limits, now_ms).max(StreamId::ZERO);
    if let Some(next) = &params.next {
        check_next(next, &snapshot, floor)?;
    }
    let _permit = state.feeds.scan_permit().await.map_err(throttled)?;
    let selection = Selection {
        limits: &principal.plan.limits,
        collection,
        params: &params,
        object,
        floor,
        validity: &state.config.validity,
        now,
        hide_expired: object.is_none(),
    };
    let page = page::read(state.log.as_ref(), &state.taxii, &snapshot, &selection)
        .await
        .map_err(unavailable)?;
    let objects = page.object_count() as u64;
    state.usage.add(principal.account_id, objects, 0, 0);
    Ok(page)
}

/// A `next` resumes exactly where its page ended, or is refused: from another epoch of the
/// log, from before what retention kept, or from before the plan's replay window, what it
/// would skip is gone, and the client is told so (as a stream is told `reset`).
fn check_next(
    next: &domain::Cursor,
    snapshot: &versions::Snapshot,
    floor: StreamId,
) -> Result<(), TaxiiError> {
    let refuse = |why: &str| {
        Err(TaxiiError::from(ApiError::BadRequest(format!(
            "`next` {why}; start again with `added_after`"
        ))))
    };
    if next.epoch() != snapshot.epoch {
        return refuse("belongs to a log this node no longer has (its backend lost its data)");
    }
    if next.id() < snapshot.trimmed_through {
        return refuse(
            "points before what the log still holds (retention removed entries after it)",
        );
    }
    if next.id().ms.saturating_add(1) < floor.ms {
        return refuse("points before your plan's replay window");
    }
    Ok(())
}
