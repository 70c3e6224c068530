//! The config file's keys: walks a [`Node`] tree (version 3, or version 2 converted) into a
//! [`Config`], refusing unknown keys, wrong types and settings Warren cannot honour, and
//! pointing every error at the file, line and key path (`endpoints[1].upstream.protocol`).
//!
//! The only IO here is reading an endpoint's `traffic_policy_file`. Endpoint field checks are
//! not duplicated: after building each endpoint this calls [`EndpointConfig::check`] and maps
//! the field it blames back to the line it came from.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::endpoint::Field;
use super::yaml::{self, Loc, Node, Value};
use super::{
    AgentSection, Config, ConfigError, EndpointConfig, MAX_ENDPOINTS, MAX_METADATA_BYTES,
    MAX_TRAFFIC_POLICY_BYTES, UpstreamConfig, parse_duration, read_file,
};

type Result<T> = std::result::Result<T, ConfigError>;

/// Top-level keys of a version-3 file.
const V3_KEYS: &[&str] = &["version", "agent", "endpoints", "tunnels"];

/// Keys of `agent:` (version 3), also the flat top-level keys of a version-2 file.
const AGENT_KEYS: &[&str] = &[
    "authtoken",
    "api_key",
    "connect_url",
    "connect_cas",
    "connect_interface",
    "connect_timeout",
    "heartbeat_interval",
    "heartbeat_tolerance",
    "metadata",
    "remote_management",
    "update_check",
    "update_channel",
    "update_command",
    "crl_noverify",
    "dns_resolver_ips",
    "proxy_url",
    "web_addr",
    "web_allow_hosts",
    "inspect_db_size",
    "log",
    "log_level",
    "log_format",
    "console_ui",
    "console_ui_color",
];

/// Version-2 spellings of agent keys and their version-3 names.
const V2_RENAMES: &[(&str, &str)] = &[("server_addr", "connect_url"), ("root_cas", "connect_cas")];

/// Version-2 top-level keys besides the agent keys.
const V2_KEYS: &[&str] = &["version", "tunnels", "region", "server_addr", "root_cas"];

/// Keys of an `endpoints[]` entry.
const ENDPOINT_KEYS: &[&str] = &[
    "name",
    "url",
    "upstream",
    "metadata",
    "description",
    "bindings",
    "pooling_enabled",
    "traffic_policy",
    "traffic_policy_file",
    "inspect",
    "agent_tls_termination",
];

/// Keys of an endpoint's `upstream:`.
const UPSTREAM_KEYS: &[&str] = &["url", "protocol", "proxy_protocol"];

/// Keys of a `tunnels:` entry (version-2 syntax) that Warren converts to an endpoint.
const TUNNEL_KEYS: &[&str] = &[
    "addr",
    "proto",
    "domain",
    "hostname",
    "remote_addr",
    "schemes",
    "bind_tls",
    "proxy_proto",
    "metadata",
    "inspect",
    "traffic_policy",
    "terminate_at",
];

/// Tunnel keys ngrok honours at its edge and Warren does not, with what to do instead.
const TUNNEL_UNSUPPORTED: &[(&str, &str)] = &[
    ("auth", ""),
    ("basic_auth", ""),
    ("oauth", ""),
    ("oidc", ""),
    ("ip_restriction", ""),
    ("circuit_breaker", ""),
    ("compression", ""),
    ("request_header", ""),
    ("response_header", ""),
    ("mutual_tls_cas", ""),
    ("user_agent_filter", ""),
    ("verify_webhook", ""),
    ("webhook_verification", ""),
    ("websocket_tcp_converter", ""),
    (
        "labels",
        "; labeled tunnels do not exist in Warren, use an endpoint with a `url`",
    ),
    ("crt", "; TLS is terminated by the upstream service"),
    ("key", "; TLS is terminated by the upstream service"),
    ("policy", "; write a `traffic_policy` instead"),
    ("subdomain", "; set `domain` to the full host name instead"),
    (
        "host_header",
        "; the visitor's Host header is passed through unchanged",
    ),
];

/// yaml.v3's spellings of booleans for a boolean-typed key.
const TRUE_WORDS: &[&str] = &[
    "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y",
];
const FALSE_WORDS: &[&str] = &[
    "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N",
];

