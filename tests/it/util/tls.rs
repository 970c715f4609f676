//! A TLS client for tests that checks which certificate moirai serves:
//! it accepts any, records each leaf, and never resumes a session (a
//! resumed handshake would show no certificate).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use super::{local, SECS};

/// A TLS stream to moirai.
pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A rustls client that accepts any certificate and records the leaf.
#[derive(Debug)]
pub struct Record(
    pub std::sync::Mutex<Vec<Vec<u8>>>,
    pub Arc<rustls::crypto::CryptoProvider>,
);

impl rustls::client::danger::ServerCertVerifier for Record {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.0.lock().unwrap().push(end_entity.to_vec());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

pub fn client_config(record: Arc<Record>) -> Arc<rustls::ClientConfig> {
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(record)
    .with_no_client_auth();
    // Fresh handshakes every time: resumption would skip the certificate.
    c.resumption = rustls::client::Resumption::disabled();
    Arc::new(c)
}

/// One HTTPS GET on a TLS stream; true on `200` with body `W`.
pub fn get(tls: &mut Tls) -> bool {
    if tls.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").is_err() {
        return false;
    }
    // The response is small: read until the body (1 byte, "W") arrives.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nW") {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

pub fn connect(config: &Arc<rustls::ClientConfig>, port: u16, sni: &str) -> Option<Tls> {
    let sock = TcpStream::connect(local(port)).ok()?;
    sock.set_read_timeout(Some(SECS(10))).ok()?;
    // An IP address as the name: rustls then sends no SNI at all.
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).ok()?;
    let conn = rustls::ClientConnection::new(Arc::clone(config), name).ok()?;
    Some(rustls::StreamOwned::new(conn, sock))
}

/// The leaf a client gets from `port` for `sni` ("127.0.0.1": no SNI).
pub fn leaf_for(port: u16, sni: &str) -> Vec<u8> {
    let record = Arc::new(Record(
        Default::default(),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    ));
    let config = client_config(Arc::clone(&record));
    let mut s = connect(&config, port, sni).expect("a TLS connection");
    assert!(get(&mut s), "https through {sni}");
    let leaf = record.0.lock().unwrap().last().cloned().unwrap();
    leaf
}

/// A new recording client's connection to `port` for `sni`, and its record.
pub fn connect_recording(port: u16, sni: &str) -> (Tls, Arc<Record>) {
    let record = Arc::new(Record(
        Default::default(),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    ));
    let config = client_config(Arc::clone(&record));
    let tls = connect(&config, port, sni).expect("a TLS connection");
    (tls, record)
}
