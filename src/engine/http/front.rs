//! The client side of a leg, as a leg sees it: where its request comes
//! from and where its response goes. The HTTP/1 session's front is its
//! one client connection and the buffer of what the client sent
//! ([`H1Front`]); an HTTP/2 stream's is the stream's own request bytes
//! (the codec's translation) and its frames.

use std::net::SocketAddr;
use std::time::Instant;

use super::write::{relay, Outgoing};
use crate::engine::buffer::Buffer;
use crate::engine::conn::{Conn, Io, Transport};
use crate::engine::step::{CloseReason, Ctx};
use crate::proto::http1::body::{Body, RelayError};

/// The client side of a leg: where its request comes from and its
/// response goes.
pub(super) trait Front<S> {
    /// The request's bytes as the backend gets them, head first; what
    /// went out (and is not held for a resend) is consumed from here.
    fn request(&mut self) -> &mut Option<Buffer>;
    /// Reads more of the request (the rest of its body, or what follows
    /// it) if the front reads for the leg; `Err` ends the connection.
    fn pull(&mut self, ctx: &mut Ctx<'_, S>) -> Result<bool, CloseReason>;
    /// The client's input ended: no more of the request will come.
    fn input_ended(&self) -> bool;
    /// The client connection ends after this response (the balancer
    /// drains, or the client half-closed).
    fn closing(&self) -> bool;
    /// Writes (more of) the response head, from byte `sent` of it;
    /// `last`: nothing follows before the connection ends.
    fn send_head(&mut self, head: &Outgoing<'_>, sent: usize, last: bool, now: Instant) -> Io;
    /// Relays response body bytes from `slot` through `body`'s framing.
    fn send_body(
        &mut self,
        slot: &mut Option<Buffer>,
        body: &mut Body,
        now: Instant,
    ) -> Result<bool, RelayError>;
    /// The client's address, for logs.
    fn peer(&self) -> SocketAddr;
}

/// The HTTP/1 session's front: its one client connection, and the buffer
/// of what the client sent (the request in flight and any pipelined
/// after it).
pub(super) struct H1Front<'a, S> {
    pub client: &'a mut Conn<S>,
    pub to_backend: &'a mut Option<Buffer>,
    pub client_eof: &'a mut bool,
    pub draining: bool,
    pub peer: SocketAddr,
}

impl<S: Transport> Front<S> for H1Front<'_, S> {
    fn request(&mut self) -> &mut Option<Buffer> {
        self.to_backend
    }

    fn pull(&mut self, ctx: &mut Ctx<'_, S>) -> Result<bool, CloseReason> {
        super::fill(self.client, self.to_backend, self.client_eof, ctx)
    }

    fn input_ended(&self) -> bool {
        *self.client_eof
    }

    fn closing(&self) -> bool {
        self.draining || *self.client_eof
    }

    fn send_head(&mut self, head: &Outgoing<'_>, sent: usize, last: bool, now: Instant) -> Io {
        head.write(self.client, sent, last, now)
    }

    fn send_body(
        &mut self,
        slot: &mut Option<Buffer>,
        body: &mut Body,
        now: Instant,
    ) -> Result<bool, RelayError> {
        relay(slot, body, self.client, now)
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }
}
