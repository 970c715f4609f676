//! `moirai check`: the report of what a configuration would run, for people
//! (one line per service, then every error) and for tools (`--json`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use std::net::SocketAddr;

use crate::config::{
    keys, timeouts, BackendTarget, Config, ConfigError, Diagnostics, Metadata, Reason, Service,
};
use crate::control::certs::plan::{self, ChallengeChoice, Plan};
use crate::control::dns::{self, resolver::Resolver};
use crate::control::hosts::Hosts;

/// What `moirai check` says beyond what parsing found: that `moirai run`
/// would exit at once (load balancing off), and each of our extensions the
/// metadata uses, which a Triton-Moirai balancer beside this one would not
/// run.
pub fn predict(md: &Metadata, config: &Config, diag: &mut Diagnostics) {
    let on_key = diag.errors.iter().any(|e| e.key == keys::LOADBALANCER);
    if !config.enabled() && !on_key {
        let value = md.get(keys::LOADBALANCER).map(String::as_str).unwrap_or("");
        let why = if value.trim().is_empty() {
            "empty or missing".to_owned()
        } else {
            format!("{:?}", value.trim())
        };
        // First: the key sorts first, and it outweighs everything else.
        diag.errors.insert(
            0,
            ConfigError {
                key: keys::LOADBALANCER.to_owned(),
                entry: None,
                offset: 0,
                text: value.to_owned(),
                reason: Reason::LoadBalancerOff(why),
            },
        );
    }
    diag.warnings.extend(crate::config::moirai_differences(md));
}

/// What `--resolve` found for one service: its backends now, or why none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Where the answer came from: `the portmap` (an IP literal), `hosts file`
    /// or `DNS`.
    pub source: &'static str,
    /// The backends, sorted (as `run` sorts them before `max_rs`).
    pub backends: Vec<SocketAddr>,
    /// Why there are none: NXDOMAIN, no SRV records, no answer in time...
    pub none: Option<String>,
}

/// Looks up every service's backends now, as `moirai run` would: an IP
/// literal is itself, a name with a port is asked of the hosts file and
/// then of DNS (A/AAAA), a name without one of DNS (SRV). `resolver` is
/// `Err` when no nameserver is known, which is then the reason.
pub fn resolve(config: &Config, resolver: &Result<Resolver, String>, hosts: &Hosts) -> Vec<Lookup> {
    config
        .services()
        .iter()
        .map(|s| lookup(&s.backend, resolver, hosts))
        .collect()
}

fn lookup(backend: &BackendTarget, resolver: &Result<Resolver, String>, hosts: &Hosts) -> Lookup {
    let found = |source, mut backends: Vec<SocketAddr>| {
        backends.sort();
        backends.dedup();
        Lookup {
            source,
            backends,
            none: None,
        }
    };
    match backend {
        BackendTarget::Ip(a) => return found("the portmap", vec![*a]),
        // Only A/AAAA names are in the hosts file, as for `run`.
        BackendTarget::Dns { name, port } => {
            if let Some(ips) = hosts.lookup(name) {
                let backends = ips
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port.get()))
                    .collect();
                return found("hosts file", backends);
            }
        }
        BackendTarget::Srv { .. } => {}
    }
    let answer = match (resolver, dns::dns_target(backend)) {
        (Ok(r), Some(target)) => r.lookup(&target).map_err(|e| e.to_string()),
        (Err(e), _) => Err(e.clone()),
        (Ok(_), None) => Err("nothing to look up".to_owned()),
    };
    match answer {
        Ok(a) if !a.backends.is_empty() => found("DNS", a.backends.iter().map(|b| b.0).collect()),
        Ok(a) => Lookup {
            source: "DNS",
            backends: Vec::new(),
            none: Some(
                a.empty
                    .map_or_else(|| "no records".to_owned(), |e| e.to_string()),
            ),
        },
        Err(e) => Lookup {
            source: "DNS",
            backends: Vec::new(),
            none: Some(e),
        },
    }
}

