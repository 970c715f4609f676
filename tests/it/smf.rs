//! The SMF manifest: valid against the SMF DTD, and consistent with the
//! daemon it starts.

use std::process::Command;

const MANIFEST: &str = include_str!("../../illumos/smf/moirai.xml");

#[test]
fn the_manifest_is_valid_against_the_smf_dtd() {
    // illumos' own DTD, vendored with its CDDL header.
    let dtd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/illumos/smf/service_bundle.dtd.1"
    );
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/illumos/smf/moirai.xml");
    let out = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", dtd, manifest])
        .output()
        .expect("xmllint is needed to validate the manifest: apt-get install -y libxml2-utils (.ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn attr<'a>(element: &'a str, name: &str) -> &'a str {
    let start = element
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {element}"))
        + name.len()
        + 2;
    &element[start..start + element[start..].find('"').unwrap()]
}

fn method(name: &str) -> &'static str {
    MANIFEST
        .split("<exec_method")
        .skip(1)
        .find(|m| attr(m, "name") == name)
        .unwrap_or_else(|| panic!("no {name} method"))
}

#[test]
fn stop_outlasts_the_drain_and_refresh_is_sighup() {
    let grace = MANIFEST
        .split("<propval")
        .find(|p| attr(p, "name") == "grace")
        .map(|p| attr(p, "value"))
        .unwrap();
    let grace_s: u64 = grace.trim_end_matches('s').parse().unwrap();
    let stop: u64 = attr(method("stop"), "timeout_seconds").parse().unwrap();
    assert!(
        stop > grace_s,
        "stop timeout {stop} s must exceed the {grace_s} s drain"
    );
    assert_eq!(attr(method("stop"), "exec"), ":kill -TERM");
    assert_eq!(attr(method("refresh"), "exec"), ":kill -HUP");
    assert!(MANIFEST.contains(r#"<propval name="duration" type="astring" value="child"/>"#));
    // Root with a reduced set: owner access to the metadata socket and
    // the state directory, ports below 1024, and nothing of root's DAC
    // override or process powers.
    assert!(MANIFEST.contains(
        r#"user="root" group="root" privileges="basic,!proc_info,!proc_session,!file_link_any,net_privaddr""#
    ));
    assert!(!MANIFEST.contains("ignore_error"));
}

/// The manifest's `config` property group.
fn config_group() -> &'static str {
    MANIFEST
        .split("<property_group name=\"config\"")
        .nth(1)
        .unwrap()
        .split("</property_group>")
        .next()
        .unwrap()
}

/// `svccfg` is enough: every config property has a description.
#[test]
fn every_config_property_is_described() {
    let config = config_group();
    let names: Vec<&str> = config
        .split("<propval")
        .skip(1)
        .map(|p| attr(p, "name"))
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        assert!(
            MANIFEST.contains(&format!("<prop_pattern name=\"{name}\"")),
            "config/{name} has no prop_pattern"
        );
        assert!(
            attr(method("start"), "exec").contains(&format!("%{{config/{name}}}")),
            "config/{name} is not used by the start method"
        );
    }
}

#[test]
fn the_start_method_uses_flags_moirai_accepts() {
    let exec = attr(method("start"), "exec");
    let help = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in exec.split_whitespace().filter(|w| w.starts_with("--")) {
        assert!(help.contains(flag), "moirai run has no {flag}");
    }
}

