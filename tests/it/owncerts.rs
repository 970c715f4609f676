//! The operator's own certificates (`STATE_DIR/certs/NAME.pem`, the key in
//! it or in `NAME.key`): served by SNI with a rustls client checking the
//! leaf, wildcards included, other names keeping the fallback; swapped live
//! under an open keep-alive connection; bad files refused with the file and
//! the reason while the previous version serves on; status and metrics
//! showing source, names and expiry (warned two weeks ahead) and never a
//! key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::util::http::{ok, HttpBackend};
use crate::util::tls::{connect_recording as connect, get, leaf_for};
use crate::util::{free_port, local, Moirai, SECS};

/// A rustls client that accepts any certificate and records the leaf.
/// A certificate for `names` issued by a CA named `ca`, expiring `days`
/// from now: (certificate PEM, key PEM, leaf DER).
fn issue(names: &[&str], ca: &str, days: u64) -> (String, String, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    p.not_before = rcgen::date_time_ymd(1970, 1, 1) + (now - SECS(86_400));
    p.not_after = rcgen::date_time_ymd(1970, 1, 1) + (now + SECS(days * 86_400));
    let cert = p.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// Writes `text` to `path` with `mode` as an operator's `install` would:
/// a temporary file renamed over it.
fn put(path: &Path, text: &str, mode: u32) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// moirai with one `https-http` service (no certificate name: the
/// self-signed fallback) and the metrics endpoint; returns it, the TLS
/// port, the metrics port and its `certs` directory.
fn start() -> (Moirai, HttpBackend, u16, u16, PathBuf) {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let (port, mport) = (free_port(), free_port());
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap":
            format!("https-http://{port}:127.0.0.1:{}{{port:{}}}", web.port(), crate::util::check_responder()),
        "cloud.tritoncompute:metrics_acl": "127.0.0.1",
        "cloud.tritoncompute:metrics_port": mport.to_string(),
    });
    let m = Moirai::start(&md.to_string(), "", &[]);
    let certs = m.dir.join("state").join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o700)).unwrap();
    (m, web, port, mport, certs)
}

fn self_signed_leaf(m: &Moirai) -> Vec<u8> {
    let pem = std::fs::read(m.dir.join("state").join("selfsigned.crt")).unwrap();
    CertificateDer::from_pem_slice(&pem).unwrap().to_vec()
}

