//! `Target::parse`, `to_json` and `to_stored_json`: every kind, every error code.

use serde_json::{Value, json};
use warren_events::Target;

fn code(v: Value) -> &'static str {
    match Target::parse(&v) {
        Ok(t) => panic!("accepted {v}: {t:?}"),
        Err(e) => {
            assert!(!e.msg.is_empty());
            e.code
        }
    }
}

fn ok(v: Value) -> Target {
    Target::parse(&v).unwrap_or_else(|e| panic!("refused {v}: {} {}", e.code, e.msg))
}

#[test]
fn exactly_one_kind() {
    assert_eq!(code(json!({})), "ERR_NGROK_236");
    assert_eq!(code(json!("http")), "ERR_NGROK_236");
    assert_eq!(code(json!({"http": null, "file": null})), "ERR_NGROK_236");
    assert_eq!(
        code(json!({"http": {"url": "http://a"}, "file": {"path": "/tmp/x"}})),
        "ERR_NGROK_236"
    );
    assert_eq!(code(json!({"s3": {"bucket_arn": "x"}})), "ERR_NGROK_236");
    // Null siblings are ignored: the API's own response shape parses.
    let t = ok(json!({"firehose": null, "kinesis": null, "http": {"url": "https://h.example/x"}}));
    assert_eq!(t.kind(), "http");
}

#[test]
fn aws_kinds() {
    let role = json!({"role": {"role_arn": "arn:aws:iam::1:role/r"}});
    let t = ok(json!({"firehose": {"auth": role, "delivery_stream_arn": "arn:s"}}));
    assert!(!t.is_delivered());
    ok(json!({"kinesis": {"auth": role, "stream_arn": "arn:k"}}));
    ok(json!({"cloudwatch_logs": {"auth": role, "log_group_arn": "arn:l"}}));
    assert_eq!(code(json!({"firehose": {"auth": role}})), "ERR_NGROK_236");
    assert_eq!(
        code(json!({"kinesis": {"auth": role, "stream_arn": ""}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"kinesis": {"stream_arn": "arn:k"}})),
        "ERR_NGROK_5107"
    );
    assert_eq!(
        code(json!({"kinesis": {"auth": role, "stream_arn": "a", "extra": 1}})),
        "ERR_NGROK_236"
    );
    // Neither or both of role/creds.
    assert_eq!(
        code(json!({"kinesis": {"auth": {"role": null, "creds": null}, "stream_arn": "a"}})),
        "ERR_NGROK_5107"
    );
    assert_eq!(
        code(json!({"kinesis": {"auth": {}, "stream_arn": "a"}})),
        "ERR_NGROK_5107"
    );
    let both = json!({"role": {"role_arn": "r"}, "creds": {"aws_access_key_id": "i", "aws_secret_access_key": "s"}});
    assert_eq!(
        code(json!({"kinesis": {"auth": both, "stream_arn": "a"}})),
        "ERR_NGROK_5107"
    );
    // Malformed auth.
    assert_eq!(
        code(json!({"kinesis": {"auth": "x", "stream_arn": "a"}})),
        "ERR_NGROK_240"
    );
    assert_eq!(
        code(json!({"kinesis": {"auth": {"role": {}}, "stream_arn": "a"}})),
        "ERR_NGROK_240"
    );
    assert_eq!(
        code(
            json!({"kinesis": {"auth": {"creds": {"aws_access_key_id": "i"}}, "stream_arn": "a"}})
        ),
        "ERR_NGROK_240"
    );
    assert_eq!(
        code(json!({"kinesis": {"auth": {"role": {"role_arn": "r", "x": 1}}, "stream_arn": "a"}})),
        "ERR_NGROK_240"
    );
    assert_eq!(
        code(
            json!({"kinesis": {"auth": {"role": {"role_arn": "r"}, "token": "t"}, "stream_arn": "a"}})
        ),
        "ERR_NGROK_240"
    );
}

