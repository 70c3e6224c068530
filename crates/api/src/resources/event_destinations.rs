//! `/event_destinations` (ngrok-surface.md §2.9): where exported events go.
//!
//! A destination has a `format` (only `json`) and exactly one `target`. ngrok's five cloud
//! kinds are validated and stored so configurations carry over; Warren delivers to its own
//! `http`, `file` and `nats` kinds ([`warren_events::Target`] decides). The stored target keeps
//! its secrets; responses show them blanked.
//!
//! Decisions:
//! - errors: bad `format` ERR_NGROK_235; a bad target answers the [`warren_events::TargetError`]
//!   code (236 invalid target, 240 invalid auth, 5107 neither role nor creds);
//! - deleting a destination a subscription still names is a 409 (remove it from the
//!   subscription first), as for IP policies named by a restriction;
//! - on update, a secret sent as `""` (as responses show it) keeps the stored secret, so a
//!   target read back and sent again does not lose it;
//! - extension field `delivery` (`delivered`, `pending`, `parked`, `oldest_pending_at`,
//!   `last_error`) and extension action `POST /event_destinations/{id}/requeue`, which puts the
//!   parked events back in line.
//!
//! Every change re-reads the routing snapshot of the event pipeline before answering.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warren_events::Target;
use warren_model::ids::IdPrefix;
use warren_store::events::{
    DestinationDelete, EventDestination, EventDestinationUpdate, NewEventDestination,
};

use crate::ApiState;
use crate::audit::{self, Action};
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page};

const PATH: &str = "/event_destinations";

/// The audit family of destinations.
const AUDIT_STEM: &str = "event_destination";

/// ngrok's code for an unsupported `format`.
pub const BAD_FORMAT: u32 = 235;

/// The only format.
pub const FORMAT_JSON: &str = "json";

/// The routes of `/event_destinations`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route(
            "/event_destinations/{id}",
            get(get_one).patch(update).delete(remove),
        )
        .route("/event_destinations/{id}/requeue", post(requeue))
}

/// `POST /event_destinations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    /// `json` (any case).
    #[serde(default)]
    pub format: Option<String>,
    /// Exactly one target kind.
    #[serde(default)]
    pub target: Option<Value>,
}

/// `PATCH /event_destinations/{id}` body.
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
    pub format: Option<String>,
    /// Replaces the target when given (and not null).
    #[serde(default)]
    pub target: Option<Value>,
}

/// Delivery state of a destination (Warren extension).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    /// Whether Warren delivers to this target (false for ngrok's cloud kinds).
    pub delivered: bool,
    /// Events waiting for delivery.
    pub pending: u64,
    /// Events parked after too many failed attempts (see `requeue`).
    pub parked: u64,
    /// When the oldest waiting event was written (RFC 3339), null when none waits.
    pub oldest_pending_at: Option<String>,
    /// The last delivery error, empty if none.
    pub last_error: String,
}

/// A destination as the API shows it.
#[derive(Debug, Serialize)]
pub struct DestinationView {
    pub id: String,
    pub uri: String,
    pub created_at: String,
    pub description: String,
    pub metadata: String,
    pub format: String,
    /// All five ngrok keys (unused ones null) plus Warren's key in use; secrets blanked.
    pub target: Value,
    /// Warren extension; absent from audit event objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryView>,
}

/// The stored target text as its public JSON (secrets blanked), and whether it is delivered.
fn shown_target(id: &str, stored: &str) -> (Value, bool) {
    let parsed = serde_json::from_str::<Value>(stored)
        .map_err(|e| e.to_string())
        .and_then(|v| Target::parse(&v).map_err(|e| e.to_string()));
    match parsed {
        Ok(target) => (target.to_json(), target.is_delivered()),
        Err(error) => {
            tracing::error!(destination = %id, %error, "stored event target does not parse");
            (Value::Null, false)
        }
    }
}

impl DestinationView {
    /// The view without the `delivery` extension (audit objects).
    pub fn of(state: &ApiState, d: EventDestination) -> DestinationView {
        let (target, _) = shown_target(&d.id, &d.target);
        DestinationView {
            uri: state.uri(&format!("{PATH}/{}", d.id)),
            created_at: rest::timestamp(d.created_at),
            id: d.id,
            description: d.description,
            metadata: d.metadata,
            format: d.format,
            target,
            delivery: None,
        }
    }

