//! Shared test fixtures: a SQLite store in a temp dir, destinations and subscriptions, and a
//! webhook receiver that can be taken down (connections refused) and brought back up on the
//! same port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use warren_events::{EventsConfig, Target};
use warren_store::Store;
use warren_store::events::{NewEventDestination, NewEventSubscription};

/// Longest any test waits for something to arrive.
pub const WAIT: Duration = Duration::from_secs(20);

/// A store in a fresh temp dir (kept while this lives).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub store: Store,
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = Store::connect(&url).await.expect("store connects");
    Fixture { dir, url, store }
}

/// Fast retries and polling, for tests.
pub fn config() -> EventsConfig {
    EventsConfig {
        batch_max: 16,
        max_attempts: 1000,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        poll_interval: Duration::from_millis(100),
        usage_flush_interval: Duration::from_secs(3600),
        delivery_timeout: Duration::from_secs(2),
        ..EventsConfig::default()
    }
}

/// Creates a destination with `target` (validated), returns its id.
pub async fn destination(store: &Store, target: Value) -> String {
    let target = Target::parse(&target).expect("valid target");
    store
        .create_event_destination(NewEventDestination {
            description: String::new(),
            metadata: String::new(),
            format: "json".into(),
            target: target.to_stored_json().to_string(),
        })
        .await
        .expect("destination created")
        .id
}

/// Subscribes `destinations` to `types`.
pub async fn subscribe(store: &Store, types: &[&str], destinations: &[&str]) -> String {
    store
        .create_event_subscription(NewEventSubscription {
            description: String::new(),
            metadata: String::new(),
            sources: types.iter().map(|t| t.to_string()).collect(),
            destination_ids: destinations.iter().map(|d| d.to_string()).collect(),
        })
        .await
        .expect("subscription created")
        .id
}

/// Waits until `cond` holds, polling every 20 ms, for at most [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct State {
    secret: String,
    events: Mutex<Vec<Value>>,
    batches: AtomicU64,
    /// The most events one accepted batch held.
    max_batch: AtomicU64,
    connections: AtomicU64,
    bad_signatures: AtomicU64,
    /// Status answered to every request when non-zero (nothing kept).
    fail_status: AtomicU16,
    notify: tokio::sync::Notify,
}

/// A webhook receiver on a fixed 127.0.0.1 port.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Receiver {
    /// A receiver that is up.
    pub async fn start(secret: &str) -> Receiver {
        let r = Receiver::down_at_first(secret).await;
        r.up().await;
        r
    }

    /// A receiver whose port is chosen but refuses connections until [`Receiver::up`].
    pub async fn down_at_first(secret: &str) -> Receiver {
        let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        Receiver {
            addr,
            state: Arc::new(State {
                secret: secret.to_owned(),
                events: Mutex::new(Vec::new()),
                batches: AtomicU64::new(0),
                max_batch: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                bad_signatures: AtomicU64::new(0),
                fail_status: AtomicU16::new(0),
                notify: tokio::sync::Notify::new(),
            }),
            server: Mutex::new(None),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Starts accepting on the receiver's port.
    pub async fn up(&self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind receiver port");
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// Closes the listener and every open connection; returns once the port is free.
    pub async fn down(&self) {
        let task = self.server.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Answers every request with `status` (0: accept again).
    pub fn fail_with(&self, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.events.lock().unwrap().clone()
    }

    pub fn bad_signatures(&self) -> u64 {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn batches(&self) -> u64 {
        self.state.batches.load(Ordering::SeqCst)
    }

    /// The most events one accepted batch held.
    pub fn max_batch(&self) -> u64 {
        self.state.max_batch.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` events arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.state.notify.notified();
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {n} events, got {}", events.len());
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(task) = self.server.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn handle(state: &State, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let reply = |status: u16, body: &str| {
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    let signature = req
        .headers()
        .get("warren-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let count: Option<usize> = req
        .headers()
        .get("warren-event-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(400, "bad body"),
    };
    let status = state.fail_status.load(Ordering::SeqCst);
    if status != 0 {
        return reply(status, "receiver told to fail");
    }
    if !state.secret.is_empty()
        && !signature
            .as_deref()
            .is_some_and(|s| verify(&state.secret, s, &body))
    {
        state.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return reply(401, "bad signature");
    }
    let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, "not a JSON array");
    };
    if count != Some(batch.len()) {
        return reply(400, "Warren-Event-Count does not match");
    }
    state
        .max_batch
        .fetch_max(batch.len() as u64, Ordering::SeqCst);
    state.events.lock().unwrap().extend(batch);
    state.batches.fetch_add(1, Ordering::SeqCst);
    state.notify.notify_waiters();
    reply(200, "ok")
}

/// Checks `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        if let Some(x) = part.strip_prefix("t=") {
            t = Some(x);
        } else if let Some(x) = part.strip_prefix("v1=") {
            v1 = Some(x);
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}
