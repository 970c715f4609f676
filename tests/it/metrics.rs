//! The metrics endpoint against real traffic: exact counters, promtool,
//! the ACL by peer address, and live changes of port and ACL.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::backend::{Backend, Behaviour};
use crate::util::http::{get, ok, Client, HttpBackend, Reply};
use crate::util::{free_port, local, metadata, Moirai, SECS};

/// Metadata for `portmap` (checks to the shared responder) plus `extra`.
fn metadata_with(portmap: &str, extra: &[(&str, &str)]) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&metadata(portmap)).unwrap();
    for (k, val) in extra {
        v[format!("cloud.tritoncompute:{k}")] = (*val).into();
    }
    v.to_string()
}

/// A connection from `source` (e.g. 127.0.0.2) to `dest`.
fn connect_from(source: [u8; 4], dest: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((source, 0)).into())?;
    s.connect(&dest.into())?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(SECS(10)))?;
    Ok(s)
}

/// Sends `request` from `source` and returns (status, body).
fn ask(source: [u8; 4], port: u16, request: &str) -> std::io::Result<(u16, String)> {
    let mut s = connect_from(source, local(port))?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

fn scrape(port: u16) -> String {
    let (status, body) = ask(
        [127, 0, 0, 1],
        port,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the series `name` whose labels include every pair.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

/// Scrapes until `name{labels}` equals `want` (workers hand latencies over
/// once a second), returning the last exposition.
fn scrape_until(port: u16, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    let start = Instant::now();
    loop {
        let text = scrape(port);
        if value(&text, name, labels) == Some(want) {
            return text;
        }
        assert!(
            start.elapsed() < SECS(10),
            "{name}{labels:?} never reached {want}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn counters_match_known_traffic_exactly_and_promtool_accepts_the_exposition() {
    const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const MISSING: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let web = HttpBackend::start("127.0.0.1:0", |req| {
        if req.path == "/missing" {
            Reply::Bytes(MISSING.to_vec())
        } else {
            Reply::Bytes(REPLY.to_vec())
        }
    });
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let (hp, tp, pp, mp) = (free_port(), free_port(), free_port(), free_port());
    let (sh, sv, si) = (free_port(), free_port(), free_port());
    let (wport, eport) = (web.port(), echo.addr.port());
    let mport = mp.to_string();
    // The TLS types too: a TLS backend signed by a CA moirai is told about.
    let (ca, cert, key) = crate::tls::ca_and_cert("web.test");
    let tls_port = crate::tls::tls_backend(&cert, &key, "secure");
    let ca_file = crate::util::temp_dir("metrics-ca").join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let _m = Moirai::start(
        &metadata_with(
            &format!(
                "http://{hp}:127.0.0.1:{wport} tcp://{tp}:127.0.0.1:{eport} tcp-proxy-v2://{pp}:127.0.0.1:{eport} \
                 https-http://{sh}:127.0.0.1:{wport} https://{sv}:web.test:{tls_port}{{check:/}} \
                 https+insecure://{si}:web.test:{tls_port}{{check:/}}"
            ),
            &[("metrics_acl", "127.0.0.1"), ("metrics_port", &mport)],
        ),
        "127.0.0.1 web.test\n",
        &["--ca-file", ca_file.to_str().unwrap()],
    );
    for p in [sh, sv, si] {
        let (ok, _) = crate::tls::curl(p, &[]);
        assert!(ok, "https request through port {p}");
    }

    // http: 10 found and 3 missing, pipelined on one connection whose last
    // request closes it, so every byte each way is known.
    let mut requests = String::new();
    for i in 0..13 {
        let path = if i % 4 == 3 { "/missing" } else { "/" };
        let close = if i == 12 { "Connection: close\r\n" } else { "" };
        requests.push_str(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n{close}\r\n"));
    }
    let mut c = crate::util::connect_within(local(hp), SECS(5));
    c.write_all(requests.as_bytes()).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 10, "{text}");
    assert_eq!(text.matches("HTTP/1.1 404").count(), 3, "{text}");

    // tcp and tcp-proxy-v2: 1,000 bytes echoed on each.
    let payload = vec![7u8; 1000];
    for port in [tp, pp] {
        let mut c = crate::util::connect_within(local(port), SECS(5));
        c.write_all(&payload).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        // The proxy-v2 echo returns the 28-byte IPv4 header too.
        let header = if port == pp { 28 } else { 0 };
        assert_eq!(back.len(), 1000 + header);
    }

    // Latencies reach the control thread in per-worker batches: wait for
    // each service's, not only the last one's.
    for port in [tp, pp] {
        let ps = port.to_string();
        scrape_until(
            mp,
            "moirai_connect_duration_seconds_count",
            &[("service", &ps)],
            1.0,
        );
    }
    let hs = hp.to_string();
    let text = scrape_until(
        mp,
        "moirai_request_duration_seconds_count",
        &[("service", &hs)],
        13.0,
    );
    let svc = |name: &str, port: u16, extra: &[(&str, &str)]| {
        let p = port.to_string();
        let mut l = vec![("service", p.as_str())];
        l.extend_from_slice(extra);
        value(&text, name, &l)
    };
    assert_eq!(svc("moirai_service_connections_total", hp, &[]), Some(1.0));
    assert_eq!(svc("moirai_service_connections_active", hp, &[]), Some(0.0));
    assert_eq!(
        svc("moirai_service_responses_total", hp, &[("class", "2xx")]),
        Some(10.0)
    );
    assert_eq!(
        svc("moirai_service_responses_total", hp, &[("class", "4xx")]),
        Some(3.0)
    );
    assert_eq!(
        svc("moirai_service_responses_total", hp, &[("class", "5xx")]),
        Some(0.0)
    );
    assert_eq!(
        svc("moirai_service_request_bytes_total", hp, &[]),
        Some(requests.len() as f64)
    );
    assert_eq!(
        svc("moirai_service_response_bytes_total", hp, &[]),
        Some(got.len() as f64)
    );
    let wb = format!("127.0.0.1:{wport}");
    let web_l = [("backend", wb.as_str())];
    assert_eq!(
        svc(
            "moirai_backend_responses_total",
            hp,
            &[web_l[0], ("class", "2xx")]
        ),
        Some(10.0)
    );
    assert_eq!(
        svc(
            "moirai_backend_responses_total",
            hp,
            &[web_l[0], ("class", "4xx")]
        ),
        Some(3.0)
    );
    assert_eq!(
        svc("moirai_backend_response_bytes_total", hp, &web_l),
        Some((10 * REPLY.len() + 3 * MISSING.len()) as f64)
    );
    assert_eq!(
        svc("moirai_backend_connections_total", hp, &web_l),
        Some(1.0)
    );
    assert_eq!(svc("moirai_backend_up", hp, &web_l), Some(1.0));
    assert_eq!(
        svc("moirai_backend_connect_errors_total", hp, &web_l),
        Some(0.0)
    );

    let eb = format!("127.0.0.1:{eport}");
    let echo_l = [("backend", eb.as_str())];
    for (port, header) in [(tp, 0.0), (pp, 28.0)] {
        assert_eq!(
            svc("moirai_service_connections_total", port, &[]),
            Some(1.0)
        );
        assert_eq!(
            svc("moirai_service_request_bytes_total", port, &[]),
            Some(1000.0)
        );
        assert_eq!(
            svc("moirai_service_response_bytes_total", port, &[]),
            Some(1000.0 + header)
        );
        assert_eq!(
            svc("moirai_backend_request_bytes_total", port, &echo_l),
            Some(1000.0 + header)
        );
        assert_eq!(
            svc("moirai_backend_response_bytes_total", port, &echo_l),
            Some(1000.0 + header)
        );
        assert_eq!(
            svc("moirai_connect_duration_seconds_count", port, &[]),
            Some(1.0)
        );
    }
    assert!(value(&text, "moirai_config_generation", &[]).unwrap() >= 1.0);
    assert!(value(&text, "process_open_fds", &[]).unwrap() > 0.0);
    assert!(value(&text, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(
        &text,
        "moirai_request_duration_quantile_seconds",
        &[("quantile", "0.99")]
    )
    .is_some());

    promtool_accepts(&text);
}

/// `promtool check metrics` passes on `text`.
fn promtool_accepts(text: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_acl_reads_the_peer_address_and_a_forged_forwarded_for_does_not_help() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("x"));
    let (hp, mp) = (free_port(), free_port());
    let mport = mp.to_string();
    let _m = Moirai::start(
        &metadata_with(
            &format!("http://{hp}:127.0.0.1:{}", web.port()),
            &[
                ("metrics_acl", "127.0.0.1/32 10.0.0.0/8"),
                ("metrics_port", &mport),
            ],
        ),
        "",
        &[],
    );
    let forged = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n\r\n";
    let (status, _) = ask([127, 0, 0, 2], mp, forged).unwrap();
    assert_eq!(status, 403);
    let (status, body) = ask([127, 0, 0, 1], mp, forged).unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE moirai_config_generation gauge"),
        "{body}"
    );
    assert_eq!(
        ask([127, 0, 0, 1], mp, "GET / HTTP/1.1\r\n\r\n").unwrap().0,
        404
    );
    assert_eq!(
        ask(
            [127, 0, 0, 1],
            mp,
            "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap()
        .0,
        405
    );
    // Denied peers learn nothing, not even which paths exist.
    assert_eq!(
        ask([127, 0, 0, 2], mp, "GET / HTTP/1.1\r\n\r\n").unwrap().0,
        403
    );
}

#[test]
fn port_and_acl_change_live_without_dropping_data_plane_connections() {
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("steady"));
    let (hp, m1, m2) = (free_port(), free_port(), free_port());
    let portmap = format!("http://{hp}:127.0.0.1:{}", web.port());
    let (m1s, m2s) = (m1.to_string(), m2.to_string());
    let m = Moirai::start(
        &metadata_with(
            &portmap,
            &[("metrics_acl", "127.0.0.1"), ("metrics_port", &m1s)],
        ),
        "",
        &[],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut n, mut failed) = (0u32, 0u32);
                let mut c = Client::connect(local(hp));
                while !stop.load(Ordering::SeqCst) {
                    match c.exchange(&get("/")) {
                        Some(r) if r.status == 200 => n += 1,
                        _ => {
                            failed += 1;
                            c = Client::connect(local(hp));
                        }
                    }
                }
                (n, failed)
            })
        })
        .collect();
    assert_eq!(
        ask([127, 0, 0, 2], m1, "GET /metrics HTTP/1.1\r\n\r\n")
            .unwrap()
            .0,
        403
    );

    // Move the endpoint and open it to 127.0.0.2 as well.
    m.set_metadata(&metadata_with(
        &portmap,
        &[
            ("metrics_acl", "127.0.0.1,127.0.0.2"),
            ("metrics_port", &m2s),
        ],
    ));
    m.wait_log(&format!("metrics: serving /metrics on :{m2}"), SECS(5));
    let start = Instant::now();
    while TcpStream::connect(local(m1)).is_ok() {
        assert!(
            start.elapsed() < SECS(5),
            "the old metrics port still accepts"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ask([127, 0, 0, 2], m2, "GET /metrics HTTP/1.1\r\n\r\n")
            .unwrap()
            .0,
        200
    );

    // Without metrics_acl the endpoint goes away.
    m.set_metadata(&metadata_with(&portmap, &[]));
    m.wait_log("metrics: no metrics_acl; endpoint", SECS(5));
    assert!(TcpStream::connect(local(m2)).is_err());

    stop.store(true, Ordering::SeqCst);
    let (mut total, mut failed) = (0, 0);
    for l in loaders {
        let (n, f) = l.join().unwrap();
        total += n;
        failed += f;
    }
    assert!(total > 50, "only {total} requests");
    assert_eq!(failed, 0, "{failed} of {total} data-plane requests failed");
}

/// Families of an exposition: name → (type, label-name sets, values of
/// the enumerated labels `state` and `code`), for names with `prefix`,
/// leaving out `proxy="metrics"` (HAProxy's own scrape frontend).
type Families = std::collections::BTreeMap<
    String,
    (
        String,
        std::collections::BTreeSet<Vec<String>>,
        std::collections::BTreeSet<String>,
    ),
>;

fn families(text: &str, prefix: &str) -> Families {
    let mut f = Families::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let (name, ty) = (w.next().unwrap(), w.next().unwrap());
            if name.starts_with(prefix) {
                f.entry(name.to_owned()).or_default().0 = ty.to_owned();
            }
            continue;
        }
        if line.starts_with('#') || !line.starts_with(prefix) {
            continue;
        }
        let (name, labels) = match line.split_once('{') {
            Some((n, rest)) => (n, rest.split_once('}').unwrap().0),
            None => (line.split_whitespace().next().unwrap(), ""),
        };
        let pairs: Vec<(String, String)> = labels
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        if pairs.iter().any(|(k, v)| k == "proxy" && v == "metrics") {
            continue;
        }
        let e = f.entry(name.to_owned()).or_default();
        e.1.insert(pairs.iter().map(|(k, _)| k.clone()).collect());
        for (k, v) in &pairs {
            if k == "state" || k == "code" {
                e.2.insert(v.clone());
            }
        }
    }
    f
}

