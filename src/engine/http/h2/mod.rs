//! An HTTP/2 client connection: the codec ([`crate::proto::h2`]) reads
//! frames and writes them; each request stream becomes a leg of its own,
//! with its exchange, backend connection and access line, as an HTTP/1
//! request does. The session enters this stage after the TLS handshake
//! chose `h2` (ALPN) or when a cleartext client opens with the HTTP/2
//! preface.
//!
//! One round: the client's bytes go through the codec and its events are
//! acted on at once (their ranges point into this read); then every
//! stream runs its step (`streams.rs`); then the codec's output goes to
//! the client. Reading stops while that output is backed up, so a client
//! that does not read cannot make us buffer without bound.
//!
//! Backend connections: a stream takes one of this client's own kept
//! connections (a finished stream's), or an idle one from the worker's
//! pool once a stream has finished here (`http-reuse safe`), or dials.
//! At most [`MAX_LEGS`] streams hold a backend connection at once; the
//! others wait their turn, so a hundred streams do not open a hundred
//! connections.

mod room;
mod stream;
mod streams;

use std::mem;
use std::time::{Duration, Instant};

use super::leg::{Leg, LegStep};
use super::logline::RequestLog;
use super::stream::{HeadScratch, StreamFront};
use super::{Answering, Flow, HttpSession, Parked, Stage, Turn};
use crate::engine::buffer::BufferPool;
use crate::engine::conn::{Io, Readiness, Transport};
use crate::engine::legs::Legs;
use crate::engine::session::Session;
use crate::engine::step::{CloseReason, Ctx};
use crate::engine::syslog::Sink;
use crate::engine::token::{Side, SlotId};
use crate::metrics::stats::{Counters, H2_LIMITS};
use crate::proto::h2::conn::Config;
use crate::proto::h2::{to_h1, Connection, ErrorCode, Event, StreamId, PREFACE};
use crate::proto::http1::exchange::Exchange;
use stream::Stream;

/// Streams that may hold a backend connection at once, per client
/// connection; the rest wait for one of them to finish.
pub const MAX_LEGS: usize = 16;
/// Output queued for the client above which nothing more is read from it
/// and no stream produces more.
const OUTPUT_HIGH: usize = 256 * 1024;
/// How long the client has to acknowledge our SETTINGS (RFC 9113 §6.5.3).
const SETTINGS_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a stream must move (its request body in, its response out) for
/// the move to count as activity: a client that opens its window a byte
/// at a time, or dribbles its body, still meets the client timeout.
const MIN_PROGRESS: u32 = 1024;
/// How long a graceful shutdown waits for the PING that measures its
/// round trip before the final GOAWAY goes anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Streams a connection makes room for at its first one after a rest:
/// one allocation per burst, not a doubling per stream.
const STREAMS_AT_ONCE: usize = 8;

/// Whether `pending`, the first bytes of a cleartext connection, are (so
/// far) HTTP/2's connection preface: `Some(true)` when all of it is
/// there, `Some(false)` while what came is a part of it.
pub fn preface(pending: &[u8]) -> Option<bool> {
    let n = pending.len().min(PREFACE.len());
    (pending[..n] == PREFACE[..n]).then_some(n == PREFACE.len())
}

/// The HTTP/2 stage of a connection.
#[derive(Debug)]
pub struct H2<S> {
    codec: Connection,
    streams: Vec<Stream<S>>,
    /// Backend connections this client's finished streams left, for its
    /// next ones.
    parked: Vec<Parked<S>>,
    /// The codec's events of one read (kept for its allocation).
    events: Vec<Event>,
    /// Where response heads are assembled (kept for its allocation).
    heads: HeadScratch,
    /// Where request heads are translated (kept for its allocation).
    request_head: Vec<u8>,
    /// When the connection began speaking HTTP/2.
    began: Instant,
    /// When our graceful shutdown began, once it has.
    shutdown: Option<Instant>,
    /// The codec ended the connection: its GOAWAY goes out, then the
    /// close.
    failed: bool,
    /// Frames wait for the run after the worker's batch of events, so the
    /// responses of several backends go out in one write (set while a
    /// backend's event is handled).
    defer_write: bool,
    /// The codec's limit hits already added to the service's counters
    /// (allocated at the first hit: most connections never hit one).
    reported: Option<Box<[u64; H2_LIMITS]>>,
    /// Its vectors went to the worker's rooms ([`H2::rest`]): the next
    /// round takes a room ([`H2::wake`]).
    resting: bool,
}

