//! Request smuggling and response mix-ups, judged by what a real backend
//! parser sees: nginx behind moirai logs every request it parsed, and each
//! must be one moirai saw too (it carries moirai's X-Forwarded-For). Also
//! `http-reuse safe` against a backend that answers unasked, the retry of
//! idempotent requests on a dead reused connection, and the other hostile
//! inputs of the security review.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::http::{get, read_request, Client};
use crate::util::nginx::Nginx;
use crate::util::{free_port, http_lb, local, metadata, Moirai};

/// Sends `parts` with a pause between them (so later parts arrive after
/// moirai forwarded earlier ones), then reads until the connection closes
/// or goes quiet for a second.
fn raw(port: u16, parts: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(150));
        }
        if s.write_all(p).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every request nginx saw carries moirai's X-Forwarded-For, and none is
/// the smuggled one.
fn all_ours(seen: &[String]) {
    for line in seen {
        assert!(
            line.contains("xff=127.0.0.1 "),
            "a request moirai did not see: {line}"
        );
        assert!(!line.contains("/smuggled"), "smuggled: {line}");
    }
}

const CHUNKED_HEAD: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// Chunked bodies the review found forwarded as received, and their
/// relatives: each must be refused, whole or split.
const BAD_BODIES: &[(&str, &[u8])] = &[
    ("trailer ends in bare LF", b"0\r\nX: a\n\n"),
    ("trailer line without colon", b"0\r\nnocolon\r\n\r\n"),
    ("NUL in a trailer", b"0\r\nX: a\x00b\r\n\r\n"),
    ("folded trailer", b"0\r\nX: a\r\n b\r\n\r\n"),
    ("bare LF after the last chunk", b"0\n\r\n"),
    (
        "junk after the chunk size",
        b"5 garbage\r\nhello\r\n0\r\n\r\n",
    ),
    ("extension without a name", b"5;=x\r\nhello\r\n0\r\n\r\n"),
    (
        "extension with a bad quote",
        b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
    ),
    ("bare LF after the size", b"5\nhello\r\n0\r\n\r\n"),
    ("chunk data not followed by CRLF", b"5\r\nhelloXX0\r\n\r\n"),
    ("chunk data followed by bare LF", b"5\r\nhello\n0\r\n\r\n"),
    ("size overflow", b"10000000000000000\r\n"),
    // From 2^52 up, as HAProxy 2.6 refuses them.
    ("size of 2^52", b"10000000000000\r\nx\r\n0\r\n\r\n"),
    ("negative size", b"-5\r\nhello\r\n0\r\n\r\n"),
];

#[test]
fn bad_chunked_request_bodies_never_reach_nginx_as_two_requests() {
    let nginx = Nginx::start();
    let (_m, port) = http_lb(nginx.port, &[]);
    for (what, body) in BAD_BODIES {
        // In one piece: nothing was forwarded yet, so a 400.
        let whole = [CHUNKED_HEAD, body, SMUGGLED].concat();
        let answer = raw(port, &[&whole]);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{what}: {answer:?}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{what}: {answer:?}");
        // Split: the head and a good chunk went out first, then the bad
        // framing arrives; both connections close, nothing more is sent.
        // (nginx may answer the upload before its body ends: that one
        // response is the client's own.)
        let answer = raw(
            port,
            &[CHUNKED_HEAD, b"3\r\nabc\r\n", &[body, SMUGGLED].concat()],
        );
        assert!(
            answer.matches("HTTP/1.1").count() <= 1,
            "{what}: {answer:?}"
        );
        assert!(!answer.contains("smuggled"), "{what}: {answer:?}");
    }
    let seen = nginx.seen_settled(0, Duration::from_secs(1));
    all_ours(&seen);
    // The split cases reached nginx as one unfinished request each, at most.
    assert!(seen.len() <= BAD_BODIES.len(), "{seen:#?}");
}

#[test]
fn the_reviews_smuggling_request_is_refused_over_https_http_too() {
    let nginx = Nginx::start();
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("https-http://{port}:127.0.0.1:{}", nginx.port)),
        "",
        &[],
    );
    let req = [CHUNKED_HEAD, b"0\r\nX: a\n\n", SMUGGLED].concat();
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&req)?;
            std::thread::sleep(Duration::from_millis(500));
            let _ = c.kill();
            c.wait_with_output()
        })
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text:?}");
    all_ours(&nginx.seen_settled(0, Duration::from_secs(1)));
    drop(m);
}

