//! Health checks, run by the control thread without blocking.
//!
//! Every backend of every service gets a check: a TCP connect, or with
//! `check:/path` a `GET /path` that must answer 2xx. A check has 2 s to
//! finish. A new backend starts down and is used after `rise` consecutive
//! successes; a used one is dropped after `fall` consecutive failures. The
//! control loop publishes a snapshot whenever a backend changes state, so
//! workers never read health per connection.
//!
//! Checks run every 2 s (HAProxy's default `inter`). While a backend is
//! part-way to a change of state (some successes while down, some failures
//! while up) the next check comes after 250 ms instead, like HAProxy's
//! `fastinter`: a new backend takes traffic within about a quarter second of
//! answering, not `rise` × 2 s, and a flapping one is judged as quickly.
//!
//! Timers are one binary heap of (when, backend) with lazy deletion, so
//! 1,024 backends cost a heap operation per check, not a scan per loop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::proto::health::{self as proto, CheckFailure};
use crate::sys::net::{self, TcpStream};
use crate::sys::poll::{Interest, Registry, Token};

/// Between two checks of a backend in a steady state.
pub const INTER: Duration = Duration::from_secs(2);
/// Between two checks while a change of state is in progress.
pub const FAST_INTER: Duration = Duration::from_millis(250);
/// How long one check may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Checks in flight at once at most: a thousand backends appearing together
/// are checked in waves instead of a burst of SYNs that would overflow
/// their accept queues (and this process's descriptors).
const MAX_IN_FLIGHT: usize = 256;
/// How long a check waits for a free slot before trying again.
const SLOT_WAIT: Duration = Duration::from_millis(5);
/// How much of an HTTP check answer is read before judging it.
const MAX_ANSWER: usize = 2048;

/// A checked backend: the service's listen port and the backend address
/// (one backend serving two services is checked for each).
pub type Key = (u16, SocketAddr);

/// How to check one backend.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// Where to connect: the backend, or its `port:` override.
    pub target: SocketAddr,
    /// `(path, Host header)` for an HTTP check.
    pub http: Option<(String, String)>,
    /// TLS to the backend (`https`, `https+insecure`): the check completes
    /// a handshake, verified as the data plane would, before it counts.
    pub tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// Open with a PROXY v2 LOCAL header: the backend of a `tcp-proxy-v2`
    /// service expects one on every connection (nginx `proxy_protocol`,
    /// HAProxy `accept-proxy` drop one without it), unless the check goes
    /// to another port.
    pub proxy_v2: bool,
    /// Successes that make a down backend usable.
    pub rise: u16,
    /// Failures that make a usable backend unusable.
    pub fall: u16,
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connect was refused, reset or unroutable.
    Connect(io::ErrorKind),
    /// No verdict within [`TIMEOUT`].
    Timeout,
    /// The HTTP answer was not a 2xx.
    Http(CheckFailure),
    /// Reading or writing failed after the connect.
    Io(io::ErrorKind),
    /// The TLS handshake failed (a certificate that does not verify).
    Tls(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(k) => write!(f, "connect failed: {k}"),
            Failure::Timeout => write!(f, "no answer within {} s", TIMEOUT.as_secs()),
            Failure::Http(e) => write!(f, "http check {e}"),
            Failure::Io(k) => write!(f, "connection failed: {k}"),
            Failure::Tls(e) => write!(f, "TLS failed: {e}"),
        }
    }
}

/// The last check's result as HAProxy's `check_status` names it, for the
/// `haproxy_server_check_status` family; none before the first check.
pub fn haproxy_check_state(h: &Health, http: bool, tls: bool) -> Option<&'static str> {
    use crate::proto::health::CheckFailure;
    if h.checks == 0 {
        return None;
    }
    Some(match &h.last_failure {
        None if http => "L7OK",
        None if tls => "L6OK",
        None => "L4OK",
        Some(Failure::Connect(_)) => "L4CON",
        Some(Failure::Timeout) if http => "L7TOUT",
        Some(Failure::Timeout) => "L4TOUT",
        Some(Failure::Http(CheckFailure::Status(_))) => "L7STS",
        Some(Failure::Http(_)) => "L7RSP",
        Some(Failure::Io(_)) => "SOCKERR",
        Some(Failure::Tls(_)) => "L6RSP",
    })
}

