//! `warren-bench events`: what event export costs, in two steps.
//!
//! 1. **Outbox throughput**, in process: the `warren-events` pipeline over a fresh SQLite store
//!    in a temp directory, one subscription (`http_request_complete.v0`) to one destination.
//!    N events with a realistic object are emitted back to back; the row's time ends when the
//!    destination holds all N: an in-process webhook receiver counting the events in the JSON
//!    array batches it is posted, or the lines in the `file` destination's directory. Each
//!    pipeline row is compared with a baseline measured in the same run: the same events POSTed
//!    straight to the same receiver in batches of the pipeline's batch size by one hyper
//!    connection, and the same JSON lines appended to a file through a `BufWriter`.
//! 2. **The data plane with export off and on**: the release `warrend`, the bench's agent (the
//!    ngrok crate) forwarding `bench.localhost` to the bench's HTTP origin, and the built-in load
//!    generator through the public HTTP port. A `file` destination exists throughout; a
//!    subscription of `http_request_complete.v0` to it is created (export on) and deleted
//!    (export off) through the REST API between runs, alternating off/on. Each run reports
//!    req/s, p50/p99, warrend's CPU per request and how many events the file received.
//!
//! Figures are printed as ratios against their baseline, never asserted. Everything binds and
//! targets 127.0.0.1; every wait is bounded in time, every loop in count.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::time::Instant;
use warren_events::types::HTTP_REQUEST_COMPLETE;
use warren_events::{Envelope, Events, EventsConfig, SystemClock, Target};
use warren_store::Store;
use warren_store::events::{NewEventDestination, NewEventSubscription};

use crate::load::{self, Load, LoadGen, LoadResult};
use crate::procs::{CpuMeter, Proc, retry};
use crate::tunnels::{HTTP_DOMAIN, start_warrend};

/// Most events one outbox measurement may emit (`--events`): the pipeline's queue is sized to
/// hold them all, so this bounds the bench's memory.
const MAX_EVENTS: u64 = 1_000_000;
/// Largest request body the webhook receiver reads; a bigger one is refused (413).
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Rotation size given to every `file` destination: large enough that no run rotates (the line
/// counter follows renamed files anyway).
const FILE_MAX_BYTES: u64 = 1 << 30;
/// How often a destination's count is read while waiting.
const POLL: Duration = Duration::from_millis(10);
/// A wait ends early when the count has not moved for this long (events lost or stuck).
const STALL: Duration = Duration::from_secs(20);
/// Data plane: how long the event count must stay still before a run's events are read.
const QUIET: Duration = Duration::from_millis(500);
/// Data plane: a run's count is taken as final when it has not moved for this long.
const PLANE_STALL: Duration = Duration::from_secs(3);
/// Bound on readiness waits (agent, API, the first event after export is turned on).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the pipeline's shutdown after a measurement.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// The webhook destination's signing secret.
const SECRET: &str = "bench-webhook-secret";

#[derive(Args)]
pub struct EventsArgs {
    /// Fewer events and shorter load runs: a smoke run of every step.
    #[arg(long)]
    quick: bool,
    /// The warrend binary [default: `warrend` next to this binary].
    #[arg(long)]
    warrend: Option<PathBuf>,
    /// Where events.txt and logs/ go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
    /// Events per outbox measurement [default: 100000, quick: 10000].
    #[arg(long)]
    events: Option<u64>,
    /// Time bound of each outbox measurement, seconds; a row that hits it counts what arrived.
    #[arg(long, default_value_t = 300)]
    phase_limit: u64,
    /// Seconds of each data-plane load run [default: 10, quick: 3].
    #[arg(long)]
    duration: Option<u64>,
    /// Off/on pairs of data-plane load runs; the median of each side is reported.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Keep-alive connections of each data-plane load run.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measure the outbox step only.
    #[arg(long, conflicts_with = "data_plane_only")]
    outbox_only: bool,
    /// Measure the data-plane step only.
    #[arg(long)]
    data_plane_only: bool,
}

/// The resolved settings of one run.
struct Settings {
    /// `None` when the data-plane step is not run.
    warrend: Option<PathBuf>,
    logs: PathBuf,
    events: u64,
    /// The pipeline's delivery batch size; the webhook baseline posts batches of this size.
    batch: usize,
    limit: Duration,
    duration: Duration,
    warmup: Duration,
    repeats: usize,
    connections: usize,
    outbox: bool,
}

/// `warren-bench events`.
pub async fn main(args: EventsArgs) -> anyhow::Result<()> {
    let quick = args.quick;
    let data_plane = !args.outbox_only;
    let warrend = if data_plane {
        let path = match args.warrend {
            Some(path) => path,
            None => std::env::current_exe()?
                .parent()
                .context("binary directory")?
                .join("warrend"),
        };
        anyhow::ensure!(
            path.exists(),
            "no warrend at {} (build it in release)",
            path.display()
        );
        Some(path)
    } else {
        None
    };
    let events = args.events.unwrap_or(if quick { 10_000 } else { 100_000 });
    anyhow::ensure!(
        (1..=MAX_EVENTS).contains(&events),
        "--events must be between 1 and {MAX_EVENTS}"
    );
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    for log in ["warrend.log", "origin.log", "agent.log"] {
        let _ = std::fs::remove_file(logs.join(log));
    }
    let s = Settings {
        warrend,
        logs,
        events,
        batch: EventsConfig::default().batch_max.max(1),
        limit: Duration::from_secs(args.phase_limit.max(1)),
        duration: Duration::from_secs(args.duration.unwrap_or(if quick { 3 } else { 10 }).max(1)),
        warmup: Duration::from_secs(if quick { 1 } else { 2 }),
        repeats: args.repeats.clamp(1, 10),
        connections: args.connections.clamp(1, 1024),
        outbox: !args.data_plane_only,
    };

    let mut report = Report::default();
    if s.outbox {
        outbox_step(&s, &mut report).await;
    }
    if s.warrend.is_some() {
        eprintln!("[bench] events: data plane, export off vs on");
        match data_plane_step(&s, &mut report.plane).await {
            Ok(()) => {}
            Err(error) => {
                eprintln!("[bench] events: data plane failed: {error:#}");
                report.notes.push(format!("data plane: {error:#}"));
                report.failed = true;
            }
        }
    }

    report.failed |= report.outbox.iter().any(|r| r.result.is_err())
        || report.plane.iter().any(|r| r.result.is_err());
    let text = render(&s, &report);
    print!("{text}");
    let file = args.out.join("events.txt");
    std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "\n(written to {}; process logs in {})",
        file.display(),
        s.logs.display()
    );
    if report.failed {
        bail!("some steps failed (see above)");
    }
    Ok(())
}

