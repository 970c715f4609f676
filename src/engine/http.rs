//! One HTTP/1.x client connection (`http`): requests parsed and checked by
//! [`crate::proto::http1`], balanced one by one (or kept on their sticky
//! backend), forwarded with `X-Forwarded-*` injected by vectored writes, and
//! answered in order. Backend connections are kept alive in the worker's
//! [`IdlePool`](super::pool::IdlePool) between requests.
//!
//! Stages of one exchange: `ReadHead` → `Connect` (skipped with a pooled
//! connection) → `SendHead` → `Exchange` (request body up, response down)
//! → back to `ReadHead` for the next request, or `Tunnel` after a `101`, or
//! `Error` (a canned response, then a lingering close).

use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::balance;
use super::buffer::{Buffer, BufferPool};
use super::session::{
    connect_result, idle_deadline, pipe_round, CloseReason, Conn, Ctx, Meter, Step, Streams,
};
use super::syslog::Sink;
use super::token::{EventTarget, Side};
use crate::metrics::stats::record;
use crate::proto::cookie::COOKIE_NAME;
use crate::proto::http1::body::{self, Body, Framing, RelayError};
use crate::proto::http1::errors::Status;
use crate::proto::http1::request::{self, RequestHead};
use crate::proto::http1::response::{self, ResponseHead};
use crate::proto::http1::{head_slices, virtual_len, HeadError, MAX_SLICES};
use crate::proto::pipe::Pipe;
use crate::proto::syslog::{Access, Termination};
use crate::snapshot::{Backend, BackendLease, ServiceSnapshot};
use crate::sys::net::{self, TcpStream};
use crate::sys::poll::{Event, Interest};

/// How long a request head may take once its first byte arrived, unless
/// configured otherwise.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an error response waits for the client to stop sending before
/// the connection is closed (closing with unread input would reset it and
/// could destroy the response).
const LINGER: Duration = Duration::from_secs(1);
const ROUNDS_PER_TURN: usize = 16;
const CONNECT_ATTEMPTS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    ReadHead,
    Connect {
        attempt: u8,
        deadline: Instant,
        since: Instant,
    },
    SendHead,
    Exchange,
    Tunnel,
    Error,
    Linger {
        until: Instant,
    },
}

/// One client connection of an `http` service.
#[derive(Debug)]
pub struct HttpSession {
    service: Arc<ServiceSnapshot>,
    peer: SocketAddr,
    client: Conn,
    backend: Option<Conn>,
    lease: Option<BackendLease>,
    stage: Stage,
    /// Bytes from the client (request heads and bodies).
    cbuf: Option<Buffer>,
    /// Bytes from the backend (response heads and bodies).
    bbuf: Option<Buffer>,
    req: Option<RequestHead>,
    /// Reusable vectors for heads (from the worker's free list).
    s: Scratch,
    req_body: Body,
    /// Bytes of the outgoing head (request or response) already written.
    head_sent: usize,
    resp: Option<ResponseHead>,
    resp_body: Body,
    /// The response head went out: the client saw a status.
    resp_started: bool,
    /// First byte of the current request head, for the header timeout.
    head_since: Option<Instant>,
    /// The sticky cookie the client sent, if any.
    sticky: Option<[u8; 16]>,
    /// The worker is draining: no further request on this connection.
    draining: bool,
    error: Option<(Status, usize)>,
    tunnel: Pipe,
    client_eof: bool,
    backend_eof: bool,
    armed: Option<Instant>,
    header_timeout: Duration,
    /// The `Connection` line sent with the current request.
    conn_line: &'static [u8],
    /// The last backend connection, kept between this client's requests
    /// (with its address) while it is idle.
    parked: Option<(SocketAddr, Conn)>,
    /// When the current request's head was complete.
    req_since: Instant,
    /// When its first byte came.
    req_start: Instant,
    /// How long this request's backend connect took (none when a kept
    /// connection was reused).
    connect_took: Option<Duration>,
    /// When the response head arrived.
    resp_at: Option<Instant>,
    /// A response moirai makes itself (an ACME challenge), sent like an
    /// error response: then the connection closes.
    local: Option<(u16, Vec<u8>)>,
    /// Set when the session ended but TLS records are still to be sent.
    closing: Option<CloseReason>,
    /// "METHOD target" of the current request, kept only for syslog.
    req_line: String,
    /// Client bytes (read, written) when the current request began.
    marks: (u64, u64),
    /// The worker, whose counter shard this session writes.
    worker: usize,
    /// When the client connected: its first request head must be complete
    /// a header timeout after this (HAProxy's `timeout http-request`).
    accepted: Instant,
    /// Requests answered on this connection. Only after the first may a
    /// request take another client's idle backend connection
    /// (`http-reuse safe`).
    served: u32,
    /// The current backend connection was reused (parked or pooled).
    reused: bool,
    /// The current request was already sent again once.
    retried: bool,
    /// Bytes of the current request (head and whole body) kept at the
    /// front of the client buffer until the backend answers, so it can be
    /// sent again if a reused connection turns out dead.
    replay: Option<usize>,
}

impl HttpSession {
    /// A session for an accepted client, registered and waiting for its
    /// first request.
    pub fn start(
        ctx: &mut Ctx<'_>,
        service: Arc<ServiceSnapshot>,
        mut client: TcpStream,
        peer: SocketAddr,
    ) -> Result<HttpSession, CloseReason> {
        let _ = client.set_nodelay(true);
        ctx.registry
            .register(
                &mut client,
                EventTarget::Session(ctx.id, Side::Client).token(),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|_| CloseReason::Reset(Side::Client))?;
        let meter = Meter::client(&service, ctx.worker);
        let mut client = Conn::new(client, ctx.now, meter);
        if let Some(tls) = &service.tls {
            let server = rustls::ServerConnection::new(Arc::clone(&tls.server))
                .map_err(|_| CloseReason::Reset(Side::Client))?;
            client = client.with_tls(server.into());
        }
        Ok(HttpSession {
            service,
            peer,
            client,
            backend: None,
            lease: None,
            stage: Stage::ReadHead,
            cbuf: None,
            bbuf: None,
            req: None,
            s: ctx.scratch.pop().unwrap_or_default(),
            req_body: Body::new(Framing::None),
            head_sent: 0,
            resp: None,
            resp_body: Body::new(Framing::None),
            resp_started: false,
            head_since: None,
            sticky: None,
            draining: false,
            error: None,
            tunnel: Pipe::default(),
            client_eof: false,
            backend_eof: false,
            armed: None,
            header_timeout: ctx.header_timeout,
            conn_line: b"Connection: keep-alive\r\n",
            parked: None,
            req_since: ctx.now,
            worker: ctx.worker,
            req_start: ctx.now,
            connect_took: None,
            resp_at: None,
            req_line: String::new(),
            marks: (0, 0),
            closing: None,
            local: None,
            accepted: ctx.now,
            served: 0,
            reused: false,
            retried: false,
            replay: None,
        })
    }

