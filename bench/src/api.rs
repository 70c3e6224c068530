//! `warren-bench api`: the REST API and agent authentication against a large credential store.
//!
//! For each backend (SQLite in the data directory, then PostgreSQL in a fresh schema when a
//! server answers) a fresh `warrend` is started and, in order:
//!
//! 1. agent sessions authenticate with the bootstrap authtoken, one after another, then
//!    concurrently: the baseline, on a store holding one credential;
//! 2. `POST /credentials` N times over C keep-alive connections (req/s, p50, p99);
//! 3. `GET /credentials?limit=100` N times the same way;
//! 4. `POST /credentials` until the store holds the fill target (100,000; 10,000 with
//!    `--quick`), concurrently, its rate recorded too;
//! 5. step 1 again with one of the created tokens: the ratio against step 1 is the cost of a
//!    large store on authentication.
//!
//! Every loop is bounded in count and time; a phase that runs out of time reports what it did.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::Instant;

use crate::agent;
use crate::procs::retry;
use crate::tunnels::{Warrend, random_token, start_warrend_with};

/// The PostgreSQL server tried when `--database-url` / `WARREN_BENCH_DATABASE_URL` is not set.
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The body of every create request.
const CREATE_BODY: &str = r#"{"description":"bench","acl":["bind:*.site1.example.com"]}"#;

#[derive(Args)]
pub struct ApiArgs {
    /// Smaller counts: a smoke run of every step.
    #[arg(long)]
    quick: bool,
    /// The warrend binary [default: `warrend` next to this binary].
    #[arg(long)]
    warrend: Option<PathBuf>,
    /// Where api.txt and logs/ go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
    /// Requests per REST measurement (create, list) [default: 2000, quick: 300].
    #[arg(long)]
    requests: Option<usize>,
    /// Concurrent keep-alive connections of the REST measurements and the fill.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Credentials in the store for the authentication step [default: 100000, quick: 10000].
    #[arg(long)]
    fill: Option<usize>,
    /// Agent sessions per authentication measurement [default: 500, quick: 100].
    #[arg(long)]
    sessions: Option<usize>,
    /// Sessions connecting at once in the concurrent authentication measurement.
    #[arg(long, default_value_t = 16)]
    session_parallel: usize,
    /// Time bound of each measurement (the fill gets ten times this), seconds.
    #[arg(long, default_value_t = 60)]
    phase_limit: u64,
    /// PostgreSQL server (a fresh schema is created in its database for the run) [default:
    /// postgres://postgres@127.0.0.1:5432/test when something answers on 127.0.0.1:5432].
    #[arg(long, env = "WARREN_BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Measure SQLite only.
    #[arg(long)]
    no_postgres: bool,
}

struct Settings {
    warrend: PathBuf,
    logs: PathBuf,
    requests: usize,
    connections: usize,
    fill: usize,
    sessions: usize,
    session_parallel: usize,
    limit: Duration,
}

/// One measured row.
struct Row {
    backend: String,
    what: String,
    result: Result<Stats, String>,
    /// Index of the row this one is compared with.
    baseline: Option<usize>,
}

/// What a bounded batch of operations measured.
#[derive(Default)]
struct Stats {
    ok: usize,
    errors: usize,
    seconds: f64,
    /// Microseconds per successful operation, sorted.
    latencies: Vec<u32>,
    /// The first error's text.
    first_error: Option<String>,
    /// The batch stopped at its time bound before its count.
    timed_out: bool,
}

impl Stats {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        f64::from(self.latencies[rank.clamp(1, self.latencies.len()) - 1]) / 1e3
    }
}

