//! The one dialer both session kinds use: it chooses a backend (unless the
//! session already chose one), connects, counts, and retries once on
//! another backend (HAProxy's `retries 1` + `redispatch`).
//!
//! The caller names the socket's poll token (its leg's): a redial or a
//! resend keeps it, the new socket taking the old one's place.
//!
//! An immediate connect failure and a failure reported later are the same
//! thing to the counters: a connect error on the backend, and a retry when
//! another attempt follows. Nothing here re-enters a session: [`dial`] and
//! [`redial`] return the connection under way (or why there is none) and
//! the session's loop carries on from its new stage, as sozu's
//! `ConnectBackend` result does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::balance;
use super::conn::{Conn, Transport};
use super::meter::Meter;
use super::step::{CloseReason, Ctx};
use crate::metrics::stats::{micros, record};
use crate::snapshot::{Backend, BackendLease, ServiceSnapshot};
use crate::sys::poll::Token;

/// Connect attempts per connection or request: the first, plus one
/// redispatch.
pub const CONNECT_ATTEMPTS: u8 = 2;

/// A backend socket and the lease that counts it against its backend.
#[derive(Debug)]
pub struct Upstream<S> {
    /// The socket.
    pub conn: Conn<S>,
    /// Held while the socket serves this session.
    pub lease: BackendLease,
}

impl<S> Upstream<S> {
    /// The backend this socket goes to.
    pub fn backend(&self) -> &Arc<Backend> {
        self.lease.backend()
    }
}

/// A connect under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialing {
    /// Attempts made so far, this one included.
    attempt: u8,
    /// When it counts as failed.
    pub deadline: Instant,
    /// When it started, for the connect time.
    since: Instant,
    /// The TCP connect finished; a TLS handshake may still be running.
    connected: bool,
}

/// Where a connect under way stands.
#[derive(Debug)]
pub enum Progress {
    /// Still connecting (or shaking hands).
    Waiting,
    /// Ready for bytes; the connect took this long.
    Ready(Duration),
    /// It failed, for this reason: [`redial`] it.
    Failed(String),
}

/// Opens a connection to `first` (a sticky choice, or the same backend
/// again) or else to the least loaded backend of `service`, moving on to
/// another backend when a connect fails at once.
pub fn dial<S: Transport>(
    ctx: &mut Ctx<'_, S>,
    service: &ServiceSnapshot,
    first: Option<&Arc<Backend>>,
    token: Token,
) -> Result<(Upstream<S>, Dialing), CloseReason> {
    attempt(ctx, service, token, 0, first.cloned(), None)
}

/// The connect in `up` failed or timed out: counted, and tried once more on
/// another backend (the same one when it is the only one).
pub fn redial<S: Transport>(
    ctx: &mut Ctx<'_, S>,
    service: &ServiceSnapshot,
    up: Upstream<S>,
    dialing: Dialing,
    token: Token,
) -> Result<(Upstream<S>, Dialing), CloseReason> {
    let failed = Arc::clone(up.backend());
    log::debug!(
        "backend {} did not accept a connection (attempt {})",
        failed.addr(),
        dialing.attempt
    );
    count_failure(ctx.worker, service, &failed, dialing.attempt);
    drop(up);
    attempt(
        ctx,
        service,
        token,
        dialing.attempt,
        None,
        Some(failed.addr()),
    )
}

/// A reused connection in `up` died before the backend answered a request
/// that may be sent again ([`Exchange::on_failure`]): counted as a retry on
/// the backend and the service, then a new connection to the same backend
/// (HAProxy's `retry-on conn-failure empty-response`).
///
/// [`Exchange::on_failure`]: crate::proto::http1::exchange::Exchange::on_failure
pub fn resend<S: Transport>(
    ctx: &mut Ctx<'_, S>,
    service: &ServiceSnapshot,
    up: Upstream<S>,
    token: Token,
) -> Result<(Upstream<S>, Dialing), CloseReason> {
    let b = Arc::clone(up.backend());
    drop(up);
    log::debug!(
        "port {}: reused connection to {} failed before answering; sending again",
        service.port(),
        b.addr()
    );
    b.stats().of(ctx.worker).retries.add(1);
    service.stats.of(ctx.worker).retries.add(1);
    dial(ctx, service, Some(&b), token)
}

