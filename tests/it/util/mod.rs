//! Helpers shared by the integration tests: a moirai process driven through
//! a metadata file, small backends, and ports from the OS.

#![allow(dead_code)]

pub mod backend;
pub mod http;
pub mod nginx;
pub mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `SECS(5)`: test deadlines read as what they are.
pub const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("moirai-it-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port that is free for TCP and UDP, on every address. Taken from below
/// the kernel's ephemeral range (32768 and up on Linux), so a later bind to
/// port 0 (a test backend, a client) can never be handed the same port; an
/// atomic counter keeps parallel tests apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 800) as u16 * 15,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        let p = if p >= 32_000 {
            NEXT.store(20_001, Ordering::SeqCst);
            20_000
        } else {
            p
        };
        let free = TcpListener::bind(("::", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok();
        if free {
            return p;
        }
    }
}

/// Metadata JSON for an enabled balancer with this portmap, where every
/// entry without `{...}` parameters gets `{port:P}`, P being
/// [`check_responder`]'s port: its health checks then go to the responder
/// on the backend's address, so test backends see only test traffic and a
/// backend left dead on purpose still passes its checks (to exercise the
/// data plane's own retries). Tests of health checks write parameters.
pub fn metadata(portmap: &str) -> String {
    let p = check_responder();
    let mut out = String::new();
    let mut depth = 0;
    let mut entry_has_params = false;
    let mut in_entry = false;
    for c in portmap.chars().chain(std::iter::once(',')) {
        let sep = depth == 0 && matches!(c, ',' | ' ' | '\n');
        if sep && in_entry && !entry_has_params {
            out.push_str(&format!("{{port:{p}}}"));
        }
        match c {
            '{' => {
                depth += 1;
                entry_has_params = true;
            }
            '}' => depth -= 1,
            _ => {}
        }
        if sep {
            in_entry = false;
            entry_has_params = false;
        } else {
            in_entry = true;
        }
        out.push(c);
    }
    out.pop();
    metadata_exact(&out)
}

/// moirai with one `http` service on a free port in front of the backend
/// on 127.0.0.1:`backend_port`; returns it and its port.
pub fn http_lb(backend_port: u16, extra: &[&str]) -> (Moirai, u16) {
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("http://{port}:127.0.0.1:{backend_port}")),
        "",
        extra,
    );
    (m, port)
}

/// Metadata JSON for an enabled balancer with exactly this portmap.
pub fn metadata_exact(portmap: &str) -> String {
    serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": portmap,
    })
    .to_string()
}

/// A port on which 127.0.0.1 to 127.0.0.9 and ::1 all accept health checks
/// and answer any HTTP check with 200; started once per test binary.
pub fn check_responder() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| loop {
        let port = free_port();
        let addrs: Vec<SocketAddr> = (1..=9)
            .map(|i| SocketAddr::from(([127, 0, 0, i], port)))
            .chain(std::iter::once(SocketAddr::from((
                std::net::Ipv6Addr::LOCALHOST,
                port,
            ))))
            .collect();
        let Ok(listeners) = addrs
            .iter()
            .map(TcpListener::bind)
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        for l in listeners {
            std::thread::spawn(move || {
                for conn in l.incoming() {
                    let Ok(mut c) = conn else { continue };
                    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut buf = [0u8; 1024];
                    if matches!(c.read(&mut buf), Ok(n) if buf[..n].starts_with(b"GET ")) {
                        let _ = c.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
            });
        }
        return port;
    })
}

/// Writes a file atomically (write, then rename), as an operator's tool would.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A running `moirai run`, killed on drop.
pub struct Moirai {
    pub child: Child,
    pub dir: PathBuf,
    pub metadata: PathBuf,
    pub hosts: PathBuf,
    pub log: PathBuf,
}

impl Moirai {
    /// Starts moirai on `metadata_json` with 2 workers and extra args.
    pub fn start(metadata_json: &str, hosts: &str, extra: &[&str]) -> Moirai {
        Moirai::spawn(&[], metadata_json, hosts, extra, &[])
    }

    /// Starts moirai with extra environment variables (e.g. `SMF_FMRI`).
    pub fn start_env(metadata_json: &str, extra: &[&str], env: &[(&str, &str)]) -> Moirai {
        Moirai::spawn(&[], metadata_json, "", extra, env)
    }

    /// Starts moirai under a wrapper command (e.g. `prlimit ... --`).
    pub fn start_wrapped(wrapper: &[&str], metadata_json: &str) -> Moirai {
        Moirai::spawn(wrapper, metadata_json, "", &[], &[])
    }

