//! `/ip_policies`, `/ip_policy_rules` and `/ip_restrictions` (ngrok-surface.md §2.11): CIDR
//! rules grouped into policies, and restrictions that apply policies to the agent listener
//! (`agent`), this API (`api`), the public endpoints (`endpoints`) or a dashboard
//! (`dashboard`; stored, nothing to enforce in Warren).
//!
//! Every write tells the edge to reload its in-memory restriction snapshot before answering, so
//! a restriction is in force once its create returns. Decisions:
//! - deleting a policy deletes its rules; deleting a policy a restriction still names is a 409
//!   (remove it from the restriction first) rather than silently opening the restriction;
//! - a restriction's policies with no `allow` rules admit everything they do not deny;
//! - `ip_policy_ids` on update: an empty list leaves the policies unchanged (the official
//!   clients always send the field), so a restriction keeps at least one policy;
//! - errors: bad CIDR or action 215, unknown policy id 223, unknown restriction type
//!   ERR_NGROK_1803, restriction without policies ERR_NGROK_1804 (ngrok's numbers).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_model::ids::IdPrefix;
use warren_store::StoreError;
use warren_store::ip_policies::{
    IpPolicy, IpPolicyRule, IpPolicyRuleUpdate, IpRestriction, IpRestrictionUpdate,
    NewIpPolicyRule, NewIpRestriction, PolicyDelete, RESTRICTION_TYPES,
};

use crate::ApiState;
use crate::audit::{self, Action};
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page, code};

const POLICIES: &str = "/ip_policies";
const RULES: &str = "/ip_policy_rules";
const RESTRICTIONS: &str = "/ip_restrictions";

/// ngrok's code for an unknown restriction `type`.
pub const BAD_RESTRICTION_TYPE: u32 = 1803;
/// ngrok's code for a restriction without policies.
pub const NO_POLICIES: u32 = 1804;

/// The routes of the three collections.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(POLICIES, get(list_policies).post(create_policy))
        .route(
            "/ip_policies/{id}",
            get(get_policy).patch(update_policy).delete(delete_policy),
        )
        .route(RULES, get(list_rules).post(create_rule))
        .route(
            "/ip_policy_rules/{id}",
            get(get_rule).patch(update_rule).delete(delete_rule),
        )
        .route(
            RESTRICTIONS,
            get(list_restrictions).post(create_restriction),
        )
        .route(
            "/ip_restrictions/{id}",
            get(get_restriction)
                .patch(update_restriction)
                .delete(delete_restriction),
        )
}

/// `POST /ip_policies` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCreateBody {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
}

/// `PATCH /ip_policies/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdateBody {
    /// Sent by the official clients; the path id is authoritative.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
}

/// `POST /ip_policy_rules` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleCreateBody {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    /// IPv4 or IPv6 CIDR block.
    #[serde(default)]
    pub cidr: Option<String>,
    /// The policy (`ipp_…`).
    #[serde(default)]
    pub ip_policy_id: Option<String>,
    /// `allow` or `deny`.
    #[serde(default)]
    pub action: Option<String>,
}

/// `PATCH /ip_policy_rules/{id}` body (action and policy are immutable).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdateBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    #[serde(default)]
    pub cidr: Option<String>,
}

/// `POST /ip_restrictions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictionCreateBody {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    /// Refuse violations (default false: warn only).
    #[serde(default)]
    pub enforced: Option<bool>,
    /// `agent`, `api`, `endpoints` or `dashboard`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Policies (`ipp_…`), at least one.
    #[serde(default)]
    pub ip_policy_ids: Option<Vec<String>>,
}

/// `PATCH /ip_restrictions/{id}` body (the type is immutable).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictionUpdateBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
    #[serde(default)]
    pub enforced: Option<bool>,
    /// Replaces the policies when non-empty.
    #[serde(default)]
    pub ip_policy_ids: Option<Vec<String>>,
}

/// An IP policy as the API shows it.
#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub id: String,
    pub uri: String,
    pub created_at: String,
    pub description: String,
    pub metadata: String,
}

impl PolicyView {
    fn of(state: &ApiState, p: IpPolicy) -> PolicyView {
        PolicyView {
            uri: state.uri(&format!("{POLICIES}/{}", p.id)),
            created_at: rest::timestamp(p.created_at),
            id: p.id,
            description: p.description,
            metadata: p.metadata,
        }
    }
}

