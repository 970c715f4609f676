//! HTTP/2 to clients, with real peers: curl and nghttp over ALPN `h2` on
//! every TLS type and over prior-knowledge h2c, h2load multiplexing
//! through nginx, the conformance suite (`tests/h2/conformance.py`, all
//! of h2spec's cases) against both listeners, and `h2:off`.

use std::process::Command;
use std::time::Duration;

use crate::tls::{ca_and_cert, tls_backend_with};
use crate::util::nginx::Nginx;
use crate::util::{free_port, metadata, metadata_exact, temp_dir, Moirai};

/// curl with `args` against `url`: (exit ok, stdout).
fn curl(args: &[&str], url: &str) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A balancer with an `http` and an `https-http` service in front of
/// nginx, both checked up; its ports and the access log it writes.
fn over_nginx(params: &str) -> (Moirai, Nginx, u16, u16, std::path::PathBuf) {
    let nginx = Nginx::start();
    let (h2c, tls) = (free_port(), free_port());
    let n = nginx.port;
    let log = temp_dir("h2-access").join("access.log");
    let m = Moirai::start(
        &metadata(&format!(
            "http://{h2c}:127.0.0.1:{n}{params},https-http://{tls}:127.0.0.1:{n}{params}"
        )),
        "",
        &["--workers", "1", "--access-log", log.to_str().unwrap()],
    );
    m.wait_log("every backend checked (2 up", Duration::from_secs(10));
    (m, nginx, h2c, tls, log)
}

#[test]
fn curl_speaks_http2_over_alpn_and_prior_knowledge_with_forwarding() {
    let (_m, _nginx, h2c, tls, log) = over_nginx("");
    let fmt = ["-w", "|%{http_version}"];
    let (ok, out) = curl(
        &[&["--http2"][..], &fmt].concat(),
        &format!("https://127.0.0.1:{tls}/xff"),
    );
    assert!(ok, "{out}");
    assert_eq!(out, "127.0.0.1|https|".to_owned() + &tls.to_string() + "|2");
    let (ok, out) = curl(
        &[&["--http2-prior-knowledge"][..], &fmt].concat(),
        &format!("http://127.0.0.1:{h2c}/xff"),
    );
    assert!(ok, "{out}");
    assert_eq!(out, format!("127.0.0.1|http|{h2c}|2"));
    // The sticky cookie comes with the response, as over HTTP/1.1.
    let (ok, head) = curl(
        &["--http2", "-D", "-", "-o", "/dev/null"],
        &format!("https://127.0.0.1:{tls}/a"),
    );
    assert!(ok);
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(
        head.contains("set-cookie: CLOUD-TRITONCOMPUTE-RS="),
        "{head}"
    );
    // One access line per stream, in HTTP/2's name.
    std::thread::sleep(Duration::from_millis(300));
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(lines.contains("\"GET /xff HTTP/2.0\""), "{lines}");
    assert!(lines.contains("\"GET /a HTTP/2.0\""), "{lines}");
}

#[test]
fn curl_gets_http2_through_https_backends_too() {
    let (_ca, cert, key) = ca_and_cert("api.example.com");
    let (backend, _accepted) = tls_backend_with(&cert, &key, "over-tls", false);
    let port = free_port();
    let m = Moirai::start(
        &metadata_exact(&format!("https+insecure://{port}:127.0.0.1:{backend}")),
        "",
        &["--workers", "1"],
    );
    m.wait_log("every backend checked (1 up", Duration::from_secs(10));
    let url = format!("https://127.0.0.1:{port}/");
    for _ in 0..3 {
        let (ok, out) = curl(&["--http2", "-w", "|%{http_version}"], &url);
        assert!(ok);
        assert_eq!(out, "over-tls|2");
    }
}

#[test]
fn h2_off_offers_http11_only() {
    let (_m, _nginx, h2c, tls, _log) = over_nginx("{h2:off}");
    let (ok, out) = curl(
        &["--http2", "-w", "|%{http_version}"],
        &format!("https://127.0.0.1:{tls}/"),
    );
    assert!(ok);
    assert!(out.ends_with("|1.1"), "{out}");
    let (_, out) = curl(
        &["--http2-prior-knowledge"],
        &format!("http://127.0.0.1:{h2c}/"),
    );
    assert!(!out.contains("ok /"), "no HTTP/2 on h2c: {out}");
}