/// Everything one run measured.
#[derive(Default)]
struct Report {
    outbox: Vec<OutboxRow>,
    plane: Vec<PlaneRun>,
    notes: Vec<String>,
    failed: bool,
}

// ---------------------------------------------------------------------------------------------
// Step 1: outbox throughput
// ---------------------------------------------------------------------------------------------

/// One row of step 1.
struct OutboxRow {
    what: String,
    result: Result<Delivery, String>,
    /// Index of the row this one is compared with.
    baseline: Option<usize>,
}

/// How a batch of N events reached its destination.
#[derive(Debug, Clone, Copy, Default)]
struct Delivery {
    /// Events the destination holds at the end (N unless the row stopped early).
    delivered: u64,
    /// Seconds from the first event to the last one delivered (or to the stop).
    seconds: f64,
    /// Pipeline rows: seconds until every `emit` had returned.
    emitted_seconds: Option<f64>,
    /// Pipeline rows: seconds until [`Events::flush`] returned (every event in the outbox).
    outbox_seconds: Option<f64>,
    /// Pipeline rows: events the pipeline dropped (its `warren_events_dropped_total`).
    dropped: Option<u64>,
    /// Why the row stopped before N, if it did.
    stopped: Option<Stop>,
}

impl Delivery {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.delivered as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Why a wait ended before its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The count did not move for [`STALL`].
    Stalled,
    /// The row's time bound passed.
    TimeBound,
}

/// The four rows of step 1, in order: webhook pipeline, its baseline, file pipeline, its
/// baseline.
async fn outbox_step(s: &Settings, report: &mut Report) {
    let n = s.events;
    let mut push = |what: String, result: anyhow::Result<Delivery>, baseline: Option<usize>| {
        let result = result.map_err(|e| format!("{e:#}"));
        if let Err(error) = &result {
            eprintln!("[bench] events: {what} failed: {error}");
        }
        report.outbox.push(OutboxRow {
            what,
            result,
            baseline,
        });
        report.outbox.len() - 1
    };

    eprintln!("[bench] events: {n} events direct to the webhook receiver (baseline)");
    let base = push(
        format!("baseline: POST to the receiver, {} per batch", s.batch),
        webhook_baseline(s).await,
        None,
    );
    eprintln!("[bench] events: {n} events through the outbox to a webhook");
    push(
        "pipeline: emit -> sqlite outbox -> http webhook".into(),
        pipeline(s, Sink::Webhook).await,
        Some(base),
    );
    eprintln!("[bench] events: {n} JSON lines appended to a file (baseline)");
    let base = push(
        "baseline: append lines with a BufWriter".into(),
        file_baseline(s).await,
        None,
    );
    eprintln!("[bench] events: {n} events through the outbox to a file");
    push(
        "pipeline: emit -> sqlite outbox -> file".into(),
        pipeline(s, Sink::File).await,
        Some(base),
    );
}

/// The destination kind of a pipeline row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    Webhook,
    File,
}

/// N events through a fresh pipeline to one destination of kind `sink`.
async fn pipeline(s: &Settings, sink: Sink) -> anyhow::Result<Delivery> {
    let dir = tempfile::Builder::new()
        .prefix("warren-bench-events-")
        .tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("warren.db").display());
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening {url}"))?;
    let config = EventsConfig {
        // Every event of the burst fits: none is dropped for want of room (traffic events are
        // dropped, not waited for, when the queue is full).
        queue_capacity: usize::try_from(s.events)?.max(EventsConfig::default().queue_capacity),
        ..EventsConfig::default()
    };
    let events = Events::new(store.clone(), config, Arc::new(SystemClock));
    events.start().await.context("starting the pipeline")?;
    let result = pipeline_run(s, sink, dir.path(), &store, &events).await;
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, events.shutdown())
        .await
        .is_err()
    {
        eprintln!("[bench] events: the pipeline did not shut down within {SHUTDOWN_TIMEOUT:?}");
    }
    store.close().await;
    result
}

