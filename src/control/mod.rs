//! The control thread: it decides, the workers move bytes.
//!
//! It reads the metadata (a file is watched several times a second, other
//! sources are polled every `--metadata-interval`, SIGHUP reads at once),
//! turns it into a [`Config`], builds a [`Snapshot`](crate::snapshot::Snapshot)
//! and sends it to every worker with a wake-up. A source that fails, or
//! metadata that parses to the same configuration, changes nothing.
//! SIGTERM/SIGINT drain the workers for up to the grace period.
//!
//! Each subsystem owns its state and this loop dispatches to them: DNS
//! discovery ([`dns::Discovery`]), health checks ([`health::Checks`]),
//! certificates and ACME ([`certs::Certificates`]), the rollout of
//! snapshots to the workers ([`rollout::Rollout`]), the operator's commands
//! ([`commands`]), and what the status document and the metrics say
//! ([`report`]). Every change reaches the workers the same way: through
//! the snapshot builder ([`publish`]), as a new generation.
//!
//! `moirai upgrade` (or a refresh after the binary was replaced) checks the
//! new program first ([`preflight`]) while everything keeps serving; only
//! if it passes do the workers hand their listeners over and the process
//! exec it. If the exec fails, new workers take the listeners back. Those
//! steps are [`upgrade`]'s.
//!
//! This file is the loop: [`run`], one turn and its dispatch, the way a
//! metadata read becomes a published snapshot, and the drain. What the
//! thread holds (`Control`, `Loop`) and how [`Options`] build it is
//! [`setup`]'s; [`options`] holds the options and [`RunError`].

pub mod accesslog;
pub mod certs;
mod commands;
pub mod dns;
pub mod errlog;
pub mod health;
pub mod hosts;
mod intake;
mod options;
pub mod preflight;
pub mod publish;
mod reload;
mod report;
mod rollout;
mod setup;
pub mod status;
mod token;
mod upgrade;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Metadata};
use crate::engine::worker::ToWorker;
use crate::metadata::reader;
use crate::snapshot::Snapshot;
use crate::sys::signals::Signal;
use commands::{Command, SmfSetting};
use intake::Intake;
pub use options::{Options, RunError};
pub use setup::sessions_per_worker;
use setup::{start, Control, Loop};
use token::ControlToken;
use upgrade::{relay_status, HandoverError, PREFLIGHT_TICK};

/// How often the loop wakes to check sources and worker reports.
const TICK: Duration = Duration::from_millis(200);

/// Runs the balancer until SIGTERM or SIGINT, then drains.
pub fn run(opts: Options) -> Result<(), RunError> {
    let (mut ctl, mut lp) = start(opts)?;
    loop {
        match ctl.turn(&mut lp) {
            Next::Go => {}
            Next::Stop => break,
            Next::Fatal(why) => {
                log::error!("{why}");
                ctl.drain(Duration::ZERO, &mut lp);
                return Err(RunError::Config(why));
            }
        }
        if let Some(path) = ctl.upgrade.take() {
            // Returns only if the exec failed (serve on) or a stop came.
            match ctl.handover(&path, &mut lp) {
                HandoverError::Stopping => {
                    log::info!("upgrade: not executed: stopping (the stand-in drains)");
                    return Ok(());
                }
                e => {
                    log::error!("upgrade: {e}; new workers take the listeners back and serve on");
                    ctl.resume()?;
                    // The stand-in gives the metrics port up as it drains.
                    lp.metrics
                        .expect_busy_until(Instant::now() + Duration::from_secs(5));
                }
            }
        }
    }
    let grace = ctl.grace;
    ctl.drain(grace, &mut lp);
    Ok(())
}

/// What the loop does after a turn.
enum Next {
    Go,
    /// SIGTERM or SIGINT: drain (or hand over, if an upgrade was asked).
    Stop,
    /// No configuration at start: exit 96 with this.
    Fatal(String),
}

