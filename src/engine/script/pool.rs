//! The idle pool, scripted: a pooled connection back in service with
//! fresh counts, one made under one service's TLS rules never serving
//! another's, and an idle TLS connection with a record on its way never
//! handed on; and a clean connection the pool lets go closed with a
//! reset, not a FIN.

use super::http::Http;
use super::*;
use crate::snapshot::BackendTls;

/// The pool keeps the whole connection; taken back into service it counts
/// into the taker's meter from zero, writable as it was parked.
#[test]
fn a_pooled_connection_resumes_with_fresh_counts() {
    use crate::engine::conn::Conn;
    use crate::engine::meter::Meter;
    use std::io::IoSlice;

    let mut t = Http::new(false);
    let svc = t.h.service();
    let backend = &svc.backends[0];
    let wire = Script::connected();
    let mut conn = Conn::new(wire.clone(), t.h.now, Meter::backend(backend, 0));
    conn.note(Readiness::BOTH);
    assert!(conn.send(&[IoSlice::new(b"abc")], t.h.now).progressed());
    assert_eq!(conn.bytes(), (0, 3));
    let addr: SocketAddr = B1.parse().unwrap();
    assert!(t.h.idle.put(&mut t.h.net, addr, conn, t.h.now));
    t.h.later(Duration::from_secs(1));
    let conn = t.h.idle.take(addr, None, t.h.now).expect("pooled");
    let conn = conn.resume(t.h.now, Meter::backend(backend, 0));
    assert_eq!(conn.bytes(), (0, 0));
    assert!(conn.is_writable());
    assert_eq!(conn.last_io(), t.h.now);
    assert_eq!(wire.seen(), "abc", "the same socket");
}

/// A clean connection the pool does not keep (its route full) or gives up
/// (too old, its backend gone) is closed with a reset: no FIN exchange,
/// no TIME_WAIT holding an ephemeral port on our side. One it keeps is
/// not touched.
#[test]
fn connections_the_pool_lets_go_are_reset() {
    use crate::engine::conn::Conn;
    use crate::engine::meter::Meter;
    use crate::engine::pool::{IDLE_TIMEOUT, MAX_IDLE_PER_BACKEND};

    let mut h = Harness::new("http://80:backend.example:8080", false);
    let svc = h.service();
    let backend = &svc.backends[0];
    let addr: SocketAddr = B1.parse().unwrap();
    let conn = |h: &Harness, wire: &Script| {
        let mut c = Conn::new(wire.clone(), h.now, Meter::backend(backend, 0));
        c.note(Readiness::BOTH);
        c
    };
    let kept: Vec<Script> = (0..MAX_IDLE_PER_BACKEND)
        .map(|_| Script::connected())
        .collect();
    for w in &kept {
        let c = conn(&h, w);
        assert!(h.idle.put(&mut h.net, addr, c, h.now));
    }
    let extra = Script::connected();
    let c = conn(&h, &extra);
    assert!(!h.idle.put(&mut h.net, addr, c, h.now), "the route is full");
    assert!(extra.0.borrow().reset, "let go with a reset");
    assert!(
        kept.iter().all(|w| !w.0.borrow().reset),
        "kept ones untouched"
    );

    // Too old: given up by the sweep, and when found by a take.
    h.later(IDLE_TIMEOUT);
    h.idle.expire(h.now);
    assert!(h.idle.is_empty());
    assert!(
        kept.iter().all(|w| w.0.borrow().reset),
        "every swept one reset"
    );
    let old = Script::connected();
    let c = conn(&h, &old);
    assert!(h.idle.put(&mut h.net, addr, c, h.now));
    h.later(IDLE_TIMEOUT);
    assert!(h.idle.take(addr, None, h.now).is_none());
    assert!(old.0.borrow().reset, "one a take finds too old reset");

    // Its backend gone.
    let gone = Script::connected();
    let c = conn(&h, &gone);
    assert!(h.idle.put(&mut h.net, addr, c, h.now));
    h.idle.retain_backends(|a| a != addr);
    assert!(h.idle.is_empty() && gone.0.borrow().reset);
}

/// A client configuration that trusts nothing: enough to make a
/// backend TLS connection that never completes its handshake.
fn client_config() -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    )
}

/// A service's backend TLS: `config` for `name`.
fn backend_tls(config: &Arc<rustls::ClientConfig>, name: &str) -> Arc<BackendTls> {
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    Arc::new(BackendTls::new(Arc::clone(config), name))
}

