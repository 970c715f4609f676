//! Property tests: printed configurations parse back to the same value, and
//! no input makes a parser panic.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU16;

use moirai::config::portmap::{
    self, BackendTarget, CheckPath, Count, HealthCheck, HostName, Service, ServiceKind,
};
use moirai::config::{keys, timeouts, Config, Metadata};
use moirai::metadata::protocol;
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = ServiceKind> {
    prop::sample::select(ServiceKind::ALL.to_vec())
}

fn host() -> impl Strategy<Value = HostName> {
    prop::collection::vec("[a-z][a-z0-9_-]{0,10}[a-z0-9]", 1..5)
        .prop_map(|labels| HostName::parse(&labels.join(".")).unwrap())
}

fn port() -> impl Strategy<Value = NonZeroU16> {
    (1u16..=65535).prop_map(|p| NonZeroU16::new(p).unwrap())
}

fn backend() -> impl Strategy<Value = BackendTarget> {
    prop_oneof![
        (any::<[u8; 4]>(), port())
            .prop_map(|(a, p)| BackendTarget::Ip(SocketAddr::from((Ipv4Addr::from(a), p.get())))),
        (any::<[u8; 16]>(), port())
            .prop_map(|(a, p)| BackendTarget::Ip(SocketAddr::from((Ipv6Addr::from(a), p.get())))),
        (host(), port()).prop_map(|(name, port)| BackendTarget::Dns { name, port }),
        host().prop_map(|name| BackendTarget::Srv { name }),
    ]
}

fn check() -> impl Strategy<Value = HealthCheck> {
    (
        // Paths with and without their leading '/' (Moirai takes both).
        prop::option::of("/?[!-z|~]{1,20}"),
        prop::option::of(port()),
        prop::option::of(1u16..=u16::MAX),
        prop::option::of(1u16..=u16::MAX),
    )
        .prop_map(|(path, port, rise, fall)| HealthCheck {
            path: path.and_then(|p| CheckPath::parse(&p)),
            port,
            rise: rise.and_then(Count::new),
            fall: fall.and_then(Count::new),
        })
}

fn service() -> impl Strategy<Value = Service> {
    (
        kind(),
        port(),
        backend(),
        check(),
        port(),
        any::<bool>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(kind, listen, backend, check, to, redirect, net)| {
            let http = kind == ServiceKind::Http;
            Service {
                kind,
                listen,
                backend,
                check,
                verify_host: None,
                // moirai's own parameters where they apply, so printing
                // them back is checked too.
                redirect: (http && redirect).then_some(to),
                trust_forwarded: if http {
                    let v4 = std::net::Ipv4Addr::from(net);
                    vec![
                        moirai::config::IpPrefix::parse(&format!("{v4}/24")).unwrap(),
                        moirai::config::IpPrefix::parse("2001:db8::/32").unwrap(),
                    ]
                } else {
                    Vec::new()
                },
                h2: !(http && redirect),
            }
        })
}

proptest! {
    #[test]
    fn printed_portmaps_parse_back_to_the_same_services(
        services in prop::collection::vec(service(), 1..8),
        seps in prop::collection::vec(prop::sample::select(vec![",", " ", "\n", ", ", "\n\n"]), 8),
        upper in any::<bool>(),
    ) {
        let mut text = String::new();
        for (i, s) in services.iter().enumerate() {
            if i > 0 {
                text.push_str(seps[i]);
            }
            let entry = s.to_string();
            // Types are case-insensitive.
            let entry = if upper {
                let (t, rest) = entry.split_once("://").unwrap();
                format!("{}://{rest}", t.to_uppercase())
            } else {
                entry
            };
            text.push_str(&entry);
        }
        let (parsed, errors) = portmap::parse(&text);
        prop_assert!(errors.iter().all(|e| e.is_warning()), "{text}: {errors:?}");
        let parsed: Vec<Service> = parsed.into_iter().map(|(_, s)| s).collect();
        prop_assert_eq!(parsed, services);
    }

    #[test]
    fn timeouts_print_and_parse_back(c in 1u64..3_600_000, s in 1u64..3_600_000, k in 1u64..86_400_000, q in 0u64..86_400_000) {
        let text = format!("{{connect:{k},client:{c}ms,server:{s},queue:{q}}}");
        let (t, e) = timeouts::parse(&text);
        prop_assert!(e.is_empty());
        prop_assert_eq!(timeouts::parse(&t.to_metadata()).0, t);
    }

    #[test]
    fn arbitrary_portmaps_never_panic(s in "\\PC{0,200}") {
        let (services, errors) = portmap::parse(&s);
        for e in &errors {
            prop_assert!(e.offset <= s.len());
        }
        prop_assert!(services.len() + errors.len() <= s.len());
    }

    #[test]
    fn portmap_shaped_garbage_never_panics(s in "[a-zA-Z0-9:/{}\\[\\],. +_-]{0,120}") {
        let _ = portmap::parse(&s);
    }

    #[test]
    fn arbitrary_metadata_never_panics(values in prop::collection::vec("\\PC{0,60}", keys::ALL.len())) {
        let md: Metadata = keys::ALL.iter().zip(values).map(|(k, v)| (k.to_string(), v)).collect();
        let _ = Config::from_metadata(&md);
    }

    #[test]
    fn arbitrary_frames_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = protocol::decode_response(&b);
    }
}
