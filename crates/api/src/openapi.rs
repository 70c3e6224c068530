//! The OpenAPI 3.1 document of the REST API, generated from one table of routes and schemas
//! ([`ROUTES`], [`SCHEMAS`]) and served at `GET /openapi.json`.
//!
//! The committed copy (`crates/api/openapi.json`) is checked by a test that regenerates it, and
//! another test calls every route of the table against a live server, so neither the file nor
//! the table can drift from the code unnoticed. Nothing here serves or validates requests.

use serde_json::{Map, Value, json};

/// One operation.
pub struct Route {
    /// `get`, `post`, `patch`, `delete`.
    pub method: &'static str,
    /// Path with `{id}` placeholders.
    pub path: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Request body schema, if any.
    pub request: Option<&'static str>,
    /// Success status and its schema (`None` = empty body).
    pub response: (u16, Option<&'static str>),
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    response: (u16, Option<&'static str>),
) -> Route {
    Route {
        method,
        path,
        summary,
        request,
        response,
    }
}

/// The CRUD routes of a collection, in the table's order.
macro_rules! crud {
    ($path:literal, $item:literal, $name:literal, $create:literal, $update:literal, $list:literal) => {
        [
            route(
                "post",
                $path,
                concat!("Create a ", $name),
                Some($create),
                (201, Some($name)),
            ),
            route(
                "get",
                $path,
                concat!("List ", $name, "s, newest first"),
                None,
                (200, Some($list)),
            ),
            route(
                "get",
                $item,
                concat!("Get a ", $name),
                None,
                (200, Some($name)),
            ),
            route(
                "patch",
                $item,
                concat!("Update a ", $name),
                Some($update),
                (200, Some($name)),
            ),
            route(
                "delete",
                $item,
                concat!("Delete a ", $name),
                None,
                (204, None),
            ),
        ]
    };
}

const SERVICE_USERS: [Route; 5] = crud!(
    "/service_users",
    "/service_users/{id}",
    "ServiceUser",
    "ServiceUserCreate",
    "ServiceUserUpdate",
    "ServiceUserList"
);
const BOT_USERS: [Route; 5] = crud!(
    "/bot_users",
    "/bot_users/{id}",
    "BotUser",
    "ServiceUserCreate",
    "ServiceUserUpdate",
    "BotUserList"
);
const CREDENTIALS: [Route; 5] = crud!(
    "/credentials",
    "/credentials/{id}",
    "Credential",
    "CredentialCreate",
    "CredentialUpdate",
    "CredentialList"
);
const API_KEYS: [Route; 5] = crud!(
    "/api_keys",
    "/api_keys/{id}",
    "APIKey",
    "APIKeyCreate",
    "APIKeyUpdate",
    "APIKeyList"
);
const RESERVED_DOMAINS: [Route; 5] = crud!(
    "/reserved_domains",
    "/reserved_domains/{id}",
    "ReservedDomain",
    "ReservedDomainCreate",
    "ReservedDomainUpdate",
    "ReservedDomainList"
);
const RESERVED_ADDRS: [Route; 5] = crud!(
    "/reserved_addrs",
    "/reserved_addrs/{id}",
    "ReservedAddr",
    "ReservedAddrCreate",
    "ReservedAddrUpdate",
    "ReservedAddrList"
);
const IP_POLICIES: [Route; 5] = crud!(
    "/ip_policies",
    "/ip_policies/{id}",
    "IPPolicy",
    "IPPolicyCreate",
    "IPPolicyUpdate",
    "IPPolicyList"
);
const IP_POLICY_RULES: [Route; 5] = crud!(
    "/ip_policy_rules",
    "/ip_policy_rules/{id}",
    "IPPolicyRule",
    "IPPolicyRuleCreate",
    "IPPolicyRuleUpdate",
    "IPPolicyRuleList"
);
const IP_RESTRICTIONS: [Route; 5] = crud!(
    "/ip_restrictions",
    "/ip_restrictions/{id}",
    "IPRestriction",
    "IPRestrictionCreate",
    "IPRestrictionUpdate",
    "IPRestrictionList"
);
const EVENT_DESTINATIONS: [Route; 5] = crud!(
    "/event_destinations",
    "/event_destinations/{id}",
    "EventDestination",
    "EventDestinationCreate",
    "EventDestinationUpdate",
    "EventDestinationList"
);
const EVENT_SUBSCRIPTIONS: [Route; 5] = crud!(
    "/event_subscriptions",
    "/event_subscriptions/{id}",
    "EventSubscription",
    "EventSubscriptionCreate",
    "EventSubscriptionUpdate",
    "EventSubscriptionList"
);
const EVENTS: [Route; 9] = [
    route(
        "post",
        "/event_destinations/{id}/requeue",
        "Put a destination's parked events back in line (Warren extension)",
        Some("Empty"),
        (200, Some("EventDestinationRequeued")),
    ),
    route(
        "post",
        "/event_subscriptions/{id}/sources",
        "Add an event type to a subscription",
        Some("EventSourceCreate"),
        (201, Some("EventSource")),
    ),
    route(
        "get",
        "/event_subscriptions/{id}/sources",
        "List a subscription's event types",
        None,
        (200, Some("EventSourceList")),
    ),
    route(
        "get",
        "/event_subscriptions/{id}/sources/{type}",
        "Get an event type of a subscription",
        None,
        (200, Some("EventSource")),
    ),
    route(
        "patch",
        "/event_subscriptions/{id}/sources/{type}",
        "Update an event type of a subscription (nothing to change; returns it)",
        Some("EventSourceUpdate"),
        (200, Some("EventSource")),
    ),
    route(
        "delete",
        "/event_subscriptions/{id}/sources/{type}",
        "Remove an event type from a subscription",
        None,
        (204, None),
    ),
    route(
        "get",
        "/event_stream",
        "Live events as Server-Sent Events (Warren extension; query `types=a.v0,b.v0`)",
        None,
        (200, None),
    ),
    route(
        "get",
        "/usage",
        "Traffic and active endpoint hours over a time range (Warren extension)",
        None,
        (200, Some("Usage")),
    ),
    route(
        "get",
        "/metrics",
        "Metrics in the OpenMetrics text format (no authentication)",
        None,
        (200, None),
    ),
];
const LIVE: [Route; 13] = [
    route(
        "get",
        "/",
        "List the API's collections",
        None,
        (200, Some("Root")),
    ),
    route(
        "delete",
        "/reserved_domains/{id}/certificate",
        "Detach a reserved domain's certificate",
        None,
        (204, None),
    ),
    route(
        "delete",
        "/reserved_domains/{id}/certificate_management_policy",
        "Turn off managed certificates of a reserved domain",
        None,
        (204, None),
    ),
    route(
        "get",
        "/tunnel_sessions",
        "List online agents",
        None,
        (200, Some("TunnelSessionList")),
    ),
    route(
        "get",
        "/tunnel_sessions/{id}",
        "Get an online agent",
        None,
        (200, Some("TunnelSession")),
    ),
    route(
        "post",
        "/tunnel_sessions/{id}/stop",
        "Make the agent exit",
        Some("Empty"),
        (204, None),
    ),
    route(
        "post",
        "/tunnel_sessions/{id}/restart",
        "Make the agent re-execute itself",
        Some("Empty"),
        (204, None),
    ),
    route(
        "post",
        "/tunnel_sessions/{id}/update",
        "Make the agent update itself",
        Some("TunnelSessionsUpdate"),
        (204, None),
    ),
    route(
        "get",
        "/tunnels",
        "List live tunnels",
        None,
        (200, Some("TunnelList")),
    ),
    route(
        "get",
        "/tunnels/{id}",
        "Get a live tunnel",
        None,
        (200, Some("Tunnel")),
    ),
    route(
        "get",
        "/endpoints",
        "List live endpoints",
        None,
        (200, Some("EndpointList")),
    ),
    route(
        "get",
        "/endpoints/{id}",
        "Get a live endpoint",
        None,
        (200, Some("Endpoint")),
    ),
    route("get", "/openapi.json", "This document", None, (200, None)),
];

/// Every route the API serves.
pub fn routes() -> impl Iterator<Item = &'static Route> {
    SERVICE_USERS
        .iter()
        .chain(BOT_USERS.iter())
        .chain(CREDENTIALS.iter())
        .chain(API_KEYS.iter())
        .chain(RESERVED_DOMAINS.iter())
        .chain(RESERVED_ADDRS.iter())
        .chain(IP_POLICIES.iter())
        .chain(IP_POLICY_RULES.iter())
        .chain(IP_RESTRICTIONS.iter())
        .chain(EVENT_DESTINATIONS.iter())
        .chain(EVENT_SUBSCRIPTIONS.iter())
        .chain(EVENTS.iter())
        .chain(LIVE.iter())
}

/// A schema: name and `(field, type)` pairs. Types: `string`, `string?` (nullable), `boolean`,
/// `integer`, `[string]`, `Ref`, `Ref?`, `object`, `[Name]` (array of a schema).
pub struct Schema {
    /// Component name.
    pub name: &'static str,
    /// Fields.
    pub fields: &'static [(&'static str, &'static str)],
}

const fn schema(name: &'static str, fields: &'static [(&'static str, &'static str)]) -> Schema {
    Schema { name, fields }
}

/// The component schemas.
pub const SCHEMAS: &[Schema] = &[
    schema("Empty", &[]),
    schema("Ref", &[("id", "string"), ("uri", "string")]),
    schema("Root", &[("uri", "string"), ("subresource_uris", "object")]),
    schema(
        "ServiceUser",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("name", "string"),
            ("active", "boolean"),
        ],
    ),
    schema(
        "BotUser",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("name", "string"),
            ("active", "boolean"),
        ],
    ),
    schema(
        "ServiceUserCreate",
        &[("name", "string"), ("active", "boolean")],
    ),
    schema(
        "ServiceUserUpdate",
        &[("name", "string"), ("active", "boolean")],
    ),
    schema(
        "Credential",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("token", "string?"),
            ("acl", "[string]"),
            ("owner_id", "string?"),
        ],
    ),
    schema(
        "CredentialCreate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("acl", "[string]"),
            ("owner_id", "string"),
        ],
    ),
    schema(
        "CredentialUpdate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("acl", "[string]"),
        ],
    ),
    schema(
        "APIKey",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("token", "string?"),
            ("owner_id", "string?"),
        ],
    ),
    schema(
        "APIKeyCreate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("owner_id", "string"),
        ],
    ),
    schema(
        "APIKeyUpdate",
        &[("description", "string"), ("metadata", "string")],
    ),
    schema(
        "ReservedDomain",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("domain", "string"),
            ("region", "string"),
            ("cname_target", "string?"),
            ("certificate", "Ref?"),
            ("certificate_management_policy", "object"),
            ("certificate_management_status", "object"),
            ("acme_challenge_cname_target", "string?"),
        ],
    ),
    schema(
        "ReservedDomainCreate",
        &[
            ("domain", "string"),
            ("region", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("certificate_id", "string"),
            ("certificate_management_policy", "object"),
        ],
    ),
    schema(
        "ReservedDomainUpdate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("certificate_id", "string"),
            ("certificate_management_policy", "object"),
        ],
    ),
    schema(
        "ReservedAddr",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("addr", "string"),
            ("region", "string"),
        ],
    ),
    schema(
        "ReservedAddrCreate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("region", "string"),
        ],
    ),
    schema(
        "ReservedAddrUpdate",
        &[("description", "string"), ("metadata", "string")],
    ),
    schema(
        "TunnelSession",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("agent_version", "string"),
            ("credential", "Ref"),
            ("ip", "string"),
            ("metadata", "string"),
            ("os", "string"),
            ("region", "string"),
            ("started_at", "string"),
            ("transport", "string"),
            ("last_heartbeat_at", "string?"),
            ("latency_ms", "number?"),
        ],
    ),
    schema("TunnelSessionsUpdate", &[("version", "string")]),
    schema(
        "Tunnel",
        &[
            ("id", "string"),
            ("public_url", "string"),
            ("started_at", "string"),
            ("metadata", "string"),
            ("proto", "string"),
            ("region", "string"),
            ("tunnel_session", "Ref"),
            ("endpoint", "Ref?"),
            ("forwards_to", "string"),
        ],
    ),
    schema(
        "Endpoint",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("updated_at", "string"),
            ("url", "string"),
            ("public_url", "string"),
            ("proto", "string"),
            ("type", "string"),
            ("name", "string"),
            ("metadata", "string"),
            ("upstream_url", "string"),
            ("tunnel", "Ref?"),
            ("tunnel_session", "Ref?"),
            ("pooling_enabled", "boolean"),
            ("bindings", "[string]"),
        ],
    ),
    schema(
        "ServiceUserList",
        &[
            ("service_users", "[ServiceUser]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "BotUserList",
        &[
            ("bot_users", "[BotUser]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "CredentialList",
        &[
            ("credentials", "[Credential]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "APIKeyList",
        &[
            ("keys", "[APIKey]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "ReservedDomainList",
        &[
            ("reserved_domains", "[ReservedDomain]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "ReservedAddrList",
        &[
            ("reserved_addrs", "[ReservedAddr]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "TunnelSessionList",
        &[
            ("tunnel_sessions", "[TunnelSession]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "TunnelList",
        &[
            ("tunnels", "[Tunnel]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "EndpointList",
        &[
            ("endpoints", "[Endpoint]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "IPPolicy",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
        ],
    ),
    schema(
        "IPPolicyCreate",
        &[("description", "string"), ("metadata", "string")],
    ),
    schema(
        "IPPolicyUpdate",
        &[("description", "string"), ("metadata", "string")],
    ),
    schema(
        "IPPolicyList",
        &[
            ("ip_policies", "[IPPolicy]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "IPPolicyRule",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("cidr", "string"),
            ("ip_policy", "Ref"),
            ("action", "string"),
        ],
    ),
    schema(
        "IPPolicyRuleCreate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("cidr", "string"),
            ("ip_policy_id", "string"),
            ("action", "string"),
        ],
    ),
    schema(
        "IPPolicyRuleUpdate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("cidr", "string"),
        ],
    ),
    schema(
        "IPPolicyRuleList",
        &[
            ("ip_policy_rules", "[IPPolicyRule]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "IPRestriction",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("enforced", "boolean"),
            ("type", "string"),
            ("ip_policies", "[Ref]"),
        ],
    ),
    schema(
        "IPRestrictionCreate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("enforced", "boolean"),
            ("type", "string"),
            ("ip_policy_ids", "[string]"),
        ],
    ),
    schema(
        "IPRestrictionUpdate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("enforced", "boolean"),
            ("ip_policy_ids", "[string]"),
        ],
    ),
    schema(
        "IPRestrictionList",
        &[
            ("ip_restrictions", "[IPRestriction]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "EventDestination",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("format", "string"),
            ("target", "object"),
            ("delivery", "EventDelivery"),
        ],
    ),
    schema(
        "EventDelivery",
        &[
            ("delivered", "boolean"),
            ("pending", "integer"),
            ("parked", "integer"),
            ("oldest_pending_at", "string?"),
            ("last_error", "string"),
        ],
    ),
    schema(
        "EventDestinationCreate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("format", "string"),
            ("target", "object"),
        ],
    ),
    schema(
        "EventDestinationUpdate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("format", "string"),
            ("target", "object"),
        ],
    ),
    schema(
        "EventDestinationList",
        &[
            ("event_destinations", "[EventDestination]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema("EventDestinationRequeued", &[("requeued", "integer")]),
    schema("EventSource", &[("type", "string"), ("uri", "string")]),
    schema("EventSourceReplace", &[("type", "string")]),
    schema("EventSourceCreate", &[("type", "string")]),
    schema("EventSourceUpdate", &[("type", "string")]),
    schema(
        "EventSourceList",
        &[("sources", "[EventSource]"), ("uri", "string")],
    ),
    schema(
        "EventSubscription",
        &[
            ("id", "string"),
            ("uri", "string"),
            ("created_at", "string"),
            ("description", "string"),
            ("metadata", "string"),
            ("sources", "[EventSource]"),
            ("destinations", "[Ref]"),
        ],
    ),
    schema(
        "EventSubscriptionCreate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("sources", "[EventSourceReplace]"),
            ("destination_ids", "[string]"),
        ],
    ),
    schema(
        "EventSubscriptionUpdate",
        &[
            ("description", "string"),
            ("metadata", "string"),
            ("sources", "[EventSourceReplace]"),
            ("destination_ids", "[string]"),
        ],
    ),
    schema(
        "EventSubscriptionList",
        &[
            ("event_subscriptions", "[EventSubscription]"),
            ("uri", "string"),
            ("next_page_uri", "string?"),
        ],
    ),
    schema(
        "Usage",
        &[
            ("uri", "string"),
            ("start", "string"),
            ("end", "string"),
            ("endpoints", "[UsageEndpoint]"),
            ("credentials", "[UsageCredential]"),
            ("totals", "UsageTotals"),
        ],
    ),
    schema(
        "UsageEndpoint",
        &[
            ("endpoint", "string"),
            ("credential_id", "string"),
            ("active_hours", "integer"),
            ("bytes_in", "integer"),
            ("bytes_out", "integer"),
            ("requests", "integer"),
            ("connections", "integer"),
        ],
    ),
    schema(
        "UsageCredential",
        &[
            ("credential_id", "string"),
            ("active_endpoint_hours", "integer"),
            ("bytes_in", "integer"),
            ("bytes_out", "integer"),
            ("requests", "integer"),
            ("connections", "integer"),
        ],
    ),
    schema(
        "UsageTotals",
        &[
            ("active_endpoint_hours", "integer"),
            ("bytes_in", "integer"),
            ("bytes_out", "integer"),
            ("requests", "integer"),
            ("connections", "integer"),
        ],
    ),
    schema(
        "Error",
        &[
            ("error_code", "string"),
            ("status_code", "integer"),
            ("msg", "string"),
            ("details", "object"),
        ],
    ),
];

fn type_of(t: &str) -> Value {
    match t {
        "string" => json!({"type": "string"}),
        "string?" => json!({"type": ["string", "null"]}),
        "boolean" => json!({"type": "boolean"}),
        "integer" => json!({"type": "integer"}),
        "number?" => json!({"type": ["number", "null"]}),
        "object" => json!({"type": ["object", "null"]}),
        "[string]" => json!({"type": "array", "items": {"type": "string"}}),
        "Ref" => json!({"$ref": "#/components/schemas/Ref"}),
        "Ref?" => json!({"oneOf": [{"$ref": "#/components/schemas/Ref"}, {"type": "null"}]}),
        array if array.starts_with('[') => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{}", &array[1..array.len() - 1])}})
        }
        other => json!({"$ref": format!("#/components/schemas/{other}")}),
    }
}

/// Paths served without authentication or `Ngrok-Version`.
pub const UNAUTHENTICATED: &[&str] = &["/openapi.json", "/metrics"];

/// The `{name}` placeholders of `path`, in order.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// The query parameters of the extension routes that take some.
fn query_params(path: &str) -> &'static [(&'static str, &'static str)] {
    match path {
        "/usage" => &[
            (
                "start",
                "RFC 3339; default: the first day of this month, 00:00 UTC",
            ),
            ("end", "RFC 3339; default: now"),
            ("credential_id", "only this credential's traffic"),
            ("endpoint", "only this endpoint URL's traffic"),
        ],
        "/event_stream" => &[("types", "comma-separated event types to keep")],
        _ => &[],
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        let mut params = Vec::new();
        for name in path_params(r.path) {
            params.push(
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
        for (name, description) in query_params(r.path) {
            params.push(json!({"name": name, "in": "query", "description": description, "schema": {"type": "string"}}));
        }
        if r.method == "get"
            && !r.path.contains("{id}")
            && r.response.1.is_some_and(|s| s.ends_with("List"))
        {
            params.push(json!({"name": "before_id", "in": "query", "schema": {"type": "string"}}));
            params.push(json!({"name": "limit", "in": "query", "schema": {"type": "string"}}));
        }
        if !UNAUTHENTICATED.contains(&r.path) {
            params.push(json!({"name": "Ngrok-Version", "in": "header", "required": true, "schema": {"type": "integer", "default": 2}}));
        }
        op.insert("parameters".into(), Value::Array(params));
        if let Some(req) = r.request {
            op.insert(
                "requestBody".into(),
                json!({"required": false, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{req}")}}}}),
            );
        }
        let mut responses = Map::new();
        let ok = match r.response.1 {
            Some(s) if r.path != "/openapi.json" => {
                json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}})
            }
            _ => json!({"description": "Success"}),
        };
        responses.insert(r.response.0.to_string(), ok);
        responses.insert(
            "default".into(),
            json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
        op.insert("responses".into(), Value::Object(responses));
        if !UNAUTHENTICATED.contains(&r.path) {
            op.insert("security".into(), json!([{"bearer": []}]));
        }
        paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("path item is an object")
            .insert(r.method.to_owned(), Value::Object(op));
    }
    let mut schemas = Map::new();
    for s in SCHEMAS {
        let props: Map<String, Value> = s
            .fields
            .iter()
            .map(|(f, t)| ((*f).to_owned(), type_of(t)))
            .collect();
        schemas.insert(
            s.name.to_owned(),
            json!({"type": "object", "properties": props}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Warren API",
            "version": "2",
            "description": "Warren's control plane, compatible with the ngrok API v2: send `Authorization: Bearer <API key>` and `Ngrok-Version: 2`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}
