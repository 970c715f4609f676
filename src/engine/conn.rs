//! One socket of a session, as the sessions see it: a [`Transport`] (the
//! kernel's socket, or a scripted one in tests), TLS over it when the
//! service speaks TLS, what the last events said about it, and where its
//! bytes are counted.
//!
//! Every read and write of a session goes through [`Conn::recv`],
//! [`Conn::fill`] and [`Conn::send`], which answer one [`Io`] outcome and
//! keep the readiness flags themselves: `WouldBlock`, `Interrupted` and
//! short transfers are handled here and nowhere else.
//!
//! [`Net`] is the other half of the kernel a session touches: making and
//! watching backend sockets. The worker passes its poll's registry behind
//! it; tests pass a script.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::buffer::{Buffer, BufferPool};
use super::meter::Meter;
use super::tls_side::{tls_flush, tls_read, tls_write, RecordSink, Tls};
use crate::snapshot::BackendTls;
use crate::sys::net::TcpStream;
use crate::sys::poll::{Event, Interest, Token};

/// A connected (or connecting) byte stream: what a [`Conn`] reads and
/// writes through.
pub trait Transport: Read + Write + fmt::Debug {
    /// Sends a FIN: nothing more will be written.
    fn shutdown_write(&self) -> io::Result<()>;
    /// How a non-blocking connect ended: `None` while it is still in
    /// progress, else success or the error. `writable_alone`: events said
    /// the socket is writable, and none said error or hang-up.
    fn connect_result(&self, writable_alone: bool) -> Option<io::Result<()>>;
    /// Sends small writes at once (request and response heads).
    fn set_nodelay(&self);
    /// Makes the next close a reset: to pass one side's reset on, or to
    /// close a clean backend connection nobody will use without leaving
    /// a TIME_WAIT socket (the pool's, a parked one).
    fn reset_on_close(&self);
    /// Whether nothing waits to be read and the peer has not closed: an
    /// idle backend connection that is still fit for a request.
    fn is_quiet(&self) -> bool;
    /// Writes several slices at once: by default `write_vectored`; the
    /// kernel's sockets use sendmsg(2) ([`crate::sys::net::send_vectored`]).
    fn send_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored(bufs)
    }
    /// Writes the last bytes before the close, which the caller makes at
    /// once if all of them were taken: the kernel's sockets may then
    /// send them with the FIN ([`crate::sys::net::send_final`]).
    fn send_final(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.send_vectored(bufs)
    }
    /// What must happen between a final write and the close: by
    /// default the FIN, so that a close that finds bytes unread (and
    /// resets) cannot drop what the final write left queued.
    fn end_after_final(&self) -> io::Result<()> {
        self.shutdown_write()
    }
}

/// A transport as the writer rustls flushes its records to: its vectored
/// writes go through [`Transport::send_vectored`], and once it is told
/// the close follows, every write through [`Transport::send_final`].
struct Sending<'a, S> {
    sock: &'a mut S,
    closing: bool,
}

impl<'a, S> Sending<'a, S> {
    /// Records to `sock`, the close not announced.
    fn new(sock: &'a mut S) -> Sending<'a, S> {
        Sending {
            sock,
            closing: false,
        }
    }
}

impl<S: Transport> Write for Sending<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closing {
            self.sock.send_final(&[IoSlice::new(buf)])
        } else {
            self.sock.write(buf)
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.closing {
            self.sock.send_final(bufs)
        } else {
            self.sock.send_vectored(bufs)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

impl<S: Transport> RecordSink for Sending<'_, S> {
    fn closing(&mut self) {
        self.closing = true;
    }
}

/// Making and watching backend sockets: the part of the worker's poll a
/// session uses.
pub trait Net<S> {
    /// Starts a non-blocking connect to `addr` and watches it for both
    /// directions under `token`.
    fn connect(&mut self, addr: SocketAddr, token: Token) -> io::Result<S>;
    /// Watches `stream` for `interest` under `token` from now on.
    fn watch(&mut self, stream: &mut S, token: Token, interest: Interest) -> io::Result<()>;
}

/// What one event said about a socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Bytes (or an end) may be read.
    pub readable: bool,
    /// Bytes may be written.
    pub writable: bool,
    /// The peer sent its FIN.
    pub read_closed: bool,
    /// The socket failed.
    pub error: bool,
}

impl Readiness {
    /// Both directions ready, nothing closed (scripted events).
    #[cfg(test)]
    pub const BOTH: Readiness = Readiness {
        readable: true,
        writable: true,
        read_closed: false,
        error: false,
    };

