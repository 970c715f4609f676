//! moirai: a metadata-driven load balancer for Triton.
//!
//! Two planes: the control thread ([`control`]) reads metadata, decides what
//! should run and publishes immutable [`snapshot::Snapshot`]s; the workers
//! ([`engine`]) move bytes. Protocols ([`proto`]) and configuration
//! ([`config`]) are pure and free of I/O; all operating-system code, and the
//! only `unsafe`, lives in [`sys`]. See `docs/ARCHITECTURE.md`.

#![deny(unsafe_code)]
// Input never reaches an `unwrap`: errors are values. (`expect` remains for
// invariants the code itself guarantees, each with its reason.)
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod check;
pub mod config;
pub mod control;
pub mod engine;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod proto;
pub mod snapshot;
pub mod state;
#[allow(unsafe_code)]
pub mod sys;
pub mod tls;

/// The version and the commit built from, e.g. `0.1.0 (commit 0123abcd4567)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MOIRAI_COMMIT"),
    ")"
);
