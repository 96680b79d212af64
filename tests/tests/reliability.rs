//! Fault injection, with the real binaries: each test says the fault it injects and what it
//! checks afterwards.

use std::fs;
use std::path::Path;
use std::process::Command;

use plumb_tests::{Controller, bin, sha256, start_agent_with, wait_for};

fn manifests(dir: &Path, yaml: &str) -> std::path::PathBuf {
    let m = dir.join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(m.join("m.yaml"), yaml).expect("write");
    m
}

/// Fault: the agent may watch only one directory while its plan needs three.
/// Checked: the host is `degraded` (not `in_sync`) naming the polled paths, and a change in an
/// unwatched directory is still detected, by polling.
#[test]
fn beyond_the_watch_budget_paths_are_polled_and_the_host_is_degraded() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = manifests(
        tmp.path(),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a/one.conf:\n    content: \"1\\n\"\n  /etc/b/two.conf:\n    content: \"2\\n\"\n  /etc/c/three.conf:\n    content: \"3\\n\"\n",
    );
    let root = tmp.path().join("root");
    for (dir, file, content) in [
        ("etc/a", "one.conf", "1\n"),
        ("etc/b", "two.conf", "2\n"),
        ("etc/c", "three.conf", "3\n"),
    ] {
        fs::create_dir_all(root.join(dir)).expect("mkdir");
        fs::write(root.join(dir).join(file), content).expect("write");
    }
    let c = Controller::start(&m, &tmp.path().join("data"));
    let agent = Command::new(bin("plumb-agent"));
    let _agent = start_agent_with(
        agent,
        &c.url,
        "h1",
        &root,
        &["--max-watches", "1", "--poll-interval", "300ms"],
    );

    let host = wait_for("the host to be degraded", || {
        let v = c.json(&["hosts"]);
        let h = v["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["host"] == "h1")?
            .clone();
        (h["status"] == "degraded").then_some(h)
    });
    let polled: Vec<&str> = host["coverage"]["polled"]
        .as_array()
        .expect("polled")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(polled, ["/etc/b/two.conf", "/etc/c/three.conf"], "{host}");
    assert_eq!(host["coverage"]["watches"], 1);
    assert_eq!(host["coverage"]["watch_limit"], 1);
    assert!(
        host["coverage"]["degraded_since"].as_str().is_some(),
        "since when: {host}"
    );
    let drift = c.plumb(&["drift"]);
    assert!(
        String::from_utf8_lossy(&drift.stderr).contains("warning: host h1 is degraded"),
        "the CLI says so"
    );

    // A change in a directory that is not watched is found by polling.
    fs::write(root.join("etc/c/three.conf"), "changed\n").expect("write");
    c.expect_drift_any_status(
        "h1",
        &[(
            "file:/etc/c/three.conf",
            "sha256",
            &sha256(b"3\n"),
            &sha256(b"changed\n"),
        )],
    );
}

/// Fault: a change inotify cannot see (a write through a hard link outside the watched
/// directories), with the periodic rescan far away. Checked: SIGHUP makes the agent rescan,
/// and the change is reported.
#[test]
fn sighup_makes_the_agent_rescan() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = manifests(
        tmp.path(),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n",
    );
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    fs::write(root.join("etc/motd"), "hi\n").expect("write");
    fs::hard_link(root.join("etc/motd"), tmp.path().join("link")).expect("hard link");
    let c = Controller::start(&m, &tmp.path().join("data"));
    let agent = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "h1",
        &root,
        &["--rescan-interval", "1h"],
    );
    c.expect_drift("h1", &[]);
    fs::write(tmp.path().join("link"), "sneaky\n").expect("write through the link");
    agent.signal("HUP");
    c.expect_drift(
        "h1",
        &[(
            "file:/etc/motd",
            "sha256",
            &sha256(b"hi\n"),
            &sha256(b"sneaky\n"),
        )],
    );
}

/// Fault: the manifest directory is replaced atomically, twice: inside it, Kubernetes-style
/// (`..data` symlink swapped to a new timestamped folder), and as a whole (the configured path
/// is a symlink swapped to another directory). Checked: both new sets are in force; SIGHUP asks
/// the controller for a reload.
#[test]
fn manifest_directories_replaced_atomically_are_reloaded() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    for f in ["a", "b", "c"] {
        fs::write(root.join("etc").join(f), "x").expect("write");
    }
    let declare =
        |path: &str| format!("name: m\nhosts: [\"*\"]\nfiles:\n  {path}:\n    absent: true\n");

    // A ConfigMap-style volume: m.yaml -> ..data/m.yaml, ..data -> ..v1.
    let volume = tmp.path().join("volume");
    fs::create_dir_all(volume.join("..v1")).expect("mkdir");
    fs::write(volume.join("..v1/m.yaml"), declare("/etc/a")).expect("write");
    std::os::unix::fs::symlink("..v1", volume.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/m.yaml", volume.join("m.yaml")).expect("symlink");
    // The controller is given a path that is itself a symlink to the volume.
    let current = tmp.path().join("manifests");
    std::os::unix::fs::symlink(&volume, &current).expect("symlink");

    let c = Controller::start(&current, &tmp.path().join("data"));
    let _agent = start_agent_with(Command::new(bin("plumb-agent")), &c.url, "h1", &root, &[]);
    c.expect_drift("h1", &[("file:/etc/a", "present", "absent", "file")]);

    // Kubernetes' update: write ..v2, point a temporary link at it, rename it over ..data.
    fs::create_dir_all(volume.join("..v2")).expect("mkdir");
    fs::write(volume.join("..v2/m.yaml"), declare("/etc/b")).expect("write");
    std::os::unix::fs::symlink("..v2", volume.join("..data_tmp")).expect("symlink");
    fs::rename(volume.join("..data_tmp"), volume.join("..data")).expect("swap");
    c.expect_drift("h1", &[("file:/etc/b", "present", "absent", "file")]);

    // A release switch: the configured path now points at another directory.
    let release = tmp.path().join("release-2");
    fs::create_dir_all(&release).expect("mkdir");
    fs::write(release.join("m.yaml"), declare("/etc/c")).expect("write");
    std::os::unix::fs::symlink(&release, tmp.path().join("manifests.tmp")).expect("symlink");
    fs::rename(tmp.path().join("manifests.tmp"), &current).expect("swap");
    c.expect_drift("h1", &[("file:/etc/c", "present", "absent", "file")]);

    c.proc.signal("HUP");
    wait_for("the controller to log the requested reload", || {
        c.proc
            .stderr()
            .contains("manifest reload requested")
            .then_some(())
    });
}