impl Control {
    /// One pass of the loop: waits for events (at most a tick, less when
    /// a health check is due), then dispatches them.
    fn turn(&mut self, lp: &mut Loop) -> Next {
        let tick = if self.preflight.is_some() {
            PREFLIGHT_TICK
        } else {
            TICK
        };
        let wait = self.health.next_wake().map_or(tick, |t| {
            t.saturating_duration_since(Instant::now())
                .min(tick)
                // Rounds up: waking a hair early would only loop again.
                + Duration::from_millis(1)
        });
        if let Err(e) = lp.poll.poll(&mut lp.events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("control poll failed: {e}");
                std::thread::sleep(TICK);
            }
        }
        let now = Instant::now();
        self.check_startup(lp.startup_timeout);
        if self.previous.is_some() {
            self.stop_standin(lp);
        }
        if let Some(of) = self.standin_of {
            if crate::sys::process::parent_pid() != of {
                log::warn!(
                    "upgrade: process {of}, which this stand-in served for, is gone; draining"
                );
                self.standin_of = None;
                return Next::Stop;
            }
        }
        if let Some(why) = self.fatal.take() {
            return Next::Fatal(why);
        }
        if lp.has(ControlToken::Signals) {
            for sig in lp.signals.take() {
                match sig {
                    Signal::Terminate => return Next::Stop,
                    Signal::Reload if self.standin_of.is_some() => {
                        log::info!(
                            "upgrade: a stand-in leaves SIGHUP to the program it stands in for"
                        );
                    }
                    Signal::Reload => self.on_sighup(),
                }
            }
        }
        self.rollout
            .collect(&mut self.reload, &mut self.observed.exporter);
        self.close_unclaimed();
        if lp.has(ControlToken::Wake) {
            self.metadata_updates();
            if self.dns.updates() {
                self.rebuild(Instant::now());
            }
            if self.certs.acme_events(&self.source) {
                self.rebuild(Instant::now());
            }
        }
        if lp.has(ControlToken::Status) {
            if let Some(s) = lp.status.as_mut() {
                s.serve(|line| self.command(line));
            }
        }
        self.preflight_ended(lp);
        if self.upgrade.is_some() {
            return Next::Go;
        }
        for ev in lp.events.iter() {
            match ControlToken::of(ev.token()) {
                Some(ControlToken::Health) => {
                    self.health.ready(lp.poll.registry(), ev.token(), now)
                }
                Some(ControlToken::Metrics) => {
                    let parts = self.parts();
                    lp.metrics
                        .ready(lp.poll.registry(), ev.token(), now, &mut || parts.metrics());
                }
                _ => {}
            }
        }
        // While the stand-in serves, it holds the metrics port.
        if !matches!(self.previous, Some((_, false))) {
            lp.metrics.configure(
                lp.poll.registry(),
                self.configured.config().and_then(Config::metrics),
            );
        }
        lp.metrics.expire(lp.poll.registry(), now);
        self.health_updates(Instant::now());
        self.certs.log_name_mismatches();
        // Provided certificates swapped live, expiry warned about.
        self.certs.tick(Instant::now());
        self.error_log_tick(Instant::now());
        if self.hosts.refresh() {
            self.hosts_changed();
        }
        Next::Go
    }

    /// At start, the metadata must be readable within the start-up limit.
    fn check_startup(&mut self, limit: Duration) {
        if self.configured.config().is_some() || self.fatal.is_some() {
            return;
        }
        let waited = self.observed.started.elapsed().unwrap_or_default();
        if waited >= limit {
            self.fatal = Some(format!(
                "cannot read the metadata from {} for {} s{}; exiting (SMF_EXIT_ERR_CONFIG)",
                self.source.describe(),
                waited.as_secs(),
                self.configured
                    .source_error()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }

    /// SIGHUP (`svcadm refresh`): read the metadata now, re-read the SMF
    /// properties, and upgrade if a new binary replaced ours.
    fn on_sighup(&mut self) {
        log::info!("SIGHUP: reading metadata now");
        self.reload.asked();
        self.source.read_now();
        if let Some(text) = commands::read_smf_config() {
            for s in commands::smf_settings(&text) {
                self.apply_smf(s);
            }
        }
        // A new binary at our path: upgrade to it, pre-flight first (a
        // failing one is logged and the running program serves on; the
        // next refresh tries again).
        if let Some((path, id)) = self.exe.clone() {
            if commands::exe_identity(&path).is_some_and(|now| now != id) {
                if let Err(e) = self.ask_upgrade(path) {
                    log::error!("upgrade: {e}");
                }
            }
        }
    }

    /// A service property that applies live.
    fn apply_smf(&mut self, s: SmfSetting) {
        match s {
            SmfSetting::LogLevel(l) if l != log::max_level() => {
                // Said at any level: an operator changed it.
                log::set_max_level(l.max(log::LevelFilter::Warn));
                log::warn!(
                    "refresh: config/log_level is now {}",
                    l.as_str().to_lowercase()
                );
                log::set_max_level(l);
            }
            SmfSetting::AcmeChallenge(c) => {
                let writable = self.source.writable();
                if self
                    .certs
                    .set_challenge(c, self.configured.config(), writable)
                {
                    log::warn!("refresh: config/acme_challenge is now {c}");
                }
            }
            SmfSetting::Grace(g) if g != self.grace => {
                self.grace = g;
                log::warn!(
                    "refresh: config/grace is now {}",
                    humantime::format_duration(g)
                );
            }
            SmfSetting::LogLevel(_) | SmfSetting::Grace(_) => {}
        }
    }

    /// Everything the status document and the metrics read.
    fn parts(&self) -> report::Parts<'_> {
        report::Parts {
            rollout: &self.rollout,
            builder: &self.builder,
            health: &self.health,
            certs: &self.certs,
            dns: &self.dns,
            reload: &self.reload,
            admins: &self.admins,
            observed: &self.observed,
            config: self.configured.config(),
            diagnostics: self.configured.diagnostics(),
            kept_running: self.configured.kept_running(),
            listen_addresses: &self.listen_addresses,
            metadata_source: self.source.describe(),
            metadata_error: self.configured.source_error(),
            stand_in_for: self.standin_of,
        }
    }

    /// Answers one line from the control socket; `None` for an upgrade,
    /// answered when its pre-flight ends.
    fn command(&mut self, line: &str) -> Option<String> {
        let cmd = match Command::parse(line) {
            Ok(c) => c,
            Err(answer) => return Some(answer),
        };
        if let Some(of) = self.standin_of {
            if cmd != Command::Status {
                return Some(format!(
                    "error: this is an upgrade's stand-in for process {of}; commands go to {}",
                    status::SOCKET
                ));
            }
        }
        Some(match cmd {
            // Upgraded, not serving yet (checking the backends): the
            // previous program's stand-in still takes every connection.
            Command::Status => match self.previous {
                Some((pid, false)) => relay_status(&self.state_dir, pid),
                _ => None,
            }
            .unwrap_or_else(|| self.parts().status().to_string()),
            Command::Backend { port, addr, state } => self.admin_command(port, addr, state),
            Command::LogLevel(l) => {
                log::set_max_level(l);
                log::warn!("log level is now {l} (moirai log-level)");
                format!("ok: log level {l}")
            }
            Command::Upgrade(path) => {
                let Some(path) = path.or_else(|| self.exe.as_ref().map(|(p, _)| p.clone())) else {
                    return Some("error: cannot tell which program runs; name it".to_owned());
                };
                match self.ask_upgrade(path) {
                    Ok(()) => return None,
                    Err(e) => format!("error: {e}"),
                }
            }
            Command::AcmeRetry => {
                if self.certs.retry_now() {
                    log::info!("acme: retrying now (moirai acme retry)");
                    "ok: ACME order started".to_owned()
                } else {
                    "error: no certificate is being ordered (no certificate_name, or no TLS service)"
                        .to_owned()
                }
            }
        })
    }

    /// `backend disable|enable|drain PORT ADDRESS`: applied with a new
    /// generation at once and remembered until enabled again.
    fn admin_command(
        &mut self,
        port: u16,
        addr: std::net::SocketAddr,
        state: Option<publish::Admin>,
    ) -> String {
        if self.rollout.snapshot().service(port).is_none() {
            return format!("error: no service listens on port {port}");
        }
        // `enable` also clears the state of an address no longer among the
        // backends (DNS dropped it for a while): otherwise the operator
        // could not undo a drain, and the backend would come back drained
        // (the chaos soak found it so).
        let remembered = self.admins.states().contains_key(&(port, addr));
        if self.builder.candidates(port).all(|b| b.addr() != addr)
            && !(state.is_none() && remembered)
        {
            return format!("error: {addr} is not a backend of service :{port}");
        }
        let saved = self.admins.set(port, addr, state);
        let what = commands::admin_meaning(state);
        log::warn!("service :{port} backend {addr} {what} by an operator");
        self.rebuild(Instant::now());
        match saved {
            Ok(()) => format!("ok: service :{port} backend {addr} {what}"),
            Err(e) => format!(
                "ok: service :{port} backend {addr} {what}; not remembered across restarts: {e}"
            ),
        }
    }

    /// Writes the interval's errors per service to the local error log.
    fn error_log_tick(&mut self, now: Instant) {
        let services: Vec<(u16, &str, crate::metrics::stats::Totals)> = self
            .rollout
            .snapshot()
            .services
            .iter()
            .map(|s| (s.port(), s.spec.kind.as_str(), s.stats.totals()))
            .collect();
        self.logs.errors.tick(now, &services);
    }

    /// Acts on what the metadata reader reports.
    fn metadata_updates(&mut self) {
        let outcomes: Vec<reader::Outcome> = self.source.outcomes.try_iter().collect();
        for o in outcomes {
            match o {
                reader::Outcome::Read(r) => self.on_metadata(r, false),
                reader::Outcome::Put {
                    key,
                    result: Ok(()),
                } => {
                    log::info!("metadata: {key} written");
                }
                reader::Outcome::Put {
                    key,
                    result: Err(e),
                } => log::error!("metadata: cannot write {key}: {e}"),
            }
        }
    }

    /// The hosts file changed: names resolve anew from the last metadata.
    fn hosts_changed(&mut self) {
        if let Some(md) = self.configured.metadata().cloned() {
            self.on_metadata(Ok(md), true);
        }
    }

    /// A read finished: reconfigures if it means a new configuration, and
    /// answers a refresh that waited for it.
    fn on_metadata(&mut self, read: Result<Metadata, String>, rebuild: bool) {
        let seen = Instant::now();
        let generation = self.rollout.generation();
        let config = match self.configured.read(read, rebuild, generation) {
            Intake::Apply(config) => config,
            Intake::Fatal(why) => {
                self.fatal = Some(why);
                return;
            }
            Intake::ReadFailed(msg) => {
                self.observed.metadata_errors += 1;
                self.reload.read_ended(|| {
                    format!("metadata read failed ({msg}); generation {generation} keeps running")
                });
                return;
            }
            Intake::KeptRunning(why) => {
                self.reload.read_ended(|| {
                    format!("no change: {why} (generation {generation} keeps running)")
                });
                return;
            }
            Intake::Unchanged => {
                self.reload
                    .read_ended(|| format!("no change (generation {generation} keeps running)"));
                return;
            }
        };
        self.dns.watch(&config, &self.hosts);
        let snap = self.build(&config);
        for s in config.services() {
            if snap.service(s.listen.get()).is_none() {
                log::error!("service {s}: no TLS certificate could be set up; not started");
            }
        }
        self.configured.applied(config);
        let generation = snap.generation;
        self.publish(snap, seen);
        self.reload.wait_for(generation);
    }

    /// Builds the snapshot for `config` from what names resolve to and
    /// what the health checks say, and starts checking new backends.
    fn build(&mut self, config: &Config) -> Arc<Snapshot> {
        self.certs.follow(config, self.source.writable());
        let snap = self.builder.build(
            config,
            &publish::Inputs {
                hosts: &self.hosts,
                dns: self.dns.found(),
                health: &self.health,
                tls: self.certs.material(),
                acme: self.certs.challenges(),
                now: Instant::now(),
                admin: self.admins.states(),
                syslog: publish::SyslogInputs {
                    local: self.logs.access.as_ref().map(|a| &a.local),
                    origin: &self.logs.origin,
                    format: self.logs.format,
                },
            },
        );
        if snap.syslog != self.rollout.snapshot().syslog {
            crate::logging::set_remote(snap.syslog.clone());
        }
        self.health
            .sync(&self.registry, self.builder.check_specs(), Instant::now());
        Arc::new(snap)
    }

    /// Publishes the running configuration again after DNS, health, ACME
    /// or an operator changed what is usable.
    fn rebuild(&mut self, seen: Instant) {
        if let Some(config) = self.configured.config().cloned() {
            let snap = self.build(&config);
            self.publish(snap, seen);
        }
    }

    fn publish(&mut self, snap: Arc<Snapshot>, seen: Instant) {
        self.rollout
            .publish(snap, seen, &mut self.observed.exporter);
    }

    /// Starts due checks, times out late ones, and publishes state changes
    /// (and the end of a make-before-break).
    fn health_updates(&mut self, now: Instant) {
        self.health.run_due(&self.registry, now);
        let retired = self.builder.next_retirement().is_some_and(|t| now >= t);
        if !self.health.take_transitions().is_empty() || retired {
            self.rebuild(now);
        }
        if let Some((up, down)) = self.health.take_settled() {
            if self.rollout.release_hold() {
                log::info!("upgrade: every backend checked ({up} up, {down} down); accepting");
                self.rebuild(now);
            }
            self.rollout.note_when_applied(format!(
                "health: every backend checked ({up} up, {down} down)"
            ));
        }
    }

    /// Stops the workers (`how`: a drain or a hand-over) and waits for
    /// them, answering `status` meanwhile; other commands are refused:
    /// nothing else would apply.
    fn stop_workers(&mut self, how: ToWorker, doing: &str, lp: &mut Loop) {
        self.rollout.stop(how);
        self.wait_workers(doing, lp);
    }

    /// Waits until every worker has ended; see [`Control::stop_workers`].
    fn wait_workers(&mut self, doing: &str, lp: &mut Loop) {
        while !self.rollout.finished() {
            let _ = lp
                .poll
                .poll(&mut lp.events, Some(Duration::from_millis(20)));
            if lp.has(ControlToken::Status) {
                if let Some(s) = lp.status.as_mut() {
                    let standin = self.standin.as_ref().map(|c| c.id());
                    let dir = &self.state_dir;
                    s.serve(|line| {
                        Some(match line {
                            "" | "status" => standin
                                .and_then(|pid| relay_status(dir, pid))
                                .unwrap_or_else(|| self.parts().status().to_string()),
                            _ => format!("error: moirai is {doing}"),
                        })
                    });
                }
            }
            // Answers to checks in flight are taken (readiness is
            // edge-triggered: dropped now, it would never come again), so
            // that if an upgrade's exec fails no backend is judged by a
            // check timed out meanwhile.
            let now = Instant::now();
            for ev in lp.events.iter() {
                if ControlToken::of(ev.token()) == Some(ControlToken::Health) {
                    self.health.ready(lp.poll.registry(), ev.token(), now);
                }
            }
        }
    }

    /// Stops: every worker closes its listeners and idle connections and
    /// lets the rest finish within `grace`. `moirai status` keeps
    /// answering meanwhile (with `"draining": true`).
    fn drain(mut self, grace: Duration, lp: &mut Loop) {
        let deadline = Instant::now() + grace;
        // Whoever serves next (an upgraded program, after a stand-in)
        // may take the metrics port now.
        lp.metrics.close(lp.poll.registry());
        log::info!(
            "draining: no new connections; open ones have {} s to finish",
            grace.as_secs()
        );
        self.stop_workers(ToWorker::Drain(deadline), "stopping", lp);
        let cut = self.rollout.join();
        if cut > 0 {
            log::warn!("grace period over: closed {cut} connections still open");
        }
        log::info!("stopped");
    }
}
