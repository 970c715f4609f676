//! Sessions without sockets: a scripted [`Transport`] that yields chosen
//! bytes, `WouldBlock`, EOF and errors and records what was written, a
//! scripted [`Net`] that hands out such transports as backend connects,
//! and a harness that owns what a [`Ctx`] borrows. pingora tests its
//! HTTP/1 code against scripted I/O the same way.
//!
//! The tests are tables of exchanges: keep-alive, pipelining, 1xx, 101,
//! early responses, half-close, timeouts and retries, for the HTTP session
//! and the TCP session. Each asserts on the bytes each peer saw and the
//! step the session answered.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::balance::RoundRobin;
use super::buffer::BufferPool;
use super::conn::{Net, Readiness, Transport};
use super::http::HttpSession;
use super::pool::IdlePool;
use super::session::Session;
use super::step::{CloseReason, Ctx, Step};
use super::tcp::TcpSession;
use super::token::{Side, SlotId};
use crate::config::portmap;
use crate::metrics::stats::{Latency, Sharded};
use crate::proto::http1::Scratch;
use crate::snapshot::{Backend, ServiceSnapshot, Snapshot};
use crate::sys::poll::{Interest, Token};

/// What the peer of a scripted socket does next when read from.
#[derive(Debug, Clone)]
enum Next {
    Bytes(Vec<u8>),
    Eof,
    Error,
}

/// Everything a scripted socket's peer sent and saw.
#[derive(Debug, Default)]
pub struct Wire {
    reads: VecDeque<Next>,
    /// Everything written to the socket.
    pub written: Vec<u8>,
    /// Bytes the socket takes before it says `WouldBlock` (`None`: any).
    pub room: Option<usize>,
    /// A FIN was sent.
    pub shut: bool,
    /// The close will be a reset.
    pub reset: bool,
    /// How the connect ended (`None` while in progress).
    pub connected: Option<Result<(), io::ErrorKind>>,
    /// Writes fail from now on.
    pub broken: bool,
    /// Read calls made, `WouldBlock` included.
    pub read_calls: usize,
    /// Write calls that wrote something (a `writev` counts once).
    pub write_calls: usize,
}

/// One end of a scripted connection; clones share the wire.
#[derive(Debug, Clone, Default)]
pub struct Script(pub Rc<RefCell<Wire>>);

impl Script {
    /// A connected socket with nothing to read yet.
    pub fn connected() -> Script {
        let s = Script::default();
        s.0.borrow_mut().connected = Some(Ok(()));
        s
    }

    /// The peer sends `bytes`.
    pub fn push(&self, bytes: &[u8]) {
        self.0
            .borrow_mut()
            .reads
            .push_back(Next::Bytes(bytes.to_vec()));
    }

    /// The peer sends its FIN (after what it sent before).
    pub fn eof(&self) {
        self.0.borrow_mut().reads.push_back(Next::Eof);
    }

    /// The next read fails.
    pub fn fail(&self) {
        self.0.borrow_mut().reads.push_back(Next::Error);
    }

