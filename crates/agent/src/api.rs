//! The local agent API (`http://127.0.0.1:4040/api`), in ngrok's shapes so that clients written
//! for ngrok's agent keep working: status, tunnels (v2 style), endpoints (v3 style), captured
//! requests and replay.
//!
//! # Layout
//! - This file: [`serve`] (accept loop, connection bound, shutdown), request checks (Host
//!   allow-list, content type, body size), routing, and the JSON documents.
//! - `hosts.rs`: the Host-header allow-list against DNS rebinding (`web_allow_hosts`).
//!
//! It owns no state: endpoints are read and changed through [`Control`], captures through the
//! [`Inspector`]. It must not start or stop anything itself, and must not serve a request whose
//! Host header is not allowed. There is no authentication (as with ngrok): the API listens on
//! loopback unless configured otherwise.
//!
//! # Errors
//! Every error answer is `{"error_code", "status_code", "msg", "details"}`, with the stable
//! codes of [`error_code`]. Choices where ngrok's behaviour is not documented:
//! - `POST /api/tunnels` with a duplicate name answers **400** with code 102 and details
//!   `{"err": "tunnel \"NAME\" already exists"}`, as ngrok's agent does (clients such as the
//!   Node package look for exactly that); `POST /api/endpoints` answers **409**.
//! - Replaying through an endpoint that is not running answers 404.
//! - `limit` above [`MAX_REQUEST_LIMIT`] is clamped; one that is not a number answers 400.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use warren::{Upstream, UpstreamScheme};

use crate::config::{EndpointConfig, UpstreamConfig};
use crate::control::{
    ControlError, EndpointCounters, EndpointState, EndpointStatus, SharedControl,
};
use crate::inspect::{self, Inspector, ReplayError};

mod hosts;

use hosts::AllowHosts;

/// Most connections served at once; further clients wait in the listen backlog.
pub const MAX_API_CONNECTIONS: usize = 64;

/// Largest request body accepted (413 beyond).
pub const MAX_API_BODY: usize = 1024 * 1024;

/// How long a client may take to send a request's headers.
pub const API_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request body.
pub const API_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`serve`] lets open connections finish after shutdown is asked for.
pub const API_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Captured requests listed when no `limit` is given.
pub const DEFAULT_REQUEST_LIMIT: usize = 50;

/// Most captured requests one list returns.
pub const MAX_REQUEST_LIMIT: usize = 1000;

/// The stable `error_code` values of error answers.
pub mod error_code {
    /// No such resource (route, tunnel, endpoint, captured request). 404.
    pub const NOT_FOUND: u32 = 100;
    /// The route exists but not with this method. 405.
    pub const METHOD_NOT_ALLOWED: u32 = 101;
    /// The body is not a valid definition (ngrok's "invalid tunnel configuration"). 400.
    pub const INVALID_CONFIG: u32 = 102;
    /// The body is not `application/json`. 415.
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 103;
    /// The body is larger than [`super::MAX_API_BODY`]. 413.
    pub const BODY_TOO_LARGE: u32 = 104;
    /// A tunnel or endpoint with that name exists already. 409 (400 for tunnels).
    pub const ALREADY_EXISTS: u32 = 105;
    /// The edge refused the endpoint; `details.code` holds its `ERR_NGROK_…` code. 502.
    pub const EDGE_REFUSED: u32 = 106;
    /// A replayed request could not reach the upstream. 502.
    pub const UPSTREAM_FAILED: u32 = 107;
    /// Request capture is off (`inspect_db_size: -1`). 400.
    pub const INSPECTION_DISABLED: u32 = 108;
    /// The captured request body was truncated and cannot be replayed. 400.
    pub const REPLAY_TRUNCATED: u32 = 109;
    /// The Host header is not allowed (`web_allow_hosts`). 403.
    pub const HOST_NOT_ALLOWED: u32 = 110;
    /// The request has no Host header. 400.
    pub const MISSING_HOST: u32 = 111;
    /// A query parameter is invalid. 400.
    pub const BAD_QUERY: u32 = 112;
    /// The body took longer than [`super::API_BODY_READ_TIMEOUT`] or broke off. 408 / 400.
    pub const BODY_READ_FAILED: u32 = 113;
    /// The agent is shutting down. 503.
    pub const SHUTTING_DOWN: u32 = 114;
}

