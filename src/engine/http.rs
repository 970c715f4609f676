//! One HTTP/1.x client connection (`http` and the https types): the I/O
//! around [`Exchange`], which makes every decision. Requests are parsed by
//! [`crate::proto::http1`], balanced one by one (or kept on their sticky
//! backend), forwarded with the exchange's lines added by vectored writes,
//! and answered in order. The backend connection of a finished exchange is
//! parked on the session for the client's next request, or given to the
//! worker's [`IdlePool`](super::pool::IdlePool).
//!
//! Each stage holds what it needs: `ReadHead` → `Connect` (skipped with a
//! parked or pooled connection) → `SendHead` → `Exchange` (request body
//! up, response down) → `ReadHead` for the next request; or `Tunnel` after
//! a `101`; or `Answer` (the balancer's own response) then `Linger`.

use std::io::IoSlice;
use std::mem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::balance;
use super::buffer::{Buffer, BufferPool};
use super::conn::{release_if_empty, Conn, Io, Meter, Readiness, Transport};
use super::connect::{self, Dialing, Progress, Upstream};
use super::pipe::{self, Streams};
use super::step::{CloseReason, Ctx, Step, ROUNDS_PER_TURN};
use super::syslog::Sink;
use super::token::{EventTarget, Side};
use crate::metrics::stats::{micros, record};
use crate::proto::http1::body::{self, Body, RelayError};
use crate::proto::http1::errors::Status;
use crate::proto::http1::exchange::{
    self, AfterHead, Answer, BackendEnd, Client, Exchange, OnResponse, Reuse, Sent, Timeout,
};
use crate::proto::http1::request::{self, RequestHead};
use crate::proto::http1::response;
use crate::proto::http1::{head_slices, virtual_len, HeadError, Scratch, MAX_SLICES};
use crate::proto::pipe::Pipe;
use crate::proto::syslog::{Access, Termination};
use crate::snapshot::{Backend, BackendLease, ServiceSnapshot};
use crate::sys::net::TcpStream;
use crate::sys::poll::Interest;

/// How long a request head may take once its first byte arrived, unless
/// configured otherwise.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer waits for the client to stop sending before the
/// connection is closed (closing with unread input would reset it and
/// could destroy the answer).
const LINGER: Duration = Duration::from_secs(1);
/// Scratch vectors kept in the worker's free list.
const MAX_FREE_SCRATCH: usize = 1024;
/// Finished exchanges kept for reuse in the worker's free list.
const MAX_FREE_EXCHANGES: usize = 1024;

#[derive(Debug)]
enum Stage<S> {
    /// Waiting for a request head; `since` its first byte. `parked`: the
    /// previous request's backend connection, kept for this one.
    ReadHead {
        since: Option<Instant>,
        parked: Option<Parked<S>>,
    },
    /// A backend connect for `ex` is under way.
    Connect {
        ex: Box<Exchange>,
        up: Upstream<S>,
        dialing: Dialing,
    },
    /// Writing the request head; `sent` bytes of it are out.
    SendHead {
        ex: Box<Exchange>,
        up: Upstream<S>,
        sent: usize,
    },
    /// Request body up, response down; `sent` bytes of the response head
    /// are out; `eof`: the backend sent its FIN.
    Exchange {
        ex: Box<Exchange>,
        up: Upstream<S>,
        sent: usize,
        eof: bool,
    },
    /// After a `101`: bytes both ways.
    Tunnel {
        ex: Box<Exchange>,
        up: Upstream<S>,
        pipe: Pipe,
    },
    /// The balancer's own answer; `sent` bytes of it are out. `ex` is the
    /// request it answers, when one was understood.
    Answer {
        answer: Answer,
        sent: usize,
        ex: Option<Box<Exchange>>,
        since: Instant,
    },
    /// After an answer: reading and discarding until the client closes.
    Linger { until: Instant },
    /// Only while a stage's handler runs.
    Moving,
}

/// A backend connection kept between a client's requests, with the
/// backend's address.
#[derive(Debug)]
struct Parked<S> {
    addr: SocketAddr,
    conn: Conn<S>,
}

/// What a stage's handler says about the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Something moved: run again.
    Progress,
    /// Nothing more can happen before an event.
    Wait,
    /// The connection ends.
    Close(CloseReason),
}

impl Flow {
    fn progress(progress: bool) -> Flow {
        if progress {
            Flow::Progress
        } else {
            Flow::Wait
        }
    }
}

/// Why a step inside a stage stopped short of its stage's normal course.
enum Halt {
    /// The connection ends.
    Close(CloseReason),
    /// Answer with this status (or cut, if the client has a status).
    Fail(Status),
    /// The backend connection failed before answering: send again if
    /// the exchange allows it, else 502.
    Retry { head_pending: bool },
}

type Turn<S> = (Stage<S>, Flow);

/// One client connection of an HTTP service.
#[derive(Debug)]
pub struct HttpSession<S = TcpStream> {
    service: Arc<ServiceSnapshot>,
    peer: SocketAddr,
    client: Conn<S>,
    stage: Stage<S>,
    /// Bytes from the client (request heads and bodies).
    cbuf: Option<Buffer>,
    /// Bytes from the backend (response heads and bodies).
    bbuf: Option<Buffer>,
    /// The worker is draining: no further request on this connection.
    draining: bool,
    /// The client sent its FIN.
    client_eof: bool,
    header_timeout: Duration,
    /// When the client connected: its first request head must be complete
    /// a header timeout after this (HAProxy's `timeout http-request`).
    accepted: Instant,
    /// Requests answered on this connection. Only after the first may a
    /// request take another client's idle backend connection
    /// (`http-reuse safe`).
    served: u32,
    /// The backend of this client's latest connection-bound login (NTLM,
    /// Negotiate): every later request goes there while it is in the set
    /// (HAProxy pins the server too). Boxed: rare, and an idle
    /// connection's size counts.
    pinned: Option<Box<SocketAddr>>,
    /// This client logged in on a backend connection at least once: from
    /// then on none of its backend connections is ever pooled, whichever
    /// backend it is on. A property of the session rather than of an
    /// address, so a login that a failed connect moved to another backend
    /// (or a pin that ended with its backend) still never reaches another
    /// client.
    logged_in: bool,
    /// Set when the session ended but TLS records are still to be sent.
    closing: Option<CloseReason>,
    /// "METHOD target" of the current request, kept only for syslog.
    req_line: String,
    /// Client bytes (read, written) when the current request began.
    marks: (u64, u64),
    /// The worker, whose counter shard this session writes.
    worker: usize,
}

