//! What an operator relies on under SMF: a daemon that fails loudly at
//! start (exit 96, one line, so `svcs -x` points at it) and keeps serving
//! when the metadata goes wrong later.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::http::{get, ok, Client, HttpBackend};
use crate::util::{free_port, local, metadata, temp_dir, Moirai};

/// `PROGRAM run` on a metadata file and a state directory of its own,
/// one worker, no DNS server, no error log, stderr to `stderr`: for
/// tests that start, restart or replace the program themselves.
fn spawn_run(
    program: &std::path::Path,
    metadata: &std::path::Path,
    state_dir: &std::path::Path,
    extra: &[&str],
    stderr: Stdio,
) -> std::process::Child {
    Command::new(program)
        .args(["run", "--metadata-file"])
        .arg(metadata)
        .arg("--state-dir")
        .arg(state_dir)
        .args(["--workers", "1", "--nameserver", "127.0.0.1:9"])
        .args(if extra.contains(&"--error-log") {
            &[][..]
        } else {
            &["--error-log", "none"][..]
        })
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Runs `moirai run` on a metadata file until it exits (at most `limit`):
/// (exit code, stderr).
fn run_until_exit(
    metadata: Option<&str>,
    extra: &[&str],
    limit: Duration,
) -> (Option<i32>, String) {
    let dir = temp_dir("fail-loudly");
    let md = dir.join("metadata.json");
    if let Some(text) = metadata {
        std::fs::write(&md, text).unwrap();
    }
    let err = dir.join("stderr");
    let mut child = spawn_run(
        std::path::Path::new(env!("CARGO_BIN_EXE_moirai")),
        &md,
        &dir.join("state"),
        extra,
        std::fs::File::create(&err).unwrap().into(),
    );
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(err).unwrap())
}

#[test]
fn at_start_without_loadbalancer_true_moirai_exits_96() {
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "flase",
        "cloud.tritoncompute:portmap": "http://8080:10.0.0.1:80",
    })
    .to_string();
    let (code, err) = run_until_exit(Some(&md), &[], Duration::from_secs(10));
    assert_eq!(code, Some(96), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("moirai: cloud.tritoncompute:loadbalancer is \"flase\""),
        "{err}"
    );
}

#[test]
fn at_start_unreadable_metadata_exits_96_after_the_limit() {
    let start = Instant::now();
    let (code, err) = run_until_exit(None, &["--startup-timeout", "2s"], Duration::from_secs(10));
    assert_eq!(code, Some(96), "{err}");
    assert!(start.elapsed() >= Duration::from_secs(2));
    let last = err.lines().last().unwrap();
    assert!(last.contains("cannot read the metadata from file"), "{err}");
}

#[test]
fn loadbalancer_flipping_away_from_true_keeps_serving() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("up"));
    let port = free_port();
    let md = metadata(&format!("http://{port}:127.0.0.1:{}", web.port()));
    let m = Moirai::start(&md, "", &[]);
    for bad in ["flase", ""] {
        let mut v: serde_json::Value = serde_json::from_str(&md).unwrap();
        v["cloud.tritoncompute:loadbalancer"] = bad.into();
        m.set_metadata(&v.to_string());
        m.wait_log("keeping the running configuration", Duration::from_secs(5));
        // Several reads later, still serving.
        std::thread::sleep(Duration::from_millis(2500));
        let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
        assert_eq!(r.status, 200);
        let status = m.status(false);
        assert!(
            status.contains("the running configuration is kept"),
            "{status}"
        );
        m.set_metadata(&md);
        m.wait_log("loadbalancer is \"true\" again", Duration::from_secs(5));
    }
    // Said once per episode, not at every read.
    assert_eq!(
        m.log_text()
            .matches("keeping the running configuration")
            .count(),
        2
    );
}

