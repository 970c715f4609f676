//! One HTTP/1 request and its response, without I/O: the version-neutral
//! [`Transaction`] (stickiness, forwarding values, retry and replay,
//! timeouts, reuse, timing) with the HTTP/1 heads and bodies it is about,
//! decided through the front's rules ([`super::front`]: keep-alive,
//! `Connection`, de-chunking, the rewritten `Content-Length`) and the
//! back's ([`super::back`]: the request's `Connection` and
//! `X-Forwarded-*` lines, what a response head means). The engine's leg
//! does what it says; nothing here reads a socket or a clock.
//!
//! One call per step of a leg, each saying what to do next:
//! - [`Exchange::begin`]: the head to forward and the lines to add;
//! - [`Exchange::request_head`] then [`Exchange::request_sent`]: what the
//!   head's write carries, and whether the request is held for a resend;
//! - [`Exchange::backend_spoke`]: the held request is done with;
//! - [`Exchange::read_response`]: forward, pass an interim response on,
//!   switch to a tunnel, or refuse (502);
//! - [`Exchange::response_head`] then [`Exchange::response_sent`]: what
//!   the response head's write carries, and what follows it;
//! - [`Exchange::finish`]: keep the client? park, pool or drop the
//!   backend connection;
//! - [`Exchange::on_failure`], [`Exchange::on_timeout`]: the failures.
//!
//! What the balancer says itself (its errors, ACME challenges,
//! redirects) is a [`crate::proto::answer::Answer`], written for HTTP/1
//! by [`super::front`].

use std::mem;
use std::ops::Range;
use std::time::Instant;

use super::back::{self, OnResponse};
use super::body::{Body, ChunkError, Framing};
use super::front;
use super::request::RequestHead;
use super::response::{self, ResponseHead};
use super::HeadError;
use crate::proto::transaction::{
    BackendEnd, Client, Failure, Finish, Sent, Timeout, Timing, Transaction,
};

/// The small vectors a request needs for its heads. A session takes them
/// from the worker's free list to parse a request head, the request's
/// [`Exchange`] owns them until it ends, and they go back to the list: a
/// connection between requests holds none, and requests after the first few
/// allocate nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Request lines not forwarded (hop-by-hop, ours, the sticky cookie).
    pub req_drop: Vec<Range<usize>>,
    /// Lines added to the request besides `fwd`: the client's other cookies.
    pub req_inject: Vec<u8>,
    /// `X-Forwarded-*` lines.
    fwd: Vec<u8>,
    /// Response lines not forwarded.
    pub resp_drop: Vec<Range<usize>>,
    /// Lines added to the response.
    pub resp_inject: Vec<u8>,
}

impl Scratch {
    /// Empties every vector, keeping their memory.
    pub fn clear(&mut self) {
        self.req_drop.clear();
        self.req_inject.clear();
        self.resp_drop.clear();
        self.resp_inject.clear();
        self.fwd.clear();
    }
}

/// A head to write: `src` (up to its final CRLF) without the `drop`
/// ranges, plus the `injects` and CRLF, then the `body` bytes that go in
/// the same write.
#[derive(Debug, Clone, Copy)]
pub struct HeadOut<'a> {
    /// The head as received, up to its final CRLF.
    pub src: &'a [u8],
    /// Its lines not forwarded.
    pub drop: &'a [Range<usize>],
    /// Lines added before the final CRLF, in order.
    pub injects: [&'a [u8]; 3],
    /// Body bytes that ride in the head's write.
    pub body: &'a [u8],
    /// Nothing follows before the connection ends: the same write may say
    /// goodbye (TLS close_notify) instead of a write of its own.
    pub last: bool,
}

/// What the client speaks: the rules a response goes out under. The
/// request is HTTP/1.1 either way (an HTTP/2 stream's is the codec's
/// translation, parsed like any other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSpeaks {
    /// HTTP/1.x: keep-alive, `Connection`, de-chunking for HTTP/1.0
    /// ([`super::front`]).
    Http1,
    /// An HTTP/2 stream: its front turns the head into fields and the
    /// body into DATA, so a chunked body is always de-chunked, no
    /// `Connection` line is added, the connection outlives every
    /// response, and no response head is the connection's last write.
    Http2,
}

/// What follows a response head that went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterHead {
    /// Wait for the next response head.
    Interim,
    /// Forward the body.
    Body,
    /// Carry bytes both ways.
    Tunnel,
}

/// One request and its response.
#[derive(Debug)]
pub struct Exchange {
    /// What every version decides alike.
    tx: Transaction,
    req: RequestHead,
    req_body: Body,
    /// The response head being forwarded (interim or final).
    resp: Option<ResponseHead>,
    resp_body: Body,
    /// The `Connection` line sent with the request.
    conn_line: &'static [u8],
    /// The rules the response goes out under.
    speaks: ClientSpeaks,
    /// The lines its heads drop and add.
    scratch: Scratch,
}

impl Exchange {
    /// A complete, valid request head from `client`, its first byte at
    /// `start`, complete at `now`; `scratch` holds the lines its parse
    /// dropped and added. Adds the `X-Forwarded-*` lines. (Formatting
    /// them for every request rather than once per connection costs well
    /// under a microsecond and keeps idle connections free of them.)
    pub fn begin(
        head: RequestHead,
        client: &Client,
        mut scratch: Scratch,
        start: Instant,
        now: Instant,
    ) -> Exchange {
        let tx = Transaction::new(back::request_facts(&head), start, now);
        let fwd = tx.forwarding(client);
        back::keep_forwarded(&head, &fwd, &mut scratch.req_drop);
        back::forwarding_lines(&fwd, &mut scratch.fwd);
        Exchange {
            tx,
            scratch,
            conn_line: back::connection_line(&head),
            speaks: ClientSpeaks::Http1,
            req_body: Body::new(head.framing),
            req: head,
            resp: None,
            resp_body: Body::new(Framing::None),
        }
    }

    /// The request came as an HTTP/2 stream: its response goes out under
    /// HTTP/2's rules.
    pub fn for_http2_stream(&mut self) {
        self.speaks = ClientSpeaks::Http2;
    }

