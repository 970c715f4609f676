//! The metadata keys and the scalar ones' parsers: `loadbalancer`, `max_rs`,
//! `certificate_name`, `metrics_acl`, `metrics_port`, `syslog`. The portmap
//! and timeouts have modules of their own.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU16;

use super::error::{ConfigError, Extension, Reason};
use super::hostname::HostName;

/// Prefix shared by every key moirai reads.
pub const PREFIX: &str = "cloud.tritoncompute:";
/// Must be `true` for anything to run.
pub const LOADBALANCER: &str = "cloud.tritoncompute:loadbalancer";
/// The services.
pub const PORTMAP: &str = "cloud.tritoncompute:portmap";
/// Backends per service.
pub const MAX_RS: &str = "cloud.tritoncompute:max_rs";
/// Names for the ACME certificate.
pub const CERTIFICATE_NAME: &str = "cloud.tritoncompute:certificate_name";
/// Who may scrape metrics.
pub const METRICS_ACL: &str = "cloud.tritoncompute:metrics_acl";
/// Where metrics are served.
pub const METRICS_PORT: &str = "cloud.tritoncompute:metrics_port";
/// Remote syslog target.
pub const SYSLOG: &str = "cloud.tritoncompute:syslog";
/// Connection timeouts.
pub const TIMEOUTS: &str = "cloud.tritoncompute:timeouts";

/// Every key, in the order `check` reports them.
pub const ALL: [&str; 8] = [
    LOADBALANCER,
    PORTMAP,
    MAX_RS,
    CERTIFICATE_NAME,
    METRICS_ACL,
    METRICS_PORT,
    SYSLOG,
    TIMEOUTS,
];

/// Every extension of ours, each of which makes Triton-Moirai drop the
/// portmap entry or refuse the key (`timeouts`) that uses it: `moirai
/// check` warns on each one it sees, for a migration's mixed pair. A new
/// one is one more line here (a parameter or timeout name needs nothing
/// else).
pub const EXTENSIONS: &[Extension] = &[
    Extension::Parameter("verify_host"),
    Extension::UpperCaseName,
    Extension::EmptyParameter,
    Extension::BracketedIpv6,
    Extension::Port65535,
    Extension::SpaceSeparatedTimeouts,
    Extension::Timeout("tunnel"),
    Extension::Parameter("redirect"),
    Extension::Parameter("trust_forwarded"),
    Extension::Parameter("h2"),
];

/// The [`Extension`]s a `timeouts` value uses, each with its offset; only
/// meaningful for a value that parsed (else moirai refuses it too).
pub fn timeout_extensions(value: &str) -> Vec<(usize, Extension)> {
    let lead = value.len() - value.trim_start().len();
    let (body_at, body) = match value.trim().strip_prefix('{') {
        Some(b) => (lead + 1, b.strip_suffix('}').unwrap_or(b)),
        None => (lead, value.trim()),
    };
    // (offset, name, whether spaces separate it from the next one)
    let mut names: Vec<(usize, &str, bool)> = Vec::new();
    let mut off = body_at;
    for piece in body.split(',') {
        let at = off + (piece.len() - piece.trim_start().len());
        off += piece.len() + 1;
        let piece = piece.trim();
        let name = piece.split_once(':').map_or(piece, |(n, _)| n).trim();
        // Moirai trims around names and values (`server: 300s`, `5 s`),
        // but splits entries on commas only: a second colon in a piece is
        // a second entry that only spaces separate.
        names.push((at, name, piece.matches(':').count() > 1));
    }
    EXTENSIONS
        .iter()
        .filter_map(|&x| {
            let found = match x {
                Extension::Timeout(t) => names.iter().find(|n| n.1.eq_ignore_ascii_case(t)),
                Extension::UpperCaseName => names
                    .iter()
                    .find(|n| n.1.bytes().any(|b| b.is_ascii_uppercase())),
                Extension::SpaceSeparatedTimeouts => names.iter().find(|n| n.2),
                _ => None,
            };
            found.map(|n| (n.0, x))
        })
        .collect()
}

