//! The gateway's OpenAPI description ([`ApiDoc`]): every route of [`crate::router`], from the
//! `#[utoipa::path]` attributes on the handlers, plus the shapes the handlers write by hand (the
//! indicator object, the query filters) and the ways a token may be presented.
//!
//! The types below marked *documentation only* are never built: the indicator JSON comes from
//! `domain::Indicator` and the filters are parsed by `domain::Filter::from_pairs`. They exist so
//! the description can name each field; change them with the code they describe.

#![allow(dead_code)]

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use crate::wire::{ErrorBody, IngestResponse, RejectedItem, WithdrawalResponse};

/// Security scheme: an API token in `Authorization` (also what the web API calls it).
pub const API_TOKEN: &str = "api_token";
/// Security scheme: a token in the `access_token` query parameter.
pub const ACCESS_TOKEN: &str = "access_token";
/// HTTP Basic with the token as the password (TAXII clients).
pub const BASIC: &str = "basic";

/// The gateway's routes: ingest, recent feeds, streams, CIF and csirtg compatibility, operations.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::ingest::publish,
        crate::withdraw::withdraw,
        crate::feed::recent,
        crate::feed::cif_indicators,
        crate::feed::ping,
        crate::feed::lists::list,
        crate::feed::cif3::feed,
        crate::stream::stream,
        crate::firehose::firehose,
        crate::firehose::cif_firehose,
        crate::health::healthz,
        crate::health::readyz,
        crate::health::metrics,
        crate::connections::list,
        crate::connections::close,
        crate::connections::close_account,
        crate::taxii::discovery,
        crate::taxii::api_root,
        crate::taxii::list_collections,
        crate::taxii::collection,
        crate::taxii::objects,
        crate::taxii::manifest,
        crate::taxii::object,
        crate::taxii::versions,
    ),
    components(schemas(
        Indicator,
        NewIndicator,
        PublishBody,
        Itype,
        Tlp,
        IngestResponse,
        RejectedItem,
        WithdrawalResponse,
        ErrorBody,
        Cif3Answer,
        Cif3Indicator,
        crate::connections::ConnectionList,
        crate::connections::Connection,
        crate::connections::Lag,
        crate::connections::Closed,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "indicators", description = "Publishing indicators and reading the recent ones."),
        (name = "stream", description = "The live firehose over WebSocket or Server-Sent Events, \
            and the endpoints csirtg.io's and CIFv4's firehose clients connect to unmodified."),
        (name = "cif", description = "CIF's REST API, as far as CIF clients need it."),
        (name = "operations", description = "Liveness, readiness, metrics, and this node's \
            open streams (admin)."),
        (name = "taxii", description = "TAXII 2.1 (read side): the log as STIX 2.1 objects in \
            collections, for SIEMs and threat-intelligence platforms."),
    )
)]
pub struct ApiDoc;

/// Adds the gateway's security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(API_TOKEN, api_token_scheme());
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "HTTP Basic with an API token as the password (the user name is \
                         ignored): what TAXII clients send. Taken everywhere a token is.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ACCESS_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "An API token, or a stream JWT from `POST /v1/session/stream-token`, in the \
                 query string: for clients that cannot set headers (a browser's `EventSource` \
                 and `WebSocket`). A header token wins over it.",
            ))),
        );
    }
}

/// `Authorization: Bearer slc_…`, shared with the web API's description.
pub fn api_token_scheme() -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("slc_…")
            .description(Some(
                "An API token (`slc_…`), made with `sluice tokens create` or on the Tokens page: \
                 `Authorization: Bearer slc_…`. The gateway also takes csirtg.io's \
                 `Authorization: Token token=slc_…` and CIF's bare `Authorization: slc_…`. \
                 Scopes: `read` streams and reads feeds, `write` also publishes, `admin` also \
                 administers every account.",
            ))
            .build(),
    )
}

/// The indicator type, detected from `indicator` (a given `itype` must agree with it). Its
/// values are `domain::Itype`'s own names, so the description cannot drift from the code.
pub struct Itype;

impl PartialSchema for Itype {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "The indicator type, detected from `indicator` (a given `itype` must agree with it).",
            domain::Itype::ALL.map(domain::Itype::as_str),
        )
    }
}

