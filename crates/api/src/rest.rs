//! The conventions of ngrok's REST API v2 that every resource shares (ngrok-surface.md §1):
//! authentication and the version header, the error body, JSON bodies with unknown fields
//! refused, id prefixes, pagination newest first, absolute `uri`s, field limits.
//!
//! Resource modules build on these and never write a status code or an error body by hand.
//! Nothing here touches the store beyond the API key lookup in [`authenticate`].

use std::fmt;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warren_model::ids::IdPrefix;

use crate::ApiState;

/// `details.operation_id` prefix.
const OPERATION_PREFIX: &str = "op_";

/// Most items one list page holds, and the default page size.
pub const MAX_PAGE_SIZE: usize = 100;

/// Longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 255;

/// Longest `metadata`, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The `ERR_NGROK_` codes this API answers with (ngrok's numbers where ngrok has one).
pub mod code {
    /// Authorization header missing or not `Bearer`.
    pub const AUTH_MISSING: u32 = 201;
    /// API key malformed.
    pub const AUTH_MALFORMED: u32 = 202;
    /// API key well-formed but unknown.
    pub const AUTH_INVALID: u32 = 203;
    /// An authtoken was sent where an API key belongs.
    pub const AUTHTOKEN_AS_API_KEY: u32 = 206;
    /// Unsupported content type.
    pub const CONTENT_TYPE_UNSUPPORTED: u32 = 210;
    /// A body on a method that takes none.
    pub const BODY_NOT_ALLOWED: u32 = 211;
    /// Unparsable JSON body.
    pub const BODY_UNPARSABLE: u32 = 213;
    /// Unknown field in the body.
    pub const UNKNOWN_FIELD: u32 = 214;
    /// A field value is invalid.
    pub const INVALID_VALUE: u32 = 215;
    /// The body is missing its content type.
    pub const CONTENT_TYPE_MISSING: u32 = 216;
    /// Unsupported `Ngrok-Version`.
    pub const VERSION_UNSUPPORTED: u32 = 217;
    /// Missing `Ngrok-Version`.
    pub const VERSION_MISSING: u32 = 218;
    /// Caller's address is not allowed (API IP restriction).
    pub const IP_RESTRICTED: u32 = 220;
    /// Invalid reference id.
    pub const INVALID_REFERENCE: u32 = 223;
    /// Id with the wrong prefix.
    pub const BAD_ID_PREFIX: u32 = 227;
    /// Unknown query parameter.
    pub const UNKNOWN_QUERY_PARAM: u32 = 231;
    /// Page size out of range.
    pub const BAD_PAGE_SIZE: u32 = 233;
    /// Resource not found.
    pub const NOT_FOUND: u32 = 404;
    /// Method not allowed on this path.
    pub const METHOD_NOT_ALLOWED: u32 = 405;
    /// An update with no values.
    pub const NO_VALUES: u32 = 606;
    /// Conflict with an existing resource (name or address taken).
    pub const CONFLICT: u32 = 409;
    /// Internal error.
    pub const INTERNAL: u32 = 500;
    /// Cloud endpoints are not implemented by Warren (the wire's "not implemented" number).
    pub const CLOUD_ENDPOINTS_UNSUPPORTED: u32 = 90007;
    /// The agent refused a command; `msg` carries the agent's own text.
    pub const AGENT_REFUSED: u32 = 90101;
    /// The agent did not answer a command in time, or its answer was unreadable.
    pub const AGENT_NO_ANSWER: u32 = 90102;
    /// Too many `/event_stream` connections are open at once.
    pub const TOO_MANY_STREAMS: u32 = 90201;
    /// The event pipeline is not running on this server.
    pub const EVENTS_UNAVAILABLE: u32 = 90202;
}

/// An API error: HTTP status, `ERR_NGROK_` number and message. Rendered as
/// `{"error_code","status_code","msg","details":{"operation_id"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `ERR_NGROK_<code>`.
    pub code: u32,
    /// Human-readable message.
    pub msg: String,
    /// Extra `details` entries besides `operation_id`.
    pub details: Vec<(String, String)>,
}

impl ApiError {
    /// An error with `status`, `code` and `msg`.
    pub fn new(status: StatusCode, code: u32, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            msg: msg.into(),
            details: Vec::new(),
        }
    }

    /// 400 with [`code::INVALID_VALUE`].
    pub fn invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_VALUE, msg)
    }

    /// 404 "Resource not found".
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code::NOT_FOUND, "Resource not found")
    }

    /// 409 with [`code::CONFLICT`].
    pub fn conflict(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code::CONFLICT, msg)
    }

    /// 500; the cause is logged, not shown.
    pub fn internal(cause: impl fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            "An internal error occurred.",
        )
    }

    /// Adds a `details` entry.
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> ApiError {
        self.details.push((key.to_owned(), value.into()));
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERR_NGROK_{}: {}", self.code, self.msg)
    }
}

