//! The illumos poller end to end over the emulated event ports: sockets,
//! one-shot re-association, wake-ups and closes, as the engine drives them.

use std::io::{self as stdio, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::{Interest, Token};

use super::io::{TcpListener, TcpStream};
use super::{Events, Poll, Waker};
use crate::sys::poll::ports_state::mutation;

const SHORT: Duration = Duration::from_millis(100);

fn listener() -> (TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    (TcpListener::from_std(l), addr)
}

/// Polls until `token` is reported or `SHORT` passes without it.
fn wait_for(poll: &mut Poll, token: Token) -> bool {
    let mut events = Events::with_capacity(16);
    for _ in 0..5 {
        poll.poll(&mut events, Some(SHORT)).unwrap();
        if events.iter().any(|e| e.token() == token) {
            return true;
        }
    }
    false
}

fn drain(s: &mut TcpStream) -> usize {
    let mut buf = [0u8; 64];
    let mut n = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k,
            Err(e) if e.kind() == stdio::ErrorKind::WouldBlock => return n,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A server socket gets data twice; whether the second arrival is
/// reported depends on the re-association after the first.
fn second_arrival_is_reported() -> bool {
    let mut poll = Poll::new().unwrap();
    let (l, addr) = listener();
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    let (mut s, _) = loop {
        match l.accept() {
            Ok(c) => break c,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    poll.registry()
        .register(&mut s, Token(1), Interest::READABLE)
        .unwrap();
    peer.write_all(b"one").unwrap();
    assert!(wait_for(&mut poll, Token(1)), "first arrival");
    assert_eq!(drain(&mut s), 3); // ends in WouldBlock: re-arm READ
    peer.write_all(b"two").unwrap();
    wait_for(&mut poll, Token(1))
}

#[test]
fn data_after_would_block_is_reported() {
    assert!(second_arrival_is_reported());
}

/// The emulation is no toy: with the re-association after `WouldBlock`
/// removed from the native backend (the bug illumos would show as a
/// connection that hangs), the run through the emulated port fails.
#[test]
fn a_missing_reassociation_is_caught() {
    mutation::NO_REARM.with(|m| m.set(true));
    let reported = second_arrival_is_reported();
    mutation::NO_REARM.with(|m| m.set(false));
    assert!(
        !reported,
        "the mutant passed: the emulation re-armed by itself"
    );
}

/// A session that ends inside the handler of its own event: it asked for
/// a re-association (WouldBlock), then closed; the descriptor number is
/// reused by the next connection before the next poll.
#[test]
fn a_session_closed_in_its_own_handler_leaves_nothing_behind() {
    let mut poll = Poll::new().unwrap();
    let (mut l, addr) = listener();
    poll.registry()
        .register(&mut l, Token(0), Interest::READABLE)
        .unwrap();
    let mut p1 = std::net::TcpStream::connect(addr).unwrap();
    assert!(wait_for(&mut poll, Token(0)));
    let (mut s1, _) = l.accept().unwrap();
    poll.registry()
        .register(&mut s1, Token(1), Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    p1.write_all(b"bye").unwrap();
    assert!(wait_for(&mut poll, Token(1)));
    // The handler: reads to WouldBlock (a re-association is pending), then
    // the session ends and closes its socket.
    drain(&mut s1);
    drop(s1);
    // The next client, which usually gets the same number.
    let mut p2 = std::net::TcpStream::connect(addr).unwrap();
    let (mut s2, _) = loop {
        match l.accept() {
            Ok(c) => break c,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    poll.registry()
        .register(&mut s2, Token(2), Interest::READABLE)
        .unwrap();
    p2.write_all(b"hi").unwrap();
    let mut events = Events::with_capacity(16);
    let mut seen = Vec::new();
    for _ in 0..5 {
        poll.poll(&mut events, Some(SHORT)).unwrap();
        seen.extend(events.iter().map(|e| e.token()));
        if seen.contains(&Token(2)) {
            break;
        }
    }
    assert!(seen.contains(&Token(2)), "{seen:?}");
    assert!(!seen.contains(&Token(1)), "an event of the closed session");
    assert_eq!(drain(&mut s2), 2);
}

/// A wake-up from another thread racing the close of a socket with an
/// event pending: the wake-up arrives, the closed socket's event does not.
#[test]
fn a_wake_up_racing_a_close() {
    let mut poll = Poll::new().unwrap();
    let waker = std::sync::Arc::new(Waker::new(poll.registry(), Token(99)).unwrap());
    let (l, addr) = listener();
    for _ in 0..50 {
        let mut peer = std::net::TcpStream::connect(addr).unwrap();
        let (mut s, _) = loop {
            match l.accept() {
                Ok(c) => break c,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        poll.registry()
            .register(&mut s, Token(5), Interest::READABLE)
            .unwrap();
        peer.write_all(b"x").unwrap();
        let w = std::sync::Arc::clone(&waker);
        let t = std::thread::spawn(move || w.wake().unwrap());
        drop(s);
        t.join().unwrap();
        let mut events = Events::with_capacity(16);
        poll.poll(&mut events, Some(SHORT)).unwrap();
        let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
        assert_eq!(tokens, [Token(99)]);
    }
}

/// A reset reaches the engine as readable and writable (illumos has no
/// POLLERR for sockets), and the read then returns the error.
#[test]
fn a_reset_is_readable_and_the_read_says_so() {
    let mut poll = Poll::new().unwrap();
    let (l, addr) = listener();
    let peer = std::net::TcpStream::connect(addr).unwrap();
    let (mut s, _) = loop {
        match l.accept() {
            Ok(c) => break c,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    poll.registry()
        .register(&mut s, Token(3), Interest::READABLE)
        .unwrap();
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_secs(2)))
        .unwrap();
    let e = events.iter().next().expect("an event");
    assert!(e.is_readable() && !e.is_error());
    let err = s.read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), stdio::ErrorKind::ConnectionReset);
}
