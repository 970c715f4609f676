//! The soak's clients: open-loop load on every service (each class at a
//! set rate, on its own threads), every request and connection with a
//! 10 s deadline, every outcome recorded. Misbehaving clients run beside
//! them (`misbehave.rs`); whatever happens to those is theirs.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rng::Rng;

/// How long any one request or connection may take before it has failed.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// One failed request or connection.
#[derive(Debug, Clone)]
pub struct Failure {
    pub service: &'static str,
    pub class: &'static str,
    /// Seconds since the soak started.
    pub start: f64,
    pub end: f64,
    pub cause: String,
    /// The client's port (to find it in the balancer's access log).
    pub local_port: u16,
    pub misbehaving: bool,
}

/// Counts for one client class.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Requests (HTTP) or connections (TCP) that did what they should.
    pub ok: u64,
    pub failed: u64,
    /// Requests on a reused keep-alive connection that the balancer had
    /// closed before answering a byte, sent again on a new connection as
    /// every HTTP client does (RFC 9112 §9.3.1); counted, not failures.
    pub retried: u64,
}

/// What every client thread shares.
pub struct Shared {
    pub t0: Instant,
    pub stop: AtomicBool,
    pub tally: Mutex<BTreeMap<(&'static str, &'static str), Tally>>,
    pub failures: Mutex<Vec<Failure>>,
    pub tls: Arc<rustls::ClientConfig>,
    pub tls_fresh: Arc<rustls::ClientConfig>,
    /// ALPN `h2` only: the HTTP/2 clients'.
    pub tls_h2: Arc<rustls::ClientConfig>,
}

impl Shared {
    pub fn new() -> io::Result<Arc<Shared>> {
        let provider = moirai::tls::config::provider();
        let verifier = moirai::tls::danger::AcceptAnyServerCert::new(Arc::clone(&provider));
        let base = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut fresh = base.clone();
        fresh.resumption = rustls::client::Resumption::disabled();
        let mut h2 = base.clone();
        h2.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(Shared {
            t0: Instant::now(),
            stop: AtomicBool::new(false),
            tally: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(Vec::new()),
            tls: Arc::new(base),
            tls_fresh: Arc::new(fresh),
            tls_h2: Arc::new(h2),
        }))
    }

    pub fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn count(&self, key: (&'static str, &'static str), f: impl FnOnce(&mut Tally)) {
        if let Ok(mut t) = self.tally.lock() {
            f(t.entry(key).or_default());
        }
    }

    pub(super) fn ok(&self, key: (&'static str, &'static str)) {
        self.count(key, |t| t.ok += 1);
    }

    pub(super) fn fail(
        &self,
        key: (&'static str, &'static str),
        start: Instant,
        port: u16,
        cause: String,
        misbehaving: bool,
    ) {
        self.count(key, |t| t.failed += 1);
        let rel = |t: Instant| t.saturating_duration_since(self.t0).as_secs_f64();
        if let Ok(mut f) = self.failures.lock() {
            f.push(Failure {
                service: key.0,
                class: key.1,
                start: rel(start),
                end: self.now(),
                cause,
                local_port: port,
                misbehaving,
            });
        }
    }
}

/// A client connection, plain or TLS.
pub(super) trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

struct Conn {
    io: Box<dyn Io>,
    port: u16,
    /// Requests answered on it so far.
    used: u64,
}

/// Why one attempt failed; `silent` when the peer closed before sending
/// a byte of the answer (what makes a retry on a reused connection safe).
pub(super) struct Fail {
    pub(super) cause: String,
    pub(super) silent: bool,
}

impl Fail {
    pub(super) fn new(cause: impl Into<String>) -> Fail {
        Fail {
            cause: cause.into(),
            silent: false,
        }
    }
}

