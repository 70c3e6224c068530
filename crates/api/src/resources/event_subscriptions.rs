//! `/event_subscriptions` and their `sources` sub-resource (ngrok-surface.md §2.9): which event
//! types go to which destinations.
//!
//! Decisions:
//! - a source is `{type}`; an unknown type is ERR_NGROK_238, any other field in a source
//!   object ERR_NGROK_239 (ngrok's numbers);
//! - `destination_ids` must name existing destinations; an unknown one is a 400 with
//!   ERR_NGROK_223 naming it (as IP restrictions treat unknown policy ids);
//! - repeated types or destination ids are kept once, in the order first given;
//! - adding a type the subscription already has is a 409; a type it does not have is 404 on
//!   the item routes.
//!
//! Every change re-reads the routing snapshot of the event pipeline before answering, and is
//! an `event_subscription_*` audit event (adding or removing a source updates the
//! subscription).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_model::ids::IdPrefix;
use warren_store::StoreError;
use warren_store::events::{EventSubscription, EventSubscriptionUpdate, NewEventSubscription};

use crate::ApiState;
use crate::audit::{self, Action};
use crate::resources::event_destinations::pipeline_changed;
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page, code};

const PATH: &str = "/event_subscriptions";

/// The audit family of subscriptions.
const AUDIT_STEM: &str = "event_subscription";

/// ngrok's code for an unknown event source type.
pub const BAD_SOURCE_TYPE: u32 = 238;
/// ngrok's code for an invalid field of an event source.
pub const BAD_SOURCE_FIELD: u32 = 239;

/// Most destinations one subscription may name.
pub const MAX_DESTINATIONS: usize = 100;

/// The routes of `/event_subscriptions` and `/event_subscriptions/{id}/sources`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route(
            "/event_subscriptions/{id}",
            get(get_one).patch(update).delete(remove),
        )
        .route(
            "/event_subscriptions/{id}/sources",
            get(list_sources).post(add_source),
        )
        .route(
            "/event_subscriptions/{id}/sources/{type}",
            get(get_source).patch(update_source).delete(remove_source),
        )
}

/// `POST /event_subscriptions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    /// `[{"type": "<event type>"}]`.
    #[serde(default)]
    pub sources: Option<Vec<Value>>,
    /// Destination ids (`ed_…`).
    #[serde(default)]
    pub destination_ids: Option<Vec<String>>,
}

/// `PATCH /event_subscriptions/{id}` body; lists replace the old lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// Sent by the official clients; the path id is authoritative.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    #[serde(default)]
    pub sources: Option<Vec<Value>>,
    #[serde(default)]
    pub destination_ids: Option<Vec<String>>,
}

/// `POST /event_subscriptions/{id}/sources` and `PATCH …/sources/{type}` body. The official
/// clients repeat the path's values in it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// An event source as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    #[serde(rename = "type")]
    pub kind: String,
    pub uri: String,
}

/// A subscription as the API shows it.
#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub uri: String,
    pub created_at: String,
    pub description: String,
    pub metadata: String,
    pub sources: Vec<SourceView>,
    pub destinations: Vec<Value>,
}

fn source_view(state: &ApiState, subscription_id: &str, kind: &str) -> SourceView {
    SourceView {
        kind: kind.to_owned(),
        uri: state.uri(&format!("{PATH}/{subscription_id}/sources/{kind}")),
    }
}

impl SubscriptionView {
    /// The view of a stored subscription.
    pub fn of(state: &ApiState, s: EventSubscription) -> SubscriptionView {
        SubscriptionView {
            uri: state.uri(&format!("{PATH}/{}", s.id)),
            created_at: rest::timestamp(s.created_at),
            sources: s
                .sources
                .iter()
                .map(|t| source_view(state, &s.id, t))
                .collect(),
            destinations: s
                .destination_ids
                .iter()
                .map(|d| rest::reference(state, "event_destinations", d))
                .collect(),
            id: s.id,
            description: s.description,
            metadata: s.metadata,
        }
    }
}

