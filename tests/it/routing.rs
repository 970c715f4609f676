//! Every HTTP request goes to a backend that is in the service and up now,
//! whatever connection it arrives on; a swap of every backend never leaves
//! a gap. Each test counts every request under load.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dns::{host, Dns, ZONE};
use crate::util::http::{get, ok, Client, HttpBackend, Reply};
use crate::util::{free_port, http_lb, local, metadata, metadata_exact, Moirai, SECS};

/// A backend answering its name, with a `/healthz` whose status can be set.
fn named(addr: &str, name: &'static str) -> (HttpBackend, Arc<AtomicU16>) {
    let health = Arc::new(AtomicU16::new(200));
    let h = Arc::clone(&health);
    let b = HttpBackend::start(addr, move |req| {
        if req.path == "/healthz" {
            let code = h.load(Ordering::SeqCst);
            Reply::Bytes(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").into_bytes())
        } else {
            ok(name)
        }
    });
    (b, health)
}

/// Which backend answers a request on `c` (200 expected).
fn who(c: &mut Client) -> String {
    let r = c.exchange(&get("/")).expect("a response");
    assert_eq!(r.status, 200, "{}", r.head);
    String::from_utf8(r.body).unwrap()
}

/// Waits until a new connection reaches `name` (a 503 while no backend
/// is known yet is tolerated).
fn until_new_connections_reach(port: u16, name: &str) {
    let start = Instant::now();
    loop {
        let r = Client::connect(local(port)).exchange(&get("/"));
        if r.is_some_and(|r| r.status == 200 && r.body == name.as_bytes()) {
            return;
        }
        assert!(start.elapsed() < SECS(10), "{name} never got a connection");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Closed-loop clients, half keep-alive and half one request per
/// connection, counting every answer by backend and every failure.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub ok: Arc<AtomicUsize>,
    pub failed: Arc<Mutex<Vec<String>>>,
    pub by_backend: Arc<Mutex<std::collections::HashMap<String, usize>>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let by_backend = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let threads = (0..clients)
            .map(|i| {
                let (stop, ok, failed, by) = (
                    Arc::clone(&stop),
                    Arc::clone(&ok),
                    Arc::clone(&failed),
                    Arc::clone(&by_backend),
                );
                std::thread::spawn(move || {
                    let keep_alive = i % 2 == 0;
                    let mut c: Option<Client> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let client = c.get_or_insert_with(|| Client::connect(local(port)));
                        let req: &[u8] = if keep_alive {
                            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                        } else {
                            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                        };
                        match client.exchange(req) {
                            Some(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                *by.lock()
                                    .unwrap()
                                    .entry(String::from_utf8_lossy(&r.body).into_owned())
                                    .or_insert(0) += 1;
                                if !keep_alive || r.header("connection").as_deref() == Some("close")
                                {
                                    c = None;
                                }
                            }
                            Some(r) => {
                                failed.lock().unwrap().push(r.head);
                                c = None;
                            }
                            None => {
                                failed.lock().unwrap().push("no response".into());
                                c = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            ok,
            failed,
            by_backend,
        }
    }

    /// Stops the clients; returns (answered, failures).
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

fn no_failures(answered: usize, failed: &[String]) {
    assert!(
        failed.is_empty(),
        "{} of {answered} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
}

#[test]
fn a_keep_alive_connection_follows_a_portmap_change() {
    let (a, _) = named("127.0.0.1:0", "A");
    let (b, _) = named("127.0.0.1:0", "B");
    let (m, port) = http_lb(a.port(), &[]);
    let mut c = Client::connect(local(port));
    assert_eq!(who(&mut c), "A");
    let load = Load::start(port, 4);
    m.set_metadata(&metadata(&format!("http://{port}:127.0.0.1:{}", b.port())));
    until_new_connections_reach(port, "B");
    // The same connection's next request goes to B: A left the portmap.
    for _ in 0..10 {
        assert_eq!(who(&mut c), "B");
    }
    std::thread::sleep(Duration::from_millis(300));
    let requests_to_a = a.requests.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    // No connection to A is kept either: parked ones closed at their next
    // request, idle pooled ones when the snapshot changed (the pool would
    // otherwise keep them 4 s).
    assert_eq!(a.open(), 0, "connections to A still open");
    let (answered, failed) = load.finish();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(answered > 0);
    assert_eq!(
        a.requests.load(Ordering::SeqCst),
        requests_to_a,
        "A still got requests"
    );
}

#[test]
fn a_backend_marked_down_gets_no_further_request_on_any_connection() {
    let (a, a_health) = named("127.0.0.2:0", "A");
    let bport = a.port();
    let (_b, _) = named(&format!("127.0.0.3:{bport}"), "B");
    let port = free_port();
    let m = Moirai::start(
        &metadata_exact(&format!(
            "http://{port}:web.test:{bport}{{check:/healthz,rise:1,fall:1}}"
        )),
        "127.0.0.2 web.test\n127.0.0.3 web.test\n",
        &[],
    );
    // Four keep-alive clients, spread over A and B.
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(local(port))).collect();
    let first: Vec<String> = clients.iter_mut().map(who).collect();
    assert!(first.iter().any(|n| n == "A"), "{first:?}");
    let load = Load::start(port, 4);
    a_health.store(503, Ordering::SeqCst);
    m.wait_log(&format!("backend 127.0.0.2:{bport} is down"), SECS(5));
    m.wait_log(
        &format!("backends [127.0.0.2:{bport}, 127.0.0.3:{bport}] -> [127.0.0.3:{bport}]"),
        SECS(5),
    );
    std::thread::sleep(Duration::from_millis(100));
    let before = a.requests.load(Ordering::SeqCst);
    for c in &mut clients {
        for _ in 0..5 {
            assert_eq!(who(c), "B");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let (_, failed) = load.finish();
    // Health checks do not count: only requests to "/" do.
    let after = a.requests.load(Ordering::SeqCst);
    assert!(
        after - before <= 2,
        "A served {} requests while down",
        after - before
    );
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn a_keep_alive_connection_follows_a_dns_change() {
    let (a, _) = named("127.0.0.2:0", "A");
    let bport = a.port();
    let (b, _) = named(&format!("127.0.0.3:{bport}"), "B");
    let mut dns = Dns::start(&[host("web.svc", "127.0.0.2")]);
    let port = free_port();
    let ns = dns.nameserver();
    let _m = Moirai::start(
        &metadata(&format!("http://{port}:web.svc.{ZONE}:{bport}")),
        "",
        &["--nameserver", &ns, "--max-ttl", "1s"],
    );
    until_new_connections_reach(port, "A");
    let mut c = Client::connect(local(port));
    assert_eq!(who(&mut c), "A");
    let load = Load::start(port, 4);
    dns.restart(&[host("web.svc", "127.0.0.3")]);
    until_new_connections_reach(port, "B");
    for _ in 0..10 {
        assert_eq!(who(&mut c), "B");
    }
    let (_, failed) = load.finish();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(b.requests.load(Ordering::SeqCst) > 0);
}

#[test]
fn a_full_swap_under_load_answers_no_error() {
    let (a, _) = named("127.0.0.1:0", "A");
    let (b, _) = named("127.0.0.1:0", "B");
    let (m, port) = http_lb(a.port(), &[]);
    let load = Load::start(port, 6);
    std::thread::sleep(Duration::from_millis(300));
    // Blue/green: every backend replaced at once. B starts down until its
    // checks pass; A stays in rotation until then.
    m.set_metadata(&metadata(&format!("http://{port}:127.0.0.1:{}", b.port())));
    until_new_connections_reach(port, "B");
    std::thread::sleep(Duration::from_millis(500));
    let a_after = a.requests.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    let (answered, failed) = load.finish();
    no_failures(answered, &failed);
    assert_eq!(
        a.requests.load(Ordering::SeqCst),
        a_after,
        "A got requests after B was up"
    );
}

#[test]
fn a_hundred_swaps_under_load_fail_no_request() {
    let (a, _) = named("127.0.0.1:0", "A");
    let (b, _) = named("127.0.0.1:0", "B");
    let (m, port) = http_lb(a.port(), &[]);
    let load = Load::start(port, 6);
    for round in 0..100 {
        let to = if round % 2 == 0 { b.port() } else { a.port() };
        m.set_metadata(&metadata(&format!("http://{port}:127.0.0.1:{to}")));
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(500));
    let seen = load.by_backend.lock().unwrap().clone();
    let (answered, failed) = load.finish();
    no_failures(answered, &failed);
    assert!(
        seen.get("A").is_some_and(|&n| n > 0) && seen.get("B").is_some_and(|&n| n > 0),
        "{seen:?}"
    );
    // The swaps really were applied, not coalesced into a few: each is
    // 250 ms apart and the metadata file is looked at every 200 ms.
    m.wait_log_count("applied by", 80, SECS(5));
}

#[test]
fn tcp_connections_keep_a_removed_backend_and_status_counts_them() {
    use crate::util::backend::{Backend, Behaviour};
    use crate::util::{reach_tag, roundtrip};
    let a = Backend::start("127.0.0.1:0", Behaviour::TaggedEcho(b'A'));
    let b = Backend::start("127.0.0.1:0", Behaviour::TaggedEcho(b'B'));
    let port = free_port();
    let m = Moirai::start(&metadata(&format!("tcp://{port}:{}", a.addr)), "", &[]);
    let mut held: Vec<_> = (0..3).map(|_| reach_tag(port, b'A', SECS(5))).collect();
    m.set_metadata(&metadata(&format!("tcp://{port}:{}", b.addr)));
    let _ = reach_tag(port, b'B', SECS(5));
    // The open connections stay on A (no request boundary to move at).
    for c in &mut held {
        assert_eq!(roundtrip(c, b"still A").unwrap(), b"still A");
    }
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    let removed = &v["services"][0]["removed"];
    assert_eq!(removed[0]["address"], a.addr.to_string(), "{v:#}");
    assert_eq!(removed[0]["active"], 3, "{v:#}");
    let text = m.status(false);
    assert!(
        text.contains("removed, still holding 3 connections"),
        "{text}"
    );
    drop(held);
    let start = Instant::now();
    loop {
        let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
        if v["services"][0]["removed"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            break;
        }
        assert!(start.elapsed() < SECS(5), "{v:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
