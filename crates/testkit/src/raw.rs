//! Raw agent-side peers for adversarial tests: a TLS connection to the agent port that writes
//! whatever bytes a test chooses, muxado frames built by hand (invalid ones included), and a
//! Warren mux session that authenticates like the SDK and then misbehaves at the RPC level.
//!
//! Every wait here is bounded. Reads report how they ended ([`Drained`]) so a test can assert
//! "closed within a bound" without sleeping. Test-only, like the rest of the crate.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use warren_mux::frame::Frame;
use warren_mux::{ErrorCode, MAX_FRAME_LEN};
use warren_proto::msg::AuthResp;
use warren_proto::{RpcReader, stream_type};

use crate::{STEP_TIMEOUT, TestEdge};

/// Frame type numbers (high nibble of header byte 3, docs/agent-protocol.md §2.2).
pub const RST: u8 = 0;
pub const DATA: u8 = 1;
pub const WNDINC: u8 = 2;
pub const GOAWAY: u8 = 3;
/// Flag bits (low nibble of header byte 3).
pub const FIN: u8 = 0x1;
pub const SYN: u8 = 0x2;

/// The id of the first stream an SDK opens (§2.3).
pub const FIRST_CLIENT_STREAM: u32 = 3;

/// An 8-byte frame header announcing `len` body bytes (nothing checks that they follow).
pub fn header(len: u32, ty: u8, flags: u8, stream_id: u32) -> [u8; 8] {
    let l = len.to_be_bytes();
    let id = stream_id.to_be_bytes();
    [
        l[1],
        l[2],
        l[3],
        (ty << 4) | (flags & 0x0F),
        id[0],
        id[1],
        id[2],
        id[3],
    ]
}

/// A whole frame: header plus `body`.
pub fn frame(ty: u8, flags: u8, stream_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = header(body.len() as u32, ty, flags, stream_id).to_vec();
    out.extend_from_slice(body);
    out
}

/// A DATA|SYN frame opening `stream_id` with a 4-byte stream type and `payload`.
pub fn typed_syn(stream_id: u32, ty: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = ty.to_be_bytes().to_vec();
    body.extend_from_slice(payload);
    frame(DATA, SYN, stream_id, &body)
}

/// A JSON string literal for `s`.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An Auth request shaped like the Rust SDK's (docs/agent-protocol.md §6.1).
pub fn auth_json(token: &str) -> String {
    format!(
        concat!(
            r#"{{"Version":["3","2"],"ClientId":"","Extra":{{"OS":"linux","Arch":"x86_64","#,
            r#""AuthToken":{},"Version":"0.0.0","Hostname":"","UserAgent":"warren-raw-test/0.0.0","#,
            r#""Metadata":"","Cookie":"","HeartbeatInterval":10000000000,"#,
            r#""HeartbeatTolerance":15000000000,"UpdateUnsupportedError":"unsupported","#,
            r#""StopUnsupportedError":"unsupported","RestartUnsupportedError":"unsupported","#,
            r#""ProxyType":"","MutualTLS":false,"ServiceRun":false,"ConfigVersion":"","#,
            r#""CustomInterface":false,"CustomCAs":false,"ClientType":"warren-raw-test"}}}}"#
        ),
        json_str(token)
    )
}

/// A Bind for an `https` endpoint on `domain`; `proxy_proto` goes into `Opts.ProxyProto` as is.
pub fn bind_json(proto: &str, domain: &str, proxy_proto: &str) -> String {
    format!(
        concat!(
            r#"{{"Id":"","Proto":{},"ForwardsTo":"raw test","ForwardsProto":"","#,
            r#""Opts":{{"Domain":{},"Hostname":"","Subdomain":"","Auth":"","#,
            r#""HostHeaderRewrite":false,"ProxyProto":{}}},"#,
            r#""Extra":{{"Token":"","IPPolicyRef":"","Metadata":"","Bindings":[]}}}}"#
        ),
        json_str(proto),
        json_str(domain),
        proxy_proto
    )
}

/// How a bounded read loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Clean end of stream (FIN, TLS close_notify or TCP FIN).
    Eof,
    /// The read failed: `ConnectionReset` for a muxado RST, `ConnectionAborted` for a muxado
    /// session that ended, `UnexpectedEof` for TLS without close_notify, and so on.
    Error(io::ErrorKind),
    /// Still open when the bound ran out.
    TimedOut,
}

/// Everything a bounded read loop saw.
#[derive(Debug)]
pub struct Drained {
    /// The bytes read before the end.
    pub bytes: Vec<u8>,
    pub ended: Ended,
    /// Time from the start of the read to its end.
    pub elapsed: Duration,
}

impl Drained {
    /// Whether the other side closed (or broke) the connection within the bound.
    pub fn closed(&self) -> bool {
        self.ended != Ended::TimedOut
    }

    /// The complete, valid muxado frames at the start of the bytes.
    pub fn frames(&self) -> Vec<Frame> {
        let mut buf = BytesMut::from(&self.bytes[..]);
        let mut frames = Vec::new();
        while let Ok(Some(frame)) = Frame::decode(&mut buf, MAX_FRAME_LEN) {
            frames.push(frame);
        }
        frames
    }

    /// The code and debug text of the first GOAWAY among [`Drained::frames`].
    pub fn goaway(&self) -> Option<(ErrorCode, String)> {
        self.frames().into_iter().find_map(|f| match f {
            Frame::GoAway { code, debug, .. } => {
                Some((code, String::from_utf8_lossy(&debug).into_owned()))
            }
            _ => None,
        })
    }

