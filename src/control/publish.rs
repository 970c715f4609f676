//! Building snapshots: one function of the configuration, the hosts
//! file, DNS answers, health verdicts, certificates, operator states and
//! the syslog destination. Delivering them to the workers is
//! `rollout.rs`'s.
//!
//! Backends are kept by (service port, address) across generations, so a
//! backend that stays in the set keeps its `Arc` and with it the live
//! connection count that least-connections balancing reads.
//!
//! **Make before break.** When a configuration or DNS change replaces every
//! backend of a service at once (a blue/green swap), the new ones start
//! down until their checks pass. So that the service is never left with no
//! backend while the old ones still answer, the replaced backends stay in
//! rotation (and keep being checked) while they are up, until one new
//! backend is up or [`RETIRE_LIMIT`] has passed. A set emptied outright (a
//! name gone from DNS) is not a swap: it empties the service at once. The alternative, starting
//! new backends as up (HAProxy's start-up behaviour), would send requests
//! to instances that may still be booting; keeping the old ones sends them
//! only to instances known to answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dns::{dns_target, Discovered};
use super::health::{CheckSpec, Checks, Key};
use super::hosts::Hosts;
use crate::config::{BackendTarget, Config, Service, ServiceKind};
use crate::metrics::stats::Sharded;
use crate::proto::cookie;
use crate::proto::syslog::{Format, Origin};
use crate::snapshot::{
    Backend, BackendTls, NoBackends, ServiceSnapshot, ServiceTls, Snapshot, SyslogSpec,
};
use crate::sys::logfile::LocalLog;

/// What a snapshot is built from, besides the configuration.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// Names from the hosts file.
    pub hosts: &'a Hosts,
    /// What DNS discovery knows.
    pub dns: &'a Discovered,
    /// Health of every checked backend.
    pub health: &'a Checks,
    /// Certificates and TLS configs, when TLS services exist.
    pub tls: Option<&'a TlsMaterial>,
    /// Pending ACME HTTP-01 answers.
    pub acme: &'a Arc<HashMap<String, String>>,
    /// The time of the build (make-before-break deadlines).
    pub now: Instant,
    /// Backends an operator put in maintenance or drain
    /// (`moirai backend disable|drain`).
    pub admin: &'a HashMap<(u16, SocketAddr), Admin>,
    /// What the syslog destination is made of besides the `syslog` key.
    pub syslog: SyslogInputs<'a>,
}

/// What a snapshot's syslog destination is made of besides the `syslog`
/// key (its name resolves through the hosts file and DNS, as backends do).
#[derive(Clone, Copy)]
pub struct SyslogInputs<'a> {
    /// The local access-log writer (`--access-log`), if any.
    pub local: Option<&'a LocalLog>,
    /// This host and process, for the line headers.
    pub origin: &'a Arc<Origin>,
    /// The line format (`--syslog-format`).
    pub format: Format,
}

/// What an operator set for one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admin {
    /// No traffic at all (HAProxy's MAINT); open connections finish.
    Disable,
    /// Only clients whose sticky cookie names it (HAProxy's DRAIN).
    Drain,
}

/// Builds generation-numbered snapshots.
#[derive(Debug)]
pub struct Builder {
    generation: u64,
    /// Every resolved backend, usable or not, so one that goes down and up
    /// again keeps its `Arc` (and its count of open connections).
    backends: HashMap<Key, Arc<Backend>>,
    /// How each of them is to be health-checked.
    checks: Vec<(Key, CheckSpec)>,
    /// Counters by service port and by backend, kept while they exist so
    /// a reconfiguration or a weight change does not reset them.
    service_stats: HashMap<u16, Arc<Sharded>>,
    backend_stats: HashMap<Key, Arc<Sharded>>,
    workers: usize,
    /// The usable backends of each service in the last snapshot.
    last_usable: HashMap<u16, Vec<Arc<Backend>>>,
    /// Replaced backends kept in rotation, by service port, since when.
    retiring: HashMap<u16, (Instant, Vec<Arc<Backend>>)>,
    /// Backends gone from every service that still carry connections
    /// (`tcp` connections keep their backend), for `moirai status`.
    gone: Vec<(u16, Arc<Backend>)>,
}

