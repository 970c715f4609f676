//! How the control loop ends: a drain (SIGTERM) or an upgrade's
//! hand-over, both answering `moirai status` until the workers are done.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{status, Control, FromWorker, RunError, ToWorker, STATUS};
use crate::sys::poll::{Events, Poll};

impl Control {
    /// `moirai upgrade`: the workers give their listening sockets up
    /// (still open: new connections queue in the kernel) and drain as for
    /// a stop; then this process becomes `path`, same PID (SMF sees
    /// nothing), with the sockets inherited. Returns only on failure.
    pub(super) fn handover(
        mut self,
        path: PathBuf,
        grace: Duration,
        poll: &mut Poll,
        events: &mut Events,
        status: Option<status::StatusServer>,
    ) -> Result<(), RunError> {
        let mut status = status;
        self.stop_workers(
            ToWorker::Handover(Instant::now() + grace),
            "upgrading",
            poll,
            events,
            status.as_mut(),
        );
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join.join();
        }
        while let Ok(r) = self.reports.try_recv() {
            if let FromWorker::Listeners(l) = r {
                self.handed.extend(l);
            }
        }
        // The next process binds the control socket again.
        drop(status);
        let mut env = String::new();
        let mut seen = std::collections::HashSet::new();
        for (addr, port, l) in &self.handed {
            let fd = l.raw_fd();
            // Shared mode: every worker names the same socket; once.
            if !seen.insert(fd) {
                continue;
            }
            crate::sys::net::set_cloexec(fd, false)
                .map_err(|e| RunError::Setup("a listener for the upgrade", e))?;
            let addr = addr.map_or_else(|| "*".to_owned(), |a| a.to_string());
            env.push_str(&format!("{fd}@{addr}@{port};"));
        }
        log::warn!(
            "upgrade: {} listeners handed over; executing {}",
            self.handed.len(),
            path.display()
        );
        use std::os::unix::process::CommandExt;
        let e = std::process::Command::new(&path)
            .args(std::env::args_os().skip(1))
            .env(crate::sys::net::INHERITED_ENV, env)
            .exec();
        Err(RunError::Setup("the upgraded program", e))
    }

    /// Stops: every worker closes its listeners and idle connections and
    /// lets the rest finish within `grace`. `moirai status` keeps
    /// answering meanwhile (with `"draining": true`).
    pub(super) fn drain(
        mut self,
        grace: Duration,
        poll: &mut Poll,
        events: &mut Events,
        status: Option<&mut status::StatusServer>,
    ) {
        let deadline = Instant::now() + grace;
        log::info!(
            "draining: no new connections; open ones have {} s to finish",
            grace.as_secs()
        );
        self.stop_workers(ToWorker::Drain(deadline), "stopping", poll, events, status);
        let mut cut = 0;
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join.join();
        }
        while let Ok(r) = self.reports.try_recv() {
            if let FromWorker::Exited { cut: c, .. } = r {
                cut += c;
            }
        }
        if cut > 0 {
            log::warn!("grace period over: closed {cut} connections still open");
        }
        log::info!("stopped");
    }

    /// Sends every worker `how` (a drain or a hand-over; they end by
    /// themselves by its deadline, plus a moment to close what is left)
    /// and waits for them, answering `status` meanwhile; other commands
    /// are refused: nothing else would apply.
    fn stop_workers(
        &mut self,
        how: ToWorker,
        doing: &str,
        poll: &mut Poll,
        events: &mut Events,
        mut status: Option<&mut status::StatusServer>,
    ) {
        self.draining = true;
        for w in &self.workers {
            w.send(how.clone());
        }
        while !self.workers.iter().all(|w| w.join.is_finished()) {
            let _ = poll.poll(events, Some(Duration::from_millis(20)));
            if events.iter().any(|e| e.token() == STATUS) {
                if let Some(s) = status.as_deref_mut() {
                    s.serve(|line| match line {
                        "" | "status" => self.status_report().to_string(),
                        _ => format!("error: moirai is {doing}"),
                    });
                }
            }
        }
    }
}
