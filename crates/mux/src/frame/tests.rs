use super::*;
use proptest::prelude::*;

const MAX: usize = 0x40000;

fn encode(f: &Frame) -> BytesMut {
    let mut b = BytesMut::new();
    f.encode(&mut b);
    b
}

#[test]
fn client_syn_frame_matches_the_wire() {
    // §2.1: a client SYN frame's byte 3 is 0x12 (type DATA, flag SYN).
    let f = Frame::Data {
        stream_id: 3,
        flags: Flags::SYN,
        payload: Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF]),
    };
    assert_eq!(
        &encode(&f)[..],
        &[0, 0, 4, 0x12, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF]
    );
}

#[test]
fn control_frames_match_the_wire() {
    let rst = Frame::Rst {
        stream_id: 5,
        code: ErrorCode::FlowControlError,
    };
    assert_eq!(&encode(&rst)[..], &[0, 0, 4, 0x00, 0, 0, 0, 5, 0, 0, 0, 3]);
    let inc = Frame::WndInc {
        stream_id: 2,
        increment: 0x6f,
    };
    assert_eq!(
        &encode(&inc)[..],
        &[0, 0, 4, 0x20, 0, 0, 0, 2, 0, 0, 0, 0x6f]
    );
    let ga = Frame::GoAway {
        last_stream_id: 7,
        code: ErrorCode::ProtocolError,
        debug: Bytes::from_static(b"hi"),
    };
    // Length = 8 + len(debug) (the correct form, unlike the Rust SDK's encoder).
    assert_eq!(
        &encode(&ga)[..],
        &[
            0, 0, 10, 0x30, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, b'h', b'i'
        ]
    );
}

#[test]
fn fin_and_syn_flags() {
    let f = Frame::Data {
        stream_id: 2,
        flags: Flags::SYN | Flags::FIN,
        payload: Bytes::new(),
    };
    let b = encode(&f);
    assert_eq!(b[3], 0x13);
    let h = FrameHeader::peek(&b).unwrap();
    assert!(h.flags.is_syn() && h.flags.is_fin());
}

#[test]
fn reserved_bit_is_masked() {
    let raw = [0, 0, 0, 0x10, 0x80, 0, 0, 9];
    let mut b = BytesMut::from(&raw[..]);
    let f = Frame::decode(&mut b, MAX).unwrap().unwrap();
    assert_eq!(f.stream_id(), 9);
    let raw = [0, 0, 4, 0x20, 0, 0, 0, 9, 0xFF, 0xFF, 0xFF, 0xFF];
    let mut b = BytesMut::from(&raw[..]);
    assert_eq!(
        Frame::decode(&mut b, MAX).unwrap().unwrap(),
        Frame::WndInc {
            stream_id: 9,
            increment: 0x7FFF_FFFF
        }
    );
}

#[test]
fn oversized_length_rejected_from_header_alone() {
    // Only the 8 header bytes are present; the announced 16 MiB body is never awaited.
    let mut b = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0x10, 0, 0, 0, 3][..]);
    assert_eq!(
        Frame::decode(&mut b, MAX),
        Err(FrameError::TooLarge {
            len: 0xFF_FFFF,
            max: MAX
        })
    );
    // One byte over the limit.
    let len = (MAX + 1) as u32;
    let mut b = BytesMut::new();
    FrameHeader {
        length: len,
        ty: 1,
        flags: Flags::NONE,
        stream_id: 3,
    }
    .encode(&mut b);
    assert!(matches!(
        Frame::check(&b, MAX),
        Err(FrameError::TooLarge { .. })
    ));
    assert_eq!(
        FrameError::TooLarge { len, max: MAX }.error_code(),
        ErrorCode::FrameSizeError
    );
    // Exactly at the limit is fine (and needs the body).
    let mut b = BytesMut::new();
    FrameHeader {
        length: MAX as u32,
        ty: 1,
        flags: Flags::NONE,
        stream_id: 3,
    }
    .encode(&mut b);
    assert_eq!(Frame::check(&b, MAX), Ok(None));
}

#[test]
fn unknown_type_rejected() {
    for ty in 4u8..16 {
        let b = [0, 0, 0, ty << 4, 0, 0, 0, 1];
        assert_eq!(Frame::check(&b, MAX), Err(FrameError::UnknownType(ty)));
        assert_eq!(
            FrameError::UnknownType(ty).error_code(),
            ErrorCode::ProtocolError
        );
    }
}

#[test]
fn length_rules() {
    for (ty, len, ok) in [
        (0u8, 4u8, true),
        (0, 3, false),
        (0, 5, false),
        (2, 4, true),
        (2, 0, false),
        (2, 8, false),
        (3, 8, true),
        (3, 7, false),
        (3, 0, false),
        (3, 20, true),
    ] {
        let mut raw = vec![0, 0, len, ty << 4, 0, 0, 0, if ty == 3 { 0 } else { 1 }];
        raw.resize(8 + len as usize, 0);
        let res = Frame::check(&raw, MAX);
        assert_eq!(res.is_ok(), ok, "type {ty} len {len}: {res:?}");
        if !ok {
            assert!(matches!(res, Err(FrameError::BadLength { .. })));
        }
    }
}

