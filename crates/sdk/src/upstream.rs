//! Where an endpoint's connections go on the device: the upstream address, parsed from the forms
//! people type (`8080`, `localhost:8080`, `http://10.0.0.5`, `https://localhost:8443`,
//! `tcp://db:5432`, `tls://cam:443`), and dialed as plain TCP or TLS.
//!
//! Parsing never does IO; [`Upstream::dial`] does the connect (and the TLS handshake for `https`
//! and `tls` upstreams). Upstream certificates are not verified unless asked for
//! ([`Upstream::verify_tls`]): local services on devices almost always use self-signed
//! certificates, and the tunnel to the edge is what carries the trust.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::tls;

/// How long [`Upstream::dial`] waits for the TCP connect and the TLS handshake together.
pub const UPSTREAM_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The scheme of an upstream: how bytes reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamScheme {
    /// Plain TCP speaking HTTP.
    Http,
    /// TLS speaking HTTP.
    Https,
    /// Plain TCP.
    Tcp,
    /// TLS.
    Tls,
}

impl UpstreamScheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamScheme::Http => "http",
            UpstreamScheme::Https => "https",
            UpstreamScheme::Tcp => "tcp",
            UpstreamScheme::Tls => "tls",
        }
    }

    /// Whether dialing it does a TLS handshake.
    pub fn is_tls(self) -> bool {
        matches!(self, UpstreamScheme::Https | UpstreamScheme::Tls)
    }
}

/// A parsed upstream address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    scheme: UpstreamScheme,
    host: String,
    port: u16,
    verify_tls: bool,
    http2: bool,
}

/// Why an upstream address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream `{input}`: {reason}")]
pub struct UpstreamError {
    input: String,
    reason: &'static str,
}

impl Upstream {
    /// Parses an upstream. `default_scheme` applies when the input has none (`8080`,
    /// `host:port`): `http` for HTTP endpoints, `tcp` for TCP and TLS endpoints. A missing host is
    /// `localhost`; a missing port is the scheme's default (80, 443; required for `tcp`/`tls`).
    ///
    /// ```
    /// use warren::{Upstream, UpstreamScheme};
    /// let u = Upstream::parse("8080", UpstreamScheme::Http).unwrap();
    /// assert_eq!(u.to_string(), "http://localhost:8080");
    /// let u = Upstream::parse("https://cam.lan", UpstreamScheme::Http).unwrap();
    /// assert_eq!((u.host(), u.port()), ("cam.lan", 443));
    /// assert!(Upstream::parse("tcp://db", UpstreamScheme::Tcp).is_err());
    /// ```
    pub fn parse(input: &str, default_scheme: UpstreamScheme) -> Result<Upstream, UpstreamError> {
        let err = |reason| UpstreamError {
            input: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err("empty"));
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, rest)) => {
                let scheme = match s.to_ascii_lowercase().as_str() {
                    "http" => UpstreamScheme::Http,
                    "https" => UpstreamScheme::Https,
                    "tcp" => UpstreamScheme::Tcp,
                    "tls" => UpstreamScheme::Tls,
                    _ => return Err(err("scheme must be http, https, tcp or tls")),
                };
                (scheme, rest)
            }
            None => (default_scheme, trimmed),
        };
        // Drop a path (`http://host:80/` or `http://host/app`): the edge forwards whole requests.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(err("user info is not supported"));
        }
        let default_port = match scheme {
            UpstreamScheme::Http => Some(80),
            UpstreamScheme::Https => Some(443),
            UpstreamScheme::Tcp | UpstreamScheme::Tls => None,
        };
        let parse_port = |p: &str| -> Result<u16, UpstreamError> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(err("port must be 1-65535")),
                Ok(p) => Ok(p),
            }
        };
        let (host, port) = if authority.bytes().all(|b| b.is_ascii_digit()) {
            ("localhost".to_owned(), parse_port(authority)?)
        } else if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| err("unclosed `[`"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(err("bad IPv6 address"));
            }
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None if after.is_empty() => {
                    default_port.ok_or_else(|| err("a port is required"))?
                }
                None => return Err(err("unexpected text after `]`")),
            };
            (addr.to_owned(), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(p)?),
                None => (
                    authority,
                    default_port.ok_or_else(|| err("a port is required"))?,
                ),
            };
            let host = if host.is_empty() { "localhost" } else { host };
            if host.contains(':')
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                return Err(err("bad host name"));
            }
            (host.to_ascii_lowercase(), port)
        };
        Ok(Upstream {
            scheme,
            host,
            port,
            verify_tls: false,
            http2: false,
        })
    }

    /// Verify the upstream's certificate against the system roots (off by default).
    pub fn verify_tls(mut self, verify: bool) -> Upstream {
        self.verify_tls = verify;
        self
    }

    /// The upstream speaks HTTP/2: over TLS, offer ALPN `h2` (off by default: HTTP/1.1).
    pub fn http2(mut self, http2: bool) -> Upstream {
        self.http2 = http2;
        self
    }

    /// Whether the upstream speaks HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// The scheme.
    pub fn scheme(&self) -> UpstreamScheme {
        self.scheme
    }

    /// The host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` (`[v6]:port`), for Host headers and logs.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Connects: TCP, then TLS for `https`/`tls`, all within [`UPSTREAM_DIAL_TIMEOUT`].
    pub async fn dial(&self) -> io::Result<UpstreamIo> {
        tokio::time::timeout(UPSTREAM_DIAL_TIMEOUT, self.dial_inner())
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {self} timed out"),
                )
            })?
    }

    async fn dial_inner(&self) -> io::Result<UpstreamIo> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let _ = tcp.set_nodelay(true);
        if !self.scheme.is_tls() {
            return Ok(UpstreamIo::Plain(tcp));
        }
        let mut config = if self.verify_tls {
            tls::system_roots_config()?
        } else {
            tls::no_verify_config()
        };
        if self.http2 {
            config.alpn_protocols = vec![b"h2".to_vec()];
        } else if self.scheme == UpstreamScheme::Https {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad TLS server name"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        Ok(UpstreamIo::Tls(Box::new(tls)))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upstream({self})")
    }
}

/// A connection to an upstream, plain or TLS.
#[derive(Debug)]
pub enum UpstreamIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, UpstreamError> {
        Upstream::parse(s, UpstreamScheme::Http).map(|u| u.to_string())
    }

    #[test]
    fn forms_people_type() {
        assert_eq!(p("8080").unwrap(), "http://localhost:8080");
        assert_eq!(p(":8080").unwrap(), "http://localhost:8080");
        assert_eq!(p("Cam.Lan:81").unwrap(), "http://cam.lan:81");
        assert_eq!(p("http://10.0.0.5").unwrap(), "http://10.0.0.5:80");
        assert_eq!(
            p("https://localhost:8443/app?x").unwrap(),
            "https://localhost:8443"
        );
        assert_eq!(p("[::1]:9000").unwrap(), "http://[::1]:9000");
        assert_eq!(p("tls://[::1]:443").unwrap(), "tls://[::1]:443");
        let tcp = Upstream::parse("22", UpstreamScheme::Tcp).unwrap();
        assert_eq!(tcp.to_string(), "tcp://localhost:22");
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "0",
            "70000",
            "ftp://x",
            "http://u@h",
            "[::1",
            "[zz]:1",
            "a b:1",
            "h:1:2",
            "tcp://db",
        ] {
            let scheme = if bad.starts_with("tcp") {
                UpstreamScheme::Tcp
            } else {
                UpstreamScheme::Http
            };
            assert!(Upstream::parse(bad, scheme).is_err(), "{bad} accepted");
        }
    }
}