/// `warren-bench api`.
pub async fn main(args: ApiArgs) -> anyhow::Result<()> {
    let warrend = match args.warrend {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("warrend"),
    };
    anyhow::ensure!(
        warrend.exists(),
        "no warrend at {} (build it in release)",
        warrend.display()
    );
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let _ = std::fs::remove_file(logs.join("warrend.log"));
    let quick = args.quick;
    let s = Settings {
        warrend,
        logs,
        requests: args
            .requests
            .unwrap_or(if quick { 300 } else { 2000 })
            .max(1),
        connections: args.connections.max(1),
        fill: args.fill.unwrap_or(if quick { 10_000 } else { 100_000 }),
        sessions: args
            .sessions
            .unwrap_or(if quick { 100 } else { 500 })
            .max(1),
        session_parallel: args.session_parallel.max(1),
        limit: Duration::from_secs(args.phase_limit.max(1)),
    };

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut failed = false;
    eprintln!("[bench] api: sqlite");
    if let Err(error) = backend(&s, "sqlite", None, &mut rows).await {
        eprintln!("[bench] api: sqlite failed: {error:#}");
        notes.push(format!("sqlite: {error:#}"));
        failed = true;
    }

    let postgres = if args.no_postgres {
        None
    } else if let Some(url) = args.database_url {
        Some(url)
    } else if tokio::time::timeout(Duration::from_secs(2), TcpStream::connect("127.0.0.1:5432"))
        .await
        .is_ok_and(|c| c.is_ok())
    {
        Some(DEFAULT_POSTGRES.to_owned())
    } else {
        notes.push(
            "postgres: not measured (nothing answers on 127.0.0.1:5432 and \
             WARREN_BENCH_DATABASE_URL is not set)"
                .into(),
        );
        None
    };
    if let Some(base) = postgres {
        match PgScratch::create(&base).await {
            Ok(scratch) => {
                eprintln!("[bench] api: postgres ({})", scratch.what);
                notes.push(format!("postgres: {}", scratch.what));
                let sqlite_rows = rows.len();
                let result = backend(&s, "postgres", Some(&scratch.url), &mut rows).await;
                // The REST rows compare with SQLite's rows of the same measure.
                for i in sqlite_rows..rows.len() {
                    if rows[i].baseline.is_none() {
                        rows[i].baseline = rows[..sqlite_rows]
                            .iter()
                            .position(|r| r.what == rows[i].what);
                    }
                }
                if let Err(error) = result {
                    eprintln!("[bench] api: postgres failed: {error:#}");
                    notes.push(format!("postgres: {error:#}"));
                    failed = true;
                }
                if let Err(error) = scratch.remove().await {
                    notes.push(format!("postgres cleanup: {error:#}"));
                }
            }
            Err(error) => notes.push(format!("postgres: not measured: {error:#}")),
        }
    }

    failed |= rows.iter().any(|r| r.result.is_err());
    let text = render(&s, &rows, &notes);
    print!("{text}");
    let file = args.out.join("api.txt");
    std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "\n(written to {}; warrend's log in {})",
        file.display(),
        s.logs.display()
    );
    if failed {
        bail!("some steps failed (see above)");
    }
    Ok(())
}

/// Every measurement against one fresh warrend on `database_url` (its data directory's SQLite
/// when `None`).
async fn backend(
    s: &Settings,
    name: &str,
    database_url: Option<&str>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    // Concurrent sessions of one authtoken must all fit under the edge's per-credential limit.
    let server = start_warrend_with(
        &s.warrend,
        &s.logs,
        Some(2 * s.sessions + s.session_parallel + 1),
        database_url,
    )
    .await?;
    let result = measure(s, name, &server, rows).await;
    server.proc.stop().await;
    result
}

