//! `loadtest compare` end to end, 1 s per system: the report has the
//! documented shape. Not a speed assertion.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

fn moirai_binary() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let moirai = loadtest.with_file_name("moirai");
    if !moirai.exists() {
        // Run alone (`cargo test -p loadtest`), the balancer may not be built.
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "moirai", "--bin", "moirai"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot build moirai");
    }
    moirai
}

/// Fails the test with the command's stderr unless it succeeded.
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `loadtest backend` of `kind` on a free loopback port, listening when
/// returned and stopped when dropped.
struct Backend {
    child: Child,
    port: u16,
}

impl Backend {
    fn start(kind: &str) -> Backend {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(["backend", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--kind", kind])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let backend = Backend { child, port };
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed().as_secs() < 5);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        backend
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `loadtest compare` with `args` (1 s, one repetition, 4
/// connections), its report in `dir`: the output and the JSON report.
fn compare_in(dir: &Path, args: &[&str]) -> (Output, Option<serde_json::Value>) {
    let json = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["compare", "--duration", "1s", "--repeat", "1"])
        .args(["--connections", "4"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--moirai")
        .arg(moirai_binary())
        .output()
        .unwrap();
    let v = std::fs::read(&json)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (out, v)
}

#[test]
fn compare_writes_the_documented_json() {
    let dir = std::env::temp_dir().join(format!("loadtest-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let svg = dir.join("chart.svg");
    let (out, v) = compare_in(
        &dir,
        &["--scenario", "http", "--svg", svg.to_str().unwrap()],
    );
    assert_ok(&out);
    let table = String::from_utf8(out.stdout).unwrap();
    for sys in ["| moirai |", "| haproxy |", "| direct |"] {
        assert!(table.contains(sys), "{table}");
    }
    let v = v.expect("a report");
    assert_eq!(v["scenario"], "http");
    assert_eq!(v["duration_s"], 1.0);
    assert_eq!(v["repeat"], 1);
    for sys in ["moirai", "haproxy", "direct"] {
        let s = &v["systems"][sys];
        assert_eq!(s["rps"].as_array().unwrap().len(), 1, "{sys}");
        for key in ["rps_median", "p50_us", "p99_us", "p999_us"] {
            assert!(s[key].as_f64().unwrap() > 0.0, "{sys}.{key}");
        }
        assert!(s["errors"].is_u64(), "{sys}");
        assert!(s["gbps"].is_null(), "{sys}: gbps is for tcp-stream");
    }
    for sys in ["moirai", "haproxy"] {
        let cpu = v["systems"][sys]["cpu_us_per_req"].as_f64().unwrap();
        let kernel = v["systems"][sys]["kernel_us_per_req"].as_f64().unwrap();
        assert!(cpu > 0.0);
        assert!(
            (0.0..=cpu).contains(&kernel),
            "{sys}: kernel {kernel} of {cpu}"
        );
        assert!(v["systems"][sys]["rss_kib"].as_u64().unwrap() > 0);
    }
    assert!(v["systems"]["direct"]["kernel_us_per_req"].is_null());
    for key in ["rps", "p99_us", "cpu_us_per_req", "rss_kib"] {
        assert!(
            v["ratio_vs_haproxy"][key].as_f64().unwrap() > 0.0,
            "ratio {key}"
        );
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("latency by percentile"));

    // The report draws as a panel of work per CPU-second.
    let per_cpu = dir.join("per-cpu.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("chart")
        .arg("--svg")
        .arg(&per_cpu)
        .arg(&json)
        .output()
        .unwrap();
    assert_ok(&out);
    let chart = std::fs::read_to_string(&per_cpu).unwrap();
    assert!(chart.contains("http (req/s per CPU)"), "{chart}");
    let moirai = 1e6 / v["systems"]["moirai"]["cpu_us_per_req"].as_f64().unwrap();
    assert!(chart.contains(&format!("moirai {moirai:.0} (")), "{chart}");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["chart", "--svg"])
        .arg(&per_cpu)
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an SVG is not a report");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_haproxy_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "compare",
            "--scenario",
            "http",
            "--duration",
            "1",
            "--haproxy",
            "/nonexistent/haproxy",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install -y haproxy"), "{err}");
}

#[test]
fn run_reports_open_loop_load_against_a_backend() {
    let backend = Backend::start("echo");
    let dir = std::env::temp_dir().join(format!("loadtest-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "run",
            "--target",
            &backend.target(),
            "--scenario",
            "tcp-echo",
        ])
        .args([
            "--connections",
            "4",
            "--duration",
            "1",
            "--rate",
            "200",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    drop(backend);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // Open loop at 200/s for 1 s: about 200 requests, not as many as the
    // echo backend could take.
    let n = v["requests"].as_u64().unwrap();
    assert!((150..=210).contains(&n), "{n} requests");
    assert_eq!(v["errors"], serde_json::json!({}));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_reports_memory_per_connection_of_the_process_listening() {
    let backend = Backend::start("http");
    let dir = std::env::temp_dir().join(format!("loadtest-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("idle.json");
    // No --pid: the process listening on the port is found.
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["idle", "--target", &backend.target()])
        .args(["--connections", "200", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    drop(backend);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["connections"], 200);
    assert_eq!(v["http"], true);
    for kind in ["rss_kib", "anon_kib"] {
        let (b, a) = (
            v[kind]["before"].as_u64().unwrap(),
            v[kind]["after"].as_u64().unwrap(),
        );
        assert!(b > 0 && a > 0, "{kind}");
    }
    let anon = v["anon_kib"]["after"].as_u64().unwrap() as f64
        - v["anon_kib"]["before"].as_u64().unwrap() as f64;
    let per = v["bytes_per_connection"]["anon"].as_f64().unwrap();
    assert!((per - anon.max(0.0) * 1024.0 / 200.0).abs() < 1e-6, "{per}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("| 200 |"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `loadtest compare` with `args` (as [`compare_in`], in a directory
/// of its own) and returns (success, stdout, stderr, the JSON report).
fn compare(args: &[&str], name: &str) -> (bool, String, String, Option<serde_json::Value>) {
    let dir = std::env::temp_dir().join(format!("loadtest-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, v) = compare_in(&dir, args);
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        v,
    )
}

/// Both TLS scenarios run through both balancers with one certificate,
/// every request answered.
#[test]
fn tls_scenarios_run_through_both_balancers() {
    for scenario in ["tls", "tls-handshake"] {
        let (ok, table, err, v) = compare(
            &["--scenario", scenario, "--systems", "moirai,haproxy"],
            scenario,
        );
        assert!(ok, "{scenario}: {err}");
        let v = v.unwrap();
        for sys in ["moirai", "haproxy"] {
            assert!(table.contains(&format!("| {sys} |")), "{table}");
            let s = &v["systems"][sys];
            assert!(s["rps_median"].as_f64().unwrap() > 0.0, "{scenario} {sys}");
            assert_eq!(s["errors"], 0, "{scenario} {sys}: {table}");
        }
    }
}

/// `--cpu-quota` either caps each balancer (its CPU per second stays
/// within the quota) or, where no cpu cgroup can be written, refuses
/// before measuring anything.
#[test]
fn cpu_quota_caps_the_balancer_or_refuses() {
    let (ok, _, err, v) = compare(
        &[
            "--scenario",
            "http",
            "--systems",
            "moirai",
            "--cpu-quota",
            "0.2",
        ],
        "quota",
    );
    if !ok {
        assert!(
            err.contains("--cpu-quota") && err.contains("no numbers measured"),
            "{err}"
        );
        assert!(v.is_none(), "nothing measured");
        return;
    }
    let v = v.unwrap();
    assert_eq!(v["cpu_quota"], 0.2);
    let s = &v["systems"]["moirai"];
    let cpu_share = s["cpu_us_per_req"].as_f64().unwrap() * s["rps_median"].as_f64().unwrap() / 1e6;
    assert!(
        cpu_share > 0.0 && cpu_share < 0.26,
        "moirai used {cpu_share} of a CPU"
    );
}

/// The HTTP/2 scenarios run through both balancers (h2load for `h2` and
/// `h2-100`, the built-in client for `h2-handshake`), every request a
/// 2xx, and the report has the shape of every other scenario's.
#[test]
fn h2_scenarios_run_through_both_balancers() {
    for scenario in ["h2", "h2-100", "h2-handshake"] {
        let (ok, table, err, v) = compare(
            &["--scenario", scenario, "--systems", "moirai,haproxy"],
            scenario,
        );
        assert!(
            ok,
            "{scenario}: {err} (h2load is nghttp2-client; scripts/test installs it)"
        );
        assert!(
            table.contains(&format!("`{scenario}`, 4 connections")),
            "{table}"
        );
        let v = v.unwrap();
        assert_eq!(v["scenario"], scenario);
        for sys in ["moirai", "haproxy"] {
            assert!(table.contains(&format!("| {sys} |")), "{table}");
            let s = &v["systems"][sys];
            for key in ["rps_median", "p50_us", "p99_us", "cpu_us_per_req"] {
                assert!(s[key].as_f64().unwrap() > 0.0, "{scenario} {sys}.{key}");
            }
            let kernel = s["kernel_us_per_req"].as_f64().unwrap();
            assert!(kernel >= 0.0 && kernel <= s["cpu_us_per_req"].as_f64().unwrap());
            assert_eq!(s["errors"], 0, "{scenario} {sys}: {table}");
        }
        assert!(v["ratio_vs_haproxy"]["rps"].as_f64().unwrap() > 0.0);
    }
}

/// The backend speaks HTTP/1.1 only: `direct` has nothing to say to an
/// h2 client, and is refused before anything runs.
#[test]
fn h2_scenarios_refuse_direct() {
    let (ok, _, err, v) = compare(
        &["--scenario", "h2", "--systems", "moirai,direct"],
        "h2-direct",
    );
    assert!(!ok && v.is_none());
    assert!(err.contains("leave out direct"), "{err}");
}

/// `idle --systems --h2` starts both balancers with an https-http
/// service and measures each with idle h2 connections.
#[test]
fn idle_h2_measures_both_balancers_it_starts() {
    let dir = std::env::temp_dir().join(format!("loadtest-idle-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("idle.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["idle", "--systems", "moirai,haproxy", "--h2"])
        .args(["--connections", "100", "--json"])
        .arg(&json)
        .arg("--moirai")
        .arg(moirai_binary())
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["mode"], "h2");
    assert_eq!(v["connections"], 100);
    for sys in ["moirai", "haproxy"] {
        let s = &v["systems"][sys];
        let (before, after) = (
            s["anon_kib"]["before"].as_u64().unwrap() as f64,
            s["anon_kib"]["after"].as_u64().unwrap() as f64,
        );
        // 100 idle h2 connections cost each balancer memory: the figure
        // is the growth, per connection, of what it allocated.
        assert!(after > before, "{sys}: {before} → {after} KiB");
        let per = s["bytes_per_connection"]["anon"].as_f64().unwrap();
        assert!(
            (per - (after - before) * 1024.0 / 100.0).abs() < 1e-6,
            "{sys}: {per}"
        );
    }
    assert!(v["ratio_vs_haproxy"]["anon"].as_f64().unwrap() > 0.0);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("| moirai | 100 |") && table.contains("| haproxy | 100 |"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
