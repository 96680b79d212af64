//! Fault injection, with the real binaries: each test says the fault it injects and what it
//! checks afterwards.

use std::fs;
use std::path::Path;
use std::process::Command;

use plumb_tests::{Controller, bin, sha256, start_agent_with, wait_for, write_tree};

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
    write_tree(&root, &[("etc/motd", "hi\n")]);
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
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"sneaky\n");
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

/// Fault: the network between agent and controller is cut (every connection dropped, new ones
/// refused) while a declared file changes, then restored. Checked: the change is reported after
/// the cut, without restarting anything.
#[test]
fn changes_during_a_network_cut_are_reported_after_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = manifests(
        tmp.path(),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n",
    );
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "hi\n")]);
    let c = Controller::start(&m, &tmp.path().join("data"));
    let target = c
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let proxy = plumb_tests::Proxy::start(target);
    let _agent = start_agent_with(
        Command::new(bin("plumb-agent")),
        &proxy.url(),
        "h1",
        &root,
        &[],
    );
    c.expect_drift("h1", &[]);

    proxy.cut();
    wait_for("the controller to see the host offline", || {
        (c.host_drift("h1")?["status"] == "offline").then_some(())
    });
    fs::write(root.join("etc/motd"), "changed during the cut\n").expect("write");
    proxy.restore();
    c.expect_content_drift("h1", "/etc/motd", b"hi\n", b"changed during the cut\n");
}

/// Fault: `kill -9` of the controller while an agent streams a burst of changes, and another
/// change while it is down; then a restart on the same data directory and address.
/// Checked: every event recorded (and so acknowledged) before the kill is still in the history,
/// and the final state of both files is what the controller reports.
#[test]
fn a_controller_killed_mid_stream_loses_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = manifests(
        tmp.path(),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/a:\n    content: \"0\\n\"\n  /etc/b:\n    content: \"b\\n\"\n",
    );
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/a", "0\n"), ("etc/b", "b\n")]);
    let data = tmp.path().join("data");
    let mut c = Controller::start(&m, &data);
    let _agent = start_agent_with(Command::new(bin("plumb-agent")), &c.url, "h1", &root, &[]);
    c.expect_drift("h1", &[]);

    // A writer streams changes to /etc/a; the controller is killed while it runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), root.join("etc/a"));
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 100_000 {
                n += 1;
                let _ = fs::write(&path, format!("{n}\n"));
                std::thread::yield_now();
            }
            n
        })
    };
    wait_for("events from the burst", || {
        let h = c.json(&["history", "h1"]);
        (h["events"]
            .as_array()?
            .iter()
            .filter(|e| e["resource"] == "file:/etc/a")
            .count()
            >= 1)
            .then_some(())
    });
    let before: Vec<serde_json::Value> = c.json(&["history", "h1", "--limit", "100000"])["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let addr = c.url.trim_start_matches("http://").to_owned();
    c.proc.signal("KILL");
    c.proc.wait();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.join().expect("writer");
    fs::write(root.join("etc/a"), "final\n").expect("write");
    fs::write(root.join("etc/b"), "changed while down\n").expect("write");
    drop(c);

    let c = Controller::start_on(&m, &data, &addr);
    c.expect_drift(
        "h1",
        &[
            (
                "file:/etc/a",
                "sha256",
                &sha256(b"0\n"),
                &sha256(b"final\n"),
            ),
            (
                "file:/etc/b",
                "sha256",
                &sha256(b"b\n"),
                &sha256(b"changed while down\n"),
            ),
        ],
    );
    let after: Vec<serde_json::Value> = c.json(&["history", "h1", "--limit", "100000"])["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        after.ends_with(&before),
        "all {} events from before the kill survive",
        before.len()
    );
    eprintln!(
        "{writes} writes streamed; {} events before the kill, {} after the restart",
        before.len(),
        after.len()
    );
}

