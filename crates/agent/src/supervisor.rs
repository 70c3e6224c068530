//! The endpoint supervisor: owns the session to the edge and the running endpoints.
//!
//! An [`Agent`] is one session (started in the background, reconnecting forever with the SDK's
//! backoff) plus a table of endpoints by name. Each endpoint runs one task that binds it and
//! accepts visitor connections; each connection is forwarded on its own task, through the
//! inspecting HTTP forwarder for HTTP endpoints with capture on, or as a byte pipe otherwise.
//! Endpoints come from the config file (`warren start`), from the command line, or from the local
//! API; a reload touches only config endpoints whose definition changed.
//!
//! It must not parse config files or speak HTTP to controllers: [`crate::config`] and
//! [`crate::api`] do.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use warren::{ProxyProto, Session, Upstream, UpstreamProtocol};

use crate::config::{self, Config, EndpointConfig};
use crate::control::{
    AgentStatus, Control, ControlError, CounterCells, EndpointState, EndpointStatus, SessionState,
    SharedControl,
};
use crate::inspect::{self, HttpForward, Inspector};

/// Default edge address (a `warrend` with embedded defaults on this machine).
pub const DEFAULT_CONNECT_URL: &str = warren::DEFAULT_SERVER_ADDR;

/// Default local API address.
pub const DEFAULT_WEB_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4040);

/// How long [`Control::start`] waits for the edge to accept a bind before answering with the
/// endpoint still starting (it binds as soon as the session is online).
pub const START_WAIT: Duration = Duration::from_secs(20);

/// Most endpoints one agent runs.
pub const MAX_ENDPOINTS: usize = 256;

/// Delay between answering a Stop/Restart command and acting on it, so the reply reaches the
/// edge before the session closes.
const COMMAND_GRACE: Duration = Duration::from_millis(200);

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// The merged config (flags and env already applied to `config.agent`).
    pub config: Config,
    /// Names of `config.endpoints` to start now (the others stay defined but stopped).
    pub start: Vec<String>,
    /// Start every endpoint of the config, now and on every reload (`warren start --all`).
    pub start_all: bool,
}

/// Why the agent stopped running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The edge sent Stop (remote management), or [`Agent::shutdown`] was called.
    Stopped,
    /// The edge sent Restart (or an update succeeded): the caller re-executes the binary.
    Restart,
    /// The edge refused the credential; retrying cannot help.
    Fatal(String),
}

/// What a reload changed, by endpoint name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Started.
    pub added: Vec<String>,
    /// Stopped.
    pub removed: Vec<String>,
    /// Restarted with a new definition.
    pub changed: Vec<String>,
    /// The `agent:` section changed; those settings apply on the next restart.
    pub agent_changed: bool,
}

/// Why the agent could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The local API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    WebAddr {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Where an endpoint came from: reloads only touch config endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Config,
    Api,
}

/// One running endpoint.
struct Running {
    config: EndpointConfig,
    origin: Origin,
    proto: &'static str,
    upstream: Upstream,
    live: Arc<Mutex<Live>>,
    counters: Arc<CounterCells>,
    started_at: SystemTime,
    /// Asks the endpoint task to unbind; it acknowledges on the inner sender.
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: JoinHandle<()>,
}

/// The parts of an endpoint's status its task updates.
#[derive(Debug, Clone)]
struct Live {
    state: EndpointState,
    id: Option<String>,
    url: Option<String>,
}

/// The shared state behind [`Agent`] and its [`Control`].
struct Supervisor {
    session: Session,
    connect_url: String,
    inspector: Option<Arc<Inspector>>,
    /// In start order.
    endpoints: tokio::sync::Mutex<Vec<Running>>,
    /// A cheap copy of the endpoint list for the synchronous snapshots.
    snapshot: Mutex<Vec<SnapshotRow>>,
    exit: watch::Sender<Option<Exit>>,
    config: Mutex<Config>,
    start_names: Mutex<(bool, Vec<String>)>,
}

/// A running agent.
pub struct Agent {
    sup: Arc<Supervisor>,
    api_addr: Option<SocketAddr>,
    api_stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("connect_url", &self.sup.connect_url)
            .field("api_addr", &self.api_addr)
            .finish_non_exhaustive()
    }
}

fn remote_management_refusal() -> String {
    "remote management is disabled on this agent (agent.remote_management: false)".to_owned()
}

