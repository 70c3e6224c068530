//! `warrend` settings: every setting is a command-line flag, a `WARREN_…` environment variable and
//! a key of an optional TOML file. Precedence: flag, then environment, then file, then default.
//! Unknown file keys are rejected.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use warren_edge::{EdgeConfig, PortRange};

/// Command line of `warrend`.
#[derive(Debug, Parser)]
#[command(
    name = "warrend",
    version,
    about = "Warren's server: the edge agents dial, public HTTP/HTTPS/TCP/TLS ingress, and the API.",
    long_about = "Warren's server: the edge agents dial, public HTTP/HTTPS/TCP/TLS ingress, and the API.\n\n\
        With no flags it keeps everything in ./warren-data (SQLite database, generated CA and \
        certificates) and serves names under `localhost`. On first start with an empty database it \
        prints an admin API key and an authtoken once; set WARREN_ADMIN_API_KEY / WARREN_AUTHTOKEN \
        to choose them instead."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

/// Subcommands; with none, `warrend` runs the server.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Run,
    /// Print the CA certificate (PEM) agents must trust, creating it on first use.
    Ca,
}

/// Settings shared by the flags, the environment and the TOML file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Settings {
    /// TOML file with any of these settings (keys spelled like the flags, with `_`).
    #[arg(long, env = "WARREN_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, the CA and certificates [default: ./warren-data].
    #[arg(long, env = "WARREN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… [default: sqlite://DATA_DIR/warren.db].
    #[arg(long, env = "WARREN_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Address agents connect to (TLS) [default: 0.0.0.0:4443].
    #[arg(long, env = "WARREN_AGENT_ADDR", value_name = "ADDR")]
    pub agent_addr: Option<SocketAddr>,
    /// Public HTTP address [default: 0.0.0.0:8080].
    #[arg(long, env = "WARREN_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Public HTTPS and TLS-passthrough address [default: 0.0.0.0:8443].
    #[arg(long, env = "WARREN_HTTPS_ADDR", value_name = "ADDR")]
    pub https_addr: Option<SocketAddr>,
    /// REST API address (ngrok API v2 compatible; `GET /healthz` unauthenticated)
    /// [default: 127.0.0.1:9000].
    #[arg(long, env = "WARREN_API_ADDR", value_name = "ADDR")]
    pub api_addr: Option<SocketAddr>,
    /// Public base URL of the REST API, used in every `uri` field it returns
    /// [default: http://API_ADDR, with localhost for an unspecified address].
    #[arg(long, env = "WARREN_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// Ports for TCP endpoints, FIRST-LAST, or 0 to let the OS choose [default: 20000-20999].
    #[arg(long, env = "WARREN_TCP_PORTS", value_name = "RANGE")]
    pub tcp_ports: Option<String>,
    /// Address TCP endpoint listeners bind [default: 0.0.0.0].
    #[arg(long, env = "WARREN_TCP_BIND_IP", value_name = "IP")]
    pub tcp_bind_ip: Option<IpAddr>,
    /// Base domain for generated endpoint names and TCP URLs [default: localhost].
    #[arg(long, env = "WARREN_DOMAIN", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Extra names or IPs the generated agent certificate covers (comma-separated).
    #[arg(
        long,
        env = "WARREN_AGENT_NAMES",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub agent_names: Option<Vec<String>>,
    /// PEM certificate chain for the agent listener, instead of the generated one.
    #[arg(
        long,
        env = "WARREN_AGENT_TLS_CERT",
        value_name = "FILE",
        requires = "agent_tls_key"
    )]
    pub agent_tls_cert: Option<PathBuf>,
    /// PEM private key for --agent-tls-cert.
    #[arg(
        long,
        env = "WARREN_AGENT_TLS_KEY",
        value_name = "FILE",
        requires = "agent_tls_cert"
    )]
    pub agent_tls_key: Option<PathBuf>,
    /// PEM certificate chain for public HTTPS (e.g. a wildcard for the domain), instead of
    /// certificates issued on demand by the generated CA.
    #[arg(
        long,
        env = "WARREN_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "WARREN_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Public HTTP port shown in endpoint URLs, when a load balancer changes it.
    #[arg(long, env = "WARREN_PUBLIC_HTTP_PORT", value_name = "PORT")]
    pub public_http_port: Option<u16>,
    /// Public HTTPS port shown in endpoint URLs, when a load balancer changes it.
    #[arg(long, env = "WARREN_PUBLIC_HTTPS_PORT", value_name = "PORT")]
    pub public_https_port: Option<u16>,
    /// Seconds between the edge's heartbeat probes to each agent [default: 10].
    #[arg(long, env = "WARREN_HEARTBEAT_INTERVAL", value_name = "SECONDS")]
    pub heartbeat_interval: Option<u64>,
    /// Seconds without a heartbeat echo before an agent session is closed [default: 15].
    #[arg(long, env = "WARREN_HEARTBEAT_TOLERANCE", value_name = "SECONDS")]
    pub heartbeat_tolerance: Option<u64>,
    /// Most concurrent agent sessions one authtoken may have [default: 1000].
    #[arg(long, env = "WARREN_MAX_SESSIONS_PER_CREDENTIAL", value_name = "N")]
    pub max_sessions_per_credential: Option<usize>,
    /// Seconds in-flight visitor connections get to finish on SIGTERM [default: 10].
    #[arg(long, env = "WARREN_DRAIN_TIMEOUT", value_name = "SECONDS")]
    pub drain_timeout: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "WARREN_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Whether agents may bind a custom domain (not under --domain) only once a reserved domain
    /// covers it, and a chosen TCP address only once it is reserved (`true` or `false`)
    /// [default: true].
    #[arg(
        long,
        env = "WARREN_REQUIRE_RESERVATIONS",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub require_reservations: Option<bool>,
    /// Failed deliveries after which a batch of events is parked for a destination (visible on
    /// the destination and requeued by `POST /event_destinations/{id}/requeue`) [default: 12].
    #[arg(long, env = "WARREN_EVENT_MAX_ATTEMPTS", value_name = "N")]
    pub event_max_attempts: Option<u32>,
    /// Longest wait in seconds between delivery attempts to a failing destination (the wait
    /// starts at 1 s and doubles) [default: 300].
    #[arg(long, env = "WARREN_EVENT_BACKOFF_MAX", value_name = "SECONDS")]
    pub event_backoff_max: Option<u64>,
    /// Events held in memory on their way to the outbox; when full, traffic events are dropped
    /// and counted, other events wait [default: 65536].
    #[arg(long, env = "WARREN_EVENT_QUEUE_CAPACITY", value_name = "N")]
    pub event_queue_capacity: Option<usize>,
    /// Seconds between writes of the usage counters to the database (also at every clock
    /// hour and on shutdown) [default: 10].
    #[arg(long, env = "WARREN_USAGE_FLUSH_INTERVAL", value_name = "SECONDS")]
    pub usage_flush_interval: Option<u64>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The first credentials, when the operator provisions them instead of letting `warrend` make them.
