//! What a scrape sees: the services, backends and control plane as the
//! control thread lends them to the exposition ([`super::export`]) and its
//! HAProxy-named families ([`super::haproxy`]).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::stats::Sharded;

/// One backend as the scrape sees it.
#[derive(Debug)]
pub struct BackendView<'a> {
    /// Its address.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: &'a Sharded,
    /// Open connections now.
    pub active: usize,
    /// Whether it passes its health checks.
    pub up: bool,
    /// Latency of the latest passing check.
    pub check_latency: Option<Duration>,
    /// Checks run and failed.
    pub checks: (u64, u64),
    /// The last check's result as HAProxy names it (`L4OK`, `L7STS`...;
    /// one of [`super::haproxy::CHECK_STATES`]), none before the first.
    pub check_state: Option<&'static str>,
    /// Its share relative to the others (1 unless SRV says otherwise).
    pub weight: u16,
    /// When its health last changed (or it appeared).
    pub since: Option<SystemTime>,
    /// How many times its health changed.
    pub transitions: u64,
    /// How long it has been down in all, the current stretch included.
    pub downtime: Duration,
}

/// One service as the scrape sees it.
#[derive(Debug)]
pub struct ServiceView<'a> {
    /// Listen port.
    pub port: u16,
    /// Service type.
    pub kind: &'static str,
    /// Its client-side counters.
    pub stats: &'a Sharded,
    /// Its backends, usable or not.
    pub backends: Vec<BackendView<'a>>,
    /// Whether all its listeners are open.
    pub listening: bool,
    /// Average response time of recent requests, in seconds.
    pub response_average: Option<f64>,
    /// Average connect time of recent backend connects, in seconds.
    pub connect_average: Option<f64>,
}

/// One DNS name's lookups.
#[derive(Debug)]
pub struct DnsView<'a> {
    /// The name.
    pub name: &'a str,
    /// Lookups, failed lookups, addresses in the last good answer.
    pub queries: u64,
    /// Failed lookups.
    pub failures: u64,
    /// Addresses in the last good answer.
    pub answers: usize,
}

/// The control plane and process as the scrape sees them.
#[derive(Debug, Default)]
pub struct ControlView<'a> {
    /// Running generation.
    pub generation: u64,
    /// When every worker had it.
    pub applied: Option<SystemTime>,
    /// Current configuration errors by key.
    pub config_errors: Vec<(&'a str, usize)>,
    /// DNS names.
    pub dns: Vec<DnsView<'a>>,
    /// Failed metadata reads.
    pub metadata_errors: u64,
    /// Syslog lines sent and dropped.
    pub syslog: (u64, u64),
    /// Process start.
    pub started: Option<SystemTime>,
    /// Expiry of the certificate served for each name.
    pub certs: Vec<(&'a str, SystemTime)>,
    /// ACME orders started and failed, once ACME runs.
    pub acme: Option<(u64, u64)>,
    /// Worker threads.
    pub workers: usize,
    /// Whether the process is draining to stop.
    pub stopping: bool,
}
