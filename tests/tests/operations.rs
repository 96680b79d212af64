//! End to end: manifest reloads (good and broken), offline hosts, following drift live, the
//! CLI's exit codes and errors, and an unreadable file.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use plumb_tests::{
    Controller, DEADLINE, Proc, bin, have_or_skip, is_root, scrape, sha256, start_agent,
    start_agent_with, wait_for, write_tree,
};

fn setup(manifest: &str) -> (tempfile::TempDir, Controller) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(manifests.join("all.yaml"), manifest).expect("write");
    fs::create_dir_all(tmp.path().join("root/etc")).expect("mkdir");
    let controller = Controller::start(&manifests, &tmp.path().join("data"));
    (tmp, controller)
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("exit code")
}

const MOTD: &str = "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n";

/// A controller declaring `/etc/motd` as "hi\n", and agent `h1` on a root where it reads `motd`.
fn with_agent(motd: &str) -> (tempfile::TempDir, Controller, PathBuf, Proc) {
    let (tmp, c) = setup(MOTD);
    let root = tmp.path().join("root");
    fs::write(root.join("etc/motd"), motd).expect("write");
    let agent = start_agent(&c.url, "h1", &root, &[]);
    (tmp, c, root, agent)
}

#[test]
fn a_broken_manifest_is_reported_and_the_last_good_set_stays_in_force() {
    let (_tmp, c, root, _agent) = with_agent("hi\n");
    c.expect_drift("h1", &[]);
    assert_eq!(code(&c.plumb(&["drift"])), 0, "exit 0 when in sync");

    // A broken manifest dropped into the running controller's directory.
    let broken = c.manifests.join("broken.yaml");
    fs::write(
        &broken,
        "name: broken\nhosts: [\"*\"]\nfiles:\n  /etc/x:\n    mode: 0644\n",
    )
    .expect("write");
    let errors = wait_for("the rejected manifest to be reported", || {
        let v = c.json(&["hosts"]);
        let errors = v["manifest_errors"].as_array()?.clone();
        (!errors.is_empty()).then_some(errors)
    });
    let text = errors[0].as_str().expect("message");
    assert!(
        text.starts_with(&format!(
            "{}:5:11: mode must be a quoted string",
            broken.display()
        )),
        "{text}"
    );
    let out = c.plumb(&["drift"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the last good set stays in force"),
        "the CLI shows it"
    );

    // Drift is still evaluated against the last good set.
    fs::write(root.join("etc/motd"), "changed\n").expect("write");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"changed\n");
    let out = c.plumb(&["drift"]);
    assert_eq!(code(&out), 2, "exit 2 on drift");

    // Fixing it clears the error; a good change declares a new path, which the agent observes.
    fs::write(
        &broken,
        "name: broken\nhosts: [\"*\"]\nfiles:\n  /etc/issue:\n    absent: true\n",
    )
    .expect("fix");
    wait_for("the error to clear", || {
        c.json(&["hosts"])["manifest_errors"]
            .as_array()?
            .is_empty()
            .then_some(())
    });
    fs::write(root.join("etc/issue"), "").expect("write");
    c.expect_drift(
        "h1",
        &[
            ("file:/etc/issue", "present", "absent", "file"),
            (
                "file:/etc/motd",
                "sha256",
                &sha256(b"hi\n"),
                &sha256(b"changed\n"),
            ),
        ],
    );
    // A path no longer declared: its drift is resolved.
    fs::remove_file(&broken).expect("rm");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"changed\n");
}

