//! File-descriptor limits. illumos starts processes with a soft limit of 256
//! and SMF cannot raise it, so moirai raises its own soft limit to the hard
//! one at start-up (Linux does the same for symmetry). Plain libc: nix has
//! no resource module for illumos.

// `rlim_t` is not u64 on every platform, so the casts stay.
#![allow(clippy::unnecessary_cast)]

use std::io;

fn get() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 {
        Ok(lim)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (old, new).
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let lim = get()?;
    let old = lim.rlim_cur as u64;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok((old, old));
    }
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit that outlives the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
    if rc == 0 {
        Ok((old, lim.rlim_max as u64))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The current soft `RLIMIT_NOFILE`.
pub fn nofile() -> io::Result<u64> {
    get().map(|l| l.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_reaches_the_hard_limit() {
        let (_, new) = super::raise_nofile().unwrap();
        assert_eq!(super::nofile().unwrap(), new);
    }
}
