//! Idle keep-alive connections to backends, per worker and per route (a
//! backend address, plain or in one TLS context), so HTTP
//! clients that close after each request (or many short clients) do not
//! cost a backend connect, or a TLS handshake, each time. Bounded in
//! number and age.
//!
//! A pooled connection is watched: it stays registered with the worker's
//! poll under its own [`EventTarget::Idle`] token, and an event on it (a
//! byte the backend sent unasked, a hang-up, an error) closes it at once.
//! A late or unsolicited response therefore never waits in the pool for
//! the next request, and a connection is checked once more before reuse.
//! The pool holds the whole [`Conn`], TLS state included: on a TLS
//! connection, records that carry no data (a TLS 1.3 server's session
//! tickets, a key update) are taken in and the connection stays; only
//! data, a close or an error end it, and one with a record still on its
//! way is not given out ([`Conn::idle_state`]).
//!
//! A clean connection the pool lets go (its route full, too old, its
//! backend gone) is closed with a reset, as HAProxy closes the idle
//! server connections it gives up: its response was read whole and
//! nothing is on its way, so a reset loses nothing, where a FIN would
//! cost four segments instead of one and leave the socket in TIME_WAIT
//! on our side for a minute, holding one of the few ephemeral ports
//! toward that backend (clients that close after every request make one
//! such connection per request).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::conn::{Conn, IdleState, Net, Transport};
use super::token::{EventTarget, Generations, SlotId};
use crate::snapshot::BackendTls;
use crate::sys::net::TcpStream;
use crate::sys::poll::Interest;

/// Idle connections kept per backend per worker.
pub const MAX_IDLE_PER_BACKEND: usize = 64;
/// How long an idle connection is kept: below common backend keep-alive
/// timeouts (nginx 75 s, Apache 5 s), so the backend rarely closes first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Which idle connections may carry a request: those to `addr`, plain, or
/// made in the same TLS context (the client configuration, by identity,
/// and the name sent and verified). A connection verified under one
/// service's rules never serves a service with other rules
/// (`https+insecure` beside `https`, another `verify_host`). The key is
/// compact (the name by its hash, so a lookup allocates nothing); a
/// connection found is checked against the full context before it is
/// given out ([`Conn::made_for`]). A pooled connection holds its
/// configuration, so that configuration's address is its own while it
/// waits here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Route {
    addr: SocketAddr,
    config: usize,
    name: u64,
}

impl Route {
    fn of(addr: SocketAddr, tls: Option<&BackendTls>) -> Route {
        let (config, name) = tls.map_or((0, 0), |t| (Arc::as_ptr(&t.config) as usize, t.name_key));
        Route { addr, config, name }
    }
}

#[derive(Debug)]
struct Idle<S> {
    conn: Conn<S>,
    route: Route,
    since: Instant,
    gen: u32,
}

/// A worker's idle backend connections.
#[derive(Debug)]
pub struct IdlePool<S = TcpStream> {
    conns: Slab<Idle<S>>,
    /// Slab keys per route, most recently parked last.
    /// Routes are backend addresses from the configuration and DNS, not
    /// a client's choice: a fast hasher, seeded per process.
    by_route: HashMap<Route, Vec<usize>, foldhash::fast::RandomState>,
    gens: Generations,
}

impl<S> Default for IdlePool<S> {
    fn default() -> IdlePool<S> {
        IdlePool {
            conns: Slab::new(),
            by_route: HashMap::default(),
            gens: Generations::default(),
        }
    }
}

impl<S: Transport> IdlePool<S> {
    /// Keeps `conn`, a connection to `addr`, for reuse by requests made
    /// under the rules it was made under; watched for unsolicited input.
    /// False (and the connection is dropped) if its route already has its
    /// share, TLS records a full socket held back cannot go now, or the
    /// socket cannot be watched.
    pub fn put(
        &mut self,
        net: &mut dyn Net<S>,
        addr: SocketAddr,
        mut conn: Conn<S>,
        now: Instant,
    ) -> bool {
        if !matches!(conn.flush(), Ok(true)) {
            return false;
        }
        let route = Route::of(addr, conn.tls_context());
        let keys = self.by_route.entry(route).or_default();
        if keys.len() >= MAX_IDLE_PER_BACKEND {
            conn.reset_on_close();
            return false;
        }
        let entry = self.conns.vacant_entry();
        let gen = self.gens.bump();
        let token = EventTarget::Idle(SlotId {
            index: entry.key() as u32,
            gen,
        })
        .token();
        if net
            .watch(conn.stream_mut(), token, Interest::READABLE)
            .is_err()
        {
            return false;
        }
        keys.push(entry.key());
        entry.insert(Idle {
            conn,
            route,
            since: now,
            gen,
        });
        true
    }

