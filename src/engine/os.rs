//! The kernel's side of [`super::conn`]: its TCP sockets as a
//! [`Transport`], and a worker's poll as the [`Net`] that makes and
//! watches backend sockets. Sessions see only the traits; tests pass
//! scripts in their place.

use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};

use super::conn::{Net, Transport};
use crate::sys::net::{self, TcpStream};
use crate::sys::poll::{Interest, Registry, Token};

impl Transport for TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn connect_result(&self, writable_alone: bool) -> Option<io::Result<()>> {
        if net::WRITABLE_MEANS_CONNECTED && writable_alone {
            return Some(Ok(()));
        }
        match self.take_error() {
            Ok(Some(e)) | Err(e) => return Some(Err(e)),
            Ok(None) => {}
        }
        match self.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn set_nodelay(&self) {
        // Without it heads wait for Nagle; failing only costs latency.
        let _ = TcpStream::set_nodelay(self, true);
    }

    fn reset_on_close(&self) {
        net::set_reset_on_close(self);
    }

    fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn send_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        net::send_vectored(self, bufs)
    }

    fn send_final(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        net::send_final(self, bufs)
    }

    fn end_after_final(&self) -> io::Result<()> {
        net::end_after_final(self)
    }
}

/// The kernel's sockets, watched by a worker's poll.
#[derive(Debug, Clone, Copy)]
pub struct Os<'a>(pub &'a Registry);

impl Net<TcpStream> for Os<'_> {
    fn connect(&mut self, addr: SocketAddr, token: Token) -> io::Result<TcpStream> {
        let mut s = net::connect(addr)?;
        self.0
            .register(&mut s, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(s)
    }

    fn watch(
        &mut self,
        stream: &mut TcpStream,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.0.reregister(stream, token, interest)
    }
}