impl From<warren_store::StoreError> for ApiError {
    fn from(e: warren_store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

/// A fresh `op_…` id for one request.
pub fn operation_id() -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    let body = warren_model::ids::new_id_body(now, &mut rand::thread_rng());
    format!("{OPERATION_PREFIX}{body}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut details = serde_json::Map::new();
        for (k, v) in self.details {
            details.insert(k, Value::String(v));
        }
        let op = operation_id();
        details.insert("operation_id".into(), Value::String(op.clone()));
        let body = json!({
            "error_code": format!("ERR_NGROK_{}", self.code),
            "status_code": self.status.as_u16(),
            "msg": self.msg,
            "details": details,
        });
        let mut resp = (self.status, Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&op) {
            resp.headers_mut().insert("ngrok-operation-id", v);
        }
        resp
    }
}

/// Result type of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// 201 + the resource.
pub fn created<T: Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// 200 + the resource.
pub fn ok<T: Serialize>(value: T) -> Response {
    (StatusCode::OK, Json(value)).into_response()
}

/// 204, empty.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Who made the request: the API key that authenticated it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key's id (`ak_…`).
    pub api_key_id: String,
    /// The API key's owner, if any.
    pub owner_id: Option<String>,
}

/// Middleware run before every route: the caller's address against the `api` IP restrictions
/// (→ 403, ERR_NGROK_220), then `Ngrok-Version: 2` and a valid `Authorization: Bearer` API key.
/// The [`Caller`] is stored in the request extensions.
///
/// The address is the TCP peer ([`crate::serve`] records it); `X-Forwarded-For` is not trusted.
/// A router served without connect info skips the address check.
pub async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(ip) = peer {
        match state
            .edge()
            .ip_admitted(warren_edge::ip_restrictions::RestrictionKind::Api, ip)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    code::IP_RESTRICTED,
                    format!(
                        "The IP address {} is not allowed to use the API by its IP restrictions.",
                        ip.to_canonical()
                    ),
                )
                .into_response();
            }
            Err(e) => return ApiError::internal(e).into_response(),
        }
    }
    match check(&state, req.headers()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn check(state: &ApiState, headers: &axum::http::HeaderMap) -> ApiResult<Caller> {
    match headers
        .get("ngrok-version")
        .map(|v| v.to_str().unwrap_or("").trim())
    {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code::VERSION_MISSING,
                "The Ngrok-Version header is required; send `Ngrok-Version: 2`.",
            ));
        }
        Some("2") => {}
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code::VERSION_UNSUPPORTED,
                format!("Ngrok-Version `{other}` is not supported; send `Ngrok-Version: 2`."),
            ));
        }
    }
    let unauthorized = |code: u32, msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, msg);
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            code::AUTH_MISSING,
            "The Authorization header is missing; send `Authorization: Bearer <API key>`.",
        ));
    };
    let auth = auth.to_str().unwrap_or("");
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
    else {
        return Err(unauthorized(
            code::AUTH_MISSING,
            "The Authorization header must be `Bearer <API key>`.",
        ));
    };
    if !warren_model::token::looks_like_token(token) {
        return Err(unauthorized(
            code::AUTH_MALFORMED,
            "The API key is malformed. API keys look like `FIRSTPART_SECONDPART`.",
        ));
    }
    if let Some(key) = state.store().api_key_by_token(token).await? {
        return Ok(Caller {
            api_key_id: key.id,
            owner_id: key.owner_id,
        });
    }
    if state.store().credential_by_token(token).await?.is_some() {
        return Err(unauthorized(
            code::AUTHTOKEN_AS_API_KEY,
            "This is an authtoken, not an API key. Authtokens connect agents; the API takes API keys.",
        ));
    }
    Err(unauthorized(
        code::AUTH_INVALID,
        "The API key is not valid.",
    ))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route served without authentication"))
    }
}

/// A JSON request body. Content type must be `application/json`; unparsable JSON → 213,
/// unknown fields → 214 (the body type uses `#[serde(deny_unknown_fields)]`), bad values → 215.
/// An empty body reads as `{}`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    code::INVALID_VALUE,
                    e.body_text(),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse(b"{}").map(Body);
        }
        match content_type.as_deref() {
            None => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    code::CONTENT_TYPE_MISSING,
                    "A request body needs `Content-Type: application/json`.",
                ));
            }
            Some(ct)
                if !ct
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json") =>
            {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    code::CONTENT_TYPE_UNSUPPORTED,
                    format!("Content type `{ct}` is not supported; send application/json."),
                ));
            }
            Some(_) => {}
        }
        parse(&bytes).map(Body)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code::BODY_UNPARSABLE,
            format!("The request body is not valid JSON: {e}"),
        )
    })?;
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("unknown field") {
            ApiError::new(StatusCode::BAD_REQUEST, code::UNKNOWN_FIELD, text)
        } else {
            ApiError::invalid(text)
        }
    })
}

