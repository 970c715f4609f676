//! Remote syslog against a real receiver (socat): RFC 3164 lines in
//! HAProxy's httplog/tcplog text by default, read by the HAPROXYHTTP grok
//! pattern; RFC 5424 access lines for
//! http requests and tcp connections with HAProxy httplog's fields, event
//! lines for the control plane, and drops counted instead of blocking.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::backend::{Backend, Behaviour};
use crate::util::http::{HttpBackend, Reply};
use crate::util::{connect_within, free_port, local, metadata, temp_dir, Moirai, SECS};

/// socat receiving syslog datagrams on 127.0.0.1:`port` into a file. UDP
/// datagrams carry no separator; each message starts with `<PRI>1 `.
struct Receiver {
    child: Child,
    file: std::path::PathBuf,
}

impl Receiver {
    fn start(port: u16) -> Receiver {
        let file = temp_dir("syslog").join("received.log");
        std::fs::write(&file, "").unwrap();
        let child = Command::new("socat")
            .args([
                "-u",
                &format!("UDP-RECV:{port},bind=127.0.0.1"),
                &format!("OPEN:{},creat,append", file.display()),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("socat must be installed");
        // socat binds at once; give it a moment to be there.
        std::thread::sleep(Duration::from_millis(200));
        Receiver { child, file }
    }

    /// The messages received, split at each `<PRI>1 ` (RFC 5424) or
    /// `<PRI>Mmm ` (RFC 3164) header.
    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        let mut starts: Vec<usize> = text
            .match_indices('<')
            .map(|(i, _)| i)
            .filter(|&i| {
                let rest = &text[i + 1..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                let after = &rest[digits..];
                (1..=3).contains(&digits)
                    && (after.starts_with(">1 ")
                        || (after.starts_with('>')
                            && after[1..].starts_with(|c: char| c.is_ascii_uppercase())))
            })
            .collect();
        starts.push(text.len());
        starts
            .windows(2)
            .map(|w| text[w[0]..w[1]].to_owned())
            .collect()
    }

    /// Waits for a line containing every needle.
    fn wait_for(&self, needles: &[&str]) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .lines()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l;
            }
            assert!(
                start.elapsed() < SECS(10),
                "no syslog line with {needles:?}; got:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks the RFC 5424 header: `<PRI>1 TIMESTAMP HOST moirai PID MSGID `.
fn check_header(line: &str, pri: u8, pid: u32, msgid: &str) {
    let mut f = line.splitn(7, ' ');
    assert_eq!(f.next(), Some(format!("<{pri}>1").as_str()), "{line}");
    let ts = f.next().unwrap();
    assert!(
        ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "timestamp {ts:?} in {line}"
    );
    let host = f.next().unwrap();
    assert!(!host.is_empty() && host != "-", "{line}");
    assert_eq!(f.next(), Some("moirai"), "{line}");
    assert_eq!(f.next(), Some(pid.to_string().as_str()), "{line}");
    assert_eq!(f.next(), Some(msgid), "{line}");
}

/// A balancer logging to a real receiver by name (the hosts file, as an
/// operator would write the key), with one HTTP request (`REQUEST`) and one
/// 100-byte tcp echo through it.
struct Traffic {
    rx: Receiver,
    m: Moirai,
    hp: u16,
    tp: u16,
    web_port: u16,
    echo_port: u16,
    /// Bytes the HTTP client got back.
    got: usize,
    _backends: (HttpBackend, Backend),
}

const REQUEST: &str = "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

fn one_request_and_one_connection(extra: &[&str]) -> Traffic {
    let sport = free_port();
    let rx = Receiver::start(sport);
    const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let web = HttpBackend::start("127.0.0.1:0", |_| Reply::Bytes(REPLY.to_vec()));
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let (hp, tp) = (free_port(), free_port());
    let mut md: serde_json::Value = serde_json::from_str(&metadata(&format!(
        "http://{hp}:127.0.0.1:{} tcp://{tp}:127.0.0.1:{}",
        web.port(),
        echo.addr.port()
    )))
    .unwrap();
    md["cloud.tritoncompute:syslog"] = format!("logs.test:{sport}").into();
    let m = Moirai::start(&md.to_string(), "127.0.0.1 logs.test\n", extra);

    let mut c = connect_within(local(hp), SECS(5));
    c.write_all(REQUEST.as_bytes()).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));

    let mut t = connect_within(local(tp), SECS(5));
    t.write_all(&[1u8; 100]).unwrap();
    t.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    t.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 100);
    Traffic {
        rx,
        m,
        hp,
        tp,
        web_port: web.port(),
        echo_port: echo.addr.port(),
        got: got.len(),
        _backends: (web, echo),
    }
}

