//! The vectors a connection needs only while it is busy (its output, its
//! events, the header block and field lists it reuses) as one value that
//! outlives the connection. An idle connection holds none of them; a
//! front that keeps the rooms of resting connections for the next busy
//! one makes a burst cost no allocation either.

use std::mem;

use super::conn::{Connection, Event};
use super::hpack::Fields;

/// The largest output vector a room keeps: a burst that queued more (a
/// client that reads slowly) does not pin that memory in the pool.
const MAX_OUT: usize = 64 * 1024;
/// The largest frame-payload vector a room keeps.
const MAX_SCRATCH: usize = 16 * 1024;
/// The most events a room keeps room for.
const MAX_EVENTS: usize = 256;

/// A connection's busy-time vectors, empty, with their capacity.
#[derive(Debug, Default)]
pub struct Room {
    out: Vec<u8>,
    scratch: Vec<u8>,
    events: Vec<Event>,
    spares: Vec<Fields>,
    block_spare: Vec<u8>,
}

impl Room {
    /// Heap bytes it holds.
    pub fn capacity(&self) -> usize {
        self.out.capacity()
            + self.scratch.capacity()
            + self.events.capacity() * mem::size_of::<Event>()
            + self.spares.capacity() * mem::size_of::<Fields>()
            + self.spares.iter().map(Fields::capacity).sum::<usize>()
            + self.block_spare.capacity()
    }
}

impl Connection {
    /// Takes out the vectors it needs only while busy, leaving it what
    /// an idle connection should hold: its state. A vector still holding
    /// bytes (output not yet written, a frame half read) stays.
    pub fn vacate(&mut self) -> Room {
        Room {
            out: take_empty(&mut self.out, MAX_OUT),
            scratch: take_empty(&mut self.scratch, MAX_SCRATCH),
            events: take_empty(&mut self.events, MAX_EVENTS),
            // Bounded in count and size as they are kept.
            spares: mem::take(&mut self.spares),
            block_spare: mem::take(&mut self.block_spare),
        }
    }

    /// Takes `room`'s vectors where it has none of its own (what it
    /// still lacks is allocated when a burst needs it).
    pub fn furnish(&mut self, room: Room) {
        let Room {
            out,
            scratch,
            events,
            spares,
            block_spare,
        } = room;
        fill(&mut self.out, out);
        fill(&mut self.scratch, scratch);
        fill(&mut self.events, events);
        fill(&mut self.spares, spares);
        fill(&mut self.block_spare, block_spare);
    }
}

/// `v` when it is empty and not larger than `max` elements of room; an
/// empty vector otherwise (a non-empty `v` is left where it is).
fn take_empty<T>(v: &mut Vec<T>, max: usize) -> Vec<T> {
    if !v.is_empty() {
        return Vec::new();
    }
    let v = mem::take(v);
    if v.capacity() > max {
        Vec::new()
    } else {
        v
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
    use super::*;
    use crate::proto::h2::conn::Config;
    use crate::proto::h2::testkit::{get, Client, Got};

    /// The fields of the request in `c`'s last events.
    fn request_fields(c: &mut Client) -> Fields {
        let fields = c.events.drain(..).find_map(|e| match e {
            Got::Event(Event::Request { fields, .. }) => Some(fields),
            _ => None,
        });
        fields.expect("a request")
    }

    #[test]
    fn a_vacated_connection_holds_nothing_and_a_furnished_one_reuses_it() {
        let mut c = Client::new();
        c.send(&get(1)).unwrap();
        let fields = request_fields(&mut c);
        c.conn.recycle(fields);
        c.take_frames();
        let room = c.conn.vacate();
        assert!(c.conn.is_slim());
        assert!(room.capacity() > 0);
        assert_eq!(room.spares.len(), 1);
        let list_at = room.spares[0].capacity();

        // Another connection takes the room: its next request is decoded
        // into the list the first one gave back.
        let mut d = Client::new();
        d.take_frames();
        d.conn.vacate();
        d.conn.furnish(room);
        assert_eq!(d.conn.spares.len(), 1);
        d.send(&get(1)).unwrap();
        assert!(d.conn.spares.is_empty());
        assert_eq!(request_fields(&mut d).capacity(), list_at);
    }

    #[test]
    fn what_still_holds_bytes_or_grew_too_large_is_not_lent() {
        let mut c = Connection::new(Config::default());
        // Our SETTINGS are still to be written.
        assert!(!c.output().is_empty());
        c.events.reserve(MAX_EVENTS + 1);
        let room = c.vacate();
        assert!(!c.output().is_empty());
        assert_eq!(room.out.capacity(), 0);
        assert_eq!(room.events.capacity(), 0);
        assert_eq!(c.events.capacity(), 0);
    }

    #[test]
    fn a_connection_keeps_its_own_vectors_over_a_rooms() {
        let mut c = Connection::new(Config::default());
        let own = c.out.as_ptr();
        c.furnish(Room {
            out: Vec::with_capacity(8),
            ..Room::default()
        });
        assert_eq!(c.out.as_ptr(), own);
    }
}
