//! ACME against pebble (Let's Encrypt's test server, Debian package
//! `pebble`): moirai answers TLS-ALPN-01 in the handshake on 443 (chosen
//! by itself, as for the guide's https-only example), HTTP-01 on its `http`
//! listener and dns-01 through metadata, falls back to dns-01 when a
//! validation fails, serves the issued certificate without a restart (to
//! clients with and without SNI), renews it, and swaps it under load
//! without a failed handshake or a dropped connection.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dns::{host, Dns, ZONE};
use crate::util::http::{ok, HttpBackend};
use crate::util::tls::{client_config, connect, get, leaf_for, Record};
use crate::util::{free_port, local, metadata, temp_dir, Moirai, SECS};

struct Pebble {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Pebble {
    /// pebble on 127.0.0.1, validating HTTP-01 on `http_port` of the
    /// addresses `dns` gives.
    fn start(http_port: u16, dns: &Dns) -> Pebble {
        Pebble::start_with(http_port, free_port(), dns)
    }

    /// The same, validating TLS-ALPN-01 on `tls_port`.
    fn start_with(http_port: u16, tls_port: u16, dns: &Dns) -> Pebble {
        let dir = temp_dir("pebble");
        // pebble's own HTTPS certificate, from a CA moirai is told to trust.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        let (port, mgmt) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &dns.nameserver()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("pebble.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("pebble.err")).unwrap(),
            ))
            .spawn()
            .expect("pebble must be installed (apt-get install -y pebble; .ci/run does)");
        let start = Instant::now();
        while TcpStream::connect(local(port)).is_err() {
            assert!(start.elapsed() < SECS(10), "pebble did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pebble { child, dir, port }
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// moirai on `metadata_json`, ordering from this pebble (its CA
    /// trusted), with `extra` flags.
    fn moirai(&self, metadata_json: &str, extra: &[&str]) -> Moirai {
        let ca = self.dir.join("ca.pem");
        let mut args = vec![
            "--acme-directory".to_owned(),
            self.directory(),
            "--acme-ca-file".to_owned(),
            ca.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Moirai::start(metadata_json, "", &args)
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays CNS: waits for moirai to write the dns-01 answers through the
/// metadata protocol, then publishes each space-separated value as a TXT
/// record under `_acme-challenge.` of every name, as CNS does.
fn publish_dns_01(md: &crate::mdata::Fake, dns: &mut Dns, names: &[&str], m: &Moirai) {
    let start = Instant::now();
    let value = loop {
        if let Some(v) = md.data.lock().unwrap().get("triton.cns.acme-challenge") {
            break v.clone();
        }
        assert!(
            start.elapsed() < SECS(40),
            "no dns-01 answer was written:\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut records = vec![host("lb", "127.0.0.1"), host("www.lb", "127.0.0.1")];
    for name in names {
        for v in value.split(' ') {
            records.push(format!("--txt-record=_acme-challenge.{name},{v}"));
        }
    }
    dns.restart(&records);
}

/// The guide's TLS example, https only on 443 with no `--acme-challenge`:
/// moirai chooses TLS-ALPN-01 by itself and serves the certificate with and
/// without SNI. Then, with the CA's TLS validation reaching somewhere else
/// (the other balancer of a pair), the next attempt uses dns-01. Both in
/// one test: port 443 is one port.
#[test]
fn https_only_on_443_gets_its_certificate_by_itself() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n")),
        "binding port 443 needs root; CI runs the suite as root"
    );
    let name = format!("lb.{ZONE}");
    let mut dns = Dns::start(&[host("lb", "127.0.0.1")]);
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let mut md: serde_json::Value = serde_json::from_str(&metadata(&format!(
        "https-http://443:127.0.0.1:{}",
        web.port()
    )))
    .unwrap();
    md["cloud.tritoncompute:certificate_name"] = format!("{name}, www.{name}").into();
    {
        dns.restart(&[host("lb", "127.0.0.1"), host("www.lb", "127.0.0.1")]);
        let pebble = Pebble::start_with(free_port(), 443, &dns);
        let m = pebble.moirai(&md.to_string(), &[]);
        m.wait_log("tls: serving the ACME certificate for", SECS(40));
        assert!(m.log_text().contains("by tls-alpn-01"), "{}", m.log_text());
        let with_sni = leaf_for(443, &name);
        assert!(
            issuer_cn(&with_sni).contains("Pebble"),
            "issuer {}",
            issuer_cn(&with_sni)
        );
        assert_eq!(leaf_for(443, &format!("www.{name}")), with_sni);
        // No SNI at all, and a name nobody asked for: the same certificate.
        assert_eq!(leaf_for(443, "127.0.0.1"), with_sni);
        assert_eq!(leaf_for(443, "other.test"), with_sni);
    }
    // The CA validates TLS-ALPN-01 somewhere else (nothing listens there):
    // the next attempt uses dns-01 through metadata.
    let fake = crate::mdata::Fake::start();
    for (k, v) in md.as_object().unwrap() {
        fake.set(k, v.as_str().unwrap());
    }
    let pebble = Pebble::start_with(free_port(), free_port(), &dns);
    let m = pebble.moirai(
        "{}",
        &[
            "--mdata-socket",
            fake.path.to_str().unwrap(),
            "--acme-dns-propagation",
            "2s",
        ],
    );
    m.wait_log("the next attempt uses dns-01", SECS(40));
    publish_dns_01(&fake, &mut dns, &[&name, &format!("www.{name}")], &m);
    m.wait_log("tls: serving the ACME certificate for", SECS(60));
    let log = m.log_text();
    assert!(
        log.contains("tls-alpn-01 validation failed"),
        "the CA's reason is logged:\n{log}"
    );
    assert!(issuer_cn(&leaf_for(443, "127.0.0.1")).contains("Pebble"));
}

fn issuer_cn(der: &[u8]) -> String {
    // Good enough for a test: the issuer's CN is the first printable
    // string after the first "CN" OID (2.5.4.3).
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    let i = der.windows(5).position(|w| w == oid).unwrap();
    let len = der[i + 6] as usize;
    String::from_utf8_lossy(&der[i + 7..i + 7 + len]).into_owned()
}

#[test]
fn a_certificate_is_issued_served_renewed_and_swapped_under_load() {
    let name = format!("lb.{ZONE}");
    let dns = Dns::start(&[host("lb", "127.0.0.1")]);
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let (hp, tp) = (free_port(), free_port());
    let pebble = Pebble::start(hp, &dns);
    let mut md: serde_json::Value = serde_json::from_str(&metadata(&format!(
        "http://{hp}:127.0.0.1:{w} https-http://{tp}:127.0.0.1:{w}",
        w = web.port()
    )))
    .unwrap();
    md["cloud.tritoncompute:certificate_name"] = name.clone().into();
    let m = pebble.moirai(
        &md.to_string(),
        &[
            // Not port 80: auto would choose dns-01.
            "--acme-challenge",
            "http-01",
            // Renew as soon as allowed, to see a renewal within the test.
            "--acme-renew-before",
            "87600h",
        ],
    );
    let issued = "tls: serving the ACME certificate for";
    m.wait_log(issued, SECS(30));
    let record = Arc::new(Record(
        Default::default(),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    ));
    let config = client_config(Arc::clone(&record));
    let mut first = connect(&config, tp, &name).unwrap();
    assert!(get(&mut first), "https through the issued certificate");
    let leaf1 = record.0.lock().unwrap().last().cloned().unwrap();
    assert!(
        issuer_cn(&leaf1).contains("Pebble"),
        "issuer {}",
        issuer_cn(&leaf1)
    );
    // With another name too: the issued certificate is the default.
    let other = connect(&config, tp, "other.test").map(|mut s| get(&mut s));
    assert_eq!(other, Some(true));
    let leaf_other = record.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(leaf_other, leaf1);

    // Load across the renewal: new handshakes all the time, and open
    // keep-alive connections that must survive the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let loaders: Vec<_> = (0..3)
        .map(|i| {
            let (stop, failures, done, config, name) = (
                stop.clone(),
                failures.clone(),
                done.clone(),
                config.clone(),
                name.clone(),
            );
            std::thread::spawn(move || {
                let mut kept = connect(&config, tp, &name);
                while !stop.load(Ordering::SeqCst) {
                    let ok = if i == 0 {
                        kept.as_mut().is_some_and(get)
                    } else {
                        connect(&config, tp, &name).is_some_and(|mut s| get(&mut s))
                    };
                    if ok {
                        done.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    m.wait_log_count(issued, 2, SECS(40));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for l in loaders {
        l.join().unwrap();
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during the swap"
    );
    assert!(done.load(Ordering::SeqCst) > 20);
    // The first connection, opened before the renewal, still works.
    assert!(get(&mut first));
    // New handshakes get the renewed certificate.
    let _ = connect(&config, tp, &name).map(|mut s| get(&mut s));
    let leaf2 = record.0.lock().unwrap().last().cloned().unwrap();
    assert_ne!(leaf1, leaf2, "the renewal is served");
    assert!(m.log_text().contains("just issued"));
}

/// An https-http service in front of a backend, whose certificate for
/// `names` (the key's value) pebble issues by dns-01 through metadata,
/// the answers published under `_acme-challenge.{under}` as CNS would;
/// `extra`: more `moirai run` arguments. Returns once it is served.
fn issued_by_dns_01(names: &str, under: &str, extra: &[&str]) -> Issued {
    let mut dns = Dns::start(&[host("lb", "127.0.0.1")]);
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let tp = free_port();
    // No http service: dns-01 needs none.
    let pebble = Pebble::start(free_port(), &dns);
    let md = crate::mdata::Fake::start();
    md.set("cloud.tritoncompute:loadbalancer", "true");
    md.set(
        "cloud.tritoncompute:portmap",
        &format!("https-http://{tp}:127.0.0.1:{}", web.port()),
    );
    md.set("cloud.tritoncompute:certificate_name", names);
    let mut args = vec![
        "--mdata-socket",
        md.path.to_str().unwrap(),
        "--acme-dns-propagation",
        "3s",
    ];
    args.extend_from_slice(extra);
    let m = pebble.moirai("{}", &args);
    publish_dns_01(&md, &mut dns, &[under], &m);
    m.wait_log("tls: serving the ACME certificate for", SECS(40));
    Issued {
        m,
        tp,
        _parts: (dns, web, pebble, md),
    }
}

/// A balancer [`issued_by_dns_01`] started, and what it needs alive.
struct Issued {
    m: Moirai,
    tp: u16,
    _parts: (Dns, HttpBackend, Pebble, crate::mdata::Fake),
}

#[test]
fn dns_01_answers_through_metadata_for_cns_to_publish() {
    let name = format!("lb.{ZONE}");
    let i = issued_by_dns_01(&name, &name, &["--acme-challenge", "dns-01"]);
    let leaf = leaf_for(i.tp, &name);
    assert!(
        issuer_cn(&leaf).contains("Pebble"),
        "issuer {}",
        issuer_cn(&leaf)
    );
}

/// A wildcard `certificate_name`: a CA validates it by dns-01 only, so
/// even with TLS on 443 (where a plain name takes tls-alpn-01) `moirai
/// check` and the order go straight to dns-01 (once the order asked for
/// tls-alpn-01 and retried forever). Issued by pebble, which offers only
/// dns-01 for a wildcard, and served for a name under it.
#[test]
fn a_wildcard_name_is_ordered_by_dns_01() {
    let name = format!("lb.{ZONE}");
    let wild = format!("*.{name}");
    // What check predicts for the guide's https on 443.
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "https-http://443:127.0.0.1:8080",
        "cloud.tritoncompute:certificate_name": format!("{name}, {wild}"),
    });
    let dir = crate::util::temp_dir("wild-check");
    std::fs::write(dir.join("md.json"), md.to_string()).unwrap();
    let fake = crate::mdata::Fake::start();
    for (k, v) in md.as_object().unwrap() {
        fake.set(k, v.as_str().unwrap());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["check", "--mdata-socket", fake.path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dns-01"), "{text}");
    assert!(!text.contains("tls-alpn-01"), "{text}");

    // Both names' answers live under _acme-challenge.lb.ZONE.
    let i = issued_by_dns_01(&format!("{name},{wild}"), &name, &[]);
    assert!(i.m.log_text().contains("by dns-01"), "{}", i.m.log_text());
    let leaf = leaf_for(i.tp, &format!("www.{name}"));
    assert!(
        issuer_cn(&leaf).contains("Pebble"),
        "issuer {}",
        issuer_cn(&leaf)
    );
}
