//! `tcp` through the engine: concurrency, volume, half-close, retries,
//! backend death, drain.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::backend::{Backend, Behaviour};
use crate::util::{
    check_responder, connect_within, cpu_seconds, free_port, local, metadata, roundtrip,
    wait_refused, Moirai, SECS,
};

#[test]
fn a_thousand_concurrent_connections_through_one_service() {
    // 1,000 clients plus 1,000 backend sockets live in this process.
    moirai::sys::rlimit::raise_nofile().unwrap();
    let port = free_port();
    let a = Backend::start("127.0.0.2:0", Behaviour::Echo);
    let bport = a.addr.port();
    let b = Backend::start(&format!("127.0.0.3:{bport}"), Behaviour::Echo);
    let _m = Moirai::start(
        &metadata(&format!("tcp://{port}:echo.test:{bport}")),
        "127.0.0.2 echo.test\n127.0.0.3 echo.test\n",
        &[],
    );
    let addr = local(port);
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect_within(addr, SECS(5))).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("client {i:05} says hello\n").as_bytes())
            .unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = format!("client {i:05} says hello\n");
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, want.as_bytes());
    }
    // All 1,000 are open at once; least-connections spreads them evenly.
    assert_eq!(a.accepted() + b.accepted(), 1000);
    assert!(
        a.accepted().abs_diff(b.accepted()) <= 50,
        "{} vs {}",
        a.accepted(),
        b.accepted()
    );
}

/// A 1 MiB block stamped with its index, so reordering or loss shows.
fn block(i: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ i;
    let mut v = Vec::with_capacity(1 << 20);
    while v.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

#[test]
fn a_gibibyte_each_way_arrives_intact() {
    const BLOCKS: u64 = 1024;
    let port = free_port();
    // Upload: the backend hashes what it reads and answers with the CRC.
    // Download: it sends the same stream and closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let mut s = conn.unwrap();
            let mut mode = [0u8; 1];
            s.read_exact(&mut mode).unwrap();
            if mode[0] == b'U' {
                let mut h = crc32fast::Hasher::new();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                s.write_all(&h.finalize().to_le_bytes()).unwrap();
            } else {
                for i in 0..BLOCKS {
                    s.write_all(&block(i)).unwrap();
                }
            }
        }
    });
    let _m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{bport}")),
        "",
        &[],
    );

    let mut up = connect_within(local(port), SECS(5));
    up.set_read_timeout(Some(SECS(120))).unwrap();
    up.write_all(b"U").unwrap();
    let mut sent = crc32fast::Hasher::new();
    for i in 0..BLOCKS {
        let b = block(i);
        sent.update(&b);
        up.write_all(&b).unwrap();
    }
    up.shutdown(Shutdown::Write).unwrap();
    let mut crc = [0u8; 4];
    up.read_exact(&mut crc).unwrap();
    assert_eq!(u32::from_le_bytes(crc), sent.finalize(), "upload checksum");

    let mut down = connect_within(local(port), SECS(5));
    down.set_read_timeout(Some(SECS(120))).unwrap();
    down.write_all(b"D").unwrap();
    let mut got = crc32fast::Hasher::new();
    let mut want = crc32fast::Hasher::new();
    for i in 0..BLOCKS {
        want.update(&block(i));
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = down.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        got.update(&buf[..n]);
    }
    assert_eq!(total, BLOCKS << 20);
    assert_eq!(got.finalize(), want.finalize(), "download checksum");
}

#[test]
fn half_close_travels_both_ways() {
    let port = free_port();
    // Backend that speaks first and closes its side first, then reports
    // what it still receives.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = listener.accept().unwrap().0;
        s.write_all(b"hello").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        tx.send(got).unwrap();
    });
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let port2 = free_port();
    let _m = Moirai::start(
        &metadata(&format!(
            "tcp://{port}:127.0.0.1:{bport},tcp://{port2}:127.0.0.1:{}",
            echo.addr.port()
        )),
        "",
        &[],
    );

    // Backend closes first: the client reads everything, then EOF, and can
    // still send.
    let mut c = connect_within(local(port), SECS(5));
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello");
    c.write_all(b"still talking").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rx.recv_timeout(SECS(5)).unwrap(), b"still talking");

    // Client closes first: the backend sees EOF, answers, and the client
    // reads the answer after its own FIN.
    let mut c = connect_within(local(port2), SECS(5));
    c.write_all(b"ping").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ping");
}