/// Default and range of `max_rs`.
pub const MAX_RS_DEFAULT: u16 = 32;
/// Largest `max_rs`.
pub const MAX_RS_LIMIT: u16 = 1024;
/// The fewest backends `max_rs` gives (Moirai's lower clamp).
pub const MAX_RS_MIN: u16 = 32;
/// Default metrics port.
pub const METRICS_PORT_DEFAULT: u16 = 8405;

fn scalar_error(key: &str, value: &str, reason: Reason) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        entry: None,
        offset: value.len() - value.trim_start().len(),
        text: value.to_owned(),
        reason,
    }
}

/// `true` (trimmed, any case) enables, `false` or empty disables; anything
/// else disables and is reported.
pub fn parse_loadbalancer(value: &str) -> (bool, Option<ConfigError>) {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") {
        (true, None)
    } else if v.is_empty() || v.eq_ignore_ascii_case("false") {
        (false, None)
    } else {
        (
            false,
            Some(scalar_error(LOADBALANCER, value, Reason::NotABoolean)),
        )
    }
}

/// 32..=1024, default 32, as Moirai's `clamp(32, 1024)`: out of range is
/// clamped and unparsable is the default, each with a warning.
pub fn parse_max_rs(value: &str) -> (u16, Option<ConfigError>) {
    let v = value.trim();
    if v.is_empty() {
        return (MAX_RS_DEFAULT, None);
    }
    let Ok(n) = v.parse::<i64>() else {
        return (
            MAX_RS_DEFAULT,
            Some(scalar_error(
                MAX_RS,
                value,
                Reason::NotAnInteger {
                    value: v.to_owned(),
                    used: u64::from(MAX_RS_DEFAULT),
                },
            )),
        );
    };
    let used = n.clamp(i64::from(MAX_RS_MIN), i64::from(MAX_RS_LIMIT));
    let err = (used != n).then(|| {
        scalar_error(
            MAX_RS,
            value,
            Reason::OutOfRange {
                value: v.to_owned(),
                min: u64::from(MAX_RS_MIN),
                max: u64::from(MAX_RS_LIMIT),
                used: used as u64,
            },
        )
    });
    // `used` is within 32..=1024 after the clamp.
    (used as u16, err)
}

/// A list entry located in its value: index among non-empty entries, offset.
fn list_entries<'a>(
    value: &'a str,
    seps: &'a [char],
) -> impl Iterator<Item = (usize, usize, &'a str)> + 'a {
    let mut off = 0;
    value
        .split(seps)
        .filter_map(move |part| {
            let at = off + (part.len() - part.trim_start().len());
            off += part.len() + 1;
            let part = part.trim();
            (!part.is_empty()).then_some((at, part))
        })
        .enumerate()
        .map(|(i, (at, part))| (i, at, part))
}

/// DNS names separated by commas, spaces or both, as Moirai accepts them
/// (it turns commas into spaces for dehydrated); the first is the CN. `*.`
/// wildcards allowed.
pub fn parse_certificate_names(value: &str) -> (Vec<HostName>, Vec<ConfigError>) {
    let mut names: Vec<HostName> = Vec::new();
    let mut errors = Vec::new();
    for (index, at, raw) in list_entries(value, &[',', ' ', '\t', '\n', '\r']) {
        let (wild, base) = match raw.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, raw),
        };
        // Underscores are fine in service names but never in a certificate.
        match HostName::parse(base) {
            Ok(n) if !base.contains('_') => {
                let n = if wild { HostName::wildcard(&n) } else { n };
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            _ => errors.push(ConfigError {
                key: CERTIFICATE_NAME.to_owned(),
                entry: Some(index),
                offset: at,
                text: raw.to_owned(),
                reason: Reason::InvalidCertificateName(raw.to_owned()),
            }),
        }
    }
    (names, errors)
}

/// An IP prefix such as `10.0.0.0/8`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// Parses `addr[/len]`.
    pub fn parse(s: &str) -> Option<IpPrefix> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().ok().filter(|&n| n <= max)?
            }
            Some(_) => return None,
        };
        Some(IpPrefix { addr, len })
    }

    /// Whether `ip` is inside the prefix. IPv4-mapped IPv6 peers count as
    /// their IPv4 address, as a dual-stack listener reports them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Space- or comma-separated prefixes; invalid ones are reported and dropped.
