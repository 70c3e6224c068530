//! Agent connections: TLS, the mux session, heartbeats, Auth, then the RPC loop (Bind, Unbind,
//! and the refusals for RPCs Warren does not serve), and the commands the edge sends to agents.
//!
//! Credential changes reach live sessions here: a revoked credential (or a deactivated
//! service-user owner) closes its sessions at once and refuses Auths still in flight; a changed
//! ACL is swapped into each session and the endpoints it no longer permits are stopped. Auth
//! also refuses credentials whose service-user owner is inactive, and agents whose address an
//! enforced `agent` IP restriction refuses (ERR_NGROK_116); a changed restriction closes the
//! live sessions it now refuses.
//!
//! One task per agent connection accepts streams; each RPC runs in its own task so a slow Bind
//! never holds up heartbeats. Every first read is bounded by a size and a deadline: the TLS
//! handshake and Auth together by [`crate::config::AGENT_HANDSHAKE_TIMEOUT`], each RPC body by
//! [`RPC_READ_TIMEOUT`] and [`MAX_RPC_BODY`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;
use warren_mux::{ErrorCode, Stream};
use warren_proto::msg::{
    Auth, AuthResp, AuthRespExtra, Bind, CommandResp, PatchTunnelState, Restart, SrvInfo,
    SrvInfoResp, StartTunnelWithLabel, Stop, StopTunnel, Unbind, UnbindResp,
};
use warren_proto::{
    Command, ErrCode, MAX_RPC_BODY, Rpc, RpcReader, RpcResponse, encode_error, stream_type,
};

use warren_model::acl::Acl;

use crate::config::RPC_READ_TIMEOUT;
use crate::metrics::ConnectFailure;
use crate::routes::RouteKey;
use crate::tunnel::{Proto, Tunnel};
use crate::{CommandError, Edge};

/// Time an agent gets to answer a command (Stop, Restart, Update).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// After a refused Auth, how long the edge waits for the agent to hang up before closing.
const AUTH_FAILURE_LINGER: Duration = Duration::from_secs(2);
/// ngrok's code for an RPC on a session that has not authenticated (or an Auth without token).
const UNAUTHENTICATED_SESSION: ErrCode = ErrCode(4018);
/// After an ACL change, when the edge applies the stored rules once more, for Auths and Binds
/// that were in flight (past their store read or ACL check) when the rules changed.
const ACL_RESWEEP_DELAY: Duration = Duration::from_secs(2);
/// Longest ClientId an agent may ask to keep.
const MAX_CLIENT_ID_LEN: usize = 64;

/// What the agent said about itself in Auth.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentInfo {
    pub os: String,
    pub arch: String,
    pub version: String,
    pub client_type: String,
    pub user_agent: String,
    pub metadata: String,
}

/// One authenticated agent connection (a tunnel session, `ts_…`).
pub struct AgentSession {
    /// Tunnel session id.
    pub id: String,
    /// The `ClientId` given to the agent; it presents it again when it reconnects.
    pub client_id: String,
    /// The credential (`cr_…`) the agent authenticated with.
    pub credential_id: String,
    /// The credential's owner (a service user or user), if any.
    pub owner_id: Option<String>,
    /// The credential's ACL rules, checked on every Bind; replaced when the credential changes.
    pub(crate) acl: SessionAcl,
    /// The agent's address as seen by the edge.
    pub remote_addr: SocketAddr,
    /// The edge address the agent connected to.
    pub ingress_addr: SocketAddr,
    /// The server name the agent asked for in its TLS handshake (empty without SNI).
    pub ingress_hostname: String,
    pub started_at: OffsetDateTime,
    pub info: AgentInfo,
    pub(crate) mux: warren_mux::Session,
    pub(crate) tunnels: Mutex<HashMap<String, Arc<Tunnel>>>,
    /// The edge's heartbeat measurements, once the heartbeat runs.
    pub(crate) heartbeat: OnceLock<warren_mux::heartbeat::HeartbeatProbe>,
    /// Why the edge ended the session, set by whoever closes it before closing (the first
    /// writer wins); unset when the agent or the connection ended it.
    pub(crate) stop_reason: OnceLock<String>,
}