impl Agent {
    /// Starts the agent: binds the local API (unless disabled), connects to the edge in the
    /// background (retrying forever with backoff) and starts `opts.start`.
    pub async fn start(opts: AgentOptions) -> Result<Agent, AgentError> {
        let AgentOptions {
            config,
            start,
            start_all,
        } = opts;
        let a = &config.agent;
        let authtoken = a.authtoken.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
            AgentError::Config(
                "no authtoken: pass --authtoken, set WARREN_AUTHTOKEN, or set agent.authtoken in the config file"
                    .into(),
            )
        })?;
        let connect_url = a
            .connect_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_CONNECT_URL.to_owned());
        let names: Vec<String> = if start_all {
            config.endpoints.iter().map(|e| e.name.clone()).collect()
        } else {
            start.clone()
        };
        for name in &names {
            if !config.endpoints.iter().any(|e| &e.name == name) {
                let known: Vec<_> = config.endpoints.iter().map(|e| e.name.as_str()).collect();
                return Err(AgentError::Config(format!(
                    "no endpoint named `{name}` in the config (defined: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }

        let (exit, _) = watch::channel(None);
        let mut builder = Session::builder()
            .server_addr(connect_url.clone())
            .authtoken(authtoken)
            .client_info("warren-agent", env!("CARGO_PKG_VERSION"), None);
        match a.connect_cas.as_deref() {
            None | Some("") => {}
            Some(roots) => builder = builder.root_cas(roots),
        }
        if let Some(m) = &a.metadata {
            builder = builder.metadata(m.clone());
        }
        if let Some(d) = a.heartbeat_interval {
            builder = builder.heartbeat_interval(d);
        }
        if let Some(d) = a.heartbeat_tolerance {
            builder = builder.heartbeat_tolerance(d);
        }
        if let Some(d) = a.connect_timeout {
            builder = builder.connect_timeout(d);
        }
        builder = remote_handlers(
            builder,
            a.remote_management.unwrap_or(true),
            a.update_command.clone(),
            exit.clone(),
        );
        let session = builder
            .start()
            .map_err(|e| AgentError::Config(e.to_string()))?;

        let inspector = match a.inspect_db_size {
            Some(n) if n < 0 => None,
            Some(n) if n > 0 => Some(Inspector::new(usize::try_from(n).unwrap_or(usize::MAX))),
            _ => Some(Inspector::new(inspect::DEFAULT_CAPTURE_BYTES)),
        };

        let sup = Arc::new(Supervisor {
            session: session.clone(),
            connect_url,
            inspector: inspector.clone(),
            endpoints: tokio::sync::Mutex::new(Vec::new()),
            snapshot: Mutex::new(Vec::new()),
            exit: exit.clone(),
            config: Mutex::new(config.clone()),
            start_names: Mutex::new((start_all, names.clone())),
        });

        // A refused credential ends the agent: nothing else can fix it.
        {
            let mut state = session.watch_state();
            let exit = exit.clone();
            tokio::spawn(async move {
                if let Ok(s) = state
                    .wait_for(|s| matches!(s, SessionState::Closed { .. }))
                    .await
                    && let SessionState::Closed { reason } = &*s
                {
                    let reason = reason.clone();
                    exit.send_if_modified(|e| {
                        if e.is_none() {
                            *e = Some(Exit::Fatal(reason));
                            true
                        } else {
                            false
                        }
                    });
                }
            });
        }

        let web_addr = match a.web_addr {
            Some(None) => None,
            Some(Some(addr)) => Some(addr),
            None => Some(DEFAULT_WEB_ADDR),
        };
        let (api_addr, api_stop) = match web_addr {
            None => (None, None),
            Some(addr) => {
                let listener = crate::api::bind(addr)
                    .await
                    .map_err(|source| AgentError::WebAddr { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| AgentError::WebAddr { addr, source })?;
                let (tx, rx) = oneshot::channel::<()>();
                let control: SharedControl = sup.clone();
                tokio::spawn(crate::api::serve(
                    listener,
                    control,
                    inspector.clone(),
                    a.web_allow_hosts.clone(),
                    async move {
                        let _ = rx.await;
                    },
                ));
                (Some(bound), Some(tx))
            }
        };

        for name in &names {
            let spec = config
                .endpoints
                .iter()
                .find(|e| &e.name == name)
                .cloned()
                .expect("checked above");
            sup.launch(spec, Origin::Config)
                .await
                .map_err(|e| AgentError::Config(format!("endpoint `{name}`: {e}")))?;
        }

        Ok(Agent {
            sup,
            api_addr,
            api_stop: Mutex::new(api_stop),
        })
    }

    /// The control handle (local API, status view).
    pub fn control(&self) -> SharedControl {
        self.sup.clone()
    }

    /// The request inspector, when capture is on.
    pub fn inspector(&self) -> Option<Arc<Inspector>> {
        self.sup.inspector.clone()
    }

    /// The local API's bound address, when enabled.
    pub fn local_api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// The SDK session (for its state and latency).
    pub fn session(&self) -> &Session {
        &self.sup.session
    }

    /// Applies a new config: only the endpoints that were added, removed or changed are touched.
    /// Endpoints started through the local API are left alone.
    pub async fn reload(&self, new: Config) -> Result<ReloadSummary, AgentError> {
        let sup = &self.sup;
        let old = sup.config.lock().expect("config lock").clone();
        let (all, names) = sup.start_names.lock().expect("names lock").clone();
        let wanted = |cfg: &Config| -> Vec<EndpointConfig> {
            cfg.endpoints
                .iter()
                .filter(|e| all || names.contains(&e.name))
                .cloned()
                .collect()
        };
        let diff = config::diff(&wanted(&old), &wanted(&new));
        let mut summary = ReloadSummary {
            agent_changed: old.agent != new.agent,
            ..ReloadSummary::default()
        };
        for spec in diff.added.iter().chain(diff.changed.iter()) {
            spec.validate()
                .map_err(|e| AgentError::Config(format!("endpoint `{}`: {e}", spec.name)))?;
        }
        for name in &diff.removed {
            if sup.stop_endpoint(name, Some(Origin::Config)).await.is_ok() {
                summary.removed.push(name.clone());
            }
        }
        for spec in &diff.changed {
            let _ = sup.stop_endpoint(&spec.name, Some(Origin::Config)).await;
            sup.launch(spec.clone(), Origin::Config)
                .await
                .map_err(|e| AgentError::Config(format!("endpoint `{}`: {e}", spec.name)))?;
            summary.changed.push(spec.name.clone());
        }
        for spec in &diff.added {
            sup.launch(spec.clone(), Origin::Config)
                .await
                .map_err(|e| AgentError::Config(format!("endpoint `{}`: {e}", spec.name)))?;
            summary.added.push(spec.name.clone());
        }
        *sup.config.lock().expect("config lock") = new;
        Ok(summary)
    }

    /// Resolves when the agent stops running (see [`Exit`]).
    pub async fn wait(&self) -> Exit {
        let mut rx = self.sup.exit.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().expect("waited for Some"),
            Err(_) => Exit::Stopped,
        }
    }

    /// Stops every endpoint, closes the session and the local API.
    pub async fn shutdown(&self) {
        let names: Vec<String> = {
            let eps = self.sup.endpoints.lock().await;
            eps.iter().map(|r| r.config.name.clone()).collect()
        };
        // Decide the exit first: closing the session must not read as a refused credential.
        self.sup.exit.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(Exit::Stopped);
                true
            } else {
                false
            }
        });
        for name in names {
            let _ = self.sup.stop_endpoint(&name, None).await;
        }
        self.sup.session.close().await;
        if let Some(tx) = self.api_stop.lock().expect("api lock").take() {
            let _ = tx.send(());
        }
    }
}

