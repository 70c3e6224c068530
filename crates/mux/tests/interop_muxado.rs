//! Interop against the crates.io `muxado` crate (ngrok-rust's implementation, the one the
//! official Rust, Python and Node SDKs run), in both roles.

mod common;

use std::time::Duration;

use common::{checksum, payload, t};
use muxado::heartbeat::{Heartbeat as MxHeartbeat, HeartbeatConfig as MxHeartbeatConfig};
use muxado::typed::{StreamType, Typed, TypedAccept, TypedOpenClose, TypedSession};
use muxado::{Accept, OpenClose, Session as _, SessionBuilder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warren_mux::heartbeat::{self, HEARTBEAT_TYPE, HeartbeatConfig};
use warren_mux::{Config, Error, ErrorCode, Role, Session};

/// Our session with `role` on one end of a pipe, a muxado session (other role) on the other.
fn connect(role: Role) -> (Session, muxado::MuxadoSession) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (ours, theirs) = match role {
        Role::Server => (
            Session::new(a, Config::server()),
            SessionBuilder::new(b).client().start(),
        ),
        Role::Client => (
            Session::new(a, Config::client()),
            SessionBuilder::new(b).server().start(),
        ),
    };
    (ours, theirs)
}

/// Same over a loopback TCP socket.
async fn connect_tcp(role: Role) -> (Session, muxado::MuxadoSession) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (dialed, (accepted, _)) = (dialed.unwrap(), accepted.unwrap());
    match role {
        Role::Server => (
            Session::new(accepted, Config::server()),
            SessionBuilder::new(dialed).client().start(),
        ),
        Role::Client => (
            Session::new(dialed, Config::client()),
            SessionBuilder::new(accepted).server().start(),
        ),
    }
}

/// Writes `len` bytes, half-closes, then expects the peer's checksum back.
async fn send_and_check<S: AsyncRead + AsyncWrite + Unpin>(st: &mut S, len: usize, seed: u8) {
    let data = payload(len, seed);
    let (mut rd, mut wr) = tokio::io::split(st);
    let write = async {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
    };
    let read = async {
        let mut back = [0u8; 8];
        rd.read_exact(&mut back).await.unwrap();
        u64::from_be_bytes(back)
    };
    let ((), got) = t(async { tokio::join!(write, read) }).await;
    assert_eq!(got, checksum(&data));
}

/// Reads to EOF and answers with the checksum, then half-closes.
async fn receive_and_answer<S: AsyncRead + AsyncWrite + Unpin>(st: &mut S) -> usize {
    let mut got = Vec::new();
    t(st.read_to_end(&mut got)).await.unwrap();
    t(st.write_all(&checksum(&got).to_be_bytes()))
        .await
        .unwrap();
    t(st.shutdown()).await.unwrap();
    got.len()
}

async fn open_accept_both_ways(ours: Session, theirs: muxado::MuxadoSession, our_role: Role) {
    let (mut mx_open, mut mx_accept) = theirs.split();

    // Theirs -> ours.
    let mut a = t(mx_open.open()).await.unwrap();
    t(a.write_all(b"hello from muxado")).await.unwrap();
    let mut b = t(ours.accept()).await.unwrap();
    let expected_remote_first = if our_role == Role::Server { 3 } else { 2 };
    assert_eq!(b.id(), expected_remote_first);
    let mut buf = [0u8; 17];
    t(b.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"hello from muxado");
    t(b.write_all(b"reply")).await.unwrap();
    let mut five = [0u8; 5];
    t(a.read_exact(&mut five)).await.unwrap();
    assert_eq!(&five, b"reply");

    // Ours -> theirs.
    let mut c = t(ours.open()).await.unwrap();
    let expected_local_first = if our_role == Role::Server { 2 } else { 3 };
    assert_eq!(c.id(), expected_local_first);
    t(c.write_all(b"hello from warren")).await.unwrap();
    let mut d = t(mx_accept.accept()).await.unwrap();
    t(d.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"hello from warren");
    t(d.write_all(b"back!")).await.unwrap();
    t(c.read_exact(&mut five)).await.unwrap();
    assert_eq!(&five, b"back!");
}

#[tokio::test]
async fn streams_both_ways_as_server() {
    let (ours, theirs) = connect(Role::Server);
    open_accept_both_ways(ours, theirs, Role::Server).await;
}

#[tokio::test]
async fn streams_both_ways_as_client() {
    let (ours, theirs) = connect(Role::Client);
    open_accept_both_ways(ours, theirs, Role::Client).await;
}

