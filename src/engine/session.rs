//! One proxied TCP connection (`tcp` and `tcp-proxy-v2`): the client socket,
//! the backend socket, and the bytes between them.
//!
//! Stages: `Connecting` (one retry on another backend, `retries 1` +
//! `redispatch`), then `Streaming` until both directions have carried their
//! FIN through, an error resets both, or an idle timeout fires. Buffers come
//! from the worker's pool only while bytes are in flight. The half-close
//! logic is [`crate::proto::pipe`]; the preface is [`crate::proto::proxy_v2`].

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::balance::{self, RoundRobin};
use super::buffer::{Buffer, BufferPool};
use super::token::{EventTarget, Side, SlotId};
use crate::config::ServiceKind;
use crate::metrics::stats::{Latency, Sharded};
use crate::proto::pipe::{Half, Pipe};
use crate::proto::proxy_v2;
use crate::snapshot::{Backend, BackendLease, ServiceSnapshot};
use crate::sys::net::{self, TcpStream};
use crate::sys::poll::{Event, Interest, Registry};

/// Rounds of read/write per event before yielding to other sessions: a bulk
/// transfer must not starve the worker.
const ROUNDS_PER_TURN: usize = 16;
/// Connect attempts per session: the first, plus one redispatch.
const CONNECT_ATTEMPTS: u8 = 2;

/// What the worker should do with the session after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait for events.
    Open,
    /// Still has work; run it again before polling.
    Again,
    /// Finished or failed: remove it.
    Closed(CloseReason),
}

/// Why a session ended, for logs and (later) metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides finished cleanly.
    Done,
    /// The service has no usable backend.
    NoBackend,
    /// Every connect attempt failed.
    ConnectFailed,
    /// A socket error on one side; the other side was reset.
    Reset(Side),
    /// Client or server inactivity.
    IdleTimeout(Side),
    /// This side sent a message body whose framing moirai refuses, after
    /// part of the message was already forwarded: both sides are closed.
    BadFraming(Side),
}

/// What the session needs from its worker for one step.
pub struct Ctx<'a> {
    /// For registering the backend socket.
    pub registry: &'a Registry,
    /// Buffers.
    pub pool: &'a mut BufferPool,
    /// Time of this event batch.
    pub now: Instant,
    /// The session's slot, for its tokens.
    pub id: SlotId,
    /// The worker's round-robin cursor for this service.
    pub cursor: &'a mut RoundRobin,
    /// The worker's snapshot in force. Only looked into once per HTTP
    /// request ([`Ctx::current`]), never per event.
    pub snapshot: &'a crate::snapshot::Snapshot,
    /// Idle keep-alive connections to backends (HTTP).
    pub idle: &'a mut super::pool::IdlePool,
    /// How long an HTTP request head may take once started.
    pub header_timeout: std::time::Duration,
    /// The worker's free HTTP scratch vectors.
    pub scratch: &'a mut Vec<super::http::Scratch>,
    /// Which worker: the shard its counters go to.
    pub worker: usize,
    /// This worker's latencies by service port, handed to the control
    /// thread every second.
    pub latency: &'a mut std::collections::HashMap<u16, Latency>,
    /// Where access lines go; `None` without the `syslog` key, and then no
    /// line is even formatted.
    pub syslog: Option<&'a mut super::syslog::Sink>,
}

impl Ctx<'_> {
    /// The service on `port` now (none when the port is no longer
    /// served): each HTTP request is balanced over this, not over the set
    /// its connection started with.
    pub fn current(&self, port: u16) -> Option<&Arc<ServiceSnapshot>> {
        self.snapshot.service(port)
    }

    /// This worker's latency histograms for the service on `port`.
    #[inline]
    pub fn latency(&mut self, port: u16) -> &mut Latency {
        self.latency.entry(port).or_default()
    }
}

#[derive(Debug)]
enum Stage {
    Connecting {
        attempt: u8,
        deadline: Instant,
        since: Instant,
    },
    Streaming,
}

/// A socket and what its last events said about it.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The peer's FIN (or an error) was already reported by an event.
    pub(super) peer_closed: bool,
    pub(super) last_io: Instant,
    meter: Meter,
    /// Bytes read from and written to this socket, for access lines.
    pub(super) rx: u64,
    pub(super) tx: u64,
    /// TLS over the socket (https types): reads and writes go through it.
    tls: Option<Box<rustls::Connection>>,
}

