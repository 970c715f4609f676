//! What `moirai run` is given ([`Options`], from the command line in
//! `main.rs`) and why it can fail to start ([`RunError`], with its exit
//! status for SMF). The loop that runs with them is `mod.rs`.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::{accesslog, certs};
use crate::metadata::Source;
use crate::sys::net::ListenMode;

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
