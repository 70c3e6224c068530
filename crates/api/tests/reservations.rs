//! `/reserved_domains` and `/reserved_addrs` through the official `ngrok-api` client, and their
//! enforcement at bind time through the official `ngrok` agent SDK on an edge that requires
//! reservations.

use futures::TryStreamExt;
use http::Method;
use ngrok::Error as _;
use ngrok::prelude::*;
use ngrok_api::types::{
    FilteredPaging, ReservedAddrCreate, ReservedAddrUpdate, ReservedDomainCertPolicy,
    ReservedDomainCreate, ReservedDomainUpdate,
};
use serde_json::Value;
use url::Url;
use warren_testkit::{TestEdge, origin};

use warren_testkit::api_error_code as api_code;

/// `GET path` on the API, as raw JSON (to see every key, null ones included).
async fn raw_get(edge: &TestEdge, path: &str) -> Value {
    let (_, json) = edge.api_request(Method::GET, path, "").await;
    assert!(!json.is_null(), "GET {path} answered no JSON");
    json
}

/// `POST path` with a raw JSON body; returns the status and the `error_code`.
async fn raw_post(edge: &TestEdge, path: &str, body: &str) -> (u16, Value) {
    let (status, json) = edge.api_request(Method::POST, path, body).await;
    assert!(!json.is_null(), "POST {path} answered no JSON");
    (status.as_u16(), json["error_code"].clone())
}