impl<S: Transport> HttpSession<S> {
    /// A session for an accepted (and watched) client, waiting for its
    /// first request.
    pub fn start(
        ctx: &mut Ctx<'_, S>,
        service: Arc<ServiceSnapshot>,
        client: S,
        peer: SocketAddr,
    ) -> Result<HttpSession<S>, CloseReason> {
        let mut client = Conn::new(client, ctx.now, Meter::client(&service, ctx.worker));
        if let Some(tls) = &service.tls {
            let server = rustls::ServerConnection::new(Arc::clone(&tls.server))
                .map_err(|_| CloseReason::Reset(Side::Client))?;
            client = client.with_tls(server.into());
        }
        Ok(HttpSession {
            service,
            peer,
            client,
            stage: Stage::ReadHead {
                since: None,
                parked: None,
            },
            cbuf: None,
            bbuf: None,
            draining: false,
            client_eof: false,
            header_timeout: ctx.header_timeout,
            accepted: ctx.now,
            served: 0,
            pinned: None,
            logged_in: false,
            closing: None,
            req_line: String::new(),
            marks: (0, 0),
            worker: ctx.worker,
        })
    }

    /// The listen port of the session's service.
    pub fn port(&self) -> u16 {
        self.service.port()
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
        matches!(self.stage, Stage::ReadHead { since: None, .. })
            && self.served > 0
            && self.cbuf.as_ref().is_none_or(Buffer::is_empty)
    }

    fn upstream(&self) -> Option<&Upstream<S>> {
        match &self.stage {
            Stage::Connect { up, .. }
            | Stage::SendHead { up, .. }
            | Stage::Exchange { up, .. }
            | Stage::Tunnel { up, .. } => Some(up),
            _ => None,
        }
    }

    /// The backend of the request in progress, if any.
    pub fn backend(&self) -> Option<&Backend> {
        self.upstream().map(|u| &**u.backend())
    }

    /// Handles an event on one side.
    pub fn on_event(&mut self, ctx: &mut Ctx<'_, S>, side: Side, r: Readiness) -> Step {
        match (side, &mut self.stage) {
            (Side::Client, _) => self.client.note(r),
            (
                Side::Backend,
                Stage::Connect { up, .. }
                | Stage::SendHead { up, .. }
                | Stage::Exchange { up, .. }
                | Stage::Tunnel { up, .. },
            ) => up.conn.note(r),
            (Side::Backend, Stage::ReadHead { parked, .. }) => {
                // An idle backend connection has nothing to say: any
                // input or hang-up means the backend is closing it.
                if r.says_anything() {
                    *parked = None;
                }
            }
            (Side::Backend, _) => {}
        }
        self.drive(ctx)
    }

    /// Runs the session until nothing more can happen now.
    pub fn drive(&mut self, ctx: &mut Ctx<'_, S>) -> Step {
        if let Some(reason) = self.closing {
            return self.close_after_flush(reason);
        }
        // TLS records left over from earlier writes go first: handshake
        // flights, the tail of a response.
        if !self.client.flush_if_writable() {
            return Step::Closed(CloseReason::Reset(Side::Client));
        }
        if let Stage::SendHead { up, .. } | Stage::Exchange { up, .. } = &mut self.stage {
            if !up.conn.flush_if_writable() {
                return Step::Closed(CloseReason::Reset(Side::Backend));
            }
        }
        for _ in 0..ROUNDS_PER_TURN {
            let stage = mem::replace(&mut self.stage, Stage::Moving);
            let (next, flow) = self.turn(ctx, stage);
            self.stage = next;
            match flow {
                Flow::Progress => continue,
                Flow::Wait => return Step::Open,
                // Everything was written to rustls; the records still have
                // to reach the socket before it closes.
                Flow::Close(reason)
                    if self.client.pending_out() && reason != CloseReason::Reset(Side::Client) =>
                {
                    self.closing = Some(reason);
                    return self.close_after_flush(reason);
                }
                Flow::Close(reason) => return Step::Closed(reason),
            }
        }
        Step::Again
    }

    /// Runs one stage once; every path hands back the stage that follows.
    fn turn(&mut self, ctx: &mut Ctx<'_, S>, stage: Stage<S>) -> Turn<S> {
        match stage {
            Stage::ReadHead { since, parked } => self.read_head(ctx, since, parked),
            Stage::Connect {
                ex,
                mut up,
                mut dialing,
            } => match connect::progress(ctx, &self.service, &mut up, &mut dialing) {
                Progress::Waiting => (Stage::Connect { ex, up, dialing }, Flow::Wait),
                Progress::Ready(took) => {
                    let mut ex = ex;
                    ex.timing.connect = Some(took);
                    ex.set_reused(false);
                    (Stage::SendHead { ex, up, sent: 0 }, Flow::Progress)
                }
                Progress::Failed(e) => {
                    log::debug!("http: connect to {} failed: {e}", up.backend().addr());
                    self.redial(ctx, ex, up, dialing)
                }
            },
            Stage::SendHead { ex, up, sent } => self.send_head(ctx, ex, up, sent),
            Stage::Exchange { ex, up, sent, eof } => self.exchange(ctx, ex, up, sent, eof),
            Stage::Tunnel {
                ex,
                mut up,
                mut pipe,
            } => {
                let streams = Streams {
                    client: &mut self.client,
                    backend: &mut up.conn,
                    up: &mut self.cbuf,
                    down: &mut self.bbuf,
                    pipe: &mut pipe,
                    preface: None,
                };
                let flow = match pipe::round(streams, ctx.pool, ctx.now) {
                    Ok(p) => Flow::progress(p),
                    Err(r) => Flow::Close(r),
                };
                (Stage::Tunnel { ex, up, pipe }, flow)
            }
            Stage::Answer {
                answer,
                sent,
                ex,
                since,
            } => self.answer(ctx, answer, sent, ex, since),
            Stage::Linger { until } => self.linger(ctx, until),
            Stage::Moving => (Stage::Moving, Flow::Close(CloseReason::Done)),
        }
    }

