//! A request's leg, scripted, one failing transition each: the connect
//! (refused, timed out, skipped with a pooled connection), sending the
//! head (a write failure on a new or a reused connection, a blocked
//! socket), the exchange (bad request framing, a client or backend giving
//! up, bad or huge response heads, truncated and close-delimited bodies,
//! timeouts), how it finishes (keep-alive, close, drain, park, pool,
//! drop), the tunnel after a `101`, and the buffers it gives back.

use super::http::{Http, WS_REQUEST, WS_SWITCH};
use super::*;
use crate::config::Timeouts;
use crate::engine::buffer::BUFFER_SIZE;
use crate::proto::http1::errors::Status;

/// The balancer's own response for `status`, as text.
fn own(status: Status) -> String {
    String::from_utf8_lossy(status.response()).into_owned()
}

/// A harness for one backend whose service has the timeouts `f` makes.
fn timed(f: impl FnOnce(&mut Timeouts)) -> Harness {
    let mut h = Harness::new("http://80:backend.example:8080", false);
    let svc = h.service();
    let mut timeouts = svc.timeouts;
    f(&mut timeouts);
    h.snapshot.services = vec![Arc::new(ServiceSnapshot {
        spec: svc.spec.clone(),
        index: svc.index,
        timeouts,
        backends: svc.backends.clone(),
        no_backends: None,
        stats: Arc::clone(&svc.stats),
        tls: None,
        acme: Arc::clone(&svc.acme),
    })];
    h
}

/// A session whose first request got `OK` from the returned backend,
/// whose connection is now parked.
fn served() -> (Http, Script) {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    assert_eq!(t.answer(&b, OK), Step::Open);
    assert!(t.s.is_idle());
    (t, b)
}

/// Whether the session (or anything) still holds the socket's other end.
fn dropped(s: &Script) -> bool {
    Rc::strong_count(&s.0) == 1
}

// ---- connect ---------------------------------------------------------

#[test]
fn two_connects_refused_at_once_are_a_503() {
    let mut t = Http::new(true);
    t.h.refuse();
    t.h.refuse();
    assert_eq!(t.send(GET), Step::Open);
    let [first, second] = t.h.net.dialed[..] else {
        panic!("{:?}", t.h.net.dialed)
    };
    assert_ne!(first, second, "the second try goes elsewhere");
    assert_eq!(t.client.seen(), own(Status::Unavailable));
}

#[test]
fn a_connect_that_times_out_twice_is_a_503() {
    let mut t = Http::new(true);
    let (b1, b2) = (t.h.backend(), t.h.backend());
    t.send(GET);
    let connect = t.h.service().timeouts.connect;
    assert_eq!(t.s.deadline(), t.h.now + connect);
    t.h.later(connect);
    assert_eq!(t.timer(), Step::Open);
    assert_eq!(t.h.net.dialed.len(), 2);
    assert!(dropped(&b1), "the first attempt is closed");
    t.h.later(connect);
    assert_eq!(t.timer(), Step::Open, "answering, then lingering");
    assert_eq!(t.client.seen(), own(Status::Unavailable));
    assert!(dropped(&b2));
    assert_eq!((b1.seen(), b2.seen()), (String::new(), String::new()));
}

