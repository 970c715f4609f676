//! What the control thread and a worker say to each other, over a
//! crossbeam channel each way (the worker's poll is woken after each
//! message to it; the control loop after each report).

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::metrics::stats::Latency;
use crate::snapshot::Snapshot;
use crate::sys::net;
use crate::sys::poll::Waker;

/// Control → worker.
#[derive(Debug, Clone)]
pub enum ToWorker {
    /// Run this configuration from now on.
    Snapshot(Arc<Snapshot>),
    /// Stop accepting; finish open sessions until the deadline, then exit.
    Drain(Instant),
    /// As `Drain`, but the listening sockets stay open (their accept
    /// queues keep filling) and go to the control thread for the next
    /// program (`moirai upgrade`).
    Handover(Instant),
    /// Send duplicates of the listening sockets, for an upgrade's
    /// pre-flight to check; nothing changes here.
    Lend(Sender<io::Result<Lent>>),
}

/// Duplicates of a worker's listening sockets: address (none: all), port,
/// the listener's own descriptor (the same for every worker's duplicate of
/// one shared socket, so the control thread counts it once) and the
/// duplicate.
pub type Lent = Vec<(Option<IpAddr>, u16, i32, std::net::TcpListener)>;

/// Worker → control.
#[derive(Debug)]
pub enum FromWorker {
    /// A snapshot is in force on this worker.
    Applied {
        /// Which worker.
        worker: usize,
        /// The generation applied.
        generation: u64,
        /// When it was applied.
        at: Instant,
    },
    /// A listener that had failed is open now.
    Listening {
        /// The port.
        port: u16,
        /// The address (none: all).
        addr: Option<IpAddr>,
    },
    /// A listener could not be opened (it is retried).
    ListenFailed {
        /// Which worker.
        worker: usize,
        /// The port.
        port: u16,
        /// The address (none: all).
        addr: Option<IpAddr>,
        /// Why.
        error: String,
    },
    /// The listening sockets of a handover, sent just before `Exited`.
    Listeners(Vec<(Option<IpAddr>, u16, net::WorkerListener)>),
    /// Latencies recorded since the last batch, by service port.
    Latency(Vec<(u16, Latency)>),
    /// The worker finished draining and exited.
    Exited {
        /// Which worker.
        worker: usize,
        /// Sessions still open at exit (cut by the grace deadline).
        cut: usize,
    },
}

/// A worker's way to report to the control thread: a message, then a
/// wake-up, so the control loop logs "generation N applied" when it
/// happens rather than at its next tick.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: Sender<FromWorker>,
    waker: Option<Arc<Waker>>,
}

impl Reporter {
    /// Reports on `tx`, waking `waker` after each message.
    pub fn new(tx: Sender<FromWorker>, waker: Option<Arc<Waker>>) -> Reporter {
        Reporter { tx, waker }
    }

    pub(super) fn send(&self, msg: FromWorker) {
        if self.tx.send(msg).is_ok() {
            if let Some(w) = &self.waker {
                let _ = w.wake();
            }
        }
    }
}
