//! The portmap grammar: `TYPE://LISTEN:BACKEND[:PORT][{PARAMS}]`, entries
//! separated by `,`, space or newline outside braces.
//!
//! Parsing is total: every entry either becomes a [`Service`] or a
//! [`ConfigError`] that says where and why, and one bad entry never hides the
//! others. Duplicate listen ports are checked by the caller
//! ([`super::Config`]), which sees the whole set. What an entry becomes
//! (the typed [`Service`], printed back in this grammar) is `service.rs`'s.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU16;

use super::error::{closest, ConfigError, Extension, Reason};
pub use super::hostname::HostName;
use super::keys::{IpPrefix, EXTENSIONS, PORTMAP};
pub use super::service::{BackendTarget, CheckPath, Count, HealthCheck, Service, ServiceKind};

/// One entry's place in the portmap value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index among non-empty entries, from 0.
    pub index: usize,
    /// Byte offset of the entry in the value.
    pub start: usize,
    /// Byte offset one past its end.
    pub end: usize,
}

/// Splits a portmap value into entries: `,`, space, tab, CR and newline
/// separate, except inside `{...}`. A `{` that is never closed (Moirai
/// accepts that) runs to the start of the next entry, `TYPE://`, or to the
/// end, so it never swallows the entries after it.
pub fn split_entries(text: &str) -> Vec<Span> {
    let bytes = text.as_bytes();
    let is_sep = |b: u8| matches!(b, b',' | b' ' | b'\n' | b'\r' | b'\t');
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_sep(b) {
            if let Some(s) = start.take() {
                spans.push(Span {
                    index: spans.len(),
                    start: s,
                    end: i,
                });
            }
        } else {
            start.get_or_insert(i);
            if b == b'{' {
                let next_entry = next_entry_start(bytes, i + 1);
                let close = bytes[i..].iter().position(|&c| c == b'}').map(|c| i + c);
                match close {
                    Some(c) if c < next_entry => i = c,
                    // Unclosed: up to the separators before the next entry.
                    _ => {
                        let mut end = next_entry;
                        while end > i + 1 && is_sep(bytes[end - 1]) {
                            end -= 1;
                        }
                        i = end - 1;
                    }
                }
            }
        }
        i += 1;
    }
    if let Some(s) = start {
        spans.push(Span {
            index: spans.len(),
            start: s,
            end: bytes.len(),
        });
    }
    spans
}

/// Where the next `TYPE://` after a separator begins, at or after `from`;
/// the length of `bytes` when there is none.
fn next_entry_start(bytes: &[u8], from: usize) -> usize {
    let is_sep = |b: u8| matches!(b, b',' | b' ' | b'\n' | b'\r' | b'\t');
    let mut i = from;
    while i < bytes.len() {
        if is_sep(bytes[i]) {
            let word = i + 1;
            let mut j = word;
            while j < bytes.len()
                && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'+' | b'-'))
            {
                j += 1;
            }
            if j > word && bytes[j..].starts_with(b"://") {
                return word;
            }
        }
        i += 1;
    }
    bytes.len()
}

/// Parses a whole portmap value. Valid entries come back in order, each with
/// its span; every invalid one becomes an error, and what was accepted with
/// a warning adds a warning (see [`Reason::is_warning`]). Duplicate ports
/// are not checked here.
pub fn parse(text: &str) -> (Vec<(Span, Service)>, Vec<ConfigError>) {
    let mut services = Vec::new();
    let mut errors = Vec::new();
    for span in split_entries(text) {
        let entry = &text[span.start..span.end];
        let problem = |(rel, reason): EntryError| ConfigError {
            key: PORTMAP.to_owned(),
            entry: Some(span.index),
            offset: span.start + rel,
            text: entry.to_owned(),
            reason,
        };
        match parse_entry_with_warnings(entry) {
            Ok((s, warnings)) => {
                errors.extend(warnings.into_iter().map(problem));
                services.push((span, s));
            }
            Err(e) => errors.push(problem(e)),
        }
    }
    (services, errors)
}

/// An error inside one entry: the offset relative to the entry, and why.
type EntryError = (usize, Reason);

/// Parses one entry (no separators in it, except inside braces), dropping
/// warnings.
pub fn parse_entry(entry: &str) -> Result<Service, EntryError> {
    parse_entry_with_warnings(entry).map(|(s, _)| s)
}

