//! `/ip_policies`, `/ip_policy_rules` and `/ip_restrictions` through the official `ngrok-api`
//! client, and their enforcement: `agent` restrictions at agent Auth (ERR_NGROK_116, through the
//! official `ngrok` agent SDK), `endpoints` restrictions at the public HTTP port (403), and `api`
//! restrictions on this API (ERR_NGROK_220). Tests run from 127.0.0.1.

use futures::TryStreamExt;
use http::{Method, StatusCode};
use ngrok::Error as _;
use ngrok::prelude::*;
use ngrok_api::types::{
    FilteredPaging, IPPolicyCreate, IPPolicyRuleCreate, IPPolicyRuleUpdate, IPPolicyUpdate,
    IPRestrictionCreate, IPRestrictionUpdate,
};
use serde_json::Value;
use warren_testkit::{TestEdge, origin};

use warren_testkit::api_error_code as api_code;

/// `method path` on the API with a raw JSON body; returns the status and the JSON reply.
async fn raw(edge: &TestEdge, method: Method, path: &str, body: &str) -> (u16, Value) {
    let (status, json) = edge.api_request(method, path, body).await;
    (status.as_u16(), json)
}

/// A policy with one rule; returns the policy id.
async fn policy_with(edge: &TestEdge, cidr: &str, action: &str) -> String {
    let api = edge.api();
    let policy = api
        .ip_policies()
        .create(&IPPolicyCreate::default())
        .await
        .unwrap();
    api.ip_policy_rules()
        .create(&IPPolicyRuleCreate {
            cidr: cidr.into(),
            ip_policy_id: policy.id.clone(),
            action: Some(action.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    policy.id
}

/// An enforced restriction of `kind` over `policy`; returns its id.
async fn restrict(edge: &TestEdge, kind: &str, policy: &str) -> String {
    edge.api()
        .ip_restrictions()
        .create(&IPRestrictionCreate {
            enforced: true,
            r#type: kind.into(),
            ip_policy_ids: vec![policy.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn policies_rules_and_restrictions_crud() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();

    let policy = api
        .ip_policies()
        .create(&IPPolicyCreate {
            description: "offices".into(),
            metadata: "{\"x\":1}".into(),
        })
        .await
        .unwrap();
    assert!(policy.id.starts_with("ipp_"), "{}", policy.id);
    assert_eq!(
        policy.uri,
        format!("{}/ip_policies/{}", edge.api_url(), policy.id)
    );
    assert!(policy.created_at.ends_with('Z'));
    let updated = api
        .ip_policies()
        .update(&IPPolicyUpdate {
            id: policy.id.clone(),
            description: Some("all offices".into()),
            metadata: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("all offices", "{\"x\":1}")
    );
    assert_eq!(
        api.ip_policies().get(&policy.id).await.unwrap().description,
        "all offices"
    );

    let rule = api
        .ip_policy_rules()
        .create(&IPPolicyRuleCreate {
            description: "nyc office".into(),
            metadata: String::new(),
            cidr: "212.3.14.7/24".into(),
            ip_policy_id: policy.id.clone(),
            action: Some("allow".into()),
        })
        .await
        .unwrap();
    assert!(rule.id.starts_with("ipr_"), "{}", rule.id);
    assert_eq!(rule.cidr, "212.3.14.0/24", "host bits cleared");
    assert_eq!(rule.action, "allow");
    assert_eq!(rule.ip_policy.id, policy.id);
    assert_eq!(
        rule.ip_policy.uri,
        format!("{}/ip_policies/{}", edge.api_url(), policy.id)
    );
    let rule = api
        .ip_policy_rules()
        .update(&IPPolicyRuleUpdate {
            id: rule.id.clone(),
            cidr: Some("2001:db8::/32".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (rule.cidr.as_str(), rule.description.as_str()),
        ("2001:db8::/32", "nyc office")
    );

    let second = api
        .ip_policies()
        .create(&IPPolicyCreate::default())
        .await
        .unwrap();
    let restriction = api
        .ip_restrictions()
        .create(&IPRestrictionCreate {
            description: "dashboard".into(),
            metadata: String::new(),
            enforced: false,
            r#type: "dashboard".into(),
            ip_policy_ids: vec![policy.id.clone(), second.id.clone()],
        })
        .await
        .unwrap();
    assert!(restriction.id.starts_with("ipx_"), "{}", restriction.id);
    assert_eq!(restriction.r#type, "dashboard");
    assert!(!restriction.enforced);
    let names: Vec<&str> = restriction
        .ip_policies
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(names, [policy.id.as_str(), second.id.as_str()]);
    // An empty `ip_policy_ids` (the client always sends the field) leaves the policies alone.
    let changed = api
        .ip_restrictions()
        .update(&IPRestrictionUpdate {
            id: restriction.id.clone(),
            enforced: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(changed.enforced);
    assert_eq!(changed.ip_policies.len(), 2);
    let changed = api
        .ip_restrictions()
        .update(&IPRestrictionUpdate {
            id: restriction.id.clone(),
            ip_policy_ids: vec![second.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changed.ip_policies.len(), 1);
    assert_eq!(changed.ip_policies[0].id, second.id);
    assert!(changed.enforced, "untouched fields stay");

    // Raw bodies carry every field ngrok's types require; lists use ngrok's keys.
    let (status, raw_rule) = raw(
        &edge,
        Method::GET,
        &format!("/ip_policy_rules/{}", rule.id),
        "",
    )
    .await;
    assert_eq!(status, 200);
    for key in [
        "id",
        "uri",
        "created_at",
        "description",
        "metadata",
        "cidr",
        "ip_policy",
        "action",
    ] {
        assert!(raw_rule.get(key).is_some(), "missing {key}: {raw_rule}");
    }
    for (path, key) in [
        ("/ip_policies", "ip_policies"),
        ("/ip_policy_rules", "ip_policy_rules"),
        ("/ip_restrictions", "ip_restrictions"),
    ] {
        let (status, list) = raw(&edge, Method::GET, path, "").await;
        assert_eq!(status, 200);
        assert!(list[key].is_array(), "{path}: {list}");
        assert!(list["next_page_uri"].is_null());
    }
    let policies: Vec<String> = api
        .ip_policies()
        .list(FilteredPaging {
            limit: Some("1".into()),
            ..Default::default()
        })
        .ip_policies()
        .await
        .map_ok(|p| p.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        policies,
        [second.id.clone(), policy.id.clone()],
        "newest first"
    );
    let restrictions: Vec<_> = api
        .ip_restrictions()
        .list(FilteredPaging::default())
        .ip_restrictions()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(restrictions.len(), 1);
    let rules: Vec<_> = api
        .ip_policy_rules()
        .list(FilteredPaging::default())
        .ip_policy_rules()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rules.len(), 1);

    // A policy a restriction names cannot go; once it is free, it goes with its rules.
    assert_eq!(
        api_code(api.ip_policies().delete(&second.id).await.unwrap_err()),
        "ERR_NGROK_409"
    );
    api.ip_restrictions().delete(&restriction.id).await.unwrap();
    assert_eq!(
        api_code(
            api.ip_restrictions()
                .get(&restriction.id)
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_404"
    );
    api.ip_policies().delete(&second.id).await.unwrap();
    api.ip_policies().delete(&policy.id).await.unwrap();
    assert_eq!(
        api_code(api.ip_policy_rules().get(&rule.id).await.unwrap_err()),
        "ERR_NGROK_404",
        "rules go with their policy"
    );
    assert_eq!(
        api_code(api.ip_policies().delete(&policy.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
}

#[tokio::test]
async fn invalid_input_is_refused() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let policy = api
        .ip_policies()
        .create(&IPPolicyCreate::default())
        .await
        .unwrap();
    let rule = |cidr: &str, policy: &str, action: Option<&str>| IPPolicyRuleCreate {
        cidr: cidr.into(),
        ip_policy_id: policy.into(),
        action: action.map(str::to_owned),
        ..Default::default()
    };
    for (bad, code) in [
        (
            rule("10.0.0.0/33", &policy.id, Some("allow")),
            "ERR_NGROK_215",
        ),
        (rule("10.0.0.1", &policy.id, Some("allow")), "ERR_NGROK_215"),
        (rule("nope/8", &policy.id, Some("deny")), "ERR_NGROK_215"),
        (
            rule("10.0.0.0/8", &policy.id, Some("maybe")),
            "ERR_NGROK_215",
        ),
        (rule("10.0.0.0/8", &policy.id, None), "ERR_NGROK_215"),
        (
            rule(
                "10.0.0.0/8",
                "ipp_2ZtG0eUkU4FJmHzRCTP4TgbBqfZ",
                Some("deny"),
            ),
            "ERR_NGROK_223",
        ),
    ] {
        let err = api.ip_policy_rules().create(&bad).await.unwrap_err();
        assert_eq!(api_code(err), code, "{bad:?}");
    }
    let restriction = |kind: &str, ids: &[&str]| IPRestrictionCreate {
        r#type: kind.into(),
        ip_policy_ids: ids.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    for (bad, code) in [
        (restriction("bogus", &[&policy.id]), "ERR_NGROK_1803"),
        (restriction("agent", &[]), "ERR_NGROK_1804"),
        (
            restriction("agent", &["ipp_2ZtG0eUkU4FJmHzRCTP4TgbBqfZ"]),
            "ERR_NGROK_223",
        ),
    ] {
        let err = api.ip_restrictions().create(&bad).await.unwrap_err();
        assert_eq!(api_code(err), code, "{bad:?}");
    }
    assert_eq!(
        api_code(api.ip_policies().get("ipr_x").await.unwrap_err()),
        "ERR_NGROK_227"
    );
    let (status, body) = raw(
        &edge,
        Method::POST,
        "/ip_policy_rules",
        &format!(
            r#"{{"cidr":"10.0.0.0/8","ip_policy_id":"{}","action":"deny","bogus":1}}"#,
            policy.id
        ),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("ERR_NGROK_214"))
    );
    // The type cannot change.
    let (status, body) = raw(
        &edge,
        Method::PATCH,
        "/ip_restrictions/ipx_2ZtG0eUkU4FJmHzRCTP4TgbBqfZ",
        r#"{"type":"api"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("ERR_NGROK_214"))
    );
    // Nothing invalid was stored.
    let rules: Vec<_> = api
        .ip_policy_rules()
        .list(FilteredPaging::default())
        .ip_policy_rules()
        .await
        .try_collect()
        .await
        .unwrap();
    assert!(rules.is_empty(), "{rules:?}");
}

#[tokio::test]
async fn agent_restriction_refuses_auth_with_116() {
    let edge = TestEdge::start_api().await;
    let online = edge.agent(&edge.authtoken).await.unwrap();
    let policy = policy_with(&edge, "127.0.0.0/8", "deny").await;
    let restriction = restrict(&edge, "agent", &policy).await;
    // The agent already online from a refused address is disconnected.
    assert!(edge.server.edge().sessions().is_empty());
    drop(online);
    let err = edge.agent(&edge.authtoken).await.err().expect("refused");
    assert_eq!(err.error_code(), Some("ERR_NGROK_116"), "{err:?}");

    // Not enforced: only logged.
    edge.api()
        .ip_restrictions()
        .update(&IPRestrictionUpdate {
            id: restriction.clone(),
            enforced: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(edge.agent(&edge.authtoken).await.expect("warn only"));

    // An allow list that does not name the agent refuses it too.
    let elsewhere = policy_with(&edge, "10.0.0.0/8", "allow").await;
    let second = restrict(&edge, "agent", &elsewhere).await;
    let err = edge.agent(&edge.authtoken).await.err().expect("refused");
    assert_eq!(err.error_code(), Some("ERR_NGROK_116"), "{err:?}");

    edge.api().ip_restrictions().delete(&second).await.unwrap();
    edge.agent(&edge.authtoken)
        .await
        .expect("connects once the restriction is gone");
}

#[tokio::test]
async fn endpoints_restriction_refuses_visitors_with_403() {
    let edge = TestEdge::start_api().await;
    let origin = origin::http().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let _forward = session
        .http_endpoint()
        .domain("shop.example.com")
        .listen_and_forward(format!("http://{origin}").parse().unwrap())
        .await
        .unwrap();
    let get = || async { edge.http().get("shop.example.com", "/").await.unwrap() };
    assert_eq!(get().await.status, StatusCode::OK);

    let policy = policy_with(&edge, "127.0.0.1/32", "deny").await;
    let restriction = restrict(&edge, "endpoints", &policy).await;
    let refused = get().await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Agents and the API are other restriction types: unaffected.
    edge.api().ip_policies().get(&policy).await.unwrap();

    edge.api()
        .ip_restrictions()
        .delete(&restriction)
        .await
        .unwrap();
    assert_eq!(get().await.status, StatusCode::OK);
}

#[tokio::test]
async fn api_restriction_refuses_callers_with_220() {
    let edge = TestEdge::start_api().await;
    let policy = policy_with(&edge, "127.0.0.1/32", "deny").await;
    let restriction = restrict(&edge, "api", &policy).await;
    let err = edge.api().ip_policies().get(&policy).await.unwrap_err();
    assert_eq!(api_code(err), "ERR_NGROK_220");
    let (status, _) = raw(&edge, Method::GET, "/ip_restrictions", "").await;
    assert_eq!(status, 403);

    // Locked out of the API: lift the restriction through the store, as an operator would.
    let core = edge.server.edge();
    assert!(
        core.store()
            .delete_ip_restriction(&restriction)
            .await
            .unwrap()
    );
    core.reload_ip_restrictions().await.unwrap();
    edge.api().ip_policies().get(&policy).await.unwrap();
}

/// Sends `ping` over a new connection to `port`; returns what came back before the close.
async fn echo_through(port: u16) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let _ = tcp.write_all(b"ping").await;
    let mut got = vec![0u8; 4];
    match tokio::time::timeout(warren_testkit::STEP_TIMEOUT, tcp.read_exact(&mut got)).await {
        Ok(Ok(_)) => got,
        Ok(Err(_)) => Vec::new(),
        Err(_) => panic!("neither an echo nor a close"),
    }
}

#[tokio::test]
async fn endpoints_restriction_closes_tcp_visitors() {
    let edge = TestEdge::start_api().await;
    let echo = origin::tcp_echo().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let forward = session
        .tcp_endpoint()
        .listen_and_forward(format!("tcp://{echo}").parse().unwrap())
        .await
        .unwrap();
    let port: u16 = forward
        .url()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap();
    assert_eq!(echo_through(port).await, b"ping");

    let policy = policy_with(&edge, "10.0.0.0/8", "allow").await;
    let restriction = restrict(&edge, "endpoints", &policy).await;
    assert!(echo_through(port).await.is_empty(), "closed unanswered");

    edge.api()
        .ip_restrictions()
        .delete(&restriction)
        .await
        .unwrap();
    assert_eq!(echo_through(port).await, b"ping");
}
