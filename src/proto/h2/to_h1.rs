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

use super::hpack::Field;

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
    /// The method.
    pub method: Vec<u8>,
    /// The host forwarded (for routing and logs).
    pub host: Vec<u8>,
    /// The framing.
    pub body: Body,
}

/// Fields an HTTP/2 request must not carry (§8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"transfer-encoding",
    b"upgrade",
];

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A lowercase token (§8.2.1: uppercase names are malformed).
pub fn valid_name(n: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|&b| is_tchar(b) && !b.is_ascii_uppercase())
}

/// A value with no control byte but HTAB, and no leading or trailing
/// whitespace.
pub fn check_value(v: &[u8]) -> Result<(), Malformed> {
    if v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
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
    !a.is_empty()
        && a.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

/// The request's `content-length`: None if absent; every value must be
/// the same number.
pub fn content_length(fields: &[Field]) -> Result<Option<u64>, Malformed> {
    let mut found = None;
    for f in fields.iter().filter(|f| f.name == b"content-length") {
        let v = &f.value;
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
pub fn request(fields: &[Field], end_stream: bool) -> Result<Request, Malformed> {
    let mut method = None;
    let mut scheme = None;
    let mut path = None;
    let mut authority = None;
    let mut regular = false;
    for f in fields {
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
            *slot = Some(&f.value[..]);
            continue;
        }
        regular = true;
        if !valid_name(&f.name) {
            return Err(Malformed::Name);
        }
        check_value(&f.value)?;
        if CONNECTION_SPECIFIC.contains(&&f.name[..]) {
            return Err(Malformed::ConnectionSpecific);
        }
        if f.name == b"te" && !f.value.eq_ignore_ascii_case(b"trailers") {
            return Err(Malformed::Te);
        }
    }
    let method = method.ok_or(Malformed::Method)?;
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
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
    let host = hosts.next().map(|f| &f.value[..]);
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

    let mut head = Vec::with_capacity(256);
    for part in [method, b" ", path, b" HTTP/1.1\r\nhost: ", host, b"\r\n"] {
        head.extend_from_slice(part);
    }
    let mut cookie: Option<Vec<u8>> = None;
    for f in fields.iter().filter(|f| !f.name.starts_with(b":")) {
        match &f.name[..] {
            // Replaced by ours, or hop-by-hop in HTTP/1.1.
            b"host" | b"content-length" | b"te" => continue,
            b"cookie" => {
                // §8.2.3: crumbs joined with "; ".
                let c = cookie.get_or_insert_with(Vec::new);
                if !c.is_empty() {
                    c.extend_from_slice(b"; ");
                }
                c.extend_from_slice(&f.value);
                continue;
            }
            _ => {}
        }
        line(&mut head, &f.name, &f.value);
    }
    if let Some(c) = cookie {
        line(&mut head, b"cookie", &c);
    }
    match body {
        Body::Length(n) => line(&mut head, b"content-length", n.to_string().as_bytes()),
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
        method: method.to_vec(),
        host: host.to_vec(),
        body,
    })
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
pub fn trailers(fields: &[Field]) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::new();
    for f in fields {
        if f.name.starts_with(b":") {
            return Err(Malformed::PseudoInTrailers);
        }
        if !valid_name(&f.name) {
            return Err(Malformed::Name);
        }
        check_value(&f.value)?;
        if !NOT_IN_TRAILERS.contains(&&f.name[..]) {
            line(&mut out, &f.name, &f.value);
        }
    }
    Ok(out)
}
