use super::*;
use proptest::prelude::*;

fn host(s: &str) -> HostName {
    HostName::parse(s).unwrap()
}

fn pattern(s: &str) -> DomainPattern {
    DomainPattern::parse(s).unwrap()
}

#[test]
fn normalizes_case_and_trailing_dot() {
    assert_eq!(host("Foo.Example.COM.").as_str(), "foo.example.com");
    assert_eq!(host("localhost").as_str(), "localhost");
    assert_eq!(
        host("xn--bcher-kva.example").as_str(),
        "xn--bcher-kva.example"
    );
    assert_eq!(host("127.0.0.1").label_count(), 4);
}

#[test]
fn rejects_invalid_names() {
    let cases = [
        ("", HostError::Empty),
        (".", HostError::Empty),
        ("a..b", HostError::EmptyLabel),
        (".a", HostError::EmptyLabel),
        ("a.com..", HostError::EmptyLabel),
        ("under_score.com", HostError::BadCharacter('_')),
        ("a b.com", HostError::BadCharacter(' ')),
        ("a.com:80", HostError::BadCharacter(':')),
        ("bücher.de", HostError::BadCharacter('ü')),
        ("-a.com", HostError::HyphenAtLabelEdge),
        ("a-.com", HostError::HyphenAtLabelEdge),
        ("*.a.com", HostError::MisplacedWildcard),
        ("a.*.com", HostError::MisplacedWildcard),
    ];
    for (input, want) in cases {
        assert_eq!(HostName::parse(input), Err(want), "{input:?}");
    }
}

#[test]
fn length_limits() {
    let label63 = "a".repeat(MAX_LABEL_LEN);
    assert!(HostName::parse(&label63).is_ok());
    assert_eq!(
        HostName::parse(&"a".repeat(MAX_LABEL_LEN + 1)),
        Err(HostError::LabelTooLong)
    );
    // 4 labels of 63 + 3 dots = 255; trim to exactly 253.
    let long = format!("{label63}.{label63}.{label63}.{}", "a".repeat(61));
    assert_eq!(long.len(), MAX_HOST_LEN);
    assert!(HostName::parse(&long).is_ok());
    assert!(
        HostName::parse(&format!("{long}.")).is_ok(),
        "trailing dot is not counted"
    );
    assert_eq!(
        HostName::parse(&format!("a{long}")),
        Err(HostError::TooLong {
            len: MAX_HOST_LEN + 1
        })
    );
    // A wildcard pattern is bounded as a whole.
    let suffix = &long[2..];
    assert!(DomainPattern::parse(&format!("*.{suffix}")).is_ok());
    assert_eq!(
        DomainPattern::parse(&format!("*.a{suffix}")),
        Err(HostError::TooLong {
            len: MAX_HOST_LEN + 1
        })
    );
}

#[test]
fn pattern_parsing() {
    assert_eq!(
        pattern("*.A.Example.com"),
        DomainPattern::Wildcard {
            suffix: host("a.example.com")
        }
    );
    assert_eq!(
        pattern("a.example.com"),
        DomainPattern::Exact(host("a.example.com"))
    );
    assert_eq!(
        DomainPattern::parse("*"),
        Err(HostError::WildcardWithoutSuffix)
    );
    assert_eq!(
        DomainPattern::parse("*."),
        Err(HostError::WildcardWithoutSuffix)
    );
    assert_eq!(
        DomainPattern::parse("*.*.a.com"),
        Err(HostError::MisplacedWildcard)
    );
    assert_eq!(
        DomainPattern::parse("*a.com"),
        Err(HostError::MisplacedWildcard)
    );
    assert_eq!(
        DomainPattern::parse("a.*"),
        Err(HostError::MisplacedWildcard)
    );
    assert_eq!(pattern("*.a.com").to_string(), "*.a.com");
}

#[test]
fn wildcard_matches_any_depth_but_not_apex() {
    let w = pattern("*.a.example.com");
    assert!(w.matches(&host("x.a.example.com")));
    assert!(w.matches(&host("y.x.a.example.com")));
    assert!(!w.matches(&host("a.example.com")));
    assert!(!w.matches(&host("xa.example.com")));
    assert!(!w.matches(&host("example.com")));
}

#[test]
fn covers() {
    let w = pattern("*.a.com");
    assert!(w.covers(&w));
    assert!(w.covers(&pattern("*.b.a.com")));
    assert!(w.covers(&pattern("x.a.com")));
    assert!(!w.covers(&pattern("a.com")));
    assert!(!w.covers(&pattern("*.com")));
    assert!(!pattern("x.a.com").covers(&w));
    assert!(pattern("x.a.com").covers(&pattern("X.A.com")));
}