/// Why a session ended, as `agent_session_stop.v0` reports it in `error`.
pub mod stop_reason {
    /// The agent hung up (EOF or GOAWAY).
    pub const CLOSED_BY_AGENT: &str = "closed by agent";
    /// The agent stopped answering heartbeats.
    pub const HEARTBEAT_TIMEOUT: &str = "heartbeat timeout";
    /// The session's credential was deleted.
    pub const CREDENTIAL_REVOKED: &str = "credential revoked";
    /// The credential's service-user owner was deactivated.
    pub const OWNER_DEACTIVATED: &str = "owner deactivated";
    /// An `agent` IP restriction now refuses the agent's address.
    pub const AGENT_IP_RESTRICTED: &str = "agent IP restricted";
    /// The control plane disconnected the session.
    pub const STOPPED_BY_OPERATOR: &str = "stopped by operator";
    /// The same agent connected again, and this older session was dropped.
    pub const REPLACED: &str = "replaced by a new session of the same agent";
    /// The edge is shutting down.
    pub const EDGE_SHUTDOWN: &str = "edge shutdown";
    /// The edge closed the session for a reason not listed here.
    pub const CLOSED_BY_EDGE: &str = "closed by edge";
    /// Prefix of a transport failure (`connection lost: <io error>`).
    pub const CONNECTION_LOST: &str = "connection lost";
    /// Prefix of a protocol violation (`protocol error: <what>`).
    pub const PROTOCOL_ERROR: &str = "protocol error";
}

impl std::fmt::Debug for AgentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSession")
            .field("id", &self.id)
            .field("credential_id", &self.credential_id)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// A session's view of its credential's ACL. The control plane swaps it when the credential's
/// rules change; every Bind reads the current rules.
pub(crate) struct SessionAcl(arc_swap::ArcSwap<Acl>);

impl SessionAcl {
    pub(crate) fn new(acl: Acl) -> SessionAcl {
        SessionAcl(arc_swap::ArcSwap::from_pointee(acl))
    }

    /// Replaces the rules.
    fn replace(&self, acl: Acl) {
        self.0.store(Arc::new(acl));
    }

    /// The current rules.
    pub(crate) fn current(&self) -> Arc<Acl> {
        self.0.load_full()
    }

    /// [`Acl::permits_domain`] under the current rules.
    pub(crate) fn permits_domain(&self, pattern: &warren_model::DomainPattern) -> bool {
        self.0.load().permits_domain(pattern)
    }

    /// [`Acl::permits_addr`] under the current rules.
    pub(crate) fn permits_addr(&self, addr: &str) -> bool {
        self.0.load().permits_addr(addr)
    }

    /// [`Acl::permits_random_addr`] under the current rules.
    pub(crate) fn permits_random_addr(&self) -> bool {
        self.0.load().permits_random_addr()
    }
}

/// A command the edge can send to an agent.
#[derive(Clone, Debug)]
pub enum AgentCommand {
    Stop,
    Restart,
    Update {
        version: String,
        permit_major_version: bool,
    },
}

impl AgentSession {
    /// When the agent last answered a heartbeat probe.
    pub fn last_heartbeat_at(&self) -> Option<OffsetDateTime> {
        let at = self.heartbeat.get()?.last_echo_at()?;
        Some(OffsetDateTime::from(at))
    }

    /// Round-trip time of the last answered heartbeat probe.
    pub fn latency(&self) -> Option<std::time::Duration> {
        self.heartbeat.get()?.latency()
    }

