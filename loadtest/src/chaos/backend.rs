//! The chaos soak's backend process (`loadtest chaos-backend`).
//!
//! The soak SIGKILLs and restarts these on purpose, so a backend holds no
//! state that matters: every answer is computed from the request alone.
//! Blocking std::net and one thread per connection: the soak's rates are a
//! few hundred per second, and a backend that is obviously right matters
//! more here than one that is fast (that is `loadtest backend`).
//!
//! Kinds:
//! - `http`: HTTP/1.1 with keep-alive; each answer names the backend and
//!   echoes the method, path, body length and CRC-32 of the body, so the
//!   soak can check that what arrived is what it sent. Special paths:
//!   `/health`, `/big?n=`, `/slow?ms=`, and WebSocket upgrades (then a raw
//!   echo).
//! - `echo`: the name, then everything read, back.
//! - `proxy-echo`: like `echo`, after a PROXY protocol v2 header whose
//!   source it reports.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::ValueEnum;
use moirai::proto::proxy_v2;

/// What a chaos backend does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// HTTP/1.1 with keep-alive, echoing what each request carried.
    Http,
    /// Writes its name, then echoes every byte.
    Echo,
    /// Expects a PROXY v2 header; writes its name and the client's address,
    /// then echoes.
    ProxyEcho,
}

/// One backend's settings, shared by its connection threads.
#[derive(Clone, Debug)]
pub struct Config {
    /// Named in every answer, so the soak sees which backend served it.
    pub name: String,
    pub kind: BackendKind,
    /// While this file exists, `GET /health` answers 503.
    pub health_file: Option<PathBuf>,
}

/// The largest request head read; past it, 431.
const MAX_HEAD: usize = 64 * 1024;
/// The most `/big` sends.
const MAX_BIG: u64 = 256 * 1024 * 1024;
/// The longest `/slow` waits.
const MAX_SLOW_MS: u64 = 30_000;
/// How long `run` retries a bind that finds the address in use.
const BIND_RETRY: Duration = Duration::from_secs(5);
/// Chunk lines and trailer lines longer than this are refused (400).
const MAX_LINE: usize = 8 * 1024;
/// RFC 6455 §1.3: appended to the client's key before hashing.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Binds `listen` and serves until killed.
pub fn run(
    listen: SocketAddr,
    name: String,
    kind: BackendKind,
    health_file: Option<PathBuf>,
) -> io::Result<()> {
    let listener = bind(listen)?;
    serve(
        listener,
        Arc::new(Config {
            name,
            kind,
            health_file,
        }),
    )
}

/// Binds, retrying for a while on AddrInUse: the soak restarts a backend
/// right after SIGKILLing it, and std's listener sets SO_REUSEADDR (so
/// TIME_WAIT is no obstacle), but the killed process's socket can take a
/// moment to be torn down.
fn bind(listen: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + BIND_RETRY;
    loop {
        match TcpListener::bind(listen) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

/// Accepts on `listener` forever, one thread per connection. Returns only
/// on an accept error that retrying cannot cure (the listener is broken).
pub fn serve(listener: TcpListener, cfg: Arc<Config>) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if transient(&e) => {
                // Out of descriptors or memory, or a client that gave up:
                // back off briefly rather than spin, then go on.
                eprintln!("chaos-backend {}: accept: {e}", cfg.name);
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        let conn_cfg = Arc::clone(&cfg);
        let spawned = thread::Builder::new()
            .name("chaos-conn".into())
            .spawn(move || {
                // Small answers (the name line, a status) must not wait for
                // Nagle behind the client's delayed ACK.
                let _ = stream.set_nodelay(true);
                // A connection's errors end that connection only; the peer
                // resetting it is part of the chaos, not worth a line.
                let cfg = conn_cfg;
                let _ = match cfg.kind {
                    BackendKind::Http => http_conn(stream, &cfg),
                    BackendKind::Echo => echo_conn(stream, &cfg),
                    BackendKind::ProxyEcho => proxy_echo_conn(stream, &cfg),
                };
            });
        if let Err(e) = spawned {
            // The stream went with the closure and is closed: the client
            // sees a reset, as from an overloaded server.
            eprintln!("chaos-backend {}: spawn: {e}", cfg.name);
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether an accept error is worth retrying.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A stream and the bytes read from it but not yet used: requests can
/// arrive pipelined, and a head's read can take part of the body with it.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    fn new(s: TcpStream) -> Conn {
        Conn {
            s,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
        }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more; Ok(0) at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 16 * 1024, 0);
        let r = loop {
            match self.s.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        self.buf.truncate(old + *r.as_ref().unwrap_or(&0));
        r
    }

    /// Like `fill`, but EOF is an error: the peer left mid-message.
    fn fill_some(&mut self) -> io::Result<()> {
        match self.fill()? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }

    /// One CRLF- (or LF-) terminated line, without its terminator.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.avail().iter().position(|&b| b == b'\n') {
                let mut l = self.avail()[..i].to_vec();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                self.consume(i + 1);
                return Ok(l);
            }
            if self.avail().len() > MAX_LINE {
                return Err(bad("line too long"));
            }
            self.fill_some()?;
        }
    }

    /// Consumes exactly `n` body bytes into the checksum.
    fn body(&mut self, mut n: u64, crc: &mut crc32fast::Hasher) -> io::Result<()> {
        while n > 0 {
            if self.avail().is_empty() {
                self.fill_some()?;
            }
            let take = self
                .avail()
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            crc.update(&self.avail()[..take]);
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }
}

