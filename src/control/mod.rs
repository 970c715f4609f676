//! The control thread: it decides, the workers move bytes.
//!
//! It reads the metadata (a file is watched several times a second, other
//! sources are polled every `--metadata-interval`, SIGHUP reads at once),
//! turns it into a [`Config`], builds a [`Snapshot`] and sends it to every
//! worker with a wake-up. A source that fails, or metadata that parses to
//! the same configuration, changes nothing. SIGTERM/SIGINT drain the workers
//! for up to the grace period.
//!
//! DNS discovery (`dns`), health checks (`health`), ACME (`acme`), the
//! status socket (`status`) and the metrics endpoint all report into the
//! same snapshot builder (`publish`), so every change reaches the workers
//! the same way: as a new generation.

pub mod accesslog;
pub mod acme;
mod commands;
pub mod dns;
pub mod errlog;
pub mod health;
pub mod hosts;
pub mod publish;
mod report;
pub mod status;
mod stop;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::config::{Config, Diagnostics, Metadata};
use crate::engine::worker::{self, FromWorker, ListenConfig, ToWorker, WorkerHandle};
use crate::metadata::{reader, Source};
use crate::snapshot::Snapshot;
use crate::sys::net::{ListenMode, SharedListeners};
use crate::sys::poll::{Events, Poll, Token};
use crate::sys::rlimit;
use crate::sys::signals::{Signal, Signals};

/// How often the loop wakes to check sources and worker reports.
const TICK: Duration = Duration::from_millis(200);
/// Token of the signal pipe in the control poll.
const SIGNALS: Token = Token(1);
/// Token of the wake-ups from other threads: DNS answers and worker
/// reports (mio allows one waker per poll, so they share it).
const WAKE: Token = Token(2);
/// Token of the status socket.
const STATUS: Token = Token(3);
/// Token of the metrics listener.
const METRICS: Token = Token(4);
/// Metrics connections get tokens from here (64 of them).
const METRICS_CONNS: usize = 16;
/// Health-check sockets get tokens from here up.
const HEALTH_TOKENS: usize = 1024;
/// How long one nameserver gets to answer before the next is asked.
const DNS_TIMEOUT: Duration = Duration::from_secs(1);

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
    pub acme_challenge: acme::ChallengeChoice,
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
            RunError::Config(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RunError {}

/// Where a SIGHUP (`svcadm refresh`) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReloadPhase {
    /// Waiting for the metadata read it asked for.
    Read,
    /// Waiting for every worker to apply this generation.
    Applied(u64),
}

/// SIGHUPs asked and answered, for `/opt/triton/clb/reconfigure` (which
/// waits for its own) and the log.
#[derive(Debug, Default)]
struct Reloads {
    requested: u64,
    done: u64,
    outcome: Option<String>,
    waiting: Option<ReloadPhase>,
}

impl Reloads {
    fn complete(&mut self, outcome: String) {
        log::info!("refresh: {outcome}");
        self.done = self.requested;
        self.outcome = Some(outcome);
        self.waiting = None;
    }
}

/// A generation sent to the workers and not yet applied by all of them.
struct Pending {
    seen: Instant,
    changes: Vec<String>,
}