/// How long replaced backends stay in rotation while no new one is up.
pub const RETIRE_LIMIT: Duration = Duration::from_secs(10);

impl Builder {
    /// A builder whose backends carry counters sharded for `workers`
    /// workers.
    pub fn new(workers: usize) -> Builder {
        Builder {
            generation: 0,
            backends: HashMap::new(),
            checks: Vec::new(),
            service_stats: HashMap::new(),
            backend_stats: HashMap::new(),
            workers,
            last_usable: HashMap::new(),
            retiring: HashMap::new(),
            gone: Vec::new(),
        }
    }

    /// When the earliest make-before-break ends: the snapshot must then be
    /// built again without those backends.
    pub fn next_retirement(&self) -> Option<Instant> {
        self.retiring
            .values()
            .map(|(since, _)| *since + RETIRE_LIMIT)
            .min()
    }

    /// Whether the backend of the service on `port` at `addr` is a
    /// replaced one kept in rotation.
    pub fn is_retiring(&self, port: u16, addr: SocketAddr) -> bool {
        self.retiring
            .get(&port)
            .is_some_and(|(_, l)| l.iter().any(|b| b.addr() == addr))
    }

    /// Backends removed from the service on `port` that still hold
    /// connections.
    pub fn gone(&self, port: u16) -> impl Iterator<Item = &Arc<Backend>> {
        self.gone
            .iter()
            .filter(move |(p, b)| *p == port && b.active() > 0)
            .map(|(_, b)| b)
    }
}

/// Everything the TLS service types need, shared by every generation.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The certificates served, by SNI.
    pub store: Arc<crate::tls::certs::CertStore>,
    /// The server side of every TLS service.
    pub server: Arc<rustls::ServerConfig>,
    /// The same, without HTTP/2 (`h2:off`).
    pub server_h1: Arc<rustls::ServerConfig>,
    /// The `https` backend side: the chain verified, not the name (an
    /// unusable trust store gives one that trusts nothing).
    pub verified: Arc<rustls::ClientConfig>,
    /// The `https` backend side with `verify_host:NAME`: the name too.
    pub strict: Arc<rustls::ClientConfig>,
    /// The `https+insecure` backend side.
    pub insecure: Arc<rustls::ClientConfig>,
}

/// The name `https` sends as SNI and verifies: the portmap's backend name.
fn backend_server_name(t: &BackendTarget) -> Option<rustls::pki_types::ServerName<'static>> {
    match t {
        BackendTarget::Ip(a) => Some(rustls::pki_types::ServerName::IpAddress(a.ip().into())),
        BackendTarget::Dns { name, .. } | BackendTarget::Srv { name } => {
            rustls::pki_types::ServerName::try_from(name.to_string()).ok()
        }
    }
}

impl Builder {
    /// Every backend of the service on `port` in the last snapshot, usable
    /// or not, in the snapshot's order.
    pub fn candidates(&self, port: u16) -> impl Iterator<Item = &Arc<Backend>> {
        self.checks
            .iter()
            .filter(move |(k, _)| k.0 == port)
            .filter_map(|(k, _)| self.backends.get(k))
    }

    /// The health checks the last snapshot's backends need, usable or not.
    pub fn check_specs(&self) -> Vec<(Key, CheckSpec)> {
        self.checks.clone()
    }

    /// The snapshot for `config`: names from the hosts file first, then
    /// DNS; of those, the backends the health checks say are up; and where
    /// syslog goes. Each step is one function below.
    pub fn build(&mut self, config: &Config, inputs: &Inputs<'_>) -> Snapshot {
        self.generation += 1;
        let mut round = Round {
            previous: std::mem::take(&mut self.checks).into_iter().collect(),
            ..Round::default()
        };
        let mut services = Vec::with_capacity(config.services().len());
        for (index, spec) in config.services().iter().enumerate() {
            // Without certificates a TLS service cannot start; the
            // control loop reports it.
            let Some(tls) = service_tls(spec, inputs.tls) else {
                continue;
            };
            services.push(self.service(config, index, spec, tls, inputs, &mut round));
        }
        self.keep(round);
        Snapshot {
            generation: self.generation,
            services,
            syslog: syslog_spec(config, inputs),
        }
    }