/// 400 with ERR_NGROK_238 for `kind`.
fn bad_type(kind: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        BAD_SOURCE_TYPE,
        format!(
            "The event source type \"{kind}\" is invalid. Valid types look like `agent_session_start.v0` or `ip_policy_created.v0`."
        ),
    )
}

/// Checks one event type (→ 238).
fn check_type(kind: &str) -> ApiResult<()> {
    if warren_events::types::is_known(kind) {
        Ok(())
    } else {
        Err(bad_type(kind))
    }
}

/// The event types of a `sources` list: each entry `{"type": "…"}` with a known type (→ 238),
/// no other field (→ 239); repeats dropped.
fn parse_sources(sources: &[Value]) -> ApiResult<Vec<String>> {
    let mut types: Vec<String> = Vec::new();
    for source in sources {
        let Some(obj) = source.as_object() else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                BAD_SOURCE_FIELD,
                "Each event source must be an object like {\"type\": \"agent_session_start.v0\"}.",
            ));
        };
        if let Some(field) = obj.keys().find(|k| k.as_str() != "type") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                BAD_SOURCE_FIELD,
                format!(
                    "The event source field \"{field}\" is invalid; a source has only \"type\"."
                ),
            ));
        }
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
        check_type(kind)?;
        if !types.iter().any(|t| t == kind) {
            types.push(kind.to_owned());
        }
    }
    Ok(types)
}

/// The destination ids, each an existing destination (→ 223 naming the first that is not);
/// repeats dropped.
async fn check_destinations(state: &ApiState, ids: &[String]) -> ApiResult<Vec<String>> {
    let mut unique: Vec<String> = Vec::new();
    for id in ids {
        let id = id.trim();
        if !unique.iter().any(|u| u == id) {
            unique.push(id.to_owned());
        }
    }
    if unique.len() > MAX_DESTINATIONS {
        return Err(ApiError::invalid(format!(
            "A subscription names at most {MAX_DESTINATIONS} destinations."
        )));
    }
    for id in &unique {
        let exists = rest::check_id(id, IdPrefix::EventDestination).is_ok()
            && state.store().event_destination(id).await?.is_some();
        if !exists {
            return Err(unknown_destination(id));
        }
    }
    Ok(unique)
}

fn unknown_destination(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        code::INVALID_REFERENCE,
        format!("destination_ids: the event destination '{id}' does not exist."),
    )
}

/// Store errors: a reference to a missing destination (a concurrent delete) is 223.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid {
            field: "destination_ids",
            reason,
        } => ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_REFERENCE, reason),
        other => super::reserved_domains::store_error(other),
    }
}

/// Records the audit event and refreshes the pipeline after a change.
async fn changed(state: &ApiState, caller: &Caller, action: Action, s: EventSubscription) {
    pipeline_changed(state).await;
    audit::record(
        state,
        caller,
        AUDIT_STEM,
        action,
        &SubscriptionView::of(state, s),
    )
    .await;
}

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let sources = parse_sources(body.sources.as_deref().unwrap_or(&[]))?;
    let destination_ids =
        check_destinations(&state, body.destination_ids.as_deref().unwrap_or(&[])).await?;
    let created = state
        .store()
        .create_event_subscription(NewEventSubscription {
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            sources,
            destination_ids,
        })
        .await
        .map_err(store_error)?;
    changed(&state, &caller, Action::Created, created.clone()).await;
    Ok(rest::created(SubscriptionView::of(&state, created)))
}

async fn list(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let items = state
        .store()
        .list_event_subscriptions(page.before_id.as_deref(), limit)
        .await?;
    let views: Vec<SubscriptionView> = items
        .into_iter()
        .map(|s| SubscriptionView::of(&state, s))
        .collect();
    Ok(rest::list(
        &state,
        PATH,
        "event_subscriptions",
        &page,
        views,
        |v| &v.id,
    ))
}

