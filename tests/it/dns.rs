//! Backend discovery against a real DNS server (dnsmasq, serving a
//! CNS-shaped zone with TTL 1), changed while traffic flows.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::backend::{Backend, Behaviour};
use crate::util::http::{get, ok, Client, HttpBackend};
use crate::util::{connect_within, free_port, local, metadata, reach_tag, roundtrip, Moirai, SECS};

pub(crate) const ZONE: &str = "u1.dc1.cns.test";

/// dnsmasq on a loopback port, answering `cns.test` from its arguments.
pub(crate) struct Dns {
    port: u16,
    child: Option<Child>,
}

impl Dns {
    pub(crate) fn start(records: &[String]) -> Dns {
        let port = free_port();
        let mut d = Dns { port, child: None };
        d.restart(records);
        d
    }

    /// Replaces the records (dnsmasq reads them at start).
    pub(crate) fn restart(&mut self, records: &[String]) {
        self.stop();
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("dnsmasq is needed as a real DNS server: apt-get install -y dnsmasq-base (.ci/run does)");
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--user=root",
                "--pid-file=",
                "--local-ttl=1",
                "--local=/cns.test/",
            ])
            .arg(format!("--port={}", self.port))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Wait until it answers on TCP (it listens on both).
        let start = Instant::now();
        while TcpStream::connect(local(self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("dnsmasq exited at start ({status}) on port {}", self.port);
            }
            assert!(
                start.elapsed() < SECS(5),
                "dnsmasq did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn nameserver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn host(name: &str, ip: &str) -> String {
    format!("--host-record={name}.{ZONE},{ip}")
}

#[test]
fn a_mode_follows_dns_within_the_ttl() {
    let a = Backend::start("127.0.0.2:0", Behaviour::TaggedEcho(b'A'));
    let bport = a.addr.port();
    let b = Backend::start(&format!("127.0.0.3:{bport}"), Behaviour::TaggedEcho(b'B'));
    let mut dns = Dns::start(&[host("web.svc", "127.0.0.2")]);
    let port = free_port();
    let ns = dns.nameserver();
    let m = Moirai::start(
        &metadata(&format!("tcp://{port}:web.svc.{ZONE}:{bport}")),
        "",
        &["--nameserver", &ns, "--max-ttl", "2s"],
    );
    let mut old = reach_tag(port, b'A', SECS(5));
    // Instance A leaves CNS, B joins: new connections move within TTL +
    // interval; the open one to A finishes undisturbed.
    dns.restart(&[host("web.svc", "127.0.0.3")]);
    let start = Instant::now();
    let _ = reach_tag(port, b'B', SECS(5));
    assert!(start.elapsed() < SECS(4), "took {:?}", start.elapsed());
    for _ in 0..5 {
        let mut c = connect_within(local(port), SECS(2));
        let mut tag = [0u8];
        c.read_exact(&mut tag).unwrap();
        assert_eq!(tag[0], b'B', "a removed backend got a new connection");
    }
    assert_eq!(roundtrip(&mut old, b"still here").unwrap(), b"still here");
    // Both: traffic reaches both.
    dns.restart(&[host("web.svc", "127.0.0.2"), host("web.svc", "127.0.0.3")]);
    let _ = reach_tag(port, b'A', SECS(5));
    m.wait_log("dns: web.svc", SECS(1));
    drop((a, b));
}

#[test]
fn srv_mode_finds_backends_on_different_ports() {
    let a = Backend::start("127.0.0.2:0", Behaviour::TaggedEcho(b'A'));
    let b = Backend::start("127.0.0.3:0", Behaviour::TaggedEcho(b'B'));
    assert_ne!(a.addr.port(), b.addr.port());
    let dns = Dns::start(&[
        host("i1.inst", "127.0.0.2"),
        host("i2.inst", "127.0.0.3"),
        format!(
            "--srv-host=api.svc.{ZONE},i1.inst.{ZONE},{},0,10",
            a.addr.port()
        ),
        format!(
            "--srv-host=api.svc.{ZONE},i2.inst.{ZONE},{},0,10",
            b.addr.port()
        ),
    ]);
    let port = free_port();
    let _m = Moirai::start(
        &metadata(&format!("tcp://{port}:api.svc.{ZONE}")),
        "",
        &["--nameserver", &dns.nameserver()],
    );
    let _ = reach_tag(port, b'A', SECS(5));
    let _ = reach_tag(port, b'B', SECS(5));
}

/// Backend A on 127.0.0.2 as `web.svc.ZONE` in dnsmasq, moirai following
/// it with a 1 s TTL cap, and A already reached: (A, DNS, port, moirai).
pub(crate) fn one_backend_by_name() -> (Backend, Dns, u16, Moirai) {
    let a = Backend::start("127.0.0.2:0", Behaviour::TaggedEcho(b'A'));
    let dns = Dns::start(&[host("web.svc", "127.0.0.2")]);
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("tcp://{port}:web.svc.{ZONE}:{}", a.addr.port())),
        "",
        &["--nameserver", &dns.nameserver(), "--max-ttl", "1s"],
    );
    let _ = reach_tag(port, b'A', SECS(10));
    (a, dns, port, m)
}