async fn measure(
    s: &Settings,
    name: &str,
    server: &Warrend,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let api = Api {
        addr: server.api_addr,
        key: server.admin_api_key.clone(),
    };
    retry("warrend API", Duration::from_secs(30), || api.probe()).await?;
    let mut push = |what: String, result: Result<Stats, String>, baseline: Option<usize>| {
        rows.push(Row {
            backend: name.to_owned(),
            what,
            result,
            baseline,
        });
        rows.len() - 1
    };

    eprintln!("[bench] api: {name}: agent authentication, bootstrap credential only");
    let edge = server.edge.clone();
    let seq_what = |n: &str| format!("agent auth, {n} credential(s), sequential");
    let par_what = |n: &str| {
        format!(
            "agent auth, {n} credential(s), {} at once",
            s.session_parallel
        )
    };
    let base_seq = push(
        seq_what("1"),
        sessions(&edge, s.sessions, 1, s.limit).await,
        None,
    );
    let base_par = push(
        par_what("1"),
        sessions(&edge, s.sessions, s.session_parallel, s.limit).await,
        None,
    );

    eprintln!("[bench] api: {name}: POST /credentials");
    let (create, _) = api
        .batch(Method::Create, s.requests, s.connections, s.limit)
        .await;
    let created = create.ok;
    push(
        format!("POST /credentials ({} conns)", s.connections),
        Ok(create),
        None,
    );
    eprintln!("[bench] api: {name}: GET /credentials?limit=100");
    let (list, _) = api
        .batch(Method::List, s.requests, s.connections, s.limit)
        .await;
    push(
        format!("GET /credentials?limit=100 ({} conns)", s.connections),
        Ok(list),
        None,
    );

    // The store holds the bootstrap credential plus what was created so far.
    let missing = s.fill.saturating_sub(created + 1);
    eprintln!("[bench] api: {name}: filling the store with {missing} more credentials");
    let (fill, tokens) = api
        .batch(Method::Create, missing, s.connections, s.limit * 10)
        .await;
    let stored = created + 1 + fill.ok;
    push(
        format!("fill: POST /credentials to {stored}"),
        Ok(fill),
        None,
    );

    let Some(token) = tokens.get(tokens.len() / 2) else {
        bail!("no credential was created to authenticate with");
    };
    let edge = agent::Edge {
        authtoken: token.clone(),
        ..edge
    };
    let many = stored.to_string();
    eprintln!("[bench] api: {name}: agent authentication, {stored} credentials");
    push(
        seq_what(&many),
        sessions(&edge, s.sessions, 1, s.limit).await,
        Some(base_seq),
    );
    push(
        par_what(&many),
        sessions(&edge, s.sessions, s.session_parallel, s.limit).await,
        Some(base_par),
    );
    Ok(())
}