/// Parses one entry; what was accepted the way Moirai accepts it comes
/// back as warnings beside the service.
pub fn parse_entry_with_warnings(entry: &str) -> Result<(Service, Vec<EntryError>), EntryError> {
    let mut warnings = Vec::new();
    let Some(sep) = entry.find("://") else {
        return Err((0, Reason::MissingScheme));
    };
    let kind = ServiceKind::parse(&entry[..sep]).ok_or_else(|| {
        let t = &entry[..sep];
        let near = closest(t, ServiceKind::ALL.map(ServiceKind::as_str));
        (0, Reason::UnknownServiceType(t.to_owned(), near))
    })?;
    let mut pos = sep + 3;

    // Listen port, up to the next ':'.
    let rest = &entry[pos..];
    let Some(colon) = rest.find(':') else {
        return Err(if rest.is_empty() {
            (pos, Reason::MissingPort("listen"))
        } else {
            (pos + rest.len(), Reason::MissingBackend)
        });
    };
    let listen = parse_port(&rest[..colon]).ok_or_else(|| {
        let r = if colon == 0 {
            Reason::MissingPort("listen")
        } else {
            Reason::InvalidPort("listen", rest[..colon].to_owned())
        };
        (pos, r)
    })?;
    pos += colon + 1;

    // Parameters, if any, are the tail starting at the first '{'.
    let (target_end, params) = match entry[pos..].find('{') {
        Some(open) => {
            let open = pos + open;
            let inner = &entry[open + 1..];
            let inner = match inner.strip_suffix('}') {
                Some(inner) => inner,
                None if !inner.contains('}') => {
                    warnings.push((entry.len(), Reason::MissingClosingBrace));
                    inner
                }
                None => return Err((open, Reason::UnbalancedBraces)),
            };
            if inner.contains(['{', '}']) {
                return Err((open, Reason::UnbalancedBraces));
            }
            (open, Some((open + 1, inner)))
        }
        None => {
            if let Some(close) = entry[pos..].find('}') {
                return Err((pos + close, Reason::UnbalancedBraces));
            }
            (entry.len(), None)
        }
    };

    let backend = parse_backend(&entry[pos..target_end]).map_err(|(rel, r)| (pos + rel, r))?;
    let Params {
        check,
        mut verify_host,
        mut redirect,
        mut trust_forwarded,
        mut h2,
    } = match params {
        Some((off, p)) => {
            let (params, w) = parse_params(p).map_err(|(rel, r)| (off + rel, r))?;
            warnings.extend(w.into_iter().map(|(rel, r)| (off + rel, r)));
            params.shifted(off)
        }
        None => Params::default(),
    };
    if let Some((at, _)) = verify_host.as_ref().filter(|_| kind != ServiceKind::Https) {
        warnings.push((*at, Reason::VerifyHostIgnored(kind.as_str())));
        verify_host = None;
    }
    if let Some((at, _)) = redirect.as_ref().filter(|_| kind != ServiceKind::Http) {
        warnings.push((*at, Reason::ParameterIgnored("redirect", kind.as_str())));
        redirect = None;
    }
    if let Some((at, _)) = trust_forwarded.as_ref().filter(|_| !kind.is_http()) {
        warnings.push((
            *at,
            Reason::ParameterIgnored("trust_forwarded", kind.as_str()),
        ));
        trust_forwarded = None;
    }
    if let Some((at, _)) = h2.as_ref().filter(|_| !kind.is_http()) {
        warnings.push((*at, Reason::ParameterIgnored("h2", kind.as_str())));
        h2 = None;
    }
    if let Some((at, _)) = redirect.as_ref().filter(|_| trust_forwarded.is_none()) {
        warnings.push((*at, Reason::RedirectWithoutBackend));
    }
    warnings.sort_by_key(|w| w.0);
    Ok((
        Service {
            kind,
            listen,
            backend,
            check,
            verify_host: verify_host.map(|(_, n)| n),
            redirect: redirect.map(|(_, p)| p),
            trust_forwarded: trust_forwarded.map(|(_, l)| l).unwrap_or_default(),
            h2: h2.is_none_or(|(_, on)| on),
        },
        warnings,
    ))
}

/// `1..=65535`, decimal digits only.
fn parse_port(s: &str) -> Option<NonZeroU16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().and_then(NonZeroU16::new)
}