#[test]
fn specificity_orders_wildcards_and_exact_wins() {
    let h = host("x.b.c.d");
    let mut candidates = [
        pattern("*.d"),
        pattern("x.b.c.d"),
        pattern("*.b.c.d"),
        pattern("*.c.d"),
    ];
    candidates.sort_by_key(|p| std::cmp::Reverse(p.specificity()));
    let order: Vec<_> = candidates.iter().map(ToString::to_string).collect();
    assert_eq!(order, ["x.b.c.d", "*.b.c.d", "*.c.d", "*.d"]);
    assert!(candidates.iter().all(|p| p.matches(&h)));
}

#[test]
fn lookup_keys_most_specific_first() {
    let keys: Vec<_> = wildcard_lookup_keys(&host("a.b.c.d")).collect();
    assert_eq!(keys, ["*.b.c.d", "*.c.d", "*.d"]);
    assert_eq!(wildcard_lookup_keys(&host("localhost")).count(), 0);
}

#[test]
fn string_conversions_validate_and_normalize() {
    // serde goes through these (`try_from = "String"`, `into = "String"`).
    assert_eq!(
        DomainPattern::try_from("*.A.com".to_string()),
        Ok(pattern("*.a.com"))
    );
    assert_eq!(String::from(pattern("*.A.com")), "*.a.com");
    assert_eq!(
        HostName::try_from("a_b".to_string()),
        Err(HostError::BadCharacter('_'))
    );
    assert_eq!(String::from(host("A.b")), "a.b");
}

/// A valid label (1..=63, no edge hyphens), biased short to keep names readable.
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
}

fn host_name() -> impl Strategy<Value = HostName> {
    prop::collection::vec(label(), 1..6).prop_map(|labels| host(&labels.join(".")))
}

proptest! {
    #[test]
    fn normalization_is_idempotent(s in "[a-zA-Z0-9.*_-]{0,40}\\.?") {
        if let Ok(h) = HostName::parse(&s) {
            prop_assert_eq!(HostName::parse(h.as_str()), Ok(h.clone()));
        }
        if let Ok(p) = DomainPattern::parse(&s) {
            prop_assert_eq!(DomainPattern::parse(&p.to_string()), Ok(p.clone()));
        }
    }

    #[test]
    fn exact_matches_only_itself(a in host_name(), b in host_name()) {
        prop_assert_eq!(DomainPattern::Exact(a.clone()).matches(&b), a == b);
    }

    #[test]
    fn wildcard_match_implies_every_less_specific_wildcard_matches(h in host_name()) {
        let keys: Vec<String> = wildcard_lookup_keys(&h).collect();
        prop_assert_eq!(keys.len(), h.label_count() - 1);
        for (i, key) in keys.iter().enumerate() {
            let p = pattern(key);
            prop_assert!(p.matches(&h), "{} should match {}", key, h);
            // Each key is strictly less specific than the one before it.
            if i > 0 {
                prop_assert!(p.specificity() < pattern(&keys[i - 1]).specificity());
            }
            for less in &keys[i..] {
                prop_assert!(pattern(less).matches(&h));
                prop_assert!(pattern(less).covers(&p));
            }
        }
    }

    #[test]
    fn wildcard_never_matches_its_suffix_or_outside(suffix in host_name(), other in host_name()) {
        let w = DomainPattern::Wildcard { suffix: suffix.clone() };
        prop_assert!(!w.matches(&suffix));
        let below = host(&format!("{other}.{suffix}"));
        prop_assert!(w.matches(&below));
        prop_assert_eq!(w.matches(&other), other.is_strict_subdomain_of(&suffix));
    }

    #[test]
    fn covers_is_sound(
        a in host_name(),
        b_extra in prop::collection::vec(label(), 0..3),
        h_extra in prop::collection::vec(label(), 0..3),
        wa: bool,
        wb: bool,
    ) {
        // b is a or below it, h is b or below it, so `covers` and `matches` are often true.
        let under = |extra: &[String], base: &HostName| {
            let mut labels = extra.to_vec();
            labels.push(base.to_string());
            host(&labels.join("."))
        };
        let b = under(&b_extra, &a);
        let h = under(&h_extra, &b);
        let mk = |n: &HostName, w: bool| if w {
            DomainPattern::Wildcard { suffix: n.clone() }
        } else {
            DomainPattern::Exact(n.clone())
        };
        let (pa, pb) = (mk(&a, wa), mk(&b, wb));
        if pa.covers(&pb) && pb.matches(&h) {
            prop_assert!(pa.matches(&h));
        }
        // A wildcard covers every pattern strictly below its suffix.
        if wa && !b_extra.is_empty() {
            prop_assert!(pa.covers(&pb));
        }
    }
}