#[derive(Clone, Default)]
pub struct Bootstrap {
    /// `WARREN_ADMIN_API_KEY`.
    pub admin_api_key: Option<String>,
    /// `WARREN_AUTHTOKEN`.
    pub authtoken: Option<String>,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field(
                "admin_api_key",
                &self.admin_api_key.as_ref().map(|_| "<hidden>"),
            )
            .field("authtoken", &self.authtoken.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Bootstrap {
    /// Reads `WARREN_ADMIN_API_KEY` and `WARREN_AUTHTOKEN`.
    pub fn from_env() -> Bootstrap {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Bootstrap {
            admin_api_key: var("WARREN_ADMIN_API_KEY"),
            authtoken: var("WARREN_AUTHTOKEN"),
        }
    }
}

/// Resolved settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub agent_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// Base of every API `uri`; `None` = derived from the bound API address.
    pub api_url: Option<String>,
    pub log_format: LogFormat,
    pub edge: EdgeConfig,
    pub bootstrap: Bootstrap,
    /// Event export and usage metering.
    pub events: warren_events::EventsConfig,
    /// Wall time for event timestamps and usage hours (tests inject a manual clock).
    pub clock: std::sync::Arc<dyn warren_events::Clock>,
}

impl Config {
    /// Defaults with everything under `data_dir` and every listener on `ip` port 0 (for tests).
    pub fn ephemeral(data_dir: &Path, ip: IpAddr) -> Config {
        let any = SocketAddr::new(ip, 0);
        let mut edge = EdgeConfig::new(data_dir);
        edge.tcp_ports = PortRange::ANY;
        edge.tcp_bind_ip = ip;
        Config {
            data_dir: data_dir.to_owned(),
            database_url: sqlite_url(data_dir),
            agent_addr: any,
            http_addr: any,
            https_addr: any,
            api_addr: any,
            api_url: None,
            log_format: LogFormat::Text,
            edge,
            bootstrap: Bootstrap::default(),
            events: warren_events::EventsConfig::default(),
            clock: std::sync::Arc::new(warren_events::SystemClock),
        }
    }
}

fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("warren.db").display())
}

