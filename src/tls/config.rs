//! rustls configurations for the three TLS service types.
//!
//! The provider is aws-lc-rs: its X25519 (s2n-bignum's) is what a full
//! handshake spends most on, and it does it in less than half ring's time
//! (docs/ARCHITECTURE.md, TLS). Suites are Mozilla's "intermediate" set:
//! TLS 1.3's three, and for TLS 1.2 only ECDHE with AES-GCM or
//! ChaCha20-Poly1305. Key exchange is X25519, P-256 and P-384 as the
//! intermediate set has it (and today's image's OpenSSL 3.0): not
//! aws-lc-rs's default X25519MLKEM768 hybrid first, which a client
//! offering it would get at about a quarter more CPU per handshake
//! (`benches/tls-providers`) and a ServerHello 1.1 KiB larger.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::ResolvesServerCert;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::TlsError;

/// Sessions remembered for resumption by id (TLS 1.2 and stateful 1.3).
const SESSION_CACHE: usize = 16 * 1024;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737), offered by every
/// TLS service and answered only with a challenge certificate.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// aws-lc-rs with the intermediate suites and key exchange groups.
pub fn provider() -> Arc<CryptoProvider> {
    use aws_lc_rs::cipher_suite as cs;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![
            aws_lc_rs::kx_group::X25519,
            aws_lc_rs::kx_group::SECP256R1,
            aws_lc_rs::kx_group::SECP384R1,
        ],
        ..aws_lc_rs::default_provider()
    })
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The server side of every TLS service: certificates from `certs` (by
/// SNI), ALPN `h2` then `http/1.1`, resumption by ticket and by session
/// cache.
pub fn server(certs: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    // `acme-tls/1` is only ever chosen by a client that offers nothing
    // else: the CA validating TLS-ALPN-01 (see `certs::CertStore`).
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    c.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    c.ticketer = aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(c))
}

/// `server` without HTTP/2 (a service's `h2:off`): the same certificates,
/// tickets and session cache, ALPN `http/1.1` only.
pub fn without_h2(server: &ServerConfig) -> Arc<ServerConfig> {
    let mut c = server.clone();
    c.alpn_protocols.retain(|p| p != b"h2");
    Arc::new(c)
}

/// The backend side of `https`, as Moirai has it: chains verified against
/// `roots`, names not required to match (recorded in `mismatches`).
pub fn chain_verified_client(
    roots: Arc<RootCertStore>,
    mismatches: Arc<super::chain::NameMismatches>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let p = provider();
    let mut c = ClientConfig::builder_with_provider(Arc::clone(&p))
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::chain::ChainOnly::new(
            roots, p, mismatches,
        )))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// The backend side of `https` with `verify_host:NAME`: chains verified
/// against `roots` and the certificate must be for the name given.
pub fn verified_client(roots: Arc<RootCertStore>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// The backend side of `https+insecure`: encrypted, not authenticated.
pub fn insecure_client() -> Result<Arc<ClientConfig>, TlsError> {
    let p = provider();
    let mut c = ClientConfig::builder_with_provider(Arc::clone(&p))
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::danger::AcceptAnyServerCert::new(p)))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// The system trust store: `--ca-file`, else the platform's bundle.
pub fn default_ca_file() -> &'static str {
    if cfg!(target_os = "illumos") {
        "/opt/local/share/mozilla-rootcerts/cacert.pem"
    } else {
        "/etc/ssl/certs/ca-certificates.crt"
    }
}

/// Every certificate in a PEM bundle, as trust anchors. Certificates that
/// do not parse are skipped (bundles carry oddities); none at all is an
/// error.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Pem(path.to_owned(), e.to_string()))?
        .filter_map(Result::ok)
        .collect();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::Pem(
            path.to_owned(),
            "no usable CA certificate".to_owned(),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use rustls::NamedGroup;

    #[test]
    fn key_exchange_is_x25519_first_and_never_the_hybrid() {
        // aws-lc-rs's own default puts X25519MLKEM768 first in some
        // rustls versions and features: a quarter more CPU per handshake
        // than moirai means to spend (module docs).
        let groups: Vec<NamedGroup> = super::provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(
            groups,
            [
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]
        );
    }
}
