//! What the agent runs, resolved from the command line, the environment and the config files.
//! Precedence, setting by setting: flag, then environment variable, then config file, then
//! default.
//!
//! Everything here is pure: the environment comes in as a map ([`Env`], read once by
//! [`env_from_process`]), the config as an already-loaded [`Config`]. `warren http|tcp|tls`
//! build one endpoint named [`COMMAND_LINE_ENDPOINT`] (the config files then only supply agent
//! settings); `warren start` picks endpoints of the config by name. It must not read files,
//! start anything, or decide how output looks ([`crate::logging`] does).

use std::collections::BTreeMap;
use std::path::PathBuf;

use warren_agent::config::{
    AgentSection, Config, EndpointConfig, MAX_METADATA_BYTES, UpstreamConfig,
};
use warren_agent::supervisor::{AgentOptions, DEFAULT_CONNECT_URL, DEFAULT_WEB_ADDR};

use crate::args::{
    AgentFlags, Command, ConfigFlag, HttpArgs, LogFormat, StartArgs, TcpArgs, TlsArgs,
    parse_web_addr,
};

#[cfg(test)]
mod tests;

/// The environment variables `warren` reads, by name.
pub type Env = BTreeMap<String, String>;

/// The name of the endpoint `warren http|tcp|tls` runs (ngrok's name for it).
pub const COMMAND_LINE_ENDPOINT: &str = "command_line";

/// Every environment variable `warren` reads.
pub const ENV_VARS: &[&str] = &[
    "WARREN_AUTHTOKEN",
    "NGROK_AUTHTOKEN",
    "WARREN_CONNECT_URL",
    "WARREN_CONNECT_CAS",
    "WARREN_METADATA",
    "WARREN_CONFIG",
    "WARREN_WEB_ADDR",
    "WARREN_LOG",
    "WARREN_LOG_FORMAT",
    "WARREN_API_KEY",
    "WARREN_API_URL",
];

/// Reads [`ENV_VARS`] from the process environment; empty and non-UTF-8 values count as unset.
pub fn env_from_process() -> Env {
    ENV_VARS
        .iter()
        .filter_map(|name| {
            let value = std::env::var(name).ok()?;
            Some((name.to_string(), value))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// A set, non-empty environment variable.
fn var<'e>(env: &'e Env, name: &str) -> Option<&'e str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Why the command line and environment do not make a runnable agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A flag (or the upstream argument) is invalid.
    #[error("{flag}: {message}")]
    Flag {
        /// `--url`, `UPSTREAM`, …
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable is invalid.
    #[error("environment variable {var}: {message}")]
    Env {
        /// Its name.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `warren start NAME` names endpoints the config does not define.
    #[error(
        "no endpoint named {} in the config {}",
        quote_list(unknown),
        known_list(known)
    )]
    UnknownEndpoints {
        /// The names not found.
        unknown: Vec<String>,
        /// The names the config defines.
        known: Vec<String>,
    },
    /// `warren start` with no name, `--all` or `--none`.
    #[error(
        "name the endpoints to start, or pass --all or --none {}",
        known_list(known)
    )]
    NothingToStart {
        /// The names the config defines.
        known: Vec<String>,
    },
    /// The command does not run the agent.
    #[error("this command does not run the agent")]
    NotAnAgentCommand,
}

