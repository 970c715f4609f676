//! The HTTP/1 front's own words: moirai's answers written as HTTP/1
//! responses, and what a request line says before any backend is asked
//! (an ACME challenge's token, the parts a redirect keeps).

use std::borrow::Cow;
use std::io::Write;

use super::request::RequestHead;
use crate::proto::answer::Answer;

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
