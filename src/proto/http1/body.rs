//! Message body framing (RFC 9112 §6, §7.1), without I/O.
//!
//! A [`Body`] says which bytes of a stream belong to the current message
//! and what to write for them. Content-Length and close-delimited bodies
//! pass through as they are. A chunked body is parsed strictly and
//! **re-framed**: the chunk data moves untouched, but every size line, every
//! CRLF and the trailer section the peer receives are written by moirai, so
//! a peer never sees framing that moirai did not itself parse and produce
//! (HAProxy's shape). Whatever odd-but-accepted spelling the sender used
//! (extensions, whitespace), the next hop sees the canonical form.
//!
//! [`relay`] is the one loop that moves a body from a buffer to a writer;
//! the engine calls it with its sockets, the fuzz targets with a `Vec`.

use std::io::{self, IoSlice};

use crate::proto::token::is_tchar;

pub use super::errors::ChunkError;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// Chunk sizes from this one up are refused (2^52, HAProxy 2.6's bound):
/// no honest sender writes a chunk of four petabytes, and a size near
/// 2^64 is where parsers overflow and start to disagree about where the
/// chunk ends.
pub const MAX_CHUNK_SIZE: u64 = 1 << 52;

/// Longest chunk-size line (with extensions) accepted.
const MAX_SIZE_LINE: u32 = 4096;
/// Most trailer bytes accepted (all lines together).
pub const MAX_TRAILERS: u32 = 8192;

/// Where the strict chunked parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading hex digits; `digits` so far.
    Size { digits: u8 },
    /// Whitespace after the size or after an extension: `;` or CR next.
    AfterSize { ext: bool },
    /// After `;`: whitespace, then an extension name.
    ExtName { started: bool },
    /// Whitespace after an extension name: `=`, `;` or CR next.
    AfterExtName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValue,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted value; `escape` after a backslash.
    ExtQuoted { escape: bool },
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// Inside chunk data: `left` bytes to go.
    Data { left: u64 },
    /// Expecting CR after data.
    DataCr,
    /// Expecting LF after data.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// Expecting LF after a trailer line's CR.
    TrailerLf,
    /// Expecting LF after the final CR.
    FinalLf,
    /// The message is complete.
    Done,
}

/// What a framing byte meant for the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emit {
    Nothing,
    /// A size line ended: chunk data of this size follows (0: the last).
    Chunk(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// A byte of a trailer line (copied once the line is known valid).
    Trailer(u8),
    /// A trailer line ended and is valid.
    TrailerEnd,
    /// The final CRLF.
    End,
}

