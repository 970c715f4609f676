//! One client connection, server side: the state the frames act on, the
//! events the front reads, and what the front may send. Frames coming in
//! are handled in [`super::recv`]; this file owns the state, the output
//! and the front's calls. No I/O and no clock: [`Connection::receive`]
//! takes the bytes read and the time, [`Connection::output`] is what to
//! write.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::Instant;

use super::flow::{RecvWindow, Window};
use super::frame::{self, Kind, HEADER_LEN};
use super::hpack::{self, Decoder, Field, Fields, Over};
use super::limits::{Counters, Limit, Limits, Rate};
use super::settings::{Ours, Settings};
use super::stream::{self, State, Transition};
use super::{ErrorCode, StreamId};

pub use super::fault::{ConnError, ConnFault, SendError, StreamFault};

/// How a connection is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// What we announce.
    pub ours: Ours,
    /// What we take.
    pub limits: Limits,
}

/// What the front learns from `receive`. Ranges are into the input of the
/// `receive` call that produced them: read them before the next call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request's fields, within our limits, not yet translated
    /// ([`super::to_h1`] does that).
    Request {
        /// Its stream.
        stream: StreamId,
        /// The decoded fields (give them back with
        /// [`Connection::recycle`] once read).
        fields: Fields,
        /// No body follows.
        end_stream: bool,
    },
    /// A new request whose list went over a limit: the front answers 431
    /// on the stream (it is open for that).
    RequestTooLarge {
        /// Its stream.
        stream: StreamId,
        /// No body follows.
        end_stream: bool,
        /// Which limit.
        over: Over,
    },
    /// Request body bytes, `input[range]`. Hand them on, then call
    /// [`Connection::release`] for them.
    Data {
        /// Its stream.
        stream: StreamId,
        /// Where in the input.
        range: Range<usize>,
    },
    /// Trailers; the request ends with them.
    Trailers {
        /// Its stream.
        stream: StreamId,
        /// The decoded fields (give them back with
        /// [`Connection::recycle`] once read).
        fields: Fields,
    },
    /// The request ended (END_STREAM on DATA, or on HEADERS with a body).
    EndStream {
        /// Its stream.
        stream: StreamId,
    },
    /// The client reset the stream: drop its leg.
    Reset {
        /// Its stream.
        stream: StreamId,
        /// The client's code.
        code: ErrorCode,
    },
    /// We reset the stream for a client fault (RST_STREAM queued): drop
    /// its leg.
    StreamError {
        /// Its stream.
        stream: StreamId,
        /// Why.
        fault: StreamFault,
    },
    /// More may be sent: on this stream, or on every stream
    /// ([`StreamId::CONNECTION`]).
    WindowOpen {
        /// The stream, or the connection.
        stream: StreamId,
    },
    /// The client is going away: finish streams up to `last_stream`.
    GoAway {
        /// The last stream it may still act on (ours: we open none).
        last_stream: StreamId,
        /// Its code.
        code: ErrorCode,
    },
}

/// Where the input stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Bytes of the preface matched so far.
    Preface(usize),
    /// Frames, the first of which must be SETTINGS.
    Frames,
    /// Ended with this error; nothing more is read.
    Failed(ConnError),
}

/// Where the current frame stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reading {
    /// Collecting a frame header.
    Head { buf: [u8; HEADER_LEN], got: usize },
    /// Collecting a non-DATA payload into `scratch`.
    Payload(frame::Header),
    /// Streaming a DATA payload.
    Data(DataIn),
}

/// A DATA frame being streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DataIn {
    pub(super) header: frame::Header,
    /// Still to learn the pad length (first payload byte).
    pub(super) need_pad_len: bool,
    pub(super) data_left: u32,
    pub(super) pad_left: u32,
    /// Whether the bytes go to the front (else they are dropped and
    /// credited back at once).
    pub(super) deliver: bool,
}

