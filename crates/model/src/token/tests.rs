use super::*;
use crate::ids::{IdPrefix, new_id, parse_id};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn generated_token_has_ngrok_shape() {
    let mut rng = StdRng::seed_from_u64(7);
    let id = new_id(IdPrefix::Credential, 1_757_000_000, &mut rng);
    let body = parse_id(&id, IdPrefix::Credential).unwrap();
    let token = generate_token(body, &mut rng);
    assert_eq!(token.len(), GENERATED_TOKEN_LEN);
    let (first, secret) = token.split_once('_').unwrap();
    assert_eq!(first, body);
    assert_eq!(secret.len(), SECRET_LEN);
    assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(looks_like_token(&token));
}

#[test]
fn tokens_differ() {
    let mut rng = StdRng::seed_from_u64(8);
    let body = "32ELEkz2jOTMtPWtYLYm5yxBjvW";
    assert_ne!(
        generate_token(body, &mut rng),
        generate_token(body, &mut rng)
    );
}

#[test]
fn shape_bounds() {
    assert_eq!(check_token_shape("1234567"), Err(TokenShapeError::TooShort));
    assert_eq!(check_token_shape("12345678"), Ok(()));
    assert_eq!(check_token_shape(&"x".repeat(MAX_TOKEN_LEN)), Ok(()));
    assert_eq!(
        check_token_shape(&"x".repeat(MAX_TOKEN_LEN + 1)),
        Err(TokenShapeError::TooLong)
    );
    for bad in [
        "abcd efgh",
        "abcd\tefgh",
        "abcdefgh\n",
        "abcdéfgh",
        "abc\0defgh",
    ] {
        assert_eq!(
            check_token_shape(bad),
            Err(TokenShapeError::BadCharacter),
            "{bad:?}"
        );
    }
    // ngrok's documented example and an operator-chosen token.
    assert!(looks_like_token(
        "32ELEkz2jOTMtPWtYLYm5yxBjvW_714PgnmX8vJX5wufhtV57"
    ));
    assert!(looks_like_token("my-fleet:token!2025"));
}

#[test]
fn hash_is_sha256_of_whole_token() {
    // echo -n abc | sha256sum
    assert_eq!(
        hash_token("abc").hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn hex_roundtrip_and_errors() {
    let h = hash_token("some-token-value");
    assert_eq!(TokenHash::from_hex(&h.hex()), Ok(h));
    assert_eq!(TokenHash::from_hex(&h.hex().to_uppercase()), Ok(h));
    assert_eq!(TokenHash::from_hex("abc"), Err(TokenHashError));
    assert_eq!(TokenHash::from_hex(&"g".repeat(64)), Err(TokenHashError));
    assert_eq!(TokenHash::from_bytes(*h.as_bytes()), h);
}

#[test]
fn debug_shows_only_a_hash_prefix() {
    let token = "32ELEkz2jOTMtPWtYLYm5yxBjvW_714PgnmX8vJX5wufhtV57";
    let h = hash_token(token);
    let shown = format!("{h:?}");
    assert!(!shown.contains(token));
    assert!(!shown.contains(&h.hex()));
    assert!(shown.starts_with("TokenHash("));
}

proptest! {
    #[test]
    fn ct_eq_agrees_with_byte_equality(a in "[ -~]{8,40}", b in "[ -~]{8,40}") {
        let (ha, hb) = (hash_token(&a), hash_token(&b));
        prop_assert_eq!(ha.ct_eq(&hb), a == b);
        prop_assert_eq!(ha == hb, a == b);
        prop_assert!(ha.ct_eq(&ha));
    }

    #[test]
    fn generated_tokens_always_look_like_tokens(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let body = crate::ids::new_id_body(1_757_000_000, &mut rng);
        prop_assert!(looks_like_token(&generate_token(&body, &mut rng)));
    }
}
