//! `moirai check`: the report of what a configuration would run, for people
//! (one line per service, then every error) and for tools (`--json`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::config::{keys, timeouts, Config, ConfigError, Diagnostics, Reason, Service};
use crate::control::certs::acme::{self, ChallengeChoice, Plan};

/// The ACME challenges `moirai run` would use for `config` with
/// `--acme-challenge choice` and this metadata source: `None` when no
/// certificate is ordered (no `certificate_name` or no TLS service); when
/// no challenge can work, an error for `certificate_name` joins `diag`.
pub fn acme_plan(
    config: &Config,
    choice: ChallengeChoice,
    metadata_writable: bool,
    diag: &mut Diagnostics,
) -> Option<Plan> {
    if config.certificate_names().is_empty() || !config.services().iter().any(|s| s.kind.is_tls()) {
        return None;
    }
    match acme::plan(choice, config, metadata_writable) {
        Ok(p) => Some(p),
        Err(why) => {
            let names: Vec<&str> = config
                .certificate_names()
                .iter()
                .map(|n| n.as_str())
                .collect();
            diag.errors.push(ConfigError {
                key: keys::CERTIFICATE_NAME.to_owned(),
                entry: None,
                offset: 0,
                text: names.join(","),
                reason: Reason::NoAcmeChallenge(why),
            });
            None
        }
    }
}

/// The JSON object `moirai check --json` prints.
pub fn to_json(
    config: &Config,
    diag: &Diagnostics,
    acme: Option<&Plan>,
    listen: &[std::net::IpAddr],
) -> Value {
    let services: Vec<Value> = config.services().iter().map(service_json).collect();
    let t = config.timeouts();
    json!({
        "valid": diag.errors.is_empty(),
        "enabled": config.enabled(),
        "services": services,
        "errors": diag.errors,
        "warnings": diag.warnings,
        "listen_addresses": listen_list(listen),
        "max_rs": config.max_rs(),
        "metrics": config.metrics().map(|m| json!({
            "port": m.port,
            "acl": m.acl.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })),
        "syslog": config.syslog().map(ToString::to_string),
        "certificate_names": config.certificate_names().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "acme": acme.map(|p| json!({
            "challenge": p.first.as_str(),
            "fallback": p.fallback.map(|f| f.as_str()),
        })),
        "timeouts": {
            "connect_ms": timeouts::key_ms(t.connect),
            "client_ms": timeouts::key_ms(t.client),
            "server_ms": timeouts::key_ms(t.server),
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
        "verify_host": s.verify_host.as_ref().map(|n| n.as_str()),
        "check": {
            "path": s.check.path.as_ref().map(|p| p.as_str()),
            "port": s.check.port.map(|p| p.get()),
            "rise": s.check.rise(),
            "fall": s.check.fall(),
        },
    })
}

/// The human report: one line per service, then one per error.
pub fn to_text(
    config: &Config,
    diag: &Diagnostics,
    acme: Option<&Plan>,
    listen: &[std::net::IpAddr],
) -> String {
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
        let _ = write!(out, " rise {} fall {}", c.rise(), c.fall());
        match (&s.verify_host, s.kind) {
            (Some(n), _) => {
                let _ = write!(out, "; backend certificates verified for {n}");
            }
            (None, crate::config::ServiceKind::Https) => {
                out.push_str("; backend certificate chains verified, names not");
            }
            _ => {}
        }
        out.push('\n');
    }
    let _ = writeln!(out, "listening on {}", listen_list(listen).join(", "));
    let t = config.timeouts();
    let _ = writeln!(
        out,
        "max_rs {}; timeouts connect {} client {} server {} queue {}ms",
        config.max_rs(),
        timeouts::describe(t.connect),
        timeouts::describe(t.client),
        timeouts::describe(t.server),
        t.queue.as_millis()
    );
    if !config.certificate_names().is_empty() {
        let names: Vec<_> = config
            .certificate_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        let _ = write!(out, "certificate {}", names.join(", "));
        match acme {
            Some(p) => {
                let _ = writeln!(out, ": ACME by {p}");
            }
            None => out.push('\n'),
        }
    }
    if let Some(m) = config.metrics() {
        let acl: Vec<_> = m.acl.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "metrics on :{} for {}", m.port, acl.join(" "));
    }
    if let Some(s) = config.syslog() {
        let _ = writeln!(out, "syslog to {s}");
    }
    for e in &diag.errors {
        let _ = writeln!(out, "error: {e}");
    }
    for w in &diag.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// `moirai status` for people: one block per service, then DNS and errors.
