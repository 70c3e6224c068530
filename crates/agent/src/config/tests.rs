//! Tests of the config file reader: ngrok's examples parse, version 2 converts, every refusal
//! names file, line and key, and hostile files are refused by a limit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

fn ok(text: &str) -> Config {
    parse(text, Path::new("agent.yml")).unwrap_or_else(|e| panic!("{e}"))
}

fn fail(text: &str) -> ConfigError {
    match parse(text, Path::new("agent.yml")) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e,
    }
}

/// Asserts `text` is refused at `line:column`, blaming `key`, with `needle` in the message.
#[track_caller]
fn refused(text: &str, line: u64, column: u64, key: &str, needle: &str) {
    let err = fail(text);
    let shown = err.to_string();
    match &err {
        ConfigError::Invalid {
            path,
            line: l,
            column: c,
            key: k,
            ..
        } => {
            assert_eq!(path, Path::new("agent.yml"), "{shown}");
            assert_eq!((*l, *c), (line, column), "{shown}");
            assert_eq!(k, key, "{shown}");
        }
        other => panic!("not an Invalid error: {other}"),
    }
    assert!(
        shown.starts_with(&format!("agent.yml:{line}:{column}: ")),
        "{shown}"
    );
    if !key.is_empty() {
        assert!(shown.contains(key), "key `{key}` not named: {shown}");
    }
    assert!(shown.contains(needle), "`{needle}` not in: {shown}");
}

fn endpoint(name: &str, url: Option<&str>, upstream: &str) -> EndpointConfig {
    EndpointConfig {
        name: name.to_owned(),
        url: url.map(str::to_owned),
        upstream: UpstreamConfig {
            url: upstream.to_owned(),
            ..UpstreamConfig::default()
        },
        ..EndpointConfig::default()
    }
}

// ---- version 3 -----------------------------------------------------------------------------