/// Registers the Stop/Restart/Update handlers according to `remote_management`.
fn remote_handlers(
    builder: warren::SessionBuilder,
    enabled: bool,
    update_command: Option<String>,
    exit: watch::Sender<Option<Exit>>,
) -> warren::SessionBuilder {
    let later = |exit: watch::Sender<Option<Exit>>, what: Exit| {
        tokio::spawn(async move {
            tokio::time::sleep(COMMAND_GRACE).await;
            exit.send_if_modified(|e| {
                if e.is_none() {
                    *e = Some(what);
                    true
                } else {
                    false
                }
            });
        });
    };
    let stop_exit = exit.clone();
    let restart_exit = exit.clone();
    builder
        .handle_stop(move || {
            let exit = stop_exit.clone();
            async move {
                if !enabled {
                    return Err(remote_management_refusal());
                }
                tracing::info!("the edge asked this agent to stop");
                later(exit, Exit::Stopped);
                Ok(())
            }
        })
        .handle_restart(move || {
            let exit = restart_exit.clone();
            async move {
                if !enabled {
                    return Err(remote_management_refusal());
                }
                tracing::info!("the edge asked this agent to restart");
                later(exit, Exit::Restart);
                Ok(())
            }
        })
        .handle_update(move |version, permit_major| {
            let exit = exit.clone();
            let command = update_command.clone();
            async move {
                if !enabled {
                    return Err(remote_management_refusal());
                }
                let Some(command) = command else {
                    return Err(
                        "updates are not supported by this agent: no agent.update_command is configured".to_owned(),
                    );
                };
                tracing::info!(%version, permit_major, "the edge asked this agent to update");
                run_update(&command, &version, permit_major).await?;
                later(exit, Exit::Restart);
                Ok(())
            }
        })
}