pub fn status_text(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "moirai {} generation {} (metadata from {}{})",
        v["version"].as_str().unwrap_or("?"),
        v["generation"],
        v["metadata_source"].as_str().unwrap_or("?"),
        v["metadata_error"]
            .as_str()
            .map(|e| format!("; last read failed: {e}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "pid {}, up {} s, configuration applied {}{}",
        v["pid"],
        v["uptime_s"],
        v["applied_at"].as_str().unwrap_or("never"),
        if v["draining"].as_bool() == Some(true) {
            "; DRAINING"
        } else {
            ""
        }
    );
    if let Some(why) = v["loadbalancer_kept"].as_str() {
        let _ = writeln!(
            out,
            "error: {why}: the running configuration is kept; disable the service to stop"
        );
    }
    for c in v["certificates"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "certificate ({}) {} issued by {}, valid until {}",
            c["source"].as_str().unwrap_or("?"),
            c["subject"].as_str().unwrap_or("?"),
            c["issuer"].as_str().unwrap_or("?"),
            c["not_after"].as_str().unwrap_or("?")
        );
    }
    if let Some(a) = v["acme"].as_object() {
        let _ = writeln!(
            out,
            "acme by {}: {}",
            a["plan"].as_str().unwrap_or("?"),
            a["state"].as_str().unwrap_or("ordering")
        );
    }
    if let Some(a) = v["listen_addresses"].as_array() {
        let a: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "listening on {}", a.join(", "));
    }
    for s in v["services"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{} ({}; {} connections, {} in all; check {})",
            s["service"].as_str().unwrap_or("?"),
            if s["listening"].as_bool() == Some(false) {
                "NOT LISTENING"
            } else {
                "listening"
            },
            s["connections"],
            s["connections_total"],
            s["check"]["type"].as_str().unwrap_or("?")
        );
        for n in s["not_listening"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  {}", n.as_str().unwrap_or("?"));
        }
        let backends = s["backends"].as_array().map_or(&[][..], Vec::as_slice);
        if let Some(why) = s["no_backends"].as_str() {
            let _ = writeln!(out, "  no backends: {why}");
        }
        if let Some(m) = s["tls_name_mismatch"].as_object() {
            let names: Vec<&str> = m["certificate_names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let _ = writeln!(
                out,
                "  tls: backend certificates are for {}, not {} (chain verified, name not; verify_host:NAME requires one)",
                if names.is_empty() { "other names".to_owned() } else { names.join(", ") },
                m["name"].as_str().unwrap_or("?")
            );
        }
        for b in backends {
            let health = if b["up"].as_bool() == Some(true) {
                "up".to_owned()
            } else {
                match b["last_failure"].as_str() {
                    Some(why) => format!("down ({why})"),
                    None => "down (checking)".to_owned(),
                }
            };
            let health = if b["retiring"].as_bool() == Some(true) {
                format!("{health}, replaced: in rotation until a new backend is up")
            } else {
                health
            };
            let _ = writeln!(
                out,
                "  {:<5} {:<40} weight {:<3} active {:<5} {health} since {} ({} changes); sessions {} 5xx {} connect errors {} retries {}",
                b["server"].as_str().unwrap_or("?"),
                b["address"].as_str().unwrap_or("?"),
                b["weight"],
                b["active"],
                b["since"].as_str().unwrap_or("?"),
                b["transitions"],
                b["sessions_total"],
                b["responses_5xx"],
                b["connect_errors"],
                b["retries"]
            );
        }
        for b in s["removed"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:<40} removed, still holding {} connections",
                b["address"].as_str().unwrap_or("?"),
                b["active"]
            );
        }
    }
    for d in v["dns"].as_array().into_iter().flatten() {
        let answer = match d["last_answer"].as_array() {
            Some(a) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            None => "(no answer yet)".to_owned(),
        };
        let _ = write!(
            out,
            "dns {} {}: {answer}",
            d["lookup"].as_str().unwrap_or("?"),
            d["name"].as_str().unwrap_or("?")
        );
        if let Some(e) = d["empty"].as_str() {
            let _ = write!(out, "(none: {e})");
        }
        if let Some(age) = d["answer_age_s"].as_u64() {
            let _ = write!(out, " [answered {age} s ago]");
        }
        if let Some(e) = d["error"].as_str() {
            let _ = write!(out, " [last error: {e}]");
        }
        out.push('\n');
    }
    for (list, label) in [("config_errors", "error"), ("config_warnings", "warning")] {
        for e in v[list].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{label}: {}", problem_text(e));
        }
    }
    out
}

/// `--listen-address`es as shown: `["all"]` when there are none.
fn listen_list(listen: &[std::net::IpAddr]) -> Vec<String> {
    if listen.is_empty() {
        vec!["all".to_owned()]
    } else {
        listen.iter().map(ToString::to_string).collect()
    }
}

/// A `check --json` problem object as one line, like its `Display`.
fn problem_text(e: &Value) -> String {
    let mut line = e["key"].as_str().unwrap_or("?").to_owned();
    if let Some(n) = e["entry"].as_u64() {
        let _ = write!(
            line,
            " entry {n} at byte {}",
            e["offset"].as_u64().unwrap_or(0)
        );
    }
    let _ = write!(
        line,
        ": {} (in {:?})",
        e["reason"].as_str().unwrap_or("?"),
        e["text"].as_str().unwrap_or("")
    );
    line
}
