//! Frames (RFC 9113 §4 and §6): the 9-byte header, every frame type with
//! its size, padding, flag and stream-id rules, and the writers. Parsing
//! takes a whole payload; the connection ([`super::recv`]) streams DATA
//! payloads itself and hands every other frame here once it is complete.
//! What a frame means for a stream lives in [`super::stream`].

use super::{ErrorCode, StreamId};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value, and ours.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE a peer may announce (2^24 − 1).
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;

/// Frame flags (RFC 9113 §6). The same bit means different things in
/// different frames, hence constants and not one enum.
pub mod flags {
    /// DATA, HEADERS: the last frame of the stream from its sender.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the block ends here.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte and padding.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: priority fields (deprecated, validated and ignored).
    pub const PRIORITY: u8 = 0x20;
}

/// A frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DATA (0x0).
    Data,
    /// HEADERS (0x1).
    Headers,
    /// PRIORITY (0x2).
    Priority,
    /// RST_STREAM (0x3).
    RstStream,
    /// SETTINGS (0x4).
    Settings,
    /// PUSH_PROMISE (0x5).
    PushPromise,
    /// PING (0x6).
    Ping,
    /// GOAWAY (0x7).
    GoAway,
    /// WINDOW_UPDATE (0x8).
    WindowUpdate,
    /// CONTINUATION (0x9).
    Continuation,
    /// A type this codec does not know: ignored (§5.5).
    Unknown(u8),
}

impl Kind {
    /// The type a wire byte names.
    pub fn from_u8(b: u8) -> Kind {
        match b {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::RstStream,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            b => Kind::Unknown(b),
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Kind::Data => 0,
            Kind::Headers => 1,
            Kind::Priority => 2,
            Kind::RstStream => 3,
            Kind::Settings => 4,
            Kind::PushPromise => 5,
            Kind::Ping => 6,
            Kind::GoAway => 7,
            Kind::WindowUpdate => 8,
            Kind::Continuation => 9,
            Kind::Unknown(b) => b,
        }
    }

    /// Whether the type must be sent on a stream (not 0).
    fn needs_stream(self) -> bool {
        matches!(
            self,
            Kind::Data
                | Kind::Headers
                | Kind::Priority
                | Kind::RstStream
                | Kind::PushPromise
                | Kind::Continuation
        )
    }

    /// Whether the type must be sent on stream 0.
    fn needs_connection(self) -> bool {
        matches!(self, Kind::Settings | Kind::Ping | Kind::GoAway)
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length (24 bits).
    pub length: u32,
    /// Frame type.
    pub kind: Kind,
    /// Flags, as sent (unknown ones are kept and ignored).
    pub flags: u8,
    /// Stream, reserved bit dropped.
    pub stream: StreamId,
}

impl Header {
    /// The header at the start of `buf`, if 9 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            length: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: Kind::from_u8(b[3]),
            flags: b[4],
            stream: StreamId::new(u32::from_be_bytes([b[5], b[6], b[7], b[8]])),
        })
    }

    /// The 9 bytes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.length.to_be_bytes();
        let s = self.stream.get().to_be_bytes();
        [
            l[1],
            l[2],
            l[3],
            self.kind.to_u8(),
            self.flags,
            s[0],
            s[1],
            s[2],
            s[3],
        ]
    }

    /// Whether a flag is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The rules the header alone decides: the length against the largest
    /// frame we accept (§4.2) and the stream each type must or must not
    /// name (§6).
    pub fn check(&self, max_frame_size: u32) -> Result<(), FrameError> {
        if self.length > max_frame_size {
            return Err(FrameError::TooLarge);
        }
        if self.kind.needs_stream() && self.stream.is_connection() {
            return Err(FrameError::NeedsStream(self.kind));
        }
        if self.kind.needs_connection() && !self.stream.is_connection() {
            return Err(FrameError::NeedsConnection(self.kind));
        }
        let fixed = match self.kind {
            Kind::Priority => Some(5),
            Kind::RstStream | Kind::WindowUpdate => Some(4),
            Kind::Ping => Some(8),
            _ => None,
        };
        if let Some(n) = fixed {
            if self.length != n {
                return Err(FrameError::Length(self.kind, self.stream));
            }
        }
        match self.kind {
            Kind::Settings if self.has(flags::ACK) && self.length != 0 => {
                Err(FrameError::Length(Kind::Settings, self.stream))
            }
            Kind::Settings if !self.length.is_multiple_of(6) => {
                Err(FrameError::Length(Kind::Settings, self.stream))
            }
            Kind::GoAway if self.length < 8 => Err(FrameError::Length(Kind::GoAway, self.stream)),
            _ => Ok(()),
        }
    }
}

