//! What a client's frames can cost it (a stream, or the connection) and
//! why, and the front calls the connection refuses: the codec's errors,
//! one place.

use super::frame::{FrameError, Kind};
use super::hpack::DecodeError;
use super::limits::Limit;
use super::settings::SettingsError;
use super::ErrorCode;

/// A client fault that costs it one stream (RST_STREAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// DATA or HEADERS after END_STREAM or on a closed stream.
    Closed,
    /// Trailers without END_STREAM.
    TrailersWithoutEndStream,
    /// Past MAX_CONCURRENT_STREAMS (REFUSED_STREAM).
    Refused,
    /// More DATA than the stream's window.
    FlowControl,
    /// A WINDOW_UPDATE taking the stream's window past 2^31 − 1.
    WindowOverflow,
    /// A WINDOW_UPDATE of 0 on a stream.
    ZeroIncrement,
    /// A stream made to depend on itself.
    SelfDependency,
    /// A PRIORITY frame of the wrong length.
    PriorityLength,
    /// DATA that does not add up to the request's content-length.
    ContentLength,
    /// Trailers over our list limits.
    TrailersTooLarge,
}

impl StreamFault {
    /// The code in the RST_STREAM.
    pub fn code(self) -> ErrorCode {
        match self {
            StreamFault::Closed => ErrorCode::StreamClosed,
            StreamFault::Refused => ErrorCode::RefusedStream,
            StreamFault::FlowControl | StreamFault::WindowOverflow => ErrorCode::FlowControl,
            StreamFault::PriorityLength => ErrorCode::FrameSize,
            StreamFault::TrailersTooLarge => ErrorCode::EnhanceYourCalm,
            StreamFault::TrailersWithoutEndStream
            | StreamFault::ZeroIncrement
            | StreamFault::SelfDependency
            | StreamFault::ContentLength => ErrorCode::Protocol,
        }
    }
}

/// Why the connection ended: a GOAWAY with `code` is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    /// The code in our GOAWAY.
    pub code: ErrorCode,
    /// Why.
    pub fault: ConnFault,
}

/// A client fault that costs it the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnFault {
    /// Not the client preface.
    Preface,
    /// The first frame was not SETTINGS.
    FirstFrameNotSettings,
    /// A frame breaking §4 or §6.
    Frame(FrameError),
    /// A SETTINGS value out of range.
    Settings(SettingsError),
    /// A block breaking HPACK.
    Hpack(DecodeError),
    /// A limit of [`Limits`].
    Limit(Limit),
    /// A stream the client cannot open (even, or not above the last).
    StreamId,
    /// HEADERS on a stream that was closed.
    HeadersOnClosed,
    /// A frame a stream in "idle" cannot receive.
    Idle(Kind),
    /// A frame other than CONTINUATION inside a header block.
    ExpectedContinuation,
    /// CONTINUATION outside a header block.
    UnexpectedContinuation,
    /// A client never sends PUSH_PROMISE.
    PushPromise,
    /// More DATA than the connection's window.
    FlowControl,
    /// The connection's send window past 2^31 − 1.
    WindowOverflow,
    /// A WINDOW_UPDATE of 0 on the connection.
    ZeroIncrement,
    /// The front ended the connection ([`Connection::abort`]): a
    /// timeout, SETTINGS_TIMEOUT among them.
    Ended,
}

/// A front call the connection refused: a bug in the caller, nothing sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No such open stream.
    UnknownStream,
    /// The stream's state does not allow it (already ended).
    State,
    /// The connection has ended.
    Closed,
}
