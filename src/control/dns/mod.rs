//! Backend discovery over DNS (Triton CNS): A/AAAA for `name:port`, SRV at
//! the same name for `name` alone, re-resolved when the TTL runs out.
//!
//! - [`wire`]: queries and checked answers, no I/O.
//! - [`resolver`]: nameservers, UDP with TCP fallback, lookups.
//! - [`watcher`]: the discovery thread, which keeps every name fresh and
//!   reports changes to the control loop.
//! - [`Discovery`]: the control loop's side: which names to watch, the last
//!   good answer of each, and why a name has none.
//! - [`carry`]: the last good answers, carried over an upgrade.

pub mod carry;
pub mod resolver;
pub mod watcher;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::SystemTime;

use super::hosts::Hosts;
use crate::config::{BackendTarget, Config, SyslogHost};
use resolver::Target;

/// What DNS discovery knows: the last good backends of each name, and the
/// last error of names that never resolved.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Last good answer per lookup.
    pub good: HashMap<Target, Vec<(SocketAddr, u16)>>,
    /// Why a lookup has no good answer yet.
    pub errors: HashMap<Target, wire::DnsError>,
    /// Why a good answer holds no backends.
    pub empty: HashMap<Target, String>,
    /// Whether discovery runs at all.
    pub enabled: bool,
}

impl Discovered {
    /// The first address `name` resolved to (for `name:port` lookups).
    pub fn address(&self, name: &str, port: u16) -> Option<IpAddr> {
        let target = Target::Addr {
            name: name.to_owned(),
            port,
        };
        self.good
            .get(&target)
            .and_then(|v| v.first())
            .map(|(a, _)| a.ip())
    }
}

/// The DNS lookup a backend entry needs, if any.
pub fn dns_target(t: &BackendTarget) -> Option<Target> {
    match t {
        BackendTarget::Ip(_) => None,
        BackendTarget::Dns { name, port } => Some(Target::Addr {
            name: name.to_string(),
            port: port.get(),
        }),
        BackendTarget::Srv { name } => Some(Target::Srv {
            name: name.to_string(),
        }),
    }
}

/// Discovery as the control loop runs it.
#[derive(Debug)]
pub struct Discovery {
    /// The discovery thread; none when no nameserver is known.
    watcher: Option<watcher::Watcher>,
    /// The names the configuration needs, sorted.
    watched: Vec<Target>,
    found: Discovered,
    /// Lookups and failed lookups per name.
    counts: HashMap<Target, (u64, u64)>,
    /// When each name last answered.
    answered: HashMap<Target, SystemTime>,
}

impl Discovery {
    /// Discovery through `watcher` (none: names resolve from the hosts
    /// file only).
    pub fn new(watcher: Option<watcher::Watcher>) -> Discovery {
        Discovery {
            found: Discovered {
                enabled: watcher.is_some(),
                ..Discovered::default()
            },
            watcher,
            watched: Vec::new(),
            counts: HashMap::new(),
            answered: HashMap::new(),
        }
    }

    /// What the names resolved to.
    pub fn found(&self) -> &Discovered {
        &self.found
    }

    /// The names watched.
    pub fn watched(&self) -> &[Target] {
        &self.watched
    }

    /// Lookups and failed lookups of `t`.
    pub fn counts(&self, t: &Target) -> (u64, u64) {
        self.counts.get(t).copied().unwrap_or_default()
    }

    /// When `t` last answered.
    pub fn answered(&self, t: &Target) -> Option<SystemTime> {
        self.answered.get(t).copied()
    }