/// Where a socket's bytes are counted: the service's counters for a client
/// socket, the backend's for a backend socket, in this worker's shard.
#[derive(Debug)]
pub(super) struct Meter {
    stats: Arc<Sharded>,
    worker: usize,
    /// Whether bytes read from this socket travel in the request direction
    /// (a client socket) or the response direction (a backend socket).
    reads_are_requests: bool,
}

impl Meter {
    /// Counting for a client socket of `service`.
    pub(super) fn client(service: &ServiceSnapshot, worker: usize) -> Meter {
        Meter {
            stats: Arc::clone(&service.stats),
            worker,
            reads_are_requests: true,
        }
    }

    /// Counting for a socket to `backend`.
    pub(super) fn backend(backend: &Backend, worker: usize) -> Meter {
        Meter {
            stats: Arc::clone(backend.stats_arc()),
            worker,
            reads_are_requests: false,
        }
    }

    #[inline]
    fn read(&self, n: usize) {
        let c = self.stats.of(self.worker);
        let n = n as u64;
        if self.reads_are_requests {
            c.bytes_in.add(n);
        } else {
            c.bytes_out.add(n);
        }
    }

    #[inline]
    fn wrote(&self, n: usize) {
        let c = self.stats.of(self.worker);
        let n = n as u64;
        if self.reads_are_requests {
            c.bytes_out.add(n);
        } else {
            c.bytes_in.add(n);
        }
    }
}

impl Conn {
    pub(super) fn new(stream: TcpStream, now: Instant, meter: Meter) -> Conn {
        Conn {
            stream,
            readable: false,
            writable: false,
            peer_closed: false,
            last_io: now,
            meter,
            rx: 0,
            tx: 0,
            tls: None,
        }
    }

    /// The same socket, speaking TLS through `tls`.
    pub(super) fn with_tls(mut self, tls: rustls::Connection) -> Conn {
        self.tls = Some(Box::new(tls));
        self
    }

    /// Whether this socket speaks TLS.
    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether TLS records are waiting to be written to the socket.
    pub(super) fn pending_out(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes waiting TLS records; `Ok(true)` when none are left.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        let done = tls_flush(&mut self.stream, tls)?;
        if !done {
            self.writable = false;
        }
        Ok(done)
    }

    /// Moves a client-side TLS handshake on: `Ok(true)` once it is done
    /// (at once for plain sockets), `Ok(false)` while it waits for the
    /// peer, an error if it failed (a certificate that does not verify is
    /// `InvalidData`, with rustls's reason).
    pub(super) fn handshake(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        loop {
            if !tls_flush(&mut self.stream, tls)? {
                self.writable = false;
            }
            if !tls.is_handshaking() {
                return Ok(true);
            }
            if !tls.wants_read() {
                return Ok(false);
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        let _ = tls_flush(&mut self.stream, tls);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends the sending direction: a TLS close_notify first, then the FIN.
    pub(super) fn shutdown_write(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            // Records that cannot go now stay queued behind the data; the
            // session flushes them before it closes, and the FIN follows.
            if !tls_flush(&mut self.stream, tls)? {
                self.writable = false;
                return Ok(());
            }
        }
        self.stream.shutdown(Shutdown::Write)
    }

    /// Reads, counting what arrived.
    #[inline]
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = match self.tls.as_deref_mut() {
            None => self.stream.read(buf),
            Some(tls) => tls_read(&mut self.stream, tls, buf),
        };
        if let Ok(n) = r {
            self.meter.read(n);
            self.rx += n as u64;
        }
        r
    }

    /// Writes, counting what left.
    #[inline]
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match self.tls.as_deref_mut() {
            None => self.stream.write(buf),
            Some(tls) => tls_write(&mut self.stream, tls, &[IoSlice::new(buf)]),
        };
        if let Ok(n) = r {
            self.meter.wrote(n);
            self.tx += n as u64;
        }
        r
    }

