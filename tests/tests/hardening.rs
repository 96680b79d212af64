//! End to end: the promises a hostile review broke (issue 12), each pinned by a test named
//! after what it keeps true.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Command;

use plumb_tests::{Controller, DEADLINE, Proc, bin, start_agent};

/// A controller on `manifest` (as `all.yaml`), with an empty host root `root/etc` next to it.
fn setup(manifest: &str) -> (tempfile::TempDir, Controller) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("all.yaml"), manifest).expect("write");
    fs::create_dir_all(tmp.path().join("root/etc")).expect("mkdir");
    let controller = Controller::start(&manifests, &tmp.path().join("data"));
    (tmp, controller)
}

// Regression (issue 12, item 10): `plumb drift --follow | head -1` never exited: a closed pipe
// was swallowed, and a follower waiting for its next event never wrote to find out.
#[test]
fn drift_follow_exits_once_its_reader_is_gone() {
    let (tmp, c) = setup(
        "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    content: \"a\\n\"\n  /etc/b:\n    content: \"b\\n\"\n",
    );
    let root = tmp.path().join("root");
    let _agent = start_agent(&c.url, "h1", &root, &[]);
    c.expect_drift_any_status(
        "h1",
        &[
            ("file:/etc/a", "present", "present", "absent"),
            ("file:/etc/b", "present", "present", "absent"),
        ],
    );

    // The reader takes one line and goes; nothing else happens on the fleet afterwards.
    let mut follower = Command::new(bin("plumb"));
    follower.args(["drift", "--follow", "--controller", &c.url]);
    let mut follower = Proc::spawn_reading(follower);
    let stdout = follower.take_stdout();
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read a line");
    assert!(first.contains("opened"), "{first}");
    // Reading end closed (dropped above): the follower must notice, idle as it is.
    let code = follower.wait();
    assert_eq!(code, Some(0), "stderr: {}", follower.stderr());

    // The shell form, as an operator types it.
    let out = Command::new("timeout")
        .arg(DEADLINE.as_secs().to_string())
        .args(["sh", "-c"])
        .arg(format!(
            "{} drift --follow --controller {} | head -1",
            bin("plumb").display(),
            c.url
        ))
        .output()
        .expect("run the pipeline");
    assert!(
        out.status.success(),
        "the pipeline did not end by itself: {:?}",
        out.status
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}
