//! The verifier of `https` backends, as Moirai configures HAProxy (`ssl
//! verify required ca-file ...`, no `verifyhost`): the chain must lead to a
//! trusted root and be valid now, the name is not required to match.
//! Backends reached by a CNS name commonly present a certificate for their
//! public name; refusing them would turn every such service into 503s.
//!
//! A name that does not match is recorded (by server name, with the names
//! the certificate presents), so the control thread can log it once and
//! `moirai status` can show it. `verify_host:NAME` in the portmap asks for
//! the strict check instead (the standard verifier, with NAME as SNI).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::danger::AcceptAnyServerCert;

/// Server names whose certificate did not carry them: name → the names
/// the certificate presents. Written by handshakes (workers, checks), read
/// by the control thread.
#[derive(Debug, Default)]
pub struct NameMismatches(Mutex<BTreeMap<String, Vec<String>>>);

/// At most this many names are remembered; a portmap has far fewer.
const MAX_RECORDED: usize = 1024;

impl NameMismatches {
    fn record(&self, name: &ServerName<'_>, presented: Vec<String>) {
        // rustls gives the names as `DnsName("a.example")` or
        // `IpAddress(..)`; keep what is inside.
        let presented = presented
            .into_iter()
            .map(|p| {
                let inner = p.split_once('(').map_or(p.as_str(), |(_, v)| v);
                inner.trim_end_matches(')').trim_matches('"').to_owned()
            })
            .collect();
        let Ok(mut m) = self.0.lock() else { return };
        let key = name.to_str().into_owned();
        if m.len() < MAX_RECORDED || m.contains_key(&key) {
            m.insert(key, presented);
        }
    }

    /// What the certificate for `name` presented, if it did not match.
    pub fn get(&self, name: &str) -> Option<Vec<String>> {
        self.0.lock().ok()?.get(name).cloned()
    }

    /// Every mismatch seen so far.
    pub fn all(&self) -> Vec<(String, Vec<String>)> {
        self.0.lock().map_or_else(
            |_| Vec::new(),
            |m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )
    }
}

/// Verifies the chain and validity, not the name.
#[derive(Debug)]
pub struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    mismatches: Arc<NameMismatches>,
    /// Handshake signature checks, shared with `https+insecure`.
    signatures: AcceptAnyServerCert,
}

impl ChainOnly {
    /// A verifier trusting `roots`, recording names that do not match in
    /// `mismatches`.
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        mismatches: Arc<NameMismatches>,
    ) -> ChainOnly {
        ChainOnly {
            signatures: AcceptAnyServerCert::new(Arc::clone(&provider)),
            roots,
            provider,
            mismatches,
        }
    }
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        // The chain first, exactly as the standard verifier checks it.
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        match verify_server_name(&cert, server_name) {
            Ok(()) => {}
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            })) => self.mismatches.record(server_name, presented),
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                self.mismatches.record(server_name, Vec::new())
            }
            Err(e) => return Err(e),
        }
        Ok(ServerCertVerified::assertion())
    }

    // Handshake signatures: checked exactly as `https+insecure` checks
    // them (the key must match the certificate shown).
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}