#[test]
fn access_and_event_lines_reach_a_real_receiver_in_rfc5424() {
    let Traffic {
        rx,
        m,
        hp,
        tp,
        web_port,
        echo_port,
        got,
        ..
    } = one_request_and_one_connection(&["--syslog-format", "rfc5424"]);
    let pid = m.pid();

    let http = rx.wait_for(&[" http [access@32473 ", &format!("service=\"{hp}\"")]);
    check_header(&http, 134, pid, "http");
    for field in [
        "client=\"127.0.0.1:".to_owned(),
        format!("backend=\"127.0.0.1:{web_port}\""),
        "status=\"200\"".to_owned(),
        format!("bytes_in=\"{}\"", REQUEST.len()),
        format!("bytes_out=\"{got}\""),
        "connect_us=\"".to_owned(),
        "response_us=\"".to_owned(),
        "total_us=\"".to_owned(),
        "termination=\"--\"".to_owned(),
        "\"GET /hello?x=1\"".to_owned(),
    ] {
        assert!(http.contains(&field), "{field} missing in {http}");
    }

    let tcp = rx.wait_for(&[" tcp [access@32473 ", &format!("service=\"{tp}\"")]);
    check_header(&tcp, 134, pid, "tcp");
    for field in [
        format!("backend=\"127.0.0.1:{echo_port}\""),
        "bytes_in=\"100\"".to_owned(),
        "bytes_out=\"100\"".to_owned(),
        "termination=\"--\"".to_owned(),
    ] {
        assert!(tcp.contains(&field), "{field} missing in {tcp}");
    }

    // Operational events: a backend coming up, a configuration applied.
    let up = rx.wait_for(&[" event - ", "is up"]);
    check_header(&up, 133, pid, "event");
    let gen = rx.wait_for(&[" event - generation "]);
    assert!(gen.contains("applied"), "{gen}");
}

/// logstash's `HAPROXYHTTP` and `HAPROXYTCP` grok patterns (with the
/// syslog header they expect), expanded into Python regular expressions:
/// an independent reader of the lines.
const GROK: &str = r#"
import re, sys
HEAD = r'^<\d+>[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2} \S+ [\w._/%-]+(?:\[\d+\])?: '
DATE = r'\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2}\.\d+\]'
INT = r'[+-]?\d+'
HTTP = (HEAD + r'(?P<ip>[0-9a-fA-F.:]+):(?P<port>\d+) ' + DATE + r' (?P<fe>\S+) (?P<be>\S+)/(?P<srv>\S+) '
        + INT + '/' + INT + '/' + INT + '/' + INT + r'/\S+ (?P<status>' + INT + r') \S+ .*? .*? (?P<term>\S+) '
        + INT + '/' + INT + '/' + INT + '/' + INT + r'/\S+ ' + INT + '/' + INT
        + r' "(?P<verb>\w+) (?P<req>\S+)(?: HTTP/(?P<ver>[\d.]+))?"$')
TCP = (HEAD + r'(?P<ip>[0-9a-fA-F.:]+):(?P<port>\d+) ' + DATE + r' (?P<fe>\S+) (?P<be>\S+)/(?P<srv>\S+) '
       + INT + '/' + INT + r'/\S+ \S+ (?P<term>\S+) ' + INT + '/' + INT + '/' + INT + '/' + INT + r'/\S+ ' + INT + '/' + INT + '$')