/// Where a stream stands.
#[derive(Debug)]
enum StreamStage<S> {
    /// Waiting for a backend connection: [`MAX_LEGS`] are in use.
    Queued(Box<Exchange>, RequestLog),
    /// On its way to a backend and back.
    Leg(Leg<S>),
    /// Our own answer, going out as frames.
    Answer(Answering),
    /// Answered before the client finished its request: the rest of it is
    /// read and dropped until it ends. (RFC 9113 §8.1 allows a reset
    /// instead, which curl, mid-upload, takes for an error.)
    Discard,
    /// Finished: it leaves at the end of the round.
    Done,
}

impl<S> H2<S> {
    fn new(now: Instant) -> H2<S> {
        H2 {
            codec: Connection::new(Config::default()),
            streams: Vec::new(),
            parked: Vec::new(),
            events: Vec::new(),
            heads: HeadScratch::default(),
            request_head: Vec::new(),
            began: now,
            shutdown: None,
            failed: false,
            defer_write: false,
            reported: None,
            resting: true,
        }
    }

    /// Adds the limit hits since the last call to `counts`.
    fn report_limits(&mut self, counts: &Counters) {
        let hits = &self.codec.counters().limits;
        if hits.iter().all(|&n| n == 0) {
            return;
        }
        let seen = self.reported.get_or_insert_with(Default::default);
        for ((c, &n), old) in counts.h2_limits.iter().zip(hits).zip(seen.iter_mut()) {
            c.add(n - *old);
            *old = n;
        }
    }

    /// Holds frames for a later run ([`H2::defer_write`]), or not.
    pub(super) fn defer_writes(&mut self, on: bool) {
        self.defer_write = on;
    }

    /// Frames wait to be written.
    pub(super) fn has_output(&self) -> bool {
        !self.codec.output().is_empty()
    }

    /// Stream `i` as the front of its leg or of our answer: its request
    /// bytes, and the codec and head scratch its response goes through.
    fn front(&mut self, i: usize, peer: std::net::SocketAddr) -> StreamFront<'_> {
        self.front_and_stage(i, peer).0
    }

    /// [`H2::front`], with the stream's stage beside it: a step of its
    /// leg runs in place, and moves nothing.
    fn front_and_stage(
        &mut self,
        i: usize,
        peer: std::net::SocketAddr,
    ) -> (StreamFront<'_>, &mut StreamStage<S>) {
        let H2 {
            codec,
            streams,
            heads,
            ..
        } = self;
        let s = &mut streams[i];
        let front = StreamFront {
            codec,
            stream: s.id,
            ended: s.input_ended(),
            request: &mut s.request,
            peer,
            refused: None,
            sent: 0,
            scratch: heads,
        };
        (front, &mut s.stage)
    }

    fn stream_mut(&mut self, id: StreamId) -> Option<&mut Stream<S>> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    /// Streams holding a backend connection now, and whether any waits
    /// for one.
    fn legs_and_queue(&self) -> (usize, bool) {
        self.streams
            .iter()
            .fold((0, false), |(legs, queued), s| match s.stage {
                StreamStage::Leg(_) => (legs + 1, queued),
                StreamStage::Queued(..) => (legs, true),
                _ => (legs, queued),
            })
    }
}

impl<S: Transport> HttpSession<S> {
    /// The connection speaks HTTP/2 from here on; what the client sent so
    /// far (the preface, and maybe more) is the codec's first input.
    pub(super) fn start_h2(&mut self, ctx: &mut Ctx<'_, S>) -> Turn<S> {
        log::debug!("http: port {}: {} speaks HTTP/2", self.port(), self.peer);
        self.service.stats.of(self.worker).h2_connections.add(1);
        (Stage::H2(Box::new(H2::new(ctx.now))), Flow::Progress)
    }

