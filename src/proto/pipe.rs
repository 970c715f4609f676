//! Byte passthrough, both ways. The only state is which half of each
//! direction has ended: a FIN read from one side becomes a
//! `shutdown(Write)` on the other once everything before it was delivered,
//! and the pipe is finished when both directions are.

/// One direction of the pipe (client → backend, or backend → client).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Half {
    eof: bool,
    shut: bool,
    bulk: bool,
}

impl Half {
    /// A read took `n` bytes where `ordinary` is a whole ordinary buffer:
    /// one that took at least that much found more waiting than such a
    /// buffer holds, and the direction is bulk until a read takes less.
    pub fn read(&mut self, n: usize, ordinary: usize) {
        self.bulk = n >= ordinary;
    }

    /// Whether the last read found a bulk flow: the next buffer may be a
    /// large one (fewer, larger reads and writes).
    pub fn is_bulk(&self) -> bool {
        self.bulk
    }

    /// The source sent FIN: nothing more will be read this way.
    pub fn saw_eof(&mut self) {
        self.eof = true;
    }

    /// Whether the source has sent FIN.
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Whether the destination's write side should be shut now: after the
    /// FIN, once every byte before it has been written (`pending == 0`).
    pub fn should_shutdown(&self, pending: usize) -> bool {
        self.eof && !self.shut && pending == 0
    }

    /// The destination's write side was shut.
    pub fn did_shutdown(&mut self) {
        self.shut = true;
    }

    /// This direction carried its FIN through.
    pub fn done(&self) -> bool {
        self.shut
    }
}

/// Both directions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pipe {
    /// Client to backend.
    pub up: Half,
    /// Backend to client.
    pub down: Half,
}

impl Pipe {
    /// Both FINs were carried through: the session can close cleanly.
    pub fn finished(&self) -> bool {
        self.up.done() && self.down.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fin_waits_for_pending_bytes() {
        let mut p = Pipe::default();
        assert!(!p.up.should_shutdown(0));
        p.up.saw_eof();
        assert!(!p.up.should_shutdown(10));
        assert!(p.up.should_shutdown(0));
        p.up.did_shutdown();
        assert!(!p.up.should_shutdown(0));
        assert!(!p.finished());
        p.down.saw_eof();
        p.down.did_shutdown();
        assert!(p.finished());
    }

    #[test]
    fn a_direction_is_bulk_while_its_reads_fill_a_whole_buffer() {
        let mut h = Half::default();
        assert!(!h.is_bulk());
        h.read(100, 16);
        assert!(h.is_bulk());
        h.read(16, 16);
        assert!(h.is_bulk());
        h.read(15, 16);
        assert!(!h.is_bulk());
    }
}
