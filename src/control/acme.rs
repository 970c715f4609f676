//! ACME (Let's Encrypt, or any RFC 8555 server): certificates for
//! `certificate_name`, obtained, persisted and renewed without anyone
//! touching the box.
//!
//! instant-acme is async (hyper), so it runs on a thread of its own with a
//! current-thread tokio runtime; no worker ever sees it. The thread tells
//! the control loop what to publish (a challenge to answer, a certificate
//! to serve, a failure to report) through a channel and the control
//! waker. The control loop answers HTTP-01 through the `http` services
//! (the snapshot carries pending tokens) and dns-01 by writing
//! `triton.cns.acme-challenge` through the metadata protocol, for CNS to
//! publish as TXT records.
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

use crate::sys::poll::Waker;
use crate::tls::certs::write_private;

/// Let's Encrypt production.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt staging.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
/// The metadata key dns-01 answers are written to (CNS publishes it).
pub const DNS_CHALLENGE_KEY: &str = "triton.cns.acme-challenge";

/// How a challenge is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// On the `http` listener (port 80 in production).
    Http01,
    /// As a TXT record published by CNS from instance metadata.
    Dns01,
}

/// How the manager works.
#[derive(Debug, Clone)]
pub struct AcmeOptions {
    /// The ACME directory URL.
    pub directory: String,
    /// An extra CA for the ACME server's own HTTPS (pebble's test CA).
    pub ca_file: Option<PathBuf>,
    /// The challenge type.
    pub challenge: ChallengeKind,
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
        error: String,
        /// When it is tried again.
        retry_in: Duration,
    },
}

/// The handle the control loop keeps.
#[derive(Debug)]
pub struct Acme {
    want: Sender<Vec<String>>,
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

    /// Asks for a certificate for `names` (the first is the CN).
    pub fn want(&self, names: Vec<String>) {
        let _ = self.want.send(names);
    }
}

struct Manager<'a> {
    opts: AcmeOptions,
    want: Receiver<Vec<String>>,
    send: &'a dyn Fn(AcmeEvent),
    attempts: Arc<std::sync::atomic::AtomicU64>,
    failures: Arc<std::sync::atomic::AtomicU64>,
}

/// The first retry after a failure; doubled up to an hour.
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
                    error: format!("cannot start the ACME runtime: {e}"),
                    retry_in: MAX_BACKOFF,
                });
                return;
            }
        };
        if let Err(e) = crate::state::prepare(&self.opts.dir) {
            log::error!("acme: {e}");
        }
        let mut names: Vec<String> = Vec::new();
        let mut due: Option<Instant> = None;
        let mut backoff = FIRST_BACKOFF;
        let mut last_order: Option<Instant> = None;
        loop {
            let wait = due.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            match self.want.recv_timeout(wait) {
                Ok(n) if n != names => {
                    names = n;
                    backoff = FIRST_BACKOFF;
                    due = self.serve_stored(&names).or(Some(Instant::now()));
                    continue;
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if names.is_empty() || due.is_none_or(|d| d > Instant::now()) {
                continue;
            }
            if let Some(t) = last_order {
                if t.elapsed() < MIN_REORDER {
                    due = Some(t + MIN_REORDER);
                    continue;
                }
            }
            last_order = Some(Instant::now());
            self.attempts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = rt.block_on(self.order(&names));
            (self.send)(AcmeEvent::ChallengesDone);
            match result {
                Ok((cert_pem, key_pem)) => {
                    backoff = FIRST_BACKOFF;
                    if let Err(e) = self.store(&names, &cert_pem, &key_pem) {
                        log::error!("acme: cannot store the certificate: {e}");
                    }
                    let not_after = not_after(&cert_pem);
                    due = Some(self.renewal_due(&cert_pem));
                    (self.send)(AcmeEvent::Issued {
                        names: names.clone(),
                        cert_pem,
                        key_pem,
                        not_after,
                        fresh: true,
                    });
                }
                Err(error) => {
                    self.failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    due = Some(Instant::now() + backoff);
                    (self.send)(AcmeEvent::Failed {
                        error,
                        retry_in: backoff,
                    });
                    backoff = (backoff * 2).min(MAX_BACKOFF);
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
                        .map_err(|e| format!("ACME account: {e}"));
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
            .map_err(|e| format!("ACME account at {}: {e}", self.opts.directory))?;
        let saved = SavedAccount {
            directory: self.opts.directory.clone(),
            credentials,
        };
        let json = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
        write_private(&path, &json).map_err(|e| e.to_string())?;
        log::info!("acme: account created at {}", self.opts.directory);
        Ok(account)
    }

    /// One order, start to finish: (chain PEM, key PEM).
    async fn order(&self, names: &[String]) -> Result<(String, String), String> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> =
            names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let kind = match self.opts.challenge {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::Dns01 => ChallengeType::Dns01,
        };
        let mut auths = order.authorizations();
        while let Some(a) = auths.next().await {
            let mut a = a.map_err(|e| format!("authorization: {e}"))?;
            match a.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                s => return Err(format!("authorization is {s:?}")),
            }
            let mut ch = a
                .challenge(kind.clone())
                .ok_or_else(|| format!("the server offers no {kind:?} challenge"))?;
            let key_auth = ch.key_authorization();
            match self.opts.challenge {
                ChallengeKind::Http01 => (self.send)(AcmeEvent::Http01 {
                    token: ch.token.clone(),
                    key_auth: key_auth.as_str().to_owned(),
                }),
                ChallengeKind::Dns01 => (self.send)(AcmeEvent::Dns01 {
                    value: key_auth.dns_value(),
                }),
            }
            // Time for the snapshot (or CNS) to carry the answer.
            tokio::time::sleep(match self.opts.challenge {
                ChallengeKind::Http01 => Duration::from_millis(500),
                ChallengeKind::Dns01 => self.opts.dns_propagation,
            })
            .await;
            ch.set_ready()
                .await
                .map_err(|e| format!("challenge: {e}"))?;
        }
        let status = order
            .poll_ready(&RetryPolicy::default())
            .await
            .map_err(|e| format!("waiting for validation: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(format!("order is {status:?} after validation"));
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| e.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain = order
            .poll_certificate(&RetryPolicy::default())
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        Ok((chain, key.serialize_pem()))
    }
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
