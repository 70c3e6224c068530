use serde_json::{Value, json};

use super::*;
use crate::rpc::{Command, Rpc, RpcResponse};
use crate::{ErrCode, RpcReader, encode_error, stream_type};

/// §6.1: the Auth request as sent by `@ngrok/ngrok@1.7.0` (token replaced).
const NODE_AUTH: &str = r#"{"Version":["3","2"],"ClientId":"","Extra":{"OS":"linux","Arch":"x86_64","AuthToken":"tok_node","Version":"1.7.0","Hostname":"","UserAgent":"ngrok-javascript/1.7.0 ngrok-rust/0.18.0","Metadata":"","Cookie":"","HeartbeatInterval":10000000000,"HeartbeatTolerance":15000000000,"UpdateUnsupportedError":"the agent has not defined a callback for this operation","StopUnsupportedError":"the agent has not defined a callback for this operation","RestartUnsupportedError":"the agent has not defined a callback for this operation","ProxyType":"","MutualTLS":false,"ServiceRun":false,"ConfigVersion":"","CustomInterface":false,"CustomCAs":false,"ClientType":"ngrok-javascript"}}"#;

/// A Go agent's Auth: `Authtoken` spelling, Go-only keys, nulls, trailing newline.
const GO_AUTH: &str = "{\"Version\":[\"3\",\"2\"],\"ClientId\":\"ts_prev\",\"Extra\":{\"OS\":\"linux\",\"Arch\":\"amd64\",\"Authtoken\":\"tok_go\",\"Version\":\"2.1.0\",\"Hostname\":\"\",\"UserAgent\":\"ngrok-go/2.1.0\",\"Metadata\":\"m\",\"Cookie\":\"ck\",\"HeartbeatInterval\":10000000000,\"HeartbeatTolerance\":15000000000,\"Fingerprint\":null,\"UpdateUnsupportedError\":null,\"StopUnsupportedError\":\"\",\"RestartUnsupportedError\":null,\"ProxyType\":\"\",\"MutualTLS\":false,\"ServiceRun\":false,\"ConfigVersion\":\"\",\"CustomInterface\":false,\"CustomCAs\":false,\"ClientType\":\"ngrok-go\",\"LegNumber\":0}}\n";

/// A Rust (≥ 0.17) https Bind: every Opts key present, unset ones null.
const RUST_BIND_HTTPS: &str = r#"{"Id":"","Proto":"https","ForwardsTo":"app://host/agent?pid=42","ForwardsProto":"","Opts":{"Domain":"Foo.Example.com","Hostname":"","Auth":"","Subdomain":"","HostHeaderRewrite":false,"LocalUrlScheme":null,"ProxyProto":0,"Compression":null,"CircuitBreaker":null,"IPRestriction":null,"BasicAuth":null,"OAuth":null,"OIDC":null,"WebhookVerification":null,"MutualTLSCA":null,"RequestHeaders":null,"ResponseHeaders":null,"WebsocketTCPConverter":null,"UserAgentFilter":null,"TrafficPolicy":null},"Extra":{"Token":"","IPPolicyRef":"","Metadata":"","Bindings":[],"PoolingEnabled":false}}"#;

/// A Rust https Bind with most edge features switched on.
const RUST_BIND_FEATURES: &str = r#"{"Id":"ep_1","Proto":"http","ForwardsTo":"http://localhost:8080","ForwardsProto":"http2","Opts":{"Domain":"","Hostname":"","Auth":"","Subdomain":"Blue","HostHeaderRewrite":false,"LocalUrlScheme":"https","ProxyProto":2,"Compression":{},"CircuitBreaker":{"error_threshold":0.5},"IPRestriction":{"allow_cidrs":["10.0.0.0/8"]},"BasicAuth":{"credentials":[{"username":"u","cleartext_password":"hunter22"}]},"OAuth":{"provider":"google","allow_emails":["a@b.c"]},"OIDC":null,"WebhookVerification":{"provider":"github","secret":"s3cr3t"},"MutualTLSCA":{"mutual_tls_ca":"LS0tLS1CRUdJTg=="},"RequestHeaders":{"add":["x-a:1"],"remove":["x-b"]},"ResponseHeaders":{"remove":["server"]},"WebsocketTCPConverter":{},"UserAgentFilter":{"allow":["^curl"],"deny":[]},"TrafficPolicy":"{\"on_http_request\":[]}"},"Extra":{"Token":"tk_1","IPPolicyRef":"ipp_1","Metadata":"meta","Bindings":["public"],"PoolingEnabled":true}}"#;

