//! The agent config file: ngrok's version-3 YAML layout (`version`, `agent:`, `endpoints:`,
//! the deprecated `tunnels:` map), version-2 files converted on the way in, and Warren's
//! additions (`agent.update_command`, `endpoints[].inspect`).
//!
//! This module owns reading config files ([`load`], [`parse`]), merging several of them, the
//! validity of an endpoint definition ([`EndpointConfig::validate`], shared with the local API's
//! request bodies) and the typed difference a reload applies ([`diff`]). It must not start,
//! stop or dial anything, and it never applies flags or environment variables: the caller does
//! that on the returned [`Config`].
//!
//! Every error names the file, line, column and key:
//!
//! ```text
//! agent.yml:8:17: endpoints[1].upstream.protocol: expected `http1` or `http2`, got `h3`
//! agent.yml:4:3: unknown key `agent.authtokn` (did you mean `authtoken`?)
//! ```
//!
//! Unknown keys are refused, as are settings Warren cannot honour (`proxy_url`, `basic_auth`,
//! …), rather than silently ignored. Hostile files are refused quickly: size ([`MAX_CONFIG_BYTES`]), nesting
//! ([`MAX_YAML_DEPTH`]), node count ([`MAX_YAML_NODES`]) and alias expansion
//! ([`MAX_ALIAS_REPLAY_EVENTS`]) are bounded while parsing.
//!
//! # Layout
//! - `config.rs`: the types, [`load`]/[`parse`], merging, [`diff`], [`default_path`].
//! - `config/yaml.rs`: the hardened YAML reader producing a tree of located nodes.
//! - `config/schema.rs`: the keys of versions 3 and 2, walked into a [`Config`].
//! - `config/endpoint.rs`: an endpoint's protocol, host, upstream and checks.
//! - `config/duration.rs`: Go-style durations ([`parse_duration`]).

mod duration;
mod endpoint;
mod schema;
#[cfg(test)]
mod tests;
mod yaml;

use std::ffi::OsString;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use duration::parse_duration;

/// Largest config file (and `traffic_policy_file`) read: 1 MiB. Checked before parsing.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Deepest nesting of lists and mappings in a config file (a traffic policy included).
pub const MAX_YAML_DEPTH: usize = 32;
/// Most YAML values (scalars, lists, mappings) in one config file.
pub const MAX_YAML_NODES: usize = 50_000;
/// Most values that aliases (`*name`) may expand to in one file: the bound on "billion laughs".
pub const MAX_ALIAS_REPLAY_EVENTS: usize = 10_000;
/// Most endpoints (`endpoints:` and `tunnels:` together) in one config file; an edge serves at
/// most 100 per agent session.
pub const MAX_ENDPOINTS: usize = 1000;
/// Longest endpoint name.
pub const MAX_ENDPOINT_NAME_LEN: usize = 64;
/// Largest `metadata` (agent or endpoint), as the edge stores it.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Largest endpoint `description`, as the edge stores it.
pub const MAX_DESCRIPTION_BYTES: usize = 255;
/// Largest traffic policy: half a bind request, which the edge caps at
/// [`warren_proto::MAX_RPC_BODY`].
pub const MAX_TRAFFIC_POLICY_BYTES: usize = warren_proto::MAX_RPC_BODY / 2;

/// Why a config could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("{}: the file is larger than {MAX_CONFIG_BYTES} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Something in the file is wrong: `path:line:column: message`.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file (a config file, or a `traffic_policy_file` it names).
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column (in characters).
        column: u64,
        /// The key path at fault (`agent.authtoken`, `endpoints[1].upstream.protocol`,
        /// `tunnels.web.addr`); empty when the problem is the YAML itself.
        key: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// A whole config: the `agent:` section and the endpoint definitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The files it was read from, in merge order (empty when built in code).
    pub paths: Vec<PathBuf>,
    /// The `agent:` section.
    pub agent: AgentSection,
    /// `endpoints:` (and deprecated `tunnels:` converted to endpoints), names unique.
    pub endpoints: Vec<EndpointConfig>,
}

/// The `agent:` section. `None` = not set (the caller applies flags, env and defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSection {
    /// The authtoken.
    pub authtoken: Option<String>,
    /// API key for `warren api` (kept, unused by the agent itself).
    pub api_key: Option<String>,
    /// The edge's agent address, `host:port`.
    pub connect_url: Option<String>,
    /// `host` (system roots), `trusted` (same as host for Warren), or a PEM file path.
    pub connect_cas: Option<String>,
    /// TCP + TLS + auth deadline.
    pub connect_timeout: Option<Duration>,
    /// Heartbeat interval.
    pub heartbeat_interval: Option<Duration>,
    /// Heartbeat tolerance.
    pub heartbeat_tolerance: Option<Duration>,
    /// Session metadata (≤ 4096 bytes).
    pub metadata: Option<String>,
    /// Whether the edge may stop/restart/update this agent (default true).
    pub remote_management: Option<bool>,
    /// Warren extension: the command run on an Update command (none = updates refused).
    pub update_command: Option<String>,
    /// Local API address; `Some(None)` = `web_addr: false` (disabled).
    pub web_addr: Option<Option<SocketAddr>>,
    /// Extra Host header values the local API accepts.
    pub web_allow_hosts: Vec<String>,
    /// Capture ring size in bytes; `-1` disables capture; `0` = default.
    pub inspect_db_size: Option<i64>,
    /// `stdout`, `stderr`, `false` or a file path.
    pub log: Option<String>,
    /// `crit`, `error`, `warn`, `info`, `debug`.
    pub log_level: Option<String>,
    /// `logfmt`, `json`, `term`.
    pub log_format: Option<String>,
    /// `true`, `false`, `iftty`.
    pub console_ui: Option<String>,
}

