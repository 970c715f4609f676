//! The optional local access log (`--access-log PATH`): every access line
//! the workers produce, appended to a file, one per line, as
//! `/var/log/haproxy.log` holds them on the HAProxy image. Rotate it with
//! `logadm -w PATH -C 5 -c -s 100m` (copy and truncate: the file stays
//! open).
//!
//! The workers never touch the file: each writes its line into a pipe of
//! this process (non-blocking; a full pipe drops the line, counted, as a
//! full socket buffer does for remote syslog) and this thread writes the
//! file. A slow disk costs lines, never a worker's time. A pipe, not a
//! socket (see [`crate::sys::logfile`]): nothing outside the process can
//! add a line.
//!
//! The file is opened by [`crate::sys::logfile::open_log`]: owner-only,
//! never through a symbolic link, never in a directory others can write
//! to.

use std::io::{BufReader, Write};
use std::path::PathBuf;

use crate::sys::logfile::{self, next_frame, LocalLog, LogFileError, MAX_FRAME};

/// The writer thread's pipe, for the workers' sinks.
#[derive(Debug)]
pub struct AccessLog {
    /// Where workers write lines.
    pub local: LocalLog,
}

impl AccessLog {
    /// Opens `path` for appending and starts the writer.
    pub fn start(path: PathBuf) -> Result<AccessLog, AccessLogError> {
        let mut file = logfile::open_log(&path).map_err(AccessLogError::File)?;
        let (reader, writer) = logfile::log_pipe().map_err(AccessLogError::Setup)?;
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut frames = BufReader::with_capacity(64 << 10, reader);
                let mut line = vec![0u8; MAX_FRAME];
                let mut failing = false;
                // Ends when every write end is closed (the process exits).
                while let Some(n) = next_frame(&mut frames, &mut line) {
                    let text = strip_priority(&line[..n]);
                    let written = file.write_all(text).and_then(|()| file.write_all(b"\n"));
                    match written {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            log::error!("access log {}: {e}", path.display());
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(AccessLogError::Setup)?;
        Ok(AccessLog {
            local: LocalLog::new(writer),
        })
    }
}

/// Why the access log cannot start.
#[derive(Debug)]
pub enum AccessLogError {
    /// The file is refused or cannot be opened.
    File(LogFileError),
    /// The pipe or the thread cannot be made.
    Setup(std::io::Error),
}

impl std::fmt::Display for AccessLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessLogError::File(e) => write!(f, "access log: {e}"),
            AccessLogError::Setup(e) => write!(f, "access log: {e}"),
        }
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
    use super::*;

    #[test]
    fn priorities_are_stripped() {
        assert_eq!(strip_priority(b"<134>Nov 27 x"), b"Nov 27 x");
        assert_eq!(strip_priority(b"no pri"), b"no pri");
        assert_eq!(strip_priority(b"<13"), b"<13");
    }
}
