//! The readiness facade. The engine and the control thread name these types
//! only through this module, so the backend behind them is one decision made
//! here:
//!
//! - everywhere but illumos, mio (epoll on Linux);
//! - on illumos, native event ports ([`ports_state`] holds the bookkeeping,
//!   tested on every platform), since mio drives illumos through its epoll
//!   emulation on `/dev/poll`, which illumos advises native code against.
//!
//! Semantics the engine relies on: edge-triggered readiness (an event is
//! reported once per change; the consumer reads or writes until
//! `WouldBlock`, or until a short transfer, before expecting another), one
//! registration per socket for both directions, and a `Waker` that makes a
//! blocked `poll` return from another thread.

pub mod ports_state;

pub use mio::{Interest, Token};

#[cfg(not(target_os = "illumos"))]
pub use mio::event::Event;
#[cfg(not(target_os = "illumos"))]
pub use mio::{Events, Poll, Registry, Waker};

#[cfg(target_os = "illumos")]
pub mod event_ports;
#[cfg(target_os = "illumos")]
mod event_ports_sys;
#[cfg(target_os = "illumos")]
pub use event_ports::{Event, Events, Poll, Registry, Source, Waker};