/// A header block being assembled from HEADERS and CONTINUATION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block {
    pub(super) stream: StreamId,
    pub(super) end_stream: bool,
    pub(super) bytes: Vec<u8>,
    pub(super) continuations: u32,
    /// A stream error found in the HEADERS frame, applied once the block is
    /// decoded (HPACK must see it anyway).
    pub(super) fault: Option<StreamFault>,
}

/// One stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stream {
    pub(super) state: State,
    pub(super) send: Window,
    pub(super) recv: RecvWindow,
    /// The request's content-length, and body bytes seen.
    pub(super) length: Option<u64>,
    pub(super) received: u64,
    /// We sent its response head (or a 1xx): a reset before this one is
    /// the costly kind (the backend was asked for nothing it delivered).
    pub(super) responded: bool,
}

/// Our two-step GOAWAY (§6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shutdown {
    /// Running.
    No,
    /// GOAWAY(2^31 − 1) and a PING sent; waiting for its ack.
    Announced,
    /// GOAWAY(last) sent: streams above it are ignored.
    Final(StreamId),
}

/// The PING payload of a graceful shutdown's round trip.
pub(super) const SHUTDOWN_PING: [u8; 8] = *b"moirai:g";

/// Rates, one per limit counted in windows.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Rates {
    pub(super) resets: Rate,
    pub(super) pings: Rate,
    pub(super) settings: Rate,
    pub(super) empty: Rate,
    pub(super) window_updates: Rate,
}

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    pub(super) phase: Phase,
    pub(super) reading: Reading,
    pub(super) scratch: Vec<u8>,
    pub(super) block: Option<Block>,
    pub(super) got_settings: bool,
    pub(super) peer: Settings,
    pub(super) ours: Ours,
    pub(super) limits: Limits,
    pub(super) decoder: Decoder,
    /// The last header block's vector, for the next one.
    pub(super) block_spare: Vec<u8>,
    /// Lists given back by the front, decoded into next: a read brings
    /// several requests at once.
    pub(super) spares: Vec<Fields>,
    pub(super) streams: BTreeMap<StreamId, Stream>,
    /// The highest stream the client opened (or tried to).
    pub(super) last_stream: StreamId,
    pub(super) send_window: Window,
    pub(super) recv_window: RecvWindow,
    pub(super) out: Vec<u8>,
    pub(super) queued_control: u32,
    pub(super) events: Vec<Event>,
    pub(super) shutdown: Shutdown,
    pub(super) counters: Counters,
    pub(super) rates: Rates,
    pub(super) new_streams: u32,
    pub(super) settings_unacked: u32,
    pub(super) client_gone: bool,
    /// Streams we reset lately: frames the client sent before our
    /// RST_STREAM reached it are ignored, not answered (§5.1 "closed").
    pub(super) reset_lately: VecDeque<StreamId>,
}

/// The largest field list kept for reuse, in heap bytes.
const MAX_SPARE: usize = 4096;
/// How many field lists are kept for reuse.
const MAX_SPARES: usize = 16;
/// Output room a connection takes at once after a rest: a burst's
/// responses, headers and small bodies.
const OUT_AT_ONCE: usize = 4096;
/// Events room taken at once after a rest.
const EVENTS_AT_ONCE: usize = 16;
/// The largest header block vector kept for the next block.
pub(super) const MAX_BLOCK_SPARE: usize = 16 * 1024;

/// How many reset streams are remembered.
const RESET_MEMORY: usize = 128;

