//! Backends for measurements: one mio thread, no allocation per request,
//! so the backend is never what a benchmark measures.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::Kind;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    close_after: bool,
    proxy_checked: bool,
}

/// Serves `kind` on `listen` until killed.
pub fn run(
    listen: SocketAddr,
    kind: Kind,
    body_size: usize,
    body: Option<String>,
    report_proxy: bool,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let response = {
        let body = body.map_or_else(|| vec![b'x'; body_size], String::into_bytes);
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body);
        r
    };
    let stream_chunk = vec![b's'; 64 * 1024];
    eprintln!("loadtest backend: {kind:?} on {}", listener.local_addr()?);
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            entry.insert(Conn {
                                stream,
                                inbuf: Vec::with_capacity(4096),
                                out: Vec::new(),
                                sent: 0,
                                close_after: false,
                                proxy_checked: !report_proxy,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            let done = serve(c, kind, &response, &stream_chunk).unwrap_or(true);
            if done {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

/// Reads and writes until blocked; true when the connection is finished.
fn serve(c: &mut Conn, kind: Kind, response: &[u8], chunk: &[u8]) -> io::Result<bool> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let mut progress = false;
        // Flush pending output first.
        while c.sent < c.out.len() {
            match c.stream.write(&c.out[c.sent..]) {
                Ok(n) => {
                    c.sent += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Ok(true),
            }
        }
        if c.sent == c.out.len() {
            c.out.clear();
            c.sent = 0;
            if c.close_after {
                return Ok(true);
            }
        }
        if kind == Kind::Source && c.out.is_empty() {
            match c.stream.write(chunk) {
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Ok(true),
            }
        }
        if !c.out.is_empty() && kind != Kind::Source {
            // Backpressure: read no more until the output drains.
            if !progress {
                return Ok(false);
            }
            continue;
        }
        match c.stream.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                let mut data = &buf[..n];
                if !c.proxy_checked {
                    c.inbuf.extend_from_slice(data);
                    if c.inbuf.len() < 16 {
                        continue;
                    }
                    c.proxy_checked = true;
                    match moirai::proto::proxy_v2::decode(&c.inbuf) {
                        Some((src, dst, len)) => {
                            println!("PROXY v2 src={src} dst={dst}");
                            c.inbuf.drain(..len);
                        }
                        None => println!("PROXY v2 header missing"),
                    }
                    let rest = std::mem::take(&mut c.inbuf);
                    handle(c, kind, &rest, response);
                    data = &[];
                }
                handle(c, kind, data, response);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !progress {
                    return Ok(false);
                }
            }
            Err(_) => return Ok(true),
        }
    }
}

fn handle(c: &mut Conn, kind: Kind, data: &[u8], response: &[u8]) {
    match kind {
        Kind::Echo => c.out.extend_from_slice(data),
        Kind::Sink | Kind::Source => {}
        Kind::Http => {
            c.inbuf.extend_from_slice(data);
            // Answer every complete request head (pipelining included).
            while let Some(end) = c.inbuf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = &c.inbuf[..end];
                let close = head
                    .split(|&b| b == b'\n')
                    .any(|l| l.to_ascii_lowercase().starts_with(b"connection: close"));
                c.out.extend_from_slice(response);
                c.inbuf.drain(..end + 4);
                if close {
                    c.close_after = true;
                    c.inbuf.clear();
                    break;
                }
            }
        }
    }
}
