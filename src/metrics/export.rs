//! Rendering the Prometheus exposition (text format 0.0.4) on the control
//! thread.
//!
//! Counters and gauges go through the `metrics` facade into a
//! `metrics-exporter-prometheus` recorder made fresh for each scrape: the
//! values are read from the workers' sharded counters at that moment, so a
//! service or backend that is gone simply stops appearing (no stale series,
//! no idle timeouts to tune).
//!
//! Latency histograms are the exception. The recorder's histograms take one
//! observation per call; replaying the workers' merged hdrhistograms through
//! them would cost one call per request ever served. So the cumulative
//! hdrhistograms kept here are rendered as Prometheus histograms directly
//! (buckets from 100 µs to 60 s) and appended to the recorder's output,
//! with quantile gauges p50/p90/p99/p99.9 beside them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use super::names::{self, Name};
use super::stats::{new_histogram, Latency, CLASSES};
pub use super::view::{BackendView, ControlView, DnsView, ServiceView};

/// The cumulative latencies of each service.
#[derive(Debug, Default)]
pub struct Exporter {
    latency: HashMap<u16, Latency>,
    /// Average response time of about the last 1024 requests, per
    /// service, in seconds (HAProxy's `rtime`).
    recent: HashMap<u16, f64>,
    /// The same for backend connects (HAProxy's `ctime`).
    recent_connect: HashMap<u16, f64>,
}

/// Moves the running average `avg` of about the last 1024 samples by a
/// batch of latencies: by the batch's mean, weighted by its share of 1024.
fn follow(avg: &mut HashMap<u16, f64>, port: u16, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    let mean = h.mean() / 1e6;
    let w = (h.len() as f64 / 1024.0).min(1.0);
    avg.entry(port)
        .and_modify(|a| *a += (mean - *a) * w)
        .or_insert(mean);
}

impl Exporter {
    /// Adds a worker's latencies since its last batch.
    pub fn merge(&mut self, batch: Vec<(u16, Latency)>) {
        for (port, l) in batch {
            follow(&mut self.recent, port, &l.request);
            follow(&mut self.recent_connect, port, &l.connect);
            let acc = self.latency.entry(port).or_default();
            // Same bounds everywhere, so adding cannot fail; if it ever
            // did, the batch is lost, not the process.
            let _ = acc.request.add(&l.request);
            let _ = acc.connect.add(&l.connect);
        }
    }

    /// The recent average response time of service `port`, in seconds.
    pub fn response_average(&self, port: u16) -> Option<f64> {
        self.recent.get(&port).copied()
    }

    /// The recent average connect time of service `port`, in seconds.
    pub fn connect_average(&self, port: u16) -> Option<f64> {
        self.recent_connect.get(&port).copied()
    }

    /// Forgets services that no longer exist.
    pub fn retain(&mut self, ports: &[u16]) {
        self.latency.retain(|p, _| ports.contains(p));
        self.recent.retain(|p, _| ports.contains(p));
        self.recent_connect.retain(|p, _| ports.contains(p));
    }

    /// The whole exposition.
    pub fn render(&self, services: &[ServiceView<'_>], control: &ControlView<'_>) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            record_services(services);
            super::haproxy::record(services, control);
            record_control(control);
        });
        let mut out = handle.render();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        // The recorder's counters are integers; CPU seconds are not.
        if let Some(cpu) = crate::sys::process::stats().cpu {
            let (name, help) = names::CPU;
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", cpu.as_secs_f64());
        }
        let empty = new_histogram();
        let hist = |port: u16, pick: fn(&Latency) -> &Histogram<u64>| {
            self.latency.get(&port).map_or(&empty, pick)
        };
        for (name, quantiles, pick) in [
            (
                names::REQUEST_DURATION,
                names::REQUEST_DURATION_QUANTILE,
                (|l: &Latency| &l.request) as fn(&Latency) -> &Histogram<u64>,
            ),
            (
                names::CONNECT_DURATION,
                names::CONNECT_DURATION_QUANTILE,
                |l: &Latency| &l.connect,
            ),
        ] {
            // Request latency exists for http types only.
            let shown: Vec<&ServiceView<'_>> = services
                .iter()
                .filter(|s| name != names::REQUEST_DURATION || s.kind.starts_with("http"))
                .collect();
            if shown.is_empty() {
                continue;
            }
            write_histogram(
                &mut out,
                name,
                shown.iter().map(|s| (s.port, hist(s.port, pick))),
            );
            write_quantiles(
                &mut out,
                quantiles,
                shown.iter().map(|s| (s.port, hist(s.port, pick))),
            );
        }
        out
    }
}

