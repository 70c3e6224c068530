use std::sync::{Arc, LazyLock};

use proptest::prelude::*;

use super::*;

/// The first flight of a real rustls client (a single ClientHello record).
fn rustls_client_hello(server_name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

static HELLO: LazyLock<Vec<u8>> = LazyLock::new(|| rustls_client_hello("Tunnel.Example.COM"));

/// Re-frames the handshake bytes of a single-record hello into records of `size` bytes.
fn refragment(hello: &[u8], size: usize) -> Vec<u8> {
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    let handshake = &hello[5..5 + len];
    let mut out = Vec::new();
    for chunk in handshake.chunks(size) {
        out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A minimal ClientHello record built by hand; `extensions` = None means no extensions block.
fn handmade(extensions: Option<&[u8]>) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    if let Some(ext) = extensions {
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(ext);
    }
    let mut hs = vec![HANDSHAKE_CLIENT_HELLO];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![CONTENT_HANDSHAKE, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// A server_name extension holding one entry of `name_type` with `name`.
fn sni_ext(name_type: u8, name: &[u8]) -> Vec<u8> {
    let mut entry = vec![name_type];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name);
    let mut data = (entry.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&entry);
    let mut ext = vec![0x00, 0x00];
    ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
    ext.extend_from_slice(&data);
    ext
}

#[test]
fn rustls_hello_with_sni() {
    assert_eq!(
        parse_sni(&HELLO),
        Ok(Some(Some("tunnel.example.com".to_owned())))
    );
}

#[test]
fn rustls_hello_to_an_ip_has_no_sni() {
    let hello = rustls_client_hello("127.0.0.1");
    assert_eq!(parse_sni(&hello), Ok(Some(None)));
}

#[test]
fn every_prefix_needs_more() {
    for cut in 0..HELLO.len() {
        assert_eq!(parse_sni(&HELLO[..cut]), Ok(None), "cut at {cut}");
    }
}

#[test]
fn bytes_after_the_hello_are_ignored() {
    let mut stream = HELLO.clone();
    stream.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0xAA]);
    assert_eq!(
        parse_sni(&stream),
        Ok(Some(Some("tunnel.example.com".to_owned())))
    );
}

#[test]
fn hello_split_across_records() {
    for size in [1000, 100, 37, 7] {
        let split = refragment(&HELLO, size);
        for cut in 0..split.len() {
            assert_eq!(
                parse_sni(&split[..cut]),
                Ok(None),
                "size {size} cut at {cut}"
            );
        }
        assert_eq!(
            parse_sni(&split),
            Ok(Some(Some("tunnel.example.com".to_owned()))),
            "size {size}"
        );
    }
}

#[test]
fn too_many_records() {
    // One handshake byte per record: past MAX_HELLO_RECORDS before the hello is complete.
    let split = refragment(&HELLO, 1);
    assert!(HELLO.len() - 5 > MAX_HELLO_RECORDS);
    assert_eq!(parse_sni(&split), Err(HelloError::TooLarge));
    // Exactly MAX_HELLO_RECORDS records is fine.
    let size = (HELLO.len() - 5).div_ceil(MAX_HELLO_RECORDS);
    let split = refragment(&HELLO, size);
    assert!(split.len() / (size + 5) <= MAX_HELLO_RECORDS);
    assert!(parse_sni(&split).unwrap().is_some());
}

#[test]
fn hello_over_the_size_bound() {
    // A handshake header announcing MAX_CLIENT_HELLO_LEN - 3 bytes of body: too large, before
    // any of the body arrives.
    let body_len = (MAX_CLIENT_HELLO_LEN - 3) as u32;
    let mut rec = vec![CONTENT_HANDSHAKE, 3, 1, 0x40, 0x00, HANDSHAKE_CLIENT_HELLO];
    rec.extend_from_slice(&body_len.to_be_bytes()[1..]);
    assert_eq!(parse_sni(&rec), Err(HelloError::TooLarge));
    // One byte less is within bounds (and incomplete).
    let body_len = (MAX_CLIENT_HELLO_LEN - 4) as u32;
    let mut rec = vec![CONTENT_HANDSHAKE, 3, 1, 0x40, 0x00, HANDSHAKE_CLIENT_HELLO];
    rec.extend_from_slice(&body_len.to_be_bytes()[1..]);
    assert_eq!(parse_sni(&rec), Ok(None));
}

#[test]
fn handmade_hellos() {
    assert_eq!(parse_sni(&handmade(None)), Ok(Some(None)));
    assert_eq!(parse_sni(&handmade(Some(&[]))), Ok(Some(None)));
    let sni = sni_ext(0, b"A.Example.org");
    assert_eq!(
        parse_sni(&handmade(Some(&sni))),
        Ok(Some(Some("a.example.org".into())))
    );
    // Another extension first, then SNI.
    let mut exts = vec![0x00, 0x0A, 0x00, 0x02, 0x00, 0x1D];
    exts.extend_from_slice(&sni);
    assert_eq!(
        parse_sni(&handmade(Some(&exts))),
        Ok(Some(Some("a.example.org".into())))
    );
    // Non-host name types are skipped.
    assert_eq!(
        parse_sni(&handmade(Some(&sni_ext(1, b"x")))),
        Ok(Some(None))
    );
}

#[test]
fn rejects() {
    use HelloError::*;
    let dup = [sni_ext(0, b"a.com"), sni_ext(0, b"b.com")].concat();
    let bad_name = sni_ext(0, b"a b.com");
    let empty_name = sni_ext(0, b"");
    let long_name = sni_ext(0, &[b'a'; 254]);
    let mut server_hello = handmade(None);
    server_hello[5] = 2;
    let mut ext_overrun = handmade(Some(&sni_ext(0, b"a.com")));
    let last = ext_overrun.len() - 1;
    ext_overrun.truncate(last); // the extensions block now claims one byte more than there is
    let rec_len = u16::from_be_bytes([ext_overrun[3], ext_overrun[4]]) - 1;
    ext_overrun[3..5].copy_from_slice(&rec_len.to_be_bytes());
    let hs_len = (rec_len - 4) as u32;
    ext_overrun[6..9].copy_from_slice(&hs_len.to_be_bytes()[1..]);
    let mut second_not_handshake = refragment(&HELLO, 100);
    let second = 5 + 100;
    second_not_handshake[second] = 0x17;
    let cases: Vec<(Vec<u8>, HelloError)> = vec![
        (b"GET / HTTP/1.1\r\n".to_vec(), NotTls),
        (vec![0x16, 0x02], NotTls),
        (vec![0x80, 0x2E, 0x01], NotTls), // SSLv2-style hello
        (
            vec![0x16, 0x03, 0x01, 0x00, 0x00],
            Malformed("empty handshake record"),
        ),
        (
            vec![0x16, 0x03, 0x01, 0x40, 0x01],
            Malformed("record too long"),
        ),
        (server_hello, NotClientHello),
        (
            handmade(Some(&dup)),
            Malformed("duplicate server_name extension"),
        ),
        (handmade(Some(&bad_name)), InvalidServerName),
        (handmade(Some(&empty_name)), InvalidServerName),
        (handmade(Some(&long_name)), InvalidServerName),
        (ext_overrun, Malformed("length exceeds message")),
        (
            second_not_handshake,
            Malformed("non-handshake record inside ClientHello"),
        ),
    ];
    for (bytes, err) in cases {
        assert_eq!(parse_sni(&bytes), Err(err), "{bytes:02x?}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_sni(&bytes);
    }

    #[test]
    fn arbitrary_handshake_records_never_panic(
        len in 0u16..700,
        hs in prop::collection::vec(any::<u8>(), 0..700),
    ) {
        let mut bytes = vec![CONTENT_HANDSHAKE, 3, 1];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.push(HANDSHAKE_CLIENT_HELLO);
        bytes.extend_from_slice(&hs);
        let _ = parse_sni(&bytes);
    }

    #[test]
    fn mutated_real_hello_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        fragment in prop::option::of(5usize..200),
    ) {
        let mut bytes = match fragment {
            Some(size) => refragment(&HELLO, size),
            None => HELLO.clone(),
        };
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        let _ = parse_sni(&bytes);
    }
}
