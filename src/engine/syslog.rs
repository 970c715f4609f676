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
use crate::sys::logfile::{LineWriter, LocalLog};

/// Sends access lines for one worker.
#[derive(Debug)]
pub struct Sink {
    spec: SyslogSpec,
    /// Connected to the remote collector.
    remote: Option<UdpSocket>,
    /// This worker's end of the local access log's pipe.
    local: Option<LineWriter>,
    buf: Vec<u8>,
    counts: Arc<SyslogCounters>,
    worker: usize,
}

fn connected(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if to.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(any)?;
    sock.connect(to)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

impl Sink {
    /// A sender to `spec.addr` and `spec.local`.
    pub fn open(spec: SyslogSpec, counts: Arc<SyslogCounters>, worker: usize) -> io::Result<Sink> {
        let remote = spec.addr.map(connected).transpose()?;
        let local = spec.local.as_ref().map(LocalLog::writer).transpose()?;
        Ok(Sink {
            spec,
            remote,
            local,
            buf: Vec::with_capacity(syslog::MAX_LEN),
            counts,
            worker,
        })
    }

    /// What it sends to.
    pub fn spec(&self) -> &SyslogSpec {
        &self.spec
    }

    /// Formats and sends one access line (once, to every destination).
    pub fn access(&mut self, a: &Access<'_>) {
        syslog::access_in(
            self.spec.format,
            &mut self.buf,
            SystemTime::now(),
            &self.spec.origin,
            a,
        );
        if let Some(s) = &self.remote {
            // WouldBlock (buffer full), ECONNREFUSED (no collector yet)
            // and the rest all mean the same here: this line is lost.
            let sent = s.send(&self.buf).is_ok();
            self.counts.count(self.worker, sent);
        }
        if let Some(w) = &mut self.local {
            let sent = w.send(&self.buf);
            self.counts.count(self.worker, sent);
        }
    }
}