/// Checks `description` and `metadata` against their byte limits.
pub fn check_text_fields(description: Option<&str>, metadata: Option<&str>) -> ApiResult<()> {
    if description.is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES) {
        return Err(ApiError::invalid(format!(
            "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    if metadata.is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
        return Err(ApiError::invalid(format!(
            "metadata is longer than {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks that `id` has `prefix` (→ 227 otherwise) and a well-formed body (→ 404).
pub fn check_id(id: &str, prefix: IdPrefix) -> ApiResult<()> {
    check_id_prefix(id, prefix.as_str())
}

/// [`check_id`] for a prefix given as text (`bot` for the legacy service-user path).
pub fn check_id_prefix(id: &str, prefix: &str) -> ApiResult<()> {
    let Some(body) = id.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::BAD_ID_PREFIX,
            format!("Expected an ID with a prefix of '{prefix}_', got '{id}'."),
        ));
    };
    if warren_model::ids::check_id_body(body).is_err() {
        return Err(ApiError::not_found());
    }
    Ok(())
}

/// Query of a list request: `before_id`, `limit` (and `filter`, accepted and not yet applied).
/// Other parameters → 231. `id` is tolerated: the official clients put it in the query of
/// item GETs.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Items created before this id.
    pub before_id: Option<String>,
    /// Page size, 1..=[`MAX_PAGE_SIZE`].
    pub limit: usize,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut page = Page {
            before_id: None,
            limit: MAX_PAGE_SIZE,
        };
        for (k, v) in query_pairs(parts.uri.query()) {
            match k.as_str() {
                "before_id" if !v.is_empty() => page.before_id = Some(v),
                "before_id" | "filter" | "id" => {}
                "limit" => {
                    page.limit = match v.parse::<usize>() {
                        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                        _ => {
                            return Err(ApiError::new(
                                StatusCode::BAD_REQUEST,
                                code::BAD_PAGE_SIZE,
                                format!("page size limit must be between 1 and {MAX_PAGE_SIZE}"),
                            ));
                        }
                    }
                }
                other => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        code::UNKNOWN_QUERY_PARAM,
                        format!("Unknown query parameter `{other}`."),
                    ));
                }
            }
        }
        Ok(page)
    }
}

/// Decoded `key=value` pairs of a query string.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                )
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A list response: `{<key>: items, "uri": …, "next_page_uri": … | null}`. `items` must be the
/// page fetched with `limit + 1` rows, newest first; the extra row only signals a next page.
pub fn list<T: Serialize>(
    state: &ApiState,
    path: &str,
    key: &str,
    page: &Page,
    mut items: Vec<T>,
    id_of: impl Fn(&T) -> &str,
) -> Response {
    let more = items.len() > page.limit;
    items.truncate(page.limit);
    let next = if more {
        items.last().map(|last| {
            Value::String(format!(
                "{}?before_id={}&limit={}",
                state.uri(path),
                id_of(last),
                page.limit
            ))
        })
    } else {
        None
    };
    let mut body = serde_json::Map::new();
    body.insert(
        key.to_owned(),
        serde_json::to_value(&items).unwrap_or(Value::Array(Vec::new())),
    );
    body.insert("uri".into(), Value::String(state.uri(path)));
    body.insert("next_page_uri".into(), next.unwrap_or(Value::Null));
    ok(Value::Object(body))
}

/// RFC 3339 UTC with `Z` and whole seconds, as ngrok writes `created_at`.
pub fn timestamp(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A `{id, uri}` reference.
pub fn reference(state: &ApiState, collection: &str, id: &str) -> Value {
    json!({"id": id, "uri": state.uri(&format!("/{collection}/{id}"))})
}

/// The message of the 404 for paths that are not part of the API (distinct from a missing
/// resource's "Resource not found").
pub const UNKNOWN_PATH: &str = "The path is not part of the API.";

/// The 404 for unknown paths.
pub async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code::NOT_FOUND, UNKNOWN_PATH)
}

/// The 405 for known paths with an unsupported method.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        "This method is not allowed on this resource.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_pairs(Some(
                "before_id=cr_1&limit=5&filter=obj.x%20%3D%3D%20%22a%22"
            )),
            vec![
                ("before_id".into(), "cr_1".into()),
                ("limit".into(), "5".into()),
                ("filter".into(), "obj.x == \"a\"".into())
            ]
        );
        assert_eq!(
            query_pairs(Some("a=%zz&b")),
            vec![("a".into(), "%zz".into()), ("b".into(), String::new())]
        );
    }

    #[test]
    fn id_checks() {
        assert_eq!(
            check_id("ak_123", IdPrefix::Credential).unwrap_err().code,
            code::BAD_ID_PREFIX
        );
        assert_eq!(
            check_id("cr_short", IdPrefix::Credential).unwrap_err().code,
            code::NOT_FOUND
        );
        assert_eq!(
            check_id_prefix("bot_x", "service").unwrap_err().code,
            code::BAD_ID_PREFIX
        );
    }

    #[test]
    fn text_limits() {
        assert!(check_text_fields(Some(&"d".repeat(255)), Some(&"m".repeat(4096))).is_ok());
        assert_eq!(
            check_text_fields(Some(&"d".repeat(256)), None)
                .unwrap_err()
                .code,
            code::INVALID_VALUE
        );
        assert_eq!(
            check_text_fields(None, Some(&"m".repeat(4097)))
                .unwrap_err()
                .code,
            code::INVALID_VALUE
        );
    }
}
