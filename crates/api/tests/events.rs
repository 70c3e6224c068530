//! Event export through the API: `/event_destinations`, `/event_subscriptions` and their
//! `sources` with the official `ngrok-api` client (ngrok's target kinds, errors, paging), raw
//! JSON for Warren's own targets and extensions (`delivery`, `requeue`), audit events reaching a
//! file destination, `/metrics`, `/event_stream`, `/usage`, and the heartbeat fields of
//! `/tunnel_sessions`. Runs on PostgreSQL too when `WARREN_TEST_DATABASE_URL` is set.

use std::time::Duration;

use futures::TryStreamExt;
use http::Method;
use ngrok_api::types::{
    AWSAuth, AWSCredentials, AWSRole, CredentialCreate, EventDestinationCreate,
    EventDestinationUpdate, EventSourceCreate, EventSourceItem, EventSourceReplace,
    EventSourceUpdate, EventSubscriptionCreate, EventSubscriptionUpdate, EventTarget,
    EventTargetAzureLogsIngestion, EventTargetCloudwatchLogs, EventTargetDatadog,
    EventTargetFirehose, EventTargetKinesis, FilteredPaging,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_testkit::{STEP_TIMEOUT, TestEdge, api_error_code};

/// `method path` with a raw JSON body; the status and the JSON reply.
async fn raw(edge: &TestEdge, method: Method, path: &str, body: &str) -> (u16, Value) {
    let (status, json) = edge.api_request(method, path, body).await;
    (status.as_u16(), json)
}

fn firehose() -> EventTarget {
    EventTarget {
        firehose: Some(EventTargetFirehose {
            auth: AWSAuth {
                role: Some(AWSRole {
                    role_arn: "arn:aws:iam::123456789012:role/warren".into(),
                }),
                creds: None,
            },
            delivery_stream_arn: "arn:aws:firehose:us-east-1:123456789012:deliverystream/w".into(),
        }),
        ..Default::default()
    }
}

fn kinesis() -> EventTarget {
    EventTarget {
        kinesis: Some(EventTargetKinesis {
            auth: AWSAuth {
                role: None,
                creds: Some(AWSCredentials {
                    aws_access_key_id: "AKIAEXAMPLE".into(),
                    aws_secret_access_key: Some("very-secret".into()),
                }),
            },
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/w".into(),
        }),
        ..Default::default()
    }
}

fn cloudwatch() -> EventTarget {
    EventTarget {
        cloudwatch_logs: Some(EventTargetCloudwatchLogs {
            auth: AWSAuth {
                role: Some(AWSRole {
                    role_arn: "arn:aws:iam::123456789012:role/warren".into(),
                }),
                creds: None,
            },
            log_group_arn: "arn:aws:logs:us-east-1:123456789012:log-group:w".into(),
        }),
        ..Default::default()
    }
}

fn datadog() -> EventTarget {
    EventTarget {
        datadog: Some(EventTargetDatadog {
            api_key: Some("dd-secret".into()),
            ddtags: Some("env:test".into()),
            service: Some("warren".into()),
            ddsite: Some("datadoghq.com".into()),
        }),
        ..Default::default()
    }
}

fn azure() -> EventTarget {
    EventTarget {
        azure_logs_ingestion: Some(EventTargetAzureLogsIngestion {
            tenant_id: "tenant".into(),
            client_id: "client".into(),
            client_secret: "azure-secret".into(),
            logs_ingestion_uri: "https://example.ingest.monitor.azure.com".into(),
            data_collection_rule_id: "dcr-1".into(),
            data_collection_stream_name: "Custom-Warren".into(),
        }),
        ..Default::default()
    }
}

const CLOUD_KEYS: [&str; 5] = [
    "firehose",
    "kinesis",
    "cloudwatch_logs",
    "datadog",
    "azure_logs_ingestion",
];

/// Shuts the server down before the test's store is dropped: delivery may be inside a
/// transaction, which must finish before a PostgreSQL schema can be dropped.
async fn finish(edge: TestEdge) {
    edge.server.shutdown().await;
}

/// A `file` destination writing to `path`; returns its id.
async fn file_destination(edge: &TestEdge, path: &std::path::Path) -> String {
    let body = json!({"format": "json", "target": {"file": {"path": path}}});
    let (status, created) = raw(edge, Method::POST, "/event_destinations", &body.to_string()).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn destinations_of_every_ngrok_kind() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let mut ids = Vec::new();
    for (kind, target) in [
        ("firehose", firehose()),
        ("kinesis", kinesis()),
        ("cloudwatch_logs", cloudwatch()),
        ("datadog", datadog()),
        ("azure_logs_ingestion", azure()),
    ] {
        let created = api
            .event_destinations()
            .create(&EventDestinationCreate {
                description: format!("to {kind}"),
                metadata: "{\"team\":\"ops\"}".into(),
                format: "JSON".into(),
                target,
            })
            .await
            .unwrap();
        assert!(created.id.starts_with("ed_"), "{}", created.id);
        assert_eq!(created.format, "json", "stored lowercase");
        assert_eq!(
            created.uri,
            format!("{}/event_destinations/{}", edge.api_url(), created.id)
        );
        let (status, shown) = raw(
            &edge,
            Method::GET,
            &format!("/event_destinations/{}", created.id),
            "",
        )
        .await;
        assert_eq!(status, 200);
        for key in CLOUD_KEYS {
            assert!(
                shown["target"].as_object().unwrap().contains_key(key),
                "{kind}: {shown}"
            );
            assert_eq!(
                shown["target"][key].is_null(),
                key != kind,
                "{kind}: {shown}"
            );
        }
        let text = shown.to_string();
        for secret in ["very-secret", "dd-secret", "azure-secret"] {
            assert!(!text.contains(secret), "a secret is shown: {text}");
        }
        assert_eq!(shown["delivery"]["delivered"], false, "{shown}");
        ids.push(created.id);
    }

    // Update, get.
    let updated = api
        .event_destinations()
        .update(&EventDestinationUpdate {
            id: ids[0].clone(),
            description: Some("renamed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.description, "renamed");
    assert!(updated.target.firehose.is_some(), "target unchanged");
    let updated = api
        .event_destinations()
        .update(&EventDestinationUpdate {
            id: ids[0].clone(),
            target: Some(cloudwatch()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(updated.target.firehose.is_none());
    assert!(updated.target.cloudwatch_logs.is_some());
    assert_eq!(
        api.event_destinations().get(&ids[1]).await.unwrap().id,
        ids[1]
    );

    // Paging: newest first, two per page.
    let listed: Vec<String> = api
        .event_destinations()
        .list(FilteredPaging {
            limit: Some("2".into()),
            ..Default::default()
        })
        .event_destinations()
        .await
        .map_ok(|d| d.id)
        .try_collect()
        .await
        .unwrap();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let (_, page) = raw(&edge, Method::GET, "/event_destinations?limit=2", "").await;
    assert_eq!(page["event_destinations"].as_array().unwrap().len(), 2);
    assert!(page["next_page_uri"].is_string(), "{page}");

    // Delete.
    for id in &ids {
        api.event_destinations().delete(id).await.unwrap();
    }
    assert_eq!(
        api_error_code(api.event_destinations().get(&ids[0]).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    let (status, _) = raw(&edge, Method::GET, "/event_destinations/cr_1", "").await;
    assert_eq!(status, 400, "wrong prefix");
}

#[tokio::test]
async fn destination_errors() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let create = |format: &str, target: EventTarget| EventDestinationCreate {
        format: format.into(),
        target,
        ..Default::default()
    };
    let code = |r: Result<ngrok_api::types::EventDestination, ngrok_api::Error>| {
        api_error_code(r.unwrap_err())
    };
    let dests = api.event_destinations();
    assert_eq!(
        code(dests.create(&create("xml", firehose())).await),
        "ERR_NGROK_235"
    );
    assert_eq!(
        code(dests.create(&create("json", EventTarget::default())).await),
        "ERR_NGROK_236"
    );
    let mut two = firehose();
    two.datadog = datadog().datadog;
    assert_eq!(
        code(dests.create(&create("json", two)).await),
        "ERR_NGROK_236"
    );
    let mut neither = kinesis();
    neither.kinesis.as_mut().unwrap().auth = AWSAuth::default();
    assert_eq!(
        code(dests.create(&create("json", neither)).await),
        "ERR_NGROK_5107"
    );
    // An `auth` that is not an object, and one with an unknown field.
    for auth in [
        json!("role"),
        json!({"role": {"role_arn": "arn:x"}, "x": 1}),
    ] {
        let body =
            json!({"format": "json", "target": {"kinesis": {"auth": auth, "stream_arn": "arn:s"}}});
        let (status, err) = raw(
            &edge,
            Method::POST,
            "/event_destinations",
            &body.to_string(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(err["error_code"], "ERR_NGROK_240", "{err}");
    }
    let (status, err) = raw(
        &edge,
        Method::POST,
        "/event_destinations",
        r#"{"format":"json","target":{"file":{"path":"/tmp/x"}},"extra":1}"#,
    )
    .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("ERR_NGROK_214"))
    );
    // Nothing was created.
    let (_, list) = raw(&edge, Method::GET, "/event_destinations", "").await;
    assert_eq!(list["event_destinations"], json!([]));
}

#[tokio::test]
async fn warren_targets_and_delivery_state() {
    let edge = TestEdge::start_api().await;
    let dir = tempfile::tempdir().unwrap();
    for target in [
        json!({"http": {"url": "http://127.0.0.1:9/hook", "secret": "hook-secret"}}),
        json!({"file": {"path": dir.path().join("events.jsonl")}}),
        json!({"nats": {"url": "nats://127.0.0.1:4222", "subject": "warren.events"}}),
    ] {
        let kind = target.as_object().unwrap().keys().next().unwrap().clone();
        let body = json!({"format": "json", "target": target, "description": kind});
        let (status, created) = raw(
            &edge,
            Method::POST,
            "/event_destinations",
            &body.to_string(),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert!(!created.to_string().contains("hook-secret"), "{created}");
        for key in CLOUD_KEYS {
            assert!(created["target"][key].is_null(), "{created}");
        }
        assert!(created["target"][&kind].is_object(), "{created}");
        let delivery = &created["delivery"];
        assert_eq!(delivery["delivered"], true, "{created}");
        assert_eq!(delivery["pending"], 0);
        assert_eq!(delivery["parked"], 0);
        assert!(delivery["oldest_pending_at"].is_null());
        assert_eq!(delivery["last_error"], "");
        let id = created["id"].as_str().unwrap();
        let (status, requeued) = raw(
            &edge,
            Method::POST,
            &format!("/event_destinations/{id}/requeue"),
            "",
        )
        .await;
        assert_eq!((status, requeued), (200, json!({"requeued": 0})));
    }
    let (status, err) = raw(
        &edge,
        Method::POST,
        "/event_destinations",
        r#"{"format":"json","target":{"http":{"url":"not a url","secret":"s"}}}"#,
    )
    .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("ERR_NGROK_236"))
    );
    let (status, _) = raw(
        &edge,
        Method::POST,
        "/event_destinations/ed_2ZtG0eUkU4FJmHzRCTP4TgbBqfZ/requeue",
        "",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_and_sources() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let dir = tempfile::tempdir().unwrap();
    let dest = file_destination(&edge, &dir.path().join("a.jsonl")).await;
    let other = file_destination(&edge, &dir.path().join("b.jsonl")).await;

    let sub = api
        .event_subscriptions()
        .create(&EventSubscriptionCreate {
            description: "fleet".into(),
            metadata: "{}".into(),
            sources: vec![
                EventSourceReplace {
                    r#type: "agent_session_start.v0".into(),
                },
                EventSourceReplace {
                    r#type: "agent_session_stop.v0".into(),
                },
            ],
            destination_ids: vec![dest.clone()],
        })
        .await
        .unwrap();
    assert!(sub.id.starts_with("esb_"), "{}", sub.id);
    assert_eq!(sub.sources.len(), 2);
    assert_eq!(
        sub.sources[0].uri,
        format!(
            "{}/event_subscriptions/{}/sources/agent_session_start.v0",
            edge.api_url(),
            sub.id
        )
    );
    assert_eq!(sub.destinations.len(), 1);
    assert_eq!(sub.destinations[0].id, dest);
    assert_eq!(
        sub.destinations[0].uri,
        format!("{}/event_destinations/{dest}", edge.api_url())
    );

    // Update: lists replace.
    let updated = api
        .event_subscriptions()
        .update(&EventSubscriptionUpdate {
            id: sub.id.clone(),
            destination_ids: Some(vec![dest.clone(), other.clone()]),
            sources: Some(vec![EventSourceReplace {
                r#type: "tunnel_credential_created.v0".into(),
            }]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.destinations.len(), 2);
    assert_eq!(updated.sources.len(), 1);
    assert_eq!(updated.description, "fleet", "unchanged");

    // The sources sub-resource.
    let sources = api.event_sources();
    let added = sources
        .create(&EventSourceCreate {
            subscription_id: sub.id.clone(),
            r#type: "ip_policy_created.v0".into(),
        })
        .await
        .unwrap();
    assert_eq!(added.r#type, "ip_policy_created.v0");
    let listed = sources.list(&sub.id).await.unwrap();
    assert_eq!(
        listed
            .sources
            .iter()
            .map(|s| s.r#type.as_str())
            .collect::<Vec<_>>(),
        ["tunnel_credential_created.v0", "ip_policy_created.v0"]
    );
    assert_eq!(
        listed.uri,
        format!("{}/event_subscriptions/{}/sources", edge.api_url(), sub.id)
    );
    let item = EventSourceItem {
        subscription_id: sub.id.clone(),
        r#type: "ip_policy_created.v0".into(),
    };
    assert_eq!(sources.get(&item).await.unwrap().uri, added.uri);
    let patched = sources
        .update(&EventSourceUpdate {
            subscription_id: sub.id.clone(),
            r#type: "ip_policy_created.v0".into(),
        })
        .await
        .unwrap();
    assert_eq!(patched.uri, added.uri);
    let (status, body) = raw(
        &edge,
        Method::PATCH,
        &format!(
            "/event_subscriptions/{}/sources/ip_policy_created.v0",
            sub.id
        ),
        "{}",
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (200, Some("ip_policy_created.v0"))
    );
    sources.delete(&item).await.unwrap();
    assert_eq!(
        api_error_code(sources.get(&item).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    assert_eq!(
        api_error_code(sources.delete(&item).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    assert_eq!(
        api_error_code(
            sources
                .create(&EventSourceCreate {
                    subscription_id: sub.id.clone(),
                    r#type: "nope.v0".into(),
                })
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_238"
    );
    let got = api.event_subscriptions().get(&sub.id).await.unwrap();
    assert_eq!(got.sources.len(), 1);

    // Errors on create.
    let bad = |body: Value| {
        let edge = &edge;
        async move {
            let (status, err) = raw(
                edge,
                Method::POST,
                "/event_subscriptions",
                &body.to_string(),
            )
            .await;
            assert_eq!(status, 400, "{err}");
            err
        }
    };
    let err = bad(json!({"sources": [{"type": "agent_session_begin.v0"}]})).await;
    assert_eq!(err["error_code"], "ERR_NGROK_238");
    let err = bad(json!({"sources": [{"type": "agent_session_start.v0", "filter": "x"}]})).await;
    assert_eq!(err["error_code"], "ERR_NGROK_239");
    let missing = "ed_2ZtG0eUkU4FJmHzRCTP4TgbBqfZ";
    let err = bad(json!({"sources": [], "destination_ids": [missing]})).await;
    assert_eq!(err["error_code"], "ERR_NGROK_223");
    assert!(err["msg"].as_str().unwrap().contains(missing), "{err}");

    // A destination in use cannot be deleted.
    let refused = api.event_destinations().delete(&dest).await.unwrap_err();
    assert_eq!(api_error_code(refused), "ERR_NGROK_409");

    // Paging over subscriptions.
    for n in 0..3 {
        api.event_subscriptions()
            .create(&EventSubscriptionCreate {
                description: format!("extra {n}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let all: Vec<String> = api
        .event_subscriptions()
        .list(FilteredPaging {
            limit: Some("2".into()),
            ..Default::default()
        })
        .event_subscriptions()
        .await
        .map_ok(|s| s.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all.last(), Some(&sub.id), "newest first");

    api.event_subscriptions().delete(&sub.id).await.unwrap();
    api.event_destinations().delete(&dest).await.unwrap();
    assert_eq!(
        api_error_code(api.event_subscriptions().get(&sub.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    finish(edge).await;
}

/// Lines of the file at `path` as JSON, once `check` holds for them (bounded).
async fn wait_for_lines(path: &std::path::Path, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if check(&lines) {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {}: {text}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_reach_a_file_destination() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let dest = file_destination(&edge, &path).await;
    api.event_subscriptions()
        .create(&EventSubscriptionCreate {
            sources: vec![
                EventSourceReplace {
                    r#type: "tunnel_credential_created.v0".into(),
                },
                EventSourceReplace {
                    r#type: "tunnel_credential_deleted.v0".into(),
                },
            ],
            destination_ids: vec![dest],
            ..Default::default()
        })
        .await
        .unwrap();
    let key_id = api
        .api_keys()
        .list(FilteredPaging::default())
        .keys()
        .await
        .map_ok(|k| k.id)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .pop()
        .unwrap();

    let credential = api
        .credentials()
        .create(&CredentialCreate {
            description: "audited".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = credential.token.clone().unwrap();
    api.credentials().delete(&credential.id).await.unwrap();

    let types = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["event_type"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let lines = wait_for_lines(&path, |lines| types(lines).len() >= 2).await;
    assert_eq!(
        types(&lines),
        [
            "tunnel_credential_created.v0",
            "tunnel_credential_deleted.v0"
        ]
    );
    for line in &lines {
        assert!(
            line["event_id"].as_str().unwrap().starts_with("ev_"),
            "{line}"
        );
        assert_eq!(line["principal"]["source"], "API");
        assert_eq!(line["principal"]["credential"]["id"], key_id.as_str());
        assert_eq!(line["object"]["id"], credential.id.as_str());
        assert_eq!(line["object"]["description"], "audited");
        assert!(line["object"]["token"].is_null(), "{line}");
        assert!(
            !line.to_string().contains(&token),
            "the token leaked: {line}"
        );
    }
    finish(edge).await;
}

#[tokio::test]
async fn metrics_are_served_without_authentication() {
    let edge = TestEdge::start_api().await;
    let req = http::Request::builder()
        .uri("/metrics")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = warren_testkit::client::HttpVisitor::plain(edge.server.api_addr)
        .send("localhost", req)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-type"],
        warren_api::OPENMETRICS_CONTENT_TYPE
    );
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.contains("warren_agents_online"), "{text}");
}

/// Reads from `stream` until `buf` contains `needle` (bounded); returns everything read.
async fn read_until(stream: &mut tokio::net::TcpStream, buf: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let mut chunk = [0u8; 8192];
    while !buf.contains(needle) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {buf}"))
            .unwrap();
        assert!(n > 0, "stream closed before {needle:?}; got {buf}");
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_delivers_live_events() {
    let edge = TestEdge::start_api().await;
    let (status, err) = raw(&edge, Method::GET, "/event_stream?types=bogus.v0", "").await;
    assert_eq!(status, 400);
    assert!(err["msg"].as_str().unwrap().contains("bogus.v0"), "{err}");

    let mut stream = tokio::net::TcpStream::connect(edge.server.api_addr)
        .await
        .unwrap();
    let request = format!(
        "GET /event_stream?types=tunnel_credential_created.v0 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nNgrok-Version: 2\r\n\r\n",
        edge.api_key
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = String::new();
    read_until(&mut stream, &mut buf, ": keepalive").await;
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    assert!(
        buf.to_ascii_lowercase().contains("text/event-stream"),
        "{buf}"
    );

    // A filtered-out type first, then the one asked for.
    edge.api()
        .ip_policies()
        .create(&Default::default())
        .await
        .unwrap();
    let credential = edge
        .api()
        .credentials()
        .create(&CredentialCreate::default())
        .await
        .unwrap();
    let marker = "event: tunnel_credential_created.v0\n";
    read_until(&mut stream, &mut buf, marker).await;
    let start = buf.find(marker).unwrap();
    let mut tail = buf[start..].to_owned();
    read_until(&mut stream, &mut tail, "\n\n").await;
    buf.push_str(&tail[buf.len() - start..]);
    let frame = &tail[..tail.find("\n\n").unwrap()];
    let data = frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let envelope: Value = serde_json::from_str(data).unwrap();
    assert_eq!(envelope["event_type"], "tunnel_credential_created.v0");
    assert_eq!(envelope["object"]["id"], credential.id.as_str());
    let id_line = frame.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
    assert_eq!(id_line, envelope["event_id"].as_str().unwrap());
    assert!(!buf.contains("ip_policy_created"), "filtered out: {buf}");
}

#[tokio::test]
async fn usage_validates_its_range_and_starts_empty() {
    let edge = TestEdge::start_api().await;
    let (status, usage) = raw(&edge, Method::GET, "/usage", "").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["endpoints"], json!([]));
    assert_eq!(usage["credentials"], json!([]));
    assert_eq!(
        usage["totals"],
        json!({"active_endpoint_hours": 0, "bytes_in": 0, "bytes_out": 0, "requests": 0, "connections": 0})
    );
    assert!(
        usage["start"].as_str().unwrap().ends_with("-01T00:00:00Z"),
        "{usage}"
    );
    assert_eq!(usage["uri"], format!("{}/usage", edge.api_url()));
    let (status, usage) = raw(
        &edge,
        Method::GET,
        "/usage?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z&credential_id=cr_x&endpoint=https://a.example.com",
        "",
    )
    .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["start"], "2026-01-01T00:00:00Z");
    for (query, code) in [
        ("start=yesterday", "ERR_NGROK_215"),
        (
            "start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            "ERR_NGROK_215",
        ),
        (
            "start=2026-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
            "ERR_NGROK_215",
        ),
        (
            "start=2024-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
            "ERR_NGROK_215",
        ),
        ("month=1", "ERR_NGROK_231"),
    ] {
        let (status, err) = raw(&edge, Method::GET, &format!("/usage?{query}"), "").await;
        assert_eq!(
            (status, err["error_code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_sessions_show_heartbeats() {
    let edge = TestEdge::start_api().await;
    let _session = edge.agent(&edge.authtoken).await.unwrap();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let (status, list) = raw(&edge, Method::GET, "/tunnel_sessions", "").await;
        assert_eq!(status, 200);
        let session = &list["tunnel_sessions"][0];
        assert!(
            session
                .as_object()
                .unwrap()
                .contains_key("last_heartbeat_at"),
            "{session}"
        );
        assert!(
            session.as_object().unwrap().contains_key("latency_ms"),
            "{session}"
        );
        if session["last_heartbeat_at"].is_string() {
            assert!(session["latency_ms"].as_f64().unwrap() >= 0.0, "{session}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeat shown: {session}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_root_lists_the_new_collections() {
    let edge = TestEdge::start_api().await;
    let (status, root) = raw(&edge, Method::GET, "/", "").await;
    assert_eq!(status, 200);
    for c in ["event_destinations", "event_subscriptions", "usage"] {
        assert_eq!(
            root["subresource_uris"][c],
            format!("{}/{c}", edge.api_url()),
            "{root}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_change_is_an_audit_event() {
    let range = warren_testkit::free_port_range(2);
    let edge = TestEdge::start_api_with(|c| c.edge.tcp_ports = range).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let dest = file_destination(&edge, &path).await;
    let all_audit: Vec<Value> = warren_events::types::AUDIT_STEMS
        .iter()
        .flat_map(|stem| {
            ["created", "updated", "deleted"].map(|a| json!({"type": format!("{stem}_{a}.v0")}))
        })
        .collect();
    let body = json!({"sources": all_audit, "destination_ids": [dest]});
    let (status, sub) = raw(
        &edge,
        Method::POST,
        "/event_subscriptions",
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    let (_, policy) = raw(&edge, Method::POST, "/ip_policies", "{}").await;
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    let (_, second) = raw(
        &edge,
        Method::POST,
        "/event_destinations",
        &json!({"format": "json", "target": {"file": {"path": dir.path().join("x.jsonl")}}})
            .to_string(),
    )
    .await;
    let cases = [
        (
            "service_users",
            json!({"name": "audited user"}),
            "service_user",
        ),
        (
            "credentials",
            json!({"description": "c"}),
            "tunnel_credential",
        ),
        ("api_keys", json!({"description": "k"}), "api_key"),
        (
            "reserved_domains",
            json!({"domain": "audit.example.com"}),
            "domain",
        ),
        ("reserved_addrs", json!({"description": "a"}), "tcp_address"),
        ("ip_policies", json!({}), "ip_policy"),
        (
            "ip_policy_rules",
            json!({"ip_policy_id": policy_id, "cidr": "10.0.0.0/8", "action": "allow"}),
            "ip_policy_rule",
        ),
        (
            "ip_restrictions",
            json!({"type": "dashboard", "ip_policy_ids": [policy_id]}),
            "ip_restriction",
        ),
        (
            "event_subscriptions",
            json!({"description": "s"}),
            "event_subscription",
        ),
    ];
    for (collection, create, _) in &cases {
        let (status, created) = raw(
            &edge,
            Method::POST,
            &format!("/{collection}"),
            &create.to_string(),
        )
        .await;
        assert_eq!(status, 201, "{collection}: {created}");
        let item = format!("/{collection}/{}", created["id"].as_str().unwrap());
        let update = if *collection == "service_users" {
            json!({"name": "renamed user"})
        } else {
            json!({"description": "changed"})
        };
        let (status, updated) = raw(&edge, Method::PATCH, &item, &update.to_string()).await;
        assert_eq!(status, 200, "{collection}: {updated}");
        let (status, _) = raw(&edge, Method::DELETE, &item, "").await;
        assert_eq!(status, 204, "{collection}");
    }
    let second_item = format!("/event_destinations/{}", second["id"].as_str().unwrap());
    raw(&edge, Method::PATCH, &second_item, r#"{"description":"d"}"#).await;
    raw(&edge, Method::DELETE, &second_item, "").await;
    let (status, _) = raw(
        &edge,
        Method::POST,
        &format!("/event_subscriptions/{sub_id}/sources"),
        r#"{"type":"agent_session_start.v0"}"#,
    )
    .await;
    assert_eq!(status, 201);

    let mut expected: Vec<String> = cases
        .iter()
        .map(|c| c.2)
        .chain(["event_destination"])
        .flat_map(|stem| ["created", "updated", "deleted"].map(|a| format!("{stem}_{a}.v0")))
        .collect();
    expected.push("event_subscription_updated.v0".into());
    let seen = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["event_type"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let lines = wait_for_lines(&path, |lines| {
        let seen = seen(lines);
        expected.iter().all(|e| seen.contains(e))
            && lines.iter().any(|l| {
                l["event_type"] == "event_subscription_updated.v0"
                    && l["object"]["id"] == sub_id.as_str()
            })
    })
    .await;
    for line in &lines {
        assert!(
            line["principal"]["credential"]["id"]
                .as_str()
                .unwrap()
                .starts_with("ak_")
        );
        let object = line["object"].as_object().unwrap();
        assert!(object["id"].is_string(), "{line}");
        assert!(
            object.get("token").is_none_or(Value::is_null),
            "a token in an audit event: {line}"
        );
        assert!(object.get("delivery").is_none(), "{line}");
    }
    let source_added = lines
        .iter()
        .find(|l| {
            l["event_type"] == "event_subscription_updated.v0"
                && l["object"]["id"] == sub_id.as_str()
        })
        .unwrap();
    assert!(
        source_added["object"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "agent_session_start.v0"),
        "{source_added}"
    );
    finish(edge).await;
}

#[tokio::test]
async fn usage_counts_active_endpoint_hours() {
    use warren_store::usage::UsageHour;
    let edge = TestEdge::start_api().await;
    let hour = |h: i64| 1_767_225_600 + h * 3600; // 2026-01-01T00:00:00Z + h hours
    let row = |h: i64, endpoint: &str, credential: &str, bytes_out: u64| UsageHour {
        hour: hour(h),
        endpoint: endpoint.into(),
        credential_id: credential.into(),
        bytes_in: 10,
        bytes_out,
        requests: 1,
        connections: 1,
    };
    edge.server
        .edge()
        .store()
        .add_usage(&[
            row(0, "https://a.example.com", "cr_1", 100),
            row(0, "https://a.example.com", "cr_2", 50),
            row(1, "https://a.example.com", "cr_1", 0),
            row(2, "tcp://example.com:20000", "cr_1", 7),
            row(30, "https://a.example.com", "cr_1", 5),
        ])
        .await
        .unwrap();
    // 00:30 to 02:10 widens to 00:00-03:00: hours 0, 1 and 2.
    let (status, usage) = raw(
        &edge,
        Method::GET,
        "/usage?start=2026-01-01T00:30:00Z&end=2026-01-01T02:10:00Z",
        "",
    )
    .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        usage["endpoints"],
        json!([
            {"endpoint": "https://a.example.com", "credential_id": "cr_1", "active_hours": 1,
             "bytes_in": 20, "bytes_out": 100, "requests": 2, "connections": 2},
            {"endpoint": "https://a.example.com", "credential_id": "cr_2", "active_hours": 1,
             "bytes_in": 10, "bytes_out": 50, "requests": 1, "connections": 1},
            {"endpoint": "tcp://example.com:20000", "credential_id": "cr_1", "active_hours": 1,
             "bytes_in": 10, "bytes_out": 7, "requests": 1, "connections": 1},
        ])
    );
    assert_eq!(usage["credentials"][0]["credential_id"], "cr_1");
    assert_eq!(usage["credentials"][0]["active_endpoint_hours"], 2);
    assert_eq!(usage["credentials"][1]["active_endpoint_hours"], 1);
    assert_eq!(usage["totals"]["active_endpoint_hours"], 2, "{usage}");
    assert_eq!(usage["totals"]["bytes_out"], 157);

    let (_, filtered) = raw(
        &edge,
        Method::GET,
        "/usage?start=2026-01-01T00:00:00Z&end=2026-01-03T00:00:00Z&credential_id=cr_1&endpoint=https://a.example.com",
        "",
    )
    .await;
    assert_eq!(
        filtered["endpoints"].as_array().unwrap().len(),
        1,
        "{filtered}"
    );
    assert_eq!(filtered["endpoints"][0]["active_hours"], 2, "{filtered}");
    assert_eq!(filtered["totals"]["active_endpoint_hours"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited() {
    let edge = TestEdge::start_api().await;
    let request = format!(
        "GET /event_stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nNgrok-Version: 2\r\n\r\n",
        edge.api_key
    );
    let mut open = Vec::new();
    for _ in 0..warren_api::resources::event_stream::MAX_STREAMS {
        let mut stream = tokio::net::TcpStream::connect(edge.server.api_addr)
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = String::new();
        read_until(&mut stream, &mut buf, ": keepalive").await;
        open.push(stream);
    }
    let (status, err) = raw(&edge, Method::GET, "/event_stream", "").await;
    assert_eq!(status, 429, "{err}");
    assert_eq!(err["error_code"], "ERR_NGROK_90201");
    // Closing one frees its place.
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let mut stream = tokio::net::TcpStream::connect(edge.server.api_addr)
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = String::new();
        read_until(&mut stream, &mut buf, "\r\n\r\n").await;
        if buf.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no place freed: {buf}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
