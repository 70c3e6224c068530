//! The REST resources, one module per family. Each module exposes `routes()`; [`routes`] merges
//! them. `GET /` lists the collections.

pub mod api_keys;
pub mod credentials;
pub mod endpoints;
pub mod event_destinations;
pub mod event_stream;
pub mod event_subscriptions;
pub mod ip_policies;
pub mod reserved_addrs;
pub mod reserved_domains;
pub mod service_users;
pub mod tunnel_sessions;
pub mod tunnels;
pub mod usage;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::rest;

/// The collections `GET /` lists.
pub const COLLECTIONS: &[&str] = &[
    "api_keys",
    "bot_users",
    "credentials",
    "endpoints",
    "event_destinations",
    "event_stream",
    "event_subscriptions",
    "ip_policies",
    "ip_policy_rules",
    "ip_restrictions",
    "reserved_addrs",
    "reserved_domains",
    "service_users",
    "tunnel_sessions",
    "tunnels",
    "usage",
];

/// Every authenticated route.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(root))
        .merge(service_users::routes())
        .merge(credentials::routes())
        .merge(api_keys::routes())
        .merge(reserved_domains::routes())
        .merge(reserved_addrs::routes())
        .merge(tunnel_sessions::routes())
        .merge(tunnels::routes())
        .merge(endpoints::routes())
        .merge(ip_policies::routes())
        .merge(event_destinations::routes())
        .merge(event_subscriptions::routes())
        .merge(event_stream::routes())
        .merge(usage::routes())
}

/// `GET /`: `{uri, subresource_uris: {name: url}}`.
async fn root(State(state): State<ApiState>) -> Response {
    let subs: Map<String, Value> = COLLECTIONS
        .iter()
        .map(|c| ((*c).to_owned(), Value::String(state.uri(&format!("/{c}")))))
        .collect();
    rest::ok(serde_json::json!({"uri": state.uri("/"), "subresource_uris": subs}))
}
