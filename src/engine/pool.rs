//! Idle keep-alive connections to backends, per worker and per backend
//! address, so HTTP clients that close after each request (or many short
//! clients) do not cost a backend connect each time. Bounded in number and
//! age.
//!
//! A pooled connection is watched: it stays registered with the worker's
//! poll under its own [`EventTarget::Idle`] token, and any event on it (a
//! byte the backend sent unasked, a hang-up, an error) closes it at once.
//! A late or unsolicited response therefore never waits in the pool for
//! the next request, and a connection is checked once more before reuse.
//!
//! The pool holds a whole [`Conn`], not just its socket, so that a
//! connection's TLS state could stay with it. Only plain connections are
//! pooled today (a session's TLS backend connection is dropped at its
//! end): pooling TLS ones is a change of behaviour, and comes with the
//! HTTP/2 front, which needs it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use super::conn::{Conn, Net, Transport};
use super::token::{EventTarget, Generations, SlotId};
use crate::sys::net::TcpStream;
use crate::sys::poll::Interest;

/// Idle connections kept per backend per worker.
pub const MAX_IDLE_PER_BACKEND: usize = 64;
/// How long an idle connection is kept: below common backend keep-alive
/// timeouts (nginx 75 s, Apache 5 s), so the backend rarely closes first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Debug)]
struct Idle<S> {
    conn: Conn<S>,
    addr: SocketAddr,
    since: Instant,
    gen: u32,
}

/// A worker's idle backend connections.
#[derive(Debug)]
pub struct IdlePool<S = TcpStream> {
    conns: Slab<Idle<S>>,
    /// Slab keys per backend, most recently parked last.
    by_backend: HashMap<SocketAddr, Vec<usize>>,
    gens: Generations,
}

impl<S> Default for IdlePool<S> {
    fn default() -> IdlePool<S> {
        IdlePool {
            conns: Slab::new(),
            by_backend: HashMap::new(),
            gens: Generations::default(),
        }
    }
}

impl<S: Transport> IdlePool<S> {
    /// Keeps `conn` for reuse, watched for unsolicited input; false (and
    /// the connection is dropped) if the backend already has its share or
    /// the socket cannot be watched.
    pub fn put(
        &mut self,
        net: &mut dyn Net<S>,
        addr: SocketAddr,
        mut conn: Conn<S>,
        now: Instant,
    ) -> bool {
        let keys = self.by_backend.entry(addr).or_default();
        if keys.len() >= MAX_IDLE_PER_BACKEND {
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
            addr,
            since: now,
            gen,
        });
        true
    }

    /// The most recently used live connection to `addr`, if any (the
    /// caller re-registers it under its own token). Dead ones found on the
    /// way (too old, closed by the backend, or with unexpected bytes) are
    /// dropped. The connection keeps its counters and meter: the caller
    /// puts it back in service with [`Conn::resume`].
    pub fn take(&mut self, addr: SocketAddr, now: Instant) -> Option<Conn<S>> {
        let keys = self.by_backend.get_mut(&addr)?;
        let mut found = None;
        while let Some(key) = keys.pop() {
            let Some(c) = self.conns.try_remove(key) else {
                continue;
            };
            if now.saturating_duration_since(c.since) >= IDLE_TIMEOUT {
                continue;
            }
            // Any byte or EOF waiting means the backend spoke unasked.
            if c.conn.stream().is_quiet() {
                found = Some(c.conn);
                break;
            }
        }
        if keys.is_empty() {
            self.by_backend.remove(&addr);
        }
        found
    }

    /// An event on a pooled connection: the backend sent bytes nobody
    /// asked for, or closed. The connection is closed now.
    pub fn on_event(&mut self, id: SlotId) {
        let key = id.index as usize;
        if self.conns.get(key).is_none_or(|c| c.gen != id.gen) {
            return;
        }
        let c = self.conns.remove(key);
        if let Some(keys) = self.by_backend.get_mut(&c.addr) {
            keys.retain(|&k| k != key);
            if keys.is_empty() {
                self.by_backend.remove(&c.addr);
            }
        }
        log::debug!(
            "idle connection to {} closed: the backend spoke or hung up unasked",
            c.addr
        );
    }

    /// Closes every idle connection to a backend `keep` refuses: one that
    /// left every service or went down.
    pub fn retain_backends(&mut self, mut keep: impl FnMut(SocketAddr) -> bool) {
        let conns = &mut self.conns;
        self.by_backend.retain(|addr, keys| {
            if keep(*addr) {
                return true;
            }
            for &k in keys.iter() {
                conns.try_remove(k);
            }
            false
        });
    }

    /// Drops connections idle for too long.
    pub fn expire(&mut self, now: Instant) {
        let conns = &mut self.conns;
        self.by_backend.retain(|_, keys| {
            keys.retain(|&k| {
                let old = conns
                    .get(k)
                    .is_none_or(|c| now.saturating_duration_since(c.since) >= IDLE_TIMEOUT);
                if old {
                    conns.try_remove(k);
                }
                !old
            });
            !keys.is_empty()
        });
        if self.conns.is_empty() {
            // Give back the slab's memory after a burst.
            self.conns = Slab::new();
            self.by_backend.shrink_to_fit();
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
