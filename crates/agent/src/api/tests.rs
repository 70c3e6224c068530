use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use warren::{Upstream, UpstreamScheme};

use super::*;
use crate::config::EndpointConfig;
use crate::control::{
    AgentStatus, Control, ControlError, CounterCells, EndpointCounters, EndpointState,
    EndpointStatus, SessionState,
};
use crate::inspect::{DEFAULT_CAPTURE_BYTES, HttpForward, Inspector, MAX_CAPTURED_BODY};

/// An in-memory supervisor. Endpoints go online at once with a URL made from their
/// definition; `refuse` makes the next start fail as the edge would.
#[derive(Default)]
struct FakeControl {
    endpoints: Mutex<Vec<EndpointStatus>>,
    refuse: Mutex<Option<(String, Option<String>)>>,
}

impl FakeControl {
    fn online(spec: EndpointConfig) -> Result<EndpointStatus, ControlError> {
        if spec.upstream.url.trim().is_empty() {
            return Err(ControlError::Invalid("upstream.url is required".into()));
        }
        let url = spec.url.clone().unwrap_or_default();
        let (proto, public_url) = if let Some(addr) = url.strip_prefix("tcp://") {
            let addr = if addr.is_empty() {
                "edge.example.com:20001"
            } else {
                addr
            };
            ("tcp", format!("tcp://{addr}"))
        } else if let Some(host) = url.strip_prefix("tls://") {
            ("tls", format!("tls://{host}"))
        } else {
            let host = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .unwrap_or(&url);
            let host = if host.is_empty() {
                format!("{}.example.com", spec.name)
            } else {
                host.to_owned()
            };
            ("https", format!("https://{host}"))
        };
        Ok(EndpointStatus {
            config: spec,
            proto: proto.into(),
            public_url: Some(public_url),
            id: Some("ep_1".into()),
            state: EndpointState::Online,
            counters: EndpointCounters {
                conns_total: 3,
                conns_open: 1,
                http_requests: 7,
                ..EndpointCounters::default()
            },
            started_at: SystemTime::now(),
        })
    }
}

impl Control for FakeControl {
    fn status(&self) -> AgentStatus {
        AgentStatus {
            state: SessionState::Online,
            latency: Some(Duration::from_millis(12)),
            agent_version: "9.9.9".into(),
            connect_url: "edge.example.com:443".into(),
            client_id: "sess_1".into(),
        }
    }

    fn endpoints(&self) -> Vec<EndpointStatus> {
        self.endpoints.lock().unwrap().clone()
    }

    fn endpoint(&self, name: &str) -> Option<EndpointStatus> {
        self.endpoints
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.config.name == name)
            .cloned()
    }

    fn start(&self, spec: EndpointConfig) -> BoxFuture<'_, Result<EndpointStatus, ControlError>> {
        Box::pin(async move {
            if let Some((message, code)) = self.refuse.lock().unwrap().take() {
                return Err(ControlError::Edge { message, code });
            }
            let mut eps = self.endpoints.lock().unwrap();
            if eps.iter().any(|e| e.config.name == spec.name) {
                return Err(ControlError::AlreadyExists(spec.name));
            }
            let status = FakeControl::online(spec)?;
            eps.push(status.clone());
            Ok(status)
        })
    }

    fn replace(
        &self,
        spec: EndpointConfig,
    ) -> BoxFuture<'_, Result<(bool, EndpointStatus), ControlError>> {
        Box::pin(async move {
            let status = FakeControl::online(spec)?;
            let mut eps = self.endpoints.lock().unwrap();
            let before = eps.len();
            eps.retain(|e| e.config.name != status.config.name);
            let existed = eps.len() != before;
            eps.push(status.clone());
            Ok((existed, status))
        })
    }

    fn stop(&self, name: &str) -> BoxFuture<'_, Result<(), ControlError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let mut eps = self.endpoints.lock().unwrap();
            let before = eps.len();
            eps.retain(|e| e.config.name != name);
            if eps.len() == before {
                return Err(ControlError::NotFound(name));
            }
            Ok(())
        })
    }

    fn upstream(&self, name: &str) -> Option<Upstream> {
        let ep = self.endpoint(name)?;
        Upstream::parse(&ep.config.upstream.url, UpstreamScheme::Http).ok()
    }
}

