//! Service users (and their `/bot_users` alias), credentials and API keys through the official
//! `ngrok-api` client, and what credential changes do to live agents running the official
//! `ngrok` SDK: ACL scoping, revocation within a second, ACL narrowing, deactivated owners,
//! rotation, deleting a service user with what it owns.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use http::{Method, StatusCode};
use ngrok::Error as _;
use ngrok::prelude::*;
use ngrok_api::types::{
    APIKeyCreate, APIKeyUpdate, BotUserUpdate, CredentialCreate, CredentialUpdate, FilteredPaging,
    Paging, ServiceUserCreate, ServiceUserUpdate,
};
use serde_json::Value;
use tokio::time::{Instant, timeout};
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

/// The `error_code` of an API error (panics on a transport error).
fn code(e: ngrok_api::Error) -> String {
    warren_testkit::api_error_code(e)
}

/// A raw JSON request to the API with the admin key.
async fn raw(edge: &TestEdge, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    edge.api_request(method, path, body).await
}

fn credential(description: &str, acl: &[&str], owner: Option<&str>) -> CredentialCreate {
    CredentialCreate {
        description: description.into(),
        metadata: String::new(),
        acl: acl.iter().map(|r| r.to_string()).collect(),
        owner_id: owner.map(str::to_owned),
    }
}