#[test]
fn secrets_are_stored_but_never_shown() {
    let creds = json!({"creds": {"aws_access_key_id": "AKIA", "aws_secret_access_key": "hush"}});
    let t = ok(json!({"kinesis": {"auth": creds, "stream_arn": "arn:k"}}));
    let shown = t.to_json();
    assert_eq!(
        shown["kinesis"]["auth"]["creds"]["aws_secret_access_key"],
        ""
    );
    assert_eq!(
        shown["kinesis"]["auth"]["creds"]["aws_access_key_id"],
        "AKIA"
    );
    assert!(shown["kinesis"]["auth"]["role"].is_null());
    for k in [
        "firehose",
        "cloudwatch_logs",
        "datadog",
        "azure_logs_ingestion",
    ] {
        assert!(shown[k].is_null(), "{k}");
    }
    let stored = t.to_stored_json();
    assert_eq!(
        stored["kinesis"]["auth"]["creds"]["aws_secret_access_key"],
        "hush"
    );
    assert_eq!(Target::parse(&stored).unwrap(), t);

    let t = ok(json!({"datadog": {"api_key": "dd-key", "ddsite": "datadoghq.eu"}}));
    assert_eq!(t.to_json()["datadog"]["api_key"], "");
    assert_eq!(t.to_json()["datadog"]["ddsite"], "datadoghq.eu");
    assert_eq!(Target::parse(&t.to_stored_json()).unwrap(), t);

    let t = ok(json!({"http": {"url": "https://hooks.example/in", "secret": "whsec"}}));
    let shown = t.to_json();
    assert_eq!(shown["http"]["secret"], "");
    assert_eq!(shown["http"]["url"], "https://hooks.example/in");
    for k in [
        "firehose",
        "kinesis",
        "cloudwatch_logs",
        "datadog",
        "azure_logs_ingestion",
    ] {
        assert!(shown.get(k).is_some_and(Value::is_null), "{k}");
    }
    assert_eq!(Target::parse(&t.to_stored_json()).unwrap(), t);
    assert!(t.is_delivered());
}

#[test]
fn datadog_and_azure() {
    assert_eq!(code(json!({"datadog": {"ddsite": "x"}})), "ERR_NGROK_236");
    assert_eq!(code(json!({"datadog": {"api_key": 5}})), "ERR_NGROK_236");
    let azure = json!({
        "tenant_id": "t", "client_id": "c", "client_secret": "s",
        "logs_ingestion_uri": "https://x", "data_collection_rule_id": "d",
        "data_collection_stream_name": "n"
    });
    let t = ok(json!({"azure_logs_ingestion": azure}));
    assert_eq!(t.to_json()["azure_logs_ingestion"]["client_secret"], "");
    let mut missing = azure.clone();
    missing.as_object_mut().unwrap().remove("tenant_id");
    let err = Target::parse(&json!({"azure_logs_ingestion": missing})).unwrap_err();
    assert_eq!(err.code, "ERR_NGROK_236");
    assert!(err.msg.contains("tenant_id"), "{}", err.msg);
}

#[test]
fn http_targets() {
    let t = ok(json!({"http": {"url": "http://127.0.0.1:9/x"}}));
    assert_eq!(
        t,
        Target::Http {
            url: "http://127.0.0.1:9/x".into(),
            secret: String::new()
        }
    );
    for bad in ["", "ftp://x/", "/relative", "http://", "not a url"] {
        assert_eq!(
            code(json!({"http": {"url": bad}})),
            "ERR_NGROK_236",
            "{bad}"
        );
    }
    assert_eq!(code(json!({"http": {}})), "ERR_NGROK_236");
    assert_eq!(
        code(json!({"http": {"url": "https://u:p@h.example/"}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"http": {"url": "http://a", "secret": 1}})),
        "ERR_NGROK_236"
    );
    let err = Target::parse(&json!({"http": {"url": "http://a", "headers": {}}})).unwrap_err();
    assert_eq!(err.code, "ERR_NGROK_236");
    assert!(err.msg.contains("headers"), "{}", err.msg);
    let long = format!("http://a/{}", "x".repeat(5000));
    assert_eq!(code(json!({"http": {"url": long}})), "ERR_NGROK_236");
}

#[test]
fn file_targets() {
    let t = ok(json!({"file": {"path": "/var/log/warren/events.jsonl"}}));
    assert_eq!(
        t,
        Target::File {
            path: "/var/log/warren/events.jsonl".into(),
            max_bytes: 100 * 1024 * 1024,
            max_files: 5
        }
    );
    assert_eq!(t.to_json()["file"]["max_files"], 5);
    ok(json!({"file": {"path": "/x", "max_bytes": 4096, "max_files": 100}}));
    assert_eq!(
        code(json!({"file": {"path": "relative/x"}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"file": {"path": "/x", "max_bytes": 4095}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"file": {"path": "/x", "max_bytes": -1}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"file": {"path": "/x", "max_files": 0}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"file": {"path": "/x", "max_files": 101}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"file": {"path": "/x", "max_files": "5"}})),
        "ERR_NGROK_236"
    );
}

#[test]
fn nats_targets() {
    ok(json!({"nats": {"url": "nats://127.0.0.1:4222", "subject": "warren.events"}}));
    ok(json!({"nats": {"url": "tls://nats.example:4222", "subject": "w"}}));
    assert_eq!(
        code(json!({"nats": {"url": "http://a:4222", "subject": "w"}})),
        "ERR_NGROK_236"
    );
    assert_eq!(
        code(json!({"nats": {"url": "nats://a:4222"}})),
        "ERR_NGROK_236"
    );
    for bad in ["a b", "a.*", "a.>", "a..b", ".a", "a.", ""] {
        assert_eq!(
            code(json!({"nats": {"url": "nats://a:4222", "subject": bad}})),
            "ERR_NGROK_236",
            "{bad:?}"
        );
    }
}
