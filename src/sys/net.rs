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

// The emulated event ports (feature `emulated-event-ports`) take every
// illumos branch here too, so a Linux test run is what illumos runs: the
// poller's socket wrappers, one shared listener, no SO_REUSEPORT.
#[cfg(any(target_os = "illumos", feature = "emulated-event-ports"))]
pub use super::poll::event_ports::io::{TcpListener, TcpStream};
#[cfg(not(any(target_os = "illumos", feature = "emulated-event-ports")))]
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
        if cfg!(any(
            target_os = "illumos",
            target_os = "solaris",
            feature = "emulated-event-ports"
        )) {
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
    /// Usually one socket per key; several after an upgrade from a program
    /// with a socket per worker.
    by_port: Mutex<HashMap<ListenKey, Vec<Weak<std::net::TcpListener>>>>,
}

/// A listening address (none: all) and port.
pub type ListenKey = (Option<IpAddr>, u16);

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

/// The [`INHERITED_ENV`] value naming `sockets` (descriptor, address,
/// port).
pub fn inherited_env_value(
    sockets: impl IntoIterator<Item = (i32, Option<IpAddr>, u16)>,
) -> String {
    let mut env = String::new();
    for (fd, addr, port) in sockets {
        let addr = addr.map_or_else(|| "*".to_owned(), |a| a.to_string());
        env.push_str(&format!("{fd}@{addr}@{port};"));
    }
    env
}

/// Why a socket named by [`INHERITED_ENV`] cannot be taken.
#[derive(Debug)]
pub enum InheritError {
    /// An item that is not `FD@ADDR@PORT`.
    Malformed(String),
    /// The descriptor is not open, or a system call on it failed.
    Unreadable(i32, io::Error),
    /// The descriptor is not a socket.
    NotASocket(i32),
    /// A socket, but not an IPv4 or IPv6 stream socket.
    NotTcp(i32),
    /// A TCP socket that is not listening.
    NotListening(i32),
    /// A listening socket on another address or port than its name says.
    Elsewhere(i32, ListenKey, SocketAddr),
}

impl std::fmt::Display for InheritError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InheritError::Malformed(item) => {
                write!(f, "{INHERITED_ENV}: {item:?} is not FD@ADDRESS@PORT")
            }
            InheritError::Unreadable(fd, e) => write!(f, "inherited fd {fd}: {e}"),
            InheritError::NotASocket(fd) => write!(f, "inherited fd {fd} is not a socket"),
            InheritError::NotTcp(fd) => write!(f, "inherited fd {fd} is not a TCP socket"),
            InheritError::NotListening(fd) => {
                write!(f, "inherited fd {fd} is a TCP socket that does not listen")
            }
            InheritError::Elsewhere(fd, (addr, port), local) => write!(
                f,
                "inherited fd {fd} is named for {}:{port} but listens on {local}",
                addr.map_or_else(|| "*".to_owned(), |a| a.to_string())
            ),
        }
    }
}

impl std::error::Error for InheritError {}

/// Takes every socket [`INHERITED_ENV`] names, if it is set, and unsets it
/// (so nothing this process starts inherits the claim). Each one is
/// checked: a listening TCP socket on the address and port its name says;
/// the others come back as errors (those that were sockets are closed).
pub fn inherited_from_env() -> (Vec<(ListenKey, std::net::TcpListener)>, Vec<InheritError>) {
    let Ok(text) = std::env::var(INHERITED_ENV) else {
        return (Vec::new(), Vec::new());
    };
    std::env::remove_var(INHERITED_ENV);
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    for item in text.split(';').filter(|i| !i.is_empty()) {
        match parse_item(item) {
            Some((fd, key)) => match adopt(fd, key) {
                Ok(l) => ok.push((key, l)),
                Err(e) => errors.push(e),
            },
            None => errors.push(InheritError::Malformed(item.to_owned())),
        }
    }
    (ok, errors)
}

/// `FD@ADDR@PORT`, understood.
fn parse_item(item: &str) -> Option<(i32, ListenKey)> {
    let mut f = item.split('@');
    let (fd, addr, port) = (f.next()?, f.next()?, f.next()?);
    if f.next().is_some() {
        return None;
    }
    let addr = match addr {
        "*" => None,
        a => Some(a.parse().ok()?),
    };
    Some((fd.parse().ok()?, (addr, port.parse().ok()?)))
}

