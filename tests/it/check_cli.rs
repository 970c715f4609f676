//! `moirai check`: text and JSON reports, and the exit codes 0, 1 and 2.

use std::process::{Command, Output};

use std::time::Duration;

use crate::dns::{host, Dns, ZONE};
use crate::util::http::{ok, HttpBackend};
use crate::util::{free_port, metadata, temp_dir, Moirai};

fn check(json: &str, extra: &[&str]) -> Output {
    let dir = temp_dir("check");
    let md = dir.join("md.json");
    std::fs::write(&md, json).unwrap();
    Command::new(env!("CARGO_BIN_EXE_moirai"))
        .arg("check")
        .arg("--metadata-file")
        .arg(&md)
        .args(extra)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn valid_metadata_exits_0_with_one_line_per_service() {
    let out = check(
        r#"{"cloud.tritoncompute:loadbalancer":"true",
            "cloud.tritoncompute:portmap":"https-http://443:web.svc.acct.dc.cns.example.zone:8080{check:/healthz},http://80:web.svc.acct.dc.cns.example.zone"}"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("https-http")
            && lines[0].contains(":443")
            && lines[0].contains("GET /healthz"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("http ") && lines[1].contains("(SRV)"),
        "{text}"
    );
}

#[test]
fn json_has_the_documented_shape() {
    let out = check(
        r#"{"cloud.tritoncompute:loadbalancer":"true",
            "cloud.tritoncompute:portmap":"https-http://443:web.svc.acct.dc.cns.example.zone:8080{check:/healthz,port:9000,rise:3,fall:2} tcp://5432:[2001:db8::5]:5432 http://80:web.svc.acct.dc.cns.example.zone",
            "cloud.tritoncompute:certificate_name":"example.com,www.example.com",
            "cloud.tritoncompute:metrics_acl":"10.0.0.0/8",
            "cloud.tritoncompute:syslog":"logs.example.net:514",
            "cloud.tritoncompute:timeouts":"{connect:1s,client:30s}"}"#,
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json_of(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["services"][0],
        serde_json::json!({"type": "https-http", "listen": 443, "backend": "web.svc.acct.dc.cns.example.zone",
            "port": 8080, "resolve": "a", "verify_host": null, "check": {"path": "/healthz", "port": 9000, "rise": 3, "fall": 2}})
    );
    assert_eq!(v["services"][1]["resolve"], "ip");
    assert_eq!(v["services"][1]["backend"], "2001:db8::5");
    assert_eq!(v["services"][2]["resolve"], "srv");
    assert_eq!(v["services"][2]["port"], serde_json::Value::Null);
    assert_eq!(v["services"][2]["check"]["path"], serde_json::Value::Null);
    assert_eq!(v["errors"], serde_json::json!([]));
    assert_eq!(v["max_rs"], 32);
    assert_eq!(
        v["metrics"],
        serde_json::json!({"port": 8405, "acl": ["10.0.0.0/8"]})
    );
    assert_eq!(v["syslog"], "logs.example.net:514");
    assert_eq!(
        v["certificate_names"],
        serde_json::json!(["example.com", "www.example.com"])
    );
    assert_eq!(
        v["timeouts"],
        serde_json::json!({"connect_ms": 1000, "client_ms": 30000, "server_ms": 120000, "queue_ms": 0})
    );
}

#[test]
fn invalid_entries_exit_1_and_valid_ones_still_print() {
    let portmap = "http://80:web.example:8080,htp://81:web.example:8080,tcp://80:db.example:5432";
    let out = check(
        &serde_json::json!({"cloud.tritoncompute:loadbalancer": "true", "cloud.tritoncompute:portmap": portmap})
            .to_string(),
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["services"].as_array().unwrap().len(), 1);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["key"], "cloud.tritoncompute:portmap");
    assert_eq!(errors[0]["entry"], 1);
    assert_eq!(errors[0]["text"], "htp://81:web.example:8080");
    assert_eq!(errors[0]["offset"], 27);
    assert!(errors[0]["reason"]
        .as_str()
        .unwrap()
        .contains("unknown service type"));
    assert_eq!(errors[1]["entry"], 2);
    assert!(errors[1]["reason"]
        .as_str()
        .unwrap()
        .contains("already used by entry 0"));
    // The text form says the same, one error per line.
    let out = check(
        &serde_json::json!({"cloud.tritoncompute:loadbalancer": "true", "cloud.tritoncompute:portmap": portmap})
            .to_string(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("error: ")).count(),
        2,
        "{text}"
    );
}

