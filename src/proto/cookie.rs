//! The sticky-session cookie `CLOUD-TRITONCOMPUTE-RS` (HAProxy's `cookie
//! ... insert indirect nocache dynamic`), with the values Moirai's HAProxy
//! issues.
//!
//! Moirai gives each HTTP backend section a `dynamic-cookie-key`: Rust's
//! `DefaultHasher` (SipHash-1-3, zero keys) over its parsed `Service`
//! struct, printed as lower-case hex. HAProxy then names each server by
//! XXH64 (seed 0) of that key's text, the server's address (4 or 16 bytes)
//! and its port as a 32-bit big-endian number, printed as 16 hex digits.
//! Both steps are deterministic, so every balancer with the same metadata
//! issues and honours the same values, across restarts and across the
//! migration from Moirai itself.
//!
//! One difference on purpose: Moirai's key also hashes the health-check
//! parameters, so its users' `rise:3,fall:2` edit re-balanced every sticky
//! client. moirai issues the value of the key without them ([`Keys::issued`])
//! and still honours Moirai's full key ([`Keys::moirai`]) so clients that
//! come from Moirai keep their backend. For a service without parameters
//! the two are the same.
//!
//! The value is not a secret: anyone who knows the portmap can compute it,
//! as with Moirai. It only lets a client choose among the service's
//! current backends; a value that names none of them is re-balanced.

use std::hash::Hasher;
use std::net::SocketAddr;

use siphasher::sip::SipHasher13;

use crate::config::{BackendTarget, Service, ServiceKind};

/// The cookie's name, as Moirai sets it.
pub const COOKIE_NAME: &str = "CLOUD-TRITONCOMPUTE-RS";

/// A backend's cookie value: 16 lower-case hex digits.
pub type Value = [u8; 16];

/// The two `dynamic-cookie-key`s of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Without health-check parameters: the values moirai issues.
    pub issued: String,
    /// Exactly Moirai's key, parameters included: honoured too.
    pub moirai: String,
}

impl Keys {
    /// The keys of `service`.
    pub fn of(service: &Service) -> Keys {
        Keys {
            issued: moirai_key(service, false),
            moirai: moirai_key(service, true),
        }
    }
}

/// Moirai's `Service::dynamic_cookie_key()`: what `#[derive(Hash)]` feeds
/// `DefaultHasher` for its struct, field by field (enum and `Option`
/// discriminants as 8-byte `isize`, `u16` as 2 bytes, strings followed by
/// 0xff, all little-endian as on Triton's x86-64), then `{:x}`.
fn moirai_key(service: &Service, with_checks: bool) -> String {
    let mut h = SipHasher13::new_with_keys(0, 0);
    let discriminant = |h: &mut SipHasher13, d: i64| h.write(&d.to_le_bytes());
    let string = |h: &mut SipHasher13, s: &str| {
        h.write(s.as_bytes());
        h.write(&[0xff]);
    };
    let option_u16 = |h: &mut SipHasher13, v: Option<u16>| match v {
        None => discriminant(h, 0),
        Some(v) => {
            discriminant(h, 1);
            h.write(&v.to_le_bytes());
        }
    };
    // Moirai's `ServiceType` declares its variants in this order.
    let kind = match service.kind {
        ServiceKind::Http => 0,
        ServiceKind::Https => 1,
        ServiceKind::HttpsInsecure => 2,
        ServiceKind::HttpsHttp => 3,
        ServiceKind::Tcp => 4,
        ServiceKind::TcpProxyV2 => 5,
    };
    discriminant(&mut h, kind);
    h.write(&service.listen.get().to_le_bytes());
    // The backend name as Moirai splits it out of the entry. Names are
    // compared lower-case here, so a name written with capitals gives a
    // different key than in Moirai (documented in docs/COMPATIBILITY.md).
    let name = match &service.backend {
        BackendTarget::Ip(a) => match a {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        },
        BackendTarget::Dns { name, .. } | BackendTarget::Srv { name } => name.to_string(),
    };
    string(&mut h, &name);
    option_u16(&mut h, service.backend.port());
    let c = &service.check;
    match c.path.as_ref().filter(|_| with_checks) {
        None => discriminant(&mut h, 0),
        Some(p) => {
            discriminant(&mut h, 1);
            string(&mut h, p.written());
        }
    }
    let (port, rise, fall) = if with_checks {
        (
            c.port.map(|p| p.get()),
            c.rise.map(|n| n.get()),
            c.fall.map(|n| n.get()),
        )
    } else {
        (None, None, None)
    };
    option_u16(&mut h, port);
    option_u16(&mut h, rise);
    option_u16(&mut h, fall);
    format!("{:x}", h.finish())
}

