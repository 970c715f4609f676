//! The interface between the worker and its sessions: what a session
//! borrows from its worker for one step ([`Ctx`]), what it answers
//! ([`Step`]), and why a session ended ([`CloseReason`], with HAProxy's
//! termination code for it).

use crate::engine::ports::PortMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::balance::RoundRobin;
use super::buffer::BufferPool;
use super::conn::Net;
use super::legs::Legs;
use super::pool::IdlePool;
use super::rooms::Rooms;
use super::syslog::Sink;
use super::token::{Side, SlotId};
use crate::metrics::stats::Latency;
use crate::proto::http1::exchange::Exchange;
use crate::proto::http1::Scratch;
use crate::proto::syslog::Termination;
use crate::snapshot::{ServiceSnapshot, Snapshot};
use crate::sys::net::TcpStream;

/// Rounds of work a session does per step before it yields to the others
/// (`Step::Again`): a bulk transfer or a pipelining client must not starve
/// the worker.
pub const ROUNDS_PER_TURN: usize = 16;

/// What the worker should do with the session after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait for events.
    Open,
    /// Still has work; run it again before polling.
    Again,
    /// Finished or failed: remove it.
    Closed(CloseReason),
}

/// Why a session ended, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides finished cleanly.
    Done,
    /// The service has no usable backend.
    NoBackend,
    /// Every connect attempt failed.
    ConnectFailed,
    /// A socket error on one side; the other side was reset.
    Reset(Side),
    /// Client or server inactivity.
    IdleTimeout(Side),
    /// This side sent a message body whose framing moirai refuses, after
    /// part of the message was already forwarded: both sides are closed.
    BadFraming(Side),
}

impl CloseReason {
    /// HAProxy's termination state for a connection that ended for this.
    pub fn termination(self) -> Termination {
        Termination(match self {
            CloseReason::Done => *b"--",
            CloseReason::NoBackend | CloseReason::ConnectFailed => *b"SC",
            CloseReason::Reset(Side::Client) => *b"CD",
            CloseReason::Reset(Side::Backend) => *b"SD",
            CloseReason::IdleTimeout(Side::Client) => *b"cD",
            CloseReason::IdleTimeout(Side::Backend) => *b"sD",
            // HAProxy's "proxy blocked it in the data phase".
            CloseReason::BadFraming(_) => *b"PD",
        })
    }
}

/// What the session needs from its worker for one step. `S` is the socket
/// type: the kernel's in the worker, a script in tests.
pub struct Ctx<'a, S = TcpStream> {
    /// Makes and watches backend sockets.
    pub net: &'a mut dyn Net<S>,
    /// Buffers.
    pub pool: &'a mut BufferPool,
    /// Time of this event batch.
    pub now: Instant,
    /// The session's slot: its client socket's token, and the session a
    /// new leg belongs to.
    pub id: SlotId,
    /// The worker's leg table: a slot for each backend socket.
    pub legs: &'a mut Legs,
    /// The worker's round-robin cursor for this service.
    pub cursor: &'a mut RoundRobin,
    /// The worker's snapshot in force. Only looked into once per HTTP
    /// request ([`Ctx::current`]), never per event.
    pub snapshot: &'a Snapshot,
    /// Idle keep-alive connections to backends (HTTP).
    pub idle: &'a mut IdlePool<S>,
    /// How long an HTTP request head may take once started.
    pub header_timeout: Duration,
    /// The worker's free HTTP scratch vectors.
    pub scratch: &'a mut Vec<Scratch>,
    /// The worker's free exchanges: a keep-alive request reuses the
    /// allocation of one that finished.
    pub exchanges: &'a mut Vec<Box<Exchange>>,
    /// The worker's free HTTP/2 connection vectors.
    pub h2_rooms: &'a mut Rooms,
    /// Which worker: the shard its counters go to.
    pub worker: usize,
    /// This worker's latencies by service port, handed to the control
    /// thread every second.
    pub latency: &'a mut PortMap<Latency>,
    /// Where access lines go; `None` without the `syslog` key, and then no
    /// line is even formatted.
    pub syslog: Option<&'a mut Sink>,
}

impl<S> Ctx<'_, S> {
    /// The service on `port` now (none when the port is no longer
    /// served): each HTTP request is balanced over this, not over the set
    /// its connection started with.
    pub fn current(&self, port: u16) -> Option<&Arc<ServiceSnapshot>> {
        self.snapshot.service(port)
    }

    /// This worker's latency histograms for the service on `port`.
    #[inline]
    pub fn latency(&mut self, port: u16) -> &mut Latency {
        self.latency.entry(port).or_default()
    }
}
