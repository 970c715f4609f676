//! A worker thread: one poll, its listeners, its sessions, its buffer pool
//! and its timer wheel. Nothing here is shared with another thread except
//! the snapshot (read-only) and the backends' connection counters.
//!
//! The loop: poll, handle the batch, fire timers, then read the control
//! channel and apply the newest snapshot in one step. Open sessions keep the
//! service and backend they started with; only new connections see the new
//! snapshot.

mod listen;
mod messages;

pub use messages::{FromWorker, Lent, Reporter, ToWorker};

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use slab::Slab;

use crate::config::ServiceKind;
use crate::engine::access;
use crate::engine::balance::RoundRobin;
use crate::engine::buffer::BufferPool;
use crate::engine::conn::Readiness;
use crate::engine::http::HttpSession;
use crate::engine::legs::Legs;
use crate::engine::os::Os;
use crate::engine::pool::IdlePool;
use crate::engine::ports::PortMap;
use crate::engine::rooms::Rooms;
use crate::engine::session::Session;
use crate::engine::step::{CloseReason, Ctx, Step};
use crate::engine::syslog::Sink;
use crate::engine::tcp::TcpSession;
use crate::engine::timer::{TimerKey, Wheel, TICK};
use crate::engine::token::{EventTarget, Generations, Side, SlotId};
use crate::metrics::stats::{Latency, SyslogCounters};
use crate::proto::http1::exchange::Exchange;
use crate::proto::http1::Scratch;
use crate::proto::syslog::Access;
use crate::snapshot::{Backend, ServiceSnapshot, Snapshot};
use crate::sys::net::{self, ListenMode, SharedListeners, TcpStream};
use crate::sys::poll::{Event, Events, Interest, Poll, Waker};
use listen::{ListenerSlot, BIND_RETRY};

/// Idle buffers a worker keeps (16 KiB each).
const POOL_KEEP: usize = 4096;
/// How often latencies go to the control thread.
const LATENCY_HANDOVER: Duration = Duration::from_secs(1);

/// How a worker opens listeners, and how many connections it may hold.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Per-worker sockets or one shared socket.
    pub mode: ListenMode,
    /// The addresses services listen on (`--listen-address`); empty means
    /// all of them.
    pub addresses: Arc<Vec<IpAddr>>,
    /// Sockets an upgrade handed over, taken before binding.
    pub inherited: Arc<net::Inherited>,
    /// The shared sockets, for [`ListenMode::Shared`].
    pub shared: Arc<SharedListeners>,
    /// Descriptors this worker's connections may hold: a client socket
    /// per session, a backend socket per leg. At the limit it stops
    /// accepting, so new clients wait in the kernel's accept queue instead
    /// of being accepted and dropped (HAProxy's `maxconn`).
    pub descriptors: usize,
    /// How long an HTTP request head may take once its first byte came
    /// (then 408): slow clients cannot hold a worker's sessions.
    pub header_timeout: Duration,
    /// Syslog lines sent and dropped, a shard per worker.
    pub syslog_counts: Arc<SyslogCounters>,
}

/// The control thread's handle on a worker.
#[derive(Debug)]
pub struct WorkerHandle {
    /// Messages in.
    pub tx: Sender<ToWorker>,
    /// Wakes the worker's poll after a message.
    pub waker: Arc<Waker>,
    /// The thread.
    pub join: JoinHandle<()>,
}

impl WorkerHandle {
    /// Sends a message and wakes the worker. False if it is gone.
    pub fn send(&self, msg: ToWorker) -> bool {
        self.tx.send(msg).is_ok() && self.waker.wake().is_ok()
    }
}

/// Starts worker `id`.
pub fn spawn(id: usize, listen: ListenConfig, reports: Reporter) -> io::Result<WorkerHandle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), EventTarget::Waker.token())?);
    let (tx, rx) = crossbeam_channel::unbounded();
    let join = std::thread::Builder::new()
        .name(format!("moirai-worker-{id}"))
        .spawn(move || {
            let mut w = Worker::new(id, poll, rx, reports, listen);
            w.run();
        })?;
    Ok(WorkerHandle { tx, waker, join })
}

/// A session of any kind, boxed: a slab entry is a few words and each
/// connection holds only its own kind's state, sized exactly (an idle
/// keep-alive connection is most of what a busy balancer holds). The
/// allocation costs tens of nanoseconds against the dozen syscalls of a
/// new connection.
type AnySession = Box<dyn Session>;