/// `http-reuse safe`: another client's idle connection serves a client's
/// second request, never its first.
#[test]
fn a_clients_first_request_never_takes_a_pooled_connection() {
    let mut t = Http::new(false);
    let b1 = t.h.backend();
    t.send(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    t.connect(&b1, true);
    assert_eq!(t.answer(&b1, OK), Step::Closed(CloseReason::Done));
    assert_eq!(t.h.idle.len(), 1, "pooled");

    // Another client, on the same worker.
    let h = &mut t.h;
    let client = Script::connected();
    let svc = h.service();
    let mut s = HttpSession::start(&mut h.ctx(), svc, client.clone(), peer()).unwrap();
    let b2 = h.backend();
    client.push(GET);
    s.on_event(&mut h.ctx(), Side::Client, Readiness::BOTH);
    assert_eq!(h.net.dialed.len(), 2, "a connect of its own");
    assert_eq!(h.idle.len(), 1, "the pooled one stays");
    b2.0.borrow_mut().connected = Some(Ok(()));
    s.on_event(&mut h.ctx(), Side::Backend, Readiness::BOTH);
    b2.push(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    assert_eq!(
        s.on_event(&mut h.ctx(), Side::Backend, Readiness::BOTH),
        Step::Open
    );
    assert!(dropped(&b2), "the backend closes it");

    // Its second request takes the pooled connection.
    client.push(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    s.on_event(&mut h.ctx(), Side::Client, Readiness::BOTH);
    assert_eq!(h.net.dialed.len(), 2, "no connect");
    assert_eq!(h.idle.len(), 0);
    assert_eq!(lines(&b1.seen()), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]);
    b1.push(OK);
    s.on_event(&mut h.ctx(), Side::Backend, Readiness::BOTH);
    assert_eq!(client.seen().matches("HTTP/1.1 200 OK\r\n").count(), 2);
}

// ---- sending the head ------------------------------------------------

#[test]
fn a_write_failure_on_a_new_connection_is_a_502() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    b.0.borrow_mut().broken = true;
    t.send(GET);
    assert_eq!(t.connect(&b, true), Step::Open);
    assert_eq!(t.client.seen(), own(Status::BadGateway));
    assert_eq!(t.h.net.dialed.len(), 1, "never sent again");
    assert!(dropped(&b));
}

#[test]
fn a_write_failure_on_a_reused_connection_sends_a_get_again() {
    let (mut t, b) = served();
    b.0.borrow_mut().broken = true;
    let fresh = t.h.backend();
    assert_eq!(t.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"), Step::Open);
    assert_eq!(t.h.net.dialed.len(), 2, "a new connection");
    assert_eq!(t.h.net.dialed[0], t.h.net.dialed[1], "to the same backend");
    assert!(dropped(&b));
    t.connect(&fresh, true);
    assert_eq!(lines(&fresh.seen()), ["GET /b HTTP/1.1"]);
    t.answer(&fresh, OK);
    assert_eq!(t.statuses(), [200, 200]);
    assert_eq!(t.h.service().stats.of(0).retries.get(), 1);
}

#[test]
fn a_request_head_goes_out_in_pieces_to_a_blocked_backend() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    b.0.borrow_mut().room = Some(16);
    t.send(GET);
    assert_eq!(t.connect(&b, true), Step::Open);
    assert_eq!(b.seen().len(), 16);
    for _ in 0..100 {
        if b.seen().ends_with("\r\n\r\n") {
            break;
        }
        b.0.borrow_mut().room = Some(16);
        assert_eq!(t.event(Side::Backend), Step::Open);
    }
    assert_eq!(
        b.seen(),
        "GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.7\r\n\
         X-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n\
         Connection: keep-alive\r\n\r\n"
    );
    assert!(b.0.borrow().write_calls > 5, "in pieces");
    b.0.borrow_mut().room = None;
    t.answer(&b, OK);
    assert_eq!(t.statuses(), [200]);
    assert!(t.s.is_idle());
}

// ---- the exchange ----------------------------------------------------

/// A chunk size that is not one, after the head and a first chunk went
/// out: too late for a 400; both connections end.
#[test]
fn a_bad_request_chunk_after_the_head_went_out_is_bad_framing() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    t.connect(&b, true);
    assert!(
        b.seen().ends_with("\r\n\r\n5\r\nhello\r\n"),
        "{:?}",
        b.seen()
    );
    assert_eq!(
        t.send(b"zz\r\n"),
        Step::Closed(CloseReason::BadFraming(Side::Client))
    );
    assert_eq!(t.client.seen(), "", "no answer: the backend has the head");
    assert!(
        b.seen().ends_with("5\r\nhello\r\n"),
        "nothing more forwarded"
    );
}

#[test]
fn a_client_giving_up_in_the_middle_of_its_body_is_a_client_reset() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    t.connect(&b, true);
    assert!(b.seen().ends_with("\r\n\r\nabc"), "{:?}", b.seen());
    t.client.eof();
    assert_eq!(
        t.fin(Side::Client),
        Step::Closed(CloseReason::Reset(Side::Client))
    );
    assert_eq!(t.client.seen(), "");
}