#[test]
fn stream_id_rules() {
    // DATA on stream 0.
    assert!(matches!(
        Frame::check(&[0, 0, 0, 0x10, 0, 0, 0, 0], MAX),
        Err(FrameError::BadStreamId {
            ty: FrameType::Data,
            id: 0
        })
    ));
    // GOAWAY on a stream.
    let mut raw = vec![0, 0, 8, 0x30, 0, 0, 0, 1];
    raw.resize(16, 0);
    assert!(matches!(
        Frame::check(&raw, MAX),
        Err(FrameError::BadStreamId {
            ty: FrameType::GoAway,
            id: 1
        })
    ));
}

#[test]
fn goaway_debug_bounded_by_limit() {
    let mut raw = vec![0, 0x01, 0x00, 0x30, 0, 0, 0, 0]; // length 256
    raw.resize(8 + 256, b'x');
    assert!(matches!(
        Frame::check(&raw, 255),
        Err(FrameError::TooLarge { .. })
    ));
    let mut b = BytesMut::from(&raw[..]);
    match Frame::decode(&mut b, 256).unwrap().unwrap() {
        Frame::GoAway { debug, .. } => assert_eq!(debug.len(), 248),
        f => panic!("{f:?}"),
    }
}

#[test]
fn partial_input_leaves_buffer_untouched() {
    let f = Frame::Data {
        stream_id: 3,
        flags: Flags::NONE,
        payload: Bytes::from_static(b"hello"),
    };
    let full = encode(&f);
    for cut in 0..full.len() {
        let mut b = BytesMut::from(&full[..cut]);
        assert_eq!(Frame::decode(&mut b, MAX), Ok(None));
        assert_eq!(b.len(), cut);
    }
}

#[test]
fn error_codes_roundtrip_and_unknown_kept() {
    for v in 0..=0x0F {
        let c = ErrorCode::from_u32(v);
        assert!(!matches!(c, ErrorCode::Unknown(_)));
        assert_eq!(c.as_u32(), v);
    }
    assert_eq!(ErrorCode::from_u32(0x1234), ErrorCode::Unknown(0x1234));
    assert_eq!(u32::from(ErrorCode::Unknown(0x1234)), 0x1234);
}

fn arb_code() -> impl Strategy<Value = ErrorCode> {
    any::<u32>().prop_map(ErrorCode::from_u32)
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let id = 1u32..=STREAM_ID_MASK;
    prop_oneof![
        (id.clone(), arb_code()).prop_map(|(stream_id, code)| Frame::Rst { stream_id, code }),
        (
            id.clone(),
            0u8..16,
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(stream_id, flags, p)| Frame::Data {
                stream_id,
                flags: Flags::from_bits(flags),
                payload: Bytes::from(p),
            }),
        (id, 0u32..=STREAM_ID_MASK).prop_map(|(stream_id, increment)| Frame::WndInc {
            stream_id,
            increment
        }),
        (
            0u32..=STREAM_ID_MASK,
            arb_code(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(last_stream_id, code, d)| Frame::GoAway {
                last_stream_id,
                code,
                debug: Bytes::from(d),
            }),
    ]
}

proptest! {
    #[test]
    fn roundtrip(f in arb_frame()) {
        let mut b = encode(&f);
        prop_assert_eq!(b.len(), f.encoded_len());
        let got = Frame::decode(&mut b, MAX).unwrap().unwrap();
        prop_assert_eq!(got, f);
        prop_assert!(b.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..1024) {
        let mut b = BytesMut::from(&bytes[..]);
        loop {
            let before = b.len();
            match Frame::decode(&mut b, max) {
                Ok(Some(f)) => {
                    // Consumed exactly one encoded frame, which re-encodes to a valid frame.
                    prop_assert_eq!(before - b.len(), HEADER_LEN + FrameHeader::peek(&bytes[bytes.len() - before..]).unwrap().length as usize);
                    let mut re = encode(&f);
                    prop_assert_eq!(Frame::decode(&mut re, MAX).unwrap().unwrap(), f);
                }
                Ok(None) => { prop_assert_eq!(b.len(), before); break; }
                Err(_) => { prop_assert_eq!(b.len(), before); break; }
            }
        }
    }

    #[test]
    fn incremental_decoding_matches_whole(frames in proptest::collection::vec(arb_frame(), 1..8),
                                          cuts in proptest::collection::vec(1usize..64, 1..64)) {
        let mut wire = BytesMut::new();
        for f in &frames { f.encode(&mut wire); }
        let wire = wire.freeze();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < wire.len() {
            let step = cuts[i % cuts.len()].min(wire.len() - pos);
            i += 1;
            buf.extend_from_slice(&wire[pos..pos + step]);
            pos += step;
            while let Some(f) = Frame::decode(&mut buf, MAX).unwrap() {
                got.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, frames);
    }
}
