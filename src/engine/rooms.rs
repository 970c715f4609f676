//! The rooms of a worker's resting HTTP/2 connections. A connection with
//! no stream and nothing to write gives back every vector a burst needs
//! (the codec's, and the ones its front translates heads in); the worker
//! keeps a few of them for the next connection that gets busy. So an
//! idle connection holds only its state, and a burst on one that rested
//! allocates next to nothing: the pool does for these vectors what
//! [`BufferPool`] does for I/O buffers.
//!
//! [`BufferPool`]: crate::engine::buffer::BufferPool

use std::mem;

use crate::proto::h2::{room, Event};

/// How many rooms a worker keeps: about the connections that get busy
/// at once after a rest.
const MAX_ROOMS: usize = 16;
/// The heap bytes a worker's rooms may hold in all; what would go over
/// is freed. (Idle h2 connections are measured against HAProxy's: the
/// pool's share stays a few bytes per connection.)
const MAX_BYTES: usize = 256 * 1024;
/// The largest front vector a room keeps, in bytes.
const MAX_VEC: usize = 16 * 1024;
/// The most events a room keeps room for.
const MAX_EVENTS: usize = 64;

/// One connection's vectors, empty, with their capacity.
#[derive(Debug, Default)]
pub struct Room {
    /// The codec's.
    pub codec: room::Room,
    /// The front's copy of a read's events.
    pub events: Vec<Event>,
    /// Where request heads are translated.
    pub request_head: Vec<u8>,
    /// Where response heads are assembled...
    pub head_text: Vec<u8>,
    /// ...then encoded.
    pub head_block: Vec<u8>,
}

impl Room {
    /// A room of these vectors, emptied; one grown past its bound is
    /// freed instead of kept.
    pub fn of(
        codec: room::Room,
        events: Vec<Event>,
        request_head: Vec<u8>,
        head_text: Vec<u8>,
        head_block: Vec<u8>,
    ) -> Room {
        Room {
            codec,
            events: within(events, MAX_EVENTS),
            request_head: within(request_head, MAX_VEC),
            head_text: within(head_text, MAX_VEC),
            head_block: within(head_block, MAX_VEC),
        }
    }

    /// Heap bytes it holds.
    fn capacity(&self) -> usize {
        self.codec.capacity()
            + self.events.capacity() * mem::size_of::<Event>()
            + self.request_head.capacity()
            + self.head_text.capacity()
            + self.head_block.capacity()
    }
}

/// `v`, emptied, if its room is at most `max` elements; else an empty
/// vector (and `v`'s memory is freed).
fn within<T>(mut v: Vec<T>, max: usize) -> Vec<T> {
    if v.capacity() > max {
        return Vec::new();
    }
    v.clear();
    v
}

/// A worker's rooms, bounded in count and bytes.
#[derive(Debug, Default)]
pub struct Rooms {
    free: Vec<Room>,
    bytes: usize,
}

impl Rooms {
    /// Rooms kept.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// Heap bytes the kept rooms hold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `room` if it holds anything and the pool has space for it.
    pub fn give(&mut self, room: Room) {
        let n = room.capacity();
        if n > 0 && self.free.len() < MAX_ROOMS && self.bytes + n <= MAX_BYTES {
            if self.free.capacity() == 0 {
                self.free.reserve_exact(MAX_ROOMS);
            }
            self.bytes += n;
            self.free.push(room);
        }
    }

    /// The room kept last, if any.
    pub fn take(&mut self) -> Option<Room> {
        let room = self.free.pop()?;
        self.bytes -= room.capacity();
        Some(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(bytes: usize) -> Room {
        Room::of(
            room::Room::default(),
            Vec::with_capacity(4),
            Vec::with_capacity(bytes),
            Vec::new(),
            Vec::new(),
        )
    }

    #[test]
    fn rooms_come_back_last_in_first_out_with_their_bytes_counted() {
        let mut rooms = Rooms::default();
        rooms.give(room(100));
        rooms.give(room(200));
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms.bytes(), 300 + 8 * mem::size_of::<Event>());
        assert_eq!(rooms.take().unwrap().request_head.capacity(), 200);
        assert_eq!(rooms.bytes(), 100 + 4 * mem::size_of::<Event>());
        rooms.take();
        assert!(rooms.take().is_none());
        assert_eq!(rooms.bytes(), 0);
    }

    #[test]
    fn the_pool_is_bounded_in_rooms_and_in_bytes() {
        let mut rooms = Rooms::default();
        for _ in 0..MAX_ROOMS + 4 {
            rooms.give(room(10));
        }
        assert_eq!(rooms.len(), MAX_ROOMS);

        let mut rooms = Rooms::default();
        for _ in 0..MAX_ROOMS {
            rooms.give(room(MAX_VEC));
        }
        assert!(rooms.len() < MAX_ROOMS);
        assert!(rooms.bytes() <= MAX_BYTES);
        assert!(rooms.bytes() + MAX_VEC > MAX_BYTES);
    }

    #[test]
    fn empty_rooms_and_oversized_vectors_are_not_kept() {
        let mut rooms = Rooms::default();
        rooms.give(Room::default());
        assert!(rooms.is_empty());
        let big = room(MAX_VEC + 1);
        assert_eq!(big.request_head.capacity(), 0);
        let mut full = vec![1u8; 10];
        full.reserve(10);
        let kept = Room::of(
            room::Room::default(),
            Vec::new(),
            full,
            Vec::new(),
            Vec::new(),
        );
        assert!(kept.request_head.is_empty() && kept.request_head.capacity() >= 20);
    }
}
