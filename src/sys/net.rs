//! Sockets: listeners, connects, resets.
//!
//! Linux gives every worker its own listening socket on the same port with
//! `SO_REUSEPORT`, so the kernel spreads connections and no accept is
//! contended. illumos has no `SO_REUSEPORT` for native programs: there one
//! socket is bound and every worker polls a duplicate of it; the workers
//! race on `accept`, and a loser gets `EAGAIN` and moves on. The shared path
//! can be forced on Linux ([`ListenMode::Shared`]) so tests cover it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

#[cfg(target_os = "illumos")]
pub use super::poll::event_ports::io::{TcpListener, TcpStream};
#[cfg(not(target_os = "illumos"))]
pub use mio::net::{TcpListener, TcpStream};

/// Accept queue length asked for; the kernel caps it at its own maximum.
const BACKLOG: i32 = 4096;

/// How workers get their listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenMode {
    /// One socket per worker, `SO_REUSEPORT` (Linux, BSDs).
    ReusePort,
    /// One socket shared by all workers (illumos).
    Shared,
}

impl ListenMode {
    /// What this platform supports natively.
    pub fn native() -> ListenMode {
        if cfg!(any(target_os = "illumos", target_os = "solaris")) {
            ListenMode::Shared
        } else {
            ListenMode::ReusePort
        }
    }
}

/// The shared sockets of [`ListenMode::Shared`], by address (none: all)
/// and port. Touched only when a worker opens a listener (a configuration
/// change), never per connection.
#[derive(Debug, Default)]
pub struct SharedListeners {
    by_port: Mutex<HashMap<ListenKey, Weak<std::net::TcpListener>>>,
}

/// A listening address (none: all) and port.
type ListenKey = (Option<IpAddr>, u16);

/// A worker's listening socket. In shared mode it also keeps the shared
/// socket alive, so a worker that opens the port later finds the same one.
#[derive(Debug)]
pub struct WorkerListener {
    /// The socket this worker polls and accepts on.
    pub socket: TcpListener,
    _shared: Option<Arc<std::net::TcpListener>>,
}

/// Binds `port` on `addr`, or on every address when there is none.
pub fn bind_on(
    addr: Option<IpAddr>,
    port: u16,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    match addr {
        Some(ip) => bind(SocketAddr::new(ip, port), reuse_port),
        None => bind_any(port, reuse_port),
    }
}

/// Opens this worker's listener for `port` on `addr`, or on all addresses
/// (IPv6 and IPv4 where the host has IPv6, else IPv4 only).
pub fn listen(
    addr: Option<IpAddr>,
    port: u16,
    mode: ListenMode,
    shared: &SharedListeners,
) -> io::Result<WorkerListener> {
    match mode {
        ListenMode::ReusePort => Ok(WorkerListener {
            socket: TcpListener::from_std(bind_on(addr, port, true)?),
            _shared: None,
        }),
        ListenMode::Shared => {
            let mut map = shared.by_port.lock().unwrap_or_else(|p| p.into_inner());
            let sock = match map.get(&(addr, port)).and_then(Weak::upgrade) {
                Some(s) => s,
                None => {
                    let s = Arc::new(bind_on(addr, port, false)?);
                    map.insert((addr, port), Arc::downgrade(&s));
                    s
                }
            };
            map.retain(|_, w| w.strong_count() > 0);
            let dup = sock.try_clone()?;
            Ok(WorkerListener {
                socket: TcpListener::from_std(dup),
                _shared: Some(sock),
            })
        }
    }
}

/// Binds `port` on every address: dual-stack IPv6, or IPv4 where IPv6 is
/// missing.
pub fn bind_any(port: u16, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    match bind(v6, reuse_port) {
        Ok(l) => Ok(l),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
            ) =>
        {
            bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), reuse_port)
        }
        Err(e) => Err(e),
    }
}

/// Binds one non-blocking listening socket.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // The wildcard IPv6 socket serves IPv4 too; a specific IPv6 address
    // only itself.
    if addr.is_ipv6() {
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        set_reuse_port(&socket)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(not(any(target_os = "illumos", target_os = "solaris")))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    // Native illumos programs have no SO_REUSEPORT; ListenMode::native()
    // never asks for it there, and a forced request is refused plainly.
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this platform",
    ))
}

/// Starts a non-blocking connect to `addr`.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect(addr)
}

/// Makes the next close of `stream` send a RST instead of a FIN, to pass a
/// reset from one side of a proxied connection to the other.
pub fn set_reset_on_close(stream: &TcpStream) {
    // Failing here only means the peer sees a FIN instead of a RST.
    let _ = SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
}

/// Whether an accept failed because the process or system ran out of
/// descriptors or memory: retrying at once would spin.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_mode_reuses_one_socket() {
        let shared = SharedListeners::default();
        let a = listen(None, 0, ListenMode::Shared, &shared);
        // Port 0 picks a fresh port per bind; use the one we got.
        let a = a.unwrap();
        let port = a.socket.local_addr().unwrap().port();
        drop(a);
        let b = listen(None, port, ListenMode::Shared, &shared).unwrap();
        let c = listen(None, port, ListenMode::Shared, &shared).unwrap();
        assert_eq!(
            b.socket.local_addr().unwrap(),
            c.socket.local_addr().unwrap()
        );
    }

    #[test]
    fn a_listen_address_binds_that_address_only() {
        let shared = SharedListeners::default();
        for ip in ["127.0.0.2", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let l = listen(Some(ip), 0, ListenMode::ReusePort, &shared).unwrap();
            assert_eq!(l.socket.local_addr().unwrap().ip(), ip);
        }
    }

    #[test]
    fn reuse_port_lets_every_worker_bind() {
        let shared = SharedListeners::default();
        let a = listen(None, 0, ListenMode::ReusePort, &shared).unwrap();
        let port = a.socket.local_addr().unwrap().port();
        let b = listen(None, port, ListenMode::ReusePort, &shared).unwrap();
        assert_eq!(b.socket.local_addr().unwrap().port(), port);
    }
}
