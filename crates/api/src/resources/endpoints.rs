//! `/endpoints` (ngrok-surface.md §2.8): the agent endpoints online right now, read live from
//! the edge — the same bound tunnels `/tunnels` shows, seen from the endpoint's side
//! (`ep_X` ↔ `tn_X`).
//!
//! Agent endpoints are read-only here: the agent is authoritative and ends them by closing its
//! listener. Cloud endpoints (created through the API, living without an agent) are not a Warren
//! feature, so `POST`, `PATCH` and `DELETE` answer a clear 400 instead of pretending.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use warren_model::ids::IdPrefix;

use super::tunnel_sessions::REGION;
use super::tunnels::{LiveTunnel, check_prefix, live_tunnels, page_of};
use crate::ApiState;
use crate::rest::{self, ApiError, ApiResult, Page};

/// The `type` of every endpoint this API shows: served by an agent.
pub const AGENT_ENDPOINT_TYPE: &str = "agent";

/// The routes of `/endpoints`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/endpoints", get(list).post(cloud_unsupported))
        .route(
            "/endpoints/{id}",
            get(get_one)
                .patch(cloud_unsupported)
                .delete(cloud_unsupported),
        )
}

/// An endpoint as the API shows it (every field the official clients require).
#[derive(Debug, Serialize)]
pub struct EndpointView {
    /// `ep_…`, the body of its tunnel's id.
    pub id: String,
    /// Always [`REGION`].
    pub region: String,
    /// When it was bound (RFC 3339, UTC).
    pub created_at: String,
    /// Same as `created_at`: an agent endpoint does not change while online.
    pub updated_at: String,
    /// The public URL (ngrok's deprecated spelling of `url`).
    pub public_url: String,
    /// `http`, `https`, `tcp` or `tls`.
    pub proto: String,
    /// The URL's scheme.
    pub scheme: String,
    /// `host:port`.
    pub hostport: String,
    /// The URL's host.
    pub host: String,
    /// The URL's port (the scheme's default when the URL names none).
    pub port: u16,
    /// Always [`AGENT_ENDPOINT_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Per-endpoint metadata from the agent.
    pub metadata: String,
    /// Description (agents send none).
    pub description: String,
    /// Reserved domain (not linked yet: `null`).
    pub domain: Option<Value>,
    /// Reserved TCP address (not linked yet: `null`).
    pub tcp_addr: Option<Value>,
    /// `{id, uri}` of the tunnel serving it.
    pub tunnel: Value,
    /// Legacy edge (never: `null`).
    pub edge: Option<Value>,
    /// Where the agent forwards, as it said.
    pub upstream_url: String,
    /// The protocol the agent forwards with (not reported by agents: empty).
    pub upstream_protocol: String,
    /// The public URL.
    pub url: String,
    /// `{id, uri}` of the credential's owner, or of the credential when it has none.
    pub principal: Value,
    /// Traffic policy (agent endpoints carry none here: empty).
    pub traffic_policy: String,
    /// Always `["public"]`.
    pub bindings: Vec<String>,
    /// `{id, uri}` of the agent session serving it.
    pub tunnel_session: Value,
    /// Absolute URL of this resource.
    pub uri: String,
    /// Endpoint name (agents send none: empty).
    pub name: String,
    /// Pooling is not supported: `false`.
    pub pooling_enabled: bool,
}

/// The parts of a public URL the endpoint shows.
#[derive(Debug, PartialEq, Eq)]
struct UrlParts {
    scheme: String,
    host: String,
    port: u16,
}

/// Splits `scheme://host[:port][/…]`; the port defaults by scheme (http 80, https and tls 443).
fn url_parts(url: &str) -> UrlParts {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split('/').next().unwrap_or("");
    let default = match scheme {
        "http" => 80,
        "https" | "tls" => 443,
        _ => 0,
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => (authority, default),
        },
        _ => (authority, default),
    };
    UrlParts {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        port,
    }
}

/// Where an owner id's resource lives, by its prefix.
fn owner_collection(owner_id: &str) -> &'static str {
    match owner_id.split_once('_').map(|(prefix, _)| prefix) {
        Some("service") => "service_users",
        Some("bot") => "bot_users",
        _ => "users",
    }
}

/// Resolves principals (credential → owner), each credential looked up once per request.
struct Principals<'a> {
    state: &'a ApiState,
    known: HashMap<String, Value>,
}

