//! `warren-bench`: measures Warren against a direct loopback baseline (and rathole and bore with
//! `--compare`) in one run on one machine, and prints a table of figures and ratios. `bench/run.sh`
//! builds everything in release and calls `warren-bench run`; see `bench/README.md`.
//!
//! # Layout
//!
//! - this file: the command line and the run: which step measures which path, in what order.
//! - [`origin`]: the HTTP origin and the stream sink/source every path ends at (own process).
//! - [`agent`]: the official ngrok SDK as Warren's agent (own process, or idle sessions here).
//! - [`warren_agent`]: Warren's own agent binary `warren`: its config file and local API.
//! - [`tunnels`]: starting Warren, rathole and bore on loopback and probing them ready.
//! - [`throughput`], [`load`], [`memory`]: the three measurements; the agent footprint (binary
//!   size, resident memory) is read here around each Warren path's load.
//! - [`procs`]: child processes, free ports, RSS and CPU time from `/proc`.
//! - [`report`]: the tables.
//! - [`api`]: `warren-bench api`, the REST API and agent authentication against a large
//!   credential store (SQLite and PostgreSQL).
//! - [`events`]: `warren-bench events`, event export: events/s through the outbox to a webhook
//!   and to a file, and the data plane's requests/s with export off and on.
//!
//! Everything binds and targets 127.0.0.1 only; every loop is bounded in count and time.

mod agent;
mod api;
mod events;
mod load;
mod memory;
mod origin;
mod procs;
mod report;
mod throughput;
mod tunnels;
mod warren_agent;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::process::Command;

use crate::load::{Load, LoadGen};
use crate::origin::Direction;
use crate::procs::{CpuMeter, Proc};
use crate::report::{AgentFootprint, HttpRow, Report, ThroughputRow, TransferRun};
use crate::tunnels::{Origins, RatholeTransport, Tunnel};

#[derive(Parser)]
#[command(
    name = "warren-bench",
    about = "Warren's throughput, latency and memory benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Run the benchmark and print the report (what bench/run.sh calls).
    Run(RunArgs),
    /// Serve the HTTP origin and the stream sink/source (started by `run`).
    Origin,
    /// Be Warren's agent: one SDK session forwarding three endpoints (started by `run`).
    Agent(AgentArgs),
    /// The REST API and agent authentication against a large credential store, on SQLite and
    /// PostgreSQL (what bench/api.sh calls).
    Api(api::ApiArgs),
    /// Event export: events/s through the outbox to a webhook and to a file, and the data
    /// plane's requests/s with export off and on (what bench/events.sh calls).
    Events(events::EventsArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Also measure rathole and bore (binaries from --tools).
    #[arg(long)]
    compare: bool,
    /// Smaller transfers, shorter load runs, one repeat: a smoke run of every step.
    #[arg(long)]
    quick: bool,
    /// The warrend binary [default: `warrend` next to this binary].
    #[arg(long)]
    warrend: Option<PathBuf>,
    /// Warren's own agent binary, `warren` (crate warren-cli) [default: `warren` next to this
    /// binary; its rows are left out, with a note, when there is none].
    #[arg(long)]
    warren: Option<PathBuf>,
    /// Directory holding the `rathole` and `bore` binaries.
    #[arg(long, default_value = "bench/out/tools/bin")]
    tools: PathBuf,
    /// Where results.txt and logs/ go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
    /// HTTP load generator: `wrk` (if on PATH), `builtin`, or `auto` (wrk when found).
    #[arg(long, default_value = "auto")]
    loadgen: String,
    /// rathole's encrypted transport.
    #[arg(long, value_enum, default_value = "tls")]
    rathole_transport: RatholeTransport,
    /// MiB per throughput transfer [default: 1024, quick: 256].
    #[arg(long)]
    mib: Option<u64>,
    /// Time bound of one throughput transfer, seconds.
    #[arg(long, default_value_t = 30)]
    transfer_limit: u64,
    /// Transfers per direction and path; the median is reported [default: 3, quick: 1].
    #[arg(long)]
    repeats: Option<usize>,
    /// Seconds of each HTTP load run [default: 10, quick: 3].
    #[arg(long)]
    duration: Option<u64>,
    /// Keep-alive connections of each HTTP load run.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Idle agent sessions in the memory step.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Also measure Warren with an agent that dials its link with TCP_NODELAY (the SDK's
    /// default connector does not), to separate Nagle stalls from the edge's own cost.
    #[arg(long)]
    agent_nodelay: bool,
}

