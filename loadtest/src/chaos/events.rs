//! The chaos schedule: seeded random faults while the load runs, each
//! written to a timestamped event log (the evidence the report classifies
//! failures by), each undone after its while.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::balancer::Balancer;
use super::dns::DnsMode;
use super::rng::Rng;
use super::world::{BackendKind, World, WEB_IPS};

/// What the soak did to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    BackendKill,
    BackendStop,
    BackendStart,
    HealthDown,
    HealthUp,
    AdminDisable,
    AdminDrain,
    AdminEnable,
    DnsFlap,
    DnsRestore,
    DnsAnswer,
    MetadataValid,
    MetadataInvalid,
    MetadataTypo,
    MetadataVanished,
    MetadataRestore,
    Refresh,
    Upgrade,
    AcmeRetry,
    PebbleDown,
    PebbleUp,
    SyslogDown,
    SyslogUp,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::BackendKill => "backend-kill",
            Kind::BackendStop => "backend-stop",
            Kind::BackendStart => "backend-start",
            Kind::HealthDown => "health-down",
            Kind::HealthUp => "health-up",
            Kind::AdminDisable => "admin-disable",
            Kind::AdminDrain => "admin-drain",
            Kind::AdminEnable => "admin-enable",
            Kind::DnsFlap => "dns-flap",
            Kind::DnsRestore => "dns-restore",
            Kind::DnsAnswer => "dns-answer",
            Kind::MetadataValid => "metadata-valid",
            Kind::MetadataInvalid => "metadata-invalid",
            Kind::MetadataTypo => "metadata-typo",
            Kind::MetadataVanished => "metadata-vanished",
            Kind::MetadataRestore => "metadata-restore",
            Kind::Refresh => "refresh",
            Kind::Upgrade => "upgrade",
            Kind::AcmeRetry => "acme-retry",
            Kind::PebbleDown => "pebble-down",
            Kind::PebbleUp => "pebble-up",
            Kind::SyslogDown => "syslog-down",
            Kind::SyslogUp => "syslog-up",
        }
    }

    /// Whether a backend's process is gone from this moment on.
    pub fn ends_backend(self) -> bool {
        matches!(self, Kind::BackendKill | Kind::BackendStop)
    }
}

/// One entry of the event log.
#[derive(Debug, Clone)]
pub struct Event {
    /// Seconds since the soak started.
    pub t: f64,
    pub kind: Kind,
    /// The backend, or what else it was done to.
    pub target: String,
    /// The backend's service label, when it is about one backend.
    pub service: Option<&'static str>,
    pub detail: String,
    /// When the action was over (a killed process reaped, a stopped one
    /// exited): a backend dies somewhere in `t..=t_end`.
    pub t_end: f64,
}

/// Something to undo at `due`.
struct Undo {
    due: Instant,
    what: UndoKind,
}

enum UndoKind {
    Start(String),
    HealthUp(String),
    Enable(String),
    Dns,
    Metadata,
    Pebble,
    Syslog,
}

/// The scheduler's state.
pub struct Chaos {
    rng: Rng,
    t0: Instant,
    pub log: Vec<Event>,
    undo: Vec<Undo>,
    /// Whether `stream` has its third backend (the metadata's choice).
    pub wide: bool,
    /// Whether the metadata file is in a broken state now.
    metadata_broken: bool,
    dns_broken: bool,
    pebble_down: bool,
    syslog_down: bool,
    next_upgrade: Instant,
    next_retry: Instant,
    next_fault: Instant,
    /// When the action being logged began, in seconds since the start.
    began: f64,
}

impl Chaos {
    pub fn new(rng: Rng, t0: Instant, duration: Duration) -> Chaos {
        let mut rng = rng;
        // The first upgrade lands inside even a 60-second run.
        let first =
            Duration::from_secs_f64(duration.as_secs_f64().min(120.0) * (0.3 + 0.3 * rng.unit()));
        Chaos {
            rng,
            t0,
            log: Vec::new(),
            undo: Vec::new(),
            wide: false,
            metadata_broken: false,
            dns_broken: false,
            pebble_down: false,
            syslog_down: false,
            next_upgrade: t0 + first,
            next_retry: t0 + Duration::from_secs(15),
            next_fault: t0 + Duration::from_secs(2),
            began: 0.0,
        }
    }