    /// Whether a chunked response is de-chunked for this client.
    fn dechunks(&self, resp: &ResponseHead) -> bool {
        match self.speaks {
            ClientSpeaks::Http1 => front::dechunks(&self.req, resp),
            ClientSpeaks::Http2 => resp.framing == Framing::Chunked,
        }
    }

    /// Whether the client connection outlives the response (`closing` as
    /// for [`Exchange::read_response`]). An HTTP/2 connection always does:
    /// ending it is its front's business.
    fn keeps_client(&self, resp: &ResponseHead, closing: bool) -> bool {
        match self.speaks {
            ClientSpeaks::Http1 => front::keeps_alive(&self.req, resp, closing),
            ClientSpeaks::Http2 => true,
        }
    }

    /// The request head.
    pub fn request(&self) -> &RequestHead {
        &self.req
    }

    /// The response head being forwarded, if one arrived.
    pub fn response(&self) -> Option<&ResponseHead> {
        self.resp.as_ref()
    }

    /// When its parts happened.
    pub fn timing(&self) -> &Timing {
        &self.tx.timing
    }

    /// A new backend connection took `took` to connect.
    pub fn connected(&mut self, took: std::time::Duration) {
        self.tx.timing.connect = Some(took);
        self.tx.set_reused(false);
    }

    /// The request rides a parked or pooled connection.
    pub fn reusing(&mut self) {
        self.tx.set_reused(true);
    }

    /// The sticky cookie the client sent, if any.
    pub fn sticky(&self) -> Option<[u8; 16]> {
        self.tx.sticky()
    }

    /// Whether the client already has a final status line.
    pub fn status_sent(&self) -> bool {
        self.tx.status_sent()
    }

    /// Ends the exchange: its vectors, emptied, for the next request.
    pub fn take_scratch(&mut self) -> Scratch {
        let mut s = mem::take(&mut self.scratch);
        s.clear();
        s
    }

    /// The request body, for relaying.
    pub fn request_body(&mut self) -> &mut Body {
        &mut self.req_body
    }

    /// The response body, for relaying.
    pub fn response_body(&mut self) -> &mut Body {
        &mut self.resp_body
    }

    /// Whether the whole request body went out.
    pub fn request_done(&self) -> bool {
        self.req_body.is_done()
    }

    /// Whether the whole response body went out.
    pub fn response_done(&self) -> bool {
        self.tx.status_sent() && self.resp_body.is_done()
    }

    /// The request head to write, from the client's buffered bytes
    /// `buffered` (the head at their front), with the body bytes that go
    /// in the same write. A chunk error in what arrived of the body is a
    /// 400.
    pub fn request_head<'a>(&'a self, buffered: &'a [u8]) -> Result<HeadOut<'a>, ChunkError> {
        let after = &buffered[self.req.head_len..];
        let with_head = back::with_head(&self.req_body, after)?;
        Ok(HeadOut {
            src: &buffered[..self.req.end_of_fields],
            drop: &self.scratch.req_drop,
            injects: [&self.scratch.req_inject, &self.scratch.fwd, self.conn_line],
            body: &after[..with_head],
            last: false,
        })
    }

    /// The request head and `written` body bytes after it went out.
    pub fn request_sent(&mut self, written: usize) -> Sent {
        let sent = self.req.head_len + self.req_body.wrote(written);
        self.tx.request_sent(sent, self.req_body.is_done())
    }

    /// The backend sent its first bytes: the held request (if any) cannot
    /// be sent again and its bytes are done with.
    pub fn backend_spoke(&mut self) -> Option<usize> {
        self.tx.backend_spoke()
    }

    /// The backend connection failed before any response byte
    /// (`answered`: some arrived; `head_pending`: the request head is still
    /// being written). A resend starts the request over from its first
    /// byte.
    pub fn on_failure(&mut self, answered: bool, head_pending: bool) -> Failure {
        let f = self.tx.on_failure(answered, head_pending);
        if f == Failure::Resend {
            self.resp = None;
            self.req_body = Body::new(self.req.framing);
        }
        f
    }

    /// Looks for a response head at the front of the backend's bytes
    /// `buffered`, arrived at `now`: `Ok(None)` until it is complete. For a
    /// final response, fills the lines the forwarded head drops and adds:
    /// the sticky cookie for `cookie` (the backend's) when the client does
    /// not hold it, a rewritten `Content-Length`, and `Connection`.
    /// `closing`: the client connection ends after this response (the
    /// balancer drains, or the client half-closed). A head that is not
    /// valid HTTP/1 is the caller's 502.
    pub fn read_response(
        &mut self,
        buffered: &[u8],
        cookie: Option<&[u8; 16]>,
        closing: bool,
        now: Instant,
    ) -> Result<Option<OnResponse>, HeadError> {
        let s = &mut self.scratch;
        s.resp_drop.clear();
        s.resp_inject.clear();
        let Some(head) = response::parse(buffered, self.req.is_head, &mut s.resp_drop)? else {
            return Ok(None);
        };
        let what = back::classify(&self.req, &head);
        match what {
            OnResponse::BadGateway => return Ok(Some(what)),
            // Passed on untouched.
            OnResponse::Tunnel => s.resp_drop.clear(),
            OnResponse::Interim => {}
            OnResponse::Forward => {
                let cookie = self.tx.cookie_to_set(cookie);
                match self.speaks {
                    ClientSpeaks::Http1 => {
                        front::response_lines(&self.req, &head, cookie, closing, &mut s.resp_inject)
                    }
                    ClientSpeaks::Http2 => front::added_lines(&head, cookie, &mut s.resp_inject),
                }
            }
        }
        if what != OnResponse::Interim {
            self.tx.responded(head.connection_auth, now);
        }
        self.resp_body = if self.dechunks(&head) {
            front::dechunked_drops(&head, &mut self.scratch.resp_drop);
            match self.speaks {
                ClientSpeaks::Http1 => Body::new(head.framing).dechunked(),
                // HTTP/2 carries the trailers in a HEADERS frame.
                ClientSpeaks::Http2 => Body::new(head.framing).dechunked_keeping_trailers(),
            }
        } else {
            Body::new(head.framing)
        };
        self.resp = Some(head);
        Ok(Some(what))
    }

