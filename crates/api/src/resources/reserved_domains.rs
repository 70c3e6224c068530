//! `/reserved_domains` (ngrok-surface.md §2.4): host names and `*.` wildcards reserved for this
//! deployment. With reservations required (the edge's default), an agent may bind a custom
//! domain only once a reservation covers it.
//!
//! Names are unique across the deployment (the store's unique constraint decides, so of two
//! concurrent creates exactly one wins; the other gets 409). Warren issues no ACME
//! certificates: `certificate` and `certificate_management_status` are always null, a
//! `certificate_management_policy` is validated, stored and echoed, and `certificate_id` must
//! be null (Warren has no `/tls_certificates`; anything else is ERR_NGROK_223). `cname_target`
//! is null for names under the edge's base domain and the base domain itself for custom names
//! (point a CNAME there). Region pinning (`resolves_to`) is not supported: only null, `[]` or
//! `[{"value":"global"}]` are accepted, and responses say `[]`.
//!
//! This module must not decide what binding needs: the edge reads the reservations itself.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_model::host::DomainPattern;
use warren_model::ids::IdPrefix;
use warren_store::StoreError;
use warren_store::reservations::{
    CertPolicy, NewReservedDomain, ReservedDomain, ReservedDomainUpdate,
};

use crate::ApiState;
use crate::audit::{self, Action};
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page, code};

/// The collection's path.
const PATH: &str = "/reserved_domains";

/// The audit family of reserved domains.
const AUDIT_STEM: &str = "domain";

/// The only certificate authority a policy may name.
pub const AUTHORITY: &str = "letsencrypt";

/// Private key types a policy may name; the first is the default.
pub const PRIVATE_KEY_TYPES: &[&str] = &["ecdsa", "rsa"];

/// Regions a request may name (ngrok's list; Warren has one region and echoes the value).
pub const REGIONS: &[&str] = &["", "us", "eu", "ap", "au", "jp", "in", "sa", "global"];

/// The routes of `/reserved_domains`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route(
            "/reserved_domains/{id}",
            get(get_one).patch(update).delete(remove),
        )
        .route(
            "/reserved_domains/{id}/certificate",
            delete(detach_certificate),
        )
        .route(
            "/reserved_domains/{id}/certificate_management_policy",
            delete(detach_policy),
        )
}

/// `certificate_management_policy` as the API spells it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Certificate authority; empty means [`AUTHORITY`].
    #[serde(default)]
    pub authority: String,
    /// Private key type; empty means `ecdsa`.
    #[serde(default)]
    pub private_key_type: String,
}

/// One `resolves_to` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvesTo {
    /// A region or `global`.
    pub value: String,
}

/// `POST /reserved_domains` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The name or `*.` wildcard to reserve.
    #[serde(default)]
    pub domain: String,
    /// Deprecated region.
    #[serde(default)]
    pub region: Option<String>,
    /// Description, ≤255 bytes.
    #[serde(default)]
    pub description: Option<String>,
    /// Metadata, ≤4096 bytes.
    #[serde(default)]
    pub metadata: Option<String>,
    /// An uploaded certificate (unsupported: must be null).
    #[serde(default)]
    pub certificate_id: Option<String>,
    /// Managed certificate policy.
    #[serde(default)]
    pub certificate_management_policy: Option<PolicyBody>,
    /// Region pinning (only global).
    #[serde(default)]
    pub resolves_to: Option<Vec<ResolvesTo>>,
}

/// `PATCH /reserved_domains/{id}` body; the domain itself is immutable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// Sent by the official clients; the path id is authoritative.
    #[serde(default)]
    pub id: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New metadata.
    #[serde(default)]
    pub metadata: Option<String>,
    /// An uploaded certificate (unsupported: must be null).
    #[serde(default)]
    pub certificate_id: Option<String>,
    /// New managed certificate policy.
    #[serde(default)]
    pub certificate_management_policy: Option<PolicyBody>,
    /// Region pinning (only global).
    #[serde(default)]
    pub resolves_to: Option<Vec<ResolvesTo>>,
}