async fn pipeline_run(
    s: &Settings,
    sink: Sink,
    dir: &Path,
    store: &Store,
    events: &Events,
) -> anyhow::Result<Delivery> {
    // The destination: a receiver here, or a directory holding only the destination's file.
    let (target, mut counter): (Value, Counter) = match sink {
        Sink::Webhook => {
            let receiver = Receiver::start().await?;
            (
                json!({"http": {"url": receiver.url(), "secret": SECRET}}),
                Counter::Webhook(receiver),
            )
        }
        Sink::File => {
            let files = dir.join("events");
            std::fs::create_dir_all(&files)?;
            (
                file_target(&files.join("events.jsonl")),
                Counter::Files(LineCounter::new(files)),
            )
        }
    };
    let destination = store
        .create_event_destination(NewEventDestination {
            description: "bench".into(),
            metadata: String::new(),
            format: "json".into(),
            target: stored_target(&target)?,
        })
        .await
        .context("creating the destination")?;
    store
        .create_event_subscription(NewEventSubscription {
            description: "bench".into(),
            metadata: String::new(),
            sources: vec![HTTP_REQUEST_COMPLETE.into()],
            destination_ids: vec![destination.id.clone()],
        })
        .await
        .context("creating the subscription")?;
    events
        .subscriptions_changed()
        .await
        .context("reloading subscriptions")?;
    anyhow::ensure!(
        events.wants(HTTP_REQUEST_COMPLETE),
        "the pipeline does not want {HTTP_REQUEST_COMPLETE} after the subscription was created"
    );

    let start = Instant::now();
    let deadline = start + s.limit;
    for i in 0..s.events {
        events.emit(HTTP_REQUEST_COMPLETE, None, request_object(i));
        // Let the writer and delivery tasks in now and then, as a busy data plane would.
        if i % 256 == 255 {
            tokio::task::yield_now().await;
        }
    }
    let emitted = start.elapsed().as_secs_f64();
    let outbox = tokio::time::timeout_at(deadline, events.flush())
        .await
        .ok()
        .map(|()| start.elapsed().as_secs_f64());
    let waited = wait_count(
        &mut counter,
        Wait {
            target: s.events,
            quiet: Duration::ZERO,
            stall: STALL,
            start,
            deadline,
        },
    )
    .await?;
    let mut delivery = waited.delivery(start);
    delivery.emitted_seconds = Some(emitted);
    delivery.outbox_seconds = outbox;
    let mut metrics = String::new();
    events.encode_metrics(&mut metrics);
    delivery.dropped = metric(&metrics, EVENTS_DROPPED);
    if let (Some(_), Counter::Webhook(receiver)) = (delivery.stopped, &counter) {
        let rejected = receiver.state.rejected.load(Ordering::Relaxed);
        if rejected > 0 {
            bail!(
                "{} of {} events arrived; the receiver refused {rejected} requests (not a JSON array?)",
                delivery.delivered,
                s.events
            );
        }
    }
    Ok(delivery)
}

/// The `file` target for `path`, with a rotation size no run reaches.
fn file_target(path: &Path) -> Value {
    json!({"file": {"path": path.display().to_string(), "max_bytes": FILE_MAX_BYTES}})
}

/// The stored form of a `target` object, validated as the API validates it.
fn stored_target(target: &Value) -> anyhow::Result<String> {
    let parsed = Target::parse(target).map_err(|e| anyhow::anyhow!("{} ({})", e.msg, e.code))?;
    Ok(parsed.to_stored_json().to_string())
}

