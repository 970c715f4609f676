//! Leg slots, scripted: every backend socket a session holds has a slot
//! in the leg table (its events' token), and every path that closes the
//! socket or hands it to the idle pool gives the slot back, so the table
//! counts exactly the backend descriptors sessions hold.

use super::*;

/// An HTTP session on a scripted client, its harness and client.
fn http() -> (Harness, HttpSession<Script>, Script) {
    let mut h = Harness::new("http://80:backend.example:8080", false);
    let client = Script::connected();
    let svc = h.service();
    let s = HttpSession::start(&mut h.ctx(), svc, client.clone(), peer()).unwrap();
    (h, s, client)
}

fn event(h: &mut Harness, s: &mut dyn Session<Script>, side: Side) -> Step {
    s.on_event(&mut h.ctx(), side, Readiness::BOTH)
}

#[test]
fn a_keep_alive_connection_holds_one_slot_across_requests() {
    let (mut h, mut s, client) = http();
    let b = h.backend();
    assert!(h.legs.is_empty(), "no backend socket before a request");
    client.push(GET);
    event(&mut h, &mut s, Side::Client);
    assert_eq!(h.legs.len(), 1, "the connect under way");
    b.0.borrow_mut().connected = Some(Ok(()));
    event(&mut h, &mut s, Side::Backend);
    b.push(OK);
    event(&mut h, &mut s, Side::Backend);
    assert!(client.seen().ends_with("\r\n\r\nhi"), "{}", client.seen());
    assert_eq!(h.legs.len(), 1, "the parked connection keeps its slot");
    client.push(GET);
    event(&mut h, &mut s, Side::Client);
    b.push(OK);
    event(&mut h, &mut s, Side::Backend);
    assert_eq!(h.net.dialed.len(), 1, "the second request rode the first");
    assert_eq!(h.legs.len(), 1, "and its slot");
    s.release(&mut h.pool, &mut h.legs);
    assert!(h.legs.is_empty(), "released with the session");
}

#[test]
fn a_parked_connection_the_backend_closes_gives_its_slot_back() {
    let (mut h, mut s, client) = http();
    let b = h.backend();
    client.push(GET);
    event(&mut h, &mut s, Side::Client);
    b.0.borrow_mut().connected = Some(Ok(()));
    event(&mut h, &mut s, Side::Backend);
    b.push(OK);
    event(&mut h, &mut s, Side::Backend);
    assert_eq!(h.legs.len(), 1);
    // An idle backend connection that speaks is closing.
    assert_eq!(
        s.on_event(&mut h.ctx(), Side::Backend, Readiness::FIN),
        Step::Open
    );
    assert!(h.legs.is_empty());
}

#[test]
fn connects_that_fail_give_their_slot_back_with_the_503() {
    let (mut h, mut s, client) = http();
    h.refuse();
    h.refuse();
    client.push(GET);
    event(&mut h, &mut s, Side::Client);
    assert!(
        client.seen().starts_with("HTTP/1.1 503 "),
        "{}",
        client.seen()
    );
    assert!(h.legs.is_empty());
}

#[test]
fn a_session_closed_mid_request_gives_its_slot_back() {
    let (mut h, mut s, client) = http();
    h.backend();
    client.push(GET);
    event(&mut h, &mut s, Side::Client);
    assert_eq!(h.legs.len(), 1);
    s.release(&mut h.pool, &mut h.legs);
    assert!(h.legs.is_empty());
}

#[test]
fn a_tcp_session_holds_one_slot_until_released() {
    let mut h = Harness::new("tcp://5432:db.example:5432", false);
    h.backend();
    let svc = h.service();
    let mut s = TcpSession::start(&mut h.ctx(), svc, Script::connected(), peer(), None).unwrap();
    assert_eq!(h.legs.len(), 1);
    s.release(&mut h.pool, &mut h.legs);
    assert!(h.legs.is_empty());
}

#[test]
fn a_tcp_session_that_cannot_connect_holds_no_slot() {
    let mut h = Harness::new("tcp://5432:db.example:5432", false);
    h.refuse();
    h.refuse();
    let svc = h.service();
    let started = TcpSession::start(&mut h.ctx(), svc, Script::connected(), peer(), None);
    assert!(started.is_err());
    assert!(h.legs.is_empty());
}
