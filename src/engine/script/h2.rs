//! The HTTP/2 front, scripted: a client speaking frames to an `http`
//! service (prior knowledge), its streams as legs on scripted backends.
//! Streams interleaved, a slow backend among fast ones, windows
//! exhausted, resets at every stage, GOAWAY during streams, the cap on
//! backend connections, bodies both ways.

use super::http::Http;
use super::*;
use crate::proto::h2::frame::{flags, Header, Kind};
use crate::proto::h2::hpack::{Decoder, ListLimits};
use crate::proto::h2::testkit::{
    data, headers, parse_frames, rst, settings, window_update, GET, POST,
};
use crate::proto::h2::{ErrorCode, PREFACE};

/// A session that spoke the preface, with what its client got.
pub(super) struct H2 {
    pub(super) t: Http,
    /// Frames the client got and has not looked at.
    got: Vec<(Header, Vec<u8>)>,
}

/// One stream's response as the client got it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Response {
    fields: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) ended: bool,
    pub(super) reset: Option<ErrorCode>,
}

impl Response {
    pub(super) fn status(&self) -> &str {
        self.field(":status").unwrap_or("")
    }

    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl H2 {
    pub(super) fn new(two: bool) -> H2 {
        H2::on("http://80:backend.example:8080", two)
    }

    pub(super) fn on(entry: &str, two: bool) -> H2 {
        let mut t = Http::with(Harness::new(entry, two));
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(&[]));
        t.send(&hello);
        let mut h = H2 { t, got: Vec::new() };
        h.frames();
        // Our SETTINGS acknowledged.
        h.send(&[0, 0, 0, 4, 1, 0, 0, 0, 0]);
        h.frames();
        h.got.clear();
        h
    }

    /// The client sends `bytes`.
    pub(super) fn send(&mut self, bytes: &[u8]) -> Step {
        self.t.send(bytes)
    }

    /// Every backend socket reports readiness, in one batch of events:
    /// then, as the worker does, a session that said `Again` runs once
    /// more (and writes what the batch queued).
    pub(super) fn backends(&mut self) -> Step {
        let mut step = Step::Open;
        let mut again = false;
        for leg in self.t.h.legs.open_legs() {
            step = self
                .t
                .s
                .on_leg_event(&mut self.t.h.ctx(), leg, Readiness::BOTH);
            again |= step == Step::Again;
        }
        while again && !matches!(step, Step::Closed(_)) {
            step = self.t.s.drive(&mut self.t.h.ctx());
            again = step == Step::Again;
        }
        step
    }

    /// `backend`'s connect completes.
    pub(super) fn connect(&mut self, backend: &Script) -> Step {
        backend.0.borrow_mut().connected = Some(Ok(()));
        self.backends()
    }

    /// `backend` sends `bytes`.
    pub(super) fn answer(&mut self, backend: &Script, bytes: &[u8]) -> Step {
        backend.push(bytes);
        self.backends()
    }

    /// Takes the client's new frames into `got`.
    pub(super) fn frames(&mut self) -> &[(Header, Vec<u8>)] {
        let bytes = self.t.client.0.borrow().written.clone();
        self.t.client.clear_seen();
        self.got.extend(parse_frames(&bytes));
        &self.got
    }

    /// Stream `id`'s response so far.
    pub(super) fn response(&mut self, id: u32) -> Response {
        self.frames();
        let mut r = Response::default();
        let mut dec = Decoder::new(4096);
        let limits = ListLimits {
            max_list_size: 1 << 20,
            max_fields: 200,
        };
        for (h, p) in self.got.iter().filter(|(h, _)| h.stream.get() == id) {
            match h.kind {
                Kind::Headers => {
                    for f in dec.decode(p, limits).unwrap().fields.to_vec() {
                        r.fields.push((
                            String::from_utf8(f.name).unwrap(),
                            String::from_utf8(f.value).unwrap(),
                        ));
                    }
                }
                Kind::Data => r.body.extend_from_slice(p),
                Kind::RstStream => {
                    r.reset = Some(ErrorCode::from_u32(u32::from_be_bytes([
                        p[0], p[1], p[2], p[3],
                    ])))
                }
                _ => {}
            }
            r.ended |= h.flags & flags::END_STREAM != 0;
        }
        r
    }

