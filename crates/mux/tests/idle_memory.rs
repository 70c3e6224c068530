//! Idle cost: many sessions, each with a live heartbeat stream, must stay cheap.
//! Its own test binary so no other test's allocations disturb the measurement.

mod common;

use common::t;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_mux::heartbeat::{self, HEARTBEAT_TYPE};
use warren_mux::{Config, Session};

/// Sessions measured (each pair holds one client and one server session).
const PAIRS: usize = 500;

/// Budget per idle session (the product target is 64 KiB per agent session including TLS;
/// the mux must leave most of that to TLS). Includes the test's own accept and echo tasks.
const BUDGET_PER_SESSION: usize = 8 * 1024;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("linux /proc");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

async fn idle_pair(
    listener: &tokio::net::TcpListener,
    burst: usize,
) -> (Session, Session, warren_mux::Stream) {
    // Loopback TCP: the kernel holds the socket buffers, so RSS shows only user-space cost.
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (a, (b, _)) = (a.unwrap(), b.unwrap());
    let client = Session::new(a, Config::client());
    let server = Session::new(b, Config::server());
    let srv = server.clone();
    tokio::spawn(async move {
        while let Ok((ty, st)) = srv.accept_typed().await {
            assert_eq!(ty, HEARTBEAT_TYPE);
            tokio::spawn(heartbeat::echo(st));
        }
    });
    // One heartbeat round trip, then a burst of traffic (growing the IO buffers), then idle.
    let mut hb = client
        .open_typed(HEARTBEAT_TYPE, &[1, 2, 3, 4])
        .await
        .unwrap();
    let mut echo = [0u8; 4];
    hb.read_exact(&mut echo).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(&mut hb);
    let data = vec![0u8; burst];
    let mut back = vec![0u8; burst];
    let (w, r) = tokio::join!(wr.write_all(&data), rd.read_exact(&mut back));
    w.unwrap();
    r.unwrap();
    (client, server, hb)
}

#[tokio::test]
async fn idle_sessions_are_cheap() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Warm up the allocator and runtime so their one-off costs are not counted: the same
    // number of bulk transfers as below, all buffers held at once, so the allocator's high
    // water mark for transient buffers is reached here and not measured below.
    let warm: Vec<_> = t(async {
        let mut v = Vec::new();
        for _ in 0..PAIRS / 10 {
            v.push(idle_pair(&listener, 512 * 1024).await);
        }
        v
    })
    .await;
    drop(warm);
    let before = rss_bytes();
    let pairs = t(async {
        let mut v = Vec::new();
        for i in 0..PAIRS {
            // Every tenth pair moves bulk data, so its buffers reach their largest size.
            let burst = if i % 10 == 0 { 512 * 1024 } else { 4096 };
            v.push(idle_pair(&listener, burst).await);
        }
        v
    })
    .await;
    // Idle long enough for every session to release its IO buffers (this waits for the
    // behaviour under test, a timer, not for readiness).
    tokio::time::sleep(warren_mux::IDLE_RELEASE_AFTER * 2).await;
    let after = rss_bytes();
    let per_session = after.saturating_sub(before) / (2 * PAIRS);
    println!("idle cost: {per_session} bytes per session ({PAIRS} pairs)");
    assert!(
        per_session <= BUDGET_PER_SESSION,
        "{per_session} bytes per idle session > {BUDGET_PER_SESSION}"
    );
    assert!(
        pairs
            .iter()
            .all(|(c, s, _)| !c.is_closed() && !s.is_closed())
    );
}
