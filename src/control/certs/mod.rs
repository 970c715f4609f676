//! Certificates: the TLS material every TLS service shares (the store
//! served by SNI, the server and backend configurations), the ACME
//! manager that replaces the self-signed certificate ([`acme`], its own
//! thread, following the I/O-free [`plan`] and reporting failures as
//! [`acme_error`] words), the operator's own certificates that win over both for their
//! names ([`provided`], watched here), and what the status document and
//! the metrics say about them all, expiry warnings included.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub mod acme;
pub mod acme_error;
pub mod plan;
pub mod provided;

use super::publish::TlsMaterial;
use crate::config::Config;
use crate::metadata::reader::Reader;
use crate::sys::poll::Waker;
use crate::tls;

/// A certificate served, as `moirai status` shows it.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The names it was made or ordered for.
    pub names: Vec<String>,
    /// Its subject, as text.
    pub subject: String,
    /// Its issuer, as text.
    pub issuer: String,
    /// When it expires, if its dates could be read.
    pub not_after: Option<SystemTime>,
    /// "provided", "acme" or "self-signed".
    pub source: &'static str,
    /// The file a provided certificate comes from.
    pub file: Option<PathBuf>,
}

impl CertInfo {
    fn of(names: Vec<String>, cert_pem: &[u8], source: &'static str) -> CertInfo {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem)
            .next()
            .and_then(Result::ok);
        CertInfo::of_der(names, der.as_deref().unwrap_or_default(), source)
    }

    fn of_der(names: Vec<String>, der: &[u8], source: &'static str) -> CertInfo {
        let (subject, issuer) = tls::validity::subject_and_issuer(der).unwrap_or_default();
        CertInfo {
            names,
            subject,
            issuer,
            not_after: tls::validity::validity(der).map(|(_, na)| na),
            source,
            file: None,
        }
    }

    /// A warning when it expires within
    /// [`tls::provided::EXPIRY_WARNING`] of `now`, or has.
    pub fn expiry_warning(&self, now: SystemTime) -> Option<String> {
        let t = self.not_after?;
        let date = humantime::format_rfc3339_seconds(t);
        match t.duration_since(now) {
            Err(_) => Some(format!("expired on {date}")),
            Ok(left) if left < tls::provided::EXPIRY_WARNING => Some(format!(
                "expires on {date}, in {} days",
                left.as_secs() / 86_400
            )),
            Ok(_) => None,
        }
    }
}

/// How often provided certificates and expiry are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The certificates and how they are obtained.
pub struct Certificates {
    /// Made when a TLS service first appears.
    material: Option<TlsMaterial>,
    state_dir: PathBuf,
    ca_file: PathBuf,
    /// `https` backend names their certificates did not carry, recorded
    /// by handshakes; `logged_mismatches` of them have been logged.
    name_mismatches: Arc<tls::chain::NameMismatches>,
    logged_mismatches: Vec<(String, Vec<String>)>,
    /// The ACME manager, once a configuration names a certificate.
    acme: Option<acme::Acme>,
    /// Whether ACME orders (false in an upgrade's stand-in).
    orders: bool,
    acme_opts: acme::AcmeOptions,
    /// What was last asked of the ACME manager.
    wanted: Option<acme::Want>,
    /// Why no challenge can work, when none can (logged on change).
    plan_error: Option<String>,
    /// Pending HTTP-01 answers, in every `http` service's snapshot.
    challenges: Arc<HashMap<String, String>>,
    /// Expiry of the certificate served per name: provided, then ACME's
    /// for the names no provided certificate covers.
    expiry: Vec<(String, SystemTime)>,
    /// Expiry of the ACME certificate per name.
    acme_expiry: Vec<(String, SystemTime)>,
    /// The certificates served (self-signed, ACME).
    info: Vec<CertInfo>,
    /// The operator's certificates.
    provided: provided::Watch,
    /// When to look at them (and at expiry) next.
    next_watch: Option<Instant>,
    /// Expiry warnings logged: (source, names, not_after), once each.
    warned: HashSet<(&'static str, Vec<String>, SystemTime)>,
    /// What ACME is doing or last did, in words.
    state: Option<String>,
    waker: Arc<Waker>,
}

impl Certificates {
    /// Certificates kept in `state_dir`; https backends verified against
    /// `ca_file`; ACME as `acme_opts` say, reporting through `waker`.
    pub fn new(
        state_dir: PathBuf,
        ca_file: PathBuf,
        acme_opts: acme::AcmeOptions,
        waker: Arc<Waker>,
    ) -> Certificates {
        Certificates {
            material: None,
            provided: provided::Watch::new(&state_dir),
            state_dir,
            ca_file,
            name_mismatches: Arc::default(),
            logged_mismatches: Vec::new(),
            acme: None,
            orders: true,
            acme_opts,
            wanted: None,
            plan_error: None,
            challenges: Arc::default(),
            expiry: Vec::new(),
            acme_expiry: Vec::new(),
            info: Vec::new(),
            next_watch: None,
            warned: HashSet::new(),
            state: None,
            waker,
        }
    }

