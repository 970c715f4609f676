//! What the process uses: descriptors, memory, CPU. Read for the metrics
//! endpoint, on the control thread, once per scrape.

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
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which gethostname
    // fills with at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn cpu() -> Option<Duration> {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer, which is
    // valid and sized for it; on failure nothing is read.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0 means the kernel filled it (and it was zeroed anyway).
    let u = unsafe { u.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Some(tv(u.ru_utime) + tv(u.ru_stime))
}

#[cfg(target_os = "linux")]
fn rss() -> Option<u64> {
    // statm: size resident shared ... in pages.
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

/// illumos keeps it in the binary `psinfo_t` of `/proc/self/psinfo`
/// (`pr_rssize`, in KiB); not read yet.
#[cfg(not(target_os = "linux"))]
fn rss() -> Option<u64> {
    None
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
