//! Fuzzes the muxado frame decoder with arbitrary bytes and body limits.
//!
//! Invariants checked: decoding never panics; "need more bytes" and errors leave the
//! buffer untouched; every decoded frame consumed exactly its header-announced size and
//! re-encodes to bytes that decode to the same frame; feeding the same input one byte at a
//! time yields the same frames and the same final outcome.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_mux::frame::{Frame, FrameError, FrameHeader, HEADER_LEN, MAX_FRAME_LEN};

/// Decodes everything decodable from `input` in one go.
fn decode_all(input: &[u8], max_body: usize) -> (Vec<Frame>, Option<FrameError>) {
    let mut buf = BytesMut::from(input);
    let mut frames = Vec::new();
    loop {
        let before = buf.len();
        let header = FrameHeader::peek(&buf);
        match Frame::decode(&mut buf, max_body) {
            Ok(Some(frame)) => {
                let h = header.expect("a decoded frame had a header");
                assert_eq!(before - buf.len(), HEADER_LEN + h.length as usize);
                assert!(h.length as usize <= max_body.min(MAX_FRAME_LEN));
                let mut re = BytesMut::new();
                frame.encode(&mut re);
                let again = Frame::decode(&mut re, MAX_FRAME_LEN)
                    .expect("re-encoded frame is valid")
                    .expect("re-encoded frame is complete");
                assert_eq!(again, frame);
                assert!(re.is_empty());
                frames.push(frame);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before);
                return (frames, None);
            }
            Err(e) => {
                assert_eq!(buf.len(), before);
                return (frames, Some(e));
            }
        }
    }
}

/// Same input, delivered one byte at a time.
fn decode_trickle(input: &[u8], max_body: usize) -> (Vec<Frame>, Option<FrameError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &b in input {
        buf.extend_from_slice(&[b]);
        loop {
            match Frame::decode(&mut buf, max_body) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    // First two bytes pick the body limit (small limits exercise the size check).
    let (limit, input) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => (0x40000, data),
    };
    let whole = decode_all(input, limit);
    if input.len() <= 4096 {
        assert_eq!(decode_trickle(input, limit), whole);
    }
});
