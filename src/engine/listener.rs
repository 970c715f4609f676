//! A worker's listening socket for one service, and how accept failures are
//! classified. Which service a listener serves can change with each snapshot
//! without touching the socket: listeners are keyed by port, so changing a
//! service's backends or type never closes its accept queue.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::snapshot::ServiceSnapshot;
use crate::sys::net::{self, TcpStream, WorkerListener};

/// How long accepting pauses after running out of descriptors: long enough
/// not to spin, short enough that service resumes as soon as clients leave.
pub const EXHAUSTION_PAUSE: Duration = Duration::from_millis(100);

/// One listening socket of a worker.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub socket: WorkerListener,
    /// The address it listens on (none: every address).
    pub addr: Option<std::net::IpAddr>,
    /// The service new connections belong to.
    pub service: Arc<ServiceSnapshot>,
    /// Set while accepting is paused after descriptor exhaustion.
    pub paused_until: Option<Instant>,
}

/// What one `accept` gave.
#[derive(Debug)]
pub enum Accepted {
    /// A connection.
    Conn(TcpStream, SocketAddr),
    /// The queue is empty (or another worker won the race).
    Empty,
    /// Out of descriptors or memory: pause.
    Exhausted(io::Error),
    /// A connection failed before it was accepted; try the next.
    Skip,
    /// Anything else: log it and stop for this event.
    Failed(io::Error),
}

impl Listener {
    /// Accepts one connection.
    pub fn accept(&self) -> Accepted {
        match self.socket.socket.accept() {
            Ok((s, peer)) => Accepted::Conn(s, peer),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Empty,
            Err(e) if net::is_resource_exhaustion(&e) => Accepted::Exhausted(e),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) =>
            {
                Accepted::Skip
            }
            Err(e) => Accepted::Failed(e),
        }
    }
}
