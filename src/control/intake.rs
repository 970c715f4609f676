//! From metadata to a configuration: what each read means. A failed read,
//! a `loadbalancer` that is no longer `true`, or metadata that parses to the
//! configuration already running change nothing (and say why, once); a
//! different configuration is handed to the loop to apply. Configuration
//! errors and warnings are logged when they change.

use crate::config::{keys, Config, Diagnostics, Metadata};

/// What a metadata read means for the running configuration.
#[derive(Debug)]
pub enum Intake {
    /// The read failed; the running configuration stays.
    ReadFailed(String),
    /// `loadbalancer` is not `true` while running: the running
    /// configuration stays, for this reason.
    KeptRunning(String),
    /// `loadbalancer` is not `true` at start: nothing to run (exit 96).
    Fatal(String),
    /// The same configuration as the one running.
    Unchanged,
    /// A configuration to apply.
    Apply(Config),
}

/// The metadata and the configuration it gave.
#[derive(Debug, Default)]
pub struct Configured {
    /// Where the metadata comes from, for the log.
    source: String,
    /// The last metadata read.
    metadata: Option<Metadata>,
    /// The configuration applied.
    config: Option<Config>,
    /// Errors and warnings of the last read.
    diagnostics: Diagnostics,
    /// Why the last read failed, while it does.
    source_error: Option<String>,
    /// Why the running configuration is kept despite `loadbalancer`.
    kept_running: Option<String>,
    /// The metadata of the configuration applied last: what an upgrade
    /// hands to the next program.
    good: Option<Metadata>,
    /// After an upgrade: the previous program's [`Configured::good`], used
    /// if this program's first read fails or says `loadbalancer` is not
    /// `true` (the previous program was serving it a moment ago and would
    /// have kept serving; so does this one). Dropped once any
    /// configuration is applied.
    fallback: Option<Metadata>,
}

impl Configured {
    /// Nothing read yet from `source` (its description).
    pub fn new(source: &str) -> Configured {
        Configured {
            source: source.to_owned(),
            ..Configured::default()
        }
    }

    /// The configuration applied, if any yet.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// The last metadata read.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Errors and warnings of the last read.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// Why the metadata cannot be read, while it cannot.
    pub fn source_error(&self) -> Option<&str> {
        self.source_error.as_deref()
    }

    /// Why the running configuration is kept despite `loadbalancer`.
    pub fn kept_running(&self) -> Option<&str> {
        self.kept_running.as_deref()
    }

    /// The loop applied `config`.
    pub fn applied(&mut self, config: Config) {
        self.config = Some(config);
        self.fallback = None;
    }

    /// The metadata of the configuration applied last.
    pub fn good(&self) -> Option<&Metadata> {
        self.good.as_ref()
    }

    /// After an upgrade: the previous program's configuration, in case
    /// this program's first read cannot give one.
    pub fn with_fallback(&mut self, md: Metadata) {
        self.fallback = Some(md);
    }

    /// At start, with nothing running: the previous program's metadata
    /// instead of a read that gives no configuration, if it gives one.
    fn fall_back(&mut self, why: &str) -> Option<Intake> {
        if self.config.is_some() {
            return None;
        }
        let md = self.fallback.take()?;
        let (config, _) = Config::from_metadata(&md);
        if !config.enabled() {
            return None;
        }
        log::error!(
            "{why}: serving the configuration the previous program served (upgrade) until the metadata is fixed"
        );
        self.kept_running = Some(why.to_owned());
        self.good = Some(md);
        Some(Intake::Apply(config))
    }

    /// What a read means. `rebuild`: apply even an unchanged configuration
    /// (the hosts file changed what names mean). `generation` is the one
    /// running, for the log.
    pub fn read(
        &mut self,
        read: Result<Metadata, String>,
        rebuild: bool,
        generation: u64,
    ) -> Intake {
        let md = match read {
            Ok(md) => md,
            Err(msg) => {
                if let Some(i) = self.fall_back(&format!("cannot read metadata ({msg})")) {
                    self.source_error = Some(msg);
                    return i;
                }
                if self.source_error.as_deref() != Some(&msg) {
                    log::error!(
                        "cannot read metadata ({msg}); keeping the running configuration (generation {generation})"
                    );
                }
                self.source_error = Some(msg.clone());
                return Intake::ReadFailed(msg);
            }
        };
        if self.source_error.take().is_some() {
            log::info!("metadata readable again from {}", self.source);
        }
        let (config, diagnostics) = Config::from_metadata(&md);
        self.diagnose(diagnostics);
        let loadbalancer = md.get(keys::LOADBALANCER).cloned().unwrap_or_default();
        self.metadata = Some(md);
        if !config.enabled() {
            let why = format!(
                "cloud.tritoncompute:loadbalancer is {} (not \"true\")",
                if loadbalancer.trim().is_empty() {
                    "empty or missing".to_owned()
                } else {
                    format!("{loadbalancer:?}")
                }
            );
            if let Some(i) = self.fall_back(&why) {
                return i;
            }
            if self.config.is_none() {
                // At start: nothing to keep serving; say so to SMF.
                return Intake::Fatal(format!(
                    "{why}: no load balancer to run; exiting (SMF_EXIT_ERR_CONFIG)"
                ));
            }
            // While running: a typo or a transient empty read must not
            // take every listener down (Moirai's reconfigure skips too).
            if self.kept_running.as_ref() != Some(&why) {
                log::error!(
                    "{why}: keeping the running configuration (generation {generation}); to stop load balancing, disable the service"
                );
                self.kept_running = Some(why.clone());
            }
            return Intake::KeptRunning(why);
        }
        if self.kept_running.take().is_some() {
            log::info!("cloud.tritoncompute:loadbalancer is \"true\" again");
        }
        let md = self.metadata.clone();
        if !rebuild && self.config.as_ref() == Some(&config) {
            return Intake::Unchanged;
        }
        self.good = md;
        Intake::Apply(config)
    }

