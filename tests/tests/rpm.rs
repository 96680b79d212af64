//! An rpm database under the agent's `--root`, driven by the real `rpm`: a package built with
//! `rpmbuild`, installed, tampered with, upgraded and erased, each showing the right drift.
//! Needs `rpm` and `rpmbuild` (CI installs Debian's `rpm` package).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use plumb_tests::{Controller, is_root, run_ok, start_agent};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn build(top: &Path, version: &str, data: &str) -> PathBuf {
    let specs = top.join("SPECS");
    fs::create_dir_all(&specs).expect("mkdir");
    let spec = specs.join(format!("hello-{version}.spec"));
    fs::write(
        &spec,
        format!(
            "Name: plumb-hello\nVersion: {version}\nRelease: 1\nSummary: test\nLicense: MIT\nBuildArch: noarch\n\
             %description\ntest\n%install\nmkdir -p %{{buildroot}}/usr/share/plumb-hello %{{buildroot}}/etc\n\
             echo {data} > %{{buildroot}}/usr/share/plumb-hello/data.txt\necho greeting=hi > %{{buildroot}}/etc/plumb-hello.conf\n\
             %files\n/usr/share/plumb-hello/data.txt\n%config(noreplace) /etc/plumb-hello.conf\n"
        ),
    )
    .expect("spec");
    run_ok(
        Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("-bb")
            .arg(&spec),
    );
    top.join(format!("RPMS/noarch/plumb-hello-{version}-1.noarch.rpm"))
}

fn rpm(root: &Path) -> Command {
    let mut c = Command::new("rpm");
    c.arg("--root").arg(root).args(["--dbpath", "/var/lib/rpm"]);
    c
}

#[test]
fn an_rpm_package_installed_tampered_upgraded_and_erased() {
    let here = have("rpm") && have("rpmbuild") && is_root();
    if !plumb_tests::have_or_skip(here, "rpm, rpmbuild and root (Debian's rpm package)") {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let v1 = build(&tmp.path().join("build"), "1.0", "one");
    let v2 = build(&tmp.path().join("build"), "1.1", "two");
    let root = tmp.path().join("root");
    fs::create_dir_all(&root).expect("mkdir");
    run_ok(rpm(&root).arg("--initdb"));

    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(
        manifests.join("rpm.yaml"),
        "name: rpm\nhosts: [\"*\"]\npackages:\n  plumb-hello: {version: \">= 1.0\", manager: rpm, verify_files: true}\n",
    )
    .expect("write");
    let c = Controller::start(&manifests, &tmp.path().join("data"));
    let _agent = start_agent(&c.url, "rpm-host", &root, &[]);
    c.expect_drift(
        "rpm-host",
        &[("package:plumb-hello", "version", ">= 1.0", "absent")],
    );

    run_ok(rpm(&root).args(["-i", "--nodeps"]).arg(&v1));
    c.expect_drift("rpm-host", &[]);

    let data = root.join("usr/share/plumb-hello/data.txt");
    fs::write(&data, "tampered\n").expect("tamper");
    c.expect_drift(
        "rpm-host",
        &[(
            "package:plumb-hello",
            "file:/usr/share/plumb-hello/data.txt",
            "as packaged",
            "differs: size, digest",
        )],
    );
    fs::write(&data, "one\n").expect("restore (a new mtime is not drift)");
    c.expect_drift("rpm-host", &[]);

    run_ok(rpm(&root).args(["-U", "--nodeps"]).arg(&v2));
    c.expect_drift("rpm-host", &[]);

    // Erased as dnf would, which says so in its log: the drift names that transaction.
    fs::create_dir_all(root.join("var/log")).expect("mkdir");
    fs::write(
        root.join("var/log/dnf.rpm.log"),
        "2026-12-06T09:00:00+0000 SUBDEBUG Erase: plumb-hello-1.1-1.noarch\n",
    )
    .expect("dnf.rpm.log");
    run_ok(rpm(&root).args(["-e", "plumb-hello"]));
    let host = c.expect_drift(
        "rpm-host",
        &[("package:plumb-hello", "version", ">= 1.0", "absent")],
    );
    let who = &host["drift"][0]["who"];
    assert_eq!(
        (&who["package_manager"], &who["action"], &who["started"]),
        (
            &serde_json::Value::from("dnf"),
            &serde_json::Value::from("remove 1.1-1"),
            &serde_json::Value::from("2026-12-06T09:00:00+0000")
        ),
        "{host:#}"
    );
}
