//! The metadata protocol V2 client against a fake metadata server that
//! speaks the protocol as specified, including its failure modes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use moirai::config::keys;
use moirai::metadata::mdata::MdataClient;
use moirai::metadata::{Source, SourceError};

use crate::util::temp_dir;

/// How the fake server misbehaves on the next answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Trick {
    None,
    /// First a frame for another request id, then the right one.
    WrongIdFirst,
    /// A frame whose CRC does not match its body.
    BadCrc,
    /// FAILURE for everything.
    Failure,
    /// Close the connection instead of answering.
    Hangup,
    /// Refuse the V2 handshake.
    NoV2,
}

pub(crate) struct Fake {
    pub(crate) path: PathBuf,
    pub(crate) data: Arc<Mutex<HashMap<String, String>>>,
    trick: Arc<Mutex<Trick>>,
    connections: Arc<Mutex<usize>>,
    /// How long every answer waits: a hung metadata agent.
    delay: Arc<Mutex<Duration>>,
}

fn frame(id: &str, rest: &str) -> String {
    let body = format!("{id} {rest}");
    format!(
        "V2 {} {:08x} {body}\n",
        body.len(),
        crc32fast::hash(body.as_bytes())
    )
}

impl Fake {
    pub(crate) fn start() -> Fake {
        let path = temp_dir("mdata").join("metadata.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let data = Arc::new(Mutex::new(HashMap::new()));
        let trick = Arc::new(Mutex::new(Trick::None));
        let connections = Arc::new(Mutex::new(0));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (d, t, c, w) = (
            data.clone(),
            trick.clone(),
            connections.clone(),
            delay.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                *c.lock().unwrap() += 1;
                let (d, t, w) = (d.clone(), t.clone(), w.clone());
                std::thread::spawn(move || serve(conn, d, t, w));
            }
        });
        Fake {
            path,
            data,
            trick,
            connections,
            delay,
        }
    }

    pub(crate) fn set(&self, k: &str, v: &str) {
        self.data.lock().unwrap().insert(k.to_owned(), v.to_owned());
    }

    fn trick(&self, t: Trick) {
        *self.trick.lock().unwrap() = t;
    }

    fn client(&self) -> MdataClient {
        MdataClient::new(&self.path).with_timeout(Duration::from_millis(500))
    }
}

fn serve(
    conn: UnixStream,
    data: Arc<Mutex<HashMap<String, String>>>,
    trick: Arc<Mutex<Trick>>,
    delay: Arc<Mutex<Duration>>,
) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 || line != "NEGOTIATE V2\n" {
        return;
    }
    if *trick.lock().unwrap() == Trick::NoV2 {
        let _ = w.write_all(b"V1_ONLY\n");
        return;
    }
    w.write_all(b"V2_OK\n").unwrap();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // Check the client's framing as strictly as a real server would.
        let parts: Vec<&str> = line.trim_end_matches('\n').splitn(4, ' ').collect();
        assert_eq!(parts[0], "V2");
        let body = parts[3];
        assert_eq!(
            parts[1].parse::<usize>().unwrap(),
            body.len(),
            "length field"
        );
        assert_eq!(
            parts[2],
            format!("{:08x}", crc32fast::hash(body.as_bytes())),
            "crc field"
        );
        let mut words = body.splitn(3, ' ');
        let (id, op, payload) = (words.next().unwrap(), words.next().unwrap(), words.next());
        let payload = payload.map(|p| String::from_utf8(B64.decode(p).unwrap()).unwrap());
        let answer = match op {
            "GET" => match data.lock().unwrap().get(&payload.unwrap()) {
                Some(v) => format!("SUCCESS {}", B64.encode(v)),
                None => "NOTFOUND".to_owned(),
            },
            "KEYS" => {
                let mut keys: Vec<String> = data.lock().unwrap().keys().cloned().collect();
                keys.sort();
                format!("SUCCESS {}", B64.encode(keys.join("\n")))
            }
            "PUT" => {
                let inner = payload.unwrap();
                let (k, v) = inner.split_once(' ').unwrap();
                let k = String::from_utf8(B64.decode(k).unwrap()).unwrap();
                let v = String::from_utf8(B64.decode(v).unwrap()).unwrap();
                data.lock().unwrap().insert(k, v);
                "SUCCESS".to_owned()
            }
            _ => "FAILURE".to_owned(),
        };
        let wait = *delay.lock().unwrap();
        std::thread::sleep(wait);
        let t = std::mem::replace(&mut *trick.lock().unwrap(), Trick::None);
        let out = match t {
            Trick::None | Trick::NoV2 => frame(id, &answer),
            Trick::WrongIdFirst => frame("deadbeef", "SUCCESS V1JPTkc=") + &frame(id, &answer),
            Trick::BadCrc => {
                let f = frame(id, &answer);
                f.replacen(&f[3..].split(' ').nth(1).unwrap().to_owned(), "00000000", 1)
            }
            Trick::Failure => frame(id, "FAILURE"),
            Trick::Hangup => return,
        };
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn get_keys_and_put_round_trip() {
    let f = Fake::start();
    f.set(keys::LOADBALANCER, "true");
    f.set(
        keys::PORTMAP,
        "tcp://80:10.0.0.1:80 http://81:web.example:8080{check:/h}",
    );
    let mut c = f.client();
    assert_eq!(c.get(keys::LOADBALANCER).unwrap().as_deref(), Some("true"));
    assert_eq!(c.get("absent").unwrap(), None);
    c.put("triton.cns.acme-challenge", "token-1 token-2")
        .unwrap();
    assert_eq!(
        c.get("triton.cns.acme-challenge").unwrap().as_deref(),
        Some("token-1 token-2")
    );
    let k = c.keys().unwrap();
    assert!(
        k.contains(&keys::PORTMAP.to_owned()) && k.len() == 3,
        "{k:?}"
    );
    let md = c.read().unwrap();
    assert_eq!(md.len(), 2);
    assert_eq!(
        md[keys::PORTMAP],
        "tcp://80:10.0.0.1:80 http://81:web.example:8080{check:/h}"
    );
    // One connection served all of it.
    assert_eq!(*f.connections.lock().unwrap(), 1);
}

