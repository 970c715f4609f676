//! Which ACME challenge can work here, and how often a failed validation
//! may be tried again: pure decisions, without I/O. `moirai check`
//! reports the plan; the manager thread (`acme.rs`) follows it.
//!
//! Which challenge: [`plan`]. With `--acme-challenge auto` (the default),
//! TLS-ALPN-01 when a TLS service listens on 443, HTTP-01 when an `http`
//! service listens on 80, otherwise dns-01; when a TLS-ALPN-01 or HTTP-01
//! validation fails (it may have reached the other balancer of an HA
//! pair), the next attempt uses dns-01.
//!
//! Failed validations count against the CA's limits (Let's Encrypt: 5
//! per name, account and hour), so after one the next try waits at least
//! [`VALIDATION_BACKOFF`], doubling, and never more than
//! [`MAX_FAILED_PER_HOUR`] fail in any hour ([`validation_window`]). A
//! switch of method is tried at once: it is a different question, not a
//! retry.

use std::time::{Duration, Instant};

/// How a challenge is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// In the TLS handshake of a TLS service (port 443 in production).
    TlsAlpn01,
    /// On the `http` listener (port 80 in production).
    Http01,
    /// As a TXT record published by CNS from instance metadata.
    Dns01,
}

impl ChallengeKind {
    /// The name ACME and `--acme-challenge` use.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
        }
    }
}