    /// The most recently used live connection to `addr` made under the
    /// rules `tls` (none: plain), if any (the caller re-registers it under
    /// its own token). Dead ones found on the way (too old, closed by the
    /// backend, with unexpected bytes, or with a record on its way) are
    /// dropped. The connection keeps its counters and meter: the caller
    /// puts it back in service with [`Conn::resume`].
    pub fn take(
        &mut self,
        addr: SocketAddr,
        tls: Option<&BackendTls>,
        now: Instant,
    ) -> Option<Conn<S>> {
        let route = Route::of(addr, tls);
        let keys = self.by_route.get_mut(&route)?;
        let mut found = None;
        while let Some(key) = keys.pop() {
            let Some(mut c) = self.conns.try_remove(key) else {
                continue;
            };
            if now.saturating_duration_since(c.since) >= IDLE_TIMEOUT || !c.conn.made_for(tls) {
                c.conn.reset_on_close();
                continue;
            }
            // Any byte or EOF waiting means the backend spoke unasked.
            if c.conn.idle_state() == IdleState::Quiet {
                found = Some(c.conn);
                break;
            }
        }
        if keys.is_empty() {
            self.by_route.remove(&route);
        }
        found
    }

    /// An event on a pooled connection: the backend sent bytes nobody
    /// asked for, or closed, and the connection is closed now; or (TLS)
    /// only records without data arrived, and it stays, watched again
    /// (event ports deliver an event once per association).
    pub fn on_event(&mut self, net: &mut dyn Net<S>, id: SlotId) {
        let key = id.index as usize;
        let Some(c) = self.conns.get_mut(key).filter(|c| c.gen == id.gen) else {
            return;
        };
        let token = EventTarget::Idle(id).token();
        if c.conn.is_tls()
            && c.conn.idle_state() != IdleState::Unfit
            && net
                .watch(c.conn.stream_mut(), token, Interest::READABLE)
                .is_ok()
        {
            return;
        }
        let c = self.conns.remove(key);
        if let Some(keys) = self.by_route.get_mut(&c.route) {
            keys.retain(|&k| k != key);
            if keys.is_empty() {
                self.by_route.remove(&c.route);
            }
        }
        log::debug!(
            "idle connection to {} closed: the backend spoke or hung up unasked",
            c.route.addr
        );
    }

    /// Closes every idle connection to a backend `keep` refuses: one that
    /// left every service or went down.
    pub fn retain_backends(&mut self, mut keep: impl FnMut(SocketAddr) -> bool) {
        let conns = &mut self.conns;
        self.by_route.retain(|route, keys| {
            if keep(route.addr) {
                return true;
            }
            for &k in keys.iter() {
                if let Some(c) = conns.try_remove(k) {
                    c.conn.reset_on_close();
                }
            }
            false
        });
    }

    /// Drops connections idle for too long.
    pub fn expire(&mut self, now: Instant) {
        let conns = &mut self.conns;
        self.by_route.retain(|_, keys| {
            keys.retain(|&k| {
                let old = conns
                    .get(k)
                    .is_none_or(|c| now.saturating_duration_since(c.since) >= IDLE_TIMEOUT);
                if old {
                    if let Some(c) = conns.try_remove(k) {
                        c.conn.reset_on_close();
                    }
                }
                !old
            });
            !keys.is_empty()
        });
        if self.conns.is_empty() {
            // Give back the slab's memory after a burst.
            self.conns = Slab::new();
            self.by_route.shrink_to_fit();
        }
    }

    /// Idle connections held.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}
