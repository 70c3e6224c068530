//! The session to the edge: connect (TCP → TLS → mux → heartbeat → Auth), serve the streams the
//! edge opens (visitor connections, heartbeats, commands), and reconnect forever with backoff,
//! binding every endpoint again with its old id and token so each keeps its URL.
//!
//! # Lifecycle
//! One background task (the *driver*) owns the connection loop. Each successful connect is a
//! *generation*; [`Live`] holds the current generation's mux session. Endpoints live in the
//! registry independently of generations: `listen` registers a slot and binds it on the current
//! generation, and every new generation binds every slot again. A per-slot lock and the
//! generation number make a `listen` that races a reconnect bind exactly once.
//!
//! The driver gives up only when the application closes the session or the edge says the
//! credential is invalid ([`ConnectError::is_fatal`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsConnector;
use warren_mux::heartbeat::{self, HEARTBEAT_TYPE, HeartbeatConfig};
use warren_mux::{ErrorCode, Stream};
use warren_proto::msg::{
    Auth, AuthExtra, Bind, BindExtra, CommandResp, ProxyHeader, StopTunnel, Unbind, Update,
};
use warren_proto::{Rpc, RpcReader, RpcResponse, stream_type};

use crate::backoff::Backoff;
use crate::endpoint::{BindSpec, HttpEndpointBuilder, TcpEndpointBuilder, TlsEndpointBuilder};
use crate::error::{ConnectError, EdgeError, ListenError, ListenerClosed};
use crate::listener::{Bound, Conn, LISTENER_BACKLOG, Listener, Slot};
use crate::tls;

/// Default edge address: a `warrend` with its embedded defaults on this machine.
pub const DEFAULT_SERVER_ADDR: &str = "localhost:4443";

/// Default deadline for TCP connect + TLS handshake + authentication.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline for one RPC (bind, unbind) on a live session.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Deadline for the edge to finish a proxy header or a command body on a stream it opened.
pub const STREAM_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest edge → agent command body read.
pub const MAX_COMMAND_BODY: usize = 16 * 1024;

/// The reply an agent sends for a command it has no handler for (the official SDKs' text).
pub const NO_HANDLER: &str = "the agent has not defined a callback for this operation";

/// Where the session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// First connect in progress.
    Connecting,
    /// Authenticated; endpoints are served.
    Online,
    /// The connection dropped or an attempt failed; retrying with backoff.
    Reconnecting {
        /// Why the connection or the last attempt failed.
        last_error: String,
    },
    /// Closed for good.
    Closed {
        /// Why.
        reason: String,
    },
}

impl SessionState {
    /// `connecting`, `online`, `reconnecting`, `closed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Online => "online",
            SessionState::Reconnecting { .. } => "reconnecting",
            SessionState::Closed { .. } => "closed",
        }
    }
}

/// An edge → agent command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    /// Stop the agent.
    Stop,
    /// Restart the agent.
    Restart,
    /// Update the agent.
    Update {
        /// Target version (`""` = latest).
        version: String,
        /// Whether a major-version jump is allowed.
        permit_major_version: bool,
    },
}

/// Handles one edge command; `Err(text)` is sent back to the edge as the refusal.
pub type CommandHandler =
    Arc<dyn Fn(AgentCommand) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Builds a [`Session`]. Get one from [`Session::builder`].
#[derive(Clone)]
pub struct SessionBuilder {
    server_addr: String,
    ca_pem: Option<Vec<u8>>,
    root_cas: Option<String>,
    tls_config: Option<Arc<ClientConfig>>,
    authtoken: String,
    metadata: String,
    heartbeat: HeartbeatConfig,
    connect_timeout: Duration,
    client_info: Vec<String>,
    backoff: Backoff,
    on_stop: Option<CommandHandler>,
    on_restart: Option<CommandHandler>,
    on_update: Option<CommandHandler>,
}

