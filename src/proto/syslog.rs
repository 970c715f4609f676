//! Syslog messages, without I/O: formatted into a caller's buffer (reused,
//! so a warm sender allocates nothing) and sent as one UDP datagram each.
//! Facility `local0`, as HAProxy's `log HOST:PORT local0` in today's image.
//!
//! Two formats ([`Format`]):
//! - **RFC 3164** (the default): what Moirai's HAProxy sends, `<PRI>Mmm dd
//!   hh:mm:ss HOSTNAME moirai[PID]: ` then HAProxy's `httplog` (or
//!   `tcplog`) text, field for field, so existing parsers (the
//!   `HAPROXYHTTP` and `HAPROXYTCP` grok patterns) keep working.
//!   Frontends are `feN`, backends `beN`, servers `rsN`, as Moirai names
//!   them; the connection counts HAProxy logs are 0 (moirai keeps none).
//! - **RFC 5424**: `<PRI>1 TIMESTAMP HOSTNAME moirai PROCID MSGID [SD] MSG`,
//!   with `httplog`'s fields as structured data, so a collector can read
//!   them without a regex, and a short readable message.

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

/// Which syslog format lines go out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// RFC 3164 with HAProxy's log text: what Moirai's image sends.
    #[default]
    Rfc3164,
    /// RFC 5424 with structured data.
    Rfc5424,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "rfc3164" => Ok(Format::Rfc3164),
            "rfc5424" => Ok(Format::Rfc5424),
            _ => Err(format!("{s:?} is not rfc3164 or rfc5424")),
        }
    }
}

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
    /// The service's place in the portmap: `feN`/`beN`.
    pub frontend: usize,
    /// Whether clients speak TLS to it (HAProxy marks such frontends `~`).
    pub tls: bool,
    /// The backend's server number `rsN` (0: none chosen).
    pub server: u16,
    /// The request's HTTP version (http).
    pub version: &'a str,
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

/// An access line in `format` into `out` (cleared first).
pub fn access_in(
    format: Format,
    out: &mut Vec<u8>,
    at: SystemTime,
    origin: &Origin,
    a: &Access<'_>,
) {
    match format {
        Format::Rfc3164 => access_3164(out, at, origin, a),
        Format::Rfc5424 => access(out, at, origin, a),
    }
}

/// An event line in `format` into `out` (cleared first).
pub fn event_in(
    format: Format,
    out: &mut Vec<u8>,
    at: SystemTime,
    origin: &Origin,
    sev: Severity,
    msg: &str,
) {
    match format {
        Format::Rfc3164 => {
            out.clear();
            header_3164(out, sev, at, origin);
            out.extend_from_slice(msg.as_bytes());
            out.truncate(MAX_LEN);
        }
        Format::Rfc5424 => event(out, at, origin, sev, msg),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1..12, day, "hh:mm:ss", milliseconds) of `at`, in UTC
/// (SmartOS zones run in UTC; RFC 3164 carries no zone).
fn civil(at: SystemTime) -> (String, usize, u32, String, String) {
    // "2026-11-27T14:50:00.123Z"
    let t = humantime::format_rfc3339_millis(at).to_string();
    let month = t.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let day = t.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(1);
    (
        t.get(0..4).unwrap_or("1970").to_owned(),
        month,
        day,
        t.get(11..19).unwrap_or("00:00:00").to_owned(),
        t.get(20..23).unwrap_or("000").to_owned(),
    )
}

/// `<PRI>Mmm dd hh:mm:ss HOSTNAME moirai[PID]: ` (RFC 3164 4.1).
fn header_3164(out: &mut Vec<u8>, sev: Severity, at: SystemTime, origin: &Origin) {
    let pri = LOCAL0 * 8 + sev as u8;
    let (_, month, day, time, _) = civil(at);
    let _ = write!(
        out,
        "<{pri}>{} {day:>2} {time} {} moirai[{}]: ",
        MONTHS[(month - 1).min(11)],
        origin.hostname,
        origin.pid
    );
}

/// Milliseconds, or -1 for a phase not reached (HAProxy's convention).
fn ms(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An access line as HAProxy's `httplog`/`tcplog` text, RFC 3164.
fn access_3164(out: &mut Vec<u8>, at: SystemTime, origin: &Origin, a: &Access<'_>) {
    out.clear();
    header_3164(out, Severity::Info, at, origin);
    let client = SocketAddr::new(a.client.ip().to_canonical(), a.client.port());
    // %tr: when the request (or connection) began.
    let began = at.checked_sub(a.t_total).unwrap_or(at);
    let (year, month, day, time, millis) = civil(began);
    let _ = write!(
        out,
        "{client} [{day:02}/{}/{year}:{time}.{millis}] fe{}{} be{}/",
        MONTHS[(month - 1).min(11)],
        a.frontend,
        if a.tls { "~" } else { "" },
        a.frontend,
    );
    if a.server == 0 {
        out.extend_from_slice(b"<NOSRV>");
    } else {
        let _ = write!(out, "rs{}", a.server);
    }
    let term = std::str::from_utf8(&a.term.0).unwrap_or("??");
    let total = ms(Some(a.t_total));
    if a.kind == "http" {
        // %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq "%r"
        let _ = write!(
            out,
            " {}/0/{}/{}/{total} {} {} - - {term}-- 0/0/0/0/0 0/0 ",
            ms(a.t_request),
            ms(a.t_connect),
            ms(a.t_response),
            a.status.map_or(-1, i64::from),
            a.bytes.1,
        );
        match a.request {
            Some((m, t)) => {
                out.push(b'"');
                logged(out, m);
                out.push(b' ');
                logged(out, t);
                let _ = write!(out, " {}\"", a.version);
            }
            None => out.extend_from_slice(b"\"<BADREQ>\""),
        }
    } else {
        // %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
        let _ = write!(
            out,
            " 0/{}/{total} {} {term} 0/0/0/0/0 0/0",
            ms(a.t_connect),
            a.bytes.1
        );
    }
    out.truncate(MAX_LEN);
}

/// An access line into `out` (cleared first), RFC 5424.
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
        out.extend_from_slice(b" \"");
        logged(out, m);
        out.push(b' ');
        logged(out, t);
        out.push(b'"');
    }
    out.truncate(MAX_LEN);
}