/// Moves the connect in `up` on: its result once an event came, then the
/// TLS handshake for an https backend (a backend failing it, verification
/// included, is a failed connect). When it is ready, the connect is counted
/// and its time recorded.
pub fn progress<S: Transport>(
    ctx: &mut Ctx<'_, S>,
    service: &ServiceSnapshot,
    up: &mut Upstream<S>,
    dialing: &mut Dialing,
) -> Progress {
    if !dialing.connected {
        if !up.conn.heard_from() {
            return Progress::Waiting;
        }
        match up.conn.connect_result() {
            None => return Progress::Waiting,
            Some(Err(e)) => return Progress::Failed(e.to_string()),
            Some(Ok(())) => dialing.connected = true,
        }
    }
    match up.conn.handshake() {
        Ok(true) => {}
        Ok(false) => return Progress::Waiting,
        Err(e) => {
            log::warn!(
                "https: TLS with backend {} failed: {e}",
                up.backend().addr()
            );
            return Progress::Failed(e.to_string());
        }
    }
    up.conn.stream().set_nodelay();
    up.conn.touch(ctx.now);
    let took = ctx.now.saturating_duration_since(dialing.since);
    record(&mut ctx.latency(service.port()).connect, took);
    let c = up.backend().stats().of(ctx.worker);
    c.opened.add(1);
    c.max_connect_us.raise(micros(took));
    Progress::Ready(took)
}

fn attempt<S: Transport>(
    ctx: &mut Ctx<'_, S>,
    service: &ServiceSnapshot,
    token: Token,
    mut attempt: u8,
    mut first: Option<Arc<Backend>>,
    mut avoid: Option<std::net::SocketAddr>,
) -> Result<(Upstream<S>, Dialing), CloseReason> {
    let backends = &service.backends;
    while attempt < CONNECT_ATTEMPTS {
        let balanced = first.is_none();
        let chosen = first.take().or_else(|| {
            // With one backend, the retry goes to the same one.
            balance::pick(backends, ctx.cursor, avoid)
                .or_else(|| balance::pick(backends, ctx.cursor, None))
                .cloned()
        });
        let Some(b) = chosen else {
            return Err(CloseReason::NoBackend);
        };
        let lease = BackendLease::acquire(&b);
        count_choice(ctx, service, &b, balanced, avoid);
        attempt += 1;
        match ctx.net.connect(b.addr(), token) {
            Ok(stream) => {
                let mut conn = Conn::new(stream, ctx.now, Meter::backend(&b, ctx.worker));
                if let Some(tls) = service.tls.as_ref().and_then(|t| t.client.as_ref()) {
                    match rustls::ClientConnection::new(Arc::clone(&tls.config), tls.name.clone()) {
                        Ok(c) => conn = conn.with_backend_tls(c.into(), Arc::clone(tls)),
                        Err(e) => {
                            log::warn!("https: no TLS session for {}: {e}", b.addr());
                            return Err(CloseReason::ConnectFailed);
                        }
                    }
                }
                let dialing = Dialing {
                    attempt,
                    deadline: ctx.now + service.timeouts.connect,
                    since: ctx.now,
                    connected: false,
                };
                return Ok((Upstream { conn, lease }, dialing));
            }
            Err(e) => {
                log::debug!("connect to {} failed at once: {e}", b.addr());
                count_failure(ctx.worker, service, &b, attempt);
                avoid = Some(b.addr());
            }
        }
    }
    Err(CloseReason::ConnectFailed)
}

/// A backend chosen for a connect: when, whether by load balancing, and
/// whether it redispatches one that failed elsewhere (counted on the
/// service and on the backend that failed, as HAProxy does).
fn count_choice<S: Transport>(
    ctx: &Ctx<'_, S>,
    service: &ServiceSnapshot,
    b: &Backend,
    balanced: bool,
    avoid: Option<std::net::SocketAddr>,
) {
    let c = b.stats().of(ctx.worker);
    c.last_session.stamp(ctx.now);
    c.balanced.add(u64::from(balanced));
    if let Some(failed) = avoid.filter(|a| *a != b.addr()) {
        service.stats.of(ctx.worker).redispatches.add(1);
        if let Some(f) = service.backends.iter().find(|f| f.addr() == failed) {
            f.stats().of(ctx.worker).redispatches.add(1);
        }
    }
}

/// A failed connect: an error on the backend, and a retry on both the
/// backend and the service when another attempt follows.
fn count_failure(worker: usize, service: &ServiceSnapshot, b: &Backend, attempt: u8) {
    let c = b.stats().of(worker);
    c.connect_errors.add(1);
    if attempt < CONNECT_ATTEMPTS {
        c.retries.add(1);
        service.stats.of(worker).retries.add(1);
    }
}