    /// Everything written so far, as text.
    pub fn seen(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow().written).into_owned()
    }

    /// Forgets what was written so far.
    pub fn clear_seen(&self) {
        self.0.borrow_mut().written.clear();
    }

    fn shut(&self) -> bool {
        self.0.borrow().shut
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut w = self.0.borrow_mut();
        w.read_calls += 1;
        match w.reads.front_mut() {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(Next::Eof) => Ok(0),
            Some(Next::Error) => {
                w.reads.pop_front();
                Err(io::ErrorKind::ConnectionReset.into())
            }
            Some(Next::Bytes(b)) => {
                let n = b.len().min(buf.len());
                buf[..n].copy_from_slice(&b[..n]);
                b.drain(..n);
                if b.is_empty() {
                    w.reads.pop_front();
                }
                Ok(n)
            }
        }
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.put(buf)?;
        self.0.borrow_mut().write_calls += 1;
        Ok(n)
    }

    /// As a socket's `writev`: as much of all the slices as there is room
    /// for (std's default would take the first slice only).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            match self.put(b) {
                Ok(k) => {
                    n += k;
                    if k < b.len() {
                        break;
                    }
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        self.0.borrow_mut().write_calls += 1;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Script {
    /// One slice onto the wire, as far as there is room.
    fn put(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut w = self.0.borrow_mut();
        if w.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = w.room.map_or(buf.len(), |r| r.min(buf.len()));
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(r) = w.room.as_mut() {
            *r -= n;
        }
        w.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Transport for Script {
    fn shutdown_write(&self) -> io::Result<()> {
        self.0.borrow_mut().shut = true;
        Ok(())
    }

    fn connect_result(&self) -> Option<io::Result<()>> {
        self.0
            .borrow()
            .connected
            .map(|r| r.map_err(io::Error::from))
    }

    fn set_nodelay(&self) {}

    fn reset_on_close(&self) {
        self.0.borrow_mut().reset = true;
    }

    fn is_quiet(&self) -> bool {
        self.0.borrow().reads.is_empty()
    }
}

/// Backend connects: each takes the next scripted outcome.
#[derive(Debug, Default)]
pub struct ScriptNet {
    /// What the next connects give: a socket, or an immediate error.
    pub outcomes: VecDeque<Result<Script, io::ErrorKind>>,
    /// Every address a connect was started to.
    pub dialed: Vec<SocketAddr>,
}

impl Net<Script> for ScriptNet {
    fn connect(&mut self, addr: SocketAddr, _: Token) -> io::Result<Script> {
        self.dialed.push(addr);
        match self.outcomes.pop_front() {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(e.into()),
            // Unscripted: a socket that connects and answers nothing.
            None => Ok(Script::connected()),
        }
    }

    fn watch(&mut self, _: &mut Script, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }
}

/// What a session borrows from its worker, owned here.
pub struct Harness {
    pub net: ScriptNet,
    pub pool: BufferPool,
    pub cursor: RoundRobin,
    pub snapshot: Snapshot,
    pub idle: IdlePool<Script>,
    pub scratch: Vec<Scratch>,
    #[allow(clippy::vec_box)]
    pub exchanges: Vec<Box<crate::proto::http1::exchange::Exchange>>,
    pub latency: HashMap<u16, Latency>,
    pub now: Instant,
}

/// Backend addresses of the test services.
pub const B1: &str = "192.0.2.1:8080";
pub const B2: &str = "192.0.2.2:8080";

impl Harness {
    /// A harness whose one service is the portmap `entry`, with backends
    /// `B1` and `B2` (or only `B1` when `two` is false).
    pub fn new(entry: &str, two: bool) -> Harness {
        Harness::with_acme(entry, two, HashMap::new())
    }

    /// As [`Harness::new`], with these pending ACME http-01 answers
    /// (token → key authorization).
    pub fn with_acme(entry: &str, two: bool, acme: HashMap<String, String>) -> Harness {
        let spec = portmap::parse_entry(entry).expect("a valid test entry");
        let addrs: &[&str] = if two { &[B1, B2] } else { &[B1] };
        let backends = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let cookie = *format!("{i:016}").as_bytes().first_chunk().unwrap();
                Arc::new(Backend::new(a.parse().unwrap()).with_cookie(cookie, cookie))
            })
            .collect();
        let service = Arc::new(ServiceSnapshot {
            spec,
            index: 0,
            timeouts: Default::default(),
            backends,
            no_backends: None,
            stats: Arc::new(Sharded::new(1)),
            tls: None,
            acme: Arc::new(acme),
        });
        Harness {
            net: ScriptNet::default(),
            pool: BufferPool::new(64),
            cursor: RoundRobin::default(),
            snapshot: Snapshot {
                generation: 1,
                services: vec![service],
                syslog: None,
            },
            idle: IdlePool::default(),
            scratch: Vec::new(),
            exchanges: Vec::new(),
            latency: HashMap::new(),
            now: Instant::now(),
        }
    }

    pub fn service(&self) -> Arc<ServiceSnapshot> {
        Arc::clone(&self.snapshot.services[0])
    }

    /// The next connect gives this socket.
    pub fn backend(&mut self) -> Script {
        let s = Script::default();
        self.net.outcomes.push_back(Ok(s.clone()));
        s
    }

    /// The next connect fails at once.
    pub fn refuse(&mut self) {
        self.net
            .outcomes
            .push_back(Err(io::ErrorKind::ConnectionRefused));
    }

    pub fn ctx(&mut self) -> Ctx<'_, Script> {
        Ctx {
            net: &mut self.net,
            pool: &mut self.pool,
            now: self.now,
            id: SlotId { index: 0, gen: 1 },
            cursor: &mut self.cursor,
            snapshot: &self.snapshot,
            idle: &mut self.idle,
            header_timeout: super::http::HEADER_TIMEOUT,
            scratch: &mut self.scratch,
            exchanges: &mut self.exchanges,
            worker: 0,
            latency: &mut self.latency,
            syslog: None,
        }
    }

    pub fn later(&mut self, d: Duration) {
        self.now += d;
    }
}

