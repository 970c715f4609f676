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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(f: Frame<'_>) {
        let mut out = Vec::new();
        f.encode(&mut out);
        let h = Header::parse(&out).unwrap();
        assert_eq!(h.length as usize, out.len() - HEADER_LEN);
        assert_eq!(parse(&h, &out[HEADER_LEN..]).unwrap(), f);
    }

    fn s(n: u32) -> StreamId {
        StreamId::new(n)
    }

    fn h(kind: Kind, length: u32, flags: u8, stream: u32) -> Header {
        Header {
            length,
            kind,
            flags,
            stream: s(stream),
        }
    }

    #[test]
    fn header_round_trips() {
        let hd = h(Kind::Headers, 0x12_3456, 0x25, 0x7fff_fffe);
        assert_eq!(Header::parse(&hd.encode()), Some(hd));
        assert_eq!(Header::parse(&[0; 8]), None);
    }

    #[test]
    fn the_reserved_bit_of_the_stream_is_ignored() {
        let b = [0, 0, 0, 4, 0, 0x80, 0, 0, 0];
        assert_eq!(Header::parse(&b).unwrap().stream, s(0));
    }

    #[test]
    fn every_kind_round_trips_its_byte() {
        for b in 0..=255u8 {
            assert_eq!(Kind::from_u8(b).to_u8(), b);
        }
    }

    #[test]
    fn data_round_trips_with_and_without_padding() {
        round_trip(Frame::Data {
            stream: s(1),
            end_stream: true,
            data: b"abc",
            pad: None,
        });
        round_trip(Frame::Data {
            stream: s(3),
            end_stream: false,
            data: b"",
            pad: Some(255),
        });
    }

    #[test]
    fn headers_round_trip_with_priority_and_padding() {
        round_trip(Frame::Headers {
            stream: s(5),
            end_stream: true,
            end_headers: false,
            priority: Some(Priority {
                exclusive: true,
                dependency: s(3),
                weight: 15,
            }),
            fragment: b"\x82\x86",
            pad: Some(3),
        });
    }

    #[test]
    fn control_frames_round_trip() {
        round_trip(Frame::Priority {
            stream: s(1),
            priority: Priority {
                exclusive: false,
                dependency: s(0),
                weight: 255,
            },
        });
        round_trip(Frame::RstStream {
            stream: s(1),
            code: ErrorCode::Cancel,
        });
        round_trip(Frame::Settings {
            ack: false,
            params: &[0, 3, 0, 0, 0, 100],
        });
        round_trip(Frame::Settings {
            ack: true,
            params: &[],
        });
        round_trip(Frame::Ping {
            ack: true,
            payload: *b"abcdefgh",
        });
        round_trip(Frame::GoAway {
            last_stream: s(7),
            code: ErrorCode::EnhanceYourCalm,
            debug: b"calm",
        });
        round_trip(Frame::WindowUpdate {
            stream: s(0),
            increment: 0x7fff_ffff,
        });
        round_trip(Frame::Continuation {
            stream: s(1),
            end_headers: true,
            fragment: b"x",
        });
        round_trip(Frame::PushPromise {
            stream: s(1),
            promised: s(2),
            end_headers: true,
            fragment: b"y",
            pad: Some(1),
        });
        round_trip(Frame::Unknown {
            kind: 0xee,
            stream: s(9),
            flags: 0xff,
            payload: b"?",
        });
    }

    #[test]
    fn a_frame_over_the_maximum_is_too_large() {
        assert_eq!(
            h(Kind::Data, 16_385, 0, 1).check(DEFAULT_MAX_FRAME_SIZE),
            Err(FrameError::TooLarge)
        );
        assert_eq!(
            h(Kind::Data, 16_384, 0, 1).check(DEFAULT_MAX_FRAME_SIZE),
            Ok(())
        );
    }

    #[test]
    fn stream_frames_need_a_stream() {
        for k in [
            Kind::Data,
            Kind::Headers,
            Kind::Priority,
            Kind::RstStream,
            Kind::PushPromise,
            Kind::Continuation,
        ] {
            assert_eq!(
                h(k, 5, 0, 0).check(DEFAULT_MAX_FRAME_SIZE),
                Err(FrameError::NeedsStream(k))
            );
        }
    }

    #[test]
    fn connection_frames_need_stream_zero() {
        for (k, len) in [(Kind::Settings, 0), (Kind::Ping, 8), (Kind::GoAway, 8)] {
            assert_eq!(
                h(k, len, 0, 1).check(DEFAULT_MAX_FRAME_SIZE),
                Err(FrameError::NeedsConnection(k))
            );
        }
        // WINDOW_UPDATE may be on either.
        assert_eq!(h(Kind::WindowUpdate, 4, 0, 0).check(16_384), Ok(()));
        assert_eq!(h(Kind::WindowUpdate, 4, 0, 3).check(16_384), Ok(()));
    }

    #[test]
    fn fixed_sizes_are_checked() {
        for (k, good, st) in [
            (Kind::Priority, 5, 1),
            (Kind::RstStream, 4, 1),
            (Kind::WindowUpdate, 4, 0),
            (Kind::Ping, 8, 0),
        ] {
            assert_eq!(h(k, good, 0, st).check(16_384), Ok(()));
            let e = h(k, good + 1, 0, st).check(16_384).unwrap_err();
            assert_eq!(e.code(), ErrorCode::FrameSize);
        }
    }

    #[test]
    fn only_a_wrong_size_priority_is_a_stream_error() {
        let e = h(Kind::Priority, 4, 0, 3).check(16_384).unwrap_err();
        assert_eq!(e.stream(), Some(s(3)));
        let e = h(Kind::RstStream, 5, 0, 3).check(16_384).unwrap_err();
        assert_eq!(e.stream(), None);
    }

    #[test]
    fn settings_sizes_are_checked() {
        assert!(h(Kind::Settings, 7, 0, 0).check(16_384).is_err());
        assert!(h(Kind::Settings, 12, 0, 0).check(16_384).is_ok());
        assert!(h(Kind::Settings, 6, flags::ACK, 0).check(16_384).is_err());
    }

    #[test]
    fn goaway_needs_eight_bytes() {
        assert!(h(Kind::GoAway, 7, 0, 0).check(16_384).is_err());
        assert!(h(Kind::GoAway, 8, 0, 0).check(16_384).is_ok());
    }

    #[test]
    fn padding_must_leave_room() {
        let hd = h(Kind::Data, 3, flags::PADDED, 1);
        assert_eq!(
            parse(&hd, &[2, 0, 0]).unwrap(),
            Frame::Data {
                stream: s(1),
                end_stream: false,
                data: b"",
                pad: Some(2),
            }
        );
        assert_eq!(parse(&hd, &[3, 0, 0]), Err(FrameError::Padding(Kind::Data)));
        let hd = h(Kind::Data, 0, flags::PADDED, 1);
        assert_eq!(parse(&hd, &[]), Err(FrameError::Padding(Kind::Data)));
    }

    #[test]
    fn headers_with_priority_need_five_bytes() {
        let hd = h(Kind::Headers, 4, flags::PRIORITY, 1);
        assert!(parse(&hd, &[0; 4]).is_err());
    }

    #[test]
    fn push_promise_needs_its_promised_stream() {
        let hd = h(Kind::PushPromise, 3, 0, 1);
        assert!(parse(&hd, &[0; 3]).is_err());
    }

    #[test]
    fn window_update_drops_the_reserved_bit() {
        let hd = h(Kind::WindowUpdate, 4, 0, 0);
        assert_eq!(
            parse(&hd, &[0xff, 0xff, 0xff, 0xff]).unwrap(),
            Frame::WindowUpdate {
                stream: s(0),
                increment: 0x7fff_ffff,
            }
        );
    }

    #[test]
    fn a_payload_of_the_wrong_length_is_refused() {
        let hd = h(Kind::Data, 3, 0, 1);
        assert!(parse(&hd, b"ab").is_err());
    }

    #[test]
    fn settings_params_are_read_in_order() {
        let p = [0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0];
        let v: Vec<_> = settings_params(&p).collect();
        assert_eq!(v, vec![(3, 100), (4, 65_536)]);
    }

    #[test]
    fn writers_write_what_parse_reads() {
        let mut out = Vec::new();
        write_settings_ack(&mut out);
        write_data_header(&mut out, s(1), 0, true);
        let hs: Vec<_> = [0, 9]
            .iter()
            .map(|&i| Header::parse(&out[i..]).unwrap())
            .collect();
        assert_eq!((hs[0].kind, hs[0].flags), (Kind::Settings, flags::ACK));
        assert_eq!((hs[1].kind, hs[1].flags), (Kind::Data, flags::END_STREAM));
    }

    proptest! {
        #[test]
        fn data_frames_round_trip(data in proptest::collection::vec(any::<u8>(), 0..300),
                                  pad in proptest::option::of(any::<u8>()),
                                  end in any::<bool>(), id in 1u32..0x7fff_ffff) {
            round_trip(Frame::Data { stream: s(id), end_stream: end, data: &data, pad });
        }

        #[test]
        fn any_payload_parses_or_is_refused(kind in any::<u8>(), fl in any::<u8>(),
                                            id in any::<u32>(),
                                            p in proptest::collection::vec(any::<u8>(), 0..40)) {
            let hd = Header { length: p.len() as u32, kind: Kind::from_u8(kind), flags: fl, stream: StreamId::new(id) };
            if let Ok(f) = parse(&hd, &p) {
                // What parses, re-encodes to a frame that parses the same.
                let mut out = Vec::new();
                f.encode(&mut out);
                let h2 = Header::parse(&out).unwrap();
                prop_assert_eq!(parse(&h2, &out[HEADER_LEN..]).unwrap(), f);
            }
        }
    }
}
