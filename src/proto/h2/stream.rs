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

#[cfg(test)]
mod tests {
    use super::State::*;
    use super::Transition::*;
    use super::*;

    const ALL: [State; 5] = [Idle, Open, HalfClosedRemote, HalfClosedLocal, Closed];

    #[test]
    fn headers_open_an_idle_stream() {
        assert_eq!(next(Idle, RecvHeaders { end_stream: false }), Ok(Open));
        assert_eq!(
            next(Idle, RecvHeaders { end_stream: true }),
            Ok(HalfClosedRemote)
        );
    }

    #[test]
    fn an_idle_stream_takes_only_headers_and_priority() {
        assert_eq!(next(Idle, RecvPriority), Ok(Idle));
        for t in [RecvData { end_stream: false }, RecvRst, RecvWindowUpdate] {
            assert_eq!(next(Idle, t), Err(Fault::Idle), "{t:?}");
        }
    }

    #[test]
    fn a_server_never_sends_first() {
        assert_eq!(
            next(Idle, SendHeaders { end_stream: false }),
            Err(Fault::CannotSend)
        );
        assert_eq!(
            next(Idle, SendData { end_stream: true }),
            Err(Fault::CannotSend)
        );
    }

    #[test]
    fn open_streams_half_close_on_either_end_stream() {
        assert_eq!(
            next(Open, RecvData { end_stream: true }),
            Ok(HalfClosedRemote)
        );
        assert_eq!(next(Open, RecvData { end_stream: false }), Ok(Open));
        assert_eq!(
            next(Open, SendData { end_stream: true }),
            Ok(HalfClosedLocal)
        );
        assert_eq!(
            next(Open, SendHeaders { end_stream: true }),
            Ok(HalfClosedLocal)
        );
        assert_eq!(next(Open, SendHeaders { end_stream: false }), Ok(Open));
    }

    #[test]
    fn trailers_must_end_the_stream() {
        assert_eq!(
            next(Open, RecvHeaders { end_stream: true }),
            Ok(HalfClosedRemote)
        );
        assert_eq!(
            next(Open, RecvHeaders { end_stream: false }),
            Err(Fault::TrailersWithoutEndStream)
        );
        assert_eq!(
            next(HalfClosedLocal, RecvHeaders { end_stream: false }),
            Err(Fault::TrailersWithoutEndStream)
        );
        assert_eq!(
            next(HalfClosedLocal, RecvHeaders { end_stream: true }),
            Ok(Closed)
        );
    }

    #[test]
    fn half_closed_remote_refuses_client_data_with_stream_closed() {
        assert_eq!(
            next(HalfClosedRemote, RecvData { end_stream: false }),
            Err(Fault::Closed)
        );
        assert_eq!(
            next(HalfClosedRemote, RecvHeaders { end_stream: true }),
            Err(Fault::Closed)
        );
        assert_eq!(
            next(HalfClosedRemote, RecvWindowUpdate),
            Ok(HalfClosedRemote)
        );
        assert_eq!(next(HalfClosedRemote, RecvPriority), Ok(HalfClosedRemote));
    }

    #[test]
    fn half_closed_remote_closes_when_we_end() {
        assert_eq!(
            next(HalfClosedRemote, SendData { end_stream: true }),
            Ok(Closed)
        );
        assert_eq!(
            next(HalfClosedRemote, SendHeaders { end_stream: true }),
            Ok(Closed)
        );
        assert_eq!(
            next(HalfClosedRemote, SendHeaders { end_stream: false }),
            Ok(HalfClosedRemote)
        );
    }

    #[test]
    fn half_closed_local_takes_the_rest_of_the_request() {
        assert_eq!(
            next(HalfClosedLocal, RecvData { end_stream: false }),
            Ok(HalfClosedLocal)
        );
        assert_eq!(
            next(HalfClosedLocal, RecvData { end_stream: true }),
            Ok(Closed)
        );
        assert_eq!(
            next(HalfClosedLocal, SendData { end_stream: false }),
            Err(Fault::CannotSend)
        );
    }

    #[test]
    fn closed_refuses_data_and_headers_but_not_priority_or_updates() {
        assert_eq!(
            next(Closed, RecvData { end_stream: false }),
            Err(Fault::Closed)
        );
        assert_eq!(
            next(Closed, RecvHeaders { end_stream: true }),
            Err(Fault::Closed)
        );
        assert_eq!(next(Closed, RecvPriority), Ok(Closed));
        assert_eq!(next(Closed, RecvWindowUpdate), Ok(Closed));
        assert_eq!(next(Closed, RecvRst), Ok(Closed));
        assert_eq!(
            next(Closed, SendHeaders { end_stream: false }),
            Err(Fault::CannotSend)
        );
    }

    #[test]
    fn a_reset_closes_any_stream_that_was_opened() {
        for s in [Open, HalfClosedRemote, HalfClosedLocal, Closed] {
            assert_eq!(next(s, RecvRst), Ok(Closed));
            assert_eq!(next(s, SendRst), Ok(Closed));
        }
    }

    #[test]
    fn priority_never_changes_a_state() {
        for s in ALL {
            assert_eq!(next(s, RecvPriority), Ok(s));
        }
    }

    #[test]
    fn the_predicates_follow_the_states() {
        assert!(Open.can_receive() && Open.can_send() && Open.is_active());
        assert!(!HalfClosedRemote.can_receive() && HalfClosedRemote.can_send());
        assert!(HalfClosedLocal.can_receive() && !HalfClosedLocal.can_send());
        assert!(!Idle.is_active() && !Closed.is_active());
    }

    #[test]
    fn no_transition_leaves_closed_for_another_state() {
        let all_t = [
            RecvHeaders { end_stream: false },
            RecvHeaders { end_stream: true },
            RecvData { end_stream: false },
            RecvData { end_stream: true },
            RecvRst,
            RecvWindowUpdate,
            RecvPriority,
            SendHeaders { end_stream: false },
            SendHeaders { end_stream: true },
            SendData { end_stream: false },
            SendData { end_stream: true },
            SendRst,
        ];
        for t in all_t {
            if let Ok(s) = next(Closed, t) {
                assert_eq!(s, Closed, "{t:?}");
            }
            // Nothing returns to Idle once a stream has been opened.
            for s in [Open, HalfClosedRemote, HalfClosedLocal] {
                assert_ne!(next(s, t), Ok(Idle));
            }
        }
    }
}
