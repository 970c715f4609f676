//! `loadtest idle`: holds N idle keep-alive connections open through a
//! balancer and reports its memory before and after, for the memory cost of
//! one idle connection: plain TCP, HTTP/1.1 (one request each), or TLS
//! with ALPN h2 (one HTTP/2 request each, `--h2`). Against a running
//! balancer (`--target`), or against balancers it starts itself as
//! `compare` does (`--systems`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::gen::Scenario;
use crate::h2client;
use crate::launch::{self, CompareError, Launched, Setup, System};
use crate::stats;

/// What each idle connection carried before it went idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing: a plain TCP connection.
    Tcp,
    /// One HTTP/1.1 keep-alive request.
    Http,
    /// A TLS handshake (ALPN http/1.1) and one HTTP/1.1 keep-alive
    /// request: what `--h2` costs over TLS alone.
    Tls,
    /// A TLS handshake with ALPN h2 and one HTTP/2 request (stream 1),
    /// the server's SETTINGS acknowledged.
    H2,
}

impl Mode {
    /// The name reports give it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Http => "http",
            Mode::Tls => "tls",
            Mode::H2 => "h2",
        }
    }

    /// The service (and backend) the balancers are started with for it:
    /// the scenario whose setup `compare` would use.
    fn scenario(self) -> Scenario {
        match self {
            Mode::Tcp => Scenario::TcpEcho,
            Mode::Http => Scenario::Http,
            Mode::Tls => Scenario::Tls,
            // https-http, HAProxy with `alpn h2,http/1.1`.
            Mode::H2 => Scenario::H2Handshake,
        }
    }
}

/// The pid of the process listening on `port`, found through /proc.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let lport = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 0A is LISTEN.
            if lport == Some(port) && *state == "0A" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// The balancer's memory at one moment, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set (`VmRSS`), file pages of the binary included.
    pub rss: u64,
    /// Resident anonymous memory (`RssAnon`): what it allocated.
    pub anon: u64,
}

fn memory(pid: u32) -> io::Result<Memory> {
    let unreadable = || io::Error::other("cannot read the balancer's memory");
    Ok(Memory {
        rss: stats::rss_kib(pid).ok_or_else(unreadable)?.0,
        anon: stats::anon_kib(pid).ok_or_else(unreadable)?,
    })
}

/// Opens `n` connections to `target`, each carrying what `mode` says (one
/// request, so it is established end to end, or nothing), and reports the
/// memory of `pid` before and after.
pub fn run(target: SocketAddr, n: usize, mode: Mode, pid: u32) -> io::Result<(Memory, Memory)> {
    let _ = moirai::sys::rlimit::raise_nofile();
    let tls = match mode {
        Mode::H2 => Some(crate::gen::client_config_h2()?),
        Mode::Tls => Some(crate::gen::client_config()?),
        _ => None,
    };
    let before = memory(pid)?;
    // Held open until the memory is read.
    let mut conns = Vec::with_capacity(n);
    let mut tls_conns = Vec::new();
    for i in 0..n {
        if let Some(cfg) = &tls {
            let s = tls_request(target, cfg, mode).map_err(|e| {
                io::Error::new(e.kind(), format!("{} connection {i}: {e}", mode.name()))
            })?;
            tls_conns.push(s);
            continue;
        }
        let mut s = TcpStream::connect(target)?;
        if mode == Mode::Http {
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: loadtest\r\n\r\n")?;
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::other(format!(
                    "connection {i} closed before answering"
                )));
            }
        }
        conns.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = memory(pid)?;
    drop(conns);
    drop(tls_conns);
    Ok((before, after))
}

