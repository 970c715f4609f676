//! Certificates the operator provides: `STATE_DIR/certs/NAME.pem`, served
//! instead of ACME's for the names they carry.
//!
//! The file convention is HAProxy's `crt`, which operators migrating from
//! the Triton HAProxy image know: `NAME.pem` holds the chain, leaf first,
//! and may hold the private key too (one combined PEM); when it holds no
//! key, `NAME.key` beside it does. Other files (and dotfiles, such as an
//! editor's or a copy's temporaries) are ignored.
//!
//! A key is a secret, so:
//! - the file holding it must be owner-only (no group or other bits). It is
//!   refused, not tightened as moirai's own secrets are
//!   ([`crate::state::read_private`]): moirai wrote those itself, whereas a
//!   provided key found open may already have been read by someone else,
//!   which only the operator can judge (and fix, with a new key);
//! - the `certs` directory must not be writable by others, who could swap
//!   a certificate and key;
//! - no error ever quotes the key's text.
//!
//! This module reads and judges one certificate; watching the directory is
//! the control thread's ([`crate::control::certs`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::CertifiedKey;

/// The directory, in the state directory.
pub const DIR: &str = "certs";
/// A certificate (and maybe its key): `NAME.pem`.
pub const CERT_EXT: &str = "pem";
/// Its key, when `NAME.pem` has none: `NAME.key`.
pub const KEY_EXT: &str = "key";
/// How long before expiry a certificate is warned about (log, status,
/// metric).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// Why a provided certificate is not served.
#[derive(Debug)]
pub enum ProvidedError {
    /// A file or the directory could not be read.
    Io(PathBuf, io::Error),
    /// The directory may be written by others (its mode).
    DirWritable(PathBuf, u32),
    /// The file holding the key may be read or written by group or others
    /// (its mode).
    KeyNotPrivate(PathBuf, u32),
    /// The PEM holds no certificate.
    NoCertificate(PathBuf),
    /// The certificate PEM is malformed (the parser's words).
    CertPem(PathBuf, String),
    /// Neither `NAME.pem` nor `NAME.key` holds a private key.
    NoKey(PathBuf, PathBuf),
    /// The key's PEM is malformed or of a kind aws-lc-rs cannot sign with.
    /// Deliberately without the parser's words, which may quote the key.
    BadKey(PathBuf),
    /// The key signs, but moirai does not serve with it (why: the
    /// [`Unserved`]).
    UnservedKey(PathBuf, Unserved),
    /// The key is not the one of the leaf certificate.
    KeyMismatch(PathBuf, PathBuf),
    /// The leaf has no DNS name in its subjectAltName.
    NoNames(PathBuf),
}

impl fmt::Display for ProvidedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvidedError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ProvidedError::DirWritable(p, mode) => write!(
                f,
                "{}: writable by others (mode {mode:04o}), who could swap a certificate and key; \
                 nothing in it is read until chmod o-w",
                p.display()
            ),
            ProvidedError::KeyNotPrivate(p, mode) => write!(
                f,
                "{}: the private key is readable or writable by group or others (mode {mode:04o}); \
                 refused: it may have been read already, so replace the key if that matters, \
                 and chmod 600 the file",
                p.display()
            ),
            ProvidedError::NoCertificate(p) => {
                write!(f, "{}: no PEM certificate in the file", p.display())
            }
            ProvidedError::CertPem(p, why) => {
                write!(f, "{}: certificate PEM: {why}", p.display())
            }
            ProvidedError::NoKey(pem, key) => write!(
                f,
                "{}: no private key, neither in the file nor in {}",
                pem.display(),
                key.display()
            ),
            ProvidedError::BadKey(p) => write!(
                f,
                "{}: the private key is not a PEM RSA, ECDSA or Ed25519 key",
                p.display()
            ),
            ProvidedError::UnservedKey(p, Unserved::LargeRsa(bits)) => write!(
                f,
                "{}: an RSA key of {bits} bits; moirai serves RSA keys of up to {MAX_RSA_BITS} \
                 bits (each handshake signs once, and a larger key's signature holds a worker \
                 for tens of milliseconds)",
                p.display()
            ),
            ProvidedError::UnservedKey(p, Unserved::P521) => write!(
                f,
                "{}: an ECDSA P-521 key; Chrome offers no P-521 signature in TLS 1.3, so its \
                 handshakes would fail: use P-256, P-384 or RSA",
                p.display()
            ),
            ProvidedError::KeyMismatch(pem, key) => write!(
                f,
                "{}: the private key in {} is not the certificate's",
                pem.display(),
                key.display()
            ),
            ProvidedError::NoNames(p) => write!(
                f,
                "{}: the certificate has no DNS name (subjectAltName), so no SNI can match it",
                p.display()
            ),
        }
    }
}

