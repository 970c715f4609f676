//! A hashed timer wheel: 100 ms ticks, no syscall and no allocation per
//! timer once the slots have grown.
//!
//! Timers are lazy. A session keeps its own deadline and arms the wheel only
//! when it has no earlier entry pending; when an entry fires, the session
//! compares the time with its current deadline and re-arms if activity moved
//! it. Stale entries (sessions gone, slots reused) are filtered by the
//! caller through the generation in [`SlotId`].

use std::time::{Duration, Instant};

use super::token::SlotId;

/// Wheel resolution.
pub const TICK: Duration = Duration::from_millis(100);
const SLOTS: usize = 512;

/// The wheel.
#[derive(Debug)]
pub struct Wheel {
    origin: Instant,
    /// The next tick to be processed.
    cursor: u64,
    slots: Vec<Vec<(u64, SlotId)>>,
    len: usize,
}

impl Wheel {
    /// A wheel starting at `now`.
    pub fn new(now: Instant) -> Wheel {
        Wheel {
            origin: now,
            cursor: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            len: 0,
        }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        // Round up: a timer never fires before its deadline.
        d.as_nanos().div_ceil(TICK.as_nanos()) as u64
    }

    /// Arms a timer for `id` at `deadline`.
    pub fn schedule(&mut self, id: SlotId, deadline: Instant) {
        let tick = self.tick_of(deadline).max(self.cursor);
        self.slots[(tick % SLOTS as u64) as usize].push((tick, id));
        self.len += 1;
    }

    /// Collects into `out` every entry due at `now`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<SlotId>) {
        let target = self.tick_of(now);
        // After a long stall, one pass over every slot finds everything due.
        let last = target.min(self.cursor + SLOTS as u64);
        while self.cursor <= last {
            let slot = &mut self.slots[(self.cursor % SLOTS as u64) as usize];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].0 <= target {
                    out.push(slot.swap_remove(i).1);
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
            self.cursor += 1;
        }
        self.cursor = self.cursor.max(target + 1).min(last + 1);
    }

    /// Entries armed (including stale ones).
    pub fn len(&self) -> usize {
        self.len
    }

    /// No entries at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The lazy-arming rule every session follows: a wheel entry is added only
/// when the session has none at or before `deadline`. `armed` is the
/// session's earliest pending entry; returns the time to schedule, if any.
pub fn arm(armed: &mut Option<Instant>, deadline: Instant) -> Option<Instant> {
    match *armed {
        Some(a) if a <= deadline => None,
        _ => {
            *armed = Some(deadline);
            Some(deadline)
        }
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
