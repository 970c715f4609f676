//! A worker's listening sockets: opened for each service (one per listen
//! address), retried while they cannot be, accepted from until the
//! session limit or descriptor exhaustion pauses them, closed when their
//! service goes, lent for an upgrade's pre-flight.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{FromWorker, Lent, Worker};
use crate::engine::listener::{Accepted, Listener, EXHAUSTION_PAUSE};
use crate::engine::token::{EventTarget, SlotId};
use crate::snapshot::ServiceSnapshot;
use crate::sys::net;
use crate::sys::poll::Interest;

/// How often a listener that could not be opened is tried again.
pub(super) const BIND_RETRY: Duration = Duration::from_secs(2);

pub(super) struct ListenerSlot {
    pub gen: u32,
    pub listener: Listener,
}

impl Worker {
    /// Opens the service's listeners, one per listen address.
    pub(super) fn open(&mut self, svc: &Arc<ServiceSnapshot>) {
        self.by_port.entry(svc.port()).or_default();
        if self.listen.addresses.is_empty() {
            self.open_one(None, svc);
        } else {
            let addrs = Arc::clone(&self.listen.addresses);
            for &a in addrs.iter() {
                self.open_one(Some(a), svc);
            }
        }
    }

    pub(super) fn open_one(&mut self, addr: Option<IpAddr>, svc: &Arc<ServiceSnapshot>) {
        let port = svc.port();
        let failed = |w: &mut Worker, error: String| {
            w.reports.send(FromWorker::ListenFailed {
                worker: w.id,
                port,
                addr,
                error,
            });
            w.unbound.push((addr, Arc::clone(svc)));
        };
        let sockets = match net::listen(
            addr,
            port,
            self.listen.mode,
            &self.listen.shared,
            &self.listen.inherited,
        ) {
            Ok(s) => s,
            Err(e) => return failed(self, e.to_string()),
        };
        // Usually one; after an upgrade from a program with more workers,
        // this worker's share of their sockets.
        let mut polled = false;
        let mut error = None;
        for socket in sockets {
            match self.poll_listener(addr, svc, socket) {
                Ok(()) => polled = true,
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) if !polled => failed(self, format!("cannot poll the listener: {e}")),
            // Another socket of the port serves; this one is closed.
            Some(e) => log::error!(
                "worker {}: port {port}: cannot poll an inherited listener: {e}; closed",
                self.id
            ),
            None => {}
        }
    }

    /// Adds one open listening socket to the poll.
    pub(super) fn poll_listener(
        &mut self,
        addr: Option<IpAddr>,
        svc: &Arc<ServiceSnapshot>,
        socket: net::WorkerListener,
    ) -> io::Result<()> {
        let port = svc.port();
        let entry = self.listeners.vacant_entry();
        let index = entry.key();
        let gen = self.gens.bump();
        let mut slot = ListenerSlot {
            gen,
            listener: Listener {
                socket,
                addr,
                service: Arc::clone(svc),
                paused_until: None,
            },
        };
        let token = EventTarget::Listener(SlotId {
            index: index as u32,
            gen,
        })
        .token();
        self.poll.registry().register(
            &mut slot.listener.socket.socket,
            token,
            Interest::READABLE,
        )?;
        entry.insert(slot);
        self.by_port.entry(port).or_default().push(index);
        Ok(())
    }

    /// Duplicates of every listening socket, for a pre-flight.
    pub(super) fn lend(&self) -> io::Result<Lent> {
        self.listeners
            .iter()
            .map(|(_, slot)| {
                let l = &slot.listener;
                Ok((
                    l.addr,
                    l.service.port(),
                    l.socket.raw_fd(),
                    l.socket.duplicate()?,
                ))
            })
            .collect()
    }

    /// Closes a listener after accepting what is already queued on it, so a
    /// removed service does not reset connections the kernel had accepted.
    pub(super) fn close_listener(&mut self, port: u16, now: Instant) {
        let Some(slots) = self.by_port.remove(&port) else {
            return;
        };
        for i in slots {
            self.accept_all(i, now);
            let mut slot = self.listeners.remove(i);
            // Deregister explicitly: in shared mode other workers hold
            // duplicates of this descriptor, so closing ours would not
            // remove the registration.
            let _ = self
                .poll
                .registry()
                .deregister(&mut slot.listener.socket.socket);
        }
    }

