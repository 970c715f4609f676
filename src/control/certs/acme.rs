//! ACME (Let's Encrypt, or any RFC 8555 server): certificates for
//! `certificate_name`, obtained, persisted and renewed without anyone
//! touching the box.
//!
//! instant-acme is async (hyper), so it runs on a thread of its own with a
//! current-thread tokio runtime; no worker ever sees it. The thread tells
//! the control loop what to publish (a challenge to answer, a certificate
//! to serve, a failure to report) through a channel and the control
//! waker. The control loop answers TLS-ALPN-01 (RFC 8737) in the TLS
//! handshake of every TLS service (ALPN `acme-tls/1`, a certificate with
//! the acmeIdentifier extension), HTTP-01 through the `http` services (the
//! snapshot carries pending tokens) and dns-01 by writing
//! `triton.cns.acme-challenge` through the metadata protocol, for CNS to
//! publish as TXT records, which is Moirai's own method.
//!
//! Which challenge, and how soon a failed validation is tried again, is
//! decided without I/O in `plan.rs` ([`super::plan`]), which `moirai
//! check` reports too; this manager follows it.
//!
//! State in `STATE_DIR/acme/` (keys 0600): `account.json` (credentials and
//! the directory they belong to), `cert.pem` + `key.pem` (the current
//! certificate and the names it is for, in `names`). A restart serves the
//! stored certificate at once and renews it when due: at two-thirds of its
//! lifetime (or `--acme-renew-before` ahead of expiry), with backoff on
//! failure from 10 s to an hour. A failure never takes a listener down: the
//! previous certificate (or the self-signed one) stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use super::acme_error::why;
pub use super::acme_error::{OrderError, OrderStep};
pub use super::plan::{plan, ChallengeChoice, ChallengeKind, Plan};
use super::plan::{validation_window, HOUR, VALIDATION_BACKOFF};
use crate::sys::poll::Waker;
use crate::tls::certs::write_private;

/// Let's Encrypt production.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt staging.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
/// The metadata key dns-01 answers are written to (CNS publishes it).
pub const DNS_CHALLENGE_KEY: &str = "triton.cns.acme-challenge";

/// An authorization's name, for logs and for matching its challenge.
fn identifier_name(id: &Identifier) -> String {
    match id {
        Identifier::Dns(n) => n.clone(),
        other => format!("{other:?}"),
    }
}

/// The library's name for a challenge kind.
fn challenge_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::Dns01 => ChallengeType::Dns01,
    }
}

/// How the manager works.
#[derive(Debug, Clone)]
pub struct AcmeOptions {
    /// The ACME directory URL.
    pub directory: String,
    /// An extra CA for the ACME server's own HTTPS (pebble's test CA).
    pub ca_file: Option<PathBuf>,
    /// How the challenge type is chosen.
    pub challenge: ChallengeChoice,
    /// Where the account and certificates live.
    pub dir: PathBuf,
    /// Renew this long before expiry instead of at two-thirds of the
    /// lifetime.
    pub renew_before: Option<Duration>,
    /// How long CNS gets to publish a dns-01 answer before the CA looks.
    pub dns_propagation: Duration,
}

/// What the manager asks of the control loop, or tells it.
#[derive(Debug)]
pub enum AcmeEvent {
    /// Serve `key_auth` at `/.well-known/acme-challenge/{token}`.
    Http01 {
        /// The token.
        token: String,
        /// The body to answer with.
        key_auth: String,
    },
    /// Answer TLS-ALPN-01 for `name` with this certificate (ALPN
    /// `acme-tls/1`).
    TlsAlpn01 {
        /// The name validated (SNI).
        name: String,
        /// The challenge certificate, with the acmeIdentifier extension.
        cert_pem: String,
        /// Its key.
        key_pem: String,
    },
    /// The challenges of an order are over; stop serving them.
    ChallengesDone,
    /// Publish `value` as the dns-01 TXT record (through metadata).
    Dns01 {
        /// The record's value.
        value: String,
    },
    /// A certificate to serve for `names` from now on.
    Issued {
        /// The names it covers.
        names: Vec<String>,
        /// Chain, leaf first.
        cert_pem: String,
        /// Its key.
        key_pem: String,
        /// When it expires.
        not_after: Option<SystemTime>,
        /// Whether it was just issued (vs read back from disk).
        fresh: bool,
    },
    /// An order failed; the next try is in `retry_in`.
    Failed {
        /// Why.
        error: OrderError,
        /// The method of the next attempt, when it is another one.
        next: Option<ChallengeKind>,
        /// When it is tried again.
        retry_in: Duration,
    },
}

