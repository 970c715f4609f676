//! Certificates: which one each handshake gets, and where they come from.
//!
//! [`CertStore`] is the SNI resolver of every TLS service. It holds one
//! immutable set (a default certificate and certificates by name) behind an
//! `ArcSwap`: the control thread replaces the whole set in one store, every
//! worker's next handshake sees it, and handshakes already past
//! certificate selection keep the one they had. No restart, no lock on the
//! handshake path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// File names of the self-signed fallback in the state directory.
pub const SELF_SIGNED_CERT: &str = "selfsigned.crt";
/// Its key (mode 0600).
pub const SELF_SIGNED_KEY: &str = "selfsigned.key";

#[derive(Debug)]
struct Certs {
    default: Arc<CertifiedKey>,
    /// What a handshake is served, by name (exact, or `*.domain`): the
    /// provided certificates over ACME's, merged once per change so a
    /// handshake looks in one map. An ACME name a provided certificate
    /// covers (exactly or by wildcard) is left out: the provided one
    /// wins for it.
    served: HashMap<String, Arc<CertifiedKey>>,
    /// Lower-case names, `*.domain` for wildcards.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// The operator's certificates (`STATE_DIR/certs`), by name as
    /// `by_name`; looked up first, so they win over ACME for every name
    /// they cover, exactly or by wildcard.
    provided: HashMap<String, Arc<CertifiedKey>>,
}

/// Whether a certificate name (`*.domain` for a wildcard) covers a host
/// name, as clients judge it (RFC 6125 §6.4.3): a wildcard stands for
/// exactly one label, so `*.example.com` covers `a.example.com`, not
/// `example.com` nor `a.b.example.com`. Case-insensitive.
pub fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// The key for `name` in a map by name: exact, then a wildcard one level up.
fn find(map: &HashMap<String, Arc<CertifiedKey>>, name: &str) -> Option<Arc<CertifiedKey>> {
    map.get(name).cloned().or_else(|| {
        let parent = name.split_once('.')?.1;
        map.get(&format!("*.{parent}")).cloned()
    })
}

pub use super::config::ACME_TLS_ALPN;

/// The certificates served, swapped atomically.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<Certs>,
    /// TLS-ALPN-01 answers by name, served only to handshakes that offer
    /// `acme-tls/1` alone (the CA's validator); empty between orders.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertStore {
    /// A store serving `default` to every handshake.
    pub fn new(default: Arc<CertifiedKey>) -> Arc<CertStore> {
        Arc::new(CertStore {
            current: ArcSwap::from_pointee(Certs::new(default, HashMap::new(), HashMap::new())),
            challenges: Mutex::new(HashMap::new()),
        })
    }

    /// Serves `key` for each of `names` from the next handshake on, and to
    /// clients that send no SNI or another name too when `as_default`
    /// (the ACME certificate: the self-signed one is only for when there
    /// is nothing better).
    pub fn install(&self, names: &[String], key: Arc<CertifiedKey>, as_default: bool) {
        let old = self.current.load();
        let mut by_name = old.by_name.clone();
        for n in names {
            by_name.insert(n.to_ascii_lowercase(), Arc::clone(&key));
        }
        let default = if as_default {
            Arc::clone(&key)
        } else {
            Arc::clone(&old.default)
        };
        self.current
            .store(Arc::new(Certs::new(default, by_name, old.provided.clone())));
    }

    /// Replaces every provided certificate at once (names lower-case,
    /// `*.domain` for wildcards): the next handshake for a name sees the
    /// new set, handshakes under way keep the key they picked.
    pub fn set_provided(&self, provided: HashMap<String, Arc<CertifiedKey>>) {
        let old = self.current.load();
        self.current.store(Arc::new(Certs::new(
            Arc::clone(&old.default),
            old.by_name.clone(),
            provided,
        )));
    }

    /// Answers TLS-ALPN-01 for `name` with `key` until
    /// [`CertStore::clear_challenges`].
    pub fn set_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        if let Ok(mut c) = self.challenges.lock() {
            c.insert(name.to_ascii_lowercase(), key);
        }
    }

    /// The order is over: no more TLS-ALPN-01 answers.
    pub fn clear_challenges(&self) {
        if let Ok(mut c) = self.challenges.lock() {
            c.clear();
        }
    }

    /// The challenge certificate for a validation handshake: one offering
    /// `acme-tls/1` as its only protocol (RFC 8737 §3), for a name with a
    /// pending challenge.
    fn challenge(&self, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut alpn = hello.alpn()?;
        if alpn.next() != Some(ACME_TLS_ALPN) || alpn.next().is_some() {
            return None;
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        self.challenges.lock().ok()?.get(&name).cloned()
    }

    /// The certificate for `sni`: a provided one (exact name, then a
    /// wildcard one level up), then ACME's the same way, then the default
    /// (no SNI, or a name nobody asked for).
    pub fn lookup(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let c = self.current.load();
        sni.map(str::to_ascii_lowercase)
            .and_then(|n| find(&c.served, &n))
            .unwrap_or_else(|| Arc::clone(&c.default))
    }
}

