//! End to end: running plumb as a service: configuration files with environment and flag
//! overrides, systemd readiness and watchdog notifications.

use std::fs;
use std::path::Path;
use std::process::Command;

use plumb_tests::{Controller, Proc, bin, wait_for, write_tree};
use serde_json::Value;

/// `plumb serve --config FILE` with everything in the file.
fn controller_from_config(tmp: &Path) -> Controller {
    let manifests = tmp.join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    fs::write(
        manifests.join("all.yaml"),
        "name: all\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n",
    )
    .expect("write");
    let config = tmp.join("controller.yaml");
    fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nmanifests: {}\ndata: {}\nheartbeat_interval: 1s\n",
            manifests.display(),
            tmp.join("data").display()
        ),
    )
    .expect("write");
    let mut cmd = Command::new(bin("plumb"));
    cmd.arg("serve").arg("--config").arg(&config);
    let (proc, addr) = Proc::spawn(cmd, Some("plumb: listening on"));
    Controller {
        proc,
        url: format!("http://{}", addr.expect("address")),
        manifests,
        data: tmp.join("data"),
        client_env: Vec::new(),
    }
}

fn labels_of(c: &Controller, host: &str) -> Value {
    wait_for(&format!("host {host} to report"), || {
        let hosts = c.json(&["hosts"]);
        hosts["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["host"] == host && h["status"] == "drifted")
            .map(|h| h["labels"].clone())
    })
}

#[test]
fn configuration_files_are_read_and_environment_and_flags_override_them() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let c = controller_from_config(tmp.path());
    let root = tmp.path().join("root");
    write_tree(&root, &[("etc/motd", "changed\n")]);
    let config = tmp.path().join("agent.yaml");
    fs::write(
        &config,
        format!(
            "controller: {}\nhost_id: from-file\nroot: {}\nlabels: {{role: file, tier: a}}\n\
             poll_interval: 1s\n",
            c.url,
            root.display()
        ),
    )
    .expect("write");
    let agent = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(bin("plumb-agent"));
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .args(args)
            .envs(env.iter().copied());
        Proc::spawn(cmd, None).0
    };

    // Only the file.
    let _a = agent(&[], &[]);
    let labels = labels_of(&c, "from-file");
    assert_eq!(labels, serde_json::json!({"role": "file", "tier": "a"}));

    // The environment beats the file; a flag's label replaces the file's for its key only.
    let _b = agent(&[("PLUMB_HOST_ID", "from-env")], &["--label", "tier=flag"]);
    let labels = labels_of(&c, "from-env");
    assert_eq!(labels, serde_json::json!({"role": "file", "tier": "flag"}));

    // A flag beats the environment.
    let _c = agent(
        &[
            ("PLUMB_HOST_ID", "from-env"),
            ("PLUMB_LABELS", "tier=env,zone=z1"),
        ],
        &["--host-id", "from-flag"],
    );
    let labels = labels_of(&c, "from-flag");
    assert_eq!(
        labels,
        serde_json::json!({"role": "file", "tier": "env", "zone": "z1"})
    );
}

#[test]
fn a_broken_configuration_is_named_with_its_location_and_nothing_starts() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("agent.yaml");
    fs::write(&config, "controller: http://127.0.0.1:1\ncontoller: typo\n").expect("write");
    let out = Command::new(bin("plumb-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:1: unknown field `contoller`",
            config.display()
        )),
        "{err}"
    );

    let config = tmp.path().join("controller.yaml");
    fs::write(&config, "listen: 127.0.0.1:0\n").expect("write");
    let out = Command::new(bin("plumb"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(64),
        "a missing option is a usage error"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no manifest directory"), "{err}");
    assert!(err.contains("PLUMB_MANIFESTS"), "{err}");

    let out = Command::new(bin("plumb-agent"))
        .args(["run", "--config"])
        .arg(tmp.path().join("missing.yaml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the configuration"), "{err}");
}

/// A stand-in for systemd's notification socket: collects what a daemon sends.
struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(plumb_tests::DEADLINE))
            .expect("timeout");
        Self { socket, path }
    }

    /// The environment systemd gives a `Type=notify` service with `WatchdogSec=`.
    fn env(&self, watchdog_usec: u64) -> Vec<(String, String)> {
        vec![
            ("NOTIFY_SOCKET".into(), self.path.display().to_string()),
            ("WATCHDOG_USEC".into(), watchdog_usec.to_string()),
        ]
    }

    /// Reads messages until one contains `line`; returns everything read.
    fn until(&self, line: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {line:?} notification ({e}); got {seen:?}"));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == line);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
}

fn expect_notify_lifecycle(mut daemon: Proc, sock: &NotifySocket, status: &str) {
    let ready = sock.until("READY=1");
    let last = ready.last().expect("a message");
    assert!(
        last.lines()
            .any(|l| l.starts_with("STATUS=") && l.contains(status)),
        "{ready:?}"
    );
    // The watchdog (300 ms) is fed again and again while the daemon is healthy.
    for _ in 0..3 {
        sock.until("WATCHDOG=1");
    }
    daemon.signal("TERM");
    sock.until("STOPPING=1");
    assert_eq!(daemon.wait(), Some(0), "{}", daemon.stderr());
}

#[test]
fn the_daemons_notify_systemd_when_ready_feed_its_watchdog_and_say_when_stopping() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    fs::create_dir_all(&manifests).expect("mkdir");
    let controller_dir = tmp.path().join("c");
    fs::create_dir_all(&controller_dir).expect("mkdir");
    let sock = NotifySocket::bind(&controller_dir);
    let mut cmd = Command::new(bin("plumb"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--manifests"])
        .arg(&manifests)
        .arg("--data")
        .arg(tmp.path().join("data"))
        .envs(sock.env(300_000));
    let (controller, addr) = Proc::spawn(cmd, Some("plumb: listening on"));
    let addr = addr.expect("address");
    expect_notify_lifecycle(controller, &sock, &format!("listening on {addr}"));

    // The agent is ready even when its controller is unreachable: it keeps retrying.
    let agent_dir = tmp.path().join("a");
    fs::create_dir_all(&agent_dir).expect("mkdir");
    let sock = NotifySocket::bind(&agent_dir);
    let mut cmd = Command::new(bin("plumb-agent"));
    cmd.args([
        "run",
        "--controller",
        "http://127.0.0.1:1",
        "--host-id",
        "h",
    ])
    .envs(sock.env(300_000));
    let (agent, _) = Proc::spawn(cmd, None);
    expect_notify_lifecycle(agent, &sock, "reporting to http://127.0.0.1:1");
}