/// Listening sockets a previous process handed over (`moirai upgrade`),
/// by address and port, taken by the workers instead of binding: the
/// kernel's accept queues carry on, so no connection is refused or lost.
///
/// Every one of them is served: the old program may have had more workers
/// than this one (one `SO_REUSEPORT` socket each, the kernel spreading new
/// connections over all of them), so a worker takes its share of a port's
/// sockets and may hold several. A socket left over, for a port the first
/// configuration does not have, is closed once that configuration is in
/// force ([`Inherited::close_rest`]) rather than left to queue connections
/// nobody accepts.
#[derive(Debug, Default)]
pub struct Inherited {
    by_key: Mutex<HashMap<ListenKey, Share>>,
    /// The workers that will ask, to share each port's sockets out.
    workers: usize,
}

/// One address and port's inherited sockets, and how many workers have
/// taken their share.
#[derive(Debug, Default)]
struct Share {
    sockets: Vec<std::net::TcpListener>,
    takers: usize,
}

impl Inherited {
    /// The sockets [`INHERITED_ENV`] names (see [`inherited_from_env`];
    /// those that cannot be taken are logged and left out), for `workers`
    /// workers.
    pub fn from_env(workers: usize) -> Inherited {
        let (sockets, errors) = inherited_from_env();
        for e in errors {
            log::error!("upgrade: {e}");
        }
        Inherited::new(sockets, workers)
    }

    /// `sockets` for `workers` workers to share.
    pub fn new(sockets: Vec<(ListenKey, std::net::TcpListener)>, workers: usize) -> Inherited {
        let mut by_key: HashMap<ListenKey, Share> = HashMap::new();
        for (key, l) in sockets {
            by_key.entry(key).or_default().sockets.push(l);
        }
        Inherited {
            by_key: Mutex::new(by_key),
            workers: workers.max(1),
        }
    }