/// `text` as HAProxy 2.6 logs a request line: `"`, `#`, controls and
/// bytes of 0x7f and above as `#XX`, so a line cannot be ended, split or
/// disguised by what a client sent, and the HAPROXYHTTP grok pattern
/// still parses every line. (The parser refuses most of these bytes in
/// a target already; `"` is valid in one and is escaped here.)
fn logged(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b == b'"' || b == b'#' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[b'#', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
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
                frontend: 0,
                tls: false,
                server: 1,
                version: "HTTP/1.1",
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
            "<134>1 2026-11-18T11:06:40.123456Z lb-1 moirai 42 http [access@32473 client=\"192.0.2.7:50123\" service=\"80\" backend=\"10.0.0.5:8080\" status=\"200\" bytes_in=\"78\" bytes_out=\"1024\" request_us=\"10\" connect_us=\"250\" response_us=\"1500\" total_us=\"1800\" termination=\"--\"] 192.0.2.7:50123 :80 10.0.0.5:8080 200 \"GET /a#22b\""
        );
    }

    /// The `HAPROXYHTTP` grok pattern's shape, field by field, and the
    /// tcplog one.
    #[test]
    fn rfc3164_lines_are_haproxys_httplog_and_tcplog() {
        let mut out = Vec::new();
        let o = Origin::new("lb-1", 42);
        let a = Access {
            kind: "http",
            client: "[::ffff:192.0.2.7]:50123".parse().unwrap(),
            service: 443,
            frontend: 1,
            tls: true,
            server: 2,
            version: "HTTP/1.1",
            backend: Some("10.0.0.5:8080".parse().unwrap()),
            status: Some(200),
            request: Some(("GET", "/a?b=1")),
            bytes: (78, 1024),
            t_request: Some(Duration::from_millis(3)),
            t_connect: Some(Duration::from_millis(1)),
            t_response: Some(Duration::from_millis(15)),
            t_total: Duration::from_millis(20),
            term: Termination::NORMAL,
        };
        access_in(Format::Rfc3164, &mut out, at(), &o, &a);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "<134>Nov 18 11:06:40 lb-1 moirai[42]: 192.0.2.7:50123 [18/Nov/2026:11:06:40.103] fe1~ be1/rs2 3/0/1/15/20 200 1024 - - ---- 0/0/0/0/0 0/0 \"GET /a?b=1 HTTP/1.1\""
        );
        // What a client sent cannot end, split or disguise the line.
        let hostile = Access {
            request: Some(("GET", "/a\"b#c\r\n\u{1b}[31m\u{202e}?j={\"k\":[1]}")),
            ..a.clone()
        };
        access_in(Format::Rfc3164, &mut out, at(), &o, &hostile);
        let line = String::from_utf8(out.clone()).unwrap();
        assert!(
            line.ends_with(" \"GET /a#22b#23c#0D#0A#1B[31m#E2#80#AE?j={#22k#22:[1]} HTTP/1.1\""),
            "{line}"
        );
        access_in(Format::Rfc5424, &mut out, at(), &o, &hostile);
        let line = String::from_utf8(out.clone()).unwrap();
        assert!(
            line.ends_with(" \"GET /a#22b#23c#0D#0A#1B[31m#E2#80#AE?j={#22k#22:[1]}\""),
            "{line}"
        );
        // moirai's own 503: no server, no connect, no response time.
        let own = Access {
            server: 0,
            backend: None,
            status: Some(503),
            t_connect: None,
            t_response: None,
            term: Termination(*b"SC"),
            tls: false,
            ..a.clone()
        };
        access_in(Format::Rfc3164, &mut out, at(), &o, &own);
        let line = String::from_utf8(out.clone()).unwrap();
        assert!(
            line.contains(" fe1 be1/<NOSRV> 3/0/-1/-1/20 503 1024 - - SC-- "),
            "{line}"
        );
        let tcp = Access {
            kind: "tcp",
            request: None,
            status: None,
            t_request: None,
            ..a.clone()
        };
        access_in(Format::Rfc3164, &mut out, at(), &o, &tcp);
        let line = String::from_utf8(out.clone()).unwrap();
        assert!(
            line.ends_with(" fe1~ be1/rs2 0/1/20 1024 -- 0/0/0/0/0 0/0"),
            "{line}"
        );
        event_in(
            Format::Rfc3164,
            &mut out,
            at(),
            &o,
            Severity::Warning,
            "backend down",
        );
        assert_eq!(out, b"<132>Nov 18 11:06:40 lb-1 moirai[42]: backend down");
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
