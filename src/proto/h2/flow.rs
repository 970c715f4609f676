//! Flow-control windows (RFC 9113 §5.2, §6.9): the ones we send on,
//! opened by the client's WINDOW_UPDATEs and SETTINGS, and the ones the
//! client sends on, which we credit back as the front forwards the data.
//! Every change is checked against 2^31 − 1; the connection
//! ([`super::conn`]) decides whether an overflow is a stream or a
//! connection error.

use super::settings::MAX_WINDOW;

/// What a window refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowError {
    /// An increase or an INITIAL_WINDOW_SIZE change past 2^31 − 1.
    Overflow,
    /// The peer sent more than the window allowed.
    Exceeded,
}

/// A window: signed, since a smaller INITIAL_WINDOW_SIZE can take a send
/// window below zero (§6.9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(i64);

impl Window {
    /// A window of `size` bytes.
    pub fn new(size: u32) -> Window {
        Window(i64::from(size))
    }

    /// Bytes that may be sent now (0 when negative).
    pub fn available(self) -> u32 {
        self.0.clamp(0, i64::from(MAX_WINDOW)) as u32
    }

    /// The raw value, negative included.
    pub fn get(self) -> i64 {
        self.0
    }

    /// A WINDOW_UPDATE's increment.
    pub fn increase(&mut self, inc: u32) -> Result<(), FlowError> {
        let v = self.0 + i64::from(inc);
        if v > i64::from(MAX_WINDOW) {
            return Err(FlowError::Overflow);
        }
        self.0 = v;
        Ok(())
    }

    /// A change of INITIAL_WINDOW_SIZE, applied to an open stream.
    pub fn adjust(&mut self, delta: i64) -> Result<(), FlowError> {
        let v = self.0 + delta;
        if v > i64::from(MAX_WINDOW) {
            return Err(FlowError::Overflow);
        }
        self.0 = v;
        Ok(())
    }

    /// Data received: refused when more than the window.
    pub fn consume(&mut self, n: u32) -> Result<(), FlowError> {
        if i64::from(n) > self.0 {
            return Err(FlowError::Exceeded);
        }
        self.0 -= i64::from(n);
        Ok(())
    }

    /// Data sent: at most [`Window::available`], which the sender checked.
    pub fn spend(&mut self, n: u32) {
        self.0 -= i64::from(n.min(self.available()));
    }
}

/// A window the client sends on, and what the front has handed on but we
/// have not credited back yet. Credits go back in one WINDOW_UPDATE once
/// half the target is owed, so a busy stream costs one update per half
/// window, not one per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    window: Window,
    target: u32,
    owed: u32,
}

impl RecvWindow {
    /// A window that starts at, and is kept near, `target`.
    pub fn new(target: u32) -> RecvWindow {
        RecvWindow {
            window: Window::new(target),
            target,
            owed: 0,
        }
    }

    /// A window that starts at `start` and is brought to `target` by the
    /// first credit (the connection window: 65,535 until our first
    /// WINDOW_UPDATE).
    pub fn starting_at(start: u32, target: u32) -> RecvWindow {
        RecvWindow {
            window: Window::new(start),
            target,
            owed: target.saturating_sub(start),
        }
    }

    /// Bytes the client may still send.
    pub fn available(&self) -> u32 {
        self.window.available()
    }

    /// A DATA frame's whole length, padding included (§6.9.1).
    pub fn receive(&mut self, n: u32) -> Result<(), FlowError> {
        self.window.consume(n)
    }

    /// `n` bytes handed on (or dropped); returns the increment to send,
    /// if one is due now.
    pub fn release(&mut self, n: u32) -> Option<u32> {
        self.owed = self.owed.saturating_add(n);
        // Never credit more than brings the window back to its target.
        let room = (i64::from(self.target) - self.window.get()).max(0) as u32;
        self.owed = self.owed.min(room);
        if self.owed > 0 && self.owed >= self.target / 2 {
            let inc = std::mem::take(&mut self.owed);
            // Below target, so under 2^31 − 1: cannot fail.
            let _ = self.window.increase(inc);
            Some(inc)
        } else {
            None
        }
    }

    /// Credits owed and not yet sent.
    pub fn owed(&self) -> u32 {
        self.owed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn increase_to_the_maximum_is_fine_past_it_overflows() {
        let mut w = Window::new(65_535);
        w.increase(MAX_WINDOW - 65_535).unwrap();
        assert_eq!(w.available(), MAX_WINDOW);
        assert_eq!(w.increase(1), Err(FlowError::Overflow));
        assert_eq!(w.available(), MAX_WINDOW);
    }

    #[test]
    fn consuming_more_than_the_window_is_refused() {
        let mut w = Window::new(10);
        w.consume(10).unwrap();
        assert_eq!(w.consume(1), Err(FlowError::Exceeded));
        assert_eq!(w.available(), 0);
    }

    #[test]
    fn a_window_may_go_negative_and_come_back() {
        let mut w = Window::new(100);
        w.spend(100);
        w.adjust(-50).unwrap();
        assert_eq!(w.get(), -50);
        assert_eq!(w.available(), 0);
        w.increase(60).unwrap();
        assert_eq!(w.available(), 10);
    }

    #[test]
    fn adjust_checks_the_maximum() {
        let mut w = Window::new(MAX_WINDOW);
        assert_eq!(w.adjust(1), Err(FlowError::Overflow));
    }

    #[test]
    fn spend_never_goes_below_available() {
        let mut w = Window::new(5);
        w.spend(10);
        assert_eq!(w.get(), 0);
    }

    #[test]
    fn credits_wait_for_half_a_window() {
        let mut r = RecvWindow::new(100);
        r.receive(60).unwrap();
        assert_eq!(r.release(49), None);
        assert_eq!(r.owed(), 49);
        assert_eq!(r.release(1), Some(50));
        assert_eq!(r.available(), 90);
    }

    #[test]
    fn credits_never_exceed_the_target() {
        let mut r = RecvWindow::new(100);
        r.receive(10).unwrap();
        // The front releases more than it received: capped.
        assert_eq!(r.release(1_000), None);
        assert_eq!(r.owed(), 10);
        assert_eq!(r.available(), 90);
    }

    #[test]
    fn the_connection_window_opens_with_its_first_credit() {
        let mut r = RecvWindow::starting_at(65_535, 1 << 20);
        assert_eq!(r.release(0), Some((1 << 20) - 65_535));
        assert_eq!(r.available(), 1 << 20);
    }

    proptest! {
        #[test]
        fn a_receive_window_never_exceeds_its_target(ops in proptest::collection::vec((any::<bool>(), 0u32..70_000), 0..50)) {
            let mut r = RecvWindow::new(65_535);
            let mut outstanding = 0u64;
            for (recv, n) in ops {
                if recv {
                    if r.receive(n).is_ok() { outstanding += u64::from(n); }
                } else {
                    let n = (u64::from(n)).min(outstanding) as u32;
                    outstanding -= u64::from(n);
                    r.release(n);
                }
                prop_assert!(r.available() <= 65_535);
                prop_assert!(u64::from(r.available()) + u64::from(r.owed()) + outstanding == 65_535);
            }
        }
    }
}