    /// Logs an event at the time its action began (a kill is logged after
    /// the process is reaped, but a request it failed may end before).
    fn note(&mut self, kind: Kind, target: &str, service: Option<&'static str>, detail: String) {
        self.log.push(Event {
            t: self.began,
            kind,
            target: target.to_owned(),
            service,
            detail,
            t_end: self.t0.elapsed().as_secs_f64(),
        });
    }

    fn undo_in(&mut self, secs: (u64, u64), what: UndoKind) {
        let d = Duration::from_millis(self.rng.range(secs.0 * 1000, secs.1 * 1000));
        self.undo.push(Undo {
            due: Instant::now() + d,
            what,
        });
    }

    /// One turn of the schedule: what is due is undone, then maybe one
    /// new fault.
    pub fn step(&mut self, world: &mut World, lb: &mut Balancer) {
        self.due(world, lb, false);
        let now = Instant::now();
        self.began = self.t0.elapsed().as_secs_f64();
        if now >= self.next_upgrade {
            let r = lb.upgrade(world, self.wide);
            self.note(Kind::Upgrade, lb.name(), None, result(r));
            self.next_upgrade = now + Duration::from_secs(self.rng.range(60, 150));
        } else if now >= self.next_retry && lb.is_moirai() {
            let r = lb.acme_retry();
            self.note(Kind::AcmeRetry, "acme", Some("app"), result(r));
            self.next_retry = now + Duration::from_secs(self.rng.range(30, 90));
        } else if now >= self.next_fault {
            self.one(world, lb);
            self.next_fault = now + Duration::from_millis(self.rng.range(500, 3000));
        }
    }

    /// Undoes every fault still in force.
    pub fn finish(&mut self, world: &mut World, lb: &mut Balancer) {
        self.due(world, lb, true);
    }

    /// Undoes what is due (everything with `all`).
    fn due(&mut self, world: &mut World, lb: &mut Balancer, all: bool) {
        let now = Instant::now();
        let (ready, later): (Vec<Undo>, Vec<Undo>) =
            self.undo.drain(..).partition(|u| all || u.due <= now);
        self.undo = later;
        for u in ready {
            self.began = self.t0.elapsed().as_secs_f64();
            match u.what {
                UndoKind::Start(name) => {
                    if let Some(b) = world.backend(&name) {
                        let service = b.service;
                        let r = b.start();
                        self.note(Kind::BackendStart, &name, Some(service), result(r));
                    }
                }
                UndoKind::HealthUp(name) => {
                    if let Some(b) = world.backend(&name) {
                        let _ = std::fs::remove_file(&b.health_file);
                        let service = b.service;
                        self.note(Kind::HealthUp, &name, Some(service), String::new());
                    }
                }
                UndoKind::Enable(name) => {
                    if let Some(b) = world.backend(&name) {
                        let (service, addr) = (b.service, b.addr);
                        let r = lb.admin(world, "enable", service, addr);
                        self.note(Kind::AdminEnable, &name, Some(service), result(r));
                    }
                }
                UndoKind::Dns => {
                    world.dns.set(DnsMode::Forward);
                    self.dns_broken = false;
                    self.note(Kind::DnsRestore, "dns", Some("web"), String::new());
                }
                UndoKind::Metadata => {
                    let r = lb.apply(world, self.wide, &BTreeMap::new(), false);
                    self.metadata_broken = false;
                    self.note(Kind::MetadataRestore, "metadata", None, result(r));
                }
                UndoKind::Pebble => {
                    if let Some(p) = world.pebble.as_ref() {
                        let _ = p.proc.signal("CONT");
                    }
                    self.pebble_down = false;
                    self.note(Kind::PebbleUp, "pebble", None, String::new());
                }
                UndoKind::Syslog => {
                    world.syslog.set_down(false);
                    self.syslog_down = false;
                    self.note(Kind::SyslogUp, "syslog", None, String::new());
                }
            }
        }
    }

