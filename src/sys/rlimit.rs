//! File-descriptor limits. illumos starts processes with a soft limit of 256
//! and SMF cannot raise it, so moirai raises its own soft limit to the hard
//! one at start-up (Linux does the same for symmetry).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (old, new).
pub fn raise_nofile() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    }
    Ok((soft, hard.max(soft)))
}

/// The current soft `RLIMIT_NOFILE`.
pub fn nofile() -> std::io::Result<u64> {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .map_err(std::io::Error::from)
}
