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

    // Upgraded as dnf would, which keeps who ran it in its history database: a drifted
    // package then names that transaction, with the user from the host's own passwd. (A
    // manifest that allows only what is installed makes the upgrade drift.)
    fs::create_dir_all(root.join("var/lib/dnf")).expect("mkdir");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    fs::write(root.join("etc/passwd"), "carol:x:1002:1002::/:/bin/sh\n").expect("passwd");
    rusqlite::Connection::open(root.join("var/lib/dnf/history.sqlite"))
        .expect("history")
        .execute_batch(
            "CREATE TABLE trans (id INTEGER PRIMARY KEY AUTOINCREMENT, dt_begin INTEGER NOT NULL, dt_end INTEGER, rpmdb_version_begin TEXT, rpmdb_version_end TEXT, releasever TEXT NOT NULL, user_id INTEGER NOT NULL, cmdline TEXT, state INTEGER NOT NULL);
             CREATE TABLE item (id INTEGER PRIMARY KEY, item_type INTEGER NOT NULL);
             CREATE TABLE trans_item (id INTEGER PRIMARY KEY AUTOINCREMENT, trans_id INTEGER, item_id INTEGER, repo_id INTEGER, action INTEGER NOT NULL, reason INTEGER NOT NULL, state INTEGER NOT NULL);
             CREATE TABLE rpm (item_id INTEGER UNIQUE NOT NULL, name TEXT NOT NULL, epoch INTEGER NOT NULL, version TEXT NOT NULL, release TEXT NOT NULL, arch TEXT NOT NULL);
             INSERT INTO trans VALUES (1, 1764662401, 1764662409, '', '', '9', 1002, 'dnf upgrade plumb-hello', 1);
             INSERT INTO item VALUES (1, 1);
             INSERT INTO rpm VALUES (1, 'plumb-hello', 0, '1.1', '1', 'noarch');
             INSERT INTO trans_item VALUES (1, 1, 1, NULL, 6, 2, 1);",
        )
        .expect("dnf's schema");
    fs::write(
        manifests.join("rpm.yaml"),
        "name: rpm\nhosts: [\"*\"]\npackages:\n  plumb-hello: {version: \"< 1.1\", manager: rpm, verify_files: true}\n",
    )
    .expect("write");
    plumb_tests::wait_for("the new manifest in force", || {
        let history = c.json(&["history", "--limit", "100"]);
        let accepted = history["events"]
            .as_array()?
            .iter()
            .filter(|e| e["event"] == "manifests_accepted")
            .count();
        (accepted >= 2).then_some(())
    });
    c.expect_drift("rpm-host", &[]);
    run_ok(rpm(&root).args(["-U", "--nodeps"]).arg(&v2));
    let host = c.expect_drift(
        "rpm-host",
        &[("package:plumb-hello", "version", "< 1.1", "1.1-1")],
    );
    let who = &host["drift"][0]["who"];
    assert_eq!(
        (
            &who["package_manager"],
            &who["user"],
            &who["uid"],
            &who["command"]
        ),
        (
            &serde_json::Value::from("dnf"),
            &serde_json::Value::from("carol"),
            &serde_json::Value::from(1002),
            &serde_json::Value::from("dnf upgrade plumb-hello")
        ),
        "{host:#}"
    );
    fs::write(
        manifests.join("rpm.yaml"),
        "name: rpm\nhosts: [\"*\"]\npackages:\n  plumb-hello: {version: \">= 1.0\", manager: rpm, verify_files: true}\n",
    )
    .expect("write");
    c.expect_drift("rpm-host", &[]);
    fs::remove_file(root.join("var/lib/dnf/history.sqlite")).expect("rm");

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
