//! Every message of the agent protocol (§6), as serde structs with the exact key spellings.
//!
//! Reading is lenient, as the SDKs differ: every field has a default, `null` reads as the default,
//! unknown keys are ignored, and the known spelling differences (`AuthToken`/`Authtoken`,
//! `LocalUrlScheme`/`LocalURLScheme`) are aliases. Writing is strict: every key an official client
//! *requires* in a response is always written (see the tests). `Bind.Opts` is kept as a raw
//! [`serde_json::Value`] so it can be echoed back verbatim; [`opts`] has typed read-only views.
//!
//! This module does not decide anything (which host to serve, whether a token is valid): it only
//! names and shapes the bytes.

pub mod opts;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProtoError;
use crate::serde_util::{is_zero, nullable, stringish};

pub use opts::{EndpointUrl, HttpOpts, RequestedName, TcpOpts, TlsOpts};

// ---------------------------------------------------------------------------------------------
// Auth (stream type 0)
// ---------------------------------------------------------------------------------------------

/// Agent → edge, stream type 0: authenticate the session (§6.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// Protocol versions the agent speaks, preferred first (`["3","2"]`).
    #[serde(rename = "Version", default, deserialize_with = "nullable")]
    pub version: Vec<String>,
    /// `""` on the first connect; the `ClientId` the edge returned earlier on a reconnect.
    #[serde(rename = "ClientId", default, deserialize_with = "nullable")]
    pub client_id: String,
    /// Everything else about the agent.
    #[serde(rename = "Extra", default, deserialize_with = "nullable")]
    pub extra: AuthExtra,
}

/// `Auth.Extra`: who the agent is and what it can do. `Debug` hides the authtoken.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthExtra {
    /// Operating system (`linux`, `darwin`, `windows`…).
    #[serde(rename = "OS", default, deserialize_with = "nullable")]
    pub os: String,
    /// CPU architecture (`x86_64` from Rust, `amd64` from Go…).
    #[serde(rename = "Arch", default, deserialize_with = "nullable")]
    pub arch: String,
    /// The authtoken, `""` if none. Rust spells the key `AuthToken`, Go `Authtoken`.
    #[serde(
        rename = "AuthToken",
        alias = "Authtoken",
        default,
        deserialize_with = "nullable"
    )]
    pub auth_token: String,
    /// Version of the most specific client (e.g. the Python package version).
    #[serde(rename = "Version", default, deserialize_with = "nullable")]
    pub version: String,
    /// Always `""` in practice.
    #[serde(rename = "Hostname", default, deserialize_with = "nullable")]
    pub hostname: String,
    /// `type/version[ (comments)]` entries joined by spaces, most specific first.
    #[serde(rename = "UserAgent", default, deserialize_with = "nullable")]
    pub user_agent: String,
    /// Session metadata set by the user.
    #[serde(rename = "Metadata", default, deserialize_with = "nullable")]
    pub metadata: String,
    /// `""` on the first connect; the `Extra.Cookie` the edge returned earlier on a reconnect.
    #[serde(rename = "Cookie", default, deserialize_with = "nullable")]
    pub cookie: String,
    /// Heartbeat interval in nanoseconds (§4); see [`AuthExtra::heartbeat_interval`].
    #[serde(rename = "HeartbeatInterval", default, deserialize_with = "nullable")]
    pub heartbeat_interval: i64,
    /// Heartbeat tolerance in nanoseconds (§4); see [`AuthExtra::heartbeat_tolerance`].
    #[serde(rename = "HeartbeatTolerance", default, deserialize_with = "nullable")]
    pub heartbeat_tolerance: i64,
    /// `Some("")` = the agent handles Update; `Some(reason)` = it does not; `None` = old agent.
    #[serde(rename = "UpdateUnsupportedError", default)]
    pub update_unsupported_error: Option<String>,
    /// Same as `update_unsupported_error`, for Stop.
    #[serde(rename = "StopUnsupportedError", default)]
    pub stop_unsupported_error: Option<String>,
    /// Same as `update_unsupported_error`, for Restart.
    #[serde(rename = "RestartUnsupportedError", default)]
    pub restart_unsupported_error: Option<String>,
    /// Always `""` from SDKs.
    #[serde(rename = "ProxyType", default, deserialize_with = "nullable")]
    pub proxy_type: String,
    /// Always false from SDKs.
    #[serde(rename = "MutualTLS", default, deserialize_with = "nullable")]
    pub mutual_tls: bool,
    /// Always false from SDKs.
    #[serde(rename = "ServiceRun", default, deserialize_with = "nullable")]
    pub service_run: bool,
    /// Always `""` from SDKs.
    #[serde(rename = "ConfigVersion", default, deserialize_with = "nullable")]
    pub config_version: String,
    /// Always false from SDKs.
    #[serde(rename = "CustomInterface", default, deserialize_with = "nullable")]
    pub custom_interface: bool,
    /// Always false from SDKs.
    #[serde(rename = "CustomCAs", default, deserialize_with = "nullable")]
    pub custom_cas: bool,
    /// `ngrok-rust`, `ngrok-python`, `ngrok-javascript`, `ngrok-go`, …
    #[serde(rename = "ClientType", default, deserialize_with = "nullable")]
    pub client_type: String,
    /// Go only, always null.
    #[serde(
        rename = "Fingerprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fingerprint: Option<Value>,
    /// Go only (multi-leg), normally 0.
    #[serde(
        rename = "LegNumber",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub leg_number: u32,
}

