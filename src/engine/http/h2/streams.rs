//! The streams of an HTTP/2 connection: a new request becomes a leg (or
//! an answer of the balancer's own), each round runs every stream's step
//! through its [`StreamFront`], and a stream that finished or was cut
//! leaves with its access line.

use std::mem;
use std::time::Instant;

use super::stream::Stream;
use super::{StreamStage, H2, MAX_LEGS, OUTPUT_HIGH};
use crate::engine::buffer::BUFFER_SIZE;
use crate::engine::conn::{Io, Transport};
use crate::engine::http::head::exchange;
use crate::engine::http::leg::{Advance, Leg, LegStep, Outcome};
use crate::engine::http::logline::{Counted, RequestLog};
use crate::engine::http::write::Outgoing;
use crate::engine::http::{answering, follow_current, recycle, Answering, Flow, HttpSession};
use crate::engine::step::{CloseReason, Ctx};
use crate::engine::syslog::Sink;
use crate::engine::token::Side;
use crate::proto::h2::hpack::Fields;
use crate::proto::h2::{to_h1, ErrorCode, StreamId};
use crate::proto::http1::errors::Status;
use crate::proto::http1::exchange::Exchange;
use crate::proto::http1::{request, HeadError};

impl<S: Transport> HttpSession<S> {
    /// A new request on stream `id`: translated to HTTP/1.1, then answered
    /// here or queued for a backend.
    pub(super) fn h2_open(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        id: StreamId,
        fields: &Fields,
        end_stream: bool,
    ) {
        self.service.stats.of(self.worker).h2_streams.add(1);
        let scratch = mem::take(&mut h2.request_head);
        let req = match to_h1::request_in(fields, end_stream, scratch) {
            Ok(r) => r,
            Err(m) => {
                // Malformed (RFC 9113 §8.1.1): a stream error.
                log::debug!(
                    "http: port {}: malformed HTTP/2 request from {}: {}",
                    self.service.port(),
                    self.peer,
                    m.reason()
                );
                self.h2_reject(h2, id);
                self.service.stats.of(self.worker).h2_streams_done.add(1);
                return;
            }
        };
        let chunked = req.body == to_h1::Body::Chunked;
        let mut stream = Stream::new(id, chunked, end_stream, ctx.now);
        stream.head = req.method() == b"HEAD";
        let mut log = RequestLog::stream();
        log.count(req.head.len() as u64, 0);
        let buf = (req.head.len() <= BUFFER_SIZE).then(|| {
            let mut buf = ctx.pool.take();
            buf.spare()[..req.head.len()].copy_from_slice(&req.head);
            buf.filled(req.head.len());
            buf
        });
        h2.request_head = req.head;
        let Some(buf) = buf else {
            let a = self.failing(Status::HeaderTooLarge, None, log, ctx.now);
            stream.stage = StreamStage::Answer(a);
            h2.streams.push(stream);
            return;
        };
        let mut s = ctx.scratch.pop().unwrap_or_default();
        let head = match request::parse(buf.pending(), &mut s.req_drop, &mut s.req_inject) {
            Ok(Some(head)) => head,
            other => {
                recycle(ctx.scratch, s);
                ctx.pool.give(buf);
                let status = match other {
                    Err(HeadError::NotImplemented(_)) => Status::NotImplemented,
                    Err(HeadError::TooLarge) => Status::HeaderTooLarge,
                    _ => Status::BadRequest,
                };
                let a = self.failing(status, None, log, ctx.now);
                stream.stage = StreamStage::Answer(a);
                h2.streams.push(stream);
                return;
            }
        };
        self.service.stats.of(self.worker).requests.add(1);
        if ctx.syslog.is_some() {
            log.keep_request_line(buf.pending());
        }
        let current = follow_current(&mut self.service, ctx);
        let client = self.client_facts();
        if let Some(answer) = self.local_answer(buf.pending(), &head, &client) {
            recycle(ctx.scratch, s);
            ctx.pool.give(buf);
            self.count_answer(&answer);
            stream.stage = StreamStage::Answer(answering(answer, None, log, ctx.now));
            h2.streams.push(stream);
            return;
        }
        let mut ex = exchange(ctx, Exchange::begin(head, &client, s, ctx.now, ctx.now));
        ex.for_http2_stream();
        stream.request = Some(buf);
        stream.stage = if current {
            StreamStage::Queued(ex, log)
        } else {
            // The port serves something else now, or nothing.
            StreamStage::Answer(self.failing(Status::Unavailable, Some(ex), log, ctx.now))
        };
        h2.streams.push(stream);
    }

