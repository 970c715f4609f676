//! Frames coming in, for [`super::conn::Connection`]: the preface, frame
//! headers, DATA streamed straight from the input (never copied), other
//! payloads collected (a frame can be 9 bytes larger than a read buffer),
//! header blocks reassembled under the CONTINUATION limits and decoded, and
//! each frame applied to the connection and its streams.

use std::time::Instant;

use super::conn::{
    Block, ConnFault, Connection, DataIn, Event, Phase, Reading, Shutdown, Stream, StreamFault,
    MAX_BLOCK_SPARE, SHUTDOWN_PING,
};
use super::flow::{RecvWindow, Window};
use super::frame::{
    self, flags, Frame, FrameError, Header, Kind, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN,
};
use super::hpack::ListLimits;
use super::limits::Limit;
use super::stream::{self, State, Transition};
use super::{to_h1, StreamId, PREFACE};

const NEXT_HEAD: Reading = Reading::Head {
    buf: [0; HEADER_LEN],
    got: 0,
};

impl Connection {
    /// The read loop: everything in `input` is consumed.
    pub(super) fn read(&mut self, input: &[u8], now: Instant) -> Result<(), ConnFault> {
        let mut at = 0;
        while at < input.len() {
            if let Phase::Preface(got) = self.phase {
                let n = (PREFACE.len() - got).min(input.len() - at);
                if input[at..at + n] != PREFACE[got..got + n] {
                    return Err(ConnFault::Preface);
                }
                at += n;
                self.phase = if got + n == PREFACE.len() {
                    Phase::Frames
                } else {
                    Phase::Preface(got + n)
                };
                continue;
            }
            match &mut self.reading {
                Reading::Head { buf, got } => {
                    let n = (HEADER_LEN - *got).min(input.len() - at);
                    buf[*got..*got + n].copy_from_slice(&input[at..at + n]);
                    *got += n;
                    at += n;
                    if *got == HEADER_LEN {
                        let h = Header::parse(&buf[..]).ok_or(ConnFault::Preface)?;
                        self.reading = NEXT_HEAD;
                        self.begin(h, now)?;
                        // An empty payload is complete at once.
                        self.complete(now)?;
                    }
                }
                Reading::Payload(h) => {
                    let want = h.length as usize - self.scratch.len();
                    let n = want.min(input.len() - at);
                    self.scratch.extend_from_slice(&input[at..at + n]);
                    at += n;
                    self.complete(now)?;
                }
                Reading::Data(d) => {
                    let d = d.clone();
                    at = self.data_bytes(d, input, at)?;
                }
            }
        }
        Ok(())
    }

    /// Processes the current frame if its payload is complete.
    fn complete(&mut self, now: Instant) -> Result<(), ConnFault> {
        match &self.reading {
            Reading::Payload(h) if self.scratch.len() == h.length as usize => {
                let h = *h;
                self.reading = NEXT_HEAD;
                let payload = std::mem::take(&mut self.scratch);
                let r = self.on_frame(&h, &payload, now);
                self.scratch = payload;
                self.scratch.clear();
                r
            }
            Reading::Data(d) if d.data_left == 0 && d.pad_left == 0 && !d.need_pad_len => {
                let d = d.clone();
                self.reading = NEXT_HEAD;
                self.end_data(&d)
            }
            _ => Ok(()),
        }
    }

    /// A frame header: the checks the header alone allows, then how its
    /// payload will be read.
    fn begin(&mut self, h: Header, now: Instant) -> Result<(), ConnFault> {
        self.counters.frames_received += 1;
        match h.check(DEFAULT_MAX_FRAME_SIZE) {
            // PRIORITY of the wrong size costs only its stream, once its
            // payload is skipped (`on_frame`).
            Ok(()) | Err(FrameError::Length(Kind::Priority, _)) => {}
            Err(e) => return Err(ConnFault::Frame(e)),
        }
        let opens = h.kind == Kind::Settings && !h.has(flags::ACK);
        if !self.got_settings && !opens {
            return Err(ConnFault::FirstFrameNotSettings);
        }
        if let Some(b) = &self.block {
            if h.kind != Kind::Continuation || h.stream != b.stream {
                return Err(ConnFault::ExpectedContinuation);
            }
        }
        if h.kind != Kind::Data {
            self.reading = Reading::Payload(h);
            self.scratch.clear();
            return Ok(());
        }
        // DATA: charged to the connection window whole, padding included.
        if self.recv_window.receive(h.length).is_err() {
            return Err(ConnFault::FlowControl);
        }
        if h.length == 0 && !h.has(flags::END_STREAM) {
            self.empty_frame(now)?;
        }
        let padded = h.has(flags::PADDED);
        if padded && h.length == 0 {
            return Err(ConnFault::Frame(FrameError::Padding(Kind::Data)));
        }
        let deliver = self.check_data(&h)?;
        self.reading = Reading::Data(DataIn {
            header: h,
            need_pad_len: padded,
            data_left: if padded { 0 } else { h.length },
            pad_left: 0,
            deliver,
        });
        Ok(())
    }

