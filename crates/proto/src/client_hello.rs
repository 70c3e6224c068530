//! SNI extraction from the first bytes of a TLS connection, to route TLS passthrough by server
//! name on a shared port without terminating TLS.
//!
//! [`parse_sni`] is pure and restartable: call it with everything buffered so far and it says
//! "need more", "complete, no SNI", "complete, SNI = name" or "not TLS / malformed / too large".
//! A ClientHello split across several TLS records is reassembled, bounded by
//! [`MAX_CLIENT_HELLO_LEN`] bytes of handshake and [`MAX_HELLO_RECORDS`] records, so repeated calls
//! on a growing buffer stay cheap. It reads nothing beyond the ClientHello and never decrypts.

/// Largest ClientHello handshake message accepted (body plus 4-byte header). Real ones are
/// 0.2–2 KiB (post-quantum key shares included).
pub const MAX_CLIENT_HELLO_LEN: usize = 16 * 1024;

/// Most TLS records a ClientHello may be split across. Clients send one; fragmenting middleboxes
/// a few. Bounding it keeps each [`parse_sni`] call O(records).
pub const MAX_HELLO_RECORDS: usize = 64;

/// Largest TLS record payload (2^14, RFC 8446 §5.1).
const MAX_RECORD_LEN: usize = 16 * 1024;
const RECORD_HEADER_LEN: usize = 5;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
/// Longest DNS name.
const MAX_HOST_LEN: usize = 253;

/// Why [`parse_sni`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first bytes are not a TLS handshake record.
    #[error("not a TLS handshake")]
    NotTls,
    /// The first handshake message is not a ClientHello.
    #[error("first handshake message is not a ClientHello")]
    NotClientHello,
    /// The ClientHello exceeds [`MAX_CLIENT_HELLO_LEN`] or [`MAX_HELLO_RECORDS`].
    #[error("ClientHello too large")]
    TooLarge,
    /// A length field or structure is inconsistent.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// The server_name extension holds a name that cannot be routed.
    #[error("invalid server name in ClientHello")]
    InvalidServerName,
}

/// Finds the SNI host name in the ClientHello at the start of `buf`.
///
/// - `Ok(None)`: incomplete, call again with more bytes;
/// - `Ok(Some(None))`: a complete ClientHello without a host name (e.g. the client dialed an IP);
/// - `Ok(Some(Some(name)))`: the host name, lowercased;
/// - `Err(_)`: not TLS, malformed or over a bound; close the connection.
pub fn parse_sni(buf: &[u8]) -> Result<Option<Option<String>>, HelloError> {
    // Pass 1: walk the record headers until the whole handshake message is known to be present,
    // noting where each fragment is. Nothing is copied yet.
    let mut fragments: Vec<&[u8]> = Vec::new();
    let mut header = [0u8; 4];
    let mut header_len = 0;
    let mut need: Option<usize> = None;
    let mut have = 0;
    let mut pos = 0;
    while need.is_none_or(|n| have < n) {
        if fragments.len() == MAX_HELLO_RECORDS {
            return Err(HelloError::TooLarge);
        }
        let rest = &buf[pos..];
        check_record_header(rest, fragments.is_empty())?;
        if rest.len() < RECORD_HEADER_LEN {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let available = &rest[RECORD_HEADER_LEN..rest.len().min(RECORD_HEADER_LEN + len)];
        // Peek at the handshake header as soon as its bytes arrive, to fail early.
        for &b in available.iter().take(4 - header_len) {
            header[header_len] = b;
            header_len += 1;
        }
        if header_len == 4 && need.is_none() {
            if header[0] != HANDSHAKE_CLIENT_HELLO {
                return Err(HelloError::NotClientHello);
            }
            let body_len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
            if 4 + body_len > MAX_CLIENT_HELLO_LEN {
                return Err(HelloError::TooLarge);
            }
            need = Some(4 + body_len);
        }
        if available.len() < len {
            return Ok(None);
        }
        fragments.push(available);
        have += len;
        pos += RECORD_HEADER_LEN + len;
    }
    let need = need.expect("loop ends only once the length is known");

    // Pass 2: the message, borrowed when it sits in one record, else reassembled.
    let joined;
    let message = if fragments[0].len() >= need {
        &fragments[0][..need]
    } else {
        joined = fragments.concat();
        &joined[..need]
    };
    client_hello_sni(&message[4..]).map(Some)
}

/// Validates the (possibly partial) record header at the start of `rest`.
fn check_record_header(rest: &[u8], first: bool) -> Result<(), HelloError> {
    let wrong = if first {
        HelloError::NotTls
    } else {
        HelloError::Malformed("non-handshake record inside ClientHello")
    };
    if rest.first().is_some_and(|&t| t != CONTENT_HANDSHAKE) {
        return Err(wrong);
    }
    // Legacy record version: 3.x (3.1 for TLS 1.0+ ClientHellos; some send 3.0 or 3.3).
    if rest.get(1).is_some_and(|&major| major != 3) {
        return Err(wrong);
    }
    if let [_, _, _, hi, lo, ..] = *rest {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(HelloError::Malformed("empty handshake record"));
        }
        if len > MAX_RECORD_LEN {
            return Err(HelloError::Malformed("record too long"));
        }
    }
    Ok(())
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed("length exceeds message"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, HelloError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, HelloError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a 1-byte length.
    fn vec8(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u8()?;
        self.take(n.into())
    }

    /// A vector with a 2-byte length.
    fn vec16(&mut self) -> Result<&'a [u8], HelloError> {
        let n = self.u16()?;
        self.take(n.into())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The SNI host name in a ClientHello body (after the 4-byte handshake header).
fn client_hello_sni(body: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(body);
    let _legacy_version = r.take(2)?;
    let _random = r.take(32)?;
    if r.vec8()?.len() > 32 {
        return Err(HelloError::Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("bad cipher suite list"));
    }
    if r.vec8()?.is_empty() {
        return Err(HelloError::Malformed("empty compression method list"));
    }
    if r.is_empty() {
        return Ok(None); // No extensions at all (allowed before TLS 1.3).
    }
    let mut exts = Reader(r.vec16()?);
    if !r.is_empty() {
        return Err(HelloError::Malformed("data after extensions"));
    }
    let mut sni = None;
    while !exts.is_empty() {
        let ty = exts.u16()?;
        let data = exts.vec16()?;
        if ty == EXT_SERVER_NAME {
            if sni.is_some() {
                return Err(HelloError::Malformed("duplicate server_name extension"));
            }
            sni = Some(server_name(data)?);
        }
    }
    Ok(sni.flatten())
}

/// The host name in a server_name extension body (RFC 6066 §3).
fn server_name(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16()?);
    if !outer.is_empty() {
        return Err(HelloError::Malformed("data after server name list"));
    }
    let mut host = None;
    while !list.is_empty() {
        let name_type = list.u8()?;
        let name = list.vec16()?;
        if name_type == NAME_TYPE_HOST && host.is_none() {
            host = Some(host_name(name)?);
        }
    }
    Ok(host)
}

fn host_name(name: &[u8]) -> Result<String, HelloError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_HOST_LEN
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !valid {
        return Err(HelloError::InvalidServerName);
    }
    let text = std::str::from_utf8(name).map_err(|_| HelloError::InvalidServerName)?;
    Ok(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
