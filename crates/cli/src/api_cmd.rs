//! `warren api`: the operator's command line over Warren's REST API (ngrok API v2 shapes).
//!
//! One generic path serves every resource: a [`Resource`] row names its collection, its list
//! key and the columns of its table; verbs map to the uniform API methods (list = GET
//! collection, get = GET item, create = POST, update = PATCH, delete = DELETE, and the tunnel
//! session actions). Request bodies carry only the flags given; the server rejects fields a
//! resource does not have (ERR_NGROK_214), so that check lives in one place.
//!
//! Output: a table (lists) or `key  value` lines (one object) for people; `--json` prints the
//! API's JSON unchanged, for scripts. The API key comes from `--api-key`, `WARREN_API_KEY` or
//! `agent.api_key` in the config file; it is never printed.
//!
//! Event export has its own rows: `event-destinations` (with target flags and `requeue`),
//! `event-subscriptions`, `event-sources` (a subscription's event types), `events tail` (the
//! live `/event_stream`, reconnecting with backoff until Ctrl-C) and `usage`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;

use crate::args::ConfigFlag;

/// Default API base URL: a `warrend` with embedded defaults on this machine.
pub const DEFAULT_API_URL: &str = "http://localhost:9000";

/// Deadline for one API request (connect, send, read the whole response).
pub const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response body read.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Most pages `--all` follows.
pub const MAX_PAGES: usize = 10_000;

/// `warren api …`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// API key [env: WARREN_API_KEY; config: agent.api_key].
    #[arg(long, global = true, value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Base URL of the REST API [env: WARREN_API_URL] [default: http://localhost:9000].
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigFlag,
    /// The resource.
    #[command(subcommand)]
    pub resource: ApiResource,
}

/// The resources.
#[derive(Debug, Subcommand)]
pub enum ApiResource {
    /// Service users: machine accounts that own authtokens and API keys.
    #[command(subcommand)]
    ServiceUsers(Verb),
    /// Service users through the legacy `/bot_users` path.
    #[command(subcommand)]
    BotUsers(Verb),
    /// Authtokens (tunnel credentials) with their ACL rules.
    #[command(subcommand)]
    Credentials(Verb),
    /// API keys.
    #[command(subcommand)]
    ApiKeys(Verb),
    /// Reserved domains (wildcards included).
    #[command(subcommand)]
    ReservedDomains(Verb),
    /// Reserved TCP addresses.
    #[command(subcommand)]
    ReservedAddrs(Verb),
    /// Online agents, and remote stop/restart/update.
    #[command(subcommand)]
    TunnelSessions(SessionVerb),
    /// Live tunnels (read-only).
    #[command(subcommand)]
    Tunnels(ReadVerb),
    /// Live endpoints (read-only).
    #[command(subcommand)]
    Endpoints(ReadVerb),
    /// IP policies: named sets of allow/deny rules.
    #[command(subcommand)]
    IpPolicies(Verb),
    /// Rules of IP policies (a CIDR with `allow` or `deny`).
    #[command(subcommand)]
    IpPolicyRules(Verb),
    /// Where IP policies are enforced (`agent`, `api`, `endpoints`).
    #[command(subcommand)]
    IpRestrictions(Verb),
    /// Event destinations: where exported events go (http, file, nats; ngrok's cloud kinds are
    /// stored but not delivered).
    #[command(subcommand)]
    EventDestinations(DestinationVerb),
    /// Event subscriptions: which event types go to which destinations.
    #[command(subcommand)]
    EventSubscriptions(SubscriptionVerb),
    /// The event types (sources) of one subscription.
    #[command(subcommand)]
    EventSources(SourceVerb),
    /// Live events as they happen.
    #[command(subcommand)]
    Events(EventsVerb),
    /// Traffic and active endpoint hours over a time range, by endpoint and in total.
    Usage(UsageArgs),
}

/// Verbs of event destinations.
#[derive(Debug, Subcommand)]
pub enum DestinationVerb {
    /// List, newest first (with pending and parked event counts).
    List(ListArgs),
    /// Show one, with its delivery state.
    Get {
        /// The `ed_…` id.
        id: String,
    },
    /// Create one: give a target with `--target-json` or the flags of one kind.
    Create(DestinationFields),
    /// Change fields of one (only the flags given; a target replaces the old one).
    Update {
        /// The `ed_…` id.
        id: String,
        #[command(flatten)]
        fields: DestinationFields,
    },
    /// Delete one (refused while a subscription names it).
    Delete {
        /// The `ed_…` id.
        id: String,
    },
    /// Put the events parked after failed deliveries back in line.
    Requeue {
        /// The `ed_…` id.
        id: String,
    },
}

/// Fields of an event destination.
#[derive(Debug, Default, Args)]
pub struct DestinationFields {
    /// Description (at most 255 bytes).
    #[arg(long)]
    pub description: Option<String>,
    /// Machine-readable metadata (at most 4096 bytes).
    #[arg(long)]
    pub metadata: Option<String>,
    /// Payload format; only `json` [default on create: json].
    #[arg(long)]
    pub format: Option<String>,
    /// The whole `target` object as JSON, e.g. '{"http":{"url":"https://…","secret":"…"}}'
    /// (any kind, ngrok's included).
    #[arg(long, value_name = "JSON", conflicts_with_all = ["http_url", "file_path", "nats_url"])]
    pub target_json: Option<String>,
    /// Webhook target: POST JSON batches to this URL.
    #[arg(long, value_name = "URL", conflicts_with_all = ["file_path", "nats_url"])]
    pub http_url: Option<String>,
    /// Webhook target: the secret batches are signed with (HMAC-SHA256).
    #[arg(long, value_name = "SECRET", requires = "http_url")]
    pub http_secret: Option<String>,
    /// File target: append JSON lines to this path on the server (rotated by size).
    #[arg(long, value_name = "PATH", conflicts_with = "nats_url")]
    pub file_path: Option<String>,
    /// NATS target: the server URL (`nats://host:4222`).
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
    /// NATS target: the subject prefix, required with `--nats-url` (events go to
    /// `<subject>.<event type>`).
    #[arg(long, value_name = "SUBJECT", requires = "nats_url")]
    pub nats_subject: Option<String>,
}

