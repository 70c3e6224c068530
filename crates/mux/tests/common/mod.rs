//! Shared helpers for the integration tests: session pairs, a raw frame-level peer, and a
//! bound on every await.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use warren_mux::frame::Frame;
use warren_mux::{Config, Session};

/// Upper bound for any single step of a test.
pub const STEP: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
pub async fn t<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .expect("test step timed out")
}

/// A client session and a server session connected by an in-memory pipe.
pub fn pair(client: Config, server: Config) -> (Session, Session) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    (Session::new(a, client), Session::new(b, server))
}

/// FNV-1a, enough to check that bytes arrive intact and in order.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Deterministic test payload.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// A hand-driven peer speaking raw frames, for adversarial tests.
pub struct RawPeer {
    pub io: DuplexStream,
    buf: BytesMut,
}

impl RawPeer {
    /// A session with `cfg` on one end and a raw peer on the other.
    pub fn connect(cfg: Config) -> (Session, RawPeer) {
        Self::connect_with_buffer(cfg, 256 * 1024)
    }

    pub fn connect_with_buffer(cfg: Config, pipe: usize) -> (Session, RawPeer) {
        let (a, b) = tokio::io::duplex(pipe);
        (
            Session::new(a, cfg),
            RawPeer {
                io: b,
                buf: BytesMut::new(),
            },
        )
    }

    pub async fn send(&mut self, f: &Frame) {
        let mut b = BytesMut::new();
        f.encode(&mut b);
        t(self.io.write_all(&b)).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        t(self.io.write_all(bytes)).await.unwrap();
    }

    /// Next frame from the session, or `None` at EOF.
    pub async fn recv(&mut self) -> Option<Frame> {
        t(async {
            loop {
                if let Some(f) = Frame::decode(&mut self.buf, warren_mux::MAX_FRAME_LEN)
                    .expect("session sent an invalid frame")
                {
                    return Some(f);
                }
                let n = self.io.read_buf(&mut self.buf).await.unwrap_or(0);
                if n == 0 {
                    return None;
                }
            }
        })
        .await
    }

    /// Next frame that is not a WNDINC.
    pub async fn recv_skip_wndinc(&mut self) -> Option<Frame> {
        loop {
            match self.recv().await {
                Some(Frame::WndInc { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Reads until EOF, returning the frames seen.
    pub async fn recv_until_eof(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = self.recv().await {
            out.push(f);
        }
        out
    }
}