#[test]
fn a_backend_reset_before_any_response_byte_is_a_502() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    b.fail();
    assert_eq!(t.event(Side::Backend), Step::Open);
    assert_eq!(t.client.seen(), own(Status::BadGateway));
    assert_eq!(t.h.net.dialed.len(), 1, "a new connection is not retried");
    assert!(dropped(&b));
}

/// A reused connection reset before any response byte: a GET whose bytes
/// are held goes once more on a new connection, unseen by the client.
#[test]
fn a_backend_reset_on_a_reused_connection_sends_a_get_again() {
    let (mut t, b) = served();
    t.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]);
    let fresh = t.h.backend();
    b.fail();
    assert_eq!(t.event(Side::Backend), Step::Open);
    assert!(dropped(&b));
    assert_eq!(t.h.net.dialed.len(), 2);
    t.connect(&fresh, true);
    assert_eq!(lines(&fresh.seen()), ["GET /b HTTP/1.1"]);
    t.answer(&fresh, OK);
    assert_eq!(t.statuses(), [200, 200]);
}

#[test]
fn a_backend_reset_after_the_status_line_cuts_the_client() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    b.fail();
    assert_eq!(
        t.event(Side::Backend),
        Step::Closed(CloseReason::Reset(Side::Backend))
    );
    assert_eq!(t.statuses(), [200], "no 502 after a status line");
    assert!(t.client.seen().ends_with("\r\n\r\nabc"));
}

#[test]
fn a_malformed_response_head_is_a_502() {
    let heads: [&[u8]; 3] = [
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi",
    ];
    for head in heads {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        assert_eq!(t.answer(&b, head), Step::Open);
        assert_eq!(t.client.seen(), own(Status::BadGateway), "{head:?}");
        assert!(dropped(&b), "{head:?}");
    }
}

#[test]
fn a_response_head_larger_than_the_buffer_is_a_502() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    head.resize(BUFFER_SIZE + 100, b'a');
    assert_eq!(t.answer(&b, &head), Step::Open);
    assert_eq!(t.client.seen(), own(Status::BadGateway));
    assert!(dropped(&b));
}

#[test]
fn a_close_delimited_response_ends_at_the_backends_close() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    assert_eq!(t.answer(&b, b"HTTP/1.1 200 OK\r\n\r\nsome"), Step::Open);
    let got = t.client.seen();
    assert!(got.contains("Connection: close\r\n"), "{got}");
    b.push(b" more");
    b.eof();
    assert_eq!(t.fin(Side::Backend), Step::Closed(CloseReason::Done));
    assert!(t.client.seen().ends_with("\r\n\r\nsome more"));
    assert_eq!(t.h.idle.len(), 0, "a closed connection is not pooled");
}

#[test]
fn a_response_body_cut_short_by_the_backend_is_a_backend_reset() {
    let cases: [&[u8]; 2] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ];
    for response in cases {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        assert_eq!(t.answer(&b, response), Step::Open);
        b.eof();
        assert_eq!(
            t.fin(Side::Backend),
            Step::Closed(CloseReason::Reset(Side::Backend)),
            "{response:?}"
        );
        assert_eq!(t.statuses(), [200], "{response:?}");
    }
}

#[test]
fn a_backends_own_5xx_passes_through_and_the_connection_stays() {
    let (mut t, b) = served();
    t.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    let busy = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy";
    assert_eq!(t.answer(&b, busy), Step::Open);
    assert_eq!(t.statuses(), [200, 503]);
    let got = t.client.seen();
    assert!(got.ends_with("\r\n\r\nbusy"), "{got}");
    assert!(!got.contains("no backend is available"), "not our own");
    assert!(t.s.is_idle());
    t.send(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(t.h.net.dialed.len(), 1, "still parked");
    assert_eq!(lines(&b.seen()).len(), 3);
}

#[test]
fn a_backend_silent_after_the_status_line_is_a_backend_idle_close() {
    let mut t = Http::with(timed(|t| t.server = Duration::from_secs(30)));
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(t.s.deadline(), t.h.now + Duration::from_secs(30));
    t.h.later(Duration::from_secs(30));
    assert_eq!(
        t.timer(),
        Step::Closed(CloseReason::IdleTimeout(Side::Backend))
    );
    assert_eq!(t.statuses(), [200], "no 504 after a status line");
}

#[test]
fn a_client_silent_in_the_middle_of_its_body_is_a_client_idle_close() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    t.connect(&b, true);
    let client_timeout = t.h.service().timeouts.client;
    assert_eq!(t.s.deadline(), t.h.now + client_timeout);
    t.h.later(client_timeout);
    assert_eq!(
        t.timer(),
        Step::Closed(CloseReason::IdleTimeout(Side::Client))
    );
    assert_eq!(t.client.seen(), "");
}

