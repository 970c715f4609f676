//! The worker's leg table: a slot for every backend socket a session
//! holds (a request's connection, a connection parked between requests,
//! a tcp session's one connection), naming the session it belongs to. An
//! event on a backend socket carries its leg's slot, so the worker finds
//! the session, and a session with several legs (HTTP/2 streams) which
//! one, without a session-wide "backend side". The table's size is also
//! the count of backend descriptors sessions hold.

use slab::Slab;

use super::token::{Generations, SlotId};

/// One leg: its generation and its session.
#[derive(Debug, Clone, Copy)]
struct Entry {
    gen: u32,
    session: SlotId,
}

/// Every leg of a worker's sessions.
#[derive(Debug, Default)]
pub struct Legs {
    slab: Slab<Entry>,
    gens: Generations,
}

impl Legs {
    /// A slot for a new backend socket of `session`.
    pub fn open(&mut self, session: SlotId) -> SlotId {
        let gen = self.gens.bump();
        let index = self.slab.insert(Entry { gen, session });
        SlotId {
            index: index as u32,
            gen,
        }
    }

    /// Frees `leg`'s slot (its socket closed, or went to the idle pool).
    /// A slot already freed, or reused since, is left alone.
    pub fn close(&mut self, leg: SlotId) {
        let i = leg.index as usize;
        if self.slab.get(i).is_some_and(|e| e.gen == leg.gen) {
            self.slab.remove(i);
        }
    }

    /// The session `leg` belongs to, if the slot is still that leg's.
    pub fn session_of(&self, leg: SlotId) -> Option<SlotId> {
        self.slab
            .get(leg.index as usize)
            .filter(|e| e.gen == leg.gen)
            .map(|e| e.session)
    }

    /// Backend sockets held by sessions.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// No session holds a backend socket.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every leg open now (scripted tests send their events).
    #[cfg(test)]
    pub fn open_legs(&self) -> Vec<SlotId> {
        self.slab
            .iter()
            .map(|(i, e)| SlotId {
                index: i as u32,
                gen: e.gen,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(index: u32) -> SlotId {
        SlotId { index, gen: 1 }
    }

    #[test]
    fn a_leg_names_its_session_until_closed() {
        let mut legs = Legs::default();
        let a = legs.open(session(4));
        let b = legs.open(session(9));
        assert_eq!(legs.session_of(a), Some(session(4)));
        assert_eq!(legs.session_of(b), Some(session(9)));
        assert_eq!(legs.len(), 2);
        legs.close(a);
        assert_eq!(legs.session_of(a), None);
        assert_eq!(legs.len(), 1);
    }

    #[test]
    fn a_reused_slot_ignores_the_old_legs_events_and_close() {
        let mut legs = Legs::default();
        let old = legs.open(session(1));
        legs.close(old);
        let new = legs.open(session(2));
        assert_eq!(new.index, old.index, "the slab reuses the slot");
        assert_eq!(legs.session_of(old), None, "a stale event finds nothing");
        legs.close(old);
        assert_eq!(
            legs.session_of(new),
            Some(session(2)),
            "nor frees the new leg"
        );
    }
}
