//! Backend discovery over DNS (Triton CNS): A/AAAA for `name:port`, SRV at
//! the same name for `name` alone, re-resolved when the TTL runs out.
//!
//! - [`wire`]: queries and checked answers, no I/O.
//! - [`resolver`]: nameservers, UDP with TCP fallback, lookups.
//! - [`watcher`]: the discovery thread, which keeps every name fresh and
//!   reports changes to the control loop.

pub mod resolver;
pub mod watcher;
pub mod wire;