    /// Both directions ready, and the peer's FIN (scripted events).
    #[cfg(test)]
    pub const FIN: Readiness = Readiness {
        read_closed: true,
        ..Readiness::BOTH
    };

    /// Whether an idle connection was told anything at all (bytes, a
    /// hang-up or an error all mean its peer is closing it).
    pub fn says_anything(self) -> bool {
        self.readable || self.read_closed || self.error
    }
}

impl From<&Event> for Readiness {
    fn from(ev: &Event) -> Readiness {
        Readiness {
            readable: ev.is_readable(),
            writable: ev.is_writable() || ev.is_write_closed(),
            read_closed: ev.is_read_closed(),
            error: ev.is_error(),
        }
    }
}

/// What one read or write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Bytes moved (none after an interrupted call), and more may move now.
    Moved(usize),
    /// Bytes moved and the socket has no more now (a short transfer): the
    /// next event says when to go on.
    Drained(usize),
    /// The peer's end of stream (reads only).
    Eof,
    /// Nothing can move until the next event.
    Blocked,
    /// The socket failed.
    Failed,
}

impl Io {
    /// Bytes moved, if any call succeeded.
    pub fn moved(self) -> Option<usize> {
        match self {
            Io::Moved(n) | Io::Drained(n) => Some(n),
            _ => None,
        }
    }

    /// Whether anything happened that the caller must look at: bytes, an
    /// end, or a failure.
    pub fn progressed(self) -> bool {
        !matches!(self, Io::Blocked)
    }
}

/// How an idle backend connection stands ([`Conn::idle_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Nothing to read, not closed, no record on its way: fit for a
    /// request.
    Quiet,
    /// A TLS record has begun to arrive and not ended: not fit now; what
    /// it was shows once it is whole.
    Arriving,
    /// Data, a close or an error: close it.
    Unfit,
}

/// Bytes one look at an idle TLS connection may read: a backend that
/// streams records without data past this is flooding it.
pub const IDLE_READ_BUDGET: usize = 16 * 1024;

/// A socket and what its last events said about it.
#[derive(Debug)]
pub struct Conn<S = TcpStream> {
    stream: S,
    readable: bool,
    writable: bool,
    /// The peer's FIN (or an error) was already reported by an event.
    peer_closed: bool,
    /// TLS records a full socket held back: they go as soon as it is
    /// writable. (Records queued without a write attempt, a server's
    /// session tickets, wait for the next write instead.)
    backlog: bool,
    /// When bytes last moved, for idle timeouts.
    last_io: Instant,
    meter: Meter,
    /// Bytes read from and written to this socket, for access lines.
    rx: u64,
    tx: u64,
    /// TLS over the socket (https types): reads and writes go through it.
    tls: Option<Box<Tls>>,
}

impl<S: Transport> Conn<S> {
    /// A socket nothing is known about yet: it waits for its first event.
    pub fn new(stream: S, now: Instant, meter: Meter) -> Conn<S> {
        Conn {
            stream,
            readable: false,
            writable: false,
            peer_closed: false,
            backlog: false,
            last_io: now,
            meter,
            rx: 0,
            tx: 0,
            tls: None,
        }
    }

    /// The same socket, speaking TLS through `tls`.
    pub fn with_tls(mut self, tls: rustls::Connection) -> Conn<S> {
        self.tls = Some(Box::new(Tls::new(tls, None)));
        self
    }