/// Where the local API listens and which extra Host header values it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The listen address (`web_addr`).
    pub addr: SocketAddr,
    /// Extra Host header values (`web_allow_hosts`): host names, IP addresses, CIDR blocks, or
    /// `.example.com` for any subdomain.
    pub allow_hosts: Vec<String>,
}

/// Binds the API's listener.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the API on `listener` until `shutdown` completes, then lets open connections finish
/// their current request (up to [`API_SHUTDOWN_GRACE`]). `inspector` is `None` when request
/// capture is off. At most [`MAX_API_CONNECTIONS`] connections are served at once.
pub async fn serve(
    listener: TcpListener,
    control: SharedControl,
    inspector: Option<Arc<Inspector>>,
    allow_hosts: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let api = Arc::new(Api {
        control,
        inspector,
        hosts: AllowHosts::new(&allow_hosts),
    });
    let limit = Arc::new(Semaphore::new(MAX_API_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "agent API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let local_ip = match tcp.local_addr() {
            Ok(addr) => addr.ip(),
            Err(_) => continue,
        };
        let api = api.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(api.handle(local_ip, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(API_HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(API_SHUTDOWN_GRACE, conn.as_mut())
                        .await
                        .unwrap_or(Ok(()))
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "agent API connection ended with an error");
            }
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    drop(listener);
    let all = u32::try_from(MAX_API_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(API_SHUTDOWN_GRACE, limit.acquire_many(all)).await;
}

/// An error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u32,
    msg: String,
    details: Value,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            msg: msg.into(),
            details: json!({}),
        }
    }

    fn with_err(mut self, err: impl std::fmt::Display) -> ApiError {
        self.details = json!({ "err": err.to_string() });
        self
    }

    fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error_code::NOT_FOUND, what)
    }

    fn invalid(err: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            error_code::INVALID_CONFIG,
            "invalid tunnel configuration",
        )
        .with_err(err)
    }

    fn response(self) -> Response<Full<Bytes>> {
        let body = json!({
            "error_code": self.code,
            "status_code": self.status.as_u16(),
            "msg": self.msg,
            "details": self.details,
        });
        json_response(self.status, &body)
    }
}

/// Which collection a command came through: tunnels answer duplicates as ngrok does (400,
/// code 102), endpoints with 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Tunnels,
    Endpoints,
}

/// Maps a supervisor error.
fn control_error(e: ControlError, via: Via) -> ApiError {
    match e {
        ControlError::NotFound(_) => ApiError::not_found(e.to_string()),
        ControlError::AlreadyExists(name) => {
            let err = format!("tunnel {name:?} already exists");
            match via {
                Via::Tunnels => ApiError::invalid(err),
                Via::Endpoints => ApiError::new(
                    StatusCode::CONFLICT,
                    error_code::ALREADY_EXISTS,
                    format!("an endpoint named {name:?} already exists"),
                )
                .with_err(err),
            }
        }
        ControlError::Invalid(msg) => ApiError::invalid(msg),
        ControlError::Edge { message, code } => ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: error_code::EDGE_REFUSED,
            msg: "the edge refused the endpoint".into(),
            details: json!({ "err": message, "code": code }),
        },
        ControlError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error_code::SHUTTING_DOWN,
            "the agent is shutting down",
        ),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn no_content() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// A resource of the API, from the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Root,
    Status,
    Tunnels,
    Tunnel(String),
    Endpoints,
    Endpoint(String),
    Requests,
    Request(String),
}

