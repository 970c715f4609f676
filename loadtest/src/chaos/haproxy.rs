//! The HAProxy side of `loadtest chaos`: the configuration Triton's Moirai
//! would render for the soak's services, HAProxy run in master-worker mode,
//! reloaded for each change the way Moirai's cron does it, and the servers
//! it holds UP, read from its admin socket.
//!
//! The point is a fair comparison: the same services, balanced the way the
//! tool moirai replaces balances them in production, including its reload
//! path (re-render, `haproxy -c`, SIGUSR2 to the master).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::spec::{ServiceKind, ServiceSpec, Target};

/// How many servers a CNS name's `server-template` holds: Moirai's figure.
const TEMPLATE_SLOTS: usize = 32;
/// Health-check timing on every server line: the guide's documented
/// defaults, so HAProxy marks backends down and up as fast as it would in
/// production.
const CHECK_TIMING: &str = "inter 2s rise 2 fall 1";
/// How long `start` waits for every frontend to accept.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long `Drop` lets the master stop its workers before killing it.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Where HAProxy runs and what the rendered configuration points at.
#[derive(Debug, Clone)]
pub struct HaproxyCtx {
    /// The binary, usually `/usr/sbin/haproxy`.
    pub bin: PathBuf,
    /// A private working directory: configuration, admin socket, pid file
    /// and HAProxy's own output.
    pub dir: PathBuf,
    /// The soak's DNS front, HAProxy's only nameserver.
    pub nameserver: SocketAddr,
    /// Certificate and key (one PEM) for the TLS frontends.
    pub pem: PathBuf,
    /// The CA that `https` backends' certificates chain to.
    pub ca_file: PathBuf,
    /// The prometheus exporter's port on 127.0.0.1.
    pub metrics_port: u16,
    /// Where HAProxy logs, when anywhere.
    pub syslog: Option<SocketAddr>,
}

impl HaproxyCtx {
    fn cfg_path(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }

    fn sock_path(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.join("haproxy.pid")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("haproxy.out")
    }
}

/// The configuration Moirai renders for `services`: one frontend `fe{i}`
/// and backend `be{i}` per service, in spec order, plus the metrics
/// frontend.
pub fn render(ctx: &HaproxyCtx, services: &[ServiceSpec]) -> String {
    let mut out = String::new();
    // `fmt::Write` for a String cannot fail; the results are dropped.
    let _ = writeln!(out, "global");
    let _ = writeln!(out, "  master-worker");
    // `expose-fd listeners` lets the new worker take the old one's
    // listening sockets on reload, so no connection is refused meanwhile.
    let _ = writeln!(
        out,
        "  stats socket {} mode 600 level admin expose-fd listeners",
        ctx.sock_path().display()
    );
    let _ = writeln!(out, "  nbthread 2");
    let _ = writeln!(out, "  maxconn 20000");
    // Not Moirai's: maxconn 20000 wants ~40k descriptors, and HAProxy 2.6
    // refuses to start where the hard limit is lower (test hosts, CI
    // containers). With this it warns and runs under the limit it gets,
    // which the soak's few thousand connections stay well inside; where
    // the limit suffices (production) it changes nothing.
    let _ = writeln!(out, "  no strict-limits");
    if let Some(syslog) = ctx.syslog {
        let _ = writeln!(out, "  log {syslog} len 4096 local0");
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "resolvers system");
    let _ = writeln!(out, "  nameserver ns1 {}", ctx.nameserver);
    let _ = writeln!(out, "  accepted_payload_size 8192");
    for (what, how_long) in [
        ("valid", "10s"),
        ("other", "30s"),
        ("refused", "30s"),
        ("nx", "30s"),
        ("timeout", "30s"),
        ("obsolete", "30s"),
    ] {
        let _ = writeln!(out, "  hold {what} {how_long}");
    }
    let _ = writeln!(out, "  resolve_retries 3");
    let _ = writeln!(out, "  timeout retry 1s");
    let _ = writeln!(out, "  timeout resolve 1s");
    let _ = writeln!(out);

    let _ = writeln!(out, "defaults");
    let _ = writeln!(out, "  timeout connect 5s");
    let _ = writeln!(out, "  timeout client 55s");
    let _ = writeln!(out, "  timeout server 120s");
    let _ = writeln!(out, "  timeout tunnel 1h");
    let _ = writeln!(out, "  retries 3");
    let _ = writeln!(out, "  option redispatch");
    let _ = writeln!(out, "  log global");
    let _ = writeln!(out);

    for (i, svc) in services.iter().enumerate() {
        render_service(&mut out, ctx, i, svc);
    }

    let _ = writeln!(out, "frontend __cloud_tritoncompute__metrics");
    let _ = writeln!(out, "  bind 127.0.0.1:{}", ctx.metrics_port);
    let _ = writeln!(out, "  mode http");
    let _ = writeln!(
        out,
        "  http-request use-service prometheus-exporter if {{ path /metrics }}"
    );
    out
}

