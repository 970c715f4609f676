//! Where a socket's bytes are counted: into its service's counters (a
//! client socket) or its backend's (a backend socket), in the worker's
//! shard, "in" being the request direction as in HAProxy. [`Conn`] calls
//! it on every read and write, with the plaintext bytes for TLS.
//!
//! [`Conn`]: super::conn::Conn

use std::sync::Arc;

use crate::metrics::stats::Sharded;
use crate::snapshot::{Backend, ServiceSnapshot};

/// Where a socket's bytes are counted: the service's counters for a client
/// socket, the backend's for a backend socket, in this worker's shard.
#[derive(Debug)]
pub struct Meter {
    stats: Arc<Sharded>,
    /// `u32`, not `usize`: with the flag below it packs into one word, and
    /// every connection holds a meter per socket.
    worker: u32,
    /// Whether bytes read from this socket travel in the request direction
    /// (a client socket) or the response direction (a backend socket).
    reads_are_requests: bool,
}

/// A worker's number as a meter keeps it: worker numbers count threads, so
/// they are far below `u32::MAX`.
fn shard(worker: usize) -> u32 {
    worker as u32
}

impl Meter {
    /// Counting for a client socket of `service`.
    pub fn client(service: &ServiceSnapshot, worker: usize) -> Meter {
        Meter {
            stats: Arc::clone(&service.stats),
            worker: shard(worker),
            reads_are_requests: true,
        }
    }

    /// Counting for a socket to `backend`.
    pub fn backend(backend: &Backend, worker: usize) -> Meter {
        Meter {
            stats: Arc::clone(backend.stats_arc()),
            worker: shard(worker),
            reads_are_requests: false,
        }
    }

    #[inline]
    pub(super) fn read(&self, n: usize) {
        let c = self.stats.of(self.worker as usize);
        let n = n as u64;
        if self.reads_are_requests {
            c.bytes_in.add(n);
        } else {
            c.bytes_out.add(n);
        }
    }

    #[inline]
    pub(super) fn wrote(&self, n: usize) {
        let c = self.stats.of(self.worker as usize);
        let n = n as u64;
        if self.reads_are_requests {
            c.bytes_out.add(n);
        } else {
            c.bytes_in.add(n);
        }
    }
}