    /// One service of the snapshot: its backends resolved, made or kept,
    /// checked and filtered, kept in rotation through a swap, and why it
    /// has none.
    fn service(
        &mut self,
        config: &Config,
        index: usize,
        spec: &Service,
        service_tls: Option<ServiceTls>,
        inputs: &Inputs<'_>,
        round: &mut Round,
    ) -> Arc<ServiceSnapshot> {
        let port = spec.listen.get();
        let (addrs, no_backends) = resolve(config, spec, inputs.hosts, inputs.dns);
        let resolved = addrs.len();
        let resolved_addrs: Vec<SocketAddr> = addrs.iter().map(|(a, _)| *a).collect();
        let mut backends = self.backends(spec, addrs, service_tls.as_ref(), inputs, round);
        if backends.is_empty() && resolved > 0 {
            backends = self.keep_replaced(port, &resolved_addrs, inputs, round);
        }
        round.last_usable.insert(port, backends.clone());
        let no_backends = match no_backends {
            Some(n) => Some(n),
            None if resolved == 0 => Some(NoBackends::Empty(
                dns_target(&spec.backend)
                    .and_then(|t| inputs.dns.empty.get(&t).cloned())
                    .unwrap_or_default(),
            )),
            None if backends.is_empty() => Some(NoBackends::AllDown(resolved)),
            None => None,
        };
        let stats = Arc::clone(
            self.service_stats
                .entry(port)
                .or_insert_with(|| Arc::new(Sharded::new(self.workers))),
        );
        round.service_stats.insert(port, Arc::clone(&stats));
        Arc::new(ServiceSnapshot {
            index,
            acme: if spec.kind == ServiceKind::Http {
                Arc::clone(inputs.acme)
            } else {
                Arc::default()
            },
            tls: service_tls,
            stats,
            spec: spec.clone(),
            timeouts: *config.timeouts(),
            backends,
            no_backends,
        })
    }

    /// The usable backends at `addrs`: each kept (with its `Arc` and
    /// counters) if its weight and cookie are unchanged, made otherwise;
    /// numbered, marked draining, checked, and left out while down or
    /// disabled.
    fn backends(
        &mut self,
        spec: &Service,
        addrs: Vec<(SocketAddr, u16)>,
        service_tls: Option<&ServiceTls>,
        inputs: &Inputs<'_>,
        round: &mut Round,
    ) -> Vec<Arc<Backend>> {
        let port = spec.listen.get();
        let admin = inputs.admin;
        let host = match &spec.backend {
            BackendTarget::Ip(a) => a.to_string(),
            BackendTarget::Dns { name, .. } | BackendTarget::Srv { name } => name.to_string(),
        };
        // Sticky cookies are hashed here, once per build, not per
        // request: the same values on every balancer with this entry.
        let keys = cookie::Keys::of(spec);
        addrs
            .into_iter()
            .enumerate()
            .map(|(k, (a, w))| {
                // max_rs is at most 1024: the slot fits.
                let slot = (k + 1) as u16;
                let issued = cookie::value(&keys.issued, a);
                let b = match self.backends.get(&(port, a)) {
                    Some(b) if b.weight() == w.max(1) && *b.cookie() == issued => Arc::clone(b),
                    _ => Arc::new(
                        Backend::with_weight(a, w)
                            .with_cookie(issued, cookie::value(&keys.moirai, a))
                            .with_stats(Arc::clone(
                                self.backend_stats
                                    .entry((port, a))
                                    .or_insert_with(|| Arc::new(Sharded::new(self.workers))),
                            )),
                    ),
                };
                b.set_slot(slot);
                b.set_draining(admin.get(&(port, a)) == Some(&Admin::Drain));
                round
                    .backend_stats
                    .insert((port, a), Arc::clone(b.stats_arc()));
                round.backends.insert((port, a), Arc::clone(&b));
                // A service that only redirects never uses its
                // backends: nothing to check (and no checks sent to
                // servers that may not expect them).
                if spec.uses_backends() {
                    self.checks
                        .push(((port, a), check_spec(spec, a, &host, service_tls)));
                }
                b
            })
            .filter(|b| {
                inputs.health.is_up(&(port, b.addr()))
                    && admin.get(&(port, b.addr())) != Some(&Admin::Disable)
            })
            .collect()
    }