    /// Closes once the client's TLS records are all out.
    fn close_after_flush(&mut self, reason: CloseReason) -> Step {
        match self.client.flush() {
            Ok(true) => Step::Closed(reason),
            Ok(false) => Step::Open,
            Err(_) => Step::Closed(CloseReason::Reset(Side::Client)),
        }
    }

    /// Starts answering with `status` and closing; a backend connection
    /// in use is dropped with the stage that held it.
    fn fail(&mut self, status: Status, ex: Option<Box<Exchange>>, since: Instant) -> Turn<S> {
        log::debug!(
            "http: port {}: {} for {}",
            self.port(),
            status.code(),
            self.peer
        );
        let c = self.service.stats.of(self.worker);
        c.response(status.code());
        c.own[status.index()].add(1);
        // A head never understood (400, 408, 431, 501) is still a request
        // received, as HAProxy counts it.
        c.requests.add(u64::from(ex.is_none()));
        let answer = Answer::Error(status);
        (
            Stage::Answer {
                answer,
                sent: 0,
                ex,
                since,
            },
            Flow::Progress,
        )
    }

    /// [`HttpSession::fail`] for a request that was understood: its
    /// exchange goes with the answer, for the access line.
    fn refuse(&mut self, status: Status, ex: Box<Exchange>) -> Turn<S> {
        let since = ex.timing.start;
        self.fail(status, Some(ex), since)
    }

    /// The dialer's answer for `ex`: a connect under way, or 503.
    fn connecting(
        &mut self,
        ex: Box<Exchange>,
        dialed: Result<(Upstream<S>, Dialing), CloseReason>,
    ) -> Turn<S> {
        match dialed {
            Ok((up, dialing)) => (Stage::Connect { ex, up, dialing }, Flow::Progress),
            Err(_) => self.refuse(Status::Unavailable, ex),
        }
    }

    // ---- reading a request head -------------------------------------

    /// Reads what the client sent into its buffer.
    fn fill_client(&mut self, ctx: &mut Ctx<'_, S>) -> Result<bool, CloseReason> {
        match self.client.fill(&mut self.cbuf, ctx.pool, ctx.now) {
            Io::Eof => {
                self.client_eof = true;
                Ok(true)
            }
            Io::Failed => Err(CloseReason::Reset(Side::Client)),
            io => Ok(io.progressed()),
        }
    }

