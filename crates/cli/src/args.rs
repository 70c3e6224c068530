//! The command line of `warren`, as clap types. Nothing here reads the environment or a file:
//! environment variables are applied by [`crate::settings`] (so tests pass them as a map), and
//! each flag's help names the variable that stands in for it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Command line of `warren`.
#[derive(Debug, Parser)]
#[command(
    name = "warren",
    version,
    about = "The Warren agent: puts local services on public URLs through a Warren edge.",
    long_about = "The Warren agent: puts local services on public URLs through a Warren edge.\n\n\
        Examples:\n  \
        warren http 8080\n  \
        warren http https://localhost:8443 --url https://cam1.site1.example.com\n  \
        warren tcp 22\n  \
        warren tls 443\n  \
        warren start --all --config /etc/warren/agent.yml\n\n\
        Settings come from flags, then WARREN_* environment variables, then the config files, \
        then defaults.\n\n\
        Exit codes: 0 stopped cleanly (signal, remote stop, command done); 1 failure (bad \
        config, edge refused the credential, service error); 2 usage error; 130 interrupted \
        again while shutting down."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a local HTTP service on a public https:// (or http://) URL.
    Http(HttpArgs),
    /// Serve a local TCP service on a public tcp://host:port address.
    Tcp(TcpArgs),
    /// Serve a local TLS service on a public tls:// host name (TLS passes through to it).
    Tls(TlsArgs),
    /// Run endpoints defined in the config files.
    Start(StartArgs),
    /// Config file commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the agent as a systemd service.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Manage the fleet through Warren's REST API (service users, authtokens, domains, agents,
    /// IP policies, event export, live events, usage).
    Api(crate::api_cmd::ApiArgs),
    /// Print the version.
    Version,
}

/// Settings of the agent itself, shared by `http`, `tcp`, `tls` and `start`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentFlags {
    /// Authtoken for the edge [env: WARREN_AUTHTOKEN, then NGROK_AUTHTOKEN].
    #[arg(long, value_name = "TOKEN")]
    pub authtoken: Option<String>,
    /// Edge address, host:port [env: WARREN_CONNECT_URL] [default: localhost:4443].
    #[arg(long, value_name = "HOST:PORT")]
    pub connect_url: Option<String>,
    /// CA for the edge's certificate: a PEM file, or `host` for the system roots
    /// [env: WARREN_CONNECT_CAS] [default: host].
    #[arg(long, value_name = "PEM|host")]
    pub connect_cas: Option<String>,
    /// Session metadata shown in the edge's API (at most 4096 bytes) [env: WARREN_METADATA].
    #[arg(long, value_name = "TEXT")]
    pub metadata: Option<String>,
    #[command(flatten)]
    pub config: ConfigFlag,
    /// Local agent API and inspector address, or `false` to turn it off
    /// [env: WARREN_WEB_ADDR] [default: 127.0.0.1:4040].
    #[arg(long, value_name = "ADDR|false", value_parser = parse_web_addr)]
    pub web_addr: Option<WebAddr>,
    /// Where log lines go: stdout, stderr, false (nowhere) or a file path [default: stdout,
    /// or nowhere while the status view is shown].
    #[arg(long, value_name = "stdout|stderr|false|PATH")]
    pub log: Option<String>,
    /// Least severe log level written [env: WARREN_LOG, a tracing filter] [default: info].
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Log line format [env: WARREN_LOG_FORMAT] [default: term on a terminal, else logfmt].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// `--config`, on every command that reads config files.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigFlag {
    /// Config file; repeat to merge several, later ones winning [env: WARREN_CONFIG,
    /// comma-separated] [default: $XDG_CONFIG_HOME/warren/warren.yml or
    /// ~/.config/warren/warren.yml, when it exists].
    #[arg(long = "config", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `warren http`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// The local service: a port (8080), host:port, or a URL (https://localhost:8443).
    #[arg(value_name = "UPSTREAM")]
    pub upstream: String,
    /// Public URL: https://host, http://host, or a bare host name (https)
    /// [default: a generated https:// name].
    #[arg(long, value_name = "URL", conflicts_with = "domain")]
    pub url: Option<String>,
    /// Public host name (the same as --url https://DOMAIN).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// PROXY protocol version to send to the upstream ahead of each connection.
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub proxy_proto: Option<u8>,
    /// HTTP version spoken to the upstream [default: http1].
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub upstream_protocol: Option<UpstreamProtocol>,
    /// Let several agents serve this URL, the edge balancing between them.
    #[arg(long)]
    pub pooling_enabled: bool,
    /// Capture requests for the inspector and the status view (`--inspect=false` turns it
    /// off) [default: true].
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub inspect: Option<bool>,
    /// Endpoint name, in the local API and the logs [default: command_line].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub agent: AgentFlags,
}

/// `warren tcp`.
#[derive(Debug, Clone, Args)]
pub struct TcpArgs {
    /// The local service: a port (22) or host:port.
    #[arg(value_name = "UPSTREAM")]
    pub upstream: String,
    /// Public address, tcp://host:port [default: a port the edge picks].
    #[arg(long, value_name = "URL", conflicts_with = "remote_addr")]
    pub url: Option<String>,
    /// Reserved public address, host:port (the same as --url tcp://HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub remote_addr: Option<String>,
    /// PROXY protocol version to send to the upstream ahead of each connection.
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub proxy_proto: Option<u8>,
    /// Let several agents serve this address, the edge balancing between them.
    #[arg(long)]
    pub pooling_enabled: bool,
    /// Endpoint name, in the local API and the logs [default: command_line].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub agent: AgentFlags,
}

