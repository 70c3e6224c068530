//! Destination targets: exactly one kind per destination.
//!
//! ngrok's five kinds (`firehose`, `kinesis`, `cloudwatch_logs`, `datadog`,
//! `azure_logs_ingestion`) are validated and stored so ngrok configurations carry over, but
//! Warren does not deliver to them. Warren's own kinds are delivered: `http` (a webhook, JSON
//! batches signed with HMAC-SHA256), `file` (JSON lines with size-based rotation) and `nats`
//! (one subject per event type; JetStream when a stream captures the subject).
//!
//! Parsing is pure: no IO, no lookups. Secrets (the webhook secret, AWS secret keys, the
//! Datadog API key, the Azure client secret) are kept for the store ([`Target::to_stored_json`])
//! and never shown back ([`Target::to_json`]).

use serde_json::{Map, Value};

/// ngrok's code for an invalid target.
pub const ERR_INVALID_TARGET: &str = "ERR_NGROK_236";
/// ngrok's code for an invalid AWS `auth` object.
pub const ERR_INVALID_AUTH: &str = "ERR_NGROK_240";
/// ngrok's code for an AWS `auth` with neither (or both) of `role` and `creds`.
pub const ERR_AUTH_ROLE_OR_CREDS: &str = "ERR_NGROK_5107";

/// ngrok's target kinds, which Warren stores but does not deliver to.
pub const CLOUD_KINDS: [&str; 5] = [
    "firehose",
    "kinesis",
    "cloudwatch_logs",
    "datadog",
    "azure_logs_ingestion",
];
/// Warren's own target kinds, delivered.
pub const WARREN_KINDS: [&str; 3] = ["http", "file", "nats"];

/// Default `file.max_bytes`: 100 MiB.
pub const FILE_MAX_BYTES_DEFAULT: u64 = 100 * 1024 * 1024;
/// Smallest accepted `file.max_bytes`: 4 KiB.
pub const FILE_MAX_BYTES_MIN: u64 = 4 * 1024;
/// Default `file.max_files` (rotated files kept beside the live one).
pub const FILE_MAX_FILES_DEFAULT: u32 = 5;
/// Largest accepted `file.max_files`.
pub const FILE_MAX_FILES_MAX: u32 = 100;
/// Longest accepted URL, path, subject or secret (bytes).
pub const FIELD_MAX_LEN: usize = 4096;

/// A parsed, validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One of ngrok's cloud kinds, kept as given: stored, listed, not delivered.
    Cloud {
        /// The kind's key (`firehose`, `kinesis`, …).
        kind: &'static str,
        /// The kind's object, validated and normalised (secrets included).
        config: Value,
    },
    /// `{"http": {"url", "secret"}}`.
    Http {
        /// `http://` or `https://` absolute URL the batches are posted to.
        url: String,
        /// HMAC-SHA256 key for `Warren-Signature`; empty: unsigned.
        secret: String,
    },
    /// `{"file": {"path", "max_bytes"?, "max_files"?}}`.
    File {
        /// Absolute path of the live file.
        path: String,
        /// Size at which the file is rotated.
        max_bytes: u64,
        /// Rotated files kept (`path.1` … `path.<max_files>`).
        max_files: u32,
    },
    /// `{"nats": {"url", "subject"}}`.
    Nats {
        /// `nats://host:port` or `tls://host:port`.
        url: String,
        /// Subject prefix; each event goes to `<subject>.<event_type>`.
        subject: String,
    },
}

/// Why a target is refused; `code` is the ngrok error code the API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct TargetError {
    /// `ERR_NGROK_236` (invalid target), `ERR_NGROK_240` (invalid auth) or `ERR_NGROK_5107`
    /// (neither role nor creds).
    pub code: &'static str,
    pub msg: String,
}

fn invalid(msg: impl Into<String>) -> TargetError {
    TargetError {
        code: ERR_INVALID_TARGET,
        msg: msg.into(),
    }
}

