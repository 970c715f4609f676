//! RFC 5424 syslog messages, without I/O: formatted into a caller's buffer
//! (reused, so a warm sender allocates nothing) and sent as one UDP
//! datagram each (RFC 5426).
//!
//! `<PRI>1 TIMESTAMP HOSTNAME moirai PROCID MSGID [SD] MSG`, facility
//! `local0`, as HAProxy's `log HOST:PORT local0` in today's image. Access
//! lines carry HAProxy `httplog`'s fields as structured data, so a
//! collector can read them without a regex, and a short readable message.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Facility `local0`.
const LOCAL0: u8 = 16;
/// The SD-ID of access lines (32473 is the private enterprise number RFC
/// 5424 uses for examples; moirai has none of its own).
const SD_ID: &str = "access@32473";
/// The longest datagram built: HAProxy's `len 4096`.
pub const MAX_LEN: usize = 4096;

/// RFC 5424 severities used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Errors.
    Error = 3,
    /// Warnings: a backend down, a failed read.
    Warning = 4,
    /// Normal but significant: configuration applied, backend up.
    Notice = 5,
    /// Access lines.
    Info = 6,
}

/// Who sends: the header fields that do not change per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// HOSTNAME: printable ASCII, no spaces, at most 255 bytes (RFC 5424
    /// 6.2.4); anything else becomes `-`.
    pub hostname: String,
    /// PROCID.
    pub pid: u32,
}

impl Origin {
    /// An origin for `hostname`, cleaned to what the header allows.
    pub fn new(hostname: &str, pid: u32) -> Origin {
        let ok = !hostname.is_empty()
            && hostname.len() <= 255
            && hostname.bytes().all(|b| (33..=126).contains(&b));
        Origin {
            hostname: if ok {
                hostname.to_owned()
            } else {
                "-".to_owned()
            },
            pid,
        }
    }
}

/// How a connection or request ended, as HAProxy's two-letter termination
/// state: who ended it (`C` client, `S` server, `P` proxy, `c`/`s` a client
/// or server timeout, `-` nobody: normal end), then in which phase (`R`
/// request, `C` connect, `H` response head, `D` data, `-` normal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination(pub [u8; 2]);

impl Termination {
    /// A normal end.
    pub const NORMAL: Termination = Termination(*b"--");
}

/// One HTTP request or one TCP connection, for an access line.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// `http` or `tcp` (the MSGID), from the service type.
    pub kind: &'a str,
    /// Client address and port.
    pub client: SocketAddr,
    /// The service's listen port.
    pub service: u16,
    /// The backend, if one was chosen.
    pub backend: Option<SocketAddr>,
    /// The status sent to the client (http).
    pub status: Option<u16>,
    /// Method and target (http).
    pub request: Option<(&'a str, &'a str)>,
    /// Bytes from the client and to the client.
    pub bytes: (u64, u64),
    /// From accept (or the end of the previous request) to the complete
    /// request head (http), HAProxy's Tq/TR.
    pub t_request: Option<Duration>,
    /// The backend connect, Tc.
    pub t_connect: Option<Duration>,
    /// From the complete request to the response head, Tr.
    pub t_response: Option<Duration>,
    /// The whole request or connection, Tt.
    pub t_total: Duration,
    /// How it ended.
    pub term: Termination,
}

/// Writes the header up to and including MSGID and its space.
fn header(out: &mut Vec<u8>, sev: Severity, at: SystemTime, origin: &Origin, msgid: &str) {
    let pri = LOCAL0 * 8 + sev as u8;
    let _ = write!(
        out,
        "<{pri}>1 {} {} moirai {} {msgid} ",
        humantime::format_rfc3339_micros(at),
        origin.hostname,
        origin.pid
    );
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 6.3.3).
fn param(out: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, " {name}=\"");
    let start = out.len();
    let _ = write!(out, "{value}");
    let mut i = start;
    while i < out.len() {
        if matches!(out[i], b'"' | b'\\' | b']') {
            out.insert(i, b'\\');
            i += 1;
        }
        i += 1;
    }
    out.push(b'"');
}

fn micros(d: Duration) -> u128 {
    d.as_micros()
}

