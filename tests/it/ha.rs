//! The guide's HA pattern on loopback: two balancers with identical
//! metadata, each with its own state directory, on 127.0.0.2 and 127.0.0.3
//! (`--listen-address`), the same port. A client alternating between them
//! keeps its backend; a metadata change reaches both; killing one under
//! load loses only the connections it held.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::http::{get, ok, Client, HttpBackend, Resp};
use crate::util::{check_responder, free_port, metadata_exact, Moirai, SECS};

fn at(ip: &str, port: u16) -> std::net::SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

fn cookie_of(r: &Resp) -> Option<String> {
    r.headers("set-cookie").iter().find_map(|c| {
        c.strip_prefix("CLOUD-TRITONCOMPUTE-RS=")
            .map(|v| v.split(';').next().unwrap().to_owned())
    })
}

/// Backends A and B on 127.0.0.4 and 127.0.0.5 (one port), named
/// `web.test`, and a pair of balancers in front of them on `port`.
struct Pair {
    _a: HttpBackend,
    _b: HttpBackend,
    bport: u16,
    port: u16,
    lbs: [Moirai; 2],
}

const LB: [&str; 2] = ["127.0.0.2", "127.0.0.3"];
const HOSTS: &str = "127.0.0.4 web.test\n127.0.0.5 web.test\n";

fn portmap(port: u16, bport: u16) -> String {
    format!(
        "http://{port}:web.test:{bport}{{port:{}}}",
        check_responder()
    )
}

fn pair() -> Pair {
    let a = HttpBackend::start("127.0.0.4:0", |_| ok("A"));
    let bport = a.port();
    let b = HttpBackend::start(&format!("127.0.0.5:{bport}"), |_| ok("B"));
    let port = free_port();
    let md = metadata_exact(&portmap(port, bport));
    let lbs = LB.map(|ip| Moirai::start(&md, HOSTS, &["--listen-address", ip]));
    Pair {
        _a: a,
        _b: b,
        bport,
        port,
        lbs,
    }
}

#[test]
fn a_client_alternating_between_the_pair_keeps_its_backend() {
    let p = pair();
    // Each balancer listens on its own address only.
    let refused = std::net::TcpStream::connect_timeout(&at("127.0.0.1", p.port), SECS(1));
    assert!(refused.is_err(), "nothing listens on 127.0.0.1:{}", p.port);
    let status: serde_json::Value = serde_json::from_str(&p.lbs[0].status(true)).unwrap();
    assert_eq!(status["listen_addresses"], serde_json::json!(["127.0.0.2"]));

    for _ in 0..3 {
        // A new client: first request to one balancer, then alternate.
        let first = Client::connect(at(LB[0], p.port))
            .exchange(&get("/"))
            .unwrap();
        let cookie = cookie_of(&first).expect("a cookie");
        for i in 0..10 {
            let req = format!(
                "GET / HTTP/1.1\r\nHost: t\r\nCookie: CLOUD-TRITONCOMPUTE-RS={cookie}\r\n\r\n"
            );
            let r = Client::connect(at(LB[i % 2], p.port))
                .exchange(req.as_bytes())
                .unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body, first.body, "request {i} via {}", LB[i % 2]);
            assert_eq!(cookie_of(&r), None, "the other balancer honours the cookie");
        }
    }
}

#[test]
fn a_metadata_change_reaches_both() {
    let p = pair();
    // The operator adds a service; each balancer reads its own metadata
    // (as each instance reads its own from the metadata service).
    let extra = free_port();
    let md = metadata_exact(&format!(
        "{} tcp://{extra}:127.0.0.4:{}",
        portmap(p.port, p.bport),
        p.bport
    ));
    let start = Instant::now();
    for m in &p.lbs {
        m.set_metadata(&md);
    }
    for (m, ip) in p.lbs.iter().zip(LB) {
        m.wait_log("generation 2 applied", SECS(10));
        crate::util::connect_within(at(ip, extra), SECS(5));
    }
    assert!(start.elapsed() < SECS(10), "took {:?}", start.elapsed());
}

#[test]
fn killing_one_of_a_pair_under_load_loses_only_its_own_connections() {
    let mut p = pair();
    let stop = Arc::new(AtomicBool::new(false));
    // Which balancer clients use: both, then only the survivor (what a
    // floating IP or the DNS answer does after a failure).
    let dead = Arc::new(AtomicBool::new(false));
    let ok_survivor = Arc::new(AtomicU64::new(0));
    let failed_survivor = Arc::new(AtomicU64::new(0));
    let failed_victim = Arc::new(AtomicU64::new(0));
    let port = p.port;
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, dead, oks, fs, fv) = (
                stop.clone(),
                dead.clone(),
                ok_survivor.clone(),
                failed_survivor.clone(),
                failed_victim.clone(),
            );
            std::thread::spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let victim = i % 2 == 0 && !dead.load(Ordering::SeqCst);
                    let ip = if victim { LB[0] } else { LB[1] };
                    let r = std::net::TcpStream::connect_timeout(&at(ip, port), SECS(2))
                        .ok()
                        .and_then(|s| {
                            s.set_read_timeout(Some(SECS(5))).ok()?;
                            Client::from_stream(s).try_exchange(&get("/"))
                        });
                    match (victim, r.is_some_and(|r| r.status == 200)) {
                        (false, true) => {
                            oks.fetch_add(1, Ordering::SeqCst);
                        }
                        (false, false) => {
                            fs.fetch_add(1, Ordering::SeqCst);
                        }
                        (true, true) => {}
                        (true, false) => {
                            fv.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Clients stop starting requests at the victim (the floating IP
    // moves), then it dies without a drain: what it had in flight is lost.
    dead.store(true, Ordering::SeqCst);
    p.lbs[0].child.kill().unwrap();
    let _ = p.lbs[0].child.wait();
    let before = ok_survivor.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failed_survivor.load(Ordering::SeqCst),
        0,
        "the survivor failed nothing"
    );
    assert!(
        ok_survivor.load(Ordering::SeqCst) > before + 20,
        "the survivor kept serving"
    );
    // At most the requests each client had in flight at the victim.
    assert!(
        failed_victim.load(Ordering::SeqCst) <= 4,
        "{}",
        failed_victim.load(Ordering::SeqCst)
    );
}
