//! Fault injection with real processes and sockets: reload storms, slow and
//! hostile clients, a client that never reads, DNS that answers garbage or
//! late. Each test says what was lost (nothing, is the point) and prints
//! its figures for docs/RELIABILITY.md.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::backend::{Backend, Behaviour};
use crate::util::http::{get, ok, Client, HttpBackend};
use crate::util::{connect_within, free_port, local, metadata, rss_kib, Moirai, SECS};

/// Keep-alive and fresh-connection load on `port` until `stop`: returns
/// (requests, failures, slowest request).
fn load(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, u32, Duration)> {
    std::thread::spawn(move || {
        let (mut n, mut failed, mut worst) = (0u32, 0u32, Duration::ZERO);
        let mut c = Client::connect(local(port));
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            match c.exchange(&get("/")) {
                Some(r) if r.status == 200 => n += 1,
                _ => {
                    failed += 1;
                    c = Client::connect(local(port));
                }
            }
            worst = worst.max(t.elapsed());
            if n.is_multiple_of(3) {
                c = Client::connect(local(port));
            }
        }
        (n, failed, worst)
    })
}

fn finish(loaders: Vec<std::thread::JoinHandle<(u32, u32, Duration)>>) -> (u32, u32, Duration) {
    loaders.into_iter().fold((0, 0, Duration::ZERO), |acc, l| {
        let (n, f, w) = l.join().unwrap();
        (acc.0 + n, acc.1 + f, acc.2.max(w))
    })
}

#[test]
fn fifty_sighups_in_five_seconds_under_load_fail_no_request() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("steady"));
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
        "",
        &[],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4).map(|_| load(port, stop.clone())).collect();
    for _ in 0..50 {
        m.signal("HUP");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let (n, failed, worst) = finish(loaders);
    eprintln!("SIGHUP storm: {n} requests, {failed} failed, slowest {worst:?}");
    assert!(n > 100, "only {n} requests");
    assert_eq!(failed, 0);
    assert_eq!(
        m.log_text().matches("SIGHUP: reading metadata now").count(),
        50
    );
}

#[test]
fn slowloris_clients_get_408_and_cost_others_nothing() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("fast"));
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
        "",
        &[],
    );
    // 500 clients, one header byte each every 5 s, against the default
    // 10 s header timeout.
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let s = connect_within(local(port), SECS(5));
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..2).map(|_| load(port, stop.clone())).collect();
    let head = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa";
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < SECS(12) && sent < head.len() {
        for s in &mut slow {
            let _ = s.write(&head[sent..sent + 1]);
        }
        sent += 1;
        std::thread::sleep(SECS(5));
    }
    stop.store(true, Ordering::SeqCst);
    let (n, failed, worst) = finish(loaders);
    let mut timed_out = 0;
    for mut s in slow {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(SECS(5))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        if got.starts_with(b"HTTP/1.1 408") {
            timed_out += 1;
        }
    }
    eprintln!(
        "slowloris: 500 slow clients (a byte every 5 s), {timed_out} got 408; others: {n} requests, {failed} failed, slowest {worst:?}"
    );
    assert_eq!(failed, 0);
    assert!(n > 100, "only {n} requests");
    assert_eq!(timed_out, 500);
    drop(m);
}

#[test]
fn a_client_that_never_reads_holds_only_its_buffers() {
    // The backend streams as fast as it can; the client reads nothing.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = l.local_addr().unwrap().port();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s = sent.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                let block = vec![b'x'; 64 * 1024];
                while c.write_all(&block).is_ok() {
                    s.fetch_add(block.len() as u64, Ordering::SeqCst);
                }
            });
        }
    });
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{bport}")),
        "",
        &[],
    );
    let before = rss_kib(m.pid());
    let idle = connect_within(local(port), SECS(5));
    std::thread::sleep(SECS(3));
    let after = rss_kib(m.pid());
    let moved = sent.load(Ordering::SeqCst);
    std::thread::sleep(SECS(1));
    let later = sent.load(Ordering::SeqCst);
    eprintln!(
        "never-reading client: backend wrote {} KiB then stalled ({} KiB more in 1 s); moirai RSS {before} -> {after} KiB",
        moved / 1024,
        (later - moved) / 1024
    );
    // Backpressure: the backend is stopped by full socket buffers (a few
    // MiB on loopback), not by moirai buffering without bound.
    assert!(moved < 64 << 20, "{moved} bytes left the backend");
    assert_eq!(later, moved, "the backend is blocked");
    assert!(
        after < before + 8 * 1024,
        "RSS grew {before} -> {after} KiB"
    );
    drop(idle);
}

