//! Single-stream bulk throughput between two Warren sessions over loopback TCP (no TLS).
//!
//! `cargo run --release -p warren-mux --example throughput -- [MiB] [streams]`

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_mux::{Config, Session};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(4096, |a| a.parse().expect("MiB"));
    let streams: usize = args.next().map_or(1, |a| a.parse().expect("streams"));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let dialed = dialed.unwrap();
    let accepted = accepted.unwrap().0;
    dialed.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    let client = Session::new(dialed, Config::client());
    let server = Session::new(accepted, Config::server());

    let per_stream = mib * 1024 * 1024 / streams;
    let receiver = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let mut st = server.accept().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0usize;
                loop {
                    let n = st.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        (total, server)
    });

    let start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..streams {
        let c = client.clone();
        senders.push(tokio::spawn(async move {
            let mut st = c.open().await.unwrap();
            let chunk = vec![0xA5u8; 256 * 1024];
            let mut left = per_stream;
            while left > 0 {
                let n = left.min(chunk.len());
                st.write_all(&chunk[..n]).await.unwrap();
                left -= n;
            }
            st.shutdown().await.unwrap();
            st
        }));
    }
    let mut keep = Vec::new();
    for s in senders {
        keep.push(s.await.unwrap());
    }
    let (total, _server) = receiver.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(total, per_stream * streams);
    println!(
        "{streams} stream(s), {} MiB in {secs:.3} s = {:.2} GB/s ({:.2} GiB/s)",
        total / (1024 * 1024),
        total as f64 / secs / 1e9,
        total as f64 / secs / (1u64 << 30) as f64
    );
}