    /// The response head to write, from the backend's buffered bytes
    /// `buffered` (the head at their front), with the body bytes that go
    /// in the same write; `None` before a response head. `closing` as for
    /// [`Exchange::read_response`]. A chunk error in the body is a 502.
    pub fn response_head<'a>(
        &'a self,
        buffered: &'a [u8],
        closing: bool,
    ) -> Result<Option<HeadOut<'a>>, ChunkError> {
        let Some(resp) = &self.resp else {
            return Ok(None);
        };
        let after = &buffered[resp.head_len..];
        let with_head = back::with_head(&self.resp_body, after)?;
        // A response that ends the connection with this write carries the
        // TLS close_notify too (one write, one segment fewer).
        let last = !resp.is_interim()
            && !resp.is_switch()
            && self.req_body.is_done()
            && !self.keeps_client(resp, closing)
            && self.resp_body.completes_with(with_head);
        Ok(Some(HeadOut {
            src: &buffered[..resp.end_of_fields],
            drop: &self.scratch.resp_drop,
            injects: [&self.scratch.resp_inject, &[], &[]],
            body: &after[..with_head],
            last,
        }))
    }

    /// The response head and `written` body bytes after it went out: how
    /// many of the backend's buffered bytes are done with, and what
    /// follows.
    pub fn response_sent(&mut self, written: usize) -> (usize, AfterHead) {
        let Some(resp) = &self.resp else {
            return (0, AfterHead::Interim);
        };
        let sent = resp.head_len + self.resp_body.wrote(written);
        if resp.is_interim() {
            self.resp = None;
            return (sent, AfterHead::Interim);
        }
        self.tx.status_went();
        let after = if resp.is_switch() {
            AfterHead::Tunnel
        } else {
            AfterHead::Body
        };
        (sent, after)
    }

    /// Whether this exchange binds its backend connection to its client
    /// (see [`Transaction::connection_bound`]).
    pub fn connection_bound(&self) -> bool {
        self.tx.connection_bound()
    }

    /// Both messages are complete: whether the client may send another
    /// request (`closing` as for [`Exchange::read_response`]), and what
    /// becomes of the backend connection.
    pub fn finish(&self, closing: bool, backend: BackendEnd) -> Finish {
        let done = self.req_body.is_done();
        let (keep_client, reusable) = match &self.resp {
            Some(resp) => (
                self.keeps_client(resp, closing) && done,
                back::reusable(resp, done),
            ),
            None => (false, false),
        };
        self.tx.finish(keep_client, reusable, backend)
    }

    /// The backend or client went quiet past its timeout
    /// (`backend_idle`: the backend's).
    pub fn on_timeout(&self, backend_idle: bool) -> Timeout {
        self.tx.on_timeout(backend_idle)
    }
}

#[cfg(test)]
mod tests {
    use super::super::front::{acme_token, answer_bytes, redirect};
    use super::*;
    use crate::proto::answer::Answer;
    use crate::proto::http1::errors::Status;
    use crate::proto::http1::request;
    use crate::proto::syslog::Termination;
    use crate::proto::transaction::Reuse;

    const COOKIE: [u8; 16] = *b"0123456789abcdef";

    /// Views of an exchange's state for the tests: through its real calls
    /// where one exists (a head's write, a failure), else its vectors.
    impl Exchange {
        fn request_injects(&self) -> [&[u8]; 3] {
            [&self.scratch.req_inject, &self.scratch.fwd, self.conn_line]
        }

        fn request_drops(&self) -> &[Range<usize>] {
            &self.scratch.req_drop
        }

        fn response_injects(&self) -> [&[u8]; 1] {
            [&self.scratch.resp_inject]
        }

        fn response_drops(&self) -> &[Range<usize>] {
            &self.scratch.resp_drop
        }

        /// Body bytes of `after` that ride in the request head's write.
        fn request_with_head(&self, after: &[u8]) -> Result<usize, ChunkError> {
            let mut buf = vec![b'-'; self.req.head_len];
            buf.extend_from_slice(after);
            self.request_head(&buf).map(|h| h.body.len())
        }

        /// Body bytes of `after` that ride in the response head's write.
        fn response_with_head(&self, after: &[u8]) -> Result<usize, ChunkError> {
            let head_len = self.resp.as_ref().map_or(0, |r| r.head_len);
            let mut buf = vec![b'-'; head_len];
            buf.extend_from_slice(after);
            let out = self.response_head(&buf, false)?;
            Ok(out.map_or(0, |h| h.body.len()))
        }

        /// Whether the response head's write with `with_head` body bytes
        /// is the connection's last.
        fn ends_with_head(&self, with_head: usize, closing: bool) -> bool {
            let Some(resp) = &self.resp else {
                return false;
            };
            let buf = vec![b'x'; resp.head_len + with_head];
            matches!(self.response_head(&buf, closing), Ok(Some(h)) if h.last)
        }

        fn may_retry(&self, answered: bool, head_pending: bool) -> bool {
            self.tx.may_resend(answered, head_pending)
        }

        fn set_reused(&mut self, reused: bool) {
            if reused {
                self.reusing();
            } else {
                self.connected(std::time::Duration::ZERO);
            }
        }

        fn retry(&mut self) {
            assert_eq!(self.on_failure(false, true), Failure::Resend);
        }
    }

    fn client(tls: bool) -> Client {
        Client {
            peer: "[::ffff:192.0.2.9]:40000".parse().unwrap(),
            tls,
            port: 443,
            trusted: false,
        }
    }

    /// An exchange for the request `head`, and a clock.
    fn begin(head: &str) -> (Exchange, Instant) {
        let mut s = Scratch::default();
        let h = request::parse(head.as_bytes(), &mut s.req_drop, &mut s.req_inject)
            .unwrap()
            .unwrap();
        let now = Instant::now();
        (Exchange::begin(h, &client(false), s, now, now), now)
    }

