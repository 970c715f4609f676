//! Writing to the peers without copying: a head as slices of the bytes
//! received (minus the ranges dropped, plus the lines added) with the body
//! bytes that fit in the same write, and bodies relayed through their
//! framing.

use std::io::IoSlice;
use std::time::Instant;

use crate::engine::buffer::Buffer;
use crate::engine::conn::{Conn, Io, Transport};
use crate::proto::http1::body::{self, Body, RelayError};
use crate::proto::http1::exchange::HeadOut;
use crate::proto::http1::{head_slices, virtual_len, MAX_SLICES};

/// A head to write: `src` (up to its final CRLF) without the `drop`
/// ranges, plus the `injects` and CRLF, then the `body` bytes that go in
/// the same write. Request and response heads are written alike.
pub(super) struct Outgoing<'a> {
    pub src: &'a [u8],
    pub drop: &'a [std::ops::Range<usize>],
    pub injects: &'a [&'a [u8]],
    pub body: &'a [u8],
}

impl<'a> From<&'a HeadOut<'a>> for Outgoing<'a> {
    fn from(h: &'a HeadOut<'a>) -> Outgoing<'a> {
        Outgoing {
            src: h.src,
            drop: h.drop,
            injects: &h.injects,
            body: h.body,
        }
    }
}

impl Outgoing<'_> {
    pub fn head_len(&self) -> usize {
        virtual_len(self.src.len(), self.drop, self.injects)
    }

    /// Writes from byte `sent` of the whole on (nothing is copied);
    /// `last`: nothing follows before the close.
    pub fn write<S: Transport>(
        &self,
        dst: &mut Conn<S>,
        sent: usize,
        last: bool,
        now: Instant,
    ) -> Io {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = head_slices(self.src, self.drop, self.injects, sent, &mut slices);
        let head = self.head_len();
        if !self.body.is_empty() && n < MAX_SLICES {
            slices[n] = IoSlice::new(&self.body[sent.saturating_sub(head)..]);
            n += 1;
        }
        if last {
            dst.send_last(&slices[..n], now)
        } else {
            dst.send(&slices[..n], now)
        }
    }

    /// With `sent` bytes of the whole written: `None` while the head is
    /// not all out, else how many body bytes went after it.
    pub fn body_written(&self, sent: usize) -> Option<usize> {
        sent.checked_sub(self.head_len())
    }
}

/// Writes the body bytes at the front of `slot` to `dst`, no further than
/// the body's end (what follows is the next message), through
/// [`body::relay`]: chunked framing is re-made, data moves untouched.
pub(super) fn relay<S: Transport>(
    slot: &mut Option<Buffer>,
    body: &mut Body,
    dst: &mut Conn<S>,
    now: Instant,
) -> Result<bool, RelayError> {
    if !dst.is_writable() {
        return Ok(false);
    }
    let input = slot.as_ref().map_or(&[][..], Buffer::pending);
    let r = body::relay(body, input, |slices| dst.send_io(slices, now))?;
    if let Some(b) = slot.as_mut() {
        b.consumed(r.consumed);
    }
    Ok(r.written > 0 || r.consumed > 0)
}