/// An HTTP session on a scripted client, with its harness.
struct Http {
    h: Harness,
    s: HttpSession<Script>,
    client: Script,
}

impl Http {
    fn new(two: bool) -> Http {
        let mut h = Harness::new("http://80:backend.example:8080", two);
        let client = Script::connected();
        let svc = h.service();
        let s = HttpSession::start(&mut h.ctx(), svc, client.clone(), peer()).unwrap();
        Http { h, s, client }
    }

    /// The client sends `bytes`, and the event says so.
    fn send(&mut self, bytes: &[u8]) -> Step {
        self.client.push(bytes);
        self.event(Side::Client)
    }

    fn event(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::BOTH)
    }

    /// An event that also reports the peer's FIN.
    fn fin(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::FIN)
    }

    /// `backend`'s connect completes (or fails), and the event says so.
    fn connect(&mut self, backend: &Script, ok: bool) -> Step {
        backend.0.borrow_mut().connected = Some(if ok {
            Ok(())
        } else {
            Err(io::ErrorKind::ConnectionRefused)
        });
        self.event(Side::Backend)
    }

    /// The backend sends `bytes`.
    fn answer(&mut self, backend: &Script, bytes: &[u8]) -> Step {
        backend.push(bytes);
        self.event(Side::Backend)
    }

    fn timer(&mut self) -> Step {
        self.s.on_timer(&mut self.h.ctx())
    }

    /// The status of every response the client got, in order.
    fn statuses(&self) -> Vec<u16> {
        let seen = self.client.seen();
        seen.match_indices("HTTP/1.1 ")
            .filter(|(i, _)| seen.get(i + 12..).is_some_and(|r| r.starts_with(' ')))
            .filter_map(|(i, _)| seen.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }
}

fn peer() -> SocketAddr {
    "198.51.100.7:40000".parse().unwrap()
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

/// The requests a backend saw, by their request lines.
fn lines(seen: &str) -> Vec<&str> {
    seen.split("\r\n")
        .filter(|l| l.starts_with("GET ") || l.starts_with("POST "))
        .collect()
}

#[test]
fn http_keep_alive_reuses_the_parked_connection() {
    let mut t = Http::new(true);
    let b = t.h.backend();
    assert_eq!(t.send(GET), Step::Open);
    assert_eq!(t.h.net.dialed.len(), 1, "one connect");
    assert_eq!(t.connect(&b, true), Step::Open);
    let seen = b.seen();
    assert!(seen.starts_with("GET /a HTTP/1.1\r\nHost: x\r\n"), "{seen}");
    assert!(seen.contains("X-Forwarded-For: 198.51.100.7\r\n"), "{seen}");
    assert!(seen.contains("X-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n"));
    assert!(seen.ends_with("Connection: keep-alive\r\n\r\n"), "{seen}");
    assert_eq!(t.answer(&b, OK), Step::Open);
    let got = t.client.seen();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("Set-Cookie: CLOUD-TRITONCOMPUTE-RS="), "{got}");
    assert!(got.ends_with("\r\n\r\nhi"), "{got}");
    assert!(!got.contains("Connection: close"));
    assert!(t.s.is_idle());
    // Between requests the connection holds neither the exchange nor its
    // vectors: both went back to the worker's free lists.
    assert_eq!((t.h.exchanges.len(), t.h.scratch.len()), (1, 1));

    // The second request rides the same backend connection, with the
    // same forwarding lines.
    assert_eq!(t.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"), Step::Open);
    assert_eq!(t.h.net.dialed.len(), 1, "no second connect");
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]);
    assert_eq!(
        b.seen()
            .matches("X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: http\r\n")
            .count(),
        2
    );
    assert_eq!((t.h.exchanges.len(), t.h.scratch.len()), (0, 0), "in use");
    assert_eq!(t.answer(&b, OK), Step::Open);
    assert_eq!(t.statuses(), [200, 200]);
}

/// Idle keep-alive connections are most of what a busy balancer holds
/// (#18 asks for half of HAProxy's memory per idle connection): the
/// session of one, the worker's slab entry being a pointer, stays small.
/// (Test builds carry 16 bytes of mio's debug state per socket.)
#[test]
fn an_idle_http_session_stays_small() {
    let size = std::mem::size_of::<HttpSession>();
    assert!(size <= 416, "HttpSession is {size} bytes");
}