    pub(super) fn on_listener(&mut self, id: SlotId, now: Instant) {
        let i = id.index as usize;
        match self.listeners.get(i) {
            Some(slot) if slot.gen == id.gen && slot.listener.paused_until.is_none() => {
                self.accept_all(i, now)
            }
            _ => {}
        }
    }

    /// Whether one more client fits: its socket, and the backend socket
    /// it may open. Sessions hold their client socket, their legs one
    /// backend socket each, and a session without a leg may open one; an
    /// HTTP/1 or tcp session has at most one leg, so what is promised is
    /// the sessions plus the larger of the legs and the sessions.
    pub(super) fn has_room(&self) -> bool {
        let sessions = self.sessions.len();
        let promised = sessions + self.legs.len().max(sessions);
        promised + 2 <= self.listen.descriptors
    }

    pub(super) fn accept_all(&mut self, i: usize, now: Instant) {
        loop {
            if !self.has_room() {
                if !self.full && self.draining.is_none() {
                    log::warn!(
                        "worker {}: at its limit of {} connections; new ones wait in the accept queue",
                        self.id,
                        self.listen.descriptors / 2
                    );
                }
                self.full = true;
                return;
            }
            let Some(slot) = self.listeners.get_mut(i) else {
                return;
            };
            match slot.listener.accept() {
                Accepted::Conn(stream, peer) => {
                    let svc = Arc::clone(&slot.listener.service);
                    self.start_session(svc, stream, peer, now);
                }
                Accepted::Empty => return,
                Accepted::Skip => continue,
                Accepted::Exhausted(e) => {
                    log::warn!(
                        "worker {}: port {}: {e}; pausing accepts for {} ms",
                        self.id,
                        slot.listener.service.port(),
                        EXHAUSTION_PAUSE.as_millis()
                    );
                    slot.listener.paused_until = Some(now + EXHAUSTION_PAUSE);
                    return;
                }
                Accepted::Failed(e) => {
                    // Paused and looked at again like an exhausted one: an
                    // event port re-arms a listener only when accept says
                    // WouldBlock, and epoll (edge-triggered) raises no new
                    // event for connections already queued, so a plain
                    // return would leave the port unserved on illumos and
                    // stalled on Linux; a pause keeps a persistent error
                    // from spinning or flooding the log.
                    log::error!(
                        "worker {}: accept on port {} failed: {e}; trying again in {} ms",
                        self.id,
                        slot.listener.service.port(),
                        EXHAUSTION_PAUSE.as_millis()
                    );
                    slot.listener.paused_until = Some(now + EXHAUSTION_PAUSE);
                    return;
                }
            }
        }
    }

    pub(super) fn resume_listeners(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .listeners
            .iter()
            .filter(|(_, s)| s.listener.paused_until.is_some_and(|t| now >= t))
            .map(|(i, _)| i)
            .collect();
        for i in due {
            self.listeners[i].listener.paused_until = None;
            // Edge-triggered: connections queued while paused raise no new
            // event, so look now.
            self.accept_all(i, now);
        }
        if self.next_bind_retry.is_some_and(|t| now >= t) && self.draining.is_none() {
            let pending = std::mem::take(&mut self.unbound);
            for (addr, svc) in pending {
                // Skip services a newer snapshot removed meanwhile.
                if let Some(current) = self.snapshot.service(svc.port()).cloned() {
                    self.open_one(addr, &current);
                    if !self
                        .unbound
                        .iter()
                        .any(|(a, s)| *a == addr && s.port() == svc.port())
                    {
                        self.reports.send(FromWorker::Listening {
                            port: svc.port(),
                            addr,
                        });
                    }
                }
            }
            self.next_bind_retry = (!self.unbound.is_empty()).then(|| now + BIND_RETRY);
        }
    }
}
