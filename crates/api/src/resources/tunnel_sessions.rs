//! `/tunnel_sessions`: the agents online right now (ngrok-surface.md §2.6), read live from the
//! edge, and the remote-control actions `stop`, `restart` and `update` that reach an agent over a
//! command stream.
//!
//! Nothing here is stored: a session exists while its agent is connected. Lists are newest first
//! by id (ids are time-ordered), so `before_id` stays a stable cursor while sessions come and go.
//! This module must not decide anything about the agent's answer beyond mapping it to a status:
//! the agent is authoritative about whether it accepts a command.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_edge::agent::AgentCommand;
use warren_edge::{AgentSession, CommandError};
use warren_model::ids::IdPrefix;

use crate::ApiState;
use crate::rest::{self, ApiError, ApiResult, Body, Page};

/// The region every live resource reports: the one the edge names to agents in `AuthResp` and
/// `SrvInfoResp`.
pub const REGION: &str = "warren";

/// The `transport` of every tunnel session (agents speak the ngrok v2 protocol over muxado).
pub const TRANSPORT: &str = "ngrok/2";

/// The routes of `/tunnel_sessions`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tunnel_sessions", get(list))
        .route("/tunnel_sessions/{id}", get(get_one))
        .route("/tunnel_sessions/{id}/stop", post(stop))
        .route("/tunnel_sessions/{id}/restart", post(restart))
        .route("/tunnel_sessions/{id}/update", post(update))
}

/// A tunnel session as the API shows it (every field the official clients require).
#[derive(Debug, Serialize)]
pub struct TunnelSessionView {
    /// `ts_…`.
    pub id: String,
    /// Absolute URL of this resource.
    pub uri: String,
    /// The agent's version, as it said in Auth.
    pub agent_version: String,
    /// `{id, uri}` of the credential the agent authenticated with.
    pub credential: Value,
    /// The agent's source IP as the edge sees it.
    pub ip: String,
    /// The agent-level metadata from its configuration.
    pub metadata: String,
    /// The agent's operating system.
    pub os: String,
    /// Always [`REGION`].
    pub region: String,
    /// When the session connected (RFC 3339, UTC).
    pub started_at: String,
    /// Always [`TRANSPORT`].
    pub transport: String,
    /// Warren extension: when the agent last answered a heartbeat (RFC 3339), null before the
    /// first.
    pub last_heartbeat_at: Option<String>,
    /// Warren extension: round-trip time of the last answered heartbeat, in milliseconds.
    pub latency_ms: Option<f64>,
}

impl TunnelSessionView {
    /// The view of a live session.
    pub fn of(state: &ApiState, session: &AgentSession) -> TunnelSessionView {
        TunnelSessionView {
            id: session.id.clone(),
            uri: state.uri(&format!("/tunnel_sessions/{}", session.id)),
            agent_version: session.info.version.clone(),
            credential: rest::reference(state, "credentials", &session.credential_id),
            ip: session.remote_addr.ip().to_string(),
            metadata: session.info.metadata.clone(),
            os: session.info.os.clone(),
            region: REGION.to_owned(),
            started_at: rest::timestamp(session.started_at),
            transport: TRANSPORT.to_owned(),
            last_heartbeat_at: session.last_heartbeat_at().map(rest::timestamp),
            latency_ms: session.latency().map(|d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// Live sessions older than `page.before_id`, newest first, at most `page.limit + 1` (the extra
/// one tells [`rest::list`] that a next page exists).
fn page_of_sessions(state: &ApiState, page: &Page) -> Vec<Arc<AgentSession>> {
    let mut sessions = state.edge().sessions();
    sessions.sort_by(|a, b| b.id.cmp(&a.id));
    sessions
        .into_iter()
        .filter(|s| {
            page.before_id
                .as_deref()
                .is_none_or(|before| *s.id < *before)
        })
        .take(page.limit.saturating_add(1))
        .collect()
}

/// `GET /tunnel_sessions`.
async fn list(State(state): State<ApiState>, page: Page) -> Response {
    let items: Vec<TunnelSessionView> = page_of_sessions(&state, &page)
        .iter()
        .map(|s| TunnelSessionView::of(&state, s))
        .collect();
    rest::list(
        &state,
        "/tunnel_sessions",
        "tunnel_sessions",
        &page,
        items,
        |s| &s.id,
    )
}

/// The live session `id`: 227 for another prefix, 404 when malformed, unknown or offline.
fn live_session(state: &ApiState, id: &str) -> ApiResult<Arc<AgentSession>> {
    rest::check_id(id, IdPrefix::TunnelSession)?;
    state.edge().session(id).ok_or_else(ApiError::not_found)
}

/// `GET /tunnel_sessions/{id}`.
async fn get_one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    let session = live_session(&state, &id)?;
    Ok(rest::ok(TunnelSessionView::of(&state, &session)))
}

/// Body of `stop` and `restart`: `{}`, or the official clients' `{"id": …}` (the path id is
/// authoritative).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(rename = "id")]
    _id: Option<String>,
}

/// Body of `update`: like [`ActionBody`] plus the version to update to (empty: the latest).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(rename = "id")]
    _id: Option<String>,
    version: Option<String>,
}

/// `POST /tunnel_sessions/{id}/stop`.
async fn stop(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Body(_): Body<ActionBody>,
) -> ApiResult<Response> {
    command(&state, &id, "stop", AgentCommand::Stop).await
}

/// `POST /tunnel_sessions/{id}/restart`.
async fn restart(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Body(_): Body<ActionBody>,
) -> ApiResult<Response> {
    command(&state, &id, "restart", AgentCommand::Restart).await
}

/// `POST /tunnel_sessions/{id}/update`. Never across a major version, as ngrok documents.
async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    let version = body.version.unwrap_or_default();
    if version.len() > rest::MAX_DESCRIPTION_BYTES {
        return Err(ApiError::invalid(format!(
            "version is longer than {} bytes",
            rest::MAX_DESCRIPTION_BYTES
        )));
    }
    let update = AgentCommand::Update {
        version,
        permit_major_version: false,
    };
    command(&state, &id, "update", update).await
}

/// Sends `command` to the agent of session `id` and maps its answer: accepted → 204; refused →
/// 409 with the agent's text; no answer → 502; unknown or gone → 404.
async fn command(
    state: &ApiState,
    id: &str,
    name: &str,
    command: AgentCommand,
) -> ApiResult<Response> {
    let session = live_session(state, id)?;
    match session.command(command).await {
        Ok(()) => Ok(rest::no_content()),
        Err(e) => Err(command_error(name, e)),
    }
}

/// The API error for a failed command `name`.
fn command_error(name: &str, error: CommandError) -> ApiError {
    match error {
        CommandError::NotFound => ApiError::not_found(),
        CommandError::Refused(text) => ApiError::new(
            StatusCode::CONFLICT,
            rest::code::AGENT_REFUSED,
            format!("The agent refused the {name} command: {text}"),
        )
        .detail("agent_error", text),
        CommandError::NoAnswer(why) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            rest::code::AGENT_NO_ANSWER,
            format!("The agent did not answer the {name} command: {why}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_say_who_is_to_blame() {
        let refused = command_error("restart", CommandError::Refused("no callback".into()));
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::CONFLICT, rest::code::AGENT_REFUSED)
        );
        assert!(refused.msg.contains("no callback"), "{}", refused.msg);
        let silent = command_error("stop", CommandError::NoAnswer("timed out".into()));
        assert_eq!(silent.status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            command_error("update", CommandError::NotFound).status,
            StatusCode::NOT_FOUND
        );
    }
}