#[test]
fn http_pipelined_requests_are_answered_in_order() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    let two = [GET, b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
    t.send(&two);
    t.connect(&b, true);
    // Only the first goes out before its response.
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"]);
    t.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    assert_eq!(
        lines(&b.seen()),
        ["GET /a HTTP/1.1", "GET /second HTTP/1.1"]
    );
    t.answer(&b, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
    let got = t.client.seen();
    let first = got.find("first").unwrap();
    let second = got.find("second").unwrap();
    assert!(first < second, "{got}");
}

#[test]
fn http_interim_responses_pass_and_the_final_one_follows() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    t.connect(&b, true);
    t.answer(&b, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(t.client.seen(), "HTTP/1.1 100 Continue\r\n\r\n");
    t.send(b"data");
    assert!(b.seen().ends_with("\r\n\r\ndata"), "{}", b.seen());
    t.answer(&b, OK);
    let got = t.client.seen();
    assert!(
        got.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{got}"
    );
    assert!(t.s.is_idle());
}

#[test]
fn http_101_becomes_a_tunnel() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(WS_REQUEST);
    t.connect(&b, true);
    let seen = b.seen();
    assert!(seen.contains("Upgrade: websocket\r\n"), "{seen}");
    assert!(seen.contains("Connection: upgrade\r\n"), "{seen}");
    t.answer(&b, WS_SWITCH.as_bytes());
    let got = t.client.seen();
    assert_eq!(got, WS_SWITCH, "passed untouched");
    b.clear_seen();
    t.send(b"\x81\x02hi");
    assert_eq!(b.0.borrow().written, b"\x81\x02hi");
    t.answer(&b, b"pong");
    assert!(t.client.seen().ends_with("pong"));
    // Both FINs go through, then the session is done.
    b.eof();
    t.event(Side::Backend);
    assert!(t.client.shut());
    t.client.eof();
    assert_eq!(t.event(Side::Client), Step::Closed(CloseReason::Done));
    assert!(b.shut());
}

/// A WebSocket upgrade request, with RFC 6455's example key.
const WS_REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/// The switch that takes it.
const WS_SWITCH: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// A `101` that does not take what the request offered is a 502, and the
/// backend connection is closed: never a tunnel a client could choose.
#[test]
fn http_101_that_does_not_take_the_offer_is_a_502() {
    let answers = [
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    ];
    for answer in answers {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(WS_REQUEST);
        t.connect(&b, true);
        t.answer(&b, answer.as_bytes());
        assert_eq!(t.statuses(), [502], "{answer:?}: {}", t.client.seen());
        assert_eq!(
            Rc::strong_count(&b.0),
            1,
            "{answer:?}: the backend connection is closed (dropped)"
        );
        // Nothing the client sends now reaches the backend.
        b.clear_seen();
        t.send(b"GET /through HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(b.seen(), "", "{answer:?}");
    }
}

#[test]
fn http_101_nobody_asked_for_is_a_502() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.answer(&b, b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    assert_eq!(t.statuses(), [502], "{}", t.client.seen());
}

#[test]
fn http_early_response_ends_the_connection_after_it() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart");
    t.connect(&b, true);
    // The backend refuses before the body is complete.
    let step = t.answer(
        &b,
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let got = t.client.seen();
    assert_eq!(t.statuses(), [413], "{got}");
    // The rest of the body never comes: the client cannot send another
    // request, and the backend connection holds part of one.
    assert_eq!(step, Step::Closed(CloseReason::Done));
    // A plain socket's close is its FIN: no shutdown first.
    assert!(!t.client.shut());
}

#[test]
fn http_half_closed_client_gets_its_answer_then_the_close() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.client.push(GET);
    t.client.eof();
    t.fin(Side::Client);
    t.connect(&b, true);
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"]);
    let step = t.answer(&b, OK);
    let got = t.client.seen();
    assert!(got.contains("Connection: close\r\n"), "{got}");
    assert!(got.ends_with("hi"));
    assert_eq!(step, Step::Closed(CloseReason::Done));
}

#[test]
fn http_slow_head_gets_408_and_silent_backend_504() {
    let mut t = Http::new(false);
    t.send(b"GET /slow HTTP/1.1\r\nHo");
    t.h.later(super::http::HEADER_TIMEOUT);
    t.timer();
    assert_eq!(t.statuses(), [408], "{}", t.client.seen());

    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.h.later(Duration::from_secs(121));
    t.timer();
    assert_eq!(t.statuses(), [504], "{}", t.client.seen());
}

