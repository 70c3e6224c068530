//! `warren-edge`: Warren's data plane — the agent listener and session handling, the route table,
//! and the public HTTP/HTTPS/TCP/TLS-SNI ingress.
//!
//! # Layout
//!
//! - [`config`] — settings and every named limit.
//! - [`tls`] — the development CA, the agent listener's certificate, the public SNI resolver.
//! - [`agent`] — one agent connection: TLS, mux, heartbeat, Auth, Bind, Unbind, commands.
//! - [`bind`] — choosing and checking the URL a Bind asks for.
//! - [`bind_token`] — the signed `Extra.Token` that lets a reconnecting agent keep its URL.
//! - [`routes`] — the immutable route table snapshot, swapped atomically.
//! - [`tunnel`] — a bound endpoint and opening proxy streams to its agent.
//! - [`ip_restrictions`] — the IP restriction snapshot every listener checks.
//! - [`metrics`] — the edge's counters and gauges, per-endpoint traffic series.
//! - [`ingress`] — public listeners — HTTP, HTTPS with TLS passthrough by SNI, TCP.
//!
//! The edge knows nothing about the REST API: the control plane drives it through [`Edge`]'s
//! methods (list sessions, stop a tunnel, stop an agent).

pub mod agent;
pub mod bind;
pub mod bind_token;
pub mod config;
mod event_objects;
pub mod ingress;
pub mod ip_restrictions;
pub mod metrics;
mod quickack;
mod registry;
pub mod routes;
pub mod tls;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warren_store::Store;

pub use agent::AgentSession;
pub use config::{EdgeConfig, PortRange};
pub use tunnel::{Proto, Tunnel};

/// The region this edge reports to agents (SrvInfo, Auth) and in events.
pub const REGION: &str = "warren";

/// Errors starting the edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Why a command sent to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no such agent session or tunnel")]
    NotFound,
    #[error("the agent refused: {0}")]
    Refused(String),
    #[error("the agent did not answer: {0}")]
    NoAnswer(String),
}

/// The edge: shared by every listener task. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: EdgeConfig,
    pub(crate) store: Store,
    pub(crate) routes: routes::RouteTable,
    pub(crate) sessions: Mutex<registry::Registry>,
    pub(crate) tokens: bind_token::BindTokens,
    pub(crate) ca: Arc<tls::Authority>,
    pub(crate) agent_tls: Arc<rustls::ServerConfig>,
    pub(crate) public_tls: OnceLock<Arc<rustls::ServerConfig>>,
    /// Public ports shown in URLs, learned when the listeners bind.
    pub(crate) http_port: OnceLock<u16>,
    pub(crate) https_port: OnceLock<u16>,
    /// Bounds concurrent agent sessions.
    pub(crate) agent_slots: Arc<Semaphore>,
    /// Bounds concurrent visitor connections across every public port.
    pub(crate) visitor_slots: Arc<Semaphore>,
    /// Cancelled when the edge stops taking visitors (drain step one).
    pub(crate) visitors_stop: CancellationToken,
    /// Tracks visitor connections so a drain can wait for them.
    pub(crate) visitors: TaskTracker,
    /// Cancelled when agent sessions must end (drain's last step).
    pub(crate) agents_stop: CancellationToken,
    pub(crate) agents: TaskTracker,
    /// IP restrictions, reloaded when the control plane changes them.
    pub(crate) ip_restrictions: ip_restrictions::IpRestrictions,
    /// The event pipeline and usage meter, once attached.
    pub(crate) events: OnceLock<warren_events::Events>,
    /// The edge's metrics.
    pub(crate) metrics: Arc<metrics::Metrics>,
}