    /// How many sockets are still waiting to be taken.
    pub fn len(&self) -> usize {
        self.lock().values().map(|s| s.sockets.len()).sum()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ListenKey, Share>> {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker's share of `key`'s sockets: what is left divided by the
    /// workers still to come, rounded up, so the last one takes the rest.
    fn take_share(&self, key: ListenKey) -> Vec<std::net::TcpListener> {
        let mut map = self.lock();
        let Some(share) = map.get_mut(&key) else {
            return Vec::new();
        };
        let left = self.workers.saturating_sub(share.takers).max(1);
        let n = share.sockets.len().div_ceil(left);
        share.takers += 1;
        let keep = share.sockets.len() - n;
        share.sockets.split_off(keep)
    }

    /// Every socket of `key` (one shared socket serves every worker).
    fn take_all(&self, key: ListenKey) -> Vec<std::net::TcpListener> {
        self.lock()
            .get_mut(&key)
            .map(|s| std::mem::take(&mut s.sockets))
            .unwrap_or_default()
    }

    /// Closes the sockets nobody took (ports the configuration does not
    /// have); returns their addresses and ports.
    ///
    /// Connections the kernel had queued on them are reset: draining them
    /// would mean accepting connections for a service this configuration
    /// does not run, with nothing to send them to; a restart with that
    /// service gone would lose them the same way.
    pub fn close_rest(&self) -> Vec<ListenKey> {
        let mut closed = Vec::new();
        for (key, share) in self.lock().drain() {
            closed.extend(std::iter::repeat_n(key, share.sockets.len()));
        }
        closed.sort();
        closed
    }
}

/// A listening socket handed over by file descriptor, checked (see
/// [`InheritError`]): owned from now on, non-blocking, closed on exec
/// again.
fn adopt(fd: i32, key: ListenKey) -> Result<std::net::TcpListener, InheritError> {
    use nix::sys::stat::{fstat, SFlag};
    use std::os::fd::{BorrowedFd, FromRawFd};
    // SAFETY: `fd` comes from INHERITED_ENV, written by the process that
    // started us for exactly this purpose; it is only borrowed for fstat,
    // which fails cleanly (EBADF) if it is not open.
    let st = fstat(unsafe { BorrowedFd::borrow_raw(fd) })
        .map_err(|e| InheritError::Unreadable(fd, e.into()))?;
    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFSOCK.bits() {
        return Err(InheritError::NotASocket(fd));
    }
    // SAFETY: fstat proved it open and a socket, and nothing else in this
    // process owns it; ownership moves into the TcpListener (which closes
    // it if a check below fails).
    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let sock = SockRef::from(&l);
    let local = sock
        .local_addr()
        .map_err(|e| InheritError::Unreadable(fd, e))?
        .as_socket();
    let Some(local) = local.filter(|_| sock.r#type().is_ok_and(|t| t == Type::STREAM)) else {
        return Err(InheritError::NotTcp(fd));
    };
    if !is_listening(&l).map_err(|e| InheritError::Unreadable(fd, e))? {
        return Err(InheritError::NotListening(fd));
    }
    let (addr, port) = key;
    let at = addr.map_or(local.ip().is_unspecified(), |a| a == local.ip());
    if local.port() != port || !at {
        return Err(InheritError::Elsewhere(fd, key, local));
    }
    let io = |e: io::Error| InheritError::Unreadable(fd, e);
    set_cloexec(&l, true).map_err(io)?;
    l.set_nonblocking(true).map_err(io)?;
    // An older program may not have set it.
    let _ = sock.set_nodelay(true);
    Ok(l)
}

/// `SO_ACCEPTCONN`: whether `listen` was called on the socket.
fn is_listening(l: &std::net::TcpListener) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid descriptor (borrowed from `l`), and a buffer of the
    // size given, which getsockopt writes at most.
    let r = unsafe {
        libc::getsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut on as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(on != 0)
}

/// Sets or clears `FD_CLOEXEC` (cleared only on sockets handed to the next
/// program by an upgrade).
pub(crate) fn set_cloexec(fd: impl std::os::fd::AsFd, on: bool) -> io::Result<()> {
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
    /// mode the shared one (the same number in every worker, so it also
    /// tells the sockets apart).
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

    /// A duplicate of the socket ([`WorkerListener::raw_fd`]'s), closed on
    /// exec: lent to an upgrade's pre-flight, or kept when this listener
    /// goes.
    pub fn duplicate(&self) -> io::Result<std::net::TcpListener> {
        use std::os::fd::AsFd;
        let fd = match &self._shared {
            Some(s) => s.as_fd().try_clone_to_owned()?,
            None => self.socket.as_fd().try_clone_to_owned()?,
        };
        Ok(std::net::TcpListener::from(fd))
    }
}

/// Opens this worker's listeners for `port` on `addr`, or on all addresses
/// (IPv6 and IPv4 where the host has IPv6, else IPv4 only): its share of
/// the sockets an upgrade handed over if there are any (possibly several),
/// else one new socket.
pub fn listen(
    addr: Option<IpAddr>,
    port: u16,
    mode: ListenMode,
    shared: &SharedListeners,
    inherited: &Inherited,
) -> io::Result<Vec<WorkerListener>> {
    match mode {
        ListenMode::ReusePort => {
            let mut socks = inherited.take_share((addr, port));
            if socks.is_empty() {
                socks.push(bind_on(addr, port, true)?);
            }
            Ok(socks
                .into_iter()
                .map(|l| WorkerListener {
                    socket: TcpListener::from_std(l),
                    _shared: None,
                })
                .collect())
        }
        ListenMode::Shared => {
            let mut map = shared.by_port.lock().unwrap_or_else(|p| p.into_inner());
            let known: Option<Vec<Arc<std::net::TcpListener>>> = map
                .get(&(addr, port))
                .and_then(|ws| ws.iter().map(Weak::upgrade).collect());
            let socks = match known {
                Some(s) if !s.is_empty() => s,
                _ => {
                    let mut taken = inherited.take_all((addr, port));
                    if taken.is_empty() {
                        taken.push(bind_on(addr, port, false)?);
                    }
                    let s: Vec<_> = taken.into_iter().map(Arc::new).collect();
                    map.insert((addr, port), s.iter().map(Arc::downgrade).collect());
                    s
                }
            };
            map.retain(|_, ws| ws.iter().all(|w| w.strong_count() > 0));
            socks
                .into_iter()
                .map(|sock| {
                    Ok(WorkerListener {
                        socket: TcpListener::from_std(sock.try_clone()?),
                        _shared: Some(sock),
                    })
                })
                .collect()
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

#[cfg(not(any(
    target_os = "illumos",
    target_os = "solaris",
    feature = "emulated-event-ports"
)))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(any(
    target_os = "illumos",
    target_os = "solaris",
    feature = "emulated-event-ports"
))]
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

/// Whether an event that says a connecting socket is writable, with no
/// error or hang-up, means it is connected, so that neither `SO_ERROR`
/// nor `getpeername` need be asked (two syscalls per backend
/// connection). Linux's `tcp_poll` reports a socket in SYN-SENT as
/// neither readable nor writable, only its errors. illumos' event ports
/// make no such promise that we know of: asked there.
pub const WRITABLE_MEANS_CONNECTED: bool = cfg!(all(
    target_os = "linux",
    not(feature = "emulated-event-ports")
));

/// Starts a non-blocking connect to `addr`.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect(addr)
}

