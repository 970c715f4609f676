//! Typed configuration from the `cloud.tritoncompute:*` metadata keys.
//!
//! Pure: no I/O. [`Config::from_metadata`] takes the raw key → value map a
//! metadata source read and returns a configuration that cannot hold an
//! invalid value, plus one [`ConfigError`] for every bad key or entry. The
//! valid parts always form the configuration, so one typo never takes the
//! other services down.

pub mod error;
pub mod hostname;
pub mod keys;
pub mod portmap;
pub mod service;
pub mod timeouts;

use std::collections::BTreeMap;

pub use error::{ConfigError, Reason};
pub use hostname::HostName;
pub use keys::{IpPrefix, SyslogHost, SyslogTarget};
pub use service::{BackendTarget, CheckPath, Count, HealthCheck, Service, ServiceKind};
pub use timeouts::Timeouts;

/// What parsing found wrong: errors (something was not applied) and
/// warnings (applied the way Moirai applies it, or the default used).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Problems that left a key or entry out.
    pub errors: Vec<ConfigError>,
    /// Inputs accepted as Moirai accepts them, with what was done.
    pub warnings: Vec<ConfigError>,
}

impl Diagnostics {
    /// Neither errors nor warnings.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.warnings.is_empty()
    }
}

/// Raw metadata: full key name → value, as a source read it.
pub type Metadata = BTreeMap<String, String>;

/// Where and to whom metrics are served; present only when `metrics_acl`
/// holds at least one valid prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricsConfig {
    /// TCP port, all addresses.
    pub port: u16,
    /// Peers allowed to scrape; everyone else gets 403.
    pub acl: Vec<IpPrefix>,
}

/// The whole configuration of one balancer instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    enabled: bool,
    services: Vec<Service>,
    max_rs: u16,
    certificate_names: Vec<HostName>,
    metrics: Option<MetricsConfig>,
    syslog: Option<SyslogTarget>,
    timeouts: Timeouts,
}

impl Default for Config {
    /// Disabled: what an instance without metadata runs.
    fn default() -> Self {
        Config {
            enabled: false,
            services: Vec::new(),
            max_rs: keys::MAX_RS_DEFAULT,
            certificate_names: Vec::new(),
            metrics: None,
            syslog: None,
            timeouts: Timeouts::default(),
        }
    }
}

impl Config {
    /// Builds the configuration from raw metadata. Every key is parsed even
    /// when `loadbalancer` is not `true`, so `moirai check` reports all
    /// problems at once; a disabled balancer simply runs no services.
    pub fn from_metadata(md: &Metadata) -> (Config, Diagnostics) {
        let get = |k: &str| md.get(k).map(String::as_str).unwrap_or("");
        let mut errors = Vec::new();

        let (enabled, e) = keys::parse_loadbalancer(get(keys::LOADBALANCER));
        errors.extend(e);

        errors.extend(unknown_keys(md));
        let (parsed, e) = portmap::parse(get(keys::PORTMAP));
        if parsed.is_empty() && e.is_empty() {
            errors.push(ConfigError {
                key: keys::PORTMAP.to_owned(),
                entry: None,
                offset: 0,
                text: get(keys::PORTMAP).to_owned(),
                reason: Reason::EmptyPortmap,
            });
        }
        errors.extend(e);
        let mut services: Vec<Service> = Vec::with_capacity(parsed.len());
        let mut first_on_port: BTreeMap<u16, usize> = BTreeMap::new();
        for (span, service) in parsed {
            let port = service.listen.get();
            if let Some(&first) = first_on_port.get(&port) {
                let text = &get(keys::PORTMAP)[span.start..span.end];
                // Point at the listen port, right after "TYPE://".
                let rel = text.find("://").map_or(0, |i| i + 3);
                errors.push(ConfigError {
                    key: keys::PORTMAP.to_owned(),
                    entry: Some(span.index),
                    offset: span.start + rel,
                    text: text.to_owned(),
                    reason: Reason::DuplicateListenPort(port, first),
                });
                continue;
            }
            first_on_port.insert(port, span.index);
            services.push(service);
        }

        let (max_rs, e) = keys::parse_max_rs(get(keys::MAX_RS));
        errors.extend(e);
        let (certificate_names, e) = keys::parse_certificate_names(get(keys::CERTIFICATE_NAME));
        errors.extend(e);
        let (acl, e) = keys::parse_metrics_acl(get(keys::METRICS_ACL));
        errors.extend(e);
        let (port, e) = keys::parse_metrics_port(get(keys::METRICS_PORT));
        errors.extend(e);
        let mut metrics = (!acl.is_empty()).then_some(MetricsConfig { port, acl });
        if let (Some(m), Some(&entry)) = (&metrics, first_on_port.get(&port)) {
            // Two listeners on one port would split connections between
            // them at random; the service keeps its port.
            let value = get(keys::METRICS_PORT);
            errors.push(ConfigError {
                key: keys::METRICS_PORT.to_owned(),
                entry: None,
                offset: value.len() - value.trim_start().len(),
                text: if value.trim().is_empty() {
                    m.port.to_string()
                } else {
                    value.to_owned()
                },
                reason: Reason::MetricsPortTaken(m.port, entry),
            });
            metrics = None;
        }
        let (syslog, e) = keys::parse_syslog(get(keys::SYSLOG));
        errors.extend(e);
        let (timeouts, e) = timeouts::parse(get(keys::TIMEOUTS));
        errors.extend(e);

        errors.sort_by_key(|e| {
            (
                // Unknown keys last, by name.
                keys::ALL
                    .iter()
                    .position(|k| *k == e.key)
                    .unwrap_or(keys::ALL.len()),
                (!keys::ALL.contains(&e.key.as_str())).then(|| e.key.clone()),
                e.entry,
                e.offset,
            )
        });
        let (warnings, errors) = errors.into_iter().partition(ConfigError::is_warning);
        let config = Config {
            enabled,
            services: if enabled { services } else { Vec::new() },
            max_rs,
            certificate_names,
            metrics,
            syslog,
            timeouts,
        };
        (config, Diagnostics { errors, warnings })
    }