    /// A request whose header list went over our limits: 431 on its
    /// stream.
    pub(super) fn h2_too_large(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        id: StreamId,
        end_stream: bool,
    ) {
        self.service.stats.of(self.worker).h2_streams.add(1);
        let mut stream = Stream::new(id, false, end_stream, ctx.now);
        let log = RequestLog::stream();
        stream.stage =
            StreamStage::Answer(self.failing(Status::HeaderTooLarge, None, log, ctx.now));
        h2.streams.push(stream);
    }

    /// Resets stream `id` for a fault of its client the codec could not
    /// see (PROTOCOL_ERROR): counted toward the stream-error limit like
    /// the codec's own, which ends the connection past it.
    fn h2_reject(&self, h2: &mut H2<S>, id: StreamId) {
        let c = self.service.stats.of(self.worker);
        c.h2_resets_out.add(1);
        if let Err(e) = h2.codec.reject(id, ErrorCode::Protocol) {
            if let Some(n) = c.h2_errors.get(e.code.to_u32() as usize) {
                n.add(1);
            }
            h2.report_limits(c);
            // The GOAWAY is queued; the streams end with the connection
            // (not here: a round may be walking them).
            h2.failed = true;
        }
    }

    /// Resets stream `id` of our own accord, counted.
    fn h2_reset(&self, h2: &mut H2<S>, id: StreamId, code: ErrorCode) {
        if h2.codec.reset(id, code).is_ok() {
            self.service.stats.of(self.worker).h2_resets_out.add(1);
        }
    }

    /// Runs every stream once: queued ones take the free backend slots,
    /// oldest first, then each steps while the output has room. True if
    /// anything moved.
    pub(super) fn h2_streams(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>) -> bool {
        let mut progress = false;
        let (mut legs, queued) = h2.legs_and_queue();
        for i in 0..h2.streams.len() {
            if !queued || legs >= MAX_LEGS {
                break;
            }
            if matches!(h2.streams[i].stage, StreamStage::Queued(..)) {
                self.h2_begin(ctx, h2, i);
                legs += 1;
                progress = true;
            }
        }
        for i in 0..h2.streams.len() {
            if h2.codec.output().len() >= OUTPUT_HIGH {
                break;
            }
            let s = &h2.streams[i];
            if s.ready && !matches!(s.stage, StreamStage::Queued(..)) {
                let moved = self.h2_step(ctx, h2, i);
                // Only a step that moved may have more to do at once;
                // otherwise its next event makes it ready.
                h2.streams[i].ready = moved;
                progress |= moved;
            }
        }
        self.h2_sweep(ctx, h2);
        progress
    }

    /// Stream `i` leaves the queue: its backend and a connection to it.
    fn h2_begin(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>, i: usize) {
        let StreamStage::Queued(ex, log) =
            mem::replace(&mut h2.streams[i].stage, StreamStage::Done)
        else {
            return;
        };
        // Its first step (the connect, or the head on a kept connection)
        // is due now: no event will say so.
        h2.streams[i].ready = true;
        let prefer = h2.parked.last().map(|p| p.addr);
        let parked = &mut h2.parked;
        let outcome = self.begin_leg(ctx, ex, log, prefer, |addr| {
            let j = parked.iter().rposition(|p| p.addr == addr)?;
            Some(parked.swap_remove(j))
        });
        self.h2_outcome(ctx, h2, i, outcome, None);
    }

    /// One step of stream `i`: its body moves on, then its leg or answer
    /// runs.
    fn h2_step(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>, i: usize) -> bool {
        let progress = h2.streams[i].feed(&mut h2.codec, ctx.pool);
        if matches!(h2.streams[i].stage, StreamStage::Leg(_)) {
            return self.h2_leg_step(ctx, h2, i) | progress;
        }
        match mem::replace(&mut h2.streams[i].stage, StreamStage::Done) {
            StreamStage::Answer(a) => self.h2_answer(ctx, h2, i, a) | progress,
            other => {
                h2.streams[i].stage = other;
                progress
            }
        }
    }

