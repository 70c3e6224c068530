//! Fixed-width base62 encoding of big-endian byte strings.
//!
//! Owns the digit alphabet shared by ids and tokens. The alphabet is in ASCII order
//! (`0-9A-Za-z`), so for a fixed width the lexicographic order of encodings equals the
//! numeric order of the bytes — which is what makes ids sortable by time. Crate-private:
//! callers see ids and tokens, never raw base62.

#[cfg(test)]
mod tests;

/// The 62 digits, in ASCII (and therefore sort) order.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Returns the value of one base62 digit, or `None` for any other byte.
fn digit_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'Z' => Some(b - b'A' + 10),
        b'a'..=b'z' => Some(b - b'a' + 36),
        _ => None,
    }
}

/// Whether `b` is a base62 digit.
pub(crate) fn is_digit(b: u8) -> bool {
    digit_value(b).is_some()
}

/// Encodes `bytes` (a big-endian number) as exactly `WIDTH` digits, left-padded with `0`.
///
/// Callers pick `WIDTH` so that every `N`-byte value fits (62^WIDTH ≥ 256^N); this is
/// checked by a unit test for every width the crate uses.
pub(crate) fn encode<const N: usize, const WIDTH: usize>(bytes: &[u8; N]) -> String {
    let mut number = *bytes;
    let mut digits = [b'0'; WIDTH];
    for slot in digits.iter_mut().rev() {
        // Long division of the base-256 number by 62; the remainder is the next digit.
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    debug_assert!(
        number.iter().all(|&b| b == 0),
        "WIDTH too small for N bytes"
    );
    // Every byte comes from ALPHABET, so this is ASCII.
    digits.iter().map(|&b| char::from(b)).collect()
}

/// Decodes exactly `N` big-endian bytes from a base62 string.
///
/// Returns `None` when `s` contains a non-digit or its value does not fit in `N` bytes.
/// Width is the caller's concern.
pub(crate) fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut number = [0u8; N];
    for b in s.bytes() {
        let mut carry = u32::from(digit_value(b)?);
        // number = number * 62 + digit, least significant byte last.
        for byte in number.iter_mut().rev() {
            let acc = u32::from(*byte) * 62 + carry;
            *byte = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(number)
}