impl fmt::Debug for AuthExtra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.auth_token.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("AuthExtra")
            .field("os", &self.os)
            .field("arch", &self.arch)
            .field("auth_token", &token)
            .field("version", &self.version)
            .field("hostname", &self.hostname)
            .field("user_agent", &self.user_agent)
            .field("metadata", &self.metadata)
            .field("cookie", &self.cookie)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_tolerance", &self.heartbeat_tolerance)
            .field("update_unsupported_error", &self.update_unsupported_error)
            .field("stop_unsupported_error", &self.stop_unsupported_error)
            .field("restart_unsupported_error", &self.restart_unsupported_error)
            .field("proxy_type", &self.proxy_type)
            .field("mutual_tls", &self.mutual_tls)
            .field("service_run", &self.service_run)
            .field("config_version", &self.config_version)
            .field("custom_interface", &self.custom_interface)
            .field("custom_cas", &self.custom_cas)
            .field("client_type", &self.client_type)
            .field("fingerprint", &self.fingerprint)
            .field("leg_number", &self.leg_number)
            .finish()
    }
}

impl AuthExtra {
    /// The agent's heartbeat interval, if it sent a positive one.
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        positive_nanos(self.heartbeat_interval)
    }

    /// The agent's heartbeat tolerance, if it sent a positive one.
    pub fn heartbeat_tolerance(&self) -> Option<Duration> {
        positive_nanos(self.heartbeat_tolerance)
    }
}

fn positive_nanos(ns: i64) -> Option<Duration> {
    u64::try_from(ns)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_nanos)
}

/// Edge → agent reply to [`Auth`]. `Version` and `ClientId` are always written (the Rust SDK
/// requires them); `Error` only when non-empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthResp {
    /// The chosen protocol version; send `"3"`.
    #[serde(rename = "Version", default, deserialize_with = "nullable")]
    pub version: String,
    /// The session id; the agent sends it back in `Auth.ClientId` on reconnect.
    #[serde(rename = "ClientId", default, deserialize_with = "nullable")]
    pub client_id: String,
    /// Non-empty = authentication refused (see [`crate::encode_error`]).
    #[serde(
        rename = "Error",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
    /// Informational extras, and the reconnect cookie.
    #[serde(rename = "Extra", default, deserialize_with = "nullable")]
    pub extra: AuthRespExtra,
}

/// `AuthResp.Extra`. All optional for the clients; the cookie is the one that matters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthRespExtra {
    /// Server version (informational).
    #[serde(rename = "Version", default, deserialize_with = "nullable")]
    pub version: String,
    /// Region name.
    #[serde(rename = "Region", default, deserialize_with = "nullable")]
    pub region: String,
    /// Opaque value the agent sends back in `Auth.Extra.Cookie` on reconnect.
    #[serde(rename = "Cookie", default, deserialize_with = "nullable")]
    pub cookie: String,
    /// Account name (informational).
    #[serde(rename = "AccountName", default, deserialize_with = "nullable")]
    pub account_name: String,
    /// Plan name (informational).
    #[serde(rename = "PlanName", default, deserialize_with = "nullable")]
    pub plan_name: String,
    /// Banner text (informational).
    #[serde(rename = "Banner", default, deserialize_with = "nullable")]
    pub banner: String,
    /// Session duration limit in seconds (0 = none).
    #[serde(rename = "SessionDuration", default, deserialize_with = "nullable")]
    pub session_duration: i64,
    /// Go logs it as a warning; omitted when `None`.
    #[serde(
        rename = "DeprecationWarning",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deprecation_warning: Option<DeprecationWarning>,
    /// Go only (multi-leg); omitted when empty.
    #[serde(
        rename = "ConnectAddresses",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub connect_addresses: Vec<ConnectAddress>,
    /// Go exposes it through its API; omitted when empty.
    #[serde(
        rename = "AgentSessionID",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub agent_session_id: String,
}