impl Connection {
    /// A connection whose client preface is still to come. Our SETTINGS
    /// and the connection window's first update are queued at once (our
    /// preface, §3.4).
    pub fn new(config: Config) -> Connection {
        let ours = config.ours.clamped();
        let mut c = Connection {
            phase: Phase::Preface(0),
            reading: Reading::Head {
                buf: [0; HEADER_LEN],
                got: 0,
            },
            scratch: Vec::new(),
            block: None,
            got_settings: false,
            peer: Settings::default(),
            ours,
            limits: config.limits,
            decoder: Decoder::new(hpack::DEFAULT_TABLE_SIZE),
            block_spare: Vec::new(),
            spares: Vec::new(),
            streams: BTreeMap::new(),
            last_stream: StreamId::CONNECTION,
            send_window: Window::new(super::settings::DEFAULT_WINDOW),
            recv_window: RecvWindow::starting_at(
                super::settings::DEFAULT_WINDOW,
                ours.connection_window,
            ),
            out: Vec::new(),
            queued_control: 0,
            events: Vec::new(),
            shutdown: Shutdown::No,
            counters: Counters::default(),
            rates: Rates::default(),
            new_streams: 0,
            settings_unacked: 1,
            client_gone: false,
            reset_lately: VecDeque::new(),
        };
        frame::write_settings(&mut c.out, &ours.params());
        if let Some(inc) = c.recv_window.release(0) {
            frame::write_window_update(&mut c.out, StreamId::CONNECTION, inc);
        }
        c
    }

    /// Takes bytes read from the client, at `now`. Everything is consumed
    /// (partial frames are kept inside); events are queued for
    /// [`Connection::events`]. On a connection error a GOAWAY is queued,
    /// the error is returned now and on every later call, and the front
    /// writes the output and closes.
    pub fn receive(&mut self, input: &[u8], now: Instant) -> Result<(), ConnError> {
        if let Phase::Failed(e) = self.phase {
            return Err(e);
        }
        self.new_streams = 0;
        self.make_room();
        match self.read(input, now) {
            Ok(()) => Ok(()),
            Err(fault) => Err(self.fail(fault)),
        }
    }

    /// Ends the connection for `fault`: counts a limit, queues GOAWAY.
    pub(super) fn fail(&mut self, fault: ConnFault) -> ConnError {
        let code = match fault {
            ConnFault::Frame(e) => e.code(),
            ConnFault::Settings(e) => e.code(),
            ConnFault::Hpack(_) => ErrorCode::Compression,
            ConnFault::Limit(l) => l.connection_code().unwrap_or(ErrorCode::EnhanceYourCalm),
            ConnFault::HeadersOnClosed => ErrorCode::StreamClosed,
            ConnFault::FlowControl | ConnFault::WindowOverflow => ErrorCode::FlowControl,
            _ => ErrorCode::Protocol,
        };
        if let ConnFault::Limit(l) = fault {
            self.counters.hit(l);
        }
        let err = ConnError { code, fault };
        frame::write_goaway(&mut self.out, self.last_stream, code, &[]);
        self.phase = Phase::Failed(err);
        self.streams.clear();
        err
    }

    /// The events since the last call, oldest first.
    pub fn events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Bytes to write to the client.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// `n` bytes of [`Connection::output`] were written.
    pub fn written(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
        if self.out.is_empty() {
            self.queued_control = 0;
        }
    }

    /// After a [`Connection::vacate`] without a room to furnish it, the
    /// vectors a burst needs come back in one allocation each, not in a
    /// doubling per frame or event.
    fn make_room(&mut self) {
        if self.out.capacity() == 0 {
            self.out.reserve(OUT_AT_ONCE);
        }
        if self.events.capacity() == 0 {
            self.events.reserve(EVENTS_AT_ONCE);
        }
    }

    /// Takes back a request's or trailers' fields once the front has read
    /// them: a later block is decoded into their allocation. (A few: a
    /// read often brings several requests; a list grown large by one big
    /// request is not kept.)
    pub fn recycle(&mut self, fields: Fields) {
        if fields.capacity() <= MAX_SPARE && self.spares.len() < MAX_SPARES {
            if self.spares.capacity() == 0 {
                self.spares.reserve(MAX_SPARES);
            }
            self.spares.push(fields);
        }
    }

    /// Whether [`Connection::vacate`] has nothing to take out.
    #[cfg(test)]
    pub fn is_slim(&self) -> bool {
        self.out.capacity() == 0
            && self.scratch.capacity() == 0
            && self.events.capacity() == 0
            && self.spares.capacity() == 0
            && self.block_spare.capacity() == 0
    }

