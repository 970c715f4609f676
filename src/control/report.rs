//! What the control loop tells: `moirai status` (one JSON document of the
//! running truth) and the Prometheus exposition, both read from the same
//! state.

use super::{dns, health, publish, Config, Control};

/// A certificate served, as `moirai status` shows it.
#[derive(Debug, Clone)]
pub(super) struct CertInfo {
    names: Vec<String>,
    subject: String,
    issuer: String,
    not_after: Option<std::time::SystemTime>,
    /// "acme" or "self-signed".
    pub(super) source: &'static str,
}

impl CertInfo {
    pub(super) fn of(names: Vec<String>, cert_pem: &[u8], source: &'static str) -> CertInfo {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem)
            .next()
            .and_then(Result::ok);
        let (subject, issuer) = der
            .as_ref()
            .and_then(|d| crate::tls::validity::subject_and_issuer(d))
            .unwrap_or_default();
        CertInfo {
            names,
            subject,
            issuer,
            not_after: der
                .as_ref()
                .and_then(|d| crate::tls::validity::validity(d))
                .map(|(_, na)| na),
            source,
        }
    }
}

impl Control {
    /// The running truth, as `moirai status` shows it.
    pub(super) fn status_report(&self) -> serde_json::Value {
        use serde_json::json;
        let services: Vec<_> = self
            .snapshot
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
                    "listening": !self.not_listening.keys().any(|(p, _)| *p == s.port()),
                    "connections": t.opened.saturating_sub(t.closed),
                    "connections_total": t.opened,
                    "responses": crate::metrics::stats::CLASSES.iter().zip(t.responses)
                        .map(|(c, n)| ((*c).to_owned(), n))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                    "bytes_in": t.bytes_in,
                    "bytes_out": t.bytes_out,
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
                            "state": match (self.admin.get(&(s.port(), b.addr())), h.is_some_and(|h| h.up), retiring) {
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
                            "admin": self.admin.get(&(s.port(), b.addr())),
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
                        .then(|| self.name_mismatches.get(&s.spec.backend.host()))
                        .flatten()
                        .map(|presented| json!({
                            "name": s.spec.backend.host(),
                            "certificate_names": presented,
                        })),
                    "verify_host": s.spec.verify_host.as_ref().map(ToString::to_string),
                    "not_listening": self.not_listening.iter()
                        .filter(|((p, _), _)| *p == s.port())
                        .map(|((p, a), (why, _))| format!(
                            "NOT LISTENING: port {p}{}: {why}",
                            a.map(|a| format!(" on {a}")).unwrap_or_default()
                        ))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let dns: Vec<_> = self
            .watched
            .iter()
            .map(|t| {
                json!({
                    "name": t.name(),
                    "lookup": match t { dns::resolver::Target::Addr { .. } => "a", _ => "srv" },
                    "last_answer": self.discovered.good.get(t).map(|v| v.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>()),
                    "error": self.discovered.errors.get(t),
                    "empty": self.discovered.empty.get(t),
                    "answer_age_s": self.dns_answered.get(t)
                        .and_then(|at| at.elapsed().ok())
                        .map(|d| d.as_secs()),
                })
            })
            .collect();
        let certificates: Vec<_> = self
            .cert_info
            .iter()
            .map(|c| {
                json!({
                    "names": c.names,
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "not_after": c.not_after.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    "source": c.source,
                })
            })
            .collect();
        json!({
            "version": crate::VERSION,
            "pid": std::process::id(),
            "started": humantime::format_rfc3339_seconds(self.started).to_string(),
            "uptime_s": self.started.elapsed().map_or(0, |d| d.as_secs()),
            "applied_at": self.applied_at.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            "draining": self.draining,
            "certificates": certificates,
            "acme": self.acme_wanted.as_ref().map(|w| json!({
                "names": w.names,
                "plan": w.plan.to_string(),
                "state": self.acme_state,
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
            "generation": self.snapshot.generation,
            "metadata_source": self.source.describe(),
            "metadata_error": self.last_source_error,
            "enabled": self.config.as_ref().is_some_and(Config::enabled),
            "services": services,
            "dns": dns,
            // The same objects as `moirai check --json`.
            "config_errors": &self.errors.errors,
            "config_warnings": &self.errors.warnings,
        })
    }

    /// The Prometheus exposition of the running truth.
    pub(super) fn metrics_text(&self) -> String {
        use crate::metrics::export::{BackendView, ControlView, DnsView, ServiceView};
        let services: Vec<ServiceView<'_>> = self
            .snapshot
            .services
            .iter()
            .map(|s| ServiceView {
                port: s.port(),
                response_average: self.exporter.response_average(s.port()),
                listening: !self.not_listening.keys().any(|(p, _)| *p == s.port()),
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
        for e in &self.errors.errors {
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
            generation: self.snapshot.generation,
            applied: self.applied_at,
            config_errors,
            dns: self
                .watched
                .iter()
                .map(|t| {
                    let (queries, failures) = self.dns_counts.get(t).copied().unwrap_or_default();
                    DnsView {
                        name: t.name(),
                        queries,
                        failures,
                        answers: self.discovered.good.get(t).map_or(0, Vec::len),
                    }
                })
                .collect(),
            metadata_errors: self.metadata_errors,
            syslog: {
                let (s, d) = self.syslog_counts.totals();
                let (es, ed) = crate::logging::remote_counts();
                (s + es, d + ed)
            },
            started: Some(self.started),
            certs: self
                .cert_expiry
                .iter()
                .map(|(n, t)| (n.as_str(), *t))
                .collect(),
            acme: self.acme.as_ref().map(|a| {
                use std::sync::atomic::Ordering::Relaxed;
                (a.attempts.load(Relaxed), a.failures.load(Relaxed))
            }),
        };
        self.exporter.render(&services, &control)
    }
}
