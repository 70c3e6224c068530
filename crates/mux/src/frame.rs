//! The muxado frame codec (docs/agent-protocol.md §2.1, §2.2, §2.6).
//!
//! Owns the byte layout of the four frame types, the flags, the error codes and the
//! validation rules a frame must pass before its body is buffered. It is pure: no IO,
//! no clock, no session state. Decoding follows the `check`-then-`parse` shape:
//! [`Frame::check`] looks only at buffered bytes and says "need more", "complete" or
//! "invalid"; [`Frame::decode`] then splits the frame off the buffer without copying
//! the payload. A header announcing a body larger than the caller's limit is rejected
//! from its 8 bytes alone, before any of the body is read.
//!
//! It must not decide what a frame *means* for a session (unknown streams, windows,
//! GOAWAY handling); that is the session's job.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the fixed frame header, in bytes.
pub const HEADER_LEN: usize = 8;

/// Largest body length the 24-bit length field can express.
pub const MAX_FRAME_LEN: usize = 0xFF_FFFF;

/// Mask applied to stream ids (and window increments) on the wire: the top bit is reserved.
pub const STREAM_ID_MASK: u32 = 0x7FFF_FFFF;

/// Body length of RST and WNDINC frames.
pub const RST_WNDINC_LEN: usize = 4;

/// Smallest valid GOAWAY body: last stream id and error code.
pub const GOAWAY_MIN_LEN: usize = 8;

/// Frame type numbers (high nibble of header byte 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// Abort one stream.
    Rst = 0,
    /// Stream payload, carrying SYN (open) and FIN (half close) flags.
    Data = 1,
    /// Window increment for one stream.
    WndInc = 2,
    /// Session shutdown notice.
    GoAway = 3,
}

impl FrameType {
    /// Maps a type nibble to a known frame type.
    pub fn from_u8(ty: u8) -> Option<FrameType> {
        match ty {
            0 => Some(FrameType::Rst),
            1 => Some(FrameType::Data),
            2 => Some(FrameType::WndInc),
            3 => Some(FrameType::GoAway),
            _ => None,
        }
    }
}

/// The flag nibble of a frame header (low nibble of byte 3).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// Half close: the sender will send no more data on this stream.
    pub const FIN: Flags = Flags(0x1);
    /// Stream open: first frame of a new stream id.
    pub const SYN: Flags = Flags(0x2);

    /// Builds flags from a raw nibble (bits above the low nibble are dropped).
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits & 0x0F)
    }

    /// The raw nibble.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether FIN is set.
    pub const fn is_fin(self) -> bool {
        self.contains(Flags::FIN)
    }

    /// Whether SYN is set.
    pub const fn is_syn(self) -> bool {
        self.contains(Flags::SYN)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.is_syn() {
            parts.push("SYN");
        }
        if self.is_fin() {
            parts.push("FIN");
        }
        if self.0 & !0x3 != 0 {
            return write!(f, "Flags({:#x})", self.0);
        }
        write!(f, "Flags({})", parts.join("|"))
    }
}

/// Error codes carried by RST and GOAWAY (§2.6). Unknown values are kept, not rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0x00: graceful.
    NoError,
    /// 0x01: the peer broke the protocol.
    ProtocolError,
    /// 0x02: a local bug or resource failure.
    InternalError,
    /// 0x03: the peer sent more than the window allows.
    FlowControlError,
    /// 0x04: frame for a stream that is closed or unknown.
    StreamClosed,
    /// 0x05: the stream was refused before any processing.
    StreamRefused,
    /// 0x06: the stream is no longer wanted.
    StreamCancelled,
    /// 0x07: generic stream reset.
    StreamReset,
    /// 0x08: a frame was too large.
    FrameSizeError,
    /// 0x09: the accept backlog is full.
    AcceptQueueFull,
    /// 0x0A: the peer is doing too much.
    EnhanceYourCalm,
    /// 0x0B: the session is going away.
    RemoteGoneAway,
    /// 0x0C: no more streams can be opened.
    StreamsExhausted,
    /// 0x0D: a write timed out.
    WriteTimeout,
    /// 0x0E: the session is closed.
    SessionClosed,
    /// 0x0F: the peer's connection hit EOF.
    PeerEof,
    /// Any other value, kept verbatim.
    Unknown(u32),
}

impl ErrorCode {
    /// The wire value.
    pub const fn as_u32(self) -> u32 {
        match self {
            ErrorCode::NoError => 0x00,
            ErrorCode::ProtocolError => 0x01,
            ErrorCode::InternalError => 0x02,
            ErrorCode::FlowControlError => 0x03,
            ErrorCode::StreamClosed => 0x04,
            ErrorCode::StreamRefused => 0x05,
            ErrorCode::StreamCancelled => 0x06,
            ErrorCode::StreamReset => 0x07,
            ErrorCode::FrameSizeError => 0x08,
            ErrorCode::AcceptQueueFull => 0x09,
            ErrorCode::EnhanceYourCalm => 0x0A,
            ErrorCode::RemoteGoneAway => 0x0B,
            ErrorCode::StreamsExhausted => 0x0C,
            ErrorCode::WriteTimeout => 0x0D,
            ErrorCode::SessionClosed => 0x0E,
            ErrorCode::PeerEof => 0x0F,
            ErrorCode::Unknown(v) => v,
        }
    }

