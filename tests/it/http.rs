//! `http` services end to end: header injection byte for byte, framing,
//! keep-alive and backend reuse, stickiness, errors and hostile requests.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::util::http::{get, ok, Client, HttpBackend, Reply};
use crate::util::{free_port, http_lb, local, metadata, Moirai};

/// A backend that answers with the request head it received.
fn head_echo() -> HttpBackend {
    HttpBackend::start("127.0.0.1:0", |req| {
        let mut body = req.head.clone().into_bytes();
        body.extend_from_slice(b"--body--");
        body.extend_from_slice(&req.body);
        ok(body)
    })
}

#[test]
fn forwarded_headers_are_injected_and_the_rest_is_byte_for_byte() {
    let b = head_echo();
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    let req = "POST /submit?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: https\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nContent-Length: 11\r\n\r\nhello world";
    let r = c.exchange(req.as_bytes()).unwrap();
    assert_eq!(r.status, 200);
    let body = String::from_utf8(r.body).unwrap();
    let (head, rest) = body.split_once("--body--").unwrap();
    assert_eq!(rest, "hello world");
    // Original lines in order, hop-by-hop and spoofable ones gone, ours
    // appended (a client's X-Forwarded-For is kept, as HAProxy does).
    assert_eq!(
        head,
        format!(
            "POST /submit?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nX-Forwarded-For: 10.9.9.9\r\nContent-Length: 11\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: {port}\r\nConnection: keep-alive\r\n\r\n"
        )
    );
    // The same connection serves the next request.
    let r = c.exchange(&get("/again")).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn curl_sees_the_response_and_the_sticky_cookie() {
    let b = HttpBackend::start("127.0.0.1:0", |_| ok("hi from backend"));
    let (_m, port) = http_lb(b.port(), &[]);
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("curl is needed (apt-get install -y curl)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("hi from backend"), "{text}");
    let cookie = text
        .lines()
        .find(|l| l.starts_with("Set-Cookie: CLOUD-TRITONCOMPUTE-RS="))
        .expect("sticky cookie");
    let value = cookie.split('=').nth(1).unwrap().split(';').next().unwrap();
    assert_eq!(value.len(), 16);
    assert!(!value.contains("127.0.0.1"));
    assert!(text.contains("Cache-Control: private"));
}

#[test]
fn a_first_request_never_takes_another_clients_backend_connection() {
    // `http-reuse safe`, HAProxy's default and Triton-Moirai's: a client
    // that sends one request and closes gets a backend connection of its
    // own, so nothing a backend left on a pooled connection can reach it.
    let b = HttpBackend::start("127.0.0.1:0", |_| ok("x"));
    let (_m, port) = http_lb(b.port(), &["--workers", "1"]);
    for _ in 0..20 {
        let mut c = Client::connect(local(port));
        let r = c
            .exchange(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(c.closed());
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 20);
}

#[test]
fn a_departed_keep_alive_clients_backend_connection_stays_pooled() {
    // A keep-alive client that leaves between requests leaves its backend
    // connection clean: the worker's pool keeps it for other clients'
    // later requests, as HAProxy keeps it, instead of closing it.
    let b = HttpBackend::start("127.0.0.1:0", |_| ok("x"));
    let (_m, port) = http_lb(b.port(), &["--workers", "1"]);
    let mut c = Client::connect(local(port));
    let r = c.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    drop(c);
    // Closed, it would be gone within milliseconds; the pool keeps it 4 s.
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        assert!(b.open() >= 1, "the backend connection was closed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = HttpBackend::start("127.0.0.1:0", |req| ok(req.path.clone()));
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    c.send(&[get("/one"), get("/two"), get("/three")].concat());
    for want in ["/one", "/two", "/three"] {
        assert_eq!(c.response().unwrap().body, want.as_bytes());
    }
}

/// 300 pipelined requests of about 130 bytes (38 KB, over two buffers):
/// consumed bytes make room, so every one is served as long as each head
/// fits. Once a spurious 431 after 210 of them (HAProxy served all 300).
/// Judged by nginx too: it saw each request once.
#[test]
fn three_hundred_pipelined_requests_are_all_served() {
    let nginx = crate::util::nginx::Nginx::start();
    let (_m, port) = http_lb(nginx.port, &[]);
    let mut c = Client::connect(local(port));
    let pad = "x".repeat(80);
    let all: Vec<u8> = (0..300)
        .flat_map(|i| {
            format!("GET /p/{i} HTTP/1.1\r\nHost: x\r\nUser-Agent: {pad}\r\n\r\n").into_bytes()
        })
        .collect();
    assert!(all.len() > 2 * 16 * 1024);
    c.send(&all);
    for i in 0..300 {
        let r = c.response().unwrap_or_else(|| panic!("no response {i}"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.body, format!("ok /p/{i}").as_bytes());
    }
    let seen = nginx.seen_settled(300, Duration::from_secs(10));
    assert_eq!(seen.len(), 300);
}

/// Large `103 Early Hints` before the final response: each interim head
/// fits, so the final one is forwarded (once a spurious 502 when the
/// buffer's end was reached).
#[test]
fn large_early_hints_then_the_final_response() {
    let hint = format!(
        "HTTP/1.1 103 Early Hints\r\nLink: <{}>; rel=preload\r\n\r\n",
        "/a".repeat(3000)
    );
    let mut all = hint.repeat(5).into_bytes();
    all.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
    let b = HttpBackend::start("127.0.0.1:0", move |_| Reply::Bytes(all.clone()));
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    // Twice on one connection: still in step after the first.
    for round in 0..2 {
        c.send(&get("/hints"));
        for i in 0..5 {
            let r = c.response().unwrap();
            assert_eq!(r.status, 103, "round {round}, hint {i}");
        }
        let r = c.response().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"done"[..]));
    }
}

#[test]
fn framing_head_204_304_100_and_close_delimited() {
    let b = HttpBackend::start("127.0.0.1:0", |req| match req.path.as_str() {
        "/204" => Reply::Bytes(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/304" => {
            Reply::Bytes(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n".to_vec())
        }
        "/head" => Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec()),
        "/continue" => Reply::Bytes(
            [
                &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
            ]
            .concat(),
        ),
        "/eof" => Reply::ThenClose(b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec()),
        _ => ok("plain"),
    });
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    assert_eq!(c.exchange(&get("/204")).unwrap().status, 204);
    assert_eq!(c.exchange(&get("/304")).unwrap().status, 304);
    c.send(b"HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = crate::util::http::read_response(&mut c.r, true).unwrap();
    assert_eq!(r.header("content-length").as_deref(), Some("100"));
    // Still in step: the next response is the right one.
    assert_eq!(c.exchange(&get("/x")).unwrap().body, b"plain");
    let r = c.exchange(&get("/continue")).unwrap();
    assert_eq!(r.status, 100);
    let r = c.response().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"done"[..]));
    // A close-delimited body reaches the client whole, then the close.
    let r = c.exchange(&get("/eof")).unwrap();
    assert_eq!(r.body, b"until the end");
}

#[test]
fn large_and_chunked_bodies_keep_their_checksums() {
    let b = HttpBackend::start("127.0.0.1:0", |req| {
        if req.path == "/download" {
            // 8 MiB, chunked, in uneven chunks.
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut x = 1u32;
            let mut left = 8 << 20;
            while left > 0 {
                let n = (x as usize % 70_000 + 1).min(left);
                r.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                r.extend((0..n).map(|i| (i as u32 ^ x) as u8));
                r.extend_from_slice(b"\r\n");
                left -= n;
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            }
            r.extend_from_slice(b"0\r\n\r\n");
            Reply::Bytes(r)
        } else {
            ok(format!(
                "{} {:08x}",
                req.body.len(),
                crc32fast::hash(&req.body)
            ))
        }
    });
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    // Upload 6 MiB chunked.
    let data: Vec<u8> = (0..6u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut req =
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in data.chunks(50_000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let w = c.w.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut w = w;
        w.write_all(&req).unwrap();
    });
    let r = c.response().unwrap();
    sender.join().unwrap();
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        format!("{} {:08x}", data.len(), crc32fast::hash(&data))
    );
    // Upload with Content-Length on the same connection.
    let mut req = format!(
        "PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .into_bytes();
    req.extend_from_slice(&data);
    let w = c.w.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut w = w;
        w.write_all(&req).unwrap();
    });
    let r = c.response().unwrap();
    sender.join().unwrap();
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        format!("{} {:08x}", data.len(), crc32fast::hash(&data))
    );
    // Download chunked.
    let r = c.exchange(&get("/download")).unwrap();
    assert_eq!(r.body.len(), 8 << 20);
    let mut x = 1u32;
    let mut want = Vec::with_capacity(8 << 20);
    let mut left = 8 << 20;
    while left > 0 {
        let n = (x as usize % 70_000 + 1).min(left);
        want.extend((0..n).map(|i| (i as u32 ^ x) as u8));
        left -= n;
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
    }
    assert_eq!(crc32fast::hash(&r.body), crc32fast::hash(&want));
}

