//! Idle keep-alive connections to backends, per worker and per backend
//! address, so HTTP clients that close after each request (or many short
//! clients) do not cost a backend connect each time. Bounded in number and
//! age; a connection is checked for life before it is reused.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sys::net::TcpStream;

/// Idle connections kept per backend per worker.
pub const MAX_IDLE_PER_BACKEND: usize = 64;
/// How long an idle connection is kept: below common backend keep-alive
/// timeouts (nginx 75 s, Apache 5 s), so the backend rarely closes first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A worker's idle backend connections.
#[derive(Debug, Default)]
pub struct IdlePool {
    by_backend: HashMap<SocketAddr, Vec<(TcpStream, Instant)>>,
    count: usize,
}

impl IdlePool {
    /// Keeps `stream` for reuse; false (and the stream is dropped) if the
    /// backend already has its share.
    pub fn put(&mut self, addr: SocketAddr, stream: TcpStream, now: Instant) -> bool {
        let v = self.by_backend.entry(addr).or_default();
        if v.len() >= MAX_IDLE_PER_BACKEND {
            return false;
        }
        v.push((stream, now));
        self.count += 1;
        true
    }

    /// The most recently used live connection to `addr`, if any. Dead ones
    /// found on the way (closed by the backend, or with unexpected bytes)
    /// are dropped.
    pub fn take(&mut self, addr: SocketAddr, now: Instant) -> Option<TcpStream> {
        let v = self.by_backend.get_mut(&addr)?;
        while let Some((s, since)) = v.pop() {
            self.count -= 1;
            if now.saturating_duration_since(since) >= IDLE_TIMEOUT {
                continue;
            }
            let mut probe = [0u8; 1];
            match s.peek(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(s),
                _ => continue,
            }
        }
        None
    }

    /// Drops connections idle for too long.
    pub fn expire(&mut self, now: Instant) {
        let mut dropped = 0;
        for v in self.by_backend.values_mut() {
            let before = v.len();
            v.retain(|(_, since)| now.saturating_duration_since(*since) < IDLE_TIMEOUT);
            dropped += before - v.len();
        }
        self.count -= dropped;
        self.by_backend.retain(|_, v| !v.is_empty());
    }

    /// Idle connections held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
