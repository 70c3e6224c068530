//! Prefixed, time-ordered resource ids: `<prefix>_<27-character body>`.
//!
//! The body is KSUID-shaped: 20 bytes (a 4-byte big-endian timestamp in seconds since
//! [`ID_EPOCH_UNIX_SECS`], then 16 random bytes) written as 27 base62 digits. Bodies of
//! the same width sort lexicographically in timestamp order, so ids sort by creation
//! second; within one second the order is random. The same body also opens the
//! resource's token (see [`crate::token`]). The layout matches ngrok's: the bodies of the
//! ids in ngrok's documented examples decode to those resources' `created_at`.
//!
//! Pure: the caller passes the current time and the random source.

use std::fmt;

use rand::RngCore;

use crate::base62;

#[cfg(test)]
mod tests;

/// Length of an id body in characters.
pub const ID_BODY_LEN: usize = 27;

/// The instant timestamps in id bodies count from (2014-05-13T16:53:20Z, the KSUID epoch).
pub const ID_EPOCH_UNIX_SECS: u64 = 1_400_000_000;

/// Bytes behind an id body: 4 timestamp bytes and 16 random bytes.
const ID_BYTES: usize = 20;

/// The resource an id names, which fixes its prefix (ngrok's spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdPrefix {
    /// `cr` — a credential (tunnel authtoken).
    Credential,
    /// `ak` — an API key.
    ApiKey,
    /// `ts` — a tunnel session (one connected agent).
    TunnelSession,
    /// `tn` — a tunnel.
    Tunnel,
    /// `ep` — an endpoint.
    Endpoint,
    /// `service` — a service user.
    ServiceUser,
    /// `rd` — a reserved domain.
    ReservedDomain,
    /// `ra` — a reserved TCP address.
    ReservedAddr,
    /// `ed` — an event destination.
    EventDestination,
    /// `esb` — an event subscription.
    EventSubscription,
    /// `ev` — an event.
    Event,
    /// `ipp` — an IP policy.
    IpPolicy,
    /// `ipr` — an IP policy rule.
    IpPolicyRule,
    /// `ipx` — an IP restriction.
    IpRestriction,
}

impl IdPrefix {
    /// Every prefix, in declaration order.
    pub const ALL: [IdPrefix; 14] = [
        IdPrefix::Credential,
        IdPrefix::ApiKey,
        IdPrefix::TunnelSession,
        IdPrefix::Tunnel,
        IdPrefix::Endpoint,
        IdPrefix::ServiceUser,
        IdPrefix::ReservedDomain,
        IdPrefix::ReservedAddr,
        IdPrefix::EventDestination,
        IdPrefix::EventSubscription,
        IdPrefix::Event,
        IdPrefix::IpPolicy,
        IdPrefix::IpPolicyRule,
        IdPrefix::IpRestriction,
    ];

    /// The prefix text, without the trailing `_`.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdPrefix::Credential => "cr",
            IdPrefix::ApiKey => "ak",
            IdPrefix::TunnelSession => "ts",
            IdPrefix::Tunnel => "tn",
            IdPrefix::Endpoint => "ep",
            IdPrefix::ServiceUser => "service",
            IdPrefix::ReservedDomain => "rd",
            IdPrefix::ReservedAddr => "ra",
            IdPrefix::EventDestination => "ed",
            IdPrefix::EventSubscription => "esb",
            IdPrefix::Event => "ev",
            IdPrefix::IpPolicy => "ipp",
            IdPrefix::IpPolicyRule => "ipr",
            IdPrefix::IpRestriction => "ipx",
        }
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not an id (or id body) of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string does not start with `<expected>_`.
    #[error("id must start with \"{expected}_\"")]
    WrongPrefix {
        /// The prefix that was required.
        expected: IdPrefix,
    },
    /// The body is not 27 characters long.
    #[error("id body must be {ID_BODY_LEN} characters, got {len}")]
    BadLength {
        /// The body's length in bytes.
        len: usize,
    },
    /// The body contains a character outside `0-9A-Za-z`.
    #[error("id body must contain only base62 characters (0-9, A-Z, a-z)")]
    BadCharacter,
    /// The body's value exceeds 160 bits.
    #[error("id body is out of range")]
    OutOfRange,
}

/// Creates a new id body for `now_unix_secs`.
///
/// Times before [`ID_EPOCH_UNIX_SECS`] clamp to the epoch and times past the 32-bit range
/// (year 2150) clamp to its end, so the result is always a valid body.
pub fn new_id_body(now_unix_secs: u64, rng: &mut (impl RngCore + ?Sized)) -> String {
    let offset = now_unix_secs.saturating_sub(ID_EPOCH_UNIX_SECS);
    let timestamp = u32::try_from(offset).unwrap_or(u32::MAX);
    let mut bytes = [0u8; ID_BYTES];
    bytes[..4].copy_from_slice(&timestamp.to_be_bytes());
    rng.fill_bytes(&mut bytes[4..]);
    base62::encode::<ID_BYTES, ID_BODY_LEN>(&bytes)
}

/// Creates a new id `<prefix>_<body>` for `now_unix_secs`.
pub fn new_id(prefix: IdPrefix, now_unix_secs: u64, rng: &mut (impl RngCore + ?Sized)) -> String {
    format!("{prefix}_{}", new_id_body(now_unix_secs, rng))
}

/// Checks that `s` is an id with `expected_prefix` and returns its body.
pub fn parse_id(s: &str, expected_prefix: IdPrefix) -> Result<&str, IdError> {
    let body = s
        .strip_prefix(expected_prefix.as_str())
        .and_then(|rest| rest.strip_prefix('_'))
        .ok_or(IdError::WrongPrefix {
            expected: expected_prefix,
        })?;
    decode_body(body)?;
    Ok(body)
}

/// Checks that `body` is a well-formed id body (27 base62 digits within 160 bits).
pub fn check_id_body(body: &str) -> Result<(), IdError> {
    decode_body(body).map(|_| ())
}

/// Returns the creation time (Unix seconds) recorded in an id body.
pub fn id_body_unix_secs(body: &str) -> Result<u64, IdError> {
    let bytes = decode_body(body)?;
    let timestamp = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Ok(ID_EPOCH_UNIX_SECS + u64::from(timestamp))
}

fn decode_body(body: &str) -> Result<[u8; ID_BYTES], IdError> {
    if body.len() != ID_BODY_LEN {
        return Err(IdError::BadLength { len: body.len() });
    }
    if !body.bytes().all(base62::is_digit) {
        return Err(IdError::BadCharacter);
    }
    base62::decode::<ID_BYTES>(body).ok_or(IdError::OutOfRange)
}