impl std::fmt::Debug for SessionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("server_addr", &self.server_addr)
            .field(
                "authtoken",
                &if self.authtoken.is_empty() {
                    ""
                } else {
                    "<hidden>"
                },
            )
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl Default for SessionBuilder {
    fn default() -> Self {
        SessionBuilder {
            server_addr: DEFAULT_SERVER_ADDR.to_owned(),
            ca_pem: None,
            root_cas: None,
            tls_config: None,
            authtoken: String::new(),
            metadata: String::new(),
            heartbeat: HeartbeatConfig::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            client_info: Vec::new(),
            backoff: Backoff::default(),
            on_stop: None,
            on_restart: None,
            on_update: None,
        }
    }
}

fn handler<F, Fut>(f: F) -> CommandHandler
where
    F: Fn(AgentCommand) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |cmd| Box::pin(f(cmd)))
}

impl SessionBuilder {
    /// The edge's agent address, `host:port` (default [`DEFAULT_SERVER_ADDR`]). The host is
    /// also the TLS name checked against the edge's certificate.
    pub fn server_addr(mut self, addr: impl Into<String>) -> Self {
        self.server_addr = addr.into();
        self
    }

    /// Trust exactly these CA certificates (PEM, one or more) for the edge.
    pub fn ca_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// `host` or `trusted`: the system trust store; anything else: a PEM file path.
    pub fn root_cas(mut self, roots: impl Into<String>) -> Self {
        self.root_cas = Some(roots.into());
        self
    }

    /// A complete rustls client config for the edge (overrides [`ca_cert`](Self::ca_cert) and
    /// [`root_cas`](Self::root_cas)).
    pub fn tls_config(mut self, config: ClientConfig) -> Self {
        self.tls_config = Some(Arc::new(config));
        self
    }

    /// The authtoken.
    pub fn authtoken(mut self, token: impl Into<String>) -> Self {
        self.authtoken = token.into();
        self
    }

    /// The authtoken from `WARREN_AUTHTOKEN`, else `NGROK_AUTHTOKEN` (unchanged if neither is set).
    pub fn authtoken_from_env(mut self) -> Self {
        if let Some(t) = ["WARREN_AUTHTOKEN", "NGROK_AUTHTOKEN"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        {
            self.authtoken = t;
        }
        self
    }

    /// Session metadata, shown by the edge's API.
    pub fn metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }

    /// Time between heartbeats (default 10 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat.interval = interval;
        self
    }

    /// How long an unanswered heartbeat may take before the connection counts as dead and is
    /// replaced (default 15 s).
    pub fn heartbeat_tolerance(mut self, tolerance: Duration) -> Self {
        self.heartbeat.tolerance = tolerance;
        self
    }

    /// Deadline for TCP connect + TLS + authentication (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Identifies the application in the edge's view of the agent (`type/version (comment)`),
    /// most specific first.
    pub fn client_info(mut self, client_type: &str, version: &str, comment: Option<&str>) -> Self {
        let mut entry = format!("{client_type}/{version}");
        if let Some(c) = comment {
            entry.push_str(&format!(" ({c})"));
        }
        self.client_info.push(entry);
        self
    }

    /// Reconnect backoff (default: 500 ms doubling to 30 s, with jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Handles the edge's Stop command. Without a handler it is refused.
    pub fn handle_stop<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.on_stop = Some(handler(move |_| f()));
        self
    }

    /// Handles the edge's Restart command. Without a handler it is refused.
    pub fn handle_restart<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.on_restart = Some(handler(move |_| f()));
        self
    }

    /// Handles the edge's Update command (gets the requested version and whether a major
    /// upgrade is allowed). Without a handler it is refused.
    pub fn handle_update<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(String, bool) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.on_update = Some(handler(move |cmd| match cmd {
            AgentCommand::Update {
                version,
                permit_major_version,
            } => f(version, permit_major_version),
            _ => unreachable!("only Update reaches the update handler"),
        }));
        self
    }

    fn prepare(self) -> Result<Arc<Inner>, ConnectError> {
        let (host, port) = split_server_addr(&self.server_addr).map_err(ConnectError::Config)?;
        let server_name = ServerName::try_from(host.clone()).map_err(|_| {
            ConnectError::Config(format!("`{host}` is not a valid TLS server name"))
        })?;
        let tls_config = match (self.tls_config, self.ca_pem, self.root_cas.as_deref()) {
            (Some(cfg), _, _) => cfg,
            (None, Some(pem), _) => {
                Arc::new(tls::ca_config(&pem).map_err(|e| ConnectError::Config(e.to_string()))?)
            }
            (None, None, None | Some("host" | "trusted")) => Arc::new(
                tls::system_roots_config().map_err(|e| ConnectError::Config(e.to_string()))?,
            ),
            (None, None, Some(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConnectError::Config(format!("cannot read CA file {path}: {e}"))
                })?;
                Arc::new(
                    tls::ca_config(&pem)
                        .map_err(|e| ConnectError::Config(format!("CA file {path}: {e}")))?,
                )
            }
        };
        let mut user_agent = self.client_info.clone();
        user_agent.push(format!("warren-sdk/{}", env!("CARGO_PKG_VERSION")));
        let (state, _) = watch::channel(SessionState::Connecting);
        Ok(Arc::new(Inner {
            dial: Dial {
                host,
                port,
                server_name,
                tls: TlsConnector::from(tls_config),
                timeout: self.connect_timeout,
            },
            auth_extra: AuthExtra {
                os: std::env::consts::OS.to_owned(),
                arch: std::env::consts::ARCH.to_owned(),
                auth_token: self.authtoken,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                user_agent: user_agent.join(" "),
                metadata: self.metadata,
                heartbeat_interval: i64::try_from(self.heartbeat.interval.as_nanos())
                    .unwrap_or(i64::MAX),
                heartbeat_tolerance: i64::try_from(self.heartbeat.tolerance.as_nanos())
                    .unwrap_or(i64::MAX),
                ..AuthExtra::default()
            },
            heartbeat: self.heartbeat,
            backoff: self.backoff,
            on_stop: self.on_stop,
            on_restart: self.on_restart,
            on_update: self.on_update,
            state,
            live: watch::channel(None).0,
            resume: Mutex::new(Resume::default()),
            registry: Mutex::new(Registry::default()),
            next_key: AtomicU64::new(1),
            heartbeat_handle: Mutex::new(None),
            shutdown: watch::channel(false).0,
        }))
    }

    /// Connects once; fails if that first attempt fails. After it succeeds the session
    /// reconnects by itself whenever the connection is lost.
    pub async fn connect(self) -> Result<Session, ConnectError> {
        let inner = self.prepare()?;
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(drive(inner.clone(), Some(first_tx)));
        match first_rx.await {
            Ok(Ok(())) => Ok(Session::from_inner(inner)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnectError::Closed),
        }
    }

    /// Starts the session in the background and returns at once: it keeps trying to connect
    /// (with backoff) until it succeeds, and reconnects whenever the connection is lost. Only a
    /// refused credential or [`Session::close`] ends it. Watch [`Session::state`] for progress.
    pub fn start(self) -> Result<Session, ConnectError> {
        let inner = self.prepare()?;
        tokio::spawn(drive(inner.clone(), None));
        Ok(Session::from_inner(inner))
    }
}

fn split_server_addr(addr: &str) -> Result<(String, u16), String> {
    let addr = addr.trim();
    let bad = || format!("invalid server address `{addr}` (expected host:port)");
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => 443,
            None => return Err(bad()),
        };
        (h.to_owned(), port)
    } else {
        match addr.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
            None => (addr.to_owned(), 443),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

/// A session to the edge. Cheap to clone; every clone is the same session. It ends when
/// [`Session::close`] is called or when the last clone and the last [`Listener`] are dropped.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

/// Closes the session when the last handle goes away (the driver task holds only `Inner`).
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.begin_close();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &*self.inner.state.borrow())
            .finish()
    }
}

struct Dial {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    timeout: Duration,
}

#[derive(Default)]
struct Resume {
    client_id: String,
    cookie: String,
}

#[derive(Default)]
struct Registry {
    slots: HashMap<u64, Arc<Slot>>,
    /// Edge endpoint id → slot key.
    by_id: HashMap<String, u64>,
}

/// The current connection.
#[derive(Clone)]
struct Live {
    generation: u64,
    mux: warren_mux::Session,
}