pub(super) fn io_fail(what: &str, e: &io::Error) -> Fail {
    let cause = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!("{what}: timeout"),
        io::ErrorKind::ConnectionReset => format!("{what}: reset"),
        io::ErrorKind::ConnectionRefused => format!("{what}: refused"),
        io::ErrorKind::BrokenPipe => format!("{what}: broken pipe"),
        _ => format!("{what}: {e}"),
    };
    Fail {
        cause,
        silent: matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        ),
    }
}

pub(super) fn connect(addr: SocketAddr) -> Result<TcpStream, Fail> {
    let s = TcpStream::connect_timeout(&addr, DEADLINE).map_err(|e| io_fail("connect", &e))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(DEADLINE))
        .map_err(|e| io_fail("socket", &e))?;
    s.set_write_timeout(Some(DEADLINE))
        .map_err(|e| io_fail("socket", &e))?;
    Ok(s)
}

fn open(addr: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Conn, Fail> {
    let s = connect(addr)?;
    let port = s.local_addr().map(|a| a.port()).unwrap_or(0);
    let io: Box<dyn Io> = match tls {
        None => Box::new(s),
        Some(cfg) => Box::new(tls_stream(s, cfg)?),
    };
    Ok(Conn { io, port, used: 0 })
}

/// TLS to the soak's balancer over `s`, handshaken now, so that its
/// failures are named as such.
pub(super) fn tls_stream(
    s: TcpStream,
    cfg: &Arc<rustls::ClientConfig>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, Fail> {
    let name = rustls::pki_types::ServerName::try_from(super::world::CERT_NAME)
        .map_err(|e| Fail::new(format!("tls name: {e}")))?;
    let c = rustls::ClientConnection::new(Arc::clone(cfg), name)
        .map_err(|e| Fail::new(format!("tls: {e}")))?;
    let mut t = rustls::StreamOwned::new(c, s);
    while t.conn.is_handshaking() {
        t.conn
            .complete_io(&mut t.sock)
            .map_err(|e| io_fail("tls handshake", &e))?;
    }
    Ok(t)
}

/// A response: status, body, and whether the server will close.
struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

/// Reads one response (Content-Length, chunked or close-delimited).
fn read_response(io: &mut dyn Io, head_request: bool) -> Result<Response, Fail> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return Err(Fail::new("response head too large"));
        }
        match io.read(&mut chunk) {
            Ok(0) => {
                return Err(Fail {
                    cause: if buf.is_empty() {
                        "closed before a response".into()
                    } else {
                        "closed inside the response head".into()
                    },
                    silent: buf.is_empty(),
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A signal (a backend child exiting) is not the peer's doing.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let mut f = io_fail("response", &e);
                f.silent &= buf.is_empty();
                return Err(f);
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Fail::new("bad status line"))?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let close = header("connection:").is_some_and(|v| v.contains("close"));
    let mut body = buf[end + 4..].to_vec();
    if head_request || status == 101 || status == 204 || status == 304 {
        return Ok(Response {
            status,
            body,
            close,
        });
    }
    if let Some(len) = header("content-length:") {
        let len: usize = len.parse().map_err(|_| Fail::new("bad content-length"))?;
        while body.len() < len {
            match io.read(&mut chunk) {
                Ok(0) => return Err(Fail::new("closed inside the body")),
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail("body", &e)),
            }
        }
        if body.len() > len {
            return Err(Fail::new("bytes after the response"));
        }
    } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        // Our backends never chunk, but a balancer may; read to the end.
        while !body.ends_with(b"0\r\n\r\n") {
            match io.read(&mut chunk) {
                Ok(0) => return Err(Fail::new("closed inside a chunked body")),
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail("body", &e)),
            }
        }
    } else {
        loop {
            match io.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail("body", &e)),
            }
        }
        return Ok(Response {
            status,
            body,
            close: true,
        });
    }
    Ok(Response {
        status,
        body,
        close,
    })
}

