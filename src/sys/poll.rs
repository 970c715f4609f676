//! The readiness facade. The engine and the control thread name these types
//! only through this module, so the backend behind them is one decision made
//! here. Semantics the engine relies on: edge-triggered readiness (an event
//! is reported once per change; the consumer reads or writes until
//! `WouldBlock`), one registration per socket for both directions, and a
//! `Waker` that makes a blocked `poll` return from another thread.

pub use mio::event::Event;
pub use mio::{Events, Interest, Poll, Registry, Token, Waker};
