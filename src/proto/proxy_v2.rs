//! The PROXY protocol v2 preface (HAProxy's `send-proxy-v2`): a binary
//! header, written before any payload, telling the backend who the client
//! really is. Layout per the spec: 12-byte signature, version/command,
//! family/transport, big-endian length, then source address, destination
//! address, source port, destination port.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The fixed signature that opens every v2 header.
pub const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// The largest header this module writes (TCP over IPv6, no TLVs).
pub const MAX_LEN: usize = 16 + 36;

const VERSION_PROXY: u8 = 0x21;
const VERSION_LOCAL: u8 = 0x20;

/// The header of a connection the balancer makes on its own behalf (a
/// health check): command LOCAL, no addresses (family UNSPEC, length 0),
/// so the receiver uses the connection's own, as HAProxy's checks of a
/// `send-proxy-v2` server do.
pub const LOCAL: [u8; 16] = [
    0x0D,
    0x0A,
    0x0D,
    0x0A,
    0x00,
    0x0D,
    0x0A,
    0x51,
    0x55,
    0x49,
    0x54,
    0x0A,
    VERSION_LOCAL,
    0x00,
    0x00,
    0x00,
];
const TCP_OVER_IPV4: u8 = 0x11;
const TCP_OVER_IPV6: u8 = 0x21;

/// A preface, built on the stack (no allocation per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Header {
    /// The header bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Builds the header for a TCP connection from `client` to `local` (the
/// listener's address as the client reached it). IPv4-mapped IPv6 addresses
/// (what a dual-stack listener reports for IPv4 clients) are sent as IPv4;
/// if the two families still differ, both are sent as IPv6.
pub fn encode(client: SocketAddr, local: SocketAddr) -> Header {
    let (src, dst) = (client.ip().to_canonical(), local.ip().to_canonical());
    let mut h = Header {
        bytes: [0; MAX_LEN],
        len: 0,
    };
    h.bytes[..12].copy_from_slice(&SIGNATURE);
    h.bytes[12] = VERSION_PROXY;
    let body = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.bytes[13] = TCP_OVER_IPV4;
            h.bytes[16..20].copy_from_slice(&s.octets());
            h.bytes[20..24].copy_from_slice(&d.octets());
            12
        }
        (s, d) => {
            h.bytes[13] = TCP_OVER_IPV6;
            h.bytes[16..32].copy_from_slice(&v6(s).octets());
            h.bytes[32..48].copy_from_slice(&v6(d).octets());
            36
        }
    };
    h.bytes[14..16].copy_from_slice(&(body as u16).to_be_bytes());
    let ports = 16 + body - 4;
    h.bytes[ports..ports + 2].copy_from_slice(&client.port().to_be_bytes());
    h.bytes[ports + 2..ports + 4].copy_from_slice(&local.port().to_be_bytes());
    h.len = 16 + body;
    h
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Parses a v2 header at the start of `buf`, as a backend would: returns the
/// source and destination and the header length, or None if `buf` does not
/// start with a complete, well-formed TCP header. Used by tests and the
/// loadtest backend.
pub fn decode(buf: &[u8]) -> Option<(SocketAddr, SocketAddr, usize)> {
    if buf.len() < 16 || buf[..12] != SIGNATURE || buf[12] != VERSION_PROXY {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let body = buf.get(16..16 + len)?;
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match buf[13] {
        TCP_OVER_IPV4 if len >= 12 => {
            let s: [u8; 4] = body[0..4].try_into().ok()?;
            let d: [u8; 4] = body[4..8].try_into().ok()?;
            Some((
                SocketAddr::from((s, port(&body[8..]))),
                SocketAddr::from((d, port(&body[10..]))),
                16 + len,
            ))
        }
        TCP_OVER_IPV6 if len >= 36 => {
            let s: [u8; 16] = body[0..16].try_into().ok()?;
            let d: [u8; 16] = body[16..32].try_into().ok()?;
            Some((
                SocketAddr::from((s, port(&body[32..]))),
                SocketAddr::from((d, port(&body[34..]))),
                16 + len,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_byte_exact() {
        let h = encode(
            "192.0.2.1:56324".parse().unwrap(),
            "198.51.100.7:443".parse().unwrap(),
        );
        let want: Vec<u8> = [
            &SIGNATURE[..],
            &[0x21, 0x11, 0x00, 0x0C],
            &[192, 0, 2, 1],
            &[198, 51, 100, 7],
            &56324u16.to_be_bytes(),
            &443u16.to_be_bytes(),
        ]
        .concat();
        assert_eq!(h.as_bytes(), &want[..]);
    }

    #[test]
    fn ipv6_is_byte_exact() {
        let h = encode(
            "[2001:db8::1]:1000".parse().unwrap(),
            "[2001:db8::2]:80".parse().unwrap(),
        );
        let mut want = SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]);
        want.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        want.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        want.extend_from_slice(&1000u16.to_be_bytes());
        want.extend_from_slice(&80u16.to_be_bytes());
        assert_eq!(h.as_bytes(), &want[..]);
        assert_eq!(h.as_bytes().len(), 52);
    }

    #[test]
    fn mapped_ipv4_from_a_dual_stack_listener_is_sent_as_ipv4() {
        let h = encode(
            "[::ffff:127.0.0.1]:5000".parse().unwrap(),
            "[::ffff:127.0.0.2]:80".parse().unwrap(),
        );
        assert_eq!(h.as_bytes()[13], 0x11);
        let (s, d, n) = decode(h.as_bytes()).unwrap();
        assert_eq!(s, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(d, "127.0.0.2:80".parse().unwrap());
        assert_eq!(n, 28);
    }

    #[test]
    fn mixed_families_become_ipv6() {
        let h = encode(
            "10.0.0.1:1".parse().unwrap(),
            "[2001:db8::2]:2".parse().unwrap(),
        );
        let (s, _, _) = decode(h.as_bytes()).unwrap();
        assert_eq!(s, "[::ffff:10.0.0.1]:1".parse().unwrap());
    }

    #[test]
    fn the_local_header_is_the_signature_and_no_addresses() {
        assert_eq!(LOCAL[..12], SIGNATURE);
        assert_eq!(LOCAL[12] >> 4, 2, "version 2");
        assert_eq!(LOCAL[12] & 0xf, 0, "command LOCAL");
        assert_eq!(&LOCAL[13..], &[0, 0, 0], "UNSPEC, no address block");
    }

    #[test]
    fn decode_refuses_short_or_foreign_input() {
        let h = encode("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        assert!(decode(&h.as_bytes()[..20]).is_none());
        assert!(decode(b"GET / HTTP/1.1\r\n\r\n").is_none());
    }
}
