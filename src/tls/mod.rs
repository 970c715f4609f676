//! TLS: rustls configurations, the certificate store and its SNI resolver,
//! the self-signed fallback, and the one verifier that does not verify.
//!
//! - [`config`]: the crypto provider (aws-lc-rs) with Mozilla "intermediate"
//!   suites, TLS 1.2 and 1.3, ALPN `http/1.1`, session resumption (tickets
//!   and a cache); client configs for `https` (verified against a trust
//!   store) and `https+insecure`.
//! - [`certs`]: certificates by SNI, swapped atomically for every worker
//!   at once; PEM loading; the persisted self-signed P-256 certificate.
//! - [`provided`]: the operator's own certificates (`STATE_DIR/certs`),
//!   read and judged (key privacy, key against leaf, names).
//! - [`chain`]: the `https` verifier: chain and validity, not the name (as
//!   Moirai's HAProxy), with names that did not match recorded.
//! - [`danger`]: the `https+insecure` verifier, named for what it is.
//!
//! rustls has no renegotiation at all, which is the point.

pub mod certs;
pub mod chain;
pub mod config;
pub mod danger;
pub mod provided;
pub mod validity;

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why TLS material could not be set up.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read or written.
    Io(PathBuf, io::Error),
    /// A file holds no usable PEM certificate or key.
    Pem(PathBuf, String),
    /// rustls refused the configuration or the key.
    Rustls(rustls::Error),
    /// Certificate generation failed.
    Generate(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            TlsError::Pem(p, why) => write!(f, "{}: {why}", p.display()),
            TlsError::Rustls(e) => write!(f, "TLS: {e}"),
            TlsError::Generate(e) => write!(f, "cannot generate a certificate: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}