    /// Why the edge ended (or is ending) this session, if it did.
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.get().map(String::as_str)
    }

    /// The tunnels this session has bound.
    pub fn tunnels(&self) -> Vec<Arc<Tunnel>> {
        self.tunnels
            .lock()
            .expect("tunnels lock")
            .values()
            .cloned()
            .collect()
    }

    /// One bound tunnel by id.
    pub fn tunnel(&self, id: &str) -> Option<Arc<Tunnel>> {
        self.tunnels.lock().expect("tunnels lock").get(id).cloned()
    }

    /// Closes the connection without ceremony (reported as stopped by the operator).
    pub fn close(&self) {
        self.close_because(stop_reason::STOPPED_BY_OPERATOR);
    }

    /// Records `reason` (unless a reason was recorded already) and closes the connection.
    pub fn close_because(&self, reason: &str) {
        let _ = self.stop_reason.set(reason.to_owned());
        self.mux.close();
    }

    /// Removes tunnel `id` from this session and from the route table.
    pub(crate) fn remove_tunnel(&self, edge: &Edge, id: &str) -> Option<Arc<Tunnel>> {
        let tunnel = self.tunnels.lock().expect("tunnels lock").remove(id)?;
        tunnel.retire(&edge.inner().routes);
        Some(tunnel)
    }

    /// Removes every tunnel of this session (the session has ended).
    fn remove_all(&self, edge: &Edge) {
        let tunnels: Vec<_> = self.tunnels.lock().expect("tunnels lock").drain().collect();
        for (_, tunnel) in tunnels {
            tunnel.retire(&edge.inner().routes);
        }
    }

    /// Sends StopTunnel for `tunnel_id` after removing its route.
    pub(crate) async fn stop_tunnel(
        &self,
        edge: &Edge,
        tunnel_id: &str,
        message: &str,
        error_code: Option<&str>,
    ) -> Result<(), CommandError> {
        self.remove_tunnel(edge, tunnel_id)
            .ok_or(CommandError::NotFound)?;
        self.send_stop_tunnel(tunnel_id, message, error_code).await
    }

    /// Tells the agent (StopTunnel) that tunnel `tunnel_id`, already removed, has stopped.
    async fn send_stop_tunnel(
        &self,
        tunnel_id: &str,
        message: &str,
        error_code: Option<&str>,
    ) -> Result<(), CommandError> {
        let body = StopTunnel {
            id: tunnel_id.to_owned(),
            message: message.to_owned(),
            error_code: error_code.map(str::to_owned),
        };
        let json = serde_json::to_vec(&body).expect("StopTunnel serializes");
        let mut stream = self
            .mux
            .open_typed(<StopTunnel as Command>::STREAM_TYPE, &json)
            .await
            .map_err(|e| CommandError::NoAnswer(e.to_string()))?;
        let _ = stream.shutdown().await;
        // The agent answers with a bare FIN; wait for it briefly so the notice is delivered.
        let mut sink = Vec::new();
        let _ = timeout(
            COMMAND_TIMEOUT,
            (&mut stream).take(4096).read_to_end(&mut sink),
        )
        .await;
        Ok(())
    }

    /// Sends a command and maps the agent's answer.
    pub async fn command(&self, command: AgentCommand) -> Result<(), CommandError> {
        match command {
            AgentCommand::Stop => self.send_command(&Stop::default()).await,
            AgentCommand::Restart => self.send_command(&Restart::default()).await,
            AgentCommand::Update {
                version,
                permit_major_version,
            } => {
                let update = warren_proto::msg::Update {
                    version,
                    permit_major_version,
                };
                self.send_command(&update).await
            }
        }
    }

    /// Opens the command's stream type, writes it, and reads the agent's [`CommandResp`].
    async fn send_command<C: Command<Response = CommandResp>>(
        &self,
        command: &C,
    ) -> Result<(), CommandError> {
        let json = serde_json::to_vec(command).expect("commands serialize");
        let mut stream = self
            .mux
            .open_typed(C::STREAM_TYPE, &json)
            .await
            .map_err(|e| CommandError::NoAnswer(e.to_string()))?;
        let mut answer = Vec::new();
        match timeout(
            COMMAND_TIMEOUT,
            (&mut stream)
                .take(MAX_RPC_BODY as u64)
                .read_to_end(&mut answer),
        )
        .await
        {
            Err(_) => return Err(CommandError::NoAnswer("timed out".into())),
            Ok(Err(e)) => return Err(CommandError::NoAnswer(e.to_string())),
            Ok(Ok(_)) => {}
        }
        let resp: CommandResp = serde_json::from_slice(&answer)
            .map_err(|e| CommandError::NoAnswer(format!("unreadable answer: {e}")))?;
        if resp.error.is_empty() {
            Ok(())
        } else {
            Err(CommandError::Refused(resp.error))
        }
    }
}

/// Accepts agent connections until the edge stops agents.
pub(crate) async fn serve(edge: Edge, listener: TcpListener) {
    let stop = edge.inner().agents_stop.clone();
    loop {
        let (tcp, remote) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "agent accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = edge.inner().agent_slots.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "agent session limit reached; connection refused");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let edge2 = edge.clone();
        edge.inner().agents.spawn(async move {
            handle(edge2, tcp, remote).await;
            drop(slot);
        });
    }
}

async fn handle(edge: Edge, tcp: TcpStream, remote: SocketAddr) {
    let metrics = edge.inner().metrics.clone();
    let deadline = Instant::now() + edge.config().agent_handshake_timeout;
    let local = tcp.local_addr().unwrap_or(remote);
    let acceptor = TlsAcceptor::from(edge.inner().agent_tls.clone());
    let tls = match timeout_at(deadline, acceptor.accept(crate::quickack::QuickAck(tcp))).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "agent TLS handshake failed");
            metrics.connect_failed(ConnectFailure::TlsHandshake);
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "agent TLS handshake timed out");
            metrics.connect_failed(ConnectFailure::HandshakeTimeout);
            return;
        }
    };
    let sni = tls.get_ref().1.server_name().unwrap_or_default().to_owned();
    let mux = warren_mux::Session::new(tls, warren_mux::Config::server());
    let addrs = crate::VisitorAddrs { remote, local };
    let session = match authenticate(&edge, &mux, addrs, sni, deadline).await {
        Ok(session) => session,
        Err(failure) => {
            metrics.connect_failed(failure);
            return;
        }
    };
    metrics.connected();
    tracing::info!(
        session = %session.id,
        credential = %session.credential_id,
        %remote,
        client = %session.info.user_agent,
        "agent session started"
    );
    emit_session_event(&edge, &session, None);
    let observer: warren_mux::heartbeat::RoundTripObserver = {
        let metrics = metrics.clone();
        Arc::new(move |rtt| metrics.heartbeat(rtt))
    };
    let heartbeat = warren_mux::heartbeat::start_observed(
        &mux,
        warren_mux::heartbeat::HeartbeatConfig {
            interval: edge.config().heartbeat_interval,
            tolerance: edge.config().heartbeat_tolerance,
        },
        Some(observer),
    );
    let _ = session.heartbeat.set(heartbeat.probe());
    let stop = edge.inner().agents_stop.clone();
    loop {
        let (ty, stream) = tokio::select! {
            _ = stop.cancelled() => {
                let _ = session.stop_reason.set(stop_reason::EDGE_SHUTDOWN.to_owned());
                mux.go_away(ErrorCode::NoError, "edge shutting down");
                break;
            }
            accepted = mux.accept_typed() => match accepted {
                Ok(pair) => pair,
                Err(_) => break,
            },
        };
        let edge = edge.clone();
        let session = session.clone();
        tokio::spawn(async move { dispatch(&edge, &session, ty, stream).await });
    }
    drop(heartbeat);
    let ended = mux.closed().await;
    session.remove_all(&edge);
    unregister(&edge, &session);
    let reason = match session.stop_reason.get() {
        Some(recorded) => recorded.clone(),
        None => stop_reason_of(&ended, edge.inner().agents_stop.is_cancelled()),
    };
    tracing::info!(session = %session.id, %ended, %reason, "agent session ended");
    emit_session_event(&edge, &session, Some(&reason));
}

