//! End to end: the fleet as it stood at past moments, asked of the real controller with the
//! real CLI (`plumb drift --at`, `plumb hosts --at`, `plumb history --between`), checked
//! against the entries the test's own changes made on a real agent's temp root.

use std::fs;

use plumb_controller::clock::{parse_time, rfc3339};
use plumb_tests::{Controller, sha256, start_agent, wait_for};

const MOTD: &str = "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n";

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("exit code")
}

/// Each entry of h1's log as (kind, at in ms), oldest first.
fn entries(c: &Controller) -> Vec<(String, i64)> {
    let v = c.json(&["history", "h1"]);
    let mut all: Vec<(String, i64)> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let at = e["at"].as_str().expect("at");
            (
                e["event"].as_str().expect("event").to_owned(),
                parse_time(at).expect("an RFC 3339 time"),
            )
        })
        .collect();
    all.reverse();
    all
}

fn when(ms: i64) -> String {
    rfc3339(ms, true).expect("a time")
}

/// The one host's status and the actual values of its drift, at `ms`.
fn at(c: &Controller, ms: i64) -> (String, Vec<String>, i32) {
    let t = when(ms);
    let hosts = c.json(&["hosts", "--at", &t]);
    let drift = c.json(&["drift", "--at", &t]);
    let exit = code(&c.plumb(&["drift", "--at", &t]));
    let status = hosts["hosts"][0]["status"]
        .as_str()
        .unwrap_or("unknown to the fleet")
        .to_owned();
    let actual = drift["hosts"][0]["drift"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|i| i["actual"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (status, actual, exit)
}

#[test]
fn drift_and_hosts_at_a_past_moment_and_the_log_between_two() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("all.yaml"), MOTD).expect("write");
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    fs::write(root.join("etc/motd"), "hi\n").expect("write");
    let c = Controller::start(&manifests, &tmp.path().join("data"));
    let mut agent = start_agent(&c.url, "h1", &root, &[]);
    c.expect_drift("h1", &[]);

    // The morning: an edit, put right; another edit; the agent stops.
    fs::write(root.join("etc/motd"), "x\n").expect("write");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"x\n");
    fs::write(root.join("etc/motd"), "hi\n").expect("revert");
    c.expect_drift("h1", &[]);
    fs::write(root.join("etc/motd"), "y\n").expect("write");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"y\n");
    agent.signal("TERM");
    agent.wait();
    wait_for("the host to be offline", || {
        let v = c.json(&["hosts"]);
        (v["hosts"][0]["status"] == "offline").then_some(())
    });

    let log = entries(&c);
    let kinds: Vec<&str> = log.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "host_online",
            "opened",
            "resolved",
            "opened",
            "host_offline"
        ],
        "{log:?}"
    );
    let t: Vec<i64> = log.iter().map(|(_, at)| *at).collect();
    let between = |a: usize, b: usize| t[a] + (t[b] - t[a]) / 2;
    let (x, y) = (sha256(b"x\n"), sha256(b"y\n"));

    assert_eq!(
        at(&c, t[0] - 1_000),
        ("unknown to the fleet".into(), vec![], 0),
        "before its first stream"
    );
    assert_eq!(at(&c, between(0, 1)), ("in_sync".into(), vec![], 0));
    assert_eq!(
        at(&c, between(1, 2)),
        ("drifted".into(), vec![x.clone()], 2),
        "the first edit stood then, and failed drift as it did"
    );
    assert_eq!(at(&c, between(2, 3)), ("in_sync".into(), vec![], 0));
    assert_eq!(
        at(&c, between(3, 4)),
        ("drifted".into(), vec![y.clone()], 2)
    );
    assert_eq!(
        at(&c, t[4] + 1),
        ("offline".into(), vec![y], 2),
        "offline with its last known drift"
    );

    // What a past moment cannot say is said, and the read is in the log.
    let out = c.plumb(&["hosts", "--at", &when(between(1, 2))]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("coverage"), "{stderr}");
    let reads = c.json(&["history", "--kind", "log_read", "--limit", "1000"]);
    assert!(
        reads["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["actual"]
                .as_str()
                .is_some_and(|a| a.starts_with("the drift as at"))),
        "{reads}"
    );

    // The log between two moments: exactly the entries made in it, newest first.
    let period = c.json(&[
        "history",
        "h1",
        "--between",
        &when(between(0, 1)),
        &when(between(3, 4)),
    ]);
    let got: Vec<&str> = period["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    assert_eq!(got, ["opened", "resolved", "opened"]);
    let drift_then = c.json_raw(&["report", "--since", &when(between(1, 2))]);
    assert_eq!(
        drift_then["summary"]["incidents"], 2,
        "the drift open at the start is in the report: {drift_then}"
    );
    let first = &drift_then["hosts"][0]["incidents"][0];
    assert_eq!(
        (first["actual"].as_str(), first["resolved"].is_string()),
        (Some(x.as_str()), true)
    );

    for (bad, exit) in [
        (&["history", "--between", "2026-12-01"][..], 64),
        (&["history", "--between", "2026-12-02", "2026-12-01"][..], 1),
        (&["drift", "--at", "soon"][..], 1),
        (&["drift", "--at", "1h", "--follow"][..], 64),
    ] {
        assert_eq!(code(&c.plumb(bad)), exit, "{bad:?}");
    }
    let future = c.plumb(&["drift", "--at", "2999-01-01T00:00:00Z"]);
    assert_eq!(code(&future), 1);
    assert!(
        String::from_utf8_lossy(&future.stderr).contains("in the future"),
        "{}",
        String::from_utf8_lossy(&future.stderr)
    );
}
