//! One proxied TCP connection (`tcp` and `tcp-proxy-v2`): the client socket,
//! the backend socket, and the bytes between them.
//!
//! Stages: `Connecting` (the [dialer](super::connect) retries once on
//! another backend), then `Streaming` until both directions have carried
//! their FIN through, an error resets both, or an idle timeout fires.
//! Buffers come from the worker's pool only while bytes are in flight. The
//! byte moving is [`super::pipe`]; the preface is [`crate::proto::proxy_v2`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::access;
use super::buffer::{Buffer, BufferPool};
use super::conn::{Conn, Readiness, Transport};
use super::connect::{self, Dialing, Progress, Upstream};
use super::legs::Legs;
use super::meter::Meter;
use super::pipe::{self, Preface, Streams};
use super::session::Session;
use super::step::{CloseReason, Ctx, Step, ROUNDS_PER_TURN};
use super::syslog::Sink;
use super::token::{EventTarget, Side, SlotId};
use crate::config::ServiceKind;
use crate::proto::pipe::Pipe;
use crate::proto::proxy_v2;
use crate::proto::syslog::Access;
use crate::snapshot::{Backend, ServiceSnapshot};
use crate::sys::net::TcpStream;

#[derive(Debug)]
enum Stage<S> {
    Connecting(Upstream<S>, Dialing),
    Streaming(Upstream<S>),
    /// Every connect failed; the session is closing.
    Failed,
}

/// One proxied connection.
#[derive(Debug)]
pub struct TcpSession<S = TcpStream> {
    service: Arc<ServiceSnapshot>,
    client: Conn<S>,
    stage: Stage<S>,
    /// Client → backend bytes not yet written.
    to_backend: Option<Buffer>,
    /// Backend → client bytes not yet written.
    to_client: Option<Buffer>,
    pipe: Pipe,
    preface: Option<Preface>,
    /// The client, and when it was accepted, for the access line.
    peer: SocketAddr,
    accepted: Instant,
    /// How long the successful backend connect took.
    connect_took: Option<Duration>,
    /// The slot of the backend socket, for its events.
    leg: SlotId,
}

impl<S: Transport> TcpSession<S> {
    /// Starts a session for an accepted (and watched) client: begins the
    /// backend connect. `local` is the address the client connected to.
    pub fn start(
        ctx: &mut Ctx<'_, S>,
        service: Arc<ServiceSnapshot>,
        client: S,
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Result<TcpSession<S>, CloseReason> {
        let preface = match (service.spec.kind, local) {
            (ServiceKind::TcpProxyV2, Some(local)) => {
                Some(Preface::new(proxy_v2::encode(peer, local)))
            }
            _ => None,
        };
        let leg = ctx.legs.open(ctx.id);
        let (up, dialing) = connect::dial(ctx, &service, None, EventTarget::Leg(leg).token())
            .inspect_err(|_| ctx.legs.close(leg))?;
        let meter = Meter::client(&service, ctx.worker);
        Ok(TcpSession {
            client: Conn::new(client, ctx.now, meter),
            stage: Stage::Connecting(up, dialing),
            to_backend: None,
            to_client: None,
            pipe: Pipe::default(),
            preface,
            service,
            peer,
            accepted: ctx.now,
            connect_took: None,
            leg,
        })
    }

    /// The connect failed or timed out: once more elsewhere.
    fn redial(&mut self, ctx: &mut Ctx<'_, S>) -> Result<(), CloseReason> {
        let Stage::Connecting(up, dialing) = std::mem::replace(&mut self.stage, Stage::Failed)
        else {
            return Ok(());
        };
        let token = EventTarget::Leg(self.leg).token();
        let (up, dialing) = connect::redial(ctx, &self.service, up, dialing, token)?;
        self.stage = Stage::Connecting(up, dialing);
        Ok(())
    }
}

impl<S: Transport> Session<S> for TcpSession<S> {
    /// Handles an event on one side.
    fn on_event(&mut self, ctx: &mut Ctx<'_, S>, side: Side, r: Readiness) -> Step {
        match (side, &mut self.stage) {
            (Side::Client, _) => self.client.note(r),
            (Side::Backend, Stage::Connecting(up, _) | Stage::Streaming(up)) => up.conn.note(r),
            (Side::Backend, Stage::Failed) => {}
        }
        self.drive(ctx)
    }