    /// The view with the `delivery` extension: the pipeline's status of the destination, or
    /// the outbox counts read directly when no pipeline is attached.
    pub async fn with_delivery(state: &ApiState, d: EventDestination) -> ApiResult<Self> {
        let delivery = match state.edge().events() {
            Some(events) => {
                let status = events.destination_status(&d.id).await?;
                DeliveryView {
                    delivered: status.delivered,
                    pending: status.pending,
                    parked: status.parked,
                    oldest_pending_at: status.oldest_pending_at.map(rest::timestamp),
                    last_error: status.last_error,
                }
            }
            None => {
                let (_, delivered) = shown_target(&d.id, &d.target);
                let stats = state.store().outbox_stats(&d.id).await?;
                DeliveryView {
                    delivered,
                    pending: stats.pending,
                    parked: stats.parked,
                    oldest_pending_at: stats.oldest_pending_at.map(rest::timestamp),
                    last_error: stats.last_error,
                }
            }
        };
        let mut view = DestinationView::of(state, d);
        view.delivery = Some(delivery);
        Ok(view)
    }
}

/// `format` checked and lowercased (→ 235).
fn check_format(format: &str) -> ApiResult<String> {
    let lower = format.trim().to_ascii_lowercase();
    if lower != FORMAT_JSON {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            BAD_FORMAT,
            format!(
                "The event destination format \"{format}\" is invalid. The only supported format is \"json\"."
            ),
        ));
    }
    Ok(lower)
}

/// Fields whose values are secrets: shown as `""`, so an update that sends `""` back keeps
/// the stored value.
const SECRET_FIELDS: [&str; 4] = [
    "secret",
    "aws_secret_access_key",
    "api_key",
    "client_secret",
];

/// Copies stored secrets into `new` wherever `new` has `""` for a secret field at the same
/// place (a target read back from the API and sent again keeps its secrets).
fn keep_secrets(new: &mut Value, old: &Value) {
    let (Value::Object(new), Value::Object(old)) = (new, old) else {
        return;
    };
    for (key, value) in new.iter_mut() {
        let Some(previous) = old.get(key) else {
            continue;
        };
        if SECRET_FIELDS.contains(&key.as_str()) && value.as_str() == Some("") {
            if previous.as_str().is_some_and(|p| !p.is_empty()) {
                *value = previous.clone();
            }
        } else {
            keep_secrets(value, previous);
        }
    }
}

/// The target validated, as the JSON text to store (secrets kept).
fn check_target(value: &Value) -> ApiResult<String> {
    let target = Target::parse(value).map_err(|e| {
        let code = e
            .code
            .strip_prefix("ERR_NGROK_")
            .and_then(|n| n.parse().ok())
            .unwrap_or(rest::code::INVALID_VALUE);
        ApiError::new(StatusCode::BAD_REQUEST, code, e.msg)
    })?;
    Ok(target.to_stored_json().to_string())
}

/// Re-reads subscriptions and destinations in the event pipeline, if one is attached.
pub(crate) async fn pipeline_changed(state: &ApiState) {
    if let Some(events) = state.edge().events()
        && let Err(error) = events.subscriptions_changed().await
    {
        tracing::error!(%error, "reloading event subscriptions failed");
    }
}

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let format = check_format(body.format.as_deref().unwrap_or(""))?;
    let target = check_target(body.target.as_ref().unwrap_or(&Value::Null))?;
    let created = state
        .store()
        .create_event_destination(NewEventDestination {
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            format,
            target,
        })
        .await
        .map_err(super::reserved_domains::store_error)?;
    pipeline_changed(&state).await;
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Created,
        &DestinationView::of(&state, created.clone()),
    )
    .await;
    Ok(rest::created(
        DestinationView::with_delivery(&state, created).await?,
    ))
}

