//! Signals as poll events. The handlers (installed by signal-hook, which
//! keeps them async-signal-safe) set a flag and write a byte into a socket
//! pair; the control thread registers the read end with its `Poll`, so a
//! signal at any moment becomes an ordinary event in the loop and never
//! interrupts work half-done.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::net::UnixStream;

use super::poll::{Interest, Registry, Token};

/// What the control loop is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read the metadata now (SMF `refresh`).
    Reload,
    /// SIGTERM or SIGINT: stop accepting, drain, exit.
    Terminate,
}

/// The installed handlers and the read end of their wake-up pipe.
#[derive(Debug)]
pub struct Signals {
    rx: UnixStream,
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    /// Installs handlers for SIGHUP, SIGTERM and SIGINT.
    pub fn install() -> io::Result<Signals> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let hup = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        signal_hook::flag::register(SIGHUP, Arc::clone(&hup))?;
        signal_hook::flag::register(SIGTERM, Arc::clone(&term))?;
        signal_hook::flag::register(SIGINT, Arc::clone(&term))?;
        for sig in [SIGHUP, SIGTERM, SIGINT] {
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        Ok(Signals {
            rx: UnixStream::from_std(rx),
            hup,
            term,
        })
    }

    /// Registers the wake-up pipe with a poll.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.rx, token, Interest::READABLE)
    }

    /// Empties the pipe and returns the signals seen since the last call.
    pub fn take(&mut self) -> Vec<Signal> {
        let mut sink = [0u8; 64];
        loop {
            match self.rx.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        if self.term.swap(false, Ordering::SeqCst) {
            out.push(Signal::Terminate);
        }
        if self.hup.swap(false, Ordering::SeqCst) {
            out.push(Signal::Reload);
        }
        out
    }
}
