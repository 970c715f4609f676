//! ring vs aws-lc-rs in rustls: full TLS 1.3 handshakes (both ends in
//! memory, the server's share timed apart: it is what a balancer pays)
//! and bulk AES-128-GCM throughput. See docs/ARCHITECTURE.md, TLS.
//!
//! Each provider offers moirai's key exchange groups (X25519, P-256,
//! P-384, in that order), so both do the same work; aws-lc-rs's own
//! default, X25519MLKEM768 first, is measured beside them. The group the
//! handshakes agreed on is printed, so a table never compares two
//! different key exchanges unawares.
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// Moves records between the two ends until neither has any to send;
/// `server` collects the time spent in the server's calls.
fn pump(
    c: &mut rustls::ClientConnection,
    s: &mut rustls::ServerConnection,
    server: &mut Duration,
) {
    let mut buf = Vec::new();
    loop {
        let mut moved = false;
        while c.wants_write() {
            buf.clear();
            c.write_tls(&mut buf).unwrap();
            let t = Instant::now();
            let mut r = &buf[..];
            while !r.is_empty() {
                s.read_tls(&mut r).unwrap();
                s.process_new_packets().unwrap();
            }
            *server += t.elapsed();
            moved = true;
        }
        while s.wants_write() {
            buf.clear();
            let t = Instant::now();
            s.write_tls(&mut buf).unwrap();
            *server += t.elapsed();
            let mut r = &buf[..];
            while !r.is_empty() {
                c.read_tls(&mut r).unwrap();
                c.process_new_packets().unwrap();
            }
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

fn run(name: &str, p: CryptoProvider) {
    let p = Arc::new(p);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["bench.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let certs = vec![CertificateDer::from(cert.der().to_vec())];
    let pk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let sc = Arc::new(
        rustls::ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs.clone(), pk)
            .unwrap(),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).unwrap();
    let mut ccfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ccfg.resumption = rustls::client::Resumption::disabled();
    let cc = Arc::new(ccfg);
    let name_of = || ServerName::try_from("bench.test").unwrap();

    let n = 2000;
    let mut server = Duration::ZERO;
    let mut group = None;
    let t = Instant::now();
    for _ in 0..n {
        let mut c = rustls::ClientConnection::new(cc.clone(), name_of()).unwrap();
        let mut s = rustls::ServerConnection::new(sc.clone()).unwrap();
        pump(&mut c, &mut s, &mut server);
        assert!(!c.is_handshaking());
        group = s.negotiated_key_exchange_group().map(|g| g.name());
    }
    let hs = n as f64 / t.elapsed().as_secs_f64();
    let server_us = server.as_secs_f64() * 1e6 / n as f64;

    let mut c = rustls::ClientConnection::new(cc.clone(), name_of()).unwrap();
    let mut s = rustls::ServerConnection::new(sc.clone()).unwrap();
    pump(&mut c, &mut s, &mut Duration::default());
    let chunk = vec![7u8; 16 * 1024];
    let total = 512usize << 20;
    let mut out = vec![0u8; 16 * 1024];
    let t = Instant::now();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut sent = 0;
    while sent < total {
        s.writer().write_all(&chunk).unwrap();
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
            while let Ok(k) = c.reader().read(&mut out) {
                if k == 0 {
                    break;
                }
            }
        }
        sent += chunk.len();
    }
    let gbps = total as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9;
    let group = group.map_or("-".to_owned(), |g| format!("{g:?}"));
    println!("| {name} | {group} | {hs:.0} | {server_us:.1} | {gbps:.2} |");
}

/// `p` offering moirai's groups (src/tls/config.rs), in its order, as
/// `p` names them.
fn moirai_groups(p: CryptoProvider) -> CryptoProvider {
    use rustls::NamedGroup;
    let order = [
        NamedGroup::X25519,
        NamedGroup::secp256r1,
        NamedGroup::secp384r1,
    ];
    let kx_groups = order
        .iter()
        .map(|want| *p.kx_groups.iter().find(|g| g.name() == *want).unwrap())
        .collect();
    CryptoProvider { kx_groups, ..p }
}

// rustls deprecates ring's default provider for its want of post-quantum
// groups; it is what this table compares against.
#[allow(deprecated)]
fn main() {
    use rustls::crypto::{aws_lc_rs, ring};
    println!(
        "| provider | group agreed | TLS 1.3 handshakes/s (both ends, ECDSA P-256) \
         | server µs per handshake | AES-128-GCM encrypt+decrypt Gbit/s |"
    );
    println!("|---|---|---|---|---|");
    for _ in 0..2 {
        run("ring", moirai_groups(ring::default_provider()));
        run("aws-lc-rs", moirai_groups(aws_lc_rs::default_provider()));
        run("aws-lc-rs, its default groups", aws_lc_rs::default_provider());
    }
}