impl Edge {
    /// Prepares the edge: creates or loads the CA, certificates and bind-token secret in
    /// `config.data_dir`.
    pub fn new(config: EdgeConfig, store: Store) -> Result<Edge, EdgeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| EdgeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let ca = Arc::new(tls::Authority::load_or_create(&config.data_dir)?);
        let agent_key = match &config.agent_cert {
            Some((cert, key)) => tls::load_certified_key(cert, key)?,
            None => tls::agent_certified_key(&config.data_dir, &ca, &agent_names(&config))?,
        };
        let agent_tls = Arc::new(tls::server_config_for(Arc::new(agent_key))?);
        let tokens =
            bind_token::BindTokens::load_or_create(&config.data_dir).map_err(|source| {
                EdgeError::DataDir {
                    path: config.data_dir.clone(),
                    source,
                }
            })?;
        let edge = Edge {
            inner: Arc::new(Inner {
                store,
                routes: routes::RouteTable::default(),
                sessions: Mutex::new(registry::Registry::default()),
                tokens,
                ca,
                agent_tls,
                public_tls: OnceLock::new(),
                http_port: OnceLock::new(),
                https_port: OnceLock::new(),
                agent_slots: Arc::new(Semaphore::new(config::MAX_AGENT_SESSIONS)),
                visitor_slots: Arc::new(Semaphore::new(config::MAX_VISITOR_CONNECTIONS)),
                visitors_stop: CancellationToken::new(),
                visitors: TaskTracker::new(),
                agents_stop: CancellationToken::new(),
                agents: TaskTracker::new(),
                ip_restrictions: ip_restrictions::IpRestrictions::default(),
                events: OnceLock::new(),
                metrics: Arc::new(metrics::Metrics::new(config.max_endpoint_series)),
                config,
            }),
        };
        edge.init_public_tls()?;
        Ok(edge)
    }

    fn init_public_tls(&self) -> Result<(), EdgeError> {
        let operator = match &self.inner.config.public_cert {
            Some((cert, key)) => Some(Arc::new(tls::load_certified_key(cert, key)?)),
            None => None,
        };
        // The resolver asks the route table whether a name is served; a weak handle avoids a cycle.
        let weak = Arc::downgrade(&self.inner);
        let domain = self.inner.config.domain.clone();
        let resolver = tls::PublicCerts::new(
            self.inner.ca.clone(),
            operator,
            &[domain.clone(), format!("*.{domain}")],
            move |name| {
                weak.upgrade()
                    .is_some_and(|inner| inner.routes.load().host(name).is_some())
            },
        )?;
        let config = tls::public_server_config(Arc::new(resolver))?;
        let _ = self.inner.public_tls.set(Arc::new(config));
        Ok(())
    }

    /// The configuration the edge runs with.
    pub fn config(&self) -> &EdgeConfig {
        &self.inner.config
    }

    /// Attaches the event pipeline: from now on sessions and traffic emit events and meter
    /// usage through it. Call once, before serving; later calls are ignored.
    pub fn attach_events(&self, events: warren_events::Events) {
        let _ = self.inner.events.set(events);
    }

    /// The attached event pipeline, if any.
    pub fn events(&self) -> Option<&warren_events::Events> {
        self.inner.events.get()
    }

    /// The edge's metrics (agents, endpoints, connects, proxied traffic, heartbeats) in the
    /// OpenMetrics text format, appended to `out` (without the final `# EOF`).
    pub fn encode_metrics(&self, out: &mut String) {
        let agents_online = self.inner.sessions.lock().expect("sessions lock").len();
        let mut gauges = metrics::Gauges {
            agents_online,
            endpoints: [0; 4],
        };
        for tunnel in self.routes().tunnels() {
            gauges.endpoint(tunnel.proto);
        }
        self.inner.metrics.encode(&gauges, out);
    }

    /// The meter of a tunnel bound at `url` with `credential_id`: its metrics series and, when
    /// events are attached, its usage counters.
    pub(crate) fn meter(&self, url: &str, credential_id: &str, proto: Proto) -> metrics::Meter {
        let usage = self
            .events()
            .map(|events| events.usage().endpoint(url, credential_id));
        self.inner.metrics.meter(url, proto, usage)
    }

    /// The store behind the edge.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The CA certificate (PEM) agents and visitors must trust.
    pub fn ca_pem(&self) -> &str {
        self.inner.ca.pem()
    }

    /// Accepts agent connections on `listener` until the edge shuts down.
    pub async fn serve_agents(&self, listener: TcpListener) {
        agent::serve(self.clone(), listener).await
    }

    /// Serves public plain HTTP on `listener` until visitors are stopped.
    pub async fn serve_http(&self, listener: TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            let _ = self.inner.http_port.set(
                self.inner
                    .config
                    .public_http_port
                    .unwrap_or_else(|| addr.port()),
            );
        }
        ingress::http::serve(self.clone(), listener).await
    }

    /// Serves public HTTPS and TLS passthrough (by SNI) on `listener` until visitors are stopped.
    pub async fn serve_https(&self, listener: TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            let _ = self.inner.https_port.set(
                self.inner
                    .config
                    .public_https_port
                    .unwrap_or_else(|| addr.port()),
            );
        }
        ingress::https::serve(self.clone(), listener).await
    }

    /// Live agent sessions.
    pub fn sessions(&self) -> Vec<Arc<AgentSession>> {
        self.inner.sessions.lock().expect("sessions lock").all()
    }

    /// One live agent session by id.
    pub fn session(&self, id: &str) -> Option<Arc<AgentSession>> {
        self.inner.sessions.lock().expect("sessions lock").get(id)
    }

    /// The current route table snapshot.
    pub fn routes(&self) -> Arc<routes::Snapshot> {
        self.inner.routes.load()
    }

    /// Closes the tunnel `tunnel_id` and tells its agent (StopTunnel): the agent's listener for it
    /// ends with `message` and `error_code`.
    pub async fn stop_tunnel(
        &self,
        tunnel_id: &str,
        message: &str,
        error_code: Option<&str>,
    ) -> Result<(), CommandError> {
        let session = self
            .sessions()
            .into_iter()
            .find(|s| s.tunnel(tunnel_id).is_some())
            .ok_or(CommandError::NotFound)?;
        session
            .stop_tunnel(self, tunnel_id, message, error_code)
            .await
    }

    /// Asks the agent of session `session_id` to stop (the Stop command).
    pub async fn stop_agent(&self, session_id: &str) -> Result<(), CommandError> {
        let session = self.session(session_id).ok_or(CommandError::NotFound)?;
        session.command(agent::AgentCommand::Stop).await
    }

    /// Asks the agent of session `session_id` to restart (the Restart command).
    pub async fn restart_agent(&self, session_id: &str) -> Result<(), CommandError> {
        let session = self.session(session_id).ok_or(CommandError::NotFound)?;
        session.command(agent::AgentCommand::Restart).await
    }

    /// Ends agent session `session_id` abruptly (closes its connection; the agent reconnects).
    /// Its `agent_session_stop.v0` says `stopped by operator`.
    pub fn disconnect(&self, session_id: &str) -> bool {
        match self.session(session_id) {
            Some(session) => {
                session.close();
                true
            }
            None => false,
        }
    }

    /// Drains the edge: stop accepting visitors, give in-flight visitor connections up to the
    /// drain timeout to finish, then send GOAWAY to every agent and wait for their sessions to end.
    /// GOAWAY comes last because the official SDK kills every open stream when it receives one.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.visitors_stop.cancel();
        inner.visitors.close();
        if tokio::time::timeout(inner.config.drain_timeout, inner.visitors.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout: closing remaining visitor connections");
        }
        inner.agents_stop.cancel();
        inner.agents.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), inner.agents.wait()).await;
    }

    /// A token that is cancelled once the edge stops taking visitors.
    pub fn visitors_stopped(&self) -> CancellationToken {
        self.inner.visitors_stop.clone()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The public URL for a host-routed endpoint.
    pub(crate) fn host_url(&self, proto: Proto, host: &str) -> String {
        let (scheme, port, default) = match proto {
            Proto::Http => ("http", self.inner.http_port.get(), 80),
            Proto::Https => ("https", self.inner.https_port.get(), 443),
            Proto::Tls => ("tls", self.inner.https_port.get(), 443),
            Proto::Tcp => ("tcp", None, 0),
        };
        match port {
            Some(&p) if p != default => format!("{scheme}://{host}:{p}"),
            _ => format!("{scheme}://{host}"),
        }
    }

    /// Revokes credential `credential_id` (the control plane deleted it): every live agent
    /// session authenticated with it is closed now and its routes removed, and an Auth with it
    /// still in flight is refused. Returns how many sessions were closed.
    pub fn revoke_credential(&self, credential_id: &str) -> usize {
        agent::revoke_credential(self, credential_id)
    }

    /// Applies credential `credential_id`'s new ACL `rules` (already validated and stored) to
    /// its live sessions: later Binds check them, and each bound endpoint they no longer permit
    /// is stopped with StopTunnel and ERR_NGROK_316 (ERR_NGROK_308 for TCP addresses). The
    /// stored rules are applied once more shortly after, for Auths and Binds that were in
    /// flight. Returns the ids of the tunnels stopped now. Needs a Tokio runtime.
    pub fn credential_acl_changed(&self, credential_id: &str, rules: &[String]) -> Vec<String> {
        agent::credential_acl_changed(self, credential_id, rules)
    }

    /// Service user `owner_id` was deactivated (already stored): closes every live session of
    /// the credentials it owns. New Auths are refused by the owner check against the store.
    /// Returns how many sessions were closed.
    pub fn owner_deactivated(&self, owner_id: &str) -> usize {
        agent::owner_deactivated(self, owner_id)
    }

    /// Reloads the IP restrictions from the store (the control plane changed a policy, rule or
    /// restriction) and closes the live agent sessions the new `agent` restrictions refuse.
    /// Returns once the new snapshot is in place.
    pub async fn reload_ip_restrictions(&self) -> Result<(), warren_store::StoreError> {
        self.inner.ip_restrictions.reload(&self.inner.store).await?;
        agent::close_ip_restricted(self);
        Ok(())
    }

    /// Whether `ip` passes the IP restrictions of `kind` (from the in-memory snapshot; the
    /// store is read only before the first successful load).
    pub async fn ip_admitted(
        &self,
        kind: ip_restrictions::RestrictionKind,
        ip: std::net::IpAddr,
    ) -> Result<bool, warren_store::StoreError> {
        self.inner
            .ip_restrictions
            .check(&self.inner.store, kind, ip)
            .await
    }

    /// Service user `owner_id` was reactivated (already stored): its credentials may connect
    /// again.
    pub fn owner_reactivated(&self, owner_id: &str) {
        agent::owner_reactivated(self, owner_id)
    }
}

/// Names the generated agent certificate covers.
fn agent_names(config: &EdgeConfig) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    for name in std::iter::once(&config.domain).chain(&config.agent_names) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The visitor's address and the public listener address it reached.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VisitorAddrs {
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
}
