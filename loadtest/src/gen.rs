//! The load generator: mio connections on one or more threads, closed loop
//! (each connection sends its next request when the last one is answered)
//! or open loop (requests are due at a fixed rate and wait for a free
//! connection, latency counted from when they were due).

use std::io::{self, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::h2client;
use crate::stats::{self, RunResult};

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Keep-alive GET.
    Http,
    /// One GET per connection.
    HttpClose,
    /// 64-byte request/response over TCP.
    TcpEcho,
    /// One 64-byte echo per TCP connection.
    TcpClose,
    /// Bulk download from a `source` backend.
    TcpStream,
    /// HTTPS keep-alive.
    Tls,
    /// A full TLS handshake per request.
    TlsHandshake,
    /// HTTP/2 over TLS (ALPN h2), 10 streams per connection (h2load).
    H2,
    /// HTTP/2 over TLS, 100 streams per connection (h2load).
    #[value(name = "h2-100")]
    H2x100,
    /// One HTTP/2 request per TLS connection: a full handshake, the
    /// preface and one GET each.
    H2Handshake,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Http => "http",
            Scenario::HttpClose => "http-close",
            Scenario::TcpEcho => "tcp-echo",
            Scenario::TcpClose => "tcp-close",
            Scenario::TcpStream => "tcp-stream",
            Scenario::Tls => "tls",
            Scenario::TlsHandshake => "tls-handshake",
            Scenario::H2 => "h2",
            Scenario::H2x100 => "h2-100",
            Scenario::H2Handshake => "h2-handshake",
        }
    }

    /// Whether the clients speak HTTP/2 (TLS with ALPN h2).
    pub fn is_h2(self) -> bool {
        matches!(
            self,
            Scenario::H2 | Scenario::H2x100 | Scenario::H2Handshake
        )
    }
}

const HTTP_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: loadtest\r\n\r\n";
const HTTP_CLOSE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: loadtest\r\nConnection: close\r\n\r\n";
const ECHO: &[u8; 64] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";

/// One load run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where to send the load.
    pub target: SocketAddr,
    /// What to send.
    pub scenario: Scenario,
    /// Connections (over all threads).
    pub connections: usize,
    /// How long.
    pub duration: Duration,
    /// Open loop: requests per second over all connections.
    pub rate: Option<f64>,
    /// Generator threads.
    pub threads: usize,
    /// Show live progress on a terminal.
    pub progress: bool,
}

/// Runs a plan and returns the merged result.
/// (h2load's scenarios go through [`crate::h2load::run_plan`].)
pub fn run(plan: &Plan) -> io::Result<RunResult> {
    let tls = match plan.scenario {
        Scenario::Tls | Scenario::TlsHandshake => Some(client_config()?),
        Scenario::H2Handshake => Some(client_config_h2()?),
        _ => None,
    };
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns = plan.connections / threads + usize::from(t < plan.connections % threads);
        let rate = plan.rate.map(|r| r / threads as f64);
        let (plan, done, tls) = (plan.clone(), done.clone(), tls.clone());
        handles.push(std::thread::spawn(move || {
            Worker::new(&plan, conns, rate, start, deadline, done, tls).and_then(|mut w| w.run())
        }));
    }
    if plan.progress && io::stderr().is_terminal() {
        progress(&done, start, deadline);
    }
    let mut total = RunResult::new();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| io::Error::other("a load thread panicked"))??;
        total.merge(&r);
    }
    Ok(total)
}

/// The TLS client of the tls scenarios: any certificate accepted (both
/// balancers serve a self-signed one), one cipher suite
/// (TLS_AES_128_GCM_SHA256, so both balancers do the same work whatever
/// their preferences), HTTP/1.1 by ALPN, and no session resumption: every
/// `tls-handshake` connection is a full handshake.
pub(crate) fn client_config() -> io::Result<Arc<rustls::ClientConfig>> {
    client_config_alpn(b"http/1.1")
}

/// The same client offering only `h2` by ALPN (`h2-handshake`, `idle
/// --h2`).
pub(crate) fn client_config_h2() -> io::Result<Arc<rustls::ClientConfig>> {
    client_config_alpn(b"h2")
}

fn client_config_alpn(alpn: &[u8]) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut provider = (*moirai::tls::config::provider()).clone();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let verifier = moirai::tls::danger::AcceptAnyServerCert::new(Arc::clone(&provider));
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    c.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(c))
}