/// Without the syslog key, errors still leave a trace on the box: one line
/// per service and interval in the local error log, not one per request.
#[test]
fn errors_are_aggregated_in_the_local_error_log() {
    let port = free_port();
    // Nothing listens at the backend: every request is a 503.
    let dead = free_port();
    let m = Moirai::start(
        &crate::util::metadata_exact(&format!("http://{port}:127.0.0.1:{dead}")),
        "",
        &[],
    );
    for _ in 0..37 {
        let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
        assert_eq!(r.status, 503);
    }
    let r = Client::connect(local(port))
        .exchange(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 400);
    let log = m.dir.join("errors.log");
    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("× 503 no backend") {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no error line:\n{}",
            m.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let total: u64 = text
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .flat_map(|rest| rest.split(", "))
        .filter(|p| p.contains("× 503 no backend"))
        .map(|p| p.split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 37, "{text}");
    assert!(
        text.contains(&format!("service :{port} (http): ")),
        "{text}"
    );
    assert!(
        text.lines().count() < 10,
        "aggregated, not per request:\n{text}"
    );
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("1 × 400 bad request")
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `svcadm restart` runs stop then start: an idle browser connection must
/// not hold the drain open for the whole grace. Idle keep-alive
/// connections close at once, a request in flight finishes with
/// `Connection: close`, tcp keeps its grace, and `moirai status` answers
/// throughout.
#[test]
fn a_drain_closes_idle_keep_alive_at_once_and_finishes_requests_in_flight() {
    use std::io::{Read, Write};
    let slow = HttpBackend::start("127.0.0.1:0", |req| {
        if req.path == "/slow" {
            std::thread::sleep(Duration::from_millis(1500));
        }
        ok("done")
    });
    let echo =
        crate::util::backend::Backend::start("127.0.0.1:0", crate::util::backend::Behaviour::Echo);
    let (hp, tp) = (free_port(), free_port());
    let mut m = Moirai::start(
        &metadata(&format!(
            "http://{hp}:127.0.0.1:{} tcp://{tp}:127.0.0.1:{}",
            slow.port(),
            echo.addr.port()
        )),
        "",
        &["--grace", "20s"],
    );
    // An idle keep-alive client (one request served), a request in
    // flight, and a tcp connection.
    let mut idle = Client::connect(local(hp));
    assert_eq!(idle.exchange(&get("/")).unwrap().status, 200);
    let mut busy = std::net::TcpStream::connect(local(hp)).unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut tcp = crate::util::connect_within(local(tp), Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    m.signal("TERM");
    // The idle one is closed at once.
    idle.r
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(idle.closed(), "the idle keep-alive connection is closed");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // Status answers during the drain.
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    assert_eq!(v["draining"], true);
    // The request in flight gets its answer, with Connection: close.
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    busy.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    // The tcp connection still works (its grace is 20 s).
    assert_eq!(
        crate::util::roundtrip(&mut tcp, b"still").unwrap(),
        b"still"
    );
    drop(tcp);
    assert_eq!(m.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// `moirai status` answers "what is failing, since when, how much"
/// without any metrics setup.
#[test]
fn status_says_what_is_failing_since_when_and_how_much() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let port = free_port();
    let m = Moirai::start(
        &crate::util::metadata_exact(&format!(
            "https-http://{port}:127.0.0.1:{}{{check:/healthz}}",
            web.port()
        )),
        "",
        &[],
    );
    let (ok, body) = crate::tls::curl(port, &[]);
    assert!(ok, "{body}");
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    assert_eq!(v["pid"], m.pid());
    assert!(v["uptime_s"].as_u64().is_some());
    assert!(
        v["applied_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    assert_eq!(v["draining"], false);
    let s = &v["services"][0];
    assert_eq!(s["listening"], true);
    assert_eq!(s["connections_total"], 1);
    assert_eq!(s["responses"]["2xx"], 1);
    assert_eq!(s["check"]["type"], "http");
    assert_eq!(s["check"]["path"], "/healthz");
    let b = &s["backends"][0];
    assert_eq!(b["state"], "up");
    assert_eq!(b["server"], "rs1");
    assert_eq!(b["transitions"], 1);
    assert!(b["since"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(b["sessions_total"], 1);
    assert_eq!(b["responses_5xx"], 0);
    assert!(b["check_ms"].as_f64().is_some());
    let c = &v["certificates"][0];
    assert_eq!(c["source"], "self-signed");
    assert!(c["issuer"].as_str().is_some_and(|i| !i.is_empty()), "{c}");
    assert!(c["not_after"].as_str().is_some());
    let text = m.status(false);
    for want in [
        "pid ",
        "certificate (self-signed)",
        "rs1",
        "since ",
        "(1 changes)",
        "check http",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
}

fn moirai_cmd(m: &Moirai, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(args)
        .arg("--state-dir")
        .arg(m.dir.join("state"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The hosts file naming both backends of [`two_backends_by_name`].
const BOTH_NAMED: &str = "127.0.0.2 web.test\n127.0.0.3 web.test\n";

/// Two backends on one port, 127.0.0.2 answering `A` and 127.0.0.3
/// answering `B` (named `web.test` by [`BOTH_NAMED`]); a free port for the
/// service in front of them, and the backends' port.
fn two_backends_by_name() -> ([HttpBackend; 2], u16, u16) {
    let a = HttpBackend::start("127.0.0.2:0", |_| ok("A"));
    let bport = a.port();
    let b = HttpBackend::start(&format!("127.0.0.3:{bport}"), |_| ok("B"));
    ([a, b], free_port(), bport)
}

/// Maintenance without editing metadata: disable, drain and enable a
/// backend over the control socket, kept across a restart; log level and
/// ACME retry too; the socket is the owner's only.
#[test]
fn run_time_controls_over_the_control_socket() {
    let (_backends, port, bport) = two_backends_by_name();
    let md = metadata(&format!("http://{port}:web.test:{bport}"));
    let m = Moirai::start(&md, BOTH_NAMED, &[]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(m.dir.join("state/moirai.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "root (the owner) only");
    let bodies = |n: usize| -> std::collections::BTreeSet<String> {
        (0..n)
            .map(|_| {
                let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
                String::from_utf8(r.body).unwrap()
            })
            .collect()
    };
    assert_eq!(bodies(6).len(), 2);
    // A sticky client of B, before B is drained.
    let first_b = loop {
        let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
        if r.body == b"B" {
            break r;
        }
    };
    let cookie = first_b
        .headers("set-cookie")
        .into_iter()
        .find_map(|c| {
            c.strip_prefix("CLOUD-TRITONCOMPUTE-RS=")
                .map(|v| v.split(';').next().unwrap().to_owned())
        })
        .unwrap();
    let b_addr = format!("127.0.0.3:{bport}");
    let (code, said) = moirai_cmd(&m, &["backend", "drain", &port.to_string(), &b_addr]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with("ok: "), "{said}");
    // New clients avoid B; B's sticky client keeps it.
    assert_eq!(bodies(6), ["A".to_owned()].into());
    let req =
        format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: CLOUD-TRITONCOMPUTE-RS={cookie}\r\n\r\n");
    assert_eq!(
        Client::connect(local(port))
            .exchange(req.as_bytes())
            .unwrap()
            .body,
        b"B"
    );
    // Disabled: nobody, not even the sticky client.
    let (code, _) = moirai_cmd(&m, &["backend", "disable", &port.to_string(), &b_addr]);
    assert_eq!(code, Some(0));
    assert_eq!(
        Client::connect(local(port))
            .exchange(req.as_bytes())
            .unwrap()
            .body,
        b"A"
    );
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    let b = v["services"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == b_addr.as_str())
        .unwrap()
        .clone();
    assert_eq!(b["state"], "maint");
    // Kept across a restart (same state directory).
    let dir = m.dir.clone();
    let (code, said) = moirai_cmd(&m, &["backend", "disable", &port.to_string(), "10.9.9.9:1"]);
    assert_eq!(code, Some(1), "an unknown backend is refused: {said}");
    let (code, said) = moirai_cmd(&m, &["log-level", "debug"]);
    assert_eq!((code, said.trim()), (Some(0), "ok: log level DEBUG"));
    let (code, said) = moirai_cmd(&m, &["acme", "retry"]);
    assert_eq!(code, Some(1));
    assert!(said.contains("no certificate is being ordered"), "{said}");
    let mut m = m;
    m.signal("KILL");
    let _ = m.wait_exit(Duration::from_secs(5));
    let hosts = m.hosts.display().to_string();
    let mut again = spawn_run(
        std::path::Path::new(env!("CARGO_BIN_EXE_moirai")),
        &m.metadata,
        &dir.join("state"),
        &["--hosts-file", &hosts],
        Stdio::null(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        bodies(4),
        ["A".to_owned()].into(),
        "still disabled after a restart"
    );
    let (code, _) = moirai_cmd(&m, &["backend", "enable", &port.to_string(), &b_addr]);
    assert_eq!(code, Some(0));
    let start = Instant::now();
    while bodies(6).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "B back in rotation"
        );
    }
    let _ = again.kill();
    let _ = again.wait();
}

/// Under SMF, `svcadm refresh` re-reads the service's config properties:
/// those that can apply live do, without a restart.
#[test]
fn refresh_applies_smf_config_properties_live() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("svcprop");
    let props = dir.join("props");
    std::fs::write(
        &props,
        "config/log_level astring debug\nconfig/grace astring 30s\n",
    )
    .unwrap();
    let stub = dir.join("svcprop");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\n[ \"$3\" = svc:/network/moirai:default ] || exit 1\ncat {}\n",
            props.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let port = free_port();
    let m = Moirai::start_env(
        &metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
        &[],
        &[("SMF_FMRI", "svc:/network/moirai:default"), ("PATH", &path)],
    );
    // The operator's `svccfg setprop` then `svcadm refresh`.
    std::fs::write(
        &props,
        "config/log_level astring warn\nconfig/grace astring 5s\nconfig/workers count 4\n",
    )
    .unwrap();
    m.signal("HUP");
    m.wait_log(
        "refresh: config/log_level is now warn",
        Duration::from_secs(5),
    );
    m.wait_log("refresh: config/grace is now 5s", Duration::from_secs(5));
    // Info lines are gone now: the next refresh outcome is not logged.
    let before = m.log_text().matches("refresh: no change").count();
    m.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(m.log_text().matches("refresh: no change").count(), before);
}

/// The optional full local access log: every request, one line each, in
/// HAProxy's httplog text (as the image's /var/log/haproxy.log), without
/// the syslog key.
#[test]
fn the_access_log_option_writes_every_request_locally() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let port = free_port();
    let dir = temp_dir("access-log");
    let path = dir.join("log/access.log");
    let m = Moirai::start(
        &metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
        "",
        &["--access-log", path.to_str().unwrap()],
    );
    for i in 0..3 {
        let r = Client::connect(local(port))
            .exchange(&get(&format!("/a{i}")))
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() >= 3 {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, l) in lines.iter().enumerate() {
        assert!(!l.starts_with('<'), "no syslog priority in a file: {l}");
        assert!(
            l.contains(&format!(" moirai[{}]: 127.0.0.1:", m.pid())),
            "{l}"
        );
        assert!(l.contains(" fe0 be0/rs1 "), "{l}");
        assert!(l.ends_with(&format!("\"GET /a{i} HTTP/1.1\"")), "{l}");
    }
    // Owner-only, and nothing another local process could send a line
    // to: the workers write into a pipe, and moirai (no syslog key here)
    // holds no UDP socket at all.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(udp_sockets_of(m.pid()), 0);
}

/// How many UDP sockets (IPv4 and IPv6) process `pid` holds.
fn udp_sockets_of(pid: u32) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .flat_map(|t| {
            std::fs::read_to_string(t)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .filter(|inode| inodes.contains(inode))
        .count()
}

/// A log path another user could choose the file of is refused at start,
/// with the reason, for the access log and the error log alike: a
/// symbolic link (to a root-owned file, which stays untouched), or a
/// directory anybody can write to.
#[test]
fn log_files_moirai_cannot_own_are_refused_at_start() {
    let md = metadata("http://18080:127.0.0.1:9");
    let dir = temp_dir("log-refused");
    let target = dir.join("crontab");
    std::fs::write(&target, "root's file\n").unwrap();
    let link = dir.join("access.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let open = temp_dir("log-open-dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let open_log = open.join("access.log");
    for (flag, path, why) in [
        ("--access-log", &link, "is a symbolic link"),
        ("--error-log", &link, "is a symbolic link"),
        ("--access-log", &open_log, "is writable by anybody"),
        ("--error-log", &open_log, "is writable by anybody"),
    ] {
        let (code, err) = run_until_exit(
            Some(&md),
            &[flag, path.to_str().unwrap()],
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(2), "{flag} {}: {err}", path.display());
        assert!(err.contains(why), "{flag}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's file\n");
    assert!(!open_log.exists());
}

/// A drained backend that DNS (here the hosts file) stops naming can still
/// be enabled: otherwise it would come back drained, and the operator could
/// not undo it (found by the chaos soak: its `web` service ran on one
/// backend while another, back in DNS, stayed drained).
#[test]
fn a_drained_backend_gone_from_dns_can_be_enabled() {
    let (_backends, port, bport) = two_backends_by_name();
    let md = metadata(&format!("http://{port}:web.test:{bport}"));
    let m = Moirai::start(&md, BOTH_NAMED, &[]);
    let b_addr = format!("127.0.0.3:{bport}");
    let (code, said) = moirai_cmd(&m, &["backend", "drain", &port.to_string(), &b_addr]);
    assert_eq!(code, Some(0), "{said}");
    // B leaves the name.
    crate::util::write_atomic(&m.hosts, "127.0.0.2 web.test\n");
    let start = Instant::now();
    while m.status(false).contains("127.0.0.3") {
        assert!(start.elapsed() < Duration::from_secs(10), "B still listed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, said) = moirai_cmd(&m, &["backend", "enable", &port.to_string(), &b_addr]);
    assert_eq!(
        code,
        Some(0),
        "enable of a remembered, absent backend: {said}"
    );
    // An address never configured is still refused (a typo).
    let (code, _) = moirai_cmd(&m, &["backend", "enable", &port.to_string(), "127.0.0.9:1"]);
    assert_eq!(code, Some(1));
    // B is named again and takes new clients, not drained.
    crate::util::write_atomic(&m.hosts, BOTH_NAMED);
    let start = Instant::now();
    loop {
        let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
        if r.body == b"B" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "B never served again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `moirai upgrade`: new connections keep coming (each request on a new
/// connection) across the hand-over: none refused, none failed, the same
/// PID, and a request in flight finishes on the old program.
#[test]
fn an_upgrade_refuses_and_fails_nothing() {
    upgrade_under_load(&[]);
}

/// The same with one listening socket shared by the workers, as on
/// illumos.
#[test]
fn an_upgrade_with_shared_listeners_refuses_and_fails_nothing() {
    upgrade_under_load(&["--shared-listener"]);
}

/// New connections to a port, one request each, from 3 threads until
/// stopped: what clients of a balancer being upgraded do.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let threads = (0..3)
            .map(|_| {
                let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let ok = std::net::TcpStream::connect(local(port))
                            .ok()
                            .and_then(|s| {
                                s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
                                Client::from_stream(s).try_exchange(&get("/"))
                            })
                            .is_some_and(|r| r.status == 200);
                        if ok {
                            done.fetch_add(1, Ordering::SeqCst);
                        } else {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            done,
            failed,
            threads,
        }
    }

    /// Requests answered so far.
    fn done(&self) -> u64 {
        self.done.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops; (answered, failed).
    fn finish(self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.done.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

fn upgrade_under_load(extra: &[&str]) {
    let web = HttpBackend::start("127.0.0.1:0", |req| {
        if req.path == "/slow" {
            std::thread::sleep(Duration::from_millis(700));
        }
        ok("W")
    });
    let port = free_port();
    let mut m = Moirai::start(
        &metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
        "",
        extra,
    );
    let pid = m.pid();
    let load = Load::start(port);
    std::thread::sleep(Duration::from_millis(500));
    let mut slow = std::net::TcpStream::connect(local(port)).unwrap();
    std::io::Write::write_all(&mut slow, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    m.upgrade();
    // The request in flight finishes on the old program.
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut slow, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    m.wait_log("listening sockets inherited", Duration::from_secs(10));
    // The upgraded program (not its stand-in) serves.
    m.wait_log("upgrade: serving; stand-in", Duration::from_secs(10));
    let before = load.done();
    std::thread::sleep(Duration::from_millis(1000));
    let (done, failed) = load.finish();
    assert_eq!(failed, 0, "{}", m.log_text());
    assert!(done > before + 20, "the new program serves");
    assert!(m.is_running());
    assert_eq!(m.pid(), pid);
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    assert_eq!(v["pid"], pid, "the same process, a new program");
}

/// One `tcp` service in front of an echo backend on 127.0.0.1; the
/// backend, the service's port and moirai.
fn tcp_echo_lb() -> (crate::util::backend::Backend, u16, Moirai) {
    use crate::util::backend::{Backend, Behaviour};
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port())),
        "",
        &[],
    );
    (echo, port, m)
}

/// Sends `msg` and asserts the same bytes come back.
fn echoes(s: &mut std::net::TcpStream, msg: &[u8]) {
    assert_eq!(crate::util::roundtrip(s, msg).unwrap(), msg);
}

/// `moirai upgrade` while a long tcp connection is open: new connections
/// are served at once (by the stand-in, then the upgraded program), not
/// after the open one ends; the open one carries on, and the stand-in
/// ends once it has. The chaos soak found new connections waiting 11.5 s
/// in the accept queue behind long streams (up to the grace period).
#[test]
fn an_upgrade_does_not_make_new_connections_wait_for_long_ones() {
    let (_echo, port, m) = tcp_echo_lb();
    let pid = m.pid();
    let mut long = std::net::TcpStream::connect(local(port)).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    echoes(&mut long, b"before");
    m.upgrade();
    m.wait_log("stand-in", Duration::from_secs(5));
    // New connections while the long one is open: each answered within
    // 6 s (the stand-in starts and checks the backend; the default grace
    // is 30 s).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let mut c = std::net::TcpStream::connect(local(port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        echoes(&mut c, b"new");
        assert!(t.elapsed() < Duration::from_secs(6), "{}", m.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The long connection, opened before the upgrade, still works: the
    // old program finishes it; once it ends, the upgrade completes.
    echoes(&mut long, b"after");
    drop(long);
    m.wait_log("upgrade: serving; stand-in", Duration::from_secs(10));
    m.wait_log("ended", Duration::from_secs(10));
    let mut c = std::net::TcpStream::connect(local(port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    echoes(&mut c, b"upgraded");
    // The control socket is the upgraded program's (a stand-in binds
    // none), and it is this process.
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    assert_eq!(v["pid"], pid);
}

/// `moirai status` while an upgrade's old program drains answers with the
/// view of the stand-in, which takes the new connections: a backend that
/// fails meanwhile shows down. The chaos soak saw 503s from the stand-in
/// (its CNS name gone) while `moirai status` still showed the draining
/// program's frozen view, every backend up.
#[test]
fn status_during_an_upgrade_is_the_stand_ins_view() {
    use crate::util::backend::{Backend, Behaviour};
    // One service carries a long connection (the old program drains until
    // it ends); the other's backend is checked on its own port, and fails.
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let doomed = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let (port, other) = (free_port(), free_port());
    let d = doomed.addr.port();
    let m = Moirai::start(
        &metadata(&format!(
            "tcp://{port}:127.0.0.1:{},tcp://{other}:127.0.0.1:{d}{{port:{d}}}",
            echo.addr.port()
        )),
        "",
        &[],
    );
    let pid = m.pid();
    let mut long = std::net::TcpStream::connect(local(port)).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    echoes(&mut long, b"before");
    m.upgrade();
    m.wait_log("stand-in", Duration::from_secs(5));
    let status = || -> serde_json::Value { serde_json::from_str(&m.status(true)).unwrap() };
    let backend_up = |v: &serde_json::Value| {
        let mut services = v["services"].as_array().unwrap().iter();
        let s = services.find(|s| s["listen"] == other);
        s.unwrap_or_else(|| panic!("no :{other} in {v}"))["backends"][0]["up"].clone()
    };
    // The stand-in answers once it has started.
    let start = Instant::now();
    let v = loop {
        let v = status();
        if v["pid"] != pid {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{}", m.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["stand_in_for"], pid, "{v}");
    assert!(m.status(false).contains("upgrade in progress"));
    // The stand-in's own socket answers nothing but `status`.
    let ask_standin = |line: &str| {
        let mut s =
            std::os::unix::net::UnixStream::connect(m.dir.join("state/moirai.standin.sock"))
                .unwrap();
        std::io::Write::write_all(&mut s, format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        answer
    };
    assert!(
        ask_standin("log-level debug").starts_with("error: this is an upgrade's stand-in"),
        "{}",
        ask_standin("log-level debug")
    );
    let stand_in = v["pid"].clone();
    // The backend fails while the old program still drains.
    drop(doomed);
    let start = Instant::now();
    let v = loop {
        let v = status();
        if backend_up(&v) == false {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(8), "{v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(v["pid"], stand_in, "{v}");
    // Done draining: the upgraded program answers for itself again.
    drop(long);
    m.wait_log("upgrade: serving; stand-in", Duration::from_secs(10));
    let v = status();
    assert_eq!(v["pid"], pid);
    assert!(v["stand_in_for"].is_null(), "{v}");
}

/// The metadata broken (`loadbalancer: ture`) after an upgrade's pre-flight
/// passed, while the old program drains: the upgraded program serves the
/// configuration the old one served, as the old one would have kept doing,
/// instead of exiting 96 (the chaos soak lost the whole balancer so).
#[test]
fn an_upgrade_onto_broken_metadata_keeps_serving() {
    let (_echo, port, mut m) = tcp_echo_lb();
    // A long connection keeps the old program draining.
    let mut long = std::net::TcpStream::connect(local(port)).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    echoes(&mut long, b"before");
    m.upgrade();
    m.wait_log("stand-in", Duration::from_secs(5));
    m.set_metadata(&serde_json::json!({"cloud.tritoncompute:loadbalancer": "ture"}).to_string());
    std::thread::sleep(Duration::from_millis(300));
    drop(long);
    m.wait_log("until the metadata is fixed", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    assert!(m.is_running(), "{}", m.log_text());
    let mut c = std::net::TcpStream::connect(local(port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    echoes(&mut c, b"after");
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    assert!(v["loadbalancer_kept"].is_string(), "{v}");
}

/// `moirai run` from a copy of the binary in `dir` (so a test can replace
/// it), serving one http service, once its backend is checked.
struct Copied {
    bin: std::path::PathBuf,
    port: u16,
    log: std::path::PathBuf,
    child: std::process::Child,
    _web: HttpBackend,
}

fn run_a_copy(dir: &std::path::Path) -> Copied {
    let bin = dir.join("moirai");
    std::fs::copy(env!("CARGO_BIN_EXE_moirai"), &bin).unwrap();
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let port = free_port();
    let md = dir.join("md.json");
    std::fs::write(
        &md,
        metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
    )
    .unwrap();
    let log = dir.join("log");
    let child = spawn_run(
        &bin,
        &md,
        &dir.join("state"),
        &[],
        std::fs::File::create(&log).unwrap().into(),
    );
    wait_for(&log, "health: every backend checked");
    Copied {
        bin,
        port,
        log,
        child,
        _web: web,
    }
}

/// Waits (10 s at most) until the file `log` holds `needle`.
fn wait_for(log: &std::path::Path, needle: &str) {
    let start = Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no {needle:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new binary installed at the same path: `svcadm refresh` (SIGHUP)
/// upgrades to it, with the same hand-over.
#[test]
fn refresh_after_installing_a_new_binary_upgrades() {
    let dir = temp_dir("new-binary");
    let Copied {
        bin,
        port,
        log,
        mut child,
        _web,
    } = run_a_copy(&dir);
    let wait = |needle: &str| wait_for(&log, needle);
    // Installing: a new file at the same path (a new inode, as pkgsrc or
    // cp-then-mv would leave).
    std::fs::copy(env!("CARGO_BIN_EXE_moirai"), dir.join("moirai.new")).unwrap();
    std::fs::rename(dir.join("moirai.new"), &bin).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    wait("listening sockets inherited");
    wait("upgrade: every backend checked");
    let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the same process runs on"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// An executable shell script in `dir`.
fn script(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A script that runs the real moirai with the arguments it is given,
/// except `--OPTION VALUE`, which it drops (then `then` is appended).
fn moirai_without(
    dir: &std::path::Path,
    name: &str,
    option: &str,
    then: &str,
) -> std::path::PathBuf {
    script(
        dir,
        name,
        &format!(
            "skip=\nfor a; do\n  shift\n  if [ -n \"$skip\" ]; then skip=; continue; fi\n  if [ \"$a\" = --{option} ]; then skip=1; continue; fi\n  set -- \"$@\" \"$a\"\ndone\nexec {} \"$@\" {then}",
            env!("CARGO_BIN_EXE_moirai")
        ),
    )
}

/// `moirai upgrade PROGRAM` (run in `cwd`): its exit code and what it
/// printed.
fn upgrade_to(m: &Moirai, program: &str, cwd: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["upgrade", program, "--state-dir"])
        .arg(m.dir.join("state"))
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// moirai with 2 workers in front of one backend, under [`Load`] for half
/// a second; then `attempt`, and a second of load after it. Returns what
/// `attempt` gave, with moirai, its port and the backend. Fails the test if a request failed or if
/// nothing was served after the attempt.
fn under_load<T>(
    extra: &[&str],
    attempt: impl FnOnce(&Moirai) -> T,
) -> (T, Moirai, u16, HttpBackend) {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let port = free_port();
    let mut m = Moirai::start(
        &metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
        "",
        extra,
    );
    let pid = m.pid();
    let load = Load::start(port);
    std::thread::sleep(Duration::from_millis(500));
    let out = attempt(&m);
    let before = load.done();
    std::thread::sleep(Duration::from_millis(1000));
    let (done, failed) = load.finish();
    assert_eq!(failed, 0, "{}", m.log_text());
    assert!(
        done > before + 20,
        "served after the attempt: {done} vs {before}"
    );
    assert!(m.is_running());
    assert_eq!(m.pid(), pid);
    (out, m, port, web)
}

/// A refused upgrade changed nothing: no drain, no hand-over, the control
/// socket answers.
fn assert_nothing_changed(m: &Moirai) {
    let log = m.log_text();
    assert!(
        log.contains("upgrade refused, still running this program"),
        "{log}"
    );
    for never in ["draining", "handed over", "inherited"] {
        assert!(!log.contains(never), "{never:?} in\n{log}");
    }
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    assert_eq!(v["draining"], false);
}

/// `moirai upgrade` to a program that cannot start (here one that exits
/// at once, named relative to the operator's directory): refused before
/// anything drains, with its exit status; the balancer serves on.
#[test]
fn an_upgrade_to_a_program_that_exits_at_once_changes_nothing() {
    let dir = temp_dir("upgrade-exit");
    script(&dir, "broken", "echo 'cannot start' >&2\nexit 3");
    let ((code, said), m, _, _web) = under_load(&[], |m| upgrade_to(m, "./broken", &dir));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.starts_with("error: upgrade refused"), "{said}");
    assert!(
        said.contains(&format!("{}/broken failed its pre-flight", dir.display())),
        "{said}"
    );
    assert!(said.contains("exit status: 3"), "{said}");
    assert!(said.trim_end().ends_with("cannot start"), "{said}");
    assert_nothing_changed(&m);
}

/// The new program starts but its own check of the metadata fails (here
/// it reads a file whose `loadbalancer` is not `true`): refused with the
/// program's own words; the balancer serves on.
#[test]
fn an_upgrade_whose_metadata_check_fails_changes_nothing() {
    let dir = temp_dir("upgrade-md");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        serde_json::json!({"cloud.tritoncompute:loadbalancer": "false"}).to_string(),
    )
    .unwrap();
    let program = moirai_without(
        &dir,
        "moirai-bad-md",
        "metadata-file",
        &format!("--metadata-file {}", bad.display()),
    );
    let ((code, said), m, _, _web) =
        under_load(&[], |m| upgrade_to(m, program.to_str().unwrap(), &dir));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("exit status: 96"), "{said}");
    assert!(
        said.contains("cloud.tritoncompute:loadbalancer is \"false\""),
        "{said}"
    );
    assert_nothing_changed(&m);
}

/// The new program runs fewer workers (1) than the old (2, a
/// `SO_REUSEPORT` socket each): it serves both inherited sockets, so no
/// new connection hangs in a queue nobody accepts from.
#[test]
fn an_upgrade_to_fewer_workers_serves_every_inherited_listener() {
    let dir = temp_dir("upgrade-fewer");
    let program = moirai_without(&dir, "moirai-1", "workers", "--workers 1");
    let ((code, said), m, port, _web) = under_load(&[], |m| {
        let out = upgrade_to(m, program.to_str().unwrap(), &dir);
        m.wait_log("listening sockets inherited", Duration::from_secs(10));
        m.wait_log("upgrade: every backend checked", Duration::from_secs(10));
        out
    });
    assert_eq!(code, Some(0), "{said}");
    assert!(
        m.log_text().contains("1 workers of up to"),
        "{}",
        m.log_text()
    );
    let clients: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let s = std::net::TcpStream::connect(local(port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                Client::from_stream(s)
                    .try_exchange(&get("/"))
                    .is_some_and(|r| r.status == 200)
            })
        })
        .collect();
    let answered = clients
        .into_iter()
        .map(|c| c.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(answered, 40, "{}", m.log_text());
}

/// The pre-flight passed but the exec failed (the program vanished in
/// between: here it deletes itself): new workers take the listeners back
/// and serve on, and a later upgrade works.
#[test]
fn an_upgrade_whose_exec_fails_serves_on() {
    let dir = temp_dir("upgrade-vanish");
    let program = script(
        &dir,
        "moirai-once",
        &format!("rm -f \"$0\"\nexec {} \"$@\"", env!("CARGO_BIN_EXE_moirai")),
    );
    let ((code, said), m, port, _web) = under_load(&[], |m| {
        let out = upgrade_to(m, program.to_str().unwrap(), &dir);
        m.wait_log(
            "new workers take the listeners back",
            Duration::from_secs(10),
        );
        out
    });
    assert_eq!(code, Some(0), "the pre-flight passed: {said}");
    let log = m.log_text();
    assert!(log.contains("cannot execute"), "{log}");
    assert!(
        log.contains("not upgraded; 2 workers serve on 2 listeners again"),
        "{log}"
    );
    let v: serde_json::Value = serde_json::from_str(&m.status(true)).unwrap();
    assert_eq!(v["draining"], false);
    // Restartable: the real program takes over next.
    let (code, said) = upgrade_to(&m, env!("CARGO_BIN_EXE_moirai"), &dir);
    assert_eq!(code, Some(0), "{said}");
    m.wait_log("listening sockets inherited", Duration::from_secs(10));
    m.wait_log("upgrade: every backend checked", Duration::from_secs(10));
    let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
    assert_eq!(r.status, 200);
}

/// `svcadm refresh` after a broken binary was installed at the program's
/// path: the same pre-flight refuses it, logged; the old program serves on.
#[test]
fn refresh_after_installing_a_broken_binary_refuses_the_upgrade() {
    let dir = temp_dir("broken-binary");
    let Copied {
        bin,
        port,
        log,
        mut child,
        _web,
    } = run_a_copy(&dir);
    let wait = |needle: &str| wait_for(&log, needle);
    let load = Load::start(port);
    std::thread::sleep(Duration::from_millis(300));
    script(&dir, "moirai.new", "exit 3");
    std::fs::rename(dir.join("moirai.new"), &bin).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    wait("upgrade refused, still running this program");
    let before = load.done();
    std::thread::sleep(Duration::from_millis(1000));
    let (done, failed) = load.finish();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(failed, 0, "{text}");
    assert!(done > before + 20, "{text}");
    assert!(text.contains("exit status: 3"), "{text}");
    assert!(
        !text.contains("draining") && !text.contains("handed over"),
        "{text}"
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}