    fn spawn(
        wrapper: &[&str],
        metadata_json: &str,
        hosts: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Moirai {
        let dir = temp_dir("moirai");
        let md = dir.join("metadata.json");
        let hosts_path = dir.join("hosts");
        std::fs::write(&md, metadata_json).unwrap();
        std::fs::write(&hosts_path, hosts).unwrap();
        let log = dir.join("moirai.log");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(moirai_bin());
                c
            }
            None => Command::new(moirai_bin()),
        };
        cmd.arg("run");
        if !extra.iter().any(|a| a.starts_with("--mdata")) {
            cmd.arg("--metadata-file").arg(&md);
        }
        let child = cmd
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--hosts-file")
            .arg(&hosts_path)
            .args(if extra.contains(&"--workers") {
                &[][..]
            } else {
                &["--workers", "2"][..]
            })
            // Tests never ask the machine's resolver: names come from the
            // hosts file or from a DNS server the test starts itself.
            .args(if extra.contains(&"--nameserver") {
                &[][..]
            } else {
                &["--nameserver", "127.0.0.1:9"][..]
            })
            .args(["--log-level", "debug"])
            .args(if extra.contains(&"--error-log") {
                vec![]
            } else {
                vec![
                    "--error-log".to_owned(),
                    dir.join("errors.log").display().to_string(),
                    "--error-log-interval".to_owned(),
                    "1s".to_owned(),
                ]
            })
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let m = Moirai {
            child,
            dir,
            metadata: md,
            hosts: hosts_path,
            log,
        };
        m.wait_log("generation 1 applied", Duration::from_secs(10));
        // New backends start down until their health checks pass.
        m.wait_log("health: every backend checked", Duration::from_secs(10));
        m
    }

    /// Replaces the metadata file.
    pub fn set_metadata(&self, json: &str) {
        write_atomic(&self.metadata, json);
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        self.wait_log_count(needle, 1, limit);
    }

    /// Waits until the log contains `needle` at least `n` times.
    pub fn wait_log_count(&self, needle: &str, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.log_text().matches(needle).count() < n {
            assert!(
                start.elapsed() < limit,
                "moirai did not log {needle:?} within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What `moirai status` (or `moirai status --json`) prints.
    pub fn status(&self, json: bool) -> String {
        let mut cmd = Command::new(moirai_bin());
        cmd.args(["status", "--state-dir"])
            .arg(self.dir.join("state"));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `moirai upgrade` to the same program; asserts it was accepted.
    pub fn upgrade(&self) {
        let out = Command::new(moirai_bin())
            .args(["upgrade", "--state-dir"])
            .arg(self.dir.join("state"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Sends a signal.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                start.elapsed() < limit,
                "moirai did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Moirai {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("moirai log ({}):\n{}", self.log.display(), self.log_text());
        }
    }
}

/// Connects, retrying until `limit` (for listeners that are about to open).
pub fn connect_within(addr: SocketAddr, limit: Duration) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) => {
                assert!(
                    start.elapsed() < limit,
                    "cannot connect to {addr} within {limit:?}: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Connects to `port` until a tagged backend (one that sends its tag byte
/// first) answers with `want`; the balancer may need a moment to apply a
/// change, or a connection may land on another backend meanwhile.
pub fn reach_tag(port: u16, want: u8, limit: Duration) -> TcpStream {
    let start = Instant::now();
    loop {
        if let Ok(mut c) = TcpStream::connect(local(port)) {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut tag = [0u8];
            if c.read_exact(&mut tag).is_ok() && tag[0] == want {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return c;
            }
        }
        assert!(
            start.elapsed() < limit,
            "port {port} never reached backend {}",
            want as char
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until connecting to `addr` is refused (the listener closed).
pub fn wait_refused(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(
            start.elapsed() < limit,
            "{addr} still accepts after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `msg` and reads the same number of bytes back.
pub fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    Ok(back)
}

/// CPU seconds (user + system) process `pid` has used, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Resident memory of process `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A local address on `127.0.0.1` with `port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The moirai the engine-level tests run: `MOIRAI_BIN` when set (e.g. a
/// build with `--features emulated-event-ports`, which `scripts/test` runs
/// a chosen subset against), else the one cargo built for this test run.
pub fn moirai_bin() -> std::path::PathBuf {
    match std::env::var_os("MOIRAI_BIN") {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => std::path::PathBuf::from(env!("CARGO_BIN_EXE_moirai")),
    }
}
