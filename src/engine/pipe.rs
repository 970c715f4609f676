//! The byte pipe: both directions of a proxied stream moved through the
//! worker's buffers until each has carried its FIN through, or one side
//! fails. The TCP session is nothing but this; the HTTP session becomes
//! this after a `101 Switching Protocols`. The half-close bookkeeping is
//! [`crate::proto::pipe`].

use std::io::IoSlice;
use std::time::Instant;

use super::buffer::{Buffer, BufferPool, BUFFER_SIZE, BULK_SIZE};
use super::conn::{release_if_empty, Conn, Io, Transport};
use super::step::CloseReason;
use super::token::Side;
use crate::proto::pipe::{Half, Pipe};
use crate::proto::proxy_v2;

/// Bytes that go to the backend before anything of the client's: the
/// PROXY v2 header, and how much of it was sent.
#[derive(Debug)]
pub struct Preface {
    header: proxy_v2::Header,
    sent: usize,
}

impl Preface {
    /// `header`, none of it sent yet.
    pub fn new(header: proxy_v2::Header) -> Preface {
        Preface { header, sent: 0 }
    }

    fn rest(&self) -> &[u8] {
        &self.header.as_bytes()[self.sent..]
    }
}

/// Both directions of a byte pipe, borrowed for one round.
pub struct Streams<'a, S> {
    /// The client's socket.
    pub client: &'a mut Conn<S>,
    /// The backend's socket.
    pub backend: &'a mut Conn<S>,
    /// Client → backend bytes not yet written.
    pub to_backend: &'a mut Option<Buffer>,
    /// Backend → client bytes not yet written.
    pub to_client: &'a mut Option<Buffer>,
    /// Where each direction's FIN stands.
    pub pipe: &'a mut Pipe,
    /// Bytes owed to the backend first.
    pub preface: Option<&'a mut Preface>,
}

/// One round of moving bytes both ways: `Ok(progress)`, or why the pipe
/// ends: done when both FINs went through, or a reset passed on to the side
/// that did not fail.
pub fn round<S: Transport>(
    s: Streams<'_, S>,
    pool: &mut BufferPool,
    now: Instant,
) -> Result<bool, CloseReason> {
    let up = transfer(
        s.client,
        s.backend,
        s.to_backend,
        &mut s.pipe.up,
        s.preface,
        pool,
        now,
        (Side::Client, Side::Backend),
    );
    let down = transfer(
        s.backend,
        s.client,
        s.to_client,
        &mut s.pipe.down,
        None,
        pool,
        now,
        (Side::Backend, Side::Client),
    );
    match (up, down) {
        (Err(side), _) | (_, Err(side)) => {
            match side {
                Side::Client => s.backend.reset_on_close(),
                Side::Backend => s.client.reset_on_close(),
            }
            Err(CloseReason::Reset(side))
        }
        _ if s.pipe.finished() => Err(CloseReason::Done),
        (Ok(a), Ok(b)) => Ok(a || b),
    }
}

/// When a moving connection times out for inactivity: the client side after
/// the client timeout, the backend side after the server timeout.
pub fn idle_deadline<S: Transport>(
    client: &Conn<S>,
    backend: Option<&Conn<S>>,
    t: &crate::config::Timeouts,
) -> Instant {
    let c = client.last_io() + t.client;
    backend.map_or(c, |b| c.min(b.last_io() + t.server))
}

/// When an established tunnel (a `tcp` stream, an upgraded HTTP
/// connection) times out: with the `tunnel` timeout, after that long
/// silent both ways (HAProxy's `timeout tunnel`, which replaces the
/// client and server timeouts there); without it, as any moving
/// connection.
pub fn tunnel_deadline<S: Transport>(
    client: &Conn<S>,
    backend: &Conn<S>,
    t: &crate::config::Timeouts,
) -> Instant {
    match t.tunnel {
        Some(d) => client.last_io().max(backend.last_io()) + d,
        None => idle_deadline(client, Some(backend), t),
    }
}

/// Which side of a moving connection timed out at `now` (for a tunnel
/// with its own timeout: the side silent longer).
pub fn idle_side<S: Transport>(
    client: &Conn<S>,
    backend: Option<&Conn<S>>,
    t: &crate::config::Timeouts,
    now: Instant,
) -> Side {
    match (t.tunnel, backend) {
        (Some(_), Some(b)) if b.last_io() < client.last_io() => Side::Backend,
        (Some(_), _) => Side::Client,
        (None, _) if now >= client.last_io() + t.client => Side::Client,
        (None, _) => Side::Backend,
    }
}

/// One direction: flush what is buffered (preface first), read more, and
/// carry a FIN through once everything before it is delivered. `Err` names
/// the side whose socket failed.
#[allow(clippy::too_many_arguments)]
fn transfer<S: Transport>(
    src: &mut Conn<S>,
    dst: &mut Conn<S>,
    slot: &mut Option<Buffer>,
    half: &mut Half,
    mut preface: Option<&mut Preface>,
    pool: &mut BufferPool,
    now: Instant,
    (src_side, dst_side): (Side, Side),
) -> Result<bool, Side> {
    let mut progress = false;
    if dst.is_writable() && dst.pending_out() {
        match dst.flush() {
            Ok(done) => progress |= done,
            Err(_) => return Err(dst_side),
        }
    }
    let pre_len = preface.as_ref().map_or(0, |p| p.rest().len());
    let buf_len = slot.as_ref().map_or(0, Buffer::len);

    if pre_len + buf_len > 0 {
        let empty: &[u8] = &[];
        let pending = slot.as_ref().map_or(empty, Buffer::pending);
        let rest = preface.as_ref().map_or(empty, |p| p.rest());
        let both = [IoSlice::new(rest), IoSlice::new(pending)];
        let slices = if rest.is_empty() {
            &both[1..]
        } else {
            &both[..]
        };
        match dst.send(slices, now) {
            Io::Moved(mut n) | Io::Drained(mut n) => {
                if let Some(p) = preface.as_mut() {
                    let k = n.min(pre_len);
                    p.sent += k;
                    n -= k;
                }
                if let Some(b) = slot.as_mut() {
                    b.consumed(n);
                }
                progress = true;
            }
            Io::Blocked => {}
            Io::Eof | Io::Failed => return Err(dst_side),
        }
    }

    if !half.eof() {
        // A bulk flow's next read goes into a bulk buffer, once the
        // ordinary one it was in is empty.
        if half.is_bulk() && slot.as_ref().is_none_or(|b| b.capacity() < BULK_SIZE) {
            release_if_empty(slot, pool);
            if slot.is_none() {
                *slot = pool.take_bulk();
            }
        }
        match src.fill(slot, pool, now) {
            Io::Eof => {
                half.saw_eof();
                progress = true;
            }
            Io::Moved(n) | Io::Drained(n) => {
                half.read(n, BUFFER_SIZE);
                progress = true;
            }
            Io::Blocked => {}
            Io::Failed => return Err(src_side),
        }
    }
    release_if_empty(slot, pool);

    let pre_left = preface.as_ref().map_or(0, |p| p.rest().len());
    let tls_left = usize::from(dst.pending_out());
    if half.should_shutdown(pre_left + slot.as_ref().map_or(0, Buffer::len) + tls_left) {
        match dst.shutdown_write() {
            Ok(()) => {}
            // The peer already went away; the next read or write says so.
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {}
            Err(_) => return Err(dst_side),
        }
        half.did_shutdown();
        progress = true;
    }
    Ok(progress)
}