// ---- finishing -------------------------------------------------------

#[test]
fn a_client_asking_to_close_gets_its_answer_and_the_backend_is_pooled() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    t.connect(&b, true);
    assert!(b.seen().ends_with("Connection: keep-alive\r\n\r\n"));
    assert_eq!(t.answer(&b, OK), Step::Closed(CloseReason::Done));
    assert!(t.client.seen().contains("Connection: close\r\n"));
    assert_eq!(t.h.idle.len(), 1, "pooled for other clients");
    assert!(!dropped(&b));
}

/// A keep-alive client that leaves while its backend connection is
/// parked, however it leaves (its FIN, the keep-alive timeout): the
/// connection, clean, goes to the worker's pool for other clients, as
/// HAProxy's does. Released without that (the worker exits), it is closed
/// with a reset, as the pool closes what it lets go: no TIME_WAIT socket
/// on our side.
#[test]
fn a_parked_connection_of_a_client_that_leaves_is_pooled() {
    for (how, pooled) in [("FIN", true), ("timeout", true), ("exit", false)] {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        assert_eq!(t.answer(&b, OK), Step::Open);
        assert!(!dropped(&b), "parked");
        match how {
            "FIN" => {
                t.client.eof();
                assert!(matches!(t.fin(Side::Client), Step::Closed(_)));
            }
            "timeout" => {
                t.h.now = t.s.deadline();
                assert!(matches!(t.timer(), Step::Closed(_)));
            }
            _ => {}
        }
        if pooled {
            t.s.hand_back(&mut t.h.ctx());
        }
        t.s.release(&mut t.h.pool, &mut t.h.legs);
        assert_eq!(t.h.idle.len(), usize::from(pooled), "{how}");
        assert_eq!(b.0.borrow().reset, !pooled, "{how}: a reset, not a FIN");
    }
}

#[test]
fn draining_closes_after_the_response_in_flight() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.s.set_draining();
    assert_eq!(t.answer(&b, OK), Step::Closed(CloseReason::Done));
    let got = t.client.seen();
    assert!(got.contains("Connection: close\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhi"), "{got}");
    assert_eq!(t.h.idle.len(), 1, "pooled");
}

#[test]
fn bytes_after_a_response_keep_its_connection_from_reuse() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    assert_eq!(t.answer(&b, &[OK, b"junk"].concat()), Step::Open);
    assert!(t.client.seen().ends_with("\r\n\r\nhi"), "the junk stays");
    assert!(dropped(&b), "neither parked nor pooled");
    assert_eq!(t.h.idle.len(), 0);
    let b2 = t.h.backend();
    t.send(GET);
    assert_eq!(t.h.net.dialed.len(), 2);
    t.connect(&b2, true);
    t.answer(&b2, OK);
    assert_eq!(t.statuses(), [200, 200]);
}