/// Priority fields (HEADERS with PRIORITY, PRIORITY): validated, ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The exclusive bit.
    pub exclusive: bool,
    /// The stream this one depends on.
    pub dependency: StreamId,
    /// Weight minus one, as sent.
    pub weight: u8,
}

impl Priority {
    fn parse(b: &[u8; 5]) -> Priority {
        let d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Priority {
            exclusive: d & 0x8000_0000 != 0,
            dependency: StreamId::new(d),
            weight: b[4],
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut d = self.dependency.get();
        if self.exclusive {
            d |= 0x8000_0000;
        }
        out.extend_from_slice(&d.to_be_bytes());
        out.push(self.weight);
    }
}

/// One frame, its payload borrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// DATA.
    Data {
        /// Its stream.
        stream: StreamId,
        /// END_STREAM.
        end_stream: bool,
        /// The data, padding removed.
        data: &'a [u8],
        /// Pad length, when PADDED.
        pad: Option<u8>,
    },
    /// HEADERS.
    Headers {
        /// Its stream.
        stream: StreamId,
        /// END_STREAM.
        end_stream: bool,
        /// END_HEADERS.
        end_headers: bool,
        /// Priority fields, when PRIORITY.
        priority: Option<Priority>,
        /// The block fragment, padding removed.
        fragment: &'a [u8],
        /// Pad length, when PADDED.
        pad: Option<u8>,
    },
    /// PRIORITY.
    Priority {
        /// Its stream.
        stream: StreamId,
        /// The fields.
        priority: Priority,
    },
    /// RST_STREAM.
    RstStream {
        /// Its stream.
        stream: StreamId,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS.
    Settings {
        /// ACK.
        ack: bool,
        /// The parameters, 6 bytes each ([`settings_params`]).
        params: &'a [u8],
    },
    /// PUSH_PROMISE (a server never receives one; parsed to be refused).
    PushPromise {
        /// Its stream.
        stream: StreamId,
        /// The promised stream.
        promised: StreamId,
        /// END_HEADERS.
        end_headers: bool,
        /// The block fragment, padding removed.
        fragment: &'a [u8],
        /// Pad length, when PADDED.
        pad: Option<u8>,
    },
    /// PING.
    Ping {
        /// ACK.
        ack: bool,
        /// Opaque data.
        payload: [u8; 8],
    },
    /// GOAWAY.
    GoAway {
        /// The last stream the sender processed or may process.
        last_stream: StreamId,
        /// Why.
        code: ErrorCode,
        /// Debug data.
        debug: &'a [u8],
    },
    /// WINDOW_UPDATE.
    WindowUpdate {
        /// Its stream (0: the connection).
        stream: StreamId,
        /// The increment (31 bits; 0 is an error the connection judges).
        increment: u32,
    },
    /// CONTINUATION.
    Continuation {
        /// Its stream.
        stream: StreamId,
        /// END_HEADERS.
        end_headers: bool,
        /// The block fragment.
        fragment: &'a [u8],
    },
    /// A frame of an unknown type: ignored.
    Unknown {
        /// The type byte.
        kind: u8,
        /// Its stream.
        stream: StreamId,
        /// Flags.
        flags: u8,
        /// Payload.
        payload: &'a [u8],
    },
}

/// Why a frame was refused (§4.2, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Longer than SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR.
    TooLarge,
    /// A stream frame on stream 0: PROTOCOL_ERROR.
    NeedsStream(Kind),
    /// A connection frame on a stream: PROTOCOL_ERROR.
    NeedsConnection(Kind),
    /// A payload of the wrong size for its type: FRAME_SIZE_ERROR (a
    /// stream error for PRIORITY, §6.3).
    Length(Kind, StreamId),
    /// Padding as long as the payload or longer: PROTOCOL_ERROR.
    Padding(Kind),
}