fn invalid_auth(msg: impl Into<String>) -> TargetError {
    TargetError {
        code: ERR_INVALID_AUTH,
        msg: msg.into(),
    }
}

/// The fields of one kind's object, checked against the allowed names.
struct Fields<'a> {
    kind: &'a str,
    map: &'a Map<String, Value>,
    /// Builds the error for this object (236 for targets, 240 inside `auth`).
    err: fn(String) -> TargetError,
}

impl<'a> Fields<'a> {
    fn new(
        kind: &'a str,
        value: &'a Value,
        allowed: &[&str],
        err: fn(String) -> TargetError,
    ) -> Result<Fields<'a>, TargetError> {
        let Some(map) = value.as_object() else {
            return Err(err(format!("target.{kind} must be an object")));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(err(format!(
                "target.{kind} has an unknown field \"{unknown}\""
            )));
        }
        Ok(Fields { kind, map, err })
    }

    /// An optional string (absent or null → `None`).
    fn opt_str(&self, name: &str) -> Result<Option<String>, TargetError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= FIELD_MAX_LEN => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err((self.err)(format!(
                "target.{}.{name} is longer than {FIELD_MAX_LEN} bytes",
                self.kind
            ))),
            Some(_) => Err((self.err)(format!(
                "target.{}.{name} must be a string",
                self.kind
            ))),
        }
    }

    /// A required, non-empty string.
    fn req_str(&self, name: &str) -> Result<String, TargetError> {
        match self.opt_str(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err((self.err)(format!(
                "target.{}.{name} is required",
                self.kind
            ))),
        }
    }

    /// An optional non-negative integer.
    fn opt_u64(&self, name: &str) -> Result<Option<u64>, TargetError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                (self.err)(format!(
                    "target.{}.{name} must be a non-negative integer",
                    self.kind
                ))
            }),
        }
    }
}