/// One service's frontend and backend.
fn render_service(out: &mut String, ctx: &HaproxyCtx, i: usize, svc: &ServiceSpec) {
    let http = svc.kind.is_http();
    let mode = if http { "http" } else { "tcp" };

    let _ = writeln!(out, "frontend fe{i}");
    let mut bind = format!("  bind 127.0.0.1:{}", svc.listen);
    if svc.kind.client_tls() {
        // HTTP/2 as moirai offers it (the soak's h2 clients ask for it).
        let _ = write!(bind, " ssl crt {} alpn h2,http/1.1", ctx.pem.display());
    }
    let _ = writeln!(out, "{bind}");
    let _ = writeln!(out, "  mode {mode}");
    if http {
        let _ = writeln!(out, "  option forwardfor");
        let _ = writeln!(out, "  option httplog");
    } else {
        let _ = writeln!(out, "  option tcplog");
    }
    let _ = writeln!(out, "  default_backend be{i}");
    let _ = writeln!(out);

    let _ = writeln!(out, "backend be{i}");
    // The backend's mode must match its frontend's.
    let _ = writeln!(out, "  mode {mode}");
    let _ = writeln!(out, "  balance leastconn");
    // An HTTP check only where HTTP is spoken and a path is given;
    // otherwise HAProxy's plain TCP connect check.
    if let (true, Some(path)) = (http, svc.check.as_deref()) {
        let _ = writeln!(out, "  option httpchk GET {path}");
        let _ = writeln!(out, "  http-check expect status 200");
    }

    // What every server line carries after its address.
    let mut opts = format!("check {CHECK_TIMING}");
    match svc.kind {
        // Moirai verifies backends against the CA but sets neither SNI
        // nor verifyhost: backends are addressed by IP.
        ServiceKind::Https => {
            let _ = write!(
                opts,
                " ssl verify required ca-file {}",
                ctx.ca_file.display()
            );
        }
        // The backend expects the header on every connection, checks
        // included, or it would reject them.
        ServiceKind::TcpProxyV2 => opts.push_str(" send-proxy-v2 check-send-proxy"),
        ServiceKind::Http | ServiceKind::HttpsHttp | ServiceKind::Tcp => {}
    }

    match &svc.target {
        Target::Cns { name, port } => {
            // `init-addr none`: start with empty slots and let the resolver
            // fill them, rather than failing when the name doesn't resolve
            // yet.
            let _ = writeln!(
                out,
                "  server-template rs {TEMPLATE_SLOTS} {name}:{port} {opts} \
                 resolvers system init-addr none resolve-prefer ipv4"
            );
        }
        Target::Ip(addrs) => {
            for (n, addr) in addrs.iter().enumerate() {
                let _ = writeln!(out, "  server rs{} {addr} {opts}", n + 1);
            }
        }
    }
    let _ = writeln!(out);
}

/// A running HAProxy master and its workers, stopped when dropped.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    ctx: HaproxyCtx,
    /// The configuration last written, to skip reloads that change nothing.
    rendered: String,
    /// `be{i}` → the listen port of the service it was rendered from.
    ports: Vec<u16>,
}

