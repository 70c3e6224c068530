//! Warren's control plane: the ngrok-compatible REST API (API v2), so the official `ngrok-api`
//! clients drive a Warren deployment once given its base URL.
//!
//! # Layout
//! - [`rest`]: the shared conventions — auth and `Ngrok-Version`, the error body, JSON bodies,
//!   id prefixes, pagination, `uri`s, field limits.
//! - [`resources`]: one module per resource family, each exposing `routes()`.
//! - [`openapi`]: the OpenAPI document (`GET /openapi.json`, committed as `openapi.json`).
//!
//! The API owns no sockets but its listener ([`serve`]); it reads and writes the store and asks
//! the edge about (and acts on) live agent sessions.

pub mod audit;
pub mod openapi;
pub mod resources;
pub mod rest;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use warren_edge::Edge;
use warren_store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<StateInner>,
}

struct StateInner {
    store: Store,
    edge: Edge,
    base_url: String,
    /// Permits for open `/event_stream` connections.
    streams: Arc<tokio::sync::Semaphore>,
    /// Set once the API shuts down: long-lived responses end.
    closing: tokio::sync::watch::Sender<bool>,
}

impl ApiState {
    /// State over `store` and `edge`; `base_url` (`https://api.example.com`, no trailing `/`)
    /// prefixes every `uri` field.
    pub fn new(store: Store, edge: Edge, base_url: &str) -> ApiState {
        ApiState {
            inner: Arc::new(StateInner {
                store,
                edge,
                base_url: base_url.trim_end_matches('/').to_owned(),
                streams: Arc::new(tokio::sync::Semaphore::new(
                    resources::event_stream::MAX_STREAMS,
                )),
                closing: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The edge (live agent sessions).
    pub fn edge(&self) -> &Edge {
        &self.inner.edge
    }

    /// The permits of open event streams.
    pub(crate) fn streams(&self) -> Arc<tokio::sync::Semaphore> {
        self.inner.streams.clone()
    }

    /// Becomes `true` when the API shuts down.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Ends long-lived responses (event streams); called when the listener shuts down.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// The absolute URL of `path` (`/credentials/cr_…`).
    pub fn uri(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base_url)
    }
}

/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: the edge's metrics, then the event pipeline's, in the OpenMetrics text format.
async fn metrics(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    let mut out = String::new();
    state.edge().encode_metrics(&mut out);
    if let Some(events) = state.edge().events() {
        events.encode_metrics(&mut out);
    }
    out.push_str("# EOF\n");
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], out).into_response()
}

/// The whole API: authenticated resource routes; `GET /healthz`, `GET /metrics` and
/// `GET /openapi.json` without authentication; JSON 404/405 for everything else.
pub fn router(state: ApiState) -> Router {
    let authenticated = resources::routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        rest::authenticate,
    ));
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .merge(authenticated)
        .fallback(rest::unknown_route)
        .method_not_allowed_fallback(rest::wrong_method)
        .layer(DefaultBodyLimit::max(rest::MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves; open event streams end then.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let closer = state.clone();
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let shutdown = async move {
        shutdown.await;
        closer.close();
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "API listener failed");
    }
}
