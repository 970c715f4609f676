//! Health checks against real backends: a failing HTTP check takes a
//! backend out within `fall` checks and `rise` passing ones bring it back;
//! with every backend down, http answers 503 and tcp closes, and service
//! returns by itself; connections open to a backend that goes down finish.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::backend::{Backend, Behaviour};
use crate::util::http::{get, ok, Client, HttpBackend, Reply};
use crate::util::{
    connect_within, cpu_seconds, free_port, local, metadata_exact, roundtrip, Moirai, SECS,
};

/// An HTTP backend answering `tag` on every path but `/healthz`, whose
/// status the test sets; it records the Host of each check.
fn switchable(
    addr: &str,
    tag: &'static str,
) -> (HttpBackend, Arc<AtomicU16>, Arc<Mutex<Vec<String>>>) {
    let health = Arc::new(AtomicU16::new(200));
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let (h, seen) = (health.clone(), hosts.clone());
    let b = HttpBackend::start(addr, move |req| {
        if req.path == "/healthz" {
            seen.lock()
                .unwrap()
                .push(req.header("host").unwrap_or_default());
            let code = h.load(Ordering::SeqCst);
            Reply::ThenClose(
                format!("HTTP/1.1 {code} Check\r\nContent-Length: 0\r\n\r\n").into_bytes(),
            )
        } else {
            ok(tag)
        }
    });
    (b, health, hosts)
}

/// The bodies of `n` requests, each on a fresh connection with no cookie.
fn spread(port: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut c = Client::connect(local(port));
            let r = c.exchange(&get("/")).expect("a response");
            assert_eq!(r.status, 200, "{}", r.head);
            String::from_utf8(r.body).unwrap()
        })
        .collect()
}

#[test]
fn a_failing_http_check_takes_a_backend_out_and_rise_brings_it_back() {
    let (a, _, _) = switchable("127.0.0.2:0", "A");
    let bport = a.port();
    let (_b, b_health, b_hosts) = switchable(&format!("127.0.0.3:{bport}"), "B");
    let port = free_port();
    let m = Moirai::start(
        &metadata_exact(&format!(
            "http://{port}:web.test:{bport}{{check:/healthz,rise:2,fall:2}}"
        )),
        "127.0.0.2 web.test\n127.0.0.3 web.test\n",
        &[],
    );
    let got = spread(port, 20);
    assert!(
        got.contains(&"A".into()) && got.contains(&"B".into()),
        "{got:?}"
    );
    assert_eq!(
        b_hosts.lock().unwrap()[0],
        "web.test",
        "the check names the backend"
    );

    // Failing checks: out after `fall` (2) of them, 2 s apart at most.
    b_health.store(503, Ordering::SeqCst);
    let failed_at = Instant::now();
    let down = format!("backend 127.0.0.3:{bport} is down");
    m.wait_log(&down, SECS(2 * 2 + 2));
    let took = failed_at.elapsed();
    // The state change is published as a generation; wait until every
    // worker runs it.
    m.wait_log(&format!("-> [127.0.0.2:{bport}]"), SECS(2));
    assert!(
        spread(port, 20).iter().all(|t| t == "A"),
        "a down backend got traffic"
    );
    let status = m.status(false);
    assert!(
        status.contains("down (http check answered status 503)"),
        "{status}"
    );

    // Passing again: back after `rise` (2) of them.
    b_health.store(200, Ordering::SeqCst);
    let up = format!("backend 127.0.0.3:{bport} is up");
    m.wait_log_count(&up, 2, SECS(2 * 2 + 2));
    m.wait_log_count(
        &format!("-> [127.0.0.2:{bport}, 127.0.0.3:{bport}]"),
        2,
        SECS(2),
    );
    let got = spread(port, 20);
    assert!(got.contains(&"B".into()), "{got:?}");
    eprintln!("down after {took:?}");
}

#[test]
fn with_every_backend_down_http_answers_503_and_tcp_closes_until_they_return() {
    let (web, web_health, _) = switchable("127.0.0.1:0", "W");
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let eport = echo.addr.port();
    let (hp, tp) = (free_port(), free_port());
    let m = Moirai::start(
        &metadata_exact(&format!(
            "http://{hp}:127.0.0.1:{}{{check:/healthz}},tcp://{tp}:127.0.0.1:{eport}",
            web.port()
        )),
        "",
        &[],
    );
    assert_eq!(spread(hp, 1), ["W"]);
    let mut c = connect_within(local(tp), SECS(5));
    assert_eq!(roundtrip(&mut c, b"up").unwrap(), b"up");

    web_health.store(500, Ordering::SeqCst);
    echo.kill();
    m.wait_log(
        &format!("backend 127.0.0.1:{} is down", web.port()),
        SECS(5),
    );
    m.wait_log(&format!("backend 127.0.0.1:{eport} is down"), SECS(5));
    m.wait_log(&format!("[127.0.0.1:{}] -> []", web.port()), SECS(5));
    m.wait_log(&format!("[127.0.0.1:{eport}] -> []"), SECS(5));
    // After serving, losing every backend is an outage: WARN.
    m.wait_log(
        &format!(
            "WARN  service http://{hp}:127.0.0.1:{}{{check:/healthz}}: no backends: all 1 backends are down",
            web.port()
        ),
        SECS(5),
    );
    // The first checks of the start were not.
    assert!(
        m.log_text().contains("INFO  service tcp://"),
        "{}",
        m.log_text()
    );
    let r = Client::connect(local(hp)).exchange(&get("/")).unwrap();
    assert_eq!(r.status, 503);
    let mut t = connect_within(local(tp), SECS(5));
    t.set_read_timeout(Some(SECS(5))).unwrap();
    let _ = t.write_all(b"anyone?");
    let mut buf = [0u8; 8];
    assert!(matches!(t.read(&mut buf), Ok(0) | Err(_)), "tcp must close");

    // Both come back by themselves within rise (2) × 2 s.
    web_health.store(200, Ordering::SeqCst);
    let _echo = Backend::start(&format!("127.0.0.1:{eport}"), Behaviour::Echo);
    let back = Instant::now();
    let limit = SECS(2 * 2 + 2);
    m.wait_log_count(&format!("backend 127.0.0.1:{} is up", web.port()), 2, limit);
    m.wait_log_count(&format!("backend 127.0.0.1:{eport} is up"), 2, limit);
    m.wait_log_count(&format!("[] -> [127.0.0.1:{}]", web.port()), 2, limit);
    m.wait_log_count(&format!("[] -> [127.0.0.1:{eport}]"), 2, limit);
    eprintln!("back after {:?}", back.elapsed());
    m.wait_log(&format!("service http://{hp}:"), SECS(1));
    m.wait_log("serving again (1 backends)", SECS(2));
    assert_eq!(spread(hp, 1), ["W"]);
    let mut c = connect_within(local(tp), SECS(5));
    assert_eq!(roundtrip(&mut c, b"back").unwrap(), b"back");
}

