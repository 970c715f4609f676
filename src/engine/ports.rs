//! Maps keyed by a service port, hashed in one multiply. A worker looks
//! them up on every event (its balancing cursors) and every request (its
//! latency histograms); SipHash's resistance to chosen keys buys nothing
//! there, since the operator's metadata chooses the ports, and it cost a
//! hundred instructions a lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from a port.
pub type PortMap<V> = HashMap<u16, V, BuildHasherDefault<PortHasher>>;

/// Fibonacci hashing's multiplier (2^64 / φ): odd, so the low bits of a
/// product spread the low bits of the port, and the high bits mix all.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The hasher of [`PortMap`].
#[derive(Debug, Default, Clone, Copy)]
pub struct PortHasher(u64);

impl Hasher for PortHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(K);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn ports_hash_apart_in_the_bits_a_table_uses() {
        let b = BuildHasherDefault::<PortHasher>::default();
        let hashes: Vec<u64> = (0..1024u16).map(|p| b.hash_one(p)).collect();
        let mut low: Vec<u64> = hashes.iter().map(|h| h & 1023).collect();
        low.sort_unstable();
        low.dedup();
        assert_eq!(low.len(), 1024, "the low ten bits tell 1024 ports apart");
        let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(top.len() > 100, "the top seven bits vary: {}", top.len());
        let mut m = PortMap::default();
        m.insert(443u16, "https");
        m.insert(80, "http");
        assert_eq!(m.get(&443), Some(&"https"));
    }
}