impl FrameError {
    /// The code to send.
    pub fn code(self) -> ErrorCode {
        match self {
            FrameError::TooLarge | FrameError::Length(..) => ErrorCode::FrameSize,
            FrameError::NeedsStream(_)
            | FrameError::NeedsConnection(_)
            | FrameError::Padding(_) => ErrorCode::Protocol,
        }
    }

    /// The stream that alone is in error, when it is a stream error; None
    /// when the connection is.
    pub fn stream(self) -> Option<StreamId> {
        match self {
            FrameError::Length(Kind::Priority, s) => Some(s),
            _ => None,
        }
    }

    /// The reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            FrameError::TooLarge => "frame larger than SETTINGS_MAX_FRAME_SIZE",
            FrameError::NeedsStream(_) => "stream frame on stream 0",
            FrameError::NeedsConnection(_) => "connection frame on a stream",
            FrameError::Length(..) => "frame payload of the wrong size",
            FrameError::Padding(_) => "padding longer than the payload",
        }
    }
}

/// Splits a padded payload: (pad length, rest without the pad byte and
/// padding). The pad length must leave room in the payload (§6.1).
fn unpad(kind: Kind, padded: bool, payload: &[u8]) -> Result<(Option<u8>, &[u8]), FrameError> {
    if !padded {
        return Ok((None, payload));
    }
    let (&pad, rest) = payload.split_first().ok_or(FrameError::Padding(kind))?;
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(FrameError::Padding(kind))?;
    Ok((Some(pad), &rest[..keep]))
}

/// Parses a complete frame: `payload` is exactly `header.length` bytes.
/// Runs [`Header::check`] with the largest size the header allows, so a
/// caller enforcing a smaller SETTINGS_MAX_FRAME_SIZE checks that first.
pub fn parse<'a>(header: &Header, payload: &'a [u8]) -> Result<Frame<'a>, FrameError> {
    if payload.len() as u64 != u64::from(header.length) {
        return Err(FrameError::Length(header.kind, header.stream));
    }
    header.check(MAX_FRAME_SIZE_LIMIT)?;
    let stream = header.stream;
    let padded = header.has(flags::PADDED);
    Ok(match header.kind {
        Kind::Data => {
            let (pad, data) = unpad(Kind::Data, padded, payload)?;
            Frame::Data {
                stream,
                end_stream: header.has(flags::END_STREAM),
                data,
                pad,
            }
        }
        Kind::Headers => {
            let (pad, rest) = unpad(Kind::Headers, padded, payload)?;
            let (priority, fragment) = if header.has(flags::PRIORITY) {
                let p: &[u8; 5] = rest
                    .get(..5)
                    .and_then(|p| p.try_into().ok())
                    .ok_or(FrameError::Length(Kind::Headers, StreamId::CONNECTION))?;
                (Some(Priority::parse(p)), &rest[5..])
            } else {
                (None, rest)
            };
            Frame::Headers {
                stream,
                end_stream: header.has(flags::END_STREAM),
                end_headers: header.has(flags::END_HEADERS),
                priority,
                fragment,
                pad,
            }
        }
        Kind::Priority => {
            let p: &[u8; 5] = payload
                .try_into()
                .map_err(|_| FrameError::Length(Kind::Priority, stream))?;
            Frame::Priority {
                stream,
                priority: Priority::parse(p),
            }
        }
        Kind::RstStream => Frame::RstStream {
            stream,
            code: ErrorCode::from_u32(be32(payload)),
        },
        Kind::Settings => Frame::Settings {
            ack: header.has(flags::ACK),
            params: payload,
        },
        Kind::PushPromise => {
            let (pad, rest) = unpad(Kind::PushPromise, padded, payload)?;
            if rest.len() < 4 {
                return Err(FrameError::Length(Kind::PushPromise, StreamId::CONNECTION));
            }
            Frame::PushPromise {
                stream,
                promised: StreamId::new(be32(rest)),
                end_headers: header.has(flags::END_HEADERS),
                fragment: &rest[4..],
                pad,
            }
        }
        Kind::Ping => {
            let mut p = [0; 8];
            p.copy_from_slice(payload);
            Frame::Ping {
                ack: header.has(flags::ACK),
                payload: p,
            }
        }
        Kind::GoAway => Frame::GoAway {
            last_stream: StreamId::new(be32(payload)),
            code: ErrorCode::from_u32(be32(&payload[4..])),
            debug: &payload[8..],
        },
        Kind::WindowUpdate => Frame::WindowUpdate {
            stream,
            increment: be32(payload) & 0x7fff_ffff,
        },
        Kind::Continuation => Frame::Continuation {
            stream,
            end_headers: header.has(flags::END_HEADERS),
            fragment: payload,
        },
        Kind::Unknown(kind) => Frame::Unknown {
            kind,
            stream,
            flags: header.flags,
            payload,
        },
    })
}

