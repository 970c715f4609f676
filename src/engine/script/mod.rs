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

mod front;
mod h2;
mod h2_conn;
mod http;
mod leg;
mod logs;
mod pool;
mod slots;
mod tcp;
mod tls;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::balance::RoundRobin;
use super::buffer::BufferPool;
use super::conn::{Net, Readiness, Transport};
use super::http::HttpSession;
use super::legs::Legs;
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
    /// Writes made as the last before the close ([`Transport::send_final`]).
    pub final_writes: usize,
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

    fn connect_result(&self, _: bool) -> Option<io::Result<()>> {
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

    fn send_final(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.borrow_mut().final_writes += 1;
        self.write_vectored(bufs)
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
    pub h2_rooms: crate::engine::rooms::Rooms,
    pub latency: crate::engine::ports::PortMap<Latency>,
    pub now: Instant,
    /// The leg table the sessions' backend sockets take slots in.
    pub legs: Legs,
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
            h2_rooms: Default::default(),
            latency: Default::default(),
            now: Instant::now(),
            legs: Legs::default(),
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
            legs: &mut self.legs,
            cursor: &mut self.cursor,
            snapshot: &self.snapshot,
            idle: &mut self.idle,
            header_timeout: super::http::HEADER_TIMEOUT,
            scratch: &mut self.scratch,
            exchanges: &mut self.exchanges,
            h2_rooms: &mut self.h2_rooms,
            worker: 0,
            latency: &mut self.latency,
            syslog: None,
        }
    }

    pub fn later(&mut self, d: Duration) {
        self.now += d;
    }
}

pub(super) fn peer() -> SocketAddr {
    "198.51.100.7:40000".parse().unwrap()
}

pub(super) const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
pub(super) const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

/// The requests a backend saw, by their request lines.
pub(super) fn lines(seen: &str) -> Vec<&str> {
    seen.split("\r\n")
        .filter(|l| l.starts_with("GET ") || l.starts_with("POST "))
        .collect()
}
