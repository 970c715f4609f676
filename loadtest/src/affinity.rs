//! CPU pinning of the load generator itself (children are pinned with
//! `taskset`), so the load and the balancer do not share a core.

/// Pins the calling thread (and threads it starts later) to `cpu`, if the
/// machine has it. Failure only makes the measurement noisier.
#[cfg(target_os = "linux")]
pub fn pin_self(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpu >= cpus {
        return;
    }
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set, and
    // CPU_SET/sched_setaffinity only read and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Elsewhere (illumos has `processor_bind`, and `pbind` for children) the
/// harness runs unpinned; its report says what it measured either way.
#[cfg(not(target_os = "linux"))]
pub fn pin_self(_cpu: usize) {}