    /// GOAWAYs the client got, as (last stream, code).
    pub(super) fn goaways(&mut self) -> Vec<(u32, ErrorCode)> {
        self.frames();
        self.got
            .iter()
            .filter(|(h, _)| h.kind == Kind::GoAway)
            .map(|(_, p)| {
                let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                (last, ErrorCode::from_u32(code))
            })
            .collect()
    }

    /// The connection ended as it should: its last GOAWAY and a FIN
    /// out, its streams' legs gone, and it reads until the client closes
    /// (so unread input cannot turn the close into a reset).
    pub(super) fn lingers(&mut self, step: Step) {
        assert_eq!(step, Step::Open, "lingers");
        assert!(self.t.client.shut(), "the FIN follows the GOAWAY");
        assert_eq!(self.legs(), 0);
        self.t.client.push(b"late bytes");
        assert_eq!(self.t.event(Side::Client), Step::Open, "read and dropped");
        self.t.client.eof();
        assert_eq!(self.t.fin(Side::Client), Step::Closed(CloseReason::Done));
    }

    pub(super) fn legs(&self) -> usize {
        self.t.h.legs.len()
    }
}

pub(super) fn get(stream: u32, path: &str) -> Vec<u8> {
    let mut f = GET.to_vec();
    f[2] = (":path", path);
    headers(stream, &f, true)
}

pub(super) fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn streams_interleave_each_on_its_own_backend_connection() {
    let mut c = H2::new(false);
    let (b1, b3) = (c.t.h.backend(), c.t.h.backend());
    c.send(&[get(1, "/one"), get(3, "/three")].concat());
    assert_eq!(c.t.h.net.dialed.len(), 2, "a connection each");
    c.connect(&b1);
    c.connect(&b3);
    let seen = b1.seen();
    assert!(
        seen.starts_with("GET /one HTTP/1.1\r\nhost: example.com\r\n"),
        "{seen}"
    );
    assert!(seen.contains("X-Forwarded-For: 198.51.100.7\r\n"), "{seen}");
    assert!(lines(&b3.seen()) == ["GET /three HTTP/1.1"]);
    // The second answers first.
    c.answer(&b3, &ok("three"));
    let r3 = c.response(3);
    assert_eq!(
        (r3.status(), &r3.body[..], r3.ended),
        ("200", &b"three"[..], true)
    );
    assert!(r3
        .field("set-cookie")
        .is_some_and(|v| v.starts_with("CLOUD-TRITONCOMPUTE-RS=")));
    assert!(r3.field("connection").is_none(), "no hop-by-hop field");
    assert_eq!(c.response(1), Response::default(), "stream 1 still waits");
    c.answer(&b1, &ok("one"));
    let r1 = c.response(1);
    assert_eq!(
        (r1.status(), &r1.body[..], r1.ended),
        ("200", &b"one"[..], true)
    );
    assert_eq!(c.t.s.service().stats.totals().h2_streams, 2);
}

#[test]
fn responses_that_arrive_together_go_out_in_one_write() {
    let mut c = H2::new(false);
    let (b1, b3) = (c.t.h.backend(), c.t.h.backend());
    c.send(&[get(1, "/one"), get(3, "/three")].concat());
    c.connect(&b1);
    c.connect(&b3);
    c.frames();
    let before = c.t.client.0.borrow().write_calls;
    b1.push(&ok("one"));
    b3.push(&ok("three"));
    assert_eq!(c.backends(), Step::Open);
    assert_eq!(
        c.t.client.0.borrow().write_calls - before,
        1,
        "both responses in one write"
    );
    assert_eq!(c.response(1).body, b"one");
    assert_eq!(c.response(3).body, b"three");
}

#[test]
fn a_finished_streams_connection_serves_the_next_stream() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    c.answer(&b, &ok("a"));
    assert!(c.response(1).ended);
    assert_eq!(c.legs(), 1, "kept for this client");
    c.send(&get(3, "/b"));
    assert_eq!(c.t.h.net.dialed.len(), 1, "no second connect");
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]);
    c.answer(&b, &ok("b"));
    assert_eq!(c.response(3).body, b"b");
}

