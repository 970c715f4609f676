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
//! exec it. If the exec fails, new workers take the listeners back.

pub mod accesslog;
pub mod certs;
mod commands;
pub mod dns;
pub mod errlog;
pub mod health;
pub mod hosts;
mod intake;
pub mod preflight;
pub mod publish;
mod reload;
mod report;
mod rollout;
pub mod status;
mod token;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, Metadata};
use crate::engine::worker::{self, ListenConfig, ToWorker};
use crate::metadata::{reader, Source};
use crate::metrics::server::MetricsServer;
use crate::snapshot::{Snapshot, SyslogSpec};
use crate::sys::net::{ListenMode, SharedListeners};
use crate::sys::poll::{Events, Poll, Registry, Waker};
use crate::sys::rlimit;
use crate::sys::signals::{Signal, Signals};
use commands::{Command, SmfSetting};
use intake::Intake;
use token::ControlToken;

/// How often the loop wakes to check sources and worker reports.
const TICK: Duration = Duration::from_millis(200);
/// How long one nameserver gets to answer before the next is asked.
const DNS_TIMEOUT: Duration = Duration::from_secs(1);
/// After an upgrade, how long the workers wait for every backend's first
/// check before they get a configuration anyway.
const UPGRADE_HOLD: Duration = Duration::from_secs(5);
/// How long the workers get to lend their listeners to a pre-flight.
const LEND_WAIT: Duration = Duration::from_secs(1);
/// How often the loop looks at a pre-flight under way.
const PREFLIGHT_TICK: Duration = Duration::from_millis(20);
/// How long the workers get to give their listeners back at a hand-over.
const HANDBACK_WAIT: Duration = Duration::from_secs(1);
/// How long a status relayed to an upgrade's stand-in may take; the
/// client waits, and the draining program's loop with it.
const STANDIN_STATUS_WAIT: Duration = Duration::from_millis(300);
/// Names, to the upgraded program, the stand-in it must stop once it
/// serves.
const STANDIN_ENV: &str = "MOIRAI_STANDIN_PID";
/// Tells a stand-in which process it stands in for: if that one dies
/// (killed mid-upgrade), nothing would ever stop the stand-in.
const STANDIN_OF_ENV: &str = "MOIRAI_STANDIN_OF";

/// Everything `moirai run` configures.
pub struct Options {
    /// Where metadata comes from.
    pub source: Box<dyn Source>,
    /// Worker threads.
    pub workers: usize,
    /// How long open connections may finish after SIGTERM.
    pub grace: Duration,
    /// How often a source that cannot signal changes is read.
    pub metadata_interval: Duration,
    /// Static names consulted before DNS.
    pub hosts_file: PathBuf,
    /// Per-worker or shared listening sockets.
    pub listen_mode: ListenMode,
    /// The addresses services listen on; empty means all.
    pub listen_addresses: Vec<std::net::IpAddr>,
    /// The addresses the metrics endpoint listens on; `None` means those
    /// of the services.
    pub metrics_addresses: Option<Vec<std::net::IpAddr>>,
    /// Certificates, keys and the control socket live here.
    pub state_dir: PathBuf,
    /// How long an HTTP request head may take (then 408).
    pub header_timeout: Duration,
    /// Nameservers to ask; empty means those of `resolv_conf`.
    pub nameservers: Vec<std::net::SocketAddr>,
    /// Where the default nameservers are listed.
    pub resolv_conf: PathBuf,
    /// Longest time a DNS answer is trusted, whatever its TTL.
    pub max_ttl: Duration,
    /// The CA bundle `https` backends are verified against.
    pub ca_file: PathBuf,
    /// The ACME directory URL.
    pub acme_directory: String,
    /// An extra CA for the ACME server's HTTPS.
    pub acme_ca_file: Option<PathBuf>,
    /// How ACME challenges are answered.
    pub acme_challenge: certs::acme::ChallengeChoice,
    /// Renew this long before expiry (default: at two-thirds of the
    /// lifetime).
    pub acme_renew_before: Option<Duration>,
    /// How long CNS gets to publish a dns-01 answer.
    pub acme_dns_propagation: Duration,
    /// How long the metadata may stay unreadable at start before moirai
    /// gives up (exit 96).
    pub startup_timeout: Duration,
    /// The local error log (none: off).
    pub error_log: Option<PathBuf>,
    /// The remote syslog format.
    pub syslog_format: crate::proto::syslog::Format,
    /// Every access line to this file too (none: off).
    pub access_log: Option<PathBuf>,
    /// How often it gets its per-service lines.
    pub error_log_interval: Duration,
}

