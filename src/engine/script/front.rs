//! The HTTP session's front stages, scripted, one failing transition each:
//! reading a head (a reset, an EOF, 400, 431, 501, blank lines, the
//! header timeout against the keep-alive timeout), the balancer's own
//! answers (ACME, a service gone or without backends) and the linger
//! after an answer.

use super::http::Http;
use super::*;
use crate::engine::buffer::BUFFER_SIZE;
use crate::engine::http::HEADER_TIMEOUT;
use crate::proto::http1::errors::Status;

/// The balancer's own response for `status`, as text.
fn own(status: Status) -> String {
    String::from_utf8_lossy(status.response()).into_owned()
}

/// A session whose client sent `head` and got the balancer's answer to
/// it, now lingering.
fn answered(head: &[u8], status: Status) -> Http {
    let mut t = Http::new(false);
    assert_eq!(t.send(head), Step::Open, "lingers");
    assert_eq!(t.client.seen(), own(status), "{head:?}");
    assert!(t.h.net.dialed.is_empty(), "no backend contacted");
    assert!(t.client.shut(), "the answer ends with a FIN");
    t
}

#[test]
fn a_client_reset_while_a_head_arrives_is_a_client_reset() {
    let mut t = Http::new(false);
    assert_eq!(t.send(b"GET /a HT"), Step::Open);
    t.client.fail();
    assert_eq!(
        t.event(Side::Client),
        Step::Closed(CloseReason::Reset(Side::Client))
    );
    assert_eq!(t.client.seen(), "", "nothing answered");
    assert!(t.h.net.dialed.is_empty());
}

#[test]
fn an_eof_in_the_middle_of_a_head_closes_without_an_answer() {
    let mut t = Http::new(false);
    assert_eq!(t.send(b"GET /a HTTP/1.1\r\nHo"), Step::Open);
    t.client.eof();
    assert_eq!(t.fin(Side::Client), Step::Closed(CloseReason::Done));
    assert_eq!(t.client.seen(), "");
    assert!(t.h.net.dialed.is_empty());
}

#[test]
fn a_client_that_closes_before_a_head_begins_is_done() {
    // A new connection that never sent a byte.
    let mut t = Http::new(false);
    t.client.eof();
    assert_eq!(t.fin(Side::Client), Step::Closed(CloseReason::Done));
    assert_eq!(t.client.seen(), "");

    // A keep-alive connection between requests.
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, OK);
    assert!(t.s.is_idle());
    t.client.eof();
    assert_eq!(t.fin(Side::Client), Step::Closed(CloseReason::Done));
    assert_eq!(t.statuses(), [200]);
}

#[test]
fn a_head_larger_than_the_buffer_is_431() {
    let mut head = b"GET /a HTTP/1.1\r\nX-Big: ".to_vec();
    head.resize(BUFFER_SIZE + 100, b'a');
    answered(&head, Status::HeaderTooLarge);
}

#[test]
fn more_than_a_hundred_header_lines_is_431() {
    let mut head = b"GET /a HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..100 {
        head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(head.len() < BUFFER_SIZE, "complete, and small enough");
    answered(&head, Status::HeaderTooLarge);
}

#[test]
fn a_malformed_head_is_400() {
    let heads: [&[u8]; 3] = [
        b"GET /a HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ];
    for head in heads {
        answered(head, Status::BadRequest);
    }
}

#[test]
fn an_unsupported_method_or_transfer_coding_is_501() {
    let heads: [&[u8]; 2] = [
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    ];
    for head in heads {
        answered(head, Status::NotImplemented);
    }
}

#[test]
fn blank_lines_before_a_head_are_skipped_never_forwarded() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"\r\n\n\r\n");
    assert!(t.h.net.dialed.is_empty(), "no request yet");
    t.send(GET);
    t.connect(&b, true);
    let seen = b.seen();
    assert!(
        seen.starts_with("GET /a HTTP/1.1\r\nHost: x\r\n"),
        "{seen:?}"
    );
    t.answer(&b, OK);
    // And between two requests.
    t.send(b"\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]);
    assert!(!b.seen().contains("\r\n\r\n\r\n"), "{:?}", b.seen());
    t.answer(&b, OK);
    assert_eq!(t.statuses(), [200, 200]);
}

/// A new connection that never sends a byte has the header timeout, from
/// accept, and is closed at its end without a 408.
#[test]
fn a_silent_new_connection_closes_at_the_header_timeout_unanswered() {
    let mut t = Http::new(false);
    assert_eq!(t.s.deadline(), t.h.now + HEADER_TIMEOUT);
    t.h.later(HEADER_TIMEOUT);
    assert_eq!(
        t.timer(),
        Step::Closed(CloseReason::IdleTimeout(Side::Client))
    );
    assert_eq!(t.client.seen(), "");
}