/// One `--resolve` answer as a line: how many backends and which, or why
/// none; `max_rs` says how many of them are used.
fn lookup_text(l: &Lookup, max_rs: u16) -> String {
    match &l.none {
        Some(why) => format!("no backends from {}: {why}", l.source),
        None => {
            let n = l.backends.len();
            let list: Vec<String> = l.backends.iter().map(ToString::to_string).collect();
            let mut line = format!(
                "{n} {} from {}: {}",
                if n == 1 { "address" } else { "addresses" },
                l.source,
                list.join(" ")
            );
            if n > usize::from(max_rs) {
                let _ = write!(line, " (the lowest {max_rs} are used: max_rs)");
            }
            line
        }
    }
}

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
    match plan::plan(choice, config, metadata_writable) {
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
    lookups: Option<&[Lookup]>,
) -> Value {
    let services: Vec<Value> = config
        .services()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = service_json(s);
            if let Some(l) = lookups.and_then(|l| l.get(i)) {
                v["resolved"] = json!({
                    "source": l.source,
                    "backends": l.backends.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "none": l.none,
                });
            }
            v
        })
        .collect();
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
    lookups: Option<&[Lookup]>,
) -> String {
    let mut out = String::new();
    for (i, s) in config.services().iter().enumerate() {
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
        if let Some(l) = lookups.and_then(|l| l.get(i)) {
            let _ = writeln!(out, "  {}", lookup_text(l, config.max_rs()));
        }
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

/// `moirai status` for people: who answers and what it serves, then one
/// block per service, then DNS and the configuration's problems.
pub fn status_text(v: &Value) -> String {
    let mut out = String::new();
    process_lines(&mut out, v);
    certificate_lines(&mut out, v);
    for s in v["services"].as_array().into_iter().flatten() {
        service_block(&mut out, s);
    }
    for d in v["dns"].as_array().into_iter().flatten() {
        dns_line(&mut out, d);
    }
    for (list, label) in [("config_errors", "error"), ("config_warnings", "warning")] {
        for e in v[list].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{label}: {}", problem_text(e));
        }
    }
    out
}

/// The process: version, generation, pid, the upgrade or drain under way,
/// a `loadbalancer` flip ignored.
fn process_lines(out: &mut String, v: &Value) {
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
    if let Some(of) = v["stand_in_for"].as_u64() {
        let _ = writeln!(
            out,
            "upgrade in progress: this stand-in serves new connections while process {of} finishes its own"
        );
    }
    if let Some(why) = v["loadbalancer_kept"].as_str() {
        let _ = writeln!(
            out,
            "error: {why}: the running configuration is kept; disable the service to stop"
        );
    }
}

/// Certificates served, their errors, ACME, and the listen addresses.
fn certificate_lines(out: &mut String, v: &Value) {
    for c in v["certificates"].as_array().into_iter().flatten() {
        let names: Vec<&str> = c["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = write!(
            out,
            "certificate ({}) {} for {} issued by {}, valid until {}",
            c["source"].as_str().unwrap_or("?"),
            c["subject"].as_str().unwrap_or("?"),
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(", ")
            },
            c["issuer"].as_str().unwrap_or("?"),
            c["not_after"].as_str().unwrap_or("?")
        );
        if let Some(f) = c["file"].as_str() {
            let _ = write!(out, " ({f})");
        }
        out.push('\n');
        if let Some(w) = c["warning"].as_str() {
            let _ = writeln!(out, "  warning: {w}");
        }
    }
    for e in v["certificate_errors"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "error: certificate {}", e.as_str().unwrap_or("?"));
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
}

