//! Where a request goes: its backend (a login's pin, a sticky cookie, the
//! backend whose connection is parked here, or the balancer's pick) and
//! the connection to it (the parked one, one from the worker's idle pool,
//! or a new connect). The leg begins here.

use std::net::SocketAddr;
use std::sync::Arc;

use super::leg::{Leg, LegStep, Outcome};
use super::logline::RequestLog;
use super::{is_current, Flow, HttpSession, Parked, Turn};
use crate::engine::balance;
use crate::engine::conn::{Conn, Transport};
use crate::engine::connect::{self, Upstream};
use crate::engine::meter::Meter;
use crate::engine::session::Session;
use crate::engine::step::Ctx;
use crate::engine::token::{EventTarget, SlotId};
use crate::proto::http1::errors::Status;
use crate::proto::http1::exchange::Exchange;
use crate::snapshot::{Backend, BackendLease};
use crate::sys::poll::Interest;

impl<S: Transport> HttpSession<S> {
    /// Sticky backend if the cookie names a usable one, else the least
    /// loaded; the parked or a pooled connection if there is one, else a
    /// connect.
    pub(super) fn choose_backend(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: Box<Exchange>,
        log: RequestLog,
        mut parked: Option<Parked<S>>,
    ) -> Turn<S> {
        let prefer = parked.as_ref().map(|p| p.addr);
        let outcome = self.begin_leg(ctx, ex, log, prefer, |addr| {
            parked.take_if(|p| p.addr == addr)
        });
        if let Some(p) = parked {
            self.unpark(ctx, p);
        }
        self.after_leg(ctx, outcome)
    }

    /// A parked connection this client's request did not take: to the
    /// worker's pool, unless a login made it private (it never leaves its
    /// client) or its backend left the set or went down (closed).
    pub(super) fn unpark(&mut self, ctx: &mut Ctx<'_, S>, p: Parked<S>) {
        ctx.legs.close(p.id);
        if !self.logged_in && is_current(ctx, self.port(), p.addr) {
            ctx.idle.put(ctx.net, p.addr, p.conn, ctx.now);
        } else {
            // Clean but not for others: closed as the pool closes.
            p.conn.reset_on_close();
        }
    }

    /// Begins the leg of `ex`: its backend, then a connection to it:
    /// `parked` gives one of this client's own kept connections to a
    /// backend if it has one (`prefer`: the backend of one of them), else
    /// one from the worker's pool, else a connect.
    pub(super) fn begin_leg(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: Box<Exchange>,
        log: RequestLog,
        prefer: Option<SocketAddr>,
        parked: impl FnOnce(SocketAddr) -> Option<Parked<S>>,
    ) -> Outcome<S> {
        self.service.stats.of(ctx.worker).routed.add(1);
        let (chosen, balanced) = self.pick(ctx, &ex, prefer);
        let Some(b) = chosen else {
            return Outcome::Refused(Status::Unavailable, ex, log);
        };
        let counts = b.stats().of(ctx.worker);
        counts.last_session.stamp(ctx.now);
        counts.balanced.add(u64::from(balanced));
        if let Some(p) = parked(b.addr()) {
            // Made under the rules the service has now: a reload may have
            // changed them (another `verify_host`, another name).
            if p.conn.made_for(self.backend_tls()) {
                counts.reuses.add(1);
                return reusing(p.id, ex, p.conn, &b, log);
            }
            self.unpark(ctx, p);
        }
        // `http-reuse safe`: a client's first request never rides another
        // client's connection, so whatever a backend might still send on it
        // (a late or unsolicited response) can never answer a newcomer.
        let pooled = if self.served == 0 {
            None
        } else {
            ctx.idle.take(b.addr(), self.backend_tls(), ctx.now)
        };
        if let Some(mut conn) = pooled {
            let id = ctx.legs.open(ctx.id);
            let token = EventTarget::Leg(id).token();
            if ctx
                .net
                .watch(
                    conn.stream_mut(),
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_ok()
            {
                let conn = conn.resume(ctx.now, Meter::backend(&b, ctx.worker));
                counts.reuses.add(1);
                return reusing(id, ex, conn, &b, log);
            }
            ctx.legs.close(id);
        }
        let id = ctx.legs.open(ctx.id);
        let token = EventTarget::Leg(id).token();
        let dialed = connect::dial(ctx, &self.service, Some(&b), token);
        Leg::connecting(ctx, id, ex, log, None, dialed)
    }

    /// The backend for `ex`, and whether load balancing chose it (rather
    /// than a login's pin or a cookie). A login bound to a backend
    /// connection goes on where it began, before any cookie or load says
    /// otherwise; a backend that left the set ends the pin (the login
    /// starts over elsewhere).
    fn pick(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        ex: &Exchange,
        prefer: Option<SocketAddr>,
    ) -> (Option<Arc<Backend>>, bool) {
        let backends = &self.service.backends;
        let pinned = self
            .pinned
            .as_deref()
            .and_then(|&a| backends.iter().find(|b| b.addr() == a));
        let sticky = ex
            .sticky()
            .and_then(|v| backends.iter().find(|b| b.named_by(&v)));
        // Among the least loaded, prefer the backend this client's previous
        // request used: its connection is still open here.
        let parked_on = prefer.and_then(|a| {
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
        (chosen, balanced)
    }
}

/// A leg on a connection to `b` already open (parked or pooled): its
/// head goes out next.
fn reusing<S: Transport>(
    id: SlotId,
    mut ex: Box<Exchange>,
    conn: Conn<S>,
    b: &Arc<Backend>,
    log: RequestLog,
) -> Outcome<S> {
    ex.reusing();
    let up = Upstream {
        conn,
        lease: BackendLease::acquire(b),
    };
    let leg = Leg::new(id, ex, up, log, LegStep::SendHead { sent: 0 });
    Outcome::Going(leg, Flow::Progress)
}
