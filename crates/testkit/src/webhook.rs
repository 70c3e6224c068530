//! A webhook receiver for event destinations: collects the JSON batches Warren posts, checks
//! their signature, and can be told to fail (answer 503) to play a destination that is down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;

/// A running receiver on 127.0.0.1, port 0. Ends with the test's runtime.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    secret: String,
    events: Mutex<Vec<Value>>,
    /// While true every request is answered 503 and nothing is kept.
    down: AtomicBool,
    /// Requests answered 503.
    refused: AtomicU64,
    /// Requests whose signature did not verify (answered 401).
    bad_signatures: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Receiver {
    /// Starts a receiver that expects batches signed with `secret` (empty: unsigned).
    pub async fn start(secret: &str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("receiver binds");
        let addr = listener.local_addr().expect("receiver address");
        let state = Arc::new(State {
            secret: secret.to_owned(),
            events: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Receiver { addr, state }
    }

    /// The URL to give the destination.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// Makes the receiver fail every request (`true`) or accept again (`false`).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Requests refused while down.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Requests with a bad or missing signature.
    pub fn bad_signatures(&self) -> u64 {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    /// Every event received so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.state.events.lock().expect("events lock").clone()
    }

    /// Waits until `check` holds for the events received, or panics after `limit`.
    pub async fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&[Value]) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.state.notify.notified();
            if check(&self.events()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "timed out waiting for {what}; received {:#?}",
                    self.events()
                        .iter()
                        .map(|e| e["event_type"].clone())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let signature = req
        .headers()
        .get("warren-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return reply(StatusCode::BAD_REQUEST);
    };
    if state.down.load(Ordering::SeqCst) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return reply(StatusCode::SERVICE_UNAVAILABLE);
    }
    if !state.secret.is_empty() && !verify(&state.secret, signature.as_deref(), &body) {
        state.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return reply(StatusCode::UNAUTHORIZED);
    }
    let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&body) else {
        return reply(StatusCode::BAD_REQUEST);
    };
    state.events.lock().expect("events lock").extend(batch);
    state.notify.notify_waiters();
    reply(StatusCode::NO_CONTENT)
}

/// Checks `Warren-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
pub fn verify(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(expected) = hex_decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn hex_decode(s: &str) -> Result<Vec<u8>, ()> {
    if !s.len().is_multiple_of(2) {
        return Err(());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| ()))
        .collect()
}

fn reply(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}