    /// Maps a wire value to a code; values without a name become [`ErrorCode::Unknown`].
    pub const fn from_u32(v: u32) -> ErrorCode {
        match v {
            0x00 => ErrorCode::NoError,
            0x01 => ErrorCode::ProtocolError,
            0x02 => ErrorCode::InternalError,
            0x03 => ErrorCode::FlowControlError,
            0x04 => ErrorCode::StreamClosed,
            0x05 => ErrorCode::StreamRefused,
            0x06 => ErrorCode::StreamCancelled,
            0x07 => ErrorCode::StreamReset,
            0x08 => ErrorCode::FrameSizeError,
            0x09 => ErrorCode::AcceptQueueFull,
            0x0A => ErrorCode::EnhanceYourCalm,
            0x0B => ErrorCode::RemoteGoneAway,
            0x0C => ErrorCode::StreamsExhausted,
            0x0D => ErrorCode::WriteTimeout,
            0x0E => ErrorCode::SessionClosed,
            0x0F => ErrorCode::PeerEof,
            v => ErrorCode::Unknown(v),
        }
    }
}

impl From<u32> for ErrorCode {
    fn from(v: u32) -> ErrorCode {
        ErrorCode::from_u32(v)
    }
}

impl From<ErrorCode> for u32 {
    fn from(c: ErrorCode) -> u32 {
        c.as_u32()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(v) => write!(f, "Unknown({v:#x})"),
            other => write!(f, "{other:?}({:#x})", other.as_u32()),
        }
    }
}

/// A raw 8-byte frame header, as read from the wire (not yet validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Body length (24 bits).
    pub length: u32,
    /// Type nibble; may be a value [`FrameType::from_u8`] does not know.
    pub ty: u8,
    /// Flag nibble.
    pub flags: Flags,
    /// Stream id with the reserved top bit masked off.
    pub stream_id: u32,
}

impl FrameHeader {
    /// Parses the first [`HEADER_LEN`] bytes of `src`, or returns `None` if fewer are present.
    pub fn peek(src: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = src.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            length: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            ty: h[3] >> 4,
            flags: Flags::from_bits(h[3]),
            stream_id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]) & STREAM_ID_MASK,
        })
    }

    /// Applies the §2.2 rules and the body limit; returns the frame type if the header is valid.
    pub fn validate(&self, max_body: usize) -> Result<FrameType, FrameError> {
        let ty = FrameType::from_u8(self.ty).ok_or(FrameError::UnknownType(self.ty))?;
        if self.length as usize > max_body {
            return Err(FrameError::TooLarge {
                len: self.length,
                max: max_body,
            });
        }
        let len = self.length as usize;
        let bad_len = match ty {
            FrameType::Rst | FrameType::WndInc => len != RST_WNDINC_LEN,
            FrameType::GoAway => len < GOAWAY_MIN_LEN,
            FrameType::Data => false,
        };
        if bad_len {
            return Err(FrameError::BadLength {
                ty,
                len: self.length,
            });
        }
        let bad_id = match ty {
            FrameType::GoAway => self.stream_id != 0,
            FrameType::Data => self.stream_id == 0,
            FrameType::Rst | FrameType::WndInc => false,
        };
        if bad_id {
            return Err(FrameError::BadStreamId {
                ty,
                id: self.stream_id,
            });
        }
        Ok(ty)
    }

    /// Writes the header (length must fit 24 bits; the id is masked).
    pub fn encode(&self, dst: &mut BytesMut) {
        debug_assert!(self.length as usize <= MAX_FRAME_LEN);
        let len = self.length.to_be_bytes();
        dst.put_slice(&[len[1], len[2], len[3], (self.ty << 4) | self.flags.bits()]);
        dst.put_u32(self.stream_id & STREAM_ID_MASK);
    }
}

/// Why a frame could not be decoded. Every variant is fatal for the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces a body above the receiver's limit.
    #[error("frame body of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced body length.
        len: u32,
        /// The limit in force.
        max: usize,
    },
    /// The type nibble is not RST, DATA, WNDINC or GOAWAY.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// RST/WNDINC whose length is not 4, or GOAWAY shorter than 8.
    #[error("{ty:?} frame with invalid length {len}")]
    BadLength {
        /// Frame type.
        ty: FrameType,
        /// Announced body length.
        len: u32,
    },
    /// DATA on stream 0 or GOAWAY on a non-zero stream.
    #[error("{ty:?} frame with invalid stream id {id}")]
    BadStreamId {
        /// Frame type.
        ty: FrameType,
        /// Offending id.
        id: u32,
    },
}

