//! The HTTP/1 front: what moirai says to an HTTP/1 client in HTTP/1's
//! words. Its own answers written as HTTP/1 responses; what a request line
//! says before any backend is asked (an ACME challenge's token, the parts
//! a redirect keeps); and the rules for a backend's response on its way to
//! the client: whether the client connection stays open (keep-alive), the
//! `Connection` line that says so, de-chunking for an HTTP/1.0 client, a
//! `Content-Length` list rewritten as one line, and the sticky cookie's
//! `Set-Cookie` line.

use std::borrow::Cow;
use std::io::Write;
use std::ops::Range;

use super::body::Framing;
use super::request::RequestHead;
use super::response::ResponseHead;
use crate::proto::answer::Answer;
use crate::proto::cookie::COOKIE_NAME;

/// `answer` as one HTTP/1.1 response that closes the connection. The
/// errors are static bytes (nothing is allocated for a 503).
pub fn answer_bytes(answer: &Answer) -> Cow<'static, [u8]> {
    if let Answer::Error(s) = answer {
        return Cow::Borrowed(s.response());
    }
    let mut out = Vec::with_capacity(128);
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", answer.code(), answer.reason());
    if let Some(location) = answer.location() {
        out.extend_from_slice(b"Location: ");
        out.extend_from_slice(location);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(t) = answer.content_type() {
        let _ = write!(out, "Content-Type: {t}\r\n");
    }
    let body = answer.body();
    let _ = write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
    Cow::Owned(out)
}

/// The redirect to https on `port` of the request `head` at the front of
/// `buf` (see [`Answer::redirect`]).
pub fn redirect(buf: &[u8], head: &RequestHead, port: u16) -> Answer {
    let host = head.host.as_ref().and_then(|r| buf.get(r.clone()));
    let line = buf.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or(&[]), parts.next().unwrap_or(&[]));
    Answer::redirect(method, host, target, port)
}

/// Whether the client connection stays open after `resp` to `req`. Not
/// when it is `closing` (the balancer drains, or the client half-closed),
/// not when the client asked to close, not after a close-delimited
/// response, and not after one moirai de-chunks (the close is its end).
pub fn keeps_alive(req: &RequestHead, resp: &ResponseHead, closing: bool) -> bool {
    !closing && req.keep_alive && resp.framing != Framing::UntilClose && !dechunks(req, resp)
}

/// A chunked response to an HTTP/1.0 request is de-chunked: such a client
/// never sees chunked framing, only the data, ended by the close.
pub fn dechunks(req: &RequestHead, resp: &ResponseHead) -> bool {
    resp.framing == Framing::Chunked && !req.http11
}

/// What a de-chunked response head sheds on its way to the client, added
/// to the lines its parse dropped (`drops`, kept in order): its
/// `Transfer-Encoding` line.
pub fn dechunked_drops(resp: &ResponseHead, drops: &mut Vec<Range<usize>>) {
    drops.extend(resp.transfer_encoding.iter().cloned());
    drops.sort_by_key(|r| r.start);
}

/// The lines any client's final response gains, into `out`: the sticky
/// cookie `cookie` to set (insert, indirect, nocache: a response that
/// sets it must not be cached and shared) and a rewritten
/// `Content-Length` (a list of one value as one line).
pub fn added_lines(resp: &ResponseHead, cookie: Option<&[u8; 16]>, out: &mut Vec<u8>) {
    if let Some(v) = cookie {
        out.extend_from_slice(b"Set-Cookie: ");
        out.extend_from_slice(COOKIE_NAME.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v);
        out.extend_from_slice(b"; path=/\r\nCache-Control: private\r\n");
    }
    if let Some(n) = resp.length_rewritten {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
}

/// The lines added to the final response head `resp` to `req` for an
/// HTTP/1 client, into `out`: [`added_lines`], and the `Connection` line
/// when keep-alive differs from what the client's version assumes.
pub fn response_lines(
    req: &RequestHead,
    resp: &ResponseHead,
    cookie: Option<&[u8; 16]>,
    closing: bool,
    out: &mut Vec<u8>,
) {
    added_lines(resp, cookie, out);
    if !keeps_alive(req, resp, closing) {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if !req.http11 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
}

/// The token of `GET /.well-known/acme-challenge/TOKEN`, if the head at
/// the front of `head` is that request.
pub fn acme_token(head: &[u8]) -> Option<&str> {
    const PREFIX: &[u8] = b"GET /.well-known/acme-challenge/";
    let rest = head.strip_prefix(PREFIX)?;
    let end = rest.iter().position(|&b| b == b' ' || b == b'?')?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http1::errors::Status;

    #[test]
    fn answers_are_written_as_they_always_were() {
        let key = "tok.thumb".to_owned();
        assert_eq!(
            &*answer_bytes(&Answer::acme(Some(&key))),
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntok.thumb"
        );
        assert_eq!(
            &*answer_bytes(&Answer::acme(None)),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            &*answer_bytes(&Answer::redirect(b"GET", Some(b"a.example"), b"/x", 443)),
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://a.example/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert!(matches!(
            answer_bytes(&Answer::Error(Status::BadGateway)),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_error_answer_parses_back_into_its_parts() {
        for s in Status::ALL {
            let a = Answer::Error(s);
            let bytes = answer_bytes(&a);
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {} {}\r\n", a.code(), a.reason())),
                "{text}"
            );
            assert!(text.ends_with(std::str::from_utf8(a.body()).unwrap()));
            assert!(!a.body().is_empty());
        }
    }
}