    /// Make before break (see the module doc), for a service whose
    /// resolved backends are all down: the ones it replaced stay in
    /// rotation, and checked as before, until [`RETIRE_LIMIT`]; returns
    /// those up. Only while replacements exist: a name that vanished
    /// (NXDOMAIN) is an operator's "no traffic", not a swap.
    fn keep_replaced(
        &mut self,
        port: u16,
        resolved_addrs: &[SocketAddr],
        inputs: &Inputs<'_>,
        round: &mut Round,
    ) -> Vec<Arc<Backend>> {
        let now = inputs.now;
        let (since, mut list) = self.retiring.remove(&port).unwrap_or((now, Vec::new()));
        if now >= since + RETIRE_LIMIT {
            return Vec::new();
        }
        for b in self.last_usable.get(&port).into_iter().flatten() {
            if !list.iter().any(|r| r.addr() == b.addr()) {
                list.push(Arc::clone(b));
            }
        }
        list.retain(|b| {
            let key = (port, b.addr());
            let Some(spec) = round.previous.get(&key) else {
                return false;
            };
            if resolved_addrs.contains(&b.addr()) {
                return false;
            }
            self.checks.push((key, spec.clone()));
            round.backends.insert(key, Arc::clone(b));
            round.backend_stats.insert(key, Arc::clone(b.stats_arc()));
            true
        });
        let up = list
            .iter()
            .filter(|b| inputs.health.is_up(&(port, b.addr())))
            .map(Arc::clone)
            .collect();
        if !list.is_empty() {
            round.retiring.insert(port, (since, list));
        }
        up
    }

    /// Ends a build: what it kept replaces what the builder held, and
    /// backends leaving every service are remembered while they still
    /// carry connections.
    fn keep(&mut self, round: Round) {
        for (key, b) in self.backends.drain() {
            if !round.backends.contains_key(&key) && b.active() > 0 {
                self.gone.push((key.0, b));
            }
        }
        self.gone
            .retain(|(p, b)| b.active() > 0 && !round.backends.contains_key(&(*p, b.addr())));
        self.backends = round.backends;
        self.last_usable = round.last_usable;
        self.retiring = round.retiring;
        self.service_stats = round.service_stats;
        self.backend_stats = round.backend_stats;
    }
}

/// One build under way: how the last snapshot checked each backend (a
/// replaced one kept in rotation goes on being checked the same way), and
/// what this build keeps for the next, filled service by service and
/// swapped in at its end ([`Builder::keep`]).
#[derive(Default)]
struct Round {
    previous: HashMap<Key, CheckSpec>,
    backends: HashMap<Key, Arc<Backend>>,
    last_usable: HashMap<u16, Vec<Arc<Backend>>>,
    retiring: HashMap<u16, (Instant, Vec<Arc<Backend>>)>,
    service_stats: HashMap<u16, Arc<Sharded>>,
    backend_stats: HashMap<Key, Arc<Sharded>>,
}

/// The TLS sides of `spec`: `Some(None)` for a plain service, `None` for
/// a TLS service without certificates (it cannot start).
fn service_tls(spec: &Service, tls: Option<&TlsMaterial>) -> Option<Option<ServiceTls>> {
    let server = |m: &TlsMaterial| Arc::clone(if spec.h2 { &m.server } else { &m.server_h1 });
    Some(match (spec.kind, tls) {
        (k, _) if !k.is_tls() => None,
        (_, None) => return None,
        (ServiceKind::HttpsHttp, Some(m)) => Some(ServiceTls {
            server: server(m),
            client: None,
        }),
        (k, Some(m)) => {
            let client = match (k, &spec.verify_host) {
                (ServiceKind::Https, Some(name)) => {
                    rustls::pki_types::ServerName::try_from(name.to_string())
                        .ok()
                        .map(|n| Arc::new(BackendTls::new(Arc::clone(&m.strict), n)))
                }
                (ServiceKind::Https, None) => backend_server_name(&spec.backend)
                    .map(|n| Arc::new(BackendTls::new(Arc::clone(&m.verified), n))),
                _ => backend_server_name(&spec.backend)
                    .map(|n| Arc::new(BackendTls::new(Arc::clone(&m.insecure), n))),
            };
            Some(ServiceTls {
                server: server(m),
                client,
            })
        }
    })
}