impl DestinationFields {
    /// The `target` object the flags describe, if any.
    fn target(&self) -> anyhow::Result<Option<Value>> {
        if let Some(text) = &self.target_json {
            let value: Value = serde_json::from_str(text)
                .with_context(|| "--target-json is not valid JSON".to_string())?;
            if !value.is_object() {
                bail!(
                    "--target-json must be a JSON object such as '{{\"file\":{{\"path\":\"/var/log/warren/events.jsonl\"}}}}'"
                );
            }
            return Ok(Some(value));
        }
        if let Some(url) = &self.http_url {
            let mut http = Map::new();
            http.insert("url".into(), json!(url));
            if let Some(secret) = &self.http_secret {
                http.insert("secret".into(), json!(secret));
            }
            return Ok(Some(json!({ "http": http })));
        }
        if let Some(path) = &self.file_path {
            return Ok(Some(json!({"file": {"path": path}})));
        }
        if let Some(url) = &self.nats_url {
            let mut nats = Map::new();
            nats.insert("url".into(), json!(url));
            if let Some(subject) = &self.nats_subject {
                nats.insert("subject".into(), json!(subject));
            }
            return Ok(Some(json!({ "nats": nats })));
        }
        Ok(None)
    }

    /// The JSON body; `create` fills the default format and requires a target.
    fn body(&self, create: bool) -> anyhow::Result<Value> {
        let mut m = Map::new();
        if let Some(v) = &self.description {
            m.insert("description".into(), json!(v));
        }
        if let Some(v) = &self.metadata {
            m.insert("metadata".into(), json!(v));
        }
        match &self.format {
            Some(v) => {
                m.insert("format".into(), json!(v));
            }
            None if create => {
                m.insert("format".into(), json!("json"));
            }
            None => {}
        }
        match self.target()? {
            Some(t) => {
                m.insert("target".into(), t);
            }
            None if create => bail!(
                "a destination needs a target: --http-url, --file-path, --nats-url or --target-json"
            ),
            None => {}
        }
        Ok(Value::Object(m))
    }
}

/// Verbs of event subscriptions.
#[derive(Debug, Subcommand)]
pub enum SubscriptionVerb {
    /// List, newest first.
    List(ListArgs),
    /// Show one.
    Get {
        /// The `esb_…` id.
        id: String,
    },
    /// Create one.
    Create(SubscriptionFields),
    /// Change fields of one (only the flags given; `--source`/`--destination-id` replace the
    /// old lists).
    Update {
        /// The `esb_…` id.
        id: String,
        #[command(flatten)]
        fields: SubscriptionFields,
    },
    /// Delete one.
    Delete {
        /// The `esb_…` id.
        id: String,
    },
}

/// Fields of an event subscription.
#[derive(Debug, Default, Args)]
pub struct SubscriptionFields {
    /// Description (at most 255 bytes).
    #[arg(long)]
    pub description: Option<String>,
    /// Machine-readable metadata (at most 4096 bytes).
    #[arg(long)]
    pub metadata: Option<String>,
    /// An event type to send, e.g. `agent_session_start.v0` (repeatable; one empty value
    /// clears the list).
    #[arg(long = "source", value_name = "TYPE")]
    pub sources: Vec<String>,
    /// A destination (`ed_…`) to send to (repeatable; one empty value clears the list).
    #[arg(long = "destination-id", value_name = "ID")]
    pub destination_ids: Vec<String>,
}

impl SubscriptionFields {
    fn body(&self) -> Value {
        let mut m = Map::new();
        if let Some(v) = &self.description {
            m.insert("description".into(), json!(v));
        }
        if let Some(v) = &self.metadata {
            m.insert("metadata".into(), json!(v));
        }
        if !self.sources.is_empty() {
            let sources: Vec<Value> = self
                .sources
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| json!({ "type": s }))
                .collect();
            m.insert("sources".into(), Value::Array(sources));
        }
        if !self.destination_ids.is_empty() {
            let ids: Vec<&String> = self
                .destination_ids
                .iter()
                .filter(|s| !s.is_empty())
                .collect();
            m.insert("destination_ids".into(), json!(ids));
        }
        Value::Object(m)
    }
}

/// Verbs of a subscription's sources.
#[derive(Debug, Subcommand)]
pub enum SourceVerb {
    /// Add an event type to a subscription.
    Add {
        /// The `esb_…` id.
        subscription_id: String,
        /// The event type, e.g. `agent_session_stop.v0`.
        #[arg(value_name = "TYPE")]
        kind: String,
    },
    /// List a subscription's event types.
    List {
        /// The `esb_…` id.
        subscription_id: String,
    },
    /// Show one event type of a subscription.
    Get {
        /// The `esb_…` id.
        subscription_id: String,
        /// The event type.
        #[arg(value_name = "TYPE")]
        kind: String,
    },
    /// Remove an event type from a subscription.
    Delete {
        /// The `esb_…` id.
        subscription_id: String,
        /// The event type.
        #[arg(value_name = "TYPE")]
        kind: String,
    },
}