struct Inner {
    dial: Dial,
    auth_extra: AuthExtra,
    heartbeat: HeartbeatConfig,
    backoff: Backoff,
    on_stop: Option<CommandHandler>,
    on_restart: Option<CommandHandler>,
    on_update: Option<CommandHandler>,
    state: watch::Sender<SessionState>,
    live: watch::Sender<Option<Live>>,
    resume: Mutex<Resume>,
    registry: Mutex<Registry>,
    next_key: AtomicU64,
    /// The current connection's heartbeat (its latency is the session's).
    heartbeat_handle: Mutex<Option<heartbeat::Heartbeat>>,
    shutdown: watch::Sender<bool>,
}

impl Inner {
    fn set_state(&self, state: SessionState) {
        self.state.send_if_modified(|s| {
            if matches!(s, SessionState::Closed { .. }) || *s == state {
                false
            } else {
                *s = state;
                true
            }
        });
    }

    fn slots(&self) -> Vec<Arc<Slot>> {
        let reg = self.registry.lock().expect("registry lock");
        let mut slots: Vec<_> = reg.slots.values().cloned().collect();
        slots.sort_by_key(|s| s.key);
        slots
    }

    fn slot_by_id(&self, id: &str) -> Option<Arc<Slot>> {
        let reg = self.registry.lock().expect("registry lock");
        reg.by_id.get(id).and_then(|k| reg.slots.get(k)).cloned()
    }

    fn remove(&self, slot: &Slot) {
        let mut reg = self.registry.lock().expect("registry lock");
        reg.slots.remove(&slot.key);
        reg.by_id.retain(|_, k| *k != slot.key);
    }

