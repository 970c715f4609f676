//! File-descriptor limits. illumos starts processes with a soft limit of 256
//! and SMF cannot raise it, so moirai raises its own soft limit to the hard
//! one at start-up (Linux does the same for symmetry).

// `rlim_t` is not u64 on every platform, so the casts stay.
#![allow(clippy::unnecessary_cast)]

use std::io;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (old, new).
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok((soft as u64, soft as u64));
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok((soft as u64, hard as u64))
}

/// The current soft `RLIMIT_NOFILE`.
pub fn nofile() -> io::Result<u64> {
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?.0 as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_reaches_the_hard_limit() {
        let (_, new) = super::raise_nofile().unwrap();
        assert_eq!(super::nofile().unwrap(), new);
    }
}
