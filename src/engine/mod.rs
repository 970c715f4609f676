//! The data plane: worker threads that move bytes.
//!
//! - [`worker`]: the thread, its loop and snapshot application.
//! - [`listener`]: listening sockets keyed by port.
//! - [`session`]: one proxied TCP connection (`tcp`, `tcp-proxy-v2`).
//! - [`http`]: one HTTP client connection (`http`); [`pool`] keeps idle
//!   backend connections for it.
//! - [`balance`]: least-connections with round-robin ties.
//! - [`buffer`], [`timer`], [`token`]: the worker's pool, wheel and names.
//!
//! The engine knows [`crate::snapshot`], [`crate::proto`] and [`crate::sys`],
//! never the control plane or the metadata sources.

pub mod balance;
pub mod buffer;
pub mod http;
pub mod listener;
pub mod pool;
pub mod session;
pub mod syslog;
pub mod timer;
pub mod token;
pub mod worker;
