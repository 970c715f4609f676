//! HTTP/1.x without I/O: request and response heads ([`request`],
//! [`response`]), body framing ([`body`]), the balancer's own answers
//! ([`errors`]), the rules of the client side ([`front`]) and of the
//! backend side ([`back`]), and one request's exchange ([`exchange`]),
//! which decides through them and through the version-neutral
//! [`crate::proto::transaction`]. The engine's HTTP session feeds these
//! bytes and does what they say; nothing here touches a socket.

pub mod back;
pub mod body;
pub mod errors;
pub mod exchange;
pub mod front;
pub mod request;
pub mod response;
pub mod upgrade;

pub use exchange::Scratch;

use std::io::IoSlice;
use std::ops::Range;

/// Most header fields accepted in one head (HAProxy allows 101).
pub const MAX_HEADERS: usize = 100;

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not valid HTTP/1.x, or a smuggling risk: 400 (502 from a backend).
    Malformed(Malformed),
    /// Larger than the buffer, or too many fields: 431 (502 from a backend).
    TooLarge,
    /// Valid but not something the proxy does: 501.
    NotImplemented(Unsupported),
}

/// What makes a head malformed. Each is refused because two parsers could
/// disagree about where the message ends or what it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not HTTP/1.x syntax at all.
    Syntax,
    /// A LF without its CR: some parsers end a line there, others not.
    BareLf,
    /// A `Content-Length` that is not a number.
    InvalidLength,
    /// `Content-Length` values that differ.
    ConflictingLength,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndChunked,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    ChunkedHttp10,
    /// `Transfer-Encoding` more than once.
    RepeatedTransferEncoding,
    /// An HTTP/1.1 request without a `Host`.
    NoHost,
    /// More than one `Host`.
    ManyHosts,
    /// More `Connection` lines than a client sends.
    ManyConnectionHeaders,
    /// `*` as the target of anything but OPTIONS.
    AsteriskOutsideOptions,
    /// A target neither origin- nor absolute-form.
    TargetForm,
    /// An absolute-form target that is not http or https.
    UnknownScheme,
    /// An absolute-form target without a plain authority (or with
    /// userinfo).
    NoAuthority,
    /// An absolute-form target whose authority is not the `Host`.
    TargetHostMismatch,
    /// A target byte outside 0x21–0x7e, or a `#`.
    TargetBytes,
    /// More than one `Upgrade` line.
    RepeatedUpgrade,
    /// A WebSocket upgrade without exactly one `Sec-WebSocket-Key`.
    WebSocketKey,
}

impl Malformed {
    /// The reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::Syntax => "malformed head",
            Malformed::BareLf => "bare LF in the head",
            Malformed::InvalidLength => "invalid Content-Length",
            Malformed::ConflictingLength => "conflicting Content-Length",
            Malformed::LengthAndChunked => "both Content-Length and Transfer-Encoding",
            Malformed::ChunkedHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Malformed::RepeatedTransferEncoding => "repeated Transfer-Encoding",
            Malformed::NoHost => "HTTP/1.1 needs exactly one Host header",
            Malformed::ManyHosts => "more than one Host header",
            Malformed::ManyConnectionHeaders => "too many Connection headers",
            Malformed::AsteriskOutsideOptions => "asterisk-form target outside OPTIONS",
            Malformed::TargetForm => "request target is not origin- or absolute-form",
            Malformed::UnknownScheme => "absolute-form target with an unknown scheme",
            Malformed::NoAuthority => "absolute-form target without a plain authority",
            Malformed::TargetHostMismatch => "absolute-form target differs from Host",
            Malformed::TargetBytes => "request target with a control, non-ASCII byte or #",
            Malformed::RepeatedUpgrade => "more than one Upgrade header",
            Malformed::WebSocketKey => "WebSocket upgrade without exactly one Sec-WebSocket-Key",
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Valid HTTP the balancer does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `CONNECT`: a load balancer is not a forward proxy.
    Connect,
    /// A transfer coding other than `chunked`.
    TransferCoding,
}

impl Unsupported {
    /// The reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Unsupported::Connect => "CONNECT is not supported",
            Unsupported::TransferCoding => "unsupported transfer coding",
        }
    }
}