/// Verbs of live events.
#[derive(Debug, Subcommand)]
pub enum EventsVerb {
    /// Print events as they happen, one line each (`--json`: the envelope), until Ctrl-C.
    /// Reconnects with backoff when the connection drops; events in the gap are not replayed.
    Tail {
        /// Only this event type (repeatable), e.g. `agent_session_stop.v0`.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
    },
}

/// `usage` flags.
#[derive(Debug, Default, Args)]
pub struct UsageArgs {
    /// Start of the range, RFC 3339 [default: the first day of this month, 00:00 UTC].
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// End of the range, RFC 3339 [default: now].
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Only this credential's traffic (`cr_…`).
    #[arg(long, value_name = "ID")]
    pub credential_id: Option<String>,
    /// Only this endpoint's traffic (its URL).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

impl UsageArgs {
    fn path(&self) -> String {
        let mut query = Vec::new();
        for (k, v) in [
            ("start", &self.start),
            ("end", &self.end),
            ("credential_id", &self.credential_id),
            ("endpoint", &self.endpoint),
        ] {
            if let Some(v) = v {
                query.push(format!("{k}={}", encode_query(v)));
            }
        }
        if query.is_empty() {
            "/usage".into()
        } else {
            format!("/usage?{}", query.join("&"))
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Verbs of a writable resource.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// List, newest first.
    List(ListArgs),
    /// Show one.
    Get {
        /// The id.
        id: String,
    },
    /// Create one.
    Create(Fields),
    /// Change fields of one (only the flags given).
    Update {
        /// The id.
        id: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Delete one.
    Delete {
        /// The id.
        id: String,
    },
}

/// Verbs of a read-only resource.
#[derive(Debug, Subcommand)]
pub enum ReadVerb {
    /// List, newest first.
    List(ListArgs),
    /// Show one.
    Get {
        /// The id.
        id: String,
    },
}

/// Verbs of tunnel sessions.
#[derive(Debug, Subcommand)]
pub enum SessionVerb {
    /// List online agents.
    List(ListArgs),
    /// Show one.
    Get {
        /// The `ts_…` id.
        id: String,
    },
    /// Make the agent exit.
    Stop {
        /// The `ts_…` id.
        id: String,
    },
    /// Make the agent re-execute itself and reconnect.
    Restart {
        /// The `ts_…` id.
        id: String,
    },
    /// Make the agent update itself.
    Update {
        /// The `ts_…` id.
        id: String,
        /// The version to update to (default: the latest).
        #[arg(long)]
        version: Option<String>,
    },
}

/// Paging flags.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Page size (1-100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Only items created before this id.
    #[arg(long, value_name = "ID")]
    pub before_id: Option<String>,
    /// Follow `next_page_uri` until the end.
    #[arg(long)]
    pub all: bool,
}

/// Writable fields; each resource accepts a subset (the API names any it does not).
#[derive(Debug, Default, Args)]
pub struct Fields {
    /// Name (service users).
    #[arg(long)]
    pub name: Option<String>,
    /// Whether the service user is active.
    #[arg(long, value_name = "true|false")]
    pub active: Option<bool>,
    /// Description (at most 255 bytes).
    #[arg(long)]
    pub description: Option<String>,
    /// Machine-readable metadata (at most 4096 bytes).
    #[arg(long)]
    pub metadata: Option<String>,
    /// ACL rule of a credential, e.g. 'bind:*.site1.example.com' (repeatable; one empty value
    /// clears the list).
    #[arg(long = "acl", value_name = "RULE")]
    pub acl: Vec<String>,
    /// Owning service user (`service_…`).
    #[arg(long, value_name = "ID")]
    pub owner_id: Option<String>,
    /// Domain to reserve (`cam1.example.com`, `*.site1.example.com`).
    #[arg(long)]
    pub domain: Option<String>,
    /// Region (accepted for compatibility).
    #[arg(long)]
    pub region: Option<String>,
    /// CIDR of an IP policy rule (`10.0.0.0/8`, `2001:db8::/32`).
    #[arg(long)]
    pub cidr: Option<String>,
    /// `allow` or `deny` (IP policy rules).
    #[arg(long, value_name = "allow|deny")]
    pub action: Option<String>,
    /// IP policy of a rule, or of a restriction (repeatable for restrictions).
    #[arg(long = "ip-policy-id", value_name = "ID")]
    pub ip_policy_ids: Vec<String>,
    /// What an IP restriction guards: `agent`, `api` or `endpoints`.
    #[arg(long = "type", value_name = "TYPE")]
    pub restriction_type: Option<String>,
    /// Whether an IP restriction is enforced (`false`: only evaluated).
    #[arg(long, value_name = "true|false")]
    pub enforced: Option<bool>,
}

impl Fields {
    /// The JSON body; `path` decides how `--ip-policy-id` is sent (one id for a rule, a list
    /// for a restriction).
    fn body(&self, path: &str) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        if let Some(v) = &self.name {
            put("name", json!(v));
        }
        if let Some(v) = self.active {
            put("active", json!(v));
        }
        if let Some(v) = &self.description {
            put("description", json!(v));
        }
        if let Some(v) = &self.metadata {
            put("metadata", json!(v));
        }
        if !self.acl.is_empty() {
            let rules: Vec<&String> = self.acl.iter().filter(|r| !r.is_empty()).collect();
            put("acl", json!(rules));
        }
        if let Some(v) = &self.owner_id {
            put("owner_id", json!(v));
        }
        if let Some(v) = &self.domain {
            put("domain", json!(v));
        }
        if let Some(v) = &self.region {
            put("region", json!(v));
        }
        if let Some(v) = &self.cidr {
            put("cidr", json!(v));
        }
        if let Some(v) = &self.action {
            put("action", json!(v));
        }
        if !self.ip_policy_ids.is_empty() {
            if path == "/ip_policy_rules" {
                put("ip_policy_id", json!(self.ip_policy_ids[0]));
            } else {
                put("ip_policy_ids", json!(self.ip_policy_ids));
            }
        }
        if let Some(v) = &self.restriction_type {
            put("type", json!(v));
        }
        if let Some(v) = self.enforced {
            put("enforced", json!(v));
        }
        Value::Object(m)
    }
}

/// How a resource is addressed and shown.
struct Resource {
    path: &'static str,
    list_key: &'static str,
    columns: &'static [&'static str],
}

fn resource_of(r: &ApiResource) -> Resource {
    let (path, list_key, columns): (_, _, &'static [&'static str]) = match r {
        ApiResource::ServiceUsers(_) => (
            "/service_users",
            "service_users",
            &["id", "name", "active", "created_at"],
        ),
        ApiResource::BotUsers(_) => (
            "/bot_users",
            "bot_users",
            &["id", "name", "active", "created_at"],
        ),
        ApiResource::Credentials(_) => (
            "/credentials",
            "credentials",
            &["id", "description", "acl", "owner_id", "created_at"],
        ),
        ApiResource::ApiKeys(_) => (
            "/api_keys",
            "keys",
            &["id", "description", "owner_id", "created_at"],
        ),
        ApiResource::ReservedDomains(_) => (
            "/reserved_domains",
            "reserved_domains",
            &["id", "domain", "cname_target", "description", "created_at"],
        ),
        ApiResource::ReservedAddrs(_) => (
            "/reserved_addrs",
            "reserved_addrs",
            &["id", "addr", "description", "created_at"],
        ),
        ApiResource::TunnelSessions(_) => (
            "/tunnel_sessions",
            "tunnel_sessions",
            &["id", "ip", "os", "agent_version", "metadata", "started_at"],
        ),
        ApiResource::Tunnels(_) => (
            "/tunnels",
            "tunnels",
            &["id", "public_url", "proto", "forwards_to", "started_at"],
        ),
        ApiResource::Endpoints(_) => (
            "/endpoints",
            "endpoints",
            &["id", "url", "proto", "upstream_url", "name"],
        ),
        ApiResource::IpPolicies(_) => (
            "/ip_policies",
            "ip_policies",
            &["id", "description", "created_at"],
        ),
        ApiResource::IpPolicyRules(_) => (
            "/ip_policy_rules",
            "ip_policy_rules",
            &[
                "id",
                "cidr",
                "action",
                "ip_policy",
                "description",
                "created_at",
            ],
        ),
        ApiResource::IpRestrictions(_) => (
            "/ip_restrictions",
            "ip_restrictions",
            &[
                "id",
                "type",
                "enforced",
                "ip_policies",
                "description",
                "created_at",
            ],
        ),
        ApiResource::EventDestinations(_) => (
            "/event_destinations",
            "event_destinations",
            &["id", "target", "delivery", "description", "created_at"],
        ),
        ApiResource::EventSubscriptions(_) => (
            "/event_subscriptions",
            "event_subscriptions",
            &["id", "sources", "destinations", "description", "created_at"],
        ),
        ApiResource::EventSources(_) => ("/event_subscriptions", "sources", &["type", "uri"]),
        ApiResource::Events(_) => ("/event_stream", "", &[]),
        ApiResource::Usage(_) => (
            "/usage",
            "endpoints",
            &[
                "endpoint",
                "credential_id",
                "active_hours",
                "bytes_in",
                "bytes_out",
                "requests",
                "connections",
            ],
        ),
    };
    Resource {
        path,
        list_key,
        columns,
    }
}