    /// Writes several slices at once, counting what left.
    #[inline]
    pub(super) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let r = match self.tls.as_deref_mut() {
            None => self.stream.write_vectored(bufs),
            Some(tls) => tls_write(&mut self.stream, tls, bufs),
        };
        if let Ok(n) = r {
            self.meter.wrote(n);
            self.tx += n as u64;
        }
        r
    }

    pub(super) fn note(&mut self, ev: &Event) {
        // Errors and hang-ups surface through the next read or write.
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.readable = true;
        }
        if ev.is_read_closed() || ev.is_error() {
            self.peer_closed = true;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            self.writable = true;
        }
    }
}

/// Writes TLS records until none wait (`Ok(true)`) or the socket is full.
fn tls_flush(sock: &mut TcpStream, tls: &mut rustls::Connection) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Plaintext from a TLS socket, with the same contract as a socket read:
/// `Ok(0)` at the end (close_notify, or a FIN: many peers skip the alert),
/// `WouldBlock` when nothing is buffered and the socket is drained. A short
/// read means the socket is drained, as callers assume. Handshake records
/// are answered on the way.
fn tls_read(
    sock: &mut TcpStream,
    tls: &mut rustls::Connection,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut n = 0;
    let mut eof = false;
    loop {
        match tls.reader().read(&mut buf[n..]) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                n += k;
                if n == buf.len() {
                    return Ok(n);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
            Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
        }
        if eof {
            return Ok(n);
        }
        match tls.read_tls(sock) {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Handshake answers (or alerts) go out now; the rest waits
                // for the socket to be writable.
                let _ = tls_flush(sock, tls);
                return if n > 0 { Ok(n) } else { Err(e) };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
        }
        if let Err(e) = tls.process_new_packets() {
            // Send the alert that says why, then fail the connection.
            let _ = tls_flush(sock, tls);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if tls.wants_write() {
            let _ = tls_flush(sock, tls);
        }
    }
}

/// Plaintext into a TLS socket. Records still waiting from the last write
/// go first; while they cannot, nothing new is taken (`WouldBlock`), so
/// what is buffered in rustls stays within one write's worth.
fn tls_write(
    sock: &mut TcpStream,
    tls: &mut rustls::Connection,
    bufs: &[IoSlice<'_>],
) -> io::Result<usize> {
    if !tls_flush(sock, tls)? {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let n = tls.writer().write_vectored(bufs)?;
    if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    // Records that do not fit now are sent by the next write or flush.
    tls_flush(sock, tls)?;
    Ok(n)
}

/// A failed read or write, and on which socket.
struct Fault(Side);

/// The PROXY v2 header and how much of it was sent.
#[derive(Debug)]
pub(super) struct Preface {
    header: proxy_v2::Header,
    sent: usize,
}

impl Preface {
    fn rest(&self) -> &[u8] {
        &self.header.as_bytes()[self.sent..]
    }
}

/// One proxied connection.
#[derive(Debug)]
pub struct Session {
    service: Arc<ServiceSnapshot>,
    client: Conn,
    backend: Option<Conn>,
    lease: Option<BackendLease>,
    stage: Stage,
    up: Option<Buffer>,
    down: Option<Buffer>,
    pipe: Pipe,
    preface: Option<Preface>,
    /// Earliest wheel entry pending for this session, if any.
    armed: Option<Instant>,
    /// The client, and when it was accepted, for the access line.
    peer: SocketAddr,
    accepted: Instant,
    /// How long the successful backend connect took.
    connect_took: Option<std::time::Duration>,
}

impl Session {
    /// Starts a session for an accepted client: registers it and begins the
    /// backend connect. `local` is the address the client connected to.
    pub fn start(
        ctx: &mut Ctx<'_>,
        service: Arc<ServiceSnapshot>,
        mut client: TcpStream,
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Result<Session, CloseReason> {
        let _ = client.set_nodelay(true);
        ctx.registry
            .register(
                &mut client,
                EventTarget::Session(ctx.id, Side::Client).token(),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|_| CloseReason::Reset(Side::Client))?;
        let preface = match (service.spec.kind, local) {
            (ServiceKind::TcpProxyV2, Some(local)) => Some(Preface {
                header: proxy_v2::encode(peer, local),
                sent: 0,
            }),
            _ => None,
        };
        let meter = Meter::client(&service, ctx.worker);
        let mut s = Session {
            client: Conn::new(client, ctx.now, meter),
            backend: None,
            lease: None,
            stage: Stage::Streaming,
            up: None,
            down: None,
            pipe: Pipe::default(),
            preface,
            armed: None,
            service,
            peer,
            accepted: ctx.now,
            connect_took: None,
        };
        s.connect(ctx, 0, None)?;
        Ok(s)
    }

    /// Opens a connection to a backend, trying another one if the connect
    /// fails at once.
    fn connect(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut attempt: u8,
        mut avoid: Option<SocketAddr>,
    ) -> Result<(), CloseReason> {
        self.backend = None;
        self.lease = None;
        while attempt < CONNECT_ATTEMPTS {
            let backends = &self.service.backends;
            // With one backend, the retry goes to the same one.
            let Some(b) = balance::pick(backends, ctx.cursor, avoid)
                .or_else(|| balance::pick(backends, ctx.cursor, None))
            else {
                return Err(CloseReason::NoBackend);
            };
            let lease = BackendLease::acquire(b);
            attempt += 1;
            match net::connect(b.addr()) {
                Ok(mut stream) => {
                    if ctx
                        .registry
                        .register(
                            &mut stream,
                            EventTarget::Session(ctx.id, Side::Backend).token(),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        avoid = Some(b.addr());
                        continue;
                    }
                    self.backend = Some(Conn::new(stream, ctx.now, Meter::backend(b, ctx.worker)));
                    self.lease = Some(lease);
                    self.stage = Stage::Connecting {
                        attempt,
                        deadline: ctx.now + self.service.timeouts.connect,
                        since: ctx.now,
                    };
                    return Ok(());
                }
                Err(e) => {
                    log::debug!("connect to {} failed at once: {e}", b.addr());
                    b.stats().of(ctx.worker).connect_errors.add(1);
                    avoid = Some(b.addr());
                }
            }
        }
        Err(CloseReason::ConnectFailed)
    }

    /// The backend connect failed or timed out: redispatch once.
    fn retry(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let Stage::Connecting { attempt, .. } = self.stage else {
            return Step::Open;
        };
        let failed = self.lease.as_ref().map(|l| l.backend().addr());
        if let Some(l) = &self.lease {
            log::debug!(
                "backend {} did not accept a connection (attempt {attempt})",
                l.backend().addr()
            );
            let c = l.backend().stats().of(ctx.worker);
            c.connect_errors.add(1);
            if attempt < CONNECT_ATTEMPTS {
                c.retries.add(1);
                self.service.stats.of(ctx.worker).retries.add(1);
            }
        }
        match self.connect(ctx, attempt, failed) {
            Ok(()) => Step::Open,
            Err(r) => Step::Closed(r),
        }
    }

    /// Records readiness from an event.
    pub fn note(&mut self, side: Side, ev: &Event) {
        match side {
            Side::Client => self.client.note(ev),
            Side::Backend => {
                if let Some(b) = &mut self.backend {
                    b.note(ev);
                }
            }
        }
    }

    /// Handles an event: completes the connect, or moves bytes.
    pub fn on_event(&mut self, ctx: &mut Ctx<'_>, side: Side, ev: &Event) -> Step {
        self.note(side, ev);
        if let Stage::Connecting { .. } = self.stage {
            if side == Side::Client {
                return Step::Open;
            }
            match self.backend.as_ref().and_then(connect_result) {
                None => return Step::Open,
                Some(Err(e)) => {
                    if let Some(l) = &self.lease {
                        log::debug!("connect to {} failed: {e}", l.backend().addr());
                    }
                    return self.retry(ctx);
                }
                Some(Ok(())) => {
                    if let Stage::Connecting { since, .. } = self.stage {
                        let took = ctx.now.saturating_duration_since(since);
                        self.connect_took = Some(took);
                        crate::metrics::stats::record(
                            &mut ctx.latency(self.service.port()).connect,
                            took,
                        );
                    }
                    if let Some(l) = &self.lease {
                        l.backend().stats().of(ctx.worker).opened.add(1);
                    }
                    self.stage = Stage::Streaming;
                    if let Some(b) = &mut self.backend {
                        let _ = b.stream.set_nodelay(true);
                        b.last_io = ctx.now;
                    }
                    self.client.last_io = ctx.now;
                }
            }
        }
        self.drive(ctx)
    }

    /// Moves bytes both ways until nothing more can move now.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if let Stage::Connecting { .. } = self.stage {
            return Step::Open;
        }
        let Some(backend) = self.backend.as_mut() else {
            return Step::Closed(CloseReason::ConnectFailed);
        };
        for _ in 0..ROUNDS_PER_TURN {
            let streams = Streams {
                client: &mut self.client,
                backend: &mut *backend,
                up: &mut self.up,
                down: &mut self.down,
                pipe: &mut self.pipe,
                preface: self.preface.as_mut(),
            };
            match pipe_round(streams, ctx) {
                Ok(true) => continue,
                Ok(false) => return Step::Open,
                Err(step) => return step,
            }
        }
        Step::Again
    }

    /// When the session must be looked at again if nothing happens.
    pub fn deadline(&self) -> Instant {
        match self.stage {
            Stage::Connecting { deadline, .. } => deadline,
            Stage::Streaming => {
                idle_deadline(&self.client, self.backend.as_ref(), &self.service.timeouts)
            }
        }
    }

    /// Whether a wheel entry must be added for the current deadline; marks
    /// it armed if so.
    pub fn needs_timer(&mut self) -> Option<Instant> {
        let d = self.deadline();
        super::timer::arm(&mut self.armed, d)
    }

    /// A wheel entry fired: time out, or say when to look again.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>) -> Step {
        self.armed = None;
        if ctx.now < self.deadline() {
            return Step::Open;
        }
        match self.stage {
            Stage::Connecting { .. } => self.retry(ctx),
            Stage::Streaming => {
                let t = &self.service.timeouts;
                let side = if ctx.now >= self.client.last_io + t.client {
                    Side::Client
                } else {
                    Side::Backend
                };
                Step::Closed(CloseReason::IdleTimeout(side))
            }
        }
    }

    /// The listen port of the session's service.
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// The session's service.
    pub fn service(&self) -> &ServiceSnapshot {
        &self.service
    }

    /// The backend it uses or tries, if any.
    pub fn backend(&self) -> Option<&Backend> {
        self.lease.as_ref().map(|l| &**l.backend())
    }

    /// The connection's access line, sent as it closes.
    pub fn log_close(&self, sink: &mut super::syslog::Sink, r: CloseReason, now: Instant) {
        sink.access(&crate::proto::syslog::Access {
            kind: "tcp",
            client: self.peer,
            service: self.service.port(),
            frontend: self.service.index,
            tls: false,
            server: self.lease.as_ref().map_or(0, |l| l.backend().slot()),
            version: "",
            backend: self.lease.as_ref().map(|l| l.backend().addr()),
            status: None,
            request: None,
            bytes: (self.client.rx, self.client.tx),
            t_request: None,
            t_connect: self.connect_took,
            t_response: None,
            t_total: now.saturating_duration_since(self.accepted),
            term: super::worker::termination(r),
        });
    }

    /// Gives the session's buffers back before it is dropped.
    pub fn release(&mut self, pool: &mut BufferPool) {
        for b in [self.up.take(), self.down.take()].into_iter().flatten() {
            pool.give(b);
        }
    }

    /// Buffers held right now (0 for an idle session).
    pub fn buffers_held(&self) -> usize {
        usize::from(self.up.is_some()) + usize::from(self.down.is_some())
    }
}

/// Both directions of a byte pipe, borrowed for one round.
pub(super) struct Streams<'a> {
    pub(super) client: &'a mut Conn,
    pub(super) backend: &'a mut Conn,
    pub(super) up: &'a mut Option<Buffer>,
    pub(super) down: &'a mut Option<Buffer>,
    pub(super) pipe: &'a mut Pipe,
    pub(super) preface: Option<&'a mut Preface>,
}