impl Settings {
    /// Fills unset settings from the TOML file named by `--config`, if any.
    pub fn merge_file(mut self) -> anyhow::Result<Settings> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file: Settings = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        macro_rules! fill {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = file.$field; } )* };
        }
        fill!(
            data_dir,
            database_url,
            agent_addr,
            http_addr,
            https_addr,
            api_addr,
            api_url,
            tcp_ports,
            tcp_bind_ip,
            domain,
            agent_names,
            agent_tls_cert,
            agent_tls_key,
            tls_cert,
            tls_key,
            public_http_port,
            public_https_port,
            heartbeat_interval,
            heartbeat_tolerance,
            max_sessions_per_credential,
            drain_timeout,
            log_format,
            require_reservations,
            event_max_attempts,
            event_backoff_max,
            event_queue_capacity,
            usage_flush_interval
        );
        Ok(self)
    }

    /// Applies defaults and checks values.
    pub fn resolve(self, bootstrap: Bootstrap) -> anyhow::Result<Config> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("warren-data"));
        let database_url = self.database_url.unwrap_or_else(|| sqlite_url(&data_dir));
        let mut edge = EdgeConfig::new(&data_dir);
        if let Some(domain) = self.domain {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            warren_model::host::HostName::parse(&domain)
                .map_err(|e| anyhow::anyhow!("invalid --domain {domain:?}: {e}"))?;
            edge.domain = domain;
        }
        if let Some(ports) = self.tcp_ports {
            edge.tcp_ports = PortRange::parse(&ports).map_err(anyhow::Error::msg)?;
        }
        if let Some(ip) = self.tcp_bind_ip {
            edge.tcp_bind_ip = ip;
        }
        edge.agent_names = self.agent_names.unwrap_or_default();
        edge.agent_cert = pair(self.agent_tls_cert, self.agent_tls_key, "agent_tls")?;
        edge.public_cert = pair(self.tls_cert, self.tls_key, "tls")?;
        edge.public_http_port = self.public_http_port;
        edge.public_https_port = self.public_https_port;
        for (value, field, name) in [
            (
                self.heartbeat_interval,
                &mut edge.heartbeat_interval,
                "heartbeat_interval",
            ),
            (
                self.heartbeat_tolerance,
                &mut edge.heartbeat_tolerance,
                "heartbeat_tolerance",
            ),
        ] {
            if let Some(seconds) = value {
                if seconds == 0 {
                    bail!("{name} must be at least 1 second");
                }
                *field = Duration::from_secs(seconds);
            }
        }
        if let Some(n) = self.max_sessions_per_credential {
            if n == 0 {
                bail!("max_sessions_per_credential must be at least 1");
            }
            edge.max_sessions_per_credential = n;
        }
        if let Some(seconds) = self.drain_timeout {
            edge.drain_timeout = Duration::from_secs(seconds);
        }
        if let Some(required) = self.require_reservations {
            edge.require_reservations = required;
        }
        let mut events = warren_events::EventsConfig::default();
        if let Some(n) = self.event_max_attempts {
            if n == 0 {
                bail!("event_max_attempts must be at least 1");
            }
            events.max_attempts = n;
        }
        if let Some(seconds) = self.event_backoff_max {
            if seconds == 0 {
                bail!("event_backoff_max must be at least 1 second");
            }
            events.backoff_max = Duration::from_secs(seconds).max(events.backoff_base);
        }
        if let Some(n) = self.event_queue_capacity {
            if !(1..=10_000_000).contains(&n) {
                bail!("event_queue_capacity must be between 1 and 10000000");
            }
            events.queue_capacity = n;
        }
        if let Some(seconds) = self.usage_flush_interval {
            if !(1..=3600).contains(&seconds) {
                bail!("usage_flush_interval must be between 1 and 3600 seconds");
            }
            events.usage_flush_interval = Duration::from_secs(seconds);
        }
        Ok(Config {
            data_dir,
            database_url,
            agent_addr: self.agent_addr.unwrap_or(([0, 0, 0, 0], 4443).into()),
            http_addr: self.http_addr.unwrap_or(([0, 0, 0, 0], 8080).into()),
            https_addr: self.https_addr.unwrap_or(([0, 0, 0, 0], 8443).into()),
            api_addr: self.api_addr.unwrap_or(([127, 0, 0, 1], 9000).into()),
            api_url: match self.api_url {
                Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    bail!("api_url must start with http:// or https://, got `{url}`")
                }
                other => other,
            },
            log_format: self.log_format.unwrap_or_default(),
            edge,
            bootstrap,
            events,
            clock: std::sync::Arc::new(warren_events::SystemClock),
        })
    }
}

