//! The HTTP/1 back: what a request forwarded to a backend says in
//! HTTP/1.1's words, and what a backend's response head means for the
//! transaction. Backends speak HTTP/1 whichever front the request came
//! on, so these rules serve every front.
//!
//! - the `Connection` line moirai sends (keep-alive, or upgrade);
//! - the `X-Forwarded-*` values written as lines, and a trusted client's
//!   own lines kept out of the dropped ones;
//! - which body bytes ride in the head's write;
//! - whether a response head answers the request (a `101` only to an
//!   upgrade it takes) and whether the backend connection can carry
//!   another request.

use std::io::Write;
use std::net::IpAddr;
use std::ops::Range;

use super::body::{Body, ChunkError};
use super::request::RequestHead;
use super::response::ResponseHead;
use crate::proto::transaction::{Forwarding, Request};

/// What to do with a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnResponse {
    /// The final response: forward it with the lines in `resp_inject`.
    Forward,
    /// A 1xx (not 101): pass it on as it is; the final one is still to
    /// come.
    Interim,
    /// A `101` to an upgrade request: pass it on untouched, then carry
    /// bytes both ways.
    Tunnel,
    /// Not an answer to this request (a `101` nobody asked for, or one
    /// that does not take what the request offered): 502.
    BadGateway,
}

/// What the transaction decides on, from an HTTP/1 request head.
pub fn request_facts(head: &RequestHead) -> Request {
    Request {
        idempotent: head.idempotent,
        sticky: head.sticky,
        connection_auth: head.connection_auth,
        forwarded_proto: head.forwarded_proto.is_some(),
        forwarded_port: head.forwarded_port.is_some(),
    }
}

/// The `Connection` line sent with `head`: the backend connection is kept
/// whatever the client said (it may serve others), unless the request
/// asks to switch protocols.
pub fn connection_line(head: &RequestHead) -> &'static [u8] {
    if head.upgrade.is_some() {
        b"Connection: upgrade\r\n"
    } else {
        b"Connection: keep-alive\r\n"
    }
}

/// The client's own `X-Forwarded-Proto`/`-Port` lines that `fwd` lets
/// through (it writes no value of its own for them) come out of the
/// dropped lines `drop`.
pub fn keep_forwarded(head: &RequestHead, fwd: &Forwarding, drop: &mut Vec<Range<usize>>) {
    let mut keep = |line: Option<&Range<usize>>| {
        if let Some(r) = line {
            drop.retain(|d| d != r);
        }
    };
    if fwd.tls.is_none() {
        keep(head.forwarded_proto.as_ref().map(|(r, _)| r));
    }
    // No port of ours: the client is trusted, and its own (if any) passes.
    if fwd.port.is_none() {
        keep(head.forwarded_port.as_ref());
    }
}

/// Writes the `X-Forwarded-*` lines for `fwd` into `out` (emptied first).
/// Every request formats them, so IPv4 addresses and the port are written
/// digit by digit rather than through `fmt`, which costs several times
/// more.
pub fn forwarding_lines(fwd: &Forwarding, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"X-Forwarded-For: ");
    match fwd.for_ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, octet.into());
            }
        }
        ip @ IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
    out.extend_from_slice(b"\r\n");
    match fwd.tls {
        Some(true) => out.extend_from_slice(b"X-Forwarded-Proto: https\r\n"),
        Some(false) => out.extend_from_slice(b"X-Forwarded-Proto: http\r\n"),
        None => {}
    }
    if let Some(port) = fwd.port {
        out.extend_from_slice(b"X-Forwarded-Port: ");
        push_decimal(out, port);
        out.extend_from_slice(b"\r\n");
    }
}

/// `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The body bytes buffered after a head (`after`) that go in the head's
/// write: none for a chunked body, which is checked as far as it arrived
/// (while a 400 or 502 is still possible) and re-framed later.
pub fn with_head(body: &Body, after: &[u8]) -> Result<usize, ChunkError> {
    body.check(after)?;
    Ok(if body.is_chunked() {
        0
    } else {
        body.data(after).len()
    })
}

/// What a response head is to the request `req`: only a real switch to a
/// protocol the client asked for opens a tunnel; any other `101` is 502.
pub fn classify(req: &RequestHead, head: &ResponseHead) -> OnResponse {
    if head.is_switch() {
        let taken = match (&req.upgrade, head.switch.as_deref()) {
            (Some(offer), Some(answer)) => offer.accepts(answer),
            _ => false,
        };
        if taken {
            OnResponse::Tunnel
        } else {
            OnResponse::BadGateway
        }
    } else if head.is_interim() {
        OnResponse::Interim
    } else {
        OnResponse::Forward
    }
}

