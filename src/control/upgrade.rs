//! The upgrade, from the control thread's side: `moirai upgrade` (or a
//! refresh after the binary changed) starts a pre-flight of the new
//! program ([`super::preflight`]); if it passes, the workers hand their
//! listeners over, a stand-in serves on them while open connections
//! finish, and this process execs the new program. If the exec fails, new
//! workers take the listeners back. Afterwards the upgraded program stops
//! the previous stand-in. The loop (`mod.rs`) calls these steps; the state
//! they work on is `Control`'s (`setup.rs`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::options::RunError;
use super::setup::{metadata_carry_path, Control, Loop, STANDIN_ENV, STANDIN_OF_ENV};
use super::{commands, dns, preflight, status};
use crate::engine::worker::{self, ToWorker};
use crate::sys::net::SharedListeners;
use crate::sys::signals::Signal;

/// How long the workers get to lend their listeners to a pre-flight.
const LEND_WAIT: Duration = Duration::from_secs(1);
/// How often the loop looks at a pre-flight under way.
pub(super) const PREFLIGHT_TICK: Duration = Duration::from_millis(20);
/// How long the workers get to give their listeners back at a hand-over.
const HANDBACK_WAIT: Duration = Duration::from_secs(1);
/// How long a status relayed to an upgrade's stand-in may take; the
/// client waits, and the draining program's loop with it.
const STANDIN_STATUS_WAIT: Duration = Duration::from_millis(300);

/// While this program drains for an upgrade: the status document of its
/// stand-in `pid`, which takes the new connections, or `None` if it cannot
/// answer (not serving yet, or gone): the caller answers with its own.
pub(super) fn relay_status(state_dir: &Path, pid: u32) -> Option<String> {
    let path = state_dir.join(status::STANDIN_SOCKET);
    match status::ask(&path, "status", STANDIN_STATUS_WAIT) {
        // Only a document of its own (an error line, or another process
        // on the path, and this program answers for itself), once it
        // serves: until its first configuration is in force, new
        // connections wait in the kernel, and this program's view says
        // more than an empty one.
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            (v["pid"] == pid && !v["applied_at"].is_null()).then_some(text)
        }
        Err(_) => None,
    }
}

impl Control {
    /// Starts the pre-flight of `path` (absolute; symbolic links are
    /// resolved, so the program checked is the one exec'd); nothing drains
    /// before it passes ([`Control::preflight_ended`]).
    pub(super) fn ask_upgrade(&mut self, path: PathBuf) -> Result<(), String> {
        if self.upgrade.is_some() || self.rollout.is_stopping() || self.standin_of.is_some() {
            return Err("already stopping or upgrading".to_owned());
        }
        if let Some((pid, _)) = self.previous {
            return Err(format!(
                "the last upgrade's stand-in (pid {pid}) is still draining; try again once it has ended (at most the grace period)"
            ));
        }
        if let Some(p) = &self.preflight {
            return Err(format!(
                "{} is being checked for an upgrade already",
                p.path().display()
            ));
        }
        // Sockets a previous upgrade handed over that no worker has taken
        // yet (they wait for the first configuration) would not be handed
        // on.
        if !self.listen.inherited.is_empty() {
            return Err(
                "the last upgrade's listeners are not all taken yet (the first configuration is not in force); try again in a few seconds"
                    .to_owned(),
            );
        }
        // Relative to what? The client's directory is not ours; `moirai
        // upgrade` sends an absolute path.
        if !path.is_absolute() {
            return Err(format!("{}: not an absolute path", path.display()));
        }
        let path = std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        commands::check_executable(&path)?;
        let lent = self.rollout.lend(LEND_WAIT)?;
        let p = preflight::Preflight::start(&path, std::env::args_os().skip(1), lent)
            .map_err(|e| e.to_string())?;
        log::warn!(
            "upgrade: checking {} (pre-flight) before anything drains",
            path.display()
        );
        self.preflight = Some(p);
        Ok(())
    }