#[test]
fn a_refused_connect_is_retried_on_another_backend() {
    let port = free_port();
    let live = Backend::start("127.0.0.3:0", Behaviour::Echo);
    let bport = live.addr.port();
    // 127.0.0.2 has nothing on that port: every connect there is refused.
    let _m = Moirai::start(
        &metadata(&format!("tcp://{port}:mixed.test:{bport}")),
        "127.0.0.2 mixed.test\n127.0.0.3 mixed.test\n",
        &[],
    );
    for i in 0..20 {
        let mut c = connect_within(local(port), SECS(5));
        let msg = format!("attempt {i}");
        assert_eq!(roundtrip(&mut c, msg.as_bytes()).unwrap(), msg.as_bytes());
    }
    assert_eq!(live.accepted(), 20);
}

#[test]
fn a_backend_dying_mid_stream_closes_only_its_own_clients() {
    let port = free_port();
    let a = Backend::start("127.0.0.2:0", Behaviour::TaggedEcho(b'A'));
    let bport = a.addr.port();
    let b = Backend::start(&format!("127.0.0.3:{bport}"), Behaviour::TaggedEcho(b'B'));
    let _m = Moirai::start(
        &metadata(&format!("tcp://{port}:two.test:{bport}")),
        "127.0.0.2 two.test\n127.0.0.3 two.test\n",
        &[],
    );
    let mut clients: Vec<(u8, TcpStream)> = (0..10)
        .map(|_| {
            let mut c = connect_within(local(port), SECS(5));
            let mut tag = [0u8];
            c.read_exact(&mut tag).unwrap();
            (tag[0], c)
        })
        .collect();
    assert!(clients.iter().any(|(t, _)| *t == b'A') && clients.iter().any(|(t, _)| *t == b'B'));
    a.kill();
    for (tag, c) in clients.iter_mut() {
        let r = roundtrip(c, b"are you there?");
        match tag {
            b'A' => assert!(
                r.is_err(),
                "a client of the dead backend must see its connection end"
            ),
            _ => assert_eq!(r.unwrap(), b"are you there?"),
        }
    }
    drop(b);
}

#[test]
fn sigterm_stops_accepting_and_lets_open_connections_finish() {
    let port = free_port();
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let mut m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port())),
        "",
        &["--grace", "20s"],
    );
    let mut open = connect_within(local(port), SECS(5));
    assert_eq!(roundtrip(&mut open, b"before").unwrap(), b"before");
    m.signal("TERM");
    m.wait_log("draining", SECS(5));
    wait_refused(local(port), SECS(5));
    // The open connection still works during the drain...
    assert_eq!(roundtrip(&mut open, b"during").unwrap(), b"during");
    assert!(
        m.child.try_wait().unwrap().is_none(),
        "exited while a connection was open"
    );
    // ...and the process exits 0 as soon as it ends.
    drop(open);
    let start = Instant::now();
    assert_eq!(m.wait_exit(SECS(10)), Some(0));
    assert!(start.elapsed() < SECS(5));
}

#[test]
fn the_grace_period_bounds_the_drain() {
    let port = free_port();
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let mut m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port())),
        "",
        &["--grace", "1s"],
    );
    let mut open = connect_within(local(port), SECS(5));
    assert_eq!(roundtrip(&mut open, b"x").unwrap(), b"x");
    let start = Instant::now();
    m.signal("TERM");
    assert_eq!(m.wait_exit(SECS(10)), Some(0));
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(m.log_text().contains("closed 1 connections still open"));
}

#[test]
fn a_shared_listener_accepts_every_connection_exactly_once() {
    let port = free_port();
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let _m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port())),
        "",
        &["--shared-listener"],
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..100 {
                    let mut c = connect_within(local(port), SECS(5));
                    let msg = format!("thread {t} conn {i}");
                    assert_eq!(roundtrip(&mut c, msg.as_bytes()).unwrap(), msg.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(echo.accepted(), 400);
}

#[test]
fn a_service_without_backends_refuses_and_others_keep_working() {
    let port = free_port();
    let port2 = free_port();
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let m = Moirai::start(
        &metadata(&format!(
            "tcp://{port}:unknown.test:80,tcp://{port2}:127.0.0.1:{}",
            echo.addr.port()
        )),
        "",
        &[],
    );
    m.wait_log("no backends", SECS(5));
    let mut c = connect_within(local(port), SECS(5));
    let mut buf = [0u8; 1];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "closed without a backend");
    let mut c = connect_within(local(port2), SECS(5));
    assert_eq!(roundtrip(&mut c, b"ok").unwrap(), b"ok");
}

