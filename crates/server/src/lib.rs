//! `warrend`: wiring of the store, the edge and the API listener, first-start bootstrap, signals
//! and the graceful drain. `main` parses settings and calls [`run`]; tests call [`start`] with
//! port-0 listeners and get the bound addresses back.
//!
//! # Layout
//!
//! - [`config`] — flags, environment, TOML file, defaults.
//! - [`bootstrap`] — the admin API key and first authtoken on an empty store.
//! - this file: [`start`], [`Server`], [`run`].

pub mod bootstrap;
pub mod config;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use warren_edge::Edge;
use warren_store::Store;

pub use bootstrap::Created;
pub use config::Config;

/// A running server: its bound addresses and handles.
pub struct Server {
    pub agent_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// Credentials created on this (first) start, shown once.
    pub created: Option<Created>,
    edge: Edge,
    tasks: JoinSet<()>,
}

/// Opens the store, creates first credentials if it is empty, binds every listener and starts
/// serving. Returns once everything is listening.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact(&config.database_url)))?;
    let created = bootstrap::ensure(&store, &config.bootstrap).await?;
    let edge = Edge::new(config.edge.clone(), store.clone())?;

    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {what} address {addr}"))
    };
    let agents = bind(config.agent_addr, "agent").await?;
    let http = bind(config.http_addr, "public HTTP").await?;
    let https = bind(config.https_addr, "public HTTPS").await?;
    let api = bind(config.api_addr, "API").await?;
    let server_addrs = (
        agents.local_addr()?,
        http.local_addr()?,
        https.local_addr()?,
        api.local_addr()?,
    );

    let base_url = config.api_url.clone().unwrap_or_else(|| {
        let api_addr = server_addrs.3;
        if api_addr.ip().is_unspecified() {
            format!("http://localhost:{}", api_addr.port())
        } else {
            format!("http://{api_addr}")
        }
    });
    let mut events_config = config.events.clone();
    events_config.api_url = base_url.trim_end_matches('/').to_owned();
    let events = warren_events::Events::new(store, events_config, config.clock.clone());
    events
        .start()
        .await
        .context("starting event export from the store")?;
    edge.attach_events(events);

    let mut tasks = JoinSet::new();
    {
        let edge2 = edge.clone();
        tasks.spawn(async move { edge2.serve_agents(agents).await });
        let edge2 = edge.clone();
        tasks.spawn(async move { edge2.serve_http(http).await });
        let edge2 = edge.clone();
        tasks.spawn(async move { edge2.serve_https(https).await });
        let stop = edge.visitors_stopped();
        let state = warren_api::ApiState::new(edge.store().clone(), edge.clone(), &base_url);
        tasks.spawn(warren_api::serve(api, state, async move {
            stop.cancelled().await
        }));
    }
    let (agent_addr, http_addr, https_addr, api_addr) = server_addrs;
    Ok(Server {
        agent_addr,
        http_addr,
        https_addr,
        api_addr,
        created,
        edge,
        tasks,
    })
}

impl Server {
    /// The edge, for tests and the control plane.
    pub fn edge(&self) -> &Edge {
        &self.edge
    }

    /// Drains and stops: visitors first, then agents (see [`Edge::shutdown`]).
    pub async fn shutdown(mut self) {
        self.edge.shutdown().await;
        if let Some(events) = self.edge.events() {
            events.shutdown().await;
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Runs `warrend` until `signal` resolves, then drains.
pub async fn run(config: Config, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
    let server = start(config.clone()).await?;
    if let Some(created) = &server.created {
        println!("{}", created.announcement(&config, &server));
    }
    tracing::info!(
        agents = %server.agent_addr,
        http = %server.http_addr,
        https = %server.https_addr,
        api = %server.api_addr,
        domain = %config.edge.domain,
        "warrend is listening"
    );
    signal.await;
    tracing::info!("draining: no new visitors; waiting for in-flight connections");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://warren:s3cret@db:5432/warren"),
            "postgres://warren:***@db:5432/warren"
        );
        assert_eq!(
            super::redact("sqlite://warren-data/warren.db"),
            "sqlite://warren-data/warren.db"
        );
    }
}
