//! The muxado heartbeat (docs/agent-protocol.md §4): a typed stream of type
//! [`HEARTBEAT_TYPE`] on which the requester writes random 4-byte probes and the responder
//! echoes them back unchanged.
//!
//! Owns both roles: [`echo`] (the responder the edge runs for every accepted heartbeat
//! stream) and [`start`] (an active requester that measures latency and closes the session
//! when the echo stops). Timing uses `tokio::time`, so paused-clock tests drive it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::CloseReason;
use crate::state::Shared;
use crate::{Session, Stream};

/// Stream type of heartbeat streams (both directions).
pub const HEARTBEAT_TYPE: u32 = 0xFFFF_FFFF;

/// Default time between probes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Default time to wait for a probe's echo before declaring the peer dead.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(15);

/// Probe size.
const PROBE_LEN: usize = 4;

/// Echoes every 4-byte value read from `stream`, unchanged and in order, until EOF or an
/// error; values split across frames are reassembled first. Then sends FIN.
pub async fn echo(mut stream: Stream) {
    // A multiple of PROBE_LEN, so a partial value always leaves room to complete it.
    let mut buf = [0u8; 16 * PROBE_LEN];
    let mut held = 0;
    loop {
        let n = match stream.read(&mut buf[held..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        held += n;
        let whole = held - held % PROBE_LEN;
        if whole > 0 {
            if stream.write_all(&buf[..whole]).await.is_err() {
                return;
            }
            buf.copy_within(whole..held, 0);
            held -= whole;
        }
    }
    let _ = stream.shutdown().await;
}

/// Requester timing.
#[derive(Clone, Copy, Debug)]
pub struct HeartbeatConfig {
    /// Time between the starts of consecutive probes.
    pub interval: Duration,
    /// How long to wait for a probe's echo before closing the session.
    pub tolerance: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval: DEFAULT_INTERVAL,
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

/// A running heartbeat requester. Dropping it stops the heartbeat (the session stays up).
#[must_use = "dropping the Heartbeat stops it"]
#[derive(Debug)]
pub struct Heartbeat {
    /// Last round-trip time in nanoseconds plus one; 0 = no echo yet.
    latency: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Round-trip time of the last answered probe.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }

    /// Whether the requester has stopped (session over, stream failed, or timeout).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens a heartbeat stream on `session` (type and first probe in one frame, the first
/// probe sent at once) and probes every `cfg.interval`, each probe a single 4-byte DATA
/// frame. If an echo does not arrive within `cfg.tolerance` the session is closed with
/// [`crate::Error::HeartbeatTimeout`]; a wrong echo closes it with
/// [`crate::Error::Protocol`]. The task does not keep the session alive.
pub fn start(session: &Session, cfg: HeartbeatConfig) -> Heartbeat {
    let latency = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(run(session.shared().clone(), cfg, latency.clone()));
    Heartbeat { latency, task }
}

async fn run(shared: Arc<Shared>, cfg: HeartbeatConfig, latency: Arc<AtomicU64>) {
    let mut probe: u32 = rand::random();
    let mut sent = Instant::now();
    let mut stream =
        match crate::session::open_typed(&shared, HEARTBEAT_TYPE, &probe.to_be_bytes()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat: could not open stream");
                return;
            }
        };
    loop {
        let mut echo = [0u8; PROBE_LEN];
        match tokio::time::timeout(cfg.tolerance, stream.read_exact(&mut echo)).await {
            Err(_) => {
                tracing::debug!("heartbeat: no echo within tolerance, closing session");
                shared.close(CloseReason::HeartbeatTimeout);
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "heartbeat stream ended");
                return;
            }
            Ok(Ok(_)) => {}
        }
        if u32::from_be_bytes(echo) != probe {
            shared.close(CloseReason::Protocol("heartbeat echo mismatch".into()));
            return;
        }
        let rtt = sent.elapsed();
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX - 1);
        latency.store(nanos + 1, Ordering::Relaxed);
        tokio::time::sleep_until(sent + cfg.interval).await;
        probe = rand::random();
        sent = Instant::now();
        if stream.write_all(&probe.to_be_bytes()).await.is_err() {
            return;
        }
    }
}
