//! The emulation's semantics, on real sockets over loopback: what illumos's
//! manual pages promise, and what its sockfs reports.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::*;
use crate::sys::poll::ports_state::bits::{POLLERR, POLLHUP, POLLIN, POLLOUT};

const SHORT: Duration = Duration::from_millis(50);

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// One `port_getn` for one event, or None on `ETIME`.
fn get1(p: &EmulatedPort, t: Duration) -> Option<PortEvent> {
    let mut out = Vec::new();
    let mut n = 1;
    match p.getn(&mut out, 8, &mut n, Some(t)) {
        Ok(()) => {
            assert_eq!(n, out.len());
            Some(out[0])
        }
        Err(Errno::ETIME) => {
            assert_eq!(n, 0);
            None
        }
        Err(e) => panic!("port_getn: {e}"),
    }
}

#[test]
fn an_association_fires_once_until_associated_again() {
    let p = EmulatedPort::create().unwrap();
    let (a, mut b) = pair();
    p.associate(a.as_raw_fd(), POLLIN, 7).unwrap();
    assert!(get1(&p, SHORT).is_none(), "nothing to read yet");
    b.write_all(b"x").unwrap();
    let e = get1(&p, SHORT).unwrap();
    assert_eq!(
        (e.source, e.object, e.events, e.user),
        (PORT_SOURCE_FD, a.as_raw_fd() as usize, POLLIN, 7)
    );
    // Still readable, but the association went with the event.
    assert!(get1(&p, SHORT).is_none(), "one-shot: no second event");
    assert_eq!(p.dissociate(a.as_raw_fd()), Err(Errno::ENOENT));
    // Associating again reports the level at once.
    p.associate(a.as_raw_fd(), POLLIN, 8).unwrap();
    assert_eq!(get1(&p, SHORT).unwrap().user, 8);
}

#[test]
fn a_dissociated_descriptor_never_delivers_its_pending_event() {
    let p = EmulatedPort::create().unwrap();
    let (a, mut b) = pair();
    p.associate(a.as_raw_fd(), POLLIN, 0).unwrap();
    b.write_all(b"x").unwrap();
    std::thread::sleep(SHORT); // the event is pending in the kernel
    p.dissociate(a.as_raw_fd()).unwrap();
    assert!(get1(&p, SHORT).is_none());
    assert_eq!(p.dissociate(a.as_raw_fd()), Err(Errno::ENOENT));
}

#[test]
fn a_socket_closed_while_its_event_is_pending_delivers_nothing() {
    let p = EmulatedPort::create().unwrap();
    let (a, mut b) = pair();
    // A duplicate keeps the file open, so epoll alone would still fire.
    let dup = a.try_clone().unwrap();
    let fd = a.as_raw_fd();
    p.associate(fd, POLLIN, 0).unwrap();
    b.write_all(b"x").unwrap();
    std::thread::sleep(SHORT);
    p.closing(fd);
    drop(a);
    assert!(get1(&p, SHORT).is_none());
    // Its number reused by a new socket starts clean.
    let (c, mut d) = pair();
    let c_fd = c.as_raw_fd();
    p.associate(c_fd, POLLIN, 2).unwrap();
    d.write_all(b"y").unwrap();
    let e = get1(&p, SHORT).unwrap();
    assert_eq!((e.object, e.user), (c_fd as usize, 2));
    drop(dup);
}

#[test]
fn a_reset_is_pollin_pollout_and_never_pollerr() {
    let p = EmulatedPort::create().unwrap();
    let (a, b) = pair();
    socket2::SockRef::from(&b)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(b); // RST
    std::thread::sleep(SHORT);
    p.associate(a.as_raw_fd(), POLLIN | POLLOUT, 0).unwrap();
    let e = get1(&p, SHORT).unwrap();
    assert_eq!(e.events, POLLIN | POLLOUT);
    assert_eq!(e.events & (POLLERR | POLLHUP), 0);
}

