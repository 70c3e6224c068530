//! `/tunnels` (read-only, ngrok-surface.md §2.7): the endpoints agents have bound right now, read
//! live from the edge, one per Bind.
//!
//! Also owns the live-tunnel snapshot that `/endpoints` shows from the endpoint's side
//! ([`live_tunnels`]). A tunnel and its endpoint share one id body (`tn_X` ↔ `ep_X`), as in
//! ngrok. Nothing here changes a tunnel; stopping one is the edge's business.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use warren_edge::Tunnel;
use warren_model::ids::IdPrefix;

use super::tunnel_sessions::REGION;
use crate::ApiState;
use crate::rest::{self, ApiError, ApiResult, Page};

/// The routes of `/tunnels`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tunnels", get(list))
        .route("/tunnels/{id}", get(get_one))
}

/// A live tunnel and when it started.
#[derive(Debug, Clone)]
pub struct LiveTunnel {
    /// The tunnel as the edge holds it.
    pub tunnel: Arc<Tunnel>,
    /// When it was bound: the time in its id, else its session's start.
    pub started_at: OffsetDateTime,
}

impl LiveTunnel {
    /// The id body shared by the tunnel (`tn_…`) and its endpoint (`ep_…`). A tunnel id an
    /// agent chose without the `tn_` prefix is its own body.
    pub fn body(&self) -> &str {
        id_body(&self.tunnel.id)
    }

    /// `ep_<body>`.
    pub fn endpoint_id(&self) -> String {
        format!("{}_{}", IdPrefix::Endpoint.as_str(), self.body())
    }
}

/// The body of a `tn_` id, or the whole id when it has another shape.
fn id_body(tunnel_id: &str) -> &str {
    tunnel_id
        .strip_prefix(IdPrefix::Tunnel.as_str())
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(tunnel_id)
}

/// Every tunnel bound on the edge right now, newest first by id (ids are time-ordered).
pub fn live_tunnels(state: &ApiState) -> Vec<LiveTunnel> {
    let mut tunnels: Vec<LiveTunnel> = state
        .edge()
        .sessions()
        .iter()
        .flat_map(|session| {
            let fallback = session.started_at;
            session.tunnels().into_iter().map(move |tunnel| {
                let started_at = warren_model::ids::id_body_unix_secs(id_body(&tunnel.id))
                    .ok()
                    .and_then(|secs| i64::try_from(secs).ok())
                    .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
                    .unwrap_or(fallback);
                LiveTunnel { tunnel, started_at }
            })
        })
        .collect();
    tunnels.sort_by(|a, b| b.body().cmp(a.body()));
    tunnels
}

/// Checks only the prefix of a path id (→ 227): a live tunnel may carry an id the agent chose,
/// so an unusual body is simply not found.
pub fn check_prefix(id: &str, prefix: IdPrefix) -> ApiResult<()> {
    match rest::check_id(id, prefix) {
        Err(e) if e.code == rest::code::BAD_ID_PREFIX => Err(e),
        _ => Ok(()),
    }
}

/// The entries of `items` (sorted newest first by id body) whose body sorts before the body of
/// `page.before_id`, at most `page.limit + 1`. `before_body` strips the cursor's prefix.
pub fn page_of<T>(
    items: Vec<T>,
    page: &Page,
    body_of: impl Fn(&T) -> &str,
    before_body: impl Fn(&str) -> &str,
) -> Vec<T> {
    let before = page.before_id.as_deref().map(before_body);
    items
        .into_iter()
        .filter(|item| before.is_none_or(|before| body_of(item) < before))
        .take(page.limit.saturating_add(1))
        .collect()
}

/// A tunnel as the API shows it (every field the official clients require).
#[derive(Debug, Serialize)]
pub struct TunnelView {
    /// The tunnel id.
    pub id: String,
    /// Absolute URL of this resource.
    pub uri: String,
    /// The public URL visitors use.
    pub public_url: String,
    /// When the tunnel was bound (RFC 3339, UTC).
    pub started_at: String,
    /// Per-endpoint metadata from the agent.
    pub metadata: String,
    /// `http`, `https`, `tcp` or `tls`.
    pub proto: String,
    /// Always [`REGION`].
    pub region: String,
    /// `{id, uri}` of the agent session serving it.
    pub tunnel_session: Value,
    /// `{id, uri}` of its endpoint (`ep_` with the same body).
    pub endpoint: Value,
    /// Labels (labeled tunnels are not supported: always empty).
    pub labels: Map<String, Value>,
    /// Tunnel-group backends (always empty).
    pub backends: Vec<Value>,
    /// Where the agent forwards, as it said.
    pub forwards_to: String,
}

impl TunnelView {
    /// The view of a live tunnel.
    pub fn of(state: &ApiState, live: &LiveTunnel) -> TunnelView {
        let tunnel = &live.tunnel;
        TunnelView {
            id: tunnel.id.clone(),
            uri: state.uri(&format!("/tunnels/{}", tunnel.id)),
            public_url: tunnel.url.clone(),
            started_at: rest::timestamp(live.started_at),
            metadata: tunnel.metadata.clone(),
            proto: tunnel.proto.as_str().to_owned(),
            region: REGION.to_owned(),
            tunnel_session: rest::reference(state, "tunnel_sessions", &tunnel.session_id),
            endpoint: rest::reference(state, "endpoints", &live.endpoint_id()),
            labels: Map::new(),
            backends: Vec::new(),
            forwards_to: tunnel.forwards_to.clone(),
        }
    }
}

/// `GET /tunnels`.
async fn list(State(state): State<ApiState>, page: Page) -> Response {
    let items: Vec<TunnelView> = page_of(live_tunnels(&state), &page, LiveTunnel::body, id_body)
        .iter()
        .map(|t| TunnelView::of(&state, t))
        .collect();
    rest::list(&state, "/tunnels", "tunnels", &page, items, |t| &t.id)
}

/// `GET /tunnels/{id}`.
async fn get_one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    check_prefix(&id, IdPrefix::Tunnel)?;
    let live = live_tunnels(&state)
        .into_iter()
        .find(|t| t.tunnel.id == id)
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(TunnelView::of(&state, &live)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_and_endpoint_share_the_body() {
        assert_eq!(id_body("tn_2abc"), "2abc");
        assert_eq!(id_body("custom-id"), "custom-id");
        assert_eq!(id_body("tnx"), "tnx");
    }

    #[test]
    fn pages_follow_the_cursor() {
        let ids = vec!["c", "b", "a"];
        let page = Page {
            before_id: Some("tn_c".into()),
            limit: 1,
        };
        assert_eq!(
            page_of(ids.clone(), &page, |s: &&str| *s, id_body),
            vec!["b", "a"]
        );
        let all = Page {
            before_id: None,
            limit: 5,
        };
        assert_eq!(page_of(ids, &all, |s: &&str| *s, id_body).len(), 3);
    }
}