#[test]
fn http_connect_failures_redispatch_once_then_503() {
    // At once, then later: both count, the second backend gets it.
    let mut t = Http::new(true);
    t.h.refuse();
    let b = t.h.backend();
    t.send(GET);
    assert_eq!(t.h.net.dialed.len(), 2);
    assert_ne!(t.h.net.dialed[0], t.h.net.dialed[1], "another backend");
    t.connect(&b, true);
    assert_eq!(lines(&b.seen()), ["GET /a HTTP/1.1"]);

    let mut t = Http::new(true);
    let (b1, b2) = (t.h.backend(), t.h.backend());
    t.send(GET);
    t.connect(&b1, false);
    assert_eq!(t.h.net.dialed.len(), 2);
    t.connect(&b2, false);
    assert_eq!(t.statuses(), [503], "{}", t.client.seen());
    let svc = t.h.service();
    assert_eq!(
        svc.stats.of(0).retries.get(),
        1,
        "one retry for two attempts"
    );

    // A connect that never completes times out and moves on.
    let mut t = Http::new(true);
    let (_b1, b2) = (t.h.backend(), t.h.backend());
    t.send(GET);
    t.h.later(Duration::from_secs(2));
    t.timer();
    assert_eq!(t.h.net.dialed.len(), 2);
    t.connect(&b2, true);
    assert_eq!(lines(&b2.seen()), ["GET /a HTTP/1.1"]);
}

#[test]
fn http_dead_reused_connection_is_retried_for_a_get_only() {
    for (request, retried) in [
        (GET, true),
        (
            &b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"[..],
            false,
        ),
    ] {
        let mut t = Http::new(false);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        t.answer(&b, OK);
        // The parked connection died without a word; the next request
        // finds out after sending.
        let fresh = t.h.backend();
        t.send(request);
        b.eof();
        t.event(Side::Backend);
        let svc = t.h.service();
        let retries = svc.stats.of(0).retries.get();
        assert_eq!(retries, u64::from(retried), "the dialer counts a resend");
        if retried {
            assert_eq!(t.h.net.dialed.len(), 2, "sent again on a new connection");
            t.connect(&fresh, true);
            assert_eq!(lines(&fresh.seen()), ["GET /a HTTP/1.1"]);
            t.answer(&fresh, OK);
            assert_eq!(
                t.statuses(),
                [200, 200],
                "the client never sees the failure"
            );
        } else {
            assert_eq!(t.h.net.dialed.len(), 1, "a POST is never sent twice");
            assert_eq!(t.statuses(), [200, 502], "{}", t.client.seen());
        }
    }
}

