use super::*;
use proptest::prelude::*;

fn acl(rules: &[&str]) -> Acl {
    Acl::parse(rules).unwrap()
}

fn host(s: &str) -> HostName {
    HostName::parse(s).unwrap()
}

fn pattern(s: &str) -> DomainPattern {
    DomainPattern::parse(s).unwrap()
}

#[test]
fn parses_every_documented_form() {
    let cases = [
        ("*", "*"),
        ("bind:*", "*"),
        ("bind:foo.ngrok.app", "bind:foo.ngrok.app"),
        (
            "bind:132.devices.company.com",
            "bind:132.devices.company.com",
        ),
        ("bind:*.Example.com", "bind:*.example.com"),
        ("bind:*.gateway1.internal", "bind:*.gateway1.internal"),
        ("bind:1.tcp.ngrok.io:20002", "bind:1.tcp.ngrok.io:20002"),
        ("bind:[::1]:22", "bind:[::1]:22"),
        ("bind:10.0.0.1:8022", "bind:10.0.0.1:8022"),
        ("bind:foo=bar", "bind:foo=bar"),
        ("bind:app=*", "bind:app=*"),
        ("bind:*=example", "bind:*=example"),
    ];
    for (input, canonical) in cases {
        let rule = AclRule::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(rule.to_string(), canonical);
    }
}

#[test]
fn rejects_invalid_rules_with_err_ngrok_600() {
    for bad in [
        "",
        "foo.com",
        "BIND:foo.com",
        "bind:",
        "bind: foo.com",
        "bind:foo_bar.com",
        "bind:a.*.com",
        "bind:host:0",
        "bind:host:65536",
        "bind:host:",
        "bind:host:+80",
        "bind:[not-v6]:80",
        "bind:=v",
        "bind:k=",
        "bind:k=v w",
        "bind:k=v:1",
    ] {
        let err = AclRule::parse(bad).expect_err(bad);
        assert_eq!(err.code(), "ERR_NGROK_600");
        let text = err.to_string();
        assert!(text.starts_with("ERR_NGROK_600"), "{text}");
        assert!(text.contains("domain, address, or label"), "{text}");
    }
}

#[test]
fn rule_length_and_count_limits() {
    let long = format!("bind:{}", "a".repeat(MAX_ACL_RULE_LEN));
    let err = AclRule::parse(&long).unwrap_err();
    match &err {
        AclError::InvalidRule { rule, .. } => assert!(rule.len() <= 80),
        other => panic!("{other:?}"),
    }
    let many = vec!["bind:a.com"; MAX_ACL_RULES];
    assert_eq!(Acl::parse(&many).unwrap().rules().len(), MAX_ACL_RULES);
    let too_many = vec!["bind:a.com"; MAX_ACL_RULES + 1];
    assert_eq!(
        Acl::parse(&too_many),
        Err(AclError::TooManyRules {
            count: MAX_ACL_RULES + 1
        })
    );
}

#[test]
fn empty_and_star_are_unrestricted() {
    for a in [acl(&[]), acl(&["*"]), acl(&["bind:a.com", "bind:*"])] {
        assert!(a.is_unrestricted());
        assert!(a.permits_host(&host("anything.example")));
        assert!(a.permits_domain(&pattern("*.example")));
        assert!(a.permits_addr("1.tcp.example:20000"));
        assert!(a.permits_addr("not an address"));
        assert!(a.permits_random_addr());
        assert!(a.permits_label("edge", "edghts_1"));
    }
}

#[test]
fn wildcard_domain_rule() {
    let a = acl(&["bind:*.factory.example.com"]);
    assert!(a.permits_host(&host("dev1.factory.example.com")));
    assert!(a.permits_host(&host("a.dev1.factory.example.com")));
    assert!(!a.permits_host(&host("factory.example.com")));
    assert!(!a.permits_host(&host("other.example.com")));
    assert!(a.permits_domain(&pattern("*.factory.example.com")));
    assert!(a.permits_domain(&pattern("*.line1.factory.example.com")));
    assert!(!a.permits_domain(&pattern("*.example.com")));
    assert!(!a.permits_random_addr());
    assert!(!a.permits_addr("dev1.factory.example.com:22"));
    assert!(!a.permits_label("k", "v"));
}

#[test]
fn exact_domain_rule() {
    let a = acl(&["bind:132.devices.company.com"]);
    assert!(a.permits_host(&host("132.Devices.company.com.")));
    assert!(!a.permits_host(&host("x.132.devices.company.com")));
    assert!(!a.permits_domain(&pattern("*.132.devices.company.com")));
}

#[test]
fn address_rule() {
    let a = acl(&["bind:1.tcp.ngrok.io:20002", "bind:[::1]:22"]);
    assert!(a.permits_addr("1.tcp.ngrok.io:20002"));
    assert!(a.permits_addr("1.TCP.ngrok.io:20002"));
    assert!(a.permits_addr("[0:0:0:0:0:0:0:1]:22"));
    assert!(!a.permits_addr("1.tcp.ngrok.io:20003"));
    assert!(!a.permits_addr("garbage"));
    assert!(!a.permits_random_addr());
    assert!(!a.permits_host(&host("1.tcp.ngrok.io")));
}

