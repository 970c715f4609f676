//! A leg: one request in flight on a backend, with its own exchange,
//! backend connection, buffer of the backend's bytes and access line
//! facts. Its steps: `Connect` (skipped on a parked or pooled
//! connection), `SendHead`, then `Exchange` (request body up, response
//! down) until both messages are complete.
//!
//! A leg knows nothing of the client connection: it reads its request
//! from, and writes its response to, a [`Front`] (`front.rs`). A step
//! answers with an [`Outcome`], and the session decides what its
//! connection does next.

use std::time::Instant;

use super::front::Front;
use super::logline::RequestLog;
use super::write::{relay, Outgoing};
use super::Flow;
use crate::config::Timeouts;
use crate::engine::buffer::Buffer;
use crate::engine::conn::{release_if_empty, Conn, Io, Transport};
use crate::engine::connect::{self, Dialing, Progress, Upstream};
use crate::engine::pipe;
use crate::engine::step::{CloseReason, Ctx};
use crate::engine::token::{EventTarget, Side, SlotId};
use crate::metrics::stats::{micros, record};
use crate::proto::http1::back::OnResponse;
use crate::proto::http1::body::RelayError;
use crate::proto::http1::errors::Status;
use crate::proto::http1::exchange::{AfterHead, Exchange};
use crate::proto::http1::request;
use crate::proto::transaction::{Failure, Sent, Timeout};
use crate::snapshot::ServiceSnapshot;
use crate::sys::poll::Token;

/// What a leg's step leads to.
#[derive(Debug)]
pub(super) enum Outcome<S> {
    /// The leg goes on; the flow says whether to run it again.
    Going(Leg<S>, Flow),
    /// The `101` went out: bytes both ways over its connection.
    Tunnel(Leg<S>),
    /// Both messages are complete.
    Finished(Leg<S>),
    /// The request is answered with this status by the front; the leg's
    /// backend side is gone (its slot freed, its buffer given back).
    Refused(Status, Box<Exchange>, RequestLog),
}

/// One request in flight on a backend.
#[derive(Debug)]
pub(super) struct Leg<S> {
    /// The transaction: every decision about this request and its
    /// response.
    pub ex: Box<Exchange>,
    /// The backend connection, with its lease on the backend.
    pub up: Upstream<S>,
    /// Bytes from the backend (response heads and bodies) not yet written
    /// to the client.
    pub to_client: Option<Buffer>,
    pub log: RequestLog,
    pub step: LegStep,
    /// Its slot in the worker's leg table: the backend socket's token.
    pub id: SlotId,
}

/// Where a leg stands.
#[derive(Debug)]
pub(super) enum LegStep {
    /// The backend connect is under way (boxed: a connect is rare next to
    /// the requests a kept connection carries, and the leg's size is every
    /// connection's).
    Connect(Box<Dialing>),
    /// Writing the request head; `sent` bytes of it are out.
    SendHead { sent: usize },
    /// Request body up, response down; `head_sent` bytes of the response
    /// head are out; `backend_eof`: the backend sent its FIN.
    Exchange { head_sent: usize, backend_eof: bool },
}

/// What a step run in place leads to ([`Leg::advance`]).
#[derive(Debug)]
pub(super) enum Advance {
    /// The leg goes on; the flow says whether to run it again.
    Going(Flow),
    /// The `101` went out.
    Tunnel,
    /// Both messages are complete.
    Finished,
    /// The step stopped short: [`Leg::conclude`] acts on it.
    Halted(Halt),
}

/// Why a step of a leg stopped short of its normal course.
#[derive(Debug)]
pub(super) enum Halt {
    /// The connection ends.
    Close(CloseReason),
    /// The connect failed: once more on another backend, or 503.
    Redial(Dialing),
    /// Answer with this status (or cut, if the client has a status).
    Fail(Status),
    /// The backend connection failed before answering: send again if
    /// the exchange allows it, else 502.
    Retry { head_pending: bool },
}

/// What a round of the exchange step leads to.
enum Round {
    /// Nothing more to do before an event.
    Wait,
    /// Bytes moved: run again.
    Moved,
    /// The `101` went out: tunnel.
    Tunnel,
    /// Both messages are complete.
    Finished,
}

impl Round {
    fn of(progress: bool) -> Round {
        if progress {
            Round::Moved
        } else {
            Round::Wait
        }
    }
}