/// Which backends may answer on a service: the first word of each body.
pub(super) fn from_pool(body: &[u8], pool: &[&str]) -> bool {
    let word = body.split(|&b| b == b' ').next().unwrap_or(b"");
    pool.iter().any(|p| p.as_bytes() == word)
}

/// The `chaos-backend` answer to a request with this body: its name,
/// method, path, body length and CRC-32 (nginx answers name, method and
/// path only).
pub(super) fn body_matches(resp: &[u8], method: &str, path: &str, sent: &[u8]) -> bool {
    let text = String::from_utf8_lossy(resp);
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [_, m, p, len, crc] => {
            *m == method
                && *p == path
                && *len == sent.len().to_string()
                && *crc == format!("{:08x}", crc32fast::hash(sent))
        }
        [_, m, p] => *m == method && *p == path,
        _ => false,
    }
}

/// One service's address and what may answer on it.
#[derive(Clone)]
pub struct Target {
    pub service: &'static str,
    pub addr: SocketAddr,
    pub tls: bool,
    pub pool: &'static [&'static str],
}

/// Runs `f` every `period` (with a seeded phase) until the soak stops;
/// open loop: a late unit does not push the schedule back (a backlog of
/// more than a second is dropped, so one stall never becomes a burst).
pub(super) fn paced(shared: &Shared, period: Duration, rng: &mut Rng, mut f: impl FnMut(&mut Rng)) {
    let phase = Duration::from_secs_f64(period.as_secs_f64() * rng.unit());
    let mut next = Instant::now() + phase;
    while !shared.stopping() {
        let now = Instant::now();
        if next > now {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        f(rng);
        next += period;
        let now = Instant::now();
        if next + Duration::from_secs(1) < now {
            next = now;
        }
    }
}

/// Sends one request on a (kept) connection; a reused connection the
/// balancer closed silently is retried once on a new one.
fn exchange(
    shared: &Shared,
    t: &Target,
    class: &'static str,
    conn: &mut Option<Conn>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    req: &[u8],
    check: impl Fn(&Response) -> Result<(), String>,
) {
    let key = (t.service, class);
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        if conn.is_none() {
            match open(t.addr, tls) {
                Ok(c) => *conn = Some(c),
                Err(f) => {
                    shared.fail(key, start, 0, f.cause, false);
                    return;
                }
            }
        }
        let c = conn.as_mut().expect("just opened");
        let port = c.port;
        let reused = c.used > 0;
        let r =
            c.io.write_all(req)
                .and_then(|()| c.io.flush())
                .map_err(|e| io_fail("request", &e))
                .and_then(|()| read_response(&mut *c.io, false));
        match r {
            Ok(resp) => {
                c.used += 1;
                if resp.close {
                    *conn = None;
                }
                if start.elapsed() > DEADLINE {
                    shared.fail(key, start, port, "past the deadline".into(), false);
                } else {
                    match check(&resp) {
                        Ok(()) => shared.ok(key),
                        Err(why) => {
                            *conn = None;
                            shared.fail(key, start, port, why, false);
                        }
                    }
                }
                return;
            }
            Err(f) => {
                *conn = None;
                if reused && f.silent && attempts == 1 {
                    shared.count(key, |t| t.retried += 1);
                    continue;
                }
                shared.fail(key, start, port, f.cause, false);
                return;
            }
        }
    }
}

fn get(host: &str, path: &str, close: bool) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loadtest-chaos\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

fn ok_from(
    pool: &'static [&'static str],
    method: &'static str,
    path: &'static str,
    sent: Vec<u8>,
) -> impl Fn(&Response) -> Result<(), String> {
    move |r: &Response| {
        if r.status != 200 {
            return Err(format!("status {}", r.status));
        }
        if !from_pool(&r.body, pool) || !body_matches(&r.body, method, path, &sent) {
            return Err(format!(
                "wrong body: {:?}",
                String::from_utf8_lossy(&r.body[..r.body.len().min(80)])
            ));
        }
        Ok(())
    }
}

