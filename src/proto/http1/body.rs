//! Message body framing (RFC 9112 §6): where a body ends, found while its
//! bytes stream through untouched. Chunked bodies are checked chunk by
//! chunk, never buffered; an invalid chunk size stops the message.

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

/// A chunked body that breaks the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The size line is not hex digits (with optional extensions).
    BadSize,
    /// The size does not fit in 64 bits.
    SizeTooLarge,
    /// Chunk data is not followed by CRLF.
    MissingCrlf,
    /// A size, extension or trailer line is unreasonably long.
    LineTooLong,
}

/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits; `digits` so far.
    Size { value: u64, digits: u8 },
    /// After the digits: optional whitespace and `;ext`, until CR.
    Ext { value: u64, len: u32 },
    /// Expecting LF after the size line's CR.
    SizeLf { value: u64 },
    /// Inside chunk data.
    Data { left: u64 },
    /// Expecting CR after data.
    DataCr,
    /// Expecting LF after data.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer line.
    Trailer { len: u32 },
    /// Expecting LF after a trailer line's CR.
    TrailerLf { empty: bool },
    /// The message is complete.
    Done,
}

/// Tracks how much of a body remains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTracker {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

impl BodyTracker {
    /// A tracker for a body framed as `framing`.
    pub fn new(framing: Framing) -> BodyTracker {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
            }),
            Framing::UntilClose => State::UntilClose,
        };
        BodyTracker { state }
    }

    /// The whole body has passed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The body ends only when the sender closes.
    pub fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Looks at the next bytes of the stream and returns how many of them
    /// belong to this body (the rest is the next message).
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, ChunkError> {
        match &mut self.state {
            State::Done => Ok(0),
            State::UntilClose => Ok(data.len()),
            State::Length(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                if *left == 0 {
                    self.state = State::Done;
                }
                Ok(n as usize)
            }
            State::Chunked(c) => {
                let mut i = 0;
                while i < data.len() {
                    if *c == Chunk::Done {
                        break;
                    }
                    i += step(c, &data[i..])?;
                }
                if *c == Chunk::Done {
                    self.state = State::Done;
                }
                Ok(i)
            }
        }
    }
}

