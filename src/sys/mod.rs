//! Everything that talks to the operating system, and the only `unsafe`.
//!
//! The contract every platform provides:
//! - [`poll`]: the readiness facade the engine uses (`Poll`, `Registry`,
//!   `Events`, `Token`, `Interest`, `Waker`). Today it is mio on every
//!   platform; a native illumos event-ports backend can replace it here
//!   without the engine noticing.
//! - [`net`]: listeners (per-worker `SO_REUSEPORT` where the OS has it, one
//!   shared socket where it does not), non-blocking connects, resets.
//! - [`rlimit`]: raising the descriptor limit at start-up.
//! - [`signals`]: SIGHUP/SIGTERM/SIGINT delivered as poll events.

pub mod net;
pub mod poll;
pub mod process;
pub mod rlimit;
pub mod signals;