    /// One step of stream `i`'s leg, run where the leg stands; it leaves
    /// the stream's stage only when it ends or becomes something else.
    fn h2_leg_step(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>, i: usize) -> bool {
        let (mut front, StreamStage::Leg(leg)) = h2.front_and_stage(i, self.peer) else {
            return false;
        };
        if !leg.flush_backend() {
            self.h2_cut_at(ctx, h2, i, CloseReason::Reset(Side::Backend));
            return true;
        }
        let advance = leg.advance(ctx, &self.service, &mut front);
        let (sent, refused) = (front.sent, front.refused.is_some());
        let going = match advance {
            Advance::Going(flow @ (Flow::Progress | Flow::Wait)) => {
                leg.log.count(0, sent);
                Some(flow == Flow::Progress)
            }
            _ => None,
        };
        h2.streams[i].moved(sent, ctx.now);
        if let Some(again) = going {
            return again | (sent > 0);
        }
        let StreamStage::Leg(leg) = mem::replace(&mut h2.streams[i].stage, StreamStage::Done)
        else {
            return true;
        };
        let outcome = leg.conclude(ctx, &self.service, advance);
        self.h2_outcome(ctx, h2, i, outcome, Some((sent, refused))) | (sent > 0)
    }

    /// What stream `i` does after a step of its leg; `front`: what the
    /// step's front saw (bytes sent, a head HTTP/2 cannot carry).
    fn h2_outcome(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        i: usize,
        outcome: Outcome<S>,
        front: Option<(u64, bool)>,
    ) -> bool {
        let (sent, refused) = front.unwrap_or_default();
        match outcome {
            Outcome::Going(mut leg, flow) => {
                leg.log.count(0, sent);
                match flow {
                    Flow::Progress | Flow::Wait => {
                        h2.streams[i].stage = StreamStage::Leg(leg);
                        flow == Flow::Progress
                    }
                    // The backend's head cannot go as HTTP/2 (a 101): 502.
                    Flow::Close(_) if refused && !leg.ex.status_sent() => {
                        let Leg {
                            ex,
                            log,
                            to_client,
                            id,
                            ..
                        } = leg;
                        ctx.legs.close(id);
                        if let Some(b) = to_client {
                            ctx.pool.give(b);
                        }
                        self.h2_answer_instead(ctx, h2, i, Status::BadGateway, ex, log);
                        true
                    }
                    Flow::Close(r) => {
                        h2.streams[i].stage = StreamStage::Leg(leg);
                        self.h2_cut_at(ctx, h2, i, r);
                        true
                    }
                }
            }
            // Never over HTTP/2: the front refuses a 101.
            Outcome::Tunnel(leg) => {
                h2.streams[i].stage = StreamStage::Leg(leg);
                self.h2_cut_at(ctx, h2, i, CloseReason::Reset(Side::Backend));
                true
            }
            Outcome::Finished(mut leg) => {
                leg.log.count(0, sent);
                self.h2_finish(ctx, leg, h2, i);
                true
            }
            Outcome::Refused(status, ex, log) => {
                self.h2_answer_instead(ctx, h2, i, status, ex, log);
                true
            }
        }
    }

    /// Stream `i` is answered by us with `status` instead of its backend:
    /// the request body it will not forward is dropped and credited back
    /// at once, so the client can finish sending it.
    fn h2_answer_instead(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        i: usize,
        status: Status,
        ex: Box<Exchange>,
        log: RequestLog,
    ) {
        let a = self.failing(status, Some(ex), log, ctx.now);
        h2.streams[i].drop_body(&mut h2.codec, ctx.pool);
        h2.streams[i].stage = StreamStage::Answer(a);
    }