/// Consumes at least one byte of `data` (non-empty) in chunk state `c`.
fn step(c: &mut Chunk, data: &[u8]) -> Result<usize, ChunkError> {
    let b = data[0];
    match *c {
        Chunk::Size { value, digits } => {
            if let Some(d) = (b as char).to_digit(16) {
                if digits >= 16 {
                    return Err(ChunkError::SizeTooLarge);
                }
                *c = Chunk::Size {
                    value: (value << 4) | u64::from(d),
                    digits: digits + 1,
                };
            } else if digits == 0 {
                return Err(ChunkError::BadSize);
            } else if b == b'\r' {
                *c = Chunk::SizeLf { value };
            } else if b == b';' || b == b' ' || b == b'\t' {
                *c = Chunk::Ext { value, len: 1 };
            } else {
                return Err(ChunkError::BadSize);
            }
            Ok(1)
        }
        Chunk::Ext { value, len } => {
            if b == b'\r' {
                *c = Chunk::SizeLf { value };
            } else if b == b'\n' || len >= MAX_LINE {
                return Err(if b == b'\n' {
                    ChunkError::BadSize
                } else {
                    ChunkError::LineTooLong
                });
            } else {
                *c = Chunk::Ext {
                    value,
                    len: len + 1,
                };
            }
            Ok(1)
        }
        Chunk::SizeLf { value } => {
            if b != b'\n' {
                return Err(ChunkError::BadSize);
            }
            *c = if value == 0 {
                Chunk::TrailerStart
            } else {
                Chunk::Data { left: value }
            };
            Ok(1)
        }
        Chunk::Data { left } => {
            let n = left.min(data.len() as u64);
            *c = if n == left {
                Chunk::DataCr
            } else {
                Chunk::Data { left: left - n }
            };
            Ok(n as usize)
        }
        Chunk::DataCr => {
            if b != b'\r' {
                return Err(ChunkError::MissingCrlf);
            }
            *c = Chunk::DataLf;
            Ok(1)
        }
        Chunk::DataLf => {
            if b != b'\n' {
                return Err(ChunkError::MissingCrlf);
            }
            *c = Chunk::Size {
                value: 0,
                digits: 0,
            };
            Ok(1)
        }
        Chunk::TrailerStart => {
            *c = if b == b'\r' {
                Chunk::TrailerLf { empty: true }
            } else if b == b'\n' {
                return Err(ChunkError::MissingCrlf);
            } else {
                Chunk::Trailer { len: 1 }
            };
            Ok(1)
        }
        Chunk::Trailer { len } => {
            if b == b'\r' {
                *c = Chunk::TrailerLf { empty: false };
            } else if len >= MAX_LINE {
                return Err(ChunkError::LineTooLong);
            } else {
                *c = Chunk::Trailer { len: len + 1 };
            }
            Ok(1)
        }
        Chunk::TrailerLf { empty } => {
            if b != b'\n' {
                return Err(ChunkError::MissingCrlf);
            }
            *c = if empty {
                Chunk::Done
            } else {
                Chunk::TrailerStart
            };
            Ok(1)
        }
        Chunk::Done => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(framing: Framing, data: &[u8]) -> Result<(usize, bool), ChunkError> {
        let mut t = BodyTracker::new(framing);
        let n = t.advance(data)?;
        Ok((n, t.is_done()))
    }

    #[test]
    fn lengths() {
        assert_eq!(whole(Framing::Length(3), b"abcdef"), Ok((3, true)));
        assert_eq!(whole(Framing::Length(10), b"abc"), Ok((3, false)));
        assert_eq!(whole(Framing::None, b"GET"), Ok((0, true)));
        let mut t = BodyTracker::new(Framing::UntilClose);
        assert_eq!(t.advance(b"xyz"), Ok(3));
        assert!(!t.is_done() && t.until_close());
    }

    #[test]
    fn chunked_ends_exactly_after_the_last_crlf() {
        let body = b"4\r\nWiki\r\n5;name=v\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut stream = body.to_vec();
        stream.extend_from_slice(b"GET /next");
        assert_eq!(whole(Framing::Chunked, &stream), Ok((body.len(), true)));
    }

    #[test]
    fn chunked_split_at_every_byte() {
        let body = b"a\r\n0123456789\r\n0\r\n\r\n";
        for cut in 0..body.len() {
            let mut t = BodyTracker::new(Framing::Chunked);
            let a = t.advance(&body[..cut]).unwrap();
            assert_eq!(a, cut);
            let b = t.advance(&body[cut..]).unwrap();
            assert_eq!(a + b, body.len());
            assert!(t.is_done(), "cut at {cut}");
        }
    }

    #[test]
    fn invalid_chunks_are_refused() {
        assert_eq!(whole(Framing::Chunked, b"zz\r\n"), Err(ChunkError::BadSize));
        assert_eq!(whole(Framing::Chunked, b"\r\n"), Err(ChunkError::BadSize));
        assert_eq!(whole(Framing::Chunked, b"-1\r\n"), Err(ChunkError::BadSize));
        assert_eq!(
            whole(Framing::Chunked, b"0x10\r\n"),
            Err(ChunkError::BadSize)
        );
        assert_eq!(
            whole(Framing::Chunked, b"11111111111111111\r\n"),
            Err(ChunkError::SizeTooLarge)
        );
        assert_eq!(
            whole(Framing::Chunked, b"3\r\nabcX"),
            Err(ChunkError::MissingCrlf)
        );
        assert_eq!(whole(Framing::Chunked, b"3\nabc"), Err(ChunkError::BadSize));
        assert_eq!(
            whole(Framing::Chunked, b"1\r\na\r\n0\r\n\n"),
            Err(ChunkError::MissingCrlf)
        );
    }
}
