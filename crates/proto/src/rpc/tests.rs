use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const BODY: &str = r#"{"Version":["3","2"],"ClientId":"","Extra":{"AuthToken":"a}b{c\"d\\","Nested":[{"x":[1,-2.5e3,true,false,null]}],"Uni":"\u00e9\ud83d\ude00 é😀"}}"#;

fn expected() -> Value {
    serde_json::from_str(BODY).unwrap()
}

#[test]
fn whole_body_in_one_push() {
    let mut r = RpcReader::new();
    assert_eq!(r.push(BODY.as_bytes()).unwrap(), Some(expected()));
    assert!(r.is_complete());
}

#[test]
fn one_byte_per_push() {
    let mut r = RpcReader::new();
    let bytes = BODY.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        let got = r.push(std::slice::from_ref(b)).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(got, None, "complete too early at {i}");
        } else {
            assert_eq!(got, Some(expected()));
        }
    }
}

#[test]
fn trailing_whitespace_is_fine() {
    let mut r = RpcReader::new();
    let body = format!(" \r\n{BODY}\n");
    assert_eq!(r.push(body.as_bytes()).unwrap(), Some(expected()));
    assert_eq!(r.push(b"\n \t").unwrap(), None);
    // Newline in a later frame.
    let mut r = RpcReader::new();
    assert!(r.push(BODY.as_bytes()).unwrap().is_some());
    assert_eq!(r.push(b"\n").unwrap(), None);
}

#[test]
fn trailing_data_is_an_error() {
    let mut r = RpcReader::new();
    let body = format!("{BODY}{{}}");
    assert!(matches!(
        r.push(body.as_bytes()),
        Err(ProtoError::TrailingData)
    ));
    let mut r = RpcReader::new();
    assert!(r.push(BODY.as_bytes()).unwrap().is_some());
    assert!(matches!(r.push(b"x"), Err(ProtoError::TrailingData)));
}

#[test]
fn top_level_must_be_an_object() {
    for body in [&b"[1]"[..], b"\"x\"", b"1", b"null", b" x"] {
        let mut r = RpcReader::new();
        assert!(
            matches!(r.push(body), Err(ProtoError::NotAnObject)),
            "{body:?}"
        );
    }
}

#[test]
fn syntax_errors_are_caught_early() {
    let cases: [(&[u8], usize); 6] = [
        (b"{]", 1),
        (b"{\"a\":[}", 6),
        (b"{x", 1),
        (b"{\"a\":\"\x01\"}", 6),
        (b"{\"a\":\"\\q\"}", 7),
        (b"{\"a\":\"\\u12g4\"}", 10),
    ];
    for (body, offset) in cases {
        let mut r = RpcReader::new();
        match r.push(body) {
            Err(ProtoError::Syntax { offset: got }) => assert_eq!(got, offset, "{body:?}"),
            other => panic!("{body:?}: {other:?}"),
        }
    }
    // Offsets count across pushes.
    let mut r = RpcReader::new();
    assert_eq!(r.push(b"{\"a\"").unwrap(), None);
    assert!(matches!(
        r.push(b":#"),
        Err(ProtoError::Syntax { offset: 5 })
    ));
}

#[test]
fn subtle_syntax_errors_fail_at_the_end() {
    let mut r = RpcReader::new();
    assert_eq!(r.push(b"{\"a\" 1").unwrap(), None);
    assert!(matches!(r.push(b"}"), Err(ProtoError::Json(_))));
}