    /// Stream `i`'s response is complete: END_STREAM, its access line, and
    /// its backend connection kept for the client's next streams, pooled
    /// or closed.
    fn h2_finish(&mut self, ctx: &mut Ctx<'_, S>, mut leg: Leg<S>, h2: &mut H2<S>, i: usize) {
        let s = &mut h2.streams[i];
        // The backend's trailers (a chunked response's) end the stream
        // in a HEADERS frame; else an empty DATA does.
        let trailers = trailer_fields(leg.ex.response_body().kept_trailers());
        let ended = match trailers {
            Some(fields) if !fields.is_empty() => h2.codec.send_headers(s.id, &fields, true),
            _ => Err(crate::proto::h2::conn::SendError::State),
        };
        if ended.is_err() {
            let _ = h2.codec.send_data(s.id, &[], true);
        }
        s.drop_body(&mut h2.codec, ctx.pool);
        s.stage = if s.ended {
            StreamStage::Done
        } else {
            StreamStage::Discard
        };
        let (_, parked) = self.settle(ctx, leg, Counted::Http2, false);
        if let Some(p) = parked {
            if h2.parked.len() < MAX_LEGS {
                // One at a time: most connections keep one or two, and an
                // idle connection's memory counts.
                h2.parked.reserve_exact(1);
                h2.parked.push(p);
            } else {
                self.unpark(ctx, p);
            }
        }
    }