/// Writes `bufs` to `stream` with sendmsg(2). A vectored write through
/// writev(2) takes the VFS path (`vfs_writev`, the file position lock)
/// before it reaches the socket; sendmsg goes to the socket layer, as
/// std's single-slice writes (send(2)) already do. illumos has sendmsg
/// too, and the event ports' socket reports it as a write.
pub fn send_vectored(stream: &mut TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    #[cfg(any(target_os = "illumos", feature = "emulated-event-ports"))]
    return stream.send_vectored(bufs);
    #[cfg(not(any(target_os = "illumos", feature = "emulated-event-ports")))]
    return SockRef::from(&*stream).send_vectored(bufs);
}

/// Writes `bufs` to `stream` as the last bytes before its close: on
/// Linux with `MSG_MORE`, which holds a final partial segment back until
/// the close, whose FIN then rides on it (`tcp_send_fin` sets FIN on an
/// unsent tail): one segment instead of two, and one ACK fewer from the
/// peer, most of which the kernel runs in the sender's time on loopback.
/// The caller must close the socket right after a write that took
/// everything (a short one leaves bytes in flight, whose ACKs push the
/// rest). illumos has no `MSG_MORE`: a plain vectored write there.
pub fn send_final(stream: &mut TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    #[cfg(any(not(target_os = "linux"), feature = "emulated-event-ports"))]
    return send_vectored(stream, bufs);
    #[cfg(all(target_os = "linux", not(feature = "emulated-event-ports")))]
    return SockRef::from(&*stream).send_vectored_with_flags(bufs, libc::MSG_MORE);
}

