//! The muxado heartbeat (docs/agent-protocol.md §4): a typed stream of type
//! [`HEARTBEAT_TYPE`] on which the requester writes random 4-byte probes and the responder
//! echoes them back unchanged.
//!
//! Owns both roles: [`echo`] (the responder the edge runs for every accepted heartbeat
//! stream) and [`start`] (an active requester that measures latency and closes the session
//! when the echo stops). Timing uses `tokio::time`, so paused-clock tests drive it; the wall
//! time of the last echo (for "last heartbeat at" displays) is the only wall-clock read.
//! Callers observe the measurements through a [`HeartbeatProbe`] and, optionally, a
//! [`RoundTripObserver`] called for every echo; the heartbeat knows nothing of what they do
//! with them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// A callback told every answered probe's round-trip time (for a latency histogram). It runs
/// on the heartbeat task, so it must be quick and must not block.
pub type RoundTripObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// What a heartbeat requester has measured so far, shared with whoever wants to read it.
#[derive(Debug, Default)]
struct ProbeState {
    /// Last round-trip time in nanoseconds plus one; 0 = no echo yet.
    latency: AtomicU64,
    /// Wall time of the last echo, unix milliseconds plus one; 0 = no echo yet.
    last_echo_ms: AtomicU64,
}

/// A cheap, cloneable read handle on a heartbeat's measurements. It stays readable after the
/// heartbeat stopped (its values are then the last ones measured).
#[derive(Clone, Debug, Default)]
pub struct HeartbeatProbe {
    state: Arc<ProbeState>,
}

impl HeartbeatProbe {
    /// Round-trip time of the last answered probe.
    pub fn latency(&self) -> Option<Duration> {
        match self.state.latency.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }

    /// Wall time at which the last probe's echo arrived.
    pub fn last_echo_at(&self) -> Option<SystemTime> {
        match self.state.last_echo_ms.load(Ordering::Relaxed) {
            0 => None,
            n => Some(UNIX_EPOCH + Duration::from_millis(n - 1)),
        }
    }

    fn record(&self, rtt: Duration, at: SystemTime) {
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX - 1);
        self.state
            .latency
            .store(nanos.min(u64::MAX - 1) + 1, Ordering::Relaxed);
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1));
        self.state
            .last_echo_ms
            .store(ms.min(u64::MAX - 1) + 1, Ordering::Relaxed);
    }
}

/// A running heartbeat requester. Dropping it stops the heartbeat (the session stays up).
#[must_use = "dropping the Heartbeat stops it"]
#[derive(Debug)]
pub struct Heartbeat {
    probe: HeartbeatProbe,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Round-trip time of the last answered probe.
    pub fn latency(&self) -> Option<Duration> {
        self.probe.latency()
    }

    /// Wall time at which the last probe's echo arrived.
    pub fn last_echo_at(&self) -> Option<SystemTime> {
        self.probe.last_echo_at()
    }

    /// A read handle on the measurements that may outlive this `Heartbeat`.
    pub fn probe(&self) -> HeartbeatProbe {
        self.probe.clone()
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
    start_observed(session, cfg, None)
}

/// [`start`], and `observer` (when given) is told each answered probe's round-trip time.
pub fn start_observed(
    session: &Session,
    cfg: HeartbeatConfig,
    observer: Option<RoundTripObserver>,
) -> Heartbeat {
    let probe = HeartbeatProbe::default();
    let task = tokio::spawn(run(session.shared().clone(), cfg, probe.clone(), observer));
    Heartbeat { probe, task }
}

async fn run(
    shared: Arc<Shared>,
    cfg: HeartbeatConfig,
    probe_state: HeartbeatProbe,
    observer: Option<RoundTripObserver>,
) {
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
        probe_state.record(rtt, SystemTime::now());
        if let Some(observe) = &observer {
            observe(rtt);
        }
        tokio::time::sleep_until(sent + cfg.interval).await;
        probe = rand::random();
        sent = Instant::now();
        if stream.write_all(&probe.to_be_bytes()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_record_latency_and_wall_time_and_tell_the_observer() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let client = Session::new(a, crate::Config::client());
        let server = Session::new(b, crate::Config::server());
        let echoing = server.clone();
        tokio::spawn(async move {
            while let Ok((_, stream)) = echoing.accept_typed().await {
                tokio::spawn(echo(stream));
            }
        });
        let seen = Arc::new(AtomicU64::new(0));
        let observer: RoundTripObserver = {
            let seen = seen.clone();
            Arc::new(move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            })
        };
        let before = SystemTime::now() - Duration::from_millis(1);
        let hb = start_observed(
            &client,
            HeartbeatConfig {
                interval: Duration::from_millis(5),
                tolerance: Duration::from_secs(10),
            },
            Some(observer),
        );
        let probe = hb.probe();
        assert!(probe.latency().is_none() && probe.last_echo_at().is_none());
        tokio::time::timeout(Duration::from_secs(10), async {
            while seen.load(Ordering::Relaxed) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("two echoes in time");
        assert!(probe.latency().is_some());
        let at = probe.last_echo_at().expect("an echo time");
        assert!(at >= before && at <= SystemTime::now() + Duration::from_secs(1));
        // The handle outlives the heartbeat.
        drop(hb);
        assert!(probe.latency().is_some());
    }
}