#[test]
fn websocket_upgrade_becomes_a_tunnel() {
    let b = HttpBackend::start("127.0.0.1:0", |req| {
        assert_eq!(req.header("upgrade").as_deref(), Some("websocket"));
        assert_eq!(req.header("connection").as_deref(), Some("upgrade"));
        Reply::ThenEcho(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec())
    });
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    let r = c
        .exchange(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade").as_deref(), Some("websocket"));
    for msg in [&b"\x81\x05hello"[..], b"\x81\x03abc", &[0x82; 3000]] {
        c.send(msg);
        let mut back = vec![0u8; msg.len()];
        c.r.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
}

/// `tunnel` (moirai's own, HAProxy's `timeout tunnel`): an upgraded
/// connection idle past the client timeout stays open while the tunnel
/// timeout has not passed, then closes; without it, the client timeout
/// closes it. The same for a `tcp` stream.
#[test]
fn the_tunnel_timeout_replaces_client_and_server_for_tunnels() {
    use crate::util::backend::{Backend, Behaviour};
    let ws = HttpBackend::start("127.0.0.1:0", |_| {
        Reply::ThenEcho(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec())
    });
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let upgrade = b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for tunnel in [None, Some("3s")] {
        let (hp, tp) = (free_port(), free_port());
        let mut md: serde_json::Value = serde_json::from_str(&metadata(&format!(
            "http://{hp}:127.0.0.1:{} tcp://{tp}:127.0.0.1:{}",
            ws.port(),
            echo.addr.port()
        )))
        .unwrap();
        md["cloud.tritoncompute:timeouts"] = match tunnel {
            Some(t) => format!("{{client:1s,server:1s,tunnel:{t}}}"),
            None => "{client:1s,server:1s}".to_owned(),
        }
        .into();
        let _m = Moirai::start(&md.to_string(), "", &[]);
        let mut c = Client::connect(local(hp));
        assert_eq!(c.exchange(upgrade).unwrap().status, 101);
        let mut t = crate::util::connect_within(local(tp), Duration::from_secs(5));
        // Silent both ways for 1.8 s: past client and server, not tunnel.
        std::thread::sleep(Duration::from_millis(1800));
        c.send(b"\x81\x02hi");
        let mut back = [0u8; 4];
        let ws_alive = c.r.read_exact(&mut back).is_ok() && back == *b"\x81\x02hi";
        let _ = t.write_all(b"ping");
        t.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = [0u8; 4];
        let tcp_alive = t.read_exact(&mut got).is_ok() && got == *b"ping";
        assert_eq!(
            (ws_alive, tcp_alive),
            (tunnel.is_some(), tunnel.is_some()),
            "{tunnel:?}"
        );
        if tunnel.is_some() {
            // Then silent past the tunnel timeout: closed.
            std::thread::sleep(Duration::from_millis(3500));
            c.r.get_ref()
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            assert!(c.closed(), "the tunnel outlived its timeout");
            assert!(matches!(t.read(&mut got), Ok(0) | Err(_)));
        }
    }
}

/// `redirect:https[:PORT]` on an http service: curl following redirects
/// lands on the https service with the same host, path and query; a POST
/// stays a POST (308); no backend of the http service is contacted.
/// With `trust_forwarded`, a trusted proxy's request that says it came
/// over https is proxied (no loop behind a CDN) and its
/// `X-Forwarded-Proto` reaches the backend; an untrusted client's is
/// redirected, and replaced where proxied.
#[test]
fn redirects_to_https_and_trusted_forwarding() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let b = HttpBackend::start("127.0.0.1:0", move |req| {
        log.lock().unwrap().push(format!(
            "{} {} proto={}",
            req.method,
            req.path,
            req.header("x-forwarded-proto").unwrap_or_default()
        ));
        ok(format!("{} {}", req.method, req.path))
    });
    let (hp, tp, fp, up) = (free_port(), free_port(), free_port(), free_port());
    let bp = b.port();
    let md = metadata(&format!(
        "http://{hp}:127.0.0.1:{bp}{{redirect:https:{tp}}} https-http://{tp}:127.0.0.1:{bp} \
         http://{fp}:127.0.0.1:{bp}{{redirect:https,trust_forwarded:127.0.0.0/8 2001:db8::/32}} \
         http://{up}:127.0.0.1:{bp}{{trust_forwarded:10.0.0.0/8}}"
    ));
    let access = crate::util::temp_dir("redirect-log").join("access.log");
    let m = Moirai::start(&md, "", &["--access-log", access.to_str().unwrap()]);
    assert!(
        m.log_text()
            .contains("every request is redirected to https"),
        "{}",
        m.log_text()
    );
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-k",
                "-L",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code} %{num_redirects} %{url_effective}",
            ])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let got = curl(&[&format!("http://127.0.0.1:{hp}/a/b?c=1&d=2")]);
    assert_eq!(
        got,
        format!("GET /a/b?c=1&d=2\n200 1 https://127.0.0.1:{tp}/a/b?c=1&d=2")
    );
    let got = curl(&["-d", "x=1", &format!("http://127.0.0.1:{hp}/form")]);
    assert_eq!(
        got,
        format!("POST /form\n200 1 https://127.0.0.1:{tp}/form")
    );
    // The raw answers: 301 for GET, 308 for POST, no backend touched.
    let mut c = Client::connect(local(hp));
    let r = c.exchange(&get("/x")).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").unwrap(),
        format!("https://test:{tp}/x")
    );
    let backend_requests = seen.lock().unwrap().len();
    assert_eq!(backend_requests, 2, "only the two followed to https");

    // Behind a trusted proxy: https before it means proxied as is.
    let mut c = Client::connect(local(fp));
    let r = c
        .exchange(b"GET /cdn HTTP/1.1\r\nHost: site.example\r\nX-Forwarded-Proto: https\r\n\r\n")
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"GET /cdn"[..]));
    assert_eq!(seen.lock().unwrap().last().unwrap(), "GET /cdn proto=https");
    let r = c.exchange(&get("/plain")).unwrap();
    assert_eq!(r.status, 301, "no https before the proxy: redirected");
    assert_eq!(r.header("location").unwrap(), "https://test/plain");
    // Not trusted: its word is replaced by moirai's.
    let mut c = Client::connect(local(up));
    let r = c
        .exchange(b"GET /spoof HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        "GET /spoof proto=http"
    );
    // Logged as redirects: HAProxy's `LR` termination, no server.
    let start = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("\"GET /x HTTP/1.1\"")) {
            break l.to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        line.contains("/<NOSRV> ") && line.contains(" 301 ") && line.contains(" LR-- "),
        "{line}"
    );
}