async fn list(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
    let items = state
        .store()
        .list_event_destinations(page.before_id.as_deref(), limit)
        .await?;
    let mut views = Vec::with_capacity(items.len());
    for d in items {
        views.push(DestinationView::with_delivery(&state, d).await?);
    }
    Ok(rest::list(
        &state,
        PATH,
        "event_destinations",
        &page,
        views,
        |v| &v.id,
    ))
}

/// The destination `id`, or 227/404.
async fn find(state: &ApiState, id: &str) -> ApiResult<EventDestination> {
    rest::check_id(id, IdPrefix::EventDestination)?;
    state
        .store()
        .event_destination(id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn get_one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    let found = find(&state, &id).await?;
    Ok(rest::ok(
        DestinationView::with_delivery(&state, found).await?,
    ))
}

/// `PATCH`: a target replaces the old one; a secret sent as `""` (as responses show it) keeps
/// the stored secret.
async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::EventDestination)?;
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let format = body.format.as_deref().map(check_format).transpose()?;
    let target = match &body.target {
        None | Some(Value::Null) => None,
        Some(t) => {
            let checked = check_target(t)?;
            let mut new: Value = serde_json::from_str(&checked).map_err(ApiError::internal)?;
            let old = find(&state, &id).await?;
            if let Ok(old) = serde_json::from_str::<Value>(&old.target) {
                keep_secrets(&mut new, &old);
            }
            Some(new.to_string())
        }
    };
    let updated = state
        .store()
        .update_event_destination(
            &id,
            EventDestinationUpdate {
                description: body.description,
                metadata: body.metadata,
                format,
                target,
            },
        )
        .await
        .map_err(super::reserved_domains::store_error)?
        .ok_or_else(ApiError::not_found)?;
    pipeline_changed(&state).await;
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Updated,
        &DestinationView::of(&state, updated.clone()),
    )
    .await;
    Ok(rest::ok(
        DestinationView::with_delivery(&state, updated).await?,
    ))
}

async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let found = find(&state, &id).await?;
    match state.store().delete_event_destination(&id).await? {
        DestinationDelete::Deleted => {
            pipeline_changed(&state).await;
            audit::record(
                &state,
                &caller,
                AUDIT_STEM,
                Action::Deleted,
                &DestinationView::of(&state, found),
            )
            .await;
            Ok(rest::no_content())
        }
        DestinationDelete::NotFound => Err(ApiError::not_found()),
        DestinationDelete::InUse => Err(ApiError::conflict(format!(
            "Event destination {id} is used by an event subscription; remove it from the subscription first."
        ))),
    }
}

/// `POST /event_destinations/{id}/requeue` → `{"requeued": n}`.
async fn requeue(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    find(&state, &id).await?;
    let requeued = match state.edge().events() {
        Some(events) => events.requeue_parked(&id).await?,
        None => state.store().outbox_requeue_parked(&id).await?,
    };
    Ok(rest::ok(json!({ "requeued": requeued })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_secrets_keep_the_stored_ones() {
        let old = json!({"http": {"url": "https://a", "secret": "s1"}, "kinesis": null});
        let mut new = json!({"http": {"url": "https://b", "secret": ""}, "kinesis": null});
        keep_secrets(&mut new, &old);
        assert_eq!(new["http"], json!({"url": "https://b", "secret": "s1"}));
        let mut changed = json!({"http": {"url": "https://b", "secret": "s2"}});
        keep_secrets(&mut changed, &old);
        assert_eq!(changed["http"]["secret"], "s2");
        let old = json!({"kinesis": {"auth": {"creds": {"aws_access_key_id": "A", "aws_secret_access_key": "K"}}}});
        let mut new = json!({"kinesis": {"auth": {"creds": {"aws_access_key_id": "A", "aws_secret_access_key": ""}}}});
        keep_secrets(&mut new, &old);
        assert_eq!(new, old);
        let mut other_kind = json!({"datadog": {"api_key": ""}});
        keep_secrets(&mut other_kind, &old);
        assert_eq!(other_kind["datadog"]["api_key"], "");
    }

    #[test]
    fn formats() {
        assert_eq!(check_format("JSON").unwrap(), "json");
        assert_eq!(check_format("xml").unwrap_err().code, BAD_FORMAT);
    }
}