/// Counts a client connection's end: closed, and a timeout on the side
/// that timed out (the service's for the client side; the backend's too for
/// the server side).
fn count_close(worker: usize, svc: &ServiceSnapshot, backend: Option<&Backend>, r: CloseReason) {
    let c = svc.stats.of(worker);
    c.closed.add(1);
    match r {
        CloseReason::IdleTimeout(side) => {
            c.timeouts.add(1);
            if let (Side::Backend, Some(b)) = (side, backend) {
                b.stats().of(worker).timeouts.add(1);
            }
        }
        CloseReason::ConnectFailed => c.connect_errors.add(1),
        CloseReason::Reset(_) | CloseReason::BadFraming(_) => c.resets.add(1),
        CloseReason::NoBackend => c.no_backend.add(1),
        CloseReason::Done => {}
    }
    // HAProxy's client and server aborts: a cut or a timeout while a
    // backend was engaged, on the side that did it.
    if let (CloseReason::Reset(side) | CloseReason::IdleTimeout(side), Some(b)) = (r, backend) {
        let bc = b.stats().of(worker);
        let (sc, bc) = match side {
            Side::Client => (&c.client_aborts, &bc.client_aborts),
            Side::Backend => (&c.server_aborts, &bc.server_aborts),
        };
        sc.add(1);
        bc.add(1);
    }
}

struct SessionSlot {
    gen: u32,
    /// The session's entry in the timer wheel and when it fires, if armed.
    /// Arming is lazy: a session whose deadline moves later keeps its entry
    /// (when it fires early, the session is not called and it is armed
    /// again); only an earlier deadline replaces it.
    timer: Option<(TimerKey, Instant)>,
    session: AnySession,
}

impl SessionSlot {
    /// The wheel entry the session's deadline calls for: `Some` when it has
    /// none at or before that deadline (the old one, if any, is returned
    /// for cancelling).
    fn rearm(&mut self) -> Option<(Instant, Option<TimerKey>)> {
        let d = self.session.deadline();
        match self.timer {
            Some((_, at)) if at <= d => None,
            old => Some((d, old.map(|(k, _)| k))),
        }
    }
}

pub(super) struct Worker {
    id: usize,
    poll: Poll,
    rx: Receiver<ToWorker>,
    reports: Reporter,
    listen: ListenConfig,
    snapshot: Arc<Snapshot>,
    listeners: Slab<ListenerSlot>,
    /// Listener slots by service port: one per listen address.
    by_port: PortMap<Vec<usize>>,
    /// Listeners (address, service) that could not be opened yet.
    unbound: Vec<(Option<IpAddr>, Arc<ServiceSnapshot>)>,
    next_bind_retry: Option<Instant>,
    sessions: Slab<SessionSlot>,
    /// A slot for each backend socket of a session.
    legs: Legs,
    gens: Generations,
    pool: BufferPool,
    wheel: Wheel,
    cursors: PortMap<RoundRobin>,
    again: Vec<SlotId>,
    draining: Option<Instant>,
    /// Accepting stopped at the descriptor limit; resumes when
    /// connections end.
    full: bool,
    idle: IdlePool,
    next_idle_expiry: Instant,
    scratch: Vec<Scratch>,
    /// Finished HTTP exchanges, for the next requests to reuse. Boxed on
    /// purpose: each box moves whole into a session's stage and back.
    #[allow(clippy::vec_box)]
    exchanges: Vec<Box<Exchange>>,
    /// Resting HTTP/2 connections' vectors, for the next busy ones.
    h2_rooms: Rooms,
    /// Latencies by service port since the last hand-over.
    latency: PortMap<Latency>,
    next_latency_handover: Instant,
    /// Where access lines go, if the `syslog` key is set.
    syslog: Option<Sink>,
}

