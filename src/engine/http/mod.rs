//! One HTTP/1.x client connection (`http` and the https types). The
//! session owns the connection: the client socket, the buffer of what the
//! client sent, keep-alive, drain, and the stages that need no backend:
//! reading a request head, the balancer's own answers, lingering after
//! one, and the tunnel after a `101`. Each request that goes to a backend
//! is a [`Leg`](leg::Leg): its exchange (which makes every decision), its
//! backend connection, the bytes from it, its access line's facts. HTTP/1
//! runs one leg at a time.
//!
//! Stages, each holding what it needs: `ReadHead` → `Leg` (connect,
//! skipped with a parked or pooled connection; send the head; then
//! request body up and response down) → `ReadHead` for the next request;
//! or `Tunnel` after a `101`; or `Answer` (the balancer's own response)
//! then `Linger`.
//!
//! The parts, by file: reading a head and answering without a backend
//! (`head.rs`), choosing the backend and its connection (`choose.rs`), the
//! leg's stages (`leg.rs`), the client side it works through (`front.rs`)
//! and its end (`finish.rs`), writing heads and relaying bodies
//! (`write.rs`), access lines (`logline.rs`).

mod choose;
mod finish;
mod front;
pub mod h2;
mod head;
mod leg;
mod logline;
pub mod stream;
mod write;

use std::borrow::Cow;
use std::mem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buffer::{Buffer, BufferPool};
use super::conn::{Conn, Io, Readiness, Transport};
use super::legs::Legs;
use super::meter::Meter;
use super::pipe::{self, Streams};
use super::session::Session;
use super::step::{CloseReason, Ctx, Step, ROUNDS_PER_TURN};
use super::syslog::Sink;
use super::token::{Side, SlotId};
use crate::proto::answer::Answer;
use crate::proto::http1::errors::Status;
use crate::proto::http1::exchange::Exchange;
use crate::proto::http1::front::answer_bytes;
use crate::proto::http1::Scratch;
use crate::proto::pipe::Pipe;
use crate::snapshot::{Backend, BackendTls, ServiceSnapshot};
use crate::sys::net::TcpStream;

use front::H1Front;
use leg::{Advance, Leg, Outcome};
use logline::RequestLog;

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
    /// A request on its way to a backend and its response on the way
    /// back.
    Leg(Leg<S>),
    /// After a `101`: bytes both ways over the leg's connection.
    Tunnel { leg: Leg<S>, pipe: Pipe },
    /// The balancer's own answer.
    Answer(Answering),
    /// HTTP/2: the codec and the streams (boxed: only such connections
    /// pay for it).
    H2(Box<h2::H2<S>>),
    /// After an answer: reading and discarding until the client closes.
    Linger { until: Instant },
    /// Only while a stage's handler runs: the stage is out of its slot.
    Vacant,
}

/// The balancer's own answer on its way: written by the HTTP/1 front as
/// `out`, `sent` bytes of it out. `ex` is the request it answers, when one
/// was understood.
#[derive(Debug)]
struct Answering {
    answer: Answer,
    out: Cow<'static, [u8]>,
    sent: usize,
    ex: Option<Box<Exchange>>,
    log: RequestLog,
    since: Instant,
}