impl Target {
    /// Parses and validates the API's `target` object (or the stored form, which is the same
    /// shape with secrets kept).
    pub fn parse(value: &Value) -> Result<Target, TargetError> {
        let Some(map) = value.as_object() else {
            return Err(invalid("target must be an object"));
        };
        let mut chosen: Option<(&str, &Value)> = None;
        for (key, v) in map {
            if v.is_null() {
                continue;
            }
            if !CLOUD_KINDS.contains(&key.as_str()) && !WARREN_KINDS.contains(&key.as_str()) {
                return Err(invalid(format!("target has an unknown kind \"{key}\"")));
            }
            if let Some((first, _)) = chosen {
                return Err(invalid(format!(
                    "target must have exactly one kind, got \"{first}\" and \"{key}\""
                )));
            }
            chosen = Some((key.as_str(), v));
        }
        let Some((kind, body)) = chosen else {
            return Err(invalid(format!(
                "target must have exactly one of {}",
                CLOUD_KINDS
                    .iter()
                    .chain(WARREN_KINDS.iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        match kind {
            "firehose" => parse_aws("firehose", body, "delivery_stream_arn"),
            "kinesis" => parse_aws("kinesis", body, "stream_arn"),
            "cloudwatch_logs" => parse_aws("cloudwatch_logs", body, "log_group_arn"),
            "datadog" => parse_datadog(body),
            "azure_logs_ingestion" => parse_azure(body),
            "http" => parse_http(body),
            "file" => parse_file(body),
            "nats" => parse_nats(body),
            _ => Err(invalid(format!("target has an unknown kind \"{kind}\""))),
        }
    }

    /// The kind's key (`http`, `firehose`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Cloud { kind, .. } => kind,
            Target::Http { .. } => "http",
            Target::File { .. } => "file",
            Target::Nats { .. } => "nats",
        }
    }

    /// The `target` object as the API shows it: all five ngrok keys (unused ones `null`) plus
    /// Warren's key in use. Secrets are shown as `""`.
    pub fn to_json(&self) -> Value {
        self.render(false)
    }

    /// The `target` object as the store keeps it: like [`Target::to_json`] but with secrets.
    /// [`Target::parse`] accepts it.
    pub fn to_stored_json(&self) -> Value {
        self.render(true)
    }

    fn render(&self, with_secrets: bool) -> Value {
        let mut out = Map::new();
        for kind in CLOUD_KINDS {
            out.insert(kind.to_owned(), Value::Null);
        }
        let body = match self {
            Target::Cloud { config, .. } => {
                let mut config = config.clone();
                if !with_secrets {
                    mask_secrets(&mut config);
                }
                config
            }
            Target::Http { url, secret } => serde_json::json!({
                "url": url,
                "secret": if with_secrets { secret.as_str() } else { "" },
            }),
            Target::File {
                path,
                max_bytes,
                max_files,
            } => serde_json::json!({
                "path": path,
                "max_bytes": max_bytes,
                "max_files": max_files,
            }),
            Target::Nats { url, subject } => serde_json::json!({
                "url": url,
                "subject": subject,
            }),
        };
        out.insert(self.kind().to_owned(), body);
        Value::Object(out)
    }

    /// Whether Warren delivers to this target.
    pub fn is_delivered(&self) -> bool {
        !matches!(self, Target::Cloud { .. })
    }
}

/// Replaces every secret-bearing field inside a cloud kind's config with `""`.
fn mask_secrets(config: &mut Value) {
    const SECRET_FIELDS: [&str; 3] = ["aws_secret_access_key", "api_key", "client_secret"];
    match config {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) && v.is_string() {
                    *v = Value::String(String::new());
                } else {
                    mask_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

fn parse_aws(kind: &'static str, body: &Value, arn_field: &str) -> Result<Target, TargetError> {
    let fields = Fields::new(kind, body, &["auth", arn_field], invalid)?;
    let arn = fields.req_str(arn_field)?;
    let auth = match fields.map.get("auth") {
        None | Some(Value::Null) => {
            return Err(TargetError {
                code: ERR_AUTH_ROLE_OR_CREDS,
                msg: format!("target.{kind}.auth is required, with one of role and creds"),
            });
        }
        Some(auth) => parse_aws_auth(kind, auth)?,
    };
    let mut config = Map::new();
    config.insert("auth".into(), auth);
    config.insert(arn_field.into(), Value::String(arn));
    Ok(Target::Cloud {
        kind,
        config: Value::Object(config),
    })
}

fn parse_aws_auth(kind: &str, auth: &Value) -> Result<Value, TargetError> {
    let label = format!("{kind}.auth");
    let fields = Fields::new(&label, auth, &["role", "creds"], invalid_auth)?;
    let role = fields.map.get("role").filter(|v| !v.is_null());
    let creds = fields.map.get("creds").filter(|v| !v.is_null());
    match (role, creds) {
        (Some(role), None) => {
            let role_label = format!("{label}.role");
            let f = Fields::new(&role_label, role, &["role_arn"], invalid_auth)?;
            let role_arn = f.req_str("role_arn")?;
            Ok(serde_json::json!({"role": {"role_arn": role_arn}, "creds": null}))
        }
        (None, Some(creds)) => {
            let creds_label = format!("{label}.creds");
            let f = Fields::new(
                &creds_label,
                creds,
                &["aws_access_key_id", "aws_secret_access_key"],
                invalid_auth,
            )?;
            let key_id = f.req_str("aws_access_key_id")?;
            let secret = f.req_str("aws_secret_access_key")?;
            Ok(serde_json::json!({
                "role": null,
                "creds": {"aws_access_key_id": key_id, "aws_secret_access_key": secret},
            }))
        }
        _ => Err(TargetError {
            code: ERR_AUTH_ROLE_OR_CREDS,
            msg: format!("target.{label} must have exactly one of role and creds"),
        }),
    }
}

fn parse_datadog(body: &Value) -> Result<Target, TargetError> {
    let fields = Fields::new(
        "datadog",
        body,
        &["api_key", "ddtags", "service", "ddsite"],
        invalid,
    )?;
    let api_key = fields.req_str("api_key")?;
    let mut config = Map::new();
    config.insert("api_key".into(), Value::String(api_key));
    for name in ["ddtags", "service", "ddsite"] {
        let v = fields.opt_str(name)?.unwrap_or_default();
        config.insert(name.into(), Value::String(v));
    }
    Ok(Target::Cloud {
        kind: "datadog",
        config: Value::Object(config),
    })
}

fn parse_azure(body: &Value) -> Result<Target, TargetError> {
    const FIELDS: [&str; 6] = [
        "tenant_id",
        "client_id",
        "client_secret",
        "logs_ingestion_uri",
        "data_collection_rule_id",
        "data_collection_stream_name",
    ];
    let fields = Fields::new("azure_logs_ingestion", body, &FIELDS, invalid)?;
    let mut config = Map::new();
    for name in FIELDS {
        config.insert(name.into(), Value::String(fields.req_str(name)?));
    }
    Ok(Target::Cloud {
        kind: "azure_logs_ingestion",
        config: Value::Object(config),
    })
}

fn parse_http(body: &Value) -> Result<Target, TargetError> {
    let fields = Fields::new("http", body, &["url", "secret"], invalid)?;
    let url = fields.req_str("url")?;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(format!("target.http.url is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid(
            "target.http.url must start with http:// or https://",
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("target.http.url must name a host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid(
            "target.http.url must not carry credentials; use target.http.secret",
        ));
    }
    let secret = fields.opt_str("secret")?.unwrap_or_default();
    Ok(Target::Http { url, secret })
}

fn parse_file(body: &Value) -> Result<Target, TargetError> {
    let fields = Fields::new("file", body, &["path", "max_bytes", "max_files"], invalid)?;
    let path = fields.req_str("path")?;
    if !std::path::Path::new(&path).is_absolute() {
        return Err(invalid("target.file.path must be an absolute path"));
    }
    if path.contains('\0') {
        return Err(invalid("target.file.path must not contain NUL"));
    }
    let max_bytes = fields
        .opt_u64("max_bytes")?
        .unwrap_or(FILE_MAX_BYTES_DEFAULT);
    if max_bytes < FILE_MAX_BYTES_MIN {
        return Err(invalid(format!(
            "target.file.max_bytes must be at least {FILE_MAX_BYTES_MIN}"
        )));
    }
    let max_files = fields
        .opt_u64("max_files")?
        .unwrap_or(u64::from(FILE_MAX_FILES_DEFAULT));
    let max_files = u32::try_from(max_files)
        .ok()
        .filter(|n| (1..=FILE_MAX_FILES_MAX).contains(n))
        .ok_or_else(|| {
            invalid(format!(
                "target.file.max_files must be between 1 and {FILE_MAX_FILES_MAX}"
            ))
        })?;
    Ok(Target::File {
        path,
        max_bytes,
        max_files,
    })
}

fn parse_nats(body: &Value) -> Result<Target, TargetError> {
    let fields = Fields::new("nats", body, &["url", "subject"], invalid)?;
    let url = fields.req_str("url")?;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(format!("target.nats.url is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("nats" | "tls")) {
        return Err(invalid("target.nats.url must start with nats:// or tls://"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("target.nats.url must name a host"));
    }
    let subject = fields.req_str("subject")?;
    check_subject(&subject)?;
    Ok(Target::Nats { url, subject })
}

/// A NATS subject prefix: dot-separated non-empty tokens, no whitespace, no wildcards.
fn check_subject(subject: &str) -> Result<(), TargetError> {
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(invalid(
                "target.nats.subject must be dot-separated non-empty tokens",
            ));
        }
        if token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
        {
            return Err(invalid(
                "target.nats.subject must not contain spaces or the wildcards * and >",
            ));
        }
    }
    Ok(())
}
