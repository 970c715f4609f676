//! An HTTP/2 request's fields into an HTTP/1.1 head, as a pure function
//! for the front (RFC 9113 §8.1–8.3). Every rule closes a way for the two
//! versions to disagree about a request ("HTTP/2: The Sequel is Always
//! Worse"; HAProxy CVE-2021-39240/39241/39242): nothing that could end a
//! line, split a field, or change the framing reaches the HTTP/1 head.
//!
//! `:authority` and `Host`: when both are present and differ the request
//! is refused. RFC 9113 §8.3.1 says a server SHOULD treat that as
//! malformed; HAProxy instead replaces `Host`. We refuse because either
//! choice of ours would leave some party (our routing and logs, the
//! backend, a cache in front of it) deciding on a host the client did not
//! mean for it, and a well-behaved client never sends two. The one we
//! forward becomes the only `host` line.

use std::ops::Range;

use super::hpack::Fields;
use crate::proto::token;

/// Why a request was refused: the front answers 400 and resets the stream
/// with PROTOCOL_ERROR (§8.1.1), or 501 for CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A name that is empty, not a token, or not lowercase (§8.2.1).
    Name,
    /// A value with NUL, CR, LF or another control byte.
    ValueBytes,
    /// A value starting or ending with a space or tab (§8.2.1).
    ValueWhitespace,
    /// A connection-specific field (§8.2.2).
    ConnectionSpecific,
    /// `te` other than `trailers` (§8.2.2).
    Te,
    /// A pseudo-header after a regular field (§8.3).
    PseudoAfterField,
    /// A pseudo-header that requests do not have (or `:protocol`, since
    /// we do not announce extended CONNECT).
    UnknownPseudo,
    /// A pseudo-header sent twice.
    RepeatedPseudo,
    /// No `:method`, or not a token.
    Method,
    /// No `:scheme`, or not http or https.
    Scheme,
    /// No `:path`, or not starting with `/` (`*` only for OPTIONS).
    Path,
    /// A `:path` byte outside 0x21–0x7e, or a `#`.
    PathBytes,
    /// An `:authority` or `Host` that is not a plain host[:port] (or has
    /// userinfo).
    Authority,
    /// `:authority` and `Host` name different hosts.
    AuthorityHostMismatch,
    /// Neither `:authority` nor `Host`.
    NoHost,
    /// More than one `Host`.
    ManyHosts,
    /// A `content-length` that is not a number.
    ContentLength,
    /// `content-length` values that differ.
    ConflictingLength,
    /// A non-zero `content-length` on a request without a body.
    LengthWithoutBody,
    /// A pseudo-header in trailers.
    PseudoInTrailers,
    /// CONNECT: a load balancer is not a forward proxy (501).
    Connect,
}

impl Malformed {
    /// The status the front answers with.
    pub fn status(self) -> u16 {
        match self {
            Malformed::Connect => 501,
            _ => 400,
        }
    }

    /// The reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::Name => "field name not a lowercase token",
            Malformed::ValueBytes => "field value with a control byte",
            Malformed::ValueWhitespace => "field value with leading or trailing whitespace",
            Malformed::ConnectionSpecific => "connection-specific field",
            Malformed::Te => "te other than trailers",
            Malformed::PseudoAfterField => "pseudo-header after a field",
            Malformed::UnknownPseudo => "unknown pseudo-header",
            Malformed::RepeatedPseudo => "repeated pseudo-header",
            Malformed::Method => "missing or invalid :method",
            Malformed::Scheme => "missing or invalid :scheme",
            Malformed::Path => "missing or invalid :path",
            Malformed::PathBytes => ":path with a control, non-ASCII byte or #",
            Malformed::Authority => "invalid :authority or host",
            Malformed::AuthorityHostMismatch => ":authority and host differ",
            Malformed::NoHost => "neither :authority nor host",
            Malformed::ManyHosts => "more than one host",
            Malformed::ContentLength => "invalid content-length",
            Malformed::ConflictingLength => "conflicting content-length",
            Malformed::LengthWithoutBody => "content-length on a request without a body",
            Malformed::PseudoInTrailers => "pseudo-header in trailers",
            Malformed::Connect => "CONNECT",
        }
    }
}