#[test]
fn answers_for_other_requests_are_dropped() {
    let f = Fake::start();
    f.set("k", "right");
    let mut c = f.client();
    f.trick(Trick::WrongIdFirst);
    assert_eq!(c.get("k").unwrap().as_deref(), Some("right"));
}

#[test]
fn a_bad_crc_is_an_error_and_the_next_request_reconnects() {
    let f = Fake::start();
    f.set("k", "v");
    let mut c = f.client();
    f.trick(Trick::BadCrc);
    let e = c.get("k").unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
    assert_eq!(*f.connections.lock().unwrap(), 2);
}

#[test]
fn failure_notfound_hangup_and_refused_handshake() {
    let f = Fake::start();
    f.set("k", "v");
    let mut c = f.client();
    f.trick(Trick::Failure);
    assert!(matches!(c.get("k"), Err(SourceError::Failure { .. })));
    assert_eq!(c.get("nope").unwrap(), None);
    f.trick(Trick::Hangup);
    assert!(c.get("k").is_err());
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
    let mut fresh = f.client();
    f.trick(Trick::NoV2);
    assert!(matches!(fresh.get("k"), Err(SourceError::Negotiation(_))));
    let mut gone = MdataClient::new("/nonexistent/metadata.sock");
    assert!(matches!(gone.read(), Err(SourceError::Io(..))));
}

#[test]
fn a_silent_server_times_out() {
    let path = temp_dir("mdata-silent").join("metadata.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let kept: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(5));
        drop(kept);
    });
    let mut c = MdataClient::new(&path).with_timeout(Duration::from_millis(300));
    let start = std::time::Instant::now();
    assert!(matches!(c.get("k"), Err(SourceError::Timeout(_))));
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn moirai_check_reads_the_socket() {
    let f = Fake::start();
    f.set(keys::LOADBALANCER, "true");
    f.set(
        keys::PORTMAP,
        "tcp://5432:postgres.svc.acct.dc.cns.test:5432",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["check", "--json", "--mdata-socket"])
        .arg(&f.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"][0]["listen"], 5432);
}

#[test]
fn a_hung_metadata_agent_never_delays_health_checks_or_status() {
    use crate::util::http::{ok, HttpBackend};
    use crate::util::{free_port, Moirai};
    let f = Fake::start();
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("x"));
    let port = free_port();
    f.set(keys::LOADBALANCER, "true");
    f.set(
        keys::PORTMAP,
        &format!("http://{port}:127.0.0.1:{}{{check:/}}", web.port()),
    );
    let path = f.path.display().to_string();
    let m = Moirai::start(
        "{}",
        "",
        &["--mdata-socket", &path, "--metadata-interval", "1s"],
    );
    // Every answer now takes 5 s: each read of the keys takes minutes.
    *f.delay.lock().unwrap() = Duration::from_secs(5);
    std::thread::sleep(Duration::from_millis(1500));
    let start = std::time::Instant::now();
    let status = m.status(false);
    assert!(status.contains(&web.port().to_string()), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "status took {:?}",
        start.elapsed()
    );
    let killed = std::time::Instant::now();
    web.kill();
    m.wait_log(
        &format!("backend 127.0.0.1:{} is down", web.port()),
        Duration::from_secs(5),
    );
    // Two failed checks 2 s apart at most, not a metadata read's minutes.
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "{:?}",
        killed.elapsed()
    );
    *f.delay.lock().unwrap() = Duration::ZERO;
}

/// Where only `mdata-get` is reachable (KVM guests), dns-01 writes through
/// `mdata-put` beside it, as triton-dehydrated does; without one, the
/// source says it cannot write (so `auto` does not pick dns-01).
#[test]
fn mdata_get_sources_write_through_mdata_put_beside_them() {
    use moirai::metadata::mdata_get::MdataGet;
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("mdata-put");
    let get = dir.join("mdata-get");
    std::fs::write(&get, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&get, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut source = MdataGet::new(&get);
    assert!(!source.can_write());
    let put = dir.join("mdata-put");
    let out = dir.join("written");
    std::fs::write(
        &put,
        format!(
            "#!/bin/sh\nprintf '%s=%s' \"$1\" \"$2\" > {}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&put, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(source.can_write());
    source.put("triton.cns.acme-challenge", "abc def").unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "triton.cns.acme-challenge=abc def"
    );
    std::fs::write(&put, "#!/bin/sh\necho refused >&2\nexit 3\n").unwrap();
    let e = source.put("k", "v").unwrap_err().to_string();
    assert!(e.contains("refused"), "{e}");
}