/// `name[:port]`, `a.b.c.d[:port]` or `[v6][:port]`.
fn parse_backend(s: &str) -> Result<BackendTarget, EntryError> {
    if s.is_empty() {
        return Err((0, Reason::MissingBackend));
    }
    let (host, port_at) = if let Some(inner) = s.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Err((0, Reason::InvalidIpv6Literal(s.to_owned())));
        };
        let ip: Ipv6Addr = inner[..close]
            .parse()
            .map_err(|_| (1, Reason::InvalidIpv6Literal(inner[..close].to_owned())))?;
        let after = close + 2;
        let port = match &s[after..] {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(
                    parse_port(p)
                        .ok_or_else(|| (after + 1, Reason::InvalidPort("backend", p.to_owned())))?,
                ),
                None => return Err((after, Reason::TrailingText(p.to_owned()))),
            },
        };
        return match port {
            Some(port) => Ok(BackendTarget::Ip(SocketAddr::new(
                IpAddr::V6(ip),
                port.get(),
            ))),
            None => Err((0, Reason::IpBackendNeedsPort)),
        };
    } else {
        match s.find(':') {
            Some(c) => (&s[..c], Some(c + 1)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err((0, Reason::MissingBackend));
    }
    let port = match port_at {
        Some(at) => {
            let p = &s[at..];
            if p.contains(':') || host.parse::<Ipv6Addr>().is_ok() {
                return Err((0, Reason::InvalidIpv6Literal(s.to_owned())));
            }
            Some(parse_port(p).ok_or_else(|| {
                let r = if p.is_empty() {
                    Reason::MissingPort("backend")
                } else {
                    Reason::InvalidPort("backend", p.to_owned())
                };
                (at, r)
            })?)
        }
        None => None,
    };
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return match port {
            Some(port) => Ok(BackendTarget::Ip(SocketAddr::new(
                IpAddr::V4(ip),
                port.get(),
            ))),
            None => Err((0, Reason::IpBackendNeedsPort)),
        };
    }
    let name =
        HostName::parse(host).map_err(|why| (0, Reason::InvalidHostName(host.to_owned(), why)))?;
    Ok(match port {
        Some(port) => BackendTarget::Dns { name, port },
        None => BackendTarget::Srv { name },
    })
}

/// Every parameter name, lower case (as written, any case is read).
pub const PARAMETERS: [&str; 8] = [
    "check",
    "port",
    "rise",
    "fall",
    "verify_host",
    "redirect",
    "trust_forwarded",
    "h2",
];

/// The [`Extension`]s one valid entry uses, each with its offset in the
/// entry: Triton-Moirai drops such an entry.
pub fn extensions_in(entry: &str, service: &Service) -> Vec<(usize, Extension)> {
    let names = parameter_names(entry);
    let port_65535 = [
        Some(service.listen.get()),
        service.backend.port(),
        service.check.port.map(NonZeroU16::get),
    ]
    .contains(&Some(u16::MAX));
    EXTENSIONS
        .iter()
        .filter_map(|&x| {
            let at = match x {
                Extension::Parameter(p) => names
                    .iter()
                    .find(|n| n.1.eq_ignore_ascii_case(p))
                    .map(|n| n.0),
                Extension::UpperCaseName => names
                    .iter()
                    .find(|n| n.1.bytes().any(|b| b.is_ascii_uppercase()))
                    .map(|n| n.0),
                Extension::EmptyParameter => names.iter().find(|n| n.1.is_empty()).map(|n| n.0),
                Extension::BracketedIpv6 => {
                    matches!(&service.backend, BackendTarget::Ip(a) if a.is_ipv6())
                        .then(|| entry.find('['))
                        .flatten()
                }
                // At the first place the number is written.
                Extension::Port65535 => port_65535.then(|| entry.find("65535").unwrap_or(0)),
                Extension::Timeout(_) | Extension::SpaceSeparatedTimeouts => None,
            };
            at.map(|at| (at, x))
        })
        .collect()
}

/// The parameter names of an entry as written (empty for an empty
/// parameter), each with its offset in the entry.
fn parameter_names(entry: &str) -> Vec<(usize, &str)> {
    let Some(open) = entry.find('{') else {
        return Vec::new();
    };
    let inner = &entry[open + 1..];
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut off = open + 1;
    inner
        .split(',')
        .map(|piece| {
            let at = off + (piece.len() - piece.trim_start().len());
            off += piece.len() + 1;
            let name = piece.split_once(':').map_or(piece, |(n, _)| n);
            (at, name.trim())
        })
        .collect()
}