async fn bulk_both_ways(ours: Session, theirs: muxado::MuxadoSession) {
    let (mut mx_open, mut mx_accept) = theirs.split();
    let len = 3 * 1024 * 1024 + 123; // well past the 256 KiB window: needs WNDINC both ways

    // Ours sends, muxado receives.
    let mut st = t(ours.open()).await.unwrap();
    let recv = tokio::spawn(async move {
        let mut s = mx_accept.accept().await.unwrap();
        receive_and_answer(&mut s).await
    });
    send_and_check(&mut st, len, 1).await;
    assert_eq!(t(recv).await.unwrap(), len);

    // Muxado sends, ours receives.
    let recv = {
        let ours = ours.clone();
        tokio::spawn(async move {
            let mut s = ours.accept().await.unwrap();
            receive_and_answer(&mut s).await
        })
    };
    let mut st = t(mx_open.open()).await.unwrap();
    send_and_check(&mut st, len, 2).await;
    assert_eq!(t(recv).await.unwrap(), len);
}

#[tokio::test]
async fn bulk_transfer_with_window_updates_as_server() {
    let (ours, theirs) = connect(Role::Server);
    bulk_both_ways(ours, theirs).await;
}

#[tokio::test]
async fn bulk_transfer_with_window_updates_as_client() {
    let (ours, theirs) = connect(Role::Client);
    bulk_both_ways(ours, theirs).await;
}

#[tokio::test]
async fn bulk_transfer_over_loopback_tcp() {
    let (ours, theirs) = connect_tcp(Role::Server).await;
    bulk_both_ways(ours, theirs).await;
    let (ours, theirs) = connect_tcp(Role::Client).await;
    bulk_both_ways(ours, theirs).await;
}

#[tokio::test]
async fn concurrent_streams_from_muxado() {
    let (ours, theirs) = connect(Role::Server);
    let (mx_open, _mx_accept) = theirs.split();
    let server = ours.clone();
    tokio::spawn(async move {
        while let Ok(mut s) = server.accept().await {
            tokio::spawn(async move { receive_and_answer(&mut s).await });
        }
    });
    let mut tasks = Vec::new();
    for i in 0..12u8 {
        let mut open = mx_open.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = open.open().await.unwrap();
            send_and_check(&mut s, 300_000 + i as usize * 7, i).await;
        }));
    }
    for task in tasks {
        t(task).await.unwrap();
    }
}

#[tokio::test]
async fn typed_streams_as_server() {
    let (ours, theirs) = connect(Role::Server);
    let (mut mx_open, mut mx_accept) = Typed::new(theirs).split_typed();

    // The SDK's way: type in its own write, then the request.
    let mut rpc = t(mx_open.open_typed(StreamType::clamp(1))).await.unwrap();
    t(rpc.write_all(b"{\"Id\":\"x\"}")).await.unwrap();
    let (ty, mut st) = t(ours.accept_typed()).await.unwrap();
    assert_eq!(ty, 1);
    let mut req = [0u8; 10];
    t(st.read_exact(&mut req)).await.unwrap();
    assert_eq!(&req, b"{\"Id\":\"x\"}");
    t(st.write_all(b"{}")).await.unwrap();
    t(st.shutdown()).await.unwrap();
    let mut resp = Vec::new();
    t(rpc.read_to_end(&mut resp)).await.unwrap();
    assert_eq!(resp, b"{}");

    // Ours: type and header in the first frame (a proxy stream).
    let mut proxy = t(ours.open_typed(3, b"header")).await.unwrap();
    let mut got = t(mx_accept.accept_typed()).await.unwrap();
    assert_eq!(*got.typ(), 3);
    let mut hdr = [0u8; 6];
    t(got.read_exact(&mut hdr)).await.unwrap();
    assert_eq!(&hdr, b"header");
    t(proxy.shutdown()).await.unwrap();
}

#[tokio::test]
async fn typed_streams_as_client() {
    let (ours, theirs) = connect(Role::Client);
    let (mut mx_open, mut mx_accept) = Typed::new(theirs).split_typed();
    let _s = t(ours.open_typed(0, b"{\"auth\":1}")).await.unwrap();
    let mut got = t(mx_accept.accept_typed()).await.unwrap();
    assert_eq!(*got.typ(), 0);
    let mut body = [0u8; 10];
    t(got.read_exact(&mut body)).await.unwrap();
    assert_eq!(&body, b"{\"auth\":1}");

    let mut cmd = t(mx_open.open_typed(StreamType::clamp(4))).await.unwrap();
    t(cmd.write_all(b"restart")).await.unwrap();
    let (ty, mut st) = t(ours.accept_typed()).await.unwrap();
    assert_eq!(ty, 4);
    let mut body = [0u8; 7];
    t(st.read_exact(&mut body)).await.unwrap();
    assert_eq!(&body, b"restart");
}

#[tokio::test]
async fn half_close_both_ways() {
    let (ours, theirs) = connect(Role::Server);
    let (mut mx_open, _mx_accept) = theirs.split();
    let mut a = t(mx_open.open()).await.unwrap();
    t(a.write_all(b"question")).await.unwrap();
    t(a.shutdown()).await.unwrap();
    let mut b = t(ours.accept()).await.unwrap();
    let mut q = Vec::new();
    t(b.read_to_end(&mut q)).await.unwrap();
    assert_eq!(q, b"question");
    // Our direction is still open after their FIN.
    t(b.write_all(b"answer")).await.unwrap();
    t(b.shutdown()).await.unwrap();
    let mut ans = Vec::new();
    t(a.read_to_end(&mut ans)).await.unwrap();
    assert_eq!(ans, b"answer");
}