/// How the HTTP/1.1 request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// `content-length` bytes (the client's value, checked against its
    /// DATA by the connection).
    Length(u64),
    /// `transfer-encoding: chunked`: the front chunks the DATA and puts
    /// any trailers ([`trailers`]) after the last chunk.
    Chunked,
}

/// A request ready for HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The whole head, final empty line included.
    pub head: Vec<u8>,
    /// `head[..method_len]` is the method.
    method_len: usize,
    /// Where in `head` the host forwarded is.
    host: Range<usize>,
    /// The framing.
    pub body: Body,
}

impl Request {
    /// The method.
    pub fn method(&self) -> &[u8] {
        &self.head[..self.method_len]
    }

    /// The host forwarded (for routing and logs).
    pub fn host(&self) -> &[u8] {
        &self.head[self.host.clone()]
    }
}

/// Fields an HTTP/2 request must not carry (§8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"transfer-encoding",
    b"upgrade",
];

/// A lowercase token (§8.2.1: uppercase names are malformed).
pub fn valid_name(n: &[u8]) -> bool {
    token::is_lowercase_token(n)
}

/// A value with no control byte but HTAB, and no leading or trailing
/// whitespace.
pub fn check_value(v: &[u8]) -> Result<(), Malformed> {
    // No early exit, so that the loop vectorizes: every value of every
    // request and response comes through here.
    let bad = v.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    });
    if bad {
        return Err(Malformed::ValueBytes);
    }
    let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if ws(v.first()) || ws(v.last()) {
        return Err(Malformed::ValueWhitespace);
    }
    Ok(())
}

/// A host[:port] with none of the bytes that would let it name a
/// different target or carry userinfo.
fn valid_authority(a: &[u8]) -> bool {
    !a.is_empty() && a.iter().all(|&b| AUTHORITY[b as usize])
}

/// The bytes [`valid_authority`] takes, by table (every request's host
/// goes through it).
const AUTHORITY: [bool; 256] = token::alphanumeric_and(b"-._~!$&'()*+,;=:[]%");

/// The request's `content-length`: None if absent; every value must be
/// the same number.
pub fn content_length(fields: &Fields) -> Result<Option<u64>, Malformed> {
    let mut found = None;
    for f in fields.iter().filter(|f| f.name == b"content-length") {
        let v = f.value;
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(Malformed::ContentLength);
        }
        let n = v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|m| m != n) {
            return Err(Malformed::ConflictingLength);
        }
        found = Some(n);
    }
    Ok(found)
}

/// Translates a request's fields (as decoded) into an HTTP/1.1 head.
/// `end_stream`: the HEADERS frame ended the stream (no body).
pub fn request(fields: &Fields, end_stream: bool) -> Result<Request, Malformed> {
    request_in(fields, end_stream, Vec::with_capacity(256))
}

