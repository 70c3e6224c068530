//! `/reserved_addrs` (ngrok-surface.md §2.5): TCP addresses reserved for this deployment. The
//! client never chooses the port: the server assigns `<edge base domain>:<port>` from the edge's
//! TCP port range, skipping ports already reserved and ports a live TCP endpoint holds. With
//! reservations required (the edge's default), an agent may bind a chosen TCP address only once
//! it is reserved.
//!
//! When the edge's range is `0` (the OS picks ports; test setups), a port is found by binding
//! `<tcp_bind_ip>:0` and releasing it at once: it is free at reservation time, but nothing stops
//! another process from taking it later. Production deployments configure a real range.
//!
//! Ports are unique in the database: two concurrent creates that chose the same port cannot
//! both succeed; the loser picks another port and retries.

use std::collections::HashSet;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_model::ids::IdPrefix;
use warren_store::StoreError;
use warren_store::reservations::{NewReservedAddr, ReservedAddr, ReservedAddrUpdate};

use super::reserved_domains::{check_region, store_error};
use crate::ApiState;
use crate::audit::{self, Action};
use crate::rest::{self, ApiError, ApiResult, Body, Caller, Page, code};

/// The collection's path.
const PATH: &str = "/reserved_addrs";

/// Ports tried before a create gives up (each try loses only to a concurrent create or to a
/// port the OS handed out twice).
pub const PORT_ATTEMPTS: usize = 16;

/// The routes of `/reserved_addrs`.
pub fn routes() -> Router<ApiState> {
    Router::new().route(PATH, get(list).post(create)).route(
        "/reserved_addrs/{id}",
        get(get_one).patch(update).delete(remove),
    )
}

/// `POST /reserved_addrs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Description, ≤255 bytes.
    #[serde(default)]
    pub description: Option<String>,
    /// Metadata, ≤4096 bytes.
    #[serde(default)]
    pub metadata: Option<String>,
    /// Region (echoed; Warren has one).
    #[serde(default)]
    pub region: Option<String>,
}

/// `PATCH /reserved_addrs/{id}` body.
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
}

/// A reserved address as the API shows it.
#[derive(Debug, Serialize)]
pub struct ReservedAddrView {
    /// `ra_…`.
    pub id: String,
    /// Absolute URL of this resource.
    pub uri: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Description.
    pub description: String,
    /// Metadata.
    pub metadata: String,
    /// `host:port`.
    pub addr: String,
    /// Region as given.
    pub region: String,
    /// Legacy field, always null.
    pub endpoint_configuration: Option<Value>,
}

impl ReservedAddrView {
    /// The view of a stored reserved address.
    pub fn of(state: &ApiState, a: ReservedAddr) -> ReservedAddrView {
        ReservedAddrView {
            uri: state.uri(&format!("{PATH}/{}", a.id)),
            created_at: rest::timestamp(a.created_at),
            id: a.id,
            description: a.description,
            metadata: a.metadata,
            addr: a.addr,
            region: a.region,
            endpoint_configuration: None,
        }
    }
}

fn no_free_port(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        code::CONFLICT,
        format!("No TCP port is left to reserve: {detail}"),
    )
}

/// A port no reservation and no live endpoint holds, from the edge's range.
async fn candidate_port(state: &ApiState) -> ApiResult<u16> {
    let edge = state.edge();
    let range = edge.config().tcp_ports;
    let reserved: HashSet<u16> = state
        .store()
        .reserved_ports()
        .await
        .map_err(store_error)?
        .into_iter()
        .collect();
    let routes = edge.routes();
    if range.is_any() {
        for _ in 0..PORT_ATTEMPTS {
            let probe = std::net::TcpListener::bind(SocketAddr::new(edge.config().tcp_bind_ip, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| no_free_port(format!("the OS gave no port ({e})")))?;
            let port = probe.port();
            if !reserved.contains(&port) && routes.port(port).is_none() {
                return Ok(port);
            }
        }
        return Err(no_free_port("the OS kept handing out reserved ports"));
    }
    let free: Vec<u16> = (range.first..=range.last)
        .filter(|p| !reserved.contains(p) && routes.port(*p).is_none())
        .collect();
    free.choose(&mut rand::thread_rng())
        .copied()
        .ok_or_else(|| {
            no_free_port(format!(
                "every port of the edge's range {}-{} is reserved or in use",
                range.first, range.last
            ))
        })
}

/// The audit family of reserved TCP addresses.
const AUDIT_STEM: &str = "tcp_address";

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let region = check_region(body.region.as_deref())?;
    for _ in 0..PORT_ATTEMPTS {
        let port = candidate_port(&state).await?;
        let new = NewReservedAddr {
            host: state.edge().config().domain.clone(),
            port,
            region: region.clone(),
            description: body.description.clone().unwrap_or_default(),
            metadata: body.metadata.clone().unwrap_or_default(),
        };
        match state.store().create_reserved_addr(new).await {
            Ok(created) => {
                let view = ReservedAddrView::of(&state, created);
                audit::record(&state, &caller, AUDIT_STEM, Action::Created, &view).await;
                return Ok(rest::created(view));
            }
            // Another create took this port first: choose again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(store_error(other)),
        }
    }
    Err(no_free_port(
        "concurrent reservations kept taking the chosen ports",
    ))
}

async fn list(State(state): State<ApiState>, page: Page) -> ApiResult<Response> {
    let items = state
        .store()
        .list_reserved_addrs(page.before_id.as_deref(), page.limit + 1)
        .await
        .map_err(store_error)?;
    let views: Vec<ReservedAddrView> = items
        .into_iter()
        .map(|a| ReservedAddrView::of(&state, a))
        .collect();
    Ok(rest::list(
        &state,
        PATH,
        "reserved_addrs",
        &page,
        views,
        |v| &v.id,
    ))
}

async fn get_one(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ReservedAddr)?;
    let found = state
        .store()
        .reserved_addr(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    Ok(rest::ok(ReservedAddrView::of(&state, found)))
}

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateBody>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ReservedAddr)?;
    rest::check_text_fields(body.description.as_deref(), body.metadata.as_deref())?;
    let updated = state
        .store()
        .update_reserved_addr(
            &id,
            ReservedAddrUpdate {
                description: body.description,
                metadata: body.metadata,
            },
        )
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let view = ReservedAddrView::of(&state, updated);
    audit::record(&state, &caller, AUDIT_STEM, Action::Updated, &view).await;
    Ok(rest::ok(view))
}

async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    rest::check_id(&id, IdPrefix::ReservedAddr)?;
    let before = state
        .store()
        .reserved_addr(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let before = ReservedAddrView::of(&state, before);
    if !state
        .store()
        .delete_reserved_addr(&id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found());
    }
    audit::record(&state, &caller, AUDIT_STEM, Action::Deleted, &before).await;
    Ok(rest::no_content())
}