    /// Completes the connect, then moves bytes both ways until nothing
    /// more can move now.
    fn drive(&mut self, ctx: &mut Ctx<'_, S>) -> Step {
        loop {
            match &mut self.stage {
                Stage::Failed => return Step::Closed(CloseReason::ConnectFailed),
                Stage::Connecting(up, dialing) => {
                    match connect::progress(ctx, &self.service, up, dialing) {
                        Progress::Waiting => return Step::Open,
                        Progress::Ready(took) => {
                            self.connect_took = Some(took);
                            self.client.touch(ctx.now);
                            let Stage::Connecting(up, _) =
                                std::mem::replace(&mut self.stage, Stage::Failed)
                            else {
                                unreachable!("matched above")
                            };
                            self.stage = Stage::Streaming(up);
                        }
                        Progress::Failed(e) => {
                            log::debug!("tcp: connect to {} failed: {e}", up.backend().addr());
                            if let Err(r) = self.redial(ctx) {
                                return Step::Closed(r);
                            }
                        }
                    }
                }
                Stage::Streaming(backend) => {
                    for _ in 0..ROUNDS_PER_TURN {
                        let streams = Streams {
                            client: &mut self.client,
                            backend: &mut backend.conn,
                            to_backend: &mut self.to_backend,
                            to_client: &mut self.to_client,
                            pipe: &mut self.pipe,
                            preface: self.preface.as_mut(),
                        };
                        match pipe::round(streams, ctx.pool, ctx.now) {
                            Ok(true) => continue,
                            Ok(false) => return Step::Open,
                            Err(r) => return Step::Closed(r),
                        }
                    }
                    return Step::Again;
                }
            }
        }
    }

    /// When the session must be looked at again if nothing happens.
    fn deadline(&self) -> Instant {
        match &self.stage {
            Stage::Connecting(_, dialing) => dialing.deadline,
            Stage::Streaming(up) => {
                pipe::tunnel_deadline(&self.client, &up.conn, &self.service.timeouts)
            }
            Stage::Failed => self.accepted,
        }
    }

    /// The session's deadline passed: redispatch a connect, or close an
    /// idle stream.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, S>) -> Step {
        match self.stage {
            Stage::Connecting(..) => match self.redial(ctx) {
                Ok(()) => self.drive(ctx),
                Err(r) => Step::Closed(r),
            },
            Stage::Streaming(ref up) => Step::Closed(CloseReason::IdleTimeout(pipe::idle_side(
                &self.client,
                Some(&up.conn),
                &self.service.timeouts,
                ctx.now,
            ))),
            Stage::Failed => Step::Closed(CloseReason::ConnectFailed),
        }
    }

    /// The session's service.
    fn service(&self) -> &ServiceSnapshot {
        &self.service
    }

    /// The backend it uses or tries, if any.
    fn backend(&self) -> Option<&Backend> {
        match &self.stage {
            Stage::Connecting(up, _) | Stage::Streaming(up) => Some(up.backend()),
            Stage::Failed => None,
        }
    }

    /// The connection's access line, sent as it closes.
    fn log_close(&self, sink: &mut Sink, r: CloseReason, now: Instant) {
        sink.access(&Access {
            bytes: self.client.bytes(),
            t_connect: self.connect_took,
            t_total: now.saturating_duration_since(self.accepted),
            term: r.termination(),
            ..access::line(&self.service, self.peer, self.backend())
        });
    }

    /// Gives the session's buffers back before it is dropped.
    fn release(&mut self, pool: &mut BufferPool, legs: &mut Legs) {
        legs.close(self.leg);
        for b in [self.to_backend.take(), self.to_client.take()]
            .into_iter()
            .flatten()
        {
            pool.give(b);
        }
    }
}