    /// Whether `loadbalancer` is `true`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The services to run, in portmap order, listen ports all distinct
    /// (empty when disabled).
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Most backends used per service, 32..=1024.
    pub fn max_rs(&self) -> u16 {
        self.max_rs
    }

    /// Certificate names, the first being the CN; empty means self-signed.
    pub fn certificate_names(&self) -> &[HostName] {
        &self.certificate_names
    }

    /// The metrics endpoint, if `metrics_acl` enables it.
    pub fn metrics(&self) -> Option<&MetricsConfig> {
        self.metrics.as_ref()
    }

    /// Remote syslog target, if any.
    pub fn syslog(&self) -> Option<&SyslogTarget> {
        self.syslog.as_ref()
    }

    /// Connection timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }
}

/// A warning for each `cloud.tritoncompute:` key no balancer reads: the
/// usual one is a misspelt key, whose setting silently does nothing.
fn unknown_keys(md: &Metadata) -> Vec<ConfigError> {
    md.iter()
        .filter(|(k, _)| k.starts_with(keys::PREFIX) && !keys::ALL.contains(&k.as_str()))
        .map(|(k, v)| ConfigError {
            key: k.clone(),
            entry: None,
            offset: 0,
            text: v.clone(),
            reason: {
                let name = &k[keys::PREFIX.len()..];
                let known = keys::ALL.map(|k| &k[keys::PREFIX.len()..]);
                Reason::UnknownKey(name.to_owned(), error::closest(name, known))
            },
        })
        .collect()
}

/// Warnings for what moirai runs and Triton-Moirai would not: each of our
/// [`keys::EXTENSIONS`] the metadata uses, with what Moirai does instead.
/// Only valid entries and a valid `timeouts` count (what moirai refuses
/// itself is an error already). For `moirai check`: a balancer running
/// alone needs no reminder that its metadata is its own.
pub fn moirai_differences(md: &Metadata) -> Vec<ConfigError> {
    let get = |k: &str| md.get(k).map(String::as_str).unwrap_or("");
    let mut out = Vec::new();
    let text = get(keys::PORTMAP);
    for (span, service) in portmap::parse(text).0 {
        let entry = &text[span.start..span.end];
        out.extend(
            portmap::extensions_in(entry, &service)
                .into_iter()
                .map(|(at, x)| ConfigError {
                    key: keys::PORTMAP.to_owned(),
                    entry: Some(span.index),
                    offset: span.start + at,
                    text: entry.to_owned(),
                    reason: Reason::NotInMoirai(x, error::MoiraiDoes::DropsEntry),
                }),
        );
    }
    let value = get(keys::TIMEOUTS);
    if timeouts::parse(value).1.iter().all(ConfigError::is_warning) {
        out.extend(
            keys::timeout_extensions(value)
                .into_iter()
                .map(|(at, x)| ConfigError {
                    key: keys::TIMEOUTS.to_owned(),
                    entry: None,
                    offset: at,
                    text: value.to_owned(),
                    reason: Reason::NotInMoirai(x, error::MoiraiDoes::RefusesKey),
                }),
        );
    }
    out
}