/// What the control loop asks for: a certificate for `names` (the first is
/// the CN), obtained by `plan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The names.
    pub names: Vec<String>,
    /// The challenges to use.
    pub plan: Plan,
}

/// What the control loop sends the manager.
#[derive(Debug)]
enum Ask {
    /// A certificate for these names, by this plan.
    Want(Want),
    /// The next attempt now, whatever the backoff says (`moirai acme
    /// retry`, after the operator fixed DNS, say).
    RetryNow,
}

/// The handle the control loop keeps.
#[derive(Debug)]
pub struct Acme {
    want: Sender<Ask>,
    /// Events for the control loop.
    pub events: Receiver<AcmeEvent>,
    /// Orders started and failed.
    pub attempts: Arc<std::sync::atomic::AtomicU64>,
    /// Orders failed.
    pub failures: Arc<std::sync::atomic::AtomicU64>,
}

impl Acme {
    /// Starts the manager thread; it wakes the control loop with `waker`.
    pub fn spawn(opts: AcmeOptions, waker: Arc<Waker>) -> std::io::Result<Acme> {
        let (want, want_rx) = crossbeam_channel::unbounded();
        let (tx, events) = crossbeam_channel::unbounded();
        let attempts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (a, f) = (Arc::clone(&attempts), Arc::clone(&failures));
        std::thread::Builder::new()
            .name("moirai-acme".to_owned())
            .spawn(move || {
                let send = |e: AcmeEvent| {
                    let _ = tx.send(e);
                    let _ = waker.wake();
                };
                Manager {
                    opts,
                    want: want_rx,
                    send: &send,
                    attempts: a,
                    failures: f,
                }
                .run()
            })?;
        Ok(Acme {
            want,
            events,
            attempts,
            failures,
        })
    }

    /// Asks for a certificate (again, when the names or the plan change).
    pub fn want(&self, want: Want) {
        let _ = self.want.send(Ask::Want(want));
    }

    /// Tries the next order now.
    pub fn retry_now(&self) {
        let _ = self.want.send(Ask::RetryNow);
    }
}

struct Manager<'a> {
    opts: AcmeOptions,
    want: Receiver<Ask>,
    send: &'a dyn Fn(AcmeEvent),
    attempts: Arc<std::sync::atomic::AtomicU64>,
    failures: Arc<std::sync::atomic::AtomicU64>,
}

/// The first retry after a failure to reach the CA; doubled up to an hour.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Never two orders for the same names closer than this (CA rate limits).
const MIN_REORDER: Duration = Duration::from_secs(10);