/// The stop reason for a session the edge did not close on purpose, from how its mux ended.
fn stop_reason_of(ended: &warren_mux::Error, shutting_down: bool) -> String {
    use warren_mux::Error;
    match ended {
        Error::PeerEof | Error::RemoteGoneAway { .. } => stop_reason::CLOSED_BY_AGENT.into(),
        Error::HeartbeatTimeout => stop_reason::HEARTBEAT_TIMEOUT.into(),
        Error::Protocol(what) => format!("{}: {what}", stop_reason::PROTOCOL_ERROR),
        Error::Io(error) => format!("{}: {error}", stop_reason::CONNECTION_LOST),
        Error::SessionClosed if shutting_down => stop_reason::EDGE_SHUTDOWN.into(),
        Error::SessionClosed => stop_reason::CLOSED_BY_EDGE.into(),
        other => format!("{}: {other}", stop_reason::PROTOCOL_ERROR),
    }
}

/// Emits `agent_session_start.v0` (`stopped` is `None`) or `agent_session_stop.v0` with the
/// stop reason, when anything wants it.
fn emit_session_event(edge: &Edge, session: &AgentSession, stopped: Option<&str>) {
    let Some(events) = edge.events() else {
        return;
    };
    let ty = match stopped {
        None => warren_events::types::AGENT_SESSION_START,
        Some(_) => warren_events::types::AGENT_SESSION_STOP,
    };
    if !events.wants(ty) {
        return;
    }
    // The same clock as `started_at` (set at Auth), so a stop never precedes its start.
    let stopped_at = stopped.map(|_| OffsetDateTime::now_utc());
    let object = crate::event_objects::agent_session(events, session, stopped_at, stopped);
    events.emit(ty, None, object);
}

/// Serves one stream the agent opened after Auth. Each RPC is answered with the response type
/// its request type names ([`Rpc::Response`]), so a request and its answer cannot drift apart.
async fn dispatch(edge: &Edge, session: &Arc<AgentSession>, ty: u32, stream: Stream) {
    match ty {
        stream_type::HEARTBEAT => warren_mux::heartbeat::echo(stream).await,
        <Bind as Rpc>::STREAM_TYPE => {
            serve_rpc(stream, |bind: Bind| crate::bind::bind(edge, session, bind)).await
        }
        <Unbind as Rpc>::STREAM_TYPE => {
            serve_rpc(stream, |unbind: Unbind| async move {
                if session.remove_tunnel(edge, &unbind.id).is_some() {
                    tracing::info!(session = %session.id, tunnel = %unbind.id, "tunnel unbound");
                }
                UnbindResp::default()
            })
            .await
        }
        <SrvInfo as Rpc>::STREAM_TYPE => {
            serve_rpc(stream, |_: SrvInfo| async {
                SrvInfoResp {
                    region: crate::REGION.into(),
                    error: String::new(),
                }
            })
            .await
        }
        <Auth as Rpc>::STREAM_TYPE => {
            refuse::<Auth>(
                stream,
                "the session is already authenticated",
                ErrCode::MALFORMED_REQUEST,
            )
            .await
        }
        <StartTunnelWithLabel as Rpc>::STREAM_TYPE => {
            refuse::<StartTunnelWithLabel>(
                stream,
                "labeled tunnels (edges) are not supported by this Warren edge; bind an endpoint with a URL instead",
                ErrCode::LABELED_TUNNELS_UNSUPPORTED,
            )
            .await
        }
        <PatchTunnelState as Rpc>::STREAM_TYPE => {
            refuse::<PatchTunnelState>(
                stream,
                "updating a tunnel's state in place is not supported; unbind and bind again",
                ErrCode::NOT_IMPLEMENTED,
            )
            .await
        }
        other => {
            tracing::debug!(session = %session.id, stream_type = other, "unknown stream type refused");
            stream.reset(ErrorCode::StreamRefused);
        }
    }
}