#[test]
fn a_slow_backend_holds_up_only_its_own_stream() {
    let mut c = H2::new(true);
    let (slow, fast) = (c.t.h.backend(), c.t.h.backend());
    c.send(&[get(1, "/slow"), get(3, "/fast")].concat());
    c.connect(&slow);
    c.connect(&fast);
    c.answer(&fast, &ok("quick"));
    assert_eq!(c.response(3).body, b"quick");
    assert!(!c.response(1).ended);
    // Its deadline is the server timeout's, not the connection's.
    c.t.h
        .later(c.t.s.service().timeouts.server + Duration::from_secs(1));
    assert_eq!(c.t.timer(), Step::Open, "the connection goes on");
    let r1 = c.response(1);
    assert_eq!(r1.status(), "504", "{r1:?}");
    assert!(r1.ended);
}

#[test]
fn a_client_reset_cuts_the_leg_and_its_backend_connection() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    assert_eq!(c.legs(), 1);
    assert_eq!(c.send(&rst(1, ErrorCode::Cancel)), Step::Open);
    assert_eq!(
        c.legs(),
        0,
        "its backend connection is closed, never pooled"
    );
    assert_eq!(c.t.h.idle.len(), 0);
    let r = c.response(1);
    assert_eq!(r, Response::default(), "nothing sent on it");
    // The connection goes on.
    let b2 = c.t.h.backend();
    c.send(&get(3, "/b"));
    c.connect(&b2);
    c.answer(&b2, &ok("b"));
    assert_eq!(c.response(3).body, b"b");
    assert_eq!(c.t.s.service().stats.totals().h2_resets_in, 1);
}

#[test]
fn a_reset_in_the_middle_of_a_response_body_cuts_it() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    c.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
    let r = c.response(1);
    assert_eq!(
        (r.status(), &r.body[..], r.ended),
        ("200", &b"half"[..], false)
    );
    c.send(&rst(1, ErrorCode::Cancel));
    assert_eq!(c.legs(), 0);
    c.answer(&b, b"rest!!");
    assert_eq!(c.response(1).body, b"half", "nothing after the reset");
}

#[test]
fn a_backend_that_fails_after_the_status_resets_the_stream() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    c.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
    b.eof();
    assert_eq!(c.backends(), Step::Open, "the connection goes on");
    let r = c.response(1);
    assert_eq!(r.reset, Some(ErrorCode::Internal), "{r:?}");
    assert_eq!(c.t.s.service().stats.totals().h2_resets_out, 1);
}

#[test]
fn a_closed_window_holds_the_body_until_the_client_opens_it() {
    let mut c = H2::new(false);
    // The client's streams start with no window.
    c.send(&settings(&[(0x4, 0)]));
    let b = c.t.h.backend();
    c.send(&get(1, "/a"));
    c.connect(&b);
    c.answer(&b, &ok("hello"));
    let r = c.response(1);
    assert_eq!((r.status(), r.body.len(), r.ended), ("200", 0, false));
    c.send(&window_update(1, 3));
    assert_eq!(c.response(1).body, b"hel");
    c.send(&window_update(1, 100));
    let r = c.response(1);
    assert_eq!((&r.body[..], r.ended), (&b"hello"[..], true));
}

#[test]
fn a_request_body_reaches_the_backend_with_our_framing() {
    // With a content-length: as is.
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    let mut f = POST.to_vec();
    f.push(("content-length", "5"));
    c.send(&[headers(1, &f, false), data(1, b"he", false)].concat());
    c.connect(&b);
    c.send(&data(1, b"llo", true));
    let seen = b.seen();
    assert!(seen.contains("content-length: 5\r\n"), "{seen}");
    assert!(seen.ends_with("\r\n\r\nhello"), "{seen}");
    c.answer(&b, &ok(""));
    assert!(c.response(1).ended);

    // Without one: chunked, the trailers after the last chunk.
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&[headers(1, &POST, false), data(1, b"abc", false)].concat());
    c.connect(&b);
    c.send(&headers(1, &[("x-sum", "7")], true));
    let seen = b.seen();
    assert!(seen.contains("transfer-encoding: chunked\r\n"), "{seen}");
    assert!(
        seen.ends_with("\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 7\r\n\r\n"),
        "{seen}"
    );
}

