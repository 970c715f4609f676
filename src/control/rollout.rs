//! The rollout of snapshots to the workers: what was sent, what each
//! worker applied, and what the workers report back (listeners that cannot
//! open, latencies, their exit). Also the outage lines a new generation
//! calls for, and the workers' end (a drain or an upgrade's hand-over).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use super::publish;
use super::reload::Reloads;
use crate::engine::worker::{FromWorker, ToWorker, WorkerHandle};
use crate::metrics::export::Exporter;
use crate::snapshot::Snapshot;
use crate::sys::net::{self, ListenKey, WorkerListener};

/// How often a listener that still cannot be opened is logged again.
const NOT_LISTENING_REPEAT: Duration = Duration::from_secs(300);

/// A generation sent to the workers and not yet applied by all of them.
struct Pending {
    seen: Instant,
    changes: Vec<String>,
}

/// The workers and what they run.
pub struct Rollout {
    workers: Vec<WorkerHandle>,
    reports: Receiver<FromWorker>,
    /// The newest generation sent.
    snapshot: Arc<Snapshot>,
    pending: HashMap<u64, Pending>,
    /// The newest generation each worker has applied.
    worker_gen: Vec<u64>,
    /// When the running generation was applied everywhere.
    applied_at: Option<SystemTime>,
    /// A line held until the generation it speaks of is applied
    /// everywhere ("every backend checked"), so whoever reads it can rely
    /// on the workers using what it says.
    settled_note: Option<(u64, String)>,
    /// After an upgrade: the workers get no configuration (and accept
    /// nothing: the inherited queues wait) until every backend has been
    /// checked, or this deadline, so the first clients meet no 503.
    hold: Option<Instant>,
    /// Sessions cut, reported while [`Rollout::wait_handed`] waited.
    early_cut: usize,
    /// Listening sockets the workers handed over for an upgrade.
    handed: Vec<(Option<IpAddr>, u16, WorkerListener)>,
    /// Listeners that cannot be opened, by (port, address): the reason
    /// and when it was last logged.
    not_listening: HashMap<(u16, Option<IpAddr>), (String, Instant)>,
    /// Services that have had backends; a later loss is an outage (WARN),
    /// not a start (INFO).
    served: HashSet<u16>,
    /// Services in an outage, for the line that says it ended.
    outage: HashSet<u16>,
    /// Stopping: listeners closed, connections finishing.
    stopping: bool,
}

impl Rollout {
    /// The rollout to `workers`, which report on `reports`. `hold`: the
    /// workers inherited listeners and get nothing before it (or the first
    /// complete round of checks).
    pub fn new(
        workers: Vec<WorkerHandle>,
        reports: Receiver<FromWorker>,
        hold: Option<Instant>,
    ) -> Rollout {
        Rollout {
            worker_gen: vec![0; workers.len()],
            workers,
            reports,
            snapshot: Arc::new(Snapshot::default()),
            pending: HashMap::new(),
            applied_at: None,
            settled_note: None,
            hold,
            early_cut: 0,
            handed: Vec::new(),
            not_listening: HashMap::new(),
            served: HashSet::new(),
            outage: HashSet::new(),
            stopping: false,
        }
    }

    /// The newest snapshot sent.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Its generation.
    pub fn generation(&self) -> u64 {
        self.snapshot.generation
    }

    /// When the running generation was applied by every worker.
    pub fn applied_at(&self) -> Option<SystemTime> {
        self.applied_at
    }

    /// Whether the workers are stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Whether the service on `port` listens on every address it should.
    pub fn is_listening(&self, port: u16) -> bool {
        !self.not_listening.keys().any(|(p, _)| *p == port)
    }

    /// Listeners of `port` that cannot be opened, with why.
    pub fn not_listening(&self, port: u16) -> impl Iterator<Item = (Option<IpAddr>, &str)> {
        self.not_listening
            .iter()
            .filter(move |((p, _), _)| *p == port)
            .map(|((_, a), (why, _))| (*a, why.as_str()))
    }

    /// Whether an upgrade's hold still keeps the configuration from the
    /// workers.
    pub fn holding(&self) -> bool {
        self.hold.is_some()
    }

    /// The first complete round of checks after an upgrade: the hold
    /// ends. True if there was one.
    pub fn release_hold(&mut self) -> bool {
        self.hold.take().is_some()
    }

    /// Holds `note` until the running generation is applied everywhere,
    /// then logs it.
    pub fn note_when_applied(&mut self, note: String) {
        self.settled_note = Some((self.snapshot.generation, note));
        self.log_settled();
    }

