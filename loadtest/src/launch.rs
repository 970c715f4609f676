//! Starting the systems under test for `loadtest compare` and `loadtest
//! soak`: the scenario's backend on CPU 0, then each balancer (moirai, a
//! baseline build, HAProxy) on CPU 1, each waited for until it answers
//! through to the backend. What the load measures, and how it is
//! reported, is `compare.rs`'s.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::affinity::pinned;
use crate::gen::{self, Scenario};

/// The systems that can be compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// moirai, one worker.
    Moirai,
    /// moirai with the metrics endpoint on, scraped every second.
    MoiraiMetrics,
    /// Another moirai binary (`--baseline`), e.g. an older build.
    Baseline,
    /// HAProxy from the Debian package, one thread.
    Haproxy,
    /// No balancer: the physical ceiling.
    Direct,
}

impl System {
    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Moirai => "moirai",
            System::MoiraiMetrics => "moirai-metrics",
            System::Baseline => "baseline",
            System::Haproxy => "haproxy",
            System::Direct => "direct",
        }
    }
}

/// Why a comparison could not run.
#[derive(Debug)]
pub enum CompareError {
    /// HAProxy was asked for and is not installed.
    NoHaproxy(PathBuf),
    /// The moirai binary was not found.
    NoMoirai,
    /// A scenario this version cannot run.
    Unsupported(&'static str),
    /// Something failed to start or answer.
    Io(String, io::Error),
    /// `--cpu-quota` cannot be honoured.
    Cgroup(crate::cgroup::CgroupError),
}

impl std::fmt::Display for CompareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompareError::NoHaproxy(p) => write!(
                f,
                "HAProxy is not installed at {}: install it with `apt-get install -y haproxy` \
                 (or pass --haproxy PATH, or leave it out with --systems moirai,direct)",
                p.display()
            ),
            CompareError::NoMoirai => f.write_str(
                "the moirai binary was not found next to loadtest: build it with \
                 `cargo build --release -p moirai` or pass --moirai PATH",
            ),
            CompareError::Unsupported(s) => write!(f, "{s}"),
            CompareError::Io(what, e) => write!(f, "{what}: {e}"),
            CompareError::Cgroup(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CompareError {}

/// A child process, killed when dropped.
pub(crate) struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(addr: SocketAddr, what: &str) -> Result<(), CompareError> {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > Duration::from_secs(10) => {
                return Err(CompareError::Io(
                    format!("{what} did not listen on {addr}"),
                    e,
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Whether a GET over TLS to `addr` gets a 200 (the tls scenarios).
fn tls_answers(addr: SocketAddr) -> bool {
    let Ok(cfg) = gen::client_config() else {
        return false;
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from("loadtest") else {
        return false;
    };
    let Ok(conn) = rustls::ClientConnection::new(cfg, name) else {
        return false;
    };
    let Ok(sock) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
    let mut s = rustls::StreamOwned::new(conn, sock);
    let mut buf = [0u8; 16];
    s.write_all(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
        .is_ok()
        && s.read_exact(&mut buf).is_ok()
        && buf.starts_with(b"HTTP/1.1 200")
}

/// Waits until `addr` answers through to a backend of `kind`: a balancer
/// with no usable backend yet closes at once instead.
fn wait_serving(addr: SocketAddr, kind: &str, tls: bool) -> Result<(), CompareError> {
    let start = Instant::now();
    loop {
        let ok = if tls {
            tls_answers(addr)
        } else {
            TcpStream::connect(addr).is_ok_and(|mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let probe: &[u8] = match kind {
                "http" => b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n",
                "echo" => b"x",
                _ => b"",
            };
            let mut buf = [0u8; 16];
            s.write_all(probe).is_ok()
                && matches!(s.read(&mut buf), Ok(n) if n > 0 && (kind != "http" || buf.starts_with(b"HTTP/1.1 200")))
            })
        };
        if ok {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(CompareError::Io(
                format!("{addr} did not reach its backend"),
                io::Error::from(io::ErrorKind::TimedOut),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Scrapes a metrics endpoint once a second (Prometheus scrapes every 15 s
/// by default; this is 15 times the cost) until dropped.
pub(crate) struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    fn start(addr: SocketAddr) -> Scraper {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut c) = TcpStream::connect(addr) {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: loadtest\r\n\r\n");
                    let mut sink = Vec::new();
                    let _ = c.read_to_end(&mut sink);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Scraper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The moirai binary: `moirai` (`--moirai`), else the one built beside
/// this program.
pub(crate) fn moirai_path(moirai: Option<&Path>) -> Result<PathBuf, CompareError> {
    if let Some(p) = moirai {
        return Ok(p.to_path_buf());
    }
    let here = std::env::current_exe().map_err(|e| CompareError::Io("current exe".into(), e))?;
    let sibling = here.with_file_name("moirai");
    if sibling.exists() {
        return Ok(sibling);
    }
    // Test binaries live one level down, in deps/.
    let parent = here
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("moirai"));
    match parent {
        Some(p) if p.exists() => Ok(p),
        _ => Err(CompareError::NoMoirai),
    }
}

/// The HAProxy configuration equivalent to one moirai service, as Moirai
/// writes it: HTTP services insert the sticky cookie `CLOUD-TRITONCOMPUTE-RS`
/// (`insert indirect nocache dynamic`), which moirai inserts too, so both
/// balancers write the same response heads (before 2026-12-07 HAProxy ran
/// without it and wrote about 100 bytes less per response); `https-http`
/// terminates TLS with the certificate and key in `pem`, offering `alpn`
/// if given (`h2,http/1.1` for the h2 scenarios, as moirai's `https-http`
/// offers both; none otherwise, as before the h2 scenarios).
pub fn haproxy_config(
    kind: &str,
    listen: u16,
    backend: SocketAddr,
    pem: Option<&Path>,
    alpn: Option<&str>,
) -> String {
    let http_mode = kind == "http" || kind == "https-http";
    let mode = if http_mode { "http" } else { "tcp" };
    let ssl = match pem {
        Some(p) if kind == "https-http" => {
            let alpn = alpn.map(|a| format!(" alpn {a}")).unwrap_or_default();
            format!(" ssl crt {}{alpn}", p.display())
        }
        _ => String::new(),
    };
    let http = if http_mode {
        "  option forwardfor\n  http-reuse safe\n"
    } else {
        ""
    };
    let cookie = if http_mode {
        concat!(
            "  cookie CLOUD-TRITONCOMPUTE-RS insert indirect nocache dynamic\n",
            "  dynamic-cookie-key loadtest\n"
        )
    } else {
        ""
    };
    format!(
        "global\n  nbthread 1\n  maxconn 8000\n  tune.bufsize 16384\n\
         defaults\n  mode {mode}\n{http}  balance leastconn\n  retries 1\n  option redispatch\n\
           timeout connect 2s\n  timeout client 55s\n  timeout server 120s\n\
         frontend fe\n  bind 127.0.0.1:{listen}{ssl}\n  default_backend be\n\
         backend be\n{cookie}  server s1 {backend}\n"
    )
}

/// What [`launch`] starts: the backend `scenario` needs and `systems`.
pub(crate) struct Setup<'a> {
    pub scenario: Scenario,
    pub systems: &'a [System],
    /// The `baseline` system's binary.
    pub baseline: Option<&'a Path>,
    pub haproxy: &'a Path,
    /// Each balancer capped at this fraction of one CPU.
    pub cpu_quota: Option<f64>,
}

/// A balancer (or the backend itself) under test.
pub(crate) type Target = (System, SocketAddr, Option<u32>, Option<Guard>);

/// What [`launch`] started: kept alive while the load runs.
pub(crate) struct Launched {
    pub dir: PathBuf,
    pub backend: Guard,
    pub targets: Vec<Target>,
    /// Metrics scrapers of `moirai-metrics`, stopped before the targets.
    pub scrapers: Vec<Scraper>,
    /// The balancers' CPU caps (`--cpu-quota`), dropped after them.
    pub caps: Vec<crate::cgroup::CpuCap>,
}

/// Starts the backend (CPU 0) and every system of `opts` (CPU 1), each
/// balancer with `workers` workers or threads, then pins this process to
/// CPU 0.
pub(crate) fn launch(
    opts: &Setup<'_>,
    moirai_bin: Option<&PathBuf>,
    workers: usize,
) -> Result<Launched, CompareError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |e| CompareError::Io(what.clone(), e)
    };
    let dir = std::env::temp_dir().join(format!("loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io("temp dir"))?;

    // The backend, on CPU 0 with the load generator.
    let (backend_kind, service_kind) = match opts.scenario {
        Scenario::Http | Scenario::HttpClose => ("http", "http"),
        Scenario::Tls
        | Scenario::TlsHandshake
        | Scenario::H2
        | Scenario::H2x100
        | Scenario::H2Handshake => ("http", "https-http"),
        Scenario::TcpEcho | Scenario::TcpClose => ("echo", "tcp"),
        Scenario::TcpStream => ("source", "tcp"),
    };
    let tls = service_kind == "https-http";
    // One P-256 certificate, self-signed, for both balancers.
    let tls_dir = dir.join("tls");
    let haproxy_pem = dir.join("haproxy.pem");
    if tls {
        private_dir(&tls_dir).map_err(io("the certificate directory"))?;
        moirai::tls::certs::self_signed(&tls_dir, &["loadtest".to_owned()]).map_err(|e| {
            CompareError::Io("the certificate".into(), io::Error::other(e.to_string()))
        })?;
        let cert = std::fs::read(tls_dir.join(moirai::tls::certs::SELF_SIGNED_CERT))
            .map_err(io("the certificate"))?;
        let key = std::fs::read(tls_dir.join(moirai::tls::certs::SELF_SIGNED_KEY))
            .map_err(io("the key"))?;
        std::fs::write(&haproxy_pem, [cert, key].concat()).map_err(io("haproxy.pem"))?;
    }
    let me = std::env::current_exe().map_err(io("current exe"))?;
    let bport = free_port().map_err(io("port"))?;
    let backend_addr = SocketAddr::from(([127, 0, 0, 1], bport));
    let _backend = Guard(
        pinned(&me, 0)
            .args([
                "backend",
                "--listen",
                &backend_addr.to_string(),
                "--kind",
                backend_kind,
                "--body-size",
                "64",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting the backend"))?,
    );
    wait_listening(backend_addr, "the backend")?;

    let mut targets: Vec<(System, SocketAddr, Option<u32>, Option<Guard>)> = Vec::new();
    let mut scrapers: Vec<Scraper> = Vec::new();
    let mut caps: Vec<crate::cgroup::CpuCap> = Vec::new();
    let mut cap = |sys: System, pid: u32| -> Result<(), CompareError> {
        if let Some(q) = opts.cpu_quota {
            let name = format!("loadtest-{}-{}", std::process::id(), sys.name());
            let c = crate::cgroup::CpuCap::new(&name, q).map_err(CompareError::Cgroup)?;
            c.add(pid).map_err(CompareError::Cgroup)?;
            caps.push(c);
        }
        Ok(())
    };
    for &sys in opts.systems {
        match sys {
            System::Direct => targets.push((sys, backend_addr, None, None)),
            System::Moirai | System::MoiraiMetrics | System::Baseline => {
                let port = free_port().map_err(io("port"))?;
                let md = dir.join(format!("{}.json", sys.name()));
                let mut metadata = json!({
                    "cloud.tritoncompute:loadbalancer": "true",
                    "cloud.tritoncompute:portmap": format!("{service_kind}://{port}:{backend_addr}"),
                });
                let metrics_port = free_port().map_err(io("port"))?;
                if sys == System::MoiraiMetrics {
                    metadata["cloud.tritoncompute:metrics_acl"] = "127.0.0.1".into();
                    metadata["cloud.tritoncompute:metrics_port"] = metrics_port.to_string().into();
                }
                std::fs::write(&md, metadata.to_string()).map_err(io("metadata file"))?;
                let bin = match sys {
                    System::Baseline => opts.baseline.ok_or(CompareError::Unsupported(
                        "--systems baseline needs --baseline PATH",
                    ))?,
                    _ => moirai_bin
                        .map(PathBuf::as_path)
                        .ok_or(CompareError::NoMoirai)?,
                };
                let state = dir.join(format!("state-{}", sys.name()));
                if tls {
                    // The shared certificate, where moirai looks for its
                    // self-signed one.
                    private_dir(&state).map_err(io("the state directory"))?;
                    for f in [
                        moirai::tls::certs::SELF_SIGNED_CERT,
                        moirai::tls::certs::SELF_SIGNED_KEY,
                    ] {
                        std::fs::copy(tls_dir.join(f), state.join(f))
                            .map_err(io("the certificate"))?;
                    }
                }
                let child = pinned(bin, 1)
                    .args([
                        "run",
                        "--workers",
                        &workers.to_string(),
                        "--log-level",
                        "error",
                        "--metadata-file",
                    ])
                    .arg(&md)
                    .arg("--state-dir")
                    .arg(&state)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(io("starting moirai"))?;
                let pid = child.id();
                let g = Guard(child);
                cap(sys, pid)?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                wait_listening(addr, "moirai")?;
                // New backends start down until their health checks pass.
                wait_serving(addr, backend_kind, tls)?;
                if sys == System::MoiraiMetrics {
                    scrapers.push(Scraper::start(SocketAddr::from((
                        [127, 0, 0, 1],
                        metrics_port,
                    ))));
                }
                targets.push((sys, addr, Some(pid), Some(g)));
            }
            System::Haproxy => {
                let port = free_port().map_err(io("port"))?;
                let cfg = dir.join("haproxy.cfg");
                std::fs::write(
                    &cfg,
                    haproxy_config(
                        service_kind,
                        port,
                        backend_addr,
                        Some(&haproxy_pem),
                        opts.scenario.is_h2().then_some("h2,http/1.1"),
                    )
                    .replace("nbthread 1", &format!("nbthread {workers}")),
                )
                .map_err(io("haproxy.cfg"))?;
                let child = pinned(opts.haproxy, 1)
                    .arg("-db")
                    .arg("-f")
                    .arg(&cfg)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(io("starting haproxy"))?;
                let pid = child.id();
                let g = Guard(child);
                cap(sys, pid)?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                wait_listening(addr, "haproxy")?;
                wait_serving(addr, backend_kind, tls)?;
                targets.push((sys, addr, Some(pid), Some(g)));
            }
        }
    }
    // taskset execs the program, so the child's pid is the balancer's.
    crate::affinity::pin_self(0);
    Ok(Launched {
        dir,
        backend: _backend,
        targets,
        scrapers,
        caps,
    })
}

/// A directory only its owner may read (moirai refuses a state directory
/// others can write, and keys must stay private).
fn private_dir(p: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_gets_the_moirai_equivalent() {
        let b: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let http = haproxy_config("http", 8080, b, None, None);
        assert!(
            http.contains("mode http")
                && http.contains("option forwardfor")
                && http.contains("http-reuse safe")
        );
        assert!(http.contains("nbthread 1") && http.contains("tune.bufsize 16384"));
        assert!(!http.contains("\n  log "), "logging stays off");
        // The sticky cookie, as Moirai's configuration and moirai insert it.
        assert!(http.contains(
            "cookie CLOUD-TRITONCOMPUTE-RS insert indirect nocache dynamic\n  dynamic-cookie-key "
        ));
        let tcp = haproxy_config("tcp", 8080, b, None, None);
        assert!(tcp.contains("mode tcp") && !tcp.contains("forwardfor") && !tcp.contains("cookie"));
        assert!(tcp.contains("bind 127.0.0.1:8080") && tcp.contains("server s1 127.0.0.1:9000"));
        assert!(!tcp.contains(" ssl "));
        let pem = Path::new("/tmp/x.pem");
        let https = haproxy_config("https-http", 8443, b, Some(pem), None);
        assert!(https.contains("bind 127.0.0.1:8443 ssl crt /tmp/x.pem\n"));
        assert!(https.contains("mode http") && https.contains("option forwardfor"));
        // The h2 scenarios offer h2 as moirai's https-http does; the same
        // service otherwise.
        let h2 = haproxy_config("https-http", 8443, b, Some(pem), Some("h2,http/1.1"));
        assert!(h2.contains("bind 127.0.0.1:8443 ssl crt /tmp/x.pem alpn h2,http/1.1\n"));
        assert_eq!(h2.replace(" alpn h2,http/1.1", ""), https);
    }
}