/// Most output of an update command kept for the refusal text.
const UPDATE_OUTPUT_LIMIT: usize = 1024;

/// Longest an update command may run.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the configured update command (`sh -c`), with `WARREN_UPDATE_VERSION` and
/// `WARREN_UPDATE_PERMIT_MAJOR` set. Success = exit status 0.
async fn run_update(command: &str, version: &str, permit_major: bool) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("WARREN_UPDATE_VERSION", version)
        .env(
            "WARREN_UPDATE_PERMIT_MAJOR",
            if permit_major { "true" } else { "false" },
        )
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(UPDATE_TIMEOUT, child)
        .await
        .map_err(|_| format!("the update command did not finish within {UPDATE_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot run the update command: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if text.trim().is_empty() {
        text = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let text: String = text.trim().chars().take(UPDATE_OUTPUT_LIMIT).collect();
    Err(format!(
        "the update command failed ({}): {text}",
        out.status
    ))
}

impl Supervisor {
    fn refresh_snapshot(&self, eps: &[Running]) {
        let snap = eps
            .iter()
            .map(|r| {
                (
                    r.config.name.clone(),
                    r.live.clone(),
                    r.counters.clone(),
                    r.config.clone(),
                    r.proto,
                    r.upstream.clone(),
                    r.started_at,
                )
            })
            .collect();
        *self.snapshot.lock().expect("snapshot lock") = snap;
    }

    /// Starts an endpoint task and registers it. Returns once it is registered; the bind
    /// proceeds in the task (callers that want the edge's answer wait on [`Self::settled`]).
    async fn launch(
        &self,
        spec: EndpointConfig,
        origin: Origin,
    ) -> Result<Arc<Mutex<Live>>, ControlError> {
        spec.validate().map_err(ControlError::Invalid)?;
        let proto = spec
            .proto()
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let upstream = spec
            .upstream()
            .map_err(ControlError::Invalid)?
            .http2(spec.upstream.protocol.as_deref() == Some("http2"));
        let mut eps = self.endpoints.lock().await;
        if eps.iter().any(|r| r.config.name == spec.name) {
            return Err(ControlError::AlreadyExists(spec.name));
        }
        if eps.len() >= MAX_ENDPOINTS {
            return Err(ControlError::Invalid(format!(
                "this agent already runs {MAX_ENDPOINTS} endpoints, the most it may"
            )));
        }
        let live = Arc::new(Mutex::new(Live {
            state: EndpointState::Starting,
            id: None,
            url: None,
        }));
        let counters = Arc::new(CounterCells::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let inspector = match spec.inspect {
            Some(false) => None,
            _ => self.inspector.clone(),
        };
        let task = tokio::spawn(run_endpoint(
            self.session.clone(),
            spec.clone(),
            proto,
            upstream.clone(),
            live.clone(),
            counters.clone(),
            inspector,
            stop_rx,
        ));
        eps.push(Running {
            config: spec,
            origin,
            proto,
            upstream,
            live: live.clone(),
            counters,
            started_at: SystemTime::now(),
            stop: Some(stop_tx),
            task,
        });
        self.refresh_snapshot(&eps);
        Ok(live)
    }

    /// Stops an endpoint by name (only one of `origin`, when given): unbinds it at the edge and
    /// waits for its task.
    async fn stop_endpoint(&self, name: &str, origin: Option<Origin>) -> Result<(), ControlError> {
        let running = {
            let mut eps = self.endpoints.lock().await;
            let Some(pos) = eps
                .iter()
                .position(|r| r.config.name == name && origin.is_none_or(|o| o == r.origin))
            else {
                return Err(ControlError::NotFound(name.to_owned()));
            };
            let running = eps.remove(pos);
            self.refresh_snapshot(&eps);
            running
        };
        let Running { stop, task, .. } = running;
        if let Some(stop) = stop {
            let (ack_tx, ack_rx) = oneshot::channel();
            if stop.send(ack_tx).is_ok() {
                let _ = tokio::time::timeout(warren::RPC_TIMEOUT, ack_rx).await;
            }
        }
        task.abort();
        Ok(())
    }

    fn find(&self, name: &str) -> Option<EndpointStatus> {
        let snap = self.snapshot.lock().expect("snapshot lock");
        snap.iter().find(|s| s.0 == name).map(status_of)
    }
}

/// Name, live state, counters, definition, proto, upstream, start time.
type SnapshotRow = (
    String,
    Arc<Mutex<Live>>,
    Arc<CounterCells>,
    EndpointConfig,
    &'static str,
    Upstream,
    SystemTime,
);

fn status_of(row: &SnapshotRow) -> EndpointStatus {
    let live = row.1.lock().expect("endpoint lock").clone();
    EndpointStatus {
        config: row.3.clone(),
        proto: row.4.to_owned(),
        public_url: live.url,
        id: live.id,
        state: live.state,
        counters: row.2.snapshot(),
        started_at: row.6,
    }
}

/// Waits until the endpoint leaves `Starting`, up to `limit`.
async fn settled(live: &Arc<Mutex<Live>>, limit: Duration) -> EndpointState {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let state = live.lock().expect("endpoint lock").state.clone();
        if state != EndpointState::Starting || tokio::time::Instant::now() >= deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One endpoint's life: bind, accept, forward, until stopped or ended by the edge.
#[allow(clippy::too_many_arguments)]
async fn run_endpoint(
    session: Session,
    spec: EndpointConfig,
    proto: &'static str,
    upstream: Upstream,
    live: Arc<Mutex<Live>>,
    counters: Arc<CounterCells>,
    inspector: Option<Arc<Inspector>>,
    mut stop: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let set = |state: EndpointState| live.lock().expect("endpoint lock").state = state;
    let listen = listen(&session, &spec, proto, &upstream);
    let mut listener = tokio::select! {
        r = listen => match r {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(endpoint = %spec.name, error = %e, "endpoint refused");
                let (message, code) = match &e {
                    warren::ListenError::Edge(edge) => (edge.message.clone(), edge.code.clone()),
                    other => (other.to_string(), None),
                };
                set(EndpointState::Failed { message, code });
                return;
            }
        },
        ack = &mut stop => {
            if let Ok(ack) = ack {
                let _ = ack.send(());
            }
            return;
        }
    };
    {
        let mut l = live.lock().expect("endpoint lock");
        l.id = Some(listener.id());
        l.url = Some(listener.url());
        l.state = EndpointState::Online;
    }
    tracing::info!(endpoint = %spec.name, url = %listener.url(), %upstream, "endpoint online");
    let http = HttpForward {
        tunnel_name: spec.name.clone(),
        upstream: upstream.clone(),
        upstream_http2: spec.upstream.protocol.as_deref() == Some("http2"),
        proxy_protocol: spec.upstream.proxy_protocol,
        inspector,
        counters: counters.clone(),
    };
    let http = Arc::new(http);
    let is_http = matches!(proto, "http" | "https");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    let remote = conn.remote_addr();
                    let io = Counted::new(conn, counters.clone());
                    let http = http.clone();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        if is_http && http.inspector.is_some() {
                            inspect::serve_http(io, remote, http).await;
                        } else if let Err(e) = warren::forward_stream(io, is_http, &upstream).await {
                            tracing::debug!(error = %e, %upstream, "connection ended with an error");
                        }
                    });
                }
                Err(why) => {
                    tracing::warn!(endpoint = %spec.name, reason = %why, "endpoint ended");
                    let (message, code) = match &why {
                        warren::ListenerClosed::Edge(e) => (e.message.clone(), e.code.clone()),
                        other => (other.to_string(), None),
                    };
                    set(EndpointState::Failed { message, code });
                    return;
                }
            },
            ack = &mut stop => {
                listener.close().await;
                if let Ok(ack) = ack {
                    let _ = ack.send(());
                }
                return;
            }
        }
    }
}

