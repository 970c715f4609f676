//! `tcp-proxy-v2` checked by a real consumer: HAProxy with `accept-proxy`
//! reads our header and tells a backend who the client was.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{connect_within, free_port, local, metadata, metadata_exact, temp_dir, Moirai};

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

/// A peer process (nginx, HAProxy), killed on drop.
struct Peer(std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program` with `args` and waits until `port` accepts.
fn peer(program: &str, args: &[&str], port: u16) -> Peer {
    assert!(
        std::path::Path::new(program).exists(),
        "{program} is needed as a real peer: scripts/test installs it"
    );
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    connect_within(local(port), Duration::from_secs(5));
    Peer(child)
}

/// One request through a `tcp-proxy-v2` service in front of `port`,
/// health-checked at that same port with `params`, once its backend is up:
/// the response.
fn through_a_checked_service(port: u16, params: &str) -> String {
    let lport = free_port();
    let m = Moirai::start(
        &metadata_exact(&format!(
            "tcp-proxy-v2://{lport}:127.0.0.1:{port}{{{params}}}"
        )),
        "",
        &[],
    );
    m.wait_log("(1 up, 0 down)", Duration::from_secs(10));
    let mut c = connect_within(local(lport), Duration::from_secs(5));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    resp
}

/// nginx behind a `tcp-proxy-v2` service with `listen ... proxy_protocol`,
/// checked at the same port as Moirai's README shows
/// (`{check:/healthz,rise:2,fall:1}`): the checks open with a PROXY v2
/// LOCAL header, as HAProxy's do for a `send-proxy-v2` server, so nginx
/// answers them and the service comes up. (Without it nginx drops every
/// check and the service never serves.)
#[test]
fn health_checks_reach_an_nginx_that_requires_the_proxy_protocol() {
    let dir = temp_dir("nginx-pp");
    let d = dir.display();
    let port = free_port();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/b;\n  proxy_temp_path {d}/p;\n  fastcgi_temp_path {d}/f;\n  uwsgi_temp_path {d}/u;\n  scgi_temp_path {d}/s;\n\
               server {{\n    listen 127.0.0.1:{port} proxy_protocol;\n\
                 location = /healthz {{ return 200 \"ok\"; }}\n\
                 location / {{ default_type text/plain; return 200 \"client $proxy_protocol_addr\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let conf = format!("{d}/nginx.conf");
    let _nginx = peer(
        "/usr/sbin/nginx",
        &["-c", &conf, "-p", &d.to_string()],
        port,
    );
    let resp = through_a_checked_service(port, "check:/healthz,rise:2,fall:1");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("client 127.0.0.1"), "{resp}");
}

/// HAProxy with `accept-proxy` as the receiver: an HTTP check through it
/// (its LOCAL header accepted, the request passed to the backend) brings
/// the service up.
#[test]
fn health_checks_pass_through_haproxy_accept_proxy() {
    let backend = header_echo();
    let hport = free_port();
    let cfg = temp_dir("haproxy-checks").join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
             frontend fe\n  bind 127.0.0.1:{hport} accept-proxy\n  default_backend be\n\
             backend be\n  server s1 127.0.0.1:{backend}\n"
        ),
    )
    .unwrap();
    let _haproxy = peer(
        "/usr/sbin/haproxy",
        &["-db", "-f", cfg.to_str().unwrap()],
        hport,
    );
    let resp = through_a_checked_service(hport, "check:/,rise:1");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}
