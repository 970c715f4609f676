//! Sticky cookies across balancers: the values Moirai's HAProxy issues
//! (checked against HAProxy 2.6 itself, configured as Moirai configures
//! it), the same values from two moirai instances with the same metadata,
//! and a health-check edit that re-balances nobody.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::http::{get, ok, Client, HttpBackend, Resp};
use crate::util::{
    check_responder, connect_within, free_port, local, metadata_exact, temp_dir, Moirai,
};

/// Moirai's `dynamic-cookie-key` of a portmap entry (with its
/// health-check parameters, as Moirai hashes them). moirai's unit tests pin
/// this computation to Rust's `DefaultHasher` over a copy of Moirai's own
/// `Service` struct; here HAProxy itself turns it into cookie values.
fn moirai_key(entry: &str) -> String {
    let service = moirai::config::portmap::parse_entry(entry).expect("a valid entry");
    moirai::proto::cookie::Keys::of(&service).moirai
}

/// HAProxy with one frontend per (port, dynamic-cookie-key), each in front
/// of the same servers, as Moirai's template renders them.
struct Haproxy {
    child: Child,
}

impl Haproxy {
    fn start(dir: &Path, fronts: &[(u16, String)], servers: &[SocketAddr]) -> Haproxy {
        let mut cfg = String::from(
            "global\n  log stderr local0\ndefaults\n  mode http\n  balance roundrobin\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n",
        );
        for (i, (port, key)) in fronts.iter().enumerate() {
            cfg.push_str(&format!(
                "frontend fe{i}\n  bind 127.0.0.1:{port}\n  default_backend be{i}\nbackend be{i}\n  cookie CLOUD-TRITONCOMPUTE-RS insert indirect nocache dynamic\n  dynamic-cookie-key {key}\n"
            ));
            for (n, s) in servers.iter().enumerate() {
                cfg.push_str(&format!("  server rs{} {s}\n", n + 1));
            }
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy is needed as the reference: apt-get install -y haproxy (scripts/test does)");
        for (port, _) in fronts {
            connect_within(local(*port), Duration::from_secs(5));
        }
        Haproxy { child }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cookie_of(r: &Resp) -> Option<String> {
    r.headers("set-cookie").iter().find_map(|c| {
        c.strip_prefix("CLOUD-TRITONCOMPUTE-RS=")
            .map(|v| v.split(';').next().unwrap().to_owned())
    })
}

fn with_cookie(cookie: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: CLOUD-TRITONCOMPUTE-RS={cookie}\r\n\r\n")
        .into_bytes()
}

/// The cookie each backend (by its body) gets from a balancer, asking on
/// new connections until every backend was seen.
fn cookies_by_backend(port: u16, backends: usize) -> HashMap<Vec<u8>, String> {
    let mut seen = HashMap::new();
    let start = Instant::now();
    while seen.len() < backends {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "saw only {seen:?}"
        );
        let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
        assert_eq!(r.status, 200);
        let c = cookie_of(&r).expect("a new client gets the cookie");
        if let Some(old) = seen.insert(r.body.clone(), c.clone()) {
            assert_eq!(old, c, "one value per backend");
        }
    }
    seen
}

/// Two backends on one port, 127.0.0.2 and 127.0.0.3, answering A and B.
fn pair() -> (HttpBackend, HttpBackend, u16) {
    let a = HttpBackend::start("127.0.0.2:0", |_| ok("A"));
    let p = a.port();
    let b = HttpBackend::start(&format!("127.0.0.3:{p}"), |_| ok("B"));
    (a, b, p)
}

const HOSTS: &str = "127.0.0.2 web.test\n127.0.0.3 web.test\n";

#[test]
fn cookies_are_the_values_moirais_haproxy_issues() {
    let (_a, _b, bport) = pair();
    let cr = check_responder();
    // Without health-check parameters moirai issues exactly Moirai's
    // values; with them it issues its own and honours Moirai's.
    let (plain, checked) = (free_port(), free_port());
    let plain_entry = format!("http://{plain}:web.test:{bport}");
    let checked_entry = format!("http://{checked}:web.test:{bport}{{port:{cr},rise:3}}");
    let (h_plain, h_checked) = (free_port(), free_port());
    let dir = temp_dir("haproxy-cookies");
    let servers: Vec<SocketAddr> = vec![
        format!("127.0.0.2:{bport}").parse().unwrap(),
        format!("127.0.0.3:{bport}").parse().unwrap(),
    ];
    let _h = Haproxy::start(
        &dir,
        &[
            (h_plain, moirai_key(&plain_entry)),
            (h_checked, moirai_key(&checked_entry)),
        ],
        &servers,
    );
    let _m = Moirai::start(
        &metadata_exact(&format!("{plain_entry} {checked_entry}")),
        HOSTS,
        &[],
    );
    let haproxy_plain = cookies_by_backend(h_plain, 2);
    let moirai_plain = cookies_by_backend(plain, 2);
    assert_eq!(
        moirai_plain, haproxy_plain,
        "the same value for each backend"
    );

    // Moirai's values with parameters: honoured, so a client coming from
    // Moirai keeps its backend across the migration.
    let haproxy_checked = cookies_by_backend(h_checked, 2);
    for (body, cookie) in &haproxy_checked {
        for _ in 0..4 {
            let r = Client::connect(local(checked))
                .exchange(&with_cookie(cookie))
                .unwrap();
            assert_eq!(&r.body, body, "Moirai's cookie {cookie} names {body:?}");
        }
    }
    // moirai's own values for that service do not depend on the parameters.
    assert_eq!(cookies_by_backend(checked, 2).len(), 2);
}

#[test]
fn two_balancers_with_the_same_metadata_are_interchangeable() {
    let (_a, _b, bport) = pair();
    let port = free_port();
    let md = metadata_exact(&format!(
        "http://{port}:web.test:{bport}{{port:{}}}",
        check_responder()
    ));
    // One after the other on the same port, each with its own state
    // directory (Moirai::start makes a fresh one).
    let first = Moirai::start(&md, HOSTS, &[]);
    let from_first = cookies_by_backend(port, 2);
    drop(first);
    let second = Moirai::start(&md, HOSTS, &[]);
    let from_second = cookies_by_backend(port, 2);
    assert_eq!(from_first, from_second);
    // Each honours the other's: the same backend, and no new cookie.
    for (body, cookie) in &from_first {
        let r = Client::connect(local(port))
            .exchange(&with_cookie(cookie))
            .unwrap();
        assert_eq!(&r.body, body);
        assert_eq!(cookie_of(&r), None, "the right cookie is not set again");
    }
    // A cookie that names no backend of the current set is re-balanced.
    let stranger = "0123456789abcdef";
    let r = Client::connect(local(port))
        .exchange(&with_cookie(stranger))
        .unwrap();
    assert_eq!(r.status, 200);
    let new = cookie_of(&r).expect("a re-balanced client gets a cookie");
    assert_eq!(from_first.get(&r.body), Some(&new));
    drop(second);
}

#[test]
fn a_health_check_edit_rebalances_nobody() {
    let (_a, _b, bport) = pair();
    let port = free_port();
    let cr = check_responder();
    let m = Moirai::start(
        &metadata_exact(&format!("http://{port}:web.test:{bport}{{port:{cr}}}")),
        HOSTS,
        &[],
    );
    let before = cookies_by_backend(port, 2);
    // The guide's own edit: rise:3,fall:2.
    m.set_metadata(&metadata_exact(&format!(
        "http://{port}:web.test:{bport}{{port:{cr},rise:3,fall:2}}"
    )));
    m.wait_log("generation 2 applied", Duration::from_secs(10));
    for (body, cookie) in &before {
        let r = Client::connect(local(port))
            .exchange(&with_cookie(cookie))
            .unwrap();
        assert_eq!(&r.body, body);
        assert_eq!(cookie_of(&r), None);
    }
}
