//! Structure-aware: HTTP/2 request fields (odd names, values, pseudo
//! headers, hosts, lengths, cookies) through the translation to HTTP/1.1.
//! Whatever it accepts must be a head that moirai's own HTTP/1 request
//! parser takes as exactly one request of the same length, with the same
//! framing, one host and the same method; no CR, LF or NUL anywhere but
//! line ends. Response heads go the other way: no hop-by-hop field, no
//! uppercase name.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use moirai::proto::h2::hpack::Fields;
use moirai::proto::h2::to_h1::{self, Body};
use moirai::proto::h2::to_h2;
use moirai::proto::http1::body::Framing;
use moirai::proto::http1::request;

const NAMES: [&[u8]; 16] = [
    b":method",
    b":scheme",
    b":path",
    b":authority",
    b"host",
    b"content-length",
    b"cookie",
    b"te",
    b"transfer-encoding",
    b"connection",
    b"upgrade",
    b"accept",
    b"x-forwarded-for",
    b"expect",
    b":protocol",
    b"Content-Type",
];

const VALUES: [&[u8]; 12] = [
    b"GET",
    b"POST",
    b"https",
    b"/",
    b"/a?b#c",
    b"example.com",
    b"example.com:8080",
    b"5",
    b"0",
    b"trailers",
    b"chunked",
    b"a=1",
];

#[derive(Arbitrary, Debug)]
enum Part {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    fields: Vec<(Part, Part)>,
    end_stream: bool,
    status: u16,
}

fn pick(p: &Part, table: &[&[u8]]) -> Vec<u8> {
    match p {
        Part::Known(i) => table[usize::from(*i) % table.len()].to_vec(),
        Part::Raw(v) => v.clone(),
    }
}

fuzz_target!(|input: Input| {
    let owned: Vec<(Vec<u8>, Vec<u8>)> = input
        .fields
        .iter()
        .map(|(n, v)| (pick(n, &NAMES), pick(v, &VALUES)))
        .collect();
    let fields: Fields = owned.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    if let Ok(r) = to_h1::request(&fields, input.end_stream) {
        let head = &r.head;
        assert!(head.ends_with(b"\r\n\r\n"));
        for (i, &b) in head.iter().enumerate() {
            assert_ne!(b, 0);
            if b == b'\n' {
                assert_eq!(head[i - 1], b'\r');
            }
            if b == b'\r' {
                assert_eq!(head.get(i + 1), Some(&b'\n'));
            }
        }
        let (mut drop, mut inject) = (Vec::new(), Vec::new());
        let parsed = request::parse(head, &mut drop, &mut inject)
            .unwrap_or_else(|e| panic!("{e:?} for {}", String::from_utf8_lossy(head)))
            .expect("a complete head");
        assert_eq!(parsed.head_len, head.len());
        let want = match r.body {
            Body::None | Body::Length(0) => Framing::None,
            Body::Length(n) => Framing::Length(n),
            Body::Chunked => Framing::Chunked,
        };
        let got = match parsed.framing {
            Framing::Length(0) => Framing::None,
            f => f,
        };
        assert_eq!(got, want, "{}", String::from_utf8_lossy(head));
        assert!(head.starts_with(r.method()));
    }

    let pairs: Vec<(&[u8], &[u8])> = fields.iter().map(|f| (&f.name[..], &f.value[..])).collect();
    if let Ok(resp) = to_h2::response(input.status, &pairs) {
        assert_eq!(resp.fields[0].name, b":status");
        for f in &resp.fields[1..] {
            assert!(!f.name.iter().any(u8::is_ascii_uppercase));
            assert!(!matches!(
                &f.name[..],
                b"connection" | b"transfer-encoding" | b"upgrade" | b"keep-alive" | b"te"
            ));
            assert!(!f.value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
        }
    }
});