/// The start method as SMF runs it with the manifest's own property
/// values: a local access log by default, as the HAProxy image keeps
/// /var/log/haproxy.log. (The paths under /var move to a test directory
/// and the binary to the one built; nothing else changes.)
#[test]
fn under_smf_the_access_log_is_on_by_default() {
    use crate::util::http::{get, ok, Client, HttpBackend};
    let config = config_group();
    let dir = crate::util::temp_dir("smf-access");
    let mut exec = attr(method("start"), "exec").to_owned();
    for p in config.split("<propval").skip(1) {
        let value = attr(p, "value").replace("/var/", &format!("{}/var/", dir.display()));
        exec = exec.replace(&format!("%{{config/{}}}", attr(p, "name")), &value);
    }
    assert!(!exec.contains("%{"), "{exec}");
    let access = dir.join("var/log/moirai/access.log");
    assert!(
        exec.contains(&format!("--access-log {}", access.display())),
        "{exec}"
    );
    let web = HttpBackend::start("127.0.0.1:0", |_| ok("W"));
    let port = crate::util::free_port();
    let md = dir.join("metadata.json");
    std::fs::write(
        &md,
        crate::util::metadata(&format!("http://{port}:127.0.0.1:{}", web.port())),
    )
    .unwrap();
    let mut words = exec.split_whitespace().skip(1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_moirai"))
        .args(words.by_ref())
        .args([
            "--metadata-file",
            md.to_str().unwrap(),
            "--nameserver",
            "127.0.0.1:9",
        ])
        .args(["--error-log", "none"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let text = loop {
        // 503 until the backend's first checks pass; then 200s.
        let _ = std::net::TcpStream::connect(crate::util::local(port))
            .ok()
            .and_then(|s| Client::from_stream(s).exchange(&get("/smf")));
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        if text.contains(" 200 ") && text.contains("\"GET /smf HTTP/1.1\"")
            || start.elapsed() > std::time::Duration::from_secs(15)
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains(" 200 ") && text.contains("\"GET /smf HTTP/1.1\""),
        "{text:?}\n{}",
        std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
    );
}

const ILLUMOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/illumos");

/// Commands the scripts run, replaced by stubs that log their arguments
/// to `calls` (and do what `extra` says), first in PATH.
fn stubs(dir: &std::path::Path, extra: &[(&str, &str)]) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("stub-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.join("calls");
    for name in [
        "svccfg",
        "svcadm",
        "svcprop",
        "chown",
        "logadm",
        "mdata-get",
    ] {
        let body = extra
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, b)| *b);
        let script = format!(
            "#!/bin/bash\necho \"{name} $*\" >> {}\n{body}\n",
            calls.display()
        );
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

#[test]
fn make_proto_lays_out_the_image_tree() {
    let dir = crate::util::temp_dir("proto");
    let out = Command::new("make")
        .args(["-C", ILLUMOS, "proto"])
        .arg(format!("PROTO={}", dir.display()))
        .arg(format!("BINARY={}", env!("CARGO_BIN_EXE_moirai")))
        .output()
        .expect("make");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        ("opt/triton/moirai/bin/moirai", 0o755),
        ("opt/triton/moirai/smf/moirai.xml", 0o444),
        ("opt/triton/moirai/boot/setup.sh", 0o755),
        ("opt/triton/moirai/boot/smoke.sh", 0o755),
        ("opt/triton/moirai/share/doc/moirai/OPERATIONS.md", 0o444),
        ("opt/triton/moirai/share/doc/moirai/COMPATIBILITY.md", 0o444),
        ("opt/triton/clb/reconfigure", 0o755),
    ] {
        let m = std::fs::metadata(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(m.permissions().mode() & 0o777, mode, "{path}");
    }
    // The installed binary runs, and everything names the same prefix.
    let v = Command::new(dir.join("opt/triton/moirai/bin/moirai"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(v.status.success());
    let manifest = std::fs::read_to_string(dir.join("opt/triton/moirai/smf/moirai.xml")).unwrap();
    assert!(attr(method("start"), "exec").starts_with("/opt/triton/moirai/bin/moirai run"));
    let doc = manifest
        .split("doc_link")
        .nth(1)
        .map(|d| attr(d, "uri"))
        .unwrap();
    let doc = doc.strip_prefix("file://").unwrap();
    assert!(
        dir.join(doc.trim_start_matches('/')).exists(),
        "the manifest's doc link {doc} is installed"
    );
    assert!(!MANIFEST.contains("/opt/moirai/"));
}

/// The scripts an operator runs in a zone at least parse (the smoke
/// script itself needs illumos: svcs, ppriv, the metadata socket).
#[test]
fn the_zone_scripts_parse() {
    for script in ["boot/setup.sh", "clb/reconfigure", "smoke.sh"] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(format!("{ILLUMOS}/{script}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn first_boot_imports_and_enables_once_and_refuses_without_loadbalancer() {
    let root = crate::util::temp_dir("first-boot");
    let run = |path: &str| {
        Command::new(format!("{ILLUMOS}/boot/setup.sh"))
            .env("MOIRAI_ROOT", &root)
            .env("PATH", path)
            .output()
            .unwrap()
    };
    // loadbalancer is not true: nothing is set up, exit SMF_EXIT_ERR_FATAL.
    let path = stubs(&root, &[("mdata-get", "echo false")]);
    let out = run(&path);
    assert_eq!(
        out.status.code(),
        Some(95),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("loadbalancer is not"));
    assert!(!std::fs::read_to_string(root.join("calls"))
        .unwrap()
        .contains("svccfg"));

    let path = stubs(&root, &[("mdata-get", "echo true")]);
    let out = run(&path);
    assert_eq!(
        out.status.code(),
        Some(94),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(root.join("calls")).unwrap();
    for want in [
        format!("chown root:root {}/var/moirai", root.display()),
        format!(
            "logadm -w {}/var/log/moirai/errors.log -C 5 -c -s 100m",
            root.display()
        ),
        format!(
            "logadm -w {}/var/log/moirai/access.log -C 5 -c -s 100m",
            root.display()
        ),
        format!(
            "svccfg import {}/opt/triton/moirai/smf/moirai.xml",
            root.display()
        ),
        "svcadm enable moirai".to_owned(),
    ] {
        assert!(calls.contains(&want), "{want:?} not in\n{calls}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("var/moirai"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // Again: done already, nothing runs.
    std::fs::remove_file(root.join("calls")).unwrap();
    let out = run(&path);
    assert_eq!(out.status.code(), Some(94));
    assert!(
        !root.join("calls").exists()
            || !std::fs::read_to_string(root.join("calls"))
                .unwrap()
                .contains("svccfg")
    );
}

#[test]
fn reconfigure_refreshes_and_says_what_happened() {
    let fake = crate::mdata::Fake::start();
    let web = crate::util::http::HttpBackend::start("127.0.0.1:0", |_| crate::util::http::ok("W"));
    let (p1, p2) = (crate::util::free_port(), crate::util::free_port());
    fake.set("cloud.tritoncompute:loadbalancer", "true");
    fake.set(
        "cloud.tritoncompute:portmap",
        &format!("http://{p1}:127.0.0.1:{}", web.port()),
    );
    // Read only when asked (the interval is long): the refresh is what
    // brings the change.
    let m = crate::util::Moirai::start(
        "{}",
        "",
        &[
            "--mdata-socket",
            fake.path.to_str().unwrap(),
            "--metadata-interval",
            "600s",
        ],
    );
    let path = stubs(&m.dir, &[("svcadm", &format!("kill -HUP {}", m.pid()))]);
    let reconfigure = || {
        let out = Command::new(format!("{ILLUMOS}/clb/reconfigure"))
            .env("PATH", &path)
            .env("MOIRAI_BIN", env!("CARGO_BIN_EXE_moirai"))
            .env("MOIRAI_STATE_DIR", m.dir.join("state"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let said = reconfigure();
    assert!(
        said.starts_with("no change (generation ") && said.trim_end().ends_with(" keeps running)"),
        "{said}"
    );
    fake.set(
        "cloud.tritoncompute:portmap",
        &format!(
            "http://{p1}:127.0.0.1:{w} http://{p2}:127.0.0.1:{w}",
            w = web.port()
        ),
    );
    let said = reconfigure();
    assert!(
        said.starts_with("generation ") && said.contains(&format!(" applied: +http://{p2}:")),
        "{said}"
    );
    crate::util::connect_within(crate::util::local(p2), std::time::Duration::from_secs(2));
    assert!(m
        .log_text()
        .contains(&format!("refresh: {}", said.trim_end())));
}
