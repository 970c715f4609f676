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

use nix::errno::Errno;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

#[cfg(target_os = "illumos")]
pub use super::poll::event_ports::io::{TcpListener, TcpStream};
#[cfg(not(target_os = "illumos"))]
pub use mio::net::{TcpListener, TcpStream};
/// The control socket's types: polled like the TCP ones (the illumos
/// backend registers mio's Unix sockets as they are).
pub use mio::net::{UnixListener, UnixStream};

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

/// The environment variable an upgrade passes listening sockets in:
/// `FD@ADDR@PORT` items (ADDR `*` for every address), `;`-separated.
pub const INHERITED_ENV: &str = "MOIRAI_LISTEN_FDS";

/// Listening sockets a previous process handed over (`moirai upgrade`),
/// by address and port, taken by the workers instead of binding: the
/// kernel's accept queues carry on, so no connection is refused or lost.
#[derive(Debug, Default)]
pub struct Inherited(Mutex<HashMap<ListenKey, Vec<std::net::TcpListener>>>);

impl Inherited {
    /// Takes the sockets named by [`INHERITED_ENV`], if set, and unsets it
    /// (so nothing this process starts inherits the claim).
    pub fn from_env() -> Inherited {
        let Ok(text) = std::env::var(INHERITED_ENV) else {
            return Inherited::default();
        };
        std::env::remove_var(INHERITED_ENV);
        let mut map: HashMap<ListenKey, Vec<std::net::TcpListener>> = HashMap::new();
        for item in text.split(';').filter(|i| !i.is_empty()) {
            let mut f = item.split('@');
            let (Some(fd), Some(addr), Some(port)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let (Ok(fd), Ok(port)) = (fd.parse::<i32>(), port.parse::<u16>()) else {
                continue;
            };
            let addr = if addr == "*" {
                None
            } else {
                match addr.parse() {
                    Ok(a) => Some(a),
                    Err(_) => continue,
                }
            };
            match adopt(fd) {
                Ok(l) => map.entry((addr, port)).or_default().push(l),
                Err(e) => log::error!("upgrade: listener fd {fd} for port {port}: {e}"),
            }
        }
        Inherited(Mutex::new(map))
    }

    /// How many sockets are still waiting to be taken.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.values().map(Vec::len).sum())
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self, key: ListenKey) -> Option<std::net::TcpListener> {
        self.0.lock().ok()?.get_mut(&key)?.pop()
    }
}

/// A listening socket handed over by file descriptor: owned from now on,
/// non-blocking, closed on exec again.
fn adopt(fd: i32) -> io::Result<std::net::TcpListener> {
    use nix::sys::stat::{fstat, SFlag};
    use std::os::fd::{BorrowedFd, FromRawFd};
    // SAFETY: `fd` comes from INHERITED_ENV, written by the process that
    // exec'd us for exactly this purpose; it is only borrowed for fstat,
    // which fails cleanly (EBADF) if it is not open.
    let st = fstat(unsafe { BorrowedFd::borrow_raw(fd) })?;
    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFSOCK.bits() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
    }
    // SAFETY: fstat proved it open and a socket, and nothing else in this
    // process owns it; ownership moves into the TcpListener.
    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    set_cloexec(&l, true)?;
    l.set_nonblocking(true)?;
    // An older program may not have set it.
    let _ = SockRef::from(&l).set_nodelay(true);
    Ok(l)
}

