//! Local logs: one line per event on stderr, where SMF (or systemd, or a
//! terminal) collects them: `TIME LEVEL message`.
//!
//! With the `syslog` key set, moirai's own events at info level and above
//! (configuration applied, backends up or down, errors) also go to the
//! collector as RFC 5424 lines with MSGID `event`. Such lines are rare and
//! come mostly from the control thread, so one mutex-guarded socket serves
//! them; access lines never pass here (each worker has its own sender).

use std::io::Write;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::proto::syslog::{self, Severity};
use crate::snapshot::SyslogSpec;

struct Remote {
    spec: SyslogSpec,
    sock: UdpSocket,
    buf: Vec<u8>,
}

static REMOTE: Mutex<Option<Remote>> = Mutex::new(None);
static SENT: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Sends events to `spec` from now on (or to nowhere).
pub fn set_remote(spec: Option<SyslogSpec>) {
    // Events go to the remote collector only, never the access log.
    let remote = spec.and_then(|spec| {
        let addr = spec.addr?;
        let any: std::net::SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(any)
            .and_then(|s| s.connect(addr).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s));
        match sock {
            Ok(sock) => Some(Remote {
                spec,
                sock,
                buf: Vec::new(),
            }),
            Err(e) => {
                log::error!("syslog: cannot send events to {addr}: {e}");
                None
            }
        }
    });
    *REMOTE.lock().unwrap_or_else(|p| p.into_inner()) = remote;
}

/// Event lines sent and dropped.
pub fn remote_counts() -> (u64, u64) {
    (
        SENT.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    )
}

fn send_remote(level: Level, msg: &str) {
    let sev = match level {
        Level::Error => Severity::Error,
        Level::Warn => Severity::Warning,
        Level::Info => Severity::Notice,
        Level::Debug | Level::Trace => return,
    };
    let mut guard = REMOTE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(r) = guard.as_mut() else { return };
    syslog::event_in(
        r.spec.format,
        &mut r.buf,
        SystemTime::now(),
        &r.spec.origin,
        sev,
        msg,
    );
    let counter = if r.sock.send(&r.buf).is_ok() {
        &SENT
    } else {
        &DROPPED
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        // Libraries (rustls, hyper...) speak only for errors: their
        // warnings are per connection (a client's odd SNI) and would let
        // any client fill the log.
        m.level() <= log::max_level()
            && (m.level() == Level::Error || m.target().starts_with("moirai"))
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let msg = r.args().to_string();
        // One write per line, so lines from several threads never interleave.
        let line = format!("{now} {level} {msg}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        if r.target().starts_with("moirai") {
            send_remote(r.level(), &msg);
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger; later calls only change the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