/// Cookie value from a response, if it sets one.
fn cookie_of(r: &crate::util::http::Resp) -> Option<String> {
    r.headers("set-cookie").iter().find_map(|c| {
        c.strip_prefix("CLOUD-TRITONCOMPUTE-RS=")
            .map(|v| v.split(';').next().unwrap().to_owned())
    })
}

#[test]
fn sticky_sessions_hold_and_move_when_their_backend_goes() {
    let a = HttpBackend::start("127.0.0.2:0", |_| ok("A"));
    let bport = a.port();
    let b = HttpBackend::start(&format!("127.0.0.3:{bport}"), |_| ok("B"));
    let port = free_port();
    let _m = Moirai::start(
        &metadata(&format!("http://{port}:web.test:{bport}")),
        "127.0.0.2 web.test\n127.0.0.3 web.test\n",
        &[],
    );
    let first = Client::connect(local(port)).exchange(&get("/")).unwrap();
    let cookie = cookie_of(&first).expect("first response sets the cookie");
    let owner = first.body.clone();
    // With the cookie, every request (new connections, balanced otherwise)
    // goes to the same backend, and the cookie is not set again.
    for _ in 0..10 {
        let req =
            format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: CLOUD-TRITONCOMPUTE-RS={cookie}\r\n\r\n");
        let r = Client::connect(local(port))
            .exchange(req.as_bytes())
            .unwrap();
        assert_eq!(r.body, owner);
        assert_eq!(cookie_of(&r), None);
    }
    // Without it, requests are balanced over both.
    let seen: std::collections::HashSet<Vec<u8>> = (0..6)
        .map(|_| {
            Client::connect(local(port))
                .exchange(&get("/"))
                .unwrap()
                .body
        })
        .collect();
    assert_eq!(seen.len(), 2);
    // The owner goes away: the request is served elsewhere, with a new cookie.
    if owner == b"A" {
        a.kill()
    } else {
        b.kill()
    }
    // Let the killed backend's listener close: a connection it accepted in
    // its last moments would be reset, which is a 502 for that request.
    std::thread::sleep(Duration::from_millis(100));
    let req =
        format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: CLOUD-TRITONCOMPUTE-RS={cookie}\r\n\r\n");
    let r = Client::connect(local(port))
        .exchange(req.as_bytes())
        .unwrap();
    assert_eq!(r.status, 200);
    assert_ne!(r.body, owner);
    let new = cookie_of(&r).expect("a replaced cookie");
    assert_ne!(new, cookie);
}