    /// The listen port of the session's service.
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// The access line of the current request, with what is known now.
    fn access(&self, status: Option<u16>, term: Termination, now: Instant) -> Access<'_> {
        let (method, target) = self.req_line.split_once(' ').unwrap_or(("-", "-"));
        Access {
            kind: "http",
            client: self.peer,
            service: self.service.port(),
            frontend: self.service.index,
            tls: self.service.spec.kind.is_tls(),
            server: self.lease.as_ref().map_or(0, |l| l.backend().slot()),
            version: if self.req.as_ref().is_some_and(|r| !r.http11) {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            backend: self.backend_addr(),
            status,
            request: (!self.req_line.is_empty()).then_some((method, target)),
            bytes: (self.client.rx - self.marks.0, self.client.tx - self.marks.1),
            t_request: None,
            t_connect: self.connect_took,
            t_response: self
                .resp_at
                .map(|t| t.saturating_duration_since(self.req_since)),
            t_total: now.saturating_duration_since(self.req_start),
            term,
        }
    }

    /// Sends the access line of a completed request.
    fn log_request(
        &mut self,
        sink: &mut Sink,
        status: Option<u16>,
        term: Termination,
        now: Instant,
    ) {
        sink.access(&Access {
            t_request: Some(self.req_since.saturating_duration_since(self.req_start)),
            ..self.access(status, term, now)
        });
        self.marks = (self.client.rx, self.client.tx);
        self.req_line.clear();
    }

    /// The access line a closing session still owes: the request in
    /// progress, or the answer moirai made itself. An idle keep-alive
    /// connection closing owes none.
    pub fn log_close(&self, sink: &mut Sink, r: CloseReason, now: Instant) {
        let (status, term) = match (&self.local, self.error, r) {
            (Some((code, _)), _, _) => (Some(*code), Termination::NORMAL),
            (None, Some((status, _)), _) => (
                Some(status.code()),
                Termination(match status.code() {
                    503 => *b"SC",
                    504 => *b"sH",
                    502 => *b"SH",
                    408 => *b"cR",
                    _ => *b"PR",
                }),
            ),
            (None, None, r) if self.req.is_some() => (None, super::worker::termination(r)),
            _ => return,
        };
        sink.access(&self.access(status, term, now));
    }

    /// The session's service.
    pub fn service(&self) -> &ServiceSnapshot {
        &self.service
    }

    /// The balancer is stopping: the exchange in progress is the last
    /// (its response says `Connection: close` if it has not started).
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// Waiting for a request that has not begun: closing it now loses
    /// nothing.
    pub fn is_idle(&self) -> bool {
        self.stage == Stage::ReadHead
            && self.head_since.is_none()
            && self.served > 0
            && self.cbuf.as_ref().is_none_or(Buffer::is_empty)
    }

    /// The backend of the request in progress, if any.
    pub fn backend(&self) -> Option<&Backend> {
        self.lease.as_ref().map(|l| &**l.backend())
    }