#[test]
fn dns_that_answers_garbage_or_late_does_not_stall_the_data_plane() {
    let (_a, mut dns, port, m) = crate::dns::one_backend_by_name();
    // Replace the server with one that answers garbage to every other
    // query and the rest after 5 s.
    let ns_port = dns
        .nameserver()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    dns.stop();
    let sock = UdpSocket::bind(("127.0.0.1", ns_port)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let fake = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 512];
        let mut k = 0u32;
        while !st.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            k += 1;
            if k.is_multiple_of(2) {
                std::thread::sleep(SECS(5));
            }
            // Right id, garbage after it.
            let mut reply = buf[..2.min(n)].to_vec();
            reply.extend_from_slice(&[0xff; 40]);
            let _ = sock.send_to(&reply, from);
        }
        k
    });
    let start = Instant::now();
    let (mut n, mut worst) = (0, Duration::ZERO);
    while start.elapsed() < SECS(6) {
        let t = Instant::now();
        let mut c = TcpStream::connect(local(port)).unwrap();
        c.set_read_timeout(Some(SECS(5))).unwrap();
        let mut tag = [0u8];
        c.read_exact(&mut tag).unwrap();
        assert_eq!(tag[0], b'A', "the last good set keeps serving");
        worst = worst.max(t.elapsed());
        n += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let queries = fake.join().unwrap();
    eprintln!(
        "DNS garbage/late: {queries} queries answered badly; {n} connections, slowest {worst:?}"
    );
    assert!(queries >= 2, "moirai kept asking");
    assert!(m.log_text().contains("keeping the last good set"));
    assert!(worst < SECS(1), "a connection waited {worst:?} on DNS");
}

