//! I/O buffers from a per-worker pool.
//!
//! A buffer is taken when a read is about to happen and given back as soon
//! as it is empty, so an idle connection holds none; the pool keeps freed
//! buffers for reuse, so the steady state allocates nothing. A byte pipe
//! whose reads fill whole buffers takes bulk ones instead (a quarter
//! megabyte: sixteen times fewer reads and writes, each cheaper per
//! byte), as many at once as the worker allows.

/// Size of an ordinary buffer: large enough for a TLS record or a full
/// HTTP head.
pub const BUFFER_SIZE: usize = 16 * 1024;
/// Size of a bulk buffer. At 0.4 of a CPU a `tcp` stream moved 1.6× the
/// bytes through these as through ordinary ones, 64 KiB ones 1.14×
/// (docs/BENCHMARKS.md, "Where the kernel time goes").
pub const BULK_SIZE: usize = 256 * 1024;
/// Bulk buffers a worker lends at once (16 MiB): past that, bulk flows
/// go on in ordinary buffers.
const MAX_BULK_IN_USE: usize = 64;
/// Free bulk buffers a worker keeps for the next bulk flow.
const MAX_BULK_FREE: usize = 4;

/// Bytes waiting to be written, `data[start..end]`, with room after `end`.
/// The offsets are `u32` (a buffer is at most [`BULK_SIZE`]): a session holds two
/// of these, and every byte of a session counts at thousands of
/// connections.
#[derive(Debug)]
pub struct Buffer {
    data: Box<[u8]>,
    start: u32,
    end: u32,
}

const _: () = assert!(BUFFER_SIZE <= BULK_SIZE && BULK_SIZE <= u32::MAX as usize);

impl Buffer {
    /// The bytes not yet written out.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.start as usize..self.end as usize]
    }

    /// How many bytes wait.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Its size: [`BUFFER_SIZE`] or [`BULK_SIZE`].
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Free room to read into. Empty when the buffer is full.
    ///
    /// Bytes already consumed make room: when more of it lies before the
    /// pending bytes than after them, the pending bytes move to the
    /// front. Without this, pipelined requests or a run of large interim
    /// responses filled the buffer to its end while each message fitted,
    /// and the last head found no room (a spurious 431 or 502). Callers
    /// keep only offsets relative to [`Buffer::pending`], which the move
    /// preserves; it copies at most one buffer, and only when a read
    /// would otherwise get less than half the free room.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            // Everything was written: reuse the buffer from the start.
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.data.len() - (self.end as usize) < self.start as usize {
            self.data
                .copy_within(self.start as usize..self.end as usize, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end as usize..]
    }

    /// `n` bytes were read into [`Buffer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end as usize + n).min(self.data.len()) as u32;
    }

    /// `n` bytes of [`Buffer::pending`] were written out.
    pub fn consumed(&mut self, n: usize) {
        self.start = (self.start as usize + n).min(self.end as usize) as u32;
    }

    /// No room left to read into, even after consumed bytes make room:
    /// the pending bytes fill the whole buffer.
    pub fn is_full(&self) -> bool {
        self.len() == self.data.len()
    }
}

/// A worker's free buffers.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Box<[u8]>>,
    max_free: usize,
    allocated: usize,
    bulk_free: Vec<Box<[u8]>>,
    bulk_in_use: usize,
}

impl BufferPool {
    /// A pool that keeps at most `max_free` idle buffers (beyond that, freed
    /// buffers return to the allocator, so a burst does not pin memory).
    pub fn new(max_free: usize) -> BufferPool {
        BufferPool {
            free: Vec::new(),
            max_free,
            allocated: 0,
            bulk_free: Vec::new(),
            bulk_in_use: 0,
        }
    }

    /// An empty bulk buffer ([`BULK_SIZE`]), unless the worker lends as
    /// many as it may already.
    pub fn take_bulk(&mut self) -> Option<Buffer> {
        if self.bulk_in_use >= MAX_BULK_IN_USE {
            return None;
        }
        self.bulk_in_use += 1;
        let data = self
            .bulk_free
            .pop()
            .unwrap_or_else(|| vec![0u8; BULK_SIZE].into_boxed_slice());
        Some(Buffer {
            data,
            start: 0,
            end: 0,
        })
    }

    /// Bulk buffers lent now.
    pub fn bulk_in_use(&self) -> usize {
        self.bulk_in_use
    }