    fn respond(ex: &mut Exchange, head: &str, closing: bool) -> (OnResponse, String) {
        let what = ex
            .read_response(head.as_bytes(), Some(&COOKIE), closing, Instant::now())
            .unwrap()
            .unwrap();
        let [lines] = ex.response_injects();
        (what, String::from_utf8_lossy(lines).into_owned())
    }

    const GET: &str = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";

    #[test]
    fn begin_adds_forwarding_lines_and_the_connection_line() {
        let parse = |t: &str, s: &mut Scratch| {
            request::parse(t.as_bytes(), &mut s.req_drop, &mut s.req_inject)
                .unwrap()
                .unwrap()
        };
        let now = Instant::now();
        let mut s = Scratch::default();
        let h = parse(GET, &mut s);
        let mut ex = Exchange::begin(h, &client(true), s, now, now);
        let [cookies, fwd, conn] = ex.request_injects();
        assert_eq!(cookies, b"");
        assert_eq!(
            fwd,
            b"X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n"
        );
        assert_eq!(conn, b"Connection: keep-alive\r\n");
        // The next request reuses the vectors, emptied: nothing of the
        // first request's lines is left in them.
        let mut s = ex.take_scratch();
        assert!(s.req_drop.is_empty() && s.req_inject.is_empty() && s.fwd.is_empty());
        let h = parse(
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a2V5\r\n\r\n",
            &mut s,
        );
        let ex = Exchange::begin(h, &client(false), s, now, now);
        let [_, fwd, conn] = ex.request_injects();
        assert_eq!(
            fwd,
            b"X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 443\r\n"
        );
        assert_eq!(conn, b"Connection: upgrade\r\n");
    }