/// The subscription `id`, or 227/404.
async fn find(state: &ApiState, id: &str) -> ApiResult<EventSubscription> {
    rest::check_id(id, IdPrefix::EventSubscription)?;
    state
        .store()
        .event_subscription(id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn get_one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    let found = find(&state, &id).await?;
    Ok(rest::ok(SubscriptionView::of(&state, found)))
}

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::EventSubscription)?;
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let sources = body.sources.as_deref().map(parse_sources).transpose()?;
    let destination_ids = match body.destination_ids.as_deref() {
        Some(ids) => Some(check_destinations(&state, ids).await?),
        None => None,
    };
    let updated = state
        .store()
        .update_event_subscription(
            &id,
            EventSubscriptionUpdate {
                description: body.description,
                metadata: body.metadata,
                sources,
                destination_ids,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    changed(&state, &caller, Action::Updated, updated.clone()).await;
    Ok(rest::ok(SubscriptionView::of(&state, updated)))
}

async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let found = find(&state, &id).await?;
    if !state.store().delete_event_subscription(&id).await? {
        return Err(ApiError::not_found());
    }
    changed(&state, &caller, Action::Deleted, found).await;
    Ok(rest::no_content())
}

/// `GET /event_subscriptions/{id}/sources` → `{"sources": [...], "uri"}`.
async fn list_sources(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let found = find(&state, &id).await?;
    let sources: Vec<SourceView> = found
        .sources
        .iter()
        .map(|t| source_view(&state, &found.id, t))
        .collect();
    Ok(rest::ok(json!({
        "sources": sources,
        "uri": state.uri(&format!("{PATH}/{id}/sources")),
    })))
}

async fn add_source(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<SourceBody>,
) -> ApiResult<Response> {
    let found = find(&state, &id).await?;
    let kind = body.kind.unwrap_or_default();
    check_type(&kind)?;
    if found.sources.contains(&kind) {
        return Err(ApiError::conflict(format!(
            "Event subscription {id} already has the source \"{kind}\"."
        )));
    }
    let mut sources = found.sources;
    sources.push(kind.clone());
    let updated = state
        .store()
        .update_event_subscription(
            &id,
            EventSubscriptionUpdate {
                sources: Some(sources),
                ..EventSubscriptionUpdate::default()
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    changed(&state, &caller, Action::Updated, updated).await;
    Ok(rest::created(source_view(&state, &id, &kind)))
}

/// The subscription and its source `kind`, or 404.
async fn find_source(state: &ApiState, id: &str, kind: &str) -> ApiResult<EventSubscription> {
    let found = find(state, id).await?;
    if !found.sources.iter().any(|t| t == kind) {
        return Err(ApiError::not_found());
    }
    Ok(found)
}

async fn get_source(
    State(state): State<ApiState>,
    Path((id, kind)): Path<(String, String)>,
) -> ApiResult<Response> {
    find_source(&state, &id, &kind).await?;
    Ok(rest::ok(source_view(&state, &id, &kind)))
}

/// A source has nothing to change but its type, which is its key: the body may repeat the
/// path's values (or be `{}`); the source is returned as it is.
async fn update_source(
    State(state): State<ApiState>,
    Path((id, kind)): Path<(String, String)>,
    Body(body): Body<SourceBody>,
) -> ApiResult<Response> {
    if let Some(other) = body.kind.as_deref().filter(|k| !k.is_empty() && *k != kind) {
        return Err(ApiError::invalid(format!(
            "The type of an event source cannot change (\"{kind}\" to \"{other}\"); add a new source instead."
        )));
    }
    find_source(&state, &id, &kind).await?;
    Ok(rest::ok(source_view(&state, &id, &kind)))
}

async fn remove_source(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, kind)): Path<(String, String)>,
) -> ApiResult<Response> {
    let found = find_source(&state, &id, &kind).await?;
    let sources: Vec<String> = found.sources.into_iter().filter(|t| *t != kind).collect();
    let updated = state
        .store()
        .update_event_subscription(
            &id,
            EventSubscriptionUpdate {
                sources: Some(sources),
                ..EventSubscriptionUpdate::default()
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    changed(&state, &caller, Action::Updated, updated).await;
    Ok(rest::no_content())
}