#[test]
fn unreadable_source_and_usage_errors_exit_2() {
    let out = check("{not json", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read metadata"));
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["check", "--metadata-file", "/nonexistent.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["check", "--bogus-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["check", "--metadata-file", "a", "--mdata-socket", "b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn mdata_get_exit_codes() {
    let dir = temp_dir("mdata-get");
    let script = dir.join("mdata-get");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in\n  cloud.tritoncompute:loadbalancer) echo true ;;\n  cloud.tritoncompute:portmap) echo 'tcp://5432:10.0.0.9:5432' ;;\n  cloud.tritoncompute:syslog) echo 'mdata-get: failure' >&2; exit 2 ;;\n  *) exit 1 ;;\nesac\n",
    )
    .unwrap();
    let broken = dir.join("mdata-get-ok");
    std::fs::write(
        &broken,
        "#!/bin/sh\ncase \"$1\" in\n  cloud.tritoncompute:loadbalancer) echo true ;;\n  cloud.tritoncompute:portmap) echo 'tcp://5432:10.0.0.9:5432' ;;\n  *) exit 1 ;;\nesac\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    for s in [&script, &broken] {
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |p: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_moirai"))
            .args(["check", "--json", "--mdata-get"])
            .arg(p)
            .output()
            .unwrap()
    };
    // Exit 2 from mdata-get is an error, not an absent key.
    let out = run(&script);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exited 2"));
    let out = run(&broken);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_of(&out)["services"][0]["backend"], "10.0.0.9");
}

#[test]
fn version_and_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(v.starts_with("moirai 0."), "{v}");
    // The commit it was built from (or "unknown" outside a checkout).
    let commit = v
        .split("(commit ")
        .nth(1)
        .expect("a commit")
        .trim_end()
        .trim_end_matches(')');
    assert!(
        commit == "unknown"
            || commit
                .trim_end_matches("-modified")
                .bytes()
                .all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
}

/// Every row of the compatibility table (issue: metadata real Moirai runs
/// must run): accepted, running, listed under "warnings", exit 0.
#[test]
fn what_moirai_accepts_is_a_warning_and_exits_0() {
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "http://80:a.example:8080{rise:300,fall:2,fall:3} http://81:b.example:8080{check:healthz} http://82:c.example:8080{} http://83:d.example:8080{check:/x,rise:4",
        "cloud.tritoncompute:max_rs": "10",
        "cloud.tritoncompute:syslog": "logs.example.net",
    })
    .to_string();
    let out = check(&md, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json_of(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["errors"], serde_json::json!([]));
    let s = &v["services"];
    assert_eq!(s.as_array().unwrap().len(), 4);
    assert_eq!(s[0]["check"]["rise"], 300);
    assert_eq!(s[0]["check"]["fall"], 3, "the last value wins");
    assert_eq!(s[1]["check"]["path"], "/healthz");
    assert_eq!(s[2]["check"]["path"], serde_json::Value::Null);
    assert_eq!(s[3]["check"]["path"], "/x");
    assert_eq!(s[3]["check"]["rise"], 4);
    assert_eq!(v["max_rs"], 32);
    assert_eq!(v["syslog"], "logs.example.net:514");
    let reasons: Vec<String> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["reason"].as_str().unwrap().to_owned())
        .collect();
    // `{}` runs here; Moirai's parameter parser refuses it (a mixed pair
    // differs), which comes last, with every other difference from Moirai.
    let expect = [
        "rise 300 is above 100",
        "\"fall\" is given twice; the last value is used",
        "does not start with '/'; using \"/healthz\"",
        "no closing '}'",
        "10 is outside 32 to 1024; using 32",
        "moirai accepts an empty parameter; Triton-Moirai drops this portmap entry",
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for (r, e) in reasons.iter().zip(expect) {
        assert!(r.contains(e), "{r:?} should say {e:?}");
    }
    // The text form prints them as warnings, still exit 0.
    let out = check(&md, &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("warning: ")).count(),
        6,
        "{text}"
    );
    assert!(!text.contains("error:"), "{text}");
}

