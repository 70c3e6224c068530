//! API keys (`/api_keys`, list key `keys`): bearer tokens for this API (ngrok-surface.md §2.3).
//! The token is shown once, in the create response, and `null` on every read. Deleting a key
//! takes effect on the next request made with it (every request looks its key up).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use warren_model::ids::IdPrefix;
use warren_store::api_keys::{ApiKey, ApiKeyUpdate, NewApiKey};

use crate::ApiState;
use crate::audit::{self, Action};
use crate::resources::credentials::resolve_owner;
use crate::resources::service_users::store_error;
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page};

/// The routes of this resource.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api_keys", get(list).post(create))
        .route("/api_keys/{id}", get(fetch).patch(update).delete(remove))
}

/// The audit family of API keys.
const AUDIT_STEM: &str = "api_key";

/// An API key as the API shows it.
#[derive(Debug, Serialize)]
struct ApiKeyView {
    id: String,
    uri: String,
    description: String,
    metadata: String,
    created_at: String,
    token: Option<String>,
    owner_id: Option<String>,
}

fn view(state: &ApiState, key: ApiKey, token: Option<String>) -> ApiKeyView {
    ApiKeyView {
        uri: state.uri(&format!("/api_keys/{}", key.id)),
        id: key.id,
        description: key.description,
        metadata: key.metadata,
        created_at: rest::timestamp(key.created_at),
        token,
        owner_id: key.owner_id,
    }
}

/// `POST` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    description: Option<String>,
    metadata: Option<String>,
    owner_id: Option<String>,
}

/// `PATCH` body. The official clients repeat the path's `id` in the body; the path wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(rename = "id")]
    _id: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
}

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let owner_id = match body.owner_id.as_deref().filter(|o| !o.is_empty()) {
        Some(owner) => Some(resolve_owner(&state, owner).await?),
        None => caller.owner_id.clone(),
    };
    let (key, token) = state
        .store()
        .create_api_key_from(NewApiKey {
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            owner_id,
        })
        .await
        .map_err(store_error)?;
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Created,
        &view(&state, key.clone(), None),
    )
    .await;
    Ok(rest::created(view(&state, key, Some(token))))
}

async fn list(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let keys = state
        .store()
        .list_api_keys(page.before_id.as_deref(), page.limit + 1)
        .await?;
    let views: Vec<ApiKeyView> = keys.into_iter().map(|k| view(&state, k, None)).collect();
    Ok(rest::list(&state, "/api_keys", "keys", &page, views, |v| {
        &v.id
    }))
}

async fn fetch(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ApiKey)?;
    let key = state
        .store()
        .api_key(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(view(&state, key, None)))
}

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ApiKey)?;
    if body.description.is_none() && body.metadata.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            rest::code::NO_VALUES,
            "No values were provided to update.",
        ));
    }
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let key = state
        .store()
        .update_api_key(
            &id,
            ApiKeyUpdate {
                description: body.description,
                metadata: body.metadata,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Updated,
        &view(&state, key.clone(), None),
    )
    .await;
    Ok(rest::ok(view(&state, key, None)))
}

async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ApiKey)?;
    let before = state
        .store()
        .api_key(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !state.store().delete_api_key(&id).await? {
        return Err(ApiError::not_found());
    }
    tracing::info!(api_key = %id, "api key deleted");
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Deleted,
        &view(&state, before, None),
    )
    .await;
    Ok(rest::no_content())
}