#[test]
fn a_response_before_the_request_ends_drops_the_rest_of_it() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&[headers(1, &POST, false), data(1, b"abc", false)].concat());
    c.connect(&b);
    c.answer(&b, &ok("early"));
    let r = c.response(1);
    assert_eq!((&r.body[..], r.ended, r.reset), (&b"early"[..], true, None));
    // The rest is read and dropped; the window is credited back.
    c.send(&data(1, &[7; 1000], false));
    c.send(&data(1, b"", true));
    assert_eq!(c.response(1).reset, None);
    assert!(!b.seen().contains("\x07\x07"), "none of it went on");
}

#[test]
fn a_malformed_request_is_a_stream_error_and_reaches_no_backend() {
    let mut c = H2::new(false);
    let mut f = GET.to_vec();
    f.push(("connection", "keep-alive"));
    c.send(&headers(1, &f, true));
    assert_eq!(c.response(1).reset, Some(ErrorCode::Protocol));
    assert!(c.t.h.net.dialed.is_empty());
    // The connection goes on.
    let b = c.t.h.backend();
    c.send(&get(3, "/"));
    c.connect(&b);
    c.answer(&b, &ok("x"));
    assert_eq!(c.response(3).body, b"x");
}

#[test]
fn a_switch_from_the_backend_is_a_502() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/ws"));
    c.connect(&b);
    c.answer(
        &b,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    );
    let r = c.response(1);
    assert_eq!((r.status(), r.ended), ("502", true), "{r:?}");
    assert_eq!(c.legs(), 0, "that connection is not kept");
}

#[test]
fn no_backend_is_a_503_on_the_stream() {
    let mut c = H2::new(false);
    c.t.h.refuse();
    c.t.h.refuse();
    c.send(&get(1, "/"));
    let r = c.response(1);
    assert_eq!((r.status(), r.ended), ("503", true), "{r:?}");
    let length: usize = r.field("content-length").unwrap().parse().unwrap();
    assert_eq!(r.body.len(), length, "the body of our answer: {r:?}");
}

#[test]
fn backend_connections_are_capped_and_queued_streams_reuse_them() {
    use crate::engine::http::h2::MAX_LEGS;
    let mut c = H2::new(false);
    let n = MAX_LEGS as u32 + 4;
    let backends: Vec<Script> = (0..MAX_LEGS).map(|_| c.t.h.backend()).collect();
    let all: Vec<u8> = (0..n).flat_map(|i| get(2 * i + 1, "/")).collect();
    c.send(&all);
    assert_eq!(c.t.h.net.dialed.len(), MAX_LEGS, "the rest wait");
    for b in &backends {
        c.connect(b);
    }
    // The first answer frees a connection: a waiting stream takes it and
    // its request goes out at once, though nothing more happens on it.
    c.answer(&backends[0], &ok("k"));
    assert_eq!(lines(&backends[0].seen()).len(), 2, "the next request went");
    for b in &backends[1..] {
        c.answer(b, &ok("k"));
    }
    // Each finished stream's connection took a waiting one: no connect,
    // and every waiting request went out with no event of its own (the
    // connection it took had nothing to say).
    assert_eq!(c.t.h.net.dialed.len(), MAX_LEGS);
    let sent: usize = backends.iter().map(|b| lines(&b.seen()).len()).sum();
    assert_eq!(sent, n as usize, "every request reached a backend");
    for b in backends.iter().take(4) {
        c.answer(b, &ok("k"));
    }
    for i in 0..n {
        let r = c.response(2 * i + 1);
        assert_eq!((r.status(), r.ended), ("200", true), "stream {}", 2 * i + 1);
    }
}

