//! Warren sessions talking to each other over an in-memory pipe: the stream contract.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{checksum, pair, payload, t};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_mux::heartbeat::{self, HEARTBEAT_TYPE, HeartbeatConfig};
use warren_mux::{Config, Error, ErrorCode, Session};

fn default_pair() -> (Session, Session) {
    pair(Config::client(), Config::server())
}

#[tokio::test]
async fn open_accept_both_ways_with_parity() {
    let (c, s) = default_pair();
    let mut a = t(c.open()).await.unwrap();
    assert_eq!(a.id(), 3);
    t(a.write_all(b"ping")).await.unwrap();
    let mut b = t(s.accept()).await.unwrap();
    assert_eq!(b.id(), 3);
    let mut buf = [0u8; 4];
    t(b.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"ping");

    let mut x = t(s.open()).await.unwrap();
    assert_eq!(x.id(), 2);
    t(x.write_all(b"pong")).await.unwrap();
    let mut y = t(c.accept()).await.unwrap();
    assert_eq!(y.id(), 2);
    t(y.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"pong");

    assert_eq!(t(c.open()).await.unwrap().id(), 5);
    assert_eq!(t(s.open()).await.unwrap().id(), 4);
    // a and y; the id-5 stream was dropped before it was ever announced.
    assert_eq!(c.stream_count(), 2);
}

#[tokio::test]
async fn flush_before_write_announces_the_stream() {
    let (c, s) = default_pair();
    let mut a = t(c.open()).await.unwrap();
    t(a.flush()).await.unwrap();
    let b = t(s.accept()).await.unwrap();
    assert_eq!(b.id(), a.id());
}

#[tokio::test]
async fn typed_streams_both_ways() {
    let (c, s) = default_pair();
    let mut a = t(c.open_typed(7, b"{\"x\":1}")).await.unwrap();
    let (ty, mut b) = t(s.accept_typed()).await.unwrap();
    assert_eq!(ty, 7);
    let mut buf = [0u8; 7];
    t(b.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"{\"x\":1}");

    // Empty first payload; type only.
    let _p = t(s.open_typed(3, b"")).await.unwrap();
    let (ty, _q) = t(c.accept_typed()).await.unwrap();
    assert_eq!(ty, 3);

    // A raw stream sending its type in pieces (like the Rust SDK: type in its own frame).
    let mut r = t(c.open()).await.unwrap();
    t(r.write_all(&[0, 0])).await.unwrap();
    t(r.write_all(&[0, 1, b'!'])).await.unwrap();
    let (ty, mut rr) = t(s.accept_typed()).await.unwrap();
    assert_eq!(ty, 1);
    let mut one = [0u8; 1];
    t(rr.read_exact(&mut one)).await.unwrap();
    assert_eq!(&one, b"!");
    drop(a.shutdown().await);
}

#[tokio::test]
async fn first_frame_must_fit_the_window() {
    let (c, _s) = default_pair();
    let big = vec![0u8; warren_mux::DEFAULT_WINDOW as usize - 3];
    assert!(matches!(
        t(c.open_typed(1, &big)).await,
        Err(Error::FirstFrameTooLarge { .. })
    ));
    let ok = vec![0u8; warren_mux::DEFAULT_WINDOW as usize - 4];
    assert!(t(c.open_typed(1, &ok)).await.is_ok());
}

async fn bulk(c: &Session, s: &Session, len: usize, seed: u8) {
    let data = payload(len, seed);
    let sum = checksum(&data);
    let mut a = t(c.open()).await.unwrap();
    let writer = tokio::spawn(async move {
        a.write_all(&data).await.unwrap();
        a.shutdown().await.unwrap();
        // Read the peer's echo of the checksum.
        let mut back = Vec::new();
        a.read_to_end(&mut back).await.unwrap();
        back
    });
    let mut b = t(s.accept()).await.unwrap();
    let mut got = Vec::new();
    t(b.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got.len(), len);
    assert_eq!(checksum(&got), sum);
    // Send it all back the other way.
    t(b.write_all(&got)).await.unwrap();
    t(b.shutdown()).await.unwrap();
    let back = t(writer).await.unwrap();
    assert_eq!(checksum(&back), sum);
}

