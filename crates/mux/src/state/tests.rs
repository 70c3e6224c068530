//! The state machine driven directly, no IO: frames in, frames out.

use super::*;
use crate::driver::WriteBuf;
use crate::frame::Frame;
use bytes::BytesMut;

fn state(role: Role) -> State {
    let cfg = match role {
        Role::Client => Config::client(),
        Role::Server => Config::server(),
    };
    State::new(cfg.normalized())
}

fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// Everything the state wants to write, decoded.
fn drain(st: &mut State) -> Vec<Frame> {
    let mut w = WriteBuf::new_for_test();
    let mut wakes = Vec::new();
    st.take_output(&mut w, usize::MAX, &mut wakes);
    let mut bytes = BytesMut::from(&w.take_bytes()[..]);
    let mut out = Vec::new();
    while let Some(f) = Frame::decode(&mut bytes, crate::MAX_FRAME_LEN).unwrap() {
        out.push(f);
    }
    assert!(bytes.is_empty());
    out
}

fn data(id: u32, flags: Flags, p: &'static [u8]) -> Frame {
    Frame::Data {
        stream_id: id,
        flags,
        payload: Bytes::from_static(p),
    }
}

#[test]
fn remote_ids_accept_reordering_and_reject_reuse() {
    let mut ids = RemoteIds::new();
    assert!(ids.claim(3));
    assert!(ids.claim(7));
    assert!(ids.claim(5), "out of order but never seen");
    assert!(!ids.claim(5), "reused");
    assert!(!ids.claim(7), "reused");
    assert!(ids.claim(9));
    let far = 9 + 2 * REMOTE_ID_REORDER_WINDOW + 2;
    assert!(ids.claim(far));
    assert!(!ids.claim(11), "too old to tell");
    assert!(ids.claim(far - 2));
}

#[test]
fn local_ids_follow_role_parity() {
    let mut c = state(Role::Client);
    assert_eq!(c.open_local().unwrap(), 3);
    assert_eq!(c.open_local().unwrap(), 5);
    let mut s = state(Role::Server);
    assert_eq!(s.open_local().unwrap(), 2);
    assert_eq!(s.open_local().unwrap(), 4);
}

#[test]
fn syns_leave_in_increasing_id_order() {
    let mut st = state(Role::Server);
    let a = st.open_local().unwrap();
    let b = st.open_local().unwrap();
    let c = st.open_local().unwrap();
    // The newest stream writes first.
    assert!(st.poll_write(c, &mut cx(), b"x").is_ready());
    let out = drain(&mut st);
    assert_eq!(
        out,
        vec![
            data(a, Flags::SYN, b""),
            data(b, Flags::SYN, b""),
            data(c, Flags::SYN, b"x"),
        ]
    );
    // Later frames carry no SYN.
    assert!(st.poll_write(a, &mut cx(), b"y").is_ready());
    assert_eq!(drain(&mut st), vec![data(a, Flags::NONE, b"y")]);
}

#[test]
fn stream_dropped_before_writing_sends_nothing() {
    let mut st = state(Role::Client);
    let a = st.open_local().unwrap();
    st.release(a);
    assert!(drain(&mut st).is_empty());
    assert_eq!(st.stream_count(), 0);
    assert!(st.syn_order.is_empty());
}

#[test]
fn drop_without_fin_resets() {
    let mut st = state(Role::Server);
    let a = st.open_local().unwrap();
    assert!(st.poll_write(a, &mut cx(), b"abc").is_ready());
    assert_eq!(drain(&mut st), vec![data(a, Flags::SYN, b"abc")]);
    assert!(st.poll_write(a, &mut cx(), b"def").is_ready());
    st.release(a);
    // Unsent data is dropped, the RST goes out, the state is freed.
    assert_eq!(
        drain(&mut st),
        vec![Frame::Rst {
            stream_id: a,
            code: ErrorCode::StreamCancelled
        }]
    );
    assert_eq!(st.stream_count(), 0);
    assert_eq!(st.queued_bytes, 0);
}

#[test]
fn drop_before_anything_was_sent_is_silent() {
    let mut st = state(Role::Server);
    let a = st.open_local().unwrap();
    assert!(st.poll_write(a, &mut cx(), b"abc").is_ready());
    st.release(a);
    assert!(drain(&mut st).is_empty());
    assert_eq!(st.stream_count(), 0);
    assert_eq!(st.queued_bytes, 0);
}

#[test]
fn drop_after_fin_is_clean() {
    let mut st = state(Role::Server);
    let a = st.open_local().unwrap();
    assert!(st.poll_write(a, &mut cx(), b"abc").is_ready());
    st.shutdown(a).unwrap();
    st.release(a);
    assert_eq!(
        drain(&mut st),
        vec![data(a, Flags::SYN | Flags::FIN, b"abc")]
    );
    assert_eq!(st.stream_count(), 0);
}