impl Route {
    /// The route of a path (`/api/tunnels/web`); names are percent-decoded. A trailing slash
    /// is accepted.
    fn of(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/api")?;
        let rest = if rest.is_empty() {
            rest
        } else {
            rest.strip_prefix('/')?
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let segments: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let name = |s: &str| percent_decode(s).filter(|n| !n.is_empty() && !n.contains('/'));
        Some(match segments.as_slice() {
            [] => Route::Root,
            ["status"] => Route::Status,
            ["tunnels"] => Route::Tunnels,
            ["tunnels", n] => Route::Tunnel(name(n)?),
            ["endpoints"] => Route::Endpoints,
            ["endpoints", n] => Route::Endpoint(name(n)?),
            ["requests", "http"] => Route::Requests,
            ["requests", "http", id] => Route::Request(name(id)?),
            _ => return None,
        })
    }

    fn allowed(&self) -> &'static [Method] {
        match self {
            Route::Root | Route::Status | Route::Request(_) => &[Method::GET],
            Route::Tunnels | Route::Endpoints => &[Method::GET, Method::POST],
            Route::Tunnel(_) => &[Method::GET, Method::DELETE],
            Route::Endpoint(_) => &[Method::GET, Method::PUT, Method::DELETE],
            Route::Requests => &[Method::GET, Method::POST, Method::DELETE],
        }
    }
}

/// `%XX` decoding; `None` on a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The API's shared state.
struct Api {
    control: SharedControl,
    inspector: Option<Arc<Inspector>>,
    hosts: AllowHosts,
}

impl Api {
    async fn handle(&self, local_ip: IpAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match self.route(local_ip, req).await {
            Ok(resp) => resp,
            Err(e) => e.response(),
        }
    }

