//! One HTTP transaction, without I/O: every decision the balancer makes
//! about a request and its response, as HAProxy's `http_ana.c` makes them
//! apart from the code that moves bytes. The engine's HTTP session parses
//! heads with [`super::request`] and [`super::response`], asks an
//! [`Exchange`] what to do, and does it; nothing here reads a socket or a
//! clock, so every decision is unit-tested with plain values.
//!
//! The calls, in the order of a transaction:
//! - [`Exchange::begin`]: the head to forward and the lines to add;
//! - [`Exchange::request_with_head`] / [`Exchange::request_sent`]: what goes
//!   in the head's write, and whether the request is held for a resend;
//! - [`Exchange::on_response`]: forward, pass an interim response on,
//!   switch to a tunnel, or refuse (502), with the sticky cookie to add;
//! - [`Exchange::response_sent`]: the head went out;
//! - [`Exchange::finish`]: keep the client? park, pool or drop the
//!   backend connection;
//! - [`Exchange::on_timeout`], [`Exchange::may_retry`]: the failures.
//!
//! What the balancer says itself (its errors, ACME challenges,
//! redirects) is a [`crate::proto::answer::Answer`], written for HTTP/1
//! by [`super::front`].

use std::io::Write;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use super::body::{Body, ChunkError, Framing};
use super::errors::Status;
use super::request::RequestHead;
use super::response::ResponseHead;
use crate::proto::cookie::COOKIE_NAME;

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

/// The client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// Its address.
    pub peer: SocketAddr,
    /// It speaks TLS to us.
    pub tls: bool,
    /// The service's listen port.
    pub port: u16,
    /// It is in the service's `trust_forwarded` prefixes: the
    /// `X-Forwarded-Proto`/`-Port` it sends pass through.
    pub trusted: bool,
}

/// When the parts of a transaction happened, for its access line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The request's first byte.
    pub start: Instant,
    /// Its head was complete.
    pub head: Instant,
    /// How long a new backend connection took (none for a reused one).
    pub connect: Option<Duration>,
    /// The final response head arrived.
    pub response: Option<Instant>,
}

impl Timing {
    /// From the first byte to the complete head.
    pub fn request(&self) -> Duration {
        self.head.saturating_duration_since(self.start)
    }

    /// From the complete request head to the response head.
    pub fn response(&self) -> Option<Duration> {
        self.response
            .map(|t| t.saturating_duration_since(self.head))
    }
}

/// What to do with a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnResponse {
    /// The final response: forward it with the lines in `resp_inject`.
    Forward,
    /// A 1xx (not 101): pass it on as it is; the final one is still to
    /// come.
    Interim,
    /// A `101` to an upgrade request: pass it on untouched, then carry
    /// bytes both ways.
    Tunnel,
    /// Not an answer to this request (a `101` nobody asked for, or one
    /// that does not take what the request offered): 502.
    BadGateway,
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

/// What to do with the client's buffered bytes once the request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Done with this many bytes.
    Consume(usize),
    /// Keep them until the backend answers: the connection was reused and
    /// may turn out dead, and the request may be sent again.
    Hold,
}

/// What becomes of the backend connection after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Kept by this client's connection for its next request.
    Park,
    /// Given to the worker's pool, if the backend is still in service.
    Pool,
    /// Closed.
    Drop,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// The client connection stays open for another request.
    pub keep_client: bool,
    /// The backend connection's fate.
    pub backend: Reuse,
}

/// What the backend connection was like when the response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendEnd {
    /// It sent its FIN.
    pub eof: bool,
    /// It sent bytes after the response (never part of another one).
    pub leftover: bool,
    /// It speaks TLS: its state lives in the session, never in the pool.
    pub tls: bool,
    /// An earlier exchange of this client made it private (a
    /// connection-bound login): it never goes to another client.
    pub private: bool,
}

/// What a timeout in the middle of a transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Answer with this, then close.
    Answer(Status),
    /// The backend is silent and the client already has a status line:
    /// close both.
    BackendIdle,
    /// The client is silent: close both.
    ClientIdle,
}