impl ToSchema for Itype {}

/// Traffic Light Protocol level, from most shareable (`white`) to least (`red`); values from
/// `domain::Tlp`.
pub struct Tlp;

impl PartialSchema for Tlp {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "Traffic Light Protocol level, from most shareable (`white`) to least (`red`).",
            domain::Tlp::ALL.map(domain::Tlp::as_str),
        )
    }
}

impl ToSchema for Tlp {}

/// A string schema allowing only `values`.
fn string_enum<const N: usize>(description: &str, values: [&'static str; N]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// One indicator of compromise as Sluice delivers it (feeds, and the `data` of stream frames).
/// Field names are CIF v1's and csirtg.io's; fields Sluice does not know are the provider's own
/// and come through verbatim.
#[derive(ToSchema)]
pub struct Indicator {
    /// The normalised indicator: `10.1.2.3`, `1.2.3.0/24`, `example.com`, `http://example.com/Path`,
    /// a hash, an email address, or `AS13335`.
    #[schema(example = "185.220.101.7")]
    pub indicator: String,
    pub itype: Itype,
    /// Who reported it: the publishing account (or `sluice/correlator` for derived indicators).
    pub provider: String,
    /// Lower-cased, de-duplicated, in first-seen order.
    #[schema(example = json!(["scanner", "tor"]))]
    pub tags: Vec<String>,
    /// 0 to 10, two decimals (5 when the provider gave none).
    #[schema(minimum = 0, maximum = 10, example = 8)]
    pub confidence: f64,
    pub tlp: Tlp,
    /// When the provider reported it (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub reporttime: String,
    /// First seen (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub firsttime: Option<String>,
    /// Last seen (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub lasttime: Option<String>,
    /// Until when the provider says it holds (RFC 3339, UTC), when it said. Without it, the
    /// node's default for the itype applies (`--default-validity`); feeds leave out what has
    /// expired.
    #[schema(format = DateTime)]
    pub valid_until: Option<String>,
    pub description: Option<String>,
    /// A port or a list of ports, as the provider wrote it (string or number).
    pub portlist: Option<String>,
    /// `tcp`, `udp`, … (string or number).
    pub protocol: Option<String>,
    /// Country code.
    pub cc: Option<String>,
    /// Autonomous system number (string or number).
    pub asn: Option<String>,
    pub asn_desc: Option<String>,
    /// Resolved data: a string or an array of strings.
    pub rdata: Option<Vec<String>>,
    /// How often it was seen.
    pub count: Option<u64>,
}

/// One indicator to publish. Only `indicator` is required. The provider is always the
/// authenticated account (a `provider` field is ignored); unknown fields are kept and delivered
/// as sent. At most 64 KiB of JSON per indicator.
#[derive(ToSchema)]
pub struct NewIndicator {
    /// The indicator itself; its type is detected (private and reserved addresses are refused).
    #[schema(example = "185.220.101.7")]
    pub indicator: String,
    /// Optional; must agree with the detected type.
    pub itype: Option<Itype>,
    /// An array of strings, or one comma-separated string.
    #[schema(example = json!(["scanner"]))]
    pub tags: Option<Vec<String>>,
    /// 0 to 10 (a numeric string such as `"7"` is accepted too); default 5.
    #[schema(minimum = 0, maximum = 10, example = 8)]
    pub confidence: Option<f64>,
    /// Default `amber`.
    pub tlp: Option<Tlp>,
    /// When it was observed; default: now. RFC 3339, or the other usual spellings of a time.
    pub reporttime: Option<String>,
    pub firsttime: Option<String>,
    pub lasttime: Option<String>,
    /// When it stops holding: a time after `reporttime`, in the spellings `reporttime` takes.
    /// Without it (and without `expires` or `ttl`), the node's default for the itype applies.
    pub valid_until: Option<String>,
    /// The same as `valid_until` (give one of the three).
    pub expires: Option<String>,
    /// How long it holds from `reporttime`: whole seconds (a number or a digit string) or a
    /// duration such as `14d`; stored as `valid_until`.
    pub ttl: Option<String>,
    pub description: Option<String>,
    pub portlist: Option<String>,
    pub protocol: Option<String>,
    pub cc: Option<String>,
    pub asn: Option<String>,
    pub asn_desc: Option<String>,
    pub rdata: Option<Vec<String>>,
    pub count: Option<u64>,
}

/// A publish request's JSON body: one indicator, or an array of them.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum PublishBody {
    One(Box<NewIndicator>),
    Many(Vec<NewIndicator>),
}

/// The filters of streams and feeds (docs/protocol.md §4.3). Every key is optional and they
/// combine with AND; a key's comma-separated values combine with OR; an empty value is the same
/// as none.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Indicator types, comma-separated: `url`, `md5`, `sha1`, `sha256`, `sha512`, `ipv4`,
    /// `cidr`, `ipv6`, `email`, `fqdn`, `asn`.
    #[param(example = "ipv4,ipv6")]
    pub itype: Option<String>,
    /// Tags, comma-separated (any of them matches). `whitelist` also asks feeds for the
    /// whitelist entries themselves.
    #[param(example = "scanner")]
    pub tags: Option<String>,
    /// Least confidence, 0 to 10.
    #[param(minimum = 0, maximum = 10)]
    pub confidence: Option<f64>,
    /// TLP ceiling, `white`, `green`, `amber` or `red`: indicators at that level or more
    /// shareable (the plan's own ceiling applies too).
    pub tlp: Option<String>,
    /// Providers (account names), comma-separated.
    pub provider: Option<String>,
    /// IP addresses or networks, comma-separated: addresses and networks within them match.
    #[param(example = "185.220.101.0/24")]
    pub cidr: Option<String>,
    /// A device preset: `firewall` (ipv4, ipv6, cidr; confidence ≥ 8), `sinkhole` (fqdn;
    /// confidence ≥ 8) or `zeek` (addresses, domains, URLs, hashes, email; confidence ≥ 7).
    pub profile: Option<String>,
    /// `true`: only the correlator's derived indicators (plans with the correlated stream);
    /// `false`: none of them.
    pub correlated: Option<bool>,
}