/// `` `a`, `b` ``.
fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(it defines: a, b)` or `(it defines no endpoints)`.
fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "(it defines no endpoints)".to_owned()
    } else {
        format!("(it defines: {})", known.join(", "))
    }
}

/// The config files to read: the `--config` flags, else `WARREN_CONFIG` (comma-separated),
/// else `default` (the caller passes [`warren_agent::config::default_path`] only when that
/// file exists). Empty when none applies.
pub fn config_paths(flag: &ConfigFlag, env: &Env, default: Option<PathBuf>) -> Vec<PathBuf> {
    if !flag.paths.is_empty() {
        return flag.paths.clone();
    }
    if let Some(list) = var(env, "WARREN_CONFIG") {
        let paths: Vec<PathBuf> = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    default.into_iter().collect()
}

impl Command {
    /// The agent flags of a command that runs the agent.
    pub fn agent_flags(&self) -> Option<&AgentFlags> {
        match self {
            Command::Http(a) => Some(&a.agent),
            Command::Tcp(a) => Some(&a.agent),
            Command::Tls(a) => Some(&a.agent),
            Command::Start(a) => Some(&a.agent),
            Command::Config(_) | Command::Service(_) | Command::Api(_) | Command::Version => None,
        }
    }
}

/// Merges the agent settings: each flag, else its environment variable, else the config
/// file's value, else the default (`connect_url` [`DEFAULT_CONNECT_URL`], `web_addr`
/// [`DEFAULT_WEB_ADDR`]). Settings without a flag or variable keep the file's value.
pub fn merge_agent(
    flags: &AgentFlags,
    env: &Env,
    file: AgentSection,
) -> Result<AgentSection, SettingsError> {
    let mut agent = file;
    let pick = |flag: &Option<String>, vars: &[&str]| -> Option<String> {
        flag.clone().or_else(|| {
            vars.iter()
                .find_map(|name| var(env, name))
                .map(str::to_owned)
        })
    };
    if let Some(token) = pick(&flags.authtoken, &["WARREN_AUTHTOKEN", "NGROK_AUTHTOKEN"]) {
        agent.authtoken = Some(token);
    }
    if let Some(url) = pick(&flags.connect_url, &["WARREN_CONNECT_URL"]) {
        agent.connect_url = Some(url);
    }
    if agent
        .connect_url
        .as_deref()
        .is_none_or(|u| u.trim().is_empty())
    {
        agent.connect_url = Some(DEFAULT_CONNECT_URL.to_owned());
    }
    if let Some(cas) = pick(&flags.connect_cas, &["WARREN_CONNECT_CAS"]) {
        agent.connect_cas = Some(cas);
    }
    if let Some(metadata) = &flags.metadata {
        check_metadata(metadata).map_err(|message| SettingsError::Flag {
            flag: "--metadata".to_owned(),
            message,
        })?;
        agent.metadata = Some(metadata.clone());
    } else if let Some(metadata) = var(env, "WARREN_METADATA") {
        check_metadata(metadata).map_err(|message| SettingsError::Env {
            var: "WARREN_METADATA",
            message,
        })?;
        agent.metadata = Some(metadata.to_owned());
    }
    if let Some(addr) = flags.web_addr {
        agent.web_addr = Some(addr.0);
    } else if let Some(text) = var(env, "WARREN_WEB_ADDR") {
        let addr = parse_web_addr(text).map_err(|message| SettingsError::Env {
            var: "WARREN_WEB_ADDR",
            message,
        })?;
        agent.web_addr = Some(addr.0);
    }
    if agent.web_addr.is_none() {
        agent.web_addr = Some(Some(DEFAULT_WEB_ADDR));
    }
    if let Some(log) = &flags.log {
        agent.log = Some(log.clone());
    }
    if let Some(level) = flags.log_level {
        agent.log_level = Some(level.as_str().to_owned());
    }
    if let Some(format) = flags.log_format {
        agent.log_format = Some(format.as_str().to_owned());
    } else if let Some(text) = var(env, "WARREN_LOG_FORMAT") {
        let format = LogFormat::parse(text).ok_or_else(|| SettingsError::Env {
            var: "WARREN_LOG_FORMAT",
            message: format!(
                "expected `logfmt`, `json` or `term`, got `{}`",
                text.escape_debug()
            ),
        })?;
        agent.log_format = Some(format.as_str().to_owned());
    }
    Ok(agent)
}

fn check_metadata(metadata: &str) -> Result<(), String> {
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata is {} bytes; at most {MAX_METADATA_BYTES} are allowed",
            metadata.len()
        ));
    }
    Ok(())
}

/// What the agent runs for `command` (`http`, `tcp`, `tls` or `start`): the agent settings
/// merged by [`merge_agent`], and the endpoints — the one endpoint of the command line, or the
/// config's endpoints with those to start.
pub fn resolve(command: &Command, env: &Env, file: Config) -> Result<AgentOptions, SettingsError> {
    let flags = command
        .agent_flags()
        .ok_or(SettingsError::NotAnAgentCommand)?;
    let Config {
        paths,
        agent,
        endpoints,
    } = file;
    let agent = merge_agent(flags, env, agent)?;
    let command_line = |endpoint: EndpointConfig| {
        let start = vec![endpoint.name.clone()];
        let config = Config {
            paths: paths.clone(),
            agent: agent.clone(),
            endpoints: vec![endpoint],
        };
        AgentOptions {
            config,
            start,
            start_all: false,
        }
    };
    match command {
        Command::Http(a) => Ok(command_line(http_endpoint(a)?)),
        Command::Tcp(a) => Ok(command_line(tcp_endpoint(a)?)),
        Command::Tls(a) => Ok(command_line(tls_endpoint(a)?)),
        Command::Start(a) => {
            let (start, start_all) = start_names(a, &endpoints)?;
            Ok(AgentOptions {
                config: Config {
                    paths,
                    agent,
                    endpoints,
                },
                start,
                start_all,
            })
        }
        Command::Config(_) | Command::Service(_) | Command::Api(_) | Command::Version => {
            Err(SettingsError::NotAnAgentCommand)
        }
    }
}

/// The endpoints `warren start` runs, and whether it runs all of them.
fn start_names(
    args: &StartArgs,
    endpoints: &[EndpointConfig],
) -> Result<(Vec<String>, bool), SettingsError> {
    let known: Vec<String> = endpoints.iter().map(|e| e.name.clone()).collect();
    if args.all {
        return Ok((known, true));
    }
    if args.none {
        return Ok((Vec::new(), false));
    }
    if args.names.is_empty() {
        return Err(SettingsError::NothingToStart { known });
    }
    let mut start: Vec<String> = Vec::new();
    for name in &args.names {
        if !start.contains(name) {
            start.push(name.clone());
        }
    }
    let unknown: Vec<String> = start
        .iter()
        .filter(|n| !known.contains(n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(SettingsError::UnknownEndpoints { unknown, known });
    }
    Ok((start, false))
}

/// The endpoint of `warren http`.
pub fn http_endpoint(a: &HttpArgs) -> Result<EndpointConfig, SettingsError> {
    let (url, url_flag) = public_url(a.url.as_deref(), a.domain.as_deref(), "https", "--domain")?;
    let endpoint = EndpointConfig {
        name: endpoint_name(a.name.as_deref()),
        url,
        upstream: UpstreamConfig {
            url: a.upstream.clone(),
            protocol: a.upstream_protocol.map(|p| p.as_str().to_owned()),
            proxy_protocol: a.proxy_proto,
        },
        pooling_enabled: a.pooling_enabled,
        inspect: a.inspect,
        ..EndpointConfig::default()
    };
    checked(endpoint, url_flag, &["https", "http"], "http")
}

/// The endpoint of `warren tcp`.
pub fn tcp_endpoint(a: &TcpArgs) -> Result<EndpointConfig, SettingsError> {
    let (url, url_flag) = public_url(
        a.url.as_deref(),
        a.remote_addr.as_deref(),
        "tcp",
        "--remote-addr",
    )?;
    let endpoint = EndpointConfig {
        name: endpoint_name(a.name.as_deref()),
        url: Some(url.unwrap_or_else(|| "tcp://".to_owned())),
        upstream: UpstreamConfig {
            url: a.upstream.clone(),
            protocol: None,
            proxy_protocol: a.proxy_proto,
        },
        pooling_enabled: a.pooling_enabled,
        ..EndpointConfig::default()
    };
    checked(endpoint, url_flag, &["tcp"], "tcp")
}

/// The endpoint of `warren tls`.
pub fn tls_endpoint(a: &TlsArgs) -> Result<EndpointConfig, SettingsError> {
    let (url, url_flag) = public_url(a.url.as_deref(), a.domain.as_deref(), "tls", "--domain")?;
    let endpoint = EndpointConfig {
        name: endpoint_name(a.name.as_deref()),
        url: Some(url.unwrap_or_else(|| "tls://".to_owned())),
        upstream: UpstreamConfig {
            url: a.upstream.clone(),
            protocol: None,
            proxy_protocol: a.proxy_proto,
        },
        pooling_enabled: a.pooling_enabled,
        ..EndpointConfig::default()
    };
    checked(endpoint, url_flag, &["tls"], "tls")
}

fn endpoint_name(name: Option<&str>) -> String {
    name.unwrap_or(COMMAND_LINE_ENDPOINT).to_owned()
}

/// The endpoint URL from `--url` (a scheme added when missing) or from the host flag
/// (`--domain`, `--remote-addr`), with the flag to blame for it.
fn public_url(
    url: Option<&str>,
    host: Option<&str>,
    scheme: &str,
    host_flag: &'static str,
) -> Result<(Option<String>, &'static str), SettingsError> {
    match (url, host) {
        (Some(url), _) => {
            let url = url.trim();
            let url = if url.contains("://") {
                url.to_owned()
            } else {
                format!("{scheme}://{url}")
            };
            Ok((Some(url), "--url"))
        }
        (None, Some(host)) => {
            let host = host.trim();
            if host.is_empty() || host.contains("://") {
                return Err(SettingsError::Flag {
                    flag: host_flag.to_owned(),
                    message: format!(
                        "expected a bare host name{}, got `{}` (use --url for a URL)",
                        if scheme == "tcp" { " and port" } else { "" },
                        host.escape_debug()
                    ),
                });
            }
            Ok((Some(format!("{scheme}://{host}")), host_flag))
        }
        (None, None) => Ok((None, "--url")),
    }
}

/// Validates a command-line endpoint, naming the flag at fault, and checks its URL's protocol
/// is one the command serves.
fn checked(
    endpoint: EndpointConfig,
    url_flag: &str,
    protos: &[&str],
    command: &str,
) -> Result<EndpointConfig, SettingsError> {
    if let Err(e) = endpoint.validate() {
        let (field, message) = e.split_once(": ").unwrap_or(("", e.as_str()));
        let flag = match field {
            "name" => "--name",
            "url" => url_flag,
            "upstream.url" => "UPSTREAM",
            "upstream.protocol" => "--upstream-protocol",
            "upstream.proxy_protocol" => "--proxy-proto",
            _ => "",
        };
        let (flag, message) = if flag.is_empty() {
            ("endpoint".to_owned(), e.clone())
        } else {
            (flag.to_owned(), message.to_owned())
        };
        return Err(SettingsError::Flag { flag, message });
    }
    match endpoint.proto() {
        Ok(proto) if protos.contains(&proto) => Ok(endpoint),
        Ok(proto) => {
            let other = if proto == "https" { "http" } else { proto };
            Err(SettingsError::Flag {
                flag: url_flag.to_owned(),
                message: format!(
                    "`{}` is a {proto} URL, and `warren {command}` serves {} URLs; use \
                     `warren {other}`",
                    endpoint.url.as_deref().unwrap_or_default(),
                    protos.join(" or "),
                ),
            })
        }
        Err(message) => Err(SettingsError::Flag {
            flag: url_flag.to_owned(),
            message,
        }),
    }
}
