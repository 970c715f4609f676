//! The HTTP session, scripted: keep-alive, pipelining, 1xx, 101, early
//! responses, half-close, timeouts, retries, logins, redirects.

use super::*;

/// An HTTP session on a scripted client, with its harness.
pub(super) struct Http {
    pub(super) h: Harness,
    pub(super) s: HttpSession<Script>,
    pub(super) client: Script,
}

impl Http {
    pub(super) fn new(two: bool) -> Http {
        Http::with(Harness::new("http://80:backend.example:8080", two))
    }

    /// A session on a client of `h`'s service.
    pub(super) fn with(mut h: Harness) -> Http {
        let client = Script::connected();
        let svc = h.service();
        let s = HttpSession::start(&mut h.ctx(), svc, client.clone(), peer()).unwrap();
        Http { h, s, client }
    }

    /// The client sends `bytes`, and the event says so.
    pub(super) fn send(&mut self, bytes: &[u8]) -> Step {
        self.client.push(bytes);
        self.event(Side::Client)
    }

    pub(super) fn event(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::BOTH)
    }

    /// An event that also reports the peer's FIN.
    pub(super) fn fin(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::FIN)
    }

    /// `backend`'s connect completes (or fails), and the event says so.
    pub(super) fn connect(&mut self, backend: &Script, ok: bool) -> Step {
        backend.0.borrow_mut().connected = Some(if ok {
            Ok(())
        } else {
            Err(io::ErrorKind::ConnectionRefused)
        });
        self.event(Side::Backend)
    }

    /// The backend sends `bytes`.
    pub(super) fn answer(&mut self, backend: &Script, bytes: &[u8]) -> Step {
        backend.push(bytes);
        self.event(Side::Backend)
    }

    pub(super) fn timer(&mut self) -> Step {
        self.s.on_timer(&mut self.h.ctx())
    }

    /// The status of every response the client got, in order.
    pub(super) fn statuses(&self) -> Vec<u16> {
        let seen = self.client.seen();
        seen.match_indices("HTTP/1.1 ")
            .filter(|(i, _)| seen.get(i + 12..).is_some_and(|r| r.starts_with(' ')))
            .filter_map(|(i, _)| seen.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }
}

#[test]
fn http_keep_alive_reuses_the_parked_connection() {
    let mut t = Http::new(true);
    let b = t.h.backend();
    assert_eq!(t.send(GET), Step::Open);
    assert_eq!(t.h.net.dialed.len(), 1, "one connect");
    assert_eq!(t.connect(&b, true), Step::Open);
    let seen = b.seen();
    assert!(seen.starts_with("GET /a HTTP/1.1\r\nHost: x\r\n"), "{seen}");
    assert!(seen.contains("X-Forwarded-For: 198.51.100.7\r\n"), "{seen}");
    assert!(seen.contains("X-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n"));
    assert!(seen.ends_with("Connection: keep-alive\r\n\r\n"), "{seen}");
    assert_eq!(t.answer(&b, OK), Step::Open);
    let got = t.client.seen();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("Set-Cookie: CLOUD-TRITONCOMPUTE-RS="), "{got}");
    assert!(got.ends_with("\r\n\r\nhi"), "{got}");
    assert!(!got.contains("Connection: close"));
    assert!(t.s.is_idle());
    // Between requests the connection holds neither the exchange nor its
    // vectors: both went back to the worker's free lists.
    assert_eq!((t.h.exchanges.len(), t.h.scratch.len()), (1, 1));

    // The second request rides the same backend connection, with the
    // same forwarding lines.
    assert_eq!(t.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"), Step::Open);
    assert_eq!(t.h.net.dialed.len(), 1, "no second connect");
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]);
    assert_eq!(
        b.seen()
            .matches("X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: http\r\n")
            .count(),
        2
    );
    assert_eq!((t.h.exchanges.len(), t.h.scratch.len()), (0, 0), "in use");
    assert_eq!(t.answer(&b, OK), Step::Open);
    assert_eq!(t.statuses(), [200, 200]);
}

/// Idle keep-alive connections are most of what a busy balancer holds
/// (#18 asks for half of HAProxy's memory per idle connection): the
/// session of one, the worker's slab entry being a pointer, stays small.
/// (Test builds carry 16 bytes of mio's debug state per socket.)
#[test]
fn an_idle_http_session_stays_small() {
    // Counted around its two sockets (the client's, and the backend's in
    // its stage): the emulated event ports' socket carries its
    // registration and is twice the kernel's, which this bound is not
    // about.
    let sockets = 2 * std::mem::size_of::<crate::sys::net::TcpStream>();
    let size = std::mem::size_of::<HttpSession>();
    assert!(
        size - sockets <= 376,
        "HttpSession is {size} bytes, {sockets} of them its sockets"
    );
}