/// A running API and what is behind it.
struct Harness {
    addr: SocketAddr,
    control: Arc<FakeControl>,
    inspector: Option<Arc<Inspector>>,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

async fn start(inspect: bool, allow_hosts: &[&str]) -> Harness {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let control = Arc::new(FakeControl::default());
    let inspector = inspect.then(|| Inspector::new(DEFAULT_CAPTURE_BYTES));
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(serve(
        listener,
        control.clone(),
        inspector.clone(),
        allow_hosts.iter().map(|h| h.to_string()).collect(),
        async move {
            let _ = rx.await;
        },
    ));
    Harness {
        addr,
        control,
        inspector,
        stop: Some(tx),
        served,
    }
}

/// One answer: status, headers, and the body as JSON (`Null` when empty).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Harness {
    /// Sends one request on a new connection with `Host: localhost:4040`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost:4040");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        self.send(req.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Answer {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).expect("JSON body")
        };
        Answer {
            status,
            headers,
            json,
        }
    }

    fn with_host(&self, host: Option<&str>, path: &str) -> Request<Full<Bytes>> {
        let mut req = Request::get(path);
        if let Some(host) = host {
            req = req.header("host", host);
        }
        req.body(Full::new(Bytes::new())).unwrap()
    }
}

fn assert_error(answer: &Answer, status: StatusCode, code: u32) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(
        answer.json["status_code"],
        status.as_u16(),
        "{}",
        answer.json
    );
    assert_eq!(answer.json["error_code"], code, "{}", answer.json);
    assert!(answer.json["msg"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(answer.json["details"].is_object());
    assert_eq!(answer.headers["content-type"], "application/json");
}

#[tokio::test]
async fn root_and_status() {
    let api = start(true, &[]).await;
    let root = api.call("GET", "/api/", None).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.json["tunnels"], "/api/tunnels");
    assert_eq!(root.json["endpoints"], "/api/endpoints");
    assert_eq!(api.call("GET", "/api", None).await.status, StatusCode::OK);

    let status = api.call("GET", "/api/status", None).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        status.json,
        json!({
            "status": "online",
            "agent_version": "9.9.9",
            "session": {"legs": [{"region": "local", "latency": "12ms"}]},
            "uri": "/api/status",
        })
    );
}

