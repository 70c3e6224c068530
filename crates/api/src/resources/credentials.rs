//! Credentials (`/credentials`): tunnel authtokens with ACLs and an owner (ngrok-surface.md §2.2,
//! §3). The token is shown once, in the create response, and `null` on every read.
//!
//! Changes reach live agents at once: deleting a credential closes every agent session
//! authenticated with it ([`warren_edge::Edge::revoke_credential`]); replacing its ACL stops
//! each bound endpoint the new rules no longer permit
//! ([`warren_edge::Edge::credential_acl_changed`]).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use warren_model::Acl;
use warren_model::ids::IdPrefix;
use warren_store::credentials::{Credential, CredentialUpdate, NewCredential};

use crate::ApiState;
use crate::audit::{self, Action};
use crate::resources::service_users::{store_error, to_stored_id};
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page};

/// The routes of this resource.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/credentials", get(list).post(create))
        .route("/credentials/{id}", get(fetch).patch(update).delete(remove))
}

/// The audit family of credentials.
const AUDIT_STEM: &str = "tunnel_credential";

/// A credential as the API shows it.
#[derive(Debug, Serialize)]
struct CredentialView {
    id: String,
    uri: String,
    created_at: String,
    description: String,
    metadata: String,
    token: Option<String>,
    acl: Vec<String>,
    owner_id: Option<String>,
}

fn view(state: &ApiState, credential: Credential, token: Option<String>) -> CredentialView {
    CredentialView {
        uri: state.uri(&format!("/credentials/{}", credential.id)),
        id: credential.id,
        created_at: rest::timestamp(credential.created_at),
        description: credential.description,
        metadata: credential.metadata,
        token,
        acl: credential.acl,
        owner_id: credential.owner_id,
    }
}

/// `POST` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
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
    acl: Option<Vec<String>>,
}

/// Checks ACL rules (→ 400 ERR_NGROK_215 quoting the bad rule and ERR_NGROK_600's text).
fn check_acl(acl: &[String]) -> ApiResult<()> {
    Acl::parse(acl)
        .map(|_| ())
        .map_err(|e| ApiError::invalid(format!("acl: {e}")))
}

/// Resolves an `owner_id` given by the caller: an existing service user, as `service_…` or
/// `bot_…` (stored as `service_…`). Anything else → 400.
pub(crate) async fn resolve_owner(state: &ApiState, owner_id: &str) -> ApiResult<String> {
    let stored = to_stored_id(owner_id);
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            rest::code::INVALID_REFERENCE,
            format!("owner_id '{owner_id}' is not an existing service user."),
        )
    };
    if rest::check_id(&stored, IdPrefix::ServiceUser).is_err() {
        return Err(invalid());
    }
    match state.store().service_user(&stored).await? {
        Some(_) => Ok(stored),
        None => Err(invalid()),
    }
}

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let acl = body.acl.unwrap_or_default();
    check_acl(&acl)?;
    let owner_id = match body.owner_id.as_deref().filter(|o| !o.is_empty()) {
        Some(owner) => Some(resolve_owner(&state, owner).await?),
        None => caller.owner_id.clone(),
    };
    let (credential, token) = state
        .store()
        .create_credential(NewCredential {
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            acl,
            owner_id,
        })
        .await
        .map_err(store_error)?;
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Created,
        &view(&state, credential.clone(), None),
    )
    .await;
    Ok(rest::created(view(&state, credential, Some(token))))
}

async fn list(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let credentials = state
        .store()
        .list_credentials(page.before_id.as_deref(), page.limit + 1)
        .await?;
    let views: Vec<CredentialView> = credentials
        .into_iter()
        .map(|c| view(&state, c, None))
        .collect();
    Ok(rest::list(
        &state,
        "/credentials",
        "credentials",
        &page,
        views,
        |v| &v.id,
    ))
}

async fn fetch(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::Credential)?;
    let credential = state
        .store()
        .credential(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(view(&state, credential, None)))
}

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::Credential)?;
    if body.description.is_none() && body.metadata.is_none() && body.acl.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            rest::code::NO_VALUES,
            "No values were provided to update.",
        ));
    }
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    if let Some(acl) = &body.acl {
        check_acl(acl)?;
    }
    let new_acl = body.acl.clone();
    let credential = state
        .store()
        .update_credential(
            &id,
            CredentialUpdate {
                description: body.description,
                metadata: body.metadata,
                acl: body.acl,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    if let Some(acl) = new_acl {
        let stopped = state.edge().credential_acl_changed(&id, &acl);
        if !stopped.is_empty() {
            tracing::info!(credential = %id, stopped = stopped.len(), "ACL change stopped endpoints");
        }
    }
    audit::record(
        &state,
        &caller,
        AUDIT_STEM,
        Action::Updated,
        &view(&state, credential.clone(), None),
    )
    .await;
    Ok(rest::ok(view(&state, credential, None)))
}

async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::Credential)?;
    let before = state
        .store()
        .credential(&id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !state.store().delete_credential(&id).await? {
        return Err(ApiError::not_found());
    }
    let closed = state.edge().revoke_credential(&id);
    tracing::info!(credential = %id, closed, "credential deleted");
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