/// Where a stream starts, and the query-string credential.
/// The query token of the compatibility firehoses (`/firehose`, `/cif/firehose`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// An API token, when the client cannot set `Authorization`.
    pub access_token: Option<String>,
}

/// What the compatibility firehoses answer: the upgrade, or a refusal before it.
#[derive(IntoResponses)]
pub enum FirehoseResponses<'a> {
    #[response(status = 101, description = "Switching to the WebSocket protocol.")]
    Upgrade,
    #[response(
        status = 400,
        description = "Not a WebSocket upgrade, or a filter is not valid."
    )]
    BadRequest(ErrorBody<'a>),
    #[response(status = 401, description = "No token, or not a valid one.")]
    Unauthorized(ErrorBody<'a>),
    #[response(status = 403, description = "The plan has no firehose.")]
    Forbidden(ErrorBody<'a>),
    #[response(
        status = 429,
        description = "The account already has its plan's concurrent streams open.",
        headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))
    )]
    TooManyStreams(ErrorBody<'a>),
    #[response(status = 503, description = "A backend is unavailable; retry.")]
    Unavailable(ErrorBody<'a>),
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// An API token or a stream JWT, for clients that cannot set `Authorization`.
    pub access_token: Option<String>,
    /// Where to start: `now` (default), `earliest` (as far back as the plan's replay window
    /// reaches), or the `id` of a frame already received, to resume just after it.
    #[param(example = "now")]
    pub cursor: Option<String>,
    /// Start at the first entry added at or after this time: RFC 3339 (escape a `+` offset as
    /// `%2B`) or Unix seconds. Within the plan's replay window, with a `reset` when it reaches
    /// further back, as an old cursor gets; not together with `cursor` (400). `Last-Event-ID`
    /// wins over it.
    #[param(example = "2026-11-23T12:00:00Z")]
    pub since: Option<String>,
}

/// The recent feed's own parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// An API token, for clients that cannot set `Authorization`.
    pub access_token: Option<String>,
    /// Most indicators to return, 1 to 10000 (default 500).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Only indicators reported since this time: RFC 3339, or Unix seconds (CIF style). The
    /// plan's replay window is the earliest anyway.
    #[param(example = "2026-11-23T12:00:00Z")]
    pub since: Option<String>,
    /// One exact indicator to look up (CIF's search); the whitelist is not subtracted.
    pub q: Option<String>,
    /// The same as `q`.
    pub indicator: Option<String>,
}