/// An IP policy rule as the API shows it.
#[derive(Debug, Serialize)]
pub struct RuleView {
    pub id: String,
    pub uri: String,
    pub created_at: String,
    pub description: String,
    pub metadata: String,
    pub cidr: String,
    pub ip_policy: Value,
    pub action: String,
}

impl RuleView {
    fn of(state: &ApiState, r: IpPolicyRule) -> RuleView {
        RuleView {
            uri: state.uri(&format!("{RULES}/{}", r.id)),
            created_at: rest::timestamp(r.created_at),
            ip_policy: rest::reference(state, "ip_policies", &r.ip_policy_id),
            id: r.id,
            description: r.description,
            metadata: r.metadata,
            cidr: r.cidr,
            action: r.action,
        }
    }
}

/// An IP restriction as the API shows it.
#[derive(Debug, Serialize)]
pub struct RestrictionView {
    pub id: String,
    pub uri: String,
    pub created_at: String,
    pub description: String,
    pub metadata: String,
    pub enforced: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub ip_policies: Vec<Value>,
}

impl RestrictionView {
    fn of(state: &ApiState, r: IpRestriction) -> RestrictionView {
        RestrictionView {
            uri: state.uri(&format!("{RESTRICTIONS}/{}", r.id)),
            created_at: rest::timestamp(r.created_at),
            ip_policies: r
                .ip_policy_ids
                .iter()
                .map(|p| rest::reference(state, "ip_policies", p))
                .collect(),
            id: r.id,
            description: r.description,
            metadata: r.metadata,
            enforced: r.enforced,
            kind: r.kind,
        }
    }
}

/// Store errors as API errors: a reference to a missing policy is 223, other bad input 215.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid {
            field: "ip_policy_id" | "ip_policy_ids",
            reason,
        } => ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_REFERENCE, reason),
        other => super::reserved_domains::store_error(other),
    }
}

/// Applies the stored restrictions to the edge. A failed reload is logged; the edge then fails
/// closed until a later load succeeds.
async fn refresh(state: &ApiState) {
    if let Err(error) = state.edge().reload_ip_restrictions().await {
        tracing::error!(%error, "reloading IP restrictions failed");
    }
}

async fn create_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<PolicyCreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let created = state
        .store()
        .create_ip_policy(
            body.description.unwrap_or_default(),
            body.metadata.unwrap_or_default(),
        )
        .await
        .map_err(store_error)?;
    let view = PolicyView::of(&state, created);
    audit::record(&state, &caller, "ip_policy", Action::Created, &view).await;
    Ok(rest::created(view))
}

async fn list_policies(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let items = state
        .store()
        .list_ip_policies(page.before_id.as_deref(), page.limit + 1)
        .await
        .map_err(store_error)?;
    let views: Vec<PolicyView> = items
        .into_iter()
        .map(|p| PolicyView::of(&state, p))
        .collect();
    Ok(rest::list(
        &state,
        POLICIES,
        "ip_policies",
        &page,
        views,
        |v| &v.id,
    ))
}

async fn get_policy(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpPolicy)?;
    let found = state
        .store()
        .ip_policy(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(PolicyView::of(&state, found)))
}

async fn update_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<PolicyUpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpPolicy)?;
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let updated = state
        .store()
        .update_ip_policy(&id, body.description, body.metadata)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let view = PolicyView::of(&state, updated);
    audit::record(&state, &caller, "ip_policy", Action::Updated, &view).await;
    Ok(rest::ok(view))
}

async fn delete_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpPolicy)?;
    let before = state
        .store()
        .ip_policy(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let before = PolicyView::of(&state, before);
    match state
        .store()
        .delete_ip_policy(&id)
        .await
        .map_err(store_error)?
    {
        PolicyDelete::Deleted => {
            refresh(&state).await;
            audit::record(&state, &caller, "ip_policy", Action::Deleted, &before).await;
            Ok(rest::no_content())
        }
        PolicyDelete::NotFound => Err(ApiError::not_found()),
        PolicyDelete::InUse => Err(ApiError::conflict(format!(
            "IP policy {id} is used by an IP restriction; remove it from the restriction first."
        ))),
    }
}

