//! The origin every path ends at, run as its own process (`warren-bench origin`) so its CPU is
//! counted apart from the tunnel's:
//!
//! - an HTTP/1.1 keep-alive server answering every request with the same small body;
//! - a stream sink/source for throughput, speaking a 9-byte request header: `U` or `D`, then a
//!   big-endian u64 byte count N. `U` (upload): the origin reads until N bytes or EOF, then
//!   answers with the big-endian u64 count it received and closes. `D` (download): the origin
//!   writes N bytes and closes (or stops at the first write error).
//!
//! It must do as little work per byte and per request as possible: it is the baseline's cost
//! floor, shared by every path.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The body of every HTTP response.
pub const HTTP_BODY: &[u8] = b"hello from the bench origin\n";

/// Size of the buffers used to read and write streams.
pub const CHUNK: usize = 256 * 1024;

/// Throughput request: the origin reads (`Upload`) or writes (`Download`) the byte count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

impl Direction {
    /// The request header byte.
    pub fn byte(self) -> u8 {
        match self {
            Direction::Upload => b'U',
            Direction::Download => b'D',
        }
    }
}

/// Binds both origins on 127.0.0.1 port 0, prints `http ADDR` and `stream ADDR`, then serves
/// until the process is killed.
pub async fn run() -> anyhow::Result<()> {
    let http = TcpListener::bind("127.0.0.1:0").await?;
    let stream = TcpListener::bind("127.0.0.1:0").await?;
    println!("http {}", http.local_addr()?);
    println!("stream {}", stream.local_addr()?);
    tokio::spawn(serve_stream(stream));
    serve_http(http).await;
    Ok(())
}

async fn serve_http(listener: TcpListener) {
    let body = Bytes::from_static(HTTP_BODY);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "text/plain")
                                .body(Full::new(body))
                                .expect("static response"),
                        )
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn serve_stream(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let _ = sink_or_source(tcp).await;
        });
    }
}

async fn sink_or_source(mut tcp: TcpStream) -> std::io::Result<()> {
    let mut header = [0u8; 9];
    tcp.read_exact(&mut header).await?;
    let total = u64::from_be_bytes(header[1..].try_into().expect("8 bytes"));
    let mut buf = vec![0u8; CHUNK];
    match header[0] {
        b'U' => {
            let mut received = 0u64;
            while received < total {
                let n = tcp.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                received += n as u64;
            }
            tcp.write_all(&received.to_be_bytes()).await?;
        }
        b'D' => {
            let mut sent = 0u64;
            while sent < total {
                let n = (total - sent).min(CHUNK as u64) as usize;
                tcp.write_all(&buf[..n]).await?;
                sent += n as u64;
            }
        }
        _ => return Ok(()),
    }
    tcp.shutdown().await
}

/// Reads the `http ADDR` and `stream ADDR` lines an origin process prints.
pub async fn addresses(proc: &mut crate::procs::Proc) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let http = proc.line("http ").await?.parse()?;
    let stream = proc.line("stream ").await?.parse()?;
    Ok((http, stream))
}
