//! Poll tokens. A token names what an event is for: the waker, a listener,
//! a session's client socket, a leg's backend socket (a request's, for
//! HTTP; the one backend connection, for tcp) or an idle pooled
//! connection, plus a generation so an event that was queued for a slot
//! before it was reused is recognised and dropped.
//!
//! The 64 bits: 3 for the kind, 32 for the slot's index in its slab (the
//! worker's sessions, its [`Legs`](super::legs::Legs), its listeners or
//! its idle pool), 29 for the slot's generation. A generation wraps after
//! 2^29 reuses of one slot; an event cannot wait in a poll batch that
//! long.

use crate::sys::poll::Token;

/// Which socket of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The accepted connection.
    Client,
    /// The connection to the backend.
    Backend,
}

/// A slab index with the generation the slot had when the token was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotId {
    /// Index in the slab.
    pub index: u32,
    /// Generation of the slot's occupant (29 bits).
    pub gen: u32,
}

/// What an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTarget {
    /// The worker's waker: a message is waiting.
    Waker,
    /// A listening socket.
    Listener(SlotId),
    /// A session's client socket.
    Client(SlotId),
    /// A leg's backend socket: the slot is in the worker's leg table,
    /// which names the session.
    Leg(SlotId),
    /// An idle backend connection in the worker's pool: any event on it
    /// means the backend spoke or hung up unasked.
    Idle(SlotId),
}

const TAG_BITS: u32 = 3;
const GEN_BITS: u32 = 64 - 32 - TAG_BITS;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

impl EventTarget {
    /// Packs into a token: 3 tag bits, 32 index bits, 29 generation bits.
    pub fn token(self) -> Token {
        let (tag, id) = match self {
            EventTarget::Waker => (0u64, SlotId { index: 0, gen: 0 }),
            EventTarget::Listener(id) => (1, id),
            EventTarget::Client(id) => (2, id),
            EventTarget::Leg(id) => (3, id),
            EventTarget::Idle(id) => (4, id),
        };
        let v = tag
            | (u64::from(id.index) << TAG_BITS)
            | (u64::from(id.gen & GEN_MASK) << (32 + TAG_BITS));
        Token(v as usize)
    }

    /// Unpacks a token made by [`EventTarget::token`].
    pub fn from_token(t: Token) -> EventTarget {
        let v = t.0 as u64;
        let id = SlotId {
            index: (v >> TAG_BITS) as u32,
            gen: ((v >> (32 + TAG_BITS)) as u32) & GEN_MASK,
        };
        match v & ((1 << TAG_BITS) - 1) {
            0 => EventTarget::Waker,
            1 => EventTarget::Listener(id),
            2 => EventTarget::Client(id),
            3 => EventTarget::Leg(id),
            _ => EventTarget::Idle(id),
        }
    }
}

/// Hands out slot generations.
#[derive(Debug, Default)]
pub struct Generations(u32);

impl Generations {
    /// The next generation (wraps within 29 bits).
    pub fn bump(&mut self) -> u32 {
        self.0 = (self.0 + 1) & GEN_MASK;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = SlotId {
            index: u32::MAX,
            gen: GEN_MASK,
        };
        for t in [
            EventTarget::Waker,
            EventTarget::Listener(id),
            EventTarget::Client(id),
            EventTarget::Leg(SlotId { index: 7, gen: 3 }),
            EventTarget::Idle(id),
        ] {
            assert_eq!(EventTarget::from_token(t.token()), t);
        }
    }
}
