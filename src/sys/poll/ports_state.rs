//! Bookkeeping for the illumos event-ports poller, in plain Rust so it is
//! unit-tested on every platform through a fake syscall layer.
//!
//! Event ports are one-shot: once `port_getn` delivers an event for a
//! descriptor, the descriptor is no longer associated and reports nothing
//! until `port_associate` is called again. The engine expects edge-triggered
//! readiness instead: an event when a direction becomes ready, and none
//! while the engine is not trying (a full buffer must not make the worker
//! spin). The emulation, per descriptor and direction:
//!
//! - after a delivery, a direction that was reported stays un-armed; a
//!   direction that was registered but not reported is re-armed;
//! - a reported direction is re-armed when the I/O wrapper sees the engine
//!   run out of work in it: `WouldBlock`, or a short read or write
//!   ([`Associations::want`]); the next association then reports the
//!   level, so data that arrived meanwhile is never missed;
//! - sources without an I/O wrapper (the signal pipe) are re-armed after
//!   every delivery, which is level-triggered and fine for a pipe that is
//!   always drained.
//!
//! Re-associations are batched: they happen at the start of the next poll,
//! one `port_associate` per descriptor that needs one.

use std::collections::HashMap;
use std::io;

use mio::Token;

/// Deliberate bugs, switched on by tests only, to show that a run through
/// the emulated event ports catches what illumos would.
#[cfg(test)]
pub mod mutation {
    use std::cell::Cell;

    thread_local! {
        /// Forget every re-association the I/O wrappers ask for: the
        /// missing `port_associate` after an event. On this thread only,
        /// so tests running beside it are not affected.
        pub static NO_REARM: Cell<bool> = const { Cell::new(false) };
    }
}

/// Readable direction bit.
pub const READ: u8 = 1;
/// Writable direction bit.
pub const WRITE: u8 = 2;

/// `poll(2)` event bits, as event ports report them (same values on
/// illumos and Linux).
pub mod bits {
    /// Data to read.
    pub const POLLIN: i32 = 0x0001;
    /// Room to write.
    pub const POLLOUT: i32 = 0x0004;
    /// An error is pending.
    pub const POLLERR: i32 = 0x0008;
    /// The peer hung up.
    pub const POLLHUP: i32 = 0x0010;
    /// The descriptor is not open.
    pub const POLLNVAL: i32 = 0x0020;
}

/// How a source is re-armed after a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rearm {
    /// When its I/O wrapper reports running out of work (edge emulation).
    OnWouldBlock,
    /// At once (level-triggered), for sources without an I/O wrapper.
    AfterDelivery,
}

/// The syscalls the bookkeeping needs, so tests can fake them.
pub trait PortOps {
    /// `port_associate(port, PORT_SOURCE_FD, fd, events, user)`.
    fn associate(&mut self, fd: i32, events: i32) -> io::Result<()>;
    /// `port_dissociate(port, PORT_SOURCE_FD, fd)`.
    fn dissociate(&mut self, fd: i32) -> io::Result<()>;
}

/// The rest of the event-port interface: the port itself, waiting and
/// waking. Implemented by the real syscalls on illumos
/// (`event_ports_sys`) and by an emulation on Linux (`event_ports_emul`,
/// feature `emulated-event-ports`), so the poller above runs unchanged on
/// both. `&Self` also implements [`PortOps`].
pub trait PortSys: Sized + Send + Sync + std::fmt::Debug {
    /// What `port_getn` fills (`port_event_t`).
    type Event: Copy + std::fmt::Debug;

    /// `port_create`, close-on-exec.
    fn create() -> io::Result<Self>;