/// Fault: a flood of 10,000 writes across 1,000 declared files within about a second.
/// Checked: the reported drift equals the files' final state (exactly the 500 files left
/// changed), and the agent's peak memory is printed.
#[test]
fn a_flood_of_changes_ends_in_the_files_final_state() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut yaml = String::from("name: m\nhosts: [\"*\"]\nfiles:\n");
    for i in 0..1000 {
        yaml.push_str(&format!("  /etc/flood/f{i:04}:\n    content: \"0\\n\"\n"));
    }
    let m = manifests(tmp.path(), &yaml);
    let dir = tmp.path().join("root/etc/flood");
    fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..1000 {
        fs::write(dir.join(format!("f{i:04}")), "0\n").expect("write");
    }
    let c = Controller::start(&m, &tmp.path().join("data"));
    let agent = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "h1",
        &tmp.path().join("root"),
        &[],
    );
    c.expect_drift("h1", &[]);

    let start = std::time::Instant::now();
    for round in 1..=10 {
        for i in 0..1000 {
            // The last round leaves odd files changed and even files as declared.
            let content = if round == 10 && i % 2 == 0 {
                "0\n".to_string()
            } else {
                format!("{round}\n")
            };
            fs::write(dir.join(format!("f{i:04}")), content).expect("write");
        }
    }
    let took = start.elapsed();
    let want_actual = sha256(b"10\n");
    let declared = sha256(b"0\n");
    let resources: Vec<String> = (0..1000)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("file:/etc/flood/f{i:04}"))
        .collect();
    let want: Vec<(&str, &str, &str, &str)> = resources
        .iter()
        .map(|r| {
            (
                r.as_str(),
                "sha256",
                declared.as_str(),
                want_actual.as_str(),
            )
        })
        .collect();
    c.expect_drift("h1", &want);
    eprintln!(
        "10,000 writes in {took:?}; agent peak RSS {} KiB",
        plumb_tests::peak_rss_kib(agent.pid()).map_or("?".into(), |k| k.to_string())
    );
}

/// Fault: a scan with its reading capped (`--scan-rate 256K`) over a 512 KiB declared file.
/// Checked: the agent does not read faster than allowed (the first snapshot cannot be in
/// before 448 KiB / 256 KiB/s = 1.75 s; the first chunk is free), and the result is correct.
#[test]
fn the_scan_rate_caps_the_agents_reading() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let content = vec![b'x'; 512 * 1024];
    let m = manifests(
        tmp.path(),
        &format!(
            "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/big:\n    sha256: \"{}\"\n",
            sha256(&content)
        ),
    );
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    fs::write(root.join("etc/big"), &content).expect("write");
    let c = Controller::start(&m, &tmp.path().join("data"));
    let started = std::time::Instant::now();
    let _agent = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "h1",
        &root,
        &["--scan-rate", "256K"],
    );
    c.expect_drift("h1", &[]);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1750),
        "read too fast: {:?}",
        started.elapsed()
    );
}

/// Fault: SIGTERM to an agent and to a controller with an agent connected.
/// Checked: both drain and exit 0 within the deadline.
#[test]
fn sigterm_drains_and_exits_cleanly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = manifests(
        tmp.path(),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/motd: {}\n",
    );
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "hi\n")]);
    let mut c = Controller::start(&m, &tmp.path().join("data"));
    let mut agent = start_agent_with(Command::new(bin("plumb-agent")), &c.url, "h1", &root, &[]);
    c.expect_drift("h1", &[]);
    c.proc.signal("TERM");
    assert_eq!(c.proc.wait(), Some(0), "controller: {}", c.proc.stderr());
    agent.signal("TERM");
    assert_eq!(agent.wait(), Some(0), "agent: {}", agent.stderr());
}

/// Fault: none; the controller retires every stream after about a second
/// (`--max-connection-age 1s`). Checked: the agent connects again at once each time, so the
/// host is never offline for it (no `host_offline` in its history after several moves), and a
/// change made after the moves is still detected.
#[test]
fn streams_past_the_maximum_age_move_without_the_host_going_offline() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = manifests(
        tmp.path(),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/app.conf:\n    mode: \"0644\"\n",
    );
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/app.conf", "a=1\n")]);
    let app = root.join("etc/app.conf");
    fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let c = Controller::start_with(
        &m,
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &[
            "--max-connection-age",
            "1s",
            "--max-connection-age-grace",
            "1s",
        ],
        "http",
    );
    let _agent = start_agent_with(
        Command::new(bin("plumb-agent")),
        &c.url,
        "web-1",
        &root,
        &[],
    );
    wait_for("three streams, two of them retired", || {
        let online = c
            .event_kinds("web-1")
            .iter()
            .filter(|k| *k == "host_online")
            .count();
        (online >= 3).then_some(())
    });
    let kinds = c.event_kinds("web-1");
    assert!(
        !kinds.iter().any(|k| k == "host_offline"),
        "a retired stream is not an offline host: {kinds:?}"
    );
    fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    c.expect_drift("web-1", &[("file:/etc/app.conf", "mode", "0644", "0600")]);
    assert!(
        c.proc.stderr().contains("asked the agent to connect again"),
        "the controller says why streams end"
    );
}