/// Metadata from `(key, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn metadata_of(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::metadata_of as md;
    use super::*;

    #[test]
    fn disabled_without_loadbalancer_true() {
        let (c, d) = Config::from_metadata(&md(&[(keys::PORTMAP, "http://80:a.example:1")]));
        assert!(!c.enabled());
        assert!(c.services().is_empty());
        assert!(d.is_empty());
    }

    #[test]
    fn duplicate_port_is_an_error_for_the_later_entry() {
        let (c, d) = Config::from_metadata(&md(&[
            (keys::LOADBALANCER, "true"),
            (
                keys::PORTMAP,
                "http://80:a.example:1,tcp://81:b.example:2,tcp://80:c.example:3",
            ),
        ]));
        let e = d.errors;
        assert_eq!(c.services().len(), 2);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].entry, Some(2));
        assert_eq!(e[0].reason, Reason::DuplicateListenPort(80, 0));
        assert_eq!(
            e[0].offset,
            "http://80:a.example:1,tcp://81:b.example:2,tcp://".len()
        );
    }

    #[test]
    fn errors_from_every_key_together() {
        let (c, d) = Config::from_metadata(&md(&[
            (keys::LOADBALANCER, "true"),
            (keys::PORTMAP, "http://80:a.example:1,bogus"),
            (keys::MAX_RS, "2000"),
            (keys::METRICS_ACL, "10.0.0.0/8 zzz"),
            (keys::METRICS_PORT, "0"),
            (keys::SYSLOG, "bad host!"),
            (keys::TIMEOUTS, "{x:1}"),
        ]));
        assert_eq!(c.services().len(), 1);
        assert_eq!(c.max_rs(), 1024);
        assert_eq!(c.metrics().unwrap().port, 8405);
        assert_eq!(c.metrics().unwrap().acl.len(), 1);
        let keys: Vec<_> = d.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                keys::PORTMAP,
                keys::METRICS_ACL,
                keys::SYSLOG,
                keys::TIMEOUTS
            ]
        );
        // Clamped numbers run, with a warning each.
        let warned: Vec<_> = d.warnings.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(warned, [keys::MAX_RS, keys::METRICS_PORT]);
    }

    #[test]
    fn metrics_on_a_service_port_is_an_error_and_the_service_keeps_it() {
        let (c, d) = Config::from_metadata(&md(&[
            (keys::LOADBALANCER, "true"),
            (
                keys::PORTMAP,
                "http://80:a.example:1,http://8405:b.example:1",
            ),
            (keys::METRICS_ACL, "10.0.0.0/8"),
        ]));
        assert_eq!(c.services().len(), 2);
        assert!(c.metrics().is_none());
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].reason, Reason::MetricsPortTaken(8405, 1));
        assert!(d.errors[0].to_string().contains("metrics are not served"));
    }

    #[test]
    fn unknown_keys_and_an_empty_portmap_are_warnings() {
        let (c, d) = Config::from_metadata(&md(&[
            (keys::LOADBALANCER, "true"),
            ("cloud.tritoncompute:zzz", "1"),
            ("cloud.tritoncompute:certifcate_name", "example.com"),
        ]));
        assert!(c.enabled());
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let w: Vec<_> = d
            .warnings
            .iter()
            .map(|w| (w.key.as_str(), &w.reason))
            .collect();
        assert_eq!(
            w,
            [
                (keys::PORTMAP, &Reason::EmptyPortmap),
                (
                    "cloud.tritoncompute:certifcate_name",
                    &Reason::UnknownKey("certifcate_name".into(), Some("certificate_name"))
                ),
                (
                    "cloud.tritoncompute:zzz",
                    &Reason::UnknownKey("zzz".into(), None)
                ),
            ]
        );
        assert!(d.warnings[1]
            .to_string()
            .contains("did you mean `certificate_name`?"));
        // An entry, even a bad one, is not an empty portmap.
        let (_, d) = Config::from_metadata(&md(&[(keys::PORTMAP, "bogus")]));
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn each_extension_says_what_moirai_does_with_it() {
        let found = |pairs: &[(&str, &str)]| -> Vec<(Option<usize>, usize, Reason)> {
            moirai_differences(&md(pairs))
                .into_iter()
                .map(|e| (e.entry, e.offset, e.reason))
                .collect()
        };
        use error::{Extension as X, MoiraiDoes::*};
        let text = "http://80:a.b:1 https://443:a.b:1{check:/h,verify_host:a.b} tcp://65535:[::1]:1{rise:2,} http://81:a.b:1{CHECK:/x} http://82:a.b:1{}";
        assert_eq!(
            found(&[(keys::PORTMAP, text)]),
            [
                (
                    Some(1),
                    43,
                    Reason::NotInMoirai(X::Parameter("verify_host"), DropsEntry)
                ),
                (
                    Some(2),
                    87,
                    Reason::NotInMoirai(X::EmptyParameter, DropsEntry)
                ),
                (
                    Some(2),
                    72,
                    Reason::NotInMoirai(X::BracketedIpv6, DropsEntry)
                ),
                (Some(2), 66, Reason::NotInMoirai(X::Port65535, DropsEntry)),
                (
                    Some(3),
                    105,
                    Reason::NotInMoirai(X::UpperCaseName, DropsEntry)
                ),
                (
                    Some(4),
                    131,
                    Reason::NotInMoirai(X::EmptyParameter, DropsEntry)
                ),
            ]
        );
        // A backend or check port of 65535 too; 65534 is fine.
        assert_eq!(found(&[(keys::PORTMAP, "tcp://1:a.b:65535")]).len(), 1);
        assert_eq!(
            found(&[(keys::PORTMAP, "tcp://1:a.b:1{port:65535}")]).len(),
            1
        );
        assert!(found(&[(keys::PORTMAP, "tcp://65534:a.b:65534{port:65534}")]).is_empty());
        // Refused entries are errors already: no second word on them.
        assert!(found(&[(keys::PORTMAP, "http://80:a.b:1{bogus:1,verify_host:x}")]).is_empty());
        // Timeouts: Moirai refuses the whole key.
        assert_eq!(
            found(&[(keys::TIMEOUTS, "{Connect:1s client:5s}")]),
            [
                (None, 1, Reason::NotInMoirai(X::UpperCaseName, RefusesKey)),
                (
                    None,
                    1,
                    Reason::NotInMoirai(X::SpaceSeparatedTimeouts, RefusesKey)
                ),
            ]
        );
        assert!(found(&[(keys::TIMEOUTS, "{connect:1s, client:5s}")]).is_empty());
        assert!(found(&[(keys::TIMEOUTS, "{Bogus:1s}")]).is_empty());
        // Odd text never panics (offsets stay on character boundaries).
        for odd in [
            "{é:1}",
            " {",
            "é{}",
            "http://1:a.b:1{é,}",
            "{ connect:1s }",
            "}",
        ] {
            let _ = found(&[(keys::PORTMAP, odd), (keys::TIMEOUTS, odd)]);
        }
        let said = moirai_differences(&md(&[(keys::PORTMAP, "tcp://1:a.b:65535")]))[0].to_string();
        assert!(
            said.contains("moirai accepts port 65535; Triton-Moirai drops this portmap entry"),
            "{said}"
        );
    }

    #[test]
    fn scalar_keys_say_no_byte_offset() {
        let (_, d) = Config::from_metadata(&md(&[(keys::LOADBALANCER, "yes")]));
        let text = d.errors[0].to_string();
        assert!(!text.contains("at byte"), "{text}");
        let (_, d) = Config::from_metadata(&md(&[
            (keys::LOADBALANCER, "true"),
            (keys::PORTMAP, "http://80:a.example:1{rise:0}"),
        ]));
        assert!(
            d.errors[0].to_string().contains("entry 0 at byte 27"),
            "{}",
            d.errors[0]
        );
    }
}
