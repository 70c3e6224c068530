//! Child processes and what the kernel says about them: spawning a role (warrend, an agent, a
//! rathole or bore peer) with its stderr in a log file, reading the lines it announces on stdout,
//! free loopback ports, readiness polls, and RSS / CPU time from `/proc`.
//!
//! Every wait here is bounded by a timeout; every child is killed when its [`Proc`] drops.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a role gets to start and announce itself.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running child process, killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
}

impl Proc {
    /// Spawns `cmd` with stdout piped (for [`Proc::line`]) and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        Ok(Proc {
            name: name.to_owned(),
            child,
            stdout,
        })
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has exited", self.name))
    }

    /// The next stdout line that starts with `prefix`, without the prefix; lines in between are
    /// skipped. Fails if the process closes stdout or `START_TIMEOUT` passes.
    pub async fn line(&mut self, prefix: &str) -> anyhow::Result<String> {
        let name = self.name.clone();
        let lines = self
            .stdout
            .as_mut()
            .with_context(|| format!("{name} has no stdout"))?;
        let wait = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.trim().to_owned());
                }
            }
            bail!("{name} exited before printing {prefix:?} (see its log)")
        };
        tokio::time::timeout(START_TIMEOUT, wait)
            .await
            .with_context(|| format!("{name} did not print {prefix:?} in time"))?
    }

    /// The exit status if the process has exited, `None` while it runs.
    pub fn exit_status(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// Reads and discards stdout in the background so the child never blocks on a full pipe.
    pub fn drain_stdout(&mut self) {
        if let Some(mut lines) = self.stdout.take() {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
    }

    /// Kills the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A loopback port that was free a moment ago (bound on port 0, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(listener.local_addr()?.port())
}

/// A loopback address on a port that was free a moment ago.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

/// Retries `attempt` every 50 ms until it succeeds or `timeout` passes; the last error is kept.
pub async fn retry<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let error = match tokio::time::timeout(Duration::from_secs(5), attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => anyhow::anyhow!("attempt timed out"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(error.context(format!("{what}: not ready after {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// User plus system CPU time `pid` has used so far, in seconds (`/proc/PID/stat`).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are
    // space-separated, starting with field 3 (state). utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

/// `sysconf(_SC_CLK_TCK)` via `getconf`, 100 (Linux's USER_HZ everywhere) if that fails.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds used by a set of processes between [`CpuMeter::start`] and [`CpuMeter::stop`].
pub struct CpuMeter {
    pids: Vec<u32>,
    before: Vec<f64>,
}

impl CpuMeter {
    /// Starts counting for `pids`.
    pub fn start(pids: &[u32]) -> anyhow::Result<CpuMeter> {
        let before = pids
            .iter()
            .map(|&pid| cpu_seconds(pid))
            .collect::<anyhow::Result<_>>()?;
        Ok(CpuMeter {
            pids: pids.to_vec(),
            before,
        })
    }

    /// CPU seconds each process used since `start`, in the order given.
    pub fn stop(&self) -> anyhow::Result<Vec<f64>> {
        self.pids
            .iter()
            .zip(&self.before)
            .map(|(&pid, before)| Ok(cpu_seconds(pid)? - before))
            .collect()
    }
}
