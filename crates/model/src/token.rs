//! Secret tokens (authtokens, API keys): generation, shape checks and hashing.
//!
//! A generated token has ngrok's shape `<27-char id body>_<43-char base62 secret>`, where
//! the secret is 256 random bits from a cryptographic generator and the id body is the
//! one in the resource's id (`cr_<body>`, `ak_<body>`). An operator may also supply a
//! token of their own choosing (for example `WARREN_AUTHTOKEN`), so the accepted *shape*
//! is looser: 8..=256 bytes of printable ASCII without whitespace.
//!
//! Only [`TokenHash`] (SHA-256 of the whole token) is ever stored, and hashes are
//! compared in constant time. Nothing here prints a token: errors carry no input and
//! `Debug` for [`TokenHash`] shows only a short prefix of the (non-secret) hash.

use std::fmt;
use std::hash::{Hash, Hasher};

use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::base62;
use crate::ids::ID_BODY_LEN;

#[cfg(test)]
mod tests;

/// Random bytes behind a generated token's secret part (256 bits).
pub const SECRET_BYTES: usize = 32;
/// Length of a generated token's secret part in base62 characters.
pub const SECRET_LEN: usize = 43;
/// Length of a generated token: id body, `_`, secret.
pub const GENERATED_TOKEN_LEN: usize = ID_BODY_LEN + 1 + SECRET_LEN;
/// Shortest token accepted (operator-chosen tokens included).
pub const MIN_TOKEN_LEN: usize = 8;
/// Longest token accepted (operator-chosen tokens included).
pub const MAX_TOKEN_LEN: usize = 256;

/// Generates a token `<id_body>_<secret>` for the resource whose id body is `id_body`.
///
/// The generator must be cryptographically secure (`ThreadRng`, `OsRng`, `StdRng`).
pub fn generate_token(id_body: &str, rng: &mut (impl RngCore + CryptoRng + ?Sized)) -> String {
    debug_assert!(crate::ids::check_id_body(id_body).is_ok());
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    let encoded = base62::encode::<SECRET_BYTES, SECRET_LEN>(&secret);
    format!("{id_body}_{encoded}")
}

/// Why a string cannot be a token at all (the agent-facing "malformed authtoken",
/// ERR_NGROK_105), as opposed to a well-shaped token that matches nothing (ERR_NGROK_107).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenShapeError {
    /// Fewer than [`MIN_TOKEN_LEN`] bytes.
    #[error("token is shorter than {MIN_TOKEN_LEN} bytes")]
    TooShort,
    /// More than [`MAX_TOKEN_LEN`] bytes.
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// A byte outside printable ASCII, or whitespace.
    #[error("token must be printable ASCII without whitespace")]
    BadCharacter,
}

/// Checks that `s` has the shape of a token: 8..=256 bytes, each printable ASCII and not
/// whitespace. Generated tokens always pass.
pub fn check_token_shape(s: &str) -> Result<(), TokenShapeError> {
    if s.len() < MIN_TOKEN_LEN {
        return Err(TokenShapeError::TooShort);
    }
    if s.len() > MAX_TOKEN_LEN {
        return Err(TokenShapeError::TooLong);
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenShapeError::BadCharacter);
    }
    Ok(())
}

/// Whether `s` has the shape of a token (see [`check_token_shape`]).
pub fn looks_like_token(s: &str) -> bool {
    check_token_shape(s).is_ok()
}

/// SHA-256 of a whole token string — the only form in which tokens are stored.
///
/// Equality (`==` and [`TokenHash::ct_eq`]) runs in constant time.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

/// A stored hash that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token hash must be 64 hexadecimal digits")]
pub struct TokenHashError;

impl TokenHash {
    /// Hashes `token`.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Wraps raw hash bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash {
        TokenHash(bytes)
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters (the stored form).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the stored form (hex, either case).
    pub fn from_hex(s: &str) -> Result<TokenHash, TokenHashError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| TokenHashError)?;
        Ok(TokenHash(bytes))
    }

    /// Compares two hashes in constant time.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// Hashes `token` (same as [`TokenHash::of`]).
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash::of(token)
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for TokenHash {}

impl Hash for TokenHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}