    /// An empty buffer, reused when one is free.
    pub fn take(&mut self) -> Buffer {
        let data = self.free.pop().unwrap_or_else(|| {
            self.allocated += 1;
            vec![0u8; BUFFER_SIZE].into_boxed_slice()
        });
        Buffer {
            data,
            start: 0,
            end: 0,
        }
    }

    /// Returns a buffer (its contents are discarded).
    pub fn give(&mut self, buf: Buffer) {
        if buf.data.len() == BULK_SIZE {
            self.bulk_in_use = self.bulk_in_use.saturating_sub(1);
            if self.bulk_free.len() < MAX_BULK_FREE {
                self.bulk_free.push(buf.data);
            }
            return;
        }
        if self.free.len() < self.max_free {
            self.free.push(buf.data);
        } else {
            self.allocated -= 1;
        }
    }

    /// Buffers idle in the pool.
    pub fn idle(&self) -> usize {
        self.free.len()
    }

    /// Ordinary buffers that exist, in use or idle.
    pub fn allocated(&self) -> usize {
        self.allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_drain_and_reuse() {
        let mut pool = BufferPool::new(4);
        let mut b = pool.take();
        assert!(b.is_empty());
        b.spare()[..5].copy_from_slice(b"hello");
        b.filled(5);
        assert_eq!(b.pending(), b"hello");
        b.consumed(2);
        assert_eq!(b.pending(), b"llo");
        b.consumed(3);
        assert!(b.is_empty());
        assert_eq!(b.spare().len(), BUFFER_SIZE);
        pool.give(b);
        assert_eq!(pool.idle(), 1);
        let _again = pool.take();
        assert_eq!(pool.allocated(), 1);
    }

    #[test]
    fn consumed_bytes_make_room_and_pending_bytes_survive() {
        let mut pool = BufferPool::new(1);
        let mut b = pool.take();
        // Filled to the end, most of it consumed: not full, and the next
        // read gets the room consumed bytes left.
        let n = b.spare().len();
        for (i, byte) in b.spare().iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        b.filled(n);
        assert!(b.is_full());
        b.consumed(n - 10);
        assert!(!b.is_full());
        let tail: Vec<u8> = b.pending().to_vec();
        assert_eq!(b.spare().len(), n - 10);
        assert_eq!(b.pending(), &tail[..], "moved, not changed");
        b.spare()[..3].copy_from_slice(b"abc");
        b.filled(3);
        assert_eq!(&b.pending()[..10], &tail[..]);
        assert_eq!(&b.pending()[10..], b"abc");
        // Less consumed than the room after the end: nothing moves.
        let mut c = pool.take();
        c.spare()[..100].fill(7);
        c.filled(100);
        c.consumed(40);
        let room = c.spare().len();
        assert_eq!(room, BUFFER_SIZE - 100);
        assert_eq!(c.pending(), &[7u8; 60][..]);
    }

    #[test]
    fn bulk_buffers_are_lent_up_to_a_bound_and_kept_a_few() {
        let mut pool = BufferPool::new(4);
        let mut lent: Vec<Buffer> = (0..MAX_BULK_IN_USE)
            .map(|_| pool.take_bulk().expect("within the bound"))
            .collect();
        assert!(pool.take_bulk().is_none(), "past the bound");
        assert_eq!(pool.bulk_in_use(), MAX_BULK_IN_USE);
        let mut b = lent.pop().unwrap();
        assert_eq!(b.spare().len(), BULK_SIZE);
        b.filled(BULK_SIZE);
        assert!(b.is_full());
        pool.give(b);
        assert!(pool.take_bulk().is_some(), "room for one again");
        for b in lent {
            pool.give(b);
        }
        assert_eq!(pool.bulk_in_use(), 1);
        assert_eq!(pool.bulk_free.len(), MAX_BULK_FREE);
        // Ordinary buffers are counted apart.
        assert_eq!((pool.allocated(), pool.idle()), (0, 0));
    }

    #[test]
    fn full_and_bounded_pool() {
        let mut pool = BufferPool::new(1);
        let mut b = pool.take();
        let n = b.spare().len();
        b.filled(n);
        assert!(b.is_full());
        assert!(b.spare().is_empty());
        let c = pool.take();
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.idle(), 1);
        assert_eq!(pool.allocated(), 1);
    }
}