impl<S: Transport> Leg<S> {
    pub(super) fn new(
        id: SlotId,
        ex: Box<Exchange>,
        up: Upstream<S>,
        log: RequestLog,
        step: LegStep,
    ) -> Leg<S> {
        Leg {
            ex,
            up,
            to_client: None,
            log,
            step,
            id,
        }
    }

    /// Its backend socket's poll token.
    fn token(&self) -> Token {
        EventTarget::Leg(self.id).token()
    }

    /// Sends the TLS records a full backend socket held back; false if
    /// the connection failed.
    pub(super) fn flush_backend(&mut self) -> bool {
        match self.step {
            LegStep::Connect(_) => true,
            LegStep::SendHead { .. } | LegStep::Exchange { .. } => self.up.conn.flush_if_writable(),
        }
    }

    /// When the leg must be looked at again if nothing happens.
    pub(super) fn deadline(&self, client: &Conn<S>, t: &Timeouts) -> Instant {
        match &self.step {
            LegStep::Connect(dialing) => dialing.deadline,
            LegStep::SendHead { .. } | LegStep::Exchange { .. } => {
                pipe::idle_deadline(client, Some(&self.up.conn), t)
            }
        }
    }
}

impl<S: Transport> Leg<S> {
    /// Runs the leg's step once where it stands, for a request of
    /// `service` whose client side is `front`; what only the leg as a
    /// whole can become (a redial, an answer, its end) is left to
    /// [`Leg::conclude`]. A leg that just goes on, as most steps do, is
    /// not moved.
    pub(super) fn advance(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        front: &mut impl Front<S>,
    ) -> Advance {
        match &mut self.step {
            LegStep::Connect(dialing) => {
                match connect::progress(ctx, service, &mut self.up, dialing) {
                    Progress::Waiting => Advance::Going(Flow::Wait),
                    Progress::Ready(took) => {
                        self.ex.connected(took);
                        self.step = LegStep::SendHead { sent: 0 };
                        Advance::Going(Flow::Progress)
                    }
                    Progress::Failed(e) => {
                        log::debug!("http: connect to {} failed: {e}", self.up.backend().addr());
                        Advance::Halted(Halt::Redial(**dialing))
                    }
                }
            }
            LegStep::SendHead { sent } => {
                let sent = *sent;
                self.send_head(ctx, service, front, sent)
            }
            LegStep::Exchange { .. } => match self.exchange_round(ctx, service, front) {
                Ok(Round::Wait) => Advance::Going(Flow::Wait),
                Ok(Round::Moved) => Advance::Going(Flow::Progress),
                Ok(Round::Tunnel) => Advance::Tunnel,
                Ok(Round::Finished) => Advance::Finished,
                Err(h) => Advance::Halted(h),
            },
        }
    }

    /// The leg after a step of [`Leg::advance`] that said `advance`.
    pub(super) fn conclude(
        self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        advance: Advance,
    ) -> Outcome<S> {
        match advance {
            Advance::Going(flow) => Outcome::Going(self, flow),
            Advance::Tunnel => Outcome::Tunnel(self),
            Advance::Finished => Outcome::Finished(self),
            Advance::Halted(h) => self.halt(ctx, service, h),
        }
    }

    /// The leg's deadline passed: a redispatch, an answer or a close.
    pub(super) fn on_timer(self, ctx: &mut Ctx<'_, S>, service: &ServiceSnapshot) -> Outcome<S> {
        if let LegStep::Connect(dialing) = &self.step {
            let dialing = **dialing;
            return self.redial(ctx, service, dialing);
        }
        let idle = ctx.now >= self.up.conn.last_io() + service.timeouts.server;
        match self.ex.on_timeout(idle) {
            Timeout::Answer(status) => self.refused(ctx, status),
            Timeout::BackendIdle => {
                Outcome::Going(self, Flow::Close(CloseReason::IdleTimeout(Side::Backend)))
            }
            Timeout::ClientIdle => {
                Outcome::Going(self, Flow::Close(CloseReason::IdleTimeout(Side::Client)))
            }
        }
    }

    /// Ends the leg's backend side for the front to answer with `status`:
    /// its backend connection is dropped, its buffer given back.
    fn refused(self, ctx: &mut Ctx<'_, S>, status: Status) -> Outcome<S> {
        let Leg {
            ex,
            log,
            to_client,
            id,
            ..
        } = self;
        end_leg(ctx, id, to_client);
        Outcome::Refused(status, ex, log)
    }