/// How long `h`, down now, has been down in HAProxy's sense: since it
/// went down, or since it appeared if checks failed before it was ever up.
pub fn down_for(h: &Health) -> Duration {
    if h.up || (h.transitions == 0 && h.failures == 0) {
        return Duration::ZERO;
    }
    h.since
        .and_then(|s| s.elapsed().ok())
        .unwrap_or(Duration::ZERO)
}

/// What a backend's checks say now (a new backend: down, nothing checked).
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Whether it may take new connections.
    pub up: bool,
    /// Consecutive results pointing the other way.
    pub streak: u16,
    /// The latest failure, kept until a success.
    pub last_failure: Option<Failure>,
    /// How long the latest successful check took.
    pub latency: Option<Duration>,
    /// Checks run, and of those failed, since the backend appeared.
    pub checks: u64,
    /// Failed checks since the backend appeared.
    pub failures: u64,
    /// When `up` last changed (or the backend appeared).
    pub since: Option<std::time::SystemTime>,
    /// How many times `up` changed.
    pub transitions: u64,
    /// Time spent down before `since`, once it had been up (the first
    /// wait for a verdict is not downtime: HAProxy starts servers up).
    pub downtime: Duration,
}

#[derive(Debug)]
struct Entry {
    spec: CheckSpec,
    health: Health,
    /// Reached a verdict: up once, or failed once.
    settled: bool,
    due: Instant,
    probe: Option<usize>,
}

#[derive(Debug)]
struct Probe {
    key: Key,
    stream: TcpStream,
    started: Instant,
    deadline: Instant,
    connected: bool,
    /// What the check writes: a PROXY header, an HTTP request, both or
    /// nothing.
    request: Vec<u8>,
    written: usize,
    /// An HTTP check reads and judges an answer; a TCP one is done once
    /// its bytes are written.
    answer_wanted: bool,
    answer: Vec<u8>,
    tls: Option<rustls::ClientConnection>,
}

/// A change of a backend's state, for the control loop to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The backend.
    pub key: Key,
    /// Its new state.
    pub up: bool,
}

/// Every backend's checks.
#[derive(Debug)]
pub struct Checks {
    entries: HashMap<Key, Entry>,
    probes: Slab<Probe>,
    timers: BinaryHeap<Reverse<(Instant, Key)>>,
    token_base: usize,
    transitions: Vec<Transition>,
    /// The set changed and no "every backend checked" line followed yet.
    announce: bool,
}

impl Checks {
    /// Checks whose sockets get tokens from `token_base` up.
    pub fn new(token_base: usize) -> Checks {
        Checks {
            entries: HashMap::new(),
            probes: Slab::new(),
            timers: BinaryHeap::new(),
            token_base,
            transitions: Vec::new(),
            // The first set (even an empty one) is announced too.
            announce: true,
        }
    }