/// What an entry's parameters gave; moirai's own ones with where they
/// were written (for a warning that points at them).
#[derive(Debug, Default)]
struct Params {
    check: HealthCheck,
    verify_host: Option<(usize, HostName)>,
    redirect: Option<(usize, NonZeroU16)>,
    trust_forwarded: Option<(usize, Vec<IpPrefix>)>,
    /// `h2:on|off`, and whether on.
    h2: Option<(usize, bool)>,
}

impl Params {
    /// With offsets counted from `off` on.
    fn shifted(mut self, off: usize) -> Params {
        if let Some(v) = self.verify_host.as_mut() {
            v.0 += off;
        }
        if let Some(v) = self.redirect.as_mut() {
            v.0 += off;
        }
        if let Some(v) = self.trust_forwarded.as_mut() {
            v.0 += off;
        }
        if let Some(v) = self.h2.as_mut() {
            v.0 += off;
        }
        self
    }
}

/// `check:/p,port:N,rise:N,fall:N,verify_host:NAME,redirect:https[:N],
/// trust_forwarded:PREFIX ...,h2:on|off` in any order. As in Moirai, a parameter
/// given twice takes its last value (with a warning).
fn parse_params(s: &str) -> Result<(Params, Vec<EntryError>), EntryError> {
    let mut hc = HealthCheck::default();
    let mut out = Params::default();
    let mut warnings = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut off = 0;
    for param in s.split(',') {
        let here = off;
        off += param.len() + 1;
        let trimmed = param.trim();
        if trimmed.is_empty() {
            continue;
        }
        let lead = param.len() - param.trim_start().len();
        let at = here + lead;
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err((at, Reason::ParameterWithoutValue(trimmed.to_owned())));
        };
        let value_at = at + name.len() + 1;
        let value = value.trim();
        if value.is_empty() {
            return Err((at, Reason::ParameterWithoutValue(name.to_owned())));
        }
        let lower = name.trim().to_ascii_lowercase();
        let Some(&known) = PARAMETERS.iter().find(|p| **p == lower) else {
            let near = closest(&lower, PARAMETERS);
            return Err((at, Reason::UnknownParameter(lower, near)));
        };
        if seen.contains(&known) {
            warnings.push((at, Reason::DuplicateParameter(known)));
        }
        seen.push(known);
        match known {
            "check" => {
                let path = CheckPath::parse(value)
                    .ok_or_else(|| (value_at, Reason::InvalidCheckPath(value.to_owned())))?;
                if !value.starts_with('/') {
                    warnings.push((value_at, Reason::CheckPathWithoutSlash(value.to_owned())));
                }
                hc.path = Some(path);
            }
            "port" => {
                hc.port =
                    Some(parse_port(value).ok_or_else(|| {
                        (value_at, Reason::InvalidPort("check", value.to_owned()))
                    })?);
            }
            "verify_host" => {
                let name = HostName::parse(value)
                    .map_err(|why| (value_at, Reason::InvalidHostName(value.to_owned(), why)))?;
                out.verify_host = Some((at, name));
            }
            "redirect" => {
                let bad = || (value_at, Reason::InvalidRedirect(value.to_owned()));
                let (scheme, port) = match value.split_once(':') {
                    Some((s, p)) => (s.trim(), parse_port(p.trim()).ok_or_else(bad)?),
                    None => (value, NonZeroU16::new(443).ok_or_else(bad)?),
                };
                if !scheme.eq_ignore_ascii_case("https") {
                    return Err(bad());
                }
                out.redirect = Some((at, port));
            }
            "h2" => {
                let on = match value.to_ascii_lowercase().as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err((value_at, Reason::InvalidH2(value.to_owned()))),
                };
                out.h2 = Some((at, on));
            }
            "trust_forwarded" => {
                let list = value
                    .split_whitespace()
                    .map(|p| {
                        IpPrefix::parse(p)
                            .ok_or_else(|| (value_at, Reason::InvalidPrefix(p.to_owned())))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                out.trust_forwarded = Some((at, list));
            }
            what => {
                let n = parse_count(value)
                    .ok_or_else(|| (value_at, Reason::InvalidCount(what, value.to_owned())))?;
                if n.get() > Count::USUAL_MAX {
                    warnings.push((value_at, Reason::LargeCount(what, n.get())));
                }
                if what == "rise" {
                    hc.rise = Some(n);
                } else {
                    hc.fall = Some(n);
                }
            }
        }
    }
    out.check = hc;
    Ok((out, warnings))
}