/// A real backend process: python's http.server on `addr`.
fn python_backend(ip: &str, port: u16, dir: &std::path::Path) -> std::process::Child {
    let child = std::process::Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", ip])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let start = Instant::now();
    while TcpStream::connect((ip, port)).is_err() {
        assert!(start.elapsed() < SECS(10), "python backend on {ip}:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn an_http_backend_killed_with_sigkill_costs_only_its_requests_in_flight() {
    let dir = crate::util::temp_dir("pyweb");
    std::fs::write(dir.join("index.html"), "hello").unwrap();
    let bport = free_port();
    let mut a = python_backend("127.0.0.2", bport, &dir);
    let mut b = python_backend("127.0.0.3", bport, &dir);
    let port = free_port();
    // Real checks against the real processes.
    let m = Moirai::start(
        &crate::util::metadata_exact(&format!("http://{port}:two.test:{bport}")),
        "127.0.0.2 two.test\n127.0.0.3 two.test\n",
        &[],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4).map(|_| load(port, stop.clone())).collect();
    std::thread::sleep(SECS(2));
    a.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    m.wait_log(&format!("backend 127.0.0.2:{bport} is down"), SECS(5));
    let noticed = killed.elapsed();
    std::thread::sleep(SECS(2));
    stop.store(true, Ordering::SeqCst);
    let (n, failed, worst) = finish(loaders);
    eprintln!(
        "SIGKILL of one http backend: {n} requests, {failed} failed, slowest {worst:?}, marked down after {noticed:?}"
    );
    // At most the requests in flight on the killed backend (one per
    // loader); requests not yet sent went to the other one.
    assert!(failed <= 4, "{failed} failed");
    assert!(n > 100);
    let _ = a.wait();
    let _ = b.kill();
    let _ = b.wait();
}

#[test]
fn a_vanished_or_garbled_metadata_file_keeps_the_running_configuration() {
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let port = free_port();
    let md = metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port()));
    let m = Moirai::start(&md, "", &[]);
    let mut c = connect_within(local(port), SECS(5));
    assert_eq!(crate::util::roundtrip(&mut c, b"one").unwrap(), b"one");
    let generations = m.log_text().matches(" applied by ").count();
    std::fs::remove_file(&m.metadata).unwrap();
    m.wait_log("cannot read metadata", SECS(5));
    assert_eq!(crate::util::roundtrip(&mut c, b"two").unwrap(), b"two");
    let mut fresh = connect_within(local(port), SECS(5));
    assert_eq!(crate::util::roundtrip(&mut fresh, b"new").unwrap(), b"new");
    // Half-written: the first bytes of the file only.
    std::fs::write(&m.metadata, &md[..md.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let mut fresh = connect_within(local(port), SECS(5));
    assert_eq!(
        crate::util::roundtrip(&mut fresh, b"half").unwrap(),
        b"half"
    );
    crate::util::write_atomic(&m.metadata, &md);
    m.wait_log("metadata readable again", SECS(5));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        m.log_text().matches(" applied by ").count(),
        generations,
        "nothing changed, so nothing was republished"
    );
}

#[test]
fn a_256_descriptor_limit_with_1000_clients_neither_spins_nor_crashes() {
    // The test itself holds 1,000 sockets.
    let _ = moirai::sys::rlimit::raise_nofile();
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let port = free_port();
    let mut m = Moirai::start_wrapped(
        &["prlimit", "--nofile=256:256", "--"],
        &metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port())),
    );
    let mut clients: Vec<TcpStream> = (0..1000)
        .map(|_| connect_within(local(port), SECS(5)))
        .collect();
    for c in &mut clients {
        c.write_all(b"queued").unwrap();
    }
    let pid = m.pid();
    let before = crate::util::cpu_seconds(pid);
    std::thread::sleep(SECS(2));
    let used = crate::util::cpu_seconds(pid) - before;
    let start = Instant::now();
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut back = [0u8; 6];
        c.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(&back, b"queued");
    }
    eprintln!(
        "1000 clients at 256 fds: moirai CPU {:.0}% while full; all served in turn within {:?}",
        used / 2.0 * 100.0,
        start.elapsed()
    );
    assert!(
        used < 0.5,
        "moirai used {used:.2} s of CPU in 2 s while full"
    );
    assert!(m.is_running(), "moirai died");
}

#[test]
fn a_world_writable_state_directory_is_refused_and_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::util::temp_dir("state-1777");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let md = dir.join("metadata.json");
    std::fs::write(&md, crate::util::metadata_exact("tcp://1:127.0.0.1:1")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["run", "--metadata-file"])
        .arg(&md)
        .arg("--state-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("writable by anybody"), "{err}");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777);
}

/// A port someone else holds: said once (not every 2 s by every worker),
/// shown by `moirai status` and the metrics, and served as soon as it is
/// free.
#[test]
fn a_port_in_use_is_not_listening_once_and_recovers() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("up"));
    let (port, mp) = (free_port(), free_port());
    let blocker = TcpListener::bind(("::", port)).unwrap();
    let mut md: serde_json::Value = serde_json::from_str(&metadata(&format!(
        "http://{port}:127.0.0.1:{}",
        web.port()
    )))
    .unwrap();
    md["cloud.tritoncompute:metrics_acl"] = "127.0.0.0/8".into();
    md["cloud.tritoncompute:metrics_port"] = mp.to_string().into();
    let m = Moirai::start(&md.to_string(), "", &[]);
    m.wait_log("NOT LISTENING", Duration::from_secs(5));
    // Several retries by both workers later, still one line.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        m.log_text().matches("NOT LISTENING").count(),
        1,
        "{}",
        m.log_text()
    );
    let status = m.status(false);
    assert!(
        status.contains(&format!("NOT LISTENING: port {port}")),
        "{status}"
    );
    let metrics = Client::connect(local(mp))
        .exchange(&get("/metrics"))
        .unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("moirai_service_listening{")
                && l.contains(&format!("service=\"{port}\""))
                && l.ends_with(" 0")),
        "{text}"
    );
    drop(blocker);
    m.wait_log(
        &format!("listening on port {port} again"),
        Duration::from_secs(5),
    );
    let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
    assert_eq!(r.status, 200);
    assert!(!m.status(false).contains("NOT LISTENING"));
}