/// Between requests the client timeout applies and its end is a quiet
/// close; a head begun has the header timeout, and its end is a 408.
#[test]
fn an_idle_keep_alive_client_closes_quietly_but_a_begun_head_gets_408() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, OK);
    let client_timeout = t.h.service().timeouts.client;
    assert_eq!(t.s.deadline(), t.h.now + client_timeout);
    t.h.later(client_timeout);
    assert_eq!(
        t.timer(),
        Step::Closed(CloseReason::IdleTimeout(Side::Client))
    );
    assert_eq!(t.statuses(), [200]);

    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, OK);
    t.h.later(Duration::from_secs(30));
    t.send(b"GET /b HTTP/1.1\r\nHo");
    assert_eq!(t.s.deadline(), t.h.now + HEADER_TIMEOUT);
    t.h.later(HEADER_TIMEOUT);
    assert_eq!(t.timer(), Step::Open, "answering, then lingering");
    assert_eq!(t.statuses(), [200, 408]);
    assert!(t.client.seen().ends_with(&own(Status::RequestTimeout)));
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"], "nothing forwarded");
}

#[test]
fn acme_challenges_are_answered_without_a_backend() {
    let acme: HashMap<String, String> = [("tok".to_owned(), "tok.key-auth".to_owned())].into();
    let cases: [(&[u8], &str, &str); 2] = [
        (
            b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\n",
            "\r\n\r\ntok.key-auth",
        ),
        (
            b"GET /.well-known/acme-challenge/other HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 404 ",
            "",
        ),
    ];
    for (request, starts, ends) in cases {
        let h = Harness::with_acme("http://80:backend.example:8080", false, acme.clone());
        let mut t = Http::with(h);
        assert_eq!(t.send(request), Step::Open);
        let got = t.client.seen();
        assert!(got.starts_with(starts), "{got}");
        assert!(got.ends_with(ends), "{got}");
        assert!(got.contains("Connection: close\r\n"), "{got}");
        assert!(t.h.net.dialed.is_empty(), "no backend contacted");
        assert!(t.client.shut());
    }
}

/// A connection accepted for a service whose port now serves nothing, or
/// another kind of service: its next request gets a 503, and no backend
/// of the old service is contacted.
#[test]
fn a_connection_whose_service_is_gone_gets_503() {
    for replacement in [None, Some("tcp://80:db.example:5432")] {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        t.answer(&b, OK);
        t.h.snapshot.services = replacement
            .map(|e| Harness::new(e, false).service())
            .into_iter()
            .collect();
        assert_eq!(t.send(GET), Step::Open);
        assert_eq!(t.statuses(), [200, 503], "{replacement:?}");
        assert!(t.client.seen().ends_with(&own(Status::Unavailable)));
        assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"], "not forwarded");
    }
}

#[test]
fn a_service_left_without_backends_gets_503() {
    let mut t = Http::new(false);
    let svc = t.h.service();
    t.h.snapshot.services = vec![Arc::new(ServiceSnapshot {
        spec: svc.spec.clone(),
        index: svc.index,
        timeouts: svc.timeouts,
        backends: Vec::new(),
        no_backends: None,
        stats: Arc::clone(&svc.stats),
        tls: None,
        acme: Arc::clone(&svc.acme),
    })];
    assert_eq!(t.send(GET), Step::Open);
    assert_eq!(t.client.seen(), own(Status::Unavailable));
    assert!(t.h.net.dialed.is_empty());
}

#[test]
fn an_answer_to_a_blocked_client_goes_out_in_pieces_then_the_fin() {
    let mut t = Http::new(false);
    t.client.0.borrow_mut().room = Some(10);
    assert_eq!(t.send(b"GET /a HTTP/1.1\r\nHost x\r\n\r\n"), Step::Open);
    assert_eq!(t.client.seen().len(), 10);
    assert!(!t.client.shut(), "no FIN before the whole answer");
    for _ in 0..100 {
        if t.client.shut() {
            break;
        }
        t.client.0.borrow_mut().room = Some(10);
        assert_eq!(t.event(Side::Client), Step::Open);
    }
    assert_eq!(t.client.seen(), own(Status::BadRequest));
    assert!(t.client.shut());
}

/// After an answer the session reads and drops what the client still
/// sends (a close with unread input would reset the answer away), until
/// the client closes.
#[test]
fn linger_drops_what_the_client_sends_and_ends_at_its_eof() {
    let mut t = answered(b"GET /a HTTP/1.1\r\nHost x\r\n\r\n", Status::BadRequest);
    assert_eq!(t.send(GET), Step::Open);
    assert_eq!(t.client.seen(), own(Status::BadRequest), "nothing more");
    assert!(t.h.net.dialed.is_empty(), "never a request");
    t.client.eof();
    assert_eq!(t.fin(Side::Client), Step::Closed(CloseReason::Done));
}

#[test]
fn linger_ends_at_its_timer() {
    let mut t = answered(b"GET /a HTTP/1.1\r\nHost x\r\n\r\n", Status::BadRequest);
    assert_eq!(t.s.deadline(), t.h.now + Duration::from_secs(1));
    t.h.later(Duration::from_secs(1));
    assert_eq!(t.timer(), Step::Closed(CloseReason::Done));
}
