//! The balancer's own answers: small, complete responses that close the
//! connection, since after any of them the stream cannot safely continue.

/// A status the balancer answers with itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Malformed request.
    BadRequest,
    /// Header not complete in time.
    RequestTimeout,
    /// Header larger than the buffer.
    HeaderTooLarge,
    /// Unknown transfer coding or method.
    NotImplemented,
    /// Invalid or no response from the backend.
    BadGateway,
    /// No usable backend.
    Unavailable,
    /// The backend did not answer in time.
    GatewayTimeout,
}

impl Status {
    /// Every status, in [`Status::index`] order.
    pub const ALL: [Status; 7] = [
        Status::BadRequest,
        Status::RequestTimeout,
        Status::HeaderTooLarge,
        Status::NotImplemented,
        Status::BadGateway,
        Status::Unavailable,
        Status::GatewayTimeout,
    ];

    /// Its place in [`Status::ALL`] (and in per-status counters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// What it means here, for the error log: "no backend", "bad request".
    pub fn meaning(self) -> &'static str {
        match self {
            Status::BadRequest => "bad request",
            Status::RequestTimeout => "request head too slow",
            Status::HeaderTooLarge => "request head too large",
            Status::NotImplemented => "not implemented",
            Status::BadGateway => "bad response from the backend",
            Status::Unavailable => "no backend",
            Status::GatewayTimeout => "backend timeout",
        }
    }

    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::RequestTimeout => 408,
            Status::HeaderTooLarge => 431,
            Status::NotImplemented => 501,
            Status::BadGateway => 502,
            Status::Unavailable => 503,
            Status::GatewayTimeout => 504,
        }
    }

    /// The reason phrase of its status line.
    pub fn reason(self) -> &'static str {
        let line = self.response().split(|&b| b == b'\r').next().unwrap_or(&[]);
        // "HTTP/1.1 NNN reason": the 13 bytes before it are ASCII.
        std::str::from_utf8(line.get(13..).unwrap_or(&[])).unwrap_or("")
    }

    /// The body of its response: one line saying what happened.
    pub fn text(self) -> &'static str {
        let r = self.response();
        let body = r
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(&[][..], |i| &r[i + 4..]);
        std::str::from_utf8(body).unwrap_or("")
    }

    /// The whole response, with `Connection: close`.
    pub fn response(self) -> &'static [u8] {
        match self {
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 43\r\n\r\n400 Bad Request: the request is malformed.\n",
            Status::RequestTimeout => b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 55\r\n\r\n408 Request Timeout: the request header took too long.\n",
            Status::HeaderTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 38\r\n\r\n431: the request header is too large.\n",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 60\r\n\r\n501 Not Implemented: unsupported transfer coding or method.\n",
            Status::BadGateway => b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 63\r\n\r\n502 Bad Gateway: the backend sent an invalid response or none.\n",
            Status::Unavailable => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 50\r\n\r\n503 Service Unavailable: no backend is available.\n",
            Status::GatewayTimeout => b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 57\r\n\r\n504 Gateway Timeout: the backend did not answer in time.\n",
        }
    }
}

/// A chunked body that breaks the grammar of RFC 9112 §7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The chunk-size is not hex digits, or junk follows it.
    BadSize,
    /// The size is [`super::body::MAX_CHUNK_SIZE`] or more.
    SizeTooLarge,
    /// A chunk extension is not `;name[=token|quoted-string]`.
    BadExtension,
    /// A line does not end in CRLF, or chunk data is not followed by CRLF.
    MissingCrlf,
    /// A trailer line is not a field (token name, colon, value without
    /// NUL, CTL or folding).
    BadTrailer,
    /// A size line is unreasonably long, or the trailers are.
    TooLong,
}

impl ChunkError {
    /// A short reason for logs.
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::SizeTooLarge => "chunk size too large",
            ChunkError::BadExtension => "invalid chunk extension",
            ChunkError::MissingCrlf => "chunk line not ended by CRLF",
            ChunkError::BadTrailer => "invalid trailer field",
            ChunkError::TooLong => "chunk line or trailers too long",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_well_formed_and_say_their_length() {
        for s in [
            Status::BadRequest,
            Status::RequestTimeout,
            Status::HeaderTooLarge,
            Status::NotImplemented,
            Status::BadGateway,
            Status::Unavailable,
            Status::GatewayTimeout,
        ] {
            let r = s.response();
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            let n = match resp.parse(r).unwrap() {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial => panic!("partial"),
            };
            assert_eq!(resp.code, Some(s.code()));
            let cl = resp
                .headers
                .iter()
                .find(|h| h.name == "Content-Length")
                .unwrap();
            let cl: usize = std::str::from_utf8(cl.value).unwrap().parse().unwrap();
            assert_eq!(cl, r.len() - n);
        }
    }
}
