//! Running the agent until it stops: signals, config reload, the status view or log lines,
//! and re-executing the binary when the edge asks for a restart.
//!
//! SIGINT and SIGTERM shut the agent down (a second one while shutting down exits at once);
//! SIGHUP re-reads the config files and applies them with [`Agent::reload`], keeping the
//! running config when the new one is bad. It must not resolve settings ([`crate::settings`])
//! or lay out the screen ([`crate::status`]).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use warren_agent::config;
use warren_agent::control::SharedControl;
use warren_agent::inspect::Inspector;
use warren_agent::supervisor::{Agent, AgentOptions, Exit, ReloadSummary};

use crate::args::Command;
use crate::logging::Output;
use crate::settings::{self, Env};
use crate::status::{self, RECENT_REQUESTS, RecentRequest, Snapshot};
use crate::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK};

/// How often the status view is redrawn.
pub const REDRAW_INTERVAL: Duration = Duration::from_secs(1);

/// How often the log watcher polls the supervisor for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long shutting down the runtime may take after the agent stopped.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

/// What a SIGHUP re-reads: the command, the environment and config files of the first start.
#[derive(Debug)]
pub struct Reloader {
    /// The command being run (`http`, `tcp`, `tls` or `start`).
    pub command: Command,
    /// The environment read at start.
    pub env: Env,
    /// The config files read at start.
    pub paths: Vec<PathBuf>,
}

impl Reloader {
    /// Reads the config files again and resolves the agent's options from them.
    pub fn load(&self) -> Result<AgentOptions, String> {
        let file = config::load(&self.paths).map_err(|e| e.to_string())?;
        settings::resolve(&self.command, &self.env, file).map_err(|e| e.to_string())
    }
}

/// How the run ended.
enum Outcome {
    /// Exit with this code.
    Exit(ExitCode),
    /// Re-execute the binary.
    Restart,
}

/// Runs the agent with `opts` until it stops, then exits or re-executes the binary. Logging
/// must already be set up as `output` says.
pub fn run(opts: AgentOptions, reloader: Reloader, output: Output) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(supervise(opts, reloader, output));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match outcome {
        Outcome::Exit(code) => code,
        Outcome::Restart => reexec(),
    }
}

/// One of the signals, whichever comes first.
enum Signal {
    Stop,
    Reload,
}

/// The signals the runner handles.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere).
    async fn stop(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }

    /// The next signal.
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Signal::Stop,
                _ = self.terminate.recv() => Signal::Stop,
                _ = self.hangup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            self.stop().await;
            Signal::Stop
        }
    }
}

async fn supervise(opts: AgentOptions, reloader: Reloader, output: Output) -> Outcome {
    // Installed before the agent starts, so an early SIGTERM still shuts it down cleanly.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: installing signal handlers: {e}");
            return Outcome::Exit(ExitCode::from(EXIT_FAILURE));
        }
    };
    let agent_section = &opts.config.agent;
    tracing::info!(
        connect_url = agent_section.connect_url.as_deref().unwrap_or_default(),
        config = %join_paths(&opts.config.paths),
        endpoints = %opts.start.join(","),
        version = env!("CARGO_PKG_VERSION"),
        "starting agent"
    );
    let agent = match Agent::start(opts).await {
        Ok(agent) => agent,
        Err(e) => {
            tracing::error!(err = %e, "the agent could not start");
            eprintln!("error: {e}");
            return Outcome::Exit(ExitCode::from(EXIT_FAILURE));
        }
    };
    let web_url = agent.local_api_addr().map(api_url);
    if let Some(url) = &web_url {
        tracing::info!(addr = %url, "local agent API listening");
    }

    let (stop_display, display_stopped) = watch::channel(false);
    let (notice, notices) = watch::channel(None::<String>);
    let display = if output.console_ui {
        tokio::spawn(console(
            agent.control(),
            agent.inspector(),
            web_url,
            notices,
            display_stopped,
        ))
    } else {
        tokio::spawn(log_changes(agent.control(), display_stopped))
    };

    let wait = agent.wait();
    tokio::pin!(wait);
    let exit = loop {
        tokio::select! {
            exit = &mut wait => break Some(exit),
            signal = signals.next() => match signal {
                Signal::Stop => break None,
                Signal::Reload => reload(&agent, &reloader, &notice).await,
            },
        }
    };

    let outcome = match exit {
        None => {
            tracing::info!("shutting down");
            tokio::select! {
                () = agent.shutdown() => Outcome::Exit(ExitCode::from(EXIT_OK)),
                () = signals.stop() => {
                    tracing::warn!("interrupted again; exiting without waiting");
                    Outcome::Exit(ExitCode::from(EXIT_INTERRUPTED))
                }
            }
        }
        Some(Exit::Stopped) => {
            tracing::info!("the agent stopped");
            Outcome::Exit(ExitCode::from(EXIT_OK))
        }
        Some(Exit::Restart) => {
            tracing::info!("restarting");
            // Frees the local API address and closes the session before the new process starts.
            agent.shutdown().await;
            Outcome::Restart
        }
        Some(Exit::Fatal(message)) => {
            tracing::error!(err = %message, "the agent stopped");
            agent.shutdown().await;
            let _ = stop_display.send(true);
            let _ = display.await;
            eprintln!("error: {message}");
            return Outcome::Exit(ExitCode::from(EXIT_FAILURE));
        }
    };
    let _ = stop_display.send(true);
    let _ = display.await;
    outcome
}