/// `AuthResp.Extra.DeprecationWarning`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeprecationWarning {
    /// Minimum agent version after `next_date`.
    #[serde(rename = "NextMin", default, deserialize_with = "nullable")]
    pub next_min: String,
    /// RFC 3339 date.
    #[serde(rename = "NextDate", default, deserialize_with = "nullable")]
    pub next_date: String,
    /// Text shown to the user.
    #[serde(rename = "Msg", default, deserialize_with = "nullable")]
    pub msg: String,
}

/// One entry of `AuthResp.Extra.ConnectAddresses`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectAddress {
    /// Region name.
    #[serde(rename = "Region", default, deserialize_with = "nullable")]
    pub region: String,
    /// `host:port` agents of that region connect to.
    #[serde(rename = "ServerAddr", default, deserialize_with = "nullable")]
    pub server_addr: String,
}

// ---------------------------------------------------------------------------------------------
// Bind (stream type 1)
// ---------------------------------------------------------------------------------------------

/// Agent → edge, stream type 1: start an endpoint (§6.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bind {
    /// `""` on a new bind; on a rebind, the `Id` the edge returned earlier (keep it).
    #[serde(rename = "Id", default, deserialize_with = "nullable")]
    pub id: String,
    /// `https`, `http`, `tcp`, `tls` (Go also `ssh`).
    #[serde(rename = "Proto", default, deserialize_with = "nullable")]
    pub proto: String,
    /// Informational: the agent's upstream.
    #[serde(rename = "ForwardsTo", default, deserialize_with = "nullable")]
    pub forwards_to: String,
    /// `""`, `http1` or `http2`.
    #[serde(rename = "ForwardsProto", default, deserialize_with = "nullable")]
    pub forwards_proto: String,
    /// The endpoint options exactly as sent, to echo in [`BindResp::opts`]. Read them through
    /// [`Bind::http_opts`], [`Bind::tcp_opts`] or [`Bind::tls_opts`].
    #[serde(rename = "Opts", default)]
    pub opts: Value,
    /// Token, policy reference, metadata, pooling.
    #[serde(rename = "Extra", default, deserialize_with = "nullable")]
    pub extra: BindExtra,
}

/// `Bind.Extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindExtra {
    /// `""` first time; on a rebind, the `Extra.Token` the edge returned earlier.
    #[serde(rename = "Token", default, deserialize_with = "nullable")]
    pub token: String,
    /// IP policy reference.
    #[serde(rename = "IPPolicyRef", default, deserialize_with = "nullable")]
    pub ip_policy_ref: String,
    /// Per-endpoint metadata.
    #[serde(rename = "Metadata", default, deserialize_with = "nullable")]
    pub metadata: String,
    /// `public` / `internal` / `kubernetes`; usually empty.
    #[serde(rename = "Bindings", default, deserialize_with = "nullable")]
    pub bindings: Vec<String>,
    /// Whether the agent allows several agents to serve the same URL (Rust ≥ 0.15).
    #[serde(rename = "PoolingEnabled", default, deserialize_with = "nullable")]
    pub pooling_enabled: bool,
    /// Endpoint name (Go).
    #[serde(rename = "Name", default, deserialize_with = "nullable")]
    pub name: String,
    /// Endpoint description (Go).
    #[serde(rename = "Description", default, deserialize_with = "nullable")]
    pub description: String,
}