#[test]
fn backend_failures_get_502_503_504() {
    let garbage = HttpBackend::start("127.0.0.1:0", |_| {
        Reply::Bytes(b"SMTP ready\r\n\r\n".to_vec())
    });
    let hangup = HttpBackend::start("127.0.0.1:0", |_| Reply::Hangup);
    let silent = HttpBackend::start("127.0.0.1:0", |_| Reply::Silence);
    let (p1, p2, p3, p4) = (free_port(), free_port(), free_port(), free_port());
    let dead = free_port();
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": format!(
            "http://{p1}:127.0.0.1:{} http://{p2}:127.0.0.1:{} http://{p3}:127.0.0.1:{} http://{p4}:127.0.0.1:{dead}",
            garbage.port(), hangup.port(), silent.port()
        ),
        "cloud.tritoncompute:timeouts": "{server:700ms,connect:300ms}",
    });
    let _m = Moirai::start(&md.to_string(), "", &[]);
    for (port, status) in [(p1, 502), (p2, 502), (p3, 504), (p4, 503)] {
        let mut c = Client::connect(local(port));
        let r = c.exchange(&get("/")).unwrap();
        assert_eq!(r.status, status, "port {port}");
        assert_eq!(r.header("connection").as_deref(), Some("close"));
    }
}