/// GETs at `rate`: on one kept connection (`keep`) or a new connection
/// each (`Connection: close`); with TLS, with or without session
/// resumption (`resume`).
pub fn requests(
    shared: Arc<Shared>,
    t: Target,
    class: &'static str,
    rate: f64,
    mut rng: Rng,
    keep: bool,
    resume: bool,
) {
    let tls = t.tls.then(|| {
        if resume {
            shared.tls.clone()
        } else {
            shared.tls_fresh.clone()
        }
    });
    let path = if keep { "/ka" } else { "/close" };
    let req = get("lb.cns.test", path, !keep);
    let mut kept = None;
    paced(&shared, period(rate), &mut rng, |_| {
        let mut fresh = None;
        exchange(
            &shared,
            &t,
            class,
            if keep { &mut kept } else { &mut fresh },
            tls.as_ref(),
            &req,
            ok_from(t.pool, "GET", path, Vec::new()),
        );
    });
}

/// POSTs with bodies of 1 to 256 KiB on a kept connection; the answer
/// must carry the body's length and CRC-32 as the backend counted them.
pub fn uploads(shared: Arc<Shared>, t: Target, class: &'static str, rate: f64, mut rng: Rng) {
    let mut conn = None;
    let tls = t.tls.then(|| shared.tls.clone());
    paced(&shared, period(rate), &mut rng, |rng| {
        let len = rng.range(1024, 256 * 1024) as usize;
        let fill = rng.next_u64() as u8;
        let body: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ fill)
            .collect();
        let mut req = format!(
            "POST /upload HTTP/1.1\r\nHost: lb.cns.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        )
        .into_bytes();
        req.extend_from_slice(&body);
        exchange(
            &shared,
            &t,
            class,
            &mut conn,
            tls.as_ref(),
            &req,
            ok_from(t.pool, "POST", "/upload", body),
        );
    });
}