#[test]
fn valid_chunked_requests_with_extensions_and_trailers_reach_nginx_once_each() {
    let nginx = Nginx::start();
    let (_m, port) = http_lb(nginx.port, &[]);
    let mut c = Client::connect(local(port));
    let body: &[u8] = b"5;name=\"v\\\"x\" ; b\r\nhello\r\n6 ;c=d\r\n world\r\n0\r\nX-Sum: 1\r\nContent-Length: 99\r\n\r\n";
    c.send(
        &[
            CHUNKED_HEAD,
            body,
            b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        .concat(),
    );
    assert_eq!(c.response().unwrap().status, 200);
    assert_eq!(c.response().unwrap().status, 200);
    let seen = nginx.seen_settled(2, Duration::from_secs(5));
    all_ours(&seen);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen[0].starts_with("POST /upload "), "{seen:#?}");
    assert!(seen[1].starts_with("GET /after "), "{seen:#?}");
}

/// A raw backend: for each request it reads, `answer(connection's request
/// index, head)` gives what to do. Returns its port and how many
/// connections were accepted and have been closed by moirai.
fn raw_backend(
    answer: impl Fn(usize, &str, &mut TcpStream) + Send + Sync + 'static,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (count, ended) = (Arc::clone(&accepted), Arc::clone(&closed));
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            count.fetch_add(1, Ordering::SeqCst);
            let (answer, ended) = (Arc::clone(&answer), Arc::clone(&ended));
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut i = 0;
                while let Some(req) = read_request(&mut r) {
                    answer(i, &req.head, &mut s);
                    i += 1;
                }
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (port, accepted, closed)
}

#[test]
fn a_late_extra_response_never_reaches_another_client() {
    // The backend answers, then writes a stray response 30 ms later.
    let (bport, accepted, closed) = raw_backend(|_, _, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal");
        std::thread::sleep(Duration::from_millis(30));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY");
    });
    let (_m, port) = http_lb(bport, &["--workers", "1"]);
    for round in 0..3 {
        for pause in [0, 100] {
            let mut c = Client::connect(local(port));
            let r = c
                .exchange(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            assert_eq!(r.body, b"real", "round {round}");
            std::thread::sleep(Duration::from_millis(pause));
            // A fresh client, right away or once the stray arrived.
            let mut c = Client::connect(local(port));
            let r = c.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(r.body, b"real", "round {round}, pause {pause}");
            // Its own later request, once the stray reached its parked
            // connection: that connection is dropped, not read from.
            std::thread::sleep(Duration::from_millis(100));
            let r = c.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(r.body, b"real", "round {round}, pause {pause}, second");
        }
    }
    // Every connection that delivered a stray response was closed at once,
    // pooled ones included (the pool would otherwise keep them 4 s).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        closed.load(Ordering::SeqCst),
        accepted.load(Ordering::SeqCst)
    );
    // A pooled connection is watched: the stray closes it with no request
    // coming to look (the pool would otherwise keep it 4 s).
    let mut c = Client::connect(local(port));
    let r = c
        .exchange(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(r.body, b"real");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        closed.load(Ordering::SeqCst),
        accepted.load(Ordering::SeqCst),
        "a pooled connection that received a stray response is still open"
    );
}