#[tokio::test]
async fn tunnels_lifecycle() {
    let api = start(true, &[]).await;
    let created = api
        .call(
            "POST",
            "/api/tunnels",
            Some(
                json!({"name": "web", "proto": "http", "addr": 8080, "domain": "app.example.com"}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let t = &created.json;
    assert_eq!(t["name"], "web");
    assert_eq!(t["uri"], "/api/tunnels/web");
    assert_eq!(t["public_url"], "https://app.example.com");
    assert_eq!(t["proto"], "https");
    assert_eq!(
        t["config"],
        json!({"addr": "http://localhost:8080", "inspect": true})
    );
    assert_eq!(t["metrics"]["conns"]["count"], 3);
    assert_eq!(t["metrics"]["conns"]["gauge"], 1);
    assert_eq!(t["metrics"]["conns"]["p99"], 0);
    assert_eq!(t["metrics"]["http"]["count"], 7);
    let spec = api.control.endpoint("web").unwrap().config;
    assert_eq!(spec.url.as_deref(), Some("https://app.example.com"));
    assert_eq!(spec.upstream.url, "8080");

    let ssh = api
        .call(
            "POST",
            "/api/tunnels",
            Some(json!({"name": "ssh", "proto": "tcp", "addr": "22", "remote_addr": "edge.example.com:20022", "proxy_proto": "2"})),
        )
        .await;
    assert_eq!(ssh.status, StatusCode::CREATED, "{}", ssh.json);
    assert_eq!(ssh.json["public_url"], "tcp://edge.example.com:20022");
    assert_eq!(ssh.json["config"]["addr"], "tcp://localhost:22");
    assert_eq!(ssh.json["config"]["inspect"], false);
    assert_eq!(
        api.control
            .endpoint("ssh")
            .unwrap()
            .config
            .upstream
            .proxy_protocol,
        Some(2)
    );

    let list = api.call("GET", "/api/tunnels", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json["uri"], "/api/tunnels");
    assert_eq!(list.json["tunnels"].as_array().unwrap().len(), 2);
    let one = api.call("GET", "/api/tunnels/web", None).await;
    assert_eq!(one.json, created.json);

    // Duplicates answer as ngrok's agent does.
    let dup = api
        .call(
            "POST",
            "/api/tunnels",
            Some(json!({"name": "web", "proto": "http", "addr": "80"})),
        )
        .await;
    assert_error(&dup, StatusCode::BAD_REQUEST, error_code::INVALID_CONFIG);
    assert_eq!(dup.json["msg"], "invalid tunnel configuration");
    assert!(
        dup.json["details"]["err"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    for bad in [
        json!({"name": "x", "proto": "http", "addr": "80", "bind_tls": true}),
        json!({"name": "x", "proto": "udp", "addr": "80"}),
        json!({"name": "x", "proto": "http", "addr": "80", "subdomain": "x"}),
        json!({"name": "x", "proto": "tcp", "addr": "22", "domain": "a.example.com"}),
        json!({"name": "x", "proto": "http", "addr": "80", "proxy_proto": 3}),
        json!({"proto": "http", "addr": "80"}),
        json!({"name": "x", "proto": "http"}),
    ] {
        let answer = api.call("POST", "/api/tunnels", Some(bad.clone())).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, error_code::INVALID_CONFIG);
        assert!(answer.json["details"]["err"].is_string(), "{bad}");
    }

    let deleted = api.call("DELETE", "/api/tunnels/web", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.json, Value::Null);
    assert_error(
        &api.call("DELETE", "/api/tunnels/web", None).await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    assert_error(
        &api.call("GET", "/api/tunnels/web", None).await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
}

#[tokio::test]
async fn endpoints_lifecycle() {
    let api = start(true, &[]).await;
    let spec = json!({"name": "app", "url": "https://app.example.com", "upstream": {"url": "8001"}, "pooling_enabled": true});
    let created = api.call("POST", "/api/endpoints", Some(spec.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let e = &created.json;
    assert_eq!(e["name"], "app");
    assert_eq!(e["uri"], "/api/endpoints/app");
    assert_eq!(e["url"], "https://app.example.com");
    assert_eq!(e["upstream"], json!({"url": "8001", "protocol": "http1"}));
    assert_eq!(e["inspect"], true);
    assert_eq!(e["traffic_policy"], "");
    assert_eq!(e["pooling_enabled"], true);
    assert_eq!(e["id"], "ep_1");
    assert_eq!(e["state"], "online");
    assert!(e.get("metrics").is_none());

    let dup = api.call("POST", "/api/endpoints", Some(spec)).await;
    assert_error(&dup, StatusCode::CONFLICT, error_code::ALREADY_EXISTS);

    let bad = api
        .call(
            "POST",
            "/api/endpoints",
            Some(json!({"name": "b", "upstream": {"url": "1"}, "colour": "red"})),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, error_code::INVALID_CONFIG);
    assert!(
        bad.json["details"]["err"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    let invalid = api
        .call(
            "POST",
            "/api/endpoints",
            Some(json!({"name": "b", "upstream": {"url": ""}})),
        )
        .await;
    assert_error(
        &invalid,
        StatusCode::BAD_REQUEST,
        error_code::INVALID_CONFIG,
    );

    *api.control.refuse.lock().unwrap() =
        Some(("domain not reserved".into(), Some("ERR_NGROK_319".into())));
    let refused = api
        .call(
            "POST",
            "/api/endpoints",
            Some(json!({"name": "r", "url": "https://r.example.com", "upstream": {"url": "80"}})),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_GATEWAY, error_code::EDGE_REFUSED);
    assert_eq!(refused.json["details"]["code"], "ERR_NGROK_319");
    assert_eq!(refused.json["details"]["err"], "domain not reserved");

    let one = api.call("GET", "/api/endpoints/app", None).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["metrics"]["http"]["count"], 7);
    let list = api.call("GET", "/api/endpoints", None).await;
    assert_eq!(list.json["uri"], "/api/endpoints");
    assert_eq!(list.json["endpoints"].as_array().unwrap().len(), 1);

    // PUT: created, then updated; the body's name may be left out but must not differ.
    let put = api
        .call(
            "PUT",
            "/api/endpoints/cam",
            Some(json!({"upstream": {"url": "8554"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.json);
    assert_eq!(put.json["name"], "cam");
    let put = api
        .call(
            "PUT",
            "/api/endpoints/cam",
            Some(json!({"name": "cam", "upstream": {"url": "8555", "protocol": "http2"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    assert_eq!(
        put.json["upstream"],
        json!({"url": "8555", "protocol": "http2"})
    );
    let mismatch = api
        .call(
            "PUT",
            "/api/endpoints/cam",
            Some(json!({"name": "other", "upstream": {"url": "1"}})),
        )
        .await;
    assert_error(
        &mismatch,
        StatusCode::BAD_REQUEST,
        error_code::INVALID_CONFIG,
    );
    let not_object = api
        .call("PUT", "/api/endpoints/cam", Some(json!([1])))
        .await;
    assert_error(
        &not_object,
        StatusCode::BAD_REQUEST,
        error_code::INVALID_CONFIG,
    );

    assert_eq!(
        api.call("DELETE", "/api/endpoints/cam", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &api.call("DELETE", "/api/endpoints/cam", None).await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    assert_error(
        &api.call("GET", "/api/endpoints/nope", None).await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
}

#[tokio::test]
async fn routes_methods_and_bodies() {
    let api = start(true, &[]).await;
    assert_error(
        &api.call("GET", "/api/nothing", None).await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    assert_error(
        &api.call("GET", "/apistatus", None).await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    assert_error(
        &api.call("GET", "/", None).await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    let wrong = api.call("PUT", "/api/tunnels", None).await;
    assert_error(
        &wrong,
        StatusCode::METHOD_NOT_ALLOWED,
        error_code::METHOD_NOT_ALLOWED,
    );
    assert_eq!(wrong.headers["allow"], "GET, POST");
    assert_error(
        &api.call("POST", "/api/status", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        error_code::METHOD_NOT_ALLOWED,
    );

    // Form bodies are refused, as by ngrok since 3.x.
    let form = Request::post("/api/tunnels")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"name=x&proto=http&addr=80")))
        .unwrap();
    assert_error(
        &api.send(form).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        error_code::UNSUPPORTED_MEDIA_TYPE,
    );
    let untyped = Request::post("/api/endpoints")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_error(
        &api.send(untyped).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        error_code::UNSUPPORTED_MEDIA_TYPE,
    );

    let charset = Request::post("/api/tunnels")
        .header("host", "localhost")
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from_static(b"{\"name\":")))
        .unwrap();
    let malformed = api.send(charset).await;
    assert_error(
        &malformed,
        StatusCode::BAD_REQUEST,
        error_code::INVALID_CONFIG,
    );
    assert!(
        malformed.json["details"]["err"]
            .as_str()
            .unwrap()
            .contains("EOF")
    );

    // Over the limit: refused from Content-Length, and while reading a chunked body.
    let big = Bytes::from(vec![b' '; MAX_API_BODY + 1]);
    let declared = Request::post("/api/endpoints")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(big.clone()))
        .unwrap();
    assert_error(
        &api.send(declared).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        error_code::BODY_TOO_LARGE,
    );
    let chunks: Vec<Result<hyper::body::Frame<Bytes>, Infallible>> = big
        .chunks(64 * 1024)
        .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let tcp = TcpStream::connect(api.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let chunked = Request::post("/api/endpoints")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(http_body_util::StreamBody::new(futures::stream::iter(
            chunks,
        )))
        .unwrap();
    let resp = sender.send_request(chunked).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn host_allow_list() {
    let api = start(true, &[".example.com", "10.0.0.0/8"]).await;
    let cases = [
        (Some("localhost:4040"), StatusCode::OK),
        (Some("127.0.0.1:4040"), StatusCode::OK),
        (Some("[::1]:4040"), StatusCode::OK),
        (Some("agent.example.com"), StatusCode::OK),
        (Some("agent.example.com:4040"), StatusCode::OK),
        (Some("10.20.30.40:4040"), StatusCode::OK),
        (Some("example.com"), StatusCode::FORBIDDEN),
        (Some("evil.com"), StatusCode::FORBIDDEN),
        (Some("localhost.evil.com"), StatusCode::FORBIDDEN),
        (Some("bad host"), StatusCode::FORBIDDEN),
        (None, StatusCode::BAD_REQUEST),
    ];
    for (host, want) in cases {
        let answer = api.send(api.with_host(host, "/api/status")).await;
        assert_eq!(answer.status, want, "{host:?}: {}", answer.json);
        if want == StatusCode::FORBIDDEN {
            assert_error(&answer, want, error_code::HOST_NOT_ALLOWED);
        }
        if want == StatusCode::BAD_REQUEST {
            assert_error(&answer, want, error_code::MISSING_HOST);
        }
    }
    // Refused before anything else: no route, method or body is looked at.
    let evil_post = Request::post("/api/tunnels")
        .header("host", "evil.com")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"name": "x", "proto": "tcp", "addr": "22"}).to_string(),
        )))
        .unwrap();
    assert_eq!(api.send(evil_post).await.status, StatusCode::FORBIDDEN);
    assert!(api.control.endpoints().is_empty());
}

/// An origin answering `hello` (or the body length for POSTs).
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let n = req.into_body().collect().await.map(|b| b.to_bytes().len());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                        "hello {}",
                        n.unwrap_or(0)
                    )))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends requests through the inspecting forwarder of endpoint `name` so that they are captured.
async fn visit(
    ring: &Arc<Inspector>,
    name: &str,
    upstream: SocketAddr,
    reqs: Vec<Request<Full<Bytes>>>,
) {
    let fwd = Arc::new(HttpForward {
        tunnel_name: name.into(),
        upstream: Upstream::parse(&upstream.to_string(), UpstreamScheme::Http).unwrap(),
        upstream_http2: false,
        proxy_protocol: None,
        inspector: Some(ring.clone()),
        counters: Arc::new(CounterCells::default()),
    });
    let (visitor, agent) = tokio::io::duplex(256 * 1024);
    tokio::spawn(crate::inspect::serve_http(
        agent,
        "198.51.100.9:5000".parse().unwrap(),
        fwd,
    ));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(visitor))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut watch = ring.watch();
    let before = *watch.borrow();
    let n = reqs.len() as u64;
    for req in reqs {
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        resp.into_body().collect().await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|c| *c >= before + n))
        .await
        .unwrap()
        .unwrap();
}

fn visitor_get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "app.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn captured_requests_list_get_replay_clear() {
    let api = start(true, &[]).await;
    let ring = api.inspector.clone().unwrap();
    let up = origin().await;
    for (name, port) in [("web", up.port()), ("down", 1)] {
        api.control
            .start(EndpointConfig {
                name: name.into(),
                upstream: crate::config::UpstreamConfig {
                    url: format!("127.0.0.1:{port}"),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let big = Request::post("/big")
        .header("host", "app.example.com")
        .body(Full::new(Bytes::from(vec![b'z'; MAX_CAPTURED_BODY + 1])))
        .unwrap();
    visit(
        &ring,
        "web",
        up,
        vec![visitor_get("/a"), visitor_get("/b"), big],
    )
    .await;
    visit(&ring, "other", up, vec![visitor_get("/c")]).await;

    let all = api.call("GET", "/api/requests/http", None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.json["uri"], "/api/requests/http");
    let requests = all.json["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0]["request"]["uri"], "/c");
    assert_eq!(requests[0]["tunnel_name"], "other");
    assert_eq!(requests[0]["remote_addr"], "198.51.100.9");

    let web = api
        .call("GET", "/api/requests/http?limit=2&tunnel_name=web", None)
        .await;
    let web = web.json["requests"].as_array().unwrap().clone();
    assert_eq!(web.len(), 2);
    assert_eq!(web[0]["request"]["uri"], "/big");
    assert_eq!(web[1]["request"]["uri"], "/b");
    for bad in ["limit=x", "limit=-1", "limit="] {
        assert_error(
            &api.call("GET", &format!("/api/requests/http?{bad}"), None)
                .await,
            StatusCode::BAD_REQUEST,
            error_code::BAD_QUERY,
        );
    }
    let clamped = api.call("GET", "/api/requests/http?limit=5000", None).await;
    assert_eq!(clamped.status, StatusCode::OK);

    let b_id = web[1]["id"].as_str().unwrap().to_owned();
    let one = api
        .call("GET", &format!("/api/requests/http/{b_id}"), None)
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["uri"], format!("/api/requests/http/{b_id}"));
    assert_eq!(one.json["response"]["status"], "200 OK");
    assert_error(
        &api.call("GET", "/api/requests/http/0123456789abcdef", None)
            .await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );

    // Replay: a new capture appears.
    let replayed = api
        .call("POST", "/api/requests/http", Some(json!({"id": b_id})))
        .await;
    assert_eq!(replayed.status, StatusCode::NO_CONTENT, "{}", replayed.json);
    let newest = ring.recent(1)[0].clone();
    assert_ne!(newest.id, b_id);
    assert_eq!(newest.request.uri, "/b");
    assert_eq!(&newest.response.as_ref().unwrap().body.data[..], b"hello 0");

    assert_error(
        &api.call(
            "POST",
            "/api/requests/http",
            Some(json!({"id": "0123456789abcdef"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    let big_id = web[0]["id"].as_str().unwrap();
    assert_error(
        &api.call("POST", "/api/requests/http", Some(json!({"id": big_id})))
            .await,
        StatusCode::BAD_REQUEST,
        error_code::REPLAY_TRUNCATED,
    );
    let down = api
        .call(
            "POST",
            "/api/requests/http",
            Some(json!({"id": b_id, "tunnel_name": "down"})),
        )
        .await;
    assert_error(&down, StatusCode::BAD_GATEWAY, error_code::UPSTREAM_FAILED);
    assert_error(
        &api.call(
            "POST",
            "/api/requests/http",
            Some(json!({"id": b_id, "tunnel_name": "nope"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    assert_error(
        &api.call("POST", "/api/requests/http", Some(json!({"ident": b_id})))
            .await,
        StatusCode::BAD_REQUEST,
        error_code::INVALID_CONFIG,
    );

    let cleared = api.call("DELETE", "/api/requests/http", None).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    let empty = api.call("GET", "/api/requests/http", None).await;
    assert_eq!(empty.json["requests"], json!([]));
}

#[tokio::test]
async fn captured_requests_when_inspection_is_off() {
    let api = start(false, &[]).await;
    let list = api.call("GET", "/api/requests/http", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json["requests"], json!([]));
    assert_error(
        &api.call("GET", "/api/requests/http/0123456789abcdef", None)
            .await,
        StatusCode::NOT_FOUND,
        error_code::NOT_FOUND,
    );
    assert_error(
        &api.call(
            "POST",
            "/api/requests/http",
            Some(json!({"id": "0123456789abcdef"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        error_code::INSPECTION_DISABLED,
    );
    assert_eq!(
        api.call("DELETE", "/api/requests/http", None).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let api = start(true, &[]).await;
    // Fill every slot with an idle connection that has been served once (so it is accepted).
    let mut idle = Vec::new();
    for _ in 0..MAX_API_CONNECTIONS {
        let mut tcp = TcpStream::connect(api.addr).await.unwrap();
        tcp.write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        tcp.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        idle.push(tcp);
    }
    let mut extra = TcpStream::connect(api.addr).await.unwrap();
    extra
        .write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    let waited = tokio::time::timeout(Duration::from_millis(300), extra.read_exact(&mut buf)).await;
    assert!(waited.is_err(), "served past the connection limit");
    drop(idle.pop());
    tokio::time::timeout(Duration::from_secs(5), extra.read_exact(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let mut api = start(true, &[]).await;
    assert_eq!(
        api.call("GET", "/api/status", None).await.status,
        StatusCode::OK
    );
    api.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut api.served)
        .await
        .expect("serve returns")
        .unwrap();
    assert!(TcpStream::connect(api.addr).await.is_err());
}

#[test]
fn routes() {
    assert_eq!(Route::of("/api"), Some(Route::Root));
    assert_eq!(Route::of("/api/"), Some(Route::Root));
    assert_eq!(Route::of("/api/tunnels/"), Some(Route::Tunnels));
    assert_eq!(
        Route::of("/api/tunnels/my%20app"),
        Some(Route::Tunnel("my app".into()))
    );
    assert_eq!(Route::of("/api/tunnels/a%2Fb"), None);
    assert_eq!(Route::of("/api/tunnels/%zz"), None);
    assert_eq!(Route::of("/api/tunnels/%+1"), None);
    assert_eq!(Route::of("/api/tunnels/%4"), None);
    assert_eq!(Route::of("/api/tunnels/a/b"), None);
    assert_eq!(
        Route::of("/api/requests/http/548fb5c700000002"),
        Some(Route::Request("548fb5c700000002".into()))
    );
    assert_eq!(Route::of("/api/requests"), None);
    assert_eq!(Route::of("/apis"), None);
    assert_eq!(path_segment("my app/1"), "my%20app%2F1");
}