/// A Python 1.4 (Rust ≤ 0.16) https Bind: `Hostname`, no `Domain`, no `PoolingEnabled`.
const PYTHON_BIND: &str = r#"{"Id":"","Proto":"https","ForwardsTo":"localhost:9000","ForwardsProto":"","Opts":{"Hostname":"py.example.com","Auth":"","Subdomain":"","HostHeaderRewrite":false,"LocalUrlScheme":null,"ProxyProto":0,"Compression":null,"CircuitBreaker":null,"IPRestriction":null,"BasicAuth":null,"OAuth":null,"OIDC":null,"WebhookVerification":null,"MutualTLSCA":null,"RequestHeaders":null,"ResponseHeaders":null,"WebsocketTCPConverter":null,"UserAgentFilter":null,"TrafficPolicy":null},"Extra":{"Token":"","IPPolicyRef":"","Metadata":"","Bindings":[]}}"#;

/// A Go v2 Bind: `URL`, `LocalURLScheme`, nil slices as null, Name/Description, trailing newline.
const GO_BIND: &str = "{\"Id\":\"\",\"Proto\":\"https\",\"ForwardsTo\":\"http://localhost:3000\",\"ForwardsProto\":\"\",\"Opts\":{\"Hostname\":\"\",\"Auth\":\"\",\"Subdomain\":\"\",\"HostHeaderRewrite\":false,\"LocalURLScheme\":\"http\",\"ProxyProto\":0,\"Compression\":null,\"CircuitBreaker\":null,\"IPRestriction\":null,\"BasicAuth\":null,\"OAuth\":null,\"OIDC\":null,\"WebhookVerification\":null,\"MutualTLSCA\":null,\"RequestHeaders\":null,\"ResponseHeaders\":null,\"WebsocketTCPConverter\":null,\"UserAgentFilter\":null,\"Policy\":null,\"TrafficPolicy\":\"\",\"URL\":\"https://Go.Example.com\"},\"Extra\":{\"Token\":\"\",\"IPPolicyRef\":\"\",\"Metadata\":\"\",\"Bindings\":null,\"PoolingEnabled\":false,\"Name\":\"web\",\"Description\":\"my app\"}}\n";

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn bind(json: &str) -> Bind {
    serde_json::from_str(json).expect("bind parses")
}

// --- Auth -----------------------------------------------------------------------------------

#[test]
fn node_auth_request() {
    let auth: Auth = serde_json::from_str(NODE_AUTH).unwrap();
    assert_eq!(auth.version, ["3", "2"]);
    assert_eq!(auth.client_id, "");
    let x = &auth.extra;
    assert_eq!(x.os, "linux");
    assert_eq!(x.arch, "x86_64");
    assert_eq!(x.auth_token, "tok_node");
    assert_eq!(x.version, "1.7.0");
    assert_eq!(x.user_agent, "ngrok-javascript/1.7.0 ngrok-rust/0.18.0");
    assert_eq!(x.client_type, "ngrok-javascript");
    assert_eq!(x.heartbeat_interval(), Some(Duration::from_secs(10)));
    assert_eq!(x.heartbeat_tolerance(), Some(Duration::from_secs(15)));
    assert_eq!(
        x.update_unsupported_error.as_deref(),
        Some("the agent has not defined a callback for this operation")
    );
    assert!(!x.mutual_tls && !x.custom_cas);
}

#[test]
fn go_auth_with_authtoken_spelling_and_nulls() {
    let mut reader = RpcReader::new();
    let auth: Auth = reader.push_as(GO_AUTH.as_bytes()).unwrap().unwrap();
    assert_eq!(auth.client_id, "ts_prev");
    assert_eq!(auth.extra.auth_token, "tok_go");
    assert_eq!(auth.extra.cookie, "ck");
    assert_eq!(auth.extra.update_unsupported_error, None);
    assert_eq!(auth.extra.stop_unsupported_error.as_deref(), Some(""));
    assert_eq!(auth.extra.fingerprint, None);
    assert_eq!(auth.extra.client_type, "ngrok-go");
}

