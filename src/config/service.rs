//! One portmap entry as a typed value: the [`Service`], its
//! [`ServiceKind`], [`BackendTarget`] and [`HealthCheck`], each printed
//! back in portmap syntax (parsing the output gives the same value). The
//! grammar that builds them, and its errors, is `portmap.rs`'s.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU16;

use super::hostname::HostName;
use super::keys::IpPrefix;

/// The six service types of the guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// Plain HTTP in and out, with `X-Forwarded-For`.
    Http,
    /// TLS in, TLS out with the backend's certificate verified.
    Https,
    /// TLS in, TLS out without verification.
    HttpsInsecure,
    /// TLS in, plain HTTP out: the recommended termination.
    HttpsHttp,
    /// Bytes through, untouched.
    Tcp,
    /// Bytes through, after a PROXY protocol v2 header.
    TcpProxyV2,
}

impl ServiceKind {
    /// Every kind, for tables and property tests.
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::Http,
        ServiceKind::Https,
        ServiceKind::HttpsInsecure,
        ServiceKind::HttpsHttp,
        ServiceKind::Tcp,
        ServiceKind::TcpProxyV2,
    ];

    /// The portmap spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Http => "http",
            ServiceKind::Https => "https",
            ServiceKind::HttpsInsecure => "https+insecure",
            ServiceKind::HttpsHttp => "https-http",
            ServiceKind::Tcp => "tcp",
            ServiceKind::TcpProxyV2 => "tcp-proxy-v2",
        }
    }

    /// Parses a type name, ignoring ASCII case.
    pub fn parse(s: &str) -> Option<ServiceKind> {
        ServiceKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether the balancer speaks HTTP on this service (vs byte passthrough).
    pub fn is_http(self) -> bool {
        !matches!(self, ServiceKind::Tcp | ServiceKind::TcpProxyV2)
    }

    /// Whether clients speak TLS to the balancer on this service.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            ServiceKind::Https | ServiceKind::HttpsInsecure | ServiceKind::HttpsHttp
        )
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a service's backends come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendTarget {
    /// An IP literal with its port: one fixed backend, no DNS.
    Ip(SocketAddr),
    /// A name resolved by A/AAAA; every address gets `port`.
    Dns {
        /// The name to resolve.
        name: HostName,
        /// The port every resolved address gets.
        port: NonZeroU16,
    },
    /// A name resolved by SRV at the same name: targets and ports from DNS.
    Srv {
        /// The name whose SRV records list the backends.
        name: HostName,
    },
}

impl BackendTarget {
    /// `"ip"`, `"a"` or `"srv"`: how the backend set is found.
    pub fn resolve_mode(&self) -> &'static str {
        match self {
            BackendTarget::Ip(_) => "ip",
            BackendTarget::Dns { .. } => "a",
            BackendTarget::Srv { .. } => "srv",
        }
    }

    /// The backend port, when the portmap gives one.
    pub fn port(&self) -> Option<u16> {
        match self {
            BackendTarget::Ip(a) => Some(a.port()),
            BackendTarget::Dns { port, .. } => Some(port.get()),
            BackendTarget::Srv { .. } => None,
        }
    }

    /// The name or address, as an operator wrote it (IPv6 without brackets).
    pub fn host(&self) -> String {
        match self {
            BackendTarget::Ip(a) => a.ip().to_string(),
            BackendTarget::Dns { name, .. } | BackendTarget::Srv { name } => name.to_string(),
        }
    }
}

impl fmt::Display for BackendTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendTarget::Ip(a) => write!(f, "{a}"),
            BackendTarget::Dns { name, port } => write!(f, "{name}:{port}"),
            BackendTarget::Srv { name } => write!(f, "{name}"),
        }
    }
}

/// A health-check HTTP path: starts with `/`, visible ASCII only, so it can
/// go into a request line unescaped; no `,`, `{` or `}`, which the portmap
/// grammar reserves (percent-encode them). Moirai passes `check:healthz`
/// to HAProxy as written; the `/` is added here and the text as written is
/// kept, to print the entry back and for Moirai's cookie key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckPath {
    path: String,
    written: String,
}

impl CheckPath {
    /// Validates `s` as a request target, adding a missing leading `/`.
    pub fn parse(s: &str) -> Option<CheckPath> {
        let ok = !s.is_empty()
            && s.len() <= 1024
            && s.bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'{' | b'}' | b','));
        let path = if s.starts_with('/') {
            s.to_owned()
        } else {
            format!("/{s}")
        };
        ok.then(|| CheckPath {
            path,
            written: s.to_owned(),
        })
    }

    /// The path requested, with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The path as the portmap wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }
}

