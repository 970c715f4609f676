//! What the worker asks of every session, whatever its service speaks: one
//! interface, so a third kind (an HTTP/2 connection) is one more `impl`,
//! not a tenth arm in each of the worker's matches.

use std::time::Instant;

use super::buffer::BufferPool;
use super::conn::{Readiness, Transport};
use super::legs::Legs;
use super::step::{CloseReason, Ctx, Step};
use super::syslog::Sink;
use super::token::{Side, SlotId};
use crate::snapshot::{Backend, ServiceSnapshot};
use crate::sys::net::TcpStream;

/// A client connection and what it carries. `S` is the socket type: the
/// kernel's in the worker, a script in tests.
pub trait Session<S: Transport = TcpStream> {
    /// Handles readiness on one of its sockets, then runs.
    fn on_event(&mut self, ctx: &mut Ctx<'_, S>, side: Side, r: Readiness) -> Step;

    /// Handles readiness on the backend socket of its leg `leg`, then
    /// runs. A session with one backend socket at a time (tcp, HTTP/1)
    /// takes it as its backend side; one with a leg per request in flight
    /// (an HTTP/2 connection) finds the leg.
    fn on_leg_event(&mut self, ctx: &mut Ctx<'_, S>, leg: SlotId, r: Readiness) -> Step {
        let _ = leg;
        self.on_event(ctx, Side::Backend, r)
    }

    /// Runs until nothing more can happen now.
    fn drive(&mut self, ctx: &mut Ctx<'_, S>) -> Step;

    /// When it must be looked at again if nothing happens.
    fn deadline(&self) -> Instant;

    /// Its deadline passed.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, S>) -> Step;

    /// The service it was accepted for (or follows now).
    fn service(&self) -> &ServiceSnapshot;

    /// The listen port of its service.
    fn port(&self) -> u16 {
        self.service().port()
    }

    /// The backend it uses or tries now, if any.
    fn backend(&self) -> Option<&Backend>;

    /// Sends the access line a closing session still owes (a tcp
    /// connection's, or an http request's that did not finish).
    fn log_close(&self, sink: &mut Sink, r: CloseReason, now: Instant);

    /// It closed (any reason: its client left, a timeout, an error): the
    /// clean backend connections it kept for its client's next requests
    /// go to the worker's pool, for other clients, or close as the pool
    /// closes what it cannot keep. Called once, before
    /// [`Session::release`]; a tcp connection keeps none.
    fn hand_back(&mut self, ctx: &mut Ctx<'_, S>) {
        let _ = ctx;
    }

    /// Gives its buffers back, and frees its legs' slots, before it is
    /// dropped (its sockets close with it).
    fn release(&mut self, pool: &mut BufferPool, legs: &mut Legs);

    /// Nothing begun and nothing owed: closing it now loses nothing (an
    /// HTTP connection between requests). A tcp connection never is.
    fn is_idle(&self) -> bool {
        false
    }

    /// The balancer is stopping: what is in flight finishes, nothing new
    /// starts on this connection. A tcp connection has nothing to change.
    fn set_draining(&mut self) {}

    /// Draining has something to say at once (an HTTP/2 connection's
    /// GOAWAY), so the worker runs it after [`Session::set_draining`]
    /// instead of waiting for its next event.
    fn announces_drain(&self) -> bool {
        false
    }
}