    async fn route(
        &self,
        local_ip: IpAddr,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let host = req
            .headers()
            .get(HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}"))
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let Some(host) = host else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                error_code::MISSING_HOST,
                "a Host header is required",
            ));
        };
        if !self.hosts.allows(host, local_ip) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                error_code::HOST_NOT_ALLOWED,
                "this Host header is not allowed; add it to web_allow_hosts to reach the agent API by that name",
            )
            .with_err(format!("host {host:?} is not allowed")));
        }
        let path = req.uri().path();
        let route = Route::of(path)
            .ok_or_else(|| ApiError::not_found(format!("no API resource at {path}")))?;
        let method = if req.method() == Method::HEAD {
            Method::GET
        } else {
            req.method().clone()
        };
        if !route.allowed().contains(&method) {
            let allow = route
                .allowed()
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut resp = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                error_code::METHOD_NOT_ALLOWED,
                format!("{method} is not supported here; use {allow}"),
            )
            .response();
            if let Ok(value) = HeaderValue::from_str(&allow) {
                resp.headers_mut().insert(ALLOW, value);
            }
            return Ok(resp);
        }
        match (route, method) {
            (Route::Root, _) => Ok(self.root()),
            (Route::Status, _) => Ok(self.status()),
            (Route::Tunnels, Method::GET) => Ok(self.tunnels()),
            (Route::Tunnels, _) => self.start_tunnel(json_body(req).await?).await,
            (Route::Tunnel(name), Method::GET) => self.tunnel(&name),
            (Route::Tunnel(name), _) => self.stop(&name).await,
            (Route::Endpoints, Method::GET) => Ok(self.endpoints()),
            (Route::Endpoints, _) => self.start_endpoint(json_body(req).await?).await,
            (Route::Endpoint(name), Method::GET) => self.endpoint(&name),
            (Route::Endpoint(name), Method::PUT) => {
                let body: Value = json_body(req).await?;
                self.put_endpoint(&name, body).await
            }
            (Route::Endpoint(name), _) => self.stop(&name).await,
            (Route::Requests, Method::GET) => self.requests(req.uri().query()),
            (Route::Requests, Method::POST) => self.replay(json_body(req).await?).await,
            (Route::Requests, _) => {
                if let Some(ring) = &self.inspector {
                    ring.clear();
                }
                Ok(no_content())
            }
            (Route::Request(id), _) => self.request(&id),
        }
    }

    fn root(&self) -> Response<Full<Bytes>> {
        json_response(
            StatusCode::OK,
            &json!({
                "uri": "/api/",
                "status": "/api/status",
                "tunnels": "/api/tunnels",
                "endpoints": "/api/endpoints",
                "requests": "/api/requests/http",
            }),
        )
    }

    fn status(&self) -> Response<Full<Bytes>> {
        let status = self.control.status();
        let legs = match (&status.state, status.latency) {
            (crate::control::SessionState::Online, latency) => json!([{
                "region": "local",
                "latency": latency.map(|l| format!("{}ms", l.as_millis())).unwrap_or_default(),
            }]),
            _ => json!([]),
        };
        json_response(
            StatusCode::OK,
            &json!({
                "status": status.state.as_str(),
                "agent_version": status.agent_version,
                "session": { "legs": legs },
                "uri": "/api/status",
            }),
        )
    }

    fn tunnels(&self) -> Response<Full<Bytes>> {
        let tunnels: Vec<Value> = self.control.endpoints().iter().map(tunnel_json).collect();
        json_response(
            StatusCode::OK,
            &json!({ "tunnels": tunnels, "uri": "/api/tunnels" }),
        )
    }

    fn tunnel(&self, name: &str) -> Result<Response<Full<Bytes>>, ApiError> {
        let status = self
            .control
            .endpoint(name)
            .ok_or_else(|| ApiError::not_found(format!("tunnel {name:?} not found")))?;
        Ok(json_response(StatusCode::OK, &tunnel_json(&status)))
    }

    async fn start_tunnel(&self, def: TunnelDefinition) -> Result<Response<Full<Bytes>>, ApiError> {
        let spec = def.into_endpoint().map_err(ApiError::invalid)?;
        let status = self
            .control
            .start(spec)
            .await
            .map_err(|e| control_error(e, Via::Tunnels))?;
        Ok(json_response(StatusCode::CREATED, &tunnel_json(&status)))
    }

    async fn stop(&self, name: &str) -> Result<Response<Full<Bytes>>, ApiError> {
        self.control
            .stop(name)
            .await
            .map_err(|e| control_error(e, Via::Endpoints))?;
        Ok(no_content())
    }

    fn endpoints(&self) -> Response<Full<Bytes>> {
        let endpoints: Vec<Value> = self
            .control
            .endpoints()
            .iter()
            .map(|s| endpoint_json(s, false))
            .collect();
        json_response(
            StatusCode::OK,
            &json!({ "endpoints": endpoints, "uri": "/api/endpoints" }),
        )
    }

    fn endpoint(&self, name: &str) -> Result<Response<Full<Bytes>>, ApiError> {
        let status = self
            .control
            .endpoint(name)
            .ok_or_else(|| ApiError::not_found(format!("endpoint {name:?} not found")))?;
        Ok(json_response(StatusCode::OK, &endpoint_json(&status, true)))
    }

    async fn start_endpoint(
        &self,
        spec: EndpointConfig,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        if spec.name.trim().is_empty() {
            return Err(ApiError::invalid("an endpoint needs a name"));
        }
        let status = self
            .control
            .start(spec)
            .await
            .map_err(|e| control_error(e, Via::Endpoints))?;
        Ok(json_response(
            StatusCode::CREATED,
            &endpoint_json(&status, false),
        ))
    }

    async fn put_endpoint(
        &self,
        name: &str,
        mut body: Value,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let Some(object) = body.as_object_mut() else {
            return Err(ApiError::invalid("the body must be a JSON object"));
        };
        match object.get("name") {
            None | Some(Value::Null) => {
                object.insert("name".into(), Value::String(name.to_owned()));
            }
            Some(Value::String(given)) if given.is_empty() => {
                object.insert("name".into(), Value::String(name.to_owned()));
            }
            Some(Value::String(given)) if given != name => {
                return Err(ApiError::invalid(format!(
                    "the body names endpoint {given:?} but the path names {name:?}"
                )));
            }
            _ => {}
        }
        let spec: EndpointConfig = serde_json::from_value(body).map_err(ApiError::invalid)?;
        let (existed, status) = self
            .control
            .replace(spec)
            .await
            .map_err(|e| control_error(e, Via::Endpoints))?;
        let code = if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json_response(code, &endpoint_json(&status, false)))
    }

    fn requests(&self, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
        let mut limit = DEFAULT_REQUEST_LIMIT;
        let mut tunnel_name = None;
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "limit" => {
                    limit = value.trim().parse::<usize>().map_err(|_| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            error_code::BAD_QUERY,
                            "limit must be a non-negative integer",
                        )
                        .with_err(format!("limit={value}"))
                    })?;
                }
                "tunnel_name" if !value.is_empty() => tunnel_name = Some(value.into_owned()),
                _ => {}
            }
        }
        let limit = limit.min(MAX_REQUEST_LIMIT);
        let requests: Vec<Value> = self
            .inspector
            .as_ref()
            .map(|ring| ring.list(limit, tunnel_name.as_deref()))
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_json())
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "uri": "/api/requests/http", "requests": requests }),
        ))
    }

    fn request(&self, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
        let capture = self
            .inspector
            .as_ref()
            .and_then(|ring| ring.get(id))
            .ok_or_else(|| ApiError::not_found(format!("no captured request with id {id:?}")))?;
        Ok(json_response(StatusCode::OK, &capture.to_json()))
    }

    async fn replay(&self, body: ReplayBody) -> Result<Response<Full<Bytes>>, ApiError> {
        let Some(ring) = &self.inspector else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                error_code::INSPECTION_DISABLED,
                "request inspection is disabled (inspect_db_size: -1), so there is nothing to replay",
            ));
        };
        inspect::replay(ring, &*self.control, &body.id, body.tunnel_name.as_deref())
            .await
            .map_err(|e| match e {
                ReplayError::NotFound(_) | ReplayError::NoEndpoint(_) => {
                    ApiError::not_found(e.to_string())
                }
                ReplayError::Truncated => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    error_code::REPLAY_TRUNCATED,
                    e.to_string(),
                ),
                ReplayError::Upstream(_) => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    error_code::UPSTREAM_FAILED,
                    "the replayed request failed",
                )
                .with_err(e),
            })?;
        Ok(no_content())
    }
}

