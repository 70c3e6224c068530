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
}

fn call_of(resource: ApiResource, path: &str) -> Call {
    let item = |id: &str| format!("{path}/{}", id.trim());
    match resource {
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
    }
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
    match call_of(args.resource, resource.path) {
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

    async fn send_inner(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
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
        let resp = match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .with_context(|| format!("`{host}` is not a valid TLS name"))?;
                let io = tls
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake with the API")?;
                exchange(io, req).await?
            }
            None => exchange(tcp, req).await?,
        };
        let (status, body) = resp;
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
}
