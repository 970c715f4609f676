//! Configuration errors: one per bad key or portmap entry, each saying which
//! key, which entry, which byte and why. The parser collects them instead of
//! stopping, so valid entries still form a configuration.

use std::fmt;

use serde::Serialize;

/// One problem in the metadata, located precisely enough for an operator to
/// find it without reading the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// The full metadata key, e.g. `cloud.tritoncompute:portmap`.
    pub key: String,
    /// For list-valued keys (portmap, metrics_acl, certificate_name): the
    /// index of the bad entry, counting from 0 over non-empty entries.
    pub entry: Option<usize>,
    /// Byte offset of the problem within the key's whole value.
    pub offset: usize,
    /// The text of the bad entry (or the whole value for scalar keys).
    pub text: String,
    /// What is wrong, in words.
    pub reason: Reason,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        // Offsets help inside lists (portmap, names, prefixes); for a
        // single value the text itself says where.
        if let Some(entry) = self.entry {
            write!(f, " entry {entry} at byte {}", self.offset)?;
        }
        write!(f, ": {} (in {:?})", self.reason, self.text)
    }
}

impl ConfigError {
    /// Whether this is a warning: the value was accepted (as Moirai accepts
    /// it) or replaced by the default, and the configuration runs.
    pub fn is_warning(&self) -> bool {
        self.reason.is_warning()
    }
}

impl std::error::Error for ConfigError {}

/// What Triton-Moirai does with metadata that uses one of our
/// [`Extension`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoiraiDoes {
    /// Its portmap parser rejects the entry: that service does not run
    /// there.
    DropsEntry,
    /// It refuses the whole key: its defaults run there.
    RefusesKey,
}

impl fmt::Display for MoiraiDoes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoiraiDoes::DropsEntry => "drops this portmap entry (the service does not run there)",
            MoiraiDoes::RefusesKey => "refuses this key (its defaults run there)",
        })
    }
}

/// Something moirai reads that Triton-Moirai does not. During a migration
/// one Moirai and one moirai may run the same metadata; each extension
/// used makes them differ, so `moirai check` warns on each one it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// A portmap parameter of ours (Moirai knows check, port, rise, fall).
    Parameter(&'static str),
    /// A `timeouts` name of ours (Moirai knows queue, connect, client,
    /// server).
    Timeout(&'static str),
    /// A parameter or timeout name not in lower case: Moirai matches names
    /// exactly.
    UpperCaseName,
    /// An empty parameter, as in `{}` or `{check:/h,}`: Moirai wants
    /// `name:value` between every two commas.
    EmptyParameter,
    /// An IPv6 backend literal in brackets: Moirai splits the entry at
    /// every `:`.
    BracketedIpv6,
    /// Port 65535 to listen on, connect to or check: Moirai's ports stop at
    /// 65534.
    Port65535,
    /// `timeouts` separated by spaces: Moirai splits at commas only.
    SpaceSeparatedTimeouts,
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extension::Parameter(p) => write!(f, "the parameter {p:?}"),
            Extension::Timeout(t) => write!(f, "the timeout {t:?}"),
            Extension::UpperCaseName => f.write_str("a name with capitals"),
            Extension::EmptyParameter => f.write_str("an empty parameter"),
            Extension::BracketedIpv6 => f.write_str("an IPv6 backend literal"),
            Extension::Port65535 => f.write_str("port 65535"),
            Extension::SpaceSeparatedTimeouts => f.write_str("a space between timeouts"),
        }
    }
}