    /// Whether `token` belongs to a check socket.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.token_base
    }

    /// Whether `key` may take new connections (unknown backends may not).
    pub fn is_up(&self, key: &Key) -> bool {
        self.entries.get(key).is_some_and(|e| e.health.up)
    }

    /// What the checks of `key` say, if it is checked.
    pub fn health(&self, key: &Key) -> Option<&Health> {
        self.entries.get(key).map(|e| &e.health)
    }

    /// Makes the checked set exactly `wanted`: new backends start down and
    /// are checked at once, gone ones stop (a check in flight is dropped),
    /// and kept ones keep their state under their possibly new spec.
    pub fn sync(&mut self, registry: &Registry, wanted: Vec<(Key, CheckSpec)>, now: Instant) {
        let wanted: HashMap<Key, CheckSpec> = wanted.into_iter().collect();
        let gone: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in &gone {
            if let Some(Entry { probe: Some(i), .. }) = self.entries.remove(key) {
                self.drop_probe(registry, i);
            }
        }
        let mut added = false;
        for (key, spec) in wanted {
            match self.entries.get_mut(&key) {
                Some(e) => e.spec = spec,
                None => {
                    added = true;
                    self.entries.insert(
                        key,
                        Entry {
                            spec,
                            health: Health {
                                since: Some(std::time::SystemTime::now()),
                                ..Health::default()
                            },
                            settled: false,
                            due: now,
                            probe: None,
                        },
                    );
                    self.timers.push(Reverse((now, key)));
                }
            }
        }
        self.announce |= added || !gone.is_empty();
    }

    /// When the loop must wake for the next check or timeout.
    pub fn next_wake(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Starts the checks that are due and fails the ones out of time.
    pub fn run_due(&mut self, registry: &Registry, now: Instant) {
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.entries.get(&key) else {
                continue;
            };
            match e.probe {
                Some(i) if self.probes[i].deadline <= now => {
                    self.finish(registry, i, Err(Failure::Timeout), now)
                }
                Some(_) => {}
                None if e.due <= now && self.probes.len() >= MAX_IN_FLIGHT => {
                    if let Some(e) = self.entries.get_mut(&key) {
                        e.due = now + SLOT_WAIT;
                        self.timers.push(Reverse((e.due, key)));
                    }
                }
                None if e.due <= now => self.start(registry, key, now),
                None => {}
            }
        }
    }

    /// Drives the check socket behind `token`.
    pub fn ready(&mut self, registry: &Registry, token: Token, now: Instant) {
        let i = token.0 - self.token_base;
        if !self.probes.contains(i) {
            return;
        }
        if let Some(verdict) = self.advance(i) {
            self.finish(registry, i, verdict, now);
        }
    }

    /// The state changes since the last call.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// Once after each change of the checked set, when every backend has a
    /// verdict: how many are up and how many down.
    pub fn take_settled(&mut self) -> Option<(usize, usize)> {
        if !self.announce || self.entries.values().any(|e| !e.settled) {
            return None;
        }
        self.announce = false;
        let up = self.entries.values().filter(|e| e.health.up).count();
        Some((up, self.entries.len() - up))
    }

    /// Marks `key` up as if its checks had passed (for builder tests).
    #[cfg(test)]
    pub(crate) fn assume_up(&mut self, key: Key, spec: CheckSpec) {
        let now = Instant::now();
        self.entries.insert(
            key,
            Entry {
                spec,
                health: Health {
                    up: true,
                    ..Health::default()
                },
                settled: true,
                due: now + INTER,
                probe: None,
            },
        );
    }

    fn start(&mut self, registry: &Registry, key: Key, now: Instant) {
        let Some(e) = self.entries.get(&key) else {
            return;
        };
        let mut request = Vec::new();
        if e.spec.proxy_v2 {
            request.extend_from_slice(&crate::proto::proxy_v2::LOCAL);
        }
        if let Some((path, host)) = &e.spec.http {
            request.extend_from_slice(&proto::request(path, host));
        }
        let answer_wanted = e.spec.http.is_some();
        let mut stream = match net::connect(e.spec.target) {
            Ok(s) => s,
            Err(err) => return self.record(key, Err(Failure::Connect(err.kind())), now),
        };
        let entry = self.probes.vacant_entry();
        let i = entry.key();
        if let Err(err) = registry.register(
            &mut stream,
            Token(self.token_base + i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.record(key, Err(Failure::Io(err.kind())), now);
        }
        let deadline = now + TIMEOUT;
        let tls = match &e.spec.tls {
            Some((config, name)) => {
                match rustls::ClientConnection::new(Arc::clone(config), name.clone()) {
                    Ok(c) => Some(c),
                    Err(err) => return self.record(key, Err(Failure::Tls(err.to_string())), now),
                }
            }
            None => None,
        };
        entry.insert(Probe {
            tls,
            key,
            stream,
            started: now,
            deadline,
            connected: false,
            request,
            written: 0,
            answer_wanted,
            answer: Vec::new(),
        });
        if let Some(e) = self.entries.get_mut(&key) {
            e.probe = Some(i);
        }
        self.timers.push(Reverse((deadline, key)));
    }

    /// Moves a check forward; `Some` once it has a verdict.
    fn advance(&mut self, i: usize) -> Option<Result<(), Failure>> {
        let p = &mut self.probes[i];
        if !p.connected {
            match p.stream.take_error() {
                Ok(Some(e)) | Err(e) => return Some(Err(Failure::Connect(e.kind()))),
                Ok(None) => {}
            }
            match p.stream.peer_addr() {
                Ok(_) => p.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(e) => return Some(Err(Failure::Connect(e.kind()))),
            }
            if p.request.is_empty() && p.tls.is_none() {
                return Some(Ok(()));
            }
        }
        if let Some(tls) = p.tls.as_mut() {
            while tls.is_handshaking() {
                match tls.complete_io(&mut p.stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Some(Err(Failure::Tls(e.to_string()))),
                }
            }
            if p.request.is_empty() {
                return Some(Ok(()));
            }
        }
        // Plain, or through TLS: the same bytes either way.
        let mut plain = Wire(&mut p.stream, p.tls.as_mut());
        while p.written < p.request.len() {
            match plain.write(&p.request[p.written..]) {
                Ok(0) => return Some(Err(Failure::Io(io::ErrorKind::WriteZero))),
                Ok(n) => p.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(Failure::Io(e.kind()))),
            }
        }
        if !p.answer_wanted {
            return Some(Ok(()));
        }
        let mut chunk = [0u8; 512];
        let mut closed = false;
        while p.answer.len() < MAX_ANSWER {
            match plain.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    let room = MAX_ANSWER - p.answer.len();
                    p.answer.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset after a complete status line still counts.
                Err(e) => {
                    return match proto::verdict(&p.answer, true) {
                        Some(Err(CheckFailure::Truncated)) | None => {
                            Some(Err(Failure::Io(e.kind())))
                        }
                        Some(v) => Some(v.map(drop).map_err(Failure::Http)),
                    }
                }
            }
        }
        // A full buffer without a status line is judged as garbage.
        proto::verdict(&p.answer, closed).map(|v| v.map(drop).map_err(Failure::Http))
    }

    fn finish(&mut self, registry: &Registry, i: usize, result: Result<(), Failure>, now: Instant) {
        let key = self.probes[i].key;
        let latency = now.saturating_duration_since(self.probes[i].started);
        self.drop_probe(registry, i);
        if let Some(e) = self.entries.get_mut(&key) {
            e.probe = None;
            if result.is_ok() {
                e.health.latency = Some(latency);
            }
        }
        self.record(key, result, now);
    }

    fn drop_probe(&mut self, registry: &Registry, i: usize) {
        let mut p = self.probes.remove(i);
        let _ = registry.deregister(&mut p.stream);
        // A reset instead of a FIN: checks every 2 s to every backend
        // would otherwise leave sockets in TIME_WAIT here, taking local
        // ports the data plane needs.
        net::set_reset_on_close(&p.stream);
    }

    /// Counts a result and schedules the next check.
    fn record(&mut self, key: Key, result: Result<(), Failure>, now: Instant) {
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        let h = &mut e.health;
        h.checks += 1;
        match result {
            Ok(()) => {
                h.last_failure = None;
                if h.up {
                    h.streak = 0;
                } else {
                    h.streak += 1;
                    if h.streak >= e.spec.rise {
                        h.up = true;
                        h.streak = 0;
                        h.downtime += down_for(h);
                        h.since = Some(std::time::SystemTime::now());
                        h.transitions += 1;
                        e.settled = true;
                        log::info!(
                            "health: service :{} backend {} is up ({} checks passed)",
                            key.0,
                            key.1,
                            e.spec.rise
                        );
                        self.transitions.push(Transition { key, up: true });
                    }
                }
            }
            Err(f) => {
                h.failures += 1;
                if h.up {
                    h.streak += 1;
                    if h.streak >= e.spec.fall {
                        h.up = false;
                        h.streak = 0;
                        h.since = Some(std::time::SystemTime::now());
                        h.transitions += 1;
                        log::warn!("health: service :{} backend {} is down: {f}", key.0, key.1);
                        self.transitions.push(Transition { key, up: false });
                    }
                } else {
                    if h.last_failure.as_ref() != Some(&f) {
                        log::info!(
                            "health: service :{} backend {} stays down: {f}",
                            key.0,
                            key.1
                        );
                    }
                    h.streak = 0;
                    e.settled = true;
                }
                h.last_failure = Some(f);
            }
        }
        let wait = if h.streak > 0 { FAST_INTER } else { INTER };
        e.due = now + wait;
        self.timers.push(Reverse((e.due, key)));
    }
}

