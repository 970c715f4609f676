//! The soak's world: every process around the balancer (backends, nginx,
//! dnsmasq behind a flapping DNS front, pebble, a syslog receiver), built
//! in one private directory on loopback and torn down when dropped. The
//! child processes themselves, and the port and HTTP helpers every part of
//! the soak uses, are `process.rs`'s.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::dns::DnsFront;
use super::process::{err, free_port, wait_listening, write_atomic, Proc};
use super::spec::{ServiceKind, ServiceSpec, Target};

/// The zone dnsmasq answers, as CNS would.
pub const ZONE: &str = "cns.test";
/// The name the ACME certificate is for (dnsmasq: 127.0.0.1).
pub const CERT_NAME: &str = "lb.cns.test";
/// The CNS service name of the `web` pool.
pub const WEB_NAME: &str = "web.svc.cns.test";

/// What serves behind one backend address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `loadtest chaos-backend --kind http`.
    Http,
    /// nginx, plain HTTP.
    Nginx,
    /// nginx with TLS (behind the `https` service).
    NginxTls,
    Echo,
    ProxyEcho,
}

/// One backend process.
pub struct Backend {
    /// `b2`, `n4`, ...: what its responses and echo banners name.
    pub name: String,
    pub addr: SocketAddr,
    /// The label of the service it serves.
    pub service: &'static str,
    pub kind: BackendKind,
    /// While this file exists, its `/health` answers 503.
    pub health_file: PathBuf,
    pub proc: Proc,
}

impl Backend {
    /// Starts it and waits until it listens.
    pub fn start(&mut self) -> io::Result<()> {
        self.proc.start()?;
        wait_listening(self.addr, Duration::from_secs(10))
    }
}