/// What a socket needs between its final write ([`send_final`]) and its
/// close. On Linux the final segment waits in the send queue for the
/// FIN, and a close that finds bytes unread resets the connection and
/// drops that queue: the shutdown sends the FIN, with the segment, first.
/// Elsewhere the bytes left at the write, and the close is the FIN:
/// nothing, not a syscall more per closing response.
pub fn end_after_final(stream: &TcpStream) -> io::Result<()> {
    #[cfg(any(not(target_os = "linux"), feature = "emulated-event-ports"))]
    {
        let _ = stream;
        Ok(())
    }
    #[cfg(all(target_os = "linux", not(feature = "emulated-event-ports")))]
    stream.shutdown(std::net::Shutdown::Write)
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
        let mut l = listen(None, port, mode, shared, &Inherited::default()).unwrap();
        assert_eq!(l.len(), 1);
        l.remove(0)
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

    /// The kernel's count of segments a socket received (`tcpi_segs_in`).
    #[cfg(all(target_os = "linux", not(feature = "emulated-event-ports")))]
    fn segments_in(fd: std::os::fd::RawFd) -> u32 {
        // SAFETY: tcp_info is plain integers, so all zeroes is a value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` is writable for `len` bytes and outlives the
        // call; the kernel writes at most `len` and says how many.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "TCP_INFO: {}", io::Error::last_os_error());
        info.tcpi_segs_in
    }

    /// A connected pair on loopback: the peer (blocking, reads time out
    /// after 5 s) and our side, as the engine holds its sockets.
    #[cfg(all(target_os = "linux", not(feature = "emulated-event-ports")))]
    fn pair() -> (std::net::TcpStream, TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let (ours, _) = l.accept().unwrap();
        ours.set_nodelay(true).unwrap();
        (peer, TcpStream::from_std(ours))
    }

    /// A final write, and the end and the close that follow it, reach the
    /// peer as one segment: the bytes and the FIN together.
    #[test]
    #[cfg(all(target_os = "linux", not(feature = "emulated-event-ports")))]
    fn a_final_write_carries_the_fin() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let (mut peer, mut ours) = pair();
        let before = segments_in(peer.as_raw_fd());
        let bufs = [
            io::IoSlice::new(b"HTTP/1.1 200 OK\r\n"),
            io::IoSlice::new(b"\r\n"),
        ];
        assert_eq!(send_final(&mut ours, &bufs).unwrap(), 19);
        end_after_final(&ours).unwrap();
        drop(ours);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            segments_in(peer.as_raw_fd()) - before,
            1,
            "bytes and FIN apart"
        );
    }

    /// A close that finds bytes unread resets the connection and drops
    /// what is still queued, the final write's held segment with it; the
    /// end after the final write (the FIN) takes those bytes out first.
    #[test]
    #[cfg(all(target_os = "linux", not(feature = "emulated-event-ports")))]
    fn a_final_write_shut_down_survives_a_resetting_close() {
        use std::io::{Read, Write};
        let (mut peer, mut ours) = pair();
        peer.write_all(b"unread").unwrap();
        let mut probe = [0u8; 6];
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !matches!(ours.peek(&mut probe), Ok(6)) {
            assert!(std::time::Instant::now() < until, "the bytes never came");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let bufs = [io::IoSlice::new(b"response")];
        assert_eq!(send_final(&mut ours, &bufs).unwrap(), 8);
        end_after_final(&ours).unwrap();
        drop(ours);
        let mut got = [0u8; 8];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"response");
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
    #[cfg_attr(
        feature = "emulated-event-ports",
        ignore = "SO_REUSEPORT is refused as on illumos"
    )]
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
            assert_eq!(l[0].socket.local_addr().unwrap().ip(), ip);
        }
    }

    #[test]
    #[cfg_attr(
        feature = "emulated-event-ports",
        ignore = "SO_REUSEPORT is refused as on illumos"
    )]
    fn reuse_port_lets_every_worker_bind() {
        let shared = SharedListeners::default();
        let a = open(0, ListenMode::ReusePort, &shared);
        let port = a.socket.local_addr().unwrap().port();
        let b = open(port, ListenMode::ReusePort, &shared);
        assert_eq!(b.socket.local_addr().unwrap().port(), port);
    }

    /// Fewer workers than the old program had: each takes its share of a
    /// port's sockets, the last one the rest, so none is left unserved.
    #[test]
    #[cfg_attr(
        feature = "emulated-event-ports",
        ignore = "SO_REUSEPORT is refused as on illumos"
    )]
    fn inherited_sockets_are_shared_out_to_the_workers_there_are() {
        let first = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let port = first.local_addr().unwrap().port();
        let key = (Some("127.0.0.1".parse().unwrap()), port);
        let mut socks = vec![(key, first)];
        for _ in 0..4 {
            socks.push((
                key,
                bind(SocketAddr::new(key.0.unwrap(), port), true).unwrap(),
            ));
        }
        let two = Inherited::new(socks, 2);
        assert_eq!(two.take_share(key).len(), 3);
        assert_eq!(two.take_share(key).len(), 2);
        assert!(two.is_empty());
        assert!(
            two.take_share(key).is_empty(),
            "a third worker binds its own"
        );
        // One worker takes all of them, through `listen`.
        let socks = vec![
            (
                key,
                bind(SocketAddr::new(key.0.unwrap(), port), true).unwrap(),
            ),
            (
                key,
                bind(SocketAddr::new(key.0.unwrap(), port), true).unwrap(),
            ),
        ];
        let one = Inherited::new(socks, 1);
        let shared = SharedListeners::default();
        let got = listen(key.0, port, ListenMode::ReusePort, &shared, &one).unwrap();
        assert_eq!(got.len(), 2);
        // A port nobody opens is closed once the configuration is in force.
        let other = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let other_key = (key.0, other.local_addr().unwrap().port());
        let left = Inherited::new(vec![(other_key, other)], 1);
        assert_eq!(left.close_rest(), vec![other_key]);
        assert!(left.is_empty());
        std::net::TcpStream::connect(SocketAddr::new(key.0.unwrap(), other_key.1))
            .expect_err("closed");
    }

    /// What an upgrade's pre-flight checks of each socket handed over.
    #[test]
    #[cfg_attr(
        feature = "emulated-event-ports",
        ignore = "SO_REUSEPORT is refused as on illumos"
    )]
    fn only_a_listening_tcp_socket_where_its_name_says_is_adopted() {
        use std::os::fd::IntoRawFd;
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let l = bind(SocketAddr::new(ip, 0), true).unwrap();
        let port = l.local_addr().unwrap().port();
        let fd = l.into_raw_fd();
        assert!(matches!(
            adopt(fd, (Some(ip), port + 1)),
            Err(InheritError::Elsewhere(..))
        ));
        // That closed it; a fresh one is taken.
        let l = bind(SocketAddr::new(ip, 0), true).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(adopt(l.into_raw_fd(), (Some(ip), port)).is_ok());
        let unbound = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(matches!(
            adopt(unbound.into_raw_fd(), (None, 80)),
            Err(InheritError::NotListening(_))
        ));
        let udp = std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
        assert!(matches!(
            adopt(udp.into_raw_fd(), (None, 80)),
            Err(InheritError::NotTcp(_))
        ));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(matches!(
            adopt(file.into_raw_fd(), (None, 80)),
            Err(InheritError::NotASocket(_))
        ));
        assert_eq!(parse_item("7@*@80"), Some((7, (None, 80))));
        assert_eq!(
            parse_item("7@::1@80"),
            Some((7, (Some("::1".parse().unwrap()), 80)))
        );
        assert_eq!(parse_item("7@*@80@1"), None);
        assert_eq!(parse_item("x@*@80"), None);
    }
}
