//! illumos event ports emulated on Linux, so the event-ports poller (the
//! code SmartOS runs) serves requests on every test run. Built on Linux
//! always (its tests run in every `cargo test`); handed to the engine only
//! with the feature `emulated-event-ports`.
//!
//! What is emulated, from illumos-gate's `port_associate(3C)`,
//! `port_getn(3C)` and `port_send(3C)`, `usr/src/uts/common/fs/portfs/`
//! and `usr/src/uts/common/fs/sockfs/`:
//!
//! - `port_associate(PORT_SOURCE_FD)` is an `EPOLLONESHOT` registration:
//!   once its event is retrieved the descriptor is no longer associated
//!   and reports nothing until the next `port_associate`, which re-arms it
//!   and, as illumos does, reports at once a condition already true.
//!   Associating an associated descriptor replaces its events and user
//!   value.
//! - `port_dissociate` fails with `ENOENT` for a descriptor not associated
//!   (never associated, or its event already retrieved), and an event
//!   already pending for it is never delivered.
//! - `port_getn(port, list, max, nget, timeout)` blocks until `nget`
//!   events (`nget` 0: returns what is there), returns up to `max`, and
//!   fails with `ETIME` on timeout or `EINTR` on a signal, setting `nget`
//!   to the events it did retrieve, which are in the list.
//! - `port_send` queues one user event per call with its `events` and
//!   `user` payload, in order; an eventfd only wakes the waiter (it would
//!   merge the sends). A full queue fails with `EAGAIN`, as a port at its
//!   `port.max-events` limit (65536 by default) does.
//! - Closing a descriptor dissociates it and drops its pending event, as
//!   illumos does on `close(2)`; the poller tells the emulation through
//!   `PortSys::closing`, which is a no-op on illumos.
//! - Events carry what illumos's sockfs reports, not what Linux reports:
//!   see [`sockfs`].
//!
//! Where the emulation cannot be exact:
//!
//! - Order: illumos has one FIFO of events per port; here user events
//!   (`port_send`) are delivered before descriptor events retrieved in the
//!   same call. Nothing in moirai depends on the order within one batch.
//! - The bits are computed from Linux's `tcp_poll`, not from sockfs's
//!   state: a socket that is both hung up and in error reports the error
//!   first, as illumos does, but the instant at which Linux and illumos
//!   consider a connection disconnected (`TCP_CLOSE` against sockfs's
//!   `SS_SENTLASTREADSIG|SS_SENTLASTWRITESIG`) can differ by a segment.
//!   `POLLOUT` on a flow-controlled socket follows Linux's send buffer,
//!   not sockfs's `so_snd_qfull`. These bits come from illumos-gate's
//!   `so_poll`, read for this module; `POLLRDBAND`, `POLLPRI` and urgent
//!   data are not emulated (moirai never asks for them).
//! - A descriptor closed without `closing` (moirai's Unix sockets, which
//!   have no I/O wrapper) is dropped by epoll only when its last duplicate
//!   closes; a generation number in each registration keeps an event of
//!   the old file from being delivered for a new one with the same number.
//! - `port_getn` waits in milliseconds (epoll's unit), rounded up, not
//!   nanoseconds; timeouts are never shorter than asked.
//! - The kernel's other sources (`PORT_SOURCE_TIMER`, `_AIO`, `_FILE`,
//!   `_ALERT`) are not emulated; moirai uses none.
//! - Privileges, resource controls other than the event limit, and the
//!   real kernel's locking and wake-up order are not emulated: only a
//!   SmartOS zone shows those (`illumos/smoke.sh`).

pub mod sockfs;
pub mod stats;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::stat::{fstat, SFlag};

use super::ports_state::bits::{POLLIN, POLLOUT};
use super::ports_state::{PortOps, PortSys, RawEvent};
use sockfs::Kind;
use stats::Counters;

