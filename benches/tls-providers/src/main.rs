//! ring vs aws-lc-rs in rustls: handshakes per second (both ends, in
//! memory) and bulk AES-128-GCM throughput. See docs/ARCHITECTURE.md, TLS.
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

fn pump(c: &mut rustls::ClientConnection, s: &mut rustls::ServerConnection) {
    let mut buf = Vec::new();
    loop {
        let mut moved = false;
        while c.wants_write() { buf.clear(); c.write_tls(&mut buf).unwrap(); let mut r = &buf[..]; while !r.is_empty() { s.read_tls(&mut r).unwrap(); s.process_new_packets().unwrap(); } moved = true; }
        while s.wants_write() { buf.clear(); s.write_tls(&mut buf).unwrap(); let mut r = &buf[..]; while !r.is_empty() { c.read_tls(&mut r).unwrap(); c.process_new_packets().unwrap(); } moved = true; }
        if !moved { break; }
    }
}

fn run(name: &str, p: CryptoProvider) {
    let p = Arc::new(p);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["bench.test".to_owned()]).unwrap().self_signed(&key).unwrap();
    let certs = vec![CertificateDer::from(cert.der().to_vec())];
    let pk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let sc = Arc::new(rustls::ServerConfig::builder_with_provider(p.clone()).with_protocol_versions(&[&rustls::version::TLS13]).unwrap().with_no_client_auth().with_single_cert(certs.clone(), pk).unwrap());
    let mut roots = rustls::RootCertStore::empty(); roots.add(certs[0].clone()).unwrap();
    let mut ccfg = rustls::ClientConfig::builder_with_provider(p.clone()).with_protocol_versions(&[&rustls::version::TLS13]).unwrap().with_root_certificates(roots).with_no_client_auth();
    ccfg.resumption = rustls::client::Resumption::disabled();
    let cc = Arc::new(ccfg);
    let n = 2000;
    let t = Instant::now();
    // Server-side cost only is what a balancer pays; measure both sides together and the server alone is ~half.
    for _ in 0..n {
        let mut c = rustls::ClientConnection::new(cc.clone(), ServerName::try_from("bench.test").unwrap()).unwrap();
        let mut s = rustls::ServerConnection::new(sc.clone()).unwrap();
        pump(&mut c, &mut s);
        assert!(!c.is_handshaking());
    }
    let hs = n as f64 / t.elapsed().as_secs_f64();
    let mut c = rustls::ClientConnection::new(cc.clone(), ServerName::try_from("bench.test").unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(sc.clone()).unwrap();
    pump(&mut c, &mut s);
    let chunk = vec![7u8; 16 * 1024];
    let total = 512usize << 20;
    let mut out = vec![0u8; 16 * 1024];
    let t = Instant::now();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut sent = 0;
    while sent < total {
        s.writer().write_all(&chunk).unwrap();
        buf.clear(); while s.wants_write() { s.write_tls(&mut buf).unwrap(); }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap(); c.process_new_packets().unwrap();
            while let Ok(k) = c.reader().read(&mut out) { if k == 0 { break; } }
        }
        sent += chunk.len();
    }
    let gbps = total as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9;
    println!("| {name} | {hs:.0} | {gbps:.2} |");
}

fn main() {
    println!("| provider | TLS 1.3 handshakes/s (client+server, ECDSA P-256, X25519) | AES-128-GCM encrypt+decrypt Gbit/s |");
    println!("|---|---|---|");
    for _ in 0..2 {
        run("ring", rustls::crypto::ring::default_provider());
        run("aws-lc-rs", rustls::crypto::aws_lc_rs::default_provider());
    }
}