/// The same N events as the pipeline rows, as envelopes, POSTed to a fresh receiver in
/// batches of the pipeline's batch size over one keep-alive connection.
async fn webhook_baseline(s: &Settings) -> anyhow::Result<Delivery> {
    let receiver = Receiver::start().await?;
    let tcp = TcpStream::connect(receiver.addr).await?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(conn);
    let start = Instant::now();
    let deadline = start + s.limit;
    let mut next = 0u64;
    let mut stopped = None;
    while next < s.events {
        if Instant::now() >= deadline {
            stopped = Some(Stop::TimeBound);
            break;
        }
        let end = (next + s.batch as u64).min(s.events);
        let mut body = Vec::with_capacity((end - next) as usize * 640 + 2);
        body.push(b'[');
        for i in next..end {
            if i > next {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &envelope(i))?;
        }
        body.push(b']');
        let request = http::Request::post("/events")
            .header(http::header::HOST, receiver.addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let sent = async {
            // The previous exchange may still be finishing on the connection task.
            sender.ready().await?;
            sender.send_request(request).await
        };
        let response = tokio::time::timeout_at(deadline, sent)
            .await
            .context("the receiver did not answer within the time bound")??;
        let status = response.status();
        response.into_body().collect().await?;
        if !status.is_success() {
            bail!("the receiver answered {status}");
        }
        next = end;
    }
    let seconds = start.elapsed().as_secs_f64();
    conn.abort();
    Ok(Delivery {
        delivered: receiver.state.events.load(Ordering::Relaxed),
        seconds,
        stopped,
        ..Delivery::default()
    })
}

/// The same N envelopes as JSON lines, appended to a new file through a 64 KiB `BufWriter`
/// and flushed (not fsynced) at the end.
async fn file_baseline(s: &Settings) -> anyhow::Result<Delivery> {
    let dir = tempfile::Builder::new()
        .prefix("warren-bench-lines-")
        .tempdir()?;
    let path = dir.path().join("events.jsonl");
    let (n, limit) = (s.events, s.limit);
    tokio::task::spawn_blocking(move || -> anyhow::Result<Delivery> {
        let start = std::time::Instant::now();
        let file = std::fs::File::create(&path)?;
        let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
        let mut written = 0;
        let mut stopped = None;
        for i in 0..n {
            if i % 1024 == 0 && start.elapsed() >= limit {
                stopped = Some(Stop::TimeBound);
                break;
            }
            serde_json::to_writer(&mut out, &envelope(i))?;
            out.write_all(b"\n")?;
            written += 1;
        }
        out.flush()?;
        Ok(Delivery {
            delivered: written,
            seconds: start.elapsed().as_secs_f64(),
            stopped,
            ..Delivery::default()
        })
    })
    .await?
}

/// An `http_request_complete.v0`-like object of about 400 bytes of JSON; `i` varies the path,
/// the query and the timings so no two are alike.
fn request_object(i: u64) -> Value {
    let start_ts = format!(
        "2026-01-01T00:{:02}:{:02}.{:06}Z",
        (i / 60_000_000) % 60,
        (i / 1_000_000) % 60,
        i % 1_000_000
    );
    json!({
        "conn": {
            "client_ip": "127.0.0.1",
            "server_ip": "127.0.0.1",
            "server_name": HTTP_DOMAIN,
            "server_port": 8080,
            "start_ts": start_ts,
        },
        "http": {
            "request": {
                "method": "get",
                "url": {
                    "host": HTTP_DOMAIN,
                    "path": format!("/devices/{}/status", i % 10_000),
                    "query": format!("seq={i}"),
                    "scheme": "http",
                },
                "user_agent": "warren-bench/1",
                "body_length": 0,
                "headers": {"Accept": ["*/*"]},
            },
            "response": {"status_code": 200, "body_length": 28},
        },
    })
}

/// Event `i` as the pipeline delivers it: the envelope around [`request_object`].
fn envelope(i: u64) -> Envelope {
    Envelope {
        event_id: format!("ev_{i:027}"),
        event_type: HTTP_REQUEST_COMPLETE.into(),
        event_timestamp: "2026-01-01T00:00:00Z".into(),
        account_id: EventsConfig::default().account_id,
        principal: None,
        object: serde_json::value::to_raw_value(&request_object(i))
            .expect("a JSON value serialises"),
    }
}

// ---------------------------------------------------------------------------------------------
// Destinations as the bench sees them: a webhook receiver and a line counter
// ---------------------------------------------------------------------------------------------

/// A webhook receiver on 127.0.0.1 port 0: counts the events in each JSON array it is posted
/// and answers 204 (400 when the body is not a JSON array, 413 when it is too big). Stops
/// serving when dropped.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ReceiverState {
    /// Events received in accepted batches.
    events: AtomicU64,
    /// Requests answered 400 or 413.
    rejected: AtomicU64,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ReceiverState::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so aborting this task closes them too.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let _ = tcp.set_nodelay(true);
                let state = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(receive(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, state, task })
    }

    fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    state: &ReceiverState,
    req: http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let reply = |status: http::StatusCode| {
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        response
    };
    let body = match Limited::new(req.into_body(), MAX_BATCH_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            state.rejected.fetch_add(1, Ordering::Relaxed);
            return reply(http::StatusCode::PAYLOAD_TOO_LARGE);
        }
    };
    match serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body) {
        Ok(batch) => {
            state
                .events
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            reply(http::StatusCode::NO_CONTENT)
        }
        Err(_) => {
            state.rejected.fetch_add(1, Ordering::Relaxed);
            reply(http::StatusCode::BAD_REQUEST)
        }
    }
}

/// Counts the lines written to every file in one directory, reading only what is new on each
/// call. Files are followed by inode, so a file renamed by rotation keeps its count and is not
/// read twice.
struct LineCounter {
    dir: PathBuf,
    /// Bytes already read, by inode.
    offsets: HashMap<u64, u64>,
    lines: u64,
}

impl LineCounter {
    fn new(dir: PathBuf) -> LineCounter {
        LineCounter {
            dir,
            offsets: HashMap::new(),
            lines: 0,
        }
    }

