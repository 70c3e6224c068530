use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;

fn sa(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The v2 header of the spec's layout, written out by hand.
fn v2_tcp4_vector() -> Vec<u8> {
    let mut v = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
        0x21, // version 2, PROXY
        0x11, // AF_INET, STREAM
        0x00, 0x0C, // 12 bytes of addresses
    ];
    v.extend_from_slice(&[192, 168, 0, 1]); // source
    v.extend_from_slice(&[192, 168, 0, 11]); // destination
    v.extend_from_slice(&[0xDC, 0x04]); // 56324
    v.extend_from_slice(&[0x01, 0xBB]); // 443
    v
}

fn v2_tcp6_vector() -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]); // PROXY, AF_INET6 STREAM, 36 bytes
    v.extend_from_slice(&[
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ]);
    v.extend_from_slice(&[
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    ]);
    v.extend_from_slice(&[0x04, 0xD2]); // 1234
    v.extend_from_slice(&[0x00, 0x50]); // 80
    v
}

#[test]
fn v1_ipv4_matches_the_spec_example() {
    assert_eq!(
        v1(sa("192.168.0.1:56324"), sa("192.168.0.11:443")),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
}

#[test]
fn v1_ipv6() {
    assert_eq!(
        v1(sa("[2001:db8::1]:1234"), sa("[2001:db8::2]:80")),
        b"PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n"
    );
    let worst = v1(
        sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
        sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
    );
    assert_eq!(worst.len(), 104);
    assert!(worst.len() <= V1_MAX_LEN);
}

#[test]
fn mixed_families_are_unified() {
    // IPv4-mapped IPv6 on both sides becomes IPv4.
    assert_eq!(
        v1(sa("[::ffff:10.0.0.1]:1"), sa("[::ffff:10.0.0.2]:2")),
        b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n"
    );
    // A real mix is expressed in IPv6.
    assert_eq!(
        v1(sa("10.0.0.1:1"), sa("[2001:db8::2]:2")),
        b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 1 2\r\n"
    );
    let header = v2(sa("10.0.0.1:1"), sa("[2001:db8::2]:2"));
    assert_eq!(header[13], 0x21);
    let (parsed, _) = parse(&header).unwrap().unwrap();
    assert_eq!(parsed.addrs.unwrap().source, sa("[::ffff:10.0.0.1]:1"));
}

#[test]
fn v2_vectors() {
    assert_eq!(
        v2(sa("192.168.0.1:56324"), sa("192.168.0.11:443")),
        v2_tcp4_vector()
    );
    assert_eq!(
        v2(sa("[2001:db8::1]:1234"), sa("[2001:db8::2]:80")),
        v2_tcp6_vector()
    );
}

#[test]
fn header_by_version() {
    let (s, d) = (sa("1.2.3.4:5"), sa("6.7.8.9:10"));
    assert_eq!(header(0, s, d), None);
    assert_eq!(header(1, s, d), Some(v1(s, d)));
    assert_eq!(header(2, s, d), Some(v2(s, d)));
    assert_eq!(header(3, s, d), None);
}

#[test]
fn parse_v1_and_v2() {
    let cases = [
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
            1,
            Some(("192.168.0.1:56324", "192.168.0.11:443")),
        ),
        (
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n".to_vec(),
            1,
            Some(("[2001:db8::1]:1234", "[2001:db8::2]:80")),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), 1, None),
        (
            v2_tcp4_vector(),
            2,
            Some(("192.168.0.1:56324", "192.168.0.11:443")),
        ),
        (
            v2_tcp6_vector(),
            2,
            Some(("[2001:db8::1]:1234", "[2001:db8::2]:80")),
        ),
    ];
    for (bytes, version, addrs) in cases {
        let mut stream = bytes.clone();
        stream.extend_from_slice(b"payload");
        for cut in 0..bytes.len() {
            assert_eq!(parse(&stream[..cut]), Ok(None), "{bytes:?} cut at {cut}");
        }
        let (header, used) = parse(&stream).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(header.version, version);
        assert_eq!(
            header.addrs,
            addrs.map(|(s, d)| Addrs {
                source: sa(s),
                destination: sa(d)
            })
        );
    }
}

#[test]
fn parse_v1_longest_unknown() {
    let line = format!(
        "PROXY UNKNOWN {0} {0} 65535 65535\r\n",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    );
    assert_eq!(line.len(), V1_MAX_LEN);
    let (header, used) = parse(line.as_bytes()).unwrap().unwrap();
    assert_eq!((header.addrs, used), (None, V1_MAX_LEN));
}