/// Serves one RPC of type `R`: reads the request (bounded), answers with what `handle` returns.
async fn serve_rpc<R, F, Fut>(mut stream: Stream, handle: F)
where
    R: Rpc,
    F: FnOnce(R) -> Fut,
    Fut: std::future::Future<Output = R::Response>,
{
    match read_rpc::<R>(&mut stream).await {
        Ok(request) => {
            let response = handle(request).await;
            reply(stream, &response).await;
        }
        Err(error) => refuse::<R>(stream, &error.to_string(), ErrCode::MALFORMED_REQUEST).await,
    }
}

/// Accepts streams until Auth succeeds (heartbeats are echoed meanwhile). Fails, with the
/// reason for the metrics, when the agent does not authenticate before `deadline`, after
/// telling it why. `addrs.local` is the edge address the agent reached, `sni` the name it
/// asked for.
async fn authenticate(
    edge: &Edge,
    mux: &warren_mux::Session,
    addrs: crate::VisitorAddrs,
    sni: String,
    deadline: Instant,
) -> Result<Arc<AgentSession>, ConnectFailure> {
    let remote = addrs.remote;
    loop {
        let (ty, mut stream) = match timeout_at(deadline, mux.accept_typed()).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(_)) => return Err(ConnectFailure::Disconnected),
            Err(_) => {
                tracing::debug!(%remote, "agent did not authenticate in time");
                mux.close();
                return Err(ConnectFailure::HandshakeTimeout);
            }
        };
        match ty {
            stream_type::HEARTBEAT => {
                tokio::spawn(warren_mux::heartbeat::echo(stream));
            }
            <Auth as Rpc>::STREAM_TYPE => {
                let auth = timeout_at(deadline, read_rpc::<Auth>(&mut stream)).await;
                let auth = match auth {
                    Ok(Ok(auth)) => auth,
                    Ok(Err(error)) => {
                        refuse::<Auth>(stream, &error.to_string(), ErrCode::MALFORMED_REQUEST)
                            .await;
                        linger_and_close(mux).await;
                        return Err(ConnectFailure::AuthMalformed);
                    }
                    Err(_) => {
                        mux.close();
                        return Err(ConnectFailure::HandshakeTimeout);
                    }
                };
                match admit(edge, mux, addrs, &sni, &auth).await {
                    Ok(session) => {
                        let resp = AuthResp {
                            version: "3".into(),
                            client_id: session.client_id.clone(),
                            error: String::new(),
                            extra: AuthRespExtra {
                                version: env!("CARGO_PKG_VERSION").into(),
                                region: crate::REGION.into(),
                                cookie: session.id.clone(),
                                account_name: String::new(),
                                ..Default::default()
                            },
                        };
                        reply(stream, &resp).await;
                        return Ok(session);
                    }
                    Err((failure, error)) => {
                        tracing::info!(%remote, %error, "agent authentication refused");
                        let resp = AuthResp {
                            error,
                            ..Default::default()
                        };
                        reply(stream, &resp).await;
                        linger_and_close(mux).await;
                        return Err(failure);
                    }
                }
            }
            _ => {
                refuse_untyped(
                    stream,
                    "the session is not authenticated: send Auth first",
                    UNAUTHENTICATED_SESSION,
                )
                .await
            }
        }
    }
}