    /// One random fault.
    fn one(&mut self, world: &mut World, lb: &mut Balancer) {
        #[derive(Clone, Copy)]
        enum F {
            Kill,
            Stop,
            Health,
            Admin,
            Dns,
            Answer,
            Metadata,
            Refresh,
            Pebble,
            Syslog,
        }
        let moirai = lb.is_moirai();
        let choices = [
            (8, F::Kill),
            (4, F::Stop),
            (5, F::Health),
            (if moirai { 4 } else { 0 }, F::Admin),
            (3, F::Dns),
            (3, F::Answer),
            (6, F::Metadata),
            (3, F::Refresh),
            (
                if moirai && world.pebble.is_some() {
                    1
                } else {
                    0
                },
                F::Pebble,
            ),
            (2, F::Syslog),
        ];
        match *self.rng.pick(&choices) {
            F::Kill | F::Stop => {
                let Some(i) = self.pick_backend(world, |b| b.proc_alive) else {
                    return;
                };
                let kill = matches!(*self.rng.pick(&choices[..2]), F::Kill);
                let b = &mut world.backends[i];
                let (name, service) = (b.name.clone(), b.service);
                if kill {
                    b.proc.kill();
                    self.note(Kind::BackendKill, &name, Some(service), "SIGKILL".into());
                } else {
                    // nginx's clean stop finishes its requests (SIGQUIT);
                    // ours has none to finish (SIGTERM).
                    let sig = if matches!(b.kind, BackendKind::Nginx | BackendKind::NginxTls) {
                        "QUIT"
                    } else {
                        "TERM"
                    };
                    let _ = b.proc.signal(sig);
                    // Let it finish before the restart binds its port.
                    b.proc.stop(Duration::from_secs(5));
                    self.note(Kind::BackendStop, &name, Some(service), format!("SIG{sig}"));
                }
                self.undo_in((1, 8), UndoKind::Start(name));
            }
            F::Health => {
                let Some(i) = self.pick_backend(world, |b| b.proc_alive && !b.health_down) else {
                    return;
                };
                let b = &world.backends[i];
                let (name, service) = (b.name.clone(), b.service);
                if std::fs::write(&b.health_file, "down").is_ok() {
                    self.note(
                        Kind::HealthDown,
                        &name,
                        Some(service),
                        "checks answer 503".into(),
                    );
                    self.undo_in((3, 12), UndoKind::HealthUp(name));
                }
            }
            F::Admin => {
                let Some(i) = self.pick_backend(world, |b| !b.admin) else {
                    return;
                };
                let b = &world.backends[i];
                let (name, service, addr) = (b.name.clone(), b.service, b.addr);
                // Only backends currently in the metadata can be named.
                if service == "stream" && name == "e10" && !self.wide {
                    return;
                }
                let drain = self.rng.range(0, 2) == 0;
                let (action, kind) = if drain {
                    ("drain", Kind::AdminDrain)
                } else {
                    ("disable", Kind::AdminDisable)
                };
                let r = lb.admin(world, action, service, addr);
                let ok = r.is_ok();
                self.note(kind, &name, Some(service), result(r));
                if ok {
                    self.undo_in((3, 10), UndoKind::Enable(name));
                }
            }
            F::Dns => {
                if self.dns_broken {
                    return;
                }
                let mode = *self.rng.pick(&[
                    (2, DnsMode::Drop),
                    (2, DnsMode::Garbage),
                    (1, DnsMode::NxDomain),
                ]);
                world.dns.set(mode);
                self.dns_broken = true;
                self.note(Kind::DnsFlap, "dns", Some("web"), format!("{mode:?}"));
                self.undo_in((3, 15), UndoKind::Dns);
            }
            F::Answer => {
                // Two or three of the pool's addresses.
                let drop = self.rng.range(0, 4) as usize;
                let ips: Vec<&str> = WEB_IPS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != drop)
                    .map(|(_, ip)| *ip)
                    .collect();
                let r = world.set_web_records(&ips);
                self.note(
                    Kind::DnsAnswer,
                    "dns",
                    Some("web"),
                    format!("{} {}", ips.join(" "), result(r)),
                );
            }
            F::Metadata => {
                if self.metadata_broken {
                    return;
                }
                match self.rng.range(0, 6) {
                    0..=2 => {
                        self.wide = !self.wide;
                        let r = lb.apply(world, self.wide, &BTreeMap::new(), true);
                        self.note(
                            Kind::MetadataValid,
                            "metadata",
                            Some("stream"),
                            format!(
                                "stream {} {}",
                                if self.wide { "wide" } else { "narrow" },
                                result(r)
                            ),
                        );
                    }
                    3 => {
                        let extra = BTreeMap::from([(
                            "cloud.tritoncompute:portmap".to_owned(),
                            format!(
                                "{},bogus://1:nowhere,http://99999:x",
                                world.portmap(self.wide)
                            ),
                        )]);
                        let r = lb.apply(world, self.wide, &extra, true);
                        self.metadata_broken = true;
                        self.note(Kind::MetadataInvalid, "metadata", None, result(r));
                        self.undo_in((2, 8), UndoKind::Metadata);
                    }
                    4 => {
                        let extra = BTreeMap::from([(
                            "cloud.tritoncompute:loadbalancer".to_owned(),
                            "ture".to_owned(),
                        )]);
                        let r = lb.apply(world, self.wide, &extra, false);
                        self.metadata_broken = true;
                        self.note(Kind::MetadataTypo, "metadata", None, result(r));
                        self.undo_in((2, 8), UndoKind::Metadata);
                    }
                    _ => {
                        let r = lb.vanish();
                        self.metadata_broken = true;
                        self.note(Kind::MetadataVanished, "metadata", None, result(r));
                        self.undo_in((2, 8), UndoKind::Metadata);
                    }
                }
            }
            F::Refresh => {
                let r = lb.refresh(world, self.wide);
                self.note(Kind::Refresh, lb.name(), None, result(r));
            }
            F::Pebble => {
                if self.pebble_down {
                    return;
                }
                if let Some(p) = world.pebble.as_ref() {
                    let _ = p.proc.signal("STOP");
                    self.pebble_down = true;
                    self.note(Kind::PebbleDown, "pebble", None, "SIGSTOP".into());
                    self.undo_in((5, 25), UndoKind::Pebble);
                }
            }
            F::Syslog => {
                if self.syslog_down {
                    return;
                }
                world.syslog.set_down(true);
                self.syslog_down = true;
                self.note(Kind::SyslogDown, "syslog", None, String::new());
                self.undo_in((5, 20), UndoKind::Syslog);
            }
        }
    }

    /// A random backend matching `f` (over a view of its state).
    fn pick_backend(&mut self, world: &mut World, f: impl Fn(&View) -> bool) -> Option<usize> {
        let pending: Vec<String> = self
            .undo
            .iter()
            .filter_map(|u| match &u.what {
                UndoKind::Enable(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let views: Vec<usize> = (0..world.backends.len())
            .filter(|&i| {
                let b = &mut world.backends[i];
                let v = View {
                    proc_alive: b.proc.alive(),
                    health_down: b.health_file.exists(),
                    admin: pending.contains(&b.name),
                };
                f(&v)
            })
            .collect();
        if views.is_empty() {
            return None;
        }
        Some(views[self.rng.range(0, views.len() as u64) as usize])
    }
}

/// What a backend's pick may look at.
struct View {
    proc_alive: bool,
    health_down: bool,
    admin: bool,
}

fn result<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("error: {e}"),
    }
}