/// A backend TLS connection on `wire`, made in `tls`.
fn tls_conn(h: &Harness, wire: Script, tls: &Arc<BackendTls>) -> crate::engine::conn::Conn<Script> {
    use crate::engine::conn::Conn;
    use crate::engine::meter::Meter;
    let svc = h.service();
    let c = rustls::ClientConnection::new(Arc::clone(&tls.config), tls.name.clone()).unwrap();
    Conn::new(wire, h.now, Meter::backend(&svc.backends[0], 0))
        .with_backend_tls(c.into(), Arc::clone(tls))
}

/// A pooled connection serves only requests made under the rules it was
/// made under: the same address, plain or the same TLS configuration and
/// name. One verified under one service's rules never serves another's.
#[test]
fn a_pooled_connection_serves_only_its_own_rules() {
    let mut h = Harness::new("http://80:backend.example:8080", false);
    let addr: SocketAddr = B1.parse().unwrap();
    let (strict, insecure) = (client_config(), client_config());
    let ours = backend_tls(&strict, "api.example.com");
    let conn = tls_conn(&h, Script::connected(), &ours);
    assert!(h.idle.put(&mut h.net, addr, conn, h.now));
    let b2: SocketAddr = B2.parse().unwrap();
    let (other_rules, other_name) = (
        backend_tls(&insecure, "api.example.com"),
        backend_tls(&strict, "other.example.com"),
    );
    for (to, stranger) in [
        (addr, None),
        (addr, Some(&*other_rules)),
        (addr, Some(&*other_name)),
        (b2, Some(&*ours)),
    ] {
        assert!(
            h.idle.take(to, stranger, h.now).is_none(),
            "{to} {stranger:?}"
        );
    }
    // The next snapshot rebuilds the service's backend TLS from the same
    // configuration and name: still the same rules.
    let rebuilt = backend_tls(&strict, "api.example.com");
    assert!(h.idle.take(addr, Some(&rebuilt), h.now).is_some());
    // A plain connection serves plain requests only.
    let plain = crate::engine::conn::Conn::new(
        Script::connected(),
        h.now,
        crate::engine::meter::Meter::backend(&h.service().backends[0], 0),
    );
    assert!(h.idle.put(&mut h.net, addr, plain, h.now));
    assert!(h.idle.take(addr, Some(&*ours), h.now).is_none());
}

/// An idle TLS connection with part of a record on the wire is not given
/// out: what the record is shows only once it is whole, and a response
/// in it would answer the next client.
#[test]
fn an_idle_tls_connection_with_a_record_on_its_way_is_not_taken() {
    use crate::engine::conn::IdleState;

    let mut h = Harness::new("http://80:backend.example:8080", false);
    let addr: SocketAddr = B1.parse().unwrap();
    let tls = backend_tls(&client_config(), "api.example.com");
    // Through the pool: the connection with half a record is not taken,
    // a quiet one of the same rules is.
    let (arriving, quiet) = (Script::connected(), Script::connected());
    let quiet_conn = tls_conn(&h, quiet, &tls);
    assert!(h.idle.put(&mut h.net, addr, quiet_conn, h.now));
    let arriving_conn = tls_conn(&h, arriving.clone(), &tls);
    assert!(h.idle.put(&mut h.net, addr, arriving_conn, h.now));
    arriving.push(&[23, 3, 3, 0, 100]);
    arriving.push(&[0xaa; 10]);
    let taken = h.idle.take(addr, Some(&tls), h.now).expect("the quiet one");
    assert_eq!(h.idle.len(), 0, "the arriving one was dropped, not kept");
    drop(taken);
    assert_eq!(Rc::strong_count(&arriving.0), 1, "its socket is closed");

    // The states, one by one.
    let wire = Script::connected();
    let mut conn = tls_conn(&h, wire.clone(), &tls);
    conn.note(Readiness::BOTH);
    assert_eq!(conn.idle_state(), IdleState::Quiet);
    // A record header announcing 100 bytes, and 10 of them.
    wire.push(&[23, 3, 3, 0, 100]);
    wire.push(&[0xaa; 10]);
    conn.note(Readiness::BOTH);
    assert_eq!(conn.idle_state(), IdleState::Arriving);
    // Its end: not a record this connection can take.
    wire.push(&[0xaa; 90]);
    conn.note(Readiness::BOTH);
    assert_eq!(conn.idle_state(), IdleState::Unfit);
}