/// `0` means no timeout, as HAProxy reads the `timeout server 0` Moirai
/// renders (once 1 ms here: a 504 at once, and idle keep-alive
/// connections closed at once), written with the spaces Moirai trims.
#[test]
fn zero_timeouts_mean_none() {
    let slow = HttpBackend::start("127.0.0.1:0", |_| {
        std::thread::sleep(Duration::from_millis(1500));
        ok("slow")
    });
    let port = free_port();
    let mut md: serde_json::Value = serde_json::from_str(&metadata(&format!(
        "http://{port}:127.0.0.1:{}",
        slow.port()
    )))
    .unwrap();
    md["cloud.tritoncompute:timeouts"] = "{ server: 0 , client : 0s }".into();
    let m = Moirai::start(&md.to_string(), "", &[]);
    assert!(
        m.log_text().contains("server:0 means no server timeout"),
        "{}",
        m.log_text()
    );
    let mut c = Client::connect(local(port));
    let r = c.exchange(&get("/")).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"slow"[..]));
    // Idle between requests: still open a while later.
    c.r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(1200)))
        .unwrap();
    assert!(!c.closed(), "an idle connection was closed");
    c.r.get_ref().set_read_timeout(None).unwrap();
    let r = c.exchange(&get("/again")).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn a_slow_request_head_gets_408() {
    let b = HttpBackend::start("127.0.0.1:0", |_| ok("x"));
    let (_m, port) = http_lb(b.port(), &["--request-header-timeout", "700ms"]);
    let mut slow = Client::connect(local(port));
    slow.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
    let start = Instant::now();
    // Others are served meanwhile.
    assert_eq!(
        Client::connect(local(port))
            .exchange(&get("/"))
            .unwrap()
            .status,
        200
    );
    let r = slow.response().unwrap();
    assert_eq!(r.status, 408);
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert_eq!(b.requests.load(Ordering::SeqCst), 1);
}

