//! The data plane: worker threads that move bytes.
//!
//! - [`worker`]: the thread, its loop and snapshot application.
//! - [`listener`]: listening sockets keyed by port.
//! - [`step`]: what a session borrows from its worker and answers it.
//! - [`conn`]: one socket of a session (TLS, readiness, counting) and the
//!   [`conn::Transport`]/[`conn::Net`] seams that tests script; [`os`]:
//!   the kernel's side of those seams.
//! - [`connect`]: the one dialer (choose, connect, retry once, count).
//! - [`pipe`]: the byte pipe, both directions with half-close.
//! - [`tcp`]: one proxied TCP connection (`tcp`, `tcp-proxy-v2`).
//! - [`http`]: one HTTP client connection, the I/O around
//!   [`crate::proto::http1::exchange`]; [`pool`] keeps idle backend
//!   connections for it.
//! - [`balance`]: least-connections with round-robin ties.
//! - [`buffer`], [`timer`], [`token`]: the worker's pool, wheel and names;
//!   [`rooms`]: its resting HTTP/2 connections' vectors.
//!
//! The engine knows [`crate::snapshot`], [`crate::proto`] and [`crate::sys`],
//! never the control plane or the metadata sources.

pub mod access;
pub mod balance;
pub mod buffer;
pub mod conn;
pub mod connect;
pub mod http;
pub mod legs;
pub mod listener;
pub mod meter;
pub mod os;
pub mod pipe;
pub mod pool;
pub mod ports;
pub mod rooms;
pub mod session;
pub mod step;
pub mod syslog;
pub mod tcp;
pub mod timer;
pub mod tls_side;
pub mod token;
pub mod worker;

#[cfg(test)]
mod script;