    /// A pre-flight that ended: if it passed, the loop hands over to the
    /// program ([`Control::handover`]); if not, nothing changed. A client
    /// of the control socket waiting for it gets the answer.
    pub(super) fn preflight_ended(&mut self, lp: &mut Loop) {
        let Some(verdict) = self.preflight.as_mut().and_then(|p| p.poll(Instant::now())) else {
            return;
        };
        let Some(p) = self.preflight.take() else {
            return;
        };
        let path = p.path().to_owned();
        drop(p);
        let answer = match verdict {
            Ok(said) => {
                log::warn!(
                    "upgrade: {} passed its pre-flight ({said}); handing the listeners over (requests in flight finish first)",
                    path.display()
                );
                let answer = format!("ok: upgrading to {} (pre-flight passed)", path.display());
                self.upgrade = Some(path);
                answer
            }
            Err(e) => {
                log::error!("upgrade refused, still running this program: {e}");
                format!("error: upgrade refused, still running this program: {e}")
            }
        };
        if let Some(s) = lp.status.as_mut() {
            s.answer_held(&answer);
        }
    }

    /// After an upgrade, once every worker has opened the listeners of
    /// the first configuration: inherited sockets nobody took (ports that
    /// configuration does not have) are closed, not left queueing
    /// connections nobody accepts.
    pub(super) fn close_unclaimed(&mut self) {
        if !self.rollout.settled() || self.listen.inherited.is_empty() {
            return;
        }
        let closed = self.listen.inherited.close_rest();
        if !closed.is_empty() {
            let what: Vec<String> = closed
                .iter()
                .map(|(a, p)| {
                    format!(
                        "{}:{p}",
                        a.map_or_else(|| "*".to_owned(), |a| a.to_string())
                    )
                })
                .collect();
            log::warn!(
                "upgrade: closed {} inherited listeners the configuration has no service for: {}",
                closed.len(),
                what.join(", ")
            );
        }
    }

    /// `moirai upgrade`, once `path` passed its pre-flight: the workers
    /// give their listening sockets up (still open: new connections queue
    /// in the kernel) and drain as for a stop. Meanwhile a stand-in,
    /// `path` started as a child on the same sockets, serves: new
    /// connections wait only for it to start, not for the longest open
    /// connection to end. Then this process becomes `path`, same PID (SMF
    /// sees nothing), with the sockets inherited; once it serves, it tells
    /// the stand-in to drain. Returns only if the exec failed, with why:
    /// the sockets are still here, for [`Control::resume`].
    pub(super) fn handover(&mut self, path: &Path, lp: &mut Loop) -> HandoverError {
        let grace = self.grace;
        self.rollout
            .stop(ToWorker::Handover(Instant::now() + grace));
        self.rollout.wait_handed(HANDBACK_WAIT);
        let (standin_env, fds) = self.rollout.handover_fds();
        if !fds.is_empty() {
            // The metrics port goes to the stand-in.
            lp.metrics.close(lp.poll.registry());
            // The stand-in: the same program and arguments, on the sockets
            // (inheritable in that child only), with the last good DNS
            // answers in a file of its own.
            self.dns
                .carry_to(&dns::carry::standin_path(&self.state_dir));
            self.carry_metadata(true);
            let mut cmd = std::process::Command::new(path);
            cmd.args(std::env::args_os().skip(1))
                .env(crate::sys::net::INHERITED_ENV, &standin_env)
                .env_remove(STANDIN_ENV)
                .env(STANDIN_OF_ENV, std::process::id().to_string())
                .stdin(std::process::Stdio::null());
            let n = fds.len();
            crate::sys::process::pass_fds(&mut cmd, fds);
            match cmd.spawn() {
                Ok(child) => {
                    log::warn!(
                        "upgrade: stand-in {} serves on the {n} listeners while open connections finish",
                        child.id()
                    );
                    self.standin = Some(child);
                }
                Err(e) => log::error!(
                    "upgrade: no stand-in ({e}); new connections wait until open ones finish"
                ),
            }
        }
        self.wait_workers("upgrading", lp);
        self.rollout.join();
        // Every worker has reported by now: the exec gets every socket.
        let (env, n) = match self.rollout.handover_env() {
            Ok(e) => e,
            Err(e) => return HandoverError::Inherit(e),
        };
        // `svcadm disable` meanwhile: stop here rather than exec a program
        // that SMF is about to kill (the stand-in got it too and drains).
        if lp.signals.take().contains(&Signal::Terminate) {
            return HandoverError::Stopping;
        }
        log::warn!(
            "upgrade: {n} listeners handed over; executing {}",
            path.display()
        );
        self.dns.carry_to(&dns::carry::path(&self.state_dir));
        self.carry_metadata(false);
        // The control socket is closed on exec; the next program binds it
        // again. `path` is absolute: no PATH search, and no shell.
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(path);
        cmd.args(std::env::args_os().skip(1))
            .env(crate::sys::net::INHERITED_ENV, env);
        if let Some(c) = &self.standin {
            cmd.env(STANDIN_ENV, c.id().to_string());
        }
        let e = cmd.exec();
        HandoverError::Exec(path.to_owned(), e)
    }