#[test]
fn h2load_multiplexes_through_nginx_on_few_backend_connections() {
    let (m, nginx, h2c, tls, _log) = over_nginx("");
    for url in [
        format!("http://127.0.0.1:{h2c}/multi"),
        format!("https://127.0.0.1:{tls}/multi"),
    ] {
        let out = Command::new("h2load")
            .args(["-n", "2000", "-c", "2", "-m", "100", &url])
            .output()
            .expect("h2load (nghttp2-client; scripts/test installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("2000 succeeded, 0 failed, 0 errored"),
            "{url}: {text}"
        );
        assert!(text.contains("status codes: 2000 2xx"), "{url}: {text}");
    }
    let seen = nginx.seen_settled(4000, Duration::from_secs(5));
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("GET /multi")).count(),
        4000
    );
    // 2 clients × 100 streams, twice: at most 16 backend connections per
    // client connection, not one per stream.
    let status: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    let opened: u64 = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["backends"].as_array().unwrap())
        .map(|b| b["sessions_total"].as_u64().unwrap())
        .sum();
    assert!(opened <= 64, "backend connections: {opened}");
}

#[test]
fn nghttp_uploads_downloads_and_continuation() {
    let (_m, nginx, h2c, tls, _log) = over_nginx("");
    let dir = temp_dir("h2-upload");
    let body: Vec<u8> = (0..400_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let file = dir.join("body.bin");
    std::fs::write(&file, &body).unwrap();
    for base in [
        format!("http://127.0.0.1:{h2c}"),
        format!("https://127.0.0.1:{tls}"),
    ] {
        // A 400 KB upload: past every initial window, so it moves only as
        // the backend takes it and we credit the client.
        let up = Command::new("nghttp")
            .args(["-n", "-d"])
            .arg(&file)
            .arg(format!("{base}/upload"))
            .output()
            .expect("nghttp (nghttp2-client; scripts/test installs it)");
        assert!(
            up.status.success(),
            "{base}: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        // A 5 MB download through the client's 16 KiB windows.
        let big = Command::new("nghttp")
            .args(["-w", "14", "-W", "14", &format!("{base}/big.bin")])
            .output()
            .expect("nghttp");
        assert!(big.status.success());
        assert!(
            big.stdout == nginx.file,
            "{base}: the 5 MB file, byte for byte"
        );
        // Header blocks in CONTINUATION frames: nghttp's are over 18 KB
        // (it logs each block as one HEADERS), past our 16 KiB list (as an
        // HTTP/1 head's limit): a 431 on each stream, and the connection
        // goes on to the next.
        let cont = Command::new("nghttp")
            .args([
                "-nv",
                "--continuation",
                &format!("{base}/cont"),
                &format!("{base}/after"),
            ])
            .output()
            .expect("nghttp");
        let text = String::from_utf8_lossy(&cont.stdout);
        assert!(text.contains("HEADERS frame <length=18"), "{text}");
        assert_eq!(text.matches(":status: 431").count(), 2, "{text}");
    }
    let seen = nginx.seen_settled(6, Duration::from_secs(5));
    assert_eq!(
        seen.iter()
            .filter(|l| l.starts_with("POST /upload"))
            .count(),
        2,
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l.contains("/cont")), "{seen:?}");
}

#[test]
fn the_conformance_suite_passes_every_case_on_both_listeners() {
    let (_m, _nginx, h2c, tls, _log) = over_nginx("");
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2/conformance.py");
    for args in [
        vec![h2c.to_string()],
        vec![tls.to_string(), "--tls".to_owned()],
    ] {
        let out = Command::new("/usr/bin/python3")
            .arg(suite)
            .arg("127.0.0.1")
            .args(&args)
            .output()
            .expect("/usr/bin/python3 with python3-h2 (scripts/test installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        let failed: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("PASS") && !l.starts_with("summary"))
            .collect();
        assert!(
            text.contains("147 cases, 147 passed"),
            "{args:?}: {failed:#?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_drain_says_goaway_and_lets_streams_in_flight_finish() {
    use crate::util::http::{ok, HttpBackend};
    let slow = HttpBackend::start("127.0.0.1:0", |req| {
        if req.path == "/slow" {
            std::thread::sleep(Duration::from_millis(1500));
        }
        ok("done")
    });
    let port = free_port();
    let mut m = Moirai::start(
        &metadata(&format!("https-http://{port}:127.0.0.1:{}", slow.port())),
        "",
        &["--workers", "1", "--grace", "20s"],
    );
    m.wait_log("every backend checked (1 up", Duration::from_secs(10));
    // nghttp with a stream in flight on one connection when the drain
    // begins: the response comes, and so does the GOAWAY.
    let client = Command::new("nghttp")
        .args(["-nv", &format!("https://127.0.0.1:{port}/slow")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("nghttp");
    std::thread::sleep(Duration::from_millis(500));
    m.signal("TERM");
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(":status: 200"), "{text}");
    assert!(text.contains("recv GOAWAY frame"), "{text}");
    assert!(
        text.contains("last_stream_id=2147483647"),
        "the first GOAWAY announces the drain: {text}"
    );
    assert_eq!(m.wait_exit(Duration::from_secs(10)), Some(0));
}
