use super::*;
use proptest::prelude::*;

#[test]
fn widths_used_by_the_crate_fit_every_value() {
    // 62^27 > 2^160 (ids) and 62^43 > 2^256 (token secrets).
    assert_eq!(encode::<20, 27>(&[0xff; 20]), "aWgEPTl1tmebfsQzFP4bxwgy80V");
    assert_eq!(encode::<32, 43>(&[0xff; 32]).len(), 43);
    assert_eq!(
        decode::<20>("aWgEPTl1tmebfsQzFP4bxwgy80V"),
        Some([0xff; 20])
    );
    // One past the maximum does not fit.
    assert_eq!(decode::<20>("aWgEPTl1tmebfsQzFP4bxwgy80W"), None);
}

#[test]
fn zero_is_all_zero_digits() {
    assert_eq!(encode::<20, 27>(&[0; 20]), "0".repeat(27));
    assert_eq!(decode::<20>(&"0".repeat(27)), Some([0; 20]));
}

#[test]
fn rejects_non_digits() {
    assert_eq!(decode::<4>("12-4"), None);
    assert_eq!(decode::<4>("é"), None);
    assert!(!is_digit(b'_'));
}

proptest! {
    #[test]
    fn roundtrip(bytes in any::<[u8; 20]>()) {
        let s = encode::<20, 27>(&bytes);
        prop_assert_eq!(s.len(), 27);
        prop_assert_eq!(decode::<20>(&s), Some(bytes));
    }

    #[test]
    fn encoding_preserves_order(a in any::<[u8; 20]>(), b in any::<[u8; 20]>()) {
        prop_assert_eq!(a.cmp(&b), encode::<20, 27>(&a).cmp(&encode::<20, 27>(&b)));
    }
}

/// The reference: one digit per long division over the bytes.
fn encode_bytewise<const N: usize, const WIDTH: usize>(bytes: &[u8; N]) -> String {
    let mut number = *bytes;
    let mut digits = [b'0'; WIDTH];
    for slot in digits.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

proptest! {
    #[test]
    fn limb_encoding_matches_bytewise_division(
        id in any::<[u8; 20]>(),
        secret in any::<[u8; 32]>(),
        odd in any::<[u8; 7]>(),
    ) {
        prop_assert_eq!(encode::<20, 27>(&id), encode_bytewise::<20, 27>(&id));
        prop_assert_eq!(encode::<32, 43>(&secret), encode_bytewise::<32, 43>(&secret));
        prop_assert_eq!(encode::<7, 10>(&odd), encode_bytewise::<7, 10>(&odd));
    }
}