/// Re-reads the config files and applies them; a bad config is logged (and shown on the status
/// view) and the running one kept.
async fn reload(agent: &Agent, reloader: &Reloader, notice: &watch::Sender<Option<String>>) {
    tracing::info!(config = %join_paths(&reloader.paths), "reloading the config");
    let result = match reloader.load() {
        Ok(opts) => agent.reload(opts.config).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match result {
        Ok(summary) => {
            log_summary(&summary);
            let _ = notice.send(Some(format!("config reloaded: {}", describe(&summary))));
        }
        Err(e) => {
            tracing::error!(err = %e, "config reload failed; the running config is kept");
            let _ = notice.send(Some(format!("config reload failed: {e}")));
        }
    }
}

fn log_summary(s: &ReloadSummary) {
    tracing::info!(
        added = %s.added.join(","),
        removed = %s.removed.join(","),
        changed = %s.changed.join(","),
        "config reloaded"
    );
    if s.agent_changed {
        tracing::warn!("agent settings changed; they apply when the agent restarts");
    }
}

/// `added a, b; removed c` or `no endpoint changed`.
fn describe(s: &ReloadSummary) -> String {
    let parts: Vec<String> = [
        ("added", &s.added),
        ("removed", &s.removed),
        ("changed", &s.changed),
    ]
    .iter()
    .filter(|(_, names)| !names.is_empty())
    .map(|(what, names)| format!("{what} {}", names.join(", ")))
    .collect();
    if parts.is_empty() {
        "no endpoint changed".to_owned()
    } else {
        parts.join("; ")
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `http://127.0.0.1:4040`.
fn api_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Logs each change of the agent's state, polling every [`POLL_INTERVAL`] until `stop`.
async fn log_changes(control: SharedControl, mut stop: watch::Receiver<bool>) {
    let mut prev = Snapshot::initial();
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let next = Snapshot::capture(&*control);
        for change in status::changes(&prev, &next) {
            change.log();
        }
        prev = next;
    }
}

/// Draws the status view on the alternate screen every [`REDRAW_INTERVAL`] until `stop`, then
/// restores the screen.
async fn console(
    control: SharedControl,
    inspector: Option<Arc<Inspector>>,
    web_url: Option<String>,
    notices: watch::Receiver<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut screen = Screen::enter();
    #[cfg(unix)]
    let mut resized =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let mut size = terminal_size();
    let mut tick = tokio::time::interval(REDRAW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let resize = async {
            match resized.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let resize = std::future::pending::<()>();
        tokio::select! {
            _ = tick.tick() => {}
            () = resize => size = terminal_size(),
            _ = stop.changed() => break,
        }
        let recent: Vec<RecentRequest> = inspector
            .as_ref()
            .map(|i| i.recent(RECENT_REQUESTS))
            .unwrap_or_default()
            .iter()
            .map(|c| RecentRequest::from_capture(c))
            .collect();
        let mut body = status::render(
            &control.status(),
            &control.endpoints(),
            &recent,
            web_url.as_deref(),
            size.cols,
        );
        if let Some(n) = notices.borrow().as_deref() {
            body.push('\n');
            body.push_str(&status::render_notice(n, size.cols));
        }
        screen.draw(&status::frame(&body, size.rows));
    }
}

/// The terminal while the status view owns it; dropping it restores the screen.
struct Screen {
    out: std::io::Stdout,
}

impl Screen {
    fn enter() -> Screen {
        let mut out = std::io::stdout();
        let _ = out.write_all(status::SCREEN_ENTER.as_bytes());
        let _ = out.flush();
        Screen { out }
    }

    fn draw(&mut self, frame: &str) {
        let _ = self.out.write_all(frame.as_bytes());
        let _ = self.out.flush();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.out.write_all(status::SCREEN_LEAVE.as_bytes());
        let _ = self.out.flush();
    }
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy)]
struct Size {
    rows: usize,
    cols: usize,
}

/// The controlling terminal's size from `stty size`, else `LINES`/`COLUMNS`, else 24×80.
fn terminal_size() -> Size {
    let from_stty = std::fs::File::open("/dev/tty").ok().and_then(|tty| {
        let out = std::process::Command::new("stty")
            .arg("size")
            .stdin(tty)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let mut it = text.split_whitespace().map(|n| n.parse::<usize>().ok());
        Some(Size {
            rows: it.next()??,
            cols: it.next()??,
        })
    });
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    from_stty
        .filter(|s| s.rows > 0 && s.cols > 0)
        .unwrap_or(Size {
            rows: env("LINES").unwrap_or(24),
            cols: env("COLUMNS").unwrap_or(80),
        })
}

/// Replaces this process with a new run of the same binary and arguments (the binary may have
/// been updated in place). Returns only when that fails.
fn reexec() -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let argv0 = args.next().filter(|a| !a.is_empty());
        // argv[0] names the binary as it was started (a path, or a name found in PATH), so
        // an updated binary is picked up; /proc/self/exe would name the replaced one.
        let program = match &argv0 {
            Some(a) => PathBuf::from(a),
            None => match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: restarting: cannot find the warren binary: {e}");
                    return ExitCode::from(EXIT_FAILURE);
                }
            },
        };
        let mut command = std::process::Command::new(&program);
        command.args(args);
        if let Some(a) = argv0 {
            command.arg0(a);
        }
        let err = command.exec();
        eprintln!("error: restarting {}: {err}", program.display());
        ExitCode::from(EXIT_FAILURE)
    }
    #[cfg(not(unix))]
    {
        eprintln!("error: the edge asked for a restart; start warren again");
        ExitCode::from(EXIT_FAILURE)
    }
}