    fn read_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        since: Option<Instant>,
        parked: Option<Parked<S>>,
    ) -> Turn<S> {
        let progress = match self.fill_client(ctx) {
            Ok(p) => p,
            Err(r) => return (Stage::ReadHead { since, parked }, Flow::Close(r)),
        };
        let pending = self.cbuf.as_ref().map_or(&[][..], Buffer::pending);
        if pending.is_empty() {
            let flow = if self.client_eof {
                Flow::Close(CloseReason::Done)
            } else {
                Flow::progress(progress)
            };
            return (Stage::ReadHead { since, parked }, flow);
        }
        let since = since.unwrap_or(ctx.now);
        let blank = request::leading_empty_lines(pending);
        if blank > 0 {
            // Never forwarded (RFC 9112 §2.2).
            if let Some(b) = self.cbuf.as_mut() {
                b.consumed(blank);
            }
            release_if_empty(&mut self.cbuf, ctx.pool);
            return (
                Stage::ReadHead {
                    since: Some(since),
                    parked,
                },
                Flow::Progress,
            );
        }
        let full = self.cbuf.as_ref().is_some_and(Buffer::is_full);
        let mut s = ctx.scratch.pop().unwrap_or_default();
        let head = match request::parse(pending, &mut s.req_drop, &mut s.req_inject) {
            Ok(Some(head)) => {
                self.service.stats.of(self.worker).requests.add(1);
                head
            }
            unfinished => {
                recycle(ctx.scratch, s);
                let waiting = Stage::ReadHead {
                    since: Some(since),
                    parked,
                };
                return match unfinished {
                    Ok(_) if full => self.fail(Status::HeaderTooLarge, None, since),
                    Ok(_) if self.client_eof => (waiting, Flow::Close(CloseReason::Done)),
                    Ok(_) => (waiting, Flow::progress(progress)),
                    Err(e) => self.refuse_head(e, since),
                };
            }
        };
        if ctx.syslog.is_some() {
            keep_request_line(&mut self.req_line, pending);
        }
        // Every request meets the port's configuration now: its backends
        // (HAProxy balances each request over the current set) and its
        // `redirect`, `trust_forwarded` and ACME answers.
        let current = follow_current(&mut self.service, ctx);
        let client = Client {
            peer: self.peer,
            tls: self.client.is_tls(),
            port: self.port(),
            trusted: self.service.spec.trusts(self.peer.ip()),
        };
        // Requests the balancer answers itself, before any backend: ACME
        // challenges, then a redirecting service's requests (unless a
        // trusted proxy received them over https: proxied, no redirect
        // loop behind a CDN).
        let local = match (self.service.acme.is_empty(), exchange::acme_token(pending)) {
            (false, Some(token)) => Some(Answer::acme(self.service.acme.get(token))),
            _ => self.service.spec.redirect.and_then(|port| {
                let https_before = client.trusted
                    && head
                        .forwarded_proto
                        .as_ref()
                        .is_some_and(|(_, https)| *https);
                (!https_before).then(|| Answer::redirect(pending, &head, port.get()))
            }),
        };
        if let Some(answer) = local {
            recycle(ctx.scratch, s);
            let c = self.service.stats.of(self.worker);
            c.response(answer.code());
            match &answer {
                Answer::Redirect { .. } => {
                    c.redirects.add(1);
                    c.intercepted.add(1);
                }
                Answer::Local { .. } => c.intercepted.add(1),
                Answer::Error(status) => c.own[status.index()].add(1),
            }
            let stage = Stage::Answer {
                answer,
                sent: 0,
                ex: None,
                since,
            };
            return (stage, Flow::Progress);
        }
        if !current {
            // The port serves something else now, or nothing: this
            // connection belongs to a configuration that is gone.
            let ex = Exchange::begin(head, &client, s, since, ctx.now);
            return self.refuse(Status::Unavailable, Box::new(ex));
        }
        self.begin_request(ctx, head, s, since, parked, client)
    }

    /// A request head that cannot be served: 431, 501 or 400.
    fn refuse_head(&mut self, e: HeadError, since: Instant) -> Turn<S> {
        let status = match e {
            HeadError::TooLarge => Status::HeaderTooLarge,
            HeadError::NotImplemented(_) => Status::NotImplemented,
            HeadError::Malformed(why) => {
                log::debug!(
                    "http: port {}: bad request from {}: {why}",
                    self.port(),
                    self.peer
                );
                Status::BadRequest
            }
        };
        self.fail(status, None, since)
    }

    /// A complete, valid head: begin its exchange and choose a backend.
    fn begin_request(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        head: RequestHead,
        scratch: Scratch,
        since: Instant,
        parked: Option<Parked<S>>,
        client: Client,
    ) -> Turn<S> {
        let ex = Exchange::begin(head, &client, scratch, since, ctx.now);
        let ex = match ctx.exchanges.pop() {
            Some(mut spare) => {
                *spare = ex;
                spare
            }
            None => Box::new(ex),
        };
        self.choose_backend(ctx, ex, parked)
    }

    /// Sticky backend if the cookie names a usable one, else the least
    /// loaded; the parked or a pooled connection if there is one, else a
    /// connect.
    fn choose_backend(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        mut ex: Box<Exchange>,
        parked: Option<Parked<S>>,
    ) -> Turn<S> {
        self.service.stats.of(ctx.worker).routed.add(1);
        let backends = &self.service.backends;
        // A login bound to a backend connection goes on where it began,
        // before any cookie or load says otherwise; a backend that left
        // the set ends the pin (the login starts over elsewhere).
        let pinned = self
            .pinned
            .as_deref()
            .and_then(|&a| backends.iter().find(|b| b.addr() == a));
        let sticky = ex
            .sticky()
            .and_then(|v| backends.iter().find(|b| b.named_by(&v)));
        // Among the least loaded, prefer the backend this client's previous
        // request used: its connection is still open here.
        let parked_on = parked.as_ref().map(|p| p.addr).and_then(|a| {
            let least = backends.iter().map(|b| b.active()).min()?;
            backends
                .iter()
                .find(|b| b.addr() == a && !b.is_draining() && b.active() <= least)
        });
        // What neither a login nor a cookie decides is load balancing's.
        let balanced = pinned.is_none() && sticky.is_none();
        let chosen: Option<Arc<Backend>> = pinned
            .or(sticky)
            .or(if ex.sticky().is_none() {
                parked_on
            } else {
                None
            })
            .or_else(|| balance::pick(backends, ctx.cursor, None))
            .cloned();
        if pinned.is_none() {
            self.pinned = None;
        }
        let Some(b) = chosen else {
            return self.refuse(Status::Unavailable, ex);
        };
        let counts = b.stats().of(ctx.worker);
        counts.last_session.stamp(ctx.now);
        counts.balanced.add(u64::from(balanced));
        if let Some(Parked { addr, conn }) = parked {
            if addr == b.addr() {
                ex.set_reused(true);
                counts.reuses.add(1);
                let up = Upstream {
                    conn,
                    lease: BackendLease::acquire(&b),
                };
                return (Stage::SendHead { ex, up, sent: 0 }, Flow::Progress);
            }
            // A TLS connection cannot leave its session: its state is here.
            // Nor can a private one (a login on it). One to a backend that
            // left the set or went down is closed.
            if !conn.is_tls() && !self.logged_in && is_current(ctx, self.port(), addr) {
                ctx.idle.put(ctx.net, addr, conn.into_stream(), ctx.now);
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
            let token = EventTarget::Session(ctx.id, Side::Backend).token();
            if ctx
                .net
                .watch(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_ok()
            {
                let mut conn = Conn::new(stream, ctx.now, Meter::backend(&b, ctx.worker));
                conn.assume_writable();
                ex.set_reused(true);
                counts.reuses.add(1);
                let up = Upstream {
                    conn,
                    lease: BackendLease::acquire(&b),
                };
                return (Stage::SendHead { ex, up, sent: 0 }, Flow::Progress);
            }
        }
        let dialed = connect::dial(ctx, &self.service, Some(&b));
        self.connecting(ex, dialed)
    }

    /// The connect failed or timed out: once more on another backend, then
    /// 503 (HAProxy's `retries 1` + `redispatch`).
    fn redial(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: Box<Exchange>,
        up: Upstream<S>,
        dialing: Dialing,
    ) -> Turn<S> {
        let dialed = connect::redial(ctx, &self.service, up, dialing);
        self.connecting(ex, dialed)
    }

    /// Acts on a step that stopped short, with the stage's parts.
    fn halt(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        halt: Halt,
        ex: Box<Exchange>,
        up: Upstream<S>,
        resume: impl FnOnce(Box<Exchange>, Upstream<S>) -> Stage<S>,
    ) -> Turn<S> {
        match halt {
            Halt::Close(r) => (resume(ex, up), Flow::Close(r)),
            // The client already has a status line: all we can do is cut.
            Halt::Fail(_) if ex.started() => (
                resume(ex, up),
                Flow::Close(CloseReason::Reset(Side::Backend)),
            ),
            Halt::Fail(status) => self.refuse(status, ex),
            Halt::Retry { head_pending } => {
                let answered =
                    ex.response().is_some() || self.bbuf.as_ref().is_some_and(|b| !b.is_empty());
                if !ex.may_retry(answered, head_pending) {
                    return self.refuse(Status::BadGateway, ex);
                }
                self.resend(ctx, ex, up)
            }
        }
    }

    /// A reused connection died before answering an idempotent request
    /// whose bytes are still held: the dialer sends it again on a new
    /// connection to the same backend.
    fn resend(&mut self, ctx: &mut Ctx<'_, S>, mut ex: Box<Exchange>, up: Upstream<S>) -> Turn<S> {
        ex.retry();
        let dialed = connect::resend(ctx, &self.service, up);
        self.connecting(ex, dialed)
    }

    // ---- sending the request head ------------------------------------

    fn send_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        mut ex: Box<Exchange>,
        mut up: Upstream<S>,
        sent: usize,
    ) -> Turn<S> {
        match self.write_request_head(ctx, &mut ex, &mut up, sent) {
            Ok(Some(sent)) => {
                let flow = Flow::progress(up.conn.is_writable());
                (Stage::SendHead { ex, up, sent }, flow)
            }
            Ok(None) => (
                Stage::Exchange {
                    ex,
                    up,
                    sent: 0,
                    eof: false,
                },
                Flow::Progress,
            ),
            Err(h) => self.halt(ctx, h, ex, up, |ex, up| Stage::SendHead { ex, up, sent }),
        }
    }

    /// Writes (more of) the request head, with the body bytes that may
    /// go with it: `Some(sent)` while part of the head is still to go.
    fn write_request_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: &mut Exchange,
        up: &mut Upstream<S>,
        sent: usize,
    ) -> Result<Option<usize>, Halt> {
        let Some(buf) = self.cbuf.as_ref() else {
            return Err(Halt::Close(CloseReason::Reset(Side::Client)));
        };
        let req = ex.request();
        let (head_len, end_of_fields) = (req.head_len, req.end_of_fields);
        let after = &buf.pending()[head_len..];
        let with_head = match ex.request_with_head(after) {
            Ok(m) => m,
            Err(e) => {
                log::debug!(
                    "http: port {}: bad request body from {}: {}",
                    self.service.port(),
                    self.peer,
                    e.reason()
                );
                return Err(Halt::Fail(Status::BadRequest));
            }
        };
        let injects = ex.request_injects();
        let head = Outgoing {
            src: &buf.pending()[..end_of_fields],
            drop: ex.request_drops(),
            injects: &injects,
            body: &after[..with_head],
        };
        let written = match head.write(&mut up.conn, sent, false, ctx.now) {
            Io::Moved(w) | Io::Drained(w) => w,
            Io::Blocked => return Ok(Some(sent)),
            Io::Eof | Io::Failed => return Err(Halt::Retry { head_pending: true }),
        };
        match head.body_written(sent + written) {
            None => Ok(Some(sent + written)),
            Some(body) => {
                match ex.request_sent(body) {
                    Sent::Consume(n) => {
                        if let Some(b) = self.cbuf.as_mut() {
                            b.consumed(n);
                        }
                    }
                    Sent::Hold => {}
                }
                Ok(None)
            }
        }
    }

    // ---- request body up, response down -----------------------------

    fn exchange(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        mut ex: Box<Exchange>,
        mut up: Upstream<S>,
        mut sent: usize,
        mut eof: bool,
    ) -> Turn<S> {
        match self.exchange_round(ctx, &mut ex, &mut up, &mut sent, &mut eof) {
            Ok(Round::Stay(p)) => (Stage::Exchange { ex, up, sent, eof }, Flow::progress(p)),
            Ok(Round::Tunnel) => (
                Stage::Tunnel {
                    ex,
                    up,
                    pipe: Pipe::default(),
                },
                Flow::Progress,
            ),
            Ok(Round::Finished) => self.finish_exchange(ctx, ex, up, eof),
            Err(h) => self.halt(ctx, h, ex, up, |ex, up| Stage::Exchange {
                ex,
                up,
                sent,
                eof,
            }),
        }
    }

    fn exchange_round(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: &mut Exchange,
        up: &mut Upstream<S>,
        sent: &mut usize,
        eof: &mut bool,
    ) -> Result<Round, Halt> {
        let mut progress = false;

        // Request body, client → backend.
        if !ex.request_done() {
            match relay(&mut self.cbuf, ex.request_body(), &mut up.conn, ctx.now) {
                Ok(p) => progress |= p,
                Err(RelayError::Write(_)) => return Err(Halt::Fail(Status::BadGateway)),
                Err(RelayError::Framing(e)) => {
                    // The head already went out: the backend connection
                    // holds part of a message and is never reused.
                    log::debug!(
                        "http: port {}: bad request body from {}: {}",
                        self.port(),
                        self.peer,
                        e.reason()
                    );
                    return Err(Halt::Close(CloseReason::BadFraming(Side::Client)));
                }
            }
        }
        // Read more from the client while its buffer has room: the rest of
        // the body, or pipelined requests that wait their turn.
        if !self.client_eof {
            progress |= self.fill_client(ctx).map_err(Halt::Close)?;
        }
        if self.client_eof
            && !ex.request_body().input_done()
            && self.cbuf.as_ref().is_none_or(Buffer::is_empty)
        {
            // The client gave up in the middle of its request body.
            return Err(Halt::Close(CloseReason::Reset(Side::Client)));
        }

        // Response, backend → client.
        if !*eof {
            match up.conn.fill(&mut self.bbuf, ctx.pool, ctx.now) {
                Io::Moved(_) | Io::Drained(_) => {
                    progress = true;
                    // The backend answered: the request is not sent again.
                    if let (Some(n), Some(b)) = (ex.backend_spoke(), self.cbuf.as_mut()) {
                        b.consumed(n);
                    }
                }
                Io::Eof => {
                    *eof = true;
                    progress = true;
                }
                Io::Blocked => {}
                Io::Failed if ex.response().is_none() => {
                    return Err(Halt::Retry {
                        head_pending: false,
                    })
                }
                Io::Failed => return Err(Halt::Close(CloseReason::Reset(Side::Backend))),
            }
        }
        if ex.response().is_none() {
            match self.parse_response(ctx, ex, up)? {
                true => progress = true,
                // Closed before a whole response head: 502 (or once more,
                // for a reused connection that closed without a byte).
                false if *eof => {
                    return Err(Halt::Retry {
                        head_pending: false,
                    })
                }
                false => return Ok(Round::Stay(progress)),
            }
        }
        if ex.response().is_some() && !ex.started() {
            match self.write_response_head(ctx, ex, sent)? {
                None => return Ok(Round::Stay(progress)),
                Some(AfterHead::Tunnel) => return Ok(Round::Tunnel),
                Some(AfterHead::Interim | AfterHead::Body) => progress = true,
            }
        }
        if ex.started() && !ex.response_done() {
            match relay(
                &mut self.bbuf,
                ex.response_body(),
                &mut self.client,
                ctx.now,
            ) {
                Ok(p) => progress |= p,
                Err(RelayError::Write(_)) => {
                    return Err(Halt::Close(CloseReason::Reset(Side::Client)))
                }
                Err(RelayError::Framing(e)) => {
                    // The client keeps what was valid; both connections end.
                    log::debug!(
                        "http: port {}: bad response body from {}: {}",
                        self.port(),
                        up.backend().addr(),
                        e.reason()
                    );
                    return Err(Halt::Close(CloseReason::BadFraming(Side::Backend)));
                }
            }
            let flushed = self.bbuf.as_ref().is_none_or(Buffer::is_empty);
            // Framing moirai still has to write is not a truncation.
            if *eof && flushed && !ex.response_body().input_done() {
                if ex.response_body().until_close() {
                    // Close-delimited: the close is the end.
                    ex.response_body().end_at_close();
                } else {
                    return Err(Halt::Close(CloseReason::Reset(Side::Backend)));
                }
            }
        }
        if ex.response_done() {
            return Ok(Round::Finished);
        }
        release_if_empty(&mut self.bbuf, ctx.pool);
        Ok(Round::Stay(progress))
    }

    /// Looks for a response head in the backend's bytes and asks the
    /// exchange what to do with it; true when something was done.
    fn parse_response(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: &mut Exchange,
        up: &Upstream<S>,
    ) -> Result<bool, Halt> {
        let Some(buf) = self.bbuf.as_mut() else {
            return Ok(false);
        };
        // Empty lines before a status line (an old server's extra CRLF
        // after a body) are skipped, never forwarded.
        let blank = request::leading_empty_lines(buf.pending());
        if blank > 0 {
            buf.consumed(blank);
            return Ok(true);
        }
        let is_head = ex.request().is_head;
        let head = match response::parse(buf.pending(), is_head, ex.response_drops_mut()) {
            Ok(Some(head)) => head,
            Ok(None) if buf.is_full() => return Err(Halt::Fail(Status::BadGateway)),
            Ok(None) => return Ok(false),
            Err(_) => return Err(Halt::Fail(Status::BadGateway)),
        };
        let code = head.code;
        let closing = self.draining || self.client_eof;
        let cookie = up.backend().cookie();
        match ex.on_response(head, Some(cookie), closing, ctx.now) {
            OnResponse::BadGateway => return Err(Halt::Fail(Status::BadGateway)),
            OnResponse::Interim => {}
            OnResponse::Forward | OnResponse::Tunnel => {
                let took = ctx.now.saturating_duration_since(ex.timing.head);
                record(&mut ctx.latency(self.port()).request, took);
                up.backend()
                    .stats()
                    .of(ctx.worker)
                    .max_response_us
                    .raise(micros(took));
            }
        }
        self.service.stats.of(ctx.worker).response(code);
        up.backend().stats().of(ctx.worker).response(code);
        Ok(true)
    }

    /// Writes (more of) the response head: `None` while part of it is
    /// still to go, else what follows it.
    fn write_response_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: &mut Exchange,
        sent: &mut usize,
    ) -> Result<Option<AfterHead>, Halt> {
        let (Some(resp), Some(buf)) = (ex.response(), self.bbuf.as_ref()) else {
            return Ok(None);
        };
        let after = &buf.pending()[resp.head_len..];
        let Ok(with_head) = ex.response_with_head(after) else {
            return Err(Halt::Fail(Status::BadGateway));
        };
        // A response that ends the connection with this write carries the
        // TLS close_notify too (one write, one segment fewer).
        let last = ex.ends_with_head(with_head, self.draining || self.client_eof);
        let injects = ex.response_injects();
        let head = Outgoing {
            src: &buf.pending()[..resp.end_of_fields],
            drop: ex.response_drops(),
            injects: &injects,
            body: &after[..with_head],
        };
        let written = match head.write(&mut self.client, *sent, last, ctx.now) {
            Io::Moved(w) | Io::Drained(w) => w,
            Io::Blocked => return Ok(None),
            Io::Eof | Io::Failed => return Err(Halt::Close(CloseReason::Reset(Side::Client))),
        };
        let Some(body) = head.body_written(*sent + written) else {
            *sent += written;
            return Ok(None);
        };
        *sent = 0;
        let (done, after) = ex.response_sent(body);
        if let Some(b) = self.bbuf.as_mut() {
            b.consumed(done);
        }
        Ok(Some(after))
    }

    /// Both messages are complete: keep or drop each side.
    fn finish_exchange(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        mut ex: Box<Exchange>,
        up: Upstream<S>,
        eof: bool,
    ) -> Turn<S> {
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            let code = ex.response().map(|r| r.code);
            self.log_request(
                sink,
                &ex,
                Some(&up.lease),
                code,
                Termination::NORMAL,
                ctx.now,
            );
        }
        let addr = up.backend().addr();
        if ex.connection_bound() {
            if !self.logged_in {
                log::debug!(
                    "http: port {}: {} logs in on {addr} (NTLM/Negotiate): its connections stay private",
                    self.port(),
                    self.peer
                );
            }
            self.logged_in = true;
            if self.pinned.as_deref() != Some(&addr) {
                self.pinned = Some(Box::new(addr));
            }
        }
        let end = BackendEnd {
            eof,
            leftover: self.bbuf.as_ref().is_some_and(|b| !b.is_empty()),
            tls: up.conn.is_tls(),
            private: self.logged_in,
        };
        let finish = ex.finish(self.draining || self.client_eof, end);
        let mut parked = None;
        match finish.backend {
            Reuse::Park => {
                parked = Some(Parked {
                    addr,
                    conn: up.conn,
                })
            }
            Reuse::Pool if is_current(ctx, self.port(), addr) => {
                ctx.idle.put(ctx.net, addr, up.conn.into_stream(), ctx.now);
            }
            Reuse::Pool | Reuse::Drop => {}
        }
        if let Some(b) = self.bbuf.take() {
            ctx.pool.give(b);
        }
        recycle(ctx.scratch, ex.take_scratch());
        if ctx.exchanges.len() < MAX_FREE_EXCHANGES {
            ctx.exchanges.push(ex);
        }
        self.served = self.served.saturating_add(1);
        let next = Stage::ReadHead {
            since: None,
            parked,
        };
        if !finish.keep_client {
            // TLS says close_notify first. The close is the FIN, so a
            // shutdown before it would only cost a syscall.
            let _ = self.client.close_notify();
            return (next, Flow::Close(CloseReason::Done));
        }
        release_if_empty(&mut self.cbuf, ctx.pool);
        (next, Flow::Progress)
    }

    // ---- our own answers ---------------------------------------------

    fn answer(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        answer: Answer,
        sent: usize,
        ex: Option<Box<Exchange>>,
        since: Instant,
    ) -> Turn<S> {
        let bytes = answer.bytes();
        if sent < bytes.len() {
            let flow = match self.client.send(&[IoSlice::new(&bytes[sent..])], ctx.now) {
                Io::Moved(n) | Io::Drained(n) => {
                    let stage = Stage::Answer {
                        answer,
                        sent: sent + n,
                        ex,
                        since,
                    };
                    return (stage, Flow::Progress);
                }
                Io::Blocked => Flow::Wait,
                Io::Eof | Io::Failed => Flow::Close(CloseReason::Reset(Side::Client)),
            };
            let stage = Stage::Answer {
                answer,
                sent,
                ex,
                since,
            };
            return (stage, flow);
        }
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            let line = self.access(ex.as_deref(), None, since, ctx.now);
            sink.access(&Access {
                status: Some(answer.code()),
                term: answer.termination(),
                ..line
            });
        }
        let _ = self.client.shutdown_write();
        (
            Stage::Linger {
                until: ctx.now + LINGER,
            },
            Flow::Progress,
        )
    }

    /// After an answer: read and discard until the client closes, so
    /// unread input does not turn our close into a reset.
    fn linger(&mut self, ctx: &mut Ctx<'_, S>, until: Instant) -> Turn<S> {
        if let Some(b) = self.cbuf.as_mut() {
            b.consumed(b.len());
        }
        let flow = match self.client.fill(&mut self.cbuf, ctx.pool, ctx.now) {
            Io::Moved(_) | Io::Drained(_) => Flow::Progress,
            Io::Eof | Io::Failed => Flow::Close(CloseReason::Done),
            Io::Blocked => Flow::Wait,
        };
        (Stage::Linger { until }, flow)
    }

    // ---- timers ------------------------------------------------------

    /// When the session must be looked at again if nothing happens.
    pub fn deadline(&self) -> Instant {
        let t = &self.service.timeouts;
        match &self.stage {
            Stage::ReadHead {
                since: Some(since), ..
            } => *since + self.header_timeout,
            // A new connection has the header timeout for its first
            // request, counted from accept: a silent connection does
            // not hold a slot for the whole client timeout.
            Stage::ReadHead { since: None, .. } if self.served == 0 => {
                self.accepted + self.header_timeout
            }
            // Between requests of a keep-alive connection.
            Stage::ReadHead { since: None, .. } => self.client.last_io() + t.client,
            Stage::Connect { dialing, .. } => dialing.deadline,
            Stage::SendHead { up, .. } | Stage::Exchange { up, .. } => {
                pipe::idle_deadline(&self.client, Some(&up.conn), t)
            }
            Stage::Tunnel { up, .. } => pipe::tunnel_deadline(&self.client, &up.conn, t),
            Stage::Answer { .. } => self.client.last_io() + LINGER * 5,
            Stage::Linger { until } => *until,
            Stage::Moving => self.accepted,
        }
    }

    /// The session's deadline passed: 408, 504, a redispatch, or a close,
    /// as the stage says.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, S>) -> Step {
        let server = self.service.timeouts.server;
        let stage = mem::replace(&mut self.stage, Stage::Moving);
        let (next, flow) = match stage {
            Stage::ReadHead {
                since: Some(since), ..
            } => self.fail(Status::RequestTimeout, None, since),
            s @ Stage::ReadHead { since: None, .. } => {
                (s, Flow::Close(CloseReason::IdleTimeout(Side::Client)))
            }
            Stage::Connect { ex, up, dialing } => self.redial(ctx, ex, up, dialing),
            Stage::SendHead { ex, up, sent } => {
                let idle = ctx.now >= up.conn.last_io() + server;
                self.time_out(ex.on_timeout(idle), ex, |ex| Stage::SendHead {
                    ex,
                    up,
                    sent,
                })
            }
            Stage::Exchange { ex, up, sent, eof } => {
                let idle = ctx.now >= up.conn.last_io() + server;
                self.time_out(ex.on_timeout(idle), ex, |ex| Stage::Exchange {
                    ex,
                    up,
                    sent,
                    eof,
                })
            }
            Stage::Tunnel { ex, up, pipe } => {
                let side = pipe::idle_side(
                    &self.client,
                    Some(&up.conn),
                    &self.service.timeouts,
                    ctx.now,
                );
                (
                    Stage::Tunnel { ex, up, pipe },
                    Flow::Close(CloseReason::IdleTimeout(side)),
                )
            }
            s @ (Stage::Answer { .. } | Stage::Linger { .. } | Stage::Moving) => {
                (s, Flow::Close(CloseReason::Done))
            }
        };
        self.stage = next;
        match flow {
            Flow::Close(r) => Step::Closed(r),
            Flow::Progress | Flow::Wait => self.drive(ctx),
        }
    }

    fn time_out(
        &mut self,
        t: Timeout,
        ex: Box<Exchange>,
        resume: impl FnOnce(Box<Exchange>) -> Stage<S>,
    ) -> Turn<S> {
        match t {
            Timeout::Answer(status) => self.refuse(status, ex),
            Timeout::BackendIdle => (
                resume(ex),
                Flow::Close(CloseReason::IdleTimeout(Side::Backend)),
            ),
            Timeout::ClientIdle => (
                resume(ex),
                Flow::Close(CloseReason::IdleTimeout(Side::Client)),
            ),
        }
    }

    // ---- access lines ------------------------------------------------

    /// The access line of a request, with what is known now.
    fn access(
        &self,
        ex: Option<&Exchange>,
        lease: Option<&BackendLease>,
        since: Instant,
        now: Instant,
    ) -> Access<'_> {
        let (method, target) = self.req_line.split_once(' ').unwrap_or(("-", "-"));
        let (rx, tx) = self.client.bytes();
        Access {
            kind: "http",
            client: self.peer,
            service: self.service.port(),
            frontend: self.service.index,
            tls: self.service.spec.kind.is_tls(),
            server: lease.map_or(0, |l| l.backend().slot()),
            version: if ex.is_some_and(|e| !e.request().http11) {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            backend: lease.map(|l| l.backend().addr()),
            status: None,
            request: (!self.req_line.is_empty()).then_some((method, target)),
            bytes: (rx - self.marks.0, tx - self.marks.1),
            t_request: None,
            t_connect: ex.and_then(|e| e.timing.connect),
            t_response: ex.and_then(|e| e.timing.response()),
            t_total: now.saturating_duration_since(since),
            term: Termination::NORMAL,
        }
    }

    /// Sends the access line of a completed request.
    fn log_request(
        &mut self,
        sink: &mut Sink,
        ex: &Exchange,
        lease: Option<&BackendLease>,
        status: Option<u16>,
        term: Termination,
        now: Instant,
    ) {
        sink.access(&Access {
            t_request: Some(ex.timing.request()),
            status,
            term,
            ..self.access(Some(ex), lease, ex.timing.start, now)
        });
        self.marks = self.client.bytes();
        // Freed, not kept: a connection between requests holds no memory
        // for its next line.
        self.req_line = String::new();
    }

    /// The access line a closing session still owes: the request in
    /// progress, or the answer it was giving. An idle keep-alive
    /// connection closing owes none.
    pub fn log_close(&self, sink: &mut Sink, r: CloseReason, now: Instant) {
        let line = match &self.stage {
            Stage::Answer {
                answer, ex, since, ..
            } => Access {
                status: Some(answer.code()),
                term: answer.termination(),
                ..self.access(ex.as_deref(), None, *since, now)
            },
            Stage::Connect { ex, up, .. }
            | Stage::SendHead { ex, up, .. }
            | Stage::Exchange { ex, up, .. }
            | Stage::Tunnel { ex, up, .. } => Access {
                term: r.termination(),
                ..self.access(Some(ex), Some(&up.lease), ex.timing.start, now)
            },
            _ => return,
        };
        sink.access(&line);
    }

    /// Gives the session's buffers back before it is dropped.
    pub fn release(&mut self, pool: &mut BufferPool) {
        for b in [self.cbuf.take(), self.bbuf.take()].into_iter().flatten() {
            pool.give(b);
        }
    }
}