/// [`request`], the head written into `head` (emptied first): a vector
/// the front reuses from one request to the next.
pub fn request_in(
    fields: &Fields,
    end_stream: bool,
    mut head: Vec<u8>,
) -> Result<Request, Malformed> {
    let mut method = None;
    let mut scheme = None;
    let mut path = None;
    let mut authority = None;
    let mut regular = false;
    for f in fields.iter() {
        if let Some(p) = f.name.strip_prefix(b":") {
            if regular {
                return Err(Malformed::PseudoAfterField);
            }
            let slot = match p {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"path" => &mut path,
                b"authority" => &mut authority,
                _ => return Err(Malformed::UnknownPseudo),
            };
            if slot.is_some() {
                return Err(Malformed::RepeatedPseudo);
            }
            *slot = Some(f.value);
            continue;
        }
        regular = true;
        if !valid_name(f.name) {
            return Err(Malformed::Name);
        }
        check_value(f.value)?;
        if CONNECTION_SPECIFIC.contains(&f.name) {
            return Err(Malformed::ConnectionSpecific);
        }
        if f.name == b"te" && !f.value.eq_ignore_ascii_case(b"trailers") {
            return Err(Malformed::Te);
        }
    }
    let method = method.ok_or(Malformed::Method)?;
    if !token::is_token(method) {
        return Err(Malformed::Method);
    }
    if method == b"CONNECT" {
        return Err(Malformed::Connect);
    }
    match scheme {
        Some(b"http" | b"https") => {}
        _ => return Err(Malformed::Scheme),
    }
    let path = path.ok_or(Malformed::Path)?;
    if path
        .iter()
        .any(|&b| !(0x21..=0x7e).contains(&b) || b == b'#')
    {
        return Err(Malformed::PathBytes);
    }
    match path.first() {
        Some(b'/') => {}
        Some(b'*') if path == b"*" && method == b"OPTIONS" => {}
        _ => return Err(Malformed::Path),
    }
    let mut hosts = fields.iter().filter(|f| f.name == b"host");
    let host = hosts.next().map(|f| f.value);
    if hosts.next().is_some() {
        return Err(Malformed::ManyHosts);
    }
    let host = match (authority, host) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => {
            return Err(Malformed::AuthorityHostMismatch)
        }
        (Some(a), _) => a,
        (None, Some(h)) => h,
        (None, None) => return Err(Malformed::NoHost),
    };
    if !valid_authority(host) {
        return Err(Malformed::Authority);
    }
    let length = content_length(fields)?;
    let body = match (end_stream, length) {
        (true, Some(n)) if n > 0 => return Err(Malformed::LengthWithoutBody),
        (true, _) => Body::None,
        (false, Some(n)) => Body::Length(n),
        (false, None) => Body::Chunked,
    };

    head.clear();
    // Every field's bytes, and room for the separators and our lines.
    head.reserve(fields.byte_len() + 4 * fields.len() + 64);
    head.extend_from_slice(method);
    let method_len = head.len();
    for part in [b" ", path, b" HTTP/1.1\r\nhost: "] {
        head.extend_from_slice(part);
    }
    let host_at = head.len();
    head.extend_from_slice(host);
    let host = host_at..head.len();
    head.extend_from_slice(b"\r\n");
    let mut cookies = false;
    for f in fields.iter().filter(|f| !f.name.starts_with(b":")) {
        match f.name {
            // Replaced by ours, or hop-by-hop in HTTP/1.1.
            b"host" | b"content-length" | b"te" => continue,
            // §8.2.3: crumbs joined with "; ", in one line where the
            // first crumb was.
            b"cookie" if cookies => continue,
            b"cookie" => {
                cookies = true;
                head.extend_from_slice(b"cookie: ");
                let crumbs = fields.iter().filter(|c| c.name == b"cookie");
                for (i, c) in crumbs.enumerate() {
                    if i > 0 {
                        head.extend_from_slice(b"; ");
                    }
                    head.extend_from_slice(c.value);
                }
                head.extend_from_slice(b"\r\n");
                continue;
            }
            _ => {}
        }
        line(&mut head, f.name, f.value);
    }
    match body {
        Body::Length(n) => {
            let mut digits = [0u8; 20];
            line(&mut head, b"content-length", decimal(n, &mut digits))
        }
        Body::Chunked => line(&mut head, b"transfer-encoding", b"chunked"),
        Body::None
            if length == Some(0)
                || !matches!(method, b"GET" | b"HEAD" | b"DELETE" | b"OPTIONS" | b"TRACE") =>
        {
            line(&mut head, b"content-length", b"0")
        }
        Body::None => {}
    }
    head.extend_from_slice(b"\r\n");
    Ok(Request {
        head,
        method_len,
        host,
        body,
    })
}

/// `n` in decimal, in the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Fields that never travel in an HTTP/1.1 trailer section we write:
/// framing, routing and hop-by-hop fields (RFC 9110 §6.5.1).
const NOT_IN_TRAILERS: [&[u8]; 9] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"te",
    b"trailer",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"upgrade",
];

