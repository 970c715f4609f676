//! What the control loop tells: `moirai status` (one JSON document of the
//! running truth) and the Prometheus exposition, both read from the same
//! state, which each subsystem owns; [`Parts`] borrows it for one answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::certs::Certificates;
use super::commands::Admins;
use super::dns::{self, Discovery};
use super::health::{self, Checks};
use super::publish::{self, Builder};
use super::reload::Reloads;
use super::rollout::Rollout;
use crate::config::{Config, Diagnostics};
use crate::metrics::export::Exporter;
use crate::metrics::stats::SyslogCounters;

/// What the control thread itself counts, for the exposition.
pub struct Observed {
    /// Latencies merged from the workers.
    pub exporter: Exporter,
    /// Access lines the workers sent and dropped.
    pub syslog_counts: Arc<SyslogCounters>,
    /// When this process started.
    pub started: SystemTime,
    /// Metadata reads that failed.
    pub metadata_errors: u64,
}

/// Everything an answer reads, borrowed from its owners.
pub struct Parts<'a> {
    pub rollout: &'a Rollout,
    pub builder: &'a Builder,
    pub health: &'a Checks,
    pub certs: &'a Certificates,
    pub dns: &'a Discovery,
    pub reload: &'a Reloads,
    pub admins: &'a Admins,
    pub observed: &'a Observed,
    pub config: Option<&'a Config>,
    pub diagnostics: &'a Diagnostics,
    /// Why the running configuration is kept despite `loadbalancer`.
    pub kept_running: Option<&'a str>,
    pub listen_addresses: &'a [IpAddr],
    pub metadata_source: &'a str,
    pub metadata_error: Option<&'a str>,
    /// An upgrade's stand-in: the process it serves for.
    pub stand_in_for: Option<u32>,
}