/// One request and its response.
#[derive(Debug)]
pub struct Exchange {
    req: RequestHead,
    req_body: Body,
    /// The response head being forwarded (interim or final).
    resp: Option<ResponseHead>,
    resp_body: Body,
    /// The final response head went out: the client has a status.
    started: bool,
    /// The `Connection` line sent with the request.
    conn_line: &'static [u8],
    /// The backend connection was reused (parked or pooled).
    reused: bool,
    /// The request was already sent once more.
    retried: bool,
    /// Bytes of the request (head and whole body) held at the front of
    /// the client's buffer until the backend answers.
    replay: Option<usize>,
    /// When its parts happened.
    pub timing: Timing,
    /// The lines its heads drop and add.
    scratch: Scratch,
}

/// Writes the `X-Forwarded-*` lines for `client` into `out` (emptied
/// first). Every request formats them, so IPv4 addresses and the port are
/// written digit by digit rather than through `fmt`, which costs several
/// times more.
/// `proto`/`port`: whether moirai writes `X-Forwarded-Proto`/`-Port`
/// (not when a trusted client's own pass through).
fn forwarding_lines(client: &Client, out: &mut Vec<u8>, proto: bool, port: bool) {
    out.clear();
    out.extend_from_slice(b"X-Forwarded-For: ");
    match client.peer.ip().to_canonical() {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, octet.into());
            }
        }
        ip @ IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
    out.extend_from_slice(b"\r\n");
    if proto {
        out.extend_from_slice(if client.tls {
            b"X-Forwarded-Proto: https\r\n"
        } else {
            b"X-Forwarded-Proto: http\r\n"
        });
    }
    if port {
        out.extend_from_slice(b"X-Forwarded-Port: ");
        push_decimal(out, client.port);
        out.extend_from_slice(b"\r\n");
    }
}