/// NTLM and Negotiate log in the connection, not the request: after a
/// 401 offering one, the client's next requests go to the same backend
/// (even on a new connection, and though the balancer would choose the
/// other), and its backend connection never reaches the pool. A Basic
/// 401 changes nothing.
#[test]
fn http_a_connection_bound_login_stays_with_its_client() {
    let ntlm = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n";
    let basic =
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n";
    let cases = [
        (&ntlm[..], "NTLM TlRMTVNTUAABAAAA", true),
        (&basic[..], "Basic dXNlcjpwYXNz", false),
    ];
    for (challenge, credentials, private) in cases {
        let mut t = Http::new(true);
        let b = t.h.backend();
        t.send(GET);
        t.connect(&b, true);
        t.answer(&b, challenge);
        // The idle connection is closed by the backend: the login's next
        // step needs a new one.
        b.eof();
        t.event(Side::Backend);
        let b2 = t.h.backend();
        t.send(
            format!("GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: {credentials}\r\n\r\n")
                .as_bytes(),
        );
        let [first, second] = t.h.net.dialed[..] else {
            panic!("{:?}", t.h.net.dialed)
        };
        assert_eq!(first == second, private, "pinned: {first} {second}");
        t.connect(&b2, true);
        t.answer(&b2, OK);
        // The client's last request: its connection ends, and the backend
        // connection goes to the pool only if no login is on it.
        t.send(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        t.answer(&b2, OK);
        assert_eq!(t.statuses(), [401, 200, 200]);
        assert_eq!(t.h.idle.len(), usize::from(!private), "pooled");
    }
}

/// A redirecting service still answers ACME http-01 challenges (its
/// certificate may be ordered through this very listener), redirects
/// everything else without a backend, and proxies a trusted proxy's
/// request that came over https.
#[test]
fn http_redirects_but_answers_acme_challenges_first() {
    let mut h = Harness::with_acme(
        "http://80:backend.example:8080{redirect:https,trust_forwarded:198.51.100.0/24}",
        false,
        [("tok".to_owned(), "tok.key-auth".to_owned())].into(),
    );
    let svc = h.service();
    let cases: [(&[u8], &str); 3] = [
        (
            b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK",
        ),
        (
            b"GET /page?q=1 HTTP/1.1\r\nHost: site.example\r\n\r\n",
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://site.example/page?q=1\r\n",
        ),
        (
            b"GET /p HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n",
            "",
        ),
    ];
    for (request, answer) in cases {
        let client = Script::connected();
        let mut s =
            HttpSession::start(&mut h.ctx(), Arc::clone(&svc), client.clone(), peer()).unwrap();
        let dialed = h.net.dialed.len();
        client.push(request);
        s.on_event(&mut h.ctx(), Side::Client, Readiness::BOTH);
        let got = client.seen();
        if answer.is_empty() {
            // The peer (198.51.100.7) is trusted and says https: proxied.
            assert_eq!(h.net.dialed.len(), dialed + 1, "{got}");
            assert_eq!(got, "");
        } else {
            assert!(got.starts_with(answer), "{got}");
            assert_eq!(h.net.dialed.len(), dialed, "no backend contacted");
        }
    }
}

/// A login moved by a failed connect: pinned to B1, whose connect then
/// fails, the login's next request is redialled to B2 and logs in there.
/// No connection of this client may reach the shared pool afterwards
/// (once the B2 connection was pooled when the next request went back to
/// the old pin).
#[test]
fn http_a_login_moved_by_a_failed_connect_stays_private() {
    let nego = b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Negotiate YIIB\r\n\r\n";
    let mut t = Http::new(true);
    let b1 = t.h.backend();
    t.send(nego);
    t.connect(&b1, true);
    t.answer(&b1, OK);
    // The pinned backend's idle connection closes; its next connect is
    // refused at once, so the dialer moves the request to the other one.
    b1.eof();
    t.event(Side::Backend);
    t.h.refuse();
    let b2 = t.h.backend();
    t.send(nego);
    let [first, again, moved] = t.h.net.dialed[..] else {
        panic!("{:?}", t.h.net.dialed)
    };
    assert_eq!(first, again, "pinned");
    assert_ne!(again, moved, "redialled");
    t.connect(&b2, true);
    t.answer(&b2, OK);
    // Requests without credentials after that, the last one closing: the
    // logged-in connection is reused, then closed, never pooled.
    t.send(GET);
    t.answer(&b2, OK);
    t.send(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    t.answer(&b2, OK);
    assert_eq!(t.statuses(), [200, 200, 200, 200]);
    assert_eq!(t.h.idle.len(), 0, "a logged-in connection was pooled");
}

#[test]
fn http_bad_chunk_is_a_400_before_anything_is_forwarded() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    );
    t.connect(&b, true);
    assert_eq!(b.seen(), "", "nothing forwarded");
    assert_eq!(t.statuses(), [400], "{}", t.client.seen());
}

#[test]
fn http_slow_client_socket_gets_the_whole_response_in_pieces() {
    let mut t = Http::new(false);
    let b = t.h.backend();
    t.send(GET);
    t.connect(&b, true);
    t.client.0.borrow_mut().room = Some(7);
    t.answer(&b, OK);
    assert_eq!(t.client.seen().len(), 7);
    for _ in 0..100 {
        t.client.0.borrow_mut().room = Some(7);
        t.event(Side::Client);
    }
    assert!(
        t.client.seen().ends_with("\r\n\r\nhi"),
        "{}",
        t.client.seen()
    );
    assert!(t.s.is_idle());
}

/// A TCP session on a scripted client.
struct Tcp {
    h: Harness,
    s: TcpSession<Script>,
    client: Script,
}

impl Tcp {
    fn new(two: bool, backends: &[Option<Script>]) -> Tcp {
        let mut h = Harness::new("tcp://5432:db.example:5432", two);
        for b in backends {
            match b {
                Some(s) => h.net.outcomes.push_back(Ok(s.clone())),
                None => h.refuse(),
            }
        }
        let client = Script::connected();
        let svc = h.service();
        let s = TcpSession::start(&mut h.ctx(), svc, client.clone(), peer(), None).unwrap();
        Tcp { h, s, client }
    }

