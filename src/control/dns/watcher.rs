//! The discovery thread: keeps every watched name fresh, re-resolving it
//! when its TTL runs out (floored at 1 s, capped at `--max-ttl`), and
//! retrying failures with backoff. It only asks; the control loop decides
//! what a result means (a failure keeps the last good set). Blocking DNS
//! I/O lives here so a slow nameserver never delays the control loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::resolver::{Resolved, Resolver, Target};
use super::wire::DnsError;
use crate::sys::poll::Waker;

/// One lookup's outcome.
#[derive(Debug, Clone)]
pub struct Update {
    /// What was looked up.
    pub target: Target,
    /// The backends, or why there is no answer.
    pub result: Result<Resolved, DnsError>,
}

/// The control loop's handle on the thread.
#[derive(Debug)]
pub struct Watcher {
    tx: Sender<Vec<Target>>,
    /// Results, each followed by a wake-up of the control poll.
    pub updates: Receiver<Update>,
    _thread: JoinHandle<()>,
}

impl Watcher {
    /// Starts the thread.
    pub fn spawn(
        resolver: Resolver,
        max_ttl: Duration,
        waker: Arc<Waker>,
    ) -> std::io::Result<Watcher> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (utx, updates) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("moirai-dns".to_owned())
            .spawn(move || run(resolver, max_ttl, rx, utx, waker))?;
        Ok(Watcher {
            tx,
            updates,
            _thread: thread,
        })
    }

    /// Replaces the set of names to keep fresh; new ones are asked at once.
    pub fn watch(&self, targets: Vec<Target>) {
        let _ = self.tx.send(targets);
    }
}

struct Entry {
    due: Instant,
    failures: u32,
}

/// Seconds to wait after `failures` consecutive failures: 1, 2, 4 ... 30.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// When to ask again after an answer with `ttl` seconds.
pub fn refresh_after(ttl: u32, max_ttl: Duration) -> Duration {
    Duration::from_secs(u64::from(ttl))
        .clamp(Duration::from_secs(1), max_ttl.max(Duration::from_secs(1)))
}

fn run(
    resolver: Resolver,
    max_ttl: Duration,
    rx: Receiver<Vec<Target>>,
    out: Sender<Update>,
    waker: Arc<Waker>,
) {
    let mut entries: HashMap<Target, Entry> = HashMap::new();
    loop {
        let now = Instant::now();
        let next = entries.values().map(|e| e.due).min();
        let wait = next.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(now)
        });
        if !wait.is_zero() {
            match rx.recv_timeout(wait) {
                Ok(set) => {
                    // Keep the schedule of names still watched.
                    let mut fresh = HashMap::new();
                    for t in set {
                        let e = entries.remove(&t).unwrap_or(Entry {
                            due: Instant::now(),
                            failures: 0,
                        });
                        fresh.insert(t, e);
                    }
                    entries = fresh;
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        let due: Vec<Target> = entries
            .iter()
            .filter(|(_, e)| e.due <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for t in due {
            let result = resolver.lookup(&t);
            if let Some(e) = entries.get_mut(&t) {
                match &result {
                    Ok(r) => {
                        e.failures = 0;
                        e.due = Instant::now() + refresh_after(r.ttl, max_ttl);
                    }
                    Err(_) => {
                        e.failures += 1;
                        e.due = Instant::now() + backoff(e.failures);
                    }
                }
            }
            if out.send(Update { target: t, result }).is_err() {
                return;
            }
            let _ = waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_floor_cap_and_backoff() {
        let cap = Duration::from_secs(60);
        assert_eq!(refresh_after(0, cap), Duration::from_secs(1));
        assert_eq!(refresh_after(30, cap), Duration::from_secs(30));
        assert_eq!(refresh_after(3600, cap), cap);
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }
}