    /// Lines (newline characters) written so far.
    fn count(&mut self) -> std::io::Result<u64> {
        let mut buf = vec![0u8; 256 << 10];
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(meta) = entry.metadata() else {
                continue; // removed since the listing
            };
            if !meta.is_file() {
                continue;
            }
            let offset = self.offsets.entry(meta.ino()).or_insert(0);
            if meta.len() < *offset {
                // A new file on a recycled inode.
                *offset = 0;
            }
            if meta.len() == *offset {
                continue;
            }
            let Ok(mut file) = std::fs::File::open(entry.path()) else {
                continue;
            };
            file.seek(SeekFrom::Start(*offset))?;
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                *offset += n as u64;
                self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
        Ok(self.lines)
    }
}

/// A destination whose event count can be read.
enum Counter {
    Webhook(Receiver),
    Files(LineCounter),
}

impl Counter {
    async fn count(&mut self) -> anyhow::Result<u64> {
        match self {
            Counter::Webhook(receiver) => Ok(receiver.state.events.load(Ordering::Relaxed)),
            Counter::Files(lines) => {
                // The directory is read off the runtime's workers: they run the pipeline.
                let mut moved = std::mem::replace(lines, LineCounter::new(PathBuf::new()));
                let (back, counted) = tokio::task::spawn_blocking(move || {
                    let counted = moved.count();
                    (moved, counted)
                })
                .await?;
                *lines = back;
                Ok(counted?)
            }
        }
    }
}

/// What to wait for: `target` events, then `quiet` without a new one; ended early by `stall`
/// without progress or by `deadline`.
struct Wait {
    target: u64,
    quiet: Duration,
    stall: Duration,
    start: Instant,
    deadline: Instant,
}

/// The end of a [`Wait`].
struct Waited {
    count: u64,
    /// When the count first reached the target.
    reached: Option<Instant>,
    stopped: Option<Stop>,
}

impl Waited {
    fn delivery(&self, start: Instant) -> Delivery {
        let end = self.reached.unwrap_or_else(Instant::now);
        Delivery {
            delivered: self.count,
            seconds: (end - start).as_secs_f64(),
            stopped: self.stopped,
            ..Delivery::default()
        }
    }
}