impl Certs {
    fn new(
        default: Arc<CertifiedKey>,
        by_name: HashMap<String, Arc<CertifiedKey>>,
        provided: HashMap<String, Arc<CertifiedKey>>,
    ) -> Certs {
        let mut served: HashMap<String, Arc<CertifiedKey>> = by_name
            .iter()
            .filter(|(name, _)| !provided.keys().any(|p| covers(p, name)))
            .map(|(n, k)| (n.clone(), Arc::clone(k)))
            .collect();
        served.extend(provided.iter().map(|(n, k)| (n.clone(), Arc::clone(k))));
        Certs {
            default,
            served,
            by_name,
            provided,
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(c) = self.challenge(&hello) {
            return Some(c);
        }
        Some(self.lookup(hello.server_name()))
    }
}

/// The certificates in PEM text, in order (none is not an error here).
pub fn pem_chain(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    CertificateDer::pem_slice_iter(pem).collect()
}

/// A private key as the TLS provider signs with it.
pub fn signing_key(
    key: PrivateKeyDer<'static>,
) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
    super::config::provider().key_provider.load_private_key(key)
}

/// A certified key from PEM text: the chain (leaf first) and its key.
pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain = pem_chain(cert_pem).map_err(|e| format!("certificate PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the PEM".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("key PEM: {e}"))?;
    let signing = signing_key(key).map_err(|e| format!("key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// Writes `bytes` to `path` readable by the owner only, atomically
/// ([`crate::state::write_private`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::state::write_private(path, bytes).map_err(|e| TlsError::Io(path.to_owned(), e))
}

/// The self-signed fallback: read from `dir` if a previous run made one,
/// else a new P-256 certificate for `names` (the first is the CN; none
/// means the host name), persisted there.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
    let (cp, kp) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
    if let (Ok(c), Ok(k)) = (std::fs::read(&cp), crate::state::read_private(&kp)) {
        match from_pem(&c, &k) {
            Ok(key) => return Ok(key),
            Err(e) => log::warn!(
                "{}: {e}; making a new self-signed certificate",
                cp.display()
            ),
        }
    }
    let names: Vec<String> = if names.is_empty() {
        let h = crate::sys::process::hostname();
        vec![if h.is_empty() {
            "localhost".to_owned()
        } else {
            h
        }]
    } else {
        names.to_vec()
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.clone())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "moirai self-signed");
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    write_private(&kp, key_pem.as_bytes())?;
    write_private(&cp, cert_pem.as_bytes())?;
    log::info!(
        "tls: made a self-signed P-256 certificate for {} ({})",
        names.join(", "),
        cp.display()
    );
    from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| TlsError::Pem(cp, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("moirai-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = self_signed(&dir, &["lb.example.test".to_owned()]).unwrap();
        let b = self_signed(&dir, &["other.test".to_owned()]).unwrap();
        assert_eq!(a.cert, b.cert, "a restart reuses the certificate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SELF_SIGNED_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let dir = std::env::temp_dir().join(format!("moirai-tls-sni-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let default = self_signed(&dir.join("."), &["default.test".to_owned()]).unwrap();
        std::fs::remove_file(dir.join(SELF_SIGNED_CERT)).unwrap();
        let other = self_signed(&dir, &["a.test".to_owned()]).unwrap();
        let store = CertStore::new(Arc::clone(&default));
        store.install(
            &["A.test".to_owned(), "*.wild.test".to_owned()],
            Arc::clone(&other),
            false,
        );
        assert!(Arc::ptr_eq(&store.lookup(Some("a.TEST")), &other));
        assert!(Arc::ptr_eq(&store.lookup(Some("x.wild.test")), &other));
        assert!(Arc::ptr_eq(&store.lookup(Some("y.x.wild.test")), &default));
        assert!(Arc::ptr_eq(&store.lookup(Some("unknown.test")), &default));
        assert!(Arc::ptr_eq(&store.lookup(None), &default));
        // The ACME certificate is the default as well.
        store.install(&["b.test".to_owned()], Arc::clone(&other), true);
        assert!(Arc::ptr_eq(&store.lookup(None), &other));
        assert!(Arc::ptr_eq(&store.lookup(Some("unknown.test")), &other));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn provided_certificates_win_over_acme_and_leave_other_names_alone() {
        let dir = std::env::temp_dir().join(format!("moirai-tls-own-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fallback = self_signed(&dir, &["default.test".to_owned()]).unwrap();
        std::fs::remove_file(dir.join(SELF_SIGNED_CERT)).unwrap();
        let acme = self_signed(&dir, &["acme.test".to_owned()]).unwrap();
        std::fs::remove_file(dir.join(SELF_SIGNED_CERT)).unwrap();
        let own = self_signed(&dir, &["own.test".to_owned()]).unwrap();
        let store = CertStore::new(Arc::clone(&fallback));
        store.install(
            &[
                "a.test".to_owned(),
                "x.b.test".to_owned(),
                "c.test".to_owned(),
            ],
            Arc::clone(&acme),
            true,
        );
        store.set_provided(HashMap::from([
            ("a.test".to_owned(), Arc::clone(&own)),
            ("*.b.test".to_owned(), Arc::clone(&own)),
        ]));
        assert!(Arc::ptr_eq(&store.lookup(Some("A.test")), &own));
        assert!(Arc::ptr_eq(&store.lookup(Some("x.b.test")), &own));
        assert!(Arc::ptr_eq(&store.lookup(Some("c.test")), &acme));
        assert!(Arc::ptr_eq(&store.lookup(Some("b.test")), &acme));
        assert!(Arc::ptr_eq(&store.lookup(None), &acme));
        // An ACME renewal keeps the provided layer.
        store.install(&["a.test".to_owned()], Arc::clone(&acme), true);
        assert!(Arc::ptr_eq(&store.lookup(Some("a.test")), &own));
        store.set_provided(HashMap::new());
        assert!(Arc::ptr_eq(&store.lookup(Some("a.test")), &acme));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_wildcard_covers_one_label() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "A.Example.COM"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", ".example.com"));
        assert!(covers("a.test", "A.TEST"));
        assert!(!covers("a.test", "b.a.test"));
    }
}