impl<'a> Principals<'a> {
    fn new(state: &'a ApiState) -> Principals<'a> {
        Principals {
            state,
            known: HashMap::new(),
        }
    }

    async fn of(&mut self, credential_id: &str) -> ApiResult<Value> {
        if let Some(known) = self.known.get(credential_id) {
            return Ok(known.clone());
        }
        let owner = self
            .state
            .store()
            .credential(credential_id)
            .await?
            .and_then(|c| c.owner_id);
        let principal = match owner {
            Some(owner) => rest::reference(self.state, owner_collection(&owner), &owner),
            None => rest::reference(self.state, "credentials", credential_id),
        };
        self.known
            .insert(credential_id.to_owned(), principal.clone());
        Ok(principal)
    }
}

impl EndpointView {
    /// The view of a live tunnel's endpoint; `principal` as resolved by the caller.
    fn of(state: &ApiState, live: &LiveTunnel, principal: Value) -> EndpointView {
        let tunnel = &live.tunnel;
        let id = live.endpoint_id();
        let parts = url_parts(&tunnel.url);
        let at = rest::timestamp(live.started_at);
        EndpointView {
            uri: state.uri(&format!("/endpoints/{id}")),
            id,
            region: REGION.to_owned(),
            created_at: at.clone(),
            updated_at: at,
            public_url: tunnel.url.clone(),
            proto: tunnel.proto.as_str().to_owned(),
            hostport: format!("{}:{}", parts.host, parts.port),
            scheme: parts.scheme,
            host: parts.host,
            port: parts.port,
            kind: AGENT_ENDPOINT_TYPE.to_owned(),
            metadata: tunnel.metadata.clone(),
            description: String::new(),
            domain: None,
            tcp_addr: None,
            tunnel: rest::reference(state, "tunnels", &tunnel.id),
            edge: None,
            upstream_url: tunnel.forwards_to.clone(),
            upstream_protocol: String::new(),
            url: tunnel.url.clone(),
            principal,
            traffic_policy: String::new(),
            bindings: vec!["public".to_owned()],
            tunnel_session: rest::reference(state, "tunnel_sessions", &tunnel.session_id),
            name: String::new(),
            pooling_enabled: false,
        }
    }
}

/// The body of an `ep_` id (or the id itself when it has another shape).
fn ep_body(id: &str) -> &str {
    id.strip_prefix(IdPrefix::Endpoint.as_str())
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(id)
}

/// `GET /endpoints`.
async fn list(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let live = page_of(live_tunnels(&state), &page, LiveTunnel::body, ep_body);
    let mut principals = Principals::new(&state);
    let mut items = Vec::with_capacity(live.len());
    for t in &live {
        let principal = principals.of(&t.tunnel.credential_id).await?;
        items.push(EndpointView::of(&state, t, principal));
    }
    Ok(rest::list(
        &state,
        "/endpoints",
        "endpoints",
        &page,
        items,
        |e| &e.id,
    ))
}

/// `GET /endpoints/{id}`.
async fn get_one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    check_prefix(&id, IdPrefix::Endpoint)?;
    let live = live_tunnels(&state)
        .into_iter()
        .find(|t| t.endpoint_id() == id)
        .ok_or_else(ApiError::not_found)?;
    let principal = Principals::new(&state)
        .of(&live.tunnel.credential_id)
        .await?;
    Ok(rest::ok(EndpointView::of(&state, &live, principal)))
}

/// `POST /endpoints`, `PATCH` and `DELETE /endpoints/{id}`: cloud endpoints are not supported.
async fn cloud_unsupported() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        rest::code::CLOUD_ENDPOINTS_UNSUPPORTED,
        "Cloud endpoints are not supported by Warren. Agent endpoints are read-only here: \
         an agent creates one by binding it and removes it by closing its listener.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(scheme: &str, host: &str, port: u16) -> UrlParts {
        UrlParts {
            scheme: scheme.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn urls_split_into_scheme_host_and_port() {
        assert_eq!(
            url_parts("https://a.localhost:8443"),
            parts("https", "a.localhost", 8443)
        );
        assert_eq!(
            url_parts("http://a.example.com"),
            parts("http", "a.example.com", 80)
        );
        assert_eq!(
            url_parts("tls://x.example.com"),
            parts("tls", "x.example.com", 443)
        );
        assert_eq!(
            url_parts("tcp://localhost:20001"),
            parts("tcp", "localhost", 20001)
        );
        assert_eq!(url_parts("tcp://[::1]:7"), parts("tcp", "[::1]", 7));
        assert_eq!(url_parts("garbage"), parts("", "garbage", 0));
        assert_eq!(
            url_parts("http://h:notaport/x"),
            parts("http", "h:notaport", 80)
        );
    }

    #[test]
    fn owners_resolve_to_their_collection() {
        assert_eq!(owner_collection("service_2abc"), "service_users");
        assert_eq!(owner_collection("bot_2abc"), "bot_users");
        assert_eq!(owner_collection("usr_2abc"), "users");
        assert_eq!(owner_collection("odd"), "users");
    }
}