#[tokio::test]
async fn request_bodies_are_strict() {
    let edge = TestEdge::start_api().await;
    for (path, body, status, code) in [
        (
            "/reserved_domains",
            r#"{"domain":"x.example.com","bogus":1}"#,
            400,
            "ERR_NGROK_214",
        ),
        (
            "/reserved_domains",
            r#"{"domain":"x.example.com","resolves_to":[{"value":"eu"}]}"#,
            400,
            "ERR_NGROK_215",
        ),
        (
            "/reserved_domains",
            r#"{"domain":"x.example.com","certificate_management_policy":{"authority":"zerossl"}}"#,
            400,
            "ERR_NGROK_215",
        ),
        ("/reserved_domains", r#"{"domain":7}"#, 400, "ERR_NGROK_215"),
        // The server assigns addresses; a client cannot choose one.
        (
            "/reserved_addrs",
            r#"{"addr":"localhost:1"}"#,
            400,
            "ERR_NGROK_214",
        ),
    ] {
        let (got, error) = raw_post(&edge, path, body).await;
        assert_eq!((got, error.as_str()), (status, Some(code)), "{body}");
    }
    let (got, _) = raw_post(
        &edge,
        "/reserved_domains",
        r#"{"domain":"x.example.com","resolves_to":[{"value":"global"}]}"#,
    )
    .await;
    assert_eq!(got, 201);
}

fn domain(name: &str) -> ReservedDomainCreate {
    ReservedDomainCreate {
        domain: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn reserved_domain_crud_with_every_field() {
    let edge = TestEdge::start_api().await;
    let api = edge.api().reserved_domains();
    let created = api
        .create(&ReservedDomainCreate {
            domain: "App.Example.com".into(),
            description: "front door".into(),
            metadata: "{\"site\":1}".into(),
            certificate_management_policy: Some(ReservedDomainCertPolicy {
                authority: "letsencrypt".into(),
                private_key_type: "rsa".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created.id.starts_with("rd_"), "{}", created.id);
    assert_eq!(
        created.uri,
        format!("{}/reserved_domains/{}", edge.api_url(), created.id)
    );
    assert_eq!(created.domain, "app.example.com");
    assert_eq!(created.description, "front door");
    assert_eq!(created.metadata, "{\"site\":1}");
    assert_eq!(created.region, "");
    assert_eq!(created.cname_target.as_deref(), Some("localhost"));
    assert!(created.certificate.is_none());
    assert!(created.certificate_management_status.is_none());
    assert!(created.acme_challenge_cname_target.is_none());
    let policy = created.certificate_management_policy.clone().unwrap();
    assert_eq!(
        (policy.authority.as_str(), policy.private_key_type.as_str()),
        ("letsencrypt", "rsa")
    );
    assert!(created.created_at.ends_with('Z'), "{}", created.created_at);

    let raw = raw_get(&edge, &format!("/reserved_domains/{}", created.id)).await;
    for key in [
        "id",
        "uri",
        "created_at",
        "description",
        "metadata",
        "domain",
        "region",
        "cname_target",
        "certificate",
        "certificate_management_policy",
        "certificate_management_status",
        "acme_challenge_cname_target",
        "resolves_to",
    ] {
        assert!(raw.get(key).is_some(), "missing {key}: {raw}");
    }

    let got = api.get(&created.id).await.unwrap();
    assert_eq!(got.domain, created.domain);
    assert_eq!(got.created_at, created.created_at);

    let updated = api
        .update(&ReservedDomainUpdate {
            id: created.id.clone(),
            description: Some("new".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.description, "new");
    assert_eq!(updated.metadata, "{\"site\":1}", "untouched fields stay");
    assert_eq!(updated.domain, "app.example.com");

    api.delete_certificate(&created.id).await.unwrap();
    api.delete_certificate_management_policy(&created.id)
        .await
        .unwrap();
    assert!(
        api.get(&created.id)
            .await
            .unwrap()
            .certificate_management_policy
            .is_none()
    );

    // A name under the base domain has no CNAME target.
    let own = api.create(&domain("dev.localhost")).await.unwrap();
    assert_eq!(own.cname_target, None);

    api.delete(&created.id).await.unwrap();
    assert_eq!(
        api_code(api.get(&created.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    assert_eq!(
        api_code(api.delete(&created.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    assert_eq!(
        api_code(api.get("ra_x").await.unwrap_err()),
        "ERR_NGROK_227"
    );
    // Unsupported certificate references are refused, not ignored.
    let err = api
        .create(&ReservedDomainCreate {
            domain: "cert.example.com".into(),
            certificate_id: Some("cert_2ElQ3JxGQ7ZW4TdHzPUrp7jHwTN".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(err), "ERR_NGROK_223");
}

#[tokio::test]
async fn duplicate_and_bad_domains_are_refused() {
    let edge = TestEdge::start_api().await;
    let api = edge.api().reserved_domains();
    api.create(&domain("dup.example.com")).await.unwrap();
    let err = api.create(&domain("DUP.example.com.")).await.unwrap_err();
    assert_eq!(api_code(err), "ERR_NGROK_409");
    for bad in ["app.*.x", "*-a.x", "", "*", "a..b", "-a.x", "a_b.x"] {
        let err = api.create(&domain(bad)).await.unwrap_err();
        assert_eq!(api_code(err), "ERR_NGROK_215", "{bad:?}");
    }
    // A wildcard and the exact name are two different reservations.
    api.create(&domain("*.dup.example.com")).await.unwrap();
}

#[tokio::test]
async fn concurrent_duplicate_creates_have_exactly_one_winner() {
    let edge = TestEdge::start_api().await;
    let api = edge.api().reserved_domains();
    let tries = (0..8).map(|_| {
        let api = api.clone();
        async move { api.create(&domain("race.example.com")).await }
    });
    let results = futures::future::join_all(tries).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for r in results.into_iter().filter_map(Result::err) {
        assert_eq!(api_code(r), "ERR_NGROK_409");
    }
    let all: Vec<_> = api
        .list(FilteredPaging::default())
        .reserved_domains()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn lists_are_newest_first_and_page() {
    let edge = TestEdge::start_api().await;
    let api = edge.api().reserved_domains();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            api.create(&domain(&format!("p{i}.example.com")))
                .await
                .unwrap()
                .id,
        );
    }
    ids.reverse();
    let pages: Vec<_> = api
        .list(FilteredPaging {
            limit: Some("2".into()),
            ..Default::default()
        })
        .pages()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    assert!(pages[0].next_page_uri.is_some());
    assert!(pages[2].next_page_uri.is_none());
    assert_eq!(pages[0].uri, format!("{}/reserved_domains", edge.api_url()));
    let listed: Vec<String> = pages
        .iter()
        .flat_map(|p| p.reserved_domains.iter().map(|d| d.id.clone()))
        .collect();
    assert_eq!(listed, ids);

    let addrs = edge.api().reserved_addrs();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            addrs
                .create(&ReservedAddrCreate::default())
                .await
                .unwrap()
                .id,
        );
    }
    ids.reverse();
    let listed: Vec<String> = addrs
        .list(FilteredPaging {
            limit: Some("1".into()),
            ..Default::default()
        })
        .reserved_addrs()
        .await
        .map_ok(|a| a.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn reserved_addr_crud_and_ports_from_the_range() {
    let range = warren_testkit::free_port_range(3);
    let edge = TestEdge::start_api_with(|c| c.edge.tcp_ports = range).await;
    let api = edge.api().reserved_addrs();
    let created = api
        .create(&ReservedAddrCreate {
            description: "ssh".into(),
            metadata: "m".into(),
            region: "eu".into(),
        })
        .await
        .unwrap();
    assert!(created.id.starts_with("ra_"), "{}", created.id);
    assert_eq!(
        created.uri,
        format!("{}/reserved_addrs/{}", edge.api_url(), created.id)
    );
    assert_eq!(
        (
            created.description.as_str(),
            created.metadata.as_str(),
            created.region.as_str()
        ),
        ("ssh", "m", "eu")
    );
    let raw = raw_get(&edge, &format!("/reserved_addrs/{}", created.id)).await;
    for key in [
        "id",
        "uri",
        "created_at",
        "description",
        "metadata",
        "addr",
        "region",
    ] {
        assert!(raw.get(key).is_some(), "missing {key}: {raw}");
    }
    let mut ports = vec![port_of(&created.addr)];
    assert!(created.addr.starts_with("localhost:"), "{}", created.addr);
    for _ in 0..2 {
        ports.push(port_of(
            &api.create(&ReservedAddrCreate::default())
                .await
                .unwrap()
                .addr,
        ));
    }
    ports.sort_unstable();
    assert_eq!(
        ports,
        [range.first, range.first + 1, range.last],
        "distinct ports from the range"
    );
    let err = api
        .create(&ReservedAddrCreate::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(err), "ERR_NGROK_409", "range exhausted");

    let updated = api
        .update(&ReservedAddrUpdate {
            id: created.id.clone(),
            metadata: Some("m2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("ssh", "m2")
    );
    assert_eq!(updated.addr, created.addr);
    assert_eq!(api.get(&created.id).await.unwrap().metadata, "m2");
    api.delete(&created.id).await.unwrap();
    assert_eq!(
        api_code(api.get(&created.id).await.unwrap_err()),
        "ERR_NGROK_404"
    );
    // Its port is free to reserve again.
    let again = api.create(&ReservedAddrCreate::default()).await.unwrap();
    assert_eq!(again.addr, created.addr);
    let err = api
        .create(&ReservedAddrCreate {
            region: "mars".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(err), "ERR_NGROK_215");
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// An edge that requires reservations, as `warrend` does by default.
async fn strict_edge() -> TestEdge {
    TestEdge::start_api_with(|c| c.edge.require_reservations = true).await
}

fn http_url(addr: std::net::SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).unwrap()
}

#[tokio::test]
async fn custom_domains_bind_only_once_reserved() {
    let edge = strict_edge().await;
    let origin = origin::http().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let bind = |name: &'static str| {
        let session = session.clone();
        async move {
            session
                .http_endpoint()
                .domain(name)
                .listen_and_forward(http_url(origin))
                .await
        }
    };
    let err = bind("app.example.com").await.err().expect("not reserved");
    assert_eq!(err.error_code(), Some("ERR_NGROK_319"), "{err:?}");

    let api = edge.api().reserved_domains();
    let app = api.create(&domain("app.example.com")).await.unwrap();
    let fwd = bind("app.example.com").await.unwrap();
    let reply = edge.http().get("app.example.com", "/").await.unwrap();
    assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.text());
    drop(fwd);

    // Names under the base domain need no reservation.
    bind("dev.localhost").await.unwrap();

    // A wildcard reservation covers every name below it and the wildcard itself.
    let err = bind("cam1.site1.example.com").await.err().unwrap();
    assert_eq!(err.error_code(), Some("ERR_NGROK_319"), "{err:?}");
    let err = bind("*.site1.example.com").await.err().unwrap();
    assert_eq!(err.error_code(), Some("ERR_NGROK_318"), "{err:?}");
    api.create(&domain("*.site1.example.com")).await.unwrap();
    bind("cam1.site1.example.com").await.unwrap();
    bind("a.b.site1.example.com").await.unwrap();
    bind("*.site1.example.com").await.unwrap();
    // …but not a narrower wildcard (wildcards are reserved exactly), nor the suffix itself.
    let err = bind("*.b.site1.example.com").await.err().unwrap();
    assert_eq!(err.error_code(), Some("ERR_NGROK_318"), "{err:?}");
    let err = bind("site1.example.com").await.err().unwrap();
    assert_eq!(err.error_code(), Some("ERR_NGROK_319"), "{err:?}");

    // Deleting the reservation stops new binds of the name.
    api.delete(&app.id).await.unwrap();
    let err = bind("app.example.com").await.err().unwrap();
    assert_eq!(err.error_code(), Some("ERR_NGROK_319"), "{err:?}");
}

#[tokio::test]
async fn tcp_addresses_bind_only_once_reserved() {
    let edge = strict_edge().await;
    let echo = origin::tcp_echo().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let reserved = edge
        .api()
        .reserved_addrs()
        .create(&ReservedAddrCreate::default())
        .await
        .unwrap();
    let fwd = session
        .tcp_endpoint()
        .remote_addr(reserved.addr.clone())
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .unwrap();
    assert_eq!(fwd.url(), format!("tcp://{}", reserved.addr));

    let unreserved = loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port != port_of(&reserved.addr) {
            break format!("localhost:{port}");
        }
    };
    let err = session
        .tcp_endpoint()
        .remote_addr(unreserved)
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .err()
        .expect("not reserved");
    assert_eq!(err.error_code(), Some("ERR_NGROK_307"), "{err:?}");

    // The host part, when given, must name this edge.
    let elsewhere = format!("tcp.example.com:{}", port_of(&reserved.addr));
    let err = session
        .tcp_endpoint()
        .remote_addr(elsewhere)
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .err()
        .expect("another host");
    assert_eq!(err.error_code(), Some("ERR_NGROK_307"), "{err:?}");

    // Random ports need no reservation.
    let random = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .unwrap();
    assert_ne!(random.url(), fwd.url());
}

#[tokio::test]
async fn random_tcp_endpoints_never_take_a_reserved_port() {
    let edge = TestEdge::start_api_with(|c| {
        c.edge.require_reservations = true;
        c.edge.tcp_ports = warren_testkit::free_port_range(2);
    })
    .await;
    let echo = origin::tcp_echo().await;
    let reserved = edge
        .api()
        .reserved_addrs()
        .create(&ReservedAddrCreate::default())
        .await
        .unwrap();
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let random = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .unwrap();
    let port = Url::parse(random.url()).unwrap().port().unwrap();
    assert_ne!(port, port_of(&reserved.addr));
    // The other port of the range is reserved, so no random port is left.
    let full = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await;
    assert!(
        full.is_err(),
        "took a reserved port: {:?}",
        full.map(|f| f.url().to_owned())
    );
    // The reservation's holder still binds it.
    session
        .tcp_endpoint()
        .remote_addr(reserved.addr.clone())
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .unwrap();
}
