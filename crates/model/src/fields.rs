//! Limits on the free-text fields every resource carries (`description`, `metadata`).
//!
//! ngrok documents both limits in bytes (§1.6 of the surface notes); the API and the
//! store both check them here so the numbers live in one place.

#[cfg(test)]
mod tests;

/// Longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 255;
/// Longest `metadata`, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;

/// A field value over its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {len} bytes long; at most {max} bytes are allowed")]
pub struct FieldTooLong {
    /// The field's name as spelled in the API (`description`, `metadata`).
    pub field: &'static str,
    /// The value's length in bytes.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

/// Checks a `description` against [`MAX_DESCRIPTION_BYTES`].
pub fn check_description(s: &str) -> Result<(), FieldTooLong> {
    check("description", s, MAX_DESCRIPTION_BYTES)
}

/// Checks a `metadata` value against [`MAX_METADATA_BYTES`].
pub fn check_metadata(s: &str) -> Result<(), FieldTooLong> {
    check("metadata", s, MAX_METADATA_BYTES)
}

fn check(field: &'static str, s: &str, max: usize) -> Result<(), FieldTooLong> {
    if s.len() > max {
        return Err(FieldTooLong {
            field,
            len: s.len(),
            max,
        });
    }
    Ok(())
}