fn describe(n: Name, counter: bool) {
    if counter {
        describe_counter!(n.0, n.1);
    } else {
        describe_gauge!(n.0, n.1);
    }
}

fn record_services(services: &[ServiceView<'_>]) {
    for (n, c) in [
        (names::SERVICE_CONNECTIONS, true),
        (names::SERVICE_ACTIVE, false),
        (names::SERVICE_LISTENING, false),
        (names::SERVICE_RESPONSES, true),
        (names::SERVICE_REQUEST_BYTES, true),
        (names::SERVICE_RESPONSE_BYTES, true),
        (names::SERVICE_CONNECT_ERRORS, true),
        (names::SERVICE_RETRIES, true),
        (names::SERVICE_TIMEOUTS, true),
        (names::SERVICE_REDIRECTS, true),
        (names::SERVICE_H2_CONNECTIONS, true),
        (names::SERVICE_H2_STREAMS, true),
        (names::SERVICE_H2_RESETS, true),
        (names::SERVICE_H2_ERRORS, true),
        (names::SERVICE_H2_ACTIVE, false),
        (names::SERVICE_H2_STREAMS_ACTIVE, false),
        (names::SERVICE_H2_LIMITS, true),
        (names::BACKEND_CONNECTIONS, true),
        (names::BACKEND_ACTIVE, false),
        (names::BACKEND_RESPONSES, true),
        (names::BACKEND_REQUEST_BYTES, true),
        (names::BACKEND_RESPONSE_BYTES, true),
        (names::BACKEND_CONNECT_ERRORS, true),
        (names::BACKEND_RETRIES, true),
        (names::BACKEND_TIMEOUTS, true),
        (names::BACKEND_UP, false),
        (names::BACKEND_CHECK_DURATION, false),
        (names::BACKEND_CHECKS, true),
        (names::BACKEND_CHECK_FAILURES, true),
    ] {
        describe(n, c);
    }
    for s in services {
        let t = s.stats.totals();
        let svc = s.port.to_string();
        let l = [("service", svc.clone()), ("type", s.kind.to_owned())];
        counter!(names::SERVICE_CONNECTIONS.0, &l).absolute(t.opened);
        gauge!(names::SERVICE_ACTIVE.0, &l).set(t.opened.saturating_sub(t.closed) as f64);
        gauge!(names::SERVICE_LISTENING.0, &l).set(if s.listening { 1.0 } else { 0.0 });
        counter!(names::SERVICE_REQUEST_BYTES.0, &l).absolute(t.bytes_in);
        counter!(names::SERVICE_RESPONSE_BYTES.0, &l).absolute(t.bytes_out);
        counter!(names::SERVICE_CONNECT_ERRORS.0, &l).absolute(t.connect_errors);
        counter!(names::SERVICE_RETRIES.0, &l).absolute(t.retries);
        counter!(names::SERVICE_TIMEOUTS.0, &l).absolute(t.timeouts);
        counter!(names::SERVICE_REDIRECTS.0, &l).absolute(t.redirects);
        let http = s.kind.starts_with("http");
        if http {
            counter!(names::SERVICE_H2_CONNECTIONS.0, &l).absolute(t.h2_connections);
            counter!(names::SERVICE_H2_STREAMS.0, &l).absolute(t.h2_streams);
            gauge!(names::SERVICE_H2_ACTIVE.0, &l)
                .set(t.h2_connections.saturating_sub(t.h2_closed) as f64);
            gauge!(names::SERVICE_H2_STREAMS_ACTIVE.0, &l)
                .set(t.h2_streams.saturating_sub(t.h2_streams_done) as f64);
            for (code, n) in t.h2_errors.iter().enumerate().skip(1) {
                let name = crate::proto::h2::ErrorCode::from_u32(code as u32).name();
                let l = [
                    ("service", svc.clone()),
                    ("type", s.kind.to_owned()),
                    ("code", name.to_owned()),
                ];
                counter!(names::SERVICE_H2_ERRORS.0, &l).absolute(*n);
            }
            for (limit, n) in crate::proto::h2::limits::Limit::ALL.iter().zip(t.h2_limits) {
                let l = [
                    ("service", svc.clone()),
                    ("type", s.kind.to_owned()),
                    ("limit", limit.name().to_owned()),
                ];
                counter!(names::SERVICE_H2_LIMITS.0, &l).absolute(n);
            }
            for (side, n) in [("client", t.h2_resets_in), ("moirai", t.h2_resets_out)] {
                let l = [
                    ("service", svc.clone()),
                    ("type", s.kind.to_owned()),
                    ("side", side.to_owned()),
                ];
                counter!(names::SERVICE_H2_RESETS.0, &l).absolute(n);
            }
            for (class, n) in CLASSES.iter().zip(t.responses) {
                let l = [
                    ("service", svc.clone()),
                    ("type", s.kind.to_owned()),
                    ("class", (*class).to_owned()),
                ];
                counter!(names::SERVICE_RESPONSES.0, &l).absolute(n);
            }
        }
        for b in &s.backends {
            let t = b.stats.totals();
            let backend = b.addr.to_string();
            let l = [("service", svc.clone()), ("backend", backend.clone())];
            counter!(names::BACKEND_CONNECTIONS.0, &l).absolute(t.opened);
            gauge!(names::BACKEND_ACTIVE.0, &l).set(b.active as f64);
            counter!(names::BACKEND_REQUEST_BYTES.0, &l).absolute(t.bytes_in);
            counter!(names::BACKEND_RESPONSE_BYTES.0, &l).absolute(t.bytes_out);
            counter!(names::BACKEND_CONNECT_ERRORS.0, &l).absolute(t.connect_errors);
            counter!(names::BACKEND_RETRIES.0, &l).absolute(t.retries);
            counter!(names::BACKEND_TIMEOUTS.0, &l).absolute(t.timeouts);
            gauge!(names::BACKEND_UP.0, &l).set(if b.up { 1.0 } else { 0.0 });
            counter!(names::BACKEND_CHECKS.0, &l).absolute(b.checks.0);
            counter!(names::BACKEND_CHECK_FAILURES.0, &l).absolute(b.checks.1);
            if let Some(d) = b.check_latency {
                gauge!(names::BACKEND_CHECK_DURATION.0, &l).set(d.as_secs_f64());
            }
            if http {
                for (class, n) in CLASSES.iter().zip(t.responses) {
                    let l = [
                        ("service", svc.clone()),
                        ("backend", backend.clone()),
                        ("class", (*class).to_owned()),
                    ];
                    counter!(names::BACKEND_RESPONSES.0, &l).absolute(n);
                }
            }
        }
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn record_control(c: &ControlView<'_>) {
    for (n, is_counter) in [
        (names::GENERATION, false),
        (names::GENERATION_APPLIED, false),
        (names::CONFIG_ERRORS, false),
        (names::DNS_QUERIES, true),
        (names::DNS_FAILURES, true),
        (names::DNS_ANSWERS, false),
        (names::METADATA_ERRORS, true),
        (names::SYSLOG_SENT, true),
        (names::SYSLOG_DROPPED, true),
        (names::OPEN_FDS, false),
        (names::MAX_FDS, false),
        (names::RSS, false),
        (names::START_TIME, false),
        (names::CERT_EXPIRY, false),
        (names::CERT_EXPIRING, false),
        (names::ACME_ATTEMPTS, true),
        (names::ACME_FAILURES, true),
    ] {
        describe(n, is_counter);
    }
    // Judged at scrape time, so an alert needs no arithmetic on dates.
    let warn_from = SystemTime::now() + crate::tls::provided::EXPIRY_WARNING;
    for (name, t) in &c.certs {
        gauge!(names::CERT_EXPIRY.0, "name" => (*name).to_owned()).set(unix_seconds(*t));
        gauge!(names::CERT_EXPIRING.0, "name" => (*name).to_owned()).set(if *t < warn_from {
            1.0
        } else {
            0.0
        });
    }
    if let Some((attempts, failures)) = c.acme {
        counter!(names::ACME_ATTEMPTS.0).absolute(attempts);
        counter!(names::ACME_FAILURES.0).absolute(failures);
    }
    gauge!(names::GENERATION.0).set(c.generation as f64);
    if let Some(t) = c.applied {
        gauge!(names::GENERATION_APPLIED.0).set(unix_seconds(t));
    }
    for (key, n) in &c.config_errors {
        gauge!(names::CONFIG_ERRORS.0, "key" => (*key).to_owned()).set(*n as f64);
    }
    for d in &c.dns {
        let l = [("name", d.name.to_owned())];
        counter!(names::DNS_QUERIES.0, &l).absolute(d.queries);
        counter!(names::DNS_FAILURES.0, &l).absolute(d.failures);
        gauge!(names::DNS_ANSWERS.0, &l).set(d.answers as f64);
    }
    counter!(names::METADATA_ERRORS.0).absolute(c.metadata_errors);
    counter!(names::SYSLOG_SENT.0).absolute(c.syslog.0);
    counter!(names::SYSLOG_DROPPED.0).absolute(c.syslog.1);
    let p = crate::sys::process::stats();
    if let Some(n) = p.open_fds {
        gauge!(names::OPEN_FDS.0).set(n as f64);
    }
    if let Some(n) = p.max_fds {
        gauge!(names::MAX_FDS.0).set(n as f64);
    }
    if let Some(n) = p.rss_bytes {
        gauge!(names::RSS.0).set(n as f64);
    }
    if let Some(t) = c.started {
        gauge!(names::START_TIME.0).set(unix_seconds(t));
    }
}

/// A label value, escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_histogram<'h>(
    out: &mut String,
    (name, help): Name,
    series: impl Iterator<Item = (u16, &'h Histogram<u64>)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (port, h) in series {
        let svc = escape(&port.to_string());
        for le in names::LATENCY_BUCKETS {
            let us = (le * 1e6) as u64;
            let n = h.count_between(0, us);
            let _ = writeln!(out, "{name}_bucket{{service=\"{svc}\",le=\"{le}\"}} {n}");
        }
        let total = h.len();
        let _ = writeln!(
            out,
            "{name}_bucket{{service=\"{svc}\",le=\"+Inf\"}} {total}"
        );
        // hdrhistogram keeps no exact sum; mean × count is within its
        // two significant digits.
        let sum = h.mean() * total as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{service=\"{svc}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{service=\"{svc}\"}} {total}");
    }
}

fn write_quantiles<'h>(
    out: &mut String,
    (name, help): Name,
    series: impl Iterator<Item = (u16, &'h Histogram<u64>)>,
) {
    // A summary: Prometheus's type for precomputed quantiles (a gauge may
    // not carry a `quantile` label).
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} summary");
    for (port, h) in series {
        if !h.is_empty() {
            for q in names::QUANTILES {
                let v = h.value_at_quantile(q) as f64 / 1e6;
                let _ = writeln!(out, "{name}{{service=\"{port}\",quantile=\"{q}\"}} {v}");
            }
        }
        let total = h.len();
        let sum = h.mean() * total as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{service=\"{port}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{service=\"{port}\"}} {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::record;
    use crate::metrics::stats::Sharded;
    use std::time::Duration;

    #[test]
    fn renders_counters_from_every_shard_and_merged_histograms() {
        let svc = Sharded::new(2);
        svc.of(0).opened.add(3);
        svc.of(1).opened.add(4);
        svc.of(1).closed.add(2);
        svc.of(0).response(200);
        svc.of(1).response(503);
        let be = Sharded::new(2);
        be.of(0).bytes_in.add(100);
        let mut ex = Exporter::default();
        let mut l = Latency::default();
        record(&mut l.request, Duration::from_millis(3));
        record(&mut l.request, Duration::from_millis(40));
        ex.merge(vec![(8080, l)]);
        let mut l = Latency::default();
        record(&mut l.request, Duration::from_secs(2));
        ex.merge(vec![(8080, l)]);
        let services = [ServiceView {
            listening: true,
            response_average: None,
            connect_average: None,
            port: 8080,
            kind: "http",
            stats: &svc,
            backends: vec![BackendView {
                addr: "127.0.0.2:80".parse().unwrap(),
                stats: &be,
                active: 1,
                up: true,
                check_latency: Some(Duration::from_micros(250)),
                checks: (10, 1),
                check_state: Some("L7OK"),
                weight: 1,
                since: None,
                transitions: 1,
                downtime: Duration::ZERO,
            }],
        }];
        let text = ex.render(&services, &ControlView::default());
        for line in [
            "moirai_service_connections_total{service=\"8080\",type=\"http\"} 7",
            "moirai_service_connections_active{service=\"8080\",type=\"http\"} 5",
            "moirai_service_responses_total{service=\"8080\",type=\"http\",class=\"2xx\"} 1",
            "moirai_service_responses_total{service=\"8080\",type=\"http\",class=\"5xx\"} 1",
            "moirai_backend_request_bytes_total{service=\"8080\",backend=\"127.0.0.2:80\"} 100",
            "moirai_backend_up{service=\"8080\",backend=\"127.0.0.2:80\"} 1",
            "moirai_request_duration_seconds_bucket{service=\"8080\",le=\"0.005\"} 1",
            "moirai_request_duration_seconds_bucket{service=\"8080\",le=\"0.05\"} 2",
            "moirai_request_duration_seconds_bucket{service=\"8080\",le=\"+Inf\"} 3",
            "moirai_request_duration_seconds_count{service=\"8080\"} 3",
            "# TYPE moirai_request_duration_seconds histogram",
            "# TYPE moirai_service_connections_total counter",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        ex.retain(&[]);
        let text = ex.render(&services, &ControlView::default());
        assert!(text.contains("moirai_request_duration_seconds_count{service=\"8080\"} 0"));
    }
}