/// Builds the SDK endpoint for `spec` and binds it.
async fn listen(
    session: &Session,
    spec: &EndpointConfig,
    proto: &'static str,
    upstream: &Upstream,
) -> Result<warren::Listener, warren::ListenError> {
    let url = spec.url.clone().unwrap_or_default();
    let url = url.trim();
    let has_scheme = url.contains("://");
    let proxy = spec
        .upstream
        .proxy_protocol
        .and_then(ProxyProto::from_number)
        .unwrap_or_default();
    let metadata = spec.metadata.clone().unwrap_or_default();
    let description = spec.description.clone().unwrap_or_default();
    macro_rules! common {
        ($b:expr) => {{
            let mut b = $b
                .metadata(metadata)
                .description(description)
                .pooling_enabled(spec.pooling_enabled)
                .forwards_to(upstream.to_string())
                .proxy_proto(proxy);
            if let Some(binding) = spec.bindings.first() {
                b = b.binding(binding.clone());
            }
            if let Some(policy) = &spec.traffic_policy {
                b = b.traffic_policy(policy.clone());
            }
            b
        }};
    }
    match proto {
        "http" | "https" => {
            let mut b = common!(session.http_endpoint());
            if has_scheme {
                b = b.url(url);
            } else if !url.is_empty() {
                b = b.domain(url);
            }
            if spec.upstream.protocol.as_deref() == Some("http2") {
                b = b.upstream_protocol(UpstreamProtocol::Http2);
            }
            b.listen().await
        }
        "tcp" => {
            let mut b = common!(session.tcp_endpoint());
            if !url.is_empty() {
                b = b.url(url);
            }
            b.listen().await
        }
        _ => {
            let mut b = common!(session.tls_endpoint());
            if has_scheme {
                b = b.url(url);
            } else if !url.is_empty() {
                b = b.domain(url);
            }
            b.listen().await
        }
    }
}