/// Reads a JSON body: `application/json` only, at most [`MAX_API_BODY`] bytes, within
/// [`API_BODY_READ_TIMEOUT`].
async fn json_body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error_code::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON, with Content-Type: application/json",
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            error_code::BODY_TOO_LARGE,
            format!("the body is larger than {MAX_API_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_API_BODY as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), MAX_API_BODY).collect();
    let bytes = match tokio::time::timeout(API_BODY_READ_TIMEOUT, collect).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                error_code::BODY_READ_FAILED,
                "the body took too long to arrive",
            ));
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                error_code::BODY_READ_FAILED,
                "the body could not be read",
            )
            .with_err(e));
        }
        Ok(Ok(body)) => body.to_bytes(),
    };
    serde_json::from_slice(&bytes).map_err(ApiError::invalid)
}

/// `POST /api/requests/http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    id: String,
    #[serde(default)]
    tunnel_name: Option<String>,
}

/// A number or a string (`"addr": 8080` and `"addr": "8080"` both occur).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Number(u64),
}

impl StringOrNumber {
    fn into_string(self) -> String {
        match self {
            StringOrNumber::String(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        }
    }
}

/// `POST /api/tunnels`: a v2 tunnel definition (ngrok's config-file keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TunnelDefinition {
    #[serde(default)]
    name: Option<String>,
    proto: String,
    addr: StringOrNumber,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    subdomain: Option<String>,
    #[serde(default)]
    remote_addr: Option<String>,
    #[serde(default)]
    proxy_proto: Option<StringOrNumber>,
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default)]
    inspect: Option<bool>,
}

impl TunnelDefinition {
    /// The endpoint this definition means: the URL from `proto` and `domain`/`hostname` or
    /// `remote_addr`, the upstream from `addr`.
    fn into_endpoint(self) -> Result<EndpointConfig, String> {
        let name = self.name.unwrap_or_default().trim().to_owned();
        if name.is_empty() {
            return Err("a tunnel needs a name".into());
        }
        let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let domain = match (nonempty(self.domain), nonempty(self.hostname)) {
            (Some(d), Some(h)) if !d.eq_ignore_ascii_case(&h) => {
                return Err("give only one of domain and hostname".into());
            }
            (d, h) => d.or(h),
        };
        if nonempty(self.subdomain).is_some() {
            return Err(
                "subdomain is not supported by this agent; give the full name as domain".into(),
            );
        }
        let remote_addr = nonempty(self.remote_addr);
        let url = match self.proto.as_str() {
            "http" | "tls" => {
                if remote_addr.is_some() {
                    return Err(format!(
                        "remote_addr is only for tcp tunnels, not {}",
                        self.proto
                    ));
                }
                let scheme = if self.proto == "http" { "https" } else { "tls" };
                Some(format!("{scheme}://{}", domain.unwrap_or_default()))
            }
            "tcp" => {
                if domain.is_some() {
                    return Err(
                        "domain and hostname are not for tcp tunnels; use remote_addr".into(),
                    );
                }
                Some(format!("tcp://{}", remote_addr.unwrap_or_default()))
            }
            other => {
                return Err(format!("proto must be http, tcp or tls, not {other:?}"));
            }
        };
        let proxy_protocol = match self.proxy_proto.map(StringOrNumber::into_string) {
            None => None,
            Some(v) => match v.trim() {
                "" | "0" => None,
                "1" => Some(1),
                "2" => Some(2),
                other => return Err(format!("proxy_proto must be 1 or 2, not {other:?}")),
            },
        };
        Ok(EndpointConfig {
            name,
            url,
            upstream: UpstreamConfig {
                url: self.addr.into_string(),
                protocol: None,
                proxy_protocol,
            },
            metadata: self.metadata,
            inspect: self.inspect,
            ..EndpointConfig::default()
        })
    }
}