/// A framing error in what the client sent: answered with 400. InvalidData
/// never comes from a socket read, so it marks these unambiguously.
fn bad(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// What the handler needs from a request head, owned so the read buffer
/// can move on.
struct Head {
    method: String,
    /// The request target as sent, query included.
    path: String,
    len: usize,
    /// HTTP/1.0: close unless asked to keep alive.
    http10: bool,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    /// Sec-WebSocket-Key, when the head is a WebSocket upgrade.
    ws_key: Option<String>,
}

/// The head at the start of `buf`: Ok(None) while incomplete, Err with the
/// status to answer when it cannot be served.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let mut h = Head {
        method: req.method.unwrap_or_default().to_owned(),
        path: req.path.unwrap_or_default().to_owned(),
        len,
        http10: req.version == Some(0),
        content_length: None,
        chunked: false,
        close: false,
        keep_alive: false,
        expect_continue: false,
        ws_key: None,
    };
    let (mut upgrade_ws, mut conn_upgrade, mut key) = (false, false, None);
    for hd in req.headers.iter() {
        let v = std::str::from_utf8(hd.value).map_err(|_| 400u16)?.trim();
        let tokens = || v.split(',').map(str::trim);
        let name = hd.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = v.parse().map_err(|_| 400u16)?;
            // Two different lengths: the request is ambiguous (RFC 9112
            // §6.3), the stuff of smuggling; refuse it.
            if h.content_length.is_some_and(|m| m != n) {
                return Err(400);
            }
            h.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding of a request (RFC 9112 §6.3);
            // any other body framing cannot be delimited.
            match tokens().next_back() {
                Some(t) if t.eq_ignore_ascii_case("chunked") => h.chunked = true,
                _ => return Err(400),
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for t in tokens() {
                h.close |= t.eq_ignore_ascii_case("close");
                h.keep_alive |= t.eq_ignore_ascii_case("keep-alive");
                conn_upgrade |= t.eq_ignore_ascii_case("upgrade");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_ws |= tokens().any(|t| t.eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(v.to_owned());
        } else if name.eq_ignore_ascii_case("expect") {
            h.expect_continue = v.eq_ignore_ascii_case("100-continue");
        }
    }
    if upgrade_ws && conn_upgrade {
        h.ws_key = key;
    }
    Ok(Some(h))
}

/// Serves HTTP requests on one connection until it closes.
fn http_conn(s: TcpStream, cfg: &Config) -> io::Result<()> {
    let mut c = Conn::new(s);
    loop {
        let head = loop {
            match parse_head(c.avail()) {
                Ok(Some(h)) => break h,
                Ok(None) if c.avail().len() > MAX_HEAD => {
                    return refuse(&mut c.s, 431, "head too large\n");
                }
                Ok(None) => {
                    if c.fill()? == 0 {
                        // EOF between requests is the normal end of a
                        // keep-alive connection; within a head, nothing
                        // can be answered anyway.
                        return Ok(());
                    }
                }
                Err(431) => return refuse(&mut c.s, 431, "head too large\n"),
                Err(_) => return refuse(&mut c.s, 400, "bad request\n"),
            }
        };
        c.consume(head.len);
        if let Some(key) = &head.ws_key {
            return websocket(c, cfg, key);
        }
        let has_body = head.chunked || head.content_length.is_some_and(|n| n > 0);
        if head.expect_continue && has_body && !head.http10 {
            c.s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut crc = crc32fast::Hasher::new();
        let mut body_len = 0u64;
        let read = if head.chunked {
            chunked_body(&mut c, &mut crc).map(|n| body_len = n)
        } else {
            body_len = head.content_length.unwrap_or(0);
            c.body(body_len, &mut crc)
        };
        match read {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return refuse(&mut c.s, 400, "bad body\n");
            }
            Err(e) => return Err(e),
        }
        let close = head.close || (head.http10 && !head.keep_alive);
        respond(&mut c.s, cfg, &head, body_len, crc.finalize(), close)?;
        if close {
            return Ok(());
        }
    }
}

/// Decodes a chunked body into the checksum (RFC 9112 §7.1), trailers
/// read and dropped; returns the decoded length.
fn chunked_body(c: &mut Conn, crc: &mut crc32fast::Hasher) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let line = c.line()?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 15)
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        if size == 0 {
            // Trailer fields, then the empty line that ends the message.
            while !c.line()?.is_empty() {}
            return Ok(total);
        }
        c.body(size, crc)?;
        total += size;
        if !c.line()?.is_empty() {
            return Err(bad("chunk longer than its size"));
        }
    }
}

