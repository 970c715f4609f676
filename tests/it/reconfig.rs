//! Live reconfiguration: snapshots change under open connections, and
//! SIGHUP re-reads the metadata at once.

use std::net::TcpStream;
use std::time::Duration;

use crate::util::backend::{Backend, Behaviour};
use crate::util::{
    connect_within, free_port, local, metadata, reach_tag, roundtrip, temp_dir, wait_refused,
    Moirai, SECS,
};

#[test]
fn twenty_snapshot_changes_leave_open_connections_unharmed() {
    let a = Backend::start("127.0.0.1:0", Behaviour::TaggedEcho(b'A'));
    let b = Backend::start("127.0.0.1:0", Behaviour::TaggedEcho(b'B'));
    let (pa, pb) = (a.addr.port(), b.addr.port());
    let main = free_port();
    let m = Moirai::start(&metadata(&format!("tcp://{main}:127.0.0.1:{pa}")), "", &[]);
    let mut first = reach_tag(main, b'A', SECS(5));
    let mut kept: Vec<(u8, TcpStream)> = Vec::new();
    let mut previous: Option<u16> = None;
    for round in 0..20 {
        // Each round: the main service switches backend, a new service
        // appears, and the previous round's service disappears.
        let (tag, bport) = if round % 2 == 0 {
            (b'B', pb)
        } else {
            (b'A', pa)
        };
        let extra = free_port();
        m.set_metadata(&metadata(&format!(
            "tcp://{main}:127.0.0.1:{bport} tcp://{extra}:127.0.0.1:{bport}"
        )));
        let c = reach_tag(extra, tag, SECS(5));
        kept.push((tag, c));
        kept.push((tag, reach_tag(main, tag, SECS(5))));
        if let Some(p) = previous {
            wait_refused(local(p), SECS(5));
        }
        previous = Some(extra);
        // Every connection opened so far still talks to its own backend.
        assert_eq!(roundtrip(&mut first, b"first").unwrap(), b"first");
        for (i, (_, c)) in kept.iter_mut().enumerate() {
            let msg = format!("round {round} conn {i}");
            assert_eq!(roundtrip(c, msg.as_bytes()).unwrap(), msg.as_bytes());
        }
    }
    m.wait_log("generation 21 applied", SECS(5));
}

#[test]
fn sighup_rereads_the_metadata_at_once() {
    let dir = temp_dir("hup");
    let value = dir.join("portmap");
    let script = dir.join("mdata-get");
    // A stand-in for mdata-get: prints the portmap kept in a file.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  cloud.tritoncompute:loadbalancer) echo true ;;\n  cloud.tritoncompute:portmap) cat {} ;;\n  *) exit 1 ;;\nesac\n",
            value.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let (p1, p2) = (free_port(), free_port());
    std::fs::write(
        &value,
        format!("tcp://{p1}:127.0.0.1:{}\n", echo.addr.port()),
    )
    .unwrap();
    let m = Moirai::start(
        "{}",
        "",
        &[
            "--mdata-get",
            script.to_str().unwrap(),
            "--metadata-interval",
            "3600s",
        ],
    );
    connect_within(local(p1), SECS(5));
    std::fs::write(
        &value,
        format!("tcp://{p2}:127.0.0.1:{}\n", echo.addr.port()),
    )
    .unwrap();
    // The hour-long interval would never notice: only the signal can.
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(local(p2)).is_err());
    m.signal("HUP");
    // The new service's backend starts down until its checks pass.
    m.wait_log(&format!("health: service :{p2} backend"), SECS(5));
    let mut c = connect_within(local(p2), SECS(5));
    assert_eq!(roundtrip(&mut c, b"hup").unwrap(), b"hup");
    wait_refused(local(p1), SECS(5));
}

#[test]
fn bad_metadata_keeps_the_running_configuration() {
    let echo = Backend::start("127.0.0.1:0", Behaviour::Echo);
    let port = free_port();
    let m = Moirai::start(
        &metadata(&format!("tcp://{port}:127.0.0.1:{}", echo.addr.port())),
        "",
        &[],
    );
    let mut c = connect_within(local(port), SECS(5));
    // Half-written JSON: reported, and nothing changes.
    m.set_metadata("{\"cloud.tritoncompute:portmap\": \"tcp://");
    m.wait_log("cannot read metadata", SECS(5));
    assert_eq!(roundtrip(&mut c, b"still").unwrap(), b"still");
    let mut c2 = connect_within(local(port), SECS(5));
    assert_eq!(roundtrip(&mut c2, b"new").unwrap(), b"new");
    // A bad entry next to a good one: the good one runs, the bad one is
    // reported with its place.
    let other = free_port();
    m.set_metadata(&metadata(&format!(
        "tcp://{port}:127.0.0.1:{} tcp://{other}:127.0.0.1:0",
        echo.addr.port()
    )));
    m.wait_log("entry 1", SECS(5));
    assert_eq!(roundtrip(&mut c, b"on").unwrap(), b"on");
}