/// The strict chunked parser: bytes in, meaning out. `Copy`, so a caller
/// can check bytes ahead of time without disturbing the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parser {
    phase: Phase,
    size: u64,
    /// Bytes of the current size line, or of all trailers.
    len: u32,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A field-value byte (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB.
fn is_field_byte(b: u8) -> bool {
    is_ws(b) || (0x21..0x7f).contains(&b) || b >= 0x80
}

impl Parser {
    fn new() -> Parser {
        Parser {
            phase: Phase::Size { digits: 0 },
            size: 0,
            len: 0,
        }
    }

    /// A framing byte (never called inside chunk data).
    fn byte(&mut self, b: u8) -> Result<Emit, ChunkError> {
        use Phase::*;
        let size_line = matches!(
            self.phase,
            Size { .. }
                | AfterSize { .. }
                | ExtName { .. }
                | AfterExtName
                | ExtValue
                | ExtToken
                | ExtQuoted { .. }
        );
        if size_line && b == b'\n' {
            // A bare LF ends the line for some parsers and not for others.
            return Err(ChunkError::MissingCrlf);
        }
        if size_line {
            self.len += 1;
            if self.len > MAX_SIZE_LINE {
                return Err(ChunkError::TooLong);
            }
        }
        let mut emit = Emit::Nothing;
        self.phase = match (self.phase, b) {
            (Size { digits }, _) if b.is_ascii_hexdigit() => {
                // 16 hex digits fill 64 bits; leading zeros count too,
                // which no honest sender needs.
                if digits >= 16 || self.size >= MAX_CHUNK_SIZE >> 4 {
                    return Err(ChunkError::SizeTooLarge);
                }
                self.size = (self.size << 4) | u64::from((b as char).to_digit(16).unwrap_or(0));
                Size { digits: digits + 1 }
            }
            (Size { digits: 0 }, _) => return Err(ChunkError::BadSize),
            (Size { .. }, b'\r') => SizeLf,
            (Size { .. }, b';') => ExtName { started: false },
            (Size { .. }, _) if is_ws(b) => AfterSize { ext: false },
            (Size { .. }, _) => return Err(ChunkError::BadSize),
            // BWS before `;` (RFC 9112 §7.1.1), tolerated before CR too.
            (AfterSize { ext }, _) if is_ws(b) => AfterSize { ext },
            (AfterSize { .. }, b';') => ExtName { started: false },
            (AfterSize { .. }, b'\r') => SizeLf,
            (AfterSize { ext: false }, _) => return Err(ChunkError::BadSize),
            (AfterSize { ext: true }, _) => return Err(ChunkError::BadExtension),
            (ExtName { started: false }, _) if is_ws(b) => ExtName { started: false },
            (ExtName { .. }, _) if is_tchar(b) => ExtName { started: true },
            (ExtName { started: true }, _) if is_ws(b) => AfterExtName,
            (ExtName { started: true }, b'=') => ExtValue,
            (ExtName { started: true }, b';') => ExtName { started: false },
            (ExtName { started: true }, b'\r') => SizeLf,
            (ExtName { .. }, _) => return Err(ChunkError::BadExtension),
            (AfterExtName, _) if is_ws(b) => AfterExtName,
            (AfterExtName, b'=') => ExtValue,
            (AfterExtName, b';') => ExtName { started: false },
            (AfterExtName, b'\r') => SizeLf,
            (AfterExtName, _) => return Err(ChunkError::BadExtension),
            (ExtValue, _) if is_ws(b) => ExtValue,
            (ExtValue, b'"') => ExtQuoted { escape: false },
            (ExtValue, _) if is_tchar(b) => ExtToken,
            (ExtValue, _) => return Err(ChunkError::BadExtension),
            (ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtToken, _) if is_ws(b) => AfterSize { ext: true },
            (ExtToken, b';') => ExtName { started: false },
            (ExtToken, b'\r') => SizeLf,
            (ExtToken, _) => return Err(ChunkError::BadExtension),
            // quoted-string (RFC 9110 §5.6.4): qdtext or quoted-pair.
            (ExtQuoted { escape: true }, _) if is_field_byte(b) => ExtQuoted { escape: false },
            (ExtQuoted { escape: false }, b'"') => AfterSize { ext: true },
            (ExtQuoted { escape: false }, b'\\') => ExtQuoted { escape: true },
            (ExtQuoted { escape: false }, _) if is_field_byte(b) => ExtQuoted { escape: false },
            (ExtQuoted { .. }, _) => return Err(ChunkError::BadExtension),
            (SizeLf, b'\n') => {
                self.len = 0;
                emit = Emit::Chunk(self.size);
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data { left: self.size }
                }
            }
            (SizeLf, _) => return Err(ChunkError::MissingCrlf),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => {
                self.size = 0;
                emit = Emit::DataEnd;
                Size { digits: 0 }
            }
            (DataCr | DataLf, _) => return Err(ChunkError::MissingCrlf),
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart, _) if is_tchar(b) => {
                emit = Emit::Trailer(b);
                TrailerName
            }
            // Leading whitespace is obs-fold (or worse); anything else is
            // not a field name.
            (TrailerStart, _) => return Err(ChunkError::BadTrailer),
            (TrailerName, _) if is_tchar(b) => {
                emit = Emit::Trailer(b);
                TrailerName
            }
            (TrailerName, b':') => {
                emit = Emit::Trailer(b);
                TrailerValue
            }
            (TrailerName, _) => return Err(ChunkError::BadTrailer),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_byte(b) => {
                emit = Emit::Trailer(b);
                TrailerValue
            }
            (TrailerValue, _) => return Err(ChunkError::BadTrailer),
            (TrailerLf, b'\n') => {
                emit = Emit::TrailerEnd;
                TrailerStart
            }
            (FinalLf, b'\n') => {
                emit = Emit::End;
                Done
            }
            (TrailerLf | FinalLf, _) => return Err(ChunkError::MissingCrlf),
            (Data { .. } | Done, _) => return Ok(Emit::Nothing),
        };
        if matches!(self.phase, TrailerName | TrailerValue | TrailerLf) {
            self.len += 1;
            if self.len > MAX_TRAILERS {
                return Err(ChunkError::TooLong);
            }
        }
        Ok(emit)
    }
}