#[test]
fn a_backend_marked_down_finishes_its_open_connections_and_gets_no_new_ones() {
    // Backends 127.0.0.2 and .3 on one port; their checks go to separate
    // listeners on another port, so a check can fail while the service
    // itself still answers.
    let a = Backend::start("127.0.0.2:0", Behaviour::TaggedEcho(b'A'));
    let bport = a.addr.port();
    let _b = Backend::start(&format!("127.0.0.3:{bport}"), Behaviour::TaggedEcho(b'B'));
    let cport = free_port();
    let check_a = TcpListener::bind(SocketAddr::from(([127, 0, 0, 2], cport))).unwrap();
    let check_b = TcpListener::bind(SocketAddr::from(([127, 0, 0, 3], cport))).unwrap();
    let port = free_port();
    let m = Moirai::start(
        &metadata_exact(&format!("tcp://{port}:two.test:{bport}{{port:{cport}}}")),
        "127.0.0.2 two.test\n127.0.0.3 two.test\n",
        &[],
    );
    let mut on_a = crate::util::reach_tag(port, b'A', SECS(5));
    assert_eq!(roundtrip(&mut on_a, b"before").unwrap(), b"before");
    drop(check_a);
    m.wait_log(&format!("backend 127.0.0.2:{bport} is down"), SECS(5));
    m.wait_log(&format!("-> [127.0.0.3:{bport}]"), SECS(2));
    // The open connection keeps working...
    assert_eq!(roundtrip(&mut on_a, b"after").unwrap(), b"after");
    // ...and every new one goes to B.
    for _ in 0..10 {
        let mut c = TcpStream::connect(local(port)).unwrap();
        c.set_read_timeout(Some(SECS(5))).unwrap();
        let mut tag = [0u8];
        c.read_exact(&mut tag).unwrap();
        assert_eq!(tag[0], b'B');
    }
    drop(check_b);
}

#[test]
fn a_thousand_and_twenty_four_backends_are_checked_without_stalling_the_control_thread() {
    // One listener on every address: 127.1.x.y all reach it.
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.set_reuse_address(true).unwrap();
    let bport = free_port();
    l.bind(&SocketAddr::from(([0, 0, 0, 0], bport)).into())
        .unwrap();
    l.listen(4096).unwrap();
    let l: TcpListener = l.into();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    l.set_nonblocking(true).unwrap();
    let acceptor = std::thread::spawn(move || {
        let mut n = 0u64;
        while !st.load(Ordering::SeqCst) {
            match l.accept() {
                Ok(_) => n += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        n
    });
    let hosts: String = (0..1024)
        .map(|i| format!("127.1.{}.{} many.test\n", i / 250, i % 250 + 1))
        .collect();
    let port = free_port();
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:max_rs": "1024",
        "cloud.tritoncompute:portmap": format!("tcp://{port}:many.test:{bport}"),
    });
    let m = Moirai::start(&md.to_string(), &hosts, &[]);
    m.wait_log("every backend checked (1024 up, 0 down)", SECS(10));

    // Steady state: 1,024 checks every 2 s. The control thread still
    // applies a metadata change at once, and its CPU stays modest.
    let cpu0 = cpu_seconds(m.pid());
    let t0 = Instant::now();
    std::thread::sleep(SECS(4));
    let other = free_port();
    let md2 = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:max_rs": "1024",
        "cloud.tritoncompute:portmap": format!("tcp://{port}:many.test:{bport} tcp://{other}:127.0.0.1:{bport}"),
    });
    let changed = Instant::now();
    m.set_metadata(&md2.to_string());
    m.wait_log(&format!("+tcp://{other}:"), SECS(2));
    let applied_after = changed.elapsed();
    let cpu = (cpu_seconds(m.pid()) - cpu0) / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let accepted = acceptor.join().unwrap();
    eprintln!(
        "1024 backends: change applied after {applied_after:?}, moirai CPU {:.1}% of a core, {accepted} checks accepted",
        cpu * 100.0
    );
    // 1,024 checks every 2 s for ~4 s: at least two full rounds.
    assert!(accepted >= 2 * 1024, "{accepted} checks");
    // A spinning control thread would take a whole core.
    assert!(cpu < 0.5, "moirai used {:.0}% of a core", cpu * 100.0);
}