/// `PORT_SOURCE_USER` (illumos `<sys/port.h>`).
pub const PORT_SOURCE_USER: u16 = 3;
/// `PORT_SOURCE_FD` (illumos `<sys/port.h>`).
pub const PORT_SOURCE_FD: u16 = 4;
/// illumos's default `project.max-port-events`: events a port may hold.
pub const MAX_EVENTS: usize = 65536;

/// `port_event_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortEvent {
    /// `portev_events`: the `poll` bits, or a user event's `events`.
    pub events: i32,
    /// `portev_source`: [`PORT_SOURCE_FD`] or [`PORT_SOURCE_USER`].
    pub source: u16,
    /// `portev_object`: the descriptor (for a user event, the sender's
    /// pid, as illumos sets it).
    pub object: usize,
    /// `portev_user`: the value given to `port_associate` or `port_send`.
    pub user: usize,
}

/// The epoll data of the eventfd that wakes a waiter.
const WAKE: u64 = u64::MAX;

/// One associated descriptor.
#[derive(Debug, Clone, Copy)]
struct Assoc {
    /// Which registration this is; in the epoll data beside the fd.
    gen: u32,
    events: i32,
    user: usize,
    kind: Kind,
    /// Associated now (not yet retrieved, not dissociated).
    live: bool,
}

#[derive(Debug, Default)]
struct Table {
    by_fd: HashMap<RawFd, Assoc>,
    next_gen: u32,
}

/// An emulated event port.
#[derive(Debug)]
pub struct EmulatedPort {
    epoll: Epoll,
    wake: EventFd,
    table: Mutex<Table>,
    user: Mutex<VecDeque<(i32, usize)>>,
    /// `port_getn`'s epoll buffer, kept between calls (one per port, as
    /// each worker polls its own).
    ready: Mutex<Vec<EpollEvent>>,
}