/// `warren tls`.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// The local TLS service: a port (443) or host:port.
    #[arg(value_name = "UPSTREAM")]
    pub upstream: String,
    /// Public URL, tls://host [default: a generated name].
    #[arg(long, value_name = "URL", conflicts_with = "domain")]
    pub url: Option<String>,
    /// Public host name (the same as --url tls://DOMAIN).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// PROXY protocol version to send to the upstream ahead of each connection.
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub proxy_proto: Option<u8>,
    /// Let several agents serve this host name, the edge balancing between them.
    #[arg(long)]
    pub pooling_enabled: bool,
    /// Endpoint name, in the local API and the logs [default: command_line].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub agent: AgentFlags,
}

/// `warren start`.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Names of the config's endpoints to run.
    #[arg(value_name = "NAME", conflicts_with_all = ["all", "none"])]
    pub names: Vec<String>,
    /// Run every endpoint of the config (also those added by a reload).
    #[arg(long, conflicts_with = "none")]
    pub all: bool,
    /// Run no endpoint: connect only (endpoints can be started through the local API).
    #[arg(long)]
    pub none: bool,
    #[command(flatten)]
    pub agent: AgentFlags,
}

/// `warren config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config files: prints `Valid configuration file at PATH`, or the error
    /// (file:line:column: key: problem) and exits 1.
    Check(ConfigFlag),
}

/// `warren service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write a systemd unit running `warren start --all --config PATH`, then enable and start
    /// it.
    Install(ServiceInstallArgs),
    /// Stop and disable the service, and remove its unit file.
    Uninstall(ServiceUninstallArgs),
    /// Start the service (`systemctl start`).
    Start(ServiceNameArgs),
    /// Stop the service (`systemctl stop`).
    Stop(ServiceNameArgs),
    /// Restart the service (`systemctl restart`).
    Restart(ServiceNameArgs),
}

/// `warren service install`.
#[derive(Debug, Clone, Args)]
pub struct ServiceInstallArgs {
    /// The config file the service runs (it must exist and be valid).
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,
    /// Service name (the unit is NAME.service).
    #[arg(long, value_name = "NAME", default_value = warren_agent::service::DEFAULT_SERVICE_NAME)]
    pub name: String,
    /// Directory the unit file is written to.
    #[arg(long, value_name = "DIR", default_value = warren_agent::service::DEFAULT_UNIT_DIR)]
    pub unit_dir: PathBuf,
    /// System user the agent runs as [default: root].
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only write the unit file: do not run `systemctl daemon-reload` and `enable --now`.
    #[arg(long)]
    pub no_start: bool,
    /// Overwrite an existing unit file.
    #[arg(long)]
    pub force: bool,
}

/// `warren service uninstall`.
#[derive(Debug, Clone, Args)]
pub struct ServiceUninstallArgs {
    /// Service name (the unit is NAME.service).
    #[arg(long, value_name = "NAME", default_value = warren_agent::service::DEFAULT_SERVICE_NAME)]
    pub name: String,
    /// Directory the unit file is in.
    #[arg(long, value_name = "DIR", default_value = warren_agent::service::DEFAULT_UNIT_DIR)]
    pub unit_dir: PathBuf,
    /// Only remove the unit file: do not run `systemctl disable --now` and `daemon-reload`.
    #[arg(long)]
    pub no_stop: bool,
}

/// `warren service start|stop|restart`.
#[derive(Debug, Clone, Args)]
pub struct ServiceNameArgs {
    /// Service name (the unit is NAME.service).
    #[arg(long, value_name = "NAME", default_value = warren_agent::service::DEFAULT_SERVICE_NAME)]
    pub name: String,
}

/// `--log-level` values (ngrok's names; `crit` logs errors only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Crit,
    /// Errors.
    Error,
    /// Warnings and errors.
    Warn,
    /// Informational lines, warnings and errors.
    Info,
    /// Everything, including debugging detail.
    Debug,
}

impl LogLevel {
    /// The name as in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Crit => "crit",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// key=value lines.
    Logfmt,
    /// One JSON object per line.
    Json,
    /// Human-readable lines, coloured on a terminal.
    Term,
}

impl LogFormat {
    /// The name as in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
            LogFormat::Term => "term",
        }
    }

    /// Parses a config-file or environment value.
    pub fn parse(s: &str) -> Option<LogFormat> {
        <LogFormat as ValueEnum>::from_str(s, true).ok()
    }
}

/// `--upstream-protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (cleartext prior knowledge for http://, ALPN for https://).
    Http2,
}

impl UpstreamProtocol {
    /// The name as in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::Http2 => "http2",
        }
    }
}

/// A `--web-addr` value: an address, or `None` for `false` (the local API is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebAddr(pub Option<SocketAddr>);

/// Parses `IP:port`, `localhost:port` or `false`, as the config file's `web_addr` does.
pub fn parse_web_addr(s: &str) -> Result<WebAddr, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("false") {
        return Ok(WebAddr(None));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(WebAddr(Some(addr)));
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && host.eq_ignore_ascii_case("localhost")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(WebAddr(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))));
    }
    Err(format!(
        "expected an address such as `127.0.0.1:4040`, or `false`, got `{}`",
        s.escape_debug()
    ))
}