#[test]
fn http_pipelined_requests_are_answered_in_order() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    let two = [GET, b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
    t.send(&two);
    t.connect(&b, true);
    // Only the first goes out before its response.
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"]);
    t.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    assert_eq!(
        lines(&b.seen()),
        ["GET /a HTTP/1.1", "GET /second HTTP/1.1"]
    );
    t.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
    let got = t.client.seen();
    let first = got.find("first").unwrap();
    let second = got.find("second").unwrap();
    assert!(first < second, "{got}");
}

#[test]
fn http_interim_responses_pass_and_the_final_one_follows() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    t.connect(&b, true);
    t.answer(&b, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(t.client.seen(), "HTTP/1.1 100 Continue\r\n\r\n");
    t.send(b"data");
    assert!(b.seen().ends_with("\r\n\r\ndata"), "{}", b.seen());
    t.answer(&b, OK);
    let got = t.client.seen();
    assert!(
        got.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{got}"
    );
    assert!(t.s.is_idle());
}

#[test]
fn http_101_becomes_a_tunnel() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(WS_REQUEST);
    t.connect(&b, true);
    let seen = b.seen();
    assert!(seen.contains("Upgrade: websocket\r\n"), "{seen}");
    assert!(seen.contains("Connection: upgrade\r\n"), "{seen}");
    t.answer(&b, WS_SWITCH.as_bytes());
    let got = t.client.seen();
    assert_eq!(got, WS_SWITCH, "passed untouched");
    b.clear_seen();
    t.send(b"\x81\x02hi");
    assert_eq!(b.0.borrow().written, b"\x81\x02hi");
    t.answer(&b, b"pong");
    assert!(t.client.seen().ends_with("pong"));
    // Both FINs go through, then the session is done.
    b.eof();
    t.event(Side::Backend);
    assert!(t.client.shut());
    t.client.eof();
    assert_eq!(t.event(Side::Client), Step::Closed(CloseReason::Done));
    assert!(b.shut());
}

/// A WebSocket upgrade request, with RFC 6455's example key.
pub(super) const WS_REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/// The switch that takes it.
pub(super) const WS_SWITCH: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// A `101` that does not take what the request offered is a 502, and the
/// backend connection is closed: never a tunnel a client could choose.
#[test]
fn http_101_that_does_not_take_the_offer_is_a_502() {
    let answers = [
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    ];
    for answer in answers {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(WS_REQUEST);
        t.connect(&b, true);
        t.answer(&b, answer.as_bytes());
        assert_eq!(t.statuses(), [502], "{answer:?}: {}", t.client.seen());
        assert_eq!(
            Rc::strong_count(&b.0),
            1,
            "{answer:?}: the backend connection is closed (dropped)"
        );
        // Nothing the client sends now reaches the backend.
        b.clear_seen();
        t.send(b"GET /through HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(b.seen(), "", "{answer:?}");
    }
}

#[test]
fn http_101_nobody_asked_for_is_a_502() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    assert_eq!(t.statuses(), [502], "{}", t.client.seen());
}

#[test]
fn http_early_response_ends_the_connection_after_it() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart");
    t.connect(&b, true);
    // The backend refuses before the body is complete.
    let step = t.answer(
        &b,
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let got = t.client.seen();
    assert_eq!(t.statuses(), [413], "{got}");
    // The rest of the body never comes: the client cannot send another
    // request, and the backend connection holds part of one.
    assert_eq!(step, Step::Closed(CloseReason::Done));
    // The FIN goes before the close: the close finds body bytes unread
    // and resets, which must not take the response with it.
    assert!(t.client.shut());
}

#[test]
fn http_half_closed_client_gets_its_answer_then_the_close() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.client.push(GET);
    t.client.eof();
    t.fin(Side::Client);
    t.connect(&b, true);
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"]);
    let step = t.answer(&b, OK);
    let got = t.client.seen();
    assert!(got.contains("Connection: close\r\n"), "{got}");
    assert!(got.ends_with("hi"));
    assert_eq!(step, Step::Closed(CloseReason::Done));
}