/// Whether `fd` is a socket (sockfs reports its events its own way).
fn kind_of(fd: RawFd) -> Result<Kind, Errno> {
    let st = fstat(borrow(fd)?)?;
    Ok(
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK {
            Kind::Socket
        } else {
            Kind::Other
        },
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn data(fd: RawFd, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(fd as u32)
}

fn epoll_flags(events: i32) -> EpollFlags {
    let mut f = EpollFlags::EPOLLONESHOT;
    if events & POLLIN != 0 {
        f |= EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
    }
    if events & POLLOUT != 0 {
        f |= EpollFlags::EPOLLOUT;
    }
    f
}

/// Borrows a descriptor the caller names for one epoll or fstat call.
fn borrow(fd: RawFd) -> Result<BorrowedFd<'static>, Errno> {
    if fd < 0 {
        return Err(Errno::EBADF);
    }
    // SAFETY: the borrow lives only for the one system call it is passed
    // to (epoll_ctl or fstat); if `fd` was closed meanwhile the call fails
    // with EBADF, and no memory is touched through it. The 'static lifetime
    // never escapes this module's callers, which drop it at once.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

impl EmulatedPort {
    /// `port_create`.
    pub fn create() -> Result<EmulatedPort, Errno> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        // Level-triggered, not one-shot: it is the port's own queue.
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        Ok(EmulatedPort {
            epoll,
            wake,
            table: Mutex::new(Table::default()),
            user: Mutex::new(VecDeque::new()),
            ready: Mutex::new(Vec::new()),
        })
    }

    /// `port_associate(port, PORT_SOURCE_FD, fd, events, user)`.
    pub fn associate(&self, fd: RawFd, events: i32, user: usize) -> Result<(), Errno> {
        let mut t = lock(&self.table);
        let gen = t.next_gen;
        t.next_gen = t.next_gen.wrapping_add(1);
        let ev = EpollEvent::new(epoll_flags(events), data(fd, gen));
        let known = t.by_fd.get(&fd).copied();
        // The file's kind is looked up only for a file new here: a
        // re-association (one per event) is one epoll_ctl, as illumos's is
        // one port_associate.
        let (r, kind) = match known {
            // In the epoll set (armed or spent): modify, unless the file
            // was closed and the number reused (ENOENT: a new file).
            Some(a) => match self.epoll.modify(borrow(fd)?, &mut ev.clone()) {
                Err(Errno::ENOENT) => (self.epoll.add(borrow(fd)?, ev), kind_of(fd)?),
                r => (r, a.kind),
            },
            None => {
                let r = match self.epoll.add(borrow(fd)?, ev) {
                    Err(Errno::EEXIST) => self.epoll.modify(borrow(fd)?, &mut ev.clone()),
                    r => r,
                };
                (r, kind_of(fd)?)
            }
        };
        r?;
        stats::bump(|c: &Counters| &c.associate, 1);
        if known.is_some() {
            stats::bump(|c: &Counters| &c.reassociate, 1);
        }
        t.by_fd.insert(
            fd,
            Assoc {
                gen,
                events,
                user,
                kind,
                live: true,
            },
        );
        Ok(())
    }

    /// `port_dissociate(port, PORT_SOURCE_FD, fd)`.
    pub fn dissociate(&self, fd: RawFd) -> Result<(), Errno> {
        stats::bump(|c: &Counters| &c.dissociate, 1);
        let mut t = lock(&self.table);
        match t.by_fd.get(&fd) {
            Some(a) if a.live => {}
            _ => return Err(Errno::ENOENT),
        }
        t.by_fd.remove(&fd);
        // Removing it also drops an event epoll has ready for it.
        match self.epoll.delete(borrow(fd)?) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What `close(fd)` does to a port on illumos: the association and any
    /// pending event go. Called just before the descriptor is closed.
    pub fn closing(&self, fd: RawFd) {
        let mut t = lock(&self.table);
        if t.by_fd.remove(&fd).is_some() {
            // Fails harmlessly when epoll dropped it already.
            if let Ok(b) = borrow(fd) {
                let _ = self.epoll.delete(b);
            }
        }
    }

    /// `port_send(port, events, user)`.
    pub fn send(&self, events: i32, user: usize) -> Result<(), Errno> {
        {
            let mut q = lock(&self.user);
            if q.len() >= MAX_EVENTS {
                return Err(Errno::EAGAIN);
            }
            q.push_back((events, user));
        }
        stats::bump(|c: &Counters| &c.send, 1);
        // Pushed before the write: a waiter that reads the eventfd finds
        // the event in the queue.
        match self.wake.write(1) {
            // The counter is saturated: the waiter is woken already.
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `port_getn(port, list, max, nget, timeout)`: `out` gets up to `max`
    /// events; `nget` is how many to wait for on entry and how many were
    /// retrieved on return, errors included (`ETIME`, `EINTR`).
    pub fn getn(
        &self,
        out: &mut Vec<PortEvent>,
        max: usize,
        nget: &mut usize,
        timeout: Option<Duration>,
    ) -> Result<(), Errno> {
        stats::bump(|c: &Counters| &c.getn, 1);
        stats::maybe_write();
        out.clear();
        let want = *nget;
        if want > max || max == 0 {
            return Err(Errno::EINVAL);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut ready = lock(&self.ready);
        ready.resize(max.min(1024), EpollEvent::empty());
        let mut first = true;
        let r = loop {
            self.take_user(out, max);
            let have = out.len();
            if have >= max || (have >= want && !first) {
                break Ok(());
            }
            let wait = if have >= want {
                Some(Duration::ZERO)
            } else {
                match deadline {
                    None => None,
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() && !first {
                            break Err(Errno::ETIME);
                        }
                        Some(left)
                    }
                }
            };
            first = false;
            let room = (max - have).min(ready.len());
            match self.epoll.wait(&mut ready[..room], millis(wait)) {
                Ok(n) => self.take_ready(&ready[..n], out),
                Err(Errno::EINTR) => break Err(Errno::EINTR),
                Err(e) => break Err(e),
            }
        };
        *nget = out.len();
        stats::bump(|c: &Counters| &c.events, out.len() as u64);
        r
    }

    fn take_user(&self, out: &mut Vec<PortEvent>, max: usize) {
        let mut q = lock(&self.user);
        while out.len() < max {
            let Some((events, user)) = q.pop_front() else {
                break;
            };
            out.push(PortEvent {
                events,
                source: PORT_SOURCE_USER,
                object: std::process::id() as usize,
                user,
            });
        }
    }

    fn take_ready(&self, ready: &[EpollEvent], out: &mut Vec<PortEvent>) {
        let mut t = lock(&self.table);
        for ev in ready {
            if ev.data() == WAKE {
                // Reset it; the queue is read on the next turn. EAGAIN:
                // another waiter reset it first.
                let _ = self.wake.read();
                continue;
            }
            let fd = ev.data() as u32 as RawFd;
            let gen = (ev.data() >> 32) as u32;
            let Some(a) = t.by_fd.get_mut(&fd) else {
                continue; // dissociated or closed
            };
            if a.gen != gen || !a.live {
                continue; // an older registration of the number
            }
            let revents = sockfs::illumos_revents(a.kind, a.events, ev.events().bits());
            if revents == 0 {
                // Linux fired where illumos would not (e.g. a FIN on a
                // descriptor associated for POLLOUT only): stay
                // associated, as illumos does, by re-arming at once.
                let again = EpollEvent::new(epoll_flags(a.events), ev.data());
                if let Ok(b) = borrow(fd) {
                    let _ = self.epoll.modify(b, &mut again.clone());
                }
                continue;
            }
            // One-shot: retrieved, so no longer associated.
            a.live = false;
            out.push(PortEvent {
                events: revents,
                source: PORT_SOURCE_FD,
                object: fd as usize,
                user: a.user,
            });
        }
    }
}

/// epoll's timeout: milliseconds, rounded up so a wait is never shorter
/// than asked; None is forever.
fn millis(wait: Option<Duration>) -> EpollTimeout {
    match wait {
        None => EpollTimeout::NONE,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::MAX)
        }
    }
}

/// The poller's port on Linux: the emulation behind the same seam as the
/// illumos syscalls.
#[derive(Debug)]
pub struct Port(EmulatedPort);

impl Port {
    /// The emulation underneath, for tests of its semantics.
    pub fn emulated(&self) -> &EmulatedPort {
        &self.0
    }
}

impl PortSys for Port {
    type Event = PortEvent;

    fn create() -> io::Result<Port> {
        Ok(Port(EmulatedPort::create()?))
    }

    fn getn(&self, buf: &mut Vec<PortEvent>, timeout: Option<Duration>) -> io::Result<usize> {
        let max = buf.capacity().max(1);
        let mut nget = 1;
        match self.0.getn(buf, max, &mut nget, timeout) {
            Ok(()) | Err(Errno::ETIME) | Err(Errno::EINTR) => Ok(nget),
            Err(e) => Err(e.into()),
        }
    }

    fn send(&self) -> io::Result<()> {
        Ok(self.0.send(0, 0)?)
    }

    fn decode(e: &PortEvent) -> RawEvent {
        if e.source == PORT_SOURCE_FD {
            RawEvent::Fd {
                fd: e.object as RawFd,
                revents: e.events,
            }
        } else {
            RawEvent::User
        }
    }

    fn closing(&self, fd: i32) {
        self.0.closing(fd);
    }

    fn name() -> &'static str {
        "event ports (emulated)"
    }
}

impl PortOps for &Port {
    fn associate(&mut self, fd: i32, events: i32) -> io::Result<()> {
        Ok(self.0.associate(fd, events, 0)?)
    }

    fn dissociate(&mut self, fd: i32) -> io::Result<()> {
        Ok(self.0.dissociate(fd)?)
    }
}

#[cfg(test)]
mod tests;