/// HAProxy's dynamic cookie for a server at `backend` under `key`
/// (`srv_set_dyncookie`): XXH64 of key, address and port, `%016llx`.
pub fn value(key: &str, backend: SocketAddr) -> Value {
    let mut buf = Vec::with_capacity(key.len() + 16 + 4);
    buf.extend_from_slice(key.as_bytes());
    match backend {
        SocketAddr::V4(a) => buf.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => buf.extend_from_slice(&a.ip().octets()),
    }
    buf.extend_from_slice(&u32::from(backend.port()).to_be_bytes());
    let v = xxhash_rust::xxh64::xxh64(&buf, 0);
    let mut out = [0u8; 16];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::portmap::parse_entry;
    use std::hash::{DefaultHasher, Hash};

    /// Moirai's own struct, field for field (`src/lib.rs`), hashed the way
    /// its binary does: the reference for [`moirai_key`].
    #[allow(dead_code)]
    #[derive(Hash)]
    enum MoiraiType {
        Http,
        Https,
        HttpsInsecure,
        HttpsHttp,
        Tcp,
        TcpProxyV2,
    }

    #[derive(Hash)]
    struct MoiraiService {
        service_type: MoiraiType,
        listen_port: u16,
        backend_name: String,
        backend_port: Option<u16>,
        http_check_endpoint: Option<String>,
        check_port: Option<u16>,
        check_rise: Option<u16>,
        check_fall: Option<u16>,
    }

    fn reference(m: &MoiraiService) -> String {
        let mut h = DefaultHasher::new();
        m.hash(&mut h);
        format!("{:x}", h.finish())
    }

    #[test]
    fn keys_equal_what_moirai_computes() {
        let cases = [
            (
                "https-http://443:web.svc.example.cns.tritoncompute:8080{check:/healthz}",
                MoiraiService {
                    service_type: MoiraiType::HttpsHttp,
                    listen_port: 443,
                    backend_name: "web.svc.example.cns.tritoncompute".into(),
                    backend_port: Some(8080),
                    http_check_endpoint: Some("/healthz".into()),
                    check_port: None,
                    check_rise: None,
                    check_fall: None,
                },
            ),
            (
                "http://80:api.example.com{check:status,port:9000,rise:3,fall:2}",
                MoiraiService {
                    service_type: MoiraiType::Http,
                    listen_port: 80,
                    backend_name: "api.example.com".into(),
                    backend_port: None,
                    http_check_endpoint: Some("status".into()),
                    check_port: Some(9000),
                    check_rise: Some(3),
                    check_fall: Some(2),
                },
            ),
            (
                "https+insecure://8443:10.0.0.5:443{rise:2}",
                MoiraiService {
                    service_type: MoiraiType::HttpsInsecure,
                    listen_port: 8443,
                    backend_name: "10.0.0.5".into(),
                    backend_port: Some(443),
                    http_check_endpoint: None,
                    check_port: None,
                    check_rise: Some(2),
                    check_fall: None,
                },
            ),
        ];
        for (text, mut m) in cases {
            let keys = Keys::of(&parse_entry(text).unwrap());
            assert_eq!(keys.moirai, reference(&m), "{text}");
            m.http_check_endpoint = None;
            m.check_port = None;
            m.check_rise = None;
            m.check_fall = None;
            assert_eq!(keys.issued, reference(&m), "{text}");
        }
    }

    #[test]
    fn health_parameters_do_not_change_the_issued_key() {
        let a = Keys::of(&parse_entry("http://80:w.example:8080{check:/h}").unwrap());
        let b = Keys::of(&parse_entry("http://80:w.example:8080{check:/h,rise:3,fall:2}").unwrap());
        let c = Keys::of(&parse_entry("http://80:w.example:8080").unwrap());
        assert_eq!(a.issued, b.issued);
        assert_eq!(a.issued, c.issued);
        assert_eq!(c.issued, c.moirai);
        assert_ne!(a.moirai, b.moirai);
        let other = Keys::of(&parse_entry("http://81:w.example:8080").unwrap());
        assert_ne!(other.issued, c.issued);
    }

    #[test]
    fn values_are_hex_and_differ_by_backend() {
        let a: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        let c: SocketAddr = "[2001:db8::1]:8080".parse().unwrap();
        assert_eq!(value("k", a), value("k", a));
        assert_ne!(value("k", a), value("k", b));
        assert_ne!(value("k", a), value("k", c));
        assert_ne!(value("k", a), value("j", a));
        assert!(value("k", a)
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