#[test]
fn parse_v1_too_long() {
    let no_newline = [&b"PROXY "[..], &[b'x'; 200]].concat();
    assert_eq!(parse(&no_newline[..V1_MAX_LEN - 1]), Ok(None));
    assert_eq!(
        parse(&no_newline[..V1_MAX_LEN]),
        Err(ProxyProtocolError::TooLarge)
    );
}

#[test]
fn parse_v2_local_and_tlvs() {
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    assert_eq!(
        parse(&local),
        Ok(Some((
            Header {
                version: 2,
                addrs: None
            },
            16
        )))
    );
    // TLVs after the address block are skipped.
    let mut with_tlv = v2_tcp4_vector();
    with_tlv[15] = 12 + 5;
    with_tlv.extend_from_slice(&[0x04, 0x00, 0x02, 0xAB, 0xCD]); // PP2_TYPE_NOOP
    let (header, used) = parse(&with_tlv).unwrap().unwrap();
    assert_eq!(used, with_tlv.len());
    assert!(header.addrs.is_some());
}

#[test]
fn parse_v2_bounds() {
    let mut big = V2_SIGNATURE.to_vec();
    big.extend_from_slice(&[0x21, 0x11]);
    big.extend_from_slice(&((MAX_V2_LEN - 16 + 1) as u16).to_be_bytes());
    assert_eq!(parse(&big), Err(ProxyProtocolError::TooLarge));
    let mut at_limit = V2_SIGNATURE.to_vec();
    at_limit.extend_from_slice(&[0x21, 0x11]);
    at_limit.extend_from_slice(&((MAX_V2_LEN - 16) as u16).to_be_bytes());
    at_limit.resize(MAX_V2_LEN, 0);
    assert_eq!(parse(&at_limit).unwrap().unwrap().1, MAX_V2_LEN);
}

#[test]
fn parse_rejects() {
    use ProxyProtocolError::*;
    let short_v4 = {
        let mut v = v2_tcp4_vector();
        v[15] = 4;
        v.truncate(20);
        v
    };
    let bad_version = {
        let mut v = v2_tcp4_vector();
        v[12] = 0x11;
        v
    };
    let bad_command = {
        let mut v = v2_tcp4_vector();
        v[12] = 0x22;
        v
    };
    let cases: Vec<(Vec<u8>, ProxyProtocolError)> = vec![
        (b"GET / HTTP/1.1\r\n".to_vec(), NotProxyProtocol),
        (b"PROXX".to_vec(), NotProxyProtocol),
        (b"\r\n\r\n\0\r\nQUIX".to_vec(), NotProxyProtocol),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".to_vec(),
            Malformed("line must end with CRLF"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec(),
            Malformed("bad v1 fields"),
        ),
        (
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            Malformed("bad v1 fields"),
        ),
        (
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            Malformed("bad v1 fields"),
        ),
        (
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n".to_vec(),
            Malformed("bad address"),
        ),
        (
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n".to_vec(),
            Malformed("bad address"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n".to_vec(),
            Malformed("bad port"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n".to_vec(),
            Malformed("bad port"),
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n".to_vec(),
            Malformed("bad port"),
        ),
        (short_v4, Malformed("short IPv4 block")),
        (bad_version, Malformed("version must be 2")),
        (bad_command, Malformed("unknown command")),
    ];
    for (bytes, err) in cases {
        assert_eq!(
            parse(&bytes),
            Err(err),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

proptest! {
    #[test]
    fn build_then_parse_roundtrips(src in arb_addr(), dst in arb_addr(), version in 1u8..=2) {
        let bytes = header(version, src, dst).unwrap();
        let (parsed, used) = parse(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(parsed.version, version);
        let addrs = parsed.addrs.unwrap();
        let (s, d) = same_family(src, dst);
        prop_assert_eq!((addrs.source, addrs.destination), (s, d));
        // Canonical forms compare equal to the originals.
        let canon = |a: SocketAddr| match a.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, |v4| SocketAddr::from((v4, a.port()))),
            IpAddr::V4(_) => a,
        };
        prop_assert_eq!(canon(addrs.source), canon(src));
        prop_assert_eq!(canon(addrs.destination), canon(dst));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn signature_prefixed_garbage_never_panics(
        v2 in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&tail);
        if let Ok(Some((_, used))) = parse(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }
}