    #[test]
    fn forwarding_lines_match_the_formatted_ones() {
        let peers = [
            "0.0.0.0:0",
            "10.0.0.1:1",
            "192.0.2.255:9",
            "255.255.255.255:65535",
            "[::ffff:198.51.100.7]:40000",
            "[2001:db8::1]:443",
            "[::1]:80",
        ];
        let ports = [0, 1, 9, 65535, 80, 443, 10000];
        for (i, (peer, port)) in peers.iter().zip(ports).enumerate() {
            let tls = i % 2 == 1;
            let client = Client {
                peer: peer.parse().unwrap(),
                tls,
                port,
                trusted: false,
            };
            let mut out = b"stale".to_vec();
            let fwd = crate::proto::transaction::Forwarding {
                for_ip: client.peer.ip().to_canonical(),
                tls: Some(tls),
                port: Some(port),
            };
            back::forwarding_lines(&fwd, &mut out);
            let want = format!(
                "X-Forwarded-For: {}\r\nX-Forwarded-Proto: {}\r\nX-Forwarded-Port: {}\r\n",
                client.peer.ip().to_canonical(),
                if tls { "https" } else { "http" },
                client.port
            );
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn body_bytes_ride_with_the_head_unless_chunked() {
        let (ex, ..) = begin("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(ex.request_with_head(b"hel"), Ok(3));
        assert_eq!(
            ex.request_with_head(b"hello, next"),
            Ok(5),
            "never past the body"
        );
        let (ex, ..) = begin("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(ex.request_with_head(b"5\r\nhello\r\n0\r\n\r\n"), Ok(0));
        assert!(ex.request_with_head(b"5\nhello").is_err(), "bare LF");
        let (ex, ..) = begin(GET);
        assert_eq!(ex.request_with_head(b"GET /next"), Ok(0));
    }

    #[test]
    fn a_request_is_held_only_on_a_reused_connection_and_if_idempotent() {
        let (mut ex, ..) = begin(GET);
        let len = GET.len();
        assert_eq!(ex.request_sent(0), Sent::Consume(len), "new connection");

        let (mut ex, ..) = begin(GET);
        ex.set_reused(true);
        assert_eq!(ex.request_sent(0), Sent::Hold);
        assert!(ex.may_retry(false, false));
        assert!(!ex.may_retry(true, false), "answered");
        assert_eq!(ex.backend_spoke(), Some(len));
        assert_eq!(ex.backend_spoke(), None);
        assert!(!ex.may_retry(false, false), "nothing held any more");
        assert!(
            ex.may_retry(false, true),
            "a head still being written is held"
        );

        let post = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n";
        let (mut ex, ..) = begin(post);
        ex.set_reused(true);
        assert_eq!(ex.request_sent(1), Sent::Consume(post.len() + 1));
        assert!(!ex.may_retry(false, true), "never a POST");

        let (mut ex, ..) = begin(GET);
        ex.set_reused(true);
        ex.retry();
        assert!(!ex.may_retry(false, true), "once only");
        ex.set_reused(true);
        assert_eq!(ex.request_sent(0), Sent::Consume(len), "not held twice");
    }

    #[test]
    fn the_sticky_cookie_is_set_unless_the_client_holds_it() {
        let (mut ex, _) = begin(GET);
        let (what, lines) = respond(&mut ex, OK, false);
        assert_eq!(what, OnResponse::Forward);
        assert_eq!(
            lines,
            "Set-Cookie: CLOUD-TRITONCOMPUTE-RS=0123456789abcdef; path=/\r\nCache-Control: private\r\n"
        );
        let (mut ex, _) = begin(
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: CLOUD-TRITONCOMPUTE-RS=0123456789abcdef\r\n\r\n",
        );
        assert_eq!(ex.sticky(), Some(COOKIE));
        let (_, lines) = respond(&mut ex, OK, false);
        assert_eq!(lines, "");
        let (mut ex, _) = begin(
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: CLOUD-TRITONCOMPUTE-RS=ffffffffffffffff\r\n\r\n",
        );
        let (_, lines) = respond(&mut ex, OK, false);
        assert!(
            lines.starts_with("Set-Cookie: "),
            "a stale cookie is replaced"
        );
    }

    #[test]
    fn connection_lines_follow_the_client_and_the_framing() {
        let sticky = "Cookie: CLOUD-TRITONCOMPUTE-RS=0123456789abcdef\r\n\r\n";
        let cases = [
            // (request, response, closing, expected lines)
            ("GET / HTTP/1.1\r\nHost: x\r\n", OK, false, ""),
            (
                "GET / HTTP/1.1\r\nHost: x\r\n",
                OK,
                true,
                "Connection: close\r\n",
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
                OK,
                false,
                "Connection: close\r\n",
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\n",
                "HTTP/1.1 200 OK\r\n\r\n",
                false,
                "Connection: close\r\n",
            ),
            ("GET / HTTP/1.0\r\n", OK, false, "Connection: close\r\n"),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n",
                OK,
                false,
                "Connection: keep-alive\r\n",
            ),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n",
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                "Connection: close\r\n",
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
                false,
                "Content-Length: 2\r\n",
            ),
        ];
        for (req, resp, closing, want) in cases {
            let (mut ex, _) = begin(&format!("{req}{sticky}"));
            let (what, lines) = respond(&mut ex, resp, closing);
            assert_eq!(what, OnResponse::Forward);
            assert_eq!(lines, want, "{req:?} → {resp:?} closing={closing}");
        }
    }

    #[test]
    fn an_http_1_0_client_never_sees_chunks() {
        let (mut ex, _) = begin("GET / HTTP/1.0\r\n\r\n");
        let resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        respond(&mut ex, resp, false);
        let te = resp.find("Transfer-Encoding").unwrap();
        assert!(
            ex.response_drops().iter().any(|r| r.start == te),
            "the line is dropped"
        );
        let (done, after) = ex.response_sent(0);
        assert_eq!((done, after), (resp.len(), AfterHead::Body));
        let mut out = Vec::new();
        let r = super::super::body::relay(ex.response_body(), b"2\r\nhi\r\n0\r\n\r\n", |b| {
            b.iter().for_each(|x| out.extend_from_slice(x));
            Ok(b.iter().map(|x| x.len()).sum())
        })
        .unwrap();
        assert_eq!(r.consumed, 12);
        assert_eq!(out, b"hi");
    }

    #[test]
    fn interim_switch_and_unasked_switch() {
        let (mut ex, _) = begin("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n");
        let (what, lines) = respond(&mut ex, "HTTP/1.1 100 Continue\r\n\r\n", false);
        assert_eq!((what, lines.as_str()), (OnResponse::Interim, ""));
        assert_eq!(
            ex.timing().response,
            None,
            "an interim response is not the answer"
        );
        assert_eq!(ex.response_sent(0).1, AfterHead::Interim);
        assert!(ex.response().is_none() && !ex.status_sent());
        let (what, _) = respond(&mut ex, OK, false);
        assert_eq!(what, OnResponse::Forward);
        assert_eq!(ex.response_sent(0).1, AfterHead::Body);
        assert!(ex.status_sent());

        let (mut ex, _) = begin(GET);
        let (what, _) = respond(&mut ex, "HTTP/1.1 101 Switching Protocols\r\n\r\n", false);
        assert_eq!(what, OnResponse::BadGateway);

        let (mut ex, _) =
            begin("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: example/1\r\n\r\n");
        let (what, lines) = respond(
            &mut ex,
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: example/1\r\n\r\n",
            false,
        );
        assert_eq!((what, lines.as_str()), (OnResponse::Tunnel, ""));
        assert!(ex.response_drops().is_empty(), "passed on untouched");
        assert_eq!(ex.response_sent(0).1, AfterHead::Tunnel);
    }

    #[test]
    fn the_last_head_of_a_closing_connection_may_say_goodbye() {
        let close = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        // (request, response, closing, body bytes with the head, ends?)
        let cases = [
            (close, OK, false, 2, true),
            (close, OK, false, 1, false),
            (GET, OK, false, 2, false),
            (GET, OK, true, 2, true),
            (close, "HTTP/1.1 204 No Content\r\n\r\n", false, 0, true),
            (
                close,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                0,
                false,
            ),
            (close, "HTTP/1.1 100 Continue\r\n\r\n", false, 0, false),
        ];
        for (req, resp, closing, with_head, ends) in cases {
            let (mut ex, _) = begin(req);
            respond(&mut ex, resp, closing);
            assert_eq!(
                ex.ends_with_head(with_head, closing),
                ends,
                "{req:?} {resp:?} closing {closing} with {with_head}"
            );
        }
        let (ex, _) = begin(close);
        assert!(!ex.ends_with_head(0, true), "no response yet");
        let post = "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\n";
        let (mut ex, _) = begin(post);
        respond(&mut ex, OK, false);
        assert!(
            !ex.ends_with_head(2, false),
            "the request body is still coming"
        );
    }

    /// An HTTP/2 stream's response: the cookie and a canonical length are
    /// added but no `Connection` line, even when the connection is
    /// closing; a chunked body is de-chunked, its framing line dropped;
    /// the client connection outlives it and no head is its last write.
    #[test]
    fn an_http2_streams_response_follows_http2s_rules() {
        let (mut ex, _) = begin(GET);
        ex.for_http2_stream();
        let resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (what, lines) = respond(&mut ex, resp, true);
        assert_eq!(what, OnResponse::Forward);
        assert_eq!(
            lines,
            "Set-Cookie: CLOUD-TRITONCOMPUTE-RS=0123456789abcdef; path=/\r\nCache-Control: private\r\n"
        );
        let te = resp.find("Transfer-Encoding").unwrap();
        assert!(ex.response_drops().iter().any(|r| r.start == te));
        assert_eq!(ex.response_sent(0), (resp.len(), AfterHead::Body));
        let mut out = Vec::new();
        super::super::body::relay(ex.response_body(), b"2\r\nhi\r\n0\r\n\r\n", |b| {
            b.iter().for_each(|x| out.extend_from_slice(x));
            Ok(b.iter().map(|x| x.len()).sum())
        })
        .unwrap();
        assert_eq!(out, b"hi", "data only: DATA frames carry no chunks");
        let f = ex.finish(true, BackendEnd::default());
        assert_eq!((f.keep_client, f.backend), (true, Reuse::Park));

        let close = "GET / HTTP/1.0\r\n\r\n";
        let (mut ex, _) = begin(close);
        ex.for_http2_stream();
        let list = "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n";
        let (_, lines) = respond(&mut ex, list, true);
        assert!(lines.ends_with("Content-Length: 2\r\n"), "{lines:?}");
        assert!(!lines.contains("Connection"), "{lines:?}");
        assert!(!ex.ends_with_head(2, true), "the connection goes on");
    }

    const NTLM_401: &str =
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 2\r\n\r\n";
    const NEGO_407: &str = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\nContent-Length: 2\r\n\r\n";
    const NTLM_GET: &str =
        "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: NTLM TlRMTVNTUAADAAAA\r\n\r\n";

    #[test]
    fn redirects_keep_host_path_and_method() {
        let cases = [
            (
                "GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
                443,
                "301 Moved Permanently",
                "https://example.com/a?b=1",
            ),
            (
                "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n",
                8443,
                "301 Moved Permanently",
                "https://example.com:8443/",
            ),
            (
                "POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
                443,
                "308 Permanent Redirect",
                "https://example.com/form",
            ),
            (
                "GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
                443,
                "301 Moved Permanently",
                "https://example.com/x",
            ),
            (
                "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n",
                443,
                "301 Moved Permanently",
                "https://[2001:db8::1]/",
            ),
            (
                "OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n",
                443,
                "308 Permanent Redirect",
                "https://a.example/",
            ),
            (
                "GET /login?next=http://x/y HTTP/1.1\r\nHost: a.example\r\n\r\n",
                443,
                "301 Moved Permanently",
                "https://a.example/login?next=http://x/y",
            ),
        ];
        for (req, port, status, location) in cases {
            let (ex, _) = begin(req);
            let a = redirect(req.as_bytes(), ex.request(), port);
            let text = String::from_utf8(answer_bytes(&a).to_vec()).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{text}"
            );
            assert!(
                text.contains(&format!("\r\nLocation: {location}\r\n")),
                "{text}"
            );
            assert_eq!(a.termination(), Termination(*b"LR"));
        }
        // Nowhere to send it: a Host that is not a name, or none at all.
        for req in [
            "GET / HTTP/1.1\r\nHost: a\"b.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.example:x\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
        ] {
            let (ex, _) = begin(req);
            let a = redirect(req.as_bytes(), ex.request(), 443);
            assert_eq!(a, Answer::Error(Status::BadRequest), "{req:?}");
        }
    }

    #[test]
    fn a_trusted_proxys_proto_without_a_port_gets_no_port_of_ours() {
        let req = "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n";
        let mut s = Scratch::default();
        let h = request::parse(req.as_bytes(), &mut s.req_drop, &mut s.req_inject)
            .unwrap()
            .unwrap();
        let now = Instant::now();
        let c = Client {
            trusted: true,
            ..client(false)
        };
        let ex = Exchange::begin(h, &c, s, now, now);
        let [_, fwd, _] = ex.request_injects();
        assert_eq!(fwd, b"X-Forwarded-For: 192.0.2.9\r\n");
    }

    #[test]
    fn a_trusted_clients_forwarded_proto_and_port_pass_through() {
        let req = "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n\r\n";
        for trusted in [false, true] {
            let mut s = Scratch::default();
            let h = request::parse(req.as_bytes(), &mut s.req_drop, &mut s.req_inject)
                .unwrap()
                .unwrap();
            assert_eq!(h.forwarded_proto.as_ref().map(|p| p.1), Some(true));
            let now = Instant::now();
            let c = Client {
                trusted,
                ..client(false)
            };
            let ex = Exchange::begin(h, &c, s, now, now);
            let [_, fwd, _] = ex.request_injects();
            let kept: Vec<&[u8]> = ex
                .request_drops()
                .iter()
                .map(|r| &req.as_bytes()[r.clone()])
                .collect();
            if trusted {
                assert_eq!(fwd, b"X-Forwarded-For: 192.0.2.9\r\n");
                assert!(kept.is_empty(), "{kept:?}");
            } else {
                assert_eq!(
                    fwd,
                    b"X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 443\r\n"
                );
                assert_eq!(kept.len(), 2);
            }
        }
    }

    #[test]
    fn finish_keeps_parks_pools_or_drops() {
        let end = BackendEnd::default();
        let cases = [
            // (request, response, closing, end, keep_client, reuse)
            (GET, OK, false, end, true, Reuse::Park),
            (GET, OK, true, end, false, Reuse::Pool),
            (
                GET,
                OK,
                false,
                BackendEnd { eof: true, ..end },
                true,
                Reuse::Drop,
            ),
            (
                GET,
                OK,
                false,
                BackendEnd {
                    leftover: true,
                    ..end
                },
                true,
                Reuse::Drop,
            ),
            (
                GET,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
                false,
                end,
                true,
                Reuse::Drop,
            ),
            (
                GET,
                "HTTP/1.1 200 OK\r\n\r\n",
                false,
                end,
                false,
                Reuse::Drop,
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                OK,
                false,
                end,
                false,
                Reuse::Pool,
            ),
            // Connection-bound logins: parked for their own client, never
            // pooled for another.
            (GET, NTLM_401, false, end, true, Reuse::Park),
            (GET, NTLM_401, true, end, false, Reuse::Drop),
            (GET, NEGO_407, true, end, false, Reuse::Drop),
            (NTLM_GET, OK, true, end, false, Reuse::Drop),
            (NTLM_GET, OK, false, end, true, Reuse::Park),
            (
                GET,
                OK,
                true,
                BackendEnd {
                    private: true,
                    ..end
                },
                false,
                Reuse::Drop,
            ),
            // Basic authenticates the request: the connection is shared.
            (
                GET,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 2\r\n\r\n",
                true,
                end,
                false,
                Reuse::Pool,
            ),
            // A challenge header on another status is not a login.
            (
                GET,
                "HTTP/1.1 200 OK\r\nWWW-Authenticate: NTLM\r\nContent-Length: 2\r\n\r\n",
                true,
                end,
                false,
                Reuse::Pool,
            ),
        ];
        for (req, resp, closing, end, keep, reuse) in cases {
            let (mut ex, _) = begin(req);
            respond(&mut ex, resp, closing);
            let f = ex.finish(closing, end);
            assert_eq!(
                (f.keep_client, f.backend),
                (keep, reuse),
                "{req:?} → {resp:?} {closing} {end:?}"
            );
        }
        // A request body not all sent: neither side can go on.
        let (mut ex, _) = begin("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n");
        respond(&mut ex, OK, false);
        let f = ex.finish(false, end);
        assert_eq!((f.keep_client, f.backend), (false, Reuse::Drop));
        // No response at all: nothing is kept.
        let (ex, ..) = begin(GET);
        assert_eq!(ex.finish(false, end).backend, Reuse::Drop);
    }

    #[test]
    fn timeouts_answer_504_only_before_the_status_line() {
        let (mut ex, _) = begin(GET);
        assert_eq!(ex.on_timeout(true), Timeout::Answer(Status::GatewayTimeout));
        assert_eq!(ex.on_timeout(false), Timeout::ClientIdle);
        respond(&mut ex, OK, false);
        ex.response_sent(0);
        assert_eq!(ex.on_timeout(true), Timeout::BackendIdle);
        assert_eq!(ex.on_timeout(false), Timeout::ClientIdle);
    }

    #[test]
    fn answers_and_their_termination_codes() {
        let codes: Vec<(u16, [u8; 2])> = Status::ALL
            .iter()
            .map(|s| (s.code(), Answer::Error(*s).termination().0))
            .collect();
        assert_eq!(
            codes,
            [
                (400, *b"PR"),
                (408, *b"cR"),
                (431, *b"PR"),
                (501, *b"PR"),
                (502, *b"SH"),
                (503, *b"SC"),
                (504, *b"sH"),
            ]
        );
        let key = "tok.thumb".to_string();
        let a = Answer::acme(Some(&key));
        assert_eq!(a.code(), 200);
        assert_eq!(a.termination(), Termination::NORMAL);
        assert!(
            answer_bytes(&a).ends_with(b"Content-Length: 9\r\nConnection: close\r\n\r\ntok.thumb")
        );
        assert_eq!(Answer::acme(None).code(), 404);
        assert_eq!(
            &*answer_bytes(&Answer::Error(Status::Unavailable)),
            Status::Unavailable.response()
        );
    }

    #[test]
    fn acme_tokens_are_recognised_only_in_a_get_of_the_path() {
        assert_eq!(
            acme_token(b"GET /.well-known/acme-challenge/abc_-1 HTTP/1.1\r\n"),
            Some("abc_-1")
        );
        assert_eq!(
            acme_token(b"GET /.well-known/acme-challenge/abc?x=1 HTTP/1.1\r\n"),
            Some("abc")
        );
        assert_eq!(
            acme_token(b"POST /.well-known/acme-challenge/abc HTTP/1.1\r\n"),
            None
        );
        assert_eq!(
            acme_token(b"GET /.well-known/acme-challenge/abc"),
            None,
            "incomplete"
        );
        assert_eq!(acme_token(b"GET /other HTTP/1.1\r\n"), None);
    }

    /// The response head as forwarded: the backend's fields less the
    /// dropped lines, plus the added ones and the final CRLF.
    fn forwarded(ex: &Exchange, head: &str) -> String {
        let resp = ex.response().unwrap();
        let src = &head.as_bytes()[..resp.end_of_fields];
        let [lines] = ex.response_injects();
        let mut out = [std::io::IoSlice::new(&[]); super::super::MAX_SLICES];
        let n = super::super::head_slices(src, ex.response_drops(), &[lines], 0, &mut out);
        out[..n]
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect()
    }

    /// Whether the client connection outlives the response: HTTP/1.1
    /// unless it says `close`, HTTP/1.0 only if it says `keep-alive`; and
    /// the `Connection` line that tells it so.
    #[test]
    fn keep_alive_follows_the_version_and_the_connection_line() {
        let sticky = "Cookie: CLOUD-TRITONCOMPUTE-RS=0123456789abcdef\r\n\r\n";
        let cases = [
            // (request, keeps the client, line added, backend)
            ("GET / HTTP/1.1\r\nHost: x\r\n", true, "", Reuse::Park),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
                false,
                "Connection: close\r\n",
                Reuse::Pool,
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n",
                false,
                "Connection: close\r\n",
                Reuse::Pool,
            ),
            (
                "GET / HTTP/1.0\r\n",
                false,
                "Connection: close\r\n",
                Reuse::Pool,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n",
                true,
                "Connection: keep-alive\r\n",
                Reuse::Park,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: close\r\n",
                false,
                "Connection: close\r\n",
                Reuse::Pool,
            ),
        ];
        for (req, keep, line, reuse) in cases {
            let (mut ex, _) = begin(&format!("{req}{sticky}"));
            assert_eq!(ex.request().keep_alive, keep, "{req:?}");
            let (_, lines) = respond(&mut ex, OK, false);
            assert_eq!(lines, line, "{req:?}");
            ex.response_sent(2);
            let f = ex.finish(false, BackendEnd::default());
            assert_eq!((f.keep_client, f.backend), (keep, reuse), "{req:?}");
        }
    }