#[derive(Args)]
struct AgentArgs {
    /// warrend's agent listener.
    #[arg(long)]
    server_addr: SocketAddr,
    /// The CA file (PEM) that signed the agent listener's certificate.
    #[arg(long)]
    ca: PathBuf,
    #[arg(long)]
    stream_origin: SocketAddr,
    #[arg(long)]
    http_origin: SocketAddr,
    /// Domain of the HTTP endpoint.
    #[arg(long)]
    domain: String,
    /// The authtoken.
    #[arg(long, env = "WARREN_BENCH_AUTHTOKEN", hide_env_values = true)]
    authtoken: String,
    /// Dial the agent link with TCP_NODELAY instead of the SDK's default connector.
    #[arg(long)]
    nodelay: bool,
}

/// The resolved settings of one run.
struct Settings {
    compare: bool,
    warrend: PathBuf,
    /// Warren's own agent binary, when there is one.
    warren: Option<PathBuf>,
    tools: PathBuf,
    logs: PathBuf,
    loadgen: LoadGen,
    rathole_transport: RatholeTransport,
    bytes: u64,
    transfer_limit: Duration,
    repeats: usize,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    sessions: usize,
    settle: Duration,
    agent_nodelay: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Role::Origin => origin::run().await,
        Role::Api(args) => api::main(args).await,
        Role::Events(args) => events::main(args).await,
        Role::Agent(args) => {
            let edge = agent::Edge {
                agent_addr: args.server_addr,
                ca_pem: std::fs::read_to_string(&args.ca)
                    .with_context(|| format!("reading {}", args.ca.display()))?,
                authtoken: args.authtoken,
                nodelay: args.nodelay,
            };
            agent::run(edge, args.stream_origin, args.http_origin, args.domain).await
        }
        Role::Run(args) => {
            let out = args.out.clone();
            let settings = resolve(args)?;
            let report = run(&settings).await?;
            let text = report.render();
            print!("{text}");
            let file = out.join("results.txt");
            std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
            println!(
                "\n(written to {}; process logs in {})",
                file.display(),
                settings.logs.display()
            );
            if report.failed {
                anyhow::bail!("some steps failed (see above)");
            }
            Ok(())
        }
    }
}

fn resolve(args: RunArgs) -> anyhow::Result<Settings> {
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
    let warren = match args.warren {
        Some(path) => {
            anyhow::ensure!(
                path.exists(),
                "no warren agent at {} (cargo build --release -p warren-cli)",
                path.display()
            );
            Some(path)
        }
        None => Some(warrend.with_file_name("warren")).filter(|path| path.exists()),
    };
    let loadgen = match args.loadgen.as_str() {
        "builtin" => LoadGen::Builtin,
        "wrk" => LoadGen::Wrk(which("wrk").context("wrk is not on PATH")?),
        "auto" => which("wrk").map_or(LoadGen::Builtin, LoadGen::Wrk),
        other => anyhow::bail!("unknown --loadgen {other:?} (auto, wrk, builtin)"),
    };
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    for entry in std::fs::read_dir(&logs)? {
        let _ = std::fs::remove_file(entry?.path());
    }
    let quick = args.quick;
    Ok(Settings {
        compare: args.compare,
        warrend,
        warren,
        tools: args.tools,
        logs,
        loadgen,
        rathole_transport: args.rathole_transport,
        bytes: args.mib.unwrap_or(if quick { 256 } else { 1024 }) << 20,
        transfer_limit: Duration::from_secs(args.transfer_limit),
        repeats: args.repeats.unwrap_or(if quick { 1 } else { 3 }).max(1),
        duration: Duration::from_secs(args.duration.unwrap_or(if quick { 3 } else { 10 })),
        warmup: Duration::from_secs(if quick { 1 } else { 2 }),
        connections: args.connections,
        sessions: args.sessions,
        settle: Duration::from_secs(if quick { 2 } else { 3 }),
        agent_nodelay: args.agent_nodelay,
    })
}