#[test]
fn http_slow_head_gets_408_and_silent_backend_504() {
    let mut t = Http::new(false);
    t.send(b"GET /slow HTTP/1.1\r\nHo");
    t.h.later(crate::engine::http::HEADER_TIMEOUT);
    t.timer();
    assert_eq!(t.statuses(), [408], "{}", t.client.seen());

    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.h.later(Duration::from_secs(121));
    t.timer();
    assert_eq!(t.statuses(), [504], "{}", t.client.seen());
}

#[test]
fn http_connect_failures_redispatch_once_then_503() {
    // At once, then later: both count, the second backend gets it.
    let mut t = Http::new(true);
    t.h.refuse();
    let b = t.h.backend();
    t.send(GET);
    assert_eq!(t.h.net.dialed.len(), 2);
    assert_ne!(t.h.net.dialed[0], t.h.net.dialed[1], "another backend");
    t.connect(&b, true);
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"]);

    let mut t = Http::new(true);
    let (b1, b2) = (t.h.backend(), t.h.backend());
    t.send(GET);
    t.connect(&b1, false);
    assert_eq!(t.h.net.dialed.len(), 2);
    t.connect(&b2, false);
    assert_eq!(t.statuses(), [503], "{}", t.client.seen());
    let svc = t.h.service();
    assert_eq!(
        svc.stats.of(0).retries.get(),
        1,
        "one retry for two attempts"
    );

    // A connect that never completes times out and moves on.
    let mut t = Http::new(true);
    let (_b1, b2) = (t.h.backend(), t.h.backend());
    t.send(GET);
    t.h.later(Duration::from_secs(2));
    t.timer();
    assert_eq!(t.h.net.dialed.len(), 2);
    t.connect(&b2, true);
    assert_eq!(lines(&b2.seen()), ["GET /a HTTP/1.1"]);
}

#[test]
fn http_dead_reused_connection_is_retried_for_a_get_only() {
    for (request, retried) in [
        (GET, true),
        (
            &b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"[..],
            false,
        ),
    ] {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        t.answer(&b, OK);
        // The parked connection died without a word; the next request
        // finds out after sending.
        let fresh = t.h.backend();
        t.send(request);
        b.eof();
        t.event(Side::Backend);
        let svc = t.h.service();
        let retries = svc.stats.of(0).retries.get();
        assert_eq!(retries, u64::from(retried), "the dialer counts a resend");
        if retried {
            assert_eq!(t.h.net.dialed.len(), 2, "sent again on a new connection");
            t.connect(&fresh, true);
            assert_eq!(lines(&fresh.seen()), ["GET /a HTTP/1.1"]);
            t.answer(&fresh, OK);
            assert_eq!(
                t.statuses(),
                [200, 200],
                "the client never sees the failure"
            );
        } else {
            assert_eq!(t.h.net.dialed.len(), 1, "a POST is never sent twice");
            assert_eq!(t.statuses(), [200, 502], "{}", t.client.seen());
        }
    }
}