#[test]
fn with_dns_down_traffic_goes_to_the_last_good_set() {
    let (_a, mut dns, port, m) = one_backend_by_name();
    dns.stop();
    m.wait_log("keeping the last good set", SECS(10));
    // Several TTLs later, still served.
    std::thread::sleep(SECS(2));
    let mut c = reach_tag(port, b'A', SECS(2));
    assert_eq!(roundtrip(&mut c, b"ok").unwrap(), b"ok");
}

/// `moirai upgrade` while the nameserver is down: the new program starts
/// with the old one's last good answers, not with none (503 until DNS came
/// back, found by the chaos soak).
#[test]
fn an_upgrade_with_dns_down_keeps_the_last_good_set() {
    let a = HttpBackend::start("127.0.0.2:0", |_| ok("up"));
    let mut dns = Dns::start(&[host("web.svc", "127.0.0.2")]);
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("http://{port}:web.svc.{ZONE}:{}", a.port())),
        "",
        &["--nameserver", &dns.nameserver(), "--max-ttl", "1s"],
    );
    let start = Instant::now();
    while Client::connect(local(port))
        .exchange(&get("/"))
        .map(|r| r.status)
        != Some(200)
    {
        assert!(start.elapsed() < SECS(10), "never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    dns.stop();
    m.wait_log("keeping the last good set", SECS(10));
    m.upgrade();
    m.wait_log("listening sockets inherited", SECS(10));
    // The upgraded program (not its stand-in) serves.
    m.wait_log("upgrade: serving; stand-in", SECS(10));
    // Several TTLs with DNS still down: every request served.
    let start = Instant::now();
    while start.elapsed() < SECS(2) {
        let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
        assert_eq!(r.status, 200, "{}", m.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        m.log_text()
            .contains("DNS answers carried over from the previous program"),
        "{}",
        m.log_text()
    );
    assert!(!m.dir.join("state").join("dns-carry.json").exists());
}

#[test]
fn nxdomain_empties_the_set_and_recovery_refills_it() {
    let a = HttpBackend::start("127.0.0.2:0", |_| ok("up"));
    let mut dns = Dns::start(&[host("web.svc", "127.0.0.2")]);
    let port = free_port();
    let _m = Moirai::start(
        &metadata(&format!("http://{port}:web.svc.{ZONE}:{}", a.port())),
        "",
        &["--nameserver", &dns.nameserver(), "--max-ttl", "1s"],
    );
    let until = |status: u16| {
        let start = Instant::now();
        loop {
            let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
            if r.status == status {
                return;
            }
            assert!(start.elapsed() < SECS(6), "never got {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until(200);
    // CNS removed every instance: the name is gone, the service says 503.
    dns.restart(&[host("other.svc", "127.0.0.9")]);
    until(503);
    dns.restart(&[host("web.svc", "127.0.0.2")]);
    until(200);
}

#[test]
fn metadata_changes_under_load_fail_no_request_on_unchanged_services() {
    let b = HttpBackend::start("127.0.0.1:0", |_| ok("steady"));
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let (steady, churn) = (free_port(), free_port());
    let stable = format!("http://{steady}:127.0.0.1:{}", b.port());
    let m = Moirai::start(&metadata(&stable), "", &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok_n, mut failed) = (0u32, 0u32);
                let mut c = Client::connect(local(steady));
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match c.exchange(&get("/")) {
                        Some(r) if r.status == 200 => ok_n += 1,
                        _ => {
                            failed += 1;
                            c = Client::connect(local(steady));
                        }
                    }
                    // Half the time on a fresh connection.
                    if ok_n % 2 == 0 {
                        c = Client::connect(local(steady));
                    }
                }
                (ok_n, failed)
            })
        })
        .collect();
    for i in 0..20usize {
        let portmap = if i % 2 == 0 {
            format!("{stable} tcp://{churn}:127.0.0.1:{}", echo.addr.port())
        } else {
            stable.clone()
        };
        m.set_metadata(&metadata(&portmap));
        // Health checks publish generations of their own, so wait for the
        // change itself.
        let (sign, n) = if i % 2 == 0 {
            ('+', i / 2 + 1)
        } else {
            ('-', i.div_ceil(2))
        };
        m.wait_log_count(&format!("{sign}tcp://{churn}:"), n, SECS(5));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut total, mut failed) = (0, 0);
    for l in loaders {
        let (o, f) = l.join().unwrap();
        total += o;
        failed += f;
    }
    assert!(total > 100, "only {total} requests");
    assert_eq!(failed, 0, "{failed} of {total} requests failed");
}