impl Manager<'_> {
    fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                (self.send)(AcmeEvent::Failed {
                    error: OrderError::at(OrderStep::Runtime)(e.to_string()),
                    next: None,
                    retry_in: MAX_BACKOFF,
                });
                return;
            }
        };
        if let Err(e) = crate::state::prepare(&self.opts.dir) {
            log::error!("acme: {e}");
        }
        let mut want: Option<Want> = None;
        let mut due: Option<Instant> = None;
        let mut backoff = FIRST_BACKOFF;
        let mut validation_backoff = VALIDATION_BACKOFF;
        let mut last_order: Option<Instant> = None;
        // After a failed validation of `first`, the fallback is used.
        let mut use_fallback = false;
        let mut failed_validations: Vec<Instant> = Vec::new();
        loop {
            let wait = due.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            match self.want.recv_timeout(wait) {
                Ok(Ask::RetryNow) => {
                    // The operator's word: no backoff, no reorder pause.
                    due = Some(Instant::now());
                    last_order = None;
                    use_fallback = false;
                }
                Ok(Ask::Want(w)) if Some(&w) != want.as_ref() => {
                    let names_changed = want.as_ref().is_none_or(|old| old.names != w.names);
                    if names_changed {
                        backoff = FIRST_BACKOFF;
                        due = self.serve_stored(&w.names).or(Some(Instant::now()));
                    }
                    use_fallback = false;
                    want = Some(w);
                    continue;
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(w) = want.as_ref() else { continue };
            if due.is_none_or(|d| d > Instant::now()) {
                continue;
            }
            if let Some(t) = last_order {
                if t.elapsed() < MIN_REORDER {
                    due = Some(t + MIN_REORDER);
                    continue;
                }
            }
            let kind = match (use_fallback, w.plan.fallback) {
                (true, Some(f)) => f,
                _ => w.plan.first,
            };
            last_order = Some(Instant::now());
            self.attempts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::info!(
                "acme: ordering a certificate for {} by {kind}",
                w.names.join(", ")
            );
            let dns_possible = w.plan.first == ChallengeKind::Dns01
                || w.plan.fallback == Some(ChallengeKind::Dns01);
            let result = rt.block_on(self.order(&w.names, kind, dns_possible));
            (self.send)(AcmeEvent::ChallengesDone);
            match result {
                Ok((cert_pem, key_pem)) => {
                    backoff = FIRST_BACKOFF;
                    validation_backoff = VALIDATION_BACKOFF;
                    if let Err(e) = self.store(&w.names, &cert_pem, &key_pem) {
                        log::error!("acme: cannot store the certificate: {e}");
                    }
                    let not_after = not_after(&cert_pem);
                    due = Some(self.renewal_due(&cert_pem));
                    (self.send)(AcmeEvent::Issued {
                        names: w.names.clone(),
                        cert_pem,
                        key_pem,
                        not_after,
                        fresh: true,
                    });
                }
                Err(e) => {
                    self.failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let now = Instant::now();
                    let retry_in = if e.is_validation() {
                        failed_validations.retain(|t| now.duration_since(*t) < HOUR);
                        failed_validations.push(now);
                        let switch = w.plan.fallback.is_some();
                        let mut wait = if switch && !use_fallback {
                            // Another method: tried at once.
                            MIN_REORDER
                        } else {
                            let w = validation_backoff;
                            validation_backoff = (validation_backoff * 2).min(MAX_BACKOFF);
                            w
                        };
                        if let Some(open) = validation_window(&failed_validations, now) {
                            wait = wait.max(open.duration_since(now));
                        }
                        if switch {
                            use_fallback = !use_fallback;
                        }
                        wait
                    } else {
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        wait
                    };
                    due = Some(now + retry_in);
                    let next = match (use_fallback, w.plan.fallback) {
                        (true, Some(f)) => f,
                        _ => w.plan.first,
                    };
                    (self.send)(AcmeEvent::Failed {
                        error: e,
                        next: (next != kind).then_some(next),
                        retry_in,
                    });
                }
            }
        }
    }

    /// A stored certificate for exactly `names`: served at once, and the
    /// time its renewal is due.
    fn serve_stored(&self, names: &[String]) -> Option<Instant> {
        let dir = &self.opts.dir;
        let stored = std::fs::read_to_string(dir.join("names")).ok()?;
        if stored.lines().collect::<Vec<_>>() != names {
            return None;
        }
        let cert_pem = std::fs::read_to_string(dir.join("cert.pem")).ok()?;
        let key_pem = crate::state::read_private(&dir.join("key.pem"))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let due = self.renewal_due(&cert_pem);
        (self.send)(AcmeEvent::Issued {
            names: names.to_vec(),
            not_after: not_after(&cert_pem),
            cert_pem,
            key_pem,
            fresh: false,
        });
        Some(due)
    }

    fn store(&self, names: &[String], cert_pem: &str, key_pem: &str) -> Result<(), String> {
        let dir = &self.opts.dir;
        write_private(&dir.join("key.pem"), key_pem.as_bytes()).map_err(|e| e.to_string())?;
        write_private(&dir.join("cert.pem"), cert_pem.as_bytes()).map_err(|e| e.to_string())?;
        write_private(&dir.join("names"), names.join("\n").as_bytes()).map_err(|e| e.to_string())
    }

    /// Two-thirds into the certificate's lifetime, or `renew_before` ahead
    /// of its end; now if the dates cannot be read.
    fn renewal_due(&self, cert_pem: &str) -> Instant {
        let Some((nb, na)) = validity(cert_pem) else {
            return Instant::now();
        };
        let at = match self.opts.renew_before {
            Some(before) => na.checked_sub(before).unwrap_or(nb),
            None => nb + na.duration_since(nb).unwrap_or_default() * 2 / 3,
        };
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        Instant::now() + wait
    }

    async fn account(&self) -> Result<Account, String> {
        let path = self.opts.dir.join("account.json");
        let builder = || {
            match &self.opts.ca_file {
                Some(ca) => Account::builder_with_root(ca),
                None => Account::builder(),
            }
            .map_err(|e| format!("ACME client: {e}"))
        };
        if let Some(text) = crate::state::read_private(&path)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            if let Ok(saved) = serde_json::from_str::<SavedAccount>(&text) {
                if saved.directory == self.opts.directory {
                    return builder()?
                        .from_credentials(saved.credentials)
                        .await
                        .map_err(|e| format!("ACME account: {}", why(&e)));
                }
            }
        }
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.opts.directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("ACME account at {}: {}", self.opts.directory, why(&e)))?;
        let saved = SavedAccount {
            directory: self.opts.directory.clone(),
            credentials,
        };
        let json = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
        write_private(&path, &json).map_err(|e| e.to_string())?;
        log::info!("acme: account created at {}", self.opts.directory);
        Ok(account)
    }

    /// One order by `kind`, start to finish: (chain PEM, key PEM).
    async fn order(
        &self,
        names: &[String],
        kind: ChallengeKind,
        dns_possible: bool,
    ) -> Result<(String, String), OrderError> {
        let account = self
            .account()
            .await
            .map_err(OrderError::at(OrderStep::Account))?;
        let identifiers: Vec<Identifier> =
            names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| OrderError::at(OrderStep::NewOrder)(why(&e)))?;
        // Each authorization is answered by `kind` where the CA offers
        // it, else by dns-01 where that is all it offers and this
        // balancer can write the answer (a wildcard name among plain
        // ones); the choice is kept by name for telling the CA to look.
        let mut chosen: Vec<(String, ChallengeKind)> = Vec::new();
        let mut used_dns = false;
        // First every answer is published, then the CA is told to look:
        // dns-01 answers for several names share one metadata key (CNS
        // publishes its space-separated values as TXT records under every
        // name of the instance), written once.
        let mut dns_values = Vec::new();
        let mut pending = 0;
        let mut auths = order.authorizations();
        while let Some(a) = auths.next().await {
            let mut a = a.map_err(|e| OrderError::at(OrderStep::Authorization)(why(&e)))?;
            match a.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                s => return Err(OrderError::at(OrderStep::Invalid)(format!("{s:?}"))),
            }
            pending += 1;
            let name = identifier_name(a.identifier().identifier);
            let offers = |t: ChallengeType| a.challenges.iter().any(|c| c.r#type == t);
            let this = if offers(challenge_type(kind)) {
                kind
            } else if dns_possible && offers(ChallengeType::Dns01) {
                log::info!("acme: the CA offers only dns-01 for {name}; answering by dns-01");
                ChallengeKind::Dns01
            } else {
                return Err(OrderError::at(OrderStep::NoChallenge)(format!(
                    "the CA offers no {kind} challenge for {name}"
                )));
            };
            used_dns |= this == ChallengeKind::Dns01;
            chosen.push((name.clone(), this));
            let Some(ch) = a.challenge(challenge_type(this)) else {
                continue;
            };
            let key_auth = ch.key_authorization();
            match this {
                ChallengeKind::TlsAlpn01 => {
                    let (cert_pem, key_pem) =
                        alpn_certificate(&name, key_auth.digest().as_ref())
                            .map_err(OrderError::at(OrderStep::AlpnCertificate))?;
                    (self.send)(AcmeEvent::TlsAlpn01 {
                        name,
                        cert_pem,
                        key_pem,
                    })
                }
                ChallengeKind::Http01 => (self.send)(AcmeEvent::Http01 {
                    token: ch.token.clone(),
                    key_auth: key_auth.as_str().to_owned(),
                }),
                ChallengeKind::Dns01 => dns_values.push(key_auth.dns_value()),
            }
        }
        if pending > 0 {
            if !dns_values.is_empty() {
                (self.send)(AcmeEvent::Dns01 {
                    value: dns_values.join(" "),
                });
            }
            // Time for the certificate store, the snapshot (or CNS) to
            // carry the answers.
            tokio::time::sleep(if used_dns {
                self.opts.dns_propagation
            } else {
                Duration::from_millis(500)
            })
            .await;
            let mut auths = order.authorizations();
            while let Some(a) = auths.next().await {
                let mut a = a.map_err(|e| OrderError::at(OrderStep::Authorization)(why(&e)))?;
                if a.status != AuthorizationStatus::Pending {
                    continue;
                }
                let name = identifier_name(a.identifier().identifier);
                let this = chosen
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(kind, |(_, k)| *k);
                if let Some(mut ch) = a.challenge(challenge_type(this)) {
                    ch.set_ready()
                        .await
                        .map_err(|e| OrderError::at(OrderStep::Challenge)(why(&e)))?;
                }
            }
        }
        let status = order.poll_ready(&RetryPolicy::default()).await;
        let failed = match status {
            Ok(OrderStatus::Ready) => None,
            Ok(s) => Some(format!("order is {s:?} after validation")),
            Err(e) => Some(format!("validation: {}", why(&e))),
        };
        if let Some(summary) = failed {
            // The CA's problem document says why: DNS, connection, TLS...
            let mut why = Vec::new();
            let mut auths = order.authorizations();
            while let Some(Ok(a)) = auths.next().await {
                for c in &a.challenges {
                    if let Some(p) = &c.error {
                        why.push(format!(
                            "{}{}",
                            p.detail.as_deref().unwrap_or("no detail"),
                            p.r#type
                                .as_deref()
                                .map(|t| format!(" ({t})"))
                                .unwrap_or_default()
                        ));
                    }
                }
            }
            return Err(OrderError::at(OrderStep::Validation)(if why.is_empty() {
                format!("{kind} {summary}")
            } else {
                format!("{kind} validation failed: {}", why.join("; "))
            }));
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| OrderError::at(OrderStep::Request)(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| OrderError::at(OrderStep::Request)(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        let csr = params
            .serialize_request(&key)
            .map_err(|e| OrderError::at(OrderStep::Request)(e.to_string()))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| OrderError::at(OrderStep::Finalize)(why(&e)))?;
        let chain = order
            .poll_certificate(&RetryPolicy::default())
            .await
            .map_err(|e| OrderError::at(OrderStep::Certificate)(why(&e)))?;
        Ok((chain, key.serialize_pem()))
    }
}

/// The TLS-ALPN-01 certificate for `name` (RFC 8737 §3): self-signed,
/// `name` as its only SAN, and the critical acmeIdentifier extension
/// holding the SHA-256 digest of the key authorization.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<(String, String), String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// (notBefore, notAfter) of the first certificate in `pem`.
pub fn validity(pem: &str) -> Option<(SystemTime, SystemTime)> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    crate::tls::validity::validity(&der)
}

fn not_after(pem: &str) -> Option<SystemTime> {
    validity(pem).map(|(_, na)| na)
}

/// The ACME state directory inside the state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("acme")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_alpn_certificate_carries_the_name_and_the_digest() {
        let digest = [7u8; 32];
        let (cert, _) = alpn_certificate("lb.example.com", &digest).unwrap();
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        // id-pe-acmeIdentifier 1.3.6.1.5.5.7.1.31, then the digest as an
        // OCTET STRING.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        assert!(der.windows(oid.len()).any(|w| w == oid));
        let mut octets = vec![0x04, 0x20];
        octets.extend_from_slice(&digest);
        assert!(der.windows(octets.len()).any(|w| w == octets.as_slice()));
        assert!(der.windows(14).any(|w| w == b"lb.example.com"));
    }
}