    /// What the connection saw and refused.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether the client acknowledged our SETTINGS. A front that waits
    /// too long for it calls [`Connection::abort`] with SETTINGS_TIMEOUT
    /// (§6.5.3): the codec has no clock.
    pub fn settings_acked(&self) -> bool {
        self.settings_unacked == 0
    }

    /// Ends the connection now with GOAWAY(`code`): the front's timers
    /// (SETTINGS_TIMEOUT, idle). Later calls to `receive` return the error.
    pub fn abort(&mut self, code: ErrorCode) {
        if matches!(self.phase, Phase::Failed(_)) {
            return;
        }
        frame::write_goaway(&mut self.out, self.last_stream, code, &[]);
        self.phase = Phase::Failed(ConnError {
            code,
            fault: ConnFault::Ended,
        });
        self.streams.clear();
    }

    /// The client's settings.
    pub fn peer_settings(&self) -> &Settings {
        &self.peer
    }

    /// Streams open now.
    pub fn active_streams(&self) -> usize {
        self.streams
            .values()
            .filter(|s| s.state.is_active())
            .count()
    }

    /// A stream's state (Closed once forgotten, Idle if never opened).
    pub fn stream_state(&self, id: StreamId) -> State {
        match self.streams.get(&id) {
            Some(s) => s.state,
            None if id > self.last_stream => State::Idle,
            None => State::Closed,
        }
    }