/// Requests that must be refused, with the status each must get.
const HOSTILE: &[(&str, u16)] = &[
    ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: t\r\n\tX: y\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n", 501),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400),
    ("GET / HTTP/1.1\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("GET / HTTP/9.9\r\nHost: t\r\n\r\n", 400),
    ("GET /\r\n\r\n", 400),
    ("G@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: t\r\nBad\x00Header: x\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400),
    ("GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\r\n\r\n", 400),
    ("GET / HTTP/1.1\nHost: t\n\n", 400),
    ("GET / HTTP/1.1\r\nHost: t\nX-Smuggle: 1\r\n\r\n", 400),
    ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    ("GET / HTTP/1.1\r\nHost: t\r\n: empty-name\r\n\r\n", 400),
];

#[test]
fn hostile_requests_get_their_exact_status_and_cost_nothing_else() {
    assert!(HOSTILE.len() >= 30);
    let b = HttpBackend::start("127.0.0.1:0", |req| ok(format!("fine {}", req.path)));
    let (_m, port) = http_lb(b.port(), &[]);
    for (i, (req, status)) in HOSTILE.iter().enumerate() {
        let mut c = Client::connect(local(port));
        c.send(req.as_bytes());
        let r = c
            .response()
            .unwrap_or_else(|| panic!("case {i}: no response to {req:?}"));
        assert_eq!(r.status, *status, "case {i}: {req:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "case {i}");
        assert!(c.closed(), "case {i}: connection left open");
        // The next client is unaffected.
        let ok = Client::connect(local(port))
            .exchange(&get(&format!("/after-{i}")))
            .unwrap();
        assert_eq!(ok.body, format!("fine /after-{i}").as_bytes(), "case {i}");
    }
    // Nothing hostile reached the backend.
    assert_eq!(b.requests.load(Ordering::SeqCst), HOSTILE.len());
}

#[test]
fn an_oversized_head_gets_431() {
    let b = HttpBackend::start("127.0.0.1:0", |_| ok("x"));
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let w = c.w.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut w = w;
        let _ = w.write_all(big.as_bytes());
    });
    assert_eq!(c.response().unwrap().status, 431);
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let mut c = Client::connect(local(port));
    assert_eq!(
        c.exchange(format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes())
            .unwrap()
            .status,
        431
    );
}

#[test]
fn no_backend_is_503() {
    let port = free_port();
    let _m = Moirai::start(
        &metadata(&format!("http://{port}:nowhere.test:80")),
        "",
        &[],
    );
    let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
    assert_eq!(r.status, 503);
}

#[test]
fn nginx_behind_moirai_with_curl_in_front() {
    let nginx = crate::util::nginx::Nginx::start();
    let (_m, port) = http_lb(nginx.port, &[]);
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl {path}: {:?}", out.status);
        out.stdout
    };
    assert_eq!(curl("/xff"), format!("127.0.0.1|http|{port}").as_bytes());
    let body = curl("/big.bin");
    assert_eq!(body.len(), nginx.file.len());
    assert_eq!(crc32fast::hash(&body), crc32fast::hash(&nginx.file));
    // Many requests on one client connection, nginx keeping its side alive.
    let mut c = Client::connect(local(port));
    for _ in 0..100 {
        let r = c.exchange(&get("/xff")).unwrap();
        assert_eq!(r.status, 200);
    }
    let r = c
        .exchange(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn http_1_0_clients_get_a_close_unless_they_ask_for_keep_alive() {
    let b = head_echo();
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    let r = c.exchange(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed());
    let mut c = Client::connect(local(port));
    let r = c
        .exchange(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    assert_eq!(r.header("connection").as_deref(), Some("keep-alive"));
    let r = c
        .exchange(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn a_client_leaving_mid_response_costs_nothing_else() {
    let big = vec![b'z'; 4 << 20];
    let b = HttpBackend::start("127.0.0.1:0", move |req| {
        if req.path == "/big" {
            ok(&big)
        } else {
            ok("small")
        }
    });
    let (_m, port) = http_lb(b.port(), &["--workers", "1"]);
    for _ in 0..5 {
        let mut c = Client::connect(local(port));
        c.send(&get("/big"));
        let mut some = [0u8; 1000];
        c.r.read_exact(&mut some).unwrap();
        // Gone with 4 MiB still to come.
        drop(c);
    }
    // The worker is fine, and the half-read backend connections were not
    // handed to anyone else.
    for _ in 0..5 {
        let r = Client::connect(local(port))
            .exchange(&get("/small"))
            .unwrap();
        assert_eq!(r.body, b"small");
    }
}

#[test]
fn an_early_response_ends_the_exchange_cleanly() {
    // A backend that answers as soon as it has the head, without reading
    // the body, then closes.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = s.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!");
                std::thread::sleep(Duration::from_millis(200));
            });
        }
    });
    let (_m, port) = http_lb(bport, &[]);
    let mut c = Client::connect(local(port));
    let data = vec![b'u'; 8 << 20];
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .into_bytes();
    req.extend_from_slice(&data);
    let w = c.w.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut w = w;
        let _ = w.write_all(&req);
    });
    let r = c.response().expect("the early response reaches the client");
    assert_eq!(r.status, 413);
    assert_eq!(r.body, b"big!");
    // The request body was cut short, so the connection cannot go on.
    assert!(c.closed());
    // And the next client is served.
    let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
    assert_eq!(r.status, 413);
}

