//! Every portmap and metadata example of the user guide
//! (`shared/seeds/000_27e87b408113dacd.txt`) parses as the guide says.

use moirai::config::{keys, Config, Metadata, ServiceKind};

/// What the guide says an example runs.
struct Expect {
    kind: ServiceKind,
    listen: u16,
    backend: &'static str,
    port: Option<u16>,
    check: Option<&'static str>,
    check_port: Option<u16>,
    rise: u16,
    fall: u16,
}

const fn svc(kind: ServiceKind, listen: u16, backend: &'static str, port: Option<u16>) -> Expect {
    Expect {
        kind,
        listen,
        backend,
        port,
        check: None,
        check_port: None,
        rise: 2,
        fall: 1,
    }
}

const fn checked(mut e: Expect, path: &'static str) -> Expect {
    e.check = Some(path);
    e
}

struct Case {
    what: &'static str,
    metadata: &'static [(&'static str, &'static str)],
    services: Vec<Expect>,
    check: fn(&Config),
}

const WEB_ACCT_UUID: &str = "web.svc.account_uuid.datacenter.cns.provider.zone";
const WEB: &str = "web.svc.acct.dc.cns.provider.zone";
const WEB_ACCOUNT: &str = "web.svc.account.dc.cns.provider.zone";

fn cases() -> Vec<Case> {
    use ServiceKind::*;
    let nothing: fn(&Config) = |_| {};
    vec![
        Case {
            what: "Quick Start: basic HTTP load balancer",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "http://80:web.svc.ACCOUNT_UUID.DATACENTER.cns.PROVIDER.zone:8080"),
            ],
            services: vec![svc(Http, 80, WEB_ACCT_UUID, Some(8080))],
            check: nothing,
        },
        Case {
            what: "Portmap syntax: multiple services separated by commas",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCT.DC.cns.PROVIDER.zone:8080{check:/healthz},http://80:web.svc.ACCT.DC.cns.PROVIDER.zone:8080"),
            ],
            services: vec![checked(svc(HttpsHttp, 443, WEB, Some(8080)), "/healthz"), svc(Http, 80, WEB, Some(8080))],
            check: nothing,
        },
        Case {
            what: "Health check parameters: {check:/healthz,port:9000,rise:2,fall:1}",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "http://80:web.svc.ACCT.DC.cns.PROVIDER.zone:8080{check:/healthz,port:9000,rise:2,fall:1}"),
            ],
            services: vec![Expect {
                check_port: Some(9000),
                ..checked(svc(Http, 80, WEB, Some(8080)), "/healthz")
            }],
            check: nothing,
        },
        Case {
            what: "DNS resolution: A record with explicit port",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "http://80:web.svc.ACCT.DC.cns.PROVIDER.zone:8080"),
            ],
            services: vec![svc(Http, 80, WEB, Some(8080))],
            check: |c| assert_eq!(c.services()[0].backend.resolve_mode(), "a"),
        },
        Case {
            what: "DNS resolution: SRV record (auto port)",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "http://80:web.svc.ACCT.DC.cns.PROVIDER.zone"),
            ],
            services: vec![svc(Http, 80, WEB, None)],
            check: |c| assert_eq!(c.services()[0].backend.resolve_mode(), "srv"),
        },
        Case {
            what: "HTTP with health check",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "http://80:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz}"),
            ],
            services: vec![checked(svc(Http, 80, WEB_ACCOUNT, Some(8080)), "/healthz")],
            check: nothing,
        },
        Case {
            what: "HTTPS with TLS termination (Let's Encrypt)",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz}"),
                ("cloud.tritoncompute:certificate_name", "example.com,www.example.com"),
            ],
            services: vec![checked(svc(HttpsHttp, 443, WEB_ACCOUNT, Some(8080)), "/healthz")],
            check: |c| {
                let names: Vec<_> = c.certificate_names().iter().map(|n| n.as_str()).collect();
                assert_eq!(names, ["example.com", "www.example.com"]);
            },
        },
        Case {
            what: "HTTP + HTTPS (redirect pattern)",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz},http://80:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080"),
            ],
            services: vec![
                checked(svc(HttpsHttp, 443, WEB_ACCOUNT, Some(8080)), "/healthz"),
                svc(Http, 80, WEB_ACCOUNT, Some(8080)),
            ],
            check: nothing,
        },
        Case {
            what: "TCP load balancing (database)",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "tcp://5432:postgres.svc.ACCOUNT.DC.cns.PROVIDER.zone:5432"),
            ],
            services: vec![svc(Tcp, 5432, "postgres.svc.account.dc.cns.provider.zone", Some(5432))],
            check: nothing,
        },
        Case {
            what: "With metrics and logging",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz}"),
                ("cloud.tritoncompute:certificate_name", "example.com"),
                ("cloud.tritoncompute:metrics_acl", "10.0.0.0/8 172.16.0.0/12"),
                ("cloud.tritoncompute:metrics_port", "9090"),
                ("cloud.tritoncompute:syslog", "logs.internal.company.net:514"),
            ],
            services: vec![checked(svc(HttpsHttp, 443, WEB_ACCOUNT, Some(8080)), "/healthz")],
            check: |c| {
                let m = c.metrics().expect("metrics enabled by metrics_acl");
                assert_eq!(m.port, 9090);
                let acl: Vec<_> = m.acl.iter().map(ToString::to_string).collect();
                assert_eq!(acl, ["10.0.0.0/8", "172.16.0.0/12"]);
                assert_eq!(c.syslog().unwrap().to_string(), "logs.internal.company.net:514");
                assert_eq!(c.certificate_names()[0].as_str(), "example.com");
            },
        },
        Case {
            what: "High availability: LB 1 and LB 2 (identical)",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz}"),
                ("cloud.tritoncompute:certificate_name", "example.com"),
            ],
            services: vec![checked(svc(HttpsHttp, 443, WEB_ACCOUNT, Some(8080)), "/healthz")],
            check: nothing,
        },
        Case {
            what: "Updating configuration: rise and fall",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz,rise:3,fall:2}"),
            ],
            services: vec![Expect {
                rise: 3,
                fall: 2,
                ..checked(svc(HttpsHttp, 443, WEB_ACCOUNT, Some(8080)), "/healthz")
            }],
            check: nothing,
        },
        Case {
            what: "Add certificate",
            metadata: &[("cloud.tritoncompute:loadbalancer", "true"), ("cloud.tritoncompute:certificate_name", "newdomain.com")],
            services: vec![],
            check: |c| assert_eq!(c.certificate_names()[0].as_str(), "newdomain.com"),
        },
        Case {
            what: "Replace all metadata",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz}"),
                ("cloud.tritoncompute:certificate_name", "example.com,www.example.com"),
                ("cloud.tritoncompute:metrics_acl", "10.0.0.0/8"),
            ],
            services: vec![checked(svc(HttpsHttp, 443, WEB_ACCOUNT, Some(8080)), "/healthz")],
            check: |c| {
                assert_eq!(c.metrics().unwrap().port, 8405, "default metrics port");
                assert_eq!(c.certificate_names().len(), 2);
            },
        },
        Case {
            what: "Increasing the backend limit",
            metadata: &[("cloud.tritoncompute:loadbalancer", "true"), ("cloud.tritoncompute:max_rs", "100")],
            services: vec![],
            check: |c| assert_eq!(c.max_rs(), 100),
        },
        Case {
            what: "Complete example: web application with TLS",
            metadata: &[
                ("cloud.tritoncompute:loadbalancer", "true"),
                ("cloud.tritoncompute:portmap", "https-http://443:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080{check:/healthz},http://80:web.svc.ACCOUNT.DC.cns.PROVIDER.zone:8080"),
                ("cloud.tritoncompute:certificate_name", "example.com"),
            ],
            services: vec![
                checked(svc(HttpsHttp, 443, WEB_ACCOUNT, Some(8080)), "/healthz"),
                svc(Http, 80, WEB_ACCOUNT, Some(8080)),
            ],
            check: |c| {
                assert_eq!(c.max_rs(), 32, "default max_rs");
                assert!(c.metrics().is_none(), "no metrics without metrics_acl");
                assert!(c.syslog().is_none());
            },
        },
    ]
}