/// A big-endian u32 from the first four bytes; callers checked the length.
fn be32(b: &[u8]) -> u32 {
    match b.get(..4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The SETTINGS parameters of a payload whose length is a multiple of 6
/// ([`Header::check`] made sure), as (identifier, value).
pub fn settings_params(params: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    params
        .chunks_exact(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), be32(&c[2..])))
}

/// Appends a frame header.
pub fn write_header(out: &mut Vec<u8>, length: usize, kind: Kind, flags: u8, stream: StreamId) {
    let h = Header {
        length: u32::try_from(length).unwrap_or(MAX_FRAME_SIZE_LIMIT) & MAX_FRAME_SIZE_LIMIT,
        kind,
        flags,
        stream,
    };
    out.extend_from_slice(&h.encode());
}

impl Frame<'_> {
    /// Appends the frame, as parsing would find it again (padding as
    /// zeros).
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn padding(pad: Option<u8>) -> (u8, usize) {
            pad.map_or((0, 0), |p| (flags::PADDED, 1 + usize::from(p)))
        }
        fn pad_out(out: &mut Vec<u8>, pad: Option<u8>, body: impl FnOnce(&mut Vec<u8>)) {
            if let Some(p) = pad {
                out.push(p);
            }
            body(out);
            out.resize(out.len() + usize::from(pad.unwrap_or(0)), 0);
        }
        let bit = |on: bool, f: u8| if on { f } else { 0 };
        match *self {
            Frame::Data {
                stream,
                end_stream,
                data,
                pad,
            } => {
                let (pf, extra) = padding(pad);
                let fl = pf | bit(end_stream, flags::END_STREAM);
                write_header(out, data.len() + extra, Kind::Data, fl, stream);
                pad_out(out, pad, |o| o.extend_from_slice(data));
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                fragment,
                pad,
            } => {
                let (pf, extra) = padding(pad);
                let fl = pf
                    | bit(end_stream, flags::END_STREAM)
                    | bit(end_headers, flags::END_HEADERS)
                    | bit(priority.is_some(), flags::PRIORITY);
                let len = fragment.len() + extra + if priority.is_some() { 5 } else { 0 };
                write_header(out, len, Kind::Headers, fl, stream);
                pad_out(out, pad, |o| {
                    if let Some(p) = priority {
                        p.encode(o);
                    }
                    o.extend_from_slice(fragment);
                });
            }
            Frame::Priority { stream, priority } => {
                write_header(out, 5, Kind::Priority, 0, stream);
                priority.encode(out);
            }
            Frame::RstStream { stream, code } => write_rst_stream(out, stream, code),
            Frame::Settings { ack, params } => {
                write_header(
                    out,
                    params.len(),
                    Kind::Settings,
                    bit(ack, flags::ACK),
                    StreamId::CONNECTION,
                );
                out.extend_from_slice(params);
            }
            Frame::PushPromise {
                stream,
                promised,
                end_headers,
                fragment,
                pad,
            } => {
                let (pf, extra) = padding(pad);
                let fl = pf | bit(end_headers, flags::END_HEADERS);
                write_header(
                    out,
                    fragment.len() + extra + 4,
                    Kind::PushPromise,
                    fl,
                    stream,
                );
                pad_out(out, pad, |o| {
                    o.extend_from_slice(&promised.get().to_be_bytes());
                    o.extend_from_slice(fragment);
                });
            }
            Frame::Ping { ack, payload } => write_ping(out, ack, payload),
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => write_goaway(out, last_stream, code, debug),
            Frame::WindowUpdate { stream, increment } => {
                write_window_update(out, stream, increment)
            }
            Frame::Continuation {
                stream,
                end_headers,
                fragment,
            } => {
                write_header(
                    out,
                    fragment.len(),
                    Kind::Continuation,
                    bit(end_headers, flags::END_HEADERS),
                    stream,
                );
                out.extend_from_slice(fragment);
            }
            Frame::Unknown {
                kind,
                stream,
                flags,
                payload,
            } => {
                write_header(out, payload.len(), Kind::Unknown(kind), flags, stream);
                out.extend_from_slice(payload);
            }
        }
    }
}