/// `count` agent sessions, `parallel` at a time: each connects, authenticates and closes.
/// Bounded by `limit`.
async fn sessions(
    edge: &agent::Edge,
    count: usize,
    parallel: usize,
    limit: Duration,
) -> Result<Stats, String> {
    let start = Instant::now();
    let deadline = start + limit;
    let mut stats = Stats::default();
    let mut results = futures::stream::iter(0..count)
        .map(|_| async move {
            let began = Instant::now();
            let mut session = agent::connect(edge).await?;
            let elapsed = began.elapsed();
            let _ = tokio::time::timeout(Duration::from_secs(5), session.close()).await;
            anyhow::Ok(elapsed)
        })
        .buffer_unordered(parallel);
    loop {
        match tokio::time::timeout_at(deadline, results.next()).await {
            Err(_) => {
                stats.timed_out = true;
                break;
            }
            Ok(None) => break,
            Ok(Some(Ok(elapsed))) => {
                stats.ok += 1;
                stats
                    .latencies
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
            }
            Ok(Some(Err(error))) => {
                stats.errors += 1;
                stats
                    .first_error
                    .get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    stats.seconds = start.elapsed().as_secs_f64();
    stats.latencies.sort_unstable();
    if stats.ok == 0 {
        return Err(stats
            .first_error
            .unwrap_or_else(|| "no session authenticated in time".into()));
    }
    Ok(stats)
}

#[derive(Clone, Copy)]
enum Method {
    Create,
    List,
}

/// warrend's REST API.
#[derive(Clone)]
struct Api {
    addr: SocketAddr,
    key: String,
}

impl Api {
    /// One list request answered 200.
    async fn probe(&self) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        self.request(&mut conn, Method::List).await?;
        Ok(())
    }

    async fn connect(
        &self,
    ) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(send)
    }

    /// One request; the created token for a create.
    async fn request(
        &self,
        conn: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        method: Method,
    ) -> anyhow::Result<Option<String>> {
        let (verb, path, body) = match method {
            Method::Create => ("POST", "/credentials", CREATE_BODY),
            Method::List => ("GET", "/credentials?limit=100", ""),
        };
        let request = http::Request::builder()
            .method(verb)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header("Ngrok-Version", "2")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))?;
        conn.ready().await?;
        let response = conn.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "{verb} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        match method {
            Method::List => Ok(None),
            Method::Create => {
                let value: serde_json::Value = serde_json::from_slice(&bytes)?;
                let token = value["token"]
                    .as_str()
                    .context("no token in the create response")?;
                Ok(Some(token.to_owned()))
            }
        }
    }

    /// `count` requests over `connections` keep-alive connections, bounded by `limit`; the
    /// tokens of created credentials.
    async fn batch(
        &self,
        method: Method,
        count: usize,
        connections: usize,
        limit: Duration,
    ) -> (Stats, Vec<String>) {
        let start = Instant::now();
        let deadline = start + limit;
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections.min(count) {
            let api = self.clone();
            let next = next.clone();
            tasks.spawn(async move {
                let mut stats = Stats::default();
                let mut tokens = Vec::new();
                let mut conn = None;
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let one = async {
                        if conn.is_none() {
                            conn = Some(api.connect().await?);
                        }
                        let began = Instant::now();
                        let sent = conn.as_mut().map(|c| api.request(c, method));
                        let token = match sent {
                            Some(sent) => sent.await?,
                            None => None,
                        };
                        anyhow::Ok((began.elapsed(), token))
                    };
                    match tokio::time::timeout_at(deadline, one).await {
                        Err(_) => {
                            stats.timed_out = true;
                            break;
                        }
                        Ok(Ok((elapsed, token))) => {
                            stats.ok += 1;
                            stats
                                .latencies
                                .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                            tokens.extend(token);
                        }
                        Ok(Err(error)) => {
                            stats.errors += 1;
                            stats
                                .first_error
                                .get_or_insert_with(|| format!("{error:#}"));
                            conn = None;
                        }
                    }
                }
                (stats, tokens)
            });
        }
        let mut total = Stats::default();
        let mut tokens = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((mut stats, mut more)) => {
                    total.ok += stats.ok;
                    total.errors += stats.errors;
                    total.timed_out |= stats.timed_out;
                    total.latencies.append(&mut stats.latencies);
                    if total.first_error.is_none() {
                        total.first_error = stats.first_error;
                    }
                    tokens.append(&mut more);
                }
                Err(error) => {
                    total.errors += 1;
                    total.first_error.get_or_insert_with(|| error.to_string());
                }
            }
        }
        total.seconds = start.elapsed().as_secs_f64();
        total.latencies.sort_unstable();
        (total, tokens)
    }
}

/// A fresh PostgreSQL schema (or database) for one run, dropped afterwards.
struct PgScratch {
    /// warrend's `--database-url`.
    url: String,
    /// How to drop it.
    cleanup: Vec<String>,
    /// What was created, for the report.
    what: String,
}