    /// The dialer's answer for a request on leg `id`: a connect under
    /// way, or 503.
    pub(super) fn connecting(
        ctx: &mut Ctx<'_, S>,
        id: SlotId,
        ex: Box<Exchange>,
        log: RequestLog,
        to_client: Option<Buffer>,
        dialed: Result<(Upstream<S>, Dialing), CloseReason>,
    ) -> Outcome<S> {
        match dialed {
            Ok((up, dialing)) => {
                let mut leg = Leg::new(id, ex, up, log, LegStep::Connect(Box::new(dialing)));
                leg.to_client = to_client;
                Outcome::Going(leg, Flow::Progress)
            }
            Err(_) => {
                end_leg(ctx, id, to_client);
                Outcome::Refused(Status::Unavailable, ex, log)
            }
        }
    }

    /// The connect failed or timed out: once more on another backend, then
    /// 503 (HAProxy's `retries 1` + `redispatch`).
    fn redial(
        self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        dialing: Dialing,
    ) -> Outcome<S> {
        let token = self.token();
        let Leg {
            ex,
            up,
            to_client,
            log,
            id,
            ..
        } = self;
        let dialed = connect::redial(ctx, service, up, dialing, token);
        Leg::connecting(ctx, id, ex, log, to_client, dialed)
    }

    /// A reused connection died before answering an idempotent request
    /// whose bytes are still held: the dialer sends it again on a new
    /// connection to the same backend.
    fn resend(self, ctx: &mut Ctx<'_, S>, service: &ServiceSnapshot) -> Outcome<S> {
        let token = self.token();
        let Leg {
            ex,
            up,
            to_client,
            log,
            id,
            ..
        } = self;
        let dialed = connect::resend(ctx, service, up, token);
        Leg::connecting(ctx, id, ex, log, to_client, dialed)
    }

    /// Acts on a step that stopped short.
    fn halt(mut self, ctx: &mut Ctx<'_, S>, service: &ServiceSnapshot, halt: Halt) -> Outcome<S> {
        match halt {
            Halt::Close(r) => Outcome::Going(self, Flow::Close(r)),
            Halt::Redial(dialing) => self.redial(ctx, service, dialing),
            // The client already has a status line: all we can do is cut.
            Halt::Fail(_) if self.ex.status_sent() => {
                Outcome::Going(self, Flow::Close(CloseReason::Reset(Side::Backend)))
            }
            Halt::Fail(status) => self.refused(ctx, status),
            Halt::Retry { head_pending } => {
                let answered = self.ex.response().is_some()
                    || self.to_client.as_ref().is_some_and(|b| !b.is_empty());
                match self.ex.on_failure(answered, head_pending) {
                    Failure::Resend => self.resend(ctx, service),
                    Failure::BadGateway => self.refused(ctx, Status::BadGateway),
                }
            }
        }
    }

    // ---- sending the request head ------------------------------------

