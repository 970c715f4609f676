//! What illumos reports for a descriptor, computed from what Linux reports.
//!
//! For sockets, from illumos-gate's `so_poll`
//! (`usr/src/uts/common/fs/sockfs/sockcommon_sops.c`; `sotpi_poll` in
//! `socktpi.c`, used for `AF_UNIX`, has the same rules for these bits):
//!
//! - a pending error (`so_error`) is reported as `POLLIN|POLLOUT`, masked by
//!   the events asked for, and nothing else: never `POLLERR`, and no
//!   `POLLHUP` while the error is pending;
//! - `POLLOUT` only while connected (and not flow-controlled);
//! - `POLLIN` for data, for a pending connection on a listener, and for end
//!   of stream (`SO_HAVE_DATA` is true once nothing more can arrive): a
//!   peer's FIN is plain `POLLIN`, there is no `POLLRDHUP` unless asked;
//! - `POLLHUP` once both directions are shut down and the socket is no
//!   longer connected, with `POLLIN` and without `POLLOUT` ("mutually
//!   exclusive with respect to POLLOUT but not POLLIN").
//!
//! Linux's `tcp_poll` instead reports `EPOLLERR` (with `EPOLLHUP` and
//! `EPOLLIN` after a reset), `EPOLLRDHUP` on a FIN, and `EPOLLOUT` after a
//! shutdown of the write side. Anything that is not a socket (the event
//! ports poller sees none in moirai) is passed through unchanged.

use crate::sys::poll::ports_state::bits::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

/// What kind of file a descriptor was when it was associated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A socket: sockfs's rules.
    Socket,
    /// Anything else: Linux's bits as they are.
    Other,
}

/// Linux's `EPOLLRDHUP`, which illumos's sockets never report unasked.
const EPOLLRDHUP: i32 = 0x2000;

/// The `revents` illumos would deliver for a descriptor of `kind`
/// associated for `asked`, given the `epoll` bits Linux reported. 0 means
/// illumos would not have fired at all.
pub fn illumos_revents(kind: Kind, asked: i32, linux: i32) -> i32 {
    // Always reported, asked or not (port_associate(3C)).
    let unmasked = POLLHUP | POLLERR | POLLNVAL;
    match kind {
        Kind::Other => linux & (asked | unmasked) & !EPOLLRDHUP,
        Kind::Socket => {
            if linux & POLLERR != 0 {
                // An error, unless nothing it maps to was asked for (then
                // so_poll goes on to the state bits).
                let r = (POLLIN | POLLOUT) & asked;
                if r != 0 {
                    return r;
                }
            }
            let mut r = 0;
            if linux & (POLLIN | EPOLLRDHUP) != 0 {
                r |= POLLIN;
            }
            if linux & POLLHUP != 0 {
                // Disconnected: end of stream is readable, never writable.
                r |= POLLIN | POLLHUP;
            } else if linux & POLLOUT != 0 {
                r |= POLLOUT;
            }
            r & (asked | POLLHUP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IO: i32 = POLLIN | POLLOUT;

    #[test]
    fn a_socket_error_is_input_and_output_never_pollerr() {
        // A reset on Linux: EPOLLERR|EPOLLHUP|EPOLLIN|EPOLLRDHUP.
        let reset = POLLERR | POLLHUP | POLLIN | EPOLLRDHUP;
        assert_eq!(illumos_revents(Kind::Socket, IO, reset), IO);
        assert_eq!(illumos_revents(Kind::Socket, POLLIN, reset), POLLIN);
        assert_eq!(illumos_revents(Kind::Socket, POLLOUT, reset), POLLOUT);
        // A refused connect: EPOLLERR|EPOLLHUP|EPOLLOUT on Linux.
        let refused = POLLERR | POLLHUP | POLLOUT;
        assert_eq!(illumos_revents(Kind::Socket, POLLOUT, refused), POLLOUT);
    }

    #[test]
    fn end_of_stream_is_plain_pollin() {
        let fin = POLLIN | EPOLLRDHUP | POLLOUT;
        assert_eq!(illumos_revents(Kind::Socket, IO, fin), IO);
        assert_eq!(illumos_revents(Kind::Socket, POLLIN, fin), POLLIN);
        // Only the write side asked: the FIN alone does not fire.
        assert_eq!(
            illumos_revents(Kind::Socket, POLLOUT, POLLIN | EPOLLRDHUP),
            0
        );
    }

    #[test]
    fn a_disconnected_socket_hangs_up_readable_not_writable() {
        let closed = POLLHUP | POLLIN | EPOLLRDHUP | POLLOUT;
        assert_eq!(illumos_revents(Kind::Socket, IO, closed), POLLIN | POLLHUP);
        // POLLHUP is reported even when only POLLOUT was asked.
        assert_eq!(illumos_revents(Kind::Socket, POLLOUT, closed), POLLHUP);
    }

    #[test]
    fn other_files_pass_through() {
        assert_eq!(
            illumos_revents(Kind::Other, POLLIN, POLLIN | POLLOUT | POLLERR),
            POLLIN | POLLERR
        );
    }
}