#[test]
fn end_of_stream_is_plain_pollin_and_a_full_close_hangs_up() {
    let p = EmulatedPort::create().unwrap();
    let (mut a, b) = pair();
    b.shutdown(Shutdown::Write).unwrap(); // FIN
    std::thread::sleep(SHORT);
    p.associate(a.as_raw_fd(), POLLIN, 0).unwrap();
    assert_eq!(get1(&p, SHORT).unwrap().events, POLLIN);
    assert_eq!(a.read(&mut [0; 8]).unwrap(), 0);
    // Both directions shut: POLLHUP with POLLIN, never POLLOUT.
    a.shutdown(Shutdown::Write).unwrap();
    drop(b);
    std::thread::sleep(SHORT);
    p.associate(a.as_raw_fd(), POLLIN | POLLOUT, 0).unwrap();
    assert_eq!(get1(&p, SHORT).unwrap().events, POLLIN | POLLHUP);
}

#[test]
fn port_send_queues_one_event_per_call_with_its_payload() {
    let p = EmulatedPort::create().unwrap();
    for user in 1..=3 {
        p.send(0x10 + user as i32, user).unwrap();
    }
    let mut out = Vec::new();
    let mut n = 1;
    p.getn(&mut out, 2, &mut n, Some(SHORT)).unwrap();
    assert_eq!(n, 2, "up to max");
    assert_eq!(
        out.iter()
            .map(|e| (e.source, e.events, e.user))
            .collect::<Vec<_>>(),
        [(PORT_SOURCE_USER, 0x11, 1), (PORT_SOURCE_USER, 0x12, 2)]
    );
    let e = get1(&p, SHORT).unwrap();
    assert_eq!(e.user, 3);
    assert!(get1(&p, SHORT).is_none(), "three sends, three events");
}

#[test]
fn a_timeout_is_etime_with_what_was_retrieved() {
    let p = EmulatedPort::create().unwrap();
    p.send(0, 1).unwrap();
    let mut out = Vec::new();
    let mut n = 2; // wait for two, only one comes
    let t0 = Instant::now();
    assert_eq!(p.getn(&mut out, 4, &mut n, Some(SHORT)), Err(Errno::ETIME));
    assert!(t0.elapsed() >= SHORT);
    assert_eq!((n, out.len()), (1, 1));
    // nget 0 polls: whatever is there, at once.
    let mut n = 0;
    p.getn(&mut out, 4, &mut n, Some(Duration::ZERO))
        .unwrap_or(());
    assert_eq!(n, 0);
    let mut n = 5;
    assert_eq!(p.getn(&mut out, 4, &mut n, None), Err(Errno::EINVAL));
}

#[test]
fn a_signal_is_eintr_with_the_events_already_retrieved() {
    // SAFETY: the action does nothing, which is async-signal-safe; SIGUSR1
    // is used by nothing else in the test binary.
    unsafe { signal_hook::low_level::register(libc::SIGUSR1, || {}) }.unwrap();
    let p = Arc::new(EmulatedPort::create().unwrap());
    p.send(0, 42).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut out = Vec::new();
            let mut n = 3;
            let r = p.getn(&mut out, 8, &mut n, Some(Duration::from_secs(10)));
            (r, n, out)
        })
    };
    let thread = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: the thread is alive (it waits up to 10 s) and has a handler.
    assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGUSR1) }, 0);
    let (r, n, out) = waiter.join().unwrap();
    assert_eq!(r, Err(Errno::EINTR));
    assert_eq!(n, 1, "the user event retrieved before the signal");
    assert_eq!(out[0].user, 42);
}

#[test]
fn a_wake_up_racing_a_close_is_delivered_and_the_close_is_not() {
    let p = Arc::new(EmulatedPort::create().unwrap());
    for _ in 0..200 {
        let (a, mut b) = pair();
        let fd = a.as_raw_fd();
        p.associate(fd, POLLIN, 1).unwrap();
        b.write_all(b"x").unwrap();
        let waker = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.send(0, 9).unwrap())
        };
        p.closing(fd);
        drop(a);
        waker.join().unwrap();
        let mut out = Vec::new();
        let mut n = 1;
        p.getn(&mut out, 8, &mut n, Some(SHORT)).unwrap();
        assert!(out.iter().all(|e| e.source == PORT_SOURCE_USER), "{out:?}");
        assert_eq!(out.len(), 1);
    }
}

#[test]
fn a_listener_fires_for_a_pending_connection() {
    let p = EmulatedPort::create().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    p.associate(l.as_raw_fd(), POLLIN, 0).unwrap();
    assert!(get1(&p, SHORT).is_none());
    let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    assert_eq!(get1(&p, Duration::from_secs(1)).unwrap().events, POLLIN);
}
