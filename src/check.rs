//! `moirai check`: the report of what a configuration would run, for people
//! (one line per service, then every error) and for tools (`--json`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::config::{Config, ConfigError, Service};

/// The JSON object `moirai check --json` prints.
pub fn to_json(config: &Config, errors: &[ConfigError]) -> Value {
    let services: Vec<Value> = config.services().iter().map(service_json).collect();
    let t = config.timeouts();
    json!({
        "valid": errors.is_empty(),
        "enabled": config.enabled(),
        "services": services,
        "errors": errors,
        "max_rs": config.max_rs(),
        "metrics": config.metrics().map(|m| json!({
            "port": m.port,
            "acl": m.acl.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })),
        "syslog": config.syslog().map(ToString::to_string),
        "certificate_names": config.certificate_names().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "timeouts": {
            "connect_ms": t.connect.as_millis() as u64,
            "client_ms": t.client.as_millis() as u64,
            "server_ms": t.server.as_millis() as u64,
            "queue_ms": t.queue.as_millis() as u64,
        },
    })
}

fn service_json(s: &Service) -> Value {
    json!({
        "type": s.kind.as_str(),
        "listen": s.listen.get(),
        "backend": s.backend.host(),
        "port": s.backend.port(),
        "resolve": s.backend.resolve_mode(),
        "check": {
            "path": s.check.path.as_ref().map(|p| p.as_str()),
            "port": s.check.port.map(|p| p.get()),
            "rise": s.check.rise.get(),
            "fall": s.check.fall.get(),
        },
    })
}

/// The human report: one line per service, then one per error.
pub fn to_text(config: &Config, errors: &[ConfigError]) -> String {
    let mut out = String::new();
    if !config.enabled() {
        out.push_str(
            "load balancing is off: cloud.tritoncompute:loadbalancer is not \"true\"; no service runs\n",
        );
    }
    for s in config.services() {
        let how = match s.backend.resolve_mode() {
            "ip" => "address",
            "a" => "A/AAAA",
            _ => "SRV",
        };
        let _ = write!(
            out,
            "{:<14} :{:<5} -> {} ({how})",
            s.kind.as_str(),
            s.listen,
            s.backend
        );
        let c = &s.check;
        match &c.path {
            Some(p) => {
                let _ = write!(out, " check GET {}", p.as_str());
            }
            None => out.push_str(" check tcp"),
        }
        if let Some(p) = c.port {
            let _ = write!(out, " port {p}");
        }
        let _ = writeln!(out, " rise {} fall {}", c.rise.get(), c.fall.get());
    }
    let t = config.timeouts();
    let _ = writeln!(
        out,
        "max_rs {}; timeouts connect {}ms client {}ms server {}ms queue {}ms",
        config.max_rs(),
        t.connect.as_millis(),
        t.client.as_millis(),
        t.server.as_millis(),
        t.queue.as_millis()
    );
    if !config.certificate_names().is_empty() {
        let names: Vec<_> = config
            .certificate_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        let _ = writeln!(out, "certificate {}", names.join(", "));
    }
    if let Some(m) = config.metrics() {
        let acl: Vec<_> = m.acl.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "metrics on :{} for {}", m.port, acl.join(" "));
    }
    if let Some(s) = config.syslog() {
        let _ = writeln!(out, "syslog to {s}");
    }
    for e in errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}