#[test]
fn the_ngrok_v3_walkthrough_example_parses() {
    let c = ok(r#"
version: 3
agent:
  authtoken: YOUR_NGROK_AUTHTOKEN
endpoints:
  - name: telemetry-api
    url: https://telemetry-api.internal:8080
    upstream: { url: http://192.168.1.100 }
  - name: sensor-db
    url: tcp://database.internal:5432
    upstream: { url: tcp://192.168.1.101 }
  - name: agent-api
    url: https://agent-api.internal
    upstream: { url: http://localhost:4040 }
"#);
    assert_eq!(c.agent.authtoken.as_deref(), Some("YOUR_NGROK_AUTHTOKEN"));
    assert_eq!(c.paths, vec![PathBuf::from("agent.yml")]);
    let names: Vec<_> = c.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["telemetry-api", "sensor-db", "agent-api"]);
    let db = &c.endpoints[1];
    assert_eq!(db.proto(), Ok("tcp"));
    assert_eq!(db.remote_addr().as_deref(), Some("database.internal:5432"));
    // A tcp upstream without a port takes the endpoint's port, as the walkthrough means.
    assert_eq!(
        db.upstream().unwrap().to_string(),
        "tcp://192.168.1.101:5432"
    );
    assert_eq!(
        c.endpoints[0].host().as_deref(),
        Some("telemetry-api.internal")
    );
    for e in &c.endpoints {
        e.validate().unwrap();
    }
}

#[test]
fn every_agent_key_is_read() {
    let c = ok(r#"
version: "3"
agent:
  authtoken: 0x1F
  api_key: key_123
  connect_url: edge.example.com:4443
  connect_cas: /etc/warren/ca.pem
  connect_interface: ""
  connect_timeout: 1m30s
  heartbeat_interval: 500ms
  heartbeat_tolerance: 1h
  metadata: '{"site": 7}'
  remote_management: false
  update_check: false
  update_channel: beta
  update_command: /usr/local/bin/update-warren
  crl_noverify: yes
  dns_resolver_ips: []
  proxy_url:
  web_addr: localhost:4041
  web_allow_hosts: [warren.local, 10.0.0.0/8]
  inspect_db_size: -1
  log: /var/log/warren.log
  log_level: debug
  log_format: json
  console_ui: iftty
  console_ui_color: transparent
"#);
    let a = &c.agent;
    assert_eq!(a.authtoken.as_deref(), Some("0x1F"), "written text, not 31");
    assert_eq!(a.api_key.as_deref(), Some("key_123"));
    assert_eq!(a.connect_url.as_deref(), Some("edge.example.com:4443"));
    assert_eq!(a.connect_cas.as_deref(), Some("/etc/warren/ca.pem"));
    assert_eq!(a.connect_timeout, Some(Duration::from_secs(90)));
    assert_eq!(a.heartbeat_interval, Some(Duration::from_millis(500)));
    assert_eq!(a.heartbeat_tolerance, Some(Duration::from_secs(3600)));
    assert_eq!(a.metadata.as_deref(), Some(r#"{"site": 7}"#));
    assert_eq!(a.remote_management, Some(false));
    assert_eq!(
        a.update_command.as_deref(),
        Some("/usr/local/bin/update-warren")
    );
    assert_eq!(
        a.web_addr,
        Some(Some("127.0.0.1:4041".parse::<SocketAddr>().unwrap()))
    );
    assert_eq!(a.web_allow_hosts, ["warren.local", "10.0.0.0/8"]);
    assert_eq!(a.inspect_db_size, Some(-1));
    assert_eq!(a.log.as_deref(), Some("/var/log/warren.log"));
    assert_eq!(a.log_level.as_deref(), Some("debug"));
    assert_eq!(a.log_format.as_deref(), Some("json"));
    assert_eq!(a.console_ui.as_deref(), Some("iftty"));
    assert!(c.endpoints.is_empty());
}

#[test]
fn agent_values_in_their_other_spellings() {
    let c = ok(
        "version: 3\nagent:\n  web_addr: false\n  log: false\n  console_ui: true\n  \
                web_allow_hosts:\n  remote_management: on\n",
    );
    assert_eq!(c.agent.web_addr, Some(None));
    assert_eq!(c.agent.log.as_deref(), Some("false"));
    assert_eq!(c.agent.console_ui.as_deref(), Some("true"));
    assert_eq!(c.agent.remote_management, Some(true));
    let c = ok("version: 3\nagent:\n  web_addr: '[::1]:4040'\n");
    assert_eq!(c.agent.web_addr, Some(Some("[::1]:4040".parse().unwrap())));
    let c = ok("version: 3\nagent:\n");
    assert_eq!(c.agent, AgentSection::default());
}

#[test]
fn string_keys_keep_the_text_as_written() {
    let c = ok(
        "\u{feff}version: 3\r\nagent:\r\n  authtoken: 1e999\r\n  api_key: .nan\r\n  \
                metadata: 0755\r\n  connect_cas: 1_000\r\n  update_command: 1.50\r\n",
    );
    let a = &c.agent;
    assert_eq!(a.authtoken.as_deref(), Some("1e999"));
    assert_eq!(a.api_key.as_deref(), Some(".nan"));
    assert_eq!(a.metadata.as_deref(), Some("0755"));
    assert_eq!(a.connect_cas.as_deref(), Some("1_000"));
    assert_eq!(a.update_command.as_deref(), Some("1.50"));
}

#[test]
fn every_endpoint_key_is_read() {
    let c = ok(r#"
version: 3
endpoints:
  - name: cam
    url: cam1.Site1.example.com
    description: front door
    metadata: m
    bindings: [public]
    pooling_enabled: true
    inspect: false
    upstream:
      url: 8080
      protocol: http2
      proxy_protocol: 2
    traffic_policy:
      on_http_request:
        - expressions: ["req.method == 'POST'"]
          actions:
            - type: deny
              config: { status_code: 405 }
    agent_tls_termination: {}
"#);
    let e = &c.endpoints[0];
    assert_eq!(e.name, "cam");
    assert_eq!(e.proto(), Ok("https"));
    assert_eq!(e.host().as_deref(), Some("cam1.site1.example.com"));
    assert_eq!(e.description.as_deref(), Some("front door"));
    assert_eq!(e.metadata.as_deref(), Some("m"));
    assert_eq!(e.bindings, ["public"]);
    assert!(e.pooling_enabled);
    assert_eq!(e.inspect, Some(false));
    assert_eq!(e.upstream.url, "8080");
    assert_eq!(e.upstream.protocol.as_deref(), Some("http2"));
    assert_eq!(e.upstream.proxy_protocol, Some(2));
    assert_eq!(
        e.upstream().unwrap().to_string(),
        "http://localhost:8080".to_owned()
    );
    let policy: serde_json::Value =
        serde_json::from_str(e.traffic_policy.as_deref().unwrap()).unwrap();
    assert_eq!(
        policy,
        serde_json::json!({"on_http_request": [{
            "expressions": ["req.method == 'POST'"],
            "actions": [{"type": "deny", "config": {"status_code": 405}}]
        }]})
    );
}

#[test]
fn a_traffic_policy_can_be_text_or_a_file_beside_the_config() {
    let c = ok(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n    \
                traffic_policy: '{\"on_http_request\": []}'\n",
    );
    assert_eq!(
        c.endpoints[0].traffic_policy.as_deref(),
        Some(r#"{"on_http_request":[]}"#)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/deny.yml"),
        "on_http_request:\n  - actions:\n      - type: deny\n",
    )
    .unwrap();
    let cfg = dir.path().join("agent.yml");
    std::fs::write(
        &cfg,
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n    \
         traffic_policy_file: policies/deny.yml\n",
    )
    .unwrap();
    let c = load(std::slice::from_ref(&cfg)).unwrap();
    assert_eq!(
        c.endpoints[0].traffic_policy.as_deref(),
        Some(r#"{"on_http_request":[{"actions":[{"type":"deny"}]}]}"#)
    );

    // An error inside the policy file names the policy file and its line.
    std::fs::write(
        dir.path().join("policies/deny.yml"),
        "on_http_request:\n  - [\n",
    )
    .unwrap();
    let err = load(std::slice::from_ref(&cfg)).unwrap_err().to_string();
    assert!(err.contains("deny.yml:"), "{err}");
    // A missing policy file names the config line that asked for it.
    std::fs::remove_file(dir.path().join("policies/deny.yml")).unwrap();
    let err = load(std::slice::from_ref(&cfg)).unwrap_err().to_string();
    assert!(
        err.contains("agent.yml:5:26: endpoints[0].traffic_policy_file: "),
        "{err}"
    );
}

#[test]
fn yaml_anchors_and_merge_keys_work_within_limits() {
    // Anchors are fine inside the known keys.
    let c = ok(r#"
version: 3
endpoints:
  - name: a
    upstream: &up { url: 8080, protocol: http2 }
  - name: b
    upstream:
      <<: *up
      url: 9090
"#);
    assert_eq!(c.endpoints[1].upstream.url, "9090");
    assert_eq!(c.endpoints[1].upstream.protocol.as_deref(), Some("http2"));
}

// ---- version 2 and tunnels -----------------------------------------------------------------

#[test]
fn a_version_2_file_converts() {
    let c = ok(r#"
version: 2
authtoken: tok
server_addr: edge.example.com:4443
root_cas: host
region: eu
heartbeat_interval: 20s
web_addr: 127.0.0.1:4040
console_ui: false
tunnels:
  web:
    proto: http
    addr: 8080
    domain: '*.Example.com'
    schemes: [http, https]
    inspect: false
    metadata: meta
  plain:
    addr: https://localhost:8443
    bind_tls: false
  db:
    proto: tcp
    addr: 5432
    remote_addr: 1.tcp.example.com:20001
    proxy_proto: 1
  any-port:
    proto: tcp
    addr: 22
  cam:
    proto: tls
    addr: 443
    hostname: cam.example.com
    terminate_at: upstream
"#);
    let a = &c.agent;
    assert_eq!(a.authtoken.as_deref(), Some("tok"));
    assert_eq!(a.connect_url.as_deref(), Some("edge.example.com:4443"));
    assert_eq!(a.connect_cas.as_deref(), Some("host"));
    assert_eq!(a.heartbeat_interval, Some(Duration::from_secs(20)));
    assert_eq!(a.console_ui.as_deref(), Some("false"));
    let by_name = |n: &str| c.endpoints.iter().find(|e| e.name == n).unwrap();
    let web = by_name("web");
    assert_eq!(web.url.as_deref(), Some("https://*.Example.com"));
    assert_eq!(web.host().as_deref(), Some("*.example.com"));
    assert_eq!(web.inspect, Some(false));
    assert_eq!(web.metadata.as_deref(), Some("meta"));
    assert_eq!(web.upstream.url, "8080");
    let plain = by_name("plain");
    assert_eq!(plain.url.as_deref(), Some("http://"));
    assert_eq!(plain.proto(), Ok("http"));
    let db = by_name("db");
    assert_eq!(db.url.as_deref(), Some("tcp://1.tcp.example.com:20001"));
    assert_eq!(db.remote_addr().as_deref(), Some("1.tcp.example.com:20001"));
    assert_eq!(db.upstream.proxy_protocol, Some(1));
    assert_eq!(db.upstream().unwrap().to_string(), "tcp://localhost:5432");
    assert_eq!(by_name("any-port").url.as_deref(), Some("tcp://"));
    assert_eq!(by_name("any-port").remote_addr(), None);
    let cam = by_name("cam");
    assert_eq!(cam.url.as_deref(), Some("tls://cam.example.com"));
    assert_eq!(cam.proto(), Ok("tls"));
}

#[test]
fn version_3_files_may_keep_a_tunnels_map() {
    let c = ok(r#"
version: 3
agent: {authtoken: t}
endpoints:
  - name: a
    upstream: {url: 1}
tunnels:
  b:
    addr: 2
"#);
    let names: Vec<_> = c.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(c.endpoints[1].url, Some("https://".to_owned()));
}

// ---- refusals name file, line and key ------------------------------------------------------

#[test]
fn unknown_keys_are_refused_with_their_path() {
    refused(
        "version: 3\nagent:\n  authtoken: x\n  authtokn: y\n",
        4,
        3,
        "agent.authtokn",
        "unknown key `agent.authtokn` (did you mean `authtoken`?)",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1, protocl: http2}\n",
        4,
        24,
        "endpoints[0].upstream.protocl",
        "unknown key",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n    urll: x\n",
        5,
        5,
        "endpoints[0].urll",
        "did you mean `url`?",
    );
    refused(
        "version: 3\nagnet: {}\n",
        2,
        1,
        "agnet",
        "did you mean `agent`?",
    );
    refused(
        "version: 3\nauthtoken: x\n",
        2,
        1,
        "authtoken",
        "belongs under `agent:`",
    );
    refused(
        "version: 2\ntunnels:\n  w:\n    addr: 1\n    prot: http\n",
        5,
        5,
        "tunnels.w.prot",
        "did you mean `proto`?",
    );
    refused(
        "version: 2\nagent: {}\n",
        2,
        1,
        "agent",
        "needs `version: 3`",
    );
}

#[test]
fn wrong_values_are_refused_where_they_are_written() {
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n  - name: b\n    upstream:\n      url: 2\n      protocol: h3\n",
        8,
        17,
        "endpoints[1].upstream.protocol",
        "endpoints[1].upstream.protocol: expected `http1` or `http2`, got `h3`",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    url: tcp://db.example.com:5432\n    upstream: {url: 1, protocol: http2}\n",
        5,
        34,
        "endpoints[0].upstream.protocol",
        "applies to http and https endpoints",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1, proxy_protocol: 3}\n",
        4,
        40,
        "endpoints[0].upstream.proxy_protocol",
        "expected `1` or `2`, got `3`",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    url: ftp://x.example.com\n    upstream: {url: 1}\n",
        4,
        10,
        "endpoints[0].url",
        "unsupported scheme `ftp`",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    url: tcp://db.example.com\n    upstream: {url: 1}\n",
        4,
        10,
        "endpoints[0].url",
        "tcp://host:port",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 'http://bad host'}\n",
        4,
        21,
        "endpoints[0].upstream.url",
        "bad host name",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    url: tls://x.example.com\n    upstream: {url: 'cam'}\n",
        5,
        21,
        "endpoints[0].upstream.url",
        "a port is required",
    );
    refused(
        "version: 3\nendpoints:\n  - name: 'a b'\n    upstream: {url: 1}\n",
        3,
        11,
        "endpoints[0].name",
        "contains ` `",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    bindings: [public, internal]\n    upstream: {url: 1}\n",
        4,
        15,
        "endpoints[0].bindings",
        "at most one binding",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    bindings: [kubernetes]\n    upstream: {url: 1}\n",
        4,
        15,
        "endpoints[0].bindings",
        "not supported by Warren",
    );
    let long = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
    refused(
        &format!(
            "version: 3\nendpoints:\n  - name: a\n    description: {long}\n    upstream: {{url: 1}}\n"
        ),
        4,
        18,
        "endpoints[0].description",
        "at most 255",
    );
    let long = "x".repeat(MAX_METADATA_BYTES + 1);
    refused(
        &format!(
            "version: 3\nendpoints:\n  - name: a\n    metadata: {long}\n    upstream: {{url: 1}}\n"
        ),
        4,
        15,
        "endpoints[0].metadata",
        "at most 4096",
    );
    refused(
        &format!("version: 3\nagent:\n  metadata: {long}\n"),
        3,
        13,
        "agent.metadata",
        "at most 4096",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: 8080\n",
        4,
        15,
        "endpoints[0].upstream",
        "expected a mapping such as `{ url: 8080 }`, got `8080`",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n    traffic_policy: [1]\n",
        5,
        21,
        "endpoints[0].traffic_policy",
        "expected a mapping",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n    inspect: maybe\n",
        5,
        14,
        "endpoints[0].inspect",
        "expected `true` or `false`, got `maybe`",
    );
    refused(
        "version: 3\nendpoints: {a: 1}\n",
        2,
        12,
        "endpoints",
        "expected a list",
    );
}

#[test]
fn agent_values_are_checked() {
    refused(
        "version: 3\nagent:\n  heartbeat_interval: 10\n",
        3,
        23,
        "agent.heartbeat_interval",
        "has no unit",
    );
    refused(
        "version: 3\nagent:\n  connect_timeout: -5s\n",
        3,
        20,
        "agent.connect_timeout",
        "negative",
    );
    refused(
        "version: 3\nagent:\n  connect_timeout: 0s\n",
        3,
        20,
        "agent.connect_timeout",
        "greater than zero",
    );
    refused(
        "version: 3\nagent:\n  heartbeat_tolerance: 5 minutes\n",
        3,
        24,
        "agent.heartbeat_tolerance",
        "unknown unit ` minutes`",
    );
    refused(
        "version: 3\nagent:\n  web_addr: true\n",
        3,
        13,
        "agent.web_addr",
        "or `false`",
    );
    refused(
        "version: 3\nagent:\n  web_addr: warren.local:4040\n",
        3,
        13,
        "agent.web_addr",
        "127.0.0.1:4040",
    );
    refused(
        "version: 3\nagent:\n  log_level: verbose\n",
        3,
        14,
        "agent.log_level",
        "expected `crit`, `error`, `warn`, `info` or `debug`, got `verbose`",
    );
    refused(
        "version: 3\nagent:\n  log_format: xml\n",
        3,
        15,
        "agent.log_format",
        "`logfmt`",
    );
    refused(
        "version: 3\nagent:\n  console_ui: sometimes\n",
        3,
        15,
        "agent.console_ui",
        "`iftty`",
    );
    refused(
        "version: 3\nagent:\n  inspect_db_size: -2\n",
        3,
        20,
        "agent.inspect_db_size",
        "`-1`",
    );
    refused(
        "version: 3\nagent:\n  inspect_db_size: 50MB\n",
        3,
        20,
        "agent.inspect_db_size",
        "expected a whole number",
    );
    refused(
        "version: 3\nagent:\n  authtoken: [a]\n",
        3,
        14,
        "agent.authtoken",
        "expected a string, got a list",
    );
    refused(
        "version: 3\nagent:\n  web_allow_hosts: [a, [b]]\n",
        3,
        24,
        "agent.web_allow_hosts[1]",
        "expected a string",
    );
}

#[test]
fn settings_warren_cannot_honour_are_refused_not_ignored() {
    for key in [
        "proxy_url: http://proxy:3128",
        "connect_interface: eth1",
        "dns_resolver_ips: [1.1.1.1]",
    ] {
        let name = key.split(':').next().unwrap();
        refused(
            &format!("version: 3\nagent:\n  {key}\n"),
            3,
            3,
            &format!("agent.{name}"),
            &format!("`agent.{name}` is not supported by Warren"),
        );
    }
    refused(
        "version: 3\nendpoints:\n  - name: a\n    url: tls://a.example.com\n    upstream: {url: 1}\n    agent_tls_termination:\n      server_certificate: cert.pem\n",
        6,
        5,
        "endpoints[0].agent_tls_termination",
        "is not supported by Warren",
    );
    for (key, value) in [
        ("basic_auth", "['user:password123']"),
        ("oauth", "{provider: google}"),
        ("ip_restriction", "{allow_cidrs: [10.0.0.0/8]}"),
        ("circuit_breaker", "0.5"),
        ("labels", "[edge=edghts_1]"),
        ("crt", "a.pem"),
        ("subdomain", "foo"),
        ("host_header", "rewrite"),
    ] {
        refused(
            &format!("version: 2\ntunnels:\n  web:\n    addr: 80\n    {key}: {value}\n"),
            5,
            5,
            &format!("tunnels.web.{key}"),
            &format!("`tunnels.web.{key}` is not supported by Warren"),
        );
    }
    // Asking for nothing is harmless.
    ok("version: 2\ntunnels:\n  web:\n    addr: 80\n    basic_auth: []\n    subdomain: ''\n");
}

#[test]
fn tunnel_definitions_are_checked() {
    refused(
        "version: 2\ntunnels:\n  web:\n    proto: http\n",
        4,
        5,
        "tunnels.web.addr",
        "required key is missing",
    );
    refused(
        "version: 2\ntunnels:\n  web:\n    proto: https\n    addr: 1\n",
        4,
        12,
        "tunnels.web.proto",
        "`proto: http` serves https",
    );
    refused(
        "version: 2\ntunnels:\n  db:\n    proto: tcp\n    addr: 1\n    domain: x.example.com\n",
        6,
        5,
        "tunnels.db.domain",
        "applies to http and tls tunnels, not tcp",
    );
    refused(
        "version: 2\ntunnels:\n  web:\n    addr: 1\n    schemes: [ftp]\n",
        5,
        15,
        "tunnels.web.schemes[0]",
        "expected `http` or `https`",
    );
    refused(
        "version: 2\ntunnels:\n  web:\n    addr: 1\n    domain: a.example.com\n    hostname: b.example.com\n",
        6,
        5,
        "tunnels.web.hostname",
        "not both",
    );
    refused(
        "version: 2\ntunnels:\n  'my web':\n    addr: 1\n",
        3,
        3,
        "tunnels.my web",
        "contains ` `",
    );
    refused(
        "version: 2\nserver_addr: a:1\nconnect_url: b:2\n",
        3,
        1,
        "connect_url",
        "repeats the setting `server_addr` made at line 2",
    );
}

#[test]
fn keys_that_exclude_each_other_are_refused_together() {
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n    traffic_policy: {on_http_request: []}\n    traffic_policy_file: p.yml\n",
        6,
        5,
        "endpoints[0].traffic_policy_file",
        "set `traffic_policy` or `traffic_policy_file`, not both",
    );
    refused(
        "version: 2\ntunnels:\n  web:\n    addr: 1\n    bind_tls: true\n    schemes: [https]\n",
        6,
        5,
        "tunnels.web.schemes",
        "set `schemes` or `bind_tls`, not both",
    );
}

#[test]
fn required_keys_are_named_when_missing() {
    refused(
        "version: 3\nendpoints:\n  - upstream: {url: 1}\n",
        3,
        5,
        "endpoints[0].name",
        "required",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n",
        3,
        5,
        "endpoints[0].upstream",
        "required",
    );
    refused(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {protocol: http1}\n",
        4,
        15,
        "endpoints[0].upstream.url",
        "required",
    );
    refused("agent: {}\n", 1, 1, "version", "required key is missing");
    refused("", 1, 1, "version", "empty");
    refused("# only a comment\n", 1, 1, "version", "empty");
    refused(
        "version: 4\n",
        1,
        10,
        "version",
        "expected `3` (or `2`), got `4`",
    );
    refused("- version: 3\n", 1, 1, "", "a config file is a mapping");
}

#[test]
fn duplicate_endpoint_names_name_both_lines() {
    refused(
        "version: 3\nendpoints:\n  - name: web\n    upstream: {url: 1}\n  - name: web\n    upstream: {url: 2}\n",
        5,
        11,
        "endpoints[1].name",
        "endpoint name `web` is already used at line 3 (endpoints[0])",
    );
    refused(
        "version: 3\nendpoints:\n  - name: web\n    upstream: {url: 1}\ntunnels:\n  web:\n    addr: 2\n",
        6,
        3,
        "tunnels.web",
        "already used at line 3",
    );
}

#[test]
fn yaml_errors_carry_their_location() {
    refused(
        "version: 3\nagent:\n  authtoken: [x\n",
        3,
        14,
        "",
        "invalid YAML",
    );
    refused(
        "version: 3\nversion: 3\n",
        2,
        1,
        "",
        "duplicate mapping key",
    );
    refused("version: 3\nagent:\n\tauthtoken: x\n", 3, 2, "", "tabs");
    refused(
        "version: 3\n---\nversion: 3\n",
        2,
        1,
        "",
        "one YAML document",
    );
}

// ---- loading several files -----------------------------------------------------------------

#[test]
fn later_files_override_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yml");
    let site = dir.path().join("site.yml");
    std::fs::write(
        &base,
        "version: 3\nagent:\n  authtoken: old\n  connect_url: edge:443\n  web_allow_hosts: [a]\n\
         endpoints:\n  - name: a\n    upstream: {url: 1}\n  - name: b\n    upstream: {url: 2}\n",
    )
    .unwrap();
    std::fs::write(
        &site,
        "version: 3\nagent:\n  authtoken: new\nendpoints:\n  - name: b\n    upstream: {url: 3}\n  \
         - name: c\n    upstream: {url: 4}\n",
    )
    .unwrap();
    let c = load(&[base.clone(), site.clone()]).unwrap();
    assert_eq!(c.paths, vec![base, site]);
    assert_eq!(c.agent.authtoken.as_deref(), Some("new"));
    assert_eq!(c.agent.connect_url.as_deref(), Some("edge:443"));
    assert_eq!(c.agent.web_allow_hosts, ["a"]);
    let got: Vec<_> = c
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.upstream.url.as_str()))
        .collect();
    assert_eq!(got, [("a", "1"), ("b", "3"), ("c", "4")]);
    assert_eq!(load(&[]).unwrap(), Config::default());
}

#[test]
fn unreadable_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let err = load(std::slice::from_ref(&missing)).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope.yml"), "{err}");

    let binary = dir.path().join("bin.yml");
    std::fs::write(&binary, b"version: 3\nagent:\n  authtoken: \xff\xfe\n").unwrap();
    let err = load(std::slice::from_ref(&binary)).unwrap_err().to_string();
    assert!(
        err.contains("bin.yml:3:14: the file is not UTF-8 text"),
        "{err}"
    );
}

// ---- hostile input -------------------------------------------------------------------------

/// Asserts `text` is refused by a limit, quickly (a generous sanity bound, not a benchmark).
#[track_caller]
fn refused_quickly(text: &str, needle: &str) {
    let started = Instant::now();
    let err = fail(text).to_string();
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn deep_flow_nesting_is_refused() {
    let n = 100_000;
    let text = format!("version: 3\nagent: {}{}\n", "[".repeat(n), "]".repeat(n));
    refused_quickly(
        &text,
        &format!("nested deeper than {MAX_YAML_DEPTH} levels"),
    );
    let text = format!("version: 3\nagent: {}\n", "{a: ".repeat(n));
    refused_quickly(&text, "nested deeper");
}

#[test]
fn deep_block_nesting_is_refused() {
    let mut text = String::from("version: 3\n");
    for depth in 0..500 {
        text.push_str(&" ".repeat(depth));
        text.push_str("k:\n");
    }
    refused_quickly(&text, "nested deeper");
}

#[test]
fn alias_bombs_are_refused() {
    // "Billion laughs": nine levels of nine aliases each.
    let mut text =
        String::from("version: 3\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*x{}", i - 1); 9].join(", ");
        text.push_str(&format!("x{i}: &x{i} [{refs}]\n"));
    }
    refused_quickly(&text, "alias bomb");
    // The same bomb inside a traffic policy, where any shape is accepted.
    let bomb = text.replace("version: 3\n", "").replace('\n', "\n      ");
    let text = format!(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {{url: 1}}\n    traffic_policy:\n      {bomb}\n"
    );
    refused_quickly(&text, "alias bomb");
}

#[test]
fn aliases_cannot_nest_past_the_depth_limit() {
    // Each anchor nests 10 levels and holds the previous alias at its bottom: the third one
    // would reach 35 levels once expanded.
    let mut text = String::from(
        "version: 3\nendpoints:\n  - name: a\n    upstream: {url: 1}\n    traffic_policy:\n",
    );
    let (open, close) = ("[".repeat(10), "]".repeat(10));
    text.push_str(&format!("      x0: &x0 {open}1{close}\n"));
    for i in 1..32 {
        text.push_str(&format!("      x{i}: &x{i} {open}*x{}{close}\n", i - 1));
    }
    refused(&text, 8, 25, "", "nested deeper than 32 levels");
}

#[test]
fn huge_and_wide_files_are_refused() {
    let text = format!(
        "version: 3\nagent:\n  metadata: {}\n",
        "x".repeat(MAX_CONFIG_BYTES)
    );
    let err = fail(&text);
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yml");
    std::fs::write(&big, &text).unwrap();
    let err = load(std::slice::from_ref(&big)).unwrap_err();
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");

    // Under the size limit, over the node limit.
    let text = format!(
        "version: 3\nagent: [{}]\n",
        vec!["1"; MAX_YAML_NODES + 10].join(",")
    );
    assert!(text.len() < MAX_CONFIG_BYTES);
    refused_quickly(&text, &format!("more than {MAX_YAML_NODES} values"));
}

#[test]
fn endpoint_count_and_policy_size_are_bounded() {
    let mut text = String::from("version: 3\nendpoints:\n");
    for i in 0..=MAX_ENDPOINTS {
        text.push_str(&format!("  - {{name: e{i}, upstream: {{url: 1}}}}\n"));
    }
    refused(
        &text,
        MAX_ENDPOINTS as u64 + 3,
        5,
        &format!("endpoints[{MAX_ENDPOINTS}]"),
        "more than 1000 endpoints",
    );

    // One policy file shared by many endpoints is fine; one too large is refused at the key.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.json");
    std::fs::write(&policy, r#"{"on_http_request": []}"#).unwrap();
    let mut text = String::from("version: 3\nendpoints:\n");
    for i in 0..100 {
        text.push_str(&format!(
            "  - {{name: e{i}, upstream: {{url: 1}}, traffic_policy_file: p.json}}\n"
        ));
    }
    let c = parse(&text, &dir.path().join("agent.yml")).unwrap();
    assert!(
        c.endpoints
            .iter()
            .all(|e| e.traffic_policy.as_deref() == Some(r#"{"on_http_request":[]}"#))
    );
    let big = format!(
        r#"{{"on_http_request": [{{"expressions": ["{}"]}}]}}"#,
        "x".repeat(MAX_TRAFFIC_POLICY_BYTES)
    );
    std::fs::write(&policy, big).unwrap();
    let err = parse(&text, &dir.path().join("agent.yml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agent.yml:3:57: endpoints[0].traffic_policy_file: the traffic policy in"),
        "{err}"
    );
}

// ---- endpoint helpers ----------------------------------------------------------------------

#[test]
fn proto_host_and_remote_addr_come_from_the_url() {
    /// `url`, then what `proto()`, `host()` and `remote_addr()` return (`Err(())`: refused).
    type Case = (
        Option<&'static str>,
        Result<&'static str, ()>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (None, Ok("https"), None, None),
        (Some(""), Ok("https"), None, None),
        (
            Some("Cam.Example.com"),
            Ok("https"),
            Some("cam.example.com"),
            None,
        ),
        (Some("https://"), Ok("https"), None, None),
        (
            Some("https://x.example.com/"),
            Ok("https"),
            Some("x.example.com"),
            None,
        ),
        (
            Some("HTTP://x.example.com"),
            Ok("http"),
            Some("x.example.com"),
            None,
        ),
        (
            Some("http://*.example.com"),
            Ok("http"),
            Some("*.example.com"),
            None,
        ),
        (
            Some("tls://t.example.com"),
            Ok("tls"),
            Some("t.example.com"),
            None,
        ),
        (Some("tls://"), Ok("tls"), None, None),
        (Some("tcp://"), Ok("tcp"), None, None),
        (
            Some("tcp://1.tcp.example.com:20001"),
            Ok("tcp"),
            Some("1.tcp.example.com"),
            Some("1.tcp.example.com:20001"),
        ),
        (
            Some("tcp://[::1]:5000"),
            Ok("tcp"),
            Some("::1"),
            Some("[::1]:5000"),
        ),
        (Some("tcp://*.example.com:1"), Err(()), None, None),
        (Some("tcp://x.example.com"), Err(()), None, None),
        (Some("ws://x.example.com"), Err(()), None, None),
        (Some("https://x.example.com/path"), Err(()), None, None),
        (Some("https://u:p@x.example.com"), Err(()), None, None),
        (Some("https://x.example.com:0"), Err(()), None, None),
        (Some("https://-x.example.com"), Err(()), None, None),
        (Some("https://x..example.com"), Err(()), None, None),
        (Some("https://a.*.example.com"), Err(()), None, None),
        (Some("8080"), Err(()), None, None),
    ];
    for (url, proto, host, remote) in cases {
        let e = endpoint("e", *url, "1");
        assert_eq!(e.proto().map_err(|_| ()), *proto, "{url:?}");
        assert_eq!(e.host().as_deref(), *host, "{url:?}");
        assert_eq!(e.remote_addr().as_deref(), *remote, "{url:?}");
    }
}

#[test]
fn the_upstream_default_scheme_follows_the_endpoint() {
    let up = |url: &str, upstream: &str| endpoint("e", Some(url), upstream).upstream();
    assert_eq!(
        up("https://", "8080").unwrap().to_string(),
        "http://localhost:8080"
    );
    assert_eq!(
        up("http://", "cam:81").unwrap().to_string(),
        "http://cam:81"
    );
    assert_eq!(
        up("tcp://", "5432").unwrap().to_string(),
        "tcp://localhost:5432"
    );
    assert_eq!(
        up("tls://", "8443").unwrap().to_string(),
        "tcp://localhost:8443"
    );
    assert_eq!(
        up("https://", "https://cam").unwrap().to_string(),
        "https://cam:443"
    );
    assert!(up("tls://", "cam").is_err(), "tcp needs a port");
    assert!(up("ftp://", "1").is_err(), "the URL is wrong");
}

#[test]
fn validate_names_the_field() {
    let mut e = endpoint("cam_1.front-door", Some("https://cam.example.com"), "8080");
    e.validate().unwrap();
    let check = |e: &EndpointConfig, prefix: &str| {
        let err = e.validate().unwrap_err();
        assert!(err.starts_with(prefix), "{err}");
    };
    e.name = String::new();
    check(&e, "name: must not be empty");
    e.name = "x".repeat(MAX_ENDPOINT_NAME_LEN + 1);
    check(&e, "name: ");
    e.name = "x".repeat(MAX_ENDPOINT_NAME_LEN);
    e.validate().unwrap();
    e.name = "a/b".into();
    check(&e, "name: ");
    e.name = "cam".into();
    e.upstream.url = "http://a b".into();
    check(&e, "upstream.url: ");
    e.upstream.url = "8080".into();
    e.upstream.protocol = Some("h2c".into());
    check(
        &e,
        "upstream.protocol: expected `http1` or `http2`, got `h2c`",
    );
    e.upstream.protocol = Some("http1".into());
    e.upstream.proxy_protocol = Some(0);
    check(&e, "upstream.proxy_protocol: ");
    e.upstream.proxy_protocol = Some(1);
    e.traffic_policy = Some("x".repeat(MAX_TRAFFIC_POLICY_BYTES + 1));
    check(&e, "traffic_policy: ");
    e.traffic_policy = None;
    e.bindings = vec!["private".into()];
    check(&e, "bindings: ");
    e.bindings = vec!["internal".into()];
    e.validate().unwrap();
}

#[test]
fn endpoint_bodies_refuse_unknown_json_fields() {
    let e: EndpointConfig =
        serde_json::from_str(r#"{"name":"a","upstream":{"url":"8080","proxy_protocol":2}}"#)
            .unwrap();
    assert_eq!(e.upstream.proxy_protocol, Some(2));
    assert!(
        serde_json::from_str::<EndpointConfig>(r#"{"name":"a","upstream":{"url":"1"},"x":1}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<EndpointConfig>(r#"{"name":"a","upstream":{"url":"1","y":1}}"#)
            .is_err()
    );
}

// ---- diff, durations, default path ---------------------------------------------------------

#[test]
fn diff_sorts_endpoints_by_what_happened() {
    let a = endpoint("a", None, "1");
    let b = endpoint("b", None, "2");
    let b2 = endpoint("b", None, "3");
    let c = endpoint("c", None, "4");
    let d = diff(&[a.clone(), b.clone()], &[b2.clone(), c.clone()]);
    assert_eq!(d.added, vec![c.clone()]);
    assert_eq!(d.removed, vec!["a".to_owned()]);
    assert_eq!(d.changed, vec![b2]);
    assert!(!d.is_empty());
    let same = diff(&[a.clone(), b.clone()], &[b, a]);
    assert!(same.is_empty(), "order alone is no change: {same:?}");
    assert!(diff(&[], &[]).is_empty());
}

#[test]
fn durations_read_like_go() {
    let ms = Duration::from_millis;
    let good = [
        ("0", Duration::ZERO),
        ("10s", Duration::from_secs(10)),
        ("+10s", Duration::from_secs(10)),
        ("1m30s", Duration::from_secs(90)),
        ("500ms", ms(500)),
        ("1h", Duration::from_secs(3600)),
        ("1.5s", ms(1500)),
        (".5s", ms(500)),
        ("1.s", Duration::from_secs(1)),
        (
            "2h45m0.5s",
            Duration::from_secs(2 * 3600 + 45 * 60) + ms(500),
        ),
        ("300us", Duration::from_micros(300)),
        ("300µs", Duration::from_micros(300)),
        ("7ns", Duration::from_nanos(7)),
        ("1.0000000000000000001s", Duration::from_secs(1)),
        ("2562047h", Duration::from_secs(2_562_047 * 3600)),
    ];
    for (text, want) in good {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    let bad = [
        "",
        "-1s",
        "-0s",
        "10",
        "1.5",
        "s",
        ".s",
        "1x",
        "1 s",
        "1s ",
        "1h-5m",
        "1e3s",
        "2562048h",
        "99999999999999999999999999999999999999999h",
        "١s",
    ];
    for text in bad {
        assert!(parse_duration(text).is_err(), "{text} accepted");
    }
}

#[test]
fn the_default_path_follows_xdg() {
    let p = |xdg: Option<&str>, home: Option<&str>| {
        default_path_from(xdg.map(Into::into), home.map(Into::into))
    };
    assert_eq!(
        p(Some("/xdg"), Some("/home/u")),
        Some(PathBuf::from("/xdg/warren/warren.yml"))
    );
    assert_eq!(
        p(None, Some("/home/u")),
        Some(PathBuf::from("/home/u/.config/warren/warren.yml"))
    );
    assert_eq!(
        p(Some("relative"), Some("/home/u")),
        Some(PathBuf::from("/home/u/.config/warren/warren.yml"))
    );
    assert_eq!(p(Some(""), Some("")), None);
    assert_eq!(p(None, None), None);
}
