//! What the control thread hands to the workers: one immutable,
//! generation-numbered picture of everything that should run.
//!
//! A worker swaps a new [`Snapshot`] in between event batches, in one step.
//! Running sessions keep the `Arc<Backend>` they started with, so a backend
//! removed from the set finishes its connections undisturbed. The only
//! mutable state in here is per-backend atomics (active connections), shared
//! by the workers and touched once per connection, never per byte.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{Service, Timeouts};
use crate::metrics::stats::Sharded;

/// One backend address of one service.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    weight: u16,
    /// Its sticky-cookie value, computed once when the snapshot is built.
    cookie: [u8; 16],
    /// The value Moirai's own key gives it, honoured as well (equal to
    /// `cookie` when the service has no health-check parameters).
    moirai_cookie: [u8; 16],
    /// Its place among the service's backends by sorted address, from 1:
    /// the `N` of HAProxy's server name `rsN`. Set by the control thread
    /// when it builds a snapshot (an address that moves keeps its `Arc`,
    /// and with it its count of open connections); read for log lines.
    slot: std::sync::atomic::AtomicU16,
    /// Drained by an operator: only sticky clients still reach it. Set by
    /// the control thread like `slot`.
    draining: std::sync::atomic::AtomicBool,
    active: AtomicUsize,
    /// Its counters, kept across generations by the builder.
    stats: Arc<Sharded>,
}

impl Backend {
    /// A backend at `addr` with weight 1 and no connections.
    pub fn new(addr: SocketAddr) -> Backend {
        Backend::with_weight(addr, 1)
    }

    /// A backend with a weight (from SRV), at least 1.
    pub fn with_weight(addr: SocketAddr, weight: u16) -> Backend {
        Backend {
            addr,
            weight: weight.max(1),
            cookie: [0; 16],
            moirai_cookie: [0; 16],
            slot: std::sync::atomic::AtomicU16::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            active: AtomicUsize::new(0),
            stats: Arc::new(Sharded::new(1)),
        }
    }

    /// The same backend, counting into `stats`.
    pub fn with_stats(mut self, stats: Arc<Sharded>) -> Backend {
        self.stats = stats;
        self
    }

    /// Its counters, shared.
    pub fn stats_arc(&self) -> &Arc<Sharded> {
        &self.stats
    }

    /// Its counters.
    #[inline]
    pub fn stats(&self) -> &Sharded {
        &self.stats
    }

    /// The same backend, named by `cookie` in sticky sessions and also
    /// by `moirai_cookie` (see `proto::cookie`).
    pub fn with_cookie(mut self, cookie: [u8; 16], moirai_cookie: [u8; 16]) -> Backend {
        self.cookie = cookie;
        self.moirai_cookie = moirai_cookie;
        self
    }

    /// The value of the sticky cookie that names this backend.
    pub fn cookie(&self) -> &[u8; 16] {
        &self.cookie
    }

    /// Names it server `rs{slot}` from now on.
    pub fn set_slot(&self, slot: u16) {
        self.slot.store(slot, Ordering::Relaxed);
    }

    /// Drains it (only sticky clients) or not.
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Relaxed);
    }

    /// Whether only sticky clients may reach it.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Its place by sorted address, from 1 (0: none given).
    pub fn slot(&self) -> u16 {
        self.slot.load(Ordering::Relaxed)
    }

    /// Whether a client's sticky cookie names this backend.
    #[inline]
    pub fn named_by(&self, value: &[u8; 16]) -> bool {
        self.cookie == *value || self.moirai_cookie == *value
    }

    /// Its share relative to the others (1 unless SRV says otherwise).
    pub fn weight(&self) -> u16 {
        self.weight
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open to it now, over all workers.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// A counted use of a backend: created when a session picks it, and the
/// count drops when the lease does.
#[derive(Debug)]
pub struct BackendLease(Arc<Backend>);

impl BackendLease {
    /// Counts one more connection on `backend`.
    pub fn acquire(backend: &Arc<Backend>) -> BackendLease {
        backend.active.fetch_add(1, Ordering::Relaxed);
        BackendLease(Arc::clone(backend))
    }

    /// The backend leased.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for BackendLease {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a service has no backend to offer right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBackends {
    /// The name could not be resolved (yet).
    Unresolved(String),
    /// The name resolved to nothing, and why (NXDOMAIN, NODATA, no SRV).
    Empty(String),
    /// Every backend fails its health checks (or has not passed them yet).
    AllDown(usize),
}

impl std::fmt::Display for NoBackends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoBackends::Unresolved(why) => write!(f, "unresolved: {why}"),
            NoBackends::Empty(why) if why.is_empty() => f.write_str("the name has no addresses"),
            NoBackends::Empty(why) => write!(f, "the name has no backends: {why}"),
            NoBackends::AllDown(n) => write!(f, "all {n} backends are down"),
        }
    }
}

