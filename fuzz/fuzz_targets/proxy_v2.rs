//! PROXY v2: every header we encode decodes (ours and the `ppp` crate's
//! decoder) to the same addresses; arbitrary bytes never panic our decoder.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use moirai::proto::proxy_v2;

fuzz_target!(|input: (bool, [u8; 16], u16, [u8; 16], u16, &[u8])| {
    let (v6, a, ap, b, bp, junk) = input;
    let (client, local) = if v6 {
        (
            SocketAddr::from((Ipv6Addr::from(a), ap)),
            SocketAddr::from((Ipv6Addr::from(b), bp)),
        )
    } else {
        (
            SocketAddr::from((Ipv4Addr::new(a[0], a[1], a[2], a[3]), ap)),
            SocketAddr::from((Ipv4Addr::new(b[0], b[1], b[2], b[3]), bp)),
        )
    };
    let h = proxy_v2::encode(client, local);
    let bytes = h.as_bytes();
    // By design, IPv4-mapped IPv6 addresses (a dual-stack listener's IPv4
    // clients) go out as IPv4 when both ends are IPv4 underneath, and as
    // IPv6 (mapped) when the families still differ.
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let as_v6 = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v4) => SocketAddr::from((v4.to_ipv6_mapped(), a.port())),
        _ => a,
    };
    let (client, local) = match (canon(client), canon(local)) {
        (c, l) if c.is_ipv4() && l.is_ipv4() => (c, l),
        (c, l) => (as_v6(c), as_v6(l)),
    };
    assert_eq!(proxy_v2::decode(bytes), Some((client, local, bytes.len())));
    let reference = ppp::v2::Header::try_from(bytes).expect("ppp decodes ours");
    match reference.addresses {
        ppp::v2::Addresses::IPv4(x) => {
            assert_eq!(SocketAddr::from((x.source_address, x.source_port)), client);
            assert_eq!(
                SocketAddr::from((x.destination_address, x.destination_port)),
                local
            );
        }
        ppp::v2::Addresses::IPv6(x) => {
            assert_eq!(SocketAddr::from((x.source_address, x.source_port)), client);
            assert_eq!(
                SocketAddr::from((x.destination_address, x.destination_port)),
                local
            );
        }
        other => panic!("ppp read {other:?}"),
    }
    if let Some((_, _, n)) = proxy_v2::decode(junk) {
        assert!(n <= junk.len());
    }
});