/// One round of moving bytes both ways: `Ok(progress)`, or the step that
/// ends the pipe: done when both FINs went through, or a reset passed on to
/// the side that did not fail.
pub(super) fn pipe_round(s: Streams<'_>, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
    let up = transfer(
        s.client,
        s.backend,
        s.up,
        &mut s.pipe.up,
        s.preface,
        ctx,
        (Side::Client, Side::Backend),
    );
    let down = transfer(
        s.backend,
        s.client,
        s.down,
        &mut s.pipe.down,
        None,
        ctx,
        (Side::Backend, Side::Client),
    );
    match (up, down) {
        (Err(Fault(side)), _) | (_, Err(Fault(side))) => {
            match side {
                Side::Client => net::set_reset_on_close(&s.backend.stream),
                Side::Backend => net::set_reset_on_close(&s.client.stream),
            }
            Err(Step::Closed(CloseReason::Reset(side)))
        }
        _ if s.pipe.finished() => Err(Step::Closed(CloseReason::Done)),
        (Ok(a), Ok(b)) => Ok(a || b),
    }
}

/// When a moving connection times out for inactivity: the client side after
/// the client timeout, the backend side after the server timeout.
pub(super) fn idle_deadline(
    client: &Conn,
    backend: Option<&Conn>,
    t: &crate::config::Timeouts,
) -> Instant {
    let c = client.last_io + t.client;
    backend.map_or(c, |b| c.min(b.last_io + t.server))
}