/// The byte range of a header's whole line (name to CRLF) within `buf`.
pub(crate) fn line_range(buf: &[u8], h: &httparse::Header<'_>) -> Range<usize> {
    let start = h.name.as_ptr() as usize - buf.as_ptr() as usize;
    let value_end = h.value.as_ptr() as usize - buf.as_ptr() as usize + h.value.len();
    // httparse accepted the line, so a LF ends it.
    let end = buf[value_end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len(), |i| value_end + i + 1);
    start..end
}

/// Whether `head` has a LF not preceded by CR: some parsers end a line
/// there and others do not, so it is never forwarded.
pub(crate) fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// Whether a comma-separated token list holds `token` (case-insensitive).
pub(crate) fn token_list_has(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t.eq_ignore_ascii_case(token)
    })
}

/// Whether an `Authorization`, `WWW-Authenticate` or
/// `Proxy-Authenticate` value names a scheme that authenticates the
/// connection rather than the request: NTLM or Negotiate (Kerberos,
/// SPNEGO). Matched as HAProxy 2.6 matches them, by the prefix `NTLM` or
/// `Nego` (case-insensitive), at the start of the value or of any element
/// of a challenge list: a false match only costs connection reuse, a
/// missed one hands a logged-in connection to another client.
pub(crate) fn connection_bound_auth(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|part| {
        let part = part.trim_ascii_start();
        let starts = |p: &[u8]| part.len() >= p.len() && part[..p.len()].eq_ignore_ascii_case(p);
        starts(b"NTLM") || starts(b"Nego")
    })
}

/// Slices in one vectored head write; more segments go in later writes.
pub const MAX_SLICES: usize = 32;

/// Length of a head written as `src` minus the `drop` ranges, plus the
/// `injects`, plus the final CRLF.
pub fn virtual_len(src_len: usize, drop: &[Range<usize>], injects: &[&[u8]]) -> usize {
    src_len - drop.iter().map(|r| r.len()).sum::<usize>()
        + injects.iter().map(|i| i.len()).sum::<usize>()
        + 2
}

/// Fills `out` with the slices of the head to forward: `src` (the original
/// head up to its final CRLF) without the `drop` ranges (sorted), then the
/// `injects`, then CRLF, skipping the first `skip` bytes (already written).
/// Nothing is copied; returns how many slices were used.
pub fn head_slices<'a>(
    src: &'a [u8],
    drop: &[Range<usize>],
    injects: &[&'a [u8]],
    mut skip: usize,
    out: &mut [IoSlice<'a>; MAX_SLICES],
) -> usize {
    let mut n = 0;
    let mut push = |piece: &'a [u8], out: &mut [IoSlice<'a>; MAX_SLICES]| {
        if piece.is_empty() || n == MAX_SLICES {
            return;
        }
        if skip >= piece.len() {
            skip -= piece.len();
            return;
        }
        out[n] = IoSlice::new(&piece[skip..]);
        skip = 0;
        n += 1;
    };
    let mut at = 0;
    for r in drop {
        let end = r.start.min(src.len());
        if end > at {
            push(&src[at..end], out);
        }
        at = r.end.max(at);
    }
    if at < src.len() {
        push(&src[at..], out);
    }
    for i in injects {
        push(i, out);
    }
    push(b"\r\n", out);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_bound_schemes() {
        for v in [
            &b"NTLM"[..],
            b"ntlm TlRMTVNTUAABAAAA",
            b"Negotiate YIIB",
            b"  NEGOTIATE",
            b"Basic realm=\"x\", NTLM",
            b"Nego",
        ] {
            assert!(connection_bound_auth(v), "{:?}", String::from_utf8_lossy(v));
        }
        for v in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer abc",
            b"Digest realm=x",
            b"",
        ] {
            assert!(
                !connection_bound_auth(v),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one dropped line, by design
    fn head_slices_skip_dropped_lines_and_written_bytes() {
        let src = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAccept: */*\r\n";
        let drop = [25..44];
        let injects: [&[u8]; 2] = [
            b"X-Forwarded-For: 1.2.3.4\r\n",
            b"Connection: keep-alive\r\n",
        ];
        let whole = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(virtual_len(src.len(), &drop, &injects), whole.len());
        for skip in 0..whole.len() {
            let mut out = [IoSlice::new(&[]); MAX_SLICES];
            let n = head_slices(src, &drop, &injects, skip, &mut out);
            let got: Vec<u8> = out[..n].iter().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(got, &whole[skip..], "skip {skip}");
        }
    }
}
