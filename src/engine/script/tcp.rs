//! The TCP session, scripted: bytes and FINs through, redispatch, resets
//! and idle timeouts.

use super::*;

/// A TCP session on a scripted client.
struct Tcp {
    h: Harness,
    s: TcpSession<Script>,
    client: Script,
}

impl Tcp {
    fn new(two: bool, backends: &[Option<Script>]) -> Tcp {
        let mut h = Harness::new("tcp://5432:db.example:5432", two);
        for b in backends {
            match b {
                Some(s) => h.net.outcomes.push_back(Ok(s.clone())),
                None => h.refuse(),
            }
        }
        let client = Script::connected();
        let svc = h.service();
        let s = TcpSession::start(&mut h.ctx(), svc, client.clone(), peer(), None).unwrap();
        Tcp { h, s, client }
    }

    fn event(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::BOTH)
    }

    /// An event that also reports the peer's FIN.
    fn fin(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::FIN)
    }
}

#[test]
fn tcp_carries_bytes_and_each_fin_through() {
    let b = Script::default();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.client.push(b"hello");
    assert_eq!(t.event(Side::Client), Step::Open, "waits for the connect");
    assert_eq!(b.seen(), "");
    b.0.borrow_mut().connected = Some(Ok(()));
    t.event(Side::Backend);
    assert_eq!(b.seen(), "hello");
    b.push(b"world");
    t.event(Side::Backend);
    assert_eq!(t.client.seen(), "world");
    // The client half-closes: the backend gets the FIN, and may still
    // answer.
    t.client.eof();
    assert_eq!(t.event(Side::Client), Step::Open);
    assert!(b.shut());
    b.push(b"late");
    b.eof();
    assert_eq!(t.fin(Side::Backend), Step::Closed(CloseReason::Done));
    assert_eq!(t.client.seen(), "worldlate");
    assert!(t.client.shut());
}

#[test]
fn tcp_redispatches_once() {
    // At once: the second backend.
    let b = Script::default();
    let t = Tcp::new(true, &[None, Some(b)]);
    assert_eq!(t.h.net.dialed.len(), 2);
    assert_ne!(t.h.net.dialed[0], t.h.net.dialed[1]);
    let svc = t.h.service();
    assert_eq!(
        svc.stats.of(0).retries.get(),
        1,
        "an immediate failure is a retry too"
    );

    // Later, twice: the session ends.
    let (b1, b2) = (Script::default(), Script::default());
    let mut t = Tcp::new(true, &[Some(b1.clone()), Some(b2.clone())]);
    b1.0.borrow_mut().connected = Some(Err(io::ErrorKind::ConnectionRefused));
    assert_eq!(t.event(Side::Backend), Step::Open);
    b2.0.borrow_mut().connected = Some(Err(io::ErrorKind::ConnectionRefused));
    assert_eq!(
        t.event(Side::Backend),
        Step::Closed(CloseReason::ConnectFailed)
    );
}

#[test]
fn tcp_reset_passes_to_the_other_side_and_idle_times_out() {
    let b = Script::connected();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.event(Side::Backend);
    b.fail();
    assert_eq!(
        t.event(Side::Backend),
        Step::Closed(CloseReason::Reset(Side::Backend))
    );
    assert!(t.client.0.borrow().reset, "the client is reset too");

    let b = Script::connected();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.event(Side::Backend);
    t.h.later(Duration::from_secs(56));
    assert_eq!(
        t.s.on_timer(&mut t.h.ctx()),
        Step::Closed(CloseReason::IdleTimeout(Side::Client))
    );
}