/// A rise or fall count, 1..=65535 as in Moirai (HAProxy takes any
/// positive count); above 100 is accepted with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Count(u16);

impl Count {
    /// Counts above this get a warning: 100 checks at 2 s is over three
    /// minutes, rarely what anyone meant.
    pub const USUAL_MAX: u16 = 100;

    /// `n` if it is at least 1.
    pub fn new(n: u16) -> Option<Count> {
        (n >= 1).then_some(Count(n))
    }

    /// The count.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// Health-check parameters of one service, as written; the guide's
/// defaults apply to what is not given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HealthCheck {
    /// `check:/path`: an HTTP check instead of (on top of) the TCP connect.
    pub path: Option<CheckPath>,
    /// `port:N`: the port checked, instead of the backend's.
    pub port: Option<NonZeroU16>,
    /// `rise:N`, if given.
    pub rise: Option<Count>,
    /// `fall:N`, if given.
    pub fall: Option<Count>,
}

impl HealthCheck {
    /// The guide's default rise.
    pub const DEFAULT_RISE: u16 = 2;
    /// The guide's default fall.
    pub const DEFAULT_FALL: u16 = 1;

    /// Consecutive successes before a backend is used (default 2).
    pub fn rise(&self) -> u16 {
        self.rise.map_or(Self::DEFAULT_RISE, Count::get)
    }

    /// Consecutive failures before a backend is dropped (default 1).
    pub fn fall(&self) -> u16 {
        self.fall.map_or(Self::DEFAULT_FALL, Count::get)
    }
}

/// One valid portmap entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// The service type.
    pub kind: ServiceKind,
    /// The port the balancer listens on (all addresses).
    pub listen: NonZeroU16,
    /// Where the backends come from.
    pub backend: BackendTarget,
    /// Health-check parameters.
    pub check: HealthCheck,
    /// `verify_host:NAME` (moirai's own parameter, `https` only): the name
    /// backend certificates must carry, also sent as SNI. Without it the
    /// chain is verified and the name is not, as in Moirai.
    pub verify_host: Option<HostName>,
    /// `redirect:https[:PORT]` (moirai's own, `http` only): every request
    /// is answered with a redirect to https on this port (443 unless
    /// given), no backend contacted.
    pub redirect: Option<NonZeroU16>,
    /// `trust_forwarded:PREFIX ...` (moirai's own, HTTP types): clients
    /// from these prefixes (another proxy, a CDN) may set
    /// `X-Forwarded-Proto` and `-Port`, which then pass through.
    pub trust_forwarded: Vec<IpPrefix>,
    /// HTTP/2 is offered to this service's clients (HTTP types): ALPN `h2`
    /// on TLS, the cleartext preface on `http`. moirai's own `h2:off`
    /// turns it off: HTTP/1.1 only, as Moirai.
    pub h2: bool,
}

impl Service {
    /// Whether the backends are used at all: a redirecting service only
    /// proxies requests a trusted proxy says came over https.
    pub fn uses_backends(&self) -> bool {
        self.redirect.is_none() || !self.trust_forwarded.is_empty()
    }

    /// Whether `ip` may set `X-Forwarded-Proto`/`-Port`.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.trust_forwarded.iter().any(|p| p.contains(ip))
    }
}

impl fmt::Display for Service {
    /// Prints the entry back in portmap syntax; parsing the output gives the
    /// same value (property-tested).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.kind, self.listen, self.backend)?;
        let mut params = Vec::new();
        if let Some(p) = &self.check.path {
            params.push(format!("check:{}", p.written()));
        }
        if let Some(p) = self.check.port {
            params.push(format!("port:{p}"));
        }
        if let Some(n) = self.check.rise {
            params.push(format!("rise:{}", n.get()));
        }
        if let Some(n) = self.check.fall {
            params.push(format!("fall:{}", n.get()));
        }
        if let Some(n) = &self.verify_host {
            params.push(format!("verify_host:{n}"));
        }
        if let Some(p) = self.redirect {
            params.push(format!("redirect:https:{p}"));
        }
        if !self.trust_forwarded.is_empty() {
            let list: Vec<String> = self
                .trust_forwarded
                .iter()
                .map(ToString::to_string)
                .collect();
            params.push(format!("trust_forwarded:{}", list.join(" ")));
        }
        if !self.h2 {
            params.push("h2:off".to_owned());
        }
        if !params.is_empty() {
            write!(f, "{{{}}}", params.join(","))?;
        }
        Ok(())
    }
}