#[test]
fn a_silent_agent_is_offline_with_its_last_known_drift() {
    let (_tmp, c, _root, agent) = with_agent("other\n");
    let (want, other) = (sha256(b"hi\n"), sha256(b"other\n"));
    let drifted = [("file:/etc/motd", "sha256", want.as_str(), other.as_str())];
    c.expect_drift("h1", &drifted);
    // SIGSTOP: the connection stays open but heartbeats stop (the controller runs with 1 s).
    agent.signal("STOP");
    let host = wait_for("the host to be offline", || {
        let h = c.host_drift("h1")?;
        (h["status"] == "offline").then_some(h)
    });
    assert_eq!(
        host["drift"][0]["attribute"], "sha256",
        "last known drift is kept: {host}"
    );
    assert_eq!(code(&c.plumb(&["drift", "h1"])), 2);
    agent.signal("CONT");
    c.expect_drift("h1", &drifted);
    let events = c.event_kinds("h1");
    assert!(
        events.contains(&"host_offline".to_owned()) && events.contains(&"host_online".to_owned()),
        "{events:?}"
    );
}

#[test]
fn drift_follow_streams_events_as_they_happen() {
    let (_tmp, c, root, _agent) = with_agent("hi\n");
    c.expect_drift("h1", &[]);

    let mut follower = Command::new(bin("plumb"))
        .args(["drift", "--follow", "-o", "json", "--controller", &c.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn follower");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The follower is subscribed once the controller has seen the query; a change made before
    // that would only show as current drift, which is also an `opened` line: either way the
    // first line must be this drift.
    fs::write(root.join("etc/motd"), "x\n").expect("write");
    let line = rx.recv_timeout(DEADLINE).expect("an event line");
    let event: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(event["event"], "opened");
    assert_eq!(event["host"], "h1");
    assert_eq!(event["resource"], "file:/etc/motd");
    fs::write(root.join("etc/motd"), "hi\n").expect("revert");
    let resolved = wait_for("a resolved event", || {
        let line = rx.recv_timeout(DEADLINE).ok()?;
        let e: serde_json::Value = serde_json::from_str(&line).ok()?;
        (e["event"] == "resolved").then_some(e)
    });
    assert_eq!(resolved["resource"], "file:/etc/motd");
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn cli_exit_codes_and_errors() {
    let plumb = |args: &[&str]| {
        Command::new(bin("plumb"))
            .args(args)
            .env_remove("PLUMB_CONTROLLER")
            .output()
            .expect("run")
    };
    assert_eq!(code(&plumb(&["no-such-command"])), 64, "usage error");
    assert_eq!(
        code(&plumb(&["drift", "--output", "xml"])),
        64,
        "usage error"
    );
    let help = plumb(&["--help"]);
    assert_eq!(code(&help), 0);
    assert!(
        String::from_utf8_lossy(&help.stdout)
            .contains("Exit codes: 0 in sync / success, 2 drift found, 1 error, 64 usage error")
    );

    // Nothing listens on port 1.
    let out = plumb(&["drift", "--controller", "http://127.0.0.1:1"]);
    assert_eq!(code(&out), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the controller at http://127.0.0.1:1") && err.contains("hint:"),
        "{err}"
    );

    let agent = Command::new(bin("plumb-agent"))
        .args(["run"])
        .output()
        .expect("run");
    assert_eq!(code(&agent), 64, "missing --controller is a usage error");

    // A host the controller does not know.
    let (_tmp, c) = setup(MOTD);
    let out = c.plumb(&["drift", "nope"]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no host \"nope\""));
}

/// Issue 13: `plumb --controller URL drift` was refused ("unexpected argument"); the query
/// commands' shared options now work before the command as well as after it.
#[test]
fn query_options_work_before_the_command() {
    let (_tmp, c) = setup(MOTD);
    let plumb = |args: &[&str]| {
        Command::new(bin("plumb"))
            .args(args)
            .env_remove("PLUMB_CONTROLLER")
            .output()
            .expect("run")
    };
    let out = plumb(&["--controller", &c.url, "-o", "json", "hosts"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v["hosts"].is_array(), "{v}");
    let out = plumb(&["--controller", &c.url, "drift", "nope"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no host \"nope\""),
        "asked the given controller"
    );
    let out = plumb(&["--controller", &c.url, "serve"]);
    assert_eq!(code(&out), 64, "a command without --controller refuses it");
}

#[test]
fn manifests_check_lists_every_error_with_its_place() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    fs::write(
        dir.join("a.yaml"),
        "name: a\nhosts: [\"*\"]\nfiles:\n  /etc/x:\n    mode: \"0999\"\n",
    )
    .expect("write");
    fs::write(
        dir.join("b.yaml"),
        "name: b\nhosts: [\"*\"]\nfiles:\n  /etc/y:\n    contains: [\"/(/\"]\n",
    )
    .expect("write");
    let out = Command::new(bin("plumb"))
        .args(["manifests", "check"])
        .arg(dir)
        .output()
        .expect("run");
    assert_eq!(code(&out), 1);
    let text = String::from_utf8_lossy(&out.stdout);
    let a = dir.join("a.yaml").display().to_string();
    let b = dir.join("b.yaml").display().to_string();
    assert!(
        text.contains(&format!(
            "{a}:5:11: files./etc/x.mode: invalid mode \"0999\""
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{b}:5:16: files./etc/y.contains[0]: invalid regex"
        )),
        "{text}"
    );

    let json = Command::new(bin("plumb"))
        .args(["manifests", "check", "-o", "json"])
        .arg(dir)
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["errors"][0]["line"], 5);

    // The repository's example manifests are valid.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let out = Command::new(bin("plumb"))
        .args(["manifests", "check"])
        .arg(&examples)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn an_unreadable_file_is_reported_as_such() {
    if !have_or_skip(is_root(), "root (to run the agent unprivileged)") {
        return;
    }
    let (tmp, c) = setup(MOTD);
    let root = tmp.path().join("root");
    fs::write(root.join("etc/motd"), "hi\n").expect("write");
    // The agent runs as nobody; the file is root's and private.
    fs::set_permissions(
        root.join("etc/motd"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    for dir in [tmp.path(), &root, &root.join("etc")] {
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin("plumb-agent"));
    let _agent = start_agent_with(cmd, &c.url, "h1", &root, &[]);
    c.expect_drift(
        "h1",
        &[(
            "file:/etc/motd",
            "sha256",
            &sha256(b"hi\n"),
            "unreadable: cannot read content: permission denied",
        )],
    );
}

#[test]
fn the_periodic_rescan_catches_what_inotify_cannot_see() {
    let (tmp, c) = setup(MOTD);
    let root = tmp.path().join("root");
    fs::write(root.join("etc/motd"), "hi\n").expect("write");
    // A hard link outside every watched directory: writing through it changes /etc/motd's
    // content, but inotify reports the write only to watchers of the link's own directory.
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("mkdir");
    fs::hard_link(root.join("etc/motd"), elsewhere.join("link")).expect("hard link");
    let agent = Command::new(bin("plumb-agent"));
    let _agent = start_agent_with(agent, &c.url, "h1", &root, &["--rescan-interval", "1s"]);
    c.expect_drift("h1", &[]);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(elsewhere.join("link"))
        .expect("open link");
    std::io::Write::write_all(&mut f, b"sneaky\n").expect("write through the link");
    drop(f);
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"sneaky\n");
}

#[test]
fn the_event_log_verifies_intact_on_a_live_data_directory() {
    let (tmp, c, root, _agent) = with_agent("hi\n");
    c.expect_drift("h1", &[]);
    fs::write(root.join("etc/motd"), "x\n").expect("write");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"x\n");
    let out = Command::new(bin("plumb"))
        .args(["audit", "verify", "-o", "json", "--data"])
        .arg(tmp.path().join("data"))
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["intact"], true);
    assert!(v["entries"].as_u64().is_some_and(|n| n >= 2), "{v}");
    assert_eq!(v["head"]["hash"].as_str().map(str::len), Some(64));
    assert_eq!(v["signature"], "valid", "{v}");
    assert_eq!(v["key_from"], "data directory");
    let missing = Command::new(bin("plumb"))
        .args(["audit", "verify", "--data"])
        .arg(tmp.path().join("nope"))
        .output()
        .expect("run");
    assert_eq!(code(&missing), 1);
}

#[test]
fn manifest_changes_are_in_the_event_log_with_their_git_commit() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(m.join("all.yaml"), MOTD).expect("write");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&m)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "baseline"]);
    let commit = git(&["rev-parse", "HEAD"]);

    let c = Controller::start(&m, &tmp.path().join("data"));
    let events = || {
        c.json(&["history"])["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let accepted = wait_for("the accepted set in the log", || {
        events()
            .into_iter()
            .find(|e| e["event"] == "manifests_accepted")
    });
    assert_eq!(accepted["host"], "");
    assert!(
        accepted["declared_at"]
            .as_str()
            .is_some_and(|d| d.starts_with(&format!("git {commit}"))),
        "{accepted}"
    );
    assert_eq!(accepted["actual"], "1 manifests in force");

    fs::write(m.join("broken.yaml"), "name: [\n").expect("write");
    let rejected = wait_for("the rejection in the log", || {
        events()
            .into_iter()
            .find(|e| e["event"] == "manifests_rejected")
    });
    assert!(
        rejected["actual"]
            .as_str()
            .is_some_and(|a| a.starts_with("rejected, 1 error(s):")),
        "{rejected}"
    );
}

