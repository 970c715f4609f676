//! The end of a leg: both messages complete. Its access line goes out,
//! a connection-bound login pins the client to its backend, and the
//! exchange says whether the client goes on and whether the backend
//! connection is parked for the client's next request, pooled or closed.

use super::leg::{Leg, LegStep};
use super::logline::Counted;
use super::{is_current, recycle, Flow, HttpSession, Parked, Stage, Turn, MAX_FREE_EXCHANGES};
use crate::engine::conn::{release_if_empty, Transport};
use crate::engine::session::Session;
use crate::engine::step::{CloseReason, Ctx};
use crate::proto::transaction::{BackendEnd, Reuse};

impl<S: Transport> HttpSession<S> {
    /// Both messages are complete: its access line goes out, and each side
    /// is kept or dropped as the exchange says.
    pub(super) fn finish_leg(&mut self, ctx: &mut Ctx<'_, S>, leg: Leg<S>) -> Turn<S> {
        let closing = self.draining || self.client_eof;
        let (keep_client, parked) = self.settle(ctx, leg, Counted::Http1, closing);
        let next = Stage::ReadHead {
            since: None,
            parked,
        };
        if !keep_client {
            // close_notify (TLS), then, where the last write held its
            // final segment for the FIN (`send_final`), the FIN: a close
            // that finds client bytes unread resets the connection and
            // drops what is still queued.
            let _ = self.client.end_after_final();
            return (next, Flow::Close(CloseReason::Done));
        }
        release_if_empty(&mut self.to_backend, ctx.pool);
        (next, Flow::Progress)
    }

    /// The end of a finished leg, whatever the client speaks: its access
    /// line (its bytes `counted` so), a login's pin, and its backend
    /// connection pooled or closed, or handed back to be kept for this
    /// client's next request. `closing`: the client connection ends after
    /// this response. Answers whether the client connection goes on.
    pub(super) fn settle(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        leg: Leg<S>,
        counted: Counted,
        closing: bool,
    ) -> (bool, Option<Parked<S>>) {
        let Leg {
            mut ex,
            up,
            to_client,
            log,
            step,
            id,
        } = leg;
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            self.log_request(sink, &ex, &up.lease, &log, counted, ctx.now);
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
            eof: matches!(
                step,
                LegStep::Exchange {
                    backend_eof: true,
                    ..
                }
            ),
            leftover: to_client.as_ref().is_some_and(|b| !b.is_empty()),
            private: self.logged_in,
        };
        let finish = ex.finish(closing, end);
        let mut parked = None;
        match finish.backend {
            Reuse::Park => {
                parked = Some(Parked {
                    addr,
                    conn: up.conn,
                    id,
                })
            }
            // The pool watches it under a token of its own.
            Reuse::Pool if is_current(ctx, self.port(), addr) => {
                ctx.legs.close(id);
                ctx.idle.put(ctx.net, addr, up.conn, ctx.now);
            }
            Reuse::Pool | Reuse::Drop => ctx.legs.close(id),
        }
        if let Some(b) = to_client {
            ctx.pool.give(b);
        }
        recycle(ctx.scratch, ex.take_scratch());
        if ctx.exchanges.len() < MAX_FREE_EXCHANGES {
            ctx.exchanges.push(ex);
        }
        self.served = self.served.saturating_add(1);
        (finish.keep_client, parked)
    }
}
