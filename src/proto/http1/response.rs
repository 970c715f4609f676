//! Response heads: parsed with httparse, framed per RFC 9112 §6.3 (HEAD,
//! 1xx, 204 and 304 have no body; chunked; Content-Length; else until
//! close), with hop-by-hop lines marked to drop.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::body::Framing;
use super::request::parse_content_length;
use super::upgrade::Switch;
use super::{line_range, token_list_has, HeadError, Malformed, MAX_HEADERS};

/// What the proxy needs to know about a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head, final CRLF included.
    pub head_len: usize,
    /// Where the final CRLF starts: injected lines go just before it.
    pub end_of_fields: usize,
    /// The status code.
    pub code: u16,
    /// How the body is delimited.
    pub framing: Framing,
    /// The backend will keep the connection open after this response.
    pub keep_alive: bool,
    /// The backend sent `Content-Length` as a list or more than once: its
    /// lines are in `drop`, and the proxy writes one canonical line with
    /// this value.
    pub length_rewritten: Option<u64>,
    /// The `Transfer-Encoding` lines, to drop when the body is de-chunked
    /// for an HTTP/1.0 client.
    pub transfer_encoding: Vec<Range<usize>>,
    /// A 401 whose `WWW-Authenticate` (or a 407 whose
    /// `Proxy-Authenticate`) offers NTLM or Negotiate: the login that
    /// follows is bound to this backend connection (HAProxy 2.6 makes it
    /// private).
    pub connection_auth: bool,
    /// For a `101`: what it says about the switch (boxed: rare).
    pub switch: Option<Box<Switch>>,
}

impl ResponseHead {
    /// 1xx other than 101: another response follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.code) && self.code != 101
    }

    /// 101 Switching Protocols: the connection becomes a tunnel.
    pub fn is_switch(&self) -> bool {
        self.code == 101
    }
}

/// Parses the head at the start of `buf` for a request that was `HEAD` or
/// not. `Ok(None)` while incomplete; `drop` gets the lines not to forward.
pub fn parse(
    buf: &[u8],
    request_was_head: bool,
    drop: &mut Vec<Range<usize>>,
) -> Result<Option<ResponseHead>, HeadError> {
    drop.clear();
    // Uninitialised, as for requests (request.rs says why).
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let head_len = match parser.parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed(Malformed::Syntax)),
    };
    // httparse accepts a bare LF as a line end in responses (RFC 9112
    // lets recipients), but the head is forwarded as it came, and a client
    // or cache that disagrees on where it ends would see another message:
    // a backend that sends one gets a 502, as for requests.
    if super::has_bare_lf(&buf[..head_len]) {
        return Err(HeadError::Malformed(Malformed::BareLf));
    }
    let code = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let mut content_length = None;
    let mut length_lines = 0;
    let mut length_list = false;
    let mut te_chunked = None;
    let mut te_lines = Vec::new();
    let mut close = false;
    let mut keep_alive_token = false;
    let switch = code == 101;
    let mut said = switch.then(Box::<Switch>::default);
    let mut connection_auth = false;
    let challenge = match code {
        401 => Some("www-authenticate"),
        407 => Some("proxy-authenticate"),
        _ => None,
    };
    for h in resp.headers.iter() {
        if challenge.is_some_and(|c| h.name.eq_ignore_ascii_case(c)) {
            connection_auth |= super::connection_bound_auth(h.value);
        }
        if let Some(sw) = said.as_deref_mut() {
            note_switch(sw, h);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = parse_content_length(h.value)
                .map_err(|_| HeadError::Malformed(Malformed::InvalidLength))?;
            if content_length.is_some_and(|c| c != v) {
                return Err(HeadError::Malformed(Malformed::ConflictingLength));
            }
            content_length = Some(v);
            length_list |= h.value.contains(&b',');
            length_lines += 1;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the final coding for the length to be known.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(&[]);
            te_chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            te_lines.push(line_range(buf, h));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= token_list_has(h.value, b"close");
            keep_alive_token |= token_list_has(h.value, b"keep-alive");
            if !switch {
                drop.push(line_range(buf, h));
            }
        } else if !switch
            && (h.name.eq_ignore_ascii_case("keep-alive")
                || h.name.eq_ignore_ascii_case("proxy-connection"))
        {
            drop.push(line_range(buf, h));
        }
    }
    if te_chunked.is_some() && content_length.is_some() {
        return Err(HeadError::Malformed(Malformed::LengthAndChunked));
    }
    let no_body = request_was_head || (100..200).contains(&code) || code == 204 || code == 304;
    let framing = if no_body {
        Framing::None
    } else {
        match (te_chunked, content_length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let keep_alive = framing != Framing::UntilClose
        && !switch
        && if http11 {
            !close
        } else {
            keep_alive_token && !close
        };
    let length_rewritten = content_length.filter(|_| length_list || length_lines > 1);
    if length_rewritten.is_some() {
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                drop.push(line_range(buf, h));
            }
        }
    }
    drop.sort_by_key(|r| r.start);
    Ok(Some(ResponseHead {
        head_len,
        end_of_fields: head_len - 2,
        code,
        framing,
        keep_alive,
        length_rewritten,
        transfer_encoding: te_lines,
        connection_auth,
        switch: said,
    }))
}