/// Why a key or entry was refused. Precise variants, so tests and metrics can
/// tell the cases apart; `Display` gives the sentence an operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `loadbalancer` holds something other than `true` or `false`.
    NotABoolean,
    /// The service type before `://` is not one of the six; the nearest
    /// one, if it looks like a typo of it.
    UnknownServiceType(String, Option<&'static str>),
    /// The entry has no `://` after its type.
    MissingScheme,
    /// A port is absent where one is required.
    MissingPort(&'static str),
    /// A port is not a decimal number in 1..=65535.
    InvalidPort(&'static str, String),
    /// The backend is empty.
    MissingBackend,
    /// The backend is neither a DNS name nor an IP literal.
    InvalidHostName(String, &'static str),
    /// An IPv6 literal without brackets or with a broken bracket.
    InvalidIpv6Literal(String),
    /// An IP-literal backend without a port: there is nothing to ask SRV.
    IpBackendNeedsPort,
    /// `{` without its `}`, or text after the `}`.
    UnbalancedBraces,
    /// Text after the backend that is neither `:port` nor `{params}`.
    TrailingText(String),
    /// A parameter that is not one of [`PARAMETERS`] (lower case); the
    /// nearest one, if it looks like a typo of it.
    ///
    /// [`PARAMETERS`]: super::portmap::PARAMETERS
    UnknownParameter(String, Option<&'static str>),
    /// A health-check parameter without `:value`.
    ParameterWithoutValue(String),
    /// A parameter given twice in one entry; the last value is used
    /// (warning, as Moirai does).
    DuplicateParameter(&'static str),
    /// `check:` path that holds unsafe bytes.
    InvalidCheckPath(String),
    /// `check:path` without its leading `/`; the `/` is added (warning).
    CheckPathWithoutSlash(String),
    /// The health-check parameters have no closing `}` (warning: accepted
    /// as Moirai accepts it).
    MissingClosingBrace,
    /// `rise`/`fall` that is not a number in 1..=65535.
    InvalidCount(&'static str, String),
    /// `rise`/`fall` above 100: accepted, as Moirai accepts any 16-bit
    /// count, but worth a look (warning).
    LargeCount(&'static str, u16),
    /// `verify_host:` on a service that does not verify backends (not
    /// `https`): ignored (warning).
    VerifyHostIgnored(&'static str),
    /// One of moirai's HTTP parameters on a type it does not apply to:
    /// ignored (warning).
    ParameterIgnored(&'static str, &'static str),
    /// `redirect:` is not `https` or `https:PORT`.
    InvalidRedirect(String),
    /// `h2:` is not `on` or `off`.
    InvalidH2(String),
    /// `redirect` without `trust_forwarded`: every request is redirected
    /// and the backend part is never used (warning).
    RedirectWithoutBackend,
    /// `certificate_name` is set but no ACME challenge can work here.
    NoAcmeChallenge(String),
    /// `metrics_port` is a service's listen port: the service keeps the
    /// port, metrics are not served.
    MetricsPortTaken(u16, usize),
    /// A second service on a port already taken by an earlier entry.
    DuplicateListenPort(u16, usize),
    /// A number key that is not an integer; the default is used
    /// (warning).
    NotAnInteger {
        /// The value as written.
        value: String,
        /// What is used instead.
        used: u64,
    },
    /// A number outside its range; the value used instead is given
    /// (warning).
    OutOfRange {
        /// The value as written.
        value: String,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
        /// What is used instead.
        used: u64,
    },
    /// A `certificate_name` entry that is not a DNS name.
    InvalidCertificateName(String),
    /// A `metrics_acl` entry that is not an IP prefix.
    InvalidPrefix(String),
    /// `syslog` is not `HOST:PORT`.
    InvalidSyslogTarget(String),
    /// `timeouts` names a key other than queue, connect, client, server.
    UnknownTimeout(String),
    /// A timeout value that is not `N`, `Nms` or `Ns`.
    InvalidDuration(String),
    /// `timeouts` entries must be `name:value`.
    MalformedTimeouts(String),
    /// The same timeout given twice: the last one is used.
    DuplicateTimeout(&'static str),
    /// `0`: no timeout at all.
    NoTimeout(&'static str),
    /// A `cloud.tritoncompute:` key that no balancer reads (the text after
    /// the prefix): ignored, probably misspelt (warning).
    /// The nearest known key, if it looks like a typo of it.
    UnknownKey(String, Option<&'static str>),
    /// The portmap holds no entry: nothing is served (warning).
    EmptyPortmap,
    /// `loadbalancer` is not `true`: `moirai run` exits 96
    /// (`SMF_EXIT_ERR_CONFIG`) at start. Said by `moirai check` only; the
    /// running balancer keeps its configuration instead.
    LoadBalancerOff(String),
    /// Something of ours that Triton-Moirai does not read: what runs here
    /// does not run on a Moirai balancer with the same metadata (a
    /// migration's mixed pair). Said by `moirai check` (warning).
    NotInMoirai(Extension, MoiraiDoes),
}

impl Reason {
    /// Whether the configuration still runs with this problem, with the
    /// value Moirai would also have used: a warning, not an error.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Reason::DuplicateParameter(_)
                | Reason::CheckPathWithoutSlash(_)
                | Reason::MissingClosingBrace
                | Reason::LargeCount(..)
                | Reason::VerifyHostIgnored(_)
                | Reason::ParameterIgnored(..)
                | Reason::RedirectWithoutBackend
                | Reason::NotAnInteger { .. }
                | Reason::OutOfRange { .. }
                | Reason::DuplicateTimeout(_)
                | Reason::NoTimeout(_)
                | Reason::UnknownKey(..)
                | Reason::EmptyPortmap
                | Reason::NotInMoirai(..)
        )
    }
}

/// ` (did you mean `NAME`?)` when a known name is near, else nothing: the
/// usual unknown name is a typo of a known one.
fn did_you_mean(near: Option<&str>) -> String {
    near.map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// The known name nearest to `word` (ignoring ASCII case), if it is near
/// enough to be a typo: at most one edit in three characters, never more
/// than three.
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (edit_distance(&word, &k.to_ascii_lowercase()), k))
        .filter(|&(d, k)| d <= 3 && d * 3 <= word.len().max(k.len()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Damerau-Levenshtein distance (optimal string alignment) over bytes: a
/// swapped pair of letters, the commonest typo, counts as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // Three rows: two back (for transpositions), one back, this one.
    let mut two: Vec<usize> = vec![0; b.len() + 1];
    let mut one: Vec<usize> = (0..=b.len()).collect();
    let mut row: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (one[j] + 1).min(row[j - 1] + 1).min(one[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(two[j - 2] + 1);
            }
        }
        std::mem::swap(&mut two, &mut one);
        std::mem::swap(&mut one, &mut row);
    }
    one[b.len()]
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotABoolean => f.write_str("must be \"true\" to enable load balancing"),
            Reason::UnknownServiceType(t, near) => write!(
                f,
                "unknown service type {t:?}{}; expected http, https, https+insecure, https-http, tcp or tcp-proxy-v2",
                did_you_mean(*near)
            ),
            Reason::MissingScheme => {
                f.write_str("expected TYPE://LISTEN_PORT:BACKEND[:PORT][{PARAMS}]")
            }
            Reason::MissingPort(what) => write!(f, "missing {what} port"),
            Reason::InvalidPort(what, v) => {
                write!(f, "{what} port {v:?} is not a number from 1 to 65535")
            }
            Reason::MissingBackend => f.write_str("missing backend name or address"),
            Reason::InvalidHostName(h, why) => write!(f, "backend {h:?} is not a DNS name: {why}"),
            Reason::InvalidIpv6Literal(h) => write!(
                f,
                "{h:?} is not a valid IPv6 literal; write IPv6 backends in brackets, e.g. [2001:db8::1]:8080"
            ),
            Reason::IpBackendNeedsPort => f.write_str(
                "an IP-literal backend needs a port (SRV discovery only works with DNS names)",
            ),
            Reason::UnbalancedBraces => f.write_str("unbalanced { } around health-check parameters"),
            Reason::TrailingText(t) => write!(f, "unexpected text {t:?} after the backend"),
            Reason::UnknownParameter(p, near) => write!(
                f,
                "unknown parameter {p:?}{}; expected check, port, rise, fall, verify_host, redirect or trust_forwarded",
                did_you_mean(*near)
            ),
            Reason::ParameterWithoutValue(p) => write!(f, "parameter {p:?} needs a value after ':'"),
            Reason::DuplicateParameter(p) => {
                write!(f, "parameter {p:?} is given twice; the last value is used")
            }
            Reason::InvalidCheckPath(p) => write!(
                f,
                "check path {p:?} must hold only visible ASCII, without ',', '{{' or '}}'"
            ),
            Reason::CheckPathWithoutSlash(p) => {
                write!(f, "check path {p:?} does not start with '/'; using \"/{p}\"")
            }
            Reason::MissingClosingBrace => f.write_str(
                "the health-check parameters have no closing '}'; read as if it were there",
            ),
            Reason::InvalidCount(what, v) => {
                write!(f, "{what} {v:?} is not a number from 1 to 65535")
            }
            Reason::LargeCount(what, n) => write!(
                f,
                "{what} {n} is above 100: at one check every 2 s that is {} s; accepted",
                u32::from(*n) * 2
            ),
            Reason::VerifyHostIgnored(kind) => write!(
                f,
                "verify_host applies to https services only; ignored on {kind}"
            ),
            Reason::ParameterIgnored(p, kind) => write!(
                f,
                "{p} applies to {} services only; ignored on {kind}",
                if *p == "redirect" { "http" } else { "HTTP" }
            ),
            Reason::InvalidRedirect(v) => {
                write!(f, "redirect {v:?} is not https or https:PORT")
            }
            Reason::InvalidH2(v) => write!(f, "h2 {v:?} is not on or off"),
            Reason::RedirectWithoutBackend => f.write_str(
                "every request is redirected to https: the backend is never used and not health-checked (add trust_forwarded to proxy requests a trusted proxy received over https)",
            ),
            Reason::NoAcmeChallenge(why) => {
                write!(f, "{why}; the self-signed certificate is served")
            }
            Reason::MetricsPortTaken(port, entry) => write!(
                f,
                "metrics port {port} is the listen port of portmap entry {entry}; the service keeps it and metrics are not served"
            ),
            Reason::DuplicateListenPort(port, first) => write!(
                f,
                "port {port} is already used by entry {first}; each service needs its own listen port"
            ),
            Reason::NotAnInteger { value, used } => {
                write!(f, "{value:?} is not an integer; using {used}")
            }
            Reason::OutOfRange { value, min, max, used } => {
                write!(f, "{value} is outside {min} to {max}; using {used}")
            }
            Reason::InvalidCertificateName(n) => write!(f, "{n:?} is not a DNS name"),
            Reason::InvalidPrefix(p) => {
                write!(f, "{p:?} is not an IP prefix such as 10.0.0.0/8 or 2001:db8::/32")
            }
            Reason::InvalidSyslogTarget(t) => write!(f, "{t:?} is not HOST or HOST:PORT"),
            Reason::UnknownTimeout(k) => write!(
                f,
                "unknown timeout {k:?}{}; expected queue, connect, client, server or tunnel (the whole key is ignored)",
                did_you_mean(closest(k, ["queue", "connect", "client", "server", "tunnel"]))
            ),
            Reason::InvalidDuration(v) => write!(
                f,
                "{v:?}: the value is not a duration; write milliseconds as 500 or 500ms, seconds as 5s (the whole key is ignored)"
            ),
            Reason::MalformedTimeouts(t) => write!(
                f,
                "{t:?} is not name:value; expected e.g. {{connect:2s,client:55s}} (the whole key is ignored)"
            ),
            Reason::DuplicateTimeout(k) => {
                write!(f, "timeout {k:?} is given twice; the last one is used")
            }
            Reason::NoTimeout(k) => write!(
                f,
                "{k}:0 means no {k} timeout at all, as HAProxy reads it: {}",
                match *k {
                    "connect" => "a connect waits until the system gives up",
                    "client" => "idle client connections are never closed",
                    _ => "a silent backend is waited for forever",
                }
            ),
            Reason::UnknownKey(_, near) => write!(f, "unknown key, ignored{}", did_you_mean(*near)),
            Reason::EmptyPortmap => f.write_str("the portmap is empty: no service runs"),
            Reason::LoadBalancerOff(why) => write!(
                f,
                "load balancing is off: the key is {why}, not \"true\"; `moirai run` exits 96 (SMF_EXIT_ERR_CONFIG) and serves nothing"
            ),
            Reason::NotInMoirai(what, does) => {
                write!(f, "moirai accepts {what}; Triton-Moirai {does}")
            }
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_a_swap_as_one() {
        assert_eq!(edit_distance("http", "http"), 0);
        assert_eq!(edit_distance("htp", "http"), 1);
        assert_eq!(edit_distance("chcek", "check"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("certifcate_nmae", "certificate_name"), 2);
    }

    #[test]
    fn closest_suggests_typos_only() {
        let types = [
            "http",
            "https",
            "https+insecure",
            "https-http",
            "tcp",
            "tcp-proxy-v2",
        ];
        let params = ["check", "port", "rise", "fall", "verify_host"];
        assert_eq!(closest("htp", types), Some("http"));
        assert_eq!(closest("HTTPS-HTP", types), Some("https-http"));
        assert_eq!(closest("tpc", types), Some("tcp"));
        assert_eq!(closest("ftp", types), None);
        assert_eq!(closest("HTTP", types), Some("http"), "itself first");
        assert_eq!(closest("chek", params), Some("check"));
        assert_eq!(closest("verifyhost", params), Some("verify_host"));
        assert_eq!(closest("bogus", params), None);
    }

    #[test]
    fn unknown_names_say_the_closest_known_one() {
        let said = |r: Reason| r.to_string();
        assert!(said(Reason::UnknownServiceType("htp".into(), Some("http")))
            .contains("unknown service type \"htp\" (did you mean `http`?)"));
        assert!(said(Reason::UnknownParameter("x".into(), None)).ends_with(
            "\"x\"; expected check, port, rise, fall, verify_host, redirect or trust_forwarded"
        ));
        assert!(said(Reason::UnknownTimeout("conect".into())).contains("`connect`"));
        assert_eq!(
            said(Reason::UnknownKey(
                "certifcate_name".into(),
                Some("certificate_name")
            )),
            "unknown key, ignored (did you mean `certificate_name`?)"
        );
    }
}