    /// Watches the names `config` needs that the hosts file does not
    /// answer: backends and the syslog collector.
    pub fn watch(&mut self, config: &Config, hosts: &Hosts) {
        let Some(w) = &self.watcher else { return };
        let mut targets: Vec<Target> = config
            .services()
            .iter()
            .filter(|s| match &s.backend {
                BackendTarget::Dns { name, .. } => hosts.lookup(name).is_none(),
                _ => true,
            })
            .filter_map(|s| dns_target(&s.backend))
            .collect();
        if let Some(t) = config.syslog() {
            if let SyslogHost::Name(n) = &t.host {
                if hosts.lookup(n).is_none() {
                    targets.push(Target::Addr {
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
        }
        // Always, not only on a change: answers carried over an upgrade
        // ([`Discovery::adopt_from`]) for names no longer watched go at
        // the first configuration even when it watches nothing.
        let watched = &self.watched;
        self.found.good.retain(|t, _| watched.contains(t));
        self.found.empty.retain(|t, _| watched.contains(t));
        self.found.errors.retain(|t, _| watched.contains(t));
        self.counts.retain(|t, _| watched.contains(t));
        self.answered.retain(|t, _| watched.contains(t));
    }

    /// Writes the last good answers to `path` (see [`carry`]), for the
    /// program an upgrade executes; a failure is logged, and that program
    /// then starts with no answers, as before.
    pub fn carry_to(&self, path: &Path) {
        if self.watcher.is_none() {
            return;
        }
        let text = carry::encode(&self.found.good, &self.answered, SystemTime::now());
        match crate::state::write_private(path, text.as_bytes()) {
            Ok(()) => log::info!(
                "upgrade: {} last good DNS answers carried in {}",
                self.found.good.len(),
                path.display()
            ),
            Err(e) => log::warn!(
                "upgrade: cannot carry the last good DNS answers in {}: {e}; the new program starts without them",
                path.display()
            ),
        }
    }

    /// Takes the answers the previous program carried to `path` (and
    /// removes the file), as last good answers: the first build has their
    /// backends, as if they had just been received, until the watcher's
    /// own answers replace them. Names the configuration does not watch
    /// go at the first [`Discovery::watch`]. A file older than
    /// [`carry::MAX_AGE`] is a leftover and ignored; one that cannot be
    /// read is logged and ignored.
    pub fn adopt_from(&mut self, path: &Path) {
        let carried = match carry::take(path) {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                log::warn!(
                    "upgrade: ignoring the DNS answers carried in {}: {e}",
                    path.display()
                );
                return;
            }
        };
        if self.watcher.is_none() {
            return;
        }
        if !carried.fresh(SystemTime::now()) {
            log::warn!(
                "upgrade: ignoring the DNS answers carried in {}: written more than {} s ago",
                path.display(),
                carry::MAX_AGE.as_secs()
            );
            return;
        }
        let n = carried.names.len();
        for c in carried.names {
            self.answered.insert(c.target.clone(), c.answered);
            self.found.good.insert(c.target, c.backends);
        }
        log::info!("upgrade: {n} last good DNS answers carried over from the previous program");
    }

    /// Takes the discovery thread's answers; true when what is usable
    /// changed. A failure keeps the last good set.
    pub fn updates(&mut self) -> bool {
        let Some(w) = &self.watcher else {
            return false;
        };
        let mut changed = false;
        while let Ok(u) = w.updates.try_recv() {
            if !self.watched.contains(&u.target) {
                continue;
            }
            let name = u.target.name().to_owned();
            let counts = self.counts.entry(u.target.clone()).or_default();
            counts.0 += 1;
            counts.1 += u64::from(u.result.is_err());
            let found = &mut self.found;
            match u.result {
                Ok(r) => {
                    self.answered.insert(u.target.clone(), SystemTime::now());
                    let why = r.empty.map(|e| e.to_string());
                    if found.empty.get(&u.target) != why.as_ref() {
                        if let Some(w) = &why {
                            log::warn!("dns: {name}: {w}");
                        }
                        match why {
                            Some(w) => found.empty.insert(u.target.clone(), w),
                            None => found.empty.remove(&u.target),
                        };
                        changed = true;
                    }
                    let mut list = r.backends;
                    list.sort();
                    if found.errors.remove(&u.target).is_some() {
                        log::info!("dns: {name} answers again");
                    }
                    if found.good.get(&u.target) != Some(&list) {
                        log::info!(
                            "dns: {name} -> {:?} (ttl {} s)",
                            list.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
                            r.ttl
                        );
                        found.good.insert(u.target, list);
                        changed = true;
                    }
                }
                Err(e) => {
                    if found.errors.get(&u.target) != Some(&e) {
                        let keeping = found.good.get(&u.target).map_or(0, Vec::len);
                        log::warn!("dns: {name}: {e}; keeping the last good set ({keeping} backends), retrying");
                        found.errors.insert(u.target.clone(), e);
                        // A name that never resolved says why in the snapshot.
                        changed |= keeping == 0;
                    }
                }
            }
        }
        changed
    }
}