/// Records what a `101`'s field `h` says about the switch.
fn note_switch(sw: &mut Switch, h: &httparse::Header<'_>) {
    if h.name.eq_ignore_ascii_case("connection") {
        sw.connection_upgrade |= token_list_has(h.value, b"upgrade");
    } else if h.name.eq_ignore_ascii_case("upgrade") {
        if !sw.upgrade.is_empty() {
            sw.upgrade.push(b',');
        }
        sw.upgrade.extend_from_slice(h.value);
    } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
        // Two values: no single proof, so none.
        sw.websocket_accept = match sw.websocket_accept {
            None => Some(h.value.into()),
            Some(_) => Some(Box::default()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, head: bool) -> ResponseHead {
        parse(s.as_bytes(), head, &mut Vec::new()).unwrap().unwrap()
    }

    #[test]
    fn bare_lf_heads_are_refused() {
        // Once a fuzzer's crash (a dropped line ending in LF, then a bare
        // LF); now refused whole, since a client might end the head
        // elsewhere.
        for text in [
            "HTTP/1.1 100 Continue\r\nConnection: up\n\n",
            "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 0\n\n",
            "HTTP/1.1 200 OK\r\nKeep-Alive: 5\r\n\n",
        ] {
            let r = parse(text.as_bytes(), false, &mut Vec::new());
            assert!(matches!(r, Err(HeadError::Malformed(_))), "{text:?}");
        }
        let mut drop = Vec::new();
        let h = parse(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            false,
            &mut drop,
        )
        .unwrap()
        .unwrap();
        assert!(drop.iter().all(|r| r.end <= h.end_of_fields));
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).framing,
            Framing::Length(5)
        );
        assert_eq!(
            p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).framing,
            Framing::None
        );
        assert_eq!(
            p("HTTP/1.1 204 No Content\r\n\r\n", false).framing,
            Framing::None
        );
        assert_eq!(
            p(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            )
            .framing,
            Framing::None
        );
        assert_eq!(
            p("HTTP/1.1 100 Continue\r\n\r\n", false).framing,
            Framing::None
        );
        assert!(p("HTTP/1.1 100 Continue\r\n\r\n", false).is_interim());
        assert_eq!(
            p(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .framing,
            Framing::Chunked
        );
        assert_eq!(
            p("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false).framing,
            Framing::UntilClose
        );
        let r = p("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(r.framing, Framing::UntilClose);
        assert!(!r.keep_alive);
    }

    #[test]
    fn keep_alive_and_hop_by_hop() {
        let s = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n";
        let mut d = Vec::new();
        let r = parse(s.as_bytes(), false, &mut d).unwrap().unwrap();
        assert!(r.keep_alive);
        assert_eq!(d.len(), 2);
        assert!(
            !p(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
        assert!(!p("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).keep_alive);
        let r = p(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            false,
        );
        assert!(r.is_switch() && !r.keep_alive);
    }

    #[test]
    fn bad_responses() {
        for s in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(parse(s.as_bytes(), false, &mut Vec::new()).is_err(), "{s}");
        }
    }

    #[test]
    fn content_length_lists_are_rewritten() {
        let mut drop = Vec::new();
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nX: 1\r\n\r\nabc";
        let h = parse(buf, false, &mut drop).unwrap().unwrap();
        assert_eq!(h.length_rewritten, Some(3));
        assert_eq!(h.framing, Framing::Length(3));
        assert_eq!(&buf[drop[0].clone()], b"Content-Length: 3, 3\r\n");
        let h = p("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false);
        assert_eq!(h.length_rewritten, None);
    }
}