kind, line = sys.argv[1], sys.argv[2]
m = re.match(HTTP if kind == 'http' else TCP, line)
if not m:
    sys.exit('no match')
print(' '.join(f'{k}={v}' for k, v in sorted(m.groupdict().items())))
"#;

fn grok(kind: &str, line: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", GROK, kind, line])
        .output()
        .expect("python3 (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{kind} line does not match HAPROXY{}: {line}",
        kind.to_uppercase()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// By default, lines are what Moirai's HAProxy sends: RFC 3164 with the
/// httplog/tcplog text that existing parsers read.
#[test]
fn default_lines_are_rfc3164_httplog_that_haproxy_parsers_read() {
    let Traffic {
        rx,
        m,
        hp,
        _backends,
        ..
    } = one_request_and_one_connection(&[]);
    let http = rx.wait_for(&["\"GET /hello?x=1 HTTP/1.1\""]);
    assert!(http.starts_with("<134>"), "{http}");
    assert!(http.contains(&format!(" moirai[{}]: ", m.pid())), "{http}");
    let fields = grok("http", &http);
    for want in [
        "fe=fe0",
        "be=be0",
        "srv=rs1",
        "status=200",
        "term=----",
        "verb=GET",
        "ver=1.1",
    ] {
        assert!(fields.contains(want), "{want} not in {fields} ({http})");
    }
    let tcp = rx.wait_for(&[" fe1 be1/rs1 "]);
    let fields = grok("tcp", &tcp);
    assert!(fields.contains("term=--"), "{fields} ({tcp})");
    // A target with quotes (JSON in a query string) is forwarded, and its
    // line escapes them as HAProxy does, so the pattern still reads it.
    let mut c = connect_within(local(hp), SECS(5));
    c.write_all(b"GET /q?j={\"k\":[1]}&x=\"y\" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 "), "{got:?}");
    let quoted = rx.wait_for(&["\"GET /q?j={#22k#22:[1]}&x=#22y#22 HTTP/1.1\""]);
    let fields = grok("http", &quoted);
    assert!(
        fields.contains("req=/q?j={#22k#22:[1]}&x=#22y#22"),
        "{fields}"
    );
    // Events are RFC 3164 too.
    let up = rx.wait_for(&["is up"]);
    assert!(up.starts_with("<133>") && up.contains(" moirai["), "{up}");
}

#[test]
fn lines_that_cannot_be_sent_are_dropped_and_counted_not_waited_for() {
    // Nobody listens on the syslog port: every send fails fast.
    let (sport, mport, hp) = (free_port(), free_port(), free_port());
    let web = HttpBackend::start("127.0.0.1:0", |_| {
        Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec())
    });
    let mut md: serde_json::Value =
        serde_json::from_str(&metadata(&format!("http://{hp}:127.0.0.1:{}", web.port()))).unwrap();
    md["cloud.tritoncompute:syslog"] = format!("127.0.0.1:{sport}").into();
    md["cloud.tritoncompute:metrics_acl"] = "127.0.0.1".into();
    md["cloud.tritoncompute:metrics_port"] = mport.to_string().into();
    let _m = Moirai::start(&md.to_string(), "", &[]);
    let mut c = crate::util::http::Client::connect(local(hp));
    for _ in 0..20 {
        let r = c.exchange(&crate::util::http::get("/")).unwrap();
        assert_eq!(r.status, 200);
    }
    let mut s = connect_within(local(mport), SECS(5));
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let count = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    let (sent, dropped) = (
        count("moirai_syslog_sent_total"),
        count("moirai_syslog_dropped_total"),
    );
    // Refused datagrams: some sends fail (ICMP port unreachable makes the
    // next send on a connected socket fail), none block.
    assert!(dropped >= 1.0, "sent {sent} dropped {dropped}\n{text}");
    assert!(sent + dropped >= 20.0, "sent {sent} dropped {dropped}");
}
