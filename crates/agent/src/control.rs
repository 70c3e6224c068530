//! The interface between the endpoint supervisor and what controls or shows it: the local agent
//! API and the CLI's status view. Snapshots are plain data; commands are async and return a typed
//! error that says whose fault a failure is (the caller's input, a missing name, or the edge).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use crate::config::EndpointConfig;

/// The session to the edge as the agent sees it (the SDK's own state).
pub use warren::SessionState;

/// A snapshot of the agent.
#[derive(Debug, Clone)]
pub struct AgentStatus {
    /// Session state.
    pub state: SessionState,
    /// Last heartbeat round trip to the edge.
    pub latency: Option<Duration>,
    /// This agent's version (`CARGO_PKG_VERSION`).
    pub agent_version: String,
    /// The edge's address (`host:port`).
    pub connect_url: String,
    /// The session id the edge gave us (`""` before the first connect).
    pub client_id: String,
}

/// Where an endpoint is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointState {
    /// Waiting for the edge to accept the bind.
    Starting,
    /// Bound: its URL answers.
    Online,
    /// The edge refused or stopped it; not retried until re-configured.
    Failed {
        /// The edge's message.
        message: String,
        /// `ERR_NGROK_…` code when the edge gave one.
        code: Option<String>,
    },
}

/// Traffic counters of one endpoint, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointCounters {
    /// Connections accepted.
    pub conns_total: u64,
    /// Connections open now.
    pub conns_open: u64,
    /// HTTP requests forwarded (HTTP endpoints only).
    pub http_requests: u64,
    /// Bytes from visitors to the upstream.
    pub bytes_in: u64,
    /// Bytes from the upstream to visitors.
    pub bytes_out: u64,
}

/// A snapshot of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    /// Its definition.
    pub config: EndpointConfig,
    /// `https`, `http`, `tcp` or `tls`.
    pub proto: String,
    /// The public URL once bound.
    pub public_url: Option<String>,
    /// The edge's endpoint id once bound.
    pub id: Option<String>,
    /// State.
    pub state: EndpointState,
    /// Counters.
    pub counters: EndpointCounters,
    /// When it was started on this agent.
    pub started_at: SystemTime,
}

/// Why a control command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No endpoint with that name.
    #[error("no endpoint named `{0}`")]
    NotFound(String),
    /// An endpoint with that name exists already.
    #[error("an endpoint named `{0}` already exists")]
    AlreadyExists(String),
    /// The definition is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The edge refused the bind.
    #[error("the edge refused the endpoint: {message}")]
    Edge {
        /// The edge's message.
        message: String,
        /// `ERR_NGROK_…` code when the edge gave one.
        code: Option<String>,
    },
    /// The agent is shutting down.
    #[error("the agent is shutting down")]
    ShuttingDown,
}

/// What the local API and the status view may ask of the supervisor.
pub trait Control: Send + Sync + 'static {
    /// Agent snapshot.
    fn status(&self) -> AgentStatus;
    /// All endpoints, in start order.
    fn endpoints(&self) -> Vec<EndpointStatus>;
    /// One endpoint by name.
    fn endpoint(&self, name: &str) -> Option<EndpointStatus>;
    /// Starts an endpoint and waits until the edge accepted or refused the bind.
    fn start(&self, spec: EndpointConfig) -> BoxFuture<'_, Result<EndpointStatus, ControlError>>;
    /// Replaces an endpoint's definition (stop + start; `Ok(true)` = it existed).
    fn replace(
        &self,
        spec: EndpointConfig,
    ) -> BoxFuture<'_, Result<(bool, EndpointStatus), ControlError>>;
    /// Stops an endpoint (its URL stops answering before this returns).
    fn stop(&self, name: &str) -> BoxFuture<'_, Result<(), ControlError>>;
    /// The upstream of a running endpoint, for replaying captured requests.
    fn upstream(&self, name: &str) -> Option<warren::Upstream>;
}

/// A shared handle to a [`Control`].
pub type SharedControl = Arc<dyn Control>;

/// The live counters behind [`EndpointCounters`], shared by the forwarding tasks of one endpoint.
#[derive(Debug, Default)]
pub struct CounterCells {
    /// Connections accepted.
    pub conns_total: std::sync::atomic::AtomicU64,
    /// Connections open now.
    pub conns_open: std::sync::atomic::AtomicU64,
    /// HTTP requests forwarded.
    pub http_requests: std::sync::atomic::AtomicU64,
    /// Bytes from visitors to the upstream.
    pub bytes_in: std::sync::atomic::AtomicU64,
    /// Bytes from the upstream to visitors.
    pub bytes_out: std::sync::atomic::AtomicU64,
}

impl CounterCells {
    /// A consistent-enough copy for display.
    pub fn snapshot(&self) -> EndpointCounters {
        use std::sync::atomic::Ordering::Relaxed;
        EndpointCounters {
            conns_total: self.conns_total.load(Relaxed),
            conns_open: self.conns_open.load(Relaxed),
            http_requests: self.http_requests.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}
