//! Request heads: parsed with httparse, checked against request smuggling
//! (RFC 9112 §6.3, §11.2), and turned into what to forward without
//! re-serialising: the original head minus the lines to drop, plus the
//! lines to inject.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::body::Framing;
use super::upgrade::{Offer, OfferError};
use super::{line_range, token_list_has, HeadError, Malformed, Unsupported, MAX_HEADERS};
use crate::proto::cookie::COOKIE_NAME;

/// What the proxy needs to know about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, final CRLF included.
    pub head_len: usize,
    /// Where the final CRLF starts: injected lines go just before it.
    pub end_of_fields: usize,
    /// `HEAD`: the response has no body whatever it says.
    pub is_head: bool,
    /// HTTP/1.1 (true) or 1.0.
    pub http11: bool,
    /// How the body is delimited.
    pub framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` header (e.g. WebSocket):
    /// what it offers, for judging the `101`.
    pub upgrade: Option<Box<Offer>>,
    /// The value of the sticky-session cookie, if the client sent one.
    pub sticky: Option<[u8; 16]>,
    /// GET, HEAD, OPTIONS, PUT or DELETE (RFC 9110 §9.2.2): may be sent
    /// again on a new connection when a reused one fails before answering.
    pub idempotent: bool,
    /// `Authorization: NTLM` or `Negotiate`: a login bound to the backend
    /// connection, which then belongs to this client alone.
    pub connection_auth: bool,
    /// The `Host` value's bytes in the head, for a redirect's `Location`.
    pub host: Option<Range<usize>>,
    /// The client's one `X-Forwarded-Proto` line (in the dropped lines
    /// unless the client is trusted), and whether it says `https`. None
    /// when absent or repeated: a repeated one is nobody's word.
    pub forwarded_proto: Option<(Range<usize>, bool)>,
    /// The client's one `X-Forwarded-Port` line, as above.
    pub forwarded_port: Option<Range<usize>>,
}

/// Header lines the proxy drops or rewrites, per RFC 9110 §7.6.1 (hop by
/// hop) and because the proxy sets them itself.
fn always_dropped(name: &str) -> bool {
    const NAMES: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "x-forwarded-proto",
        "x-forwarded-port",
        "upgrade",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Parses the head at the start of `buf` (after any empty lines, which
/// the caller skips: see [`leading_empty_lines`]).
///
/// Returns `Ok(None)` while the head is incomplete. On success, `drop`
/// holds the byte ranges of header lines not to forward, and `inject` the
/// lines to forward in their place: the request's other cookies when the
/// sticky cookie had to be taken out of a `Cookie` line, and one canonical
/// `Content-Length` when the client sent a list or repeats.
pub fn parse(
    buf: &[u8],
    drop: &mut Vec<Range<usize>>,
    inject: &mut Vec<u8>,
) -> Result<Option<RequestHead>, HeadError> {
    drop.clear();
    inject.clear();
    let cookie_rest = inject;
    // Left uninitialised: httparse writes the ones it fills, and
    // initialising a hundred of them was a tenth of the parse.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed(Malformed::Syntax)),
    };
    // A bare LF ends a line for some servers and not for others: a
    // smuggling vector, since the head is forwarded as it came.
    if super::has_bare_lf(&buf[..head_len]) {
        return Err(HeadError::Malformed(Malformed::BareLf));
    }
    let http11 = req.version == Some(1);
    let is_head = req.method == Some("HEAD");
    if req.method == Some("CONNECT") {
        return Err(HeadError::NotImplemented(Unsupported::Connect));
    }

    let mut content_length: Option<u64> = None;
    // Lines of Content-Length, and whether one is a list: then all are
    // replaced by one canonical line, so the backend never has to decide
    // what `5, 5` means (RFC 9110 §8.6).
    let mut length_lines = 0;
    let mut length_list = false;
    let mut host_value: &[u8] = &[];
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_header = false;
    let mut upgrade_line = None;
    let mut upgrade_value: &[u8] = &[];
    // Two are enough to tell "exactly one" (RFC 6455 §4.1).
    let mut websocket_keys: [&[u8]; 2] = [&[]; 2];
    let mut nkeys = 0;
    let mut hosts = 0;
    let mut sticky = None;
    let mut connection_auth = false;
    let mut host_range = None;
    // (line, says https, lines seen)
    let mut xf_proto: (Option<(Range<usize>, bool)>, usize) = (None, 0);
    let mut xf_port: (Option<Range<usize>>, usize) = (None, 0);
    // Names listed in Connection are hop by hop too; checked in a second pass.
    let mut connection_values: [&[u8]; 8] = [&[]; 8];
    let mut nconn = 0;

    for h in req.headers.iter() {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let v = parse_content_length(value)?;
            if content_length.is_some_and(|c| c != v) {
                return Err(HeadError::Malformed(Malformed::ConflictingLength));
            }
            content_length = Some(v);
            length_lines += 1;
            length_list |= value.contains(&b',');
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding {
                return Err(HeadError::Malformed(Malformed::RepeatedTransferEncoding));
            }
            transfer_encoding = true;
            let v = trim(value);
            if !v.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::NotImplemented(Unsupported::TransferCoding));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            conn_close |= token_list_has(value, b"close");
            conn_keep_alive |= token_list_has(value, b"keep-alive");
            conn_upgrade |= token_list_has(value, b"upgrade");
            if nconn < connection_values.len() {
                connection_values[nconn] = value;
                nconn += 1;
            } else {
                return Err(HeadError::Malformed(Malformed::ManyConnectionHeaders));
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            if upgrade_header {
                // Two `Upgrade` lines: which one the backend reads is
                // its choice, not ours to guess.
                return Err(HeadError::Malformed(Malformed::RepeatedUpgrade));
            }
            upgrade_header = true;
            upgrade_line = Some(line_range(buf, h));
            upgrade_value = value;
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            if nkeys < websocket_keys.len() {
                websocket_keys[nkeys] = value;
            }
            nkeys += 1;
        } else if name.eq_ignore_ascii_case("authorization") {
            connection_auth |= super::connection_bound_auth(value);
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host_value = trim(value);
            let start = value.as_ptr() as usize - buf.as_ptr() as usize
                + (value.len() - value.trim_ascii_start().len());
            host_range = Some(start..start + host_value.len());
        } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
            xf_proto = (
                Some((
                    line_range(buf, h),
                    trim(value).eq_ignore_ascii_case(b"https"),
                )),
                xf_proto.1 + 1,
            );
        } else if name.eq_ignore_ascii_case("x-forwarded-port") {
            xf_port = (Some(line_range(buf, h)), xf_port.1 + 1);
        } else if name.eq_ignore_ascii_case("cookie") {
            if let Some(v) = take_sticky(value, cookie_rest) {
                sticky = sticky.or(Some(v));
                drop.push(line_range(buf, h));
                continue;
            }
        }
        if always_dropped(name) {
            drop.push(line_range(buf, h));
        }
    }
    // Headers named by Connection are hop by hop (RFC 9110 §7.6.1).
    if nconn > 0 {
        for h in req.headers.iter() {
            let listed = connection_values[..nconn]
                .iter()
                .any(|v| token_list_has(v, h.name.as_bytes()));
            let protected = ["host", "content-length", "transfer-encoding", "cookie"]
                .iter()
                .any(|p| p.eq_ignore_ascii_case(h.name));
            let r = line_range(buf, h);
            if listed && !protected && !drop.contains(&r) {
                drop.push(r);
            }
        }
    }

    if transfer_encoding && content_length.is_some() {
        return Err(HeadError::Malformed(Malformed::LengthAndChunked));
    }
    if transfer_encoding && !http11 {
        return Err(HeadError::Malformed(Malformed::ChunkedHttp10));
    }
    if http11 && hosts != 1 {
        return Err(HeadError::Malformed(Malformed::NoHost));
    }
    if hosts > 1 {
        return Err(HeadError::Malformed(Malformed::ManyHosts));
    }
    check_target(req.path.unwrap_or(""), req.method.unwrap_or(""), host_value)?;
    // One plain line is the client's own, forwarded as it is; a list or
    // repeats are replaced by one canonical line.
    if let Some(n) = content_length.filter(|_| length_lines > 1 || length_list) {
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                drop.push(line_range(buf, h));
            }
        }
        use std::io::Write;
        let _ = write!(cookie_rest, "Content-Length: {n}\r\n");
    }
    let framing = if chunked {
        Framing::Chunked
    } else {
        match content_length {
            Some(n) => Framing::Length(n),
            None => Framing::None,
        }
    };
    let keep_alive = if http11 {
        !conn_close
    } else {
        conn_keep_alive && !conn_close
    };
    // `h2c` is never offered to a backend: after its 101 the client
    // speaks HTTP/2 on a connection moirai no longer parses, so every
    // request in it would pass unseen (no X-Forwarded-*, no balancing, no
    // access line: the known h2c smuggling). The request goes on as plain
    // HTTP/1.1 without its Upgrade line, as RFC 9110 §7.8 lets a server
    // ignore an upgrade.
    let h2c = token_list_has(upgrade_value, b"h2c");
    let upgrade = if conn_upgrade && upgrade_header && http11 && !h2c {
        let keys = &websocket_keys[..nkeys.min(websocket_keys.len())];
        match Offer::new(upgrade_value, keys) {
            Ok(offer) => Some(Box::new(offer)),
            Err(OfferError::WebSocketKey) => {
                return Err(HeadError::Malformed(Malformed::WebSocketKey))
            }
        }
    } else {
        None
    };
    if upgrade.is_some() {
        // The one hop-by-hop header that must reach the backend; the proxy
        // writes its own `Connection: upgrade`.
        drop.retain(|r| Some(r) != upgrade_line.as_ref());
    }
    drop.sort_by_key(|r| r.start);
    Ok(Some(RequestHead {
        head_len,
        end_of_fields: head_len - 2,
        is_head,
        http11,
        framing,
        keep_alive,
        upgrade,
        sticky,
        idempotent: matches!(
            req.method,
            Some("GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
        ),
        connection_auth,
        host: host_range,
        forwarded_proto: xf_proto.0.filter(|_| xf_proto.1 == 1),
        forwarded_port: xf_port.0.filter(|_| xf_port.1 == 1),
    }))
}

/// How many bytes of empty lines (CRLF or LF) start `buf`: RFC 9112 §2.2
/// lets a server skip them before a request line, and they are never
/// forwarded.
pub fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match &buf[i..] {
            [b'\r', b'\n', ..] => i += 2,
            [b'\n', ..] => i += 1,
            _ => return i,
        }
    }
}

/// The request-target (RFC 9112 §3.2): origin-form, asterisk-form for
/// OPTIONS, or absolute-form whose authority is the `Host` header. moirai
/// refuses an absolute-form target naming another host rather than
/// rewriting `Host`: the backend and moirai must agree on which site the
/// request is for, and a client that sends two different answers is
/// probing for a disagreement.
///
/// Its bytes must be visible ASCII (0x21–0x7e, HAProxy 2.6's rule) and
/// not `#`: a fragment is never sent (RFC 9110 §7.1), and bytes of 0x80
/// and above or controls are read differently by the next parser and
/// reach logs as whatever a terminal makes of them (C1 controls,
/// right-to-left overrides). `"` and the other visible bytes pass
/// (PHP's `?a[]=1`, JSON in query strings); logs escape them.
fn check_target(target: &str, method: &str, host: &[u8]) -> Result<(), HeadError> {
    if target
        .bytes()
        .any(|b| !(0x21..=0x7e).contains(&b) || b == b'#')
    {
        return Err(HeadError::Malformed(Malformed::TargetBytes));
    }
    if target.starts_with('/') {
        return Ok(());
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(())
        } else {
            Err(HeadError::Malformed(Malformed::AsteriskOutsideOptions))
        };
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        // authority-form belongs to CONNECT, which is refused earlier.
        return Err(HeadError::Malformed(Malformed::TargetForm));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(HeadError::Malformed(Malformed::UnknownScheme));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(HeadError::Malformed(Malformed::NoAuthority));
    }
    if !authority.as_bytes().eq_ignore_ascii_case(host) {
        return Err(HeadError::Malformed(Malformed::TargetHostMismatch));
    }
    Ok(())
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e]
}

