//! Poll tokens. A token names what an event is for: the waker, a listener,
//! or one side of a session, plus a generation so an event that was queued
//! for a slot before it was reused is recognised and dropped.

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
    /// One side of a session.
    Session(SlotId, Side),
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
            EventTarget::Session(id, Side::Client) => (2, id),
            EventTarget::Session(id, Side::Backend) => (3, id),
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
            2 => EventTarget::Session(id, Side::Client),
            3 => EventTarget::Session(id, Side::Backend),
            _ => EventTarget::Idle(id),
        }
    }
}

/// Hands out slot generations.
#[derive(Debug, Default)]
pub struct Generations(u32);

impl Generations {
    /// The next generation (wraps within 30 bits).
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
            EventTarget::Session(id, Side::Client),
            EventTarget::Session(SlotId { index: 7, gen: 3 }, Side::Backend),
            EventTarget::Idle(id),
        ] {
            assert_eq!(EventTarget::from_token(t.token()), t);
        }
    }
}