/// One request to make.
enum Call {
    List(ListArgs),
    One(Method, String, Option<Value>),
    /// A list that is one document (a subscription's sources).
    Table(String),
    /// `/usage` with its query.
    Usage(String),
    /// `/event_stream` with its query.
    Tail(String),
}

fn call_of(resource: ApiResource, path: &str) -> anyhow::Result<Call> {
    let item = |id: &str| format!("{path}/{}", id.trim());
    Ok(match resource {
        ApiResource::ServiceUsers(v)
        | ApiResource::BotUsers(v)
        | ApiResource::Credentials(v)
        | ApiResource::ApiKeys(v)
        | ApiResource::ReservedDomains(v)
        | ApiResource::ReservedAddrs(v)
        | ApiResource::IpPolicies(v)
        | ApiResource::IpPolicyRules(v)
        | ApiResource::IpRestrictions(v) => match v {
            Verb::List(l) => Call::List(l),
            Verb::Get { id } => Call::One(Method::GET, item(&id), None),
            Verb::Create(f) => Call::One(Method::POST, path.to_owned(), Some(f.body(path))),
            Verb::Update { id, fields } => {
                Call::One(Method::PATCH, item(&id), Some(fields.body(path)))
            }
            Verb::Delete { id } => Call::One(Method::DELETE, item(&id), None),
        },
        ApiResource::Tunnels(v) | ApiResource::Endpoints(v) => match v {
            ReadVerb::List(l) => Call::List(l),
            ReadVerb::Get { id } => Call::One(Method::GET, item(&id), None),
        },
        ApiResource::TunnelSessions(v) => match v {
            SessionVerb::List(l) => Call::List(l),
            SessionVerb::Get { id } => Call::One(Method::GET, item(&id), None),
            SessionVerb::Stop { id } => {
                Call::One(Method::POST, format!("{}/stop", item(&id)), Some(json!({})))
            }
            SessionVerb::Restart { id } => Call::One(
                Method::POST,
                format!("{}/restart", item(&id)),
                Some(json!({})),
            ),
            SessionVerb::Update { id, version } => {
                let body = match version {
                    Some(v) => json!({ "version": v }),
                    None => json!({}),
                };
                Call::One(Method::POST, format!("{}/update", item(&id)), Some(body))
            }
        },
        ApiResource::EventDestinations(v) => match v {
            DestinationVerb::List(l) => Call::List(l),
            DestinationVerb::Get { id } => Call::One(Method::GET, item(&id), None),
            DestinationVerb::Create(f) => {
                Call::One(Method::POST, path.to_owned(), Some(f.body(true)?))
            }
            DestinationVerb::Update { id, fields } => {
                Call::One(Method::PATCH, item(&id), Some(fields.body(false)?))
            }
            DestinationVerb::Delete { id } => Call::One(Method::DELETE, item(&id), None),
            DestinationVerb::Requeue { id } => Call::One(
                Method::POST,
                format!("{}/requeue", item(&id)),
                Some(json!({})),
            ),
        },
        ApiResource::EventSubscriptions(v) => match v {
            SubscriptionVerb::List(l) => Call::List(l),
            SubscriptionVerb::Get { id } => Call::One(Method::GET, item(&id), None),
            SubscriptionVerb::Create(f) => Call::One(Method::POST, path.to_owned(), Some(f.body())),
            SubscriptionVerb::Update { id, fields } => {
                Call::One(Method::PATCH, item(&id), Some(fields.body()))
            }
            SubscriptionVerb::Delete { id } => Call::One(Method::DELETE, item(&id), None),
        },
        ApiResource::EventSources(v) => {
            let sources = |id: &str| format!("{}/sources", item(id));
            match v {
                SourceVerb::Add {
                    subscription_id,
                    kind,
                } => Call::One(
                    Method::POST,
                    sources(&subscription_id),
                    Some(json!({ "type": kind.trim() })),
                ),
                SourceVerb::List { subscription_id } => Call::Table(sources(&subscription_id)),
                SourceVerb::Get {
                    subscription_id,
                    kind,
                } => Call::One(
                    Method::GET,
                    format!(
                        "{}/{}",
                        sources(&subscription_id),
                        encode_query(kind.trim())
                    ),
                    None,
                ),
                SourceVerb::Delete {
                    subscription_id,
                    kind,
                } => Call::One(
                    Method::DELETE,
                    format!(
                        "{}/{}",
                        sources(&subscription_id),
                        encode_query(kind.trim())
                    ),
                    None,
                ),
            }
        }
        ApiResource::Events(EventsVerb::Tail { types }) => {
            let types: Vec<String> = types
                .iter()
                .flat_map(|t| t.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(encode_query)
                .collect();
            if types.is_empty() {
                Call::Tail(path.to_owned())
            } else {
                Call::Tail(format!("{path}?types={}", types.join(",")))
            }
        }
        ApiResource::Usage(u) => Call::Usage(u.path()),
    })
}

/// Where and as whom to call the API.
pub struct Target {
    /// Base URL without a trailing `/`.
    pub base: String,
    /// The API key.
    pub key: String,
}

/// Runs `warren api …`; prints to `out`.
pub async fn run(args: ApiArgs, target: Target, out: &mut impl Write) -> anyhow::Result<()> {
    let resource = resource_of(&args.resource);
    let client = Client::new(target)?;
    match call_of(args.resource, resource.path)? {
        Call::Table(path) => {
            let doc = client.send(Method::GET, &client.url(&path), None).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                let items = doc[resource.list_key]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                write!(out, "{}", table(resource.columns, &items))?;
            }
        }
        Call::Usage(path) => {
            let doc = client.send(Method::GET, &client.url(&path), None).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                write!(out, "{}", usage_report(&doc, resource.columns))?;
            }
        }
        Call::Tail(path) => tail(&client, &path, args.json, out).await?,
        Call::List(list) => {
            let mut query = Vec::new();
            if let Some(l) = list.limit {
                query.push(format!("limit={l}"));
            }
            if let Some(b) = &list.before_id {
                query.push(format!("before_id={b}"));
            }
            let mut url = client.url(resource.path);
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
            }
            let mut items = Vec::new();
            let mut pages = Vec::new();
            for _ in 0..MAX_PAGES {
                let page = client.send(Method::GET, &url, None).await?;
                let next = page["next_page_uri"].as_str().map(str::to_owned);
                if let Some(list) = page[resource.list_key].as_array() {
                    items.extend(list.iter().cloned());
                }
                pages.push(page);
                match next {
                    Some(n) if list.all => url = n,
                    _ => break,
                }
            }
            if args.json {
                let doc = if pages.len() == 1 {
                    pages.remove(0)
                } else {
                    json!({ resource.list_key: items })
                };
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                write!(out, "{}", table(resource.columns, &items))?;
                if !list.all && pages.last().is_some_and(|p| p["next_page_uri"].is_string()) {
                    writeln!(out, "(more: --all, or --before-id {})", last_id(&items))?;
                }
            }
        }
        Call::One(method, path, body) => {
            let url = client.url(&path);
            let value = client.send(method.clone(), &url, body).await?;
            if value.is_null() {
                if !args.json {
                    writeln!(out, "done")?;
                }
            } else if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                write!(out, "{}", object(&value))?;
                if method == Method::POST && value["token"].is_string() {
                    writeln!(out, "\nThe token is shown only now; store it safely.")?;
                }
            }
        }
    }
    Ok(())
}

