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