impl Parts<'_> {
    /// The running truth, as `moirai status` shows it.
    pub fn status(&self) -> serde_json::Value {
        use serde_json::json;
        let services: Vec<_> = self
            .rollout
            .snapshot()
            .services
            .iter()
            .map(|s| {
                let t = s.stats.totals();
                let check_type = match (&s.spec.check.path, s.spec.kind) {
                    (Some(_), _) => "http",
                    (None, crate::config::ServiceKind::Https | crate::config::ServiceKind::HttpsInsecure) => "tls",
                    (None, _) => "tcp",
                };
                json!({
                    "service": s.spec.to_string(),
                    "type": s.spec.kind.as_str(),
                    "listen": s.port(),
                    "listening": self.rollout.is_listening(s.port()),
                    "connections": t.opened.saturating_sub(t.closed),
                    "connections_total": t.opened,
                    "responses": crate::metrics::stats::CLASSES.iter().zip(t.responses)
                        .map(|(c, n)| ((*c).to_owned(), n))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                    "bytes_in": t.bytes_in,
                    "bytes_out": t.bytes_out,
                    "h2": s.spec.kind.is_http().then(|| json!({
                        "offered": s.spec.h2,
                        "connections": t.h2_connections.saturating_sub(t.h2_closed),
                        "connections_total": t.h2_connections,
                        "streams": t.h2_streams.saturating_sub(t.h2_streams_done),
                        "streams_total": t.h2_streams,
                        "resets_by_client": t.h2_resets_in,
                        "resets_by_moirai": t.h2_resets_out,
                        "connection_errors": t.h2_errors.iter().sum::<u64>(),
                        "limit_hits": t.h2_limits.iter().sum::<u64>(),
                    })),
                    "check": {
                        "type": check_type,
                        "path": s.spec.check.path.as_ref().map(|p| p.as_str()),
                        "port": s.spec.check.port.map(|p| p.get()),
                        "rise": s.spec.check.rise(),
                        "fall": s.spec.check.fall(),
                    },
                    "backends": self.builder.candidates(s.port()).map(|b| {
                        let h = self.health.health(&(s.port(), b.addr()));
                        let bt = b.stats().totals();
                        let retiring = self.builder.is_retiring(s.port(), b.addr());
                        json!({
                            "address": b.addr().to_string(),
                            "server": format!("rs{}", b.slot()),
                            "weight": b.weight(),
                            "state": match (self.admins.states().get(&(s.port(), b.addr())), h.is_some_and(|h| h.up), retiring) {
                                (Some(publish::Admin::Disable), _, _) => "maint",
                                (Some(publish::Admin::Drain), _, _) => "drain",
                                (None, _, true) => "retiring",
                                (None, true, false) => "up",
                                (None, false, false) => "down",
                            },
                            "since": h.and_then(|h| h.since).map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                            "transitions": h.map_or(0, |h| h.transitions),
                            "active": b.active(),
                            "up": h.is_some_and(|h| h.up),
                            "checks": h.map_or(0, |h| h.checks),
                            "failed_checks": h.map_or(0, |h| h.failures),
                            "check_ms": h.and_then(|h| h.latency).map(|d| d.as_secs_f64() * 1000.0),
                            "last_failure": h.and_then(|h| h.last_failure.as_ref()).map(ToString::to_string),
                            "retiring": retiring,
                            "admin": self.admins.states().get(&(s.port(), b.addr())),
                            "sessions_total": bt.opened,
                            "responses_5xx": bt.responses[4],
                            "connect_errors": bt.connect_errors,
                            "retries": bt.retries,
                            "bytes_in": bt.bytes_in,
                            "bytes_out": bt.bytes_out,
                        })
                    }).collect::<Vec<_>>(),
                    // Removed backends still holding connections (`tcp`
                    // connections keep their backend until they end).
                    "removed": self.builder.gone(s.port()).map(|b| json!({
                        "address": b.addr().to_string(),
                        "active": b.active(),
                    })).collect::<Vec<_>>(),
                    "no_backends": s.no_backends.as_ref().map(ToString::to_string),
                    "tls_name_mismatch": (s.spec.kind == crate::config::ServiceKind::Https && s.spec.verify_host.is_none())
                        .then(|| self.certs.name_mismatch(&s.spec.backend.host()))
                        .flatten()
                        .map(|presented| json!({
                            "name": s.spec.backend.host(),
                            "certificate_names": presented,
                        })),
                    "verify_host": s.spec.verify_host.as_ref().map(ToString::to_string),
                    "not_listening": self.rollout.not_listening(s.port())
                        .map(|(a, why)| format!(
                            "NOT LISTENING: port {}{}: {why}",
                            s.port(),
                            a.map(|a| format!(" on {a}")).unwrap_or_default()
                        ))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let dns: Vec<_> = self
            .dns
            .watched()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name(),
                    "lookup": match t { dns::resolver::Target::Addr { .. } => "a", _ => "srv" },
                    "last_answer": self.dns.found().good.get(t).map(|v| v.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>()),
                    "error": self.dns.found().errors.get(t).map(ToString::to_string),
                    "empty": self.dns.found().empty.get(t),
                    "answer_age_s": self.dns.answered(t)
                        .and_then(|at| at.elapsed().ok())
                        .map(|d| d.as_secs()),
                })
            })
            .collect();
        let now = SystemTime::now();
        // What each certificate is and where it comes from; never its key.
        let certificates: Vec<_> = self
            .certs
            .info()
            .iter()
            .map(|c| {
                json!({
                    "names": c.names,
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "not_after": c.not_after.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    "source": c.source,
                    "file": c.file.as_ref().map(|f| f.display().to_string()),
                    "warning": c.expiry_warning(now),
                })
            })
            .collect();
        json!({
            "version": crate::VERSION,
            "pid": std::process::id(),
            "started": humantime::format_rfc3339_seconds(self.observed.started).to_string(),
            "uptime_s": self.observed.started.elapsed().map_or(0, |d| d.as_secs()),
            "applied_at": self.rollout.applied_at().map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            "draining": self.rollout.is_stopping(),
            "stand_in_for": self.stand_in_for,
            "certificates": certificates,
            // Provided certificate files not served: file and reason.
            "certificate_errors": self.certs.provided_errors(),
            "acme": self.certs.acme_status().map(|(w, state)| json!({
                "names": w.names,
                "plan": w.plan.to_string(),
                "state": state,
            })),
            "loadbalancer_kept": self.kept_running,
            "reload": {
                "requested": self.reload.requested,
                "done": self.reload.done,
                "outcome": self.reload.outcome,
            },
            "listen_addresses": if self.listen_addresses.is_empty() {
                vec!["all".to_owned()]
            } else {
                self.listen_addresses.iter().map(ToString::to_string).collect()
            },
            "generation": self.rollout.generation(),
            "metadata_source": self.metadata_source,
            "metadata_error": self.metadata_error,
            "enabled": self.config.is_some_and(Config::enabled),
            "services": services,
            "dns": dns,
            // The same objects as `moirai check --json`.
            "config_errors": &self.diagnostics.errors,
            "config_warnings": &self.diagnostics.warnings,
        })
    }

    /// The Prometheus exposition of the running truth.
    pub fn metrics(&self) -> String {
        use crate::metrics::export::{BackendView, ControlView, DnsView, ServiceView};
        let services: Vec<ServiceView<'_>> = self
            .rollout
            .snapshot()
            .services
            .iter()
            .map(|s| ServiceView {
                port: s.port(),
                response_average: self.observed.exporter.response_average(s.port()),
                connect_average: self.observed.exporter.connect_average(s.port()),
                listening: self.rollout.is_listening(s.port()),
                kind: s.spec.kind.as_str(),
                stats: &s.stats,
                backends: self
                    .builder
                    .candidates(s.port())
                    .map(|b| {
                        let h = self.health.health(&(s.port(), b.addr()));
                        BackendView {
                            addr: b.addr(),
                            stats: b.stats(),
                            active: b.active(),
                            up: h.is_some_and(|h| h.up),
                            check_latency: h.and_then(|h| h.latency),
                            checks: h.map_or((0, 0), |h| (h.checks, h.failures)),
                            weight: b.weight(),
                            since: h.and_then(|h| h.since),
                            transitions: h.map_or(0, |h| h.transitions),
                            downtime: h
                                .map_or(Duration::ZERO, |h| h.downtime + health::down_for(h)),
                            check_state: h.and_then(|h| {
                                health::haproxy_check_state(
                                    h,
                                    s.spec.check.path.is_some(),
                                    matches!(
                                        s.spec.kind,
                                        crate::config::ServiceKind::Https
                                            | crate::config::ServiceKind::HttpsInsecure
                                    ),
                                )
                            }),
                        }
                    })
                    .collect(),
            })
            .collect();
        let mut config_errors: Vec<(&str, usize)> = Vec::new();
        for e in &self.diagnostics.errors {
            match config_errors.iter_mut().find(|(k, _)| *k == e.key) {
                Some((_, n)) => *n += 1,
                None => config_errors.push((&e.key, 1)),
            }
        }
        if self.kept_running.is_some()
            && !config_errors
                .iter()
                .any(|(k, _)| *k == crate::config::keys::LOADBALANCER)
        {
            config_errors.push((crate::config::keys::LOADBALANCER, 1));
        }
        let control = ControlView {
            generation: self.rollout.generation(),
            applied: self.rollout.applied_at(),
            config_errors,
            dns: self
                .dns
                .watched()
                .iter()
                .map(|t| {
                    let (queries, failures) = self.dns.counts(t);
                    DnsView {
                        name: t.name(),
                        queries,
                        failures,
                        answers: self.dns.found().good.get(t).map_or(0, Vec::len),
                    }
                })
                .collect(),
            metadata_errors: self.observed.metadata_errors,
            syslog: {
                let (s, d) = self.observed.syslog_counts.totals();
                let (es, ed) = crate::logging::remote_counts();
                (s + es, d + ed)
            },
            started: Some(self.observed.started),
            certs: self
                .certs
                .expiry()
                .iter()
                .map(|(n, t)| (n.as_str(), *t))
                .collect(),
            acme: self.certs.acme_counts(),
            workers: self.observed.syslog_counts.workers(),
            stopping: self.rollout.is_stopping(),
        };
        self.observed.exporter.render(&services, &control)
    }
}