#[test]
fn moirai_status_shows_services_backends_dns_and_errors() {
    let a = Backend::start("127.0.0.2:0", Behaviour::TaggedEcho(b'A'));
    let dns = Dns::start(&[host("web.svc", "127.0.0.2")]);
    let (p1, p2) = (free_port(), free_port());
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": format!(
            "tcp://{p1}:web.svc.{ZONE}:{} tcp://{p2}:gone.svc.{ZONE}:80 bogus://1:x",
            a.addr.port()
        ),
    });
    let m = Moirai::start(&md.to_string(), "", &["--nameserver", &dns.nameserver()]);
    let _ = reach_tag(p1, b'A', SECS(5));
    let status = |json: bool| m.status(json);
    let v: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert!(v["generation"].as_u64().unwrap() >= 1);
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    assert_eq!(
        services[0]["backends"][0]["address"],
        format!("127.0.0.2:{}", a.addr.port())
    );
    assert!(services[1]["no_backends"].is_string());
    let text = status(false);
    assert!(
        text.contains(&format!("tcp://{p1}:web.svc.{ZONE}:{}", a.addr.port())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "dns a web.svc.{ZONE}: 127.0.0.2:{}",
            a.addr.port()
        )),
        "{text}"
    );
    assert!(
        text.contains("error: cloud.tritoncompute:portmap entry 2"),
        "{text}"
    );
    // Without a running moirai: a clear error, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["status", "--state-dir", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A name without SRV records but with addresses, written without a port:
/// `moirai status` says what to fix; a missing name says NXDOMAIN.
#[test]
fn status_says_why_a_name_gives_no_backends() {
    let dns = Dns::start(&[host("web.svc", "127.0.0.2")]);
    let (srv_port, gone_port) = (free_port(), free_port());
    let m = Moirai::start(
        &metadata(&format!(
            "tcp://{srv_port}:web.svc.{ZONE} tcp://{gone_port}:gone.svc.{ZONE}:80"
        )),
        "",
        &["--nameserver", &dns.nameserver()],
    );
    let start = Instant::now();
    loop {
        let text = m.status(false);
        if text.contains("no SRV records; A records exist (1 addresses): add a port")
            && text.contains("NXDOMAIN")
        {
            break;
        }
        assert!(start.elapsed() < SECS(10), "{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    let srv = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["listen"] == srv_port)
        .unwrap();
    assert!(
        srv["no_backends"].as_str().unwrap().contains("add a port"),
        "{srv}"
    );
    let d = v["dns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["lookup"] == "srv")
        .unwrap();
    assert!(d["answer_age_s"].as_u64().is_some(), "{d}");
    m.wait_log("dns: web.svc", SECS(1));
}
