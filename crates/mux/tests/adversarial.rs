//! A hand-driven peer sends exactly the frames it wants: every limit and protocol rule is
//! hit on purpose here.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use bytes::Bytes;
use common::{RawPeer, t};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_mux::frame::{Flags, Frame, FrameHeader};
use warren_mux::heartbeat::{self, HEARTBEAT_TYPE, HeartbeatConfig};
use warren_mux::{Config, DEFAULT_WINDOW, Error, ErrorCode, MAX_WRITE_FRAME};

fn data(id: u32, flags: Flags, payload: impl Into<Bytes>) -> Frame {
    Frame::Data {
        stream_id: id,
        flags,
        payload: payload.into(),
    }
}

fn syn(id: u32, payload: impl Into<Bytes>) -> Frame {
    data(id, Flags::SYN, payload)
}

/// Expects GOAWAY with `code` (after any WNDINC/RST), then EOF.
async fn expect_goaway_then_eof(peer: &mut RawPeer, code: ErrorCode) {
    let frames = peer.recv_until_eof().await;
    let last = frames.last().expect("a GOAWAY before EOF");
    match last {
        Frame::GoAway { code: c, .. } => assert_eq!(*c, code, "{frames:?}"),
        f => panic!("expected GOAWAY, got {f:?}"),
    }
}

#[tokio::test]
async fn oversized_frame_rejected_from_its_header() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    // Header only: announces a 16 MiB body that never comes.
    peer.send_raw(&[0xFF, 0xFF, 0xFF, 0x12, 0, 0, 0, 3]).await;
    expect_goaway_then_eof(&mut peer, ErrorCode::FrameSizeError).await;
    assert!(matches!(t(s.closed()).await, Error::Protocol(_)));

    // One byte over max_frame_body (= window by default), again header only.
    let (s, mut peer) = RawPeer::connect(Config::server());
    let mut h = bytes::BytesMut::new();
    FrameHeader {
        length: DEFAULT_WINDOW + 1,
        ty: 1,
        flags: Flags::SYN,
        stream_id: 3,
    }
    .encode(&mut h);
    peer.send_raw(&h).await;
    expect_goaway_then_eof(&mut peer, ErrorCode::FrameSizeError).await;
    assert!(s.is_closed());
}

#[tokio::test]
async fn full_window_frame_is_accepted() {
    // The Rust SDK sends DATA frames as large as the whole window.
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(3, vec![7u8; DEFAULT_WINDOW as usize])).await;
    let mut st = t(s.accept()).await.unwrap();
    let mut got = vec![0u8; DEFAULT_WINDOW as usize];
    t(st.read_exact(&mut got)).await.unwrap();
    assert!(got.iter().all(|&b| b == 7));
    // Reading it all granted the window back.
    let mut granted = 0;
    while granted < DEFAULT_WINDOW {
        match peer.recv().await.unwrap() {
            Frame::WndInc {
                stream_id: 3,
                increment,
            } => granted += increment,
            f => panic!("{f:?}"),
        }
    }
    assert_eq!(granted, DEFAULT_WINDOW);
}

#[tokio::test]
async fn window_overrun_gets_flow_control_rst_and_session_survives() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(3, vec![1u8; 100_000])).await;
    peer.send(&data(3, Flags::NONE, vec![1u8; 100_000])).await;
    peer.send(&data(
        3,
        Flags::NONE,
        vec![1u8; DEFAULT_WINDOW as usize - 200_000],
    ))
    .await;
    // The window is now exactly used up; one more byte is a violation.
    peer.send(&data(3, Flags::NONE, vec![1u8; 1])).await;
    assert_eq!(
        peer.recv().await.unwrap(),
        Frame::Rst {
            stream_id: 3,
            code: ErrorCode::FlowControlError
        }
    );
    // Frames racing our RST are dropped quietly.
    peer.send(&data(3, Flags::NONE, vec![1u8; 10])).await;
    // The session keeps working.
    peer.send(&syn(5, &b"ok"[..])).await;
    let mut st = t(s.accept()).await.unwrap();
    assert_eq!(st.id(), 5, "the reset stream is not handed out");
    let mut two = [0u8; 2];
    t(st.read_exact(&mut two)).await.unwrap();
    assert_eq!(&two, b"ok");
    assert!(!s.is_closed());
    // The next frame from us is stream 5's reply: no RST for the racing frame came first.
    t(st.write_all(b"x")).await.unwrap();
    match peer.recv().await.unwrap() {
        Frame::Data {
            stream_id: 5,
            payload,
            ..
        } => assert_eq!(&payload[..], b"x"),
        other => panic!("expected stream 5's DATA, got {other:?}"),
    }
}