fn progress(done: &AtomicU64, start: Instant, deadline: Instant) {
    let total = deadline.saturating_duration_since(start).as_secs_f64();
    let mut last = (start, 0u64);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let n = done.load(Ordering::Relaxed);
        let rate = (n - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, n);
        let elapsed = now.duration_since(start).as_secs_f64().min(total);
        let width = 30;
        let filled = ((elapsed / total) * width as f64) as usize;
        eprint!(
            "\r[{}{}] {elapsed:5.1}/{total:.0} s {rate:>10.0} req/s",
            "#".repeat(filled),
            " ".repeat(width - filled.min(width))
        );
    }
    eprintln!();
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Sending,
    Receiving,
    Idle,
}

struct Conn {
    stream: Option<TcpStream>,
    /// TLS over the stream (the tls scenarios).
    tls: Option<rustls::ClientConnection>,
    /// The HTTP/2 response being read (`h2-handshake`).
    h2: Option<h2client::Response>,
    phase: Phase,
    sent: usize,
    inbuf: Vec<u8>,
    /// Total bytes of the awaited response, once its head is known.
    expect: Option<usize>,
    /// When the request in flight was due.
    intended: Instant,
}

struct Worker {
    plan: Plan,
    poll: Poll,
    conns: Vec<Conn>,
    result: RunResult,
    rate: Option<f64>,
    start: Instant,
    deadline: Instant,
    /// Open loop: due times waiting for a free connection.
    queue: std::collections::VecDeque<Instant>,
    next_due: Instant,
    done: Arc<AtomicU64>,
    /// The TLS client, for the tls scenarios.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Where reads land, reused: a fresh 64 KiB array per read cost a
    /// memset each time, and the generator measured itself.
    rbuf: Vec<u8>,
}