/// One endpoint definition, as in the config file and in the local API's request bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Unique name (`warren start NAME`, `/api/endpoints/NAME`).
    pub name: String,
    /// Public URL: `https://host`, `http://host`, `tcp://host:port`, `tls://host`, a bare domain,
    /// a scheme alone (`https://`, `tcp://`: a generated name or port), or empty (random https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where connections go on the device.
    pub upstream: UpstreamConfig,
    /// Endpoint metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Endpoint description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `public` (default) or `internal`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<String>,
    /// Whether several agents may serve this URL.
    #[serde(default)]
    pub pooling_enabled: bool,
    /// Traffic policy document (YAML or JSON text), passed to the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<String>,
    /// Whether HTTP requests are captured for the inspector (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<bool>,
}

/// `upstream:` of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `8080`, `host:port`, `http://…`, `https://…`, `tcp://…`, `tls://…`.
    pub url: String,
    /// `http1` (default) or `http2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// PROXY protocol version sent ahead of each connection: 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<u8>,
}

/// Reads and merges config files in order: a later file's `agent:` keys override earlier ones
/// key by key, and its endpoints replace earlier ones of the same name (new names are added
/// after the earlier ones). No files gives an empty [`Config`].
pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    for path in paths {
        let text = read_file(path)?;
        config.merge(parse(&text, path)?);
    }
    Ok(config)
}

/// Parses one config file's text. `path` names the file in errors, and its directory anchors a
/// relative `traffic_policy_file` (the only file this reads).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let root = yaml::parse(text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: e.loc.line,
        column: e.loc.column,
        key: String::new(),
        message: e.message,
    })?;
    schema::config_from_yaml(&root, path)
}

/// Reads a UTF-8 file of at most [`MAX_CONFIG_BYTES`], refusing a larger one before reading it.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || ConfigError::TooLarge {
        path: path.to_path_buf(),
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let limit = MAX_CONFIG_BYTES as u64;
    if file.metadata().map_err(read_err)?.len() > limit {
        return Err(too_large());
    }
    // The size can change after the check (or be unknown, for a pipe): read one byte past the
    // limit at most.
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line as u64,
            column: column as u64,
            key: String::new(),
            message: "the file is not UTF-8 text".to_owned(),
        }
    })
}

impl Config {
    /// Merges a later file into this config: `later`'s set `agent:` keys win (a non-empty
    /// `web_allow_hosts` replaces the list), its endpoints replace same-named ones in place and
    /// the rest are appended, and its paths are appended.
    pub fn merge(&mut self, later: Config) {
        let Config {
            paths,
            agent,
            endpoints,
        } = later;
        self.paths.extend(paths);
        self.agent.merge(agent);
        for ep in endpoints {
            match self.endpoints.iter_mut().find(|e| e.name == ep.name) {
                Some(slot) => *slot = ep,
                None => self.endpoints.push(ep),
            }
        }
    }
}

impl AgentSection {
    /// Overrides every setting that `later` sets (`Some`, or a non-empty `web_allow_hosts`).
    pub fn merge(&mut self, later: AgentSection) {
        // Destructured so a new field cannot be forgotten here.
        let AgentSection {
            authtoken,
            api_key,
            connect_url,
            connect_cas,
            connect_timeout,
            heartbeat_interval,
            heartbeat_tolerance,
            metadata,
            remote_management,
            update_command,
            web_addr,
            web_allow_hosts,
            inspect_db_size,
            log,
            log_level,
            log_format,
            console_ui,
        } = later;
        macro_rules! take {
            ($($field:ident),*) => {$(
                if $field.is_some() {
                    self.$field = $field;
                }
            )*};
        }
        take!(
            authtoken,
            api_key,
            connect_url,
            connect_cas,
            connect_timeout,
            heartbeat_interval,
            heartbeat_tolerance,
            metadata,
            remote_management,
            update_command,
            web_addr,
            inspect_db_size,
            log,
            log_level,
            log_format,
            console_ui
        );
        if !web_allow_hosts.is_empty() {
            self.web_allow_hosts = web_allow_hosts;
        }
    }
}

/// What a reload changes, by endpoint name. Endpoints identical in both configs appear nowhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointDiff {
    /// Definitions only in the new config, in its order.
    pub added: Vec<EndpointConfig>,
    /// Names only in the old config, in its order.
    pub removed: Vec<String>,
    /// New definitions of names in both configs whose definition differs, in the new order.
    pub changed: Vec<EndpointConfig>,
}

impl EndpointDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares two endpoint lists by name (names are unique within each list).
pub fn diff(old: &[EndpointConfig], new: &[EndpointConfig]) -> EndpointDiff {
    let mut out = EndpointDiff::default();
    for ep in new {
        match old.iter().find(|o| o.name == ep.name) {
            None => out.added.push(ep.clone()),
            Some(o) if o != ep => out.changed.push(ep.clone()),
            Some(_) => {}
        }
    }
    out.removed = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.name == o.name))
        .map(|o| o.name.clone())
        .collect();
    out
}

/// The config file used when none is given: `$XDG_CONFIG_HOME/warren/warren.yml`, else
/// `~/.config/warren/warren.yml`; `None` when neither variable gives a directory. Only
/// computes the path (reads environment variables, touches no file).
pub fn default_path() -> Option<PathBuf> {
    default_path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")),
    )
}

/// [`default_path`] from explicit `XDG_CONFIG_HOME` and home values. A relative
/// `XDG_CONFIG_HOME` is ignored, as the XDG spec asks.
fn default_path_from(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let base = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("warren").join("warren.yml"))
}