    /// The bytes as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads from `io` until end of stream or an error, for at most `bound`.
pub async fn drain<R: AsyncRead + Unpin + ?Sized>(io: &mut R, bound: Duration) -> Drained {
    let start = Instant::now();
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let ended = timeout(bound, async {
        loop {
            match io.read(&mut chunk).await {
                Ok(0) => return Ended::Eof,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) => return Ended::Error(e.kind()),
            }
        }
    })
    .await
    .unwrap_or(Ended::TimedOut);
    Drained {
        bytes,
        ended,
        elapsed: start.elapsed(),
    }
}

/// A TLS connection to the edge's agent port, trusting the edge CA, with no ALPN (like the SDKs).
pub async fn agent_tls(edge: &TestEdge) -> anyhow::Result<TlsStream<TcpStream>> {
    let addr = edge.server.agent_addr;
    let config = Arc::new(crate::client_tls(&edge.ca_pem, &[]));
    let name = ServerName::try_from(addr.ip().to_string())?;
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok::<_, anyhow::Error>(TlsConnector::from(config).connect(name, tcp).await?)
    };
    timeout(STEP_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow::anyhow!("TLS to the agent port timed out"))?
}

/// Authenticates by hand on a raw connection: Auth on stream 3 as one SYN frame, then reads
/// frames until the edge's FIN on stream 3. Returns the response body. Frames on other streams
/// (the edge's heartbeat, WNDINC) are skipped.
pub async fn raw_auth<S>(io: &mut S, token: &str) -> anyhow::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sid = FIRST_CLIENT_STREAM;
    io.write_all(&typed_syn(
        sid,
        stream_type::AUTH,
        auth_json(token).as_bytes(),
    ))
    .await?;
    io.flush().await?;
    let read = async {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        loop {
            while let Some(frame) = Frame::decode(&mut buf, MAX_FRAME_LEN)? {
                match frame {
                    Frame::Data {
                        stream_id,
                        flags,
                        payload,
                    } if stream_id == sid => {
                        body.extend_from_slice(&payload);
                        if flags.is_fin() {
                            return Ok(body);
                        }
                    }
                    Frame::Rst { stream_id, code } if stream_id == sid => {
                        anyhow::bail!("the edge reset the Auth stream: {code:?}")
                    }
                    Frame::GoAway { code, debug, .. } => {
                        anyhow::bail!("the edge went away during Auth: {code:?} {debug:?}")
                    }
                    _ => {}
                }
            }
            if io.read_buf(&mut buf).await? == 0 {
                anyhow::bail!("the edge closed the connection during Auth");
            }
        }
    };
    timeout(STEP_TIMEOUT, read)
        .await
        .map_err(|_| anyhow::anyhow!("no Auth response in time"))?
}

/// A Warren mux session on the agent port, playing a (misbehaving) agent. Heartbeat streams the
/// edge opens are echoed; other edge-opened streams are dropped. Dropping the `RawAgent` ends the
/// session.
pub struct RawAgent {
    pub mux: warren_mux::Session,
    acceptor: AbortHandle,
}

impl Drop for RawAgent {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.mux.close();
    }
}

impl RawAgent {
    /// Connects with `config` (usually [`warren_mux::Config::client`]) without authenticating.
    pub async fn connect(edge: &TestEdge, config: warren_mux::Config) -> anyhow::Result<RawAgent> {
        let tls = agent_tls(edge).await?;
        let mux = warren_mux::Session::new(tls, config);
        let accepting = mux.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((ty, stream)) = accepting.accept_typed().await {
                if ty == stream_type::HEARTBEAT {
                    tokio::spawn(warren_mux::heartbeat::echo(stream));
                }
            }
        })
        .abort_handle();
        Ok(RawAgent { mux, acceptor })
    }

    /// Connects with the default client config and authenticates with `token`.
    pub async fn authenticated(edge: &TestEdge, token: &str) -> anyhow::Result<RawAgent> {
        let agent = RawAgent::connect(edge, warren_mux::Config::client()).await?;
        let resp = agent.auth(token).await?;
        anyhow::ensure!(resp.error.is_empty(), "Auth refused: {}", resp.error);
        Ok(agent)
    }

    /// Sends Auth with `token` and parses the response.
    pub async fn auth(&self, token: &str) -> anyhow::Result<AuthResp> {
        let reply = self
            .rpc(stream_type::AUTH, auth_json(token).as_bytes())
            .await?;
        anyhow::ensure!(
            reply.ended == Ended::Eof,
            "Auth stream ended with {:?} after {:?}",
            reply.ended,
            reply.text()
        );
        let resp = RpcReader::new()
            .push_as::<AuthResp>(&reply.bytes)?
            .ok_or_else(|| anyhow::anyhow!("incomplete AuthResp: {:?}", reply.text()))?;
        Ok(resp)
    }

    /// Opens a stream of type `ty`, writes `body` (without FIN, like the SDKs) and reads the
    /// answer until FIN, RST or the end of the session, for at most [`STEP_TIMEOUT`]. A write the
    /// edge cuts short is not an error: the read says how the stream ended.
    pub async fn rpc(&self, ty: u32, body: &[u8]) -> anyhow::Result<Drained> {
        let mut stream = timeout(STEP_TIMEOUT, self.mux.open_typed(ty, &[]))
            .await
            .map_err(|_| anyhow::anyhow!("opening a stream timed out"))??;
        let _ = timeout(STEP_TIMEOUT, stream.write_all(body)).await;
        Ok(drain(&mut stream, STEP_TIMEOUT).await)
    }
}