    /// Whether a DATA frame's bytes go to the front: the stream exists and
    /// may receive, and its window holds the frame. A stream fault resets
    /// the stream and drops the bytes.
    fn check_data(&mut self, h: &Header) -> Result<bool, ConnFault> {
        let id = h.stream;
        if self.beyond_goaway(id) {
            return Ok(false);
        }
        let end_stream = h.has(flags::END_STREAM);
        let fault = match self.streams.get_mut(&id) {
            None if id > self.last_stream => return Err(ConnFault::Idle(Kind::Data)),
            None if self.reset_lately.contains(&id) => return Ok(false),
            None => Some(StreamFault::Closed),
            Some(s) => match stream::next(s.state, Transition::RecvData { end_stream }) {
                Err(_) => Some(StreamFault::Closed),
                Ok(_) if s.recv.receive(h.length).is_err() => Some(StreamFault::FlowControl),
                Ok(_) => None,
            },
        };
        match fault {
            Some(f) => {
                self.stream_error(id, f)?;
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// Credits bytes the front will never see: the connection window
    /// always, the stream's when it was charged.
    fn credit(&mut self, id: StreamId, n: u32, stream_too: bool) {
        if let Some(inc) = self.recv_window.release(n) {
            frame::write_window_update(&mut self.out, StreamId::CONNECTION, inc);
        }
        if stream_too {
            if let Some(s) = self.streams.get_mut(&id) {
                if let Some(inc) = s.recv.release(n) {
                    frame::write_window_update(&mut self.out, id, inc);
                }
            }
        }
    }

    /// DATA payload bytes at `input[at..]`; returns where reading stopped.
    fn data_bytes(
        &mut self,
        mut d: DataIn,
        input: &[u8],
        mut at: usize,
    ) -> Result<usize, ConnFault> {
        let id = d.header.stream;
        if d.need_pad_len {
            let pad = u32::from(input[at]);
            at += 1;
            if pad >= d.header.length {
                return Err(ConnFault::Frame(FrameError::Padding(Kind::Data)));
            }
            d.need_pad_len = false;
            d.pad_left = pad;
            d.data_left = d.header.length - 1 - pad;
            // The pad length byte and the padding never reach the front.
            self.credit(id, 1 + pad, d.deliver);
        }
        let n = (d.data_left as usize).min(input.len() - at);
        if n > 0 {
            if d.deliver {
                let over = match self.streams.get_mut(&id) {
                    Some(s) => {
                        s.received += n as u64;
                        Some(s.length.is_some_and(|l| s.received > l))
                    }
                    // Reset by the front since the frame began.
                    None => None,
                };
                if over.is_none() {
                    d.deliver = false;
                    self.credit(id, n as u32, false);
                } else if over == Some(true) {
                    self.stream_error(id, StreamFault::ContentLength)?;
                    d.deliver = false;
                    self.credit(id, n as u32, false);
                } else {
                    self.events.push(Event::Data {
                        stream: id,
                        range: at..at + n,
                    });
                }
            } else {
                self.credit(id, n as u32, false);
            }
            d.data_left -= n as u32;
            at += n;
        }
        let p = (d.pad_left as usize).min(input.len() - at);
        d.pad_left -= p as u32;
        at += p;
        self.reading = Reading::Data(d);
        if let Reading::Data(d) = &self.reading {
            if d.data_left == 0 && d.pad_left == 0 && !d.need_pad_len {
                let d = d.clone();
                self.reading = NEXT_HEAD;
                self.end_data(&d)?;
            }
        }
        Ok(at)
    }

    /// The end of a DATA frame: END_STREAM applied, content-length checked.
    fn end_data(&mut self, d: &DataIn) -> Result<(), ConnFault> {
        let id = d.header.stream;
        let end_stream = d.header.has(flags::END_STREAM);
        if !d.deliver || !self.streams.contains_key(&id) {
            return Ok(());
        }
        if end_stream {
            let short = self
                .streams
                .get(&id)
                .is_some_and(|s| s.length.is_some_and(|l| s.received != l));
            if short {
                return self.stream_error(id, StreamFault::ContentLength);
            }
            self.events.push(Event::EndStream { stream: id });
        }
        // The transition was checked at the frame's header; the state has
        // not changed since (only this frame touched the stream).
        let _ = self.step(id, Transition::RecvData { end_stream });
        Ok(())
    }

    /// Resets a stream for a client fault, counting it.
    pub(super) fn stream_error(
        &mut self,
        id: StreamId,
        fault: StreamFault,
    ) -> Result<(), ConnFault> {
        self.streams.remove(&id);
        self.remember_reset(id);
        self.counters.stream_errors_sent += 1;
        self.events.push(Event::StreamError { stream: id, fault });
        self.control(|o| frame::write_rst_stream(o, id, fault.code()))?;
        if self.counters.stream_errors_sent > self.limits.max_stream_errors {
            return Err(ConnFault::Limit(Limit::StreamErrors));
        }
        Ok(())
    }

    fn empty_frame(&mut self, now: Instant) -> Result<(), ConnFault> {
        let l = &self.limits;
        if self
            .rates
            .empty
            .hit(now, l.window, l.max_empty_frames_per_window)
        {
            return Err(ConnFault::Limit(Limit::EmptyFrameRate));
        }
        Ok(())
    }

    /// A complete non-DATA frame.
    fn on_frame(&mut self, h: &Header, payload: &[u8], now: Instant) -> Result<(), ConnFault> {
        let f = match frame::parse(h, payload) {
            Ok(f) => f,
            Err(FrameError::Length(Kind::Priority, id)) => {
                return self.stream_error(id, StreamFault::PriorityLength);
            }
            Err(e) => return Err(ConnFault::Frame(e)),
        };
        let l = self.limits;
        match f {
            Frame::Data { .. } => Ok(()),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                fragment,
                ..
            } => {
                if !stream.is_client_initiated() {
                    return Err(ConnFault::StreamId);
                }
                let fault = priority
                    .filter(|p| p.dependency == stream)
                    .map(|_| StreamFault::SelfDependency);
                if fragment.len() > l.max_block_bytes {
                    return Err(ConnFault::Limit(Limit::BlockBytes));
                }
                let mut bytes = std::mem::take(&mut self.block_spare);
                bytes.extend_from_slice(fragment);
                self.block = Some(Block {
                    stream,
                    end_stream,
                    bytes,
                    continuations: 0,
                    fault,
                });
                if end_headers {
                    self.end_block(now)?;
                }
                Ok(())
            }
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => {
                let b = self
                    .block
                    .as_mut()
                    .ok_or(ConnFault::UnexpectedContinuation)?;
                b.continuations += 1;
                if b.continuations > l.max_continuations {
                    return Err(ConnFault::Limit(Limit::Continuations));
                }
                if b.bytes.len() + fragment.len() > l.max_block_bytes {
                    return Err(ConnFault::Limit(Limit::BlockBytes));
                }
                b.bytes.extend_from_slice(fragment);
                if fragment.is_empty() && !end_headers {
                    self.empty_frame(now)?;
                }
                if end_headers {
                    self.end_block(now)?;
                }
                Ok(())
            }
            Frame::Priority { stream, priority } => {
                if priority.dependency == stream {
                    return self.stream_error(stream, StreamFault::SelfDependency);
                }
                Ok(())
            }
            Frame::RstStream { stream, code } => {
                self.counters.resets_received += 1;
                // A reset before any response counts twice: that is the
                // rapid-reset pattern, work asked for and thrown away.
                let weight = match self.streams.get(&stream) {
                    Some(s) if !s.responded => 2,
                    _ => 1,
                };
                if self
                    .rates
                    .resets
                    .hit_by(now, l.window, l.max_resets_per_window, weight)
                {
                    return Err(ConnFault::Limit(Limit::ResetRate));
                }
                if self.counters.resets_received > l.max_resets_total {
                    return Err(ConnFault::Limit(Limit::ResetTotal));
                }
                if self.beyond_goaway(stream) {
                    return Ok(());
                }
                if self.streams.remove(&stream).is_some() {
                    self.events.push(Event::Reset { stream, code });
                } else if stream > self.last_stream {
                    return Err(ConnFault::Idle(Kind::RstStream));
                }
                Ok(())
            }
            Frame::Settings { ack, params } => {
                if self
                    .rates
                    .settings
                    .hit(now, l.window, l.max_settings_per_window)
                {
                    return Err(ConnFault::Limit(Limit::SettingsRate));
                }
                if ack {
                    self.settings_unacked = self.settings_unacked.saturating_sub(1);
                    return Ok(());
                }
                self.got_settings = true;
                self.apply_settings(params)?;
                self.control(frame::write_settings_ack)
            }
            Frame::PushPromise { .. } => Err(ConnFault::PushPromise),
            Frame::Ping { ack, payload } => {
                if ack {
                    if payload == SHUTDOWN_PING && self.shutdown == Shutdown::Announced {
                        self.final_goaway();
                    }
                    return Ok(());
                }
                if self.rates.pings.hit(now, l.window, l.max_pings_per_window) {
                    return Err(ConnFault::Limit(Limit::PingRate));
                }
                self.control(|o| frame::write_ping(o, true, payload))
            }
            Frame::GoAway {
                last_stream, code, ..
            } => {
                self.client_gone = true;
                self.events.push(Event::GoAway { last_stream, code });
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                let r = &mut self.rates.window_updates;
                if r.hit(now, l.window, l.max_window_updates_per_window) {
                    return Err(ConnFault::Limit(Limit::WindowUpdateRate));
                }
                self.window_update(stream, increment)
            }
            Frame::Unknown { .. } => Ok(()),
        }
    }

    fn window_update(&mut self, id: StreamId, inc: u32) -> Result<(), ConnFault> {
        if id.is_connection() {
            if inc == 0 {
                return Err(ConnFault::ZeroIncrement);
            }
            self.send_window
                .increase(inc)
                .map_err(|_| ConnFault::WindowOverflow)?;
            self.events.push(Event::WindowOpen { stream: id });
            return Ok(());
        }
        if self.beyond_goaway(id) {
            return Ok(());
        }
        let fault = match self.streams.get_mut(&id) {
            None if id > self.last_stream => return Err(ConnFault::Idle(Kind::WindowUpdate)),
            None => return Ok(()),
            Some(_) if inc == 0 => Some(StreamFault::ZeroIncrement),
            Some(s) => s
                .send
                .increase(inc)
                .err()
                .map(|_| StreamFault::WindowOverflow),
        };
        match fault {
            Some(f) => self.stream_error(id, f),
            None => {
                self.events.push(Event::WindowOpen { stream: id });
                Ok(())
            }
        }
    }

    fn apply_settings(&mut self, params: &[u8]) -> Result<(), ConnFault> {
        let before = self.peer.initial_window_size;
        for (id, v) in frame::settings_params(params) {
            self.peer.apply(id, v).map_err(ConnFault::Settings)?;
        }
        let delta = i64::from(self.peer.initial_window_size) - i64::from(before);
        if delta != 0 {
            for s in self.streams.values_mut() {
                s.send
                    .adjust(delta)
                    .map_err(|_| ConnFault::WindowOverflow)?;
            }
            if delta > 0 {
                self.events.push(Event::WindowOpen {
                    stream: StreamId::CONNECTION,
                });
            }
        }
        Ok(())
    }

    /// A complete header block: decoded (always, to keep HPACK in step),
    /// then a new request, trailers, or a fault.
    fn end_block(&mut self, _now: Instant) -> Result<(), ConnFault> {
        let Some(mut b) = self.block.take() else {
            return Ok(());
        };
        let limits = ListLimits {
            max_list_size: self.ours.max_header_list_size as usize,
            max_fields: self.limits.max_fields,
        };
        let spare = self.spares.pop().unwrap_or_default();
        let decoded = self.decoder.decode_into(&b.bytes, limits, spare);
        if b.bytes.capacity() <= MAX_BLOCK_SPARE {
            b.bytes.clear();
            self.block_spare = std::mem::take(&mut b.bytes);
        }
        let decoded = decoded.map_err(|e| {
            if matches!(
                e,
                super::hpack::DecodeError::SizeUpdateNotAtStart
                    | super::hpack::DecodeError::SizeUpdateTooLarge
            ) {
                self.counters.hit(Limit::TableUpdate);
            }
            ConnFault::Hpack(e)
        })?;
        if let Some(o) = decoded.over {
            self.counters.hit(match o {
                super::hpack::Over::ListSize => Limit::ListSize,
                super::hpack::Over::FieldCount => Limit::FieldCount,
            });
        }
        let id = b.stream;
        if self.beyond_goaway(id) {
            return Ok(());
        }
        if let Some(s) = self.streams.get(&id) {
            // Trailers.
            if let Some(f) = b.fault {
                return self.stream_error(id, f);
            }
            match stream::next(
                s.state,
                Transition::RecvHeaders {
                    end_stream: b.end_stream,
                },
            ) {
                Err(stream::Fault::TrailersWithoutEndStream) => {
                    return self.stream_error(id, StreamFault::TrailersWithoutEndStream)
                }
                Err(_) => return self.stream_error(id, StreamFault::Closed),
                Ok(_) => {}
            }
            if decoded.over.is_some() {
                return self.stream_error(id, StreamFault::TrailersTooLarge);
            }
            let short = s.length.is_some_and(|l| s.received != l);
            if short {
                return self.stream_error(id, StreamFault::ContentLength);
            }
            self.events.push(Event::Trailers {
                stream: id,
                fields: decoded.fields,
            });
            let _ = self.step(id, Transition::RecvHeaders { end_stream: true });
            return Ok(());
        }
        if id <= self.last_stream {
            if self.was_reset(id) {
                // Trailers in flight when we reset the stream.
                return Ok(());
            }
            // The last stream opened was closed (STREAM_CLOSED, §5.1); an
            // identifier below it is one a new stream cannot have
            // (PROTOCOL_ERROR, §5.1.1), whether or not it was used.
            return Err(if id == self.last_stream {
                ConnFault::HeadersOnClosed
            } else {
                ConnFault::StreamId
            });
        }
        // A new stream.
        self.last_stream = id;
        self.counters.streams_opened += 1;
        if let Some(f) = b.fault {
            return self.stream_error(id, f);
        }
        // Refused before it counts as new in this read: a refusal is a
        // stream error, which the stream-error limit bounds, and the
        // stream one past the limit must be refused, not end the
        // connection.
        if self.active_streams() >= self.ours.max_concurrent_streams as usize {
            self.counters.hit(Limit::ConcurrentStreams);
            return self.stream_error(id, StreamFault::Refused);
        }
        self.new_streams += 1;
        if self.new_streams > self.limits.max_new_streams_per_read {
            return Err(ConnFault::Limit(Limit::NewStreamsPerRead));
        }
        let length = to_h1::content_length(&decoded.fields).ok().flatten();
        let state = stream::next(
            State::Idle,
            Transition::RecvHeaders {
                end_stream: b.end_stream,
            },
        )
        .unwrap_or(State::HalfClosedRemote);
        self.streams.insert(
            id,
            Stream {
                state,
                send: Window::new(self.peer.initial_window_size),
                recv: RecvWindow::new(self.ours.initial_window_size),
                length,
                received: 0,
                responded: false,
            },
        );
        match decoded.over {
            Some(over) => {
                self.events.push(Event::RequestTooLarge {
                    stream: id,
                    end_stream: b.end_stream,
                    over,
                });
                // A 431 is a client's fault like a reset: a stream of
                // oversized lists meets the same limit.
                self.counters.stream_errors_sent += 1;
                if self.counters.stream_errors_sent > self.limits.max_stream_errors {
                    return Err(ConnFault::Limit(Limit::StreamErrors));
                }
            }
            None => {
                if b.end_stream && length.is_some_and(|l| l > 0) {
                    return self.stream_error(id, StreamFault::ContentLength);
                }
                self.events.push(Event::Request {
                    stream: id,
                    fields: decoded.fields,
                    end_stream: b.end_stream,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::conn::{Config, ConnFault, Connection, Event, StreamFault};
    use super::super::frame::{FrameError, Kind, Priority};
    use super::super::hpack::{Field, Fields, Over};
    use super::super::limits::{Limit, Limits};
    use super::super::settings::{self, Ours};
    use super::super::stream::State;
    use super::super::testkit::*;
    use super::super::{ErrorCode, PREFACE};
    use super::Frame;

    fn fault(c: &mut Client, bytes: &[u8]) -> ConnFault {
        c.send(bytes).unwrap_err().fault
    }

    fn request(c: &Client) -> (u32, Vec<Field>, bool) {
        c.events
            .iter()
            .find_map(|e| match e {
                Got::Event(Event::Request {
                    stream,
                    fields,
                    end_stream,
                }) => Some((stream.get(), fields.to_vec(), *end_stream)),
                _ => None,
            })
            .expect("a request")
    }

    #[test]
    fn our_preface_is_settings_then_the_connection_window() {
        let mut c = Connection::new(Config::default());
        let f = parse_frames(c.output());
        assert_eq!(f[0].0.kind, Kind::Settings);
        assert_eq!(f[1].0.kind, Kind::WindowUpdate);
        let inc = u32::from_be_bytes(f[1].1[..4].try_into().unwrap());
        assert_eq!(inc, Ours::default().connection_window - 65_535);
        c.written(c.output().len());
        assert!(c.output().is_empty());
    }

    #[test]
    fn a_wrong_preface_is_refused_with_goaway() {
        let mut c = Connection::new(Config::default());
        let e = c.receive(b"GET / HTTP/1.1\r\n\r\n", std::time::Instant::now());
        assert_eq!(e.unwrap_err().fault, ConnFault::Preface);
        let f = parse_frames(c.output());
        assert_eq!(f.last().unwrap().0.kind, Kind::GoAway);
        assert!(c.is_done());
    }

    #[test]
    fn the_preface_may_arrive_one_byte_at_a_time() {
        let mut c = Connection::new(Config::default());
        let now = std::time::Instant::now();
        let mut all = PREFACE.to_vec();
        all.extend(settings(&[]));
        all.extend(get(1));
        let mut events = Vec::new();
        for b in &all {
            c.receive(std::slice::from_ref(b), now).unwrap();
            events.extend(c.events());
        }
        assert!(matches!(events[..], [Event::Request { .. }]));
    }

    #[test]
    fn the_first_frame_must_be_settings() {
        let mut c = Connection::new(Config::default());
        let mut b = PREFACE.to_vec();
        b.extend(ping(false, [0; 8]));
        let e = c.receive(&b, std::time::Instant::now()).unwrap_err();
        assert_eq!(e.fault, ConnFault::FirstFrameNotSettings);
        assert_eq!(e.code, ErrorCode::Protocol);
    }

    #[test]
    fn settings_are_acknowledged() {
        let mut c = Client::new();
        c.send(&settings(&[(settings::MAX_FRAME_SIZE, 32_768)]))
            .unwrap();
        let f = c.take_frames();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0.kind, Kind::Settings);
        assert_eq!(f[0].0.flags, 1);
        assert_eq!(c.conn.peer_settings().max_frame_size, 32_768);
    }

    #[test]
    fn a_bad_setting_ends_the_connection() {
        let mut c = Client::new();
        let e = c
            .send(&settings(&[(settings::ENABLE_PUSH, 2)]))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Protocol);
        let mut c = Client::new();
        let e = c
            .send(&settings(&[(settings::INITIAL_WINDOW_SIZE, 1 << 31)]))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::FlowControl);
    }

    #[test]
    fn a_get_becomes_a_request_event() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        let (id, fields, end) = request(&c);
        assert_eq!(id, 1);
        assert!(end);
        assert_eq!(fields[0], Field::new(b":method", b"GET"));
        assert_eq!(c.conn.stream_state(sid(1)), State::HalfClosedRemote);
    }

    #[test]
    fn a_body_is_streamed_as_ranges_of_the_input() {
        let mut c = Client::new();
        let mut b = headers(1, &POST, false);
        b.extend(data(1, b"hello", false));
        b.extend(data(1, b" world", true));
        c.send(&b).unwrap();
        let datas: Vec<_> = c
            .events
            .iter()
            .filter_map(|e| match e {
                Got::Data(_, d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(datas, vec![b"hello".to_vec(), b" world".to_vec()]);
        assert!(matches!(
            c.events.last(),
            Some(Got::Event(Event::EndStream { .. }))
        ));
    }

    #[test]
    fn data_split_anywhere_arrives_whole() {
        let mut b = headers(1, &POST, false);
        b.extend(data(1, b"0123456789", true));
        for cut in 1..b.len() {
            let mut c = Client::new();
            c.send(&b[..cut]).unwrap();
            let mut got: Vec<u8> = Vec::new();
            let mut collect = |c: &Client| {
                for e in &c.events {
                    if let Got::Data(_, d) = e {
                        got.extend(d);
                    }
                }
            };
            collect(&c);
            c.send(&b[cut..]).unwrap();
            collect(&c);
            assert_eq!(got, b"0123456789", "cut at {cut}");
        }
    }

    #[test]
    fn padding_is_removed_and_credited() {
        let mut c = Client::new();
        let mut b = headers(1, &POST, false);
        b.extend(enc(Frame::Data {
            stream: sid(1),
            end_stream: false,
            data: b"abc",
            pad: Some(10),
        }));
        c.send(&b).unwrap();
        assert!(c.events.contains(&Got::Data(sid(1), b"abc".to_vec())));
    }

    #[test]
    fn padding_as_long_as_the_frame_is_refused() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        // Length 1: only the pad byte, which says 1.
        let mut b = vec![0, 0, 1, 0, 0x8, 0, 0, 0, 1, 1];
        let f = fault(&mut c, &b);
        assert_eq!(f, ConnFault::Frame(FrameError::Padding(Kind::Data)));
        b.clear();
    }

    #[test]
    fn headers_padding_too_long_is_a_protocol_error() {
        let mut c = Client::new();
        // HEADERS, PADDED, length 1, pad length 5.
        let b = [0, 0, 1, 1, 0x8 | 0x4, 0, 0, 0, 1, 5];
        let e = c.send(&b).unwrap_err();
        assert_eq!(e.code, ErrorCode::Protocol);
    }

    #[test]
    fn data_on_an_idle_stream_ends_the_connection() {
        let mut c = Client::new();
        assert_eq!(
            fault(&mut c, &data(1, b"x", false)),
            ConnFault::Idle(Kind::Data)
        );
    }

    #[test]
    fn data_on_stream_zero_is_a_protocol_error() {
        let mut c = Client::new();
        let b = [0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            fault(&mut c, &b),
            ConnFault::Frame(FrameError::NeedsStream(Kind::Data))
        );
    }

    #[test]
    fn data_after_end_stream_resets_the_stream_stream_closed() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.take_frames();
        c.send(&data(1, b"late", false)).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::StreamClosed)]);
        assert!(c.events.contains(&Got::Event(Event::StreamError {
            stream: sid(1),
            fault: StreamFault::Closed
        })));
    }

    #[test]
    fn headers_on_a_closed_stream_end_the_connection() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn
            .send_headers(sid(1), &[Field::new(b":status", b"204")], true)
            .unwrap();
        assert_eq!(fault(&mut c, &get(1)), ConnFault::HeadersOnClosed);
    }

