//! The native illumos poller: event ports behind the same facade the engine
//! uses on Linux (`Poll`, `Registry`, `Events`, `Event`, `Waker`).
//!
//! Registration bookkeeping and the edge-triggered emulation are in
//! [`super::ports_state`]; the syscalls behind its [`PortSys`] seam, in
//! `event_ports_sys` on illumos or `event_ports_emul` (an emulation over
//! epoll) on Linux with the feature `emulated-event-ports`. The
//! socket types in [`io`] report `WouldBlock` and short reads/writes back to
//! the bookkeeping, which is what re-arms a one-shot association.

pub mod io;

use std::io as stdio;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mio::{Interest, Token};

use super::ports_state::{Associations, PortSys, Readiness, Rearm, READ, WRITE};
use super::Port;

/// The poller's name for the log: `event ports`, or `event ports
/// (emulated)`.
pub fn name() -> &'static str {
    Port::name()
}

/// State shared by a poller, its registry, its waker and the sockets
/// registered with it. Only the owning worker touches it in practice; the
/// mutex keeps the types `Send` and is never contended.
#[derive(Debug)]
pub struct Shared {
    port: Port,
    state: Mutex<Associations>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Associations> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A socket's link back to its poller, set when it is registered.
#[derive(Debug, Clone)]
pub struct Hook {
    shared: Arc<Shared>,
    fd: RawFd,
}

impl Hook {
    /// The engine ran out of work in `dirs`: re-arm them.
    pub fn want(&self, dirs: u8) {
        self.shared.state().want(self.fd, dirs);
    }

    /// The descriptor is being closed.
    pub fn forget(&self) {
        self.shared.state().forget(self.fd);
        self.shared.port.closing(self.fd);
    }
}

/// Anything that can be registered.
pub trait Source {
    /// The descriptor.
    fn raw_fd(&self) -> RawFd;
    /// Whether the source re-arms through an I/O wrapper or after every
    /// delivery.
    fn rearm(&self) -> Rearm {
        Rearm::AfterDelivery
    }
    /// Receives its hook on registration (wrappers keep it).
    fn attach(&mut self, _hook: Option<Hook>) {}
}

impl Source for mio::net::UnixStream {
    fn raw_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl Source for mio::net::UnixListener {
    fn raw_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

fn dirs(interest: Interest) -> u8 {
    let mut d = 0;
    if interest.is_readable() {
        d |= READ;
    }
    if interest.is_writable() {
        d |= WRITE;
    }
    d
}

/// Registers sources with a poller.
#[derive(Debug)]
pub struct Registry {
    shared: Arc<Shared>,
}

impl Registry {
    /// Another handle on the same poller (as mio's).
    pub fn try_clone(&self) -> stdio::Result<Registry> {
        Ok(Registry {
            shared: Arc::clone(&self.shared),
        })
    }

    /// Starts delivering events for `source` under `token`.
    pub fn register<S: Source + ?Sized>(
        &self,
        source: &mut S,
        token: Token,
        interest: Interest,
    ) -> stdio::Result<()> {
        let fd = source.raw_fd();
        let mode = source.rearm();
        self.shared
            .state()
            .register(&mut &self.shared.port, fd, token, dirs(interest), mode)?;
        source.attach(Some(Hook {
            shared: Arc::clone(&self.shared),
            fd,
        }));
        Ok(())
    }

    /// Changes a registration.
    pub fn reregister<S: Source + ?Sized>(
        &self,
        source: &mut S,
        token: Token,
        interest: Interest,
    ) -> stdio::Result<()> {
        self.shared.state().reregister(
            &mut &self.shared.port,
            source.raw_fd(),
            token,
            dirs(interest),
        )
    }

    /// Stops delivering events for `source`.
    pub fn deregister<S: Source + ?Sized>(&self, source: &mut S) -> stdio::Result<()> {
        source.attach(None);
        self.shared
            .state()
            .deregister(&mut &self.shared.port, source.raw_fd())
    }
}

/// The poller.
#[derive(Debug)]
pub struct Poll {
    registry: Registry,
}

impl Poll {
    /// A new event port.
    pub fn new() -> stdio::Result<Poll> {
        Ok(Poll {
            registry: Registry {
                shared: Arc::new(Shared {
                    port: Port::create()?,
                    state: Mutex::new(Associations::default()),
                }),
            },
        })
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Re-arms what needs it, then waits for events.
    pub fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> stdio::Result<()> {
        let shared = &self.registry.shared;
        shared.state().rearm_pending(&mut &shared.port)?;
        events.out.clear();
        shared.port.getn(&mut events.raw, timeout)?;
        let mut state = shared.state();
        for raw in &events.raw {
            if let Some(r) = state.delivered(Port::decode(raw)) {
                events.out.push(Event(r));
            }
        }
        Ok(())
    }
}

/// A batch of events.
#[derive(Debug)]
pub struct Events {
    raw: Vec<<Port as PortSys>::Event>,
    out: Vec<Event>,
}

impl Events {
    /// Room for `n` events per wait.
    pub fn with_capacity(n: usize) -> Events {
        Events {
            raw: Vec::with_capacity(n.max(1)),
            out: Vec::with_capacity(n.max(1)),
        }
    }

    /// The events of the last wait.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.out.iter()
    }

    /// No events.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

/// One event.
#[derive(Debug, Clone, Copy)]
pub struct Event(Readiness);

impl Event {
    /// The registration's token.
    pub fn token(&self) -> Token {
        self.0.token
    }
    /// Readable (or EOF, or error).
    pub fn is_readable(&self) -> bool {
        self.0.readable
    }
    /// Writable (or error).
    pub fn is_writable(&self) -> bool {
        self.0.writable
    }
    /// The peer hung up.
    pub fn is_read_closed(&self) -> bool {
        self.0.read_closed
    }
    /// The write side is closed.
    pub fn is_write_closed(&self) -> bool {
        self.0.read_closed
    }
    /// An error is pending.
    pub fn is_error(&self) -> bool {
        self.0.error
    }
}

/// Wakes a poller from another thread with `port_send`.
#[derive(Debug)]
pub struct Waker {
    shared: Arc<Shared>,
}

impl Waker {
    /// A waker whose events carry `token`.
    pub fn new(registry: &Registry, token: Token) -> stdio::Result<Waker> {
        registry.shared.state().set_waker(token);
        Ok(Waker {
            shared: Arc::clone(&registry.shared),
        })
    }

    /// Wakes the poller.
    pub fn wake(&self) -> stdio::Result<()> {
        self.shared.port.send()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