/// NTLM and Negotiate log in the connection, not the request: after a
/// 401 offering one, the client's next requests go to the same backend
/// (even on a new connection, and though the balancer would choose the
/// other), and its backend connection never reaches the pool. A Basic
/// 401 changes nothing.
#[test]
fn http_a_connection_bound_login_stays_with_its_client() {
    let ntlm = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n";
    let basic =
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n";
    let cases = [
        (&ntlm[..], "NTLM TlRMTVNTUAABAAAA", true),
        (&basic[..], "Basic dXNlcjpwYXNz", false),
    ];
    for (challenge, credentials, private) in cases {
        let mut t = Http::new(true);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        t.answer(&b, challenge);
        // The idle connection is closed by the backend: the login's next
        // step needs a new one.
        b.eof();
        t.event(Side::Backend);
        let b2 = t.h.backend();
        t.send(
            format!("GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: {credentials}\r\n\r\n")
                .as_bytes(),
        );
        let [first, second] = t.h.net.dialed[..] else {
            panic!("{:?}", t.h.net.dialed)
        };
        assert_eq!(first == second, private, "pinned: {first} {second}");
        t.connect(&b2, true);
        t.answer(&b2, OK);
        // The client's last request: its connection ends, and the backend
        // connection goes to the pool only if no login is on it.
        t.send(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        t.answer(&b2, OK);
        assert_eq!(t.statuses(), [401, 200, 200]);
        assert_eq!(t.h.idle.len(), usize::from(!private), "pooled");
    }
}

/// A redirecting service still answers ACME http-01 challenges (its
/// certificate may be ordered through this very listener), redirects
/// everything else without a backend, and proxies a trusted proxy's
/// request that came over https.
#[test]
fn http_redirects_but_answers_acme_challenges_first() {
    let mut h = Harness::with_acme(
        "http://80:backend.example:8080{redirect:https,trust_forwarded:198.51.100.0/24}",
        false,
        [("tok".to_owned(), "tok.key-auth".to_owned())].into(),
    );
    let svc = h.service();
    let cases: [(&[u8], &str); 3] = [
        (
            b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK",
        ),
        (
            b"GET /page?q=1 HTTP/1.1\r\nHost: site.example\r\n\r\n",
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://site.example/page?q=1\r\n",
        ),
        (
            b"GET /p HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n",
            "",
        ),
    ];
    for (request, answer) in cases {
        let client = Script::connected();
        let mut s =
            HttpSession::start(&mut h.ctx(), Arc::clone(&svc), client.clone(), peer()).unwrap();
        let dialed = h.net.dialed.len();
        client.push(request);
        s.on_event(&mut h.ctx(), Side::Client, Readiness::BOTH);
        let got = client.seen();
        if answer.is_empty() {
            // The peer (198.51.100.7) is trusted and says https: proxied.
            assert_eq!(h.net.dialed.len(), dialed + 1, "{got}");
            assert_eq!(got, "");
        } else {
            assert!(got.starts_with(answer), "{got}");
            assert_eq!(h.net.dialed.len(), dialed, "no backend contacted");
        }
    }
}

/// A login moved by a failed connect: pinned to B1, whose connect then
/// fails, the login's next request is redialled to B2 and logs in there.
/// No connection of this client may reach the shared pool afterwards
/// (once the B2 connection was pooled when the next request went back to
/// the old pin).
#[test]
fn http_a_login_moved_by_a_failed_connect_stays_private() {
    let nego = b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Negotiate YIIB\r\n\r\n";
    let mut t = Http::new(true);
    let b1 = t.h.backend();
    t.send(nego);
    t.connect(&b1, true);
    t.answer(&b1, OK);
    // The pinned backend's idle connection closes; its next connect is
    // refused at once, so the dialer moves the request to the other one.
    b1.eof();
    t.event(Side::Backend);
    t.h.refuse();
    let b2 = t.h.backend();
    t.send(nego);
    let [first, again, moved] = t.h.net.dialed[..] else {
        panic!("{:?}", t.h.net.dialed)
    };
    assert_eq!(first, again, "pinned");
    assert_ne!(again, moved, "redialled");
    t.connect(&b2, true);
    t.answer(&b2, OK);
    // Requests without credentials after that, the last one closing: the
    // logged-in connection is reused, then closed, never pooled.
    t.send(GET);
    t.answer(&b2, OK);
    t.send(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    t.answer(&b2, OK);
    assert_eq!(t.statuses(), [200, 200, 200, 200]);
    assert_eq!(t.h.idle.len(), 0, "a logged-in connection was pooled");
}

/// The response that ends a client's connection is written as the
/// socket's last bytes (so the FIN may ride on them, `net::send_final`),
/// and the FIN is sent before the close, in the same turn: a close with
/// client bytes unread would reset the connection and drop a held
/// segment. A response the client's connection outlives is an ordinary
/// write.
#[test]
fn the_response_before_a_close_is_the_sockets_final_write() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, OK);
    assert_eq!(t.client.0.borrow().final_writes, 0, "keep-alive");
    t.send(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(t.answer(&b, OK), Step::Closed(CloseReason::Done));
    assert_eq!(t.statuses(), [200, 200]);
    assert_eq!(t.client.0.borrow().final_writes, 1);
    assert!(t.client.shut(), "the FIN goes before the close");
}

#[test]
fn http_bad_chunk_is_a_400_before_anything_is_forwarded() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    );
    t.connect(&b, true);
    assert_eq!(b.seen(), "", "nothing forwarded");
    assert_eq!(t.statuses(), [400], "{}", t.client.seen());
}

#[test]
fn http_slow_client_socket_gets_the_whole_response_in_pieces() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.client.0.borrow_mut().room = Some(7);
    t.answer(&b, OK);
    assert_eq!(t.client.seen().len(), 7);
    for _ in 0..100 {
        t.client.0.borrow_mut().room = Some(7);
        t.event(Side::Client);
    }
    assert!(
        t.client.seen().ends_with("\r\n\r\nhi"),
        "{}",
        t.client.seen()
    );
    assert!(t.s.is_idle());
}