pub fn parse_metrics_acl(value: &str) -> (Vec<IpPrefix>, Vec<ConfigError>) {
    let mut acl = Vec::new();
    let mut errors = Vec::new();
    for (index, at, raw) in list_entries(value, &[',', ' ', '\n', '\t']) {
        match IpPrefix::parse(raw) {
            Some(p) => acl.push(p),
            None => errors.push(ConfigError {
                key: METRICS_ACL.to_owned(),
                entry: Some(index),
                offset: at,
                text: raw.to_owned(),
                reason: Reason::InvalidPrefix(raw.to_owned()),
            }),
        }
    }
    (acl, errors)
}

/// 1..=65534, default 8405; anything else is the default, reported.
pub fn parse_metrics_port(value: &str) -> (u16, Option<ConfigError>) {
    let v = value.trim();
    if v.is_empty() {
        return (METRICS_PORT_DEFAULT, None);
    }
    match v.parse::<u32>() {
        Ok(n @ 1..=65534) if v.bytes().all(|b| b.is_ascii_digit()) => (n as u16, None),
        Ok(_) => (
            METRICS_PORT_DEFAULT,
            Some(scalar_error(
                METRICS_PORT,
                value,
                Reason::OutOfRange {
                    value: v.to_owned(),
                    min: 1,
                    max: 65534,
                    used: u64::from(METRICS_PORT_DEFAULT),
                },
            )),
        ),
        Err(_) => (
            METRICS_PORT_DEFAULT,
            Some(scalar_error(
                METRICS_PORT,
                value,
                Reason::NotAnInteger {
                    value: v.to_owned(),
                    used: u64::from(METRICS_PORT_DEFAULT),
                },
            )),
        ),
    }
}

/// Where syslog lines go: a name (resolved later) or an address, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyslogTarget {
    /// The host, by name or address.
    pub host: SyslogHost,
    /// The UDP port.
    pub port: NonZeroU16,
}

/// The host part of a [`SyslogTarget`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyslogHost {
    /// A DNS name.
    Name(HostName),
    /// An address.
    Ip(IpAddr),
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            SyslogHost::Name(n) => write!(f, "{n}:{}", self.port),
            SyslogHost::Ip(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            SyslogHost::Ip(a) => write!(f, "{a}:{}", self.port),
        }
    }
}