    /// The TLS material, once a TLS service made it.
    pub fn material(&self) -> Option<&TlsMaterial> {
        self.material.as_ref()
    }

    /// Pending HTTP-01 answers.
    pub fn challenges(&self) -> &Arc<HashMap<String, String>> {
        &self.challenges
    }

    /// The certificates served: provided, then ACME's and self-signed.
    pub fn info(&self) -> Vec<CertInfo> {
        self.provided
            .serving()
            .map(|(pem, p)| CertInfo {
                file: Some(pem.to_owned()),
                ..CertInfo::of_der(p.names.clone(), p.leaf(), "provided")
            })
            .chain(self.info.iter().cloned())
            .collect()
    }

    /// Why provided certificate files (or their directory) are not served,
    /// each naming the file.
    pub fn provided_errors(&self) -> Vec<String> {
        self.provided.errors()
    }

    /// Looks at the provided certificates (swapping those that changed
    /// into the store) and at expiry, about once a second; a no-op before
    /// the first TLS service.
    pub fn tick(&mut self, now: Instant) {
        if self.material.is_none() || self.next_watch.is_some_and(|t| now < t) {
            return;
        }
        self.next_watch = Some(now + WATCH_EVERY);
        self.watch_provided(false);
        self.warn_expiring(SystemTime::now());
    }

    fn watch_provided(&mut self, first: bool) {
        if !self.provided.scan(first) {
            return;
        }
        if let Some(m) = &self.material {
            m.store.set_provided(self.provided.by_name());
        }
        self.merge_expiry();
    }

    /// Provided names' expiry, then ACME's for the names no provided
    /// certificate covers (as the store serves them).
    fn merge_expiry(&mut self) {
        let mut expiry: Vec<(String, SystemTime)> = Vec::new();
        for (_, p) in self.provided.serving() {
            let Some((_, na)) = tls::validity::validity(p.leaf()) else {
                continue;
            };
            for n in &p.names {
                if !expiry.iter().any(|(e, _)| e == n) {
                    expiry.push((n.clone(), na));
                }
            }
        }
        let provided: Vec<String> = expiry.iter().map(|(n, _)| n.clone()).collect();
        expiry.extend(
            self.acme_expiry
                .iter()
                .filter(|(n, _)| !provided.iter().any(|p| tls::certs::covers(p, n)))
                .cloned(),
        );
        self.expiry = expiry;
    }

    /// Logs, once per certificate, one expiring within two weeks (ACME
    /// renews a month ahead, so an ACME one here failed to renew).
    fn warn_expiring(&mut self, now: SystemTime) {
        for c in self.info() {
            let (Some(warning), Some(t)) = (c.expiry_warning(now), c.not_after) else {
                continue;
            };
            if self.warned.insert((c.source, c.names.clone(), t)) {
                log::warn!(
                    "tls: the {} certificate for {}{} {warning}; replace it",
                    c.source,
                    c.names.join(", "),
                    c.file
                        .as_ref()
                        .map(|f| format!(" ({})", f.display()))
                        .unwrap_or_default()
                );
            }
        }
    }

    /// What was last asked of ACME, and what it is doing.
    pub fn acme_status(&self) -> Option<(&acme::Want, Option<&str>)> {
        self.wanted.as_ref().map(|w| (w, self.state.as_deref()))
    }

    /// Expiry per name of the certificates served.
    pub fn expiry(&self) -> &[(String, SystemTime)] {
        &self.expiry
    }

    /// ACME orders attempted and failed.
    pub fn acme_counts(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        self.acme
            .as_ref()
            .map(|a| (a.attempts.load(Relaxed), a.failures.load(Relaxed)))
    }