#[test]
fn metrics_port_on_a_service_port_exits_1() {
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "http://8405:a.example:8080",
        "cloud.tritoncompute:metrics_acl": "10.0.0.0/8",
    })
    .to_string();
    let out = check(&md, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["metrics"], serde_json::Value::Null);
    assert_eq!(v["errors"][0]["key"], "cloud.tritoncompute:metrics_port");
    assert!(v["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("listen port of portmap entry 0"));
}

/// The guide's TLS example: `moirai check` says tls-alpn-01 comes first;
/// without a listener on 443 or 80 and with a metadata file (which cannot
/// write, so no dns-01), no challenge can work: exit 1.
#[test]
fn check_says_which_acme_challenge_comes_first() {
    let guide = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "https-http://443:web.svc.example.cns.tritoncompute:8080{check:/healthz}",
        "cloud.tritoncompute:certificate_name": "example.com,www.example.com",
    })
    .to_string();
    let out = check(&guide, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_of(&out);
    assert_eq!(
        v["acme"],
        serde_json::json!({"challenge": "tls-alpn-01", "fallback": null})
    );
    let text = String::from_utf8(check(&guide, &[]).stdout).unwrap();
    assert!(
        text.contains("certificate example.com, www.example.com: ACME by tls-alpn-01"),
        "{text}"
    );
    // An http service on 80 and no TLS on 443: http-01.
    let http = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "http://80:web.example:8080 https-http://8443:web.example:8080",
        "cloud.tritoncompute:certificate_name": "example.com",
    })
    .to_string();
    assert_eq!(
        json_of(&check(&http, &["--json"]))["acme"]["challenge"],
        "http-01"
    );
    // Pinned by the operator.
    let pinned = check(&guide, &["--json", "--acme-challenge", "tls-alpn-01"]);
    assert_eq!(json_of(&pinned)["acme"]["challenge"], "tls-alpn-01");
    // Nothing can work.
    let none = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "https-http://8443:web.example:8080",
        "cloud.tritoncompute:certificate_name": "example.com",
    })
    .to_string();
    let out = check(&none, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["acme"], serde_json::Value::Null);
    assert_eq!(
        v["errors"][0]["key"],
        "cloud.tritoncompute:certificate_name"
    );
    assert!(v["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("no ACME challenge can work"));
}

fn warnings_of(v: &serde_json::Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// `moirai run` exits 96 without `loadbalancer` "true": `check` says so
/// and exits 1.
#[test]
fn load_balancing_off_exits_1_with_the_reason() {
    for md in [
        r#"{"cloud.tritoncompute:portmap":"http://80:a.example:8080"}"#,
        r#"{"cloud.tritoncompute:loadbalancer":"false","cloud.tritoncompute:portmap":"http://80:a.example:8080"}"#,
    ] {
        let out = check(md, &[]);
        assert_eq!(out.status.code(), Some(1), "{md}");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or("");
        assert!(
            line.starts_with("error: cloud.tritoncompute:loadbalancer: load balancing is off")
                && line.contains("exits 96"),
            "{text}"
        );
        assert_eq!(json_of(&check(md, &["--json"]))["valid"], false);
    }
}

/// A misspelt key, type or parameter: the closest known name is named.
#[test]
fn unknown_names_say_the_closest_known_one() {
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "http://80:a.example:8080 htp://81:a.example:8080 http://82:a.example:8080{chek:/h}",
        "cloud.tritoncompute:certifcate_name": "example.com",
    })
    .to_string();
    let out = check(&md, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        errors[0].contains("\"htp\" (did you mean `http`?)"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("\"chek\" (did you mean `check`?)"),
        "{errors:?}"
    );
    let w = &v["warnings"][0];
    assert_eq!(w["key"], "cloud.tritoncompute:certifcate_name");
    assert_eq!(
        w["reason"],
        "unknown key, ignored (did you mean `certificate_name`?)"
    );
}

#[test]
fn an_empty_portmap_is_a_warning() {
    let out = check(r#"{"cloud.tritoncompute:loadbalancer":"true"}"#, &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "warning: cloud.tritoncompute:portmap: the portmap is empty: no service runs"
        ),
        "{text}"
    );
}

/// A mixed pair (Moirai and moirai on the same metadata) differs wherever
/// an extension of ours is used: each is a warning naming what Moirai does.
#[test]
fn extensions_and_port_65535_say_what_moirai_does() {
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "https://443:a.example:8443{verify_host:api.example.com} tcp://65535:b.example:5432 tcp://5432:[2001:db8::5]:5432",
        "cloud.tritoncompute:timeouts": "{connect:1s client:30s}",
    })
    .to_string();
    let out = check(&md, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "warnings only");
    let v = json_of(&out);
    assert_eq!(v["services"].as_array().unwrap().len(), 3, "all run here");
    let w = warnings_of(&v);
    let drops = "Triton-Moirai drops this portmap entry (the service does not run there)";
    assert_eq!(
        w,
        [
            format!("moirai accepts the parameter \"verify_host\"; {drops}"),
            format!("moirai accepts port 65535; {drops}"),
            format!("moirai accepts an IPv6 backend literal; {drops}"),
            "moirai accepts a space between timeouts; Triton-Moirai refuses this key (its defaults run there)".to_owned(),
        ]
    );
    assert_eq!(v["warnings"][1]["entry"], 1);
}