#[test]
fn writes_stop_at_the_window_and_resume_on_wndinc() {
    let mut cfg = Config::server();
    cfg.window = 10;
    let mut st = State::new(cfg.normalized());
    let a = st.open_local().unwrap();
    assert!(matches!(
        st.poll_write(a, &mut cx(), &[0; 25]),
        Poll::Ready(Ok(10))
    ));
    assert!(st.poll_write(a, &mut cx(), &[0; 15]).is_pending());
    let mut wakes = Vec::new();
    st.on_frame(
        Frame::WndInc {
            stream_id: a,
            increment: 4,
        },
        &mut wakes,
    )
    .unwrap();
    assert!(matches!(
        st.poll_write(a, &mut cx(), &[0; 15]),
        Poll::Ready(Ok(4))
    ));
}

#[test]
fn remote_syn_with_our_parity_is_fatal() {
    let mut st = state(Role::Server);
    let err = st
        .on_frame(data(2, Flags::SYN, b""), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err.reason, CloseReason::Protocol(_)));
    assert_eq!(err.goaway.unwrap().0, ErrorCode::ProtocolError);
}

#[test]
fn duplicate_syn_is_fatal() {
    let mut st = state(Role::Server);
    st.on_frame(data(3, Flags::SYN, b""), &mut Vec::new())
        .unwrap();
    assert!(
        st.on_frame(data(3, Flags::SYN, b""), &mut Vec::new())
            .is_err()
    );
}

#[test]
fn data_for_unknown_stream_gets_one_rst() {
    let mut st = state(Role::Server);
    let mut wakes = Vec::new();
    st.on_frame(data(9, Flags::NONE, b"zz"), &mut wakes)
        .unwrap();
    st.on_frame(data(9, Flags::NONE, b"zz"), &mut wakes)
        .unwrap();
    // Empty frames, WNDINC and RST for unknown streams are ignored.
    st.on_frame(data(11, Flags::FIN, b""), &mut wakes).unwrap();
    st.on_frame(
        Frame::WndInc {
            stream_id: 13,
            increment: 5,
        },
        &mut wakes,
    )
    .unwrap();
    st.on_frame(
        Frame::Rst {
            stream_id: 15,
            code: ErrorCode::StreamClosed,
        },
        &mut wakes,
    )
    .unwrap();
    assert_eq!(
        drain(&mut st),
        vec![Frame::Rst {
            stream_id: 9,
            code: ErrorCode::StreamClosed
        }]
    );
}

#[test]
fn reads_grant_window_back() {
    let mut st = state(Role::Server);
    let mut wakes = Vec::new();
    st.on_frame(data(3, Flags::SYN, b"0123456789"), &mut wakes)
        .unwrap();
    let Poll::Ready(Ok((id, None))) = st.poll_accept(&mut cx(), false) else {
        panic!("accept");
    };
    let mut buf = [0u8; 16];
    let mut rb = ReadBuf::new(&mut buf);
    assert!(st.poll_read(id, &mut cx(), &mut rb).is_ready());
    assert_eq!(rb.filled(), b"0123456789");
    // Drained but under a quarter window owed: batched, the peer still has ample credit.
    assert!(drain(&mut st).is_empty());
    // A quarter window read in total: granted in one WNDINC.
    let quarter = (crate::DEFAULT_WINDOW / 4) as usize;
    let chunk = Frame::Data {
        stream_id: 3,
        flags: Flags::NONE,
        payload: Bytes::from(vec![7u8; quarter - 10]),
    };
    st.on_frame(chunk, &mut wakes).unwrap();
    let mut big = vec![0u8; quarter];
    let mut rb = ReadBuf::new(&mut big);
    assert!(st.poll_read(id, &mut cx(), &mut rb).is_ready());
    assert_eq!(rb.filled().len(), quarter - 10);
    assert_eq!(
        drain(&mut st),
        vec![Frame::WndInc {
            stream_id: 3,
            increment: quarter as u32
        }]
    );
}

#[test]
fn typed_accept_skips_streams_without_their_type() {
    let mut st = state(Role::Server);
    let mut wakes = Vec::new();
    st.on_frame(data(3, Flags::SYN, b"\0\0"), &mut wakes)
        .unwrap();
    st.on_frame(data(5, Flags::SYN, b"\0\0\0\x07{}"), &mut wakes)
        .unwrap();
    let Poll::Ready(Ok((5, Some(7)))) = st.poll_accept(&mut cx(), true) else {
        panic!("stream 5 first");
    };
    assert!(st.poll_accept(&mut cx(), true).is_pending());
    st.on_frame(data(3, Flags::NONE, b"\0\x01"), &mut wakes)
        .unwrap();
    let Poll::Ready(Ok((3, Some(1)))) = st.poll_accept(&mut cx(), true) else {
        panic!("stream 3 once its type arrived");
    };
}