    fn send_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        front: &mut impl Front<S>,
        sent: usize,
    ) -> Advance {
        match self.write_request_head(ctx, service, front, sent) {
            Ok(Some(sent)) => {
                let flow = Flow::progress(self.up.conn.is_writable());
                self.step = LegStep::SendHead { sent };
                Advance::Going(flow)
            }
            Ok(None) => {
                self.step = LegStep::Exchange {
                    head_sent: 0,
                    backend_eof: false,
                };
                Advance::Going(Flow::Progress)
            }
            Err(h) => Advance::Halted(h),
        }
    }

    /// Writes (more of) the request head, with the body bytes that may
    /// go with it: `Some(sent)` while part of the head is still to go.
    fn write_request_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        front: &mut impl Front<S>,
        sent: usize,
    ) -> Result<Option<usize>, Halt> {
        let peer = front.peer();
        let Some(buf) = front.request().as_ref() else {
            return Err(Halt::Close(CloseReason::Reset(Side::Client)));
        };
        let ex = &mut self.ex;
        let out = match ex.request_head(buf.pending()) {
            Ok(out) => out,
            Err(e) => {
                log::debug!(
                    "http: port {}: bad request body from {peer}: {}",
                    service.port(),
                    e.reason()
                );
                return Err(Halt::Fail(Status::BadRequest));
            }
        };
        let head = Outgoing::from(&out);
        let written = match head.write(&mut self.up.conn, sent, out.last, ctx.now) {
            Io::Moved(w) | Io::Drained(w) => w,
            Io::Blocked => return Ok(Some(sent)),
            Io::Eof | Io::Failed => return Err(Halt::Retry { head_pending: true }),
        };
        let Some(body) = head.body_written(sent + written) else {
            return Ok(Some(sent + written));
        };
        if let Sent::Consume(n) = ex.request_sent(body) {
            if let Some(b) = front.request().as_mut() {
                b.consumed(n);
            }
        }
        Ok(None)
    }

    // ---- request body up, response down -----------------------------

    /// One round of the exchange step, in the order bytes flow: the
    /// request body up, more from the client, the backend's bytes in, the
    /// response head, the response body down.
    fn exchange_round(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        front: &mut impl Front<S>,
    ) -> Result<Round, Halt> {
        let mut progress = self.request_up(ctx, service, front)?;
        if !self.backend_eof() {
            progress |= self.response_in(ctx, front)?;
        }
        if self.ex.response().is_none() {
            match self.parse_response(ctx, service, front)? {
                true => progress = true,
                // Closed before a whole response head: 502 (or once more,
                // for a reused connection that closed without a byte).
                false if self.backend_eof() => {
                    return Err(Halt::Retry {
                        head_pending: false,
                    })
                }
                false => return Ok(Round::of(progress)),
            }
        }
        if self.ex.response().is_some() && !self.ex.status_sent() {
            match self.write_response_head(ctx, front)? {
                None => return Ok(Round::of(progress)),
                Some(AfterHead::Tunnel) => return Ok(Round::Tunnel),
                Some(AfterHead::Interim | AfterHead::Body) => progress = true,
            }
        }
        if self.ex.status_sent() && !self.ex.response_done() {
            progress |= self.response_down(ctx, service, front)?;
        }
        if self.ex.response_done() {
            return Ok(Round::Finished);
        }
        release_if_empty(&mut self.to_client, ctx.pool);
        Ok(Round::of(progress))
    }

    /// The request body to the backend, and more from the client while
    /// its buffer has room (the rest of the body, or pipelined requests
    /// that wait their turn).
    fn request_up(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        front: &mut impl Front<S>,
    ) -> Result<bool, Halt> {
        let mut progress = false;
        if !self.ex.request_done() {
            match relay(
                front.request(),
                self.ex.request_body(),
                &mut self.up.conn,
                ctx.now,
            ) {
                Ok(p) => progress |= p,
                Err(RelayError::Write(_)) => return Err(Halt::Fail(Status::BadGateway)),
                Err(RelayError::Framing(e)) => {
                    // The head already went out: the backend connection
                    // holds part of a message and is never reused.
                    log::debug!(
                        "http: port {}: bad request body from {}: {}",
                        service.port(),
                        front.peer(),
                        e.reason()
                    );
                    return Err(Halt::Close(CloseReason::BadFraming(Side::Client)));
                }
            }
        }
        if !front.input_ended() {
            progress |= front.pull(ctx).map_err(Halt::Close)?;
        }
        if front.input_ended()
            && !self.ex.request_body().input_done()
            && front.request().as_ref().is_none_or(Buffer::is_empty)
        {
            // The client gave up in the middle of its request body.
            return Err(Halt::Close(CloseReason::Reset(Side::Client)));
        }
        Ok(progress)
    }

    /// Reads what the backend sent.
    fn response_in(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        front: &mut impl Front<S>,
    ) -> Result<bool, Halt> {
        match self.up.conn.fill(&mut self.to_client, ctx.pool, ctx.now) {
            Io::Moved(_) | Io::Drained(_) => {
                // The backend answered: the request is not sent again.
                if let (Some(n), Some(b)) = (self.ex.backend_spoke(), front.request().as_mut()) {
                    b.consumed(n);
                }
                Ok(true)
            }
            Io::Eof => {
                self.set_backend_eof();
                Ok(true)
            }
            Io::Blocked => Ok(false),
            Io::Failed if self.ex.response().is_none() => Err(Halt::Retry {
                head_pending: false,
            }),
            Io::Failed => Err(Halt::Close(CloseReason::Reset(Side::Backend))),
        }
    }

    /// The response body to the client, up to its end.
    fn response_down(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        front: &mut impl Front<S>,
    ) -> Result<bool, Halt> {
        let progress = match front.send_body(&mut self.to_client, self.ex.response_body(), ctx.now)
        {
            Ok(p) => p,
            Err(RelayError::Write(_)) => return Err(Halt::Close(CloseReason::Reset(Side::Client))),
            Err(RelayError::Framing(e)) => {
                // The client keeps what was valid; both connections end.
                log::debug!(
                    "http: port {}: bad response body from {}: {}",
                    service.port(),
                    self.up.backend().addr(),
                    e.reason()
                );
                return Err(Halt::Close(CloseReason::BadFraming(Side::Backend)));
            }
        };
        let flushed = self.to_client.as_ref().is_none_or(Buffer::is_empty);
        // Framing moirai still has to write is not a truncation.
        if self.backend_eof() && flushed && !self.ex.response_body().input_done() {
            if self.ex.response_body().until_close() {
                // Close-delimited: the close is the end.
                self.ex.response_body().end_at_close();
            } else {
                return Err(Halt::Close(CloseReason::Reset(Side::Backend)));
            }
        }
        Ok(progress)
    }

    /// Looks for a response head in the backend's bytes and asks the
    /// exchange what to do with it; true when something was done.
    fn parse_response(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        service: &ServiceSnapshot,
        front: &mut impl Front<S>,
    ) -> Result<bool, Halt> {
        let Some(buf) = self.to_client.as_mut() else {
            return Ok(false);
        };
        // Empty lines before a status line (an old server's extra CRLF
        // after a body) are skipped, never forwarded.
        let blank = request::leading_empty_lines(buf.pending());
        if blank > 0 {
            buf.consumed(blank);
            return Ok(true);
        }
        let ex = &mut self.ex;
        let closing = front.closing();
        let backend = self.up.backend();
        let what = match ex.read_response(buf.pending(), Some(backend.cookie()), closing, ctx.now) {
            Ok(Some(what)) => what,
            Ok(None) if buf.is_full() => return Err(Halt::Fail(Status::BadGateway)),
            Ok(None) => return Ok(false),
            Err(_) => return Err(Halt::Fail(Status::BadGateway)),
        };
        match what {
            OnResponse::BadGateway => return Err(Halt::Fail(Status::BadGateway)),
            OnResponse::Interim => {}
            OnResponse::Forward | OnResponse::Tunnel => {
                let took = ctx.now.saturating_duration_since(ex.timing().head);
                record(&mut ctx.latency(service.port()).request, took);
                backend
                    .stats()
                    .of(ctx.worker)
                    .max_response_us
                    .raise(micros(took));
            }
        }
        let code = ex.response().map_or(0, |r| r.code);
        service.stats.of(ctx.worker).response(code);
        backend.stats().of(ctx.worker).response(code);
        Ok(true)
    }

    /// Writes (more of) the response head: `None` while part of it is
    /// still to go, else what follows it.
    fn write_response_head(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        front: &mut impl Front<S>,
    ) -> Result<Option<AfterHead>, Halt> {
        let LegStep::Exchange { head_sent, .. } = &mut self.step else {
            return Ok(None);
        };
        let ex = &mut self.ex;
        let Some(buf) = self.to_client.as_ref() else {
            return Ok(None);
        };
        let out = match ex.response_head(buf.pending(), front.closing()) {
            Ok(Some(out)) => out,
            Ok(None) => return Ok(None),
            Err(_) => return Err(Halt::Fail(Status::BadGateway)),
        };
        let head = Outgoing::from(&out);
        let written = match front.send_head(&head, *head_sent, out.last, ctx.now) {
            Io::Moved(w) | Io::Drained(w) => w,
            Io::Blocked => return Ok(None),
            Io::Eof | Io::Failed => return Err(Halt::Close(CloseReason::Reset(Side::Client))),
        };
        let Some(body) = head.body_written(*head_sent + written) else {
            *head_sent += written;
            return Ok(None);
        };
        *head_sent = 0;
        let (done, after) = ex.response_sent(body);
        if let Some(b) = self.to_client.as_mut() {
            b.consumed(done);
        }
        Ok(Some(after))
    }
}

/// A leg that ends without its connection kept: its slot freed, its
/// buffer back to the pool.
fn end_leg<S>(ctx: &mut Ctx<'_, S>, id: SlotId, to_client: Option<Buffer>) {
    ctx.legs.close(id);
    if let Some(b) = to_client {
        ctx.pool.give(b);
    }
}

impl<S> Leg<S> {
    /// The backend sent its FIN.
    fn backend_eof(&self) -> bool {
        matches!(
            self.step,
            LegStep::Exchange {
                backend_eof: true,
                ..
            }
        )
    }

    fn set_backend_eof(&mut self) {
        if let LegStep::Exchange { backend_eof, .. } = &mut self.step {
            *backend_eof = true;
        }
    }
}