/// An access line into `out` (cleared first).
pub fn access(out: &mut Vec<u8>, at: SystemTime, origin: &Origin, a: &Access<'_>) {
    out.clear();
    header(out, Severity::Info, at, origin, a.kind);
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    let client = SocketAddr::new(a.client.ip().to_canonical(), a.client.port());
    let _ = write!(out, "[{SD_ID}");
    param(out, "client", client);
    param(out, "service", a.service);
    match a.backend {
        Some(b) => param(out, "backend", b),
        None => param(out, "backend", "-"),
    }
    if let Some(s) = a.status {
        param(out, "status", s);
    }
    param(out, "bytes_in", a.bytes.0);
    param(out, "bytes_out", a.bytes.1);
    if let Some(t) = a.t_request {
        param(out, "request_us", micros(t));
    }
    if let Some(t) = a.t_connect {
        param(out, "connect_us", micros(t));
    }
    if let Some(t) = a.t_response {
        param(out, "response_us", micros(t));
    }
    param(out, "total_us", micros(a.t_total));
    param(
        out,
        "termination",
        std::str::from_utf8(&a.term.0).unwrap_or("??"),
    );
    out.push(b']');
    // The readable part, close to HAProxy's httplog.
    let _ = write!(out, " {client} :{} ", a.service);
    match a.backend {
        Some(b) => {
            let _ = write!(out, "{b}");
        }
        None => out.push(b'-'),
    }
    if let Some(s) = a.status {
        let _ = write!(out, " {s}");
    }
    if let Some((m, t)) = a.request {
        let _ = write!(out, " \"{m} {t}\"");
    }
    out.truncate(MAX_LEN);
}

/// An operational event (configuration applied, backend up or down,
/// errors) into `out` (cleared first).
pub fn event(out: &mut Vec<u8>, at: SystemTime, origin: &Origin, sev: Severity, msg: &str) {
    out.clear();
    header(out, sev, at, origin, "event");
    out.extend_from_slice(b"- ");
    out.extend_from_slice(msg.as_bytes());
    out.truncate(MAX_LEN);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456)
    }

    #[test]
    fn an_http_access_line_is_rfc5424_with_httplog_fields() {
        let mut out = Vec::new();
        let o = Origin::new("lb-1", 42);
        access(
            &mut out,
            at(),
            &o,
            &Access {
                kind: "http",
                client: "192.0.2.7:50123".parse().unwrap(),
                service: 80,
                backend: Some("10.0.0.5:8080".parse().unwrap()),
                status: Some(200),
                request: Some(("GET", "/a\"b")),
                bytes: (78, 1024),
                t_request: Some(Duration::from_micros(10)),
                t_connect: Some(Duration::from_micros(250)),
                t_response: Some(Duration::from_micros(1500)),
                t_total: Duration::from_micros(1800),
                term: Termination::NORMAL,
            },
        );
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "<134>1 2026-11-18T11:06:40.123456Z lb-1 moirai 42 http [access@32473 client=\"192.0.2.7:50123\" service=\"80\" backend=\"10.0.0.5:8080\" status=\"200\" bytes_in=\"78\" bytes_out=\"1024\" request_us=\"10\" connect_us=\"250\" response_us=\"1500\" total_us=\"1800\" termination=\"--\"] 192.0.2.7:50123 :80 10.0.0.5:8080 200 \"GET /a\"b\""
        );
    }

    #[test]
    fn sd_values_are_escaped_and_bad_hostnames_become_nil() {
        let mut out = Vec::new();
        param(&mut out, "x", "a\"b]c\\d");
        assert_eq!(out, b" x=\"a\\\"b\\]c\\\\d\"");
        assert_eq!(Origin::new("has space", 1).hostname, "-");
        assert_eq!(Origin::new("", 1).hostname, "-");
        let mut out = Vec::new();
        event(
            &mut out,
            at(),
            &Origin::new("h", 1),
            Severity::Warning,
            "backend down",
        );
        assert!(
            out.starts_with(b"<132>1 "),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert!(out.ends_with(b" h moirai 1 event - backend down"));
        let mut out = Vec::new();
        event(
            &mut out,
            at(),
            &Origin::new("h", 1),
            Severity::Error,
            &"x".repeat(10_000),
        );
        assert_eq!(out.len(), MAX_LEN);
    }
}
