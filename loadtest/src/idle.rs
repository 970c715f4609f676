//! `loadtest idle`: holds N idle keep-alive connections open through a
//! balancer and reports its memory before and after, for the memory cost of
//! one idle connection.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::stats;

/// The pid of the process listening on `port`, found through /proc.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let lport = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 0A is LISTEN.
            if lport == Some(port) && *state == "0A" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// The balancer's memory at one moment, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident set (`VmRSS`), file pages of the binary included.
    pub rss: u64,
    /// Resident anonymous memory (`RssAnon`): what it allocated.
    pub anon: u64,
}

fn memory(pid: u32) -> io::Result<Memory> {
    let unreadable = || io::Error::other("cannot read the balancer's memory");
    Ok(Memory {
        rss: stats::rss_kib(pid).ok_or_else(unreadable)?.0,
        anon: stats::anon_kib(pid).ok_or_else(unreadable)?,
    })
}

/// Opens `n` connections to `target`, each carrying one HTTP request (so it
/// is established end to end) or none (`tcp`), and reports the memory of
/// `pid` before and after.
pub fn run(target: SocketAddr, n: usize, http: bool, pid: u32) -> io::Result<(Memory, Memory)> {
    let _ = moirai::sys::rlimit::raise_nofile();
    let before = memory(pid)?;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(target)?;
        if http {
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: loadtest\r\n\r\n")?;
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::other(format!(
                    "connection {i} closed before answering"
                )));
            }
        }
        conns.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = memory(pid)?;
    drop(conns);
    Ok((before, after))
}