/// Room for the framing moirai writes between two pieces of chunk data:
/// the CRLF ending one chunk and the next size line (2 + 16 + 2), or the
/// CRLF, the last chunk and the final CRLF.
const FRAMING_ROOM: usize = 24;

/// The body of one message: which input bytes belong to it, and the bytes
/// to write for them.
#[derive(Debug)]
pub struct Body {
    kind: Kind,
    /// Framing moirai writes (size lines, CRLFs), `frame[at..len]` unsent.
    frame: [u8; FRAMING_ROOM],
    frame_len: u8,
    frame_at: u8,
    /// Validated trailer lines and the final CRLF, written after `frame`
    /// (`trailers[sent..ready]`; bytes after `ready` are a line still being
    /// checked). Empty, and unallocated, for a body without trailers.
    trailers: Vec<u8>,
    trailers_ready: usize,
    trailers_sent: usize,
    /// De-chunked: the chunked input is parsed and checked as ever, but
    /// only its data is written (for an HTTP/1.0 recipient, which must
    /// never see chunked framing; the body then ends at the close).
    strip: bool,
    /// De-chunked, and its trailer lines kept for a front that sends them
    /// its own way (an HTTP/2 stream's HEADERS): `trailers[..ready]`,
    /// never written by [`relay`].
    keep_trailers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Done,
    Length(u64),
    UntilClose,
    Chunked(Parser),
}

impl Body {
    /// The body of a message framed as `framing`.
    pub fn new(framing: Framing) -> Body {
        let kind = match framing {
            Framing::None | Framing::Length(0) => Kind::Done,
            Framing::Length(n) => Kind::Length(n),
            Framing::Chunked => Kind::Chunked(Parser::new()),
            Framing::UntilClose => Kind::UntilClose,
        };
        Body {
            kind,
            frame: [0; FRAMING_ROOM],
            frame_len: 0,
            frame_at: 0,
            trailers: Vec::new(),
            trailers_ready: 0,
            trailers_sent: 0,
            strip: false,
            keep_trailers: false,
        }
    }

    /// The same body written without chunked framing: data only, no size
    /// lines, no trailers (RFC 9112 §7.1: a chunked message for an
    /// HTTP/1.0 recipient is de-chunked and delimited by the close).
    pub fn dechunked(mut self) -> Body {
        self.strip = true;
        self
    }

    /// [`Body::dechunked`], its trailer lines kept (checked as ever, the
    /// forbidden ones dropped) for [`Body::kept_trailers`].
    pub fn dechunked_keeping_trailers(mut self) -> Body {
        self.strip = true;
        self.keep_trailers = true;
        self
    }

    /// The trailer lines a [`Body::dechunked_keeping_trailers`] body
    /// carried (`name: value\r\n` each), once it is done; empty without.
    pub fn kept_trailers(&self) -> &[u8] {
        if self.keep_trailers {
            &self.trailers[..self.trailers_ready]
        } else {
            &[]
        }
    }

    /// The whole body has been parsed and everything for it written.
    pub fn is_done(&self) -> bool {
        let parsed = match self.kind {
            Kind::Done => true,
            Kind::Chunked(p) => p.phase == Phase::Done,
            _ => false,
        };
        parsed
            && self.frame_at == self.frame_len
            && (self.keep_trailers || self.trailers_sent == self.trailers.len())
    }