/// Every step on every path, in order: direct, Warren with the SDK agent, Warren with the
/// `warren` agent (inspector off, then on for the HTTP endpoint only), then (with `--compare`)
/// rathole and bore; memory last. Each Warren agent's footprint is read around its path's load.
async fn run(s: &Settings) -> anyhow::Result<Report> {
    let mut origin_proc = Proc::spawn(
        "origin",
        {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.arg("origin");
            cmd
        },
        &s.logs.join("origin.log"),
    )?;
    let (http, stream) = origin::addresses(&mut origin_proc).await?;
    origin_proc.drain_stdout();
    let origins = Origins { http, stream };

    let mut report = Report {
        preamble: preamble(s),
        throughput_title: format!(
            "Single-stream TCP throughput: {} MiB per transfer (bounded by {} s), median of {}",
            s.bytes >> 20,
            s.transfer_limit.as_secs(),
            s.repeats
        ),
        http_title: format!(
            "HTTP/1.1 keep-alive GET /, {} connections, {} s per path (after a {} s warm-up), load generator: {}",
            s.connections,
            s.duration.as_secs(),
            s.warmup.as_secs(),
            s.loadgen.name()
        ),
        footprint_idle_seconds: AGENT_IDLE.as_secs(),
        warrend_bytes: Some(file_bytes(&s.warrend)),
        ..Report::default()
    };

    measure(s, &Tunnel::direct(origins), &mut report).await;
    let agents: &[bool] = if s.agent_nodelay {
        &[false, true]
    } else {
        &[false]
    };
    for &nodelay in agents {
        eprintln!("[bench] warren (agent link NODELAY: {nodelay})");
        let started = tunnels::warren(&s.warrend, origins, &s.logs, nodelay).await;
        measure_started(s, "warren", started, &mut report).await;
    }
    match &s.warren {
        Some(agent) => {
            for (inspect, what) in [
                (false, "warren (warren agent)"),
                (true, "warren (warren agent + inspector)"),
            ] {
                eprintln!("[bench] {what}");
                let started =
                    tunnels::warren_agent(&s.warrend, agent, origins, &s.logs, inspect).await;
                measure_started(s, what, started, &mut report).await;
            }
        }
        None => report.notes.push(format!(
            "warren (warren agent) was not measured: no `warren` binary next to {} \
             (cargo build --release -p warren-cli, or pass --warren)",
            s.warrend.display()
        )),
    }
    if s.compare {
        let rathole = s.tools.join("rathole");
        eprintln!("[bench] rathole");
        let started = tunnels::rathole(&rathole, s.rathole_transport, origins, &s.logs).await;
        measure_started(s, "rathole", started, &mut report).await;
        eprintln!("[bench] bore");
        let started = tunnels::bore(&s.tools.join("bore"), origins, &s.logs).await;
        measure_started(s, "bore", started, &mut report).await;
    }
    origin_proc.stop().await;

    eprintln!("[bench] memory: {} idle sessions", s.sessions);
    let memory = memory::measure(&s.warrend, &s.logs, s.sessions, s.settle).await;
    report.failed |= match &memory {
        Ok(m) => m.error.is_some(),
        Err(_) => true,
    };
    report.memory = Some(memory.map_err(|e| format!("{e:#}")));
    Ok(report)
}