    /// Logs errors and warnings when they differ from the last read's.
    fn diagnose(&mut self, d: Diagnostics) {
        if d == self.diagnostics {
            return;
        }
        for e in &d.errors {
            log::error!("config: {e}");
        }
        for w in &d.warnings {
            log::warn!("config: {w}");
        }
        if d.errors.is_empty() && !self.diagnostics.errors.is_empty() {
            log::info!("config: every key is valid again");
        }
        self.diagnostics = d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metadata_of as md;

    #[test]
    fn each_read_means_one_thing() {
        let mut c = Configured::new("a test");
        let off = md(&[("cloud.tritoncompute:loadbalancer", "ture")]);
        let on = md(&[
            ("cloud.tritoncompute:loadbalancer", "true"),
            ("cloud.tritoncompute:portmap", "http://80:10.0.0.5:8080"),
        ]);
        assert!(
            matches!(c.read(Ok(off.clone()), false, 0), Intake::Fatal(w) if w.contains("\"ture\""))
        );
        assert!(matches!(
            c.read(Err("no socket".into()), false, 0),
            Intake::ReadFailed(_)
        ));
        assert_eq!(c.source_error(), Some("no socket"));
        let Intake::Apply(config) = c.read(Ok(on.clone()), false, 0) else {
            panic!("a first configuration applies");
        };
        assert_eq!(c.source_error(), None);
        c.applied(config);
        assert!(matches!(
            c.read(Ok(on.clone()), false, 1),
            Intake::Unchanged
        ));
        assert!(matches!(c.read(Ok(on.clone()), true, 1), Intake::Apply(_)));
        assert!(matches!(c.read(Ok(off), false, 1), Intake::KeptRunning(_)));
        assert!(c.kept_running().is_some(), "said in status");
        assert!(c.config().is_some(), "still running");
        assert!(matches!(c.read(Ok(on), false, 1), Intake::Unchanged));
        assert!(c.kept_running().is_none());
    }

    /// Found by the chaos soak: an upgrade while `loadbalancer` read
    /// "ture" made the upgraded program exit 96, and the balancer was gone.
    #[test]
    fn an_upgraded_program_serves_what_the_previous_one_served() {
        let off = md(&[("cloud.tritoncompute:loadbalancer", "ture")]);
        let on = md(&[
            ("cloud.tritoncompute:loadbalancer", "true"),
            ("cloud.tritoncompute:portmap", "http://80:10.0.0.5:8080"),
        ]);
        let mut c = Configured::new("a test");
        c.with_fallback(on.clone());
        let Intake::Apply(config) = c.read(Ok(off.clone()), false, 0) else {
            panic!("the previous program's configuration applies");
        };
        assert_eq!(c.good(), Some(&on));
        assert!(c.kept_running().is_some(), "said in status");
        c.applied(config);
        assert!(matches!(
            c.read(Ok(off.clone()), false, 1),
            Intake::KeptRunning(_)
        ));
        // Unreadable at start: the same.
        let mut d = Configured::new("a test");
        d.with_fallback(on.clone());
        assert!(matches!(
            d.read(Err("gone".into()), false, 0),
            Intake::Apply(_)
        ));
        // Without one, or with one that is off itself: exit, as before.
        let mut e = Configured::new("a test");
        e.with_fallback(off.clone());
        assert!(matches!(
            e.read(Ok(off.clone()), false, 0),
            Intake::Fatal(_)
        ));
        // Once a configuration ran, the fallback is gone.
        let mut f = Configured::new("a test");
        f.with_fallback(on.clone());
        let Intake::Apply(config) = f.read(Ok(on.clone()), false, 0) else {
            panic!("its own configuration applies");
        };
        f.applied(config);
        assert!(f.fallback.is_none());
        assert_eq!(f.good(), Some(&on));
    }
}