    /// The same socket to a backend, speaking TLS through `tls`, made in
    /// `context` (the service's verification rules and name).
    pub fn with_backend_tls(
        mut self,
        tls: rustls::Connection,
        context: Arc<BackendTls>,
    ) -> Conn<S> {
        self.tls = Some(Box::new(Tls::new(tls, Some(context))));
        self
    }

    /// The context a backend TLS connection was made in.
    pub fn tls_context(&self) -> Option<&BackendTls> {
        self.tls.as_ref().and_then(|t| t.context.as_deref())
    }

    /// Whether this backend connection may carry a request of a service
    /// whose backend TLS is `tls` (none: plain): a plain one for a plain
    /// service, a TLS one made with the same configuration and name.
    pub fn made_for(&self, tls: Option<&BackendTls>) -> bool {
        match (self.tls_context(), tls) {
            (None, None) => !self.is_tls(),
            (Some(c), Some(t)) => c.same_as(t),
            _ => false,
        }
    }

    /// The socket, for the pool and for connect results.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The socket, to watch it under another token.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// A connection taken from the idle pool, back in service at `now`:
    /// counting into `meter` (the backend's counters in the service that
    /// takes it), its byte counts from zero, writable as it was when it
    /// was parked, and nothing heard yet.
    pub fn resume(self, now: Instant, meter: Meter) -> Conn<S> {
        Conn {
            writable: true,
            tls: self.tls,
            ..Conn::new(self.stream, now, meter)
        }
    }

