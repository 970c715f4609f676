//! Differential: no message boundary moirai did not see.
//!
//! A byte stream (requests from a client, or responses from a backend)
//! goes through moirai's real forwarding code: the head parsers,
//! `head_slices` with the lines moirai injects, and `body::relay` (the loop
//! the engine runs) with reads and writes cut at fuzzer-chosen places. What
//! comes out is parsed again by two independent reference parsers written
//! here:
//! - a strict one (RFC 9112: CRLF only, exact chunk grammar);
//! - a lenient one, as nginx and Node are (a bare LF ends a line, junk after
//!   a chunk size is skipped, trailers end at any empty line).
//!
//! Both must find exactly the messages moirai completed, in order and with
//! the same ends, and at most the one message moirai was still in when it
//! stopped (unfinished, never complete): a peer behind or in front of
//! moirai never sees a message that moirai did not see as one.
#![no_main]

use std::io::IoSlice;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use moirai::proto::http1::body::{relay, Body, Framing, RelayError};
use moirai::proto::http1::{head_slices, request, response, MAX_SLICES};

#[derive(Arbitrary, Debug)]
struct Input {
    responses: bool,
    /// Sizes of the reads that deliver the stream (cycled; 0 counts as 1).
    reads: Vec<u8>,
    /// Sizes the writer accepts per call (cycled; 0 counts as 1).
    writes: Vec<u8>,
    pieces: Vec<Piece>,
}

/// The stream is built from pieces likely to matter, plus raw bytes.
#[derive(Arbitrary, Debug)]
enum Piece {
    Raw(Vec<u8>),
    RequestLine(u8),
    StatusLine(u8),
    Header(u8, u8),
    EndHead,
    ChunkSize(u16, u8),
    Data(u8),
    Crlf,
    Lf,
    Cr,
    Trailer(u8),
}

const HEADERS: [&str; 12] = [
    "Host: x",
    "Content-Length: 5",
    "Content-Length: 5, 5",
    "Content-Length: 0",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip, chunked",
    "Connection: close",
    "Connection: keep-alive",
    "X-Forwarded-For: 10.0.0.1",
    "Cookie: a=b",
    "Upgrade: websocket",
    "Expect: 100-continue",
];

fn build(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces.iter().take(64) {
        match p {
            Piece::Raw(b) => out.extend(b.iter().take(64)),
            Piece::RequestLine(m) => out.extend_from_slice(
                [
                    &b"GET / HTTP/1.1\r\n"[..],
                    b"POST /p HTTP/1.1\r\n",
                    b"HEAD /h HTTP/1.1\r\n",
                    b"GET /smuggled HTTP/1.1\r\n",
                    b"PUT /u HTTP/1.0\r\n",
                ][usize::from(*m) % 5],
            ),
            Piece::StatusLine(c) => out.extend_from_slice(
                [
                    &b"HTTP/1.1 200 OK\r\n"[..],
                    b"HTTP/1.1 100 Continue\r\n",
                    b"HTTP/1.1 204 No Content\r\n",
                    b"HTTP/1.1 304 Not Modified\r\n",
                    b"HTTP/1.0 200 OK\r\n",
                ][usize::from(*c) % 5],
            ),
            Piece::Header(h, ending) => {
                out.extend_from_slice(HEADERS[usize::from(*h) % HEADERS.len()].as_bytes());
                out.extend_from_slice(if ending % 8 == 0 { b"\n" } else { b"\r\n" });
            }
            Piece::EndHead => out.extend_from_slice(b"\r\n"),
            Piece::ChunkSize(n, style) => {
                let n = n % 40;
                let s = match style % 6 {
                    0 => format!("{n:x}\r\n"),
                    1 => format!("{n:X};ext=v\r\n"),
                    2 => format!("{n:x} ; q=\"a\\\"b\"\r\n"),
                    3 => format!("{n:x} junk\r\n"),
                    4 => format!("{n:x}\n"),
                    _ => format!("0{n:x};\r\n"),
                };
                out.extend_from_slice(s.as_bytes());
            }
            Piece::Data(n) => out.extend(std::iter::repeat_n(b'd', usize::from(*n % 40))),
            Piece::Crlf => out.extend_from_slice(b"\r\n"),
            Piece::Lf => out.push(b'\n'),
            Piece::Cr => out.push(b'\r'),
            Piece::Trailer(t) => out.extend_from_slice(
                [
                    &b"X-T: 1\r\n"[..],
                    b"X-T: 1\n",
                    b"nocolon\r\n",
                    b" folded\r\n",
                    b"X-T: a\x00b\r\n",
                    b"Content-Length: 9\r\n",
                ][usize::from(*t) % 6],
            ),
        }
    }
    out
}