/// A check socket, through TLS or not.
struct Wire<'a>(&'a mut TcpStream, Option<&'a mut rustls::ClientConnection>);

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.1.as_deref_mut() {
            None => self.0.read(buf),
            Some(tls) => {
                let r = rustls::Stream::new(tls, self.0).read(buf);
                // A peer that closes without close_notify has still
                // answered; the status line is what counts.
                match r {
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    r => r,
                }
            }
        }
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.1.as_deref_mut() {
            None => self.0.write(buf),
            Some(tls) => rustls::Stream::new(tls, self.0).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.1.as_deref_mut() {
            None => self.0.flush(),
            Some(tls) => rustls::Stream::new(tls, self.0).flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::poll::{Events, Poll};
    use std::net::TcpListener;

    fn spec(target: SocketAddr, http: Option<&str>) -> CheckSpec {
        CheckSpec {
            target,
            http: http.map(|p| (p.to_owned(), "test".to_owned())),
            tls: None,
            proxy_v2: false,
            rise: 2,
            fall: 1,
        }
    }

    /// A `tcp-proxy-v2` backend's checks open with the PROXY v2 LOCAL
    /// header, then (for an HTTP check) the request; a TCP check is done
    /// once the header is written.
    #[test]
    fn proxy_v2_checks_open_with_a_local_header() {
        use std::io::Read;
        for http in [None, Some("/healthz")] {
            let mut poll = Poll::new().unwrap();
            let backend = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = backend.local_addr().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let Ok((mut c, _)) = backend.accept() else {
                    return;
                };
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut got = vec![0u8; 16];
                if c.read_exact(&mut got).is_err() {
                    let _ = tx.send(got);
                    return;
                }
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let mut rest = [0u8; 256];
                let n = c.read(&mut rest).unwrap_or(0);
                got.extend_from_slice(&rest[..n]);
                let _ = tx.send(got);
            });
            let mut checks = Checks::new(100);
            let key = (80, addr);
            let s = CheckSpec {
                proxy_v2: true,
                rise: 1,
                ..spec(addr, http)
            };
            checks.sync(poll.registry(), vec![(key, s)], Instant::now());
            drive(&mut poll, &mut checks, |c| c.is_up(&key));
            let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(&got[..16], &crate::proto::proxy_v2::LOCAL, "{http:?}");
            let after = String::from_utf8_lossy(&got[16..]).into_owned();
            match http {
                Some(_) => assert!(after.starts_with("GET /healthz HTTP/1.1\r\n"), "{after}"),
                None => assert_eq!(after, "", "a TCP check sends nothing more"),
            }
        }
    }

    /// Runs the checker until `done` says so, at most 10 s.
    fn drive(poll: &mut Poll, checks: &mut Checks, mut done: impl FnMut(&mut Checks) -> bool) {
        let start = Instant::now();
        let mut events = Events::with_capacity(64);
        while !done(checks) {
            assert!(start.elapsed() < Duration::from_secs(10), "checks stalled");
            let now = Instant::now();
            let wait = checks
                .next_wake()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(50));
            poll.poll(&mut events, Some(wait.min(Duration::from_millis(50))))
                .unwrap();
            let now = Instant::now();
            for ev in events.iter() {
                checks.ready(poll.registry(), ev.token(), now);
            }
            checks.run_due(poll.registry(), now);
        }
    }

    #[test]
    fn a_listening_backend_rises_and_a_dead_one_stays_down() {
        let mut poll = Poll::new().unwrap();
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut checks = Checks::new(100);
        let k_live = (80, live.local_addr().unwrap());
        let k_dead = (80, dead);
        checks.sync(
            poll.registry(),
            vec![(k_live, spec(k_live.1, None)), (k_dead, spec(dead, None))],
            Instant::now(),
        );
        assert!(!checks.is_up(&k_live), "a new backend starts down");
        drive(&mut poll, &mut checks, |c| c.is_up(&k_live));
        assert!(!checks.is_up(&k_dead));
        assert_eq!(
            checks.health(&k_dead).unwrap().last_failure,
            Some(Failure::Connect(io::ErrorKind::ConnectionRefused))
        );
        assert_eq!(
            checks.take_transitions(),
            vec![Transition {
                key: k_live,
                up: true
            }]
        );
        assert_eq!(checks.take_settled(), Some((1, 1)));
        assert_eq!(checks.take_settled(), None, "announced once");

        // Gone from the set: no longer known, so not usable.
        checks.sync(poll.registry(), vec![], Instant::now());
        assert!(!checks.is_up(&k_live));
        assert!(checks.health(&k_live).is_none());
    }

    #[test]
    fn http_checks_need_a_2xx() {
        use std::io::BufRead;
        let mut poll = Poll::new().unwrap();
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = backend.local_addr().unwrap();
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let s = status.clone();
        std::thread::spawn(move || {
            for conn in backend.incoming() {
                let Ok(mut c) = conn else { return };
                let mut line = String::new();
                let mut r = std::io::BufReader::new(c.try_clone().unwrap());
                let _ = r.read_line(&mut line);
                assert_eq!(line, "GET /healthz HTTP/1.1\r\n");
                let code = s.load(std::sync::atomic::Ordering::Relaxed);
                let _ = write!(c, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let mut checks = Checks::new(100);
        let key = (80, addr);
        checks.sync(
            poll.registry(),
            vec![(key, spec(addr, Some("/healthz")))],
            Instant::now(),
        );
        drive(&mut poll, &mut checks, |c| c.is_up(&key));
        status.store(503, std::sync::atomic::Ordering::Relaxed);
        drive(&mut poll, &mut checks, |c| !c.is_up(&key));
        assert_eq!(
            checks.health(&key).unwrap().last_failure,
            Some(Failure::Http(CheckFailure::Status(503)))
        );
        status.store(204, std::sync::atomic::Ordering::Relaxed);
        drive(&mut poll, &mut checks, |c| c.is_up(&key));
        let t = checks.take_transitions();
        assert_eq!(
            t.iter().map(|t| t.up).collect::<Vec<_>>(),
            [true, false, true]
        );
    }

    #[test]
    fn a_silent_backend_times_out() {
        let mut poll = Poll::new().unwrap();
        // Accepts (the kernel does) but never answers the HTTP check.
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = backend.local_addr().unwrap();
        let mut checks = Checks::new(100);
        let key = (80, addr);
        checks.sync(
            poll.registry(),
            vec![(key, spec(addr, Some("/")))],
            Instant::now(),
        );
        let start = Instant::now();
        drive(&mut poll, &mut checks, |c| {
            c.health(&key).is_some_and(|h| h.failures > 0)
        });
        assert!(start.elapsed() >= TIMEOUT);
        assert_eq!(
            checks.health(&key).unwrap().last_failure,
            Some(Failure::Timeout)
        );
        drop(backend);
    }
}