/// Spaces Moirai trims (around a name or a value) are no extension; our
/// `tunnel` timeout is one (Moirai refuses the whole key), and `0` says
/// that no timeout is in force.
#[test]
fn timeouts_moirai_reads_alike_and_the_tunnel_timeout() {
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": "http://80:a.example:8080",
        "cloud.tritoncompute:timeouts": "{ server: 0 , client : 30 s, tunnel:1h }",
    })
    .to_string();
    let out = check(&md, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "warnings only");
    let v = json_of(&out);
    let w = warnings_of(&v);
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].starts_with("server:0 means no server timeout"),
        "{w:#?}"
    );
    assert_eq!(
        w[1],
        "moirai accepts the timeout \"tunnel\"; Triton-Moirai refuses this key (its defaults run there)"
    );
    assert_eq!(v["timeouts"]["server_ms"], 0);
    assert_eq!(v["timeouts"]["client_ms"], 30_000);
}

/// `--resolve` asks DNS now, as `run` would: a name with two A records,
/// an NXDOMAIN one, an IP literal and a hosts-file name.
#[test]
fn resolve_says_per_service_how_many_addresses_or_why_none() {
    let dns = Dns::start(&[host("web.svc", "127.0.0.2"), host("web.svc", "127.0.0.3")]);
    let dir = temp_dir("check-resolve");
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.7 pinned.test\n").unwrap();
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": format!(
            "http://80:web.svc.{ZONE}:8080 http://81:gone.svc.{ZONE}:8080 tcp://82:10.0.0.9:5 tcp://83:pinned.test:6"
        ),
    })
    .to_string();
    let ns = dns.nameserver();
    let args = [
        "--resolve",
        "--nameserver",
        &ns,
        "--hosts-file",
        hosts.to_str().unwrap(),
    ];
    let start = std::time::Instant::now();
    let out = check(&md, &args);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "  2 addresses from DNS: 127.0.0.2:8080 127.0.0.3:8080",
        "  no backends from DNS: NXDOMAIN",
        "  1 address from the portmap: 10.0.0.9:5",
        "  1 address from hosts file: 127.0.0.7:6",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v = json_of(&check(&md, &json_args));
    assert_eq!(
        v["services"][0]["resolved"],
        serde_json::json!({"source": "DNS", "backends": ["127.0.0.2:8080", "127.0.0.3:8080"], "none": null})
    );
    assert!(v["services"][1]["resolved"]["none"]
        .as_str()
        .unwrap()
        .starts_with("NXDOMAIN"));
    // Without --resolve nothing is asked.
    assert_eq!(
        json_of(&check(&md, &["--json"]))["services"][0]["resolved"],
        serde_json::Value::Null
    );
}

/// `moirai status` (text) shows a backend the operator took out: MAINT
/// after `backend disable`, DRAIN after `backend drain`.
#[test]
fn status_text_shows_maint_and_drain() {
    let web = HttpBackend::start("127.0.0.2:0", |_| ok("A"));
    let bport = web.port();
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("http://{port}:web.test:{bport}")),
        "127.0.0.2 web.test\n",
        &[],
    );
    let addr = format!("127.0.0.2:{bport}");
    let line = |m: &Moirai| {
        let text = m.status(false);
        text.lines()
            .find(|l| l.contains(&addr))
            .unwrap_or_else(|| panic!("no line for {addr} in\n{text}"))
            .to_owned()
    };
    let ctl = |action: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
            .args(["backend", action, &port.to_string(), &addr, "--state-dir"])
            .arg(m.dir.join("state"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    };
    assert!(!line(&m).contains("MAINT"));
    ctl("disable");
    let l = line(&m);
    assert!(l.contains(" MAINT (moirai backend disable"), "{l}");
    ctl("drain");
    let l = line(&m);
    assert!(l.contains(" DRAIN (moirai backend drain"), "{l}");
    ctl("enable");
    let l = line(&m);
    assert!(!l.contains("MAINT") && !l.contains("DRAIN"), "{l}");
}