    /// Hands the metadata of the running configuration to the next program
    /// (or its stand-in): if its own first read says `loadbalancer` is not
    /// `true`, or fails, it serves this instead of exiting.
    pub(super) fn carry_metadata(&self, standin: bool) {
        let Some(md) = self.configured.good() else {
            return;
        };
        let path = metadata_carry_path(&self.state_dir, standin);
        let text = serde_json::to_string(md).unwrap_or_default();
        if let Err(e) = crate::state::write_private(&path, text.as_bytes()) {
            log::warn!(
                "upgrade: cannot hand the configuration over in {}: {e}",
                path.display()
            );
        }
    }

    /// After an upgrade: once this program serves, the stand-in that
    /// served meanwhile is told to drain (its connections finish within
    /// its grace), and reaped when it has ended.
    pub(super) fn stop_standin(&mut self, lp: &mut Loop) {
        match self.previous {
            Some((pid, false))
                if !self.rollout.holding() && self.rollout.applied_at().is_some() =>
            {
                // It gives the metrics port up as it starts draining.
                lp.metrics
                    .expect_busy_until(Instant::now() + Duration::from_secs(5));
                match crate::sys::process::terminate(pid) {
                    Ok(()) => log::info!("upgrade: serving; stand-in {pid} drains"),
                    Err(e) => log::warn!("upgrade: cannot stop stand-in {pid}: {e}"),
                }
                self.previous = Some((pid, true));
            }
            Some((pid, true)) if crate::sys::process::reaped(pid) => {
                log::info!("upgrade: stand-in {pid} ended");
                self.previous = None;
            }
            _ => {}
        }
    }

    /// After a hand-over whose exec failed: new workers adopt the
    /// listening sockets the old ones handed over, as the upgraded program
    /// would have, and get the running configuration at once.
    pub(super) fn resume(&mut self) -> Result<(), RunError> {
        let (sockets, lost) = self.rollout.take_handed();
        let n = sockets.len();
        let workers_n = self.workers;
        self.listen.inherited = Arc::new(crate::sys::net::Inherited::new(sockets, workers_n));
        self.listen.shared = Arc::new(SharedListeners::default());
        let mut workers = Vec::with_capacity(workers_n);
        for id in 0..workers_n {
            workers.push(
                worker::spawn(id, self.listen.clone(), self.reporter.clone())
                    .map_err(RunError::Spawn)?,
            );
        }
        self.rollout.restart(workers);
        self.rebuild(Instant::now());
        // Serving again: the stand-in drains.
        if let Some(c) = self.standin.take() {
            let _ = crate::sys::process::terminate(c.id());
            self.previous = Some((c.id(), true));
        }
        log::error!(
            "upgrade: not upgraded; {workers_n} workers serve on {n} listeners again{}",
            if lost > 0 {
                format!(" ({lost} lost)")
            } else {
                String::new()
            }
        );
        Ok(())
    }
}

/// Why an upgrade's hand-over did not end in the new program.
#[derive(Debug)]
pub(super) enum HandoverError {
    /// A listening socket could not be made inheritable.
    Inherit(io::Error),
    /// The exec failed (the file vanished, or is not a program after all).
    Exec(PathBuf, io::Error),
    /// SIGTERM came during the drain: stop, do not exec.
    Stopping,
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoverError::Inherit(e) => write!(f, "cannot hand a listener over: {e}"),
            HandoverError::Exec(p, e) => write!(f, "cannot execute {}: {e}", p.display()),
            HandoverError::Stopping => f.write_str("stopping (SIGTERM during the drain)"),
        }
    }
}