#[test]
fn every_guide_example_parses_as_documented() {
    for case in cases() {
        let md: Metadata = case
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (config, mut errors) = Config::from_metadata(&md);
        // An example that only adds a key to a running configuration
        // (a certificate) has no portmap of its own: that alone is said.
        if !md.contains_key(moirai::config::keys::PORTMAP) {
            errors
                .warnings
                .retain(|w| w.reason != moirai::config::Reason::EmptyPortmap);
        }
        assert!(errors.is_empty(), "{}: {errors:?}", case.what);
        assert!(config.enabled(), "{}", case.what);
        assert_eq!(
            config.services().len(),
            case.services.len(),
            "{}",
            case.what
        );
        for (s, e) in config.services().iter().zip(&case.services) {
            assert_eq!(s.kind, e.kind, "{}", case.what);
            assert_eq!(s.listen.get(), e.listen, "{}", case.what);
            assert_eq!(s.backend.host(), e.backend, "{}", case.what);
            assert_eq!(s.backend.port(), e.port, "{}", case.what);
            assert_eq!(
                s.check.path.as_ref().map(|p| p.as_str()),
                e.check,
                "{}",
                case.what
            );
            assert_eq!(s.check.port.map(|p| p.get()), e.check_port, "{}", case.what);
            assert_eq!(
                (s.check.rise(), s.check.fall()),
                (e.rise, e.fall),
                "{}",
                case.what
            );
        }
        (case.check)(&config);
    }
}

#[test]
fn the_guide_requires_loadbalancer_true() {
    let md: Metadata = [(
        keys::PORTMAP.to_owned(),
        "http://80:web.example:8080".to_owned(),
    )]
    .into_iter()
    .collect();
    let (config, errors) = Config::from_metadata(&md);
    assert!(errors.is_empty());
    assert!(config.services().is_empty());
}
