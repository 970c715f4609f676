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

#[test]
fn tcp_both_connects_refused_at_once_fail_the_start() {
    let mut h = Harness::new("tcp://5432:db.example:5432", true);
    h.refuse();
    h.refuse();
    let svc = h.service();
    let started = TcpSession::start(&mut h.ctx(), svc, Script::connected(), peer(), None);
    assert_eq!(started.err(), Some(CloseReason::ConnectFailed));
    let [first, second] = h.net.dialed[..] else {
        panic!("{:?}", h.net.dialed)
    };
    assert_ne!(first, second);
}

#[test]
fn tcp_connect_timeouts_redial_once_then_fail() {
    let (b1, b2) = (Script::default(), Script::default());
    let mut t = Tcp::new(true, &[Some(b1.clone()), Some(b2.clone())]);
    let connect = t.h.service().timeouts.connect;
    assert_eq!(t.s.deadline(), t.h.now + connect);
    t.h.later(connect);
    assert_eq!(t.s.on_timer(&mut t.h.ctx()), Step::Open);
    assert_eq!(t.h.net.dialed.len(), 2);
    assert_eq!(Rc::strong_count(&b1.0), 1, "the first attempt is closed");
    t.h.later(connect);
    assert_eq!(
        t.s.on_timer(&mut t.h.ctx()),
        Step::Closed(CloseReason::ConnectFailed)
    );
    assert_eq!(t.h.net.dialed.len(), 2, "no third attempt");
}

/// `tcp-proxy-v2`: the PROXY v2 header reaches the backend before any
/// byte of the client's, even when the client spoke first and the
/// backend takes a few bytes at a time; plain `tcp` sends none.
#[test]
fn tcp_proxy_v2_preface_goes_first_even_in_pieces() {
    let local: SocketAddr = "203.0.113.5:5432".parse().unwrap();
    let header = crate::proto::proxy_v2::encode(peer(), local);
    for (entry, preface) in [
        ("tcp-proxy-v2://5432:db.example:5432", header.as_bytes()),
        ("tcp://5432:db.example:5432", &[][..]),
    ] {
        let mut h = Harness::new(entry, false);
        let b = h.backend();
        let client = Script::connected();
        let svc = h.service();
        let mut s =
            TcpSession::start(&mut h.ctx(), svc, client.clone(), peer(), Some(local)).unwrap();
        client.push(b"hello");
        s.on_event(&mut h.ctx(), Side::Client, Readiness::BOTH);
        assert_eq!(b.seen(), "", "nothing before the connect");
        b.0.borrow_mut().connected = Some(Ok(()));
        b.0.borrow_mut().room = Some(7);
        s.on_event(&mut h.ctx(), Side::Backend, Readiness::BOTH);
        for _ in 0..20 {
            b.0.borrow_mut().room = Some(7);
            s.on_event(&mut h.ctx(), Side::Backend, Readiness::BOTH);
        }
        let want = [preface, b"hello"].concat();
        assert_eq!(b.0.borrow().written, want, "{entry}");
    }
}

#[test]
fn tcp_client_reset_resets_the_backend() {
    let b = Script::connected();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.event(Side::Backend);
    t.client.push(b"abc");
    t.event(Side::Client);
    assert_eq!(b.seen(), "abc");
    t.client.fail();
    assert_eq!(
        t.event(Side::Client),
        Step::Closed(CloseReason::Reset(Side::Client))
    );
    assert!(b.0.borrow().reset, "the backend is reset too");
}

#[test]
fn tcp_release_gives_back_the_bytes_in_flight() {
    let b = Script::connected();
    b.0.borrow_mut().room = Some(0);
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.event(Side::Backend);
    t.client.push(b"held");
    assert_eq!(t.event(Side::Client), Step::Open);
    assert_eq!(b.seen(), "", "the backend takes nothing");
    assert_eq!(t.h.pool.allocated() - t.h.pool.idle(), 1, "one in use");
    t.s.release(&mut t.h.pool, &mut t.h.legs);
    assert_eq!(t.h.pool.idle(), t.h.pool.allocated());
}

#[test]
fn a_stream_whose_reads_fill_a_buffer_moves_through_bulk_ones() {
    use crate::engine::buffer::BUFFER_SIZE;
    let b = Script::connected();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.event(Side::Backend);
    t.event(Side::Client);
    let big: Vec<u8> = (0..3 * BUFFER_SIZE + 10).map(|i| (i % 251) as u8).collect();
    let reads = |b: &Script| b.0.borrow().read_calls;
    let mut want = Vec::new();
    for round in 0..2 {
        // An ordinary buffer fills, so the rest comes in one bulk read
        // (ordinary buffers only would take four).
        b.push(&big);
        let before = reads(&b);
        t.event(Side::Backend);
        assert_eq!(reads(&b) - before, 2, "round {round}");
        want.extend_from_slice(&big);
        assert_eq!(t.client.0.borrow().written, want);
        assert_eq!(t.h.pool.bulk_in_use(), 0, "given back once written");
        // A short read after it ends the bulk flow: the next big one
        // starts in an ordinary buffer again.
        b.push(b"tail");
        t.event(Side::Backend);
        want.extend_from_slice(b"tail");
        assert_eq!(t.client.0.borrow().written, want);
    }
    assert_eq!(t.h.pool.idle(), t.h.pool.allocated());
}