impl std::fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--acme-challenge`: chosen by the configuration, or one method only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeChoice {
    /// TLS-ALPN-01 on 443, else HTTP-01 on 80, else dns-01; dns-01 after a
    /// failed validation of the others.
    Auto,
    /// Always this one (tests on high ports, or an operator's choice).
    Only(ChallengeKind),
}

impl std::str::FromStr for ChallengeChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<ChallengeChoice, String> {
        Ok(match s {
            "auto" => ChallengeChoice::Auto,
            "tls-alpn-01" => ChallengeChoice::Only(ChallengeKind::TlsAlpn01),
            "http-01" => ChallengeChoice::Only(ChallengeKind::Http01),
            "dns-01" => ChallengeChoice::Only(ChallengeKind::Dns01),
            _ => return Err(format!("{s:?} is not auto, tls-alpn-01, http-01 or dns-01")),
        })
    }
}

impl std::fmt::Display for ChallengeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChallengeChoice::Auto => f.write_str("auto"),
            ChallengeChoice::Only(k) => k.fmt(f),
        }
    }
}

/// The challenges an order tries: `first`, then `fallback` after a failed
/// validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Tried first.
    pub first: ChallengeKind,
    /// Tried after `first` fails validation.
    pub fallback: Option<ChallengeKind>,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.first)?;
        if let Some(b) = self.fallback {
            write!(f, ", then {b} if validation fails")?;
        }
        Ok(())
    }
}

/// Which challenges can work for `config` here: the listeners it has, and
/// whether the metadata source can write (dns-01). An error says why none
/// can.
pub fn plan(
    choice: ChallengeChoice,
    config: &crate::config::Config,
    metadata_writable: bool,
) -> Result<Plan, String> {
    use crate::config::ServiceKind;
    let services = config.services();
    let tls_on = |port: Option<u16>| {
        services
            .iter()
            .any(|s| s.kind.is_tls() && port.is_none_or(|p| s.listen.get() == p))
    };
    let http_on = |port: Option<u16>| {
        services
            .iter()
            .any(|s| s.kind == ServiceKind::Http && port.is_none_or(|p| s.listen.get() == p))
    };
    let dns = metadata_writable.then_some(ChallengeKind::Dns01);
    // A CA validates a wildcard name by dns-01 only (RFC 8555 §7.1.3):
    // no other challenge could ever succeed for the order.
    let wildcard = config
        .certificate_names()
        .iter()
        .find(|n| n.as_str().starts_with("*."));
    if let Some(w) = wildcard {
        return match (choice, metadata_writable) {
            (ChallengeChoice::Auto | ChallengeChoice::Only(ChallengeKind::Dns01), true) => {
                Ok(Plan {
                    first: ChallengeKind::Dns01,
                    fallback: None,
                })
            }
            (ChallengeChoice::Only(k), true) => Err(format!(
                "--acme-challenge {k} cannot work: the wildcard name {w} is validated by dns-01 only"
            )),
            (_, false) => Err(format!(
                "the wildcard name {w} is validated by dns-01 only, and the metadata source cannot write"
            )),
        };
    }
    match choice {
        ChallengeChoice::Auto => {
            let first = if tls_on(Some(443)) {
                Some(ChallengeKind::TlsAlpn01)
            } else if http_on(Some(80)) {
                Some(ChallengeKind::Http01)
            } else {
                None
            };
            match (first, dns) {
                (Some(first), fallback) => Ok(Plan { first, fallback }),
                (None, Some(d)) => Ok(Plan {
                    first: d,
                    fallback: None,
                }),
                (None, None) => Err(
                    "no ACME challenge can work: no TLS service on port 443 (tls-alpn-01), no http service on port 80 (http-01), and the metadata source cannot write (dns-01)"
                        .to_owned(),
                ),
            }
        }
        ChallengeChoice::Only(k) => {
            let ok = match k {
                ChallengeKind::TlsAlpn01 => tls_on(None),
                ChallengeKind::Http01 => http_on(None),
                ChallengeKind::Dns01 => metadata_writable,
            };
            if ok {
                Ok(Plan {
                    first: k,
                    fallback: None,
                })
            } else {
                Err(format!(
                    "--acme-challenge {k} cannot work: {}",
                    match k {
                        ChallengeKind::TlsAlpn01 => "no TLS service",
                        ChallengeKind::Http01 => "no http service",
                        ChallengeKind::Dns01 => "the metadata source cannot write",
                    }
                ))
            }
        }
    }
}

/// The first retry after a failed validation, doubled up to an hour.
pub const VALIDATION_BACKOFF: Duration = Duration::from_secs(300);
/// Failed validations allowed in any hour (Let's Encrypt allows 5 per
/// name, account and hour).
pub const MAX_FAILED_PER_HOUR: usize = 4;
/// The window [`MAX_FAILED_PER_HOUR`] counts failures in.
pub const HOUR: Duration = Duration::from_secs(3600);

/// When the next order may start after a failed validation at `now`,
/// given the recent failures (oldest first, all within the last hour,
/// this one included): at most [`MAX_FAILED_PER_HOUR`] in any hour.
pub fn validation_window(failed: &[Instant], now: Instant) -> Option<Instant> {
    (failed.len() >= MAX_FAILED_PER_HOUR)
        .then(|| failed[failed.len() - MAX_FAILED_PER_HOUR] + HOUR)
        .filter(|t| *t > now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{keys, Config, Metadata};

    fn config(portmap: &str) -> Config {
        let md: Metadata = [
            (keys::LOADBALANCER.to_owned(), "true".to_owned()),
            (keys::PORTMAP.to_owned(), portmap.to_owned()),
        ]
        .into_iter()
        .collect();
        Config::from_metadata(&md).0
    }

    #[test]
    fn a_wildcard_name_goes_straight_to_dns_01() {
        let with_names = |names: &str| {
            let md: Metadata = [
                (keys::LOADBALANCER.to_owned(), "true".to_owned()),
                (
                    keys::PORTMAP.to_owned(),
                    "https-http://443:a.example:80 http://80:a.example:80".to_owned(),
                ),
                (keys::CERTIFICATE_NAME.to_owned(), names.to_owned()),
            ]
            .into_iter()
            .collect();
            Config::from_metadata(&md).0
        };
        let dns_only = Ok(Plan {
            first: ChallengeKind::Dns01,
            fallback: None,
        });
        let auto = ChallengeChoice::Auto;
        // With TLS on 443 and http on 80, a plain name takes tls-alpn-01;
        // one wildcard among the names takes dns-01 for the order.
        let plain = with_names("example.com");
        assert_eq!(
            plan(auto, &plain, true).unwrap().first,
            ChallengeKind::TlsAlpn01
        );
        let wild = with_names("example.com, *.example.com");
        assert_eq!(plan(auto, &wild, true), dns_only);
        let only = ChallengeChoice::Only(ChallengeKind::Dns01);
        assert_eq!(plan(only, &wild, true), dns_only);
        for k in [ChallengeKind::TlsAlpn01, ChallengeKind::Http01] {
            let e = plan(ChallengeChoice::Only(k), &wild, true).unwrap_err();
            assert!(
                e.contains("*.example.com") && e.contains("dns-01 only"),
                "{e}"
            );
        }
        let e = plan(auto, &wild, false).unwrap_err();
        assert!(e.contains("cannot write"), "{e}");
    }

    #[test]
    fn auto_picks_by_listener_and_falls_back_to_dns_01() {
        let auto = ChallengeChoice::Auto;
        let tls = config("https-http://443:a.example:80");
        assert_eq!(
            plan(auto, &tls, true),
            Ok(Plan {
                first: ChallengeKind::TlsAlpn01,
                fallback: Some(ChallengeKind::Dns01)
            })
        );
        assert_eq!(plan(auto, &tls, false).unwrap().fallback, None);
        let http = config("http://80:a.example:80 https-http://8443:a.example:80");
        assert_eq!(
            plan(auto, &http, true).unwrap().first,
            ChallengeKind::Http01
        );
        let both = config("http://80:a.example:80 https-http://443:a.example:80");
        assert_eq!(
            plan(auto, &both, true).unwrap().first,
            ChallengeKind::TlsAlpn01
        );
        let neither = config("https-http://8443:a.example:80");
        assert_eq!(
            plan(auto, &neither, true),
            Ok(Plan {
                first: ChallengeKind::Dns01,
                fallback: None
            })
        );
        assert!(plan(auto, &neither, false)
            .unwrap_err()
            .contains("no ACME challenge can work"));
    }

    #[test]
    fn explicit_choices_need_their_listener_or_a_writable_source() {
        let c = config("https-http://8443:a.example:80");
        let only = |k| ChallengeChoice::Only(k);
        assert_eq!(
            plan(only(ChallengeKind::TlsAlpn01), &c, false)
                .unwrap()
                .first,
            ChallengeKind::TlsAlpn01
        );
        assert!(plan(only(ChallengeKind::Http01), &c, true).is_err());
        assert!(plan(only(ChallengeKind::Dns01), &c, false).is_err());
        assert_eq!("auto".parse(), Ok(ChallengeChoice::Auto));
        assert!("tls-sni-01".parse::<ChallengeChoice>().is_err());
    }

    #[test]
    fn at_most_a_handful_of_failed_validations_an_hour() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let failed: Vec<Instant> = (0..3).map(|i| at(i * 60)).collect();
        assert_eq!(validation_window(&failed, at(180)), None);
        let failed: Vec<Instant> = (0..4).map(|i| at(i * 60)).collect();
        // The fifth may come only when the first is an hour old.
        assert_eq!(validation_window(&failed, at(180)), Some(at(3600)));
        assert_eq!(validation_window(&failed, at(3601)), None);
    }
}