    /// Handles an event on one side.
    pub fn on_event(&mut self, ctx: &mut Ctx<'_>, side: Side, ev: &Event) -> Step {
        match side {
            Side::Client => self.client.note(ev),
            Side::Backend => match &mut self.backend {
                Some(b) => b.note(ev),
                None => {
                    // An idle backend connection has nothing to say: any
                    // input or hang-up means the backend is closing it.
                    if self.parked.is_some()
                        && (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                    {
                        self.parked = None;
                    }
                }
            },
        }
        if let Stage::Connect { .. } = self.stage {
            if side == Side::Backend {
                match self.backend.as_ref().and_then(connect_result) {
                    None => return Step::Open,
                    Some(Err(e)) => {
                        log::debug!("http: connect to {:?} failed: {e}", self.backend_addr());
                        return self.redispatch(ctx);
                    }
                    Some(Ok(())) => {
                        // https: the TLS handshake belongs to the connect;
                        // a backend failing it (verification included) is
                        // a failed connect, retried elsewhere, then 503.
                        match self.backend.as_mut().map(Conn::handshake) {
                            Some(Ok(false)) => return Step::Open,
                            Some(Err(e)) => {
                                log::warn!(
                                    "https: TLS with backend {:?} failed: {e}",
                                    self.backend_addr()
                                );
                                return self.redispatch(ctx);
                            }
                            _ => {}
                        }
                        if let Some(b) = &mut self.backend {
                            let _ = b.stream.set_nodelay(true);
                            b.last_io = ctx.now;
                        }
                        if let Stage::Connect { since, .. } = self.stage {
                            let took = ctx.now.saturating_duration_since(since);
                            self.connect_took = Some(took);
                            record(&mut ctx.latency(self.port()).connect, took);
                        }
                        if let Some(l) = &self.lease {
                            l.backend().stats().of(ctx.worker).opened.add(1);
                        }
                        self.stage = Stage::SendHead;
                    }
                }
            }
        }
        self.drive(ctx)
    }

    fn backend_addr(&self) -> Option<SocketAddr> {
        self.lease.as_ref().map(|l| l.backend().addr())
    }

    /// Runs the session until nothing more can happen now.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if let Some(reason) = self.closing {
            return self.close_after_flush(reason);
        }
        // TLS records left over from earlier writes go first: handshake
        // flights, the tail of a response.
        if self.client.writable && self.client.pending_out() && self.client.flush().is_err() {
            return Step::Closed(CloseReason::Reset(Side::Client));
        }
        if let Some(b) = self.backend.as_mut() {
            if b.writable && b.pending_out() && b.flush().is_err() {
                return Step::Closed(CloseReason::Reset(Side::Backend));
            }
        }
        for _ in 0..ROUNDS_PER_TURN {
            let r = match self.stage {
                Stage::ReadHead => self.read_head(ctx),
                Stage::Connect { .. } => return Step::Open,
                Stage::SendHead => self.send_head(ctx),
                Stage::Exchange => self.exchange(ctx),
                Stage::Tunnel => self.tunnel(ctx),
                Stage::Error => self.write_error(ctx),
                Stage::Linger { .. } => self.linger(ctx),
            };
            match r {
                Ok(true) => continue,
                Ok(false) => return Step::Open,
                // Everything was written to rustls; the records still have
                // to reach the socket before it closes.
                Err(Step::Closed(reason))
                    if self.client.pending_out() && reason != CloseReason::Reset(Side::Client) =>
                {
                    self.closing = Some(reason);
                    return self.close_after_flush(reason);
                }
                Err(step) => return step,
            }
        }
        Step::Again
    }

    /// Closes once the client's TLS records are all out.
    fn close_after_flush(&mut self, reason: CloseReason) -> Step {
        match self.client.flush() {
            Ok(true) => Step::Closed(reason),
            Ok(false) => Step::Open,
            Err(_) => Step::Closed(CloseReason::Reset(Side::Client)),
        }
    }

    /// Answers with `response` (made here, not by a backend), then closes.
    fn answer_locally(&mut self, (code, response): (u16, Vec<u8>)) -> Result<bool, Step> {
        self.service.stats.of(self.worker).response(code);
        self.local = Some((code, response));
        // The error stage writes it (`write_error` prefers `local`) and
        // closes; the status slot only carries the bytes sent.
        self.error = Some((Status::BadRequest, 0));
        self.stage = Stage::Error;
        Ok(true)
    }

    /// Starts answering with `status` and closing.
    fn fail(&mut self, status: Status) -> Result<bool, Step> {
        if self.resp_started {
            // The client already has a status line: all we can do is cut.
            return Err(Step::Closed(CloseReason::Reset(Side::Backend)));
        }
        log::debug!(
            "http: port {}: {} for {}",
            self.port(),
            status.code(),
            self.peer
        );
        self.backend = None;
        self.lease = None;
        let c = self.service.stats.of(self.worker);
        c.response(status.code());
        c.own[status.index()].add(1);
        self.error = Some((status, 0));
        self.stage = Stage::Error;
        Ok(true)
    }

    // ---- reading a request head -------------------------------------

    /// Reads what the client sent into its buffer; true if anything (data
    /// or EOF) arrived.
    fn fill_client(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        match fill(&mut self.client, &mut self.cbuf, ctx) {
            Ok(Fill::Data) => Ok(true),
            Ok(Fill::Eof) => {
                self.client_eof = true;
                Ok(true)
            }
            Ok(Fill::Nothing) => Ok(false),
            Err(_) => Err(Step::Closed(CloseReason::Reset(Side::Client))),
        }
    }

    fn read_head(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        let mut progress = false;
        let pending = self.cbuf.as_ref().map_or(0, Buffer::len);
        if pending == 0 || self.cbuf.as_ref().is_some_and(|b| !b.is_full()) {
            progress |= self.fill_client(ctx)?;
        }
        let Some(buf) = self.cbuf.as_ref() else {
            return if self.client_eof {
                Err(Step::Closed(CloseReason::Done))
            } else {
                Ok(progress)
            };
        };
        if buf.is_empty() {
            return if self.client_eof {
                Err(Step::Closed(CloseReason::Done))
            } else {
                Ok(progress)
            };
        }
        self.head_since.get_or_insert(ctx.now);
        let blank = request::leading_empty_lines(buf.pending());
        if blank > 0 {
            // Never forwarded (RFC 9112 §2.2).
            if let Some(b) = self.cbuf.as_mut() {
                b.consumed(blank);
            }
            release_if_empty(&mut self.cbuf, ctx.pool);
            return Ok(true);
        }
        match request::parse(buf.pending(), &mut self.s.req_drop, &mut self.s.req_inject) {
            Ok(Some(head)) => {
                if ctx.syslog.is_some() {
                    keep_request_line(&mut self.req_line, buf.pending());
                }
                if !self.service.acme.is_empty() {
                    if let Some(token) = acme_token(buf.pending()) {
                        let answer = acme_answer(self.service.acme.get(token));
                        return self.answer_locally(answer);
                    }
                }
                self.begin_request(ctx, head)?;
                Ok(true)
            }
            Ok(None) if buf.is_full() => self.fail(Status::HeaderTooLarge),
            Ok(None) if self.client_eof => Err(Step::Closed(CloseReason::Done)),
            Ok(None) => Ok(progress),
            Err(HeadError::TooLarge) => self.fail(Status::HeaderTooLarge),
            Err(HeadError::NotImplemented(_)) => self.fail(Status::NotImplemented),
            Err(HeadError::Malformed(why)) => {
                log::debug!(
                    "http: port {}: bad request from {}: {why}",
                    self.port(),
                    self.peer
                );
                self.fail(Status::BadRequest)
            }
        }
    }

    /// A complete, valid head: add our lines, choose a backend.
    fn begin_request(&mut self, ctx: &mut Ctx<'_>, head: RequestHead) -> Result<(), Step> {
        // Every request is balanced over the worker's current set, as
        // HAProxy balances each request: a backend removed or marked down
        // since the connection opened gets nothing more from it.
        match ctx.current(self.port()) {
            Some(cur) if cur.spec.kind == self.service.spec.kind => {
                if !Arc::ptr_eq(cur, &self.service) {
                    self.service = Arc::clone(cur);
                }
            }
            // The port serves something else now, or nothing: this
            // connection belongs to a configuration that is gone.
            _ => {
                self.req = Some(head);
                self.fail(Status::Unavailable)?;
                return Ok(());
            }
        }
        // req_inject may hold the client's other cookies; the forwarding
        // lines are formatted once per connection.
        if self.s.fwd.is_empty() {
            let ip = self.peer.ip().to_canonical();
            let _ = write!(
                self.s.fwd,
                "X-Forwarded-For: {ip}\r\nX-Forwarded-Proto: {}\r\nX-Forwarded-Port: {}\r\n",
                if self.client.is_tls() {
                    "https"
                } else {
                    "http"
                },
                self.port()
            );
        }
        self.conn_line = if head.upgrade {
            b"Connection: upgrade\r\n"
        } else {
            b"Connection: keep-alive\r\n"
        };
        self.sticky = head.sticky;
        self.req_since = ctx.now;
        self.req_start = self.head_since.unwrap_or(ctx.now);
        self.connect_took = None;
        self.resp_at = None;
        self.req_body = Body::new(head.framing);
        self.req = Some(head);
        self.head_sent = 0;
        self.resp = None;
        self.resp_started = false;
        self.backend_eof = false;
        self.retried = false;
        self.replay = None;
        self.choose_backend(ctx, None)
    }

    /// Sticky backend if the cookie names a usable one, else the least
    /// loaded; a pooled connection if there is one, else a connect.
    fn choose_backend(&mut self, ctx: &mut Ctx<'_>, avoid: Option<SocketAddr>) -> Result<(), Step> {
        let backends = &self.service.backends;
        let sticky = self.sticky.and_then(|v| {
            backends
                .iter()
                .find(|b| Some(b.addr()) != avoid && b.named_by(&v))
        });
        // Among the least loaded, prefer the backend this client's previous
        // request used: its connection is still open here.
        let parked = self.parked.as_ref().map(|(a, _)| *a).and_then(|a| {
            let least = backends.iter().map(|b| b.active()).min()?;
            backends.iter().find(|b| {
                b.addr() == a && Some(a) != avoid && !b.is_draining() && b.active() <= least
            })
        });
        let chosen: Option<Arc<Backend>> = sticky
            .or(if self.sticky.is_none() { parked } else { None })
            .or_else(|| balance::pick(backends, ctx.cursor, avoid))
            .or_else(|| balance::pick(backends, ctx.cursor, None))
            .cloned();
        let Some(b) = chosen else {
            self.fail(Status::Unavailable)?;
            return Ok(());
        };
        let lease = BackendLease::acquire(&b);
        if let Some((addr, conn)) = self.parked.take() {
            if addr == b.addr() {
                self.backend = Some(conn);
                self.lease = Some(lease);
                self.reused = true;
                self.stage = Stage::SendHead;
                return Ok(());
            }
            // A TLS connection cannot leave its session: its state is here.
            // One to a backend that left the set or went down is closed.
            if !conn.is_tls() && is_current(ctx, self.port(), addr) {
                ctx.idle.put(ctx.registry, addr, conn.stream, ctx.now);
            }
        }
        let tls_backend = self
            .service
            .tls
            .as_ref()
            .is_some_and(|t| t.client.is_some());
        // `http-reuse safe`: a client's first request never rides another
        // client's connection, so whatever a backend might still send on it
        // (a late or unsolicited response) can never answer a newcomer.
        let pooled = if tls_backend || self.served == 0 {
            None
        } else {
            ctx.idle.take(b.addr(), ctx.now)
        };
        if let Some(mut stream) = pooled {
            if ctx
                .registry
                .reregister(
                    &mut stream,
                    EventTarget::Session(ctx.id, Side::Backend).token(),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_ok()
            {
                let mut conn = Conn::new(stream, ctx.now, Meter::backend(&b, ctx.worker));
                conn.writable = true;
                self.backend = Some(conn);
                self.lease = Some(lease);
                self.reused = true;
                self.stage = Stage::SendHead;
                return Ok(());
            }
        }
        self.lease = Some(lease);
        self.connect(ctx, 0, &b)
    }

    fn connect(&mut self, ctx: &mut Ctx<'_>, attempt: u8, b: &Backend) -> Result<(), Step> {
        let addr = b.addr();
        let stream = net::connect(addr).and_then(|mut s| {
            ctx.registry
                .register(
                    &mut s,
                    EventTarget::Session(ctx.id, Side::Backend).token(),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map(|()| s)
        });
        match stream {
            Ok(s) => {
                let mut conn = Conn::new(s, ctx.now, Meter::backend(b, ctx.worker));
                if let Some((cfg, name)) = self.service.tls.as_ref().and_then(|t| t.client.as_ref())
                {
                    match rustls::ClientConnection::new(Arc::clone(cfg), name.clone()) {
                        Ok(c) => conn = conn.with_tls(c.into()),
                        Err(e) => {
                            log::warn!("https: no TLS session for {addr}: {e}");
                            return Err(Step::Closed(CloseReason::ConnectFailed));
                        }
                    }
                }
                self.backend = Some(conn);
                self.reused = false;
                self.stage = Stage::Connect {
                    attempt: attempt + 1,
                    deadline: ctx.now + self.service.timeouts.connect,
                    since: ctx.now,
                };
                Ok(())
            }
            Err(e) => {
                log::debug!("http: connect to {addr} failed at once: {e}");
                self.stage = Stage::Connect {
                    attempt: attempt + 1,
                    deadline: ctx.now,
                    since: ctx.now,
                };
                match self.redispatch(ctx) {
                    Step::Closed(r) => Err(Step::Closed(r)),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The connect failed or timed out: once more on another backend, then
    /// 503 (HAProxy's `retries 1` + `redispatch`).
    fn redispatch(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let Stage::Connect { attempt, .. } = self.stage else {
            return Step::Open;
        };
        let failed = self.backend_addr();
        if let Some(l) = &self.lease {
            let c = l.backend().stats().of(ctx.worker);
            c.connect_errors.add(1);
            if attempt < CONNECT_ATTEMPTS {
                c.retries.add(1);
                self.service.stats.of(ctx.worker).retries.add(1);
            }
        }
        self.backend = None;
        self.lease = None;
        if attempt >= CONNECT_ATTEMPTS {
            let _ = self.fail(Status::Unavailable);
            return self.drive(ctx);
        }
        let backends = &self.service.backends;
        let next = balance::pick(backends, ctx.cursor, failed)
            .or_else(|| balance::pick(backends, ctx.cursor, None))
            .cloned();
        let Some(b) = next else {
            let _ = self.fail(Status::Unavailable);
            return self.drive(ctx);
        };
        self.lease = Some(BackendLease::acquire(&b));
        match self.connect(ctx, attempt, &b) {
            Ok(()) => match self.stage {
                Stage::Connect { .. } => Step::Open,
                _ => self.drive(ctx),
            },
            Err(step) => step,
        }
    }

    // ---- sending the request head ------------------------------------

    fn send_head(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        let (Some(req), Some(buf), Some(backend)) = (&self.req, &self.cbuf, &mut self.backend)
        else {
            return Err(Step::Closed(CloseReason::ConnectFailed));
        };
        if !backend.writable {
            return Ok(false);
        }
        let src = &buf.pending()[..req.end_of_fields];
        let injects: [&[u8]; 3] = [&self.s.req_inject, &self.s.fwd, self.conn_line];
        let total = virtual_len(src.len(), &self.s.req_drop, &injects);
        // A chunked body is checked as far as it arrived while a 400 is
        // still possible, then re-framed by the exchange; other bodies'
        // buffered bytes go in the same write as the head.
        let after = &buf.pending()[req.head_len..];
        if let Err(e) = self.req_body.check(after) {
            log::debug!(
                "http: port {}: bad request body from {}: {}",
                self.service.port(),
                self.peer,
                e.reason()
            );
            return self.fail(Status::BadRequest);
        }
        let m = if self.req_body.is_chunked() {
            0
        } else {
            self.req_body.data(after).len()
        };
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = head_slices(src, &self.s.req_drop, &injects, self.head_sent, &mut slices);
        if m > 0 && n < MAX_SLICES {
            slices[n] = IoSlice::new(&after[..m]);
            n += 1;
        }
        let written = match backend.write_vectored(&slices[..n]) {
            Ok(0) => return self.retry_or_fail(ctx),
            Ok(w) => {
                backend.last_io = ctx.now;
                if self.head_sent + w < total {
                    self.head_sent += w;
                    backend.writable = false;
                    return Ok(true);
                }
                if self.head_sent + w < total + m {
                    backend.writable = false;
                }
                self.head_sent + w - total
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                backend.writable = false;
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(_) => return self.retry_or_fail(ctx),
        };
        // The whole head is out, and `written` body bytes after it.
        let sent = req.head_len + self.req_body.wrote(written);
        let idempotent = req.idempotent;
        if self.reused && !self.retried && idempotent && self.req_body.is_done() {
            // The whole request went out on a reused connection: keep it
            // until the backend answers, in case that connection was dead.
            self.replay = Some(sent);
        } else if let Some(b) = self.cbuf.as_mut() {
            b.consumed(sent);
        }
        self.head_sent = 0;
        self.head_since = None;
        self.stage = Stage::Exchange;
        Ok(true)
    }

    /// The backend failed before its response began: 502.
    fn backend_failed(&mut self) -> Result<bool, Step> {
        self.fail(Status::BadGateway)
    }

    /// A backend connection failed before the first response byte. A
    /// reused connection may simply have been closed by the backend while
    /// idle: an idempotent request whose bytes moirai still holds is sent
    /// once more on a new connection (HAProxy's `retry-on conn-failure
    /// empty-response`). Anything else, or a second failure, is a 502.
    fn retry_or_fail(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        let answered = self.resp.is_some() || self.bbuf.as_ref().is_some_and(|b| !b.is_empty());
        // The request's bytes are still in the client buffer: not yet
        // consumed (head being sent) or kept for this (`replay`).
        let held = self.stage == Stage::SendHead || self.replay.is_some();
        let idempotent = self.req.as_ref().is_some_and(|r| r.idempotent);
        if !self.reused || self.retried || answered || !held || !idempotent {
            return self.backend_failed();
        }
        let Some(b) = self.lease.as_ref().map(|l| Arc::clone(l.backend())) else {
            return self.backend_failed();
        };
        log::debug!(
            "http: port {}: reused connection to {} failed before answering; sending again",
            self.port(),
            b.addr()
        );
        b.stats().of(ctx.worker).retries.add(1);
        self.service.stats.of(ctx.worker).retries.add(1);
        self.retried = true;
        self.replay = None;
        self.backend = None;
        self.backend_eof = false;
        self.head_sent = 0;
        let framing = self.req.as_ref().map_or(Framing::None, |r| r.framing);
        self.req_body = Body::new(framing);
        self.connect(ctx, 0, &b)?;
        Ok(true)
    }

    // ---- request body up, response down -----------------------------

    fn exchange(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        let mut progress = false;
        let Some(backend) = self.backend.as_mut() else {
            return Err(Step::Closed(CloseReason::ConnectFailed));
        };

        // Request body, client → backend.
        if !self.req_body.is_done() {
            match forward(&mut self.cbuf, &mut self.req_body, backend, ctx.now) {
                Ok(p) => progress |= p,
                Err(Forward::Write) => return self.backend_failed(),
                Err(Forward::Chunk(e)) => {
                    // The head already went out: the backend connection
                    // holds part of a message and is never reused.
                    log::debug!(
                        "http: port {}: bad request body from {}: {}",
                        self.port(),
                        self.peer,
                        e.reason()
                    );
                    return Err(Step::Closed(CloseReason::BadFraming(Side::Client)));
                }
            }
        }
        // Read more from the client while its buffer has room: the rest of
        // the body, or pipelined requests that wait their turn.
        if !self.client_eof && self.cbuf.as_ref().is_none_or(|b| !b.is_full()) {
            progress |= self.fill_client(ctx)?;
        }
        if self.client_eof
            && !self.req_body.input_done()
            && self.cbuf.as_ref().is_none_or(Buffer::is_empty)
        {
            // The client gave up in the middle of its request body.
            return Err(Step::Closed(CloseReason::Reset(Side::Client)));
        }

        // Response, backend → client.
        if !self.backend_eof {
            let backend = self.backend.as_mut().expect("checked above");
            match fill(backend, &mut self.bbuf, ctx) {
                Ok(Fill::Data) => {
                    progress = true;
                    // The backend answered: the request is not sent again.
                    if let (Some(n), Some(b)) = (self.replay.take(), self.cbuf.as_mut()) {
                        b.consumed(n);
                    }
                }
                Ok(Fill::Eof) => {
                    self.backend_eof = true;
                    progress = true;
                }
                Ok(Fill::Nothing) => {}
                Err(_) => {
                    if self.resp.is_none() {
                        return self.retry_or_fail(ctx);
                    }
                    return Err(Step::Closed(CloseReason::Reset(Side::Backend)));
                }
            }
        }
        if self.resp.is_none() {
            match self.parse_response(ctx)? {
                Some(p) => progress |= p,
                // Closed before a whole response head: 502 (or once more,
                // for a reused connection that closed without a byte).
                None if self.backend_eof => return self.retry_or_fail(ctx),
                None => return Ok(progress),
            }
        }
        if self.resp.is_some() && !self.resp_started {
            progress |= self.send_response_head(ctx)?;
            if self.stage == Stage::Tunnel {
                return Ok(true);
            }
        }
        if self.resp_started && !self.resp_body.is_done() {
            match forward(
                &mut self.bbuf,
                &mut self.resp_body,
                &mut self.client,
                ctx.now,
            ) {
                Ok(p) => progress |= p,
                Err(Forward::Write) => return Err(Step::Closed(CloseReason::Reset(Side::Client))),
                Err(Forward::Chunk(e)) => {
                    // The client keeps what was valid; both connections end.
                    log::debug!(
                        "http: port {}: bad response body from {:?}: {}",
                        self.port(),
                        self.backend_addr(),
                        e.reason()
                    );
                    return Err(Step::Closed(CloseReason::BadFraming(Side::Backend)));
                }
            }
            let flushed = self.bbuf.as_ref().is_none_or(Buffer::is_empty);
            // Framing moirai still has to write is not a truncation.
            if self.backend_eof && flushed && !self.resp_body.input_done() {
                if self.resp_body.until_close() {
                    // Close-delimited: the close is the end. Done below.
                    self.resp_body.end_at_close();
                } else {
                    return Err(Step::Closed(CloseReason::Reset(Side::Backend)));
                }
            }
        }
        if self.resp_started && self.resp_body.is_done() {
            return self.finish_exchange(ctx).map(|_| true);
        }
        if self.backend_eof && self.resp.is_none() {
            return self.backend_failed();
        }
        release_if_empty(&mut self.bbuf, ctx.pool);
        Ok(progress)
    }

    /// Looks for a response head in the backend's bytes. Interim (1xx)
    /// responses are passed on as they are; `Some(progress)` when the
    /// caller may go on.
    fn parse_response(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<bool>, Step> {
        let is_head = self.req.as_ref().is_some_and(|r| r.is_head);
        let Some(buf) = self.bbuf.as_ref() else {
            return Ok(None);
        };
        if buf.is_empty() {
            return Ok(None);
        }
        // Empty lines before a status line (an old server's extra CRLF
        // after a body) are skipped, never forwarded.
        let blank = request::leading_empty_lines(buf.pending());
        if blank > 0 {
            if let Some(b) = self.bbuf.as_mut() {
                b.consumed(blank);
            }
            return Ok(Some(true));
        }
        match response::parse(buf.pending(), is_head, &mut self.s.resp_drop) {
            Ok(Some(head)) => {
                if head.is_switch() && self.req.as_ref().is_some_and(|r| r.upgrade) {
                    // Pass the 101 on untouched, then tunnel.
                    self.s.resp_inject.clear();
                    self.s.resp_drop.clear();
                } else if head.is_switch() {
                    return self.backend_failed().map(Some);
                } else {
                    self.build_response_inject(&head);
                }
                self.service.stats.of(ctx.worker).response(head.code);
                if let Some(l) = &self.lease {
                    l.backend().stats().of(ctx.worker).response(head.code);
                }
                if !head.is_interim() {
                    self.resp_at = Some(ctx.now);
                    let took = ctx.now.saturating_duration_since(self.req_since);
                    record(&mut ctx.latency(self.port()).request, took);
                }
                self.resp_body = Body::new(head.framing);
                if self.dechunks(&head) {
                    // An HTTP/1.0 client never sees chunked framing: the
                    // data alone, ended by the close.
                    self.s
                        .resp_drop
                        .extend(head.transfer_encoding.iter().cloned());
                    self.s.resp_drop.sort_by_key(|r| r.start);
                    self.resp_body = Body::new(head.framing).dechunked();
                }
                self.resp = Some(head);
                self.head_sent = 0;
                Ok(Some(true))
            }
            Ok(None) if buf.is_full() => self.backend_failed().map(Some),
            Ok(None) => Ok(None),
            Err(_) => self.backend_failed().map(Some),
        }
    }

    fn build_response_inject(&mut self, head: &ResponseHead) {
        self.s.resp_inject.clear();
        if head.is_interim() {
            return;
        }
        // Insert the sticky cookie when the client does not already hold
        // the right one (insert, indirect, nocache: a response that sets
        // it must not be cached and shared).
        if let Some(lease) = &self.lease {
            let v = *lease.backend().cookie();
            if self.sticky != Some(v) {
                self.s.resp_inject.extend_from_slice(b"Set-Cookie: ");
                self.s.resp_inject.extend_from_slice(COOKIE_NAME.as_bytes());
                self.s.resp_inject.push(b'=');
                self.s.resp_inject.extend_from_slice(&v);
                self.s
                    .resp_inject
                    .extend_from_slice(b"; path=/\r\nCache-Control: private\r\n");
            }
        }
        if let Some(n) = head.length_rewritten {
            let _ = write!(self.s.resp_inject, "Content-Length: {n}\r\n");
        }
        let keep = self.client_keeps_alive(head);
        let http11 = self.req.as_ref().is_some_and(|r| r.http11);
        if !keep {
            self.s
                .resp_inject
                .extend_from_slice(b"Connection: close\r\n");
        } else if !http11 {
            self.s
                .resp_inject
                .extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }

    fn client_keeps_alive(&self, head: &ResponseHead) -> bool {
        !self.draining
            && self.req.as_ref().is_some_and(|r| r.keep_alive)
            && head.framing != Framing::UntilClose
            && !self.dechunks(head)
            && !self.client_eof
    }

    /// A chunked response to an HTTP/1.0 request is de-chunked.
    fn dechunks(&self, head: &ResponseHead) -> bool {
        head.framing == Framing::Chunked && self.req.as_ref().is_some_and(|r| !r.http11)
    }

    fn send_response_head(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        let (Some(resp), Some(buf)) = (&self.resp, &self.bbuf) else {
            return Ok(false);
        };
        if !self.client.writable {
            return Ok(false);
        }
        let src = &buf.pending()[..resp.end_of_fields];
        let injects: [&[u8]; 1] = [&self.s.resp_inject];
        let total = virtual_len(src.len(), &self.s.resp_drop, &injects);
        // As for requests: a chunked body is checked as far as it
        // arrived while a 502 is still possible; other bodies' buffered
        // bytes go in the same write as the head.
        let after = &buf.pending()[resp.head_len..];
        if self.resp_body.check(after).is_err() {
            return self.backend_failed();
        }
        let m = if self.resp_body.is_chunked() {
            0
        } else {
            self.resp_body.data(after).len()
        };
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = head_slices(
            src,
            &self.s.resp_drop,
            &injects,
            self.head_sent,
            &mut slices,
        );
        if m > 0 && n < MAX_SLICES {
            slices[n] = IoSlice::new(&after[..m]);
            n += 1;
        }
        let written = match self.client.write_vectored(&slices[..n]) {
            Ok(0) => return Err(Step::Closed(CloseReason::Reset(Side::Client))),
            Ok(w) => {
                self.client.last_io = ctx.now;
                if self.head_sent + w < total {
                    self.head_sent += w;
                    self.client.writable = false;
                    return Ok(true);
                }
                if self.head_sent + w < total + m {
                    self.client.writable = false;
                }
                self.head_sent + w - total
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.client.writable = false;
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(_) => return Err(Step::Closed(CloseReason::Reset(Side::Client))),
        };
        let sent = resp.head_len + self.resp_body.wrote(written);
        if let Some(b) = self.bbuf.as_mut() {
            b.consumed(sent);
        }
        let interim = resp.is_interim();
        let switch = resp.is_switch();
        self.head_sent = 0;
        if interim {
            // 100 Continue and friends: the real response is still to come.
            self.resp = None;
            return Ok(true);
        }
        self.resp_started = true;
        if switch {
            self.stage = Stage::Tunnel;
        }
        Ok(true)
    }

    /// Both messages are complete: keep or drop each side.
    fn finish_exchange(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Step> {
        let resp = self.resp.take().expect("finished with a response");
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            self.log_request(sink, Some(resp.code), Termination::NORMAL, ctx.now);
        }
        let keep = self.client_keeps_alive(&resp) && self.req_body.is_done();
        let _req = self.req.take().expect("finished with a request");
        let leftover = self.bbuf.as_ref().is_some_and(|b| !b.is_empty());
        let reusable = resp.keep_alive && self.req_body.is_done() && !self.backend_eof && !leftover;
        if let (Some(b), Some(lease)) = (self.backend.take(), self.lease.take()) {
            if reusable && keep {
                // Kept on this session for the client's next request: no
                // pool round trip, no re-registration.
                self.parked = Some((lease.backend().addr(), b));
            } else if reusable
                && !b.is_tls()
                && is_current(ctx, self.port(), lease.backend().addr())
            {
                ctx.idle
                    .put(ctx.registry, lease.backend().addr(), b.stream, ctx.now);
            }
        }
        if let Some(b) = self.bbuf.take() {
            ctx.pool.give(b);
        }
        self.served = self.served.saturating_add(1);
        // Nothing of this exchange may shape the next one: a bad next
        // request gets its 400 like a first one would.
        self.resp_started = false;
        self.replay = None;
        self.retried = false;
        self.reused = false;
        if !keep {
            let _ = self.client.shutdown_write();
            return Err(Step::Closed(CloseReason::Done));
        }
        self.stage = Stage::ReadHead;
        self.s.req_inject.clear();
        release_if_empty(&mut self.cbuf, ctx.pool);
        Ok(())
    }

    // ---- after a 101 -------------------------------------------------

    fn tunnel(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        let Some(backend) = self.backend.as_mut() else {
            return Err(Step::Closed(CloseReason::ConnectFailed));
        };
        let streams = Streams {
            client: &mut self.client,
            backend,
            up: &mut self.cbuf,
            down: &mut self.bbuf,
            pipe: &mut self.tunnel,
            preface: None,
        };
        pipe_round(streams, ctx)
    }

    // ---- our own answers ---------------------------------------------

    fn write_error(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        let Some((status, sent)) = self.error else {
            return Err(Step::Closed(CloseReason::Done));
        };
        let bytes = match &self.local {
            Some((_, b)) => &b[..],
            None => status.response(),
        };
        if sent < bytes.len() {
            if !self.client.writable {
                return Ok(false);
            }
            let len = bytes.len();
            match self.client.write(&bytes[sent..]) {
                Ok(0) => return Err(Step::Closed(CloseReason::Reset(Side::Client))),
                Ok(n) => {
                    self.error = Some((status, sent + n));
                    if sent + n < len {
                        self.client.writable = false;
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.client.writable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
                Err(_) => return Err(Step::Closed(CloseReason::Reset(Side::Client))),
            }
        }
        let _ = self.client.shutdown_write();
        self.stage = Stage::Linger {
            until: ctx.now + LINGER,
        };
        Ok(true)
    }

    /// After an error response: read and discard until the client closes,
    /// so unread input does not turn our close into a reset.
    fn linger(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Step> {
        if let Some(b) = self.cbuf.as_mut() {
            b.consumed(b.len());
        }
        match fill(&mut self.client, &mut self.cbuf, ctx) {
            Ok(Fill::Data) => Ok(true),
            Ok(Fill::Eof) | Err(_) => Err(Step::Closed(CloseReason::Done)),
            Ok(Fill::Nothing) => Ok(false),
        }
    }

    // ---- timers ------------------------------------------------------

    /// When the session must be looked at again if nothing happens.
    pub fn deadline(&self) -> Instant {
        let t = &self.service.timeouts;
        match self.stage {
            Stage::ReadHead => match self.head_since {
                Some(since) => since + self.header_timeout,
                // A new connection has the header timeout for its first
                // request, counted from accept: a silent connection does
                // not hold a slot for the whole client timeout.
                None if self.served == 0 => self.accepted + self.header_timeout,
                // Between requests of a keep-alive connection.
                None => self.client.last_io + t.client,
            },
            Stage::Connect { deadline, .. } => deadline,
            Stage::SendHead | Stage::Exchange | Stage::Tunnel => {
                idle_deadline(&self.client, self.backend.as_ref(), t)
            }
            Stage::Error => self.client.last_io + LINGER * 5,
            Stage::Linger { until } => until,
        }
    }

    /// Whether a wheel entry must be added for the current deadline.
    pub fn needs_timer(&mut self) -> Option<Instant> {
        let d = self.deadline();
        super::timer::arm(&mut self.armed, d)
    }

    /// A wheel entry fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>) -> Step {
        self.armed = None;
        if ctx.now < self.deadline() {
            return Step::Open;
        }
        let t = self.service.timeouts;
        match self.stage {
            Stage::ReadHead if self.head_since.is_some() => {
                let _ = self.fail(Status::RequestTimeout);
                self.drive(ctx)
            }
            Stage::ReadHead => Step::Closed(CloseReason::IdleTimeout(Side::Client)),
            Stage::Connect { .. } => self.redispatch(ctx),
            Stage::SendHead | Stage::Exchange => {
                let backend_idle = self
                    .backend
                    .as_ref()
                    .is_some_and(|b| ctx.now >= b.last_io + t.server);
                if backend_idle && !self.resp_started {
                    let _ = self.fail(Status::GatewayTimeout);
                    self.drive(ctx)
                } else if backend_idle {
                    Step::Closed(CloseReason::IdleTimeout(Side::Backend))
                } else {
                    Step::Closed(CloseReason::IdleTimeout(Side::Client))
                }
            }
            Stage::Tunnel => Step::Closed(CloseReason::IdleTimeout(Side::Client)),
            Stage::Error | Stage::Linger { .. } => Step::Closed(CloseReason::Done),
        }
    }

    /// Gives the session's buffers back before it is dropped.
    pub fn release(&mut self, pool: &mut BufferPool, scratch: &mut Vec<Scratch>) {
        for b in [self.cbuf.take(), self.bbuf.take()].into_iter().flatten() {
            pool.give(b);
        }
        if scratch.len() < MAX_FREE_SCRATCH {
            let mut s = std::mem::take(&mut self.s);
            s.clear();
            scratch.push(s);
        }
    }
}

/// Scratch vectors kept in the worker's free list.
const MAX_FREE_SCRATCH: usize = 4096;

/// The small vectors an HTTP session needs for its heads. Sessions take
/// them from the worker's free list and give them back, so connections after
/// the first few allocate nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    req_drop: Vec<Range<usize>>,
    /// Lines added to the request besides `fwd`: the client's other cookies.
    req_inject: Vec<u8>,
    resp_drop: Vec<Range<usize>>,
    resp_inject: Vec<u8>,
    /// `X-Forwarded-*` lines: the same for every request of a connection,
    /// so formatted once.
    fwd: Vec<u8>,
}

impl Scratch {
    fn clear(&mut self) {
        self.req_drop.clear();
        self.req_inject.clear();
        self.resp_drop.clear();
        self.resp_inject.clear();
        self.fwd.clear();
    }
}

/// What a read into a buffer gave.
enum Fill {
    Data,
    Eof,
    Nothing,
}

/// Reads from `conn` into its buffer (taken from the pool if needed).
fn fill(conn: &mut Conn, slot: &mut Option<Buffer>, ctx: &mut Ctx<'_>) -> io::Result<Fill> {
    if !conn.readable {
        return Ok(Fill::Nothing);
    }
    let b = slot.get_or_insert_with(|| ctx.pool.take());
    let room = b.spare().len();
    if room == 0 {
        return Ok(Fill::Nothing);
    }
    let r = match conn.read(b.spare()) {
        Ok(0) => Ok(Fill::Eof),
        Ok(n) => {
            if n < room && !conn.peer_closed {
                conn.readable = false;
            }
            b.filled(n);
            conn.last_io = ctx.now;
            Ok(Fill::Data)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            conn.readable = false;
            Ok(Fill::Nothing)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Fill::Data),
        Err(e) => Err(e),
    };
    release_if_empty(slot, ctx.pool);
    r
}

/// Whether `addr` is a usable backend of the session's service now: only
/// then may a connection to it wait in the pool.
fn is_current(ctx: &Ctx<'_>, port: u16, addr: SocketAddr) -> bool {
    ctx.current(port)
        .is_some_and(|s| s.backends.iter().any(|b| b.addr() == addr))
}

/// The token of `GET /.well-known/acme-challenge/TOKEN`, if the head at
/// the front of `head` is that request.
fn acme_token(head: &[u8]) -> Option<&str> {
    const PREFIX: &[u8] = b"GET /.well-known/acme-challenge/";
    let rest = head.strip_prefix(PREFIX)?;
    let end = rest.iter().position(|&b| b == b' ' || b == b'?')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// The answer to an ACME HTTP-01 validation, with its status: the key
/// authorization, or 404 for a token that is not (or no longer) pending.
fn acme_answer(key_auth: Option<&String>) -> (u16, Vec<u8>) {
    match key_auth {
        Some(k) => (
            200,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{k}",
                k.len()
            )
            .into_bytes(),
        ),
        None => (
            404,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    }
}

/// Keeps "METHOD target" of the head at the front of `head` in `line`
/// (reusing its allocation), at most 1 KiB of it.
fn keep_request_line(line: &mut String, head: &[u8]) {
    line.clear();
    let first = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = parts.next().unwrap_or(b"-");
    let target = parts.next().unwrap_or(b"-");
    line.push_str(&String::from_utf8_lossy(&method[..method.len().min(32)]));
    line.push(' ');
    line.push_str(&String::from_utf8_lossy(&target[..target.len().min(1024)]));
}

fn release_if_empty(slot: &mut Option<Buffer>, pool: &mut BufferPool) {
    if slot.as_ref().is_some_and(Buffer::is_empty) {
        if let Some(b) = slot.take() {
            pool.give(b);
        }
    }
}

enum Forward {
    Write,
    Chunk(body::ChunkError),
}

/// Writes the body bytes at the front of `slot` to `dst`, no further than
/// the body's end (what follows is the next message), through
/// [`body::relay`]: chunked framing is re-made, data moves untouched.
fn forward(
    slot: &mut Option<Buffer>,
    body: &mut Body,
    dst: &mut Conn,
    now: Instant,
) -> Result<bool, Forward> {
    if !dst.writable {
        return Ok(false);
    }
    let input = slot.as_ref().map_or(&[][..], Buffer::pending);
    let r = body::relay(body, input, |slices| dst.write_vectored(slices));
    match r {
        Ok(r) => {
            if let Some(b) = slot.as_mut() {
                b.consumed(r.consumed);
            }
            if r.blocked {
                dst.writable = false;
            }
            if r.written > 0 {
                dst.last_io = now;
            }
            Ok(r.written > 0 || r.consumed > 0)
        }
        Err(RelayError::Framing(e)) => Err(Forward::Chunk(e)),
        Err(RelayError::Write(_)) => Err(Forward::Write),
    }
}