/// What a round of the exchange stage leads to.
enum Round {
    /// Stay, with or without progress.
    Stay(bool),
    /// The `101` went out: tunnel.
    Tunnel,
    /// Both messages are complete.
    Finished,
}

/// A head to write: `src` (up to its final CRLF) without the `drop`
/// ranges, plus the `injects` and CRLF, then the `body` bytes that go in
/// the same write. Request and response heads are written alike.
struct Outgoing<'a> {
    src: &'a [u8],
    drop: &'a [std::ops::Range<usize>],
    injects: &'a [&'a [u8]],
    body: &'a [u8],
}

impl Outgoing<'_> {
    fn head_len(&self) -> usize {
        virtual_len(self.src.len(), self.drop, self.injects)
    }

    /// Writes from byte `sent` of the whole on (nothing is copied);
    /// `last`: nothing follows before the close.
    fn write<S: Transport>(&self, dst: &mut Conn<S>, sent: usize, last: bool, now: Instant) -> Io {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = head_slices(self.src, self.drop, self.injects, sent, &mut slices);
        let head = self.head_len();
        if !self.body.is_empty() && n < MAX_SLICES {
            slices[n] = IoSlice::new(&self.body[sent.saturating_sub(head)..]);
            n += 1;
        }
        if last {
            dst.send_last(&slices[..n], now)
        } else {
            dst.send(&slices[..n], now)
        }
    }

    /// With `sent` bytes of the whole written: `None` while the head is
    /// not all out, else how many body bytes went after it.
    fn body_written(&self, sent: usize) -> Option<usize> {
        sent.checked_sub(self.head_len())
    }
}