#[test]
fn an_http_1_0_client_keeps_its_connection_only_if_it_asks() {
    let cases: [(&[u8], bool); 2] = [
        (b"GET /a HTTP/1.0\r\n\r\n", false),
        (b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
    ];
    for (request, kept) in cases {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(request);
        t.connect(&b, true);
        let step = t.answer(&b, OK);
        let got = t.client.seen();
        if kept {
            assert_eq!(step, Step::Open);
            assert!(got.contains("Connection: keep-alive\r\n"), "{got}");
            assert!(t.s.is_idle());
            assert_eq!(t.h.idle.len(), 0, "parked, not pooled");
        } else {
            assert_eq!(step, Step::Closed(CloseReason::Done));
            assert!(got.contains("Connection: close\r\n"), "{got}");
            assert_eq!(t.h.idle.len(), 1, "pooled");
        }
    }
}

#[test]
fn a_parked_connection_the_backend_closes_is_not_reused() {
    let (mut t, b) = served();
    b.eof();
    assert_eq!(t.fin(Side::Backend), Step::Open);
    assert!(dropped(&b));
    let b2 = t.h.backend();
    t.send(GET);
    assert_eq!(t.h.net.dialed.len(), 2);
    t.connect(&b2, true);
    assert_eq!(lines(&b2.seen()), ["GET /a HTTP/1.1"]);
}

// ---- the tunnel ------------------------------------------------------

/// A session tunnelling after a `101`, with its backend.
fn tunnel(h: Harness) -> (Http, Script) {
    let mut t = Http::with(h);
    let b = t.h.backend();
    t.send(WS_REQUEST);
    t.connect(&b, true);
    t.answer(&b, WS_SWITCH.as_bytes());
    assert_eq!(t.client.seen(), WS_SWITCH);
    (t, b)
}

#[test]
fn a_tunnel_carries_the_clients_fin_first_then_the_backends() {
    let (mut t, b) = tunnel(Harness::new("http://80:backend.example:8080", false));
    b.clear_seen();
    t.client.push(b"last");
    t.client.eof();
    assert_eq!(t.fin(Side::Client), Step::Open);
    assert_eq!(b.seen(), "last");
    assert!(b.shut(), "the FIN went on");
    assert!(!t.client.shut());
    b.push(b"reply");
    b.eof();
    assert_eq!(t.fin(Side::Backend), Step::Closed(CloseReason::Done));
    assert!(t.client.seen().ends_with("reply"));
    assert!(t.client.shut());
}

#[test]
fn a_tunnel_reset_by_the_backend_resets_the_client() {
    let (mut t, b) = tunnel(Harness::new("http://80:backend.example:8080", false));
    b.fail();
    assert_eq!(
        t.event(Side::Backend),
        Step::Closed(CloseReason::Reset(Side::Backend))
    );
    assert!(t.client.0.borrow().reset);
}

#[test]
fn a_quiet_tunnel_times_out_on_its_quiet_side() {
    // Client and server timeouts: the client's comes first.
    let (mut t, _b) = tunnel(Harness::new("http://80:backend.example:8080", false));
    let client = t.h.service().timeouts.client;
    assert_eq!(t.s.deadline(), t.h.now + client);
    t.h.later(client);
    assert_eq!(
        t.timer(),
        Step::Closed(CloseReason::IdleTimeout(Side::Client))
    );

    // A tunnel timeout: from the last byte either way. A backend that
    // stopped reading is the quiet side (a byte moved counts for both
    // sockets, read on one and written on the other).
    let h = timed(|t| t.tunnel = Some(Duration::from_secs(10)));
    let (mut t, b) = tunnel(h);
    b.0.borrow_mut().room = Some(0);
    t.h.later(Duration::from_secs(5));
    t.send(b"ping");
    assert!(!b.seen().contains("ping"));
    assert_eq!(t.s.deadline(), t.h.now + Duration::from_secs(10));
    t.h.later(Duration::from_secs(10));
    assert_eq!(
        t.timer(),
        Step::Closed(CloseReason::IdleTimeout(Side::Backend))
    );
}

// ---- buffers ---------------------------------------------------------

#[test]
fn an_idle_keep_alive_connection_holds_no_buffer() {
    let (t, _b) = served();
    assert!(t.h.pool.allocated() > 0);
    assert_eq!(
        t.h.pool.idle(),
        t.h.pool.allocated(),
        "all back in the pool"
    );
}

#[test]
fn release_gives_back_the_buffers_of_a_leg_in_flight() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    // A pipelined head not yet complete stays in the client's buffer; a
    // response the blocked client cannot take stays in the leg's.
    t.send(&[GET, b"GET /b HTTP/1.1\r\nHo"].concat());
    t.connect(&b, true);
    t.client.0.borrow_mut().room = Some(0);
    t.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(t.client.seen(), "");
    let pool = &t.h.pool;
    assert_eq!(pool.allocated() - pool.idle(), 2, "two in use");
    t.s.release(&mut t.h.pool, &mut t.h.legs);
    assert_eq!(t.h.pool.idle(), t.h.pool.allocated(), "both given back");
    assert_eq!(t.h.pool.allocated(), 2);
}
