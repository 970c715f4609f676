//! TLS services with real clients (curl, openssl s_client): the
//! self-signed fallback, protocol versions, ALPN, X-Forwarded-Proto; and
//! backend TLS against a test CA: `https` verifies chain and name,
//! `https+insecure` does not.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::http::{ok, HttpBackend};
use crate::util::{free_port, metadata, metadata_exact, temp_dir, Moirai};

/// curl against `https://127.0.0.1:port/`, trusting anything; returns
/// (exit ok, stdout).
pub(crate) fn curl(port: u16, extra: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10"])
        .args(extra)
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .expect("curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// What `openssl s_client` reports for a handshake with `args`.
fn s_client(port: u16, args: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    // Closing stdin ends the session after the handshake.
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn https_http_serves_the_self_signed_certificate_over_tls_1_2_and_1_3_only() {
    let web = HttpBackend::start("127.0.0.1:0", |req| {
        ok(format!(
            "proto={}",
            req.header("x-forwarded-proto").unwrap_or_default()
        ))
    });
    let port = free_port();
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": format!("https-http://{port}:127.0.0.1:{}", web.port()),
        "cloud.tritoncompute:certificate_name": "lb.example.test,www.example.test",
    });
    let m = Moirai::start(&md.to_string(), "", &[]);
    let (ok13, body) = curl(port, &[]);
    assert!(ok13, "curl over TLS failed");
    assert_eq!(body, "proto=https");
    let (ok12, body) = curl(port, &["--tls-max", "1.2"]);
    assert!(ok12 && body == "proto=https", "TLS 1.2: {body}");

    let v13 = s_client(
        port,
        &["-servername", "lb.example.test", "-alpn", "http/1.1"],
    );
    assert!(v13.contains("TLSv1.3"), "{v13}");
    assert!(v13.contains("ALPN protocol: http/1.1"), "{v13}");
    // The self-signed fallback: the first name is the CN, issuer = subject.
    assert!(v13.contains("subject=CN = lb.example.test"), "{v13}");
    assert!(v13.contains("issuer=CN = lb.example.test"), "{v13}");
    // Resumption: s_client -reconnect resumes five times after the first.
    let again = s_client(port, &["-reconnect", "-tls1_2"]);
    assert!(again.matches("Reused, TLSv1.2").count() >= 4, "{again}");
    let v11 = s_client(port, &["-tls1_1"]);
    assert!(
        v11.contains("Cipher is (NONE)"),
        "TLS 1.1 must be refused:\n{v11}"
    );

    // The key is private and a restart serves the same certificate.
    let state = m.dir.join("state");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state.join("selfsigned.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pem = std::fs::read(state.join("selfsigned.crt")).unwrap();
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
}

/// A test CA and a server certificate for `name` it signed, as PEM.
pub(crate) fn ca_and_cert(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("test CA for {name}"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// A TLS backend on 127.0.0.1 answering every request with `body`.
pub(crate) fn tls_backend(cert_pem: &str, key_pem: &str, body: &'static str) -> u16 {
    tls_backend_with(cert_pem, key_pem, body, false).0
}

/// As [`tls_backend`], with the count of connections that carried a
/// request. A
/// request for `/close` is answered with `Connection: close`. With
/// `key_update`, each keep-alive response is followed 150 ms later by a
/// TLS 1.3 key update: a record with no data, sent while the connection
/// is idle (as a server rolling its keys before a long idle does).
pub(crate) fn tls_backend_with(
    cert_pem: &str,
    key_pem: &str,
    body: &'static str,
    key_update: bool,
) -> (u16, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(sock) = conn else { continue };
            let (config, count) = (Arc::clone(&config), Arc::clone(&count));
            std::thread::spawn(move || {
                let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(tls) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let stream = rustls::StreamOwned::new(tls, sock);
                let mut r = BufReader::new(stream);
                let mut first = true;
                loop {
                    let mut line = String::new();
                    let mut close = false;
                    // Read one request head (no bodies in these tests).
                    loop {
                        line.clear();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => close |= line.starts_with("GET /close "),
                        }
                    }
                    // Connections that carried a request: health checks
                    // do not count.
                    if std::mem::take(&mut first) {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n{body}",
                        body.len(),
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if r.get_mut().write_all(resp.as_bytes()).is_err() || close {
                        return;
                    }
                    if key_update {
                        std::thread::sleep(Duration::from_millis(150));
                        let s = r.get_mut();
                        if s.conn.refresh_traffic_keys().is_err()
                            || s.conn.write_tls(&mut s.sock).is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// TLS backend connections are pooled like plain ones (`http-reuse
/// safe`: never for a client's first request), and a record without data
/// that arrives while one is idle (a key update, late session tickets)
/// is taken in, not mistaken for a stray response.
#[test]
fn tls_backend_connections_are_pooled_through_a_key_update() {
    let (_ca, cert, key) = ca_and_cert("api.example.com");
    let (backend, accepted) = tls_backend_with(&cert, &key, "pooled", true);
    let port = free_port();
    let portmap = format!("https+insecure://{port}:tlsbe.test:{backend}");
    // Checked by a TLS handshake on the backend itself, which carries no
    // request and so is not counted.
    let m = Moirai::start(
        &metadata_exact(&portmap),
        "127.0.0.1 tlsbe.test\n",
        &["--workers", "1"],
    );
    m.wait_log("every backend checked (1 up", Duration::from_secs(10));
    // Client A closes after one request: its backend connection is pooled.
    assert_eq!(
        curl(port, &["-H", "Connection: close"]),
        (true, "pooled".to_owned())
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // The key update reaches the pooled connection while it is idle.
    std::thread::sleep(Duration::from_millis(500));
    // Client B: its first request gets a connection of its own, which the
    // backend closes; its second takes A's from the pool.
    let close = format!("https://127.0.0.1:{port}/close");
    assert_eq!(curl(port, &[&close]), (true, "pooledpooled".to_owned()));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the pooled TLS connection served B's second request"
    );
    drop(m);
}

/// Moirai's rule (`ssl verify required`, no `verifyhost`): the chain is
/// verified, the name is not, in health checks too; `verify_host:NAME`
/// adds the name; `https+insecure` verifies nothing.
#[test]
fn https_verifies_the_chain_not_the_name_unless_asked() {
    // A CA-signed certificate for the backend's public name, reached by
    // another name (a CNS name, as in Triton).
    let (ca, cert, key) = ca_and_cert("api.example.com");
    let good = tls_backend(&cert, &key, "verified");
    // Signed by a CA moirai does not trust.
    let (_other_ca, ocert, okey) = ca_and_cert("api.example.com");
    let stranger = tls_backend(&ocert, &okey, "stranger");
    let dir = temp_dir("tls-ca");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();

    let (p_cns, p_host_ok, p_host_bad, p_ca, p_ins_ca) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let portmap = format!(
        "https://{p_cns}:tlsbe.test:{good}{{check:/healthz}} \
         https://{p_host_ok}:tlsbe.test:{good}{{check:/healthz,verify_host:api.example.com}} \
         https://{p_host_bad}:tlsbe.test:{good}{{check:/healthz,verify_host:other.example.com}} \
         https://{p_ca}:api.example.com:{stranger}{{check:/healthz}} \
         https+insecure://{p_ins_ca}:api.example.com:{stranger}{{check:/healthz}}"
    );
    let m = Moirai::start(
        &metadata(&portmap),
        "127.0.0.1 tlsbe.test\n127.0.0.1 api.example.com\n",
        &["--ca-file", ca_file.to_str().unwrap()],
    );
    // The name differs, the chain is good: served, as HAProxy does.
    assert_eq!(curl(p_cns, &[]), (true, "verified".to_owned()));
    assert_eq!(curl(p_host_ok, &[]), (true, "verified".to_owned()));
    // Verification failures are failed backends: 503, never a downgrade.
    for p in [p_host_bad, p_ca] {
        let (_, body) = curl(p, &["-o", "/dev/null", "-w", "%{http_code}"]);
        assert_eq!(body, "503", "port {p}");
    }
    assert_eq!(curl(p_ins_ca, &[]), (true, "stranger".to_owned()));
    m.wait_log(
        "tls: https backends reached as tlsbe.test present a certificate for api.example.com",
        Duration::from_secs(5),
    );
    let log = m.log_text();
    assert!(
        log.contains(&format!(
            "service :{p_host_bad} backend 127.0.0.1:{good} stays down: TLS failed"
        )) && log.contains("not valid for name \"other.example.com\""),
        "the wrong name is logged:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "service :{p_ca} backend 127.0.0.1:{stranger} stays down: TLS failed"
        )) && log.contains("invalid peer certificate"),
        "the unknown CA is logged:\n{log}"
    );
    // moirai status says which service's backends present another name.
    let status = m.status(false);
    assert!(
        status.contains("tls: backend certificates are for api.example.com, not tlsbe.test"),
        "{status}"
    );
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    let cns = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["listen"] == p_cns)
        .unwrap();
    assert_eq!(
        cns["tls_name_mismatch"]["certificate_names"],
        serde_json::json!(["api.example.com"])
    );
    let strict = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["listen"] == p_host_ok)
        .unwrap();
    assert_eq!(strict["tls_name_mismatch"], serde_json::Value::Null);
    assert_eq!(strict["verify_host"], "api.example.com");
}

#[test]
fn a_failed_acme_order_keeps_serving_and_says_why() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("still here"));
    let port = free_port();
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": format!("https-http://{port}:127.0.0.1:{}", web.port()),
        "cloud.tritoncompute:certificate_name": "lb.example.test",
    });
    // Nothing listens there: every order fails.
    let m = Moirai::start(
        &md.to_string(),
        "",
        &[
            "--acme-directory",
            "https://127.0.0.1:9/directory",
            "--acme-challenge",
            "tls-alpn-01",
        ],
    );
    m.wait_log(
        "still serving the previous certificate, retrying in 10 s",
        Duration::from_secs(20),
    );
    // The cause is named, down to the refused connection.
    let log = m.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("still serving the previous"))
        .unwrap();
    assert!(
        line.contains("connect: ") && line.to_ascii_lowercase().contains("refused"),
        "{line}"
    );
    assert_eq!(curl(port, &[]), (true, "still here".to_owned()));
    let served = s_client(port, &["-servername", "lb.example.test"]);
    assert!(served.contains("subject=CN = lb.example.test"), "{served}");
}