/// Polls `counter` every [`POLL`] until `wait` is satisfied or gives up.
async fn wait_count(counter: &mut Counter, wait: Wait) -> anyhow::Result<Waited> {
    let mut last = counter.count().await?;
    let mut last_change = wait.start.max(Instant::now());
    let mut reached = None;
    loop {
        let now = Instant::now();
        let count = counter.count().await?;
        if count != last {
            last = count;
            last_change = now;
        }
        if count >= wait.target && reached.is_none() {
            reached = Some(now);
        }
        let stopped = if reached.is_some() && now - last_change >= wait.quiet {
            None
        } else if now - last_change >= wait.stall {
            Some(Stop::Stalled)
        } else if now >= wait.deadline {
            Some(Stop::TimeBound)
        } else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        return Ok(Waited {
            count,
            reached,
            stopped: if reached.is_some() { None } else { stopped },
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Step 2: the data plane with export off and on
// ---------------------------------------------------------------------------------------------

/// One load run of step 2.
struct PlaneRun {
    round: usize,
    export: bool,
    result: Result<PlaneFigures, String>,
}

#[derive(Debug, Clone, Copy)]
struct PlaneFigures {
    load: LoadResult,
    /// Lines the destination file gained from the run's start until its count settled.
    events: u64,
    /// The count was still moving, or short of the requests, when the wait gave up.
    events_stopped: Option<Stop>,
    /// Events warrend dropped during the run (its queue was full), from `/metrics`.
    dropped: Option<u64>,
    /// warrend's CPU microseconds per request, from the run's start until the count settled.
    warrend_cpu_us: f64,
}

/// warrend + agent + origin, then warm-up and alternating off/on load runs.
async fn data_plane_step(s: &Settings, runs: &mut Vec<PlaneRun>) -> anyhow::Result<()> {
    let warrend = s.warrend.as_deref().context("no warrend")?;
    let mut origin = Proc::spawn(
        "origin",
        {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.arg("origin");
            cmd
        },
        &s.logs.join("origin.log"),
    )?;
    let (http_origin, stream_origin) = crate::origin::addresses(&mut origin).await?;
    origin.drain_stdout();

    let server = start_warrend(warrend, &s.logs, None).await?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("agent")
        .args(["--server-addr", &server.edge.agent_addr.to_string()])
        .arg("--ca")
        .arg(server.dir.path().join("ca.pem"))
        .args(["--stream-origin", &stream_origin.to_string()])
        .args(["--http-origin", &http_origin.to_string()])
        .args(["--domain", HTTP_DOMAIN])
        .env("WARREN_BENCH_AUTHTOKEN", &server.edge.authtoken);
    let mut agent = Proc::spawn("agent", cmd, &s.logs.join("agent.log"))?;
    agent.line("ready").await?;
    agent.drain_stdout();
    let http_addr = server.http_addr;
    retry("warren http endpoint", READY_TIMEOUT, || {
        load::probe(http_addr, Some(HTTP_DOMAIN))
    })
    .await?;

    let api = Rest {
        addr: server.api_addr,
        key: server.admin_api_key.clone(),
    };
    retry("warrend API", READY_TIMEOUT, || async {
        api.call(http::Method::GET, "/event_destinations", None)
            .await
            .map(drop)
    })
    .await?;
    let files = server.dir.path().join("events");
    std::fs::create_dir_all(&files)?;
    let destination = api
        .call(
            http::Method::POST,
            "/event_destinations",
            Some(json!({
                "description": "warren-bench events",
                "format": "json",
                "target": file_target(&files.join("events.jsonl")),
            })),
        )
        .await
        .context("creating the file destination")?;
    let destination_id = destination["id"]
        .as_str()
        .context("no id in the destination")?
        .to_owned();

    let pid = server.proc.pid()?;
    let result = plane_runs(s, http_addr, &api, &destination_id, files, pid, runs).await;
    agent.stop().await;
    server.proc.stop().await;
    origin.stop().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn plane_runs(
    s: &Settings,
    http_addr: SocketAddr,
    api: &Rest,
    destination_id: &str,
    files: PathBuf,
    warrend_pid: u32,
    runs: &mut Vec<PlaneRun>,
) -> anyhow::Result<()> {
    let generator = LoadGen::Builtin;
    let load = Load {
        addr: http_addr,
        host: Some(HTTP_DOMAIN.to_owned()),
        connections: s.connections,
        duration: s.duration,
    };
    eprintln!("[bench] events: warm-up, export off");
    load::run(
        &generator,
        &Load {
            duration: s.warmup,
            ..load.clone()
        },
    )
    .await
    .context("warm-up")?;

    let mut counter = Counter::Files(LineCounter::new(files));
    let mut subscription: Option<String> = None;
    for round in 1..=s.repeats {
        for export in [false, true] {
            // Switch export, and make sure the switch took.
            if export {
                let before = counter.count().await?;
                let created = api
                    .call(
                        http::Method::POST,
                        "/event_subscriptions",
                        Some(json!({
                            "description": "warren-bench events",
                            "sources": [{"type": HTTP_REQUEST_COMPLETE}],
                            "destination_ids": [destination_id],
                        })),
                    )
                    .await
                    .context("creating the subscription")?;
                subscription = Some(
                    created["id"]
                        .as_str()
                        .context("no id in the subscription")?
                        .to_owned(),
                );
                let first = async {
                    loop {
                        load::probe(http_addr, Some(HTTP_DOMAIN)).await?;
                        if counter.count().await? > before {
                            return anyhow::Ok(());
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                tokio::time::timeout(READY_TIMEOUT, first)
                    .await
                    .context("no event reached the file after the subscription was created")??;
            } else if let Some(id) = subscription.take() {
                api.call(
                    http::Method::DELETE,
                    &format!("/event_subscriptions/{id}"),
                    None,
                )
                .await
                .context("deleting the subscription")?;
            }
            let settled = settle(&mut counter, 0).await?;
            let before = settled.count;

            eprintln!(
                "[bench] events: round {round}, export {}",
                if export { "on" } else { "off" }
            );
            // `/metrics` may not carry the series; the run is measured all the same.
            let dropped_before = api.events_dropped().await.ok();
            let meter = CpuMeter::start(&[warrend_pid])?;
            let result = load::run(&generator, &load).await;
            let result = match result {
                Ok(result) => {
                    // With export on, every answered request should become one event.
                    let expected = if export {
                        before + result.requests + result.errors
                    } else {
                        before
                    };
                    let after = settle(&mut counter, expected).await?;
                    let cpu = meter.stop()?.iter().sum::<f64>();
                    let dropped_after = api.events_dropped().await.ok();
                    Ok(PlaneFigures {
                        load: result,
                        events: after.count - before,
                        events_stopped: after.stopped,
                        dropped: dropped_before
                            .zip(dropped_after)
                            .map(|(a, b)| b.saturating_sub(a)),
                        warrend_cpu_us: cpu * 1e6 / result.requests.max(1) as f64,
                    })
                }
                Err(error) => Err(format!("{error:#}")),
            };
            runs.push(PlaneRun {
                round,
                export,
                result,
            });
        }
    }
    if let Some(id) = subscription {
        let _ = api
            .call(
                http::Method::DELETE,
                &format!("/event_subscriptions/{id}"),
                None,
            )
            .await;
    }
    Ok(())
}

/// Waits until the file holds at least `at_least` lines and has been still for [`QUIET`], or
/// has not moved for [`PLANE_STALL`].
async fn settle(counter: &mut Counter, at_least: u64) -> anyhow::Result<Waited> {
    let start = Instant::now();
    wait_count(
        counter,
        Wait {
            target: at_least,
            quiet: QUIET,
            stall: PLANE_STALL,
            start,
            deadline: start + Duration::from_secs(120),
        },
    )
    .await
}

/// warrend's REST API with the admin key.
struct Rest {
    addr: SocketAddr,
    key: String,
}

impl Rest {
    /// One request on a new connection; the JSON body of a 2xx answer (`null` when empty).
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let bytes = self.raw(method, path, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{path}: not JSON"))
    }

    /// `warren_events_dropped_total` from warrend's `/metrics` (0 when the series is absent).
    async fn events_dropped(&self) -> anyhow::Result<u64> {
        let text = self.raw(http::Method::GET, "/metrics", None).await?;
        Ok(metric(&String::from_utf8_lossy(&text), EVENTS_DROPPED).unwrap_or(0))
    }

    /// One request on a new connection; the body of a 2xx answer.
    async fn raw(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Bytes> {
        let call = async {
            let tcp = TcpStream::connect(self.addr).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
            let conn = tokio::spawn(conn);
            let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
            let request = http::Request::builder()
                .method(method.clone())
                .uri(path)
                .header(http::header::HOST, self.addr.to_string())
                .header(http::header::AUTHORIZATION, format!("Bearer {}", self.key))
                .header("Ngrok-Version", "2")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), 4 << 20)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
                .to_bytes();
            conn.abort();
            if !status.is_success() {
                bail!("{status}: {}", String::from_utf8_lossy(&bytes));
            }
            Ok(bytes)
        };
        tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .with_context(|| format!("{method} {path}: no answer in 30 s"))?
            .with_context(|| format!("{method} {path}"))
    }
}

/// The counter of traffic events the pipeline dropped because its queue was full.
const EVENTS_DROPPED: &str = "warren_events_dropped_total";

/// The value of the unlabelled series `name` in OpenMetrics text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        let value = value.split_whitespace().next()?;
        value
            .parse::<u64>()
            .ok()
            .or_else(|| value.parse::<f64>().ok().map(|v| v as u64))
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// A named figure of a data-plane run, for the medians.
type Figure = (&'static str, fn(&PlaneFigures) -> f64);

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

fn render(s: &Settings, report: &Report) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        text,
        "Warren events benchmark (loopback only; {cores} CPUs shared by every role)"
    );
    let command = std::env::var("WARREN_BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    let _ = writeln!(text, "  command: {command}");

    if s.outbox {
        let line_bytes = serde_json::to_string(&envelope(s.events / 2)).map_or(0, |l| l.len());
        let object_bytes = request_object(s.events / 2).to_string().len();
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "1. Outbox throughput, in process (warren-events over a fresh SQLite store): {} events of \
             {HTTP_REQUEST_COMPLETE} (object {object_bytes} B, envelope {line_bytes} B of JSON), \
             one subscription, one destination, delivery batches of {}; each row bounded by {} s",
            s.events,
            s.batch,
            s.limit.as_secs()
        );
        let _ = writeln!(
            text,
            "{:<52} {:>9} {:>9} {:>11} {:>7} {:>10} {:>10} {:>8}",
            "path", "events", "seconds", "events/s", "ratio", "emitted s", "outbox s", "dropped"
        );
        for row in &report.outbox {
            match &row.result {
                Ok(d) => {
                    let ratio = match row.baseline.and_then(|i| report.outbox.get(i)) {
                        Some(OutboxRow { result: Ok(b), .. }) if b.rate() > 0.0 => {
                            format!("{:.3}", d.rate() / b.rate())
                        }
                        Some(_) => "n/a".into(),
                        None => "-".into(),
                    };
                    let events = match d.stopped {
                        None => d.delivered.to_string(),
                        Some(_) => format!("{}*", d.delivered),
                    };
                    let secs = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
                    let _ = writeln!(
                        text,
                        "{:<52} {:>9} {:>9.3} {:>11.0} {:>7} {:>10} {:>10} {:>8}",
                        row.what,
                        events,
                        d.seconds,
                        d.rate(),
                        ratio,
                        secs(d.emitted_seconds),
                        secs(d.outbox_seconds),
                        d.dropped.map_or_else(|| "-".into(), |n| n.to_string())
                    );
                }
                Err(error) => {
                    let _ = writeln!(text, "{:<52} failed: {error}", row.what);
                }
            }
        }
        let _ = writeln!(
            text,
            "seconds: first emit (or first write) to the last event held by the destination. \
             ratio: the pipeline row over the baseline above it. emitted s: until every emit() \
             returned (the data plane's cost); outbox s: until flush() returned (all N in the \
             SQLite outbox); dropped: the pipeline's {EVENTS_DROPPED} (events refused by a full \
             queue). * = stopped early (stalled {} s or hit its time bound): the count is \
             what arrived.",
            STALL.as_secs()
        );
    }

    if s.warrend.is_some() {
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "2. Data plane with event export off vs on: warrend ({}), ngrok-crate agent, HTTP \
             endpoint {HTTP_DOMAIN} -> bench origin; built-in load generator, {} keep-alive \
             connections, {} s per run after one {} s warm-up; export on = a subscription of \
             {HTTP_REQUEST_COMPLETE} to a `file` destination (created/deleted via the REST API \
             between runs)",
            s.warrend
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string()),
            s.connections,
            s.duration.as_secs(),
            s.warmup.as_secs()
        );
        let _ = writeln!(
            text,
            "{:<6} {:<7} {:>10} {:>8} {:>8} {:>9} {:>7} {:>12} {:>8} {:>15}",
            "round",
            "export",
            "req/s",
            "p50 ms",
            "p99 ms",
            "requests",
            "errors",
            "file events",
            "dropped",
            "warrend µs/req"
        );
        for run in &report.plane {
            let export = if run.export { "on" } else { "off" };
            match &run.result {
                Ok(f) => {
                    let events = match f.events_stopped {
                        None => f.events.to_string(),
                        Some(_) => format!("{}*", f.events),
                    };
                    let _ = writeln!(
                        text,
                        "{:<6} {:<7} {:>10.0} {:>8.2} {:>8.2} {:>9} {:>7} {:>12} {:>8} {:>15.1}",
                        run.round,
                        export,
                        f.load.rps(),
                        f.load.p50_ms,
                        f.load.p99_ms,
                        f.load.requests,
                        f.load.errors,
                        events,
                        f.dropped.map_or_else(|| "-".into(), |n| n.to_string()),
                        f.warrend_cpu_us
                    );
                }
                Err(error) => {
                    let _ = writeln!(text, "{:<6} {:<7} failed: {error}", run.round, export);
                }
            }
        }
        let side = |export: bool| -> Vec<PlaneFigures> {
            report
                .plane
                .iter()
                .filter(|r| r.export == export)
                .filter_map(|r| r.result.as_ref().ok().copied())
                .collect()
        };
        let (off, on) = (side(false), side(true));
        let med = |runs: &[PlaneFigures], f: fn(&PlaneFigures) -> f64| {
            median(runs.iter().map(f).collect())
        };
        let figures: [Figure; 4] = [
            ("req/s", |f| f.load.rps()),
            ("p50 ms", |f| f.load.p50_ms),
            ("p99 ms", |f| f.load.p99_ms),
            ("warrend µs/req", |f| f.warrend_cpu_us),
        ];
        for (name, f) in figures {
            match (med(&off, f), med(&on, f)) {
                (Some(a), Some(b)) if a > 0.0 => {
                    let _ = writeln!(
                        text,
                        "median {name:<15} off {a:>10.2}   on {b:>10.2}   on/off {:.3}",
                        b / a
                    );
                }
                _ => {
                    let _ = writeln!(text, "median {name:<15} n/a (a side has no run)");
                }
            }
        }
        let made: u64 = on.iter().map(|f| f.load.requests + f.load.errors).sum();
        let got: u64 = on.iter().map(|f| f.events).sum();
        let _ = writeln!(
            text,
            "export on: {made} requests answered (ok + errors), {got} events in the file ({:.2}%); \
             export off: {} events (expected 0)",
            if made > 0 {
                got as f64 * 100.0 / made as f64
            } else {
                0.0
            },
            off.iter().map(|f| f.events).sum::<u64>()
        );
        let _ = writeln!(
            text,
            "file events: lines the file gained from the run's start until the count was still for \
             {} ms (or had not moved for {} s: *); requests cancelled at the run's end may still \
             have completed at the edge, so a few more events than requests is normal. dropped: \
             warrend's {EVENTS_DROPPED} over the run (traffic events refused by a full queue; - \
             when /metrics does not carry it). warrend µs/req: its CPU over the same span. Target for on/off req/s: within 5% (0.95); \
             figures are reported, never asserted.",
            QUIET.as_millis(),
            PLANE_STALL.as_secs()
        );
    }

    for note in &report.notes {
        let _ = writeln!(text, "note: {note}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_objects_are_about_400_bytes_and_distinct() {
        for i in [0, 1, 99_999, 4_999_999] {
            let len = request_object(i).to_string().len();
            assert!((350..=500).contains(&len), "object {i} is {len} bytes");
        }
        assert_ne!(request_object(1), request_object(2));
    }

    #[test]
    fn metric_reads_an_unlabelled_series() {
        let text = "# TYPE warren_events_dropped counter\n\
                    warren_events_dropped_total_x 9\n\
                    warren_events_dropped_total 42\n\
                    warren_events_emitted_total{type=\"a\"} 7\n";
        assert_eq!(metric(text, EVENTS_DROPPED), Some(42));
        assert_eq!(metric(text, "warren_events_emitted_total"), None);
        assert_eq!(metric("x_total 1.0e3\n", "x_total"), Some(1000));
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
    }

    #[test]
    fn line_counter_follows_appends_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut counter = LineCounter::new(dir.path().to_owned());
        assert_eq!(counter.count().unwrap(), 0);
        std::fs::write(&path, "a\nb\npartial").unwrap();
        assert_eq!(counter.count().unwrap(), 2);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b" line\nc\n").unwrap();
        assert_eq!(counter.count().unwrap(), 4);
        // Rotation: the full file is renamed and a new one started.
        std::fs::rename(&path, dir.path().join("events.jsonl.1")).unwrap();
        std::fs::write(&path, "d\n").unwrap();
        assert_eq!(counter.count().unwrap(), 5);
    }

    #[tokio::test]
    async fn receiver_counts_array_elements_and_refuses_other_bodies() {
        let receiver = Receiver::start().await.unwrap();
        let post = |body: &'static str| {
            let addr = receiver.addr;
            async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let request = http::Request::post("/events")
                    .header(http::header::HOST, addr.to_string())
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap();
                sender.send_request(request).await.unwrap().status()
            }
        };
        assert_eq!(post(r#"[{"a":1},{"b":[2]},3]"#).await, 204);
        assert_eq!(post(r#"{"not":"an array"}"#).await, 400);
        assert_eq!(receiver.state.events.load(Ordering::Relaxed), 3);
        assert_eq!(receiver.state.rejected.load(Ordering::Relaxed), 1);
    }
}