#[test]
fn a_backend_closing_after_its_response_keeps_the_client_connection() {
    let b = HttpBackend::start("127.0.0.1:0", |_| {
        Reply::ThenClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(),
        )
    });
    let (_m, port) = http_lb(b.port(), &[]);
    let mut c = Client::connect(local(port));
    for _ in 0..3 {
        let r = c.exchange(&get("/")).unwrap();
        assert_eq!(r.body, b"ok");
        assert_eq!(
            r.header("connection"),
            None,
            "the client's connection stays open"
        );
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 3);
}

/// RFC 9112 §6.1: an HTTP/1.0 client never receives chunked framing. The
/// body is de-chunked and ends with the close; HTTP/1.1 clients still get
/// it chunked, on a kept connection.
#[test]
fn http_1_0_clients_never_see_chunked_framing() {
    let b = HttpBackend::start("127.0.0.1:0", |_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
                .to_vec(),
        )
    });
    let (_m, port) = http_lb(b.port(), &[]);
    for keep_alive in [false, true] {
        let mut s = std::net::TcpStream::connect(local(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = if keep_alive {
            "GET / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"
        } else {
            "GET / HTTP/1.0\r\nHost: t\r\n\r\n"
        };
        std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
        // The whole answer, up to the close moirai makes.
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut all).unwrap();
        let text = String::from_utf8(all).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(head.contains("\r\nX-Kept: yes"), "{head}");
        assert_eq!(body, "hello, world");
    }
    // HTTP/1.1: chunked as ever, the connection kept.
    let mut c = Client::connect(local(port));
    let r = c.exchange(&get("/")).unwrap();
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(r.body, b"hello, world");
    assert_eq!(c.exchange(&get("/")).unwrap().status, 200);
}
