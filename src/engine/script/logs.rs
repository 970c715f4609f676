//! Access lines of an HTTP connection, scripted: a finished request's, a
//! request cut by the close, an answer cut by the close, and none for an
//! idle keep-alive connection. Lines go over UDP to a socket here, in
//! RFC 5424 (its structured data names each field).

use std::net::UdpSocket;

use super::http::Http;
use super::*;
use crate::engine::syslog::Sink;
use crate::metrics::stats::SyslogCounters;
use crate::proto::syslog::{Format, Origin};
use crate::snapshot::SyslogSpec;

/// A sink sending to a socket on the loopback, and that socket.
fn sink() -> (Sink, UdpSocket) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let spec = SyslogSpec {
        addr: Some(rx.local_addr().unwrap()),
        local: None,
        origin: Arc::new(Origin::new("test", 1)),
        format: Format::Rfc5424,
    };
    let sink = Sink::open(spec, Arc::new(SyslogCounters::new(1)), 0).unwrap();
    (sink, rx)
}

/// The next line sent.
fn line(rx: &UdpSocket) -> String {
    let mut buf = [0u8; 2048];
    let n = rx.recv(&mut buf).expect("an access line");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// No line waits (the loopback delivers a datagram before `send`
/// returns).
fn none(rx: &UdpSocket) -> bool {
    rx.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let r = rx.recv(&mut buf);
    rx.set_nonblocking(false).unwrap();
    matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// The harness's context, with access lines going to `sink`.
fn logging<'a>(h: &'a mut Harness, sink: &'a mut Sink) -> Ctx<'a, Script> {
    let mut ctx = h.ctx();
    ctx.syslog = Some(sink);
    ctx
}

/// An event on `side`, with access lines going to `sink`.
fn event(t: &mut Http, sink: &mut Sink, side: Side) -> Step {
    t.s.on_event(&mut logging(&mut t.h, sink), side, Readiness::BOTH)
}

#[test]
fn a_finished_request_is_logged_once_with_its_status() {
    let (mut sink, rx) = sink();
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.client.push(GET);
    event(&mut t, &mut sink, Side::Client);
    b.0.borrow_mut().connected = Some(Ok(()));
    event(&mut t, &mut sink, Side::Backend);
    b.push(OK);
    assert_eq!(event(&mut t, &mut sink, Side::Backend), Step::Open);
    let got = line(&rx);
    assert!(got.contains(" status=\"200\""), "{got}");
    assert!(got.contains(" backend=\"192.0.2.1:8080\""), "{got}");
    assert!(got.contains(" termination=\"--\""), "{got}");
    assert!(got.ends_with(" 200 \"GET /a\""), "{got}");
    // Closing between requests owes nothing more.
    assert!(t.s.is_idle());
    t.s.log_close(&mut sink, CloseReason::Done, t.h.now);
    assert!(none(&rx), "an idle connection has no line");
}

#[test]
fn a_request_cut_by_the_close_is_logged_with_why() {
    let (mut sink, rx) = sink();
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.client.push(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
    event(&mut t, &mut sink, Side::Client);
    b.0.borrow_mut().connected = Some(Ok(()));
    event(&mut t, &mut sink, Side::Backend);
    assert!(none(&rx), "not finished: no line yet");
    t.s.log_close(&mut sink, CloseReason::Reset(Side::Backend), t.h.now);
    let got = line(&rx);
    assert!(got.contains(" backend=\"192.0.2.1:8080\""), "{got}");
    assert!(got.contains(" termination=\"SD\""), "{got}");
    assert!(!got.contains(" status="), "no status was sent: {got}");
    assert!(got.ends_with(" \"GET /cut\""), "{got}");
}

#[test]
fn an_answer_cut_by_the_close_is_logged_with_its_status() {
    let (mut sink, rx) = sink();
    let mut t = Http::new(false);
    t.client.0.borrow_mut().room = Some(0);
    t.client.push(b"GET /a HTTP/1.1\r\nHost x\r\n\r\n");
    assert_eq!(event(&mut t, &mut sink, Side::Client), Step::Open);
    assert!(none(&rx), "still answering");
    t.s.log_close(&mut sink, CloseReason::Reset(Side::Client), t.h.now);
    let got = line(&rx);
    assert!(got.contains(" status=\"400\""), "{got}");
    assert!(got.contains(" backend=\"-\""), "{got}");
    assert!(got.contains(" termination=\"PR\""), "{got}");
}