fn parse_count(s: &str) -> Option<Count> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().and_then(Count::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Service {
        parse_entry(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn err(s: &str) -> EntryError {
        parse_entry(s).expect_err(s)
    }

    #[test]
    fn redirect_and_trust_forwarded_are_ours_for_http() {
        let s = ok("http://80:web.example:8080{redirect:https}");
        assert_eq!(s.redirect.map(NonZeroU16::get), Some(443));
        assert!(!s.uses_backends());
        let s = ok("http://80:web.example:8080{redirect:HTTPS:8443,trust_forwarded:203.0.113.0/24 2001:db8::/32}");
        assert_eq!(s.redirect.map(NonZeroU16::get), Some(8443));
        assert!(s.uses_backends());
        assert!(s.trusts("203.0.113.9".parse().unwrap()));
        assert!(s.trusts("::ffff:203.0.113.9".parse().unwrap()));
        assert!(s.trusts("2001:db8::7".parse().unwrap()));
        assert!(!s.trusts("198.51.100.1".parse().unwrap()));
        assert_eq!(parse_entry(&s.to_string()).unwrap(), s);
        for bad in [
            "http://80:w.example:80{redirect:http}",
            "http://80:w.example:80{redirect:https:0}",
            "http://80:w.example:80{redirect:https:x}",
            "http://80:w.example:80{trust_forwarded:10.0.0.0/33}",
            "http://80:w.example:80{trust_forwarded:nope}",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad}");
        }
        // On types they do not apply to: ignored, with a warning.
        let (s, w) = parse_entry_with_warnings(
            "tcp://80:w.example:80{redirect:https,trust_forwarded:10.0.0.0/8}",
        )
        .unwrap();
        assert_eq!((s.redirect, s.trust_forwarded.len()), (None, 0));
        assert_eq!(
            w.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            [
                Reason::ParameterIgnored("redirect", "tcp"),
                Reason::ParameterIgnored("trust_forwarded", "tcp")
            ]
        );
        let (_, w) = parse_entry_with_warnings("http://80:w.example:80{redirect:https}").unwrap();
        assert_eq!(
            w.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            [Reason::RedirectWithoutBackend]
        );
    }

    #[test]
    fn types_are_case_insensitive() {
        for k in ServiceKind::ALL {
            let upper = format!("{}://80:web.example.com:8080", k.as_str().to_uppercase());
            assert_eq!(ok(&upper).kind, k);
        }
    }

    #[test]
    fn a_mode_srv_mode_and_ip_literals() {
        let s = ok("http://80:Web.Example.com:8080");
        assert_eq!(s.backend.resolve_mode(), "a");
        assert_eq!(s.backend.host(), "web.example.com");
        assert_eq!(s.backend.port(), Some(8080));
        let s = ok("http://80:web.example.com");
        assert_eq!(s.backend.resolve_mode(), "srv");
        assert_eq!(s.backend.port(), None);
        let s = ok("tcp://5432:10.1.2.3:5432");
        assert_eq!(
            s.backend,
            BackendTarget::Ip("10.1.2.3:5432".parse().unwrap())
        );
        let s = ok("tcp://5432:[2001:db8::1]:5432");
        assert_eq!(
            s.backend,
            BackendTarget::Ip("[2001:db8::1]:5432".parse().unwrap())
        );
    }

    #[test]
    fn params_in_any_order_with_defaults() {
        let s = ok("http://80:w.example:8080{fall:3,check:/healthz,rise:5,port:9000}");
        assert_eq!(s.check.path.as_ref().unwrap().as_str(), "/healthz");
        assert_eq!(s.check.port.unwrap().get(), 9000);
        assert_eq!((s.check.rise(), s.check.fall()), (5, 3));
        let s = ok("http://80:w.example:8080{check:/x}");
        assert_eq!((s.check.rise(), s.check.fall()), (2, 1));
        let s = ok("http://80:w.example:8080{CHECK:/x?a=b:c}");
        assert_eq!(s.check.path.unwrap().as_str(), "/x?a=b:c");
    }

    #[test]
    fn separators_never_split_inside_braces() {
        let text = "http://80:a.example:1{check:/a, port:9}\nTCP://81:b.example:2  https-http://443:c.example:3{check:/h,rise:3,fall:2}";
        let (services, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(services.len(), 3);
        assert_eq!(services[0].1.check.port.unwrap().get(), 9);
        assert_eq!(services[2].0.index, 2);
    }

    #[test]
    fn each_error_names_its_place() {
        type Case = (&'static str, usize, fn(&Reason) -> bool);
        let cases: &[Case] = &[
            ("http:/80:a:1", 0, |r| matches!(r, Reason::MissingScheme)),
            ("ftp://80:a:1", 0, |r| {
                matches!(r, Reason::UnknownServiceType(..))
            }),
            ("http://", 7, |r| matches!(r, Reason::MissingPort("listen"))),
            ("http://80", 9, |r| matches!(r, Reason::MissingBackend)),
            ("http://:a.b:1", 7, |r| {
                matches!(r, Reason::MissingPort("listen"))
            }),
            ("http://0:a.b:1", 7, |r| {
                matches!(r, Reason::InvalidPort("listen", _))
            }),
            ("http://65536:a.b:1", 7, |r| {
                matches!(r, Reason::InvalidPort("listen", _))
            }),
            ("http://8x:a.b:1", 7, |r| {
                matches!(r, Reason::InvalidPort("listen", _))
            }),
            ("http://80:", 10, |r| matches!(r, Reason::MissingBackend)),
            ("http://80:a.b:", 14, |r| {
                matches!(r, Reason::MissingPort("backend"))
            }),
            ("http://80:a.b:0", 14, |r| {
                matches!(r, Reason::InvalidPort("backend", _))
            }),
            ("http://80:a..b:1", 10, |r| {
                matches!(r, Reason::InvalidHostName(..))
            }),
            ("http://80:a b.c:1", 10, |r| {
                matches!(r, Reason::InvalidHostName(..))
            }),
            ("http://80:300.1.1.1:1", 10, |r| {
                matches!(r, Reason::InvalidHostName(..))
            }),
            ("http://80:-a.b:1", 10, |r| {
                matches!(r, Reason::InvalidHostName(..))
            }),
            ("http://80:2001:db8::1:80", 10, |r| {
                matches!(r, Reason::InvalidIpv6Literal(_))
            }),
            ("http://80:[2001:db8::1:80", 10, |r| {
                matches!(r, Reason::InvalidIpv6Literal(_))
            }),
            ("http://80:[zz::1]:80", 11, |r| {
                matches!(r, Reason::InvalidIpv6Literal(_))
            }),
            ("http://80:[::1]80", 15, |r| {
                matches!(r, Reason::TrailingText(_))
            }),
            ("http://80:[::1]", 10, |r| {
                matches!(r, Reason::IpBackendNeedsPort)
            }),
            ("http://80:10.0.0.1", 10, |r| {
                matches!(r, Reason::IpBackendNeedsPort)
            }),
            ("http://80:a.b:1}", 15, |r| {
                matches!(r, Reason::UnbalancedBraces)
            }),
            ("http://80:a.b:1{check:/x}x", 15, |r| {
                matches!(r, Reason::UnbalancedBraces)
            }),
            ("http://80:a.b:1{bogus:1}", 16, |r| {
                matches!(r, Reason::UnknownParameter(..))
            }),
            ("http://80:a.b:1{check}", 16, |r| {
                matches!(r, Reason::ParameterWithoutValue(_))
            }),
            ("http://80:a.b:1{rise:}", 16, |r| {
                matches!(r, Reason::ParameterWithoutValue(_))
            }),
            ("http://80:a.b:1{port:99999}", 21, |r| {
                matches!(r, Reason::InvalidPort("check", _))
            }),
            ("http://80:a.b:1{rise:0}", 21, |r| {
                matches!(r, Reason::InvalidCount("rise", _))
            }),
            ("http://80:a.b:1{fall:65536}", 21, |r| {
                matches!(r, Reason::InvalidCount("fall", _))
            }),
            ("http://80:a.b:1{check:/a{b}", 15, |r| {
                matches!(r, Reason::UnbalancedBraces)
            }),
            ("http://80:a.b:1{check:/a b}", 22, |r| {
                matches!(r, Reason::InvalidCheckPath(_))
            }),
        ];
        for (text, offset, reason) in cases {
            let (at, r) = err(text);
            assert!(reason(&r), "{text}: got {r:?}");
            assert_eq!(at, *offset, "{text}: {r}");
        }
    }

    #[test]
    fn errors_carry_absolute_offsets_and_keep_valid_entries() {
        let text = "http://80:a.example:1,tcp://81:b.example:x,tcp://82:10.0.0.1:5";
        let (services, errors) = parse(text);
        assert_eq!(services.len(), 2);
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert_eq!(e.entry, Some(1));
        assert_eq!(e.text, "tcp://81:b.example:x");
        assert_eq!(&text[e.offset..e.offset + 1], "x");
    }

    #[test]
    fn unclosed_brace_is_accepted_and_does_not_swallow_later_entries() {
        let text = "http://80:a.b:1{check:/x,rise:3 http://81:c.d:2{fall:2}, tcp://82:e.f:3{rise:4";
        let (services, errors) = parse(text);
        assert_eq!(services.len(), 3, "{errors:?}");
        assert_eq!(services[0].1.check.rise(), 3);
        assert_eq!(services[1].1.listen.get(), 81);
        assert_eq!(services[1].1.check.fall(), 2);
        assert_eq!(services[2].1.check.rise(), 4);
        let reasons: Vec<_> = errors.iter().map(|e| (e.entry, e.reason.clone())).collect();
        assert_eq!(
            reasons,
            [
                (Some(0), Reason::MissingClosingBrace),
                (Some(2), Reason::MissingClosingBrace)
            ]
        );
        assert!(errors.iter().all(ConfigError::is_warning));
    }

    /// Every row of Moirai's accepted inputs that moirai once refused:
    /// accepted, running, and a warning that says what was done.
    #[test]
    fn what_moirai_accepts_runs_with_a_warning() {
        let warned = |text: &str| {
            let (s, w) =
                parse_entry_with_warnings(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert!(w.iter().all(|(_, r)| r.is_warning()), "{text}: {w:?}");
            (s, w.into_iter().map(|(_, r)| r).collect::<Vec<_>>())
        };
        let (s, w) = warned("http://80:a.b:1{rise:300,fall:65535}");
        assert_eq!((s.check.rise(), s.check.fall()), (300, 65535));
        assert_eq!(
            w,
            [
                Reason::LargeCount("rise", 300),
                Reason::LargeCount("fall", 65535)
            ]
        );
        let (s, w) = warned("http://80:a.b:1{rise:2,check:/a,rise:5}");
        assert_eq!(s.check.rise(), 5);
        assert_eq!(w, [Reason::DuplicateParameter("rise")]);
        let (s, w) = warned("http://80:a.b:1{check:healthz}");
        assert_eq!(s.check.path.as_ref().unwrap().as_str(), "/healthz");
        assert_eq!(s.check.path.as_ref().unwrap().written(), "healthz");
        assert_eq!(w, [Reason::CheckPathWithoutSlash("healthz".into())]);
        let (s, w) = warned("http://80:a.b:1{check:/h");
        assert_eq!(s.check.path.unwrap().as_str(), "/h");
        assert_eq!(w, [Reason::MissingClosingBrace]);
        let (s, w) = warned("http://80:a.b:1{verify_host:api.example.com}");
        assert_eq!(s.verify_host, None);
        assert_eq!(w, [Reason::VerifyHostIgnored("http")]);
        let (s, w) = warned("https://443:a.b:1{verify_host:API.example.com}");
        assert_eq!(s.verify_host.unwrap().as_str(), "api.example.com");
        assert!(w.is_empty());
        let (s, w) = warned("http://80:a.b:1{}");
        assert_eq!(s.check, HealthCheck::default());
        assert!(w.is_empty());
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "http://80:web.example:8080",
            "https+insecure://443:web.example{check:/h,port:9,rise:3,fall:2}",
            "http://80:web.example:1{check:h,rise:2}",
            "https://443:tlsbe.example:8443{check:/h,verify_host:api.example.com}",
            "tcp-proxy-v2://1:[::1]:65535",
        ] {
            assert_eq!(ok(text).to_string(), text);
        }
    }
}