/// What moirai forwarded, and where each message it completed ends.
struct Forwarded {
    out: Vec<u8>,
    ends: Vec<usize>,
    /// A message was begun (head forwarded) and not completed.
    open: bool,
    /// The last complete message switched protocols (or was an upgrade
    /// request): what follows is not HTTP.
    tunnel: bool,
}

struct Cycle<'a> {
    sizes: &'a [u8],
    i: usize,
}

impl Cycle<'_> {
    fn next(&mut self) -> usize {
        let n = self
            .sizes
            .get(self.i % self.sizes.len().max(1))
            .copied()
            .unwrap_or(255);
        self.i += 1;
        usize::from(n).max(1)
    }
}

/// Runs the stream through moirai's code, as the engine does.
fn moirai_forward(stream: &[u8], responses: bool, reads: &[u8], writes: &[u8]) -> Forwarded {
    let mut reads = Cycle { sizes: reads, i: 0 };
    let mut writes = Cycle {
        sizes: writes,
        i: 0,
    };
    let mut f = Forwarded {
        out: Vec::new(),
        ends: Vec::new(),
        open: false,
        tunnel: false,
    };
    let mut pos = 0; // start of unconsumed input
    let mut avail = reads.next().min(stream.len()); // bytes "read" so far
    let (mut drop, mut inject) = (Vec::new(), Vec::new());
    let fwd: &[u8] =
        b"X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n";
    let more = |avail: &mut usize, reads: &mut Cycle<'_>| -> bool {
        if *avail == stream.len() {
            return false;
        }
        *avail = (*avail + reads.next()).min(stream.len());
        true
    };
    loop {
        // A head, from what has arrived.
        let buf = &stream[pos..avail];
        let (head_len, end_of_fields, framing, switch) = if responses {
            let blank = request::leading_empty_lines(buf);
            if blank > 0 {
                pos += blank;
                continue;
            }
            match response::parse(buf, false, &mut drop) {
                Ok(Some(h)) => {
                    inject.clear();
                    if let Some(n) = h.length_rewritten {
                        inject.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
                    }
                    (h.head_len, h.end_of_fields, h.framing, h.is_switch())
                }
                Ok(None) if more(&mut avail, &mut reads) => continue,
                _ => return f,
            }
        } else {
            let blank = request::leading_empty_lines(buf);
            if blank > 0 {
                pos += blank;
                continue;
            }
            match request::parse(buf, &mut drop, &mut inject) {
                Ok(Some(h)) => (h.head_len, h.end_of_fields, h.framing, h.upgrade.is_some()),
                Ok(None) if more(&mut avail, &mut reads) => continue,
                _ => return f,
            }
        };
        let mut body = Body::new(framing);
        // The engine checks the buffered body before the head goes out.
        if body.check(&stream[pos + head_len..avail]).is_err() {
            return f;
        }
        let conn: &[u8] = match (responses, switch) {
            (true, _) => b"",
            (false, true) => b"Connection: upgrade\r\n",
            (false, false) => b"Connection: keep-alive\r\n",
        };
        let injects: [&[u8]; 3] = [&inject, if responses { b"" } else { fwd }, conn];
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = head_slices(
            &stream[pos..pos + end_of_fields],
            &drop,
            &injects,
            0,
            &mut slices,
        );
        for s in &slices[..n] {
            f.out.extend_from_slice(s);
        }
        f.open = true;
        pos += head_len;
        if switch {
            f.ends.push(f.out.len());
            f.open = false;
            f.tunnel = true;
            return f;
        }
        // The body, through the engine's loop, reads and writes cut short.
        loop {
            let mut budget = writes.next();
            let r = relay(&mut body, &stream[pos..avail], |s: &[IoSlice<'_>]| {
                // A socket that took its fill would block, never say 0.
                if budget == 0 {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                let mut n = 0;
                for sl in s {
                    let take = sl.len().min(budget - n);
                    f.out.extend_from_slice(&sl[..take]);
                    n += take;
                    if n == budget {
                        break;
                    }
                }
                budget -= n;
                Ok(n)
            });
            match r {
                Ok(r) => {
                    pos += r.consumed;
                    if body.is_done() {
                        break;
                    }
                    if r.blocked || r.written > 0 || r.consumed > 0 {
                        continue;
                    }
                    if !more(&mut avail, &mut reads) {
                        // The sender closed: the end of a close-delimited
                        // body, or a message cut short.
                        if body.until_close() {
                            f.ends.push(f.out.len());
                            f.open = false;
                        }
                        return f;
                    }
                }
                Err(RelayError::Framing(_)) => return f,
                Err(RelayError::Write(e)) => panic!("test writer failed: {e}"),
            }
        }
        f.ends.push(f.out.len());
        f.open = false;
    }
}