impl std::error::Error for ProvidedError {}

/// The largest RSA key served. One signature per full handshake, on the
/// worker's thread: 2 ms for 4096 bits here, 45 ms for 8192, every
/// other connection of that worker waiting (ring, the provider before,
/// refused larger keys too).
pub const MAX_RSA_BITS: usize = 4096;

/// Keys aws-lc-rs signs with that moirai refuses to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unserved {
    /// RSA over [`MAX_RSA_BITS`] (its size in bits).
    LargeRsa(usize),
    /// ECDSA on P-521: accepted by Firefox and OpenSSL, but no Chrome
    /// offers its signature scheme in TLS 1.3, and a certificate that
    /// fails the most common browser is better refused with a reason
    /// than served (ring refused it too).
    P521,
}

/// Why `key` is not served, if it is one of the [`Unserved`] kinds.
fn unserved(key: &PrivateKeyDer<'_>) -> Option<Unserved> {
    use aws_lc_rs::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P521_SHA512_ASN1_SIGNING};
    let rsa = match key {
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()).ok(),
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).ok(),
        _ => None,
    };
    if let Some(bits) = rsa.map(|k| k.public_modulus_len() * 8) {
        return (bits > MAX_RSA_BITS).then_some(Unserved::LargeRsa(bits));
    }
    let ec = match key {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der(),
        PrivateKeyDer::Sec1(k) => k.secret_sec1_der(),
        _ => return None,
    };
    EcdsaKeyPair::from_private_key_der(&ECDSA_P521_SHA512_ASN1_SIGNING, ec)
        .is_ok()
        .then_some(Unserved::P521)
}

/// A provided certificate, ready to serve.
#[derive(Debug, Clone)]
pub struct Provided {
    /// The chain and its signing key.
    pub key: Arc<CertifiedKey>,
    /// Its DNS names, lower-case, `*.domain` for wildcards.
    pub names: Vec<String>,
    /// The file the key came from.
    pub key_file: PathBuf,
}

impl Provided {
    /// The leaf certificate, DER.
    pub fn leaf(&self) -> &[u8] {
        self.key.cert.first().map_or(&[][..], |c| c.as_ref())
    }
}

/// `NAME.key` beside `NAME.pem`.
pub fn key_path(pem: &Path) -> PathBuf {
    pem.with_extension(KEY_EXT)
}

/// Whether `path` names a certificate file (`NAME.pem`, not a dotfile).
pub fn is_cert_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && path.extension().is_some_and(|e| e == CERT_EXT)
}

/// Refuses a directory others may write to.
pub fn check_dir(dir: &Path, meta: &std::fs::Metadata) -> Result<(), ProvidedError> {
    let mode = mode(meta);
    if mode & 0o002 != 0 {
        return Err(ProvidedError::DirWritable(dir.to_owned(), mode));
    }
    Ok(())
}