/// Writes a whole response.
fn write_response(
    s: &mut TcpStream,
    status: u16,
    body: &[u8],
    with_body: bool,
    close: bool,
) -> io::Result<()> {
    let mut out = head_bytes(status, body.len() as u64, close);
    if with_body {
        out.extend_from_slice(body);
    }
    s.write_all(&out)
}

fn head_bytes(status: u16, len: u64, close: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let conn = if close { "Connection: close\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\n{conn}\r\n"
    )
    .into_bytes()
}

/// Answers an unservable request and closes: after a framing error the
/// next request's start is unknown.
fn refuse(s: &mut TcpStream, status: u16, body: &str) -> io::Result<()> {
    write_response(s, status, body.as_bytes(), true, true)?;
    s.shutdown(Shutdown::Write)?;
    // Closing with the client's bytes unread would send a reset, which can
    // overtake the answer in the client's receive queue; read and drop
    // what it still sends, for a little while, first.
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut sink = [0u8; 16 * 1024];
    let mut left: usize = 4 * 1024 * 1024;
    while left > 0 {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

/// The answer to a request whose body has been read.
fn respond(
    s: &mut TcpStream,
    cfg: &Config,
    head: &Head,
    body_len: u64,
    crc: u32,
    close: bool,
) -> io::Result<()> {
    // HEAD gets GET's head without the body: a client reading one would
    // otherwise lose sync.
    let with_body = head.method != "HEAD";
    let get = head.method == "GET" || head.method == "HEAD";
    let (route, query) = head.path.split_once('?').unwrap_or((&head.path, ""));
    match route {
        "/health" if get => {
            let down = cfg.health_file.as_ref().is_some_and(|p| p.exists());
            let (status, body) = if down { (503, "down\n") } else { (200, "up\n") };
            return write_response(s, status, body.as_bytes(), with_body, close);
        }
        "/big" if get => {
            let Some(n) = param(query, "n").filter(|&n| n <= MAX_BIG) else {
                return refuse(s, 400, "n: a byte count up to 268435456\n");
            };
            s.write_all(&head_bytes(200, n, close))?;
            if with_body {
                let chunk = vec![b'b'; 64 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    s.write_all(&chunk[..k])?;
                    left -= k as u64;
                }
            }
            return Ok(());
        }
        "/slow" if get => {
            let Some(ms) = param(query, "ms").filter(|&ms| ms <= MAX_SLOW_MS) else {
                return refuse(s, 400, "ms: milliseconds up to 30000\n");
            };
            thread::sleep(Duration::from_millis(ms));
        }
        _ => {}
    }
    let body = format!(
        "{} {} {} {body_len} {crc:08x}\n",
        cfg.name, head.method, head.path
    );
    write_response(s, 200, body.as_bytes(), with_body, close)
}

/// The value of `key` in a query string, as a number.
fn param(query: &str, key: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// Sec-WebSocket-Accept for a client's key (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{WS_GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Completes an upgrade, then echoes raw bytes: the soak's client sends no
/// WebSocket frames, since the balancer only tunnels them.
fn websocket(mut c: Conn, cfg: &Config, key: &str) -> io::Result<()> {
    let accept = websocket_accept(key);
    let out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n{}\n",
        cfg.name
    );
    c.s.write_all(out.as_bytes())?;
    // Bytes the client sent right behind the head are the tunnel's first.
    let early = c.avail().to_vec();
    echo(&mut c.s, &early)
}

/// Writes `first`, then everything read back, until EOF; then closes the
/// write side so the client sees its echo end.
fn echo(s: &mut TcpStream, first: &[u8]) -> io::Result<()> {
    s.write_all(first)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        s.write_all(&buf[..n])?;
    }
    s.shutdown(Shutdown::Write)
}

fn echo_conn(mut s: TcpStream, cfg: &Config) -> io::Result<()> {
    s.write_all(format!("{}\n", cfg.name).as_bytes())?;
    echo(&mut s, &[])
}

/// PROXY v2 byte 12 (version and command) of a LOCAL header: the
/// balancer's own connection, a health check.
const PROXY_LOCAL: u8 = 0x20;

fn proxy_echo_conn(s: TcpStream, cfg: &Config) -> io::Result<()> {
    let mut c = Conn::new(s);
    // Read the fixed 16 bytes, giving up as soon as what arrived cannot be
    // the signature: a client without the header may send a few bytes and
    // wait for an answer that must be NOPROXY, not silence.
    while c.avail().len() < 16 {
        let n = c.avail().len().min(12);
        if c.avail()[..n] != proxy_v2::SIGNATURE[..n] {
            return no_proxy(&mut c.s);
        }
        if c.fill()? == 0 {
            return no_proxy(&mut c.s);
        }
    }
    let total = 16 + usize::from(u16::from_be_bytes([c.avail()[14], c.avail()[15]]));
    while c.avail().len() < total {
        if c.fill()? == 0 {
            return no_proxy(&mut c.s);
        }
    }
    if c.avail()[..12] == proxy_v2::SIGNATURE && c.avail()[12] == PROXY_LOCAL {
        // The whole header was read, so closing sends FIN, not the reset
        // that unread data would cause (the check would log it).
        return c.s.shutdown(Shutdown::Both);
    }
    let Some((src, _dst, len)) = proxy_v2::decode(c.avail()) else {
        return no_proxy(&mut c.s);
    };
    c.consume(len);
    let first = [format!("{} {src}\n", cfg.name).as_bytes(), c.avail()].concat();
    echo(&mut c.s, &first)
}

fn no_proxy(s: &mut TcpStream) -> io::Result<()> {
    s.write_all(b"NOPROXY\n")?;
    s.shutdown(Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend on an ephemeral port, serving on a detached thread (it
    /// blocks in accept forever; the test process's exit ends it).
    fn start(kind: BackendKind, health_file: Option<PathBuf>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let cfg = Arc::new(Config {
            name: "b1".into(),
            kind,
            health_file,
        });
        thread::spawn(move || serve(l, cfg));
        addr
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Reads one response with a Content-Length: (status, head, body).
    fn response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "EOF in head: {buf:?}");
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let status = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        (status, head, body)
    }

    fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn keep_alive_serves_two_requests_on_one_connection() {
        let mut s = connect(start(BackendKind::Http, None));
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (st, head, body) = response(&mut s);
        assert_eq!(st, 200);
        assert!(head.contains("Content-Type: text/plain\r\n"));
        assert_eq!(body, b"b1 GET /a 0 00000000\n");
        s.write_all(b"GET /b?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (st, head, body) = response(&mut s);
        assert_eq!(st, 200);
        assert!(head.contains("Connection: close\r\n"));
        assert_eq!(body, b"b1 GET /b?x=1 0 00000000\n");
        assert!(read_to_end(&mut s).is_empty(), "closed after close");
    }

    #[test]
    fn content_length_body_is_checksummed() {
        let mut s = connect(start(BackendKind::Http, None));
        let body = b"hello, chaos";
        let req = format!(
            "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // The body in a separate write, and a pipelined request behind it.
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        s.write_all(b"GET /next HTTP/1.1\r\n\r\n").unwrap();
        let want = format!("b1 POST /up 12 {:08x}\n", crc32fast::hash(body));
        assert_eq!(response(&mut s).2, want.as_bytes());
        assert_eq!(response(&mut s).2, b"b1 GET /next 0 00000000\n");
    }

    #[test]
    fn chunked_body_is_decoded_and_trailers_skipped() {
        let mut s = connect(start(BackendKind::Http, None));
        s.write_all(
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n\
              GET /after HTTP/1.1\r\n\r\n",
        )
        .unwrap();
        let want = format!("b1 POST /c 12 {:08x}\n", crc32fast::hash(b"hello, world"));
        assert_eq!(response(&mut s).2, want.as_bytes());
        assert_eq!(response(&mut s).2, b"b1 GET /after 0 00000000\n");
    }

    #[test]
    fn health_follows_the_file() {
        let file = std::env::temp_dir().join(format!("chaos-health-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let mut s = connect(start(BackendKind::Http, Some(file.clone())));
        s.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
        let (st, _, body) = response(&mut s);
        assert_eq!((st, &body[..]), (200, &b"up\n"[..]));
        std::fs::write(&file, b"").unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\n\r\n").unwrap();
        let (st, _, body) = response(&mut s);
        std::fs::remove_file(&file).unwrap();
        assert_eq!((st, &body[..]), (503, &b"down\n"[..]));
    }

    #[test]
    fn big_sends_n_bytes() {
        let mut s = connect(start(BackendKind::Http, None));
        s.write_all(b"GET /big?n=200000 HTTP/1.1\r\n\r\n").unwrap();
        let (st, _, body) = response(&mut s);
        assert_eq!(st, 200);
        assert_eq!(body.len(), 200_000);
        assert!(body.iter().all(|&b| b == b'b'));
    }

    #[test]
    fn slow_waits_then_answers() {
        let mut s = connect(start(BackendKind::Http, None));
        let t = Instant::now();
        s.write_all(b"GET /slow?ms=150 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(response(&mut s).2, b"b1 GET /slow?ms=150 0 00000000\n");
        assert!(t.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn malformed_and_oversized_heads_are_refused() {
        let addr = start(BackendKind::Http, None);
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nbad header\r\n\r\n")
            .unwrap();
        assert!(read_to_end(&mut s).starts_with(b"HTTP/1.1 400 "));
        let mut s = connect(addr);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(70_000));
        s.write_all(big.as_bytes()).unwrap();
        assert!(read_to_end(&mut s).starts_with(b"HTTP/1.1 431 "));
    }

    #[test]
    fn websocket_accept_matches_rfc_6455() {
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn websocket_upgrade_then_raw_echo() {
        let mut s = connect(start(BackendKind::Http, None));
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
              Connection: keep-alive, Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\nearly",
        )
        .unwrap();
        s.write_all(b" late").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let got = String::from_utf8(read_to_end(&mut s)).unwrap();
        assert_eq!(
            got,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nb1\nearly late"
        );
    }

    #[test]
    fn echo_names_itself_then_echoes() {
        let mut s = connect(start(BackendKind::Echo, None));
        s.write_all(b"ping").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut s), b"b1\nping");
    }

    #[test]
    fn proxy_echo_reports_the_source_then_echoes() {
        let addr = start(BackendKind::ProxyEcho, None);
        let h = proxy_v2::encode(
            "192.0.2.7:4242".parse().unwrap(),
            "198.51.100.1:80".parse().unwrap(),
        );
        let mut s = connect(addr);
        // The header split across writes, with payload right behind it.
        s.write_all(&h.as_bytes()[..10]).unwrap();
        thread::sleep(Duration::from_millis(20));
        s.write_all(&[&h.as_bytes()[10..], b"hi"].concat()).unwrap();
        s.write_all(b" there").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut s), b"b1 192.0.2.7:4242\nhi there");
    }

    #[test]
    fn proxy_echo_without_a_header_says_so() {
        let addr = start(BackendKind::ProxyEcho, None);
        // Short and wrong: answered at once, without waiting for 16 bytes.
        let mut s = connect(addr);
        s.write_all(b"hi\n").unwrap();
        assert_eq!(read_to_end(&mut s), b"NOPROXY\n");
        // The right signature but an unknown family.
        let mut s = connect(addr);
        let mut h = proxy_v2::SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
        s.write_all(&h).unwrap();
        assert_eq!(read_to_end(&mut s), b"NOPROXY\n");
    }

    #[test]
    fn proxy_echo_closes_a_local_check_quietly() {
        let mut s = connect(start(BackendKind::ProxyEcho, None));
        s.write_all(&proxy_v2::LOCAL).unwrap();
        assert!(read_to_end(&mut s).is_empty());
    }
}