/// How a reference parser reads lines and chunks.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Strict,
    Lenient,
}

/// A line at `at`: its content and the offset after its end; an error
/// says the line is not complete yet (`Unfinished`) or, strictly, ends
/// badly (`Error`).
fn line(b: &[u8], at: usize, mode: Mode) -> Result<(&[u8], usize), Tail> {
    let rest = &b[at..];
    let lf = rest
        .iter()
        .position(|&c| c == b'\n')
        .ok_or(Tail::Unfinished)?;
    let content = &rest[..lf];
    match mode {
        Mode::Strict => {
            if !content.ends_with(b"\r") || content[..content.len() - 1].contains(&b'\r') {
                return Err(Tail::Error);
            }
            Ok((&content[..content.len() - 1], at + lf + 1))
        }
        Mode::Lenient => Ok((content.strip_suffix(b"\r").unwrap_or(content), at + lf + 1)),
    }
}

#[derive(Debug, PartialEq)]
enum Parsed {
    /// Complete messages' ends.
    Ends(Vec<usize>, Tail),
}

#[derive(Debug, PartialEq)]
enum Tail {
    /// Nothing after the last message.
    Clean,
    /// An unfinished message (or bytes that are not yet one).
    Unfinished,
    /// The stream stops being HTTP (after a 101 or an upgrade).
    Tunnel,
    /// Bytes this parser calls an error (a 400 for the peer).
    Error,
}

/// Parses `b` as HTTP/1.1 messages the way a peer would.
fn reference(b: &[u8], responses: bool, mode: Mode) -> Parsed {
    let mut ends = Vec::new();
    let tail = messages(b, responses, mode, &mut ends).unwrap_or_else(|t| t);
    Parsed::Ends(ends, tail)
}