impl FrameError {
    /// The GOAWAY code a session should send for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameSizeError,
            _ => ErrorCode::ProtocolError,
        }
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Abort `stream_id` with `code`.
    Rst {
        /// Stream being reset.
        stream_id: u32,
        /// Reason.
        code: ErrorCode,
    },
    /// Payload (possibly empty) with SYN/FIN flags.
    Data {
        /// Stream the payload belongs to (never 0).
        stream_id: u32,
        /// SYN and/or FIN (unknown bits are kept).
        flags: Flags,
        /// Payload bytes; shares the receive buffer when decoded.
        payload: Bytes,
    },
    /// Grant `increment` more bytes of send window on `stream_id`.
    WndInc {
        /// Stream whose window grows.
        stream_id: u32,
        /// Increment (31 bits).
        increment: u32,
    },
    /// The sender is ending the session.
    GoAway {
        /// Highest stream id the sender processed from us.
        last_stream_id: u32,
        /// Reason.
        code: ErrorCode,
        /// Optional human-readable text (bounded by the decoder's body limit).
        debug: Bytes,
    },
}

impl Frame {
    /// Looks at buffered bytes: `Ok(None)` = need more, `Ok(Some(h))` = a complete valid frame
    /// with header `h` is buffered, `Err` = invalid (decided from the header alone).
    pub fn check(src: &[u8], max_body: usize) -> Result<Option<FrameHeader>, FrameError> {
        let Some(header) = FrameHeader::peek(src) else {
            return Ok(None);
        };
        header.validate(max_body)?;
        if src.len() < HEADER_LEN + header.length as usize {
            return Ok(None);
        }
        Ok(Some(header))
    }

    /// Splits one frame off the front of `buf` (`Ok(None)` = need more bytes; `buf` untouched).
    /// Bodies above `max_body` (clamped to [`MAX_FRAME_LEN`]) are rejected from the header.
    pub fn decode(buf: &mut BytesMut, max_body: usize) -> Result<Option<Frame>, FrameError> {
        let Some(h) = Frame::check(buf, max_body.min(MAX_FRAME_LEN))? else {
            return Ok(None);
        };
        buf.advance(HEADER_LEN);
        let mut body = buf.split_to(h.length as usize);
        let ty = FrameType::from_u8(h.ty).expect("validated by check");
        Ok(Some(match ty {
            FrameType::Rst => Frame::Rst {
                stream_id: h.stream_id,
                code: ErrorCode::from_u32(body.get_u32()),
            },
            FrameType::WndInc => Frame::WndInc {
                stream_id: h.stream_id,
                increment: body.get_u32() & STREAM_ID_MASK,
            },
            FrameType::Data => Frame::Data {
                stream_id: h.stream_id,
                flags: h.flags,
                payload: body.freeze(),
            },
            FrameType::GoAway => {
                let last_stream_id = body.get_u32() & STREAM_ID_MASK;
                let code = ErrorCode::from_u32(body.get_u32());
                Frame::GoAway {
                    last_stream_id,
                    code,
                    debug: body.freeze(),
                }
            }
        }))
    }

    /// The header this frame encodes with.
    pub fn header(&self) -> FrameHeader {
        let (length, ty, flags, stream_id) = match self {
            Frame::Rst { stream_id, .. } => (4, FrameType::Rst, Flags::NONE, *stream_id),
            Frame::Data {
                stream_id,
                flags,
                payload,
            } => (payload.len(), FrameType::Data, *flags, *stream_id),
            Frame::WndInc { stream_id, .. } => (4, FrameType::WndInc, Flags::NONE, *stream_id),
            Frame::GoAway { debug, .. } => (
                GOAWAY_MIN_LEN + debug.len().min(MAX_FRAME_LEN - GOAWAY_MIN_LEN),
                FrameType::GoAway,
                Flags::NONE,
                0,
            ),
        };
        FrameHeader {
            length: length as u32,
            ty: ty as u8,
            flags,
            stream_id,
        }
    }

    /// Appends the encoded frame to `dst`. GOAWAY debug text is truncated to fit the 24-bit
    /// length. Panics if a DATA payload exceeds [`MAX_FRAME_LEN`] (sessions never build one).
    pub fn encode(&self, dst: &mut BytesMut) {
        if let Frame::Data { payload, .. } = self {
            assert!(
                payload.len() <= MAX_FRAME_LEN,
                "DATA payload above 24-bit length"
            );
        }
        let header = self.header();
        dst.reserve(HEADER_LEN + header.length as usize);
        header.encode(dst);
        match self {
            Frame::Rst { code, .. } => dst.put_u32(code.as_u32()),
            Frame::WndInc { increment, .. } => dst.put_u32(increment & STREAM_ID_MASK),
            Frame::Data { payload, .. } => dst.put_slice(payload),
            Frame::GoAway {
                last_stream_id,
                code,
                debug,
            } => {
                dst.put_u32(last_stream_id & STREAM_ID_MASK);
                dst.put_u32(code.as_u32());
                dst.put_slice(&debug[..header.length as usize - GOAWAY_MIN_LEN]);
            }
        }
    }

    /// Bytes this frame occupies on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.header().length as usize
    }

    /// The frame's stream id (0 for GOAWAY).
    pub fn stream_id(&self) -> u32 {
        match self {
            Frame::Rst { stream_id, .. }
            | Frame::Data { stream_id, .. }
            | Frame::WndInc { stream_id, .. } => *stream_id,
            Frame::GoAway { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests;
