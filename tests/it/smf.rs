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
    assert!(MANIFEST.contains(r#"privileges="basic,net_privaddr""#));
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
