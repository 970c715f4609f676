//! A hashed timer wheel: 100 ms ticks, no syscall and no allocation per
//! timer once its slab has grown, and memory in proportion to the sessions
//! alive, never to the sessions served.
//!
//! Each session has at most one entry. Entries live in a slab, linked into
//! their slot's list, so an entry is cancelled in O(1) when its session
//! ends or moves its deadline earlier. (An earlier wheel of plain vectors
//! left each closed session's entries until they fired: at thousands of
//! new connections a second that was hundreds of thousands of stale
//! entries, and slot vectors whose capacity only grew.)
//!
//! Timers are still lazy: a session whose deadline moves later keeps its
//! entry; when it fires, the session compares the time with its current
//! deadline and arms again.

use std::time::{Duration, Instant};

use slab::Slab;

use super::token::SlotId;

/// Wheel resolution.
pub const TICK: Duration = Duration::from_millis(100);
const SLOTS: usize = 512;
const NIL: u32 = u32::MAX;

/// An armed entry, to cancel it. It names its session too, so a key kept
/// after its entry fired can never cancel another session's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey {
    key: u32,
    id: SlotId,
}

#[derive(Debug)]
struct Entry {
    tick: u64,
    id: SlotId,
    prev: u32,
    next: u32,
}

/// The wheel.
#[derive(Debug)]
pub struct Wheel {
    origin: Instant,
    /// The next tick to be processed.
    cursor: u64,
    /// First entry of each slot's list.
    heads: Vec<u32>,
    entries: Slab<Entry>,
}

impl Wheel {
    /// A wheel starting at `now`.
    pub fn new(now: Instant) -> Wheel {
        Wheel {
            origin: now,
            cursor: 0,
            heads: vec![NIL; SLOTS],
            entries: Slab::new(),
        }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        // Round up: a timer never fires before its deadline.
        d.as_nanos().div_ceil(TICK.as_nanos()) as u64
    }

    /// Arms a timer for `id` at `deadline`.
    pub fn schedule(&mut self, id: SlotId, deadline: Instant) -> TimerKey {
        let tick = self.tick_of(deadline).max(self.cursor);
        let slot = (tick % SLOTS as u64) as usize;
        let head = self.heads[slot];
        let key = self.entries.insert(Entry {
            tick,
            id,
            prev: NIL,
            next: head,
        }) as u32;
        if head != NIL {
            self.entries[head as usize].prev = key;
        }
        self.heads[slot] = key;
        TimerKey { key, id }
    }

    /// Disarms an entry that has not fired.
    pub fn cancel(&mut self, key: TimerKey) {
        if self
            .entries
            .get(key.key as usize)
            .is_some_and(|e| e.id == key.id)
        {
            self.unlink(key.key);
        }
    }

    /// Takes entry `k` out of its list and the slab.
    fn unlink(&mut self, k: u32) -> Entry {
        let e = self.entries.remove(k as usize);
        if e.prev == NIL {
            self.heads[(e.tick % SLOTS as u64) as usize] = e.next;
        } else {
            self.entries[e.prev as usize].next = e.next;
        }
        if e.next != NIL {
            self.entries[e.next as usize].prev = e.prev;
        }
        e
    }

    /// Collects into `out` every entry due at `now` (each leaves the
    /// wheel: its key is spent).
    pub fn expire(&mut self, now: Instant, out: &mut Vec<SlotId>) {
        let target = self.tick_of(now);
        // After a long stall, one pass over every slot finds everything due.
        let last = target.min(self.cursor + SLOTS as u64);
        while self.cursor <= last {
            let mut k = self.heads[(self.cursor % SLOTS as u64) as usize];
            while k != NIL {
                let next = self.entries[k as usize].next;
                if self.entries[k as usize].tick <= target {
                    out.push(self.unlink(k).id);
                }
                k = next;
            }
            self.cursor += 1;
        }
        self.cursor = self.cursor.max(target + 1).min(last + 1);
        if self.entries.is_empty() && self.entries.capacity() > 1024 {
            // Give back what a burst of sessions needed.
            self.entries = Slab::new();
        }
    }

    /// Entries armed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> SlotId {
        SlotId { index: i, gen: 1 }
    }

    #[test]
    fn fires_at_or_after_deadline() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.schedule(id(1), t0 + Duration::from_millis(250));
        w.schedule(id(2), t0 + Duration::from_secs(120));
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(200), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(300), &mut out);
        assert_eq!(out, [id(1)]);
        out.clear();
        // 120 s is more than one revolution: it must not fire early.
        w.expire(t0 + Duration::from_secs(60), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_secs(121), &mut out);
        assert_eq!(out, [id(2)]);
        assert!(w.is_empty());
    }

    #[test]
    fn cancelled_entries_never_fire_and_free_their_room() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let keys: Vec<TimerKey> = (0..100)
            .map(|i| w.schedule(id(i), t0 + Duration::from_millis(200)))
            .collect();
        let later = w.schedule(id(500), t0 + Duration::from_secs(60));
        for (i, k) in keys.iter().enumerate() {
            if i % 2 == 0 {
                w.cancel(*k);
            }
        }
        assert_eq!(w.len(), 51);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(300), &mut out);
        out.sort_by_key(|s| s.index);
        assert_eq!(
            out,
            (0..100).filter(|i| i % 2 == 1).map(id).collect::<Vec<_>>()
        );
        w.cancel(later);
        assert!(w.is_empty());
        // A million sessions that come and go leave nothing behind.
        let room = w.entries.capacity();
        for i in 0..1_000_000u32 {
            let k = w.schedule(id(i), t0 + Duration::from_secs(10));
            w.cancel(k);
        }
        assert!(w.is_empty());
        assert_eq!(w.entries.capacity(), room);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_pass() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_secs(5), &mut out);
        w.schedule(id(3), t0);
        w.expire(t0 + Duration::from_secs(5), &mut out);
        assert!(out.is_empty(), "scheduled into the processed tick");
        w.expire(t0 + Duration::from_millis(5100), &mut out);
        assert_eq!(out, [id(3)]);
    }
}
