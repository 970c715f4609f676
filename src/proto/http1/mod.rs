//! HTTP/1.x without I/O: request and response heads ([`request`],
//! [`response`]), body framing ([`body`]) and the balancer's own answers
//! ([`errors`]). The engine's HTTP session feeds these bytes and writes what
//! they say; nothing here touches a socket.

pub mod body;
pub mod errors;
pub mod request;
pub mod response;

use std::ops::Range;

/// Most header fields accepted in one head (HAProxy allows 101).
pub const MAX_HEADERS: usize = 100;

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not valid HTTP/1.x, or a smuggling risk: 400 (502 from a backend).
    Malformed(&'static str),
    /// Larger than the buffer, or too many fields: 431 (502 from a backend).
    TooLarge,
    /// Valid but not something the proxy does: 501.
    NotImplemented(&'static str),
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

/// Whether a comma-separated token list holds `token` (case-insensitive).
pub(crate) fn token_list_has(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t.eq_ignore_ascii_case(token)
    })
}