/// Measures a tunnel that `started` (with its agent's footprint when it has a Warren agent) and
/// stops it, or records why it could not start.
async fn measure_started(
    s: &Settings,
    what: &str,
    started: anyhow::Result<Tunnel>,
    report: &mut Report,
) {
    let tunnel = match started {
        Ok(tunnel) => tunnel,
        Err(error) => return skip(report, what, error),
    };
    let agent = tunnel
        .agent_binary
        .as_ref()
        .and_then(|binary| Some((binary, tunnel.clients.first()?)));
    let idle = match agent {
        Some((_, proc)) => {
            tokio::time::sleep(AGENT_IDLE).await;
            Some(agent_rss(proc))
        }
        None => None,
    };
    measure(s, &tunnel, report).await;
    if let (Some((binary, proc)), Some(rss_idle_kib)) = (agent, idle) {
        let footprint = AgentFootprint {
            path: tunnel.name.clone(),
            binary: binary.file_name().map_or_else(
                || binary.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
            binary_bytes: file_bytes(binary),
            rss_idle_kib,
            rss_after_load_kib: agent_rss(proc),
        };
        report.failed |= footprint.binary_bytes.is_err()
            || footprint.rss_idle_kib.is_err()
            || footprint.rss_after_load_kib.is_err();
        report.footprint.push(footprint);
    }
    tunnel.stop().await;
}

/// How long an agent sits idle, endpoints online, before its idle RSS is read.
const AGENT_IDLE: Duration = Duration::from_secs(2);

/// The agent process's VmRSS.
fn agent_rss(proc: &Proc) -> Result<u64, String> {
    proc.pid()
        .and_then(procs::rss_kib)
        .map_err(|e| format!("{e:#}"))
}

/// The size of a file in bytes.
fn file_bytes(path: &std::path::Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Records that a peer could not be measured.
fn skip(report: &mut Report, what: &str, error: anyhow::Error) {
    eprintln!("[bench] {what} failed: {error:#}");
    report
        .notes
        .push(format!("{what} was not measured: {error:#}"));
    report.failed = true;
}

/// Throughput and HTTP load through `tunnel`.
async fn measure(s: &Settings, tunnel: &Tunnel, report: &mut Report) {
    if !tunnel.only_http_endpoint {
        eprintln!("[bench] {}: throughput", tunnel.name);
        let row_name = if tunnel.http_routed.is_some() {
            format!("{} tcp endpoint", tunnel.name)
        } else {
            tunnel.name.clone()
        };
        let upload = best_of(s, tunnel, Direction::Upload).await;
        let download = best_of(s, tunnel, Direction::Download).await;
        report.failed |= upload.is_err() || download.is_err();
        report.throughput.push(ThroughputRow {
            path: row_name,
            upload,
            download,
        });
    }

    let mut targets = Vec::new();
    if let Some((addr, host)) = &tunnel.http_routed {
        targets.push((
            format!("{} http endpoint (Host routing)", tunnel.name),
            *addr,
            Some(host.clone()),
        ));
    }
    let tcp_name = match tunnel.name.as_str() {
        "direct" => "direct".to_owned(),
        name => format!("{name} tcp"),
    };
    let tcp_name = if tunnel.http_routed.is_some() {
        format!("{tcp_name} endpoint")
    } else {
        tcp_name
    };
    if !tunnel.only_http_endpoint {
        targets.push((tcp_name, tunnel.http_tcp, None));
    }
    for (name, addr, host) in targets {
        eprintln!("[bench] {name}: HTTP load");
        let load = Load {
            addr,
            host,
            connections: s.connections,
            duration: s.duration,
        };
        let result = http_load(s, tunnel, &load)
            .await
            .map_err(|e| format!("{e:#}"));
        report.failed |= result.is_err();
        report.http.push(HttpRow { path: name, result });
    }
}

/// `repeats` transfers in `direction`; the median by throughput, with its CPU time.
async fn best_of(
    s: &Settings,
    tunnel: &Tunnel,
    direction: Direction,
) -> Result<TransferRun, String> {
    let mut runs = Vec::new();
    for _ in 0..s.repeats {
        let run = async {
            let meter = meter(tunnel)?;
            let transfer =
                throughput::transfer(tunnel.stream, direction, s.bytes, s.transfer_limit).await?;
            let cpu = meter.map(|m| m.read()).transpose()?;
            anyhow::Ok(TransferRun { transfer, cpu })
        };
        runs.push(run.await.map_err(|e| format!("{e:#}"))?);
    }
    runs.sort_by(|a, b| a.transfer.mb_per_s().total_cmp(&b.transfer.mb_per_s()));
    Ok(runs[runs.len() / 2])
}

/// A warm-up run, then the measured run with CPU accounting.
async fn http_load(
    s: &Settings,
    tunnel: &Tunnel,
    load: &Load,
) -> anyhow::Result<(load::LoadResult, Option<(f64, f64)>)> {
    let warmup = Load {
        duration: s.warmup,
        ..load.clone()
    };
    load::run(&s.loadgen, &warmup).await.context("warm-up")?;
    let meter = meter(tunnel)?;
    let result = load::run(&s.loadgen, load).await?;
    let cpu = meter.map(|m| m.read()).transpose()?;
    Ok((result, cpu))
}

/// CPU accounting for a tunnel's server and client processes; `None` for the direct path.
struct TunnelMeter {
    meter: CpuMeter,
    servers: usize,
}

impl TunnelMeter {
    /// (server, client) CPU seconds since the meter started.
    fn read(&self) -> anyhow::Result<(f64, f64)> {
        let used = self.meter.stop()?;
        let (servers, clients) = used.split_at(self.servers);
        Ok((servers.iter().sum(), clients.iter().sum()))
    }
}

fn meter(tunnel: &Tunnel) -> anyhow::Result<Option<TunnelMeter>> {
    let (servers, clients) = tunnel.pids()?;
    if servers.is_empty() {
        return Ok(None);
    }
    let all: Vec<u32> = servers.iter().chain(&clients).copied().collect();
    Ok(Some(TunnelMeter {
        meter: CpuMeter::start(&all)?,
        servers: servers.len(),
    }))
}

/// What was measured where, for the top of the report.
fn preamble(s: &Settings) -> Vec<String> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let command = std::env::var("WARREN_BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    let mut lines = vec![
        "Warren benchmark (loopback only; every process shares this machine's CPUs)".to_owned(),
        format!(
            "  machine: {cores} CPUs, {cpu}, Linux {}",
            read("/proc/sys/kernel/osrelease").trim()
        ),
        format!("  command: {command}"),
    ];
    if let Ok(rev) = std::env::var("WARREN_BENCH_REVISION") {
        lines.push(format!("  revision: {rev}"));
    }
    if s.compare {
        lines.push(format!(
            "  compared: rathole over {:?} transport, bore (plain TCP, no encryption); Warren's agent link is TLS",
            s.rathole_transport
        ));
    }
    lines
}

/// The path of `program` on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}