    /// Every input byte of the body has arrived and been parsed (output
    /// may still be pending): the sender closing now truncates nothing.
    pub fn input_done(&self) -> bool {
        match self.kind {
            Kind::Done => true,
            Kind::Chunked(p) => p.phase == Phase::Done,
            _ => false,
        }
    }

    /// Whether `n` more body bytes complete it (nothing of its framing
    /// left to write): a length-delimited body with `n` bytes to go, or
    /// an empty one. Never for chunked or close-delimited bodies.
    pub fn completes_with(&self, n: usize) -> bool {
        match self.kind {
            Kind::Done => n == 0 && self.is_done(),
            Kind::Length(left) => left == n as u64,
            _ => false,
        }
    }

    /// The body ends only when the sender closes.
    pub fn until_close(&self) -> bool {
        self.kind == Kind::UntilClose
    }

    /// Re-framed (chunked): the output is not the input.
    pub fn is_chunked(&self) -> bool {
        matches!(self.kind, Kind::Chunked(_))
    }

    /// The sender closed: a close-delimited body is complete now.
    pub fn end_at_close(&mut self) {
        if self.kind == Kind::UntilClose {
            self.kind = Kind::Done;
        }
    }

    /// Parses the framing at the front of `input` (never chunk data),
    /// queueing what moirai writes for it, and returns how many input bytes
    /// it consumed. It stops at chunk data, at the end of the body, or when
    /// `input` runs out.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        let Kind::Chunked(mut p) = self.kind else {
            return Ok(0);
        };
        let mut i = 0;
        let r = loop {
            if i == input.len() || matches!(p.phase, Phase::Data { .. } | Phase::Done) {
                break Ok(i);
            }
            match p.byte(input[i]) {
                Ok(e) => self.emit(e),
                Err(e) => break Err(e),
            }
            i += 1;
        };
        self.kind = Kind::Chunked(p);
        r
    }

    /// Checks the framing of `input` (the body as far as it has arrived)
    /// without consuming anything: the error a later [`Body::feed`] would
    /// meet in these bytes, if any.
    pub fn check(&self, input: &[u8]) -> Result<(), ChunkError> {
        let Kind::Chunked(mut p) = self.kind else {
            return Ok(());
        };
        let mut i = 0;
        while i < input.len() && p.phase != Phase::Done {
            if let Phase::Data { left } = p.phase {
                let n = left.min((input.len() - i) as u64);
                i += n as usize;
                p.phase = if n == left {
                    Phase::DataCr
                } else {
                    Phase::Data { left: left - n }
                };
                continue;
            }
            p.byte(input[i])?;
            i += 1;
        }
        Ok(())
    }

    fn push_frame(&mut self, bytes: &[u8]) {
        if self.frame_at == self.frame_len {
            self.frame_at = 0;
            self.frame_len = 0;
        }
        let at = usize::from(self.frame_len);
        // The room is sized for the most framing between two data pieces;
        // data cannot move until earlier framing is written.
        let n = bytes.len().min(FRAMING_ROOM - at);
        debug_assert_eq!(n, bytes.len(), "framing room exceeded");
        self.frame[at..at + n].copy_from_slice(&bytes[..n]);
        self.frame_len += n as u8;
    }

    /// A trailer line is complete: kept (with its CRLF) unless it is one
    /// that never travels in trailers.
    fn end_trailer_line(&mut self) {
        let line = &self.trailers[self.trailers_ready..];
        let name = line.split(|&b| b == b':').next().unwrap_or(&[]);
        if forbidden_trailer(name) {
            self.trailers.truncate(self.trailers_ready);
        } else {
            self.trailers.extend_from_slice(b"\r\n");
            self.trailers_ready = self.trailers.len();
        }
    }

    /// The trailer part of [`Body::emit`] for a de-chunked body that
    /// keeps its trailers: lines checked and collected, no framing.
    fn keep_trailer(&mut self, e: Emit) {
        match e {
            Emit::Trailer(b) => self.trailers.push(b),
            Emit::TrailerEnd => self.end_trailer_line(),
            Emit::End => self.trailers.truncate(self.trailers_ready),
            _ => {}
        }
    }

    fn emit(&mut self, e: Emit) {
        if self.strip {
            if self.keep_trailers {
                self.keep_trailer(e);
            }
            return;
        }
        match e {
            Emit::Nothing => {}
            Emit::Chunk(size) => {
                let mut line = [0u8; 18];
                let n = hex(size, &mut line);
                self.push_frame(&line[..n]);
            }
            Emit::DataEnd => self.push_frame(b"\r\n"),
            Emit::Trailer(b) => self.trailers.push(b),
            Emit::TrailerEnd => self.end_trailer_line(),
            // Without trailers the final CRLF joins the last chunk's
            // line: no allocation for the common case.
            Emit::End if self.trailers_ready == 0 => {
                self.trailers.clear();
                self.push_frame(b"\r\n");
            }
            Emit::End => {
                self.trailers.truncate(self.trailers_ready);
                self.trailers.extend_from_slice(b"\r\n");
                self.trailers_ready = self.trailers.len();
            }
        }
    }

    /// The body bytes of `input` (after what [`Body::feed`] consumed) to
    /// write now, after [`Body::framing`].
    pub fn data<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        let n = match self.kind {
            Kind::Done => 0,
            Kind::Length(left) => left.min(input.len() as u64) as usize,
            Kind::UntilClose => input.len(),
            Kind::Chunked(p) => match p.phase {
                Phase::Data { left } => left.min(input.len() as u64) as usize,
                _ => 0,
            },
        };
        &input[..n]
    }

    /// Framing to write before [`Body::data`]: queued size lines and
    /// CRLFs, then the trailer section once it is checked.
    pub fn framing(&self) -> [&[u8]; 2] {
        // Kept trailers are the front's to send, never written here.
        let trailers = if self.keep_trailers {
            &[][..]
        } else {
            &self.trailers[self.trailers_sent..self.trailers_ready]
        };
        [
            &self.frame[usize::from(self.frame_at)..usize::from(self.frame_len)],
            trailers,
        ]
    }

    /// `n` bytes of `framing()` then `data()` were written; returns how
    /// many of them were input bytes (to consume from the buffer).
    pub fn wrote(&mut self, mut n: usize) -> usize {
        let f = usize::from(self.frame_len - self.frame_at).min(n);
        self.frame_at += f as u8;
        n -= f;
        let t = if self.keep_trailers {
            0
        } else {
            (self.trailers_ready - self.trailers_sent).min(n)
        };
        self.trailers_sent += t;
        n -= t;
        if self.trailers_sent == self.trailers.len() && self.trailers_sent > 0 {
            // Trailers out: keep the allocation for nothing else.
            if let Kind::Chunked(p) = self.kind {
                if p.phase == Phase::Done {
                    self.trailers = Vec::new();
                    self.trailers_sent = 0;
                    self.trailers_ready = 0;
                }
            }
        }
        match &mut self.kind {
            Kind::Done => 0,
            Kind::UntilClose => n,
            Kind::Length(left) => {
                let d = (*left).min(n as u64);
                *left -= d;
                if *left == 0 {
                    self.kind = Kind::Done;
                }
                d as usize
            }
            Kind::Chunked(p) => match p.phase {
                Phase::Data { left } => {
                    let d = left.min(n as u64);
                    p.phase = if d == left {
                        Phase::DataCr
                    } else {
                        Phase::Data { left: left - d }
                    };
                    d as usize
                }
                _ => 0,
            },
        }
    }
}