/// The TLS of a service: the server side for every TLS type, and for
/// `https`/`https+insecure` the client side towards the backends.
#[derive(Debug, Clone)]
pub struct ServiceTls {
    /// Terminates the clients' TLS.
    pub server: Arc<rustls::ServerConfig>,
    /// Speaks TLS to the backends, with the name to send and verify.
    pub client: Option<Arc<BackendTls>>,
}

/// A service's TLS towards its backends: the client configuration (its
/// verification rules), the name sent (SNI) and verified, and that name's
/// hash, computed once here for the idle pool's key. A backend TLS
/// connection holds it: the context it was made in.
#[derive(Debug)]
pub struct BackendTls {
    /// The client configuration.
    pub config: Arc<rustls::ClientConfig>,
    /// The name sent and verified.
    pub name: rustls::pki_types::ServerName<'static>,
    /// `name` hashed.
    pub name_key: u64,
}

impl BackendTls {
    /// `config` for `name`.
    pub fn new(
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> BackendTls {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        BackendTls {
            config,
            name,
            name_key: h.finish(),
        }
    }

    /// Whether this is the same context as `other`: the same
    /// configuration (by identity) and the same name. Snapshots rebuild
    /// this value; the configurations live as long as the certificates.
    pub fn same_as(&self, other: &BackendTls) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.name == other.name
    }
}

/// A service as the workers run it.
#[derive(Debug)]
pub struct ServiceSnapshot {
    /// The portmap entry.
    pub spec: Service,
    /// Its place in the portmap (after refused entries are left out): the
    /// `N` of HAProxy's `feN`/`beN` in logs and `haproxy_*` metrics.
    pub index: usize,
    /// Timeouts in force for new sessions.
    pub timeouts: Timeouts,
    /// Usable backends (resolved, at most `max_rs`, passing their health
    /// checks), in a stable order.
    pub backends: Vec<Arc<Backend>>,
    /// Set when `backends` is empty, saying why.
    pub no_backends: Option<NoBackends>,
    /// The service's own counters (client side), kept across generations.
    pub stats: Arc<Sharded>,
    /// TLS, for the https types.
    pub tls: Option<ServiceTls>,
    /// Pending ACME HTTP-01 challenges (token → key authorization), served
    /// by `http` services before any proxying; empty almost always.
    pub acme: Arc<HashMap<String, String>>,
}

impl ServiceSnapshot {
    /// The listen port.
    pub fn port(&self) -> u16 {
        self.spec.listen.get()
    }
}

/// Where access lines go, when the `syslog` key is set and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSpec {
    /// The remote collector (the `syslog` key), if any.
    pub addr: Option<SocketAddr>,
    /// The local access-log writer (`--access-log`), if any: a pipe to
    /// the control plane's thread that appends to the file.
    pub local: Option<crate::sys::logfile::LocalLog>,
    /// Hostname and pid for the header.
    pub origin: Arc<crate::proto::syslog::Origin>,
    /// RFC 3164 with HAProxy's text (default) or RFC 5424.
    pub format: crate::proto::syslog::Format,
}

/// The whole configuration the workers run.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one with every published change.
    pub generation: u64,
    /// Services, listen ports all distinct.
    pub services: Vec<Arc<ServiceSnapshot>>,
    /// Remote syslog for access lines; none means no lines are produced.
    pub syslog: Option<SyslogSpec>,
}

impl Snapshot {
    /// The service on `port`, if any.
    pub fn service(&self, port: u16) -> Option<&Arc<ServiceSnapshot>> {
        self.services.iter().find(|s| s.port() == port)
    }
}
