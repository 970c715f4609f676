//! A connection's rest: with no stream and nothing to write, its vectors
//! go to the worker's rooms ([`crate::engine::rooms`]), and the next
//! round with work takes a room back.

use std::mem;

use super::H2;
use crate::engine::http::stream::HeadScratch;
use crate::engine::rooms::{Room, Rooms};

impl<S> H2<S> {
    /// No stream and nothing to write: its vectors go to `rooms`, and
    /// only the state stays. (Its streams' vector is freed: its elements
    /// are of the session's socket type, which the worker's pool does
    /// not know.)
    ///
    /// Keeping them on the connection through a short quiet spell saved
    /// regrowing them per burst, but what a connection frees late sits
    /// between what the connections opened meanwhile keep: idle memory
    /// grew by 600 bytes a connection. The pool saves the regrowth
    /// without that: they leave at once, and whole.
    pub(super) fn rest(&mut self, rooms: &mut Rooms) {
        let (head_text, head_block) = mem::take(&mut self.heads).into_parts();
        rooms.give(Room::of(
            self.codec.vacate(),
            mem::take(&mut self.events),
            mem::take(&mut self.request_head),
            head_text,
            head_block,
        ));
        self.streams = Vec::new();
        self.resting = true;
    }

    /// Busy again after a rest: a kept room, if the worker has one (else
    /// each vector is allocated as the burst needs it).
    pub(super) fn wake(&mut self, rooms: &mut Rooms) {
        self.resting = false;
        let Some(room) = rooms.take() else {
            return;
        };
        let Room {
            codec,
            events,
            request_head,
            head_text,
            head_block,
        } = room;
        self.codec.furnish(codec);
        fill(&mut self.events, events);
        fill(&mut self.request_head, request_head);
        if self.heads.capacity() == 0 {
            self.heads = HeadScratch::from_parts(head_text, head_block);
        }
    }
}

/// Puts `spare` in `slot` if `slot` has no room of its own.
fn fill<T>(slot: &mut Vec<T>, spare: Vec<T>) {
    if slot.capacity() == 0 {
        *slot = spare;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::sys::net::TcpStream;

    /// A stage that served a burst: our SETTINGS written, and room in
    /// each vector.
    fn busy() -> H2<TcpStream> {
        let mut h2 = H2::<TcpStream>::new(Instant::now());
        h2.codec.written(h2.codec.output().len());
        h2.events.reserve(8);
        h2.streams.reserve(4);
        h2.request_head.reserve(64);
        h2.heads = HeadScratch::with_room(64);
        h2
    }

    #[test]
    fn a_resting_stage_gives_its_vectors_to_the_next_busy_one() {
        let mut rooms = Rooms::default();
        let mut a = busy();
        let head_at = a.request_head.as_ptr();
        a.rest(&mut rooms);
        assert_eq!((a.streams.capacity(), a.events.capacity()), (0, 0));
        assert_eq!(a.request_head.capacity(), 0);
        assert!(a.heads.is_empty());
        assert!(a.codec.is_slim());
        assert!(a.resting);
        assert_eq!(rooms.len(), 1);

        let mut b = H2::<TcpStream>::new(Instant::now());
        b.wake(&mut rooms);
        assert!(rooms.is_empty());
        assert_eq!(b.request_head.as_ptr(), head_at);
        assert_eq!(b.events.capacity(), 8);
        assert_eq!(b.heads.capacity(), 128);
        assert!(!b.resting);
    }

    #[test]
    fn without_a_room_the_burst_allocates_its_own() {
        let mut rooms = Rooms::default();
        let mut h2 = busy();
        h2.rest(&mut rooms);
        // A second rest has nothing to give: nothing more is kept.
        h2.rest(&mut rooms);
        assert_eq!(rooms.len(), 1);
        let mut fresh = H2::<TcpStream>::new(Instant::now());
        fresh.wake(&mut Rooms::default());
        assert_eq!(fresh.events.capacity(), 0);
        assert!(!fresh.resting);
    }
}