    /// `port_getn` with `nget` 1: waits up to `timeout` (forever if None)
    /// for at least one event and stores up to `buf.capacity()` (at least
    /// one); returns how many. A timeout (`ETIME`) or a signal (`EINTR`)
    /// is not an error: it returns what had arrived, possibly nothing.
    fn getn(
        &self,
        buf: &mut Vec<Self::Event>,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<usize>;

    /// `port_send(port, 0, NULL)`: queues one user event (a wake-up).
    fn send(&self) -> io::Result<()>;

    /// Decodes one event `getn` returned.
    fn decode(e: &Self::Event) -> RawEvent;

    /// `fd` is about to be closed. The illumos kernel dissociates a
    /// descriptor and drops its queued event when the descriptor closes,
    /// so there this is nothing; an emulation does it here.
    fn closing(&self, _fd: i32) {}

    /// The poller's name for the log (`event ports`, ...).
    fn name() -> &'static str;
}

/// One event as `port_getn` returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEvent {
    /// `PORT_SOURCE_FD`: a descriptor and its `poll` bits.
    Fd {
        /// The descriptor.
        fd: i32,
        /// What happened (`POLLIN`, `POLLOUT`, ...).
        revents: i32,
    },
    /// `PORT_SOURCE_USER`: a `port_send`, i.e. the waker.
    User,
}

/// An event in the engine's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The registration's token.
    pub token: Token,
    /// Data (or EOF, or an error) to read.
    pub readable: bool,
    /// Room to write (or an error).
    pub writable: bool,
    /// The peer hung up.
    pub read_closed: bool,
    /// An error is pending.
    pub error: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    token: Token,
    interest: u8,
    /// Directions associated with the port right now.
    armed: u8,
    /// Directions to associate at the next poll.
    want: u8,
    mode: Rearm,
}

/// Which descriptors want what, and what must be re-associated.
#[derive(Debug, Default)]
pub struct Associations {
    entries: HashMap<i32, Entry>,
    pending: Vec<i32>,
    waker: Option<Token>,
}

fn poll_events(dirs: u8) -> i32 {
    let mut e = 0;
    if dirs & READ != 0 {
        e |= bits::POLLIN;
    }
    if dirs & WRITE != 0 {
        e |= bits::POLLOUT;
    }
    e
}

impl Associations {
    /// Starts watching `fd` for `interest` (READ/WRITE bits).
    pub fn register(
        &mut self,
        ops: &mut impl PortOps,
        fd: i32,
        token: Token,
        interest: u8,
        mode: Rearm,
    ) -> io::Result<()> {
        if self.entries.contains_key(&fd) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        ops.associate(fd, poll_events(interest))?;
        self.entries.insert(
            fd,
            Entry {
                token,
                interest,
                armed: interest,
                want: 0,
                mode,
            },
        );
        Ok(())
    }

    /// Changes the token or interest of a registered `fd`.
    pub fn reregister(
        &mut self,
        ops: &mut impl PortOps,
        fd: i32,
        token: Token,
        interest: u8,
    ) -> io::Result<()> {
        let e = self
            .entries
            .get_mut(&fd)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        ops.associate(fd, poll_events(interest))?;
        e.token = token;
        e.interest = interest;
        e.armed = interest;
        e.want = 0;
        Ok(())
    }