/// One TLS connection that made one request, its response read to the
/// end: with ALPN h2 (`Mode::H2`) the server's SETTINGS acknowledged too,
/// from then on an idle HTTP/2 connection; else an idle HTTP/1.1 one.
fn tls_request(
    target: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    mode: Mode,
) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let sock = TcpStream::connect(target)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    sock.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("loadtest").map_err(io::Error::other)?;
    let conn = rustls::ClientConnection::new(Arc::clone(cfg), name).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    if mode != Mode::H2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: loadtest\r\n\r\n")?;
        s.flush()?;
        let mut inbuf = Vec::new();
        let mut buf = vec![0u8; 16384];
        while !http1_complete(&inbuf)? {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::other("closed before the response ended"));
            }
            inbuf.extend_from_slice(&buf[..n]);
        }
        return Ok(s);
    }
    s.write_all(h2client::request())?;
    s.flush()?;
    if s.conn.alpn_protocol() != Some(b"h2") {
        return Err(io::Error::other("the balancer did not choose h2 by ALPN"));
    }
    let mut response = h2client::Response::new();
    let (mut inbuf, mut buf) = (Vec::new(), vec![0u8; 16384]);
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("closed before the response ended"));
        }
        inbuf.extend_from_slice(&buf[..n]);
        let mut answer = Vec::new();
        let done = response
            .feed(&mut inbuf, &mut answer)
            .map_err(|kind| io::Error::other(format!("bad response: {kind}")))?;
        if !answer.is_empty() {
            s.write_all(&answer)?;
            s.flush()?;
        }
        if done {
            return Ok(s);
        }
    }
}

/// Whether `buf` holds a whole HTTP/1.1 response with a 2xx status and a
/// Content-Length body (what the backends send).
fn http1_complete(buf: &[u8]) -> io::Result<bool> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(false);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    if !head.starts_with("HTTP/1.1 2") {
        return Err(io::Error::other(format!(
            "not a 2xx response: {:?}",
            head.lines().next()
        )));
    }
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or_else(|| io::Error::other("a response without Content-Length"))?;
    Ok(buf.len() >= end + 4 + len)
}

/// Bytes per connection that the growth from `before` to `after` (KiB)
/// means over `n` connections.
pub fn per_connection(before: u64, after: u64, n: usize) -> f64 {
    after.saturating_sub(before) as f64 * 1024.0 / n.max(1) as f64
}

/// One measurement's figures as the JSON reports write them.
pub fn figures(before: Memory, after: Memory, n: usize) -> Value {
    json!({
        "rss_kib": {"before": before.rss, "after": after.rss},
        "anon_kib": {"before": before.anon, "after": after.anon},
        "bytes_per_connection": {
            "anon": per_connection(before.anon, after.anon, n),
            "rss": per_connection(before.rss, after.rss, n),
        },
    })
}

/// The table's row cells after the leading ones: RSS before/after,
/// anonymous before/after, bytes per connection (anonymous, RSS).
pub fn cells(before: Memory, after: Memory, n: usize) -> String {
    format!(
        "{} | {} | {} | {} | {:.0} | {:.0} |",
        before.rss,
        after.rss,
        before.anon,
        after.anon,
        per_connection(before.anon, after.anon, n),
        per_connection(before.rss, after.rss, n)
    )
}

/// What `idle --systems` starts and how.
pub struct SystemsOptions {
    pub systems: Vec<System>,
    pub connections: usize,
    pub mode: Mode,
    pub moirai: Option<PathBuf>,
    pub haproxy: PathBuf,
}

/// Starts each balancer of `opts` as `compare` does (one worker or
/// thread on CPU 1, the backend on CPU 0, the same service for all, one
/// shared certificate for h2), then measures them one after the other;
/// prints the table and returns the report.
pub fn run_systems(opts: &SystemsOptions) -> Result<Value, CompareError> {
    if opts
        .systems
        .iter()
        .any(|s| matches!(s, System::Direct | System::Baseline | System::MoiraiMetrics))
    {
        return Err(CompareError::Unsupported(
            "idle --systems: moirai and haproxy",
        ));
    }
    if opts.systems.contains(&System::Haproxy) && !opts.haproxy.exists() {
        return Err(CompareError::NoHaproxy(opts.haproxy.clone()));
    }
    let moirai_bin = if opts.systems.contains(&System::Moirai) {
        Some(launch::moirai_path(opts.moirai.as_deref())?)
    } else {
        None
    };
    let setup = Setup {
        scenario: opts.mode.scenario(),
        systems: &opts.systems,
        baseline: None,
        haproxy: &opts.haproxy,
        cpu_quota: None,
    };
    let Launched {
        dir,
        backend: _backend,
        targets,
        ..
    } = launch::launch(&setup, moirai_bin.as_ref(), 1)?;
    let n = opts.connections;
    let mut rows = Vec::new();
    for (sys, addr, pid, _) in &targets {
        let pid = pid.ok_or(CompareError::Unsupported("a balancer without a pid"))?;
        let (before, after) = run(*addr, n, opts.mode, pid)
            .map_err(|e| CompareError::Io(format!("idle connections to {}", sys.name()), e))?;
        eprintln!(
            "{:>8}: {:.0} bytes per idle {} connection (anonymous)",
            sys.name(),
            per_connection(before.anon, after.anon, n),
            opts.mode.name()
        );
        rows.push((*sys, before, after));
    }
    drop(targets);
    let _ = std::fs::remove_dir_all(&dir);
    println!("| system | connections | RSS before KiB | RSS after KiB | anonymous before KiB | anonymous after KiB | bytes per idle connection (anonymous) | (RSS) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (sys, before, after) in &rows {
        println!("| {} | {n} | {}", sys.name(), cells(*before, *after, n));
    }
    Ok(systems_report(opts.mode, n, &rows))
}