    /// One round of the HTTP/2 connection: input, streams, output. When
    /// it ends, the backend connections it kept go to the worker's pool.
    pub(super) fn h2_turn(&mut self, ctx: &mut Ctx<'_, S>, h2: Box<H2<S>>) -> Turn<S> {
        let (mut stage, flow) = self.h2_round(ctx, h2);
        if let (Stage::H2(h2), Flow::Close(_)) = (&mut stage, flow) {
            for p in mem::take(&mut h2.parked) {
                self.unpark(ctx, p);
            }
        }
        (stage, flow)
    }

    fn h2_round(&mut self, ctx: &mut Ctx<'_, S>, mut h2: Box<H2<S>>) -> Turn<S> {
        let mut progress = false;
        if h2.resting {
            h2.wake(ctx.h2_rooms);
        }
        if self.draining && h2.shutdown.is_none() {
            h2.codec.shutdown();
            h2.shutdown = Some(ctx.now);
        }
        if !h2.failed && h2.codec.output().len() < OUTPUT_HIGH {
            if !self.client_eof {
                match self.fill_client(ctx) {
                    Ok(p) => progress |= p,
                    Err(r) => return (Stage::H2(h2), Flow::Close(r)),
                }
            }
            progress |= self.h2_receive(ctx, &mut h2);
        }
        if !h2.failed {
            progress |= self.h2_streams(ctx, &mut h2);
        }
        if !h2.defer_write || h2.failed {
            match self.h2_write(ctx, &mut h2) {
                Ok(p) => progress |= p,
                Err(r) => return (Stage::H2(h2), Flow::Close(r)),
            }
        }
        let flushed = h2.codec.output().is_empty();
        if flushed && (h2.failed || h2.codec.is_done()) {
            return self.h2_linger(ctx, h2);
        }
        if flushed && h2.streams.is_empty() {
            h2.rest(ctx.h2_rooms);
        }
        if self.client_eof && !progress {
            // Nothing more will come: what is in flight cannot finish
            // under HTTP/2's flow control.
            let r = if h2.streams.is_empty() {
                CloseReason::Done
            } else {
                CloseReason::Reset(Side::Client)
            };
            return (Stage::H2(h2), Flow::Close(r));
        }
        (Stage::H2(h2), Flow::progress(progress))
    }