impl Control for Supervisor {
    fn status(&self) -> AgentStatus {
        AgentStatus {
            state: self.session.state(),
            latency: self.session.latency(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            connect_url: self.connect_url.clone(),
            client_id: self.session.client_id(),
        }
    }

    fn endpoints(&self) -> Vec<EndpointStatus> {
        let snap = self.snapshot.lock().expect("snapshot lock");
        snap.iter().map(status_of).collect()
    }

    fn endpoint(&self, name: &str) -> Option<EndpointStatus> {
        self.find(name)
    }

    fn start(&self, spec: EndpointConfig) -> BoxFuture<'_, Result<EndpointStatus, ControlError>> {
        Box::pin(async move {
            if self.exit.borrow().is_some() {
                return Err(ControlError::ShuttingDown);
            }
            let name = spec.name.clone();
            let live = self.launch(spec, Origin::Api).await?;
            match settled(&live, START_WAIT).await {
                EndpointState::Failed { message, code } => {
                    let _ = self.stop_endpoint(&name, Some(Origin::Api)).await;
                    Err(ControlError::Edge { message, code })
                }
                _ => self.find(&name).ok_or(ControlError::NotFound(name)),
            }
        })
    }

    fn replace(
        &self,
        spec: EndpointConfig,
    ) -> BoxFuture<'_, Result<(bool, EndpointStatus), ControlError>> {
        Box::pin(async move {
            spec.validate().map_err(ControlError::Invalid)?;
            let existed = self.stop_endpoint(&spec.name, None).await.is_ok();
            let status = Control::start(self, spec).await?;
            Ok((existed, status))
        })
    }

    fn stop(&self, name: &str) -> BoxFuture<'_, Result<(), ControlError>> {
        let name = name.to_owned();
        Box::pin(async move { self.stop_endpoint(&name, None).await })
    }

    fn upstream(&self, name: &str) -> Option<Upstream> {
        let snap = self.snapshot.lock().expect("snapshot lock");
        snap.iter().find(|s| s.0 == name).map(|s| s.5.clone())
    }
}

/// A visitor connection that counts its bytes and keeps the open-connections gauge.
struct Counted<T> {
    io: T,
    counters: Arc<CounterCells>,
}

impl<T> Counted<T> {
    fn new(io: T, counters: Arc<CounterCells>) -> Counted<T> {
        counters.conns_total.fetch_add(1, Ordering::Relaxed);
        counters.conns_open.fetch_add(1, Ordering::Relaxed);
        Counted { io, counters }
    }
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.counters.conns_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn add(cell: &AtomicU64, n: usize) {
    cell.fetch_add(n as u64, Ordering::Relaxed);
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        add(&this.counters.bytes_in, buf.filled().len() - before);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            add(&this.counters.bytes_out, *n);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