/// The report of `idle --systems`: each system's figures, and moirai's
/// bytes per connection over HAProxy's.
pub fn systems_report(mode: Mode, n: usize, rows: &[(System, Memory, Memory)]) -> Value {
    let mut systems = serde_json::Map::new();
    for (sys, before, after) in rows {
        systems.insert(sys.name().to_owned(), figures(*before, *after, n));
    }
    let anon = |name: &str| systems.get(name)?["bytes_per_connection"]["anon"].as_f64();
    let ratio = match (anon("moirai"), anon("haproxy")) {
        (Some(m), Some(h)) if h > 0.0 => json!(m / h),
        _ => Value::Null,
    };
    json!({
        "connections": n,
        "mode": mode.name(),
        "http": mode != Mode::Tcp,
        "systems": systems,
        "ratio_vs_haproxy": {"anon": ratio},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_connection_are_the_anonymous_growth() {
        let before = Memory {
            rss: 10_000,
            anon: 2_000,
        };
        let after = Memory {
            rss: 14_000,
            anon: 3_000,
        };
        assert_eq!(per_connection(2_000, 3_000, 1024), 1000.0);
        // Memory that shrank counts as none.
        assert_eq!(per_connection(3_000, 2_000, 10), 0.0);
        let v = figures(before, after, 1024);
        assert_eq!(v["bytes_per_connection"]["anon"], 1000.0);
        assert_eq!(v["bytes_per_connection"]["rss"], 4000.0);
        assert_eq!(v["anon_kib"]["after"], 3000);
        assert_eq!(
            cells(before, after, 1024),
            "10000 | 14000 | 2000 | 3000 | 1000 | 4000 |"
        );
    }

    #[test]
    fn the_systems_report_has_each_and_the_ratio() {
        let m = (
            System::Moirai,
            Memory {
                rss: 1,
                anon: 1_000,
            },
            Memory {
                rss: 1,
                anon: 1_500,
            },
        );
        let h = (
            System::Haproxy,
            Memory {
                rss: 1,
                anon: 1_000,
            },
            Memory {
                rss: 1,
                anon: 3_000,
            },
        );
        let v = systems_report(Mode::H2, 1024, &[m, h]);
        assert_eq!(v["mode"], "h2");
        assert_eq!(v["http"], true);
        assert_eq!(
            v["systems"]["moirai"]["bytes_per_connection"]["anon"],
            500.0
        );
        assert_eq!(
            v["systems"]["haproxy"]["bytes_per_connection"]["anon"],
            2000.0
        );
        assert_eq!(v["ratio_vs_haproxy"]["anon"], 0.25);
        let alone = systems_report(Mode::Tcp, 10, &[m]);
        assert!(alone["ratio_vs_haproxy"]["anon"].is_null());
        assert_eq!(alone["http"], false);
    }

    #[test]
    fn an_http1_response_is_whole_with_its_body() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert!(!http1_complete(&r[..10]).unwrap());
        assert!(!http1_complete(&r[..r.len() - 1]).unwrap());
        assert!(http1_complete(r).unwrap());
        assert!(http1_complete(b"HTTP/1.1 503 x\r\n\r\n").is_err());
        assert!(http1_complete(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn h2_idle_connections_use_the_h2_setup() {
        assert_eq!(Mode::Tls.scenario(), Scenario::Tls);
        assert_eq!(Mode::H2.scenario(), Scenario::H2Handshake);
        assert!(Mode::H2.scenario().is_h2());
        assert_eq!(Mode::Http.scenario(), Scenario::Http);
        assert_eq!(Mode::Tcp.scenario(), Scenario::TcpEcho);
    }
}