    /// The certificate names `https` backends reached as `name` presented
    /// instead, if they did.
    pub fn name_mismatch(&self, name: &str) -> Option<Vec<String>> {
        self.name_mismatches.get(name)
    }

    /// Makes the TLS material when `config` has its first TLS service, and
    /// starts (or re-aims) ACME when it names certificates.
    /// `metadata_writable`: dns-01 answers can be published.
    pub fn follow(&mut self, config: &Config, metadata_writable: bool) {
        if self.material.is_none() && config.services().iter().any(|s| s.kind.is_tls()) {
            self.material = self.make(config);
            // Before the first handshake, not a settling look later.
            self.watch_provided(true);
        }
        self.follow_names(config, metadata_writable);
    }

    /// `svcadm refresh` changed how challenges are chosen: ask again.
    pub fn set_challenge(
        &mut self,
        choice: acme::ChallengeChoice,
        config: Option<&Config>,
        metadata_writable: bool,
    ) -> bool {
        if choice == self.acme_opts.challenge {
            return false;
        }
        self.acme_opts.challenge = choice;
        // Asked again with the new plan.
        self.wanted = None;
        if let Some(config) = config {
            self.follow_names(config, metadata_writable);
        }
        true
    }

    /// `moirai acme retry`: false when nothing is being ordered.
    pub fn retry_now(&self) -> bool {
        match &self.acme {
            Some(a) => {
                a.retry_now();
                true
            }
            None => false,
        }
    }

    /// Serves the certificates in the state directory and orders none:
    /// an upgrade's stand-in, beside the program that does.
    pub fn serve_only(&mut self) {
        self.orders = false;
    }

    fn follow_names(&mut self, config: &Config, metadata_writable: bool) {
        if self.material.is_none() || !self.orders {
            return;
        }
        let names: Vec<String> = config
            .certificate_names()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        if names.is_empty() {
            return;
        }
        let plan = match acme::plan(self.acme_opts.challenge, config, metadata_writable) {
            Ok(p) => {
                self.plan_error = None;
                p
            }
            Err(e) => {
                if self.plan_error.as_ref() != Some(&e) {
                    log::error!("acme: {e}; serving the self-signed certificate");
                    self.plan_error = Some(e);
                }
                return;
            }
        };
        let want = acme::Want { names, plan };
        if self.wanted.as_ref() == Some(&want) {
            return;
        }
        if self.acme.is_none() {
            match acme::Acme::spawn(self.acme_opts.clone(), Arc::clone(&self.waker)) {
                Ok(a) => self.acme = Some(a),
                Err(e) => {
                    log::error!("acme: cannot start: {e}");
                    return;
                }
            }
        }
        log::info!(
            "acme: asking {} for a certificate for {} by {plan}",
            self.acme_opts.directory,
            want.names.join(", ")
        );
        if let Some(a) = &self.acme {
            a.want(want.clone());
        }
        self.wanted = Some(want);
    }

    /// Acts on what the ACME manager says; dns-01 answers go out through
    /// `source`. True when the services must be published again (HTTP-01
    /// answers changed).
    pub fn acme_events(&mut self, source: &Reader) -> bool {
        let Some(a) = &self.acme else { return false };
        let events: Vec<acme::AcmeEvent> = a.events.try_iter().collect();
        let mut republish = false;
        for e in events {
            match e {
                acme::AcmeEvent::Http01 { token, key_auth } => {
                    Arc::make_mut(&mut self.challenges).insert(token, key_auth);
                    republish = true;
                }
                acme::AcmeEvent::TlsAlpn01 {
                    name,
                    cert_pem,
                    key_pem,
                } => match tls::certs::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()) {
                    Ok(key) => {
                        if let Some(m) = &self.material {
                            m.store.set_challenge(&name, key);
                        }
                    }
                    Err(e) => log::error!("acme: the tls-alpn-01 certificate is unusable: {e}"),
                },
                acme::AcmeEvent::ChallengesDone => {
                    if let Some(m) = &self.material {
                        m.store.clear_challenges();
                    }
                    if !self.challenges.is_empty() {
                        self.challenges = Arc::default();
                        republish = true;
                    }
                }
                acme::AcmeEvent::Dns01 { value } => {
                    // Written by the reader thread; its outcome is logged
                    // when it comes back.
                    source.put(acme::DNS_CHALLENGE_KEY, &value);
                }
                acme::AcmeEvent::Issued {
                    names,
                    cert_pem,
                    key_pem,
                    not_after,
                    fresh,
                } => self.issued(names, &cert_pem, &key_pem, not_after, fresh),
                acme::AcmeEvent::Failed {
                    error,
                    next,
                    retry_in,
                } => {
                    let error = match next {
                        Some(k) => format!("{error}; the next attempt uses {k}"),
                        None => error.to_string(),
                    };
                    self.state = Some(format!(
                        "failed: {error}; next attempt in {} s",
                        retry_in.as_secs()
                    ));
                    log::error!(
                        "acme: {error}; still serving the previous certificate, retrying in {} s",
                        retry_in.as_secs()
                    );
                }
            }
        }
        republish
    }