    /// Sends (more of) our own answer on stream `i`, then ends it.
    fn h2_answer(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        i: usize,
        mut a: Answering,
    ) -> bool {
        let split = a
            .out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(a.out.len(), |p| p + 2);
        // A HEAD request's answer is its head alone.
        let body_at = if h2.streams[i].head {
            a.out.len()
        } else {
            (split + 2).min(a.out.len())
        };
        let head = Outgoing {
            src: &a.out[..split],
            drop: &[],
            injects: &[],
            body: &a.out[body_at..],
        };
        let total = head.head_len() + head.body.len();
        let mut front = h2.front(i, self.peer);
        let mut progress = false;
        if a.sent < total {
            match crate::engine::http::front::Front::<S>::send_head(
                &mut front, &head, a.sent, false, ctx.now,
            ) {
                Io::Moved(n) | Io::Drained(n) => {
                    a.sent += n;
                    progress = n > 0;
                }
                Io::Blocked => {}
                Io::Eof | Io::Failed => {
                    h2.streams[i].stage = StreamStage::Answer(a);
                    self.h2_cut_at(ctx, h2, i, CloseReason::Reset(Side::Client));
                    return true;
                }
            }
        }
        let sent = front.sent;
        let done = a.sent >= total;
        if done {
            front.end();
        }
        a.log.count(0, sent);
        let s = &mut h2.streams[i];
        if !done {
            s.stage = StreamStage::Answer(a);
            return progress;
        }
        s.stage = if s.ended {
            StreamStage::Done
        } else {
            StreamStage::Discard
        };
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            let ex = a.ex.as_deref();
            self.log_answer_counted(
                sink,
                Counted::Http2,
                &a.answer,
                ex,
                &a.log,
                a.since,
                ctx.now,
            );
        }
        true
    }

    /// Stream `id` ends before its time, for `why`.
    pub(super) fn h2_cut(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut H2<S>,
        id: StreamId,
        why: CloseReason,
    ) {
        if let Some(i) = h2.streams.iter().position(|s| s.id == id) {
            self.h2_cut_at(ctx, h2, i, why);
        }
        self.h2_sweep(ctx, h2);
    }

    /// Stream `i` ends before its time: its access line, its backend
    /// connection closed (its request may be half sent), and RST_STREAM
    /// unless the client reset it.
    fn h2_cut_at(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>, i: usize, why: CloseReason) {
        let s = &mut h2.streams[i];
        let stage = mem::replace(&mut s.stage, StreamStage::Done);
        let id = s.id;
        if let Some(sink) = ctx.syslog.as_deref_mut() {
            self.h2_log_unfinished(sink, &stage, why, ctx.now);
        }
        match stage {
            StreamStage::Leg(leg) => {
                ctx.legs.close(leg.id);
                if let Some(b) = leg.to_client {
                    ctx.pool.give(b);
                }
            }
            StreamStage::Queued(..)
            | StreamStage::Answer(_)
            | StreamStage::Discard
            | StreamStage::Done => {}
        }
        let code = match why {
            CloseReason::IdleTimeout(_) => ErrorCode::Cancel,
            CloseReason::BadFraming(Side::Client) => ErrorCode::Protocol,
            _ => ErrorCode::Internal,
        };
        if why == CloseReason::BadFraming(Side::Client) {
            self.h2_reject(h2, id);
        } else if why != CloseReason::Reset(Side::Client) || h2.codec.stream_state(id).is_active() {
            // A client's reset already closed it in the codec: nothing
            // is sent then.
            self.h2_reset(h2, id, code);
        }
    }

    /// A stream's deadline passed.
    pub(super) fn h2_stream_timer(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>, i: usize) {
        let t = self.service.timeouts;
        // Whatever comes of it (a 504 to send, a redispatch) is its next
        // step's.
        h2.streams[i].ready = true;
        match mem::replace(&mut h2.streams[i].stage, StreamStage::Done) {
            // The backend's silence, or a connect: the leg's own timeout
            // (504, a close, a redispatch).
            StreamStage::Leg(leg)
                if matches!(leg.step, LegStep::Connect(_))
                    || leg.up.conn.last_io() + t.server <= ctx.now =>
            {
                let outcome = leg.on_timer(ctx, &self.service);
                self.h2_outcome(ctx, h2, i, outcome, None);
            }
            // The stream's own client side went quiet.
            StreamStage::Leg(leg) => {
                h2.streams[i].stage = StreamStage::Leg(leg);
                self.h2_cut_at(ctx, h2, i, CloseReason::IdleTimeout(Side::Client));
            }
            // Waited too long for a backend connection: 503, as HAProxy's
            // queue timeout.
            StreamStage::Queued(ex, log) => {
                self.h2_answer_instead(ctx, h2, i, Status::Unavailable, ex, log);
            }
            stage => {
                h2.streams[i].stage = stage;
                self.h2_cut_at(ctx, h2, i, CloseReason::IdleTimeout(Side::Client));
            }
        }
    }

    /// Finished streams leave, their buffers and credit given back.
    pub(super) fn h2_sweep(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut H2<S>) {
        let H2 { streams, codec, .. } = h2;
        let before = streams.len();
        // In place and in order (the queue is oldest first): a stream
        // moves only to close a gap.
        streams.retain_mut(|s| {
            let done = matches!(s.stage, StreamStage::Done);
            if done {
                s.drop_body(codec, ctx.pool);
            }
            !done
        });
        let gone = before - streams.len();
        if gone > 0 {
            self.service
                .stats
                .of(self.worker)
                .h2_streams_done
                .add(gone as u64);
        }
    }

    /// The access line a stream cut at `stage` owes.
    pub(super) fn h2_log_unfinished(
        &self,
        sink: &mut Sink,
        stage: &StreamStage<S>,
        r: CloseReason,
        now: Instant,
    ) {
        match stage {
            StreamStage::Leg(leg) => {
                let request = (&*leg.ex, &leg.up.lease, &leg.log);
                self.log_cut(sink, Counted::Http2, request, r, now)
            }
            StreamStage::Answer(a) => {
                let ex = a.ex.as_deref();
                self.log_answer_counted(sink, Counted::Http2, &a.answer, ex, &a.log, a.since, now)
            }
            StreamStage::Queued(..) | StreamStage::Discard | StreamStage::Done => {}
        }
    }
}

/// A chunked response's trailer lines (`name: value\r\n` each) as the
/// fields of a trailing HEADERS frame; `None` when HTTP/2 cannot carry
/// them (the stream then ends without).
fn trailer_fields(lines: &[u8]) -> Option<Vec<crate::proto::h2::hpack::Field>> {
    if lines.is_empty() {
        return Some(Vec::new());
    }
    let pairs: Vec<(&[u8], &[u8])> = lines
        .split(|&b| b == b'\n')
        .filter_map(|l| l.strip_suffix(b"\r"))
        .filter(|l| !l.is_empty())
        .map(|l| {
            let colon = l.iter().position(|&b| b == b':').unwrap_or(l.len());
            let value = l.get(colon + 1..).unwrap_or_default().trim_ascii();
            (&l[..colon], value)
        })
        .collect();
    crate::proto::h2::to_h2::trailers(&pairs).ok()
}