#[cfg(unix)]
fn mode(m: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(_: &std::fs::Metadata) -> u32 {
    0o600
}

/// Refuses a key file that group or others may read or write.
fn check_key_file(path: &Path) -> Result<(), ProvidedError> {
    let m = std::fs::metadata(path).map_err(|e| ProvidedError::Io(path.to_owned(), e))?;
    let mode = mode(&m);
    if mode & 0o077 != 0 {
        return Err(ProvidedError::KeyNotPrivate(path.to_owned(), mode));
    }
    Ok(())
}

/// Reads and judges `pem` (and `NAME.key` beside it when the PEM holds no
/// key): the chain, the key's privacy, the key against the leaf, the names.
pub fn load(pem: &Path) -> Result<Provided, ProvidedError> {
    let text = std::fs::read(pem).map_err(|e| ProvidedError::Io(pem.to_owned(), e))?;
    let chain = super::certs::pem_chain(&text)
        .map_err(|e| ProvidedError::CertPem(pem.to_owned(), e.to_string()))?;
    if chain.is_empty() {
        return Err(ProvidedError::NoCertificate(pem.to_owned()));
    }
    // The key in the combined PEM, else the one beside it (HAProxy's order).
    let (key, key_file) = match PrivateKeyDer::from_pem_slice(&text) {
        Ok(k) => (k, pem.to_owned()),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            let kp = key_path(pem);
            let key_text = match std::fs::read(&kp) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ProvidedError::NoKey(pem.to_owned(), kp))
                }
                Err(e) => return Err(ProvidedError::Io(kp, e)),
            };
            check_key_file(&kp)?;
            match PrivateKeyDer::from_pem_slice(&key_text) {
                Ok(k) => (k, kp),
                Err(_) => return Err(ProvidedError::BadKey(kp)),
            }
        }
        Err(_) => return Err(ProvidedError::BadKey(pem.to_owned())),
    };
    if key_file == pem {
        check_key_file(pem)?;
    }
    if let Some(why) = unserved(&key) {
        return Err(ProvidedError::UnservedKey(key_file, why));
    }
    let signing =
        super::certs::signing_key(key).map_err(|_| ProvidedError::BadKey(key_file.clone()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // aws-lc-rs's keys all know their public half; "unknown" cannot happen,
        // and would not be a reason to refuse.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(ProvidedError::KeyMismatch(pem.to_owned(), key_file)),
    }
    let names: Vec<String> = super::validity::dns_names(certified.cert[0].as_ref())
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    if names.is_empty() {
        return Err(ProvidedError::NoNames(pem.to_owned()));
    }
    Ok(Provided {
        key: Arc::new(certified),
        names,
        key_file,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("moirai-own-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn cert(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let c = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (c.pem(), key.serialize_pem())
    }

    fn write(p: &Path, text: &str, mode: u32) {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn combined_pem_or_key_beside_it() {
        let d = scratch("ok");
        let (c, k) = cert(&["A.test", "*.b.test"]);
        write(&d.join("one.pem"), &format!("{c}{k}"), 0o600);
        let p = load(&d.join("one.pem")).unwrap();
        assert_eq!(p.names, ["a.test", "*.b.test"]);
        assert_eq!(p.key_file, d.join("one.pem"));
        // A public chain may be world-readable when the key is beside it.
        write(&d.join("two.pem"), &c, 0o644);
        write(&d.join("two.key"), &k, 0o400);
        let p = load(&d.join("two.pem")).unwrap();
        assert_eq!(p.key_file, d.join("two.key"));
        assert!(!p.leaf().is_empty());
    }

    #[test]
    fn bad_files_are_refused_with_the_file_and_the_reason() {
        let d = scratch("bad");
        let (c, k) = cert(&["a.test"]);
        let (_, other) = cert(&["a.test"]);
        let pem = d.join("x.pem");
        write(&pem, "garbage\n", 0o600);
        let e = load(&pem).unwrap_err();
        assert!(matches!(e, ProvidedError::NoCertificate(_)), "{e}");
        assert!(e.to_string().starts_with(&pem.display().to_string()));
        write(&pem, &c, 0o644);
        assert!(matches!(load(&pem), Err(ProvidedError::NoKey(..))));
        write(&d.join("x.key"), &other, 0o600);
        let e = load(&pem).unwrap_err();
        assert!(matches!(e, ProvidedError::KeyMismatch(..)), "{e}");
        write(&d.join("x.key"), &k, 0o640);
        let e = load(&pem).unwrap_err();
        assert!(matches!(e, ProvidedError::KeyNotPrivate(_, 0o640)), "{e}");
        assert!(!e.to_string().contains("PRIVATE KEY"));
        write(
            &d.join("x.key"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            0o600,
        );
        let e = load(&pem).unwrap_err();
        assert!(matches!(e, ProvidedError::BadKey(_)), "{e}");
        // The combined file holds the key: it must be private itself.
        write(&pem, &format!("{c}{k}"), 0o644);
        assert!(matches!(load(&pem), Err(ProvidedError::KeyNotPrivate(..))));
        let (c, k) = cert(&[]);
        write(&pem, &format!("{c}{k}"), 0o600);
        assert!(matches!(load(&pem), Err(ProvidedError::NoNames(_))));
    }

    #[test]
    fn large_rsa_and_p521_keys_are_refused_with_the_reason() {
        let d = scratch("unserved");
        // A P-521 certificate with its own key: it would sign, and match.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let c = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = d.join("p521.pem");
        write(&pem, &format!("{}{}", c.pem(), key.serialize_pem()), 0o600);
        let e = load(&pem).unwrap_err();
        assert!(
            matches!(e, ProvidedError::UnservedKey(_, Unserved::P521)),
            "{e}"
        );
        assert!(e.to_string().contains("P-521"), "{e}");
        // The same refusal for a key in SEC1 form ("EC PRIVATE KEY").
        let sec1 = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/p521-sec1.key"));
        assert!(matches!(sec1, Ok(PrivateKeyDer::Sec1(_))));
        assert_eq!(unserved(&sec1.unwrap()), Some(Unserved::P521));

        // An 8192-bit RSA key (a test key, generated for this test alone;
        // generating one here would take seconds). The refusal comes
        // before the match with the certificate, so any leaf will do.
        let (c, _) = cert(&["a.test"]);
        let pem = d.join("rsa.pem");
        write(&pem, &c, 0o644);
        write(
            &d.join("rsa.key"),
            include_str!("testdata/rsa8192.key"),
            0o600,
        );
        let e = load(&pem).unwrap_err();
        assert!(
            matches!(e, ProvidedError::UnservedKey(_, Unserved::LargeRsa(8192))),
            "{e}"
        );
        assert!(!e.to_string().contains("PRIVATE KEY"));

        // What is served stays served: P-256 (rcgen's default), P-384,
        // and RSA of exactly the largest size.
        let (c, k) = cert(&["a.test"]);
        write(&pem, &format!("{c}{k}"), 0o600);
        assert!(load(&pem).is_ok());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let rsa4096 = rcgen::KeyPair::from_pem(include_str!("testdata/rsa4096.key")).unwrap();
        for key in [p384, rsa4096] {
            let c = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            write(&pem, &format!("{}{}", c.pem(), key.serialize_pem()), 0o600);
            let p = load(&pem);
            assert!(p.is_ok(), "{:?}: {:?}", key.algorithm(), p.err());
        }
    }

    #[test]
    fn only_pem_files_that_are_not_dotfiles_count() {
        assert!(is_cert_file(Path::new("/s/certs/site.pem")));
        assert!(!is_cert_file(Path::new("/s/certs/site.key")));
        assert!(!is_cert_file(Path::new("/s/certs/.site.pem")));
        assert!(!is_cert_file(Path::new("/s/certs/site.pem.tmp")));
    }
}