/// Edge → agent reply to [`Bind`]. `Id`, `URL`, `Proto`, `Opts` and `Extra.Token` are always
/// written on success; `Opts` is omitted only when it is `null` (a refusal).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindResp {
    /// The endpoint id; on a rebind, the `Id` the agent sent.
    #[serde(rename = "Id", default, deserialize_with = "nullable")]
    pub id: String,
    /// Shown to the user as-is: `https://host`, `tcp://host:port`, `tls://host`.
    #[serde(rename = "URL", default, deserialize_with = "nullable")]
    pub url: String,
    /// The request's `Proto`, echoed.
    #[serde(rename = "Proto", default, deserialize_with = "nullable")]
    pub proto: String,
    /// The request's `Opts`, echoed verbatim.
    #[serde(rename = "Opts", default, skip_serializing_if = "Value::is_null")]
    pub opts: Value,
    /// The rebind token.
    #[serde(rename = "Extra", default, deserialize_with = "nullable")]
    pub extra: BindRespExtra,
    /// Non-empty = bind refused.
    #[serde(
        rename = "Error",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
}

/// `BindResp.Extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindRespExtra {
    /// Opaque; the agent sends it back in `Bind.Extra.Token` on rebind.
    #[serde(rename = "Token", default, deserialize_with = "nullable")]
    pub token: String,
}

// ---------------------------------------------------------------------------------------------
// Unbind (stream type 2)
// ---------------------------------------------------------------------------------------------

/// Agent → edge, stream type 2: stop an endpoint (§6.4). May arrive twice, or for an id the edge
/// already dropped; it must succeed anyway. Go's `"Extra": null` is ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unbind {
    /// The endpoint id.
    #[serde(rename = "Id", default, deserialize_with = "nullable")]
    pub id: String,
}

/// Edge → agent reply to [`Unbind`]; `{}` on success.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnbindResp {
    /// Non-empty = failure.
    #[serde(
        rename = "Error",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
}

// ---------------------------------------------------------------------------------------------
// StartTunnelWithLabel (stream type 7)
// ---------------------------------------------------------------------------------------------

/// Agent → edge, stream type 7: start a labeled tunnel (§6.3; deprecated by ngrok).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartTunnelWithLabel {
    /// Labels selecting the edge, e.g. `{"edge": "edghts_…"}`.
    #[serde(rename = "Labels", default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Informational: the agent's upstream.
    #[serde(rename = "ForwardsTo", default, deserialize_with = "nullable")]
    pub forwards_to: String,
    /// `""`, `http1` or `http2`.
    #[serde(rename = "ForwardsProto", default, deserialize_with = "nullable")]
    pub forwards_proto: String,
    /// Per-tunnel metadata.
    #[serde(rename = "Metadata", default, deserialize_with = "nullable")]
    pub metadata: String,
}

/// Edge → agent reply to [`StartTunnelWithLabel`]. `Id` is always written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartTunnelWithLabelResp {
    /// The tunnel id (used as [`ProxyHeader::id`]).
    #[serde(rename = "Id", default, deserialize_with = "nullable")]
    pub id: String,
    /// Non-empty = refused.
    #[serde(
        rename = "Error",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
}

// ---------------------------------------------------------------------------------------------
// SrvInfo (stream type 8) and PatchTunnelState (stream type 10): Go only
// ---------------------------------------------------------------------------------------------

/// Agent → edge, stream type 8 (Go only): `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrvInfo {}

/// Edge → agent reply to [`SrvInfo`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SrvInfoResp {
    /// Region name.
    #[serde(rename = "Region", default, deserialize_with = "nullable")]
    pub region: String,
    /// Non-empty = failure.
    #[serde(
        rename = "Error",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
}

/// Agent → edge, stream type 10 (Go v2 only): change an endpoint's state. `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatchTunnelState {
    /// The endpoint id.
    #[serde(rename = "TunnelId", default, deserialize_with = "nullable")]
    pub tunnel_id: String,
    /// New name.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New description.
    #[serde(
        rename = "Description",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// New metadata.
    #[serde(rename = "Metadata", default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// New pooling setting.
    #[serde(
        rename = "PoolingEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pooling_enabled: Option<bool>,
    /// New traffic policy document (JSON or YAML text).
    #[serde(
        rename = "TrafficPolicy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub traffic_policy: Option<String>,
}

/// Edge → agent reply to [`PatchTunnelState`]; `{}` on success.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatchTunnelStateResp {
    /// Non-empty = failure.
    #[serde(
        rename = "Error",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
}