#[tokio::test]
async fn overrun_on_an_accepted_stream_fails_its_reads() {
    let mut cfg = Config::server();
    cfg.window = 16;
    let (s, mut peer) = RawPeer::connect(cfg);
    peer.send(&syn(3, vec![0u8; 16])).await;
    let mut st = t(s.accept()).await.unwrap();
    peer.send(&data(3, Flags::NONE, vec![0u8; 1])).await;
    assert!(matches!(
        peer.recv().await.unwrap(),
        Frame::Rst {
            code: ErrorCode::FlowControlError,
            ..
        }
    ));
    let err = t(st.read(&mut [0u8; 64])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn too_many_remote_streams_are_refused_and_session_survives() {
    let mut cfg = Config::server();
    cfg.max_streams = 4;
    let (s, mut peer) = RawPeer::connect(cfg);
    for id in [3, 5, 7, 9] {
        peer.send(&syn(id, &b"x"[..])).await;
    }
    peer.send(&syn(11, &b"x"[..])).await;
    assert_eq!(
        peer.recv().await.unwrap(),
        Frame::Rst {
            stream_id: 11,
            code: ErrorCode::StreamRefused
        }
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(t(s.accept()).await.unwrap());
    }
    assert_eq!(s.stream_count(), 4);
    // Finish one cleanly on both sides: room for one more.
    let mut first = held.remove(0);
    first.shutdown().await.unwrap();
    peer.send(&data(3, Flags::FIN, Bytes::new())).await;
    let mut rest = Vec::new();
    t(first.read_to_end(&mut rest)).await.unwrap();
    drop(first);
    peer.send(&syn(13, &b"y"[..])).await;
    let st = t(s.accept()).await.unwrap();
    assert_eq!(st.id(), 13);
    assert!(!s.is_closed());
}

#[tokio::test]
async fn accept_backlog_overflow_gets_accept_queue_full() {
    let mut cfg = Config::server();
    cfg.accept_backlog = 2;
    let (s, mut peer) = RawPeer::connect(cfg);
    peer.send(&syn(3, Bytes::new())).await;
    peer.send(&syn(5, Bytes::new())).await;
    peer.send(&syn(7, Bytes::new())).await;
    assert_eq!(
        peer.recv().await.unwrap(),
        Frame::Rst {
            stream_id: 7,
            code: ErrorCode::AcceptQueueFull
        }
    );
    assert_eq!(t(s.accept()).await.unwrap().id(), 3);
    peer.send(&syn(9, Bytes::new())).await;
    assert_eq!(t(s.accept()).await.unwrap().id(), 5);
    assert_eq!(t(s.accept()).await.unwrap().id(), 9);
}

#[tokio::test]
async fn received_goaway_is_terminal() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(3, &b"hello"[..])).await;
    let mut st = t(s.accept()).await.unwrap();
    peer.send(&Frame::GoAway {
        last_stream_id: 0,
        code: ErrorCode::SessionClosed,
        debug: Bytes::from_static(b"bye"),
    })
    .await;
    match t(s.closed()).await {
        Error::RemoteGoneAway { code, debug } => {
            assert_eq!(code, ErrorCode::SessionClosed);
            assert_eq!(debug, "bye");
        }
        e => panic!("{e}"),
    }
    // We close the connection without answering.
    assert_eq!(peer.recv_until_eof().await, vec![]);
    // Buffered bytes are still readable, then the stream fails.
    let mut five = [0u8; 5];
    t(st.read_exact(&mut five)).await.unwrap();
    assert_eq!(
        t(st.read(&mut five)).await.unwrap_err().kind(),
        ErrorKind::ConnectionAborted
    );
}

#[tokio::test]
async fn goaway_with_the_rust_sdk_short_length_still_ends_the_session() {
    // ngrok-rust writes Length = len(message) but 8 + len bytes; "ab" -> Length 2 (< 8).
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send_raw(&[
        0, 0, 2, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'a', b'b',
    ])
    .await;
    t(s.closed()).await;
    peer.recv_until_eof().await;
}

#[tokio::test]
async fn goaway_debug_is_bounded() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&Frame::GoAway {
        last_stream_id: 0,
        code: ErrorCode::NoError,
        debug: Bytes::from(vec![b'z'; 100_000]),
    })
    .await;
    match t(s.closed()).await {
        Error::RemoteGoneAway { debug, .. } => {
            assert_eq!(debug.len(), warren_mux::MAX_GOAWAY_DEBUG)
        }
        e => panic!("{e}"),
    }
}