#[test]
fn label_rules() {
    let a = acl(&["bind:app=*", "bind:*=example", "bind:env=prod-*"]);
    assert!(a.permits_label("app", "anything"));
    assert!(a.permits_label("whatever", "example"));
    assert!(a.permits_label("env", "prod-eu"));
    assert!(!a.permits_label("env", "dev"));
    assert!(!a.permits_label("App", "x"));
}

#[test]
fn glob() {
    assert!(glob_matches("*", ""));
    assert!(glob_matches("a*b*c", "aXXbYYc"));
    assert!(glob_matches("a*b*c", "abc"));
    assert!(!glob_matches("a*b*c", "acb"));
    assert!(glob_matches("*ab", "aab"));
    assert!(!glob_matches("ab", "abc"));
    assert!(glob_matches("**", "x"));
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?"
}

fn host_name() -> impl Strategy<Value = HostName> {
    prop::collection::vec(label(), 1..5).prop_map(|l| host(&l.join(".")))
}

fn rule() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        host_name().prop_map(|h| format!("bind:{h}")),
        host_name().prop_map(|h| format!("bind:*.{h}")),
        (host_name(), 1u16..).prop_map(|(h, p)| format!("bind:{h}:{p}")),
        ("[a-z*]{1,4}", "[a-z*]{1,4}").prop_map(|(k, v)| format!("bind:{k}={v}")),
    ]
}

proptest! {
    #[test]
    fn canonical_form_roundtrips(r in rule()) {
        let parsed = AclRule::parse(&r).unwrap();
        prop_assert_eq!(AclRule::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn rules_combine_with_or(
        a in prop::collection::vec(rule(), 1..4),
        b in prop::collection::vec(rule(), 1..4),
        h in host_name(),
        port in 1u16..,
        k in "[a-z]{1,3}",
        v in "[a-z]{1,3}",
    ) {
        let (acl_a, acl_b) = (Acl::parse(&a).unwrap(), Acl::parse(&b).unwrap());
        let both = Acl::parse(a.iter().chain(&b)).unwrap();
        let addr = format!("{h}:{port}");
        prop_assert_eq!(both.permits_host(&h), acl_a.permits_host(&h) || acl_b.permits_host(&h));
        prop_assert_eq!(both.permits_addr(&addr), acl_a.permits_addr(&addr) || acl_b.permits_addr(&addr));
        prop_assert_eq!(both.permits_label(&k, &v), acl_a.permits_label(&k, &v) || acl_b.permits_label(&k, &v));
        prop_assert_eq!(both.permits_random_addr(), acl_a.permits_random_addr() || acl_b.permits_random_addr());
    }

    #[test]
    fn random_addr_only_when_unrestricted(rules in prop::collection::vec(rule(), 0..4)) {
        let a = Acl::parse(&rules).unwrap();
        let expected = rules.is_empty() || rules.iter().any(|r| r == "*");
        prop_assert_eq!(a.permits_random_addr(), expected);
    }

    #[test]
    fn wildcard_rule_permits_exactly_strict_subdomains(suffix in host_name(), h in host_name()) {
        let a = Acl::parse([format!("bind:*.{suffix}")]).unwrap();
        prop_assert_eq!(a.permits_host(&h), h.is_strict_subdomain_of(&suffix));
        let below = host(&format!("{h}.{suffix}"));
        prop_assert!(a.permits_host(&below));
        let wildcard = DomainPattern::Wildcard { suffix: suffix.clone() };
        prop_assert!(a.permits_domain(&wildcard));
        prop_assert!(!a.permits_host(&suffix));
    }

    #[test]
    fn permitted_wildcard_implies_its_names_permitted(
        rules in prop::collection::vec(rule(), 1..4),
        suffix in host_name(),
        sub in label(),
    ) {
        let a = Acl::parse(&rules).unwrap();
        if a.permits_domain(&DomainPattern::Wildcard { suffix: suffix.clone() }) {
            let below = host(&format!("{sub}.{suffix}"));
            prop_assert!(a.permits_host(&below));
        }
    }

    #[test]
    fn glob_without_star_is_equality(p in "[a-c]{0,5}", s in "[a-c]{0,5}") {
        prop_assert_eq!(glob_matches(&p, &s), p == s);
        let (prefix_glob, prefixed) = (format!("{p}*"), format!("{p}{s}"));
        prop_assert!(glob_matches(&prefix_glob, &prefixed));
        let (suffix_glob, suffixed) = (format!("*{p}"), format!("{s}{p}"));
        prop_assert!(glob_matches(&suffix_glob, &suffixed));
    }
}