// ---------------------------------------------------------------------------------------------
// Edge → agent commands (stream types 4, 5, 6, 9)
// ---------------------------------------------------------------------------------------------

/// Edge → agent, stream type 5: stop the agent. `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {}

/// Edge → agent, stream type 4: restart the agent. `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {}

/// Edge → agent, stream type 6: update the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Target version (`""` = latest).
    #[serde(rename = "Version", default, deserialize_with = "nullable")]
    pub version: String,
    /// Whether a major-version jump is allowed.
    #[serde(rename = "PermitMajorVersion", default, deserialize_with = "nullable")]
    pub permit_major_version: bool,
}

/// Agent → edge reply to [`Stop`], [`Restart`] and [`Update`]: `{}` on success, or `Error` (e.g.
/// "the agent has not defined a callback for this operation").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResp {
    /// Non-empty = the agent refused or failed.
    #[serde(
        rename = "Error",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub error: String,
}

/// Edge → agent, stream type 9: the edge stopped one endpoint. The agent closes that listener
/// and writes no reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTunnel {
    /// The endpoint id.
    #[serde(rename = "Id", default, deserialize_with = "nullable")]
    pub id: String,
    /// Shown to the user.
    #[serde(rename = "Message", default, deserialize_with = "nullable")]
    pub message: String,
    /// An `ERR_NGROK_nnn` code, or null. Always written.
    #[serde(rename = "ErrorCode", default)]
    pub error_code: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Proxy stream header (stream type 3)
// ---------------------------------------------------------------------------------------------

/// Upper bound on a proxy header's JSON length accepted by [`ProxyHeader::decode`]. A real header
/// is an id, an address, a proto and two short values: well under 1 KiB.
pub const MAX_PROXY_HEADER: usize = 16 * 1024;

/// `ProxyHeader.EdgeType` values.
pub mod edge_type {
    /// Undefined (what Warren sends for plain endpoints). `"0"` means the same.
    pub const UNDEFINED: &str = "";
    /// A TCP edge.
    pub const TCP: &str = "1";
    /// A TLS edge.
    pub const TLS: &str = "2";
    /// An HTTPS edge.
    pub const HTTPS: &str = "3";
}

/// Edge → agent, at the start of every proxy stream (stream type 3): which endpoint and which
/// visitor (§6.5). All five keys are always written (the Rust SDK drops the stream otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyHeader {
    /// The endpoint (bind) id or labeled tunnel id.
    #[serde(rename = "Id", default, deserialize_with = "nullable")]
    pub id: String,
    /// The visitor's `ip:port` (`[v6]:port`).
    #[serde(rename = "ClientAddr", default, deserialize_with = "nullable")]
    pub client_addr: String,
    /// The endpoint's `Proto`.
    #[serde(rename = "Proto", default, deserialize_with = "nullable")]
    pub proto: String,
    /// One of [`edge_type`]; always a JSON string (a number is accepted on input).
    #[serde(rename = "EdgeType", default, deserialize_with = "stringish")]
    pub edge_type: String,
    /// Whether the bytes are an un-terminated TLS stream.
    #[serde(rename = "PassthroughTLS", default, deserialize_with = "nullable")]
    pub passthrough_tls: bool,
}

impl ProxyHeader {
    /// `[i64 little-endian length][JSON]`, ready to follow the stream-type prefix.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a ProxyHeader always serializes");
        let mut out = Vec::with_capacity(8 + json.len());
        // A Vec never holds more than isize::MAX bytes, so the length always fits an i64.
        out.extend_from_slice(&(json.len() as i64).to_le_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// Reads one length-prefixed header from the start of `buf`.
    ///
    /// `Ok(None)` = more bytes needed; `Ok(Some((header, n)))` = the header and the number of bytes
    /// it used (the visitor's bytes start at `buf[n..]`). A negative length or one over
    /// [`MAX_PROXY_HEADER`] is an error as soon as the 8 length bytes are in.
    pub fn decode(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProtoError> {
        let Some(len_bytes) = buf.get(..8) else {
            return Ok(None);
        };
        let len = i64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let json_len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= MAX_PROXY_HEADER)
            .ok_or(ProtoError::ProxyHeaderLength(len))?;
        let Some(json) = buf.get(8..8 + json_len) else {
            return Ok(None);
        };
        let header = serde_json::from_slice(json)?;
        Ok(Some((header, 8 + json_len)))
    }
}