/// `Content-Length`: digits only (a comma list of equal values is allowed,
/// RFC 9110 §8.6), at most 18 digits.
pub(super) fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    let mut out: Option<u64> = None;
    for part in v.split(|&b| b == b',') {
        let p = trim(part);
        if p.is_empty() || p.len() > 18 || !p.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::Malformed(Malformed::InvalidLength));
        }
        let n = p.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if out.is_some_and(|o| o != n) {
            return Err(HeadError::Malformed(Malformed::ConflictingLength));
        }
        out = Some(n);
    }
    out.ok_or(HeadError::Malformed(Malformed::InvalidLength))
}

/// Finds the sticky cookie in a `Cookie` value. When found, the other
/// cookies (if any) are appended to `rest` as a `Cookie:` line to forward
/// instead (indirect mode: the server never sees the balancer's cookie).
fn take_sticky(value: &[u8], rest: &mut Vec<u8>) -> Option<[u8; 16]> {
    let mut found = None;
    let start = rest.len();
    let mut n = 0;
    for pair in value.split(|&b| b == b';') {
        let pair = trim(pair);
        if pair.is_empty() {
            continue;
        }
        match pair
            .strip_prefix(COOKIE_NAME.as_bytes())
            .and_then(|r| r.strip_prefix(b"="))
        {
            Some(v) if found.is_none() => {
                let mut id = [0u8; 16];
                if v.len() == 16 {
                    id.copy_from_slice(v);
                }
                found = Some(id);
            }
            Some(_) => {}
            None => {
                // Every other cookie is kept, however many there are.
                rest.extend_from_slice(if n == 0 { b"Cookie: " } else { b"; " });
                rest.extend_from_slice(pair);
                n += 1;
            }
        }
    }
    if found.is_none() {
        rest.truncate(start);
        return None;
    }
    if n > 0 {
        rest.extend_from_slice(b"\r\n");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<RequestHead>, HeadError> {
        let mut d = Vec::new();
        let mut c = Vec::new();
        parse(s.as_bytes(), &mut d, &mut c)
    }

    fn forwarded(s: &str) -> (String, RequestHead) {
        let mut d = Vec::new();
        let mut c = Vec::new();
        let h = parse(s.as_bytes(), &mut d, &mut c).unwrap().unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        for r in &d {
            out.extend_from_slice(&s.as_bytes()[at..r.start]);
            at = r.end;
        }
        out.extend_from_slice(&s.as_bytes()[at..h.end_of_fields]);
        out.extend_from_slice(&c);
        (String::from_utf8(out).unwrap(), h)
    }

    #[test]
    fn simple_get() {
        let h = p("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next")
            .unwrap()
            .unwrap();
        assert_eq!(h.head_len, 27);
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive && h.http11 && !h.is_head);
        assert_eq!(p("GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(
            !p("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
        assert!(!p("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(
            p("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn hop_by_hop_lines_are_dropped() {
        let (out, _) = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(out, "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n");
    }

    #[test]
    fn sticky_cookie_is_taken_out() {
        let (out, h) = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; CLOUD-TRITONCOMPUTE-RS=0123456789abcdef; b=2\r\n\r\n",
        );
        assert_eq!(h.sticky, Some(*b"0123456789abcdef"));
        assert_eq!(out, "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; b=2\r\n");
        let (out, h) =
            forwarded("GET / HTTP/1.1\r\nHost: a\r\nCookie: CLOUD-TRITONCOMPUTE-RS=x\r\n\r\n");
        assert_eq!(h.sticky, Some([0; 16]));
        assert_eq!(out, "GET / HTTP/1.1\r\nHost: a\r\n");
        let (out, h) = forwarded("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\n\r\n");
        assert_eq!(h.sticky, None);
        assert!(out.contains("Cookie: a=1"));
    }

    #[test]
    fn framing_and_smuggling() {
        let ok = |s: &str| p(s).unwrap().unwrap().framing;
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Framing::Chunked
        );
        let bad = |s: &str| p(s).expect_err(s);
        assert!(matches!(bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), HeadError::Malformed(_)));
        assert!(matches!(
            bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            HeadError::NotImplemented(_)
        ));
        assert!(matches!(bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), HeadError::Malformed(_)));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\n\r\n"),
            HeadError::Malformed(_)
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            HeadError::Malformed(_)
        ));
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let (out, h) = forwarded(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert!(h.upgrade.is_some());
        assert_eq!(out, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
        let h = p("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.upgrade.is_none());
        // h2c is not offered: the request goes on as plain HTTP/1.1,
        // its Upgrade line not forwarded.
        let (out, h) = forwarded(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        );
        assert!(h.upgrade.is_none());
        assert_eq!(out, "GET / HTTP/1.1\r\nHost: a\r\n");
        // A WebSocket upgrade without its key, or with two: 400.
        for text in [
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Key: b\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert!(matches!(p(text), Err(HeadError::Malformed(_))), "{text:?}");
        }
    }

    #[test]
    fn content_length_lists_become_one_canonical_line() {
        let (out, h) =
            forwarded("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nX: 1\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nHost: a\r\nX: 1\r\nContent-Length: 5\r\n"
        );
        let (out, _) = forwarded(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\ncontent-length: 5\r\n\r\n",
        );
        assert_eq!(out, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n");
        // One plain line is the client's own, forwarded where it was.
        let (out, _) = forwarded("POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\n\r\n");
        assert_eq!(out, "POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\n");
    }

    #[test]
    fn targets_are_visible_ascii_without_a_fragment() {
        for ok in [
            "/a?b[]=1&c={\"d\":[1,2]}",
            "/~user/%7e!$&'()*+,;=:@",
            "/a|b^c`d\\e",
        ] {
            let text = format!("GET {ok} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert!(matches!(p(&text), Ok(Some(_))), "{ok:?}");
        }
        // httparse takes these; moirai refuses them.
        let ours = [
            &b"/a#frag"[..],
            b"/caf\xc3\xa9",
            b"/\xe2\x80\xae",
            b"/\xc2\x9b31m",
        ];
        // httparse refuses these itself.
        let httparse = [&b"/a\x7fb"[..], b"/a\x01b", b"/a\tb"];
        for (bad, why) in ours
            .iter()
            .map(|b| (b, Malformed::TargetBytes))
            .chain(httparse.iter().map(|b| (b, Malformed::Syntax)))
        {
            let text = [&b"GET "[..], bad, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
            let r = parse(&text, &mut Vec::new(), &mut Vec::new());
            assert_eq!(
                r,
                Err(HeadError::Malformed(why)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn targets_must_agree_with_host() {
        assert!(p("GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .is_some());
        assert!(p("GET HTTP://A:80/ HTTP/1.1\r\nHost: a:80\r\n\r\n")
            .unwrap()
            .is_some());
        assert!(p("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .is_some());
        for bad in [
            "GET http://evil/x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://a@evil/ HTTP/1.1\r\nHost: a@evil\r\n\r\n",
            "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(matches!(p(bad), Err(HeadError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn every_other_cookie_is_kept() {
        let many: Vec<String> = (0..40).map(|i| format!("c{i}=v{i}")).collect();
        let head = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: {}; CLOUD-TRITONCOMPUTE-RS=0123456789abcdef\r\n\r\n",
            many.join("; ")
        );
        let (out, h) = forwarded(&head);
        assert!(h.sticky.is_some());
        assert!(
            out.ends_with(&format!("Cookie: {}\r\n", many.join("; "))),
            "{out}"
        );
    }

    #[test]
    fn leading_empty_lines_are_counted() {
        assert_eq!(leading_empty_lines(b"\r\n\n\r\nGET"), 5);
        assert_eq!(leading_empty_lines(b"\r"), 0);
        assert_eq!(leading_empty_lines(b"GET"), 0);
    }

    #[test]
    fn idempotent_methods() {
        let m = |s: &str| p(s).unwrap().unwrap().idempotent;
        assert!(m("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(m("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!m("POST / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!m("PATCH / HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
}
