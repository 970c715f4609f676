//! The optional local access log (`--access-log PATH`): every access line
//! the workers send, appended to a file, one per line, as
//! `/var/log/haproxy.log` holds them on the HAProxy image. Rotate it with
//! `logadm -w PATH -C 5 -c -s 100m` (copy and truncate: the file stays
//! open).
//!
//! The workers never touch the file: they send the line as a datagram to
//! a loopback socket of this thread, exactly as to a remote collector
//! (non-blocking, dropped and counted when the buffer is full), and this
//! thread writes. A slow disk costs lines, never a worker's time.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;

/// The writer thread's address, for the workers' sinks.
#[derive(Debug)]
pub struct AccessLog {
    /// Where workers send lines.
    pub addr: SocketAddr,
}

impl AccessLog {
    /// Opens `path` for appending and starts the writer.
    pub fn start(path: PathBuf) -> std::io::Result<AccessLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        // Room for bursts: lines wait here while the disk catches up.
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        let addr = sock.local_addr()?;
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut buf = vec![0u8; crate::proto::syslog::MAX_LEN + 1];
                let mut failing = false;
                loop {
                    let Ok(n) = sock.recv(&mut buf) else { continue };
                    // Only lines from this process's workers (loopback,
                    // any port): the syslog priority is not for a file.
                    let line = strip_priority(&buf[..n]);
                    let written = file.write_all(line).and_then(|()| file.write_all(b"\n"));
                    match written {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            log::error!("access log {}: {e}", path.display());
                        }
                        Err(_) => {}
                    }
                }
            })?;
        Ok(AccessLog { addr })
    }
}

/// A syslog line without its `<PRI>`.
fn strip_priority(line: &[u8]) -> &[u8] {
    if line.first() == Some(&b'<') {
        if let Some(end) = line.iter().take(5).position(|&b| b == b'>') {
            return &line[end + 1..];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::strip_priority;

    #[test]
    fn priorities_are_stripped() {
        assert_eq!(strip_priority(b"<134>Nov 27 x"), b"Nov 27 x");
        assert_eq!(strip_priority(b"no pri"), b"no pri");
        assert_eq!(strip_priority(b"<13"), b"<13");
    }
}