struct Control {
    /// The metadata source, on its own thread.
    source: reader::Reader,
    hosts: hosts::Hosts,
    builder: publish::Builder,
    workers: Vec<WorkerHandle>,
    reports: Receiver<FromWorker>,
    metadata: Option<Metadata>,
    config: Option<Config>,
    errors: Diagnostics,
    snapshot: Arc<Snapshot>,
    pending: HashMap<u64, Pending>,
    last_source_error: Option<String>,
    dns: Option<dns::watcher::Watcher>,
    /// The newest generation each worker has applied.
    worker_gen: Vec<u64>,
    discovered: publish::Discovered,
    watched: Vec<dns::resolver::Target>,
    health: health::Checks,
    registry: crate::sys::poll::Registry,
    /// "Every backend checked", held until the generation that carries
    /// those verdicts is applied everywhere, so whoever reads it can rely
    /// on the workers using them.
    settled_note: Option<(u64, String)>,
    /// Latencies merged from the workers.
    exporter: crate::metrics::export::Exporter,
    started: std::time::SystemTime,
    /// When the running generation was applied everywhere.
    applied_at: Option<std::time::SystemTime>,
    metadata_errors: u64,
    /// Lookups and failed lookups per DNS name.
    dns_counts: HashMap<dns::resolver::Target, (u64, u64)>,
    /// `--listen-address`es; empty means all.
    listen_addresses: Vec<std::net::IpAddr>,
    /// SIGHUPs and their outcomes.
    reload: Reloads,
    /// Errors per service per interval, to a local file.
    error_log: errlog::ErrorLog,
    /// The remote syslog format.
    syslog_format: crate::proto::syslog::Format,
    /// The local access-log writer, if `--access-log` is set.
    access_log: Option<accesslog::AccessLog>,
    /// Services that have had backends; a later loss is an outage (WARN),
    /// not a start (INFO).
    served: std::collections::HashSet<u16>,
    /// Services in an outage, for the line that says it ended.
    outage: std::collections::HashSet<u16>,
    /// Why moirai must stop at start (exit 96), once known.
    fatal: Option<String>,
    /// `loadbalancer` went away from `true` while running: the running
    /// configuration is kept, and this says why (status, log, metrics).
    kept_running: Option<String>,
    /// Listeners that cannot be opened, by (port, address): the reason
    /// and when it was last logged.
    not_listening: HashMap<(u16, Option<std::net::IpAddr>), (String, Instant)>,
    /// When each name last answered.
    dns_answered: HashMap<dns::resolver::Target, std::time::SystemTime>,
    /// Access lines the workers sent and dropped.
    syslog_counts: Arc<crate::metrics::stats::SyslogCounters>,
    /// This host, for syslog headers.
    origin: Arc<crate::proto::syslog::Origin>,
    /// Certificates and TLS configurations, made when a TLS service first
    /// appears.
    tls: Option<publish::TlsMaterial>,
    state_dir: PathBuf,
    ca_file: PathBuf,
    /// `https` backend names their certificates did not carry, recorded
    /// by handshakes; `logged_mismatches` of them have been logged.
    name_mismatches: Arc<crate::tls::chain::NameMismatches>,
    logged_mismatches: Vec<(String, Vec<String>)>,
    /// The ACME manager, once a configuration names a certificate.
    acme: Option<acme::Acme>,
    acme_opts: acme::AcmeOptions,
    /// What was last asked of the ACME manager.
    acme_wanted: Option<acme::Want>,
    /// Why no challenge can work, when none can (logged on change).
    acme_plan_error: Option<String>,
    /// Pending HTTP-01 answers, in every `http` service's snapshot.
    challenges: Arc<HashMap<String, String>>,
    /// Expiry of the certificate served per name.
    cert_expiry: Vec<(String, std::time::SystemTime)>,
    /// The certificates served (self-signed, ACME), for `moirai status`.
    cert_info: Vec<report::CertInfo>,
    /// What ACME is doing or last did, in words.
    acme_state: Option<String>,
    /// Stopping: listeners closed, connections finishing.
    draining: bool,
    /// How long a stop lets connections finish (`--grace`, or
    /// `config/grace` re-read on refresh).
    grace: Duration,
    /// After an upgrade: the workers get no configuration (and accept
    /// nothing: the inherited queues wait) until every backend has been
    /// checked, or this deadline, so the first clients meet no 503.
    hold: Option<Instant>,
    /// `moirai upgrade` asked for this program: hand the listeners over
    /// and exec it.
    upgrade: Option<PathBuf>,
    /// The program running, and its identity when it started, to notice
    /// a new binary at refresh.
    exe: Option<(PathBuf, (u64, u64, i64))>,
    /// Listening sockets the workers handed over for an upgrade.
    handed: Vec<(
        Option<std::net::IpAddr>,
        u16,
        crate::sys::net::WorkerListener,
    )>,
    /// Backends an operator disabled or drained, kept in the state
    /// directory until enabled again.
    admin: HashMap<(u16, std::net::SocketAddr), publish::Admin>,
    waker: Arc<crate::sys::poll::Waker>,
}