    fn issued(
        &mut self,
        names: Vec<String>,
        cert_pem: &str,
        key_pem: &str,
        not_after: Option<SystemTime>,
        fresh: bool,
    ) {
        let key = match tls::certs::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()) {
            Ok(key) => key,
            Err(e) => {
                log::error!("acme: the issued certificate is unusable: {e}");
                return;
            }
        };
        if let Some(m) = &self.material {
            // Also the default: clients without SNI or with another name
            // get it, not self-signed.
            m.store.install(&names, key, true);
        }
        let until = not_after
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_else(|| "an unknown date".to_owned());
        log::info!(
            "tls: serving the ACME certificate for {} ({}, valid until {until})",
            names.join(", "),
            if fresh { "just issued" } else { "stored" }
        );
        self.info.retain(|c| c.source != "acme");
        self.info
            .push(CertInfo::of(names.clone(), cert_pem.as_bytes(), "acme"));
        self.state = Some(format!(
            "{} certificate served, valid until {until}",
            if fresh { "issued" } else { "stored" }
        ));
        if let Some(t) = not_after {
            self.acme_expiry.retain(|(n, _)| !names.contains(n));
            self.acme_expiry
                .extend(names.iter().map(|n| (n.clone(), t)));
            self.merge_expiry();
        }
    }

    /// Logs, once each, `https` backends whose certificate is for another
    /// name.
    pub fn log_name_mismatches(&mut self) {
        let all = self.name_mismatches.all();
        if all == self.logged_mismatches {
            return;
        }
        for (name, presented) in &all {
            if !self
                .logged_mismatches
                .iter()
                .any(|(n, p)| n == name && p == presented)
            {
                log::warn!(
                    "tls: https backends reached as {name} present a certificate for {}; the chain is verified and the name is not (as Moirai does); add verify_host:NAME to the portmap entry to require one",
                    if presented.is_empty() { "other names".to_owned() } else { presented.join(", ") }
                );
            }
        }
        self.logged_mismatches = all;
    }

    /// The certificate store (self-signed until ACME supplies one), the
    /// server config, and the backend client configs.
    fn make(&mut self, config: &Config) -> Option<TlsMaterial> {
        let names: Vec<String> = config
            .certificate_names()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        let cert = match tls::certs::self_signed(&self.state_dir, &names) {
            Ok(c) => {
                if let Ok(pem) = std::fs::read(self.state_dir.join(tls::certs::SELF_SIGNED_CERT)) {
                    self.info
                        .push(CertInfo::of(names.clone(), &pem, "self-signed"));
                }
                c
            }
            Err(e) => {
                log::error!("tls: {e}");
                return None;
            }
        };
        let store = tls::certs::CertStore::new(cert);
        let server = match tls::config::server(Arc::clone(&store) as _) {
            Ok(s) => s,
            Err(e) => {
                log::error!("tls: {e}");
                return None;
            }
        };
        let roots = match tls::config::load_roots(&self.ca_file) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                log::error!(
                    "tls: no trust store for https backends ({e}); they will all fail verification"
                );
                Arc::new(rustls::RootCertStore::empty())
            }
        };
        let verified = tls::config::chain_verified_client(
            Arc::clone(&roots),
            Arc::clone(&self.name_mismatches),
        )
        .ok()?;
        let strict = tls::config::verified_client(roots).ok()?;
        let insecure = tls::config::insecure_client().ok()?;
        Some(TlsMaterial {
            store,
            server_h1: tls::config::without_h2(&server),
            server,
            verified,
            strict,
            insecure,
        })
    }
}