/// The messages of `b`, their ends pushed to `ends`; how the stream ends
/// (`Err` for a message cut short or refused).
fn messages(b: &[u8], responses: bool, mode: Mode, ends: &mut Vec<usize>) -> Result<Tail, Tail> {
    let mut at = 0;
    loop {
        if at == b.len() {
            return Ok(Tail::Clean);
        }
        // Start line.
        let (start, mut next) = line(b, at, mode)?;
        let status = responses
            .then(|| {
                start
                    .get(9..12)
                    .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok())
            })
            .flatten();
        if start.is_empty() {
            // A peer may skip it; moirai must never send one.
            return Err(Tail::Error);
        }
        let http11 = start.ends_with(b"HTTP/1.1");
        let mut length: Option<u64> = None;
        let mut te: Option<Vec<u8>> = None;
        let mut upgrade = (false, false);
        loop {
            let (l, n) = line(b, next, mode)?;
            next = n;
            if l.is_empty() {
                break;
            }
            let Some(colon) = l.iter().position(|&c| c == b':') else {
                return Err(Tail::Error);
            };
            let name = std::str::from_utf8(&l[..colon])
                .unwrap_or("")
                .to_ascii_lowercase();
            let value = l[colon + 1..].trim_ascii();
            match name.as_str() {
                "content-length" => {
                    let Some(v) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
                    else {
                        return Err(Tail::Error);
                    };
                    if length.is_some() {
                        return Err(Tail::Error);
                    }
                    length = Some(v);
                }
                "transfer-encoding" => {
                    let mut t = te.take().unwrap_or_default();
                    if !t.is_empty() {
                        t.push(b',');
                    }
                    t.extend_from_slice(value);
                    te = Some(t);
                }
                "connection" => {
                    upgrade.0 |= value
                        .to_ascii_lowercase()
                        .windows(7)
                        .any(|w| w == b"upgrade")
                }
                "upgrade" => upgrade.1 = true,
                _ => {}
            }
        }
        let chunked = te.as_ref().map(|t| {
            t.rsplit(|&c| c == b',')
                .next()
                .unwrap_or(&[])
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        });
        if chunked.is_some() && length.is_some() {
            return Err(Tail::Error);
        }
        let framing = match status {
            Some(c) if (100..200).contains(&c) || c == 204 || c == 304 => Framing::None,
            _ => match (chunked, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) if !responses => return Err(Tail::Error),
                (Some(false), _) => Framing::UntilClose,
                (None, Some(n)) => Framing::Length(n),
                (None, None) if responses => Framing::UntilClose,
                (None, None) => Framing::None,
            },
        };
        at = next;
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                if ((b.len() - at) as u64) < n {
                    return Err(Tail::Unfinished);
                }
                at += n as usize;
            }
            Framing::UntilClose => {
                ends.push(b.len());
                return Ok(Tail::Clean);
            }
            Framing::Chunked => loop {
                let (l, n) = line(b, at, mode)?;
                let digits = l.iter().take_while(|c| c.is_ascii_hexdigit()).count();
                if digits == 0 || digits > 16 {
                    return Err(Tail::Error);
                }
                if matches!(mode, Mode::Strict) && digits != l.len() && l[digits] != b';' {
                    return Err(Tail::Error);
                }
                let size =
                    u64::from_str_radix(std::str::from_utf8(&l[..digits]).unwrap_or("0"), 16)
                        .unwrap_or(0);
                at = n;
                if size == 0 {
                    // Trailers, to an empty line.
                    loop {
                        let (l, n) = line(b, at, mode)?;
                        at = n;
                        if l.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                if ((b.len() - at) as u64) < size {
                    return Err(Tail::Unfinished);
                }
                at += size as usize;
                match line(b, at, mode)? {
                    (l, n) if l.is_empty() => at = n,
                    _ => return Err(Tail::Error),
                }
            },
        }
        ends.push(at);
        let switched = status == Some(101) || (!responses && http11 && upgrade.0 && upgrade.1);
        if switched {
            return Ok(Tail::Tunnel);
        }
    }
}

fuzz_target!(|i: Input| {
    let stream = build(&i.pieces);
    let f = moirai_forward(&stream, i.responses, &i.reads, &i.writes);
    for mode in [Mode::Strict, Mode::Lenient] {
        let Parsed::Ends(ends, tail) = reference(&f.out, i.responses, mode);
        assert_eq!(
            ends,
            f.ends,
            "{mode:?} parser's messages differ from moirai's in {:?}",
            String::from_utf8_lossy(&f.out)
        );
        let expected = if f.tunnel {
            Tail::Tunnel
        } else if f.open {
            Tail::Unfinished
        } else {
            Tail::Clean
        };
        assert_eq!(
            tail,
            expected,
            "{mode:?} parser's end differs in {:?}",
            String::from_utf8_lossy(&f.out)
        );
    }
});
