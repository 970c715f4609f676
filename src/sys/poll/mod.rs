//! The readiness facade. The engine and the control thread name these types
//! only through this module, so the backend behind them is one decision made
//! here:
//!
//! - on illumos, native event ports ([`ports_state`] holds the bookkeeping,
//!   tested on every platform), since mio drives illumos through its epoll
//!   emulation on `/dev/poll`, which illumos advises native code against;
//! - on Linux with the feature `emulated-event-ports`, the same event-ports
//!   poller over an emulation of the port syscalls (`event_ports_emul`), so
//!   the engine runs the code illumos runs on every test run;
//! - everywhere else, mio (epoll on Linux).
//!
//! Semantics the engine relies on: edge-triggered readiness (an event is
//! reported once per change; the consumer reads or writes until
//! `WouldBlock`, or until a short transfer, before expecting another), one
//! registration per socket for both directions, and a `Waker` that makes a
//! blocked `poll` return from another thread.

pub mod ports_state;

pub use mio::{Interest, Token};

#[cfg(not(any(target_os = "illumos", feature = "emulated-event-ports")))]
pub use mio::event::Event;
#[cfg(not(any(target_os = "illumos", feature = "emulated-event-ports")))]
pub use mio::{Events, Poll, Registry, Waker};

// The event-ports poller is built on Linux too, feature or not, so its unit
// tests run over the emulation on every `cargo test`; the feature decides
// only whether the facade above hands it to the engine.
#[cfg(any(target_os = "illumos", target_os = "linux"))]
pub mod event_ports;
#[cfg(any(target_os = "illumos", feature = "emulated-event-ports"))]
pub use event_ports::{Event, Events, Poll, Registry, Source, Waker};

#[cfg(target_os = "illumos")]
mod event_ports_sys;
#[cfg(target_os = "illumos")]
use event_ports_sys::Port;

#[cfg(target_os = "linux")]
pub mod event_ports_emul;
#[cfg(target_os = "linux")]
use event_ports_emul::Port;

#[cfg(all(
    feature = "emulated-event-ports",
    not(any(target_os = "illumos", target_os = "linux"))
))]
compile_error!("the feature emulated-event-ports emulates illumos event ports on Linux only");

/// The poller in use, for the log's first line: `event ports`, `event
/// ports (emulated)` or `epoll`.
pub fn name() -> &'static str {
    #[cfg(any(target_os = "illumos", feature = "emulated-event-ports"))]
    return event_ports::name();
    #[cfg(not(any(target_os = "illumos", feature = "emulated-event-ports")))]
    return if cfg!(target_os = "linux") {
        "epoll"
    } else {
        "mio"
    };
}