    fn event(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::BOTH)
    }

    /// An event that also reports the peer's FIN.
    fn fin(&mut self, side: Side) -> Step {
        self.s.on_event(&mut self.h.ctx(), side, Readiness::FIN)
    }
}

#[test]
fn tcp_carries_bytes_and_each_fin_through() {
    let b = Script::default();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.client.push(b"hello");
    assert_eq!(t.event(Side::Client), Step::Open, "waits for the connect");
    assert_eq!(b.seen(), "");
    b.0.borrow_mut().connected = Some(Ok(()));
    t.event(Side::Backend);
    assert_eq!(b.seen(), "hello");
    b.push(b"world");
    t.event(Side::Backend);
    assert_eq!(t.client.seen(), "world");
    // The client half-closes: the backend gets the FIN, and may still
    // answer.
    t.client.eof();
    assert_eq!(t.event(Side::Client), Step::Open);
    assert!(b.shut());
    b.push(b"late");
    b.eof();
    assert_eq!(t.fin(Side::Backend), Step::Closed(CloseReason::Done));
    assert_eq!(t.client.seen(), "worldlate");
    assert!(t.client.shut());
}

#[test]
fn tcp_redispatches_once() {
    // At once: the second backend.
    let b = Script::default();
    let t = Tcp::new(true, &[None, Some(b)]);
    assert_eq!(t.h.net.dialed.len(), 2);
    assert_ne!(t.h.net.dialed[0], t.h.net.dialed[1]);
    let svc = t.h.service();
    assert_eq!(
        svc.stats.of(0).retries.get(),
        1,
        "an immediate failure is a retry too"
    );

    // Later, twice: the session ends.
    let (b1, b2) = (Script::default(), Script::default());
    let mut t = Tcp::new(true, &[Some(b1.clone()), Some(b2.clone())]);
    b1.0.borrow_mut().connected = Some(Err(io::ErrorKind::ConnectionRefused));
    assert_eq!(t.event(Side::Backend), Step::Open);
    b2.0.borrow_mut().connected = Some(Err(io::ErrorKind::ConnectionRefused));
    assert_eq!(
        t.event(Side::Backend),
        Step::Closed(CloseReason::ConnectFailed)
    );
}

#[test]
fn tcp_reset_passes_to_the_other_side_and_idle_times_out() {
    let b = Script::connected();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.event(Side::Backend);
    b.fail();
    assert_eq!(
        t.event(Side::Backend),
        Step::Closed(CloseReason::Reset(Side::Backend))
    );
    assert!(t.client.0.borrow().reset, "the client is reset too");

    let b = Script::connected();
    let mut t = Tcp::new(false, &[Some(b.clone())]);
    t.event(Side::Backend);
    t.h.later(Duration::from_secs(56));
    assert_eq!(
        t.s.on_timer(&mut t.h.ctx()),
        Step::Closed(CloseReason::IdleTimeout(Side::Client))
    );
}

/// A TLS client talking to a server [`Conn`] over a scripted socket.
struct TlsPair {
    server: super::conn::Conn<Script>,
    wire: Script,
    client: rustls::ClientConnection,
    /// Where the client keeps the session tickets it gets.
    tickets: Arc<rustls::client::ClientSessionMemoryCache>,
    now: Instant,
}