impl PgScratch {
    /// A schema in `base`'s database via `psql`; failing that, a database via `createdb`.
    async fn create(base: &str) -> anyhow::Result<PgScratch> {
        let name = format!("warren_bench_{}", random_token(10).to_lowercase());
        let schema = psql(base, &format!("CREATE SCHEMA {name}")).await;
        match schema {
            Ok(()) => {
                let separator = if base.contains('?') { '&' } else { '?' };
                Ok(PgScratch {
                    url: format!("{base}{separator}options[search_path]={name}"),
                    cleanup: vec![
                        "psql".into(),
                        "-X".into(),
                        "-q".into(),
                        "-v".into(),
                        "ON_ERROR_STOP=1".into(),
                        "-d".into(),
                        base.into(),
                        "-c".into(),
                        format!("DROP SCHEMA {name} CASCADE"),
                    ],
                    what: format!(
                        "{} (fresh schema {name}, dropped after the run)",
                        redact(base)
                    ),
                })
            }
            Err(schema_error) => {
                let out = Command::new("createdb")
                    .args(["--maintenance-db", base, &name])
                    .output()
                    .await
                    .with_context(|| format!("{schema_error:#}; and running createdb failed"))?;
                if !out.status.success() {
                    bail!(
                        "{schema_error:#}; createdb: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                let mut url = url::Url::parse(base)?;
                url.set_path(&format!("/{name}"));
                Ok(PgScratch {
                    url: url.to_string(),
                    cleanup: vec![
                        "dropdb".into(),
                        "--maintenance-db".into(),
                        base.into(),
                        name.clone(),
                    ],
                    what: format!(
                        "fresh database {name} on {}, dropped after the run",
                        redact(base)
                    ),
                })
            }
        }
    }

    async fn remove(self) -> anyhow::Result<()> {
        let out = Command::new(&self.cleanup[0])
            .args(&self.cleanup[1..])
            .output()
            .await
            .with_context(|| format!("running {}", self.cleanup[0]))?;
        if !out.status.success() {
            bail!(
                "{}: {}",
                self.cleanup[0],
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// Runs one SQL statement with `psql`.
async fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("psql timed out")?
    .context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn render(s: &Settings, rows: &[Row], notes: &[String]) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Warren API benchmark (loopback; warrend release binary; {} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        text,
        "  REST: {} requests per row over {} keep-alive connections; fill target {} credentials; \
         {} agent sessions per auth row (connect + auth + close); each row bounded by {} s \
         (fill: {} s)",
        s.requests,
        s.connections,
        s.fill,
        s.sessions,
        s.limit.as_secs(),
        s.limit.as_secs() * 10
    );
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "{:<9} {:<48} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8}",
        "backend", "measure", "ok", "errors", "per s", "p50 ms", "p99 ms", "ratio"
    );
    for row in rows {
        match &row.result {
            Ok(stats) => {
                let ratio = match row.baseline.and_then(|i| rows.get(i)) {
                    Some(Row {
                        result: Ok(base), ..
                    }) if base.rate() > 0.0 => format!("{:.2}", stats.rate() / base.rate()),
                    Some(_) => "n/a".into(),
                    None => "-".into(),
                };
                let ok = if stats.timed_out {
                    format!("{}*", stats.ok)
                } else {
                    stats.ok.to_string()
                };
                let _ = writeln!(
                    text,
                    "{:<9} {:<48} {:>7} {:>6} {:>9.1} {:>8.2} {:>8.2} {:>8}",
                    row.backend,
                    row.what,
                    ok,
                    stats.errors,
                    stats.rate(),
                    stats.percentile_ms(50.0),
                    stats.percentile_ms(99.0),
                    ratio
                );
            }
            Err(error) => {
                let _ = writeln!(text, "{:<9} {:<48} failed: {error}", row.backend, row.what);
            }
        }
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "ratio: an auth row with the filled store against the same row with only the bootstrap \
         credential (same warrend, same run); a postgres REST row against sqlite's. \
         * = stopped at its time bound."
    );
    for row in rows {
        if let Ok(Stats {
            first_error: Some(error),
            ..
        }) = &row.result
        {
            let _ = writeln!(text, "first error, {} {}: {error}", row.backend, row.what);
        }
    }
    for note in notes {
        let _ = writeln!(text, "note: {note}");
    }
    text
}
