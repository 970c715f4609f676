//! What the balancer answers itself, in no HTTP version's words: a status,
//! what kind of answer it is (one of its errors, an ACME HTTP-01
//! challenge, a redirect to https) and what it carries. Each front writes
//! it its own way: [`crate::proto::http1::front`] as HTTP/1 bytes; an
//! HTTP/2 front would send a HEADERS and a DATA frame from the same
//! parts. The access line takes its status and termination code from
//! here too.

use super::http1::errors::Status;
use super::syslog::Termination;

/// What the balancer answers itself, then closes (HTTP/1) or ends the
/// stream (HTTP/2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// One of its error responses.
    Error(Status),
    /// A redirect to https (`redirect:` on an http service).
    Redirect {
        /// 301 or 308.
        code: u16,
        /// Where to: `https://host[:port]/path?query`.
        location: Box<[u8]>,
    },
    /// An ACME HTTP-01 validation: the key authorization of a pending
    /// token (200), or none for a token that is not, or no longer,
    /// pending (404).
    Challenge(Option<Box<str>>),
}

impl Answer {
    /// The answer to an ACME HTTP-01 validation.
    pub fn acme(key_auth: Option<&String>) -> Answer {
        Answer::Challenge(key_auth.map(|k| k.as_str().into()))
    }

    /// The redirect of a request for `target` with `method` (as the
    /// request line spells them) and `host` (its `Host`) to https on
    /// `port`: the same host without its port, the same path and query;
    /// 301 for GET and HEAD, 308 for any other method so a POST stays a
    /// POST (HAProxy's `redirect scheme` says 302, which clients turn into
    /// a GET). A request without a usable `Host` is a 400: there is
    /// nowhere to send it.
    pub fn redirect(method: &[u8], host: Option<&[u8]>, target: &[u8], port: u16) -> Answer {
        let Some(host) = host.and_then(host_without_port) else {
            return Answer::Error(Status::BadRequest);
        };
        // An absolute-form target's authority is the Host (checked by the
        // parser): keep its path and query.
        let absolute = !target.starts_with(b"/");
        let path = match target
            .windows(3)
            .position(|w| w == b"://")
            .filter(|_| absolute)
        {
            Some(i) => {
                let rest = &target[i + 3..];
                rest.iter()
                    .position(|&b| b == b'/' || b == b'?')
                    .map_or(&b"/"[..], |j| &rest[j..])
            }
            None if target == b"*" => b"/",
            None => target,
        };
        let code = if method == b"GET" || method == b"HEAD" {
            301
        } else {
            308
        };
        let mut location = b"https://".to_vec();
        location.extend_from_slice(host);
        if port != 443 {
            location.push(b':');
            location.extend_from_slice(port.to_string().as_bytes());
        }
        location.extend_from_slice(path);
        Answer::Redirect {
            code,
            location: location.into(),
        }
    }

    /// Its status code.
    pub fn code(&self) -> u16 {
        match self {
            Answer::Error(s) => s.code(),
            Answer::Redirect { code, .. } => *code,
            Answer::Challenge(Some(_)) => 200,
            Answer::Challenge(None) => 404,
        }
    }

    /// The reason phrase HTTP/1 writes after the code.
    pub fn reason(&self) -> &'static str {
        match self.code() {
            200 => "OK",
            301 => "Moved Permanently",
            308 => "Permanent Redirect",
            404 => "Not Found",
            _ => match self {
                Answer::Error(s) => s.reason(),
                _ => "",
            },
        }
    }

    /// Where a redirect sends the client.
    pub fn location(&self) -> Option<&[u8]> {
        match self {
            Answer::Redirect { location, .. } => Some(location),
            _ => None,
        }
    }

    /// The body's media type, when there is a body.
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Answer::Error(_) => Some("text/plain"),
            Answer::Challenge(Some(_)) => Some("application/octet-stream"),
            _ => None,
        }
    }

    /// Whether caches must not keep it (the errors: the next try may
    /// well succeed).
    pub fn no_cache(&self) -> bool {
        matches!(self, Answer::Error(_))
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        match self {
            Answer::Error(s) => s.text().as_bytes(),
            Answer::Challenge(Some(k)) => k.as_bytes(),
            _ => b"",
        }
    }

    /// HAProxy's termination state for a transaction answered so.
    pub fn termination(&self) -> Termination {
        match self {
            Answer::Challenge(_) => Termination::NORMAL,
            // Locally processed, in the request phase: HAProxy's `LR`.
            Answer::Redirect { .. } => Termination(*b"LR"),
            Answer::Error(s) => termination(*s),
        }
    }
}

/// A `Host` value without its port, if it is a plain name, an IPv4
/// address or a bracketed IPv6 one: nothing else goes into a `Location`.
fn host_without_port(host: &[u8]) -> Option<&[u8]> {
    let name = if host.first() == Some(&b'[') {
        let end = host.iter().position(|&b| b == b']')?;
        let (v6, rest) = host.split_at(end + 1);
        let ok = v6[1..end]
            .iter()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        (ok && (rest.is_empty() || rest[0] == b':')).then_some(v6)?
    } else {
        let name = host.split(|&b| b == b':').next()?;
        let ok = !name.is_empty()
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
        ok.then_some(name)?
    };
    // What follows the name must be a port.
    let rest = &host[name.len()..];
    let port_ok = rest.is_empty()
        || (rest[0] == b':' && rest.len() <= 6 && rest[1..].iter().all(u8::is_ascii_digit));
    port_ok.then_some(name)
}

/// HAProxy's termination state for a transaction the balancer answered
/// with `status`: who ended it (server, client, proxy) and in which phase.
pub fn termination(status: Status) -> Termination {
    Termination(match status {
        Status::Unavailable => *b"SC",
        Status::GatewayTimeout => *b"sH",
        Status::BadGateway => *b"SH",
        Status::RequestTimeout => *b"cR",
        Status::BadRequest | Status::HeaderTooLarge | Status::NotImplemented => *b"PR",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_says_its_parts_for_any_front() {
        let r = Answer::redirect(b"POST", Some(b"a.example:80"), b"/f?x=1", 8443);
        assert_eq!(r.code(), 308);
        assert_eq!(r.reason(), "Permanent Redirect");
        assert_eq!(r.location(), Some(&b"https://a.example:8443/f?x=1"[..]));
        assert_eq!((r.body(), r.content_type()), (&b""[..], None));
        let c = Answer::acme(Some(&"tok.thumb".to_owned()));
        assert_eq!(
            (c.code(), c.reason(), c.body()),
            (200, "OK", &b"tok.thumb"[..])
        );
        assert_eq!(c.content_type(), Some("application/octet-stream"));
        let e = Answer::Error(Status::Unavailable);
        assert_eq!((e.code(), e.reason()), (503, "Service Unavailable"));
        assert!(e.no_cache() && !c.no_cache());
        assert_eq!(
            e.body(),
            b"503 Service Unavailable: no backend is available.\n"
        );
    }

    #[test]
    fn a_host_that_is_not_a_name_has_nowhere_to_go() {
        for host in [&b"a\"b"[..], b"a:x", b"", b"[zz::1]", b"a.example:1234567"] {
            assert_eq!(
                Answer::redirect(b"GET", Some(host), b"/", 443),
                Answer::Error(Status::BadRequest),
                "{:?}",
                String::from_utf8_lossy(host)
            );
        }
        assert_eq!(
            Answer::redirect(b"GET", None, b"/", 443),
            Answer::Error(Status::BadRequest)
        );
    }
}