#[tokio::test]
async fn our_goaway_names_the_last_remote_stream() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(3, Bytes::new())).await;
    peer.send(&syn(9, Bytes::new())).await;
    let _a = t(s.accept()).await.unwrap();
    let _b = t(s.accept()).await.unwrap();
    s.go_away(ErrorCode::NoError, "restart");
    let frames = peer.recv_until_eof().await;
    assert_eq!(
        frames,
        vec![Frame::GoAway {
            last_stream_id: 9,
            code: ErrorCode::NoError,
            debug: Bytes::from_static(b"restart"),
        }]
    );
}

#[tokio::test]
async fn goaway_flush_is_bounded_when_the_peer_never_reads() {
    // The peer never reads; our GOAWAY cannot be written; we still close in bounded time.
    let (s, mut peer) = RawPeer::connect_with_buffer(Config::server(), 64);
    peer.send(&syn(3, Bytes::new())).await;
    let mut st = t(s.accept()).await.unwrap();
    // Fill the pipe toward the peer.
    t(st.write_all(&[0u8; 4096])).await.unwrap();
    s.go_away(ErrorCode::NoError, "x");
    // The peer's write side sees the transport closed once the flush deadline passes.
    t(async {
        loop {
            if peer.io.write_all(&[0u8; 8]).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn garbage_bytes_end_the_session_with_goaway() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send_raw(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        .await;
    let frames = peer.recv_until_eof().await;
    assert!(
        matches!(frames.last(), Some(Frame::GoAway { .. })),
        "{frames:?}"
    );
    assert!(matches!(t(s.closed()).await, Error::Protocol(_)));
}

#[tokio::test]
async fn unknown_frame_type_ends_the_session_with_protocol_error() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(3, &b"hi"[..])).await;
    let mut st = t(s.accept()).await.unwrap();
    peer.send_raw(&[0, 0, 0, 0x50, 0, 0, 0, 3]).await; // type 5
    expect_goaway_then_eof(&mut peer, ErrorCode::ProtocolError).await;
    assert!(matches!(t(s.closed()).await, Error::Protocol(_)));
    let mut buf = Vec::new();
    assert!(t(st.read_to_end(&mut buf)).await.is_err());
}

#[tokio::test]
async fn syn_with_our_parity_is_a_protocol_error() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(2, Bytes::new())).await;
    expect_goaway_then_eof(&mut peer, ErrorCode::ProtocolError).await;
    assert!(s.is_closed());
}

#[tokio::test]
async fn reused_stream_id_is_a_protocol_error() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(3, Bytes::new())).await;
    let st = t(s.accept()).await.unwrap();
    st.reset(ErrorCode::StreamCancelled);
    assert!(matches!(
        peer.recv().await.unwrap(),
        Frame::Rst { stream_id: 3, .. }
    ));
    peer.send(&syn(3, Bytes::new())).await;
    expect_goaway_then_eof(&mut peer, ErrorCode::ProtocolError).await;
    assert!(matches!(t(s.closed()).await, Error::Protocol(_)));
}

#[tokio::test]
async fn out_of_order_syns_are_accepted() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&syn(7, Bytes::new())).await;
    peer.send(&syn(3, Bytes::new())).await;
    peer.send(&syn(5, Bytes::new())).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(t(s.accept()).await.unwrap().id());
    }
    assert_eq!(ids, vec![7, 3, 5]);
    assert!(!s.is_closed());
}

#[tokio::test]
async fn data_for_unknown_streams_gets_stream_closed_once() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    peer.send(&data(41, Flags::NONE, &b"?"[..])).await;
    peer.send(&data(41, Flags::NONE, &b"?"[..])).await;
    peer.send(&Frame::WndInc {
        stream_id: 43,
        increment: 9,
    })
    .await;
    peer.send(&syn(3, Bytes::new())).await;
    let _st = t(s.accept()).await.unwrap();
    assert_eq!(
        peer.recv().await.unwrap(),
        Frame::Rst {
            stream_id: 41,
            code: ErrorCode::StreamClosed
        }
    );
    s.go_away(ErrorCode::NoError, "");
    // Nothing but the GOAWAY follows.
    assert!(matches!(
        peer.recv_until_eof().await.as_slice(),
        [Frame::GoAway { .. }]
    ));
}

