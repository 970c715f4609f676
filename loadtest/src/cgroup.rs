//! CPU caps for the balancers under test (`compare --cpu-quota F`): each
//! balancer runs in a cgroup of its own, allowed `F` of one CPU, so the
//! balancer and not the load generator is the bottleneck and req/s
//! compares balancers at equal CPU.
//!
//! cgroup v2 `cpu.max` where the unified hierarchy has the cpu controller;
//! cgroup v1 `cpu.cfs_quota_us` otherwise (as on a host whose v2 hierarchy
//! has no cpu controller). If neither can be written, the comparison stops
//! with that reason: a capped comparison never runs uncapped.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The CFS period used: 100 ms, the kernel's default.
const PERIOD_US: u64 = 100_000;

/// Why no cap can be set.
#[derive(Debug)]
pub enum CgroupError {
    /// The quota asked for is not in (0, 64].
    Quota(f64),
    /// No cgroup hierarchy with a cpu controller is mounted.
    NoController,
    /// One exists but cannot be written (not root, read-only, delegated
    /// elsewhere).
    NotWritable(PathBuf, io::Error),
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupError::Quota(q) => write!(f, "--cpu-quota {q}: give a fraction of one CPU, such as 0.4"),
            CgroupError::NoController => f.write_str(
                "--cpu-quota: no cgroup with a cpu controller is mounted (cgroup v2 cpu.max or v1 cpu.cfs_quota_us); no numbers measured",
            ),
            CgroupError::NotWritable(p, e) => write!(
                f,
                "--cpu-quota: cannot write {} ({e}); run as root on a host with a writable cpu cgroup; no numbers measured",
                p.display()
            ),
        }
    }
}

impl std::error::Error for CgroupError {}

/// Which interface caps CPU here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Flavour {
    /// cgroup v2: `cpu.max` ("QUOTA PERIOD").
    V2(PathBuf),
    /// cgroup v1: `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
    V1(PathBuf),
}

/// Where the cpu controller is: v2 with `cpu` in `cgroup.controllers`
/// (at the root or the hybrid `unified` mount), else the v1 cpu mount.
fn find(root: &Path) -> Option<Flavour> {
    for v2 in [root.to_path_buf(), root.join("unified")] {
        let ctl = std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        if ctl.split_whitespace().any(|c| c == "cpu") {
            return Some(Flavour::V2(v2));
        }
    }
    for v1 in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
        let dir = root.join(v1);
        if dir.join("cpu.cfs_quota_us").exists() {
            return Some(Flavour::V1(dir));
        }
    }
    None
}

/// A cgroup capped at a fraction of one CPU, removed when dropped (after
/// its processes ended).
#[derive(Debug)]
pub struct CpuCap {
    dir: PathBuf,
}

impl CpuCap {
    /// Makes the cgroup `name`, capped at `quota` of one CPU.
    pub fn new(name: &str, quota: f64) -> Result<CpuCap, CgroupError> {
        CpuCap::under(Path::new("/sys/fs/cgroup"), name, quota)
    }

    fn under(root: &Path, name: &str, quota: f64) -> Result<CpuCap, CgroupError> {
        if !(quota > 0.0 && quota <= 64.0) {
            return Err(CgroupError::Quota(quota));
        }
        let flavour = find(root).ok_or(CgroupError::NoController)?;
        let quota_us = (quota * PERIOD_US as f64).round() as u64;
        let write = |p: PathBuf, v: String| {
            std::fs::write(&p, v).map_err(|e| CgroupError::NotWritable(p, e))
        };
        let dir = match &flavour {
            Flavour::V2(base) | Flavour::V1(base) => base.join(name),
        };
        std::fs::create_dir_all(&dir).map_err(|e| CgroupError::NotWritable(dir.clone(), e))?;
        let cap = CpuCap { dir };
        match flavour {
            Flavour::V2(base) => {
                // The controller must be enabled for the children of the
                // parent; harmless if it already is.
                let _ = std::fs::write(base.join("cgroup.subtree_control"), "+cpu");
                write(cap.dir.join("cpu.max"), format!("{quota_us} {PERIOD_US}"))?;
            }
            Flavour::V1(_) => {
                write(cap.dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
                write(cap.dir.join("cpu.cfs_quota_us"), quota_us.to_string())?;
            }
        }
        Ok(cap)
    }

    /// Moves process `pid` (all its threads, and those it starts later)
    /// into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        let p = self.dir.join("cgroup.procs");
        std::fs::write(&p, pid.to_string()).map_err(|e| CgroupError::NotWritable(p, e))
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        // Only an empty cgroup can go; its processes were killed first.
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(layout: &[(&str, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "loadtest-cgroup-{}-{}",
            std::process::id(),
            layout.len()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for (file, text) in layout {
            let p = root.join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        root
    }

    #[test]
    fn v1_quota_and_period_are_written() {
        let root = fake(&[
            ("cpu/cpu.cfs_quota_us", "-1"),
            ("unified/cgroup.controllers", "pids memory"),
        ]);
        let _cap = CpuCap::under(&root, "lt", 0.4).unwrap();
        let dir = root.join("cpu/lt");
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).unwrap(),
            "40000"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.cfs_period_us")).unwrap(),
            "100000"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn v2_cpu_max_is_written_where_the_controller_is() {
        let root = fake(&[("cgroup.controllers", "cpuset cpu io memory")]);
        let _cap = CpuCap::under(&root, "lt", 1.5).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("lt/cpu.max")).unwrap(),
            "150000 100000"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_controller_or_a_silly_quota_is_an_error() {
        let root = fake(&[("unified/cgroup.controllers", "pids")]);
        assert!(matches!(
            CpuCap::under(&root, "lt", 0.4),
            Err(CgroupError::NoController)
        ));
        assert!(matches!(
            CpuCap::under(&root, "lt", 0.0),
            Err(CgroupError::Quota(_))
        ));
        assert!(matches!(
            CpuCap::under(&root, "lt", f64::NAN),
            Err(CgroupError::Quota(_))
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