/// One service: its listeners and counts, why it has no backends, a TLS
/// name mismatch, then one line per backend and per removed backend.
fn service_block(out: &mut String, s: &Value) {
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
    let h2 = &s["h2"];
    if h2["offered"].as_bool() == Some(true) {
        let _ = writeln!(
            out,
            "  http/2: {} connections ({} in all), {} streams ({} in all); resets: {} by clients, {} by moirai; {} connection errors, {} limit hits",
            h2["connections"],
            h2["connections_total"],
            h2["streams"],
            h2["streams_total"],
            h2["resets_by_client"],
            h2["resets_by_moirai"],
            h2["connection_errors"],
            h2["limit_hits"],
        );
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
        backend_line(out, b);
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

/// One backend of a service, the operator's state before its health.
fn backend_line(out: &mut String, b: &Value) {
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
    // The operator's word comes first: a disabled backend's check
    // failures are expected, not the problem to chase.
    let health = match b["state"].as_str() {
        Some("maint") => {
            format!("MAINT (moirai backend disable; no traffic; check: {health})")
        }
        Some("drain") => {
            format!("DRAIN (moirai backend drain; sticky clients only; check: {health})")
        }
        _ => health,
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

/// One DNS lookup: its last answer, its age, its last error.
fn dns_line(out: &mut String, d: &Value) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metadata_of;

    fn predicted(pairs: &[(&str, &str)]) -> Diagnostics {
        let md = metadata_of(pairs);
        let (config, mut diag) = Config::from_metadata(&md);
        predict(&md, &config, &mut diag);
        diag
    }

    #[test]
    fn load_balancing_off_is_an_error_as_run_exits_96() {
        for (value, said) in [
            (None, "the key is empty or missing"),
            (Some("false"), "the key is \"false\""),
            (Some(" "), "the key is empty or missing"),
        ] {
            let mut pairs = vec![(keys::PORTMAP, "http://80:a.b:1")];
            pairs.extend(value.map(|v| (keys::LOADBALANCER, v)));
            let d = predicted(&pairs);
            assert_eq!(d.errors.len(), 1, "{value:?}: {:?}", d.errors);
            let e = &d.errors[0];
            assert_eq!(e.key, keys::LOADBALANCER);
            assert!(matches!(e.reason, Reason::LoadBalancerOff(_)));
            let text = e.to_string();
            assert!(text.contains(said) && text.contains("exits 96"), "{text}");
        }
        // "yes" is refused by the parser already: one error, not two.
        let d = predicted(&[
            (keys::LOADBALANCER, "yes"),
            (keys::PORTMAP, "http://80:a.b:1"),
        ]);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].reason, Reason::NotABoolean);
        let d = predicted(&[
            (keys::LOADBALANCER, "true"),
            (keys::PORTMAP, "http://80:a.b:1"),
        ]);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn extensions_are_warnings_after_the_parsers() {
        let d = predicted(&[
            (keys::LOADBALANCER, "true"),
            (keys::PORTMAP, "https://443:a.b:1{verify_host:a.b,rise:200}"),
        ]);
        assert!(d.errors.is_empty());
        let w: Vec<_> = d.warnings.iter().map(|w| &w.reason).collect();
        assert_eq!(
            w,
            [
                &Reason::LargeCount("rise", 200),
                &Reason::NotInMoirai(
                    crate::config::error::Extension::Parameter("verify_host"),
                    crate::config::error::MoiraiDoes::DropsEntry
                )
            ]
        );
    }

    #[test]
    fn lookups_say_how_many_or_why_none() {
        let l = Lookup {
            source: "DNS",
            backends: vec![
                "10.0.0.1:80".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            ],
            none: None,
        };
        assert_eq!(
            lookup_text(&l, 32),
            "2 addresses from DNS: 10.0.0.1:80 10.0.0.2:80"
        );
        assert!(lookup_text(&l, 1).ends_with("(the lowest 1 are used: max_rs)"));
        let l = Lookup {
            source: "DNS",
            backends: Vec::new(),
            none: Some("NXDOMAIN: the name does not exist".into()),
        };
        assert_eq!(
            lookup_text(&l, 32),
            "no backends from DNS: NXDOMAIN: the name does not exist"
        );
        // An IP literal needs no lookup; no nameserver is a reason.
        let md = metadata_of(&[
            (keys::LOADBALANCER, "true"),
            (keys::PORTMAP, "tcp://1:10.0.0.9:5 tcp://2:a.example:5"),
        ]);
        let (config, _) = Config::from_metadata(&md);
        let found = resolve(&config, &Err("no nameserver".into()), &Hosts::default());
        assert_eq!(found[0].backends, ["10.0.0.9:5".parse().unwrap()]);
        assert_eq!(found[1].none.as_deref(), Some("no nameserver"));
    }

    #[test]
    fn status_text_shows_the_operator_state() {
        let doc = |state: &str, up: bool| {
            json!({"services": [{"service": "http://80:a.b:1", "backends": [{
                "server": "rs1", "address": "10.0.0.1:1", "state": state, "up": up,
                "last_failure": "connect failed: refused", "retiring": false,
            }]}]})
        };
        let line = |v: &Value| {
            status_text(v)
                .lines()
                .find(|l| l.contains("10.0.0.1:1"))
                .unwrap()
                .to_owned()
        };
        let l = line(&doc("maint", false));
        assert!(
            l.contains("MAINT (moirai backend disable; no traffic; check: down (connect failed"),
            "{l}"
        );
        let l = line(&doc("drain", true));
        assert!(
            l.contains("DRAIN (moirai backend drain; sticky clients only; check: up)"),
            "{l}"
        );
        let l = line(&doc("up", true));
        assert!(l.contains(" up since") && !l.contains("MAINT"), "{l}");
    }
}
