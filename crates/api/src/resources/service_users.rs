//! Service users (`/service_users`) and their legacy alias bot users (`/bot_users`),
//! ngrok-surface.md §2.1: one table, two spellings of the same id (`service_<body>` and
//! `bot_<body>`), list keys `service_users` and `bot_users`.
//!
//! Deactivating a service user closes the live agent sessions of every credential it owns and
//! makes the edge refuse their Auth until it is reactivated. Deleting one **cascades**: the
//! credentials and API keys it owns are deleted with it, and the sessions of those credentials
//! are closed (the same revocation as deleting each credential).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use warren_model::ids::IdPrefix;
use warren_store::StoreError;
use warren_store::service_users::{ServiceUser, ServiceUserUpdate};

use crate::ApiState;
use crate::audit::{self, Action};
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page};

/// The audit family of service users.
const AUDIT_STEM: &str = "service_user";

/// The legacy prefix shown on `/bot_users`.
const BOT_PREFIX: &str = "bot";

/// The routes of this resource: `/service_users` and `/bot_users`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/service_users", get(list::<false>).post(create::<false>))
        .route(
            "/service_users/{id}",
            get(fetch::<false>)
                .patch(update::<false>)
                .delete(remove::<false>),
        )
        .route("/bot_users", get(list::<true>).post(create::<true>))
        .route(
            "/bot_users/{id}",
            get(fetch::<true>)
                .patch(update::<true>)
                .delete(remove::<true>),
        )
}

/// Which path a request came in on: the id prefix and collection it uses.
struct Flavor {
    collection: &'static str,
    prefix: &'static str,
}

const fn flavor(bot: bool) -> Flavor {
    if bot {
        Flavor {
            collection: "bot_users",
            prefix: BOT_PREFIX,
        }
    } else {
        Flavor {
            collection: "service_users",
            prefix: IdPrefix::ServiceUser.as_str(),
        }
    }
}

impl Flavor {
    /// The stored (`service_…`) id of `id` as given on this path.
    fn stored_id(&self, id: &str) -> ApiResult<String> {
        rest::check_id_prefix(id, self.prefix)?;
        Ok(to_stored_id(id))
    }

    /// The id as shown on this path.
    fn shown_id(&self, stored: &str) -> String {
        match stored.split_once('_') {
            Some((_, body)) => format!("{}_{body}", self.prefix),
            None => stored.to_owned(),
        }
    }

    fn view(&self, state: &ApiState, user: ServiceUser) -> ServiceUserView {
        let id = self.shown_id(&user.id);
        ServiceUserView {
            uri: state.uri(&format!("/{}/{id}", self.collection)),
            id,
            name: user.name,
            active: user.active,
            created_at: rest::timestamp(user.created_at),
        }
    }
}

/// `bot_<body>` → `service_<body>`; anything else unchanged.
pub(crate) fn to_stored_id(id: &str) -> String {
    match id.strip_prefix("bot_") {
        Some(body) => format!("{}_{body}", IdPrefix::ServiceUser),
        None => id.to_owned(),
    }
}

/// Maps a store error: invalid input → 400 (215), conflicts → 409, the rest → 500.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid { reason, .. } => ApiError::invalid(reason),
        StoreError::Conflict { what } => ApiError::conflict(format!("{what} already exists")),
        other => ApiError::internal(other),
    }
}

/// A service user as the API shows it.
#[derive(Debug, Serialize)]
struct ServiceUserView {
    id: String,
    uri: String,
    name: String,
    active: bool,
    created_at: String,
}

/// `POST` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: Option<String>,
    active: Option<bool>,
}

/// `PATCH` body. The official clients repeat the path's `id` in the body; the path wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(rename = "id")]
    _id: Option<String>,
    name: Option<String>,
    active: Option<bool>,
}

async fn create<const BOT: bool>(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    let name = body.name.unwrap_or_default();
    let user = state
        .store()
        .create_service_user(&name, body.active.unwrap_or(true))
        .await
        .map_err(store_error)?;
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Created,
        &flavor(false).view(&state, user.clone()),
    )
    .await;
    Ok(rest::created(flavor(BOT).view(&state, user)))
}

async fn list<const BOT: bool>(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let f = flavor(BOT);
    let before = page.before_id.as_deref().map(to_stored_id);
    let users = state
        .store()
        .list_service_users(before.as_deref(), page.limit + 1)
        .await?;
    let views: Vec<ServiceUserView> = users.into_iter().map(|u| f.view(&state, u)).collect();
    Ok(rest::list(
        &state,
        &format!("/{}", f.collection),
        f.collection,
        &page,
        views,
        |v| &v.id,
    ))
}

async fn fetch<const BOT: bool>(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let f = flavor(BOT);
    let stored = f.stored_id(&id)?;
    let user = state
        .store()
        .service_user(&stored)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(f.view(&state, user)))
}

async fn update<const BOT: bool>(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    let f = flavor(BOT);
    let stored = f.stored_id(&id)?;
    if body.name.is_none() && body.active.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            rest::code::NO_VALUES,
            "No values were provided to update.",
        ));
    }
    let update = ServiceUserUpdate {
        name: body.name,
        active: body.active,
    };
    let user = state
        .store()
        .update_service_user(&stored, update)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    match body.active {
        Some(false) => {
            let closed = state.edge().owner_deactivated(&stored);
            tracing::info!(service_user = %stored, closed, "service user deactivated");
        }
        Some(true) => state.edge().owner_reactivated(&stored),
        None => {}
    }
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Updated,
        &flavor(false).view(&state, user.clone()),
    )
    .await;
    Ok(rest::ok(f.view(&state, user)))
}

async fn remove<const BOT: bool>(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let stored = flavor(BOT).stored_id(&id)?;
    let before = state
        .store()
        .service_user(&stored)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let deleted = state
        .store()
        .delete_service_user_cascade(&stored)
        .await?
        .ok_or_else(ApiError::not_found)?;
    for credential in &deleted.credentials {
        state.edge().revoke_credential(credential);
    }
    tracing::info!(
        service_user = %stored,
        credentials = deleted.credentials.len(),
        api_keys = deleted.api_keys.len(),
        "service user deleted with what it owned"
    );
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Deleted,
        &flavor(false).view(&state, before),
    )
    .await;
    Ok(rest::no_content())
}
