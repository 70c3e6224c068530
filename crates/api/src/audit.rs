//! Audit events: every change made through the API is recorded as `<stem>_<action>.v0` with
//! the resource as it stood after the change (before it, for deletes) and the API key that
//! acted as the principal. The record is written to the outbox before the API answers.

use serde::Serialize;
use warren_events::{Principal, Ref};

use crate::ApiState;
use crate::rest::Caller;

/// What happened to the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Deleted,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        }
    }
}

/// Records that `caller` did `action` to `object`, a resource of the audit family `stem`
/// (one of [`warren_events::types::AUDIT_STEMS`], e.g. `tunnel_credential`). `object` must not
/// hold secrets (pass the view with `token: None`). A failure to record is logged, not
/// returned: the change itself has already been made.
pub async fn record(
    state: &ApiState,
    caller: &Caller,
    stem: &str,
    action: Action,
    object: &impl Serialize,
) {
    let Some(events) = state.edge().events() else {
        return;
    };
    let ty = warren_events::types::audit(stem, action.as_str());
    let object = match serde_json::to_value(object) {
        Ok(object) => object,
        Err(error) => {
            tracing::error!(%error, ty, "audit object does not serialize");
            return;
        }
    };
    let subject = match caller.owner_id.as_deref() {
        Some(owner) => owner_name(state, owner).await,
        None => String::new(),
    };
    let principal = Principal {
        id: caller.owner_id.clone().unwrap_or_default(),
        subject,
        source: "API".into(),
        credential: Some(Ref {
            id: caller.api_key_id.clone(),
            uri: state.uri(&format!("/api_keys/{}", caller.api_key_id)),
        }),
    };
    if let Err(error) = events.record(ty, Some(principal), object).await {
        tracing::error!(%error, ty, "audit event not recorded");
    }
}

/// The service user's name, or empty when `owner` is not one (or is gone).
async fn owner_name(state: &ApiState, owner: &str) -> String {
    let id = crate::resources::service_users::to_stored_id(owner);
    match state.store().service_user(&id).await {
        Ok(Some(user)) => user.name,
        _ => String::new(),
    }
}
