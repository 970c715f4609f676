//! `tcp-proxy-v2` checked by a real consumer: HAProxy with `accept-proxy`
//! reads our header and tells a backend who the client was.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{connect_within, free_port, local, metadata, temp_dir, Moirai};

/// A backend that answers each HTTP request with the headers HAProxy added.
fn header_echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let seen: Vec<&str> = text
                    .lines()
                    .filter(|l| l.to_ascii_lowercase().starts_with("x-seen-"))
                    .collect();
                let body = seen.join("\n");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

#[test]
fn haproxy_accepts_our_proxy_v2_header() {
    let haproxy = std::path::Path::new("/usr/sbin/haproxy");
    assert!(
        haproxy.exists(),
        "HAProxy is needed as the real PROXY v2 receiver: apt-get install -y haproxy (.ci/run does)"
    );
    let backend = header_echo();
    let hport = free_port();
    let dir = temp_dir("haproxy");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
             frontend fe\n  bind 127.0.0.1:{hport} accept-proxy\n\
               http-request set-header X-Seen-Src %[src]:%[src_port]\n\
               http-request set-header X-Seen-Dst %[dst]:%[dst_port]\n\
               default_backend be\n\
             backend be\n  server s1 127.0.0.1:{backend}\n"
        ),
    )
    .unwrap();
    let mut hap = Command::new(haproxy)
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    connect_within(local(hport), Duration::from_secs(5));

    let lport = free_port();
    let _m = Moirai::start(
        &metadata(&format!("tcp-proxy-v2://{lport}:127.0.0.1:{hport}")),
        "",
        &[],
    );
    // Connect from a known source address, so the test knows what HAProxy
    // must report.
    let mut c: TcpStream = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(
            &"127.0.0.5:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        s.connect(&local(lport).into()).unwrap();
        s.into()
    };
    let src = c.local_addr().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let _ = hap.kill();
    let _ = hap.wait();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // HAProxy lower-cases header names on HTTP/1.1.
    let resp = resp.to_ascii_lowercase();
    assert!(
        resp.contains(&format!("x-seen-src: {src}\n")),
        "HAProxy saw another source:\n{resp}"
    );
    assert!(
        resp.contains(&format!("x-seen-dst: 127.0.0.1:{lport}")),
        "{resp}"
    );
}