/// Waits until new handshakes for `sni` get `leaf`.
fn wait_leaf(m: &Moirai, port: u16, sni: &str, leaf: &[u8]) {
    let start = Instant::now();
    while leaf_for(port, sni) != leaf {
        assert!(
            start.elapsed() < SECS(10),
            "{sni} never got the expected certificate; log:\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(m: &Moirai) -> serde_json::Value {
    serde_json::from_str(&m.status(true)).expect("status JSON")
}

/// The lines of a PEM key's base64 body: none may appear anywhere.
fn key_lines(key_pem: &str) -> Vec<&str> {
    key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect()
}

fn assert_no_key(text: &str, keys: &[&str]) {
    assert!(!text.contains("PRIVATE KEY"), "key text shown:\n{text}");
    for k in keys {
        for line in key_lines(k) {
            assert!(!text.contains(line), "key bytes shown:\n{text}");
        }
    }
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(SECS(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw
}

#[test]
fn provided_certificates_are_served_by_sni_and_shown_without_their_keys() {
    let (m, _web, port, mport, certs) = start();
    let fallback = self_signed_leaf(&m);
    // HAProxy's combined PEM, and a chain with its key beside it.
    let (a_cert, a_key, a_leaf) = issue(&["a.test"], "Own CA A", 90);
    let (b_cert, b_key, b_leaf) = issue(&["*.b.test"], "Own CA B", 5);
    put(&certs.join("a.pem"), &format!("{a_cert}{a_key}"), 0o600);
    put(&certs.join("b.pem"), &b_cert, 0o644);
    put(&certs.join("b.key"), &b_key, 0o600);
    wait_leaf(&m, port, "a.test", &a_leaf);
    wait_leaf(&m, port, "x.b.test", &b_leaf);
    assert_eq!(leaf_for(port, "A.TEST"), a_leaf);
    // A wildcard is one label: not the parent, not two levels down.
    assert_eq!(leaf_for(port, "b.test"), fallback);
    assert_eq!(leaf_for(port, "y.x.b.test"), fallback);
    assert_eq!(leaf_for(port, "other.test"), fallback);
    assert_eq!(leaf_for(port, "127.0.0.1"), fallback, "no SNI");

    // Status: source, subject, names, issuer, expiry; the near one warned.
    let v = status(&m);
    let list = v["certificates"].as_array().unwrap();
    let a = list
        .iter()
        .find(|c| c["names"][0] == "a.test")
        .expect("a.test in status");
    assert_eq!(a["source"], "provided");
    assert_eq!(a["subject"], "a.test");
    assert_eq!(a["issuer"], "Own CA A");
    assert!(a["not_after"].as_str().is_some(), "{a}");
    assert!(a["file"].as_str().unwrap().ends_with("certs/a.pem"));
    assert!(a["warning"].is_null(), "{a}");
    let b = list
        .iter()
        .find(|c| c["names"][0] == "*.b.test")
        .expect("*.b.test in status");
    assert_eq!(b["source"], "provided");
    assert_eq!(b["issuer"], "Own CA B");
    assert!(
        b["warning"]
            .as_str()
            .is_some_and(|w| w.contains("in 4 days")),
        "{b}"
    );
    assert!(list.iter().any(|c| c["source"] == "self-signed"));
    assert_eq!(v["certificate_errors"], serde_json::json!([]));
    m.wait_log("the provided certificate for *.b.test", SECS(5));
    let log = m.log_text();
    assert!(log.contains("expires on"), "{log}");

    // The metric: expiry per name, and the two-week flag.
    let metrics = scrape(mport);
    assert!(
        metrics.contains("moirai_certificate_expiring{name=\"*.b.test\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("moirai_certificate_expiring{name=\"a.test\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("moirai_certificate_expiry_timestamp_seconds{name=\"a.test\"}"),
        "{metrics}"
    );

    // The text form says the same: source, names, issuer, the warning.
    let text = m.status(false);
    assert!(
        text.lines().any(|l| l.starts_with("certificate (provided)")
            && l.contains("for *.b.test issued by Own CA B")),
        "{text}"
    );
    assert!(
        text.contains("  warning: ") && text.contains("in 4 days"),
        "{text}"
    );
    for text in [m.status(true), m.status(false), m.log_text(), metrics] {
        assert_no_key(&text, &[&a_key, &b_key]);
    }
}

#[test]
fn a_replaced_certificate_is_served_to_new_handshakes_without_dropping_open_ones() {
    let (m, _web, port, _, certs) = start();
    let (c1, k1, leaf1) = issue(&["a.test"], "Own CA", 90);
    put(&certs.join("a.pem"), &format!("{c1}{k1}"), 0o600);
    wait_leaf(&m, port, "a.test", &leaf1);
    let (mut open, record) = connect(port, "a.test");
    assert!(get(&mut open));
    assert_eq!(record.0.lock().unwrap().last().unwrap(), &leaf1);

    // Replaced in place (the key beside it now, as some tools write it).
    let (c2, k2, leaf2) = issue(&["a.test"], "Own CA", 90);
    put(&certs.join("a.key"), &k2, 0o600);
    put(&certs.join("a.pem"), &c2, 0o644);
    let start = Instant::now();
    while leaf_for(port, "a.test") != leaf2 {
        assert!(get(&mut open), "the open connection failed during the swap");
        assert!(
            start.elapsed() < SECS(10),
            "never swapped:\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connection opened before the swap still works, on its old one.
    for _ in 0..3 {
        assert!(get(&mut open), "the open connection was dropped");
    }
    assert_eq!(record.0.lock().unwrap().len(), 1, "no new handshake on it");
    assert_no_key(&m.log_text(), &[&k1, &k2]);
}

#[test]
fn bad_files_are_refused_naming_the_file_and_the_previous_one_keeps_serving() {
    let (m, _web, port, _, certs) = start();
    let pem = certs.join("a.pem");
    let (c, k, leaf) = issue(&["a.test"], "Own CA", 90);
    put(&pem, &format!("{c}{k}"), 0o600);
    wait_leaf(&m, port, "a.test", &leaf);
    let (c2, k2, _) = issue(&["a.test"], "Own CA", 90);
    let (_, other_key, _) = issue(&["a.test"], "Own CA", 90);

    let cases: [(String, u32, &str); 3] = [
        ("this is not PEM\n".to_owned(), 0o600, "no PEM certificate"),
        (
            format!("{c2}{other_key}"),
            0o600,
            "is not the certificate's",
        ),
        (
            format!("{c2}{k2}"),
            0o640,
            "readable or writable by group or others",
        ),
    ];
    for (i, (text, mode, why)) in cases.iter().enumerate() {
        put(&pem, text, *mode);
        let needle = format!("{}: ", pem.display());
        m.wait_log_count(&needle, i + 1, SECS(10));
        let log = m.log_text();
        let line = log.lines().rfind(|l| l.contains(&needle)).unwrap();
        assert!(line.contains(why), "{why}: {line}");
        assert!(
            line.contains("still serving its previous version"),
            "{line}"
        );
        assert_eq!(
            leaf_for(port, "a.test"),
            leaf,
            "{why}: the previous one serves"
        );
        let v = status(&m);
        let errors = v["certificate_errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| {
                e.as_str()
                    .is_some_and(|e| e.contains(&pem.display().to_string()) && e.contains(why))
            }),
            "{why}: {v}"
        );
    }
    // A certs directory anybody may write to is not read at all.
    std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o777)).unwrap();
    put(&pem, &format!("{c2}{k2}"), 0o600);
    m.wait_log("writable by others", SECS(10));
    assert_eq!(leaf_for(port, "a.test"), leaf);
    // Fixed: served, and the errors are gone from status.
    std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let fixed = CertificateDer::from_pem_slice(c2.as_bytes())
        .unwrap()
        .to_vec();
    wait_leaf(&m, port, "a.test", &fixed);
    assert_eq!(status(&m)["certificate_errors"], serde_json::json!([]));
    for text in [m.status(true), m.log_text()] {
        assert_no_key(&text, &[&k, &k2, &other_key]);
    }
}