    /// Sends `snap` to every worker (unless an upgrade's hold is still on)
    /// and logs what it changes for the services' health.
    pub fn publish(&mut self, snap: Arc<Snapshot>, seen: Instant, exporter: &mut Exporter) {
        if let Some(until) = self.hold {
            if Instant::now() < until {
                // Checks first; the inherited accept queues wait.
                return;
            }
            self.hold = None;
        }
        let changes = publish::describe_changes(&self.snapshot, &snap);
        // A service that is gone has nothing left to listen on.
        self.not_listening
            .retain(|(port, _), _| snap.service(*port).is_some());
        self.log_outages(&snap);
        let mut sent = 0;
        for w in &self.workers {
            if w.send(ToWorker::Snapshot(Arc::clone(&snap))) {
                sent += 1;
            }
        }
        if sent == 0 {
            log::error!(
                "no worker is running to take generation {}",
                snap.generation
            );
        }
        self.pending
            .insert(snap.generation, Pending { seen, changes });
        let ports: Vec<u16> = snap.services.iter().map(|s| s.port()).collect();
        exporter.retain(&ports);
        self.snapshot = snap;
    }

    fn log_outages(&mut self, snap: &Snapshot) {
        for s in &snap.services {
            let before = self.snapshot.service(s.port()).map(|o| &o.no_backends);
            match &s.no_backends {
                Some(why) if before != Some(&s.no_backends) => {
                    // Before a service has ever had a backend (the first
                    // checks of a start or a new service) this is the
                    // normal way up, not an outage.
                    if self.served.contains(&s.port()) {
                        log::warn!("service {}: no backends: {why}", s.spec);
                        self.outage.insert(s.port());
                    } else {
                        log::info!("service {}: no backends yet: {why}", s.spec);
                    }
                }
                Some(_) => {}
                None => {
                    self.served.insert(s.port());
                    if self.outage.remove(&s.port()) {
                        log::info!(
                            "service {}: serving again ({} backends)",
                            s.spec,
                            s.backends.len()
                        );
                    }
                }
            }
        }
        self.served.retain(|p| snap.service(*p).is_some());
        self.outage.retain(|p| snap.service(*p).is_some());
    }

    /// Takes the workers' reports: generations applied (answering a
    /// refresh that waited for one), listeners failing or open again,
    /// latencies, sockets handed over, exits.
    pub fn collect(&mut self, reload: &mut Reloads, exporter: &mut Exporter) {
        while let Ok(r) = self.reports.try_recv() {
            match r {
                FromWorker::Applied {
                    worker,
                    generation,
                    at,
                } => self.applied(worker, generation, at, reload),
                FromWorker::ListenFailed {
                    worker: _,
                    port,
                    addr,
                    error,
                } => {
                    // Every worker retries every 2 s: said once, again when
                    // the reason changes, and every few minutes.
                    let now = Instant::now();
                    let entry = self.not_listening.entry((port, addr));
                    let say = match &entry {
                        std::collections::hash_map::Entry::Occupied(o) => {
                            o.get().0 != error || now >= o.get().1 + NOT_LISTENING_REPEAT
                        }
                        std::collections::hash_map::Entry::Vacant(_) => true,
                    };
                    if say {
                        log::error!(
                            "NOT LISTENING: port {port}{}: {error} (retrying every 2 s)",
                            addr.map(|a| format!(" on {a}")).unwrap_or_default()
                        );
                        entry.insert_entry((error, now));
                    }
                }
                FromWorker::Listening { port, addr } => {
                    if self.not_listening.remove(&(port, addr)).is_some() {
                        log::info!(
                            "listening on port {port}{} again",
                            addr.map(|a| format!(" on {a}")).unwrap_or_default()
                        );
                    }
                }
                FromWorker::Exited { worker, cut } => {
                    log::warn!("worker {worker} exited unexpectedly ({cut} sessions open)");
                }
                FromWorker::Latency(batch) => exporter.merge(batch),
                FromWorker::Listeners(l) => self.handed.extend(l),
            }
        }
        self.log_settled();
    }

    fn applied(&mut self, worker: usize, generation: u64, at: Instant, reload: &mut Reloads) {
        // A worker applies only the newest snapshot it finds, so an ack
        // for N also stands for every generation before.
        if let Some(g) = self.worker_gen.get_mut(worker) {
            *g = (*g).max(generation);
        }
        let everywhere = self.everywhere();
        let mut done: Vec<u64> = self
            .pending
            .keys()
            .copied()
            .filter(|g| *g <= everywhere)
            .collect();
        done.sort_unstable();
        for g in done {
            let Some(p) = self.pending.remove(&g) else {
                continue;
            };
            let took = at.saturating_duration_since(p.seen);
            self.applied_at = Some(SystemTime::now());
            let what = if p.changes.is_empty() {
                "no service changes".to_owned()
            } else {
                p.changes.join("; ")
            };
            if reload.waits_for(g) {
                reload.complete(format!("generation {g} applied: {what}"));
            }
            log::info!(
                "generation {g} applied by {} workers in {:.1} ms: {what}",
                self.workers.len(),
                took.as_secs_f64() * 1000.0,
            );
        }
    }

    /// The newest generation every worker has applied.
    fn everywhere(&self) -> u64 {
        self.worker_gen.iter().copied().min().unwrap_or(0)
    }