/// The `/usage` document for people: the range, a table by endpoint, totals per credential
/// and overall.
fn usage_report(doc: &Value, columns: &[&str]) -> String {
    let mut out = format!(
        "usage from {} to {}\n\n",
        cell(&doc["start"]),
        cell(&doc["end"])
    );
    let endpoints = doc["endpoints"].as_array().cloned().unwrap_or_default();
    out.push_str(&table(columns, &endpoints));
    let credentials = doc["credentials"].as_array().cloned().unwrap_or_default();
    if !credentials.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &[
                "credential_id",
                "active_endpoint_hours",
                "bytes_in",
                "bytes_out",
                "requests",
                "connections",
            ],
            &credentials,
        ));
    }
    let t = &doc["totals"];
    out.push_str(&format!(
        "\ntotal: {} active endpoint hours, {} bytes in, {} bytes out, {} requests, {} connections\n",
        cell(&t["active_endpoint_hours"]),
        cell(&t["bytes_in"]),
        cell(&t["bytes_out"]),
        cell(&t["requests"]),
        cell(&t["connections"]),
    ));
    out
}

/// First delay before reconnecting a dropped event stream; doubles up to [`TAIL_BACKOFF_MAX`].
pub const TAIL_BACKOFF_BASE: Duration = Duration::from_secs(1);