#[tokio::test]
async fn our_reset_fails_their_writes() {
    let (ours, theirs) = connect(Role::Server);
    let (_mx_open, mut mx_accept) = theirs.split();
    let mut st = t(ours.open()).await.unwrap();
    t(st.write_all(b"x")).await.unwrap();
    let mut theirs_st = t(mx_accept.accept()).await.unwrap();
    let mut one = [0u8; 1];
    t(theirs_st.read_exact(&mut one)).await.unwrap();
    st.reset(ErrorCode::StreamCancelled);
    // ngrok-rust's muxado turns a received RST into failing writes (its reads just stall).
    let err = t(async {
        loop {
            if let Err(e) = theirs_st.write_all(b"z").await {
                return e;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    // The session is unaffected.
    let mut again = t(ours.open()).await.unwrap();
    t(again.write_all(b"y")).await.unwrap();
    let mut s2 = t(mx_accept.accept()).await.unwrap();
    t(s2.read_exact(&mut one)).await.unwrap();
    assert_eq!(&one, b"y");
}

#[tokio::test]
async fn their_dropped_stream_ends_ours_cleanly() {
    // muxado sends FIN when its stream handle is dropped.
    let (ours, theirs) = connect(Role::Server);
    let (mut mx_open, _mx_accept) = theirs.split();
    let mut a = t(mx_open.open()).await.unwrap();
    t(a.write_all(b"bye")).await.unwrap();
    drop(a);
    let mut b = t(ours.accept()).await.unwrap();
    let mut got = Vec::new();
    t(b.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"bye");
}

#[tokio::test]
async fn muxado_heartbeat_against_our_echo() {
    let (ours, theirs) = connect(Role::Server);
    let server = ours.clone();
    tokio::spawn(async move {
        while let Ok((ty, st)) = server.accept_typed().await {
            if ty == HEARTBEAT_TYPE {
                tokio::spawn(heartbeat::echo(st));
            }
        }
    });
    let (_hb, ctl) = t(MxHeartbeat::start(
        Typed::new(theirs),
        MxHeartbeatConfig {
            interval: Duration::from_secs(3600),
            tolerance: Duration::from_secs(3600),
            handler: None,
        },
    ))
    .await
    .unwrap();
    for _ in 0..5 {
        let rtt = t(ctl.beat()).await.unwrap();
        assert!(rtt < common::STEP);
    }
}

#[tokio::test]
async fn our_heartbeat_against_muxado_responder() {
    let (ours, theirs) = connect(Role::Server);
    let (mut hb_sess, _ctl) = t(MxHeartbeat::start(
        Typed::new(theirs),
        MxHeartbeatConfig {
            interval: Duration::from_secs(3600),
            tolerance: Duration::from_secs(3600),
            handler: None,
        },
    ))
    .await
    .unwrap();
    // muxado answers heartbeat streams from inside accept_typed.
    tokio::spawn(async move { while hb_sess.accept_typed().await.is_ok() {} });
    // Their heartbeat stream arrives here too; echo it so their side stays happy.
    let server = ours.clone();
    tokio::spawn(async move {
        while let Ok((_, st)) = server.accept_typed().await {
            tokio::spawn(heartbeat::echo(st));
        }
    });
    let hb = heartbeat::start(
        &ours,
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
    // Several more rounds (later probes are separate 4-byte frames; muxado echoes after
    // a single read, so this only works if each probe is one frame).
    let first = hb.latency();
    t(async {
        while hb.latency() == first {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!ours.is_closed());
}

#[tokio::test]
async fn our_goaway_ends_their_session() {
    let (ours, theirs) = connect(Role::Server);
    let (mut mx_open, mut mx_accept) = theirs.split();
    let _a = t(mx_open.open()).await.unwrap();
    ours.go_away(ErrorCode::NoError, "shutting down");
    assert!(t(mx_accept.accept()).await.is_none());
}

#[tokio::test]
async fn their_goaway_ends_our_session() {
    let (ours, theirs) = connect(Role::Server);
    let (mut mx_open, _mx_accept) = theirs.split();
    // muxado encodes Length = len(message) (not 8 + len); either way the session must end.
    t(mx_open.close(muxado::Error::None, "going away now, bye".into()))
        .await
        .unwrap();
    let reason = t(ours.closed()).await;
    assert!(
        matches!(
            reason,
            Error::RemoteGoneAway { .. } | Error::Protocol(_) | Error::PeerEof
        ),
        "{reason}"
    );
}

#[tokio::test]
async fn their_eof_ends_our_session() {
    let (ours, theirs) = connect(Role::Client);
    drop(theirs);
    assert!(matches!(t(ours.closed()).await, Error::PeerEof));
}