/// Operators' dashboards read HAProxy's exporter: the `haproxy_*` families
/// moirai exports exist in HAProxy 2.6's own output for the equivalent
/// configuration (Moirai's names: fe0, be0, rs1..), with the same type,
/// label sets and state/code values; they cover at least three quarters of
/// HAProxy's frontend, backend and server families; and after the same
/// requests to both, the request and session counters agree.
#[test]
fn haproxy_families_match_a_running_haproxy() {
    const REQUESTS: usize = 6;
    let a = HttpBackend::start("127.0.0.2:0", |_| ok("A"));
    let bport = a.port();
    let _b = HttpBackend::start(&format!("127.0.0.3:{bport}"), |_| ok("B"));
    let (lb, mp, hp, hm) = (free_port(), free_port(), free_port(), free_port());
    let md = serde_json::json!({
        "cloud.tritoncompute:loadbalancer": "true",
        "cloud.tritoncompute:portmap": format!("http://{lb}:web.test:{bport}{{check:/healthz}}"),
        "cloud.tritoncompute:metrics_acl": "127.0.0.0/8",
        "cloud.tritoncompute:metrics_port": mp.to_string(),
    });
    let _m = Moirai::start(
        &md.to_string(),
        "127.0.0.2 web.test\n127.0.0.3 web.test\n",
        &[],
    );
    let dir = crate::util::temp_dir("haproxy-exporter");
    let cfg = format!(
        "global\n  log stderr local0\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend fe0\n  bind 127.0.0.1:{hp}\n  default_backend be0\n\
         backend be0\n  balance leastconn\n  cookie CLOUD-TRITONCOMPUTE-RS insert indirect nocache dynamic\n  dynamic-cookie-key k\n\
           option httpchk GET /healthz\n  http-check expect status 200\n\
           server rs1 127.0.0.2:{bport} check inter 500\n  server rs2 127.0.0.3:{bport} check inter 500\n\
         frontend metrics\n  bind 127.0.0.1:{hm}\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n"
    );
    std::fs::write(dir.join("h.cfg"), cfg).unwrap();
    let mut haproxy = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(dir.join("h.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (scripts/test installs it)");
    crate::util::connect_within(local(hm), SECS(5));
    // Until HAProxy's own checks have both servers up, asked of its
    // exporter so that no request reaches fe0 before the counted ones.
    scrape_until(
        hm,
        "haproxy_backend_active_servers",
        &[("proxy", "be0")],
        2.0,
    );
    // Moirai::start waited until every backend was checked.
    for port in [lb, hp] {
        for _ in 0..REQUESTS {
            let r = Client::connect(local(port)).exchange(&get("/")).unwrap();
            assert_eq!(r.status, 200);
        }
    }
    let ours_text = scrape(mp);
    let theirs_text = scrape(hm);
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let ours = families(&ours_text, "haproxy_");
    let theirs = families(&theirs_text, "haproxy_");
    // What dashboards read, at least.
    for name in [
        "haproxy_frontend_status",
        "haproxy_frontend_current_sessions",
        "haproxy_frontend_sessions_total",
        "haproxy_frontend_connections_total",
        "haproxy_frontend_bytes_in_total",
        "haproxy_frontend_bytes_out_total",
        "haproxy_frontend_http_requests_total",
        "haproxy_frontend_http_responses_total",
        "haproxy_frontend_request_errors_total",
        "haproxy_backend_status",
        "haproxy_backend_active_servers",
        "haproxy_backend_current_sessions",
        "haproxy_backend_sessions_total",
        "haproxy_backend_bytes_in_total",
        "haproxy_backend_http_requests_total",
        "haproxy_backend_http_responses_total",
        "haproxy_backend_connection_errors_total",
        "haproxy_backend_response_errors_total",
        "haproxy_backend_retry_warnings_total",
        "haproxy_backend_redispatch_warnings_total",
        "haproxy_backend_response_time_average_seconds",
        "haproxy_backend_connect_time_average_seconds",
        "haproxy_backend_queue_time_average_seconds",
        "haproxy_backend_last_session_seconds",
        "haproxy_server_status",
        "haproxy_server_current_sessions",
        "haproxy_server_sessions_total",
        "haproxy_server_bytes_in_total",
        "haproxy_server_http_responses_total",
        "haproxy_server_connection_errors_total",
        "haproxy_server_check_status",
        "haproxy_server_check_up_down_total",
        "haproxy_server_downtime_seconds_total",
        "haproxy_server_last_session_seconds",
        "haproxy_process_start_time_seconds",
        "haproxy_process_uptime_seconds",
        "haproxy_process_max_fds",
        "haproxy_process_nbthread",
        "haproxy_process_nbproc",
        "haproxy_process_current_connections",
        "haproxy_process_connections_total",
        "haproxy_process_requests_total",
        "haproxy_process_max_connections",
    ] {
        assert!(ours.contains_key(name), "moirai exports no {name}");
    }
    for (name, (ty, labels, values)) in &ours {
        let (their_ty, their_labels, their_values) = theirs
            .get(name)
            .unwrap_or_else(|| panic!("HAProxy 2.6 has no {name}"));
        assert_eq!(ty, their_ty, "{name}: type");
        assert_eq!(labels, their_labels, "{name}: label sets");
        assert_eq!(values, their_values, "{name}: state/code values");
    }
    // Coverage: three quarters of HAProxy's proxy families at least.
    let proxy = |n: &String| {
        ["haproxy_frontend_", "haproxy_backend_", "haproxy_server_"]
            .iter()
            .any(|p| n.starts_with(p))
    };
    let all = theirs.keys().filter(|n| proxy(n)).count();
    let shared = ours.keys().filter(|n| proxy(n)).count();
    eprintln!("moirai exports {shared} of HAProxy's {all} frontend, backend and server families");
    assert!(
        shared * 4 >= all * 3,
        "moirai exports {shared} of HAProxy's {all} frontend, backend and server families; missing: {:?}",
        theirs
            .keys()
            .filter(|n| proxy(n) && !ours.contains_key(*n))
            .collect::<Vec<_>>()
    );
    // The same traffic, the same counts.
    let sum = |text: &str, name: &str, labels: &[(&str, &str)]| -> f64 {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series, ""));
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| v.parse::<f64>().unwrap())
            .sum()
    };
    let n = REQUESTS as f64;
    for (name, labels) in [
        (
            "haproxy_frontend_http_requests_total",
            &[("proxy", "fe0")][..],
        ),
        ("haproxy_frontend_connections_total", &[("proxy", "fe0")]),
        ("haproxy_frontend_sessions_total", &[("proxy", "fe0")]),
        (
            "haproxy_frontend_http_responses_total",
            &[("proxy", "fe0"), ("code", "2xx")],
        ),
        ("haproxy_backend_http_requests_total", &[("proxy", "be0")]),
        ("haproxy_backend_sessions_total", &[("proxy", "be0")]),
        ("haproxy_backend_loadbalanced_total", &[("proxy", "be0")]),
        (
            "haproxy_backend_connection_attempts_total",
            &[("proxy", "be0")],
        ),
        (
            "haproxy_server_http_responses_total",
            &[("proxy", "be0"), ("code", "2xx")],
        ),
        ("haproxy_server_sessions_total", &[("proxy", "be0")]),
        ("haproxy_server_loadbalanced_total", &[("proxy", "be0")]),
    ] {
        assert_eq!(
            sum(&ours_text, name, labels),
            n,
            "moirai's {name}{labels:?}"
        );
        assert_eq!(
            sum(&theirs_text, name, labels),
            n,
            "HAProxy's {name}{labels:?}"
        );
    }
    // Nothing failed on either side.
    for name in [
        "haproxy_frontend_request_errors_total",
        "haproxy_backend_response_errors_total",
        "haproxy_backend_connection_errors_total",
        "haproxy_backend_redispatch_warnings_total",
    ] {
        assert_eq!(sum(&ours_text, name, &[]), 0.0, "moirai's {name}");
        assert_eq!(
            sum(&theirs_text, name, &[("proxy", "fe0")])
                + sum(&theirs_text, name, &[("proxy", "be0")]),
            0.0,
            "HAProxy's {name}"
        );
    }
    for (name, want) in [
        ("haproxy_process_nbproc", 1.0),
        ("haproxy_backend_active_servers", 2.0),
        ("haproxy_frontend_current_sessions", 0.0),
    ] {
        assert_eq!(value(&ours_text, name, &[]), Some(want), "moirai's {name}");
    }
    let last = value(&ours_text, "haproxy_backend_last_session_seconds", &[]).unwrap();
    assert!((0.0..10.0).contains(&last), "last session {last} s ago");
    assert!(value(&ours_text, "haproxy_process_nbthread", &[]).unwrap() >= 1.0);
    assert!(value(&ours_text, "haproxy_process_max_connections", &[]).unwrap() >= 1.0);
    assert!(value(&ours_text, "haproxy_process_uptime_seconds", &[]).is_some());
    promtool_accepts(&ours_text);
}