/// `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
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
        // A trusted proxy's own X-Forwarded-Proto/-Port pass through
        // (their lines leave the dropped ones); everyone else's are
        // replaced by moirai's.
        let keep = |line: &Option<Range<usize>>, drop: &mut Vec<Range<usize>>| match line {
            Some(r) if client.trusted => {
                drop.retain(|d| d != r);
                true
            }
            _ => false,
        };
        let proto_kept = keep(
            &head.forwarded_proto.as_ref().map(|(r, _)| r.clone()),
            &mut scratch.req_drop,
        );
        let port_kept = keep(&head.forwarded_port, &mut scratch.req_drop);
        // Proto and port describe one hop: with the proxy's proto, moirai's
        // own port would make `https://host:80`, so it is left out.
        forwarding_lines(
            client,
            &mut scratch.fwd,
            !proto_kept,
            !port_kept && !proto_kept,
        );
        Exchange {
            scratch,
            conn_line: if head.upgrade.is_some() {
                b"Connection: upgrade\r\n"
            } else {
                b"Connection: keep-alive\r\n"
            },
            req_body: Body::new(head.framing),
            req: head,
            resp: None,
            resp_body: Body::new(Framing::None),
            started: false,
            reused: false,
            retried: false,
            replay: None,
            timing: Timing {
                start,
                head: now,
                connect: None,
                response: None,
            },
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

    /// The sticky cookie the client sent, if any.
    pub fn sticky(&self) -> Option<[u8; 16]> {
        self.req.sticky
    }

    /// Whether the client already has a final status line.
    pub fn status_sent(&self) -> bool {
        self.started
    }

    /// The lines added to the forwarded request head, after the client's
    /// own: its other cookies, `X-Forwarded-*`, and `Connection`.
    pub fn request_injects(&self) -> [&[u8]; 3] {
        [&self.scratch.req_inject, &self.scratch.fwd, self.conn_line]
    }

    /// The client's request lines not forwarded.
    pub fn request_drops(&self) -> &[Range<usize>] {
        &self.scratch.req_drop
    }

    /// The lines added to the forwarded response head.
    pub fn response_injects(&self) -> [&[u8]; 1] {
        [&self.scratch.resp_inject]
    }

    /// The backend's response lines not forwarded.
    pub fn response_drops(&self) -> &[Range<usize>] {
        &self.scratch.resp_drop
    }

    /// Where a response head's parse puts the lines it drops.
    pub fn response_drops_mut(&mut self) -> &mut Vec<Range<usize>> {
        &mut self.scratch.resp_drop
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
        self.started && self.resp_body.is_done()
    }

    /// The backend connection was reused (true) or is new (false).
    pub fn set_reused(&mut self, reused: bool) {
        self.reused = reused;
    }

    /// The request body bytes buffered after its head (`after`) that go
    /// in the head's write: none for a chunked body, which is checked as
    /// far as it arrived (while a 400 is still possible) and re-framed
    /// later.
    pub fn request_with_head(&self, after: &[u8]) -> Result<usize, ChunkError> {
        with_head(&self.req_body, after)
    }

    /// As [`Exchange::request_with_head`], for the response (a bad chunk
    /// is still a 502 here).
    pub fn response_with_head(&self, after: &[u8]) -> Result<usize, ChunkError> {
        with_head(&self.resp_body, after)
    }

    /// The request head and `written` body bytes after it went out.
    pub fn request_sent(&mut self, written: usize) -> Sent {
        let sent = self.req.head_len + self.req_body.wrote(written);
        if self.reused && !self.retried && self.req.idempotent && self.req_body.is_done() {
            self.replay = Some(sent);
            Sent::Hold
        } else {
            Sent::Consume(sent)
        }
    }

    /// The backend sent its first bytes: the held request (if any) cannot
    /// be sent again and its bytes are done with.
    pub fn backend_spoke(&mut self) -> Option<usize> {
        self.replay.take()
    }

    /// Whether a request whose backend connection failed before any
    /// response byte may be sent once more on a new connection: only
    /// after a reused connection (which the backend may have closed while
    /// idle), once, for an idempotent method whose bytes are still held
    /// (`head_pending`: the head is still being written). HAProxy's
    /// `retry-on conn-failure empty-response`.
    pub fn may_retry(&self, answered: bool, head_pending: bool) -> bool {
        self.reused
            && !self.retried
            && !answered
            && self.req.idempotent
            && (head_pending || self.replay.is_some())
    }

    /// The request goes again on a new connection: from its first byte.
    pub fn retry(&mut self) {
        self.retried = true;
        self.reused = false;
        self.replay = None;
        self.resp = None;
        self.req_body = Body::new(self.req.framing);
    }

    /// A response head arrived at `now` (its parse put the lines it drops
    /// in [`Exchange::response_drops_mut`]). Fills the response's added
    /// lines (and adds to the dropped ones) with what the forwarded head
    /// needs:
    /// the sticky cookie for `cookie` (the backend's) when the client does
    /// not hold it, a rewritten `Content-Length`, and `Connection`.
    /// `closing`: the client connection ends after this response (the
    /// balancer drains, or the client half-closed).
    pub fn on_response(
        &mut self,
        head: ResponseHead,
        cookie: Option<&[u8; 16]>,
        closing: bool,
        now: Instant,
    ) -> OnResponse {
        self.scratch.resp_inject.clear();
        let what = if head.is_switch() {
            // Only a real switch to a protocol the client asked for opens
            // a tunnel (see `upgrade`); anything else is 502.
            let taken = match (&self.req.upgrade, head.switch.as_deref()) {
                (Some(offer), Some(answer)) => offer.accepts(answer),
                _ => false,
            };
            if !taken {
                return OnResponse::BadGateway;
            }
            // Passed on untouched.
            self.scratch.resp_drop.clear();
            OnResponse::Tunnel
        } else if head.is_interim() {
            OnResponse::Interim
        } else {
            let mut out = mem::take(&mut self.scratch.resp_inject);
            self.response_lines(&head, cookie, closing, &mut out);
            self.scratch.resp_inject = out;
            OnResponse::Forward
        };
        if what != OnResponse::Interim {
            self.timing.response = Some(now);
        }
        self.resp_body = Body::new(head.framing);
        if self.dechunks(&head) {
            // An HTTP/1.0 client never sees chunked framing: the data
            // alone, ended by the close.
            self.scratch
                .resp_drop
                .extend(head.transfer_encoding.iter().cloned());
            self.scratch.resp_drop.sort_by_key(|r| r.start);
            self.resp_body = Body::new(head.framing).dechunked();
        }
        self.resp = Some(head);
        what
    }

    fn response_lines(
        &self,
        head: &ResponseHead,
        cookie: Option<&[u8; 16]>,
        closing: bool,
        out: &mut Vec<u8>,
    ) {
        // Insert the sticky cookie when the client does not already hold
        // the right one (insert, indirect, nocache: a response that sets
        // it must not be cached and shared).
        if let Some(v) = cookie {
            if self.req.sticky.as_ref() != Some(v) {
                out.extend_from_slice(b"Set-Cookie: ");
                out.extend_from_slice(COOKIE_NAME.as_bytes());
                out.push(b'=');
                out.extend_from_slice(v);
                out.extend_from_slice(b"; path=/\r\nCache-Control: private\r\n");
            }
        }
        if let Some(n) = head.length_rewritten {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        if !self.client_keeps_alive(head, closing) {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if !self.req.http11 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
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
        self.started = true;
        let after = if resp.is_switch() {
            AfterHead::Tunnel
        } else {
            AfterHead::Body
        };
        (sent, after)
    }

    /// Whether the final response head, written with `with_head` body
    /// bytes, completes the exchange and the client connection ends after
    /// it (`closing` as for [`Exchange::finish`]): the same write may say
    /// goodbye (TLS close_notify) instead of a write of its own.
    pub fn ends_with_head(&self, with_head: usize, closing: bool) -> bool {
        let Some(resp) = &self.resp else {
            return false;
        };
        !resp.is_interim()
            && !resp.is_switch()
            && self.req_body.is_done()
            && !self.client_keeps_alive(resp, closing)
            && self.resp_body.completes_with(with_head)
    }

    /// Whether this exchange binds its backend connection to its client:
    /// the request logs in with NTLM or Negotiate (our own rule), or the
    /// response offers one of them (HAProxy 2.6's). Such a connection is
    /// never pooled, and the client keeps to its backend so the login's
    /// next steps reach the same connection.
    pub fn connection_bound(&self) -> bool {
        self.req.connection_auth || self.resp.as_ref().is_some_and(|r| r.connection_auth)
    }

    /// Both messages are complete: whether the client may send another
    /// request, and what becomes of the backend connection.
    pub fn finish(&self, closing: bool, backend: BackendEnd) -> Finish {
        let Some(resp) = &self.resp else {
            return Finish {
                keep_client: false,
                backend: Reuse::Drop,
            };
        };
        let keep_client = self.client_keeps_alive(resp, closing) && self.req_body.is_done();
        let reusable =
            resp.keep_alive && self.req_body.is_done() && !backend.eof && !backend.leftover;
        let backend = if reusable && keep_client {
            // Kept on this client connection: no pool round trip, no
            // re-registration for its next request.
            Reuse::Park
        } else if reusable && !backend.tls && !backend.private && !self.connection_bound() {
            Reuse::Pool
        } else {
            Reuse::Drop
        };
        Finish {
            keep_client,
            backend,
        }
    }

    /// The backend or client went quiet past its timeout
    /// (`backend_idle`: the backend's).
    pub fn on_timeout(&self, backend_idle: bool) -> Timeout {
        match (backend_idle, self.started) {
            (true, false) => Timeout::Answer(Status::GatewayTimeout),
            (true, true) => Timeout::BackendIdle,
            (false, _) => Timeout::ClientIdle,
        }
    }

    fn client_keeps_alive(&self, head: &ResponseHead, closing: bool) -> bool {
        !closing
            && self.req.keep_alive
            && head.framing != Framing::UntilClose
            && !self.dechunks(head)
    }

    /// A chunked response to an HTTP/1.0 request is de-chunked.
    fn dechunks(&self, head: &ResponseHead) -> bool {
        head.framing == Framing::Chunked && !self.req.http11
    }
}

fn with_head(body: &Body, after: &[u8]) -> Result<usize, ChunkError> {
    body.check(after)?;
    Ok(if body.is_chunked() {
        0
    } else {
        body.data(after).len()
    })
}

#[cfg(test)]
mod tests {
    use super::super::front::{acme_token, answer_bytes, redirect};
    use super::*;
    use crate::proto::answer::Answer;
    use crate::proto::http1::{request, response};
    use crate::proto::syslog::Termination;

    const COOKIE: [u8; 16] = *b"0123456789abcdef";

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
        let is_head = ex.request().is_head;
        let h = response::parse(head.as_bytes(), is_head, ex.response_drops_mut())
            .unwrap()
            .unwrap();
        let what = ex.on_response(h, Some(&COOKIE), closing, Instant::now());
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
            forwarding_lines(&client, &mut out, true, true);
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
            ex.timing.response, None,
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
                true,
                BackendEnd { tls: true, ..end },
                false,
                Reuse::Drop,
            ),
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