impl Worker {
    fn new(
        plan: &Plan,
        n: usize,
        rate: Option<f64>,
        start: Instant,
        deadline: Instant,
        done: Arc<AtomicU64>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> io::Result<Worker> {
        let conns = (0..n)
            .map(|_| Conn {
                stream: None,
                tls: None,
                h2: None,
                phase: Phase::Idle,
                sent: 0,
                inbuf: Vec::with_capacity(4096),
                expect: None,
                intended: start,
            })
            .collect();
        Ok(Worker {
            plan: plan.clone(),
            poll: Poll::new()?,
            conns,
            result: RunResult::new(),
            rate,
            start,
            deadline,
            queue: std::collections::VecDeque::new(),
            next_due: start,
            done,
            tls,
            rbuf: vec![0; 65536],
        })
    }

    fn run(&mut self) -> io::Result<RunResult> {
        let mut events = Events::with_capacity(1024);
        for i in 0..self.conns.len() {
            self.connect(i, Instant::now());
        }
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                break;
            }
            self.release_due(now);
            let timeout = match self.rate {
                Some(_) => self
                    .next_due
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(5)),
                None => Duration::from_millis(50),
            };
            self.poll
                .poll(&mut events, Some(timeout.min(self.deadline - now)))?;
            let now = Instant::now();
            for ev in events.iter() {
                self.on_ready(ev.token().0, now);
            }
        }
        self.result.elapsed = self.deadline.duration_since(self.start);
        if self.plan.scenario == Scenario::TcpStream {
            // A bulk stream has no requests: count 64 KiB units, so CPU per
            // "request" is CPU per 64 KiB moved, comparable between systems.
            self.result.requests = self.result.bytes_in / 65536;
        }
        Ok(std::mem::take(&mut self.result))
    }

    /// Open loop: queue every request whose time has come, and hand them to
    /// idle connections.
    fn release_due(&mut self, now: Instant) {
        let Some(rate) = self.rate else { return };
        let step = Duration::from_secs_f64(1.0 / rate.max(1e-6));
        while self.next_due <= now {
            self.queue.push_back(self.next_due);
            self.next_due += step;
        }
        for i in 0..self.conns.len() {
            if self.queue.is_empty() {
                break;
            }
            if matches!(self.conns[i].phase, Phase::Idle) && self.conns[i].stream.is_some() {
                let due = self.queue.pop_front().expect("checked non-empty");
                self.begin(i, due, now);
            }
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        match TcpStream::connect(self.plan.target) {
            Ok(mut s) => {
                if self
                    .poll
                    .registry()
                    .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                    .is_err()
                {
                    self.result.error("connect");
                    return;
                }
                let c = &mut self.conns[i];
                c.stream = Some(s);
                c.tls = None;
                c.phase = Phase::Connecting;
                c.inbuf.clear();
                c.expect = None;
                c.sent = 0;
                if self.rate.is_none() {
                    c.intended = now;
                }
            }
            Err(_) => self.result.error("connect"),
        }
    }

    /// Starts the next request on connection `i`, due at `due`.
    fn begin(&mut self, i: usize, due: Instant, now: Instant) {
        let c = &mut self.conns[i];
        c.intended = due;
        c.sent = 0;
        c.inbuf.clear();
        c.expect = None;
        c.phase = Phase::Sending;
        self.on_ready(i, now);
    }

    fn request(&self) -> &'static [u8] {
        match self.plan.scenario {
            Scenario::Http | Scenario::Tls => HTTP_REQUEST,
            Scenario::HttpClose | Scenario::TlsHandshake => HTTP_CLOSE_REQUEST,
            Scenario::TcpEcho | Scenario::TcpClose => ECHO,
            Scenario::H2Handshake => h2client::request(),
            _ => b"",
        }
    }

    fn fail(&mut self, i: usize, kind: &'static str, now: Instant) {
        self.result.error(kind);
        self.conns[i].stream = None;
        self.conns[i].tls = None;
        if now < self.deadline {
            self.connect(i, now);
        }
    }

    fn on_ready(&mut self, i: usize, now: Instant) {
        let scenario = self.plan.scenario;
        let req = self.request();
        let closing = matches!(scenario, Scenario::HttpClose | Scenario::TlsHandshake);
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            // Records rustls could not hand over yet (a full socket).
            if let Some(tls) = c.tls.as_mut() {
                if tls_flush(stream, tls).is_err() {
                    return self.fail(i, "write", now);
                }
            }
            match c.phase {
                Phase::Connecting => match stream.peer_addr() {
                    Ok(_) => {
                        let _ = stream.set_nodelay(true);
                        if let Some(cfg) = &self.tls {
                            let name = rustls::pki_types::ServerName::try_from("loadtest")
                                .expect("a valid name");
                            match rustls::ClientConnection::new(Arc::clone(cfg), name) {
                                Ok(t) => c.tls = Some(t),
                                Err(_) => return self.fail(i, "tls", now),
                            }
                        }
                        if scenario == Scenario::H2Handshake {
                            c.h2 = Some(h2client::Response::new());
                        }
                        if scenario == Scenario::TcpStream {
                            c.phase = Phase::Receiving;
                        } else if self.rate.is_some() {
                            // Open loop: take a due request, or wait for one.
                            match self.queue.pop_front() {
                                Some(due) => {
                                    c.intended = due;
                                    c.phase = Phase::Sending;
                                }
                                None => c.phase = Phase::Idle,
                            }
                        } else {
                            c.phase = Phase::Sending;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        if let Ok(Some(_)) | Err(_) = stream.take_error() {
                            return self.fail(i, "connect", now);
                        }
                        return;
                    }
                    Err(_) => return self.fail(i, "connect", now),
                },
                Phase::Sending => match send(stream, c.tls.as_mut(), &req[c.sent..]) {
                    Ok(n) => {
                        c.sent += n;
                        self.result.bytes_out += n as u64;
                        if c.sent == req.len() {
                            c.phase = Phase::Receiving;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => return self.fail(i, "write", now),
                },
                Phase::Receiving => {
                    match recv(stream, c.tls.as_mut(), &mut self.rbuf) {
                        Ok(0) => {
                            if closing
                                && c.expect.is_none()
                                && c.inbuf.windows(4).any(|w| w == b"\r\n\r\n")
                            {
                                // Close-delimited response: the close ends it.
                                self.complete(i, now);
                                return;
                            }
                            return self.fail(i, "closed", now);
                        }
                        Ok(n) => {
                            self.result.bytes_in += n as u64;
                            if scenario == Scenario::TcpStream {
                                continue;
                            }
                            c.inbuf.extend_from_slice(&self.rbuf[..n]);
                            match self.response_complete(i) {
                                Ok(true) => {
                                    self.complete(i, now);
                                    if !matches!(self.conns[i].phase, Phase::Sending) {
                                        return;
                                    }
                                }
                                Ok(false) => {}
                                Err(kind) => return self.fail(i, kind, now),
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            return self.fail(i, "tls", now)
                        }
                        Err(_) => return self.fail(i, "read", now),
                    }
                }
                Phase::Idle => return,
            }
        }
    }

    /// Whether the bytes read so far hold the whole response.
    fn response_complete(&mut self, i: usize) -> Result<bool, &'static str> {
        let c = &mut self.conns[i];
        if matches!(self.plan.scenario, Scenario::TcpEcho | Scenario::TcpClose) {
            return Ok(c.inbuf.len() >= ECHO.len());
        }
        if self.plan.scenario == Scenario::H2Handshake {
            let (Some(tls), Some(h2)) = (c.tls.as_mut(), c.h2.as_mut()) else {
                return Err("tls");
            };
            if tls.alpn_protocol() != Some(b"h2") {
                return Err("alpn");
            }
            let mut answer = Vec::new();
            let done = h2.feed(&mut c.inbuf, &mut answer)?;
            if !answer.is_empty() {
                // Flushed at the top of the next round, or on the way out.
                tls.writer().write_all(&answer).map_err(|_| "write")?;
            }
            return Ok(done);
        }
        if c.expect.is_none() {
            let Some(end) = c.inbuf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return if c.inbuf.len() > 65536 {
                    Err("bad_response")
                } else {
                    Ok(false)
                };
            };
            let head = &c.inbuf[..end];
            let status = head
                .get(9..12)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse::<u16>().ok());
            match status {
                Some(200..=399) => {}
                Some(400..=499) => return Err("status_4xx"),
                Some(_) => return Err("status_5xx"),
                None => return Err("bad_response"),
            }
            let cl = head.split(|&b| b == b'\n').find_map(|l| {
                let l = std::str::from_utf8(l).ok()?;
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            match cl {
                Some(n) => c.expect = Some(end + 4 + n),
                None if matches!(
                    self.plan.scenario,
                    Scenario::HttpClose | Scenario::TlsHandshake
                ) =>
                {
                    return Ok(false)
                }
                None => return Err("bad_response"),
            }
        }
        Ok(c.expect.is_some_and(|n| c.inbuf.len() >= n))
    }

    fn complete(&mut self, i: usize, now: Instant) {
        let intended = self.conns[i].intended;
        stats::record(&mut self.result.latency, intended, now);
        self.result.requests += 1;
        self.done.fetch_add(1, Ordering::Relaxed);
        if matches!(
            self.plan.scenario,
            Scenario::HttpClose
                | Scenario::TcpClose
                | Scenario::TlsHandshake
                | Scenario::H2Handshake
        ) {
            let c = &mut self.conns[i];
            if let (Some(stream), Some(tls)) = (c.stream.as_mut(), c.tls.as_mut()) {
                if self.plan.scenario == Scenario::H2Handshake {
                    // Ends as h2load ends a connection: GOAWAY, then
                    // close_notify, then the FIN.
                    let _ = tls.writer().write_all(&h2client::goodbye());
                    tls.send_close_notify();
                    let _ = tls_flush(stream, tls);
                }
            }
            self.conns[i].stream = None;
            self.conns[i].tls = None;
            self.conns[i].h2 = None;
            if now < self.deadline {
                self.connect(i, now);
            }
            return;
        }
        let c = &mut self.conns[i];
        c.inbuf.clear();
        c.expect = None;
        c.sent = 0;
        match self.rate {
            None => {
                c.intended = now;
                c.phase = Phase::Sending;
            }
            Some(_) => match self.queue.pop_front() {
                Some(due) => {
                    c.intended = due;
                    c.phase = Phase::Sending;
                }
                None => c.phase = Phase::Idle,
            },
        }
    }
}

/// Writes `data`, through TLS when there is one: plaintext goes into
/// rustls (which holds it until the handshake is done) and its records to
/// the socket as far as it takes them.
fn send(
    stream: &mut TcpStream,
    tls: Option<&mut rustls::ClientConnection>,
    data: &[u8],
) -> io::Result<usize> {
    let Some(tls) = tls else {
        return stream.write(data);
    };
    let n = tls.writer().write(data)?;
    tls_flush(stream, tls)?;
    Ok(n)
}

/// Reads plaintext, through TLS when there is one, with a socket's
/// contract: `Ok(0)` at the end, `WouldBlock` when nothing is there, and
/// `InvalidData` for a TLS failure. Handshake records are answered on the
/// way.
fn recv(
    stream: &mut TcpStream,
    tls: Option<&mut rustls::ClientConnection>,
    buf: &mut [u8],
) -> io::Result<usize> {
    let Some(tls) = tls else {
        return stream.read(buf);
    };
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        match tls.read_tls(stream) {
            Ok(0) => return Ok(0),
            Ok(_) => {
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                tls_flush(stream, tls)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes waiting TLS records until none are left or the socket is full.
fn tls_flush(stream: &mut TcpStream, tls: &mut rustls::ClientConnection) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