/// Query keys CIF clients send that mean nothing here; accepted and ignored.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CifIgnoredParams {
    /// Ignored.
    pub nolog: Option<String>,
    /// Ignored.
    pub feed: Option<String>,
    /// Ignored (use `since`).
    pub days: Option<String>,
}

/// A plain list's own parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// An API token, for devices that can only be given a URL.
    pub access_token: Option<String>,
    /// Most lines, 1 to 200000 (default 100000); the newest indicators are kept.
    #[param(minimum = 1, maximum = 200000)]
    pub limit: Option<u32>,
}

/// CIFv3's `/feed` parameters besides the feed's own and the filters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Cif3Params {
    /// Only indicators that reached the log at or after this time: RFC 3339 or Unix seconds
    /// (what `ti_cif3` sends: the time of its previous poll).
    #[param(example = "2026-11-23T12:00:00Z")]
    pub reporttime: Option<String>,
    /// Only indicators that reached the log within this many hours (the plan's replay window
    /// is the most anyway).
    #[param(minimum = 1)]
    pub hours: Option<u32>,
    /// The same in days.
    #[param(minimum = 1)]
    pub days: Option<u32>,
    /// Ignored.
    pub nolog: Option<String>,
    /// Ignored.
    pub feed: Option<String>,
    /// Ignored: Sluice has no CIF sharing groups (what a token sees is its plan's).
    pub group: Option<String>,
    /// Ignored, as `group`.
    pub groups: Option<String>,
    /// Ignored: the answer is newest first.
    pub sort: Option<String>,
    /// Ignored: answers are not compressed.
    pub gzip: Option<String>,
    /// Ignored, as `gzip`.
    pub nocompress: Option<String>,
}

/// What CIFv3's `/feed` answers: `message` and `data`, errors included (with `data` empty).
#[derive(ToSchema)]
#[schema(example = json!({"message": "success", "data": [{"indicator": "185.220.101.7",
    "itype": "ipv4", "provider": "csirtg.io", "tags": ["scanner"], "confidence": 8,
    "tlp": "amber", "reporttime": "2026-11-23T12:00:00Z", "firsttime": "2026-11-23T12:00:00Z",
    "lasttime": "2026-11-23T12:00:00Z", "group": ["everyone"],
    "uuid": "79192802-b21d-5a46-965f-e31a4dc32ec0"}]}))]
pub struct Cif3Answer {
    /// `success`, or what went wrong.
    pub message: String,
    /// The indicators, newest first; empty on errors.
    pub data: Vec<Cif3Indicator>,
}

/// One indicator as CIFv3 writes it: Sluice's indicator (`Indicator`, every field there
/// included) with CIF's spelling of networks, ASNs and sighting times, a `uuid` and a `group`.
#[derive(ToSchema)]
pub struct Cif3Indicator {
    /// As in `Indicator`, except an ASN is lowercase (`as13335`).
    pub indicator: String,
    /// Sluice's itype, except a network is `ipv4` or `ipv6` (with its mask below).
    #[schema(example = "ipv4")]
    pub itype: String,
    /// A network's prefix length (IPv4).
    pub indicator_ipv4_mask: Option<u8>,
    /// A network's prefix length (IPv6).
    pub indicator_ipv6_mask: Option<u8>,
    /// First seen; the `reporttime` when the provider gave none.
    #[schema(format = DateTime)]
    pub firsttime: String,
    /// Last seen; the `reporttime` when the provider gave none.
    #[schema(format = DateTime)]
    pub lasttime: String,
    /// The UUID of the indicator's STIX id (TAXII's): the same for the same provider's report of
    /// the same indicator.
    #[schema(example = "79192802-b21d-5a46-965f-e31a4dc32ec0")]
    pub uuid: String,
    /// CIF's sharing group: always `["everyone"]`.
    pub group: Vec<String>,
    /// The autonomous system number, when the provider gave one that is a number.
    pub asn: Option<u32>,
}