#[test]
fn typed_push() {
    let mut r = RpcReader::new();
    let unbind: crate::msg::Unbind = r
        .push_as(br#"{"Id":"ep_1","Extra":null}"#)
        .unwrap()
        .unwrap();
    assert_eq!(unbind.id, "ep_1");
    let mut r = RpcReader::new();
    let wrong = r.push_as::<crate::msg::Unbind>(br#"{"Id":5}"#);
    assert!(matches!(wrong, Err(ProtoError::Json(_))));
}

#[test]
fn limit_is_exact() {
    // Exactly MAX_RPC_BODY bytes parses; one more is TooLarge.
    let fill = MAX_RPC_BODY - br#"{"a":""}"#.len();
    let at_limit = format!(r#"{{"a":"{}"}}"#, "x".repeat(fill));
    assert_eq!(at_limit.len(), MAX_RPC_BODY);
    let mut r = RpcReader::new();
    assert!(r.push(at_limit.as_bytes()).unwrap().is_some());

    let over = format!(r#"{{"a":"{}"}}"#, "x".repeat(fill + 1));
    let mut r = RpcReader::new();
    assert!(matches!(
        r.push(over.as_bytes()),
        Err(ProtoError::TooLarge {
            limit: MAX_RPC_BODY
        })
    ));
    // Streamed: the error comes on the byte past the limit, with nothing buffered beyond it.
    let mut r = RpcReader::new();
    for (i, b) in over.as_bytes().iter().enumerate() {
        match r.push(std::slice::from_ref(b)) {
            Ok(None) => assert!(i < MAX_RPC_BODY),
            Err(ProtoError::TooLarge { .. }) => {
                assert_eq!(i, MAX_RPC_BODY);
                assert_eq!(r.buffered(), MAX_RPC_BODY);
                return;
            }
            other => panic!("at {i}: {other:?}"),
        }
    }
    panic!("limit never hit");
}

#[test]
fn depth_limit() {
    let nested = |depth: usize| {
        // depth counts the top-level object.
        format!(
            "{{\"a\":{}{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    let mut r = RpcReader::new();
    assert!(r.push(nested(MAX_RPC_DEPTH).as_bytes()).unwrap().is_some());
    let mut r = RpcReader::new();
    assert!(matches!(
        r.push(nested(MAX_RPC_DEPTH + 1).as_bytes()),
        Err(ProtoError::TooDeep {
            limit: MAX_RPC_DEPTH
        })
    ));
}

#[test]
fn full_size_body_byte_by_byte_is_linear() {
    // 64 KiB of many small keys, one byte per push. A reparse-per-byte reader would do ~2^31 byte
    // operations here; this one does ~2^16 and this test finishes in milliseconds.
    let mut body = String::from("{");
    let mut i = 0;
    while body.len() < MAX_RPC_BODY - 32 {
        body.push_str(&format!("\"k{i}\":{{\"v\":[{i},\"}}\"]}},"));
        i += 1;
    }
    body.push_str("\"end\":0}");
    assert!(body.len() <= MAX_RPC_BODY);
    let mut r = RpcReader::new();
    let mut result = None;
    for b in body.as_bytes() {
        if let Some(v) = r.push(std::slice::from_ref(b)).unwrap() {
            result = Some(v);
        }
    }
    assert_eq!(
        result.unwrap(),
        serde_json::from_str::<Value>(&body).unwrap()
    );
}

#[test]
fn responses_build_failures() {
    use crate::msg::{BindResp, UnbindResp};
    let resp = BindResp::failure("nope".into());
    assert_eq!(resp.error(), Some("nope"));
    assert_eq!(UnbindResp::default().error(), None);
    assert_eq!(
        serde_json::to_value(UnbindResp::failure("x".into())).unwrap(),
        json!({"Error": "x"})
    );
}

/// Arbitrary JSON values with awkward strings.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "(?s).{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "}",
            "{",
            "]",
            "\"",
            "\\",
            "\\\"}",
            "\u{1F600}",
            "\n\t"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("(?s).{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("(?s).{0,8}", arb_json(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Cuts `bytes` at the given (unsorted, possibly out of range) points.
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

proptest! {
    #[test]
    fn any_split_parses_the_same(
        value in arb_object(),
        pretty in any::<bool>(),
        newline in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        if newline {
            text.push('\n');
        }
        let whole: Value = serde_json::from_str(&text).unwrap();
        let mut r = RpcReader::with_limit(usize::MAX);
        let mut got = None;
        for chunk in split(text.as_bytes(), &cuts) {
            if let Some(v) = r.push(chunk).unwrap() {
                prop_assert!(got.is_none());
                got = Some(v);
            }
        }
        prop_assert_eq!(got, Some(whole));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        limit in 0usize..512,
    ) {
        let mut r = RpcReader::with_limit(limit);
        for chunk in &chunks {
            if r.push(chunk).is_err() {
                break;
            }
            prop_assert!(r.buffered() <= limit);
        }
    }

    #[test]
    fn json_like_bytes_never_panic(
        body in "[{}\\[\\]\",:\\\\a-z0-9 ]{0,64}",
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut r = RpcReader::new();
        for chunk in split(body.as_bytes(), &cuts) {
            if r.push(chunk).is_err() {
                break;
            }
        }
    }

    #[test]
    fn over_limit_is_too_large(
        limit in 2usize..256,
        extra in 1usize..64,
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        // A valid object one or more bytes longer than the limit.
        let text = format!(r#"{{"a":"{}"}}"#, "x".repeat(limit + extra));
        let mut r = RpcReader::with_limit(limit);
        let mut outcome = Ok(None);
        for chunk in split(text.as_bytes(), &cuts) {
            outcome = r.push(chunk);
            if outcome.is_err() {
                break;
            }
        }
        prop_assert!(matches!(outcome, Err(ProtoError::TooLarge { .. })), "{:?}", outcome);
    }
}