/// Longest delay between reconnects of the event stream.
pub const TAIL_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Silence after which the event stream counts as dead (the server sends a keepalive every
/// 15 s).
pub const TAIL_IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Largest single event accepted from the stream.
pub const TAIL_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// How one connection of `events tail` ended.
enum TailEnd {
    /// The connection dropped or went silent: reconnect.
    Dropped(String),
}

/// `events tail`: prints each event of `/event_stream` until Ctrl-C, reconnecting with backoff.
/// A refusal (4xx other than 429) ends it with the API's error.
async fn tail(client: &Client, path: &str, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let url = client.url(path);
    let mut backoff = TAIL_BACKOFF_BASE;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let attempt = async {
            let (status, body) = client.open_stream(&url).await?;
            if !status.is_success() {
                let bytes = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let msg = format!(
                    "{} {}: {}",
                    status.as_u16(),
                    value["error_code"].as_str().unwrap_or(""),
                    value["msg"].as_str().unwrap_or("")
                );
                if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                    return Err(Refused(msg).into());
                }
                return Ok(TailEnd::Dropped(msg));
            }
            read_stream(body, json, out, &mut backoff).await
        };
        let ended = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            ended = attempt => ended,
        };
        let reason = match ended {
            Ok(TailEnd::Dropped(reason)) => reason,
            Err(e) if e.downcast_ref::<Refused>().is_some() => return Err(e),
            Err(e) => format!("{e:#}"),
        };
        eprintln!("event stream lost ({reason}); reconnecting in {backoff:?}");
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(TAIL_BACKOFF_MAX);
    }
}