#[test]
fn acknowledged_drift_is_shown_but_does_not_fail_drift() {
    let (_tmp, c, _root, _agent) = with_agent("other\n");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"other\n");
    assert_eq!(code(&c.plumb(&["drift"])), 2);
    assert_eq!(
        code(&c.plumb(&["ack", "h1", "file:/etc/motd"])),
        64,
        "a reason is required"
    );
    let out = c.plumb(&[
        "ack",
        "h1",
        "file:/etc/motd",
        "--reason",
        "change CHG-1 in progress",
        "--expires",
        "1h",
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(
        code(&c.plumb(&["drift"])),
        0,
        "acknowledged drift does not fail the check"
    );
    let v = c.json(&["drift"]);
    let item = &v["hosts"][0]["drift"][0];
    assert_eq!(item["resource"], "file:/etc/motd", "still shown: {v}");
    assert_eq!(item["acknowledged"]["by"], "local");
    assert_eq!(item["acknowledged"]["reason"], "change CHG-1 in progress");
    assert!(item["acknowledged"]["expires"].as_str().is_some());
    let list = c.json(&["ack", "list"]);
    assert_eq!(list["acks"].as_array().map(Vec::len), Some(1));

    assert_eq!(
        code(&c.plumb(&["ack", "revoke", "h1", "file:/etc/motd"])),
        0
    );
    assert_eq!(
        code(&c.plumb(&["drift"])),
        2,
        "revoked: the drift fails the check again"
    );
    let events = c.event_kinds("h1");
    assert!(
        events.contains(&"acknowledged".to_owned()) && events.contains(&"ack_revoked".to_owned()),
        "{events:?}"
    );
}

#[test]
fn logs_can_be_json_for_collectors() {
    let (tmp, c) = setup(MOTD);
    let mut cmd = Command::new(bin("plumb-agent"));
    cmd.arg("--log-format").arg("json");
    let agent = start_agent_with(cmd, &c.url, "h1", &tmp.path().join("root"), &[]);
    let line = wait_for("a JSON log line", || {
        agent.stderr().lines().find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v["level"].is_string())
        })
    });
    assert!(line["fields"]["message"].is_string(), "{line}");
}

