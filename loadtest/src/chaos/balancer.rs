//! The balancer under the soak: moirai, or HAProxy 2.6 configured as
//! Triton's Moirai configures it. The soak's events reach each the way an
//! operator's would: moirai through its metadata file, signals and
//! commands; HAProxy through a re-rendered config and a reload.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::haproxy::{Haproxy, HaproxyCtx};
use super::process::{write_atomic, Proc};
use super::world::World;

pub enum Balancer {
    Moirai(Moirai),
    Haproxy(Haproxy),
}

pub struct Moirai {
    bin: PathBuf,
    pub proc: Proc,
    pub state: PathBuf,
    pub metadata: PathBuf,
    pub log: PathBuf,
    pub errors: PathBuf,
    pub access: PathBuf,
}

fn err(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

impl Moirai {
    /// Starts `moirai run` on the world's metadata and waits until every
    /// service listens, every backend is up and, with pebble, the ACME
    /// certificate is served.
    pub fn start(bin: &Path, world: &World, dir: &Path) -> io::Result<Moirai> {
        let metadata = dir.join("metadata.json");
        write_atomic(&metadata, &world.metadata(false, &BTreeMap::new()))?;
        let state = dir.join("state");
        let errors = dir.join("errors.log");
        let access = dir.join("access.log");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--metadata-file".into(),
            metadata.display().to_string(),
            "--metadata-interval".into(),
            "1s".into(),
            "--state-dir".into(),
            state.display().to_string(),
            "--hosts-file".into(),
            world.hosts.display().to_string(),
            "--workers".into(),
            "2".into(),
            "--nameserver".into(),
            world.dns.addr().to_string(),
            "--max-ttl".into(),
            "5s".into(),
            "--ca-file".into(),
            world.backend_ca.display().to_string(),
            "--listen-address".into(),
            "127.0.0.1".into(),
            "--error-log".into(),
            errors.display().to_string(),
            "--error-log-interval".into(),
            "5s".into(),
            "--access-log".into(),
            access.display().to_string(),
        ];
        if let Some(p) = world.pebble.as_ref() {
            args.extend([
                "--acme-directory".into(),
                p.directory(),
                "--acme-ca-file".into(),
                p.ca.display().to_string(),
                "--acme-challenge".into(),
                "http-01".into(),
            ]);
        }
        let log = dir.join("moirai.log");
        let mut proc = Proc::new("moirai", bin, args, log.clone());
        proc.start()?;
        let m = Moirai {
            bin: bin.to_owned(),
            proc,
            state,
            metadata,
            log,
            errors,
            access,
        };
        let start = Instant::now();
        loop {
            let ready = m.status().ok().is_some_and(|s| {
                let services = s["services"].as_array().cloned().unwrap_or_default();
                let all_up = services.len() == 5
                    && services.iter().all(|svc| {
                        let b = svc["backends"].as_array().cloned().unwrap_or_default();
                        !b.is_empty() && b.iter().all(|b| b["up"] == Value::Bool(true))
                    });
                let cert = world.pebble.is_none()
                    || s["certificates"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["source"] == "acme"));
                all_up && cert
            });
            if ready {
                return Ok(m);
            }
            if start.elapsed() > Duration::from_secs(90) {
                return Err(err(format!(
                    "moirai was not ready within 90 s (every service listening, every backend up, the ACME certificate served); see {}",
                    m.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn ctl(&self, args: &[&str]) -> io::Result<String> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(err(format!(
                "moirai {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    pub fn status(&self) -> io::Result<Value> {
        let text = self.ctl(&["status", "--json"])?;
        serde_json::from_str(&text).map_err(err)
    }
}

impl Balancer {
    pub fn is_moirai(&self) -> bool {
        matches!(self, Balancer::Moirai(_))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Balancer::Moirai(_) => "moirai",
            Balancer::Haproxy(_) => "haproxy",
        }
    }

    /// The processes whose resources are the balancer's.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Balancer::Moirai(m) => m.proc.pid().into_iter().collect(),
            Balancer::Haproxy(h) => h.pids(),
        }
    }

    /// New metadata: moirai reads its file; HAProxy gets what Moirai's
    /// cron would do with it: nothing when `loadbalancer` is not true
    /// (the cron exits early), else a render and a reload (bad portmap
    /// entries are dropped by the render, as Moirai drops them).
    pub fn apply(
        &mut self,
        world: &World,
        wide: bool,
        extra: &BTreeMap<String, String>,
        changed: bool,
    ) -> io::Result<()> {
        match self {
            Balancer::Moirai(m) => write_atomic(&m.metadata, &world.metadata(wide, extra)),
            Balancer::Haproxy(h) => {
                let off = extra
                    .get("cloud.tritoncompute:loadbalancer")
                    .is_some_and(|v| v.trim() != "true");
                if off {
                    return Ok(());
                }
                h.reload(&world.services(wide), changed).map(|_| ())
            }
        }
    }

    /// The metadata file vanishes (moirai); `mdata-get` failing makes
    /// Moirai's cron exit early (HAProxy).
    pub fn vanish(&mut self) -> io::Result<()> {
        match self {
            Balancer::Moirai(m) => std::fs::remove_file(&m.metadata),
            Balancer::Haproxy(_) => Ok(()),
        }
    }

    /// `svcadm refresh`: SIGHUP for moirai, a reload for HAProxy.
    pub fn refresh(&mut self, world: &World, wide: bool) -> io::Result<()> {
        match self {
            Balancer::Moirai(m) => m.proc.signal("HUP"),
            Balancer::Haproxy(h) => h.reload(&world.services(wide), true).map(|_| ()),
        }
    }

    /// A new binary: moirai's exec hand-over; HAProxy's is a reload.
    pub fn upgrade(&mut self, world: &World, wide: bool) -> io::Result<()> {
        match self {
            Balancer::Moirai(m) => m.ctl(&["upgrade"]).map(|_| ()),
            Balancer::Haproxy(h) => h.reload(&world.services(wide), true).map(|_| ()),
        }
    }

    pub fn acme_retry(&mut self) -> io::Result<()> {
        match self {
            Balancer::Moirai(m) => m.ctl(&["acme", "retry"]).map(|_| ()),
            Balancer::Haproxy(_) => Ok(()),
        }
    }

    /// `moirai backend ACTION PORT ADDR` for the service labelled `service`.
    pub fn admin(
        &mut self,
        world: &World,
        action: &str,
        service: &str,
        addr: SocketAddr,
    ) -> io::Result<()> {
        let port = world
            .services(false)
            .iter()
            .find(|s| s.label == service)
            .map(|s| s.listen)
            .ok_or_else(|| err(format!("no service {service}")))?;
        match self {
            Balancer::Moirai(m) => m
                .ctl(&["backend", action, &port.to_string(), &addr.to_string()])
                .map(|_| ()),
            Balancer::Haproxy(_) => Ok(()),
        }
    }

    /// Backends up per listen port; with moirai, also the client
    /// connections open.
    pub fn observe(&self) -> io::Result<(HashMap<u16, usize>, Option<u64>)> {
        match self {
            Balancer::Moirai(m) => {
                let s = m.status()?;
                let mut up = HashMap::new();
                let mut open = 0;
                for svc in s["services"].as_array().into_iter().flatten() {
                    let port = svc["listen"].as_u64().unwrap_or(0) as u16;
                    let n = svc["backends"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|b| b["state"] == "up")
                        .count();
                    up.insert(port, n);
                    open += svc["connections"].as_u64().unwrap_or(0);
                }
                Ok((up, Some(open)))
            }
            Balancer::Haproxy(h) => Ok((h.up_counts()?, None)),
        }
    }

    /// Starts HAProxy as Moirai would configure it for this world.
    pub fn haproxy(bin: &Path, world: &World, dir: &Path) -> io::Result<Balancer> {
        let ctx = HaproxyCtx {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            nameserver: world.dns.addr(),
            pem: world.front_pem.clone(),
            ca_file: world.backend_ca.clone(),
            metrics_port: world.ports.metrics,
            syslog: Some(world.syslog.addr),
        };
        let h = Haproxy::start(ctx, &world.services(false))?;
        // Wait for every server's first checks.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(up) = h.up_counts() {
                if world
                    .services(false)
                    .iter()
                    .all(|s| up.get(&s.listen).copied().unwrap_or(0) >= 1)
                {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(Balancer::Haproxy(h))
    }
}
