//! PROXY protocol headers (HAProxy's spec, versions 1 and 2) for TCP over IPv4/IPv6.
//!
//! When a bind asks for `ProxyProto` 1 or 2, the edge writes one of these headers at the start of
//! the proxied bytes so the agent's upstream learns the visitor's address (§8.1). The builders are
//! what the edge uses; [`parse`] is for tests and Warren's own agent, bounded by [`V1_MAX_LEN`] and
//! [`MAX_V2_LEN`]. Only the address block is interpreted; v2 TLVs are skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest v1 header the spec allows, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses).
pub const V1_MAX_LEN: usize = 107;

/// The 12-byte signature that starts a v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Longest v2 header [`parse`] accepts: the 16-byte fixed part plus up to 4 KiB of addresses and
/// TLVs (an IPv6 address block is 36 bytes; TLVs from load balancers are a few dozen).
pub const MAX_V2_LEN: usize = 16 + 4096;

const V1_PREFIX: &[u8] = b"PROXY ";
/// v2 version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
/// v2 family/transport: TCP over IPv4.
const V2_TCP4: u8 = 0x11;
/// v2 family/transport: TCP over IPv6.
const V2_TCP6: u8 = 0x21;

/// Both addresses of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addrs {
    /// The visitor (connection source).
    pub source: SocketAddr,
    /// The address the visitor connected to.
    pub destination: SocketAddr,
}

/// A parsed PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// `None` for v1 `UNKNOWN`, v2 `LOCAL`, and v2 families without IP addresses.
    pub addrs: Option<Addrs>,
}

/// Why [`parse`] rejected its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyProtocolError {
    /// The bytes do not start with a v1 or v2 signature.
    #[error("not a PROXY protocol header")]
    NotProxyProtocol,
    /// The header is longer than [`V1_MAX_LEN`] / [`MAX_V2_LEN`].
    #[error("PROXY protocol header too long")]
    TooLarge,
    /// The header is malformed.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
}

/// The header for `version` (1 or 2); `None` for 0 (no header) or any other value.
pub fn header(version: u8, src: SocketAddr, dst: SocketAddr) -> Option<Vec<u8>> {
    match version {
        1 => Some(v1(src, dst)),
        2 => Some(v2(src, dst)),
        _ => None,
    }
}

/// Both addresses in one family: IPv4-mapped IPv6 addresses become IPv4, then if the families
/// still differ the IPv4 one is mapped into IPv6 (the spec requires one family per header).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    fn unmap(a: SocketAddr) -> SocketAddr {
        match a.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
                None => a,
            },
            IpAddr::V4(_) => a,
        }
    }
    fn map(a: SocketAddr) -> SocketAddr {
        match a.ip() {
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
            IpAddr::V6(_) => a,
        }
    }
    let (src, dst) = (unmap(src), unmap(dst));
    if src.is_ipv4() == dst.is_ipv4() {
        (src, dst)
    } else {
        (map(src), map(dst))
    }
}

/// A v1 (text) header: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (`TCP6` for IPv6).
pub fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// A v2 (binary) header, command PROXY, TCP over IPv4 or IPv6, no TLVs.
pub fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(V2_PROXY);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(V2_TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip| match ip {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) => Ipv4Addr::to_ipv6_mapped(&v4),
            };
            out.push(V2_TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

/// Parses a v1 or v2 header at the start of `buf`.
///
/// `Ok(None)` = more bytes needed; `Ok(Some((header, n)))` = the header and its length (the
/// connection's own bytes start at `buf[n..]`).
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyProtocolError::NotProxyProtocol),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyProtocolError> {
    use ProxyProtocolError::{Malformed, NotProxyProtocol, TooLarge};
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] != V1_PREFIX[..n] {
        return Err(NotProxyProtocol);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX_LEN {
            Err(TooLarge)
        } else {
            Ok(None)
        };
    };
    let line = window[..lf]
        .strip_suffix(b"\r")
        .ok_or(Malformed("line must end with CRLF"))?;
    let line = std::str::from_utf8(line).map_err(|_| Malformed("not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let addrs = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |text: &str| -> Result<IpAddr, ProxyProtocolError> {
                if *family == "TCP4" {
                    text.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    text.parse::<Ipv6Addr>().map(IpAddr::V6)
                }
                .map_err(|_| Malformed("bad address"))
            };
            Some(Addrs {
                source: SocketAddr::new(ip(src)?, v1_port(sport)?),
                destination: SocketAddr::new(ip(dst)?, v1_port(dport)?),
            })
        }
        _ => return Err(Malformed("bad v1 fields")),
    };
    Ok(Some((Header { version: 1, addrs }, lf + 1)))
}

fn v1_port(text: &str) -> Result<u16, ProxyProtocolError> {
    let digits_ok = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !digits_ok {
        return Err(ProxyProtocolError::Malformed("bad port"));
    }
    text.parse()
        .map_err(|_| ProxyProtocolError::Malformed("bad port"))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyProtocolError> {
    use ProxyProtocolError::{Malformed, NotProxyProtocol, TooLarge};
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(NotProxyProtocol);
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0F);
    if version != 2 {
        return Err(Malformed("version must be 2"));
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_V2_LEN {
        return Err(TooLarge);
    }
    let Some(body) = buf.get(16..len) else {
        return Ok(None);
    };
    let addrs = match command {
        0x0 => None, // LOCAL: health check from the proxy itself.
        0x1 => match buf[13] >> 4 {
            0x1 => {
                let a = body.get(..12).ok_or(Malformed("short IPv4 block"))?;
                let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
                Some(Addrs {
                    source: SocketAddr::new(ip(0), u16::from_be_bytes([a[8], a[9]])),
                    destination: SocketAddr::new(ip(4), u16::from_be_bytes([a[10], a[11]])),
                })
            }
            0x2 => {
                let a = body.get(..36).ok_or(Malformed("short IPv6 block"))?;
                let ip = |i: usize| {
                    let octets: [u8; 16] = a[i..i + 16].try_into().expect("16 bytes");
                    IpAddr::V6(Ipv6Addr::from(octets))
                };
                Some(Addrs {
                    source: SocketAddr::new(ip(0), u16::from_be_bytes([a[32], a[33]])),
                    destination: SocketAddr::new(ip(16), u16::from_be_bytes([a[34], a[35]])),
                })
            }
            // UNSPEC and UNIX: no IP addresses to report.
            _ => None,
        },
        _ => return Err(Malformed("unknown command")),
    };
    Ok(Some((Header { version: 2, addrs }, len)))
}

#[cfg(test)]
mod tests;
