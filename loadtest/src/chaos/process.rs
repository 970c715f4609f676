//! Child processes and the small socket helpers every part of the soak
//! uses: a [`Proc`] that can be started, signalled, stopped and started
//! again; free ports outside the ephemeral range; waiting for a listener;
//! one plain HTTP GET; an atomic file write. The world (`world.rs`) and
//! the balancers (`balancer.rs`) are built from them.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A port below the kernel's ephemeral range (32768 and up), so no client
/// or balancer connection is ever handed a port a backend will rebind
/// after a kill.
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        21_000 + u64::from(std::process::id() % 500) * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        let p = 20_000 + (p - 20_000) % 12_000;
        let p = u16::try_from(p).unwrap_or(20_000);
        let free =
            TcpListener::bind(("0.0.0.0", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok();
        if free {
            return p;
        }
    }
}

/// Waits until `addr` accepts a connection.
pub fn wait_listening(addr: SocketAddr, limit: Duration) -> io::Result<()> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > limit => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{addr} did not listen within {limit:?}: {e}"),
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

pub fn err(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

/// One child process the soak may kill and start again.
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn new(name: &str, program: &Path, args: Vec<String>, log: PathBuf) -> Proc {
        Proc {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            env: Vec::new(),
            log,
            child: None,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Proc {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn start(&mut self) -> io::Result<()> {
        self.reap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| err(format!("starting {}: {e}", self.name)))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` (a name `kill` knows: KILL, TERM, STOP, CONT, HUP).
    pub fn signal(&self, sig: &str) -> io::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .stderr(Stdio::null())
            .status()?
            .success();
        if ok {
            Ok(())
        } else {
            Err(err(format!("kill -{sig} {} failed", self.name)))
        }
    }

    /// SIGKILL: whatever it was doing is lost.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.child.is_none() {
            return;
        }
        let _ = self.signal("CONT");
        let _ = self.signal("TERM");
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Some(c) = self.child.as_mut() {
                if !matches!(c.try_wait(), Ok(None)) {
                    self.child = None;
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Whether it runs (an exited child is reaped).
    pub fn alive(&mut self) -> bool {
        self.reap();
        self.child.is_some()
    }

    fn reap(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if !matches!(c.try_wait(), Ok(None)) {
                self.child = None;
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.signal("CONT");
        self.kill();
    }
}

/// Writes a file atomically (write, then rename), as an operator's tool would.
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// One HTTP/1.1 GET over plain TCP with `Connection: close`; returns the
/// status and body (the metrics scrape, the soak's own probes).
pub fn http_get(addr: SocketAddr, path: &str, limit: Duration) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, limit)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| err("no response head"))?;
    let status = std::str::from_utf8(&out[..end])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| err("bad status line"))?;
    Ok((status, out[end + 4..].to_vec()))
}