/// How a non-blocking connect ended: None while it is still in progress
/// (a spurious wake-up), else success or the error.
pub(super) fn connect_result(b: &Conn) -> Option<io::Result<()>> {
    match b.stream.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match b.stream.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
        Err(e) => Some(Err(e)),
    }
}

/// One direction: flush what is buffered (preface first), read more, and
/// carry a FIN through once everything before it is delivered.
fn transfer(
    src: &mut Conn,
    dst: &mut Conn,
    slot: &mut Option<Buffer>,
    half: &mut Half,
    mut preface: Option<&mut Preface>,
    ctx: &mut Ctx<'_>,
    (src_side, dst_side): (Side, Side),
) -> Result<bool, Fault> {
    let mut progress = false;
    if dst.writable && dst.pending_out() {
        match dst.flush() {
            Ok(done) => progress |= done,
            Err(_) => return Err(Fault(dst_side)),
        }
    }
    let pre_len = preface.as_ref().map_or(0, |p| p.rest().len());
    let buf_len = slot.as_ref().map_or(0, Buffer::len);

    if dst.writable && pre_len + buf_len > 0 {
        let empty: &[u8] = &[];
        let pending = slot.as_ref().map_or(empty, Buffer::pending);
        let res = match preface.as_ref() {
            Some(p) if pre_len > 0 => {
                dst.write_vectored(&[IoSlice::new(p.rest()), IoSlice::new(pending)])
            }
            _ => dst.write(pending),
        };
        match res {
            Ok(0) => return Err(Fault(dst_side)),
            Ok(mut n) => {
                // A short write means the socket buffer is full.
                if n < pre_len + buf_len {
                    dst.writable = false;
                }
                if let Some(p) = preface.as_mut() {
                    let k = n.min(pre_len);
                    p.sent += k;
                    n -= k;
                }
                if let Some(b) = slot.as_mut() {
                    b.consumed(n);
                }
                dst.last_io = ctx.now;
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
            Err(_) => return Err(Fault(dst_side)),
        }
    }

    if src.readable && !half.eof() {
        let b = slot.get_or_insert_with(|| ctx.pool.take());
        if !b.is_full() {
            let room = b.spare().len();
            match src.read(b.spare()) {
                Ok(0) => {
                    half.saw_eof();
                    progress = true;
                }
                Ok(n) => {
                    // A short read drained the socket: skip the read that
                    // would only say WouldBlock. Edge-triggered epoll reports
                    // every later arrival, and one-shot event ports re-arm
                    // after each delivery, so nothing is missed -- except a
                    // FIN that came with the same event: then read on to
                    // see the EOF.
                    if n < room && !src.peer_closed {
                        src.readable = false;
                    }
                    b.filled(n);
                    src.last_io = ctx.now;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                Err(_) => return Err(Fault(src_side)),
            }
        }
    }
    if slot.as_ref().is_some_and(Buffer::is_empty) {
        if let Some(b) = slot.take() {
            ctx.pool.give(b);
        }
    }

    let pre_left = preface.as_ref().map_or(0, |p| p.rest().len());
    let tls_left = usize::from(dst.pending_out());
    if half.should_shutdown(pre_left + slot.as_ref().map_or(0, Buffer::len) + tls_left) {
        match dst.shutdown_write() {
            Ok(()) => {}
            // The peer already went away; the next read or write says so.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(_) => return Err(Fault(dst_side)),
        }
        half.did_shutdown();
        progress = true;
    }
    Ok(progress)
}