/// Checks the authtoken, builds the session and registers it (replacing stale sessions of the same
/// agent, within the per-credential limit). The error is the reason for the metrics and the
/// wire text for `AuthResp.Error`.
async fn admit(
    edge: &Edge,
    mux: &warren_mux::Session,
    addrs: crate::VisitorAddrs,
    sni: &str,
    auth: &Auth,
) -> Result<Arc<AgentSession>, (ConnectFailure, String)> {
    let remote = addrs.remote;
    match edge
        .ip_admitted(crate::ip_restrictions::RestrictionKind::Agent, remote.ip())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                ConnectFailure::IpRestricted,
                encode_error(
                    &format!(
                        "The agent's IP address {} is not allowed by the `agent` IP restrictions of this edge.",
                        remote.ip().to_canonical()
                    ),
                    ErrCode::AGENT_IP_RESTRICTED,
                ),
            ));
        }
        Err(error) => {
            tracing::error!(%error, "IP restriction lookup failed");
            return Err((
                ConnectFailure::Internal,
                encode_error(
                    "The edge could not check its IP restrictions; try again later.",
                    ErrCode::INTERNAL,
                ),
            ));
        }
    }
    let token = auth.extra.auth_token.trim();
    if token.is_empty() {
        return Err((
            ConnectFailure::AuthMissing,
            encode_error(
                "The authentication you specified is missing: configure an authtoken for this agent.",
                UNAUTHENTICATED_SESSION,
            ),
        ));
    }
    if !warren_model::token::looks_like_token(token) {
        return Err((
            ConnectFailure::AuthMalformed,
            encode_error(
                "The authtoken you specified is not properly formed.",
                ErrCode::AUTHTOKEN_MALFORMED,
            ),
        ));
    }
    let credential = match edge.store().credential_by_token(token).await {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            return Err((
                ConnectFailure::AuthInvalid,
                encode_error(
                    "The authtoken you specified does not look like a valid Warren authtoken: it is unknown or has been revoked.",
                    ErrCode::AUTHTOKEN_INVALID,
                ),
            ));
        }
        Err(error) => {
            tracing::error!(%error, "credential lookup failed");
            return Err((
                ConnectFailure::Internal,
                encode_error(
                    "The edge could not check the authtoken; try again later.",
                    ErrCode::INTERNAL,
                ),
            ));
        }
    };
    if let Some(owner) = credential.owner_id.as_deref() {
        check_owner_active(edge, owner).await?;
    }
    let acl = Acl::parse(&credential.acl).map_err(|e| {
        (
            ConnectFailure::AuthInvalid,
            encode_error(
                &format!("The credential's ACL is invalid: {e}"),
                ErrCode::AUTHTOKEN_INVALID,
            ),
        )
    })?;
    let now = OffsetDateTime::now_utc();
    let id = new_id(warren_model::IdPrefix::TunnelSession, now);
    // An agent that reconnects keeps its ClientId, and a stale session of the same credential with
    // that id is replaced: its connection is gone even if TCP has not noticed yet.
    let wanted = auth.client_id.trim();
    let keep = !wanted.is_empty()
        && wanted.len() <= MAX_CLIENT_ID_LEN
        && wanted
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let client_id = if keep { wanted.to_owned() } else { id.clone() };
    let extra = &auth.extra;
    let session = Arc::new(AgentSession {
        id,
        client_id,
        credential_id: credential.id,
        owner_id: credential.owner_id,
        acl: SessionAcl::new(acl),
        remote_addr: remote,
        ingress_addr: addrs.local,
        ingress_hostname: sni.to_owned(),
        started_at: now,
        info: AgentInfo {
            os: extra.os.clone(),
            arch: extra.arch.clone(),
            version: extra.version.clone(),
            client_type: extra.client_type.clone(),
            user_agent: extra.user_agent.clone(),
            metadata: extra.metadata.clone(),
        },
        mux: mux.clone(),
        tunnels: Mutex::new(HashMap::new()),
        heartbeat: OnceLock::new(),
        stop_reason: OnceLock::new(),
    });
    let mut registry = edge.inner().sessions.lock().expect("sessions lock");
    if keep {
        for stale in registry.same_agent(&session.credential_id, &session.client_id) {
            tracing::info!(session = %stale.id, "replacing stale session of a reconnecting agent");
            registry.remove(&stale);
            stale.remove_all(edge);
            stale.close_because(stop_reason::REPLACED);
        }
    }
    registry
        .insert(session.clone(), edge.config().max_sessions_per_credential)
        .map_err(|refused| match refused {
            crate::registry::Refused::Full { limit } => (ConnectFailure::SessionLimit, encode_error(
                &format!(
                    "Your authtoken already has {limit} agent sessions online, the most this edge allows per credential."
                ),
                ErrCode::TOO_MANY_AGENT_SESSIONS,
            )),
            crate::registry::Refused::Revoked => (ConnectFailure::Revoked, encode_error(
                "The authtoken you specified has been revoked.",
                ErrCode::CREDENTIAL_REVOKED,
            )),
        })?;
    Ok(session)
}

/// Refuses Auth when the credential's owner is a service user that is inactive. Owners that
/// are not service users (or no longer exist) do not block.
async fn check_owner_active(edge: &Edge, owner_id: &str) -> Result<(), (ConnectFailure, String)> {
    if !owner_id.starts_with("service_") {
        return Ok(());
    }
    match edge.store().service_user(owner_id).await {
        Ok(Some(user)) if !user.active => Err((
            ConnectFailure::OwnerInactive,
            encode_error(
                "The authtoken you specified belongs to a service user that is not active.",
                ErrCode::AUTHTOKEN_INVALID,
            ),
        )),
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::error!(%error, "service user lookup failed");
            Err((
                ConnectFailure::Internal,
                encode_error(
                    "The edge could not check the authtoken; try again later.",
                    ErrCode::INTERNAL,
                ),
            ))
        }
    }
}