    #[test]
    fn trailers_in_flight_after_our_reset_are_ignored() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        c.conn.reset(sid(1), ErrorCode::Cancel).unwrap();
        c.take_frames();
        let mut b = data(1, b"late", false);
        b.extend(headers(1, &[("x-sum", "1")], true));
        c.send(&b).unwrap();
        assert!(c.events.is_empty());
        assert!(c.take_frames().is_empty());
        // HPACK stayed in step.
        c.send(&get(3)).unwrap();
        assert_eq!(request(&c).0, 3);
    }

    #[test]
    fn data_for_a_stream_reset_mid_frame_is_not_delivered() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        let d = data(1, b"0123456789", false);
        c.send(&d[..12]).unwrap();
        assert_eq!(c.events, vec![Got::Data(sid(1), b"012".to_vec())]);
        c.conn.reset(sid(1), ErrorCode::Cancel).unwrap();
        c.send(&d[12..]).unwrap();
        assert!(c.events.is_empty());
    }

    #[test]
    fn stream_ids_must_grow_and_be_odd() {
        let mut c = Client::new();
        c.send(&get(5)).unwrap();
        assert_eq!(fault(&mut c, &get(3)), ConnFault::StreamId);
        let mut c = Client::new();
        assert_eq!(fault(&mut c, &get(2)), ConnFault::StreamId);
    }

    #[test]
    fn trailers_end_the_request() {
        let mut c = Client::new();
        let mut b = headers(1, &POST, false);
        b.extend(data(1, b"x", false));
        b.extend(headers(1, &[("x-sum", "1")], true));
        c.send(&b).unwrap();
        assert!(c.events.contains(&Got::Event(Event::Trailers {
            stream: sid(1),
            fields: Fields::from(&[Field::new(b"x-sum", b"1")][..])
        })));
        assert_eq!(c.conn.stream_state(sid(1)), State::HalfClosedRemote);
    }

    #[test]
    fn trailers_without_end_stream_reset_the_stream() {
        let mut c = Client::new();
        let mut b = headers(1, &POST, false);
        b.extend(headers(1, &[("x-sum", "1")], false));
        c.send(&b).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::Protocol)]);
    }

    #[test]
    fn a_header_block_may_span_continuations() {
        let mut c = Client::new();
        let blk = block(&GET);
        let (a, rest) = blk.split_at(3);
        let (m, z) = rest.split_at(3);
        let mut b = enc(Frame::Headers {
            stream: sid(1),
            end_stream: true,
            end_headers: false,
            priority: None,
            fragment: a,
            pad: None,
        });
        for (part, end) in [(m, false), (z, true)] {
            b.extend(enc(Frame::Continuation {
                stream: sid(1),
                end_headers: end,
                fragment: part,
            }));
        }
        c.send(&b).unwrap();
        assert_eq!(request(&c).1.len(), 4);
    }

    #[test]
    fn another_frame_inside_a_header_block_is_refused() {
        let mut c = Client::new();
        let mut b = enc(Frame::Headers {
            stream: sid(1),
            end_stream: true,
            end_headers: false,
            priority: None,
            fragment: &block(&GET),
            pad: None,
        });
        b.extend(ping(false, [0; 8]));
        assert_eq!(fault(&mut c, &b), ConnFault::ExpectedContinuation);
    }

    #[test]
    fn continuation_on_another_stream_is_refused() {
        let mut c = Client::new();
        let mut b = enc(Frame::Headers {
            stream: sid(1),
            end_stream: true,
            end_headers: false,
            priority: None,
            fragment: &block(&GET),
            pad: None,
        });
        b.extend(enc(Frame::Continuation {
            stream: sid(3),
            end_headers: true,
            fragment: b"",
        }));
        assert_eq!(fault(&mut c, &b), ConnFault::ExpectedContinuation);
    }

    #[test]
    fn continuation_without_headers_is_refused() {
        let mut c = Client::new();
        let b = enc(Frame::Continuation {
            stream: sid(1),
            end_headers: true,
            fragment: b"",
        });
        assert_eq!(fault(&mut c, &b), ConnFault::UnexpectedContinuation);
    }

    fn open_block(stream: u32) -> Vec<u8> {
        enc(Frame::Headers {
            stream: sid(stream),
            end_stream: true,
            end_headers: false,
            priority: None,
            fragment: &block(&GET),
            pad: None,
        })
    }

    #[test]
    fn too_many_continuations_are_enhance_your_calm() {
        let mut c = Client::new();
        let mut b = open_block(1);
        for _ in 0..=Limits::default().max_continuations {
            b.extend(enc(Frame::Continuation {
                stream: sid(1),
                end_headers: false,
                fragment: b"\x82",
            }));
        }
        let e = c.send(&b).unwrap_err();
        assert_eq!(e.fault, ConnFault::Limit(Limit::Continuations));
        assert_eq!(e.code, ErrorCode::EnhanceYourCalm);
        assert_eq!(c.conn.counters().hits(Limit::Continuations), 1);
        assert_eq!(c.goaway().map(|g| g.1), Some(ErrorCode::EnhanceYourCalm));
    }

    #[test]
    fn a_block_over_its_byte_limit_is_refused_before_decoding() {
        let config = Config {
            limits: Limits {
                max_block_bytes: 100,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        let mut b = open_block(1);
        b.extend(enc(Frame::Continuation {
            stream: sid(1),
            end_headers: true,
            fragment: &[0x82; 100],
        }));
        assert_eq!(fault(&mut c, &b), ConnFault::Limit(Limit::BlockBytes));
        assert_eq!(c.conn.counters().hits(Limit::BlockBytes), 1);
    }

    #[test]
    fn a_list_over_the_size_limit_is_a_431_for_the_stream() {
        let mut c = Client::new();
        let big = "v".repeat(16_300);
        let mut f = GET.to_vec();
        f.push(("x-big", &big));
        c.send(&headers(1, &f, true)).unwrap();
        assert_eq!(
            c.events,
            vec![Got::Event(Event::RequestTooLarge {
                stream: sid(1),
                end_stream: true,
                over: Over::ListSize
            })]
        );
        assert_eq!(c.conn.counters().hits(Limit::ListSize), 1);
        // The stream is open for the 431.
        assert_eq!(c.conn.stream_state(sid(1)), State::HalfClosedRemote);
    }

    #[test]
    fn more_than_100_fields_is_a_431_for_the_stream() {
        let mut c = Client::new();
        let mut f = GET.to_vec();
        f.extend(std::iter::repeat_n(("x", "y"), 97));
        c.send(&headers(1, &f, true)).unwrap();
        assert_eq!(
            c.events,
            vec![Got::Event(Event::RequestTooLarge {
                stream: sid(1),
                end_stream: true,
                over: Over::FieldCount
            })]
        );
        assert_eq!(c.conn.counters().hits(Limit::FieldCount), 1);
        let mut c = Client::new();
        f.pop();
        c.send(&headers(1, &f, true)).unwrap();
        assert_eq!(request(&c).1.len(), 100);
    }

    #[test]
    fn oversized_lists_count_as_stream_errors() {
        let config = Config {
            limits: Limits {
                max_stream_errors: 2,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        let mut f = GET.to_vec();
        f.extend(std::iter::repeat_n(("x", "y"), 97));
        for id in [1, 3] {
            c.send(&headers(id, &f, true)).unwrap();
        }
        assert_eq!(
            fault(&mut c, &headers(5, &f, true)),
            ConnFault::Limit(Limit::StreamErrors)
        );
    }

    #[test]
    fn a_table_size_update_after_a_field_is_a_compression_error() {
        let mut c = Client::new();
        let mut blk = block(&GET);
        blk.push(0x20);
        let b = enc(Frame::Headers {
            stream: sid(1),
            end_stream: true,
            end_headers: true,
            priority: None,
            fragment: &blk,
            pad: None,
        });
        let e = c.send(&b).unwrap_err();
        assert_eq!(e.code, ErrorCode::Compression);
        assert_eq!(c.conn.counters().hits(Limit::TableUpdate), 1);
    }

    #[test]
    fn a_table_size_update_above_ours_is_a_compression_error() {
        let mut c = Client::new();
        // 001 11111 + continuation: 31 + 4096 - 31 + 1 = 4097.
        let mut blk = Vec::new();
        super::super::hpack::write_integer(&mut blk, 0x20, 5, 4097);
        blk.extend(block(&GET));
        let b = enc(Frame::Headers {
            stream: sid(1),
            end_stream: true,
            end_headers: true,
            priority: None,
            fragment: &blk,
            pad: None,
        });
        assert_eq!(c.send(&b).unwrap_err().code, ErrorCode::Compression);
        assert_eq!(c.conn.counters().hits(Limit::TableUpdate), 1);
    }

    #[test]
    fn a_table_size_update_at_the_start_is_taken() {
        let mut c = Client::new();
        let mut blk = vec![0x20];
        blk.extend(block(&GET));
        let b = enc(Frame::Headers {
            stream: sid(1),
            end_stream: true,
            end_headers: true,
            priority: None,
            fragment: &blk,
            pad: None,
        });
        c.send(&b).unwrap();
        assert_eq!(request(&c).0, 1);
    }

    #[test]
    fn rapid_resets_are_enhance_your_calm() {
        // Each reset before a response counts twice.
        let mut c = Client::new();
        let max = Limits::default().max_resets_per_window;
        for i in 0..max / 2 {
            let id = 2 * i + 1;
            let mut b = get(id);
            b.extend(rst(id, ErrorCode::Cancel));
            c.send(&b).unwrap();
        }
        let id = max + 1;
        let mut b = get(id);
        b.extend(rst(id, ErrorCode::Cancel));
        assert_eq!(fault(&mut c, &b), ConnFault::Limit(Limit::ResetRate));
        assert_eq!(c.conn.counters().resets_received, u64::from(max / 2) + 1);
    }

    #[test]
    fn resets_after_a_response_count_once() {
        let mut c = Client::new();
        let max = Limits::default().max_resets_per_window;
        let status = [Field::new(b":status", b"200")];
        for i in 0..max {
            let id = 2 * i + 1;
            c.send(&get(id)).unwrap();
            c.conn.send_headers(sid(id), &status, false).unwrap();
            c.send(&rst(id, ErrorCode::Cancel)).unwrap();
        }
        let id = 2 * max + 1;
        c.send(&get(id)).unwrap();
        c.conn.send_headers(sid(id), &status, false).unwrap();
        assert_eq!(
            fault(&mut c, &rst(id, ErrorCode::Cancel)),
            ConnFault::Limit(Limit::ResetRate)
        );
    }

    #[test]
    fn resets_spread_over_windows_are_fine_until_the_lifetime_limit() {
        let config = Config {
            limits: Limits {
                max_resets_per_window: 2,
                max_resets_total: 5,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        for i in 0..5u32 {
            let id = 2 * i + 1;
            let mut b = get(id);
            b.extend(rst(id, ErrorCode::Cancel));
            c.send(&b).unwrap();
            c.advance(Duration::from_secs(11));
        }
        let mut b = get(11);
        b.extend(rst(11, ErrorCode::Cancel));
        assert_eq!(fault(&mut c, &b), ConnFault::Limit(Limit::ResetTotal));
    }

    #[test]
    fn a_client_reset_is_an_event_and_forgets_the_stream() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        c.send(&rst(1, ErrorCode::Cancel)).unwrap();
        assert_eq!(
            c.events,
            vec![Got::Event(Event::Reset {
                stream: sid(1),
                code: ErrorCode::Cancel
            })]
        );
        assert_eq!(c.conn.stream_state(sid(1)), State::Closed);
        assert_eq!(c.conn.active_streams(), 0);
    }

    #[test]
    fn rst_stream_on_an_idle_stream_is_a_protocol_error() {
        let mut c = Client::new();
        assert_eq!(
            fault(&mut c, &rst(1, ErrorCode::Cancel)),
            ConnFault::Idle(Kind::RstStream)
        );
    }

    #[test]
    fn stream_errors_we_emit_are_limited() {
        let config = Config {
            limits: Limits {
                max_stream_errors: 3,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        for id in [1, 3, 5] {
            c.send(&get(id)).unwrap();
            c.send(&data(id, b"x", false)).unwrap();
        }
        c.send(&get(7)).unwrap();
        assert_eq!(
            fault(&mut c, &data(7, b"x", false)),
            ConnFault::Limit(Limit::StreamErrors)
        );
        assert_eq!(c.conn.counters().stream_errors_sent, 4);
    }

    #[test]
    fn too_many_new_streams_in_one_read_is_enhance_your_calm() {
        let config = Config {
            limits: Limits {
                max_new_streams_per_read: 3,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        let mut b = Vec::new();
        for id in [1, 3, 5] {
            b.extend(get(id));
        }
        c.send(&b).unwrap();
        // A new read starts a new count.
        c.send(&get(7)).unwrap();
        let mut b = Vec::new();
        for id in [9, 11, 13, 15] {
            b.extend(get(id));
        }
        assert_eq!(
            fault(&mut c, &b),
            ConnFault::Limit(Limit::NewStreamsPerRead)
        );
    }

    #[test]
    fn streams_past_max_concurrent_are_refused() {
        let config = Config {
            ours: Ours {
                max_concurrent_streams: 2,
                ..Ours::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        let mut b = get(1);
        b.extend(get(3));
        b.extend(get(5));
        c.send(&b).unwrap();
        assert_eq!(c.resets(), vec![(5, ErrorCode::RefusedStream)]);
        assert_eq!(c.conn.counters().hits(Limit::ConcurrentStreams), 1);
        assert_eq!(c.conn.active_streams(), 2);
    }

    #[test]
    fn pings_are_answered_and_rate_limited() {
        let mut c = Client::new();
        c.send(&ping(false, *b"12345678")).unwrap();
        let f = c.take_frames();
        assert_eq!((f[0].0.kind, f[0].0.flags), (Kind::Ping, 1));
        assert_eq!(f[0].1, b"12345678");
        for _ in 1..Limits::default().max_pings_per_window {
            c.send(&ping(false, [0; 8])).unwrap();
        }
        assert_eq!(
            fault(&mut c, &ping(false, [0; 8])),
            ConnFault::Limit(Limit::PingRate)
        );
    }

    #[test]
    fn a_new_window_resets_the_ping_count() {
        let mut c = Client::new();
        for _ in 0..Limits::default().max_pings_per_window {
            c.send(&ping(false, [0; 8])).unwrap();
        }
        c.advance(Duration::from_secs(10));
        c.send(&ping(false, [0; 8])).unwrap();
    }

    #[test]
    fn settings_floods_are_enhance_your_calm() {
        let mut c = Client::new();
        // The opening SETTINGS counted once already.
        for _ in 1..Limits::default().max_settings_per_window {
            c.send(&settings(&[])).unwrap();
        }
        assert_eq!(
            fault(&mut c, &settings(&[])),
            ConnFault::Limit(Limit::SettingsRate)
        );
    }

    #[test]
    fn empty_data_frames_are_rate_limited() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        for _ in 0..Limits::default().max_empty_frames_per_window {
            c.send(&data(1, b"", false)).unwrap();
        }
        assert_eq!(
            fault(&mut c, &data(1, b"", false)),
            ConnFault::Limit(Limit::EmptyFrameRate)
        );
    }

    #[test]
    fn an_empty_data_frame_with_end_stream_is_not_counted() {
        let mut c = Client::new();
        for i in 0..150u32 {
            let id = 2 * i + 1;
            c.send(&headers(id, &POST, false)).unwrap();
            c.send(&data(id, b"", true)).unwrap();
            c.conn.reset(sid(id), ErrorCode::NoError).unwrap();
            c.take_frames();
        }
        assert_eq!(c.conn.counters().hits(Limit::EmptyFrameRate), 0);
    }

    #[test]
    fn window_update_floods_are_enhance_your_calm() {
        let config = Config {
            limits: Limits {
                max_window_updates_per_window: 5,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        for _ in 0..5 {
            c.send(&window_update(0, 1)).unwrap();
        }
        assert_eq!(
            fault(&mut c, &window_update(0, 1)),
            ConnFault::Limit(Limit::WindowUpdateRate)
        );
    }

    #[test]
    fn unread_control_frames_are_limited() {
        let config = Config {
            limits: Limits {
                max_queued_control: 10,
                max_pings_per_window: 1000,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        for _ in 0..10 {
            c.send(&ping(false, [0; 8])).unwrap();
        }
        assert_eq!(
            fault(&mut c, &ping(false, [0; 8])),
            ConnFault::Limit(Limit::QueuedControl)
        );
    }

    #[test]
    fn written_control_frames_no_longer_count() {
        let config = Config {
            limits: Limits {
                max_queued_control: 10,
                max_pings_per_window: 1000,
                ..Limits::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        for _ in 0..30 {
            c.send(&ping(false, [0; 8])).unwrap();
            c.take_frames();
        }
    }

    #[test]
    fn push_promise_from_a_client_is_a_protocol_error() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        let b = enc(Frame::PushPromise {
            stream: sid(1),
            promised: sid(2),
            end_headers: true,
            fragment: b"",
            pad: None,
        });
        assert_eq!(fault(&mut c, &b), ConnFault::PushPromise);
    }

    #[test]
    fn unknown_frames_are_ignored() {
        let mut c = Client::new();
        let b = enc(Frame::Unknown {
            kind: 0xfa,
            stream: sid(7),
            flags: 0xff,
            payload: b"whatever",
        });
        c.send(&b).unwrap();
        assert!(c.events.is_empty());
        assert!(c.take_frames().is_empty());
    }

    #[test]
    fn priority_is_validated_and_ignored() {
        let mut c = Client::new();
        let p = Priority {
            exclusive: true,
            dependency: sid(0),
            weight: 200,
        };
        c.send(&enc(Frame::Priority {
            stream: sid(9),
            priority: p,
        }))
        .unwrap();
        // A PRIORITY does not open the stream.
        assert_eq!(c.conn.stream_state(sid(9)), State::Idle);
        c.send(&get(1)).unwrap();
        assert_eq!(request(&c).0, 1);
    }

    #[test]
    fn a_stream_depending_on_itself_is_reset() {
        let mut c = Client::new();
        let p = Priority {
            exclusive: false,
            dependency: sid(1),
            weight: 0,
        };
        let b = enc(Frame::Headers {
            stream: sid(1),
            end_stream: true,
            end_headers: true,
            priority: Some(p),
            fragment: &block(&GET),
            pad: None,
        });
        c.send(&b).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::Protocol)]);
        // HPACK stayed in step: the next request decodes.
        c.send(&get(3)).unwrap();
        assert_eq!(request(&c).0, 3);
        let mut c = Client::new();
        c.send(&enc(Frame::Priority {
            stream: sid(3),
            priority: Priority {
                dependency: sid(3),
                ..p
            },
        }))
        .unwrap();
        assert_eq!(c.resets(), vec![(3, ErrorCode::Protocol)]);
    }

    #[test]
    fn priority_of_the_wrong_length_is_a_stream_error() {
        let mut c = Client::new();
        let b = [0, 0, 4, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        c.send(&b).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::FrameSize)]);
    }

    #[test]
    fn frames_longer_than_our_max_are_frame_size_errors() {
        let mut c = Client::new();
        let b = [0, 0x40, 1, 0, 0, 0, 0, 0, 1];
        let e = c.send(&b).unwrap_err();
        assert_eq!(e.code, ErrorCode::FrameSize);
    }

    #[test]
    fn a_full_size_frame_in_small_reads_is_taken() {
        let mut c = Client::new();
        let big = vec![b'z'; 16_384];
        let mut b = headers(1, &POST, false);
        b.extend(data(1, &big, true));
        let mut got = 0;
        for chunk in b.chunks(1000) {
            c.send(chunk).unwrap();
            for e in &c.events {
                if let Got::Data(_, d) = e {
                    got += d.len();
                }
            }
        }
        assert_eq!(got, 16_384);
    }

    #[test]
    fn more_data_than_the_stream_window_resets_the_stream() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        let chunk = vec![0; 16_384];
        for _ in 0..3 {
            c.send(&data(1, &chunk, false)).unwrap();
        }
        c.take_frames();
        c.send(&data(1, &chunk, false)).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::FlowControl)]);
    }

    #[test]
    fn more_data_than_the_connection_window_ends_the_connection() {
        let config = Config {
            ours: Ours {
                connection_window: 65_535,
                initial_window_size: 1 << 20,
                ..Ours::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        c.send(&headers(1, &POST, false)).unwrap();
        let chunk = vec![0; 16_384];
        for _ in 0..3 {
            c.send(&data(1, &chunk, false)).unwrap();
        }
        assert_eq!(
            fault(&mut c, &data(1, &chunk, false)),
            ConnFault::FlowControl
        );
    }

    #[test]
    fn released_data_is_credited_back_by_half_windows() {
        let mut c = Client::new();
        c.send(&headers(1, &POST, false)).unwrap();
        c.send(&data(1, &[0; 16_384], false)).unwrap();
        c.conn.release(sid(1), 16_384);
        assert!(c.take_frames().is_empty(), "less than half a window owed");
        c.send(&data(1, &[0; 16_384], false)).unwrap();
        c.conn.release(sid(1), 16_384);
        let f = c.take_frames();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].0.kind, f[0].0.stream), (Kind::WindowUpdate, sid(1)));
        assert_eq!(f[0].1, 32_768u32.to_be_bytes());
    }

    #[test]
    fn data_dropped_for_a_reset_stream_still_credits_the_connection() {
        let config = Config {
            ours: Ours {
                connection_window: 65_535,
                ..Ours::default()
            },
            ..Config::default()
        };
        let mut c = Client::with(config);
        c.send(&get(1)).unwrap();
        // Four frames of 16 KiB to a half-closed stream: each reset, each
        // credited, so the connection window never runs out.
        for _ in 0..8 {
            c.send(&data(1, &[0; 16_384], false)).unwrap();
            c.take_frames();
        }
    }

    #[test]
    fn content_length_must_match_the_data() {
        let mut c = Client::new();
        let mut f = POST.to_vec();
        f.push(("content-length", "3"));
        let mut b = headers(1, &f, false);
        b.extend(data(1, b"abcd", true));
        c.send(&b).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::Protocol)]);
        let mut c = Client::new();
        let mut b = headers(1, &f, false);
        b.extend(data(1, b"ab", true));
        c.send(&b).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::Protocol)]);
        let mut c = Client::new();
        let mut b = headers(1, &f, false);
        b.extend(data(1, b"abc", true));
        c.send(&b).unwrap();
        assert!(c.resets().is_empty());
    }

    #[test]
    fn content_length_on_a_request_without_body_resets_it() {
        let mut c = Client::new();
        let mut f = GET.to_vec();
        f.push(("content-length", "5"));
        c.send(&headers(1, &f, true)).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::Protocol)]);
    }

    #[test]
    fn window_update_of_zero() {
        let mut c = Client::new();
        assert_eq!(
            fault(&mut c, &window_update(0, 0)),
            ConnFault::ZeroIncrement
        );
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.send(&window_update(1, 0)).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::Protocol)]);
    }

    #[test]
    fn window_update_overflow() {
        let mut c = Client::new();
        assert_eq!(
            fault(&mut c, &window_update(0, 0x7fff_ffff)),
            ConnFault::WindowOverflow
        );
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.send(&window_update(1, 0x7fff_ffff)).unwrap();
        assert_eq!(c.resets(), vec![(1, ErrorCode::FlowControl)]);
    }

    #[test]
    fn window_update_on_an_idle_stream_is_a_protocol_error() {
        let mut c = Client::new();
        assert_eq!(
            fault(&mut c, &window_update(5, 1)),
            ConnFault::Idle(Kind::WindowUpdate)
        );
    }

    #[test]
    fn window_update_on_a_closed_stream_is_ignored() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn.reset(sid(1), ErrorCode::Cancel).unwrap();
        c.send(&window_update(1, 10)).unwrap();
        assert!(c.events.is_empty());
    }

    #[test]
    fn a_smaller_initial_window_can_take_a_send_window_negative() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.conn
            .send_headers(sid(1), &[Field::new(b":status", b"200")], false)
            .unwrap();
        let sent = c.conn.send_data(sid(1), &[0; 60_000], false).unwrap();
        assert_eq!(sent, 60_000);
        c.send(&settings(&[(settings::INITIAL_WINDOW_SIZE, 1_000)]))
            .unwrap();
        assert_eq!(c.conn.send_window(sid(1)), 0);
        c.send(&window_update(1, 55_000)).unwrap();
        // 1,000 − 60,000 + 55,000 = −4,000: still nothing to send.
        assert_eq!(c.conn.send_window(sid(1)), 0);
        c.send(&window_update(1, 5_000)).unwrap();
        assert_eq!(c.conn.send_window(sid(1)), 1_000);
    }

    #[test]
    fn a_larger_initial_window_opens_streams() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.send(&settings(&[(settings::INITIAL_WINDOW_SIZE, 100_000)]))
            .unwrap();
        assert!(c
            .events
            .contains(&Got::Event(Event::WindowOpen { stream: sid(0) })));
        // The connection window is still the default.
        assert_eq!(c.conn.send_window(sid(1)), 65_535);
    }

    #[test]
    fn an_initial_window_change_overflowing_a_stream_ends_the_connection() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.send(&window_update(1, 0x7fff_ffff - 65_535)).unwrap();
        let e = c
            .send(&settings(&[(settings::INITIAL_WINDOW_SIZE, 65_536)]))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::FlowControl);
    }

    #[test]
    fn a_client_goaway_is_an_event_and_ends_when_streams_do() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        let g = enc(Frame::GoAway {
            last_stream: sid(0),
            code: ErrorCode::NoError,
            debug: b"bye",
        });
        c.send(&g).unwrap();
        assert_eq!(
            c.events,
            vec![Got::Event(Event::GoAway {
                last_stream: sid(0),
                code: ErrorCode::NoError
            })]
        );
        assert!(!c.conn.is_done());
        c.conn
            .send_headers(sid(1), &[Field::new(b":status", b"204")], true)
            .unwrap();
        assert!(c.conn.is_done());
    }

    #[test]
    fn after_an_error_every_call_returns_it_again() {
        let mut c = Client::new();
        let e = c.send(&rst(1, ErrorCode::Cancel)).unwrap_err();
        assert_eq!(c.send(&get(1)).unwrap_err(), e);
        assert_eq!(c.goaway(), Some((0, ErrorCode::Protocol)));
    }

    #[test]
    fn the_goaway_of_an_error_names_the_last_stream() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.send(&get(7)).unwrap();
        c.take_frames();
        let _ = c.send(&rst(9, ErrorCode::Cancel));
        assert_eq!(c.goaway(), Some((7, ErrorCode::Protocol)));
    }

    #[test]
    fn settings_ack_with_payload_is_a_frame_size_error() {
        let mut c = Client::new();
        let b = [0, 0, 6, 4, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(c.send(&b).unwrap_err().code, ErrorCode::FrameSize);
    }

    #[test]
    fn ping_on_a_stream_is_a_protocol_error() {
        let mut c = Client::new();
        let mut b = ping(false, [0; 8]);
        b[8] = 1;
        assert_eq!(c.send(&b).unwrap_err().code, ErrorCode::Protocol);
    }

    #[test]
    fn frames_counted() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        c.send(&ping(false, [0; 8])).unwrap();
        // SETTINGS, HEADERS, PING.
        assert_eq!(c.conn.counters().frames_received, 3);
        assert_eq!(c.conn.counters().streams_opened, 1);
    }
}
