//! Structure-aware: valid-but-odd HTTP/1.1 requests (odd header case and
//! spacing, client X-Forwarded-For, cookies with and without the sticky
//! one, Content-Length or chunked bodies with extensions, pipelined
//! followers) go through the request parser and the engine's own
//! transaction ([`Exchange`]: the lines it adds, the body bytes it lets go
//! with the head), forwarded as the engine does (head minus dropped lines,
//! plus the exchange's, then exactly the body the framing allows).
//! Properties:
//! - the bytes for the backend re-parse to the same method and target, the
//!   client's headers that are not hop-by-hop in order, plus ours;
//! - the client's X-Forwarded-For is kept and ours comes after it;
//! - the forwarded message is exactly one request: its body ends where the
//!   bytes end, and a pipelined follower is never part of it.
#![no_main]

use std::io::IoSlice;
use std::time::Instant;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use moirai::proto::http1::body::{relay, Body, Framing};
use moirai::proto::http1::exchange::Exchange;
use moirai::proto::http1::{head_slices, request, Scratch, MAX_SLICES};
use moirai::proto::transaction::Client;

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    target: Vec<u8>,
    headers: Vec<(u8, Vec<u8>, u8)>,
    body: Vec<u8>,
    framing: u8,
    chunks: Vec<u8>,
    follower: bool,
}

const NAMES: [&str; 10] = [
    "Host",
    "hOsT",
    "Accept",
    "X-Forwarded-For",
    "x-forwarded-for",
    "Cookie",
    "User-Agent",
    "X-Custom",
    "Connection",
    "Keep-Alive",
];

fn visible(v: &[u8]) -> Vec<u8> {
    v.iter()
        .map(|&b| if (0x21..0x7f).contains(&b) { b } else { b'a' })
        .collect()
}

fn build(i: &Input) -> Vec<u8> {
    let method = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"][usize::from(i.method) % 6];
    let mut r = format!("{method} /").into_bytes();
    r.extend(visible(&i.target).iter().take(200));
    r.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v, style) in i.headers.iter().take(20) {
        let name = NAMES[usize::from(*n) % NAMES.len()];
        let mut value = visible(v);
        value.truncate(100);
        if name.eq_ignore_ascii_case("connection") {
            value = b"keep-alive".to_vec();
        }
        if name == "Cookie" && style % 3 == 0 {
            value = b"a=1; CLOUD-TRITONCOMPUTE-RS=0123456789abcdef0123456789abcdef; b=2".to_vec();
        }
        // Odd but valid spacing around the value.
        let (pre, post) = match style % 4 {
            0 => ("", ""),
            1 => (" ", ""),
            2 => ("\t", " "),
            _ => ("  ", "\t"),
        };
        r.extend_from_slice(format!("{name}:{pre}").as_bytes());
        r.extend_from_slice(&value);
        r.extend_from_slice(format!("{post}\r\n").as_bytes());
    }
    let body: Vec<u8> = i.body.iter().take(2000).copied().collect();
    match i.framing % 3 {
        0 => {}
        1 => r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes()),
        _ => r.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    r.extend_from_slice(b"\r\n");
    match i.framing % 3 {
        0 => {}
        1 => r.extend_from_slice(&body),
        _ => {
            let mut rest = &body[..];
            let mut sizes = i.chunks.iter().cycle();
            while !rest.is_empty() {
                let n = (usize::from(*sizes.next().unwrap_or(&7)) + 1).min(rest.len());
                let ext = if n % 2 == 0 { ";ext=1" } else { "" };
                r.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                r.extend_from_slice(&rest[..n]);
                r.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            r.extend_from_slice(b"0\r\n\r\n");
        }
    }
    if i.follower {
        r.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    r
}

fuzz_target!(|i: Input| {
    let buf = build(&i);
    let mut scratch = Scratch::default();
    let Ok(Some(head)) = request::parse(&buf, &mut scratch.req_drop, &mut scratch.req_inject)
    else {
        return;
    };
    // The engine's own transaction decides what is added.
    let client = Client {
        peer: "192.0.2.1:40000".parse().unwrap(),
        tls: false,
        port: 80,
        trusted: false,
    };
    let now = Instant::now();
    let mut ex = Exchange::begin(head, &client, scratch, now, now);
    let head = ex.request().clone();
    let going = ex.request_head(&buf).expect("a body we encoded is valid");
    let mut out = Vec::new();
    let mut skip = 0;
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = head_slices(going.src, going.drop, &going.injects, skip, &mut slices);
        if n == 0 {
            break;
        }
        for s in &slices[..n] {
            out.extend_from_slice(s);
            skip += s.len();
        }
    }
    let head_bytes = out.len();
    let body = ex.request_body();
    let mut body_out = Vec::new();
    relay(body, &buf[head.head_len..], |s: &[IoSlice<'_>]| {
        let n = s.iter().map(|x| x.len()).sum();
        s.iter().for_each(|x| body_out.extend_from_slice(x));
        Ok(n)
    })
    .expect("a body we encoded is valid");
    assert!(
        body.is_done() || matches!(head.framing, Framing::None),
        "whole body present"
    );
    out.extend_from_slice(&body_out);

    // Re-parse what the backend gets.
    let mut h1 = [httparse::EMPTY_HEADER; 64];
    let mut orig = httparse::Request::new(&mut h1);
    assert!(matches!(
        orig.parse(&buf),
        Ok(httparse::Status::Complete(_))
    ));
    let mut h2 = [httparse::EMPTY_HEADER; 80];
    let mut back = httparse::Request::new(&mut h2);
    let n = match back.parse(&out) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("forwarded head does not parse: {other:?}"),
    };
    assert_eq!(n, head_bytes, "exactly one head");
    assert_eq!(orig.method, back.method);
    assert_eq!(orig.path, back.path);
    let hop = |name: &str| {
        [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
            "x-forwarded-proto",
            "x-forwarded-port",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
    };
    // The client's end-to-end headers, in order (cookies may be rewritten).
    let kept: Vec<(&str, &[u8])> = orig
        .headers
        .iter()
        .filter(|h| !hop(h.name) && !h.name.eq_ignore_ascii_case("cookie"))
        .map(|h| (h.name, h.value))
        .collect();
    let sent: Vec<(&str, &[u8])> = back
        .headers
        .iter()
        .filter(|h| !hop(h.name) && !h.name.eq_ignore_ascii_case("cookie"))
        .map(|h| (h.name, h.value))
        .collect();
    assert!(
        sent.len() == kept.len() + 1,
        "ours is the one added: {kept:?} vs {sent:?}"
    );
    assert_eq!(&sent[..kept.len()], &kept[..]);
    let xff: Vec<&[u8]> = back
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|h| h.value)
        .collect();
    assert_eq!(
        xff.last().copied(),
        Some(&b"192.0.2.1"[..]),
        "ours comes last"
    );
    // No split: the body ends exactly where the forwarded bytes end.
    let mut again = Body::new(head.framing);
    let m = relay(&mut again, &out[n..], |s: &[IoSlice<'_>]| {
        Ok(s.iter().map(|x| x.len()).sum())
    })
    .expect("forwarded body is valid")
    .consumed;
    assert_eq!(n + m, out.len());
});