    fn log_settled(&mut self) {
        let everywhere = self.everywhere();
        if self
            .settled_note
            .as_ref()
            .is_some_and(|(g, _)| *g <= everywhere)
        {
            if let Some((_, note)) = self.settled_note.take() {
                log::info!("{note}");
            }
        }
    }

    /// Tells every worker to stop (`how`: a drain or a hand-over; they end
    /// by themselves by its deadline, plus a moment to close what is left).
    pub fn stop(&mut self, how: ToWorker) {
        self.stopping = true;
        for w in &self.workers {
            w.send(how.clone());
        }
    }

    /// After [`Rollout::stop`] with a hand-over: waits (up to `limit`)
    /// until every worker has given its listening sockets back, which
    /// each does first, before its connections drain.
    pub fn wait_handed(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut from = 0;
        while from < self.workers.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(FromWorker::Listeners(l)) => {
                    self.handed.extend(l);
                    from += 1;
                }
                Ok(FromWorker::Exited { cut, .. }) => self.early_cut += cut,
                // Latency batches and acks mean nothing to a hand-over.
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    /// Whether every worker thread has ended.
    pub fn finished(&self) -> bool {
        self.workers.iter().all(|w| w.join.is_finished())
    }

    /// Waits for the worker threads and takes their last reports: the
    /// sessions the grace period cut, and the listeners handed over.
    pub fn join(&mut self) -> usize {
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join.join();
        }
        let mut cut = std::mem::take(&mut self.early_cut);
        while let Ok(r) = self.reports.try_recv() {
            match r {
                FromWorker::Exited { cut: c, .. } => cut += c,
                FromWorker::Listeners(l) => self.handed.extend(l),
                _ => {}
            }
        }
        cut
    }

    /// The listening sockets handed over, as a child finds them
    /// ([`net::inherited_env_value`]), and their descriptors (still
    /// closed-on-exec here: [`crate::sys::process::pass_fds`]).
    pub fn handover_fds(&self) -> (String, Vec<std::os::fd::RawFd>) {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for (addr, port, l) in &self.handed {
            let fd = l.raw_fd();
            if seen.insert(fd) {
                items.push((fd, *addr, *port));
            }
        }
        let fds = items.iter().map(|(fd, _, _)| *fd).collect();
        (net::inherited_env_value(items), fds)
    }

    /// The listening sockets handed over, as the next program finds them
    /// ([`net::inherited_env_value`]), made inheritable; and how many.
    pub fn handover_env(&self) -> std::io::Result<(String, usize)> {
        // Shared mode: every worker names the same socket; once.
        let mut seen = HashSet::new();
        for (_, _, l) in &self.handed {
            if seen.insert(l.raw_fd()) {
                l.inherit()?;
            }
        }
        let (env, fds) = self.handover_fds();
        Ok((env, fds.len()))
    }

    /// The listening sockets handed over, taken back after an upgrade
    /// could not exec: each once, closed on exec again (the descriptors
    /// made inheritable for the exec are closed).
    pub fn take_handed(&mut self) -> (Vec<(ListenKey, std::net::TcpListener)>, usize) {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut lost = 0;
        for (addr, port, l) in std::mem::take(&mut self.handed) {
            if !seen.insert(l.raw_fd()) {
                continue;
            }
            match l.duplicate() {
                Ok(d) => out.push(((addr, port), d)),
                Err(e) => {
                    lost += 1;
                    log::error!("upgrade: cannot take the listener of port {port} back: {e}");
                }
            }
        }
        (out, lost)
    }

    /// Duplicates of every worker's listening sockets, each socket once,
    /// for an upgrade's pre-flight; the workers answer within `wait` or
    /// the pre-flight is refused.
    pub fn lend(&self, wait: Duration) -> Result<Vec<(ListenKey, std::net::TcpListener)>, String> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let asked = self
            .workers
            .iter()
            .filter(|w| w.send(ToWorker::Lend(tx.clone())))
            .count();
        drop(tx);
        let deadline = Instant::now() + wait;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for _ in 0..asked {
            let lent = rx
                .recv_deadline(deadline)
                .map_err(|_| "a worker did not lend its listeners in time".to_owned())?
                .map_err(|e| format!("cannot duplicate a listener: {e}"))?;
            for (addr, port, id, dup) in lent {
                if seen.insert(id) {
                    out.push(((addr, port), dup));
                }
            }
        }
        Ok(out)
    }

    /// New workers after an upgrade that could not exec: they get the
    /// next snapshot published (no hold: the health checks carried on).
    pub fn restart(&mut self, workers: Vec<WorkerHandle>) {
        self.worker_gen = vec![0; workers.len()];
        self.workers = workers;
        self.pending.clear();
        self.hold = None;
        self.stopping = false;
    }

    /// Whether a configuration was published and every worker applied it
    /// (so each has opened its listeners).
    pub fn settled(&self) -> bool {
        self.snapshot.generation > 0 && self.everywhere() >= self.snapshot.generation
    }
}
