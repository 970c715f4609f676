//! The status socket: `moirai status` connects to `STATE_DIR/moirai.sock`
//! and gets one JSON document of the running truth (services, backends,
//! DNS answers, configuration errors), then the connection closes. Served
//! by the control thread; the metrics issue exports the same data.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::net::UnixListener;

use crate::sys::poll::{Interest, Registry, Token};

/// The socket's file name in the state directory.
pub const SOCKET: &str = "moirai.sock";

/// The listening socket.
#[derive(Debug)]
pub struct StatusServer {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusServer {
    /// Binds `dir/moirai.sock` (replacing a stale one) and registers it.
    pub fn bind(dir: &Path, registry: &Registry, token: Token) -> io::Result<StatusServer> {
        let path = dir.join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let mut listener = UnixListener::bind(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Only the service's user (and root) may ask.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(StatusServer { listener, path })
    }

    /// Answers every waiting client with `report`.
    pub fn serve(&mut self, report: impl Fn() -> String) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let text = report();
                    // The report is small and the socket buffer large; a
                    // client that does not read is given up after 500 ms.
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("status socket: {e}");
                    return;
                }
            }
        }
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
