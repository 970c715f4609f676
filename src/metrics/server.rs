//! The scrape endpoint: moirai's own small HTTP/1.1 listener on the control
//! thread's poll (no hyper, no tokio), present only while `metrics_acl` is
//! set.
//!
//! - The **TCP peer address** decides: outside every `metrics_acl` prefix
//!   is `403`, whatever the request says (`X-Forwarded-For` is never read).
//! - `GET /metrics` (any query string) is the exposition, text format
//!   0.0.4; other paths are `404`, other methods `405`.
//! - One request per connection, answered with `Connection: close`; a
//!   client gets 5 s to send its head, at most 64 are served at once.
//! - A change of `metrics_port` rebinds (scrapes in flight finish on the old
//!   socket); a change of `metrics_acl` applies to the next connection.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::config::{IpPrefix, MetricsConfig};
use crate::sys::net::{self, TcpListener, TcpStream};
use crate::sys::poll::{Interest, Registry, Token};

/// How long a scraper has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait in the accept queue.
const MAX_CONNS: usize = 64;
/// The longest request head read.
const MAX_HEAD: usize = 8192;

/// What a request gets, decided without I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The exposition.
    Metrics,
    /// A status without a body worth rendering.
    Status(u16),
}

/// Decides the answer for a complete request head from a peer that the ACL
/// does (`allowed`) or does not allow. `None` while the head is incomplete.
pub fn answer(head: &[u8], allowed: bool) -> Option<Answer> {
    if !allowed {
        return Some(Answer::Status(403));
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => None,
        Ok(httparse::Status::Partial) => Some(Answer::Status(431)),
        Err(_) => Some(Answer::Status(400)),
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("");
            let path = path.split('?').next().unwrap_or(path);
            Some(match (req.method, path) {
                (_, p) if p != "/metrics" => Answer::Status(404),
                (Some("GET"), _) => Answer::Metrics,
                _ => Answer::Status(405),
            })
        }
    }
}