#[test]
fn a_chunked_responses_trailers_end_the_stream_in_headers() {
    let mut c = H2::new(false);
    let b = c.t.h.backend();
    c.send(&get(1, "/t"));
    c.connect(&b);
    c.answer(
        &b,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nGrpc-Status: 0\r\nSet-Cookie: x\r\n\r\n",
    );
    c.frames();
    let kinds: Vec<(Kind, bool)> = c
        .got
        .iter()
        .filter(|(h, _)| h.stream.get() == 1)
        .map(|(h, _)| (h.kind, h.flags & flags::END_STREAM != 0))
        .collect();
    assert_eq!(
        kinds,
        [
            (Kind::Headers, false),
            (Kind::Data, false),
            (Kind::Headers, true)
        ],
        "head, data, trailers ending the stream"
    );
    let r = c.response(1);
    assert_eq!(r.body, b"hi");
    assert_eq!(r.field("grpc-status"), Some("0"));
    assert!(
        !r.fields.iter().any(|(n, v)| n == "set-cookie" && v == "x"),
        "a forbidden trailer is dropped: {r:?}"
    );
}

#[test]
fn our_answer_to_a_head_request_has_no_body() {
    let mut c = H2::new(false);
    c.t.h.refuse();
    c.t.h.refuse();
    let mut f = GET.to_vec();
    f[0] = (":method", "HEAD");
    c.send(&headers(1, &f, true));
    let r = c.response(1);
    assert_eq!((r.status(), r.ended), ("503", true));
    assert!(r.body.is_empty(), "{r:?}");
}

#[test]
fn an_early_answer_credits_the_body_it_will_not_forward() {
    let mut c = H2::new(false);
    // Stream 1's body fills its window while its backend answers at once.
    let b = c.t.h.backend();
    let mut f = POST.to_vec();
    f.push(("content-length", "65535"));
    c.send(&[headers(1, &f, false), data(1, &[1; 16_384], false)].concat());
    c.connect(&b);
    c.send(&data(1, &[2; 16_384], false));
    c.answer(&b, b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n");
    let r = c.response(1);
    assert_eq!((r.status(), r.ended), ("413", true));
    // Every byte it sent is credited back: the stream's window is whole
    // again, so the client can send the rest and END_STREAM.
    let credited: u32 = c
        .got
        .iter()
        .filter(|(h, _)| h.kind == Kind::WindowUpdate && h.stream.get() == 1)
        .map(|(_, p)| u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
        .sum();
    assert_eq!(credited, 2 * 16_384);
}

/// A stream that waited too long for a backend connection is answered 503
/// and the body it had sent is credited back at once, as for any answer
/// of ours, so the client can finish it.
#[test]
fn a_queue_timeout_credits_the_body_of_the_stream_it_answers() {
    use crate::engine::http::h2::MAX_LEGS;
    let mut c = H2::new(false);
    for _ in 0..MAX_LEGS {
        c.t.h.backend();
    }
    let busy: Vec<u8> = (0..MAX_LEGS as u32)
        .flat_map(|i| get(2 * i + 1, "/"))
        .collect();
    c.send(&busy);
    let id = 2 * MAX_LEGS as u32 + 1;
    let mut f = POST.to_vec();
    f.push(("content-length", "65535"));
    // Half its window: credit goes back in WINDOW_UPDATEs of half a window.
    let body = [data(id, &[1; 16_384], false), data(id, &[2; 16_384], false)];
    c.send(&[headers(id, &f, false), body.concat()].concat());
    assert_eq!(
        c.t.h.net.dialed.len(),
        MAX_LEGS,
        "it waits for a connection"
    );
    let t = c.t.s.service().timeouts;
    let wait = if t.queue.is_zero() { t.server } else { t.queue };
    c.t.h.later(wait + Duration::from_secs(1));
    c.t.timer();
    let r = c.response(id);
    assert_eq!(r.status(), "503");
    let credited: u32 = c
        .got
        .iter()
        .filter(|(h, _)| h.kind == Kind::WindowUpdate && h.stream.get() == id)
        .map(|(_, p)| u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
        .sum();
    assert_eq!(credited, 2 * 16_384);
}