/// Whether the backend connection may carry another request after
/// `resp`, the request's body having gone out whole (`request_done`):
/// the backend's framing says so (what comes after the FIN, or bytes left
/// on the connection, are the transaction's to judge).
pub fn reusable(resp: &ResponseHead, request_done: bool) -> bool {
    resp.keep_alive && request_done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http1::body::Framing;
    use crate::proto::http1::{request, response, Scratch};

    fn parse(text: &str) -> (RequestHead, Scratch) {
        let mut s = Scratch::default();
        let h = request::parse(text.as_bytes(), &mut s.req_drop, &mut s.req_inject)
            .unwrap()
            .unwrap();
        (h, s)
    }

    fn resp(req: &RequestHead, text: &str) -> ResponseHead {
        response::parse(text.as_bytes(), req.is_head, &mut Vec::new())
            .unwrap()
            .unwrap()
    }

    const WS: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\
                      Upgrade: example/1\r\n\r\n";

    #[test]
    fn the_connection_line_keeps_the_backend_unless_upgrading() {
        let (get, _) = parse("GET / HTTP/1.0\r\nConnection: close\r\n\r\n");
        assert_eq!(connection_line(&get), b"Connection: keep-alive\r\n");
        let (ws, _) = parse(WS);
        assert_eq!(connection_line(&ws), b"Connection: upgrade\r\n");
    }

    #[test]
    fn forwarding_lines_for_each_shape() {
        let mut out = Vec::new();
        let v4 = Forwarding {
            for_ip: "10.0.0.255".parse().unwrap(),
            tls: Some(false),
            port: Some(8080),
        };
        forwarding_lines(&v4, &mut out);
        assert_eq!(
            out,
            b"X-Forwarded-For: 10.0.0.255\r\nX-Forwarded-Proto: http\r\n\
              X-Forwarded-Port: 8080\r\n"
        );
        let v6 = Forwarding {
            for_ip: "2001:db8::1".parse().unwrap(),
            tls: None,
            port: None,
        };
        forwarding_lines(&v6, &mut out);
        assert_eq!(out, b"X-Forwarded-For: 2001:db8::1\r\n", "emptied first");
    }

    #[test]
    fn kept_forwarded_lines_leave_the_dropped_ones() {
        let text = "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\
                    X-Forwarded-Port: 443\r\n\r\n";
        let (head, s) = parse(text);
        let proto = head.forwarded_proto.clone().unwrap().0;
        let port = head.forwarded_port.clone().unwrap();
        let ip = "192.0.2.1".parse().unwrap();
        let ours = Forwarding {
            for_ip: ip,
            tls: Some(true),
            port: Some(443),
        };
        let mut drop = s.req_drop.clone();
        keep_forwarded(&head, &ours, &mut drop);
        assert!(drop.contains(&proto) && drop.contains(&port), "replaced");
        let theirs = Forwarding {
            for_ip: ip,
            tls: None,
            port: None,
        };
        let mut drop = s.req_drop.clone();
        keep_forwarded(&head, &theirs, &mut drop);
        assert!(!drop.contains(&proto) && !drop.contains(&port), "kept");
    }

    #[test]
    fn only_the_upgrade_asked_for_opens_a_tunnel() {
        let (ws, _) = parse(WS);
        let (get, _) = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let switch = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                      Upgrade: example/1\r\n\r\n";
        let other = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                     Upgrade: h2c\r\n\r\n";
        assert_eq!(classify(&ws, &resp(&ws, switch)), OnResponse::Tunnel);
        assert_eq!(classify(&ws, &resp(&ws, other)), OnResponse::BadGateway);
        assert_eq!(classify(&get, &resp(&get, switch)), OnResponse::BadGateway);
        let early = "HTTP/1.1 103 Early Hints\r\n\r\n";
        assert_eq!(classify(&get, &resp(&get, early)), OnResponse::Interim);
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(classify(&ws, &resp(&ws, ok)), OnResponse::Forward);
    }

    #[test]
    fn a_backend_connection_is_reusable_only_if_its_framing_says_so() {
        let (get, _) = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let kept = resp(&get, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(reusable(&kept, true));
        assert!(!reusable(&kept, false), "the request body is not all out");
        let closed = resp(
            &get,
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(!reusable(&closed, true));
        let until_close = resp(&get, "HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(until_close.framing, Framing::UntilClose);
        assert!(!reusable(&until_close, true));
    }

    #[test]
    fn chunked_bodies_never_ride_with_the_head() {
        let (chunked, _) =
            parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        let body = Body::new(chunked.framing);
        assert_eq!(with_head(&body, b"2\r\nhi\r\n"), Ok(0));
        assert!(with_head(&body, b"zz\r\n").is_err(), "checked as it came");
        let (sized, _) = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n");
        let body = Body::new(sized.framing);
        assert_eq!(with_head(&body, b"hiGET"), Ok(2), "not the next request");
    }
}