impl Worker {
    fn new(
        id: usize,
        poll: Poll,
        rx: Receiver<ToWorker>,
        reports: Reporter,
        listen: ListenConfig,
    ) -> Worker {
        Worker {
            id,
            poll,
            rx,
            reports,
            listen,
            snapshot: Arc::new(Snapshot::default()),
            listeners: Slab::new(),
            by_port: PortMap::default(),
            unbound: Vec::new(),
            next_bind_retry: None,
            sessions: Slab::with_capacity(1024),
            legs: Legs::default(),
            gens: Generations::default(),
            pool: BufferPool::new(POOL_KEEP),
            wheel: Wheel::new(Instant::now()),
            cursors: PortMap::default(),
            again: Vec::new(),
            draining: None,
            full: false,
            idle: IdlePool::default(),
            next_idle_expiry: Instant::now(),
            scratch: Vec::new(),
            exchanges: Vec::new(),
            h2_rooms: Rooms::default(),
            latency: PortMap::default(),
            next_latency_handover: Instant::now() + LATENCY_HANDOVER,
            syslog: None,
        }
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut expired = Vec::new();
        let mut again = Vec::new();
        loop {
            let timeout = if !self.again.is_empty() {
                Some(Duration::ZERO)
            } else if self.wheel.is_empty()
                && self.idle.is_empty()
                && self.unbound.is_empty()
                && self.draining.is_none()
                && self.latency.is_empty()
                && !self
                    .listeners
                    .iter()
                    .any(|(_, l)| l.listener.paused_until.is_some())
            {
                None
            } else {
                Some(TICK)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("worker {}: poll failed: {e}", self.id);
                    std::thread::sleep(TICK);
                }
                continue;
            }
            let now = Instant::now();
            let mut messages = false;
            for ev in events.iter() {
                match EventTarget::from_token(ev.token()) {
                    EventTarget::Waker => messages = true,
                    EventTarget::Listener(id) => self.on_listener(id, now),
                    EventTarget::Client(id) => self.on_session_event(id, Side::Client, ev, now),
                    EventTarget::Leg(leg) => {
                        if let Some(id) = self.legs.session_of(leg) {
                            let r = Readiness::from(ev);
                            self.with_session(id, now, |s, ctx| s.on_leg_event(ctx, leg, r));
                        }
                    }
                    EventTarget::Idle(id) => self.idle.on_event(&mut Os(self.poll.registry()), id),
                }
            }
            std::mem::swap(&mut again, &mut self.again);
            for id in again.drain(..) {
                self.with_session(id, now, |s, ctx| s.drive(ctx));
            }
            self.wheel.expire(now, &mut expired);
            for id in expired.drain(..) {
                if let Some(slot) = self.sessions.get_mut(id.index as usize) {
                    if slot.gen == id.gen {
                        // The entry left the wheel as it fired. A deadline
                        // that moved later only needs a new entry.
                        slot.timer = None;
                        self.with_session(id, now, |s, ctx| {
                            if ctx.now < s.deadline() {
                                Step::Open
                            } else {
                                s.on_timer(ctx)
                            }
                        });
                    }
                }
            }
            self.resume_listeners(now);
            if now >= self.next_idle_expiry {
                self.idle.expire(now);
                self.next_idle_expiry = now + Duration::from_secs(1);
            }
            if now >= self.next_latency_handover {
                self.next_latency_handover = now + LATENCY_HANDOVER;
                if !self.latency.is_empty() {
                    let batch: Vec<(u16, Latency)> = self.latency.drain().collect();
                    self.reports.send(FromWorker::Latency(batch));
                }
            }
            if self.full && self.has_room() {
                self.full = false;
                let open: Vec<usize> = self.by_port.values().flatten().copied().collect();
                for i in open {
                    self.accept_all(i, now);
                }
            }
            if messages || !self.rx.is_empty() {
                self.read_messages(now);
            }
            if let Some(deadline) = self.draining {
                if self.sessions.is_empty() || now >= deadline {
                    break;
                }
            }
        }
        let cut = self.sessions.len();
        for (_, mut slot) in std::mem::take(&mut self.sessions) {
            slot.session.release(&mut self.pool, &mut self.legs);
        }
        // The pool's connections (the drained sessions' among them) close
        // as the pool closes what it lets go: reset, no TIME_WAIT left.
        self.idle.retain_backends(|_| false);
        self.reports.send(FromWorker::Exited {
            worker: self.id,
            cut,
        });
    }

    fn read_messages(&mut self, now: Instant) {
        let mut newest = None;
        loop {
            match self.rx.try_recv() {
                Ok(ToWorker::Snapshot(s)) => newest = Some(s),
                Ok(ToWorker::Drain(deadline)) => self.start_drain(deadline, now),
                Ok(ToWorker::Handover(deadline)) => self.start_handover(deadline, now),
                Ok(ToWorker::Lend(reply)) => {
                    let _ = reply.send(self.lend());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // The control thread is gone: nobody can reconfigure or
                    // stop us, so finish what is open and exit.
                    if self.draining.is_none() {
                        self.start_drain(now, now);
                    }
                    break;
                }
            }
        }
        if let Some(s) = newest {
            if self.draining.is_none() {
                self.apply(s, now);
            }
        }
    }

    /// Puts a snapshot in force: new listeners opened, removed ones closed,
    /// kept ones pointed at their new service.
    fn apply(&mut self, snap: Arc<Snapshot>, now: Instant) {
        // Listeners still to open keep being tried while their service
        // stays (another address of it may be open already).
        self.unbound
            .retain(|(_, s)| snap.service(s.port()).is_some());
        for svc in &snap.services {
            match self.by_port.get(&svc.port()) {
                Some(slots) => {
                    for &i in slots {
                        self.listeners[i].listener.service = Arc::clone(svc);
                    }
                }
                None => self.open(svc),
            }
        }
        let gone: Vec<u16> = self
            .by_port
            .keys()
            .copied()
            .filter(|p| snap.service(*p).is_none())
            .collect();
        for &port in &gone {
            self.close_listener(port, now);
            self.cursors.remove(&port);
        }
        // Idle keep-alive connections of a service that is gone are closed,
        // as HAProxy's reload closes the old process's idle connections:
        // their clients reconnect to what is served now.
        if !gone.is_empty() {
            let idle: Vec<SlotId> = self
                .sessions
                .iter()
                .filter(|(_, s)| gone.contains(&s.session.port()) && s.session.is_idle())
                .map(|(i, s)| SlotId {
                    index: i as u32,
                    gen: s.gen,
                })
                .collect();
            for id in idle {
                self.with_session(id, now, |_, _| Step::Closed(CloseReason::Done));
            }
        }
        // Idle backend connections only to backends in service and up.
        self.idle.retain_backends(|addr| {
            snap.services
                .iter()
                .any(|s| s.backends.iter().any(|b| b.addr() == addr))
        });
        self.next_bind_retry = (!self.unbound.is_empty()).then(|| now + BIND_RETRY);
        let generation = snap.generation;
        if self.syslog.as_ref().map(Sink::spec) != snap.syslog.as_ref() {
            self.syslog = snap.syslog.clone().and_then(|spec| {
                Sink::open(spec, Arc::clone(&self.listen.syslog_counts), self.id)
                    .map_err(|e| log::error!("worker {}: no access lines: {e}", self.id))
                    .ok()
            });
        }
        self.snapshot = snap;
        self.reports.send(FromWorker::Applied {
            worker: self.id,
            generation,
            at: Instant::now(),
        });
    }

    /// An upgrade: listeners leave the poll but stay open, for the control
    /// thread to hand to the next program; then a drain as for a stop.
    fn start_handover(&mut self, deadline: Instant, now: Instant) {
        let mut out = Vec::new();
        for (_, slots) in std::mem::take(&mut self.by_port) {
            for i in slots {
                let mut slot = self.listeners.remove(i);
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut slot.listener.socket.socket);
                out.push((
                    slot.listener.addr,
                    slot.listener.service.port(),
                    slot.listener.socket,
                ));
            }
        }
        self.reports.send(FromWorker::Listeners(out));
        self.start_drain(deadline, now);
    }

    fn start_drain(&mut self, deadline: Instant, now: Instant) {
        self.draining = Some(deadline);
        let ports: Vec<u16> = self.by_port.keys().copied().collect();
        for port in ports {
            self.close_listener(port, now);
        }
        self.unbound.clear();
        // As HAProxy's soft-stop: idle keep-alive connections close now
        // (their clients reconnect to whoever serves next), requests in
        // flight finish with `Connection: close`; tcp connections keep
        // their grace.
        let mut idle = Vec::new();
        let mut announce = Vec::new();
        for (i, slot) in self.sessions.iter_mut() {
            let id = SlotId {
                index: i as u32,
                gen: slot.gen,
            };
            if slot.session.is_idle() {
                idle.push(id);
            } else {
                slot.session.set_draining();
                if slot.session.announces_drain() {
                    announce.push(id);
                }
            }
        }
        for id in idle {
            self.with_session(id, now, |_, _| Step::Closed(CloseReason::Done));
        }
        // HTTP/2 connections say GOAWAY now, idle or not.
        for id in announce {
            self.with_session(id, now, |s, ctx| s.drive(ctx));
        }
    }

    fn start_session(
        &mut self,
        svc: Arc<ServiceSnapshot>,
        mut stream: TcpStream,
        peer: std::net::SocketAddr,
        now: Instant,
    ) {
        let kind = svc.spec.kind;
        let local = match kind {
            ServiceKind::TcpProxyV2 => stream.local_addr().ok(),
            _ => None,
        };
        let entry = self.sessions.vacant_entry();
        let id = SlotId {
            index: entry.key() as u32,
            gen: self.gens.bump(),
        };
        let port = svc.port();
        svc.stats.of(self.id).opened.add(1);
        let counted = Arc::clone(&svc);
        let mut os = Os(self.poll.registry());
        // Requests and responses go out at once, not after Nagle's wait
        // (inherited from the listener where the kernel does that).
        if !net::ACCEPTED_HAVE_NODELAY {
            let _ = stream.set_nodelay(true);
        }
        let watched = os.0.register(
            &mut stream,
            EventTarget::Client(id).token(),
            Interest::READABLE | Interest::WRITABLE,
        );
        let mut ctx = Ctx {
            net: &mut os,
            pool: &mut self.pool,
            now,
            id,
            legs: &mut self.legs,
            cursor: self.cursors.entry(port).or_default(),
            snapshot: &self.snapshot,
            idle: &mut self.idle,
            header_timeout: self.listen.header_timeout,
            scratch: &mut self.scratch,
            exchanges: &mut self.exchanges,
            h2_rooms: &mut self.h2_rooms,
            worker: self.id,
            latency: &mut self.latency,
            syslog: self.syslog.as_mut(),
        };
        let started = match watched {
            Err(_) => Err(CloseReason::Reset(Side::Client)),
            Ok(()) if kind.is_http() => {
                HttpSession::start(&mut ctx, svc, stream, peer).map(|s| Box::new(s) as AnySession)
            }
            Ok(()) => TcpSession::start(&mut ctx, svc, stream, peer, local)
                .map(|s| Box::new(s) as AnySession),
        };
        match started {
            Ok(session) => {
                let d = session.deadline();
                entry.insert(SessionSlot {
                    gen: id.gen,
                    timer: Some((self.wheel.schedule(id, d), d)),
                    session,
                });
            }
            Err(r) => {
                count_close(self.id, &counted, None, r);
                if let Some(sink) = self.syslog.as_mut() {
                    sink.access(&Access {
                        term: r.termination(),
                        ..access::line(&counted, peer, None)
                    });
                }
                match r {
                    CloseReason::NoBackend => {
                        log::debug!("port {port}: no usable backend; closing {peer}")
                    }
                    r => log::debug!("port {port}: session for {peer} not started: {r:?}"),
                }
            }
        }
    }

    fn on_session_event(&mut self, id: SlotId, side: Side, ev: &Event, now: Instant) {
        let r = Readiness::from(ev);
        self.with_session(id, now, |s, ctx| s.on_event(ctx, side, r));
    }

    /// Runs `f` on a live session and acts on the step it returns.
    fn with_session(
        &mut self,
        id: SlotId,
        now: Instant,
        f: impl FnOnce(&mut AnySession, &mut Ctx<'_>) -> Step,
    ) {
        let i = id.index as usize;
        let Some(slot) = self.sessions.get_mut(i) else {
            return;
        };
        if slot.gen != id.gen {
            return;
        }
        let port = slot.session.port();
        let mut os = Os(self.poll.registry());
        let mut ctx = Ctx {
            net: &mut os,
            pool: &mut self.pool,
            now,
            id,
            legs: &mut self.legs,
            cursor: self.cursors.entry(port).or_default(),
            snapshot: &self.snapshot,
            idle: &mut self.idle,
            header_timeout: self.listen.header_timeout,
            scratch: &mut self.scratch,
            exchanges: &mut self.exchanges,
            h2_rooms: &mut self.h2_rooms,
            worker: self.id,
            latency: &mut self.latency,
            syslog: self.syslog.as_mut(),
        };
        let step = f(&mut slot.session, &mut ctx);
        if let Step::Closed(_) = step {
            slot.session.hand_back(&mut ctx);
        }
        if matches!(step, Step::Open | Step::Again) {
            if let Some((d, old)) = slot.rearm() {
                // One entry per session: an earlier deadline replaces it.
                if let Some(old) = old {
                    self.wheel.cancel(old);
                }
                slot.timer = Some((self.wheel.schedule(id, d), d));
            }
        }
        match step {
            Step::Open => {}
            Step::Again => self.again.push(id),
            Step::Closed(reason) => {
                log::trace!("worker {}: session {i} closed: {reason:?}", self.id);
                count_close(
                    self.id,
                    slot.session.service(),
                    slot.session.backend(),
                    reason,
                );
                if let Some(sink) = self.syslog.as_mut() {
                    slot.session.log_close(sink, reason, now);
                }
                let mut slot = self.sessions.remove(i);
                if let Some((t, _)) = slot.timer.take() {
                    self.wheel.cancel(t);
                }
                slot.session.release(&mut self.pool, &mut self.legs);
            }
        }
    }
}