/// An error that must not be retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Reads SSE messages from `body` and prints them until the stream ends or goes silent.
async fn read_stream(
    mut body: hyper::body::Incoming,
    json: bool,
    out: &mut impl Write,
    backoff: &mut Duration,
) -> anyhow::Result<TailEnd> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(TAIL_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Ok(TailEnd::Dropped(format!(
                    "nothing received for {TAIL_IDLE_TIMEOUT:?}"
                )));
            }
            Ok(None) => return Ok(TailEnd::Dropped("the server closed the stream".into())),
            Ok(Some(Err(e))) => return Ok(TailEnd::Dropped(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        // Connected and receiving: the next loss starts its backoff afresh.
        *backoff = TAIL_BACKOFF_BASE;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = find_blank_line(&buf) {
            let message: Vec<u8> = buf.drain(..end.1).collect();
            let text = String::from_utf8_lossy(&message[..end.0]);
            if let Some(line) = render_message(&text, json) {
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
        if buf.len() > TAIL_MAX_EVENT_BYTES {
            return Ok(TailEnd::Dropped(format!(
                "an event larger than {TAIL_MAX_EVENT_BYTES} bytes"
            )));
        }
    }
}

/// The end of the first SSE message in `buf`: (end of its text, end including the blank line).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// One SSE message as the line to print (`None` for comments and keepalives).
fn render_message(text: &str, json: bool) -> Option<String> {
    let mut event = String::new();
    let mut data = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.is_empty() {
        return None;
    }
    let value: Value = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
    if event == "lagged" {
        eprintln!(
            "warning: fell behind; {} events were skipped",
            cell(&value["missed"])
        );
        return None;
    }
    if json {
        return Some(value.to_string());
    }
    Some(human_event(&value))
}

/// `<timestamp> <type> <short summary>`.
fn human_event(env: &Value) -> String {
    let o = &env["object"];
    let s = |v: &Value| cell(v);
    let ty = s(&env["event_type"]);
    let summary = match ty.as_str() {
        "agent_session_start.v0" | "agent_session_stop.v0" => {
            let mut parts = vec![
                s(&o["session"]["id"]),
                format!("credential={}", s(&o["credential"]["id"])),
                format!("ip={}", s(&o["agent_ip"])),
            ];
            if !s(&o["error"]).is_empty() {
                parts.push(format!("error={:?}", s(&o["error"])));
            }
            parts.join(" ")
        }
        "http_request_complete.v0" => {
            let req = &o["http"]["request"];
            format!(
                "{} {}{} -> {} client={}",
                s(&req["method"]).to_uppercase(),
                s(&req["url"]["host"]),
                s(&req["url"]["path"]),
                s(&o["http"]["response"]["status_code"]),
                s(&o["conn"]["client_ip"]),
            )
        }
        "tcp_connection_closed.v0" => format!(
            "{}:{} client={} in={} out={}",
            s(&o["conn"]["server_name"]),
            s(&o["conn"]["server_port"]),
            s(&o["conn"]["client_ip"]),
            s(&o["conn"]["bytes_in"]),
            s(&o["conn"]["bytes_out"]),
        ),
        _ => {
            let by = s(&env["principal"]["credential"]["id"]);
            if by.is_empty() {
                s(&o["id"])
            } else {
                format!("{} by {by}", s(&o["id"]))
            }
        }
    };
    format!("{} {ty} {summary}", s(&env["event_timestamp"]))
        .trim_end()
        .to_owned()
}

fn last_id(items: &[Value]) -> &str {
    items.last().and_then(|i| i["id"].as_str()).unwrap_or("")
}

/// A value as a table cell: strings bare, arrays joined by `,`, refs by their id, null empty.
fn cell(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) => match o.get("id") {
            Some(id) => cell(id),
            None => v.to_string(),
        },
        other => other.to_string(),
    };
    // Text from the server never drives the terminal.
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Aligned columns with a header row.
fn table(columns: &[&str], items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| columns.iter().map(|c| cell(&i[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(n, c)| {
            rows.iter()
                .map(|r| r[n].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(columns.iter().map(|c| c.to_uppercase()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// `key  value` lines for one object, keys sorted as the API sent them.
fn object(v: &Value) -> String {
    let Some(map) = v.as_object() else {
        return format!("{}\n", cell(v));
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    map.iter()
        .map(|(k, v)| format!("{k:<width$}  {}\n", cell(v)))
        .collect()
}

/// A tiny HTTP/1.1 client for the API: one connection per request, TLS for `https://`.
struct Client {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Client {
    fn new(target: Target) -> anyhow::Result<Client> {
        let tls = if target.base.starts_with("https://") {
            let config =
                warren::tls::system_roots_config().context("loading the system trust store")?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else if target.base.starts_with("http://") {
            None
        } else {
            bail!(
                "the API URL must start with http:// or https://, got `{}`",
                target.base
            );
        };
        Ok(Client { target, tls })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.base)
    }

    async fn send(&self, method: Method, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
        tokio::time::timeout(API_REQUEST_TIMEOUT, self.send_inner(method, url, body))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the API at {} did not answer within {API_REQUEST_TIMEOUT:?}",
                    self.target.base
                )
            })?
    }

    /// Connects for `url`: the request to send over the returned connection.
    async fn connect(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(Box<dyn Io>, Request<Full<Bytes>>)> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("invalid URL `{url}`"))?;
        let host = uri.host().context("the API URL has no host")?.to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .with_context(|| format!("cannot reach the API at {}", self.target.base))?;
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or(host.clone());
        let path = uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into());
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.target.key),
            )
            .header("ngrok-version", "2")
            .header(
                http::header::USER_AGENT,
                concat!("warren/", env!("CARGO_PKG_VERSION")),
            );
        let bytes = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&b)?)
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes))?;
        let io: Box<dyn Io> = match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .with_context(|| format!("`{host}` is not a valid TLS name"))?;
                Box::new(
                    tls.connect(name, tcp)
                        .await
                        .context("TLS handshake with the API")?,
                )
            }
            None => Box::new(tcp),
        };
        Ok((io, req))
    }

    /// Opens a long-lived `GET url`: the status and the body as it arrives. Connecting is
    /// bounded by [`API_REQUEST_TIMEOUT`]; reading is not.
    async fn open_stream(&self, url: &str) -> anyhow::Result<(StatusCode, hyper::body::Incoming)> {
        let open = async {
            let (io, mut req) = self.connect(Method::GET, url, None).await?;
            req.headers_mut().insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("text/event-stream"),
            );
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            Ok::<_, anyhow::Error>((status, resp.into_body()))
        };
        tokio::time::timeout(API_REQUEST_TIMEOUT, open)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the API at {} did not answer within {API_REQUEST_TIMEOUT:?}",
                    self.target.base
                )
            })?
    }

    async fn send_inner(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (io, req) = self.connect(method, url, body).await?;
        let (status, body) = exchange(io, req).await?;
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error_code"].as_str().unwrap_or("");
        let msg = value["msg"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        bail!("{} {code}: {msg}", status.as_u16())
    }
}