/// A WebSocket-style upgrade held for a few seconds: the backend names
/// itself, then echoes every message sent through the tunnel.
pub fn upgrades(shared: Arc<Shared>, t: Target, class: &'static str, rate: f64, mut rng: Rng) {
    paced(&shared, period(rate), &mut rng, |rng| {
        let key = (t.service, class);
        let start = Instant::now();
        let mut port = 0;
        let r = (|| -> Result<(), Fail> {
            let mut c = open(t.addr, None)?;
            port = c.port;
            let req = "GET /ws HTTP/1.1\r\nHost: lb.cns.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
            c.io.write_all(req.as_bytes())
                .map_err(|e| io_fail("upgrade request", &e))?;
            let resp = read_response(&mut *c.io, false)?;
            // nginx declines the upgrade with an ordinary answer, which
            // must come through as it was.
            if resp.status == 200 && resp.body.starts_with(b"n4 GET /ws") {
                return Ok(());
            }
            if resp.status != 101 {
                return Err(Fail::new(format!("status {}", resp.status)));
            }
            // The backend's name line may have come with the head.
            let mut line = resp.body;
            let mut b = [0u8; 1];
            while !line.ends_with(b"\n") {
                match c.io.read(&mut b) {
                    Ok(0) => return Err(Fail::new("closed before the backend's name")),
                    Ok(_) => line.push(b[0]),
                    Err(e) => return Err(io_fail("tunnel", &e)),
                }
            }
            if !from_pool(line.trim_ascii_end(), t.pool) {
                return Err(Fail::new(format!(
                    "tunnel to {:?}",
                    String::from_utf8_lossy(&line)
                )));
            }
            let messages = rng.range(5, 30);
            for i in 0..messages {
                let msg = format!("message {i} of {messages} {}\n", rng.next_u64());
                c.io.write_all(msg.as_bytes())
                    .map_err(|e| io_fail("tunnel", &e))?;
                let mut back = vec![0u8; msg.len()];
                c.io.read_exact(&mut back)
                    .map_err(|e| io_fail("tunnel echo", &e))?;
                if back != msg.as_bytes() {
                    return Err(Fail::new("tunnel echo differs"));
                }
                std::thread::sleep(Duration::from_millis(100));
                if start.elapsed() > DEADLINE {
                    return Err(Fail::new("past the deadline"));
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => shared.ok(key),
            Err(f) => shared.fail(key, start, port, f.cause, false),
        }
    });
}

/// A TCP connection of `hold` seconds echoing a message every 100 ms; a
/// proxy-v2 target must first name the client's own address.
fn stream_once(
    t: &Target,
    rng: &mut Rng,
    hold: Duration,
    proxy: bool,
    port: &mut u16,
) -> Result<(), Fail> {
    let mut s = connect(t.addr)?;
    let local = s.local_addr().map_err(|e| io_fail("socket", &e))?;
    *port = local.port();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        match s.read(&mut b) {
            Ok(0) => return Err(Fail::new("closed before the backend's banner")),
            Ok(_) => line.push(b[0]),
            Err(e) => return Err(io_fail("banner", &e)),
        }
        if line.len() > 200 {
            return Err(Fail::new("banner too long"));
        }
    }
    let text = String::from_utf8_lossy(&line).trim().to_owned();
    let mut words = text.split(' ');
    let name = words.next().unwrap_or("");
    if !t.pool.contains(&name) {
        return Err(Fail::new(format!("banner {text:?}")));
    }
    if proxy {
        let src = words.next().unwrap_or("");
        if src != local.to_string() {
            return Err(Fail::new(format!(
                "PROXY source {src:?}, client is {local}"
            )));
        }
    }
    let start = Instant::now();
    let mut back = Vec::new();
    loop {
        let msg = format!(
            "{} {}\n",
            rng.next_u64(),
            "x".repeat(rng.range(1, 1024) as usize)
        );
        s.write_all(msg.as_bytes())
            .map_err(|e| io_fail("stream", &e))?;
        back.resize(msg.len(), 0);
        s.read_exact(&mut back)
            .map_err(|e| io_fail("stream echo", &e))?;
        if back != msg.as_bytes() {
            return Err(Fail::new("stream echo differs"));
        }
        if start.elapsed() >= hold {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = s.shutdown(Shutdown::Write);
    match s.read(&mut b) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Fail::new("bytes after the echo")),
        Err(e) => Err(io_fail("stream close", &e)),
    }
}

/// TCP connections: short ones (`hold` 0) or long streams of 3 to 25 s:
/// shorter than the balancer's grace (30 s), which an upgrade or a stop
/// promises an open connection.
pub fn streams(
    shared: Arc<Shared>,
    t: Target,
    class: &'static str,
    rate: f64,
    mut rng: Rng,
    long: bool,
    proxy: bool,
) {
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    paced(&shared, period(rate), &mut rng, |rng| {
        let hold = if long {
            Duration::from_secs(rng.range(3, 26))
        } else {
            Duration::ZERO
        };
        let mut child = rng.fork();
        let (shared2, t2) = (Arc::clone(&shared), t.clone());
        // Each stream on its own thread: a long one must not hold up the
        // schedule (open loop).
        threads.retain(|h| !h.is_finished());
        threads.push(std::thread::spawn(move || {
            let key = (t2.service, class);
            let start = Instant::now();
            let mut port = 0;
            // A long stream's deadline is its hold plus the usual 10 s.
            match stream_once(&t2, &mut child, hold, proxy, &mut port) {
                Ok(()) if start.elapsed() <= hold + DEADLINE => shared2.ok(key),
                Ok(()) => shared2.fail(key, start, port, "past the deadline".into(), false),
                Err(f) => shared2.fail(key, start, port, f.cause, false),
            }
        }));
    });
    for h in threads {
        let _ = h.join();
    }
}

pub(super) fn period(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate.max(0.01))
}