impl TlsPair {
    fn new(version: &'static rustls::SupportedProtocolVersion) -> TlsPair {
        let h = Harness::new("https-http://443:backend.example:8080", false);
        let dir = std::env::temp_dir().join(format!(
            "moirai-script-tls-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = crate::tls::certs::self_signed(&dir, &["lb.example.test".to_owned()]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let config = crate::tls::config::server(crate::tls::certs::CertStore::new(key)).unwrap();
        let provider = crate::tls::config::provider();
        let mut client_config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(
                crate::tls::danger::AcceptAnyServerCert::new(provider),
            ))
            .with_no_client_auth();
        let tickets = Arc::new(rustls::client::ClientSessionMemoryCache::new(8));
        client_config.resumption = rustls::client::Resumption::store(tickets.clone());
        let client = rustls::ClientConnection::new(
            Arc::new(client_config),
            "lb.example.test".try_into().unwrap(),
        )
        .unwrap();
        let wire = Script::connected();
        let now = h.now;
        let meter = super::conn::Meter::client(&h.service(), 0);
        let mut server = super::conn::Conn::new(wire.clone(), now, meter)
            .with_tls(rustls::ServerConnection::new(config).unwrap().into());
        server.note(Readiness::BOTH);
        TlsPair {
            server,
            wire,
            client,
            tickets,
            now,
        }
    }

    /// The client's pending records reach the server's socket.
    fn client_sends(&mut self) {
        let mut out = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut out).unwrap();
        }
        self.wire.push(&out);
        self.server.note(Readiness::BOTH);
    }

    /// The server reads; what it wrote reaches the client. Returns the
    /// plaintext read.
    fn server_reads(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let n = self.server.recv(&mut buf, self.now).moved().unwrap_or(0);
        self.deliver();
        buf[..n].to_vec()
    }

    /// What the server wrote reaches the client.
    fn deliver(&mut self) {
        let written = std::mem::take(&mut self.wire.0.borrow_mut().written);
        let mut rd = &written[..];
        while !rd.is_empty() {
            self.client.read_tls(&mut rd).unwrap();
            self.client.process_new_packets().unwrap();
        }
    }

    /// Whether the client holds a TLS 1.3 session ticket (taking one).
    fn took_ticket(&self) -> bool {
        use rustls::client::ClientSessionStore;
        let name = "lb.example.test".try_into().unwrap();
        self.tickets.take_tls13_ticket(&name).is_some()
    }

    fn calls(&self) -> (usize, usize) {
        let w = self.wire.0.borrow();
        (w.read_calls, w.write_calls)
    }
}

/// TLS 1.3: the session tickets queued once the client's Finished is read
/// go out in the same write as the response; each flight is read with
/// one read (a short read drained the socket).
#[test]
fn tls13_tickets_ride_with_the_response_and_a_flight_takes_one_read() {
    let mut t = TlsPair::new(&rustls::version::TLS13);
    t.client_sends(); // ClientHello
    assert!(t.server_reads().is_empty());
    assert_eq!(
        t.calls(),
        (1, 1),
        "one read, the server's flight in one write"
    );
    assert!(!t.client.is_handshaking());

    // The client's Finished and its request arrive together.
    t.client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    t.client_sends();
    assert_eq!(t.server_reads(), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(t.calls(), (2, 1), "the tickets wait");
    assert!(!t.took_ticket(), "no ticket yet");

    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let sent = t.server.send(&[io::IoSlice::new(response)], t.now);
    assert_eq!(sent.moved(), Some(response.len()));
    assert_eq!(t.calls(), (2, 2), "tickets and response in one write");
    t.deliver();
    let mut got = Vec::new();
    let _ = t.client.reader().read_to_end(&mut got);
    assert_eq!(got, response);
    assert!(t.took_ticket(), "the tickets came with the response");
    let state = t.client.process_new_packets().unwrap();
    assert!(
        !state.peer_has_closed(),
        "a keep-alive response, no close_notify"
    );
}

/// TLS 1.2: the server's last flight (after the client's Finished) is
/// part of the handshake and goes at once; the client waits for it.
#[test]
fn tls12_sends_its_finished_at_once() {
    let mut t = TlsPair::new(&rustls::version::TLS12);
    t.client_sends(); // ClientHello
    t.server_reads();
    assert!(t.client.is_handshaking());
    t.client_sends(); // key exchange, Finished
    t.server_reads();
    assert_eq!(t.calls().1, 2, "the server's Finished went out");
    assert!(!t.client.is_handshaking(), "the client's handshake is done");
}

/// The last response of a closing TLS connection carries the close_notify
/// in its write; the close_notify sent after it adds nothing.
#[test]
fn tls_close_notify_rides_with_the_last_response() {
    let mut t = TlsPair::new(&rustls::version::TLS13);
    t.client_sends();
    t.server_reads();
    t.client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    t.client_sends();
    t.server_reads();
    let writes = t.calls().1;
    let response = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let sent = t.server.send_last(&[io::IoSlice::new(response)], t.now);
    assert_eq!(sent.moved(), Some(response.len()));
    assert_eq!(t.server.close_notify().ok(), Some(()));
    assert_eq!(t.calls().1, writes + 1, "one write for both");
    let written = std::mem::take(&mut t.wire.0.borrow_mut().written);
    let mut rd = &written[..];
    let mut closed = false;
    while !rd.is_empty() {
        t.client.read_tls(&mut rd).unwrap();
        closed |= t.client.process_new_packets().unwrap().peer_has_closed();
    }
    assert!(closed, "the client saw the close_notify");
    let mut got = Vec::new();
    let _ = t.client.reader().read_to_end(&mut got);
    assert_eq!(got, response);
}
