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
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Elsewhere (illumos has `processor_bind`, and `pbind` for children) the
/// harness runs unpinned; its report says what it measured either way.
#[cfg(not(target_os = "linux"))]
pub fn pin_self(_cpu: usize) {}

/// `taskset -c CPU` in front of a command, when taskset and the CPU exist.
pub(crate) fn pinned(program: &std::path::Path, cpu: usize) -> std::process::Command {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > cpu && std::path::Path::new("/usr/bin/taskset").exists() {
        let mut c = std::process::Command::new("/usr/bin/taskset");
        c.arg("-c").arg(cpu.to_string()).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}