/// Ends every live session of `credential_id` (deleted: revoked) and takes its routes down
/// at once; sessions that are still authenticating with it are refused. Returns how many
/// sessions were closed.
pub(crate) fn revoke_credential(edge: &Edge, credential_id: &str) -> usize {
    let sessions = {
        let mut registry = edge.inner().sessions.lock().expect("sessions lock");
        registry.revoke(credential_id);
        let sessions = registry.of_credential(credential_id);
        for session in &sessions {
            registry.remove(session);
        }
        sessions
    };
    end_sessions(edge, &sessions, stop_reason::CREDENTIAL_REVOKED);
    sessions.len()
}

/// Ends every live session whose credential `owner_id` owns, and refuses new ones until
/// [`owner_reactivated`]. Returns how many sessions were closed.
pub(crate) fn owner_deactivated(edge: &Edge, owner_id: &str) -> usize {
    let sessions = {
        let mut registry = edge.inner().sessions.lock().expect("sessions lock");
        registry.revoke(owner_id);
        let sessions = registry.of_owner(owner_id);
        for session in &sessions {
            registry.remove(session);
        }
        sessions
    };
    end_sessions(edge, &sessions, stop_reason::OWNER_DEACTIVATED);
    sessions.len()
}

/// Lets credentials of `owner_id` authenticate again (the store already says it is active).
pub(crate) fn owner_reactivated(edge: &Edge, owner_id: &str) {
    edge.inner()
        .sessions
        .lock()
        .expect("sessions lock")
        .unrevoke(owner_id);
}

/// Ends every live session whose address the current `agent` IP restrictions refuse (they just
/// changed) and takes its routes down. Returns how many sessions were closed.
pub(crate) fn close_ip_restricted(edge: &Edge) -> usize {
    let snapshot = edge.inner().ip_restrictions.snapshot();
    let sessions = {
        let mut registry = edge.inner().sessions.lock().expect("sessions lock");
        let refused: Vec<Arc<AgentSession>> = registry
            .all()
            .into_iter()
            .filter(|s| {
                !crate::ip_restrictions::admits(
                    &snapshot,
                    crate::ip_restrictions::RestrictionKind::Agent,
                    s.remote_addr.ip(),
                )
            })
            .collect();
        for session in &refused {
            registry.remove(session);
        }
        refused
    };
    end_sessions(edge, &sessions, stop_reason::AGENT_IP_RESTRICTED);
    sessions.len()
}

fn end_sessions(edge: &Edge, sessions: &[Arc<AgentSession>], why: &str) {
    for session in sessions {
        tracing::info!(session = %session.id, credential = %session.credential_id, why, "closing agent session");
        session.remove_all(edge);
        session.close_because(why);
    }
}

/// Applies new ACL `rules` of `credential_id` to its live sessions: later Binds see them, and
/// every bound endpoint they no longer permit is stopped (StopTunnel with ERR_NGROK_316, or
/// ERR_NGROK_308 for TCP addresses). Returns the ids of the tunnels stopped.
pub(crate) fn credential_acl_changed(
    edge: &Edge,
    credential_id: &str,
    rules: &[String],
) -> Vec<String> {
    let stopped = apply_acl(edge, credential_id, rules);
    // An Auth that read the old rules, or a Bind that checked them, may still be finishing:
    // apply the stored rules (the latest, should another change have come since) once more.
    let edge = edge.clone();
    let credential_id = credential_id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(ACL_RESWEEP_DELAY).await;
        match edge.store().credential(&credential_id).await {
            Ok(Some(credential)) => {
                apply_acl(&edge, &credential_id, &credential.acl);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, credential = %credential_id, "ACL re-check failed")
            }
        }
    });
    stopped
}

/// Gives the live sessions of `credential_id` the ACL `rules` and stops what they deny.
fn apply_acl(edge: &Edge, credential_id: &str, rules: &[String]) -> Vec<String> {
    let acl = match Acl::parse(rules) {
        Ok(acl) => acl,
        Err(error) => {
            // The API validates before writing; a bad list here fails closed.
            tracing::error!(%error, credential = %credential_id, "invalid ACL applied; revoking");
            revoke_credential(edge, credential_id);
            return Vec::new();
        }
    };
    let sessions = edge
        .inner()
        .sessions
        .lock()
        .expect("sessions lock")
        .of_credential(credential_id);
    let mut stopped = Vec::new();
    for session in &sessions {
        session.acl.replace(acl.clone());
        stopped.extend(stop_denied_tunnels(edge, session));
    }
    stopped
}

