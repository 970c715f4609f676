//! The sticky-session cookie `CLOUD-TRITONCOMPUTE-RS` (HAProxy's `cookie
//! ... insert indirect nocache`). Its value is opaque: 16 hex digits of a
//! keyed SipHash of the backend's address, so it names a backend without
//! revealing it, and the key (per instance, kept in the state directory)
//! makes values unforgeable across balancers.

use std::hash::Hasher;
use std::net::SocketAddr;

use siphasher::sip::SipHasher24;

/// The cookie's name, as Moirai sets it.
pub const COOKIE_NAME: &str = "CLOUD-TRITONCOMPUTE-RS";

/// A per-instance secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieKey(pub [u8; 16]);

/// The cookie value for `backend`.
pub fn value(key: &CookieKey, backend: SocketAddr) -> [u8; 16] {
    let mut h = SipHasher24::new_with_key(&key.0);
    match backend {
        SocketAddr::V4(a) => {
            h.write(&a.ip().octets());
            h.write_u16(a.port());
        }
        SocketAddr::V6(a) => {
            h.write(&a.ip().octets());
            h.write_u16(a.port());
        }
    }
    let v = h.finish();
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

    #[test]
    fn opaque_stable_and_keyed() {
        let k1 = CookieKey([1; 16]);
        let k2 = CookieKey([2; 16]);
        let a: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        assert_eq!(value(&k1, a), value(&k1, a));
        assert_ne!(value(&k1, a), value(&k1, b));
        assert_ne!(value(&k1, a), value(&k2, a));
        let v = value(&k1, a);
        assert!(v.iter().all(u8::is_ascii_hexdigit));
        assert!(!std::str::from_utf8(&v).unwrap().contains("10.0.0.1"));
    }
}