/// A reserved domain as the API shows it (every field the official clients require).
#[derive(Debug, Serialize)]
pub struct ReservedDomainView {
    /// `rd_…`.
    pub id: String,
    /// Absolute URL of this resource.
    pub uri: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Description.
    pub description: String,
    /// Metadata.
    pub metadata: String,
    /// The name or wildcard.
    pub domain: String,
    /// Region as given (usually empty).
    pub region: String,
    /// Where a custom domain's CNAME should point; null under the base domain.
    pub cname_target: Option<String>,
    /// Always null (no uploaded or issued certificates).
    pub certificate: Option<Value>,
    /// The policy, if one is set.
    pub certificate_management_policy: Option<PolicyBody>,
    /// Always null (Warren runs no ACME jobs).
    pub certificate_management_status: Option<Value>,
    /// Always null.
    pub acme_challenge_cname_target: Option<String>,
    /// Always `[]` (global).
    pub resolves_to: Vec<Value>,
}

impl ReservedDomainView {
    /// The view of a stored reserved domain.
    pub fn of(state: &ApiState, d: ReservedDomain) -> ReservedDomainView {
        let base = &state.edge().config().domain;
        ReservedDomainView {
            uri: state.uri(&format!("{PATH}/{}", d.id)),
            created_at: rest::timestamp(d.created_at),
            cname_target: (!under_base_domain(&d.domain, base)).then(|| base.clone()),
            certificate_management_policy: d.cert_policy.map(|p| PolicyBody {
                authority: p.authority,
                private_key_type: p.private_key_type,
            }),
            id: d.id,
            description: d.description,
            metadata: d.metadata,
            domain: d.domain,
            region: d.region,
            certificate: None,
            certificate_management_status: None,
            acme_challenge_cname_target: None,
            resolves_to: Vec::new(),
        }
    }
}

/// Whether every name `domain` (a stored pattern) matches lies under `base` (the edge's rule).
fn under_base_domain(domain: &str, base: &str) -> bool {
    DomainPattern::parse(domain).is_ok_and(|p| warren_edge::bind::under_base_domain(&p, base))
}

/// Maps store errors the caller can fix to 400/409; the rest are 500s.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid { reason, .. } => ApiError::invalid(reason),
        StoreError::Conflict { what } => ApiError::conflict(format!("{what} already exists")),
        other => ApiError::internal(other),
    }
}

/// Checks `region` against [`REGIONS`]; returns it trimmed.
pub(crate) fn check_region(region: Option<&str>) -> ApiResult<String> {
    let region = region.unwrap_or("").trim();
    if !REGIONS.contains(&region) {
        return Err(ApiError::invalid(format!(
            "region `{region}` is not one of {}",
            REGIONS[1..].join(", ")
        )));
    }
    Ok(region.to_owned())
}

fn check_certificate_id(id: Option<&str>) -> ApiResult<()> {
    match id {
        None | Some("") => Ok(()),
        Some(id) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_REFERENCE,
            format!(
                "certificate_id `{id}` does not name a certificate: Warren has no uploaded TLS certificates."
            ),
        )),
    }
}

fn check_resolves_to(entries: Option<&[ResolvesTo]>) -> ApiResult<()> {
    match entries.unwrap_or(&[]) {
        [] => Ok(()),
        [only] if only.value == "global" => Ok(()),
        _ => Err(ApiError::invalid(
            "resolves_to: region pinning is not supported; omit it or use [{\"value\":\"global\"}].",
        )),
    }
}

fn check_policy(policy: PolicyBody) -> ApiResult<CertPolicy> {
    let authority = match policy.authority.trim() {
        "" => AUTHORITY,
        AUTHORITY => AUTHORITY,
        other => {
            return Err(ApiError::invalid(format!(
                "certificate_management_policy.authority `{other}` is not supported; use `{AUTHORITY}`."
            )));
        }
    };
    let key_type = match policy.private_key_type.trim() {
        "" => PRIVATE_KEY_TYPES[0],
        t => PRIVATE_KEY_TYPES
            .iter()
            .find(|k| **k == t)
            .copied()
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "certificate_management_policy.private_key_type `{t}` must be one of {}.",
                    PRIVATE_KEY_TYPES.join(", ")
                ))
            })?,
    };
    Ok(CertPolicy {
        authority: authority.to_owned(),
        private_key_type: key_type.to_owned(),
    })
}

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    let domain = body.domain.trim();
    if let Err(e) = DomainPattern::parse(domain) {
        return Err(ApiError::invalid(format!(
            "domain `{domain}` is not valid: {e}"
        )));
    }
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let region = check_region(body.region.as_deref())?;
    check_certificate_id(body.certificate_id.as_deref())?;
    check_resolves_to(body.resolves_to.as_deref())?;
    let cert_policy = body
        .certificate_management_policy
        .map(check_policy)
        .transpose()?;
    let created = state
        .store()
        .create_reserved_domain(NewReservedDomain {
            domain: domain.to_owned(),
            region,
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            cert_policy,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ApiError::conflict(format!("The domain `{domain}` is already reserved."))
            }
            other => store_error(other),
        })?;
    let view = ReservedDomainView::of(&state, created);
    audit::record(&state, &caller, AUDIT_STEM, Action::Created, &view).await;
    Ok(rest::created(view))
}