/// Takes the current service of `service`'s port when it is still of
/// the same kind: false when the port serves something else now, or
/// nothing.
fn follow_current<S>(service: &mut Arc<ServiceSnapshot>, ctx: &Ctx<'_, S>) -> bool {
    match ctx.current(service.port()) {
        Some(cur) if cur.spec.kind == service.spec.kind => {
            if !Arc::ptr_eq(cur, service) {
                *service = Arc::clone(cur);
            }
            true
        }
        _ => false,
    }
}

/// Whether `addr` is a usable backend of the session's service now: only
/// then may a connection to it wait in the pool.
fn is_current<S>(ctx: &Ctx<'_, S>, port: u16, addr: SocketAddr) -> bool {
    ctx.current(port)
        .is_some_and(|s| s.backends.iter().any(|b| b.addr() == addr))
}

/// Keeps "METHOD target" of the head at the front of `head` in `line`
/// (reusing its allocation), at most 1 KiB of it.
/// Gives a request's vectors back to the worker's free list, emptied.
fn recycle(free: &mut Vec<Scratch>, mut s: Scratch) {
    if free.len() < MAX_FREE_SCRATCH {
        s.clear();
        free.push(s);
    }
}

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

/// Writes the body bytes at the front of `slot` to `dst`, no further than
/// the body's end (what follows is the next message), through
/// [`body::relay`]: chunked framing is re-made, data moves untouched.
fn relay<S: Transport>(
    slot: &mut Option<Buffer>,
    body: &mut Body,
    dst: &mut Conn<S>,
    now: Instant,
) -> Result<bool, RelayError> {
    if !dst.is_writable() {
        return Ok(false);
    }
    let input = slot.as_ref().map_or(&[][..], Buffer::pending);
    let r = body::relay(body, input, |slices| dst.send_io(slices, now))?;
    if let Some(b) = slot.as_mut() {
        b.consumed(r.consumed);
    }
    Ok(r.written > 0 || r.consumed > 0)
}