#[test]
fn sessions_end_when_data_and_fin_arrive_together() {
    // Each side sends its last bytes and its FIN back to back, often in
    // one segment: the balancer must still see both EOFs and end the
    // session, or a drain would wait for sessions that are long gone.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let _ = s.read_to_end(&mut req);
                let _ = s.write_all(&req);
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    let port = free_port();
    let mut m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{bport}")),
        "",
        &["--grace", "30s"],
    );
    for i in 0..200 {
        let mut c = connect_within(local(port), SECS(5));
        let msg = format!("request {i}");
        c.write_all(msg.as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    m.signal("TERM");
    assert_eq!(m.wait_exit(SECS(35)), Some(0));
    assert!(
        start.elapsed() < SECS(3),
        "sessions were left open: {}",
        m.log_text()
    );
}

#[test]
fn resets_are_passed_on_in_both_directions() {
    // Backend resets: the client must see a reset, not a clean end.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let rst_port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let mut s = conn.unwrap();
            if i == 0 {
                let mut b = [0u8; 5];
                s.read_exact(&mut b).unwrap();
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(s);
            } else {
                // Client resets: report how the backend saw the end.
                let mut buf = [0u8; 64];
                let r = loop {
                    match s.read(&mut buf) {
                        Ok(0) => break "eof",
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
                        Err(_) => break "error",
                    }
                };
                tx.send(r).unwrap();
            }
        }
    });
    let port = free_port();
    let _m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{rst_port}")),
        "",
        &[],
    );
    let mut c = connect_within(local(port), SECS(5));
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 8];
    let e = c.read(&mut buf).expect_err("a reset, not an EOF");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);

    let c = connect_within(local(port), SECS(5));
    (&c).write_all(b"data").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    assert_eq!(rx.recv_timeout(SECS(5)).unwrap(), "reset");
}

#[test]
fn a_black_holed_backend_times_out_and_the_retry_lands_elsewhere() {
    // A listener that never accepts, with its backlog already full: the
    // kernel drops further SYNs, so a connect hangs until our timeout.
    let hole = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    hole.bind(
        &"127.0.0.2:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    hole.listen(0).unwrap();
    let hport = hole.local_addr().unwrap().as_socket().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&std::net::SocketAddr::from(([127, 0, 0, 2], hport)).into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let live = Backend::start(&format!("127.0.0.3:{hport}"), Behaviour::Echo);
    let port = free_port();
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        // Checks go to the responder: the hole itself would fail them and
        // never be tried, and this test is about the data plane's retry.
        "cloud.tritoncompute:portmap": format!("tcp://{port}:hole.test:{hport}{{port:{}}}", check_responder()),
        "cloud.tritoncompute:timeouts": "{connect:300ms}",
    });
    let _m = Moirai::start(
        &md.to_string(),
        "127.0.0.2 hole.test\n127.0.0.3 hole.test\n",
        &[],
    );
    let mut slow = 0;
    for i in 0..6 {
        let start = Instant::now();
        let mut c = connect_within(local(port), SECS(5));
        let msg = format!("try {i}");
        assert_eq!(roundtrip(&mut c, msg.as_bytes()).unwrap(), msg.as_bytes());
        if start.elapsed() >= Duration::from_millis(250) {
            slow += 1;
        }
    }
    assert_eq!(live.accepted(), 6);
    assert!(slow >= 1, "no connect went to the black hole first");
    drop(fillers);
}

#[test]
fn idle_connections_are_closed_after_the_client_timeout() {
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let port = free_port();
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": format!("tcp://{port}:127.0.0.1:{}", echo.addr.port()),
        "cloud.tritoncompute:timeouts": "{client:700ms,server:5s}",
    });
    let _m = Moirai::start(&md.to_string(), "", &[]);
    let mut c = connect_within(local(port), SECS(5));
    // Activity keeps it open past the timeout...
    for _ in 0..4 {
        assert_eq!(roundtrip(&mut c, b"tick").unwrap(), b"tick");
        std::thread::sleep(Duration::from_millis(300));
    }
    // ...and silence closes it.
    let start = Instant::now();
    let mut buf = [0u8; 1];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < SECS(3),
        "{waited:?}"
    );
}

#[test]
fn a_low_descriptor_limit_queues_clients_without_spinning() {
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let port = free_port();
    // prlimit caps the hard limit too, so moirai cannot raise it away.
    let mut m = Moirai::start_wrapped(
        &["prlimit", "--nofile=96:96", "--"],
        &metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port())),
    );
    // Far more clients than descriptors: each session needs two.
    let mut clients: Vec<TcpStream> = (0..150)
        .map(|_| connect_within(local(port), SECS(5)))
        .collect();
    for c in &mut clients {
        c.write_all(b"queued").unwrap();
    }
    m.wait_log("new ones wait in the accept queue", SECS(5));
    let pid = m.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(SECS(2));
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.5,
        "moirai used {used:.2} s of CPU in 2 s while at its limit"
    );
    // Clients are served in turn as earlier ones leave: nobody is dropped.
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut back = [0u8; 6];
        c.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(&back, b"queued");
    }
    assert!(m.child.try_wait().unwrap().is_none(), "moirai died");
}
