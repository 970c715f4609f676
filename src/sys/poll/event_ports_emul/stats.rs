//! What the emulated ports were asked to do, counted as the illumos system
//! calls they stand for: what illumos will pay per request, which the
//! emulation's own CPU time says nothing about.
//!
//! The totals of the process are kept in statics (every worker has its own
//! port). With `MOIRAI_EMULATED_PORTS_STATS=DIR` in the environment, they
//! are written to `DIR/<pid>` at most every 100 ms, from the poll loop,
//! so a process killed with SIGKILL (as the load tester stops its systems)
//! still leaves counts at most 100 ms old.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// One counter per illumos call the emulation stands for.
#[derive(Debug, Default)]
pub struct Counters {
    /// `port_associate` calls, all of them.
    pub associate: AtomicU64,
    /// Of those, on a descriptor that was associated before (the one-shot
    /// re-association after an event).
    pub reassociate: AtomicU64,
    /// `port_dissociate` calls.
    pub dissociate: AtomicU64,
    /// `port_getn` calls.
    pub getn: AtomicU64,
    /// Events `port_getn` returned.
    pub events: AtomicU64,
    /// `port_send` calls.
    pub send: AtomicU64,
}

/// The process's totals.
pub static TOTAL: Counters = Counters {
    associate: AtomicU64::new(0),
    reassociate: AtomicU64::new(0),
    dissociate: AtomicU64::new(0),
    getn: AtomicU64::new(0),
    events: AtomicU64::new(0),
    send: AtomicU64::new(0),
};

impl Counters {
    /// `associate=N reassociate=N dissociate=N getn=N events=N send=N`.
    pub fn line(&self) -> String {
        format!(
            "associate={} reassociate={} dissociate={} getn={} events={} send={}",
            self.associate.load(Relaxed),
            self.reassociate.load(Relaxed),
            self.dissociate.load(Relaxed),
            self.getn.load(Relaxed),
            self.events.load(Relaxed),
            self.send.load(Relaxed),
        )
    }
}

/// Adds one to `c` in the totals.
pub fn bump(c: fn(&Counters) -> &AtomicU64, n: u64) {
    // Counted only when asked for: otherwise every worker would write
    // the same cache line on every call.
    if dump().path.is_some() {
        c(&TOTAL).fetch_add(n, Relaxed);
    }
}

struct Dump {
    path: Option<std::path::PathBuf>,
    start: Instant,
    /// Milliseconds since `start` of the last write.
    last: AtomicU64,
}

fn dump() -> &'static Dump {
    static DUMP: OnceLock<Dump> = OnceLock::new();
    DUMP.get_or_init(|| Dump {
        path: std::env::var_os("MOIRAI_EMULATED_PORTS_STATS")
            .map(|d| std::path::PathBuf::from(d).join(std::process::id().to_string())),
        start: Instant::now(),
        last: AtomicU64::new(0),
    })
}

/// Writes the totals if asked to and 100 ms have passed since the last
/// write. Called once per `port_getn`.
pub fn maybe_write() {
    let d = dump();
    let Some(path) = &d.path else { return };
    let now = d.start.elapsed().as_millis() as u64;
    let last = d.last.load(Relaxed);
    if now < last + 100
        || d.last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
    {
        return;
    }
    // Best effort: counting must never stop the poller.
    let _ = std::fs::write(path, TOTAL.line() + "\n");
}
