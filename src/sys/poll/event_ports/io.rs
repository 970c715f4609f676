//! Sockets for the event-ports poller: mio's non-blocking sockets, with
//! every read, write and accept reporting `WouldBlock` or a short transfer
//! to the poller, which re-arms the one-shot association. Closing a socket
//! drops its bookkeeping before the descriptor is released.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::{Hook, Source};
use crate::sys::poll::ports_state::{Rearm, READ, WRITE};

/// A TCP connection.
#[derive(Debug)]
pub struct TcpStream {
    inner: mio::net::TcpStream,
    hook: Option<Hook>,
}

impl TcpStream {
    fn new(inner: mio::net::TcpStream) -> TcpStream {
        TcpStream { inner, hook: None }
    }

    /// Starts a non-blocking connect.
    pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        mio::net::TcpStream::connect(addr).map(TcpStream::new)
    }

    /// The peer, or `NotConnected` while connecting.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.set_nodelay(on)
    }

    /// `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// `MSG_PEEK` read: is the connection still idle and open?
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(buf)
    }

    /// `sendmsg(2)`, reported to the poller as a write is.
    pub fn send_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let asked = bufs.iter().map(|b| b.len()).sum();
        let r = socket2::SockRef::from(&self.inner).send_vectored(bufs);
        self.note(WRITE, asked, &r);
        r
    }

    /// `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    fn note(&self, dir: u8, asked: usize, r: &io::Result<usize>) {
        let out_of_work = match r {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(n) => *n > 0 && *n < asked,
        };
        if out_of_work {
            if let Some(h) = &self.hook {
                h.want(dir);
            }
        }
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        self.note(READ, buf.len(), &r);
        r
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(WRITE, buf.len(), &r);
        r
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let asked = bufs.iter().map(|b| b.len()).sum();
        let r = self.inner.write_vectored(bufs);
        self.note(WRITE, asked, &r);
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Source for TcpStream {
    fn raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
    fn rearm(&self) -> Rearm {
        Rearm::OnWouldBlock
    }
    fn attach(&mut self, hook: Option<Hook>) {
        self.hook = hook;
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if let Some(h) = self.hook.take() {
            h.forget();
        }
    }
}

/// A listening socket.
#[derive(Debug)]
pub struct TcpListener {
    inner: mio::net::TcpListener,
    hook: Option<Hook>,
}

impl TcpListener {
    /// Wraps a bound, non-blocking std listener.
    pub fn from_std(l: std::net::TcpListener) -> TcpListener {
        TcpListener {
            inner: mio::net::TcpListener::from_std(l),
            hook: None,
        }
    }

    /// Accepts one connection; `WouldBlock` re-arms the listener.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match self.inner.accept() {
            Ok((s, a)) => Ok((TcpStream::new(s), a)),
            Err(e) => {
                if e.kind() == io::ErrorKind::WouldBlock {
                    if let Some(h) = &self.hook {
                        h.want(READ);
                    }
                }
                Err(e)
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Source for TcpListener {
    fn raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
    fn rearm(&self) -> Rearm {
        Rearm::OnWouldBlock
    }
    fn attach(&mut self, hook: Option<Hook>) {
        self.hook = hook;
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl std::os::fd::AsFd for TcpListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        if let Some(h) = self.hook.take() {
            h.forget();
        }
    }
}