    /// Whether this socket speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the TLS handshake chose HTTP/2 (ALPN `h2`).
    pub fn alpn_is_h2(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.alpn_protocol() == Some(b"h2"))
    }

    /// Whether a write may be tried now.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// How this socket's connect ended (`None`: under way), from what the
    /// events said if they can tell ([`Transport::connect_result`]).
    pub fn connect_result(&self) -> Option<io::Result<()>> {
        self.stream
            .connect_result(self.writable && !self.peer_closed)
    }

    /// Whether any event arrived since the socket was made (a connect in
    /// progress has nothing to say before one does).
    pub fn heard_from(&self) -> bool {
        self.readable || self.writable
    }

    /// When bytes last moved.
    pub fn last_io(&self) -> Instant {
        self.last_io
    }

    /// Counts the connection as active now (a connect just completed).
    pub fn touch(&mut self, now: Instant) {
        self.last_io = now;
    }

    /// Bytes (read, written) so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.rx, self.tx)
    }

    /// Records readiness from an event.
    pub fn note(&mut self, r: Readiness) {
        // Errors and hang-ups surface through the next read or write.
        if r.readable || r.read_closed || r.error {
            self.readable = true;
        }
        if r.read_closed || r.error {
            self.peer_closed = true;
        }
        if r.writable || r.error {
            self.writable = true;
        }
    }

    /// How an idle connection stands: quiet, or not fit for a request
    /// (anything to read, or closed). On TLS, records that carry no data
    /// (a TLS 1.3 server's late session tickets, a key update before a
    /// long idle) are taken in and do not count: only data, a
    /// close_notify, a FIN or an error do; a record that has begun to
    /// arrive and not ended is `Arriving`. A backend streaming records
    /// without data past [`IDLE_READ_BUDGET`] in one look is not fit.
    /// What rustls queues in answer (a key update of our own) waits for
    /// the next write, as RFC 8446 allows.
    pub fn idle_state(&mut self) -> IdleState {
        let Some(tls) = self.tls.as_deref_mut() else {
            return if self.stream.is_quiet() {
                IdleState::Quiet
            } else {
                IdleState::Unfit
            };
        };
        let mut budget = IDLE_READ_BUDGET;
        loop {
            let mut probe = [0u8; 1];
            match tls.reader().read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Data, a close_notify, a close without one, or an error.
                _ => return IdleState::Unfit,
            }
            if budget == 0 {
                return IdleState::Unfit;
            }
            match tls.read_from(&mut self.stream) {
                Ok((0, _)) => return IdleState::Unfit,
                Ok((n, _)) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return IdleState::Unfit,
            }
            if tls.process_new_packets().is_err() {
                return IdleState::Unfit;
            }
        }
        if tls.records.mid_record() {
            IdleState::Arriving
        } else {
            IdleState::Quiet
        }
    }

    /// Whether TLS records are waiting to be written to the socket.
    pub fn pending_out(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes waiting TLS records; `Ok(true)` when none are left.
    pub fn flush(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        let done = tls_flush(&mut Sending::new(&mut self.stream), tls)?;
        self.held_back(done);
        Ok(done)
    }

    /// A flush (or write) left records in rustls (`!done`): the socket is
    /// full, and they go once it is writable.
    fn held_back(&mut self, done: bool) {
        self.backlog = !done;
        if !done {
            self.writable = false;
        }
    }

    /// Writes the TLS records a full socket held back, if it may take them
    /// now; false if that failed.
    pub fn flush_if_writable(&mut self) -> bool {
        !(self.writable && self.backlog && self.flush().is_err())
    }

    /// Ends the connection after its final write, the close next: a TLS
    /// close_notify, then what the socket wants before its close
    /// ([`Transport::end_after_final`]).
    pub fn end_after_final(&mut self) -> io::Result<()> {
        if self.say_goodbye()? {
            self.stream.end_after_final()?;
        }
        Ok(())
    }

    /// Sends a TLS close_notify (none on a plain socket): whether every
    /// record went out. Records that cannot go now stay queued behind the
    /// data; the session flushes them before it closes, and the FIN
    /// follows them.
    fn say_goodbye(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        tls.send_close_notify();
        let done = tls_flush(&mut Sending::new(&mut self.stream), tls)?;
        self.held_back(done);
        Ok(done)
    }

    /// Moves a client-side TLS handshake on: `Ok(true)` once it is done
    /// (at once for plain sockets), `Ok(false)` while it waits for the
    /// peer, an error if it failed (a certificate that does not verify is
    /// `InvalidData`, with rustls's reason).
    pub fn handshake(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(true);
        };
        loop {
            let done = tls_flush(&mut Sending::new(&mut self.stream), tls)?;
            self.backlog = !done;
            if !done {
                self.writable = false;
            }
            if !tls.is_handshaking() {
                return Ok(true);
            }
            if !tls.wants_read() {
                return Ok(false);
            }
            match tls.read_from(&mut self.stream) {
                Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        let _ = tls_flush(&mut Sending::new(&mut self.stream), tls);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends the sending direction: a TLS close_notify first, then the FIN.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if self.say_goodbye()? {
            self.stream.shutdown_write()?;
        }
        Ok(())
    }

    /// Reads into `buf` if the socket may have bytes.
    pub fn recv(&mut self, buf: &mut [u8], now: Instant) -> Io {
        if !self.readable {
            return Io::Blocked;
        }
        let room = buf.len();
        let r = match self.tls.as_deref_mut() {
            None => self.stream.read(buf),
            Some(tls) => {
                let r = tls_read(&mut self.stream, tls, buf, !self.peer_closed);
                // A handshake flight goes at once (TLS 1.2's last one comes
                // after the client's Finished). What TLS 1.3 queues once
                // the handshake is over (a server's session tickets) rides
                // with the next write, the response: one segment fewer.
                let holds = |tls: &rustls::Connection| {
                    !tls.is_handshaking()
                        && tls.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
                };
                if tls.wants_write() && !holds(tls) {
                    let done = matches!(
                        tls_flush(&mut Sending::new(&mut self.stream), tls),
                        Ok(true)
                    );
                    self.held_back(done);
                }
                r
            }
        };
        match r {
            Ok(0) if room > 0 => Io::Eof,
            Ok(n) => {
                self.meter.read(n);
                self.rx += n as u64;
                self.last_io = now;
                // A short read drained the socket: skip the read that would
                // only say WouldBlock. Edge-triggered epoll reports every
                // later arrival, and one-shot event ports re-arm after each
                // delivery, so nothing is missed -- except a FIN that came
                // with the same event: then read on to see the EOF.
                if n < room && !self.peer_closed {
                    self.readable = false;
                    Io::Drained(n)
                } else {
                    Io::Moved(n)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                Io::Blocked
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Io::Moved(0),
            Err(_) => Io::Failed,
        }
    }

    /// Reads into the spare room of `slot`'s buffer, taken from `pool` for
    /// the read and given back if nothing stays in it.
    pub fn fill(&mut self, slot: &mut Option<Buffer>, pool: &mut BufferPool, now: Instant) -> Io {
        if !self.readable {
            return Io::Blocked;
        }
        let b = slot.get_or_insert_with(|| pool.take());
        let io = if b.is_full() {
            Io::Blocked
        } else {
            let io = self.recv(b.spare(), now);
            if let Some(n) = io.moved() {
                b.filled(n);
            }
            io
        };
        release_if_empty(slot, pool);
        io
    }

    /// Writes `bufs` (in order) if the socket may take bytes.
    pub fn send(&mut self, bufs: &[IoSlice<'_>], now: Instant) -> Io {
        self.send_then(bufs, false, now)
    }

    /// As [`Conn::send`], for the last bytes before the close, which the
    /// caller makes at once when all of them were taken: over TLS, the
    /// close_notify goes in the same write; on a plain socket the FIN may
    /// ride on them ([`Transport::send_final`]).
    pub fn send_last(&mut self, bufs: &[IoSlice<'_>], now: Instant) -> Io {
        self.send_then(bufs, true, now)
    }

    fn send_then(&mut self, bufs: &[IoSlice<'_>], last: bool, now: Instant) -> Io {
        if !self.writable {
            return Io::Blocked;
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut flushed = true;
        let r = match (self.tls.as_deref_mut(), bufs) {
            (None, _) if last => self.stream.send_final(bufs),
            // One slice: write(2), as cheap as it gets.
            (None, [one]) => self.stream.write(one),
            (None, _) => self.stream.send_vectored(bufs),
            (Some(tls), _) => {
                tls_write(&mut Sending::new(&mut self.stream), tls, bufs, last).map(|(n, done)| {
                    flushed = done;
                    n
                })
            }
        };
        if self.tls.is_some() {
            self.backlog = !flushed;
        }
        match r {
            Ok(0) if total > 0 => Io::Failed,
            Ok(n) => {
                self.meter.wrote(n);
                self.tx += n as u64;
                self.last_io = now;
                // A short write means the socket buffer is full; so do TLS
                // records left over.
                if n < total || !flushed {
                    self.writable = false;
                    Io::Drained(n)
                } else {
                    Io::Moved(n)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.writable = false;
                Io::Blocked
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Io::Moved(0),
            Err(_) => Io::Failed,
        }
    }

    /// [`Conn::send`] as a writer's result, for [`crate::proto::http1::body::relay`].
    pub fn send_io(&mut self, bufs: &[IoSlice<'_>], now: Instant) -> io::Result<usize> {
        match self.send(bufs, now) {
            Io::Moved(n) | Io::Drained(n) => Ok(n),
            Io::Blocked => Err(io::ErrorKind::WouldBlock.into()),
            Io::Eof | Io::Failed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// The next close of this socket is a RST ([`Transport::reset_on_close`]
    /// says when).
    pub fn reset_on_close(&self) {
        self.stream.reset_on_close();
    }
}

/// Gives `slot`'s buffer back to `pool` if nothing is left in it.
pub fn release_if_empty(slot: &mut Option<Buffer>, pool: &mut BufferPool) {
    if slot.as_ref().is_some_and(Buffer::is_empty) {
        if let Some(b) = slot.take() {
            pool.give(b);
        }
    }
}
