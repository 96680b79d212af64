//! On the real machine, as root: a tiny package built with `dpkg-deb --build` is installed with
//! `dpkg -i`, reported, tampered with, upgraded (not drift), and removed with `dpkg -r`. The
//! package is purged afterwards even when the test fails.

use std::fs;
use std::path::Path;
use std::process::Command;

use plumb_tests::{Controller, bin, is_root, run_ok, start_agent_with};

const PACKAGE: &str = "plumb-e2e-hello";

/// Purges the test package when dropped, whatever happened.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let data = format!("/usr/share/{PACKAGE}/data.txt");
        let _ = Command::new("dpkg-divert")
            .args(["--local", "--rename", "--remove", &data])
            .output();
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
    }
}

fn build(dir: &Path, version: &str, data: &str) -> std::path::PathBuf {
    let tree = dir.join(format!("tree-{version}"));
    fs::create_dir_all(tree.join("DEBIAN")).expect("mkdir");
    fs::create_dir_all(tree.join(format!("usr/share/{PACKAGE}"))).expect("mkdir");
    fs::create_dir_all(tree.join("etc")).expect("mkdir");
    fs::write(
        tree.join("DEBIAN/control"),
        format!("Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nMaintainer: plumb tests <tests@example.invalid>\nDescription: plumb end-to-end test package\n"),
    )
    .expect("control");
    fs::write(
        tree.join("DEBIAN/conffiles"),
        format!("/etc/{PACKAGE}.conf\n"),
    )
    .expect("conffiles");
    fs::write(tree.join(format!("usr/share/{PACKAGE}/data.txt")), data).expect("data");
    fs::write(tree.join(format!("etc/{PACKAGE}.conf")), "greeting=hello\n").expect("conf");
    let deb = dir.join(format!("{PACKAGE}_{version}_all.deb"));
    run_ok(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&tree)
            .arg(&deb),
    );
    deb
}

#[test]
fn a_real_package_installed_tampered_upgraded_and_removed() {
    if !plumb_tests::have_or_skip(is_root(), "root (dpkg -i needs it)") {
        return;
    }
    let _purge = Purge;
    let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output(); // a leftover from a killed run

    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(
        manifests.join("pkg.yaml"),
        format!("name: pkg\nhosts: [\"*\"]\npackages:\n  {PACKAGE}: {{version: \">= 1.0\", verify_files: true}}\n"),
    )
    .expect("write");
    let v1 = build(tmp.path(), "1.0-1", "one\n");
    let v2 = build(tmp.path(), "1.1-1", "two\n");

    let c = Controller::start(&manifests, &tmp.path().join("data"));
    // The agent reads this machine's own root.
    let agent = Command::new(bin("plumb-agent"));
    let _agent = start_agent_with(agent, &c.url, "real-host", Path::new("/"), &[]);
    let resource = format!("package:{PACKAGE}");
    c.expect_drift("real-host", &[(&resource, "version", ">= 1.0", "absent")]);

    run_ok(Command::new("dpkg").arg("-i").arg(&v1));
    c.expect_drift("real-host", &[]);

    // Tamper with an owned file and with the conffile.
    let data = format!("/usr/share/{PACKAGE}/data.txt");
    fs::write(&data, "tampered\n").expect("tamper");
    let md5 = |s: &str| format!("md5 {}", plumb_tests::md5(s.as_bytes()));
    let file_attr = format!("file:{data}");
    c.expect_drift(
        "real-host",
        &[(&resource, &file_attr, &md5("one\n"), &md5("tampered\n"))],
    );
    fs::write(&data, "one\n").expect("restore");
    c.expect_drift("real-host", &[]);

    // A real upgrade replaces the files and their record together: not drift.
    run_ok(Command::new("dpkg").arg("-i").arg(&v2));
    c.expect_drift("real-host", &[]);
    let history = c.json(&["history", "real-host"]);
    let opened_during_upgrade = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .take_while(|e| !(e["event"] == "resolved" && e["attribute"] == file_attr.as_str()))
        .filter(|e| e["event"] == "opened")
        .count();
    assert_eq!(
        opened_during_upgrade, 0,
        "the upgrade opened no drift: {history}"
    );

    // Regression (issue 12, item 11): a diverted file (dash's /bin/sh, postgresql-common's
    // pg_config) read as drift. dpkg moves it; plumb checks it where it went, as debsums does.
    let diverted = format!("{data}.distrib");
    run_ok(
        Command::new("dpkg-divert")
            .args(["--local", "--rename", "--divert", &diverted, "--add", &data]),
    );
    fs::write(&data, "the administrator's own\n").expect("write");
    fs::write(&diverted, "tampered\n").expect("tamper");
    let diverted_attr = format!("file:{diverted}");
    c.expect_drift(
        "real-host",
        &[(&resource, &diverted_attr, &md5("two\n"), &md5("tampered\n"))],
    );
    fs::write(&diverted, "two\n").expect("restore");
    c.expect_drift("real-host", &[]);
    fs::remove_file(&data).expect("rm");
    run_ok(Command::new("dpkg-divert").args(["--local", "--rename", "--remove", &data]));
    c.expect_drift("real-host", &[]);

    run_ok(Command::new("dpkg").args(["-r", PACKAGE]));
    c.expect_drift("real-host", &[(&resource, "version", ">= 1.0", "absent")]);
}