#[tokio::test]
async fn bulk_transfer_exercises_window_updates() {
    let (c, s) = default_pair();
    bulk(&c, &s, 3 * 1024 * 1024 + 17, 1).await;
}

#[tokio::test]
async fn many_concurrent_bulk_streams_interleave() {
    let (c, s) = default_pair();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let data = payload(600 * 1024 + i as usize, i);
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut st = c.open().await.unwrap();
            st.write_all(&data).await.unwrap();
            st.shutdown().await.unwrap();
            let mut back = [0u8; 8];
            st.read_exact(&mut back).await.unwrap();
            assert_eq!(u64::from_be_bytes(back), checksum(&data));
        }));
    }
    for _ in 0..16 {
        let mut st = t(s.accept()).await.unwrap();
        tokio::spawn(async move {
            let mut got = Vec::new();
            st.read_to_end(&mut got).await.unwrap();
            st.write_all(&checksum(&got).to_be_bytes()).await.unwrap();
            st.shutdown().await.unwrap();
        });
    }
    for task in tasks {
        t(task).await.unwrap();
    }
}

#[tokio::test]
async fn half_close_keeps_the_other_direction() {
    let (c, s) = default_pair();
    let mut a = t(c.open()).await.unwrap();
    t(a.write_all(b"request")).await.unwrap();
    t(a.shutdown()).await.unwrap();
    assert_eq!(
        t(a.write_all(b"more")).await.unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    let mut b = t(s.accept()).await.unwrap();
    let mut got = Vec::new();
    t(b.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"request");
    // Reads after FIN keep returning EOF.
    assert_eq!(t(b.read(&mut [0u8; 8])).await.unwrap(), 0);
    t(b.write_all(b"response")).await.unwrap();
    t(b.shutdown()).await.unwrap();
    let mut got = Vec::new();
    t(a.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"response");
    drop(a);
    drop(b);
    // Both streams finished cleanly: their state is gone on both sides.
    t(async {
        while c.stream_count() + s.stream_count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn reset_fails_peer_reads_and_writes() {
    let (c, s) = default_pair();
    let mut a = t(c.open()).await.unwrap();
    t(a.write_all(b"x")).await.unwrap();
    let mut b = t(s.accept()).await.unwrap();
    t(b.read_exact(&mut [0u8; 1])).await.unwrap();
    let pending_read = tokio::spawn(async move {
        let r = b.read(&mut [0u8; 8]).await;
        (b, r)
    });
    a.reset(ErrorCode::StreamCancelled);
    let (mut b, r) = t(pending_read).await.unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert_eq!(
        t(b.write_all(b"y")).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn dropping_an_unfinished_stream_resets_it() {
    let (c, s) = default_pair();
    let mut a = t(c.open()).await.unwrap();
    t(a.write_all(b"partial")).await.unwrap();
    let mut b = t(s.accept()).await.unwrap();
    let mut got = [0u8; 7];
    t(b.read_exact(&mut got)).await.unwrap();
    let pending = tokio::spawn(async move { b.read(&mut [0u8; 1]).await });
    drop(a);
    let err = t(pending).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    t(async {
        while c.stream_count() + s.stream_count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn max_local_streams_fails_fast() {
    let mut cfg = Config::server();
    cfg.max_local_streams = 3;
    let (c, s) = pair(Config::client(), cfg);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(t(s.open()).await.unwrap());
    }
    assert!(matches!(t(s.open()).await, Err(Error::StreamsExhausted)));
    assert!(matches!(
        t(s.open_typed(1, b"")).await,
        Err(Error::StreamsExhausted)
    ));
    // Freeing one makes room again.
    held.pop();
    assert!(t(s.open()).await.is_ok());
    drop(c);
}

#[tokio::test]
async fn go_away_reaches_the_peer_and_closes() {
    let (c, s) = default_pair();
    let mut a = t(c.open()).await.unwrap();
    t(a.write_all(b"hi")).await.unwrap();
    let mut b = t(s.accept()).await.unwrap();
    s.go_away(ErrorCode::NoError, "maintenance");
    assert!(s.is_closed());
    match t(c.closed()).await {
        Error::RemoteGoneAway { code, debug } => {
            assert_eq!(code, ErrorCode::NoError);
            assert_eq!(debug, "maintenance");
        }
        e => panic!("unexpected {e}"),
    }
    assert!(matches!(t(s.closed()).await, Error::SessionClosed));
    // All streams fail on both sides; opens and accepts too.
    let mut buf = Vec::new();
    assert!(t(a.read_to_end(&mut buf)).await.is_err());
    assert!(t(b.write_all(b"x")).await.is_err());
    assert!(t(c.open()).await.is_err());
    assert!(t(s.accept()).await.is_err());
}

#[tokio::test]
async fn close_and_drop_end_the_session_for_the_peer() {
    let (c, s) = default_pair();
    c.close();
    assert!(matches!(t(s.closed()).await, Error::PeerEof));
    assert!(matches!(t(c.closed()).await, Error::SessionClosed));

    let (c, s) = default_pair();
    drop(c);
    assert!(matches!(t(s.closed()).await, Error::PeerEof));
}

#[tokio::test]
async fn buffered_data_is_readable_after_the_session_ends() {
    let (c, s) = default_pair();
    let mut a = t(c.open()).await.unwrap();
    t(a.write_all(b"last words")).await.unwrap();
    t(a.shutdown()).await.unwrap();
    let mut b = t(s.accept()).await.unwrap();
    // Wait until the FIN is in, then kill the session.
    t(async {
        let mut p = [0u8; 1];
        b.read_exact(&mut p).await.unwrap();
    })
    .await;
    c.close();
    t(s.closed()).await;
    let mut rest = Vec::new();
    t(b.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(rest, b"ast words");
}

#[tokio::test]
async fn heartbeat_requester_and_echo() {
    let (c, s) = default_pair();
    // Server side: echo every heartbeat stream it accepts.
    let server = s.clone();
    tokio::spawn(async move {
        while let Ok((ty, st)) = server.accept_typed().await {
            assert_eq!(ty, HEARTBEAT_TYPE);
            tokio::spawn(heartbeat::echo(st));
        }
    });
    let hb = heartbeat::start(
        &c,
        HeartbeatConfig {
            interval: Duration::from_millis(5),
            tolerance: Duration::from_secs(10),
        },
    );
    t(async {
        while hb.latency().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!c.is_closed());
    drop(hb);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_timeout_closes_the_session() {
    let (c, s) = default_pair();
    // The server accepts the heartbeat stream and never echoes.
    let server = s.clone();
    let hold = tokio::spawn(async move { server.accept_typed().await });
    let hb = heartbeat::start(
        &c,
        HeartbeatConfig {
            interval: Duration::from_secs(10),
            tolerance: Duration::from_secs(15),
        },
    );
    let started = tokio::time::Instant::now();
    assert!(matches!(t(c.closed()).await, Error::HeartbeatTimeout));
    assert!(started.elapsed() >= Duration::from_secs(15));
    assert!(hb.latency().is_none());
    drop(hold);
}

#[tokio::test]
async fn echo_handles_values_split_across_frames() {
    let (c, s) = default_pair();
    tokio::spawn(async move {
        let (_, st) = s.accept_typed().await.unwrap();
        heartbeat::echo(st).await;
        // Keep the session up until the client has read everything.
        s.closed().await;
    });
    let mut st = t(c.open_typed(HEARTBEAT_TYPE, &[1, 2])).await.unwrap();
    t(st.write_all(&[3])).await.unwrap();
    t(st.write_all(&[4, 5, 6, 7, 8, 9, 10])).await.unwrap();
    t(st.shutdown()).await.unwrap();
    let mut got = Vec::new();
    t(st.read_to_end(&mut got)).await.unwrap();
    // Whole values only, in order; the trailing partial value is not echoed.
    assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8]);
}
