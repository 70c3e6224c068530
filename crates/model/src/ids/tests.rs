use super::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: u64 = 1_757_000_000; // 2025-09-04

#[test]
fn id_has_prefix_and_27_char_body() {
    let mut rng = StdRng::seed_from_u64(1);
    for prefix in IdPrefix::ALL {
        let id = new_id(prefix, NOW, &mut rng);
        let body = parse_id(&id, prefix).unwrap();
        assert_eq!(body.len(), ID_BODY_LEN);
        assert_eq!(id, format!("{}_{body}", prefix.as_str()));
        assert_eq!(id_body_unix_secs(body).unwrap(), NOW);
    }
}

#[test]
fn prefix_spellings_match_ngrok() {
    let spelled: Vec<_> = IdPrefix::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        spelled,
        [
            "cr", "ak", "ts", "tn", "ep", "service", "rd", "ra", "ed", "esb", "ev", "ipp", "ipr",
            "ipx"
        ]
    );
}

#[test]
fn accepts_ngrok_issued_ids() {
    assert_eq!(
        parse_id("cr_32ELEkz2jOTMtPWtYLYm5yxBjvW", IdPrefix::Credential),
        Ok("32ELEkz2jOTMtPWtYLYm5yxBjvW")
    );
    // The bodies of ngrok's documented examples decode to their `created_at` exactly,
    // which confirms the KSUID layout: cr_ at 2025-09-04T10:11:15Z, service_ at 10:11:43Z.
    assert_eq!(
        id_body_unix_secs("32ELEkz2jOTMtPWtYLYm5yxBjvW"),
        Ok(1_756_980_675)
    );
    assert_eq!(
        id_body_unix_secs("32ELIFubEAAGUeRtreNW6kr94Od"),
        Ok(1_756_980_703)
    );
}

#[test]
fn rejects_malformed_ids() {
    let body = "32ELEkz2jOTMtPWtYLYm5yxBjvW";
    let wrong_prefix = IdError::WrongPrefix {
        expected: IdPrefix::Credential,
    };
    assert_eq!(
        parse_id(&format!("ak_{body}"), IdPrefix::Credential),
        Err(wrong_prefix.clone())
    );
    assert_eq!(
        parse_id(&format!("cr{body}"), IdPrefix::Credential),
        Err(wrong_prefix.clone())
    );
    assert_eq!(
        parse_id(&format!("crx_{body}"), IdPrefix::Credential),
        Err(wrong_prefix)
    );
    assert_eq!(
        parse_id("cr_32ELEkz2jOTMtPWtYLYm5yxBjv", IdPrefix::Credential),
        Err(IdError::BadLength { len: 26 })
    );
    assert_eq!(
        parse_id("cr_32ELEkz2jOTMtPWtYLYm5yxBj-W", IdPrefix::Credential),
        Err(IdError::BadCharacter)
    );
    assert_eq!(
        parse_id("cr_zzzzzzzzzzzzzzzzzzzzzzzzzzz", IdPrefix::Credential),
        Err(IdError::OutOfRange)
    );
    // "service" must not be confused with a shorter prefix.
    assert!(parse_id(&format!("service_{body}"), IdPrefix::ServiceUser).is_ok());
    assert!(check_id_body(body).is_ok());
}

#[test]
fn times_outside_the_32_bit_range_clamp() {
    let mut rng = StdRng::seed_from_u64(2);
    let early = new_id_body(0, &mut rng);
    assert_eq!(id_body_unix_secs(&early).unwrap(), ID_EPOCH_UNIX_SECS);
    let late = new_id_body(u64::MAX, &mut rng);
    assert_eq!(
        id_body_unix_secs(&late).unwrap(),
        ID_EPOCH_UNIX_SECS + u64::from(u32::MAX)
    );
}

proptest! {
    #[test]
    fn later_seconds_sort_later(t1 in ID_EPOCH_UNIX_SECS..ID_EPOCH_UNIX_SECS + u64::from(u32::MAX),
                                dt in 1u64..1_000_000, seed in any::<u64>()) {
        let t2 = (t1 + dt).min(ID_EPOCH_UNIX_SECS + u64::from(u32::MAX));
        prop_assume!(t2 > t1);
        let mut rng = StdRng::seed_from_u64(seed);
        let a = new_id(IdPrefix::Event, t1, &mut rng);
        let b = new_id(IdPrefix::Event, t2, &mut rng);
        prop_assert!(a < b, "{a} !< {b}");
    }

    #[test]
    fn new_ids_parse_and_keep_their_time(t in any::<u32>(), seed in any::<u64>()) {
        let now = ID_EPOCH_UNIX_SECS + u64::from(t);
        let mut rng = StdRng::seed_from_u64(seed);
        let id = new_id(IdPrefix::Tunnel, now, &mut rng);
        let body = parse_id(&id, IdPrefix::Tunnel).unwrap();
        prop_assert_eq!(id_body_unix_secs(body).unwrap(), now);
    }
}
