//! The event-port syscalls, and nothing else: `port_create`,
//! `port_associate`, `port_dissociate`, `port_getn`, `port_send`, behind
//! the [`PortSys`] and [`PortOps`] seam. All the bookkeeping is in
//! [`super::ports_state`]; Linux runs the same poller over an emulation
//! (`event_ports_emul`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::ports_state::{PortOps, PortSys, RawEvent};

/// An event port.
#[derive(Debug)]
pub struct Port(OwnedFd);

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl PortSys for Port {
    type Event = libc::port_event;

    fn create() -> io::Result<Port> {
        // SAFETY: port_create takes no arguments and returns a new fd or -1.
        let fd = check(unsafe { libc::port_create() })?;
        // SAFETY: `fd` was just returned by port_create and is owned by no
        // one else.
        let port = Port(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: fcntl on a valid fd with integer arguments.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(port)
    }

    fn getn(
        &self,
        buf: &mut Vec<libc::port_event>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let cap = buf.capacity().max(1);
        buf.clear();
        let mut ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        });
        let ts_ptr = ts
            .as_mut()
            .map_or(std::ptr::null_mut(), |t| t as *mut libc::timespec);
        let mut nget: libc::c_uint = 1;
        // SAFETY: `buf` has room for `cap` events; `nget` and `ts` are valid
        // for the call; port_getn writes at most `cap` entries and sets
        // `nget` to how many it wrote.
        let rc = unsafe {
            libc::port_getn(
                self.0.as_raw_fd(),
                buf.as_mut_ptr(),
                cap as libc::c_uint,
                &mut nget,
                ts_ptr,
            )
        };
        let n = if rc == -1 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) => nget as usize,
                _ => return Err(e),
            }
        } else {
            nget as usize
        };
        // SAFETY: port_getn initialised the first `n` (<= cap) entries.
        unsafe { buf.set_len(n.min(cap)) };
        Ok(buf.len())
    }

    fn send(&self) -> io::Result<()> {
        // SAFETY: a user event carries no pointer we dereference.
        check(unsafe { libc::port_send(self.0.as_raw_fd(), 0, std::ptr::null_mut()) }).map(drop)
    }

    fn decode(e: &libc::port_event) -> RawEvent {
        if libc::c_int::from(e.portev_source) == libc::PORT_SOURCE_FD {
            RawEvent::Fd {
                fd: e.portev_object as RawFd,
                revents: e.portev_events,
            }
        } else {
            RawEvent::User
        }
    }

    fn name() -> &'static str {
        "event ports"
    }
}

impl PortOps for &Port {
    fn associate(&mut self, fd: i32, events: i32) -> io::Result<()> {
        // SAFETY: plain integer arguments; the user pointer is never
        // dereferenced (events are looked up by fd).
        check(unsafe {
            libc::port_associate(
                self.0.as_raw_fd(),
                libc::PORT_SOURCE_FD,
                fd as libc::uintptr_t,
                events,
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    fn dissociate(&mut self, fd: i32) -> io::Result<()> {
        // SAFETY: plain integer arguments.
        match check(unsafe {
            libc::port_dissociate(
                self.0.as_raw_fd(),
                libc::PORT_SOURCE_FD,
                fd as libc::uintptr_t,
            )
        }) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
            Err(e) => Err(e),
        }
    }
}