/// The full response for `answer`; `render` is called only for metrics.
pub fn response(a: Answer, render: impl FnOnce() -> String) -> Vec<u8> {
    let (status, extra, body) = match a {
        Answer::Metrics => (
            "200 OK",
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
            render(),
        ),
        Answer::Status(403) => ("403 Forbidden", "", "forbidden\n".to_owned()),
        Answer::Status(404) => ("404 Not Found", "", "not found; try /metrics\n".to_owned()),
        Answer::Status(405) => ("405 Method Not Allowed", "Allow: GET\r\n", String::new()),
        Answer::Status(431) => ("431 Request Header Fields Too Large", "", String::new()),
        Answer::Status(_) => ("400 Bad Request", "", String::new()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Whether `peer` is inside one of `acl`'s prefixes.
pub fn allowed(acl: &[IpPrefix], peer: SocketAddr) -> bool {
    acl.iter().any(|p| p.contains(peer.ip()))
}

#[derive(Debug)]
struct Scrape {
    stream: TcpStream,
    allowed: bool,
    head: Vec<u8>,
    out: Option<Vec<u8>>,
    sent: usize,
    deadline: Instant,
}

/// The endpoint, reconfigured with every generation.
#[derive(Debug)]
pub struct MetricsServer {
    /// The port and one socket per address, all under `listener_token`.
    listener: Option<(u16, Vec<TcpListener>)>,
    /// Where to listen; empty means every address.
    addresses: Vec<std::net::IpAddr>,
    acl: Vec<IpPrefix>,
    conns: Slab<Scrape>,
    listener_token: Token,
    conn_base: usize,
    /// The port that failed to bind, so the error is logged once.
    failed: Option<u16>,
    /// Until then the port is expected to be busy (an upgrade's stand-in
    /// still holds it): binding is retried without an error.
    patient_until: Option<std::time::Instant>,
}

impl MetricsServer {
    /// An endpoint whose listener uses `listener_token` and whose
    /// connections use tokens `conn_base..conn_base + 64`.
    pub fn new(listener_token: Token, conn_base: usize) -> MetricsServer {
        MetricsServer {
            listener: None,
            addresses: Vec::new(),
            acl: Vec::new(),
            conns: Slab::new(),
            listener_token,
            conn_base,
            failed: None,
            patient_until: None,
        }
    }

    /// Closes the listener (an upgrade hands the port to its stand-in, a
    /// drain to whoever serves next); the next [`MetricsServer::configure`]
    /// opens it again.
    pub fn close(&mut self, registry: &Registry) {
        if let Some((port, mut ls)) = self.listener.take() {
            for l in &mut ls {
                let _ = registry.deregister(l);
            }
            log::info!("metrics: endpoint on :{port} closed for the next program");
        }
    }

    /// The port may stay busy until `until` (the stand-in is closing it):
    /// binding meanwhile is retried quietly.
    pub fn expect_busy_until(&mut self, until: std::time::Instant) {
        self.patient_until = Some(until);
    }

    /// Whether `token` is the endpoint's.
    pub fn owns(&self, token: Token) -> bool {
        token == self.listener_token
            || (self.conn_base..self.conn_base + MAX_CONNS).contains(&token.0)
    }

    /// Listens on these addresses only (`--metrics-listen-address`, else
    /// `--listen-address`); empty means every address.
    pub fn with_addresses(mut self, addresses: Vec<std::net::IpAddr>) -> MetricsServer {
        self.addresses = addresses;
        self
    }

    /// The port served now, if any.
    pub fn port(&self) -> Option<u16> {
        self.listener.as_ref().map(|(p, _)| *p)
    }

    /// Follows the configuration: opens, moves or closes the listener, and
    /// takes the new ACL. A port that cannot be bound is retried by the
    /// next call.
    pub fn configure(&mut self, registry: &Registry, config: Option<&MetricsConfig>) {
        let Some(cfg) = config else {
            if let Some((port, mut ls)) = self.listener.take() {
                for l in &mut ls {
                    let _ = registry.deregister(l);
                }
                log::info!("metrics: no metrics_acl; endpoint on :{port} closed");
            }
            self.acl.clear();
            return;
        };
        self.acl.clone_from(&cfg.acl);
        if self.port() == Some(cfg.port) {
            return;
        }
        let addrs: Vec<Option<std::net::IpAddr>> = if self.addresses.is_empty() {
            vec![None]
        } else {
            self.addresses.iter().copied().map(Some).collect()
        };
        // Every address or none: a half-open endpoint would hide a typo.
        let bound: std::io::Result<Vec<TcpListener>> = addrs
            .into_iter()
            .map(|a| net::bind_on(a, cfg.port, false).map(TcpListener::from_std))
            .collect();
        let bound = bound.and_then(|mut ls| {
            for (i, l) in ls.iter_mut().enumerate() {
                if let Err(e) = registry.register(l, self.listener_token, Interest::READABLE) {
                    for l in &mut ls[..i] {
                        let _ = registry.deregister(l);
                    }
                    return Err(e);
                }
            }
            Ok(ls)
        });
        match bound {
            Ok(l) => {
                if let Some((_, mut old)) = self.listener.replace((cfg.port, l)) {
                    for o in &mut old {
                        let _ = registry.deregister(o);
                    }
                }
                self.failed = None;
                log::info!(
                    "metrics: serving /metrics on :{} to {}",
                    cfg.port,
                    cfg.acl
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Err(e)
                if self
                    .patient_until
                    .is_some_and(|t| std::time::Instant::now() < t) =>
            {
                log::debug!("metrics: :{} still busy: {e} (retrying)", cfg.port);
            }
            Err(e) => {
                if self.failed != Some(cfg.port) {
                    log::error!("metrics: cannot listen on :{}: {e} (retrying)", cfg.port);
                }
                self.failed = Some(cfg.port);
            }
        }
    }

    /// Accepts, reads, or writes for the socket behind `token`.
    pub fn ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        render: &mut dyn FnMut() -> String,
    ) {
        if token == self.listener_token {
            self.accept(registry, now);
            return;
        }
        let i = token.0 - self.conn_base;
        if !self.conns.contains(i) {
            return;
        }
        if self.advance(i, render) {
            let mut c = self.conns.remove(i);
            let _ = registry.deregister(&mut c.stream);
        }
        // A slot freed: take the connections that waited.
        self.accept(registry, now);
    }

    /// Drops scrapers that did not finish their request in time.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(i, _)| i)
            .collect();
        for i in late {
            let mut c = self.conns.remove(i);
            let _ = registry.deregister(&mut c.stream);
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        // Taken out while connections go into `conns`, then put back.
        let Some((port, listeners)) = self.listener.take() else {
            return;
        };
        for listener in &listeners {
            while self.conns.len() < MAX_CONNS {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        let entry = self.conns.vacant_entry();
                        let token = Token(self.conn_base + entry.key());
                        if registry
                            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                            .is_err()
                        {
                            continue;
                        }
                        entry.insert(Scrape {
                            stream,
                            allowed: allowed(&self.acl, peer),
                            head: Vec::new(),
                            out: None,
                            sent: 0,
                            deadline: now + HEAD_TIMEOUT,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            log::warn!("metrics: accept failed: {e}");
                        }
                        break;
                    }
                }
            }
        }
        self.listener = Some((port, listeners));
    }

    /// Moves one scrape on; true when it is finished.
    fn advance(&mut self, i: usize, render: &mut dyn FnMut() -> String) -> bool {
        let c = &mut self.conns[i];
        if c.out.is_none() {
            let mut buf = [0u8; 2048];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(n) => {
                        c.head.extend_from_slice(&buf[..n]);
                        if c.head.len() >= MAX_HEAD {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return true,
                }
            }
            match answer(&c.head, c.allowed) {
                None => return false,
                Some(a) => c.out = Some(response(a, &mut *render)),
            }
        }
        let Some(out) = &c.out else { return true };
        while c.sent < out.len() {
            match c.stream.write(&out[c.sent..]) {
                Ok(0) => return true,
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        // Everything is written; the close sends a FIN after it.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_acl_then_path_then_method() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(answer(get, true), Some(Answer::Metrics));
        assert_eq!(answer(get, false), Some(Answer::Status(403)));
        assert_eq!(
            answer(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", true),
            Some(Answer::Metrics)
        );
        assert_eq!(
            answer(b"GET / HTTP/1.1\r\n\r\n", true),
            Some(Answer::Status(404))
        );
        assert_eq!(
            answer(b"POST /metrics HTTP/1.1\r\n\r\n", true),
            Some(Answer::Status(405))
        );
        assert_eq!(answer(b"GET /metr", true), None);
        assert_eq!(
            answer(b"\x00\x01garbage\r\n\r\n", true),
            Some(Answer::Status(400))
        );
        assert_eq!(answer(&[b'a'; MAX_HEAD], true), Some(Answer::Status(431)));
    }

    #[test]
    fn the_acl_reads_the_peer_address_only() {
        let acl = [
            IpPrefix::parse("127.0.0.1/32").unwrap(),
            IpPrefix::parse("10.0.0.0/8").unwrap(),
        ];
        assert!(allowed(&acl, "127.0.0.1:5000".parse().unwrap()));
        assert!(allowed(&acl, "[::ffff:10.1.2.3]:5000".parse().unwrap()));
        assert!(!allowed(&acl, "127.0.0.2:5000".parse().unwrap()));
        let r = String::from_utf8(response(Answer::Status(405), String::new)).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 405 ") && r.contains("Allow: GET\r\n"),
            "{r}"
        );
        let r = String::from_utf8(response(Answer::Metrics, || "m 1\n".into())).unwrap();
        assert!(
            r.contains("version=0.0.4") && r.ends_with("\r\n\r\nm 1\n"),
            "{r}"
        );
    }
}