/// A connection to the API, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn exchange<IO>(io: IO, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the API's response: {e}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_flatten_values() {
        let items = vec![
            json!({"id": "cr_1", "acl": ["bind:a", "bind:b"], "owner_id": null, "description": "x\u{1b}[2J"}),
            json!({"id": "cr_22", "acl": [], "owner_id": {"id": "service_1", "uri": "u"}, "description": "cam"}),
        ];
        let t = table(&["id", "acl", "owner_id", "description"], &items);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID     ACL            OWNER_ID   DESCRIPTION");
        assert_eq!(lines[1], "cr_1   bind:a,bind:b             x [2J");
        assert_eq!(lines[2], "cr_22                 service_1  cam");
    }

    #[test]
    fn bodies_carry_only_the_flags_given() {
        let f = Fields {
            description: Some("d".into()),
            acl: vec!["bind:*.a.example.com".into()],
            ..Fields::default()
        };
        assert_eq!(
            f.body("/credentials"),
            json!({"description": "d", "acl": ["bind:*.a.example.com"]})
        );
        let rule = Fields {
            cidr: Some("10.0.0.0/8".into()),
            action: Some("deny".into()),
            ip_policy_ids: vec!["ipp_1".into()],
            ..Fields::default()
        };
        assert_eq!(
            rule.body("/ip_policy_rules"),
            json!({"cidr": "10.0.0.0/8", "action": "deny", "ip_policy_id": "ipp_1"})
        );
        let restriction = Fields {
            restriction_type: Some("agent".into()),
            enforced: Some(true),
            ip_policy_ids: vec!["ipp_1".into(), "ipp_2".into()],
            ..Fields::default()
        };
        assert_eq!(
            restriction.body("/ip_restrictions"),
            json!({"type": "agent", "enforced": true, "ip_policy_ids": ["ipp_1", "ipp_2"]})
        );
        let clear = Fields {
            acl: vec![String::new()],
            ..Fields::default()
        };
        assert_eq!(clear.body("/credentials"), json!({"acl": []}));
    }

    #[test]
    fn destination_bodies_from_flags() {
        let file = DestinationFields {
            file_path: Some("/var/log/warren/events.jsonl".into()),
            ..Default::default()
        };
        assert_eq!(
            file.body(true).unwrap(),
            json!({"format": "json", "target": {"file": {"path": "/var/log/warren/events.jsonl"}}})
        );
        let http = DestinationFields {
            http_url: Some("https://hooks.example.com/w".into()),
            http_secret: Some("s3".into()),
            description: Some("hook".into()),
            ..Default::default()
        };
        assert_eq!(
            http.body(true).unwrap(),
            json!({"description": "hook", "format": "json", "target": {"http": {"url": "https://hooks.example.com/w", "secret": "s3"}}})
        );
        let nats = DestinationFields {
            nats_url: Some("nats://127.0.0.1:4222".into()),
            nats_subject: Some("warren".into()),
            ..Default::default()
        };
        assert_eq!(
            nats.body(false).unwrap(),
            json!({"target": {"nats": {"url": "nats://127.0.0.1:4222", "subject": "warren"}}})
        );
        let raw = DestinationFields {
            target_json: Some(r#"{"datadog":{"api_key":"k"}}"#.into()),
            format: Some("JSON".into()),
            ..Default::default()
        };
        assert_eq!(
            raw.body(false).unwrap(),
            json!({"format": "JSON", "target": {"datadog": {"api_key": "k"}}})
        );
        assert!(DestinationFields::default().body(true).is_err());
        let bad = DestinationFields {
            target_json: Some("[1]".into()),
            ..Default::default()
        };
        assert!(bad.body(false).is_err());
        assert_eq!(DestinationFields::default().body(false).unwrap(), json!({}));
    }

    #[test]
    fn subscription_bodies_and_usage_queries() {
        let f = SubscriptionFields {
            sources: vec!["agent_session_start.v0".into()],
            destination_ids: vec!["ed_1".into(), "ed_2".into()],
            ..Default::default()
        };
        assert_eq!(
            f.body(),
            json!({"sources": [{"type": "agent_session_start.v0"}], "destination_ids": ["ed_1", "ed_2"]})
        );
        let clear = SubscriptionFields {
            sources: vec![String::new()],
            ..Default::default()
        };
        assert_eq!(clear.body(), json!({"sources": []}));
        assert_eq!(UsageArgs::default().path(), "/usage");
        let u = UsageArgs {
            start: Some("2026-01-01T00:00:00+02:00".into()),
            endpoint: Some("https://a.example.com".into()),
            ..Default::default()
        };
        assert_eq!(
            u.path(),
            "/usage?start=2026-01-01T00%3A00%3A00%2B02%3A00&endpoint=https%3A%2F%2Fa.example.com"
        );
    }

    #[test]
    fn sse_messages_become_lines() {
        let mut buf = b": keepalive\n\nevent: x\r\nid: 1\r\ndata: {}\r\n\r\npartial".to_vec();
        let first = find_blank_line(&buf).unwrap();
        assert_eq!(first, (11, 13));
        buf.drain(..first.1);
        let second = find_blank_line(&buf).unwrap();
        assert_eq!(&buf[second.1..], b"partial");
        assert_eq!(render_message(": keepalive", false), None);
        let env = json!({
            "event_id": "ev_1",
            "event_type": "tunnel_credential_created.v0",
            "event_timestamp": "2026-01-01T00:00:00Z",
            "principal": {"credential": {"id": "ak_1"}},
            "object": {"id": "cr_1", "token": null},
        });
        let msg = format!("event: tunnel_credential_created.v0\nid: ev_1\ndata: {env}");
        assert_eq!(
            render_message(&msg, false).unwrap(),
            "2026-01-01T00:00:00Z tunnel_credential_created.v0 cr_1 by ak_1"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&render_message(&msg, true).unwrap()).unwrap(),
            env
        );
        assert_eq!(
            render_message("event: lagged\ndata: {\"missed\":3}", false),
            None
        );
        let stop = json!({
            "event_type": "agent_session_stop.v0",
            "event_timestamp": "t",
            "object": {"session": {"id": "ts_1"}, "credential": {"id": "cr_1"}, "agent_ip": "10.0.0.1", "error": "gone"},
        });
        assert_eq!(
            human_event(&stop),
            "t agent_session_stop.v0 ts_1 credential=cr_1 ip=10.0.0.1 error=\"gone\""
        );
    }
}
