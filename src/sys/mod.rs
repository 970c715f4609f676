//! Everything that talks to the operating system, and the only `unsafe`.
//!
//! The contract every platform provides:
//! - [`poll`]: the readiness facade the engine and the control thread use
//!   (`Poll`, `Registry`, `Events`, `Token`, `Interest`, `Waker`): mio
//!   (epoll) everywhere but illumos, native event ports there.
//! - [`net`]: listeners (per-worker `SO_REUSEPORT` where the OS has it, one
//!   shared socket where it does not), non-blocking connects, resets, the
//!   control socket's types, and sockets inherited across an upgrade.
//! - [`rlimit`]: raising the descriptor limit at start-up.
//! - [`signals`]: SIGHUP/SIGTERM/SIGINT delivered as poll events.
//! - [`logfile`]: log files opened so no other user can choose what they
//!   are, and the in-process pipe that feeds the access log.
//! - [`process`]: what the process uses (descriptors, memory, CPU) and the
//!   host name.
//!
//! POSIX calls go through `nix`, which wraps them safely; `libc` is left
//! for the illumos event ports, which nix does not cover.

pub mod logfile;
pub mod net;
pub mod poll;
pub mod process;
pub mod rlimit;
pub mod signals;