/// `{"count", "gauge", "rate1", …}` (rates and percentiles are not measured: zeros).
fn metrics_json(c: &EndpointCounters) -> Value {
    json!({
        "conns": {
            "count": c.conns_total,
            "gauge": c.conns_open,
            "rate1": 0, "rate5": 0, "rate15": 0,
            "p50": 0, "p90": 0, "p95": 0, "p99": 0,
        },
        "http": {
            "count": c.http_requests,
            "rate1": 0, "rate5": 0, "rate15": 0,
            "p50": 0, "p90": 0, "p95": 0, "p99": 0,
        },
    })
}

fn is_http(status: &EndpointStatus) -> bool {
    matches!(status.proto.as_str(), "http" | "https")
}

/// The upstream as the agent dials it (`http://localhost:8080`), or as written when unparsable.
fn upstream_addr(status: &EndpointStatus) -> String {
    let default = if is_http(status) {
        UpstreamScheme::Http
    } else {
        UpstreamScheme::Tcp
    };
    Upstream::parse(&status.config.upstream.url, default)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| status.config.upstream.url.clone())
}

fn inspect_on(status: &EndpointStatus) -> bool {
    is_http(status) && status.config.inspect.unwrap_or(true)
}

/// ngrok's Tunnel object.
fn tunnel_json(status: &EndpointStatus) -> Value {
    let name = &status.config.name;
    json!({
        "name": name,
        "uri": format!("/api/tunnels/{}", path_segment(name)),
        "public_url": status.public_url.clone().unwrap_or_default(),
        "proto": status.proto,
        "config": {
            "addr": upstream_addr(status),
            "inspect": inspect_on(status),
        },
        "metrics": metrics_json(&status.counters),
    })
}

/// ngrok's Endpoint object, with Warren's `id`, `state` and `error`.
fn endpoint_json(status: &EndpointStatus, with_metrics: bool) -> Value {
    let name = &status.config.name;
    let protocol = status.config.upstream.protocol.clone().unwrap_or_else(|| {
        if is_http(status) {
            "http1".into()
        } else {
            String::new()
        }
    });
    let (state, error) = match &status.state {
        EndpointState::Starting => ("starting", Value::Null),
        EndpointState::Online => ("online", Value::Null),
        EndpointState::Failed { message, code } => {
            ("failed", json!({ "msg": message, "code": code }))
        }
    };
    let mut value = json!({
        "name": name,
        "uri": format!("/api/endpoints/{}", path_segment(name)),
        "id": status.id.clone().unwrap_or_default(),
        "url": status.public_url.clone().unwrap_or_default(),
        "upstream": {
            "url": status.config.upstream.url,
            "protocol": protocol,
        },
        "inspect": inspect_on(status),
        "traffic_policy": status.config.traffic_policy.clone().unwrap_or_default(),
        "pooling_enabled": status.config.pooling_enabled,
        "state": state,
        "error": error,
    });
    if with_metrics && let Some(object) = value.as_object_mut() {
        object.insert("metrics".into(), metrics_json(&status.counters));
    }
    value
}

/// A name as a path segment (`%XX` for anything but unreserved characters).
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