    /// Stops watching `fd`, which stays open.
    pub fn deregister(&mut self, ops: &mut impl PortOps, fd: i32) -> io::Result<()> {
        let e = self
            .entries
            .remove(&fd)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if e.armed != 0 {
            match ops.dissociate(fd) {
                // Delivered meanwhile: not associated any more.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// `fd` is being closed: the kernel drops its association by itself,
    /// so only the bookkeeping goes (a later descriptor with the same number
    /// starts clean).
    pub fn forget(&mut self, fd: i32) {
        self.entries.remove(&fd);
    }

    /// The I/O wrapper saw the engine run out of work in `dirs` on `fd`:
    /// re-arm those directions at the next poll.
    pub fn want(&mut self, fd: i32, dirs: u8) {
        #[cfg(test)]
        if mutation::NO_REARM.with(std::cell::Cell::get) {
            return;
        }
        if let Some(e) = self.entries.get_mut(&fd) {
            let add = dirs & e.interest & !e.armed & !e.want;
            if add != 0 {
                if e.want == 0 {
                    self.pending.push(fd);
                }
                e.want |= add;
            }
        }
    }

    /// Associates every descriptor that needs it; called before each wait.
    pub fn rearm_pending(&mut self, ops: &mut impl PortOps) -> io::Result<()> {
        for fd in self.pending.drain(..) {
            let Some(e) = self.entries.get_mut(&fd) else {
                continue;
            };
            if e.want == 0 {
                continue;
            }
            let dirs = e.armed | e.want;
            match ops.associate(fd, poll_events(dirs)) {
                Ok(()) => {
                    e.armed = dirs;
                    e.want = 0;
                }
                // Closed under us (EBADF): it will be forgotten on drop.
                Err(err) if err.raw_os_error() == Some(9) => e.want = 0,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// The waker's token, set once.
    pub fn set_waker(&mut self, token: Token) {
        self.waker = Some(token);
    }

    /// Turns one delivered event into the engine's terms, updating what is
    /// armed. None for an event of a descriptor no longer registered.
    pub fn delivered(&mut self, raw: RawEvent) -> Option<Readiness> {
        let (fd, revents) = match raw {
            RawEvent::User => {
                return self.waker.map(|token| Readiness {
                    token,
                    readable: true,
                    writable: false,
                    read_closed: false,
                    error: false,
                })
            }
            RawEvent::Fd { fd, revents } => (fd, revents),
        };
        let e = self.entries.get_mut(&fd)?;
        // One-shot: the whole association is gone now.
        let was = e.armed;
        e.armed = 0;
        let hup = revents & bits::POLLHUP != 0;
        let err = revents & (bits::POLLERR | bits::POLLNVAL) != 0;
        let readable = revents & bits::POLLIN != 0 || hup || err;
        let writable = revents & bits::POLLOUT != 0 || hup || err;
        let mut reported = 0;
        if readable {
            reported |= READ;
        }
        if writable {
            reported |= WRITE;
        }
        let rearm = match e.mode {
            Rearm::AfterDelivery => e.interest,
            // Directions armed but not reported stay armed.
            Rearm::OnWouldBlock => was & !reported,
        };
        if rearm != 0 {
            if e.want == 0 {
                self.pending.push(fd);
            }
            e.want |= rearm;
        }
        Some(Readiness {
            token: e.token,
            readable: readable && e.interest & READ != 0,
            writable: writable && e.interest & WRITE != 0,
            read_closed: hup,
            error: err,
        })
    }

    /// Descriptors registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::bits::*;
    use super::*;

    /// Records what the bookkeeping asks of the kernel.
    #[derive(Default)]
    struct Fake {
        calls: Vec<(&'static str, i32, i32)>,
        associated: HashMap<i32, i32>,
    }

    impl PortOps for Fake {
        fn associate(&mut self, fd: i32, events: i32) -> io::Result<()> {
            self.calls.push(("associate", fd, events));
            self.associated.insert(fd, events);
            Ok(())
        }
        fn dissociate(&mut self, fd: i32) -> io::Result<()> {
            self.calls.push(("dissociate", fd, 0));
            match self.associated.remove(&fd) {
                Some(_) => Ok(()),
                None => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }
    }

    impl Fake {
        /// The kernel delivers an event: the association is gone.
        fn fire(&mut self, a: &mut Associations, fd: i32, revents: i32) -> Option<Readiness> {
            self.associated.remove(&fd);
            a.delivered(RawEvent::Fd { fd, revents })
        }
    }

    #[test]
    fn register_associates_the_interest() {
        let (mut k, mut a) = (Fake::default(), Associations::default());
        a.register(&mut k, 7, Token(70), READ | WRITE, Rearm::OnWouldBlock)
            .unwrap();
        assert_eq!(k.calls, [("associate", 7, POLLIN | POLLOUT)]);
        assert!(a
            .register(&mut k, 7, Token(70), READ, Rearm::OnWouldBlock)
            .is_err());
    }

    #[test]
    fn a_reported_direction_waits_for_would_block() {
        let (mut k, mut a) = (Fake::default(), Associations::default());
        a.register(&mut k, 7, Token(70), READ | WRITE, Rearm::OnWouldBlock)
            .unwrap();
        let r = k.fire(&mut a, 7, POLLIN).unwrap();
        assert!(r.readable && !r.writable);
        assert_eq!(r.token, Token(70));
        // WRITE was armed and not reported: re-armed alone. READ waits, so
        // a full buffer on the engine's side cannot make the port spin.
        a.rearm_pending(&mut k).unwrap();
        assert_eq!(k.associated[&7], POLLOUT);
        // The engine read until WouldBlock: READ comes back.
        a.want(7, READ);
        a.rearm_pending(&mut k).unwrap();
        assert_eq!(k.associated[&7], POLLIN | POLLOUT);
        // Nothing pending: no syscall.
        let n = k.calls.len();
        a.rearm_pending(&mut k).unwrap();
        assert_eq!(k.calls.len(), n);
    }

    #[test]
    fn want_is_idempotent_and_limited_to_the_interest() {
        let (mut k, mut a) = (Fake::default(), Associations::default());
        a.register(&mut k, 3, Token(1), READ, Rearm::OnWouldBlock)
            .unwrap();
        k.fire(&mut a, 3, POLLIN).unwrap();
        a.want(3, READ | WRITE);
        a.want(3, READ);
        a.rearm_pending(&mut k).unwrap();
        assert_eq!(k.calls.iter().filter(|c| c.0 == "associate").count(), 2);
        assert_eq!(k.associated[&3], POLLIN);
        // Already armed: asking again changes nothing.
        a.want(3, READ);
        a.rearm_pending(&mut k).unwrap();
        assert_eq!(k.calls.iter().filter(|c| c.0 == "associate").count(), 2);
    }

    #[test]
    fn hangups_and_errors_report_both_directions() {
        let (mut k, mut a) = (Fake::default(), Associations::default());
        a.register(&mut k, 4, Token(2), READ | WRITE, Rearm::OnWouldBlock)
            .unwrap();
        let r = k.fire(&mut a, 4, POLLHUP).unwrap();
        assert!(r.readable && r.writable && r.read_closed && !r.error);
        a.want(4, READ | WRITE);
        a.rearm_pending(&mut k).unwrap();
        let r = k.fire(&mut a, 4, POLLERR).unwrap();
        assert!(r.error && r.readable && r.writable);
    }

    #[test]
    fn level_sources_rearm_after_every_delivery() {
        let (mut k, mut a) = (Fake::default(), Associations::default());
        a.register(&mut k, 5, Token(3), READ, Rearm::AfterDelivery)
            .unwrap();
        k.fire(&mut a, 5, POLLIN).unwrap();
        a.rearm_pending(&mut k).unwrap();
        assert_eq!(k.associated[&5], POLLIN);
    }

    #[test]
    fn deregister_dissociates_and_tolerates_a_delivered_fd() {
        let (mut k, mut a) = (Fake::default(), Associations::default());
        a.register(&mut k, 6, Token(4), READ, Rearm::OnWouldBlock)
            .unwrap();
        a.deregister(&mut k, 6).unwrap();
        assert_eq!(k.calls.last().unwrap().0, "dissociate");
        assert!(a.is_empty());
        // Delivered, so no longer associated: deregistering makes no call.
        a.register(&mut k, 6, Token(4), READ, Rearm::OnWouldBlock)
            .unwrap();
        k.fire(&mut a, 6, POLLIN).unwrap();
        let n = k.calls.len();
        a.deregister(&mut k, 6).unwrap();
        assert_eq!(k.calls.len(), n);
        assert!(a.deregister(&mut k, 6).is_err());
    }

    #[test]
    fn closed_descriptors_are_forgotten_and_stale_events_dropped() {
        let (mut k, mut a) = (Fake::default(), Associations::default());
        a.register(&mut k, 8, Token(5), READ, Rearm::OnWouldBlock)
            .unwrap();
        a.want(8, READ);
        a.forget(8);
        // An event already queued for the old descriptor means nothing now.
        assert!(a
            .delivered(RawEvent::Fd {
                fd: 8,
                revents: POLLIN
            })
            .is_none());
        a.rearm_pending(&mut k).unwrap();
        assert_eq!(k.calls.len(), 1, "no re-association of a closed fd");
        // The number can be reused at once.
        a.register(&mut k, 8, Token(6), WRITE, Rearm::OnWouldBlock)
            .unwrap();
        assert_eq!(k.associated[&8], POLLOUT);
    }

    #[test]
    fn the_waker_is_a_user_event() {
        let mut a = Associations::default();
        assert!(a.delivered(RawEvent::User).is_none());
        a.set_waker(Token(0));
        let r = a.delivered(RawEvent::User).unwrap();
        assert_eq!(r.token, Token(0));
        assert!(r.readable);
    }
}