/// A UDP syslog receiver that can be taken down and brought back.
pub struct Syslog {
    pub addr: SocketAddr,
    pub lines: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Syslog {
    pub fn start(port: u16) -> io::Result<Syslog> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let lines = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, d, s) = (lines.clone(), down.clone(), stop.clone());
        // Bound once here so a port clash is an error at start, not later.
        let first = UdpSocket::bind(addr)?;
        let thread = std::thread::spawn(move || {
            let mut sock = Some(first);
            let mut buf = [0u8; 8192];
            while !s.load(Ordering::Relaxed) {
                if d.load(Ordering::Relaxed) {
                    // Down: nothing listens, so the balancer's datagrams
                    // meet ICMP port unreachable.
                    sock = None;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let Some(u) = sock.as_ref() else {
                    sock = UdpSocket::bind(addr).ok();
                    if let Some(u) = sock.as_ref() {
                        let _ = u.set_read_timeout(Some(Duration::from_millis(100)));
                    }
                    continue;
                };
                let _ = u.set_read_timeout(Some(Duration::from_millis(100)));
                if u.recv(&mut buf).is_ok() {
                    l.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Syslog {
            addr,
            lines,
            down,
            stop,
            thread: Some(thread),
        })
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ports and paths of the world.
pub struct Ports {
    pub web: u16,
    pub app: u16,
    pub secure: u16,
    pub stream: u16,
    pub proxied: u16,
    pub metrics: u16,
    /// Backend ports, one per pool (each pool's members differ by address).
    pub web_be: u16,
    pub app_be: u16,
    pub tls_be: u16,
    pub echo_be: u16,
    pub proxy_be: u16,
}

/// Everything around the balancer.
pub struct World {
    pub ports: Ports,
    pub backends: Vec<Backend>,
    pub dnsmasq: Proc,
    /// dnsmasq's `--addn-hosts` file: the `web` pool's A records.
    pub dns_hosts: PathBuf,
    pub dns: DnsFront,
    /// The balancer's hosts file (the static pools).
    pub hosts: PathBuf,
    pub pebble: Option<Pebble>,
    pub syslog: Syslog,
    /// CA the TLS backends' certificates chain to.
    pub backend_ca: PathBuf,
    /// A self-signed certificate and key for `lb.cns.test` (HAProxy's
    /// fronts; moirai gets its own from pebble).
    pub front_pem: PathBuf,
}

/// pebble, the ACME test server.
pub struct Pebble {
    pub proc: Proc,
    pub port: u16,
    /// The CA pebble's own HTTPS is signed by.
    pub ca: PathBuf,
}

impl Pebble {
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }
}

/// The members of the `web` pool that DNS may name.
pub const WEB_IPS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

impl World {
    /// Builds and starts every backend and helper; `acme` adds pebble.
    pub fn start(dir: &Path, acme: bool) -> io::Result<World> {
        std::fs::create_dir_all(dir)?;
        let exe = std::env::current_exe()?;
        let ports = Ports {
            web: free_port(),
            app: free_port(),
            secure: free_port(),
            stream: free_port(),
            proxied: free_port(),
            metrics: free_port(),
            web_be: free_port(),
            app_be: free_port(),
            tls_be: free_port(),
            echo_be: free_port(),
            proxy_be: free_port(),
        };
        let (backend_ca, tls_cert, tls_key, front_pem) = certificates(dir)?;
        let mut backends = Vec::new();
        let mut chaos = |name: &str, ip: &str, port: u16, service, kind: BackendKind| {
            let addr: SocketAddr = format!("{ip}:{port}").parse().expect("literal");
            let health_file = dir.join(format!("{name}.down"));
            let word = match kind {
                BackendKind::Echo => "echo",
                BackendKind::ProxyEcho => "proxy-echo",
                _ => "http",
            };
            let args = vec![
                "chaos-backend".to_owned(),
                "--listen".to_owned(),
                addr.to_string(),
                "--name".to_owned(),
                name.to_owned(),
                "--kind".to_owned(),
                word.to_owned(),
                "--health-file".to_owned(),
                health_file.display().to_string(),
            ];
            let proc = Proc::new(name, &exe, args, dir.join(format!("{name}.log")));
            backends.push(Backend {
                name: name.to_owned(),
                addr,
                service,
                kind,
                health_file,
                proc,
            });
        };
        chaos("b2", WEB_IPS[0], ports.web_be, "web", BackendKind::Http);
        chaos("b3", WEB_IPS[1], ports.web_be, "web", BackendKind::Http);
        chaos("a5", "127.0.0.5", ports.app_be, "app", BackendKind::Http);
        chaos(
            "e8",
            "127.0.0.8",
            ports.echo_be,
            "stream",
            BackendKind::Echo,
        );
        chaos(
            "e9",
            "127.0.0.9",
            ports.echo_be,
            "stream",
            BackendKind::Echo,
        );
        chaos(
            "e10",
            "127.0.0.10",
            ports.echo_be,
            "stream",
            BackendKind::Echo,
        );
        chaos(
            "p11",
            "127.0.0.11",
            ports.proxy_be,
            "proxied",
            BackendKind::ProxyEcho,
        );
        chaos(
            "p12",
            "127.0.0.12",
            ports.proxy_be,
            "proxied",
            BackendKind::ProxyEcho,
        );
        backends.push(nginx(dir, "n4", WEB_IPS[2], ports.web_be, "web", None)?);
        backends.push(nginx(
            dir,
            "t6",
            "127.0.0.6",
            ports.tls_be,
            "secure",
            Some((&tls_cert, &tls_key)),
        )?);
        backends.push(nginx(
            dir,
            "t7",
            "127.0.0.7",
            ports.tls_be,
            "secure",
            Some((&tls_cert, &tls_key)),
        )?);
        for b in &mut backends {
            b.start()?;
        }

        let dns_port = free_port();
        let dns_hosts = dir.join("dns-hosts");
        write_atomic(&dns_hosts, &web_records(&WEB_IPS))?;
        let dnsmasq_bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or_else(|| err("dnsmasq is needed: apt-get install -y dnsmasq-base"))?;
        let mut dnsmasq = Proc::new(
            "dnsmasq",
            dnsmasq_bin,
            vec![
                "--keep-in-foreground".into(),
                "--conf-file=/dev/null".into(),
                "--no-resolv".into(),
                "--no-hosts".into(),
                "--listen-address=127.0.0.1".into(),
                "--bind-interfaces".into(),
                "--user=root".into(),
                "--pid-file=".into(),
                // CNS's TTL is 30 s; 2 s lets a short soak see changes.
                "--local-ttl=2".into(),
                format!("--local=/{ZONE}/"),
                format!("--port={dns_port}"),
                format!("--addn-hosts={}", dns_hosts.display()),
                format!("--host-record={CERT_NAME},127.0.0.1"),
            ],
            dir.join("dnsmasq.log"),
        );
        dnsmasq.start()?;
        let dns_addr = SocketAddr::from(([127, 0, 0, 1], dns_port));
        wait_listening(dns_addr, Duration::from_secs(5))?;
        let dns = DnsFront::start(dns_addr)?;

        let hosts = dir.join("hosts");
        write_atomic(
            &hosts,
            "127.0.0.6 tls.pool\n127.0.0.7 tls.pool\n\
             127.0.0.8 echo.pool\n127.0.0.9 echo.pool\n\
             127.0.0.8 echo.wide\n127.0.0.9 echo.wide\n127.0.0.10 echo.wide\n\
             127.0.0.11 proxy.pool\n127.0.0.12 proxy.pool\n",
        )?;
        let pebble = if acme {
            Some(pebble(dir, ports.web, dns_addr)?)
        } else {
            None
        };
        let syslog = Syslog::start(free_port())?;
        Ok(World {
            ports,
            backends,
            dnsmasq,
            dns_hosts,
            dns,
            hosts,
            pebble,
            syslog,
            backend_ca,
            front_pem,
        })
    }

    /// Points the `web` name at these addresses (dnsmasq re-reads its
    /// hosts file on SIGHUP).
    pub fn set_web_records(&self, ips: &[&str]) -> io::Result<()> {
        write_atomic(&self.dns_hosts, &web_records(ips))?;
        self.dnsmasq.signal("HUP")
    }

    pub fn backend(&mut self, name: &str) -> Option<&mut Backend> {
        self.backends.iter_mut().find(|b| b.name == name)
    }

    /// The soak's services, as HAProxy is given them: names a hosts file
    /// would give moirai are written out as addresses (HAProxy's
    /// resolvers never read one), the `web` pool stays a CNS name.
    /// `wide` is the metadata's current choice for `stream`.
    pub fn services(&self, wide: bool) -> Vec<ServiceSpec> {
        let p = &self.ports;
        let ips = |list: &[&str], port: u16| {
            Target::Ip(
                list.iter()
                    .map(|ip| format!("{ip}:{port}").parse().expect("literal"))
                    .collect(),
            )
        };
        let stream: &[&str] = if wide {
            &["127.0.0.8", "127.0.0.9", "127.0.0.10"]
        } else {
            &["127.0.0.8", "127.0.0.9"]
        };
        vec![
            ServiceSpec {
                label: "web",
                kind: ServiceKind::Http,
                listen: p.web,
                target: Target::Cns {
                    name: WEB_NAME.to_owned(),
                    port: p.web_be,
                },
                check: Some("/health".to_owned()),
            },
            ServiceSpec {
                label: "app",
                kind: ServiceKind::HttpsHttp,
                listen: p.app,
                target: ips(&["127.0.0.5"], p.app_be),
                check: Some("/health".to_owned()),
            },
            ServiceSpec {
                label: "secure",
                kind: ServiceKind::Https,
                listen: p.secure,
                target: ips(&["127.0.0.6", "127.0.0.7"], p.tls_be),
                check: Some("/health".to_owned()),
            },
            ServiceSpec {
                label: "stream",
                kind: ServiceKind::Tcp,
                listen: p.stream,
                target: ips(stream, p.echo_be),
                check: None,
            },
            ServiceSpec {
                label: "proxied",
                kind: ServiceKind::TcpProxyV2,
                listen: p.proxied,
                target: ips(&["127.0.0.11", "127.0.0.12"], p.proxy_be),
                check: None,
            },
        ]
    }

    /// The portmap moirai is given for the same services: `app` by IP,
    /// `web` by CNS name through DNS, the rest by names from the hosts
    /// file. `wide` puts a third backend into `stream`.
    pub fn portmap(&self, wide: bool) -> String {
        let p = &self.ports;
        let stream = if wide { "echo.wide" } else { "echo.pool" };
        [
            format!("http://{}:{WEB_NAME}:{}{{check:/health}}", p.web, p.web_be),
            format!(
                "https-http://{}:127.0.0.5:{}{{check:/health}}",
                p.app, p.app_be
            ),
            format!(
                "https://{}:tls.pool:{}{{check:/health}}",
                p.secure, p.tls_be
            ),
            format!("tcp://{}:{stream}:{}", p.stream, p.echo_be),
            format!("tcp-proxy-v2://{}:proxy.pool:{}", p.proxied, p.proxy_be),
        ]
        .join(",")
    }

    /// The metadata document for moirai's `--metadata-file`.
    pub fn metadata(&self, wide: bool, extra: &BTreeMap<String, String>) -> String {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: String| {
            m.insert(
                format!("cloud.tritoncompute:{k}"),
                serde_json::Value::String(v),
            );
        };
        put("loadbalancer", "true".into());
        put("portmap", self.portmap(wide));
        put("certificate_name", CERT_NAME.into());
        put("metrics_acl", "127.0.0.0/8".into());
        put("metrics_port", self.ports.metrics.to_string());
        put("syslog", self.syslog.addr.to_string());
        for (k, v) in extra {
            m.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        serde_json::Value::Object(m).to_string()
    }
}

fn web_records(ips: &[&str]) -> String {
    ips.iter().map(|ip| format!("{ip} {WEB_NAME}\n")).collect()
}

/// A fresh CA named `ca_name` and a leaf for `names` signed by it, as PEM:
/// (CA certificate, leaf certificate, leaf key).
fn ca_and_leaf(ca_name: &str, names: Vec<String>) -> io::Result<(String, String, String)> {
    let e = |x: rcgen::Error| err(format!("certificate: {x}"));
    let ca_key = rcgen::KeyPair::generate().map_err(e)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().map_err(e)?;
    let cert = rcgen::CertificateParams::new(names)
        .map_err(e)?
        .signed_by(&key, &issuer)
        .map_err(e)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// A CA for the TLS backends and their certificate, and a self-signed
/// front certificate; returns (ca.pem, backend cert, backend key, front
/// cert+key pem).
fn certificates(dir: &Path) -> io::Result<(PathBuf, PathBuf, PathBuf, PathBuf)> {
    let e = |x: rcgen::Error| err(format!("certificate: {x}"));
    let (ca, cert, key) = ca_and_leaf("chaos backend CA", vec!["tls.pool".into()])?;
    let front_key = rcgen::KeyPair::generate().map_err(e)?;
    let front = rcgen::CertificateParams::new(vec![CERT_NAME.into()])
        .map_err(e)?
        .self_signed(&front_key)
        .map_err(e)?;
    let paths = (
        dir.join("backend-ca.pem"),
        dir.join("backend.pem"),
        dir.join("backend.key"),
        dir.join("front.pem"),
    );
    std::fs::write(&paths.0, ca)?;
    std::fs::write(&paths.1, cert)?;
    std::fs::write(&paths.2, key)?;
    std::fs::write(&paths.3, front.pem() + &front_key.serialize_pem())?;
    Ok(paths)
}

/// nginx as one backend: one process (`master_process off`), so SIGKILL
/// takes all of it; `/health` answers 503 while its health file exists.
fn nginx(
    dir: &Path,
    name: &str,
    ip: &str,
    port: u16,
    service: &'static str,
    tls: Option<(&Path, &Path)>,
) -> io::Result<Backend> {
    let bin = Path::new("/usr/sbin/nginx");
    if !bin.exists() {
        return Err(err("nginx is needed: apt-get install -y nginx-light"));
    }
    let root = dir.join(name);
    std::fs::create_dir_all(&root)?;
    let health_file = dir.join(format!("{name}.down"));
    let d = root.display();
    let (ssl, certs) = match tls {
        Some((c, k)) => (
            " ssl",
            format!(
                "    ssl_certificate {};\n    ssl_certificate_key {};\n",
                c.display(),
                k.display()
            ),
        ),
        None => ("", String::new()),
    };
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           keepalive_requests 100000;\n  client_max_body_size 16m;\n\
           server {{\n    listen {ip}:{port}{ssl};\n{certs}\
             location = /health {{ if (-f {hf}) {{ return 503 \"down\\n\"; }} default_type text/plain; return 200 \"up\\n\"; }}\n\
             location / {{ default_type text/plain; return 200 \"{name} $request_method $uri\\n\"; }}\n\
           }}\n}}\n",
        hf = health_file.display(),
    );
    std::fs::write(root.join("nginx.conf"), conf)?;
    let args = vec![
        "-c".to_owned(),
        root.join("nginx.conf").display().to_string(),
        "-p".to_owned(),
        root.display().to_string(),
    ];
    Ok(Backend {
        name: name.to_owned(),
        addr: format!("{ip}:{port}").parse().expect("literal"),
        service,
        kind: if tls.is_some() {
            BackendKind::NginxTls
        } else {
            BackendKind::Nginx
        },
        health_file,
        proc: Proc::new(name, bin, args, dir.join(format!("{name}.log"))),
    })
}

/// pebble validating HTTP-01 on `http_port` of the addresses dnsmasq gives.
fn pebble(dir: &Path, http_port: u16, dns: SocketAddr) -> io::Result<Pebble> {
    let bin = Path::new("/usr/bin/pebble");
    if !bin.exists() {
        return Err(err("pebble is needed: apt-get install -y pebble"));
    }
    let pdir = dir.join("pebble");
    std::fs::create_dir_all(&pdir)?;
    let (ca, cert, key) = ca_and_leaf(
        "pebble test CA",
        vec!["localhost".into(), "127.0.0.1".into()],
    )?;
    std::fs::write(pdir.join("ca.pem"), ca)?;
    std::fs::write(pdir.join("cert.pem"), cert)?;
    std::fs::write(pdir.join("key.pem"), key)?;
    let (port, mgmt, tls) = (free_port(), free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": pdir.join("cert.pem"),
        "privateKey": pdir.join("key.pem"),
        "httpPort": http_port,
        "tlsPort": tls,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    std::fs::write(pdir.join("pebble.json"), config.to_string())?;
    let mut proc = Proc::new(
        "pebble",
        bin,
        vec![
            "-config".into(),
            pdir.join("pebble.json").display().to_string(),
            "-dnsserver".into(),
            dns.to_string(),
        ],
        dir.join("pebble.log"),
    )
    .env("PEBBLE_VA_NOSLEEP", "1")
    .env("PEBBLE_WFE_NONCEREJECT", "0")
    .env("PEBBLE_AUTHZREUSE", "0");
    proc.start()?;
    wait_listening(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(10),
    )?;
    Ok(Pebble {
        proc,
        port,
        ca: pdir.join("ca.pem"),
    })
}