/// The origin URL an agent forwards to (parsed by `listen_and_forward`'s own URL type).
fn forward_to(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

/// Sessions on the edge authenticated with `credential_id`.
fn sessions_of(edge: &TestEdge, credential_id: &str) -> usize {
    edge.server
        .edge()
        .sessions()
        .iter()
        .filter(|s| s.credential_id == credential_id)
        .count()
}

#[tokio::test]
async fn service_users_crud_on_both_paths() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let user = api
        .service_users()
        .create(&ServiceUserCreate {
            name: "factory 1".into(),
            active: None,
        })
        .await
        .unwrap();
    assert!(user.id.starts_with("service_"), "{}", user.id);
    assert!(user.active, "active defaults to true");
    assert_eq!(
        user.uri,
        format!("{}/service_users/{}", edge.api_url(), user.id)
    );
    assert!(user.created_at.ends_with('Z'), "{}", user.created_at);

    // The same row on the legacy path, with the same body under `bot_`.
    let body = user.id.strip_prefix("service_").unwrap();
    let bot = api.bot_users().get(&format!("bot_{body}")).await.unwrap();
    assert_eq!(bot.id, format!("bot_{body}"));
    assert_eq!(bot.name, "factory 1");
    assert_eq!(bot.uri, format!("{}/bot_users/{}", edge.api_url(), bot.id));
    assert_eq!(
        code(api.bot_users().get(&user.id).await.unwrap_err()),
        "ERR_NGROK_227"
    );
    assert_eq!(
        code(api.service_users().get(&bot.id).await.unwrap_err()),
        "ERR_NGROK_227"
    );

    let second = api
        .bot_users()
        .create(&ngrok_api::types::BotUserCreate {
            name: "factory 2".into(),
            active: Some(false),
        })
        .await
        .unwrap();
    assert!(second.id.starts_with("bot_") && !second.active);
    assert_eq!(
        code(
            api.service_users()
                .create(&ServiceUserCreate {
                    name: String::new(),
                    active: None
                })
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_215"
    );

    let listed: Vec<_> = api
        .service_users()
        .list(FilteredPaging::default())
        .service_users()
        .await
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|u| u.id.as_str()).collect();
    let second_body = second.id.strip_prefix("bot_").unwrap();
    // Newest first by id (ids are time-ordered to the second; ties order by their random part).
    let mut expected = vec![format!("service_{second_body}"), user.id.clone()];
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, expected);
    let bots: Vec<_> = api
        .bot_users()
        .list(Paging {
            before_id: None,
            limit: Some("1".into()),
        })
        .bot_users()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(bots.len(), 2);
    assert!(bots.iter().all(|b| b.id.starts_with("bot_")));

    let renamed = api
        .service_users()
        .update(&ServiceUserUpdate {
            id: user.id.clone(),
            name: Some("factory one".into()),
            active: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.active),
        ("factory one", true)
    );
    let off = api
        .bot_users()
        .update(&BotUserUpdate {
            id: bot.id.clone(),
            name: None,
            active: Some(false),
        })
        .await
        .unwrap();
    assert_eq!((off.name.as_str(), off.active), ("factory one", false));
    assert_eq!(
        code(
            api.service_users()
                .update(&ServiceUserUpdate {
                    id: user.id.clone(),
                    name: None,
                    active: None
                })
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_606"
    );

    api.service_users().delete(&user.id).await.unwrap();
    assert_eq!(
        code(api.service_users().get(&user.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    assert_eq!(
        code(api.bot_users().delete(&bot.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
}

#[tokio::test]
async fn credentials_crud_shows_the_token_once() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let owner = api
        .bot_users()
        .create(&ngrok_api::types::BotUserCreate {
            name: "site 1".into(),
            active: None,
        })
        .await
        .unwrap();
    let created = api
        .credentials()
        .create(&credential(
            "gateway 1",
            &["bind:*.site1.example.com"],
            Some(&owner.id),
        ))
        .await
        .unwrap();
    assert!(created.id.starts_with("cr_"));
    let token = created.token.clone().expect("token on create");
    assert!(token.starts_with(created.id.strip_prefix("cr_").unwrap()));
    let owner_body = owner.id.strip_prefix("bot_").unwrap();
    assert_eq!(
        created.owner_id.as_deref(),
        Some(format!("service_{owner_body}").as_str())
    );
    assert_eq!(created.acl, ["bind:*.site1.example.com"]);

    let got = api.credentials().get(&created.id).await.unwrap();
    assert_eq!(got.token, None, "the token is shown only once");
    assert_eq!(
        (got.description.as_str(), got.acl.clone()),
        ("gateway 1", created.acl.clone())
    );
    let listed: Vec<_> = api
        .credentials()
        .list(FilteredPaging::default())
        .credentials()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "the first-start authtoken and this one");
    assert!(listed[0].id > listed[1].id, "newest (largest id) first");
    assert!(listed.iter().any(|c| c.id == created.id));
    assert!(listed.iter().all(|c| c.token.is_none()));

    let updated = api
        .credentials()
        .update(&CredentialUpdate {
            id: created.id.clone(),
            description: None,
            metadata: Some("{\"site\":1}".into()),
            acl: Some(vec!["bind:cam1.site1.example.com".into()]),
        })
        .await
        .unwrap();
    assert_eq!(updated.description, "gateway 1");
    assert_eq!(updated.metadata, "{\"site\":1}");
    assert_eq!(updated.acl, ["bind:cam1.site1.example.com"]);
    assert_eq!(updated.token, None);

    // Bad rules are named; owners must exist; empty updates are refused.
    let err = api
        .credentials()
        .create(&credential(
            "x",
            &["bind:ok.example.com", "listen:nope"],
            None,
        ))
        .await
        .unwrap_err();
    match err {
        ngrok_api::Error::Ngrok(e) => {
            assert_eq!(e.error_code, "ERR_NGROK_215");
            assert!(e.msg.contains("listen:nope"), "{}", e.msg);
        }
        other => panic!("{other:?}"),
    }
    let ghost = format!("service_{}", "1".repeat(27));
    assert_eq!(
        code(
            api.credentials()
                .create(&credential("x", &[], Some(&ghost)))
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_223"
    );
    assert_eq!(
        code(
            api.credentials()
                .update(&CredentialUpdate {
                    id: created.id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_606"
    );

    api.credentials().delete(&created.id).await.unwrap();
    assert_eq!(
        code(api.credentials().get(&created.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    assert_eq!(
        code(api.credentials().delete(&created.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
}

#[tokio::test]
async fn api_keys_crud_and_deleting_the_key_in_use() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let key = api
        .api_keys()
        .create(&APIKeyCreate {
            description: "ci".into(),
            metadata: "{\"env\":\"ci\"}".into(),
            owner_id: None,
        })
        .await
        .unwrap();
    assert!(key.id.starts_with("ak_"));
    let token = key.token.clone().expect("token on create");
    let own = edge.api_with_key(&token);
    let got = own.api_keys().get(&key.id).await.unwrap();
    assert_eq!(
        (got.token, got.metadata.as_str()),
        (None, "{\"env\":\"ci\"}")
    );
    let keys: Vec<_> = own
        .api_keys()
        .list(FilteredPaging::default())
        .keys()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].id > keys[1].id, "newest (largest id) first");
    assert!(keys.iter().any(|k| k.id == key.id));
    assert!(keys.iter().all(|k| k.token.is_none()));
    let updated = own
        .api_keys()
        .update(&APIKeyUpdate {
            id: key.id.clone(),
            description: Some("ci runner".into()),
            metadata: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("ci runner", "{\"env\":\"ci\"}")
    );
    // A key deletes itself; the next call with it is refused.
    own.api_keys().delete(&key.id).await.unwrap();
    assert_eq!(
        code(own.api_keys().get(&key.id).await.unwrap_err()),
        "ERR_NGROK_203"
    );
    assert_eq!(
        code(api.api_keys().get(&key.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
}

#[tokio::test]
async fn credentials_page_newest_first_through_the_client_stream() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let mut created = Vec::new();
    for i in 0..250 {
        let c = api
            .credentials()
            .create(&credential(&format!("device {i}"), &[], None))
            .await
            .unwrap();
        created.push(c.id);
    }
    let pages: Vec<_> = api
        .credentials()
        .list(FilteredPaging {
            limit: Some("100".into()),
            ..Default::default()
        })
        .pages()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3, "251 credentials in pages of 100");
    assert!(pages[..2].iter().all(|p| p.next_page_uri.is_some()));
    assert_eq!(pages[2].next_page_uri, None);
    let listed: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.credentials)
        .map(|c| c.id)
        .collect();
    assert_eq!(listed.len(), 251);
    assert!(
        listed.windows(2).all(|w| w[0] > w[1]),
        "newest (largest id) first, no repeats"
    );
    for id in &created {
        assert!(listed.contains(id), "{id} listed");
    }
    let streamed: Vec<_> = api
        .credentials()
        .list(FilteredPaging {
            limit: Some("7".into()),
            ..Default::default()
        })
        .credentials()
        .await
        .map_ok(|c| c.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed, listed);
}

#[tokio::test]
async fn request_errors_use_ngrok_codes() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let body = "1".repeat(27);
    assert_eq!(
        code(
            api.credentials()
                .get(&format!("ak_{body}"))
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_227"
    );
    assert_eq!(
        code(api.api_keys().get(&format!("cr_{body}")).await.unwrap_err()),
        "ERR_NGROK_227"
    );
    assert_eq!(
        code(
            api.credentials()
                .get(&format!("cr_{body}"))
                .await
                .unwrap_err()
        ),
        "ERR_NGROK_404"
    );
    for limit in ["0", "101", "ten"] {
        let first = api
            .credentials()
            .list(FilteredPaging {
                limit: Some(limit.into()),
                ..Default::default()
            })
            .pages()
            .await
            .next()
            .await
            .unwrap();
        assert_eq!(code(first.unwrap_err()), "ERR_NGROK_233", "limit {limit}");
    }
    let long = credential(&"d".repeat(256), &[], None);
    assert_eq!(
        code(api.credentials().create(&long).await.unwrap_err()),
        "ERR_NGROK_215"
    );
    let big = CredentialCreate {
        metadata: "m".repeat(4097),
        ..credential("ok", &[], None)
    };
    assert_eq!(
        code(api.credentials().create(&big).await.unwrap_err()),
        "ERR_NGROK_215"
    );
    let big_key = APIKeyCreate {
        metadata: "m".repeat(4097),
        ..Default::default()
    };
    assert_eq!(
        code(api.api_keys().create(&big_key).await.unwrap_err()),
        "ERR_NGROK_215"
    );

    for (method, path, json) in [
        (
            Method::POST,
            "/credentials",
            r#"{"description":"x","colour":"red"}"#,
        ),
        (Method::POST, "/api_keys", r#"{"acl":[]}"#),
        (
            Method::POST,
            "/service_users",
            r#"{"name":"n","admin":true}"#,
        ),
        (Method::POST, "/bot_users", r#"{"name":"n","admin":true}"#),
    ] {
        let (status, body) = raw(&edge, method, path, json).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error_code"], "ERR_NGROK_214", "{path}: {body}");
    }
    let cred = api
        .credentials()
        .create(&credential("x", &[], None))
        .await
        .unwrap();
    let (status, body) = raw(
        &edge,
        Method::PATCH,
        &format!("/credentials/{}", cred.id),
        r#"{"owner_id":"service_x"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_NGROK_214"))
    );
}

#[tokio::test]
async fn acl_scopes_binds_and_deleting_a_credential_drops_its_session_within_a_second() {
    let edge = TestEdge::start_api().await;
    let origin = origin::http().await;
    let api = edge.api();
    let cam1 = api
        .credentials()
        .create(&credential("cam1", &["bind:*.site1.example.com"], None))
        .await
        .unwrap();
    let cam2 = api
        .credentials()
        .create(&credential("cam2", &["bind:*.site1.example.com"], None))
        .await
        .unwrap();

    let first = edge.agent(cam1.token.as_deref().unwrap()).await.unwrap();
    let _fwd1 = first
        .http_endpoint()
        .domain("cam1.site1.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .unwrap();
    let err = first
        .http_endpoint()
        .domain("cam1.site2.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .err()
        .expect("outside the ACL");
    assert_eq!(err.error_code(), Some("ERR_NGROK_316"), "{err:?}");

    let second = edge.agent(cam2.token.as_deref().unwrap()).await.unwrap();
    let _fwd2 = second
        .http_endpoint()
        .domain("cam2.site1.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .unwrap();
    for host in ["cam1.site1.example.com", "cam2.site1.example.com"] {
        assert_eq!(
            edge.http().get(host, "/").await.unwrap().status,
            StatusCode::OK
        );
    }
    assert_eq!(sessions_of(&edge, &cam1.id), 1);

    let start = Instant::now();
    api.credentials().delete(&cam1.id).await.unwrap();
    while sessions_of(&edge, &cam1.id) > 0
        || edge
            .server
            .edge()
            .routes()
            .host("cam1.site1.example.com")
            .is_some()
    {
        assert!(start.elapsed() < STEP_TIMEOUT, "revocation never happened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    assert_eq!(
        edge.http()
            .get("cam1.site1.example.com", "/")
            .await
            .unwrap()
            .status,
        StatusCode::NOT_FOUND
    );
    // The other device keeps serving, and the revoked token cannot come back.
    assert_eq!(
        edge.http()
            .get("cam2.site1.example.com", "/")
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    assert_eq!(sessions_of(&edge, &cam2.id), 1);
    let err = edge
        .agent(cam1.token.as_deref().unwrap())
        .await
        .err()
        .expect("revoked");
    assert_eq!(err.error_code(), Some("ERR_NGROK_107"), "{err:?}");
}

#[tokio::test]
async fn narrowing_an_acl_stops_only_the_endpoints_it_no_longer_permits() {
    let edge = TestEdge::start_api().await;
    let origin = origin::http().await;
    let api = edge.api();
    let cred = api
        .credentials()
        .create(&credential("gw", &["bind:*.site1.example.com"], None))
        .await
        .unwrap();
    let session = edge.agent(cred.token.as_deref().unwrap()).await.unwrap();
    let _kept = session
        .http_endpoint()
        .domain("a.site1.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .unwrap();
    let mut dropped = session
        .http_endpoint()
        .domain("b.site1.example.com")
        .listen()
        .await
        .unwrap();

    api.credentials()
        .update(&CredentialUpdate {
            id: cred.id.clone(),
            acl: Some(vec!["bind:a.site1.example.com".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    // The route goes with the PATCH; the agent hears StopTunnel.
    assert!(
        edge.server
            .edge()
            .routes()
            .host("b.site1.example.com")
            .is_none()
    );
    match timeout(STEP_TIMEOUT, dropped.next())
        .await
        .expect("listener ends")
    {
        Some(Err(ngrok::tunnel::AcceptError::ListenerClosed {
            message,
            error_code,
        })) => {
            assert_eq!(error_code.as_deref(), Some("ERR_NGROK_316"));
            assert!(message.contains("b.site1.example.com"), "{message}");
        }
        Some(Err(other)) => panic!("expected ListenerClosed, got {other:?}"),
        Some(Ok(_)) => panic!("expected ListenerClosed, got a connection"),
        None => panic!("expected ListenerClosed, got the end of the stream"),
    }
    assert_eq!(
        edge.http()
            .get("a.site1.example.com", "/")
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    assert_eq!(
        edge.http()
            .get("b.site1.example.com", "/")
            .await
            .unwrap()
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(sessions_of(&edge, &cred.id), 1, "the session itself stays");
    // New binds see the new rules too.
    let err = session
        .http_endpoint()
        .domain("c.site1.example.com")
        .listen()
        .await
        .err()
        .expect("outside the new ACL");
    assert_eq!(err.error_code(), Some("ERR_NGROK_316"), "{err:?}");
}

#[tokio::test]
async fn a_deactivated_service_users_credentials_cannot_connect_until_reactivated() {
    let edge = TestEdge::start_api().await;
    let origin = origin::http().await;
    let api = edge.api();
    let user = api
        .service_users()
        .create(&ServiceUserCreate {
            name: "site 9".into(),
            active: None,
        })
        .await
        .unwrap();
    let cred = api
        .credentials()
        .create(&credential("gw", &[], Some(&user.id)))
        .await
        .unwrap();
    let token = cred.token.clone().unwrap();
    let session = edge.agent(&token).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .domain("gw.site9.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .unwrap();

    api.service_users()
        .update(&ServiceUserUpdate {
            id: user.id.clone(),
            name: None,
            active: Some(false),
        })
        .await
        .unwrap();
    edge.eventually("the owner's sessions closed", |e| {
        e.sessions().iter().all(|s| s.credential_id != cred.id)
            && e.routes().host("gw.site9.example.com").is_none()
    })
    .await;
    let err = edge.agent(&token).await.err().expect("owner inactive");
    assert_eq!(err.error_code(), Some("ERR_NGROK_107"), "{err:?}");

    api.service_users()
        .update(&ServiceUserUpdate {
            id: user.id.clone(),
            name: None,
            active: Some(true),
        })
        .await
        .unwrap();
    let again = edge.agent(&token).await.unwrap();
    let _fwd = again
        .http_endpoint()
        .domain("gw2.site9.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        edge.http()
            .get("gw2.site9.example.com", "/")
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );

    // Deleting the service user takes its credentials (and their sessions) and its API keys
    // with it.
    let key = api
        .api_keys()
        .create(&APIKeyCreate {
            owner_id: Some(user.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(key.owner_id.as_deref(), Some(user.id.as_str()));
    let owned = edge.api_with_key(key.token.as_deref().unwrap());
    owned.credentials().get(&cred.id).await.unwrap();
    api.service_users().delete(&user.id).await.unwrap();
    assert_eq!(
        code(owned.credentials().get(&cred.id).await.unwrap_err()),
        "ERR_NGROK_203"
    );
    assert_eq!(
        code(api.credentials().get(&cred.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    edge.eventually("sessions of the deleted owner closed", |e| {
        e.sessions().iter().all(|s| s.credential_id != cred.id)
    })
    .await;
}

#[tokio::test]
async fn rotating_a_credential_keeps_the_new_session_serving_without_a_gap() {
    let edge = TestEdge::start_api().await;
    let origin = origin::http().await;
    let api = edge.api();
    let old = api
        .credentials()
        .create(&credential("gw (old)", &["bind:*.rot.example.com"], None))
        .await
        .unwrap();
    let old_session = edge.agent(old.token.as_deref().unwrap()).await.unwrap();
    let _old_fwd = old_session
        .http_endpoint()
        .domain("old.rot.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .unwrap();

    // Rotation: create the new credential, bring the agent up with it, then delete the old.
    let new = api
        .credentials()
        .create(&credential("gw (new)", &["bind:*.rot.example.com"], None))
        .await
        .unwrap();
    let new_session = edge.agent(new.token.as_deref().unwrap()).await.unwrap();
    let _new_fwd = new_session
        .http_endpoint()
        .domain("new.rot.example.com")
        .listen_and_forward(forward_to(origin).parse().unwrap())
        .await
        .unwrap();

    // Visitors hit the new endpoint continuously while the old credential is deleted.
    let visitor = edge.http();
    let probe = tokio::spawn(async move {
        let mut served = 0;
        let deadline = Instant::now() + Duration::from_millis(600);
        while Instant::now() < deadline {
            let reply = visitor.get("new.rot.example.com", "/").await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "gap at request {served}");
            served += 1;
        }
        served
    });
    api.credentials().delete(&old.id).await.unwrap();
    edge.eventually("the old session closed", |e| {
        e.sessions().iter().all(|s| s.credential_id != old.id)
    })
    .await;
    let served = probe.await.unwrap();
    assert!(served > 0);
    assert_eq!(
        edge.http()
            .get("new.rot.example.com", "/")
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    assert_eq!(
        edge.http()
            .get("old.rot.example.com", "/")
            .await
            .unwrap()
            .status,
        StatusCode::NOT_FOUND
    );
}
