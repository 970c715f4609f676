//! HTTP/2 (RFC 9113) without I/O: the server side of a client connection.
//! Bytes go in through [`conn::Connection::receive`], events and the bytes
//! to write come out; the engine's HTTP/2 front (`engine/http/h2.rs`) does
//! the reads and writes and turns events into legs.
//!
//! - [`frame`]: the frame header and every frame type of RFC 9113 §6,
//!   parsed with its size, padding, flag and stream-id rules, and written.
//! - [`hpack`] and [`huffman`]: our own HPACK (RFC 7541) decoder with the
//!   list-size, field-count and table-update checks inside it; the encoder
//!   uses the static table and literals only.
//! - [`settings`]: SETTINGS values, theirs and ours.
//! - [`flow`]: flow-control windows with their overflow checks.
//! - [`stream`]: the §5.1 stream states as a pure transition table.
//! - [`limits`]: what the codec refuses to take from a client, and the
//!   counters that say it did.
//! - [`fault`]: what a client's frames can cost it, and why.
//! - [`conn`] and [`recv`]: the connection: preface, frames in, events
//!   out, frames to write.
//! - [`room`]: the vectors a connection needs only while busy, as one
//!   value a front can keep for the next busy connection.
//! - [`to_h1`] and [`to_h2`]: the translation rules, as pure functions: an
//!   HTTP/2 request into an HTTP/1.1 head, an HTTP/1.1 response head into
//!   HTTP/2 fields.

pub mod conn;
pub mod fault;
pub mod flow;
pub mod frame;
pub mod hpack;
pub mod huffman;
pub mod limits;
pub mod recv;
pub mod room;
pub mod settings;
pub mod stream;
#[cfg(test)]
pub(crate) mod testkit;
pub mod to_h1;
pub mod to_h2;

pub use conn::{ConnError, Connection, Event};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Error codes of RFC 9113 §7, carried by RST_STREAM and GOAWAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Graceful shutdown, or no error.
    NoError,
    /// A protocol error.
    Protocol,
    /// An error of our own.
    Internal,
    /// Flow control broken.
    FlowControl,
    /// SETTINGS not acknowledged in time.
    SettingsTimeout,
    /// A frame on a half-closed or closed stream.
    StreamClosed,
    /// A frame of the wrong size.
    FrameSize,
    /// The stream was refused before any processing.
    RefusedStream,
    /// The stream is no longer needed.
    Cancel,
    /// HPACK state broken.
    Compression,
    /// CONNECT failed.
    Connect,
    /// The peer generates excessive load.
    EnhanceYourCalm,
    /// Transport security too weak.
    InadequateSecurity,
    /// HTTP/1.1 required.
    Http11Required,
    /// A code this version does not know (treated as INTERNAL_ERROR).
    Unknown(u32),
}

impl ErrorCode {
    /// The code on the wire.
    pub fn to_u32(self) -> u32 {
        match self {
            ErrorCode::NoError => 0,
            ErrorCode::Protocol => 1,
            ErrorCode::Internal => 2,
            ErrorCode::FlowControl => 3,
            ErrorCode::SettingsTimeout => 4,
            ErrorCode::StreamClosed => 5,
            ErrorCode::FrameSize => 6,
            ErrorCode::RefusedStream => 7,
            ErrorCode::Cancel => 8,
            ErrorCode::Compression => 9,
            ErrorCode::Connect => 0xa,
            ErrorCode::EnhanceYourCalm => 0xb,
            ErrorCode::InadequateSecurity => 0xc,
            ErrorCode::Http11Required => 0xd,
            ErrorCode::Unknown(c) => c,
        }
    }

    /// Its name in RFC 9113 §7 (`PROTOCOL_ERROR`); `UNKNOWN` for a code
    /// the RFC does not define.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NoError => "NO_ERROR",
            ErrorCode::Protocol => "PROTOCOL_ERROR",
            ErrorCode::Internal => "INTERNAL_ERROR",
            ErrorCode::FlowControl => "FLOW_CONTROL_ERROR",
            ErrorCode::SettingsTimeout => "SETTINGS_TIMEOUT",
            ErrorCode::StreamClosed => "STREAM_CLOSED",
            ErrorCode::FrameSize => "FRAME_SIZE_ERROR",
            ErrorCode::RefusedStream => "REFUSED_STREAM",
            ErrorCode::Cancel => "CANCEL",
            ErrorCode::Compression => "COMPRESSION_ERROR",
            ErrorCode::Connect => "CONNECT_ERROR",
            ErrorCode::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            ErrorCode::InadequateSecurity => "INADEQUATE_SECURITY",
            ErrorCode::Http11Required => "HTTP_1_1_REQUIRED",
            ErrorCode::Unknown(_) => "UNKNOWN",
        }
    }

    /// The code a wire value names; unknown values are kept.
    pub fn from_u32(v: u32) -> ErrorCode {
        match v {
            0 => ErrorCode::NoError,
            1 => ErrorCode::Protocol,
            2 => ErrorCode::Internal,
            3 => ErrorCode::FlowControl,
            4 => ErrorCode::SettingsTimeout,
            5 => ErrorCode::StreamClosed,
            6 => ErrorCode::FrameSize,
            7 => ErrorCode::RefusedStream,
            8 => ErrorCode::Cancel,
            9 => ErrorCode::Compression,
            0xa => ErrorCode::Connect,
            0xb => ErrorCode::EnhanceYourCalm,
            0xc => ErrorCode::InadequateSecurity,
            0xd => ErrorCode::Http11Required,
            c => ErrorCode::Unknown(c),
        }
    }
}

/// A stream identifier: 31 bits, 0 for the connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(u32);

impl StreamId {
    /// The connection (stream 0).
    pub const CONNECTION: StreamId = StreamId(0);
    /// The largest identifier (2^31 − 1), the first GOAWAY of a graceful
    /// shutdown.
    pub const MAX: StreamId = StreamId(0x7fff_ffff);

    /// An identifier from 31 bits (the reserved bit is dropped).
    pub fn new(v: u32) -> StreamId {
        StreamId(v & 0x7fff_ffff)
    }

    /// Its value.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether this is stream 0.
    pub fn is_connection(self) -> bool {
        self.0 == 0
    }

    /// Whether a client opened it (odd identifiers).
    pub fn is_client_initiated(self) -> bool {
        self.0 % 2 == 1
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_keep_unknown_values() {
        for v in 0..=0xe {
            assert_eq!(ErrorCode::from_u32(v).to_u32(), v);
        }
        assert_eq!(ErrorCode::from_u32(0xb), ErrorCode::EnhanceYourCalm);
        assert_eq!(ErrorCode::from_u32(77), ErrorCode::Unknown(77));
    }

    #[test]
    fn stream_ids_drop_the_reserved_bit_and_know_their_side() {
        assert_eq!(StreamId::new(0x8000_0001).get(), 1);
        assert!(StreamId::new(1).is_client_initiated());
        assert!(!StreamId::new(2).is_client_initiated());
        assert!(StreamId::CONNECTION.is_connection());
        assert_eq!(StreamId::MAX.get(), 0x7fff_ffff);
    }
}