/// Appends RST_STREAM.
pub fn write_rst_stream(out: &mut Vec<u8>, stream: StreamId, code: ErrorCode) {
    write_header(out, 4, Kind::RstStream, 0, stream);
    out.extend_from_slice(&code.to_u32().to_be_bytes());
}

/// Appends PING.
pub fn write_ping(out: &mut Vec<u8>, ack: bool, payload: [u8; 8]) {
    let fl = if ack { flags::ACK } else { 0 };
    write_header(out, 8, Kind::Ping, fl, StreamId::CONNECTION);
    out.extend_from_slice(&payload);
}

/// Appends GOAWAY.
pub fn write_goaway(out: &mut Vec<u8>, last: StreamId, code: ErrorCode, debug: &[u8]) {
    write_header(out, 8 + debug.len(), Kind::GoAway, 0, StreamId::CONNECTION);
    out.extend_from_slice(&last.get().to_be_bytes());
    out.extend_from_slice(&code.to_u32().to_be_bytes());
    out.extend_from_slice(debug);
}

/// Appends WINDOW_UPDATE.
pub fn write_window_update(out: &mut Vec<u8>, stream: StreamId, increment: u32) {
    write_header(out, 4, Kind::WindowUpdate, 0, stream);
    out.extend_from_slice(&(increment & 0x7fff_ffff).to_be_bytes());
}

/// Appends SETTINGS with these parameters.
pub fn write_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    write_header(
        out,
        params.len() * 6,
        Kind::Settings,
        0,
        StreamId::CONNECTION,
    );
    for (id, v) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends an empty SETTINGS with ACK.
pub fn write_settings_ack(out: &mut Vec<u8>) {
    write_header(out, 0, Kind::Settings, flags::ACK, StreamId::CONNECTION);
}

/// Appends a DATA frame header for `len` bytes the caller appends after.
pub fn write_data_header(out: &mut Vec<u8>, stream: StreamId, len: usize, end_stream: bool) {
    let fl = if end_stream { flags::END_STREAM } else { 0 };
    write_header(out, len, Kind::Data, fl, stream);
}