/// Stops every tunnel of `session` that its current ACL no longer permits: its route goes
/// now, and the agent is told (StopTunnel) in the background so a slow agent cannot hold up the
/// caller.
pub(crate) fn stop_denied_tunnels(edge: &Edge, session: &Arc<AgentSession>) -> Vec<String> {
    let acl = session.acl.current();
    let domain = &edge.config().domain;
    let mut stopped = Vec::new();
    for tunnel in session.tunnels() {
        let (permitted, what, code) = match &tunnel.key {
            RouteKey::Host(name) => (
                warren_model::DomainPattern::parse(name).is_ok_and(|p| acl.permits_domain(&p)),
                format!("Name: {name}"),
                ErrCode::ACL_NAME_DENIED,
            ),
            RouteKey::Port(port) => {
                let address = format!("{domain}:{port}");
                (
                    acl.permits_addr(&address),
                    format!("Address: {address}"),
                    ErrCode::ACL_ADDRESS_DENIED,
                )
            }
        };
        if permitted || session.remove_tunnel(edge, &tunnel.id).is_none() {
            continue;
        }
        let kind = if tunnel.proto == Proto::Tcp {
            "address"
        } else {
            "name"
        };
        let message = format!(
            "The credential ACL policy no longer permits binding this {kind}.\nCredential ID: {}\n{what}",
            session.credential_id
        );
        tracing::info!(session = %session.id, tunnel = %tunnel.id, %what, "ACL change stops tunnel");
        let session = session.clone();
        let id = tunnel.id.clone();
        tokio::spawn(async move {
            let code = code.to_string();
            if let Err(error) = session.send_stop_tunnel(&id, &message, Some(&code)).await {
                tracing::debug!(tunnel = %id, %error, "StopTunnel not delivered");
            }
        });
        stopped.push(tunnel.id.clone());
    }
    stopped
}

fn unregister(edge: &Edge, session: &Arc<AgentSession>) {
    edge.inner()
        .sessions
        .lock()
        .expect("sessions lock")
        .remove(session);
}

/// A fresh time-ordered id with `prefix`.
pub(crate) fn new_id(prefix: warren_model::IdPrefix, now: OffsetDateTime) -> String {
    warren_model::ids::new_id(
        prefix,
        now.unix_timestamp().max(0) as u64,
        &mut rand::thread_rng(),
    )
}

/// Why an RPC body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RpcError {
    #[error("the RPC body did not arrive within {0:?}")]
    Timeout(Duration),
    #[error("the stream ended before a complete RPC body arrived")]
    Eof,
    #[error("reading the RPC body failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid RPC body: {0}")]
    Invalid(String),
}

/// Reads one JSON request: no length prefix, no newline, no FIN — the value itself says where it
/// ends. Bounded by [`MAX_RPC_BODY`] and [`RPC_READ_TIMEOUT`].
pub(crate) async fn read_rpc<T: DeserializeOwned>(stream: &mut Stream) -> Result<T, RpcError> {
    let read = async {
        let mut reader = RpcReader::with_limit(MAX_RPC_BODY);
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(RpcError::Eof);
            }
            if let Some(value) = reader
                .push(&buf[..n])
                .map_err(|e| RpcError::Invalid(e.to_string()))?
            {
                return serde_json::from_value(value).map_err(|e| RpcError::Invalid(e.to_string()));
            }
        }
    };
    timeout(RPC_READ_TIMEOUT, read)
        .await
        .map_err(|_| RpcError::Timeout(RPC_READ_TIMEOUT))?
}

/// Writes one JSON response and half-closes the stream. The agent may not have finished sending
/// (a refused request is answered before it is read), so the rest of its input is drained in the
/// background, bounded in bytes and time, until it closes its side: dropping the stream with
/// unread input would reset it and discard the answer.
pub(crate) async fn reply<T: Serialize>(mut stream: Stream, value: &T) {
    let json = serde_json::to_vec(value).expect("responses serialize");
    let sent = timeout(RPC_READ_TIMEOUT, async {
        stream.write_all(&json).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let mut rest = (&mut stream).take(2 * MAX_RPC_BODY as u64);
            let _ = timeout(RPC_READ_TIMEOUT, tokio::io::copy(&mut rest, &mut sink)).await;
        });
    }
}

/// Refuses an RPC of type `R` with its own response type carrying `message` and `code`.
async fn refuse<R: Rpc>(stream: Stream, message: &str, code: ErrCode) {
    reply(stream, &R::Response::failure(encode_error(message, code))).await;
}

/// Refuses a stream whose request type is not served yet (before Auth) with a bare
/// `{"Error": "...\n\nERR_NGROK_nnn"}`, which every response type reads as a failure.
async fn refuse_untyped(stream: Stream, message: &str, code: ErrCode) {
    #[derive(Serialize)]
    struct ErrorBody {
        #[serde(rename = "Error")]
        error: String,
    }
    let body = ErrorBody {
        error: encode_error(message, code),
    };
    reply(stream, &body).await;
}

async fn linger_and_close(mux: &warren_mux::Session) {
    let _ = timeout(AUTH_FAILURE_LINGER, mux.closed()).await;
    mux.close();
}