/// Reads a parsed config file. `file` names the file in errors; its directory anchors relative
/// `traffic_policy_file` paths.
pub(crate) fn config_from_yaml(root: &Node, file: &Path) -> Result<Config> {
    let cx = Ctx::new(file);
    let entries = match &root.value {
        Value::Map(_) => cx.entries(root, "")?,
        Value::Null => {
            return Err(cx.err(
                Loc::START,
                "version",
                "the file is empty; start it with `version: 3`",
            ));
        }
        _ => {
            return Err(cx.invalid(
                root.loc,
                "",
                format!(
                    "a config file is a mapping (`version: 3`, `agent:`, `endpoints:`), not {}",
                    root.describe()
                ),
            ));
        }
    };
    let Some((_, _, version)) = entries.iter().find(|(k, _, _)| k == "version") else {
        return Err(cx.err(
            root.loc,
            "version",
            "required key is missing (write `version: 3`)",
        ));
    };
    let version = match &version.value {
        Value::Int(n) => Some(*n),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|v| matches!(v, 2 | 3))
    .ok_or_else(|| {
        cx.err(
            version.loc,
            "version",
            format!(
                "expected `3` (or `2`), got {}; Warren reads ngrok's version 3 and version 2 files",
                version.describe()
            ),
        )
    })?;
    let mut config = Config {
        paths: vec![file.to_path_buf()],
        ..Config::default()
    };
    let defs = if version == 3 {
        cx.v3(&entries, &mut config.agent)?
    } else {
        cx.v2(&entries, &mut config.agent)?
    };
    config.endpoints = cx.finish(defs)?;
    Ok(config)
}

/// One endpoint definition on its way into a [`Config`], with where its parts were written.
struct Def {
    endpoint: EndpointConfig,
    /// Where the definition starts, for errors about a missing part.
    at: Loc,
    /// Its key path: `endpoints[2]` or `tunnels.web`.
    path: String,
    /// Where each checked field came from, and under which key path.
    fields: Vec<(Field, Loc, String)>,
}

impl Def {
    fn new(at: Loc, path: String) -> Def {
        Def {
            endpoint: EndpointConfig::default(),
            at,
            path,
            fields: Vec::new(),
        }
    }

    fn note(&mut self, field: Field, loc: Loc, key: &str) {
        self.fields.retain(|(f, _, _)| *f != field);
        self.fields.push((field, loc, key.to_owned()));
    }
}

/// A mapping entry: the key's text, the key node, the value node.
type Entry<'n> = (String, &'n Node, &'n Node);

