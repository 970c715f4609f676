//! What the control thread holds, and how `moirai run` builds it.
//!
//! [`Control`] (the subsystems and the configuration they serve) and
//! [`Loop`] (what the loop polls besides them) are defined here, with
//! [`start`], which builds both from [`Options`]: the loop (`mod.rs`) and
//! the upgrade (`upgrade.rs`) each implement their part of `Control` and
//! import it from here, never from each other. What an upgrade hands the
//! next program at start (its stand-in's pid, the metadata it ran with)
//! is read here too, before any thread starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::options::{Options, RunError};
use super::token::{self, ControlToken};
use super::{
    accesslog, certs, commands, dns, errlog, health, hosts, intake, preflight, publish, reload,
    report, rollout, status,
};
use crate::engine::worker::{self, ListenConfig};
use crate::metadata::reader;
use crate::metrics::server::MetricsServer;
use crate::sys::net::SharedListeners;
use crate::sys::poll::{Events, Poll, Registry, Waker};
use crate::sys::rlimit;
use crate::sys::signals::Signals;

/// How long one nameserver gets to answer before the next is asked.
const DNS_TIMEOUT: Duration = Duration::from_secs(1);
/// After an upgrade, how long the workers wait for every backend's first
/// check before they get a configuration anyway.
const UPGRADE_HOLD: Duration = Duration::from_secs(5);
/// Names, to the upgraded program, the stand-in it must stop once it
/// serves.
pub(super) const STANDIN_ENV: &str = "MOIRAI_STANDIN_PID";
/// Tells a stand-in which process it stands in for: if that one dies
/// (killed mid-upgrade), nothing would ever stop the stand-in.
pub(super) const STANDIN_OF_ENV: &str = "MOIRAI_STANDIN_OF";

/// Where access lines and the error log go.
pub(super) struct Logs {
    /// Errors per service per interval, to a local file.
    pub(super) errors: errlog::ErrorLog,
    /// The local access-log writer, if `--access-log` is set.
    pub(super) access: Option<accesslog::AccessLog>,
    /// The remote syslog format.
    pub(super) format: crate::proto::syslog::Format,
    /// This host, for syslog headers.
    pub(super) origin: Arc<crate::proto::syslog::Origin>,
}

/// The control thread's state: its subsystems, and the configuration they
/// serve.
pub(super) struct Control {
    /// The metadata source, on its own thread.
    pub(super) source: reader::Reader,
    pub(super) hosts: hosts::Hosts,
    pub(super) builder: publish::Builder,
    pub(super) health: health::Checks,
    /// The control poll's registry, for health-check sockets.
    pub(super) registry: Registry,
    pub(super) rollout: rollout::Rollout,
    pub(super) dns: dns::Discovery,
    pub(super) certs: certs::Certificates,
    pub(super) admins: commands::Admins,
    pub(super) reload: reload::Reloads,
    pub(super) observed: report::Observed,
    pub(super) logs: Logs,
    /// The metadata and the configuration it gave.
    pub(super) configured: intake::Configured,
    /// Why moirai must stop at start (exit 96), once known.
    pub(super) fatal: Option<String>,
    /// `--listen-address`es; empty means all.
    pub(super) listen_addresses: Vec<std::net::IpAddr>,
    /// How long a stop lets connections finish (`--grace`, or
    /// `config/grace` re-read on refresh).
    pub(super) grace: Duration,
    /// The new program being checked before an upgrade.
    pub(super) preflight: Option<preflight::Preflight>,
    /// The new program passed its pre-flight: hand the listeners over and
    /// exec it.
    pub(super) upgrade: Option<PathBuf>,
    /// How workers open listeners, and where they report: to start new
    /// ones if an upgrade's exec fails.
    pub(super) listen: ListenConfig,
    pub(super) reporter: worker::Reporter,
    /// How many workers run.
    pub(super) workers: usize,
    /// The program running, and its identity when it started, to notice
    /// a new binary at refresh.
    pub(super) exe: Option<(PathBuf, (u64, u64, i64))>,
    /// `--state-dir`.
    pub(super) state_dir: PathBuf,
    /// During an upgrade: the stand-in this program started to serve on
    /// the listeners while its own connections drain.
    pub(super) standin: Option<std::process::Child>,
    /// After an upgrade: the previous program's stand-in, to be told to
    /// drain once this program serves (`Some(false)`) and reaped when it
    /// has (`Some(true)`).
    pub(super) previous: Option<(u32, bool)>,
    /// When this program is an upgrade's stand-in: the process it stands
    /// in for (its parent).
    pub(super) standin_of: Option<u32>,
}

/// What the loop polls besides the subsystems' own sockets.
pub(super) struct Loop {
    pub(super) poll: Poll,
    pub(super) events: Events,
    pub(super) signals: Signals,
    pub(super) status: Option<status::StatusServer>,
    pub(super) metrics: MetricsServer,
    pub(super) startup_timeout: Duration,
}

impl Loop {
    pub(super) fn has(&self, t: ControlToken) -> bool {
        self.events
            .iter()
            .any(|e| ControlToken::of(e.token()) == Some(t))
    }
}

/// Sets everything up: the state directory, the descriptor limit, the
/// workers, the helper threads (metadata, DNS), the control and metrics
/// sockets.
pub(super) fn start(opts: Options) -> Result<(Control, Loop), RunError> {
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

/// Descriptors kept aside for everything that is not a session: polls,
/// wakers, listeners, the metadata source, logs.
const RESERVED_FDS: u64 = 64;

/// How many sessions each worker may hold within the descriptor limit
/// (two descriptors per session), at least one.
pub fn sessions_per_worker(nofile: u64, workers: usize) -> usize {
    let spare = nofile.saturating_sub(RESERVED_FDS + 4 * workers as u64);
    ((spare / 2) as usize / workers.max(1)).max(1)
}

/// Where an upgrade leaves the running configuration's metadata.
pub(super) fn metadata_carry_path(state_dir: &Path, standin: bool) -> PathBuf {
    state_dir.join(if standin {
        "metadata-carry.standin.json"
    } else {
        "metadata-carry.json"
    })
}

/// The metadata an upgrade left, read once and removed; none if missing,
/// unreadable or written more than 10 minutes ago (a leftover).
fn take_metadata_carry(path: &Path) -> Option<crate::config::Metadata> {
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
