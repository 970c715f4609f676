//! Frames coming in, for [`super::conn::Connection`]: the preface, frame
//! headers, DATA streamed straight from the input (never copied), other
//! payloads collected (a frame can be 9 bytes larger than a read buffer),
//! header blocks reassembled under the CONTINUATION limits and decoded, and
//! each frame applied to the connection and its streams.

use std::time::Instant;

use super::conn::{
    Block, ConnFault, Connection, DataIn, Event, Phase, Reading, Shutdown, Stream, StreamFault,
    SHUTDOWN_PING,
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
                        s.length.is_some_and(|l| s.received > l)
                    }
                    None => false,
                };
                if over {
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
                self.block = Some(Block {
                    stream,
                    end_stream,
                    bytes: fragment.to_vec(),
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
                if self
                    .rates
                    .resets
                    .hit(now, l.window, l.max_resets_per_window)
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
        let Some(b) = self.block.take() else {
            return Ok(());
        };
        let limits = ListLimits {
            max_list_size: self.ours.max_header_list_size as usize,
            max_fields: self.limits.max_fields,
        };
        let decoded = self.decoder.decode(&b.bytes, limits).map_err(|e| {
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
            return Err(ConnFault::HeadersOnClosed);
        }
        // A new stream.
        self.last_stream = id;
        self.new_streams += 1;
        if self.new_streams > self.limits.max_new_streams_per_read {
            return Err(ConnFault::Limit(Limit::NewStreamsPerRead));
        }
        self.counters.streams_opened += 1;
        if let Some(f) = b.fault {
            return self.stream_error(id, f);
        }
        if self.active_streams() >= self.ours.max_concurrent_streams as usize {
            self.counters.hit(Limit::ConcurrentStreams);
            return self.stream_error(id, StreamFault::Refused);
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
            },
        );
        match decoded.over {
            Some(over) => self
                .events
                .push(Event::RequestTooLarge { stream: id, over }),
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