/// The file being read, for error messages.
struct Ctx<'a> {
    file: &'a Path,
    /// Traffic policy files already read (as JSON), so endpoints sharing one read it once.
    policies: RefCell<HashMap<PathBuf, String>>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a Path) -> Ctx<'a> {
        Ctx {
            file,
            policies: RefCell::new(HashMap::new()),
        }
    }

    /// An error whose `message` is complete (it already names the key).
    fn invalid(&self, loc: Loc, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.file.to_path_buf(),
            line: loc.line,
            column: loc.column,
            key: key.to_owned(),
            message,
        }
    }

    /// An error reading `key: message`.
    fn err(&self, loc: Loc, key: &str, message: impl Display) -> ConfigError {
        self.invalid(loc, key, format!("{key}: {message}"))
    }

    fn unknown(&self, key_node: &Node, key: &str, leaf: &str, known: &[&str]) -> ConfigError {
        let hint = suggest(leaf, known)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.invalid(key_node.loc, key, format!("unknown key `{key}`{hint}"))
    }

    fn unsupported(&self, key_node: &Node, key: &str, hint: &str) -> ConfigError {
        self.invalid(
            key_node.loc,
            key,
            format!("`{key}` is not supported by Warren{hint}"),
        )
    }

    // ---- typed values -------------------------------------------------------------------

    /// A mapping's entries (null = none). Keys must be scalars.
    fn entries<'n>(&self, node: &'n Node, key: &str) -> Result<Vec<Entry<'n>>> {
        match &node.value {
            Value::Null => Ok(Vec::new()),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| match k.text() {
                    Some(text) => Ok((text, k, v)),
                    None if key.is_empty() => Err(self.invalid(
                        k.loc,
                        key,
                        format!("keys must be text, got {}", k.describe()),
                    )),
                    None => Err(self.err(
                        k.loc,
                        key,
                        format!("keys must be text, got {}", k.describe()),
                    )),
                })
                .collect(),
            _ => Err(self.err(
                node.loc,
                key,
                format!("expected a mapping, got {}", node.describe()),
            )),
        }
    }

    /// A list (null = empty).
    fn seq<'n>(&self, node: &'n Node, key: &str) -> Result<&'n [Node]> {
        match &node.value {
            Value::Null => Ok(&[]),
            Value::Seq(items) => Ok(items),
            _ => Err(self.err(
                node.loc,
                key,
                format!("expected a list, got {}", node.describe()),
            )),
        }
    }

    /// A string (numbers and booleans as written); null = not set.
    fn opt_string(&self, node: &Node, key: &str) -> Result<Option<String>> {
        match &node.value {
            Value::Null => Ok(None),
            Value::Seq(_) | Value::Map(_) => Err(self.err(
                node.loc,
                key,
                format!("expected a string, got {}", node.describe()),
            )),
            _ => Ok(node.text()),
        }
    }

    /// A string that must be present and non-empty.
    fn req_string(&self, node: &Node, key: &str) -> Result<String> {
        match self.opt_string(node, key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(self.err(node.loc, key, "must not be empty")),
        }
    }

    /// A list of strings (null = empty).
    fn string_list(&self, node: &Node, key: &str) -> Result<Vec<String>> {
        self.seq(node, key)?
            .iter()
            .enumerate()
            .map(|(i, item)| match item.text() {
                Some(s) => Ok(s),
                None => Err(self.err(
                    item.loc,
                    &format!("{key}[{i}]"),
                    format!("expected a string, got {}", item.describe()),
                )),
            })
            .collect()
    }

    /// A boolean (`true`/`false`, and yaml.v3's `yes`/`no`/`on`/`off`); null = not set.
    fn opt_bool(&self, node: &Node, key: &str) -> Result<Option<bool>> {
        match &node.value {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            Value::Str(s) if TRUE_WORDS.contains(&s.as_str()) => Ok(Some(true)),
            Value::Str(s) if FALSE_WORDS.contains(&s.as_str()) => Ok(Some(false)),
            _ => Err(self.err(
                node.loc,
                key,
                format!("expected `true` or `false`, got {}", node.describe()),
            )),
        }
    }

    /// A whole number; null = not set.
    fn opt_int(&self, node: &Node, key: &str) -> Result<Option<i64>> {
        match &node.value {
            Value::Null => Ok(None),
            Value::Int(n) => i64::try_from(*n)
                .map(Some)
                .map_err(|_| self.err(node.loc, key, format!("{n} is out of range"))),
            _ => Err(self.err(
                node.loc,
                key,
                format!("expected a whole number, got {}", node.describe()),
            )),
        }
    }

    /// A Go-style duration greater than zero; null = not set.
    fn opt_duration(&self, node: &Node, key: &str) -> Result<Option<Duration>> {
        let d = match &node.value {
            Value::Null => return Ok(None),
            Value::Str(s) => parse_duration(s).map_err(|e| self.err(node.loc, key, e))?,
            Value::Int(0) => Duration::ZERO,
            Value::Int(_) | Value::Float(_) => {
                return Err(self.err(
                    node.loc,
                    key,
                    format!(
                        "{} has no unit; write a duration such as `10s`, `1m30s` or `500ms`",
                        node.describe()
                    ),
                ));
            }
            _ => {
                return Err(self.err(
                    node.loc,
                    key,
                    format!("expected a duration such as `10s`, got {}", node.describe()),
                ));
            }
        };
        if d.is_zero() {
            return Err(self.err(node.loc, key, "must be greater than zero"));
        }
        Ok(Some(d))
    }

    /// One of `allowed`; null = not set.
    fn opt_choice(&self, node: &Node, key: &str, allowed: &[&str]) -> Result<Option<String>> {
        let Some(s) = self.opt_string(node, key)? else {
            return Ok(None);
        };
        if allowed.contains(&s.as_str()) {
            Ok(Some(s))
        } else {
            Err(self.err(
                node.loc,
                key,
                format!("expected {}, got {}", one_of(allowed), node.describe()),
            ))
        }
    }

    /// A PROXY protocol version (`1` or `2`); null = not set.
    fn proxy_version(&self, node: &Node, key: &str) -> Result<Option<u8>> {
        match &node.value {
            Value::Null => Ok(None),
            Value::Int(n @ (1 | 2)) => Ok(u8::try_from(*n).ok()),
            _ => Err(self.err(
                node.loc,
                key,
                format!("expected `1` or `2`, got {}", node.describe()),
            )),
        }
    }

    // ---- version 3 ------------------------------------------------------------------

    fn v3(&self, entries: &[Entry<'_>], agent: &mut AgentSection) -> Result<Vec<Def>> {
        let mut defs = Vec::new();
        for (key, key_node, value) in entries {
            match key.as_str() {
                "version" => {}
                "agent" => {
                    for (k, kn, v) in self.entries(value, "agent")? {
                        let path = format!("agent.{k}");
                        if !self.agent_key(agent, &k, &path, kn, v)? {
                            return Err(self.unknown(kn, &path, &k, AGENT_KEYS));
                        }
                    }
                }
                "endpoints" => {
                    for (i, item) in self.seq(value, "endpoints")?.iter().enumerate() {
                        let def = self.endpoint(item, format!("endpoints[{i}]"))?;
                        self.add(&mut defs, def)?;
                    }
                }
                "tunnels" => {
                    for (name, kn, v) in self.entries(value, "tunnels")? {
                        let def = self.tunnel(&name, kn, v)?;
                        self.add(&mut defs, def)?;
                    }
                }
                other
                    if AGENT_KEYS.contains(&other)
                        || V2_RENAMES.iter().any(|(k, _)| *k == other) =>
                {
                    return Err(self.invalid(
                        key_node.loc,
                        other,
                        format!(
                            "unknown key `{other}`: in a version 3 file it belongs under `agent:`"
                        ),
                    ));
                }
                other => return Err(self.unknown(key_node, other, other, V3_KEYS)),
            }
        }
        Ok(defs)
    }

    /// Applies one agent setting; `Ok(false)` when `key` is not an agent key.
    fn agent_key(
        &self,
        a: &mut AgentSection,
        key: &str,
        path: &str,
        key_node: &Node,
        v: &Node,
    ) -> Result<bool> {
        match key {
            "authtoken" => a.authtoken = self.opt_string(v, path)?,
            "api_key" => a.api_key = self.opt_string(v, path)?,
            "connect_url" => a.connect_url = self.opt_string(v, path)?,
            "connect_cas" => a.connect_cas = self.opt_string(v, path)?,
            "connect_timeout" => a.connect_timeout = self.opt_duration(v, path)?,
            "heartbeat_interval" => a.heartbeat_interval = self.opt_duration(v, path)?,
            "heartbeat_tolerance" => a.heartbeat_tolerance = self.opt_duration(v, path)?,
            "metadata" => {
                let m = self.opt_string(v, path)?;
                if let Some(m) = &m
                    && m.len() > MAX_METADATA_BYTES
                {
                    return Err(self.err(
                        v.loc,
                        path,
                        format!(
                            "metadata is {} bytes; at most {MAX_METADATA_BYTES} are allowed",
                            m.len()
                        ),
                    ));
                }
                a.metadata = m;
            }
            "remote_management" => a.remote_management = self.opt_bool(v, path)?,
            "update_command" => a.update_command = self.opt_string(v, path)?,
            "web_addr" => a.web_addr = self.web_addr(v, path)?,
            "web_allow_hosts" => a.web_allow_hosts = self.string_list(v, path)?,
            "inspect_db_size" => {
                let n = self.opt_int(v, path)?;
                if n.is_some_and(|n| n < -1) {
                    return Err(self.err(
                        v.loc,
                        path,
                        "expected a size in bytes, `0` (the default) or `-1` (no capture)",
                    ));
                }
                a.inspect_db_size = n;
            }
            "log" => {
                a.log = match &v.value {
                    Value::Bool(false) => Some("false".to_owned()),
                    Value::Bool(true) => {
                        return Err(self.err(
                            v.loc,
                            path,
                            "expected `stdout`, `stderr`, `false` or a file path, got `true`",
                        ));
                    }
                    _ => self.opt_string(v, path)?,
                }
            }
            "log_level" => {
                a.log_level =
                    self.opt_choice(v, path, &["crit", "error", "warn", "info", "debug"])?;
            }
            "log_format" => a.log_format = self.opt_choice(v, path, &["logfmt", "json", "term"])?,
            "console_ui" => {
                a.console_ui = match &v.value {
                    Value::Bool(b) => Some(b.to_string()),
                    _ => self.opt_choice(v, path, &["true", "false", "iftty"])?,
                }
            }
            // ngrok-cloud settings with nothing to do on Warren: type-checked, then ignored.
            "update_check" | "crl_noverify" => {
                self.opt_bool(v, path)?;
            }
            "update_channel" | "console_ui_color" => {
                self.opt_string(v, path)?;
            }
            // Settings that would change how the agent reaches the edge: refused, not ignored.
            "proxy_url" if !v.is_empty() => {
                return Err(self.unsupported(
                    key_node,
                    path,
                    "; the agent dials the edge directly (no HTTP or SOCKS proxy)",
                ));
            }
            "connect_interface" if !v.is_empty() => {
                return Err(self.unsupported(
                    key_node,
                    path,
                    "; the agent reaches the edge through the system's routes",
                ));
            }
            "dns_resolver_ips" if !v.is_empty() => {
                return Err(self.unsupported(
                    key_node,
                    path,
                    "; the agent uses the system's DNS resolver",
                ));
            }
            "proxy_url" | "connect_interface" | "dns_resolver_ips" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `web_addr`: `IP:port`, `localhost:port`, or `false` (the local API is off).
    fn web_addr(&self, v: &Node, key: &str) -> Result<Option<Option<SocketAddr>>> {
        let bad = || {
            self.err(
                v.loc,
                key,
                format!(
                    "expected an address such as `127.0.0.1:4040`, or `false`, got {}",
                    v.describe()
                ),
            )
        };
        match &v.value {
            Value::Null => Ok(None),
            Value::Bool(false) => Ok(Some(None)),
            Value::Str(s) if s == "false" => Ok(Some(None)),
            Value::Str(s) => {
                if let Ok(addr) = s.parse::<SocketAddr>() {
                    return Ok(Some(Some(addr)));
                }
                match s.rsplit_once(':') {
                    Some((host, port)) if host.eq_ignore_ascii_case("localhost") => port
                        .parse::<u16>()
                        .map(|p| Some(Some(SocketAddr::from((Ipv4Addr::LOCALHOST, p)))))
                        .map_err(|_| bad()),
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }

    /// One `endpoints[]` entry.
    fn endpoint(&self, item: &Node, path: String) -> Result<Def> {
        if !matches!(item.value, Value::Map(_)) {
            return Err(self.err(
                item.loc,
                &path,
                format!(
                    "expected an endpoint (`name:`, `url:`, `upstream:`), got {}",
                    item.describe()
                ),
            ));
        }
        let mut def = Def::new(item.loc, path);
        let path = def.path.clone();
        let (mut has_name, mut has_upstream) = (false, false);
        let mut policy: Option<(Loc, String)> = None;
        for (key, kn, v) in self.entries(item, &path)? {
            let kp = format!("{path}.{key}");
            let ep = &mut def.endpoint;
            match key.as_str() {
                "name" => {
                    ep.name = self.req_string(v, &kp)?;
                    has_name = true;
                    def.note(Field::Name, v.loc, &kp);
                }
                "url" => {
                    ep.url = self.opt_string(v, &kp)?;
                    def.note(Field::Url, v.loc, &kp);
                }
                "upstream" => {
                    self.upstream(v, &kp, &mut def)?;
                    has_upstream = true;
                }
                "metadata" => {
                    ep.metadata = self.opt_string(v, &kp)?;
                    def.note(Field::Metadata, v.loc, &kp);
                }
                "description" => {
                    ep.description = self.opt_string(v, &kp)?;
                    def.note(Field::Description, v.loc, &kp);
                }
                "bindings" => {
                    ep.bindings = self.string_list(v, &kp)?;
                    def.note(Field::Bindings, v.loc, &kp);
                }
                "pooling_enabled" => ep.pooling_enabled = self.opt_bool(v, &kp)?.unwrap_or(false),
                "inspect" => ep.inspect = self.opt_bool(v, &kp)?,
                "traffic_policy" => {
                    if let Some(p) = self.inline_policy(v, &kp)? {
                        if policy.is_some() {
                            return Err(self.both(
                                kn,
                                &kp,
                                "traffic_policy",
                                "traffic_policy_file",
                            ));
                        }
                        policy = Some((v.loc, kp.clone()));
                        ep.traffic_policy = Some(p);
                    }
                }
                "traffic_policy_file" => {
                    if let Some(file) = self.opt_string(v, &kp)? {
                        if policy.is_some() {
                            return Err(self.both(
                                kn,
                                &kp,
                                "traffic_policy",
                                "traffic_policy_file",
                            ));
                        }
                        policy = Some((v.loc, kp.clone()));
                        ep.traffic_policy = Some(self.policy_file(v, &kp, &file)?);
                    }
                }
                "agent_tls_termination" if !v.is_empty() => {
                    return Err(self.unsupported(
                        kn,
                        &kp,
                        "; a tls:// endpoint passes TLS through to the upstream service, which \
                         terminates it",
                    ));
                }
                "agent_tls_termination" => {}
                other => return Err(self.unknown(kn, &kp, other, ENDPOINT_KEYS)),
            }
        }
        if let Some((loc, kp)) = policy {
            def.note(Field::TrafficPolicy, loc, &kp);
        }
        if !has_name {
            return Err(self.err(def.at, &format!("{path}.name"), "required key is missing"));
        }
        if !has_upstream {
            return Err(self.err(
                def.at,
                &format!("{path}.upstream"),
                "required key is missing (e.g. `upstream: { url: 8080 }`)",
            ));
        }
        Ok(def)
    }

    /// `key` is the second of two keys of which only one may be set.
    fn both(&self, key_node: &Node, key: &str, a: &str, b: &str) -> ConfigError {
        self.err(key_node.loc, key, format!("set `{a}` or `{b}`, not both"))
    }

    /// An endpoint's `upstream:` mapping.
    fn upstream(&self, v: &Node, path: &str, def: &mut Def) -> Result<()> {
        if !matches!(v.value, Value::Map(_)) {
            return Err(self.err(
                v.loc,
                path,
                format!(
                    "expected a mapping such as `{{ url: 8080 }}`, got {}",
                    v.describe()
                ),
            ));
        }
        let mut up = UpstreamConfig::default();
        let mut has_url = false;
        for (key, kn, value) in self.entries(v, path)? {
            let kp = format!("{path}.{key}");
            match key.as_str() {
                "url" => {
                    up.url = self.req_string(value, &kp)?;
                    has_url = true;
                    def.note(Field::UpstreamUrl, value.loc, &kp);
                }
                "protocol" => {
                    up.protocol = self.opt_string(value, &kp)?;
                    def.note(Field::UpstreamProtocol, value.loc, &kp);
                }
                "proxy_protocol" => {
                    up.proxy_protocol = self.proxy_version(value, &kp)?;
                    def.note(Field::ProxyProtocol, value.loc, &kp);
                }
                other => return Err(self.unknown(kn, &kp, other, UPSTREAM_KEYS)),
            }
        }
        if !has_url {
            return Err(self.err(v.loc, &format!("{path}.url"), "required key is missing"));
        }
        def.endpoint.upstream = up;
        Ok(())
    }

    /// An inline `traffic_policy`: a mapping, or the policy's YAML/JSON text. Stored as JSON.
    fn inline_policy(&self, v: &Node, key: &str) -> Result<Option<String>> {
        let doc = match &v.value {
            Value::Null => return Ok(None),
            Value::Map(_) => v.clone(),
            Value::Str(text) => yaml::parse(text).map_err(|e| {
                self.err(
                    v.loc,
                    key,
                    format!(
                        "the policy text is not valid (its line {}): {}",
                        e.loc.line, e.message
                    ),
                )
            })?,
            _ => {
                return Err(self.err(
                    v.loc,
                    key,
                    format!(
                        "expected a mapping (`on_http_request: …`), got {}",
                        v.describe()
                    ),
                ));
            }
        };
        if !matches!(doc.value, Value::Map(_)) {
            return Err(self.err(
                v.loc,
                key,
                format!(
                    "expected a mapping (`on_http_request: …`), got {}",
                    doc.describe()
                ),
            ));
        }
        let json = doc
            .to_json()
            .map_err(|(loc, why)| self.err(loc, key, why))?;
        Ok(Some(json.to_string()))
    }

    /// `traffic_policy_file`: reads the file (relative to this config file's directory) and
    /// stores it as JSON. Errors inside it name the policy file.
    fn policy_file(&self, v: &Node, key: &str, file: &str) -> Result<String> {
        let path = self
            .file
            .parent()
            .map_or_else(|| PathBuf::from(file), |dir| dir.join(file));
        if let Some(json) = self.policies.borrow().get(&path) {
            return Ok(json.clone());
        }
        let text = read_file(&path).map_err(|e| match e {
            ConfigError::Invalid { .. } => e,
            other => self.err(v.loc, key, other),
        })?;
        let policy_cx = Ctx::new(&path);
        let doc = yaml::parse(&text)
            .map_err(|e| policy_cx.invalid(e.loc, "", format!("traffic policy: {}", e.message)))?;
        if !matches!(doc.value, Value::Map(_)) {
            return Err(policy_cx.invalid(
                doc.loc,
                "",
                format!(
                    "a traffic policy is a mapping (`on_http_request: …`), not {}",
                    doc.describe()
                ),
            ));
        }
        let json = doc
            .to_json()
            .map_err(|(loc, why)| policy_cx.invalid(loc, "", format!("traffic policy: {why}")))?
            .to_string();
        // Checked here as well as by `EndpointConfig::check`, so that many endpoints sharing a
        // large file cannot hold many copies of it.
        if json.len() > MAX_TRAFFIC_POLICY_BYTES {
            return Err(self.err(
                v.loc,
                key,
                format!(
                    "the traffic policy in `{}` is {} bytes; at most {MAX_TRAFFIC_POLICY_BYTES} \
                     are allowed",
                    path.display(),
                    json.len()
                ),
            ));
        }
        self.policies.borrow_mut().insert(path, json.clone());
        Ok(json)
    }

    // ---- version 2 and `tunnels:` -----------------------------------------------------

    fn v2(&self, entries: &[Entry<'_>], agent: &mut AgentSection) -> Result<Vec<Def>> {
        let mut defs = Vec::new();
        // Which v3 setting each v2 key wrote, to refuse `server_addr` and `connect_url` together.
        let mut written: HashMap<&str, &Node> = HashMap::new();
        for (key, key_node, value) in entries {
            let canonical = V2_RENAMES
                .iter()
                .find(|(old, _)| old == key)
                .map_or(key.as_str(), |(_, new)| *new);
            match key.as_str() {
                "version" => {}
                "tunnels" => {
                    for (name, kn, v) in self.entries(value, "tunnels")? {
                        let def = self.tunnel(&name, kn, v)?;
                        self.add(&mut defs, def)?;
                    }
                }
                // ngrok's regional points of presence: meaningless for a self-hosted edge.
                "region" => {
                    self.opt_string(value, "region")?;
                }
                "endpoints" | "agent" => {
                    return Err(self.invalid(
                        key_node.loc,
                        key,
                        format!("unknown key `{key}` in a version 2 file (it needs `version: 3`)"),
                    ));
                }
                _ => {
                    if let Some(first) = written.get(canonical) {
                        return Err(self.invalid(
                            key_node.loc,
                            key,
                            format!(
                                "`{key}` repeats the setting `{}` made at line {}; keep one",
                                first.text().unwrap_or_default(),
                                first.loc.line
                            ),
                        ));
                    }
                    if !self.agent_key(agent, canonical, key, key_node, value)? {
                        let known: Vec<&str> = V2_KEYS.iter().chain(AGENT_KEYS).copied().collect();
                        return Err(self.unknown(key_node, key, key, &known));
                    }
                    written.insert(canonical, key_node);
                }
            }
        }
        Ok(defs)
    }

    /// A `tunnels:` entry (ngrok's version-2 tunnel syntax), converted to an endpoint named by
    /// its key.
    fn tunnel(&self, name: &str, name_node: &Node, v: &Node) -> Result<Def> {
        let path = format!("tunnels.{name}");
        if !matches!(v.value, Value::Map(_)) {
            return Err(self.err(
                v.loc,
                &path,
                format!(
                    "expected a tunnel (`proto:`, `addr:`), got {}",
                    v.describe()
                ),
            ));
        }
        let entries = self.entries(v, &path)?;
        let mut def = Def::new(v.loc, path.clone());
        def.endpoint.name = name.to_owned();
        def.note(Field::Name, name_node.loc, &path);

        let proto = match entries.iter().find(|(k, _, _)| k == "proto") {
            None => "http",
            Some((_, _, p)) => {
                let kp = format!("{path}.proto");
                match p.text().as_deref() {
                    Some("http") => "http",
                    Some("tcp") => "tcp",
                    Some("tls") => "tls",
                    Some("https") => {
                        return Err(self.err(
                            p.loc,
                            &kp,
                            "expected `http`, `tcp` or `tls`, got `https` (`proto: http` serves \
                             https too)",
                        ));
                    }
                    _ => {
                        return Err(self.err(
                            p.loc,
                            &kp,
                            format!("expected `http`, `tcp` or `tls`, got {}", p.describe()),
                        ));
                    }
                }
            }
        };
        let only = |kn: &Node, kp: &str, protos: &[&str]| -> Result<()> {
            if protos.contains(&proto) {
                Ok(())
            } else {
                Err(self.invalid(
                    kn.loc,
                    kp,
                    format!(
                        "`{kp}` applies to {} tunnels, not {proto}",
                        protos.join(" and ")
                    ),
                ))
            }
        };

        let mut has_addr = false;
        let mut domain: Option<(String, Loc, String)> = None;
        let mut remote_addr: Option<(String, Loc, String)> = None;
        let mut scheme: Option<(&str, Loc, String)> = None;
        for (key, kn, value) in &entries {
            let kp = format!("{path}.{key}");
            let ep = &mut def.endpoint;
            match key.as_str() {
                "proto" => {}
                "addr" => {
                    ep.upstream.url = self.req_string(value, &kp)?;
                    has_addr = true;
                    def.note(Field::UpstreamUrl, value.loc, &kp);
                }
                "domain" | "hostname" => {
                    only(kn, &kp, &["http", "tls"])?;
                    if domain.is_some() {
                        return Err(self.err(kn.loc, &kp, "set `domain` or `hostname`, not both"));
                    }
                    domain = self.opt_string(value, &kp)?.map(|d| (d, value.loc, kp));
                }
                "remote_addr" => {
                    only(kn, &kp, &["tcp"])?;
                    remote_addr = self.opt_string(value, &kp)?.map(|a| (a, value.loc, kp));
                }
                "schemes" | "bind_tls" => {
                    only(kn, &kp, &["http"])?;
                    if scheme.is_some() {
                        return Err(self.both(kn, &kp, "schemes", "bind_tls"));
                    }
                    let picked = if key == "schemes" {
                        self.schemes(value, &kp)?
                    } else {
                        match &value.value {
                            Value::Bool(true) => "https",
                            Value::Bool(false) => "http",
                            Value::Str(s) if s == "both" => "https",
                            _ => {
                                return Err(self.err(
                                    value.loc,
                                    &kp,
                                    format!(
                                        "expected `true`, `false` or `both`, got {}",
                                        value.describe()
                                    ),
                                ));
                            }
                        }
                    };
                    scheme = Some((picked, value.loc, kp));
                }
                "proxy_proto" => {
                    ep.upstream.proxy_protocol = self.proxy_version(value, &kp)?;
                    def.note(Field::ProxyProtocol, value.loc, &kp);
                }
                "metadata" => {
                    ep.metadata = self.opt_string(value, &kp)?;
                    def.note(Field::Metadata, value.loc, &kp);
                }
                "inspect" => ep.inspect = self.opt_bool(value, &kp)?,
                "traffic_policy" => {
                    ep.traffic_policy = self.inline_policy(value, &kp)?;
                    def.note(Field::TrafficPolicy, value.loc, &kp);
                }
                "terminate_at" => {
                    only(kn, &kp, &["tls"])?;
                    match self.opt_string(value, &kp)?.as_deref() {
                        None | Some("upstream") => {}
                        Some(_) => {
                            return Err(self.unsupported(
                                kn,
                                &kp,
                                "except `upstream`; a tls tunnel passes TLS through to the \
                                 upstream service",
                            ));
                        }
                    }
                }
                other => {
                    if let Some((_, hint)) = TUNNEL_UNSUPPORTED.iter().find(|(k, _)| *k == other) {
                        if value.is_empty() {
                            continue;
                        }
                        return Err(self.unsupported(kn, &kp, hint));
                    }
                    return Err(self.unknown(kn, &kp, other, TUNNEL_KEYS));
                }
            }
        }
        if !has_addr {
            return Err(self.err(
                def.at,
                &format!("{path}.addr"),
                "required key is missing (e.g. `addr: 8080`)",
            ));
        }
        let (url, url_at) = match proto {
            "tcp" => match remote_addr {
                Some((addr, loc, kp)) => (format!("tcp://{addr}"), Some((loc, kp))),
                None => ("tcp://".to_owned(), None),
            },
            "tls" => match domain {
                Some((d, loc, kp)) => (format!("tls://{d}"), Some((loc, kp))),
                None => ("tls://".to_owned(), None),
            },
            _ => {
                let (s, scheme_at) = match scheme {
                    Some((s, loc, kp)) => (s, Some((loc, kp))),
                    None => ("https", None),
                };
                match domain {
                    Some((d, loc, kp)) => (format!("{s}://{d}"), Some((loc, kp))),
                    None => (format!("{s}://"), scheme_at),
                }
            }
        };
        def.endpoint.url = Some(url);
        if let Some((loc, kp)) = url_at {
            def.note(Field::Url, loc, &kp);
        }
        Ok(def)
    }

    /// `schemes:` of an http tunnel: `[https]`, `[http]` or both (served as https).
    fn schemes(&self, v: &Node, key: &str) -> Result<&'static str> {
        let list = self.string_list(v, key)?;
        let (mut http, mut https) = (false, false);
        for (i, s) in list.iter().enumerate() {
            match s.to_ascii_lowercase().as_str() {
                "http" => http = true,
                "https" => https = true,
                _ => {
                    return Err(self.err(
                        self.seq(v, key)?.get(i).map_or(v.loc, |n| n.loc),
                        &format!("{key}[{i}]"),
                        format!("expected `http` or `https`, got `{}`", s.escape_debug()),
                    ));
                }
            }
        }
        match (http, https) {
            (true, false) => Ok("http"),
            (_, true) => Ok("https"),
            (false, false) => Err(self.err(v.loc, key, "expected `[https]`, `[http]` or both")),
        }
    }

    // ---- the endpoint list ---------------------------------------------------------------

    /// Adds a definition, refusing more than [`MAX_ENDPOINTS`].
    fn add(&self, defs: &mut Vec<Def>, def: Def) -> Result<()> {
        if defs.len() >= MAX_ENDPOINTS {
            return Err(self.err(
                def.at,
                &def.path,
                format!("more than {MAX_ENDPOINTS} endpoints in one file"),
            ));
        }
        defs.push(def);
        Ok(())
    }

    /// Refuses duplicate names, runs each endpoint's checks and returns the endpoints.
    fn finish(&self, defs: Vec<Def>) -> Result<Vec<EndpointConfig>> {
        let mut seen: HashMap<&str, &Def> = HashMap::new();
        for def in &defs {
            if let Some(first) = seen.get(def.endpoint.name.as_str()) {
                let (loc, key) = def.at_field(Field::Name);
                let first_line = first.at_field(Field::Name).0.line;
                return Err(self.err(
                    loc,
                    &key,
                    format!(
                        "endpoint name `{}` is already used at line {first_line} ({})",
                        def.endpoint.name, first.path
                    ),
                ));
            }
            seen.insert(&def.endpoint.name, def);
        }
        for def in &defs {
            if let Err((field, why)) = def.endpoint.check() {
                let (loc, key) = def.at_field(field);
                return Err(self.err(loc, &key, why));
            }
        }
        Ok(defs.into_iter().map(|d| d.endpoint).collect())
    }
}

impl Def {
    /// Where `field` was written, or the definition itself with the field's key appended.
    fn at_field(&self, field: Field) -> (Loc, String) {
        self.fields
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|(_, loc, key)| (*loc, key.clone()))
            .unwrap_or_else(|| (self.at, format!("{}.{}", self.path, field.key())))
    }
}

/// "`a`, `b` or `c`".
fn one_of(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// The known key closest to `key` when it is a likely typo (edit distance ≤ 2).
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if key.len() > 64 {
        return None;
    }
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
