//! The stream states of RFC 9113 §5.1, server side, as a pure table: a
//! state and what happened give the next state or the fault. No push, so
//! neither "reserved" state is reachable. The connection ([`super::conn`])
//! keeps a state per open stream and maps faults to errors.

/// A stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not opened yet.
    Idle,
    /// Both sides may send.
    Open,
    /// The client sent END_STREAM; we may still send.
    HalfClosedRemote,
    /// We sent END_STREAM; the client may still send.
    HalfClosedLocal,
    /// Done.
    Closed,
}

/// What happened on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A complete header block received (request or trailers).
    RecvHeaders {
        /// END_STREAM on its HEADERS frame.
        end_stream: bool,
    },
    /// A DATA frame received.
    RecvData {
        /// END_STREAM.
        end_stream: bool,
    },
    /// RST_STREAM received.
    RecvRst,
    /// WINDOW_UPDATE received.
    RecvWindowUpdate,
    /// PRIORITY received.
    RecvPriority,
    /// We send HEADERS (1xx, the response, or trailers).
    SendHeaders {
        /// END_STREAM.
        end_stream: bool,
    },
    /// We send DATA.
    SendData {
        /// END_STREAM.
        end_stream: bool,
    },
    /// We send RST_STREAM.
    SendRst,
}

/// Why a transition is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A frame other than HEADERS or PRIORITY on an idle stream: a
    /// connection error, PROTOCOL_ERROR (§5.1 "idle").
    Idle,
    /// DATA or HEADERS after the client's END_STREAM or on a closed
    /// stream: a stream error, STREAM_CLOSED.
    Closed,
    /// A second header block without END_STREAM (trailers must end the
    /// stream, §8.1): a stream error, PROTOCOL_ERROR.
    TrailersWithoutEndStream,
    /// We tried to send on a stream that cannot carry it: a bug in the
    /// caller, refused without touching the stream.
    CannotSend,
}

/// The next state, or why not.
pub fn next(state: State, t: Transition) -> Result<State, Fault> {
    use State::*;
    use Transition::*;
    let after = |end: bool, then: State, or: State| if end { then } else { or };
    match (state, t) {
        (_, SendRst) => Ok(Closed),
        (_, RecvPriority) => Ok(state),

        (Idle, RecvHeaders { end_stream }) => Ok(after(end_stream, HalfClosedRemote, Open)),
        (Idle, RecvData { .. } | RecvRst | RecvWindowUpdate) => Err(Fault::Idle),
        (Idle, SendHeaders { .. } | SendData { .. }) => Err(Fault::CannotSend),

        (Open, RecvHeaders { end_stream: true }) => Ok(HalfClosedRemote),
        (Open | HalfClosedLocal, RecvHeaders { end_stream: false }) => {
            Err(Fault::TrailersWithoutEndStream)
        }
        (Open, RecvData { end_stream }) => Ok(after(end_stream, HalfClosedRemote, Open)),
        (Open, SendHeaders { end_stream } | SendData { end_stream }) => {
            Ok(after(end_stream, HalfClosedLocal, Open))
        }

        (HalfClosedRemote, RecvHeaders { .. } | RecvData { .. }) => Err(Fault::Closed),
        (HalfClosedRemote, SendHeaders { end_stream } | SendData { end_stream }) => {
            Ok(after(end_stream, Closed, HalfClosedRemote))
        }

        (HalfClosedLocal, RecvHeaders { end_stream: true }) => Ok(Closed),
        (HalfClosedLocal, RecvData { end_stream }) => {
            Ok(after(end_stream, Closed, HalfClosedLocal))
        }
        (HalfClosedLocal, SendHeaders { .. } | SendData { .. }) => Err(Fault::CannotSend),

        (Open | HalfClosedRemote | HalfClosedLocal | Closed, RecvRst) => Ok(Closed),
        (s, RecvWindowUpdate) => Ok(s),

        (Closed, RecvHeaders { .. } | RecvData { .. }) => Err(Fault::Closed),
        (Closed, SendHeaders { .. } | SendData { .. }) => Err(Fault::CannotSend),
    }
}

impl State {
    /// Whether the client may still send DATA or trailers.
    pub fn can_receive(self) -> bool {
        matches!(self, State::Open | State::HalfClosedLocal)
    }

    /// Whether we may still send.
    pub fn can_send(self) -> bool {
        matches!(self, State::Open | State::HalfClosedRemote)
    }

    /// Whether the stream counts against MAX_CONCURRENT_STREAMS (§5.1.2).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            State::Open | State::HalfClosedRemote | State::HalfClosedLocal
        )
    }
}