impl Haproxy {
    /// Validates the config (`haproxy -c -f`), starts `haproxy -W -f cfg -p
    /// pidfile` (master-worker, foreground), waits until every frontend's
    /// port accepts (≤ 10 s).
    pub fn start(ctx: HaproxyCtx, services: &[ServiceSpec]) -> io::Result<Haproxy> {
        fs::create_dir_all(&ctx.dir)?;
        let text = render(&ctx, services);
        let cfg = ctx.cfg_path();
        write_atomically(&cfg, &text)?;
        check_config(&ctx.bin, &cfg)?;

        // HAProxy's own output goes to a file, so a failure can be
        // explained and a chatty HAProxy never blocks on a full pipe.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ctx.log_path())?;
        let child = Command::new(&ctx.bin)
            .arg("-W")
            .arg("-f")
            .arg(&cfg)
            .arg("-p")
            .arg(ctx.pid_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut me = Haproxy {
            child,
            ports: services.iter().map(|s| s.listen).collect(),
            rendered: text,
            ctx,
        };

        let mut ports = me.ports.clone();
        ports.push(me.ctx.metrics_port);
        let deadline = Instant::now() + START_WAIT;
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            loop {
                if let Some(status) = me.child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "haproxy exited ({status}) before listening: {}",
                        me.output_tail()
                    )));
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    // `me` is dropped here, which stops HAProxy.
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("haproxy not listening on {addr} after {START_WAIT:?}"),
                    ));
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(me)
    }

    /// Re-renders; if the text differs or `force`, writes it atomically,
    /// checks it with `haproxy -c`, and reloads (SIGUSR2 to the master).
    /// Returns Ok(true) when a reload was sent. A config that fails `-c`
    /// → Err, no reload, and the running configuration stays in place, as
    /// with Moirai's cron.
    pub fn reload(&mut self, services: &[ServiceSpec], force: bool) -> io::Result<bool> {
        let text = render(&self.ctx, services);
        if text == self.rendered && !force {
            return Ok(false);
        }
        // Checked under a side name before the rename, so a bad
        // configuration never replaces the good one: the master re-reads
        // the file on every reload, a later forced one included.
        let cfg = self.ctx.cfg_path();
        let candidate = cfg.with_extension("cfg.new");
        fs::write(&candidate, &text)?;
        if let Err(e) = check_config(&self.ctx.bin, &candidate) {
            let _ = fs::remove_file(&candidate);
            return Err(e);
        }
        fs::rename(&candidate, &cfg)?;
        self.rendered = text;
        self.ports = services.iter().map(|s| s.listen).collect();
        signal(self.master_pid(), "USR2")?;
        Ok(true)
    }

    /// The master's pid: the process we started, which stays the same
    /// across reloads (the master re-executes itself in place).
    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }

    /// Every HAProxy process's pid: the master and its children from
    /// /proc, old workers still finishing their connections included.
    pub fn pids(&self) -> Vec<u32> {
        let master = self.master_pid();
        let mut pids = vec![master];
        pids.extend(children_of(master));
        pids
    }

    /// Servers UP per backend, from `show stat` on the admin socket, keyed
    /// by the frontend's listen port. Every backend last rendered has an
    /// entry, 0 when none of its servers is up.
    pub fn up_counts(&self) -> io::Result<HashMap<u16, usize>> {
        let csv = self.admin("show stat")?;
        parse_up_counts(&csv, &self.ports)
    }

    /// One command on the admin socket, its whole answer (HAProxy closes
    /// the connection after it, outside interactive mode).
    fn admin(&self, command: &str) -> io::Result<String> {
        let mut sock = UnixStream::connect(self.ctx.sock_path())?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        sock.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// The end of HAProxy's own output, for error messages.
    fn output_tail(&self) -> String {
        let text = fs::read_to_string(self.ctx.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        // Back off to a character boundary.
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].trim().to_owned()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // SIGTERM asks the master to stop its workers at once; it exits
        // when they have.
        let _ = signal(self.master_pid(), "TERM");
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // The workers too: they would notice the master's death, but not
        // necessarily before the next soak wants their ports.
        for pid in children_of(self.master_pid()) {
            let _ = signal(pid, "KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `path` replaced in one step, so HAProxy never reads half a file.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("cfg.tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// `haproxy -c -f path`; Err with HAProxy's explanation when it refuses.
fn check_config(bin: &Path, path: &Path) -> io::Result<()> {
    let out = Command::new(bin)
        .arg("-c")
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "haproxy -c rejects {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    ))
}

/// Sends `sig` (a name `kill` knows) to `pid` with kill(1), which keeps
/// this crate free of `unsafe`.
fn signal(pid: u32, sig: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("kill -{sig} {pid}: {status}")))
    }
}

/// The pids whose parent is `parent`, from /proc/*/stat.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // The process may be gone by now; skip it then.
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat_ppid(&stat) == Some(parent) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The parent pid in a /proc/PID/stat line: the second field after the
/// command, which is parenthesised and may itself hold spaces or ')'.
fn stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Counts the UP servers per backend in `show stat` CSV, `be{i}` keyed by
/// `ports[i]`.
fn parse_up_counts(csv: &str, ports: &[u16]) -> io::Result<HashMap<u16, usize>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("show stat: {why}"));
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| bad("no header"))?;
    // By name rather than position, in case a version moves columns.
    let col = |name: &str| {
        header
            .split(',')
            .position(|c| c == name)
            .ok_or_else(|| bad(&format!("no {name} column")))
    };
    let (px, sv, status) = (col("pxname")?, col("svname")?, col("status")?);

    let mut counts: HashMap<u16, usize> = ports.iter().map(|&p| (p, 0)).collect();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(pxname), Some(svname), Some(st)) =
            (fields.get(px), fields.get(sv), fields.get(status))
        else {
            continue;
        };
        if *svname == "FRONTEND" || *svname == "BACKEND" || !st.starts_with("UP") {
            continue;
        }
        let port = pxname
            .strip_prefix("be")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| ports.get(i));
        if let Some(&port) = port {
            *counts.entry(port).or_default() += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const BIN: &str = "/usr/sbin/haproxy";

    fn ctx(dir: &Path) -> HaproxyCtx {
        HaproxyCtx {
            bin: PathBuf::from(BIN),
            dir: dir.to_owned(),
            nameserver: "127.0.0.1:5353".parse().unwrap(),
            pem: dir.join("front.pem"),
            ca_file: dir.join("ca.crt"),
            metrics_port: free_port(),
            syslog: None,
        }
    }

    /// A fresh directory under the system's temp dir for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "loadtest-chaos-haproxy-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn haproxy_here() -> bool {
        if Path::new(BIN).exists() {
            return true;
        }
        println!("skipped: no {BIN} (apt-get install -y haproxy)");
        false
    }

    fn every_kind() -> Vec<ServiceSpec> {
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:9002".parse().unwrap();
        vec![
            ServiceSpec {
                label: "web",
                kind: ServiceKind::Http,
                listen: 18080,
                target: Target::Ip(vec![a, b]),
                check: Some("/healthz".into()),
            },
            ServiceSpec {
                label: "tls",
                kind: ServiceKind::HttpsHttp,
                listen: 18443,
                target: Target::Cns {
                    name: "web.svc.example".into(),
                    port: 8080,
                },
                check: None,
            },
            ServiceSpec {
                label: "e2e",
                kind: ServiceKind::Https,
                listen: 18444,
                target: Target::Ip(vec![a]),
                check: Some("/ping".into()),
            },
            ServiceSpec {
                label: "db",
                kind: ServiceKind::Tcp,
                listen: 15432,
                target: Target::Cns {
                    name: "db.svc.example".into(),
                    port: 5432,
                },
                check: Some("/ignored".into()),
            },
            ServiceSpec {
                label: "pp",
                kind: ServiceKind::TcpProxyV2,
                listen: 16000,
                target: Target::Ip(vec![b]),
                check: None,
            },
        ]
    }

    /// The lines of section `name`, up to the next blank line.
    fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .skip_while(|l| *l != name)
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(str::trim)
            .collect()
    }

    #[test]
    fn renders_what_moirai_renders() {
        let dir = PathBuf::from("/srv/h");
        let mut c = ctx(&dir);
        c.metrics_port = 8405;
        c.syslog = Some("127.0.0.1:514".parse().unwrap());
        let text = render(&c, &every_kind());

        let global = section(&text, "global");
        assert!(global.contains(&"master-worker"));
        assert!(global
            .contains(&"stats socket /srv/h/admin.sock mode 600 level admin expose-fd listeners"));
        assert!(global.contains(&"log 127.0.0.1:514 len 4096 local0"));
        let resolvers = section(&text, "resolvers system");
        assert!(resolvers.contains(&"nameserver ns1 127.0.0.1:5353"));
        assert!(resolvers.contains(&"hold valid 10s"));
        assert!(resolvers.contains(&"timeout resolve 1s"));
        let defaults = section(&text, "defaults");
        assert!(defaults.contains(&"timeout tunnel 1h"));
        assert!(defaults.contains(&"option redispatch"));

        // Http, fixed addresses, HTTP check.
        let fe = section(&text, "frontend fe0");
        assert_eq!(
            fe,
            [
                "bind 127.0.0.1:18080",
                "mode http",
                "option forwardfor",
                "option httplog",
                "default_backend be0"
            ]
        );
        let be = section(&text, "backend be0");
        assert!(be.contains(&"option httpchk GET /healthz"));
        assert!(be.contains(&"http-check expect status 200"));
        assert!(be.contains(&"balance leastconn"));
        assert!(be.contains(&"server rs1 127.0.0.1:9001 check inter 2s rise 2 fall 1"));
        assert!(be.contains(&"server rs2 127.0.0.1:9002 check inter 2s rise 2 fall 1"));

        // HttpsHttp: TLS at the front, plain HTTP behind, a CNS name, TCP check.
        let fe = section(&text, "frontend fe1");
        assert!(fe.contains(&"bind 127.0.0.1:18443 ssl crt /srv/h/front.pem alpn h2,http/1.1"));
        let be = section(&text, "backend be1");
        assert!(!be.iter().any(|l| l.starts_with("option httpchk")));
        assert!(be.contains(
            &"server-template rs 32 web.svc.example:8080 check inter 2s rise 2 fall 1 \
              resolvers system init-addr none resolve-prefer ipv4"
        ));

        // Https: TLS both sides, verified against the CA, no SNI.
        let fe = section(&text, "frontend fe2");
        assert!(fe.contains(&"bind 127.0.0.1:18444 ssl crt /srv/h/front.pem alpn h2,http/1.1"));
        let be = section(&text, "backend be2");
        assert!(be.contains(&"option httpchk GET /ping"));
        assert!(be.contains(
            &"server rs1 127.0.0.1:9001 check inter 2s rise 2 fall 1 \
              ssl verify required ca-file /srv/h/ca.crt"
        ));
        assert!(!text.contains("sni") && !text.contains("verifyhost"));

        // Tcp: TCP mode, and a check path means nothing there.
        let fe = section(&text, "frontend fe3");
        assert_eq!(
            fe,
            [
                "bind 127.0.0.1:15432",
                "mode tcp",
                "option tcplog",
                "default_backend be3"
            ]
        );
        let be = section(&text, "backend be3");
        assert!(be.contains(&"mode tcp"));
        assert!(!be.iter().any(|l| l.starts_with("option httpchk")));

        // TcpProxyV2: the header on traffic and checks alike.
        let be = section(&text, "backend be4");
        assert!(be.contains(
            &"server rs1 127.0.0.1:9002 check inter 2s rise 2 fall 1 \
              send-proxy-v2 check-send-proxy"
        ));

        let metrics = section(&text, "frontend __cloud_tritoncompute__metrics");
        assert_eq!(
            metrics,
            [
                "bind 127.0.0.1:8405",
                "mode http",
                "http-request use-service prometheus-exporter if { path /metrics }"
            ]
        );

        // No syslog, no log line in global.
        c.syslog = None;
        let text = render(&c, &every_kind());
        assert!(!section(&text, "global")
            .iter()
            .any(|l| l.starts_with("log ")));
    }

    #[test]
    fn parses_show_stat() {
        let csv = "# pxname,svname,qcur,status,\n\
                   fe0,FRONTEND,0,OPEN,\n\
                   be0,rs1,0,UP,\n\
                   be0,rs2,0,UP 1/2,\n\
                   be0,rs3,0,DOWN,\n\
                   be0,BACKEND,0,UP,\n\
                   be1,rs1,0,MAINT (resolution),\n\
                   be1,rs2,0,DOWN 1/2,\n\
                   __cloud_tritoncompute__metrics,FRONTEND,0,OPEN,\n";
        let counts = parse_up_counts(csv, &[80, 81]).unwrap();
        assert_eq!(counts, HashMap::from([(80, 2), (81, 0)]));
        assert!(parse_up_counts("", &[80]).is_err());
    }

    #[test]
    fn reads_ppid_from_stat() {
        assert_eq!(stat_ppid("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(stat_ppid("garbage"), None);
    }

    #[test]
    fn haproxy_accepts_the_rendered_config() {
        if !haproxy_here() {
            return;
        }
        let dir = scratch("check");
        let tls = dir.join("tls");
        fs::create_dir_all(&tls).unwrap();
        moirai::tls::certs::self_signed(&tls, &["loadtest".to_owned()]).unwrap();
        let cert = fs::read(tls.join(moirai::tls::certs::SELF_SIGNED_CERT)).unwrap();
        let key = fs::read(tls.join(moirai::tls::certs::SELF_SIGNED_KEY)).unwrap();
        let c = ctx(&dir);
        fs::write(&c.pem, [cert.clone(), key].concat()).unwrap();
        fs::write(&c.ca_file, cert).unwrap();
        let cfg = dir.join("haproxy.cfg");
        fs::write(&cfg, render(&c, &every_kind())).unwrap();
        check_config(&c.bin, &cfg).unwrap();
        let _ = fs::remove_dir_all(&dir);
    }

    /// An echo server on 127.0.0.1, one thread per connection.
    fn echo_backend() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn echo_through(conn: &mut TcpStream, msg: &[u8]) {
        conn.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }

    /// Polls `up_counts` until `port` shows `want` servers up (≤ 8 s:
    /// a check every 2 s, spread, and a slow shared host).
    fn wait_up(h: &Haproxy, port: u16, want: usize) {
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut last = None;
        while Instant::now() < deadline {
            // The socket may be briefly missing while a new worker
            // takes over; that is just another try.
            match h.up_counts() {
                Ok(c) if c.get(&port) == Some(&want) => return,
                other => last = Some(other),
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("{want} up on {port} never seen; last: {last:?}");
    }

    #[test]
    fn starts_balances_and_reloads() {
        if !haproxy_here() {
            return;
        }
        let dir = scratch("run");
        let (a, b) = (echo_backend(), echo_backend());
        let listen = free_port();
        let spec = |addrs: Vec<SocketAddr>| {
            vec![ServiceSpec {
                label: "echo",
                kind: ServiceKind::Tcp,
                listen,
                target: Target::Ip(addrs),
                check: None,
            }]
        };
        let one = spec(vec![a]);
        let mut h = Haproxy::start(ctx(&dir), &one).unwrap();
        assert!(h.pids().contains(&h.master_pid()));
        assert!(h.pids().len() >= 2, "no worker: {:?}", h.pids());

        let front = SocketAddr::from(([127, 0, 0, 1], listen));
        let mut early = TcpStream::connect(front).unwrap();
        early
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        echo_through(&mut early, b"before");
        wait_up(&h, listen, 1);

        // Nothing changed: no reload.
        assert!(!h.reload(&one, false).unwrap());
        let master = h.master_pid();
        assert!(h.reload(&spec(vec![a, b]), false).unwrap());
        wait_up(&h, listen, 2);
        // The master re-executes in place; the old worker keeps serving
        // the connection it holds.
        assert_eq!(h.master_pid(), master);
        echo_through(&mut early, b"after");
        let mut late = TcpStream::connect(front).unwrap();
        late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        echo_through(&mut late, b"new");

        // A backend that refuses connections fails its check and stops
        // counting (fall 1, inter 2s: within a few seconds).
        let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
        assert!(h.reload(&spec(vec![a, b, dead]), false).unwrap());
        // HAProxy starts new servers UP until their first check: 3 shows
        // the new worker answers, then the check takes the dead one down.
        wait_up(&h, listen, 3);
        wait_up(&h, listen, 2);
        echo_through(&mut late, b"still");

        // A configuration HAProxy refuses is not loaded.
        let mut broken = spec(vec![a]);
        broken[0].target = Target::Cns {
            name: "bad name with spaces".into(),
            port: 1,
        };
        assert!(h.reload(&broken, false).is_err());
        wait_up(&h, listen, 2);

        drop(h);
        assert!(TcpStream::connect(front).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