async fn list(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let items = state
        .store()
        .list_reserved_domains(page.before_id.as_deref(), page.limit + 1)
        .await
        .map_err(store_error)?;
    let views: Vec<ReservedDomainView> = items
        .into_iter()
        .map(|d| ReservedDomainView::of(&state, d))
        .collect();
    Ok(rest::list(
        &state,
        PATH,
        "reserved_domains",
        &page,
        views,
        |v| &v.id,
    ))
}

async fn find(state: &ApiState, id: &str) -> ApiResult<ReservedDomain> {
    rest::check_id(id, IdPrefix::ReservedDomain)?;
    state
        .store()
        .reserved_domain(id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)
}

async fn get_one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    let found = find(&state, &id).await?;
    Ok(rest::ok(ReservedDomainView::of(&state, found)))
}

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ReservedDomain)?;
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    check_certificate_id(body.certificate_id.as_deref())?;
    check_resolves_to(body.resolves_to.as_deref())?;
    let cert_policy = body
        .certificate_management_policy
        .map(check_policy)
        .transpose()?
        .map(Some);
    let updated = state
        .store()
        .update_reserved_domain(
            &id,
            ReservedDomainUpdate {
                description: body.description,
                metadata: body.metadata,
                cert_policy,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let view = ReservedDomainView::of(&state, updated);
    audit::record(&state, &caller, AUDIT_STEM, Action::Updated, &view).await;
    Ok(rest::ok(view))
}

async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let before = ReservedDomainView::of(&state, find(&state, &id).await?);
    if !state
        .store()
        .delete_reserved_domain(&id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found());
    }
    audit::record(&state, &caller, AUDIT_STEM, Action::Deleted, &before).await;
    Ok(rest::no_content())
}

/// `DELETE …/certificate`: there is never an uploaded certificate, so this only checks the
/// domain exists.
async fn detach_certificate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    find(&state, &id).await?;
    Ok(rest::no_content())
}

/// `DELETE …/certificate_management_policy`: removes the policy.
async fn detach_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ReservedDomain)?;
    let updated = state
        .store()
        .update_reserved_domain(
            &id,
            ReservedDomainUpdate {
                cert_policy: Some(None),
                ..Default::default()
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let view = ReservedDomainView::of(&state, updated);
    audit::record(&state, &caller, AUDIT_STEM, Action::Updated, &view).await;
    Ok(rest::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_domain_names_have_no_cname_target() {
        assert!(under_base_domain("a.localhost", "localhost"));
        assert!(under_base_domain("*.localhost", "localhost"));
        assert!(!under_base_domain("localhost", "localhost"));
        assert!(!under_base_domain("*.example.com", "localhost"));
    }

    #[test]
    fn policies_default_and_validate() {
        let p = check_policy(PolicyBody::default()).unwrap();
        assert_eq!(
            (p.authority.as_str(), p.private_key_type.as_str()),
            ("letsencrypt", "ecdsa")
        );
        let bad = PolicyBody {
            authority: "zerossl".into(),
            ..Default::default()
        };
        assert_eq!(check_policy(bad).unwrap_err().code, code::INVALID_VALUE);
        let bad = PolicyBody {
            private_key_type: "dsa".into(),
            ..Default::default()
        };
        assert_eq!(check_policy(bad).unwrap_err().code, code::INVALID_VALUE);
        assert!(check_region(Some("mars")).is_err());
        assert_eq!(
            check_certificate_id(Some("cert_x")).unwrap_err().code,
            code::INVALID_REFERENCE
        );
    }
}