/// Request trailers as the lines of a chunked trailer section (without
/// the final empty line). Framing and hop-by-hop fields are dropped.
pub fn trailers(fields: &Fields) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::new();
    for f in fields.iter() {
        if f.name.starts_with(b":") {
            return Err(Malformed::PseudoInTrailers);
        }
        if !valid_name(f.name) {
            return Err(Malformed::Name);
        }
        check_value(f.value)?;
        if !NOT_IN_TRAILERS.contains(&f.name) {
            line(&mut out, f.name, f.value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(list: &[(&str, &str)]) -> Fields {
        list.iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/a?b=c"),
            (":authority", "example.com"),
        ]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Fields {
        let mut l = base();
        l.extend_from_slice(extra);
        f(&l)
    }

    fn head(r: &Request) -> String {
        String::from_utf8(r.head.clone()).unwrap()
    }

    #[test]
    fn a_get_becomes_an_http11_head() {
        let r = request(&with(&[("accept", "*/*")]), true).unwrap();
        assert_eq!(
            head(&r),
            "GET /a?b=c HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\n\r\n"
        );
        assert_eq!(r.body, Body::None);
        assert_eq!(r.host(), b"example.com");
    }

    #[test]
    fn a_body_without_length_is_chunked() {
        let mut l = base();
        l[0] = (":method", "POST");
        let r = request(&f(&l), false).unwrap();
        assert_eq!(r.body, Body::Chunked);
        assert!(head(&r).ends_with("transfer-encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn a_body_with_length_keeps_one_content_length() {
        let r = request(
            &with(&[("content-length", "5"), ("content-length", "5")]),
            false,
        )
        .unwrap();
        assert_eq!(r.body, Body::Length(5));
        assert_eq!(head(&r).matches("content-length").count(), 1);
    }

    #[test]
    fn a_post_without_body_says_content_length_0() {
        let mut l = base();
        l[0] = (":method", "POST");
        let r = request(&f(&l), true).unwrap();
        assert!(head(&r).contains("content-length: 0\r\n"));
        let r = request(&with(&[]), true).unwrap();
        assert!(!head(&r).contains("content-length"));
    }

    #[test]
    fn uppercase_names_are_malformed() {
        assert_eq!(
            request(&with(&[("Accept", "x")]), true),
            Err(Malformed::Name)
        );
    }

    #[test]
    fn names_must_be_tokens() {
        for n in ["", "a b", "a:b", "a\r\nb", "é"] {
            assert_eq!(
                request(&with(&[(n, "x")]), true),
                Err(Malformed::Name),
                "{n:?}"
            );
        }
    }

    #[test]
    fn values_with_cr_lf_or_nul_are_malformed() {
        for v in ["a\rb", "a\nb", "a\0b", "a\x01b", "a\x7fb"] {
            assert_eq!(
                request(&with(&[("x", v)]), true),
                Err(Malformed::ValueBytes),
                "{v:?}"
            );
        }
        // Tabs inside and obs-text are fine.
        request(&with(&[("x", "a\tb\u{e9}")]), true).unwrap();
    }

    #[test]
    fn values_with_edge_whitespace_are_malformed() {
        for v in [" a", "a ", "\ta", "a\t"] {
            assert_eq!(
                request(&with(&[("x", v)]), true),
                Err(Malformed::ValueWhitespace)
            );
        }
    }

    #[test]
    fn connection_specific_fields_are_malformed() {
        for n in [
            "connection",
            "proxy-connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
        ] {
            assert_eq!(
                request(&with(&[(n, "x")]), false),
                Err(Malformed::ConnectionSpecific),
                "{n}"
            );
        }
    }

    #[test]
    fn te_may_only_say_trailers_and_is_not_forwarded() {
        assert_eq!(request(&with(&[("te", "gzip")]), true), Err(Malformed::Te));
        let r = request(&with(&[("te", "trailers")]), true).unwrap();
        assert!(!head(&r).contains("te:"));
    }

    #[test]
    fn pseudo_headers_must_come_first_and_once() {
        let mut l = vec![("accept", "x")];
        l.extend(base());
        assert_eq!(request(&f(&l), true), Err(Malformed::PseudoAfterField));
        assert_eq!(
            request(
                &with(&[("accept", "x")])
                    .iter()
                    .chain(f(&[(":path", "/")]).iter())
                    .map(|f| (f.name, f.value))
                    .collect(),
                true
            ),
            Err(Malformed::PseudoAfterField)
        );
        let mut l = base();
        l.insert(1, (":method", "GET"));
        assert_eq!(request(&f(&l), true), Err(Malformed::RepeatedPseudo));
    }

    #[test]
    fn unknown_pseudo_headers_and_protocol_are_malformed() {
        for p in [":status", ":protocol", ":foo"] {
            let mut l = base();
            l.insert(0, (p, "x"));
            assert_eq!(request(&f(&l), true), Err(Malformed::UnknownPseudo));
        }
    }

    #[test]
    fn method_scheme_and_path_are_required() {
        for (i, e) in [
            (0, Malformed::Method),
            (1, Malformed::Scheme),
            (2, Malformed::Path),
        ] {
            let mut l = base();
            l.remove(i);
            assert_eq!(request(&f(&l), true), Err(e));
        }
    }

    #[test]
    fn the_method_must_be_a_token() {
        let mut l = base();
        l[0] = (":method", "GE T");
        assert_eq!(request(&f(&l), true), Err(Malformed::Method));
        l[0] = (":method", "");
        assert_eq!(request(&f(&l), true), Err(Malformed::Method));
    }

    #[test]
    fn the_scheme_must_be_http_or_https() {
        let mut l = base();
        l[1] = (":scheme", "ftp");
        assert_eq!(request(&f(&l), true), Err(Malformed::Scheme));
        l[1] = (":scheme", "http");
        request(&f(&l), true).unwrap();
    }

    #[test]
    fn the_path_starts_with_a_slash_or_is_an_options_asterisk() {
        let mut l = base();
        for p in ["", "a", "http://x/"] {
            l[2] = (":path", p);
            assert_eq!(request(&f(&l), true), Err(Malformed::Path), "{p:?}");
        }
        l[2] = (":path", "*");
        assert_eq!(request(&f(&l), true), Err(Malformed::Path));
        l[0] = (":method", "OPTIONS");
        let r = request(&f(&l), true).unwrap();
        assert!(head(&r).starts_with("OPTIONS * HTTP/1.1\r\n"));
    }

    #[test]
    fn path_bytes_are_checked() {
        let mut l = base();
        for p in ["/a b", "/a#b", "/a\u{e9}", "/a\tb", "/\r\nx: y"] {
            l[2] = (":path", p);
            assert_eq!(request(&f(&l), true), Err(Malformed::PathBytes), "{p:?}");
        }
    }

    #[test]
    fn connect_is_refused_with_501() {
        let l = f(&[(":method", "CONNECT"), (":authority", "example.com:443")]);
        let e = request(&l, false).unwrap_err();
        assert_eq!((e, e.status()), (Malformed::Connect, 501));
    }

    #[test]
    fn authority_and_host_that_disagree_are_refused() {
        assert_eq!(
            request(&with(&[("host", "evil.example")]), true),
            Err(Malformed::AuthorityHostMismatch)
        );
    }

    #[test]
    fn authority_and_host_that_agree_make_one_host_line() {
        let r = request(&with(&[("host", "EXAMPLE.com")]), true).unwrap();
        assert_eq!(head(&r).matches("host:").count(), 1);
        assert!(head(&r).contains("host: example.com\r\n"));
    }

    #[test]
    fn host_alone_is_used_without_authority() {
        let mut l = base();
        l.remove(3);
        l.push(("host", "h.example:8080"));
        let r = request(&f(&l), true).unwrap();
        assert_eq!(r.host(), b"h.example:8080");
        assert_eq!(head(&r).matches("host:").count(), 1);
    }

    #[test]
    fn no_host_at_all_is_malformed() {
        let mut l = base();
        l.remove(3);
        assert_eq!(request(&f(&l), true), Err(Malformed::NoHost));
    }

    #[test]
    fn two_hosts_are_malformed() {
        let r = request(
            &with(&[("host", "example.com"), ("host", "example.com")]),
            true,
        );
        assert_eq!(r, Err(Malformed::ManyHosts));
    }

    #[test]
    fn authorities_with_userinfo_or_odd_bytes_are_refused() {
        for a in ["user@example.com", "a/b", "a b", "", "a?b", "a#"] {
            let mut l = base();
            l[3] = (":authority", a);
            assert_eq!(request(&f(&l), true), Err(Malformed::Authority), "{a:?}");
        }
        let mut l = base();
        l[3] = (":authority", "[::1]:8443");
        request(&f(&l), true).unwrap();
    }

    #[test]
    fn content_length_must_be_one_number() {
        assert_eq!(
            request(&with(&[("content-length", "1,1")]), false),
            Err(Malformed::ContentLength)
        );
        assert_eq!(
            request(&with(&[("content-length", "+1")]), false),
            Err(Malformed::ContentLength)
        );
        assert_eq!(
            request(&with(&[("content-length", "99999999999999999999")]), false),
            Err(Malformed::ContentLength)
        );
        assert_eq!(
            request(
                &with(&[("content-length", "1"), ("content-length", "2")]),
                false
            ),
            Err(Malformed::ConflictingLength)
        );
    }

    #[test]
    fn a_length_on_a_request_without_body_is_malformed() {
        assert_eq!(
            request(&with(&[("content-length", "3")]), true),
            Err(Malformed::LengthWithoutBody)
        );
        let r = request(&with(&[("content-length", "0")]), true).unwrap();
        assert!(head(&r).contains("content-length: 0\r\n"));
    }

    #[test]
    fn cookie_crumbs_are_joined() {
        let r = request(
            &with(&[("cookie", "a=1"), ("x", "y"), ("cookie", "b=2")]),
            true,
        )
        .unwrap();
        assert_eq!(head(&r).matches("cookie:").count(), 1);
        assert!(head(&r).contains("cookie: a=1; b=2\r\n"));
    }

    #[test]
    fn trailers_drop_framing_fields_and_refuse_pseudo_headers() {
        let t = trailers(&f(&[
            ("x-sum", "1"),
            ("content-length", "9"),
            ("host", "x"),
        ]))
        .unwrap();
        assert_eq!(t, b"x-sum: 1\r\n");
        assert_eq!(
            trailers(&f(&[(":path", "/")])),
            Err(Malformed::PseudoInTrailers)
        );
        assert_eq!(trailers(&f(&[("x", "a\nb")])), Err(Malformed::ValueBytes));
        assert_eq!(trailers(&f(&[("X", "a")])), Err(Malformed::Name));
    }

    #[test]
    fn the_authority_table_takes_exactly_its_bytes() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b);
            assert_eq!(valid_authority(&[b]), want, "byte {b:#04x}");
        }
        assert!(!valid_authority(b""));
    }

    #[test]
    fn every_refusal_has_a_status_and_reason() {
        assert_eq!(Malformed::Name.status(), 400);
        assert!(!Malformed::AuthorityHostMismatch.reason().is_empty());
    }

    fn arb_field() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let names = prop_oneof![
            Just(b"host".to_vec()),
            Just(b"content-length".to_vec()),
            Just(b"cookie".to_vec()),
            Just(b"te".to_vec()),
            Just(b"transfer-encoding".to_vec()),
            Just(b":path".to_vec()),
            Just(b":authority".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..6),
        ];
        (names, proptest::collection::vec(any::<u8>(), 0..8))
    }

    proptest! {
        #[test]
        fn no_forbidden_byte_reaches_the_head_and_framing_is_consistent(
            extra in proptest::collection::vec(arb_field(), 0..6),
            end in any::<bool>(),
            method in prop_oneof![Just("GET"), Just("POST"), Just("OPTIONS")],
        ) {
            let mut l = f(&[(":method", method), (":scheme", "https"), (":path", "/"), (":authority", "a.example")]);
            for (n, v) in &extra {
                l.push(n, v);
            }
            if let Ok(r) = request(&l, end) {
                let text = &r.head[..r.head.len() - 4];
                // Every line ends in CRLF, no bare CR, LF or NUL elsewhere.
                for line in text.split(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    prop_assert!(!line.iter().any(|&b| b == b'\r' || b == 0));
                }
                prop_assert!(r.head.ends_with(b"\r\n\r\n"));
                let s = String::from_utf8_lossy(&r.head).to_string();
                let lines: Vec<&str> = s.split("\r\n").collect();
                // The first line has exactly three parts.
                prop_assert_eq!(lines[0].split(' ').count(), 3);
                let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
                prop_assert_eq!(count("host: "), 1);
                prop_assert!(count("cookie: ") <= 1);
                let te = count("transfer-encoding: ");
                let cl = count("content-length: ");
                prop_assert!(te + cl <= 1, "both framings: {}", s);
                prop_assert_eq!(te == 1, r.body == Body::Chunked);
                prop_assert!(!end || te == 0);
                for l in &lines[1..] {
                    if l.is_empty() { continue; }
                    let (n, _) = l.split_once(": ").unwrap();
                    prop_assert!(valid_name(n.as_bytes()), "{}", n);
                    prop_assert!(!matches!(n, "connection" | "upgrade" | "keep-alive" | "te" | "proxy-connection"));
                }
            }
        }
    }
}