#[tokio::test]
async fn peer_eof_ends_the_session() {
    let (s, peer) = RawPeer::connect(Config::server());
    drop(peer);
    assert!(matches!(t(s.closed()).await, Error::PeerEof));
    assert!(matches!(t(s.accept()).await, Err(Error::PeerEof)));
    assert!(matches!(t(s.open()).await, Err(Error::PeerEof)));
}

#[tokio::test]
async fn control_frame_flood_is_backpressured() {
    // The peer floods frames that each need an RST answer and never reads the answers:
    // we stop reading instead of queueing RSTs without bound.
    let (s, mut peer) = RawPeer::connect_with_buffer(Config::server(), 4096);
    let mut flood = bytes::BytesMut::new();
    for i in 0..20_000u32 {
        data(1001 + 2 * i, Flags::NONE, &b"!"[..]).encode(&mut flood);
    }
    let mut pos = 0;
    let stuck = tokio::time::timeout(Duration::from_millis(300), async {
        while pos < flood.len() {
            pos += peer.io.write(&flood[pos..]).await.unwrap();
        }
    })
    .await;
    assert!(
        stuck.is_err(),
        "the flood should stall while nobody reads our RSTs"
    );
    // Once the peer reads, everything drains and the session is still alive.
    let (mut rd, mut wr) = tokio::io::split(peer.io);
    let reader = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = rd.read_to_end(&mut sink).await;
    });
    t(wr.write_all(&flood[pos..])).await.unwrap();
    let mut f = bytes::BytesMut::new();
    syn(3, Bytes::new()).encode(&mut f);
    t(wr.write_all(&f)).await.unwrap();
    assert_eq!(t(s.accept()).await.unwrap().id(), 3);
    s.close();
    t(reader).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn heartbeat_probes_are_single_frames() {
    let (s, mut peer) = RawPeer::connect(Config::server());
    let hb = heartbeat::start(
        &s,
        HeartbeatConfig {
            interval: Duration::from_secs(10),
            tolerance: Duration::from_secs(15),
        },
    );
    // First frame: SYN with type and first probe together, on the server's first id.
    let Frame::Data {
        stream_id: 2,
        flags,
        payload,
    } = peer.recv().await.unwrap()
    else {
        panic!("expected the heartbeat SYN");
    };
    assert!(flags.is_syn());
    assert_eq!(payload.len(), 8);
    assert_eq!(&payload[..4], &HEARTBEAT_TYPE.to_be_bytes());
    peer.send(&data(2, Flags::NONE, payload.slice(4..))).await;
    for _ in 0..3 {
        match peer.recv_skip_wndinc().await.unwrap() {
            Frame::Data {
                stream_id: 2,
                flags,
                payload,
            } => {
                assert_eq!(flags, Flags::NONE);
                assert_eq!(payload.len(), 4, "each probe is its own 4-byte frame");
                peer.send(&data(2, Flags::NONE, payload)).await;
            }
            f => panic!("{f:?}"),
        }
    }
    assert!(hb.latency().is_some());
    assert!(!s.is_closed());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever increments the peer grants and whenever, the DATA we send on a stream never
    /// exceeds the initial window plus the WNDINCs received, and no frame exceeds
    /// MAX_WRITE_FRAME.
    #[test]
    fn sent_data_never_exceeds_window_plus_increments(
        window in 1u32..70_000,
        grants in proptest::collection::vec(1u32..50_000, 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let mut cfg = Config::server();
            cfg.window = window;
            let (s, mut peer) = RawPeer::connect(cfg);
            let total = 300_000usize;
            let mut st = t(s.open()).await.unwrap();
            let writer = tokio::spawn(async move {
                st.write_all(&vec![5u8; total]).await.unwrap();
                st.shutdown().await.unwrap();
                st
            });
            let mut sent: u64 = 0;
            let mut allowed: u64 = window as u64;
            let mut grants = grants.into_iter().cycle();
            loop {
                match peer.recv().await.unwrap() {
                    Frame::Data { stream_id, flags, payload } => {
                        assert_eq!(stream_id, 2);
                        assert!(payload.len() <= MAX_WRITE_FRAME);
                        sent += payload.len() as u64;
                        assert!(sent <= allowed, "sent {sent} > allowed {allowed}");
                        if flags.is_fin() {
                            break;
                        }
                        if sent == allowed {
                            // Stalled at the window: grant some more.
                            let inc = grants.next().unwrap();
                            allowed += inc as u64;
                            peer.send(&Frame::WndInc { stream_id: 2, increment: inc }).await;
                        }
                    }
                    f => panic!("{f:?}"),
                }
            }
            assert_eq!(sent, total as u64);
            drop(t(writer).await.unwrap());
        });
    }
}