/// `HOST:PORT` or `HOST` alone (port 514, HAProxy's default), IPv6 in
/// brackets; empty means no syslog.
pub fn parse_syslog(value: &str) -> (Option<SyslogTarget>, Option<ConfigError>) {
    let v = value.trim();
    if v.is_empty() {
        return (None, None);
    }
    let bad = || {
        (
            None,
            Some(scalar_error(
                SYSLOG,
                value,
                Reason::InvalidSyslogTarget(v.to_owned()),
            )),
        )
    };
    // A colon outside brackets separates the port; a bare IPv6 address
    // (several colons) must be bracketed.
    let (host, port) = match v.rsplit_once(':') {
        _ if v.starts_with('[') && v.ends_with(']') => (v, "514"),
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p),
        Some(_) => return bad(),
        None => (v, "514"),
    };
    let Some(port) = port
        .parse::<u16>()
        .ok()
        .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))
        .and_then(NonZeroU16::new)
    else {
        return bad();
    };
    let host = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        match inner.parse::<std::net::Ipv6Addr>() {
            Ok(a) => SyslogHost::Ip(IpAddr::V6(a)),
            Err(_) => return bad(),
        }
    } else if let Ok(a) = host.parse::<std::net::Ipv4Addr>() {
        SyslogHost::Ip(IpAddr::V4(a))
    } else {
        match HostName::parse(host) {
            Ok(n) => SyslogHost::Name(n),
            Err(_) => return bad(),
        }
    };
    (Some(SyslogTarget { host, port }), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadbalancer_must_be_true() {
        assert!(parse_loadbalancer(" TRUE\n").0);
        assert_eq!(parse_loadbalancer("false"), (false, None));
        let (on, e) = parse_loadbalancer("yes");
        assert!(!on);
        assert_eq!(e.unwrap().reason, Reason::NotABoolean);
    }

    #[test]
    fn max_rs_clamps_and_reports() {
        assert_eq!(parse_max_rs("100"), (100, None));
        assert_eq!(parse_max_rs(""), (32, None));
        assert_eq!(parse_max_rs("5000").0, 1024);
        assert!(parse_max_rs("5000").1.is_some());
        // Moirai's clamp(32, 1024): 10 becomes 32, with a warning.
        let (n, w) = parse_max_rs("10");
        assert_eq!(n, 32);
        assert!(w.unwrap().is_warning());
        assert_eq!(parse_max_rs("0").0, 32);
        assert_eq!(parse_max_rs("lots").0, 32);
        assert!(parse_max_rs("lots").1.unwrap().is_warning());
    }

    #[test]
    fn certificate_names() {
        let (n, e) = parse_certificate_names("example.com,www.example.com, *.api.example.com");
        assert!(e.is_empty(), "{e:?}");
        let n: Vec<_> = n.iter().map(|n| n.as_str().to_owned()).collect();
        assert_eq!(n, ["example.com", "www.example.com", "*.api.example.com"]);
        let (n, e) = parse_certificate_names("example.com,bad!,a_b.example.com");
        assert_eq!(n.len(), 1);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].entry, Some(1));
        assert_eq!(e[0].offset, 12);
        // Spaces separate too, with or without commas (Moirai's form).
        for text in [
            "example.com www.example.com",
            "example.com, www.example.com",
            " example.com  ,www.example.com ",
        ] {
            let (n, e) = parse_certificate_names(text);
            assert!(e.is_empty(), "{text}: {e:?}");
            let n: Vec<_> = n.iter().map(|n| n.as_str()).collect();
            assert_eq!(n, ["example.com", "www.example.com"], "{text}");
        }
    }

    #[test]
    fn acl_prefixes() {
        let (acl, e) = parse_metrics_acl("10.0.0.0/8 172.16.0.0/12,2001:db8::/32 127.0.0.1");
        assert!(e.is_empty());
        assert_eq!(acl.len(), 4);
        assert!(acl[0].contains("10.200.3.4".parse().unwrap()));
        assert!(!acl[0].contains("11.0.0.1".parse().unwrap()));
        assert!(acl[0].contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(acl[2].contains("2001:db8:1::5".parse().unwrap()));
        assert!(acl[3].contains("127.0.0.1".parse().unwrap()));
        assert!(!acl[3].contains("127.0.0.2".parse().unwrap()));
        assert!(IpPrefix::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        let (acl, e) = parse_metrics_acl("10.0.0.0/33 nope 10.0.0.0/8");
        assert_eq!(acl.len(), 1);
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn metrics_port_and_syslog() {
        assert_eq!(parse_metrics_port("9090"), (9090, None));
        assert_eq!(parse_metrics_port("65535").0, 8405);
        assert!(parse_metrics_port("x").1.is_some());
        let (t, e) = parse_syslog("logs.internal.company.net:514");
        assert!(e.is_none());
        assert_eq!(t.unwrap().to_string(), "logs.internal.company.net:514");
        assert_eq!(
            parse_syslog("[::1]:514").0.unwrap().to_string(),
            "[::1]:514"
        );
        // HOST alone: HAProxy's default port.
        let (t, e) = parse_syslog("logs.example.com");
        assert!(e.is_none());
        assert_eq!(t.unwrap().to_string(), "logs.example.com:514");
        assert_eq!(
            parse_syslog("10.0.0.1").0.unwrap().to_string(),
            "10.0.0.1:514"
        );
        assert_eq!(parse_syslog("[::1]").0.unwrap().to_string(), "[::1]:514");
        assert!(parse_syslog("::1").1.is_some());
        assert!(parse_syslog("bad host!").1.is_some());
        assert!(parse_syslog("host:0").1.is_some());
    }
}
