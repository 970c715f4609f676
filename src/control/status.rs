//! The control socket, `STATE_DIR/moirai.sock` (0600: root, or whoever
//! runs moirai, only). A client sends one line, a command, and gets one
//! answer, then the connection closes:
//!
//! - `status` (or nothing): the JSON document of the running truth
//!   (services, backends, DNS answers, certificates, errors);
//! - `backend disable|enable|drain PORT ADDRESS`, `log-level LEVEL`,
//!   `acme retry`, `upgrade [BINARY]`: run-time controls, answered
//!   `ok: ...` or `error: ...` (parsed by `commands::Command`).
//!
//! Served by the control thread between events; a client gets 200 ms to
//! send its line and 500 ms to read the answer. `upgrade` is answered when
//! the new program's pre-flight ends (at most 10 s).
//!
//! During an upgrade, while the old program drains, the stand-in serves
//! new connections; it answers `status` only, on `moirai.standin.sock`,
//! and the old program relays `status` there: what `moirai status` shows
//! is then what the program taking new connections sees (DNS, checks),
//! not the frozen view of one that takes none.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys::net::{UnixListener, UnixStream};
use crate::sys::poll::{Interest, Registry, Token};

/// The socket's file name in the state directory.
pub const SOCKET: &str = "moirai.sock";

/// An upgrade's stand-in's socket (`status` only), in the same directory.
pub const STANDIN_SOCKET: &str = "moirai.standin.sock";

/// The listening socket.
#[derive(Debug)]
pub struct StatusServer {
    listener: UnixListener,
    path: PathBuf,
    /// Clients whose answer comes later (an upgrade's pre-flight).
    held: Vec<UnixStream>,
    /// The socket file's inode: an upgrade's stand-in binds the path
    /// after this process did, and the next program after it; each
    /// removes the file on exit only while it is still its own.
    inode: Option<u64>,
}

impl StatusServer {
    /// Binds `dir/name` ([`SOCKET`] or [`STANDIN_SOCKET`]), replacing a
    /// stale one, and registers it.
    pub fn bind(
        dir: &Path,
        name: &str,
        registry: &Registry,
        token: Token,
    ) -> io::Result<StatusServer> {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let mut listener = UnixListener::bind(&path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            // Only the service's user (and root) may ask.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        registry.register(&mut listener, token, Interest::READABLE)?;
        let inode = inode_of(&path);
        Ok(StatusServer {
            listener,
            path,
            held: Vec::new(),
            inode,
        })
    }

    /// Answers every waiting client: `answer` gets the command line
    /// (trimmed; empty for a client that sent none) and gives the reply,
    /// or `None` to hold the client until [`StatusServer::answer_held`]
    /// (an upgrade answers when its pre-flight ends).
    pub fn serve(&mut self, mut answer: impl FnMut(&str) -> Option<String>) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let line = read_command(&mut stream);
                    match answer(line.trim()) {
                        Some(text) => reply(&mut stream, &text),
                        None => self.held.push(stream),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("status socket: {e}");
                    return;
                }
            }
        }
    }

    /// Answers the clients held by [`StatusServer::serve`].
    pub fn answer_held(&mut self, text: &str) {
        for mut stream in std::mem::take(&mut self.held) {
            reply(&mut stream, text);
        }
    }
}

/// Sends one command line to the program listening on `path` and returns
/// its whole answer, read within `limit`: the CLI's side, and the old
/// program's relay to its stand-in.
pub fn ask(path: &Path, line: &str, limit: Duration) -> io::Result<String> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Writes the answer; the connection closes when `stream` is dropped.
fn reply(stream: &mut UnixStream, text: &str) {
    // The report is small and the socket buffer large; a client that does
    // not read is given up after 500 ms.
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut sent = 0;
    while sent < text.len() && Instant::now() < deadline {
        match stream.write(&text.as_bytes()[sent..]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// The client's one line, read within 200 ms (at most 1 KiB).
fn read_command(stream: &mut UnixStream) -> String {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while Instant::now() < deadline && buf.len() < 1024 && !buf.contains(&b'\n') {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn inode_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        if self.inode.is_some() && inode_of(&self.path) == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