#[test]
fn metrics_are_served_as_prometheus_text() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(m.join("all.yaml"), MOTD).expect("write");
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "other\n")]);
    let c = Controller::start_with(
        &m,
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &["--metrics-listen", "127.0.0.1:0"],
        "http",
    );
    let addr = wait_for("the metrics address", || {
        c.proc.stderr().lines().find_map(|l| {
            l.strip_prefix("plumb: metrics on http://")
                .map(|r| r.trim_end_matches("/metrics").to_owned())
        })
    });
    let _agent = start_agent(&c.url, "h1", &root, &[]);
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"other\n");
    let samples = scrape(&addr);
    assert_eq!(
        samples.get("plumb_hosts{status=\"drifted\"}"),
        Some(&1.0),
        "{samples:?}"
    );
    assert_eq!(samples.get("plumb_drift_open"), Some(&1.0));
    assert_eq!(samples.get("plumb_agent_streams"), Some(&1.0));
    assert_eq!(
        samples.get("plumb_events_total{kind=\"opened\"}"),
        Some(&1.0)
    );
    assert!(
        samples
            .get("plumb_evaluation_seconds_count")
            .is_some_and(|n| *n >= 1.0)
    );
    assert_eq!(
        samples.get("plumb_evaluation_seconds_bucket{le=\"+Inf\"}"),
        samples.get("plumb_evaluation_seconds_count")
    );
}

