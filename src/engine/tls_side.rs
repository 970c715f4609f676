//! What a TLS socket keeps beside rustls's own state: where the bytes read
//! so far stand in the record framing, and, for a backend connection, the
//! context it was made in (the service's [`BackendTls`]: the client
//! configuration with its verification rules, and the name sent and
//! verified). The idle pool needs both: the
//! first to tell a connection that is quiet from one that is in the middle
//! of receiving a record (rustls keeps a partial record to itself), the
//! second to give a connection only to a service with the same rules.
//! And the reads and writes through rustls that [`super::conn::Conn`]
//! makes on a TLS socket (`tls_read`, `tls_write`, `tls_flush`).

use std::io::{self, IoSlice, Read, Write};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::snapshot::BackendTls;

/// Where the bytes read from a TLS socket stand in its record framing
/// (RFC 8446 §5.1, RFC 5246 §6.2: a 5-byte header whose last two bytes
/// give the length of the fragment that follows).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Records {
    /// Header bytes of the next record seen so far (0 to 4).
    header: u8,
    /// The high byte of its length, once seen.
    len_hi: u8,
    /// Fragment bytes of the current record still to come.
    remaining: u16,
}

impl Records {
    /// Takes in bytes read from the socket, in order.
    pub fn saw(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = bytes.len().min(usize::from(self.remaining));
                // `n` is at most `remaining`, a u16.
                self.remaining -= n as u16;
                bytes = &bytes[n..];
                continue;
            }
            match self.header {
                3 => self.len_hi = bytes[0],
                4 => self.remaining = u16::from_be_bytes([self.len_hi, bytes[0]]),
                _ => {}
            }
            self.header = (self.header + 1) % 5;
            bytes = &bytes[1..];
        }
    }

    /// Whether a record has begun and not ended: part of its header or
    /// fragment is still on its way.
    pub fn mid_record(&self) -> bool {
        self.header != 0 || self.remaining != 0
    }
}

/// A socket's TLS: rustls's state, the record framing seen, and the
/// context of a backend connection. Derefs to the rustls connection.
#[derive(Debug)]
pub struct Tls {
    conn: rustls::Connection,
    /// The framing of what was read.
    pub records: Records,
    /// For a backend connection: the context it was made in.
    pub context: Option<Arc<BackendTls>>,
}

impl Tls {
    /// `conn`, made in `context` (none for a client connection).
    pub fn new(conn: rustls::Connection, context: Option<Arc<BackendTls>>) -> Tls {
        Tls {
            conn,
            records: Records::default(),
            context,
        }
    }
}

impl Tls {
    /// Reads records from `sock` into rustls (not processed yet), noting
    /// their framing: how many bytes, and whether the read was short
    /// (fewer bytes than room for them: the socket had no more).
    pub fn read_from<R: Read>(&mut self, sock: &mut R) -> io::Result<(usize, bool)> {
        let mut framed = Framed {
            inner: sock,
            records: &mut self.records,
            short: false,
        };
        let n = self.conn.read_tls(&mut framed)?;
        Ok((n, framed.short))
    }
}

/// A socket reader that shows what it reads to [`Records`] and notes
/// whether its last read was short.
struct Framed<'a, R> {
    inner: &'a mut R,
    records: &'a mut Records,
    short: bool,
}

impl<R: Read> Read for Framed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.records.saw(&buf[..n]);
        self.short = n < buf.len();
        Ok(n)
    }
}

impl Deref for Tls {
    type Target = rustls::Connection;

    fn deref(&self) -> &rustls::Connection {
        &self.conn
    }
}

impl DerefMut for Tls {
    fn deref_mut(&mut self) -> &mut rustls::Connection {
        &mut self.conn
    }
}

/// Writes TLS records until none wait (`Ok(true)`) or the socket is full.
pub fn tls_flush<S: Write>(sock: &mut S, tls: &mut rustls::Connection) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Plaintext from a TLS socket, with the same contract as a socket read:
/// `Ok(0)` at the end (close_notify, or a FIN: many peers skip the alert),
/// `WouldBlock` when nothing is buffered and the socket is drained. A short
/// read means the socket is drained, as callers assume; with
/// `stop_when_short`, a short read from the socket is taken to mean the
/// same (edge-triggered readiness reports the next arrival), so no read is
/// made only to hear `WouldBlock`. Without it (a FIN was reported) reading
/// goes on to see the end. Handshake records are processed on the way;
/// the caller sends what they call for.
pub fn tls_read<S: Read + Write>(
    sock: &mut S,
    tls: &mut Tls,
    buf: &mut [u8],
    stop_when_short: bool,
) -> io::Result<usize> {
    let mut n = 0;
    let mut eof = false;
    let mut drained = false;
    loop {
        match tls.reader().read(&mut buf[n..]) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                n += k;
                if n == buf.len() {
                    return Ok(n);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
            Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
        }
        if eof {
            return Ok(n);
        }
        if drained && stop_when_short {
            return if n > 0 {
                Ok(n)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        match tls.read_from(sock) {
            Ok((0, _)) => eof = true,
            Ok((_, short)) => drained = short,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return if n > 0 { Ok(n) } else { Err(e) };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
        }
        if let Err(e) = tls.process_new_packets() {
            // Send the alert that says why, then fail the connection.
            let _ = tls_flush(sock, tls);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// A socket rustls's records are flushed to, which may be told that the
/// records it takes next are the last before the close.
pub trait RecordSink: Write {
    /// What follows ends with a close_notify, and the caller closes the
    /// socket once it is all taken.
    fn closing(&mut self);
}

/// Plaintext into a TLS socket (then a close_notify, if `last` and all of
/// it was taken), and whether every record went out. Records
/// still waiting (the session tickets after a handshake, a flight the
/// socket could not take) go in the same `writev` as the new ones: one
/// syscall and one segment fewer. The caller writes again only once the
/// socket is writable after records were left over (`false`), so what is
/// buffered in rustls stays within about two writes' worth.
pub fn tls_write<S: RecordSink>(
    sock: &mut S,
    tls: &mut rustls::Connection,
    bufs: &[IoSlice<'_>],
    last: bool,
) -> io::Result<(usize, bool)> {
    let n = tls.writer().write_vectored(bufs)?;
    if last && n == bufs.iter().map(|b| b.len()).sum::<usize>() {
        tls.send_close_notify();
        sock.closing();
    }
    let flushed = tls_flush(sock, tls)?;
    if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok((n, flushed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `len` fragment bytes.
    fn record(len: u16) -> Vec<u8> {
        let mut r = vec![23, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.resize(5 + usize::from(len), 0xaa);
        r
    }

    #[test]
    fn whole_records_leave_nothing_in_flight() {
        let mut r = Records::default();
        let mut wire = record(300);
        wire.extend(record(0));
        wire.extend(record(17));
        r.saw(&wire);
        assert!(!r.mid_record());
    }

    #[test]
    fn a_record_cut_anywhere_is_in_flight_until_its_end() {
        let wire = [record(40), record(2)].concat();
        for cut in 1..wire.len() {
            let mut r = Records::default();
            r.saw(&wire[..cut]);
            assert_eq!(r.mid_record(), cut != 45, "cut at {cut}");
            r.saw(&wire[cut..]);
            assert!(!r.mid_record(), "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_is_the_same_as_at_once() {
        let wire = [record(5), record(16384), record(1)].concat();
        let mut r = Records::default();
        for b in &wire {
            r.saw(std::slice::from_ref(b));
        }
        assert!(!r.mid_record());
        r.saw(&wire[..3]);
        assert!(r.mid_record());
    }
}