#[test]
fn auth_is_lenient() {
    let empty: Auth = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, Auth::default());
    let nulls: Auth =
        serde_json::from_str(r#"{"Version":null,"ClientId":null,"Extra":null,"Unknown":[1]}"#)
            .unwrap();
    assert_eq!(nulls, Auth::default());
    let x: AuthExtra =
        serde_json::from_str(r#"{"HeartbeatInterval":-5,"HeartbeatTolerance":null}"#).unwrap();
    assert_eq!(x.heartbeat_interval(), None);
    assert_eq!(x.heartbeat_tolerance(), None);
}

#[test]
fn auth_roundtrips() {
    let auth: Auth = serde_json::from_str(NODE_AUTH).unwrap();
    let again: Auth = serde_json::from_slice(&serde_json::to_vec(&auth).unwrap()).unwrap();
    assert_eq!(auth, again);
    // Our own agent writes the Rust spelling.
    let json = serde_json::to_value(&auth).unwrap();
    assert_eq!(json["Extra"]["AuthToken"], "tok_node");
    assert!(json["Extra"].get("Authtoken").is_none());
}

#[test]
fn auth_debug_hides_the_token() {
    let auth: Auth = serde_json::from_str(NODE_AUTH).unwrap();
    let text = format!("{auth:?}");
    assert!(!text.contains("tok_node"), "{text}");
    assert!(text.contains("<redacted>"));
}

#[test]
fn auth_resp_has_required_keys() {
    let resp = AuthResp {
        version: "3".into(),
        client_id: "ts_1".into(),
        extra: AuthRespExtra {
            cookie: "ck_1".into(),
            region: "local".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let json = serde_json::to_value(&resp).unwrap();
    assert_eq!(keys(&json), ["ClientId", "Extra", "Version"]);
    assert_eq!(json["Version"], "3");
    assert_eq!(json["ClientId"], "ts_1");
    assert_eq!(json["Extra"]["Cookie"], "ck_1");
    assert_eq!(
        keys(&json["Extra"]),
        [
            "AccountName",
            "Banner",
            "Cookie",
            "PlanName",
            "Region",
            "SessionDuration",
            "Version"
        ]
    );
    let back: AuthResp = serde_json::from_value(json).unwrap();
    assert_eq!(back, resp);
}

#[test]
fn auth_resp_minimal_and_failure() {
    let minimal: AuthResp = serde_json::from_str(r#"{"Version":"3","ClientId":"c1"}"#).unwrap();
    assert_eq!(minimal.client_id, "c1");
    assert_eq!(minimal.error(), None);

    let failed = AuthResp::failure(encode_error(
        "invalid authtoken",
        ErrCode::AUTHTOKEN_INVALID,
    ));
    let json = serde_json::to_value(&failed).unwrap();
    assert_eq!(json["Error"], "invalid authtoken\n\nERR_NGROK_107");
    assert_eq!(failed.error(), Some("invalid authtoken\n\nERR_NGROK_107"));
}

// --- Bind -----------------------------------------------------------------------------------

#[test]
fn rust_bind_every_opts_key_with_nulls() {
    let b = bind(RUST_BIND_HTTPS);
    assert_eq!(b.proto, "https");
    assert_eq!(b.forwards_to, "app://host/agent?pid=42");
    assert_eq!(b.extra, BindExtra::default());
    let o = b.http_opts().unwrap();
    assert_eq!(o.domain.as_deref(), Some("Foo.Example.com"));
    assert_eq!(o.hostname, None);
    assert_eq!(o.subdomain, None);
    assert_eq!(o.local_url_scheme, None);
    assert_eq!(o.proxy_proto, 0);
    assert_eq!(o.basic_auth, None);
    assert_eq!(o.traffic_policy, None);
    assert_eq!(o.compression, None);
    assert_eq!(
        b.requested_host().unwrap(),
        RequestedName::Host("foo.example.com".into())
    );
}

#[test]
fn rust_bind_with_edge_features() {
    let b = bind(RUST_BIND_FEATURES);
    assert_eq!(b.extra.token, "tk_1");
    assert_eq!(b.extra.ip_policy_ref, "ipp_1");
    assert_eq!(b.extra.bindings, ["public"]);
    assert!(b.extra.pooling_enabled);
    let o = b.http_opts().unwrap();
    assert_eq!(o.local_url_scheme.as_deref(), Some("https"));
    assert_eq!(o.proxy_proto, 2);
    assert_eq!(o.compression, Some(json!({})));
    assert_eq!(o.circuit_breaker.unwrap().error_threshold, 0.5);
    let ipr = o.ip_restriction.unwrap();
    assert_eq!(ipr.allow_cidrs, ["10.0.0.0/8"]);
    assert!(ipr.deny_cidrs.is_empty());
    let creds = &o.basic_auth.as_ref().unwrap().credentials;
    assert_eq!(creds[0].username, "u");
    assert_eq!(creds[0].cleartext_password, "hunter22");
    assert!(creds[0].hashed_password.is_empty());
    assert!(!format!("{:?}", o.basic_auth).contains("hunter22"));
    assert_eq!(o.oauth.as_ref().unwrap().provider, "google");
    assert_eq!(o.oauth.as_ref().unwrap().allow_emails, ["a@b.c"]);
    assert_eq!(o.oidc, None);
    let webhook = o.webhook_verification.unwrap();
    assert_eq!(
        (webhook.provider.as_str(), webhook.secret.as_str()),
        ("github", "s3cr3t")
    );
    assert_eq!(o.mutual_tls_ca.unwrap().mutual_tls_ca, b"-----BEGIN");
    assert_eq!(o.request_headers.unwrap().add, ["x-a:1"]);
    assert_eq!(o.response_headers.unwrap().remove, ["server"]);
    assert!(o.websocket_tcp_converter.is_some());
    assert_eq!(o.user_agent_filter.unwrap().allow, ["^curl"]);
    assert_eq!(
        o.traffic_policy.as_deref(),
        Some(r#"{"on_http_request":[]}"#)
    );
    assert_eq!(
        b.requested_host().unwrap(),
        RequestedName::Subdomain("blue".into())
    );
}

#[test]
fn python_bind_uses_hostname() {
    let b = bind(PYTHON_BIND);
    assert!(!b.extra.pooling_enabled);
    assert_eq!(
        b.requested_host().unwrap(),
        RequestedName::Host("py.example.com".into())
    );
}

#[test]
fn go_bind_with_url_and_local_url_scheme() {
    let mut reader = RpcReader::new();
    let (head, tail) = GO_BIND.as_bytes().split_at(100);
    assert_eq!(reader.push_as::<Bind>(head).unwrap(), None);
    let b: Bind = reader.push_as(tail).unwrap().unwrap();
    assert_eq!(b.extra.name, "web");
    assert_eq!(b.extra.description, "my app");
    assert!(b.extra.bindings.is_empty());
    let o = b.http_opts().unwrap();
    assert_eq!(o.local_url_scheme.as_deref(), Some("http"));
    assert_eq!(o.url.as_deref(), Some("https://Go.Example.com"));
    assert_eq!(o.traffic_policy, None);
    assert_eq!(
        b.requested_host().unwrap(),
        RequestedName::Host("go.example.com".into())
    );
}

#[test]
fn requested_host_order() {
    let with = |proto: &str, opts: Value| Bind {
        proto: proto.into(),
        opts,
        ..Default::default()
    };
    let host = |h: &str| RequestedName::Host(h.into());
    let cases = [
        (
            json!({"URL": "https://u.example.com:8443/x", "Domain": "d.example.com"}),
            host("u.example.com"),
        ),
        (
            json!({"URL": "https://", "Domain": "d.example.com"}),
            host("d.example.com"),
        ),
        (
            json!({"Domain": "d.example.com", "Hostname": "h.example.com"}),
            host("d.example.com"),
        ),
        (
            json!({"Domain": "", "Hostname": "h.example.com", "Subdomain": "s"}),
            host("h.example.com"),
        ),
        (
            json!({"Subdomain": "S"}),
            RequestedName::Subdomain("s".into()),
        ),
        (
            json!({"URL": "*.wild.example.com"}),
            host("*.wild.example.com"),
        ),
        (json!({}), RequestedName::None),
        (Value::Null, RequestedName::None),
    ];
    for (opts, expected) in cases {
        for proto in ["http", "https", "tls"] {
            assert_eq!(
                with(proto, opts.clone()).requested_host().unwrap(),
                expected,
                "{opts}"
            );
        }
    }
    let addr = |a: &str| RequestedName::Address(a.into());
    let tcp = [
        (
            json!({"Addr": "1.TCP.example.com:20001", "ProxyProto": 1}),
            addr("1.tcp.example.com:20001"),
        ),
        (
            json!({"URL": "tcp://2.tcp.example.com:20002", "Addr": "x:1"}),
            addr("2.tcp.example.com:20002"),
        ),
        (json!({"URL": "tcp://[::1]:20003"}), addr("[::1]:20003")),
        (json!({"URL": "tcp://", "Addr": ""}), RequestedName::None),
        (json!({"Addr": null}), RequestedName::None),
    ];
    for (opts, expected) in tcp {
        assert_eq!(
            with("tcp", opts.clone()).requested_host().unwrap(),
            expected,
            "{opts}"
        );
    }
    assert!(matches!(
        with("ssh", json!({})).requested_host(),
        Err(ProtoError::UnsupportedProto(p)) if p == "ssh"
    ));
    assert!(matches!(
        with("https", json!({"URL": "https://user@x.example.com"})).requested_host(),
        Err(ProtoError::InvalidUrl { .. })
    ));
}

#[test]
fn endpoint_url_parsing() {
    let u = EndpointUrl::parse("HTTPS://Foo.Example.com:8443/path?q#f").unwrap();
    assert_eq!(
        (u.scheme.as_str(), u.host.as_str(), u.port),
        ("https", "foo.example.com", Some(8443))
    );
    assert_eq!(u.authority(), "foo.example.com:8443");
    let u = EndpointUrl::parse("foo.example.com").unwrap();
    assert_eq!(
        (u.scheme.as_str(), u.host.as_str(), u.port),
        ("", "foo.example.com", None)
    );
    let u = EndpointUrl::parse("tcp://[2001:DB8::1]:80").unwrap();
    assert_eq!(u.host, "2001:db8::1");
    assert_eq!(u.authority(), "[2001:db8::1]:80");
    for bad in [
        "https://a b.com",
        "https://x.com:99999",
        "https://x.com:",
        "https://x.com:1:2",
        "https://[::1",
        "https://[nope]:1",
        "https://[::1]x",
        "1ttp://x.com",
        "https://u:p@x.com",
    ] {
        assert!(EndpointUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn tcp_opts() {
    let b = bind(
        r#"{"Id":"","Proto":"tcp","ForwardsTo":"localhost:22","Opts":{"Addr":"","ProxyProto":1,"IPRestriction":{"deny_cidrs":["0.0.0.0/0"]},"TrafficPolicy":null},"Extra":{"Token":""}}"#,
    );
    let o = b.tcp_opts().unwrap();
    assert_eq!(o.addr, None);
    assert_eq!(o.proxy_proto, 1);
    assert_eq!(o.ip_restriction.unwrap().deny_cidrs, ["0.0.0.0/0"]);
    assert_eq!(b.requested_host().unwrap(), RequestedName::None);
}

#[test]
fn tls_opts_with_termination() {
    // base64("CERT PEM") / base64("KEY PEM")
    let b = bind(
        r#"{"Id":"","Proto":"tls","Opts":{"Domain":"t.example.com","Hostname":"","Subdomain":"","ProxyProto":0,"MutualTLSAtAgent":true,"MutualTLSAtEdge":null,"TLSTermination":{"cert":"Q0VSVCBQRU0=","key":"S0VZIFBFTQ=="},"IPRestriction":null,"TrafficPolicy":null},"Extra":{"Token":""}}"#,
    );
    let o = b.tls_opts().unwrap();
    assert!(o.mutual_tls_at_agent);
    assert_eq!(o.mutual_tls_at_edge, None);
    let term = o.tls_termination.as_ref().unwrap();
    assert_eq!(term.cert, b"CERT PEM");
    assert_eq!(term.key, b"KEY PEM");
    assert_eq!(term.sealed_key, None);
    let debug = format!("{term:?}");
    assert!(
        !debug.contains("KEY PEM") && !debug.contains("S0VZ"),
        "{debug}"
    );
    assert_eq!(
        b.requested_host().unwrap(),
        RequestedName::Host("t.example.com".into())
    );
    // Passthrough: no TLSTermination.
    let b = bind(r#"{"Proto":"tls","Opts":{"Hostname":"p.example.com","TLSTermination":null}}"#);
    assert_eq!(b.tls_opts().unwrap().tls_termination, None);
}

#[test]
fn invalid_opts_are_errors() {
    let bad = [
        r#"{"Proto":"https","Opts":{"ProxyProto":3}}"#,
        r#"{"Proto":"https","Opts":{"ProxyProto":-1}}"#,
        r#"{"Proto":"https","Opts":"nope"}"#,
        r#"{"Proto":"https","Opts":{"Domain":5}}"#,
        r#"{"Proto":"tls","Opts":{"TLSTermination":{"cert":"!!!","key":""}}}"#,
    ];
    for json in bad {
        let b = bind(json);
        let err = b
            .requested_host()
            .and(b.tls_opts().map(|_| RequestedName::None));
        let err = err.unwrap_err();
        assert!(matches!(err, ProtoError::InvalidOpts(_)), "{json}: {err}");
        assert_eq!(err.code(), ErrCode::INVALID_BIND_OPTS);
    }
}

#[test]
fn bind_roundtrips_and_keeps_opts_verbatim() {
    for json in [RUST_BIND_HTTPS, RUST_BIND_FEATURES, PYTHON_BIND, GO_BIND] {
        let b = bind(json);
        let original: Value = serde_json::from_str(json).unwrap();
        assert_eq!(b.opts, original["Opts"]);
        let again: Bind = serde_json::from_slice(&serde_json::to_vec(&b).unwrap()).unwrap();
        assert_eq!(again, b);
    }
}

#[test]
fn bind_resp_has_required_keys() {
    let req = bind(RUST_BIND_HTTPS);
    let resp = BindResp {
        id: "ep_2".into(),
        url: "https://foo.example.com".into(),
        proto: req.proto.clone(),
        opts: req.opts.clone(),
        extra: BindRespExtra {
            token: "tk_2".into(),
        },
        error: String::new(),
    };
    let json = serde_json::to_value(&resp).unwrap();
    assert_eq!(keys(&json), ["Extra", "Id", "Opts", "Proto", "URL"]);
    assert_eq!(json["Extra"]["Token"], "tk_2");
    // The echoed Opts carry every scalar the Rust client requires.
    for key in [
        "Hostname",
        "Auth",
        "Subdomain",
        "HostHeaderRewrite",
        "ProxyProto",
    ] {
        assert!(
            json["Opts"][key].is_string()
                || json["Opts"][key].is_number()
                || json["Opts"][key].is_boolean(),
            "{key}"
        );
    }
    assert_eq!(
        json["Opts"],
        serde_json::from_str::<Value>(RUST_BIND_HTTPS).unwrap()["Opts"]
    );
    let back: BindResp = serde_json::from_value(json).unwrap();
    assert_eq!(back, resp);

    let failed = BindResp::failure(encode_error("not reserved", ErrCode::HOSTNAME_NOT_RESERVED));
    let json = serde_json::to_value(&failed).unwrap();
    assert_eq!(json["Error"], "not reserved\n\nERR_NGROK_319");
    assert!(json.get("Opts").is_none());
}

// --- Unbind, labels, Go-only RPCs -------------------------------------------------------------

#[test]
fn unbind() {
    let u: Unbind = serde_json::from_str(r#"{"Id":"ep_1"}"#).unwrap();
    assert_eq!(u.id, "ep_1");
    let u: Unbind = serde_json::from_str("{\"Id\":\"ep_1\",\"Extra\":null}\n").unwrap();
    assert_eq!(u.id, "ep_1");
    let u: Unbind = serde_json::from_str(r#"{"Id":"ep_1","Extra":{"x":1}}"#).unwrap();
    assert_eq!(u.id, "ep_1");
    assert_eq!(serde_json::to_string(&UnbindResp::default()).unwrap(), "{}");
    assert_eq!(
        serde_json::to_string(&UnbindResp::failure("no".into())).unwrap(),
        r#"{"Error":"no"}"#
    );
    let ok: UnbindResp = serde_json::from_str(r#"{"Error":""}"#).unwrap();
    assert_eq!(ok.error(), None);
}

#[test]
fn start_tunnel_with_label() {
    let req: StartTunnelWithLabel = serde_json::from_str(
        r#"{"Labels":{"edge":"edghts_123"},"ForwardsTo":"localhost:80","ForwardsProto":"http2","Metadata":""}"#,
    )
    .unwrap();
    assert_eq!(req.labels["edge"], "edghts_123");
    assert_eq!(req.forwards_proto, "http2");
    let resp = StartTunnelWithLabelResp {
        id: "tn_1".into(),
        ..Default::default()
    };
    assert_eq!(serde_json::to_string(&resp).unwrap(), r#"{"Id":"tn_1"}"#);
    let failed = StartTunnelWithLabelResp::failure("x".into());
    assert_eq!(
        serde_json::to_string(&failed).unwrap(),
        r#"{"Id":"","Error":"x"}"#
    );
}

#[test]
fn srv_info_and_patch_tunnel_state() {
    let _: SrvInfo = serde_json::from_str("{}\n").unwrap();
    assert_eq!(serde_json::to_string(&SrvInfo {}).unwrap(), "{}");
    let resp = SrvInfoResp {
        region: "local".into(),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&resp).unwrap(),
        r#"{"Region":"local"}"#
    );

    let patch: PatchTunnelState =
        serde_json::from_str(r#"{"TunnelId":"ep_1","Metadata":"new","PoolingEnabled":true}"#)
            .unwrap();
    assert_eq!(patch.tunnel_id, "ep_1");
    assert_eq!(patch.metadata.as_deref(), Some("new"));
    assert_eq!(patch.pooling_enabled, Some(true));
    assert_eq!(patch.name, None);
    assert_eq!(patch.traffic_policy, None);
    assert_eq!(
        serde_json::to_string(&patch).unwrap(),
        r#"{"TunnelId":"ep_1","Metadata":"new","PoolingEnabled":true}"#
    );
    assert_eq!(
        serde_json::to_string(&PatchTunnelStateResp::default()).unwrap(),
        "{}"
    );
}

// --- Commands -------------------------------------------------------------------------------

#[test]
fn commands() {
    assert_eq!(serde_json::to_string(&Stop {}).unwrap(), "{}");
    assert_eq!(serde_json::to_string(&Restart {}).unwrap(), "{}");
    let update = Update {
        version: "3.1.0".into(),
        permit_major_version: true,
    };
    assert_eq!(
        serde_json::to_string(&update).unwrap(),
        r#"{"Version":"3.1.0","PermitMajorVersion":true}"#
    );
    let ok: CommandResp = serde_json::from_str("{}").unwrap();
    assert_eq!(ok.error(), None);
    let refused: CommandResp = serde_json::from_str(
        r#"{"Error":"the agent has not defined a callback for this operation"}"#,
    )
    .unwrap();
    assert_eq!(
        refused.error(),
        Some("the agent has not defined a callback for this operation")
    );
    let stop = StopTunnel {
        id: "ep_1".into(),
        message: "removed by admin".into(),
        error_code: None,
    };
    assert_eq!(
        serde_json::to_string(&stop).unwrap(),
        r#"{"Id":"ep_1","Message":"removed by admin","ErrorCode":null}"#
    );
    let stop = StopTunnel {
        error_code: Some(ErrCode::CREDENTIAL_REVOKED.to_string()),
        ..stop
    };
    let back: StopTunnel = serde_json::from_str(&serde_json::to_string(&stop).unwrap()).unwrap();
    assert_eq!(back.error_code.as_deref(), Some("ERR_NGROK_300"));
}

// --- Stream type binding --------------------------------------------------------------------

fn rpc_type<R: Rpc>() -> u32 {
    R::STREAM_TYPE
}

fn command_type<C: Command>() -> (u32, bool) {
    (C::STREAM_TYPE, C::EXPECTS_REPLY)
}

#[test]
fn stream_type_binding() {
    assert_eq!(rpc_type::<Auth>(), stream_type::AUTH);
    assert_eq!(rpc_type::<Bind>(), stream_type::BIND);
    assert_eq!(rpc_type::<Unbind>(), stream_type::UNBIND);
    assert_eq!(
        rpc_type::<StartTunnelWithLabel>(),
        stream_type::START_TUNNEL_WITH_LABEL
    );
    assert_eq!(rpc_type::<SrvInfo>(), stream_type::SRV_INFO);
    assert_eq!(
        rpc_type::<PatchTunnelState>(),
        stream_type::PATCH_TUNNEL_STATE
    );
    assert_eq!(command_type::<Restart>(), (stream_type::RESTART, true));
    assert_eq!(command_type::<Stop>(), (stream_type::STOP, true));
    assert_eq!(command_type::<Update>(), (stream_type::UPDATE, true));
    assert_eq!(
        command_type::<StopTunnel>(),
        (stream_type::STOP_TUNNEL, false)
    );
    // The response types are fixed by the trait: this only compiles if they match.
    let _: fn(<Bind as Rpc>::Response) -> BindResp = |r| r;
    let _: fn(<Auth as Rpc>::Response) -> AuthResp = |r| r;
    let _: fn(<Update as Command>::Response) -> CommandResp = |r| r;
}

// --- Proxy header ---------------------------------------------------------------------------

fn sample_header() -> ProxyHeader {
    ProxyHeader {
        id: "ep_1".into(),
        client_addr: "[2001:db8::1]:51234".into(),
        proto: "https".into(),
        edge_type: edge_type::UNDEFINED.into(),
        passthrough_tls: false,
    }
}

#[test]
fn proxy_header_has_all_five_keys() {
    let json = serde_json::to_value(ProxyHeader::default()).unwrap();
    assert_eq!(
        keys(&json),
        ["ClientAddr", "EdgeType", "Id", "PassthroughTLS", "Proto"]
    );
    assert!(json["EdgeType"].is_string());
    let tls = ProxyHeader {
        edge_type: edge_type::TLS.into(),
        passthrough_tls: true,
        ..sample_header()
    };
    let json = serde_json::to_value(&tls).unwrap();
    assert_eq!(json["EdgeType"], "2");
    assert_eq!(json["PassthroughTLS"], true);
}

#[test]
fn proxy_header_encode_decode() {
    let header = sample_header();
    let mut bytes = header.encode();
    let json = serde_json::to_vec(&header).unwrap();
    assert_eq!(bytes[..8], (json.len() as i64).to_le_bytes());
    assert_eq!(bytes[8..], json[..]);
    let header_len = bytes.len();
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
    for cut in 0..header_len {
        assert_eq!(
            ProxyHeader::decode(&bytes[..cut]).unwrap(),
            None,
            "cut {cut}"
        );
    }
    let (decoded, used) = ProxyHeader::decode(&bytes).unwrap().unwrap();
    assert_eq!(decoded, header);
    assert_eq!(used, header_len);
    assert_eq!(&bytes[used..], b"GET / HTTP/1.1\r\n");
}

#[test]
fn proxy_header_decode_bounds() {
    let negative = (-1i64).to_le_bytes();
    assert!(matches!(
        ProxyHeader::decode(&negative),
        Err(ProtoError::ProxyHeaderLength(-1))
    ));
    let too_big = ((MAX_PROXY_HEADER + 1) as i64).to_le_bytes();
    assert!(matches!(
        ProxyHeader::decode(&too_big),
        Err(ProtoError::ProxyHeaderLength(_))
    ));
    let mut at_limit = (MAX_PROXY_HEADER as i64).to_le_bytes().to_vec();
    assert_eq!(ProxyHeader::decode(&at_limit).unwrap(), None);
    at_limit.resize(8 + MAX_PROXY_HEADER, b' ');
    at_limit[8] = b'{';
    at_limit[8 + MAX_PROXY_HEADER - 1] = b'}';
    let (header, used) = ProxyHeader::decode(&at_limit).unwrap().unwrap();
    assert_eq!(
        (header, used),
        (ProxyHeader::default(), 8 + MAX_PROXY_HEADER)
    );
    let garbage = [&3i64.to_le_bytes()[..], b"{x}"].concat();
    assert!(matches!(
        ProxyHeader::decode(&garbage),
        Err(ProtoError::Json(_))
    ));
}

#[test]
fn proxy_header_decode_accepts_numeric_edge_type() {
    let json =
        br#"{"Id":"t","ClientAddr":"1.2.3.4:5","Proto":"tcp","EdgeType":1,"PassthroughTLS":false}"#;
    let bytes = [&(json.len() as i64).to_le_bytes()[..], json].concat();
    let (header, _) = ProxyHeader::decode(&bytes).unwrap().unwrap();
    assert_eq!(header.edge_type, edge_type::TCP);
}