    /// The last GOAWAY is out: the stage ends (its streams' lines, legs
    /// and buffers go, its kept backend connections to the pool) and the
    /// connection lingers, reading and dropping what the client still
    /// sends until it closes: closing with its bytes unread would reset
    /// the connection, and a reset can destroy the GOAWAY before the
    /// client reads it.
    fn h2_linger(&mut self, ctx: &mut Ctx<'_, S>, mut h2: Box<H2<S>>) -> Turn<S> {
        for p in mem::take(&mut h2.parked) {
            self.unpark(ctx, p);
        }
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            self.h2_log_close(&h2, sink, CloseReason::Reset(Side::Client), ctx.now);
        }
        self.h2_release(&mut h2, ctx.pool, ctx.legs);
        if self.client.shutdown_write().is_err() {
            return (Stage::Vacant, Flow::Close(CloseReason::Done));
        }
        let until = ctx.now + super::LINGER;
        (Stage::Linger { until }, Flow::Progress)
    }

    /// Hands what the client sent to the codec, and acts on its events.
    fn h2_receive(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>) -> bool {
        let Some(input) = self.to_backend.take() else {
            return false;
        };
        if input.is_empty() {
            ctx.pool.give(input);
            return false;
        }
        let result = h2.codec.receive(input.pending(), ctx.now);
        let mut events = mem::take(&mut h2.events);
        events.extend(h2.codec.events());
        for event in events.drain(..) {
            self.h2_event(ctx, h2, event, input.pending());
        }
        h2.events = events;
        ctx.pool.give(input);
        h2.report_limits(self.service.stats.of(self.worker));
        if let Err(e) = result {
            log::debug!(
                "http: port {}: HTTP/2 connection error from {}: {:?} ({})",
                self.port(),
                self.peer,
                e.fault,
                e.code.name()
            );
            self.h2_failed(ctx, h2, e.code, CloseReason::Reset(Side::Client));
        }
        true
    }

    /// The connection ends with a GOAWAY of `code` (already queued): its
    /// streams are cut for `why`, the code counted.
    fn h2_failed(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        code: ErrorCode,
        why: CloseReason,
    ) {
        let c = self.service.stats.of(self.worker);
        if let Some(n) = c
            .h2_errors
            .get(code.to_u32() as usize)
            .filter(|_| code != ErrorCode::NoError)
        {
            n.add(1);
        }
        self.h2_cut_all(ctx, h2, why);
        h2.failed = true;
    }

    /// Acts on one event of the codec; `input` is the read it came from.
    fn h2_event(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>, event: Event, input: &[u8]) {
        match event {
            Event::Request {
                stream,
                fields,
                end_stream,
            } => {
                if h2.streams.capacity() == 0 {
                    h2.streams.reserve(STREAMS_AT_ONCE);
                }
                self.h2_open(ctx, h2, stream, &fields, end_stream);
                h2.codec.recycle(fields);
            }
            Event::RequestTooLarge {
                stream, end_stream, ..
            } => self.h2_too_large(ctx, h2, stream, end_stream),
            Event::Data { stream, range } => {
                let data = &input[range];
                match h2.stream_mut(stream) {
                    Some(s) if s.takes_body() => {
                        s.ready = true;
                        s.push_data(data);
                        s.moved(data.len() as u64, ctx.now);
                        if let StreamStage::Leg(leg) = &mut s.stage {
                            leg.log.count(data.len() as u64, 0);
                        }
                    }
                    Some(s) => {
                        s.moved(data.len() as u64, ctx.now);
                        h2.codec.release(stream, data.len() as u32);
                    }
                    None => h2.codec.release(stream, data.len() as u32),
                }
            }
            Event::Trailers { stream, fields } => match to_h1::trailers(&fields) {
                Ok(lines) => {
                    h2.codec.recycle(fields);
                    if let Some(s) = h2.stream_mut(stream) {
                        s.ready = true;
                        s.push_end(Some(&lines));
                    }
                }
                // Malformed (a pseudo-header): a stream error.
                Err(_) => self.h2_cut(ctx, h2, stream, CloseReason::BadFraming(Side::Client)),
            },
            Event::EndStream { stream } => {
                if let Some(s) = h2.stream_mut(stream) {
                    s.ready = true;
                    s.push_end(None);
                }
            }
            Event::Reset { stream, .. } => {
                self.service.stats.of(self.worker).h2_resets_in.add(1);
                self.h2_cut(ctx, h2, stream, CloseReason::Reset(Side::Client));
            }
            Event::StreamError { stream, .. } => {
                self.service.stats.of(self.worker).h2_resets_out.add(1);
                self.h2_cut(ctx, h2, stream, CloseReason::Reset(Side::Client));
            }
            Event::WindowOpen { stream } if stream.is_connection() => {
                for s in &mut h2.streams {
                    s.ready = true;
                }
            }
            Event::WindowOpen { stream } => {
                if let Some(s) = h2.stream_mut(stream) {
                    s.ready = true;
                }
            }
            Event::GoAway { .. } => {}
        }
    }

    /// Writes the codec's output; true if bytes went.
    fn h2_write(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>) -> Result<bool, CloseReason> {
        let mut progress = false;
        while !h2.codec.output().is_empty() {
            let out = h2.codec.output();
            match self.client.send(&[std::io::IoSlice::new(out)], ctx.now) {
                Io::Moved(n) | Io::Drained(n) => {
                    h2.codec.written(n);
                    progress = true;
                }
                Io::Blocked => break,
                Io::Eof | Io::Failed => return Err(CloseReason::Reset(Side::Client)),
            }
        }
        Ok(progress)
    }

    /// Readiness on one of its backend sockets: a stream's leg, or a kept
    /// connection (any word from that one means its backend closes it).
    pub(super) fn h2_leg_event(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        id: SlotId,
        r: Readiness,
    ) {
        for s in &mut h2.streams {
            if let StreamStage::Leg(leg) = &mut s.stage {
                if leg.id == id {
                    leg.up.conn.note(r);
                    s.ready = true;
                    return;
                }
            }
        }
        if let Some(i) = h2.parked.iter().position(|p| p.id == id) {
            if r.says_anything() {
                let p = h2.parked.swap_remove(i);
                ctx.legs.close(p.id);
            } else {
                // Room to write, which the next stream on it needs to
                // know (the edge comes once).
                h2.parked[i].conn.note(r);
            }
        }
    }

    /// When the connection must be looked at again if nothing happens:
    /// its own deadlines and its streams'.
    pub(super) fn h2_deadline(&self, h2: &H2<S>) -> Instant {
        let t = &self.service.timeouts;
        if h2.failed {
            // Its GOAWAY is waiting for a client that does not read.
            return self.client.last_io() + super::LINGER * 5;
        }
        let mut at = if !h2.codec.settings_acked() {
            h2.began + SETTINGS_TIMEOUT
        } else if h2.streams.is_empty() && self.served == 0 {
            self.accepted + self.header_timeout
        } else if h2.streams.is_empty() {
            self.client.last_io() + t.client
        } else {
            // Its streams' own deadlines say when; this only bounds them.
            self.client.last_io() + t.client + t.server
        };
        if let Some(since) = h2.shutdown {
            at = at.min(since + SHUTDOWN_GRACE);
        }
        h2.streams.iter().fold(at, |at, s| {
            self.stream_deadline(&h2.codec, s, Some(at))
                .map_or(at, |d| d.min(at))
        })
    }

    /// When stream `s` must be looked at again: a leg when its backend has
    /// been silent for the server timeout, or when the stream has waited
    /// on its client (its request body, or a closed window) for the
    /// client timeout. With `below`, a deadline not before it may come
    /// out later than it is (the caller keeps the earlier one anyway):
    /// that spares most streams a look at the codec.
    fn stream_deadline(
        &self,
        codec: &Connection,
        s: &Stream<S>,
        below: Option<Instant>,
    ) -> Option<Instant> {
        let t = &self.service.timeouts;
        Some(match &s.stage {
            StreamStage::Leg(leg) => match &leg.step {
                LegStep::Connect(_) => leg.deadline(&self.client, t),
                _ => {
                    let backend = leg.up.conn.last_io() + t.server;
                    let client = s.moved_at + t.client;
                    let bound = below.map_or(backend, |b| b.min(backend));
                    // Whether it waits on its client costs a look at the
                    // codec's stream: only asked when it would matter.
                    if client < bound && s.waits_on_client(codec) {
                        client
                    } else {
                        backend
                    }
                }
            },
            // It waits for this client's own streams, each bounded by the
            // server timeout: that bounds the wait unless a queue timeout
            // is set.
            StreamStage::Queued(ex, _) => {
                let wait = if t.queue.is_zero() { t.server } else { t.queue };
                ex.timing().start + wait
            }
            StreamStage::Answer(_) => self.client.last_io() + super::LINGER * 5,
            StreamStage::Discard => s.moved_at + t.client,
            StreamStage::Done => return None,
        })
    }

    /// A deadline passed: the streams' own (504, a redispatch, a cut),
    /// then the connection's (SETTINGS not acknowledged, idle, a shutdown
    /// whose round trip is taking too long).
    pub(super) fn h2_timer(&mut self, ctx: &mut Ctx<'_, S>, mut h2: Box<H2<S>>) -> Turn<S> {
        let now = ctx.now;
        if h2.failed {
            // The last GOAWAY could not be written in time: nothing more
            // will come of this connection.
            return (
                Stage::H2(h2),
                Flow::Close(CloseReason::IdleTimeout(Side::Client)),
            );
        }
        let mut i = 0;
        while i < h2.streams.len() {
            if self
                .stream_deadline(&h2.codec, &h2.streams[i], None)
                .is_some_and(|d| d <= now)
            {
                self.h2_stream_timer(ctx, &mut h2, i);
            }
            i += 1;
        }
        self.h2_sweep(ctx, &mut h2);
        if let Some(since) = h2.shutdown.filter(|s| *s + SHUTDOWN_GRACE <= now) {
            // The final GOAWAY, once; then the streams finish.
            h2.codec.shutdown();
            h2.shutdown = Some(since + Duration::from_secs(3600));
        }
        if !h2.codec.settings_acked() && h2.began + SETTINGS_TIMEOUT <= now {
            h2.codec.abort(ErrorCode::SettingsTimeout);
            let why = CloseReason::IdleTimeout(Side::Client);
            self.h2_failed(ctx, &mut h2, ErrorCode::SettingsTimeout, why);
        } else if h2.streams.is_empty() && self.h2_deadline(&h2) <= now {
            h2.codec.abort(ErrorCode::NoError);
            h2.failed = true;
        }
        (Stage::H2(h2), Flow::Progress)
    }

    /// Ends every stream: the connection is going.
    fn h2_cut_all(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>, why: CloseReason) {
        let ids: Vec<StreamId> = h2.streams.iter().map(|s| s.id).collect();
        for id in ids {
            self.h2_cut(ctx, h2, id, why);
        }
    }

    /// The access lines its streams still owe, as the connection closes.
    pub(super) fn h2_log_close(&self, h2: &H2<S>, sink: &mut Sink, r: CloseReason, now: Instant) {
        for s in &h2.streams {
            self.h2_log_unfinished(sink, &s.stage, r, now);
        }
    }

    /// Frees every stream's leg and buffers, and the kept connections.
    pub(super) fn h2_release(&self, h2: &mut H2<S>, pool: &mut BufferPool, legs: &mut Legs) {
        let c = self.service.stats.of(self.worker);
        c.h2_closed.add(1);
        c.h2_streams_done.add(h2.streams.len() as u64);
        if log::log_enabled!(log::Level::Debug) {
            for s in &h2.streams {
                log::debug!(
                    "http: port {}: {} closed with stream {}",
                    self.service.port(),
                    self.peer,
                    s.describe(&h2.codec)
                );
            }
        }
        for mut s in h2.streams.drain(..) {
            s.drop_body(&mut h2.codec, pool);
            match s.stage {
                StreamStage::Leg(leg) => {
                    legs.close(leg.id);
                    if let Some(b) = leg.to_client {
                        pool.give(b);
                    }
                }
                StreamStage::Queued(..)
                | StreamStage::Answer(_)
                | StreamStage::Discard
                | StreamStage::Done => {}
            }
        }
        for p in h2.parked.drain(..) {
            // Clean, as an HTTP/1 client's parked one (mod.rs, release).
            legs.close(p.id);
            p.conn.reset_on_close();
        }
    }

    /// The backend connections its streams left, taken (for the pool).
    pub(super) fn h2_parked(h2: &mut H2<S>) -> Vec<Parked<S>> {
        mem::take(&mut h2.parked)
    }

    /// The backend of its first stream on one.
    pub(super) fn h2_backend(h2: &H2<S>) -> Option<&crate::snapshot::Backend> {
        h2.streams.iter().find_map(|s| match &s.stage {
            StreamStage::Leg(leg) => Some(&**leg.up.backend()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_recognised_as_it_arrives() {
        assert_eq!(preface(b"PRI * HTTP/2.0\r\n"), Some(false));
        assert_eq!(preface(PREFACE), Some(true));
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(preface(&more), Some(true));
        assert_eq!(preface(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(preface(b"PRIX"), None);
    }
}