/// `size` as a chunk-size line, `{hex}\r\n`; returns its length. (The
/// HTTP/2 front frames a chunked request body with it too.)
pub fn hex(size: u64, out: &mut [u8; 18]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - (size.leading_zeros() / 4) as usize).max(1);
    for i in 0..digits {
        out[digits - 1 - i] = DIGITS[((size >> (4 * i)) & 0xf) as usize];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

/// Fields a trailer must not carry (RFC 9110 §6.5.1): framing, routing,
/// connection and authentication fields, and the ones moirai sets itself.
/// They are dropped, never forwarded: a backend that merged them into the
/// head could be told a different length or client.
fn forbidden_trailer(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 14] = [
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"cookie",
        b"set-cookie",
        b"authorization",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-port",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Why [`relay`] stopped moving a body.
#[derive(Debug)]
pub enum RelayError {
    /// The input breaks the chunked grammar.
    Framing(ChunkError),
    /// The writer failed.
    Write(io::Error),
}

/// What one [`relay`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Input bytes done with (framing parsed, data written).
    pub consumed: usize,
    /// Bytes the writer took (framing made here and data).
    pub written: usize,
    /// The writer took less than offered, or would block.
    pub blocked: bool,
}

/// Moves the body at the front of `input` to `write` (a vectored writer
/// that may take fewer bytes than offered): framing parsed and re-made,
/// data untouched. Bytes after the body are not touched. It stops when
/// the body is done, the input runs out, or the writer is full.
pub fn relay<W>(body: &mut Body, input: &[u8], mut write: W) -> Result<Relayed, RelayError>
where
    W: FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
{
    let mut r = Relayed {
        consumed: 0,
        written: 0,
        blocked: false,
    };
    loop {
        r.consumed += body
            .feed(&input[r.consumed..])
            .map_err(RelayError::Framing)?;
        let [f1, f2] = body.framing();
        let data = body.data(&input[r.consumed..]);
        let total = f1.len() + f2.len() + data.len();
        if total == 0 {
            return Ok(r);
        }
        let slices = [IoSlice::new(f1), IoSlice::new(f2), IoSlice::new(data)];
        match write(&slices) {
            Ok(0) => {
                return Err(RelayError::Write(io::ErrorKind::WriteZero.into()));
            }
            Ok(w) => {
                r.consumed += body.wrote(w);
                r.written += w;
                if w < total {
                    r.blocked = true;
                    return Ok(r);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                r.blocked = true;
                return Ok(r);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RelayError::Write(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relays `data` through a writer taking at most `step` bytes a call;
    /// returns (input consumed, bytes written, done).
    fn through(
        framing: Framing,
        data: &[u8],
        step: usize,
    ) -> Result<(usize, Vec<u8>, bool), ChunkError> {
        through_body(Body::new(framing), data, step)
    }

    fn through_body(
        mut body: Body,
        data: &[u8],
        step: usize,
    ) -> Result<(usize, Vec<u8>, bool), ChunkError> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let before = (at, out.len());
            let r = relay(&mut body, &data[at..], |s| {
                let mut n = 0;
                for sl in s {
                    let take = sl.len().min(step - n);
                    out.extend_from_slice(&sl[..take]);
                    n += take;
                    if n == step {
                        break;
                    }
                }
                Ok(n)
            });
            match r {
                Ok(r) => at += r.consumed,
                Err(RelayError::Framing(e)) => return Err(e),
                Err(RelayError::Write(e)) => panic!("{e}"),
            }
            if (at, out.len()) == before {
                return Ok((at, out, body.is_done()));
            }
        }
    }

    #[test]
    fn dechunked_bodies_carry_the_data_alone_and_are_still_checked() {
        let stream = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        for step in [1, 3, 64] {
            let body = Body::new(Framing::Chunked).dechunked();
            let (n, out, done) = through_body(body, stream, step).unwrap();
            assert_eq!(
                (n, out.as_slice(), done),
                (stream.len(), &b"hello, world"[..], true)
            );
        }
        let body = Body::new(Framing::Chunked).dechunked();
        assert!(through_body(body, b"5\nhello\r\n0\r\n\r\n", 64).is_err());
    }

    #[test]
    fn a_body_that_keeps_its_trailers_hands_them_over_checked() {
        let stream = b"5\r\nhello\r\n0\r\nX-Sum: 7\r\nSet-Cookie: no\r\nGrpc-Status: 0\r\n\r\n";
        for step in [1, 3, 64] {
            let mut body = Body::new(Framing::Chunked).dechunked_keeping_trailers();
            let mut out = Vec::new();
            let mut at = 0;
            while at < stream.len() {
                let r = relay(
                    &mut body,
                    &stream[at..step.min(stream.len() - at) + at],
                    |s| {
                        let n: usize = s.iter().map(|x| x.len()).sum();
                        s.iter().for_each(|x| out.extend_from_slice(x));
                        Ok(n)
                    },
                )
                .unwrap();
                at += r.consumed;
            }
            assert_eq!(out, b"hello", "data only");
            assert!(body.is_done(), "kept trailers are not waited for");
            assert_eq!(
                body.kept_trailers(),
                b"X-Sum: 7\r\nGrpc-Status: 0\r\n",
                "checked, the forbidden one dropped"
            );
        }
        // Without trailers, nothing is kept; a plain de-chunked body keeps
        // none either.
        let (_, _, done) = through_body(
            Body::new(Framing::Chunked).dechunked_keeping_trailers(),
            b"0\r\n\r\n",
            64,
        )
        .unwrap();
        assert!(done);
        assert!(Body::new(Framing::Chunked)
            .dechunked()
            .kept_trailers()
            .is_empty());
    }

    fn whole(framing: Framing, data: &[u8]) -> Result<(usize, bool), ChunkError> {
        through(framing, data, usize::MAX).map(|(n, _, done)| (n, done))
    }

    #[test]
    fn lengths() {
        assert_eq!(whole(Framing::Length(3), b"abcdef"), Ok((3, true)));
        assert_eq!(whole(Framing::Length(10), b"abc"), Ok((3, false)));
        assert_eq!(whole(Framing::None, b"GET"), Ok((0, true)));
        let (n, out, done) = through(Framing::UntilClose, b"xyz", 2).unwrap();
        assert_eq!((n, &out[..], done), (3, &b"xyz"[..], false));
    }

    #[test]
    fn chunked_is_reframed_canonically_and_ends_exactly() {
        let body = b"4\r\nWiki\r\n5;name=v\r\npedia\r\nE ; a = \"q\\\"x\" ;b\r\n in\r\n\r\nchunks.\r\n000\r\nX-Trailer: 1\r\nContent-Length: 9\r\n\r\n";
        let mut stream = body.to_vec();
        stream.extend_from_slice(b"GET /next");
        for step in [1, 2, 3, 7, 64, usize::MAX] {
            let (n, out, done) = through(Framing::Chunked, &stream, step).unwrap();
            assert_eq!((n, done), (body.len(), true), "step {step}");
            assert_eq!(
                out,
                b"4\r\nWiki\r\n5\r\npedia\r\ne\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n",
                "step {step}"
            );
        }
    }

    #[test]
    fn chunked_split_at_every_byte() {
        let body = b"a\r\n0123456789\r\n0\r\nT: v\r\n\r\n";
        for cut in 0..body.len() {
            let mut b = Body::new(Framing::Chunked);
            let mut out = Vec::new();
            let mut w = |s: &[IoSlice<'_>]| {
                let n: usize = s.iter().map(|x| x.len()).sum();
                s.iter().for_each(|x| out.extend_from_slice(x));
                Ok(n)
            };
            let a = relay(&mut b, &body[..cut], &mut w).unwrap().consumed;
            // Unconsumed input is resent with the rest, as a buffer would.
            let c = relay(&mut b, &body[a..], &mut w).unwrap().consumed;
            assert_eq!(a + c, body.len(), "cut at {cut}");
            assert!(b.is_done(), "cut at {cut}");
            assert_eq!(out, body, "cut at {cut}");
        }
    }

    #[test]
    fn hex_lines() {
        let mut l = [0; 18];
        for (v, s) in [
            (0u64, "0"),
            (1, "1"),
            (0xff, "ff"),
            (u64::MAX, "ffffffffffffffff"),
        ] {
            let n = hex(v, &mut l);
            assert_eq!(&l[..n], format!("{s}\r\n").as_bytes());
        }
    }

    #[test]
    fn chunk_sizes_just_below_the_bound_are_read() {
        // 2^52 - 1 and leading zeros up to 16 digits: only the value
        // counts against the bound.
        for line in [&b"fffffffffffff\r\n"[..], b"000fffffffffffff\r\n"] {
            let body = Body::new(Framing::Chunked);
            assert_eq!(body.check(line), Ok(()), "{line:?}");
        }
    }

    #[test]
    fn invalid_chunks_are_refused() {
        let bad = |s: &[u8], e: ChunkError| {
            assert_eq!(
                whole(Framing::Chunked, s),
                Err(e),
                "{:?}",
                String::from_utf8_lossy(s)
            );
            assert_eq!(Body::new(Framing::Chunked).check(s), Err(e));
        };
        bad(b"zz\r\n", ChunkError::BadSize);
        bad(b"\r\n", ChunkError::BadSize);
        bad(b"-1\r\n", ChunkError::BadSize);
        bad(b"0x10\r\n", ChunkError::BadSize);
        bad(b"5 garbage\r\n", ChunkError::BadSize);
        bad(b"11111111111111111\r\n", ChunkError::SizeTooLarge);
        // From MAX_CHUNK_SIZE (2^52) up, whatever the digits look like.
        bad(b"10000000000000\r\n", ChunkError::SizeTooLarge);
        bad(b"fffffffffffffff\r\n", ChunkError::SizeTooLarge);
        bad(b"0010000000000000\r\n", ChunkError::SizeTooLarge);
        bad(b"3\r\nabcX", ChunkError::MissingCrlf);
        bad(b"3\r\nabc\n", ChunkError::MissingCrlf);
        bad(b"3\nabc", ChunkError::MissingCrlf);
        bad(b"3\r\r\nabc", ChunkError::MissingCrlf);
        bad(b"1;a=\"x\r\n", ChunkError::BadExtension);
        bad(b"1;a b\r\n", ChunkError::BadExtension);
        bad(b"1;=b\r\n", ChunkError::BadExtension);
        bad(b"1;a=@\r\n", ChunkError::BadExtension);
        bad(b"1;a=\"\x00\"\r\n", ChunkError::BadExtension);
        bad(b"1;a\n", ChunkError::MissingCrlf);
        // Trailers: the smuggling vectors of the review.
        bad(
            b"0\r\nX: a\n\nGET /smuggled HTTP/1.1\r\n",
            ChunkError::BadTrailer,
        );
        bad(b"0\r\n\n", ChunkError::BadTrailer);
        bad(b"0\r\nnocolon\r\n\r\n", ChunkError::BadTrailer);
        bad(b"0\r\nX: a\x00b\r\n\r\n", ChunkError::BadTrailer);
        bad(b"0\r\nX: a\rb\r\n\r\n", ChunkError::MissingCrlf);
        bad(b"0\r\nX: a\r\n folded\r\n\r\n", ChunkError::BadTrailer);
        bad(b"0\r\nX : a\r\n\r\n", ChunkError::BadTrailer);
        bad(b"0\r\n\r\r", ChunkError::MissingCrlf);
        let long = [b"0\r\nX: ".as_slice(), &[b'a'; 9000]].concat();
        bad(&long, ChunkError::TooLong);
        let long = [b"1;".as_slice(), &[b'a'; 5000]].concat();
        bad(&long, ChunkError::TooLong);
    }

    #[test]
    fn framing_fields_in_trailers_are_dropped() {
        let (_, out, done) = through(
            Framing::Chunked,
            b"0\r\nTransfer-Encoding: chunked\r\nok: 1\r\nhost: x\r\n\r\n",
            5,
        )
        .unwrap();
        assert!(done);
        assert_eq!(out, b"0\r\nok: 1\r\n\r\n");
    }
}