async fn create_rule(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<RuleCreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let created = state
        .store()
        .create_ip_policy_rule(NewIpPolicyRule {
            ip_policy_id: body.ip_policy_id.unwrap_or_default(),
            cidr: body.cidr.unwrap_or_default(),
            action: body.action.unwrap_or_default(),
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
        })
        .await
        .map_err(store_error)?;
    refresh(&state).await;
    let view = RuleView::of(&state, created);
    audit::record(&state, &caller, "ip_policy_rule", Action::Created, &view).await;
    Ok(rest::created(view))
}

async fn list_rules(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let items = state
        .store()
        .list_ip_policy_rules(page.before_id.as_deref(), page.limit + 1)
        .await
        .map_err(store_error)?;
    let views: Vec<RuleView> = items.into_iter().map(|r| RuleView::of(&state, r)).collect();
    Ok(rest::list(
        &state,
        RULES,
        "ip_policy_rules",
        &page,
        views,
        |v| &v.id,
    ))
}

async fn get_rule(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpPolicyRule)?;
    let found = state
        .store()
        .ip_policy_rule(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(RuleView::of(&state, found)))
}

async fn update_rule(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<RuleUpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpPolicyRule)?;
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let updated = state
        .store()
        .update_ip_policy_rule(
            &id,
            IpPolicyRuleUpdate {
                description: body.description,
                metadata: body.metadata,
                cidr: body.cidr,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    refresh(&state).await;
    let view = RuleView::of(&state, updated);
    audit::record(&state, &caller, "ip_policy_rule", Action::Updated, &view).await;
    Ok(rest::ok(view))
}

async fn delete_rule(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpPolicyRule)?;
    let before = state
        .store()
        .ip_policy_rule(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let before = RuleView::of(&state, before);
    if !state
        .store()
        .delete_ip_policy_rule(&id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found());
    }
    refresh(&state).await;
    audit::record(&state, &caller, "ip_policy_rule", Action::Deleted, &before).await;
    Ok(rest::no_content())
}

async fn create_restriction(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<RestrictionCreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let kind = body.kind.unwrap_or_default();
    if !RESTRICTION_TYPES.contains(&kind.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            BAD_RESTRICTION_TYPE,
            format!(
                "The provided IP Restriction type \"{kind}\" is invalid. Valid types: {}.",
                RESTRICTION_TYPES.join(", ")
            ),
        ));
    }
    let ip_policy_ids = body.ip_policy_ids.unwrap_or_default();
    if ip_policy_ids.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            NO_POLICIES,
            "An IP Restriction must specify at least one IP Policy.",
        ));
    }
    let created = state
        .store()
        .create_ip_restriction(NewIpRestriction {
            kind,
            enforced: body.enforced.unwrap_or(false),
            ip_policy_ids,
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
        })
        .await
        .map_err(store_error)?;
    refresh(&state).await;
    let view = RestrictionView::of(&state, created);
    audit::record(&state, &caller, "ip_restriction", Action::Created, &view).await;
    Ok(rest::created(view))
}

async fn list_restrictions(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let items = state
        .store()
        .list_ip_restrictions(page.before_id.as_deref(), page.limit + 1)
        .await
        .map_err(store_error)?;
    let views: Vec<RestrictionView> = items
        .into_iter()
        .map(|r| RestrictionView::of(&state, r))
        .collect();
    Ok(rest::list(
        &state,
        RESTRICTIONS,
        "ip_restrictions",
        &page,
        views,
        |v| &v.id,
    ))
}

async fn get_restriction(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpRestriction)?;
    let found = state
        .store()
        .ip_restriction(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(RestrictionView::of(&state, found)))
}

async fn update_restriction(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<RestrictionUpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpRestriction)?;
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let updated = state
        .store()
        .update_ip_restriction(
            &id,
            IpRestrictionUpdate {
                description: body.description,
                metadata: body.metadata,
                enforced: body.enforced,
                ip_policy_ids: body.ip_policy_ids.filter(|ids| !ids.is_empty()),
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    refresh(&state).await;
    let view = RestrictionView::of(&state, updated);
    audit::record(&state, &caller, "ip_restriction", Action::Updated, &view).await;
    Ok(rest::ok(view))
}

async fn delete_restriction(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::IpRestriction)?;
    let before = state
        .store()
        .ip_restriction(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let before = RestrictionView::of(&state, before);
    if !state
        .store()
        .delete_ip_restriction(&id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found());
    }
    refresh(&state).await;
    audit::record(&state, &caller, "ip_restriction", Action::Deleted, &before).await;
    Ok(rest::no_content())
}