    /// Only GET, HEAD, OPTIONS, PUT and DELETE are sent again after a
    /// reused connection dies, whatever their body.
    #[test]
    fn only_idempotent_methods_may_be_sent_again() {
        let cases = [
            ("GET", true),
            ("HEAD", true),
            ("OPTIONS", true),
            ("PUT", true),
            ("DELETE", true),
            ("POST", false),
            ("PATCH", false),
        ];
        for (method, again) in cases {
            let head = format!("{method} /r HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
            let (mut ex, _) = begin(&head);
            ex.set_reused(true);
            assert!(
                ex.may_retry(false, true) == again,
                "{method} with its head still going out"
            );
            let held = ex.request_sent(0);
            assert_eq!(held == Sent::Hold, again, "{method}: {held:?}");
            assert_eq!(ex.may_retry(false, false), again, "{method} sent");
        }
    }

    /// A new connection that fails is the backend's failure, not a stale
    /// keep-alive: never sent again, held head or not. Nor is a request
    /// whose body was not all written with the head (its bytes are gone).
    #[test]
    fn a_new_connection_or_a_partly_sent_body_is_never_sent_again() {
        let (mut ex, _) = begin(GET);
        assert!(!ex.may_retry(false, true), "head pending");
        assert_eq!(ex.request_sent(0), Sent::Consume(GET.len()));
        assert!(!ex.may_retry(false, false));

        let put = "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
        let (mut ex, _) = begin(put);
        ex.set_reused(true);
        assert_eq!(ex.request_sent(3), Sent::Consume(put.len() + 3));
        assert!(!ex.may_retry(false, false), "the body's bytes are gone");
        assert!(!ex.request_done());
    }

    /// A retry starts the request over on a new connection: no response,
    /// a fresh body, and its bytes are consumed this time.
    #[test]
    fn a_retry_starts_the_request_over_once() {
        let put = "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
        let (mut ex, _) = begin(put);
        ex.set_reused(true);
        assert_eq!(ex.request_sent(2), Sent::Hold);
        assert!(ex.request_done());
        ex.retry();
        assert!(ex.response().is_none() && !ex.status_sent());
        assert!(!ex.request_done(), "the body goes again from its start");
        assert_eq!(ex.backend_spoke(), None, "nothing held any more");
        // The dialer's new connection.
        ex.set_reused(false);
        assert_eq!(ex.request_sent(2), Sent::Consume(put.len() + 2));
        assert!(!ex.may_retry(false, true), "once");
    }

    /// A timeout is a 504 until the final status line went out: after an
    /// interim response, and after a final head parsed but not yet
    /// written, the client still has no status.
    #[test]
    fn a_timeout_is_a_504_until_the_final_head_is_out() {
        let post = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n";
        let (mut ex, _) = begin(post);
        respond(&mut ex, "HTTP/1.1 100 Continue\r\n\r\n", false);
        assert_eq!(ex.response_sent(0).1, AfterHead::Interim);
        assert_eq!(ex.on_timeout(true), Timeout::Answer(Status::GatewayTimeout));
        respond(&mut ex, OK, false);
        assert!(!ex.status_sent());
        assert_eq!(ex.on_timeout(true), Timeout::Answer(Status::GatewayTimeout));
        assert_eq!(ex.on_timeout(false), Timeout::ClientIdle);
        assert_eq!(ex.response_sent(0).1, AfterHead::Body);
        assert_eq!(ex.on_timeout(true), Timeout::BackendIdle);
    }

    /// An HTTP/1.0 client asking for keep-alive gets a chunked response
    /// de-chunked, so ended by the close: the client connection ends, the
    /// backend's (whose framing was intact) goes to the pool.
    #[test]
    fn a_dechunked_response_ends_the_client_but_not_the_backend() {
        let (mut ex, _) = begin("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (_, lines) = respond(&mut ex, chunked, false);
        assert!(lines.ends_with("Connection: close\r\n"), "{lines:?}");
        let head = forwarded(&ex, chunked);
        assert!(!head.contains("Transfer-Encoding"), "{head}");
        assert!(!ex.ends_with_head(0, false), "the body is still to come");
        ex.response_sent(0);
        let mut out = Vec::new();
        super::super::body::relay(ex.response_body(), b"0\r\n\r\n", |b| {
            b.iter().for_each(|x| out.extend_from_slice(x));
            Ok(b.iter().map(|x| x.len()).sum())
        })
        .unwrap();
        assert!(ex.response_done());
        assert_eq!(out, b"", "no last chunk for a client that never saw one");
        let f = ex.finish(false, BackendEnd::default());
        assert_eq!((f.keep_client, f.backend), (false, Reuse::Pool));
    }

    /// A draining balancer's last response says goodbye in its head's
    /// write whenever that write completes it: a whole small body, a
    /// bodiless status, the answer to a HEAD.
    #[test]
    fn a_draining_connections_last_head_may_say_goodbye() {
        let head = "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
        let cases = [
            // (request, response, body bytes with the head, ends?)
            (GET, OK, 2, true),
            (GET, OK, 0, false),
            (GET, "HTTP/1.1 304 Not Modified\r\n\r\n", 0, true),
            (
                head,
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
                0,
                true,
            ),
            (
                GET,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                0,
                false,
            ),
        ];
        for (req, resp, with_head, ends) in cases {
            let (mut ex, _) = begin(req);
            let (_, lines) = respond(&mut ex, resp, true);
            assert!(lines.ends_with("Connection: close\r\n"), "{lines:?}");
            assert_eq!(ex.ends_with_head(with_head, true), ends, "{req:?} {resp:?}");
            // Not draining, a keep-alive client never says goodbye.
            let (mut ex, _) = begin(req);
            respond(&mut ex, resp, false);
            assert!(!ex.ends_with_head(with_head, false), "{req:?} {resp:?}");
        }
    }

    /// A list or repeat of one Content-Length reaches the client as one
    /// canonical line, the backend's lines dropped.
    #[test]
    fn a_content_length_list_is_rewritten_as_one_line() {
        for resp in [
            "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nX-A: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            let (mut ex, _) = begin(
                "GET / HTTP/1.1\r\nHost: x\r\nCookie: CLOUD-TRITONCOMPUTE-RS=0123456789abcdef\r\n\r\n",
            );
            let (what, _) = respond(&mut ex, resp, false);
            assert_eq!(what, OnResponse::Forward);
            assert_eq!(
                forwarded(&ex, resp),
                "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n",
                "{resp:?}"
            );
        }
    }

    /// A HEAD's response has no body whatever its length says: done with
    /// its head, and the connections go on.
    #[test]
    fn a_head_requests_response_is_done_with_its_head() {
        let (mut ex, _) = begin("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        respond(&mut ex, resp, false);
        assert_eq!(ex.response_with_head(b"next"), Ok(0), "nothing of the next");
        assert_eq!(ex.response_sent(0), (resp.len(), AfterHead::Body));
        assert!(ex.response_done());
        let f = ex.finish(false, BackendEnd::default());
        assert_eq!((f.keep_client, f.backend), (true, Reuse::Park));
    }
}