/// Sets or clears `FD_CLOEXEC` (cleared only on sockets handed to the next
/// program by an upgrade).
fn set_cloexec(fd: impl std::os::fd::AsFd, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = FdFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFD)?);
    let flags = if on {
        flags | FdFlag::FD_CLOEXEC
    } else {
        flags - FdFlag::FD_CLOEXEC
    };
    fcntl(&fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

impl WorkerListener {
    /// The descriptor to hand over: the worker's own socket, or in shared
    /// mode the shared one.
    pub fn raw_fd(&self) -> i32 {
        use std::os::unix::io::AsRawFd;
        match &self._shared {
            Some(s) => s.as_raw_fd(),
            None => self.socket.as_raw_fd(),
        }
    }

    /// Lets the next program inherit [`WorkerListener::raw_fd`] across
    /// exec.
    pub fn inherit(&self) -> io::Result<()> {
        match &self._shared {
            Some(s) => set_cloexec(&**s, false),
            None => set_cloexec(&self.socket, false),
        }
    }
}

/// Opens this worker's listener for `port` on `addr`, or on all addresses
/// (IPv6 and IPv4 where the host has IPv6, else IPv4 only); a socket an
/// upgrade handed over is taken first.
pub fn listen(
    addr: Option<IpAddr>,
    port: u16,
    mode: ListenMode,
    shared: &SharedListeners,
    inherited: &Inherited,
) -> io::Result<WorkerListener> {
    match mode {
        ListenMode::ReusePort => Ok(WorkerListener {
            socket: TcpListener::from_std(match inherited.take((addr, port)) {
                Some(l) => l,
                None => bind_on(addr, port, true)?,
            }),
            _shared: None,
        }),
        ListenMode::Shared => {
            let mut map = shared.by_port.lock().unwrap_or_else(|p| p.into_inner());
            let sock = match map.get(&(addr, port)).and_then(Weak::upgrade) {
                Some(s) => s,
                None => {
                    let s = Arc::new(match inherited.take((addr, port)) {
                        Some(l) => l,
                        None => bind_on(addr, port, false)?,
                    });
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
                e.raw_os_error().map(Errno::from_raw),
                Some(Errno::EAFNOSUPPORT | Errno::EADDRNOTAVAIL)
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
    // Accepted sockets inherit it (Linux): no setsockopt per connection.
    let _ = socket.set_nodelay(true);
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

/// Whether a socket accepted from one of our listeners already has
/// `TCP_NODELAY` (set on the listener, inherited by Linux's accept), so the
/// worker need not set it per connection.
pub const ACCEPTED_HAVE_NODELAY: bool = cfg!(target_os = "linux");

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
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener on every address, nothing inherited.
    fn open(port: u16, mode: ListenMode, shared: &SharedListeners) -> WorkerListener {
        listen(None, port, mode, shared, &Inherited::default()).unwrap()
    }

    /// The worker skips its per-connection setsockopt only where the
    /// kernel hands accepted sockets the listener's TCP_NODELAY.
    #[test]
    fn accepted_sockets_have_nodelay_where_promised() {
        let l = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = l.local_addr().unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        l.set_nonblocking(false).unwrap();
        let (accepted, _) = l.accept().unwrap();
        if ACCEPTED_HAVE_NODELAY {
            assert!(accepted.nodelay().unwrap());
        }
    }

    #[test]
    fn shared_mode_reuses_one_socket() {
        let shared = SharedListeners::default();
        // Port 0 picks a fresh port per bind; use the one we got.
        let a = open(0, ListenMode::Shared, &shared);
        let port = a.socket.local_addr().unwrap().port();
        drop(a);
        let b = open(port, ListenMode::Shared, &shared);
        let c = open(port, ListenMode::Shared, &shared);
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
            let l = listen(
                Some(ip),
                0,
                ListenMode::ReusePort,
                &shared,
                &Inherited::default(),
            )
            .unwrap();
            assert_eq!(l.socket.local_addr().unwrap().ip(), ip);
        }
    }

    #[test]
    fn reuse_port_lets_every_worker_bind() {
        let shared = SharedListeners::default();
        let a = open(0, ListenMode::ReusePort, &shared);
        let port = a.socket.local_addr().unwrap().port();
        let b = open(port, ListenMode::ReusePort, &shared);
        assert_eq!(b.socket.local_addr().unwrap().port(), port);
    }
}