/// Runs the balancer until SIGTERM or SIGINT, then drains.
pub fn run(opts: Options) -> Result<(), RunError> {
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
    let mut poll = Poll::new().map_err(|e| RunError::Setup("the control poll", e))?;
    let mut signals = Signals::install().map_err(|e| RunError::Setup("signal handlers", e))?;
    signals
        .register(poll.registry(), SIGNALS)
        .map_err(|e| RunError::Setup("signal handlers", e))?;

    let (report_tx, reports) = crossbeam_channel::unbounded();
    let waker = Arc::new(
        crate::sys::poll::Waker::new(poll.registry(), WAKE)
            .map_err(|e| RunError::Setup("the control waker", e))?,
    );
    let report_tx = worker::Reporter::new(report_tx, Some(Arc::clone(&waker)));
    let syslog_counts = Arc::new(crate::metrics::stats::SyslogCounters::new(workers_n));
    // Sockets a previous process handed over (`moirai upgrade`).
    let inherited = Arc::new(crate::sys::net::Inherited::from_env());
    let inherited_n = inherited.len();
    let listen = ListenConfig {
        inherited,
        mode: opts.listen_mode,
        addresses: Arc::new(opts.listen_addresses.clone()),
        shared: Arc::new(SharedListeners::default()),
        max_sessions,
        header_timeout: opts.header_timeout,
        syslog_counts: Arc::clone(&syslog_counts),
    };
    let mut workers = Vec::with_capacity(workers_n);
    for id in 0..workers_n {
        workers
            .push(worker::spawn(id, listen.clone(), report_tx.clone()).map_err(RunError::Spawn)?);
    }
    drop(report_tx);
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
    let source = reader::Reader::spawn(opts.source, opts.metadata_interval, Arc::clone(&waker))
        .map_err(RunError::Spawn)?;
    let mut ctl = Control {
        source,
        hosts: hosts::Hosts::load(opts.hosts_file),
        builder: publish::Builder::new(workers_n),
        workers,
        reports,
        metadata: None,
        config: None,
        errors: Diagnostics::default(),
        snapshot: Arc::new(Snapshot::default()),
        pending: HashMap::new(),
        last_source_error: None,
        discovered: publish::Discovered {
            enabled: dns_watcher.is_some(),
            ..publish::Discovered::default()
        },
        dns: dns_watcher,
        worker_gen: vec![0; workers_n],
        watched: Vec::new(),
        health: health::Checks::new(HEALTH_TOKENS),
        settled_note: None,
        exporter: crate::metrics::export::Exporter::default(),
        started: std::time::SystemTime::now(),
        applied_at: None,
        metadata_errors: 0,
        dns_counts: HashMap::new(),
        dns_answered: HashMap::new(),
        not_listening: HashMap::new(),
        listen_addresses: opts.listen_addresses.clone(),
        reload: Reloads::default(),
        fatal: None,
        kept_running: None,
        served: Default::default(),
        outage: Default::default(),
        error_log: errlog::ErrorLog::new(opts.error_log.clone(), opts.error_log_interval),
        syslog_format: opts.syslog_format,
        access_log: match &opts.access_log {
            Some(p) => Some(
                accesslog::AccessLog::start(p.clone())
                    .map_err(|e| RunError::Setup("the access log", e))?,
            ),
            None => None,
        },
        syslog_counts,
        tls: None,
        state_dir: opts.state_dir.clone(),
        ca_file: opts.ca_file.clone(),
        name_mismatches: Arc::default(),
        logged_mismatches: Vec::new(),
        acme: None,
        acme_opts: acme::AcmeOptions {
            directory: opts.acme_directory.clone(),
            ca_file: opts.acme_ca_file.clone(),
            challenge: opts.acme_challenge,
            dir: acme::dir(&opts.state_dir),
            renew_before: opts.acme_renew_before,
            dns_propagation: opts.acme_dns_propagation,
        },
        acme_wanted: None,
        acme_plan_error: None,
        challenges: Arc::default(),
        cert_expiry: Vec::new(),
        cert_info: Vec::new(),
        acme_state: None,
        draining: false,
        admin: commands::load_admin(&opts.state_dir),
        grace: opts.grace,
        hold: (inherited_n > 0).then(|| Instant::now() + Duration::from_secs(5)),
        upgrade: None,
        exe: std::env::current_exe()
            .ok()
            .and_then(|p| commands::exe_identity(&p).map(|id| (p, id))),
        handed: Vec::new(),
        waker: Arc::clone(&waker),
        origin: Arc::new(crate::proto::syslog::Origin::new(
            &crate::sys::process::hostname(),
            std::process::id(),
        )),
        registry: poll
            .registry()
            .try_clone()
            .map_err(|e| RunError::Setup("the control poll", e))?,
    };
    // The first read is under way on the reader thread; its outcome
    // arrives like every other, with a wake-up.

    let mut status = match status::StatusServer::bind(&opts.state_dir, poll.registry(), STATUS) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("no status socket in {}: {e}", opts.state_dir.display());
            None
        }
    };
    let mut metrics = crate::metrics::server::MetricsServer::new(METRICS, METRICS_CONNS)
        .with_addresses(
            opts.metrics_addresses
                .clone()
                .unwrap_or_else(|| opts.listen_addresses.clone()),
        );
    let mut events = Events::with_capacity(256);
    'run: loop {
        let wait = ctl.health.next_wake().map_or(TICK, |t| {
            t.saturating_duration_since(Instant::now())
                .min(TICK)
                // Rounds up: waking a hair early would only loop again.
                + Duration::from_millis(1)
        });
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("control poll failed: {e}");
                std::thread::sleep(TICK);
            }
        }
        let now = Instant::now();
        if ctl.config.is_none() && ctl.fatal.is_none() {
            let waited = ctl.started.elapsed().unwrap_or_default();
            if waited >= opts.startup_timeout {
                ctl.fatal = Some(format!(
                    "cannot read the metadata from {} for {} s{}; exiting (SMF_EXIT_ERR_CONFIG)",
                    ctl.source.describe(),
                    waited.as_secs(),
                    ctl.last_source_error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(why) = ctl.fatal.take() {
            log::error!("{why}");
            ctl.drain(Duration::ZERO, &mut poll, &mut events, status.as_mut());
            return Err(RunError::Config(why));
        }
        if events.iter().any(|e| e.token() == SIGNALS) {
            for sig in signals.take() {
                match sig {
                    Signal::Terminate => break 'run,
                    Signal::Reload => {
                        log::info!("SIGHUP: reading metadata now");
                        ctl.reload.requested += 1;
                        ctl.reload.waiting = Some(ReloadPhase::Read);
                        ctl.source.read_now();
                        ctl.reread_smf_config();
                        // A new binary at the same path: refresh upgrades.
                        if let Some((path, id)) = ctl.exe.clone() {
                            if commands::exe_identity(&path).is_some_and(|now| now != id) {
                                if let Err(e) = ctl.ask_upgrade(path) {
                                    log::error!("upgrade: {e}");
                                }
                            }
                        }
                    }
                }
            }
        }
        ctl.collect_reports();
        if events.iter().any(|e| e.token() == WAKE) {
            ctl.metadata_updates();
            ctl.dns_updates();
            ctl.acme_updates();
        }
        if events.iter().any(|e| e.token() == STATUS) {
            if let Some(s) = status.as_mut() {
                s.serve(|line| ctl.command(line));
            }
        }
        if ctl.upgrade.is_some() {
            break 'run;
        }
        for ev in events.iter() {
            if ctl.health.owns(ev.token()) {
                ctl.health.ready(poll.registry(), ev.token(), now);
            } else if metrics.owns(ev.token()) {
                metrics.ready(poll.registry(), ev.token(), now, &mut || ctl.metrics_text());
            }
        }
        metrics.configure(
            poll.registry(),
            ctl.config.as_ref().and_then(Config::metrics),
        );
        metrics.expire(poll.registry(), now);
        ctl.health_updates(Instant::now());
        ctl.name_mismatch_updates();
        ctl.error_log_tick(Instant::now());
        if ctl.hosts.refresh() {
            ctl.hosts_changed();
        }
    }
    let grace = ctl.grace;
    if let Some(path) = ctl.upgrade.take() {
        return ctl.handover(path, grace, &mut poll, &mut events, status);
    }
    ctl.drain(grace, &mut poll, &mut events, status.as_mut());
    Ok(())
}

/// How often a listener that still cannot be opened is logged again.
const NOT_LISTENING_REPEAT: Duration = Duration::from_secs(300);

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
    /// Writes the interval's errors per service to the local error log.
    fn error_log_tick(&mut self, now: Instant) {
        let services: Vec<(u16, &str, crate::metrics::stats::Totals)> = self
            .snapshot
            .services
            .iter()
            .map(|s| (s.port(), s.spec.kind.as_str(), s.stats.totals()))
            .collect();
        self.error_log.tick(now, &services);
    }

    /// Logs, once each, `https` backends whose certificate is for another
    /// name.
    fn name_mismatch_updates(&mut self) {
        let all = self.name_mismatches.all();
        if all == self.logged_mismatches {
            return;
        }
        for (name, presented) in &all {
            if !self
                .logged_mismatches
                .iter()
                .any(|(n, p)| n == name && p == presented)
            {
                log::warn!(
                    "tls: https backends reached as {name} present a certificate for {}; the chain is verified and the name is not (as Moirai does); add verify_host:NAME to the portmap entry to require one",
                    if presented.is_empty() { "other names".to_owned() } else { presented.join(", ") }
                );
            }
        }
        self.logged_mismatches = all;
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
        if let Some(md) = self.metadata.clone() {
            self.on_metadata(Ok(md), true);
        }
    }

    /// A read finished; on success, reconfigures if anything changed (or
    /// always, with `rebuild`).
    fn on_metadata(&mut self, read: Result<Metadata, String>, rebuild: bool) {
        let md = match read {
            Ok(md) => md,
            Err(msg) => {
                self.metadata_errors += 1;
                if self.reload.waiting == Some(ReloadPhase::Read) {
                    self.reload.complete(format!(
                        "metadata read failed ({msg}); generation {} keeps running",
                        self.snapshot.generation
                    ));
                }
                if self.last_source_error.as_deref() != Some(&msg) {
                    log::error!(
                        "cannot read metadata ({msg}); keeping the running configuration (generation {})",
                        self.snapshot.generation
                    );
                }
                self.last_source_error = Some(msg);
                return;
            }
        };
        if self.last_source_error.take().is_some() {
            log::info!("metadata readable again from {}", self.source.describe());
        }
        let seen = Instant::now();
        let (config, errors) = Config::from_metadata(&md);
        if errors != self.errors {
            for e in &errors.errors {
                log::error!("config: {e}");
            }
            for w in &errors.warnings {
                log::warn!("config: {w}");
            }
            if errors.errors.is_empty() && !self.errors.errors.is_empty() {
                log::info!("config: every key is valid again");
            }
            self.errors = errors;
        }
        self.metadata = Some(md);
        if !config.enabled() {
            let value = self
                .metadata
                .as_ref()
                .and_then(|m| m.get(crate::config::keys::LOADBALANCER))
                .cloned()
                .unwrap_or_default();
            let why = format!(
                "cloud.tritoncompute:loadbalancer is {} (not \"true\")",
                if value.trim().is_empty() {
                    "empty or missing".to_owned()
                } else {
                    format!("{value:?}")
                }
            );
            if self.config.is_none() {
                // At start: nothing to keep serving; say so to SMF.
                self.fatal = Some(format!(
                    "{why}: no load balancer to run; exiting (SMF_EXIT_ERR_CONFIG)"
                ));
                return;
            }
            // While running: a typo or a transient empty read must not
            // take every listener down (Moirai's reconfigure skips too).
            if self.kept_running.as_ref() != Some(&why) {
                log::error!(
                    "{why}: keeping the running configuration (generation {}); to stop load balancing, disable the service",
                    self.snapshot.generation
                );
                self.kept_running = Some(why);
            }
            if self.reload.waiting == Some(ReloadPhase::Read) {
                self.reload.complete(format!(
                    "no change: {} (generation {} keeps running)",
                    self.kept_running.as_deref().unwrap_or_default(),
                    self.snapshot.generation
                ));
            }
            return;
        }
        if self.kept_running.take().is_some() {
            log::info!("cloud.tritoncompute:loadbalancer is \"true\" again");
        }
        if !rebuild && self.config.as_ref() == Some(&config) {
            if self.reload.waiting == Some(ReloadPhase::Read) {
                self.reload.complete(format!(
                    "no change (generation {} keeps running)",
                    self.snapshot.generation
                ));
            }
            return;
        }
        self.watch_names(&config);
        let snap = self.build(&config);
        for s in config.services() {
            if snap.service(s.listen.get()).is_none() {
                log::error!("service {s}: no TLS certificate could be set up; not started");
            }
        }
        self.config = Some(config);
        let generation = snap.generation;
        self.publish(snap, seen);
        if self.reload.waiting == Some(ReloadPhase::Read) {
            self.reload.waiting = Some(ReloadPhase::Applied(generation));
        }
    }

    /// Tells the DNS thread which names the configuration needs.
    fn watch_names(&mut self, config: &Config) {
        let Some(w) = &self.dns else { return };
        let mut targets: Vec<dns::resolver::Target> = config
            .services()
            .iter()
            .filter(|s| match &s.backend {
                crate::config::BackendTarget::Dns { name, .. } => self.hosts.lookup(name).is_none(),
                _ => true,
            })
            .filter_map(|s| publish::dns_target(&s.backend))
            .collect();
        if let Some(t) = config.syslog() {
            if let crate::config::SyslogHost::Name(n) = &t.host {
                if self.hosts.lookup(n).is_none() {
                    targets.push(dns::resolver::Target::Addr {
                        name: n.to_string(),
                        port: t.port.get(),
                    });
                }
            }
        }
        targets.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        targets.dedup();
        if targets != self.watched {
            w.watch(targets.clone());
            self.watched = targets;
            self.discovered.good.retain(|t, _| self.watched.contains(t));
            self.discovered
                .empty
                .retain(|t, _| self.watched.contains(t));
            self.discovered
                .errors
                .retain(|t, _| self.watched.contains(t));
            self.dns_counts.retain(|t, _| self.watched.contains(t));
        }
    }

    /// Takes the DNS thread's answers; a changed backend set is published
    /// at once. A failure keeps the last good set.
    fn dns_updates(&mut self) {
        let Some(w) = &self.dns else { return };
        let mut changed = false;
        while let Ok(u) = w.updates.try_recv() {
            if !self.watched.contains(&u.target) {
                continue;
            }
            let name = u.target.name().to_owned();
            let counts = self.dns_counts.entry(u.target.clone()).or_default();
            counts.0 += 1;
            counts.1 += u64::from(u.result.is_err());
            match u.result {
                Ok(r) => {
                    self.dns_answered
                        .insert(u.target.clone(), std::time::SystemTime::now());
                    let why = r.empty.map(|e| e.to_string());
                    if self.discovered.empty.get(&u.target) != why.as_ref() {
                        if let Some(w) = &why {
                            log::warn!("dns: {name}: {w}");
                        }
                        match why {
                            Some(w) => self.discovered.empty.insert(u.target.clone(), w),
                            None => self.discovered.empty.remove(&u.target),
                        };
                        changed = true;
                    }
                    let mut list = r.backends;
                    list.sort();
                    if self.discovered.errors.remove(&u.target).is_some() {
                        log::info!("dns: {name} answers again");
                    }
                    if self.discovered.good.get(&u.target) != Some(&list) {
                        log::info!(
                            "dns: {name} -> {:?} (ttl {} s)",
                            list.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
                            r.ttl
                        );
                        self.discovered.good.insert(u.target, list);
                        changed = true;
                    }
                }
                Err(e) => {
                    if self.discovered.errors.get(&u.target) != Some(&e) {
                        let keeping = self.discovered.good.get(&u.target).map_or(0, Vec::len);
                        log::warn!("dns: {name}: {e}; keeping the last good set ({keeping} backends), retrying");
                        self.discovered.errors.insert(u.target.clone(), e);
                        // A name that never resolved says why in the snapshot.
                        changed |= keeping == 0;
                    }
                }
            }
        }
        if changed {
            self.rebuild(Instant::now());
        }
    }

    /// Builds the snapshot for `config` from what names resolve to and
    /// what the health checks say, and starts checking new backends.
    fn build(&mut self, config: &Config) -> Arc<Snapshot> {
        if self.tls.is_none() && config.services().iter().any(|s| s.kind.is_tls()) {
            self.tls = self.make_tls(config);
        }
        self.follow_certificate_names(config);
        let mut snap = self.builder.build(
            config,
            &publish::Inputs {
                hosts: &self.hosts,
                dns: &self.discovered,
                health: &self.health,
                tls: self.tls.as_ref(),
                acme: &self.challenges,
                now: Instant::now(),
                admin: &self.admin,
            },
        );
        snap.syslog = self.syslog_spec(config);
        if snap.syslog != self.snapshot.syslog {
            crate::logging::set_remote(snap.syslog.clone());
        }
        self.health
            .sync(&self.registry, self.builder.check_specs(), Instant::now());
        Arc::new(snap)
    }

    /// Starts the ACME manager when TLS services and `certificate_name`
    /// exist, and tells it the names whenever they change.
    fn follow_certificate_names(&mut self, config: &Config) {
        if self.tls.is_none() {
            return;
        }
        let names: Vec<String> = config
            .certificate_names()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        if names.is_empty() {
            return;
        }
        let plan = match acme::plan(self.acme_opts.challenge, config, self.source.writable()) {
            Ok(p) => {
                self.acme_plan_error = None;
                p
            }
            Err(e) => {
                if self.acme_plan_error.as_ref() != Some(&e) {
                    log::error!("acme: {e}; serving the self-signed certificate");
                    self.acme_plan_error = Some(e);
                }
                return;
            }
        };
        let want = acme::Want { names, plan };
        if self.acme_wanted.as_ref() == Some(&want) {
            return;
        }
        if self.acme.is_none() {
            match acme::Acme::spawn(self.acme_opts.clone(), Arc::clone(&self.waker)) {
                Ok(a) => self.acme = Some(a),
                Err(e) => {
                    log::error!("acme: cannot start: {e}");
                    return;
                }
            }
        }
        log::info!(
            "acme: asking {} for a certificate for {} by {plan}",
            self.acme_opts.directory,
            want.names.join(", ")
        );
        if let Some(a) = &self.acme {
            a.want(want.clone());
        }
        self.acme_wanted = Some(want);
    }

    /// Acts on what the ACME manager says.
    fn acme_updates(&mut self) {
        let Some(a) = &self.acme else { return };
        let events: Vec<acme::AcmeEvent> = a.events.try_iter().collect();
        let mut republish = false;
        for e in events {
            match e {
                acme::AcmeEvent::Http01 { token, key_auth } => {
                    Arc::make_mut(&mut self.challenges).insert(token, key_auth);
                    republish = true;
                }
                acme::AcmeEvent::TlsAlpn01 {
                    name,
                    cert_pem,
                    key_pem,
                } => match crate::tls::certs::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()) {
                    Ok(key) => {
                        if let Some(tls) = &self.tls {
                            tls.store.set_challenge(&name, key);
                        }
                    }
                    Err(e) => log::error!("acme: the tls-alpn-01 certificate is unusable: {e}"),
                },
                acme::AcmeEvent::ChallengesDone => {
                    if let Some(tls) = &self.tls {
                        tls.store.clear_challenges();
                    }
                    if !self.challenges.is_empty() {
                        self.challenges = Arc::default();
                        republish = true;
                    }
                }
                acme::AcmeEvent::Dns01 { value } => {
                    // Written by the reader thread; its outcome is logged
                    // when it comes back.
                    self.source.put(acme::DNS_CHALLENGE_KEY, &value);
                }
                acme::AcmeEvent::Issued {
                    names,
                    cert_pem,
                    key_pem,
                    not_after,
                    fresh,
                } => match crate::tls::certs::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()) {
                    Ok(key) => {
                        if let Some(tls) = &self.tls {
                            // Also the default: clients without SNI or
                            // with another name get it, not self-signed.
                            tls.store.install(&names, key, true);
                        }
                        let until = not_after
                            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                            .unwrap_or_else(|| "an unknown date".to_owned());
                        log::info!(
                            "tls: serving the ACME certificate for {} ({}, valid until {until})",
                            names.join(", "),
                            if fresh { "just issued" } else { "stored" }
                        );
                        self.cert_info.retain(|c| c.source != "acme");
                        self.cert_info.push(report::CertInfo::of(
                            names.clone(),
                            cert_pem.as_bytes(),
                            "acme",
                        ));
                        self.acme_state = Some(format!(
                            "{} certificate served, valid until {until}",
                            if fresh { "issued" } else { "stored" }
                        ));
                        if let Some(t) = not_after {
                            self.cert_expiry.retain(|(n, _)| !names.contains(n));
                            self.cert_expiry
                                .extend(names.iter().map(|n| (n.clone(), t)));
                        }
                    }
                    Err(e) => log::error!("acme: the issued certificate is unusable: {e}"),
                },
                acme::AcmeEvent::Failed { error, retry_in } => {
                    self.acme_state = Some(format!(
                        "failed: {error}; next attempt in {} s",
                        retry_in.as_secs()
                    ));
                    log::error!(
                        "acme: {error}; still serving the previous certificate, retrying in {} s",
                        retry_in.as_secs()
                    );
                }
            }
        }
        if republish {
            self.rebuild(Instant::now());
        }
    }

    /// The certificate store (self-signed until ACME supplies one), the
    /// server config, and the backend client configs.
    fn make_tls(&mut self, config: &Config) -> Option<publish::TlsMaterial> {
        use crate::tls;
        let names: Vec<String> = config
            .certificate_names()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        let cert = match tls::certs::self_signed(&self.state_dir, &names) {
            Ok(c) => {
                if let Ok(pem) = std::fs::read(self.state_dir.join(tls::certs::SELF_SIGNED_CERT)) {
                    self.cert_info
                        .push(report::CertInfo::of(names.clone(), &pem, "self-signed"));
                }
                c
            }
            Err(e) => {
                log::error!("tls: {e}");
                return None;
            }
        };
        let store = tls::certs::CertStore::new(cert);
        let server = match tls::config::server(Arc::clone(&store) as _) {
            Ok(s) => s,
            Err(e) => {
                log::error!("tls: {e}");
                return None;
            }
        };
        let roots = match tls::config::load_roots(&self.ca_file) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                log::error!(
                    "tls: no trust store for https backends ({e}); they will all fail verification"
                );
                Arc::new(rustls::RootCertStore::empty())
            }
        };
        let verified = tls::config::chain_verified_client(
            Arc::clone(&roots),
            Arc::clone(&self.name_mismatches),
        )
        .ok()?;
        let strict = tls::config::verified_client(roots).ok()?;
        let insecure = tls::config::insecure_client().ok()?;
        Some(publish::TlsMaterial {
            store,
            server,
            verified,
            strict,
            insecure,
        })
    }

    /// Where syslog goes: the `syslog` key's address, or its name from the
    /// hosts file or DNS. A name not resolved yet means no syslog for now.
    fn syslog_spec(&self, config: &Config) -> Option<crate::snapshot::SyslogSpec> {
        let local = self.access_log.as_ref().map(|a| a.addr);
        let remote = config.syslog().and_then(|t| self.syslog_addr(t));
        (remote.is_some() || local.is_some()).then(|| crate::snapshot::SyslogSpec {
            addr: remote,
            local,
            origin: Arc::clone(&self.origin),
            format: self.syslog_format,
        })
    }

    /// The `syslog` key's address, by address, the hosts file or DNS; none
    /// while a name is not resolved yet.
    fn syslog_addr(&self, t: &crate::config::SyslogTarget) -> Option<std::net::SocketAddr> {
        let ip = match &t.host {
            crate::config::SyslogHost::Ip(ip) => Some(*ip),
            crate::config::SyslogHost::Name(n) => self
                .hosts
                .lookup(n)
                .and_then(|ips| ips.first().copied())
                .or_else(|| {
                    let target = dns::resolver::Target::Addr {
                        name: n.to_string(),
                        port: t.port.get(),
                    };
                    self.discovered
                        .good
                        .get(&target)
                        .and_then(|v| v.first())
                        .map(|(a, _)| a.ip())
                }),
        };
        match ip {
            Some(ip) => Some(std::net::SocketAddr::new(ip, t.port.get())),
            None => {
                log::debug!("syslog: {t} is not resolved yet");
                None
            }
        }
    }

    /// Publishes the running configuration again after DNS or health
    /// changed what is usable.
    fn rebuild(&mut self, seen: Instant) {
        if let Some(config) = self.config.clone() {
            let snap = self.build(&config);
            self.publish(snap, seen);
        }
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
            if self.hold.take().is_some() {
                log::info!("upgrade: every backend checked ({up} up, {down} down); accepting");
                self.rebuild(now);
            }
            self.settled_note = Some((
                self.snapshot.generation,
                format!("health: every backend checked ({up} up, {down} down)"),
            ));
            self.log_settled();
        }
    }

    fn log_settled(&mut self) {
        let everywhere = self.worker_gen.iter().copied().min().unwrap_or(0);
        if self
            .settled_note
            .as_ref()
            .is_some_and(|(g, _)| *g <= everywhere)
        {
            if let Some((_, note)) = self.settled_note.take() {
                log::info!("{note}");
            }
        }
    }

    fn publish(&mut self, snap: Arc<Snapshot>, seen: Instant) {
        if let Some(until) = self.hold {
            if Instant::now() < until {
                // Checks first; the inherited accept queues wait.
                return;
            }
            self.hold = None;
        }
        let changes = publish::describe_changes(&self.snapshot, &snap);
        // A service that is gone has nothing left to listen on.
        self.not_listening
            .retain(|(port, _), _| snap.service(*port).is_some());
        for s in &snap.services {
            let before = self.snapshot.service(s.port()).map(|o| &o.no_backends);
            match &s.no_backends {
                Some(why) if before != Some(&s.no_backends) => {
                    // Before a service has ever had a backend (the first
                    // checks of a start or a new service) this is the
                    // normal way up, not an outage.
                    if self.served.contains(&s.port()) {
                        log::warn!("service {}: no backends: {why}", s.spec);
                        self.outage.insert(s.port());
                    } else {
                        log::info!("service {}: no backends yet: {why}", s.spec);
                    }
                }
                Some(_) => {}
                None => {
                    self.served.insert(s.port());
                    if self.outage.remove(&s.port()) {
                        log::info!(
                            "service {}: serving again ({} backends)",
                            s.spec,
                            s.backends.len()
                        );
                    }
                }
            }
        }
        self.served.retain(|p| snap.service(*p).is_some());
        self.outage.retain(|p| snap.service(*p).is_some());
        let mut sent = 0;
        for w in &self.workers {
            if w.send(ToWorker::Snapshot(Arc::clone(&snap))) {
                sent += 1;
            }
        }
        if sent == 0 {
            log::error!(
                "no worker is running to take generation {}",
                snap.generation
            );
        }
        self.pending
            .insert(snap.generation, Pending { seen, changes });
        let ports: Vec<u16> = snap.services.iter().map(|s| s.port()).collect();
        self.exporter.retain(&ports);
        self.snapshot = snap;
    }

    fn collect_reports(&mut self) {
        while let Ok(r) = self.reports.try_recv() {
            match r {
                FromWorker::Applied {
                    worker,
                    generation,
                    at,
                } => {
                    // A worker applies only the newest snapshot it finds, so
                    // an ack for N also stands for every generation before.
                    if let Some(g) = self.worker_gen.get_mut(worker) {
                        *g = (*g).max(generation);
                    }
                    let everywhere = self.worker_gen.iter().copied().min().unwrap_or(0);
                    let mut done: Vec<u64> = self
                        .pending
                        .keys()
                        .copied()
                        .filter(|g| *g <= everywhere)
                        .collect();
                    done.sort_unstable();
                    for g in done {
                        let Some(p) = self.pending.remove(&g) else {
                            continue;
                        };
                        let took = at.saturating_duration_since(p.seen);
                        self.applied_at = Some(std::time::SystemTime::now());
                        if self.reload.waiting == Some(ReloadPhase::Applied(g)) {
                            let what = if p.changes.is_empty() {
                                "no service changes".to_owned()
                            } else {
                                p.changes.join("; ")
                            };
                            self.reload
                                .complete(format!("generation {g} applied: {what}"));
                        }
                        log::info!(
                            "generation {g} applied by {} workers in {:.1} ms: {}",
                            self.workers.len(),
                            took.as_secs_f64() * 1000.0,
                            if p.changes.is_empty() {
                                "no service changes".to_owned()
                            } else {
                                p.changes.join("; ")
                            }
                        );
                    }
                }
                FromWorker::ListenFailed {
                    worker: _,
                    port,
                    addr,
                    error,
                } => {
                    // Every worker retries every 2 s: said once, again when
                    // the reason changes, and every few minutes.
                    let now = Instant::now();
                    let entry = self.not_listening.entry((port, addr));
                    let say = match &entry {
                        std::collections::hash_map::Entry::Occupied(o) => {
                            o.get().0 != error || now >= o.get().1 + NOT_LISTENING_REPEAT
                        }
                        std::collections::hash_map::Entry::Vacant(_) => true,
                    };
                    if say {
                        log::error!(
                            "NOT LISTENING: port {port}{}: {error} (retrying every 2 s)",
                            addr.map(|a| format!(" on {a}")).unwrap_or_default()
                        );
                        entry.insert_entry((error, now));
                    }
                }
                FromWorker::Listening { port, addr } => {
                    if self.not_listening.remove(&(port, addr)).is_some() {
                        log::info!(
                            "listening on port {port}{} again",
                            addr.map(|a| format!(" on {a}")).unwrap_or_default()
                        );
                    }
                }
                FromWorker::Exited { worker, cut } => {
                    log::warn!("worker {worker} exited unexpectedly ({cut} sessions open)");
                }
                FromWorker::Latency(batch) => self.exporter.merge(batch),
                FromWorker::Listeners(l) => self.handed.extend(l),
            }
        }
        self.log_settled();
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