    /// Stops the driver and tells the edge, without waiting.
    fn begin_close(&self) {
        self.shutdown.send_replace(true);
        let live = self.live.borrow().clone();
        if let Some(live) = live {
            live.mux
                .go_away(ErrorCode::NoError, "agent closed the session");
        }
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

impl Session {
    fn from_inner(inner: Arc<Inner>) -> Session {
        Session {
            _owner: Arc::new(Owner(inner.clone())),
            inner,
        }
    }

    /// A builder with the defaults.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// An `http`/`https` endpoint.
    pub fn http_endpoint(&self) -> HttpEndpointBuilder {
        HttpEndpointBuilder::new(self.clone())
    }

    /// A `tcp` endpoint.
    pub fn tcp_endpoint(&self) -> TcpEndpointBuilder {
        TcpEndpointBuilder::new(self.clone())
    }

    /// A `tls` endpoint.
    pub fn tls_endpoint(&self) -> TlsEndpointBuilder {
        TlsEndpointBuilder::new(self.clone())
    }

    /// The session id the edge assigned (kept across reconnects; `""` before the first connect).
    pub fn client_id(&self) -> String {
        self.inner
            .resume
            .lock()
            .expect("resume lock")
            .client_id
            .clone()
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.inner.state.borrow().clone()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<SessionState> {
        self.inner.state.subscribe()
    }

    /// The last heartbeat round trip to the edge (`None` while not connected).
    pub fn latency(&self) -> Option<Duration> {
        self.inner
            .heartbeat_handle
            .lock()
            .expect("heartbeat lock")
            .as_ref()
            .and_then(|hb| hb.latency())
    }

    /// Closes the session: every listener ends, the edge gets GOAWAY, no reconnect follows.
    pub async fn close(&self) {
        self.inner.begin_close();
        for slot in self.inner.slots() {
            slot.close(ListenerClosed::SessionClosed(
                "closed by the application".into(),
            ));
            self.inner.remove(&slot);
        }
        self.inner.set_state(SessionState::Closed {
            reason: "closed by the application".into(),
        });
    }

    /// Resolves when the session is closed for good; returns why.
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.state.subscribe();
        loop {
            if let SessionState::Closed { reason } = &*rx.borrow_and_update() {
                return reason.clone();
            }
            if rx.changed().await.is_err() {
                return "session dropped".into();
            }
        }
    }

    /// Registers an endpoint and binds it; waits through reconnects until the edge answers.
    pub(crate) async fn listen(&self, spec: BindSpec) -> Result<Listener, ListenError> {
        let inner = &self.inner;
        if inner.shutting_down() {
            return Err(ListenError::SessionClosed(
                "closed by the application".into(),
            ));
        }
        let (tx, rx) = mpsc::channel(LISTENER_BACKLOG);
        let slot = Arc::new(Slot {
            key: inner.next_key.fetch_add(1, Ordering::Relaxed),
            spec,
            bound: Mutex::new(None),
            bind_lock: tokio::sync::Mutex::new(()),
            conns: tx,
            closed: watch::channel(None).0,
        });
        inner
            .registry
            .lock()
            .expect("registry lock")
            .slots
            .insert(slot.key, slot.clone());
        let listener = Listener::new(self.clone(), slot.clone(), rx);
        let mut live_rx = inner.live.subscribe();
        let mut state_rx = inner.state.subscribe();
        loop {
            let live = live_rx.borrow_and_update().clone();
            if let Some(live) = live {
                match bind_slot(inner, &live, &slot).await {
                    Ok(()) => return Ok(listener),
                    Err(BindFailure::Refused(e)) => {
                        slot.close(ListenerClosed::Edge(e.clone()));
                        inner.remove(&slot);
                        return Err(ListenError::Edge(e));
                    }
                    // The connection broke mid-bind: the next generation binds it.
                    Err(BindFailure::Transport(e)) => {
                        tracing::debug!(error = %e, "bind interrupted; waiting for the next connection");
                    }
                }
            }
            if let SessionState::Closed { reason } = &*state_rx.borrow_and_update() {
                inner.remove(&slot);
                return Err(ListenError::SessionClosed(reason.clone()));
            }
            // The slot may have been bound by the driver's rebind of a new generation.
            if slot.bound().is_some() {
                return Ok(listener);
            }
            if let Some(why) = slot.closed.borrow().clone() {
                inner.remove(&slot);
                return Err(match why {
                    ListenerClosed::Edge(e) => ListenError::Edge(e),
                    ListenerClosed::SessionClosed(r) => ListenError::SessionClosed(r),
                    ListenerClosed::Local => ListenError::SessionClosed("closed".into()),
                });
            }
            tokio::select! {
                _ = live_rx.changed() => {}
                _ = state_rx.changed() => {}
            }
        }
    }

    /// Sends Unbind for the slot (if bound and online) and forgets it.
    pub(crate) async fn unbind(&self, slot: &Arc<Slot>) {
        self.inner.remove(slot);
        slot.close(ListenerClosed::Local);
        let (Some(bound), Some(live)) = (slot.bound(), self.inner.live.borrow().clone()) else {
            return;
        };
        let req = Unbind {
            id: bound.id.clone(),
        };
        if let Err(e) = rpc(&live.mux, &req).await {
            tracing::debug!(id = %bound.id, error = %e, "unbind failed");
        }
    }

    /// Forgets the slot without telling the edge (no runtime to send Unbind on).
    pub(crate) fn forget(&self, slot: &Arc<Slot>) {
        self.inner.remove(slot);
        slot.close(ListenerClosed::Local);
    }
}

/// Why a bind did not produce an endpoint.
enum BindFailure {
    /// The edge answered with an error.
    Refused(EdgeError),
    /// The session broke; retry on the next generation.
    Transport(String),
}

/// Binds `slot` on `live` unless it is already bound there. On a rebind, sends the old id,
/// token and the `Opts` the edge echoed, so the edge keeps the endpoint's URL.
async fn bind_slot(inner: &Inner, live: &Live, slot: &Arc<Slot>) -> Result<(), BindFailure> {
    let _guard = slot.bind_lock.lock().await;
    if slot.is_closed() {
        return Err(BindFailure::Transport("listener closed".into()));
    }
    let previous = slot.bound();
    if previous
        .as_ref()
        .is_some_and(|b| b.generation == live.generation)
    {
        return Ok(());
    }
    let spec = &slot.spec;
    let req = Bind {
        id: previous.as_ref().map(|b| b.id.clone()).unwrap_or_default(),
        proto: spec.proto.clone(),
        forwards_to: spec.forwards_to.clone(),
        forwards_proto: spec.forwards_proto.clone(),
        opts: previous
            .as_ref()
            .map(|b| b.opts.clone())
            .unwrap_or_else(|| spec.opts.clone()),
        extra: BindExtra {
            token: previous
                .as_ref()
                .map(|b| b.token.clone())
                .unwrap_or_default(),
            metadata: spec.metadata.clone(),
            bindings: spec.bindings.clone(),
            pooling_enabled: spec.pooling_enabled,
            description: spec.description.clone(),
            ..BindExtra::default()
        },
    };
    let resp = match rpc(&live.mux, &req).await {
        Ok(resp) => resp,
        Err(RpcError::Edge(e)) => return Err(BindFailure::Refused(e)),
        Err(RpcError::Transport(e)) => return Err(BindFailure::Transport(e)),
    };
    let bound = Bound {
        generation: live.generation,
        id: resp.id.clone(),
        url: resp.url,
        token: resp.extra.token,
        opts: if resp.opts.is_null() {
            req.opts
        } else {
            resp.opts
        },
    };
    {
        let mut reg = inner.registry.lock().expect("registry lock");
        if let Some(old) = &previous {
            reg.by_id.remove(&old.id);
        }
        if reg.slots.contains_key(&slot.key) {
            reg.by_id.insert(resp.id, slot.key);
        }
    }
    *slot.bound.lock().expect("slot lock") = Some(bound);
    Ok(())
}

#[derive(Debug)]
enum RpcError {
    Edge(EdgeError),
    Transport(String),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Edge(e) => write!(f, "{e}"),
            RpcError::Transport(e) => f.write_str(e),
        }
    }
}

