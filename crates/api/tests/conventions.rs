//! The API v2 conventions every resource shares: authentication, the version header, the error
//! body, the root listing, unknown routes and methods.

use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use warren_testkit::TestEdge;
use warren_testkit::client::{HttpVisitor, Reply};

async fn call(
    edge: &TestEdge,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (Reply, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let reply = HttpVisitor::plain(edge.server.api_addr)
        .send(
            "localhost",
            req.body(Full::new(bytes::Bytes::new())).unwrap(),
        )
        .await
        .unwrap();
    let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply, body)
}

/// Request headers, the status expected and the error code expected.
type Case<'a> = (&'a [(&'a str, &'a str)], StatusCode, &'a str);

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn authentication_and_version_errors_use_ngrok_codes() {
    let edge = TestEdge::start_api().await;
    let key = bearer(&edge.api_key);
    let cases: [Case; 6] = [
        (
            &[("authorization", &key)],
            StatusCode::BAD_REQUEST,
            "ERR_NGROK_218",
        ),
        (
            &[("authorization", &key), ("ngrok-version", "1")],
            StatusCode::BAD_REQUEST,
            "ERR_NGROK_217",
        ),
        (
            &[("ngrok-version", "2")],
            StatusCode::UNAUTHORIZED,
            "ERR_NGROK_201",
        ),
        (
            &[("ngrok-version", "2"), ("authorization", "Bearer nope")],
            StatusCode::UNAUTHORIZED,
            "ERR_NGROK_202",
        ),
        (
            &[
                ("ngrok-version", "2"),
                (
                    "authorization",
                    "Bearer 3MjKThv7Flar5SlCW5NTwjlwaty_X0pOpqbgZxL93TSUAGXgtb0hu303MuxSCG6sYXhr12y",
                ),
            ],
            StatusCode::UNAUTHORIZED,
            "ERR_NGROK_203",
        ),
        (
            &[
                ("ngrok-version", "2"),
                ("authorization", &bearer(&edge.authtoken)),
            ],
            StatusCode::UNAUTHORIZED,
            "ERR_NGROK_206",
        ),
    ];
    for (headers, status, code) in cases {
        let (reply, body) = call(&edge, Method::GET, "/", headers).await;
        assert_eq!(reply.status, status, "{headers:?}: {body}");
        assert_eq!(body["error_code"], code, "{headers:?}: {body}");
        assert_eq!(body["status_code"], status.as_u16());
        assert!(
            body["details"]["operation_id"]
                .as_str()
                .unwrap()
                .starts_with("op_")
        );
        assert!(body["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn root_lists_the_collections_and_unknown_paths_are_json_404s() {
    let edge = TestEdge::start_api().await;
    let key = bearer(&edge.api_key);
    let auth: &[(&str, &str)] = &[("authorization", &key), ("ngrok-version", "2")];
    let (reply, body) = call(&edge, Method::GET, "/", auth).await;
    assert_eq!(reply.status, StatusCode::OK, "{body}");
    assert_eq!(body["uri"], format!("{}/", edge.api_url()));
    assert_eq!(
        body["subresource_uris"]["credentials"],
        format!("{}/credentials", edge.api_url())
    );
    let (reply, body) = call(&edge, Method::GET, "/no_such_thing", auth).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], "ERR_NGROK_404");
    let (reply, _) = call(&edge, Method::DELETE, "/", auth).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let (reply, body) = call(&edge, Method::GET, "/healthz", &[]).await;
    assert_eq!(
        (reply.status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}
