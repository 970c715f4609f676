//! A small HTTP/1.1 test backend and client, independent of moirai's own
//! parser, so the tests check moirai against a second implementation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the backend received it.
#[derive(Debug, Clone)]
pub struct Req {
    /// The head, as raw text (request line and header lines, CRLFs kept).
    pub head: String,
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Every value of a header (case-insensitive name) in a raw head.
fn header_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
        .collect()
}

impl Req {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        header_values(&self.head, name).into_iter().next()
    }
}

/// What the backend does with a request.
pub enum Reply {
    /// These bytes, then wait for the next request.
    Bytes(Vec<u8>),
    /// These bytes, then echo everything (after a 101).
    ThenEcho(Vec<u8>),
    /// These bytes, then close (close-delimited bodies).
    ThenClose(Vec<u8>),
    /// Never answer.
    Silence,
    /// Close at once.
    Hangup,
}

pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// `200 OK` with a body and its length.
pub fn ok(body: impl AsRef<[u8]>) -> Reply {
    let body = body.as_ref();
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    Reply::Bytes(r)
}

pub struct HttpBackend {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Open connections by number, for kill(); each leaves when it ends,
    /// so a long load does not pile up descriptors.
    conns: Arc<Mutex<std::collections::HashMap<usize, TcpStream>>>,
}

impl HttpBackend {
    pub fn start(
        addr: &str,
        handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    ) -> HttpBackend {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let (a, r, st, c) = (
            accepted.clone(),
            requests.clone(),
            stop.clone(),
            conns.clone(),
        );
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let n = a.fetch_add(1, Ordering::SeqCst);
                        c.lock().unwrap().insert(n, s.try_clone().unwrap());
                        let (h, r, c) = (handler.clone(), r.clone(), c.clone());
                        std::thread::spawn(move || {
                            serve(s, h, r);
                            c.lock().unwrap().remove(&n);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        HttpBackend {
            addr,
            accepted,
            requests,
            stop,
            conns,
        }
    }

    /// Stops listening and cuts every connection.
    pub fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for (_, c) in self.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections open now (the other side has not closed them).
    pub fn open(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(s: TcpStream, handler: Handler, requests: Arc<AtomicUsize>) {
    let end = s.try_clone().unwrap();
    serve_until_done(s, handler, requests);
    // Other handles to this socket are kept for kill(): really close it.
    let _ = end.shutdown(Shutdown::Both);
}

fn serve_until_done(s: TcpStream, handler: Handler, requests: Arc<AtomicUsize>) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let Some(req) = read_request(&mut r) else {
            return;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        match handler(&req) {
            Reply::Bytes(b) => {
                if w.write_all(&b).is_err() {
                    return;
                }
                if close {
                    return;
                }
            }
            Reply::ThenClose(b) => {
                let _ = w.write_all(&b);
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            Reply::ThenEcho(b) => {
                if w.write_all(&b).is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            Reply::Silence => {
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            Reply::Hangup => return,
        }
    }
}

fn read_line(r: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

/// Reads one request (head, then a Content-Length or chunked body).
pub fn read_request(r: &mut impl BufRead) -> Option<Req> {
    let mut head = String::new();
    loop {
        let line = read_line(r)?;
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let first = head.lines().next()?.to_owned();
    let mut parts = first.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut req = Req {
        head,
        method,
        path,
        body: Vec::new(),
    };
    if let Some(n) = req.header("content-length") {
        let mut body = vec![0u8; n.parse().ok()?];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        req.body = read_chunked(r)?;
    }
    Some(req)
}

/// Decodes a chunked body (trailers skipped).
pub fn read_chunked(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            loop {
                if read_line(r)? == "\r\n" {
                    return Some(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..]).ok()?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).ok()?;
    }
}

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        header_values(&self.head, name).into_iter().next()
    }

    pub fn headers(&self, name: &str) -> Vec<String> {
        header_values(&self.head, name)
    }
}

/// Reads one response to a request that was (`head`) or was not HEAD.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> Option<Resp> {
    let mut head = String::new();
    loop {
        let line = read_line(r)?;
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut resp = Resp {
        status,
        head,
        body: Vec::new(),
    };
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(resp);
    }
    if let Some(n) = resp.header("content-length") {
        let mut body = vec![0u8; n.parse().ok()?];
        r.read_exact(&mut body).ok()?;
        resp.body = body;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.body = read_chunked(r)?;
    } else {
        r.read_to_end(&mut resp.body).ok()?;
    }
    Some(resp)
}

/// A client connection with a reader that keeps buffered bytes.
pub struct Client {
    pub w: TcpStream,
    pub r: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = crate::util::connect_within(addr, Duration::from_secs(5));
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    /// A client on a connection made elsewhere.
    pub fn from_stream(s: TcpStream) -> Client {
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    /// Sends a request and reads its response; `None` when either fails
    /// (for peers that may die mid-way).
    pub fn try_exchange(&mut self, bytes: &[u8]) -> Option<Resp> {
        self.w.write_all(bytes).ok()?;
        self.response()
    }

    pub fn response(&mut self) -> Option<Resp> {
        read_response(&mut self.r, false)
    }

    /// Sends a request and reads its response.
    pub fn exchange(&mut self, bytes: &[u8]) -> Option<Resp> {
        self.send(bytes);
        self.response()
    }

    /// Whether the server closed the connection (EOF, or a reset); a read
    /// timeout means it is still open.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.r.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
        }
    }
}

/// `GET path` with a Host header, keep-alive.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}