    /// The connection ended, or is done: GOAWAY sent or received and no
    /// stream left. The front closes once the output is written.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Failed(_))
            || ((self.client_gone || matches!(self.shutdown, Shutdown::Final(_)))
                && self.streams.is_empty())
    }

    /// Queues a control frame, holding the client to the limit on those
    /// it leaves unread.
    pub(super) fn control(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), ConnFault> {
        write(&mut self.out);
        self.queued_control += 1;
        if self.queued_control > self.limits.max_queued_control {
            return Err(ConnFault::Limit(Limit::QueuedControl));
        }
        Ok(())
    }

    /// Bytes that may be sent on `id` now (both windows).
    pub fn send_window(&self, id: StreamId) -> u32 {
        match self.streams.get(&id) {
            Some(s) if s.state.can_send() => s.send.available().min(self.send_window.available()),
            _ => 0,
        }
    }

    fn live(&self) -> Result<(), SendError> {
        match self.phase {
            Phase::Failed(_) => Err(SendError::Closed),
            _ => Ok(()),
        }
    }

    /// Moves a stream to its next state, forgetting it once closed.
    pub(super) fn step(&mut self, id: StreamId, t: Transition) -> Result<(), stream::Fault> {
        let s = self.streams.get_mut(&id).ok_or(stream::Fault::Closed)?;
        s.state = stream::next(s.state, t)?;
        if s.state == State::Closed {
            self.streams.remove(&id);
        }
        Ok(())
    }

    /// Sends a header block (a 1xx, the response, or trailers), split into
    /// HEADERS and CONTINUATION at the client's frame size.
    pub fn send_headers(
        &mut self,
        id: StreamId,
        fields: &[Field],
        end_stream: bool,
    ) -> Result<(), SendError> {
        let mut block = Vec::new();
        hpack::encode(
            &mut block,
            fields.iter().map(|f| (&f.name[..], &f.value[..])),
        );
        self.send_block(id, &block, end_stream)
    }

    /// [`Connection::send_headers`] for a block already HPACK-encoded
    /// (with the static table and literals only, as ours: nothing in the
    /// client's decoder may depend on it).
    pub fn send_block(
        &mut self,
        id: StreamId,
        block: &[u8],
        end_stream: bool,
    ) -> Result<(), SendError> {
        self.live()?;
        self.make_room();
        let s = self.streams.get(&id).ok_or(SendError::UnknownStream)?;
        stream::next(s.state, Transition::SendHeaders { end_stream })
            .map_err(|_| SendError::State)?;
        let max = self.peer.max_frame_size as usize;
        let mut chunks = block.chunks(max).peekable();
        let first = chunks.next().unwrap_or(&[]);
        let mut fl = if end_stream {
            frame::flags::END_STREAM
        } else {
            0
        };
        if chunks.peek().is_none() {
            fl |= frame::flags::END_HEADERS;
        }
        frame::write_header(&mut self.out, first.len(), Kind::Headers, fl, id);
        self.out.extend_from_slice(first);
        while let Some(c) = chunks.next() {
            let fl = if chunks.peek().is_none() {
                frame::flags::END_HEADERS
            } else {
                0
            };
            frame::write_header(&mut self.out, c.len(), Kind::Continuation, fl, id);
            self.out.extend_from_slice(c);
        }
        if let Some(s) = self.streams.get_mut(&id) {
            s.responded = true;
        }
        self.step(id, Transition::SendHeaders { end_stream })
            .map_err(|_| SendError::State)
    }

    /// Sends as much of `data` as the windows allow, in frames of the
    /// client's size; END_STREAM goes on the last frame only if all of
    /// `data` went. Returns the bytes sent.
    pub fn send_data(
        &mut self,
        id: StreamId,
        data: &[u8],
        end_stream: bool,
    ) -> Result<usize, SendError> {
        self.live()?;
        self.make_room();
        let s = self.streams.get(&id).ok_or(SendError::UnknownStream)?;
        if !s.state.can_send() {
            return Err(SendError::State);
        }
        let n = data.len().min(self.send_window(id) as usize);
        let end = end_stream && n == data.len();
        let max = self.peer.max_frame_size as usize;
        let mut sent = 0;
        loop {
            let len = (n - sent).min(max);
            let last = sent + len == n;
            if len == 0 && !(last && end) {
                break;
            }
            frame::write_data_header(&mut self.out, id, len, last && end);
            self.out.extend_from_slice(&data[sent..sent + len]);
            sent += len;
            if last {
                break;
            }
        }
        self.send_window.spend(n as u32);
        if let Some(s) = self.streams.get_mut(&id) {
            s.send.spend(n as u32);
        }
        if end {
            self.step(id, Transition::SendData { end_stream: true })
                .map_err(|_| SendError::State)?;
        }
        Ok(n)
    }

    /// Resets a stream of our own accord (the backend failed, the front
    /// gave up): RST_STREAM with `code`, the stream forgotten.
    pub fn reset(&mut self, id: StreamId, code: ErrorCode) -> Result<(), SendError> {
        self.live()?;
        if self.streams.remove(&id).is_none() {
            return Err(SendError::UnknownStream);
        }
        frame::write_rst_stream(&mut self.out, id, code);
        self.remember_reset(id);
        Ok(())
    }

    /// Resets a stream for a client's fault only the front could see (a
    /// request or trailers that break HTTP's rules once decoded): as a
    /// stream error the codec finds itself, counted toward the limit on
    /// them, past which the connection ends with GOAWAY
    /// (ENHANCE_YOUR_CALM), returned as the error.
    pub fn reject(&mut self, id: StreamId, code: ErrorCode) -> Result<(), ConnError> {
        if let Phase::Failed(e) = self.phase {
            return Err(e);
        }
        if self.streams.remove(&id).is_some() {
            frame::write_rst_stream(&mut self.out, id, code);
            self.remember_reset(id);
        }
        self.counters.stream_errors_sent += 1;
        if self.counters.stream_errors_sent > self.limits.max_stream_errors {
            return Err(self.fail(ConnFault::Limit(Limit::StreamErrors)));
        }
        Ok(())
    }

    /// Notes a stream we sent RST_STREAM on.
    pub(super) fn remember_reset(&mut self, id: StreamId) {
        if self.reset_lately.len() == RESET_MEMORY {
            self.reset_lately.pop_front();
        }
        self.reset_lately.push_back(id);
    }

    /// Whether we reset `id` lately: its frames in flight are ignored.
    pub(super) fn was_reset(&self, id: StreamId) -> bool {
        self.reset_lately.contains(&id)
    }

    /// `n` bytes of a stream's DATA were handed on: credits them back to
    /// the client, a WINDOW_UPDATE once half a window is owed.
    pub fn release(&mut self, id: StreamId, n: u32) {
        if matches!(self.phase, Phase::Failed(_)) {
            return;
        }
        if let Some(inc) = self.recv_window.release(n) {
            frame::write_window_update(&mut self.out, StreamId::CONNECTION, inc);
        }
        if let Some(s) = self.streams.get_mut(&id) {
            if s.state.can_receive() {
                if let Some(inc) = s.recv.release(n) {
                    frame::write_window_update(&mut self.out, id, inc);
                }
            }
        }
    }

    /// Starts a graceful shutdown (§6.8): GOAWAY with 2^31 − 1 and a
    /// PING; when its ack comes back, the final GOAWAY with the last
    /// stream follows by itself. Calling it again, or once the round trip
    /// is taking too long, sends the final GOAWAY at once.
    pub fn shutdown(&mut self) {
        if matches!(self.phase, Phase::Failed(_)) {
            return;
        }
        match self.shutdown {
            Shutdown::No => {
                frame::write_goaway(&mut self.out, StreamId::MAX, ErrorCode::NoError, &[]);
                frame::write_ping(&mut self.out, false, SHUTDOWN_PING);
                self.shutdown = Shutdown::Announced;
            }
            Shutdown::Announced => self.final_goaway(),
            Shutdown::Final(_) => {}
        }
    }

    pub(super) fn final_goaway(&mut self) {
        frame::write_goaway(&mut self.out, self.last_stream, ErrorCode::NoError, &[]);
        self.shutdown = Shutdown::Final(self.last_stream);
    }

    /// Whether our final GOAWAY excludes `id`: its frames are ignored.
    pub(super) fn beyond_goaway(&self, id: StreamId) -> bool {
        matches!(self.shutdown, Shutdown::Final(last) if id > last)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn status(code: &str) -> Vec<Field> {
        vec![Field::new(b":status", code.as_bytes())]
    }

    #[test]
    fn a_response_goes_out_as_headers_then_data() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.send_headers(sid(1), &status("200"), false).unwrap();
        assert_eq!(c.conn.send_data(sid(1), b"hello", true).unwrap(), 5);
        let f = c.take_frames();
        assert_eq!(f[0].0.kind, Kind::Headers);
        assert_eq!(f[0].1, [0x88]);
        assert_eq!(
            (f[1].0.kind, f[1].0.flags, &f[1].1[..]),
            (Kind::Data, 1, &b"hello"[..])
        );
        assert_eq!(c.conn.stream_state(sid(1)), State::Closed);
        assert_eq!(c.conn.active_streams(), 0);
    }

    #[test]
    fn data_is_cut_at_the_clients_frame_size() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.send_headers(sid(1), &status("200"), false).unwrap();
        c.take_frames();
        let n = c.conn.send_data(sid(1), &[7; 40_000], true).unwrap();
        assert_eq!(n, 40_000);
        let lens: Vec<_> = c.take_frames().iter().map(|(h, _)| h.length).collect();
        assert_eq!(lens, vec![16_384, 16_384, 7_232]);
    }

    #[test]
    fn data_stops_at_the_window_and_end_stream_waits() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.send_headers(sid(1), &status("200"), false).unwrap();
        c.take_frames();
        let n = c.conn.send_data(sid(1), &[0; 70_000], true).unwrap();
        assert_eq!(n, 65_535);
        let f = c.take_frames();
        assert!(f
            .iter()
            .all(|(h, _)| h.flags & frame::flags::END_STREAM == 0));
        assert_eq!(c.conn.send_window(sid(1)), 0);
        assert_eq!(c.conn.send_data(sid(1), &[0; 10], true).unwrap(), 0);
        assert!(c.take_frames().is_empty());
        c.send(&window_update(0, 100)).unwrap();
        c.send(&window_update(1, 100)).unwrap();
        assert!(c
            .events
            .contains(&Got::Event(Event::WindowOpen { stream: sid(1) })));
        assert_eq!(c.conn.send_data(sid(1), &[0; 10], true).unwrap(), 10);
        assert_eq!(c.conn.stream_state(sid(1)), State::Closed);
    }

    #[test]
    fn an_empty_end_stream_needs_no_window() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.send_headers(sid(1), &status("200"), false).unwrap();
        c.conn.send_data(sid(1), &[0; 65_535], false).unwrap();
        assert_eq!(c.conn.send_data(sid(1), b"", true).unwrap(), 0);
        assert_eq!(c.conn.stream_state(sid(1)), State::Closed);
    }

    #[test]
    fn a_large_block_is_split_into_continuations() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        let mut f = status("200");
        f.push(Field::new(b"x-big", &[b'a'; 40_000]));
        c.conn.send_headers(sid(1), &f, true).unwrap();
        let fr = c.take_frames();
        let kinds: Vec<_> = fr.iter().map(|(h, _)| (h.kind, h.flags)).collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::Headers, frame::flags::END_STREAM),
                (Kind::Continuation, 0),
                (Kind::Continuation, frame::flags::END_HEADERS),
            ]
        );
        let block: Vec<u8> = fr.iter().flat_map(|(_, p)| p.clone()).collect();
        let d = Decoder::default()
            .decode(
                &block,
                hpack::ListLimits {
                    max_list_size: usize::MAX,
                    max_fields: 10,
                },
            )
            .unwrap();
        assert_eq!(d.fields.to_vec(), f);
    }

    #[test]
    fn interim_responses_keep_the_stream_open() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        c.conn.send_headers(sid(1), &status("100"), false).unwrap();
        assert_eq!(c.conn.stream_state(sid(1)), State::Open);
        c.conn.send_headers(sid(1), &status("200"), true).unwrap();
        assert_eq!(c.conn.stream_state(sid(1)), State::HalfClosedLocal);
        // The client may still finish its body.
        c.send(&data(1, b"x", true)).unwrap();
        assert_eq!(c.conn.stream_state(sid(1)), State::Closed);
    }

    #[test]
    fn sending_on_an_unknown_or_ended_stream_is_refused() {
        let mut c = Client::new();
        assert_eq!(
            c.conn.send_headers(sid(1), &status("200"), true),
            Err(SendError::UnknownStream)
        );
        c.send(&headers(1, &POST, false)).unwrap();
        c.conn.send_headers(sid(1), &status("200"), true).unwrap();
        assert_eq!(c.conn.send_data(sid(1), b"x", false), Err(SendError::State));
        assert_eq!(
            c.conn.send_headers(sid(1), &status("200"), true),
            Err(SendError::State)
        );
    }

    #[test]
    fn nothing_is_sent_after_a_connection_error() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        let _ = c.send(&rst(99, ErrorCode::Cancel));
        assert_eq!(
            c.conn.send_headers(sid(1), &status("200"), true),
            Err(SendError::Closed)
        );
        assert_eq!(
            c.conn.reset(sid(1), ErrorCode::Cancel),
            Err(SendError::Closed)
        );
    }

    #[test]
    fn our_reset_forgets_the_stream() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        c.take_frames();
        c.conn.reset(sid(1), ErrorCode::Internal).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::Internal)]);
        assert_eq!(
            c.conn.reset(sid(1), ErrorCode::Internal),
            Err(SendError::UnknownStream)
        );
        // The client's DATA in flight is ignored (§5.1 "closed"), and
        // costs it no stream error.
        c.send(&data(1, b"x", false)).unwrap();
        assert!(c.resets().is_empty());
        assert!(c.events.is_empty());
        assert_eq!(c.conn.counters().stream_errors_sent, 0);
    }

    #[test]
    fn graceful_shutdown_takes_two_goaways() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.shutdown();
        let f = c.take_frames();
        assert_eq!(f[0].0.kind, Kind::GoAway);
        assert_eq!(f[0].1[..4], 0x7fff_ffffu32.to_be_bytes());
        assert_eq!(f[1].0.kind, Kind::Ping);
        // A stream opened while the first GOAWAY travels is still served.
        c.send(&get(3)).unwrap();
        assert!(matches!(c.events[..], [Got::Event(Event::Request { .. })]));
        c.send(&ping(true, SHUTDOWN_PING)).unwrap();
        assert_eq!(c.goaway(), Some((3, ErrorCode::NoError)));
        // Streams above the last are ignored.
        c.send(&get(5)).unwrap();
        assert!(c.events.is_empty());
        assert_eq!(c.conn.active_streams(), 2);
        assert!(!c.conn.is_done());
        for id in [1, 3] {
            c.conn.send_headers(sid(id), &status("204"), true).unwrap();
        }
        assert!(c.conn.is_done());
    }

    #[test]
    fn a_second_shutdown_call_sends_the_final_goaway_at_once() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.shutdown();
        c.take_frames();
        c.conn.shutdown();
        assert_eq!(c.goaway(), Some((1, ErrorCode::NoError)));
        c.conn.shutdown();
        assert!(c.take_frames().is_empty());
    }

    #[test]
    fn another_ping_ack_does_not_finish_the_shutdown() {
        let mut c = Client::new();
        c.conn.shutdown();
        c.take_frames();
        c.send(&ping(true, [1; 8])).unwrap();
        assert!(c.take_frames().is_empty());
    }

    #[test]
    fn the_hpack_state_survives_a_refused_stream() {
        let config = Config {
            ours: Ours {
                max_concurrent_streams: 1,
                ..Ours::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        c.send(&get(1)).unwrap();
        // An indexed-literal block for stream 3 (refused), then stream 5
        // referring to the entry it added.
        let mut b3 = block(&GET);
        b3.push(0x40);
        b3.push(1);
        b3.push(b'k');
        b3.push(1);
        b3.push(b'v');
        let mut bytes = enc(frame::Frame::Headers {
            stream: sid(3),
            end_stream: true,
            end_headers: true,
            priority: None,
            fragment: &b3,
            pad: None,
        });
        c.send(&bytes).unwrap();
        c.conn.send_headers(sid(1), &status("200"), true).unwrap();
        let mut b5 = block(&GET);
        b5.push(0x80 | 62);
        bytes = enc(frame::Frame::Headers {
            stream: sid(5),
            end_stream: true,
            end_headers: true,
            priority: None,
            fragment: &b5,
            pad: None,
        });
        c.send(&bytes).unwrap();
        let Some(Got::Event(Event::Request { fields, .. })) = c.events.first() else {
            panic!("no request: {:?}", c.events);
        };
        assert_eq!(fields.to_vec().last(), Some(&Field::new(b"k", b"v")));
    }

    #[test]
    fn our_settings_are_acked_by_the_client() {
        let mut c = Client::new();
        assert!(!c.conn.settings_acked());
        let mut ack = Vec::new();
        frame::write_settings_ack(&mut ack);
        c.send(&ack).unwrap();
        assert!(c.conn.settings_acked());
    }

    #[test]
    fn abort_sends_goaway_and_ends_the_connection() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.abort(ErrorCode::SettingsTimeout);
        assert_eq!(c.goaway(), Some((1, ErrorCode::SettingsTimeout)));
        let e = c.send(&get(3)).unwrap_err();
        assert_eq!(
            (e.code, e.fault),
            (ErrorCode::SettingsTimeout, ConnFault::Ended)
        );
        assert!(c.conn.is_done());
        c.conn.abort(ErrorCode::Internal);
        assert!(c.take_frames().is_empty());
    }

    #[test]
    fn stream_faults_have_their_codes() {
        assert_eq!(StreamFault::Closed.code(), ErrorCode::StreamClosed);
        assert_eq!(StreamFault::Refused.code(), ErrorCode::RefusedStream);
        assert_eq!(StreamFault::FlowControl.code(), ErrorCode::FlowControl);
        assert_eq!(StreamFault::ContentLength.code(), ErrorCode::Protocol);
    }
}