/// The addresses (and weights) `spec`'s backend entry stands for: an IP
/// literal, the hosts file, else DNS's last good answer; or why there are
/// none. A stable choice when there are more than `max_rs`: sorted order,
/// so every generation keeps the same ones.
fn resolve(
    config: &Config,
    spec: &Service,
    hosts: &Hosts,
    dns: &Discovered,
) -> (Vec<(SocketAddr, u16)>, Option<NoBackends>) {
    let from_hosts = match &spec.backend {
        BackendTarget::Dns { name, port } => hosts.lookup(name).map(|ips| {
            ips.iter()
                .map(|ip| (SocketAddr::new(*ip, port.get()), 1))
                .collect()
        }),
        _ => None,
    };
    let (mut addrs, no_backends): (Vec<(SocketAddr, u16)>, Option<NoBackends>) =
        match (&spec.backend, from_hosts) {
            (BackendTarget::Ip(a), _) => (vec![(*a, 1)], None),
            (_, Some(list)) => (list, None),
            (t, None) => {
                let target = dns_target(t).expect("names only here");
                match dns.good.get(&target) {
                    Some(list) => (list.clone(), None),
                    None if !dns.enabled => (
                        Vec::new(),
                        Some(NoBackends::Unresolved(format!(
                            "{} is not in the hosts file and DNS discovery is off",
                            target.name()
                        ))),
                    ),
                    None => (
                        Vec::new(),
                        Some(NoBackends::Unresolved(match dns.errors.get(&target) {
                            Some(e) => format!("{}: {e}", target.name()),
                            None => format!("{}: waiting for DNS", target.name()),
                        })),
                    ),
                }
            }
        };
    addrs.sort_by_key(|(a, _)| (matches!(a.ip(), IpAddr::V6(_)), *a));
    addrs.dedup_by_key(|(a, _)| *a);
    addrs.truncate(usize::from(config.max_rs()));
    (addrs, no_backends)
}

/// How the backend at `a` of `spec` is health-checked; `host` names it in
/// an HTTP check's `Host`.
fn check_spec(
    spec: &Service,
    a: SocketAddr,
    host: &str,
    service_tls: Option<&ServiceTls>,
) -> CheckSpec {
    CheckSpec {
        target: SocketAddr::new(a.ip(), spec.check.port.map_or(a.port(), |p| p.get())),
        http: spec
            .check
            .path
            .as_ref()
            .map(|p| (p.as_str().to_owned(), host.to_owned())),
        tls: service_tls
            .and_then(|t| t.client.as_deref())
            .map(|c| (Arc::clone(&c.config), c.name.clone())),
        // HAProxy's rule for a `send-proxy-v2` server: its checks send the
        // header too, unless they go to another port.
        proxy_v2: spec.kind == ServiceKind::TcpProxyV2
            && spec.check.port.is_none_or(|p| p.get() == a.port()),
        rise: spec.check.rise(),
        fall: spec.check.fall(),
    }
}

/// Where syslog goes: the `syslog` key's address, or its name from the
/// hosts file or DNS (a name not resolved yet means no remote syslog for
/// now), and the local access log.
fn syslog_spec(config: &Config, inputs: &Inputs<'_>) -> Option<SyslogSpec> {
    let local = inputs.syslog.local.cloned();
    let remote = config.syslog().and_then(|t| {
        let ip = match &t.host {
            crate::config::SyslogHost::Ip(ip) => Some(*ip),
            crate::config::SyslogHost::Name(n) => inputs
                .hosts
                .lookup(n)
                .and_then(|ips| ips.first().copied())
                .or_else(|| inputs.dns.address(n.as_str(), t.port.get())),
        };
        if ip.is_none() {
            log::debug!("syslog: {t} is not resolved yet");
        }
        ip.map(|ip| SocketAddr::new(ip, t.port.get()))
    });
    (remote.is_some() || local.is_some()).then(|| SyslogSpec {
        addr: remote,
        local,
        origin: Arc::clone(inputs.syslog.origin),
        format: inputs.syslog.format,
    })
}