/// Why `moirai run` could not start.
#[derive(Debug)]
pub enum RunError {
    /// The state directory cannot be created.
    StateDir(PathBuf, io::Error),
    /// The state directory cannot hold secrets.
    State(crate::state::StateDirError),
    /// The control poll or the signal handlers cannot be set up.
    Setup(&'static str, io::Error),
    /// A worker thread cannot be started.
    Spawn(io::Error),
    /// The access log cannot be opened.
    AccessLog(accesslog::AccessLogError),
    /// The error log's path is refused.
    ErrorLog(crate::sys::logfile::LogFileError),
    /// No configuration at start: the metadata could not be read within
    /// the start-up limit, or `loadbalancer` is not `true`. SMF's
    /// `SMF_EXIT_ERR_CONFIG` (96), so `svcs -x` points at it.
    Config(String),
}

impl RunError {
    /// The exit status for SMF: 96 (`SMF_EXIT_ERR_CONFIG`) for a
    /// configuration the operator must fix, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) => 96,
            _ => 2,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::StateDir(p, e) => write!(f, "state directory {}: {e}", p.display()),
            RunError::State(e) => write!(f, "{e}"),
            RunError::Setup(what, e) => write!(f, "cannot set up {what}: {e}"),
            RunError::Spawn(e) => write!(f, "cannot start a worker thread: {e}"),
            RunError::AccessLog(e) => write!(f, "{e}"),
            RunError::ErrorLog(e) => write!(f, "error log: {e}"),
            RunError::Config(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RunError {}

/// Where access lines and the error log go.
struct Logs {
    /// Errors per service per interval, to a local file.
    errors: errlog::ErrorLog,
    /// The local access-log writer, if `--access-log` is set.
    access: Option<accesslog::AccessLog>,
    /// The remote syslog format.
    format: crate::proto::syslog::Format,
    /// This host, for syslog headers.
    origin: Arc<crate::proto::syslog::Origin>,
}

/// The control thread's state: its subsystems, and the configuration they
/// serve.
struct Control {
    /// The metadata source, on its own thread.
    source: reader::Reader,
    hosts: hosts::Hosts,
    builder: publish::Builder,
    health: health::Checks,
    /// The control poll's registry, for health-check sockets.
    registry: Registry,
    rollout: rollout::Rollout,
    dns: dns::Discovery,
    certs: certs::Certificates,
    admins: commands::Admins,
    reload: reload::Reloads,
    observed: report::Observed,
    logs: Logs,
    /// The metadata and the configuration it gave.
    configured: intake::Configured,
    /// Why moirai must stop at start (exit 96), once known.
    fatal: Option<String>,
    /// `--listen-address`es; empty means all.
    listen_addresses: Vec<std::net::IpAddr>,
    /// How long a stop lets connections finish (`--grace`, or
    /// `config/grace` re-read on refresh).
    grace: Duration,
    /// The new program being checked before an upgrade.
    preflight: Option<preflight::Preflight>,
    /// The new program passed its pre-flight: hand the listeners over and
    /// exec it.
    upgrade: Option<PathBuf>,
    /// How workers open listeners, and where they report: to start new
    /// ones if an upgrade's exec fails.
    listen: ListenConfig,
    reporter: worker::Reporter,
    /// How many workers run.
    workers: usize,
    /// The program running, and its identity when it started, to notice
    /// a new binary at refresh.
    exe: Option<(PathBuf, (u64, u64, i64))>,
    /// `--state-dir`.
    state_dir: PathBuf,
    /// During an upgrade: the stand-in this program started to serve on
    /// the listeners while its own connections drain.
    standin: Option<std::process::Child>,
    /// After an upgrade: the previous program's stand-in, to be told to
    /// drain once this program serves (`Some(false)`) and reaped when it
    /// has (`Some(true)`).
    previous: Option<(u32, bool)>,
    /// When this program is an upgrade's stand-in: the process it stands
    /// in for (its parent).
    standin_of: Option<u32>,
}

/// What the loop polls besides the subsystems' own sockets.
struct Loop {
    poll: Poll,
    events: Events,
    signals: Signals,
    status: Option<status::StatusServer>,
    metrics: MetricsServer,
    startup_timeout: Duration,
}

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

/// Sets everything up: the state directory, the descriptor limit, the
/// workers, the helper threads (metadata, DNS), the control and metrics
/// sockets.
fn start(opts: Options) -> Result<(Control, Loop), RunError> {
    crate::state::prepare(&opts.state_dir).map_err(RunError::State)?;
    match rlimit::raise_nofile() {
        Ok((old, new)) if old != new => {
            log::info!("raised the file descriptor limit from {old} to {new}")
        }
        Ok(_) => {}
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let workers_n = opts.workers.max(1);
    let max_sessions = sessions_per_worker(rlimit::nofile().unwrap_or(1024), workers_n);
    let poll = Poll::new().map_err(|e| RunError::Setup("the control poll", e))?;
    let mut signals = Signals::install().map_err(|e| RunError::Setup("signal handlers", e))?;
    signals
        .register(poll.registry(), ControlToken::Signals.token())
        .map_err(|e| RunError::Setup("signal handlers", e))?;

    let (report_tx, reports) = crossbeam_channel::unbounded();
    let waker = Arc::new(
        Waker::new(poll.registry(), ControlToken::Wake.token())
            .map_err(|e| RunError::Setup("the control waker", e))?,
    );
    let report_tx = worker::Reporter::new(report_tx, Some(Arc::clone(&waker)));
    let syslog_counts = Arc::new(crate::metrics::stats::SyslogCounters::new(workers_n));
    // Sockets a previous process handed over (`moirai upgrade`).
    let inherited = Arc::new(crate::sys::net::Inherited::from_env(workers_n));
    let inherited_n = inherited.len();
    let listen = ListenConfig {
        inherited,
        mode: opts.listen_mode,
        addresses: Arc::new(opts.listen_addresses.clone()),
        shared: Arc::new(SharedListeners::default()),
        descriptors: 2 * max_sessions,
        header_timeout: opts.header_timeout,
        syslog_counts: Arc::clone(&syslog_counts),
    };
    // Read (and removed) before any other thread runs.
    // The stand-in serving while the previous program drained (none when
    // this program is the stand-in, or was started by hand).
    let previous = std::env::var(STANDIN_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map(|pid| (pid, false));
    std::env::remove_var(STANDIN_ENV);
    let standin_of = std::env::var(STANDIN_OF_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    std::env::remove_var(STANDIN_OF_ENV);
    let mut workers = Vec::with_capacity(workers_n);
    for id in 0..workers_n {
        workers
            .push(worker::spawn(id, listen.clone(), report_tx.clone()).map_err(RunError::Spawn)?);
    }
    if inherited_n > 0 {
        log::warn!(
            "upgrade: {inherited_n} listening sockets inherited; accepting once every backend is checked"
        );
    }
    log::info!(
        "moirai {} running: {} workers of up to {max_sessions} connections, {:?} listeners, metadata from {}",
        crate::VERSION,
        workers.len(),
        opts.listen_mode,
        opts.source.describe()
    );

    let resolver = if opts.nameservers.is_empty() {
        dns::resolver::Resolver::from_resolv_conf(&opts.resolv_conf, DNS_TIMEOUT)
    } else {
        Ok(dns::resolver::Resolver::new(
            opts.nameservers.clone(),
            DNS_TIMEOUT,
        ))
    };
    let dns_watcher = match resolver {
        Ok(r) => {
            log::info!("DNS discovery asks {:?}", r.servers());
            Some(
                dns::watcher::Watcher::spawn(r, opts.max_ttl, Arc::clone(&waker))
                    .map_err(RunError::Spawn)?,
            )
        }
        Err(e) => {
            log::warn!("DNS discovery is off: {e}; backend names resolve from the hosts file only");
            None
        }
    };
    // The first read starts on the reader thread; its outcome arrives like
    // every other, with a wake-up.
    let source = reader::Reader::spawn(opts.source, opts.metadata_interval, Arc::clone(&waker))
        .map_err(RunError::Spawn)?;
    let described = source.describe().to_owned();
    let acme_opts = certs::acme::AcmeOptions {
        directory: opts.acme_directory.clone(),
        ca_file: opts.acme_ca_file.clone(),
        challenge: opts.acme_challenge,
        dir: certs::acme::dir(&opts.state_dir),
        renew_before: opts.acme_renew_before,
        dns_propagation: opts.acme_dns_propagation,
    };
    if let Some(p) = &opts.error_log {
        crate::sys::logfile::check_log_path(p).map_err(RunError::ErrorLog)?;
    }
    let access = match &opts.access_log {
        Some(p) => Some(accesslog::AccessLog::start(p.clone()).map_err(RunError::AccessLog)?),
        None => None,
    };
    let mut ctl = Control {
        source,
        hosts: hosts::Hosts::load(opts.hosts_file),
        builder: publish::Builder::new(workers_n),
        health: health::Checks::new(token::HEALTH_CHECKS),
        registry: poll
            .registry()
            .try_clone()
            .map_err(|e| RunError::Setup("the control poll", e))?,
        rollout: rollout::Rollout::new(
            workers,
            reports,
            (inherited_n > 0).then(|| Instant::now() + UPGRADE_HOLD),
        ),
        dns: {
            let mut d = dns::Discovery::new(dns_watcher);
            let carried = if standin_of.is_some() {
                dns::carry::standin_path(&opts.state_dir)
            } else {
                dns::carry::path(&opts.state_dir)
            };
            if inherited_n > 0 {
                d.adopt_from(&carried);
            } else {
                // Not an upgrade: a leftover of one that failed.
                let _ = std::fs::remove_file(&carried);
                let _ = std::fs::remove_file(dns::carry::standin_path(&opts.state_dir));
            }
            d
        },
        certs: certs::Certificates::new(
            opts.state_dir.clone(),
            opts.ca_file.clone(),
            acme_opts,
            Arc::clone(&waker),
        ),
        admins: commands::Admins::load(&opts.state_dir),
        reload: reload::Reloads::default(),
        observed: report::Observed {
            exporter: crate::metrics::export::Exporter::default(),
            syslog_counts,
            started: SystemTime::now(),
            metadata_errors: 0,
        },
        logs: Logs {
            errors: errlog::ErrorLog::new(opts.error_log.clone(), opts.error_log_interval),
            access,
            format: opts.syslog_format,
            origin: Arc::new(crate::proto::syslog::Origin::new(
                &crate::sys::process::hostname(),
                std::process::id(),
            )),
        },
        configured: intake::Configured::new(&described),
        fatal: None,
        listen_addresses: opts.listen_addresses.clone(),
        grace: opts.grace,
        preflight: None,
        upgrade: None,
        listen,
        reporter: report_tx,
        workers: workers_n,
        exe: std::env::current_exe()
            .ok()
            .and_then(|p| commands::exe_identity(&p).map(|id| (p, id))),
        state_dir: opts.state_dir.clone(),
        standin: None,
        previous,
        standin_of,
    };
    if ctl.standin_of.is_some() {
        ctl.certs.serve_only();
    }
    let carried = metadata_carry_path(&opts.state_dir, ctl.standin_of.is_some());
    if inherited_n > 0 {
        if let Some(md) = take_metadata_carry(&carried) {
            ctl.configured.with_fallback(md);
        }
    } else {
        // Not an upgrade: leftovers of one that failed.
        let _ = std::fs::remove_file(&carried);
        let _ = std::fs::remove_file(metadata_carry_path(&opts.state_dir, true));
    }
    // A stand-in takes no commands: the program it stands in for answers
    // them until the upgraded one does, and `moirai.sock` stays theirs.
    // It answers `status` on a socket of its own, which the program
    // draining relays to: the view of whoever takes new connections.
    let socket = match ctl.standin_of {
        Some(_) => status::STANDIN_SOCKET,
        None => status::SOCKET,
    };
    let status = status::StatusServer::bind(
        &opts.state_dir,
        socket,
        poll.registry(),
        ControlToken::Status.token(),
    )
    .map(Some);
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            log::warn!("no status socket in {}: {e}", opts.state_dir.display());
            None
        }
    };
    let metrics = MetricsServer::new(ControlToken::Metrics.token(), token::METRICS_CONNS)
        .with_addresses(
            opts.metrics_addresses
                .clone()
                .unwrap_or_else(|| opts.listen_addresses.clone()),
        );
    let lp = Loop {
        poll,
        events: Events::with_capacity(256),
        signals,
        status,
        metrics,
        startup_timeout: opts.startup_timeout,
    };
    Ok((ctl, lp))
}

/// While this program drains for an upgrade: the status document of its
/// stand-in `pid`, which takes the new connections, or `None` if it cannot
/// answer (not serving yet, or gone): the caller answers with its own.
fn relay_status(state_dir: &std::path::Path, pid: u32) -> Option<String> {
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

/// What the loop does after a turn.
enum Next {
    Go,
    /// SIGTERM or SIGINT: drain (or hand over, if an upgrade was asked).
    Stop,
    /// No configuration at start: exit 96 with this.
    Fatal(String),
}

impl Loop {
    fn has(&self, t: ControlToken) -> bool {
        self.events
            .iter()
            .any(|e| ControlToken::of(e.token()) == Some(t))
    }
}

/// Descriptors kept aside for everything that is not a session: polls,
/// wakers, listeners, the metadata source, logs.
const RESERVED_FDS: u64 = 64;

/// How many sessions each worker may hold within the descriptor limit
/// (two descriptors per session), at least one.
pub fn sessions_per_worker(nofile: u64, workers: usize) -> usize {
    let spare = nofile.saturating_sub(RESERVED_FDS + 4 * workers as u64);
    ((spare / 2) as usize / workers.max(1)).max(1)
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

    /// Starts the pre-flight of `path` (absolute; symbolic links are
    /// resolved, so the program checked is the one exec'd); nothing drains
    /// before it passes ([`Control::preflight_ended`]).
    fn ask_upgrade(&mut self, path: PathBuf) -> Result<(), String> {
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
    fn preflight_ended(&mut self, lp: &mut Loop) {
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
    fn close_unclaimed(&mut self) {
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
        let mut snap = self.builder.build(
            config,
            &publish::Inputs {
                hosts: &self.hosts,
                dns: self.dns.found(),
                health: &self.health,
                tls: self.certs.material(),
                acme: self.certs.challenges(),
                now: Instant::now(),
                admin: self.admins.states(),
            },
        );
        snap.syslog = self.syslog_spec(config);
        if snap.syslog != self.rollout.snapshot().syslog {
            crate::logging::set_remote(snap.syslog.clone());
        }
        self.health
            .sync(&self.registry, self.builder.check_specs(), Instant::now());
        Arc::new(snap)
    }

    /// Where syslog goes: the `syslog` key's address, or its name from the
    /// hosts file or DNS (a name not resolved yet means no remote syslog
    /// for now), and the local access log.
    fn syslog_spec(&self, config: &Config) -> Option<SyslogSpec> {
        let local = self.logs.access.as_ref().map(|a| a.local.clone());
        let remote = config.syslog().and_then(|t| {
            let ip = match &t.host {
                crate::config::SyslogHost::Ip(ip) => Some(*ip),
                crate::config::SyslogHost::Name(n) => self
                    .hosts
                    .lookup(n)
                    .and_then(|ips| ips.first().copied())
                    .or_else(|| self.dns.address(n.as_str(), t.port.get())),
            };
            if ip.is_none() {
                log::debug!("syslog: {t} is not resolved yet");
            }
            ip.map(|ip| std::net::SocketAddr::new(ip, t.port.get()))
        });
        (remote.is_some() || local.is_some()).then(|| SyslogSpec {
            addr: remote,
            local,
            origin: Arc::clone(&self.logs.origin),
            format: self.logs.format,
        })
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

    /// `moirai upgrade`, once `path` passed its pre-flight: the workers
    /// give their listening sockets up (still open: new connections queue
    /// in the kernel) and drain as for a stop. Meanwhile a stand-in,
    /// `path` started as a child on the same sockets, serves: new
    /// connections wait only for it to start, not for the longest open
    /// connection to end. Then this process becomes `path`, same PID (SMF
    /// sees nothing), with the sockets inherited; once it serves, it tells
    /// the stand-in to drain. Returns only if the exec failed, with why:
    /// the sockets are still here, for [`Control::resume`].
    fn handover(&mut self, path: &std::path::Path, lp: &mut Loop) -> HandoverError {
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
    fn carry_metadata(&self, standin: bool) {
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
    fn stop_standin(&mut self, lp: &mut Loop) {
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
    fn resume(&mut self) -> Result<(), RunError> {
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
/// Where an upgrade leaves the running configuration's metadata.
fn metadata_carry_path(state_dir: &std::path::Path, standin: bool) -> PathBuf {
    state_dir.join(if standin {
        "metadata-carry.standin.json"
    } else {
        "metadata-carry.json"
    })
}

/// The metadata an upgrade left, read once and removed; none if missing,
/// unreadable or written more than 10 minutes ago (a leftover).
fn take_metadata_carry(path: &std::path::Path) -> Option<crate::config::Metadata> {
    let fresh = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(600));
    let text = std::fs::read_to_string(path).ok();
    let _ = std::fs::remove_file(path);
    let md = serde_json::from_str(&text?).ok();
    if md.is_none() {
        log::warn!(
            "upgrade: {} is not a configuration; ignored",
            path.display()
        );
    }
    md.filter(|_| fresh)
}

#[derive(Debug)]
enum HandoverError {
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

#[cfg(test)]
mod tests {
    use super::sessions_per_worker;

    #[test]
    fn sessions_fit_in_the_descriptor_limit() {
        assert_eq!(sessions_per_worker(65_536, 2), (65_536 - 64 - 8) / 2 / 2);
        assert_eq!(sessions_per_worker(256, 16), (256 - 64 - 64) / 2 / 16);
        assert_eq!(sessions_per_worker(10, 4), 1);
    }
}
