//! What the process uses: descriptors, memory, CPU. Read for the metrics
//! endpoint, on the control thread, once per scrape. Also how a child is
//! given descriptors ([`pass_fds`]).

use std::time::Duration;

/// A reading; `None` where this platform does not say.
#[derive(Debug, Default, Clone)]
pub struct ProcessStats {
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The descriptor limit.
    pub max_fds: Option<u64>,
    /// Resident set size.
    pub rss_bytes: Option<u64>,
    /// User plus system CPU time.
    pub cpu: Option<Duration>,
}

/// Reads the process's usage now.
pub fn stats() -> ProcessStats {
    ProcessStats {
        // Both Linux and illumos list open descriptors here.
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
        max_fds: super::rlimit::nofile().ok(),
        rss_bytes: rss(),
        cpu: cpu(),
    }
}

/// The node name, for syslog headers; empty if the system will not say.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Makes the child `cmd` starts inherit `fds`, which stay closed-on-exec
/// here: cleared between fork and exec, in the child only, so no other
/// program this process starts meanwhile (`svcprop`, `mdata-get`) holds
/// them too.
pub fn pass_fds(cmd: &mut std::process::Command, fds: Vec<std::os::fd::RawFd>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: set_cloexec is two fcntl
    // calls through nix and allocates nothing (`fds` was allocated before
    // the fork). Each fd is open (the caller holds it) for the borrow.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                super::net::set_cloexec(std::os::fd::BorrowedFd::borrow_raw(fd), false)?;
            }
            Ok(())
        });
    }
}

fn cpu() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Some(tv(u.user_time()) + tv(u.system_time()))
}

#[cfg(target_os = "linux")]
fn rss() -> Option<u64> {
    // statm: size resident shared ... in pages.
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    (page > 0).then(|| pages * page as u64)
}

/// illumos keeps it in the binary `psinfo_t` of `/proc/self/psinfo`
/// (`pr_rssize`, in KiB); not read yet.
#[cfg(not(target_os = "linux"))]
fn rss() -> Option<u64> {
    None
}

/// Asks process `pid` to stop (SIGTERM): an upgrade's stand-in, once the
/// upgraded program serves.
pub fn terminate(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(std::io::Error::from)
}

/// Whether child `pid` has ended (and is reaped now); an error (not our
/// child, or already reaped) counts as ended.
pub fn reaped(pid: u32) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let Ok(pid) = i32::try_from(pid) else {
        return true;
    };
    !matches!(
        waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::StillAlive)
    )
}

/// This process's parent: a stand-in notices its upgrading parent died.
pub fn parent_pid() -> u32 {
    u32::try_from(nix::unistd::getppid().as_raw()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_something_plausible() {
        let s = super::stats();
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.cpu.is_some());
        assert!(!super::hostname().is_empty());
        #[cfg(target_os = "linux")]
        assert!(s.rss_bytes.unwrap() > 1 << 20);
    }
}
