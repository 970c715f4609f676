//! A worker's syslog sender: one non-blocking UDP socket connected to the
//! collector, one reused buffer. A line that does not fit in the socket
//! buffer right now is dropped and counted; a worker never waits.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::SystemTime;

use crate::metrics::stats::SyslogCounters;
use crate::proto::syslog::{self, Access};
use crate::snapshot::SyslogSpec;

/// Sends access lines for one worker.
#[derive(Debug)]
pub struct Sink {
    spec: SyslogSpec,
    sock: UdpSocket,
    buf: Vec<u8>,
    counts: Arc<SyslogCounters>,
    worker: usize,
}

impl Sink {
    /// A sender to `spec.addr`.
    pub fn open(spec: SyslogSpec, counts: Arc<SyslogCounters>, worker: usize) -> io::Result<Sink> {
        let any: SocketAddr = if spec.addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(any)?;
        sock.connect(spec.addr)?;
        sock.set_nonblocking(true)?;
        Ok(Sink {
            spec,
            sock,
            buf: Vec::with_capacity(syslog::MAX_LEN),
            counts,
            worker,
        })
    }

    /// What it sends to.
    pub fn spec(&self) -> &SyslogSpec {
        &self.spec
    }

    /// Formats and sends one access line.
    pub fn access(&mut self, a: &Access<'_>) {
        syslog::access_in(
            self.spec.format,
            &mut self.buf,
            SystemTime::now(),
            &self.spec.origin,
            a,
        );
        // WouldBlock (buffer full), ECONNREFUSED (no collector yet) and
        // the rest all mean the same here: this line is lost.
        let sent = self.sock.send(&self.buf).is_ok();
        self.counts.count(self.worker, sent);
    }
}