#[test]
fn a_dead_reused_connection_retries_idempotent_requests_once_and_never_a_post() {
    // The backend answers a connection's first request, then reads the
    // second and hangs up without a byte: a keep-alive race lost.
    let (bport, accepted, _) = raw_backend(|i, _, s| {
        if i == 0 {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        } else {
            let _ = s.shutdown(Shutdown::Both);
        }
    });
    let (_m, port) = http_lb(bport, &["--workers", "1"]);
    for method in ["GET", "HEAD", "OPTIONS", "DELETE"] {
        let mut c = Client::connect(local(port));
        assert_eq!(
            c.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap()
                .status,
            200
        );
        let before = accepted.load(Ordering::SeqCst);
        let req = format!("{method} /again HTTP/1.1\r\nHost: t\r\n\r\n");
        c.send(req.as_bytes());
        let r = crate::util::http::read_response(&mut c.r, method == "HEAD").unwrap();
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            before + 1,
            "{method}: one new connection"
        );
    }
    // A PUT whose whole body went out with its head is kept for a retry
    // too: nothing of it is lost.
    let mut c = Client::connect(local(port));
    assert_eq!(c.exchange(&get("/")).unwrap().status, 200);
    let r = c
        .exchange(b"PUT /again HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    assert_eq!(r.status, 200, "PUT");
    let mut c = Client::connect(local(port));
    assert_eq!(
        c.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap()
            .status,
        200
    );
    let r = c
        .exchange(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    assert_eq!(r.status, 502, "a POST is never sent twice");
}

#[test]
fn bad_chunked_response_ends_both_connections_after_what_was_valid() {
    let (bport, _, _) = raw_backend(|_, _, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        std::thread::sleep(Duration::from_millis(100));
        let _ = s.write_all(b"0\r\nX: a\n\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY");
    });
    let (_m, port) = http_lb(bport, &[]);
    let answer = raw(port, &[b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"]);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\n5\r\nhello\r\n"), "{answer:?}");
    // All at once: nothing went to the client yet, so a 502; a chunk
    // size of 2^52 or more is refused like junk after the size.
    for first in ["5 x\r\nhello\r\n", "10000000000000\r\nhello\r\n"] {
        let (bport, _, _) = raw_backend(move |_, _, s| {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = s.write_all(format!("{head}{first}0\r\n\r\n").as_bytes());
        });
        let (_m2, port) = http_lb(bport, &[]);
        let answer = raw(port, &[b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"]);
        assert!(answer.starts_with("HTTP/1.1 502 "), "{first:?}: {answer:?}");
    }
}

#[test]
fn hostile_heads_are_refused_or_normalised_as_nginx_sees_them() {
    let nginx = Nginx::start();
    let (_m, port) = http_lb(nginx.port, &[]);
    // A bad second request on a keep-alive connection gets its 400.
    let answer = raw(
        port,
        &[
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /two HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        ],
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    assert!(answer.contains("HTTP/1.1 400 "), "{answer:?}");
    // An absolute-form target naming another host.
    let answer = raw(
        port,
        &[b"GET http://evil.example/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"],
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    // Targets with bytes of 0x80 and above (a right-to-left override, a
    // C1 control) or a fragment: 400, as HAProxy 2.6; nginx sees none.
    for target in [&b"/\xe2\x80\xae/evil"[..], b"/\xc2\x9b[31m", b"/a#frag"] {
        let req = [&b"GET "[..], target, b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
        let answer = raw(port, &[&req]);
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "{target:?}: {answer:?}"
        );
    }
    // Empty lines before a request line are skipped, never forwarded.
    let answer = raw(
        port,
        &[b"\r\n\r\n\nGET /blank HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    // A Content-Length list becomes one value nginx accepts.
    let answer = raw(
        port,
        &[b"POST /list HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello"],
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    let seen = nginx.seen_settled(3, Duration::from_secs(5));
    all_ours(&seen);
    let uris: Vec<&str> = seen
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(uris, ["/one", "/blank", "/list"], "{seen:#?}");
    assert!(seen.iter().all(|l| l.ends_with("status=200")), "{seen:#?}");
}

/// nginx's `return 101` answers a WebSocket upgrade with a `101` that
/// names no protocol and proves nothing (no `Sec-WebSocket-Accept`), then
/// goes on parsing HTTP: an application that lets a client choose its
/// status code. Tunnelled, it would let the client send requests moirai
/// never sees, with forged `X-Forwarded-For`. It is a 502, the backend
/// connection closed, and nothing after reaches nginx. A WebSocket
/// upgrade without its key is a 400 before anything is forwarded.
#[test]
fn a_101_that_switches_to_nothing_opens_no_tunnel_past_moirai() {
    let nginx = Nginx::start();
    let (_m, port) = http_lb(nginx.port, &[]);
    let upgrade = b"GET /switch HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let forged = b"GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    let answer = raw(port, &[upgrade, forged]);
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer:?}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer:?}");
    let no_key =
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    let answer = raw(port, &[no_key]);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    let seen = nginx.seen_settled(1, Duration::from_secs(1));
    all_ours(&seen);
    assert_eq!(seen.len(), 1, "only the upgrade request: {seen:#?}");
    assert!(seen[0].starts_with("GET /switch "), "{seen:#?}");
}

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let nginx = Nginx::start();
    let (_m, port) = http_lb(nginx.port, &["--request-header-timeout", "1s"]);
    let start = Instant::now();
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    // Closed without a byte (a browser's speculative connection gets no
    // 408 to log), well before the 55 s client timeout.
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Between requests of a keep-alive connection the client timeout
    // applies, not the header timeout.
    let mut c = Client::connect(local(port));
    assert_eq!(
        c.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        c.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn a_chunked_response_ended_by_a_close_reaches_a_slow_client_whole() {
    // 4 MiB in 64 KiB chunks, then the backend closes at once: moirai has
    // read everything while the framing it writes still waits for a slow
    // client. The close must not cut the response short.
    let chunk = vec![b'z'; 65536];
    let (bport, _, _) = raw_backend(move |_, _, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        for _ in 0..64 {
            let _ = s.write_all(b"10000\r\n");
            let _ = s.write_all(&chunk);
            let _ = s.write_all(b"\r\n");
        }
        let _ = s.write_all(b"0\r\n\r\n");
        let _ = s.shutdown(Shutdown::Both);
    });
    let (_m, port) = http_lb(bport, &[]);
    let mut c = Client::connect(local(port));
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(700));
    let r = crate::util::http::read_response(&mut c.r, false).expect("a whole response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 64 * 65536);
}