fn pair(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    name: &str,
) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => bail!("{name}_cert and {name}_key must be given together"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Settings {
        let mut argv = vec!["warrend"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Settings::default().resolve(Bootstrap::default()).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("warren-data"));
        assert_eq!(config.database_url, "sqlite://warren-data/warren.db");
        assert_eq!(config.agent_addr, "0.0.0.0:4443".parse().unwrap());
        assert_eq!(config.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.https_addr, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(config.api_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            config.edge.tcp_ports,
            PortRange::parse("20000-20999").unwrap()
        );
        assert_eq!(config.edge.domain, "localhost");
        assert_eq!(config.edge.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(config.edge.heartbeat_tolerance, Duration::from_secs(15));
        assert_eq!(config.edge.max_sessions_per_credential, 1000);
        assert!(config.edge.require_reservations);
    }

    #[test]
    fn reservations_can_be_made_optional() {
        let off = parse(&["--require-reservations=false"])
            .resolve(Bootstrap::default())
            .unwrap();
        assert!(!off.edge.require_reservations);
        let on = parse(&["--require-reservations", "true"])
            .resolve(Bootstrap::default())
            .unwrap();
        assert!(on.edge.require_reservations);
        assert!(Cli::try_parse_from(["warrend", "--require-reservations=maybe"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warren.toml");
        std::fs::write(&file, "require_reservations = false\n").unwrap();
        let config = parse(&["--config", file.to_str().unwrap()])
            .merge_file()
            .unwrap()
            .resolve(Bootstrap::default())
            .unwrap();
        assert!(!config.edge.require_reservations);
    }

    #[test]
    fn file_fills_what_flags_leave_unset_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warren.toml");
        std::fs::write(
            &file,
            "domain = \"example.com\"\nhttp_addr = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let settings = parse(&[
            "--config",
            file.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:2",
        ]);
        let config = settings
            .merge_file()
            .unwrap()
            .resolve(Bootstrap::default())
            .unwrap();
        assert_eq!(config.edge.domain, "example.com");
        assert_eq!(config.http_addr, "127.0.0.1:2".parse().unwrap());

        std::fs::write(&file, "domian = \"example.com\"\n").unwrap();
        let error = parse(&["--config", file.to_str().unwrap()])
            .merge_file()
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("unknown field `domian`"),
            "{error:#}"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["warrend", "--http-addr", "nope"]).is_err());
        let bad_range = parse(&["--tcp-ports", "9-1"]).resolve(Bootstrap::default());
        assert!(bad_range.is_err());
        let bad_domain = parse(&["--domain=-bad-.com"]).resolve(Bootstrap::default());
        assert!(bad_domain.is_err());
        assert!(Cli::try_parse_from(["warrend", "--tls-cert", "a.pem"]).is_err());
        for zero in [
            "--heartbeat-interval=0",
            "--heartbeat-tolerance=0",
            "--max-sessions-per-credential=0",
        ] {
            assert!(
                parse(&[zero]).resolve(Bootstrap::default()).is_err(),
                "{zero}"
            );
        }
        let set = parse(&["--heartbeat-interval=3", "--max-sessions-per-credential=7"])
            .resolve(Bootstrap::default())
            .unwrap();
        assert_eq!(set.edge.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(set.edge.max_sessions_per_credential, 7);
    }
}
