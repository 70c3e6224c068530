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

/// Most 32-bit limbs [`encode`] works with (inputs up to 64 bytes).
const MAX_LIMBS: usize = 16;

/// 62^5: five digits per long division, and still below 2^32.
const FIVE_DIGITS: u64 = 62 * 62 * 62 * 62 * 62;

/// Encodes `bytes` (a big-endian number) as exactly `WIDTH` digits, left-padded with `0`.
///
/// Callers pick `WIDTH` so that every `N`-byte value fits (62^WIDTH ≥ 256^N); this is
/// checked by a unit test for every width the crate uses. `N` is at most 64.
pub(crate) fn encode<const N: usize, const WIDTH: usize>(bytes: &[u8; N]) -> String {
    // The number as big-endian 32-bit limbs (leading zero bytes pad the first), divided by
    // 62^5 per pass: each pass yields five digits from one division per limb, instead of
    // one digit per division per byte.
    let count = N.div_ceil(4);
    assert!(count <= MAX_LIMBS, "base62::encode takes at most 64 bytes");
    let pad = count * 4 - N;
    let mut limbs = [0u32; MAX_LIMBS];
    let limbs = &mut limbs[..count];
    for (i, byte) in bytes.iter().enumerate() {
        let pos = i + pad;
        limbs[pos / 4] |= u32::from(*byte) << (8 * (3 - pos % 4));
    }
    let mut digits = [b'0'; WIDTH];
    let mut slot = WIDTH;
    while slot > 0 {
        let mut remainder: u64 = 0;
        for limb in limbs.iter_mut() {
            let acc = (remainder << 32) | u64::from(*limb);
            // acc < 62^5 · 2^32, so the quotient fits in 32 bits.
            *limb = (acc / FIVE_DIGITS) as u32;
            remainder = acc % FIVE_DIGITS;
        }
        for _ in 0..5 {
            if slot == 0 {
                break;
            }
            slot -= 1;
            digits[slot] = ALPHABET[(remainder % 62) as usize];
            remainder /= 62;
        }
        debug_assert!(slot > 0 || remainder == 0, "WIDTH too small for N bytes");
    }
    debug_assert!(limbs.iter().all(|&l| l == 0), "WIDTH too small for N bytes");
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
