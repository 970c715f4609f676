//! One request stream of an HTTP/2 connection, its own state: the
//! request bytes on their way to the backend (framed as moirai frames
//! them), the client's credit for them, its progress clock and whether it
//! must be stepped.

use std::time::Instant;

use super::{StreamStage, MIN_PROGRESS};
use crate::engine::buffer::{Buffer, BufferPool};
use crate::proto::h2::{Connection, StreamId};

/// One request stream.
#[derive(Debug)]
pub(super) struct Stream<S> {
    pub(super) id: StreamId,
    /// The request as the backend gets it: the translated head, then the
    /// body with our framing.
    pub(super) request: Option<Buffer>,
    /// Body bytes, framed, that did not fit in `request` yet.
    pub(super) body: Vec<u8>,
    /// DATA bytes received and not yet credited back to the client: the
    /// credit goes as the bytes move on, so the client's window is what
    /// bounds `body`.
    pub(super) owed: u32,
    /// The body is chunked toward the backend (no content-length).
    pub(super) chunked: bool,
    /// The client ended its side; the body's end is in `body`.
    pub(super) ended: bool,
    /// A HEAD request: an answer of ours carries no body.
    pub(super) head: bool,
    /// When the stream last moved [`MIN_PROGRESS`] bytes (or began): its
    /// client-side idle timeout counts from here, not from the
    /// connection's traffic, which other streams keep up.
    pub(super) moved_at: Instant,
    /// Bytes moved since `moved_at`.
    pub(super) moved: u32,
    /// Something happened that its step must see (an event of its leg,
    /// body or window from the client, its last step's progress); a
    /// stream that is not ready is not stepped, so a round costs what
    /// moved, not what is open.
    pub(super) ready: bool,
    pub(super) stage: StreamStage<S>,
}

impl<S> Stream<S> {
    pub(super) fn new(id: StreamId, chunked: bool, ended: bool, now: Instant) -> Stream<S> {
        Stream {
            id,
            request: None,
            body: Vec::new(),
            owed: 0,
            chunked,
            ended,
            head: false,
            moved_at: now,
            moved: 0,
            ready: true,
            stage: StreamStage::Done,
        }
    }

    /// `n` bytes of it moved at `now`.
    pub(super) fn moved(&mut self, n: u64, now: Instant) {
        self.moved = self.moved.saturating_add(n.min(u64::from(u32::MAX)) as u32);
        if self.moved >= MIN_PROGRESS {
            self.moved = 0;
            self.moved_at = now;
        }
    }

    /// Whether body bytes still go somewhere (else they are credited back
    /// and dropped).
    pub(super) fn takes_body(&self) -> bool {
        !self.ended && matches!(self.stage, StreamStage::Queued(..) | StreamStage::Leg(_))
    }

    /// A DATA payload for the backend, framed.
    pub(super) fn push_data(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.owed = self.owed.saturating_add(data.len() as u32);
        if self.chunked {
            // The chunk line as the HTTP/1 body writer spells it, without
            // a string per DATA frame.
            let mut line = [0u8; 18];
            let n = crate::proto::http1::body::hex(data.len() as u64, &mut line);
            self.body.extend_from_slice(&line[..n]);
            self.body.extend_from_slice(data);
            self.body.extend_from_slice(b"\r\n");
        } else {
            self.body.extend_from_slice(data);
        }
    }

    /// The client ended the request, with `trailers` (their lines) if
    /// it sent any.
    pub(super) fn push_end(&mut self, trailers: Option<&[u8]>) {
        if matches!(self.stage, StreamStage::Discard) {
            self.stage = StreamStage::Done;
        }
        if !self.takes_body() {
            self.ended = true;
            return;
        }
        if self.chunked {
            self.body.extend_from_slice(b"0\r\n");
            self.body.extend_from_slice(trailers.unwrap_or_default());
            self.body.extend_from_slice(b"\r\n");
        }
        self.ended = true;
    }

    /// Moves what fits of `body` into `request`, crediting the client for
    /// what moved; true if anything did.
    pub(super) fn feed(&mut self, codec: &mut Connection, pool: &mut BufferPool) -> bool {
        if self.body.is_empty() {
            return false;
        }
        let buf = self.request.get_or_insert_with(|| pool.take());
        let room = buf.spare();
        let n = room.len().min(self.body.len());
        if n == 0 {
            return false;
        }
        room[..n].copy_from_slice(&self.body[..n]);
        buf.filled(n);
        self.body.drain(..n);
        // Credit what can no longer be waiting: the DATA bytes owed less
        // what is still in `body` (framing included, so the credit never
        // runs ahead of the bytes; the rest comes as `body` empties).
        let credit = self.owed.saturating_sub(self.body.len() as u32);
        self.owed -= credit;
        codec.release(self.id, credit);
        if self.body.is_empty() {
            self.body = Vec::new();
        }
        true
    }

    /// Whether it waits on its client: the rest of the request, or a
    /// window to send its response in.
    pub(super) fn waits_on_client(&self, codec: &Connection) -> bool {
        !self.ended || codec.send_window(self.id) == 0
    }

    /// The request will not reach a backend any more (answered early,
    /// refused, or the stream ended): its waiting bytes are dropped and
    /// credited back, so the client can finish sending (the rest is
    /// dropped as it comes), and its buffer goes back to the pool.
    pub(super) fn drop_body(&mut self, codec: &mut Connection, pool: &mut BufferPool) {
        if self.owed > 0 {
            codec.release(self.id, self.owed);
            self.owed = 0;
        }
        self.body = Vec::new();
        if let Some(b) = self.request.take() {
            pool.give(b);
        }
    }

    /// Where it stands, for a debug line.
    pub(super) fn describe(&self, codec: &Connection) -> String {
        let stage = match &self.stage {
            StreamStage::Queued(..) => "queued".to_owned(),
            StreamStage::Leg(leg) => format!(
                "leg {:?}, backend {}, response {}, request done {}",
                leg.step,
                leg.up.backend().addr(),
                leg.ex.response().map_or(0, |r| r.code),
                leg.ex.request_done()
            ),
            StreamStage::Answer(a) => format!("answer {} ({} sent)", a.answer.code(), a.sent),
            StreamStage::Discard => "discarding".to_owned(),
            StreamStage::Done => "done".to_owned(),
        };
        format!(
            "{}: {stage}; request {} B waiting, body {} B, ended {}, owed {}, window {}",
            self.id,
            self.request.as_ref().map_or(0, Buffer::len),
            self.body.len(),
            self.ended,
            self.owed,
            codec.send_window(self.id)
        )
    }

    /// The client will send nothing more the backend has not got.
    pub(super) fn input_ended(&self) -> bool {
        self.ended && self.body.is_empty()
    }
}