/// What changed between two snapshots, one phrase per change, for the log.
pub fn describe_changes(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for s in &new.services {
        match old.service(s.port()) {
            None => out.push(format!("+{}", s.spec)),
            Some(o) if o.spec != s.spec => out.push(format!("~{} (was {})", s.spec, o.spec)),
            Some(o) => {
                let before: Vec<_> = o.backends.iter().map(|b| b.addr()).collect();
                let after: Vec<_> = s.backends.iter().map(|b| b.addr()).collect();
                if before != after {
                    out.push(format!(
                        ":{} backends {:?} -> {:?}",
                        s.port(),
                        before,
                        after
                    ));
                } else if o.timeouts != s.timeouts {
                    out.push(format!(":{} timeouts", s.port()));
                }
            }
        }
    }
    for o in &old.services {
        if new.service(o.port()).is_none() {
            out.push(format!("-{}", o.spec));
        }
    }
    if old.syslog != new.syslog {
        out.push(match &new.syslog {
            Some(s) => match (s.addr, &s.local) {
                (Some(a), Some(_)) => format!("syslog to {a} and the access log"),
                (Some(a), None) => format!("syslog to {a}"),
                (None, _) => "access log only".to_owned(),
            },
            None => "no syslog".to_owned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{keys, Metadata};

    fn config(portmap: &str) -> Config {
        let md: Metadata = [
            (keys::LOADBALANCER.to_owned(), "true".to_owned()),
            (keys::PORTMAP.to_owned(), portmap.to_owned()),
            (keys::MAX_RS.to_owned(), "32".to_owned()),
        ]
        .into_iter()
        .collect();
        Config::from_metadata(&md).0
    }

    /// Inputs without DNS, TLS or ACME, at `now`.
    fn inputs<'a>(hosts: &'a Hosts, health: &'a Checks, now: Instant) -> Inputs<'a> {
        static NONE: std::sync::OnceLock<Discovered> = std::sync::OnceLock::new();
        static ACME: std::sync::OnceLock<Arc<HashMap<String, String>>> = std::sync::OnceLock::new();
        static ADMIN: std::sync::OnceLock<HashMap<(u16, SocketAddr), Admin>> =
            std::sync::OnceLock::new();
        static ORIGIN: std::sync::OnceLock<Arc<Origin>> = std::sync::OnceLock::new();
        Inputs {
            hosts,
            dns: NONE.get_or_init(Discovered::default),
            health,
            tls: None,
            acme: ACME.get_or_init(Arc::default),
            now,
            admin: ADMIN.get_or_init(HashMap::new),
            syslog: SyslogInputs {
                local: None,
                origin: ORIGIN.get_or_init(|| Arc::new(Origin::new("test", 1))),
                format: Format::default(),
            },
        }
    }

    #[test]
    fn a_full_swap_keeps_the_old_backends_until_a_new_one_is_up() {
        let hosts = Hosts::load(std::path::Path::new("/nonexistent"));
        let mut b = Builder::new(1);
        let mut health = Checks::new(100);
        let t0 = Instant::now();
        let _ = b.build(&config("tcp://80:10.0.0.1:1"), &inputs(&hosts, &health, t0));
        for (k, s) in b.check_specs() {
            health.assume_up(k, s);
        }
        let s0 = b.build(&config("tcp://80:10.0.0.1:1"), &inputs(&hosts, &health, t0));
        assert_eq!(s0.services[0].backends.len(), 1);
        // Swap: the new backend starts down; the old one stays, checked.
        let s1 = b.build(&config("tcp://80:10.0.0.2:1"), &inputs(&hosts, &health, t0));
        let old: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let new: SocketAddr = "10.0.0.2:1".parse().unwrap();
        assert_eq!(s1.services[0].backends[0].addr(), old);
        assert!(Arc::ptr_eq(
            &s0.services[0].backends[0],
            &s1.services[0].backends[0]
        ));
        assert!(b.is_retiring(80, old));
        assert_eq!(b.check_specs().len(), 2);
        assert_eq!(b.next_retirement(), Some(t0 + RETIRE_LIMIT));
        // The new one passes its checks: the old one leaves.
        for (k, s) in b.check_specs() {
            if k.1 == new {
                health.assume_up(k, s);
            }
        }
        let s2 = b.build(&config("tcp://80:10.0.0.2:1"), &inputs(&hosts, &health, t0));
        assert_eq!(s2.services[0].backends[0].addr(), new);
        assert_eq!(s2.services[0].backends.len(), 1);
        assert!(!b.is_retiring(80, old) && b.next_retirement().is_none());
        // Another swap whose new backend never comes up: the old one
        // serves for RETIRE_LIMIT, then the service is empty.
        let s3 = b.build(&config("tcp://80:10.0.0.3:1"), &inputs(&hosts, &health, t0));
        assert_eq!(s3.services[0].backends[0].addr(), new);
        let late = t0 + RETIRE_LIMIT + Duration::from_millis(1);
        let s4 = b.build(
            &config("tcp://80:10.0.0.3:1"),
            &inputs(&hosts, &health, late),
        );
        assert!(s4.services[0].backends.is_empty());
        assert_eq!(s4.services[0].no_backends, Some(NoBackends::AllDown(1)));
    }

    #[test]
    fn backends_survive_generations_and_names_resolve_from_hosts() {
        let dir = std::env::temp_dir().join(format!("moirai-hosts-{}", std::process::id()));
        // 34 addresses, written highest first.
        let lines: String = (2..=35)
            .rev()
            .map(|i| format!("127.0.0.{i} web.test\n"))
            .collect();
        std::fs::write(&dir, lines).unwrap();
        let hosts = Hosts::load(&dir);
        let mut b = Builder::new(2);
        let portmap =
            "tcp://80:web.test:8080{port:9000,rise:3},tcp://81:10.0.0.1:1,tcp://82:srv.test";
        let mut health = Checks::new(100);
        let s0 = b.build(&config(portmap), &inputs(&hosts, &health, Instant::now()));
        // Nothing has passed a check yet: resolved, checked, not used.
        assert_eq!(s0.services[0].no_backends, Some(NoBackends::AllDown(32)));
        assert!(s0.services[0].backends.is_empty());
        let specs = b.check_specs();
        assert_eq!(specs.len(), 33, "{specs:?}");
        let (key, spec) = &specs[0];
        assert_eq!(key.1.to_string(), "127.0.0.2:8080");
        assert_eq!(spec.target.to_string(), "127.0.0.2:9000", "port: overrides");
        assert_eq!(spec.rise, 3);
        for (k, s) in specs {
            health.assume_up(k, s);
        }

        let s1 = b.build(&config(portmap), &inputs(&hosts, &health, Instant::now()));
        let web = &s1.services[0];
        // max_rs 32: the 32 lowest addresses, every time.
        let addrs: Vec<_> = web.backends.iter().map(|b| b.addr().to_string()).collect();
        let lowest: Vec<_> = (2..=33).map(|i| format!("127.0.0.{i}:8080")).collect();
        assert_eq!(addrs, lowest);
        assert!(matches!(
            s1.services[2].no_backends,
            Some(NoBackends::Unresolved(_))
        ));
        let s2 = b.build(
            &config("tcp://80:web.test:8080{port:9000,rise:3}"),
            &inputs(&hosts, &health, Instant::now()),
        );
        assert!(Arc::ptr_eq(
            &s1.services[0].backends[0],
            &s2.services[0].backends[0]
        ));
        assert_eq!(s2.generation, 3);
        let changes = describe_changes(&s1, &s2);
        assert_eq!(changes.len(), 2, "{changes:?}");
        std::fs::remove_file(dir).unwrap();
    }
}
