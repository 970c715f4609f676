//! A scripted client for the connection's tests: frames built with the
//! codec's own writers, the output parsed back into frames. Test code only.

use std::time::{Duration, Instant};

use super::conn::{Config, ConnError, Connection, Event};
use super::frame::{self, Frame, Header, HEADER_LEN};
use super::hpack;
use super::{ErrorCode, StreamId, PREFACE};

/// A connection past its preface and first SETTINGS, and its clock.
pub struct Client {
    /// The connection under test.
    pub conn: Connection,
    /// The time passed to `receive`.
    pub now: Instant,
    /// Events of the last `send`, DATA resolved to bytes.
    pub events: Vec<Got>,
}

/// An event with its DATA bytes copied out of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// An event other than DATA.
    Event(Event),
    /// DATA bytes.
    Data(StreamId, Vec<u8>),
}

/// Stream `n`.
pub fn sid(n: u32) -> StreamId {
    StreamId::new(n)
}

/// A HEADERS frame with these fields (one frame).
pub fn headers(stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let block = block(fields);
    let mut out = Vec::new();
    Frame::Headers {
        stream: sid(stream),
        end_stream,
        end_headers: true,
        priority: None,
        fragment: &block,
        pad: None,
    }
    .encode(&mut out);
    out
}

/// An HPACK block.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    hpack::encode(
        &mut b,
        fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    b
}

/// A GET for `/` on example.com.
pub fn get(stream: u32) -> Vec<u8> {
    headers(stream, &GET, true)
}

/// The fields of a plain GET.
pub const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/"),
    (":authority", "example.com"),
];

/// The fields of a POST with a body to come.
pub const POST: [(&str, &str); 4] = [
    (":method", "POST"),
    (":scheme", "https"),
    (":path", "/up"),
    (":authority", "example.com"),
];

/// Any frame, encoded.
pub fn enc(f: Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    f.encode(&mut out);
    out
}

/// A DATA frame.
pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Vec<u8> {
    enc(Frame::Data {
        stream: sid(stream),
        end_stream,
        data: bytes,
        pad: None,
    })
}

/// A RST_STREAM frame.
pub fn rst(stream: u32, code: ErrorCode) -> Vec<u8> {
    enc(Frame::RstStream {
        stream: sid(stream),
        code,
    })
}

/// A WINDOW_UPDATE frame.
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    enc(Frame::WindowUpdate {
        stream: sid(stream),
        increment,
    })
}

/// A PING frame.
pub fn ping(ack: bool, payload: [u8; 8]) -> Vec<u8> {
    enc(Frame::Ping { ack, payload })
}

/// A SETTINGS frame.
pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_settings(&mut out, params);
    out
}

/// Frames in `bytes`, as (header, payload).
pub fn parse_frames(bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(h) = Header::parse(&bytes[at..]) {
        let end = at + HEADER_LEN + h.length as usize;
        out.push((h, bytes[at + HEADER_LEN..end].to_vec()));
        at = end;
    }
    assert_eq!(at, bytes.len(), "output ends inside a frame");
    out
}

impl Client {
    /// A connection with `config`, past the preface and an empty SETTINGS.
    pub fn with(config: Config) -> Client {
        let mut c = Client {
            conn: Connection::new(config),
            now: Instant::now(),
            events: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(&[]));
        c.send(&hello).unwrap();
        c.take_frames();
        c
    }

    /// A connection with the default configuration.
    pub fn new() -> Client {
        Client::with(Config::default())
    }

    /// Feeds bytes; the events land in `self.events`.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let r = self.conn.receive(bytes, self.now);
        self.events = self
            .conn
            .events()
            .map(|e| match e {
                Event::Data { stream, range } => Got::Data(stream, bytes[range].to_vec()),
                e => Got::Event(e),
            })
            .collect();
        r
    }

    /// Moves the clock.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// The output so far, as frames, and marks it written.
    pub fn take_frames(&mut self) -> Vec<(Header, Vec<u8>)> {
        let out = self.conn.output().to_vec();
        self.conn.written(out.len());
        parse_frames(&out)
    }

    /// The codes of RST_STREAMs in the output, with their streams.
    pub fn resets(&mut self) -> Vec<(u32, ErrorCode)> {
        self.take_frames()
            .into_iter()
            .filter(|(h, _)| h.kind == frame::Kind::RstStream)
            .map(|(h, p)| {
                let c = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                (h.stream.get(), ErrorCode::from_u32(c))
            })
            .collect()
    }

    /// The GOAWAY in the output, as (last stream, code).
    pub fn goaway(&mut self) -> Option<(u32, ErrorCode)> {
        self.take_frames()
            .into_iter()
            .filter(|(h, _)| h.kind == frame::Kind::GoAway)
            .map(|(_, p)| {
                let l = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                let c = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                (l, ErrorCode::from_u32(c))
            })
            .next_back()
    }
}
