//! Single-stream TCP throughput: one connection pushes (upload) or pulls (download) N bytes to or
//! from the origin's sink/source (see [`crate::origin`]) through whatever listens at `addr`.
//!
//! Upload time runs from the first byte written to the origin's receipt (its count of bytes
//! received), so bytes still sitting in socket or tunnel buffers are not counted as delivered.
//! Download time runs from the request to the last byte read. Both stop early at `limit`, and the
//! bytes moved by then count.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::origin::{CHUNK, Direction};

/// How long an upload waits for the origin's receipt once it stopped writing.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes moved and the time it took.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub bytes: u64,
    pub seconds: f64,
}

impl Transfer {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
}

/// Moves `total` bytes in `direction` through `addr`, for at most `limit` (plus the receipt
/// wait; a stalled stream is an error).
pub async fn transfer(
    addr: SocketAddr,
    direction: Direction,
    total: u64,
    limit: Duration,
) -> anyhow::Result<Transfer> {
    tokio::time::timeout(
        limit + RECEIPT_TIMEOUT,
        transfer_once(addr, direction, total, limit),
    )
    .await
    .with_context(|| format!("the transfer through {addr} stalled"))?
}

async fn transfer_once(
    addr: SocketAddr,
    direction: Direction,
    total: u64,
    limit: Duration,
) -> anyhow::Result<Transfer> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let mut header = [0u8; 9];
    header[0] = direction.byte();
    header[1..].copy_from_slice(&total.to_be_bytes());
    let start = Instant::now();
    let deadline = start + limit;
    tcp.write_all(&header).await?;
    let mut buf = vec![0u8; CHUNK];
    match direction {
        Direction::Upload => {
            let mut sent = 0u64;
            while sent < total && Instant::now() < deadline {
                let n = (total - sent).min(CHUNK as u64) as usize;
                tcp.write_all(&buf[..n]).await?;
                sent += n as u64;
            }
            tcp.shutdown().await?;
            let mut receipt = [0u8; 8];
            tokio::time::timeout(RECEIPT_TIMEOUT, tcp.read_exact(&mut receipt))
                .await
                .context("no receipt from the origin")?
                .context("reading the origin's receipt")?;
            let received = u64::from_be_bytes(receipt);
            if received != sent {
                bail!("sent {sent} bytes but the origin received {received}");
            }
            Ok(Transfer {
                bytes: received,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
        Direction::Download => {
            let mut received = 0u64;
            while received < total {
                let n = match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
                    Ok(read) => read?,
                    Err(_) => break,
                };
                if n == 0 {
                    bail!("the stream ended after {received} of {total} bytes");
                }
                received += n as u64;
            }
            Ok(Transfer {
                bytes: received,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
    }
}

/// Checks that a small download completes through `addr` (readiness of a tunnel).
pub async fn probe(addr: SocketAddr) -> anyhow::Result<()> {
    let got = transfer(addr, Direction::Download, 1024, Duration::from_secs(5)).await?;
    if got.bytes != 1024 {
        bail!("probe moved {} of 1024 bytes", got.bytes);
    }
    Ok(())
}