/// One request/response exchange on a new typed stream (§5): type + JSON in the first frame,
/// the response read to FIN (bounded), `Error` checked first.
async fn rpc<R: Rpc>(mux: &warren_mux::Session, req: &R) -> Result<R::Response, RpcError> {
    let body = serde_json::to_vec(req).map_err(|e| RpcError::Transport(e.to_string()))?;
    let exchange = async {
        let mut stream = mux
            .open_typed(R::STREAM_TYPE, &body)
            .await
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        let mut buf = Vec::new();
        (&mut stream)
            .take(warren_proto::MAX_RPC_BODY as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        if buf.len() > warren_proto::MAX_RPC_BODY {
            return Err(RpcError::Transport(
                "response exceeds the RPC body limit".into(),
            ));
        }
        let resp: R::Response = serde_json::from_slice(&buf)
            .map_err(|e| RpcError::Transport(format!("malformed response from the edge: {e}")))?;
        if let Some(err) = resp.error() {
            return Err(RpcError::Edge(EdgeError::parse(err)));
        }
        Ok(resp)
    };
    tokio::time::timeout(RPC_TIMEOUT, exchange)
        .await
        .map_err(|_| RpcError::Transport("the edge did not answer in time".into()))?
}

/// The driver: connects, serves, and reconnects until shutdown or a fatal refusal.
async fn drive(inner: Arc<Inner>, mut first: Option<oneshot::Sender<Result<(), ConnectError>>>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut generation = 0u64;
    let mut failures = 0u32;
    loop {
        if inner.shutting_down() {
            break;
        }
        let attempt = tokio::select! {
            r = connect_once(&inner) => r,
            _ = shutdown.wait_for(|s| *s) => Err(ConnectError::Closed),
        };
        match attempt {
            Ok((mux, hb)) => {
                failures = 0;
                generation += 1;
                let live = Live {
                    generation,
                    mux: mux.clone(),
                };
                inner.live.send_replace(Some(live.clone()));
                inner.set_state(SessionState::Online);
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
                tracing::info!(server = %inner.dial.host, "session online");
                let reason = serve(&inner, &live, hb, &mut shutdown).await;
                inner.live.send_replace(None);
                if inner.shutting_down() {
                    break;
                }
                tracing::warn!(%reason, "connection to the edge lost; reconnecting");
                inner.set_state(SessionState::Reconnecting { last_error: reason });
            }
            Err(e) => {
                if e.is_fatal() || first.is_some() {
                    let reason = e.to_string();
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(e));
                    } else {
                        tracing::error!(error = %reason, "the edge refused this agent; not retrying");
                    }
                    close_all(&inner, &reason);
                    break;
                }
                tracing::warn!(error = %e, "connecting to the edge failed");
                inner.set_state(SessionState::Reconnecting {
                    last_error: e.to_string(),
                });
            }
        }
        let delay = inner.backoff.delay(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    inner.live.send_replace(None);
    inner.set_state(SessionState::Closed {
        reason: "closed by the application".into(),
    });
}

fn close_all(inner: &Inner, reason: &str) {
    inner.set_state(SessionState::Closed {
        reason: reason.to_owned(),
    });
    for slot in inner.slots() {
        slot.close(ListenerClosed::SessionClosed(reason.to_owned()));
        inner.remove(&slot);
    }
}

/// One connect attempt: TCP → TLS → mux → heartbeat → Auth, all within the connect timeout.
async fn connect_once(
    inner: &Inner,
) -> Result<(warren_mux::Session, heartbeat::Heartbeat), ConnectError> {
    let dial = &inner.dial;
    let attempt = async {
        let addr = format!("{}:{}", dial.host, dial.port);
        let tcp = TcpStream::connect((dial.host.as_str(), dial.port))
            .await
            .map_err(|source| ConnectError::Dial { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let tls = dial
            .tls
            .connect(dial.server_name.clone(), tcp)
            .await
            .map_err(ConnectError::Tls)?;
        let mux = warren_mux::Session::new(tls, warren_mux::Config::client());
        let hb = heartbeat::start(&mux, inner.heartbeat);
        let (client_id, cookie) = {
            let r = inner.resume.lock().expect("resume lock");
            (r.client_id.clone(), r.cookie.clone())
        };
        let auth = Auth {
            version: vec!["3".into(), "2".into()],
            client_id,
            extra: AuthExtra {
                cookie,
                ..inner.auth_extra.clone()
            },
        };
        let resp = rpc(&mux, &auth).await.map_err(|e| match e {
            RpcError::Edge(e) => ConnectError::Auth(e),
            RpcError::Transport(e) => ConnectError::Session(e),
        })?;
        {
            let mut r = inner.resume.lock().expect("resume lock");
            r.client_id = resp.client_id;
            r.cookie = resp.extra.cookie;
        }
        Ok((mux, hb))
    };
    tokio::time::timeout(dial.timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// Serves one generation: rebinds every endpoint, then handles the streams the edge opens until
/// the connection ends. Returns why it ended.
async fn serve(
    inner: &Arc<Inner>,
    live: &Live,
    hb: heartbeat::Heartbeat,
    shutdown: &mut watch::Receiver<bool>,
) -> String {
    // Rebinds run beside the accept loop: the edge may already forward visitors of the first
    // endpoints while later ones are being bound.
    let rebind = {
        let inner = inner.clone();
        let live = live.clone();
        tokio::spawn(async move {
            for slot in inner.slots() {
                match bind_slot(&inner, &live, &slot).await {
                    Ok(()) => {}
                    Err(BindFailure::Refused(e)) => {
                        tracing::warn!(error = %e, "the edge refused to bind an endpoint again");
                        slot.close(ListenerClosed::Edge(e));
                        inner.remove(&slot);
                    }
                    Err(BindFailure::Transport(_)) => return,
                }
            }
        })
    };
    *inner.heartbeat_handle.lock().expect("heartbeat lock") = Some(hb);
    let reason = loop {
        let accepted = tokio::select! {
            a = live.mux.accept_typed() => a,
            _ = shutdown.wait_for(|s| *s) => break "closed by the application".to_owned(),
        };
        let (ty, stream) = match accepted {
            Ok(a) => a,
            Err(e) => break e.to_string(),
        };
        let inner = inner.clone();
        match ty {
            stream_type::PROXY => {
                tokio::spawn(async move { proxy_stream(&inner, stream).await });
            }
            HEARTBEAT_TYPE => {
                tokio::spawn(heartbeat::echo(stream));
            }
            stream_type::STOP_TUNNEL => {
                tokio::spawn(async move { stop_tunnel(&inner, stream).await });
            }
            stream_type::STOP | stream_type::RESTART | stream_type::UPDATE => {
                tokio::spawn(async move { command(&inner, ty, stream).await });
            }
            other => {
                tracing::debug!(stream_type = other, "ignoring a stream of unknown type");
                stream.reset(ErrorCode::StreamRefused);
            }
        }
    };
    rebind.abort();
    inner
        .heartbeat_handle
        .lock()
        .expect("heartbeat lock")
        .take();
    live.mux.close();
    reason
}

/// Reads up to one complete JSON value from a stream the edge opened.
async fn read_json<T: serde::de::DeserializeOwned>(stream: &mut Stream) -> Option<T> {
    let mut reader = RpcReader::with_limit(MAX_COMMAND_BODY);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            match reader.push_as::<T>(&buf[..n]) {
                Ok(Some(v)) => return Some(v),
                Ok(None) => {}
                Err(_) => return None,
            }
        }
    };
    tokio::time::timeout(STREAM_HEADER_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

/// A visitor connection: read the proxy header, hand the stream to its listener.
async fn proxy_stream(inner: &Inner, mut stream: Stream) {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let header = async {
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            match ProxyHeader::decode(&buf) {
                Ok(Some(found)) => return Some(found),
                Ok(None) => {}
                Err(_) => return None,
            }
        }
    };
    let Ok(Some((header, used))) = tokio::time::timeout(STREAM_HEADER_TIMEOUT, header).await else {
        stream.reset(ErrorCode::ProtocolError);
        return;
    };
    let Some(slot) = inner.slot_by_id(&header.id) else {
        stream.reset(ErrorCode::StreamRefused);
        return;
    };
    let prefix = Bytes::copy_from_slice(&buf[used..]);
    let conn = Conn::new(stream, prefix, &header);
    // Waits while the listener's backlog is full; the edge's flow control holds the visitor.
    let _ = slot.conns.send(conn).await;
}

/// StopTunnel: the edge ended one endpoint; its listener ends with the edge's reason.
async fn stop_tunnel(inner: &Inner, mut stream: Stream) {
    let Some(msg) = read_json::<StopTunnel>(&mut stream).await else {
        stream.reset(ErrorCode::ProtocolError);
        return;
    };
    if let Some(slot) = inner.slot_by_id(&msg.id) {
        tracing::info!(id = %msg.id, message = %msg.message, "the edge stopped an endpoint");
        slot.close(ListenerClosed::Edge(EdgeError {
            message: msg.message,
            code: msg.error_code,
        }));
        inner.remove(&slot);
    }
    let _ = stream.shutdown().await;
}

/// Stop, Restart, Update: run the handler, write `{}` or the refusal, FIN.
async fn command(inner: &Inner, ty: u32, mut stream: Stream) {
    let (cmd, handler) = match ty {
        stream_type::STOP => {
            if read_json::<serde_json::Value>(&mut stream).await.is_none() {
                return stream.reset(ErrorCode::ProtocolError);
            }
            (AgentCommand::Stop, inner.on_stop.clone())
        }
        stream_type::RESTART => {
            if read_json::<serde_json::Value>(&mut stream).await.is_none() {
                return stream.reset(ErrorCode::ProtocolError);
            }
            (AgentCommand::Restart, inner.on_restart.clone())
        }
        _ => match read_json::<Update>(&mut stream).await {
            Some(u) => (
                AgentCommand::Update {
                    version: u.version,
                    permit_major_version: u.permit_major_version,
                },
                inner.on_update.clone(),
            ),
            None => return stream.reset(ErrorCode::ProtocolError),
        },
    };
    tracing::info!(command = ?cmd, "command from the edge");
    let result = match handler {
        Some(h) => h(cmd).await,
        None => Err(NO_HANDLER.to_owned()),
    };
    let resp = match result {
        Ok(()) => CommandResp::default(),
        Err(e) => CommandResp::failure(e),
    };
    let body = serde_json::to_vec(&resp).expect("CommandResp serializes");
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::split_server_addr;

    #[test]
    fn server_addresses() {
        assert_eq!(
            split_server_addr("edge.example.com:4443").unwrap(),
            ("edge.example.com".into(), 4443)
        );
        assert_eq!(
            split_server_addr("edge.example.com").unwrap(),
            ("edge.example.com".into(), 443)
        );
        assert_eq!(
            split_server_addr("[::1]:4443").unwrap(),
            ("::1".into(), 4443)
        );
        for bad in ["", ":4443", "h:0", "h:x", "[::1", "[::1]x"] {
            assert!(split_server_addr(bad).is_err(), "{bad}");
        }
    }
}
