//! Capture round trip: a manifest captured from this machine's real paths and packages is
//! accepted by `plumb manifests check` and, served back, shows the same host in sync.

use std::fs;
use std::path::Path;
use std::process::Command;

use plumb_tests::{Controller, bin, start_agent_with};

#[test]
fn a_captured_manifest_shows_no_drift_for_the_same_host() {
    let out = Command::new(bin("plumb-agent"))
        .args([
            "capture",
            "/etc/default",
            "/etc/os-release",
            "/etc/hostname",
            "/etc/passwd",
            "--exclusive",
        ])
        .args([
            "--all-packages",
            "--package",
            "no-such-package-here",
            "--host-id",
            "captured-host",
        ])
        .output()
        .expect("run capture");
    assert!(
        out.status.success(),
        "capture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        manifest.contains("  \"dpkg\": \"= "),
        "packages captured at their versions"
    );
    assert!(manifest.contains("  \"no-such-package-here\": \"absent\""));
    assert!(manifest.contains("    exclusive: true"));

    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("captured.yaml"), &manifest).expect("write");
    let check = Command::new(bin("plumb"))
        .args(["manifests", "check"])
        .arg(&manifests)
        .output()
        .expect("check");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let c = Controller::start(&manifests, &tmp.path().join("data"));
    let agent = Command::new(bin("plumb-agent"));
    let _agent = start_agent_with(agent, &c.url, "captured-host", Path::new("/"), &[]);
    c.expect_drift("captured-host", &[]);
}

#[test]
fn capture_without_anything_to_capture_is_an_error() {
    let out = Command::new(bin("plumb-agent"))
        .args(["capture"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to capture"));
}

/// A captured exclusive directory with volatile files in it: they are not declared, the
/// default ignores keep them (and new ones) from being drift, and a real newcomer still is.
#[test]
fn a_capture_with_default_ignores_leaves_volatile_files_alone() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("root");
    plumb_tests::write_tree(
        &root,
        &[
            ("etc/app/app.conf", "x=1\n"),
            ("etc/app/app.conf~", "x=0\n"),
            ("etc/app/.app.conf.swp", "swap"),
            ("etc/app/app.conf.dpkg-old", "x=-1\n"),
        ],
    );
    let out = Command::new(bin("plumb-agent"))
        .args([
            "capture",
            "/etc/app",
            "--exclusive",
            "--host-id",
            "h1",
            "--root",
        ])
        .arg(&root)
        .output()
        .expect("run capture");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = String::from_utf8(out.stdout).expect("utf-8");
    assert!(manifest.contains("\nignore: ["), "{manifest}");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("captured.yaml"), &manifest).expect("write");
    let c = Controller::start(&manifests, &tmp.path().join("data"));
    let _agent = plumb_tests::start_agent(&c.url, "h1", &root, &[]);
    c.expect_drift("h1", &[]);
    fs::write(root.join("etc/app/app.conf.swp"), "").expect("write");
    fs::write(root.join("etc/app/rogue"), "").expect("write");
    c.expect_drift(
        "h1",
        &[(
            "file:/etc/app/rogue",
            "undeclared",
            "absent (exclusive directory /etc/app)",
            "present",
        )],
    );
}