/// A backend connection kept between a client's requests, with the
/// backend's address and its leg slot (the socket's token).
#[derive(Debug)]
struct Parked<S> {
    addr: SocketAddr,
    conn: Conn<S>,
    id: SlotId,
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

type Turn<S> = (Stage<S>, Flow);

/// One client connection of an HTTP service.
#[derive(Debug)]
pub struct HttpSession<S = TcpStream> {
    service: Arc<ServiceSnapshot>,
    peer: SocketAddr,
    client: Conn<S>,
    stage: Stage<S>,
    /// Bytes from the client (request heads and bodies) not yet written
    /// to a backend.
    to_backend: Option<Buffer>,
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
    /// The client connection's byte counters (read, written) when the
    /// last access line was sent: the next request's line counts from
    /// there.
    logged_bytes: (u64, u64),
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
            to_backend: None,
            draining: false,
            client_eof: false,
            header_timeout: ctx.header_timeout,
            accepted: ctx.now,
            served: 0,
            pinned: None,
            logged_in: false,
            closing: None,
            logged_bytes: (0, 0),
            worker: ctx.worker,
        })
    }

    /// Runs one stage once; every path hands back the stage that follows.
    fn turn(&mut self, ctx: &mut Ctx<'_, S>, stage: Stage<S>) -> Turn<S> {
        match stage {
            Stage::ReadHead { since, parked } => self.read_head(ctx, since, parked),
            // `drive` steps a leg in place before it comes here; one that
            // came anyway is stepped the same way.
            leg @ Stage::Leg(_) => {
                self.stage = leg;
                let flow = self.leg_in_place(ctx).unwrap_or(Flow::Wait);
                (mem::replace(&mut self.stage, Stage::Vacant), flow)
            }
            Stage::Tunnel { mut leg, mut pipe } => {
                let streams = Streams {
                    client: &mut self.client,
                    backend: &mut leg.up.conn,
                    to_backend: &mut self.to_backend,
                    to_client: &mut leg.to_client,
                    pipe: &mut pipe,
                    preface: None,
                };
                let flow = match pipe::round(streams, ctx.pool, ctx.now) {
                    Ok(p) => Flow::progress(p),
                    Err(r) => Flow::Close(r),
                };
                (Stage::Tunnel { leg, pipe }, flow)
            }
            Stage::Answer(a) => self.answer(ctx, a),
            Stage::Linger { until } => self.linger(ctx, until),
            Stage::H2(h2) => self.h2_turn(ctx, h2),
            Stage::Vacant => (Stage::Vacant, Flow::Close(CloseReason::Done)),
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

    /// Starts answering with `status` and closing. `ex` and `log`: the
    /// request it answers, as far as it was understood.
    fn fail(
        &mut self,
        status: Status,
        ex: Option<Box<Exchange>>,
        log: RequestLog,
        since: Instant,
    ) -> Turn<S> {
        let a = self.failing(status, ex, log, since);
        (Stage::Answer(a), Flow::Progress)
    }

    /// Counts the answer `status` (see [`HttpSession::fail`]) and makes it.
    fn failing(
        &mut self,
        status: Status,
        ex: Option<Box<Exchange>>,
        log: RequestLog,
        since: Instant,
    ) -> Answering {
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
        answering(Answer::Error(status), ex, log, since)
    }

    /// [`HttpSession::fail`] for a request that was understood: its
    /// exchange goes with the answer, for the access line.
    fn refuse(&mut self, status: Status, ex: Box<Exchange>, log: RequestLog) -> Turn<S> {
        let since = ex.timing().start;
        self.fail(status, Some(ex), log, since)
    }

    /// A failure that is not about one request: nothing of a request goes
    /// with the answer.
    fn fail_connection(&mut self, status: Status, since: Instant) -> Turn<S> {
        let log = RequestLog::new(self.logged_bytes);
        self.fail(status, None, log, since)
    }

    /// Reads what the client sent into its buffer.
    fn fill_client(&mut self, ctx: &mut Ctx<'_, S>) -> Result<bool, CloseReason> {
        fill(
            &mut self.client,
            &mut self.to_backend,
            &mut self.client_eof,
            ctx,
        )
    }

    /// A round of a `Leg` stage through the HTTP/1 front, run where the
    /// stage stands: most steps leave the leg going, and then neither the
    /// leg nor the stage (184 bytes) moves; only a step that ends the leg
    /// or makes it something else takes it out. `None` for any other
    /// stage, which [`HttpSession::turn`] runs.
    fn leg_in_place(&mut self, ctx: &mut Ctx<'_, S>) -> Option<Flow> {
        let Stage::Leg(leg) = &mut self.stage else {
            return None;
        };
        let mut front = H1Front {
            client: &mut self.client,
            to_backend: &mut self.to_backend,
            client_eof: &mut self.client_eof,
            draining: self.draining,
            peer: self.peer,
        };
        let advance = leg.advance(ctx, &self.service, &mut front);
        if let Advance::Going(flow) = advance {
            return Some(flow);
        }
        let leg = match mem::replace(&mut self.stage, Stage::Vacant) {
            Stage::Leg(leg) => leg,
            other => {
                self.stage = other;
                return None;
            }
        };
        let outcome = leg.conclude(ctx, &self.service, advance);
        let (next, flow) = self.after_leg(ctx, outcome);
        self.stage = next;
        Some(flow)
    }

    /// What the connection does after a step of its leg.
    fn after_leg(&mut self, ctx: &mut Ctx<'_, S>, outcome: Outcome<S>) -> Turn<S> {
        match outcome {
            Outcome::Going(leg, flow) => (Stage::Leg(leg), flow),
            Outcome::Tunnel(leg) => (
                Stage::Tunnel {
                    leg,
                    pipe: Pipe::default(),
                },
                Flow::Progress,
            ),
            Outcome::Finished(leg) => self.finish_leg(ctx, leg),
            Outcome::Refused(status, ex, log) => self.refuse(status, ex, log),
        }
    }

    /// After an answer: read and discard until the client closes, so
    /// unread input does not turn our close into a reset.
    fn linger(&mut self, ctx: &mut Ctx<'_, S>, until: Instant) -> Turn<S> {
        if let Some(b) = self.to_backend.as_mut() {
            b.consumed(b.len());
        }
        let flow = match self.client.fill(&mut self.to_backend, ctx.pool, ctx.now) {
            Io::Moved(_) | Io::Drained(_) => Flow::Progress,
            Io::Eof | Io::Failed => Flow::Close(CloseReason::Done),
            Io::Blocked => Flow::Wait,
        };
        (Stage::Linger { until }, flow)
    }
}

/// Reads what the client sent into `to_backend`; its FIN sets
/// `client_eof`.
fn fill<S: Transport>(
    client: &mut Conn<S>,
    to_backend: &mut Option<Buffer>,
    client_eof: &mut bool,
    ctx: &mut Ctx<'_, S>,
) -> Result<bool, CloseReason> {
    match client.fill(to_backend, ctx.pool, ctx.now) {
        Io::Eof => {
            *client_eof = true;
            Ok(true)
        }
        Io::Failed => Err(CloseReason::Reset(Side::Client)),
        io => Ok(io.progressed()),
    }
}

impl<S: Transport> Session<S> for HttpSession<S> {
    fn on_leg_event(&mut self, ctx: &mut Ctx<'_, S>, leg: SlotId, r: Readiness) -> Step {
        // (Looked at in place: an HTTP/1 stage is not moved per event.)
        if !matches!(self.stage, Stage::H2(_)) {
            return self.on_event(ctx, Side::Backend, r);
        }
        let Stage::H2(mut h2) = mem::replace(&mut self.stage, Stage::Vacant) else {
            return Step::Closed(CloseReason::Done);
        };
        self.h2_leg_event(ctx, &mut h2, leg, r);
        // The responses of several backends that one poll reports go out
        // in one write: this run queues frames, the worker's run after
        // its batch of events writes them.
        h2.defer_writes(true);
        self.stage = Stage::H2(h2);
        let step = self.drive(ctx);
        match &mut self.stage {
            Stage::H2(h2) => {
                h2.defer_writes(false);
                if step == Step::Open && h2.has_output() {
                    Step::Again
                } else {
                    step
                }
            }
            _ => step,
        }
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_, S>, side: Side, r: Readiness) -> Step {
        match (side, &mut self.stage) {
            (Side::Client, _) => self.client.note(r),
            (Side::Backend, Stage::Leg(leg) | Stage::Tunnel { leg, .. }) => leg.up.conn.note(r),
            (Side::Backend, Stage::ReadHead { parked, .. }) => {
                // An idle backend connection has nothing to say: any
                // input or hang-up means the backend is closing it. Room
                // to write is noted: the write that filled its buffer may
                // have been the last before it was parked, and the edge
                // that says the room came back comes only once.
                if r.says_anything() {
                    if let Some(p) = parked.take() {
                        ctx.legs.close(p.id);
                    }
                } else if let Some(p) = parked {
                    p.conn.note(r);
                }
            }
            (Side::Backend, _) => {}
        }
        self.drive(ctx)
    }

    fn drive(&mut self, ctx: &mut Ctx<'_, S>) -> Step {
        if let Some(reason) = self.closing {
            return self.close_after_flush(reason);
        }
        // TLS records left over from earlier writes go first: handshake
        // flights, the tail of a response.
        if !self.client.flush_if_writable() {
            return Step::Closed(CloseReason::Reset(Side::Client));
        }
        if let Stage::Leg(leg) = &mut self.stage {
            if !leg.flush_backend() {
                return Step::Closed(CloseReason::Reset(Side::Backend));
            }
        }
        for _ in 0..ROUNDS_PER_TURN {
            let flow = match self.leg_in_place(ctx) {
                Some(flow) => flow,
                None => {
                    let stage = mem::replace(&mut self.stage, Stage::Vacant);
                    let (next, flow) = self.turn(ctx, stage);
                    self.stage = next;
                    flow
                }
            };
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

    fn deadline(&self) -> Instant {
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
            Stage::Leg(leg) => leg.deadline(&self.client, t),
            Stage::Tunnel { leg, .. } => pipe::tunnel_deadline(&self.client, &leg.up.conn, t),
            Stage::Answer(_) => self.client.last_io() + LINGER * 5,
            Stage::Linger { until } => *until,
            Stage::H2(h2) => self.h2_deadline(h2),
            Stage::Vacant => self.accepted,
        }
    }

    /// 408, 504, a redispatch, or a close, as the stage says.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, S>) -> Step {
        let stage = mem::replace(&mut self.stage, Stage::Vacant);
        let (next, flow) = match stage {
            Stage::ReadHead {
                since: Some(since), ..
            } => self.fail_connection(Status::RequestTimeout, since),
            s @ Stage::ReadHead { since: None, .. } => {
                (s, Flow::Close(CloseReason::IdleTimeout(Side::Client)))
            }
            Stage::Leg(leg) => {
                let outcome = leg.on_timer(ctx, &self.service);
                self.after_leg(ctx, outcome)
            }
            Stage::Tunnel { leg, pipe } => {
                let side = pipe::idle_side(
                    &self.client,
                    Some(&leg.up.conn),
                    &self.service.timeouts,
                    ctx.now,
                );
                (
                    Stage::Tunnel { leg, pipe },
                    Flow::Close(CloseReason::IdleTimeout(side)),
                )
            }
            Stage::H2(h2) => self.h2_timer(ctx, h2),
            s @ (Stage::Answer(_) | Stage::Linger { .. } | Stage::Vacant) => {
                (s, Flow::Close(CloseReason::Done))
            }
        };
        self.stage = next;
        match flow {
            Flow::Close(r) => Step::Closed(r),
            Flow::Progress | Flow::Wait => self.drive(ctx),
        }
    }

    fn service(&self) -> &ServiceSnapshot {
        &self.service
    }

    /// The backend of the request in progress, if any.
    fn backend(&self) -> Option<&Backend> {
        match &self.stage {
            Stage::Leg(leg) | Stage::Tunnel { leg, .. } => Some(&**leg.up.backend()),
            Stage::H2(h2) => Self::h2_backend(h2),
            _ => None,
        }
    }

    /// The request in progress, or the answer being given. An idle
    /// keep-alive connection closing owes none.
    fn log_close(&self, sink: &mut Sink, r: CloseReason, now: Instant) {
        self.log_unfinished(sink, r, now);
    }

    fn hand_back(&mut self, ctx: &mut Ctx<'_, S>) {
        match &mut self.stage {
            Stage::ReadHead { parked, .. } => {
                if let Some(p) = parked.take() {
                    self.unpark(ctx, p);
                }
            }
            Stage::H2(h2) => {
                for p in Self::h2_parked(h2) {
                    self.unpark(ctx, p);
                }
            }
            _ => {}
        }
    }

    fn release(&mut self, pool: &mut BufferPool, legs: &mut Legs) {
        if let Stage::H2(_) = self.stage {
            if let Stage::H2(mut h2) = mem::replace(&mut self.stage, Stage::Vacant) {
                self.h2_release(&mut h2, pool, legs);
            }
        }
        let leg = match &mut self.stage {
            Stage::Leg(leg) | Stage::Tunnel { leg, .. } => {
                legs.close(leg.id);
                leg.to_client.take()
            }
            Stage::ReadHead {
                parked: Some(p), ..
            } => {
                // Not handed back (the worker is exiting). Clean (parked
                // after a whole exchange, dropped on any input): a reset,
                // as the pool closes what it lets go, leaves no TIME_WAIT
                // socket.
                legs.close(p.id);
                p.conn.reset_on_close();
                None
            }

            _ => None,
        };
        for b in [self.to_backend.take(), leg].into_iter().flatten() {
            pool.give(b);
        }
    }

    /// Waiting for a request that has not begun.
    fn is_idle(&self) -> bool {
        matches!(self.stage, Stage::ReadHead { since: None, .. })
            && self.served > 0
            && self.to_backend.as_ref().is_none_or(Buffer::is_empty)
    }

    /// The exchange in progress is the last (its response says
    /// `Connection: close` if it has not started).
    fn set_draining(&mut self) {
        self.draining = true;
    }

    /// An HTTP/2 connection sends its GOAWAY now: an idle one would
    /// otherwise hear of the drain only at its next frame.
    fn announces_drain(&self) -> bool {
        matches!(self.stage, Stage::H2(_))
    }
}

/// `answer` (to the request `ex`, if one was understood) on its way, in
/// the HTTP/1 bytes its front writes (an HTTP/2 stream translates them).
fn answering(
    answer: Answer,
    ex: Option<Box<Exchange>>,
    log: RequestLog,
    since: Instant,
) -> Answering {
    Answering {
        out: answer_bytes(&answer),
        answer,
        sent: 0,
        ex,
        log,
        since,
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

impl<S> HttpSession<S> {
    /// This service's backend TLS (none: plain): which pooled or parked
    /// connections its requests may take.
    fn backend_tls(&self) -> Option<&BackendTls> {
        self.service.tls.as_ref().and_then(|t| t.client.as_deref())
    }
}

/// Whether `addr` is a usable backend of the session's service now: only
/// then may a connection to it wait in the pool.
fn is_current<S>(ctx: &Ctx<'_, S>, port: u16, addr: SocketAddr) -> bool {
    ctx.current(port)
        .is_some_and(|s| s.backends.iter().any(|b| b.addr() == addr))
}

/// Gives a request's vectors back to the worker's free list, emptied.
fn recycle(free: &mut Vec<Scratch>, mut s: Scratch) {
    if free.len() < MAX_FREE_SCRATCH {
        s.clear();
        free.push(s);
    }
}