#[test]
fn report_of_a_scripted_history() {
    let (_tmp, c, root, _agent) = with_agent("hi\n");
    c.expect_drift("h1", &[]);
    fs::write(root.join("etc/motd"), "x\n").expect("write");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"x\n");
    fs::write(root.join("etc/motd"), "hi\n").expect("revert");
    c.expect_drift("h1", &[]);
    fs::write(root.join("etc/motd"), "y\n").expect("write");
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"y\n");

    let v = c.json_raw(&["report", "--since", "1h"]);
    assert_eq!(v["summary"]["incidents"], 2, "{v}");
    assert_eq!(v["summary"]["resolved"], 1);
    assert!(
        v["summary"]["mean_time_to_resolve_seconds"]
            .as_f64()
            .is_some_and(|s| s >= 0.0)
    );
    let incidents = v["hosts"][0]["incidents"].as_array().expect("incidents");
    assert!(incidents[0]["resolved"].is_string() && incidents[1]["resolved"].is_null());
    assert_eq!(incidents[1]["actual"], sha256(b"y\n"));

    let csv = String::from_utf8(c.plumb(&["report", "-o", "csv"]).stdout).expect("utf-8");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("host,resource,attribute,expected,actual,opened,resolved"));
    let html = String::from_utf8(c.plumb(&["report", "-o", "html"]).stdout).expect("utf-8");
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.contains("file:/etc/motd")
            && !html.contains("<script")
    );
    assert_eq!(
        code(&c.plumb(&["report", "--since", "yesterday-ish"])),
        1,
        "a bad time is an error"
    );
}

/// A long log is read a page at a time, and by kind: `--before` the last entry of a page gives
/// the next one, nothing twice and nothing skipped.
#[test]
fn history_pages_by_entry_and_filters_by_kind() {
    let (_tmp, c, root, _agent) = with_agent("hi\n");
    c.expect_drift("h1", &[]);
    for i in 0..3 {
        fs::write(root.join("etc/motd"), format!("edit {i}\n")).expect("write");
        wait_for("the drift", || {
            (code(&c.plumb(&["drift"])) == 2).then_some(())
        });
        fs::write(root.join("etc/motd"), "hi\n").expect("write");
        wait_for("the revert", || {
            (code(&c.plumb(&["drift"])) == 0).then_some(())
        });
    }
    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["id"].as_i64())
            .collect()
    };
    // h1's entries only: each read adds an entry, but the controller's own.
    let all = c.json(&["history", "h1", "--limit", "1000"]);
    let all = ids(&all);
    assert_eq!(
        all.len(),
        7,
        "online, and three opened and resolved: {all:?}"
    );
    let mut paged = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut args = vec!["history", "h1", "--limit", "3"];
        let b = before.map(|b| b.to_string());
        if let Some(b) = &b {
            args.extend(["--before", b]);
        }
        let page = ids(&c.json(&args));
        assert!(page.len() <= 3);
        match page.last() {
            Some(last) => before = Some(*last),
            None => break,
        }
        paged.extend(page);
    }
    assert_eq!(paged, all, "the pages, one after another, are the log");
    let out = c.plumb(&["history", "h1", "--limit", "3"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("older entries: plumb history --before"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened = c.json(&["history", "--kind", "opened"]);
    let kinds: Vec<&str> = opened["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(kinds, ["opened"; 3]);
    let out = c.plumb(&["history", "--kind", "opend"]);
    assert_eq!(code(&out), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no event is called \"opend\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
